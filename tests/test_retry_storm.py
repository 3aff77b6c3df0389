"""The ``retry-storm`` scenario: a metastable failure that outlives its trigger, and
what ends it (scenarios/retry_storm.py)."""

from __future__ import annotations

import math
from unittest import mock

import pytest

import simcomm
from simcomm.engine import World
from simcomm.errors import ParamError
from simcomm.scenarios import get, make_params
from simcomm.scenarios.retry_storm import GATEWAY, SERVICE, USERS, capacity, storm_report
from simcomm.viz import VIEWS

SC = get("retry-storm")
P = SC.defaults()
TRIGGER_END = P.slowdown_at + P.slowdown_duration


def run(seed: int = 1, **params):
    return simcomm.run("retry-storm", seed=seed, warn=False, **params)


@pytest.fixture(scope="module")
def storm():
    return run()


# -- what it is ---------------------------------------------------------------------------

def test_registered_with_existing_views_and_a_model_of_its_load():
    assert "retry-storm" in simcomm.scenarios()
    assert set(SC.views) <= set(VIEWS)
    assert SC.capacity is not None and SC.load is not None
    assert capacity(P) == P.service_workers / P.service_time
    est = simcomm.estimate("retry-storm")
    assert est.source == "model"
    # a closed loop sends at most users / think_time requests per second
    assert est.requests == pytest.approx(P.users / P.think_time * SC.until)


def test_the_default_run_is_the_eager_client():
    assert P.max_attempts > 1 and P.retry_backoff == "none"
    assert not P.retry_budget and P.breaker == "none"
    assert P.slowdown_factor > 1 and SC.until > TRIGGER_END


def test_the_topology(storm):
    assert set(storm.world.nodes) == {USERS, GATEWAY, SERVICE}
    assert storm.world.nodes[GATEWAY].workers == P.users  # never the bottleneck


# -- the storm ----------------------------------------------------------------------------

def test_without_backoff_the_overload_outlives_the_trigger(storm):
    rep = storm_report(storm)
    cap = capacity(P)
    # before: comfortably loaded, almost every request answered
    assert rep["offered_before"] < 0.7 * cap
    assert rep["goodput_before"] > 0.9 * rep["offered_before"]
    # after the slowdown has ended the service is as fast as before, yet the
    # load offered to it -- retries included -- stays above its capacity for
    # the rest of the run, and almost nothing gets through
    assert rep["offered_after"] > 1.15 * cap
    assert rep["offered_last"] > 1.15 * cap
    assert rep["goodput_after"] < 0.1 * rep["goodput_before"]
    assert rep["goodput_last"] < 0.05 * rep["goodput_before"]
    assert not rep["recovered"]
    # for the rest of the run: every 5 s from the end of the trigger on
    tr = storm.trace
    sent = tr[(tr.event == "send") & (tr.dest == SERVICE)].time
    for start in range(int(TRIGGER_END), int(SC.until), 5):
        in_bin = ((sent >= start) & (sent < start + 5)).sum() / 5
        assert in_bin > cap, start
    ev = storm.events
    slow = ev[(ev.node == SERVICE) & (ev.event == "slowdown")]
    assert slow.time.tolist() == [P.slowdown_at, TRIGGER_END]
    assert slow.detail.tolist() == [f"x{P.slowdown_factor:g}", "x1"]


def test_the_sustaining_effect_is_work_for_nobody(storm):
    """After the trigger nearly every attempt times out, yet the service still
    serves it: its reply arrives at a gateway that stopped waiting (an orphan),
    and each request costs up to max_attempts attempts."""
    att = storm.attempts
    late = att[(att.callee == SERVICE) & (att.time > TRIGGER_END + 10.0)]
    assert (late.outcome == "timeout").mean() > 0.95
    assert late.attempt.max() == P.max_attempts
    ev = storm.events
    orphans = ev[(ev.event == "orphan_reply") & (ev.node == GATEWAY)
                 & (ev.time > TRIGGER_END + 10.0)]
    served = storm.trace
    served = served[(served.event == "send") & (served.source == SERVICE)
                    & (served.time > TRIGGER_END + 10.0)]
    assert len(orphans) > 0.9 * len(served)
    assert storm.amplification()["order"] > 2.0
    # the order service is saturated from the trigger on
    assert storm.utilisation(start=TRIGGER_END)[SERVICE] > 0.97


def test_without_a_trigger_the_same_system_stays_stable():
    for seed in (1, 2):
        rep = storm_report(run(seed=seed, slowdown_factor=1.0, until=200.0), settle=60.0)
        assert rep["recovered"]
        assert rep["offered_last"] < 0.7 * capacity(P)


def test_without_retries_the_trigger_passes():
    rep = storm_report(run(max_attempts=1))
    assert rep["recovered"]
    assert rep["goodput_after"] > 0.8 * rep["goodput_before"]


