"""brokers: a broker or brokerless under the same faults -- what each knob must show, measured.

Every run is the default 60 s (about 1 200 messages at 20 msg/s, two
consumers 20 % busy) unless a test says otherwise; the fault strikes from
20 s for 12 s, so about 240 messages are published while it lasts.  The
tolerances come from seeds 1-8 of the same runs (the spread is quoted beside
each assertion) with room to spare.
"""

from __future__ import annotations

import json
import math

import pytest

import simcomm
from simcomm.cli import main
from simcomm.errors import ParamError
from simcomm.scenarios import get, make_params
from simcomm.scenarios.brokers import (
    PREFETCH,
    TABLE_COLUMNS,
    capacity,
    load,
    transport_report,
    transport_table,
)

NAME = "brokers"


def run(seed: int = 1, **params):
    return simcomm.run(NAME, seed=seed, warn=False, **params)


def report(**params):
    res = run(**params)
    assert res.message_ledger()["balanced"]
    return res, transport_report(res)


@pytest.fixture(scope="module")
def calm():
    """Both designs with nothing wrong."""
    return {t: report(transport=t, fault="none") for t in ("broker", "brokerless")}


@pytest.fixture(scope="module")
def consumers_down():
    return {t: report(transport=t, fault="consumer-down") for t in ("broker", "brokerless")}


@pytest.fixture(scope="module")
def broker_down():
    return {t: report(transport=t, fault="broker-down") for t in ("broker", "brokerless")}


# -- the scenario as a scenario ---------------------------------------------------------

def test_registered_with_the_views_of_its_lessons():
    sc = get(NAME)
    assert sc.views == ("message_latency", "queue_depth", "message_flow")
    assert sc.capacity is capacity and sc.load is load
    assert NAME in simcomm.scenarios()


