"""The top-level functions: run a scenario by name, list and describe them."""

from __future__ import annotations

import math
from typing import Any

from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.scenarios import base

__all__ = ["compare", "describe", "explore", "playback", "prepare", "run", "scenarios"]


def scenarios() -> list[str]:
    """The names of the registered scenarios."""
    return base.names()


def prepare(scenario: str | base.Scenario, seed: int = 0, until: float | None = None,
            **params: Any) -> tuple[base.Scenario, Any, float]:
    """Check everything about a run before time zero: scenario, params, seed, until."""
    sc = base.get(scenario)
    p = base.make_params(sc, params)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ParamError("seed", seed, "a whole number >= 0")
    until = sc.until if until is None else until
    if (not isinstance(until, (int, float)) or isinstance(until, bool) or not until > 0
            or math.isinf(until)):
        raise ParamError("until", until, "a finite time in seconds > 0")
    return sc, p, float(until)


def run(scenario: str | base.Scenario, seed: int = 0, until: float | None = None, *,
        trace: bool = True, **params: Any) -> Result:
    """Run ``scenario`` with ``params`` (field=value) and return its Result.

    ``until`` is the simulated time in seconds (the scenario's default if
    omitted); ``trace=False`` records only the request table and the
    timeline events (no message or pool rows), for speed in long sweeps.
    Every argument is checked before the run starts.
    """
    sc, p, until = prepare(scenario, seed, until, **params)
    world = World(seed, trace=trace)
    sc.build(world, p)
    world.run(until)
    return Result(world, sc, p)


def describe(scenario: str | base.Scenario) -> list[dict[str, Any]]:
    """One dict per field: name, type, default, allowed values, unit, help."""
    sc = base.get(scenario)
    return [{"field": f.name, "type": f.type.__name__, "default": f.default,
             "allowed": f.allowed(), "unit": f.unit, "help": f.help} for f in sc.fields()]


def explore(scenario: str | base.Scenario, **kwargs: Any) -> Any:
    """The widget dashboard for ``scenario`` (see :func:`simcomm.widgets.explore`)."""
    from simcomm.widgets import explore as _explore

    return _explore(scenario, **kwargs)


def compare(scenario: str | base.Scenario, a: dict[str, Any], b: dict[str, Any],
            **kwargs: Any) -> Any:
    """Two settings side by side (see :func:`simcomm.widgets.compare`)."""
    from simcomm.widgets import compare as _compare

    return _compare(scenario, a=a, b=b, **kwargs)


def playback(result: Any, **kwargs: Any) -> Any:
    """Step through a run's simulated time (see :func:`simcomm.widgets.playback`)."""
    from simcomm.widgets import playback as _playback

    return _playback(result, **kwargs)
