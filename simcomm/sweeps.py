"""Runs of many simulations: the one place above the scenarios that sweeps.

:func:`sweep` runs a scenario for every combination of a grid of parameter
values, several times each (replications, each with its own seed derived
from one root seed), in this process, on local processes or on any
:class:`concurrent.futures.Executor` -- a Dask cluster's
(``distributed.Client(...).get_executor()``) too -- and returns a tidy
table, one row per run.  :func:`summarize` turns it into each
combination's mean, standard error and Student-t confidence interval.

    >>> runs = simcomm.sweep("chain", {"depth": [1, 2, 3]}, replications=5,
    ...                      until=20)                              # doctest: +SKIP
    >>> simcomm.summarize(runs, ["p99", "throughput"])              # doctest: +SKIP

Three ready-made sweeps are uses of it: :func:`theory_sweep` (the ``mmc``
scenario at several loads against queueing theory, for
:func:`simcomm.viz.theory_sweep_figure`), :func:`delivery_matrix`
(``delivery-guarantees`` over Kafka's delivery settings, for
:func:`simcomm.viz.delivery_matrix_figure`) and :func:`format_sweep` (the
``formats`` scenario for every format across one parameter, for
:func:`simcomm.viz.formats_sweep_figure`).

viz draws tables and never runs simulations, and scenarios describe them:
neither imports this module nor :mod:`simcomm.api` (``tests/test_layering.py``).
The package exports :func:`sweep` as ``simcomm.sweep``; this module is
``simcomm.sweeps`` so that the function and the module do not share a name.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import pickle
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from simcomm import api
from simcomm._checks import as_real, is_flag, is_whole
from simcomm.analysis.delivery import delivery_row
from simcomm.analysis.metrics import steady_mean
from simcomm.analysis.stats import summarize
from simcomm.analysis.theory import theory_curve
from simcomm.engine.randomness import MAX_SEED, SEED_ALLOWED
from simcomm.errors import OverloadWarning, ParamError
from simcomm.result import SUMMARY_UNITS, Result
from simcomm.scenarios import base
from simcomm.scenarios import formats as _formats

__all__ = ["COMMIT_POINTS", "DEDUPS", "MATRIX_COLUMNS", "MATRIX_UNTIL", "PRODUCER_SETTINGS",
           "Metric", "SweepPlan", "delivery_matrix", "format_sweep", "plan",
           "replication_seed", "summarize", "sweep", "theory_sweep"]

#: A metric of :func:`sweep`: a key of :meth:`Result.summary` (see
#: :data:`~simcomm.result.SUMMARY_UNITS`), or a module-level function of a
#: :class:`~simcomm.result.Result` returning a mapping of column names to values.
Metric = str | Callable[[Result], Mapping[str, Any]]

#: What :func:`sweep` runs on: ``None`` (this process, one run after the
#: other), ``"processes"`` (a process pool it makes and shuts down) or any
#: :class:`concurrent.futures.Executor`.
ExecutorLike = Executor | Literal["processes"] | None

#: Columns of a runs table that are neither parameters nor metrics.
RUN_COLUMNS = ("replication", "seed")


def replication_seed(root: int, replication: int) -> int:
    """The seed replication ``replication`` of a sweep with root seed ``root`` runs with.

    ``numpy.random.SeedSequence(root, spawn_key=(replication,))``'s first
    32-bit word: independent streams for different replications (NumPy's
    recommended way to spawn seeds, hashed rather than ``root + r``), the
    same in every combination of a sweep (common random numbers: rows differ
    by their parameters, not by their luck), and the same whoever runs it
    and however many replications there are.
    """
    return int(np.random.SeedSequence(int(root), spawn_key=(int(replication),))
               .generate_state(1)[0])


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (so ``attrs`` serialise as JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def _metric_name(metric: Metric) -> str:
    if isinstance(metric, str):
        return metric
    if isinstance(metric, functools.partial):
        return _metric_name(metric.func)
    module = getattr(metric, "__module__", None) or ""
    name = getattr(metric, "__qualname__", None) or type(metric).__name__
    return f"{module}.{name}" if module else name


def _not_a_field(sc: base.Scenario, name: Any, value: Any) -> ParamError:
    names = [f.name for f in sc.fields()]
    return ParamError(str(name), value, f"not a field of {sc.name}; "
                      f"{base.did_you_mean(name, names)}fields: {', '.join(names)}")


# -- the plan: everything checked, nothing run ---------------------------------------------


@dataclass(frozen=True)
class SweepPlan:
    """The runs of a sweep, every one checked (:func:`simcomm.api.prepare`), none run.

    Made by :func:`plan`; :meth:`run` runs them.  ``combos`` holds each
    combination's grid values in run order, ``params`` its checked
    parameters, ``seeds`` the seed of each replication (the same in every
    combination), ``grid`` each grid field's distinct values in order.
    ``len(plan)`` is the number of runs.
    """

    scenario: base.Scenario
    grid: dict[str, list[Any]]
    combos: tuple[dict[str, Any], ...]
    params: tuple[Any, ...]
    seeds: tuple[int, ...]
    root: int | None
    until: float
    trace: bool
    metrics: tuple[Metric, ...] | None
    fixed: dict[str, Any]

    def __len__(self) -> int:
        return len(self.combos) * len(self.seeds)

    def run(self, executor: ExecutorLike = None, *, workers: int | None = None,
            progress: bool | None = True) -> pd.DataFrame:
        """Run every run of the plan and return the runs table (see :func:`sweep`)."""
        own = _check_executor(executor, workers, progress)
        process = sys.modules.get("concurrent.futures.process")  # loaded if a pool exists
        if own or (process is not None and isinstance(executor, process.ProcessPoolExecutor)):
            _check_picklable(self.metrics)
        jobs = [_Job(self.scenario, p, s, self.until, self.trace, self.metrics)
                for p in self.params for s in self.seeds]
        reserved = (*self.grid, *RUN_COLUMNS)  # no metric may take these column names
        bar = _progress_bar(len(jobs), f"sweep {self.scenario.name}", progress)
        try:
            if executor is None:
                outputs = [_result(_run_one(job), reserved) for job in _ticking(jobs, bar)]
            elif isinstance(executor, Executor):
                outputs = _gather(executor, jobs, bar, reserved)
            else:  # "processes" (imported here: Pyodide has no processes to pool)
                from concurrent.futures import ProcessPoolExecutor

                n = min(int(workers or os.cpu_count() or 1), len(jobs))
                pool = ProcessPoolExecutor(max_workers=n)
                ended = False
                try:
                    outputs = _gather(pool, jobs, bar, reserved)
                    ended = True
                finally:  # an interrupted or failed sweep does not wait for the runs left
                    pool.shutdown(wait=ended, cancel_futures=True)
        finally:
            if bar is not None:
                bar.close()
        return self._table(outputs)

    def _table(self, outputs: list[dict[str, Any]]) -> pd.DataFrame:
        rows = []
        it = iter(outputs)
        for combo in self.combos:
            for r, seed in enumerate(self.seeds):
                rows.append({**combo, "replication": r, "seed": seed, **next(it)})
        df = pd.DataFrame(rows)
        metric_columns = [str(c) for c in df.columns
                          if c not in self.grid and c not in RUN_COLUMNS]
        df.attrs.update(
            scenario=self.scenario.name, grid={k: list(v) for k, v in self.grid.items()},
            fixed=dict(self.fixed), seed=self.root, seeds=list(self.seeds), until=self.until,
            replications=len(self.seeds), metrics=metric_columns, trace=self.trace)
        return df


def plan(scenario: str | base.Scenario,
         grid: Mapping[str, Iterable[Any]] | Sequence[Mapping[str, Iterable[Any]]] | None = None,
         *, replications: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
         until: float | None = None, metrics: Sequence[Metric] | None = None,
         trace: bool = False, **fixed: Any) -> SweepPlan:
    """Check a sweep whole and return its runs, without running any (see :func:`sweep`).

    Every combination goes through :func:`simcomm.api.prepare` (its fields,
    ``until``, ``trace`` and its size against the memory budget), so a bad
    value raises :class:`~simcomm.errors.ParamError` naming it before the
    first run.  What :func:`sweep` and ``simcomm sweep`` do first.
    """
    sc = base.get(scenario)
    specs = {f.name for f in sc.fields()}
    for name, value in fixed.items():
        if name not in specs:
            raise _not_a_field(sc, name, value)
    blocks = _grid_blocks(sc, grid, specs, fixed)
    seed_list, root = _seeds(replications, seed, seeds)
    chosen = _check_metrics(metrics)
    for m in chosen or ():
        if isinstance(m, str) and (m in blocks[0] or m in RUN_COLUMNS):
            raise ParamError("metrics", m, "a metric name that is not a grid field")
    combos: list[dict[str, Any]] = []
    for block in blocks:
        names = list(block)
        combos += [dict(zip(names, values, strict=True))
                   for values in itertools.product(*(block[n] for n in names))]
    params, end = [], None
    for combo in combos:  # check everything before time zero
        _, p, end = api.prepare(sc, seed_list[0], until, trace=trace, **fixed, **combo)
        params.append(p)
    assert end is not None  # at least one combination
    distinct: dict[str, list[Any]] = {name: [] for name in blocks[0]}
    for block in blocks:
        for name, values in block.items():
            distinct[name] += [_plain(v) for v in values if _plain(v) not in distinct[name]]
    return SweepPlan(sc, distinct, tuple(combos), tuple(params), tuple(seed_list), root,
                     float(end), bool(trace), chosen,
                     {k: _plain(v) for k, v in fixed.items()})


def _grid_blocks(sc: base.Scenario, grid: Any, specs: set[str],
                 fixed: Mapping[str, Any]) -> list[dict[str, list[Any]]]:
    """The grid as a list of ``{field: values}`` blocks, each swept as a product."""
    allowed = ("a mapping of field -> values, e.g. {'depth': [1, 2, 3]}, a list of such "
               "mappings with the same fields (each swept, one after the other), or None")
    if grid is None:
        return [{}]
    if isinstance(grid, Mapping):
        raw = [grid]
    elif (isinstance(grid, Sequence) and not isinstance(grid, (str, bytes)) and grid
          and all(isinstance(g, Mapping) for g in grid)):
        raw = list(grid)
    else:
        raise ParamError("grid", grid, allowed)
    blocks: list[dict[str, list[Any]]] = []
    for block in raw:
        if blocks and list(block) != list(blocks[0]):
            raise ParamError("grid", list(block), "the same fields, in the same order, in "
                             f"every mapping of the list: {list(blocks[0])}")
        checked: dict[str, list[Any]] = {}
        for name, values in block.items():
            if name not in specs:
                raise _not_a_field(sc, name, values)
            if name in fixed:
                raise ParamError(name, fixed[name], "swept: give its values in the grid, "
                                 "not also as a setting")
            if (isinstance(values, (str, bytes, Mapping))
                    or not isinstance(values, Iterable)):
                raise ParamError(name, values, "a list of values to sweep over, e.g. [1, 2, 3]")
            checked[name] = list(values)
            if not checked[name]:
                raise ParamError(name, checked[name], "at least one value to sweep over")
        blocks.append(checked)
    return blocks


def _seeds(replications: Any, seed: Any,
           seeds: Sequence[int] | None) -> tuple[list[int], int | None]:
    """``(seed of each replication, root seed or None)``."""
    if replications is not None and (not is_whole(replications) or replications < 1):
        raise ParamError("replications", replications, "a whole number of runs per "
                         "combination >= 1")
    if seeds is None:
        if not is_whole(seed) or not 0 <= seed <= MAX_SEED:
            raise ParamError("seed", seed, SEED_ALLOWED)
        reps = 1 if replications is None else int(replications)
        return [replication_seed(int(seed), r) for r in range(reps)], int(seed)
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise ParamError("seeds", seeds, "a non-empty list of seeds (whole numbers >= 0), "
                         "one per replication")
    seed_list = list(seeds)
    if not seed_list:
        raise ParamError("seeds", seed_list, "a non-empty list of seeds (whole numbers >= 0), "
                         "one per replication")
    for s in seed_list:
        if not is_whole(s) or not 0 <= s <= MAX_SEED:
            raise ParamError("seed", s, SEED_ALLOWED)
    if replications is not None and replications != len(seed_list):
        raise ParamError("replications", replications, f"{len(seed_list)} (one per seed "
                         "given), or None")
    return [int(s) for s in seed_list], None


def _check_metrics(metrics: Any) -> tuple[Metric, ...] | None:
    """The metrics asked for, checked: known summary keys and callables, no repeats."""
    allowed = ("keys of Result.summary() (" + ", ".join(SUMMARY_UNITS) + ") or module-level "
               "functions of a Result returning a mapping of names to values, or None for "
               "every number in the summary")
    if metrics is None:
        return None
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    if not isinstance(metrics, Iterable):
        raise ParamError("metrics", metrics, allowed)
    chosen = list(metrics)
    if not chosen:
        raise ParamError("metrics", chosen, allowed)
    for m in chosen:
        if isinstance(m, str):
            if m not in SUMMARY_UNITS:
                raise ParamError("metrics", m, base.did_you_mean(m, SUMMARY_UNITS) + allowed)
        elif not callable(m):
            raise ParamError("metrics", m, allowed)
    names = [m for m in chosen if isinstance(m, str)]
    if len(set(names)) != len(names):
        raise ParamError("metrics", names, "each summary key once")
    return tuple(chosen)


def _check_picklable(metrics: tuple[Metric, ...] | None) -> None:
    """Metric functions sent to other processes must pickle (by their import path)."""
    for m in metrics or ():
        if callable(m):
            try:
                pickle.dumps(m)
            except Exception:  # pickle raises several types; all mean the same here
                raise ParamError("metrics", _metric_name(m), "a function defined at the top "
                                 "of a module, which other processes can import (not a "
                                 "lambda, nor a function defined inside another)") from None


def _check_executor(executor: Any, workers: Any, progress: Any) -> bool:
    """Check how a sweep runs; True if it makes (and shuts down) its own process pool."""
    if not (progress is None or is_flag(progress)):
        raise ParamError("progress", progress, "True (a bar), False (none) or None (a bar "
                         "for sweeps over a couple of seconds)")
    own = isinstance(executor, str) and executor == "processes"
    if not (executor is None or own or isinstance(executor, Executor)):
        raise ParamError("executor", executor, "None (this process), 'processes' (a pool "
                         "of local processes) or a concurrent.futures.Executor, e.g. "
                         "distributed.Client(...).get_executor()")
    if workers is not None:
        if not own:
            raise ParamError("workers", workers, "None, unless executor='processes' (an "
                             "executor given keeps its own workers)")
        if not is_whole(workers) or workers < 1:
            raise ParamError("workers", workers, "a whole number of processes >= 1, or None "
                             "for one per CPU")
    return own


# -- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """One run of a sweep, already checked: what an executor's worker is sent."""

    scenario: base.Scenario
    params: Any
    seed: int
    until: float
    trace: bool
    metrics: tuple[Metric, ...] | None


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating))


