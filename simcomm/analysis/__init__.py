"""Metrics from traces and queueing theory to compare them with."""

from simcomm.analysis import theory
from simcomm.analysis.metrics import batch_means, percentile, time_average, time_series_on_grid
from simcomm.analysis.theory import (
    QueueMetrics,
    chain_availability,
    erlang_c,
    little_l,
    md1,
    mg1,
    mm1,
    mmc,
)

__all__ = [
    "QueueMetrics", "batch_means", "chain_availability", "erlang_c", "little_l", "md1",
    "mg1", "mm1", "mmc", "percentile", "theory", "time_average", "time_series_on_grid",
]
