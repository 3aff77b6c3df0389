"""The broker follows RabbitMQ (REFERENCE §4): routing, dispatch, acks, requeue,
dead-lettering, limits, persistence across a crash, confirms, faults.

Each test builds a tiny topology, publishes at chosen times from a plain node
and checks the exact sequence the broker produced (``trace.mq``), the
queues' depths or the broker's counters.
"""

from __future__ import annotations

import pytest

from simcomm.engine import Crash, Hang, Link, Node, Slowdown, World, install
from simcomm.errors import ParamError
from simcomm.messaging import Broker, Consumer, Producer, Reject, ReplicatedBroker, publish
from simcomm.result import Result

# -- helpers -------------------------------------------------------------------


class Bench:
    """A world with a broker and a publisher node; bodies remembered by message id."""

    def __init__(self, seed: int = 0, latency: float | None = None, **broker_args) -> None:
        self.world = World(seed=seed, network=Link(latency=latency) if latency else None)
        self.broker = Broker(self.world, **broker_args)
        self.pub = Node(self.world, "pub")
        self.body: dict[int, object] = {}
        self.confirms: list[tuple[object, str]] = []

    def publish_at(self, t: float, channel: str, body: object, **kw) -> None:
        def go() -> None:
            ev = publish(self.pub, self.broker, channel, body, **kw)
            # the publish's id: its row is the last publish in trace.mq (a
            # zero-latency delivery may have taken later ids already)
            mid = next(r[2] for r in reversed(self.world.trace.mq) if r[1] == "publish")
            self.body[mid] = body
            if ev is not None:
                ev.callbacks.append(lambda e: self.confirms.append((body, e.value)))

        self.world.at(t, go)

    def run(self, until: float) -> Bench:
        self.world.run(until=until)
        return self

    def mq(self, event: str | None = None, node: str | None = None,
           channel: str | None = None) -> list[tuple]:
        return [r for r in self.world.trace.mq
                if (event is None or r[1] == event) and (node is None or r[4] == node)
                and (channel is None or r[3] == channel)]

    def id_of(self, body: object) -> int:
        return next(mid for mid, b in self.body.items() if b == body)

    def bodies(self, event: str, **kw) -> list[object]:
        return [self.body.get(r[2]) for r in self.mq(event, **kw)]


def log_handler(log: list, service: float = 1.0, reject=None):
    """A handler that logs (time, consumer, body, redelivered), works ``service`` s,
    then raises Reject(requeue) when ``reject(delivery)`` returns True/False."""

    def handler(ctx, d):
        log.append((ctx.now, ctx.instance.name, d.body, d.redelivered))
        yield ctx.work(service)
        verdict = reject(d) if reject else None
        if verdict is not None:
            raise Reject(requeue=verdict)

    return handler


# -- routing ---------------------------------------------------------------------


def test_a_point_to_point_channel_is_a_queue_on_the_default_exchange():
    b = Bench()
    q = b.broker.point_to_point("orders")
    b.publish_at(0, "orders", "a")
    b.publish_at(0, "", "b", routing_key="orders")  # the default exchange, explicitly
    b.run(1)
    assert q == "orders"
    assert b.mq("publish") == [(0, "publish", 1, "orders", "pub", "orders"),
                               (0, "publish", 2, "", "pub", "orders")]
    assert b.bodies("enqueue", channel="orders") == ["a", "b"]
    assert b.broker.queue_depth("orders") == (2, 0)


def test_an_unroutable_publish_is_dropped_and_still_confirmed():
    """RabbitMQ drops it (no mandatory flag) and confirms it all the same."""
    b = Bench()
    b.broker.declare_exchange("logs", "direct")
    b.publish_at(0, "logs", "x", routing_key="nobody", confirm=True)
    b.run(1)
    assert b.mq("drop") == [(0, "drop", 1, "logs", "broker", "unroutable")]
    assert b.mq("confirm") == [(0, "confirm", 1, "logs", "pub", "ack")]
    assert b.broker.stats["unroutable"] == 1


def test_a_topic_message_matching_two_bindings_of_a_queue_is_enqueued_once():
    b = Bench()
    b.broker.declare_exchange("logs", "topic")
    for q in ("errors", "all"):
        b.broker.declare_queue(q)
    b.broker.bind("errors", "logs", "*.error")
    b.broker.bind("errors", "logs", "kern.#")
    b.broker.bind("all", "logs", "#")
    b.publish_at(0, "logs", "m", routing_key="kern.error")
    b.run(1)
    assert [(r[3], r[2]) for r in b.mq("enqueue")] == [("errors", 1), ("all", 1)]


