"""Every number notebook 07's prose states is recomputed here (DESIGN.md, principle 10).

Each test repeats the calls of the cells it checks (module-scoped fixtures, so
each run is made once) and registers the exact phrases it checks with
:func:`claim`; ``claims_kit.enforce`` adds three tests: the phrases are still in
the notebook, every digit of its prose is claimed or allowed (with a reason,
:data:`ALLOWED`), and the cells still make the calls repeated here
(:data:`CALLS`).

Runs are deterministic for a seed, so a count or a time the prose gives to its
digits is checked to those digits.  Where the prose says *about* -- a queue
that grows to about 250, a drain of about three seconds -- the test holds the
number to the model it comes from (the commands published during the outage,
the kitchens' spare rate) with a tolerance the run's length justifies: a
Poisson count of ``n`` in a 12 s window wanders by ``√n`` (about 16 for 240),
so a model-derived count is held to ±10 %.  And where the prose draws a lesson
from one run -- one consumer keeps the order, brokerless does not notice a
broker crash -- the lesson is checked on more seeds too.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from claims_kit import Prose, default, enforce, quiet

import simcomm
from simcomm import viz
from simcomm.messaging.brokerless import HIGH_WATER_MARK
from simcomm.scenarios import brokers, competing_consumers

NB = "07-brokers"

ALLOWED = {
    "exercise 07.1": "an exercise's number",
    "— 15 against about 20 —": "the routing rate the bottleneck cell sets (15) beside the "
                              "default publish rate, checked in test_bottleneck_settings",
    "(`slow_consumer=5`": "the setting the fair-dispatch cells use",
    "With prefetch 0 (unlimited)": "the setting the round-robin cell uses",
    "as with prefetch 0 above": "names the round-robin run",
    "A prefetch larger than 1": "a statement about prefetch values in general",
    "(`prefetch=10`)": "the setting the ack-mode cells use",
    "Commands rejected 5 % of the time (`reject_rate=0.05`": "the setting the last ordering "
                                                            "cell uses",
    "**prefetch** 1, 10 and 0 with **ack mode**": "dashboard settings for the learner to try",
    "**slow consumer** 1 with **prefetch** 0": "dashboard settings for the learner to try",
    "**reject rate** 0.2": "a dashboard setting for the learner to try",
}

CALLS = [
    'pd.DataFrame(simcomm.describe("brokers")).set_index("field")',
    'runs = {(fault, transport): simcomm.run("brokers", seed=1, fault=fault, '
    'transport=transport) for fault in brokers.FAULTS for transport in brokers.TRANSPORTS}',
    'runs["none", transport].message_latency() for transport in brokers.TRANSPORTS',
    'viz.queue_depth(runs["consumer-down", "broker"])',
    'viz.message_latency(runs["consumer-down", "broker"])',
    'viz.queue_depth(runs["consumer-down", "brokerless"])',
    'viz.message_latency(runs["consumer-down", "brokerless"])',
    'viz.message_latency(runs["broker-down", "broker"])',
    'replicated = simcomm.run("brokers", seed=1, fault="broker-down", broker_replicas=3)',
    'viz.message_latency(replicated)',
    'slow_broker = simcomm.run("brokers", seed=1, fault="none", broker_routing_rate=15)',
    'slow_broker.bottleneck()',
    'brokers.transport_table(runs.values())',
    'fair = simcomm.run("competing-consumers", seed=1, slow_consumer=5)',
    'round_robin = simcomm.run("competing-consumers", seed=1, slow_consumer=5, prefetch=0)',
    'crash = {"slow_consumer": 3, "prefetch": 10, "crash_consumer": True}',
    'manual = simcomm.run("competing-consumers", seed=1, **crash)',
    'auto = simcomm.run("competing-consumers", seed=1, ack_mode="auto", **crash)',
    'manual.ordering()',
    'calm = simcomm.run("competing-consumers", seed=1)',
    'calm.ordering(by=("producer", "channel"))',
    'readers = {"three kitchens": {}, "one kitchen": {"consumers": 1}, '
    '"one kitchen, prefetch 10": {"consumers": 1, "prefetch": 10}}',
    'simcomm.run("competing-consumers", seed=1, reject_rate=0.05, publish_rate=10, '
    '**how).ordering(by=("producer", "channel")) for name, how in readers.items()',
    'simcomm.explore("competing-consumers", slow_consumer=3, crash_consumer=True)',
    'simcomm.compare("brokers", a={"transport": "broker"}, b={"transport": "brokerless"})',
]

PROSE = Prose(NB, allowed=ALLOWED, calls=CALLS)
claim = PROSE.claim

(test_every_claimed_or_allowed_phrase_is_in_its_notebook,
 test_every_number_in_the_prose_is_checked_or_allowed,
 test_the_notebooks_still_make_the_calls_checked_here) = enforce(PROSE)

CRASH = {"slow_consumer": 3, "prefetch": 10, "crash_consumer": True}
REJECTS = {"reject_rate": 0.05, "publish_rate": 10}
READERS = {"three kitchens": {}, "one kitchen": {"consumers": 1},
           "one kitchen, prefetch 10": {"consumers": 1, "prefetch": 10}}


def _run(*args, **kwargs):
    return quiet(lambda: simcomm.run(*args, progress=False, **kwargs))


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# == fixtures: the notebook's runs ==================================================

@pytest.fixture(scope="module")
def runs():
    """The eight runs of the "Nothing wrong" cell: every fault with both transports."""
    return {(fault, transport): _run("brokers", seed=1, fault=fault, transport=transport)
            for fault in brokers.FAULTS for transport in brokers.TRANSPORTS}


@pytest.fixture(scope="module")
def reports(runs):
    return {key: brokers.transport_report(res) for key, res in runs.items()}


@pytest.fixture(scope="module")
def slow_broker():
    """The bottleneck cell's run."""
    return _run("brokers", seed=1, fault="none", broker_routing_rate=15)


