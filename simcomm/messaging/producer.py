"""Publishing: one message from any node, or a Poisson stream of them.

:func:`publish` sends one message on a channel of a transport -- a broker's
exchange or point-to-point queue, or a brokerless channel -- from any node:
a client, a :class:`Producer`, or a service while it handles a request
(``publish(ctx.instance, transport, "orders", body)``).  It checks its
arguments (a :class:`~simcomm.errors.ParamError` names the field) and lets
the transport send it; the network message that carries it gives the
message its id, kept on every hop.

:class:`Producer` is a node that publishes as a Poisson process, like
:class:`~simcomm.engine.OpenLoop` sends requests: ``rate`` messages per
second (a number or a :class:`~simcomm.engine.RateSchedule`), from
``start``, ``count`` of them or until the run ends, drawing its gaps from
its own stream (``producer:<name>:arrivals``) and its shard keys from
another (``producer:<name>:keys``), so adding a producer changes no other
draw.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import as_real, is_flag, is_whole
from simcomm.engine.formats import Format, get_format
from simcomm.engine.messages import COMMAND, DOCUMENT, EVENT, REPLY
from simcomm.engine.nodes import Node
from simcomm.engine.workload import RateSchedule
from simcomm.errors import ParamError
from simcomm.messaging.topic import check_key
from simcomm.messaging.transport import Transport, is_transport

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["APP_KINDS", "Producer", "publish"]

#: the kinds an application message can have (*Microservices Patterns* §3.3.1)
APP_KINDS = (COMMAND, EVENT, DOCUMENT, REPLY)


def _check_publish(transport: Any, channel: Any, routing_key: Any, kind: Any,
                   persistent: Any, confirm: Any, correlation_id: Any, reply_to: Any,
                   headers: Any, size: Any, format: Any) -> tuple[int | None, Format | None]:
    """Check publish arguments; returns the size and the format, normalised."""
    if not is_transport(transport):
        raise ParamError("transport", transport, "a Broker or Brokerless transport")
    if not isinstance(channel, str):
        raise ParamError("channel", channel, "a channel name (a string)")
    check_key("routing_key", routing_key)
    if kind not in APP_KINDS:
        raise ParamError("kind", kind, "one of " + ", ".join(map(repr, APP_KINDS)))
    for field, flag in (("persistent", persistent), ("confirm", confirm)):
        if not is_flag(flag):
            raise ParamError(field, flag, "True or False")
    if correlation_id is not None and not is_whole(correlation_id):
        raise ParamError("correlation_id", correlation_id,
                         "the message_id of the request this answers (a whole number), or None")
    if reply_to is not None and (not isinstance(reply_to, str) or not reply_to):
        raise ParamError("reply_to", reply_to, "the name of a reply channel, or None")
    if headers is not None and not isinstance(headers, dict):
        raise ParamError("headers", headers, "a dict of header fields, or None")
    if size is not None:
        if not is_whole(size) or size < 0:
            raise ParamError("size", size, "bytes on the wire (a whole number >= 0), or None")
        size = int(size)
    fmt = get_format(format, "format") if format is not None else None
    return size, fmt


def publish(node: Node, transport: Transport, channel: str, body: Any = None, *,
            routing_key: str = "", kind: str = EVENT, key: Any = None,
            persistent: bool = True, confirm: bool = False,
            correlation_id: int | None = None, reply_to: str | None = None,
            headers: dict | None = None, size: int | None = None,
            format: Format | str | None = None,
            trace_id: int | None = None) -> Event | None:
    """Publish ``body`` from ``node`` on ``channel`` of ``transport``.

    ``channel`` is a broker exchange (with ``routing_key``), a point-to-point
    queue, or ``""`` (the default exchange: ``routing_key`` names the queue);
    on a brokerless transport, one of its channels.  ``kind`` is the
    message's kind (``event`` by default; ``command``, ``document``,
    ``reply``); ``key`` a shard key; ``persistent`` whether it survives a
    broker crash on a durable queue; ``correlation_id`` / ``reply_to`` the
    header fields of request / asynchronous response (the reply CHANNEL);
    ``size`` or ``format`` its bytes on the wire; ``trace_id`` the client
    request it was made for.

    With ``confirm`` returns an event that fires with ``"ack"`` or
    ``"nack"`` (publisher confirms), or with ``"refused"`` / ``"reset"`` if
    the broker was down or crashed first (no confirm); else None.
    """
    if not isinstance(node, Node):
        raise ParamError("node", node, "the Node that publishes (e.g. ctx.instance)")
    size, fmt = _check_publish(transport, channel, routing_key, kind, persistent, confirm,
                               correlation_id, reply_to, headers, size, format)
    return transport.publish(node, channel, body, routing_key=routing_key, kind=kind,
                             key=key, persistent=bool(persistent), confirm=bool(confirm),
                             correlation_id=correlation_id, reply_to=reply_to,
                             headers=headers, size=size, format=fmt, trace_id=trace_id)


class Producer(Node):
    """A node publishing on ``channel`` as a Poisson process (see the module docstring).

    ``body`` is each message's body, or a function ``body(i)`` of the
    message's number (0, 1, ...); ``keys`` the shard keys: None, a number
    ``n`` (keys ``0 .. n-1`` drawn uniformly) or a sequence to draw from;
    ``count`` stops it after that many messages (None: never); ``start`` is
    when it begins.  ``confirms`` counts the publisher confirms it got
    (``ack``, ``nack``, or the failure that meant none).
    """

    def __init__(self, world: World, name: str, transport: Transport, channel: str, *,
                 rate: float | RateSchedule, kind: str = EVENT, body: Any = None,
                 routing_key: str = "", keys: int | Sequence[Any] | None = None,
                 persistent: bool = True, confirm: bool = False, count: int | None = None,
                 start: float = 0.0, size: int | None = None,
                 format: Format | str | None = None) -> None:
        if not isinstance(rate, RateSchedule):
            per_second = as_real(rate)
            if per_second is None or not per_second > 0 or math.isinf(per_second):
                raise ParamError("rate", rate, "messages per second > 0 (finite), or a "
                                               "RateSchedule")
            rate = RateSchedule([(0.0, per_second)])
        size, fmt = _check_publish(transport, channel, routing_key, kind, persistent, confirm,
                                   None, None, None, size, format)
        resolve = getattr(transport, "resolve", None)
        if resolve is not None:
            resolve(channel, routing_key)  # an unknown channel fails now, not mid-run
        elif transport.channel_kind(channel) is None:
            raise ParamError("channel", channel, "a channel declared on the transport")
        key_choices: Sequence[Any] | None = None
        if keys is not None:
            if is_whole(keys):
                if keys < 1:  # type: ignore[operator]
                    raise ParamError("keys", keys, "a number of keys >= 1, a sequence of "
                                                   "keys, or None")
                key_choices = range(int(keys))  # type: ignore[arg-type]
            elif isinstance(keys, Sequence) and not isinstance(keys, (str, bytes)) and keys:
                key_choices = list(keys)
            else:
                raise ParamError("keys", keys, "a number of keys >= 1, a non-empty sequence "
                                               "of keys, or None")
        if count is not None and (not is_whole(count) or count < 0):
            raise ParamError("count", count, "a whole number >= 0, or None for no end")
        begin = as_real(start)
        if begin is None or not 0 <= begin < math.inf:
            raise ParamError("start", start, "a time in seconds >= 0")
        super().__init__(world, name)  # registers the node: everything is checked
        self.transport = transport
        self.channel = channel
        self.schedule = rate
        self.kind = kind
        self.body = body
        self.routing_key = routing_key
        self.keys = key_choices
        self.persistent = bool(persistent)
        self.confirm = bool(confirm)
        self.count = None if count is None else int(count)
        self.start = begin
        self.size = size
        self.format = fmt
        self.published = 0
        self.confirms: dict[str, int] = {}
        self._rng = world.stream(f"producer:{name}:arrivals")
        self._key_rng = world.stream(f"producer:{name}:keys")
        self.env.process(self._run())

    def _run(self) -> Generator[Event, Any, None]:
        env = self.env
        rng = self._rng
        sched = self.schedule
        if self.start > 0:
            yield env.timeout(self.start)
        left = math.inf if self.count is None else self.count
        single = len(sched.rates) == 1
        while left > 0:
            if single:
                rate = sched.rates[0]
                yield env.timeout(rng.expovariate(rate))
            else:
                rate = sched.rate_at(env.now)
                change = sched.next_change(env.now)
                gap = rng.expovariate(rate) if rate > 0 else math.inf
                if env.now + gap >= change:
                    yield env.timeout(change - env.now)  # memoryless: draw again
                    continue
                yield env.timeout(gap)
            self.publish_one()
            left -= 1

    def publish_one(self) -> Event | None:
        """Publish the next message now."""
        i = self.published
        self.published += 1
        body = self.body(i) if callable(self.body) else self.body
        key = None
        if self.keys is not None:
            key = self.keys[int(self._key_rng.random() * len(self.keys))]
        ev = self.transport.publish(self, self.channel, body, routing_key=self.routing_key,
                                    kind=self.kind, key=key, persistent=self.persistent,
                                    confirm=self.confirm, size=self.size, format=self.format)
        if ev is not None:
            ev.callbacks.append(self._confirmed)
        return ev

    def _confirmed(self, ev: Event) -> None:
        outcome = str(ev.value)
        self.confirms[outcome] = self.confirms.get(outcome, 0) + 1

