"""The interaction styles of Microservices Patterns §3.1.1 work on both transports:
one-way notification, publish/subscribe, asynchronous request/response matched by
correlation id (with timeouts and orphans), publish/async responses collected until
a count or a deadline.  The synchronous call sits beside them for comparison.
"""

from __future__ import annotations

import numpy as np
import pytest

from simcomm.engine import Crash, Instance, Link, Node, World, install
from simcomm.engine.messages import COMMAND, DOCUMENT, EVENT, REPLY
from simcomm.errors import ParamError
from simcomm.messaging import Broker, Consumer, publish
from simcomm.messaging.brokerless import Brokerless
from simcomm.messaging.styles import (
    ORPHAN_REASONS,
    STYLES,
    Collected,
    Requester,
    TimedOut,
    notify,
    publish_collect,
    reply,
    request_async,
    style,
)
from simcomm.messaging.styles import publish as publish_event
from simcomm.result import Result
from simcomm.rpc import call

TRANSPORTS = ("broker", "brokerless")


class Shop:
    """An order service's requester (reply channel ``order.replies``), a pricing
    service behind the point-to-point ``pricing`` channel, and subscribers of
    the ``order.events`` publish-subscribe channel that answer what they get."""

    def __init__(self, transport: str, seed: int = 0, latency: float = 0.01,
                 subscribers: int = 3, price_time=None, **requester) -> None:
        self.world = World(seed=seed, network=Link(latency=latency))
        if transport == "broker":
            self.t = Broker(self.world)
        else:
            self.t = Brokerless(self.world, reconnect_interval=0.2)
        self.t.point_to_point("pricing")
        self.t.point_to_point("order.replies")
        self.t.publish_subscribe("order.events")
        self.price_time = price_time or (lambda body: 0.1)
        self.pricing = Consumer(self.world, "pricing", self.t, "pricing",
                                handler=self._price, workers=3, prefetch=3)
        self.subs = [Consumer(self.world, f"sub{i}", self.t, "order.events",
                              subscription=f"sub{i}", handler=self._answer(i))
                     for i in range(subscribers)]
        self.order = Requester(self.world, "order", self.t, "order.replies", **requester)
        self.got: list[tuple[float, object]] = []

    def _price(self, ctx, d):
        yield ctx.work(self.price_time(d.body))
        reply(ctx.instance, self.t, d, {"item": d.body, "price": 10 * d.body})

    def _answer(self, i: int):
        def handler(ctx, d):
            yield ctx.work(0.1 * (i + 1))  # sub0 answers first, then sub1, ...
            if d.reply_to is not None:
                reply(ctx.instance, self.t, d, f"sub{i}", kind=DOCUMENT)
        return handler

    def at(self, t: float, action) -> None:
        def go() -> None:
            ev = action()
            if ev is not None:
                ev.callbacks.append(lambda e: self.got.append((self.world.now, e.value)))
        self.world.at(t, go)

    def run(self, until: float) -> Shop:
        self.world.run(until=until)
        return self

    def mq(self, event: str) -> list[tuple]:
        return [r for r in self.world.trace.mq if r[1] == event]


# -- one-way styles ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_notification_reaches_one_service_and_expects_nothing(transport):
    """One-way notification: a command on a point-to-point channel, consumed
    once; nothing comes back."""
    shop = Shop(transport)
    seen = []

    def log(ctx, d):
        seen.append((d.kind, d.body, d.reply_to))
        yield ctx.work(0.01)

    shop.t.point_to_point("audit")
    Consumer(shop.world, "auditor", shop.t, "audit", handler=log)
    shop.world.at(1.0, lambda: notify(shop.order, shop.t, "audit", "order 1 created"))
    shop.run(5)
    assert seen == [(COMMAND, "order 1 created", None)]
    assert shop.order.stats["replies"] == 0 and not shop.order.orphans


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_publish_subscribe_gives_every_subscriber_a_copy(transport):
    """Publish/subscribe: an event, one copy per subscription, no answers
    (the message names no reply channel)."""
    shop = Shop(transport)
    shop.world.at(1.0, lambda: publish_event(shop.order, shop.t, "order.events", "created"))
    shop.run(5)
    consumed = sorted(r[3] for r in shop.mq("consume"))
    assert consumed == ["order.events.sub0", "order.events.sub1", "order.events.sub2"]
    assert len(shop.mq("publish")) == 1  # nobody replied


def test_style_functions_check_the_channel_kind():
    shop = Shop("broker")
    with pytest.raises(ParamError) as err:
        notify(shop.order, shop.t, "order.events", 1)
    assert err.value.field == "channel"
    with pytest.raises(ParamError) as err:
        publish_event(shop.order, shop.t, "pricing", 1)
    assert err.value.field == "channel"
    with pytest.raises(ParamError) as err:
        notify(shop.order, "broker", "pricing", 1)  # type: ignore[arg-type]
    assert err.value.field == "transport"


