"""The ``gateway`` scenario: a hung order service behind one gateway pool, and the
book's remedies one at a time (scenarios/gateway.py, rpc.handlers.route)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from unittest import mock

import pytest

import simcomm
from simcomm.engine import Constant, Instance, OpenLoop, World
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.rpc.handlers import answer, route
from simcomm.scenarios import get, make_params
from simcomm.scenarios.gateway import CUSTOMER, GATEWAY, ORDER, USERS, capacity
from simcomm.viz import VIEWS

SC = get("gateway")
P = SC.defaults()
HANG_START, HANG_END = P.hang_at, P.hang_at + P.hang_duration
ANSWERED = ("ok", "fallback")


def run(seed: int = 1, **params):
    return simcomm.run("gateway", seed=seed, warn=False, **params)


def window(res, endpoint: str, start: float, end: float):
    """Finished requests to ``endpoint`` started in ``[start, end)``."""
    rq = res.requests
    return rq[(rq.endpoint == endpoint) & (rq.start >= start) & (rq.start < end)
              & (rq.outcome != "pending")]


def availability(res, endpoint: str, start: float = HANG_START + 1.0,
                 end: float = HANG_END) -> float:
    """Share of ``endpoint``'s requests started in the window that got an answer."""
    df = window(res, endpoint, start, end)
    assert len(df) > 50
    return float(df.outcome.isin(ANSWERED).mean())


@pytest.fixture(scope="module")
def unprotected():
    return run()


# -- what it is ---------------------------------------------------------------------------

def test_registered_with_existing_views_and_a_model_of_its_load():
    assert "gateway" in simcomm.scenarios()
    assert set(SC.views) <= set(VIEWS)
    assert SC.capacity is not None and SC.load is not None
    est = simcomm.estimate("gateway")
    assert est.source == "model" and est.requests == pytest.approx(P.request_rate * SC.until)
    # the gateway pool binds: 10 workers each held ~0.06 s
    hold = P.service_time * 1.1 + 2 * P.network_latency
    assert capacity(P) == pytest.approx(P.gateway_workers / hold)
    assert capacity(make_params(SC, {"service_workers": 1, "create_order_share": 0.8})) == \
        pytest.approx(1 / P.service_time / 0.8)


def test_the_default_run_is_the_unprotected_one_with_the_order_service_hanging():
    assert P.order_hangs and P.call_timeout == 0 and P.order_bulkhead == 0
    assert P.customer_bulkhead == 0 and P.breaker == "none" and P.fallback == "none"
    assert P.max_attempts == 1


def test_the_topology_and_the_endpoint_mix(unprotected):
    res = unprotected
    assert {USERS, GATEWAY, ORDER, CUSTOMER} == set(res.world.nodes)
    rq = res.requests
    share = float((rq.endpoint == "createOrder").mean())
    assert abs(share - P.create_order_share) < 5 * math.sqrt(0.25 / len(rq))
    assert set(rq.endpoint) == {"createOrder", "getCustomer"}
    tr = res.trace
    to_order = tr[(tr.event == "send") & (tr.dest == ORDER)]
    to_customer = tr[(tr.event == "send") & (tr.dest == CUSTOMER)]
    orders = set(rq.loc[rq.endpoint == "createOrder", "request_id"])
    assert set(to_order.trace_id) <= orders
    assert not set(to_customer.trace_id) & orders
    only = run(until=10.0, create_order_share=0.0).requests
    assert set(only.endpoint) == {"getCustomer"}


# -- the must-holds -----------------------------------------------------------------------

def test_unprotected_both_endpoints_fail_during_the_hang(unprotected):
    res = unprotected
    for ep in ("createOrder", "getCustomer"):
        assert availability(res, ep, 0.0, HANG_START) > 0.99  # healthy before
        assert availability(res, ep, HANG_END + 10.0, SC.until - P.user_patience) > 0.99
    # (requests made in the last seconds of the hang are still waited for when
    # it ends, and the restarted service answers them)
    end = HANG_END - P.user_patience
    assert availability(res, "createOrder", end=end) == 0.0
    # getCustomer's service is fine, yet its requests are lost: they wait for a
    # gateway worker, and every worker waits for the hung order service
    assert availability(res, "getCustomer", end=end) < 0.1
    assert availability(res, "getCustomer") < 0.5
    lost = window(res, "getCustomer", HANG_START + 1.0, HANG_END)
    assert (lost.outcome == "abandoned").sum() > 50
    pools = res.pools
    gw = pools[(pools.node == GATEWAY) & (pools.time > HANG_START + 2)
               & (pools.time < HANG_END)]
    assert gw.busy.min() == P.gateway_workers
    assert res.ledger()["balanced"]


