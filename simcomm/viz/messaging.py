"""Figures of asynchronous messaging: queues, flows, latency, order, availability.

Views for the runs of issue 8's scenarios (``styles``, ``create-order``,
``brokers``, ``competing-consumers``), each drawn from a run's messaging
tables (:attr:`Result.deliveries <simcomm.result.Result.deliveries>`,
``queue_depth``, ``consumer_inflight``, the ``trace.mq`` tuples they come
from) and each working -- and saying what it cannot show -- for any run:

* :func:`queue_depth` -- per broker queue, the messages **ready** (waiting
  for a consumer) stacked on those **unacked** (delivered, not yet
  acknowledged) over time, and beneath, one lane per consumer with what it
  holds against its prefetch; fault bands show the crash that made a queue
  grow;
* :func:`message_flow` -- the topology with channels as nodes: publishers
  → exchanges → queues (or brokerless channels) → consumers, arrow width
  ∝ messages, drops marked where they happened;
* :func:`message_sequence` -- a sequence diagram whose lifelines include
  the channels (exchange, queue, reply channel) between the nodes, for the
  first few messages (or user requests) and everything they caused;
* :func:`message_latency` -- each consumed message's end-to-end latency
  against its publish time, lost ones marked, fault bands;
* :func:`consumer_share` -- messages consumed per consumer, the redelivered
  part, against a fair share;
* :func:`message_order` -- per consumer, the publish order of the messages
  in the order it consumed them: a reordering is a dip, marked;
* :func:`availability_over_time` -- the user operation's availability in
  windows, beside the product formula of the book's §3.4;
* :func:`availability_comparison` -- measured vs. formula availability per
  design (the §3.4 table as bars).

Their data are functions too (:func:`queue_series`, :func:`consumer_series`,
:func:`flow_graph`, :func:`message_latencies`, :func:`consumer_counts`,
:func:`consume_order`, :func:`availability_windows`,
:func:`availability_formula`), so notebooks and tests read the numbers the
figures show.  viz only draws (DESIGN principle 7): nothing here runs a
simulation.  Every figure draws through :class:`~simcomm.viz.reuse.Keeper`,
so given the axes it drew before it updates its artists in place.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    PercentFormatter,
)
from matplotlib.transforms import blended_transform_factory

from simcomm._checks import is_flag, is_real, is_whole
from simcomm.errors import ParamError
from simcomm.viz import data, reuse
from simcomm.viz.style import (
    GREY,
    INK,
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
from simcomm.viz.timeseries import _edges, _legend, _steps, binned_percentiles, fault_bands

if TYPE_CHECKING:
    import networkx as nx
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from simcomm.engine.trace import Table
    from simcomm.result import Result

__all__ = [
    "FATE_COLORS", "MESSAGE_COLORS", "availability_comparison", "availability_formula",
    "availability_over_time", "availability_windows", "consume_order", "consumer_counts",
    "consumer_series", "consumer_share", "flow_graph", "message_flow", "message_latencies",
    "message_latency", "message_order", "message_sequence", "queue_depth", "queue_series",
]

#: Colours of a queue's contents, as the worker pool figure's: what is being
#: worked on (unacked, in a consumer's hands) blue like busy workers, what
#: waits (ready) vermillion like a queue of requests.
MESSAGE_COLORS: dict[str, str] = {
    "unacked": OKABE_ITO["blue"],
    "ready": OKABE_ITO["vermillion"],
    "publisher": "#DDDDDD",         # the grey of a client in the topology
    "exchange": OKABE_ITO["orange"],
    "queue": OKABE_ITO["sky_blue"],
    "channel": "#FFFFFF",           # brokerless: a name, not a process
    "consumer": OKABE_ITO["bluish_green"],
    "dead_letter": OKABE_ITO["reddish_purple"],
    "control": GREY,
}

#: One colour per fate of a copy (``Result.deliveries``): consumed bluish
#: green (the ``ok`` of messages), consumed only after a redelivery orange,
#: lost vermillion (the ``error`` colour), dead-lettered reddish purple,
#: still waiting at the end grey (the ``pending`` colour).
FATE_COLORS: dict[str, str] = {
    "consumed": OKABE_ITO["bluish_green"],
    "redelivered": OKABE_ITO["orange"],
    "dropped": OKABE_ITO["vermillion"],
    "dead_lettered": OKABE_ITO["reddish_purple"],
    "waiting": GREY,
}

#: Most rows a multi-row figure draws unless told which (``queues=`` / ``consumers=``).
MAX_ROWS = 6

#: Marks the figures these functions made themselves (their suptitle is theirs).
_OWNER = "_simcomm_owner"


# =====================================================================================
# the run's messaging, read once per Result
# =====================================================================================
def _mq(res: Result) -> Table:
    return res.world.trace.mq


def _mq_events(res: Result) -> set[str]:
    """The kinds of event the run's ``trace.mq`` holds (a figure skips a pass
    over the table for an event that never happened)."""
    return data.cached(res, "mq_events",  # type: ignore[no-any-return]
                       lambda: set(map(operator.itemgetter(1), _mq(res))))


def _brokers(res: Result) -> dict[str, Any]:
    """The Broker nodes of the run, in the order they were added."""
    def make() -> dict[str, Any]:
        from simcomm.messaging.broker import Broker

        return {n: node for n, node in res.world.nodes.items() if isinstance(node, Broker)}
    return data.cached(res, "mq_brokers", make)  # type: ignore[no-any-return]


def _consumer_nodes(res: Result) -> dict[str, Any]:
    """The Consumer nodes of the run, in the order they were added."""
    def make() -> dict[str, Any]:
        from simcomm.messaging.consumer import Consumer

        return {n: node for n, node in res.world.nodes.items() if isinstance(node, Consumer)}
    return data.cached(res, "mq_consumers", make)  # type: ignore[no-any-return]


def _no_data(k: reuse.Keeper, ax: Axes, text: str) -> None:
    """A note in the middle of an empty axes (what the figure cannot show, and why)."""
    k.text("no_data", 0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
           fontsize=9, color=INK, zorder=5,
           bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 2})


def _why_empty(res: Result) -> str:
    return ("" if res.world.trace.enabled else
            " (the messaging tables need a run with trace=True)")


def _pick(known: Sequence[str], chosen: Any, field_name: str, what: str) -> list[str] | None:
    """``chosen`` as a list of names from ``known`` (None: None), else a ParamError."""
    if chosen is None:
        return None
    names = [chosen] if isinstance(chosen, str) else chosen
    if not isinstance(names, Iterable):
        raise ParamError(field_name, chosen, f"{what}: " + (", ".join(known) or "none"))
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ParamError(field_name, unknown or names,
                         f"{what}: " + (", ".join(known) or "none in this run"))
    return names


def _check_max_points(max_points: object) -> int:
    if not is_whole(max_points) or int(max_points) < 10:  # type: ignore[call-overload]
        raise ParamError("max_points", max_points, "a whole number of bins >= 10")
    return int(max_points)  # type: ignore[call-overload]


def _check_flag(name: str, value: object) -> None:
    if not is_flag(value):
        raise ParamError(name, value, "True or False")


# -- queues and consumers over time ------------------------------------------------------
def _queue_labels(res: Result) -> dict[tuple[str, str], str]:
    """``{(broker, queue): label}`` of every queue declared or traced, in order:
    each broker's queues as it declared them, then those only the trace names
    (exclusive queues deleted before the end).  The label is the queue's name,
    prefixed by its broker's when the run has several brokers."""
    def make() -> dict[tuple[str, str], str]:
        keys: dict[tuple[str, str], None] = {}
        for bname, broker in _brokers(res).items():
            for q in broker.queues:
                keys[(bname, str(q))] = None
        qrows = res.world.trace.queues  # (time, node, queue, ready, unacked)
        for node, queue in dict.fromkeys(zip(map(operator.itemgetter(1), qrows),
                                             map(operator.itemgetter(2), qrows),
                                             strict=True)):
            keys.setdefault((str(node), str(queue)), None)
        multi = len({b for b, _ in keys}) > 1
        return {k: (f"{k[0]}/{k[1]}" if multi else k[1]) for k in keys}
    return data.cached(res, "mq_queue_labels", make)  # type: ignore[no-any-return]


#: The label :func:`queue_series` gives the pipes of a brokerless channel.
PIPES = "{} (pipes)"


