"""Memory a run holds, measured, against what ``simcomm.estimate`` predicts.

The calibration behind :mod:`simcomm.guard`: each case is run under
:mod:`tracemalloc` and the memory the world still holds at the end of the
run (trace rows, waiting requests, everything allocated after the build)
is set beside the estimate -- the scenario's own model (its Load and
capacity) where it declares one, and the pilot every scenario can fall
back on.  Printed per case: requests, pending at the end, measured bytes
per request, each estimate as a ratio of the measured bytes (1.00 is
exact; the guard wants a little above 1, never much below), and the same
ratio for the *growth*: bytes added by the second half of the run against
the estimate's ``bytes_per_second``.  The growth is what decides whether a
long run fits; the totals of these short runs also carry the estimate's
fixed allowance (``guard.BASE_BYTES``, 1 MiB) for the world and the work
in flight, which is why an untraced short run comes out well above 1.

The second table is the trace itself (issue 11): a ``chain`` run (depth
3, 10 requests/s) with the trace in memory, spilled to Parquet
(``spill=DIR``) and off, under tracemalloc: bytes per request the run
holds at its end, after ``summary()``, ``ledger()`` and ``requests`` (the
tables every run is asked for), and after every big table is built as a
DataFrame too (``trace``, ``messages``, ``pools``, ``attempts``,
``events``).  The third is the peak resident memory of whole runs, each in
a fresh process (``--rss``), so what the tracemalloc numbers leave out
(the allocator's slack, pyarrow's buffers) is counted too.

    python benchmarks/bench_memory.py          # the calibration cases
    python benchmarks/bench_memory.py --quick  # smaller runs, a few seconds
    python benchmarks/bench_memory.py --rss 1000000 spill  # one run's peak RSS (JSON)
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any

#: (scenario, until, params): normal runs and overloaded ones, where
#: requests pile up in a worker queue (mmc, chain) or a link's (formats).
CASES: list[tuple[str, float, dict[str, Any]]] = [
    ("mmc", 10_000, {}),
    ("mmc", 10_000, {"arrival_rate": 2.0}),
    ("mmc", 20, {"arrival_rate": 1000.0, "service_rate": 0.01}),
    ("chain", 100, {}),
    ("chain", 100, {"depth": 6, "request_rate": 30.0}),
    ("chain", 100, {"request_rate": 100.0, "service_workers": 2}),
    ("formats", 60, {}),
    ("formats", 20, {"request_rate": 300.0, "order_lines": 2000}),
]
QUICK = [(name, until / 5, params) for name, until, params in CASES]

#: The trace table's chain runs (requests), and the whole runs measured for peak RSS.
TRACE_REQUESTS = 20_000
QUICK_TRACE_REQUESTS = 2_000
RSS_REQUESTS = 100_000
#: How the trace is kept: in memory, spilled to Parquet, or off.
MODES = ("memory", "spill", "off")
CHAIN = {"depth": 3, "request_rate": 10.0}


def measure(name: str, until: float, trace: bool, **params: Any) -> dict[str, float]:
    """Run one case under tracemalloc; the bytes it holds at the end and its counts."""
    from simcomm import guard
    from simcomm.api import estimate
    from simcomm.engine.workload import Client
    from simcomm.engine.world import World
    from simcomm.scenarios import get, make_params

    sc = get(name)
    p = make_params(sc, params)
    model = estimate(name, until=until, trace=trace, **params)
    pilot = guard.estimate(dataclasses.replace(sc, load=None), p, until, trace=trace)
    gc.collect()
    tracemalloc.start()
    world = World(1, trace=trace)
    sc.build(world, p)
    built = tracemalloc.get_traced_memory()[0]
    world.run(until / 2)
    gc.collect()
    half = tracemalloc.get_traced_memory()[0] - built
    world.run(until)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - built
    tracemalloc.stop()
    pending = sum(len(n.open) for n in world.nodes.values() if isinstance(n, Client))
    growth = (held - half) / (until / 2)  # bytes per simulated second
    nan = float("nan")
    return {"requests": world.request_count, "pending": pending, "bytes": held,
            "model": model.bytes / held if model.source == "model" else nan,
            "pilot": pilot.bytes / held,
            "model_growth": model.bytes_per_second / growth if model.source == "model" else nan,
            "pilot_growth": pilot.bytes_per_second / growth}


def trace_costs(requests: int, mode: str) -> dict[str, float]:
    """Bytes per request a chain run holds (tracemalloc) with the trace kept
    as ``mode`` says: at the end of the run, after the tables every run is
    asked for, and after every big table is built."""
    from simcomm.engine.world import World
    from simcomm.result import Result
    from simcomm.scenarios import get, make_params

    sc = get("chain")
    p = make_params(sc, CHAIN)
    until = requests / CHAIN["request_rate"]
    _import_libraries()  # loaded once per process: not a cost of the run
    with tempfile.TemporaryDirectory() as tmp:
        gc.collect()
        tracemalloc.start()
        try:
            world = World(1, trace=mode != "off",
                          spill=os.path.join(tmp, "trace") if mode == "spill" else None)
            sc.build(world, p)
            built = tracemalloc.get_traced_memory()[0]
            world.run(until)
            gc.collect()
            end = tracemalloc.get_traced_memory()[0] - built
            res = Result(world, sc, p)
            res.summary()
            res.ledger()
            gc.collect()
            tables = tracemalloc.get_traced_memory()[0] - built
            if mode != "off":
                for name in ("trace", "messages", "pools", "attempts", "events"):
                    getattr(res, name)
            gc.collect()
            frames = tracemalloc.get_traced_memory()[0] - built
        finally:
            tracemalloc.stop()
    n = world.request_count
    return {"requests": n, "end": end / n, "tables": tables / n, "frames": frames / n}


def _import_libraries() -> None:
    """Import what a run and its tables load (numpy, pandas, pyarrow, the
    analysis), warming them with a tiny run, so a measurement counts the
    run and not the libraries."""
    from simcomm.engine.world import World
    from simcomm.result import Result
    from simcomm.scenarios import get, make_params

    sc = get("chain")
    p = make_params(sc, CHAIN)
    with tempfile.TemporaryDirectory() as tmp:
        world = World(1, spill=os.path.join(tmp, "t"))
        sc.build(world, p)
        world.run(5.0)
        res = Result(world, sc, p)
        res.summary()
        res.ledger()
        for name in ("trace", "messages", "pools", "attempts", "events"):
            getattr(res, name)


def rss_child(requests: int, mode: str) -> dict[str, float]:
    """One chain run in this process, as ``--rss`` runs it: its peak resident
    memory, the growth over the memory before the run, wall and CPU time."""
    from simcomm.engine.world import World
    from simcomm.result import Result
    from simcomm.scenarios import get, make_params

    sc = get("chain")
    p = make_params(sc, CHAIN)
    with tempfile.TemporaryDirectory(dir=os.environ.get("SIMCOMM_SPILL_TMP")) as tmp:
        spill = os.path.join(tmp, "trace") if mode == "spill" else None
        world = World(1, trace=mode != "off", spill=spill)
        sc.build(world, p)
        _import_libraries()  # not counted in the run's growth
        before = _rss_kib()
        t0, c0 = time.perf_counter(), time.process_time()
        world.run(requests / CHAIN["request_rate"])
        run_wall = time.perf_counter() - t0
        after_run = _rss_kib()
        res = Result(world, sc, p)
        summary = res.summary()
        balanced = res.ledger()["balanced"]
        hops = int(res.requests["hops"].sum()) if mode != "off" else 0
        after_tables = _rss_kib()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        disk = sum(f.stat().st_size for t in world.trace.tables().values() for f in t.files)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"requests": world.request_count, "mode": mode, "peak_mib": peak / 1024,
            "growth_mib": (peak - before) / 1024,
            "after_run_mib": (after_run - before) / 1024,
            "after_tables_mib": (after_tables - before) / 1024,
            "bytes_per_request": (peak - before) * 1024 / world.request_count,
            "run_wall_s": run_wall, "wall_s": wall, "cpu_s": cpu, "parquet_mib": disk / 2**20,
            "balanced": bool(balanced), "hops": hops,
            "availability": float(summary["availability"])}


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() // 1024


def peak_rss(requests: int, mode: str) -> dict[str, Any]:
    """:func:`rss_child` in a fresh process (``--rss``)."""
    out = subprocess.run([sys.executable, __file__, "--rss", str(requests), mode], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main(quick: bool = False) -> list[dict[str, Any]]:
    rows = []
    print(f"{'case':52s} {'trace':5s} {'requests':>9s} {'pending':>8s} {'B/request':>9s} "
          f"{'model':>6s} {'pilot':>6s} {'growth: model':>14s} {'pilot':>6s}")
    for name, until, params in (QUICK if quick else CASES):
        for trace in (True, False):
            m = measure(name, until, trace, **params)
            label = f"{name} until={until:g} " + " ".join(f"{k}={v:g}" for k, v in params.items())
            print(f"{label:52s} {trace!s:5s} {m['requests']:9d} {m['pending']:8d} "
                  f"{m['bytes'] / max(1, m['requests']):9.0f} "
                  f"{m['model']:6.2f} {m['pilot']:6.2f} {m['model_growth']:14.2f} "
                  f"{m['pilot_growth']:6.2f}")
            rows.append({"case": label, "trace": trace, **m})
    n = QUICK_TRACE_REQUESTS if quick else TRACE_REQUESTS
    print(f"\nchain, {n} requests: bytes per request held (tracemalloc)")
    print(f"{'trace':8s} {'run end':>8s} {'+summary, ledger':>17s} {'+every table':>13s}")
    for mode in MODES:
        t = trace_costs(n, mode)
        print(f"{mode:8s} {t['end']:8.0f} {t['tables']:17.0f} {t['frames']:13.0f}")
        rows.append({"case": f"chain {n} requests", "trace": mode, **t})
    if not quick:
        print(f"\nchain, {RSS_REQUESTS} requests, a fresh process each: peak RSS")
        for mode in MODES:
            r = peak_rss(RSS_REQUESTS, mode)
            print(f"{mode:8s} peak {r['peak_mib']:7.0f} MiB, growth {r['growth_mib']:6.0f} MiB "
                  f"({r['bytes_per_request']:5.0f} B/request), {r['wall_s']:6.1f} s, "
                  f"Parquet {r['parquet_mib']:5.1f} MiB")
            rows.append({"case": f"chain {RSS_REQUESTS} requests rss", "trace": mode, **r})
    return rows


if __name__ == "__main__":
    if "--rss" in sys.argv[1:]:
        i = sys.argv.index("--rss")
        print(json.dumps(rss_child(int(sys.argv[i + 1]), sys.argv[i + 2])))
    else:
        main(quick="--quick" in sys.argv[1:])