def _run_one(job: _Job) -> tuple[dict[str, Any], tuple[str, Any, str] | None]:
    """Run one job and reduce it to its metrics: ``(values, problem)``.

    Module-level so that a process pool or a Dask worker can import it; it
    returns a small dict, never the Result (a run's tables can be large).
    A metric that cannot be read comes back as ``problem``, the arguments
    of a :class:`~simcomm.errors.ParamError` the caller raises (exceptions
    raised in a worker do not always survive the trip back).
    """
    res = api.simulate(job.scenario, job.params, job.seed, job.until, trace=job.trace)
    if job.metrics is None:
        return {k: v for k, v in res.summary().items() if _is_number(v)}, None
    out: dict[str, Any] = {}
    summary: dict[str, Any] | None = None
    for m in job.metrics:
        if isinstance(m, str):
            summary = res.summary() if summary is None else summary
            if m not in summary:
                return {}, ("metrics", m, f"keys of {job.scenario.name}'s summary: "
                            + ", ".join(summary))
            out[m] = summary[m]
            continue
        got = m(res)
        if not isinstance(got, Mapping) or not all(isinstance(k, str) for k in got):
            return {}, ("metrics", _metric_name(m), "a function returning a mapping of "
                        f"metric names to values (it returned a {type(got).__name__})")
        for key, value in got.items():
            if key in out:
                return {}, ("metrics", key, "one metric per column name: two metrics "
                            "give it")
            out[key] = value
    return out, None