def queue_series(res: Result) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per broker queue (by label: its name, ``broker/name`` with several
    brokers): ``(time, ready, unacked)`` arrays of its step functions, from
    ``Result.queue_depth`` (each value holds until the next time; 0 before the
    first).  Every declared queue is there, an idle one with empty arrays.

    A brokerless channel has no queue, but its senders keep a pipe per peer
    (ZeroMQ's, up to the high-water mark): its copies count as ``ready``
    (``unacked`` is 0: nothing is acknowledged) from the ``pipe`` event until
    they reach the consumer or are dropped, under the label
    ``"<channel> (pipes)"`` (:data:`PIPES`)."""
    def make() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        labels = _queue_labels(res)
        out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        qrows = res.world.trace.queues  # (time, node, queue, ready, unacked)
        # column by column: a busy queue changes thousands of times a run
        cols = list(zip(*qrows, strict=True)) if qrows else [()] * 5
        times, ready, unacked = (np.asarray(cols[i], dtype=float) for i in (0, 3, 4))
        keys = list(zip(cols[1], cols[2], strict=True))
        where: dict[tuple[Any, Any], list[int]] = {}
        if keys and len(set(keys)) == 1:
            where[keys[0]] = []  # one queue: all the rows, in order
        else:
            for i, key in enumerate(keys):
                if key in where:
                    where[key].append(i)
                else:
                    where[key] = [i]
        found = {labels[(str(node), str(queue))]: idx for (node, queue), idx in where.items()}
        for lab in labels.values():
            idx = found.get(lab)
            if idx is None:
                out[lab] = (np.zeros(0), np.zeros(0), np.zeros(0))
            elif len(where) == 1:
                out[lab] = (times, ready, unacked)
            else:
                out[lab] = (times[idx], ready[idx], unacked[idx])
        if "pipe" not in _mq_events(res):
            return out
        rows: dict[str, list[tuple[float, int, int]]] = {}
        in_pipe: set[tuple[int, str]] = set()
        count: dict[str, int] = {}
        for t, ev, mid, ch, _node, _detail in _mq(res):
            if ev == "pipe":
                key = (mid, str(ch))
                if key not in in_pipe:
                    in_pipe.add(key)
                    lab = PIPES.format(ch)
                    count[lab] = count.get(lab, 0) + 1
                    rows.setdefault(lab, []).append((t, count[lab], 0))
            elif (ev == "deliver" or ev == "drop") and (mid, str(ch)) in in_pipe:
                in_pipe.discard((mid, str(ch)))
                lab = PIPES.format(ch)
                count[lab] -= 1
                rows[lab].append((t, count[lab], 0))
        for lab, r in rows.items():
            if lab in out and out[lab][0].size:  # a queue of that name too: after its rows
                r = [*zip(*(a.tolist() for a in out[lab]), strict=True), *r]
            arr = np.asarray(r, dtype=float)
            out[lab] = (arr[:, 0], arr[:, 1], arr[:, 2])
        return out
    return data.cached(res, "mq_queue_series", make)  # type: ignore[no-any-return]


def consumer_series(res: Result) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per consumer: ``(time, held)`` arrays of a step function -- the
    deliveries it held unsettled, over all the queues it reads (the sum of
    ``Result.consumer_inflight``'s counts): with manual acks RabbitMQ's
    unacknowledged count, the number its prefetch caps; with auto-ack or
    brokerless, messages received and not yet handled.  Every Consumer node
    is there (one that never received anything with empty arrays), in the
    order the run added them."""
    def make() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from simcomm.analysis.messaging import _inflight_rows

        # the rows of Result.consumer_inflight and each one's change (+1 / -1),
        # summed per consumer: no table, no group-by
        rows, signs = _inflight_rows(_mq(res))
        out = {c: (np.zeros(0), np.zeros(0)) for c in _consumer_nodes(res)}
        if not rows:
            return out
        t = np.fromiter(map(operator.itemgetter(0), rows), dtype=float, count=len(rows))
        codes, names = pd.factorize(np.fromiter(map(str, map(operator.itemgetter(1), rows)),
                                                dtype=object, count=len(rows)))
        order = np.argsort(codes, kind="stable")  # each consumer's rows, in time order
        change = np.asarray(signs, dtype=float)[order]
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        for i, c in enumerate(names):
            lo, hi = bounds[i], bounds[i + 1]
            out[str(c)] = (t[order[lo:hi]], np.cumsum(change[lo:hi]))
        return out
    return data.cached(res, "mq_consumer_series", make)  # type: ignore[no-any-return]


def _prefetch(res: Result, consumers: Sequence[str]) -> dict[str, int]:
    """The prefetch window of each manually acking consumer on a broker that
    has one (0 = unlimited is left out: there is no line to draw)."""
    nodes = _consumer_nodes(res)
    out = {}
    for c in consumers:
        node = nodes.get(c)
        if node is None or getattr(node, "auto_ack", True):
            continue
        p = int(getattr(node, "prefetch", 0) or 0)
        if p > 0 and getattr(node, "transport", None) in _brokers(res).values():
            out[c] = p
    return out


def _rows_of(axes: Axes | Sequence[Axes] | None, n: int, what: str) -> list[Axes] | None:
    if axes is None:
        return None
    axs = [axes] if not isinstance(axes, Sequence) else list(axes)
    if len(axs) != n:
        raise ParamError("axes", f"{len(axs)} axes", f"{n}: {what}")
    return axs


def _queue_rows(res: Result, queues: Any) -> tuple[list[str], list[str], int]:
    """(queue labels to draw, consumers to draw, queues in the run)."""
    series = queue_series(res)
    known = list(series)
    picked = _pick(known, queues, "queues", "queue names of this run")
    names = picked if picked is not None else known[:MAX_ROWS]
    return names, list(consumer_series(res)), len(known)


def queue_depth(res: Result, queues: str | Sequence[str] | None = None,
                axes: Axes | Sequence[Axes] | None = None, *, ax: Axes | None = None,
                max_points: int = 600, faults: bool = True) -> Figure:
    """What each broker queue holds over time, and what each consumer holds.

    What the learner sees: one row per queue (as the broker declared them;
    the first :data:`MAX_ROWS` unless ``queues`` picks), sharing the time
    axis.  The **blue area** is the messages delivered and not yet
    acknowledged (*unacked*: in a consumer's hands), the **vermillion
    area** stacked on it the messages **ready** (waiting for a consumer) --
    RabbitMQ's two counts.  While a consumer is down the vermillion grows:
    the broker buffers what it cannot deliver, and drains it when the
    consumer is back.  The last row has one **lane per consumer** with the
    deliveries it holds unsettled (its unacked count; with auto-ack or
    brokerless, received and not yet handled), each lane on the same scale,
    and a **dashed line** at its prefetch limit, which the count never
    passes.  Grey bands mark a crash, yellow a hang (a strip along the top
    of each queue row, and across the lane of the consumer concerned).
    Changes more often than ``max_points`` are drawn as time-weighted means
    over that many bins (the title says so).  Needs the trace.  ``axes``
    (one per row) draws into given axes, updated in place.
    """
    max_points = _check_max_points(max_points)
    _check_flag("faults", faults)
    names, cons, n_queues = _queue_rows(res, queues)
    n_rows = max(1, len(names) + (1 if cons else 0))
    if axes is None:
        axes = ax
    axs = _rows_of(axes, n_rows, "one per queue, and one for the consumers")
    lane_h = 0.6 + 0.32 * len(cons)
    if axs is None:
        heights = [1.35] * len(names) + ([lane_h] if cons else [])
        heights = heights or [2.0]
        total = 1.15 + sum(heights) + 0.45 * (len(heights) - 1)
        fig = new_figure(9.0, total, margins=(1.1, 2.3, 0.7, 0.55), hspace=0.55)
        grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
        axs = []
        for i in range(len(heights)):
            axs.append(fig.add_subplot(grid[i, 0], sharex=axs[0] if axs else None))
        setattr(fig, _OWNER, "queue_depth")
    else:
        fig = root_figure(axs[0])
    owned = getattr(fig, _OWNER, None) == "queue_depth"
    series = queue_series(res)
    auto = _auto_ack_queues(res)
    averaged = False
    unacked_face = opaque(MESSAGE_COLORS["unacked"], 0.75)
    ready_face = opaque(MESSAGE_COLORS["ready"], 0.85)
    for i, name in enumerate(names):
        a = axs[i]
        k = reuse.keeper(a, "queue_depth")
        if k.fresh:
            style_axes(a)
        t, ready, unacked = series[name]
        edges, vu, avg = _steps(t, unacked, res.until, max_points)
        _, vr, _ = _steps(t, ready, res.until, max_points)
        averaged |= avg
        k.stairs("unacked", vu, edges, baseline=0.0, fill=True, facecolor=unacked_face,
                 edgecolor="none", linewidth=0, zorder=1,
                 label="unacked: delivered, not yet acknowledged")
        k.stairs("ready", vu + vr, edges, baseline=vu, fill=True, facecolor=ready_face,
                 edgecolor="none", linewidth=0, zorder=1,
                 label="ready: waiting for a consumer")
        if faults:  # the areas are opaque: the bands run as a strip along the top,
            # the first row naming the nodes in it (the areas keep below 82 %)
            fault_bands(a, res, label=i == 0, annotate=False, ymin=0.88, zorder=3,
                        alpha=0.85, key="fault_strip")
            if i == 0:
                _fault_names_on_top(a, k, res, y=0.94)
        top = float((vu + vr).max(initial=0.0))
        a.set_ylim(0, data.nice_top(max(top, 1.0) / 0.82))
        a.yaxis.set_major_locator(MaxNLocator(3, integer=True))
        a.set_ylabel("messages", fontsize=9)
        if i == 0 and not res.world.trace.enabled:
            _no_data(k, a, "queue depths are recorded only in a run with trace=True")
        elif name in auto and top == 0:  # an empty panel is the point: say why
            k.text("auto_ack", 0.5, 0.45, _AUTO_ACK_NOTE, transform=a.transAxes,
                   ha="center", va="center", fontsize=8, color=INK, zorder=5,
                   linespacing=1.3)
        end_r = int(ready[-1]) if ready.size else 0
        end_u = int(unacked[-1]) if unacked.size else 0
        most = int(ready.max()) if ready.size else 0
        if name.endswith(PIPES.format("")):
            set_titles(a, f"{name[:-len(PIPES.format(''))]}: the senders' pipes, no broker · "
                          f"most waiting {most} · at the end {end_r}", size=9)
        elif name in auto:  # nothing is ever unacked: the consumers settle as they take
            set_titles(a, f"queue {name} (auto-ack: never unacked) · most waiting {most} · "
                          f"at the end {end_r} ready", size=9)
        else:
            set_titles(a, f"queue {name} · most waiting {most} · at the end {end_r} ready, "
                          f"{end_u} unacked", size=9)
        k.finish()
        if i == 0:
            _legend(a, wrap=26)
        else:  # the first row's legend holds for every row
            reuse.legend(a, [], [])
    if cons:
        _consumer_lanes(axs[len(names)], res, cons, max_points, faults)
    if not names and not cons:
        a = axs[0]
        k = reuse.keeper(a, "queue_depth")
        if k.fresh:
            style_axes(a)
        _no_data(k, a, "no broker queues or consumers in this run" + _why_empty(res))
        a.set_ylim(0, 1)
        a.set_yticks([])
        set_titles(a, "Queues", size=9)
        k.finish()
    for a in axs:
        if a.get_xlim() != (0.0, res.until):
            a.set_xlim(0, res.until)
        a.set_xlabel("")
        a.tick_params(axis="x", labelbottom=a is axs[-1])
    axs[-1].set_xlabel("time (s)")
    for a in axs:
        pin_axis_labels(a)
    if owned:
        more = (f" · first {len(names)} of {n_queues} queues"
                if queues is None and n_queues > len(names) else "")
        pipes = [n for n in names if n.endswith(PIPES.format(""))]
        head = ("Queues: messages waiting (vermillion) on those delivered and not yet "
                "acknowledged (blue)" if len(pipes) < len(names) or not names else
                "No broker: messages waiting in the senders' pipes (vermillion)")
        fig.suptitle(head + more
                     + (f"; means per {res.until / max_points:.2g} s" if averaged else ""),
                     fontsize=10.5, x=0.1 / fig.get_figwidth(),
                     y=1 - 0.1 / fig.get_figheight(), ha="left", va="top")
    return fig


#: What :func:`queue_depth` says in the panel of a queue whose consumers all
#: use automatic acknowledgement.
_AUTO_ACK_NOTE = ("auto-ack: the broker hands each message to a consumer as soon as it\n"
                  "arrives and forgets it -- nothing waits here, nothing is unacked:\n"
                  "the consumers hold the messages instead (below)")


def _auto_ack_queues(res: Result) -> set[str]:
    """The labels of the broker queues read only by consumers with automatic
    acknowledgement (RabbitMQ's autoAck: a message is settled as it is sent,
    so the queue shows no unacked messages and, while a consumer is up, no
    ready ones either)."""
    labels = _queue_labels(res)
    names = {id(b): name for name, b in _brokers(res).items()}
    modes: dict[str, set[bool]] = {}
    for node in _consumer_nodes(res).values():
        broker = names.get(id(getattr(node, "transport", None)))
        if broker is None:
            continue
        label = labels.get((broker, str(getattr(node, "queue_name", None))))
        if label is not None:
            modes.setdefault(label, set()).add(bool(getattr(node, "auto_ack", False)))
    return {label for label, m in modes.items() if m == {True}}


def _consumer_lanes(a: Axes, res: Result, cons: list[str], max_points: int,
                    faults: bool) -> None:
    """One lane per consumer: what it holds, on one scale, its prefetch dashed."""
    k = reuse.keeper(a, "queue_depth_consumers")
    if k.fresh:
        style_axes(a)
        a.grid(False, axis="y")
    held = consumer_series(res)
    prefetch = _prefetch(res, cons)
    top = max([float(v.max(initial=0.0)) for _, v in held.values()]
              + [float(p) for p in prefetch.values()] + [1.0])
    n = len(cons)
    scale = 0.8 / top
    trans = blended_transform_factory(a.transAxes, a.transData)
    px: list[float] = []
    py: list[float] = []
    averaged = False
    for j, c in enumerate(cons):
        base = float(n - 1 - j)
        t, v = held.get(c, (np.zeros(0), np.zeros(0)))
        # coarser than the queues: a lane is short, and a mean reads as how busy
        edges, vals, avg = _steps(t, v, res.until, max(10, max_points // 3))
        averaged |= avg
        colour = SERIES_COLORS[j % len(SERIES_COLORS)]
        k.stairs(f"held:{c}", base + vals * scale, edges, baseline=base, fill=True,
                 facecolor=opaque(colour, 0.75), edgecolor=colour, linewidth=0.8, zorder=2)
        k.line(f"lane:{c}", [0.0, 1.0], [base, base], transform=trans, color="#CCCCCC",
               linewidth=0.8, zorder=1)
        if c in prefetch:
            level = base + prefetch[c] * scale
            px += [0.0, 1.0, math.nan]
            py += [level, level, math.nan]
        if faults:
            lo, hi = base / n, (base + 1.0) / n
            fault_bands(a, res, nodes=[c], label=False, annotate=False, ymin=lo, ymax=hi,
                        zorder=3, alpha=0.55, key=f"fault:{c}")
    if px:
        p_values = sorted(set(prefetch.values()))
        k.line("prefetch", px, py, transform=trans, color=INK, linestyle="--", linewidth=1.0,
               zorder=4, label="prefetch limit" + (f" ({p_values[0]})"
                                                   if len(p_values) == 1 else ""))
    a.set_ylim(-0.08, n)
    a.yaxis.set_major_locator(FixedLocator([n - 1 - j + 0.4 for j in range(n)]))
    a.set_yticks([n - 1 - j + 0.4 for j in range(n)], cons, fontsize=8)
    a.tick_params(axis="y", length=0)
    a.set_ylabel("")
    managed = any(not getattr(node, "auto_ack", True) and
                  getattr(node, "transport", None) in _brokers(res).values()
                  for name, node in _consumer_nodes(res).items() if name in cons)
    what = ("unacked deliveries per consumer" if managed
            else "messages each consumer holds: received, not yet handled")
    set_titles(a, f"{what} · each lane 0 to {top:g}"
               + (f" · means per {res.until / max(10, max_points // 3):.2g} s"
                  if averaged else ""), size=9)
    k.finish()
    handles = [k.artists["prefetch"]] if px else []
    reuse.legend(a, handles, [str(h.get_label()) for h in handles], loc="upper left",
                 bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)


# -- latency -----------------------------------------------------------------------------
def message_latencies(res: Result) -> pd.DataFrame:
    """One row per copy of a message (from ``Result.deliveries``): ``message_id``,
    ``channel``, ``consumer``, ``published``, ``latency`` (publish to the first
    time a handler finished with it; NaN if none did) and ``status``: the
    category :func:`message_latency` draws it in -- ``consumed``,
    ``redelivered`` (consumed, after at least one redelivery), ``dropped``
    (lost), ``dead_lettered``, or ``waiting`` (still ready, unacked or in
    flight at the end)."""
    def make() -> pd.DataFrame:
        d = res.deliveries
        cols = ["message_id", "channel", "consumer", "published", "latency", "status"]
        if d.empty:
            return pd.DataFrame(columns=cols)
        fate = d["fate"].to_numpy()
        lat = d["latency"].to_numpy(dtype=float)
        handled = np.isfinite(lat)
        status = np.where(fate == "dropped", "dropped",
                          np.where(fate == "dead_lettered", "dead_lettered",
                                   np.where(handled, "consumed", "waiting")))
        status = np.where(handled & (status == "consumed")
                          & (d["redeliveries"].to_numpy() > 0), "redelivered", status)
        out = d[["message_id", "channel", "consumer", "published", "latency"]].copy()
        out["status"] = status
        return out[cols].reset_index(drop=True)
    return data.cached(res, "mq_latencies", make)  # type: ignore[no-any-return]


def message_latency(res: Result, ax: Axes | None = None, *,
                    percentiles: Sequence[float] = (50, 95), window: float | None = None,
                    log: bool | None = None, faults: bool = True) -> Figure:
    """Each message's end-to-end latency against the time it was published.

    What the learner sees: one faint point per copy a handler finished
    with (bluish green; **orange** when it was consumed only after a
    redelivery), its height the time from publish to the handler finishing
    -- the latency a message-driven service actually gives.  Black steps
    are the median (solid) and p95 (dashed) of the messages published in
    each ``window`` of seconds.  Along the top strip, at their publish
    time: a **vermillion ✕** for every copy lost (dropped: a broker crash,
    a full queue, a brokerless high-water mark ...), a **reddish purple ✕**
    for one dead-lettered, and a **grey bar** for one still waiting when
    the run ended.  Fault bands show the crash behind a gap or a climb: with
    a broker, messages published while a consumer is down wait and arrive
    late; brokerless, they are lost.  A run whose parameters have
    ``late_after`` (the ``brokers`` scenario) gets a dotted line there:
    points above it are late.  The y axis turns logarithmic when the
    slowest message took 50 times the median or more (``log`` forces it
    either way).  Needs the trace.
    """
    if window is not None and not (is_real(window) and 0 < window < math.inf):
        raise ParamError("window", window, "a bin width in seconds > 0, or None")
    _check_flag("faults", faults)
    if log is not None:
        _check_flag("log", log)
    from simcomm.analysis.messaging import _check_percentiles

    qs = _check_percentiles(percentiles)
    fig, ax, _ = figure_for(ax, 9.0, 4.0, margins=(0.75, 2.35, 0.4, 0.55))
    k = reuse.keeper(ax, "message_latency")
    if k.fresh:
        style_axes(ax)
    df = message_latencies(res)
    pub = df["published"].to_numpy(dtype=float)
    lat = df["latency"].to_numpy(dtype=float)
    status = df["status"].to_numpy()
    handled = np.isfinite(lat)
    positive = lat[handled & (lat > 0)]
    if log is None:
        log = bool(positive.size and positive.max() > 50 * np.median(positive))
    floor = float(positive.min()) if positive.size else 1e-3
    lat_plot = np.maximum(lat, floor) if log else lat
    n_handled = int(handled.sum())
    alpha = 0.55 if n_handled < 500 else (0.35 if n_handled < 5000 else 0.2)
    for name, label in (("consumed", "consumed"),
                        ("redelivered", "consumed after a redelivery")):
        mask = status == name
        if mask.any():
            k.line(f"status:{name}", pub[mask], lat_plot[mask], linestyle="none", marker="o",
                   markersize=2.8, markeredgewidth=0, alpha=alpha, color=FATE_COLORS[name],
                   label=f"{label} ({int(mask.sum())})", zorder=2.5)
    strip = blended_transform_factory(ax.transData, ax.transAxes)
    for name, label, marker in (("dropped", "lost", "X"),
                                ("dead_lettered", "dead-lettered", "X"),
                                ("waiting", "still waiting at the end", "|")):
        mask = status == name
        if mask.any():
            k.line(f"status:{name}", pub[mask], np.full(int(mask.sum()), 0.94),
                   transform=strip, linestyle="none", marker=marker,
                   markersize=7 if marker == "X" else 9, color=FATE_COLORS[name],
                   markeredgecolor="white" if marker == "X" else FATE_COLORS[name],
                   markeredgewidth=0.5 if marker == "X" else 1.2, alpha=0.9,
                   label=f"{label} ({int(mask.sum())}, at publish time)", zorder=4)
    top = float(lat_plot[handled].max()) if n_handled else 1.0
    if n_handled >= 10 and qs:
        if window is None:
            rate = n_handled / res.until
            window = data.nice_step(min(max(res.until / 60.0, 30.0 / rate), res.until / 4.0))
        edges = np.arange(0.0, res.until + window, window)
        binned = binned_percentiles(pub[handled], lat_plot[handled], edges, qs)
        for q, values in binned.items():
            style = {50.0: {"color": INK, "linestyle": "-", "linewidth": 1.6},
                     95.0: {"color": INK, "linestyle": "--", "linewidth": 1.6}}.get(
                q, {"color": INK, "linestyle": ":", "linewidth": 1.4})
            k.stairs(f"p{q:g}", values, edges, baseline=None, fill=False,
                     label=f"p{q:g} per {window:g} s", zorder=3, **style)
    late = getattr(res.params, "late_after", None)
    if is_real(late) and 0 < float(late) < math.inf:  # type: ignore[arg-type]
        late_v = float(late)  # type: ignore[arg-type]
        k.line("late_after", [0.0, 1.0], [late_v, late_v], transform=ax.get_yaxis_transform(),
               color=OKABE_ITO["vermillion"], linestyle=":", linewidth=1.4, zorder=3,
               label=f"late after {late_v:g} s")
        top = max(top, late_v)
    if faults:  # the names along the top, above the markers: the points climb in a band
        fault_bands(ax, res, annotate=False)
        _fault_names_on_top(ax, k, res)
    if not len(df):
        _no_data(k, ax, "no messages were published in this run" + _why_empty(res))
    scale = "log" if log else "linear"
    if ax.get_yscale() != scale:
        ax.set_yscale(scale)
        if log:
            _plain_log_ticks(ax.yaxis)
    if log:
        ax.set_ylim(floor / 1.5, top * 1.5 ** 2 / 0.9)
    else:
        ax.set_ylim(0, data.nice_top(1.05 * top / 0.88))
    ax.set_xlim(0, res.until)
    ax.set_xlabel("publish time (s)")
    ax.set_ylabel("latency: publish → consumed (s)" + (", log scale" if log else ""))
    counts = {s: int((status == s).sum()) for s in FATE_COLORS}
    if len(df):
        stats = []
        for q in qs:
            v = float(np.percentile(lat[handled], q)) if n_handled else math.nan
            stats.append(f"p{q:g} {v:.3g} s")
        right = (" · ".join(stats) + f" · lost {counts['dropped']} of {len(df)}"
                 + (f" · {counts['dead_lettered']} dead-lettered"
                    if counts["dead_lettered"] else ""))
    else:
        right = ""
    set_titles(ax, "Message latency", right)
    pin_axis_labels(ax)
    k.finish()
    _legend(ax, markerscale=1.8)
    return fig


def _fault_names_on_top(ax: Axes, k: reuse.Keeper, res: Result, y: float = 0.985) -> None:
    """The name of the node behind each fault band :func:`fault_bands` shades by
    default, written across ``ax`` at height ``y`` (a fraction of the axes: by
    default along the top, above message_latency's strip of markers at 0.94
    and the data, which keep below it) from the band's start; bands whose
    names would run into each other (two nodes crashing together) share one."""
    from simcomm.viz.timeseries import DEFAULT_BANDS, TRANSIENT_BANDS

    half = res.until / 2
    iv = [r for r in data.fault_rows(res) if r[1] in DEFAULT_BANDS
          or (r[1] in TRANSIENT_BANDS and r[3] - r[2] < half)]
    if not iv or len(iv) > 12:
        return
    fig = root_figure(ax)
    per_pt = res.until / max(ax.get_position().width * fig.get_figwidth() * 72, 1.0)
    groups: list[tuple[float, float, list[str]]] = []  # start, end of its text, names
    for node, _kind, start, *_ in sorted(iv, key=lambda r: r[2]):
        if groups and start < groups[-1][1]:
            g_start, _, names = groups.pop()
            if node not in names:
                names.append(node)
        else:
            g_start, names = start, [node]
        text = " " + ", ".join(names)
        groups.append((g_start, g_start + (len(text) * 0.6 * 7 + 4) * per_pt, names))
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for i, (start, _, names) in enumerate(groups):
        k.text(f"fault_top_name:{i}", start, y, " " + ", ".join(names), transform=top,
               ha="left", va="center", fontsize=7, color=INK, alpha=0.8, clip_on=True,
               zorder=4)


def _plain_log_ticks(axis: Any) -> None:
    """A log axis labelled in plain numbers (0.01, 0.1, 1, 10: seconds read as
    seconds), with minor ticks at 2 and 5 times each power of ten.

    Matplotlib's default writes each decade as mathtext (10^-2), which its Agg
    renderer draws glyph by glyph on every draw, and puts eight unlabelled
    minor ticks in every decade: together two thirds of the cost of drawing
    the axes of a log-scale figure, on every dashboard redraw."""
    axis.set_major_locator(LogLocator(base=10.0))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0)))
    axis.set_minor_formatter(NullFormatter())


