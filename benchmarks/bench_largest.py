"""The largest single ``chain`` run this machine holds, and what limits it.

``bench_memory.py`` measures what a run holds per request at one size
(tracemalloc at 20 000 requests, peak resident memory at 100 000).  This
benchmark adds how that grows: whole ``chain`` runs (depth 3, 10 requests
a second) at growing request counts (:data:`COUNTS`), each in a fresh
process through ``bench_memory.py --rss N MODE`` (the same measurement:
peak RSS, its growth over the process before the run (and the resident
growth at the run's end, before any table is built), CPU and wall time,
Parquet bytes written, and whether the ledger balanced), with the trace
kept in memory, spilled to Parquet (``spill=DIR``) and off.

From them, per mode, least-squares lines: peak RSS = base + bytes per
request x requests, CPU = us per request x requests, and Parquet bytes
per request.  Then what stops a bigger run on this machine:

- RAM: requests that fit in ``MemTotal`` (24 GiB here) at that slope;
- disk (spilled trace only): requests whose Parquet files fit in the free
  space of the directory spilled to (``$SIMCOMM_SPILL_TMP`` or the
  system's temporary directory);
- time: CPU hours to run that many requests, one core.

The smaller of RAM and disk is the largest run; if it needs more than a
day of CPU (:data:`DAY_HOURS`), time is what limits in practice and the
requests a day of CPU reaches are given too.  Peak RSS counts the run and
the tables every run is asked for (``summary``, ``ledger``, ``requests``
with its ``hops``), not every DataFrame a user may build afterwards
(``bench_memory.py``'s tracemalloc table has those per request).  Memory
does not depend on the machine's load; CPU time does, a little (caches):
the load average at the start and end is printed.

    python benchmarks/bench_largest.py            # 30 000 to 1 000 000 requests
    python benchmarks/bench_largest.py --quick    # 10 000 and 30 000 requests
    python benchmarks/bench_largest.py 1000000 3000000   # these counts

The default counts take 20 min of CPU (39 min at a load average of 4 to 6,
measured); ``--quick`` about 40 s of CPU, and its lines, through two small
runs, are rough: fixed costs (pyarrow's write buffers in a spilled run)
weigh on them as on the bytes per request of a small run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BENCH_MEMORY = HERE / "bench_memory.py"
#: Requests per run, and the modes of the trace (bench_memory's).
COUNTS = (30_000, 100_000, 300_000, 1_000_000)
QUICK_COUNTS = (10_000, 30_000)
MODES = ("memory", "spill", "off")
#: CPU hours beyond which a run's time, not its memory, is what limits it in practice.
DAY_HOURS = 24.0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def mem_total() -> int:
    """Bytes of RAM this machine has (``MemTotal``)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def spill_free() -> int:
    """Free bytes where a spilled run writes its Parquet files."""
    return shutil.disk_usage(os.environ.get("SIMCOMM_SPILL_TMP") or tempfile.gettempdir()).free


