"""The system as a graph: who calls whom, how busy and how healthy each node is.

:func:`topology_state` computes the numbers at one moment (cheap: the
per-run arrays are built once and cached); :func:`topology` draws them.
Calling :func:`topology` again with the same ``ax`` and Result only updates
colours, widths and labels of the existing artists, so the playback widget
can scrub through time without rebuilding the figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_hex
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from simcomm._checks import is_real
from simcomm.analysis import metrics
from simcomm.errors import ParamError
from simcomm.viz import data
from simcomm.viz.style import (
    FAIL_CMAP,
    HEALTH_COLORS,
    INK,
    LOAD_CMAP,
    figure_for,
    root_figure,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from simcomm.result import Result

__all__ = ["call_graph", "topology", "topology_state"]

_MARKER_SIZE = 30.0  # points


# -- the per-run data -----------------------------------------------------------
@dataclass
class _Model:
    graph: nx.DiGraph
    pos: dict[str, tuple[float, float]]
    edges: list[tuple[str, str]]
    calls: dict[tuple[str, str], np.ndarray]      # send times, sorted
    settle: dict[tuple[str, str], np.ndarray]     # when each call's fate was known, sorted
    failed_cum: dict[tuple[str, str], np.ndarray]  # failures among the first k settled
    pools: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    faults: pd.DataFrame
    until: float
    extra: dict[str, Any] = field(default_factory=dict)


def _layers(g: nx.DiGraph, first: list[str]) -> dict[str, int]:
    """Left-to-right layers: the longest call path from a source (clients first)."""
    connected = [n for n in g if g.degree(n) > 0]
    sub = g.subgraph(connected)
    layer: dict[str, int] = {}
    if nx.is_directed_acyclic_graph(sub):
        for n in nx.topological_sort(sub):
            preds = list(sub.predecessors(n))
            layer[n] = max((layer[p] + 1 for p in preds), default=0)
    else:  # cycles (e.g. request/reply both ways): breadth-first from the sources
        sources = [n for n in connected if sub.in_degree(n) == 0] or first[:1] or connected[:1]
        dist: dict[str, int] = {}
        for s in sources:
            for n, d in nx.single_source_shortest_path_length(sub, s).items():
                dist[n] = min(d, dist.get(n, d))
        top = max(dist.values(), default=-1)
        layer = {n: dist.get(n, top + 1) for n in connected}
    last = max(layer.values(), default=-1) + 1
    for n in g:  # nodes nobody called and who called nobody: a column of their own
        layer.setdefault(n, last)
    return layer


def _positions(g: nx.DiGraph, layer: dict[str, int]) -> dict[str, tuple[float, float]]:
    columns: dict[int, list[str]] = {}
    for n in g:  # insertion order = the order the scenario built them
        columns.setdefault(layer[n], []).append(n)
    pos = {}
    for x, col in columns.items():
        k = len(col)
        for i, n in enumerate(col):
            pos[n] = (float(x), (k - 1) / 2.0 - i)
    return pos


def _model(res: Result) -> _Model:
    from simcomm.engine.nodes import Instance

    inst = set(data.instances(res))
    cl = data.clients(res)
    g = nx.DiGraph()
    for name, node in res.world.nodes.items():
        kind = "instance" if name in inst else ("client" if name in cl else "node")
        g.add_node(name, kind=kind,
                   workers=node.workers if isinstance(node, Instance) else None)
    msgs = res.messages
    req = msgs[msgs["kind"] != "reply"] if len(msgs) else msgs
    calls: dict[tuple[str, str], np.ndarray] = {}
    settle: dict[tuple[str, str], np.ndarray] = {}
    failed_cum: dict[tuple[str, str], np.ndarray] = {}
    if len(req):
        # a call settles when its reply arrives (failed unless its status is
        # ok) or when the request or the reply is dropped on the way (failed)
        tr = res.trace
        rep = tr[(tr["kind"] == "reply") & (tr["event"] != "send")]
        rep = rep.drop_duplicates("correlation_id", keep="last")
        rep_t = pd.Series(rep["time"].to_numpy(dtype=float),
                          index=rep["correlation_id"].to_numpy(dtype=np.int64))
        rep_bad = pd.Series(((rep["event"] == "drop") | (rep["status"] != "ok")).to_numpy(),
                            index=rep_t.index)
        ids = req["message_id"]
        sent = req["sent"].to_numpy(dtype=float)
        reply_at = ids.map(rep_t).to_numpy(dtype=float, na_value=np.inf)
        reply_at = np.where(np.isnan(reply_at), np.inf, reply_at)
        reply_bad = ids.map(rep_bad).fillna(False).to_numpy(dtype=bool)
        dropped = req["fate"].to_numpy() == "dropped"
        drop_t = np.where(dropped, req["ended"].to_numpy(dtype=float), np.inf)
        settled_at = np.minimum(reply_at, drop_t)
        failed = dropped | (reply_bad & np.isfinite(reply_at))
        groups: Any = req.groupby(["source", "dest"], sort=False).indices
        for (s, d), idx in groups.items():
            key = (str(s), str(d))
            calls[key] = np.sort(sent[idx], kind="stable")
            order = np.argsort(settled_at[idx], kind="stable")
            settle[key] = settled_at[idx][order]
            failed_cum[key] = np.concatenate(([0], np.cumsum(failed[idx][order])))
            g.add_edge(*key, calls=len(idx))
    layer = _layers(g, cl)
    pools = {}
    for name, (t, busy, queued) in data.pool_arrays(res).items():
        pools[name] = (t, busy, queued, metrics.cumulative(t, busy))
    faults = data.fault_intervals(res)
    faults = faults[faults["kind"].isin(("down", "hung"))]
    edges = sorted(g.edges, key=lambda e: (layer[e[0]], layer[e[1]], e))
    return _Model(g, _positions(g, layer), edges, calls, settle, failed_cum, pools, faults,
                  res.until)


def _get_model(res: Result) -> _Model:
    return data.cached(res, "topology", lambda: _model(res))


def call_graph(res: Result) -> nx.DiGraph:
    """Every node of the run, with an edge from each caller to each callee.

    Node attributes: ``kind`` (client / instance / node), ``workers`` and
    ``pos`` (the layered left-to-right layout the figure uses); edge
    attribute ``calls`` (requests sent over the whole run).  A copy: change
    it freely.
    """
    model = _get_model(res)
    g = model.graph.copy()
    nx.set_node_attributes(g, model.pos, "pos")
    return g


def _default_window(until: float) -> float:
    return data.nice_step(until / 24.0)


def topology_state(res: Result, at: float | None = None,
                   window: float | None = None) -> dict[str, Any]:
    """The state of every node and call edge at time ``at`` (default: the end).

    Returns ``{"time", "window", "nodes", "edges"}``:

    * ``nodes`` -- DataFrame indexed by node name: ``kind``, ``workers``,
      ``busy`` and ``queued`` at ``at``, ``utilisation`` (mean fraction of
      busy workers over the ``window`` seconds before ``at``; NaN for
      nodes without workers), ``health`` (``up`` / ``down`` / ``hung``),
      and the layout position ``x``, ``y``.
    * ``edges`` -- DataFrame with one row per caller -> callee: ``calls``
      sent in the window, ``rate`` (calls per second), ``settled`` (calls
      whose fate became known in the window: the reply arrived, or the
      request or its reply was dropped), ``failed`` (of those, the ones
      dropped or answered with a status other than ``ok``) and
      ``error_rate`` (failed / settled, NaN if none settled).  Replies are
      matched to calls by correlation id.

    ``window`` defaults to a round number near 1/24 of the run.  Cheap
    after the first call for a Result (arrays are cached), so widgets may
    call it for many times.
    """
    model = _get_model(res)
    at = model.until if at is None else float(at)
    if not 0.0 <= at <= model.until or math.isnan(at):
        raise ParamError("at", at, f"a time from 0 to {model.until:g} s")
    window = _default_window(model.until) if window is None else window
    if not (is_real(window) and 0 < window < math.inf):
        raise ParamError("window", window, "seconds > 0")
    lo = max(0.0, at - window)
    span = at - lo
    rows = []
    for name, attrs in model.graph.nodes(data=True):
        workers = attrs["workers"]
        busy = queued = util = math.nan
        arr = model.pools.get(name)
        if workers:
            busy = queued = 0.0
            util = 0.0
            if arr is not None:
                t, b, q, cum = arr
                busy = float(metrics.step_value(t, b, at))
                queued = float(metrics.step_value(t, q, at))
                if span > 0:
                    area = metrics.step_integral(t, b, cum, np.array([lo, at]))
                    util = float(area[1] - area[0]) / span / workers
                else:
                    util = busy / workers
        x, y = model.pos[name]
        rows.append((name, attrs["kind"], workers, busy, queued, util, "up", x, y))
    nodes = pd.DataFrame(rows, columns=["node", "kind", "workers", "busy", "queued",
                                        "utilisation", "health", "x", "y"]).set_index("node")
    f = model.faults
    if len(f):
        now = f[(f["start"] <= at) & (f["end"] > at)]
        for kind in ("hung", "down"):  # down wins over hung
            hit = now.loc[now["kind"] == kind, "node"]
            nodes.loc[nodes.index.isin(hit), "health"] = kind
    erows = []
    for key in model.edges:
        i0, i1 = np.searchsorted(model.calls[key], [lo, at], side="right")
        n = int(i1 - i0)
        j0, j1 = np.searchsorted(model.settle[key], [lo, at], side="right")
        settled = int(j1 - j0)
        cum = model.failed_cum[key]
        failed = int(cum[j1] - cum[j0])
        rate = n / span if span > 0 else 0.0
        erows.append((key[0], key[1], n, rate, settled, failed,
                      failed / settled if settled else math.nan))
    edges = pd.DataFrame(erows, columns=["source", "dest", "calls", "rate", "settled",
                                         "failed", "error_rate"])
    return {"time": at, "window": window, "nodes": nodes, "edges": edges}


# -- drawing ---------------------------------------------------------------------
@dataclass
class _Drawing:
    layout: tuple[Any, ...]
    color_by: str
    nodes: dict[str, Line2D]
    labels: dict[str, Text]
    edges: dict[tuple[str, str], FancyArrowPatch]
    edge_labels: dict[tuple[str, str], Text]
    title: Text

    def remove(self) -> None:
        """Take every artist of this drawing off its axes."""
        for group in (self.nodes, self.labels, self.edges, self.edge_labels):
            for artist in group.values():
                if artist.axes is not None:
                    artist.remove()


def _layout_key(model: _Model) -> tuple[Any, ...]:
    """What a drawing's artists depend on: the nodes, the edges and where they sit.
    Two runs with the same key are drawn by updating the same artists."""
    return (tuple(model.graph.nodes), tuple(model.edges), tuple(sorted(model.pos.items())))


#: Where a drawing's artists are kept: on its own Axes (a WeakKeyDictionary
#: would never let go, since the artists refer back to their Axes).
_ATTR = "_simcomm_topology"


def _node_style(row: Any, color_by: str) -> tuple[str, str, str]:
    """(face colour, ring colour, label text) of one node."""
    if row.kind == "client":
        return HEALTH_COLORS["client"], "#777777", "client"
    health = row.health
    if color_by == "health":
        face = HEALTH_COLORS.get(health, HEALTH_COLORS["up"])
    else:
        u = 0.0 if math.isnan(row.utilisation) else row.utilisation
        face = to_hex(LOAD_CMAP(min(max(u, 0.0), 1.0)))
    ring = HEALTH_COLORS[health] if health != "up" else "#555555"
    if health != "up":
        text = health.upper()
    elif row.workers:
        text = f"{100 * row.utilisation:.0f} % busy"
        if row.queued:
            text += f" · {row.queued:.0f} queued"
    else:
        text = ""
    return face, ring, text


def _edge_style(row: Any, max_rate: float) -> tuple[float, str, str]:
    width = 0.8 + 5.0 * (row.rate / max_rate if max_rate > 0 else 0.0)
    er = 0.0 if math.isnan(row.error_rate) else row.error_rate
    color = to_hex(FAIL_CMAP(er))
    label = f"{row.rate:.3g} req/s"
    if row.failed:
        label += f"\n{100 * er:.0f} % failed"
    return width, color, label


#: Node names and their state, edge rates: text sizes (points) that stay
#: readable when the figure is shown at a notebook's width (about 650 px).
NODE_FONT = 9.0
EDGE_FONT = 8.0
#: The widest a topology figure gets (inches): a wider one is shrunk to fit a
#: notebook column, and its text with it.
MAX_WIDTH = 9.0


def _title(state: dict[str, Any]) -> str:
    return (f"Topology at t = {state['time']:.4g} s  (calls and failures in the last "
            f"{state['window']:g} s)")


def _update(d: _Drawing, state: dict[str, Any]) -> None:
    for row in state["nodes"].itertuples():
        face, ring, text = _node_style(row, d.color_by)
        line = d.nodes[row.Index]
        line.set_markerfacecolor(face)
        line.set_markeredgecolor(ring)
        d.labels[row.Index].set_text(f"{row.Index}\n{text}" if text else row.Index)
    edges = state["edges"]
    max_rate = float(edges["rate"].max()) if len(edges) else 0.0
    for row in edges.itertuples():
        width, color, label = _edge_style(row, max_rate)
        patch = d.edges[(row.source, row.dest)]
        patch.set_linewidth(width)
        patch.set_color(color)
        d.edge_labels[(row.source, row.dest)].set_text(label)
    d.title.set_text(_title(state))


#: What ``topology`` can colour its nodes by.
COLOR_BY = ("utilisation", "health")


def check_color_by(color_by: str) -> None:
    """Raise ParamError unless ``color_by`` is one of :data:`COLOR_BY`."""
    if color_by not in COLOR_BY:
        raise ParamError("color_by", color_by, "one of " + ", ".join(COLOR_BY))


def topology(res: Result, at: float | None = None, color_by: str = "utilisation",
             ax: Axes | None = None, *, window: float | None = None,
             colorbar: bool = True) -> Figure:
    """The nodes and who calls whom, coloured by load or health at time ``at``.

    What the learner sees: the call graph laid out left to right (users,
    then the gateway, then each service it calls), one circle per service
    instance and a grey square per client.  With ``color_by="utilisation"``
    a node is white when idle and darkens through orange to deep red as its
    workers fill up (mean over the ``window`` before ``at``); with
    ``color_by="health"`` it is green when up, orange when hung, vermillion
    when down.  Either way a down or hung node gets a coloured ring and the
    word DOWN / HUNG under its name.  Arrow width is the call rate in the
    window and arrow colour runs from grey to vermillion with the share of
    those calls that failed, each labelled in req/s.

    The figure is at most :data:`MAX_WIDTH` inches wide with text of
    :data:`NODE_FONT` / :data:`EDGE_FONT` points, so it stays readable at a
    notebook's width; in a long chain, where neighbouring names would
    touch, every other name goes above its node instead of below.

    Calling it again with the same ``ax`` and a Result with the same nodes
    and calls (the same Result at another time, or another run of the same
    scenario) only updates colours, widths and labels (fast: made for
    scrubbing through time and for dashboards).  See
    :func:`topology_state` for the numbers.
    """
    check_color_by(color_by)
    state = topology_state(res, at, window)
    model = _get_model(res)
    layout = _layout_key(model)
    if ax is not None:
        d = getattr(ax, _ATTR, None)
        if d is not None:
            if (d.layout == layout and d.color_by == color_by
                    and all(line.axes is ax for line in d.nodes.values())
                    and all(p.axes is ax for p in d.edges.values())):
                _update(d, state)
                return root_figure(ax)
            d.remove()  # another system on these axes: draw it afresh
    n_cols = 1 + max((x for x, _ in model.pos.values()), default=0)
    n_rows = 1 + max((abs(y) * 2 for _, y in model.pos.values()), default=0)
    width = min(MAX_WIDTH, max(5.5, 1.75 * n_cols + 1.4))
    # a chain too long for its names side by side: alternate them above and below
    per_column = (width - 1.3) / (n_cols + 0.2)
    alternate = n_rows == 1 and per_column < 1.4
    height = max(2.7, 1.2 * n_rows + 1.5) + (0.6 if alternate else 0.0)
    fig, ax, owned = figure_for(ax, width, height, margins=(0.2, 1.1, 0.45, 0.35))
    has_pair = {(u, v) for u, v in model.edges if model.graph.has_edge(v, u)}
    edges: dict[tuple[str, str], FancyArrowPatch] = {}
    edge_labels: dict[tuple[str, str], Text] = {}
    shrink = _MARKER_SIZE / 2 + 3
    for u, v in model.edges:
        (x0, y0), (x1, y1) = model.pos[u], model.pos[v]
        rad = 0.18 if (u, v) in has_pair else 0.0
        patch = FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14,
                                shrinkA=shrink, shrinkB=shrink,
                                connectionstyle=f"arc3,rad={rad}", zorder=1,
                                gid=f"edge:{u}->{v}")
        ax.add_artist(patch)  # not add_patch: limits are set below, and it is faster
        edges[(u, v)] = patch
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        below = alternate and int(x0) % 2 == 1  # neighbours' rates on opposite sides
        edge_labels[(u, v)] = ax.text(mx, my - 0.07 if below else my + 0.07 + (
                                          0.15 if rad else 0.0), "",
                                      fontsize=EDGE_FONT, ha="center",
                                      va="top" if below else "bottom",
                                      color=INK, zorder=4, gid=f"edge_label:{u}->{v}")
    nodes: dict[str, Line2D] = {}
    labels: dict[str, Text] = {}
    for name, attrs in model.graph.nodes(data=True):
        x, y = model.pos[name]
        marker = "s" if attrs["kind"] == "client" else "o"
        (line,) = ax.plot([x], [y], linestyle="none", marker=marker,
                          markersize=_MARKER_SIZE * (0.8 if marker == "s" else 1.0),
                          markeredgewidth=3.0, zorder=3, gid=f"node:{name}")
        nodes[name] = line
        above = alternate and int(x) % 2 == 1
        labels[name] = ax.text(x, y + 0.24 if above else y - 0.24, name, fontsize=NODE_FONT,
                               ha="center", va="bottom" if above else "top", color=INK,
                               zorder=4, gid=f"label:{name}")
    title = ax.set_title("", loc="left", fontsize=11, y=1.0)
    d = _Drawing(layout, color_by, nodes, labels, edges, edge_labels, title)
    _update(d, state)
    ys = [y for _, y in model.pos.values()] or [0.0]
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(min(ys) - 0.62, max(ys) + (0.62 if alternate else 0.38))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("calls flow left to right; arrow width = call rate, "
                  "colour = share failed", fontsize=EDGE_FONT, color=INK)
    if color_by == "utilisation":
        if owned and colorbar:
            sm = ScalarMappable(norm=Normalize(0, 1), cmap=LOAD_CMAP)
            cax = fig.add_axes((1 - 0.85 / width, 0.45 / height, 0.12 / width,
                                1 - 1.0 / height))
            cb = fig.colorbar(sm, cax=cax)
            cb.set_label("utilisation (busy / workers)", fontsize=EDGE_FONT)
            cb.ax.tick_params(labelsize=EDGE_FONT)
    else:
        handles = [Line2D([], [], linestyle="none", marker="o", markersize=9,
                          markerfacecolor=HEALTH_COLORS[k], markeredgecolor="#555555",
                          label=k) for k in ("up", "hung", "down")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                  fontsize=EDGE_FONT, frameon=False, title="health", title_fontsize=EDGE_FONT)
    setattr(ax, _ATTR, d)
    return fig
