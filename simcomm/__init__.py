"""simcomm: watch inter-process communication in microservices succeed and fail.

    >>> import simcomm
    >>> res = simcomm.run("mmc", seed=1, until=1000, servers=3, arrival_rate=2.0)
    >>> res.summary()["availability"]
    1.0

``run`` returns a :class:`Result` (``summary()``, ``requests``, ``trace``,
``pools``, ``messages``, ``events``).  ``scenarios()`` lists what can be
run and ``describe(name)`` its parameters.  Build your own topology with
:class:`World`, :class:`Instance`, :class:`OpenLoop` and friends from
:mod:`simcomm.engine`.

A run is checked whole before time zero: a bad value raises
:class:`ParamError`, and a run too large for the memory budget raises
:class:`RunTooLarge` (``estimate(...)`` says how large a run would be).  A
run that was overloaded issues an :class:`OverloadWarning` naming its
bottleneck.
"""

from typing import Any

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

__version__ = "0.1.0"


def delivery_matrix(*args: Any, **kwargs: Any) -> Any:
    """:func:`simcomm.sweep.delivery_matrix`: Kafka's delivery settings against the
    losses, duplicates and reorders they let through (imported when called, so
    ``import simcomm`` stays free of pandas)."""
    from simcomm.sweep import delivery_matrix as matrix

    return matrix(*args, **kwargs)


__all__ = [
    "ClosedLoop", "Constant", "Crash", "ErrorRate", "Exponential", "Hang", "Instance", "Link",
    "LogNormal", "Message", "Node", "OpenLoop", "Outages", "OverloadWarning", "ParamError",
    "RateSchedule", "Result", "RunTooLarge", "Service", "ServiceError", "SimcommWarning",
    "Slowdown", "Uniform", "World", "__version__", "compare", "delivery_matrix", "describe",
    "estimate", "explore", "playback", "prepare", "run", "scenarios", "simulate", "spike",
]
