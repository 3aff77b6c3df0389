"""Brokerless messaging, ZeroMQ's way: producers send straight to the consumers.

*Microservices Patterns* §3.3.4 sets brokerless messaging beside the
broker: there is no node in the middle, so latency is lower and there is no
broker to fail or to become the bottleneck -- but **both ends must be up at
once and must know each other's address**, and nothing is kept anywhere but
in the two processes' buffers.  :class:`Brokerless` implements the
:class:`~simcomm.messaging.Transport` interface, so a scenario switches
between it and a :class:`~simcomm.messaging.Broker` with one knob: the same
:func:`~simcomm.messaging.publish`, :class:`~simcomm.messaging.Producer` and
:class:`~simcomm.messaging.Consumer` work on both, and ``trace.mq`` records the
same events, so the results tables read both.

What follows ZeroMQ (libzmq 4, its guide and ``zmq_socket(3)`` /
``zmq_setsockopt(3)``):

* **Endpoints and pipes.**  A node that publishes on a channel has a socket
  on it with one *pipe* per consumer endpoint it knows (the consumers
  attached to the channel: ZeroMQ's ``zmq_connect`` to a configured
  address).  A pipe connects with a handshake -- a ``control`` request to the
  consumer, answered ``ok`` with the consumer's connection number -- and
  retries every ``reconnect_interval`` seconds while the consumer is down
  or unreachable (``ZMQ_RECONNECT_IVL``; ZeroMQ's default is 0.1 s, the
  transport's here 1 s).
* **Point-to-point = PUSH/PULL.**  Each message goes to one consumer of the
  channel, round-robin over the pipes that have room (ZeroMQ's load
  balancer skips a pipe at its high-water mark).  As without
  ``ZMQ_IMMEDIATE`` (the default), a pipe to a consumer that is not
  connected takes its turn too: its messages wait in the pipe and arrive
  late, when that consumer is back.  ``immediate=True`` follows
  ``ZMQ_IMMEDIATE=1``: only connected consumers get messages.
* **Publish-subscribe = PUB/SUB.**  Every subscription gets a copy.  A
  *durable* subscription is a subscriber whose address the publisher knows
  (the publisher connects to it), so its pipe exists while it is away and
  keeps what is published meanwhile, up to the high-water mark; a
  *non-durable* one is a subscriber that connects to the publisher, so it
  has a pipe only while connected: it misses what is published while it is
  away, and at first, until the handshake is done (ZeroMQ's "slow joiner").
  Several consumers of one durable subscription share its copies
  round-robin (a PUSH/PULL stage behind one SUB, which ZeroMQ leaves to the
  application).
* **High-water mark** (``ZMQ_SNDHWM`` / ``ZMQ_RCVHWM``, default 1000): a
  pipe holds at most ``high_water_mark`` messages the consumer has not
  received yet (waiting at the sender while the peer is unreachable, or on
  the wire), and a consumer's receive buffer at most ``high_water_mark``
  messages it has not started on.  A message for a full pipe is dropped
  (``drop``, ``hwm``): PUB drops at the mark, as ZeroMQ's does.
* **No persistence, no acknowledgements.**  A message is done for the
  sender once it is in the pipe: a consumer that crashes loses what it
  held (``drop``, ``consumer_crash``, recorded by the consumer, which reads
  a brokerless channel with RabbitMQ's auto-ack semantics, since that is
  exactly what they are), and a message on the wire to a consumer that
  died is lost when the consumer's host answers it with a reset
  (``drop``, ``peer_down``, recorded at the sender when the reset reaches
  it).  ZeroMQ never resends.  A sender that crashes loses what waited in
  its pipes (``drop``, ``producer_crash``).

What is simplified (said, not hidden):

* A real PUSH socket **blocks** the sender when every pipe is at its mark
  (and when it has no pipe at all); here the message is dropped (``hwm``;
  ``peer_down`` with ``immediate`` and nobody connected), as an application
  sending with ``ZMQ_DONTWAIT`` drops what ``EAGAIN`` refuses.
* ZeroMQ counts a send and a receive mark per pipe (the real bound is
  their sum); here one mark bounds what a pipe holds for its consumer and
  another the consumer's whole receive buffer, which the sender sees at
  once, as TCP's window carries it, without a message.
* TCP underneath: a message the network loses on its way is sent again
  after ``reconnect_interval`` (standing in for TCP's retransmission
  timeout) before any later one, and nothing is sent across a partition
  (TCP keeps it); a message already on the wire when a partition cuts its
  path is lost to the network model and stays ``in_flight`` in the ledger.
* A sender's crash is noticed at its pipes' next timer (they run only
  while something waits in them): a sender that crashes and restarts
  between two timers keeps what waited.  ZeroMQ's topic prefixes are not
  modelled: a subscription takes every message of its channel.

``trace.mq`` (see :mod:`simcomm.engine.trace`): ``publish`` (sender,
channel, routing key); ``pipe`` (sender, the copy's channel -- the
point-to-point channel, or ``<channel>.<subscription>`` -- and the
consumer the copy is for) when a copy enters a pipe, an event the broker
has no use for; ``deliver`` and ``consume`` by the consumer; ``drop`` with
``hwm``, ``peer_down``, ``subscriber_gone`` (a non-durable subscriber left
with copies still for it), ``producer_crash``, ``unroutable`` (no consumer
to send to at all, with the channel's name), or by the consumer
``consumer_crash`` / ``rejected``; ``confirm`` when the publisher asked for
one (``ack``: every copy went into a pipe, ``nack``: one was dropped --
what ``zmq_send`` returning ``EAGAIN`` tells).  Counters in
:attr:`Brokerless.stats` whatever the trace.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import as_real, is_flag, is_whole
from simcomm.engine.messages import CONTROL, EVENT, Message
from simcomm.engine.nodes import Node
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.messaging.envelope import Delivery, Envelope
from simcomm.messaging.transport import POINT_TO_POINT, PUBLISH_SUBSCRIBE

if TYPE_CHECKING:
    from simcomm.engine.formats import Format
    from simcomm.messaging.consumer import Consumer

__all__ = ["BROKERLESS_DROP_REASONS", "HIGH_WATER_MARK", "RECONNECT_INTERVAL", "Brokerless"]

#: ZeroMQ's default ``ZMQ_SNDHWM`` / ``ZMQ_RCVHWM`` (messages)
HIGH_WATER_MARK = 1000
#: seconds between a pipe's attempts to (re)connect
RECONNECT_INTERVAL = 1.0
#: why a brokerless transport drops a copy, as ``trace.mq`` records it (the
#: consumer adds ``consumer_crash`` and ``rejected``)
BROKERLESS_DROP_REASONS = ("hwm", "peer_down", "subscriber_gone", "producer_crash",
                           "unroutable")

_CONNECT = "zmq_connect"
# pipe states
_CONNECTING, _WAITING, _CONNECTED = "connecting", "waiting", "connected"


class _Link:
    """What a copy carries as ``Delivery.channel``: the connection it travels on.

    ``conn`` is the consumer's connection number the handshake returned; a
    consumer that restarted since discards the copy (TCP never hands a new
    connection the bytes of a closed one)."""

    __slots__ = ("conn",)

    def __init__(self, conn: int) -> None:
        self.conn = conn

    def __repr__(self) -> str:
        return f"_Link(conn={self.conn})"


class _Group:
    """Where one copy of each message goes: a point-to-point channel, or one
    subscription of a publish-subscribe channel; its consumers compete."""

    __slots__ = ("durable", "name", "peers")

    def __init__(self, name: str, durable: bool) -> None:
        self.name = name
        self.durable = durable
        self.peers: list[Consumer] = []


class _Channel:
    __slots__ = ("groups", "kind", "name")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.groups: dict[str, _Group] = {}


class _Pipe:
    """One sender's pipe to one consumer, for one group (see the module docstring).

    ``buffer`` holds the copies waiting at the sender (not connected, or
    held back by TCP); ``wire`` those sent and maybe not arrived yet (an
    arrived one has ``delivered`` set and is trimmed lazily); ``doomed``
    those sent to a consumer that died, whose reset the sender waits for.
    """

    __slots__ = ("blocked", "buffer", "conn", "doomed", "group", "link", "peer", "rid",
                 "sender", "state", "token", "wire")

    def __init__(self, sender: Node, peer: Consumer, group: _Group) -> None:
        self.sender = sender
        self.peer = peer
        self.group = group
        self.state = _WAITING
        self.conn = 0
        self.link: _Link | None = None
        self.buffer: deque[Message] = deque()
        self.wire: deque[Message] = deque()
        self.doomed: list[Message] = []
        self.rid = 0          # the handshake's request id (the connection's watch)
        self.token = 0        # bumped at every state change: stale timers do nothing
        self.blocked = False  # TCP holds the head back (loss, partition)

    def in_flight(self) -> int:
        wire = self.wire
        while wire and wire[0].delivered is not None:
            wire.popleft()
        return sum(1 for m in wire if m.delivered is None)

    def __repr__(self) -> str:
        return (f"_Pipe({self.sender.name}->{self.peer.name} on {self.group.name!r}, "
                f"{self.state}, buffered={len(self.buffer)})")


class _Socket:
    """One sender's socket on one channel: its pipes per group, and where
    each group's round-robin stands."""

    __slots__ = ("pipes", "rr")

    def __init__(self) -> None:
        self.pipes: dict[str, list[_Pipe]] = {}
        self.rr: dict[str, int] = {}