# -- consumers ---------------------------------------------------------------------------
def _consumptions(res: Result) -> pd.DataFrame:
    def make() -> pd.DataFrame:
        from simcomm.analysis.messaging import consumptions

        return consumptions(_mq(res))
    return data.cached(res, "mq_consumptions", make)  # type: ignore[no-any-return]


def consumer_counts(res: Result) -> pd.DataFrame:
    """One row per consumer and queue it read: ``consumer``, ``queue``,
    ``delivered`` (deliveries it received), ``consumed`` (times its handler
    finished with a message: the work it did, a duplicate included),
    ``redelivered`` (of those, messages that came to it redelivered),
    ``share`` (its part of the queue's consumed messages) and ``lost`` (copies
    dropped in its hands: auto-acked and never handled).  A Consumer node
    that received nothing has a row with zeros on the queue it subscribed to.
    Rows in the order the run added the consumers."""
    def make() -> pd.DataFrame:
        delivered: dict[tuple[str, str], int] = {}
        lost: dict[tuple[str, str], int] = {}
        nodes = _consumer_nodes(res)
        for _t, ev, _mid, ch, node, _detail in _mq(res):
            if ev == "deliver":
                key = (str(node), str(ch))
                delivered[key] = delivered.get(key, 0) + 1
            elif ev == "drop" and node in nodes:
                key = (str(node), str(ch))
                lost[key] = lost.get(key, 0) + 1
        c = _consumptions(res)
        consumed: dict[tuple[str, str], int] = {}
        redelivered: dict[tuple[str, str], int] = {}
        # plain lists: iterating a pandas column boxes one value at a time
        for consumer, ch, again in zip(c["consumer"].tolist(), c["channel"].tolist(),
                                       c["redelivered"].tolist(), strict=True):
            key = (str(consumer), str(ch))
            consumed[key] = consumed.get(key, 0) + 1
            if again:
                redelivered[key] = redelivered.get(key, 0) + 1
        keys: dict[tuple[str, str], None] = {}
        order = {n: i for i, n in enumerate(res.world.nodes)}
        seen = {*delivered, *consumed, *lost}
        for name, node in nodes.items():
            mine = [k for k in seen if k[0] == name]
            if not mine:
                keys[(name, str(getattr(node, "queue_name", None)
                                or getattr(node, "channel", "")))] = None
        for key in sorted(seen, key=lambda k: (order.get(k[0], len(order)), k)):
            keys[key] = None
        ordered = sorted(keys, key=lambda k: (order.get(k[0], len(order)),))
        rows = [(cons, q, delivered.get((cons, q), 0), consumed.get((cons, q), 0),
                 redelivered.get((cons, q), 0), lost.get((cons, q), 0))
                for cons, q in ordered]
        df = pd.DataFrame(rows, columns=["consumer", "queue", "delivered", "consumed",
                                         "redelivered", "lost"])
        totals = df.groupby("queue")["consumed"].transform("sum").to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            df["share"] = np.where(totals > 0, df["consumed"] / totals, math.nan)
        return df[["consumer", "queue", "delivered", "consumed", "redelivered", "share",
                   "lost"]]
    return data.cached(res, "mq_consumer_counts", make)  # type: ignore[no-any-return]


def consumer_share(res: Result, ax: Axes | None = None) -> Figure:
    """How the messages of each queue were shared among its consumers.

    What the learner sees: one bar per consumer (grouped by the queue it
    reads), its height the messages its handler finished with; the
    **orange** top part came to it redelivered (after a crash, a nack, a
    broker restart).  Above each bar its share of the queue's messages; a
    **dashed line** over each group is the fair share (the queue's messages
    divided by its consumers).  With prefetch 1 (fair dispatch) and one slow
    consumer, the fast ones take more; with a large prefetch the slow one
    gets its round-robin turn anyway and the queue waits on it.  Needs the
    trace.
    """
    fig, ax, _ = figure_for(ax, 9.0, 3.8, margins=(0.75, 2.35, 0.4, 0.9))
    k = reuse.keeper(ax, "consumer_share")
    if k.fresh:
        style_axes(ax)
        ax.grid(False, axis="x")
    df = consumer_counts(res)
    queues = list(dict.fromkeys(df["queue"]))
    multi = len(queues) > 1
    x: list[float] = []
    pos = 0.0
    for q in queues:
        for _ in range(int((df["queue"] == q).sum())):
            x.append(pos)
            pos += 1.0
        pos += 0.6  # a gap between queues
    xs = np.asarray(x)
    first = (df["consumed"] - df["redelivered"]).to_numpy(dtype=float)
    again = df["redelivered"].to_numpy(dtype=float)
    width = 0.7

    def bars(bottom: np.ndarray, height: np.ndarray) -> list[list[tuple[float, float]]]:
        return [[(x0 - width / 2, b), (x0 + width / 2, b), (x0 + width / 2, b + h),
                 (x0 - width / 2, b + h)] for x0, b, h in zip(xs, bottom, height, strict=True)]

    k.polys("first", bars(np.zeros(len(df)), first), facecolor=FATE_COLORS["consumed"],
            edgecolor="white", linewidth=0.5, zorder=2, label="consumed (first delivery)")
    if again.any():
        k.polys("again", bars(first, again), facecolor=FATE_COLORS["redelivered"],
                edgecolor="white", linewidth=0.5, zorder=2,
                label="consumed after a redelivery")
    total = first + again
    top = float(total.max(initial=0.0))
    fair_x: list[float] = []
    fair_y: list[float] = []
    for q in queues:
        mask = (df["queue"] == q).to_numpy()
        n = int(mask.sum())
        if n > 1:
            fair = float(total[mask].sum()) / n
            fair_x += [float(xs[mask].min()) - 0.45, float(xs[mask].max()) + 0.45, math.nan]
            fair_y += [fair, fair, math.nan]
    if fair_x:
        k.line("fair", fair_x, fair_y, color=INK, linestyle="--", linewidth=1.2, zorder=3,
               label="fair share of its queue")
    for i, (x0, tot, share) in enumerate(zip(xs, total, df["share"], strict=True)):
        text = f"{100 * share:.0f} %" if np.isfinite(share) else "–"
        k.text(f"share:{i}", float(x0), float(tot), text, ha="center", va="bottom",
               fontsize=8, color=INK, zorder=4)
    if not len(df) or not res.world.trace.enabled:
        _no_data(k, ax, ("no consumers in this run" if not len(df) else
                         "no message was recorded consumed in this run") + _why_empty(res))
    ax.set_ylim(0, data.nice_top(max(top, 1.0) * 1.15))
    ax.set_xlim(-0.8, (float(xs.max()) if xs.size else 0.0) + 0.8)
    ax.set_xticks(list(xs), [str(c) for c in df["consumer"]], fontsize=8,
                  rotation=20 if len(df) > 7 else 0)
    below = blended_transform_factory(ax.transData, ax.transAxes)
    for j, q in enumerate(queues if multi else []):  # each group's queue under its bars
        mask = (df["queue"] == q).to_numpy()
        k.text(f"queue:{j}", float(xs[mask].mean()), -0.13, f"queue {q}", transform=below,
               ha="center", va="top", fontsize=8, color=INK, clip_on=False)
    ax.set_xlabel("consumer, grouped by the queue it reads" if multi else "consumer")
    ax.set_ylabel("messages consumed")
    total_n = int(total.sum())
    again_n = int(again.sum())
    set_titles(ax, "Messages consumed per consumer",
               f"{total_n} consumed · {again_n} after a redelivery"
               + (f" ({100 * again_n / total_n:.1f} %)" if total_n else ""))
    pin_axis_labels(ax)
    if multi:  # below the queue names
        ax.xaxis.set_label_coords(0.5, -0.24)
    k.finish()
    _legend(ax)
    return fig


