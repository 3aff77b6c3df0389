"""Figures against simulated time: latency, outcomes and worker pools.

All three shade the periods in which something was broken (a crashed or
hung instance, a network partition), so a learner sees the cause and its
effect on one time axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, MaxNLocator
from matplotlib.transforms import blended_transform_factory

from simcomm.analysis import metrics
from simcomm.errors import ParamError
from simcomm.viz import data
from simcomm.viz.style import (
    FAULT_COLORS,
    FAULT_LABELS,
    INK,
    OKABE_ITO,
    OUTCOMES,
    PERCENTILE_STYLES,
    figure_for,
    new_figure,
    outcome_color,
    root_figure,
    set_titles,
    style_axes,
    wrap_label,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simcomm.result import Result

__all__ = ["binned_percentiles", "fault_bands", "latency_over_time", "outcome_rates",
           "outcomes_over_time", "pool_usage"]

#: Fault kinds shaded by default (slowdowns and error rates usually last
#: the whole run, where a band would only tint everything).
DEFAULT_BANDS = ("down", "hung", "partition")


def _legend(ax: Axes, only_gid: str | None = None, **kwargs: Any) -> None:
    """A legend outside the axes, to the right, so it never hides data."""
    handles, labels = ax.get_legend_handles_labels()
    labels = [wrap_label(label) for label in labels]
    if only_gid is not None:
        keep = [i for i, h in enumerate(handles) if (h.get_gid() or "").startswith(only_gid)]
        handles, labels = [handles[i] for i in keep], [labels[i] for i in keep]
    if handles:
        leg = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                        borderaxespad=0.0, fontsize=8, frameon=False, **kwargs)
        for h in getattr(leg, "legend_handles", getattr(leg, "legendHandles", [])):
            if isinstance(h, Line2D):  # faint points, but a legend to read at a glance
                h.set_alpha(1.0)


def fault_bands(ax: Axes, res: Result, nodes: Iterable[str] | None = None,
                kinds: Sequence[str] = DEFAULT_BANDS, *, label: bool = True,
                annotate: bool = True, ymin: float = 0.0, ymax: float = 1.0,
                zorder: float = 0.5) -> list[PolyCollection]:
    """Shade the fault periods of ``nodes`` (all if None) on ``ax``'s time axis.

    One translucent band per period, one artist (and legend entry) per kind
    of fault; network partitions are shown whatever ``nodes`` is.  With
    ``annotate`` the node's name is written at the top of each band (when
    there are few enough to stay legible).  ``ymin``/``ymax`` (fractions
    of the axes' height) draw them as a strip instead, e.g. above opaque
    areas.
    """
    iv = data.fault_intervals(res)
    if iv.empty:
        return []
    iv = iv[iv["kind"].isin(kinds)]
    if nodes is not None:
        iv = iv[iv["node"].isin([*nodes, "network"])]
    if iv.empty:
        return []
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    out = []
    for kind in kinds:
        sub = iv[iv["kind"] == kind]
        if sub.empty:
            continue
        s = sub["start"].to_numpy()
        e = sub["end"].to_numpy()
        lo, hi = np.full_like(s, ymin), np.full_like(s, ymax)
        verts = np.stack([np.column_stack([s, lo]), np.column_stack([s, hi]),
                          np.column_stack([e, hi]), np.column_stack([e, lo])], axis=1)
        who = ", ".join(dict.fromkeys(sub["node"]))
        coll = PolyCollection(verts, transform=trans, facecolor=FAULT_COLORS[kind],
                              alpha=0.45 if kind == "hung" else 0.25, edgecolor="none",
                              zorder=zorder,
                              label=f"{FAULT_LABELS[kind]}: {who}" if label else None)
        coll.set_gid(f"fault:{kind}")
        ax.add_collection(coll, autolim=False)
        out.append(coll)
    if annotate and nodes is None and len(iv) <= 12:
        for node, start in zip(iv["node"], iv["start"], strict=True):
            ax.text(start, ymax - 0.02, f" {node}", transform=trans, rotation=90, va="top",
                    ha="left", fontsize=7, color=INK, alpha=0.8, clip_on=True,
                    zorder=zorder)
    return out


# -- latency ----------------------------------------------------------------
def binned_percentiles(start: np.ndarray, lat: np.ndarray, edges: np.ndarray,
                       qs: Sequence[float], min_count: int = 5) -> dict[float, np.ndarray]:
    """Percentiles ``qs`` of ``lat`` for the requests started in each bin of
    ``edges`` (NaN where a bin holds fewer than ``min_count``)."""
    idx = np.searchsorted(edges, start, side="right") - 1
    groups = pd.Series(lat).groupby(idx)
    counts = groups.size()
    out = {}
    for q in qs:
        v = groups.quantile(q / 100.0)
        v[counts < min_count] = np.nan
        full = np.full(len(edges) - 1, np.nan)
        ok = (v.index >= 0) & (v.index < len(full))
        full[v.index[ok]] = v.to_numpy()[ok]
        out[q] = full
    return out


def latency_over_time(res: Result, ax: Axes | None = None, *,
                      percentiles: Sequence[float] = (50, 99), window: float | None = None,
                      log: bool | None = None, faults: bool = True,
                      outcomes: Sequence[str] | None = None) -> Figure:
    """Each finished request as a faint point: its latency against its start time.

    What the learner sees: a cloud of points, one per request, coloured by
    outcome (green ok, vermillion error, sky blue abandoned ...), with
    black steps for the median (p50, solid) and tail (p99, dashed) latency
    of all finished requests started in each ``window`` of seconds
    (default: a round number near 1/60 of the run, wide enough to hold ~30
    requests; bins rather than a sliding window, so a line neither rises
    before its cause nor lags after it).  Shaded bands mark when an
    instance was down (grey) or hung (yellow), so a jump in the tail lines
    up with its cause.  The y axis turns logarithmic when the slowest
    request took 50 times the median or more (``log`` forces it either
    way).  Pending requests (no end yet) are counted in the legend, not
    drawn.
    """
    fig, ax, _ = figure_for(ax, 9.0, 4.0, margins=(0.75, 2.35, 0.4, 0.55))
    style_axes(ax)
    rq = res.requests
    done = rq[rq["outcome"] != "pending"]
    if outcomes is not None:
        done = done[done["outcome"].isin(outcomes)]
    done = done.sort_values("start", kind="stable")
    start = done["start"].to_numpy(dtype=float)
    lat = done["latency"].to_numpy(dtype=float)
    outcome = done["outcome"].to_numpy()
    positive = lat[lat > 0]
    if log is None:  # wide: the slowest request took 50 times the median or more
        log = bool(positive.size and positive.max() > 50 * np.median(positive))
    lat_plot = np.maximum(lat, positive.min()) if log and positive.size else lat
    alpha = 0.5 if len(lat) < 500 else (0.35 if len(lat) < 5000 else 0.2)
    counts = pd.Series(outcome).value_counts()
    for name in OUTCOMES:
        n = int(counts.get(name, 0))
        if not n:
            continue
        mask = outcome == name
        ax.plot(start[mask], lat_plot[mask], linestyle="none", marker="o", markersize=2.6,
                markeredgewidth=0, alpha=alpha, color=outcome_color(name),
                label=f"{name} ({n})", gid=f"outcome:{name}", zorder=2.5)
    for name, n in counts.items():  # outcomes simcomm does not know (custom nodes)
        if name not in OUTCOMES:
            mask = outcome == name
            ax.plot(start[mask], lat_plot[mask], linestyle="none", marker="o",
                    markersize=2.6, markeredgewidth=0, alpha=alpha,
                    color=outcome_color(str(name)), label=f"{name} ({n})")
    n_pending = int((rq["outcome"] == "pending").sum())
    if n_pending:
        ax.plot([], [], linestyle="none", marker="o", markersize=2.6,
                color=outcome_color("pending"), label=f"pending ({n_pending}, not drawn)")
    if len(lat) >= 10 and percentiles:
        if window is None:
            rate = len(lat) / res.until
            window = data.nice_step(min(max(res.until / 60.0, 30.0 / rate),
                                        res.until / 4.0))
        elif not (isinstance(window, (int, float)) and window > 0):
            raise ParamError("window", window, "a bin width in seconds > 0, or None")
        edges = np.arange(0.0, res.until + window, window)
        binned = binned_percentiles(start, lat_plot, edges, percentiles)
        for q, values in binned.items():
            style = PERCENTILE_STYLES.get(q, {"color": INK, "linestyle": ":",
                                             "linewidth": 1.4})
            ax.stairs(values, edges, baseline=None, label=f"p{q:g} per {window:g} s",
                      gid=f"p{q:g}", zorder=2, **style)
    if faults:
        fault_bands(ax, res)
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlim(0, res.until)
    ax.set_xlabel("request start time (s)")
    ax.set_ylabel("latency (s)" + (", log scale" if log else ""))
    s = res.summary()
    set_titles(ax, "Request latency over time",
               f"p50 {s['p50']:.3g} s · p99 {s['p99']:.3g} s of ok requests · "
               f"availability {100 * s['availability']:.1f} %" if s["requests"] else None)
    _legend(ax, markerscale=2.5)
    return fig


# -- outcomes ---------------------------------------------------------------
def _edges(until: float, bin: float | None) -> np.ndarray:
    if bin is None:
        bin = data.nice_step(until / 60.0)
    elif not (isinstance(bin, (int, float)) and bin > 0):
        raise ParamError("bin", bin, "a bin width in seconds > 0, or None to choose one")
    n = max(1, int(np.ceil(until / bin - 1e-9)))
    edges = np.arange(n + 1, dtype=float) * bin
    edges[-1] = until  # a last, shorter bin: its rate is over the time it covers
    return edges


def outcome_rates(res: Result, bin: float | None = None, by: str = "start") -> pd.DataFrame:
    """Requests per second of each outcome in time bins (the data of the figure).

    Index: the bins' start times (s; the last bin ends at the end of the
    run, so it may be shorter); one column per outcome present.
    ``by="start"`` counts each request in the bin it was sent in (the stack
    then adds up to the offered load), ``by="end"`` in the bin it finished
    in (pending requests have no end and are left out).
    """
    if by not in ("start", "end"):
        raise ParamError("by", by, "'start' or 'end'")
    edges = _edges(res.until, bin)
    rq = res.requests
    if by == "end":
        rq = rq[rq["outcome"] != "pending"]
    t = rq[by].to_numpy(dtype=float)
    outcome = rq["outcome"].to_numpy()
    width = np.diff(edges)
    cols: dict[str, np.ndarray] = {}
    present = list(pd.unique(outcome))
    order = [o for o in OUTCOMES if o in present] + [o for o in present if o not in OUTCOMES]
    for name in order:
        counts, _ = np.histogram(t[outcome == name], bins=edges)
        cols[str(name)] = counts / width
    df = pd.DataFrame(cols, index=pd.Index(edges[:-1], name="time"))
    df.attrs["bin"] = float(width[0])
    return df


def outcomes_over_time(res: Result, bin: float | None = None, ax: Axes | None = None, *,
                       by: str = "start", stacked: bool = True,
                       faults: bool = True) -> Figure:
    """How many requests per second ended in each outcome, over time.

    What the learner sees: stacked areas, one colour per outcome (green ok
    at the bottom, then error, refused, rejected, reset, abandoned,
    pending); by default each request is counted when it was *sent*
    (``by="start"``), so the top of the stack is the offered load and the
    coloured slices show what became of it -- a crash turns a slice
    vermillion for exactly as long as the grey fault band (a strip along
    the top, naming the node) lasts.
    ``bin`` is the bin width in seconds (default: a round number near
    1/60 of the run); ``stacked=False`` draws one line per outcome instead.
    """
    fig, ax, _ = figure_for(ax, 9.0, 3.6, margins=(0.75, 2.35, 0.4, 0.55))
    style_axes(ax)
    df = outcome_rates(res, bin, by)
    edges = np.append(df.index.to_numpy(dtype=float), res.until)
    base = np.zeros(len(df) + 1)
    for name in df.columns:
        rate = df[name].to_numpy()
        y = np.append(rate, rate[-1] if len(rate) else 0.0)
        color = outcome_color(name)
        if stacked:
            ax.fill_between(edges, base, base + y, step="post", color=color, alpha=0.85,
                            linewidth=0, label=name, gid=f"outcome:{name}")
            base = base + y
        else:
            ax.step(edges, y, where="post", color=color, linewidth=1.6, label=name,
                    gid=f"outcome:{name}")
    top = float(base.max()) if stacked else float(df.to_numpy().max(initial=0.0))
    if faults:  # a strip above the (opaque) areas, where bands stay visible
        ax.set_ylim(0, 1.3 * top if top > 0 else 1.0)
        fault_bands(ax, res, ymin=0.0 if not stacked else 0.78, zorder=3 if stacked else 0.5)
    else:
        ax.set_ylim(0, 1.05 * top if top > 0 else 1.0)
    ax.set_xlim(0, res.until)
    ax.set_xlabel(f"request {'start' if by == 'start' else 'end'} time (s)")
    ax.set_ylabel("requests per second (req/s)")
    set_titles(ax, "What happened to the requests",
               f"rates per {df.attrs['bin']:g} s bin, by {by} time"
               + (", stacked" if stacked else ""))
    _legend(ax)
    return fig


# -- worker pools -----------------------------------------------------------
def _steps(t: np.ndarray, v: np.ndarray, until: float, max_points: int
           ) -> tuple[np.ndarray, np.ndarray, bool]:
    """A step function as plottable (x, y) from 0 to ``until``; averaged on a
    grid of ``max_points`` bins when it changes more often than that."""
    if t.size > max_points:
        edges = np.linspace(0.0, until, max_points + 1)
        means = metrics.step_means(t, v, edges)
        return edges, np.append(means, means[-1]), True
    x = np.concatenate(([0.0], t, [until]))
    y = np.concatenate(([0.0], v, [v[-1] if v.size else 0.0]))
    return x, y, False


def _pool_ticks(workers: int, ymax: float) -> list[float]:
    """A few round y ticks, always including the pool size."""
    ticks = [float(v) for v in MaxNLocator(3, integer=True, steps=[1, 2, 5, 10])
             .tick_values(0, ymax) if 0 <= v <= ymax]
    near = 0.12 * ymax
    if workers <= near:  # a queue dwarfs the pool: the dashed line says it all
        return ticks
    return sorted({0.0, *[v for v in ticks if abs(v - workers) > near], float(workers)})


def pool_usage(res: Result, nodes: Sequence[str] | None = None,
               axes: Axes | Sequence[Axes] | None = None, *, ax: Axes | None = None,
               max_points: int = 600, faults: bool = True) -> Figure:
    """Busy workers and queued requests of each service instance over time.

    What the learner sees: one row per instance (in call order: gateway
    first), sharing the time axis.  The blue area is the number of busy
    workers, the orange area stacked on it the requests waiting in the
    queue, and the dashed line the pool size: when blue reaches the line the
    pool is exhausted and orange starts to grow -- demand above capacity.
    Shaded bands show when that instance was down or hung.  An instance
    whose pool changed more than ``max_points`` times is drawn as
    time-weighted means over ``max_points`` bins (about one per pixel; the
    title says so), which reads better than thousands of one-request
    spikes and draws faster.  ``axes`` draws into the caller's axes, one
    per instance (``ax=`` is the same for a single instance).
    """
    from simcomm.engine.nodes import Instance

    all_inst = data.instances(res)
    if nodes is None:
        nodes = all_inst
    else:
        nodes = list(nodes)
        unknown = [n for n in nodes if n not in all_inst]
        if unknown:
            raise ParamError("nodes", unknown, "names of service instances: "
                             + ", ".join(all_inst))
    if not nodes:
        raise ParamError("nodes", [], "at least one service instance (this run has none)")
    if axes is None:
        axes = ax
    if axes is None:
        height = 1.0 + 1.4 * len(nodes)
        fig = new_figure(9.0, height, margins=(0.75, 2.35, 0.7, 0.55), hspace=0.4)
        axs = list(fig.subplots(len(nodes), 1, sharex=True, squeeze=False)[:, 0])
        owned = True
    else:
        axs = [axes] if not isinstance(axes, Sequence) else list(axes)
        if len(axs) != len(nodes):
            raise ParamError("axes", f"{len(axs)} axes", f"one per instance: {len(nodes)}")
        fig = root_figure(axs[0])
        owned = False
    arrays = data.pool_arrays(res)
    empty = (np.zeros(0), np.zeros(0), np.zeros(0))
    averaged = False
    utilisation = res.utilisation() if arrays else {}
    busy_color, queue_color = OKABE_ITO["blue"], OKABE_ITO["orange"]
    for i, (ax, name) in enumerate(zip(axs, nodes, strict=True)):
        style_axes(ax)
        node = res.world.nodes[name]
        workers = node.workers if isinstance(node, Instance) else 1
        t, busy, queued = arrays.get(name, empty)
        if not t.size:
            ax.text(0.5, 0.5, "no pool changes recorded"
                    + ("" if res.world.trace.enabled else " (run with trace=True)"),
                    transform=ax.transAxes, ha="center", va="center", fontsize=8, color=INK)
        xb, yb, avg = _steps(t, busy, res.until, max_points)
        xq, yq, _ = _steps(t, busy + queued, res.until, max_points)
        averaged |= avg
        ax.fill_between(xb, 0, yb, step="post", color=busy_color, alpha=0.7, linewidth=0,
                        label="busy workers", gid="busy")
        ax.fill_between(xq, yb, yq, step="post",
                        color=queue_color, alpha=0.7, linewidth=0,
                        label="queued requests", gid="queued")
        ax.axhline(workers, color=INK, linestyle="--", linewidth=1.0,
                   label="pool size (workers)", gid="pool_size")
        if faults:
            fault_bands(ax, res, nodes=[name], label=True, annotate=False)
        top = max(float(workers), float(yq.max()) if yq.size else 0.0)
        ymax = top * 1.12 + 0.5
        ax.set_ylim(0, ymax)
        ax.yaxis.set_major_locator(FixedLocator(_pool_ticks(workers, ymax)))
        ax.set_xlim(0, res.until)
        ax.set_ylabel("requests")
        util = utilisation.get(name, 0.0) if t.size else 0.0
        qmax = int(queued.max()) if queued.size else 0
        # one title per row, not two: every text costs milliseconds per redraw
        set_titles(ax, f"{name} · {workers} workers · mean busy {100 * util:.1f} % · "
                   f"longest queue {qmax}", size=9)
        if i == 0:
            _legend(ax)
        else:  # later rows: only their own fault bands need a key
            _legend(ax, only_gid="fault:")
    axs[-1].set_xlabel("time (s)")
    if owned:
        fig.suptitle("Worker pools: busy workers and queue over time"
                     + (f" (means per {res.until / max_points:.2g} s)" if averaged else ""),
                     fontsize=11, x=0.08 / 9.0, y=1 - 0.1 / height, ha="left", va="top")
    return fig
