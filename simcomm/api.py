"""The top-level functions: run a scenario by name, list and describe them."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.scenarios import base

__all__ = ["PROGRESS_SLICES", "compare", "describe", "explore", "playback", "prepare", "run",
           "scenarios", "simulate"]

#: Slices of simulated time a run with a progress callback goes in: enough
#: for a smooth bar, few enough that slicing costs nothing measurable.
PROGRESS_SLICES = 20


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


def simulate(scenario: base.Scenario, params: Any, seed: int, until: float, *,
             trace: bool = True,
             progress: Callable[[float], None] | None = None) -> Result:
    """Build and run an already checked scenario (see :func:`prepare`).

    With ``progress``, the run goes in :data:`PROGRESS_SLICES` slices of
    simulated time and ``progress(fraction)`` is called after each, so a
    dashboard can move a bar while the kernel is busy.  Slicing does not
    change the run: SimPy stops before the events at a slice's end and
    resumes with them, so the trace is the same as one ``world.run(until)``.
    """
    world = World(seed, trace=trace)
    scenario.build(world, params)
    slices = PROGRESS_SLICES if progress is not None else 1
    for i in range(1, slices + 1):
        world.run(until if i == slices else until * i / slices)
        if progress is not None:
            progress(i / slices)
    return Result(world, scenario, params)


def run(scenario: str | base.Scenario, seed: int = 0, until: float | None = None, *,
        trace: bool = True, **params: Any) -> Result:
    """Run ``scenario`` with ``params`` (field=value) and return its Result.

    ``until`` is the simulated time in seconds (the scenario's default if
    omitted); ``trace=False`` records only the request table and the
    timeline events (no message or pool rows), for speed in long sweeps.
    Every argument is checked before the run starts.
    """
    sc, p, until = prepare(scenario, seed, until, **params)
    return simulate(sc, p, seed, until, trace=trace)


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
