"""Notebook 05's exercises: each premise held against runs, right and wrong answers judged.

tests/test_exercises.py checks every exercise's solution, its typical wrong
answers (``WRONG``) and an unanswered cell; here, what each exercise tells the
learner about the ``discovery`` scenario is checked against its runs: with a
shorter lease the lag after a crash stays inside the worked sum's bounds
(05.1), a clean shutdown is free of stale calls once the drain outlasts the
three caches, or the caches are made short (05.2), and self-preservation keeps
a crashed instance among one fleet fewer than the answer and evicts it with
the answer's (05.3).
"""

from __future__ import annotations

import pytest

import simcomm
from simcomm import exercises
from simcomm.exercises import nb05_discovery as nb05


def _run(**settings):
    return simcomm.run("discovery", progress=False, warn=False, **settings)


# -- 05.1 ---------------------------------------------------------------------------------

def test_05_1_the_answer_is_the_worked_sum():
    p = nb05._params(**nb05.LEASE_SETTINGS)
    b = nb05.eureka_bounds(p)
    assert exercises.get("05.1").solution() == b.upper == sum(t.hi for t in b.terms)
    # the lease term is the tuned one: 2 × duration after the last renewal at the latest
    assert b.terms[0].hi == 2 * p.eureka_lease_duration
    for name in nb05.LEASE_SETTINGS:
        assert f"{name}={nb05.LEASE_SETTINGS[name]:g}" in exercises.get("05.1").question


@pytest.mark.parametrize("seed", [1, 2])
def test_05_1_runs_with_the_short_lease_stay_inside_the_bounds(seed):
    """The premise: with the tuned lease a crash's lag falls inside the sum's bounds
    (less a call gap below), and far below the default lease's."""
    p = nb05._params(**nb05.LEASE_SETTINGS)
    b = nb05.eureka_bounds(p)
    res = _run(seed=seed, until=300, trace=False, **nb05.LEASE_SETTINGS)
    (lag,) = res.detection()["lag"]
    assert b.lower - 1.0 <= lag <= b.upper
    assert b.upper < nb05.eureka_bounds(nb05._params()).lower + 100


def test_05_1_feedback():
    assert exercises.check("05.1", 209).ok  # within ±1 %
    fb = exercises.check("05.1", 210)
    assert "60 (lease expiry)" in fb.message and "= 210 s" in fb.message
    assert "+" in exercises.hint("05.1", 3).text


# -- 05.2 ---------------------------------------------------------------------------------

def test_05_2_the_caches_add_up_to_the_worst_case():
    p = nb05._params()
    assert nb05.cache_lag(p) == (p.eureka_cache_interval + p.eureka_fetch_interval
                                 + p.ribbon_refresh_interval)
    assert exercises.get("05.2").solution()["drain"] > nb05.cache_lag(p)


@pytest.mark.parametrize("seed", [2, 3])
def test_05_2_a_drain_longer_than_the_caches_is_clean_on_other_seeds(seed):
    """The premise on other seeds than the checker's: a drain just above the three
    caches leaves no stale call; the default drain leaves some."""
    p = nb05._params()
    clean = _run(seed=seed, until=250, trace=False, churn="shutdown",
                 drain=nb05.cache_lag(p) + 1.0)
    assert clean.summary()["stale_calls"] == 0 and clean.summary()["failed"] == 0
    short = _run(seed=seed, until=150, trace=False, churn="shutdown")
    assert short.summary()["stale_calls"] > 0


def test_05_2_short_caches_work_too_and_say_what_they_cost():
    fb = exercises.check("05.2", {"eureka_cache_interval": 1, "eureka_fetch_interval": 1,
                                  "ribbon_refresh_interval": 1})
    assert fb.ok is True and "registry messages per second" in fb.message


def test_05_2_a_retry_hides_the_stale_calls_but_they_are_there():
    check = exercises.get("05.2").check
    rep = nb05.shutdown_report(check.run({"retry_next_server": 1}))
    assert rep["stale"] > 0 and rep["failed"] == 0
    assert rep["last"] > rep["stopped"]


# -- 05.3 ---------------------------------------------------------------------------------

def test_05_3_the_arithmetic():
    n = exercises.get("05.3").solution()
    assert nb05.evicts(n) and not nb05.evicts(n - 1)
    # the registry's rule: 2(n - 1) renewals a minute > int(2n × 0.85)
    assert 2 * (n - 1) > int(2 * n * 0.85) and not 2 * (n - 2) > int(2 * (n - 1) * 0.85)


@pytest.mark.parametrize("extra", [-1, 0])
def test_05_3_the_runs_agree(extra):
    """One instance fewer than the answer: the crashed instance is never evicted and
    called to the end; with the answer's fleet it is evicted."""
    n = exercises.get("05.3").solution() + extra
    res = _run(seed=1, until=400, trace=False, instances=n, **nb05.EVICT_SETTINGS)
    server = res.world.nodes["eureka-server"]
    evicted = [name for run in server.eviction_runs for _, name in run.evicted]
    det = res.detection().iloc[0]
    if extra < 0:
        assert evicted == [] and det["last_stale_call"] > 399
    else:
        assert evicted == [det["instance"]] and det["last_stale_call"] < 330


def test_05_3_feedback():
    fb = exercises.check("05.3", 7.0)
    assert fb.ok is True and "self-preservation" in fb.message
    assert exercises.check("05.3", 8).ok is False
