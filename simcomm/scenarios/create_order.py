"""``create-order``: the availability of createOrder, synchronous vs. asynchronous.

*Microservices Patterns* §3.4.  Users send ``createOrder`` requests to the
order service.  Before an order is approved the consumer service must
verify the consumer and the restaurant service the order; every service
fails now and then (random crash / repair outages with availability
``*_availability`` and one mean time to repair, ``mean_time_to_repair``).
The knob ``design`` picks how the order service talks to the other two:

* ``sync`` -- the book's figure 3.15: the order service calls the consumer
  service, then the restaurant service (:func:`simcomm.rpc.call`, HTTP-like
  request/response) and answers the user only once both have answered.
  The operation is available only while all three are up: its
  availability is the **product** ``A_order · A_consumer · A_restaurant``
  (three at 99.5 % → 98.5 %).  A down callee refuses the call, one that
  crashes mid-call resets it: the user gets an ``error``.
* ``async`` -- the book's remedy: the order service creates the order in
  a pending state, publishes a command to each service through the broker
  (point-to-point channels ``consumer-service.commands`` and
  ``restaurant-service.commands``, persistent messages on durable queues,
  publisher confirms) and answers the user at once, ``APPROVAL_PENDING``.
  Each service handles its command whenever it is up and publishes its
  reply (a document message, §3.3.1, with the command's id as the
  correlation id) to the order service's reply channel
  ``order-service.replies``; when both replies are in, the order is
  approved.  The user's request needs only the order service and the
  broker (the publish must be confirmed): availability ``A_order ·
  A_broker``.  A service that is down delays the approval instead of
  failing the request: its commands wait in its queue.

What the broker does follows RabbitMQ (REFERENCE §4): commands and replies
are persistent on durable queues, so a broker crash loses none of them
(unacked ones come back redelivered); the services' consumers reconnect
every 5 s (Spring AMQP's recovery interval) after a broker crash, and at
once after their own restart.  A reply is acked only once its own publish
is confirmed (if the broker cannot confirm it, the command is nacked and
comes back), so every command is answered at least once; the order
service ignores a second reply to the same command (an idempotent
handler, §3.3.6).

The order service's reply consumer runs in the order service's process:
it crashes and restarts with it (:class:`OrderService`).  What the order
service knows of each order -- its commands, the replies in, approved or
not -- is its database (:class:`Orders`), which survives its crashes.

:func:`availability_report` sets the measured availability of createOrder
beside the product formula, with the standard error the run length allows
(the outages are random: the fewer there were, the less the run says),
and for ``async`` how many orders were eventually approved and how long
it took.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm.engine.faults import Outages
from simcomm.engine.messages import COMMAND, DOCUMENT
from simcomm.engine.network import Link
from simcomm.engine.nodes import Context, Instance, ServiceError
from simcomm.engine.randomness import distribution
from simcomm.engine.workload import OpenLoop
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.messaging import Broker, Consumer, Delivery, Reject
from simcomm.rpc.call import call
from simcomm.rpc.handlers import answer, answer_for
from simcomm.scenarios.base import Load, Scenario, param, register

if TYPE_CHECKING:
    from simpy.events import Event

    from simcomm.engine.messages import Message
    from simcomm.result import Result

__all__ = ["BROKER", "CONSUMER", "DESIGNS", "ORDER", "ORDER_REPLIES", "RESTAURANT",
           "USERS", "OrderService", "Orders", "Params", "availability_report", "capacity",
           "formula", "load", "required_nodes"]

ORDER = "order-service-1"
CONSUMER = "consumer-service-1"
RESTAURANT = "restaurant-service-1"
BROKER = "broker"
USERS = "users"
#: the order service's reply consumer (in the order service's process)
ORDER_REPLIES = "order-service-1-replies"

#: the channels of the async design (point-to-point queues on the broker)
CONSUMER_COMMANDS = "consumer-service.commands"
RESTAURANT_COMMANDS = "restaurant-service.commands"
REPLIES = "order-service.replies"

DESIGNS = ("sync", "async")

_CONSUMER_VERIFIED = {"consumerId": 4711, "verified": True}
_ORDER_VALIDATED = {"restaurantId": 42, "validated": True}
_ORDER = {"consumerId": 4711, "restaurantId": 42,
          "lineItems": [{"menuItemId": "m-1000", "quantity": 2}]}

#: fraction of a service time the reply consumer spends recording one reply
_REPLY_WORK = 0.1


@dataclass(frozen=True)
class Params:
    design: str = param(
        "sync", choices=DESIGNS,
        help="sync: the order service calls the consumer and restaurant services and "
             "answers when both have; async: it sends them commands through the broker and "
             "answers 'pending' at once, approving the order when their replies arrive")
    request_rate: float = param(
        2.0, range=(0.1, 200.0), unit="req/s", step=0.1,
        help="mean rate at which users send createOrder requests (Poisson)")
    order_availability: float = param(
        0.995, range=(0.9, 1.0), unit="fraction", step=0.0005,
        help="long-run fraction of time the order service is up (random crashes; the "
             "book's 99.5 %)")
    consumer_availability: float = param(
        0.995, range=(0.9, 1.0), unit="fraction", step=0.0005,
        help="long-run fraction of time the consumer service is up")
    restaurant_availability: float = param(
        0.995, range=(0.9, 1.0), unit="fraction", step=0.0005,
        help="long-run fraction of time the restaurant service is up")
    broker_availability: float = param(
        1.0, range=(0.9, 1.0), unit="fraction", step=0.0005,
        help="long-run fraction of time the message broker is up (async only; 1: never "
             "fails)")
    mean_time_to_repair: float = param(
        1.0, range=(0.1, 600.0), unit="s", step=0.1,
        help="mean length of an outage of any service (and the broker); failures come "
             "every MTTR*A/(1-A) s on average")
    service_time: float = param(
        0.01, range=(0.001, 1.0), unit="s", step=0.001,
        help="mean CPU time of a request or command in each service (log-normal)")
    service_workers: int = param(
        10, range=(1, 200), unit="workers",
        help="workers in each service (and the prefetch of each service's consumer)")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001,
        help="one-way network delay of every hop (constant: one connection never "
             "reorders its messages)")
    user_patience: float = param(
        10.0, range=(0.1, 600.0), unit="s", step=0.1,
        help="how long a user waits for the answer to createOrder before giving up")


def required_nodes(p: Params) -> tuple[str, ...]:
    """The nodes a user's createOrder needs up, in the design's product formula."""
    return (ORDER, CONSUMER, RESTAURANT) if p.design == "sync" else (ORDER, BROKER)


def formula(p: Params) -> float:
    """The book's product formula for the design: ``A_order · A_consumer ·
    A_restaurant`` (sync) or ``A_order · A_broker`` (async)."""
    if p.design == "sync":
        return p.order_availability * p.consumer_availability * p.restaurant_availability
    return p.order_availability * p.broker_availability


def _availability_of(p: Params, node: str) -> float:
    return {ORDER: p.order_availability, CONSUMER: p.consumer_availability,
            RESTAURANT: p.restaurant_availability, BROKER: p.broker_availability}[node]


class Orders:
    """The order service's database: what it knows of each order.

    It is not the process's memory: it survives the order service's
    crashes, as rows in a database would.  ``commands`` maps each command's
    message id to ``(order, service)``, so a reply finds its order by its
    correlation id; ``accepted`` holds when each order was answered
    ``pending``, ``approved`` when its last reply arrived; ``rejected`` the
    orders whose commands the broker could not take (the user got an error).
    """

    def __init__(self) -> None:
        self.commands: dict[int, tuple[int, str]] = {}
        self.accepted: dict[int, float] = {}
        self.replies: dict[int, set[str]] = {}
        self.approved: dict[int, float] = {}
        self.rejected: set[int] = set()
        #: replies to a command answered before (at-least-once delivery)
        self.duplicate_replies = 0
        #: replies for an order the user was told had failed
        self.late_replies = 0

    def accept(self, order: int, now: float) -> None:
        """The order's commands are confirmed: it is pending (or already
        approved, if both replies overtook the last confirm)."""
        self.accepted[order] = now
        if len(self.replies.get(order, ())) == 2:
            self.approved[order] = now

    def record_reply(self, correlation_id: int | None, now: float) -> None:
        """A reply arrived: note it, approve its order once both are in."""
        found = self.commands.get(correlation_id) if correlation_id is not None else None
        if found is None:
            return
        order, service = found
        if order in self.rejected:
            self.late_replies += 1
            return
        got = self.replies.setdefault(order, set())
        if service in got:
            self.duplicate_replies += 1
            return
        got.add(service)
        if len(got) == 2 and order in self.accepted:
            self.approved[order] = now


class OrderService(Instance):
    """The order service's process: its request workers and, in the async
    design, its reply consumer, which crashes and restarts with it."""

    def __init__(self, world: World, name: str, **args: Any) -> None:
        super().__init__(world, name, **args)
        self.orders = Orders()
        self.replies: Consumer | None = None

    def crash(self, repair_after: float | None = None) -> None:
        was_up = self.up
        super().crash(repair_after)
        if was_up and self.replies is not None:
            self.replies.crash(repair_after)


def _sync_handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
    """Verify the consumer, then the order with the restaurant, each by a call."""
    yield ctx.work()
    for dest in (CONSUMER, RESTAURANT):
        reply = yield from call(ctx, dest, request.body)
        answer_for(dest, reply)  # raises an error reply if the call failed
    return {"orderId": request.trace_id, "state": "APPROVED"}


def _async_handler(broker: Broker):
    """Create the order pending, send both commands (confirmed), answer at once."""

    def handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        node: OrderService = ctx.instance  # type: ignore[assignment]
        world = node.world
        order: int = request.trace_id  # type: ignore[assignment]
        confirms: list[Event] = []
        for service, channel, body in (("consumer", CONSUMER_COMMANDS, "VerifyConsumer"),
                                       ("restaurant", RESTAURANT_COMMANDS, "ValidateOrder")):
            # the message id the publish gives its envelope is the next one
            # handed out (both transports take it first): the reply's
            # correlation id will be this.  The broker's own publish, as the
            # arguments are fixed: simcomm.messaging.publish would check them
            # on every call, which costs more than the hop itself
            node.orders.commands[world.message_count + 1] = (order, service)
            ev = broker.publish(node, channel, {"command": body, "orderId": order},
                                kind=COMMAND, confirm=True, reply_to=REPLIES, trace_id=order)
            assert ev is not None  # a publish with confirm returns its confirm
            confirms.append(ev)
        yield node.env.all_of(confirms)
        outcomes = [str(ev.value) for ev in confirms]
        if any(o != "ack" for o in outcomes):
            node.orders.rejected.add(order)
            raise ServiceError(f"{BROKER}: {'/'.join(outcomes)}")
        node.orders.accept(order, node.env.now)
        return {"orderId": order, "state": "APPROVAL_PENDING"}

    return handler


def _command_handler(broker: Broker, reply: dict[str, Any]):
    """Handle a command, then publish the reply to its reply channel; ack only
    once the broker has confirmed the reply (else nack: it comes back)."""

    def handler(ctx: Context, d: Delivery) -> Generator[Any, Any, Any]:
        yield ctx.work()
        # what simcomm.messaging.styles.reply sends (reply channel, correlation
        # id), by the broker's own publish for the same reason as the commands
        ev = broker.publish(ctx.instance, d.reply_to or REPLIES, reply, kind=DOCUMENT,
                            correlation_id=d.message_id, confirm=True,
                            trace_id=d.envelope.trace_id)
        outcome = yield ev
        if outcome != "ack":
            raise Reject(requeue=True)

    return handler


def _reply_handler(orders: Orders):
    def handler(ctx: Context, d: Delivery) -> Generator[Any, Any, Any]:
        yield ctx.work()
        orders.record_reply(d.correlation_id, ctx.now)

    return handler


def build(world: World, p: Params) -> None:
    world.network.set_default(Link(latency=p.network_latency))
    work = distribution("lognormal", p.service_time)
    if p.design == "sync":
        order = OrderService(world, ORDER, workers=p.service_workers, service="order",
                             service_time=work, handler=_sync_handler)
        Instance(world, CONSUMER, workers=p.service_workers, service="consumer",
                 service_time=work, handler=answer(_CONSUMER_VERIFIED))
        Instance(world, RESTAURANT, workers=p.service_workers, service="restaurant",
                 service_time=work, handler=answer(_ORDER_VALIDATED))
    else:
        broker = Broker(world, BROKER)
        for channel in (CONSUMER_COMMANDS, RESTAURANT_COMMANDS, REPLIES):
            broker.point_to_point(channel)
        order = OrderService(world, ORDER, workers=p.service_workers, service="order",
                             service_time=work, handler=_async_handler(broker))
        order.replies = Consumer(
            world, ORDER_REPLIES, broker, REPLIES, service="order",
            handler=_reply_handler(order.orders), workers=p.service_workers,
            prefetch=p.service_workers,
            service_time=distribution("lognormal", p.service_time * _REPLY_WORK))
        for name, service, channel, body in (
                (CONSUMER, "consumer", CONSUMER_COMMANDS, _CONSUMER_VERIFIED),
                (RESTAURANT, "restaurant", RESTAURANT_COMMANDS, _ORDER_VALIDATED)):
            Consumer(world, name, broker, channel, service=service,
                     handler=_command_handler(broker, body), workers=p.service_workers,
                     prefetch=p.service_workers, service_time=work)
        if p.broker_availability < 1:
            Outages(world, BROKER, p.broker_availability, p.mean_time_to_repair)
    for node in (ORDER, CONSUMER, RESTAURANT):
        a = _availability_of(p, node)
        if a < 1:
            Outages(world, node, a, p.mean_time_to_repair)
    OpenLoop(world, USERS, order.name, p.request_rate, body=_ORDER, patience=p.user_patience)


def capacity(p: Params) -> float:
    """An optimistic ceiling, in requests per second, of what createOrder can carry.

    Each pool carries at most ``workers / seconds held per request``.  The
    order service holds a worker for its own work and, in the sync design,
    for both calls in turn (two network delays and a service time each);
    in the async design for the two publishes' confirms (two network
    delays: the broker routes for free).  The consumer and restaurant
    services each handle one request (or command) per order.  It leaves
    out the outages and the queueing.
    """
    hop = 2 * p.network_latency
    if p.design == "sync":
        hold = p.service_time + 2 * (hop + p.service_time)
    else:
        hold = p.service_time + hop
    return min(p.service_workers / hold, p.service_workers / p.service_time)


def load(p: Params) -> Load:
    """Sync: a request and a reply to the order service and to each callee.
    Async: the user's request and reply, and for each of the two commands its
    publish and confirm, its delivery and ack, then the reply's publish,
    confirm, delivery and ack.  Events: a crash and a restart per outage of
    each node, and in the async design a consumer's unsubscribe, connection
    loss and subscribe around each outage."""
    if p.design == "sync":
        messages, pools, nodes = 6.0, 9.0, [ORDER, CONSUMER, RESTAURANT]
    else:
        messages, pools, nodes = 18.0, 15.0, [ORDER, CONSUMER, RESTAURANT, BROKER]
    per_outage = 2.0 if p.design == "sync" else 8.0
    events = 0.0
    for node in nodes:
        a = _availability_of(p, node)
        if a < 1:  # MTBF + MTTR = MTTR / (1 - A)
            events += per_outage * (1 - a) / p.mean_time_to_repair
    return Load(requests_per_s=p.request_rate, messages_per_request=messages,
                pool_changes_per_request=pools, events_per_s=events)


# -- the report ------------------------------------------------------------------------

def down_intervals(res: Result, node: str) -> list[tuple[float, float]]:
    """When ``node`` was down in the run: ``(crash, restart)`` pairs from the
    events table (an outage still on at the end ends at ``res.until``)."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for time, who, event, _detail in res.world.trace.events:
        if who != node:
            continue
        if event == "crash" and start is None:
            start = time
        elif event == "restart" and start is not None:
            out.append((start, time))
            start = None
    if start is not None:
        out.append((start, res.until))
    return out


