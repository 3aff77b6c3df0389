"""The protection knobs the partial-failure scenarios share, turned into policies.

``gateway`` and ``retry-storm`` offer the same choices -- a breaker kind and
its key thresholds, a backoff kind and its waits, a retry budget -- so the
words a learner meets in one mean the same in the other.  Each scenario
declares its own fields (with its own defaults); the functions here build
the pure policies of :mod:`simcomm.resilience` from the values, one set
per caller→callee edge.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from simcomm.resilience import (
    Breaker,
    CircuitBreaker,
    ConsecutiveFailureBreaker,
    HystrixBreaker,
    Retry,
    RetryBudget,
    constant,
    decorrelated_jitter,
    equal_jitter,
    exponential,
    exponential_random,
    full_jitter,
)

__all__ = ["BACKOFFS", "BREAKERS", "FALLBACKS", "RETRY_ON", "backoff", "breaker", "retry"]

#: The breaker kinds, by the library each follows ("none": calls always go through).
BREAKERS = ("none", "resilience4j", "consecutive", "hystrix")

#: How long a retry waits: "none" retries at once; "constant" waits ``retry_wait``;
#: "exponential" ``retry_wait × 2^(n-1)`` (capped); "randomized" that, ±50 %
#: (Resilience4j's exponential random backoff); the three AWS jitters with base
#: ``retry_wait`` and cap ``retry_max_wait``.
BACKOFFS = ("none", "constant", "exponential", "randomized", "full_jitter", "equal_jitter",
            "decorrelated_jitter")

#: What a failed call to the edge answers instead: nothing, a fixed value, or the
#: last good reply of that edge.
FALLBACKS = ("none", "value", "cache")

#: The failures worth another attempt: the callee was slow, down, full or
#: failed.  A call the caller's own breaker or bulkhead refused is not
#: retried (trying again at once would be refused again).
RETRY_ON = frozenset({"timeout", "error", "reset", "refused", "rejected"})

#: Multiplier of the exponential backoffs (a doubling, as the AWS jitters use).
MULTIPLIER = 2.0


def breaker(kind: str, *, failure_rate: float, minimum_calls: int, fail_max: int,
            open_wait: float, name: str | None = None) -> Breaker | None:
    """A fresh breaker of ``kind`` (one of :data:`BREAKERS`), or None for "none".

    * ``resilience4j`` -- :class:`~simcomm.resilience.CircuitBreaker` over a
      count window of the last ``minimum_calls`` calls (window and minimum
      equal, as Resilience4j's examples set them): trips at
      ``failure_rate`` % failed, waits ``open_wait`` s, then lets 10 trial
      calls through (Resilience4j's default);
    * ``consecutive`` -- the book's breaker (pybreaker's rules): trips after
      ``fail_max`` failures in a row, one trial after ``open_wait`` s;
    * ``hystrix`` -- trips on a health snapshot with at least
      ``minimum_calls`` calls in the last 10 s and ``failure_rate`` % of
      them errors; one trial after ``open_wait`` s.
    """
    if kind == "none":
        return None
    if kind == "resilience4j":
        return CircuitBreaker(failure_rate_threshold=failure_rate,
                              sliding_window_size=minimum_calls,
                              minimum_number_of_calls=minimum_calls,
                              wait_duration_in_open_state=open_wait, name=name)
    if kind == "consecutive":
        return ConsecutiveFailureBreaker(fail_max=fail_max, reset_timeout=open_wait, name=name)
    if kind == "hystrix":
        return HystrixBreaker(request_volume_threshold=minimum_calls,
                              error_threshold_percentage=round(failure_rate),
                              sleep_window=open_wait, name=name)
    raise ValueError(f"unknown breaker kind {kind!r}")  # the field's choices prevent it


def backoff(kind: str, wait: float, max_wait: float, rng: random.Random
            ) -> Callable[[int], float] | None:
    """The interval function of ``kind`` (one of :data:`BACKOFFS`); None: retry at once."""
    cap = max(wait, max_wait)
    if kind == "none":
        return None
    if kind == "constant":
        return constant(wait)
    if kind == "exponential":
        return exponential(wait, MULTIPLIER, cap)
    if kind == "randomized":
        return exponential_random(wait, MULTIPLIER, 0.5, cap, rng=rng)
    if kind == "full_jitter":
        return full_jitter(wait, cap, rng=rng)
    if kind == "equal_jitter":
        return equal_jitter(wait, cap, rng=rng)
    if kind == "decorrelated_jitter":
        return decorrelated_jitter(wait, cap, rng=rng)
    raise ValueError(f"unknown backoff kind {kind!r}")  # the field's choices prevent it


def retry(max_attempts: int, kind: str, wait: float, max_wait: float, rng: random.Random,
          budget: tuple[float, float] | None = None) -> Retry | None:
    """A :class:`~simcomm.resilience.Retry` of ``max_attempts`` (None for 1: no retries).

    Waits come from :func:`backoff`; only :data:`RETRY_ON` outcomes are
    retried; ``budget`` = ``(max_tokens, token_ratio)`` adds a gRPC retry
    budget shared by every call on the edge.
    """
    if max_attempts <= 1:
        return None
    interval = backoff(kind, wait, max_wait, rng)
    shared = RetryBudget(*budget) if budget is not None else None
    if interval is None:
        return Retry(max_attempts=max_attempts, wait_duration=0.0, retry_on=RETRY_ON,
                     budget=shared)
    return Retry(max_attempts=max_attempts, interval_function=interval, retry_on=RETRY_ON,
                 budget=shared)
