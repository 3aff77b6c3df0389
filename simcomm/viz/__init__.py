"""Figures of a run: each a function from a Result to a matplotlib Figure.

    >>> import simcomm
    >>> from simcomm import viz
    >>> res = simcomm.run("chain")
    >>> fig = viz.latency_over_time(res)        # doctest: +SKIP
    >>> fig.savefig("latency.png")              # doctest: +SKIP

Figures are plain :class:`matplotlib.figure.Figure` objects built without
pyplot: nothing is registered with pyplot, no global rcParams change, and
no window opens; in Jupyter a cell ending in one shows it (see
:mod:`simcomm.viz.display`).  Single-axes figures take ``ax=`` to draw into
a dashboard's own axes.  Colours follow Okabe & Ito's colour-blind-safe
palette with one fixed colour per request outcome (:mod:`simcomm.viz.style`).

``VIEWS`` maps the names scenarios list in their ``views`` to the figure
functions; ``view(name, res)`` draws one by name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simcomm.errors import ParamError
from simcomm.viz import style
from simcomm.viz.data import fault_intervals
from simcomm.viz.display import enable_inline
from simcomm.viz.formats import formats_comparison, formats_sweep_figure
from simcomm.viz.sequence import sequence_diagram
from simcomm.viz.style import OKABE_ITO, OUTCOME_COLORS, OUTCOMES
from simcomm.viz.theory import (
    theory_curve,
    theory_sweep,
    theory_sweep_figure,
    theory_vs_simulation,
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
    "OKABE_ITO", "OUTCOMES", "OUTCOME_COLORS", "VIEWS", "call_graph", "close", "enable_inline",
    "fault_bands", "fault_intervals", "formats_comparison", "formats_sweep_figure",
    "latency_over_time", "outcome_rates",
    "outcomes_over_time", "pool_usage", "sequence_diagram", "style", "theory_curve",
    "theory_sweep", "theory_sweep_figure", "theory_vs_simulation", "topology",
    "topology_state", "view",
]

#: The figures by the names scenarios use in their ``views``.
VIEWS: dict[str, Callable[..., Figure]] = {
    "latency_over_time": latency_over_time,
    "outcomes_over_time": outcomes_over_time,
    "pool_usage": pool_usage,
    "topology": topology,
    "theory_vs_simulation": theory_vs_simulation,
    "sequence_diagram": sequence_diagram,
}


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


def close(fig: Figure) -> None:
    """Release a figure's memory: clear it (and close it if pyplot knows it)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # a no-op for figures pyplot does not manage
        pyplot.close(fig)
    fig.clear()


enable_inline()
