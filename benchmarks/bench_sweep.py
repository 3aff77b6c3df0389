"""A sweep of many short ``chain`` runs: serially, on local processes and on a Dask cluster.

``RUNS`` runs of the ``chain`` scenario at its defaults (depth 3, 10
requests a second) with ``until`` = ``UNTIL`` simulated seconds, about 200
requests and 30 to 80 ms of CPU each, through :func:`simcomm.sweep`
(``replications=RUNS``, root seed ``SEED``):

- ``serial``: ``executor=None``, this process, one run after the other;
- ``processes``: a :class:`~concurrent.futures.ProcessPoolExecutor` of
  ``w`` workers -- what ``executor="processes", workers=w`` makes -- for
  every ``w`` from 1 to the cores this process may use;
- ``dask``: a ``distributed.LocalCluster(n_workers=w, threads_per_worker=1,
  processes=True, dashboard_address=None)`` and its client's executor
  (``Client(cluster).get_executor()``), the same worker counts.

The start-up of each executor is timed on its own: the pool or the
cluster is made (and the cluster's client connected) and every worker has
run one short chain (imports and first-run caches: Linux forks the pool's
workers with simcomm already imported, Dask spawns fresh interpreters).
The sweep is timed after it, and the shut-down (pool joined, client and cluster
closed) after that, so the speed-up is given both without start-up (the
sweep alone: what a cluster already running gives) and with it (start-up +
sweep + shut-down: what one ``simcomm.sweep(..., executor="processes")``
or a cluster made for one sweep costs).  The CPU time per run of the sweep
counts this process (every thread: a Dask scheduler runs in it) and the
workers (read from ``/proc``); what it adds to the serial figure is the
executor's own work -- pickling, the scheduler, the workers' event loops
-- and ``CPU ser/this`` (serial CPU per run over this one) is the best
speed-up per worker the executor could reach on idle cores.  It moves
much less with the machine's load than the wall times do, but not
nothing: Dask's scheduler and each of its workers take about 5 % of a
core even when idle (heartbeats, its system monitor: 0.5 s of CPU in
10 s, measured here), so its CPU per run grows with the sweep's wall time.
Beyond that, each Dask task costs about 20 ms of CPU between the scheduler
(this process) and the worker, a third of a 56 ms run (measured at a load
average of 4; ten runs per task brought a run's CPU to 6-17 % above the
serial one): with runs this short, Dask's per-task cost, not the cores,
caps its speed-up.
``cores used`` (the sweep's CPU seconds over its wall seconds) is what the
machine gave: a speed-up is about the ratio of two settings' cores used
times their CPU ratio, so a per-worker figure below 0.8 with few cores
used says the machine was busy, not that the executor was slow.

Speed-up is the serial wall time over the executor's, per repetition (the
serial sweep of the same repetition), and its median; per worker is that
over ``w`` (target >= 0.8 up to the cores available).  Each repetition runs
every setting in turn, starting one setting later each time (interleaved),
and every runs table is checked against the first serial one: the same
seeds must give the same numbers whatever runs them.

The machine these numbers come from is usually shared with other work:
with two cores and a load average of 4, two workers cannot get two cores.
The load average at the start, after each repetition and at the end is
printed; quote medians and ranges with it.

    python benchmarks/bench_sweep.py            # 1 000 runs, 3 repetitions
    python benchmarks/bench_sweep.py 5          # 5 repetitions
    python benchmarks/bench_sweep.py --quick    # 100 runs, 1 repetition

The full benchmark is about 5 000 runs a repetition: 50 min at a load
average of 4 to 13 (measured); ``--quick`` takes about 45 s of CPU (1.5 to
2 min at a load average of 6).
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import pandas as pd

import simcomm
import simcomm.sweeps

SCENARIO = "chain"
#: Runs per sweep (replications of the chain at its defaults).
RUNS = 1_000
QUICK_RUNS = 100
#: Simulated seconds per run: ~200 requests, ~35 ms on an idle core of this machine
#: (~70 ms at a load average of 6).
UNTIL = 20.0
SEED = 11


def cores() -> int:
    """The cores this process may run on (its affinity mask; the CPU count elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu(pids: Iterable[int] = ()) -> float:
    """CPU seconds of this process (every thread: a Dask scheduler's too) and of the
    processes ``pids`` (read from ``/proc``; NaN where there is none)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    total = me.ru_utime + me.ru_stime
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _sweep(runs: int, executor: Executor | None) -> pd.DataFrame:
    return simcomm.sweep(SCENARIO, replications=runs, seed=SEED, until=UNTIL,
                         executor=executor, progress=False)


#: Part of an executor's start-up: a worker runs one short chain, so the imports and
#: caches of a worker's first run are not timed as part of the sweep.  A partial of
#: simcomm.sweep pickles by reference, so a spawned Dask worker can take it.
_warm = functools.partial(simcomm.sweep, SCENARIO, replications=1, seed=SEED, until=1.0,
                          progress=False)


class Timing:
    """One sweep of one setting: start-up, the sweep itself and shut-down (wall s), and
    the CPU seconds the sweep took (this process and the workers).

    A plain class, not a dataclass: ``run_all.py`` loads this file as a module that is
    not in ``sys.modules``, where ``@dataclass`` fails.
    """

    def __init__(self, startup: float, sweep: float, shutdown: float, cpu: float,
                 table: pd.DataFrame) -> None:
        self.startup, self.sweep, self.shutdown = startup, sweep, shutdown
        self.cpu, self.table = cpu, table

    @property
    def whole(self) -> float:
        return self.startup + self.sweep + self.shutdown


def run_serial(runs: int, workers: int) -> Timing:
    """The sweep in this process (``workers`` is 1)."""
    c0 = _cpu()
    t0 = time.perf_counter()
    table = _sweep(runs, None)
    return Timing(0.0, time.perf_counter() - t0, 0.0, _cpu() - c0, table)


def run_processes(runs: int, workers: int) -> Timing:
    """The sweep on a process pool of ``workers``, made and joined around it."""
    t0 = time.perf_counter()
    pool = ProcessPoolExecutor(max_workers=workers)
    # the first tasks start every worker (forked on Linux: all at once) and run a chain
    for f in [pool.submit(_warm) for _ in range(workers)]:
        f.result()
    pids = list(pool._processes)  # the workers, to read their CPU time
    t1 = time.perf_counter()
    try:
        c1 = _cpu(pids)
        table = _sweep(runs, pool)
        t2, c2 = time.perf_counter(), _cpu(pids)
    finally:
        pool.shutdown(wait=True)
    t3 = time.perf_counter()
    return Timing(t1 - t0, t2 - t1, t3 - t2, c2 - c1, table)


def run_dask(runs: int, workers: int) -> Timing:
    """The sweep on a Dask LocalCluster of ``workers`` single-threaded worker processes."""
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # with the dashboard off the scheduler still serves /health on a port: another
        # cluster on this machine may hold the default one, and it takes another
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        # CRITICAL: a worker's last heartbeat racing the close logs an ERROR (a failed
        # run reaches the sweep as its future's exception, not through the log)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL)
    client = Client(cluster)
    try:
        client.wait_for_workers(workers)
        client.run(_warm)  # on every worker: imports simcomm, runs a short chain
        pids = list(client.run(os.getpid).values())
        t1 = time.perf_counter()
        c1 = _cpu(pids)
        table = _sweep(runs, client.get_executor())
        t2, c2 = time.perf_counter(), _cpu(pids)
    finally:
        client.close()
        cluster.close()
    t3 = time.perf_counter()
    return Timing(t1 - t0, t2 - t1, t3 - t2, c2 - c1, table)


RUNNERS: dict[str, Callable[[int, int], Timing]] = {
    "serial": run_serial, "processes": run_processes, "dask": run_dask}


def settings(max_workers: int) -> list[tuple[str, int]]:
    """Every (executor, workers) measured: serial, then each pool size of both kinds."""
    return [("serial", 1)] + [(kind, w) for kind in ("processes", "dask")
                              for w in range(1, max_workers + 1)]


def _span(values: list[float], fmt: str) -> str:
    return (f"{statistics.median(values):{fmt}} "
            f"({min(values):{fmt}}-{max(values):{fmt}})")


def main(reps: int = 3, quick: bool = False) -> dict[str, Any]:
    """``reps`` interleaved repetitions of every setting; prints the table, returns its numbers."""
    runs = QUICK_RUNS if quick else RUNS
    reps = 1 if quick else reps
    n = cores()
    todo = settings(n)
    out: dict[str, Any] = {"load_average_at_start": _load(), "runs": runs, "until_s": UNTIL,
                           "repetitions": reps, "cores": n}
    print(f"{SCENARIO}: {runs} runs of until={UNTIL:g} s (defaults), {reps} interleaved "
          f"repetition(s), {n} cores; load average at start {out['load_average_at_start']}")
    _sweep(2, None)  # the scenario's first run (imports, caches) is not timed
    times: dict[tuple[str, int], list[Timing]] = {s: [] for s in todo}
    reference: pd.DataFrame | None = None
    identical = True
    for rep in range(reps):
        k = rep % len(todo)
        for kind, w in todo[k:] + todo[:k]:
            gc.collect()
            t = RUNNERS[kind](runs, w)
            if reference is None:
                reference = t.table
            same = t.table.equals(reference)
            identical = identical and same
            if not same:
                print(f"  !! {kind} x{w} (repetition {rep + 1}): runs table differs")
            t.table = t.table.iloc[:0]  # keep the timings, not a thousand rows each
            times[(kind, w)].append(t)
        print(f"  repetition {rep + 1}/{reps} done; load average {_load()}")
    assert reference is not None
    serial = times[("serial", 1)]
    requests = float(reference["requests"].mean())
    print(f"\n{requests:.0f} requests per run on average; serial "
          f"{statistics.median(t.sweep for t in serial) / runs * 1e3:.0f} ms per run (median)")
    med = statistics.median
    head = (f"{'executor':10s} {'w':>2s} {'start-up s':>10s} {'shut s':>6s} "
            f"{'sweep s (range)':>19s} {'runs/s':>6s} {'speed-up (range)':>17s} "
            f"{'/worker':>7s} | {'with start-up s':>15s} {'speed-up':>8s} {'/worker':>7s} | "
            f"{'CPU ms/run':>10s} {'CPU ser/this':>12s} {'cores used':>10s}")
    print(head)
    print("-" * len(head))
    serial_cpu = med(t.cpu for t in serial)
    for kind, w in todo:
        ts = times[(kind, w)]
        cpu = med(t.cpu for t in ts)
        sweep_s = [t.sweep for t in ts]
        whole_s = [t.whole for t in ts]
        up = [a.sweep / b.sweep for a, b in zip(serial, ts, strict=True)]
        up_whole = [a.sweep / b.whole for a, b in zip(serial, ts, strict=True)]
        used = [t.cpu / t.sweep for t in ts]
        print(f"{kind:10s} {w:2d} {med(t.startup for t in ts):10.2f} "
              f"{med(t.shutdown for t in ts):6.2f} {_span(sweep_s, '5.1f'):>19s} "
              f"{runs / med(sweep_s):6.1f} {_span(up, '4.2f'):>17s} {med(up) / w:7.2f} | "
              f"{med(whole_s):15.1f} {med(up_whole):8.2f} {med(up_whole) / w:7.2f} | "
              f"{cpu / runs * 1e3:10.1f} {serial_cpu / cpu:12.2f} {med(used):10.2f}")
        name = f"{kind}_{w}"
        out[f"{name}_startup_s"] = med(t.startup for t in ts)
        out[f"{name}_sweep_s"] = med(sweep_s)
        out[f"{name}_speedup"] = med(up)
        out[f"{name}_speedup_range"] = f"{min(up):.2f}-{max(up):.2f}"
        out[f"{name}_speedup_with_startup"] = med(up_whole)
        out[f"{name}_cpu_ms_per_run"] = cpu / runs * 1e3
        out[f"{name}_cores_used"] = med(used)
    out["tables_identical"] = identical
    out["load_average_at_end"] = _load()
    print(f"runs tables identical to the serial one (same seeds, same numbers): "
          f"{'yes' if identical else 'NO'}")
    print("speed-up = serial sweep s / this sweep s, median of the repetitions; /worker = "
          "that / w (target >= 0.8); with start-up = serial / (start-up + sweep + shut)")
    print(f"load average at end {out['load_average_at_end']}")
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--quick" in args:
        main(quick=True)
    else:
        main(int(args[0]) if args else 3)
