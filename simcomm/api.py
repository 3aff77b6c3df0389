"""The top-level functions: run a scenario by name, list and describe them.

Every run is checked whole before time zero (:func:`prepare`): the
scenario, every parameter, ``seed``, ``until``, ``trace`` -- and its size:
a run estimated to need more memory than the budget is refused with
:class:`~simcomm.errors.RunTooLarge` (see :mod:`simcomm.guard`).
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from collections.abc import Callable
from typing import Any, cast

from simcomm import guard
from simcomm._checks import as_real, is_flag, is_whole
from simcomm.engine.randomness import MAX_SEED, SEED_ALLOWED
from simcomm.engine.trace import check_spill
from simcomm.engine.world import World
from simcomm.errors import OverloadWarning, ParamError
from simcomm.guard import Estimate, memory_budget
from simcomm.result import Result
from simcomm.scenarios import base

__all__ = ["PROGRESS_DELAY", "PROGRESS_SLICES", "Estimate", "compare", "describe", "estimate",
           "explore", "memory_budget", "playback", "prepare", "run", "scenarios", "simulate"]

#: Slices of simulated time a run with a progress callback goes in: enough
#: for a smooth bar, few enough that slicing costs nothing measurable.
PROGRESS_SLICES = 20

#: Wall-clock seconds before :func:`run`'s progress bar appears: a short run
#: shows nothing.
PROGRESS_DELAY = 2.0

#: Wall-clock seconds each slice of a run with a progress bar aims to take.
_SLICE_SECONDS = 0.2


def scenarios() -> list[str]:
    """The names of the registered scenarios."""
    return base.names()


def _check_run_args(sc: base.Scenario, seed: Any, until: Any, trace: Any) -> tuple[int, float]:
    """``seed`` and ``until`` as plain numbers; ParamError naming the first bad one."""
    if not is_whole(seed) or not 0 <= seed <= MAX_SEED:
        raise ParamError("seed", seed, SEED_ALLOWED)
    end = as_real(sc.until if until is None else until)
    if end is None or not end > 0 or math.isinf(end):
        raise ParamError("until", until, "a finite time in seconds > 0")
    if not is_flag(trace):
        raise ParamError("trace", trace, "True or False")
    return int(seed), end


def prepare(scenario: str | base.Scenario, seed: int = 0, until: float | None = None, *,
            trace: bool = True, memory_budget: int | str | None = None,
            spill: str | os.PathLike[str] | None = None,
            **params: Any) -> tuple[base.Scenario, Any, float]:
    """Check everything about a run before time zero and return ``(scenario, params, until)``.

    The scenario, every parameter, ``seed`` (a whole number, numpy's too),
    ``until`` (finite seconds > 0; the scenario's default if None) and
    ``trace`` (a bool) -- then the run's size: if :func:`estimate` says it
    needs more memory than ``memory_budget`` (see
    :func:`simcomm.guard.memory_budget`: default half the machine's
    memory, or ``$SIMCOMM_MEMORY_BUDGET``), it raises
    :class:`~simcomm.errors.RunTooLarge`, whose one-line message says
    which ``until`` would fit, whether ``trace=False`` would, and how to
    raise the budget.  ``spill`` (see :func:`run`) is checked too; a
    spilled run's memory is estimated as an untraced one's (its trace goes
    to disk).  Every error is a ParamError naming the field.
    """
    sc = base.get(scenario)
    p = base.make_params(sc, params)
    _, end = _check_run_args(sc, seed, until, trace)
    spilled = check_spill(spill) is not None
    budget = guard.memory_budget(memory_budget)
    guard.check(guard.estimate(sc, p, end, trace=bool(trace) and not spilled), budget)
    return sc, p, end


def estimate(scenario: str | base.Scenario, seed: int = 0, until: float | None = None, *,
             trace: bool = True, **params: Any) -> Estimate:
    """How large a run would be, predicted before time zero (nothing is refused here).

    Takes the arguments of :func:`run` and returns an
    :class:`~simcomm.guard.Estimate`: requests, pending requests at the end,
    messages, trace rows, bytes of memory and a rough wall-clock hint.
    Scenarios that declare their load and capacity (mmc, chain) are sized
    by arithmetic; others by a short measured pilot run.  The bytes come
    from measured costs per row and per waiting request (see
    :mod:`simcomm.guard`: e.g. chain holds about 690 B per request traced,
    140 B untraced; mmc 140 B and 24 B).

        >>> simcomm.estimate("mmc", until=1e9).bytes > 1e11
        True
    """
    sc = base.get(scenario)
    p = base.make_params(sc, params)
    _, end = _check_run_args(sc, seed, until, trace)
    return guard.estimate(sc, p, end, trace=bool(trace))


def simulate(scenario: base.Scenario, params: Any, seed: int, until: float, *,
             trace: bool = True,
             progress: Callable[[float], None] | None = None,
             spill: str | os.PathLike[str] | None = None) -> Result:
    """Build and run an already checked scenario (see :func:`prepare`).

    With ``progress``, the run goes in :data:`PROGRESS_SLICES` slices of
    simulated time and ``progress(fraction)`` is called after each, so a
    dashboard can move a bar while the kernel is busy.  Slicing does not
    change the run: SimPy stops before the events at a slice's end and
    resumes with them, so the trace is the same as one ``world.run(until)``.
    """
    world = World(seed, trace=trace, spill=spill)
    scenario.build(world, params)
    slices = PROGRESS_SLICES if progress is not None else 1
    for i in range(1, slices + 1):
        world.run(until if i == slices else until * i / slices)
        if progress is not None:
            progress(i / slices)
    return Result(world, scenario, params)


def _advance(world: World, until: float, report: Callable[[float], None]) -> None:
    """Run ``world`` to ``until`` in slices of about :data:`_SLICE_SECONDS` wall time.

    ``report(t)`` is called with the simulated time after each slice.  The
    first slice is a thousandth of the run; each next one is scaled by how
    long the last took (at most 4x longer, at least half), so a bar moves
    a few times a second whatever the run's speed.  Slices do not change
    the run (see :func:`simulate`), only when the bar is redrawn.
    """
    step = until / 1000
    smallest = until / 1e6
    while world.now < until:
        end = world.now + step
        if end >= until or end <= world.now:
            end = until
        t0 = time.perf_counter()
        world.run(end)
        wall = time.perf_counter() - t0
        report(end)
        factor = _SLICE_SECONDS / wall if wall > 0 else 4.0
        step = max(smallest, step * min(4.0, max(0.5, factor)))


@functools.lru_cache(maxsize=1)
def progress_bar_class() -> type:
    """tqdm.auto's bar (a widget in a notebook, text on stderr) without its monitor thread.

    tqdm starts a thread with its first bar, to lower ``miniters`` when a
    loop stalls; Pyodide (JupyterLite) cannot start threads -- tqdm would
    catch the error and print a TqdmMonitorWarning under the learner's cell.
    Runs and sweeps (:mod:`simcomm.sweeps`) share it; they update their bars every
    few tenths of a second anyway.
    """
    from tqdm.auto import tqdm

    class Bar(tqdm):  # type: ignore[misc,valid-type]
        monitor_interval = 0

    return Bar


class _Bar:
    """A tqdm.auto bar over simulated seconds (a widget in a notebook, text on stderr).

    Made only once the run has taken ``delay`` wall seconds, so a short run
    neither shows a bar nor pays for importing tqdm.
    """

    def __init__(self, sc: base.Scenario, until: float, delay: float) -> None:
        self.name, self.until, self.delay = sc.name, until, delay
        self.start = time.perf_counter()
        self.bar: Any = None

    def __call__(self, t: float) -> None:
        if self.bar is None:
            if time.perf_counter() - self.start < self.delay:
                return
            self.bar = progress_bar_class()(
                total=self.until, unit="s", desc=f"simcomm {self.name}", leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                "{n:.4g}/{total:.4g} simulated s [{elapsed}<{remaining}]")
        self.bar.update(t - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(scenario: str | base.Scenario, seed: int = 0, until: float | None = None, *,
        trace: bool = True, memory_budget: int | str | None = None,
        progress: bool | Callable[[float], None] | None = None, warn: bool = True,
        spill: str | os.PathLike[str] | None = None, **params: Any) -> Result:
    """Run ``scenario`` with ``params`` (field=value) and return its Result.

    ``until`` is the simulated time in seconds (the scenario's default if
    omitted); ``trace=False`` records only the request table and the
    timeline events (no message or pool rows), for speed in long sweeps.
    Every argument is checked before the run starts, and so is its size:
    a run estimated to need more than ``memory_budget`` (bytes or "4G";
    default ``$SIMCOMM_MEMORY_BUDGET`` or half the machine's memory) is
    refused with :class:`~simcomm.errors.RunTooLarge` (see :func:`prepare`).

    ``progress``: ``None`` (default) shows a tqdm bar -- a widget in a
    notebook, a line on stderr in a terminal -- only if the run takes more
    than :data:`PROGRESS_DELAY` seconds; ``True`` shows it at once;
    ``False`` shows none; a callable is called with the fraction done.
    The run then goes in slices of simulated time, which changes nothing
    in it (same trace, same fingerprint).  Ctrl-C stops the run: the
    KeyboardInterrupt propagates with ``simcomm_time`` (the simulated time
    reached) set on it, the bar closed.

    ``warn=True`` issues one :class:`~simcomm.errors.OverloadWarning`
    carrying :meth:`Result.warnings` (all sentences) if the run was
    overloaded or unstable, so its headline numbers are not taken at face
    value.

    ``spill``: a directory (new, or empty) to stream the trace to as Parquet
    files while the run goes, instead of holding it in memory: a run's
    memory then stays that of an untraced one, and the Result reads its
    tables back from the files when asked (``summary()``, ``ledger()`` and
    ``requests`` a chunk at a time, exactly).  Needs pyarrow (``pip
    install 'simcomm[parquet]'``); see :mod:`simcomm.engine.trace`.
    """
    sc, p, end = prepare(scenario, seed, until, trace=trace, memory_budget=memory_budget,
                         spill=spill,
                         **params)
    if not (progress is None or is_flag(progress) or callable(progress)):
        raise ParamError("progress", progress, "None (a bar for long runs), True, False "
                         "or a function of the fraction done")
    if not is_flag(warn):
        raise ParamError("warn", warn, "True or False")
    world = World(int(seed), trace=bool(trace), spill=spill)
    sc.build(world, p)
    bar = None
    try:
        if is_flag(progress) and not progress:
            world.run(end)
        elif progress is None or is_flag(progress):
            bar = _Bar(sc, end, PROGRESS_DELAY if progress is None else 0.0)
            _advance(world, end, bar)
        else:
            report = cast("Callable[[float], None]", progress)  # checked callable above
            _advance(world, end, lambda t: report(t / end))
    except KeyboardInterrupt as exc:
        exc.simcomm_time = world.now  # type: ignore[attr-defined]  # the CLI says where
        raise
    finally:
        if bar is not None:
            bar.close()
    res = Result(world, sc, p)
    if warn:
        texts = res.warnings()
        if texts:
            warnings.warn(OverloadWarning(" ".join(texts)), stacklevel=2)
    return res


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
