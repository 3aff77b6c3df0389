"""Figures against simulated time: latency, outcomes and worker pools.

All three shade the periods in which something was broken (a crashed or
hung instance, a network partition), so a learner sees the cause and its
effect on one time axis.

Each draws through a :class:`simcomm.viz.reuse.Keeper`: called again with
the axes it drew on before (as a dashboard does after every run), it
updates its artists' data instead of building new ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, MaxNLocator
from matplotlib.transforms import blended_transform_factory

from simcomm._checks import is_real
from simcomm.analysis import metrics
from simcomm.errors import ParamError
from simcomm.viz import data, reuse
from simcomm.viz.style import (
    FAULT_COLORS,
    FAULT_LABELS,
    INK,
    OUTCOMES,
    PERCENTILE_STYLES,
    POOL_COLORS,
    figure_for,
    new_figure,
    opaque,
    outcome_color,
    pin_axis_labels,
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

#: Fault kinds shaded by default.
DEFAULT_BANDS = ("down", "hung", "partition")
#: Fault kinds shaded by default only for a period shorter than half the
#: run: a slowdown or an error rate usually lasts the whole run, where a
#: band would only tint everything, but a short one is a trigger to see (the
#: retry storm's).
TRANSIENT_BANDS = ("slow", "errors")


def _legend(ax: Axes, only_gid: str | None = None, handles: list[Any] | None = None,
            x: float = 1.01, wrap: int = 34, **kwargs: Any) -> None:
    """A legend outside the axes, to the right (from ``x``, a fraction of the axes'
    width), so it never hides data.

    ``handles`` adds artists drawn elsewhere (a twin axes) after those of ``ax``.
    With nothing to list, an earlier legend is removed.
    """
    own, labels = ax.get_legend_handles_labels()
    for h in handles or []:
        own.append(h)
        labels.append(h.get_label())
    keep: Sequence[int] = range(len(own))
    if only_gid is not None:
        keep = [i for i, h in enumerate(own) if (h.get_gid() or "").startswith(only_gid)]
    leg = reuse.legend(ax, [own[i] for i in keep], [wrap_label(labels[i], wrap) for i in keep],
                       loc="upper left", bbox_to_anchor=(x, 1.0), borderaxespad=0.0,
                       fontsize=8, frameon=False, **kwargs)
    for h in getattr(leg, "legend_handles", getattr(leg, "legendHandles", [])):
        if isinstance(h, Line2D):  # faint points, but a legend to read at a glance
            h.set_alpha(1.0)


def fault_bands(ax: Axes, res: Result, nodes: Iterable[str] | None = None,
                kinds: Sequence[str] | None = None, *, label: bool = True,
                annotate: bool = True, ymin: float = 0.0, ymax: float = 1.0,
                zorder: float = 0.5, alpha: float | None = None,
                key: str = "fault") -> list[PolyCollection]:
    """Shade the fault periods of ``nodes`` (all if None) on ``ax``'s time axis.

    One translucent band per period, one artist (and legend entry) per kind
    of fault: grey while down, yellow while hung, sky blue for a network
    partition, orange while slowed down, reddish purple while errors are
    injected (:data:`~simcomm.viz.style.FAULT_COLORS`); network partitions
    are shown whatever ``nodes`` is.  ``kinds`` picks the kinds; by default
    the :data:`DEFAULT_BANDS`, and a slowdown or an error rate only where it
    lasted less than half the run (a trigger, not the setting of the run).
    With ``annotate`` the node's name is written at the top of each band
    (when there are few enough to stay legible).  ``ymin``/``ymax``
    (fractions of the axes' height) draw them as a strip instead, e.g. above
    opaque areas; ``alpha`` overrides the translucency.  Inside a figure
    function's drawing pass the bands join its
    :class:`~simcomm.viz.reuse.Keeper` under ``key``, so a redraw updates
    them.
    """
    k = reuse.active(ax) or reuse.Keeper(ax, "fault_bands")  # alone: drawn once
    # plain tuples, not the table: a dashboard draws bands several times a run, and
    # pandas' filtering of a handful of rows costs more than drawing them
    rows = data.fault_rows(res)
    if kinds is None:
        half = res.until / 2
        iv = [r for r in rows if r[1] in DEFAULT_BANDS
              or (r[1] in TRANSIENT_BANDS and r[3] - r[2] < half)]
        kinds = DEFAULT_BANDS + TRANSIENT_BANDS
    else:
        iv = [r for r in rows if r[1] in kinds]
    if nodes is not None:
        keep = {*nodes, "network"}
        iv = [r for r in iv if r[0] in keep]
    if not iv:
        return []
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    out = []
    for kind in kinds:
        sub = [r for r in iv if r[1] == kind]  # (node, kind, start, end, detail)
        if not sub:
            continue
        s = np.array([r[2] for r in sub], dtype=float)
        e = np.array([r[3] for r in sub], dtype=float)
        lo, hi = np.full_like(s, ymin), np.full_like(s, ymax)
        verts = np.stack([np.column_stack([s, lo]), np.column_stack([s, hi]),
                          np.column_stack([e, hi]), np.column_stack([e, lo])], axis=1)
        who = ", ".join(dict.fromkeys(
            f"{r[0]} {r[4]}" if kind in TRANSIENT_BANDS and r[4] else r[0] for r in sub))
        coll = k.polys(f"{key}:{kind}", verts, transform=trans, facecolor=FAULT_COLORS[kind],
                       alpha=alpha if alpha is not None else (0.45 if kind == "hung" else 0.25),
                       edgecolor="none", zorder=zorder, gid=f"fault:{kind}",
                       label=f"{FAULT_LABELS[kind]}: {who}" if label else None)
        out.append(coll)
    if annotate and nodes is None and len(iv) <= 12:
        # bands starting within a line of each other (two nodes crashing together)
        # share one label, a line per node, side by side: never one name over another
        fig = root_figure(ax)
        line = 9.0 * res.until / max(ax.get_position().width * fig.get_figwidth() * 72, 1.0)
        groups: list[tuple[float, list[str]]] = []
        for node, _kind, start, *_ in sorted(iv, key=lambda r: r[2]):
            if groups and start < groups[-1][0] + line * len(groups[-1][1]):
                if node not in groups[-1][1]:
                    groups[-1][1].append(node)
            else:
                groups.append((start, [node]))
        for i, (start, names) in enumerate(groups):
            k.text(f"{key}_name:{i}", start, ymax - 0.02, "\n".join(f" {n}" for n in names),
                   transform=trans, rotation=90, va="top", ha="left", fontsize=7, color=INK,
                   alpha=0.8, clip_on=True, zorder=zorder)
    return out


# -- latency ----------------------------------------------------------------
def binned_percentiles(start: np.ndarray, lat: np.ndarray, edges: np.ndarray,
                       qs: Sequence[float], min_count: int = 5) -> dict[float, np.ndarray]:
    """Percentiles ``qs`` of ``lat`` for the requests started in each bin of
    ``edges`` (NaN where a bin holds fewer than ``min_count``).

    Linear interpolation between order statistics (numpy's and pandas'
    default).  Sorted once and cut at the bin edges: a few times faster
    than a pandas group-by, which a dashboard pays on every run.
    """
    n_bins = len(edges) - 1
    out = {q: np.full(n_bins, np.nan) for q in qs}
    if n_bins < 1:
        return out
    idx = np.searchsorted(edges, start, side="right") - 1
    keep = (idx >= 0) & (idx < n_bins)
    idx, values = idx[keep], np.asarray(lat, dtype=float)[keep]
    order = np.lexsort((values, idx))  # by bin, then by latency within it
    idx, values = idx[order], values[order]
    bounds = np.searchsorted(idx, np.arange(n_bins + 1))
    fractions = np.asarray(qs, dtype=float) / 100.0
    for b in np.flatnonzero(np.diff(bounds) >= min_count):
        seg = values[bounds[b]:bounds[b + 1]]  # sorted: interpolate between ranks
        pos = fractions * (len(seg) - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, len(seg) - 1)
        vals = seg[lo] + (seg[hi] - seg[lo]) * (pos - lo)
        for q, v in zip(qs, vals, strict=True):
            out[q][b] = v
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
    drawn, and their share is in the title beside availability (which counts
    finished requests only).  Drawing again on the same ``ax`` updates it
    in place.
    """
    if window is not None and not (is_real(window) and 0 < window < math.inf):
        raise ParamError("window", window, "a bin width in seconds > 0, or None")
    fig, ax, _ = figure_for(ax, 9.0, 4.0, margins=(0.75, 2.35, 0.4, 0.55))
    k = reuse.keeper(ax, "latency_over_time")
    if k.fresh:
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
    names = [o for o in OUTCOMES if counts.get(o, 0)]
    names += [str(o) for o in counts.index if o not in OUTCOMES]  # custom nodes' outcomes
    for name in names:
        mask = outcome == name
        k.line(f"outcome:{name}", start[mask], lat_plot[mask], linestyle="none", marker="o",
               markersize=2.6, markeredgewidth=0, alpha=alpha, color=outcome_color(name),
               label=f"{name} ({int(counts[name])})", zorder=2.5)
    n_pending = int((rq["outcome"] == "pending").sum())
    if n_pending:
        k.line("pending", [], [], linestyle="none", marker="o", markersize=2.6,
               color=outcome_color("pending"), label=f"pending ({n_pending}, not drawn)")
    top = float(lat_plot.max()) if lat_plot.size else 1.0
    if len(lat) >= 10 and percentiles:
        if window is None:
            rate = len(lat) / res.until
            window = data.nice_step(min(max(res.until / 60.0, 30.0 / rate),
                                        res.until / 4.0))
        edges = np.arange(0.0, res.until + window, window)
        binned = binned_percentiles(start, lat_plot, edges, percentiles)
        for q, values in binned.items():
            style = PERCENTILE_STYLES.get(q, {"color": INK, "linestyle": ":",
                                             "linewidth": 1.4})
            k.stairs(f"p{q:g}", values, edges, baseline=None, fill=False,
                     label=f"p{q:g} per {window:g} s", zorder=2, **style)
    if faults:
        fault_bands(ax, res)
    scale = "log" if log else "linear"
    if ax.get_yscale() != scale:
        ax.set_yscale(scale)
    if log and positive.size:
        ax.set_ylim(float(positive.min()) / 1.5, top * 1.5)
    else:
        ax.set_ylim(0, data.nice_top(1.05 * top))
    ax.set_xlim(0, res.until)
    ax.set_xlabel("request start time (s)")
    ax.set_ylabel("latency (s)" + (", log scale" if log else ""))
    s = data.summary(res)
    # availability counts finished requests only: beside it, what did not finish
    unfinished = (f" · {100 * n_pending / len(rq):.0f} % still pending"
                  if n_pending and len(rq) else "")
    set_titles(ax, "Request latency over time",
               f"p50 {s['p50']:.3g} s · p99 {s['p99']:.3g} s of ok requests · "
               f"availability {100 * s['availability']:.1f} %{unfinished}"
               if s["requests"] else "")
    pin_axis_labels(ax)
    k.finish()
    _legend(ax, markerscale=2.5)
    return fig


# -- outcomes ---------------------------------------------------------------
def _edges(until: float, bin: float | None) -> np.ndarray:
    if bin is None:
        bin = data.nice_step(until / 60.0)
    elif not (is_real(bin) and 0 < bin < math.inf):
        raise ParamError("bin", bin, "a bin width in seconds > 0, or None to choose one")
    n = max(1, int(np.ceil(until / bin - 1e-9)))
    edges = np.arange(n + 1, dtype=float) * bin
    edges[-1] = until  # a last, shorter bin: its rate is over the time it covers
    return edges


def outcome_rates(res: Result, bin: float | None = None, by: str = "start",
                  endpoint: str | None = None) -> pd.DataFrame:
    """Requests per second of each outcome in time bins (the data of the figure).

    Index: the bins' start times (s; the last bin ends at the end of the
    run, so it may be shorter); one column per outcome present.
    ``by="start"`` counts each request in the bin it was sent in (the stack
    then adds up to the offered load), ``by="end"`` in the bin it finished
    in (pending requests have no end and are left out).  ``endpoint``
    counts only the requests to that endpoint (the requests table's
    ``endpoint`` column, for clients that send a mix).
    """
    if by not in ("start", "end"):
        raise ParamError("by", by, "'start' or 'end'")
    edges = _edges(res.until, bin)
    rq = res.requests
    if endpoint is not None:
        known = _endpoints(res)
        if endpoint not in known:
            raise ParamError("endpoint", endpoint, "one of the run's endpoints: "
                             + (", ".join(known) or "none (no client sends a mix)"))
        rq = rq[rq["endpoint"] == endpoint]
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


def _endpoints(res: Result) -> list[str]:
    """The endpoints the run's requests went to, sorted (empty if none is named)."""
    def make() -> list[str]:
        rq = res.requests
        if "endpoint" not in rq.columns:
            return []
        return sorted(str(e) for e in pd.unique(rq["endpoint"].dropna()))
    return data.cached(res, "endpoints", make)  # type: ignore[no-any-return]


def outcomes_over_time(res: Result, bin: float | None = None, ax: Axes | None = None, *,
                       by: str = "start", stacked: bool = True,
                       faults: bool = True, endpoint: str | None = None,
                       legend: bool = True) -> Figure:
    """How many requests per second ended in each outcome, over time.

    What the learner sees: stacked areas, one colour per outcome (green ok
    at the bottom, light green for a fallback's answer, then the failures:
    vermillion error, dark brown timeout, wine short-circuited, indigo
    bulkhead full, ... -- :data:`~simcomm.viz.style.OUTCOME_COLORS` -- and
    grey pending on top); by default each request is counted when it was *sent*
    (``by="start"``), so the top of the stack is the offered load and the
    coloured slices show what became of it -- a crash turns a slice
    vermillion for exactly as long as the grey fault band (a strip along
    the top, naming the node) lasts.
    ``bin`` is the bin width in seconds (default: a round number near
    1/60 of the run); ``stacked=False`` draws one line per outcome instead;
    ``endpoint`` shows only the requests to one endpoint (its name leads
    the title); ``legend=False`` leaves the legend to the caller (a figure
    of several rows shows one).  Drawing again on the same ``ax`` updates it
    in place.
    """
    df = outcome_rates(res, bin, by, endpoint)  # checks the arguments before drawing
    fig, ax, _ = figure_for(ax, 9.0, 3.6, margins=(0.75, 2.35, 0.4, 0.55))
    k = reuse.keeper(ax, "outcomes_over_time")
    if k.fresh:
        style_axes(ax)
    edges = np.append(df.index.to_numpy(dtype=float), res.until)
    base = np.zeros(len(df))
    for name in df.columns:
        rate = df[name].to_numpy()
        color = outcome_color(name)
        if stacked:
            k.stairs(f"outcome:{name}", base + rate, edges, baseline=base, fill=True,
                     facecolor=color, edgecolor="none", alpha=0.85, linewidth=0, label=name)
            base = base + rate
        else:
            k.stairs(f"outcome:{name}", rate, edges, baseline=None, fill=False, color=color,
                     linewidth=1.6, label=name)
    top = float(base.max(initial=0.0)) if stacked else float(df.to_numpy().max(initial=0.0))
    if ax.get_yscale() != "linear":  # axes that showed log latencies before
        ax.set_yscale("linear")
    if faults:  # a strip above the (opaque) areas, where bands stay visible
        ax.set_ylim(0, data.nice_top(1.3 * top))
        fault_bands(ax, res, ymin=0.0 if not stacked else 0.78, zorder=3 if stacked else 0.5)
    else:
        ax.set_ylim(0, data.nice_top(1.05 * top))
    ax.set_xlim(0, res.until)
    ax.set_xlabel(f"request {'start' if by == 'start' else 'end'} time (s)")
    ax.set_ylabel("requests per second (req/s)")
    set_titles(ax, "What happened to the requests" if endpoint is None
               else f"{endpoint}: what happened to its requests",
               f"rates per {df.attrs['bin']:g} s bin, by {by} time"
               + (", stacked" if stacked else ""))
    pin_axis_labels(ax)
    k.finish()
    if legend:
        _legend(ax)
    elif ax.get_legend() is not None:
        ax.get_legend().remove()  # type: ignore[union-attr]
    return fig


# -- worker pools -----------------------------------------------------------
def _steps(t: np.ndarray, v: np.ndarray, until: float, max_points: int
           ) -> tuple[np.ndarray, np.ndarray, bool]:
    """A step function as ``(edges, values)`` from 0 to ``until`` (``values[i]``
    holds on ``[edges[i], edges[i+1])``); time-weighted means on a grid of
    ``max_points`` bins when it changes more often than that."""
    if t.size > max_points:
        edges = np.linspace(0.0, until, max_points + 1)
        return edges, metrics.step_means(t, v, edges), True
    return np.concatenate(([0.0], t, [until])), np.concatenate(([0.0], v)), False


def _pool_ticks(workers: int, ymax: float) -> list[float]:
    """A few round y ticks up to ``ymax``, always including the pool size."""
    ticks = [float(v) for v in MaxNLocator(3, integer=True, steps=[1, 2, 5, 10])
             .tick_values(0, ymax) if 0 <= v <= ymax]
    near = 0.15 * ymax
    return sorted({0.0, *[v for v in ticks if abs(v - workers) > near], float(workers)})


#: Marks figures ``pool_usage`` made itself: given their axes again, it also
#: updates the figure's title.
_OWNER = "_simcomm_owner"


def _queue_axes(ax: Axes, k: reuse.Keeper) -> Axes:
    """The twin axes (shared time, own right-hand scale) for ``ax``'s queue."""
    twin = getattr(k, "twin", None)
    if twin is None or twin.figure is None:
        twin = ax.twinx()
        twin.set_label("queue")
        for side in ("top", "left"):
            twin.spines[side].set_visible(False)
        twin.spines["right"].set_color(POOL_COLORS["queued"])
        twin.tick_params(axis="y", colors=POOL_COLORS["queued"], labelsize=8)
        twin.yaxis.set_major_locator(MaxNLocator(3, integer=True, steps=[1, 2, 5, 10]))
        twin.set_zorder(ax.get_zorder() + 0.1)  # its line above the busy area...
        twin.patch.set_visible(False)  # ...without hiding it
        k.twin = twin  # type: ignore[attr-defined]
    return twin


def pool_usage(res: Result, nodes: Sequence[str] | None = None,
               axes: Axes | Sequence[Axes] | None = None, *, ax: Axes | None = None,
               max_points: int = 600, faults: bool = True) -> Figure:
    """Busy workers and queued requests of each service instance over time.

    What the learner sees: one row per instance (in call order: gateway
    first), sharing the time axis.  The **blue area** is the number of busy
    workers, read on the left scale, and the **dashed black line** the
    pool size: when blue reaches the line the pool is exhausted.  The
    **vermillion line** is the number of requests waiting in the queue,
    read on its own **right-hand scale** (vermillion ticks): it equals the
    left scale while the queue is shorter than the pool, and stretches when
    the queue outgrows it, so a queue of 300 never flattens ten busy
    workers.  A **yellow** band (with a yellow strip along the top) shows
    when that instance was hung, a **grey** one when it was down.  An
    instance whose pool changed more than ``max_points`` times is drawn as
    time-weighted means over ``max_points`` bins (about one per pixel; the
    title says so), which reads better than thousands of one-request
    spikes and draws faster.  ``axes`` draws into the caller's axes, one
    per instance (``ax=`` is the same for a single instance); given the
    axes of a figure it drew before, it updates that figure in place.
    The colours are :data:`~simcomm.viz.style.POOL_COLORS` and
    :data:`~simcomm.viz.style.FAULT_COLORS`.
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
    height = 1.0 + 1.4 * len(nodes)
    if axes is None:
        fig = new_figure(9.0, height, margins=(0.6, 2.3, 0.7, 0.55), hspace=0.45)
        grid = fig.add_gridspec(len(nodes), 1)
        axs: list[Axes] = []
        for i in range(len(nodes)):  # each row, then its queue's twin: fig.axes pairs them
            axs.append(fig.add_subplot(grid[i, 0], sharex=axs[0] if axs else None))
            _queue_axes(axs[-1], reuse.keeper(axs[-1], "pool_usage"))
            axs[-1].tick_params(axis="x", labelbottom=i == len(nodes) - 1)
        setattr(fig, _OWNER, "pool_usage")
    else:
        axs = [axes] if not isinstance(axes, Sequence) else list(axes)
        if len(axs) != len(nodes):
            raise ParamError("axes", f"{len(axs)} axes", f"one per instance: {len(nodes)}")
        fig = root_figure(axs[0])
    owned = getattr(fig, _OWNER, None) == "pool_usage"
    arrays = data.pool_arrays(res)
    empty = (np.zeros(0), np.zeros(0), np.zeros(0))
    averaged = False
    utilisation = res.utilisation()
    busy_face = opaque(POOL_COLORS["busy"], 0.7)  # opaque: a fault band cannot tint it
    for i, (ax, name) in enumerate(zip(axs, nodes, strict=True)):
        k = reuse.keeper(ax, "pool_usage")
        if k.fresh:
            style_axes(ax)
        twin = _queue_axes(ax, k)
        node = res.world.nodes[name]
        workers = node.workers if isinstance(node, Instance) else 1
        t, busy, queued = arrays.get(name, empty)
        if not t.size:
            k.text("empty", 0.5, 0.5, "no pool changes recorded"
                   + ("" if res.world.trace.enabled else " (run with trace=True)"),
                   transform=ax.transAxes, ha="center", va="center", fontsize=8, color=INK)
        eb, vb, avg = _steps(t, busy, res.until, max_points)
        eq, vq, _ = _steps(t, queued, res.until, max_points)
        averaged |= avg
        k.stairs("busy", vb, eb, baseline=0.0, fill=True, facecolor=busy_face,
                 edgecolor="none", linewidth=0, label="busy workers (left)", zorder=1)
        k.line("pool_size", [0.0, 1.0], [workers, workers], transform=ax.get_yaxis_transform(),
               color=POOL_COLORS["pool_size"], linestyle="--", linewidth=1.0,
               label="pool size (workers)", zorder=2)
        if faults:  # faint behind the data, and a strip along the top always in sight
            fault_bands(ax, res, nodes=[name], label=False, annotate=False, zorder=0.5,
                        alpha=0.3)
            fault_bands(ax, res, nodes=[name], label=True, annotate=False, ymin=0.9,
                        zorder=3, alpha=0.9, key="fault_strip")
        qk = reuse.keeper(twin, "pool_usage_queue")
        queue = qk.stairs("queued", vq, eq, baseline=None, fill=False,
                          edgecolor=POOL_COLORS["queued"], linewidth=1.5,
                          label="queued requests (right)", zorder=2)
        qk.finish()
        qmax = float(vq.max(initial=0.0))
        ymax = 1.15 * workers + 0.3
        ax.set_ylim(0, ymax)
        ax.yaxis.set_major_locator(FixedLocator(_pool_ticks(workers, ymax)))
        twin.set_ylim(0, ymax if 1.12 * qmax <= ymax else data.nice_top(1.12 * qmax))
        if ax.get_xlim() != (0.0, res.until):  # shared: setting one row sets them all
            ax.set_xlim(0, res.until)
        ax.set_ylabel("busy", color=POOL_COLORS["busy"], fontsize=9)
        twin.set_ylabel("queued", color=POOL_COLORS["queued"], fontsize=9, rotation=-90,
                        va="bottom")
        util = utilisation.get(name, 0.0)
        qlong = int(queued.max()) if queued.size else 0
        # one title per row, not two: every text costs milliseconds per redraw
        set_titles(ax, f"{name} · {workers} worker{'' if workers == 1 else 's'} · "
                   f"mean busy {100 * util:.1f} % · "
                   f"longest queue {qlong}", size=9)
        k.finish()
        x = 1.0 + 0.55 / (ax.get_position().width * fig.get_figwidth())  # past the right scale
        if i == 0:
            _legend(ax, handles=[queue], x=x, wrap=22)
        else:  # later rows: only their own fault bands need a key
            _legend(ax, only_gid="fault:", x=x, wrap=22)
    for ax in axs[:-1]:
        ax.set_xlabel("")
    axs[-1].set_xlabel("time (s)")
    for ax in axs:
        pin_axis_labels(ax)
        pin_axis_labels(getattr(reuse.keeper_of(ax), "twin", ax))
    if owned:
        fig.suptitle("Worker pools: busy workers (blue, left scale) and queue (vermillion, "
                     "right scale)"
                     + (f"; means per {res.until / max_points:.2g} s" if averaged else ""),
                     fontsize=10.5, x=0.08 / 9.0, y=1 - 0.1 / height, ha="left", va="top")
    return fig
