"""Simulation against closed forms (analysis.theory), and the formulas themselves.

Each simulation test states the run length, drops a warm-up and compares the
estimate with theory within 4 standard errors, the standard error coming from
batch means (20 batches of thousands of requests each, far longer than the
queue's relaxation time, so the batch means are nearly independent).  A
sanity cap (a few per cent of the theoretical value) guards against a
standard error that came out too large to mean anything.  Runs are seeded,
so a test that passes once passes always; the tolerances say how unlucky a
seed could be before it failed: with 20 batches the error over its
estimated SE follows Student's t with 19 degrees of freedom, beyond 4 with
probability under 0.1 %.
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import pandas as pd
import pytest

import simcomm
from simcomm.analysis import (
    batch_means,
    chain_availability,
    erlang_c,
    little_l,
    md1,
    mg1,
    mm1,
    mmc,
    time_average,
)
from simcomm.errors import ParamError

WARMUP = 2_000.0  # s; the relaxation time of M/M/1 at rho 0.8 is ~ 90 s


@cache
def latencies(until: float, **params) -> np.ndarray:
    """Latencies of the requests that arrived after the warm-up, in arrival order."""
    res = simcomm.run("mmc", seed=2024, until=until, trace=False, **params)
    df = res.requests
    df = df[(df.start > WARMUP) & (df.outcome == "ok")]
    return df["latency"].to_numpy()


def check(estimate: float, se: float, theory: float, cap: float) -> None:
    assert se < cap * theory / 4, f"SE {se:.4g} too large to test anything"
    assert abs(estimate - theory) < 4 * se, (estimate, se, theory)
    assert abs(estimate - theory) < cap * theory


# -- M/M/1 ------------------------------------------------------------------------------

def test_mm1_mean_response_at_utilisation_0_8():
    # 200 000 s at lambda 0.8: ~160 000 requests, SE of the mean ~ 0.1 s (2 %)
    lat = latencies(200_000.0, arrival_rate=0.8, service_rate=1.0)
    mean, se = batch_means(lat)
    theory = mm1(0.8, 1.0).response
    assert theory == pytest.approx(5.0)  # 1 / (mu - lambda) = 5 / mu
    check(mean, se, theory, cap=0.08)


def test_mm1_response_time_is_exponential():
    # in M/M/1 the response time is exponential with rate mu - lambda:
    # P(W > t) = exp(-(mu - lambda) t); the fraction over 10 s is e^-2
    lat = latencies(200_000.0, arrival_rate=0.8, service_rate=1.0)
    over, se = batch_means((lat > 10.0).astype(float))
    check(over, se, math.exp(-2.0), cap=0.2)  # a tail fraction: noisier


# -- M/M/3 -----------------------------------------------------------------------------

def test_mm3_erlang_c_wait_and_response():
    # c = 3, rho = 0.8; 80 000 s at lambda 2.4: ~190 000 requests
    until = 80_000.0
    res = simcomm.run("mmc", seed=7, until=until, arrival_rate=2.4, service_rate=1.0,
                      servers=3)
    theory = mmc(2.4, 1.0, 3)
    df = res.requests
    df = df[(df.start > WARMUP) & (df.outcome == "ok")]
    w, w_se = batch_means(df["latency"].to_numpy())
    check(w, w_se, theory.response, cap=0.05)
    # the mean wait is W - 1/mu (same standard error)
    check(w - 1.0, w_se, theory.wait, cap=0.1)
    # PASTA: the fraction of time all three workers are busy is the
    # probability that an arrival waits (Erlang C), batch means over time
    pools = res.pools.assign(all_busy=lambda d: (d["busy"] == 3).astype(float))
    edges = np.linspace(WARMUP, until, 21)
    fracs = [time_average(pools, "server-1", "all_busy", a, b)
             for a, b in itertools.pairwise(edges)]
    p, p_se = float(np.mean(fracs)), float(np.std(fracs, ddof=1) / math.sqrt(len(fracs)))
    check(p, p_se, theory.p_wait, cap=0.05)
    # and the workers are busy a fraction rho of the time
    assert res.utilisation(WARMUP)["server-1"] == pytest.approx(0.8, abs=0.01)


# -- M/D/1 -----------------------------------------------------------------------------

def test_md1_wait_is_half_of_mm1_and_matches_pollaczek_khinchine():
    # constant service of 1 s, so each request's queue wait is latency - 1
    wait_d, se_d = batch_means(latencies(200_000.0, arrival_rate=0.8,
                                         service_distribution="constant") - 1.0)
    theory = md1(0.8, 1.0)
    assert theory.wait == pytest.approx(mg1(0.8, 1.0, 0.0).wait)
    check(wait_d, se_d, theory.wait, cap=0.08)
    # M/M/1 wait at the same load: W - 1/mu
    wait_m, se_m = batch_means(latencies(200_000.0, arrival_rate=0.8, service_rate=1.0)
                               - 1.0)
    ratio = wait_d / wait_m
    # delta method, the two estimates taken as independent (conservative:
    # they share the arrival stream, which correlates them positively)
    ratio_se = ratio * math.hypot(se_d / wait_d, se_m / wait_m)
    assert abs(ratio - 0.5) < 4 * ratio_se, (ratio, ratio_se)
    assert abs(ratio - 0.5) < 0.06


# -- Little's law --------------------------------------------------------------------------

def test_littles_law_on_a_run():
    until = 20_000.0
    res = simcomm.run("mmc", seed=3, until=until, arrival_rate=1.7, service_rate=1.0,
                      servers=2)
    pools, df = res.pools, res.requests
    # L: time-average number at the server (in service + waiting)
    in_system = (time_average(pools, "server-1", "busy", 0.0, until)
                 + time_average(pools, "server-1", "queued", 0.0, until))
    done = df[df.outcome == "ok"]
    throughput = len(done) / until
    mean_latency = float(done["latency"].mean())
    # lambda W misses only the requests still in the system at the end (a
    # handful out of ~34 000): 0.5 %
    assert in_system == pytest.approx(little_l(throughput, mean_latency), rel=0.005)
    # and with their time so far added, it is a sample-path identity:
    # integral of N(t) dt = sum of the time each request spent inside
    pending = df[df.outcome == "pending"]
    area = done["latency"].sum() + (until - pending["start"]).sum()
    assert in_system * until == pytest.approx(area, rel=1e-9)
    assert in_system == pytest.approx(mmc(1.7, 1.0, 2).in_system, rel=0.2)


# -- availability of a synchronous chain ---------------------------------------------------------

def test_chain_availability_multiplies():
    # Outages with mean repair 0.1 s (so failures come every ~20 s per
    # service: ~1500 outages in the run) and tiny service times with an
    # instant network, so that a request samples the chain at one instant.
    until = 10_000.0
    res = simcomm.run("chain", seed=11, until=until, trace=False, depth=3,
                      service_availability=0.995, mean_time_to_repair=0.1,
                      service_time=0.001, network_latency=0.0, request_rate=3.0)
    s = res.summary()
    theory = chain_availability([0.995] * 3)
    assert theory == pytest.approx(0.985074875)
    ev = res.events
    # each service's measured downtime; its standard error follows from the
    # number of outages n: a sum of n exponential repairs has variance
    # ~ sum(d_i^2), plus the binomial error of sampling it with requests
    down_var = 0.0
    measured = []
    for name in ("order-1", "payment-1", "kitchen-1"):
        crashes = ev[(ev.node == name) & (ev.event == "crash")]["time"].to_numpy()
        restarts = ev[(ev.node == name) & (ev.event == "restart")]["time"].to_numpy()
        restarts = np.append(restarts, until)[: len(crashes)]
        durations = restarts - crashes
        assert len(durations) > 300
        a = 1 - durations.sum() / until
        a_se = math.sqrt((durations**2).sum()) / until
        assert abs(a - 0.995) < 4 * a_se  # each service's own availability
        measured.append(a)
        down_var += (durations**2).sum() / until**2
    n = s["completed"] + s["failed"]
    p = s["availability"]
    se = math.sqrt(down_var + p * (1 - p) / n)
    assert abs(p - theory) < 4 * se, (p, se, theory)
    assert abs(p - theory) < 0.005
    # given the outages that happened, the requests saw their product
    assert abs(p - math.prod(measured)) < 4 * math.sqrt(p * (1 - p) / n)
    assert s["error"] == s["failed"]  # the gateway turns every failure into an error


# -- the formulas --------------------------------------------------------------------------

def erlang_c_direct(c: int, a: float) -> float:
    """Erlang C from the textbook sum (fine for small c)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(("c", "a"), [(1, 0.5), (2, 1.0), (3, 2.4), (5, 4.5), (10, 7.0),
                                      (20, 19.5)])
