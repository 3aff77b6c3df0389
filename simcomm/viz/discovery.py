"""Figures of service discovery (issue 10): who served, who was registered,
who was visible to the callers, and where the calls went meanwhile.

A registry's picture of the fleet lags behind the fleet, and a caller's
picture lags behind the registry's (*Microservices Patterns* §3.2.4): an
instance that dies without a clean shutdown keeps receiving calls until
every cache on the way has let it go.  These views show that lag:

* :func:`instance_timeline` -- one row per instance: a bar of what its
  process was doing (starting, serving, draining, hung, down, stopped),
  above it two thin bands, *registered* (in a registry) and *visible* (in
  at least one caller's view), and the **detection lag** as a hatched band
  from the instance's death to the last call routed to it, with the churn
  (launches, crashes, hangs, shutdowns) marked;
* :func:`stale_calls_over_time` -- calls per second sent to instances that
  were not serving, stacked by the state they were in, every death marked:
  the area after a death is the price of the lag;
* :func:`load_share` -- each instance's share of the routed calls (answered
  and failed), against the fair share, a slowed instance marked; and
  :func:`load_share_comparison` (not a view: it takes several runs), the
  shares of runs side by side, one bar per balancer -- least-outstanding
  and power-of-two send less to a slow instance than round robin.

Their data are tables (:func:`timeline_intervals`, :func:`stale_series`,
:func:`load_shares`), so notebooks and tests read the numbers the figures
draw.  The rules behind them -- an instance's state at each instant, a
call's staleness, each death's detection lag, registered and visible
intervals -- are :mod:`simcomm.analysis.discovery`'s, read through the
Result (``res.routes``, ``res.detection()``) and the trace's ``events``
and ``discovery`` rows, so a figure shows the summary's numbers
(``stale_calls``, ``detection_lag``); this module only draws.  The
registry's own outage is a band behind the timeline and the stale calls.
Colours: Okabe & Ito's, one fixed colour per instance state
(:data:`STATE_COLORS`, the topology's node health colours: green serving,
orange hung, vermillion down).  Every figure draws through
:class:`~simcomm.viz.reuse.Keeper`: given the axes it drew before (``ax=``,
as :func:`simcomm.viz.redraw` does) it updates its artists in place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from simcomm._checks import is_real, is_whole
from simcomm.errors import ParamError
from simcomm.viz import data, reuse
from simcomm.viz.ordering import _titles
from simcomm.viz.style import (
    EXTRA_COLORS,
    INK,
    OKABE_ITO,
    OUTCOME_COLORS,
    SERIES_COLORS,
    figure_for,
    opaque,
    pin_axis_labels,
    root_figure,
    style_axes,
    wrap_label,
)
from simcomm.viz.timeseries import _edges, fault_bands

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simcomm.result import Result

__all__ = ["DEATH_MARKERS", "MAX_ROWS", "STALE_STATES", "STATES", "STATE_COLORS",
           "STATE_LABELS", "instance_timeline", "load_share", "load_share_comparison",
           "load_shares", "stale_calls_over_time", "stale_series", "timeline_intervals"]

#: An instance's process states, in the order legends list them
#: (:func:`simcomm.analysis.discovery.instance_states`).
STATES: tuple[str, ...] = ("starting", "serving", "draining", "hung", "down", "stopped")

#: The states a call to which is *stale*: the instance could not answer it
#: (launched but not started, hung, crashed, or gone for good).
STALE_STATES: tuple[str, ...] = ("down", "hung", "starting", "stopped")

#: One fixed colour per state: serving green, hung orange and down
#: vermillion as a node's health in :func:`~simcomm.viz.topology`; starting
#: sky blue (not serving yet), draining light green (still serving, on its
#: way out), stopped light grey (gone for good after a clean shutdown).
STATE_COLORS: dict[str, str] = {
    "starting": OKABE_ITO["sky_blue"],
    "serving": opaque(OKABE_ITO["bluish_green"], 0.8),
    "draining": EXTRA_COLORS["light_green"],
    "hung": OKABE_ITO["orange"],
    "down": OKABE_ITO["vermillion"],
    "stopped": "#B3B3B3",
}
STATE_LABELS: dict[str, str] = {
    "starting": "starting (not serving yet)",
    "serving": "serving",
    "draining": "draining (still serving)",
    "hung": "hung (never answers)",
    "down": "down (crashed)",
    "stopped": "stopped (shut down)",
}
#: The thin bands above each instance's bar: in a registry, and in a caller's view.
BAND_COLORS: dict[str, str] = {"registered": OKABE_ITO["blue"],
                               "visible": OKABE_ITO["reddish_purple"]}
BAND_LABELS: dict[str, str] = {
    "registered": "registered (in a registry)",
    "visible": "visible (in a caller's view)",
}

#: How the churn is marked on the timeline: ``event -> (marker, label)``.
DEATH_MARKERS: dict[str, tuple[str, str]] = {
    "launch": ("^", "launched"),
    "crash": ("X", "crash (no cancel)"),
    "node_failure": ("*", "machine failure"),
    "hang": ("D", "hang"),
    "drain": ("v", "shutdown begins (drain)"),
    "stop": ("s", "stopped"),
    "restart": ("P", "restarted"),
}

#: Most instances :func:`instance_timeline` draws a row for, unless told which.
MAX_ROWS = 12

#: A death's kind in the timeline's title ("... after its crash").
_DEATH_WORDS = {"crash": "crash", "node_failure": "machine failed", "hang": "hang",
                "stop": "stop"}

#: How a death is written above :func:`stale_calls_over_time`.
_DEATH_SYMBOLS = {"crash": "✕", "node_failure": "✱", "hang": "◆", "stop": "■"}

#: The registry faults drawn behind the discovery figures.
_REGISTRY_FAULT_KINDS = ("down", "hung", "partition")

_LAG_HATCH = {"facecolor": "none", "edgecolor": INK, "hatch": "////"}


# =====================================================================================
# the run's tables
# =====================================================================================
def _discovery_rows(res: Result) -> list[tuple[Any, ...]]:
    """``trace.discovery``'s rows in time order (stable)."""
    return data.cached(res, "discovery_rows", lambda: sorted(  # type: ignore[no-any-return]
        res.world.trace.discovery, key=lambda r: r[0]))


