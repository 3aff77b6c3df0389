"""Figures of a sweep: a metric against one parameter, or over a grid of two.

One run's number moves with its seed; a sweep (``simcomm.sweep``) runs
every combination of a grid several times with different seeds and keeps
one row per run, and ``simcomm.summarize`` turns those rows into a mean and
a Student-t confidence interval per combination.  These figures draw either
table (viz draws and never runs: give it the table the sweep returned):

* :func:`sweep_lines` -- the mean against one parameter, one line per value
  of a second, a shaded band for the confidence interval: where two bands
  do not overlap, the difference is more than the seeds' noise;
* :func:`sweep_heatmap` -- the mean in every cell of a two-parameter grid,
  written in the cell, the colour on a perceptually uniform scale;
* :func:`sweep_cells` -- the numbers both draw, one row per cell.

Given a runs table they compute the summary with
:func:`simcomm.analysis.stats.summarize`, the same function as
``simcomm.summarize``, so the band is exactly the summary's interval.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simcomm.analysis.stats import check_confidence, grid_fields, summarize, t_interval
from simcomm.errors import ParamError
from simcomm.result import SUMMARY_UNITS
from simcomm.viz.style import (
    EXTRA_COLORS,
    GREY,
    INK,
    SEQUENTIAL_CMAP,
    SERIES_COLORS,
    figure_for,
    pin_axis_labels,
    root_figure,
    style_axes,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["sweep_cells", "sweep_heatmap", "sweep_lines"]

#: What a sweep figure takes, in words (error messages).
_TABLES = ("the runs table of simcomm.sweep (one row per combination and replication) or "
           "its summary from simcomm.summarize")

#: Columns that make a table a summary rather than a runs table.
_SUMMARY = ("metric", "mean", "ci_low", "ci_high")

#: Marker shapes by line, so lines differ in more than colour (grey-scale
#: prints, colour-blind readers).
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


# -- the numbers ---------------------------------------------------------------------
def _is_summary(table: pd.DataFrame) -> bool:
    return all(c in table.columns for c in _SUMMARY)


def _params(table: pd.DataFrame, summary: bool) -> list[str] | None:
    """The table's parameter columns, or None when the table does not say
    (a hand-made table with neither ``attrs["grid"]`` nor ``replication``)."""
    cols = [str(c) for c in table.columns]
    if summary:
        return cols[:cols.index("metric")]
    if table.attrs.get("grid") is not None or "replication" in cols:
        return grid_fields(table)
    return None


def _metrics(table: pd.DataFrame, summary: bool, exclude: Sequence[str]) -> list[str]:
    """The metrics a table holds: a summary's ``metric`` values, or a runs
    table's numeric columns that are not parameters."""
    if summary:
        return [str(m) for m in dict.fromkeys(table["metric"])]
    skip = {*exclude, "replication", "seed"}
    return [str(c) for c in table.columns
            if c not in skip and pd.api.types.is_numeric_dtype(table[c])]


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _numeric(values: pd.Series) -> bool:
    """True when a parameter's values are numbers (an axis), not names or flags."""
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return True
    return len(values) > 0 and all(_is_number(v) for v in values)


def _order(values: pd.Series) -> list[Any]:
    """A parameter's distinct values in drawing order: numbers ascending,
    names and flags in the order the sweep ran them."""
    distinct = list(dict.fromkeys(values.tolist()))
    return sorted(distinct) if _numeric(values) else distinct