# -- asynchronous request / response ------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_replies_are_matched_by_correlation_id(transport):
    """Requests answered out of order (the first takes longest) each get their
    own reply: the requester matches by correlation id, not by arrival."""
    shop = Shop(transport, price_time=lambda body: 1.0 / body)
    events = {}
    for item in (1, 2, 4):
        def ask(item=item):
            ev = request_async(shop.order, shop.t, "pricing", item, "order.replies",
                               timeout=10)
            events[item] = ev
            return ev
        shop.at(1.0, ask)
    shop.run(20)
    # answered 4 first (0.25 s), then 2, then 1
    assert [v.body["item"] for _, v in shop.got] == [4, 2, 1]
    for item, ev in events.items():
        d = ev.value
        assert d.body == {"item": item, "price": 10 * item}
        assert d.correlation_id == ev.correlation_id
        assert d.kind == REPLY
    requests = {r[2]: r for r in shop.mq("publish") if r[3] == "pricing"}
    assert set(requests) == {ev.correlation_id for ev in events.values()}
    assert shop.order.stats["replies"] == 3 and shop.order.stats["waiting"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_request_names_its_reply_channel_and_the_reply_its_request(transport):
    """§3.3.1 headers: the request carries the reply channel, the reply the
    request's message id as correlation id."""
    shop = Shop(transport)
    seen = []

    def price(ctx, d):
        seen.append((d.kind, d.reply_to, d.correlation_id))
        yield ctx.work(0.1)
        reply(ctx.instance, shop.t, d, "ok")

    shop.pricing.handler = price
    shop.at(1.0, lambda: request_async(shop.order, shop.t, "pricing", 1, "order.replies"))
    shop.run(5)
    ((_, answer),) = shop.got
    assert seen == [(COMMAND, "order.replies", None)]
    request_id = next(r[2] for r in shop.mq("publish") if r[3] == "pricing")
    assert answer.correlation_id == request_id


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_request_times_out_and_its_late_reply_is_an_orphan(transport):
    """No reply within the timeout: the event fires with TimedOut at the
    deadline; the reply that comes later is recorded as an orphan (``late``)."""
    shop = Shop(transport, price_time=lambda body: 3.0)
    shop.at(1.0, lambda: request_async(shop.order, shop.t, "pricing", 1, "order.replies",
                                       timeout=2.0))
    shop.run(10)
    ((t, verdict),) = shop.got
    assert t == pytest.approx(3.0)
    assert isinstance(verdict, TimedOut) and verdict.status == "timeout"
    assert verdict.deadline == pytest.approx(3.0)
    ((when, mid, cid, why),) = shop.order.orphans
    assert why == "late" and cid == verdict.correlation_id and when > 4.0
    assert [e for e in shop.world.trace.events if e[2] == "orphan_reply"] == [
        (when, "order", "orphan_reply", f"reply {mid} to request {cid} (late)")]
    assert shop.order.stats["timeouts"] == 1
    assert shop.order.stats["orphans"] == dict.fromkeys(ORPHAN_REASONS, 0) | {"late": 1}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_duplicate_reply_and_an_unknown_one_are_orphans(transport):
    """A reply to a request already answered (at-least-once delivery) and one
    to a request never made are recorded, not matched."""
    shop = Shop(transport)

    def twice(ctx, d):
        yield ctx.work(0.1)
        reply(ctx.instance, shop.t, d, "once")
        reply(ctx.instance, shop.t, d, "twice")

    shop.pricing.handler = twice
    shop.at(1.0, lambda: request_async(shop.order, shop.t, "pricing", 1, "order.replies"))
    stranger = Node(shop.world, "stranger")
    shop.world.at(2.0, lambda: publish(stranger, shop.t, "order.replies", "?",
                                       kind=REPLY, correlation_id=424242))
    shop.run(5)
    assert [v.body for _, v in shop.got] == ["once"]
    assert [(cid is not None, why) for _, _, cid, why in shop.order.orphans] == [
        (True, "duplicate"), (True, "unknown")]
    assert shop.order.orphans[1][2] == 424242


def test_abandon_makes_the_reply_late():
    shop = Shop("broker", price_time=lambda body: 1.0)
    holder = {}

    def ask():
        holder["ev"] = request_async(shop.order, shop.t, "pricing", 1, "order.replies")

    shop.world.at(1.0, ask)
    shop.world.at(1.5, lambda: shop.order.abandon(holder["ev"].correlation_id))
    shop.run(5)
    assert not holder["ev"].triggered
    assert [why for *_, why in shop.order.orphans] == ["late"]


def test_async_request_outlives_the_callee_being_down_where_the_sync_call_fails():
    """§3.4 in one test: with the pricing service down, a synchronous call is
    refused at once, while an asynchronous request waits in the broker's queue
    and is answered when the service is back."""
    shop = Shop("broker")
    Instance(shop.world, "pricing-rpc", service_time=0.1)
    install(shop.world, [Crash("pricing", at=0.5, duration=5.0),
                         Crash("pricing-rpc", at=0.5, duration=5.0)])
    outcomes = {}

    def sync_handler(ctx, request):
        answer = yield from call(ctx, "pricing-rpc", 1)
        outcomes["sync"] = (ctx.now, answer.status)

    def async_handler(ctx, request):
        d = yield request_async(ctx.instance, shop.t, "pricing", 1, "order.replies",
                                timeout=30)
        outcomes["async"] = (ctx.now, d.body["price"])

    Instance(shop.world, "order-sync", handler=sync_handler)
    Instance(shop.world, "order-async", handler=async_handler)
    client = Node(shop.world, "client")
    shop.world.at(1.0, lambda: client.request("order-sync"))
    shop.world.at(1.0, lambda: client.request("order-async"))
    shop.run(20)
    assert outcomes["sync"][1] == "refused" and outcomes["sync"][0] < 1.1
    assert outcomes["async"][1] == 10 and outcomes["async"][0] > 5.5
    assert style("request-response") is call


# -- publish / async responses ----------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_collect_stops_at_the_count(transport):
    """Publish/async responses with count=2: the event fires with the first two
    replies as soon as the second arrives; the third is a surplus orphan."""
    shop = Shop(transport)
    shop.at(1.0, lambda: publish_collect(shop.order, shop.t, "order.events", "quote?",
                                         "order.replies", count=2))
    shop.run(10)
    ((t, got),) = shop.got
    assert isinstance(got, Collected) and got.why == "count"
    assert [d.body for d in got] == ["sub0", "sub1"]
    assert all(d.correlation_id == got.correlation_id for d in got)
    assert 1.2 < t < 1.4  # sub1 answers after 0.2 s of work
    assert [why for *_, why in shop.order.orphans] == ["surplus"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_collect_stops_at_the_deadline(transport):
    """With a deadline (``timeout`` from now, or ``until`` absolute) the event
    fires then with what came; later replies are late orphans."""
    for kw in ({"timeout": 0.3}, {"until": 1.3}):
        shop = Shop(transport)
        shop.at(1.0, lambda kw=kw, shop=shop: publish_collect(
            shop.order, shop.t, "order.events", "quote?", "order.replies", count=3, **kw))
        shop.run(10)
        ((t, got),) = shop.got
        assert t == pytest.approx(1.3) and got.why == "deadline"
        assert [d.body for d in got] == ["sub0", "sub1"]
        assert [why for *_, why in shop.order.orphans] == ["late"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_collect_with_a_subscriber_down(transport):
    """A subscriber that is down does not answer in time: the collection ends at
    its deadline with the others' replies (brokered or not, the copy waits for
    it; its answer comes late)."""
    shop = Shop(transport)
    install(shop.world, [Crash("sub1", at=0.5, duration=3.0)])
    shop.at(1.0, lambda: publish_collect(shop.order, shop.t, "order.events", "quote?",
                                         "order.replies", timeout=1.0))
    shop.run(20)
    ((t, got),) = shop.got
    assert [d.body for d in got] == ["sub0", "sub2"] and t == pytest.approx(2.0)
    assert [why for *_, why in shop.order.orphans] == ["late"]
    assert Result(shop.world).message_ledger()["balanced"]


def test_requesters_sharing_a_reply_channel_compete_for_replies():
    """Two requesters on one reply channel get its replies round-robin: a reply
    reaching the one that did not ask is an orphan there (give each its own)."""
    shop = Shop("broker")
    other = Requester(shop.world, "order-2", shop.t, "order.replies")
    shop.at(1.0, lambda: request_async(shop.order, shop.t, "pricing", 1, "order.replies",
                                       timeout=2))
    shop.at(1.5, lambda: request_async(shop.order, shop.t, "pricing", 2, "order.replies",
                                       timeout=2))
    shop.run(10)
    answered = [isinstance(v, TimedOut) for _, v in shop.got]
    assert sorted(answered) == [False, True]
    assert [why for *_, why in other.orphans] == ["unknown"]


# -- determinism, the table, bad arguments -------------------------------------------------


def test_same_seed_same_run():
    def run(seed: int):
        shop = Shop("brokerless", seed=seed, price_time=lambda body: 0.05)
        rng = np.random.default_rng(seed)
        for t in np.cumsum(rng.exponential(0.1, 40)):
            shop.at(float(t), lambda: request_async(shop.order, shop.t, "pricing", 1,
                                                    "order.replies", timeout=0.3))
        shop.run(20)
        return list(shop.world.trace.mq), [(t, getattr(v, "status", "ok"))
                                           for t, v in shop.got]

    assert run(3) == run(3)


def test_the_five_styles():
    assert len(STYLES) == 5
    assert {v[:2] for v in STYLES.values()} == {
        ("one-to-one", "synchronous"), ("one-to-one", "asynchronous"),
        ("one-to-many", "asynchronous")}
    assert style("async-request-response") is request_async
    assert style("one-way-notification") is notify
    assert style("publish-subscribe") is publish_event
    assert style("publish-async-responses") is publish_collect
    with pytest.raises(ParamError) as err:
        style("rpc")
    assert err.value.field == "name"


def test_bad_arguments():
    shop = Shop("broker")
    o, t = shop.order, shop.t
    cases = [
        (lambda: request_async(o, t, "pricing", 1, "order.replies", timeout=0), "timeout"),
        (lambda: request_async(o, t, "pricing", 1, "order.replies", timeout=-1), "timeout"),
        (lambda: request_async(o, t, "pricing", 1, "order.replies", timeout=True), "timeout"),
        (lambda: request_async(o, t, "pricing", 1, "nowhere"), "reply_channel"),
        (lambda: request_async(o, t, "order.events", 1, "order.replies"), "channel"),
        (lambda: request_async(o, t, "pricing", 1, "order.replies", reply_to="x"), "reply_to"),
        (lambda: request_async(o, t, "pricing", 1, "order.replies", correlation_id=3),
         "correlation_id"),
        (lambda: request_async(o, "t", "pricing", 1, "order.replies"), "transport"),
        (lambda: publish_collect(o, t, "order.events", 1, "order.replies"), "count"),
        (lambda: publish_collect(o, t, "order.events", 1, "order.replies", count=0), "count"),
        (lambda: publish_collect(o, t, "order.events", 1, "order.replies", count=1.5),
         "count"),
        (lambda: publish_collect(o, t, "order.events", 1, "order.replies", until=-1), "until"),
        (lambda: publish_collect(o, t, "order.events", 1, "order.replies", until=5,
                                 timeout=1), "until"),
        (lambda: publish_collect(o, t, "pricing", 1, "order.replies", count=1), "channel"),
        (lambda: Requester(shop.world, "r1", t, "order.events", subscription="x"),
         "subscription"),
        (lambda: Requester(shop.world, "r2", t, "order.events"), "channel"),
        (lambda: Requester(shop.world, "r3", t, "order.replies", handler=None), "handler"),
        (lambda: reply(o, t, "not a delivery"), "request"),
    ]
    for make, field in cases:
        with pytest.raises(ParamError) as err:
            make()
        assert err.value.field == field, (field, err.value)
    assert not shop.mq("publish")  # nothing was sent by a refused call
    # numpy numbers are numbers; the event's correlation id is the publish's id
    ev = publish_collect(o, t, "order.events", 1, "order.replies", count=np.int64(2),
                         timeout=np.float64(1.0))
    assert [r[2] for r in shop.mq("publish")] == [ev.correlation_id]


def test_reply_needs_a_reply_channel():
    shop = Shop("brokerless")
    caught = []

    def price(ctx, d):
        yield ctx.work(0.01)
        try:
            reply(ctx.instance, shop.t, d, "x")
        except ParamError as exc:
            caught.append(exc.field)

    shop.pricing.handler = price
    shop.world.at(1.0, lambda: notify(shop.order, shop.t, "pricing", 1))
    shop.run(3)
    assert caught == ["request"]


def test_kinds_default_per_style():
    """Commands for requests and notifications, events for publishing, replies
    for answers -- each can be changed."""
    shop = Shop("broker")
    kinds = []

    def log(ctx, d):
        kinds.append(d.kind)
        yield ctx.work(0.01)

    shop.pricing.handler = log
    shop.world.at(1.0, lambda: notify(shop.order, shop.t, "pricing", 1))
    shop.world.at(1.1, lambda: notify(shop.order, shop.t, "pricing", 1, kind=DOCUMENT))
    shop.world.at(1.2, lambda: request_async(shop.order, shop.t, "pricing", 1,
                                             "order.replies", kind=EVENT))
    shop.run(3)
    assert kinds == [COMMAND, DOCUMENT, EVENT]