@pytest.mark.parametrize("params", [
    {"retry_backoff": "exponential"},
    {"retry_backoff": "full_jitter"},
    {"retry_backoff": "equal_jitter"},
    {"retry_backoff": "decorrelated_jitter"},
    {"retry_budget": True},
    {"breaker": "resilience4j"},
    {"breaker": "consecutive"},
    {"breaker": "hystrix"},
], ids=lambda p: "-".join(f"{v}" for v in p.values()))
def test_backoff_with_jitter_a_retry_budget_or_a_breaker_ends_the_storm(params):
    for seed in (1, 2):
        rep = storm_report(run(seed=seed, **params))
        assert rep["recovered"], (seed, rep)
        assert rep["offered_last"] < 0.8 * capacity(P)
        assert rep["goodput_during"] < 0.5 * rep["goodput_before"]  # the trigger did hurt


def test_a_constant_wait_lowers_the_load_too_little():
    for seed in (1, 2):
        rep = storm_report(run(seed=seed, retry_backoff="constant"))
        assert not rep["recovered"]
        assert rep["goodput_after"] < 0.5 * rep["goodput_before"]


def test_a_retry_budget_throttles_the_retries():
    res = run(retry_budget=True)
    att = res.attempts
    during = att[(att.time >= P.slowdown_at) & (att.time < TRIGGER_END + 5.0)]
    eager = run().attempts
    eager_during = eager[(eager.time >= P.slowdown_at) & (eager.time < TRIGGER_END + 5.0)]
    assert (during.attempt > 1).sum() < 0.5 * (eager_during.attempt > 1).sum()


def test_a_breaker_short_circuits_while_the_queue_drains():
    res = run(breaker="resilience4j")
    br = res.breaker_events
    assert (br.to_state == "open").any()
    assert br.to_state.iloc[-1] == "closed"
    assert float(br.time.min()) > P.slowdown_at
    assert (res.requests.outcome == "short_circuited").sum() > 0


def test_storm_report_windows_and_settle(storm):
    rep = storm_report(storm, settle=10.0)
    rq = storm.requests
    ok = rq[rq.outcome == "ok"]
    assert rep["goodput_before"] == pytest.approx((ok.end < P.slowdown_at).sum() / P.slowdown_at)
    assert rep["goodput_last"] == pytest.approx((ok.end >= SC.until - 10.0).sum() / 10.0)
    assert rep["capacity"] == capacity(P)
    assert set(rep) == {f"{k}_{w}" for k in ("goodput", "offered")
                        for w in ("before", "during", "after", "last")} | {"capacity",
                                                                          "recovered"}


def test_storm_report_wants_a_traced_retry_storm_run():
    for res in (run(until=5.0, trace=False), simcomm.run("mmc", until=5.0)):
        with pytest.raises(ParamError) as info:
            storm_report(res)
        assert info.value.field == "res"


# -- the books balance, the runs repeat ---------------------------------------------------

@pytest.mark.parametrize("params", [{}, {"retry_backoff": "decorrelated_jitter"},
                                    {"retry_budget": True, "breaker": "hystrix"}])
def test_ledger_balances_and_runs_repeat(params):
    a, b = run(seed=4, until=50.0, **params), run(seed=4, until=50.0, **params)
    assert a.ledger()["balanced"]
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != run(seed=5, until=50.0, **params).fingerprint()


# -- every knob is checked ----------------------------------------------------------------

def _wrong_values(spec):
    if spec.choices:
        return ["nosuch", 3, None]
    if spec.type is bool:
        return [1, "yes", None]
    lo, hi = spec.range
    step = 1 if spec.type is int else 1e-6 * max(1.0, abs(hi))
    wrong = [lo - step, hi + step, "1", None, True, math.nan]
    if spec.type is int:
        wrong.append(lo + 0.5)
    return wrong


@pytest.mark.parametrize("spec", SC.fields(), ids=lambda s: s.name)
def test_every_knob_is_validated_before_anything_runs(spec):
    with mock.patch.object(World, "__init__", side_effect=AssertionError("a World was built")):
        for bad in _wrong_values(spec):
            with pytest.raises(ParamError) as info:
                simcomm.run("retry-storm", until=1.0, **{spec.name: bad})
            assert info.value.field == spec.name, bad


@pytest.mark.parametrize("spec", [s for s in SC.fields() if s.range or s.choices],
                         ids=lambda s: s.name)
def test_every_allowed_extreme_runs_and_balances(spec):
    values = spec.choices or [spec.type(spec.range[0]), spec.type(spec.range[1])]
    for value in values:
        params = {"slowdown_at": 1.0, spec.name: value}
        res = simcomm.run("retry-storm", seed=2, until=4.0, warn=False, **params)
        assert res.ledger()["balanced"], (spec.name, value)
    assert make_params(SC, {spec.name: values[0]})