def test_an_order_bulkhead_keeps_getcustomer_above_99_percent():
    res = run(order_bulkhead=4)
    assert availability(res, "getCustomer") > 0.99
    orders = window(res, "createOrder", HANG_START + 1.0, HANG_END)
    assert (orders.outcome == "bulkhead_full").mean() > 0.95
    # turned away at once: nothing was sent for them
    full = orders[orders.outcome == "bulkhead_full"]
    assert full.latency.max() < 0.1
    tr = res.trace
    sent = tr[(tr.event == "send") & (tr.dest == ORDER) & tr.trace_id.isin(full.request_id)]
    assert sent.empty
    # at most four gateway workers are held by the hung order service
    pools = res.pools
    gw = pools[(pools.node == GATEWAY) & (pools.time > HANG_START + 2)
               & (pools.time < HANG_END)]
    assert gw.busy.max() < P.gateway_workers
    assert res.ledger()["balanced"]


# -- each protection does what the book says ----------------------------------------------

def test_a_timeout_turns_abandoned_requests_into_fast_timeouts(unprotected):
    res = run(call_timeout=0.5)
    before = window(unprotected, "createOrder", HANG_START + 1.0, HANG_END)
    after = window(res, "createOrder", HANG_START + 1.0, HANG_END)
    assert (before.outcome == "abandoned").mean() > 0.9
    assert (after.outcome == "timeout").all()
    # the user hears within the time limit (plus a little work and network),
    # long before their patience runs out
    assert after.latency.max() < 0.5 + 0.2 < P.user_patience
    assert res.summary()["timeout"] == (res.requests.outcome == "timeout").sum() > 100
    assert res.summary()["abandoned"] == 0
    # the gateway's workers are free again: getCustomer is served
    assert availability(res, "getCustomer") > 0.99
    # the order service never answered them: the reset replies at the end of
    # the hang reach a gateway that stopped waiting -- orphans
    ev = res.events
    orphans = ev[(ev.event == "orphan_reply") & (ev.node == GATEWAY)]
    assert len(orphans) > 100
    assert res.ledger()["balanced"]


@pytest.mark.parametrize("kind", ["resilience4j", "consecutive", "hystrix"])
def test_each_breaker_short_circuits_after_it_trips(kind):
    res = run(call_timeout=1.0, breaker=kind)
    br = res.breaker_events
    order_edge = br[br.callee == "order"]
    opened = order_edge[order_edge.to_state == "open"]
    assert not opened.empty
    first_open = float(opened.time.min())
    assert HANG_START < first_open < HANG_START + 10.0
    # the customer edge never trips
    assert br[br.callee == "customer"].empty
    rq = res.requests
    short = rq[rq.outcome == "short_circuited"]
    assert len(short) > 50
    assert set(short.endpoint) == {"createOrder"}
    # the calls it refused were all made after it opened, and took no time
    att = res.attempts
    refused = att[att.outcome == "short_circuited"]
    assert set(refused.trace_id) == set(short.request_id)
    assert refused.time.min() >= first_open
    assert (refused.end == refused.time).all()
    assert short.latency.median() < 0.05  # the user hears at once
    # a short-circuited call sends nothing: far fewer calls reached the order
    # service during the hang than createOrder requests were made
    tr = res.trace
    reached = tr[(tr.event == "send") & (tr.dest == ORDER) & (tr.time > first_open)
                 & (tr.time < HANG_END)]
    made = window(res, "createOrder", first_open, HANG_END)
    assert len(reached) < 0.5 * len(made)
    # after the hang a trial call closes it again and createOrder works
    assert order_edge.to_state.iloc[-1] == "closed"
    assert availability(res, "createOrder", HANG_END + 10.0, SC.until - 1.0) > 0.99
    assert availability(res, "getCustomer") > 0.99
    assert res.ledger()["balanced"]


def test_a_breaker_without_a_timeout_does_not_see_the_hang():
    """A hang produces no failure for the breaker to count until it ends."""
    res = run(breaker="resilience4j")
    br = res.breaker_events
    assert br.empty or br.time.min() >= HANG_END
    assert availability(res, "getCustomer") < 0.5


@pytest.mark.parametrize("kind", ["value", "cache"])
def test_fallback_answers_end_fallback(kind):
    res = run(call_timeout=1.0, fallback=kind)
    orders = window(res, "createOrder", HANG_START + 1.0, HANG_END)
    assert (orders.outcome == "fallback").all()
    s = res.summary()
    assert s["fallback"] == (res.requests.outcome == "fallback").sum() > 100
    assert s["timeout"] == 0
    # answered, but not by the order service: true success and availability differ
    rq = res.requests[res.requests.outcome != "pending"]
    assert s["availability"] == pytest.approx(rq.outcome.isin(ANSWERED).mean())
    assert s["completed"] == (rq.outcome == "ok").sum() < len(rq)
    assert res.ledger()["balanced"]


def test_a_cache_fallback_with_nothing_cached_lets_the_failure_stand():
    res = run(until=8.0, hang_at=0.0, call_timeout=1.0, fallback="cache")
    orders = window(res, "createOrder", 0.0, 6.0)
    assert len(orders) > 20 and (orders.outcome == "timeout").all()


