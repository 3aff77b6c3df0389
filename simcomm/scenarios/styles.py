"""``styles``: the five interaction styles of *Microservices Patterns* §3.1.1, one knob.

Users send requests to the order service (``order-1``); its handler does
what the ``style`` says with the services behind it and answers the user
when the style lets it.  The requests table therefore measures what the
requester waits for in each style:

* ``request-response`` (one-to-one, synchronous) -- after the kitchen
  service's reply to its call (:func:`simcomm.rpc.call`);
* ``notification`` (one-to-one, asynchronous) -- as soon as the command
  is sent to the kitchen's point-to-point channel: no reply;
* ``request-async-response`` (one-to-one, asynchronous) -- when the
  kitchen's reply arrives on the reply channel, matched by correlation id,
  or ``timeout`` after ``reply_timeout``;
* ``publish-subscribe`` (one-to-many, asynchronous) -- as soon as the
  event is published on the ``order.events`` channel: every subscriber
  gets a copy, nobody answers;
* ``publish-async-responses`` (one-to-many, asynchronous) -- when
  ``replies_to_collect`` subscribers have replied, or ``timeout`` when
  ``reply_timeout`` passes first.

Each style is the reusable piece of :mod:`simcomm.messaging.styles`
(``notify``, ``request_async``, ``publish``, ``publish_collect``, ``reply``
and the ``Requester``) or :func:`simcomm.rpc.call`.  The asynchronous
styles travel on a messaging ``transport``: a broker (RabbitMQ's rules,
REFERENCE §4: the kitchen's commands on a durable queue, events on a
fanout exchange with a durable queue per subscriber) or brokerless
(ZeroMQ's: straight to the consumer's endpoint).  A request carries the
reply channel (``order.replies``) and the reply -- a document message --
the request's message id as its correlation id (§3.3.1); the order
service's reply consumer (``order-1-replies``, a ``Requester``) matches
each reply to the request waiting for it, and a reply that finds no
request waiting -- it came after the timeout, or beyond the replies a
collection wanted -- is an ``orphan_reply`` event.  The synchronous style
needs no transport (the knob does not change it).

While it waits for replies the order service's worker is held, as a thread
blocked on a future would be: what the asynchronous styles change is not
the waiting but the channel -- a down service is waited for (its messages
are buffered, until the timeout) instead of refusing the call at once, and
a one-way style does not wait at all.

``service_down_for`` crashes the kitchen service (in the one-to-many
styles, the first subscriber) at ``service_down_at`` for that long: a
synchronous call is refused at once (``error``), a request with an
asynchronous response times out (the command waits in the queue and is
handled when the service is back; its late reply is an orphan), a one-way
notification or event is still accepted -- and delivered late.

:func:`styles_table` sets runs of several styles side by side.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm.engine.faults import Crash, install
from simcomm.engine.messages import DOCUMENT
from simcomm.engine.network import Link
from simcomm.engine.nodes import Context, Instance, ServiceError
from simcomm.engine.randomness import distribution
from simcomm.engine.workload import OpenLoop
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.messaging import Broker, Consumer, Delivery, Transport
from simcomm.messaging.styles import (
    Requester,
    TimedOut,
    notify,
    publish,
    publish_collect,
    reply,
    request_async,
)
from simcomm.rpc.call import call
from simcomm.rpc.handlers import answer, answer_for
from simcomm.scenarios.base import Load, Scenario, param, register

if TYPE_CHECKING:
    from simcomm.engine.messages import Message
    from simcomm.result import Result

__all__ = ["BROKER", "COMMANDS", "EVENTS", "KITCHEN", "ONE_TO_MANY", "ORDER", "REPLIES",
           "REPLY_CONSUMER", "STYLES", "SUBSCRIBERS", "TRANSPORTS", "USERS", "Params",
           "Requester", "capacity", "load", "served_by", "styles_table"]

#: the styles of §3.1.1, as the knob names them
STYLES = ("request-response", "notification", "request-async-response",
          "publish-subscribe", "publish-async-responses")
ONE_TO_MANY = ("publish-subscribe", "publish-async-responses")
#: the styles whose requester waits for a reply
REPLYING = ("request-response", "request-async-response", "publish-async-responses")
TRANSPORTS = ("broker", "brokerless")

USERS = "users"
ORDER = "order-1"
REPLY_CONSUMER = "order-1-replies"
BROKER = "broker"
KITCHEN = "kitchen-1"
#: the services that subscribe to the order service's events, in order
SUBSCRIBERS = ("kitchen", "accounting", "delivery", "notification", "payment", "loyalty")

#: the channels (a broker's queues and exchange; brokerless endpoints)
COMMANDS = "kitchen.commands"
EVENTS = "order.events"
REPLIES = "order.replies"

_TICKET = {"ticketId": 8765, "state": "CREATE_PENDING"}


@dataclass(frozen=True)
class Params:
    style: str = param(
        "request-response", choices=STYLES,
        help="how the order service talks to the services behind it (§3.1.1): one-to-one "
             "request-response (synchronous call), notification (one-way), request-async-"
             "response (reply by message); one-to-many publish-subscribe, publish-async-"
             "responses (collect replies)")
    transport: str = param(
        "broker", choices=TRANSPORTS,
        help="what carries the asynchronous styles' messages: a broker (RabbitMQ-like "
             "queues and exchanges) or none (ZeroMQ-like, straight to the consumer); "
             "request-response is a direct call either way")
    subscribers: int = param(
        3, range=(1, len(SUBSCRIBERS)), unit="services",
        help="one-to-many styles: how many services subscribe to the order service's events "
             "(kitchen, accounting, delivery, ...)")
    replies_to_collect: int = param(
        0, range=(0, len(SUBSCRIBERS)), unit="replies",
        help="publish-async-responses: replies the order service waits for (0: one from "
             "every subscriber); asking for more than there are subscribers waits for the "
             "timeout")
    reply_timeout: float = param(
        1.0, range=(0.01, 60.0), unit="s", step=0.01,
        help="how long the order service waits for an asynchronous reply (or the replies "
             "it collects) before it answers the user 'timeout'")
    request_rate: float = param(
        5.0, range=(0.1, 200.0), unit="req/s", step=0.1,
        help="mean rate at which users send requests to the order service (Poisson)")
    service_time: float = param(
        0.01, range=(0.001, 1.0), unit="s", step=0.001,
        help="mean CPU time of a request in the order service and of a request, command or "
             "event in each service behind it (log-normal)")
    service_workers: int = param(
        10, range=(1, 200), unit="workers",
        help="workers in the order service and in each service behind it (and each "
             "consumer's prefetch)")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001,
        help="one-way network delay of every hop (constant: one connection never "
             "reorders its messages)")
    service_down_at: float = param(
        20.0, range=(0.0, 3600.0), unit="s", step=1.0,
        help="when the kitchen service (one-to-many: the first subscriber) crashes, if "
             "service_down_for > 0")
    service_down_for: float = param(
        0.0, range=(0.0, 3600.0), unit="s", step=1.0,
        help="how long the kitchen service (one-to-many: the first subscriber) stays down "
             "(0: it never fails)")
    user_patience: float = param(
        10.0, range=(0.1, 600.0), unit="s", step=0.1,
        help="how long a user waits for the order service's answer before giving up")


def served_by(p: Params) -> tuple[str, ...]:
    """The instances behind the order service in this style."""
    if p.style in ONE_TO_MANY:
        return tuple(f"{s}-1" for s in SUBSCRIBERS[: p.subscribers])
    return (KITCHEN,)


def _wanted(p: Params) -> int:
    """Replies the requester waits for."""
    if p.style == "publish-async-responses":
        return p.replies_to_collect or p.subscribers
    return 1


# -- the services ---------------------------------------------------------------------

def _replier(transport: Transport, service: str):
    """A consumer's handler that does one unit of work and, if the message
    names a reply channel, answers there (:func:`simcomm.messaging.styles.reply`):
    a document (§3.3.1) about the message's order, carrying the message's id
    as its correlation id."""

    def handler(ctx: Context, d: Delivery) -> Generator[Event, Any, None]:
        yield ctx.work()
        if d.reply_to is not None:
            body = {"service": service, "orderId": d.body["orderId"], "state": "APPROVED"}
            reply(ctx.instance, transport, d, body, kind=DOCUMENT,
                  trace_id=d.envelope.trace_id)

    return handler


def _order_handler(p: Params, transport: Transport | None):
    """The order service's handler for ``p.style``: one unit of work, then the
    style's piece (:mod:`simcomm.messaging.styles`, or :func:`simcomm.rpc.call`)."""
    style = p.style
    wanted = _wanted(p)
    timeout = p.reply_timeout

    def handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        node = ctx.instance
        rid = request.trace_id
        body = {"orderId": rid, "restaurantId": 42}
        if style == "request-response":
            answer_ = yield from call(ctx, KITCHEN, body)
            return answer_for(KITCHEN, answer_)
        assert transport is not None
        if style == "notification":
            notify(node, transport, COMMANDS, body, trace_id=rid)
            return {"orderId": rid, "state": "PENDING"}
        if style == "publish-subscribe":
            publish(node, transport, EVENTS, body, trace_id=rid)
            return {"orderId": rid, "state": "PENDING"}
        if style == "request-async-response":
            got = yield request_async(node, transport, COMMANDS, body, REPLIES,
                                      timeout=timeout, trace_id=rid)
            if isinstance(got, TimedOut):
                raise ServiceError(f"no reply in {timeout:g} s", status="timeout")
            replies = [got]
        else:
            replies = yield publish_collect(node, transport, EVENTS, body, REPLIES,
                                            timeout=timeout, count=wanted, trace_id=rid)
            if replies.why != "count":
                raise ServiceError(f"{len(replies)} of {wanted} replies in {timeout:g} s",
                                   status="timeout")
        if any(r.body["orderId"] != rid for r in replies):  # matched by correlation id
            raise ServiceError("a reply about another order")
        return {"orderId": rid, "replies": [r.body["service"] for r in replies]}

    return handler


