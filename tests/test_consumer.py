"""Consumers: handlers, acks and nacks, auto-ack, crashes, hangs, subscriptions.

REFERENCE §4: auto-ack = delivered counts as done (lost if the consumer dies
first); a consumer whose channel closes has its unacked deliveries requeued,
redelivered with redelivered=true, maybe to another consumer.  The book
(§3.3): a durable subscription keeps what is published while its subscriber
is away, a non-durable one does not.
"""

from __future__ import annotations

import pytest

from simcomm.engine import (
    Crash,
    ErrorRate,
    Hang,
    Link,
    Node,
    ServiceError,
    Slowdown,
    World,
    install,
)
from simcomm.errors import ParamError
from simcomm.messaging import Broker, Consumer, Reject, publish

# -- helpers -------------------------------------------------------------------------


class Bench:
    """A world, a broker, a publisher node; bodies remembered by message id."""

    def __init__(self, seed: int = 0, latency: float | None = None, **broker_args) -> None:
        self.world = World(seed=seed, network=Link(latency=latency) if latency else None)
        self.broker = Broker(self.world, **broker_args)
        self.pub = Node(self.world, "pub")
        self.body: dict[int, object] = {}

    def publish_at(self, t: float, channel: str, body: object, **kw) -> None:
        def go() -> None:
            publish(self.pub, self.broker, channel, body, **kw)
            mid = next(r[2] for r in reversed(self.world.trace.mq) if r[1] == "publish")
            self.body[mid] = body

        self.world.at(t, go)

    def run(self, until: float) -> Bench:
        self.world.run(until=until)
        return self

    def mq(self, event: str | None = None, node: str | None = None) -> list[tuple]:
        return [r for r in self.world.trace.mq
                if (event is None or r[1] == event) and (node is None or r[4] == node)]

    def bodies(self, event: str, node: str | None = None) -> list[object]:
        return [self.body.get(r[2]) for r in self.mq(event, node)]


def logging(log: list, service: float = 1.0):
    def handler(ctx, d):
        log.append((ctx.now, ctx.instance.name, d.body, d.redelivered))
        yield ctx.work(service)

    return handler


# -- the handler and the ack ------------------------------------------------------------


def test_the_handler_runs_then_the_message_counts_consumed_then_it_is_acked():
    b = Bench(latency=0.5)
    b.broker.point_to_point("q")
    seen: list = []

    def handler(ctx, d):
        seen.append((ctx.now, d.body, d.kind, d.queue, d.delivery_tag, d.redelivered))
        yield ctx.work(2.0)

    c = Consumer(b.world, "c", b.broker, "q", handler=handler)
    b.publish_at(1, "q", {"order": 7}, kind="command")
    b.run(10)
    assert seen == [(2.0, {"order": 7}, "command", "q", 1, False)]
    assert [(r[0], r[1], r[4]) for r in b.mq()] == [
        (1.0, "publish", "pub"), (1.5, "enqueue", "broker"), (2.0, "deliver", "c"),
        (4.0, "consume", "c"), (4.5, "ack", "c")]
    assert c.stats == {"received": 1, "consumed": 1, "failed": 0, "lost": 0, "buffered": 0,
                       "busy": 0, "redelivered": 0}


def test_the_default_handler_is_one_unit_of_work_stretched_by_a_slowdown():
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", service_time=1.0)
    b.publish_at(1, "q", "a")
    b.publish_at(5, "q", "b")
    install(b.world, [Slowdown("c", at=4.0, duration=10.0, factor=3.0)])
    b.run(20)
    assert [r[0] for r in b.mq("consume")] == [2.0, 8.0]


def test_deliveries_beyond_the_free_workers_wait_in_the_consumer():
    b = Bench()
    b.broker.point_to_point("q")
    c = Consumer(b.world, "c", b.broker, "q", prefetch=5, workers=2, service_time=1.0)
    for i in range(5):
        b.publish_at(1, "q", i)
    b.world.at(1.5, lambda: b.seen.append((c.busy, len(c.queue))))
    b.seen = []  # type: ignore[attr-defined]
    b.run(10)
    assert b.seen == [(2, 3)]  # type: ignore[attr-defined]
    assert [r[0] for r in b.mq("consume")] == [2.0, 2.0, 3.0, 3.0, 4.0]


def test_reject_requeues_or_discards_as_asked():
    b = Bench()
    b.broker.point_to_point("q")

    def handler(ctx, d):
        yield ctx.work(0.5)
        if d.body == "again" and not d.redelivered:
            raise Reject(requeue=True)
        if d.body == "never":
            raise Reject(requeue=False)

    c = Consumer(b.world, "c", b.broker, "q", handler=handler)
    b.publish_at(1, "q", "again")
    b.publish_at(1, "q", "never")
    b.run(10)
    assert [(b.body[r[2]], r[5]) for r in b.mq("nack")] == [("again", "requeue"),
                                                            ("never", "discard")]
    assert b.bodies("consume") == ["again"]
    assert c.failed == 2 and c.consumed == 1


