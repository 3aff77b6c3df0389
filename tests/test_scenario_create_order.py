"""The ``create-order`` scenario (*Microservices Patterns* §3.4): createOrder called
synchronously vs. done by messages, and its availability next to the product formula
(scenarios/create_order.py).

How far a measured availability may fall from the formula is a matter of run
length.  Outages are random: over a run with ``K`` outages of a node, its
measured unavailability ``q`` is a sum of ``K`` exponential repair times over
the run, whose relative standard error is ``sqrt(2 / K)``; which requests fall
into the outages adds the binomial ``sqrt(m(1 - m) / N)``.
``availability_report`` computes that standard error from the outages the run
had, and the tests allow four of them.  The long runs below have about 100
outages per node (20 000 s, one every ~200 s): the sync design's standard error
is then about 0.002, a fifth of the 1 % the two designs differ by.
"""

from __future__ import annotations

import json
import math

import pytest

import simcomm
from simcomm.cli import main
from simcomm.errors import ParamError
from simcomm.scenarios import get, make_params
from simcomm.scenarios.create_order import (
    BROKER,
    CONSUMER,
    ORDER,
    ORDER_REPLIES,
    RESTAURANT,
    USERS,
    availability_report,
    capacity,
    down_intervals,
    formula,
)

SC = get("create-order")
P = SC.defaults()
#: the long runs: ~100 outages of each node (MTBF = MTTR * A / (1 - A) = 199 s)
LONG = {"until": 20_000.0, "request_rate": 0.5, "trace": False}
TOLERANCE = 4.0  # standard errors


def run(seed: int = 1, **params):
    return simcomm.run("create-order", seed=seed, warn=False, progress=False, **params)


@pytest.fixture(scope="module")
def sync_long():
    return run(design="sync", **LONG)


@pytest.fixture(scope="module")
def async_long():
    return run(design="async", **LONG)


@pytest.fixture(scope="module")
def async_default():
    return run(design="async")


# -- what it is ---------------------------------------------------------------------------

def test_registered_with_its_views_and_a_model_of_its_load():
    assert "create-order" in simcomm.scenarios()
    assert SC.views == ("availability_over_time", "outcomes_over_time", "message_flow")
    assert P.design == "sync" and P.broker_availability == 1.0
    assert P.order_availability == P.consumer_availability == P.restaurant_availability \
        == 0.995
    for design in ("sync", "async"):
        est = simcomm.estimate("create-order", design=design)
        assert est.source == "model"
        assert est.requests == pytest.approx(P.request_rate * SC.until)
    # sync holds an order worker for two calls, async for two confirms
    hold = P.service_time + 2 * (2 * P.network_latency + P.service_time)
    assert capacity(P) == pytest.approx(P.service_workers / hold)
    fast = make_params(SC, {"design": "async"})
    assert capacity(fast) == pytest.approx(
        P.service_workers / (P.service_time + 2 * P.network_latency))
    assert capacity(fast) > capacity(P)


def test_the_formula_is_the_product_of_what_each_design_needs():
    assert formula(P) == pytest.approx(0.995 ** 3)
    assert formula(P) == pytest.approx(0.985, abs=5e-4)  # the book's 98.5 %
    assert formula(make_params(SC, {"design": "async"})) == pytest.approx(0.995)
    p = make_params(SC, {"design": "async", "broker_availability": 0.99,
                         "consumer_availability": 0.9})
    assert formula(p) == pytest.approx(0.995 * 0.99)
    p = make_params(SC, {"broker_availability": 0.9})  # sync has no broker
    assert formula(p) == pytest.approx(0.995 ** 3)


def test_the_topology_of_each_design():
    res = run(design="sync", until=5.0)
    assert set(res.world.nodes) == {USERS, ORDER, CONSUMER, RESTAURANT}
    res = run(design="async", until=5.0)
    assert set(res.world.nodes) == {USERS, ORDER, ORDER_REPLIES, CONSUMER, RESTAURANT,
                                    BROKER}
    assert set(res.world.nodes[BROKER].queues) == {
        "consumer-service.commands", "restaurant-service.commands", "order-service.replies"}