@pytest.fixture(scope="module")
def fair():
    return _run("competing-consumers", seed=1, slow_consumer=5)


@pytest.fixture(scope="module")
def round_robin():
    return _run("competing-consumers", seed=1, slow_consumer=5, prefetch=0)


@pytest.fixture(scope="module")
def manual():
    return _run("competing-consumers", seed=1, **CRASH)


@pytest.fixture(scope="module")
def auto():
    return _run("competing-consumers", seed=1, ack_mode="auto", **CRASH)


@pytest.fixture(scope="module")
def calm():
    return _run("competing-consumers", seed=1)


@pytest.fixture(scope="module")
def readers():
    """The last ordering cell: the same rejects read by three kitchens, one, and one
    with a window of 10."""
    return {name: _run("competing-consumers", seed=1, **REJECTS, **how)
            .ordering(by=("producer", "channel")) for name, how in READERS.items()}


# == the brokers scenario ===========================================================

@claim("about 20 a second (Poisson)", "which takes 20 ms on average to handle it",
       "each kitchen holds at most 10 unacknowledged deliveries (its *prefetch*)",
       "from `fault_at` (20 s) for `fault_duration` (12 s)",
       "or both kitchens ten times slower",
       "(`slow-consumer`: ten times slower for 12 s)")
def test_brokers_defaults(runs):
    assert default("brokers", "publish_rate") == 20
    assert default("brokers", "service_time") == 0.02
    assert default("brokers", "fault_at") == 20
    assert default("brokers", "fault_duration") == 12
    assert default("brokers", "slowdown") == 10
    assert brokers.PREFETCH == 10
    res = runs["none", "broker"]
    for name in brokers.consumer_names(default("brokers", "consumers")):
        assert res.world.nodes[name].prefetch == 10


@claim("The kitchens split the work about evenly")
def test_the_kitchens_split_the_work(runs):
    counts = runs["none", "broker"].deliveries.groupby("consumer").size()
    assert len(counts) == 2
    # round-robin over two kitchens with room: within 5 % of each other
    assert counts.min() / counts.max() > 0.95


@claim("the median command took 21.6 ms, brokerless 18.6 ms: the broker costs 3 ms per "
       "command here, one more network hop (2 ms) and its own routing work (1 ms per "
       "message at `broker_routing_rate` = 1000 a second)",
       "With nothing wrong, brokerless is simply faster",
       "3 ms at the median, one hop fewer")
