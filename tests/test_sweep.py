"""simcomm.sweep and simcomm.summarize: many runs, one tidy table, confidence intervals.

Every sweep here is tiny (chain runs of 2 simulated seconds, a handful of
runs) so that the whole file costs a few seconds; the Dask test starts one
LocalCluster of two worker processes for the module.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simcomm
from simcomm import api, sweeps
from simcomm.analysis import stats
from simcomm.cli import main
from simcomm.errors import ParamError
from simcomm.result import SUMMARY_UNITS

#: The small sweep most tests share: 2 depths x 2 request rates x 2 replications.
GRID = {"depth": [1, 2], "request_rate": [5.0, 20.0]}
SMALL = {"replications": 2, "until": 2.0, "progress": False}


def latency_and_hops(res):
    """A metric function: module-level, so it pickles for worker processes."""
    s = res.summary()
    return {"latency_ms": 1000 * s["mean_latency"], "sent_per_request":
            s["messages_sent"] / max(s["requests"], 1)}


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return simcomm.sweep("chain", GRID, **SMALL)


@pytest.fixture(scope="module")
def custom() -> pd.DataFrame:
    """The small sweep with a summary key and a metric function, run here."""
    return simcomm.sweep("chain", GRID, metrics=["p99", latency_and_hops], **SMALL)


@pytest.fixture(scope="module")
def cluster():
    """A Dask cluster of two worker processes (a second or two to start here)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        yield client


@pytest.fixture
def no_runs(monkeypatch):
    """Fail the test if a simulation starts: bad input is refused before the first run."""

    def refuse(*args, **kwargs):
        raise AssertionError("a run started before every setting was checked")

    monkeypatch.setattr(api, "simulate", refuse)


# -- the runs table --------------------------------------------------------------------------


def test_the_package_exports_the_function_and_the_summary():
    assert simcomm.sweep is sweeps.sweep and simcomm.summarize is stats.summarize
    assert {"sweep", "summarize"} <= set(simcomm.__all__)


