"""The network: latency, loss, bandwidth, partitions, the ledger (engine.network)."""

from __future__ import annotations

import math

import pytest

from simcomm.engine import (
    FORMATS,
    Constant,
    Crash,
    Exponential,
    Instance,
    Link,
    Node,
    World,
    install,
)
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.rpc import call


class Sink(Node):
    """Records (time, message) for every request/command delivered to it."""

    def __init__(self, world: World, name: str) -> None:
        super().__init__(world, name)
        self.got: list = []

    def handle(self, msg) -> None:
        self.got.append((self.env.now, msg))


def send_at(world: World, node: Node, dest: str, t: float, body=None, **kw) -> list:
    """Send one message from ``node`` at time ``t``; returns [msg] once sent."""
    box: list = []

    def go() -> None:
        msg = node.message(dest, body, **kw)
        box.append(msg)
        node.send(msg)

    world.at(t, go)
    return box


def ledger(world: World) -> dict:
    led = Result(world).ledger()
    assert led["balanced"], led
    assert led["sent"] == led["delivered"] + led["dropped"] + led["in_flight"]
    return led


# -- latency --------------------------------------------------------------------------

def test_zero_latency_delivers_in_the_same_instant():
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    send_at(w, a, "b", 3.5)
    w.run(10)
    assert [t for t, _ in b.got] == [3.5]


def test_constant_latency_is_added_to_the_send_time():
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", latency=0.25)
    for t in (0.0, 1.0, 2.5):
        send_at(w, a, "b", t)
    send_at(w, b, "a", 4.0)  # symmetric by default
    w.run(10)
    assert [t for t, _ in b.got] == [0.25, 1.25, 2.75]
    assert [t for t, _ in a.got] == [4.25]
    tr = Result(w).trace
    sends = tr[tr.event == "send"].set_index("message_id")["time"]
    delivers = tr[tr.event == "deliver"].set_index("message_id")["time"]
    assert (delivers - sends).round(12).tolist() == [0.25] * 4


def test_asymmetric_link_and_default_link():
    w = World(0, network=Link(latency=1.0))
    a, b, c = Sink(w, "a"), Sink(w, "b"), Sink(w, "c")
    w.network.link("a", "b", latency=0.1, symmetric=False)
    send_at(w, a, "b", 0)
    send_at(w, b, "a", 0)
    send_at(w, a, "c", 0)
    w.run(5)
    assert [t for t, _ in b.got] == [0.1]
    assert [t for t, _ in a.got] == [1.0]
    assert [t for t, _ in c.got] == [1.0]


def test_random_latency_has_the_configured_mean():
    w = World(1)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", latency=Exponential(0.05))
    n = 4000
    for i in range(n):
        send_at(w, a, "b", i * 0.01)
    w.run(100)
    delays = [t - m.created for t, m in b.got]
    assert len(delays) == n
    mean = sum(delays) / n
    # exponential: sd = mean; 5 standard errors of the mean
    assert abs(mean - 0.05) < 5 * 0.05 / math.sqrt(n)
    assert min(delays) >= 0


# -- order ----------------------------------------------------------------------------

class OneConnection(Sink):
    """A node whose traffic rides one connection per peer (as a broker's does)."""

    fifo = True


def _arrival_order(fifo_link: bool = False, sink: type[Sink] = Sink) -> list[int]:
    """Ids of 200 messages, sent 1 ms apart over a 50 ms exponential link, in the
    order they arrive."""
    w = World(1)
    a, _ = Sink(w, "a"), sink(w, "b")
    w.network.link("a", "b", latency=Exponential(0.05), fifo=fifo_link)
    sent = [send_at(w, a, "b", i * 0.001) for i in range(200)]
    w.run(100)
    got = w.nodes["b"].got  # type: ignore[attr-defined]
    assert len(got) == len(sent)
    return [m.id for _, m in got]


