"""Figures of sharded channels, consumer groups and delivery guarantees (issue 9).

Views for the runs of issue 9's scenarios (``order-lifecycle``,
``rebalance``, ``delivery-guarantees``, ``outbox``), each drawn from the
tables the :class:`~simcomm.result.Result` builds out of the trace's
``records`` rows (:mod:`simcomm.analysis.delivery`), and each saying what
it cannot show, and why, for any run:

* :func:`partition_assignment` -- a strip per partition coloured by the
  group member that owned it over time (``res.assignments()``), the
  rebalances shaded (``res.rebalances()``), the members' crashes marked: an
  eager rebalance leaves every strip blank for the stop-the-world pause, a
  cooperative one only the strips of the partitions that move;
* :func:`consumer_lag` -- per partition, the records appended and not yet
  committed by the group over time (``res.consumer_lag()``: Kafka's
  consumer lag, log end offset minus committed offset), rebalances and
  crashes shaded;
* :func:`key_order` -- per key, the n-th record produced against the n-th
  applied (``res.key_order()``): in order is the diagonal, a reordered
  record an ✕ off it, a duplicate a ring, each coloured by its cause;
* :func:`delivery_causes` -- the anomalies (lost, duplicated, reordered,
  gaps, phantoms) counted by cause (``res.delivery_causes()``);
* :func:`outbox_lag` -- each committed outbox record's lag from the
  database commit to its first application (``res.outbox_lag()``), over
  time and as a histogram, the records never delivered (a dual write's
  loss) and never committed (a phantom) marked;

and :func:`delivery_matrix_figure`, not a view: the heat map of a
delivery-matrix table it is given (``simcomm.delivery_matrix`` makes one),
the lost / duplicated / reordered records per 10 000 for each producer
setting (``acks`` × ``enable.idempotence``) and consumer setting (commit
point × dedup).

Colours: a group member keeps one colour in every figure of a run
(:func:`member_colors`); a cause of an anomaly keeps one colour in every
figure (:data:`CAUSE_COLORS`).  viz only draws (DESIGN principle 7):
nothing here runs a simulation.  Every figure draws through
:class:`~simcomm.viz.reuse.Keeper`, so given the axes it drew before it
updates its artists in place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from simcomm.errors import ParamError
from simcomm.viz import data, reuse
from simcomm.viz.messaging import _plain_log_ticks
from simcomm.viz.style import (
    EXTRA_COLORS,
    GREY,
    INK,
    LOAD_CMAP,
    OKABE_ITO,
    SERIES_COLORS,
    figure_for,
    new_figure,
    opaque,
    pin_axis_labels,
    root_figure,
    set_titles,
    style_axes,
    wrap_label,
)
from simcomm.viz.timeseries import _legend, fault_bands

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simcomm.result import Result

__all__ = [
    "ANOMALIES", "CAUSE_COLORS", "KIND_STYLES", "MEMBER_COLORS", "assignment_rows",
    "cause_color", "consumer_lag", "delivery_causes", "delivery_matrix_figure",
    "key_order", "key_order_points", "member_colors", "outbox_lag", "partition_assignment",
]

#: The anomalies of :meth:`Result.delivery_anomalies`, in the order figures list them.
ANOMALIES: tuple[str, ...] = ("lost", "duplicated", "reordered", "gap", "phantom")

#: One fixed colour per cause of an anomaly (the causes of
#: :mod:`simcomm.analysis.delivery`), the same in every figure, so a learner
#: who has seen "orange is a rebalance" reads the next figure without its
#: legend.  Competing consumers are vermillion (the ``error`` colour: the
#: mission's first lesson), a rebalance orange, a crash before the commit
#: reddish purple, a retry in flight blue; an unattributed anomaly grey.
CAUSE_COLORS: dict[str, str] = {
    "competing consumers": OKABE_ITO["vermillion"],
    "rebalance": OKABE_ITO["orange"],
    "crash before commit": OKABE_ITO["reddish_purple"],
    "retry in flight": OKABE_ITO["blue"],
    "relay crash": OKABE_ITO["sky_blue"],
    "redelivery": EXTRA_COLORS["wine"],
    "commit before processing": EXTRA_COLORS["indigo"],
    "leader failover": EXTRA_COLORS["dark_brown"],
    "producer gave up": EXTRA_COLORS["dark_olive"],
    "dual write": OKABE_ITO["black"],
    "": GREY,
}

#: The markers of :func:`key_order`, by kind of application: a first
#: application in order a green dot, one in order but ahead of an earlier
#: record still missing (a gap) a hollow green diamond, a reordered one an ✕,
#: a duplicate (applied again) a ring -- both in their cause's colour -- and a
#: repeat the consumer's dedup skipped a small grey square (the effect was not
#: applied twice: what exactly-once processing looks like).
KIND_STYLES: dict[str, dict[str, Any]] = {
    "in_order": {"marker": "o", "label": "in order"},
    "ahead": {"marker": "D", "label": "applied ahead of an earlier record still missing "
                                    "(a gap)"},
    "reordered": {"marker": "X", "label": "reordered: applied after a record produced later"},
    "duplicate": {"marker": "o", "label": "duplicate: applied again"},
    "skipped": {"marker": "s", "label": "skipped: the consumer's dedup caught a repeat"},
}

#: Colours of the members of a consumer group, in the order the run added them.
MEMBER_COLORS: tuple[str, ...] = (*SERIES_COLORS, EXTRA_COLORS["dark_olive"],
                                  EXTRA_COLORS["wine"], EXTRA_COLORS["light_green"],
                                  OKABE_ITO["yellow"])

#: Most partitions :func:`partition_assignment` draws a strip for, unless told which.
MAX_STRIPS = 24

#: Marks the figures these functions made themselves (their suptitle is theirs).
_OWNER = "_simcomm_owner"

_IN_ORDER_COLOR = opaque(OKABE_ITO["bluish_green"], 0.75)

#: The columns of each table the figures read (Part D's shapes); a Result
#: without the method (a run without records) reads as an empty table.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "assignments": ("group", "topic", "partition", "member", "start", "end", "generation"),
    "rebalances": ("group", "start", "end", "why", "generation"),
    "consumer_lag": ("time", "group", "topic", "partition", "log_end", "committed", "lag"),
    "key_order": ("key", "record_id", "produced_index", "applied_index", "time", "node",
                  "partition", "offset", "kind", "cause"),
    "delivery_causes": ("anomaly", "cause", "count"),
    "outbox_lag": ("record_id", "key", "committed", "sent", "applied", "lag"),
}


# =====================================================================================
# the run's tables, read once per Result
# =====================================================================================
def _table(res: Result, name: str) -> pd.DataFrame:
    """``res.<name>()``, computed once per Result (an empty table of the right
    columns if the Result has no such method)."""
    def make() -> pd.DataFrame:
        fn = getattr(res, name, None)
        df = fn() if callable(fn) else None
        if df is None:
            return pd.DataFrame({c: [] for c in _COLUMNS[name]})
        return df
    return data.cached(res, f"ordering_{name}", make)  # type: ignore[no-any-return]


def cause_color(cause: Any) -> str:
    """The fixed colour of a cause (grey for an unknown or missing one)."""
    if cause is None or (isinstance(cause, float) and math.isnan(cause)):
        return GREY
    return CAUSE_COLORS.get(str(cause), GREY)


def _cause_text(cause: Any) -> str:
    if cause is None or (isinstance(cause, float) and math.isnan(cause)) or cause == "":
        return "cause unknown"
    return str(cause)


def _traced(res: Result) -> bool:
    return bool(res.world.trace.enabled)


def _why_empty(res: Result) -> str:
    return ("" if _traced(res) else
            " (the records tables need a run with trace=True)")


def _no_data(k: reuse.Keeper, ax: Axes, text: str) -> None:
    """A note in the middle of an empty axes (what the figure cannot show, and why)."""
    k.text("no_data", 0.5, 0.5, wrap_label(text, 70).replace("\n  ", "\n"),
           transform=ax.transAxes, ha="center", va="center", fontsize=9, color=INK,
           zorder=5, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85,
                           "pad": 2})


def _rows_of(axes: Axes | Sequence[Axes] | None, n: int, what: str) -> list[Axes] | None:
    if axes is None:
        return None
    axs = [axes] if not isinstance(axes, Sequence) else list(axes)
    if len(axs) != n:
        raise ParamError("axes", f"{len(axs)} axes", f"{n}: {what}")
    return axs


def _pick(known: Sequence[Any], chosen: Any, field_name: str, what: str) -> list[Any] | None:
    """``chosen`` as a list of values from ``known`` (None: None), else a ParamError."""
    if chosen is None:
        return None
    names = [chosen] if isinstance(chosen, (str, int)) and not isinstance(chosen, bool) \
        else chosen
    if not isinstance(names, Iterable) or isinstance(names, (str, bytes)):
        raise ParamError(field_name, chosen, f"{what}: "
                         + (", ".join(map(str, known)) or "none in this run"))
    names = list(names)
    as_text = {str(k): k for k in known}
    out = []
    for n in names:
        if n in known:
            out.append(n)
        elif str(n) in as_text:
            out.append(as_text[str(n)])
        else:
            raise ParamError(field_name, n, f"{what}: "
                             + (", ".join(map(str, known[:20])) or "none in this run"))
    if not out:
        raise ParamError(field_name, names, f"{what}: "
                         + (", ".join(map(str, known[:20])) or "none in this run"))
    return out


def _titles(k: reuse.Keeper, ax: Axes, title: str, small: str = "", *,
            lift: float = 0.0) -> None:
    """The title over ``ax`` (what the figure shows, and its point) and the small
    print (counts) beside it, over the legend column to the right, so a long
    title never runs into it.  ``lift`` raises both by that many points (room
    for words written just above the axes)."""
    fig = root_figure(ax)
    height_in = max(ax.get_position().height * fig.get_figheight(), 0.3)
    y = 1.0 + lift / 72.0 / height_in
    set_titles(ax, title, None, size=10, y=y)
    from matplotlib.transforms import ScaledTranslation

    pad = ScaledTranslation(0.0, 6.0 / 72.0, fig.dpi_scale_trans)
    k.text("small_print", 1.01, y, small, transform=ax.transAxes + pad, ha="left",
           va="baseline", fontsize=8, color=INK, clip_on=False)


def _span_verts(s: np.ndarray, e: np.ndarray, lo: np.ndarray | float,
                hi: np.ndarray | float) -> np.ndarray:
    """Rectangles ``[s, e] × [lo, hi]`` as PolyCollection vertices."""
    s = np.asarray(s, dtype=float)
    e = np.asarray(e, dtype=float)
    lo_a = np.broadcast_to(np.asarray(lo, dtype=float), s.shape)
    hi_a = np.broadcast_to(np.asarray(hi, dtype=float), s.shape)
    if not s.size:
        return np.zeros((0, 4, 2))
    return np.stack([np.column_stack([s, lo_a]), np.column_stack([s, hi_a]),
                     np.column_stack([e, hi_a]), np.column_stack([e, lo_a])], axis=1)


def member_colors(res: Result) -> dict[str, str]:
    """One colour per consumer-group member of the run: the members in the
    order the run added them (then any other, by name), coloured by
    :data:`MEMBER_COLORS` in turn -- the same member the same colour in
    every figure of the run."""
    def make() -> dict[str, str]:
        names: dict[str, None] = {}
        a = _table(res, "assignments")
        if len(a):
            names.update(dict.fromkeys(str(m) for m in a["member"].tolist()))
        lag = _table(res, "key_order")
        if len(lag) and "node" in lag:
            names.update(dict.fromkeys(str(m) for m in lag["node"].dropna().tolist()))
        order = {n: i for i, n in enumerate(res.world.nodes)}
        ordered = sorted(names, key=lambda n: (order.get(n, len(order)), n))
        return {n: MEMBER_COLORS[i % len(MEMBER_COLORS)] for i, n in enumerate(ordered)}
    return data.cached(res, "ordering_member_colors", make)  # type: ignore[no-any-return]


def _rebalance_intervals(res: Result, groups: Sequence[str] | None = None
                         ) -> list[tuple[float, float, str, str]]:
    """``(start, end, why, group)`` of every rebalance (an unfinished one ends
    at the end of the run)."""
    rb = _table(res, "rebalances")
    if not len(rb):
        return []
    out = []
    for g, s, e, why in zip(rb["group"].tolist(), rb["start"].tolist(), rb["end"].tolist(),
                            rb["why"].tolist(), strict=True):
        if groups is not None and g not in groups:
            continue
        end = float(e) if e is not None and np.isfinite(float(e)) else float(res.until)
        out.append((float(s), max(end, float(s)), str(why), str(g)))
    return out


def _shade_rebalances(k: reuse.Keeper, ax: Axes, iv: Sequence[tuple[float, float, str, str]],
                      *, label: bool = True) -> Any:
    """The rebalances as hatched bands over the whole height of ``ax``."""
    if not iv:
        return None
    s = np.array([r[0] for r in iv])
    e = np.array([r[1] for r in iv])
    # a rebalance shorter than a pixel still shows: at least 1/400 of the run
    e = np.maximum(e, s + ax.get_xlim()[1] / 400.0)
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    return k.polys("rebalances", _span_verts(s, e, 0.0, 1.0), transform=trans,
                   facecolor=opaque(GREY, 0.18), edgecolor=opaque(GREY, 0.7), hatch="///",
                   linewidth=0, zorder=0.6, gid="rebalance",
                   label="rebalance under way" if label else None)


_WHY = {"join": "join", "leave": "leave", "session_timeout": "expired",
        "poll_timeout": "poll timeout", "follow_up": "2nd round"}


def _name_rebalances(k: reuse.Keeper, ax: Axes, iv: Sequence[tuple[float, float, str, str]],
                     until: float) -> None:
    """Why each rebalance started, above the axes at its start, where the words
    fit without running into the previous ones (a crowd of them says nothing)."""
    if not iv or len(iv) > 12:
        return
    fig = root_figure(ax)
    width_pt = max(ax.get_position().width * fig.get_figwidth() * 72, 1.0)
    per_pt = until / width_pt
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    last_end = -math.inf
    for i, (s, _e, why, _g) in enumerate(sorted(iv)):
        word = ", ".join(_WHY.get(w, w) for w in why.split(","))
        width = (len(word) * 0.6 * 7.5 + 4) * per_pt
        if s - width / 2 < last_end:
            continue
        last_end = s + width / 2
        k.text(f"why:{i}", s, 1.01, word, transform=trans, ha="center", va="bottom",
               fontsize=7.5, color=INK, clip_on=False)


# =====================================================================================
# partition → member over time
# =====================================================================================
def assignment_rows(res: Result) -> list[tuple[str, str, int]]:
    """The ``(group, topic, partition)`` strips of :func:`partition_assignment`,
    in order (group, topic, partition)."""
    a = _table(res, "assignments")
    rows = {(str(g), str(t), int(p)) for g, t, p in zip(
        a["group"].tolist(), a["topic"].tolist(), a["partition"].tolist(), strict=True)}
    return sorted(rows)


def _strip_label(row: tuple[str, str, int], groups: int, topics: int) -> str:
    g, t, p = row
    text = f"p{p}" if topics <= 1 else f"{t}[{p}]"
    return f"{g}: {text}" if groups > 1 else text


def _assign_rows(res: Result, partitions: Any) -> list[tuple[str, str, int]]:
    known = assignment_rows(res)
    if partitions is None:
        return known[:MAX_STRIPS]
    by_p: dict[Any, list[tuple[str, str, int]]] = {}
    for row in known:
        by_p.setdefault(row[2], []).append(row)
    picked = _pick(sorted(by_p), partitions, "partitions",
                   "partitions assigned in this run")
    return [row for p in picked or [] for row in by_p[p]]


def _unowned(stretches: Sequence[tuple[float, float]], t0: float, t1: float) -> float:
    """Seconds of ``[t0, t1]`` covered by none of ``stretches``."""
    if t1 <= t0:
        return 0.0
    covered = 0.0
    cur_s, cur_e = None, None
    for s, e in sorted(stretches):
        s, e = max(s, t0), min(e, t1)
        if e <= s:
            continue
        if cur_e is None or s > cur_e:
            if cur_e is not None and cur_s is not None:
                covered += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None and cur_s is not None:
        covered += cur_e - cur_s
    return (t1 - t0) - covered


def partition_assignment(res: Result, partitions: Any = None, ax: Axes | None = None, *,
                         faults: bool = True) -> Figure:
    """Which member of the consumer group owned each partition, over time.

    What the learner sees: one **strip per partition** (``p0``, ``p1``...;
    ``topic[p]`` with several topics, the group first with several groups),
    coloured along time by the member that owned it -- the same colour for
    a member in every figure of the run (:func:`member_colors`); a blank
    stretch is a partition nobody consumed.  **Hatched grey bands** are the
    rebalances (from ``rebalance_start`` to ``rebalance_end``), with why
    each began written above (a member joined, left, expired by
    ``session.timeout.ms`` / ``max.poll.interval.ms``, a cooperative second
    round); grey bands behind are members that were down (crashed).
    With the eager protocol every strip goes blank during a rebalance (each
    member revokes everything before the new assignment: Kafka's
    stop-the-world); with cooperative-sticky only the strips of the
    partitions that move, for two rounds.  The title counts the
    rebalances and how many partitions each one stopped; the small print
    the partition-seconds without an owner after the group first had one.
    ``partitions`` picks strips by partition number (default the first
    :data:`MAX_STRIPS`).  Needs the trace.
    """
    if not isinstance(faults, (bool, np.bool_)):
        raise ParamError("faults", faults, "True or False")
    rows = _assign_rows(res, partitions)
    known = assignment_rows(res)
    n = max(1, len(rows))
    height = 1.25 + 0.27 * n + (0.0 if rows else 0.6)
    fig, ax, _ = figure_for(ax, 9.0, height, margins=(0.85, 2.35, 0.62, 0.5))
    k = reuse.keeper(ax, "partition_assignment")
    if k.fresh:
        ax.grid(True, axis="x", color="#E5E5E5", linewidth=0.7)
        ax.set_axisbelow(True)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", length=0)
    until = float(res.until)
    ax.set_xlim(0, until)
    a = _table(res, "assignments")
    colors = member_colors(res)
    index = {row: i for i, row in enumerate(rows)}
    groups = sorted({r[0] for r in rows})
    by_member: dict[str, list[tuple[float, float, int]]] = {}
    stretches: dict[tuple[str, str, int], list[tuple[float, float]]] = {r: [] for r in rows}
    if len(a):
        ends = a["end"].to_numpy(dtype=float)
        ends = np.where(np.isfinite(ends), ends, until)
        for g, t, p, m, s, e in zip(a["group"].tolist(), a["topic"].tolist(),
                                    a["partition"].tolist(), a["member"].tolist(),
                                    a["start"].to_numpy(dtype=float), ends, strict=True):
            row = (str(g), str(t), int(p))
            i = index.get(row)
            if i is None:
                continue
            by_member.setdefault(str(m), []).append((float(s), float(e), i))
            stretches[row].append((float(s), float(e)))
    handles: list[Any] = []
    for m in colors:
        if m not in by_member:
            continue
        seq = by_member[m]
        s = np.array([x[0] for x in seq])
        e = np.array([x[1] for x in seq])
        y = np.array([x[2] for x in seq], dtype=float)
        handles.append(k.polys(f"member:{m}", _span_verts(s, e, y - 0.36, y + 0.36),
                               facecolor=colors[m], edgecolor="white", linewidth=0.6,
                               zorder=2, gid=f"owner:{m}", label=m))
    iv = _rebalance_intervals(res, groups or None)
    shade = _shade_rebalances(k, ax, iv)
    # over the strips: a dead (or hung) member still owns its partitions until the
    # coordinator expires it, and nobody reads them in between
    bands = _dead_owners(k, res, by_member) if faults else []
    _name_rebalances(k, ax, iv, until)
    ax.set_ylim(n - 0.5, -0.5)
    labels = [_strip_label(r, len(groups), len({r[1] for r in rows})) for r in rows]
    ax.set_yticks(list(range(len(rows))), labels, fontsize=8)
    ax.set_xlabel("time (s)")
    # the point: how many partitions each rebalance stopped, and the time lost
    first = min((s for seq in stretches.values() for s, _ in seq), default=math.nan)
    lost = sum(_unowned(seq, first, until) for seq in stretches.values()) if rows else 0.0
    # a cooperative rebalance's follow-up round is part of the same rebalance
    episodes: list[list[Any]] = []
    for s, e, why, g in sorted(iv):
        same = [ep for ep in episodes if ep[3] == g]
        if why.split(",")[0] == "follow_up" and same:
            same[-1][1] = max(same[-1][1], e)
            same[-1][4] += 1
        else:
            episodes.append([s, e, why, g, 1])
    later = [ep for ep in episodes
             if not (set(ep[2].split(",")) == {"join"} and ep[0] <= first + 1e-9)]
    stopped = [sum(_unowned(stretches[row], ep[0], max(ep[1], ep[0] + 1e-9)) > 1e-9
                   for row in rows if row[0] == ep[3]) for ep in later]
    n_parts = len(rows)
    if not rows:
        queued = data.cached(res, "ordering_queued", lambda: any(
            row[1] == "apply" and row[4] == -1 for row in res.world.trace.records))
        _no_data(k, ax, (
            "no partitions in this run: its records went through a queue, whose competing "
            "consumers each take the next message (a sharded channel gives each partition "
            "to one member of a consumer group)" if queued else
            "no consumer group was assigned a partition in this run" if _traced(res)
            else "partition assignments") + _why_empty(res))
        title = "Partition owners over time"
        right = ""
    else:
        n = len(later)
        rounds = "two rounds each · " if later and all(ep[4] > 1 for ep in later) else ""
        if not n:
            title = "Partition owners: one assignment, no rebalance after it"
        elif all(c >= n_parts for c in stopped):
            title = ("Partition owners: the rebalance stopped all "
                     if n == 1 else f"Partition owners: each of {n} rebalances stopped all ") \
                + f"{n_parts} partitions"
        else:
            title = (f"Partition owners: {n} rebalance{'s' * (n != 1)} stopped "
                     + (f"{stopped[0]}" if n == 1 else f"{np.mean(stopped):.2g}")
                     + f" of {n_parts} partitions" + ("" if n == 1 else " on average"))
        right = f"{rounds}{lost:.3g} partition·s without an owner"
        if len(known) > len(rows) and partitions is None:
            right = f"first {len(rows)} of {len(known)} · " + right
    _titles(k, ax, title, right, lift=12.0 if iv else 0.0)
    pin_axis_labels(ax)
    k.finish()
    extra: list[Any] = []
    if shade is not None:
        extra.append(shade)
    extra += bands
    reuse.legend(ax, [*handles, *extra],
                 [wrap_label(str(h.get_label()), 30) for h in [*handles, *extra]],
                 loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                 fontsize=8, frameon=False, title="owner" if handles else None,
                 title_fontsize=8, alignment="left")
    return fig


def _dead_owners(k: reuse.Keeper, res: Result,
                 by_member: Mapping[str, Sequence[tuple[float, float, int]]]) -> list[Any]:
    """Darken each strip where its owner was down (crashed) or hung: the member
    still holds the partition (the coordinator expires it only after
    ``session.timeout.ms``) and nobody reads it."""
    from simcomm.viz.style import FAULT_COLORS

    out = []
    for kind, word in (("down", "crashed"), ("hung", "hung")):
        spans: list[tuple[float, float, int]] = []
        who: dict[str, None] = {}
        for node, kd, f0, f1, _detail in data.fault_rows(res):
            if kd != kind or node not in by_member:
                continue
            for s, e, row in by_member[node]:
                lo, hi = max(s, f0), min(e, f1)
                if hi > lo:
                    spans.append((lo, hi, row))
                    who[node] = None
        if not spans:
            continue
        y = np.array([r for _, _, r in spans], dtype=float)
        out.append(k.polys(
            f"dead:{kind}", _span_verts(np.array([a for a, _, _ in spans]),
                                        np.array([b for _, b, _ in spans]), y - 0.36, y + 0.36),
            facecolor=opaque(FAULT_COLORS[kind], 0.8), edgecolor="white", hatch="xx",
            linewidth=0, zorder=2.5, gid=f"fault:{kind}",
            label=f"owner {word}, nobody reads it: {', '.join(who)}"))
    return out


def _fits(ax: Axes, *titles: str, size: float = 10.0, until: Axes | None = None) -> str:
    """The first of ``titles`` whose estimated width (about 0.55 em a character)
    fits over ``ax`` (and on to the right edge of ``until``); else the last."""
    fig = root_figure(ax)
    right = (until or ax).get_position().x1
    width_pt = (right - ax.get_position().x0) * fig.get_figwidth() * 72
    for t in titles:
        if len(t) * 0.55 * size <= width_pt:
            return t
    return titles[-1]


# =====================================================================================
# consumer lag
# =====================================================================================
#: Most steps a lag line draws: a row per append and per commit can be a
#: hundred thousand; a bin keeps its highest lag (a peak never disappears).
MAX_STEPS = 600


def _peaks(t: np.ndarray, v: np.ndarray, until: float) -> tuple[np.ndarray, np.ndarray]:
    """``(t, v)`` as at most :data:`MAX_STEPS` steps, each bin its maximum."""
    if t.size <= MAX_STEPS:
        return t, v
    edges = np.linspace(0.0, max(until, float(t[-1])), MAX_STEPS + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, MAX_STEPS - 1)
    top = np.full(MAX_STEPS, -np.inf)
    np.maximum.at(top, idx, v)
    seen = np.isfinite(top)
    # a bin without a row keeps the lag the previous bin's last row left
    end = np.full(MAX_STEPS, np.nan)
    end[idx] = v  # the last write of a bin wins: its last row
    carried = pd.Series(end).ffill().shift(1).to_numpy()
    out = np.where(seen, top, carried)
    first = int(np.argmax(seen))
    return edges[first:-1], np.nan_to_num(out[first:], nan=0.0)


#: Most nodes :func:`_fault_lanes` gives a lane; more share one band per kind.
MAX_LANES = 4


def _fault_lanes(k: reuse.Keeper, ax: Axes, res: Result) -> None:
    """The crashes and hangs of the run's nodes (members, brokers) along the top of
    ``ax``: a thin lane per node, its name written in it, so a broker's crash and a
    member's read apart (above :data:`MAX_LANES` nodes, one strip per kind)."""
    from simcomm.viz.style import FAULT_COLORS, FAULT_LABELS

    rows = [r for r in data.fault_rows(res) if r[1] in ("down", "hung")]
    nodes = list(dict.fromkeys(r[0] for r in rows))
    if len(nodes) > MAX_LANES:
        fault_bands(ax, res, kinds=("down", "hung"), annotate=False, ymin=0.93, zorder=3.5,
                    alpha=0.9)
        return
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    lane = 0.055
    for kind in ("down", "hung"):
        sub = [r for r in rows if r[1] == kind]
        if not sub:
            continue
        lo = np.array([1.0 - lane * (nodes.index(r[0]) + 1) for r in sub])
        k.polys(f"lane:{kind}", _span_verts(np.array([r[2] for r in sub]),
                                            np.array([r[3] for r in sub]), lo, lo + lane * 0.9),
                transform=trans, facecolor=opaque(FAULT_COLORS[kind], 0.9), edgecolor="none",
                zorder=3.5, gid=f"fault:{kind}",
                label=f"{FAULT_LABELS[kind]}: " + ", ".join(dict.fromkeys(r[0] for r in sub)))
    for i, r in enumerate(rows):
        k.text(f"lane_name:{i}", r[2], 1.0 - lane * (nodes.index(r[0]) + 0.55), f" {r[0]}",
               transform=trans, ha="left", va="center", fontsize=6.5,
               color="white" if r[1] == "down" else INK, zorder=3.6, clip_on=True)


