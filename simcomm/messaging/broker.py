"""A message broker node with RabbitMQ's semantics (REFERENCE §4).

The broker is an ordinary service instance (:class:`~simcomm.engine.Instance`),
so it can crash, hang, slow down and be cut off by a partition like any
other node, and ``faults.install``, ``busy_seconds`` and
``Result.utilisation`` / ``bottleneck`` see it.  Everything that reaches it
or leaves it is a network :class:`~simcomm.engine.Message`: publishes (the
application's kind, body an :class:`Envelope`), deliveries (body a
:class:`Delivery`) and the protocol traffic (kind ``control``: consume,
ack, nack, close, and the publisher confirms as replies).

**Routing.**  A publish names an exchange and a routing key; the exchange
(direct, fanout, topic, or the default one that routes to the queue named
by the key -- :mod:`simcomm.messaging.exchanges`) gives each matching queue
one copy.  A publish that matches nothing is dropped (``unroutable``), as
RabbitMQ drops it without the ``mandatory`` flag.  Each publish costs
``1 / routing_rate`` s of the broker's CPU on one of its ``workers``
(``routing_rate=None``: free, routed the instant it arrives), first come
first served, so a busy broker is a bottleneck that shows in the
utilisation tables.  (A routing worker is a timer per publish, not a
process: the broker's hot path takes one event per publish.)

**Queues and consumers** (:mod:`simcomm.messaging.queues`): round-robin
dispatch over the consumers with room in their prefetch window (0 =
unlimited, 1 = fair dispatch); manual ack (``multiple=True`` acks every
outstanding tag up to the one given, on that channel) or auto-ack (the
broker counts a message done when it sends it -- lost if the consumer dies
first; one still on its way to a consumer that died reaches a dead host,
whose reset tells the broker, which records it lost, ``consumer_crash``);
nack / reject with requeue puts the copy back at its original
position and the next delivery carries ``redelivered=True``, without
requeue it is dead-lettered (if the queue has a dead-letter exchange) or
dropped.  A consumer's unacked deliveries are requeued when its connection
closes (it crashed: its OS closes the socket and the broker sees a
``close``).  A queue's ``delivery_limit`` counts the returns of each copy
(nack with requeue, consumer gone -- a quorum queue's ``x-delivery-count``);
a copy returned more times than the limit is dead-lettered or dropped
instead (RabbitMQ's ``rabbit_fifo``: ``DeliveryCount > DeliveryLimit``).
A length limit counts ready copies only and overflows by ``drop-head``
(oldest dropped or dead-lettered) or ``reject-publish`` (the new copy
refused; a publisher using confirms gets a nack).

**Dead-lettering** republishes the copy to the queue's dead-letter exchange
with its original routing key (or ``dead_letter_routing_key``), recording
why in an ``x-death`` header as RabbitMQ does; a message that would cycle
back to a queue it was dead-lettered from, with no rejection on the way,
is dropped (RabbitMQ's cycle rule).

**Crash.**  Transient messages and non-durable queues are lost (``drop``,
``broker_crash``); exclusive queues are deleted; persistent messages on
durable queues survive, and those that were delivered but unacked come
back as ready with ``redelivered=True`` (``requeue``, ``broker_restart``,
recorded at the crash).  Publishes not yet routed are lost too (a
publisher waiting for a confirm gets ``reset``).  Every consumer's
connection is closed -- the broker's OS resets them: a ``control`` close to
each consumer -- and the consumers try to reconnect every
``reconnect_interval`` s (default 5 s, Spring AMQP's recovery interval and
the RabbitMQ Java client's network recovery interval) until it is back.
Declarations (exchanges, queues, bindings) are configuration: they
survive, as clients re-declare their topology when they reconnect.
**Hang**: the broker stalls -- publishes, acks and subscriptions wait,
nothing is delivered -- and carries on where it stopped when the hang
ends (a hang longer than the heartbeat timeout makes its consumers give
it up and reconnect, see below).  **Slowdown** stretches the routing cost.

**Heartbeats and partitions** (AMQP 0-9-1 heartbeats, RabbitMQ's default
timeout 60 s, ``heartbeat=None`` turns them off): each side sends a
heartbeat when it has sent nothing for half the timeout, and gives the
other up after a silence of the whole timeout.  So a consumer cut off by a
partition loses its channel on the broker (its unacked deliveries are
requeued, ``consumer_gone``) and tries to reconnect every
``reconnect_interval`` s until the partition heals; a hung consumer loses
its channel the same way.  The network drops what a partition cuts where
TCP would retransmit it: a delivery or ack lost in a cut shorter than the
timeout stays unacked until the channel closes for another reason.

**Publisher confirms**: a publish with ``confirm`` is sent as a request;
the broker answers once it is routed -- ``ok`` (a confirm, ``basic.ack``,
unroutable messages included, as RabbitMQ confirms them too) or
``rejected`` (``basic.nack``: a queue refused it by ``reject-publish``; the
other queues keep their copies).  A crashed broker's ``reset`` / ``refused``
means no confirm.

**Records.**  ``trace.mq`` and ``trace.queues`` (kept only with
``trace.enabled``; the events and their details are listed in
:mod:`simcomm.engine.trace` and :data:`DROP_REASONS`); the timeline
(``trace.events``) gets ``subscribe`` / ``unsubscribe`` /
``connection_lost`` / ``heartbeat_timeout`` / ``failover``; counters for the summary
in :attr:`Broker.stats` whatever the trace.  :meth:`Broker.contents` lists
every copy the broker holds, ready or unacked, for the ledger.

**Simplifications** (said, not hidden): one AMQP channel per consumer per
queue; acks for an unknown delivery tag are ignored (AMQP would close the
channel); deliveries are not batched; disk writes take no time; classic
queues' requeue-to-original-position is used for every queue (RabbitMQ's
quorum queues put returned messages near the head instead).  A broker
that is a member of a :class:`~simcomm.messaging.ReplicatedBroker` sends
its clients to the current leader (:attr:`Broker.address`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import as_real, is_flag, is_whole
from simcomm.engine.messages import CONTROL, EVENT, REPLY, Message
from simcomm.engine.nodes import Instance, Node
from simcomm.errors import ParamError
from simcomm.messaging.envelope import Delivery, Envelope
from simcomm.messaging.exchanges import DEFAULT_EXCHANGE, Exchange, default_exchange
from simcomm.messaging.queues import OVERFLOW, Channel, Queue
from simcomm.messaging.topic import check_key
from simcomm.messaging.transport import POINT_TO_POINT, PUBLISH_SUBSCRIBE

if TYPE_CHECKING:
    from simcomm.engine.formats import Format
    from simcomm.engine.nodes import Node
    from simcomm.engine.world import World
    from simcomm.messaging.consumer import Consumer

__all__ = ["DROP_REASONS", "HEARTBEAT", "RECONNECT_INTERVAL", "Broker"]

#: seconds between a consumer's attempts to reconnect (Spring AMQP's default
#: recovery interval; the RabbitMQ Java client's network recovery interval)
RECONNECT_INTERVAL = 5.0

#: AMQP heartbeat timeout in seconds (RabbitMQ's server default): a peer silent
#: this long is considered gone; heartbeats go out after half of it in silence
HEARTBEAT = 60.0

#: why the broker (or a consumer) drops a copy, as ``trace.mq`` records it
DROP_REASONS = ("unroutable", "queue_full", "maxlen", "delivery_limit", "rejected",
                "broker_crash", "subscriber_gone", "consumer_crash")

# control operations (the first item of a control message's body)
_ACK, _NACK, _CONSUME, _CLOSE, _CANCEL = "ack", "nack", "consume", "close", "cancel"
_HEARTBEAT = "heartbeat"


def _interval(field: str, value: object, allowed: str = "seconds > 0 (finite)") -> float:
    seconds = as_real(value)
    if seconds is None or not 0 < seconds < math.inf:
        raise ParamError(field, value, allowed)
    return seconds


class Broker(Instance):
    """A RabbitMQ-like broker node and the client library that talks to it.

    ``routing_rate`` is how many publishes per second each of its
    ``workers`` can route (None: routing is free); ``reconnect_interval``
    how long its clients wait between attempts to reconnect; ``heartbeat``
    the AMQP heartbeat timeout (None: no heartbeats).  See the module
    docstring for the rules it follows.

    Declare the topology before the run (each call checks its arguments
    and raises :class:`~simcomm.errors.ParamError` naming the field):
    :meth:`declare_exchange`, :meth:`declare_queue`, :meth:`bind`, or the
    channel helpers :meth:`point_to_point` and :meth:`publish_subscribe`.
    """

    #: one AMQP connection per peer: the network keeps its messages in order
    fifo = True

    def __init__(self, world: World, name: str = "broker", *,
                 routing_rate: float | None = None, workers: int = 1,
                 reconnect_interval: float = RECONNECT_INTERVAL,
                 heartbeat: float | None = HEARTBEAT) -> None:
        cost = None
        if routing_rate is not None:
            rate = as_real(routing_rate)
            if rate is None or not rate > 0 or math.isnan(rate):
                raise ParamError("routing_rate", routing_rate,
                                 "publishes per second > 0, or None for free routing")
            cost = None if math.isinf(rate) else 1.0 / rate
        interval = _interval("reconnect_interval", reconnect_interval)
        beat = None if heartbeat is None else _interval(
            "heartbeat", heartbeat, "seconds > 0 (finite), or None for no heartbeats")
        # read by _start_workers, which Instance.__init__ calls
        self._cost = cost
        self._epoch = 0  # +1 at every (re)start: a routing timer of a dead process is void
        self._free = 0  # routing workers free now
        self._job = 0  # routing jobs started (their keys in _current)
        self._parked: list[int] = []  # jobs routed during a hang, waiting for its end
        super().__init__(world, name, workers=workers)
        self.routing_rate = None if cost is None else float(routing_rate)  # type: ignore[arg-type]
        self.reconnect_interval = interval
        self.heartbeat = beat
        self.exchanges: dict[str, Exchange] = {DEFAULT_EXCHANGE: default_exchange()}
        self.queues: dict[str, Queue] = {}
        self._channels: dict[str, list[Channel]] = {}  # consumer name -> its channels
        self._closed: dict[str, int] = {}  # consumer name -> last connection closed
        self._held: list[Message] = []  # what arrived during a hang
        self._owners: dict[str, str] = {}  # non-durable subscription queue -> its consumer
        trace = world.trace
        self._mq = trace.mq.append if trace.enabled else None
        self._qlog = trace.queues.append if trace.enabled else None
        # counters (Broker.stats)
        self._n_published = 0
        self._n_routed = 0
        self._n_unroutable = 0
        self._n_delivered = 0
        self._n_redelivered = 0
        self._n_consumed = 0
        self._n_nacked = 0
        self._n_requeued = 0
        self._n_dead_lettered = 0
        self._n_confirmed = 0
        self._n_rejected = 0
        self._n_sent = 0  # publishes its clients sent (Result's summary with trace=False)
        self._n_auto_acked = 0
        self._n_unrouted_lost = 0
        self._dropped: dict[str, int] = {}
        self._clients: set[str] = set()  # consumers whose heartbeat timer runs
        #: the ReplicatedBroker this broker is a member of, if any
        self.cluster: Any = None
        if beat is not None:
            self.env.process(self._heartbeats())

    @property
    def address(self) -> str:
        """Where clients send: this node, or its cluster's leader now."""
        return self.name if self.cluster is None else self.cluster.leader.name

    # ==================================================================
    # topology
    # ==================================================================
    def declare_exchange(self, name: str, type: str = "direct") -> Exchange:
        """Declare an exchange (``direct``, ``fanout`` or ``topic``).

        Declaring an existing one again with the same type returns it; with
        another type it is refused, as AMQP's ``exchange.declare`` fails
        with PRECONDITION_FAILED.
        """
        if not isinstance(name, str) or not name:
            raise ParamError("name", name, "an exchange name (a non-empty string; \"\" is "
                                           "the default exchange, which always exists)")
        old = self.exchanges.get(name)
        if old is not None:
            if old.type != type:
                raise ParamError("type", type, f"{old.type!r}: exchange {name!r} exists "
                                               f"with that type")
            return old
        ex = Exchange(name, type)
        self.exchanges[name] = ex
        return ex

    def declare_queue(self, name: str, *, durable: bool = True, exclusive: bool = False,
                      max_length: int | None = None, overflow: str = "drop-head",
                      dead_letter_exchange: str | None = None,
                      dead_letter_routing_key: str | None = None,
                      delivery_limit: int | None = None) -> Queue:
        """Declare a queue; it is bound to the default exchange by its name.

        ``durable`` -- survives a broker crash with its persistent messages;
        ``exclusive`` -- owned by one consumer's connection and deleted when
        it closes (exclusive queues are never durable);
        ``max_length`` -- ready copies it holds at most (None: unbounded),
        with ``overflow`` ``"drop-head"`` or ``"reject-publish"``;
        ``dead_letter_exchange`` / ``dead_letter_routing_key`` -- where
        rejected, overflowing and over-delivered copies go;
        ``delivery_limit`` -- returns a copy may have before it is
        dead-lettered or dropped (None: no limit; RabbitMQ's quorum queues
        default to 20).  Declaring it again with the same arguments returns
        it; with others it is refused (AMQP: PRECONDITION_FAILED).
        """
        if not isinstance(name, str) or not name:
            raise ParamError("name", name, "a queue name (a non-empty string)")
        check_key("name", name)
        for field, flag in (("durable", durable), ("exclusive", exclusive)):
            if not is_flag(flag):
                raise ParamError(field, flag, "True or False")
        durable, exclusive = bool(durable), bool(exclusive)
        if exclusive and durable:
            raise ParamError("durable", durable, "False for an exclusive queue (it dies "
                                                 "with its consumer's connection)")
        if max_length is not None:
            if not is_whole(max_length) or max_length < 0:
                raise ParamError("max_length", max_length, "a whole number >= 0, or None")
            max_length = int(max_length)
        if overflow not in OVERFLOW:
            raise ParamError("overflow", overflow, " or ".join(map(repr, OVERFLOW)))
        if dead_letter_exchange is not None and not isinstance(dead_letter_exchange, str):
            raise ParamError("dead_letter_exchange", dead_letter_exchange,
                             "an exchange name (\"\" = the default exchange), or None")
        if dead_letter_routing_key is not None:
            check_key("dead_letter_routing_key", dead_letter_routing_key)
            if dead_letter_exchange is None:
                raise ParamError("dead_letter_routing_key", dead_letter_routing_key,
                                 "None unless dead_letter_exchange is set")
        if delivery_limit is not None:
            if not is_whole(delivery_limit) or delivery_limit < 0:
                raise ParamError("delivery_limit", delivery_limit,
                                 "a whole number >= 0, or None for no limit")
            delivery_limit = int(delivery_limit)
        args = dict(durable=durable, exclusive=exclusive, max_length=max_length,
                    overflow=overflow, dead_letter_exchange=dead_letter_exchange,
                    dead_letter_routing_key=dead_letter_routing_key,
                    delivery_limit=delivery_limit)
        old = self.queues.get(name)
        if old is not None:
            for field, value in args.items():
                if getattr(old, field) != value:
                    raise ParamError(field, value, f"{getattr(old, field)!r}: queue {name!r} "
                                                   f"exists with that setting")
            return old
        return self._add_queue(name, **args)  # type: ignore[arg-type]

    def _add_queue(self, name: str, **args: Any) -> Queue:
        q = Queue(name, **args)
        self.queues[name] = q
        self.exchanges[DEFAULT_EXCHANGE].bind(name, name)
        return q

    def bind(self, queue: str, exchange: str, key: str = "") -> None:
        """Bind ``queue`` to ``exchange`` with binding ``key`` (AMQP ``queue.bind``)."""
        if queue not in self.queues:
            raise ParamError("queue", queue, "a declared queue: " + self._names(self.queues))
        if exchange == DEFAULT_EXCHANGE:
            raise ParamError("exchange", exchange, "a declared exchange other than the "
                                                   "default one (RabbitMQ refuses bindings "
                                                   "to it)")
        ex = self.exchanges.get(exchange)
        if ex is None:
            raise ParamError("exchange", exchange,
                             "a declared exchange: " + self._names(self.exchanges))
        ex.bind(queue, check_key("key", key))

    def unbind(self, queue: str, exchange: str, key: str = "") -> None:
        """Remove a binding (unknown ones are ignored, as AMQP's ``queue.unbind``)."""
        ex = self.exchanges.get(exchange)
        if ex is not None and exchange != DEFAULT_EXCHANGE:
            ex.unbind(queue, key)

    @staticmethod
    def _names(table: dict[str, Any]) -> str:
        names = [repr(n) for n in table if n]
        return ", ".join(names) if names else "(none declared yet)"

    # -- channels (the Transport interface) -----------------------------
    def point_to_point(self, name: str, **queue_options: Any) -> str:
        """A point-to-point channel: a queue ``name`` (durable unless told
        otherwise) reached through the default exchange.  Competing
        consumers on it share the messages; commands travel this way."""
        if name in self.exchanges:
            raise ParamError("name", name, "a name not already used by an exchange")
        self.declare_queue(name, **queue_options)
        return name

    def publish_subscribe(self, name: str) -> str:
        """A publish-subscribe channel: a fanout exchange ``name``.  Each
        subscription (a consumer's ``subscription=``) gets its own queue
        ``<name>.<subscription>`` bound to it, so each gets a copy."""
        if name in self.queues:
            raise ParamError("name", name, "a name not already used by a queue")
        self.declare_exchange(name, "fanout")
        return name

    def channel_kind(self, name: str) -> str | None:
        if name and name in self.exchanges:
            return PUBLISH_SUBSCRIBE
        if name in self.queues:
            return POINT_TO_POINT
        return None

    # ==================================================================
    # the producer's side
    # ==================================================================
    def resolve(self, channel: str, routing_key: str = "") -> tuple[str, str]:
        """``(exchange, routing_key)`` a publish on ``channel`` goes to.

        An exchange name publishes there with ``routing_key``; a queue name
        (a point-to-point channel) publishes to the default exchange with
        the queue's name as the key; ``""`` is the default exchange itself.
        """
        if not isinstance(channel, str):
            raise ParamError("channel", channel, "a channel, exchange or queue name")
        if channel == DEFAULT_EXCHANGE or channel in self.exchanges:
            return channel, routing_key
        if channel in self.queues:
            if routing_key not in ("", channel):
                raise ParamError("routing_key", routing_key,
                                 f"'' when publishing to the point-to-point channel "
                                 f"{channel!r} (the queue's name is the key)")
            return DEFAULT_EXCHANGE, channel
        raise ParamError("channel", channel, "a declared exchange or queue on broker "
                         f"{self.name!r}: {self._names(self.exchanges)}; queues "
                         f"{self._names(self.queues)}")

    def publish(self, node: Node, channel: str, body: Any = None, *, routing_key: str = "",
                kind: str = EVENT, key: Any = None, persistent: bool = True,
                confirm: bool = False, correlation_id: int | None = None,
                reply_to: str | None = None, headers: dict | None = None,
                size: int | None = None, format: Format | None = None,
                trace_id: int | None = None) -> Event | None:
        """Publish from ``node`` (the client library in the node's process).

        Arguments are taken as checked (:func:`simcomm.messaging.publish`
        checks them); see :class:`~simcomm.messaging.transport.Transport`.
        """
        exchange, rk = self.resolve(channel, routing_key)
        world = self.world
        now = self.env.now
        mid = world.message_count = world.message_count + 1
        if size is None and format is not None and body is not None:
            size = format.size(body)
        envelope = Envelope(mid, kind, node.name, exchange, rk, body, now, key=key,
                            persistent=persistent, correlation_id=correlation_id,
                            reply_to=reply_to, headers=headers, trace_id=trace_id,
                            format=format, size=size)
        self._n_sent += 1
        mq = self._mq
        if mq is not None:
            mq((now, "publish", mid, channel, node.name, rk))
            if key is not None:  # a keyed message: its place in the key's produced order
                world.trace.records.append((now, "produce", mid, channel, -1, -1, key,
                                            node.name, ""))
        msg = Message(mid, kind, node.name, self.address, now, envelope, key=key,
                      trace_id=trace_id, format=format, size=size,
                      reply_to=node.name if confirm else None)
        if not confirm:
            self._network.send(msg)
            return None
        done = Event(self.env)
        reply = node.expect(mid)
        reply.callbacks.append(lambda ev: self._confirmed(node, channel, mid, ev.value, done))
        self._network.send(msg)
        return done

    def _confirmed(self, node: Node, channel: str, mid: int, reply: Message,
                   done: Event) -> None:
        status = reply.status
        outcome = "ack" if status == "ok" else "nack" if status == "rejected" else status
        if outcome in ("ack", "nack") and self._mq is not None:
            self._mq((self.env.now, "confirm", mid, channel, node.name, outcome))
        done.succeed(outcome)

    # ==================================================================
    # the broker node: arrival and routing
    # ==================================================================
    def receive(self, msg: Message) -> None:
        # a publish of kind "reply" (an application reply) is routed like any
        # other, not taken for the answer to one of the broker's own requests
        if msg.kind != REPLY or type(msg.body) is Envelope:
            self.handle(msg)
        else:
            Node.receive(self, msg)

    def accept(self, msg: Message) -> str | None:
        # no admission control: the queues decide (length limits); a follower
        # of a replicated broker takes no client traffic
        if self.cluster is not None and self.cluster.leader is not self and (
                msg.kind != REPLY or type(msg.body) is Envelope):
            return "not_leader"
        return None

    def handle(self, msg: Message) -> None:
        if self.hung:
            self._held.append(msg)
        elif msg.kind == CONTROL:
            self._control(msg)
        else:
            self.arrivals += 1
            if self._cost is None:
                self._route(msg)
            elif self._free:
                self._begin_route(msg)
            else:
                self.queue.append(msg)  # waits for a routing worker, first come first served
                self._log_pool()

    # -- routing workers: a timer each, no process (the hot path) ------------
    def _start_workers(self) -> None:
        self._epoch += 1
        self._free = self.workers if self._cost is not None else 0
        self._procs = []

    def _begin_route(self, msg: Message) -> None:
        """A free worker spends ``1 / routing_rate`` s (times the slowdown) on ``msg``."""
        self._free -= 1
        env = self.env
        now = env.now
        self._busy_area -= now
        self.busy += 1
        job = self._job = self._job + 1
        self._current[job] = msg
        if self._record is not None:
            self._record((now, self.name, self.busy, len(self.queue)))
        epoch = self._epoch
        env.timeout(self._cost * self.slowdown).callbacks.append(  # type: ignore[operator]
            lambda _ev: self._end_route(job, msg, epoch))

    def _end_route(self, job: int, msg: Message, epoch: int) -> None:
        if epoch != self._epoch:
            return  # the broker crashed meanwhile: the publish died with it
        if self.hung:
            self._parked.append(job)  # a stalled broker routes nothing
            return
        del self._current[job]
        self._route(msg)
        self._next_route()

    def _next_route(self) -> None:
        """A worker is done: it takes the next waiting publish, or goes idle."""
        now = self.env.now
        self._busy_area += now
        self.busy -= 1
        self._free += 1
        if self.queue and not self.hung:
            self._begin_route(self.queue.popleft())
        elif self._record is not None:
            self._record((now, self.name, self.busy, len(self.queue)))

    def _route(self, msg: Message) -> None:
        envelope: Envelope = msg.body
        self._n_published += 1
        ex = self.exchanges.get(envelope.exchange)
        targets = ex.targets(envelope.routing_key) if ex is not None else ()
        ok = True
        if not targets:
            self._n_unroutable += 1
            self._drop(envelope.message_id, envelope.exchange, "unroutable")
        else:
            queues = self.queues
            for qname in targets:
                if not self._enqueue(queues[qname], Delivery(envelope, qname), ""):
                    ok = False
        if msg.reply_to is not None:
            if ok:
                self._n_confirmed += 1
            else:
                self._n_rejected += 1
            self.reply(msg, None, "ok" if ok else "rejected")

    def _enqueue(self, q: Queue, copy: Delivery, detail: str) -> bool:
        """Put a new copy on ``q`` (False: refused by ``reject-publish``)."""
        limit = q.max_length
        if limit is not None and q.overflow == "reject-publish" and q.ready >= limit:
            self._drop(copy.envelope.message_id, q.name, "queue_full")
            return False
        q.push(copy)
        self._n_routed += 1
        now = self.env.now
        if self._mq is not None:
            self._mq((now, "enqueue", copy.envelope.message_id, q.name, self.name, detail))
        if q.active:
            self._dispatch(q)
        elif self._qlog is not None:
            self._qlog((now, self.name, q.name, q.ready, q.unacked))
        if limit is not None and q.ready > limit:  # drop-head: the oldest make room
            while q.ready > limit:
                self._dead_letter(q, q.pop(), "maxlen")
            if self._qlog is not None:
                self._qlog((now, self.name, q.name, q.ready, q.unacked))
        return True

    # ==================================================================
    # dispatch and acknowledgements
    # ==================================================================
    def _dispatch(self, q: Queue) -> None:
        """Deliver ready copies round-robin to the consumers with room."""
        if self.hung or not self.up:
            return
        active = q.active
        ready = q._ready
        returned = q._returned
        env = self.env
        send = self._network.send
        mq = self._mq
        qlog = self._qlog
        name = self.name
        world = self.world
        qname = q.name
        now = env.now  # the loop takes no time
        sent = 0
        while active and (ready or returned):
            ch = active.popleft()
            copy = q.pop() if returned else ready.popleft()
            tag = ch.next_tag = ch.next_tag + 1
            copy.delivery_tag = tag
            copy.channel = ch
            ch.sent = now
            envelope = copy.envelope
            sent += 1
            if copy.redelivered:
                self._n_redelivered += 1
            mid = world.message_count = world.message_count + 1
            msg = Message(mid, envelope.kind, name, ch.consumer, now, copy,
                          key=envelope.key, trace_id=envelope.trace_id,
                          format=envelope.format, size=envelope.size)
            if ch.auto_ack:
                self._n_consumed += 1
                self._n_auto_acked += 1
                if mq is not None:
                    mq((now, "ack", envelope.message_id, qname, ch.consumer, "auto"))
                active.append(ch)
                if ch.node is not None and not ch.node.up:
                    self._await_bounce(msg)  # to a dead process: its host resets it
                else:
                    self._on_the_wire(ch.wire, msg, now)  # type: ignore[arg-type]
                send(msg)
            else:
                send(msg)
                unacked = ch.unacked
                unacked[tag] = copy
                q.unacked += 1
                if ch.prefetch == 0 or len(unacked) < ch.prefetch:
                    active.append(ch)
                else:
                    ch.active = False
            if qlog is not None:
                qlog((now, name, qname, len(ready) + len(returned), q.unacked))
        self._n_delivered += sent

    def _on_the_wire(self, wire: deque[Message], msg: Message, now: float) -> None:
        """Remember an auto-acked delivery until it has arrived (or is surely
        lost: older than the heartbeat timeout), in case its consumer dies."""
        wire.append(msg)
        horizon = now - (self.heartbeat or HEARTBEAT)
        while wire:
            head = wire[0]
            if head.delivered is None and head.created >= horizon:
                break
            wire.popleft()

    def _await_bounce(self, msg: Message) -> None:
        """``msg``, an auto-acked delivery, will reach a dead process: its
        host answers with a reset (the network refuses a message with a
        ``reply_to`` for a node that is down), and then the broker knows the
        message is lost.  One that finds the consumer restarted meanwhile is
        dropped by the consumer itself (a delivery from a closed connection)."""
        msg.reply_to = self.name
        self.expect(msg.id).callbacks.append(lambda _ev: self._bounced(msg))

    def _bounced(self, msg: Message) -> None:
        copy: Delivery = msg.body
        self._dropped["consumer_crash"] = self._dropped.get("consumer_crash", 0) + 1
        if self._mq is not None:
            self._mq((self.env.now, "drop", copy.envelope.message_id, copy.queue, msg.dest,
                      "consumer_crash"))

    def _control(self, msg: Message) -> None:
        body = msg.body
        op = body[0]
        if op == _HEARTBEAT:
            now = self.env.now
            for ch in self._channels.get(body[1], ()):
                if ch.conn == body[2]:
                    ch.heard = now
        elif op == _ACK:
            self._ack(body[1], body[2], body[3])
        elif op == _NACK:
            self._nack(body[1], body[2], body[3], body[4])
        elif op == _CONSUME:
            self._consume(msg)
        elif op == _CLOSE:
            self._close(body[1], body[2])
        elif op == _CANCEL:
            ch = body[1]
            if ch.open:
                self._close_channel(ch, "consumer_gone")

    def _settled(self, ch: Channel, tag: int, multiple: bool) -> list[Delivery]:
        """Take the copies a settle of ``tag`` (``multiple``: and every tag before it)
        covers off the channel."""
        unacked = ch.unacked
        if not multiple:
            copy = unacked.pop(tag, None)
            return [] if copy is None else [copy]
        tags = []
        for t in unacked:  # in tag order
            if t > tag:
                break
            tags.append(t)
        return [unacked.pop(t) for t in tags]

    def _ack(self, ch: Channel, tag: int, multiple: bool) -> None:
        if not ch.open:
            return  # the channel died first: its deliveries were requeued
        ch.heard = self.env.now
        copies = self._settled(ch, tag, multiple)
        if not copies:
            return
        q = ch.queue
        q.unacked -= len(copies)
        self._n_consumed += len(copies)
        now = self.env.now
        if self._mq is not None:
            for copy in copies:
                self._mq((now, "ack", copy.envelope.message_id, q.name, ch.consumer, ""))
        self._unblock(ch, q, now)

    def _unblock(self, ch: Channel, q: Queue, now: float) -> None:
        if not ch.active and ch.open:
            ch.active = True
            q.active.append(ch)
            if q.ready:
                self._dispatch(q)
                return
        if self._qlog is not None:
            self._qlog((now, self.name, q.name, q.ready, q.unacked))

    def _nack(self, ch: Channel, tag: int, multiple: bool, requeue: bool) -> None:
        if not ch.open:
            return
        ch.heard = self.env.now
        copies = self._settled(ch, tag, multiple)
        if not copies:
            return
        q = ch.queue
        q.unacked -= len(copies)
        self._n_nacked += len(copies)
        now = self.env.now
        for copy in copies:
            if self._mq is not None:
                self._mq((now, "nack", copy.envelope.message_id, q.name, ch.consumer,
                          "requeue" if requeue else "discard"))
            if requeue:
                self._return(q, copy, "nack")
            else:
                self._dead_letter(q, copy, "rejected")
        self._unblock(ch, q, now)
        if requeue:
            self._dispatch(q)

    def _return(self, q: Queue, copy: Delivery, why: str, failed: bool = True) -> None:
        """Put an unacked copy back at its original position, redelivered
        next time; a failed delivery counts against the delivery limit."""
        count = copy.count + 1 if failed else copy.count
        limit = q.delivery_limit
        if limit is not None and count > limit:
            copy.count = count
            self._dead_letter(q, copy, "delivery_limit")
            return
        q.put_back(Delivery(copy.envelope, q.name, 0, True, seq=copy.seq, count=count))
        self._n_requeued += 1
        if self._mq is not None:
            self._mq((self.env.now, "requeue", copy.envelope.message_id, q.name, self.name,
                      why))

    # ==================================================================
    # dead letters and drops
    # ==================================================================
    def _drop(self, mid: int, channel: str, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        if self._mq is not None:
            self._mq((self.env.now, "drop", mid, channel, self.name, reason))

    def _dead_letter(self, q: Queue, copy: Delivery, reason: str) -> None:
        """Send a copy leaving ``q`` for ``reason`` to its dead-letter exchange,
        or drop it if the queue has none (RabbitMQ's dead-lettering)."""
        envelope = copy.envelope
        dlx = q.dead_letter_exchange
        ex = self.exchanges.get(dlx) if dlx is not None else None
        if ex is None:
            self._drop(envelope.message_id, q.name, reason)
            return
        self._n_dead_lettered += 1
        now = self.env.now
        if self._mq is not None:
            self._mq((now, "dead_letter", envelope.message_id, q.name, self.name, reason))
        rk = q.dead_letter_routing_key
        if rk is None:
            rk = envelope.routing_key
        deaths = self._deaths(envelope, q.name, reason, now)
        headers = dict(envelope.headers or {})
        headers["x-death"] = deaths
        republished = envelope.republished(ex.name, rk, headers)
        rejected = any(d["reason"] == "rejected" for d in deaths)
        targets = [t for t in ex.targets(rk)
                   if rejected or not any(d["queue"] == t for d in deaths)]
        if not targets:  # routes nowhere it may go (or only round a cycle)
            self._drop(envelope.message_id, ex.name, "unroutable")
            return
        for t in targets:
            self._enqueue(self.queues[t], Delivery(republished, t), "dead_letter")

    @staticmethod
    def _deaths(envelope: Envelope, queue: str, reason: str, now: float) -> list[dict]:
        """RabbitMQ's ``x-death`` header after one more death: one entry per
        (queue, reason) with a count, the latest first."""
        old = list((envelope.headers or {}).get("x-death", ()))
        for i, d in enumerate(old):
            if d["queue"] == queue and d["reason"] == reason:
                entry = dict(d, count=d["count"] + 1, time=now)
                del old[i]
                return [entry, *old]
        entry = {"queue": queue, "reason": reason, "count": 1, "time": now,
                 "exchange": envelope.exchange, "routing-keys": [envelope.routing_key]}
        return [entry, *old]

    # ==================================================================
    # subscriptions and connections
    # ==================================================================
    def _consume(self, msg: Message) -> None:
        """``basic.consume`` (with the exclusive queue's declaration, for a
        non-durable subscription); answered ``ok`` once the consumer is on."""
        _, cname, conn, qname, prefetch, auto_ack, declare = msg.body
        if conn <= self._closed.get(cname, 0):
            return  # that connection is already closed: nobody waits for this
        chans = self._channels.setdefault(cname, [])
        if any(ch.conn < conn for ch in chans):
            # the consumer has moved to a new connection: its older ones are
            # closed (their close is still on its way, overtaken on the wire)
            self._close(cname, conn - 1)
        for ch in chans:
            if ch.conn == conn and ch.queue.name == qname:
                self.reply(msg, None, "ok")  # a retry of one that got through
                return
        q = self.queues.get(qname)
        if q is None and declare is not None:
            exchange, key = declare
            q = self._add_queue(qname, durable=False, exclusive=True, owner=cname)
            if exchange in self.exchanges:
                self.exchanges[exchange].bind(qname, key)
        if q is None:
            self.reply(msg, None, "not_found")
            return
        if q.exclusive:
            if q.owner is None:
                q.owner = cname  # the first connection to use it owns it
            elif q.owner != cname:
                self.reply(msg, None, "locked")  # AMQP RESOURCE_LOCKED
                return
        ch = Channel(cname, conn, q, prefetch, auto_ack, self.env.now)
        ch.node = self.world.nodes.get(cname)
        chans.append(ch)
        q.consumers.append(ch)
        ch.active = True
        q.active.append(ch)
        self.world.trace.event(self.env.now, cname, "subscribe", qname)
        self.reply(msg, None, "ok")
        self._dispatch(q)

    def _close(self, cname: str, conn: int) -> None:
        """A consumer's connection ``conn`` (and any older one) closed."""
        if conn > self._closed.get(cname, 0):
            self._closed[cname] = conn
        for ch in [c for c in self._channels.get(cname, ()) if c.conn <= conn]:
            self._close_channel(ch, "consumer_gone")

    def _close_channel(self, ch: Channel, why: str) -> None:
        """Close one channel: requeue its unacked copies in tag order (or
        delete its exclusive queue with them)."""
        ch.open = False
        q = ch.queue
        chans = self._channels.get(ch.consumer)
        if chans is not None and ch in chans:
            chans.remove(ch)
        if ch in q.consumers:
            q.consumers.remove(ch)
        if ch.active:
            ch.active = False
            q.active.remove(ch)
        copies = list(ch.unacked.values())
        ch.unacked.clear()
        q.unacked -= len(copies)
        if ch.wire is not None:
            ch.wire.clear()
        now = self.env.now
        self.world.trace.event(now, ch.consumer, "unsubscribe", q.name)
        if q.exclusive and q.owner == ch.consumer and not q.consumers:
            self._delete_queue(q, copies, "subscriber_gone")
            return
        for copy in copies:
            self._return(q, copy, why)
        if q.active and q.ready:
            self._dispatch(q)
        elif self._qlog is not None:
            self._qlog((now, self.name, q.name, q.ready, q.unacked))

    def _delete_queue(self, q: Queue, unacked: list[Delivery], reason: str) -> None:
        """Delete ``q``: its copies (ready, and ``unacked`` ones) are dropped."""
        for copy in sorted(unacked, key=lambda c: c.seq) + q.take_all():
            self._drop(copy.envelope.message_id, q.name, reason)
        del self.queues[q.name]
        for ex in self.exchanges.values():
            ex.unbind_queue(q.name)
        if self._qlog is not None:
            self._qlog((self.env.now, self.name, q.name, 0, 0))

    # -- heartbeats (AMQP 0-9-1) ------------------------------------------------
    def _heartbeats(self) -> Generator[Event, Any, None]:
        """The broker's heartbeat timer (AMQP 0-9-1, as RabbitMQ): a peer silent
        for ``heartbeat`` s is gone -- its channels are closed and their unacked
        deliveries requeued -- and a heartbeat goes out on a connection the
        broker has sent nothing on for half of that.  The timer looks every
        quarter of it, so a live peer is never silent for more than three
        quarters (room for latency).  A crashed or hung broker does neither.
        """
        beat: float = self.heartbeat  # type: ignore[assignment]
        half = beat / 2
        while True:
            yield self.env.timeout(beat / 4)
            if not self.up or self.hung:
                continue
            now = self.env.now
            for chans in list(self._channels.values()):
                for ch in list(chans):
                    if now - ch.heard > beat:
                        self.world.trace.event(now, self.name, "heartbeat_timeout",
                                               ch.consumer)
                        self._close_channel(ch, "consumer_gone")
                    elif now - ch.sent >= half:
                        ch.sent = now
                        self.send(self.message(ch.consumer, (_HEARTBEAT, ch.conn),
                                               kind=CONTROL))

    def _client_heartbeats(self, consumer: Consumer) -> Generator[Event, Any, None]:
        """The consumer's side, the same rule: a heartbeat when it has said
        nothing for ``heartbeat / 2`` s; a broker silent for ``heartbeat`` s is
        gone (the connection is dropped and a new one tried after the reconnect
        interval)."""
        beat: float = self.heartbeat  # type: ignore[assignment]
        half = beat / 2
        while True:
            yield self.env.timeout(beat / 4)
            if not consumer.up or consumer.hung or not consumer.connected:
                continue
            now = self.env.now
            if now - consumer.heard > beat:
                self.world.trace.event(now, consumer.name, "heartbeat_timeout", self.address)
                consumer.connection_lost()
                self.connect(consumer, delay=consumer.reconnect_interval)
            elif now - consumer.said >= half:
                consumer.said = now
                beat_msg = (_HEARTBEAT, consumer.name, consumer.conn)
                consumer.send(consumer.message(self.address, beat_msg, kind=CONTROL))

    # ==================================================================
    # the consumer's side (Transport): its client library
    # ==================================================================
    def resolve_consumer(self, consumer: str, channel: str, *, subscription: str | None,
                         durable: bool) -> str:
        if subscription is None:
            if channel in self.queues:
                return channel
            if channel in self.exchanges and channel:
                raise ParamError("subscription", subscription,
                                 f"a subscription name: {channel!r} is a publish-subscribe "
                                 f"channel, each subscription reads its own queue")
            raise ParamError("queue", channel, "a declared queue or publish-subscribe "
                             f"channel on broker {self.name!r}: queues "
                             f"{self._names(self.queues)}; exchanges "
                             f"{self._names(self.exchanges)}")
        if not isinstance(subscription, str) or not subscription:
            raise ParamError("subscription", subscription, "a non-empty name, or None")
        if not channel or channel not in self.exchanges:
            raise ParamError("queue", channel, "a publish-subscribe channel (an exchange) "
                             f"for a subscription: {self._names(self.exchanges)}")
        qname = f"{channel}.{subscription}"
        check_key("subscription", qname)
        if qname in self.queues and not self.queues[qname].durable and durable:
            raise ParamError("durable", durable, f"False: {qname!r} is a non-durable "
                                                 f"subscription")
        owner = self._owners.get(qname)
        if owner is not None and (owner != consumer or durable):
            raise ParamError("subscription", subscription,
                             f"a name not used by another consumer's non-durable "
                             f"subscription: {owner!r} holds {qname!r} (an exclusive "
                             f"queue has one consumer)")
        if not durable and qname in self.queues:
            raise ParamError("durable", durable, f"True: {qname!r} is a durable subscription")
        return qname

    def attach(self, consumer: Consumer) -> None:
        sub = consumer.subscription
        if sub is None:
            consumer._declare = None
            return
        if consumer.durable:
            self.declare_queue(consumer.queue_name, durable=True)
            self.exchanges[consumer.channel].bind(consumer.queue_name, "")
            consumer._declare = None
        else:
            self._owners[consumer.queue_name] = consumer.name
            consumer._declare = (consumer.channel, "")

    def connect(self, consumer: Consumer, delay: float = 0.0) -> None:
        if self.heartbeat is not None and consumer.name not in self._clients:
            self._clients.add(consumer.name)
            self.env.process(self._client_heartbeats(consumer))
        consumer.conn += 1
        consumer.connected = False
        conn = consumer.conn
        if delay > 0:
            self.env.timeout(delay).callbacks.append(
                lambda _e: self._attempt(consumer, conn))
        else:
            self._attempt(consumer, conn)

    def _attempt(self, consumer: Consumer, conn: int) -> None:
        """Send ``basic.consume``; try again every reconnect interval until answered."""
        if consumer.conn != conn or consumer.connected or not consumer.up:
            return
        body = (_CONSUME, consumer.name, conn, consumer.queue_name, consumer.prefetch,
                consumer.auto_ack, consumer._declare)
        ev = consumer.request(self.address, body, kind=CONTROL)
        rid: int = ev.request_id  # type: ignore[attr-defined]
        consumer.said = self.env.now
        ev.callbacks.append(lambda e: self._subscribed(consumer, conn, e.value))
        timer = self.env.timeout(consumer.reconnect_interval)
        timer.callbacks.append(lambda _e: self._retry(consumer, conn, rid))

    def _retry(self, consumer: Consumer, conn: int, rid: int) -> None:
        if consumer.conn == conn and not consumer.connected and consumer.up:
            consumer.forget(rid)
            self._attempt(consumer, conn)

    def _subscribed(self, consumer: Consumer, conn: int, reply: Message) -> None:
        if consumer.conn == conn and consumer.up and reply.status == "ok":
            consumer.connected = True
            consumer.heard = self.env.now

    def settle(self, consumer: Consumer, delivery: Delivery, ack: bool,
               requeue: bool = False, multiple: bool = False) -> None:
        ch: Channel = delivery.channel
        if ch is None or ch.conn != consumer.conn:
            return  # its connection is gone: an ack cannot travel on a closed channel
        world = self.world
        mid = world.message_count = world.message_count + 1
        consumer.said = self.env.now
        body = ((_ACK, ch, delivery.delivery_tag, multiple) if ack
                else (_NACK, ch, delivery.delivery_tag, multiple, requeue))
        self._network.send(Message(mid, CONTROL, consumer.name, self.address, self.env.now,
                                   body))

    def disconnect(self, consumer: Consumer) -> None:
        if not consumer.up:  # it crashed: what is on its way to it will bounce
            for ch in self._channels.get(consumer.name, ()):
                if ch.wire:
                    for msg in ch.wire:
                        if msg.delivered is None and msg.reply_to is None:
                            self._await_bounce(msg)
                    ch.wire.clear()
        was = consumer.connected
        consumer.connected = False
        if was or consumer.conn:
            consumer.send(consumer.message(self.address,
                                           (_CLOSE, consumer.name, consumer.conn),
                                           kind=CONTROL))

    def control(self, consumer: Consumer, msg: Message) -> None:
        body = msg.body
        if body[0] == _CLOSE and body[1] == consumer.conn:
            # the broker reset the connection: deliveries still buffered die
            # with it (the broker requeues what it can); reconnect later
            consumer.connection_lost()
            self.connect(consumer, delay=consumer.reconnect_interval)

    # ==================================================================
    # faults
    # ==================================================================
    def crash(self, repair_after: float | None = None) -> None:
        """Crash the broker (see the module docstring for what survives)."""
        if not self.up:
            super().crash(repair_after)
            return
        unrouted = [m for m in (*self._current.values(), *self.queue, *self._held)
                    if m.kind != CONTROL]
        waiting = [m for m in self._held if m.reply_to is not None]
        self._held = []
        super().crash(repair_after)  # resets confirms waiting in the routing queue
        self._epoch += 1  # routing timers still running belong to the dead process
        self._free = 0
        self._parked = []
        self._n_unrouted_lost += len(unrouted)
        for m in unrouted:
            self._drop(m.body.message_id, m.body.exchange, "broker_crash")
        for m in waiting:  # held during a hang: not in the Instance's queue
            self.reply(m, None, "reset")
        # every connection is reset
        now = self.env.now
        for cname, chans in self._channels.items():
            conns = sorted({ch.conn for ch in chans})
            for ch in chans:
                ch.open = False
                ch.active = False
            if conns:
                self._closed[cname] = max(self._closed.get(cname, 0), conns[-1])
            for conn in conns:
                self.send(self.message(cname, (_CLOSE, conn), kind=CONTROL))
        unacked: dict[str, list[Delivery]] = {}
        for chans in self._channels.values():
            for ch in chans:
                unacked.setdefault(ch.queue.name, []).extend(ch.unacked.values())
                ch.unacked.clear()
                self.world.trace.event(now, ch.consumer, "unsubscribe", ch.queue.name)
        self._channels.clear()
        for q in list(self.queues.values()):
            held = sorted(unacked.get(q.name, ()), key=lambda c: c.seq)
            q.consumers.clear()
            q.active.clear()
            q.unacked = 0
            if q.exclusive:
                self._delete_queue(q, held, "broker_crash")
                continue
            if not q.durable:
                for copy in held + q.take_all():
                    self._drop(copy.envelope.message_id, q.name, "broker_crash")
            else:
                for copy in q.take_where(lambda c: not c.envelope.persistent):
                    self._drop(copy.envelope.message_id, q.name, "broker_crash")
                for copy in held:
                    if copy.envelope.persistent:
                        self._return(q, copy, "broker_restart", failed=False)
                    else:
                        self._drop(copy.envelope.message_id, q.name, "broker_crash")
            if self._qlog is not None:
                self._qlog((now, self.name, q.name, q.ready, q.unacked))
        if self.cluster is not None:
            self.cluster._member_down(self)

    def restart(self) -> None:
        """Start again (routing workers fresh; the queues kept what survived)."""
        if self.up:
            return
        super().restart()
        if self.cluster is not None:
            self.cluster._member_up(self)

    def unhang(self, token: Event | None = None) -> None:
        """End a hang: what arrived meanwhile is handled in order, then delivery resumes."""
        was = self.hung
        super().unhang(token)
        if was and not self.hung:
            parked, self._parked = self._parked, []
            for job in parked:  # routed before the stall: their turn first
                self._route(self._current.pop(job))
                self._next_route()
            held, self._held = self._held, []
            for msg in held:
                self.handle(msg)
            for q in list(self.queues.values()):
                if q.active and q.ready:
                    self._dispatch(q)

    # ==================================================================
    # what it holds, and what it counted
    # ==================================================================
    def queue_depth(self, name: str) -> tuple[int, int]:
        """``(ready, unacked)`` copies on queue ``name`` now."""
        q = self.queues.get(name)
        if q is None:
            raise ParamError("name", name, "a queue on this broker: " + self._names(self.queues))
        return q.ready, q.unacked

    def contents(self) -> list[tuple[str, int, str, str | None]]:
        """Every copy the broker holds now: ``(queue, message_id, state, consumer)``
        with state ``ready`` (consumer None) or ``unacked`` (the consumer it was
        delivered to).  With ``trace.mq`` it closes the ledger of copies."""
        out: list[tuple[str, int, str, str | None]] = []
        for q in self.queues.values():
            out += [(q.name, c.envelope.message_id, "ready", None) for c in q.copies()]
            for ch in q.consumers:
                out += [(q.name, c.envelope.message_id, "unacked", ch.consumer)
                        for c in ch.unacked.values()]
        return out

    @property
    def stats(self) -> dict[str, Any]:
        """Counters kept with or without a trace.

        ``published`` publishes the broker routed; ``routed`` copies put on
        queues (dead-letter copies included); ``unroutable``; ``delivered``
        deliveries sent (``redelivered`` of them flagged so); ``consumed``
        copies acked (auto-acks included); ``nacked``; ``requeued``;
        ``dead_lettered``; ``confirmed`` / ``rejected`` confirms sent;
        ``dropped`` by reason; ``ready`` and ``unacked`` now.  For
        :meth:`Result.summary <simcomm.result.Result.summary>` without a
        trace: ``sent`` publishes its clients sent to it, ``auto_acked`` (of
        ``consumed``), ``unrouted_lost`` publishes that reached it and died
        in a crash before they were routed (of ``dropped["broker_crash"]``),
        ``waiting`` publishes that reached it and wait to be routed now.
        """
        return {
            "published": self._n_published, "routed": self._n_routed,
            "unroutable": self._n_unroutable, "delivered": self._n_delivered,
            "redelivered": self._n_redelivered, "consumed": self._n_consumed,
            "nacked": self._n_nacked, "requeued": self._n_requeued,
            "dead_lettered": self._n_dead_lettered, "confirmed": self._n_confirmed,
            "rejected": self._n_rejected, "dropped": dict(self._dropped),
            "ready": sum(q.ready for q in self.queues.values()),
            "unacked": sum(q.unacked for q in self.queues.values()),
            "sent": self._n_sent, "auto_acked": self._n_auto_acked,
            "unrouted_lost": self._n_unrouted_lost,
            "waiting": sum(1 for m in (*self._current.values(), *self.queue, *self._held)
                           if m.kind != CONTROL),
        }