def _result(got: tuple[dict[str, Any], tuple[str, Any, str] | None],
            reserved: Sequence[str]) -> dict[str, Any]:
    """A run's metrics, or the ParamError its first run shows (the sweep stops there)."""
    values, problem = got
    if problem is not None:
        raise ParamError(*problem)
    for key in values:
        if key in reserved:
            raise ParamError("metrics", key, "a metric name that is not a grid field, "
                             "'replication' or 'seed'")
    return values


def _ticking(jobs: list[_Job], bar: Any) -> Iterable[_Job]:
    for job in jobs:
        yield job
        if bar is not None:
            bar.update()


def _gather(executor: Executor, jobs: list[_Job], bar: Any,
            reserved: Sequence[str]) -> list[dict[str, Any]]:
    """Run ``jobs`` on ``executor``; their outputs in job order, whatever order they end in."""
    futures = [executor.submit(_run_one, job) for job in jobs]
    index: dict[Future[Any], int] = {f: i for i, f in enumerate(futures)}
    out: list[dict[str, Any]] = [{} for _ in jobs]
    try:
        for f in as_completed(futures):
            out[index[f]] = _result(f.result(), reserved)
            if bar is not None:
                bar.update()
    except BaseException:  # a bad metric, a failed run or Ctrl-C: drop the rest
        for f in futures:
            f.cancel()
        raise
    return out


