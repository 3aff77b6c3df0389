"""A UML-style sequence diagram of the first requests of a run, from its trace.

Labels are placed so they never overlap: the numbers beside a lifeline are
spread apart (as little as needed, keeping their order) once the axes'
scale is known.  Drawn again on the same axes, the diagram updates its
artists (see :mod:`simcomm.viz.reuse`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, MaxNLocator
from matplotlib.transforms import blended_transform_factory

from simcomm._checks import is_whole
from simcomm.errors import ParamError
from simcomm.viz import reuse
from simcomm.viz.style import (
    GREY,
    INK,
    OKABE_ITO,
    OUTCOMES,
    figure_for,
    outcome_color,
    pin_axis_labels,
    root_figure,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from simcomm.result import Result

__all__ = ["sequence_diagram", "spread_labels"]

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
    if not is_whole(first) or first < 1:
        raise ParamError("first", first, "a whole number of requests >= 1")
    return rq[rq["start"] >= since].head(int(first))


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


def _compress_gaps(ax: Axes, k: reuse.Keeper, times: np.ndarray, lo: float, hi: float,
                   share: float = 0.25, label_x: float = 0.5) -> list[tuple[float, float]]:
    """Shorten quiet gaps longer than ``share`` of ``[lo, hi]`` on ``ax``'s y axis.

    The y axis gets a piecewise-linear function scale (data stay in seconds),
    ticks inside the busy stretches, and a labelled grey band per gap.
    Returns the gaps shortened (none: nothing changed, the scale is linear).
    """
    t = np.unique(times[np.isfinite(times)])
    gaps = np.diff(t) if t.size >= 2 else np.zeros(0)
    big = gaps > share * (hi - lo)
    if not big.any():
        if ax.get_yscale() != "linear":
            ax.set_yscale("linear")
            ax.yaxis.set_major_locator(MaxNLocator())
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
                np.array([kept_ticks[-1]]))[0] > 0.05 * total:
            kept_ticks.append(v)
    ax.yaxis.set_major_locator(FixedLocator(kept_ticks))
    ax.yaxis.set_minor_locator(FixedLocator([]))
    out = []
    band = blended_transform_factory(ax.transAxes, ax.transData)
    for j, i in enumerate(np.flatnonzero(big)):
        a, b = float(t[i]), float(t[i + 1])
        k.polys(f"gap:{j}", [[(0, a), (1, a), (1, b), (0, b)]], transform=band,
                facecolor="#EEEEEE", edgecolor="none", zorder=0.2)
        mid = float(inverse(np.array([(forward(np.array([a]))[0]
                                       + forward(np.array([b]))[0]) / 2]))[0])
        k.text(f"gap_label:{j}", label_x, mid, f"≈ {b - a:.3g} s later", ha="center",
               va="center", fontsize=7.5, color="#555555", zorder=5,
               bbox={"boxstyle": "round,pad=0.2", "facecolor": "#EEEEEE",
                     "edgecolor": "none"})
        out.append((a, b))
    return out


def spread_labels(texts: list[Text], pad: float = 1.15) -> None:
    """Move texts of one column apart vertically so that none overlaps the next.

    Each text keeps its order and moves as little as needed: labels that
    would overlap form a cluster, centred on where its members wanted to
    be, with one line height (``pad`` x the tallest text) between them.
    Works in display space, so it holds on any y scale (the sequence
    diagram's shortened gaps too); call it once the axes' limits and scale
    are final.
    """
    if len(texts) < 2:
        return
    ax = texts[0].axes
    if ax is None:
        return
    fig = root_figure(ax)  # type: ignore[arg-type]
    to_px = ax.transData
    gap = pad * max(float(t.get_fontsize()) for t in texts) * fig.dpi / 72.0
    wanted = [(to_px.transform(t.get_position())[1], i) for i, t in enumerate(texts)]
    wanted.sort()
    clusters: list[list[float]] = []  # [mean wanted y, count, index of first]
    for pos, (y, _) in enumerate(wanted):
        clusters.append([y, 1.0, float(pos)])
        while len(clusters) > 1:
            (m1, n1, f1), (m2, n2, _) = clusters[-2], clusters[-1]
            if (m2 - (n2 - 1) * gap / 2) - (m1 + (n1 - 1) * gap / 2) >= gap:
                break
            clusters[-2:] = [[(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2, f1]]
    inv = to_px.inverted()
    for mean, n, first in clusters:
        for j in range(int(n)):
            y_px = mean - (n - 1) * gap / 2 + j * gap
            text = texts[wanted[int(first) + j][1]]
            x_px = to_px.transform(text.get_position())[0]
            text.set_y(float(inv.transform((x_px, y_px))[1]))


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
    with a filled head, replies dashed with an open head.  A message that
    was dropped is drawn to where it died -- half-way across for a loss or
    a partition, up to the receiver when the receiver refused it (down,
    queue full) -- with a ✕ and the reason.  Thin bars on a lifeline show
    how long that node worked on the request.  Arrows are coloured by the
    outcome of the request they belong to (``color_by="request"``: one
    colour per request).

    Requests are numbered by their id beside the client's lifeline: ``7``
    where request 7 leaves and ``7'`` where its reply comes back (``7'
    error`` when the reply is an error); a request that got no reply says
    how it ended instead (``7 gave up``, ``7 refused``).  Labels never
    overlap: close ones are spread apart (:func:`spread_labels`).  The
    legend lists only what is drawn.

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
    fig, ax, _ = figure_for(ax, min(9.0, max(6.5, 1.2 * len(nodes) + 2.9)), 6.0,
                            margins=(0.85, 2.0, 0.75, 0.2))
    k = reuse.keeper(ax, "sequence_diagram")
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
        k.line(f"lifeline:{n}", [x, x], [t_lo, t_hi], color=GREY, linewidth=1.0,
               linestyle=(0, (4, 3)), zorder=0.5)

    # one arrow per message
    drop_x: list[float] = []
    drop_y: list[float] = []
    drop_labels: list[Text] = []
    drawn: set[str] = set()  # kinds of line drawn, for the legend
    src = m["source"].to_numpy()
    dst = m["dest"].to_numpy()
    kind = m["kind"].to_numpy()
    sent = m["sent"].to_numpy(dtype=float)
    ended = m["ended"].to_numpy(dtype=float)
    fate = m["fate"].to_numpy()
    reason = m["reason"].to_numpy()
    trace = m["trace_id"].to_numpy()
    mid = m["message_id"].to_numpy()
    replies_at: dict[tuple[int, str], list[float]] = {}  # (request, client): arrivals
    for i in range(len(m)):
        x0, x1 = xpos[src[i]], xpos[dst[i]]
        y0 = sent[i]
        reply = kind[i] == "reply"
        style = "-|>" if not reply else "->"
        ls = "--" if reply else "-"
        drawn.add("reply" if reply else "request")
        if fate[i] == "delivered":
            y1 = ended[i]
            if reply:
                replies_at.setdefault((int(trace[i]), str(dst[i])), []).append(float(y1))
        elif fate[i] == "dropped":
            y1 = ended[i]
            if reason[i] not in _AT_DEST:
                x1 = x0 + (x1 - x0) * (0.85 if y1 > y0 else 0.5)
            style = "-"
            drop_x.append(x1)
            drop_y.append(y1)
            right = x1 >= x0  # the reason goes beyond the ✕, away from the sender
            drop_labels.append(k.text(
                f"drop:{mid[i]}", x1, y1, f"  {reason[i]}" if right else f"{reason[i]}  ",
                fontsize=7, color=OKABE_ITO["vermillion"], va="center",
                ha="left" if right else "right"))
        else:  # still in flight when the run ended
            x1 = x0 + (x1 - x0) * 0.5
            y1 = res.until
            ls = ":"
            drawn.add("in_flight")
        k.arrow(f"message:{mid[i]}", (x0, y0), (x1, y1), arrowstyle=style, mutation_scale=9,
                linestyle=ls, linewidth=1.1, color=colour(int(trace[i])), shrinkA=0,
                shrinkB=0, zorder=2)
    if drop_x:
        k.line("drops", drop_x, drop_y, linestyle="none", marker="X", markersize=8,
               color=OKABE_ITO["vermillion"], markeredgecolor="white", markeredgewidth=0.6,
               zorder=3)

    if activations and len(m):
        verts = _activations(m, xpos, t_hi, 0.07)
        if len(verts):
            k.polys("activations", verts, facecolor="#F2F2F2", edgecolor=GREY,
                    linewidth=0.6, zorder=1)
            drawn.add("activation")

    # request numbers beside the client's lifeline: 7 out, 7' back
    columns: dict[str, list[Text]] = {}
    longest = 0
    for rid, client, start, end, outcome in chosen[
            ["request_id", "client", "start", "end", "outcome"]].itertuples(index=False):
        x = xpos[client] - 0.06
        col = columns.setdefault(client, [])
        col.append(k.text(f"number:{rid}", x, start, f"{rid}", fontsize=7.5, color=INK,
                          ha="right", va="center"))
        arrivals = replies_at.get((int(rid), str(client)), [])
        answered = np.isfinite(end) and any(abs(a - end) < 1e-9 for a in arrivals)
        for j, a in enumerate(a for a in arrivals if not answered or abs(a - end) >= 1e-9):
            # a reply that came after the request had ended (the user had given up)
            col.append(k.text(f"late:{rid}:{j}", x, a, f"{rid}' too late", fontsize=7.5,
                              color=INK, ha="right", va="center"))
            longest = max(longest, len(col[-1].get_text()))
        if outcome == "pending" and not np.isfinite(end):
            continue  # still waiting at the end: its arrows say so
        word = {"abandoned": "gave up"}.get(outcome, outcome)
        text = f"{rid}'" if outcome == "ok" else (f"{rid}' {word}" if answered
                                                  else f"{rid} {word}")
        col.append(k.text(f"outcome:{rid}", x, end if np.isfinite(end) else t_hi, text,
                          fontsize=7.5, ha="right", va="center",
                          color=INK if outcome == "ok" else outcome_color(outcome),
                          fontweight="normal" if outcome == "ok" else "bold"))
        longest = max(longest, len(text) + (0 if outcome == "ok" else 2))  # bold is wider

    pad = 0.04 * (t_hi - t_lo)
    times = np.concatenate([sent, ended[np.isfinite(ended)], chosen["start"].to_numpy(float),
                            ends[np.isfinite(ends)]])
    compressed = _compress_gaps(ax, k, times, t_lo, t_hi) if compress else []
    if not compressed:
        if ax.get_yscale() != "linear":
            ax.set_yscale("linear")
        ax.set_ylim(t_hi + pad, t_lo - pad)
    # room on the left for the longest label (about 0.6 em a character)
    width_in = ax.get_position().width * fig.get_figwidth()
    need_in = 0.15 + max(longest, 4) * 0.6 * 7.5 / 72
    x_right = max(len(nodes) - 1, 0) + 0.45
    room = max(0.75, need_in * (x_right + 0.06) / max(width_in - need_in, 0.5))
    ax.set_xlim(-room, x_right)
    ax.set_xticks(list(xpos.values()), nodes, fontsize=8,
                  rotation=25 if len(nodes) > 6 else 0)
    if k.fresh:
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
                 + (f" from t = {since:g} s" if since else "")
                 + ("; colour = how the request ended" if color_by == "outcome" else
                    "; one colour per request"), loc="left", fontsize=11, y=1.0 + lift)
    pin_axis_labels(ax)
    k.finish()
    # limits and scale are final: now labels can be spread apart in display space
    for col in columns.values():
        spread_labels(col)
    by_side: dict[tuple[float, str], list[Text]] = {}
    for t in drop_labels:
        where = (round(t.get_position()[0], 3), str(t.get_horizontalalignment()))
        by_side.setdefault(where, []).append(t)
    for col in by_side.values():
        spread_labels(col)
    _sequence_legend(ax, drawn, outcome_of, color_by, len(drop_x))
    return fig


def _sequence_legend(ax: Axes, drawn: set[str], outcome_of: dict[int, str], color_by: str,
                     drops: int) -> None:
    """One entry per kind of thing drawn, and nothing else."""
    handles: list[Any] = []
    if color_by == "outcome":
        present = set(outcome_of.values())
        for name in [*OUTCOMES, *sorted(present - set(OUTCOMES))]:
            if name in present:
                handles.append(Line2D([], [], color=outcome_color(name), linewidth=3,
                                      label=f"request ended {name}"))
    styles: tuple[tuple[str, Any, str], ...] = (
        ("request", "-", "request (solid)"), ("reply", "--", "reply (dashed)"),
        ("in_flight", ":", "still in flight at the end"))
    for key, ls, label in styles:
        if key in drawn:
            handles.append(Line2D([], [], color=GREY, linewidth=1.2, linestyle=ls, label=label))
    if drops:
        handles.append(Line2D([], [], linestyle="none", marker="X", markersize=8,
                              color=OKABE_ITO["vermillion"], markeredgecolor="white",
                              label=f"dropped message ({drops})"))
    if "activation" in drawn:
        handles.append(Patch(facecolor="#F2F2F2", edgecolor=GREY, linewidth=0.6,
                             label="node working on it"))
    reuse.legend(ax, handles, [h.get_label() for h in handles], loc="upper left",
                 bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)
