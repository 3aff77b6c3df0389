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
  :class:`TimeLimiter`;
* on an edge (:mod:`~simcomm.resilience.edge`): :class:`EdgePolicy` bundles
  them with a :class:`Fallback` and a deadline, :func:`protect` declares it
  on every call from one service to another, :func:`protect_server` sheds
  load at a service.  The glue that applies them to calls lives in
  :mod:`simcomm.rpc.policies` and is imported only when ``protect`` runs.

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
from simcomm.resilience.edge import (
    DEFAULT_ORDER,
    POLICY_NAMES,
    EdgePolicy,
    Fallback,
    protect,
    protect_server,
)
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
    "DEFAULT_ORDER",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "METRICS_ONLY",
    "OPEN",
    "POLICY_NAMES",
    "Breaker",
    "BreakerListener",
    "CircuitBreaker",
    "ConsecutiveFailureBreaker",
    "DecorrelatedJitter",
    "EdgePolicy",
    "Fallback",
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
    "protect",
    "protect_server",
    "randomized",
]