def _natural(name: str) -> tuple[Any, ...]:
    """A sort key putting ``order-2`` before ``order-10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _instances(res: Result) -> list[str]:
    """The instances of the discovered services: every instance a call was
    routed to or a registry or view named, and every node of those services;
    in the order the run added them (launch order), the others by name."""
    def make() -> list[str]:
        names: dict[str, None] = {}
        services: set[str] = set()
        for row in res.world.trace.routes:  # (time, trace_id, caller, service, instance, ...)
            services.add(str(row[3]))
            if row[4] is not None:
                names[str(row[4])] = None
        for row in _discovery_rows(res):  # (time, event, node, service, instance, detail)
            if row[4] is not None and row[1] != "self_preservation":
                names[str(row[4])] = None
                services.add(str(row[3]))
        for name, node in res.world.nodes.items():
            if getattr(node, "service", None) in services and \
                    getattr(node, "kind", None) not in ("eureka", "consul", "kubernetes", "dns"):
                names[name] = None
        order = {n: i for i, n in enumerate(res.world.nodes)}
        return sorted(names, key=lambda n: (order.get(n, len(order)), _natural(n)))
    return data.cached(res, "discovery_instances", make)  # type: ignore[no-any-return]


def _states(res: Result) -> dict[str, list[tuple[float, float, str]]]:
    """Per instance of :func:`_instances`: its ``(start, end, state)``
    stretches in time order, by
    :func:`simcomm.analysis.discovery.instance_states` (an instance without
    a lifecycle event served the whole run)."""
    def make() -> dict[str, list[tuple[float, float, str]]]:
        from simcomm.analysis.discovery import instance_states

        df = instance_states(res.world.trace.events, until=float(res.until))
        out: dict[str, list[tuple[float, float, str]]] = {n: [] for n in _instances(res)}
        for inst, s, e, st in zip(df["instance"].tolist(), df["start"].tolist(),
                                  df["end"].tolist(), df["state"].tolist(), strict=True):
            if inst in out and e > s:
                out[inst].append((float(s), float(e), str(st)))
        for seq in out.values():
            if not seq:
                seq.append((0.0, float(res.until), "serving"))
        return out
    return data.cached(res, "discovery_states", make)  # type: ignore[no-any-return]


def _routes(res: Result) -> pd.DataFrame:
    """``res.routes``: the routed calls with the instance's ``state`` when each
    was sent and ``stale`` (:func:`simcomm.analysis.discovery.routes_with_state`)."""
    return data.cached(res, "discovery_routes", lambda: res.routes)  # type: ignore[no-any-return]


def _deaths(res: Result) -> pd.DataFrame:
    """``res.detection()``: one row per death of a routed service's instance,
    ``instance, died, kind, stale_calls, last_stale_call, lag``
    (:func:`simcomm.analysis.discovery.detection`)."""
    return data.cached(res, "discovery_deaths", res.detection)  # type: ignore[no-any-return]


def _bands(res: Result) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{"registered" | "visible": {instance: [(start, end), ...]}}``: in at
    least one registry's answers (per registry, then their union), in at
    least one caller's view (:func:`simcomm.analysis.discovery.registered_intervals`,
    :func:`~simcomm.analysis.discovery.visible_intervals`)."""
    def make() -> dict[str, dict[str, list[tuple[float, float]]]]:
        from simcomm.analysis.discovery import registered_intervals, visible_intervals

        rows = _discovery_rows(res)
        until = float(res.until)
        out: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for band, df in (("registered", registered_intervals(rows, until)),
                         ("visible", visible_intervals(rows, until))):
            per: dict[str, list[tuple[float, float]]] = {}
            for inst, s, e in zip(df["instance"].tolist(), df["start"].tolist(),
                                  df["end"].tolist(), strict=True):
                per.setdefault(str(inst), []).append((float(s), float(e)))
            out[band] = {inst: _union(iv) for inst, iv in per.items()}
        return out
    return data.cached(res, "discovery_bands", make)  # type: ignore[no-any-return]