def _transport(world: World, p: Params) -> Transport:
    if p.transport == "broker":
        broker = Broker(world, BROKER)
        broker.point_to_point(COMMANDS)
        broker.point_to_point(REPLIES)
        broker.publish_subscribe(EVENTS)
        return broker
    from simcomm.messaging.brokerless import Brokerless

    bl = Brokerless(world)
    bl.point_to_point(COMMANDS)
    bl.point_to_point(REPLIES)
    bl.publish_subscribe(EVENTS)
    return bl


def build(world: World, p: Params) -> None:
    world.network.set_default(Link(latency=p.network_latency))
    work = distribution("lognormal", p.service_time)
    workers = p.service_workers
    transport: Transport | None = None
    if p.style == "request-response":
        Instance(world, KITCHEN, workers=workers, service="kitchen", service_time=work,
                 handler=answer(_TICKET))
    else:
        transport = _transport(world, p)
        if p.style in REPLYING:
            Requester(world, REPLY_CONSUMER, transport, REPLIES, workers=workers,
                      prefetch=workers, service="order")
        if p.style in ONE_TO_MANY:
            for name in SUBSCRIBERS[: p.subscribers]:
                Consumer(world, f"{name}-1", transport, EVENTS, subscription=name,
                         service=name, handler=_replier(transport, name), workers=workers,
                         prefetch=workers, service_time=work)
        else:
            Consumer(world, KITCHEN, transport, COMMANDS, service="kitchen",
                     handler=_replier(transport, "kitchen"), workers=workers,
                     prefetch=workers, service_time=work)
    Instance(world, ORDER, workers=workers, service="order", service_time=work,
             handler=_order_handler(p, transport))
    if p.service_down_for > 0:
        install(world, [Crash(served_by(p)[0], p.service_down_at, p.service_down_for)])
    OpenLoop(world, USERS, ORDER, p.request_rate, patience=p.user_patience)


