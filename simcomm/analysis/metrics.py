"""Metrics computed from a run's tables (pandas in, numbers or tables out)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["batch_means", "cumulative", "percentile", "step_integral", "step_means",
           "step_value", "time_average", "time_averages"]


def percentile(values: pd.Series | np.ndarray, q: float) -> float:
    """The q-th percentile (0-100), NaN for no values."""
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, q)) if arr.size else math.nan


def step_value(t: np.ndarray, v: np.ndarray, at: np.ndarray | float) -> np.ndarray:
    """The value of the step function ``(t, v)`` at ``at`` (0 before the first step).

    A pool's busy count or queue length is such a function: ``v[i]`` holds
    from ``t[i]`` until the next change.
    """
    idx = np.searchsorted(t, at, side="right") - 1
    return np.where(idx >= 0, v[np.clip(idx, 0, None)], 0.0)


def cumulative(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Area under the step function from its first change up to each change."""
    return np.concatenate(([0.0], np.cumsum(v[:-1] * np.diff(t))))


def step_integral(t: np.ndarray, v: np.ndarray, cum: np.ndarray,
                  at: np.ndarray) -> np.ndarray:
    """Area under the step function from time 0 to each time in ``at``
    (``cum`` is :func:`cumulative` of the same function, computed once)."""
    idx = np.searchsorted(t, at, side="right") - 1
    safe = np.clip(idx, 0, None)
    area = cum[safe] + v[safe] * (at - t[safe])
    return np.where(idx >= 0, area, 0.0)


def step_means(t: np.ndarray, v: np.ndarray, edges: np.ndarray,
               cum: np.ndarray | None = None) -> np.ndarray:
    """Time-weighted mean of the step function in each bin between ``edges``."""
    if t.size == 0:
        return np.zeros(len(edges) - 1)
    if cum is None:
        cum = cumulative(t, v)
    area = step_integral(t, v, cum, np.asarray(edges, dtype=float))
    return np.diff(area) / np.diff(edges)


def time_average(pools: pd.DataFrame, node: str, column: str, start: float,
                 end: float) -> float:
    """Time-weighted mean of a step function (``busy`` or ``queued``) over
    ``[start, end]`` for one node of the pools table."""
    df = pools[pools["node"] == node]
    if df.empty or end <= start:
        return 0.0
    t = df["time"].to_numpy(dtype=float)
    v = df[column].to_numpy(dtype=float)
    return float(step_means(t, v, np.array([start, end], dtype=float))[0])


def time_averages(pools: Any, column: str, start: float, end: float) -> dict[str, float]:
    """Time-weighted mean of ``column`` (``busy`` or ``queued``) over
    ``[start, end]`` for every node of the pools table: what
    :func:`time_average` gives node by node, read in one pass a chunk at a
    time from the trace's pools table (a :class:`~simcomm.engine.trace.Table`,
    which may be larger than memory), or from a DataFrame.

    Each node's value holds from one of its rows to its next (0 before the
    first); the rows of a node are in time order, as the trace records them.
    """
    if isinstance(pools, pd.DataFrame):
        return {str(node): time_average(pools, node, column, start, end)
                for node in pd.unique(pools["node"])}
    if end <= start:
        return {}
    ids: dict[Any, int] = {}
    last_t = np.zeros(0)
    last_v = np.zeros(0)
    area = np.zeros(0)
    seen = np.zeros(0, dtype=bool)
    for b in pools.batches():
        codes, values = b.codes("node")
        gid_of = np.array([ids.setdefault(v, len(ids)) for v in values] or [0],
                          dtype=np.int64)
        g = gid_of[codes]
        if len(ids) > last_t.size:
            grow = len(ids) - last_t.size
            last_t = np.concatenate([last_t, np.zeros(grow)])
            last_v = np.concatenate([last_v, np.zeros(grow)])
            area = np.concatenate([area, np.zeros(grow)])
            seen = np.concatenate([seen, np.zeros(grow, dtype=bool)])
        t = b.floats("time")
        v = b.floats(column)
        order = np.argsort(g, kind="stable")
        g, t, v = g[order], t[order], v[order]
        firsts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        # each node's open step from the previous batch ends at its first row here
        fg = g[firsts]
        carried = seen[fg]
        area[fg[carried]] += _overlap(last_t[fg[carried]], t[firsts][carried],
                                      last_v[fg[carried]], start, end)
        # the steps between consecutive rows of one node
        same = g[1:] == g[:-1]
        if same.any():
            np.add.at(area, g[:-1][same], _overlap(t[:-1][same], t[1:][same],
                                                   v[:-1][same], start, end))
        lasts = np.r_[firsts[1:] - 1, g.size - 1]
        last_t[g[lasts]] = t[lasts]
        last_v[g[lasts]] = v[lasts]
        seen[g[lasts]] = True
    area[seen] += _overlap(last_t[seen], np.full(int(seen.sum()), float(end)), last_v[seen],
                           start, end)
    return {str(node): float(area[i] / (end - start)) for node, i in ids.items()
            if seen[i]}


def _overlap(a: np.ndarray, b: np.ndarray, v: np.ndarray, start: float,
             end: float) -> np.ndarray:
    """Area of the steps of value ``v`` over ``[a, b)`` within ``[start, end]``."""
    width = np.minimum(b, end) - np.maximum(a, start)
    return np.where(width > 0, v * width, 0.0)


def batch_means(values: np.ndarray | pd.Series, batches: int = 20) -> tuple[float, float]:
    """Mean and its standard error by the method of batch means.

    Consecutive observations of a queue are correlated, so the naive
    ``std / sqrt(n)`` understates the error; means of long consecutive
    batches are nearly independent, and their spread gives an honest one.
    """
    arr = np.asarray(values, dtype=float)
    n = arr.size // batches
    if n < 1:
        raise ValueError(f"need at least {batches} values, got {arr.size}")
    means = arr[: n * batches].reshape(batches, n).mean(axis=1)
    return float(arr.mean()), float(means.std(ddof=1) / math.sqrt(batches))


def steady_mean(res: Any, warmup: float = 0.1, batches: int = 20) -> tuple[float, float, int]:
    """Mean latency of a run's ok requests after its warm-up, with a batch-means
    standard error: ``(mean, se, n)``.

    ``warmup`` is the fraction of the run dropped (requests that started
    before ``warmup * until``); the standard error is NaN with fewer than
    two requests per batch, and the mean too with none.  ``res`` is a
    :class:`~simcomm.result.Result`.
    """
    rq = res.requests
    ok = rq[(rq["outcome"] == "ok") & (rq["start"] >= warmup * res.until)]
    lat = ok.sort_values("start", kind="stable")["latency"].to_numpy(dtype=float)
    if lat.size == 0:
        return math.nan, math.nan, 0
    if lat.size < 2 * batches:
        return float(lat.mean()), math.nan, int(lat.size)
    mean, se = batch_means(lat, batches)
    return mean, se, int(lat.size)