def consumer_lag(res: Result, ax: Axes | None = None, *, faults: bool = True) -> Figure:
    """How far behind the group is on each partition, over time.

    What the learner sees: per partition a **step line** of its consumer lag
    -- records appended to the partition and not yet committed by the group
    (log end offset − committed offset, what ``kafka-consumer-groups
    --describe`` prints as LAG) -- one colour per partition for up to six,
    otherwise grey lines with the partition that fell furthest behind in
    vermillion.  **Hatched grey bands** are rebalances (nobody commits
    while one stops the group), grey bands behind crashed members.  A group
    that keeps up stays near the bottom; a crash before a commit, a slow
    member or a stop-the-world rebalance makes a partition's lag climb
    until someone owns it again.  The title says where the lag peaked.
    Needs the trace.
    """
    if not isinstance(faults, (bool, np.bool_)):
        raise ParamError("faults", faults, "True or False")
    fig, ax, _ = figure_for(ax, 9.0, 3.6, margins=(0.8, 2.35, 0.45, 0.55))
    k = reuse.keeper(ax, "consumer_lag")
    if k.fresh:
        style_axes(ax)
    until = float(res.until)
    ax.set_xlim(0, until)
    df = _table(res, "consumer_lag")
    series: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]] = {}
    if len(df):
        d = df.sort_values("time", kind="stable")
        for (g, t, p), part in d.groupby(["group", "topic", "partition"], sort=True):
            series[(str(g), str(t), int(p))] = _peaks(part["time"].to_numpy(dtype=float),
                                                      part["lag"].to_numpy(dtype=float),
                                                      until)
    groups = {s[0] for s in series}
    topics = {s[1] for s in series}
    peak_row, peak_val, peak_t = None, 0.0, 0.0
    for row, (t, v) in series.items():
        if v.size and np.nanmax(v) > peak_val:
            i = int(np.nanargmax(v))
            peak_row, peak_val, peak_t = row, float(v[i]), float(t[i])
    few = len(series) <= len(SERIES_COLORS)
    labelled = False  # the grey lines share one legend entry
    label: str | None
    for j, (row, (t, v)) in enumerate(series.items()):
        x = np.append(t, until)
        y = np.append(v, v[-1] if v.size else 0.0)
        name = _strip_label(row, len(groups), len(topics))
        if few:
            colour, width, z = SERIES_COLORS[j % len(SERIES_COLORS)], 1.6, 3.0
            label = name
        elif row == peak_row:
            colour, width, z = OKABE_ITO["vermillion"], 1.8, 4.0
            label = f"{name}: furthest behind"
        else:
            colour, width, z = opaque(GREY, 0.8), 0.9, 2.0
            label = None if labelled else "another partition"
            labelled = True
        k.line(f"lag:{j}", x, y, drawstyle="steps-post", color=colour, linewidth=width,
               zorder=z, label=label, gid=f"lag:{name}")
    iv = _rebalance_intervals(res)
    _shade_rebalances(k, ax, iv)
    if faults:  # a lane per node along the top, the lines stay readable
        _fault_lanes(k, ax, res)
    ax.set_ylim(0, data.nice_top(max(peak_val, 1.0) * 1.3))  # clear of the fault lanes
    ax.yaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("lag (records)")
    if not series:
        _no_data(k, ax, ("no consumer group committed or lagged on a partition in this run"
                         if _traced(res) else "consumer lag") + _why_empty(res))
        title = "Consumer lag per partition"
    elif peak_val <= 0:
        title = "Consumer lag per partition: always 0, the group keeps up"
    else:
        name = _strip_label(peak_row, len(groups), len(topics)) if peak_row else ""
        during = next((why for s, e, why, _g in iv if s <= peak_t <= e), None)
        down = [(node, kind) for node, kind, f0, f1, _ in data.fault_rows(res)
                if kind in ("down", "hung") and f0 <= peak_t <= f1]
        when = (", during a rebalance" if during is not None else
                f", while {down[0][0]} was {down[0][1]}" if down else "")
        title = _fits(ax, f"Consumer lag per partition: peaks at {peak_val:,.0f} records "
                          f"({name} at {peak_t:.3g} s{when})",
                      f"Lag peaks at {peak_val:,.0f} records ({name} at {peak_t:.3g} s{when})",
                      f"Lag peaks at {peak_val:,.0f} records ({name} at {peak_t:.3g} s)")
    _titles(k, ax, title, f"{len(series)} partitions" if series else "")
    pin_axis_labels(ax)
    k.finish()
    _legend(ax, wrap=30)
    return fig