@pytest.mark.parametrize(("on_error", "after"), [("requeue", "requeue"),
                                                 ("dead_letter", "drop")])
def test_a_service_error_follows_on_error(on_error, after):
    b = Bench()
    b.broker.point_to_point("q")
    calls: list = []

    def handler(ctx, d):
        calls.append(d.redelivered)
        yield ctx.work(0.5)
        if len(calls) == 1:
            raise ServiceError("database down")

    Consumer(b.world, "c", b.broker, "q", handler=handler, on_error=on_error)
    b.publish_at(1, "q", "m")
    b.run(10)
    assert [r[1] for r in b.mq() if r[1] in ("requeue", "drop")] == [after]
    assert calls == ([False, True] if on_error == "requeue" else [False])


def test_an_injected_error_rate_fails_deliveries_like_a_service_error():
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", service_time=0.1, on_error="dead_letter")
    for i in range(200):
        b.publish_at(1 + i, "q", i)
    install(b.world, [ErrorRate("c", at=0.0, rate=0.3)])
    b.run(300)
    drops = len(b.mq("drop"))
    assert drops + len(b.mq("consume")) == 200
    assert 40 < drops < 80


def test_a_handler_can_publish_on_from_its_instance():
    b = Bench()
    b.broker.point_to_point("orders")
    b.broker.point_to_point("invoices")

    def bill(ctx, d):
        yield ctx.work(0.1)
        publish(ctx.instance, b.broker, "invoices", {"for": d.body}, kind="event")

    Consumer(b.world, "billing", b.broker, "orders", handler=bill)
    b.publish_at(1, "orders", 42, kind="command")
    b.run(5)
    assert [(r[3], r[4]) for r in b.mq("publish")] == [("orders", "pub"),
                                                       ("invoices", "billing")]
    assert b.broker.queue_depth("invoices") == (1, 0)


def test_batch_ack_acks_several_deliveries_with_multiple():
    """Spring AMQP's batchSize: one ack with multiple=true covers the batch."""
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", prefetch=10, batch_ack=3, service_time=1.0)
    for i in range(7):
        b.publish_at(1, "q", i)
    b.run(20)
    acks = [r for r in b.world.trace.messages if r[1] == "send" and r[3] == "control"
            and r[4] == "c" and r[5] == "broker"]
    assert len(acks) == 1 + 3  # the subscription, then acks after 3, 6 and the last
    assert [r[0] for r in b.mq("ack")] == [4.0] * 3 + [7.0] * 3 + [8.0]
    assert b.broker.queue_depth("q") == (0, 0)


# -- auto-ack -----------------------------------------------------------------------------


def test_auto_ack_counts_a_message_done_when_it_is_sent():
    b = Bench(latency=0.5)
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", auto_ack=True, service_time=1.0)
    b.publish_at(1, "q", "m")
    b.run(10)
    assert [(r[0], r[1], r[5]) for r in b.mq() if r[1] in ("ack", "deliver", "consume")] == [
        (1.5, "ack", "auto"), (2.0, "deliver", ""), (3.0, "consume", "")]
    assert b.broker.queue_depth("q") == (0, 0)


def test_auto_ack_loses_what_a_crashed_consumer_held():
    """REFERENCE §4: auto-ack messages are lost if the consumer dies first."""
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", auto_ack=True, service_time=10.0)
    for i in range(4):
        b.publish_at(1, "q", i)
    install(b.world, [Crash("c", at=5.0, duration=1.0)])
    b.run(30)
    assert [r[5] for r in b.mq("ack")] == ["auto"] * 4
    assert b.bodies("drop") == [0, 1, 2, 3]
    assert {r[5] for r in b.mq("drop")} == {"consumer_crash"}
    assert b.mq("consume") == [] and b.mq("requeue") == []


def test_auto_ack_messages_on_their_way_to_a_crashed_consumer_are_lost_with_a_reset():
    """The broker counted them done when it sent them; the dead consumer's host
    answers each with a reset, and the broker records the loss when it comes."""
    b = Bench(latency=0.5)
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", auto_ack=True, service_time=0.1)
    b.publish_at(1.0, "q", "on-the-wire")  # delivered at 1.5, arrives at 2.0
    b.publish_at(1.35, "q", "sent-to-the-dead")  # sent at 1.85, before the close arrives
    b.publish_at(1.9, "q", "after-the-close")  # the channel is closed at 2.3
    install(b.world, [Crash("c", at=1.8, duration=3.2)])
    b.run(20)
    assert [(r[0], b.body[r[2]], r[4], r[5]) for r in b.mq("drop")] == [
        (2.5, "on-the-wire", "c", "consumer_crash"),
        (2.85, "sent-to-the-dead", "c", "consumer_crash")]
    assert b.bodies("consume") == ["after-the-close"]
    assert b.broker.stats["dropped"] == {"consumer_crash": 2}