# -- order -------------------------------------------------------------------------------
def consume_order(res: Result) -> pd.DataFrame:
    """Every time a handler finished with a message, in the order they
    happened (:func:`simcomm.analysis.messaging.consumptions`), flagged by
    :func:`~simcomm.analysis.messaging.mark_order` per producer → consumer
    stream (``duplicate``, ``out_of_order``: the rules ``Result.ordering()``
    counts), with ``position`` (the n-th message that consumer finished,
    from 1) and ``sequence`` (the n-th message published in the run, from 1;
    0 if its publish is unknown)."""
    def make() -> pd.DataFrame:
        from simcomm.analysis.messaging import mark_order

        c = _consumptions(res)
        marked = mark_order(c)
        marked["position"] = marked.groupby("consumer").cumcount().to_numpy() + 1
        marked["sequence"] = marked["publish_seq"].to_numpy() + 1
        return marked
    return data.cached(res, "mq_consume_order", make)  # type: ignore[no-any-return]


def _consumers_consuming(res: Result) -> list[str]:
    """The consumers that finished a message, in the order the run added them."""
    added = {n: i for i, n in enumerate(res.world.nodes)}
    return sorted(dict.fromkeys(str(c) for c in consume_order(res)["consumer"].unique()),
                  key=lambda c: (added.get(c, len(added)), c))


def _order_rows(res: Result, consumers: Any) -> list[str]:
    """The consumers :func:`message_order` draws a row for."""
    known = _consumers_consuming(res)
    picked = _pick(known, consumers, "consumers", "consumers that consumed in this run")
    return picked if picked is not None else known[:MAX_ROWS]


def message_order(res: Result, consumers: str | Sequence[str] | None = None,
                  axes: Axes | Sequence[Axes] | None = None, *,
                  ax: Axes | None = None) -> Figure:
    """In what order each consumer got the messages, against the order they
    were published.

    What the learner sees: one row per consumer (the first
    :data:`MAX_ROWS` that consumed anything, unless ``consumers`` picks);
    along x the messages in the order its handler finished them, up the y
    axis each one's place in the publish order, joined by a faint line.
    In order, the points climb steadily; a message consumed after one
    published later -- out of order for its producer → consumer stream,
    as ``Result.ordering()`` counts it -- is a **vermillion ✕** below the
    climb, and a message consumed again (a duplicate) a **reddish purple
    ring**.  With one consumer and no failures the line never dips; a
    redelivery (crash, nack) sends a message back into the queue and it
    comes out after later ones: the dip the issue asks to see.  Needs the
    trace.  ``axes`` (one per row) draws into given axes, updated in place.
    """
    df = consume_order(res)
    known = _consumers_consuming(res)
    names = _order_rows(res, consumers)
    n_rows = max(1, len(names))
    if axes is None:
        axes = ax
    axs = _rows_of(axes, n_rows, "one per consumer")
    if axs is None:
        height = 1.1 + 1.55 * n_rows
        fig = new_figure(9.0, height, margins=(0.8, 2.35, 0.75, 0.55), hspace=0.6)
        grid = fig.add_gridspec(n_rows, 1)
        axs = [fig.add_subplot(grid[i, 0]) for i in range(n_rows)]
        setattr(fig, _OWNER, "message_order")
    else:
        fig = root_figure(axs[0])
    owned = getattr(fig, _OWNER, None) == "message_order"
    for i, name in enumerate(names):
        a = axs[i]
        k = reuse.keeper(a, "message_order")
        if k.fresh:
            style_axes(a)
        rows = df[df["consumer"] == name]
        pos = rows["position"].to_numpy(dtype=float)
        seq = rows["sequence"].to_numpy(dtype=float)
        late = rows["out_of_order"].to_numpy(dtype=bool)
        dup = rows["duplicate"].to_numpy(dtype=bool)
        colour = SERIES_COLORS[known.index(name) % len(SERIES_COLORS)]
        small = len(pos) <= 400
        k.line("path", pos, seq, color=opaque(colour, 0.45), linewidth=0.8, zorder=2)
        k.line("points", pos[~late & ~dup], seq[~late & ~dup], linestyle="none", marker="o",
               markersize=3.0 if small else 1.8, markeredgewidth=0, color=colour, zorder=3,
               label="in order")
        if late.any():
            k.line("late", pos[late], seq[late], gid="mark:late", linestyle="none", marker="X",
                   markersize=7,
                   color=OKABE_ITO["vermillion"], markeredgecolor="white",
                   markeredgewidth=0.5, zorder=4,
                   label="out of order: consumed after a later message")
        if dup.any():
            k.line("dup", pos[dup], seq[dup], gid="mark:dup", linestyle="none", marker="o",
                   markersize=7,
                   markerfacecolor="none", markeredgecolor=FATE_COLORS["dead_lettered"],
                   markeredgewidth=1.4, zorder=4, label="duplicate: consumed again")
        a.set_xlim(0, data.nice_top(max(float(pos.max(initial=0.0)), 1.0) * 1.02))
        a.set_ylim(0, data.nice_top(max(float(seq.max(initial=0.0)), 1.0) * 1.05))
        a.xaxis.set_major_locator(MaxNLocator(6, integer=True))
        a.yaxis.set_major_locator(MaxNLocator(3, integer=True))
        a.set_ylabel("publish order", fontsize=9)
        a.set_xlabel("")
        set_titles(a, f"{name} · {len(pos)} consumed · {int(late.sum())} out of order · "
                      f"{int(dup.sum())} duplicates", size=9)
        k.finish()
        # the first row says what a plain point is; the others only what else they show
        _legend(a, wrap=26, markerscale=1.2, only_gid=None if i == 0 else "mark:")
    if not names:
        a = axs[0]
        k = reuse.keeper(a, "message_order")
        if k.fresh:
            style_axes(a)
        _no_data(k, a, "no message was consumed in this run" + _why_empty(res))
        a.set_xlim(0, 1)
        a.set_ylim(0, 1)
        a.set_ylabel("publish order", fontsize=9)
        set_titles(a, "Order of consumption", size=9)
        k.finish()
        _legend(a)
    axs[-1].set_xlabel("the n-th message this consumer finished")
    for a in axs:
        pin_axis_labels(a)
    if owned:
        more = (f" · first {len(names)} of {len(known)} consumers"
                if consumers is None and len(known) > len(names) else "")
        fig.suptitle("Order of consumption: each point a message, higher = published later"
                     + more, fontsize=10.5, x=0.1 / fig.get_figwidth(),
                     y=1 - 0.1 / fig.get_figheight(), ha="left", va="top")
    return fig


# =====================================================================================
# the flow: publishers → exchanges → queues → consumers
# =====================================================================================
#: The columns of the flow figure, left to right, by node kind.
_COLUMNS = {"publisher": 0, "exchange": 1, "queue": 2, "channel": 2, "consumer": 3}
_HEADERS = ("publishers", "exchanges", "queues and channels", "consumers")
#: Vertical distance between nodes of a column (room for a label and a drop note).
_ROW = 1.25


@dataclass
class _FlowData:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: a stable order for each node (as the run declared them), so that runs of
    #: one system lay out alike whatever happened first in each
    order: dict[str, tuple[int, int, str]] = field(default_factory=dict)

    def node(self, nid: str, kind: str, name: str, **attrs: Any) -> str:
        if nid not in self.nodes:
            self.nodes[nid] = {"kind": kind, "name": name, "dropped": {}, "consumed": 0,
                               **attrs}
        return nid

    def edge(self, u: str, v: str, kind: str, redelivered: bool = False) -> None:
        e = self.edges.get((u, v))
        if e is None:
            e = self.edges[(u, v)] = {"kind": kind, "messages": 0, "redelivered": 0}
        e["messages"] += 1
        e["redelivered"] += int(redelivered)

    def drop(self, nid: str, reason: str) -> None:
        d = self.nodes[nid]["dropped"]
        d[reason] = d.get(reason, 0) + 1


def _flow_data(res: Result) -> _FlowData:
    def make() -> _FlowData:
        from simcomm.engine.trace import MESSAGE_COLUMNS

        brokers = _brokers(res)
        consumers = _consumer_nodes(res)
        mq = _mq(res)
        f = _FlowData()
        pubs: dict[int, tuple[str, str]] = {}
        enqueued: set[tuple[int, str]] = set()
        for row in mq:
            ev = row[1]
            if ev == "publish":
                if row[2] not in pubs:
                    pubs[row[2]] = (str(row[4]), str(row[3]))
            elif ev == "enqueue":
                enqueued.add((row[2], str(row[4])))
        # where each publish went on the network, and whether it got there
        i_ev, i_id = MESSAGE_COLUMNS.index("event"), MESSAGE_COLUMNS.index("message_id")
        i_dest, i_reason = MESSAGE_COLUMNS.index("dest"), MESSAGE_COLUMNS.index("reason")
        dest: dict[int, str] = {}
        lost: dict[int, str] = {}
        for row in [r for r in res.world.trace.messages if r[i_id] in pubs]:
            if row[i_ev] == "send":
                dest[row[i_id]] = str(row[i_dest])
            elif row[i_ev] == "drop":
                lost[row[i_id]] = str(row[i_reason])

        # the node of each (broker, name) and consumer, made once: a run has
        # thousands of events on a handful of them
        made: dict[tuple[str, Any, Any], str] = {}

        def exchange(b: str, name: str) -> str:
            nid = made.get(("ex", b, name))
            if nid is None:
                ex = brokers[b].exchanges.get(name)
                label = name or "(default exchange)"
                nid = made["ex", b, name] = f.node(f"ex:{b}:{name}", "exchange", label,
                                                   type=getattr(ex, "type", "direct"))
            return nid

        def queue(b: Any, name: Any) -> str:
            nid = made.get(("q", b, name))
            if nid is None:
                b, name = str(b), str(name)
                label = name if len(brokers) <= 1 else f"{b}/{name}"
                nid = made["q", b, name] = f.node(f"q:{b}:{name}", "queue", label)
            return nid

        def channel(name: Any) -> str:
            nid = made.get(("ch", name, None))
            if nid is None:
                nid = made["ch", name, None] = f.node(f"ch:{name}", "channel", str(name))
            return nid

        def consumer(name: Any) -> str:
            nid = made.get(("con", name, None))
            if nid is None:
                nid = made["con", name, None] = f.node(f"con:{name}", "consumer", str(name))
            return nid

        target: dict[int, str] = {}
        for mid, (node, ch) in pubs.items():
            src = f.node(f"pub:{node}", "publisher", node)
            b = dest.get(mid)
            if b in brokers:
                broker = brokers[b]
                if ch in broker.queues or (ch not in broker.exchanges and ch):
                    tgt = queue(b, ch)
                else:
                    tgt = exchange(b, ch)
            else:  # brokerless: the channel is the sender's name for its peers
                tgt = channel(ch)
            target[mid] = tgt
            f.edge(src, tgt, "publish")
        copy_at: dict[tuple[int, str], str] = {}   # (message, queue name) -> queue node
        dead_from: dict[int, str] = {}             # message -> queue that dead-lettered it
        dropped_mq: set[int] = set()
        edges = f.edges
        nodes = f.nodes
        for _t, ev, mid, ch, node, detail in mq:
            if ev == "deliver":  # the commonest: FlowData.edge written out
                src = copy_at.get((mid, str(ch))) or channel(ch)
                key = (src, consumer(node))
                e = edges.get(key)
                if e is None:
                    e = edges[key] = {"kind": "deliver", "messages": 0, "redelivered": 0}
                e["messages"] += 1
                if detail == "redelivered":
                    e["redelivered"] += 1
            elif ev == "consume":
                nodes[consumer(node)]["consumed"] += 1
            elif ev == "enqueue":
                qn = queue(node, ch)
                copy_at[(mid, str(ch))] = qn
                if detail == "dead_letter" and mid in dead_from:
                    f.edge(dead_from[mid], qn, "dead_letter")
                elif target.get(mid) not in (None, qn):
                    f.edge(target[mid], qn, "route")
            elif ev == "pipe":  # brokerless: a copy in the sender's pipe to one peer group
                cn = channel(ch)
                if copy_at.get((mid, str(ch))) != cn:
                    copy_at[(mid, str(ch))] = cn
                    if target.get(mid) not in (None, cn):
                        f.edge(target[mid], cn, "route")
            elif ev == "dead_letter":
                dead_from[mid] = copy_at.get((mid, str(ch))) or queue(node, ch)
            elif ev == "drop":
                dropped_mq.add(mid)
                if node in brokers:
                    b, name = str(node), str(ch)
                    nid = copy_at.get((mid, name))
                    if nid is None:
                        nid = (exchange(b, name) if name in brokers[b].exchanges or not name
                               else queue(b, name))
                elif node in consumers:
                    nid = consumer(node)
                else:
                    nid = f.node(f"pub:{node}", "publisher", str(node))
                f.drop(nid, str(detail))
        for mid, reason in lost.items():  # a publish the network lost on the way
            if mid not in dropped_mq and not any((mid, b) in enqueued for b in brokers):
                f.drop(f"pub:{pubs[mid][0]}", reason)
        added = {n: i for i, n in enumerate(res.world.nodes)}
        declared: dict[str, int] = {}
        for i, (bname, broker) in enumerate(brokers.items()):
            for j, name in enumerate([*broker.exchanges, *broker.queues]):
                declared.setdefault(f"{bname}:{name}", 1000 * i + j)
        for nid in f.nodes:
            kind, _, rest = nid.partition(":")
            if kind in ("pub", "con"):
                f.order[nid] = (0, added.get(rest, len(added)), rest)
            else:
                f.order[nid] = (1, declared.get(rest, 10**6), rest)
        return f
    return data.cached(res, "mq_flow", make)  # type: ignore[no-any-return]


