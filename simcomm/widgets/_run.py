"""Run a scenario in slices of simulated time, reporting progress in between.

Running to ``until`` in a few slices gives exactly the same trace as one
``world.run(until)`` (SimPy stops *before* the events at each slice's end
and resumes with them), and lets a dashboard move a progress bar while the
kernel is busy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simcomm.engine.world import World
from simcomm.result import Result
from simcomm.scenarios.base import Scenario

__all__ = ["SLICES", "simulate"]

#: Slices of simulated time per run: enough for a smooth bar, few enough
#: that the slicing costs nothing measurable.
SLICES = 20


def simulate(scenario: Scenario, params: Any, seed: int, until: float,
             progress: Callable[[float], None] | None = None) -> Result:
    """Run ``scenario`` with checked ``params`` to ``until``; ``progress(fraction)``
    is called after each slice (it may raise to abandon the run)."""
    world = World(seed)
    scenario.build(world, params)
    slices = SLICES if progress is not None else 1
    for i in range(1, slices + 1):
        world.run(until if i == slices else until * i / slices)
        if progress is not None:
            progress(i / slices)
    return Result(world, scenario, params)