def test_auto_ack_loses_a_message_whose_handler_failed():
    b = Bench()
    b.broker.point_to_point("q")

    def handler(ctx, d):
        yield ctx.work(0.1)
        raise ServiceError("bug")

    Consumer(b.world, "c", b.broker, "q", auto_ack=True, handler=handler)
    b.publish_at(1, "q", "m")
    b.run(5)
    assert [(r[4], r[5]) for r in b.mq("drop")] == [("c", "rejected")]


# -- crashes ---------------------------------------------------------------------------------


def test_a_crashed_consumers_unacked_messages_are_redelivered_to_another():
    b = Bench()
    b.broker.point_to_point("q")
    log: list = []
    Consumer(b.world, "a", b.broker, "q", prefetch=2, handler=logging(log, 10.0))
    Consumer(b.world, "b", b.broker, "q", prefetch=2, handler=logging(log, 1.0))
    for i in range(4):
        b.publish_at(1, "q", i)
    install(b.world, [Crash("a", at=5.0)])
    b.run(30)
    assert [(body, red) for _, c, body, red in log if c == "b"] == [
        (1, False), (3, False), (0, True), (2, True)]
    assert [r[5] for r in b.mq("requeue")] == ["consumer_gone"] * 2
    assert sorted(b.bodies("consume")) == [0, 1, 2, 3]


def test_a_restarted_consumer_subscribes_again():
    b = Bench()
    b.broker.point_to_point("q")
    c = Consumer(b.world, "c", b.broker, "q", service_time=0.1)
    install(b.world, [Crash("c", at=1.0, duration=2.0)])
    b.publish_at(2, "q", "while-down")
    b.run(10)
    subs = [t for t, node, ev, _ in b.world.trace.events if node == "c" and ev == "subscribe"]
    assert subs == [0.0, 3.0]
    assert [r[0] for r in b.mq("deliver")] == [3.0]
    assert c.consumed == 1


def test_a_broker_crash_mid_handler_gives_a_duplicate_at_least_once():
    """The handler finishes (its effect applied) but its ack cannot travel on the
    closed channel: the persistent message comes back and is consumed again."""
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", service_time=4.0)
    b.publish_at(1, "q", "m")
    install(b.world, [Crash("broker", at=2.0, duration=1.0)])
    b.run(20)
    assert [r[0] for r in b.mq("consume")] == [5.0, 11.0]  # reconnected at 7
    assert [r[5] for r in b.mq("deliver")] == ["", "redelivered"]
    assert b.bodies("ack") == ["m"]


@pytest.mark.parametrize("own_handler", [True, False])
def test_a_hung_consumer_is_restarted_and_what_it_held_redelivered(own_handler):
    b = Bench()
    b.broker.point_to_point("q")
    log: list = []
    c = Consumer(b.world, "c", b.broker, "q", prefetch=2, service_time=1.0,
                 handler=logging(log, 1.0) if own_handler else None)
    for i in range(3):
        b.publish_at(1.5 + i, "q", i)
    install(b.world, [Hang("c", at=1.0, duration=9.0)])
    b.run(30)
    assert [(r[0], b.body[r[2]], r[5]) for r in b.mq("deliver")] == [
        (1.5, 0, ""), (2.5, 1, ""), (10.0, 0, "redelivered"), (10.0, 1, "redelivered"),
        (11.0, 2, "")]
    assert [(r[0], b.body[r[2]]) for r in b.mq("consume")] == [(11.0, 0), (12.0, 1), (13.0, 2)]
    assert [r[5] for r in b.mq("requeue")] == ["consumer_gone"] * 2
    # one worker: stopped on 0 from 1.5 to 10 (1 waited in the buffer), then 3 x 1 s
    assert c.busy == 0 and c.busy_seconds(30.0) == pytest.approx(8.5 + 3 * 1.0)