def test_bad_values_are_refused_before_anything_runs():
    for values, field in (({"design": "rpc"}, "design"),
                          ({"broker_availability": 1.5}, "broker_availability"),
                          ({"order_availability": 0.5}, "order_availability"),
                          ({"mean_time_to_repair": 0.0}, "mean_time_to_repair"),
                          ({"service_workers": 0}, "service_workers")):
        with pytest.raises(ParamError) as info:
            make_params(SC, values)
        assert info.value.field == field
    with pytest.raises(ParamError) as info:
        availability_report(simcomm.run("mmc", until=5.0, warn=False))
    assert info.value.field == "res"


# -- each design does what the book says ---------------------------------------------------

def test_sync_answers_only_after_both_services_and_async_at_once():
    sync = run(design="sync", until=100.0, order_availability=1.0, consumer_availability=1.0,
               restaurant_availability=1.0)
    asyn = run(design="async", until=100.0, order_availability=1.0,
               consumer_availability=1.0, restaurant_availability=1.0)
    for res in (sync, asyn):
        assert (res.requests.outcome == "ok").all()
    # sync: one unit of work and two calls (each two hops and a unit of work);
    # async: one unit of work and the broker's confirms (two hops)
    hop = 2 * P.network_latency
    s, a = sync.requests.latency.mean(), asyn.requests.latency.mean()
    assert s == pytest.approx(3 * P.service_time + 3 * hop, rel=0.25)
    assert a == pytest.approx(P.service_time + 2 * hop, rel=0.25)
    # every sync call reached both services; every async order was approved by
    # replies, after its user had been answered
    tr = sync.trace
    for callee in (CONSUMER, RESTAURANT):
        assert (tr[(tr.event == "send") & (tr.dest == callee)].trace_id.nunique()
                == len(sync.requests))
    r = availability_report(asyn)
    assert r["completed"] == len(asyn.requests) - r["incomplete"]
    assert r["incomplete"] <= 1  # one order may still be under way at the end
    assert r["completion_p50"] > a
    assert r["duplicate_replies"] == r["late_replies"] == 0
    # commands are commands, replies documents, each with the command as correlation
    d = asyn.deliveries
    assert set(d.channel) == {"consumer-service.commands", "restaurant-service.commands",
                              "order-service.replies"}
    assert set(d.loc[d.channel == "order-service.replies", "kind"]) == {"document"}
    assert set(d.loc[d.channel != "order-service.replies", "kind"]) == {"command"}


def test_a_down_consumer_service_fails_sync_orders_and_only_delays_async_ones():
    """Only the consumer service fails (every ~20 s for ~1 s): sync requests made during
    its outages fail, async ones are all accepted and approved once it is back."""
    only = {"order_availability": 1.0, "restaurant_availability": 1.0,
            "consumer_availability": 0.95, "until": 600.0}
    sync, asyn = run(design="sync", **only), run(design="async", **only)
    downs = down_intervals(sync, CONSUMER)
    assert downs == down_intervals(asyn, CONSUMER)  # the same outages: one stream
    assert len(downs) > 10

    def during(res):
        # made while it was down, and not so near the end of the outage that the
        # call (after the order service's unit of work) finds it back up
        rq = res.requests
        inside = [any(a <= t < b - 0.1 for a, b in downs) for t in rq.start]
        return rq[inside]

    assert (during(sync).outcome == "error").all() and len(during(sync)) > 20
    assert (asyn.requests.outcome == "ok").all()
    db = asyn.world.nodes[ORDER].orders
    for rid, start in zip(during(asyn).request_id, during(asyn).start, strict=True):
        back = next(b for a, b in downs if a <= start < b)
        assert db.approved[rid] >= back  # approved only after the service restarted
    r = availability_report(asyn)
    assert r["measured"] == 1.0 and r["completion_p99"] > 0.3
    assert asyn.summary()["messages_lost"] == 0


