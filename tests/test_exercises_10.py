"""Notebook 10's exercises: each premise held against runs, right and wrong answers judged.

tests/test_exercises.py checks every exercise's solution, its typical wrong
answers (``WRONG``) and an unanswered cell; here, what each exercise tells the
learner about the ``outbox`` scenario is checked against its runs: only
publish first turns a refused commit into a phantom (10.1), a polling
publisher's rows wait half a poll interval on average and a whole one at most
(10.2), and exactly once takes an outbox design AND consumer dedup (10.3).
"""

from __future__ import annotations

import pytest

import simcomm
from simcomm import exercises
from simcomm.exercises import nb10_outbox as nb10
from simcomm.scenarios import outbox


def _run(**settings):
    return simcomm.run("outbox", progress=False, warn=False, **settings)


def _relay_share(res):
    lag = res.outbox_lag()
    return (lag["sent"] - lag["committed"]).dropna()


# -- 10.1 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_10_1_only_publish_first_turns_a_refused_commit_into_a_phantom(seed):
    """No crash, 2 % of the commits refused: the consumers apply events of changes
    never stored only when the event goes out before the commit."""
    assert nb10.REFUSED_SETTINGS["db_error_rate"] > 0
    for design in outbox.DESIGNS:
        res = _run(seed=seed, until=30.0, design=design, **nb10.REFUSED_SETTINGS)
        r = outbox.outbox_report(res)
        aborted = sum(1 for row in res.world.trace.records if row[1] == "tx_abort")
        assert aborted > 0, design  # the database did refuse commits
        assert r["lost"] == 0, design
        assert (r["phantom"] > 0) == (design == "publish-first"), (design, r)
        if design == "publish-first":
            causes = res.delivery_causes()
            assert set(causes["cause"]) == {"dual write"}


def test_10_1_feedback():
    right = exercises.check("10.1", " Publish-First ")
    assert right.ok and "refused commit comes too late" in right.message
    for option in ("dual-write", "polling", "log-tailing"):
        fb = exercises.check("10.1", option)
        assert fb.ok is False and fb.hint
    assert "did you mean 'publish-first'" in exercises.check("10.1", "publish_first").message


# -- 10.2 ---------------------------------------------------------------------------------

def test_10_2_the_expected_wait_is_half_the_poll_interval():
    ex = exercises.get("10.2")
    p = nb10._params(**nb10.POLL_SETTINGS)
    assert ex.solution() == pytest.approx(p.poll_interval / 2)
    assert f"poll_interval={p.poll_interval:g}" in ex.question


@pytest.mark.parametrize("seed", [0, 1])
def test_10_2_a_polled_row_waits_half_an_interval_on_average(seed):
    """The premise over two seeds: the relay's share (commit -> first send) averages
    half the poll interval within the exercise's ±10 %, and never exceeds the
    interval plus a poll's round trips (the longest wait a wrong answer names)."""
    p = nb10._params(**nb10.POLL_SETTINGS)
    share = _relay_share(_run(seed=seed, **nb10.POLL_SETTINGS))
    assert len(share) > 500
    assert share.mean() == pytest.approx(nb10.expected_relay_wait(p), rel=0.10)
    assert share.max() <= p.poll_interval + 0.05
    assert share.min() < 0.05


def test_10_2_feedback():
    assert exercises.check("10.2", 1.05).ok  # within ±10 %
    assert exercises.check("10.2", "1 s").ok is False  # not a number
    low = exercises.check("10.2", 0.3)
    assert low.ok is False and "too low" in low.message


# -- 10.3 ---------------------------------------------------------------------------------

def test_10_3_the_question_states_the_scenarios_crashes():
    ex = exercises.get("10.3")
    every = nb10._params().service_crash_every
    assert nb10._params().relay_crash_every == every
    assert f"every {every:g} s" in ex.question


def test_10_3_exactly_once_takes_the_outbox_and_dedup():
    """Each design with and without dedup, run by the checker itself: right exactly
    when the design is an outbox one and the consumers deduplicate."""
    check = exercises.get("10.3").check
    for design in outbox.DESIGNS:
        for dedup in ("none", "processed_ids"):
            answer = {"design": design, "dedup": dedup}
            fb = exercises.check("10.3", answer)
            r = outbox.outbox_report(check.run(answer))
            ok = design in ("polling", "log-tailing") and dedup != "none"
            assert bool(fb) == ok, (answer, fb.message)
            if ok:
                assert r["lost"] == r["phantom"] == r["applied_twice"] == 0
                assert r["relay_resends"] > 0  # the repeats were there, and absorbed
    assert exercises.check("10.3", {"design": "log-tailing", "dedup": "idempotent"}).ok


def test_10_3_no_duplicate_without_dedup_is_luck():
    """The judge's last branch: a run with no relay crash has no duplicate, and the
    judge still says the consumers must be ready for one."""
    res = _run(seed=0, until=20.0, relay_crash_every=0.0, service_crash_every=0.0)
    fb = nb10._judge_exactly_once(res, {"design": "polling", "dedup": "none"})
    assert fb.ok is False and "only by luck" in fb.message
