"""simcomm's overhead over bare SimPy on the same M/M/1 queue.

Both run an M/M/1 queue at utilisation 0.9 (arrival rate 0.9/s, service
rate 1/s) for about 200 000 requests in this one process, alternately, so
they share the machine's state; we report medians over the repetitions and
the ratio of simcomm's time per request to bare SimPy's.

* bare SimPy: a process per customer and a ``simpy.Resource`` -- the
  textbook way to write the model;
* simcomm: the ``mmc`` scenario through ``simcomm.run`` with tracing on, so
  every request is two Messages through the Network, a worker pool, and
  rows in the trace (the requests DataFrame is *not* built: that is
  analysis, not simulation).
"""

from __future__ import annotations

import random
import statistics
import sys
import time

import simpy

import simcomm

ARRIVAL_RATE = 0.9
SERVICE_RATE = 1.0
REQUESTS = 200_000


def bare_simpy(n: int, seed: int) -> tuple[int, float]:
    """M/M/1 in plain SimPy; returns (completed requests, mean latency)."""
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    rng = random.Random(seed)
    latencies: list[float] = []

    def customer():
        start = env.now
        with server.request() as req:
            yield req
            yield env.timeout(rng.expovariate(SERVICE_RATE))
        latencies.append(env.now - start)

    def arrivals():
        for _ in range(n):
            yield env.timeout(rng.expovariate(ARRIVAL_RATE))
            env.process(customer())

    env.process(arrivals())
    env.run()
    return len(latencies), sum(latencies) / len(latencies)


def with_simcomm(n: int, seed: int) -> tuple[int, float]:
    sc, params, until = simcomm.prepare("mmc", seed=seed, until=n / ARRIVAL_RATE,
                                        arrival_rate=ARRIVAL_RATE, service_rate=SERVICE_RATE,
                                        servers=1)
    rows = simcomm.simulate(sc, params, seed, until).world.trace.requests
    return len(rows), sum(r[4] - r[3] for r in rows) / len(rows)


def main(reps: int = 5, n: int = REQUESTS) -> dict[str, float]:
    bare_t: list[float] = []
    sim_t: list[float] = []
    bare_n = sim_n = 0
    for rep in range(reps):
        for name in ("bare", "simcomm"):
            t0 = time.perf_counter()
            count, _ = (bare_simpy if name == "bare" else with_simcomm)(n, seed=rep + 1)
            elapsed = time.perf_counter() - t0
            if name == "bare":
                bare_t.append(elapsed / count)
                bare_n = count
            else:
                sim_t.append(elapsed / count)
                sim_n = count
    bare_med = statistics.median(bare_t)
    sim_med = statistics.median(sim_t)
    ratios = [s / b for s, b in zip(sim_t, bare_t, strict=True)]
    return {
        "requests_bare": bare_n,
        "requests_simcomm": sim_n,
        "bare_simpy_req_per_s": 1.0 / bare_med,
        "simcomm_req_per_s": 1.0 / sim_med,
        "ratio_time_per_request_median": sim_med / bare_med,
        "ratio_per_rep_min": min(ratios),
        "ratio_per_rep_max": max(ratios),
    }


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for key, value in main(reps).items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