def _progress_bar(total: int, desc: str, progress: bool | None) -> Any:
    if progress is not None and not progress:
        return None
    return api.progress_bar_class()(total=total, desc=desc, unit="run", miniters=1, leave=False,
                        delay=0.0 if progress else api.PROGRESS_DELAY)


def sweep(scenario: str | base.Scenario,
          grid: Mapping[str, Iterable[Any]] | Sequence[Mapping[str, Iterable[Any]]] | None = None,
          *, replications: int | None = None, seed: int = 0,
          seeds: Sequence[int] | None = None, until: float | None = None,
          metrics: Sequence[Metric] | None = None, executor: ExecutorLike = None,
          workers: int | None = None, progress: bool | None = True, trace: bool = False,
          **fixed: Any) -> pd.DataFrame:
    """Run ``scenario`` for every combination of ``grid``, ``replications`` times each.

    ``grid`` maps fields of the scenario to the values to sweep, e.g.
    ``{"depth": [1, 2, 3], "timeout": [0.5, 1.0]}``: every combination runs,
    the first field varying slowest.  A list of such mappings (with the
    same fields) sweeps each and puts the rows one after the other, for
    fields that go together (Kafka allows idempotence only with
    ``acks=all``).  ``None`` runs the one setting ``fixed`` gives.
    ``fixed`` (field=value) sets the other fields for every run.

    **Seeds.**  Replication ``r`` runs with :func:`replication_seed`
    ``(seed, r)`` in every combination (common random numbers), so the
    table depends only on the arguments, never on who runs it.
    ``seeds=[...]`` gives the replications' seeds instead (to repeat runs
    made with known seeds); ``replications`` is then their number.

    **Metrics.**  ``None`` keeps every number of :meth:`Result.summary`
    (counts, latencies, shares; ``stable`` as a bool); a list keeps the
    summary keys it names (a name no summary has is refused before any run;
    one this scenario's summary lacks, after its first run) and calls each
    function in it with the Result: it returns a mapping of column names to
    values (numbers for :func:`summarize`; a name such as a bottleneck is
    kept as it is).  With ``executor="processes"`` a function must be
    importable (defined at the top of a module): it is sent by pickle.

    **Where it runs.**  ``executor=None`` runs here, one run after the
    other; ``"processes"`` on a :class:`~concurrent.futures.ProcessPoolExecutor`
    of ``workers`` processes (default: one per CPU) made and shut down
    here; any :class:`~concurrent.futures.Executor` as given, e.g. a Dask
    cluster's ``distributed.Client(address).get_executor()``.  Workers send
    back each run's metrics, not its Result.  ``progress``: a tqdm bar over
    the runs (``None``: only once the sweep has taken a couple of seconds;
    ``False``: none).  ``trace=False`` (default) keeps no message trace: a
    metric function that reads the trace needs ``trace=True``.  Runs issue
    no overload warnings (a sweep crosses the limits on purpose): keep
    ``stable`` to see which runs were overloaded.

    Every combination is checked (:func:`plan`) before the first run: a bad
    scenario, field, value, ``until``, ``seed``, metric or executor raises
    :class:`~simcomm.errors.ParamError` naming it.

    Returns the runs table, one row per (combination, replication): the
    grid fields (grid order), ``replication`` (0 to R - 1), ``seed`` (the
    run's seed: ``simcomm.run(scenario, seed=..., **row)`` repeats it), then
    one column per metric.  ``attrs``: ``scenario``, ``grid`` (each field's
    values), ``fixed``, ``seed`` (the root; None with ``seeds``), ``seeds``,
    ``until``, ``replications``, ``metrics`` (the metric columns) and
    ``trace``.  :func:`summarize` gives each combination's mean and
    confidence interval; :func:`simcomm.viz.sweep_lines` and
    :func:`simcomm.viz.sweep_heatmap` draw either table.
    """
    planned = plan(scenario, grid, replications=replications, seed=seed, seeds=seeds,
                   until=until, metrics=metrics, trace=trace, **fixed)
    return planned.run(executor, workers=workers, progress=progress)