def run(requests: int, mode: str) -> dict[str, Any]:
    """One run in a fresh process (``bench_memory.py --rss``); its JSON."""
    out = subprocess.run([sys.executable, str(BENCH_MEMORY), "--rss", str(requests), mode],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``(intercept, slope)`` of ys against xs (slope 0 from one point)."""
    if len(xs) < 2:
        return 0.0, ys[0] / xs[0]
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(intercept), float(slope)


def _count(n: float) -> str:
    if not np.isfinite(n):
        return "unbounded"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f}"


def limits(rows: list[dict[str, Any]], ram: int, disk: int) -> dict[str, Any]:
    """The lines through one mode's runs and what they say about the largest run."""
    ns = [float(r["requests"]) for r in rows]
    base, per_request = line(ns, [r["peak_mib"] * 2**20 for r in rows])
    _, cpu = line(ns, [r["cpu_s"] for r in rows])
    _, parquet = line(ns, [r["parquet_mib"] * 2**20 for r in rows])
    n_ram = (ram - base) / per_request if per_request > 0 else float("inf")
    n_disk = disk / parquet if parquet > 0 else float("inf")
    largest = min(n_ram, n_disk)
    hours = largest * cpu / 3600 if np.isfinite(largest) else float("inf")
    limit = "RAM" if n_ram <= n_disk else "disk"
    if hours > DAY_HOURS:
        limit = f"time ({limit} after {hours:.0f} h)"
    return {"base_mib": base / 2**20, "bytes_per_request": per_request,
            "us_per_request": cpu * 1e6, "parquet_bytes_per_request": parquet,
            "requests_in_ram": n_ram, "requests_on_disk": n_disk, "largest": largest,
            "cpu_hours": hours, "requests_per_day": DAY_HOURS * 3600 / cpu if cpu > 0
            else float("inf"), "limit": limit}


def main(counts: tuple[int, ...] = COUNTS, quick: bool = False) -> dict[str, Any]:
    """Every count in every mode (modes interleaved), the table of runs, then the limits."""
    counts = QUICK_COUNTS if quick else counts
    ram, disk = mem_total(), spill_free()
    out: dict[str, Any] = {"load_average_at_start": _load(), "ram_gib": ram / 2**30,
                           "spill_free_gib": disk / 2**30}
    print(f"chain (depth 3, 10 requests/s), one fresh process per run; RAM {ram / 2**30:.1f} "
          f"GiB, free where it spills {disk / 2**30:.0f} GiB; load average at start "
          f"{out['load_average_at_start']}")
    print(f"{'trace':7s} {'requests':>9s} {'peak MiB':>9s} {'growth MiB':>10s} "
          f"{'at run end':>10s} {'B/request':>9s} {'CPU s':>7s} {'us/req':>6s} "
          f"{'Parquet MiB':>11s} {'balanced':>8s}")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for i, n in enumerate(counts):
        for mode in MODES[i % len(MODES):] + MODES[:i % len(MODES)]:
            r = run(n, mode)
            runs[mode].append(r)
            print(f"{mode:7s} {r['requests']:9d} {r['peak_mib']:9.0f} {r['growth_mib']:10.0f} "
                  f"{r['after_run_mib']:10.0f} {r['bytes_per_request']:9.0f} {r['cpu_s']:7.1f} "
                  f"{r['cpu_s'] / r['requests'] * 1e6:6.0f} {r['parquet_mib']:11.1f} "
                  f"{'yes' if r['balanced'] else 'NO':>8s}", flush=True)
    print(f"\nfitted over {len(counts)} sizes: peak = base + B/request x requests, "
          f"CPU = us/request x requests; limits on this machine")
    print(f"{'trace':7s} {'base MiB':>8s} {'B/request':>9s} {'us/req':>6s} "
          f"{'Parquet B/req':>13s} {'fit in RAM':>10s} {'on disk':>9s} {'CPU h':>7s} "
          f"{'per day':>8s}  limit")
    for mode in MODES:
        lim = limits(runs[mode], ram, disk)
        print(f"{mode:7s} {lim['base_mib']:8.0f} {lim['bytes_per_request']:9.0f} "
              f"{lim['us_per_request']:6.0f} {lim['parquet_bytes_per_request']:13.0f} "
              f"{_count(lim['requests_in_ram']):>10s} {_count(lim['requests_on_disk']):>9s} "
              f"{lim['cpu_hours']:7.1f} {_count(lim['requests_per_day']):>8s}  {lim['limit']}")
        for key, value in lim.items():
            out[f"{mode}_{key}"] = value
    out["balanced_everywhere"] = all(r["balanced"] for rs in runs.values() for r in rs)
    out["load_average_at_end"] = _load()
    print(f"ledger balanced in every run: {'yes' if out['balanced_everywhere'] else 'NO'}; "
          f"load average at end {out['load_average_at_end']}")
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--quick" in args:
        main(quick=True)
    elif args:
        main(tuple(int(a) for a in args))
    else:
        main()
