"""The brokerless transport follows ZeroMQ: pipes per peer, PUSH round-robin, PUB
copies, the high-water mark, no persistence -- and keeps every copy accounted for.

Each test builds a tiny topology, publishes at chosen times from a plain node
(or a Poisson Producer) and checks what ``trace.mq`` recorded, when, and where.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from simcomm.engine import Crash, Hang, Instance, Link, Node, Slowdown, World, install
from simcomm.errors import ParamError
from simcomm.messaging import Broker, Consumer, Producer, Transport, publish
from simcomm.messaging.brokerless import Brokerless
from simcomm.result import Result

# -- helpers -------------------------------------------------------------------


class Bench:
    """A world with a brokerless transport and a publisher node; bodies by message id."""

    def __init__(self, seed: int = 0, latency: float | None = None, **transport) -> None:
        self.world = World(seed=seed, network=Link(latency=latency) if latency else None)
        self.bl = Brokerless(self.world, **transport)
        self.pub = Node(self.world, "pub")
        self.body: dict[int, object] = {}
        self.confirms: list[tuple[object, str]] = []

    def publish_at(self, t: float, channel: str, body: object, node: Node | None = None,
                   **kw) -> None:
        def go() -> None:
            mid = self.world.message_count + 1  # the transport takes the next id first
            ev = publish(node or self.pub, self.bl, channel, body, **kw)
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

    def bodies(self, event: str, **kw) -> list[object]:
        return [self.body.get(r[2]) for r in self.mq(event, **kw)]

    def ledger(self) -> dict:
        return Result(self.world).message_ledger()


def consumer(bench: Bench, name: str, channel: str, **kw) -> Consumer:
    kw.setdefault("service_time", 0.01)
    return Consumer(bench.world, name, bench.bl, channel, **kw)


# -- the transport interface ------------------------------------------------------


def test_it_is_a_transport_and_the_same_code_runs_on_a_broker():
    """One knob: the same Producer and Consumer code runs on either transport,
    and every message is consumed on both (no faults)."""
    for make in (lambda w: Broker(w), lambda w: Brokerless(w)):
        world = World(seed=3, network=Link(latency=0.002))
        transport = make(world)
        assert isinstance(transport, Transport)
        orders = transport.point_to_point("orders")
        events = transport.publish_subscribe("events")
        workers = [Consumer(world, f"w{i}", transport, orders, service_time=0.01)
                   for i in range(2)]
        subs = [Consumer(world, f"s{i}", transport, events, subscription=f"s{i}")
                for i in range(3)]
        Producer(world, "p", transport, orders, rate=20, count=100)
        Producer(world, "q", transport, events, rate=20, count=50)
        world.run(until=60)
        assert sum(c.consumed for c in workers) == 100
        assert [c.consumed for c in subs] == [50, 50, 50]
        ledger = Result(world).message_ledger()
        assert ledger["balanced"] and ledger["consumed"] == 250


def test_one_hop_instead_of_two():
    """Without a broker a message crosses one link: publish to delivery takes
    one latency once the pipe is connected (a broker takes two)."""
    b = Bench(latency=0.01)
    consumer(b, "c", b.bl.point_to_point("orders"))
    b.world.at(0.0, lambda: b.bl.open(b.pub, "orders"))  # zmq_connect at start-up
    b.publish_at(1.0, "orders", "x")
    b.run(5)
    (deliver,) = b.mq("deliver")
    assert deliver[0] == pytest.approx(1.01)
    assert b.mq("pipe")[0][5] == "c"  # the copy went into the pipe to c


def test_first_messages_wait_for_the_handshake():
    """A socket opened by its first publish connects first: the message waits
    in the pipe for one round trip of the handshake, then one latency."""
    b = Bench(latency=0.01)
    consumer(b, "c", b.bl.point_to_point("orders"))
    b.publish_at(1.0, "orders", "x")
    b.run(5)
    assert b.mq("deliver")[0][0] == pytest.approx(1.03)


# -- PUSH / PULL -----------------------------------------------------------------


def test_push_round_robins_over_the_consumers():
    """Point-to-point: each message to one consumer, in turn (ZeroMQ's load balancer)."""
    b = Bench()
    orders = b.bl.point_to_point("orders")
    for name in ("a", "b", "c"):
        consumer(b, name, orders)
    for i in range(7):
        b.publish_at(1.0 + i, orders, i)
    b.run(20)
    got = {name: b.bodies("consume", node=name) for name in ("a", "b", "c")}
    assert got == {"a": [0, 3, 6], "b": [1, 4], "c": [2, 5]}


def test_consumer_down_buffers_up_to_the_hwm_then_drops_and_delivers_late():
    """While its only consumer is down the sender's pipe keeps at most
    high_water_mark messages (ZMQ_SNDHWM); the rest are dropped (``hwm``).
    When the consumer is back the pipe reconnects (every reconnect_interval)
    and what it kept arrives late, in order."""
    b = Bench(high_water_mark=3, reconnect_interval=0.5)
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    install(b.world, [Crash("c", at=1.0, duration=4.0)])
    for i in range(6):
        b.publish_at(2.0 + 0.1 * i, orders, i)
    b.run(20)
    assert b.bodies("drop", channel=orders) == [3, 4, 5]
    assert {r[5] for r in b.mq("drop")} == {"hwm"}
    assert {r[4] for r in b.mq("drop")} == {"pub"}  # the sender drops them
    assert b.bodies("consume") == [0, 1, 2]
    first = b.mq("deliver")[0][0]
    assert 5.0 <= first <= 5.5  # at the first reconnect attempt after the restart
    assert b.ledger()["balanced"]


def test_no_limit_with_hwm_zero():
    """high_water_mark=0 means no limit, as ZeroMQ's 0: everything waits."""
    b = Bench(high_water_mark=0, reconnect_interval=0.5)
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    install(b.world, [Crash("c", at=1.0, duration=4.0)])
    for i in range(50):
        b.publish_at(2.0 + 0.01 * i, orders, i)
    b.run(20)
    assert b.bodies("consume") == list(range(50))
    assert not b.mq("drop")


def test_a_crashed_consumer_loses_what_it_held():
    """No persistence, no acks: what the consumer had received but not
    finished dies with it (``consumer_crash``) and is never delivered again."""
    b = Bench()
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders, service_time=1.0)
    for i in range(4):
        b.publish_at(1.0, orders, i)
    install(b.world, [Crash("c", at=2.5, duration=1.0)])
    b.run(20)
    assert b.bodies("consume") == [0]
    assert b.bodies("drop") == [1, 2, 3]
    assert {(r[4], r[5]) for r in b.mq("drop")} == {("c", "consumer_crash")}
    led = b.ledger()
    assert led["balanced"] and led["dropped_by_reason"] == {"consumer_crash": 3}