def test_erlang_c_matches_the_textbook_sum(c, a):
    assert erlang_c(c, a) == pytest.approx(erlang_c_direct(c, a), rel=1e-12)


def test_erlang_c_known_values():
    assert erlang_c(1, 0.8) == pytest.approx(0.8)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(3, 5.0) == 1.0  # saturated
    assert erlang_c(5, 0.0) == 0.0
    # stable for large c where the factorials overflow floats
    assert 0 < erlang_c(500, 480.0) < 1


def test_mm1_is_mmc_with_one_server():
    for lam, mu in ((0.1, 1.0), (0.8, 1.0), (3.0, 4.0)):
        assert mm1(lam, mu) == mmc(lam, mu, 1)
    m = mm1(0.8, 1.0)
    assert (m.utilisation, m.wait, m.response) == pytest.approx((0.8, 4.0, 5.0))
    assert (m.queue_length, m.in_system, m.p_wait) == pytest.approx((3.2, 4.0, 0.8))


def test_queue_metrics_obey_littles_law():
    for m, lam in ((mmc(2.4, 1.0, 3), 2.4), (md1(0.5, 1.0), 0.5), (mg1(0.3, 2.0, 4.0), 0.3)):
        assert m.in_system == pytest.approx(little_l(lam, m.response))
        assert m.queue_length == pytest.approx(little_l(lam, m.wait))
        assert set(m.as_dict()) == {"utilisation", "wait", "response", "queue_length",
                                    "in_system", "p_wait"}