# =====================================================================================
# per-key order
# =====================================================================================
def key_order_points(res: Result, keys: Any = None) -> pd.DataFrame:
    """The points of :func:`key_order`: one row per distinct ``(applied,
    produced, kind, cause)`` with ``count`` (how many applications, of all
    the keys, fall there).

    ``produced`` is the record's place in its key's produced order, from 1;
    ``applied`` its place in the key's applied order for a first application
    -- and for a repeat (a duplicate, or a repeat the dedup skipped), where
    it came: half-way after the first applications of its key done before
    it.  In order, ``applied == produced``.  ``kind`` is the table's
    (``in_order``, ``reordered``, ``duplicate``, ``skipped``), except that a
    first application in order but off the diagonal -- applied while an
    earlier record of its key was still missing (a gap: lost, or overtaken)
    -- is ``ahead``.
    """
    df = _table(res, "key_order")
    if not len(df):
        return pd.DataFrame({"applied": pd.Series([], dtype=float),
                             "produced": pd.Series([], dtype=float),
                             "kind": pd.Series([], dtype=object),
                             "cause": pd.Series([], dtype=object),
                             "count": pd.Series([], dtype=int)})
    produced_all = df["produced_index"].to_numpy(dtype=float)
    shift = 1.0 if (np.isfinite(produced_all).any()
                    and np.nanmin(produced_all) == 0) else 0.0  # from 1: "the 1st"
    if keys is not None:
        known = list(dict.fromkeys(df["key"].tolist()))
        picked = _pick(known, keys, "keys", "keys applied in this run")
        df = df[df["key"].isin(picked or [])]
    # a null-keyed record has no produced order, a phantom was never produced:
    # neither has a place on the figure (delivery_causes counts the phantoms)
    d = df[df["produced_index"].notna()].sort_values("time", kind="stable")
    first = d["applied_index"].notna().to_numpy()
    # the first applications of the key (by its reader) before each row: where a
    # repeat came
    by = ["reader", "key"] if "reader" in d.columns else ["key"]
    done = d.assign(_f=first.astype(int)).groupby(by, sort=False)["_f"].cumsum().to_numpy()
    applied = np.where(first, d["applied_index"].to_numpy(dtype=float) + shift, done + 0.5)
    produced = d["produced_index"].to_numpy(dtype=float) + shift
    kind = d["kind"].astype(str).to_numpy().astype(object)
    kind[(kind == "in_order") & first & (applied != produced)] = "ahead"
    cause = np.array(["" if c is None or (isinstance(c, float) and math.isnan(c)) else str(c)
                      for c in d["cause"].tolist()], dtype=object)
    cause[kind == "in_order"] = ""
    pts = pd.DataFrame({"applied": applied, "produced": produced, "kind": kind,
                        "cause": cause})
    return (pts.groupby(["applied", "produced", "kind", "cause"], sort=True)
            .size().rename("count").reset_index())