def test_publish_subscribe_gives_each_subscription_a_copy():
    b = Bench()
    events = b.broker.publish_subscribe("orders.events")
    log: list = []
    for sub in ("billing", "shipping"):
        Consumer(b.world, sub, b.broker, events, subscription=sub,
                 handler=log_handler(log, 0.1))
    b.publish_at(1, events, "created")
    b.run(5)
    assert sorted(r[3] for r in b.mq("enqueue")) == ["orders.events.billing",
                                                     "orders.events.shipping"]
    assert sorted((c, body) for _, c, body, _ in log) == [("billing", "created"),
                                                          ("shipping", "created")]


# -- dispatch ----------------------------------------------------------------------


def test_competing_consumers_get_messages_round_robin():
    b = Bench()
    b.broker.point_to_point("q")
    log: list = []
    for name in ("c1", "c2", "c3"):
        Consumer(b.world, name, b.broker, "q", prefetch=0, handler=log_handler(log, 0.1))
    for i in range(7):
        b.publish_at(1 + i, "q", i)
    b.run(20)
    assert [c for _, c, _, _ in log] == ["c1", "c2", "c3", "c1", "c2", "c3", "c1"]


def test_prefetch_one_is_fair_dispatch_a_busy_consumer_gets_nothing_more():
    """With prefetch 1 the next message goes to a consumer that is not busy."""
    b = Bench()
    b.broker.point_to_point("q")
    log: list = []
    Consumer(b.world, "slow", b.broker, "q", prefetch=1, handler=log_handler(log, 100.0))
    Consumer(b.world, "fast", b.broker, "q", prefetch=1, handler=log_handler(log, 0.1))
    for i in range(10):
        b.publish_at(1, "q", i)
    b.run(50)
    got = [c for _, c, _, _ in log]
    assert got.count("slow") == 1 and got.count("fast") == 9


def test_unlimited_prefetch_splits_the_backlog_evenly_whatever_the_speed():
    b = Bench()
    b.broker.point_to_point("q")
    log: list = []
    Consumer(b.world, "slow", b.broker, "q", prefetch=0, handler=log_handler(log, 100.0))
    Consumer(b.world, "fast", b.broker, "q", prefetch=0, handler=log_handler(log, 0.1))
    for i in range(10):
        b.publish_at(1, "q", i)
    b.run(2000)
    delivered = [r[4] for r in b.mq("deliver")]
    assert delivered.count("slow") == 5 and delivered.count("fast") == 5


def test_prefetch_bounds_the_unacked_deliveries_of_a_consumer():
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", prefetch=3, service_time=10.0)
    for i in range(10):
        b.publish_at(1, "q", i)
    b.world.at(5, lambda: b.seen.append(b.broker.queue_depth("q")))
    b.seen = []  # type: ignore[attr-defined]
    b.run(15)
    assert b.seen == [(7, 3)]  # type: ignore[attr-defined]
    assert b.broker.queue_depth("q") == (6, 3)  # one acked at t=11, one more sent


def test_a_consumer_subscribing_late_receives_the_backlog_in_order():
    b = Bench()
    b.broker.point_to_point("q")
    for i in range(5):
        b.publish_at(0, "q", i)
    late: list = []
    b.world.at(3, lambda: late.append(Consumer(b.world, "c", b.broker, "q", prefetch=0,
                                               service_time=0.1)))
    b.run(10)
    assert late[0].consumed == 5
    assert b.bodies("deliver") == [0, 1, 2, 3, 4]
    assert {r[0] for r in b.mq("deliver")} == {3.0}


# -- acknowledgements, requeue, redelivery -------------------------------------------


def test_a_nacked_message_is_requeued_to_its_original_position_and_flagged_redelivered():
    b = Bench()
    b.broker.point_to_point("q")
    log: list = []
    Consumer(b.world, "c", b.broker, "q", prefetch=1,
             handler=log_handler(log, 1.0, reject=lambda d: True if (
                 d.body == 0 and not d.redelivered) else None))
    for i in range(4):
        b.publish_at(0, "q", i)
    b.run(10)
    assert [(body, red) for _, _, body, red in log] == [
        (0, False), (0, True), (1, False), (2, False), (3, False)]
    assert [r[5] for r in b.mq("nack")] == ["requeue"]
    assert [r[5] for r in b.mq("requeue")] == ["nack"]
    assert b.mq("deliver")[1][5] == "redelivered"