def _flow_layout(f: _FlowData) -> tuple[dict[str, tuple[float, float]], list[int]]:
    """Positions: a column per kind present (publishers left, consumers right),
    each column's nodes ordered by where their senders sit (fewer crossings)."""
    fans = {u for (u, _), e in f.edges.items() if e["kind"] == "route"}

    def column(nid: str) -> int:  # a brokerless channel that fans out sits as an exchange
        kind = f.nodes[nid]["kind"]
        return 1 if kind == "channel" and nid in fans else _COLUMNS[kind]

    present = sorted({column(nid) for nid in f.nodes})
    col_of = {c: i for i, c in enumerate(present)}
    columns: dict[int, list[str]] = {i: [] for i in range(len(present))}
    for nid in sorted(f.nodes, key=lambda n: f.order.get(n, (2, 0, n))):  # as declared
        columns[col_of[column(nid)]].append(nid)
    rank: dict[str, float] = {}
    for c in range(len(present)):
        col = columns[c]
        if c > 0:
            first = {nid: i for i, nid in enumerate(col)}

            def centre(nid: str, first: dict[str, int] = first) -> tuple[float, int]:
                senders = [rank[u] for (u, v) in f.edges if v == nid and u in rank]
                return (sum(senders) / len(senders) if senders else math.inf, first[nid])
            col.sort(key=centre)
        for i, nid in enumerate(col):
            rank[nid] = float(i) - (len(col) - 1) / 2.0
    pos = {nid: (float(c), -_ROW * rank[nid]) for c, col in columns.items() for nid in col}
    return pos, present


def flow_graph(res: Result) -> nx.DiGraph:
    """The message flow of the run as a graph: a node per publisher
    (``pub:<node>``), exchange (``ex:<broker>:<name>``), broker queue
    (``q:<broker>:<name>``), brokerless channel (``ch:<name>``) and consumer
    (``con:<node>``) -- a service that publishes and consumes is two nodes --
    with attributes ``kind``, ``name``, ``dropped`` (``{reason: copies}``
    lost there), ``consumed`` (a consumer's handler finishes) and ``pos``
    (the figure's layout); an edge per path messages took, with ``kind``
    (``publish``, ``route``, ``deliver``, ``dead_letter``), ``messages``
    (publishes, copies routed, deliveries, copies dead-lettered) and
    ``redelivered`` (deliveries flagged so).  Read from ``trace.mq`` and the
    network ledger (a publish lost on the wire counts at its publisher).
    A copy: change it freely."""
    import networkx as nx

    f = _flow_data(res)
    pos, _ = _flow_layout(f)
    g = nx.DiGraph()
    for nid, attrs in f.nodes.items():
        g.add_node(nid, **{**attrs, "dropped": dict(attrs["dropped"]), "pos": pos[nid]})
    for (u, v), attrs in f.edges.items():
        g.add_edge(u, v, **attrs)
    return g


def _rect_marker(ratio: float = 2.2) -> Any:
    """A wide rectangle as a marker: a queue (scaled by its width)."""
    from matplotlib.path import Path

    h = 0.5 / ratio
    return Path([(-0.5, -h), (0.5, -h), (0.5, h), (-0.5, h), (-0.5, -h)],
                [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY])


#: How each kind of node looks in the flow: marker, size (points), face, edge.
_NODE_LOOK: dict[str, tuple[Any, float, str, str]] = {
    "publisher": ("s", 20.0, MESSAGE_COLORS["publisher"], "#777777"),
    "exchange": ("D", 17.0, opaque(MESSAGE_COLORS["exchange"], 0.75), MESSAGE_COLORS["exchange"]),
    "queue": (None, 40.0, opaque(MESSAGE_COLORS["queue"], 0.6), OKABE_ITO["blue"]),
    "channel": (None, 40.0, "#FFFFFF", OKABE_ITO["blue"]),
    "consumer": ("o", 22.0, opaque(MESSAGE_COLORS["consumer"], 0.35),
                 MESSAGE_COLORS["consumer"]),
}
_KIND_WORDS = {"publisher": "publishes", "queue": "queue", "channel": "channel, no broker",
               "consumer": "consumes"}


def _edge_text(e: Mapping[str, Any]) -> str:
    """What an edge of the flow says: its messages, redeliveries, dead-lettering."""
    text = f"{e['messages']}"
    if e["redelivered"]:
        text += f"\n({e['redelivered']} redelivered)"
    if e["kind"] == "dead_letter":
        text += " dead-lettered"
    return text


def _node_text(n: Mapping[str, Any], column_kind: int) -> str:
    """A flow node's label: its name, and what it is (or what it consumed)."""
    word = (f"exchange · {n.get('type', 'direct')}" if n["kind"] == "exchange"
            else "channel · fanout, no broker"
            if n["kind"] == "channel" and column_kind == 1
            else _KIND_WORDS[n["kind"]])
    if n["kind"] == "consumer":
        word = f"consumed {n['consumed']}"
    return f"{n['name']}\n{word}"


def _text_box(text: str, size: float, spacing: float = 1.2) -> tuple[float, float]:
    """About how wide and tall (points) ``text`` is at ``size`` points."""
    lines = text.split("\n")
    return (max(len(line) for line in lines) * 0.62 * size,
            (len(lines) - 1) * spacing * size * 1.17 + 1.17 * size)


