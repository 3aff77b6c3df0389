"""simcomm.viz.sweeps: the figures of a sweep draw exactly the summary's numbers.

Tables are built by hand (a sweep's layout: parameters, ``replication``,
``seed``, metrics), so every number drawn can be held against
:func:`simcomm.analysis.stats.summarize`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from simcomm import viz
from simcomm.analysis.stats import summarize
from simcomm.errors import ParamError
from simcomm.viz import style, sweeps


def chain_runs(reps: int = 5) -> pd.DataFrame:
    """A runs table of ``chain`` over depth 1-4 and three request rates."""
    rng = np.random.default_rng(0)
    rows = []
    for depth in (1, 2, 3, 4):
        for rate in (5, 10, 20):
            for r in range(reps):
                lat = 0.025 * depth * (1 + rate / 40) + rng.normal(0, 0.002 * depth)
                rows.append({"depth": depth, "request_rate": rate, "replication": r,
                             "seed": 100 + r, "mean_latency": lat,
                             "availability": 0.995 ** depth + rng.normal(0, 0.001),
                             "bottleneck": "order-1"})
    runs = pd.DataFrame(rows)
    runs.attrs.update(scenario="chain", grid={"depth": [1, 2, 3, 4], "request_rate": [5, 10, 20]},
                      replications=reps)
    return runs


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return chain_runs()


def _gid(fig: Figure, gid: str, kind: type = object) -> list:
    return [a for ax in fig.axes for a in ax.get_children()
            if isinstance(a, kind) and a.get_gid() == gid]


def _one(fig: Figure, gid: str, kind: type = object):
    found = _gid(fig, gid, kind)
    assert len(found) == 1, (gid, found)
    return found[0]


def _band_points(band: PolyCollection) -> set[tuple[float, float]]:
    return {(round(float(x), 12), round(float(y), 12))
            for path in band.get_paths() for x, y in path.vertices}


def _expected_points(s: pd.DataFrame, x: str) -> set[tuple[float, float]]:
    return {(round(float(a), 12), round(float(b), 12)) for a, lo, hi in
            zip(s[x], s["ci_low"], s["ci_high"], strict=True) for b in (lo, hi)}


# -- sweep_lines ---------------------------------------------------------------------
def test_one_line_and_one_band_per_hue_on_the_summary_numbers(runs):
    fig = viz.sweep_lines(runs, "depth", "mean_latency", hue="request_rate")
    summary = summarize(runs, ["mean_latency"])
    lines = [a for a in fig.axes[0].get_lines() if (a.get_gid() or "").startswith("mean:")]
    assert [a.get_gid() for a in lines] == ["mean:5", "mean:10", "mean:20"]
    for rate in (5, 10, 20):
        s = summary[summary["request_rate"] == rate].sort_values("depth")
        line = _one(fig, f"mean:{rate}", Line2D)
        assert list(line.get_xdata()) == [1, 2, 3, 4]
        assert line.get_ydata() == pytest.approx(s["mean"].to_numpy())
        assert line.get_marker() != "None"  # a marker at each value run
        band = _one(fig, f"ci:{rate}", PolyCollection)
        # the band's corners are the summary's interval bounds, nothing else
        assert _band_points(band) == _expected_points(s, "depth")
        assert tuple(band.get_facecolor()[0][:3]) == pytest.approx(to_rgb(line.get_color()))


def test_lines_differ_in_colour_and_marker(runs):
    fig = viz.sweep_lines(runs, "depth", "mean_latency", hue="request_rate")
    lines = [_one(fig, f"mean:{r}", Line2D) for r in (5, 10, 20)]
    assert len({a.get_color() for a in lines}) == 3
    assert len({a.get_marker() for a in lines}) == 3
    assert {a.get_color() for a in lines} <= set(style.SERIES_COLORS)


def test_labels_carry_units_and_the_legend_is_titled_by_hue(runs):
    fig = viz.sweep_lines(runs, "depth", "mean_latency", hue="request_rate")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "depth (services)"  # the chain scenario's unit for depth
    assert ax.get_ylabel() == "mean_latency (s)"
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "request_rate (req/s)"
    assert [t.get_text() for t in legend.get_texts()] == ["5", "10", "20"]
    small = ax.get_title(loc="right")
    assert "5 runs per point" in small and "95 % confidence interval (Student t)" in small
    assert ax.get_title(loc="left") == "chain: mean_latency against depth"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]


def test_a_summary_draws_the_same_figure_as_its_runs(runs):
    summary = summarize(runs)
    a = viz.sweep_lines(runs, "depth", "mean_latency", hue="request_rate")
    b = viz.sweep_lines(summary, "depth", "mean_latency", hue="request_rate")
    for rate in (5, 10, 20):
        assert _band_points(_one(a, f"ci:{rate}")) == _band_points(_one(b, f"ci:{rate}"))
        assert list(_one(a, f"mean:{rate}").get_ydata()) == list(
            _one(b, f"mean:{rate}").get_ydata())
    assert b.axes[0].get_xlabel() == "depth (services)"  # the attrs travel


def test_another_confidence_recomputes_the_summary_bounds(runs):
    summary = summarize(runs)  # at 95 %
    fig = viz.sweep_lines(summary, "depth", "mean_latency", hue="request_rate",
                          confidence=0.8)
    s80 = summarize(runs, ["mean_latency"], confidence=0.8)
    s = s80[s80["request_rate"] == 10]
    assert _band_points(_one(fig, "ci:10")) == _expected_points(s, "depth")
    assert "80 % confidence" in fig.axes[0].get_title(loc="right")


def test_no_hue_one_line_and_no_legend(runs):
    fig = viz.sweep_lines(runs[runs["request_rate"] == 10], "depth", "mean_latency")
    assert _one(fig, "mean", Line2D).get_color() == style.SERIES_COLORS[0]
    _one(fig, "ci", PolyCollection)
    assert fig.axes[0].get_legend() is None


def test_a_hue_with_one_value_is_fine(runs):
    fig = viz.sweep_lines(runs[runs["request_rate"] == 10], "depth", "mean_latency",
                          hue="request_rate")
    _one(fig, "mean:10", Line2D)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["10"]


def test_fractions_are_shown_as_percentages(runs):
    fig = viz.sweep_lines(runs[runs["request_rate"] == 5], "depth", "availability")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "availability (%)"
    assert ax.yaxis.get_major_formatter()(0.995, 0).endswith(" %")
    assert ax.get_yscale() == "linear"


def test_categories_are_points_with_interval_bars_in_the_sweeps_order(runs):
    kinds = {5: "none", 10: "constant", 20: "exponential"}
    cat = runs.assign(backoff=runs["request_rate"].map(kinds)).drop(columns="request_rate")
    cat = cat[["backoff", "depth", "replication", "seed", "mean_latency"]]
    cat.attrs = {}
    fig = viz.sweep_lines(cat, "backoff", "mean_latency", hue="depth")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none", "constant",
                                                            "exponential"]
    summary = summarize(cat, ["mean_latency"])
    for depth in (1, 4):
        line = _one(fig, f"mean:{depth}", Line2D)
        assert line.get_linestyle() == "None"  # nothing joins categories
        s = summary[summary["depth"] == depth]
        assert line.get_ydata() == pytest.approx(s["mean"].to_numpy())
        bars = _one(fig, f"ci:{depth}", LineCollection)
        lows = [seg[0][1] for seg in bars.get_segments()]
        highs = [seg[1][1] for seg in bars.get_segments()]
        assert lows == pytest.approx(s["ci_low"].to_numpy())
        assert highs == pytest.approx(s["ci_high"].to_numpy())
    # the lines' points sit side by side around each category
    x1 = _one(fig, "mean:1", Line2D).get_xdata()
    x4 = _one(fig, "mean:4", Line2D).get_xdata()
    assert all(a < b for a, b in zip(x1, x4, strict=True))
    assert "bars: 95 %" in ax.get_title(loc="right")


@pytest.mark.parametrize(("values", "log"), [
    ([10, 30, 100, 1000, 10_000], True), ([1, 2, 4, 8, 16], True), ([1, 1000], True),
    ([1, 2, 3], False), ([1, 50, 100], False), ([0.1, 0.5, 0.9], False), ([0, 10, 1000], False),
    ([1, 20], False)])
def test_log_x_when_the_values_are_spread_over_decades(values, log):
    assert sweeps._log_spaced(values) is log


def _bandwidth_runs() -> pd.DataFrame:
    rows = [{"bandwidth_mbps": bw, "replication": r, "seed": r,
             "p95": 5.0 / bw + 0.005 + 0.001 * r}
            for bw in (10, 30, 100, 1000, 10_000) for r in range(3)]
    table = pd.DataFrame(rows)
    table.attrs.update(scenario="formats")
    return table


def test_decades_get_log_axes_with_plain_tick_labels():
    fig = viz.sweep_lines(_bandwidth_runs(), "bandwidth_mbps", "p95")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"  # 0.506 s down to 0.0065 s
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "30", "100", "1000",
                                                            "10 000"]
    assert ax.get_xlabel() == "bandwidth_mbps (Mbit/s)"
    assert ax.get_ylabel() == "p95 (s), log scale"
    lin = viz.sweep_lines(_bandwidth_runs(), "bandwidth_mbps", "p95", logx=False,
                          logy=False).axes[0]
    assert lin.get_xscale() == lin.get_yscale() == "linear"


def test_drawn_into_given_axes(runs):
    from simcomm.viz.style import new_figure

    fig = new_figure()
    ax = fig.add_subplot()
    assert viz.sweep_lines(runs, "depth", "mean_latency", hue="request_rate", ax=ax) is fig
    assert ax.get_lines()


# -- sweep_heatmap -------------------------------------------------------------------
def test_heatmap_cells_are_the_means_numbers_grow_upwards(runs):
    fig = viz.sweep_heatmap(runs, "depth", "request_rate", "mean_latency")
    im = _one(fig, "heatmap")
    summary = summarize(runs, ["mean_latency"])
    want = summary.pivot(index="request_rate", columns="depth", values="mean")
    assert np.asarray(im.get_array()) == pytest.approx(want.to_numpy())  # row 0 = rate 5
    assert im.origin == "lower"
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["5", "10", "20"]
    assert ax.get_xlabel() == "depth (services)"
    assert ax.get_ylabel() == "request_rate (req/s)"
    # every cell written: its mean and ± half its interval
    row = summary[(summary["depth"] == 3) & (summary["request_rate"] == 20)].iloc[0]
    text = _one(fig, "cell:3:20").get_text()
    mean, half = text.split("\n")
    assert float(mean) == pytest.approx(row["mean"], rel=5e-3)  # 3 significant digits
    assert float(half.removeprefix("± ")) == pytest.approx(
        (row["ci_high"] - row["ci_low"]) / 2, rel=5e-2)  # 2 digits


def test_heatmap_colour_bar_has_the_unit_and_a_colour_blind_safe_map(runs):
    fig = viz.sweep_heatmap(runs, "depth", "request_rate", "mean_latency")
    im = _one(fig, "heatmap")
    assert im.get_cmap().name.startswith(style.SEQUENTIAL_CMAP)
    assert style.SEQUENTIAL_CMAP == "cividis"
    bar = fig.axes[0].child_axes[0]
    assert bar.get_ylabel() == "mean_latency (s)"
    # text stays readable: white on the dark (low) end, ink on the light (high) end
    assert _one(fig, "cell:1:5").get_color() == "white"
    assert _one(fig, "cell:4:20").get_color() == style.INK
    assert "5 runs per cell" in fig.axes[0].get_title(loc="right")


def test_heatmap_names_read_down_and_missing_cells_say_so(runs):
    kinds = {5: "none", 10: "constant", 20: "exponential"}
    cat = runs.assign(backoff=runs["request_rate"].map(kinds))
    cat = cat[["depth", "backoff", "replication", "seed", "availability"]]
    cat = cat[~((cat["depth"] == 4) & (cat["backoff"] == "none"))]
    cat.attrs = {}
    fig = viz.sweep_heatmap(cat, "depth", "backoff", "availability")
    ax = fig.axes[0]
    # names in the sweep's order from the top: the bottom row is the last
    assert [t.get_text() for t in ax.get_yticklabels()] == ["exponential", "constant", "none"]
    assert _one(fig, "cell:4:none").get_text() == "no runs"
    assert "%" in _one(fig, "cell:1:none").get_text()  # a fraction as a percentage
    assert np.ma.is_masked(_one(fig, "heatmap").get_array()[2, 3])


def test_heatmap_goes_log_when_the_means_span_more_than_twenty_fold():
    from matplotlib.colors import LogNorm

    table = _bandwidth_runs()
    table = pd.concat([table.assign(message_format=f, p95=table["p95"] * k)
                       for f, k in (("json", 2), ("protobuf", 1))])
    table = table[["bandwidth_mbps", "message_format", "replication", "seed", "p95"]]
    fig = viz.sweep_heatmap(table, "bandwidth_mbps", "message_format", "p95")
    assert isinstance(_one(fig, "heatmap").norm, LogNorm)
    bar = fig.axes[0].child_axes[0]
    assert bar.get_ylabel() == "p95 (s), log scale"


def test_heatmap_without_annotations(runs):
    fig = viz.sweep_heatmap(runs, "depth", "request_rate", "mean_latency", annotate=False)
    assert not [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("cell:")]


# -- the numbers and bad input -------------------------------------------------------
def test_sweep_cells_is_the_summary_of_one_metric_in_drawing_order(runs):
    cells = viz.sweep_cells(runs, "mean_latency", ["request_rate", "depth"])
    assert list(cells.columns) == ["request_rate", "depth", "mean", "se", "ci_low", "ci_high",
                                   "n"]
    assert len(cells) == 12 and set(cells["n"]) == {5}
    assert cells.attrs["confidence"] == 0.95 and cells.attrs["metric"] == "mean_latency"


def _field(call) -> str:
    with pytest.raises(ParamError) as err:
        call()
    return err.value.field


def test_bad_input_names_the_field_and_what_is_allowed(runs):
    with pytest.raises(ParamError) as err:
        viz.sweep_lines(runs, "nope", "mean_latency")
    assert err.value.field == "x" and "depth, request_rate" in err.value.allowed
    with pytest.raises(ParamError) as err:
        viz.sweep_lines(runs, "depth", "nope")
    assert err.value.field == "metric" and "mean_latency, availability" in err.value.allowed
    assert "bottleneck" not in err.value.allowed  # text is no metric
    assert _field(lambda: viz.sweep_lines(runs, "depth", "mean_latency", hue="depth")) == "hue"
    assert _field(lambda: viz.sweep_lines(runs, "depth", "mean_latency", hue="x")) == "hue"
    assert _field(lambda: viz.sweep_lines(runs, "replication", "mean_latency")) == "x"
    assert _field(lambda: viz.sweep_heatmap(runs, "depth", "depth", "mean_latency")) == "y"
    assert _field(lambda: viz.sweep_lines([1, 2], "depth", "mean_latency")) == "table"
    assert _field(lambda: viz.sweep_lines(runs, "depth", "mean_latency",
                                          confidence=95)) == "confidence"
    assert _field(lambda: viz.sweep_lines(runs, "depth", "mean_latency", logx="yes")) == "logx"
    assert _field(lambda: viz.sweep_lines(summarize(runs), "depth", "nope")) == "metric"


def test_a_third_parameter_varying_must_be_fixed_first(runs):
    with pytest.raises(ParamError) as err:
        viz.sweep_lines(runs, "depth", "mean_latency")
    assert err.value.field == "request_rate"
    assert "table[table['request_rate'] == 5]" in err.value.allowed
    with pytest.raises(ParamError) as err:
        viz.sweep_lines(summarize(runs), "depth", "mean_latency")
    assert err.value.field == "request_rate"


def test_a_log_axis_refuses_values_it_cannot_show():
    table = pd.DataFrame({"x": [0, 1, 2], "replication": 0, "seed": 1, "m": [0.0, 1.0, 2.0]})
    assert _field(lambda: viz.sweep_lines(table, "x", "m", logx=True)) == "logx"
    assert _field(lambda: viz.sweep_lines(table, "x", "m", logy=True)) == "logy"


def test_one_run_per_point_draws_no_band_and_says_why(runs):
    one = runs[(runs["replication"] == 0) & (runs["request_rate"] == 10)]
    fig = viz.sweep_lines(one, "depth", "mean_latency")
    assert not _band_points(_one(fig, "ci", PolyCollection))
    assert fig.axes[0].get_title(loc="right") == ("mean of 1 run per point · no interval: "
                                                  "one run shows no spread")


def test_a_real_sweep_draws_its_summary():
    """A tiny ``simcomm.sweep`` of mmc, straight into both figures."""
    import simcomm

    runs = simcomm.sweep("mmc", {"arrival_rate": [0.3, 0.6], "servers": [1, 2]}, replications=3,
                         until=60, progress=False)
    summary = simcomm.summarize(runs, ["mean_latency"])
    fig = viz.sweep_lines(runs, "arrival_rate", "mean_latency", hue="servers")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "arrival_rate (req/s)" and ax.get_ylabel() == "mean_latency (s)"
    assert ax.get_legend().get_title().get_text() == "servers (workers)"
    for c in (1, 2):
        s = summary[summary["servers"] == c]
        assert _one(fig, f"mean:{c}", Line2D).get_ydata() == pytest.approx(s["mean"].to_numpy())
        assert _band_points(_one(fig, f"ci:{c}", PolyCollection)) == _expected_points(
            s, "arrival_rate")
    heat = viz.sweep_heatmap(runs, "arrival_rate", "servers", "mean_latency")
    want = summary.pivot(index="servers", columns="arrival_rate", values="mean")
    assert np.asarray(_one(heat, "heatmap").get_array()) == pytest.approx(want.to_numpy())
    assert "3 runs per cell" in heat.axes[0].get_title(loc="right")