def _union(iv: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of intervals, as sorted disjoint intervals."""
    out: list[tuple[float, float]] = []
    for s, e in sorted(iv):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def timeline_intervals(res: Result) -> pd.DataFrame:
    """Every stretch :func:`instance_timeline` draws: ``instance, layer, state,
    start, end``.

    ``layer`` is ``process`` (``state`` one of :data:`STATES`: what the
    instance's process did, from its events), ``registered`` (in at least
    one registry: from ``register`` / ``passing`` / ``ready`` to ``cancel``
    / ``evict`` / ``critical`` / ``reap`` / ``unready``, per registry),
    ``visible`` (in at least one caller's or router's view: ``visible`` to
    ``hidden``) or ``lag`` (the detection lag of a death: from the death to
    the last call routed to the instance while it could not answer;
    ``state`` is the death's kind: ``crash``, ``node_failure``, ``hang`` or
    ``stop``).  A stretch still open at the end of the run ends at
    ``until``.  The registered and visible layers need the discovery
    table, kept with ``trace=True``; without it they have no rows.
    """
    return data.cached(res, "discovery_timeline",  # type: ignore[no-any-return]
                       lambda: _timeline_intervals(res)).copy()


def _timeline_intervals(res: Result) -> pd.DataFrame:
    rows: list[tuple[str, str, str, float, float]] = []
    states = _states(res)
    bands = _bands(res)
    reg, vis = bands["registered"], bands["visible"]
    for inst in _instances(res):
        rows += [(inst, "process", st, s, e) for s, e, st in states.get(inst, [])]
        rows += [(inst, "registered", "registered", s, e) for s, e in reg.get(inst, [])]
        rows += [(inst, "visible", "visible", s, e) for s, e in vis.get(inst, [])]
    d = _deaths(res)
    for inst, died, kind, lag in zip(d["instance"].tolist(), d["died"].tolist(),
                                     d["kind"].tolist(), d["lag"].tolist(), strict=True):
        if lag > 0:
            rows.append((str(inst), "lag", str(kind), float(died), float(died) + float(lag)))
    order = {n: i for i, n in enumerate(_instances(res))}
    layers = {"process": 0, "registered": 1, "visible": 2, "lag": 3}
    rows.sort(key=lambda r: (order.get(r[0], len(order)), layers[r[1]], r[3]))
    return pd.DataFrame(rows, columns=["instance", "layer", "state", "start", "end"])


def stale_series(res: Result, bin: float | None = None) -> pd.DataFrame:
    """Per time bin, calls per second routed to instances that were not serving.

    Columns: one per state of :data:`STALE_STATES` (the calls sent, in the
    bin, to an instance in that state), ``stale`` (their sum), ``calls``
    (every call routed to an instance) and ``no_instance`` (calls for
    which discovery found no instance at all).  Each call counts once, in
    the bin it was sent in; a retry on another instance is another call.
    Index: the bins' starts (the last bin ends at the end of the run).
    ``attrs["bin"]`` is the bin width, ``attrs["stale_calls"]`` and
    ``attrs["calls"]`` the totals over the run.  The routes table is kept
    without the trace, so this needs none.
    """
    edges = _edges(res.until, bin)
    width = np.diff(edges)
    df = _routes(res)
    t = df["time"].to_numpy(dtype=float)
    found = df["instance"].notna().to_numpy()
    state = df["state"].to_numpy(dtype=object)
    cols: dict[str, np.ndarray] = {}
    stale_total = np.zeros(len(width))
    for st in STALE_STATES:
        n = np.histogram(t[found & (state == st)], bins=edges)[0]
        cols[st] = n / width
        stale_total = stale_total + n
    cols["stale"] = stale_total / width
    cols["calls"] = np.histogram(t[found], bins=edges)[0] / width
    cols["no_instance"] = np.histogram(t[~found], bins=edges)[0] / width
    out = pd.DataFrame(cols, index=pd.Index(edges[:-1], name="time"))
    out.attrs["bin"] = float(width[0])
    out.attrs["stale_calls"] = int(df["stale"].astype(bool).sum())
    out.attrs["calls"] = int(found.sum())
    return out


def load_shares(res: Result) -> pd.DataFrame:
    """Per instance, its share of the calls routed to an instance: ``instance,
    calls, share`` (of all routed calls), ``ok`` and ``failed`` (calls
    answered ``ok``, and the others that finished), ``mean_latency`` (of its
    answered calls, s; NaN without any) and ``slowdown`` (the largest
    slowdown factor injected into it during the run; 1 for none).

    ``fair`` is the instance's fair share: each routed call split evenly
    among the instances serving (or draining) when it was sent -- what an
    even balancer with a perfect, instant picture of the fleet would give:
    1 / n for a fleet of n that never changes, less for an instance that
    served part of the run, nothing while it was dead (a stale call is
    more than its fair share).  Every instance of the discovered services
    has a row, in launch order, those that got no call with 0.
    ``attrs["calls"]`` is the total of routed calls.
    """
    df = _routes(res)
    df = df[df["instance"].notna()]
    insts = _instances(res)
    total = len(df)
    calls = df.groupby("instance", sort=False).size()
    outcome = df["outcome"].astype(object)
    ok = df[outcome == "ok"]
    done = df[outcome.notna() & (outcome != "pending")]
    n_ok = ok.groupby("instance", sort=False).size()
    n_done = done.groupby("instance", sort=False).size()
    lat = (ok["end"].astype(float) - ok["time"].astype(float)).groupby(
        ok["instance"], sort=False).mean()
    slow: dict[str, float] = {}
    for node, kind, _a, _b, detail in data.fault_rows(res):
        if kind == "slow":
            try:
                f = float(str(detail).lstrip("x"))
            except ValueError:
                continue
            slow[node] = max(slow.get(node, 1.0), f)
    fair = _fair(res, df["time"].to_numpy(dtype=float), insts)
    rows = []
    for inst, f in zip(insts, fair, strict=True):
        c = int(calls.get(inst, 0))
        rows.append((inst, c, c / total if total else math.nan, float(f),
                     int(n_ok.get(inst, 0)), int(n_done.get(inst, 0)) - int(n_ok.get(inst, 0)),
                     float(lat.get(inst, math.nan)), slow.get(inst, 1.0)))
    out = pd.DataFrame(rows, columns=["instance", "calls", "share", "fair", "ok", "failed",
                                      "mean_latency", "slowdown"])
    out.attrs["calls"] = total
    return out


def _fair(res: Result, sent: np.ndarray, insts: Sequence[str]) -> np.ndarray:
    """Per instance of ``insts``: its fair share of the calls sent at ``sent``
    (each split evenly among the instances serving or draining then)."""
    states = _states(res)
    serving = np.zeros((len(insts), sent.size), dtype=bool)
    for i, inst in enumerate(insts):
        for s, e, st in states.get(inst, []):
            if st in ("serving", "draining"):
                serving[i] |= (sent >= s) & (sent < e)
    n = serving.sum(axis=0)
    if not sent.size:
        return np.full(len(insts), math.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        credit = np.where(n > 0, 1.0 / np.maximum(n, 1), 0.0)
    return np.asarray((serving * credit).sum(axis=1) / sent.size, dtype=float)


# =====================================================================================
# drawing helpers
# =====================================================================================
def _span_verts(s: Any, e: Any, lo: Any,
                hi: Any) -> np.ndarray:
    """Rectangles ``[s, e] × [lo, hi]`` as PolyCollection vertices."""
    s_a, e_a = np.asarray(s, dtype=float), np.asarray(e, dtype=float)
    lo_a, hi_a = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if not s_a.size:
        return np.zeros((0, 4, 2))
    return np.stack([np.column_stack([s_a, lo_a]), np.column_stack([s_a, hi_a]),
                     np.column_stack([e_a, hi_a]), np.column_stack([e_a, lo_a])], axis=1)


def _no_data(k: reuse.Keeper, ax: Axes, text: str) -> None:
    """A note in the middle of an empty axes (what the figure cannot show, and why)."""
    k.text("no_data", 0.5, 0.5, wrap_label(text, 70).replace("\n  ", "\n"),
           transform=ax.transAxes, ha="center", va="center", fontsize=9, color=INK,
           zorder=6, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85,
                           "pad": 2})


def _legend(ax: Axes, handles: Sequence[Any], labels: Sequence[str], wrap: int = 30) -> None:
    reuse.legend(ax, list(handles), [wrap_label(s, wrap) for s in labels], loc="upper left",
                 bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)


def _bin(bin: float | None) -> None:
    if bin is not None and not (is_real(bin) and 0 < bin < math.inf):
        raise ParamError("bin", bin, "a bin width in seconds > 0, or None to choose one")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ParamError(name, value, "True or False")


def _pick_rows(res: Result, instances: Any, max_rows: int) -> list[str]:
    """The instances to draw: those asked for, or (default) every one, up to
    ``max_rows`` -- first those with a story (one that died, or was launched
    after time 0: a replacement, a scale-out), then the others, in launch
    order."""
    known = _instances(res)
    if instances is None:
        if len(known) <= max_rows:
            return known
        died = set(_deaths(res)["instance"].tolist())
        states = _states(res)
        late = {n for n in known if any(st == "starting" and s > 0
                                        for s, _e, st in states.get(n, []))}
        keep = set([n for n in known if n in died or n in late][:max_rows])
        keep |= set([n for n in known if n not in keep][:max_rows - len(keep)])
        return [n for n in known if n in keep]
    names = [instances] if isinstance(instances, str) else instances
    if not isinstance(names, Sequence) or isinstance(names, bytes) or not names:
        raise ParamError("instances", instances, "names of instances of this run: "
                         + (", ".join(known[:20]) or "none"))
    out = []
    for n in names:
        if n not in known:
            raise ParamError("instances", n, "names of instances of this run: "
                             + (", ".join(known[:20]) or "none"))
        out.append(str(n))
    return out


def _balancer(res: Result) -> str | None:
    """The balancer a run's parameters name, if any (the ``discovery``
    scenario's ``auto`` resolved to the one it stands for)."""
    p = res.params
    value = getattr(p, "balancer", None)
    if not isinstance(value, str):
        return None
    if value == "auto":
        from simcomm.scenarios.discovery import Params, balancer_name

        return balancer_name(p) if isinstance(p, Params) else None
    return value


# =====================================================================================
# the instance timeline
# =====================================================================================
def instance_timeline(res: Result, instances: Any = None, ax: Axes | None = None, *,
                      max_rows: int = MAX_ROWS, markers: bool = True,
                      faults: bool = True) -> Figure:
    """Each instance's life against what the registry and the callers knew of it.

    What the learner sees: a row per instance (launch order).  Its **bar**
    is what the process was doing: green serving, sky blue starting, light
    green draining, orange hung, vermillion down (crashed), light grey
    stopped (:data:`STATE_COLORS`).  Above the bar two thin bands: **blue**
    while the instance was *registered* (in a registry) and **reddish
    purple** while it was *visible* (in at least one caller's view, the
    list a balancer picks from).  A **hatched band** over the row runs from
    the instance's death to the last call routed to it -- the **detection
    lag**, written at its end: with Eureka after a crash without cancel the
    blue band outlives the bar by a lease expiry and an eviction run, the
    purple one outlives the blue by the response cache, the client fetch
    and Ribbon's list refresh, and calls keep coming until it ends.  After
    a clean shutdown both bands stop at the drain and the lag is nil.
    Markers: ▲ launch (after time 0: a replacement, a scale-out), ✕ crash,
    ✱ machine failure, ◆ hang, ▼ shutdown begins (drain), ■ stop, ✚ restart.
    Behind the rows (``faults``), the registry's own outage as a translucent
    band -- grey while it is down, yellow while hung, sky blue while cut
    off: a caller with a cached list keeps its bands through it, one without
    (``cache=False``) finds no instance at all.

    ``instances`` picks rows (names; default every instance, at most
    ``max_rows``: those that died or were launched late first).  The registered and visible
    bands need the discovery table (a run with ``trace=True``); the bars
    and the lag need only the events and the routes, always kept.
    """
    if not (is_whole(max_rows) and max_rows >= 1):
        raise ParamError("max_rows", max_rows, "a whole number >= 1")
    _flag("markers", markers)
    _flag("faults", faults)
    rows = _pick_rows(res, instances, int(max_rows))
    n = max(1, len(rows))
    iv = timeline_intervals(res)
    iv = iv[iv["instance"].isin(rows)]
    points = _churn_points(res, rows) if markers else {}
    extra = len(_registry_fault_kinds(res)) if faults else 0
    fig, ax, _owned = figure_for(ax, 9.0, timeline_height(n, _legend_lines(iv, points) + extra),
                                 margins=(1.0, 2.4, 0.55, 0.5))
    k = reuse.keeper(ax, "instance_timeline")
    if k.fresh:
        ax.grid(True, axis="x", color="#E5E5E5", linewidth=0.7)
        ax.set_axisbelow(True)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", length=0)
    until = float(res.until)
    ax.set_xlim(0, until)
    ax.set_ylim(n - 0.5, -0.55)
    y_of = {name: i for i, name in enumerate(rows)}
    y = iv["instance"].map(y_of).to_numpy(dtype=float)
    handles: list[Any] = []
    labels: list[str] = []
    geometry = {"visible": (-0.40, -0.31), "registered": (-0.27, -0.18),
                "process": (-0.12, 0.36), "lag": (-0.12, 0.36)}
    layer = iv["layer"].to_numpy(dtype=object)
    state = iv["state"].to_numpy(dtype=object)
    s_all = iv["start"].to_numpy(dtype=float)
    e_all = iv["end"].to_numpy(dtype=float)
    # a stretch shorter than a pixel still shows: at least 1/600 of the run
    e_all = np.maximum(e_all, s_all + until / 600.0)
    for st in STATES:
        m = (layer == "process") & (state == st)
        if not m.any():
            continue
        lo, hi = geometry["process"]
        handles.append(k.polys(f"state:{st}", _span_verts(s_all[m], e_all[m], y[m] + lo,
                                                          y[m] + hi),
                               facecolor=STATE_COLORS[st], edgecolor="none", linewidth=0,
                               zorder=2, gid=f"state:{st}"))
        labels.append(STATE_LABELS[st])
    for band in ("registered", "visible"):
        m = layer == band
        if not m.any():
            continue
        lo, hi = geometry[band]
        handles.append(k.polys(f"band:{band}", _span_verts(s_all[m], e_all[m], y[m] + lo,
                                                           y[m] + hi),
                               facecolor=BAND_COLORS[band], edgecolor="none", linewidth=0,
                               zorder=2, gid=f"band:{band}"))
        labels.append(BAND_LABELS[band])
    m = layer == "lag"
    if m.any():
        lo, hi = geometry["lag"]
        handles.append(k.polys("lag", _span_verts(s_all[m], iv["end"].to_numpy(float)[m],
                                                  y[m] + lo, y[m] + hi),
                               linewidth=0, zorder=3, gid="lag", **_LAG_HATCH))
        labels.append("detection lag: from the death to the last call sent to it")
        for j, (s, e, yy) in enumerate(zip(s_all[m], iv["end"].to_numpy(float)[m], y[m],
                                           strict=True)):
            right = max(e, s + until / 60.0) + until / 150.0  # clear of the death's mark
            inside = right > until * 0.9
            k.text(f"lag:{j}", e - until / 150.0 if inside else right, yy + 0.12,
                   f"lag {e - s:.3g} s", ha="right" if inside else "left", va="center",
                   fontsize=7.5, color=INK, zorder=5,
                   bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85,
                         "pad": 1})
    _churn_markers(k, points, y_of, handles, labels)
    if faults:
        _registry_bands(k, ax, res, handles, labels)
    if not rows:
        _no_data(k, ax, "no instance of a discovered service in this run: nothing was "
                        "routed through a discovery client or a router")
    elif not res.world.trace.enabled:
        k.text("untraced", 1.0, -0.02, "registered and visible bands need trace=True",
               transform=ax.transAxes, ha="right", va="top", fontsize=7.5, color=INK)
    ax.set_yticks(list(range(len(rows))), rows, fontsize=8)
    ax.set_xlabel("time (s)")
    d = _deaths(res)
    shown = d[d["instance"].isin(rows)]
    lags = shown["lag"].to_numpy(dtype=float)
    lagged = shown[lags > 0]
    if not len(shown):
        title = "No instance died: no call went to a dead one"
    elif len(lagged) == 1:
        row = lagged.iloc[0]
        title = (f"{row['instance']} kept receiving calls for {float(row['lag']):.3g} s "
                 f"after its {_DEATH_WORDS.get(str(row['kind']), str(row['kind']))}")
    elif len(lagged):
        kinds = set(lagged["kind"].astype(str))
        who, when = (("Stopped instances", "they stopped") if kinds == {"stop"} else
                     ("Hung instances", "they hung") if kinds == {"hang"} else
                     ("Dead instances", "dying"))
        title = (f"{who} kept receiving calls for up to {lags.max():.3g} s after {when}")
    else:
        title = "No call reached an instance after its death"
    known = len(_instances(res))
    stale = int(shown["stale_calls"].sum()) if len(shown) else 0
    right = f"{stale} stale call{'s' * (stale != 1)}"
    if len(shown):
        right = (f"detection lag {lags.mean():.3g} s (mean of {len(shown)} death"
                 f"{'s' * (len(shown) != 1)})\n" + right)
    if len(rows) < known and instances is None:
        right = f"{len(rows)} of {known} instances shown\n" + right
    _titles(k, ax, title, right)
    pin_axis_labels(ax)
    k.finish()
    _legend(ax, handles, labels)
    return fig