def test_requeued_messages_go_before_later_ones_in_enqueue_order():
    """A consumer holding three deliveries crashes; the broker requeues them in
    tag order at their original places, ahead of the messages behind them."""
    b = Bench()
    b.broker.point_to_point("q")
    log: list = []
    Consumer(b.world, "a", b.broker, "q", prefetch=3, handler=log_handler(log, 100.0))
    Consumer(b.world, "b", b.broker, "q", prefetch=1, handler=log_handler(log, 1.0))
    for i in range(6):
        b.publish_at(1, "q", i)
    install(b.world, [Crash("a", at=1.5)])
    b.run(20)
    # a took 0, 2, 3 (b held 1); after the crash b gets 0, 2, 3 back first
    assert [(c, body, red) for _, c, body, red in log] == [
        ("a", 0, False), ("b", 1, False),
        ("b", 0, True), ("b", 2, True), ("b", 3, True), ("b", 4, False), ("b", 5, False)]


def test_reject_without_requeue_drops_without_a_dead_letter_exchange():
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", handler=log_handler([], 0.1, reject=lambda d: False))
    b.publish_at(0, "q", "poison")
    b.run(5)
    assert [r[5] for r in b.mq("nack")] == ["discard"]
    assert b.mq("drop") == [(0.1, "drop", b.id_of("poison"), "q", "broker", "rejected")]


def test_reject_without_requeue_dead_letters_with_x_death():
    b = Bench()
    b.broker.declare_exchange("dlx", "fanout")
    b.broker.declare_queue("dlq")
    b.broker.bind("dlq", "dlx")
    b.broker.point_to_point("q", dead_letter_exchange="dlx")
    got: list = []

    def keep(ctx, d):
        got.append(d)
        yield ctx.work(0.1)

    Consumer(b.world, "c", b.broker, "q", handler=log_handler([], 0.1, reject=lambda d: False))
    Consumer(b.world, "dl", b.broker, "dlq", handler=keep)
    b.publish_at(0, "q", "poison")
    b.run(5)
    mid = b.id_of("poison")
    assert b.mq("dead_letter") == [(0.1, "dead_letter", mid, "q", "broker", "rejected")]
    assert [(r[3], r[5]) for r in b.mq("enqueue")] == [("q", ""), ("dlq", "dead_letter")]
    (d,) = got
    assert d.message_id == mid and d.body == "poison" and d.routing_key == "q"
    death = d.headers["x-death"][0]
    assert (death["queue"], death["reason"], death["count"]) == ("q", "rejected", 1)


def test_the_delivery_limit_dead_letters_a_copy_returned_more_times_than_allowed():
    """rabbit_fifo: a return makes the count exceed the limit -> dead-letter."""
    b = Bench()
    b.broker.declare_exchange("dlx", "fanout")
    b.broker.declare_queue("dlq")
    b.broker.bind("dlq", "dlx")
    b.broker.point_to_point("q", delivery_limit=2, dead_letter_exchange="dlx")
    Consumer(b.world, "c", b.broker, "q", handler=log_handler([], 0.1, reject=lambda d: True))
    b.publish_at(0, "q", "poison")
    b.run(5)
    assert len(b.mq("deliver")) == 3  # the first delivery and two redeliveries
    assert [r[5] for r in b.mq("requeue")] == ["nack", "nack"]
    assert [r[5] for r in b.mq("dead_letter")] == ["delivery_limit"]
    assert b.broker.queue_depth("dlq") == (1, 0)


def test_the_delivery_limit_drops_without_a_dead_letter_exchange():
    b = Bench()
    b.broker.point_to_point("q", delivery_limit=0)
    Consumer(b.world, "c", b.broker, "q", handler=log_handler([], 0.1, reject=lambda d: True))
    b.publish_at(0, "q", "poison")
    b.run(5)
    assert [r[5] for r in b.mq("drop")] == ["delivery_limit"]
    assert b.mq("requeue") == []


