"""Confidence intervals over replications: the statistics of a sweep.

A sweep runs each parameter combination several times with different
seeds (replications) and keeps one row per run.  :func:`summarize` turns
that runs table into one row per (combination, metric) with the mean over
the replications, its standard error and a Student-t confidence interval --
the interval to use when the number of replications is small (5 runs:
t = 2.78 for 95 %, not the normal 1.96) and the runs are independent,
which replications with their own seeds are.

Pure pandas in, pandas out: the sweep module and the sweep figures both use
it, so a figure's band is exactly the summary's interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simcomm.errors import ParamError

__all__ = ["SUMMARY_COLUMNS", "check_confidence", "grid_fields", "summarize", "t_interval"]

#: The columns :func:`summarize` adds after the grid fields, in order.
SUMMARY_COLUMNS = ("metric", "mean", "se", "ci_low", "ci_high", "n")

#: Columns of a runs table that are neither parameters nor metrics.
_RUN_COLUMNS = ("replication", "seed")


def grid_fields(runs: pd.DataFrame) -> list[str]:
    """The parameter columns of a runs table, in order.

    ``runs.attrs["grid"]`` names them when the table came from
    ``simcomm.sweep``; a table built otherwise has them before its
    ``replication`` column (the runs table's layout).  A table with neither
    has no parameter columns (one combination).
    """
    grid = runs.attrs.get("grid")
    if grid:
        return [str(f) for f in grid if f in runs.columns]
    cols = [str(c) for c in runs.columns]
    return cols[:cols.index("replication")] if "replication" in cols else []


def t_interval(mean: np.ndarray, se: np.ndarray, n: np.ndarray,
               confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``: the Student-t interval ``mean ± t(conf, n-1) · se``.

    NaN where ``n < 2`` (one run says nothing about its spread); a zero
    ``se`` (every replication the same) gives a zero-width interval.
    """
    # the quantile function scipy.stats.t.ppf calls, without importing
    # scipy.stats (a second of CPU on first use; scipy.special is half that)
    from scipy.special import stdtrit

    n = np.asarray(n, dtype=float)
    mean = np.asarray(mean, dtype=float)
    se = np.asarray(se, dtype=float)
    dof = np.where(n >= 2, n - 1, np.nan)
    half = stdtrit(dof, 0.5 + confidence / 2) * se
    return mean - half, mean + half


def check_confidence(confidence: Any) -> float:
    """``confidence`` as a float, or a ParamError unless it is strictly between 0 and 1."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) \
            or not 0 < float(confidence) < 1:
        raise ParamError("confidence", confidence, "a probability between 0 and 1, e.g. 0.95")
    return float(confidence)


def _metric_columns(runs: pd.DataFrame, keys: Sequence[str],
                    metrics: Sequence[str] | None) -> list[str]:
    """The metric columns to summarise: those asked for, checked, or every
    numeric column that is not a parameter, ``replication`` or ``seed``."""
    candidates = [str(c) for c in runs.columns
                  if c not in keys and c not in _RUN_COLUMNS
                  and pd.api.types.is_numeric_dtype(runs[c])]
    if metrics is None:
        return candidates
    if isinstance(metrics, str):
        metrics = [metrics]
    chosen = [str(m) for m in metrics]
    for m in chosen:
        if m not in candidates:
            raise ParamError("metrics", m, "numeric columns of the runs table: "
                             + (", ".join(candidates) or "(none)"))
    if not chosen:
        raise ParamError("metrics", list(metrics), "at least one metric column")
    return chosen


def summarize(runs: pd.DataFrame, metrics: Sequence[str] | None = None, *,
              confidence: float = 0.95, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, standard error and Student-t confidence interval per combination.

    ``runs`` is a runs table (one row per combination and replication, see
    ``simcomm.sweep``).  Returns a LONG table, one row per (combination,
    metric), combinations in the order they first appear and metrics in
    column order: the parameter columns (``by``, default
    :func:`grid_fields`), then ``metric``, ``mean``, ``se`` (sample
    standard deviation / √n, NaN for n < 2), ``ci_low`` and ``ci_high``
    (``mean ± t · se`` with t the Student quantile for ``confidence`` and
    n - 1 degrees of freedom, NaN for n < 2) and ``n`` (replications with a
    number for that metric: a run with no completed request has a NaN mean
    latency, left out).  ``metrics`` picks metric columns (default: every
    numeric column but the parameters, ``replication`` and ``seed``; a flag
    such as ``stable`` becomes the share of runs where it held).  ``attrs``
    keeps the runs' attrs and adds ``confidence``.
    """
    if not isinstance(runs, pd.DataFrame):
        raise ParamError("runs", type(runs).__name__, "a runs table (pandas DataFrame)")
    conf = check_confidence(confidence)
    keys = grid_fields(runs) if by is None else [str(b) for b in by]
    for k in keys:
        if k not in runs.columns:
            raise ParamError("by", k, "columns of the runs table: "
                             + ", ".join(map(str, runs.columns)))
    cols = _metric_columns(runs, keys, metrics)
    values = runs[cols].astype(float)
    if keys:
        groups = values.groupby([runs[k] for k in keys], sort=False, dropna=False)
    else:  # a sweep without a grid: one combination
        groups = values.groupby(np.zeros(len(runs), dtype=int), sort=False)
    mean, std, n = groups.mean(), groups.std(ddof=1), groups.count()
    combos, m = len(mean), len(cols)
    n_ = n.to_numpy(dtype=float).ravel()
    mean_ = mean.to_numpy(dtype=float).ravel()
    se_ = np.where(n_ >= 2, std.to_numpy(dtype=float).ravel() / np.sqrt(np.maximum(n_, 1)),
                   np.nan)
    low, high = t_interval(mean_, se_, n_, conf)
    if keys:
        index = mean.index.to_frame(index=False)
        index.columns = keys
        out = index.iloc[np.repeat(np.arange(combos), m)].reset_index(drop=True)
    else:
        out = pd.DataFrame(index=range(combos * m))
    out["metric"] = np.tile(np.array(cols, dtype=object), combos)
    out["mean"] = mean_
    out["se"] = se_
    out["ci_low"] = low
    out["ci_high"] = high
    out["n"] = n_.astype(int)
    out.attrs.update(runs.attrs)
    out.attrs["confidence"] = conf
    return out