def _cells(table: Any, metric: Any, keys: Mapping[str, Any], confidence: Any) -> pd.DataFrame:
    """One row per cell of ``keys`` (role -> column): the columns, then
    ``mean``, ``se``, ``ci_low``, ``ci_high`` and ``n`` of ``metric``."""
    if not isinstance(table, pd.DataFrame):
        raise ParamError("table", type(table).__name__, _TABLES)
    conf = check_confidence(confidence)
    summary = _is_summary(table)
    params = _params(table, summary)
    allowed = params if params is not None else [
        str(c) for c in table.columns if c not in ("replication", "seed")]
    by: list[str] = []
    for role, field in keys.items():
        if not isinstance(field, str) or field not in allowed or field == metric:
            raise ParamError(role, field, "a parameter column of the table: "
                             + (", ".join(f for f in allowed if f != metric) or "(none)"))
        if field in by:
            other = next(r for r, f in keys.items() if f == field)
            raise ParamError(role, field, f"a parameter other than {other} ({field!r})")
        by.append(field)
    metrics = _metrics(table, summary, by if params is None else params)
    if metric not in metrics:
        raise ParamError("metric", metric, "one of the table's metrics: "
                         + (", ".join(metrics) or "(none)"))
    rows = table[table["metric"] == metric] if summary else table
    for field in [p for p in params or () if p not in by]:
        seen = list(dict.fromkeys(rows[field].tolist()))
        if len(seen) > 1:
            raise ParamError(field, seen, f"one value: the figure shows {metric} against "
                             f"{' and '.join(by)}, so pick one {field} first, e.g. "
                             f"table[table[{field!r}] == {seen[0]!r}]")
    if summary:
        cells = rows[by].copy()
        for col in ("mean", "se", "ci_low", "ci_high", "n"):
            cells[col] = rows[col].to_numpy() if col in rows.columns else math.nan
        if cells.duplicated(by).any():
            raise ParamError("table", f"{int(cells.duplicated(by).sum())} repeated cells",
                             f"one summary row per {' and '.join(by)} for {metric}")
        if conf != table.attrs.get("confidence", 0.95):  # the bounds are at another level
            if not {"se", "n"} <= set(rows.columns):
                raise ParamError("confidence", confidence,
                                 f"{table.attrs.get('confidence', 0.95)}, the level of the "
                                 "summary's bounds (it has no se and n to compute others)")
            low, high = t_interval(cells["mean"].to_numpy(), cells["se"].to_numpy(),
                                   cells["n"].to_numpy(), conf)
            cells["ci_low"], cells["ci_high"] = low, high
    else:
        cells = summarize(rows, [metric], confidence=conf, by=by).drop(columns="metric")
    for field in by:  # rows in drawing order
        rank = {v: i for i, v in enumerate(_order(cells[field]))}
        cells = cells.iloc[np.argsort(cells[field].map(rank).to_numpy(), kind="stable")]
    cells = cells.reset_index(drop=True)
    cells.attrs = {**table.attrs, "confidence": conf, "metric": metric}
    return cells


def sweep_cells(table: pd.DataFrame, metric: str, by: Sequence[str], *,
                confidence: float = 0.95) -> pd.DataFrame:
    """The numbers a sweep figure draws: one row per value (or pair of values)
    of the parameters ``by``.

    Columns: ``by``, then ``mean``, ``se``, ``ci_low``, ``ci_high`` (the
    Student-t interval at ``confidence``) and ``n`` (runs) of ``metric``.
    ``table`` is a sweep's runs table or its summary; any other parameter
    it varies must have one value (filter the table first: averaging over a
    parameter would hide what it does).
    """
    if isinstance(by, str):
        by = [by]
    roles = {"by": by[0]} if len(by) == 1 else {f"by[{i}]": f for i, f in enumerate(by)}
    return _cells(table, metric, roles, confidence=confidence)


# -- labels --------------------------------------------------------------------------
def _unit(metric: str) -> str:
    return SUMMARY_UNITS.get(metric, "")


def _metric_label(metric: str) -> str:
    """``mean_latency (s)``: the summary's key, so it can be found in the table,
    and its unit; fractions are shown as percentages."""
    unit = _unit(metric)
    if unit == "fraction":
        return f"{metric} (%)"
    return f"{metric} ({unit})" if unit else metric


def _param_label(table: pd.DataFrame | Mapping[str, Any], field: str) -> str:
    """``request_rate (req/s)``: a parameter with the unit its scenario declares."""
    attrs = table.attrs if isinstance(table, pd.DataFrame) else table
    scenario = attrs.get("scenario")
    unit = ""
    if isinstance(scenario, str):
        from simcomm.scenarios import base

        try:
            unit = next((f.unit for f in base.get(scenario).fields() if f.name == field), "")
        except ParamError:  # a scenario this process does not know
            unit = ""
    if unit == "fraction":
        return f"{field} (%)"
    return f"{field} ({unit})" if unit else field


def _value_label(v: Any) -> str:
    """A parameter's value as ticks and legends write it: 10 000, 0.5, json."""
    if not _is_number(v):
        return str(v)
    if float(v).is_integer() and abs(v) >= 10_000:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:g}"