#: Smallest and largest marker areas (points²) of :func:`key_order`; a violation
#: is never drawn smaller than :data:`_MARK_MIN`, however few records it holds.
_AREA = (14.0, 420.0)
_MARK_MIN = 90.0


def _sizes(counts: np.ndarray, top: float, many: bool, mark: bool) -> np.ndarray:
    """Marker areas (points²): ∝ count, up to the largest for the most crowded spot."""
    lo, hi = _AREA
    if many or not counts.size:
        area = np.full(counts.shape, 16.0)
    else:
        area = lo + (hi - lo) * counts / max(top, 1.0)
    return np.maximum(area, _MARK_MIN) if mark else np.asarray(area, dtype=float)


def key_order(res: Result, keys: Any = None, ax: Axes | None = None) -> Figure:
    """For every key, the order its records were produced against the order
    they were applied.

    What the learner sees: along x the n-th application of a key, up the y
    axis the n-th record produced for it (``Result.key_order()``, counted
    from 1).  A record applied in the order it was produced sits on the
    **dashed diagonal** (a green dot); one applied after a record of its key
    produced later is an **✕** below it, and one applied again a **ring** --
    both in the colour of their cause (competing consumers vermillion, a
    rebalance orange, a crash before the commit reddish purple, a retry in
    flight blue: :data:`CAUSE_COLORS`).  A hollow green diamond above the
    diagonal is a record applied ahead of an earlier one still missing (the
    one that overtook an ✕, or followed a lost record: a gap), and a small
    grey square a repeat the consumer's dedup skipped (its effect not
    applied twice).  Each mark's area counts the records (of all keys) that
    fall on it, written beside it when there are few spots: with the FTGO
    order lifecycle's three events per order the figure is the 3 × 3 table
    of "produced n-th, applied m-th".  Competing consumers on one queue put
    marks off the diagonal; a sharded channel (one consumer per partition)
    puts them all back on it.  ``keys`` picks keys.  Needs the trace.
    """

    fig, ax, _ = figure_for(ax, 9.0, 4.2, margins=(0.8, 2.35, 0.45, 0.6))
    k = reuse.keeper(ax, "key_order")
    if k.fresh:
        style_axes(ax)
    raw = _table(res, "key_order")
    pts = key_order_points(res, keys)
    if keys is not None and len(raw):
        picked = _pick(list(dict.fromkeys(raw["key"].tolist())), keys, "keys",
                       "keys applied in this run")
        raw = raw[raw["key"].isin(picked or [])]
    many = len(pts) > 150
    # the most records on one spot (of any cause) scales the marks' areas
    top = float(pts.groupby(["applied", "produced", "kind"])["count"].sum().max()
                if len(pts) else 1.0)
    hi = float(max(pts["applied"].max() if len(pts) else 1.0,
                   pts["produced"].max() if len(pts) else 1.0, 1.0))
    lo = 1.0 if not len(pts) else float(min(pts["applied"].min(), pts["produced"].min(), 1.0))
    pad = 0.6 if hi - lo < 12 else (hi - lo) * 0.04
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    k.line("diagonal", [lo - pad, hi + pad], [lo - pad, hi + pad], color=GREY,
           linestyle="--", linewidth=1.0, zorder=1)
    drawn: list[str] = []
    for kind in ("in_order", "ahead", "skipped", "duplicate", "reordered"):
        sub = pts[pts["kind"] == kind]
        if not len(sub):
            continue
        mark = kind in ("duplicate", "reordered")
        sizes = _sizes(sub["count"].to_numpy(dtype=float), top, many, mark)
        causes = [cause_color(c) for c in sub["cause"]]
        face: Any
        edge: Any
        face, edge, width = {
            "in_order": (_IN_ORDER_COLOR, "white", 0.5),
            "ahead": ("white", _IN_ORDER_COLOR, 1.6),
            "skipped": (opaque(GREY, 0.6), "white", 0.5),
            "duplicate": ("none", causes, 2.0),
            "reordered": (causes, "white", 0.6),
        }[kind]
        coll = k.adopt(f"kind:{kind}", ax.scatter(
            sub["applied"].to_numpy(dtype=float), sub["produced"].to_numpy(dtype=float),
            s=sizes, marker=KIND_STYLES[kind]["marker"], facecolors=face, edgecolors=edge,
            linewidths=width, zorder={"in_order": 2, "ahead": 2.5, "skipped": 3,
                                      "duplicate": 4, "reordered": 5}[kind],
            gid=f"order:{kind}"))
        coll.set_label("_" + kind)
        drawn.append(kind)
    # counts beside the marks (inside the big ones), when few enough to read
    _count_labels(k, ax, pts, top, many)
    if len(raw):
        raw = raw[raw["produced_index"].notna()]
    n_first = int(raw["applied_index"].notna().sum()) if len(raw) else 0
    kinds = raw["kind"].astype(str) if len(raw) else pd.Series([], dtype=str)
    reordered = int((kinds == "reordered").sum())
    dups = int((kinds == "duplicate").sum())
    skipped = int((kinds == "skipped").sum())
    n_keys = int(raw["key"].nunique()) if len(raw) else 0
    ax.set_xlabel("applied as the n-th record of its key")
    ax.set_ylabel("produced as the n-th")
    if hi - lo < 12:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(6, integer=True))
    if not len(raw):
        _no_data(k, ax, ("no keyed record was applied in this run" if _traced(res)
                         else "per-key order") + _why_empty(res))
        title = "Per-key order"
    elif reordered:
        main = raw[kinds == "reordered"]["cause"].map(_cause_text).value_counts()
        title = (f"Per-key order broken: {reordered:,} of {n_first:,} records out of order "
                 f"({'mostly ' * (len(main) > 1)}{main.index[0]})")
    else:
        title = f"Per-key order kept: all {n_first:,} records applied in produced order"
        if dups:
            title = _fits(ax, f"Per-key order kept: all {n_first:,} records in produced "
                              f"order, {dups:,} applied twice",
                          f"Per-key order kept, but {dups:,} records applied twice")
    _titles(k, ax, title, (f"{_plural(n_keys, 'key')} · {_plural(dups, 'duplicate')} · "
                           f"{skipped:,} skipped" if len(raw) else ""))
    pin_axis_labels(ax)
    k.finish()
    _key_order_legend(ax, pts, drawn, many, top)
    return fig