def test_import_simcomm_stays_free_of_pandas_until_a_sweep_is_asked_for():
    code = ("import sys, simcomm\n"
            "assert 'pandas' not in sys.modules and 'simcomm.sweeps' not in sys.modules\n"
            "simcomm.sweep\n"
            "assert 'simcomm.sweeps' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_row_per_combination_and_replication_in_grid_order(runs):
    assert len(runs) == 8
    assert list(runs.columns[:4]) == ["depth", "request_rate", "replication", "seed"]
    assert list(zip(runs["depth"], runs["request_rate"], runs["replication"],
                    strict=True)) == [(d, r, i) for d in (1, 2) for r in (5.0, 20.0)
                                      for i in (0, 1)]
    res = simcomm.run("chain", seed=int(runs["seed"][0]), until=2.0, trace=False, warn=False)
    numbers = [k for k, v in res.summary().items() if not isinstance(v, str)]
    assert list(runs.columns[4:]) == numbers  # default: every number of the summary
    assert runs["stable"].dtype == bool and runs["requests"].dtype.kind == "i"


def test_attrs_say_how_the_table_was_made(runs):
    assert runs.attrs == {
        "scenario": "chain", "grid": {"depth": [1, 2], "request_rate": [5.0, 20.0]},
        "fixed": {}, "seed": 0, "seeds": list(runs["seed"][:2]), "until": 2.0,
        "replications": 2, "metrics": list(runs.columns[4:]), "trace": False}


def test_a_row_is_the_run_simcomm_run_makes_with_its_seed(runs):
    row = runs.iloc[5]  # depth 2, 5 req/s, replication 1
    res = simcomm.run("chain", seed=int(row["seed"]), until=2.0, trace=False, warn=False,
                      depth=int(row["depth"]), request_rate=float(row["request_rate"]))
    for key, value in res.summary().items():
        if not isinstance(value, str):
            assert row[key] == value or (math.isnan(value) and math.isnan(row[key])), key


def test_seeds_come_from_the_root_by_seedsequence_spawn_keys(runs):
    expected = [int(np.random.SeedSequence(0, spawn_key=(r,)).generate_state(1)[0])
                for r in (0, 1)]
    assert [sweeps.replication_seed(0, r) for r in (0, 1)] == expected
    # common random numbers: every combination's replication r has the same seed
    assert runs.groupby("replication")["seed"].nunique().eq(1).all()
    assert list(runs["seed"][:2]) == expected and len(set(expected)) == 2
    assert sweeps.replication_seed(1, 0) != expected[0]


def test_a_seed_does_not_depend_on_how_many_replications_there_are():
    three = simcomm.sweep("chain", replications=3, seed=7, until=1.0, progress=False,
                          metrics=["requests"])
    one = simcomm.sweep("chain", seed=7, until=1.0, progress=False, metrics=["requests"])
    assert list(three.columns) == ["replication", "seed", "requests"]  # no grid: no fields
    assert three.iloc[:1].equals(one)


def test_given_seeds_are_used_as_they_are():
    df = simcomm.sweep("chain", {"depth": [1, 2]}, seeds=[3, 11], until=1.0, progress=False,
                       metrics=["requests", "p99"])
    assert list(df["seed"]) == [3, 11, 3, 11] and list(df["replication"]) == [0, 1, 0, 1]
    assert df.attrs["seed"] is None and df.attrs["seeds"] == [3, 11]
    res = simcomm.run("chain", seed=11, until=1.0, trace=False, warn=False, depth=2)
    assert df["p99"].iloc[3] == res.summary()["p99"]


def test_metrics_by_name_and_by_function(custom):
    assert list(custom.columns) == ["depth", "request_rate", "replication", "seed", "p99",
                                    "latency_ms", "sent_per_request"]
    assert custom.attrs["metrics"] == ["p99", "latency_ms", "sent_per_request"]
    # a chain of depth d sends 2 (d + 1) messages per request: gateway and services, there
    # and back (requests still in flight at the end have sent fewer)
    hops = custom.groupby("depth")["sent_per_request"].max()
    assert hops[1] <= 4 and 4 < hops[2] <= 6


def test_a_list_of_grids_sweeps_each_one_after_the_other():
    df = simcomm.sweep("chain", [{"depth": [1], "request_rate": [5.0, 10.0]},
                                 {"depth": [3], "request_rate": [5.0]}],
                       until=1.0, progress=False, metrics=["requests"])
    assert list(zip(df["depth"], df["request_rate"], strict=True)) == [
        (1, 5.0), (1, 10.0), (3, 5.0)]
    assert df.attrs["grid"] == {"depth": [1, 3], "request_rate": [5.0, 10.0]}


def test_fixed_settings_apply_to_every_run():
    df = simcomm.sweep("chain", {"depth": [1, 2]}, until=1.0, progress=False,
                       metrics=["requests"], request_rate=40.0)
    assert df.attrs["fixed"] == {"request_rate": 40.0}
    assert (df["requests"] > 20).all()  # about 40 a second, not the default 10


# -- who runs it does not matter -------------------------------------------------------------


def test_local_processes_give_the_same_table(custom):
    parallel = simcomm.sweep("chain", GRID, metrics=["p99", latency_and_hops],
                             executor="processes", workers=2, **SMALL)
    pd.testing.assert_frame_equal(parallel, custom)
    assert parallel.attrs == custom.attrs


def test_any_executor_gives_the_same_table(custom):
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = simcomm.sweep("chain", GRID, metrics=["p99", latency_and_hops],
                                 executor=pool, **SMALL)
    pd.testing.assert_frame_equal(threaded, custom)


def test_a_dask_cluster_gives_the_same_table(custom, cluster):
    """The issue's test: a LocalCluster of two processes, the same seeds, the same table
    (the metric function travels to the workers by pickle, as on a real cluster)."""
    on_dask = simcomm.sweep("chain", GRID, metrics=["p99", latency_and_hops],
                            executor=cluster.get_executor(), **SMALL)
    pd.testing.assert_frame_equal(on_dask, custom)
    assert on_dask.attrs == custom.attrs


def test_the_cli_runs_on_a_dask_scheduler(cluster, capsys):
    """Every number of the summary, through ``--scheduler``: the same table as here."""
    argv = ["sweep", "chain", "--grid", "depth=1,2", "--reps", "2", "--until", "2"]
    assert main(argv) == 0
    here = capsys.readouterr().out
    assert main([*argv, "--scheduler", cluster.scheduler.address]) == 0
    assert capsys.readouterr().out == here


# -- the summary -----------------------------------------------------------------------------


def test_summarize_by_hand():
    """Four replications 1, 2, 3, 4: mean 2.5, s = 1.2910, se = 0.6455, and the 95 %
    interval 2.5 ± t(0.975, 3) · se with t = 3.1824 (Student's table); one run alone
    has no spread (NaN)."""
    runs = pd.DataFrame({"depth": [1, 1, 1, 1, 2], "replication": [0, 1, 2, 3, 0],
                         "seed": [9, 8, 7, 6, 9], "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    runs.attrs = {"grid": {"depth": [1, 2]}, "scenario": "chain"}
    out = simcomm.summarize(runs)
    assert list(out.columns) == ["depth", "metric", "mean", "se", "ci_low", "ci_high", "n"]
    first, alone = out.iloc[0], out.iloc[1]
    assert (first["depth"], first["metric"], first["n"]) == (1, "x", 4)
    assert first["mean"] == 2.5
    assert first["se"] == pytest.approx(math.sqrt(5 / 3) / 2, rel=1e-12)
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((2.5 - half, 2.5 + half),
                                                                rel=1e-12)
    assert alone["mean"] == 5.0 and alone["n"] == 1
    assert math.isnan(alone["se"]) and math.isnan(alone["ci_low"]) and math.isnan(
        alone["ci_high"])
    assert out.attrs == {"grid": {"depth": [1, 2]}, "scenario": "chain", "confidence": 0.95}


def test_summarize_a_sweep_is_long_one_row_per_combination_and_metric(runs):
    out = simcomm.summarize(runs, ["p99", "throughput"], confidence=0.9)
    assert len(out) == 4 * 2 and list(out["metric"][:2]) == ["p99", "throughput"]
    first = runs[(runs["depth"] == 1) & (runs["request_rate"] == 5.0)]["p99"]
    assert out["mean"].iloc[0] == pytest.approx(first.mean())
    assert out["se"].iloc[0] == pytest.approx(first.std(ddof=1) / math.sqrt(2))
    assert out.attrs["confidence"] == 0.9 and out.attrs["scenario"] == "chain"
    assert (out["n"] == 2).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40),
       st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_the_interval_holds_the_mean_and_is_t_times_the_standard_error(values, confidence):
    from scipy.stats import t

    runs = pd.DataFrame({"replication": range(len(values)), "seed": 0, "x": values})
    row = simcomm.summarize(runs, confidence=confidence).iloc[0]
    n = len(values)
    assert row["n"] == n and row["mean"] == pytest.approx(np.mean(values), abs=1e-6)
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    half = t.ppf(0.5 + confidence / 2, n - 1) * np.std(values, ddof=1) / math.sqrt(n)
    assert (row["ci_high"] - row["ci_low"]) / 2 == pytest.approx(half, rel=1e-6, abs=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.floats(-100, 100), st.floats(0.01, 100), st.integers(1, 50))
def test_with_a_constant_spread_the_interval_narrows_as_one_over_root_n(centre, spread, k):
    """Runs at centre ± spread, k of each (n = 2k): the standard error is
    spread · √(n / (n - 1)) / √n, so se · √(n - 1) = spread whatever n is."""
    from scipy.stats import t

    n = 2 * k
    runs = pd.DataFrame({"replication": range(n), "seed": 0,
                         "x": [centre - spread, centre + spread] * k})
    row = simcomm.summarize(runs).iloc[0]
    assert row["se"] * math.sqrt(n - 1) == pytest.approx(spread, rel=1e-9)
    assert (row["ci_high"] - row["ci_low"]) / 2 == pytest.approx(
        t.ppf(0.975, n - 1) * spread / math.sqrt(n - 1), rel=1e-9)


# -- bad input is refused before the first run -------------------------------------------------


def _unpicklable(res):
    return {}


@pytest.mark.parametrize(("args", "kwargs", "field"), [
    (("chian", GRID), {}, "scenario"),
    (("chain", {"dept": [1, 2]}), {}, "dept"),
    (("chain", {"depth": [1, 0]}), {}, "depth"),
    (("chain", {"depth": [1, "two"]}), {}, "depth"),
    (("chain", {"depth": 3}), {}, "depth"),
    (("chain", {"depth": "123"}), {}, "depth"),
    (("chain", {"depth": []}), {}, "depth"),
    (("chain", "depth"), {}, "grid"),
    (("chain", [{"depth": [1]}, {"request_rate": [5.0]}]), {}, "grid"),
    (("chain", {"depth": [1]}), {"depth": 2}, "depth"),
    (("chain", {"depth": [1]}), {"servce_time": 0.1}, "servce_time"),
    (("chain", GRID), {"metrics": ["p98"]}, "metrics"),
    (("chain", GRID), {"metrics": [3]}, "metrics"),
    (("chain", GRID), {"metrics": []}, "metrics"),
    (("chain", GRID), {"metrics": ["p99", "p99"]}, "metrics"),
    (("chain", GRID), {"metrics": ["depth"]}, "metrics"),
    (("chain", GRID), {"replications": 0}, "replications"),
    (("chain", GRID), {"replications": 2.5}, "replications"),
    (("chain", GRID), {"replications": True}, "replications"),
    (("chain", GRID), {"seed": -1}, "seed"),
    (("chain", GRID), {"seeds": []}, "seeds"),
    (("chain", GRID), {"seeds": [1, -2]}, "seed"),
    (("chain", GRID), {"seeds": [1, 2], "replications": 3}, "replications"),
    (("chain", GRID), {"until": 0}, "until"),
    (("chain", GRID), {"until": 1e300}, "until"),  # over the memory budget
    (("chain", GRID), {"trace": "yes"}, "trace"),
    (("chain", GRID), {"executor": "threads"}, "executor"),
    (("chain", GRID), {"executor": 4}, "executor"),
    (("chain", GRID), {"workers": 2}, "workers"),
    (("chain", GRID), {"executor": "processes", "workers": 0}, "workers"),
    (("chain", GRID), {"progress": "yes"}, "progress"),
    (("chain", GRID), {"executor": "processes", "metrics": [lambda res: {}]}, "metrics"),
])
def test_bad_input_is_refused_before_any_run(no_runs, args, kwargs, field):
    with pytest.raises(ParamError) as info:
        simcomm.sweep(*args, **{"progress": False, **kwargs})
    assert info.value.field == field


def test_an_unknown_metric_lists_the_summary_keys(no_runs):
    with pytest.raises(ParamError, match="did you mean 'p99'") as info:
        simcomm.sweep("chain", metrics=["p98"])
    assert all(key in info.value.allowed for key in SUMMARY_UNITS)


def test_a_key_this_scenario_lacks_stops_the_sweep_after_its_first_run(monkeypatch):
    """'lost' is a summary key of runs with records, not of chain's: the first run
    shows it, and the sweep stops there naming the keys chain has."""
    calls = []
    real = api.simulate
    monkeypatch.setattr(api, "simulate", lambda *a, **k: calls.append(a) or real(*a, **k))
    with pytest.raises(ParamError, match="keys of chain's summary: requests") as info:
        simcomm.sweep("chain", GRID, metrics=["lost"], until=1.0, progress=False)
    assert info.value.field == "metrics" and len(calls) == 1


@pytest.mark.parametrize("metric", [lambda res: 3.0, lambda res: {"depth": 1.0},
                                    lambda res: {"seed": 1.0}, lambda res: {1: 1.0}])
def test_a_metric_function_must_return_a_mapping_of_new_names(metric, monkeypatch):
    calls = []
    real = api.simulate
    monkeypatch.setattr(api, "simulate", lambda *a, **k: calls.append(a) or real(*a, **k))
    with pytest.raises(ParamError) as info:
        simcomm.sweep("chain", {"depth": [1, 2]}, metrics=[metric], until=1.0,
                      progress=False)
    assert info.value.field == "metrics" and len(calls) == 1


# -- the progress bar ------------------------------------------------------------------------


def test_a_progress_bar_counts_the_runs_without_a_monitor_thread(capsys):
    from tqdm.std import TMonitor

    before = {t for t in threading.enumerate() if isinstance(t, TMonitor)}
    simcomm.sweep("chain", {"depth": [1, 2]}, until=1.0, metrics=["requests"], progress=True)
    err = capsys.readouterr().err
    assert "sweep chain" in err and "0/2" in err and "run" in err
    assert {t for t in threading.enumerate() if isinstance(t, TMonitor)} == before
    assert api.progress_bar_class().monitor_interval == 0


@pytest.mark.parametrize("progress", [False, None])
def test_no_bar_when_asked_for_none_or_for_a_short_sweep(capsys, progress):
    simcomm.sweep("chain", {"depth": [1, 2]}, until=1.0, metrics=["requests"],
                  progress=progress)
    assert capsys.readouterr().err == ""