def test_a_dead_letter_cycle_without_rejection_is_dropped():
    """RabbitMQ drops a message that would be dead-lettered back to a queue it
    already left, unless a rejection happened in the cycle."""
    b = Bench()
    b.broker.declare_exchange("dlx", "fanout")
    b.broker.point_to_point("q", max_length=1, dead_letter_exchange="dlx")
    b.broker.bind("q", "dlx")
    b.publish_at(0, "q", "a")
    b.publish_at(1, "q", "b")
    b.run(5)
    # b pushes a out (maxlen); a's dead-letter copy would land in q again: dropped
    assert [r[5] for r in b.mq("dead_letter")] == ["maxlen"]
    assert [(r[3], r[5]) for r in b.mq("drop")] == [("dlx", "unroutable")]
    assert b.broker.queue_depth("q") == (1, 0)


# -- length limits ---------------------------------------------------------------------


def test_max_length_drop_head_drops_the_oldest_ready_messages():
    b = Bench()
    b.broker.point_to_point("q", max_length=2)
    for i in range(5):
        b.publish_at(i, "q", i)
    b.run(10)
    assert b.bodies("drop") == [0, 1, 2]
    assert {r[5] for r in b.mq("drop")} == {"maxlen"}
    assert [c.envelope.body for c in b.broker.queues["q"].copies()] == [3, 4]


def test_max_length_drop_head_dead_letters_when_the_queue_has_a_dlx():
    b = Bench()
    b.broker.declare_exchange("dlx", "fanout")
    b.broker.declare_queue("overflow")
    b.broker.bind("overflow", "dlx")
    b.broker.point_to_point("q", max_length=1, dead_letter_exchange="dlx")
    for i in range(3):
        b.publish_at(i, "q", i)
    b.run(10)
    assert b.bodies("dead_letter") == [0, 1]
    assert b.broker.queue_depth("overflow") == (2, 0)


def test_reject_publish_refuses_new_messages_and_nacks_their_confirms():
    b = Bench()
    b.broker.point_to_point("q", max_length=2, overflow="reject-publish")
    for i in range(4):
        b.publish_at(i, "q", i, confirm=True)
    b.run(10)
    assert b.confirms == [(0, "ack"), (1, "ack"), (2, "nack"), (3, "nack")]
    assert [(r[3], r[5]) for r in b.mq("drop")] == [("q", "queue_full")] * 2
    assert [r[5] for r in b.mq("confirm")] == ["ack", "ack", "nack", "nack"]
    assert b.broker.stats["rejected"] == 2


def test_unacked_messages_do_not_count_towards_the_length_limit():
    b = Bench()
    b.broker.point_to_point("q", max_length=1, overflow="reject-publish")
    Consumer(b.world, "c", b.broker, "q", prefetch=2, service_time=100.0)
    for i in range(4):
        b.publish_at(1, "q", i)
    b.run(10)
    assert b.broker.queue_depth("q") == (1, 2)
    assert b.bodies("drop") == [3]


def test_one_queue_rejecting_a_publish_does_not_stop_the_others():
    """RabbitMQ: the publisher gets a nack, the other queues keep their copies."""
    b = Bench()
    b.broker.declare_exchange("fan", "fanout")
    b.broker.declare_queue("small", max_length=0, overflow="reject-publish")
    b.broker.declare_queue("big")
    b.broker.bind("small", "fan")
    b.broker.bind("big", "fan")
    b.publish_at(0, "fan", "m", confirm=True)
    b.run(1)
    assert b.confirms == [("m", "nack")]
    assert b.broker.queue_depth("big") == (1, 0)


# -- crash, restart, hang ------------------------------------------------------------


def test_a_broker_crash_keeps_persistent_messages_on_durable_queues_only():
    b = Bench()
    b.broker.point_to_point("durable")
    b.broker.point_to_point("transient", durable=False)
    for q in ("durable", "transient"):
        b.publish_at(0, q, f"{q}-persistent", persistent=True)
        b.publish_at(0, q, f"{q}-transient", persistent=False)
    install(b.world, [Crash("broker", at=1.0, duration=2.0)])
    b.run(5)
    assert sorted(b.bodies("drop")) == ["durable-transient", "transient-persistent",
                                        "transient-transient"]
    assert {r[5] for r in b.mq("drop")} == {"broker_crash"}
    assert b.broker.queue_depth("durable") == (1, 0)
    assert b.broker.queue_depth("transient") == (0, 0)