@pytest.mark.parametrize("design", ["sync", "async"])
def test_measured_availability_matches_the_product_formula(design, sync_long, async_long):
    res = sync_long if design == "sync" else async_long
    r = availability_report(res)
    assert r["run_length"] == LONG["until"] and r["requests"] > 9000
    assert all(k >= 60 for node, k in r["outages"].items() if node != BROKER)
    assert abs(r["measured"] - r["formula"]) < TOLERANCE * r["standard_error"]
    assert r["standard_error"] < (0.0025 if design == "sync" else 0.0015)
    # what the run's own outages predict, up to which requests fell in them (and
    # the few caught mid-call by a crash)
    assert abs(r["measured"] - r["all_up_share"]) < TOLERANCE * r["sampling_error"]
    assert abs(r["formula_observed"] - r["measured"]) < r["standard_error"]


def test_async_is_more_available_than_sync_by_the_services_it_no_longer_needs(
        sync_long, async_long):
    s, a = availability_report(sync_long), availability_report(async_long)
    # the order service's outages are the same in both runs (its own stream):
    # the difference is the consumer and restaurant services' downtime
    assert s["outages"][ORDER] == a["outages"][ORDER]
    gap = a["measured"] - s["measured"]
    expected = a["formula"] - s["formula"]  # 0.995 - 0.995**3 ≈ 0.0099
    # (an overestimate: it counts the order service's shared outages twice)
    se = math.hypot(s["standard_error"], a["standard_error"])
    assert gap > 3 * se > 0
    assert abs(gap - expected) < TOLERANCE * se
    # and async orders are still approved: all but those under way at the end
    assert a["completed_share"] > 0.999
    db = async_long.world.nodes[ORDER].orders
    late = [o for o in set(db.accepted) - set(db.approved)]
    assert all(db.accepted[o] > LONG["until"] - 30 for o in late)


def test_with_a_failing_broker_async_needs_the_broker_and_loses_no_order():
    res = run(design="async", broker_availability=0.99, **LONG)
    r = availability_report(res)
    assert r["formula"] == pytest.approx(0.995 * 0.99)
    assert r["outages"][BROKER] > 100
    assert abs(r["measured"] - r["formula"]) < TOLERANCE * r["standard_error"]
    assert abs(r["measured"] - r["all_up_share"]) < TOLERANCE * r["sampling_error"]
    # persistent commands and replies on durable queues survive the broker's crashes
    db = res.world.nodes[ORDER].orders
    late = [o for o in set(db.accepted) - set(db.approved)]
    assert all(db.accepted[o] > LONG["until"] - 60 for o in late)
    assert res.world.nodes[BROKER].stats["dropped"] == {}
    # consumers reconnect 5 s after a broker crash: some approvals wait that long
    assert r["completion_p99"] > 1.0


# -- the run itself -----------------------------------------------------------------------

def test_deterministic_and_the_same_without_the_trace(async_default):
    again = run(design="async")
    assert again.fingerprint() == async_default.fingerprint()
    bare = run(design="async", trace=False)
    # (without the trace no message latency is known: message_p95_latency is NaN)
    plain = {k: v for k, v in bare.summary().items() if not (isinstance(v, float)
                                                             and math.isnan(v))}
    traced = async_default.summary()
    assert plain == pytest.approx({k: traced[k] for k in plain})
    assert availability_report(bare) == availability_report(async_default)
    assert async_default.ledger()["balanced"]
    led = async_default.message_ledger()
    assert led["balanced"]


def test_the_cli_runs_it_with_json(capsys):
    assert main(["run", "create-order", "--set", "design=async", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # two commands and two replies per accepted order (the last ones may be under way)
    assert out["requests"] > 500 and out["messages_published"] > 3.9 * out["answered"]
    assert out["messages_lost"] == 0