def test_copies_on_the_wire_to_a_consumer_that_died_bounce_as_peer_down():
    """A copy sent before the crash (or before the sender heard of it) reaches
    a dead process: its host answers with a reset, and the sender records the
    copy lost (``peer_down``) when that reset comes back."""
    b = Bench(latency=0.5, reconnect_interval=1.0)
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    b.world.at(0.0, lambda: b.bl.open(b.pub, orders))
    b.publish_at(2.0, orders, "before")   # on the wire when c crashes at 2.2
    b.publish_at(2.4, orders, "after")    # the reset of the connection arrives at 2.7
    b.publish_at(3.0, orders, "waits")    # the pipe knows: kept for later
    install(b.world, [Crash("c", at=2.2, duration=3.0)])
    b.run(20)
    peer_down = b.mq("drop")
    assert [(b.body[r[2]], r[4], r[5]) for r in peer_down] == [
        ("before", "pub", "peer_down"), ("after", "pub", "peer_down")]
    assert peer_down[0][0] == pytest.approx(3.0)  # 2.5 arrival at the dead host + 0.5 back
    assert b.bodies("consume") == ["waits"]
    assert b.ledger()["balanced"]


def test_copies_arriving_after_a_quick_restart_are_discarded_once():
    """A consumer back before a copy of its old connection arrives discards it
    (TCP never hands a new connection the old one's bytes): lost once, as
    ``consumer_crash``, not also as ``peer_down``."""
    b = Bench(latency=0.5)
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    b.world.at(0.0, lambda: b.bl.open(b.pub, orders))
    b.publish_at(2.0, orders, "old")
    install(b.world, [Crash("c", at=2.1, duration=0.1)])
    b.publish_at(6.0, orders, "new")
    b.run(20)
    assert [(b.body[r[2]], r[5]) for r in b.mq("drop")] == [("old", "consumer_crash")]
    assert b.bodies("consume") == ["new"]
    led = b.ledger()
    assert led["balanced"] and led["conflicts"] == 0


