"""simcomm.delivery_matrix and ``simcomm delivery-matrix``: Kafka's delivery settings
against the losses, duplicates and reorders they let through.

Each test runs a small corner of the matrix (one seed, 15 s runs: the leader
crashes at 4 s and fails over at 13 s); the full default matrix (16 settings ×
3 seeds × 20 s) is what the CLI prints.
"""

from __future__ import annotations

import functools
import json
import math

import pytest

import simcomm
from simcomm import sweeps
from simcomm.cli import main
from simcomm.errors import ParamError
from simcomm.sweeps import (
    COMMIT_POINTS,
    DEDUPS,
    MATRIX_COLUMNS,
    MATRIX_UNTIL,
    PRODUCER_SETTINGS,
    delivery_matrix,
)

SMALL = {"seeds": (1,), "until": 15.0}


@pytest.fixture(scope="module")
def corner():
    """acks=1 and the idempotent acks=all, each with both commit points and both
    dedups: 8 runs."""
    return delivery_matrix(producers=(("1", False), ("all", True)), **SMALL)


def cell(df, acks, idempotence, commit, dedup):
    row = df[(df["acks"] == acks) & (df["idempotence"] == idempotence)
             & (df["commit"] == commit) & (df["dedup"] == dedup)]
    assert len(row) == 1
    return row.iloc[0]


def test_the_default_matrix_is_kafkas_settings():
    """acks 0 / 1 / all, idempotence only with acks=all (as Kafka), commit before
    or after processing, no dedup or a processed-ids table: 16 rows."""
    assert PRODUCER_SETTINGS == (("0", False), ("1", False), ("all", False), ("all", True))
    assert COMMIT_POINTS == ("before", "after") and DEDUPS == ("none", "processed_ids")
    assert MATRIX_UNTIL == 20.0
    assert "delivery_matrix" in simcomm.__all__


def test_one_row_per_setting_in_order(corner):
    assert list(corner.columns) == list(MATRIX_COLUMNS)
    assert list(zip(corner["acks"], corner["idempotence"], corner["commit"],
                    corner["dedup"], strict=True)) == [
        (a, i, c, d) for a, i in (("1", False), ("all", True)) for c in COMMIT_POINTS
        for d in DEDUPS]
    assert (corner["runs"] == 1).all()
    assert (corner["records"] > 500).all()
    # one seed: no standard error
    assert corner[["lost_se", "duplicated_se", "reordered_se"]].isna().all().all()
    assert corner.attrs["scenario"] == "delivery-guarantees"
    assert corner.attrs["seeds"] == [1] and corner.attrs["until"] == 15.0


def test_each_number_has_its_explanation(corner):
    """acks=1 loses what the isolated leader acknowledged, whatever the consumer
    does; the idempotent producer with a commit after processing and a
    processed-ids table is exactly once; committing before loses the crashed
    consumer's batch and never duplicates; committing after duplicates it,
    unless the consumer deduplicates."""
    for commit in COMMIT_POINTS:
        for dedup in DEDUPS:
            assert cell(corner, "1", False, commit, dedup)["lost_per_10k"] > 0
    exactly_once = cell(corner, "all", True, "after", "processed_ids")
    assert exactly_once["lost_per_10k"] == exactly_once["duplicated_per_10k"] == 0
    assert exactly_once["reordered_per_10k"] == 0
    before = cell(corner, "all", True, "before", "none")
    assert before["lost_per_10k"] > 0 and before["duplicated_per_10k"] == 0
    after = cell(corner, "all", True, "after", "none")
    assert after["lost_per_10k"] == 0 and after["duplicated_per_10k"] > 0
    # acks=1 without idempotence: its retries duplicate; dedup removes them all
    assert cell(corner, "1", False, "after", "none")["duplicated_per_10k"] > 0
    assert cell(corner, "1", False, "after", "processed_ids")["duplicated_per_10k"] == 0


def test_retries_without_idempotence_duplicate_and_reorder():
    """acks=all without idempotence: no loss, but every retried batch that had
    been appended is there twice, and a retried batch can land behind a later one."""
    df = delivery_matrix(producers=(("all", False),), commits=("after",), dedups=("none",),
                         **SMALL)
    row = df.iloc[0]
    assert row["lost_per_10k"] == 0
    assert row["duplicated_per_10k"] > 100


def test_several_seeds_give_means_and_standard_errors():
    df = delivery_matrix(seeds=(1, 2), until=15.0, producers=(("all", True),),
                         commits=("before",), dedups=("none",))
    row = df.iloc[0]
    assert row["runs"] == 2
    assert math.isfinite(row["lost_se"]) and row["lost_se"] >= 0
    singles = [delivery_matrix(seeds=(s,), until=15.0, producers=(("all", True),),
                               commits=("before",), dedups=("none",)).iloc[0]
               for s in (1, 2)]
    assert row["lost_per_10k"] == pytest.approx(
        (singles[0]["lost_per_10k"] + singles[1]["lost_per_10k"]) / 2)
    assert row["lost_se"] == pytest.approx(
        abs(singles[0]["lost_per_10k"] - singles[1]["lost_per_10k"]) / 2)