def _flow_label_spots(f: _FlowData, pos: Mapping[str, tuple[float, float]],
                      present: Sequence[int], limits: tuple[float, float, float, float],
                      size_pt: tuple[float, float]) -> dict[tuple[str, str], tuple[float, float]]:
    """Where each edge's count goes: at its middle (a delivery a little past it),
    unless that box would touch a node, a node's label, a loss note or a count
    placed before -- where a fan of edges crosses a column -- and then the
    nearest spot along the edge that touches none (the middle if none does).
    Boxes are estimated from the texts (points to data units by the axes'
    size ``size_pt`` over ``limits``), the same in a fresh drawing and a redraw."""
    x_lo, x_hi, y_lo, y_hi = limits
    kx = (x_hi - x_lo) / max(size_pt[0], 1.0)  # data units per point
    ky = (y_hi - y_lo) / max(size_pt[1], 1.0)
    taken: list[tuple[float, float, float, float]] = []

    def box(cx: float, cy: float, w_pt: float, h_pt: float,
            top: bool = False) -> tuple[float, float, float, float]:
        w, h = w_pt * kx, h_pt * ky
        return (cx - w / 2, cy - h, cx + w / 2, cy) if top else (
            cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    for nid, n in f.nodes.items():
        x, y = pos[nid]
        size = _NODE_LOOK[n["kind"]][1]
        taken.append(box(x, y, size + 4, (size / 2.2 if n["kind"] in ("queue", "channel")
                                          else size) + 4))
        w, h = _text_box(_node_text(n, present[int(x)]), 8.5, 1.1)
        taken.append(box(x, y - 0.26, w + 4, h + 2, top=True))
        if n["dropped"]:
            taken.append((x - 0.06 - 5 * kx, y - 0.78 - 6 * ky, x + 0.02 + 160 * kx,
                          y - 0.78 + 6 * ky))

    def free(b: tuple[float, float, float, float]) -> bool:
        return all(b[2] <= o[0] or o[2] <= b[0] or b[3] <= o[1] or o[3] <= b[1]
                   for o in taken)

    spots: dict[tuple[str, str], tuple[float, float]] = {}
    for (u, v), e in f.edges.items():
        (x0, y0), (x1, y1) = pos[u], pos[v]
        w, h = _text_box(_edge_text(e), 8.0)
        w, h = w + 6, h + 4  # the white box around the text
        if e["kind"] == "dead_letter":
            spot = (x0 + 0.32, (y0 + y1) / 2)
            spots[(u, v)] = spot
            taken.append(box(*spot, w, h))
            continue
        base = 0.5 if e["kind"] != "deliver" else 0.55
        tries = [base] + [base + sign * step for step in (0.08, 0.16, 0.24, 0.32)
                          for sign in (1, -1) if 0.15 <= base + sign * step <= 0.85]
        for share in tries:
            spot = (x0 + (x1 - x0) * share, y0 + (y1 - y0) * share)
            if free(box(*spot, w, h)):
                break
        else:
            spot = (x0 + (x1 - x0) * base, y0 + (y1 - y0) * base)
        spots[(u, v)] = spot
        taken.append(box(*spot, w, h))
    return spots


def message_flow(res: Result, ax: Axes | None = None) -> Figure:
    """Where the messages went: publishers → exchanges → queues → consumers.

    What the learner sees: the run's messaging as a graph read left to
    right -- grey squares for the nodes that publish, orange diamonds for
    exchanges (with their type: direct, fanout, topic), sky-blue bars for
    broker queues (white ones for brokerless channels: a name the sender
    uses, no process behind it) and green circles for consumers.  A service
    that both publishes and consumes (a reply, a follow-on event) appears in
    the first column and the last.  An arrow is a path messages took; its
    width is how many (publishes, copies routed, deliveries), its number
    says so, with the deliveries that were redeliveries; a fanout exchange
    visibly makes one copy per queue.  A **reddish purple** dashed arc is
    dead-lettering from one queue to another.  A **vermillion ✕** beside a
    node counts the copies lost there, and why (``unroutable`` at an
    exchange, ``queue_full`` / ``broker_crash`` at a queue, ``hwm`` at a
    brokerless sender, ``consumer_crash`` at an auto-acking consumer, a
    network ``loss`` at a publisher).  Needs the trace.
    """
    f = _flow_data(res)
    pos, present = _flow_layout(f)
    n_cols = len(present)
    tallest = max([sum(1 for p in pos.values() if p[0] == c) for c in range(n_cols)] or [1])
    width = min(9.0, max(6.0, 1.9 * n_cols + 2.6))
    height = max(2.8, 1.1 * tallest + 1.7)
    fig, ax, _ = figure_for(ax, width, height, margins=(0.25, 0.25, 0.45, 0.3))
    k = reuse.keeper(ax, "message_flow")
    if k.fresh:
        for spine in ax.spines.values():
            spine.set_visible(False)
    rect = _rect_marker()
    max_n = max([e["messages"] for e in f.edges.values()] or [1])
    top = _ROW * (tallest - 1) / 2.0
    limits = (-0.6, max(n_cols - 1, 0) + 0.75, -top - 0.95, top + 0.85)
    box = ax.get_position()
    spots = _flow_label_spots(f, pos, present, limits,
                              (box.width * fig.get_figwidth() * 72,
                               box.height * fig.get_figheight() * 72))
    for (u, v), e in f.edges.items():
        (x0, y0), (x1, y1) = pos[u], pos[v]
        dead = e["kind"] == "dead_letter"
        lw = 0.8 + 5.0 * e["messages"] / max_n
        k.arrow(f"edge:{u}->{v}", (x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12,
                shrinkA=15, shrinkB=15, linewidth=lw,
                linestyle="--" if dead else "-",
                connectionstyle=f"arc3,rad={0.6 if dead else 0.0}",
                color=MESSAGE_COLORS["dead_letter"] if dead else "#8C8C8C", zorder=1,
                gid=f"flow_edge:{u}->{v}")
        text = _edge_text(e)
        lx, ly = spots[(u, v)]
        k.text(f"edge_label:{u}->{v}", lx, ly, text, ha="center", va="center", fontsize=8,
               color=MESSAGE_COLORS["dead_letter"] if dead else INK, zorder=4,
               bbox={"boxstyle": "round,pad=0.15", "facecolor": "white",
                     "edgecolor": "none", "alpha": 0.9})
    for nid, n in f.nodes.items():
        x, y = pos[nid]
        marker, size, face, edge = _NODE_LOOK[n["kind"]]
        k.line(f"node:{nid}", [x], [y], linestyle="none", marker=marker or rect,
               markersize=size, markerfacecolor=face, markeredgecolor=edge,
               markeredgewidth=1.6, zorder=3, gid=f"flow_node:{nid}")
        k.text(f"label:{nid}", x, y - 0.26, _node_text(n, present[int(x)]), ha="center", va="top",
               fontsize=8.5, color=INK, zorder=4, linespacing=1.1)
        if n["dropped"]:
            lost = sum(n["dropped"].values())
            why = ", ".join(f"{r} {c}" if len(n["dropped"]) > 1 else r
                            for r, c in sorted(n["dropped"].items(), key=lambda rc: -rc[1]))
            # under the node's label: clear of the arrows, which run at the node's height
            k.line(f"drop:{nid}", [x - 0.06], [y - 0.78], linestyle="none", marker="X",
                   markersize=8, color=OKABE_ITO["vermillion"], markeredgecolor="white",
                   markeredgewidth=0.6, zorder=5, gid=f"flow_drop:{nid}")
            k.text(f"drop_label:{nid}", x + 0.02, y - 0.78, f"{lost} lost: {why}",
                   ha="left", va="center", fontsize=7.5, color=OKABE_ITO["vermillion"],
                   zorder=5)
    for c, kind_col in enumerate(present):
        header = _HEADERS[kind_col]
        if kind_col == 1 and any(p[0] == c and f.nodes[nid]["kind"] == "channel"
                                 for nid, p in pos.items()):
            header = "fanning out" if not any(n["kind"] == "exchange"
                                              for n in f.nodes.values()) else \
                "exchanges and channels"
        k.text(f"header:{c}", float(c), top + 0.5, header, ha="center",
               va="bottom", fontsize=8.5, color="#666666", style="italic")
    if not f.nodes:
        _no_data(k, ax, "no messages were published in this run" + _why_empty(res))
    ax.set_xlim(limits[0], limits[1])
    ax.set_ylim(limits[2], limits[3])
    ax.set_xticks([])
    ax.set_yticks([])
    k.text("caption", 0.0, 0.0, "messages flow left to right · arrow width = messages",
           transform=ax.transAxes, ha="left", va="bottom", fontsize=8, color="#666666")
    s = data.summary(res)
    right = (f"{s['messages_published']} published · {s['messages_consumed']} consumed · "
             f"{s['messages_lost']} lost" if "messages_published" in s else "")
    set_titles(ax, "Message flow through the channels", right)
    pin_axis_labels(ax)
    k.finish()
    return fig


# =====================================================================================
# the sequence diagram, with channels as lifelines
# =====================================================================================
@dataclass
class _Net:
    """The network messages of a run, by id (from ``trace.messages``)."""

    src: dict[int, str] = field(default_factory=dict)
    dst: dict[int, str] = field(default_factory=dict)
    kind: dict[int, str] = field(default_factory=dict)
    trace: dict[int, Any] = field(default_factory=dict)
    corr: dict[int, Any] = field(default_factory=dict)
    sent: dict[int, float] = field(default_factory=dict)
    end: dict[int, tuple[str, float, str]] = field(default_factory=dict)  # event, time, reason


def _net(res: Result) -> _Net:
    def make() -> _Net:
        from simcomm.engine.trace import MESSAGE_COLUMNS

        i = {c: MESSAGE_COLUMNS.index(c) for c in ("time", "event", "message_id", "kind",
                                                   "source", "dest", "trace_id", "reason",
                                                   "correlation_id")}
        n = _Net()
        for row in res.world.trace.messages:
            mid = row[i["message_id"]]
            if row[i["event"]] == "send":
                n.src[mid] = str(row[i["source"]])
                n.dst[mid] = str(row[i["dest"]])
                n.kind[mid] = str(row[i["kind"]])
                n.trace[mid] = row[i["trace_id"]]
                n.corr[mid] = row[i["correlation_id"]]
                n.sent[mid] = float(row[i["time"]])
            else:
                n.end[mid] = (str(row[i["event"]]), float(row[i["time"]]),
                              str(row[i["reason"]] or ""))
        return n
    return data.cached(res, "mq_net", make)  # type: ignore[no-any-return]


@dataclass
class _Seq:
    """What the sequence diagram draws, before any drawing."""

    arrows: list[tuple[str, str, float, str, float, str, int, str]] = field(
        default_factory=list)  # key, src, t0, dst, t1, style, story, note
    bars: list[tuple[str, float, float, str]] = field(default_factory=list)  # lane, t0, t1, kind
    drops: list[tuple[str, str, float, str, int]] = field(default_factory=list)
    labels: list[tuple[str, str, float, str, str]] = field(default_factory=list)
    channels: dict[str, str] = field(default_factory=dict)  # lifeline -> kind word
    lanes: dict[str, None] = field(default_factory=dict)   # in order of first appearance


#: What the diagram draws messages with: (arrow style, line style, width, colour or None
#: for the story's colour, legend text).
_SEQ_STYLES: dict[str, tuple[str, str, float, str | None, str]] = {
    "publish": ("-|>", "-", 1.3, None, "message: publish, route, deliver (solid)"),
    "route": ("-|>", "-", 1.0, None, ""),
    "deliver": ("-|>", "-", 1.3, None, ""),
    "request": ("-|>", "-", 1.1, None, "request (solid), reply (dashed)"),
    "reply": ("->", "--", 1.1, None, ""),
    "ack": ("->", ":", 0.9, MESSAGE_COLORS["control"], "ack / nack to the broker (dotted)"),
    "dead_letter": ("-|>", "--", 1.2, MESSAGE_COLORS["dead_letter"], "dead-lettered"),
    "inflight": ("-", ":", 1.1, None, "still in flight at the end"),
    "lost": ("-", "-", 1.1, None, ""),
}

_SEQ_CYCLE = (OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"],
              OKABE_ITO["reddish_purple"], OKABE_ITO["orange"], OKABE_ITO["sky_blue"],
              OKABE_ITO["black"])


def _stories(res: Result, first: int, since: float) -> tuple[str, list[Any], dict[int, int]]:
    """The stories to draw and which publishes belong to each.

    A story starts with a user request (a run with clients) or with a
    message published outside any handler (a run without).  A publish
    belongs to the story of what its node was handling when it published:
    a delivery (between its ``deliver`` and its handler finishing) or a
    request (between its arrival and the node's reply); a publish whose
    network message carries a trace id belongs to that request.  Returns
    ``(mode, chosen story keys, {message_id: story index})``.
    """
    net = _net(res)
    brokers = set(_brokers(res))
    pubs: list[tuple[float, int, str]] = []
    seen: set[int] = set()
    for row in _mq(res):
        if row[1] == "publish" and row[2] not in seen:
            seen.add(row[2])
            pubs.append((float(row[0]), row[2], str(row[4])))
    rq = res.requests
    mode = "requests" if len(rq) else "messages"
    # the requests each node served, and when: from a request's arrival to its reply
    replied: dict[Any, float] = {}
    for mid, corr in net.corr.items():
        if corr is not None and net.kind.get(mid) == "reply":
            replied.setdefault(corr, net.sent[mid])
    serving: dict[str, list[tuple[float, float, Any]]] = {}
    for mid, kind in net.kind.items():
        tr = net.trace.get(mid)
        end = net.end.get(mid)
        if (tr is None or tr is pd.NA or kind in ("reply", "control") or end is None
                or end[0] != "deliver" or net.dst[mid] in brokers):
            continue
        serving.setdefault(net.dst[mid], []).append((end[1], replied.get(mid, math.inf), tr))
    starts = {}
    for node, spans in serving.items():
        spans.sort(key=lambda s: s[0])
        starts[node] = [s[0] for s in spans]

    def served_at(node: str, t: float) -> Any:
        """The request ``node`` began serving last before ``t`` and still served."""
        spans = serving.get(node)
        if not spans:
            return None
        i = bisect.bisect_right(starts[node], t) - 1
        for t0, t1, trace in reversed(spans[max(0, i - 64):i + 1]):
            if t0 <= t <= t1:
                return ("req", int(trace))
        return None

    # one pass in time order: what each node holds when it publishes (a handler
    # publishes before its message is recorded consumed)
    story_of: dict[int, Any] = {}
    holding: dict[str, dict[tuple[int, str], float]] = {}  # node -> {copy: delivered at}
    for t, ev, mid, ch, node, _ in _mq(res):
        if ev == "publish":
            if mid in story_of:
                continue
            tr = net.trace.get(mid)
            key: Any = None
            if tr is not None and tr is not pd.NA:
                key = ("req", int(tr))
            else:
                held = holding.get(node)
                if held:  # the delivery it took last
                    parent = max(held.items(), key=lambda kv: kv[1])[0][0]
                    key = story_of.get(parent)
                if key is None:
                    key = served_at(str(node), float(t))
            story_of[mid] = key if key is not None else ("msg", mid)
        elif ev == "deliver":
            holding.setdefault(node, {})[(mid, ch)] = float(t)
        elif ev in ("consume", "ack", "nack"):
            mine = holding.get(node)
            if mine:
                mine.pop((mid, ch), None)
        elif ev in ("requeue", "dead_letter", "drop"):
            for mine in holding.values():
                mine.pop((mid, ch), None)
    if mode == "requests":
        chosen_rq = rq[rq["start"] >= since].head(first)
        chosen = [("req", int(r)) for r in chosen_rq["request_id"]]
    else:
        roots = [(t, mid) for t, mid, _ in pubs if story_of[mid] == ("msg", mid) and t >= since]
        chosen = [("msg", mid) for _, mid in roots[:first]]
    index = {key: i for i, key in enumerate(chosen)}
    return mode, chosen, {mid: index[key] for mid, key in story_of.items() if key in index}


def _sequence_data(res: Result, first: int, since: float, acks: bool) -> tuple[str, list[Any],
                                                                              _Seq]:
    return data.cached(res, f"mq_sequence:{first}:{since!r}:{acks}",  # type: ignore[no-any-return]
                       lambda: _make_sequence(res, first, since, acks))


def _lifelines(res: Result, first: int = 4, since: float = 0.0, acks: bool = True,
               **_: Any) -> tuple[str, ...]:
    """The lifelines :func:`message_sequence` draws, left to right (what sets
    its figure's width); the arguments as there."""
    _check_sequence_args(first, since, acks, True)
    return tuple(_sequence_data(res, int(first), float(since), acks)[2].lanes)


def _check_sequence_args(first: object, since: object, acks: object, compress: object) -> None:
    if not is_whole(first) or int(first) < 1:  # type: ignore[call-overload]
        raise ParamError("first", first, "a whole number of requests or messages >= 1")
    if not (is_real(since) and 0 <= float(since) < math.inf):  # type: ignore[arg-type]
        raise ParamError("since", since, "a time in seconds >= 0")
    _check_flag("acks", acks)
    _check_flag("compress", compress)


def _make_sequence(res: Result, first: int, since: float, acks: bool) -> tuple[str, list[Any],
                                                                              _Seq]:
    mode, chosen, member = _stories(res, first, since)
    net = _net(res)
    brokers = _brokers(res)
    consumers = _consumer_nodes(res)
    sq = _Seq()
    multi = len(brokers) > 1

    def lane(name: str) -> str:
        sq.lanes.setdefault(name, None)
        return name

    def channel(b: str | None, name: str, word: str) -> str:
        label = name or "(default exchange)"
        lid = f"⟨{b}/{label}⟩" if (multi and b) else f"⟨{label}⟩"
        sq.channels[lid] = word
        return lane(lid)

    # deliveries and acks on the network, to find when each left its sender
    deliveries: dict[tuple[str, float], list[int]] = {}
    controls: dict[tuple[str, float], float] = {}
    pub_ids = {row[2] for row in _mq(res) if row[1] == "publish"}
    for mid, (ev, t, _) in net.end.items():
        if ev != "deliver":
            continue
        if net.kind[mid] == "control":
            if net.dst[mid] in brokers:
                controls.setdefault((net.src[mid], t), net.sent[mid])
        elif net.dst[mid] in consumers and (net.src[mid] in brokers or mid in pub_ids):
            deliveries.setdefault((net.dst[mid], t), []).append(mid)
    for ids in deliveries.values():
        ids.sort()
    mq_ids: set[int] = set(pub_ids)
    by_mid: dict[int, list[tuple]] = {}
    for row in _mq(res):
        if row[1] == "deliver":
            waiting_ids = deliveries.get((str(row[4]), float(row[0])))
            if waiting_ids:
                nid = waiting_ids.pop(0)
                mq_ids.add(nid)
                row = (*row, net.sent[nid])
            else:
                row = (*row, float(row[0]))
        if row[2] in member:
            by_mid.setdefault(row[2], []).append(row)
    until = res.until

    def bar(lid: str, t0: float, t1: float, kind: str) -> None:
        if t1 > t0:
            sq.bars.append((lid, t0, t1, kind))

    for mid in sorted(by_mid, key=lambda m: by_mid[m][0][0]):
        story = member[mid]
        events = by_mid[mid]
        if events[0][1] != "publish":
            continue
        t_p, _, _, ch, producer, _ = events[0][:6]
        ch = str(ch)
        x_id = lane(str(producer))
        dest = net.dst.get(mid)
        b = dest if dest in brokers else None
        on_queue = b is not None and (ch in brokers[b].queues or any(
            e[1] == "enqueue" and e[3] == ch and e[5] != "dead_letter" for e in events))
        target = (channel(b, ch, "queue" if on_queue else "exchange") if b is not None
                  else channel(None, ch, "channel"))
        if mode == "messages" and str(story) not in {lb[4] for lb in sq.labels}:
            sq.labels.append((x_id, f"#{story + 1}", float(t_p), "start", str(story)))
        end = net.end.get(mid)
        if b is None:  # brokerless: the channel is the sender's own name for its peers
            sq.arrows.append((f"publish:{mid}", x_id, t_p, target, t_p, "publish", story, ""))
        elif end is None:
            sq.arrows.append((f"publish:{mid}", x_id, t_p, target, until, "inflight", story,
                              ""))
        elif end[0] == "drop":
            sq.arrows.append((f"publish:{mid}", x_id, t_p, target, end[1], "lost", story, ""))
            sq.drops.append((f"publish:{mid}", target, end[1], end[2], story))
        else:
            sq.arrows.append((f"publish:{mid}", x_id, t_p, target, end[1], "publish", story,
                              ""))
        where: dict[str, str] = {}          # queue name -> its lane
        waiting: dict[str, float] = {}      # queue lane -> ready since
        working: dict[tuple[str, str], float] = {}  # (queue, consumer) -> handler since
        dead_from: str | None = None
        for j, row in enumerate(events[1:]):
            t, ev, _, qch, node, detail = row[:6]
            t = float(t)
            qch, node = str(qch), str(node)
            key = f"{ev}:{mid}:{j}"
            if ev == "enqueue":
                lq = channel(node if node in brokers else b, qch, "queue")
                where[qch] = lq
                if detail == "dead_letter" and dead_from is not None:
                    sq.arrows.append((key, dead_from, t, lq, t, "dead_letter", story,
                                      "dead-lettered"))
                elif lq != target:
                    sq.arrows.append((key, target, t, lq, t, "route", story, ""))
                waiting[lq] = t
            elif ev == "pipe":  # brokerless: the copy for one subscription, in a pipe
                lq = channel(None, qch, "channel")
                if where.get(qch) != lq:
                    where[qch] = lq
                    if lq != target:
                        sq.arrows.append((key, target, t, lq, t, "route", story, ""))
                waiting.setdefault(lq, t)
            elif ev == "deliver":
                src = where.get(qch) or channel(None, qch, "channel")
                t_s = float(row[6])
                if src in waiting:
                    bar(src, waiting.pop(src), t_s, "wait")
                sq.arrows.append((key, src, t_s, lane(node), t, "deliver", story,
                                  "redelivered" if detail == "redelivered" else ""))
                working[(qch, node)] = t
            elif ev == "consume":
                t0 = working.pop((qch, node), None)
                if t0 is not None:
                    bar(node, t0, t, "work")
            elif ev in ("ack", "nack"):
                if detail == "auto":
                    continue
                t_s = controls.get((node, t), t)
                t0 = working.pop((qch, node), None)
                if t0 is not None:  # a failed handler: it ended when the nack left
                    bar(node, t0, t_s, "work")
                if acks:
                    sq.arrows.append((key, lane(node), t_s, where.get(qch, target), t, "ack",
                                      story, "nack" if ev == "nack" else ""))
            elif ev == "requeue":
                lq = where.get(qch, target)
                for (q2, k2), t0 in list(working.items()):
                    if q2 == qch:  # the consumer's connection closed: its work is void
                        bar(k2, t0, t, "work")
                        del working[(q2, k2)]
                waiting[lq] = t
                sq.drops.append((key, lq, t, f"requeued: {detail}", -1))
            elif ev == "dead_letter":
                lq = where.get(qch, target)
                if lq in waiting:
                    bar(lq, waiting.pop(lq), t, "wait")
                dead_from = lq
            elif ev == "drop":
                if node in brokers:
                    lid = where.get(qch, target)
                    if lid in waiting:
                        bar(lid, waiting.pop(lid), t, "wait")
                else:
                    lid = lane(node)
                sq.drops.append((key, lid, t, str(detail), story))
        for lq, t0 in waiting.items():
            bar(lq, t0, until, "wait")
        for (_, node), t0 in working.items():
            bar(node, t0, until, "work")
    if mode == "requests":  # the synchronous messages of the chosen requests
        traces = {key[1]: i for i, key in enumerate(chosen)}
        replies: dict[Any, float] = {}
        for mid, corr in net.corr.items():
            if corr is not None and net.kind[mid] == "reply":
                replies.setdefault(corr, net.sent[mid])
        rq = res.requests.set_index("request_id")
        for rid, i in traces.items():
            client = str(rq.at[rid, "client"])
            lane(client)
            sq.labels.append((client, f"{rid}", float(rq.at[rid, "start"]), "start", str(i)))
            outcome = str(rq.at[rid, "outcome"])
            end_t = float(rq.at[rid, "end"])
            if outcome != "pending" and np.isfinite(end_t):
                sq.labels.append((client, f"{rid}'" + ("" if outcome == "ok"
                                                        else f" {outcome}"),
                                  end_t, outcome, str(i)))
        for mid in sorted(net.kind):
            tr = net.trace.get(mid)
            if (tr is None or tr is pd.NA or int(tr) not in traces or mid in mq_ids
                    or net.kind[mid] == "control" or net.src[mid] in brokers
                    or net.dst[mid] in brokers):
                continue
            story = traces[int(tr)]
            src, dst = lane(net.src[mid]), lane(net.dst[mid])
            t0 = net.sent[mid]
            reply = net.kind[mid] == "reply"
            end = net.end.get(mid)
            if end is None:
                sq.arrows.append((f"net:{mid}", src, t0, dst, until, "inflight", story, ""))
            elif end[0] == "drop":
                sq.arrows.append((f"net:{mid}", src, t0, dst, end[1], "lost", story, ""))
                sq.drops.append((f"net:{mid}", dst, end[1], end[2], story))
            else:
                sq.arrows.append((f"net:{mid}", src, t0, dst, end[1],
                                  "reply" if reply else "request", story, ""))
                if not reply:
                    bar(dst, end[1], replies.get(mid, until), "work")
    # lifelines left to right as the messages first reach them (clients first)
    order: dict[str, None] = {lb[0]: None for lb in sq.labels if mode == "requests"}
    for a in sorted(sq.arrows, key=lambda a: (a[2], a[4])):
        order.setdefault(a[1], None)
        order.setdefault(a[3], None)
    for name in sq.lanes:
        order.setdefault(name, None)
    sq.lanes = order
    return mode, chosen, sq


def message_sequence(res: Result, first: int = 4, ax: Axes | None = None, *,
                     since: float = 0.0, acks: bool = True, compress: bool = True) -> Figure:
    """A sequence diagram whose lifelines include the channels between the nodes.

    What the learner sees: time running down; one lifeline per node (grey,
    dashed) and one per **channel** -- an exchange, a queue, a reply
    channel, a brokerless channel -- drawn as a **sky-blue band** with the
    channel's name and kind on top, placed where the messages first cross
    it.  A message's life is a chain of arrows in one colour: published by
    its node into an exchange or a queue (the slope is the network's
    delay), routed by the exchange to each queue bound to it (a fanout
    makes one arrow per queue), delivered from the queue to a consumer, and
    acknowledged back (a **dotted grey** arrow: a control message; a nack
    says so).  A **darker stretch of a channel's band** is the message
    waiting in that queue -- while its consumer is down, or busy -- and a
    bar on a node's lifeline its handler working.  A redelivery, a
    dead-lettering (**reddish purple**, dashed) and a requeue are labelled
    where they happen; a message lost is a **vermillion ✕** with the
    reason.  In a run with users, the ``first`` user requests are drawn with
    their synchronous request (solid) and reply (dashed) and every message
    they caused: a reply published by a consumer while it handled a
    command belongs to that command's request; without users, the first
    ``first`` messages published at or after ``since`` (and what their
    handlers published).  Requests are numbered by id beside their client
    (``7`` out, ``7'`` back); messages ``#1``, ``#2``, ... beside their
    publisher.  Long quiet stretches are drawn short, as a grey band saying
    how long they were (``compress``).  Needs the trace.
    """
    from simcomm.viz.sequence import _compress_gaps, spread_labels

    _check_sequence_args(first, since, acks, compress)
    mode, chosen, sq = _sequence_data(res, int(first), float(since), acks)
    lanes = list(sq.lanes)
    names = [f"{n.strip('⟨⟩')}\n{sq.channels[n]}" if n in sq.channels else n for n in lanes]
    width = min(9.0, max(8.2, 1.0 * len(lanes) + 3.2))
    rows = _name_rows(names, [n in sq.channels for n in lanes], width - 3.05)
    n_rows = max(rows, default=0) + 1
    fig, ax, _ = figure_for(ax, width, 6.4,
                            margins=(0.85, 2.2, 0.85 + _ROW_IN * (n_rows - 1), 0.2))
    k = reuse.keeper(ax, "message_sequence")
    xpos = {n: float(i) for i, n in enumerate(lanes)}

    def colour(story: int) -> str:
        return _SEQ_CYCLE[story % len(_SEQ_CYCLE)] if story >= 0 else INK

    times = np.array([t for a in sq.arrows for t in (a[2], a[4])]
                     + [lb[2] for lb in sq.labels] + [d[2] for d in sq.drops]
                     + [t for b in sq.bars for t in (b[1], b[2])], dtype=float)
    times = times[np.isfinite(times)]
    t_lo = float(times.min()) if times.size else 0.0
    t_hi = float(times.max()) if times.size else 1.0
    if not t_hi > t_lo:
        t_hi = t_lo + 1e-3
    # lifelines: nodes dashed grey, channels a sky-blue band
    band_face = opaque(MESSAGE_COLORS["queue"], 0.22)
    for n, x in xpos.items():
        if n in sq.channels:
            k.polys(f"lane:{n}", [[(x - 0.09, t_lo), (x + 0.09, t_lo), (x + 0.09, t_hi),
                                   (x - 0.09, t_hi)]], facecolor=band_face,
                    edgecolor="none", zorder=0.4)
        else:
            k.line(f"lifeline:{n}", [x, x], [t_lo, t_hi], color=GREY, linewidth=1.0,
                   linestyle=(0, (4, 3)), zorder=0.5)
    drawn: set[str] = set()
    for key, src, t0, dst, t1, style, story, remark in sq.arrows:
        x0, x1 = xpos[src], xpos[dst]
        head, ls, lw, fixed, _ = _SEQ_STYLES[style]
        if style == "lost":
            x1 = x0 + (x1 - x0) * 0.6
        elif style == "inflight":
            x1 = x0 + (x1 - x0) * 0.5
        drawn.add({"route": "publish", "deliver": "publish", "reply": "request",
                   "lost": "publish"}.get(style, style))
        k.arrow(key, (x0, t0), (x1, t1), arrowstyle=head, mutation_scale=9, linestyle=ls,
                linewidth=lw, color=fixed or colour(story), shrinkA=0, shrinkB=0, zorder=2,
                gid=f"seq:{style}:{key}")
        if remark:
            k.text(f"note:{key}", (x0 + x1) / 2, (t0 + t1) / 2, remark, fontsize=7,
                   color=fixed or colour(story), ha="center", va="bottom", zorder=4,
                   bbox={"boxstyle": "round,pad=0.1", "facecolor": "white",
                         "edgecolor": "none", "alpha": 0.8})
    waits = [b for b in sq.bars if b[3] == "wait"]
    works = [b for b in sq.bars if b[3] == "work"]
    if waits:
        k.polys("waits", [[(xpos[lid] - 0.09, t0), (xpos[lid] + 0.09, t0),
                           (xpos[lid] + 0.09, t1), (xpos[lid] - 0.09, t1)]
                          for lid, t0, t1, _ in waits],
                facecolor=opaque(MESSAGE_COLORS["ready"], 0.55), edgecolor="none", zorder=1)
        drawn.add("wait")
    if works:
        k.polys("works", [[(xpos[lid] - 0.035, t0), (xpos[lid] + 0.035, t0),
                           (xpos[lid] + 0.035, t1), (xpos[lid] - 0.035, t1)]
                          for lid, t0, t1, _ in works],
                facecolor="#F2F2F2", edgecolor=GREY, linewidth=0.6, zorder=1)
        drawn.add("work")
    drop_x: list[float] = []
    drop_y: list[float] = []
    notes: list[Text] = []
    for key, lid, t, reason, _story in sq.drops:
        requeue = reason.startswith("requeued")
        if not requeue:
            drop_x.append(xpos[lid])
            drop_y.append(t)
        # a requeue to the left of its queue, a loss to the right of its ✕
        notes.append(k.text(f"drop_note:{key}", xpos[lid] + (-0.12 if requeue else 0.12), t,
                            reason, fontsize=7,
                            color=INK if requeue else OKABE_ITO["vermillion"],
                            ha="right" if requeue else "left", va="center", zorder=4))
    if drop_x:
        k.line("drops", drop_x, drop_y, linestyle="none", marker="X", markersize=8,
               color=OKABE_ITO["vermillion"], markeredgecolor="white", markeredgewidth=0.6,
               zorder=3)
    columns: dict[str, list[Text]] = {}
    longest = 0
    for i, (lid, tag, at, outcome, _) in enumerate(sq.labels):
        bad = outcome not in ("start", "ok")
        columns.setdefault(lid, []).append(k.text(
            f"label:{i}", xpos[lid] - 0.06, at, tag, fontsize=7.5, ha="right", va="center",
            color=OKABE_ITO["vermillion"] if bad else INK,
            fontweight="bold" if bad else "normal"))
        longest = max(longest, len(tag) + (2 if bad else 0))
    if not sq.arrows:
        _no_data(k, ax, "no messages or requests to draw in this run" + _why_empty(res))
    pad = 0.04 * (t_hi - t_lo)
    # messages take milliseconds, the gaps between them seconds: shorten every gap
    # longer than a tenth of the time shown
    compressed = (_compress_gaps(ax, k, times, t_lo, t_hi, share=0.1)
                  if compress and times.size else [])
    if not compressed:
        if ax.get_yscale() != "linear":
            ax.set_yscale("linear")
            ax.yaxis.set_major_locator(MaxNLocator())
        ax.set_ylim(t_hi + pad, t_lo - pad)
    width_in = ax.get_position().width * fig.get_figwidth()
    need_in = 0.15 + max(longest, 3) * 0.6 * 7.5 / 72
    x_right = max(len(lanes) - 1, 0) + 0.45
    room = max(0.7, need_in * (x_right + 0.06) / max(width_in - need_in, 0.5))
    ax.set_xlim(-room, x_right)
    if k.fresh:
        ax.tick_params(axis="x", length=0)
        for side in ("right", "bottom", "top"):
            ax.spines[side].set_visible(False)
    ax.set_xticks([])
    # each lifeline's name above it, in the row _name_rows gave it (channels' names
    # blue, in italics): names too long to sit side by side climb a row
    height_in = ax.get_position().height * fig.get_figheight()
    above = blended_transform_factory(ax.transData, ax.transAxes)
    for n, name, row in zip(lanes, names, rows, strict=True):
        channel_lane = n in sq.channels
        k.text(f"lane_name:{n}", xpos[n], 1.0 + (_NAME_PAD + row * _ROW_IN) / height_in,
               name, transform=above, ha="center", va="bottom", fontsize=_NAME_SIZE,
               color=OKABE_ITO["blue"] if channel_lane else INK,
               fontstyle="italic" if channel_lane else "normal", clip_on=False,
               gid=f"lifeline_name:{n}")
    ax.set_ylabel("time (s), running down" + ("; quiet gaps shortened" if compressed else ""))
    n_chosen = len(chosen)
    plural = "s" if n_chosen != 1 else ""
    what = (f"{n_chosen} request{plural} and the messages they caused"
            if mode == "requests" else f"{n_chosen} message{plural} and what they caused")
    lift = (0.4 + _ROW_IN * (n_rows - 1)) / max(height_in, 0.5)
    ax.set_title(f"Message sequence: {what}"
                 + (f" from t = {float(since):g} s" if since else "")
                 + "; one colour each", loc="left", fontsize=11, y=1.0 + lift)
    pin_axis_labels(ax)
    k.finish()
    for col in columns.values():
        spread_labels(col)
    by_lane: dict[float, list[Text]] = {}
    for note in notes:
        by_lane.setdefault(round(note.get_position()[0], 3), []).append(note)
    for col in by_lane.values():
        spread_labels(col)
    _sequence_legend(ax, drawn, len(drop_x), bool(sq.channels))
    return fig


#: The lifelines' names: their size (points), their distance above the axes and the
#: height of a row of them (inches: a row holds a channel's two lines).
_NAME_SIZE = 8.0
_NAME_PAD = 0.05
_ROW_IN = 0.35
_NAME_WIDTHS: dict[tuple[str, bool], float] = {}


def _name_width(text: str, italic: bool) -> float:
    """Inches the widest line of ``text`` takes at :data:`_NAME_SIZE` points."""
    width = _NAME_WIDTHS.get((text, italic))
    if width is None:
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import text_to_path

        prop = FontProperties(size=_NAME_SIZE, style="italic" if italic else "normal")
        width = _NAME_WIDTHS[(text, italic)] = max(
            text_to_path.get_text_width_height_descent(line, prop, ismath=False)[0]
            for line in text.split("\n")) / 72.0
    return width


def _name_rows(names: Sequence[str], italic: Sequence[bool], width_in: float) -> list[int]:
    """The row each lifeline's name goes in (0 just above the axes, 1 above
    that ...): the lowest where it clears, by a little, every name already in
    that row.  The lifelines stand one apart on an axes ``width_in`` inches
    wide, with room on the left for the longest request label a run may have
    (so that the rows, and the figure's height above the axes, depend on the
    lifelines alone: a redraw keeps them)."""
    n = len(names)
    x_right = max(n - 1, 0) + 0.45
    need_in = 0.15 + 14 * 0.6 * 7.5 / 72  # a request label of 14 characters: "123' timeout"
    room = max(0.7, need_in * (x_right + 0.06) / max(width_in - need_in, 0.5))
    spacing = width_in / (x_right + room)  # inches from one lifeline to the next
    right: list[float] = []  # in each row, the right edge of its names so far
    rows = []
    for i, (name, slanted) in enumerate(zip(names, italic, strict=True)):
        half = _name_width(name, slanted) / 2
        x = i * spacing
        row = next((r for r, edge in enumerate(right) if x - half >= edge + 0.08), len(right))
        if row == len(right):
            right.append(-math.inf)
        right[row] = max(right[row], x + half)
        rows.append(row)
    return rows


def _sequence_legend(ax: Axes, drawn: set[str], drops: int, channels: bool) -> None:
    handles: list[Any] = []
    for key in ("publish", "request", "ack", "dead_letter", "inflight"):
        if key in drawn:
            _, ls, lw, fixed, text = _SEQ_STYLES[key]
            handles.append(Line2D([], [], color=fixed or INK, linestyle=ls,  # type: ignore[arg-type]
                                  linewidth=lw + 0.2, label=text))
    if channels:
        handles.append(Patch(facecolor=opaque(MESSAGE_COLORS["queue"], 0.22),
                             edgecolor="none", label="a channel (exchange, queue)"))
    if "wait" in drawn:
        handles.append(Patch(facecolor=opaque(MESSAGE_COLORS["ready"], 0.55),
                             edgecolor="none", label="a message waiting in a queue"))
    if "work" in drawn:
        handles.append(Patch(facecolor="#F2F2F2", edgecolor=GREY, linewidth=0.6,
                             label="a node working on it"))
    if drops:
        handles.append(Line2D([], [], linestyle="none", marker="X", markersize=8,
                              color=OKABE_ITO["vermillion"], markeredgecolor="white",
                              label=f"lost ({drops})"))
    reuse.legend(ax, handles, [wrap_label(h.get_label(), 24) for h in handles],
                 loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8,
                 frameon=False)


# =====================================================================================
# availability of the user operation (the book's §3.4)
# =====================================================================================
def _percent_axis(ax: Axes, bottom: float, top: float = 1.0) -> None:
    """Round percentage ticks from ``bottom`` up to ``top`` (fractions), as
    many decimals as their step needs."""
    step = data.nice_step((top - bottom) / 5.0)
    ticks = [v for v in np.arange(top, bottom - 1e-9, -step)[::-1] if v >= bottom - 1e-9]
    decimals = max(0, -math.floor(math.log10(step * 100) + 1e-9))
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=decimals))


