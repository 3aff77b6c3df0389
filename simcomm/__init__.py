"""simcomm: watch inter-process communication in microservices succeed and fail.

    >>> import simcomm
    >>> res = simcomm.run("mmc", seed=1, until=1000, servers=3, arrival_rate=2.0)
    >>> res.summary()["availability"]
    1.0

``run`` returns a :class:`Result` (``summary()``, ``requests``, ``trace``,
``pools``, ``messages``, ``events``).  ``scenarios()`` lists what can be
run and ``describe(name)`` its parameters.  ``sweep`` runs a scenario over
a grid of parameters and several seeds (here, on local processes or a Dask
cluster) and returns one row per run; ``summarize`` gives each
combination's mean and confidence interval (:mod:`simcomm.sweeps`).
Build your own topology with
:class:`World`, :class:`Instance`, :class:`OpenLoop` and friends from
:mod:`simcomm.engine`.

A run is checked whole before time zero: a bad value raises
:class:`ParamError`, and a run too large for the memory budget raises
:class:`RunTooLarge` (``estimate(...)`` says how large a run would be).  A
run that was overloaded issues an :class:`OverloadWarning` naming its
bottleneck.
"""

from typing import TYPE_CHECKING, Any

from simcomm.api import (
    compare,
    describe,
    estimate,
    explore,
    playback,
    prepare,
    run,
    scenarios,
    simulate,
)
from simcomm.engine import (
    ClosedLoop,
    Constant,
    Crash,
    ErrorRate,
    Exponential,
    Hang,
    Instance,
    Link,
    LogNormal,
    Message,
    Node,
    OpenLoop,
    Outages,
    RateSchedule,
    Service,
    ServiceError,
    Slowdown,
    Uniform,
    World,
    spike,
)
from simcomm.errors import OverloadWarning, ParamError, RunTooLarge, SimcommWarning
from simcomm.result import Result

if TYPE_CHECKING:
    from simcomm.sweeps import delivery_matrix, summarize, sweep

__version__ = "0.1.0"


#: Names the package gives from :mod:`simcomm.sweeps`, imported on first use so
#: that ``import simcomm`` stays free of pandas.
_LAZY = {"sweep": "simcomm.sweeps", "summarize": "simcomm.sweeps",
         "delivery_matrix": "simcomm.sweeps"}


def __getattr__(name: str) -> Any:
    """``simcomm.sweep``, ``simcomm.summarize`` and ``simcomm.delivery_matrix``
    (:mod:`simcomm.sweeps`), loaded when first asked for."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simcomm' has no attribute {name!r}")


__all__ = [
    "ClosedLoop", "Constant", "Crash", "ErrorRate", "Exponential", "Hang", "Instance", "Link",
    "LogNormal", "Message", "Node", "OpenLoop", "Outages", "OverloadWarning", "ParamError",
    "RateSchedule", "Result", "RunTooLarge", "Service", "ServiceError", "SimcommWarning",
    "Slowdown", "Uniform", "World", "__version__", "compare", "delivery_matrix", "describe",
    "estimate", "explore", "playback", "prepare", "run", "scenarios", "simulate", "spike",
    "summarize", "sweep",
]