def test_retries_against_a_hung_service_multiply_the_waiting():
    alone = run(call_timeout=1.0)
    res = run(call_timeout=1.0, max_attempts=3, retry_backoff="constant", retry_wait=0.5)
    att = res.attempts
    hung = att[(att.callee == ORDER) & (att.time > HANG_START + 1.0) & (att.time < HANG_END - 5)]
    assert hung.attempt.max() == 3
    assert (hung.outcome == "timeout").all()
    assert res.amplification()["order"] > alone.amplification()["order"]
    # each createOrder now holds a gateway worker for 3 timeouts and 2 waits:
    # the pool runs out and getCustomer suffers again
    assert availability(res, "getCustomer") < availability(alone, "getCustomer") - 0.2
    assert res.ledger()["balanced"]


def test_the_customer_bulkhead_and_bulkhead_wait_are_applied():
    res = run(until=30.0, customer_bulkhead=1, order_hangs=False, request_rate=100.0,
              service_time=0.2, gateway_workers=50)
    rq = res.requests
    full = rq[rq.outcome == "bulkhead_full"]
    assert len(full) > 0 and set(full.endpoint) == {"getCustomer"}
    waited = run(until=30.0, customer_bulkhead=1, order_hangs=False, request_rate=100.0,
                 service_time=0.2, gateway_workers=50, bulkhead_max_wait=5.0)
    assert (waited.requests.outcome == "bulkhead_full").sum() < len(full)


# -- the books balance, the runs repeat ---------------------------------------------------

CONFIGS = [{}, {"call_timeout": 1.0}, {"order_bulkhead": 4, "customer_bulkhead": 8},
           {"call_timeout": 1.0, "breaker": "consecutive"},
           {"call_timeout": 1.0, "breaker": "hystrix", "fallback": "value"},
           {"call_timeout": 0.5, "max_attempts": 4, "retry_backoff": "full_jitter"},
           {"call_timeout": 0.5, "order_bulkhead": 3, "bulkhead_max_wait": 0.2,
            "breaker": "resilience4j", "fallback": "cache", "max_attempts": 2}]


@pytest.mark.parametrize("params", CONFIGS)
def test_the_ledger_balances_with_every_protection(params):
    res = run(seed=3, until=45.0, **params)
    ledger = res.ledger()
    assert ledger["balanced"]
    s = res.summary()
    assert s["requests"] == s["completed"] + s["failed"] + s["pending"] + s["fallback"]


@pytest.mark.parametrize("params", CONFIGS[:3] + CONFIGS[5:])
def test_same_seed_same_run_other_seed_other_run(params):
    a = run(seed=5, until=30.0, **params)
    b = run(seed=5, until=30.0, **params)
    c = run(seed=6, until=30.0, **params)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


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
                simcomm.run("gateway", until=1.0, **{spec.name: bad})
            assert info.value.field == spec.name, bad


@pytest.mark.parametrize("spec", [s for s in SC.fields() if s.range or s.choices],
                         ids=lambda s: s.name)
def test_every_allowed_extreme_runs_and_balances(spec):
    values = spec.choices or [spec.type(spec.range[0]), spec.type(spec.range[1])]
    for value in values:
        params = {"hang_at": 1.0, "call_timeout": 0.5, spec.name: value}
        res = simcomm.run("gateway", seed=2, until=3.0, warn=False, **params)
        assert res.ledger()["balanced"], (spec.name, value)


# -- the command line ---------------------------------------------------------------------

def test_cli_json_shows_the_new_outcome_counts():
    proc = subprocess.run(
        [sys.executable, "-m", "simcomm", "run", "gateway", "--set", "call_timeout=1",
         "--set", "breaker=hystrix", "--json"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "100"})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["timeout"] > 0 and summary["short_circuited"] > 0
    assert summary["abandoned"] == 0
    expected = run(seed=0, call_timeout=1.0, breaker="hystrix").summary()
    for key in ("requests", "completed", "timeout", "short_circuited", "bulkhead_full",
                "fallback"):
        assert summary[key] == expected[key], key


# -- the routing handler ------------------------------------------------------------------

def test_route_calls_the_endpoints_instance_and_refuses_an_unknown_endpoint():
    w = World(4)
    Instance(w, "gw", workers=10, handler=route({"a": "svc-a", "b": "svc-b"}))
    Instance(w, "svc-a", workers=10, service_time=Constant(0.01), handler=answer("A"))
    Instance(w, "svc-b", workers=10, service_time=Constant(0.01), handler=answer("B"))
    OpenLoop(w, "users", "gw", 20.0, endpoints={"a": 1, "b": 1, "c": 1})
    OpenLoop(w, "plain", "gw", 5.0, body={"no": "endpoint"})
    w.run(30.0)
    res = Result(w)
    rq = res.requests
    fin = rq[rq.outcome != "pending"]
    assert (fin[fin.endpoint.isin(["a", "b"])].outcome == "ok").all()
    assert (fin[fin.endpoint == "c"].outcome == "error").all()
    assert (fin[fin.client == "plain"].outcome == "error").all()
    tr = res.trace
    replies = tr[(tr.event == "deliver") & (tr.kind == "reply") & (tr.dest == "gw")]
    by_source = replies.groupby("source").trace_id.apply(set)
    ids = rq.set_index("request_id").endpoint
    assert {ids[t] for t in by_source["svc-a"]} == {"a"}
    assert {ids[t] for t in by_source["svc-b"]} == {"b"}
