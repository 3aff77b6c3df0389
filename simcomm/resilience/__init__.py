"""Resilience policies as pure state machines: breakers, retries, bulkheads, limiters.

Each policy takes the current simulated time ``now`` (seconds) as an
argument instead of reading a clock, draws randomness only from a
``random.Random`` it is given, and imports nothing from SimPy or the engine:
it can be built, driven and tested without a World.  The glue that applies
policies to calls lives above the engine.

* breakers (:mod:`~simcomm.resilience.breakers`): :class:`CircuitBreaker`
  (Resilience4j), :class:`ConsecutiveFailureBreaker` (the book's, with
  pybreaker's rules), :class:`HystrixBreaker`; one interface, :class:`Breaker`;
* retries (:mod:`~simcomm.resilience.retry`): :class:`Retry`,
  :class:`RetryBudget` (gRPC retry throttling) and the interval functions;
* bulkheads (:mod:`~simcomm.resilience.bulkhead`): :class:`SemaphoreBulkhead`,
  :class:`ThreadPoolBulkhead`;
* :class:`RateLimiter` (Resilience4j's AtomicRateLimiter) and
  :class:`TimeLimiter`.

Every constructor checks its fields and raises
:class:`simcomm.errors.ParamError` naming the one that is wrong.
"""

from simcomm.resilience.breakers import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    METRICS_ONLY,
    OPEN,
    Breaker,
    BreakerListener,
    CircuitBreaker,
    ConsecutiveFailureBreaker,
    HystrixBreaker,
    IllegalStateTransition,
)
from simcomm.resilience.bulkhead import SemaphoreBulkhead, ThreadPoolBulkhead
from simcomm.resilience.ratelimiter import RateLimiter
from simcomm.resilience.retry import (
    DecorrelatedJitter,
    IntervalFunction,
    Retry,
    RetryBudget,
    RetryContext,
    constant,
    decorrelated_jitter,
    equal_jitter,
    exponential,
    exponential_random,
    full_jitter,
    randomized,
)
from simcomm.resilience.timelimiter import TimeLimiter

__all__ = [
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "METRICS_ONLY",
    "OPEN",
    "Breaker",
    "BreakerListener",
    "CircuitBreaker",
    "ConsecutiveFailureBreaker",
    "DecorrelatedJitter",
    "HystrixBreaker",
    "IllegalStateTransition",
    "IntervalFunction",
    "RateLimiter",
    "Retry",
    "RetryBudget",
    "RetryContext",
    "SemaphoreBulkhead",
    "ThreadPoolBulkhead",
    "TimeLimiter",
    "constant",
    "decorrelated_jitter",
    "equal_jitter",
    "exponential",
    "exponential_random",
    "full_jitter",
    "randomized",
]