def _registry_faults(res: Result) -> list[tuple[str, str, float, float, str]]:
    """The fault periods of the run's registry servers (down, hung) and its
    network partitions: ``(node, kind, start, end, detail)``."""
    from simcomm.discovery.registry import RegistryServer

    def make() -> list[tuple[str, str, float, float, str]]:
        names = {n for n, node in res.world.nodes.items() if isinstance(node, RegistryServer)}
        return [r for r in data.fault_rows(res) if r[1] in _REGISTRY_FAULT_KINDS
                and (r[0] in names or r[1] == "partition")]
    return data.cached(res, "discovery_registry_faults", make)  # type: ignore[no-any-return]


def _registry_fault_kinds(res: Result) -> tuple[str, ...]:
    present = {r[1] for r in _registry_faults(res)}
    return tuple(kind for kind in _REGISTRY_FAULT_KINDS if kind in present)


def _registry_bands(k: reuse.Keeper, ax: Axes, res: Result, handles: list[Any],
                    labels: list[str]) -> None:
    """The registry's own outages (down, hung, cut off) as translucent bands over
    the whole height of ``ax``, behind everything: what a client with a cache
    rides out on its stale list, and one without loses discovery over."""
    kinds = _registry_fault_kinds(res)
    if not kinds:
        return
    nodes = sorted({r[0] for r in _registry_faults(res)})
    for coll in fault_bands(ax, res, nodes=nodes, kinds=kinds, annotate=False, zorder=0.4,
                            alpha=0.3, key="registry"):
        label = str(coll.get_label())
        handles.append(coll)
        labels.append("network partition" if label.startswith("network")
                      else "registry " + label)