# -- queueing theory against simulation ------------------------------------------------------


def _steady(res: Result, *, warmup: float, batches: int) -> dict[str, Any]:
    """theory_sweep's metric: the warm-up-free mean latency, its batch-means
    standard error, the requests behind it and the run's warnings."""
    mean, se, n = steady_mean(res, warmup, batches)
    return {"sim_mean": mean, "sim_se": se, "requests": n, "warnings": " ".join(res.warnings())}


def theory_sweep(servers: int = 1, service_rate: float = 1.0,
                 utilisations: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
                                                  0.9),
                 seed: int = 0, until: float = 10_000.0,
                 service_distribution: str = "exponential", *, warmup: float = 0.1,
                 batches: int = 20, executor: ExecutorLike = None,
                 workers: int | None = None) -> pd.DataFrame:
    """Run the mmc scenario at several loads and hold each against theory.

    A :func:`sweep` of ``arrival_rate`` (``rho * servers * service_rate``
    for each utilisation), one run each, all with the seed ``seed`` itself
    (common random numbers make the points move together and the curve's
    shape clearer), untraced.  Returns a DataFrame with columns
    ``utilisation``, ``arrival_rate``, ``sim_mean`` (mean latency of ok
    requests after the ``warmup`` fraction, s), ``sim_se`` (its batch-means
    standard error), ``theory`` (mean response time, s) and ``requests``;
    ``attrs`` keeps the queue's parameters for
    :func:`simcomm.viz.theory_sweep_figure`.  A run that was overloaded
    (utilisation 1 or more) issues an :class:`~simcomm.errors.OverloadWarning`
    saying so.  ``executor`` and ``workers`` are :func:`sweep`'s.
    """
    rhos = [float(u) for u in utilisations]
    if not rhos:
        raise ParamError("utilisations", list(utilisations), "at least one utilisation")
    if as_real(warmup) is None or not 0 <= warmup < 1:
        raise ParamError("warmup", warmup, "a fraction of the run from 0 to below 1")
    if not is_whole(batches) or batches < 2:
        raise ParamError("batches", batches, "a whole number of batches >= 2")
    theory = theory_curve(servers, service_rate, service_distribution, rhos)
    lams = [float(lam) for lam in theory["arrival_rate"]]
    runs = sweep("mmc", {"arrival_rate": lams}, seeds=[seed], until=until,
                 metrics=[functools.partial(_steady, warmup=warmup, batches=int(batches))],
                 executor=executor, workers=workers, progress=None, trace=False,
                 service_rate=service_rate, servers=servers,
                 service_distribution=service_distribution)
    for text in runs["warnings"]:
        if text:
            warnings.warn(OverloadWarning(text), stacklevel=2)
    df = pd.DataFrame({"utilisation": rhos, "arrival_rate": lams,
                       "sim_mean": runs["sim_mean"].to_numpy(dtype=float),
                       "sim_se": runs["sim_se"].to_numpy(dtype=float),
                       "theory": theory["response"].to_numpy(dtype=float),
                       "requests": runs["requests"].to_numpy(dtype=int)})
    df.attrs.update(servers=servers, service_rate=service_rate,
                    service_distribution=service_distribution, seed=seed, until=until,
                    model=theory.attrs["model"], warmup=warmup)
    return df