def test_a_jittery_link_reorders_and_a_fifo_one_does_not():
    """Packets on separate connections overtake each other; one TCP connection
    delivers in order, each message no earlier than the one before it."""
    jittery = _arrival_order()
    assert jittery != sorted(jittery)
    in_order = _arrival_order(fifo_link=True)
    assert in_order == sorted(in_order)


def test_a_node_on_one_connection_makes_its_links_fifo():
    order = _arrival_order(sink=OneConnection)
    assert order == sorted(order)


def test_a_fifo_link_only_holds_back_what_would_overtake():
    """Head-of-line blocking: a message arrives at max(its own arrival, the one
    before's); the latency of one that would not overtake is untouched."""
    w = World(1)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", latency=Constant(1.0), fifo=True)
    w.network.link("a", "b", latency=Constant(1.0), fifo=True)
    send_at(w, a, "b", 0.0)
    w.run(0.5)
    w.network.link("a", "b", latency=Constant(0.1), fifo=True)  # a new link: a new connection
    send_at(w, a, "b", 0.6)
    w.run(3)
    assert [t for t, _ in b.got] == pytest.approx([0.7, 1.0])


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_fifo_must_be_a_flag(bad):
    with pytest.raises(ParamError) as info:
        Link(fifo=bad)
    assert info.value.field == "fifo"


# -- loss ---------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_loss_probability(p):
    w = World(2)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", loss=p, latency=0.01)
    n = 5000
    for i in range(n):
        send_at(w, a, "b", i * 0.001)
    w.run(20)
    led = ledger(w)
    lost = led["dropped_by_reason"].get("loss", 0)
    assert lost + len(b.got) == n
    # binomial(n, p): 5 standard deviations (exact at p = 0 and 1)
    assert abs(lost - n * p) <= 5 * math.sqrt(n * p * (1 - p))
    drops = Result(w).trace.query("event == 'drop'")
    assert set(drops["reason"]) <= {"loss"}


@pytest.mark.parametrize("loss", [-0.1, 1.5, math.nan, "x"])
def test_loss_must_be_a_probability(loss):
    with pytest.raises(ParamError) as info:
        Link(loss=loss)
    assert info.value.field == "loss"


@pytest.mark.parametrize("latency", [-1.0, math.inf, "1ms"])
def test_latency_must_be_non_negative(latency):
    with pytest.raises(ParamError) as info:
        Link(latency=latency)
    assert info.value.field == "latency"


@pytest.mark.parametrize("bw", [0, -5, "fast"])
def test_bandwidth_must_be_positive(bw):
    with pytest.raises(ParamError) as info:
        Link(bandwidth=bw)
    assert info.value.field == "bandwidth"


# -- bandwidth ------------------------------------------------------------------------

def test_bandwidth_adds_size_over_bandwidth():
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", latency=0.1, bandwidth=1000.0)
    send_at(w, a, "b", 1.0, size=500)
    body = {"text": "x" * 1989}  # compact JSON: 2000 bytes
    assert FORMATS["json"].size(body) == 2000
    send_at(w, a, "b", 2.0, body, format=FORMATS["json"])
    send_at(w, a, "b", 5.0)  # no body, no format: 0 bytes
    w.run(10)
    assert [round(t, 12) for t, _ in b.got] == [1.6, 4.1, 5.1]


def test_a_link_with_a_bandwidth_sends_one_message_at_a_time():
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", latency=0.1, bandwidth=1000.0, symmetric=False)
    for _ in range(3):
        send_at(w, a, "b", 1.0, size=500)  # back to back: each waits for the last
    send_at(w, a, "b", 1.2, size=0)  # behind the backlog even though it is empty
    send_at(w, b, "a", 1.0, size=500)  # the other direction is not this link
    w.run(10)
    assert [round(t, 12) for t, _ in b.got] == [1.6, 2.1, 2.6, 2.6]
    assert [t for t, _ in a.got] == [1.0]
    # after the backlog, the link is free again
    w2 = World(0)
    a2, b2 = Sink(w2, "a"), Sink(w2, "b")
    w2.network.link("a", "b", bandwidth=100.0)
    send_at(w2, a2, "b", 0.0, size=100)
    send_at(w2, a2, "b", 5.0, size=100)
    w2.run(10)
    assert [t for t, _ in b2.got] == [1.0, 6.0]


