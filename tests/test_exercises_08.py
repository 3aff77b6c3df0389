"""Notebook 08's exercises: their premises hold against the model, and their feedback is right.

tests/test_exercises.py runs every exercise's solution, its typical wrong
answers (:data:`tests.test_exercises.WRONG`) and its blanks; here each
exercise's premises are held against the package and runs: the partition
08.1 asks for is where the run puts the order, the slips it names are other
numbers; the settings 08.2's judge passes keep order and keep up on more
seeds, and each wrong answer fails for the reason it is told; the crash of
08.3 is noticed when its answer says, with either protocol, on several
seeds.
"""

from __future__ import annotations

import warnings

import pytest

import simcomm
from simcomm import exercises
from simcomm.errors import OverloadWarning
from simcomm.exercises import nb08_ordering as nb08
from simcomm.messaging import murmur2, partition_for_key


def _run(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverloadWarning)
        return simcomm.run(*args, progress=False, **kwargs)


# -- 08.1 ------------------------------------------------------------------------------

def test_08_1_the_order_has_a_negative_hash_and_every_slip_is_another_number():
    assert murmur2(str(nb08.ORDER).encode()) < 0
    right = nb08.where_it_goes()
    slips = [nb08._with_abs(), nb08._python_mod(), nb08._java_mod()]
    assert len({right, *slips}) == 4
    assert nb08._java_mod() < 0


def test_08_1_the_run_puts_the_order_where_the_answer_says():
    res = _run("order-lifecycle", seed=1, channel="sharded", until=10)
    rec = res.records.query(f"event == 'append' and key == {nb08.ORDER}")
    assert len(rec) == 3
    assert set(rec["partition"]) == {exercises.get("08.1").solution()}
    assert set(rec["partition"]) == {partition_for_key(str(nb08.ORDER), 6)}


def test_08_1_the_explanation_gives_the_steps():
    fb = exercises.check("08.1", nb08.where_it_goes())
    h = murmur2(str(nb08.ORDER).encode())
    assert fb.ok and f"{h & 0x7FFFFFFF:,}" in fb.message and f"{h:,}" in fb.message


# -- 08.2 ------------------------------------------------------------------------------

RIGHT_08_2 = [{"channel": "sharded", "key": "order_id", "partitions": 6, "consumers": 6},
              {"channel": "sharded", "key": "order_id", "partitions": 8, "consumers": 4},
              {"channel": "sharded", "key": "customer_id", "partitions": 6, "consumers": 6},
              {"channel": "sharded", "partitions": 12, "consumers": 12}]


@pytest.mark.parametrize("answer", RIGHT_08_2)
def test_08_2_right_answers_pass(answer):
    fb = exercises.check("08.2", answer)
    assert fb.ok is True, fb
    assert "0 of the" in fb.message


@pytest.mark.parametrize("seed", [1, 2])
def test_08_2_the_solution_keeps_order_and_up_on_other_seeds(seed):
    res = _run("order-lifecycle", seed=seed, trace=True, **nb08.BUSY,
               **exercises.get("08.2").solution())
    rep = nb08.keep_report(res)
    assert rep["reordered"] == 0
    assert rep["pending"] <= nb08.BEHIND * rep["produced"]
    assert rep["owners"] == 6


@pytest.mark.parametrize("seed", [1, 2])
def test_08_2_too_few_partitions_fall_behind_on_other_seeds(seed):
    """The premise of the idle-members feedback: 3 partitions cap 8 instances at 3."""
    res = _run("order-lifecycle", seed=seed, trace=True, **nb08.BUSY, channel="sharded",
               partitions=3, consumers=8)
    rep = nb08.keep_report(res)
    assert rep["owners"] == 3 and rep["reordered"] == 0
    assert rep["pending"] > nb08.BEHIND * rep["produced"]


def test_08_2_an_uneven_split_is_named():
    """Five members on six partitions: one reads two, a third of the events, at the
    limit of one instance -- the judge names it, with its share."""
    check = exercises.get("08.2").check
    rep = nb08.keep_report(check.run({"channel": "sharded", "consumers": 5}))
    assert rep["busiest_partitions"] == 2 and rep["owners"] == 5
    assert rep["busiest"] * 3 * nb08.BUSY["order_rate"] >= 0.9 * nb08._per_instance()


def test_08_2_the_question_states_its_numbers():
    q = exercises.get("08.2").question
    assert f"order_rate={nb08.BUSY['order_rate']:g}" in q
    assert f"{nb08._per_instance():g} a second" in q
    assert f"{nb08.BEHIND * 100:g} %" in q


# -- 08.3 ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_08_3_the_crash_is_noticed_within_the_tolerance(seed, assignor):
    res = _run("rebalance", seed=seed, assignor=assignor, trace=True)
    r = res.rebalances().query("why == 'session_timeout'")
    assert len(r) == 1
    start = float(r["start"].iloc[0])
    assert exercises.check("08.3", start).ok is True
    # a heartbeat interval before the answer at most: the last heartbeat came before
    # the crash
    assert nb08.noticed() - nb08._heartbeat() <= start <= nb08.noticed() + 1e-6


def test_08_3_the_question_and_tolerance_come_from_the_model():
    from simcomm.scenarios import base

    p = base.make_params(base.get("rebalance"), {})
    assert nb08.noticed() == p.crash_at + p.session_timeout
    assert exercises.get("08.3").check.tolerance() == f"±{nb08._heartbeat():g} s"
    assert f"crashes at {p.crash_at:g} s" in exercises.get("08.3").question