# -- Kafka's delivery settings ----------------------------------------------------------------

#: The producer settings of the delivery matrix, ``(acks, idempotence)``: Kafka
#: allows ``enable.idempotence`` only with ``acks=all``.
PRODUCER_SETTINGS: tuple[tuple[str, bool], ...] = (
    ("0", False), ("1", False), ("all", False), ("all", True))

#: The consumer's commit points of the matrix: at-most-once and at-least-once.
COMMIT_POINTS = ("before", "after")

#: The consumer's duplicate handling in the matrix.
DEDUPS = ("none", "processed_ids")

#: Columns of :func:`delivery_matrix`.
MATRIX_COLUMNS = ("acks", "idempotence", "commit", "dedup", "records", "lost_per_10k",
                  "lost_se", "duplicated_per_10k", "duplicated_se", "reordered_per_10k",
                  "reordered_se", "runs")

#: The leader crash's time as a fraction of delivery-guarantees' default 30 s run, so a
#: shorter or longer matrix run sees the same story (the consumer's crash stays in its
#: first batch, 3.5 s in: the group's first assignment comes at 3 s whatever the length).
_FAULT_FRACTIONS = {"crash_leader_at": 8.0 / 30.0}

_SCENARIO = "delivery-guarantees"

#: Simulated seconds of each run of the default delivery matrix: long enough for the
#: leader's failover (9 s after its crash at 27 % of the run) to be over by the end.
MATRIX_UNTIL = 20.0

