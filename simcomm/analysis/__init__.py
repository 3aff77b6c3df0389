"""Metrics from traces, delivery ledgers of keyed records, and queueing theory to
compare them with."""

from simcomm.analysis import delivery, theory
from simcomm.analysis.delivery import delivery_row
from simcomm.analysis.metrics import (
    batch_means,
    cumulative,
    percentile,
    steady_mean,
    step_integral,
    step_means,
    step_value,
    time_average,
)
from simcomm.analysis.theory import (
    QueueMetrics,
    chain_availability,
    erlang_c,
    little_l,
    md1,
    mg1,
    mgc,
    mgc_is_exact,
    mm1,
    mmc,
    theory_curve,
)

__all__ = [
    "QueueMetrics",
    "batch_means",
    "chain_availability",
    "cumulative",
    "delivery",
    "delivery_row",
    "erlang_c",
    "little_l",
    "md1",
    "mg1",
    "mgc",
    "mgc_is_exact",
    "mm1",
    "mmc",
    "percentile",
    "steady_mean",
    "step_integral",
    "step_means",
    "step_value",
    "theory",
    "theory_curve",
    "time_average",
]
