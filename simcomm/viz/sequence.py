"""A UML-style sequence diagram of the first requests of a run, from its trace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.patches import FancyArrowPatch

from simcomm.errors import ParamError
from simcomm.viz.style import (
    GREY,
    INK,
    OKABE_ITO,
    OUTCOMES,
    figure_for,
    outcome_color,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simcomm.result import Result

__all__ = ["sequence_diagram"]

#: Drop reasons decided on arrival: the message reached the destination,
#: which refused it (the other reasons kill it on the wire).
_AT_DEST = frozenset({"node_down", "rejected", "no_such_node"})

_CYCLE = (OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"],
          OKABE_ITO["reddish_purple"], OKABE_ITO["orange"], OKABE_ITO["sky_blue"],
          OKABE_ITO["black"])


def _select(res: Result, first: int, since: float,
            requests: Sequence[int] | None) -> pd.DataFrame:
    rq = res.requests
    if requests is not None:
        chosen = rq[rq["request_id"].isin(list(requests))]
        missing = sorted(set(requests) - set(chosen["request_id"]))
        if missing:
            raise ParamError("requests", missing[:5], "ids of requests in this run")
        return chosen
    if not isinstance(first, int) or isinstance(first, bool) or first < 1:
        raise ParamError("first", first, "a whole number of requests >= 1")
    return rq[rq["start"] >= since].head(first)


def _activations(m: pd.DataFrame, xpos: dict[str, float], y_end: float,
                 width: float) -> np.ndarray:
    """Rectangles (as vertex arrays) for the time each node worked on a request:
    from a request's delivery to the node's reply with the same trace id."""
    req = m[(m["kind"] != "reply") & (m["fate"] == "delivered")]
    rep = m[m["kind"] == "reply"]
    a = pd.DataFrame({"trace": req["trace_id"].to_numpy(), "node": req["dest"].to_numpy(),
                      "t0": req["ended"].to_numpy(dtype=float)})
    b = pd.DataFrame({"trace": rep["trace_id"].to_numpy(), "node": rep["source"].to_numpy(),
                      "t1": rep["sent"].to_numpy(dtype=float)})
    if a.empty:
        return np.zeros((0, 4, 2))
    a["k"] = a.groupby(["trace", "node"]).cumcount()
    b["k"] = b.groupby(["trace", "node"]).cumcount()
    act = a.merge(b, on=["trace", "node", "k"], how="left")
    act["t1"] = act["t1"].fillna(y_end)
    x = act["node"].map(xpos).to_numpy(dtype=float)
    t0, t1 = act["t0"].to_numpy(), act["t1"].to_numpy()
    lo, hi = x - width / 2, x + width / 2
    return np.stack([np.column_stack([lo, t0]), np.column_stack([hi, t0]),
                     np.column_stack([hi, t1]), np.column_stack([lo, t1])], axis=1)


def _compress_gaps(ax: Axes, times: np.ndarray, lo: float, hi: float,
                   share: float = 0.25, label_x: float = 0.5) -> list[tuple[float, float]]:
    """Shorten quiet gaps longer than ``share`` of ``[lo, hi]`` on ``ax``'s y axis.

    The y axis gets a piecewise-linear function scale (data stay in seconds),
    ticks inside the busy stretches, and a labelled grey band per gap.
    Returns the gaps shortened (none: nothing changed).
    """
    t = np.unique(times[np.isfinite(times)])
    if t.size < 2:
        return []
    span = hi - lo
    gaps = np.diff(t)
    big = gaps > share * span
    if not big.any():
        return []
    kept = float(gaps[~big].sum()) + (t[0] - lo) + (hi - t[-1])
    short = max(kept, 1e-9) * 0.12
    knots_t = np.concatenate(([lo], t, [hi]))
    steps = np.concatenate(([t[0] - lo], np.where(big, short, gaps), [hi - t[-1]]))
    knots_y = np.concatenate(([0.0], np.cumsum(steps)))
    # extend with slope 1 so the mapping is defined (and invertible) everywhere
    far = 1e9
    kt = np.concatenate(([lo - far], knots_t, [hi + far]))
    ky = np.concatenate(([-far], knots_y, [knots_y[-1] + far]))

    def forward(x: np.ndarray) -> np.ndarray:
        return np.interp(x, kt, ky)

    def inverse(y: np.ndarray) -> np.ndarray:
        return np.interp(y, ky, kt)

    ax.set_yscale("function", functions=(forward, inverse))
    total = knots_y[-1]
    ax.set_ylim(inverse(np.array([1.04 * total]))[0], inverse(np.array([-0.04 * total]))[0])
    # ticks: a few round ones inside each busy stretch
    from matplotlib.ticker import FixedLocator, MaxNLocator

    edges = [lo, *[x for i in np.flatnonzero(big) for x in (t[i], t[i + 1])], hi]
    ticks: list[float] = []
    for a, b in zip(edges[0::2], edges[1::2], strict=True):
        frac = (forward(np.array([b]))[0] - forward(np.array([a]))[0]) / total
        n = max(1, round(frac * 8))
        vals = MaxNLocator(n + 1).tick_values(a, b) if b > a else np.array([a])
        inside = [float(v) for v in vals if a <= v <= b]
        ticks.extend(inside or [float(a) if a > lo else float(b)])
    kept_ticks: list[float] = []
    for v in sorted(set(ticks)):  # no two labels on top of each other
        if not kept_ticks or forward(np.array([v]))[0] - forward(
                np.array([kept_ticks[-1]]))[0] > 0.035 * total:
            kept_ticks.append(v)
    ax.yaxis.set_major_locator(FixedLocator(kept_ticks))
    ax.yaxis.set_minor_locator(FixedLocator([]))
    out = []
    for i in np.flatnonzero(big):
        a, b = float(t[i]), float(t[i + 1])
        ax.axhspan(a, b, facecolor="#EEEEEE", edgecolor="none", zorder=0.2)
        mid = float(inverse(np.array([(forward(np.array([a]))[0]
                                       + forward(np.array([b]))[0]) / 2]))[0])
        ax.text(label_x, mid, f"≈ {b - a:.3g} s later", ha="center", va="center",
                fontsize=7.5, color="#555555", zorder=5,
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "#EEEEEE",
                      "edgecolor": "none"})
        out.append((a, b))
    return out


def sequence_diagram(res: Result, first: int = 10, ax: Axes | None = None, *,
                     since: float = 0.0, requests: Sequence[int] | None = None,
                     color_by: str = "outcome", activations: bool = True,
                     compress: bool = True) -> Figure:
    """The messages of the first ``first`` requests as a sequence diagram.

    What the learner sees: one vertical lifeline per node the requests
    touched, left to right in call order (users, api-gateway-1, order-1,
    ...), and time running *down* in seconds.  Each message is one arrow
    from the sender's lifeline at its send time to the receiver's at its
    delivery time, so network delay shows as a slope: requests are solid
    with a filled head, replies dashed.  A message that was dropped is
    drawn to where it died -- half-way across for a loss or a partition,
    up to the receiver when the receiver refused it (down, queue full) --
    with a ✕ and the reason.  Thin bars on a lifeline show how long that
    node worked on the request.  Arrows are coloured by the outcome of the
    request they belong to (``color_by="request"``: one colour per request)
    and each request is labelled ``#id`` where it starts; a request that
    did not end ``ok`` gets its outcome written where it ended.

    Long quiet stretches (a hang, a user's patience running out) would
    squash everything else, so with ``compress`` a gap of more than a
    quarter of the shown time is drawn short, as a grey band saying how
    long it really was (the axis stays in seconds, its scale is just not
    uniform).  ``since`` starts with the first request sent at or after
    that time (to look inside a fault); ``requests`` picks request ids
    explicitly.
    Exactly one arrow artist (a ``FancyArrowPatch`` with gid
    ``message:<id>``) is drawn per message.
    """
    if color_by not in ("outcome", "request"):
        raise ParamError("color_by", color_by, "'outcome' or 'request'")
    chosen = _select(res, first, since, requests)
    msgs = res.messages
    if msgs.empty and not res.world.trace.enabled:
        raise ParamError("res", "a run with trace=False",
                         "a run with trace=True (the diagram needs the message trace)")
    ids = chosen["request_id"].to_numpy()
    m = msgs[msgs["trace_id"].isin(ids)].sort_values("message_id", kind="stable")
    nodes = list(pd.unique(np.column_stack([m["source"].to_numpy(), m["dest"].to_numpy()]
                                           ).ravel())) if len(m) else []
    for c in chosen["client"].unique():  # a client whose requests sent nothing
        if c not in nodes:
            nodes.insert(0, c)
    fig, ax, _ = figure_for(ax, max(6.5, 1.45 * len(nodes) + 2.9), 6.0,
                            margins=(0.85, 2.0, 0.75, 0.2))
    xpos = {n: float(i) for i, n in enumerate(nodes)}

    outcome_of = dict(zip(chosen["request_id"].tolist(), chosen["outcome"].tolist(),
                          strict=True))
    order = {rid: i for i, rid in enumerate(chosen["request_id"].tolist())}

    def colour(trace_id: int) -> str:
        if color_by == "request":
            return _CYCLE[order[trace_id] % len(_CYCLE)]
        return outcome_color(outcome_of.get(trace_id, "pending"))

    t_lo = float(chosen["start"].min()) if len(chosen) else 0.0
    ends = chosen["end"].to_numpy(dtype=float)
    t_hi_candidates = [m["sent"].max() if len(m) else t_lo,
                       m["ended"].max() if m["ended"].notna().any() else t_lo]
    finite_ends = ends[np.isfinite(ends)]
    if finite_ends.size:
        t_hi_candidates.append(float(finite_ends.max()))
    t_hi = float(np.nanmax(t_hi_candidates))
    if not t_hi > t_lo:
        t_hi = t_lo + 1e-3

    # lifelines
    for n, x in xpos.items():
        ax.plot([x, x], [t_lo, t_hi], color=GREY, linewidth=1.0, linestyle=(0, (4, 3)),
                zorder=0.5, gid=f"lifeline:{n}")

    # one arrow per message
    drop_x: list[float] = []
    drop_y: list[float] = []
    src = m["source"].to_numpy()
    dst = m["dest"].to_numpy()
    kind = m["kind"].to_numpy()
    sent = m["sent"].to_numpy(dtype=float)
    ended = m["ended"].to_numpy(dtype=float)
    fate = m["fate"].to_numpy()
    reason = m["reason"].to_numpy()
    trace = m["trace_id"].to_numpy()
    mid = m["message_id"].to_numpy()
    for i in range(len(m)):
        x0, x1 = xpos[src[i]], xpos[dst[i]]
        y0 = sent[i]
        reply = kind[i] == "reply"
        style = "-|>" if not reply else "->"
        ls = "--" if reply else "-"
        if fate[i] == "delivered":
            y1 = ended[i]
        elif fate[i] == "dropped":
            y1 = ended[i]
            if reason[i] not in _AT_DEST:
                x1 = x0 + (x1 - x0) * (0.85 if y1 > y0 else 0.5)
            style = "-"
            drop_x.append(x1)
            drop_y.append(y1)
            ax.text(x1, y1, f"  {reason[i]}", fontsize=7, color=OKABE_ITO["vermillion"],
                    va="center", ha="left" if x1 >= x0 else "right")
        else:  # still in flight when the run ended
            x1 = x0 + (x1 - x0) * 0.5
            y1 = res.until
            ls = ":"
        arrow = FancyArrowPatch((x0, y0), (x1, y1), arrowstyle=style, mutation_scale=9,
                                linestyle=ls, linewidth=1.1, color=colour(int(trace[i])),
                                shrinkA=0, shrinkB=0, zorder=2, gid=f"message:{mid[i]}")
        ax.add_artist(arrow)  # not add_patch: limits are set below, and it is 3x faster
    ax.plot(drop_x, drop_y, linestyle="none", marker="X", markersize=8,
            color=OKABE_ITO["vermillion"], markeredgecolor="white", markeredgewidth=0.6,
            zorder=3, gid="drops",
            label=f"dropped message ({len(drop_x)})" if drop_x else None)

    if activations and len(m):
        verts = _activations(m, xpos, t_hi, 0.07)
        if len(verts):
            ax.add_collection(PolyCollection(verts, facecolor="#F2F2F2", edgecolor=GREY,
                                             linewidth=0.6, zorder=1, gid="activations"),
                              autolim=False)

    # request labels and outcomes
    for rid, client, start, end, outcome in chosen[
            ["request_id", "client", "start", "end", "outcome"]].itertuples(index=False):
        x = xpos[client]
        ax.text(x - 0.06, start, f"#{rid}", fontsize=7, color=INK, ha="right", va="center")
        if outcome != "ok":
            y = end if np.isfinite(end) else t_hi
            label = "gave up" if outcome == "abandoned" else outcome
            ax.text(x - 0.06, y, f"{label} ◂", fontsize=7, ha="right", va="center",
                    color=outcome_color(outcome), fontweight="bold")

    # legend: line styles and colours
    ax.plot([], [], color=INK, linewidth=1.1, label="request →")
    ax.plot([], [], color=INK, linewidth=1.1, linestyle="--", label="reply ⇢")
    if color_by == "outcome":
        for name in OUTCOMES:
            if name in outcome_of.values():
                ax.plot([], [], color=outcome_color(name), linewidth=3,
                        label=f"request ended {name}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8,
              frameon=False)

    pad = 0.04 * (t_hi - t_lo)
    times = np.concatenate([sent, ended[np.isfinite(ended)], chosen["start"].to_numpy(float),
                            ends[np.isfinite(ends)]])
    compressed = _compress_gaps(ax, times, t_lo, t_hi) if compress else []
    if not compressed:
        ax.set_ylim(t_hi + pad, t_lo - pad)
    ax.set_xlim(-0.75, max(len(nodes) - 1, 0) + 0.45)
    ax.set_xticks(list(xpos.values()), nodes, fontsize=8,
                  rotation=25 if len(nodes) > 6 else 0)
    ax.xaxis.tick_top()
    ax.tick_params(axis="x", length=0)
    for side in ("right", "bottom", "top"):
        ax.spines[side].set_visible(False)
    ax.set_ylabel("time (s), running down" + (
        "; quiet gaps shortened" if compressed else ""))
    n = len(chosen)
    # above the node names on top (a fixed height: no search for room at draw time)
    height_in = ax.get_position().height * fig.get_figheight()
    lift = (0.45 if len(nodes) > 6 else 0.17) / max(height_in, 0.5)
    ax.set_title(f"Sequence diagram: {n} request{'s' if n != 1 else ''}"
                 + (f" from t = {since:g} s" if since else ""), loc="left", fontsize=11,
                 y=1.0 + lift)
    return fig
