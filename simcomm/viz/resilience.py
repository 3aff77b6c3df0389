"""Figures of partial failure: breakers, pools per endpoint, load against goodput.

Four views for the runs of issue 7's scenarios (``gateway``,
``retry-storm``), each drawn from a run's tables and each working -- and
saying what it cannot show -- for any run:

* :func:`breaker_states` -- per caller → callee edge, a strip of the
  circuit breaker's state over time (closed / open / half-open bands, from
  ``Result.breaker_events``) above what the edge's calls did: the share
  that failed (what the breaker judges) and the share short-circuited;
* :func:`outcomes_by_endpoint` -- :func:`~simcomm.viz.outcomes_over_time`
  for each endpoint of a gateway in its own row, so a hung order service
  visibly takes getCustomer down with it (or, with a bulkhead, does not);
* :func:`pool_by_endpoint` -- an instance's busy workers split by the
  endpoint (or downstream service) of the call each one is waiting on;
* :func:`load_vs_goodput` -- user requests sent, calls reaching each
  service (retries included) and goodput per second, each service's
  capacity, and the amplification factor over time: a retry storm's load
  stays above capacity after its trigger is gone.

The data each draws is a function too (:func:`breaker_intervals`,
:func:`edge_call_rates`, :func:`endpoint_occupancy`, :func:`load_rates`),
so notebooks and tests read the same numbers the figures show.  Every
figure draws through :class:`~simcomm.viz.reuse.Keeper`: given the axes
it drew before (``axes=``, as :func:`simcomm.viz.redraw` does), it updates
its artists in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator

from simcomm._checks import is_real, is_whole
from simcomm.analysis import metrics
from simcomm.errors import ParamError
from simcomm.viz import data, reuse
from simcomm.viz.style import (
    BREAKER_LABELS,
    BREAKER_STATES,
    BREAKER_STYLES,
    GREY,
    INK,
    OUTCOME_COLORS,
    OUTCOMES,
    POOL_COLORS,
    SERIES_COLORS,
    new_figure,
    opaque,
    pin_axis_labels,
    root_figure,
    set_titles,
    style_axes,
    wrap_label,
)
from simcomm.viz.timeseries import (
    _edges,
    _endpoints,
    _pool_ticks,
    _queue_axes,
    fault_bands,
    outcomes_over_time,
)

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simcomm.result import Result

__all__ = ["breaker_intervals", "breaker_states", "call_edges", "edge_call_rates",
           "endpoint_occupancy", "load_rates", "load_vs_goodput", "outcomes_by_endpoint",
           "pool_by_endpoint", "service_capacity"]

#: An edge: (caller instance, callee service), as ``protect`` declares them
#: and ``Result.breaker_events`` names them.
Edge = tuple[str, str]

#: Outcomes of a call that are answers (a breaker records them as successes).
_ANSWERS = ("ok", "fallback")
#: Drop reasons that stop a message before it reaches the instance (the
#: network's, or nothing listening): every other drop of a request is a
#: turning away at the door, and counts as reaching it (``Instance.arrivals``).
_NOT_REACHED = ("loss", "partition", "no_such_node", "node_down")
#: Fewest calls a bin needs for its failure share to be drawn.
MIN_CALLS = 3
#: Marks the figures these functions made themselves (their suptitle is theirs).
_OWNER = "_simcomm_owner"


# -- data -------------------------------------------------------------------------------
def _service(res: Result, node: str) -> str:
    """The service a node belongs to (its own name for a node without one)."""
    n = res.world.nodes.get(node)
    return str(getattr(n, "service", None) or node)


def _attempts(res: Result) -> dict[str, np.ndarray]:
    """The attempts table as numpy arrays: ``time``, ``trace_id`` (float, NaN if
    none), ``caller``, ``callee`` (the callee's *service*), ``outcome``,
    ``wait_before`` and ``end`` (NaN for none).

    Read from the trace's tuples (columns as ``ATTEMPT_COLUMNS`` says):
    several times faster than building ``Result.attempts`` with pandas, on
    every dashboard run.
    """
    def make() -> dict[str, np.ndarray]:
        from simcomm.engine.trace import ATTEMPT_COLUMNS

        rows = res.world.trace.attempts
        names = ("time", "trace_id", "caller", "callee", "outcome", "wait_before", "end")
        if not rows:
            return {n: np.zeros(0, dtype=float if n in ("time", "trace_id", "wait_before",
                                                         "end") else object) for n in names}
        cols = list(zip(*rows, strict=True))
        at = {n: cols[ATTEMPT_COLUMNS.index(n)] for n in names}
        service: dict[Any, str] = {}
        callee = [service.get(c) or service.setdefault(c, _service(res, str(c)))
                  for c in at["callee"]]

        def floats(values: Sequence[Any]) -> np.ndarray:
            return np.array([math.nan if v is None or v is pd.NA else v for v in values],
                            dtype=float)

        return {"time": floats(at["time"]), "trace_id": floats(at["trace_id"]),
                "caller": np.array(at["caller"], dtype=object),
                "callee": np.array(callee, dtype=object),
                "outcome": np.array(at["outcome"], dtype=object),
                "wait_before": np.nan_to_num(floats(at["wait_before"])),
                "end": floats(at["end"])}
    return data.cached(res, "attempt_arrays", make)  # type: ignore[no-any-return]


def _breakers(res: Result) -> dict[Edge, Any]:
    """``{edge: its first caller copy's breaker, or None}`` for every declared edge."""
    def make() -> dict[Edge, Any]:
        out: dict[Edge, Any] = {}
        for name, node in res.world.nodes.items():
            router = getattr(node, "outbound", None)
            for service, edge in (getattr(router, "by_service", None) or {}).items():
                policy = getattr(edge, "policy", None)
                out[(name, str(service))] = getattr(policy, "circuit_breaker", None)
        return out
    return data.cached(res, "edge_breakers", make)  # type: ignore[no-any-return]


def call_edges(res: Result) -> list[Edge]:
    """Every caller → callee edge of the run: declared with ``protect``, seen in
    the attempts table, or named by a breaker event.

    In the order a learner reads them: callers as the run added them
    (gateway first), then callees likewise.
    """
    def make() -> list[Edge]:
        found: dict[Edge, None] = dict.fromkeys(_breakers(res))
        att = _attempts(res)
        for caller, callee in zip(att["caller"].tolist(), att["callee"].tolist(),
                                  strict=True):
            found.setdefault((str(caller), str(callee)), None)
        for row in res.world.trace.breakers:  # (time, caller, callee, from, to, why)
            found.setdefault((str(row[1]), str(row[2])), None)
        order = {n: i for i, n in enumerate(res.world.nodes)}
        first: dict[str, int] = {}
        for n, i in order.items():
            first.setdefault(_service(res, n), i)
        return sorted(found, key=lambda e: (order.get(e[0], len(order)),
                                            first.get(e[1], len(order)), e))
    return data.cached(res, "call_edges", make)  # type: ignore[no-any-return]


def _stretches(res: Result) -> dict[Edge, list[tuple[str, float, float]]]:
    """Per edge with a breaker: its ``(state, start, end)`` stretches in time order."""
    def make() -> dict[Edge, list[tuple[str, float, float]]]:
        from simcomm.engine.trace import BREAKER_COLUMNS

        i = {n: BREAKER_COLUMNS.index(n) for n in ("time", "caller", "callee", "from_state",
                                                   "to_state")}
        changes: dict[Edge, list[tuple[float, str, str]]] = {}
        # in time order, as Result.breaker_events sorts them (stable)
        for row in sorted(res.world.trace.breakers, key=lambda r: r[i["time"]]):
            edge = (str(row[i["caller"]]), str(row[i["callee"]]))
            changes.setdefault(edge, []).append(
                (float(row[i["time"]]), str(row[i["from_state"]]), str(row[i["to_state"]])))
        out: dict[Edge, list[tuple[str, float, float]]] = {}
        for edge, seq in changes.items():
            states = [seq[0][1], *(to for _, _, to in seq)]
            bounds = [0.0, *(t for t, _, _ in seq), res.until]
            out[edge] = list(zip(states, bounds[:-1], bounds[1:], strict=True))
        for edge, cb in _breakers(res).items():
            if cb is not None and edge not in out:
                out[edge] = [(str(getattr(cb, "state", "closed")), 0.0, res.until)]
        return out
    return data.cached(res, "breaker_stretches", make)  # type: ignore[no-any-return]


def breaker_intervals(res: Result) -> pd.DataFrame:
    """One row per stretch of time a breaker spent in one state:
    ``caller, callee, state, start, end``.

    Read from ``Result.breaker_events``: each state change ends the
    stretch before it and starts one in its ``to_state``; the first stretch
    of an edge starts at 0 in the first change's ``from_state``, the last
    ends at the end of the run.  An edge declared with a breaker that
    never changed state has one stretch, the whole run, in the breaker's
    state.  Edges without a breaker have no rows.
    """
    rows = [(*edge, *stretch) for edge, seq in _stretches(res).items() for stretch in seq]
    df = pd.DataFrame(rows, columns=["caller", "callee", "state", "start", "end"])
    return df.sort_values(["caller", "callee", "start"], kind="stable").reset_index(drop=True)


def edge_call_rates(res: Result, bin: float | None = None) -> dict[Edge, pd.DataFrame]:
    """Per edge and time bin, what its calls did: ``calls`` (attempts ended in
    the bin), ``let_through`` (those a breaker did not short-circuit),
    ``failed`` (of those, the ones not answered: what a breaker counts as a
    failure), ``short_circuited``, and the shares ``failed_share`` (of
    ``let_through``; NaN with fewer than :data:`MIN_CALLS`) and
    ``short_share`` (of ``calls``; NaN without calls).

    Each attempt of a call (a retry is another) counts once, in the bin it
    ended in -- when a breaker records its outcome.  Needs the attempts
    table (a run with ``trace=True``); an empty dict otherwise.
    """
    edges = _edges(res.until, bin)
    att = _attempts(res)
    out: dict[Edge, pd.DataFrame] = {}
    if not att["end"].size:
        return out
    end = att["end"]
    outcome = att["outcome"]
    callee = att["callee"]
    caller = att["caller"]
    failed = ~np.isin(outcome, _ANSWERS)
    short = outcome == "short_circuited"
    for edge in call_edges(res):
        mask = (caller == edge[0]) & (callee == edge[1])
        if not mask.any():
            continue
        t = end[mask]
        calls, _ = np.histogram(t, bins=edges)
        sc, _ = np.histogram(t[short[mask]], bins=edges)
        bad, _ = np.histogram(t[failed[mask] & ~short[mask]], bins=edges)
        through = calls - sc
        with np.errstate(invalid="ignore", divide="ignore"):
            failed_share = np.where(through >= MIN_CALLS, bad / through, np.nan)
            short_share = np.where(calls > 0, sc / calls, np.nan)
        df = pd.DataFrame({"calls": calls, "let_through": through, "failed": bad,
                           "short_circuited": sc, "failed_share": failed_share,
                           "short_share": short_share},
                          index=pd.Index(edges[:-1], name="time"))
        df.attrs["bin"] = float(np.diff(edges)[0])
        out[edge] = df
    return out


def _open_calls(res: Result, last_end: dict[tuple[str, int], float]
                ) -> list[tuple[str, int, str, float]]:
    """Calls still waiting when the run ended: ``(caller, trace_id, callee service,
    sent)``.

    The attempts table records an attempt when it ends, so a call still
    waiting at the end (a hang that outlasts the run) is not in it.  It is
    found in the message trace: a request a service sent after every
    attempt recorded for the same user request had ended, whose reply never
    came back.  It holds the worker to the end of the run, or to the
    caller's crash.
    """
    from simcomm.engine.messages import COMMAND, DOCUMENT

    if not res.world.trace.enabled:
        return []
    insts = set(data.instances(res))
    answered: set[Any] = set()
    sent: list[tuple[float, str, str, int, Any]] = []
    kinds = (COMMAND, DOCUMENT)  # requests that wait for a reply (not events)
    for t, event, mid, kind, src, dest, tid, _size, _reason, corr, *_ in \
            res.world.trace.messages:
        if kind == "reply":
            if event == "deliver":
                answered.add(corr)
        elif event == "send" and kind in kinds and src in insts and tid is not None:
            sent.append((t, src, dest, int(tid), mid))
    crashes: dict[str, list[float]] = {}
    for node, kind, a, _b, _d in data.fault_rows(res):
        if kind == "down":
            crashes.setdefault(node, []).append(a)
    out = []
    for t, src, dest, tid, mid in sent:
        if mid in answered or t < last_end.get((src, tid), -math.inf):
            continue
        if any(c >= t for c in crashes.get(src, [])):
            continue  # the caller crashed since: its worker is free (the call failed)
        out.append((src, tid, _service(res, str(dest)), t))
    return out


def _holds(res: Result) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per caller instance and key: the step function ``(t, held)`` of its workers
    waiting in calls for that key (see :func:`endpoint_occupancy`)."""
    def make() -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
        att = _attempts(res)
        endpoint_of = _endpoint_of(res)
        start = (att["time"] - att["wait_before"]).tolist()
        end = np.where(np.isnan(att["end"]), res.until, att["end"]).tolist()
        callers = [str(c) for c in att["caller"].tolist()]
        ids = [int(t) if t == t else -1 for t in att["trace_id"].tolist()]  # NaN: none
        callees = [str(c) for c in att["callee"].tolist()]
        last_end: dict[tuple[str, int], float] = {}
        for c, tid, e in zip(callers, ids, end, strict=True):
            if e > last_end.get((c, tid), -math.inf):
                last_end[(c, tid)] = e
        for c, tid, callee, sent in _open_calls(res, last_end):
            callers.append(c)
            ids.append(tid)
            callees.append(callee)
            start.append(sent)
            end.append(res.until)
        out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        if not callers:
            return out
        keys = np.array([endpoint_of.get(tid) or "→ " + callee
                         for tid, callee in zip(ids, callees, strict=True)], dtype=object)
        caller = np.array(callers, dtype=object)
        start_a = np.asarray(start, dtype=float)
        end_a = np.asarray(end, dtype=float)
        for name in dict.fromkeys(callers):
            mine = caller == name
            per: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for key in sorted(set(keys[mine].tolist())):
                m = mine & (keys == key)
                t = np.concatenate([start_a[m], end_a[m]])
                step = np.concatenate([np.ones(int(m.sum())), -np.ones(int(m.sum()))])
                order = np.lexsort((step, t))  # at one instant, ends before starts
                per[key] = (t[order], np.cumsum(step[order]))
            out[name] = per
        return out
    return data.cached(res, "endpoint_holds", make)  # type: ignore[no-any-return]


def endpoint_occupancy(res: Result, node: str, *, max_points: int = 600) -> pd.DataFrame:
    """How many of ``node``'s workers were held by each endpoint's calls, over time.

    A worker is *held* by a call from the start of its first attempt to the
    end of its last, waits between retries (and for a bulkhead slot)
    included: the worker sleeps but is not free.  Calls are grouped by the
    endpoint of the user request they serve (the requests table's
    ``endpoint``), or, for requests without one, by the service called
    (``"→ order"``).  Columns: one per key, ``own_work`` (busy workers not
    waiting on a call: the instance's own CPU time and the calls of other
    callers' requests if any), ``busy`` and ``queued``; index: the starts
    of ``max_points`` equal bins over the run, each value the time-weighted
    mean over its bin.  Needs the trace (attempts and pools tables).
    Calls still waiting when the run ended (not in the attempts table,
    which records an attempt when it ends) are found in the message trace
    and hold their worker to the end.
    """
    if node not in data.instances(res):
        raise ParamError("node", node, "the name of a service instance: "
                         + ", ".join(data.instances(res)))
    if not (is_whole(max_points) and max_points >= 1):
        raise ParamError("max_points", max_points, "a whole number >= 1")
    edges = np.linspace(0.0, res.until, int(max_points) + 1)
    cols: dict[str, np.ndarray] = {}
    held = np.zeros(len(edges) - 1)
    for key, (t, v) in _holds(res).get(node, {}).items():
        cols[key] = metrics.step_means(t, v, edges)
        held = held + cols[key]
    t, busy, queued = data.pool_arrays(res).get(node, (np.zeros(0),) * 3)
    busy_m = metrics.step_means(t, busy, edges)
    cols["own_work"] = np.maximum(busy_m - held, 0.0)
    cols["busy"] = busy_m
    cols["queued"] = metrics.step_means(t, queued, edges)
    return pd.DataFrame(cols, index=pd.Index(edges[:-1], name="time"))


def _reaching(res: Result) -> dict[str, np.ndarray]:
    """Per service: the times requests reached one of its instances (arrived while
    it was up: accepted, or turned away at the door), retries included."""
    def make() -> dict[str, np.ndarray]:
        if not res.world.trace.enabled:
            return {}
        service_of = {n: _service(res, n) for n in data.instances(res)}
        times: dict[str, list[float]] = {s: [] for s in service_of.values()}
        not_reached = frozenset(_NOT_REACHED)
        # the raw message tuples (see MESSAGE_COLUMNS): a loop over them is several
        # times faster than building the trace table for this one question
        for t, event, _id, kind, _src, dest, _tid, _size, reason, *_ in \
                res.world.trace.messages:
            if kind == "reply" or dest not in service_of:
                continue
            if event == "deliver" or (event == "drop" and reason not in not_reached):
                times[service_of[dest]].append(t)
        return {s: np.asarray(v, dtype=float) for s, v in times.items()}
    return data.cached(res, "reaching", make)  # type: ignore[no-any-return]


def _called_services(res: Result) -> list[str]:
    """Services that other services call (not the ones the users call), in run order."""
    targets = {_service(res, str(t)) for t in pd.unique(res.requests["target"])}
    return [s for s in dict.fromkeys(_service(res, n) for n in data.instances(res))
            if s not in targets]


def load_rates(res: Result, bin: float | None = None) -> pd.DataFrame:
    """Per time bin (per second): ``users`` (user requests sent), ``goodput``
    (user requests answered ``ok``, by the time they were answered),
    ``answered`` (ok or by a fallback), one ``calls:<service>`` column per
    service called by other services (calls reaching its instances,
    retries included) and one ``amplification:<service>`` (those calls per
    user request sent in the bin; NaN in a bin without requests).

    Calls are counted from the message trace (a run with ``trace=True``);
    without it the ``calls:`` and ``amplification:`` columns are missing.
    ``attrs["bin"]`` is the bin width, ``attrs["amplification"]`` the
    factors over the whole run (:meth:`~simcomm.result.Result.amplification`).
    """
    edges = _edges(res.until, bin)
    width = np.diff(edges)
    rq = res.requests
    outcome = rq["outcome"].to_numpy()
    start = rq["start"].to_numpy(dtype=float)
    end = rq["end"].to_numpy(dtype=float)
    users = np.histogram(start, bins=edges)[0] / width
    cols: dict[str, np.ndarray] = {
        "users": users,
        "goodput": np.histogram(end[outcome == "ok"], bins=edges)[0] / width,
        "answered": np.histogram(end[np.isin(outcome, _ANSWERS)], bins=edges)[0] / width,
    }
    reaching = _reaching(res)
    for service in _called_services(res):
        if service not in reaching:
            continue
        calls = np.histogram(reaching[service], bins=edges)[0] / width
        cols[f"calls:{service}"] = calls
        with np.errstate(invalid="ignore", divide="ignore"):
            cols[f"amplification:{service}"] = np.where(users > 0, calls / users, np.nan)
    df = pd.DataFrame(cols, index=pd.Index(edges[:-1], name="time"))
    df.attrs["bin"] = float(width[0])
    df.attrs["amplification"] = res.amplification()
    return df


def service_capacity(res: Result) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per service: its capacity over time as a step function ``(edges, values)``
    (requests per second; ``values[i]`` holds from ``edges[i]`` to ``edges[i+1]``).

    Each instance serves ``workers / mean service time`` requests per second,
    ``factor`` times fewer while slowed down and none while hung or down
    (:func:`~simcomm.viz.data.fault_intervals`); a service's capacity is
    its instances' sum.  It leaves out coding costs and network time, so it
    is a ceiling.  A service whose service time has no mean is left out.
    """
    def make() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        faults: dict[str, list[tuple[str, float, float, str]]] = {}
        for where, kind, a, b, detail in data.fault_rows(res):
            faults.setdefault(str(where), []).append((str(kind), float(a), float(b),
                                                      str(detail)))
        per_service: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for name in data.instances(res):
            node = res.world.nodes[name]
            try:
                mean = float(node.service_time.mean)  # type: ignore[attr-defined]
            except (AttributeError, NotImplementedError, TypeError, ValueError):
                continue
            if not mean > 0:
                continue
            base = node.workers / mean  # type: ignore[attr-defined]
            mine = faults.get(name, [])
            cuts = np.unique(np.array([0.0, res.until, *[f[1] for f in mine],
                                       *[f[2] for f in mine]], dtype=float))
            cuts = cuts[(cuts >= 0) & (cuts <= res.until)]
            mid = (cuts[:-1] + cuts[1:]) / 2
            values = np.full(len(mid), base)
            for kind, a, b, detail in mine:
                inside = (mid >= a) & (mid < b)
                if kind in ("hung", "down"):
                    values[inside] = 0.0
                elif kind == "slow":
                    factor = _factor(detail)
                    if factor > 0:
                        values[inside] = values[inside] / factor
            per_service.setdefault(_service(res, name), []).append((cuts, values))
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for service, steps in per_service.items():
            cuts = np.unique(np.concatenate([c for c, _ in steps]))
            mid = (cuts[:-1] + cuts[1:]) / 2
            total = np.zeros(len(mid))
            for c, v in steps:
                total += v[np.clip(np.searchsorted(c, mid, side="right") - 1, 0, len(v) - 1)]
            out[service] = (cuts, total)
        return out
    return data.cached(res, "service_capacity", make)  # type: ignore[no-any-return]


def _factor(detail: str) -> float:
    """The factor of a slowdown event's detail ("x4" -> 4.0; 1.0 if unreadable)."""
    try:
        return float(detail.lstrip("x"))
    except ValueError:
        return 1.0


# -- shared pieces ---------------------------------------------------------------------
def _bin(bin: float | None) -> None:
    if bin is not None and not (is_real(bin) and 0 < bin < math.inf):
        raise ParamError("bin", bin, "a bin width in seconds > 0, or None to choose one")


def _rows(axes: Axes | Sequence[Axes] | None, n: int, what: str) -> list[Axes] | None:
    """The caller's axes as a list of ``n``, or None to make a figure."""
    if axes is None:
        return None
    axs = [axes] if not isinstance(axes, Sequence) else list(axes)
    if len(axs) != n:
        raise ParamError("axes", f"{len(axs)} axes", f"{n}: {what}")
    return axs


def _legend_at(ax: Axes, handles: Sequence[Artist], labels: Sequence[str],
               x: float = 1.01, wrap: int = 30) -> None:
    """A legend outside ``ax`` to the right, top-aligned (kept if it reads the same)."""
    reuse.legend(ax, list(handles), [wrap_label(s, wrap) for s in labels], loc="upper left",
                 bbox_to_anchor=(x, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)


def _fault_handles(axs: Sequence[Axes]) -> tuple[list[Artist], list[str]]:
    """The labelled fault bands drawn on ``axs``, one per label."""
    handles: list[Artist] = []
    labels: list[str] = []
    for ax in axs:
        for a in ax.collections:
            label = str(a.get_label() or "")
            if (a.get_gid() or "").startswith("fault:") and label and \
                    not label.startswith("_") and label not in labels:
                handles.append(a)
                labels.append(label)
    return handles, labels


def _no_data(k: reuse.Keeper, ax: Axes, text: str) -> None:
    k.text("no_data", 0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
           fontsize=9, color=INK, wrap=True, zorder=5,
           bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 2})


def _describe(cb: Any) -> str:
    """A breaker's kind in a word or two."""
    return {"CircuitBreaker": "Resilience4j breaker",
            "ConsecutiveFailureBreaker": "consecutive-failure breaker",
            "HystrixBreaker": "Hystrix breaker"}.get(type(cb).__name__,
                                                     f"{type(cb).__name__}")


def _rule(cb: Any) -> str:
    """The rule ``cb`` trips by, for the legend of its threshold."""
    kind = type(cb).__name__
    if kind == "CircuitBreaker":
        return (f"trips at {cb.failure_rate_threshold:g} % failed of the last "
                f"{cb.sliding_window_size} calls" if cb.sliding_window_type == "count" else
                f"trips at {cb.failure_rate_threshold:g} % failed in "
                f"{cb.sliding_window_size} s")
    if kind == "HystrixBreaker":
        return (f"trips at {cb.error_threshold_percentage:g} % errors of "
                f"{cb.request_volume_threshold}+ calls")
    if kind == "ConsecutiveFailureBreaker":
        return f"trips after {cb.fail_max} failures in a row"
    return "trips"


def _threshold(cb: Any) -> float | None:
    """The failure share (%) at which ``cb`` trips, if it trips on a share."""
    for name in ("failure_rate_threshold", "error_threshold_percentage"):
        value: Any = getattr(cb, name, None)
        if is_real(value):
            return float(value)
    return None


# -- breaker states --------------------------------------------------------------------
def _pick_edges(res: Result, edges: Sequence[Any] | None) -> list[Edge]:
    known = call_edges(res)
    if edges is None:
        return known
    out: list[Edge] = []
    for e in edges:
        if isinstance(e, str):
            parts = e.replace("->", "→").split("→")
            edge = (parts[0].strip(), parts[1].strip()) if len(parts) == 2 else ("", e)
        else:
            edge = tuple(e)  # type: ignore[assignment]
        if edge not in known:
            raise ParamError("edges", e, "edges of this run, as 'caller → callee' or "
                             "(caller, callee): "
                             + (", ".join(f"{a} → {b}" for a, b in known) or "none"))
        out.append(edge)
    return out


def breaker_states(res: Result, edges: Sequence[Any] | None = None,
                   axes: Sequence[Axes] | None = None, *, bin: float | None = None,
                   faults: bool = True) -> Figure:
    """Each edge's circuit breaker over time, and what the edge's calls did.

    What the learner sees, per caller → callee edge (gateway first): a
    **strip** of the breaker's state -- light grey while **closed** (calls
    pass), **wine** while **open** (every call short-circuited: the same
    wine as the ``short_circuited`` outcome elsewhere), **wine stripes**
    while **half-open** (a few trial calls pass), crossed wine when forced
    open, grey dots when disabled or metrics-only -- whose bands are exactly
    the intervals between the ``Result.breaker_events`` (see
    :func:`breaker_intervals`).  Under it, per ``bin`` seconds, the
    **vermillion line**: the share of the calls let through that failed
    (what the breaker judges; drawn where a bin holds at least
    :data:`MIN_CALLS`), the **dashed black line**: the share at which the
    breaker trips, and the **wine area**: the share of calls short-circuited.
    A yellow band marks when the callee hung (it needs a time limit before
    any call fails).  The title of each edge names the breaker's kind and
    rule, how often it opened and how long it stayed open.

    Edges without a breaker say so in their strip and still show their
    calls' failures -- what a breaker there would see; a run with no calls
    between services says that instead.  ``edges`` picks edges (``"caller
    → callee"`` or tuples; default all); ``axes``, two per edge (strip,
    calls) or one for a run without edges, draws into given axes -- the
    axes of a figure drawn before, updated in place.  The failure shares
    need the attempts table (a run with ``trace=True``).
    """
    _bin(bin)
    chosen = _pick_edges(res, edges)
    n_ax = 2 * len(chosen) or 1
    axs = _rows(axes, n_ax, "a strip and a calls panel per edge, or one for no edges")
    if axs is None:
        fig = _breaker_figure(len(chosen))
        axs = [ax for ax in fig.axes]
    else:
        fig = root_figure(axs[0])
    owned = getattr(fig, _OWNER, None) == "breaker_states"
    if not chosen:
        ax = axs[0]
        k = reuse.keeper(ax, "breaker_states")
        if k.fresh:
            ax.set_yticks([])
            for side in ("top", "right", "left"):
                ax.spines[side].set_visible(False)
        _no_data(k, ax, "No calls between services in this run: no edge, and no circuit "
                        "breaker, to show.")
        ax.set_xlim(0, res.until)
        ax.set_ylim(0, 1)
        ax.set_xlabel("time (s)")
        set_titles(ax, "Circuit breakers", "")
        pin_axis_labels(ax)
        k.finish()
        if owned:
            _breaker_suptitle(fig, False)
        return fig
    rates = edge_call_rates(res, bin)
    stretches = _stretches(res)
    breakers = _breakers(res)
    traced = res.world.trace.enabled
    any_breaker = False
    rate_handles: dict[str, Artist] = {}
    for i, edge in enumerate(chosen):
        strip, calls = axs[2 * i], axs[2 * i + 1]
        ks = reuse.keeper(strip, "breaker_states")
        if ks.fresh:  # no axes to read off a strip: no ticks to lay out at every draw
            strip.xaxis.set_visible(False)
            strip.yaxis.set_visible(False)
            for side in ("top", "right", "left", "bottom"):
                strip.spines[side].set_visible(False)
        iv = stretches.get(edge, [])
        cb = breakers.get(edge)
        has_breaker = cb is not None or bool(iv)
        any_breaker |= has_breaker
        present = {state for state, _, _ in iv}
        states = [s for s in BREAKER_STATES if s in present]
        states += sorted(present - set(BREAKER_STATES))
        for state in states:
            s = np.array([a for st, a, _ in iv if st == state], dtype=float)
            e = np.array([b for st, _, b in iv if st == state], dtype=float)
            verts = np.stack([np.column_stack([s, np.zeros_like(s)]),
                              np.column_stack([s, np.ones_like(s)]),
                              np.column_stack([e, np.ones_like(s)]),
                              np.column_stack([e, np.zeros_like(s)])], axis=1)
            style = BREAKER_STYLES.get(state, {"facecolor": GREY, "edgecolor": "none"})
            ks.polys(f"state:{state}", verts, linewidth=0, zorder=1,
                     gid=f"breaker:{state}", **style)
        if not has_breaker:
            ks.text("none", 0.5, 0.5, "no circuit breaker on this edge",
                    transform=strip.transAxes, ha="center", va="center", fontsize=8,
                    color=INK)
        strip.set_xlim(0, res.until)
        strip.set_ylim(0, 1)
        opened = sum(1 for state, _, _ in iv if state == "open")
        open_s = sum(b - a for state, a, b in iv if state in ("open", "forced_open"))
        head = f"{edge[0]} → {edge[1]}"
        if has_breaker:
            head += (f" · {_describe(cb)}" if cb is not None else "")
            right = (f"opened {opened}× · open {open_s:.3g} s of {res.until:g}"
                     if opened else "never opened")
            if cb is not None and _threshold(cb) is None:  # no line to say it: the legend
                rule = f"the breaker {_rule(cb)}"
                rate_handles.setdefault("rule", Line2D([], [], linestyle="none", label=rule))
        else:
            right = ""  # not None: a redraw must clear what a breaker wrote there
        set_titles(strip, head, right, size=9, y=1.08)
        ks.finish()

        kc = reuse.keeper(calls, "breaker_states_calls")
        if kc.fresh:
            style_axes(calls)
            calls.yaxis.set_major_locator(FixedLocator([0, 50, 100]))
        df = rates.get(edge)
        if df is not None:
            bins = np.append(df.index.to_numpy(dtype=float), res.until)
            rate_handles.setdefault("short", kc.stairs(
                "short", 100 * np.nan_to_num(df["short_share"].to_numpy()), bins,
                baseline=0.0, fill=True, facecolor=opaque(OUTCOME_COLORS["short_circuited"],
                                                          0.35),
                edgecolor="none", linewidth=0, zorder=1,
                label="short-circuited, % of calls"))
            rate_handles.setdefault("failed", kc.stairs(
                "failed", 100 * df["failed_share"].to_numpy(), bins, baseline=None,
                fill=False, edgecolor=OUTCOME_COLORS["error"], linewidth=2.0, zorder=3,
                label=f"failed, % of calls let through (per {df.attrs['bin']:g} s)"))
        else:
            _no_data(kc, calls, "no calls recorded" + (
                "" if traced else " (run with trace=True to see them)"))
        thr = _threshold(cb) if cb is not None else None
        if thr is not None:
            line = kc.line("threshold", [0.0, 1.0], [thr, thr],
                           transform=calls.get_yaxis_transform(), color=INK, linestyle="--",
                           linewidth=1.0, zorder=2, label=f"the breaker {_rule(cb)}")
            rate_handles.setdefault("threshold", line)
        if faults:  # a strip along the top, above the areas
            callee_nodes = [n for n in data.instances(res) if _service(res, n) == edge[1]]
            fault_bands(calls, res, nodes=callee_nodes, annotate=False, ymin=0.9, zorder=3.5,
                        alpha=0.9)
        calls.set_xlim(0, res.until)
        calls.set_ylim(0, 125)
        calls.set_ylabel("% of calls", fontsize=9)
        last = i == len(chosen) - 1
        calls.tick_params(axis="x", labelbottom=last)
        calls.set_xlabel("time (s)" if last else "")
        pin_axis_labels(calls)
        kc.finish()
    # one legend, top right: the states, then what the panels draw
    handles: list[Artist] = []
    labels: list[str] = []
    if any_breaker:
        present = {state for seq in stretches.values() for state, _, _ in seq}
        for state in BREAKER_STATES:
            if state in ("closed", "open", "half_open") or state in present:
                handles.append(Patch(linewidth=0, **BREAKER_STYLES[state]))
                labels.append(BREAKER_LABELS[state])
    for key in ("failed", "threshold", "rule", "short") if any_breaker else ("failed",):
        if key in rate_handles:
            handles.append(rate_handles[key])
            labels.append(str(rate_handles[key].get_label()))
    fh, fl = _fault_handles(axs[1::2])
    _legend_at(axs[0], handles + fh, labels + fl)
    if owned:
        _breaker_suptitle(fig, any_breaker)
    return fig


def _breaker_figure(n: int) -> Figure:
    """A figure with a strip and a calls panel per edge (one empty axes for none)."""
    height = 1.1 + (1.85 * n if n else 1.0)
    fig = new_figure(9.0, height, margins=(0.75, 2.35, 0.75, 0.5), hspace=0.0)
    if not n:
        fig.add_subplot()
    else:
        ratios = []
        for i in range(n):
            ratios += [0.28, 1.0] + ([0.62] if i < n - 1 else [])
        grid = fig.add_gridspec(len(ratios), 1, height_ratios=ratios, hspace=0.0)
        first = None
        for i in range(n):
            strip = fig.add_subplot(grid[3 * i, 0], sharex=first)
            first = first or strip
            fig.add_subplot(grid[3 * i + 1, 0], sharex=first)
    setattr(fig, _OWNER, "breaker_states")
    return fig


def _breaker_suptitle(fig: Figure, any_breaker: bool) -> None:
    height = fig.get_figheight()
    fig.suptitle("Circuit breakers: each edge's state (strip) and its calls (below)"
                 if any_breaker else "No circuit breaker in this run: each edge's calls, "
                 "what a breaker would judge",
                 fontsize=10.5, x=0.08 / 9.0, y=1 - 0.08 / height, ha="left", va="top")


# -- outcomes per endpoint -------------------------------------------------------------
def outcomes_by_endpoint(res: Result, bin: float | None = None,
                         axes: Sequence[Axes] | None = None, *, by: str = "start",
                         faults: bool = True) -> Figure:
    """:func:`~simcomm.viz.outcomes_over_time` once per endpoint, one row each.

    What the learner sees: for a gateway serving several endpoints (the
    requests table's ``endpoint``), a row per endpoint, each a stack of
    what became of its requests per second -- green ok, light green a
    fallback's answer, dark brown timeout, wine short-circuited, indigo
    bulkhead full, sky blue abandoned ... -- under the same yellow strip
    while a service hung.  In ``gateway`` without protection both rows turn
    sky blue (abandoned) during the order service's hang although only
    createOrder calls it; with a bulkhead on the order edge getCustomer
    stays green.  The right title of each row gives its availability.  A
    run whose requests name no endpoint gets one row for all of them.
    ``axes`` (one per endpoint) draws into given axes, updated in place.
    """
    _bin(bin)
    endpoints: list[str | None] = list(_endpoints(res)) or [None]
    axs = _rows(axes, len(endpoints), "one per endpoint")
    if axs is None:
        height = 0.55 + 2.35 * len(endpoints)
        fig = new_figure(9.0, height, margins=(0.75, 2.35, 0.4, 0.5), hspace=0.55)
        grid = fig.add_gridspec(len(endpoints), 1)
        axs = []
        for i in range(len(endpoints)):
            axs.append(fig.add_subplot(grid[i, 0], sharex=axs[0] if axs else None))
    else:
        fig = root_figure(axs[0])
    rq = res.requests
    handles: dict[str, Artist] = {}  # one legend for all rows: each costs a redraw time
    for i, (ax, endpoint) in enumerate(zip(axs, endpoints, strict=True)):
        outcomes_over_time(res, bin, ax=ax, by=by, faults=faults, endpoint=endpoint,
                           legend=False)
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
        mine = rq if endpoint is None else rq[rq["endpoint"] == endpoint]
        outcome = mine["outcome"]
        answered = int(outcome.isin(_ANSWERS).sum())
        finished = int((outcome != "pending").sum())
        avail = (f"availability {100 * answered / finished:.1f} % of {finished} finished"
                 if finished else "no finished requests")
        set_titles(ax, "What happened to the requests" if endpoint is None
                   else f"{endpoint}: what happened to its requests", avail, size=10)
        last = i == len(axs) - 1
        ax.tick_params(axis="x", labelbottom=last)
        if not last:
            ax.set_xlabel("")
        ax.set_ylabel("req/s")
    top = max(ax.get_ylim()[1] for ax in axs)  # one scale: the rows' rates compare
    for ax in axs:
        if ax.get_ylim()[1] != top:
            ax.set_ylim(0, top)
            pin_axis_labels(ax)  # the tick labels changed
    order = [o for o in OUTCOMES if o in handles]
    order += [label for label in handles if label not in order]
    _legend_at(axs[0], [handles[label] for label in order], order)
    return fig


# -- pool occupancy per endpoint -------------------------------------------------------
def _callers(res: Result) -> list[str]:
    held = _holds(res)
    callers = [n for n in data.instances(res) if n in held]
    return callers or data.instances(res)[:1]


def pool_by_endpoint(res: Result, nodes: Sequence[str] | None = None,
                     axes: Sequence[Axes] | None = None, *, max_points: int = 600,
                     faults: bool = True) -> Figure:
    """An instance's busy workers split by the endpoint whose call holds them.

    What the learner sees: for each instance that calls others (default;
    ``nodes`` picks instances), a stack of its busy workers over time: one
    colour per **endpoint** of the user requests being served (blue, reddish
    purple, ... in the endpoints' alphabetical order; ``→ service`` for
    requests without an endpoint) counting the workers **waiting on a call**
    for it -- between retries and for a bulkhead slot too -- and **grey** for
    the rest of the busy workers (the instance's own work); the **dashed
    black line** is the pool size and the **vermillion line** the queue, on
    its own right-hand scale as in :func:`~simcomm.viz.pool_usage`.  A
    yellow strip along the top marks a hang anywhere.  In ``gateway``
    without protection the createOrder colour fills the whole pool during
    the order service's hang, leaving no worker for getCustomer; a
    bulkhead caps it.  The values are time-weighted means over
    ``max_points`` bins (see :func:`endpoint_occupancy`); the title gives
    the most workers each endpoint held at once.  Needs the trace.
    ``axes`` (one per instance) draws into given axes, updated in place.
    """
    from simcomm.engine.nodes import Instance

    insts = data.instances(res)
    if not insts:
        raise ParamError("res", res, "a run with at least one service instance")
    if nodes is None:
        nodes = _callers(res)
    else:
        nodes = list(nodes)
        unknown = [n for n in nodes if n not in insts]
        if unknown or not nodes:
            raise ParamError("nodes", unknown or nodes, "names of service instances: "
                             + ", ".join(insts))
    axs = _rows(axes, len(nodes), "one per instance")
    if axs is None:
        height = 1.0 + 2.2 * len(nodes)
        fig = new_figure(9.0, height, margins=(0.6, 2.35, 0.7, 0.55), hspace=0.5)
        grid = fig.add_gridspec(len(nodes), 1)
        axs = []
        for i in range(len(nodes)):
            axs.append(fig.add_subplot(grid[i, 0], sharex=axs[0] if axs else None))
            _queue_axes(axs[-1], reuse.keeper(axs[-1], "pool_by_endpoint"))
        setattr(fig, _OWNER, "pool_by_endpoint")
    else:
        fig = root_figure(axs[0])
    owned = getattr(fig, _OWNER, None) == "pool_by_endpoint"
    holds = _holds(res)
    endpoints = _endpoints(res)
    colour_of: dict[str, str] = {e: SERIES_COLORS[i % len(SERIES_COLORS)]
                                 for i, e in enumerate(endpoints)}
    for name in _called_services(res):
        colour_of.setdefault("→ " + name, SERIES_COLORS[len(colour_of) % len(SERIES_COLORS)])
    callee_of = _callee_by_key(res)
    own_face = opaque(GREY, 0.55)
    for i, (ax, name) in enumerate(zip(axs, nodes, strict=True)):
        k = reuse.keeper(ax, "pool_by_endpoint")
        if k.fresh:
            style_axes(ax)
        twin = _queue_axes(ax, k)
        node = res.world.nodes[name]
        workers = node.workers if isinstance(node, Instance) else 1
        occ = endpoint_occupancy(res, name, max_points=max_points)
        edges = np.append(occ.index.to_numpy(dtype=float), res.until)
        base = np.zeros(len(occ))
        keys = [c for c in occ.columns if c not in ("own_work", "busy", "queued")]
        peaks = {key: int(holds[name][key][1].max(initial=0)) for key in keys}
        for key in keys:
            top = base + occ[key].to_numpy()
            label = (f"{key} → {callee_of[key]}" if not key.startswith("→ ")
                     and key in callee_of else key.replace("→ ", "waiting on "))
            k.stairs(f"held:{key}", top, edges, baseline=base, fill=True,
                     facecolor=opaque(colour_of.get(key, GREY), 0.8), edgecolor="none",
                     linewidth=0, zorder=1, label=label)
            base = top
        k.stairs("own_work", base + occ["own_work"].to_numpy(), edges, baseline=base,
                 fill=True, facecolor=own_face, edgecolor="none", linewidth=0, zorder=1,
                 label="own work (in no call)")
        k.line("pool_size", [0.0, 1.0], [workers, workers], transform=ax.get_yaxis_transform(),
               color=POOL_COLORS["pool_size"], linestyle="--", linewidth=1.0,
               label="pool size (workers)", zorder=2)
        if not res.world.trace.enabled:
            _no_data(k, ax, "needs a run with trace=True (the attempts and pools tables)")
        elif not keys:
            k.text("no_calls", 0.5, 0.62, "no calls from this instance: its workers are "
                   "busy with their own work only", transform=ax.transAxes, ha="center",
                   va="center", fontsize=8, color=INK, zorder=5)
        if faults:
            fault_bands(ax, res, label=True, annotate=False, ymin=0.9, zorder=3, alpha=0.9,
                        key="fault_strip")
        qk = reuse.keeper(twin, "pool_by_endpoint_queue")
        queue = qk.stairs("queued", occ["queued"].to_numpy(), edges, baseline=None,
                          fill=False, edgecolor=POOL_COLORS["queued"], linewidth=1.5,
                          label="queued requests (right)", zorder=2)
        qk.finish()
        ymax = 1.15 * workers + 0.3
        ax.set_ylim(0, ymax)
        ax.yaxis.set_major_locator(FixedLocator(_pool_ticks(workers, ymax)))
        qmax = float(occ["queued"].max()) if len(occ) else 0.0
        twin.set_ylim(0, ymax if 1.12 * qmax <= ymax else data.nice_top(1.12 * qmax))
        if ax.get_xlim() != (0.0, res.until):
            ax.set_xlim(0, res.until)
        ax.set_ylabel("busy workers", fontsize=9)
        twin.set_ylabel("queued", color=POOL_COLORS["queued"], fontsize=9, rotation=-90,
                        va="bottom")
        most = ", ".join(f"{key.replace('→ ', 'waiting on ')} {peaks[key]}" for key in keys)
        set_titles(ax, f"{name} · {workers} worker{'' if workers == 1 else 's'}"
                   + (f" · most held at once: {most}" if most else ""), size=9)
        last = i == len(axs) - 1
        ax.tick_params(axis="x", labelbottom=last)
        ax.set_xlabel("time (s)" if last else "")
        k.finish()
        own, labels = ax.get_legend_handles_labels()
        x = 1.0 + 0.55 / (ax.get_position().width * fig.get_figwidth())
        _legend_at(ax, [*own, queue], [*labels, str(queue.get_label())], x=x, wrap=22)
    for ax in axs:
        pin_axis_labels(ax)
        pin_axis_labels(getattr(reuse.keeper_of(ax), "twin", ax))
    if owned:
        height = fig.get_figheight()
        fig.suptitle("Worker pool by endpoint: whose call each busy worker waits on "
                     f"(means per {res.until / max_points:.2g} s)", fontsize=10.5,
                     x=0.08 / 9.0, y=1 - 0.1 / height, ha="left", va="top")
    return fig


def _endpoint_of(res: Result) -> dict[int, str]:
    """``{request id: endpoint}`` for the requests that name one."""
    def make() -> dict[int, str]:
        rq = res.requests  # pending requests too (the trace keeps finished ones only)
        if "endpoint" not in rq.columns:
            return {}
        return {int(i): str(e) for i, e in zip(rq["request_id"].tolist(),
                                                rq["endpoint"].tolist(), strict=True)
                if isinstance(e, str)}
    return data.cached(res, "endpoint_of", make)  # type: ignore[no-any-return]


def _callee_by_key(res: Result) -> dict[str, str]:
    """For each endpoint: the service its calls went to most often."""
    def make() -> dict[str, str]:
        att = _attempts(res)
        endpoint_of = _endpoint_of(res)
        counts: dict[str, dict[str, int]] = {}
        for tid, callee in zip(att["trace_id"].tolist(), att["callee"].tolist(), strict=True):
            ep = endpoint_of.get(int(tid)) if tid == tid else None
            if ep is not None:
                per = counts.setdefault(ep, {})
                per[str(callee)] = per.get(str(callee), 0) + 1
        return {ep: max(per, key=per.__getitem__) for ep, per in sorted(counts.items())}
    return data.cached(res, "callee_by_key", make)  # type: ignore[no-any-return]


# -- offered load against goodput ------------------------------------------------------
def load_vs_goodput(res: Result, bin: float | None = None,
                    axes: Sequence[Axes] | None = None, *, faults: bool = True) -> Figure:
    """Offered load, calls reaching each service and goodput over time; amplification.

    What the learner sees, top: per second in each ``bin``, the **green
    area** is the goodput (user requests answered ok, by the time they were
    answered; light green above it, answers by a fallback), the **black
    line** the user requests sent, and one **coloured line** per service
    called by others (blue, reddish purple, ...): the calls reaching it,
    retries included.  A **dashed line of the same colour** is that
    service's capacity (workers ÷ mean service time, lower while slowed
    down, none while hung) when it is on the scale; otherwise the title
    gives it.  An **orange band** marks a short slowdown (the retry storm's
    trigger), a yellow one a hang.  Bottom: the **amplification factor**
    per bin -- calls reaching each service per user request sent (1 without
    retries on a path every request takes) -- and over the whole run in
    the title (:meth:`~simcomm.result.Result.amplification`).

    In ``retry-storm`` without backoff the order service's line climbs
    above its dashed capacity during the slowdown and stays there after the
    band ends, while the green goodput sinks to nothing: the retries
    sustain the overload.  With a growing backoff the line falls back
    under the capacity and the goodput returns.  Calls are counted from the
    message trace (a run with ``trace=True``).  ``axes`` (two) draws into
    given axes, updated in place.
    """
    _bin(bin)
    df = load_rates(res, bin)
    axs = _rows(axes, 2, "the rates and the amplification")
    if axs is None:
        fig = new_figure(9.0, 5.0, margins=(0.75, 2.35, 0.4, 0.55), hspace=0.0)
        grid = fig.add_gridspec(3, 1, height_ratios=[2.2, 0.62, 1.0], hspace=0.0)
        top_ax = fig.add_subplot(grid[0, 0])
        axs = [top_ax, fig.add_subplot(grid[2, 0], sharex=top_ax)]
    else:
        fig = root_figure(axs[0])
    ax, amp = axs
    edges = np.append(df.index.to_numpy(dtype=float), res.until)
    services = [c.split(":", 1)[1] for c in df.columns if c.startswith("calls:")]
    colour = {s: SERIES_COLORS[i % len(SERIES_COLORS)] for i, s in enumerate(services)}
    k = reuse.keeper(ax, "load_vs_goodput")
    if k.fresh:
        style_axes(ax)
    good = df["goodput"].to_numpy()
    k.stairs("goodput", good, edges, baseline=0.0, fill=True,
             facecolor=opaque(OUTCOME_COLORS["ok"], 0.75), edgecolor="none", linewidth=0,
             zorder=1, label="goodput: user requests answered ok")
    extra = df["answered"].to_numpy()
    if (extra > good).any():
        k.stairs("fallback", extra, edges, baseline=good, fill=True,
                 facecolor=OUTCOME_COLORS["fallback"], edgecolor="none", linewidth=0,
                 zorder=1, label="answered by a fallback")
    k.stairs("users", df["users"].to_numpy(), edges, baseline=None, fill=False,
             edgecolor=INK, linewidth=1.6, zorder=3, label="user requests sent")
    top = float(np.nanmax(df[["users", "answered"]].to_numpy(), initial=0.0))
    for s in services:
        calls = df[f"calls:{s}"].to_numpy()
        top = max(top, float(calls.max(initial=0.0)))
        k.stairs(f"calls:{s}", calls, edges, baseline=None, fill=False,
                 edgecolor=colour[s], linewidth=1.8, zorder=4,
                 label=f"calls reaching {s} (retries included)")
    ymax = data.nice_top(1.12 * top) if top > 0 else 1.0
    capacity = service_capacity(res)
    off_scale: list[str] = []
    for s in services:
        if s not in capacity:
            continue
        cuts, values = capacity[s]
        if values.max(initial=0.0) <= ymax:
            k.stairs(f"capacity:{s}", values, cuts, baseline=None, fill=False,
                     edgecolor=colour[s], linewidth=1.2, linestyle="--", zorder=2,
                     label=f"capacity of {s} (≈ workers ÷ service time)")
        else:
            off_scale.append(f"{s} {values.max():.3g}/s")
    if not res.world.trace.enabled:
        _no_data(k, ax, "calls per service need a run with trace=True")
    if faults:
        fault_bands(ax, res, annotate=False, zorder=0.5, alpha=0.3)
    ax.set_xlim(0, res.until)
    ax.set_ylim(0, ymax)
    ax.set_ylabel("per second")
    ax.tick_params(axis="x", labelbottom=False)
    good_mean = float(res.requests["outcome"].eq("ok").sum()) / res.until
    set_titles(ax, "Offered load and goodput",
               f"goodput {good_mean:.3g} req/s over the run · rates per {df.attrs['bin']:g} s")
    pin_axis_labels(ax)
    k.finish()
    handles, labels = ax.get_legend_handles_labels()
    if off_scale:  # said, not drawn: a line far above would flatten the rest
        handles.append(Line2D([], [], color=GREY, linestyle="--", linewidth=1.2))
        labels.append("capacity, off the scale: " + ", ".join(off_scale))
    _legend_at(ax, handles, labels)

    ka = reuse.keeper(amp, "load_vs_goodput_amplification")
    if ka.fresh:
        style_axes(amp)
    ka.line("one", [0.0, 1.0], [1.0, 1.0], transform=amp.get_yaxis_transform(), color=GREY,
            linestyle="--", linewidth=1.0, zorder=1, label="1 call per request")
    amax = 1.0
    for s in services:
        values = df[f"amplification:{s}"].to_numpy()
        if np.isfinite(values).any():
            amax = max(amax, float(np.nanmax(values)))
        ka.stairs(f"amplification:{s}", values, edges, baseline=None, fill=False,
                  edgecolor=colour[s], linewidth=1.6, zorder=3, label=f"{s}")
    if not services:
        _no_data(ka, amp, "no service is called by another: nothing is amplified"
                 if res.world.trace.enabled else "needs a run with trace=True")
    amp.set_xlim(0, res.until)
    amp.set_ylim(0, data.nice_top(1.12 * amax))
    amp.set_xlabel("time (s)")
    amp.set_ylabel("calls per\nrequest", fontsize=9)
    factors = df.attrs["amplification"]
    overall = " · ".join(f"{s} ×{factors[s]:.2f}" for s in services
                         if s in factors and math.isfinite(factors[s]))
    set_titles(amp, "Amplification: calls per user request",
               f"over the run: {overall}" if overall else "", size=10)
    pin_axis_labels(amp)
    ka.finish()
    handles, labels = amp.get_legend_handles_labels()
    _legend_at(amp, handles, labels)
    return fig