def test_md1_wait_is_half_of_mm1_and_mg1_generalises_both():
    for rho in (0.1, 0.5, 0.9, 0.99):
        assert md1(rho, 1.0).wait == pytest.approx(mm1(rho, 1.0).wait / 2)
        assert mg1(rho, 1.0, 1.0).wait == pytest.approx(mm1(rho, 1.0).wait)
        assert mg1(rho, 1.0, 1.0).response == pytest.approx(mm1(rho, 1.0).response)


def test_more_servers_less_waiting():
    waits = [mmc(2.4, 1.0, c).wait for c in (3, 4, 5, 8)]
    assert waits == sorted(waits, reverse=True)
    assert mmc(2.4, 1.0, 3).p_wait == pytest.approx(erlang_c(3, 2.4))


@pytest.mark.parametrize("m", [
    lambda: mm1(1.0, 1.0), lambda: mm1(2.0, 1.0), lambda: mmc(3.0, 1.0, 3),
    lambda: md1(1.5, 1.0), lambda: mg1(1.0, 1.0, 0.5),
])
def test_unstable_queues_have_infinite_waits(m):
    q = m()
    assert q.utilisation >= 1
    assert math.isinf(q.wait) and math.isinf(q.response) and math.isinf(q.in_system)
    assert q.p_wait == 1.0


def test_chain_availability():
    assert chain_availability([0.995] * 3) == pytest.approx(0.995**3)
    assert chain_availability([]) == 1.0
    assert chain_availability([0.99, 0.5]) == pytest.approx(0.495)
    with pytest.raises(ParamError) as info:
        chain_availability([0.9, 1.2])
    assert info.value.field == "availabilities[1]"


@pytest.mark.parametrize(("call", "field"), [
    (lambda: mmc(-1.0, 1.0, 1), "arrival_rate"),
    (lambda: mmc(1.0, 0.0, 1), "service_rate"),
    (lambda: mmc(1.0, math.inf, 1), "service_rate"),
    (lambda: mmc(1.0, 1.0, 0), "servers"),
    (lambda: mmc(1.0, 1.0, 2.0), "servers"),
    (lambda: erlang_c(0, 1.0), "servers"),
    (lambda: md1(math.nan, 1.0), "arrival_rate"),
    (lambda: mg1(1.0, 0.0, 1.0), "mean_service"),
    (lambda: mg1(1.0, -2.0, 1.0), "mean_service"),
    (lambda: mg1(0.5, 1.0, -1.0), "scv"),
])
def test_formula_arguments_are_checked(call, field):
    with pytest.raises(ParamError) as info:
        call()
    assert info.value.field == field


def test_time_average_of_a_step_function():
    pools = pd.DataFrame({"time": [0.0, 1.0, 3.0, 6.0], "node": ["n"] * 4,
                          "busy": [1, 2, 0, 1], "queued": [0, 0, 0, 0]})
    # 1 on [0,1), 2 on [1,3), 0 on [3,6), 1 on [6,10): (1 + 4 + 0 + 4) / 10
    assert time_average(pools, "n", "busy", 0.0, 10.0) == pytest.approx(0.9)
    # a window starting between changes takes the value then in force
    assert time_average(pools, "n", "busy", 2.0, 4.0) == pytest.approx(1.0)
    assert time_average(pools, "other", "busy", 0.0, 10.0) == 0.0


def test_batch_means_standard_error():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=20_000)
    mean, se = batch_means(x)
    assert mean == pytest.approx(x.mean())
    # independent data: close to the naive standard error 2/sqrt(n) (the
    # estimate from 20 batches has ~16 % relative error)
    assert se == pytest.approx(2.0 / math.sqrt(20_000), rel=0.5)
    with pytest.raises(ValueError):
        batch_means(np.ones(10))


def test_mgc_is_exact_where_a_closed_form_exists_and_allen_cunneen_elsewhere():
    from simcomm.analysis import mgc, mgc_is_exact

    assert mgc(2.4, 1.0, 3, 1.0) == mmc(2.4, 1.0, 3)
    assert mgc(0.8, 1.0, 1, 0.0) == md1(0.8, 1.0)
    assert mgc_is_exact(3, 1.0) and mgc_is_exact(1, 0.3) and not mgc_is_exact(3, 0.0)
    # M/D/3: half of M/M/3's queue wait; the response adds the mean service time
    approx = mgc(2.4, 1.0, 3, 0.0)
    assert approx.wait == pytest.approx(mmc(2.4, 1.0, 3).wait / 2)
    assert approx.response == pytest.approx(approx.wait + 1.0)
    with pytest.raises(ParamError) as info:
        mgc(1.0, 1.0, 2, -0.5)
    assert info.value.field == "scv"