def _hops(p: Params) -> int:
    """Network hops a message takes from publisher to consumer."""
    return 2 if p.transport == "broker" else 1


def capacity(p: Params) -> float:
    """An optimistic ceiling, in requests per second, of what the style can carry.

    Each pool carries at most ``workers / seconds held per request``.  The
    order service holds a worker for its own work and, in the styles that
    wait for replies, for the round trip: a request's hops there (two
    through a broker, one without), the replier's work, and the reply's
    hops back.  The kitchen service -- or each subscriber, which gets a copy
    of every event -- does one unit of work per request.  It leaves out the
    queueing, the outage and the timeouts.
    """
    hold = p.service_time
    if p.style == "request-response":
        hold += 2 * p.network_latency + p.service_time
    elif p.style in ("request-async-response", "publish-async-responses"):
        hold += 2 * _hops(p) * p.network_latency + p.service_time
    return min(p.service_workers / hold, p.service_workers / p.service_time)


def load(p: Params) -> Load:
    """The user's request and reply; a call's request and reply; through a broker,
    each message's publish and, per copy, its delivery and ack (the brokerless
    transport sends fewer: this bounds it); a reply per copy in the styles that
    collect them.  Pool changes: three per service that handles a message."""
    copies = p.subscribers if p.style in ONE_TO_MANY else 1
    per_message = {
        "request-response": 2.0,
        "notification": 3.0,
        "request-async-response": 6.0,
        "publish-subscribe": 1.0 + 2.0 * copies,
        "publish-async-responses": 1.0 + 5.0 * copies,
    }[p.style]
    handlers = 1 + copies + (copies if p.style in REPLYING else 0)
    events = 0.0
    if p.service_down_for > 0:
        events = 8.0 / max(p.service_down_at + p.service_down_for, 1.0)
    if p.style in ("request-async-response", "publish-async-responses"):
        events += p.request_rate * 0.01  # orphan replies, a few
    return Load(requests_per_s=p.request_rate, messages_per_request=2.0 + per_message,
                pool_changes_per_request=3.0 * handlers, events_per_s=events)


