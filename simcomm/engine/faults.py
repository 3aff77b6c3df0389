"""Faults and repairs on a schedule, and random outages from an availability.

A fault schedule is a list of fault objects, each naming the instance, the
time it starts and (optionally) how long it lasts.  ``install`` checks them
all against the world before time zero, so a typo in a node name fails
before anything runs.

:class:`Outages` turns an *availability* into alternating up and down
periods: exponential times to failure with mean MTBF and exponential
repairs with mean MTTR, where ``A = MTBF / (MTBF + MTTR)`` -- the textbook
steady-state availability.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.nodes import Instance
    from simcomm.engine.world import World

__all__ = ["Crash", "ErrorRate", "Fault", "Hang", "Outages", "Slowdown", "install"]


def _check_time(field: str, value: float | None, *, allow_none: bool = False) -> float | None:
    """``value`` as a plain float (any real number, numpy's too), or a ParamError."""
    if value is None and allow_none:
        return None
    time = as_real(value)
    if time is None or not time >= 0 or math.isinf(time):
        raise ParamError(field, value, "a finite time in seconds >= 0")
    return time


@dataclass(frozen=True)
class Fault:
    """Something that happens to ``node`` at time ``at`` for ``duration`` s."""

    node: str
    at: float
    duration: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _check_time("at", self.at))
        object.__setattr__(self, "duration",
                           _check_time("duration", self.duration, allow_none=True))

    def start(self, inst: Instance) -> Any:
        """Make the fault happen; what it returns is handed to :meth:`end`."""
        raise NotImplementedError

    def end(self, inst: Instance, token: Any = None) -> None:
        """Undo the fault ``duration`` s after it started (``token``: what
        :meth:`start` returned)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Crash(Fault):
    """The process dies at ``at`` and restarts ``duration`` s later (never if None)."""

    def start(self, inst: Instance) -> None:
        inst.crash(repair_after=self.duration)

    def end(self, inst: Instance, token: Any = None) -> None:
        pass  # the restart is scheduled by crash()


@dataclass(frozen=True)
class Hang(Fault):
    """The instance stops replying from ``at`` for ``duration`` s (forever if None).

    A hang that starts while the instance is down does not happen (recorded
    as ``hang_skipped``), and its end then does nothing; a crash during the
    hang ends it (see :mod:`simcomm.engine.nodes`).
    """

    def start(self, inst: Instance) -> Any:
        return inst.hang()

    def end(self, inst: Instance, token: Any = None) -> None:
        if token is not None:  # None: the hang never started
            inst.unhang(token)


@dataclass(frozen=True)
class Slowdown(Fault):
    """Work takes ``factor`` times longer from ``at`` for ``duration`` s."""

    factor: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        factor = as_real(self.factor)
        if factor is None or not factor > 0 or math.isinf(factor):
            raise ParamError("factor", self.factor, "a number > 0")
        object.__setattr__(self, "factor", factor)

    def start(self, inst: Instance) -> None:
        inst.slow_down(self.factor)

    def end(self, inst: Instance, token: Any = None) -> None:
        inst.slow_down(1.0)


@dataclass(frozen=True)
class ErrorRate(Fault):
    """Requests fail with probability ``rate`` from ``at`` for ``duration`` s."""

    rate: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        rate = as_real(self.rate)
        if rate is None or not 0 <= rate <= 1:
            raise ParamError("rate", self.rate, "a probability from 0 to 1")
        object.__setattr__(self, "rate", rate)

    def start(self, inst: Instance) -> None:
        inst.set_error_rate(self.rate)

    def end(self, inst: Instance, token: Any = None) -> None:
        inst.set_error_rate(0.0)


def _instance(world: World, name: str) -> Instance:
    from simcomm.engine.nodes import Instance

    node = world.nodes.get(name)
    if not isinstance(node, Instance):
        names = sorted(n for n, v in world.nodes.items() if isinstance(v, Instance))
        raise ParamError("node", name, f"the name of a service instance: {', '.join(names)}")
    return node


def install(world: World, faults: Iterable[Fault]) -> None:
    """Schedule every fault in ``faults`` (all checked before any is scheduled)."""
    planned = [(f, _instance(world, f.node)) for f in faults]
    for fault, inst in planned:
        _schedule(world, fault, inst)


def _schedule(world: World, fault: Fault, inst: Instance) -> None:
    """Start ``fault`` at its time and end it after its duration; what start()
    returned (a hang's token) is handed to end()."""
    token: list[Any] = []

    def start() -> None:
        token.append(fault.start(inst))

    def end() -> None:
        fault.end(inst, token[0] if token else None)

    world.at(fault.at, start)
    if fault.duration is not None and not isinstance(fault, Crash):
        world.at(fault.at + fault.duration, end)


class Outages:
    """Random crash/repair cycles giving ``availability`` in the long run.

    ``mean_time_to_repair`` (MTTR) is the mean outage length; the mean time
    between failures follows as ``MTTR * A / (1 - A)``.  Each instance draws
    from its own stream (``outages:<name>``).
    """

    def __init__(self, world: World, node: str, availability: float,
                 mean_time_to_repair: float) -> None:
        fraction, mttr = as_real(availability), as_real(mean_time_to_repair)
        if fraction is None or not 0 < fraction <= 1:
            raise ParamError("availability", availability, "a fraction in (0, 1]")
        if mttr is None or not mttr > 0 or math.isinf(mttr):
            raise ParamError("mean_time_to_repair", mean_time_to_repair, "seconds > 0")
        availability, mean_time_to_repair = fraction, mttr
        self.instance = _instance(world, node)
        self.availability = float(availability)
        self.mttr = float(mean_time_to_repair)
        self.mtbf = (math.inf if availability == 1
                     else self.mttr * availability / (1.0 - availability))
        self._rng = world.stream(f"outages:{node}")
        if availability < 1:
            world.env.process(self._cycle())

    def _cycle(self) -> Generator[Any, Any, None]:
        env = self.instance.env
        rng = self._rng
        while True:
            yield env.timeout(rng.expovariate(1.0 / self.mtbf))
            repair = rng.expovariate(1.0 / self.mttr)
            self.instance.crash(repair_after=repair)
            yield env.timeout(repair)