def _check_interval(value: object) -> float:
    seconds = as_real(value)
    if seconds is None or not 0 < seconds < math.inf:
        raise ParamError("reconnect_interval", value, "seconds > 0 (finite)")
    return seconds


class Brokerless:
    """A ZeroMQ-style transport: no broker, pipes from senders to consumers.

    ``high_water_mark`` bounds each pipe and each consumer's receive buffer
    (messages; 0 = no limit, as ZeroMQ's 0); ``reconnect_interval`` is how
    long a pipe waits between attempts to connect; ``immediate`` sends
    point-to-point messages only to connected consumers (``ZMQ_IMMEDIATE``).
    See the module docstring for the rules it follows and what it
    simplifies.  Declare channels before consumers attach:
    :meth:`point_to_point`, :meth:`publish_subscribe`.
    """

    def __init__(self, world: World, *, high_water_mark: int = HIGH_WATER_MARK,
                 reconnect_interval: float = RECONNECT_INTERVAL,
                 immediate: bool = False) -> None:
        if not isinstance(world, World):
            raise ParamError("world", world, "the World the transport belongs to")
        if not is_whole(high_water_mark) or high_water_mark < 0:
            raise ParamError("high_water_mark", high_water_mark,
                             "a whole number of messages >= 0 (0 = no limit)")
        if not is_flag(immediate):
            raise ParamError("immediate", immediate, "True or False")
        self.world = world
        self.env = world.env
        self.high_water_mark = int(high_water_mark)
        self.reconnect_interval = _check_interval(reconnect_interval)
        self.immediate = bool(immediate)
        self._network = world.network
        self._channels: dict[str, _Channel] = {}
        self._groups: dict[str, _Group] = {}
        self._sockets: dict[tuple[str, str], _Socket] = {}
        self._pipes_to: dict[str, list[_Pipe]] = {}  # consumer name -> pipes to it
        self._accepted: dict[str, list[Message]] = {}  # consumer -> handshakes it answered
        trace = world.trace
        self._mq = trace.mq.append if trace.enabled else None
        # counters (stats)
        self._n_published = 0
        self._n_copies = 0
        self._n_sent = 0
        self._n_retransmitted = 0
        self._n_attempts = 0
        self._n_connections = 0
        self._n_refused = 0  # copies dropped before a pipe (Result's summary, trace=False)
        self._dropped: dict[str, int] = dict.fromkeys(BROKERLESS_DROP_REASONS, 0)

    def __repr__(self) -> str:
        return (f"Brokerless(high_water_mark={self.high_water_mark}, "
                f"reconnect_interval={self.reconnect_interval:g}, "
                f"channels={list(self._channels)})")

    # ==================================================================
    # channels (the Transport interface)
    # ==================================================================
    def _declare(self, name: str, kind: str) -> str:
        if not isinstance(name, str) or not name:
            raise ParamError("name", name, "a non-empty channel name")
        ch = self._channels.get(name)
        if ch is not None:
            if ch.kind != kind:
                raise ParamError("name", name, f"a name not already used by a {ch.kind} "
                                               f"channel")
            return name
        if name in self._groups:
            raise ParamError("name", name, "a name not already used by a subscription")
        self._channels[name] = _Channel(name, kind)
        return name

    def point_to_point(self, name: str, **options: Any) -> str:
        """A point-to-point channel ``name`` (PUSH/PULL): each message goes to
        one of its consumers.  It takes no options: there is no queue to
        configure (``high_water_mark`` bounds the pipes)."""
        if options:
            raise ParamError(sorted(options)[0], options[sorted(options)[0]],
                             "no queue options: a brokerless channel has no queue (the "
                             "transport's high_water_mark bounds its pipes)")
        return self._declare(name, POINT_TO_POINT)

    def publish_subscribe(self, name: str) -> str:
        """A publish-subscribe channel ``name`` (PUB/SUB): every subscription
        (a consumer's ``subscription=``) gets a copy of each message."""
        return self._declare(name, PUBLISH_SUBSCRIBE)

    def channel_kind(self, name: str) -> str | None:
        ch = self._channels.get(name) if isinstance(name, str) else None
        return None if ch is None else ch.kind

    def _names(self) -> str:
        return ", ".join(map(repr, self._channels)) or "(none declared yet)"

    def _channel(self, name: object) -> _Channel:
        ch = self._channels.get(name) if isinstance(name, str) else None
        if ch is None:
            raise ParamError("channel", name, f"a channel declared on the brokerless "
                                              f"transport: {self._names()}")
        return ch

    # ==================================================================
    # the producer's side
    # ==================================================================
    def open(self, node: Node, channel: str) -> None:
        """Connect ``node``'s socket on ``channel`` now (ZeroMQ's ``zmq_connect``
        at start-up), so its first messages need not wait for the handshakes.
        A publish opens the socket itself if it is not open yet."""
        if not isinstance(node, Node):
            raise ParamError("node", node, "the Node that will publish")
        self._socket(node, self._channel(channel))

    def _socket(self, node: Node, ch: _Channel) -> _Socket:
        key = (node.name, ch.name)
        sock = self._sockets.get(key)
        if sock is None:
            sock = self._sockets[key] = _Socket()
            for group in ch.groups.values():
                for peer in group.peers:
                    self._add_pipe(sock, node, peer, group)
        return sock

    def _add_pipe(self, sock: _Socket, sender: Node, peer: Consumer, group: _Group) -> None:
        pipe = _Pipe(sender, peer, group)
        sock.pipes.setdefault(group.name, []).append(pipe)
        sock.rr.setdefault(group.name, 0)
        self._pipes_to.setdefault(peer.name, []).append(pipe)
        # the first handshake goes out at the end of this instant (time 0
        # before the run), after consumers made before it have bound their
        # endpoints: two zero-second hops put it behind their start-up
        token = pipe.token
        env = self.env
        env.timeout(0).callbacks.append(
            lambda _e: env.timeout(0).callbacks.append(
                lambda _e2: self._attempt(pipe, token)))

    def publish(self, node: Node, channel: str, body: Any = None, *, routing_key: str = "",
                kind: str = EVENT, key: Any = None, persistent: bool = True,
                confirm: bool = False, correlation_id: int | None = None,
                reply_to: str | None = None, headers: dict | None = None,
                size: int | None = None, format: Format | None = None,
                trace_id: int | None = None) -> Event | None:
        """Send one message from ``node`` on ``channel``: one copy to one
        consumer (point-to-point) or to each subscription (publish-subscribe).

        Arguments are taken as checked (:func:`simcomm.messaging.publish`
        checks them).  ``persistent`` changes nothing (nothing is stored);
        the routing key is recorded, not matched.  With ``confirm`` returns
        an event that has already fired with ``"ack"`` (every copy is in a
        pipe) or ``"nack"`` (one was dropped).
        """
        ch = self._channel(channel)
        world = self.world
        now = self.env.now
        mid = world.message_count = world.message_count + 1
        if size is None and format is not None and body is not None:
            size = format.size(body)
        envelope = Envelope(mid, kind, node.name, channel, routing_key, body, now, key=key,
                            persistent=persistent, correlation_id=correlation_id,
                            reply_to=reply_to, headers=headers, trace_id=trace_id,
                            format=format, size=size)
        self._n_published += 1
        mq = self._mq
        if mq is not None:
            mq((now, "publish", mid, channel, node.name, routing_key))
            if key is not None:  # a keyed message: its place in the key's produced order
                world.trace.records.append((now, "produce", mid, channel, -1, -1, key,
                                            node.name, ""))
        sock = self._socket(node, ch)
        copies = 0
        refused = False
        first = True
        for group in ch.groups.values():
            pipe, why = self._choose(sock, group)
            if pipe is None:
                if why:
                    copies += 1
                    refused = True
                    self._n_refused += 1
                    self._drop(mid, group.name, node.name, why)
                continue
            copies += 1
            msg_id = mid if first else world.next_message_id()
            first = False
            msg = Message(msg_id, kind, node.name, pipe.peer.name, now,
                          Delivery(envelope, group.name), key=key, trace_id=trace_id,
                          format=format, size=size)
            self._n_copies += 1
            if mq is not None:
                mq((now, "pipe", mid, group.name, node.name, pipe.peer.name))
            self._put(pipe, msg)
        if not copies:
            refused = True
            self._n_refused += 1
            self._drop(mid, channel, node.name, "unroutable")
        if not confirm:
            return None
        outcome = "nack" if refused else "ack"
        if mq is not None:
            mq((now, "confirm", mid, channel, node.name, outcome))
        done = Event(self.env)
        done.succeed(outcome)
        return done

    def _choose(self, sock: _Socket, group: _Group) -> tuple[_Pipe | None, str]:
        """The pipe the group's copy goes into, round-robin over those with
        room; or None and the drop reason ("" when the group has no pipe
        now: a non-durable subscriber that is away gets no copy)."""
        pipes = sock.pipes.get(group.name)
        if not pipes:
            return None, ""
        n = len(pipes)
        start = sock.rr[group.name]
        eligible = False
        only_connected = self.immediate or not group.durable
        for i in range(n):
            pipe = pipes[(start + i) % n]
            if only_connected and pipe.state != _CONNECTED:
                continue
            eligible = True
            if self._room(pipe):
                sock.rr[group.name] = (start + i + 1) % n
                return pipe, ""
        if eligible:
            return None, "hwm"
        return None, ("peer_down" if group.durable else "")

    def _room(self, pipe: _Pipe) -> bool:
        hwm = self.high_water_mark
        if not hwm:
            return True
        if len(pipe.buffer) + pipe.in_flight() >= hwm:
            return False
        return pipe.state != _CONNECTED or len(pipe.peer.queue) < hwm

    def _drop(self, mid: int, channel: str, node: str, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        if self._mq is not None:
            self._mq((self.env.now, "drop", mid, channel, node, reason))

    # -- the pipe --------------------------------------------------------
    def _put(self, pipe: _Pipe, msg: Message) -> None:
        if pipe.state == _CONNECTED and not pipe.blocked and not pipe.buffer:
            if self._transmit(pipe, msg):
                return
        else:
            pipe.buffer.append(msg)

    def _flush(self, pipe: _Pipe) -> None:
        buf = pipe.buffer
        while buf and pipe.state == _CONNECTED and not pipe.blocked:
            msg = buf.popleft()
            if not self._transmit(pipe, msg):
                return

    def _transmit(self, pipe: _Pipe, msg: Message) -> bool:
        """Put ``msg`` on the wire; False if TCP holds it back (it is then at
        the head of the buffer, retried after ``reconnect_interval``)."""
        net = self._network
        sender = pipe.sender
        peer = pipe.peer
        if not net.can_reach(sender.name, peer.name):
            pipe.buffer.appendleft(msg)
            self._block(pipe)
            return False
        msg.body.channel = pipe.link
        if not peer.up:
            # the connection is dead and the sender does not know yet: the
            # peer's host will answer this copy with a reset
            self._doom(pipe, msg)
        lost = net.dropped.get("loss", 0)
        net.send(msg)
        self._n_sent += 1
        if net.dropped.get("loss", 0) != lost:
            # lost on the way: TCP sends it again (a new packet), before the rest
            pipe.buffer.appendleft(self._again(msg))
            self._n_retransmitted += 1
            self._block(pipe)
            return False
        pipe.wire.append(msg)
        return True

    def _again(self, msg: Message) -> Message:
        return Message(self.world.next_message_id(), msg.kind, msg.source, msg.dest,
                       msg.created, msg.body, key=msg.key, trace_id=msg.trace_id,
                       format=msg.format, size=msg.size)

    def _block(self, pipe: _Pipe) -> None:
        if pipe.blocked:
            return
        pipe.blocked = True
        token = pipe.token

        def retry(_ev: Event) -> None:
            pipe.blocked = False
            if pipe.token != token:
                return  # the connection changed meanwhile; its own timer runs
            if not pipe.sender.up:
                self._sender_down(pipe)
                return
            self._flush(pipe)

        self.env.timeout(self.reconnect_interval).callbacks.append(retry)

    # -- connecting --------------------------------------------------------
    def _attempt(self, pipe: _Pipe, token: int) -> None:
        """Send a handshake; while none is answered, send another every
        reconnect interval.  An earlier one is not given up (a slow answer
        still connects, as a TCP connect outlives its retransmissions)."""
        if pipe.token != token:
            return
        sender = pipe.sender
        if not sender.up:
            self._sender_down(pipe)
            return
        pipe.state = _CONNECTING
        self._n_attempts += 1
        ev = sender.request(pipe.peer.name, (_CONNECT, pipe.group.name), kind=CONTROL)
        rid: int = ev.request_id  # type: ignore[attr-defined]
        ev.callbacks.append(lambda e: self._answered(pipe, token, rid, e.value))
        self.env.timeout(self.reconnect_interval).callbacks.append(
            lambda _e: self._attempt(pipe, token) if pipe.state == _CONNECTING else None)

    def _answered(self, pipe: _Pipe, token: int, rid: int, reply: Message) -> None:
        sender = pipe.sender
        if pipe.token != token or pipe.state != _CONNECTING:
            if reply.status == "ok":
                # a connection the pipe no longer needs: the consumer's host
                # will reset it with the others; that reset is expected
                sender.expect(rid)
            return
        if reply.status != "ok":
            self._wait(pipe)
            return
        pipe.token += 1
        token = pipe.token
        pipe.state = _CONNECTED
        pipe.rid = rid
        pipe.conn = reply.body
        pipe.link = _Link(reply.body)
        self._n_connections += 1
        if pipe.doomed:  # copies of an older connection that arrived after all
            for m in pipe.doomed:
                if m.delivered is not None:
                    sender.forget(m.id)
            pipe.doomed = [m for m in pipe.doomed if m.delivered is None]
        # the connection lives until the consumer's host resets it
        sender.expect(rid).callbacks.append(lambda e: self._closed(pipe, token))
        self._flush(pipe)

    def _wait(self, pipe: _Pipe) -> None:
        pipe.token += 1
        token = pipe.token
        pipe.state = _WAITING
        pipe.blocked = False
        self.env.timeout(self.reconnect_interval).callbacks.append(
            lambda _e: self._attempt(pipe, token))

    def _closed(self, pipe: _Pipe, token: int) -> None:
        """The consumer's host reset the connection (the consumer crashed or
        was restarted): every copy on the wire has arrived or will bounce."""
        if pipe.token != token:
            return
        pipe.wire.clear()
        if not pipe.group.durable:
            sender = pipe.sender.name
            for msg in pipe.buffer:
                self._drop(msg.body.envelope.message_id, pipe.group.name, sender,
                           "subscriber_gone")
            pipe.buffer.clear()
        self._wait(pipe)

    def _doom(self, pipe: _Pipe, msg: Message) -> None:
        """``msg`` is on its way to a consumer that died: when it reaches the
        dead host, the host's reset comes back to the sender (the network
        routes a refusal to ``reply_to``), which then knows it is lost."""
        msg.reply_to = pipe.sender.name
        pipe.doomed.append(msg)
        pipe.sender.expect(msg.id).callbacks.append(
            lambda e: self._bounced(pipe, msg))

    def _bounced(self, pipe: _Pipe, msg: Message) -> None:
        if msg in pipe.doomed:
            pipe.doomed.remove(msg)
        self._drop(msg.body.envelope.message_id, pipe.group.name, pipe.sender.name,
                   "peer_down")
        if pipe.state == _CONNECTED and msg.body.channel is pipe.link:
            self._closed(pipe, pipe.token)  # the reset told the sender first

    def _sender_down(self, pipe: _Pipe) -> None:
        """The sender crashed: what waited in the pipe died with it."""
        pipe.token += 1
        pipe.state = _WAITING
        pipe.blocked = False
        pipe.wire.clear()
        sender = pipe.sender.name
        for msg in pipe.buffer:
            self._drop(msg.body.envelope.message_id, pipe.group.name, sender,
                       "producer_crash")
        pipe.buffer.clear()
        # reconnect once the sender is back (its next publish would need it)
        token = pipe.token

        def later(_ev: Event) -> None:
            if pipe.token == token:
                if pipe.sender.up:
                    self._attempt(pipe, token)
                else:
                    self.env.timeout(self.reconnect_interval).callbacks.append(later)

        self.env.timeout(self.reconnect_interval).callbacks.append(later)

    # ==================================================================
    # the consumer's side (Transport): the endpoint in its process
    # ==================================================================
    def resolve_consumer(self, consumer: str, channel: str, *, subscription: str | None,
                         durable: bool) -> str:
        ch = self._channels.get(channel) if isinstance(channel, str) else None
        if ch is None:
            raise ParamError("queue", channel, f"a channel declared on the brokerless "
                                               f"transport: {self._names()}")
        if ch.kind == POINT_TO_POINT:
            if subscription is not None:
                raise ParamError("subscription", subscription,
                                 f"None: {channel!r} is a point-to-point channel")
            return channel
        if not isinstance(subscription, str) or not subscription:
            raise ParamError("subscription", subscription,
                             f"a subscription name: {channel!r} is a publish-subscribe "
                             f"channel, each subscription gets its own copy")
        name = f"{channel}.{subscription}"
        if name in self._channels:
            raise ParamError("subscription", subscription,
                             f"a name whose {name!r} is not a channel's name")
        group = ch.groups.get(name)
        if group is not None and not group.durable:
            raise ParamError("subscription", subscription,
                             f"a name not used by another consumer's non-durable "
                             f"subscription ({group.peers[0].name!r} reads {name!r}; a "
                             f"non-durable subscription has one consumer)")
        if group is not None and not durable:
            raise ParamError("durable", durable, f"True: {name!r} is a durable subscription")
        return name

    def attach(self, consumer: Consumer) -> None:
        """Make ``consumer`` an endpoint of its channel: every socket on the
        channel gets a pipe to it.  It reads with auto-ack semantics (there
        is nothing to acknowledge: a message is done for its sender once
        sent), and ``prefetch`` has no meaning here."""
        ch = self._channels[consumer.channel]
        name = consumer.queue_name
        group = ch.groups.get(name)
        if group is None:
            durable = True if ch.kind == POINT_TO_POINT else consumer.durable
            group = ch.groups[name] = _Group(name, durable)
            self._groups[name] = group
        group.peers.append(consumer)
        consumer.auto_ack = True
        for (sender_name, cname), sock in self._sockets.items():
            if cname == ch.name:
                self._add_pipe(sock, self.world.nodes[sender_name], consumer, group)

    def connect(self, consumer: Consumer, delay: float = 0.0) -> None:
        """The consumer binds its endpoint (a new connection number); the
        senders' pipes find it at their next attempt."""
        consumer.conn += 1
        consumer.connected = False
        conn = consumer.conn

        def bind() -> None:
            if consumer.conn == conn and consumer.up:
                consumer.connected = True

        if delay > 0:
            self.env.timeout(delay).callbacks.append(lambda _e: bind())
        else:
            bind()

    def settle(self, consumer: Consumer, delivery: Delivery, ack: bool,
               requeue: bool = False, multiple: bool = False) -> None:
        """Nothing to do: ZeroMQ has no acknowledgements (and a consumer of
        this transport reads with auto-ack, so it does not call this)."""

    def disconnect(self, consumer: Consumer) -> None:
        """The consumer crashed (or a watchdog restarted it after a hang): its
        host resets every connection it had, and copies still on their way
        to a dead process will bounce."""
        consumer.connected = False
        for req in self._accepted.pop(consumer.name, ()):
            consumer.reply(req, None, "reset")
        if not consumer.up:
            for pipe in self._pipes_to.get(consumer.name, ()):
                for msg in pipe.wire:
                    if msg.delivered is None and msg.reply_to is None:
                        self._doom(pipe, msg)
                pipe.wire.clear()

    def control(self, consumer: Consumer, msg: Message) -> None:
        """A sender's handshake: answered ``ok`` with the connection number
        if the consumer's endpoint is bound to that channel, else refused."""
        body = msg.body
        if not (isinstance(body, tuple) and len(body) == 2 and body[0] == _CONNECT):
            self.world.trace.event(self.env.now, consumer.name, "unhandled",
                                   f"control message {msg.id}")
            return
        if consumer.connected and body[1] == consumer.queue_name:
            self._accepted.setdefault(consumer.name, []).append(msg)
            consumer.reply(msg, consumer.conn, "ok")
        else:
            consumer.reply(msg, None, "refused")

    # ==================================================================
    # state
    # ==================================================================
    def contents(self) -> list[tuple[str, int, str, str]]:
        """Every copy waiting in a pipe at the sender: ``(channel, message_id,
        sender, consumer)``, pipes in the order they were made."""
        out = []
        for sock in self._sockets.values():
            for pipes in sock.pipes.values():
                for pipe in pipes:
                    for msg in pipe.buffer:
                        out.append((pipe.group.name, msg.body.envelope.message_id,
                                    pipe.sender.name, pipe.peer.name))
        return out

    def pipes(self) -> list[tuple[str, str, str, str, int, int]]:
        """Every pipe: ``(sender, consumer, channel, state, buffered, on_wire)``."""
        return [(p.sender.name, p.peer.name, p.group.name, p.state, len(p.buffer),
                 p.in_flight())
                for sock in self._sockets.values() for pipes in sock.pipes.values()
                for p in pipes]

    @property
    def stats(self) -> dict[str, Any]:
        """Counters kept with or without a trace: ``published`` messages,
        ``copies`` put in pipes, ``sent`` (transmissions, ``retransmitted``
        included), ``buffered`` now at the senders, handshake ``attempts``
        and ``connections`` made, and ``dropped`` by reason (``refused``: the
        copies among them dropped before they entered a pipe)."""
        return {"published": self._n_published, "copies": self._n_copies,
                "sent": self._n_sent, "retransmitted": self._n_retransmitted,
                "buffered": sum(len(p.buffer) for sock in self._sockets.values()
                                for pipes in sock.pipes.values() for p in pipes),
                "attempts": self._n_attempts, "connections": self._n_connections,
                "dropped": dict(self._dropped), "refused": self._n_refused}