# -- the report ------------------------------------------------------------------------

def styles_table(results: Result | Sequence[Result]) -> Any:
    """One row per run of this scenario: what the requester waited for in each style.

    Columns: ``style``, ``transport``, ``requests``, ``answered`` (share
    answered ``ok``), ``timeout`` (share that timed out waiting for
    replies), ``error`` (share failed otherwise: refused, reset, ...),
    ``wait_p50`` / ``wait_p95`` (s, how long users waited for the answers
    that came), ``messages_per_request`` (network messages sent per user
    request, protocol traffic included), ``replies_per_request`` (replies
    matched to a waiting request per request sent, reply styles only),
    ``orphan_replies`` (replies that found no request waiting: late ones,
    duplicates), ``surplus_replies`` (replies beyond the
    ``replies_to_collect`` a request had already collected) and
    ``delivery_p95`` (s, 95th percentile from a message's publish to a
    handler finishing with it; NaN for the call, or without the trace).
    """
    import numpy as np
    import pandas as pd

    runs = [results] if not isinstance(results, Sequence) else list(results)
    rows = []
    for i, res in enumerate(runs):
        p = getattr(res, "params", None)
        if not isinstance(p, Params):
            raise ParamError("results" if len(runs) == 1 else f"results[{i}]", res,
                             "the Result of a styles run (or a list of them)")
        rq = res.requests
        finished = rq[rq["outcome"] != "pending"]
        n = len(finished)
        ok = finished[finished["outcome"] == "ok"]
        lat = ok["latency"].to_numpy(dtype=float)
        pct = np.percentile(lat, [50, 95]) if lat.size else [math.nan, math.nan]
        s = res.summary()
        replies, orphans, surplus = math.nan, 0, 0
        requester = res.world.nodes.get(REPLY_CONSUMER)
        if isinstance(requester, Requester):
            st: dict[str, Any] = dict(requester.stats)
            if st["requests"]:
                replies = st["replies"] / st["requests"]
            surplus = st["orphans"]["surplus"]
            orphans = sum(st["orphans"].values()) - surplus
        rows.append({
            "style": p.style,
            "transport": p.transport if p.style != "request-response" else "none",
            "requests": n,
            "answered": len(ok) / n if n else math.nan,
            "timeout": float((finished["outcome"] == "timeout").mean()) if n else math.nan,
            "error": float((~finished["outcome"].isin(("ok", "timeout"))).mean())
            if n else math.nan,
            "wait_p50": float(pct[0]),
            "wait_p95": float(pct[1]),
            "messages_per_request": s["messages_sent"] / len(rq) if len(rq) else math.nan,
            "replies_per_request": replies,
            "orphan_replies": orphans,
            "surplus_replies": surplus,
            "delivery_p95": s.get("message_p95_latency", math.nan),
        })
    return pd.DataFrame(rows)


SCENARIO = register(Scenario(
    name="styles",
    title="The five interaction styles: request/response, notification, async responses, "
          "publish/subscribe",
    description=("Users call the order service, which talks to the services behind it in one "
                 "of the five interaction styles of chapter 3: a synchronous call, a one-way "
                 "notification, a request with an asynchronous response matched by "
                 "correlation id, a published event, or a published request collecting "
                 "replies. The requests table shows what the requester waits for in each."),
    params=Params,
    build=build,
    views=("message_sequence", "latency_over_time", "message_flow"),
    until=60.0,
    capacity=capacity,
    load=load,
))
