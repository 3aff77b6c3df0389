"""The chain scenario at depth 3 with about 100 000 requests: time and memory.

Wall time per request (median of the repetitions) and peak memory per
request.  Memory is measured in a fresh child process, as the growth of the
peak resident set during the run over the resident set just before it, so
the interpreter and the imported libraries are not counted.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time

import simcomm

REQUESTS = 100_000
RATE = 10.0  # the chain's default request rate (req/s)


def run_once(seed: int) -> tuple[int, float]:
    sc, params, until = simcomm.prepare("chain", seed=seed, until=REQUESTS / RATE, depth=3,
                                        request_rate=RATE)
    t0 = time.perf_counter()  # building the world is part of a run, as in simcomm.run
    res = simcomm.simulate(sc, params, seed, until)
    return len(res.world.trace.requests), time.perf_counter() - t0


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() // 1024


def memory_child() -> None:
    """Run once and print JSON with the memory growth (KiB) and requests."""
    before = _rss_kib()
    count, _ = run_once(seed=99)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"requests": count, "growth_kib": peak - before}))


def main(reps: int = 3) -> dict[str, float]:
    per_req = []
    count = 0
    for rep in range(reps):
        count, elapsed = run_once(seed=rep + 1)
        per_req.append(elapsed / count)
    child = subprocess.run([sys.executable, __file__, "--memory"], check=True,
                           capture_output=True, text=True)
    mem = json.loads(child.stdout)
    return {
        "requests": count,
        "wall_s_median": statistics.median(per_req) * count,
        "us_per_request_median": statistics.median(per_req) * 1e6,
        "peak_bytes_per_request": mem["growth_kib"] * 1024 / mem["requests"],
    }


if __name__ == "__main__":
    if "--memory" in sys.argv:
        memory_child()
    else:
        for key, value in main().items():
            print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
