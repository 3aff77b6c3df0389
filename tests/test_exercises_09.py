"""Notebook 09's exercises: their premises hold against the model, and their feedback is right.

tests/test_exercises.py runs every exercise's solution, its typical wrong
answers (:data:`tests.test_exercises.WRONG`) and its blanks; here each
exercise's premises are held against runs of ``delivery-guarantees`` on two
seeds (short runs: 20 s still holds every fault and its aftermath): what
09.1's options say each change does to the retries' duplicates and reorders,
what 09.2's options say each commit point does at a consumer crash, and that
09.3's judge passes every setting with exactly-once effects and fails each
other one naming the cause of what went wrong.
"""

from __future__ import annotations

import warnings

import pytest

import simcomm
from simcomm import exercises
from simcomm.errors import OverloadWarning
from simcomm.exercises import nb09_delivery as nb09
from simcomm.scenarios import base

SEEDS = (1, 2)
UNTIL = 20.0


def _run(seed: int, until: float | None = UNTIL, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverloadWarning)
        return simcomm.run("delivery-guarantees", seed=seed, until=until, progress=False,
                           **settings)


def _anomalies(res) -> dict[str, int]:
    s = res.summary()
    return {k: int(s[k]) for k in ("lost", "duplicated", "reordered", "pending",
                                   "records_produced")}


# -- 09.1 ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_09_1_only_the_idempotent_producer_removes_both(seed):
    """The question's trouble is there (duplicates and reorders); idempotence removes
    both; the consumer's dedup removes the duplicates, not the reorders."""
    base = _anomalies(_run(seed, **nb09.RETRY_FIXED))
    assert base["duplicated"] > 0 and base["reordered"] > 0 and base["lost"] == 0
    idem = _anomalies(_run(seed, **{**nb09.RETRY_FIXED, **nb09.RETRY_OPTIONS["idempotence"]}))
    assert idem["duplicated"] == idem["reordered"] == idem["lost"] == 0
    dedup = _anomalies(_run(seed, **{**nb09.RETRY_FIXED, **nb09.RETRY_OPTIONS["dedup"]}))
    assert dedup["duplicated"] == 0 and dedup["reordered"] > 0


def test_09_1_a_long_timeout_stalls_the_partitions():
    """What the 'timeout' option's feedback says: in the 30 s run, nearly every event is
    still waiting at the end (a lost request holds its partition for 30 s)."""
    res = _anomalies(_run(1, until=None, **{**nb09.RETRY_FIXED,
                                            **nb09.RETRY_OPTIONS["timeout"]}))
    assert base.get("delivery-guarantees").until == 30.0
    assert res["pending"] > 0.8 * res["records_produced"]
    assert nb09.RETRY_OPTIONS["timeout"]["request_timeout"] == 30.0  # Kafka's default


def test_09_1_the_question_quotes_the_models_numbers():
    q = exercises.get("09.1").question
    assert f"{nb09._params().produce_loss * 100:g} %" in q
    assert f"up to {nb09._in_flight()} requests in flight" in q
    assert nb09._in_flight() == 5 == nb09._deduped()  # Kafka's defaults


# -- 09.2 ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_09_2_each_commit_point_does_what_its_feedback_says(seed):
    got = {name: _anomalies(_run(seed, **{**nb09.COMMIT_FIXED, **how}))
           for name, how in nb09.COMMIT_OPTIONS.items()}
    assert got["before"]["lost"] > 0 and got["before"]["duplicated"] == 0
    assert got["after"]["lost"] == 0 and got["after"]["duplicated"] > 0
    # the crash comes before the first auto-commit: the same repeats as commit after
    assert got["auto"]["duplicated"] == got["after"]["duplicated"]
    assert got["auto"]["lost"] == 0
    assert got["dedup"]["lost"] == got["dedup"]["duplicated"] == 0
    assert exercises.get("09.2").solution() == "dedup"


def test_09_2_the_auto_commit_interval_is_kafkas():
    assert nb09._auto_commit() == 5.0
    assert "commit every 5 s" in exercises.get("09.2").question


# -- 09.3 ------------------------------------------------------------------------------

EXACT = [{"acks": "all", "idempotence": True, "commit": "after", "dedup": "processed_ids"},
         {"acks": "all", "idempotence": True, "commit": "after", "dedup": "idempotent"},
         {"acks": "all", "idempotence": True, "commit": "auto", "dedup": "processed_ids"}]


@pytest.mark.parametrize("answer", EXACT, ids=lambda a: f"{a['commit']}-{a['dedup']}")
def test_09_3_every_exactly_once_setting_passes(answer):
    fb = exercises.check("09.3", answer)
    assert fb.ok is True, fb
    assert "0 lost, 0 applied twice, 0 reordered" in fb.message


@pytest.mark.parametrize("answer", EXACT[:1])
def test_09_3_the_solution_is_exactly_once_on_another_seed(answer):
    res = _run(2, until=None, trace=True, **answer)
    r = nb09.exact_report(res)
    assert r["lost"] == r["duplicated"] == r["reordered"] == 0


def test_09_3_a_wrong_answer_names_every_cause_with_its_fix():
    answer = {"acks": "1", "idempotence": False, "commit": "before", "dedup": "none"}
    fb = exercises.check("09.3", answer)
    assert fb.ok is False
    rep = nb09.exact_report(exercises.get("09.3").check.run(answer))
    assert rep["lost"] > 0 and rep["duplicated"] > 0
    for (_anomaly, cause), n in rep["causes"].items():
        assert cause in nb09.CAUSE_FIX
        assert f"{cause} -- {nb09.CAUSE_FIX[cause]}" in fb.message
        assert str(n) in fb.message