def _count_labels(k: reuse.Keeper, ax: Axes, pts: pd.DataFrame, top: float,
                  many: bool) -> None:
    """The records on each mark of :func:`key_order`: inside a large mark alone on
    its spot (white, bold), else beside the spot's largest mark in the colour
    of the mark it counts, stacked (an ✕ of competing consumers over a dot of
    208: a green "208" over a vermillion "13")."""
    from matplotlib.transforms import ScaledTranslation

    if not len(pts) or many:
        return
    spots: dict[tuple[float, float], dict[str, list[Any]]] = {}
    for x, y, kind, cause, n in zip(pts["applied"].tolist(), pts["produced"].tolist(),
                                    pts["kind"].tolist(), pts["cause"].tolist(),
                                    pts["count"].tolist(), strict=True):
        got = spots.setdefault((float(x), float(y)), {})
        entry = got.setdefault(kind, [0, cause])
        entry[0] += int(n)
    if len(spots) > 30:
        return
    fig = root_figure(ax)
    colours = {"in_order": _IN_ORDER_COLOR, "ahead": _IN_ORDER_COLOR,
               "skipped": opaque(GREY, 0.8)}
    order = ("in_order", "ahead", "reordered", "duplicate", "skipped")
    i = 0
    for (x, y), kinds in sorted(spots.items()):
        areas = {kd: float(_sizes(np.array([n], dtype=float), top, False,
                                  kd in ("duplicate", "reordered"))[0])
                 for kd, (n, _c) in kinds.items()}
        # inside only a mark alone on its spot: an ✕ over a dot must stay visible
        # (never in an ✕: its thin arms do not hold a number)
        big = [kd for kd in ("in_order", "skipped")
               if kd in kinds and areas[kd] >= 150 and len(kinds) == 1]
        inside: str | None = max(big, key=areas.__getitem__) if big else None
        beside = [kd for kd in order if kd in kinds and kd != inside]
        radius = math.sqrt(max(areas.values())) / 2.0
        if inside is not None:
            k.text(f"count:{i}", x, y, f"{kinds[inside][0]:,}", transform=ax.transData,
                   ha="center", va="center", fontsize=7.5, color="white", zorder=6,
                   fontweight="bold", bbox=None)
            i += 1
        for j, kd in enumerate(beside):
            n, cause = kinds[kd]
            dy = ((len(beside) - 1) / 2.0 - j) * 9.0  # the first on top
            shift = ScaledTranslation((radius + 2.0) / 72.0, dy / 72.0, fig.dpi_scale_trans)
            k.text(f"count:{i}", x, y, f"{n:,}", transform=ax.transData + shift,
                   ha="left", va="center", fontsize=7.5, zorder=6, fontweight="normal",
                   color=colours.get(kd) or (cause_color(cause) if len(beside) > 1
                                             or inside else INK),
                   bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7,
                         "pad": 0.5})
            i += 1


def _key_order_legend(ax: Axes, pts: pd.DataFrame, drawn: Sequence[str], many: bool,
                      top: float) -> None:
    """What the marks are (in a neutral colour), then the causes present."""
    leg_h: list[Any] = [Line2D([], [], color=GREY, linestyle="--", linewidth=1.0)]
    leg_l: list[str] = ["in order: applied as produced"]
    looks: dict[str, dict[str, Any]] = {
        "in_order": {"marker": "o", "markersize": 6, "color": _IN_ORDER_COLOR,
                     "markeredgecolor": "white"},
        "ahead": {"marker": "D", "markersize": 5, "markerfacecolor": "white",
                  "markeredgecolor": _IN_ORDER_COLOR, "markeredgewidth": 1.4},
        "reordered": {"marker": "X", "markersize": 8, "color": INK,
                      "markeredgecolor": "white"},
        "duplicate": {"marker": "o", "markersize": 7, "markerfacecolor": "none",
                      "markeredgecolor": INK, "markeredgewidth": 1.6},
        "skipped": {"marker": "s", "markersize": 5, "color": opaque(GREY, 0.6),
                    "markeredgecolor": "white"},
    }
    for kind in ("in_order", "ahead", "reordered", "duplicate", "skipped"):
        if kind in drawn:
            leg_h.append(Line2D([], [], linestyle="none", **looks[kind]))
            leg_l.append(KIND_STYLES[kind]["label"])
    causes = list(dict.fromkeys(pts.loc[pts["kind"].isin(["reordered", "duplicate"]),
                                        "cause"].tolist()))
    rank = list(CAUSE_COLORS)
    for c in sorted(causes, key=lambda c: rank.index(c) if c in rank else len(rank)):
        leg_h.append(Patch(facecolor=cause_color(c), edgecolor="none"))
        leg_l.append(f"cause: {_cause_text(c)}")
    if len(pts) and not many and top > 1:
        leg_h.append(Line2D([], [], linestyle="none"))
        leg_l.append(f"area ∝ records (largest: {int(top):,})")
    reuse.legend(ax, leg_h, [wrap_label(s, 30) for s in leg_l], loc="upper left",
                 bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)


# =====================================================================================
# anomalies by cause
# =====================================================================================
def _anomaly_label(anomaly: str, count: int) -> str:
    """``gap`` → ``gaps``, ``phantom`` → ``phantoms`` unless there is one."""
    if anomaly in ("gap", "phantom") and count != 1:
        return anomaly + "s"
    return anomaly


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'s' * (count != 1)}"


