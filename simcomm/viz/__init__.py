"""Figures of a run: each a function from a Result to a matplotlib Figure.

viz only draws: give a figure the Result that ``simcomm.run`` returned.

    >>> from simcomm import viz
    >>> fig = viz.latency_over_time(res)        # doctest: +SKIP
    >>> fig.savefig("latency.png")              # doctest: +SKIP

Figures are plain :class:`matplotlib.figure.Figure` objects built without
pyplot: nothing is registered with pyplot, no global rcParams change, and
no window opens; in Jupyter a cell ending in one shows it (see
:mod:`simcomm.viz.display`).  Single-axes figures take ``ax=`` to draw into
a dashboard's own axes.  Colours follow Okabe & Ito's colour-blind-safe
palette with one fixed colour per request outcome (:mod:`simcomm.viz.style`).

Partial failure has figures of its own (:mod:`simcomm.viz.resilience`):
``breaker_states``, ``outcomes_by_endpoint``, ``pool_by_endpoint`` and
``load_vs_goodput``, with their data as tables (``breaker_intervals``,
``edge_call_rates``, ``endpoint_occupancy``, ``load_rates``).

Asynchronous messaging has its own too (:mod:`simcomm.viz.messaging`):
``queue_depth``, ``message_flow``, ``message_sequence`` (channels as
lifelines), ``message_latency``, ``consumer_share``, ``message_order`` and
``availability_over_time``, with ``availability_comparison`` for the §3.4
table, and their data as tables (``queue_series``, ``consumer_series``,
``flow_graph``, ``message_latencies``, ``consumer_counts``,
``consume_order``, ``availability_windows``, ``availability_formula``).

Sharded channels, consumer groups and delivery guarantees have theirs
(:mod:`simcomm.viz.ordering`): ``partition_assignment``, ``consumer_lag``,
``key_order``, ``delivery_causes`` and ``outbox_lag``, with
``delivery_matrix_figure`` for the table ``simcomm.delivery_matrix`` makes.

Service discovery has its own (:mod:`simcomm.viz.discovery`):
``instance_timeline`` (each instance's life against when it was registered
and visible to callers, the detection lag as a band), ``stale_calls_over_time``
and ``load_share``, with ``load_share_comparison`` for several runs (one
per balancer), and their data as tables (``timeline_intervals``,
``stale_series``, ``load_shares``).

Sweeps have theirs (:mod:`simcomm.viz.sweeps`), drawn from the table
``simcomm.sweep`` returns or its ``simcomm.summarize`` summary:
``sweep_lines`` (a metric against a parameter, a line per value of a
second, Student-t confidence bands) and ``sweep_heatmap`` (a metric over a
grid of two parameters), with their numbers as a table (``sweep_cells``).

``VIEWS`` maps the names scenarios list in their ``views`` to the figure
functions; ``view(name, res)`` draws one by name, and ``redraw(name, res,
fig)`` draws it again into a figure it drew before, updating the artists
in place (what a dashboard does after every run: see
:mod:`simcomm.viz.reuse`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from simcomm.errors import ParamError
from simcomm.viz import (
    data,
    discovery,
    messaging,
    ordering,
    resilience,
    reuse,
    style,
    sweeps,
    timeseries,
)
from simcomm.viz.data import fault_intervals
from simcomm.viz.discovery import (
    instance_timeline,
    load_share,
    load_share_comparison,
    load_shares,
    stale_calls_over_time,
    stale_series,
    timeline_intervals,
)
from simcomm.viz.display import enable_inline
from simcomm.viz.formats import formats_comparison, formats_sweep_figure
from simcomm.viz.messaging import (
    availability_comparison,
    availability_formula,
    availability_over_time,
    availability_windows,
    consume_order,
    consumer_counts,
    consumer_series,
    consumer_share,
    flow_graph,
    message_flow,
    message_latencies,
    message_latency,
    message_order,
    message_sequence,
    queue_depth,
    queue_series,
)
from simcomm.viz.ordering import (
    consumer_lag,
    delivery_causes,
    delivery_matrix_figure,
    key_order,
    outbox_lag,
    partition_assignment,
)
from simcomm.viz.resilience import (
    breaker_intervals,
    breaker_states,
    call_edges,
    edge_call_rates,
    endpoint_occupancy,
    load_rates,
    load_vs_goodput,
    outcomes_by_endpoint,
    pool_by_endpoint,
    service_capacity,
)
from simcomm.viz.sequence import sequence_diagram
from simcomm.viz.style import OKABE_ITO, OUTCOME_COLORS, OUTCOMES
from simcomm.viz.sweeps import sweep_cells, sweep_heatmap, sweep_lines
from simcomm.viz.theory import (
    theory_curve,
    theory_sweep_figure,
    theory_vs_simulation,
    unstable_band,
)
from simcomm.viz.timeseries import (
    fault_bands,
    latency_over_time,
    outcome_rates,
    outcomes_over_time,
    pool_usage,
)
from simcomm.viz.topology import call_graph, topology, topology_state

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from simcomm.result import Result

__all__ = [
    "OKABE_ITO", "OUTCOMES", "OUTCOME_COLORS", "VIEWS", "availability_comparison",
    "availability_formula", "availability_over_time", "availability_windows",
    "breaker_intervals", "breaker_states", "call_edges", "call_graph", "close",
    "consume_order", "consumer_counts", "consumer_lag", "consumer_series", "consumer_share",
    "delivery_causes", "delivery_matrix_figure", "discovery", "edge_call_rates",
    "enable_inline", "endpoint_occupancy", "fault_bands", "fault_intervals", "flow_graph",
    "formats_comparison", "formats_sweep_figure", "instance_timeline", "key_order",
    "latency_over_time", "load_rates", "load_share", "load_share_comparison", "load_shares",
    "load_vs_goodput", "message_flow", "message_latencies", "message_latency",
    "message_order", "message_sequence", "messaging", "ordering", "outbox_lag",
    "outcome_rates", "outcomes_by_endpoint", "outcomes_over_time", "partition_assignment",
    "pool_by_endpoint", "pool_usage", "queue_depth", "queue_series", "redraw", "reuse",
    "sequence_diagram", "service_capacity", "stale_calls_over_time", "stale_series", "style",
    "sweep_cells", "sweep_heatmap", "sweep_lines", "sweeps", "theory_curve",
    "theory_sweep_figure", "theory_vs_simulation", "timeline_intervals",
    "topology", "topology_state", "unstable_band", "view"
]

#: The figures by the names scenarios use in their ``views``.
VIEWS: dict[str, Callable[..., Figure]] = {
    "latency_over_time": latency_over_time,
    "outcomes_over_time": outcomes_over_time,
    "pool_usage": pool_usage,
    "topology": topology,
    "theory_vs_simulation": theory_vs_simulation,
    "sequence_diagram": sequence_diagram,
    "breaker_states": breaker_states,
    "outcomes_by_endpoint": outcomes_by_endpoint,
    "pool_by_endpoint": pool_by_endpoint,
    "load_vs_goodput": load_vs_goodput,
    "queue_depth": queue_depth,
    "message_flow": message_flow,
    "message_sequence": message_sequence,
    "message_latency": message_latency,
    "consumer_share": consumer_share,
    "message_order": message_order,
    "availability_over_time": availability_over_time,
    "partition_assignment": partition_assignment,
    "consumer_lag": consumer_lag,
    "key_order": key_order,
    "delivery_causes": delivery_causes,
    "outbox_lag": outbox_lag,
    "instance_timeline": instance_timeline,
    "stale_calls_over_time": stale_calls_over_time,
    "load_share": load_share,
}

#: Views drawn on several axes, given back to them as ``axes=`` by :func:`redraw`.
_MULTI = ("pool_usage", "breaker_states", "outcomes_by_endpoint", "pool_by_endpoint",
          "load_vs_goodput", "queue_depth", "message_order", "outbox_lag")


def view(name: str, res: Result, **kwargs: Any) -> Figure:
    """The figure called ``name`` (a key of :data:`VIEWS`) for ``res``.

    An unknown name raises :class:`~simcomm.errors.ParamError` listing the
    known ones.  Keyword arguments go to the figure function.
    """
    try:
        fn = VIEWS[name]
    except (KeyError, TypeError):
        raise ParamError("view", name, "one of " + ", ".join(VIEWS)) from None
    return fn(res, **kwargs)


#: Where a figure made by :func:`redraw` remembers its view and the shape
#: of the system it shows.
_REDRAW = "_simcomm_redraw"


def _shape(name: str, res: Result, kwargs: dict[str, Any]) -> tuple[str, ...]:
    """What fixes a view's layout: its rows (worker pools, edges, endpoints) or
    its nodes.

    A figure is reused only for a run of the same shape; a deeper chain
    needs more rows, or a wider diagram, and gets a new figure.
    """
    if name == "pool_usage":
        return tuple(data.instances(res))
    if name == "breaker_states":
        return tuple(f"{a}→{b}" for a, b in call_edges(res))
    if name == "outcomes_by_endpoint":
        return tuple(timeseries._endpoints(res))
    if name == "pool_by_endpoint":
        return tuple(resilience._callers(res))
    if name in ("topology", "sequence_diagram"):
        return tuple(res.world.nodes)
    if name == "queue_depth":  # a row per queue, a lane per consumer
        queues, consumers, _ = messaging._queue_rows(res, kwargs.get("queues"))
        return (*queues, "|", *consumers)
    if name == "message_order":
        return tuple(messaging._order_rows(res, kwargs.get("consumers")))
    if name == "partition_assignment":  # a strip per partition sets the height
        return tuple(map(str, ordering._assign_rows(res, kwargs.get("partitions"))))
    if name == "message_flow":
        return tuple(sorted(messaging.flow_graph(res).nodes))
    if name == "message_sequence":  # its lifelines set the figure's width
        return messaging._lifelines(res, **kwargs)
    if name == "instance_timeline":  # its rows and its legend set the height
        return discovery._timeline_shape(res, **kwargs)
    return ()


def redraw(name: str, res: Result, fig: Figure | Sequence[Figure] | None = None,
           **kwargs: Any) -> Figure:
    """The figure of view ``name`` for ``res``, drawn into ``fig`` if it can be.

    ``fig`` is a figure this function returned before for the same view (or
    a sequence of them: the first of the right shape is used).
    If it shows a system of the same shape (the same worker pools, the same
    nodes), its artists are updated in place -- no new axes, ticks or
    texts, which is most of what building a figure costs -- and ``fig``
    itself is returned.  Otherwise (or with ``fig=None``) a new figure is
    drawn and returned; the caller can drop the old one.  Keyword
    arguments go to the figure function, as for :func:`view`.
    """
    shape = (name, _shape(name, res, kwargs), tuple(sorted(kwargs.items(), key=str)))
    kept = [] if fig is None else list(fig) if isinstance(fig, Sequence) else [fig]
    fig = next((f for f in kept if getattr(f, _REDRAW, None) == shape), None)
    if fig is not None:
        rows = [ax for ax in fig.axes
                if ax.get_label() not in ("queue", "<colorbar>")
                and getattr(ax, "_colorbar", None) is None]
        if name in _MULTI:
            view(name, res, axes=rows, **kwargs)
        else:
            view(name, res, ax=rows[0], **kwargs)
        return fig
    fig = view(name, res, **kwargs)
    setattr(fig, _REDRAW, shape)
    return fig


def close(fig: Figure) -> None:
    """Release a figure's memory: clear it (and close it if pyplot knows it)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # a no-op for figures pyplot does not manage
        pyplot.close(fig)
    fig.clear()


enable_inline()
