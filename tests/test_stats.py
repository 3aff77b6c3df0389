"""simcomm.analysis.stats.summarize: a sweep's runs table → mean, se and Student-t CI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from simcomm.analysis.stats import grid_fields, summarize, t_interval
from simcomm.errors import ParamError


def runs_table() -> pd.DataFrame:
    """Two parameters (depth 2 listed before 1, rate), three replications each."""
    rows = []
    rng = np.random.default_rng(4)
    for depth in (2, 1):
        for rate in ("low", "high"):
            for r in range(3):
                rows.append({"depth": depth, "rate": rate, "replication": r, "seed": 100 + r,
                             "mean_latency": 0.05 * depth + rng.normal(0, 0.01),
                             "stable": bool(r < 2), "bottleneck": "order-1"})
    return pd.DataFrame(rows)


def test_mean_se_and_interval_are_student_t_per_combination():
    runs = runs_table()
    out = summarize(runs, ["mean_latency"])
    assert list(out.columns) == ["depth", "rate", "metric", "mean", "se", "ci_low", "ci_high",
                                 "n"]
    for _, row in out.iterrows():
        v = runs.query("depth == @row.depth and rate == @row.rate")["mean_latency"]
        lo, hi = sps.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=sps.sem(v))
        assert row["mean"] == pytest.approx(v.mean())
        assert row["se"] == pytest.approx(v.std(ddof=1) / math.sqrt(3))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
        assert row["n"] == 3
    # 3 runs: t(0.975, 2) = 4.30, far wider than the normal 1.96
    assert (out["ci_high"] - out["mean"]).to_numpy() == pytest.approx(4.3027 * out["se"],
                                                                      rel=1e-4)


def test_one_row_per_combination_and_metric_in_the_grid_order():
    out = summarize(runs_table())
    # combinations as the sweep ran them (depth 2 first), metrics in column order
    assert list(zip(out["depth"], out["rate"], out["metric"], strict=True)) == [
        (2, "low", "mean_latency"), (2, "low", "stable"), (2, "high", "mean_latency"),
        (2, "high", "stable"), (1, "low", "mean_latency"), (1, "low", "stable"),
        (1, "high", "mean_latency"), (1, "high", "stable")]
    # a flag's mean is the share of runs where it held; text columns are no metrics
    assert out.loc[out["metric"] == "stable", "mean"].to_numpy() == pytest.approx([2 / 3] * 4)


def test_attrs_name_the_grid_and_carry_the_confidence():
    runs = runs_table()
    runs.attrs.update(grid={"depth": [2, 1]}, scenario="chain")
    assert grid_fields(runs) == ["depth"]
    out = summarize(runs.drop(columns="rate"), ["mean_latency"], confidence=0.9)
    assert list(out["depth"]) == [2, 1]
    assert out.attrs["scenario"] == "chain" and out.attrs["confidence"] == 0.9
    assert out["n"].tolist() == [6, 6]


def test_one_run_has_no_interval_and_equal_runs_a_zero_width_one():
    runs = pd.DataFrame({"x": [1, 2, 2], "replication": [0, 0, 1], "seed": [1, 1, 2],
                         "m": [5.0, 3.0, 3.0]})
    out = summarize(runs)
    one, same = out.iloc[0], out.iloc[1]
    assert one["n"] == 1 and math.isnan(one["se"]) and math.isnan(one["ci_low"])
    assert same["se"] == 0 and same["ci_low"] == same["ci_high"] == 3.0


def test_nan_values_are_left_out_of_n():
    runs = pd.DataFrame({"x": [1, 1, 1], "replication": [0, 1, 2], "seed": [1, 2, 3],
                         "m": [1.0, np.nan, 3.0]})
    row = summarize(runs).iloc[0]
    assert row["n"] == 2 and row["mean"] == 2.0


def test_no_grid_is_one_combination():
    runs = pd.DataFrame({"replication": [0, 1], "seed": [1, 2], "m": [1.0, 3.0]})
    out = summarize(runs)
    assert list(out.columns) == ["metric", "mean", "se", "ci_low", "ci_high", "n"]
    assert out["mean"].tolist() == [2.0]


def test_t_interval_matches_scipy():
    lo, hi = t_interval(np.array([10.0]), np.array([2.0]), np.array([5]), 0.99)
    assert (lo[0], hi[0]) == pytest.approx(sps.t.interval(0.99, 4, loc=10, scale=2))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"metrics": ["nope"]}, "metrics"), ({"metrics": ["bottleneck"]}, "metrics"),
    ({"confidence": 1.0}, "confidence"), ({"confidence": True}, "confidence"),
    ({"by": ["nope"]}, "by")])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ParamError) as err:
        summarize(runs_table(), **kwargs)
    assert err.value.field == field


def test_not_a_table_is_refused():
    with pytest.raises(ParamError, match="runs"):
        summarize([1, 2, 3])  # type: ignore[arg-type]