def delivery_causes(res: Result, ax: Axes | None = None) -> Figure:
    """What went wrong with the records, and why.

    What the learner sees: a bar per anomaly -- **lost** (produced, never
    applied), **duplicated** (applied again), **reordered** (applied after a
    record of its key produced later), **gaps** (applied while the one
    before it was not yet), **phantoms** (applied, never produced: a dual
    write that published and then failed to commit) -- split by **cause**,
    each in its fixed colour (:data:`CAUSE_COLORS`), the count at the end
    and, beside it, per 10 000 records produced (the delivery matrix's
    unit).  Every anomaly keeps its row, so a zero reads as zero: the
    settings that give exactly-once effects leave every bar empty.
    ``Result.delivery_causes()``; needs the trace.
    """
    fig, ax, _ = figure_for(ax, 9.0, 3.3, margins=(1.05, 2.35, 0.45, 0.55))
    k = reuse.keeper(ax, "delivery_causes")
    if k.fresh:
        style_axes(ax)
        ax.grid(False, axis="y")
        ax.tick_params(axis="y", length=0)
    df = _table(res, "delivery_causes")
    counts: dict[str, dict[str, int]] = {a: {} for a in ANOMALIES}
    for a, c, n in zip(df["anomaly"].tolist(), df["cause"].tolist(), df["count"].tolist(),
                       strict=True):
        cause = "" if c is None or (isinstance(c, float) and math.isnan(c)) else str(c)
        counts.setdefault(str(a), {})
        counts[str(a)][cause] = counts[str(a)].get(cause, 0) + int(n)
    rows = [a for a in ANOMALIES] + [a for a in counts if a not in ANOMALIES]
    present = [c for c in CAUSE_COLORS if any(c in counts[a] for a in rows)]
    present += sorted({c for a in rows for c in counts[a]} - set(present))
    totals = np.array([sum(counts[a].values()) for a in rows], dtype=float)
    top = float(totals.max(initial=0.0))
    produced = _produced(res)
    handles: list[Any] = []
    left = np.zeros(len(rows))
    y = np.arange(len(rows), dtype=float)
    for c in present:
        w = np.array([counts[a].get(c, 0) for a in rows], dtype=float)
        if not w.any():
            continue
        on = w > 0
        handles.append(k.polys(f"cause:{c}", _span_verts(left[on], (left + w)[on],
                                                         y[on] - 0.34, y[on] + 0.34),
                               facecolor=cause_color(c), edgecolor="white", linewidth=0.6,
                               zorder=2, gid=f"cause:{c}", label=_cause_text(c)))
        left = left + w
    span = data.nice_top(max(top, 1.0) * 1.3)
    for i, tot in enumerate(totals):
        rate = 1e4 * tot / produced if produced else 0.0
        per = (f" · {rate:,.0f} per 10 000" if rate >= 100 else
               f" · {rate:.3g} per 10 000" if produced else "")
        k.text(f"total:{i}", float(tot) + span * 0.01, float(y[i]),
               f"{int(tot):,}{per}" if tot else "0", ha="left", va="center", fontsize=8,
               color=INK if tot else GREY, zorder=3)
    ax.set_xlim(0, span)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(list(y), [_anomaly_label(a, 2) for a in rows], fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.set_xlabel("records")
    traced = _traced(res)
    if not traced:
        _no_data(k, ax, "anomalies by cause" + _why_empty(res))
        title = "Lost, duplicated and reordered records, by cause"
    elif not produced and top == 0:
        _no_data(k, ax, "no keyed record was produced in this run: nothing to lose, "
                        "duplicate or reorder")
        title = "Lost, duplicated and reordered records, by cause"
    elif top == 0:
        made, reached = _record_ids(res)
        pending = len(made - reached)  # none lost (no anomaly): still on their way
        title = ("Every record applied exactly once, in order: no anomaly" if not pending
                 else f"No anomaly; {_plural(int(pending), 'record')} still in flight at the end")
    else:
        parts = [f"{int(t):,} {_anomaly_label(a, int(t))}" for a, t in zip(rows, totals,
                                                                          strict=True) if t]
        by_cause: dict[str, int] = {}
        for a in rows:
            for c, n in counts[a].items():
                by_cause[c] = by_cause.get(c, 0) + n
        cause, n = max(by_cause.items(), key=lambda kv: (kv[1], kv[0]))
        title = ", ".join(parts) + (f": mostly {cause}" if cause and len(by_cause) > 1
                                    else f": all {cause}" if cause else "")
    _titles(k, ax, title, f"of {produced:,} records produced" if produced else "")
    pin_axis_labels(ax)
    k.finish()
    reuse.legend(ax, handles, [wrap_label(str(h.get_label()), 30) for h in handles],
                 loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                 fontsize=8, frameon=False, title="cause" if handles else None,
                 title_fontsize=8, alignment="left")
    return fig


def _record_ids(res: Result) -> tuple[set[Any], set[Any]]:
    """The ids of the records produced (``produce`` rows) and of those applied
    or skipped (``apply`` / ``skip`` rows) in the run."""
    def make() -> tuple[set[Any], set[Any]]:
        produced: set[Any] = set()
        reached: set[Any] = set()
        for row in res.world.trace.records:
            if row[1] == "produce":
                produced.add(row[2])
            elif row[1] in ("apply", "skip"):
                reached.add(row[2])
        return produced, reached
    return data.cached(res, "ordering_record_ids", make)  # type: ignore[no-any-return]


def _produced(res: Result) -> int:
    """Records produced in the run (each ``produce`` row's record once: the
    summary's ``records_produced`` for a run with one reader)."""
    return len(_record_ids(res)[0])


# =====================================================================================
# outbox lag
# =====================================================================================
def _relay_sends(res: Result) -> dict[int, int]:
    """How many times the relay sent each outbox record (``send`` rows with
    label ``relay``): more than once is the relay's crash-after-publish
    duplicate."""
    def make() -> dict[int, int]:
        out: dict[int, int] = {}
        for row in res.world.trace.records:
            if row[1] == "send" and row[8] == "relay":
                out[row[2]] = out.get(row[2], 0) + 1
        return out
    return data.cached(res, "ordering_relay_sends", make)  # type: ignore[no-any-return]


def _designs(res: Result) -> set[str]:
    """How the run's services produced their records: ``outbox`` and/or
    ``dual_write`` (the details of the ``produce`` rows)."""
    return data.cached(res, "ordering_designs",  # type: ignore[no-any-return]
                       lambda: {row[8] for row in res.world.trace.records
                                if row[1] == "produce" and row[8] in ("outbox", "dual_write")})


def outbox_lag(res: Result, axes: Sequence[Axes] | None = None, *,
               faults: bool = True) -> Figure:
    """How long each record of a service's transaction took to take effect
    downstream, through a transactional outbox (or a dual write).

    What the learner sees, left: each record a **green dot** at its
    transaction's commit time, up the y axis its lag from the commit to its
    first application by a consumer (``Result.outbox_lag()``), the **black
    line** their rolling median; beneath, **grey dots** the relay's share of
    it, commit → the relay's first send (Debezium's
    ``MilliSecondsBehindSource``).  A polling publisher makes a saw-tooth as
    tall as its ``poll_interval`` (a record committed just after a poll waits
    for the next); log tailing a band at its tailing lag; a relay down
    while the service commits a ramp.  A **sky blue ring** marks a record
    the relay sent more than once: it published, then crashed before
    marking the row published (or before flushing its position), and sent
    it again -- the relay's duplicate, which only the consumer's dedup
    removes.  Along the top, **vermillion ✕** mark records committed and
    not applied by the end of the run (a dual write's loss: the service
    crashed between its commit and its publish), **orange ✕** records
    applied that were never committed (the publish-first dual write's
    phantom).  Grey bands are crashes.  Right: the lags as a histogram.
    ``axes`` (two: the time panel, the histogram) draws into given axes.
    Needs the trace.
    """
    if not isinstance(faults, (bool, np.bool_)):
        raise ParamError("faults", faults, "True or False")
    axs = _rows_of(axes, 2, "the lag over time and its histogram")
    if axs is None:
        fig = new_figure(9.0, 3.8, margins=(0.8, 2.35, 0.45, 0.6))
        grid = fig.add_gridspec(1, 2, width_ratios=(4.6, 1.0), wspace=0.06)
        main = fig.add_subplot(grid[0, 0])
        hist = fig.add_subplot(grid[0, 1], sharey=main)
        axs = [main, hist]
    else:
        fig = root_figure(axs[0])
    main, hist = axs
    k = reuse.keeper(main, "outbox_lag")
    kh = reuse.keeper(hist, "outbox_lag_hist")
    if k.fresh:
        style_axes(main)
    if kh.fresh:
        style_axes(hist)
        hist.tick_params(axis="y", labelleft=False)
    until = float(res.until)
    df = _table(res, "outbox_lag")
    committed = df["committed"].to_numpy(dtype=float)
    sent = df["sent"].to_numpy(dtype=float)
    applied = df["applied"].to_numpy(dtype=float)
    lag = applied - committed  # what the business waits for, whatever the table's lag
    relay = sent - committed
    ids = df["record_id"].tolist()
    ok = np.isfinite(lag)
    unapplied = np.isfinite(committed) & ~np.isfinite(applied)
    never_sent = unapplied & ~np.isfinite(sent)
    phantom = ~np.isfinite(committed) & (np.isfinite(sent) | np.isfinite(applied))
    sends = _relay_sends(res)
    again = np.array([sends.get(i, 0) > 1 for i in ids], dtype=bool) & ok
    # applied at or before its commit: published first, the consumer was faster
    early = ok & (lag <= 0)
    pos = ok & (lag > 0)
    order = np.argsort(committed[pos], kind="stable")
    t_ok, l_ok = committed[pos][order], lag[pos][order]
    r_ok = np.isfinite(relay) & (relay > 0)
    # a log scale: a dual write's milliseconds, a poll's tenths and a group's
    # first join's seconds all read on one axis
    lows = [float(np.min(l_ok, initial=np.inf)), float(np.min(relay[r_ok], initial=np.inf))]
    low = max(min(lows), 1e-4) if np.isfinite(min(lows)) else 1e-3
    bottom = 10.0 ** math.floor(math.log10(low))
    top = data.nice_top(max(float(np.max(l_ok, initial=0.0)),
                            float(np.max(relay[r_ok], initial=0.0)), bottom * 10) * 1.5)
    main.set_xlim(0, until)
    main.set_yscale("log")
    main.set_ylim(bottom, top)
    small = len(t_ok) <= 600
    designs = _designs(res)
    outbox = "outbox" in designs or not designs
    k.line("relay", committed[r_ok], relay[r_ok], linestyle="none", marker="o",
           markersize=2.2 if small else 1.2, markeredgewidth=0, color=opaque(GREY, 0.7),
           zorder=2.5, label="its relay's share: commit → first sent" if outbox else
           "the service's own publish: commit → sent")
    k.line("points", t_ok, l_ok, linestyle="none", marker="o",
           markersize=3.2 if small else 1.8, markeredgewidth=0,
           color=opaque(OKABE_ITO["bluish_green"], 0.75), zorder=3,
           label="a record: its commit → first applied")
    if early.any():
        k.line("early", committed[early], np.full(int(early.sum()), 0.03),
               transform=blended_transform_factory(main.transData, main.transAxes),
               linestyle="none", marker="v", markersize=5, color=INK, zorder=5,
               clip_on=False,
               label=f"applied before its commit: published first ({int(early.sum())})")
    if len(t_ok) >= 5:
        win = max(5, len(t_ok) // 25)
        med = pd.Series(l_ok).rolling(win, center=True, min_periods=max(2, win // 2)).median()
        k.line("median", t_ok, med.to_numpy(dtype=float), color=INK, linewidth=1.5,
               zorder=4, label=f"rolling median ({win} records)")
    if again.any():
        k.line("again", committed[again], lag[again], linestyle="none", marker="o",
               markersize=8, markerfacecolor="none",
               markeredgecolor=CAUSE_COLORS["relay crash"], markeredgewidth=1.8, zorder=5,
               label=f"sent again by the relay after a crash ({int(again.sum())})")
    trans = blended_transform_factory(main.transData, main.transAxes)
    if unapplied.any():
        n_un, n_never = int(unapplied.sum()), int(never_sent.sum())
        k.line("unapplied", committed[unapplied], np.full(n_un, 0.96), transform=trans,
               linestyle="none", marker="X", markersize=7, color=OKABE_ITO["vermillion"],
               markeredgecolor="white", markeredgewidth=0.5, zorder=5, clip_on=False,
               label=f"committed, not applied by the end ({n_un}"
                     + (f", {n_never} never sent)" if n_never else ")"))
    if phantom.any():
        when = np.where(np.isfinite(sent), sent, applied)[phantom]
        k.line("phantom", when, np.full(int(phantom.sum()), 0.96), transform=trans,
               linestyle="none", marker="X", markersize=7, color=OKABE_ITO["orange"],
               markeredgecolor="white", markeredgewidth=0.5, zorder=5, clip_on=False,
               label=f"published, never committed: a phantom ({int(phantom.sum())})")
    if faults:
        fault_bands(main, res, kinds=("down", "hung"), annotate=True, zorder=0.5)
    main.set_xlabel("commit time (s)")
    main.set_ylabel("lag after the commit (s)")
    _plain_log_ticks(main.yaxis)
    # the histogram, sideways, on the same lag axis
    bins = np.geomspace(bottom, top, 31)
    h, _ = np.histogram(l_ok, bins=bins)
    kh.polys("hist", _span_verts(np.zeros(len(h)), h.astype(float), bins[:-1], bins[1:]),
             facecolor=opaque(OKABE_ITO["bluish_green"], 0.5),
             edgecolor=OKABE_ITO["bluish_green"], linewidth=0.6, gid="hist")
    hist.set_xlim(0, data.nice_top(max(float(h.max(initial=0)), 1.0) * 1.1))
    hist.xaxis.set_major_locator(MaxNLocator(2, integer=True))
    hist.set_xlabel("records")
    hist.set_ylim(bottom, top)
    right = ""
    if not len(df):
        _no_data(k, main, ("no record went through a transactional outbox (or a dual "
                           "write) in this run" if _traced(res) else "outbox lag")
                 + _why_empty(res))
        title = "Outbox lag: commit → applied"
    else:
        p50 = float(np.median(lag[ok])) if ok.any() else math.nan
        p99 = float(np.percentile(lag[ok], 99)) if ok.any() else math.nan
        head = "Outbox lag" if outbox else "No outbox (dual write)"
        # an outbox record not sent by the end waits in the outbox; a dual write's
        # was lost with the service that crashed between its commit and its publish
        extra = [f"{int(early.sum())} applied before their commit" if early.any() else "",
                 f"{int(again.sum())} sent twice" if again.any() else "",
                 f"{int(never_sent.sum())} lost, never sent" if never_sent.any()
                 and not outbox else "",
                 _plural(int(phantom.sum()), "phantom") if phantom.any() else ""]
        extra = [e for e in extra if e]
        more = "".join(f"; {e}" for e in extra)
        title = _fits(main, f"{head}, commit → applied: median {_secs(p50)}, p99 "
                            f"{_secs(p99)}{more}",
                      f"{head}: median {_secs(p50)}, p99 {_secs(p99)}{more}",
                      f"{head}: median {_secs(p50)}{more}",
                      f"{head}{more}",
                      f"{head}: " + "; ".join(extra[:1]) if extra else head, until=hist)
        right = f"{int(ok.sum()):,} records applied"
    set_titles(main, title, None, size=10)
    _titles(kh, hist, "", right)
    pin_axis_labels(main)
    pin_axis_labels(hist)
    k.finish()
    kh.finish()
    handles, labels = main.get_legend_handles_labels()
    # the dots are small to show thousands of records: legible ones in the legend
    handles = [Line2D([], [], linestyle="none", marker="o", markersize=5,
                      markeredgewidth=0, color=h.get_color())  # type: ignore[attr-defined]
               if h.get_gid() in ("relay", "points") else h for h in handles]
    reuse.legend(hist, handles, [wrap_label(s, 30) for s in labels], loc="upper left",
                 bbox_to_anchor=(1.06, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)
    return fig


def _secs(x: float) -> str:
    if not np.isfinite(x):
        return "–"
    if x < 0.1:
        return f"{1000 * x:.3g} ms"
    return f"{x:.3g} s"


# =====================================================================================
# the delivery matrix
# =====================================================================================
_ROW_DIMS = ("acks", "idempotence")
_COL_DIMS = ("commit", "dedup")
_METRICS = ("lost", "duplicated", "reordered")
_DIM_ALIASES = {"idempotence": ("idempotence", "enable_idempotence", "idempotent"),
                "acks": ("acks",), "commit": ("commit", "commit_point"),
                "dedup": ("dedup",)}
_ORDER = {"acks": ("0", "1", "all", "-1"), "commit": ("auto", "before", "after"),
          "dedup": ("none", "processed_ids", "idempotent"),
          "idempotence": ("False", "True")}


def _matrix_columns(table: pd.DataFrame) -> tuple[dict[str, str], dict[str, str],
                                                  dict[str, str | None]]:
    cols = list(table.columns)
    dims: dict[str, str] = {}
    for d, names in _DIM_ALIASES.items():
        for n in names:
            if n in cols:
                dims[d] = n
                break
    metrics: dict[str, str] = {}
    errors: dict[str, str | None] = {}
    for m in _METRICS:
        for n in (f"{m}_per_10k", m):
            if n in cols:
                metrics[m] = n
                break
        errors[m] = next((n for n in (f"{m}_per_10k_se", f"{m}_se", f"{m}_per_10k_sem",
                                      f"{m}_sem", f"{m}_per_10k_stderr") if n in cols), None)
    return dims, metrics, errors


def _sort_values(dim: str, values: Iterable[Any]) -> list[Any]:
    rank = _ORDER.get(dim, ())

    def key(v: Any) -> tuple[int, str]:
        s = str(v)
        return (rank.index(s) if s in rank else len(rank), s)
    return sorted(dict.fromkeys(values), key=key)


def _row_text(values: Mapping[str, Any]) -> str:
    parts = []
    if "acks" in values:
        parts.append(f"acks={values['acks']}")
    if "idempotence" in values:
        v = values["idempotence"]
        on = v if isinstance(v, (bool, np.bool_)) else str(v).lower() in ("true", "1", "yes")
        parts.append("idempotent" if on else "not idempotent")
    return ", ".join(parts) or "all runs"


def delivery_matrix_figure(table: Any, *, metrics: Sequence[str] = _METRICS) -> Figure:
    """The delivery matrix as heat maps: lost, duplicated and reordered records
    per 10 000, for each producer and consumer setting.

    ``table`` is a delivery-matrix table (``simcomm.delivery_matrix()``):
    one row per setting with columns ``acks``, ``idempotence`` (Kafka's
    ``enable.idempotence``), ``commit`` (the consumer's commit point:
    ``auto``, ``before``, ``after``) and ``dedup`` (``none``,
    ``processed_ids``, ``idempotent``), and ``lost_per_10k``,
    ``duplicated_per_10k``, ``reordered_per_10k`` (with ``*_se``, their
    standard errors over seeds, if present).  This draws it; it runs
    nothing (viz only draws).

    What the learner sees: three panels, one per anomaly, each a grid with
    the producer settings as rows (``acks`` × idempotence) and the consumer
    settings as columns (commit point, and under it the dedup); each cell
    holds its number per 10 000 (± its standard error), white for zero,
    darker orange to brown for more, on one log scale for all three panels
    (5 and 5 000 per 10 000 both read).  A
    **bluish green frame** marks the cells with neither loss nor duplicate:
    exactly-once effects (an idempotent producer with acks=all, a commit
    after processing, and a dedup on the consumer).
    """
    from matplotlib.colors import FuncNorm

    if isinstance(table, pd.DataFrame):
        df = table
    else:
        try:
            df = pd.DataFrame(table)
        except (TypeError, ValueError):
            raise ParamError("table", type(table).__name__,
                             "a delivery-matrix table: a DataFrame (or records) with "
                             "acks, idempotence, commit, dedup and lost/duplicated/"
                             "reordered per 10k") from None
    chosen = [metrics] if isinstance(metrics, str) else list(metrics)
    if not chosen or any(m not in _METRICS for m in chosen):
        raise ParamError("metrics", metrics, "a non-empty list from " + ", ".join(_METRICS))
    dims, cols, errs = _matrix_columns(df)
    if not set(dims) & set(_ROW_DIMS + _COL_DIMS) and len(df) and df.index.names != [None]:
        df = df.reset_index()  # the settings as the index: as columns
        dims, cols, errs = _matrix_columns(df)
    missing = [m for m in chosen if m not in cols]
    if missing or not len(df) or not dims:
        raise ParamError("table", f"columns {list(df.columns)}" if len(df) else "empty",
                         "a delivery-matrix table with the setting columns (acks, "
                         "idempotence, commit, dedup) and "
                         + ", ".join(f"{m}_per_10k" for m in (missing or chosen)))
    row_dims = [d for d in _ROW_DIMS if d in dims]
    col_dims = [d for d in _COL_DIMS if d in dims]
    keys_r: list[tuple[str, ...]] = [
        tuple(map(str, r)) for r in df[[dims[d] for d in row_dims]].astype(str).to_numpy()
    ] if row_dims else [()] * len(df)
    keys_c: list[tuple[str, ...]] = [
        tuple(map(str, r)) for r in df[[dims[d] for d in col_dims]].astype(str).to_numpy()
    ] if col_dims else [()] * len(df)

    def ordered(keys: list[tuple[str, ...]], ds: list[str]) -> list[tuple[str, ...]]:
        return sorted(dict.fromkeys(keys), key=lambda t: tuple(
            (_ORDER.get(d, ()).index(v) if v in _ORDER.get(d, ()) else 99, v)
            for d, v in zip(ds, t, strict=True)))
    rows = ordered(keys_r, row_dims)
    columns = ordered(keys_c, col_dims)
    ri = {r: i for i, r in enumerate(rows)}
    ci = {c: j for j, c in enumerate(columns)}
    grids: dict[str, np.ndarray] = {}
    errors: dict[str, np.ndarray] = {}
    for m in _METRICS:
        grids[m] = np.full((len(rows), len(columns)), np.nan)
        errors[m] = np.full((len(rows), len(columns)), np.nan)
        if m not in cols:
            continue
        vals = df[cols[m]].to_numpy(dtype=float)
        ses = df[errs[m]].to_numpy(dtype=float) if errs[m] else np.full(len(df), np.nan)
        for r, c, v, se in zip(keys_r, keys_c, vals, ses, strict=True):
            grids[m][ri[r], ci[c]] = v
            errors[m][ri[r], ci[c]] = se
    vmax = max(float(np.nanmax(grids[m])) if np.isfinite(grids[m]).any() else 0.0
               for m in chosen)
    exact = np.ones((len(rows), len(columns)), dtype=bool)
    for m in ("lost", "duplicated"):
        if m in cols:
            exact &= np.nan_to_num(grids[m], nan=1.0) == 0
        else:
            exact &= False
    n_r, n_c = len(rows), len(columns)
    two = len(col_dims) > 1
    # the layout in inches: per panel its title, the outer column setting (commit),
    # the inner one (dedup), then a row per producer setting
    cell_h, head_h, gap_h, top_h, label_w = 0.36, (0.72 if two else 0.5), 0.22, 0.42, 1.75
    panel_h = head_h + cell_h * n_r
    height = top_h + len(chosen) * panel_h + (len(chosen) - 1) * gap_h + 0.12
    width = 9.0
    fig = new_figure(width, height, margins=(label_w, 0.25, top_h, 0.12))
    # a log scale shared by the panels: 5 and 5 000 per 10 000 both read, zero stays white
    norm = FuncNorm((lambda v: np.log10(1.0 + np.maximum(v, 0.0)),
                     lambda u: 10.0 ** np.asarray(u) - 1.0), vmin=0.0, vmax=max(vmax, 1.0))

    def fmt(v: float) -> str:
        return ("–" if not np.isfinite(v) else "0" if v == 0 else
                f"{v:.2g}" if v < 10 else f"{v:,.0f}")
    font = 8.0 if n_c <= 9 else 7.0
    for p, m in enumerate(chosen):
        top_in = top_h + p * (panel_h + gap_h) + head_h  # from the figure's top
        ax = fig.add_axes((label_w / width, 1 - (top_in + cell_h * n_r) / height,
                           (width - label_w - 0.25) / width, cell_h * n_r / height))
        up = blended_transform_factory(ax.transData, ax.transAxes)

        def above(inches: float, ax: Axes = ax) -> float:
            return 1.0 + inches / (cell_h * n_r)
        g = grids[m]
        ax.imshow(np.nan_to_num(g, nan=0.0), cmap=LOAD_CMAP, norm=norm, aspect="auto",
                  interpolation="nearest", extent=(-0.5, n_c - 0.5, n_r - 0.5, -0.5))
        for i in range(n_r):
            for j in range(n_c):
                v = g[i, j]
                dark = bool(np.isfinite(v) and norm(v) > 0.6)
                se = errors[m][i, j]
                text = fmt(v) + (f" ±{fmt(se)}" if np.isfinite(se) and se > 0 else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=font,
                        color="white" if dark else (INK if v else GREY),
                        gid=f"cell:{m}:{i}:{j}")
                if exact[i, j]:
                    ax.add_patch(_frame(j, i))
        for j in range(1, n_c):  # white gaps between the outer column groups
            if two and columns[j][0] != columns[j - 1][0]:
                ax.axvline(j - 0.5, color="white", linewidth=4.0)
        ax.set_xlim(-0.5, n_c - 0.5)
        ax.set_ylim(n_r - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks(range(n_r), [_row_text(dict(zip(row_dims, r, strict=True)))
                                   for r in rows], fontsize=8)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        for j, c in enumerate(columns):  # the inner setting over each column
            ax.text(j, above(0.06), str(c[-1]) if c else "", transform=up, ha="center",
                    va="bottom", fontsize=7.5, color=INK)
        if col_dims:
            ax.text(-0.55, above(0.06), f"{col_dims[-1]}:", transform=up, ha="right",
                    va="bottom", fontsize=7.5, color=INK, style="italic")
        if two:  # the outer setting above its group
            for gv in dict.fromkeys(c[0] for c in columns):
                idx = [j for j, c in enumerate(columns) if c[0] == gv]
                ax.text((idx[0] + idx[-1]) / 2, above(0.26), f"{col_dims[0]} {gv}",
                        transform=up, ha="center", va="bottom", fontsize=8.5,
                        fontweight="bold", color=INK)
        worst = float(np.nanmax(g)) if np.isfinite(g).any() else 0.0
        zero = int((np.nan_to_num(g, nan=1.0) == 0).sum())
        name = {"lost": "Lost", "duplicated": "Duplicated", "reordered": "Reordered"}[m]
        ax.text(-0.5, above(head_h - 0.2), f"{name} per 10 000 records", transform=up,
                ha="left", va="bottom", fontsize=10, fontweight="bold", color=INK)
        ax.text(n_c - 0.5, above(head_h - 0.2),
                f"0 in {zero} of {g.size} settings · worst {fmt(worst)}",
                transform=up, ha="right", va="bottom", fontsize=8, color=INK)
    n_exact = int(exact.sum())
    fig.suptitle(("Delivery matrix: neither lost nor duplicated (green frames) in "
                  f"{n_exact} of {exact.size} settings") if n_exact else
                 "Delivery matrix: no setting avoids both loss and duplicates",
                 fontsize=11, x=0.1 / width, y=1 - 0.08 / height, ha="left", va="top")
    fig.text(1 - 0.25 / width, 1 - 0.1 / height, "colour: log scale, shared",
             ha="right", va="top", fontsize=7.5, color=INK)
    setattr(fig, _OWNER, "delivery_matrix")
    return fig


def _frame(x: float, y: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.46, y - 0.42), 0.92, 0.84, fill=False,
                     edgecolor=OKABE_ITO["bluish_green"], linewidth=2.2, zorder=3)