def _format(v: float, unit: str, digits: int = 3) -> str:
    """A number as a cell shows it, to ``digits`` significant digits and never
    in scientific notation (0.000021, 1 234); a fraction as a percentage."""
    if not np.isfinite(v):
        return "–"
    if unit == "fraction":  # availability 99.52 %, a half width 0.082 %
        v = 100 * v
        if abs(v) >= 10:
            return f"{v:.{max(digits - 1, 1)}f} %"
    if abs(v) >= 10 ** digits:
        text = f"{v:,.0f}".replace(",", " ")
    else:
        text = np.format_float_positional(v, precision=digits, unique=True, fractional=False,
                                          trim="-")
    return text + (" %" if unit == "fraction" else "")


def _runs_text(n: pd.Series, where: str) -> str:
    lo, hi = int(n.min()), int(n.max())
    runs = f"{lo}" if lo == hi else f"{lo}–{hi}"
    return f"{runs} run{'s' if hi != 1 else ''} {where}"


def _titles(ax: Axes, title: str, small: str) -> None:
    """The title on the left, and the small print on a line of its own below it
    (right-aligned): a narrow heat map has no room for both on one line."""
    height = ax.get_position().height * root_figure(ax).get_figheight() * 72  # points
    ax.set_title(title, loc="left", fontsize=11, y=1.0 + 16 / height)
    ax.set_title(small, loc="right", fontsize=8, color=INK, y=1.0 + 3 / height)