def _churn_points(res: Result, rows: Sequence[str]) -> dict[str, tuple[list[float],
                                                                       list[str]]]:
    """The launches, crashes, hangs, drains, stops and restarts of ``rows``:
    ``{kind: (times, instances)}`` (a crash with a machine failure at the same
    time is kind ``node_failure``)."""
    keep = set(rows)
    ev = sorted(res.world.trace.events, key=lambda r: r[0])
    machine = {(node, float(t)) for t, node, event, _d in ev
               if node in keep and event == "node_failure"}
    pts: dict[str, tuple[list[float], list[str]]] = {}
    for t, node, event, _d in ev:
        if node not in keep or event not in DEATH_MARKERS or event == "node_failure":
            continue
        if event == "launch" and t <= 0:
            continue  # the fleet as the run began: not churn
        kind = "node_failure" if event == "crash" and (node, float(t)) in machine else event
        xs, names = pts.setdefault(kind, ([], []))
        xs.append(float(t))
        names.append(str(node))
    return pts


def _legend_lines(iv: pd.DataFrame, points: Mapping[str, Any]) -> int:
    """Lines the timeline's legend takes (an entry a line, the lag's two)."""
    layer = iv["layer"]
    entries = iv.loc[layer == "process", "state"].nunique() + \
        iv.loc[layer.isin(("registered", "visible")), "layer"].nunique()
    return int(entries) + 2 * int((layer == "lag").any()) + len(points)