def test_push_gives_a_down_consumer_its_turn_unless_immediate():
    """ZeroMQ's default: a pipe to a consumer that is not connected takes its
    turn and its messages wait (delivered late); with ZMQ_IMMEDIATE only
    connected consumers get messages."""
    late = {}
    for immediate in (False, True):
        b = Bench(immediate=immediate, reconnect_interval=0.5)
        orders = b.bl.point_to_point("orders")
        consumer(b, "a", orders)
        consumer(b, "b", orders)
        b.world.at(0.0, lambda b=b: b.bl.open(b.pub, "orders"))  # connected before
        install(b.world, [Crash("b", at=1.0, duration=5.0)])
        for i in range(6):
            b.publish_at(2.0 + 0.1 * i, orders, i)
        b.run(20)
        late[immediate] = b.bodies("consume", node="b")
        assert sorted(b.bodies("consume")) == list(range(6))
        assert all(r[0] >= 6.0 for r in b.mq("deliver", node="b"))  # b is back at 6
    assert late == {False: [1, 3, 5], True: []}


def test_immediate_with_nobody_connected_drops_peer_down():
    """ZMQ_IMMEDIATE and no connected consumer: a real PUSH socket would block;
    the message is dropped (``peer_down``), as with ZMQ_DONTWAIT."""
    b = Bench(immediate=True)
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    install(b.world, [Crash("c", at=1.0, duration=5.0)])
    b.publish_at(2.0, orders, "x")
    b.run(10)
    assert [(r[4], r[5]) for r in b.mq("drop")] == [("pub", "peer_down")]


def test_a_slow_consumer_fills_its_receive_buffer_and_push_skips_it():
    """A consumer's receive buffer holds at most high_water_mark messages; a
    PUSH socket then sends to the others (a full pipe is skipped), and drops
    (``hwm``) only when every pipe is full."""
    b = Bench(high_water_mark=2)
    orders = b.bl.point_to_point("orders")
    consumer(b, "slow", orders, service_time=10.0)
    consumer(b, "fast", orders, service_time=0.001)
    for i in range(10):
        b.publish_at(1.0 + 0.01 * i, orders, i)
    b.run(100)
    got = Counter(r[4] for r in b.mq("consume"))
    assert got["slow"] == 3  # one at work, two in its buffer
    assert got["fast"] == 7
    assert not b.mq("drop")


def test_slow_subscriber_loses_beyond_the_mark():
    """PUB drops a subscriber's copy when its pipe is full: a slow subscriber
    gets what its buffer holds, the others everything."""
    b = Bench(high_water_mark=2)
    events = b.bl.publish_subscribe("events")
    consumer(b, "slow", events, subscription="slow", service_time=10.0)
    consumer(b, "fast", events, subscription="fast", service_time=0.001)
    for i in range(10):
        b.publish_at(1.0 + 0.01 * i, events, i)
    b.run(200)
    assert b.bodies("consume", node="fast") == list(range(10))
    assert b.bodies("consume", node="slow") == [0, 1, 2]
    assert b.bodies("drop", channel="events.slow") == list(range(3, 10))
    assert b.ledger()["balanced"]


# -- PUB / SUB -------------------------------------------------------------------


def test_pub_copies_to_every_subscriber():
    """Publish-subscribe: each subscription gets its own copy, on its own channel."""
    b = Bench()
    events = b.bl.publish_subscribe("events")
    for name in ("a", "b", "c"):
        consumer(b, name, events, subscription=name)
    for i in range(4):
        b.publish_at(1.0 + i, events, i)
    b.run(10)
    for name in ("a", "b", "c"):
        assert b.bodies("consume", channel=f"events.{name}") == [0, 1, 2, 3]
    led = b.ledger()
    assert led["published"] == 4 and led["copies"] == 12 and led["consumed"] == 12


