"""The cost of a breaker on the call path: one ``try_acquire`` + ``on_success``.

Every call through a protected edge pays one ``try_acquire(now)`` before it
and one ``on_success(now, duration)`` (or ``on_error``) after it.  This
measures that pair on each breaker kind, closed and healthy -- the common
case -- with time moving on by 1 ms per call so that time windows and
Hystrix's health buckets roll as they would in a run.  The kinds are timed
in turn within each repetition, and we report the median over repetitions
of nanoseconds per pair, plus the cost of the bare loop (calling two
no-op methods) for scale.
"""

from __future__ import annotations

import statistics
import sys
import time

from simcomm.resilience import CircuitBreaker, ConsecutiveFailureBreaker, HystrixBreaker

CALLS = 100_000
STEP = 0.001   # seconds of simulated time between calls


class _NoBreaker:
    """Two no-op methods: what the loop itself costs."""

    def try_acquire(self, now: float) -> bool:
        return True

    def on_success(self, now: float, duration: float = 0.0) -> None:
        return None


KINDS = {
    "loop_only": _NoBreaker,
    "resilience4j_count": CircuitBreaker,
    "resilience4j_time": lambda: CircuitBreaker(sliding_window_type="time",
                                                sliding_window_size=10),
    "consecutive_failure": ConsecutiveFailureBreaker,
    "hystrix": HystrixBreaker,
}


def _time_pairs(breaker, n: int) -> float:
    acquire = breaker.try_acquire
    success = breaker.on_success
    t0 = time.process_time_ns()
    for i in range(n):
        now = i * STEP
        if acquire(now):
            success(now, 0.01)
    return (time.process_time_ns() - t0) / n


def main(reps: int = 7, n: int = CALLS) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in KINDS}
    for _ in range(reps):
        for name, make in KINDS.items():
            samples[name].append(_time_pairs(make(), n))
    return {f"{name}_ns_per_call": statistics.median(v) for name, v in samples.items()}


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value:.0f}")
    sys.exit(0)
