"""What the resilience policies cost on the call path: a protected chain vs a bare one.

The ``chain`` scenario at depth 3 (users → api-gateway → order → payment →
kitchen), built twice from the same parameters and seed:

* **bare** -- as the scenario builds it: no policy on any edge, so every
  call takes the plain path of :func:`simcomm.rpc.call`;
* **protected** -- the same, plus on every service edge (gateway → order,
  order → payment, payment → kitchen) a time limit (1 s), a Resilience4j
  circuit breaker (its defaults), a retry (its defaults: 3 attempts, 0.5 s
  apart) and a semaphore bulkhead (25 calls), in Resilience4j's order.

The services never fail (``service_availability=1``) and stay far from the
limits, so both runs simulate the same work -- the same requests, messages
and service times -- and the difference is what the policies cost: the
layers each call goes through, the timer of each time limit, the breaker's
bookkeeping, the attempt rows.  A second pair with the chain's default
outages (``service_availability=0.995``) is reported too: there the retries
and short-circuits change the work itself, so its ratio is not overhead
alone.

The two runs alternate in this one process; we report the median over the
repetitions of CPU time per request, the ratio of the medians (target
<= 1.3), the median of the ratios of back-to-back pairs, and the ratio of
the fastest run of each (the least disturbed by other work on a shared
machine, as ``timeit`` advises).
"""

from __future__ import annotations

import statistics
import sys
import time

import simcomm
from simcomm.engine import World
from simcomm.resilience import CircuitBreaker, EdgePolicy, Retry, SemaphoreBulkhead, protect
from simcomm.result import Result

REQUESTS = 10_000
RATE = 10.0
EDGES = (("api-gateway", "order"), ("order", "payment"), ("payment", "kitchen"))


def policy() -> EdgePolicy:
    return EdgePolicy(time_limit=1.0, circuit_breaker=CircuitBreaker(), retry=Retry(),
                      bulkhead=SemaphoreBulkhead(max_concurrent_calls=25))


def run_once(seed: int, protected: bool, availability: float,
             n: int = REQUESTS) -> tuple[int, float, Result]:
    """(requests, CPU seconds, result) of one run, building included."""
    sc, params, until = simcomm.prepare("chain", seed=seed, until=n / RATE, depth=3,
                                        request_rate=RATE, service_availability=availability)
    t0 = time.process_time()
    world = World(seed)
    sc.build(world, params)
    if protected:
        for caller, callee in EDGES:
            protect(world, caller, callee, policy())
    world.run(until)
    elapsed = time.process_time() - t0
    return len(world.trace.requests), elapsed, Result(world, sc, params)


def _pair(reps: int, availability: float, n: int) -> dict[str, float]:
    bare: list[float] = []
    prot: list[float] = []
    for rep in range(reps):
        for protected in (False, True):
            count, elapsed, _ = run_once(rep + 1, protected, availability, n)
            (prot if protected else bare).append(elapsed / count)
    b, p = statistics.median(bare), statistics.median(prot)
    pairs = [y / x for x, y in zip(bare, prot, strict=True)]
    return {"bare_us_per_request": b * 1e6, "protected_us_per_request": p * 1e6,
            "ratio": p / b, "pair_ratio": statistics.median(pairs),
            "min_ratio": min(prot) / min(bare)}


def main(reps: int = 7, n: int = REQUESTS) -> dict[str, float]:
    clean = _pair(reps, 1.0, n)
    faulty = _pair(max(3, reps // 2), 0.995, n)
    return {
        "requests": n,
        "bare_us_per_request_median": clean["bare_us_per_request"],
        "protected_us_per_request_median": clean["protected_us_per_request"],
        "ratio_time_per_request_median": clean["ratio"],
        "ratio_per_pair_median": clean["pair_ratio"],
        "ratio_of_fastest_runs": clean["min_ratio"],
        "with_outages_ratio_median": faulty["ratio"],
    }


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for key, value in main(reps).items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