#: What each run of the matrix keeps of :func:`simcomm.analysis.delivery_row`.
_MATRIX_KEYS = ("records_produced", "lost_per_10k", "duplicated_per_10k", "reordered_per_10k")


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN with fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _delivery(res: Result) -> dict[str, Any]:
    """The delivery matrix's metric: a run's records and anomalies per 10 000."""
    row = delivery_row(res)
    return {k: row[k] for k in _MATRIX_KEYS}


def delivery_matrix(seeds: Sequence[int] = (1, 2, 3), *, until: float = MATRIX_UNTIL,
                    records: int | None = None,
                    producers: Sequence[tuple[str, bool]] = PRODUCER_SETTINGS,
                    commits: Sequence[str] = COMMIT_POINTS, dedups: Sequence[str] = DEDUPS,
                    executor: ExecutorLike = None, progress: bool | None = None,
                    **params: Any) -> pd.DataFrame:
    """Kafka's delivery settings against the losses, duplicates and reorders they let through.

    Runs the ``delivery-guarantees`` scenario (a lossy produce path, a
    partition leader's crash and a consumer's crash in one run: see
    :mod:`simcomm.scenarios.delivery_guarantees`) for every producer setting
    ``(acks, enable.idempotence)`` in ``producers`` × commit point in
    ``commits`` × consumer dedup in ``dedups``, once per seed in ``seeds``
    (the same seeds for every row: common random numbers, so rows differ by
    their settings, not their luck) -- a :func:`sweep` with ``seeds``.
    Returns one row per combination (:data:`MATRIX_COLUMNS`): ``records``
    produced (mean per run), and ``lost_per_10k`` / ``duplicated_per_10k`` /
    ``reordered_per_10k`` -- per 10 000 records produced, the mean over the
    seeds of :func:`simcomm.analysis.delivery_row`, each with its standard
    error (``*_se``, NaN for one seed) -- and ``runs``.

    ``until`` (default :data:`MATRIX_UNTIL`, 20 s: the 48 runs of the default
    matrix take about 20 s of CPU) and ``records`` (events per run; default
    the scenario's 60 a second, ~1 200: sets ``order_rate``) size each run; the
    leader's crash keeps its place in the run (at 27 % of ``until``) unless
    ``params`` sets it.  ``params`` sets any other
    field of the scenario for every run.  Every run is checked before the
    first starts: a bad value raises :class:`~simcomm.errors.ParamError`.
    ``executor`` (``"processes"`` or a :class:`concurrent.futures.Executor`,
    as for :func:`sweep`) runs them in parallel; the table is the same as
    run one by one (each run depends only on its settings and seed).
    ``progress`` is :func:`sweep`'s (default: a bar once it takes a while).

    What it shows, each number explained by one fault: ``acks=0`` and
    ``acks=1`` lose records (what the lossy network or the crashed leader
    swallowed after acknowledging it); ``acks=all`` without idempotence
    duplicates and reorders (retries of batches already appended, and
    retries overtaken by later batches); the idempotent producer removes
    both; committing ``before`` processing loses the crashed consumer's
    batch, committing ``after`` applies it twice -- and ``processed_ids``
    removes those duplicates.
    """
    seed_list = list(seeds) if isinstance(seeds, Sequence) and not isinstance(
        seeds, (str, bytes)) else None
    if not seed_list:
        raise ParamError("seeds", seeds, "a non-empty sequence of seeds (whole numbers >= 0)")
    settings = _settings(producers)
    commit_list, dedup_list = _choices("commits", commits), _choices("dedups", dedups)
    for name in ("acks", "idempotence", "commit", "dedup"):
        if name in params:
            raise ParamError(name, params[name], "left to the matrix: choose the rows with "
                             "producers=, commits= and dedups=")
    if records is not None and (not is_whole(records) or records < 3):
        raise ParamError("records", records, "a whole number of events per run >= 3, or None")
    fixed = dict(params)
    end_value = as_real(until)
    if end_value is not None and end_value > 0 and math.isfinite(end_value):
        for name, fraction in _FAULT_FRACTIONS.items():
            fixed.setdefault(name, fraction * end_value)
        if records is not None:
            fixed.setdefault("order_rate", int(records) / 3.0 / end_value)
    grid: list[dict[str, list[Any]]] = [
        {"acks": [acks], "idempotence": [idem], "commit": commit_list,
         "dedup": dedup_list} for acks, idem in settings]
    runs = sweep(_SCENARIO, grid, seeds=seed_list, until=until, metrics=[_delivery],
                 executor=executor, progress=progress, trace=True, **fixed)
    rows = []
    per = len(seed_list)
    for start in range(0, len(runs), per):
        block = runs.iloc[start:start + per]
        first = block.iloc[0]
        row: list[Any] = [first["acks"], first["idempotence"], first["commit"],
                          first["dedup"],
                          sum(int(v) for v in block["records_produced"]) / per]
        for name in ("lost", "duplicated", "reordered"):
            row.extend(_mean_se([float(v) for v in block[f"{name}_per_10k"]]))
        row.append(per)
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(MATRIX_COLUMNS))
    df.attrs.update(scenario=_SCENARIO, seeds=seed_list, until=runs.attrs["until"],
                    params=fixed)
    return df


