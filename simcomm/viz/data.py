"""Tables and arrays the figures share, computed once per Result and cached.

A dashboard redraws several figures of the same run on every slider move
(and the playback widget redraws the topology at many times), so anything
derived from a run's tables is cached here, keyed weakly by the Result:
it goes away with the Result.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from simcomm.result import Result

__all__ = ["cached", "clients", "fault_intervals", "fault_rows", "instances", "nice_step",
           "nice_top", "pool_arrays", "summary"]

_CACHE: WeakKeyDictionary[Any, dict[str, Any]] = WeakKeyDictionary()


def cached(res: Result, key: str, make: Any) -> Any:
    """``make()`` computed once per Result and ``key``."""
    store = _CACHE.setdefault(res, {})
    if key not in store:
        store[key] = make()
    return store[key]


def summary(res: Result) -> dict[str, Any]:
    """``res.summary()``, computed once per Result (figures and the dashboard
    showing them ask for the same numbers; do not change the dict)."""
    return cached(res, "summary", res.summary)


def instances(res: Result) -> list[str]:
    """Service instances (nodes with a worker pool) in the order they were added.

    Scenarios add them in call order (gateway first), so this is also the
    order a learner reads the chain in.
    """
    from simcomm.engine.nodes import Instance

    return [n for n, node in res.world.nodes.items() if isinstance(node, Instance)]


def clients(res: Result) -> list[str]:
    """The workload nodes (users) of the run."""
    from simcomm.engine.workload import Client

    return [n for n, node in res.world.nodes.items() if isinstance(node, Client)]


# -- faults -----------------------------------------------------------------
_FAULT_EVENTS = ("crash", "restart", "hang", "unhang", "partition", "heal", "slowdown",
                 "error_rate")


def _fault_rows(res: Result) -> list[tuple[str, str, float, float, str]]:
    """The rows of :func:`fault_intervals` as tuples, from the trace's own tuples
    (a dashboard asks on every run; building the events table costs more)."""
    kinds = frozenset(_FAULT_EVENTS)
    ev = [row for row in res.world.trace.events if row[2] in kinds]  # in time order
    rows: list[tuple[str, str, float, float, str]] = []
    open_: dict[tuple[str, str], tuple[float, str]] = {}

    def close(node: str, kind: str, t: float) -> None:
        started = open_.pop((node, kind), None)
        if started is not None:
            rows.append((node, kind, started[0], t, started[1]))

    for t, node, event, detail in ev:
        if event == "crash":
            close(node, "hung", t)  # a crash ends a hang
            open_.setdefault((node, "down"), (t, detail))
        elif event == "restart":
            close(node, "down", t)
        elif event == "hang":
            open_.setdefault((node, "hung"), (t, detail))
        elif event == "unhang":
            close(node, "hung", t)
        elif event == "partition":
            close(node, "partition", t)  # a new cut replaces the old one
            open_[(node, "partition")] = (t, detail)
        elif event == "heal":
            close(node, "partition", t)
        elif event == "slowdown":
            close(node, "slow", t)
            if detail not in ("x1", "x1.0"):
                open_[(node, "slow")] = (t, detail)
        elif event == "error_rate":
            close(node, "errors", t)
            if detail not in ("0", "0.0"):
                open_[(node, "errors")] = (t, detail)
    for (node, kind) in list(open_):
        close(node, kind, res.until)
    return sorted(rows, key=lambda r: (r[2], r[0]))  # by start, then node (stable)


def fault_rows(res: Result) -> list[tuple[str, str, float, float, str]]:
    """:func:`fault_intervals` as a list of ``(node, kind, start, end, detail)``
    tuples, cached: what figures filter on every redraw."""
    return cached(res, "fault_rows", lambda: _fault_rows(res))  # type: ignore[no-any-return]


def fault_intervals(res: Result) -> pd.DataFrame:
    """One row per fault period: ``node, kind, start, end, detail``.

    ``kind`` is ``down`` (crash to restart), ``hung`` (hang to unhang, or to
    a crash), ``partition`` (cut to heal; node ``network``), ``slow``
    (a slowdown factor other than 1) or ``errors`` (an injected error
    rate).  A period still open when the run ended ends at ``until``.
    """
    return cached(res, "fault_intervals", lambda: pd.DataFrame(
        fault_rows(res), columns=["node", "kind", "start", "end", "detail"]))


# -- worker pools -----------------------------------------------------------
def _pool_arrays(res: Result) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    # from the trace's tuples (time, node, busy, queued): building the pools table
    # with pandas costs several times more, on every dashboard run
    rows = res.world.trace.pools
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    if not rows:
        return out
    t, nodes, busy, queued = zip(*rows, strict=True)
    t_a = np.asarray(t, dtype=float)
    busy_a = np.asarray(busy, dtype=float)
    queued_a = np.asarray(queued, dtype=float)
    index: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        index.setdefault(str(node), []).append(i)
    for node, idx in index.items():
        out[node] = (t_a[idx], busy_a[idx], queued_a[idx])
    return out


def pool_arrays(res: Result) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per instance: ``(time, busy, queued)`` arrays of its step functions."""
    return cached(res, "pool_arrays", lambda: _pool_arrays(res))


def nice_step(x: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= ``x``."""
    if not x > 0 or math.isinf(x):
        return 1.0
    exp = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        step = m * 10.0**exp
        if step >= x * (1 - 1e-9):
            return float(step)
    return float(10.0 ** (exp + 1))  # pragma: no cover


#: Mantissas :func:`nice_top` rounds up to: fine enough to waste at most a
#: quarter of an axis, coarse enough that runs of one setting share a limit.
_TOPS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_top(x: float) -> float:
    """``x`` rounded up to a round axis limit (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6 or
    8 times a power of ten).

    Used for the top of a figure's y axis, so that re-running with another
    seed usually keeps the same scale: a learner comparing runs sees the
    data change, not the axis (and a redraw finds its tick labels where
    they were).
    """
    if not x > 0 or math.isinf(x):
        return 1.0
    exp = math.floor(math.log10(x))
    for m in _TOPS:
        top = float(f"{m:g}e{exp}")  # the float nearest 0.3, not 3 * 0.1
        if top >= x * (1 - 1e-9):
            return top
    return float(f"1e{exp + 1}")  # pragma: no cover