def test_the_broker_costs_a_hop(runs):
    assert default("brokers", "network_latency") == 0.002
    assert default("brokers", "broker_routing_rate") == 1000
    broker = runs["none", "broker"].message_latency()
    direct = runs["none", "brokerless"].message_latency()
    assert _ms(broker["p50"]) == 21.6
    assert _ms(direct["p50"]) == 18.6
    # the same publishes and handler times on both paths: the medians differ by the
    # extra hop and the routing time, to well under a millisecond
    assert broker["p50"] - direct["p50"] == pytest.approx(0.002 + 1 / 1000, abs=5e-4)
    for key in ("mean", "p50", "p95", "p99"):
        assert direct[key] < broker[key]


@claim("Now both kitchens crash at 20 s and restart 12 s later")
def test_both_kitchens_crash(runs):
    ev = runs["consumer-down", "broker"].events
    crashes = ev.query("event == 'crash'")
    restarts = ev.query("event == 'restart'")
    assert set(crashes["node"]) == set(restarts["node"]) == {"kitchen-1", "kitchen-2"}
    assert set(crashes["time"]) == {20.0}
    assert set(restarts["time"]) == {32.0}


@claim("which grew to about 250 — everything published during the outage",
       "each took its prefetch of 10 and together they drained the queue in about three "
       "seconds")
def test_the_queue_buffers_the_outage(runs):
    res = runs["consumer-down", "broker"]
    qd = res.queue_depth
    peak = int(qd["ready"].max())
    published = res.deliveries["published"]
    during = int(published.between(20.0, 32.0, inclusive="left").sum())
    # the queue holds what was published in the outage (a handful may be in flight)
    assert abs(peak - during) <= 3
    # a Poisson count of 240 in 12 s wanders by about 16: "about 250" within ±10 %
    assert peak == pytest.approx(250, rel=0.1)
    after = qd[qd["time"] > 32.0]
    drained = float(after.loc[after["ready"] == 0, "time"].min()) - 32.0
    # two kitchens at 20 ms each take 100 a second against 20 arriving: ~250/80 = 3.1 s
    assert drained == pytest.approx(3.0, abs=0.5)
    held = res.consumer_inflight
    back = held[held["time"] > 32.0].groupby("consumer")["unacked"].max()
    assert set(back) == {10}


@claim("Every command was handled — 1224 of 1224, none lost",
       "the first ones the whole 12 s",
       "293 of them took longer than the scenario's `late_after` (1 s, the dotted line)")
def test_the_broker_delivers_late(reports):
    r = reports["consumer-down", "broker"]
    assert (r["published"], r["consumed"], r["lost"]) == (1224, 1224, 0)
    assert r["late"] == 293
    assert r["late_after"] == default("brokers", "late_after") == 1.0
    assert r["latency_max"] == pytest.approx(12.0, abs=0.5)


@claim("until it held 100, its `high_water_mark`", "The pipes stopped at 200 between them",
       "the last few seconds of the outage",
       "55 commands lost (the ✕ along the top", "1169 handled",
       "The ones the pipes held were delivered when the kitchens came back, as late as the "
       "broker's",
       "the brokerless design lost 55")
def test_brokerless_loses_beyond_the_high_water_mark(runs, reports):
    assert default("brokers", "high_water_mark") == 100
    r = reports["consumer-down", "brokerless"]
    assert (r["lost"], r["consumed"]) == (55, 1169)
    assert r["lost_by_reason"] == {"hwm": 55}
    pipes = viz.queue_series(runs["consumer-down", "brokerless"])
    assert [float(ready.max()) for _, ready, _ in pipes.values()] == [200.0]
    copies = runs["consumer-down", "brokerless"].deliveries
    dropped = copies.loc[copies["fate"] == "dropped", "published"]
    # the pipes fill after 2 × 100 / 20 = 10 s of the 12 s outage; the pipes reconnect
    # within a second of the restart
    assert dropped.min() > 28.0
    assert dropped.max() < 33.0
    assert r["latency_max"] == pytest.approx(reports["consumer-down", "broker"]
                                             ["latency_max"], abs=0.5)


@claim("ZeroMQ's default mark is 1000, and with it this outage would have cost nothing")
def test_zeromqs_default_mark_holds_the_outage():
    assert HIGH_WATER_MARK == 1000
    for seed in (1, 2, 3):
        res = _run("brokers", seed=seed, fault="consumer-down", transport="brokerless",
                   high_water_mark=1000, trace=False)
        assert res.summary()["messages_lost"] == 0


@claim("at the same moment and for the same 12 s",
       "and 254 commands are lost — everything it published in those 12 s",
       "The broker refused 254 commands while it was down")