@pytest.mark.parametrize("own_handler", [True, False])
def test_a_hang_during_the_handler_holds_the_ack_and_the_message_comes_back(own_handler):
    b = Bench()
    b.broker.point_to_point("q")
    c = Consumer(b.world, "c", b.broker, "q", service_time=2.0,
                 handler=logging([], 2.0) if own_handler else None)
    b.publish_at(1, "q", "m")
    install(b.world, [Hang("c", at=2.0, duration=5.0)])
    b.run(20)
    # consumed at 3 (the effect applied), the ack stuck until the restart at 7
    assert [r[0] for r in b.mq("consume")] == [3.0, 9.0]
    assert [r[5] for r in b.mq("deliver")] == ["", "redelivered"]
    assert len(b.mq("ack")) == 1 and c.busy == 0


# -- subscriptions ------------------------------------------------------------------------------


def test_a_durable_subscription_keeps_what_was_published_while_its_subscriber_was_away():
    b = Bench()
    events = b.broker.publish_subscribe("events")
    Consumer(b.world, "durable", b.broker, events, subscription="audit",
             service_time=0.1)
    Consumer(b.world, "transient", b.broker, events, subscription="ui",
             durable=False, service_time=0.1)
    install(b.world, [Crash("durable", at=5.0, duration=10.0),
                      Crash("transient", at=5.0, duration=10.0)])
    for i in range(4):
        b.publish_at(2 + 4 * i, events, i)  # at 2, 6, 10, 14
    b.run(30)
    assert b.bodies("consume", "durable") == [0, 1, 2, 3]
    assert b.bodies("consume", "transient") == [0]
    assert "events.ui" in b.broker.queues  # declared again on its return
    assert [r[1] for r in b.world.trace.mq
            if r[3] == "events.ui" and r[1] in ("enqueue", "drop")] == ["enqueue"]


def test_a_non_durable_subscription_loses_its_queue_and_its_unacked_with_the_connection():
    b = Bench()
    events = b.broker.publish_subscribe("events")
    Consumer(b.world, "ui", b.broker, events, subscription="ui", durable=False,
             prefetch=1, service_time=10.0)
    for i in range(3):
        b.publish_at(1, events, i)
    install(b.world, [Crash("ui", at=2.0, duration=5.0)])
    b.run(10)
    assert [(b.body[r[2]], r[5]) for r in b.mq("drop")] == [
        (0, "subscriber_gone"), (1, "subscriber_gone"), (2, "subscriber_gone")]
    assert b.broker.queue_depth("events.ui") == (0, 0)  # a fresh queue since 7


def test_competing_consumers_share_a_durable_subscription():
    b = Bench()
    events = b.broker.publish_subscribe("events")
    for name in ("w1", "w2"):
        Consumer(b.world, name, b.broker, events, subscription="workers", prefetch=0,
                 service_time=0.1)
    for i in range(6):
        b.publish_at(1 + i, events, i)
    b.run(20)
    assert [r[4] for r in b.mq("consume")] == ["w1", "w2"] * 3


# -- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(queue="nope"), "queue"),
    (dict(queue=""), "queue"),
    (dict(queue="events"), "subscription"),
    (dict(queue="orders", subscription="s"), "queue"),
    (dict(queue="events", subscription=""), "subscription"),
    (dict(prefetch=-1), "prefetch"),
    (dict(prefetch=True), "prefetch"),
    (dict(prefetch=1.5), "prefetch"),
    (dict(auto_ack="no"), "auto_ack"),
    (dict(queue="events", subscription="s", durable=1), "durable"),
    (dict(on_error="retry"), "on_error"),
    (dict(handler=42), "handler"),
    (dict(workers=0), "workers"),
    (dict(reconnect_interval=-1), "reconnect_interval"),
    (dict(batch_ack=0), "batch_ack"),
    (dict(batch_ack=2, workers=2), "batch_ack"),
    (dict(transport="broker"), "transport"),
])
def test_bad_consumer_arguments_raise_a_param_error_naming_the_field(kwargs, field):
    world = World()
    broker = Broker(world)
    broker.point_to_point("orders")
    broker.publish_subscribe("events")
    args = dict(transport=broker, queue="orders")
    args.update(kwargs)
    transport = args.pop("transport")
    queue = args.pop("queue")
    with pytest.raises(ParamError) as err:
        Consumer(world, "c", transport, queue, **args)
    assert err.value.field == field
    assert "c" not in world.nodes  # checked before the node was registered


def test_two_consumers_cannot_share_a_non_durable_subscription():
    world = World()
    broker = Broker(world)
    broker.publish_subscribe("events")
    Consumer(world, "a", broker, "events", subscription="ui", durable=False)
    with pytest.raises(ParamError) as err:
        Consumer(world, "b", broker, "events", subscription="ui", durable=False)
    assert err.value.field == "subscription"


def test_reject_takes_a_flag():
    with pytest.raises(ParamError):
        Reject(requeue="yes")
    assert Reject().requeue is True and Reject(False).requeue is False