def _timeline_shape(res: Result, instances: Any = None, max_rows: int = MAX_ROWS,
                    markers: bool = True, faults: bool = True, **_: Any) -> tuple[str, ...]:
    """What fixes :func:`instance_timeline`'s layout (for
    :func:`simcomm.viz.redraw`): its rows, and the lines of its legend."""
    rows = _pick_rows(res, instances, int(max_rows))
    iv = timeline_intervals(res)
    points = _churn_points(res, rows) if markers else {}
    lines = _legend_lines(iv[iv["instance"].isin(rows)], points)
    return (*rows, f"legend:{lines}", *(_registry_fault_kinds(res) if faults else ()))


def timeline_height(rows: int, legend_lines: int) -> float:
    """Inches of :func:`instance_timeline`'s figure: room for its rows and its legend."""
    return max(1.35 + 0.42 * rows, 1.25 + 0.165 * legend_lines)


def _churn_markers(k: reuse.Keeper, points: Mapping[str, tuple[list[float], list[str]]],
                   y_of: Mapping[str, int], handles: list[Any], labels: list[str]) -> None:
    """One marker per churn event on its instance's bar (see :data:`DEATH_MARKERS`)."""
    for kind, (marker, label) in DEATH_MARKERS.items():
        if kind not in points:
            continue
        xs, names = points[kind]
        ys = [y_of[name] + 0.12 for name in names]
        face = "white" if kind in ("launch", "restart") else INK
        edge = INK if kind in ("launch", "restart") else "white"
        size = {"X": 7, "*": 10}.get(marker, 6)
        handles.append(k.line(f"marker:{kind}", xs, ys, linestyle="none", marker=marker,
                              markersize=size, markerfacecolor=face,
                              markeredgecolor=edge, markeredgewidth=1.0 if face == INK
                              else 1.2, color=INK, zorder=4, gid=f"churn:{kind}"))
        labels.append(label)


# =====================================================================================
# stale calls over time
# =====================================================================================
def stale_calls_over_time(res: Result, bin: float | None = None, ax: Axes | None = None, *,
                          total: bool = False, faults: bool = True) -> Figure:
    """Calls per second routed to instances that could not answer, by their state.

    What the learner sees: per ``bin`` seconds, a stack of the calls sent to
    instances that were **down** (vermillion), **hung** (orange), still
    **starting** (sky blue) or **stopped** (grey) -- each call in the bin it
    was sent in, by the state of its instance then (:func:`stale_series`)
    -- with ``total=True`` under the **thin black line** of every routed
    call (off by default: the scale is the stale calls'; the small print
    gives the mean rate of all routed calls and the title their share), and
    a **violet line** for calls that found no instance at all (an empty
    view: before the first fetch, or with the registry lost).  A **dashed
    vertical line** marks each death (✕ crash, ◆ hang, ■ stop), the
    instance named above it, and a **bracket** near the top spans its
    detection lag, from the death to the last call sent to the instance;
    a translucent band behind marks the registry's own outage (``faults``).
    After a crash without cancel the vermillion area lasts as long as the
    registry and the caches take to let the instance go, at about the dead
    instance's share of the calls (a third of them with three instances
    behind round robin); after a clean shutdown whose drain outlasts the
    caches it is nil.  A retry on another instance is another call: the
    stale one still counts.  Needs only the routes table (always kept).
    """
    _bin(bin)
    _flag("total", total)
    _flag("faults", faults)
    df = stale_series(res, bin)
    fig, ax, _owned = figure_for(ax, 9.0, 3.9, margins=(0.75, 2.4, 0.72, 0.55))
    k = reuse.keeper(ax, "stale_calls_over_time")
    if k.fresh:
        style_axes(ax)
    until = float(res.until)
    edges = np.append(df.index.to_numpy(dtype=float), until)
    base = np.zeros(len(df))
    handles: list[Any] = []
    labels: list[str] = []
    for st in STALE_STATES:
        values = df[st].to_numpy()
        if not values.any():
            continue
        top = base + values
        handles.append(k.stairs(f"stale:{st}", top, edges, baseline=base, fill=True,
                                facecolor=STATE_COLORS[st], edgecolor="none", linewidth=0,
                                zorder=2, gid=f"stale:{st}"))
        labels.append(f"to a {st if st != 'down' else 'down (crashed)'} instance")
        base = top
    peak = float(base.max(initial=0.0))
    if total:
        calls = df["calls"].to_numpy()
        handles.append(k.stairs("calls", calls, edges, baseline=None, fill=False,
                                edgecolor=INK, linewidth=1.0, zorder=3, gid="calls"))
        labels.append("every call routed to an instance")
        peak = max(peak, float(calls.max(initial=0.0)))
    lost = df["no_instance"].to_numpy()
    if lost.any():
        handles.append(k.stairs("no_instance", lost, edges, baseline=None, fill=False,
                                edgecolor=OUTCOME_COLORS["no_instance"], linewidth=1.4,
                                zorder=3, gid="no_instance"))
        labels.append("found no instance to call")
        peak = max(peak, float(lost.max(initial=0.0)))
    deaths = _deaths(res)
    # room above the data for the lag brackets
    ymax = data.nice_top((1.6 if (deaths["lag"] > 0).any() else 1.15) * peak) \
        if peak > 0 else 1.0
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    xs = [float(d) for d in deaths["died"].tolist()]
    levels = _name_deaths(k, ax, deaths, until)
    # each death's detection lag, a bracket from the death to its last stale call
    lagged = [(float(d), float(d) + float(g)) for d, g in zip(
        deaths["died"].tolist(), deaths["lag"].tolist(), strict=True) if g > 0][:8]
    if lagged:
        hy = [0.93 - 0.09 * (j % 4) for j in range(len(lagged))]
        bx = [v for a, b in lagged for v in (a, b, math.nan)]
        by = [v for y in hy for v in (y, y, math.nan)]
        handles.append(k.line("lags", bx, by, transform=trans, color=INK, linewidth=1.2,
                              marker="|", markersize=7, zorder=4, gid="lags"))
        labels.append("detection lag: from a death to the last call sent to it")
        for j, ((a, b), y) in enumerate(zip(lagged, hy, strict=True)):
            k.text(f"lag:{j}", (a + b) / 2, y + 0.015, f"lag {b - a:.3g} s", transform=trans,
                   ha="center", va="bottom", fontsize=7.5, color=INK, zorder=5,
                   bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})
    if xs:
        vx = [v for x in xs for v in (x, x, math.nan)]
        vy = [v for _ in xs for v in (0.0, 1.0, math.nan)]
        handles.append(k.line("deaths", vx, vy, transform=trans, color=INK, linestyle="--",
                              linewidth=0.9, zorder=4, gid="deaths"))
        labels.append("an instance died (crash, hang or stop)")
    if faults:
        _registry_bands(k, ax, res, handles, labels)
    if not len(res.world.trace.routes):
        _no_data(k, ax, "no call was routed through a discovery client or a router in "
                        "this run")
    ax.set_xlim(0, until)
    ax.set_ylim(0, ymax)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("calls per second")
    n_stale, n_calls = df.attrs["stale_calls"], df.attrs["calls"]
    if n_calls:
        title = (f"{n_stale} call{'s' * (n_stale != 1)} went to instances that could not "
                 f"answer ({100 * n_stale / n_calls:.3g} % of {n_calls})")
    else:
        title = "Calls to instances that could not answer"
    small = f"per {df.attrs['bin']:g} s"
    if n_calls and not total:
        small += f"\nall routed calls: {n_calls / until:.3g}/s on average"
    n_lost = int(len(res.world.trace.routes) - n_calls)
    if n_lost:
        small += f"\n{n_lost} call{'s' * (n_lost != 1)} found no instance"
    _titles(k, ax, title, small, lift=11.0 * levels)
    pin_axis_labels(ax)
    k.finish()
    _legend(ax, handles, labels)
    return fig