def test_consumers_of_one_subscription_share_its_copies():
    """A durable subscription read by two consumers: they compete for its copies."""
    b = Bench()
    events = b.bl.publish_subscribe("events")
    consumer(b, "x1", events, subscription="x")
    consumer(b, "x2", events, subscription="x")
    consumer(b, "y", events, subscription="y")
    for i in range(4):
        b.publish_at(1.0 + i, events, i)
    b.run(10)
    assert b.bodies("consume", node="x1") == [0, 2]
    assert b.bodies("consume", node="x2") == [1, 3]
    assert b.bodies("consume", node="y") == [0, 1, 2, 3]


def test_durable_subscriber_gets_what_it_missed_non_durable_does_not():
    """A durable subscriber's pipe keeps what is published while it is away
    (up to the mark), delivered when it is back; a non-durable subscriber has
    no pipe while away and misses it."""
    b = Bench(reconnect_interval=0.5)
    events = b.bl.publish_subscribe("events")
    consumer(b, "d", events, subscription="d")
    consumer(b, "n", events, subscription="n", durable=False)
    b.world.at(0.0, lambda: b.bl.open(b.pub, events))
    install(b.world, [Crash("d", at=1.5, duration=3.3), Crash("n", at=1.5, duration=3.3)])
    for i, t in enumerate((1.0, 2.0, 3.0, 4.0, 5.5, 6.0)):  # both back by 5.3
        b.publish_at(t, events, i)
    b.run(20)
    assert b.bodies("consume", node="d") == [0, 1, 2, 3, 4, 5]
    assert b.bodies("consume", node="n") == [0, 4, 5]
    # the copies for d published while it was away arrived after its restart
    assert [r[0] >= 4.8 for r in b.mq("deliver", node="d")] == [False] + [True] * 5
    assert b.ledger()["balanced"]


def test_a_non_durable_subscriber_misses_messages_before_its_handshake():
    """ZeroMQ's slow joiner: a publisher's first messages find the non-durable
    subscriber not connected yet, and it never gets them."""
    b = Bench(latency=0.01)
    events = b.bl.publish_subscribe("events")
    consumer(b, "n", events, subscription="n", durable=False)
    b.publish_at(1.0, events, "early")
    b.publish_at(2.0, events, "later")
    b.run(5)
    assert b.bodies("consume") == ["later"]
    assert [(r[3], r[5]) for r in b.mq("drop")] == [("events", "unroutable")]


def test_publish_with_no_consumer_is_unroutable():
    """No endpoint to send to: the message is dropped at the sender."""
    b = Bench()
    b.bl.point_to_point("orders")
    b.bl.publish_subscribe("events")
    b.publish_at(1.0, "orders", 1)
    b.publish_at(1.0, "events", 2)
    b.run(3)
    assert [(r[3], r[4], r[5]) for r in b.mq("drop")] == [
        ("orders", "pub", "unroutable"), ("events", "pub", "unroutable")]
    assert b.ledger()["balanced"]


def test_confirm_says_whether_every_copy_went_into_a_pipe():
    """No broker to confirm: the event fires at once with ``ack`` if every copy
    is in a pipe, ``nack`` if one was dropped (zmq_send's EAGAIN)."""
    b = Bench(high_water_mark=1)
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    install(b.world, [Crash("c", at=0.5, duration=5.0)])
    b.publish_at(1.0, orders, "kept", confirm=True)
    b.publish_at(1.0, orders, "dropped", confirm=True)
    b.run(10)
    assert b.confirms == [("kept", "ack"), ("dropped", "nack")]
    assert [r[5] for r in b.mq("confirm")] == ["ack", "nack"]


# -- the network and the sender ----------------------------------------------------


def test_nothing_crosses_a_partition_and_it_arrives_after_the_heal():
    """TCP keeps what it cannot send: a cut holds the pipe's messages at the
    sender (counted against the mark), and they go once it heals."""
    b = Bench(reconnect_interval=0.5)
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    b.world.network.cut(["pub"], ["c"], at=1.0, heal_at=4.0)
    for i in range(3):
        b.publish_at(2.0 + i * 0.1, orders, i)
    b.run(10)
    assert b.bodies("consume") == [0, 1, 2]
    assert all(4.0 <= r[0] <= 4.5 for r in b.mq("deliver"))
    assert b.ledger()["balanced"]