def test_a_broker_crash_loses_what_is_published(runs, reports):
    res = runs["broker-down", "broker"]
    crash = res.events.query("event == 'crash'")
    assert list(crash["node"]) == ["broker"]
    assert float(crash["time"].iloc[0]) == 20.0
    assert float(res.events.query("event == 'restart'")["time"].iloc[0]) == 32.0
    r = reports["broker-down", "broker"]
    assert r["lost"] == 254
    assert r["lost_by_reason"] == {"node_down": 254}
    copies = res.deliveries
    lost = copies[copies["fate"] == "dropped"]["published"]
    assert lost.between(20.0, 32.0).all()
    assert len(lost) == int(copies["published"].between(20.0, 32.0).sum())


@claim("With `broker_replicas=3` the queue lives on three broker nodes",
       "a follower takes over after 5 s",
       "Only the commands published before the follower took over are lost — 98 "
       "instead of 254 — and none is late")
def test_a_replicated_broker_loses_only_what_comes_before_the_failover(runs, reports):
    from simcomm.messaging.replicated import FAILOVER_AFTER

    res = _run("brokers", seed=1, fault="broker-down", broker_replicas=3)
    assert sorted(n for n in res.world.nodes if n.startswith("broker")) == [
        "broker-1", "broker-2", "broker-3"]
    assert FAILOVER_AFTER == 5.0
    (failover,) = res.events.query("event == 'failover'").itertuples()
    assert failover.time == 20.0 + FAILOVER_AFTER
    r = brokers.transport_report(res)
    assert r["lost"] == 98 and r["late"] == 0
    assert reports["broker-down", "broker"]["lost"] == 254
    lost = res.deliveries.query("fate == 'dropped'")["published"]
    assert lost.between(20.0, failover.time).all()


@claim("but the queue was nearly empty")
def test_the_queue_was_nearly_empty_at_the_crash(runs):
    qd = runs["broker-down", "broker"].queue_depth
    before = qd[qd["time"] < 20.0].iloc[-1]
    assert before["ready"] + before["unacked"] <= 3


@claim("reconnect only every 5 s (Spring AMQP's recovery interval)",
       "waited up to 3 s for a kitchen")
def test_the_kitchens_reconnect_late(runs, reports):
    res = runs["broker-down", "broker"]
    assert res.world.nodes["kitchen-1"].reconnect_interval == 5.0
    # connections lost at 20 s, tries at 25, 30, 35 s: the restart at 32 s waits for 35 s
    assert reports["broker-down", "broker"]["latency_max"] == pytest.approx(3.0, abs=0.1)


@claim("its run is the undisturbed one, message for message",
       "its `broker-down` row is its `none` row")
def test_brokerless_does_not_notice_a_broker_crash(runs):
    assert (runs["broker-down", "brokerless"].fingerprint()
            == runs["none", "brokerless"].fingerprint())
    cols = ["message_id", "consumer", "published", "latency", "fate"]
    pd.testing.assert_frame_equal(runs["broker-down", "brokerless"].deliveries[cols],
                                  runs["none", "brokerless"].deliveries[cols])


@claim("— 15 against about 20 —")
def test_bottleneck_settings(slow_broker):
    assert slow_broker.params.broker_routing_rate == 15
    assert default("brokers", "publish_rate") == 20


@claim("326 of them at the end of the run", "the kitchens are busy 15 % of the time",
       "The run warns about the overload, and `Result.bottleneck()` names the culprit")
def test_the_broker_is_the_bottleneck(slow_broker):
    assert slow_broker.bottleneck()["resource"] == "broker"
    assert slow_broker.bottleneck()["utilisation"] > 0.99
    assert slow_broker.summary()["messages_queued"] == 326
    assert slow_broker.warnings() and "overloaded" in slow_broker.warnings()[0]
    u = slow_broker.utilisation()
    # 15 routed a second, half to each kitchen at 20 ms: 15 % each
    for name in ("kitchen-1", "kitchen-2"):
        assert round(u[name] * 100) == 15


@claim("the median command took 6.5 s, the 95th percentile 15.4 s, and the wait grows for "
       "as long as the publishing goes on")