def test_an_executor_gives_the_same_table():
    """Runs handed to an executor (threads here; processes in a sweep) give the
    table run one by one gives: a run depends only on its settings and seed."""
    from concurrent.futures import ThreadPoolExecutor

    small = {"seeds": (1, 2), "until": 8.0, "producers": (("all", True),),
             "commits": ("before",), "dedups": ("none",), "crash_leader": False}
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = delivery_matrix(executor=pool, **small)
    assert parallel.equals(delivery_matrix(**small))


def test_records_sets_the_rate_and_the_top_level_name_runs_the_same():
    df = simcomm.delivery_matrix(seeds=(1,), until=15.0, records=600,
                                 producers=(("all", True),), commits=("after",),
                                 dedups=("processed_ids",))
    assert 450 < df.iloc[0]["records"] < 750  # 600 expected, Poisson
    assert df.attrs["params"]["order_rate"] == pytest.approx(600 / 3 / 15.0)


# -- everything is checked before the first run -------------------------------------------------

@pytest.fixture
def no_runs(monkeypatch):
    """Fail the test if a simulation starts."""
    import simcomm.api

    def refuse(*args, **kwargs):
        raise AssertionError("a run started before every setting was checked")

    monkeypatch.setattr(simcomm.api, "simulate", refuse)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"seeds": ()}, "seeds"),
    ({"seeds": 3}, "seeds"),
    ({"seeds": (1, -1)}, "seed"),
    ({"until": 0.0}, "until"),
    ({"records": 2}, "records"),
    ({"records": 10.5}, "records"),
    ({"producers": ()}, "producers"),
    ({"producers": ("all",)}, "producers"),
    ({"producers": (("1", True),)}, "idempotence"),  # Kafka: idempotence needs acks=all
    ({"producers": (("2", False),)}, "acks"),
    ({"commits": ("during",)}, "commit"),
    ({"commits": "after"}, "commits"),
    ({"dedups": ()}, "dedups"),
    ({"acks": "1"}, "acks"),
    ({"dedup": "none"}, "dedup"),
    ({"partitions": 0}, "partitions"),
    ({"no_such_knob": 1}, "no_such_knob"),
])
def test_bad_settings_are_refused_before_any_run(no_runs, kwargs, field):
    with pytest.raises(ParamError) as info:
        delivery_matrix(**kwargs)
    assert info.value.field == field


# -- the command line ---------------------------------------------------------------------------

@pytest.fixture
def small_cli(monkeypatch):
    """The CLI's matrix with two settings only (the flags still decide seeds,
    until and records)."""
    real = sweeps.delivery_matrix
    monkeypatch.setattr(sweeps, "delivery_matrix", functools.partial(
        real, producers=(("all", True),), dedups=("none",)))


def test_the_cli_prints_the_matrix_as_json(small_cli, capsys):
    assert main(["delivery-matrix", "--seeds", "1", "--until", "15", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["acks"], r["idempotence"], r["commit"], r["dedup"]) for r in rows] == [
        ("all", True, "before", "none"), ("all", True, "after", "none")]
    assert set(rows[0]) == set(MATRIX_COLUMNS)
    assert rows[0]["lost_se"] is None  # NaN with one seed
    assert rows[0]["lost_per_10k"] > 0 and rows[1]["duplicated_per_10k"] > 0


def test_the_cli_prints_the_matrix_as_a_table(small_cli, capsys):
    assert main(["delivery-matrix", "--seeds", "2", "--until", "15", "--records", "600"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("delivery-guarantees: seeds 1..2, until=15s")
    assert out[1].split() == ["acks", "idempotence", "commit", "dedup", "records", "lost",
                              "duplicated", "reordered"]
    assert out[2].split()[:4] == ["all", "on", "before", "none"]
    assert "±" in out[2]
    assert len(out) == 4


@pytest.mark.parametrize("argv", [["delivery-matrix", "--seeds", "0"],
                                  ["delivery-matrix", "--seeds", "two"],
                                  ["delivery-matrix", "--until", "soon"],
                                  ["delivery-matrix", "--records", "-5"]])
def test_the_cli_refuses_bad_flags_in_one_line(no_runs, argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("simcomm") and len(err.strip().splitlines()) == 1


def test_the_cli_turns_a_refused_run_into_one_line(no_runs, capsys):
    assert main(["delivery-matrix", "--until", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simcomm: error: until=0") and len(err.strip().splitlines()) == 1


def test_the_help_lists_the_verb(capsys):
    assert main([]) == 0
    assert "delivery-matrix" in capsys.readouterr().out