def test_bandwidth_alone_without_latency():
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", bandwidth=100.0)
    send_at(w, a, "b", 0.0, size=50)
    w.run(10)
    assert [t for t, _ in b.got] == [0.5]


@pytest.mark.parametrize("trace", [True, False])
def test_a_link_adds_up_its_transmission_seconds_and_clamps_at_the_end(trace):
    """1000 B/s: 500 B at t=1 (1-1.5), then 3 x 500 B at t=2, back to back
    (2-2.5, 2.5-3, 3-3.5).  By t=3 the link was busy 0.5 + 1.0 s: the last
    message's transmission lies after the end and is clamped off."""
    w = World(0, trace=trace)
    a, _b, _c = Sink(w, "a"), Sink(w, "b"), Sink(w, "c")
    w.network.link("a", "b", latency=0.1, bandwidth=1000.0, symmetric=False)
    w.network.link("a", "c", bandwidth=1000.0)  # configured, never used
    send_at(w, a, "b", 1.0, size=500)
    for _ in range(3):
        send_at(w, a, "b", 2.0, size=500)
    send_at(w, a, "c", 2.0, size=0)  # carried no bytes: no busy time
    w.run(3.0)
    assert w.network.link_busy_seconds(3.0) == {("a", "b"): 1.5}
    assert w.network.link_busy_seconds(4.0) == {("a", "b"): 2.0}  # all of it by t=4
    assert Result(w).link_utilisation() == {"a → b": 0.5}
    with pytest.raises(ParamError) as info:
        w.network.link_busy_seconds(2.0)
    assert info.value.field == "until"


def test_links_without_a_bandwidth_have_no_busy_time():
    w = World(0)
    a, _b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", latency=0.1)
    send_at(w, a, "b", 1.0, size=10_000)
    w.run(5)
    assert w.network.link_busy_seconds(5) == {}
    assert Result(w).link_utilisation() == {}


def test_reconfiguring_a_link_keeps_the_busy_time_it_had():
    """100 B/s: 100 B at t=0 (0-1), the link is reconfigured at t=2 to
    200 B/s, then 100 B at t=3 (3-3.5): 1.5 s busy in all."""
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", bandwidth=100.0)
    send_at(w, a, "b", 0.0, size=100)
    w.at(2.0, lambda: w.network.link("a", "b", bandwidth=200.0))
    send_at(w, a, "b", 3.0, size=100)
    w.run(10)
    assert [t for t, _ in b.got] == [1.0, 3.5]
    assert w.network.link_busy_seconds(10) == {("a", "b"): 1.5}


# -- partitions ----------------------------------------------------------------------------

def test_partition_cuts_at_a_time_and_heals_at_a_time():
    w = World(0)
    a, b, c = Sink(w, "a"), Sink(w, "b"), Sink(w, "c")
    w.network.cut(["a", "c"], ["b"], at=10, heal_at=20)
    before = send_at(w, a, "b", 5)
    during = send_at(w, a, "b", 15)
    back = send_at(w, b, "a", 15)
    within = send_at(w, a, "c", 15)
    after = send_at(w, a, "b", 25)
    w.run(30)
    assert [m.id for _, m in b.got] == [before[0].id, after[0].id]
    assert [m.id for _, m in c.got] == [within[0].id]
    assert a.got == []
    tr = Result(w).trace
    drops = tr[tr.event == "drop"]
    assert sorted(drops["message_id"]) == sorted([during[0].id, back[0].id])
    assert set(drops["reason"]) == {"partition"}
    ev = Result(w).events
    assert ev[["time", "event"]].values.tolist() == [[10, "partition"], [20, "heal"]]
    assert ledger(w)["dropped_by_reason"] == {"partition": 2}