def test_unacked_persistent_messages_come_back_redelivered_in_order_after_a_restart():
    b = Bench()
    b.broker.point_to_point("q")
    log: list = []
    Consumer(b.world, "c", b.broker, "q", prefetch=3, handler=log_handler(log, 10.0))
    for i in range(5):
        b.publish_at(1, "q", i)
    install(b.world, [Crash("broker", at=2.0, duration=1.0)])
    b.run(100)
    assert [r[5] for r in b.mq("requeue")] == ["broker_restart"] * 3
    # the handler of 0 was running: it finishes, its ack cannot travel; the
    # consumer reconnects 5 s after the close and gets 0, 1, 2 again, then 3, 4
    assert [(body, red) for _, _, body, red in log] == [
        (0, False), (0, True), (1, True), (2, True), (3, False), (4, False)]
    assert b.bodies("consume") == [0, 0, 1, 2, 3, 4]


def test_consumers_retry_every_reconnect_interval_until_the_broker_is_back():
    b = Bench(reconnect_interval=5.0)
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q")
    install(b.world, [Crash("broker", at=10.0, duration=12.0)])
    b.run(40)
    subs = [t for t, node, ev, _ in b.world.trace.events if node == "c" and ev == "subscribe"]
    lost = [t for t, node, ev, _ in b.world.trace.events if ev == "connection_lost"]
    # closed at 10; attempts at 15 and 20 are refused; 25 gets through
    assert subs == [0.0, 25.0] and lost == [10.0]
    refused = [r for r in b.world.trace.messages
               if r[1] == "drop" and r[8] == "node_down" and r[4] == "c"]
    assert [r[0] for r in refused] == [15.0, 20.0]


def test_publishes_to_a_crashed_broker_are_lost_on_the_network_and_get_no_confirm():
    b = Bench()
    b.broker.point_to_point("q")
    b.publish_at(2, "q", "lost", confirm=True)
    b.publish_at(2, "q", "lost-too")
    install(b.world, [Crash("broker", at=1.0, duration=5.0)])
    b.run(10)
    assert b.confirms == [("lost", "refused")]
    drops = [r for r in b.world.trace.messages if r[1] == "drop" and r[8] == "node_down"]
    assert sorted(r[2] for r in drops) == sorted(b.body)  # the publishes themselves
    assert b.mq("enqueue") == [] and b.mq("confirm") == []


def test_publishes_waiting_to_be_routed_die_with_the_broker():
    b = Bench(routing_rate=1.0)
    b.broker.point_to_point("q")
    for i in range(3):
        b.publish_at(0, "q", i, confirm=True)
    install(b.world, [Crash("broker", at=1.5)])
    b.run(5)
    assert b.confirms == [(0, "ack"), (1, "reset"), (2, "reset")]
    assert [(r[3], r[5]) for r in b.mq("drop")] == [("", "broker_crash")] * 2


def test_a_hung_broker_delivers_nothing_and_catches_up_when_the_hang_ends():
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", service_time=0.1)
    for i in range(3):
        b.publish_at(2 + i, "q", i)
    install(b.world, [Hang("broker", at=1.0, duration=9.0)])
    b.run(20)
    assert [r[0] for r in b.mq("enqueue")] == [10.0, 10.0, 10.0]
    assert [round(r[0], 6) for r in b.mq("ack")] == [10.1, 10.2, 10.3]


def test_heartbeats_end_a_connection_cut_off_by_a_partition_on_both_sides():
    """AMQP heartbeats (RabbitMQ: 60 s): each side gives the other up after a
    silence of the timeout; the broker requeues what the consumer held, and
    the consumer's reconnect gets through once the partition heals."""
    b = Bench()  # heartbeat 60 s: timers look every 15 s
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", service_time=1.0)
    b.world.network.cut(["c"], at=10.0, heal_at=112.0)
    b.publish_at(20, "q", "m")  # its delivery is lost in the partition
    b.run(200)
    timeouts = [(t, node, detail) for t, node, ev, detail in b.world.trace.events
                if ev == "heartbeat_timeout"]
    assert timeouts == [(75.0, "broker", "c"), (75.0, "c", "broker")]
    assert [(r[0], r[5]) for r in b.mq("requeue")] == [(75.0, "consumer_gone")]
    subs = [t for t, node, ev, _ in b.world.trace.events if node == "c" and ev == "subscribe"]
    assert subs == [0.0, 115.0]
    assert [(r[0], r[5]) for r in b.mq("deliver")] == [(115.0, "redelivered")]
    assert [r[0] for r in b.mq("consume")] == [116.0]