def _settings(producers: Sequence[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """The producer settings as ``(acks, idempotence)`` pairs, checked for shape (the
    scenario checks the values, and refuses idempotence without acks=all)."""
    out = []
    for item in producers if isinstance(producers, Sequence) else ():
        if not (isinstance(item, tuple) and len(item) == 2):
            raise ParamError("producers", producers,
                             "a sequence of (acks, idempotence) pairs, e.g. (('1', False),)")
        out.append((item[0], item[1]))
    if not out:
        raise ParamError("producers", producers, "at least one (acks, idempotence) pair")
    return out


def _choices(field: str, values: Sequence[str]) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ParamError(field, values, "a non-empty sequence of choices")
    return list(values)


# -- message formats --------------------------------------------------------------------------


def _format_row(res: Result) -> dict[str, Any]:
    """format_sweep's metric: latency, throughput, backlog and who was busy."""
    s = res.summary()
    busy = res.utilisation()
    neck = res.bottleneck()
    return {"mean_latency": s["mean_latency"], "p95": s["p95"], "throughput": s["throughput"],
            "offered": s["requests"] / res.until, "pending": s["pending"],
            "gateway_busy": busy[_formats.GATEWAY], "service_busy": busy[_formats.SERVICE],
            "bottleneck": neck["resource"], "bottleneck_busy": neck["utilisation"]}


def format_sweep(field: str, values: Iterable[Any], formats: Iterable[str] | None = None, *,
                 seed: int = 0, until: float | None = 30.0, progress: bool | None = None,
                 executor: ExecutorLike = None, workers: int | None = None,
                 **params: Any) -> pd.DataFrame:
    """Run the ``formats`` scenario for every format at every value of ``field``.

    ``field`` is one of the scenario's parameters (say ``request_rate`` or
    ``bandwidth_mbps``), ``params`` fix the others.  ``formats`` is a list of
    format names (default: all four).  Every run uses the same
    ``seed`` (common random numbers: the formats see the same arrivals).
    One row per run: ``format``, the ``field`` value, ``mean_latency``,
    ``p95`` (s, of ok requests), ``throughput`` (completed per second),
    ``offered`` (requests sent per second), ``pending`` (requests unanswered
    at the end: a backlog), the mean fraction of busy workers of the
    gateway and the service (``gateway_busy``, ``service_busy``), and the
    run's busiest resource (``bottleneck``: a worker pool such as
    ``order-1`` or a link such as ``users → api-gateway-1``) with its
    ``bottleneck_busy`` fraction.
    ``df.attrs`` records ``field``, ``seed``, ``until`` and ``params``.
    Every setting is checked before the first run (it is a :func:`sweep`
    over ``message_format`` × ``field``).  The runs keep no
    message trace (the table needs none) and issue no overload warnings:
    a sweep goes past the ceilings on purpose, and its rows say so.
    ``progress``: ``None`` shows a bar over the runs if the sweep takes
    more than two seconds, ``True`` always, ``False`` never; ``executor``
    and ``workers`` are :func:`sweep`'s.
    """
    fmts = [f.name for f in _formats.format_list(formats)]
    if "message_format" in params or field == "message_format":
        raise ParamError("message_format", params.get("message_format", field),
                         "set by the sweep: choose them with formats=")
    if field in params:
        raise ParamError(field, params[field],
                         "swept: give its values in the list, not also as a setting")
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ParamError(field, values, "a list of values to sweep over")
    values = list(values)
    if not values:
        raise ParamError(field, values, "at least one value to sweep over")
    runs = sweep(_formats.SCENARIO, {"message_format": fmts, field: values}, seeds=[seed],
                 until=until, metrics=[_format_row], executor=executor, workers=workers,
                 progress=progress, trace=False, **params)
    df = runs.drop(columns=list(RUN_COLUMNS)).rename(columns={"message_format": "format"})
    df.attrs = {"field": field, "seed": seed, "until": runs.attrs["until"], "params": params}
    return df