def test_nodes_in_no_group_are_a_group_of_their_own():
    w = World(0)
    a, b, c = Sink(w, "a"), Sink(w, "b"), Sink(w, "c")
    w.network.cut(["a"], at=1)
    send_at(w, b, "c", 2)
    send_at(w, b, "a", 2)
    w.run(5)
    assert len(c.got) == 1
    assert a.got == []
    assert ledger(w)["dropped_by_reason"] == {"partition": 1}


def test_a_message_in_flight_when_the_cut_happens_is_dropped_on_arrival():
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", latency=1.0)
    w.network.cut(["a"], ["b"], at=10.5, heal_at=12)
    send_at(w, a, "b", 10)  # arrives at 11, inside the cut
    send_at(w, a, "b", 11.5)  # sent inside the cut: dropped at once
    send_at(w, a, "b", 11.8)  # sent inside the cut too
    w.run(20)
    assert b.got == []
    drops = Result(w).trace.query("event == 'drop'")
    assert drops["time"].tolist() == [11.0, 11.5, 11.8]
    assert ledger(w)["dropped_by_reason"] == {"partition": 3}


def test_a_cut_without_a_time_happens_at_once_and_heal_ends_it():
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.cut(["a"], ["b"])
    send_at(w, a, "b", 1)
    w.at(2, w.network.heal)
    send_at(w, a, "b", 3)
    w.run(5)
    assert [t for t, _ in b.got] == [3]
    assert w.network.can_reach("a", "b")
    assert ledger(w)["dropped_by_reason"] == {"partition": 1}


@pytest.mark.parametrize(("groups", "kw", "field"), [
    ((["a"], []), {}, "groups"),
    ((["a", "b"], ["b"]), {}, "groups"),
    ((["a"],), {"at": 5, "heal_at": 5}, "heal_at"),
    ((["a"],), {"at": 5, "heal_at": 2}, "heal_at"),
])
def test_bad_partitions_are_refused(groups, kw, field):
    w = World(0)
    Sink(w, "a")
    Sink(w, "b")
    with pytest.raises(ParamError) as info:
        w.network.cut(*groups, **kw)
    assert info.value.field == field


# -- node down, refusals ------------------------------------------------------------------

def test_request_to_a_down_node_is_dropped_and_the_caller_is_refused():
    w = World(0)
    srv = Instance(w, "srv", service_time=Constant(1.0))
    cli = Node(w, "cli")
    install(w, [Crash("srv", at=5, duration=10)])
    replies = []

    def ask(t):
        def go():
            ev = cli.request("srv", "hi")
            ev.callbacks.append(lambda e: replies.append((w.now, e.value.status)))
        w.at(t, go)

    for t in (1, 7, 20):
        ask(t)
    w.run(30)
    assert replies == [(2, "ok"), (7, "refused"), (21, "ok")]
    led = ledger(w)
    assert led["dropped_by_reason"] == {"node_down": 1}
    tr = Result(w).trace
    drop = tr[tr.event == "drop"].iloc[0]
    assert (drop.time, drop.reason, drop.dest) == (7, "node_down", "srv")
    assert srv.up


def test_reply_to_a_down_node_is_dropped_without_an_answer():
    w = World(0)

    def forward(ctx, request):
        reply = yield from call(ctx, "back")
        return reply.status

    Instance(w, "back", service_time=Constant(5.0))
    Instance(w, "front", handler=forward)
    cli = Node(w, "cli")
    install(w, [Crash("front", at=2, duration=10)])
    replies = []
    w.at(0, lambda: cli.request("front").callbacks.append(
        lambda e: replies.append((w.now, e.value.status))))
    w.run(20)
    assert replies == [(2, "reset")]  # front died while waiting for back
    tr = Result(w).trace
    drops = tr[tr.event == "drop"]
    assert drops[["time", "kind", "source", "dest", "reason"]].values.tolist() == [
        [5, "reply", "back", "front", "node_down"]]
    # the refused reply is not answered in turn: messages are the request to
    # front, its call to back, front's reset reply and back's dropped reply
    assert ledger(w)["sent"] == 4