def test_an_idle_connection_stays_up_on_heartbeats_alone():
    b = Bench(latency=0.5)
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", auto_ack=True, service_time=1.0)
    b.publish_at(1000, "q", "late")
    b.run(1100)
    assert [ev for _, _, ev, _ in b.world.trace.events if ev != "subscribe"] == []
    assert [r[0] for r in b.mq("consume")] == [1002.0]
    beats = [r for r in b.world.trace.messages if r[1] == "send" and r[3] == "control"]
    assert 60 < len(beats) < 80  # about one each way per 30 s of silence


def test_without_heartbeats_a_cut_off_consumer_keeps_its_deliveries_unacked():
    b = Bench(heartbeat=None)
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", service_time=1.0)
    b.world.network.cut(["c"], at=10.0, heal_at=112.0)
    b.publish_at(20, "q", "m")
    b.run(300)
    assert b.broker.queue_depth("q") == (0, 1)  # lost on the wire, never requeued
    assert b.mq("consume") == []


def test_the_routing_rate_makes_the_broker_a_bottleneck():
    world = World(seed=3)
    broker = Broker(world, routing_rate=100.0)
    broker.point_to_point("q")
    Producer(world, "p", broker, "q", rate=80.0)
    Consumer(world, "c", broker, "q", prefetch=0, workers=4, service_time=0.001)
    world.run(until=200)
    res = Result(world)
    assert res.utilisation()["broker"] == pytest.approx(0.8, abs=0.03)
    assert res.bottleneck()["resource"] == "broker"


def test_a_slowed_broker_routes_slower():
    b = Bench(routing_rate=10.0)
    b.broker.point_to_point("q")
    b.publish_at(1, "q", "m")
    install(b.world, [Slowdown("broker", at=0.0, duration=5.0, factor=3.0)])
    b.run(5)
    assert [round(r[0], 9) for r in b.mq("enqueue")] == [1.3]


# -- records -----------------------------------------------------------------------------


def test_queue_depths_are_traced_on_every_change():
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", prefetch=1, service_time=1.0)
    b.publish_at(1, "q", "a")
    b.publish_at(1, "q", "b")
    b.run(5)
    rows = [(t, ready, unacked) for t, node, q, ready, unacked in b.world.trace.queues]
    assert rows == [(1, 0, 1), (1, 1, 1), (2, 0, 1), (3, 0, 0)]


def test_contents_and_stats_account_for_every_copy():
    b = Bench()
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", prefetch=2, service_time=100.0)
    for i in range(5):
        b.publish_at(1, "q", i)
    b.run(10)
    i = b.id_of
    assert sorted(b.broker.contents()) == sorted(
        [("q", i(0), "unacked", "c"), ("q", i(1), "unacked", "c"),
         ("q", i(2), "ready", None), ("q", i(3), "ready", None), ("q", i(4), "ready", None)])
    stats = b.broker.stats
    assert (stats["published"], stats["routed"], stats["delivered"], stats["ready"],
            stats["unacked"]) == (5, 5, 2, 3, 2)


def test_the_counters_are_kept_without_a_trace():
    world = World(seed=1, trace=False)
    broker = Broker(world)
    broker.point_to_point("q")
    Producer(world, "p", broker, "q", rate=10.0, count=50)
    Consumer(world, "c", broker, "q", service_time=0.01)
    world.run(until=100)
    assert broker.stats["consumed"] == 50 and world.trace.mq == []