def test_the_wait_grows(slow_broker):
    r = brokers.transport_report(slow_broker)
    assert round(r["latency_p50"], 1) == 6.5
    assert round(r["latency_p95"], 1) == 15.4
    consumed = slow_broker.deliveries.query("fate == 'consumed'").sort_values("published")
    halves = np.array_split(consumed["latency"].to_numpy(), 2)
    assert halves[1].mean() > 2 * halves[0].mean()


@claim("Adding kitchens does not help")
def test_more_kitchens_do_not_help(slow_broker):
    more = _run("brokers", seed=1, fault="none", broker_routing_rate=15, consumers=4,
                trace=False)
    assert more.bottleneck()["resource"] == "broker"
    # the same publishes wait for the same broker: the backlog is the same to a few
    assert abs(more.summary()["messages_queued"]
               - slow_broker.summary()["messages_queued"]) <= 5


@claim("`late`, those handled more than 1 s after they were published",
       "when the kitchens failed it handled 95.5 % of the commands and the broker 100 %",
       "79.2 % when it failed",
       "about 250 commands are late either way")
def test_latency_or_availability(reports):
    assert reports["none", "broker"]["late_after"] == 1.0
    assert round(reports["consumer-down", "brokerless"]["availability"] * 100, 1) == 95.5
    assert reports["consumer-down", "broker"]["availability"] == 1.0
    assert round(reports["broker-down", "broker"]["availability"] * 100, 1) == 79.2
    for transport in brokers.TRANSPORTS:
        # the backlog of a 10x slowdown of 12 s at 20 a second: "about 250" within ±10 %
        assert reports["slow-consumer", transport]["late"] == pytest.approx(250, rel=0.1)
        assert reports["slow-consumer", transport]["lost"] == 0


# == the competing-consumers scenario =================================================

@claim("about 30 `CreateTicket` commands a second", "each taking 50 ms per command on average",
       "With the default prefetch of 1")
def test_competing_consumers_defaults():
    assert default("competing-consumers", "publish_rate") == 30
    assert default("competing-consumers", "service_time") == 0.05
    assert default("competing-consumers", "prefetch") == 1
    assert default("competing-consumers", "consumers") == 3


@claim("The slow kitchen handled 11 % of the commands",
       "95 % of the commands were handled within 0.36 s")
def test_fair_dispatch(fair):
    report = competing_consumers.consumer_report(fair).set_index("consumer")
    assert round(report.loc["kitchen-1", "share"] * 100) == 11
    assert report["share"].idxmin() == "kitchen-1"
    assert round(fair.summary()["message_p95_latency"], 2) == 0.36


@claim("receives 10 commands a second and handles 4", "387 at the end",
       "dealt the same 10 a second, are busy only half of the time",
       "Nothing is *ready* in the queue")
def test_round_robin_piles_up(round_robin):
    p = round_robin.params
    assert p.publish_rate / p.consumers == 10
    assert 1 / (p.service_time * p.slow_consumer) == pytest.approx(4)
    held = round_robin.consumer_inflight
    last = held.groupby("consumer")["unacked"].last()
    assert last["kitchen-1"] == 387
    u = round_robin.utilisation()
    for name in ("kitchen-2", "kitchen-3"):
        # ~600 commands of 50 ms each in 60 s: 0.5, to a few per cent
        assert u[name] == pytest.approx(0.5, abs=0.05)
    assert round_robin.queue_depth["ready"].max() == 0


@claim("12 commands a second (`message_capacity`), against 30 published: 391 commands were "
       "still waiting at the end, and the 95th percentile of those handled was 24.6 s",
       "about 41 a second")
def test_round_robin_capacity(fair, round_robin):
    rr = round_robin.summary()
    assert rr["message_capacity"] == pytest.approx(12.0)
    assert rr["messages_queued"] == 391
    assert round(rr["message_p95_latency"], 1) == 24.6
    assert round(fair.summary()["message_capacity"]) == 41


@claim("three times slower, crashes at 20 s and restarts 10 s later",
       "The kitchens hold up to 10 unacknowledged commands each")
def test_the_crash_settings(manual):
    assert default("competing-consumers", "crash_at") == 20
    assert default("competing-consumers", "crash_duration") == 10
    assert manual.params.slow_consumer == 3
    assert manual.params.prefetch == 10
    ev = manual.events
    assert list(ev.query("event == 'crash'")["node"]) == ["kitchen-1"]


@claim("held 9 unacknowledged commands when it crashed",
       "flagged *redelivered*: 9 redeliveries, nothing lost",
       "While it is up, the slow kitchen keeps its window of 10 nearly full",
       "the others hold one or two commands on average")