def test_message_to_an_unknown_node_is_dropped():
    w = World(0)
    a = Sink(w, "a")
    send_at(w, a, "nobody", 1)
    w.run(2)
    assert ledger(w)["dropped_by_reason"] == {"no_such_node": 1}


def test_node_names_are_unique():
    w = World(0)
    Sink(w, "a")
    with pytest.raises(ParamError) as info:
        Sink(w, "a")
    assert info.value.field == "name"


# -- the ledger ----------------------------------------------------------------------------

def test_ledger_counts_in_flight_messages_at_the_end():
    w = World(0)
    a, _b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", latency=5.0)
    send_at(w, a, "b", 0)
    send_at(w, a, "b", 1)
    send_at(w, a, "b", 4)
    w.run(6)
    led = ledger(w)
    assert (led["sent"], led["delivered"], led["dropped"], led["in_flight"]) == (3, 1, 0, 2)
    m = Result(w).messages
    assert m["fate"].tolist() == ["delivered", "in_flight", "in_flight"]
    assert m["ended"].isna().tolist() == [False, True, True]


def test_ledger_each_message_one_send_at_most_one_end():
    w = World(3)
    srv = Instance(w, "srv", workers=2, service_time=Exponential(0.2), queue_capacity=2)
    cli = Node(w, "cli")
    w.network.link("cli", "srv", latency=Exponential(0.05), loss=0.1)
    w.network.cut(["cli"], ["srv"], at=20, heal_at=25)
    install(w, [Crash("srv", at=30, duration=5)])

    def load():
        rng = w.stream("test:load")
        while True:
            yield w.env.timeout(rng.expovariate(20))
            cli.request("srv", {"n": 1}, format=FORMATS["json"])

    w.env.process(load())
    w.run(60)
    led = ledger(w)
    reasons = set(led["dropped_by_reason"])
    assert {"loss", "partition", "node_down", "rejected"} <= reasons
    tr = Result(w).trace
    counts = tr.groupby("message_id")["event"].agg(list)
    for events in counts:
        assert events[0] == "send"
        assert events.count("send") == 1
        assert len(events) <= 2
    assert srv.up


def test_ledger_detects_an_unbalanced_trace():
    w = World(0)
    a, _b = Sink(w, "a"), Sink(w, "b")
    send_at(w, a, "b", 1)
    w.run(2)
    assert Result(w).ledger()["balanced"]
    w.trace.messages.append(w.trace.messages[-1])  # a second terminal event
    assert not Result(w).ledger()["balanced"]
    w.network.delivered += 1  # and counters that disagree
    assert not Result(w).ledger()["balanced"]


def test_healing_an_earlier_cut_leaves_a_later_cut_in_force():
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.cut(["a"], ["b"], at=1.0, heal_at=5.0)
    w.network.cut(["a"], ["b"], at=3.0, heal_at=8.0)
    send_at(w, a, "b", 6.0)  # after the first cut's heal, inside the second cut
    send_at(w, a, "b", 9.0)  # after both
    w.run(10)
    assert [round(t, 9) for t, _ in b.got] == [9.0]
    assert w.network.dropped == {"partition": 1}


def test_messages_carry_their_sent_and_delivered_times():
    w = World(0)
    a, b = Sink(w, "a"), Sink(w, "b")
    w.network.link("a", "b", latency=0.25)
    box = send_at(w, a, "b", 2.0)
    w.run(5)
    msg = box[0]
    assert (msg.created, msg.sent, msg.delivered) == (2.0, 2.0, 2.25)
    assert b.got == [(2.25, msg)]