# -- bad arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "field"), [
    (lambda w, b: Broker(w, "b2", routing_rate=0), "routing_rate"),
    (lambda w, b: Broker(w, "b2", routing_rate="fast"), "routing_rate"),
    (lambda w, b: Broker(w, "b2", workers=0), "workers"),
    (lambda w, b: Broker(w, "b2", reconnect_interval=0), "reconnect_interval"),
    (lambda w, b: Broker(w, "b2", heartbeat=-5), "heartbeat"),
    (lambda w, b: b.declare_exchange("x", "headers"), "type"),
    (lambda w, b: b.declare_exchange("", "direct"), "name"),
    (lambda w, b: b.declare_exchange("ex", "topic"), "type"),  # exists as fanout
    (lambda w, b: b.declare_queue(""), "name"),
    (lambda w, b: b.declare_queue("q", durable="yes"), "durable"),
    (lambda w, b: b.declare_queue("q", exclusive=True), "durable"),
    (lambda w, b: b.declare_queue("q", max_length=-1), "max_length"),
    (lambda w, b: b.declare_queue("q", max_length=2.5), "max_length"),
    (lambda w, b: b.declare_queue("q", overflow="drop-tail"), "overflow"),
    (lambda w, b: b.declare_queue("q", delivery_limit=True), "delivery_limit"),
    (lambda w, b: b.declare_queue("q", dead_letter_routing_key="k"), "dead_letter_routing_key"),
    (lambda w, b: b.declare_queue("orders", max_length=3), "max_length"),  # exists unbounded
    (lambda w, b: b.bind("nope", "ex"), "queue"),
    (lambda w, b: b.bind("orders", "nope"), "exchange"),
    (lambda w, b: b.bind("orders", ""), "exchange"),
    (lambda w, b: b.bind("orders", "ex", 3), "key"),
    (lambda w, b: b.point_to_point("ex"), "name"),
    (lambda w, b: b.publish_subscribe("orders"), "name"),
    (lambda w, b: b.queue_depth("nope"), "name"),
    (lambda w, b: publish(w.nodes["pub"], b, "nope", 1), "channel"),
    (lambda w, b: publish(w.nodes["pub"], b, "orders", 1, routing_key="x"), "routing_key"),
    (lambda w, b: publish(w.nodes["pub"], b, "orders", 1, kind="control"), "kind"),
    (lambda w, b: publish(w.nodes["pub"], b, "orders", 1, persistent=1), "persistent"),
    (lambda w, b: publish(w.nodes["pub"], b, "orders", 1, confirm="y"), "confirm"),
    (lambda w, b: publish(w.nodes["pub"], b, "orders", 1, size=-1), "size"),
    (lambda w, b: publish(w.nodes["pub"], b, "orders", 1, headers=[]), "headers"),
    (lambda w, b: publish(w.nodes["pub"], b, "orders", 1, reply_to=""), "reply_to"),
    (lambda w, b: publish(w.nodes["pub"], b, "orders", 1, correlation_id="7"), "correlation_id"),
    (lambda w, b: publish(w.nodes["pub"], b, "orders", 1, format="yaml"), "format"),
    (lambda w, b: publish("pub", b, "orders", 1), "node"),
    (lambda w, b: publish(w.nodes["pub"], object(), "orders", 1), "transport"),
])
def test_bad_arguments_raise_a_param_error_naming_the_field(call, field):
    world = World()
    broker = Broker(world)
    broker.point_to_point("orders")
    broker.publish_subscribe("ex")
    Node(world, "pub")
    with pytest.raises(ParamError) as err:
        call(world, broker)
    assert err.value.field == field


def test_declaring_the_same_queue_twice_returns_it():
    world = World()
    broker = Broker(world)
    q1 = broker.declare_queue("q", max_length=3)
    assert broker.declare_queue("q", max_length=3) is q1
    assert broker.declare_exchange("e", "topic") is broker.declare_exchange("e", "topic")


# -- the replicated broker (optional in the issue) -------------------------------------


class ClusterBench(Bench):
    def __init__(self, failover_after: float = 3.0, **kw) -> None:
        self.world = World(seed=0)
        self.broker = ReplicatedBroker(self.world, failover_after=failover_after, **kw)
        self.pub = Node(self.world, "pub")
        self.body = {}
        self.confirms = []


def test_a_follower_takes_over_after_the_detection_delay_not_the_repair_time():
    b = ClusterBench(failover_after=3.0)
    b.broker.point_to_point("q")
    Consumer(b.world, "c", b.broker, "q", service_time=0.1)
    for i in range(20):
        b.publish_at(0.5 + i, "q", i)
    install(b.world, [Crash("broker-1", at=10.0)])  # never repaired
    b.run(30)
    events = [(t, node, ev) for t, node, ev, _ in b.world.trace.events
              if ev in ("failover", "subscribe")]
    assert events == [(0.0, "c", "subscribe"), (13.0, "broker-2", "failover"),
                      (15.0, "c", "subscribe")]
    refused = sorted(b.body[r[2]] for r in b.world.trace.messages
                     if r[1] == "drop" and r[8] == "node_down" and r[2] in b.body)
    assert refused == [10, 11, 12]  # sent while nobody led
    assert sorted(b.bodies("consume")) == [i for i in range(20) if i not in (10, 11, 12)]
    assert [r[4] for r in b.mq("enqueue")] == ["broker-1"] * 10 + ["broker-2"] * 7
    assert b.broker.stats["failovers"] == 1 and b.broker.stats["consumed"] == 17