def availability_windows(res: Result, bin: float | None = None) -> pd.DataFrame:
    """The user requests' availability in time windows, by the time each was sent.

    Index: the windows' start times (s; the last one ends at the end of the
    run).  Columns: ``finished`` (requests sent in the window that ended:
    pending ones are left out, as the summary's availability does),
    ``answered`` (of those, ``ok`` or a fallback's answer) and
    ``availability`` (answered / finished; NaN for a window with none).
    ``bin`` defaults to a round width holding about 20 requests (at least
    1/60 of the run).
    """
    if bin is not None and not (is_real(bin) and 0 < bin < math.inf):
        raise ParamError("bin", bin, "a window width in seconds > 0, or None to choose one")
    rq = res.requests
    done = rq[rq["outcome"] != "pending"]
    if bin is None:
        rate = len(done) / res.until if len(done) else 1.0
        bin = data.nice_step(min(max(res.until / 60.0, 20.0 / rate), res.until / 4.0))
    edges = _edges(res.until, bin)
    t = done["start"].to_numpy(dtype=float)
    ok = done["outcome"].isin(("ok", "fallback")).to_numpy()
    finished, _ = np.histogram(t, bins=edges)
    answered, _ = np.histogram(t[ok], bins=edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        avail = np.where(finished > 0, answered / np.maximum(finished, 1), math.nan)
    df = pd.DataFrame({"finished": finished, "answered": answered, "availability": avail},
                      index=pd.Index(edges[:-1], name="time"))
    df.attrs["bin"] = float(edges[1] - edges[0])
    return df


def availability_formula(res: Result) -> dict[str, Any] | None:
    """The product formula of the run's scenario, or None if it has none.

    A scenario module that defines ``formula(params)`` (the availability
    the book's product rule gives for the run's parameters) and
    ``required_nodes(params)`` (the nodes a user operation needs up) -- as
    ``create-order`` does -- gets ``{"value": ..., "nodes": (...),
    "text": "A(order-service-1) · A(broker)"}``.  Read from the
    parameters: nothing is run.
    """
    import sys

    params = getattr(res, "params", None)
    module = sys.modules.get(type(params).__module__) if params is not None else None
    fn = getattr(module, "formula", None)
    if params is None or not callable(fn):
        return None
    value = float(fn(params))
    nodes_fn = getattr(module, "required_nodes", None)
    nodes = tuple(str(n) for n in nodes_fn(params)) if callable(nodes_fn) else ()
    text = " · ".join(f"A({n})" for n in nodes) if nodes else "product formula"
    return {"value": value, "nodes": nodes, "text": text}


def availability_over_time(res: Result, bin: float | None = None, ax: Axes | None = None, *,
                           faults: bool = True) -> Figure:
    """Availability of the user operation in windows, beside the product formula.

    What the learner sees: a **bluish green step line**, the share of the
    user requests sent in each window that were answered (the operation was
    available to them; pending ones are left out), a **thin green line**
    the share over the whole run, and -- for a scenario with a product
    formula (``create-order``: ``A(order) · A(consumer) · A(restaurant)``
    for the synchronous design, ``A(order) · A(broker)`` for the
    asynchronous one) -- a **dashed black line** at what the formula says.
    Grey bands mark when a node was down.  Synchronously, every outage of
    any of the three services cuts a notch in the green line; with
    messaging only the order service's (and the broker's) do, and the
    consumer and restaurant services' outages pass without a mark: the
    commands wait in their queues.  Windows hold about 20 requests unless
    ``bin`` says otherwise (:func:`availability_windows`).
    """
    df = availability_windows(res, bin)
    _check_flag("faults", faults)
    fig, ax, _ = figure_for(ax, 9.0, 3.8, margins=(0.75, 2.35, 0.4, 0.55))
    k = reuse.keeper(ax, "availability_over_time")
    if k.fresh:
        style_axes(ax)
    edges = np.append(df.index.to_numpy(dtype=float), res.until)
    avail = df["availability"].to_numpy(dtype=float)
    k.stairs("windows", avail, edges, baseline=None, fill=False,
             edgecolor=FATE_COLORS["consumed"], linewidth=1.8, zorder=3,
             label=f"answered, per {df.attrs['bin']:g} s window")
    total = int(df["finished"].sum())
    overall = float(df["answered"].sum()) / total if total else math.nan
    if total:
        k.line("overall", [0.0, 1.0], [overall, overall], transform=ax.get_yaxis_transform(),
               color=opaque(FATE_COLORS["consumed"], 0.7), linewidth=1.0, zorder=2,
               label=f"measured over the run: {100 * overall:.2f} %")
    f = availability_formula(res)
    if f is not None:
        k.line("formula", [0.0, 1.0], [f["value"], f["value"]],
               transform=ax.get_yaxis_transform(), color=INK, linestyle="--", linewidth=1.4,
               zorder=4, label=f"formula {f['text']} = {100 * f['value']:.2f} %")
    if faults:
        fault_bands(ax, res, kinds=("down", "hung", "partition"))
    if not total:
        _no_data(k, ax, "no user request finished in this run: availability is "
                        "measured on user requests")
    finite = avail[np.isfinite(avail)]
    low = min(float(finite.min()) if finite.size else 1.0, f["value"] if f else 1.0)
    bottom = max(0.0, math.floor((low - 0.05) * 10) / 10)
    ax.set_ylim(bottom, 1.0 + (1.0 - bottom) * 0.04)
    _percent_axis(ax, bottom)
    ax.set_xlim(0, res.until)
    ax.set_xlabel("request sent (s)")
    ax.set_ylabel("requests answered")
    set_titles(ax, "Availability of the user operation over time",
               f"{total} finished requests")
    pin_axis_labels(ax)
    k.finish()
    _legend(ax)
    return fig


def _comparison_rows(table: Any) -> pd.DataFrame:
    """``table`` as rows of design, measured, formula, standard_error (NaN if none)."""
    allowed = ("a DataFrame with columns design, measured, formula (and optionally "
               "standard_error), a list of availability_report() dicts, or a dict "
               "design -> report")
    if isinstance(table, pd.DataFrame):
        rows = table.to_dict("records")
    elif isinstance(table, Mapping):
        rows = [{"design": d, **r} if isinstance(r, Mapping) else r
                for d, r in table.items()]
    elif isinstance(table, Iterable) and not isinstance(table, (str, bytes)):
        rows = list(table)
    else:
        raise ParamError("table", table, allowed)
    out = []
    for r in rows:
        if not isinstance(r, Mapping) or not {"design", "measured", "formula"} <= set(r):
            raise ParamError("table", table, allowed)
        values = []
        for name in ("measured", "formula"):
            v = r[name]
            if not is_real(v) or not 0.0 <= float(v) <= 1.0:
                raise ParamError(name, v, "an availability from 0 to 1")
            values.append(float(v))
        se = r.get("standard_error", math.nan)
        se = float(se) if is_real(se) and float(se) >= 0 else math.nan
        out.append((str(r["design"]), values[0], values[1], se))
    if not out:
        raise ParamError("table", table, allowed + ", with at least one design")
    return pd.DataFrame(out, columns=["design", "measured", "formula", "standard_error"])


def availability_comparison(table: Any, ax: Axes | None = None) -> Figure:
    """Measured availability beside the product formula, one pair of bars per design.

    ``table``: a DataFrame with columns ``design``, ``measured``,
    ``formula`` (and optionally ``standard_error``), or the dicts
    :func:`simcomm.scenarios.create_order.availability_report` returns (a
    list of them, or a dict design → report).  What the learner sees: per
    design a **bluish green** bar, the availability measured in its run
    (with a whisker of ±2 standard errors when the table gives one: how
    far chance alone moves it), and a **hatched** bar beside it, what the
    book's product formula says.  The y axis starts above zero to make a
    difference of a percentage point visible; the title says where.  The
    synchronous design's bars sit lower: it needs three services up at
    once, the asynchronous one only the order service and the broker.
    """
    df = _comparison_rows(table)
    fig, ax, _ = figure_for(ax, 7.5, 3.8, margins=(0.85, 2.35, 0.45, 0.55))
    k = reuse.keeper(ax, "availability_comparison")
    if k.fresh:
        style_axes(ax)
        ax.grid(False, axis="x")
    n = len(df)
    xs = np.arange(n, dtype=float)
    w = 0.36
    meas = df["measured"].to_numpy()
    form = df["formula"].to_numpy()
    se = df["standard_error"].to_numpy()
    lows = np.concatenate([meas - np.nan_to_num(2 * se), form])
    bottom = max(0.0, math.floor((float(lows.min()) - 0.01) * 100) / 100)
    highs = np.minimum(1.0, meas + np.nan_to_num(2 * se))  # the whiskers' tops
    top = float(max(highs.max(), form.max())) + (1.0 - bottom) * 0.12

    def bars(centres: np.ndarray, heights: np.ndarray) -> list[list[tuple[float, float]]]:
        return [[(c - w / 2, bottom), (c + w / 2, bottom), (c + w / 2, h), (c - w / 2, h)]
                for c, h in zip(centres, heights, strict=True)]

    k.polys("measured", bars(xs - w / 2 - 0.01, meas), facecolor=FATE_COLORS["consumed"],
            edgecolor="white", linewidth=0.5, zorder=2, label="measured in the run")
    k.polys("formula", bars(xs + w / 2 + 0.01, form), facecolor="white", edgecolor=INK,
            hatch="///", linewidth=0.8, zorder=2, label="product formula")
    if np.isfinite(se).any():
        ex: list[float] = []
        ey: list[float] = []
        cap = w / 6
        for x0, m, s in zip(xs - w / 2 - 0.01, meas, se, strict=True):
            if np.isfinite(s):
                lo, hi = max(bottom, m - 2 * s), min(1.0, m + 2 * s)
                ex += [x0, x0, math.nan, x0 - cap, x0 + cap, math.nan, x0 - cap, x0 + cap,
                       math.nan]
                ey += [lo, hi, math.nan, lo, lo, math.nan, hi, hi, math.nan]
        k.line("error", ex, ey, color=INK, linewidth=1.1, zorder=3,
               label="±2 standard errors (chance alone)")
    for i in range(n):  # each value above its bar, and above its whisker
        for j, (x0, v, up) in enumerate(((xs[i] - w / 2 - 0.01, meas[i], highs[i]),
                                         (xs[i] + w / 2 + 0.01, form[i], form[i]))):
            k.text(f"value:{i}:{j}", float(x0), float(max(v, up)) + (top - bottom) * 0.015,
                   f"{100 * v:.2f} %", ha="center", va="bottom", fontsize=8, color=INK,
                   zorder=4)
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylim(bottom, top)
    ax.set_xticks(list(xs), list(df["design"]), fontsize=9)
    _percent_axis(ax, bottom)
    ax.set_xlabel("design")
    ax.set_ylabel("availability" + (f" (axis from {100 * bottom:g} %)" if bottom > 0 else ""))
    set_titles(ax, "Availability: measured vs. the product formula")
    pin_axis_labels(ax)
    k.finish()
    _legend(ax)
    return fig