def test_a_lost_packet_is_sent_again_before_the_next():
    """On a lossy link TCP resends: nothing is lost and the order is kept; the
    network ledger shows the lost transmissions."""
    b = Bench(seed=4, reconnect_interval=0.2)
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    b.world.network.link("pub", "c", loss=0.3)
    for i in range(40):
        b.publish_at(1.0 + i * 0.05, orders, i)
    b.run(60)
    assert b.bodies("consume") == list(range(40))
    assert b.bl.stats["retransmitted"] > 0
    assert b.world.network.dropped["loss"] >= b.bl.stats["retransmitted"]
    assert b.ledger()["balanced"]


def test_a_crashed_sender_loses_what_waited_in_its_pipes():
    """The pipes live in the sender's process: when it crashes, what waited in
    them for an unreachable consumer is lost (``producer_crash``)."""
    b = Bench(reconnect_interval=0.5)
    svc = Instance(b.world, "svc")
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    install(b.world, [Crash("c", at=1.0, duration=5.0), Crash("svc", at=3.0, duration=1.0)])
    for i in range(3):
        b.publish_at(2.0, orders, i, node=svc)
    b.publish_at(5.0, orders, "after", node=svc)
    b.run(20)
    assert [(b.body[r[2]], r[4], r[5]) for r in b.mq("drop")] == [
        (0, "svc", "producer_crash"), (1, "svc", "producer_crash"),
        (2, "svc", "producer_crash")]
    assert b.bodies("consume") == ["after"]
    assert b.ledger()["balanced"]


def test_a_hung_consumer_restarted_by_its_watchdog_loses_its_buffer():
    """A hang fills the consumer's receive buffer (then the mark drops); when the
    watchdog restarts it, the buffered messages are gone and the senders
    reconnect."""
    b = Bench(high_water_mark=3, reconnect_interval=0.5)
    orders = b.bl.point_to_point("orders")
    consumer(b, "c", orders)
    install(b.world, [Hang("c", at=1.0, duration=2.0)])
    for i in range(6):
        b.publish_at(1.5 + 0.1 * i, orders, i)
    b.publish_at(5.0, orders, "after")
    b.run(20)
    reasons = Counter(r[5] for r in b.mq("drop"))
    assert reasons["hwm"] == 2 and reasons["consumer_crash"] == 4
    assert b.bodies("consume") == ["after"]
    assert b.ledger()["balanced"]


def test_ledger_balances_under_crashes_and_slowdowns():
    """Poisson traffic on both channel kinds, several crashes, a slowdown: every
    copy ends with one fate, none is stuck in flight, no conflicts."""
    world = World(seed=7, network=Link(latency=0.02))
    bl = Brokerless(world, high_water_mark=20, reconnect_interval=0.3)
    orders = bl.point_to_point("orders")
    events = bl.publish_subscribe("events")
    for i in range(3):
        Consumer(world, f"w{i}", bl, orders, service_time=0.03)
    Consumer(world, "d", bl, events, subscription="d", service_time=0.02)
    Consumer(world, "n", bl, events, subscription="n", durable=False, service_time=0.02)
    Producer(world, "p", bl, orders, rate=60, count=1500)
    Producer(world, "q", bl, events, rate=30, count=700)
    install(world, [Crash("w0", at=3.0, duration=4.0), Crash("w1", at=5.0, duration=0.01),
                    Crash("d", at=8.0, duration=3.0), Crash("n", at=9.0, duration=2.0),
                    Slowdown("w2", at=12.0, duration=5.0, factor=20.0),
                    Crash("w2", at=14.0, duration=1.0)])
    world.run(until=80)
    led = Result(world).message_ledger()
    assert led["balanced"] and led["conflicts"] == 0
    assert led["in_flight"] == 0 and led["queued"] == 0
    assert led["published"] == 2200
    assert set(led["dropped_by_reason"]) <= {"hwm", "peer_down", "consumer_crash"}
    assert led["consumed"] + led["dropped"] == led["copies"]
    assert bl.stats["buffered"] == 0 and bl.contents() == []