def test_what_the_leader_had_replicated_survives_the_failover():
    b = ClusterBench(failover_after=1.0)
    b.broker.point_to_point("q")
    b.publish_at(1, "q", "persistent")
    b.publish_at(1, "q", "transient", persistent=False)
    install(b.world, [Crash("broker-1", at=2.0, duration=100.0)])
    late: list = []
    b.world.at(5, lambda: late.append(Consumer(b.world, "c", b.broker, "q",
                                               service_time=0.1)))
    b.run(10)
    assert b.bodies("consume") == ["persistent"]
    assert [(b.body[r[2]], r[5]) for r in b.mq("drop")] == [("transient", "broker_crash")]
    assert b.broker.leader.name == "broker-2" and b.broker.queue_depth("q") == (0, 0)


def test_a_leader_back_before_the_delay_keeps_leading():
    b = ClusterBench(failover_after=5.0)
    b.broker.point_to_point("q")
    install(b.world, [Crash("broker-1", at=2.0, duration=1.0)])
    b.run(20)
    assert b.broker.leader.name == "broker-1" and b.broker.failovers == 0


def test_the_old_leader_rejoins_as_a_follower_and_takes_no_client_traffic():
    b = ClusterBench(failover_after=1.0)
    b.broker.point_to_point("q")
    install(b.world, [Crash("broker-1", at=2.0, duration=2.0)])
    b.run(10)
    old = b.world.nodes["broker-1"]
    assert old.up and b.broker.leader.name == "broker-2"
    # a publish that was on its way to the old leader would be turned away
    msg = b.pub.message("broker-1", None)
    assert old.accept(msg) == "not_leader"
    assert b.world.nodes["broker-2"].accept(b.pub.message("broker-2", None)) is None


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(replicas=1), "replicas"),
    (dict(replicas=2.0), "replicas"),
    (dict(failover_after=-1), "failover_after"),
    (dict(name=""), "name"),
    (dict(name="taken"), "name"),
    (dict(routing_rate=0), "routing_rate"),
])
def test_bad_cluster_arguments_raise_a_param_error_naming_the_field(kwargs, field):
    world = World()
    Node(world, "taken-2")
    with pytest.raises(ParamError) as err:
        ReplicatedBroker(world, **kwargs)
    assert err.value.field == field


def test_an_exclusive_queue_belongs_to_its_first_consumer_and_dies_with_its_connection():
    b = Bench()
    b.broker.declare_queue("mine", durable=False, exclusive=True)
    Consumer(b.world, "first", b.broker, "mine", service_time=0.1)
    Consumer(b.world, "second", b.broker, "mine", service_time=0.1)
    b.publish_at(1, "mine", "a")
    install(b.world, [Crash("first", at=5.0)])
    b.run(10)
    assert b.bodies("consume") == ["a"] and b.mq("consume")[0][4] == "first"
    subs = [node for _, node, ev, _ in b.world.trace.events if ev == "subscribe"]
    assert subs == ["first"]  # the second was refused (RESOURCE_LOCKED), and retries
    assert "mine" not in b.broker.queues  # deleted when its owner's connection closed


# -- order over a jittery network ---------------------------------------------------------

@pytest.mark.parametrize("transport", ["broker", "brokerless"])
def test_one_publisher_one_consumer_keep_their_order_over_a_jittery_network(transport):
    """REFERENCE §4: one publisher's messages through one queue to one consumer keep
    their order.  Each hop is one TCP connection, which never reorders, so exponential
    latency delays messages but does not let one overtake another (Node.fifo)."""
    from simcomm.engine import Exponential
    from simcomm.messaging import Brokerless

    world = World(seed=3)
    world.network.set_default(Link(latency=Exponential(0.02)))
    hub = Broker(world) if transport == "broker" else Brokerless(world)
    orders = hub.point_to_point("orders")
    Producer(world, "web", hub, orders, rate=200.0, count=2000)
    Consumer(world, "billing", hub, orders, prefetch=50, service_time=0.001)
    res = Result(world.run(60))
    order = res.ordering()
    assert order["messages"].sum() == 2000
    assert order["out_of_order"].sum() == 0 and order["duplicates"].sum() == 0