def _name_deaths(k: reuse.Keeper, ax: Axes, deaths: pd.DataFrame, until: float) -> int:
    """Each death's instance above the axes at its time (✕ crash, ✱ machine
    failure, ◆ hang, ■ stop), on a second line where the first is taken; a
    name that fits on neither is left out (the dashed line stays).  Returns
    the lines used."""
    from matplotlib.transforms import ScaledTranslation

    fig = root_figure(ax)
    width_pt = max(ax.get_position().width * fig.get_figwidth() * 72, 1.0)
    per_pt = until / width_pt
    base = blended_transform_factory(ax.transData, ax.transAxes)
    ends = [-math.inf, -math.inf]
    used = 0
    rows = sorted(zip(deaths["died"].tolist(), deaths["instance"].tolist(),
                      deaths["kind"].tolist(), strict=True))
    for j, (died, inst, kind) in enumerate(rows):
        word = f"{_DEATH_SYMBOLS.get(str(kind), '✕')} {inst}"
        half = (len(word) * 0.6 * 7.5 + 4) * per_pt / 2
        level = next((i for i, end in enumerate(ends) if died - half > end), None)
        if level is None:
            continue
        ends[level] = died + half
        used = max(used, level + 1)
        lift = ScaledTranslation(0.0, (2.0 + 10.5 * level) / 72.0, fig.dpi_scale_trans)
        k.text(f"death:{j}", float(died), 1.0, word, transform=base + lift, ha="center",
               va="bottom", fontsize=7.5, color=INK, clip_on=False, zorder=5)
    return used


# =====================================================================================
# load share
# =====================================================================================
def _share_bars(k: reuse.Keeper, ax: Axes, x: np.ndarray, width: float, ok: np.ndarray,
                failed: np.ndarray, key: str, color: str, fail_color: str,
                label: str | None) -> list[Any]:
    """Bars at ``x``: ``ok`` (``color``) with ``failed`` stacked on top."""
    lo = x - width / 2
    hi = x + width / 2
    out = [k.polys(f"{key}:ok", _span_verts(lo, hi, np.zeros_like(ok), ok), facecolor=color,
                   edgecolor="none", linewidth=0, zorder=2, gid=f"{key}:ok")]
    if (failed > 0).any():
        out.append(k.polys(f"{key}:failed", _span_verts(lo, hi, ok, ok + failed),
                           facecolor=fail_color, edgecolor="none", linewidth=0, zorder=2,
                           gid=f"{key}:failed"))
    return out


def _share_axes(k: reuse.Keeper, ax: Axes, names: Sequence[str], top: float,
                fair: np.ndarray, slow: Mapping[str, float]) -> Any:
    """The instance ticks (a slowed one named so, in orange), the y scale and
    each instance's fair share, a dash across its bars."""
    step = max(1, math.ceil(len(names) / 30))
    ticks = list(range(0, len(names), step))
    ax.set_xticks(ticks, [names[i] + (f"\nslowed ×{slow[names[i]]:g}"
                                      if slow.get(names[i], 1.0) != 1.0 else "")
                          for i in ticks],
                  fontsize=8, rotation=0 if len(ticks) <= 8 else 90)
    for i, label in zip(ticks, ax.get_xticklabels(), strict=True):
        label.set_color(OKABE_ITO["orange"] if slow.get(names[i], 1.0) != 1.0 else INK)
    ax.set_xlim(-0.6, max(len(names), 1) - 0.4)
    finite = fair[np.isfinite(fair)]
    top = max(top, 100 * float(finite.max(initial=0.0)))
    ax.set_ylim(0, data.nice_top(1.15 * top) if top > 0 else 100.0)
    ax.set_ylabel("% of routed calls")
    if not finite.size:
        return None
    xs = [v for i in range(len(names)) for v in (i - 0.46, i + 0.46, math.nan)]
    ys = [v for f in fair for v in (100 * f, 100 * f, math.nan)]
    return k.line("fair", xs, ys, color=INK, linestyle="--", linewidth=1.3, zorder=3,
                  gid="fair")


