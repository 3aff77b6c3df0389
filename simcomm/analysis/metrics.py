"""Metrics computed from a run's tables (pandas in, numbers or tables out)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["batch_means", "percentile", "time_average", "time_series_on_grid"]


def percentile(values: pd.Series | np.ndarray, q: float) -> float:
    """The q-th percentile (0-100), NaN for no values."""
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, q)) if arr.size else math.nan


def time_average(pools: pd.DataFrame, node: str, column: str, start: float,
                 end: float) -> float:
    """Time-weighted mean of a step function (``busy`` or ``queued``) over
    ``[start, end]`` for one node of the pools table."""
    df = pools[pools["node"] == node]
    if df.empty or end <= start:
        return 0.0
    t = df["time"].to_numpy()
    v = df[column].to_numpy(dtype=float)
    # the value in force at `start` is the last one recorded at or before it
    i0 = np.searchsorted(t, start, side="right") - 1
    times = np.concatenate(([start], t[(t > start) & (t < end)], [end]))
    vals = np.concatenate(([v[i0] if i0 >= 0 else 0.0], v[(t > start) & (t < end)]))
    return float(np.sum(vals * np.diff(times)) / (end - start))


def time_series_on_grid(pools: pd.DataFrame, node: str, column: str,
                        grid: np.ndarray) -> np.ndarray:
    """The step function's value at each time of ``grid`` (last change wins)."""
    df = pools[pools["node"] == node]
    if df.empty:
        return np.zeros(len(grid))
    t = df["time"].to_numpy()
    v = df[column].to_numpy(dtype=float)
    idx = np.searchsorted(t, grid, side="right") - 1
    out = np.where(idx >= 0, v[np.clip(idx, 0, None)], 0.0)
    return out


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
