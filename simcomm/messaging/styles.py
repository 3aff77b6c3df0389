"""The interaction styles of *Microservices Patterns* §3.1.1, on messaging.

The book sorts interactions on two axes -- one-to-one or one-to-many,
synchronous or asynchronous -- and names five styles.  Each is a small
piece here that works on either transport (a
:class:`~simcomm.messaging.Broker` or a
:class:`~simcomm.messaging.brokerless.Brokerless`), from any node: a client,
a producer, or a service while it handles a request (``ctx.instance``).

============  ==========================  ===================================
              one-to-one                  one-to-many
============  ==========================  ===================================
synchronous   request/response:           --
              :func:`simcomm.rpc.call`
asynchronous  asynchronous                publish/subscribe: :func:`publish`;
              request/response:           publish/async responses:
              :func:`request_async`;      :func:`publish_collect`
              one-way notification:
              :func:`notify`
============  ==========================  ===================================

The header fields follow §3.3.1: a request carries the name of its **reply
channel** (``reply_to``); a reply carries the request's message id as its
**correlation id** (:func:`reply` sets both).  The requester matches
replies to requests by correlation id -- :class:`Requester`, a consumer of
its reply channel that keeps the requests waiting for an answer.  A reply
that finds nothing waiting for it is an **orphan**, recorded (as a late
reply to a synchronous call is, ``orphan_reply`` in ``Result.events``) with
why: ``late`` (its request timed out, or its collection's deadline passed),
``surplus`` (its collection already had the replies it wanted),
``duplicate`` (its request was answered already: the broker delivered a
reply twice, as at-least-once delivery may) or ``unknown``.

Asynchronous here means what the book means: the requester does not block
a thread on the wire -- the call returns an event at once and the reply
arrives as a message on another channel, handled by another consumer.  A
handler that ``yield``\\ s the event still waits for it, as a service
awaiting a future does; what changes is that nothing ties the request to a
connection to the callee, so the callee may be down when it is sent (a
broker keeps it) and the reply may come much later -- or never, which is why
:func:`request_async` takes a ``timeout``.

    >>> from simcomm.engine import World
    >>> from simcomm.messaging import Broker, Consumer
    >>> from simcomm.messaging.styles import Requester, reply, request_async
    >>> world = World(seed=1)
    >>> broker = Broker(world)
    >>> _ = broker.point_to_point("pricing"), broker.point_to_point("order.replies")
    >>> def price(ctx, d):
    ...     yield ctx.work(0.1)
    ...     reply(ctx.instance, broker, d, {"price": 42})
    >>> _ = Consumer(world, "pricing-1", broker, "pricing", handler=price)
    >>> order = Requester(world, "order-1", broker, "order.replies")
    >>> answer = []
    >>> world.at(1.0, lambda: request_async(order, broker, "pricing", {"item": 7},
    ...          "order.replies", timeout=5).callbacks.append(
    ...              lambda ev: answer.append((world.now, ev.value.body))))
    >>> _ = world.run(until=10)
    >>> answer
    [(1.1, {'price': 42})]
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import as_real, is_whole
from simcomm.engine.messages import COMMAND, EVENT, REPLY
from simcomm.engine.nodes import Context, Node
from simcomm.errors import ParamError
from simcomm.messaging.consumer import Consumer
from simcomm.messaging.envelope import Delivery
from simcomm.messaging.producer import publish as _publish
from simcomm.messaging.transport import POINT_TO_POINT, PUBLISH_SUBSCRIBE, Transport, is_transport

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["ORPHAN_REASONS", "STYLES", "Collected", "Requester", "TimedOut", "notify",
           "publish", "publish_collect", "replier", "reply", "request_async", "style"]

#: The five styles of §3.1.1: name -> (one-to-one / one-to-many, synchronous /
#: asynchronous, the function that does it here).
STYLES = {
    "request-response": ("one-to-one", "synchronous", "simcomm.rpc.call"),
    "async-request-response": ("one-to-one", "asynchronous",
                               "simcomm.messaging.styles.request_async"),
    "one-way-notification": ("one-to-one", "asynchronous",
                             "simcomm.messaging.styles.notify"),
    "publish-subscribe": ("one-to-many", "asynchronous",
                          "simcomm.messaging.styles.publish"),
    "publish-async-responses": ("one-to-many", "asynchronous",
                                "simcomm.messaging.styles.publish_collect"),
}

#: Why a reply was an orphan (see the module docstring).
ORPHAN_REASONS = ("late", "surplus", "duplicate", "unknown")
# how a request's wait ended, one byte per message id (0: not this requester's)
_UNKNOWN, _LATE, _SURPLUS, _DUPLICATE = 0, 1, 2, 3
_WHY = ("unknown", "late", "surplus", "duplicate")


def style(name: str) -> Callable[..., Any]:
    """The function that does style ``name`` (a key of :data:`STYLES`):
    ``style("request-response")`` is :func:`simcomm.rpc.call`, the
    synchronous call to set beside the asynchronous ones."""
    if name not in STYLES:
        raise ParamError("name", name, "one of " + ", ".join(map(repr, STYLES)))
    if name == "request-response":
        from simcomm.rpc import call

        return call
    return globals()[STYLES[name][2].rsplit(".", 1)[1]]  # type: ignore[no-any-return]


def _check_kind(transport: Any, channel: Any, kind: str, what: str) -> None:
    if not is_transport(transport):
        raise ParamError("transport", transport, "a Broker or Brokerless transport")
    if not isinstance(channel, str) or transport.channel_kind(channel) != kind:
        raise ParamError("channel", channel, f"a {what} channel declared on the transport")


# -- one-way -------------------------------------------------------------------------


def notify(node: Node, transport: Transport, channel: str, body: Any = None, *,
           kind: str = COMMAND, **options: Any) -> Event | None:
    """One-way notification (one-to-one, asynchronous): send ``body`` to the one
    service behind the point-to-point ``channel`` and expect no reply.

    A command by default (§3.3.1).  ``options`` are :func:`~simcomm.messaging.publish`'s
    (``key``, ``persistent``, ``confirm``, ``headers``, ``size``, ``format``,
    ``trace_id``); with ``confirm`` the publisher confirm's event is
    returned -- the only answer a notification gets, and from the broker, not
    from the receiver.
    """
    _check_kind(transport, channel, POINT_TO_POINT, "point-to-point")
    return _publish(node, transport, channel, body, kind=kind, **options)


def publish(node: Node, transport: Transport, channel: str, body: Any = None, *,
            kind: str = EVENT, **options: Any) -> Event | None:
    """Publish/subscribe (one-to-many, asynchronous): every subscription of the
    publish-subscribe ``channel`` gets a copy of ``body``, an event by
    default; nobody answers.  ``options`` as :func:`notify`'s, plus
    ``routing_key`` (a broker's topic exchange routes by it)."""
    _check_kind(transport, channel, PUBLISH_SUBSCRIBE, "publish-subscribe")
    return _publish(node, transport, channel, body, kind=kind, **options)


def reply(node: Node, transport: Transport, request: Delivery, body: Any = None, *,
          kind: str = REPLY, **options: Any) -> Event | None:
    """Answer ``request`` (a delivery whose header names a reply channel): a
    message on its ``reply_to`` channel whose correlation id is the request's
    message id.  ``kind`` is ``reply`` by default (a document is usual too)."""
    if not isinstance(request, Delivery):
        raise ParamError("request", request, "the Delivery of the request to answer")
    if request.reply_to is None:
        raise ParamError("request", request, "a request whose header names a reply channel "
                                             "(reply_to)")
    return _publish(node, transport, request.reply_to, body, kind=kind,
                    correlation_id=request.message_id, **options)


def replier(transport: Transport, body: Any = None, *, kind: str = REPLY,
            **options: Any) -> Callable[[Context, Delivery], Generator[Event, Any, None]]:
    """A consumer's handler that answers what it handles: one unit of work (a
    draw of the consumer's ``service_time``), then :func:`reply` with ``body``
    on the request's reply channel.  A message whose header names no reply
    channel is handled and not answered.  ``kind`` and ``options`` as
    :func:`reply`'s.  For a service built without a handler of its own:
    ``Consumer(world, "kitchen-1", broker, "kitchen.commands",
    handler=replier(broker, {"ticketId": 1}))``."""
    if not is_transport(transport):
        raise ParamError("transport", transport, "a Broker or Brokerless transport")

    def handler(ctx: Context, d: Delivery) -> Generator[Event, Any, None]:
        yield ctx.work()
        if d.reply_to is not None:
            reply(ctx.instance, transport, d, body, kind=kind, **options)

    return handler


# -- the requester's side ------------------------------------------------------------------


class TimedOut:
    """What :func:`request_async`'s event fires with when no reply came in time.

    ``status`` is ``"timeout"`` (a reply :class:`Delivery` has none), so
    ``getattr(value, "status", "ok")`` tells the two apart; ``correlation_id``
    is the request's message id, ``deadline`` when the wait ended.
    """

    __slots__ = ("correlation_id", "deadline")
    status = "timeout"

    def __init__(self, correlation_id: int, deadline: float) -> None:
        self.correlation_id = correlation_id
        self.deadline = deadline

    def __repr__(self) -> str:
        return f"TimedOut(correlation_id={self.correlation_id}, deadline={self.deadline:g})"


class Collected(list):
    """The replies :func:`publish_collect` gathered, in the order they came,
    with ``why`` the collection ended (``"count"``: it had ``count``
    replies; ``"deadline"``: time was up) and the ``correlation_id`` they
    answer."""

    def __init__(self, correlation_id: int) -> None:
        super().__init__()
        self.correlation_id = correlation_id
        self.why = ""


class _Waiting:
    """A request waiting for its reply, or a collection for its replies."""

    __slots__ = ("count", "done", "replies")

    def __init__(self, done: Event, replies: Collected | None, count: int | None) -> None:
        self.done = done
        self.replies = replies  # None: a single request
        self.count = count


def _seconds(field: str, value: object) -> float | None:
    if value is None:
        return None
    seconds = as_real(value)
    if seconds is None or not 0 < seconds < math.inf:
        raise ParamError(field, value, "seconds > 0 (finite), or None")
    return seconds


# the requesters of each transport, by reply channel (a module-level table:
# a requester is found from the reply channel a request names)
_requesters: weakref.WeakKeyDictionary[Any, dict[str, list[Requester]]] = \
    weakref.WeakKeyDictionary()


class Requester(Consumer):
    """A service's reply channel and the requests waiting on it, by correlation id.

    A :class:`~simcomm.messaging.Consumer` of the point-to-point
    ``reply_channel`` (its other arguments are a consumer's:
    ``service_time``, ``workers``, ``prefetch``, ``auto_ack`` ...); each
    reply costs one unit of its work, then is matched to the request whose
    message id is its correlation id.  :meth:`ask` and :meth:`collect`
    send, and return the event the reply (or replies) fire; :func:`request_async`
    and :func:`publish_collect` find the requester by its reply channel.

    Give each requesting instance its own reply channel: two requesters
    reading one channel compete for its replies (round-robin), and a reply
    that reaches the one that did not ask is an orphan there.

    ``orphans`` lists every unmatched reply as ``(time, message_id,
    correlation_id, why)`` (:data:`ORPHAN_REASONS`); :attr:`stats` counts.
    """

    def __init__(self, world: World, name: str, transport: Transport, reply_channel: str,
                 **consumer_options: Any) -> None:
        if "handler" in consumer_options:
            raise ParamError("handler", consumer_options["handler"],
                             "no handler: a requester's handler matches replies")
        if "subscription" in consumer_options:
            raise ParamError("subscription", consumer_options["subscription"],
                             "no subscription: a reply channel is point-to-point")
        _check_kind(transport, reply_channel, POINT_TO_POINT, "point-to-point (reply)")
        super().__init__(world, name, transport, reply_channel, handler=self._on_reply,
                         **consumer_options)
        self.reply_channel = reply_channel
        self.pending: dict[int, _Waiting] = {}
        self.orphans: list[tuple[float, int, int | None, str]] = []
        # how each request's wait ended, indexed by its message id (a byte per
        # id: a long run's requests cost little)
        self._ended = bytearray()
        self._n_requests = 0
        self._n_replies = 0
        self._n_timeouts = 0
        table = _requesters.setdefault(transport, {})
        table.setdefault(reply_channel, []).append(self)

    # -- sending -----------------------------------------------------------------
    def _send(self, node: Node, channel: str, body: Any, kind: str,
              options: dict[str, Any]) -> int:
        if "reply_to" in options or "correlation_id" in options:
            field = "reply_to" if "reply_to" in options else "correlation_id"
            raise ParamError(field, options[field], "not given: the requester sets the "
                                                    "reply channel and the ids")
        # the publish's message id is the next one: both transports take it
        # first, and the replies will carry it as their correlation id
        mid = self.world.message_count + 1
        _publish(node, self.transport, channel, body, kind=kind,
                 reply_to=self.reply_channel, **options)
        self._n_requests += 1
        return mid

    def ask(self, node: Node, channel: str, body: Any = None, *,
                timeout: float | None = None, kind: str = COMMAND,
                **options: Any) -> Event:
        """Asynchronous request/response: send ``body`` from ``node`` on the
        point-to-point ``channel`` with this reply channel in its header.

        Returns an event that fires with the reply's :class:`Delivery`, or
        after ``timeout`` seconds without one with a :class:`TimedOut`
        (``None``: wait as long as it takes).  The event's
        ``correlation_id`` is the request's message id.  ``options`` as
        :func:`~simcomm.messaging.publish`'s.
        """
        _check_kind(self.transport, channel, POINT_TO_POINT, "point-to-point")
        limit = _seconds("timeout", timeout)
        done = Event(self.env)
        mid = self._send(node, channel, body, kind, options)
        done.correlation_id = mid  # type: ignore[attr-defined]
        self.pending[mid] = _Waiting(done, None, None)
        if limit is not None:
            self.env.timeout(limit).callbacks.append(lambda _e: self._expire(mid))
        return done

    def collect(self, node: Node, channel: str, body: Any = None, *,
                until: float | None = None, timeout: float | None = None,
                count: int | None = None, kind: str = EVENT, **options: Any) -> Event:
        """Publish/async responses: publish ``body`` on the publish-subscribe
        ``channel`` with this reply channel in its header and gather the
        replies until ``count`` have come or the deadline -- ``until`` (an
        absolute simulated time) or ``timeout`` (seconds from now) -- is
        reached, whichever is first.

        Returns an event that fires with a :class:`Collected` list of the
        reply deliveries (its ``why`` says which limit ended it).  At least
        one of the limits must be given, and at most one deadline.
        """
        _check_kind(self.transport, channel, PUBLISH_SUBSCRIBE, "publish-subscribe")
        if count is not None and (not is_whole(count) or count < 1):
            raise ParamError("count", count, "a whole number of replies >= 1, or None")
        limit = _seconds("timeout", timeout)
        now = self.env.now
        if until is not None:
            if limit is not None:
                raise ParamError("until", until, "None when timeout is given (one deadline)")
            end = as_real(until)
            if end is None or not now < end < math.inf:
                raise ParamError("until", until, f"a simulated time after now ({now:g})")
            limit = end - now
        if limit is None and count is None:
            raise ParamError("count", count, "a number of replies, or a deadline (until or "
                                             "timeout): a collection must end")
        done = Event(self.env)
        mid = self._send(node, channel, body, kind, options)
        done.correlation_id = mid  # type: ignore[attr-defined]
        self.pending[mid] = _Waiting(done, Collected(mid),
                                     None if count is None else int(count))
        if limit is not None:
            self.env.timeout(limit).callbacks.append(lambda _e: self._expire(mid))
        return done

    def abandon(self, correlation_id: int) -> None:
        """Stop waiting for the reply (or replies) to the request whose message
        id is ``correlation_id``; its event never fires, and what comes for
        it later is an orphan (``late``)."""
        if self.pending.pop(correlation_id, None) is not None:
            self._end(correlation_id, _LATE)

    # -- the ends of a wait ------------------------------------------------------------
    def _end(self, mid: int, how: int) -> None:
        ended = self._ended
        if mid >= len(ended):
            ended.extend(bytes(mid + 1 - len(ended) + 4096))
        ended[mid] = how

    def _why(self, cid: int | None) -> str:
        ended = self._ended
        if cid is None or not 0 <= cid < len(ended):
            return "unknown"
        return _WHY[ended[cid]]

    def _expire(self, mid: int) -> None:
        w = self.pending.pop(mid, None)
        if w is None:
            return
        self._end(mid, _LATE)
        if w.replies is None:
            self._n_timeouts += 1
            w.done.succeed(TimedOut(mid, self.env.now))
        else:
            w.replies.why = "deadline"
            w.done.succeed(w.replies)

    def _on_reply(self, ctx: Context, d: Delivery) -> Generator[Event, Any, None]:
        """The requester's handler: one unit of work, then the match."""
        yield ctx.work()
        cid = d.correlation_id
        w = self.pending.get(cid) if cid is not None else None
        if w is None:
            self._orphan(d, self._why(cid))
            return
        self._n_replies += 1
        if w.replies is None:
            del self.pending[cid]  # type: ignore[arg-type]
            self._end(cid, _DUPLICATE)  # type: ignore[arg-type]
            w.done.succeed(d)
            return
        w.replies.append(d)
        if w.count is not None and len(w.replies) >= w.count:
            del self.pending[cid]  # type: ignore[arg-type]
            self._end(cid, _SURPLUS)  # type: ignore[arg-type]
            w.replies.why = "count"
            w.done.succeed(w.replies)

    def _orphan(self, d: Delivery, why: str) -> None:
        now = self.env.now
        self.orphans.append((now, d.message_id, d.correlation_id, why))
        self.world.trace.event(now, self.name, "orphan_reply",
                               f"reply {d.message_id} to request {d.correlation_id} ({why})")

    @property
    def stats(self) -> dict[str, int]:
        """The consumer's counters, and ``requests`` sent, ``replies`` matched,
        ``timeouts`` (single requests that got no reply in time), ``waiting``
        now, and ``orphans`` by why."""
        out: dict[str, Any] = dict(super().stats)
        by_why = dict.fromkeys(ORPHAN_REASONS, 0)
        for *_, why in self.orphans:
            by_why[why] += 1
        out.update(requests=self._n_requests, replies=self._n_replies,
                   timeouts=self._n_timeouts, waiting=len(self.pending),
                   orphans=by_why)
        return out


def _requester(transport: Any, reply_channel: Any) -> Requester:
    if not is_transport(transport):
        raise ParamError("transport", transport, "a Broker or Brokerless transport")
    found = _requesters.get(transport, {}).get(reply_channel) \
        if isinstance(reply_channel, str) else None
    if not found:
        names = sorted(_requesters.get(transport, {}))
        raise ParamError("reply_channel", reply_channel,
                         "a reply channel a Requester reads on this transport: "
                         + (", ".join(map(repr, names)) or "(no Requester yet)"))
    return found[0]


def request_async(node: Node, transport: Transport, channel: str, body: Any,
                  reply_channel: str, timeout: float | None = None, **options: Any) -> Event:
    """Asynchronous request/response (one-to-one): send ``body`` from ``node``
    on the point-to-point ``channel``, naming ``reply_channel`` for the
    answer, and return an event that fires with the reply's
    :class:`Delivery` -- or a :class:`TimedOut` after ``timeout`` seconds.

    The :class:`Requester` reading ``reply_channel`` (the first made, if
    several do) matches the reply by correlation id.  ``options`` as
    :meth:`Requester.ask`'s (a command by default).  The synchronous
    style to compare with is :func:`simcomm.rpc.call`.
    """
    return _requester(transport, reply_channel).ask(node, channel, body,
                                                    timeout=timeout, **options)


def publish_collect(node: Node, transport: Transport, channel: str, body: Any,
                    reply_channel: str, *, until: float | None = None,
                    timeout: float | None = None, count: int | None = None,
                    **options: Any) -> Event:
    """Publish/async responses (one-to-many): publish ``body`` on the
    publish-subscribe ``channel``, naming ``reply_channel``, and gather the
    replies until ``count`` came or the deadline (``until``, absolute, or
    ``timeout``, from now).  The event fires with a :class:`Collected` list;
    replies after it are orphans (``surplus`` or ``late``).  See
    :meth:`Requester.collect`."""
    return _requester(transport, reply_channel).collect(
        node, channel, body, until=until, timeout=timeout, count=count, **options)