@pytest.mark.parametrize("transport", ["broker", "brokerless"])
def test_the_cli_runs_it_with_json(capsys, transport):
    assert main(["run", NAME, "--until", "10", "--set", f"transport={transport}",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages_published"] > 100
    assert summary["messages_lost"] == 0
    assert summary["messages_published"] == (summary["messages_consumed"]
                                             + summary["messages_queued"])


def test_with_nothing_wrong_both_deliver_everything_on_time(calm):
    for _, r in calm.values():
        assert r["lost"] == 0 and r["late"] == 0 and r["duplicates"] == 0
        assert r["pending"] <= 3  # on their way at the end
        assert r["availability"] > 0.997
        assert r["published"] == r["consumed"] + r["lost"] + r["pending"]


def test_the_same_seed_gives_the_same_run(calm):
    res, _ = calm["broker"]
    assert run(transport="broker", fault="none").fingerprint() == res.fingerprint()


# -- brokerless is one hop faster ---------------------------------------------------------

def test_brokerless_has_the_lower_latency(calm):
    """Same consumers, same service times: the broker adds a hop (2 ms) and its
    routing (1 ms at 1 000 msg/s).  Seeds 1-8: median 18.8-21.6 ms through the
    broker, 15.8-18.6 ms brokerless, lower in every seed."""
    broker, brokerless = calm["broker"][1], calm["brokerless"][1]
    assert brokerless["latency_p50"] < broker["latency_p50"]
    assert brokerless["latency_p95"] < broker["latency_p95"]


def test_the_broker_costs_one_more_hop():
    """With a slow network (20 ms a hop) the hop dominates: the median latency
    through the broker is about 20 ms longer (the routing: 1 ms more).  Seeds
    1-8: 20.9-21.0 ms longer."""
    b = transport_report(run(transport="broker", fault="none", network_latency=0.02))
    bl = transport_report(run(transport="brokerless", fault="none", network_latency=0.02))
    assert b["latency_p50"] - bl["latency_p50"] == pytest.approx(0.021, abs=0.004)


# -- the consumers down: the broker buffers, brokerless drops beyond its high-water mark -------

def test_with_the_consumers_down_the_broker_buffers_and_delivers_late(consumers_down):
    """The ~240 messages published while both consumers are down wait in the
    queue and are consumed after the restart: late, none lost.  Seeds 1-8:
    269-293 late (those published in the outage and some queued behind them),
    the queue 225-254 deep at most, the last of them 11.9-12.1 s late."""
    res, r = consumers_down["broker"]
    assert r["lost"] == 0
    assert r["availability"] == pytest.approx(1.0, abs=0.003)
    assert r["late"] > 150  # ~12 s x 20 msg/s, minus what came in the last second
    assert r["latency_max"] == pytest.approx(12.0, abs=1.0)  # waited out the outage
    depth = res.queue_depth
    assert depth["ready"].max() > 150  # the queue held them


def test_with_the_consumers_down_brokerless_loses_beyond_the_high_water_mark(consumers_down):
    """Brokerless, the producer's pipe to each of the two consumers holds 100
    messages while they are down; of the ~240 published meanwhile, the rest is
    dropped.  Seeds 1-8: 24-55 lost (all ``hwm``), 220-242 late (the pipes'
    200, and those that queued behind them), availability 0.955-0.979 -- where
    the broker lost none and delivered 269-293 late."""
    _, r = consumers_down["brokerless"]
    _, broker = consumers_down["broker"]
    assert set(r["lost_by_reason"]) <= {"hwm", "consumer_crash"}  # no acks: what a
    assert r["lost_by_reason"]["hwm"] > 0                          # consumer held dies
    assert 0 < r["lost"] < 120
    assert r["late"] < broker["late"]
    assert r["availability"] < broker["availability"]
    assert r["published"] == r["consumed"] + r["lost"] + r["pending"]


def test_a_larger_high_water_mark_buffers_the_whole_outage():
    """1 000 per consumer (ZeroMQ's default) holds the ~240 of a 12 s outage."""
    r = transport_report(run(transport="brokerless", high_water_mark=1000))
    assert r["lost_by_reason"].get("hwm", 0) == 0


# -- the broker down: the brokered design loses and delays, brokerless does not care --------

def test_with_the_broker_down_the_brokered_design_loses_and_delays(broker_down):
    """Publishes to a crashed broker are refused (the producer does not use
    confirms to send them again), and after the restart the consumers take up
    to their 5 s reconnect interval to come back: those messages are late.
    Seeds 1-8: 222-254 lost (node_down), 39-71 late, availability 0.79-0.82."""
    _, r = broker_down["broker"]
    assert r["lost"] > 150  # ~12 s x 20 msg/s
    assert set(r["lost_by_reason"]) == {"node_down"}
    assert r["late"] > 0
    assert r["availability"] < 0.85


def test_a_replicated_broker_loses_only_the_failover_window(broker_down):
    """The single point of failure removed: with three broker nodes a follower takes
    over the queues FAILOVER_AFTER (5 s) after the leader crashes, so of the 12 s
    outage only the publishes of those 5 s are refused -- about 5 x 20 = 100 (a
    Poisson count: +-3 standard deviations is +-30) -- and nothing is late."""
    from simcomm.messaging.replicated import FAILOVER_AFTER

    p = make_params(get(NAME), {"fault": "broker-down", "broker_replicas": 3})
    res, r = report(fault="broker-down", broker_replicas=3)
    (failover,) = res.events.query("event == 'failover'").itertuples()
    assert failover.time == pytest.approx(p.fault_at + FAILOVER_AFTER)
    assert failover.node == "broker-2"
    expected = p.publish_rate * FAILOVER_AFTER
    assert abs(r["lost"] - expected) < 3 * math.sqrt(expected)
    assert set(r["lost_by_reason"]) == {"node_down"}
    assert r["lost"] < broker_down["broker"][1]["lost"] / 2
    assert r["late"] == 0


def test_with_the_broker_down_brokerless_does_not_care(broker_down, calm):
    """There is no broker to fail: the run is the very run without a fault."""
    res, r = broker_down["brokerless"]
    assert res.fingerprint() == calm["brokerless"][0].fingerprint()
    assert r["lost"] == 0 and r["late"] == 0


def test_persistent_messages_survive_a_broker_crash_and_transient_ones_do_not():
    """One consumer at 0.1 s a message cannot keep up with 20 msg/s, so the
    queue holds a backlog when the broker crashes: persistent messages on the
    durable queue survive it, transient ones are lost (broker_crash: seeds
    1-8, 174-244 of them)."""
    slow = dict(fault="broker-down", consumers=1, service_time=0.1)
    kept = transport_report(run(**slow, persistent=True))
    gone = transport_report(run(**slow, persistent=False))
    assert "broker_crash" not in kept["lost_by_reason"]
    assert gone["lost_by_reason"]["broker_crash"] > 50
    assert gone["lost_by_reason"]["node_down"] == kept["lost_by_reason"]["node_down"]


# -- the broker as a bottleneck ---------------------------------------------------------------

def test_a_broker_routing_slower_than_the_publish_rate_is_the_bottleneck():
    """Routing 15 of the 20 msg/s published, the broker is 100 % busy and the
    publishes pile up in front of it (seeds 1-8: 293-367 of ~1 220 still
    waiting at the end); brokerless, the same setting means nothing."""
    res = run(transport="broker", fault="none", broker_routing_rate=15)
    neck = res.bottleneck()
    assert neck["resource"] == "broker" and neck["utilisation"] > 0.99
    s = res.summary()
    assert s["stable"] is False and s["offered_load"] == pytest.approx(20 / 15)
    r = transport_report(res)
    # it routes 15 of the 20 msg/s: a quarter piles up in front of it
    assert r["pending"] / r["published"] == pytest.approx(0.25, abs=0.06)
    assert r["late"] > r["on_time"]
    same = run(transport="brokerless", fault="none", broker_routing_rate=15)
    assert same.bottleneck()["resource"] != "broker" and same.summary()["stable"]


def test_over_a_slow_network_the_prefetch_window_caps_the_brokered_design():
    """500 ms a hop: each consumer's window of 10 comes back only after a
    1 s round trip, so two carry 2 x 10 / 1.02 = 19.6 msg/s of the 30 offered
    (seeds 1-2: 19.3 over 120 s, the first second without acks yet).
    Brokerless there is no ack to wait for: it carries all 30."""
    slow = dict(fault="none", publish_rate=30, network_latency=0.5, seed=1)
    res = simcomm.run(NAME, until=120, warn=False, **slow)
    rate = transport_report(res)["consumed"] / res.until
    assert rate == pytest.approx(capacity(res.params), rel=0.03)
    free = simcomm.run(NAME, until=120, warn=False, transport="brokerless", **slow)
    r = transport_report(free)
    assert r["consumed"] / r["published"] > 0.99


# -- a slow consumer ---------------------------------------------------------------------------

def test_with_slow_consumers_the_broker_queues_the_backlog():
    """10x slower, two consumers carry 10 msg/s of the 20: ~120 messages pile up
    in the queue over 12 s and are consumed late, none lost.  Seeds 1-8:
    223-250 late, the queue 95-131 deep at most."""
    res, r = report(transport="broker", fault="slow-consumer")
    assert r["lost"] == 0 and r["late"] > 50
    assert res.queue_depth["ready"].max() > 50


def test_with_slow_consumers_a_small_high_water_mark_drops_brokerless():
    """With 20 messages per pipe and receive buffer, the slow consumers' backlog
    overflows brokerless (seeds 1-8: 73-109 dropped, availability 0.91-0.94),
    while the broker's queue holds it all (availability >= 0.998)."""
    r = transport_report(run(transport="brokerless", fault="slow-consumer",
                             high_water_mark=20))
    assert r["lost_by_reason"].get("hwm", 0) > 30
    b = transport_report(run(transport="broker", fault="slow-consumer", high_water_mark=20))
    assert b["lost"] == 0 and b["availability"] > r["availability"]


# -- the model of the run ---------------------------------------------------------------------

def test_capacity_and_load_follow_the_knobs():
    sc = get(NAME)
    p = make_params(sc)
    assert capacity(p) == pytest.approx(2 / 0.02)
    assert capacity(make_params(sc, {"broker_routing_rate": 15.0})) == 15.0
    assert capacity(make_params(sc, {"broker_routing_rate": 15.0,
                                     "transport": "brokerless"})) == pytest.approx(100)
    slow_net = make_params(sc, {"network_latency": 0.5})
    assert capacity(slow_net) == pytest.approx(2 * PREFETCH / 1.02)
    assert capacity(make_params(sc, {"network_latency": 0.5, "transport": "brokerless"})
                    ) == pytest.approx(100)
    assert load(p).requests_per_s == p.publish_rate
    assert load(p).messages_per_request == 3  # publish, deliver, ack
    assert load(make_params(sc, {"transport": "brokerless"})).messages_per_request == 1
    assert load(make_params(sc, {"fault": "none"})).events_per_s == 0
    assert load(make_params(sc, {"fault": "broker-down", "transport": "brokerless"})
                ).events_per_s == 0
    assert PREFETCH >= 2  # an ack's round trip never idles a consumer


def test_the_report_defaults_to_the_runs_late_after(calm):
    res, r = calm["broker"]
    assert r["late_after"] == res.params.late_after == 1.0
    strict = transport_report(res, late_after=0.02)
    assert strict["late"] > 0 and strict["late"] + strict["on_time"] == r["consumed"]


def test_the_report_counts_the_same_without_a_trace(consumers_down):
    """The counts come from the summary and the ledger, which hold untraced;
    the times of single messages do not exist then: NaN, not zero."""
    for transport in ("broker", "brokerless"):
        traced = consumers_down[transport][1]
        bare = transport_report(run(transport=transport, fault="consumer-down", trace=False))
        for key in ("published", "consumed", "lost", "pending", "availability",
                    "lost_by_reason"):
            assert bare[key] == traced[key], key
        for key in ("late", "on_time", "latency_p50", "latency_p95", "duplicates"):
            assert math.isnan(bare[key]), key


def test_the_table_sets_runs_side_by_side(consumers_down, broker_down):
    runs = [consumers_down["broker"][0], consumers_down["brokerless"][0],
            broker_down["broker"][0], broker_down["brokerless"][0]]
    table = transport_table(runs)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert list(table["transport"]) == ["broker", "brokerless"] * 2
    assert list(table["fault"]) == ["consumer-down"] * 2 + ["broker-down"] * 2
    assert table.iloc[2]["lost"] == broker_down["broker"][1]["lost"]
    assert transport_table(runs[:1], late_after=100.0).iloc[0]["late"] == 0


def test_the_report_refuses_a_bad_late_after(calm):
    for bad in (0, -1.0, math.inf, math.nan, "1", True):
        with pytest.raises(ParamError) as info:
            transport_report(calm["broker"][0], late_after=bad)
        assert info.value.field == "late_after"


@pytest.mark.parametrize(("field", "value"), [
    ("transport", "carrier-pigeon"), ("transport", 1), ("fault", "meteor"),
    ("fault_at", -1.0), ("fault_duration", 0.0), ("publish_rate", 0.0),
    ("consumers", 0), ("consumers", 1.5), ("consumers", True), ("service_time", 0.0),
    ("network_latency", -0.001), ("broker_routing_rate", 0.5), ("persistent", "yes"),
    ("high_water_mark", -1), ("high_water_mark", 10.5), ("slowdown", 0.5),
    ("late_after", 0.0), ("late_after", math.inf),
])
def test_bad_values_are_refused_before_time_zero(field, value):
    with pytest.raises(ParamError) as info:
        simcomm.run(NAME, until=1.0, **{field: value})
    assert info.value.field == field