def _up_at(intervals: list[tuple[float, float]], times: list[float]) -> list[bool]:
    starts = [a for a, _ in intervals]
    up = []
    for t in times:
        i = bisect.bisect_right(starts, t) - 1
        up.append(not (i >= 0 and intervals[i][0] <= t < intervals[i][1]))
    return up


def availability_report(res: Result) -> dict[str, Any]:
    """The availability of createOrder in a run, beside the book's product formula.

    * ``design``, ``run_length`` (s), ``requests`` (finished createOrder
      requests: those still pending at the end are left out);
    * ``measured`` -- the share of them answered (``ok``: approved in the
      sync design, accepted as pending in the async one);
    * ``formula`` -- the product of the availabilities set by the knobs
      (:func:`formula`);
    * ``observed_uptime`` -- per required node, the share of the run it was
      up; ``formula_observed`` their product (what the formula gives with
      this run's own outages), and ``all_up_share`` the share of requests
      that arrived while every required node was up;
    * ``outages`` -- per required node, how many outages began in the run;
    * ``standard_error`` -- how far ``measured`` may fall from ``formula``
      by chance.  Outages are random: over a run with ``K`` of them a
      node's unavailability ``q`` is measured with a relative error of
      about ``sqrt(2 / K)`` (the downtime is a sum of ``K`` exponential
      repair times: its squared coefficient of variation is ``2 / K``),
      and which requests fall in the outages adds ``sqrt(m(1 - m) / N)``.
      So ``sqrt(sum(q_j**2 * 2 / K_j) + m(1 - m) / N)``, with ``K_j`` at
      least 1.  ``sampling_error`` is the second term alone: how far
      ``measured`` may fall from ``all_up_share``;
    * ``completed`` -- orders approved by the end (sync: the answered ones,
      whose answer is the approval), ``completed_share`` of the answered
      ones, and ``completion_p50`` / ``_p95`` / ``_p99`` (s, from the
      user's request to the approval); ``incomplete``: answered orders not
      yet approved at the end (async);
    * async only, ``duplicate_replies`` (a command answered twice, at
      least once delivery) and ``late_replies`` (replies to an order the
      broker could not take).
    """
    import numpy as np

    p = getattr(res, "params", None)
    if not isinstance(p, Params):
        raise ParamError("res", res, "the Result of a create-order run")
    rq = res.requests
    finished = rq[rq["outcome"] != "pending"]
    n = len(finished)
    answered = finished[finished["outcome"].isin(("ok", "fallback"))]
    measured = len(answered) / n if n else math.nan
    nodes = required_nodes(p)
    uptime: dict[str, float] = {}
    outages: dict[str, int] = {}
    up_all = np.ones(n, dtype=bool)
    starts = finished["start"].tolist()
    var = 0.0
    for node in nodes:
        downs = down_intervals(res, node)
        down = sum(min(b, res.until) - a for a, b in downs)
        uptime[node] = 1.0 - down / res.until
        outages[node] = len(downs)
        up_all &= np.array(_up_at(downs, starts), dtype=bool)
        q = 1.0 - _availability_of(p, node)
        var += q * q * 2.0 / max(len(downs), 1)
    sampling = measured * (1 - measured) / n if n else math.nan
    order: OrderService = res.world.nodes[ORDER]  # type: ignore[assignment]
    if p.design == "sync":
        done = answered["latency"].to_numpy(dtype=float)
        incomplete = 0
        extra: dict[str, Any] = {}
    else:
        db = order.orders
        start = dict(zip(rq["request_id"], rq["start"], strict=True))
        done = np.array([t - start[o] for o, t in db.approved.items()], dtype=float)
        incomplete = len(set(db.accepted) - set(db.approved))
        extra = {"duplicate_replies": db.duplicate_replies, "late_replies": db.late_replies}
    pct = np.percentile(done, [50, 95, 99]) if done.size else [math.nan] * 3
    return {
        "design": p.design,
        "run_length": res.until,
        "requests": n,
        "measured": measured,
        "formula": formula(p),
        "standard_error": math.sqrt(var + sampling) if n else math.nan,
        "formula_observed": math.prod(uptime.values()),
        "all_up_share": float(up_all.mean()) if n else math.nan,
        "sampling_error": math.sqrt(sampling) if n else math.nan,
        "observed_uptime": uptime,
        "outages": outages,
        "completed": int(done.size),
        "completed_share": done.size / len(answered) if len(answered) else math.nan,
        "incomplete": incomplete,
        "completion_p50": float(pct[0]),
        "completion_p95": float(pct[1]),
        "completion_p99": float(pct[2]),
        **extra,
    }


SCENARIO = register(Scenario(
    name="create-order",
    title="createOrder: synchronous calls vs. asynchronous messaging (availability)",
    description=("Users create orders; the order service needs the consumer and restaurant "
                 "services, which fail now and then. Called synchronously, createOrder is "
                 "available only while all three are up (the product of their "
                 "availabilities); with commands and replies through a broker it needs "
                 "only the order service and the broker, and the order is approved later."),
    params=Params,
    build=build,
    views=("availability_over_time", "outcomes_over_time", "message_flow"),
    until=300.0,
    capacity=capacity,
    load=load,
))