def test_same_seed_same_trace():
    """Deterministic: the same seed gives the identical message log."""
    def run(seed: int) -> list[tuple]:
        world = World(seed=seed, network=Link(latency=0.01))
        bl = Brokerless(world, high_water_mark=5)
        orders = bl.point_to_point("orders")
        for i in range(2):
            Consumer(world, f"w{i}", bl, orders, service_time=0.05)
        Producer(world, "p", bl, orders, rate=30, count=300)
        install(world, [Crash("w0", at=2.0, duration=1.5)])
        world.run(until=30)
        return list(world.trace.mq)

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_stats_without_a_trace():
    """The counters are kept with trace=False too."""
    world = World(seed=1, trace=False)
    bl = Brokerless(world, high_water_mark=2)
    orders = bl.point_to_point("orders")
    Consumer(world, "c", bl, orders)
    install(world, [Crash("c", at=1.0, duration=5.0)])
    Producer(world, "p", bl, orders, rate=10, count=40, start=2.0)
    world.run(until=30)
    st = bl.stats
    assert not world.trace.mq
    assert st["published"] == 40
    assert st["copies"] + st["dropped"]["hwm"] == 40
    assert st["buffered"] == 0


# -- bad arguments -------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"high_water_mark": -1}, "high_water_mark"),
    ({"high_water_mark": 2.5}, "high_water_mark"),
    ({"high_water_mark": True}, "high_water_mark"),
    ({"reconnect_interval": 0}, "reconnect_interval"),
    ({"reconnect_interval": float("inf")}, "reconnect_interval"),
    ({"reconnect_interval": "1"}, "reconnect_interval"),
    ({"immediate": 1}, "immediate"),
])
def test_bad_transport_arguments(kwargs, field):
    with pytest.raises(ParamError) as err:
        Brokerless(World(), **kwargs)
    assert err.value.field == field


def test_numpy_numbers_are_accepted():
    bl = Brokerless(World(), high_water_mark=np.int64(5), reconnect_interval=np.float64(0.5),
                    immediate=np.bool_(True))
    assert (bl.high_water_mark, bl.reconnect_interval, bl.immediate) == (5, 0.5, True)


def test_bad_channels_and_consumers():
    world = World()
    bl = Brokerless(world)
    with pytest.raises(ParamError) as err:
        Brokerless("world")  # type: ignore[arg-type]
    assert err.value.field == "world"
    orders = bl.point_to_point("orders")
    assert bl.point_to_point("orders") == orders  # declaring again is fine
    events = bl.publish_subscribe("events")
    assert (bl.channel_kind(orders), bl.channel_kind(events), bl.channel_kind("x")) == (
        "point_to_point", "publish_subscribe", None)
    for call, field in [
        (lambda: bl.point_to_point("jobs", max_length=10), "max_length"),
        (lambda: bl.point_to_point(""), "name"),
        (lambda: bl.publish_subscribe("orders"), "name"),
        (lambda: bl.point_to_point("events"), "name"),
        (lambda: Consumer(world, "a", bl, "nowhere"), "queue"),
        (lambda: Consumer(world, "b", bl, orders, subscription="s"), "subscription"),
        (lambda: Consumer(world, "c", bl, events), "subscription"),
        (lambda: Consumer(world, "d", bl, events, subscription=""), "subscription"),
        (lambda: publish(Node(world, "p1"), bl, "nowhere", 1), "channel"),
        (lambda: bl.open("p", orders), "node"),  # type: ignore[arg-type]
        (lambda: bl.open(world.nodes["p1"], "nowhere"), "channel"),
        (lambda: Producer(world, "p2", bl, "nowhere", rate=1), "channel"),
    ]:
        with pytest.raises(ParamError) as err:
            call()
        assert err.value.field == field
    Consumer(world, "n", bl, events, subscription="n", durable=False)
    with pytest.raises(ParamError) as err:
        Consumer(world, "n2", bl, events, subscription="n", durable=False)
    assert err.value.field == "subscription"
    Consumer(world, "s1", bl, events, subscription="s")
    with pytest.raises(ParamError) as err:
        Consumer(world, "s2", bl, events, subscription="s", durable=False)
    assert err.value.field == "durable"
    with pytest.raises(ParamError) as err:
        bl.point_to_point("events.s")  # a subscription's name
    assert err.value.field == "name"
