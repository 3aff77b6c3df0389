"""Workloads: open-loop Poisson clients, rate schedules, closed-loop users (engine.workload)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simcomm.engine import (
    ClosedLoop,
    Constant,
    Exponential,
    Instance,
    OpenLoop,
    RateSchedule,
    World,
    spike,
)
from simcomm.engine.workload import endpoint_of, payload_of, request_body
from simcomm.errors import ParamError
from simcomm.result import Result


def poisson_ok(count: int, mean: float, k: float = 5.0) -> bool:
    """``count`` is within k standard deviations of a Poisson(mean) count."""
    return abs(count - mean) <= k * math.sqrt(mean)


# -- open loop ------------------------------------------------------------------------

@pytest.mark.parametrize(("rate", "until"), [(5.0, 2000.0), (0.5, 4000.0), (200.0, 50.0)])
def test_open_loop_count_is_rate_times_time(rate, until):
    w = World(1)
    Instance(w, "srv", workers=10_000)
    OpenLoop(w, "users", "srv", rate)
    w.run(until)
    n = len(Result(w).requests)
    assert poisson_ok(n, rate * until)


def test_open_loop_gaps_are_exponential():
    w = World(2)
    Instance(w, "srv", workers=10_000)
    OpenLoop(w, "users", "srv", 4.0)
    w.run(5000)
    starts = Result(w).requests["start"].to_numpy()
    gaps = np.diff(starts)
    n = len(gaps)
    assert abs(gaps.mean() - 0.25) < 5 * 0.25 / math.sqrt(n)
    # exponential: coefficient of variation 1 (its estimate has sd ~ 1/sqrt(n))
    assert abs(gaps.std() / gaps.mean() - 1) < 5 / math.sqrt(n)
    # memoryless: P(gap > 0.25) = e^-1
    frac = float((gaps > 0.25).mean())
    assert abs(frac - math.exp(-1)) < 5 * math.sqrt(math.exp(-1) * (1 - math.exp(-1)) / n)


def test_open_loop_records_outcomes_and_latency():
    w = World(3)
    Instance(w, "srv", workers=1, service_time=Constant(0.1))
    OpenLoop(w, "users", "srv", 1.0)
    w.run(100)
    df = Result(w).requests
    ok = df[df.outcome == "ok"]
    assert (ok["latency"] >= 0.1 - 1e-12).all()
    assert (ok["end"] == ok["start"] + ok["latency"]).all()
    assert set(df["outcome"]) <= {"ok", "pending"}
    assert (df["client"] == "users").all() and (df["target"] == "srv").all()


def test_rate_schedule_rates_per_interval():
    sched = RateSchedule([(0, 2.0), (100, 0.0), (200, 10.0), (250, 1.0)])
    w = World(4)
    Instance(w, "srv", workers=10_000)
    OpenLoop(w, "users", "srv", sched)
    w.run(1000)
    starts = Result(w).requests["start"].to_numpy()
    bounds = [(0, 100, 2.0), (100, 200, 0.0), (200, 250, 10.0), (250, 1000, 1.0)]
    for lo, hi, rate in bounds:
        n = int(((starts >= lo) & (starts < hi)).sum())
        if rate == 0:
            assert n == 0
        else:
            assert poisson_ok(n, rate * (hi - lo)), (lo, hi, n)
    assert sched.rate_at(0) == 2.0 and sched.rate_at(150) == 0.0 and sched.rate_at(999) == 1.0
    assert sched.next_change(120) == 200 and sched.next_change(300) == math.inf
    assert sched.mean_rate(1000) == pytest.approx((200 + 0 + 500 + 750) / 1000)


def test_spike():
    s = spike(base=2.0, peak=20.0, start=100.0, duration=50.0)
    assert [s.rate_at(t) for t in (0, 99.9, 100, 149.9, 150, 500)] == [2, 2, 20, 20, 2, 2]
    w = World(5)
    Instance(w, "srv", workers=10_000)
    OpenLoop(w, "users", "srv", s)
    w.run(300)
    starts = Result(w).requests["start"].to_numpy()
    assert poisson_ok(int((starts < 100).sum()), 200)
    assert poisson_ok(int(((starts >= 100) & (starts < 150)).sum()), 1000)
    assert poisson_ok(int((starts >= 150).sum()), 300)


def test_spike_from_time_zero():
    s = spike(base=1.0, peak=8.0, start=0.0, duration=10.0)
    assert [s.rate_at(t) for t in (0, 9.9, 10, 100)] == [8, 8, 1, 1]


@pytest.mark.parametrize(("start", "duration", "field"), [
    (-1.0, 5.0, "start"), (math.inf, 5.0, "start"), (0.0, 0.0, "duration"),
    (1.0, -2.0, "duration"), (1.0, math.nan, "duration"),
])
def test_spike_is_checked(start, duration, field):
    with pytest.raises(ParamError) as info:
        spike(1.0, 5.0, start, duration)
    assert info.value.field == field


@pytest.mark.parametrize(("steps", "field"), [
    ([], "steps"), ([(1, 2.0)], "steps"), ([(0, 1.0), (5, 2.0), (5, 3.0)], "steps"),
    ([(0, 1.0), (5, -2.0)], "rate"), ([(0, math.inf)], "rate"), ([(0, math.nan)], "rate"),
])
def test_rate_schedule_is_checked(steps, field):
    with pytest.raises(ParamError) as info:
        RateSchedule(steps)
    assert info.value.field == field


@pytest.mark.parametrize("rate", [0, -1.0, math.nan, math.inf, "5", True])
def test_open_loop_rate_is_checked(rate):
    w = World(0)
    with pytest.raises(ParamError) as info:
        OpenLoop(w, "users", "srv", rate)
    assert info.value.field == "rate"
    assert "users" not in w.nodes


def test_client_checks_patience_and_format_before_it_joins_the_world():
    w = World(0)
    with pytest.raises(ParamError) as info:
        OpenLoop(w, "users", "srv", 1.0, patience=0)
    assert info.value.field == "patience"
    with pytest.raises(ParamError) as info:
        OpenLoop(w, "users", "srv", 1.0, format="yaml")
    assert info.value.field == "message_format"
    assert "users" not in w.nodes
    OpenLoop(w, "users", "srv", 1.0)  # the name is still free


# -- closed loop -----------------------------------------------------------------------

def test_closed_loop_obeys_the_interactive_response_time_law():
    users, think = 20, 2.0
    w = World(6)
    Instance(w, "srv", workers=2, service_time=Exponential(0.15))
    ClosedLoop(w, "users", "srv", users, Exponential(think))
    until = 5000.0
    w.run(until)
    df = Result(w).requests
    ok = df[df.outcome == "ok"]
    x = len(ok) / until
    r = ok["latency"].mean()
    # X = N / (Z + R) is an operational law: exact up to the requests still
    # open at the end (at most N of ~45000), so 1 % is generous
    assert x == pytest.approx(users / (think + r), rel=0.01)
    assert r > 0.2  # there was queueing (the two workers are ~ 70 % busy)
    assert (df.outcome == "pending").sum() <= users


def test_closed_loop_users_wait_for_their_reply_before_the_next_request():
    w = World(7)
    Instance(w, "srv", workers=1, service_time=Constant(1.0))
    ClosedLoop(w, "users", "srv", 3, Constant(0.5))
    w.run(100)
    df = Result(w).requests
    # 3 users, one worker: never more than 3 requests open at once
    events = sorted([(s, 1) for s in df.start] + [(e, -1) for e in df.end.dropna()])
    open_now = np.cumsum([d for _, d in events])
    assert open_now.max() <= 3
    # the server is the bottleneck: throughput 1/s
    assert len(df[df.outcome == "ok"]) == pytest.approx(100, abs=3)


@pytest.mark.parametrize(("users", "think", "field"), [
    (0, Constant(1.0), "users"), (2.5, Constant(1.0), "users"), (True, Constant(1.0), "users"),
    (3, 1.0, "think_time"),
])
def test_closed_loop_is_checked(users, think, field):
    w = World(0)
    with pytest.raises(ParamError) as info:
        ClosedLoop(w, "users", "srv", users, think)
    assert info.value.field == field


# -- patience ---------------------------------------------------------------------------

def test_patience_runs_out_abandoned():
    w = World(8)
    Instance(w, "srv", workers=1, service_time=Constant(5.0))
    OpenLoop(w, "users", "srv", 0.05, patience=2.0)
    w.run(1000)
    df = Result(w).requests
    finished = df[df.outcome != "pending"]
    assert len(finished) > 20
    assert set(finished.outcome) == {"abandoned"}
    assert np.allclose(finished.latency, 2.0)
    # the late replies reach a client that stopped waiting: orphans, no double rows
    ev = Result(w).events
    assert (ev.event == "orphan_reply").sum() >= len(finished) - 1
    assert df["request_id"].is_unique
    assert Result(w).ledger()["balanced"]


def test_patience_only_for_slow_requests():
    w = World(9)
    Instance(w, "srv", workers=100, service_time=Exponential(1.0))
    OpenLoop(w, "users", "srv", 5.0, patience=2.0)
    w.run(2000)
    df = Result(w).requests
    ok, ab = df[df.outcome == "ok"], df[df.outcome == "abandoned"]
    assert (ok.latency < 2.0).all()
    assert np.allclose(ab.latency, 2.0)
    # no queueing: P(service > 2) = e^-2, binomial tolerance
    n = len(ok) + len(ab)
    p = math.exp(-2)
    assert abs(len(ab) - n * p) < 5 * math.sqrt(n * p * (1 - p))


def test_closed_loop_user_gives_up_and_thinks_again():
    w = World(10)
    Instance(w, "srv", workers=1, service_time=Constant(10.0))
    ClosedLoop(w, "users", "srv", 1, Constant(1.0), patience=3.0)
    w.run(20)
    df = Result(w).requests
    # think 1, wait 3 (abandon at 4), think 1, wait 3 (the worker is still
    # busy with the first until 11: abandon at 8), think, send at 9 ...
    assert df["start"].tolist()[:3] == [1.0, 5.0, 9.0]
    assert df["outcome"].tolist()[:3] == ["abandoned"] * 3


# -- a mix of endpoints -------------------------------------------------------------------

def _echo_endpoint(ctx, request):
    """Answer with the endpoint and payload the request named (what a router reads)."""
    yield ctx.work()
    return (endpoint_of(request.body), payload_of(request.body))


def test_open_loop_mix_draws_endpoints_in_proportion_and_records_them():
    w = World(11)
    Instance(w, "srv", workers=10_000, handler=_echo_endpoint)
    OpenLoop(w, "users", "srv", 20.0, endpoints={"createOrder": 3, "getCustomer": 1})
    w.run(500)
    df = Result(w).requests
    n = len(df)
    share = float((df["endpoint"] == "createOrder").mean())
    assert set(df["endpoint"]) == {"createOrder", "getCustomer"}
    assert abs(share - 0.75) < 5 * math.sqrt(0.75 * 0.25 / n)


def test_the_endpoint_travels_in_the_body_with_its_own_payload():
    w = World(12)
    seen = []

    def handler(ctx, request):
        yield ctx.work()
        seen.append((request.trace_id, endpoint_of(request.body), payload_of(request.body)))

    Instance(w, "srv", workers=100, handler=handler)
    OpenLoop(w, "users", "srv", 5.0, body="default", endpoints={"a": 1, "b": 1, "c": 1},
             bodies={"a": {"x": 1}, "b": None})
    w.run(100)
    df = Result(w).requests.set_index("request_id")
    assert len(seen) > 300
    payloads = {"a": {"x": 1}, "b": None, "c": "default"}
    for rid, endpoint, payload in seen:
        assert df.loc[rid, "endpoint"] == endpoint
        assert payload == payloads[endpoint]
    assert request_body("a", 1) == {"endpoint": "a", "body": 1}
    assert endpoint_of({"x": 1}) is None and payload_of({"x": 1}) == {"x": 1}


def test_single_endpoint_clients_record_none_and_keep_their_body():
    w = World(13)
    Instance(w, "srv", workers=100, handler=_echo_endpoint)
    OpenLoop(w, "users", "srv", 5.0, body={"x": 1}, patience=1.0)
    w.run(50)
    df = Result(w).requests
    assert len(df) > 100 and df["endpoint"].isna().all()


def test_the_mix_has_its_own_stream_arrivals_and_service_draws_are_unchanged():
    def run(endpoints):
        w = World(14)
        Instance(w, "srv", workers=2, service_time=Exponential(0.1))
        OpenLoop(w, "users", "srv", 5.0, endpoints=endpoints)
        w.run(200)
        return Result(w).requests

    plain, mixed = run(None), run({"a": 1, "b": 2})
    assert plain["start"].tolist() == mixed["start"].tolist()
    assert plain["end"].equals(mixed["end"])  # pending rows: NaN in both
    again = run({"a": 1, "b": 2})
    assert again["endpoint"].tolist() == mixed["endpoint"].tolist()


def test_closed_loop_mix_and_pending_rows_carry_the_endpoint():
    w = World(15)
    Instance(w, "srv", workers=1, service_time=Constant(1.0))
    ClosedLoop(w, "users", "srv", 5, Constant(0.5), endpoints={"a": 1, "b": 1})
    w.run(30.2)
    df = Result(w).requests
    assert set(df["endpoint"]) == {"a", "b"}
    pending = df[df.outcome == "pending"]
    assert len(pending) == 5 and pending["endpoint"].isin(["a", "b"]).all()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"endpoints": {}}, "endpoints"),
    ({"endpoints": ["a", "b"]}, "endpoints"),
    ({"endpoints": "a"}, "endpoints"),
    ({"endpoints": {"a": 0}}, "endpoints"),
    ({"endpoints": {"a": -1}}, "endpoints"),
    ({"endpoints": {"a": math.inf}}, "endpoints"),
    ({"endpoints": {"a": math.nan}}, "endpoints"),
    ({"endpoints": {"a": True}}, "endpoints"),
    ({"endpoints": {"a": "1"}}, "endpoints"),
    ({"endpoints": {"": 1}}, "endpoints"),
    ({"endpoints": {3: 1}}, "endpoints"),
    ({"endpoints": {"a": 1}, "bodies": {"b": 1}}, "bodies"),
    ({"endpoints": {"a": 1}, "bodies": [1]}, "bodies"),
    ({"bodies": {"a": 1}}, "bodies"),
])
def test_the_mix_is_checked_before_the_client_joins_the_world(kwargs, field):
    w = World(0)
    for make in (lambda: OpenLoop(w, "users", "srv", 1.0, **kwargs),
                 lambda: ClosedLoop(w, "users", "srv", 1, Constant(1.0), **kwargs)):
        with pytest.raises(ParamError) as info:
            make()
        assert info.value.field == field
        assert "users" not in w.nodes