def load_share(res: Result, ax: Axes | None = None) -> Figure:
    """Each instance's share of the calls routed to an instance.

    What the learner sees: a bar per instance (launch order), its height
    the share of all routed calls (%) -- **green** for those answered ok,
    **vermillion** stacked on top for the others -- against a **dashed
    line** across it, its fair share: each call split evenly among the
    instances serving when it was sent (:func:`load_shares`; one over n
    for a fleet that never changes).  A bar above its dash got calls it
    should not have (a dead instance still visible, a balancer's bias), a
    bar below it fewer.
    An instance slowed down during the run is named so, in orange.  Round
    robin gives every instance the same share whatever its speed (Ribbon's
    ``RoundRobinRule``); least-outstanding and power-of-two give a slow
    instance less, because its calls stay outstanding longer; an instance
    that was launched late or died early gets less under any balancer.
    The title names the balancer (the run's ``balancer`` parameter) and
    the spread between the busiest and the idlest instance.  Needs only the
    routes table (always kept).
    """
    shares = load_shares(res)
    fig, ax, _owned = figure_for(ax, 9.0, 3.6, margins=(0.8, 2.4, 0.45, 0.75))
    k = reuse.keeper(ax, "load_share")
    if k.fresh:
        style_axes(ax)
        ax.grid(False, axis="x")
    names = shares["instance"].tolist()
    total = max(int(shares.attrs["calls"]), 1)
    ok = 100 * shares["ok"].to_numpy(dtype=float) / total
    share = 100 * shares["calls"].to_numpy(dtype=float) / total
    # failed, and calls still pending at the end (from counts: no rounding residue)
    rest = 100 * (shares["calls"] - shares["ok"]).to_numpy(dtype=float) / total
    x = np.arange(len(names), dtype=float)
    bars = _share_bars(k, ax, x, 0.7, ok, rest, "share", OUTCOME_COLORS["ok"],
                       OUTCOME_COLORS["error"], None)
    slow = dict(zip(names, shares["slowdown"].tolist(), strict=True))
    fair = shares["fair"].to_numpy(dtype=float)
    line = _share_axes(k, ax, names, float(share.max(initial=0.0)), fair, slow)
    handles: list[Any] = [bars[0]]
    labels = ["answered ok"]
    if len(bars) > 1:
        handles.append(bars[1])
        labels.append("not answered ok (failed or pending)")
    if line is not None:
        handles.append(line)
        labels.append("fair share: each call split evenly among the instances serving "
                      "when it was sent")
    if any(v != 1.0 for v in slow.values()):
        handles.append(Patch(facecolor="none", edgecolor="none"))
        labels.append("orange name: an instance slowed down during the run")
    if not shares.attrs["calls"]:
        _no_data(k, ax, "no call was routed through a discovery client or a router in "
                        "this run")
    balancer = _balancer(res)
    used = share[share > 0]
    spread = (f"\nbusiest {used.max():.3g} %, idlest {share.min():.3g} %" if used.size
              else "")
    _titles(k, ax, "Share of the routed calls per instance"
            + (f": {balancer}" if balancer else ""), f"{shares.attrs['calls']} calls{spread}")
    pin_axis_labels(ax)
    k.finish()
    _legend(ax, handles, labels)
    return fig


def load_share_comparison(results: Mapping[str, Result], ax: Axes | None = None) -> Figure:
    """Per instance, its share of the routed calls in each of several runs, side by side.

    ``results`` maps a label (a balancer's name, say) to a run of the same
    fleet.  What the learner sees: a group of bars per instance, one bar
    per run in the order given (blue, reddish purple, sky blue, ...), its
    height the instance's share of that run's routed calls (%); the
    **dashed line** across each group is the instance's fair share in the
    first run (:func:`load_shares`).  A slowed
    instance is named so, in orange: round robin's bar there is as tall as
    the others, least-outstanding's and power-of-two's are shorter -- they
    route around the slow instance; weighted response time's too once its
    weights exist (Ribbon's ``WeightedResponseTimeRule`` recomputes them
    every 30 s).  Not a view: it takes several runs.
    """
    if not isinstance(results, Mapping) or not results:
        raise ParamError("results", results, "a dict of label -> Result, at least one")
    from simcomm.result import Result as _Result

    for label, r in results.items():
        if not isinstance(r, _Result):
            raise ParamError("results", label, "a dict whose values are Results "
                             "(what simcomm.run returns)")
    tables = {str(label): load_shares(r) for label, r in results.items()}
    names: list[str] = []
    slow: dict[str, float] = {}
    for t in tables.values():
        for name, f in zip(t["instance"].tolist(), t["slowdown"].tolist(), strict=True):
            if name not in names:
                names.append(name)
            slow[name] = max(slow.get(name, 1.0), float(f))
    fig, ax, _owned = figure_for(ax, 9.0, 3.8, margins=(0.8, 2.4, 0.45, 0.75))
    k = reuse.keeper(ax, "load_share_comparison")
    if k.fresh:
        style_axes(ax)
        ax.grid(False, axis="x")
    n = len(tables)
    width = 0.8 / n
    top = 0.0
    handles: list[Any] = []
    labels: list[str] = []
    index = {name: i for i, name in enumerate(names)}
    for j, (label, t) in enumerate(tables.items()):
        total = max(int(t.attrs["calls"]), 1)
        share = np.zeros(len(names))
        for name, c in zip(t["instance"].tolist(), t["calls"].tolist(), strict=True):
            share[index[name]] = 100 * c / total
        top = max(top, float(share.max(initial=0.0)))
        x = np.arange(len(names), dtype=float) - 0.4 + width * (j + 0.5)
        color = SERIES_COLORS[j % len(SERIES_COLORS)]
        bars = _share_bars(k, ax, x, width * 0.92, share, np.zeros_like(share), f"run{j}",
                           color, color, label)
        handles.append(bars[0])
        used = share[share > 0]
        spread = ("no routed calls" if not used.size else f"{used.min():.3g} %"
                  if f"{used.min():.3g}" == f"{used.max():.3g}"
                  else f"{used.min():.3g}–{used.max():.3g} %")
        labels.append(f"{label}: {spread}")
        for i, name in enumerate(names):  # the slowed instance's shares, written out
            if slow.get(name, 1.0) != 1.0:
                k.text(f"value:{j}:{name}", float(x[i]), float(share[i]), f"{share[i]:.3g}",
                       ha="center", va="bottom", fontsize=7.5, color=INK, zorder=4)
    first = next(iter(tables.values()))
    fair_of = dict(zip(first["instance"].tolist(), first["fair"].tolist(), strict=True))
    fair = np.array([fair_of.get(name, math.nan) for name in names], dtype=float)
    line = _share_axes(k, ax, names, top, fair, slow)
    if line is not None:
        handles.append(line)
        labels.append(f"fair share ({next(iter(tables))}): an even split among the "
                      "instances serving")
    if any(v != 1.0 for v in slow.values()):
        handles.append(Patch(facecolor="none", edgecolor="none"))
        labels.append("orange name: an instance slowed down")
    _titles(k, ax, "Share of the routed calls per instance, by run", "")
    pin_axis_labels(ax)
    k.finish()
    _legend(ax, handles, labels)
    return fig