def _plain_log_axis(axis: Any, unit: str) -> None:
    """A log axis labelled 0.01, 0.02, 0.05, 0.1: plain numbers
    at 1, 2 and 5 times each power of ten, not mathtext powers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: _format(v, unit, 2)))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _percent_axis(axis: Any) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(xmax=1.0, symbol=" %"))


def _log_spaced(values: Sequence[float]) -> bool:
    """True when positive values spanning a decade or more sit more evenly on a
    log axis than on a linear one (1, 10, 100 or 1, 2, 4, 8, 16; not 1, 50, 100)."""
    v = np.unique(np.asarray(values, dtype=float))
    if v.size < 2 or v[0] <= 0 or not np.isfinite(v).all():
        return False
    if v.size == 2:
        return bool(v[1] / v[0] >= 100)
    if v[-1] / v[0] < 10:
        return False
    lin, log = np.diff(v), np.diff(np.log(v))
    return bool(log.max() / log.min() < lin.max() / lin.min())


def _palette(n: int) -> list[Any]:
    """Colours for ``n`` lines: Okabe & Ito's for up to six, else cividis
    steps (ordered, dark to light, stopping before the pale end)."""
    if n <= len(SERIES_COLORS):
        return list(SERIES_COLORS[:n])
    from matplotlib import colormaps

    cmap = colormaps[SEQUENTIAL_CMAP]
    return [cmap(t) for t in np.linspace(0.0, 0.85, n)]


# -- metric against a parameter ------------------------------------------------------
def sweep_lines(table: pd.DataFrame, x: str, metric: str, *, hue: str | None = None,
                ax: Axes | None = None, confidence: float = 0.95,
                logx: bool | None = None, logy: bool | None = None) -> Figure:
    """The mean of ``metric`` against parameter ``x``, one line per value of ``hue``.

    What the learner sees: a line with a marker at each value of ``x`` that
    was run, the mean of the replications there, and around it a shaded
    band, the ``confidence`` interval of that mean (Student t, from the
    spread of the replications): a band that does not overlap another says
    the difference is more than the seeds' noise; a wide band says more
    replications are needed.  With ``hue`` one line per value of that
    parameter, in Okabe & Ito's colours and each with its own marker, the
    legend titled by it.  Axis labels carry units (``mean_latency (s)``;
    fractions such as ``availability`` in %); the small print says how
    many runs each point averages.

    ``table`` is the runs table of ``simcomm.sweep`` or its summary
    (``simcomm.summarize``); any other parameter it varies must be fixed
    first.  A numeric ``x`` is an axis, on a log scale when its values are
    spread evenly over decades (``logx`` decides otherwise); names or flags
    are categories, drawn as points with interval bars in the sweep's order
    (a line between categories would invent values between them).  The
    metric's axis is a log scale when the largest mean is 20 times the
    smallest or more, so the small values are not flattened (``logy``
    decides otherwise).
    """
    if hue is not None and hue == x:
        raise ParamError("hue", hue, f"a parameter other than x ({x!r}), or None")
    for name, flag in (("logx", logx), ("logy", logy)):
        if flag is not None and not isinstance(flag, (bool, np.bool_)):
            raise ParamError(name, flag, "True, False or None (decide from the values)")
    keys = {"x": x} if hue is None else {"x": x, "hue": hue}
    cells = _cells(table, metric, keys, confidence)
    conf = cells.attrs["confidence"]
    numeric = _numeric(cells[x])
    xs = _order(cells[x])
    hues: list[Any] = [None] if hue is None else _order(cells[hue])
    log = bool(numeric and (_log_spaced(xs) if logx is None else logx))
    if log and min(xs) <= 0:
        raise ParamError("logx", logx, f"False: {x} has values <= 0, which a log axis "
                         "cannot show")
    means = cells["mean"].to_numpy(dtype=float)
    means = means[np.isfinite(means)]
    positive = bool(means.size) and means.min() > 0
    log_y = (positive and means.max() / means.min() >= 20) if logy is None else bool(logy)
    if log_y and not positive:
        raise ParamError("logy", logy, f"False: {metric} has means <= 0, which a log axis "
                         "cannot show")
    fig, ax, _ = figure_for(ax, 8.0, 4.3, margins=(0.85, 1.9 if hue else 0.3, 0.5, 0.6))
    style_axes(ax)
    colors = _palette(len(hues))
    width = min(0.3, 0.6 / len(hues))  # categories: the lines' points side by side
    for i, h in enumerate(hues):
        part = cells if h is None else cells[cells[hue] == h]
        if numeric:
            at = part[x].to_numpy(dtype=float)
        else:
            at = np.array([xs.index(v) for v in part[x]], dtype=float) + (
                (i - (len(hues) - 1) / 2) * width if len(hues) > 1 else 0.0)
        mean = part["mean"].to_numpy(dtype=float)
        low = part["ci_low"].to_numpy(dtype=float)
        high = part["ci_high"].to_numpy(dtype=float)
        color = colors[i]
        key = "mean" if h is None else f"mean:{_value_label(h)}"
        ax.plot(at, mean, color=color, marker=_MARKERS[i % len(_MARKERS)], markersize=6,
                linewidth=1.8 if numeric else 0.0, linestyle="-" if numeric else "none",
                zorder=3, gid=key, label="mean" if h is None else _value_label(h))
        ok = np.isfinite(low) & np.isfinite(high)
        band = "ci" + key[4:]
        if numeric:
            ax.fill_between(at, low, high, where=ok, color=color, alpha=0.2, linewidth=0.0,
                            zorder=2, gid=band)
        else:
            ax.vlines(at[ok], low[ok], high[ok], color=color, linewidth=2.2, zorder=2,
                      gid=band)
    if numeric:
        if log:
            ax.set_xscale("log")
        if len(xs) <= 12:  # the values that were run are the ticks
            from matplotlib.ticker import FixedLocator, NullLocator

            ax.set_xticks([float(v) for v in xs], [_value_label(v) for v in xs])
            ax.xaxis.set_minor_locator(NullLocator() if log else FixedLocator([]))
    else:
        ax.set_xticks(range(len(xs)), [_value_label(v) for v in xs])
        ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_xlabel(_param_label(cells, x))
    ax.set_ylabel(_metric_label(metric) + (", log scale" if log_y else ""))
    if log_y:
        ax.set_yscale("log")
        _plain_log_axis(ax.yaxis, _unit(metric))
    elif _unit(metric) == "fraction":
        _percent_axis(ax.yaxis)
    scenario = cells.attrs.get("scenario")
    title = (f"{scenario}: " if isinstance(scenario, str) else "") + f"{metric} against {x}"
    shown = "band" if numeric else "bars"
    bounds = cells[["ci_low", "ci_high"]].to_numpy(dtype=float)
    _titles(ax, title, f"mean of {_runs_text(cells['n'], 'per point')} · " + (
        f"{shown}: {100 * conf:g} % confidence interval (Student t)"
        if np.isfinite(bounds).any() else "no interval: one run shows no spread"))
    pin_axis_labels(ax)
    if hue is not None:
        ax.legend(title=_param_label(cells, hue), loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize=9, title_fontsize=9, frameon=False)
    return fig


# -- metric over two parameters ------------------------------------------------------
def sweep_heatmap(table: pd.DataFrame, x: str, y: str, metric: str, *, ax: Axes | None = None,
                  annotate: bool = True, confidence: float = 0.95) -> Figure:
    """The mean of ``metric`` in every cell of a grid of parameters ``x`` and ``y``.

    What the learner sees: a grid, ``x`` across and ``y`` up (numbers
    ascending; names in the sweep's order, the first on top), each cell
    coloured by its mean on cividis -- perceptually uniform (equal steps of
    the metric look like equal steps of colour) and the same for red-green
    colour-blind viewers, dark blue low to yellow high -- on a log scale
    when the largest mean is 20 times the smallest or more (a linear scale
    would paint all but the worst cells the same dark blue).  With ``annotate`` each cell
    shows its mean and, below it, ± the half width of its ``confidence``
    interval; a cell no run reached is grey.  The colour bar is labelled
    with the metric and its unit.

    ``table`` is a sweep's runs table or its summary; any third parameter
    it varies must be fixed first.
    """
    if x == y:
        raise ParamError("y", y, f"a parameter other than x ({x!r})")
    if not isinstance(annotate, (bool, np.bool_)):
        raise ParamError("annotate", annotate, "True or False")
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, Normalize

    cells = _cells(table, metric, {"x": x, "y": y}, confidence)
    conf = cells.attrs["confidence"]
    xs, ys = _order(cells[x]), _order(cells[y])
    up = _numeric(cells[y])  # numbers grow upwards; names read down like a table
    rows = ys if up else ys[::-1]
    grid = np.full((len(rows), len(xs)), np.nan)
    half = np.full_like(grid, np.nan)
    for _, c in cells.iterrows():
        r, k = rows.index(c[y]), xs.index(c[x])
        grid[r, k] = c["mean"]
        half[r, k] = (c["ci_high"] - c["ci_low"]) / 2
    finite = grid[np.isfinite(grid)]
    log = bool(finite.size and finite.min() > 0 and finite.max() / finite.min() >= 20)
    norm = (LogNorm(finite.min(), finite.max()) if log else
            Normalize(finite.min(), finite.max()) if finite.size else Normalize(0, 1))
    cmap = colormaps[SEQUENTIAL_CMAP].with_extremes(bad=EXTRA_COLORS["light_grey"])
    width = min(9.5, max(6.5, 1.0 + 0.95 * len(xs) + 1.6))  # room for the titles
    height = min(8.0, max(3.0, 1.2 + 0.6 * len(rows)))
    fig, ax, _ = figure_for(ax, width, height, margins=(1.0, 1.6, 0.6, 0.6))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, origin="lower",
                   aspect="auto", interpolation="nearest",
                   extent=(-0.5, len(xs) - 0.5, -0.5, len(rows) - 0.5))
    im.set_gid("heatmap")
    unit = _unit(metric)
    if annotate:
        size = 9.0 if len(xs) <= 8 else 7.5
        for r in range(len(rows)):
            for k in range(len(xs)):
                v, h = grid[r, k], half[r, k]
                if not np.isfinite(v):
                    text, color = "no runs", GREY
                else:
                    red, green, blue, _ = cmap(norm(v))
                    dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.45
                    color = "white" if dark else INK
                    text = _format(v, unit) + (f"\n± {_format(h, unit, 2)}"
                                               if np.isfinite(h) else "")
                ax.text(k, r, text, ha="center", va="center", fontsize=size, color=color,
                        linespacing=1.1, gid=f"cell:{_value_label(xs[k])}:"
                                             f"{_value_label(rows[r])}")
    ax.set_xticks(range(len(xs)), [_value_label(v) for v in xs])
    ax.set_yticks(range(len(rows)), [_value_label(v) for v in rows])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel(_param_label(cells, x))
    ax.set_ylabel(_param_label(cells, y))
    cax = ax.inset_axes((1.03, 0.0, 0.04, 1.0))
    bar = fig.colorbar(im, cax=cax)
    bar.set_label(_metric_label(metric) + (", log scale" if log else ""))
    if log:
        _plain_log_axis(bar.ax.yaxis, unit)
    elif unit == "fraction":
        _percent_axis(bar.ax.yaxis)
    scenario = cells.attrs.get("scenario")
    _titles(ax, (f"{scenario}: " if isinstance(scenario, str) else "")
            + f"{metric} per {x} and {y}",
            f"mean of {_runs_text(cells['n'], 'per cell')}"
            + (f" · ± half width of its {100 * conf:g} % confidence interval"
               if annotate else ""))
    pin_axis_labels(ax)
    return fig