def test_manual_acks_redeliver(manual):
    s = competing_consumers.ordering_summary(manual)
    assert (s["redeliveries"], s["lost"]) == (9, 0)
    requeued = [row for row in manual.world.trace.mq
                if row[1] == "requeue" and row[5] == "consumer_gone"]
    assert len(requeued) == 9
    assert all(20.0 <= row[0] < 20.1 for row in requeued)
    report = competing_consumers.consumer_report(manual).set_index("consumer")
    assert report.loc[["kitchen-2", "kitchen-3"], "redelivered"].sum() == 9
    # time-weighted mean of what each kitchen held while it was up
    for name, group in manual.consumer_inflight.groupby("consumer"):
        start = group["time"].to_numpy()
        spans = np.diff(np.append(start, manual.until))
        up = (start < 20.0) | (start >= 30.0) if name == "kitchen-1" else start >= 0
        mean = (spans * group["unacked"].to_numpy())[up].sum() / spans[up].sum()
        assert (8.0 <= mean <= 10.0) if name == "kitchen-1" else (1.0 <= mean <= 2.0), name


@claim("With auto-ack, 80 commands were lost", "it held far more than 10",
       "113 commands were still waiting at the end")
def test_auto_ack_loses(auto):
    s = competing_consumers.ordering_summary(auto)
    assert (s["lost"], s["redeliveries"], s["queued"]) == (80, 0, 113)
    report = competing_consumers.consumer_report(auto).set_index("consumer")
    assert report.loc["kitchen-1", "lost"] == 80
    held = auto.consumer_inflight.query("consumer == 'kitchen-1' and time < 20.0")
    assert held["unacked"].max() > 3 * 10


@claim("All 9 redelivered commands are out of order",
       "Each consumer's own stream stays in order otherwise")
def test_redelivery_breaks_order(manual, calm):
    table = manual.ordering()
    assert table["out_of_order"].sum() == 9
    assert (table["out_of_order"] == table["redelivered"]).all()
    assert calm.ordering()["out_of_order"].sum() == 0


@claim("Nothing was redelivered, and still 592 of the 1847 commands were handled after a "
       "command published later")
def test_competing_consumers_reorder_without_redelivery(calm):
    table = calm.ordering(by=("producer", "channel"))
    row = table.iloc[0]
    assert (row["out_of_order"], row["messages"], row["redelivered"]) == (592, 1847, 0)


@claim("at 10 a second so that one kitchen can keep up",
       "One kitchen with a prefetch of 1 handled every command in order",
       "three kitchens put 110 out of order",
       "one kitchen with a window of 10 still put 14 out of order")
def test_one_consumer_keeps_the_order(readers):
    one = base_params(consumers=1, **REJECTS)
    assert competing_consumers.capacity(one) > 10
    got = {name: int(t["out_of_order"].sum()) for name, t in readers.items()}
    assert got == {"three kitchens": 110, "one kitchen": 0, "one kitchen, prefetch 10": 14}
    assert readers["one kitchen"]["redelivered"].sum() > 0


def base_params(**settings):
    from simcomm.scenarios import base

    return base.make_params(base.get("competing-consumers"), settings)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_one_consumer_keeps_the_order_on_other_seeds(seed):
    """The lesson, not the run: one consumer with prefetch 1 never reorders, whatever
    the rejects and crash; three, or a window, do."""
    one = _run("competing-consumers", seed=seed, consumers=1, crash_consumer=True, **REJECTS)
    s = competing_consumers.ordering_summary(one)
    assert s["out_of_order"] == 0 and s["lost"] == 0 and s["redeliveries"] > 0
    three = _run("competing-consumers", seed=seed, **REJECTS)
    assert three.ordering(by=("producer", "channel"))["out_of_order"].sum() > 0
    window = _run("competing-consumers", seed=seed, consumers=1, prefetch=10, **REJECTS)
    assert window.ordering()["out_of_order"].sum() > 0


def test_the_overloaded_runs_say_so(round_robin, auto, manual, fair):
    """The prose says which runs warn: round-robin and auto-ack, not the others."""
    assert round_robin.warnings() and auto.warnings()
    assert not manual.warnings() and not fair.warnings()
    assert not math.isnan(round_robin.summary()["message_p95_latency"])
