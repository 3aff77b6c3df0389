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

The two runs go side by side in this one process, a slice of simulated
time of one then of the other, so that the rest of a shared machine's load
falls on both alike; each repetition gives the ratio of their CPU time per
request, and we report the median ratio over the repetitions (target
<= 1.3) with the lowest and highest.
"""

from __future__ import annotations

import statistics
import sys
import time

import simcomm
from simcomm.engine import World
from simcomm.resilience import CircuitBreaker, EdgePolicy, Retry, SemaphoreBulkhead, protect

REQUESTS = 10_000
RATE = 10.0
SLICES = 40
EDGES = (("api-gateway", "order"), ("order", "payment"), ("payment", "kitchen"))


def policy() -> EdgePolicy:
    return EdgePolicy(time_limit=1.0, circuit_breaker=CircuitBreaker(), retry=Retry(),
                      bulkhead=SemaphoreBulkhead(max_concurrent_calls=25))


def build(seed: int, protected: bool, availability: float, n: int = REQUESTS) -> World:
    """The chain, built (and protected, if asked), not yet run."""
    sc, params, _until = simcomm.prepare("chain", seed=seed, until=n / RATE, depth=3,
                                         request_rate=RATE, service_availability=availability)
    world = World(seed)
    sc.build(world, params)
    if protected:
        for caller, callee in EDGES:
            protect(world, caller, callee, policy())
    return world


def run_pair(seed: int, availability: float, n: int = REQUESTS,
             slices: int = SLICES) -> tuple[float, float, int]:
    """CPU seconds per request of the bare and the protected run, and the requests.

    The two worlds are run side by side: a slice of simulated time of one,
    then the same slice of the other, and so on, so that whatever else the
    machine does in the meantime slows both alike.  Slicing does not change
    a run (SimPy resumes where it stopped).
    """
    until = n / RATE
    worlds = [build(seed, False, availability, n), build(seed, True, availability, n)]
    spent = [0.0, 0.0]
    for k in range(1, slices + 1):
        for j, world in enumerate(worlds):
            t0 = time.process_time()
            world.run(until * k / slices)
            spent[j] += time.process_time() - t0
    counts = [len(w.trace.requests) for w in worlds]
    assert counts[0] == counts[1] or availability < 1, counts
    return spent[0] / counts[0], spent[1] / counts[1], counts[0]


def _pair(reps: int, availability: float, n: int) -> dict[str, float]:
    bare: list[float] = []
    prot: list[float] = []
    for rep in range(reps):
        b, p, _count = run_pair(rep + 1, availability, n)
        bare.append(b)
        prot.append(p)
    pairs = [y / x for x, y in zip(bare, prot, strict=True)]
    return {"bare_us_per_request": statistics.median(bare) * 1e6,
            "protected_us_per_request": statistics.median(prot) * 1e6,
            "ratio": statistics.median(pairs), "low": min(pairs), "high": max(pairs)}


def main(reps: int = 7, n: int = REQUESTS) -> dict[str, float]:
    clean = _pair(reps, 1.0, n)
    faulty = _pair(max(3, reps // 2), 0.995, n)
    return {
        "requests": n,
        "bare_us_per_request_median": clean["bare_us_per_request"],
        "protected_us_per_request_median": clean["protected_us_per_request"],
        "ratio_time_per_request_median": clean["ratio"],
        "ratio_lowest": clean["low"],
        "ratio_highest": clean["high"],
        "with_outages_ratio_median": faulty["ratio"],
    }


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for key, value in main(reps).items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
