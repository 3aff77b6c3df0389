"""Retries: how many attempts, which outcomes, how long to wait, and a budget.

Three pieces, all pure (no clock, no SimPy, no global random):

* **interval functions** -- ``f(n) -> seconds``, the wait after the n-th
  failed attempt (n = 1, 2, ...).  The Resilience4j ones (:func:`constant`,
  :func:`exponential`, :func:`randomized`, :func:`exponential_random`) and
  the three of the AWS Architecture Blog's "Exponential Backoff And Jitter"
  (:func:`full_jitter`, :func:`equal_jitter`, :func:`decorrelated_jitter`).
  Randomised ones draw from a ``random.Random`` you pass in, so a run is
  reproducible from its seed.  The same functions serve as a circuit
  breaker's ``wait_interval_function_in_open_state`` (n = openings).
* :class:`RetryBudget` -- gRPC's retry throttling: a token bucket shared by
  every call on an edge, which stops retries when too many calls fail.
* :class:`Retry` -- Resilience4j's Retry policy; :meth:`Retry.context`
  gives the per-call state that says, after each failed attempt, whether to
  try again and after how long.

Sources followed
----------------
* Resilience4j ``core/IntervalFunction.java`` and ``retry/internal/RetryImpl.java``
  (``ContextImpl.onError`` / ``onComplete``), ``retry/RetryConfig.java``:
  max attempts 3 *including the first call*, wait 500 ms.  The interval
  function gets the number of attempts made so far (1 after the first
  failure).  Deviations, both because simcomm's time is continuous seconds,
  not Java's whole milliseconds: each exponential step is not truncated to
  a whole millisecond (Resilience4j gives 500, 750, 1125, **1687** ms;
  simcomm 0.5, 0.75, 1.125, 1.6875 s), and the randomised wait is uniform
  in ``[i(1-f), i(1+f)]`` as REFERENCE §2 states, without Resilience4j's
  ``+ 1`` ms on the upper end (``min + random * (max - min + 1)``), which
  only exists so that truncating to ``long`` can reach ``max``; its floor of
  1 ms is kept as a floor of 0.
* gRPC ``src/core/client_channel/retry_throttle.cc`` and the retry filter's
  ``ShouldRetry``: tokens are counted in thousandths, start full, a success
  adds ``token_ratio`` (capped at ``max_tokens``), a failure *whose outcome
  is retryable* takes one token (floored at 0) and a retry is allowed only
  if the count left is **strictly above** ``max_tokens / 2``.  Non-retryable
  failures (the analogue of INVALID_ARGUMENT) neither cost a token nor are
  retried.  The failure is recorded before the max-attempts check, so the
  last attempt's failure costs a token too.
* AWS aws-arch-backoff-simulator ``backoff_simulator.py``: the client counts
  ``attempt`` from 1 for the first wait, as Resilience4j does; full jitter
  ``uniform(0, min(cap, base·2ⁿ))``, equal jitter ``v/2 + uniform(0, v/2)``,
  decorrelated ``sleep = min(cap, uniform(base, sleep·3))`` starting from
  ``sleep = base`` for each new call.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Hashable
from typing import Protocol

from simcomm.errors import ParamError
from simcomm.resilience._validate import check_real, check_whole

__all__ = [
    "DecorrelatedJitter",
    "IntervalFunction",
    "Retry",
    "RetryBudget",
    "RetryContext",
    "constant",
    "decorrelated_jitter",
    "equal_jitter",
    "exponential",
    "exponential_random",
    "full_jitter",
    "randomized",
]

#: Resilience4j's IntervalFunction defaults, in seconds.
DEFAULT_INITIAL_INTERVAL = 0.5
DEFAULT_MULTIPLIER = 1.5
DEFAULT_RANDOMIZATION_FACTOR = 0.5


class IntervalFunction(Protocol):
    """The wait in seconds after the n-th failed attempt (n = 1, 2, ...)."""

    def __call__(self, n: int) -> float: ...


def _check_rng(rng: object) -> random.Random:
    if not isinstance(rng, random.Random):
        raise ParamError("rng", rng, "a random.Random (randomness comes from the run's seed)")
    return rng


def _check_attempt(n: int) -> None:
    # IntervalFunctionCompanion.checkAttempt: attempts count from 1.
    if n < 1:
        raise ParamError("n", n, "an attempt number >= 1")


def constant(interval: float = DEFAULT_INITIAL_INTERVAL) -> IntervalFunction:
    """The same wait every time (Resilience4j ``IntervalFunction.of``)."""
    interval = check_real("interval", interval, low_open=True, unit="seconds")

    def f(n: int) -> float:
        _check_attempt(n)
        return interval

    return f


def _exponential_step(initial: float, multiplier: float, n: int) -> float:
    # IntervalFunction.of(initial, x -> x * multiplier): iterate n-1 times.
    # The closed form multiplier**(n-1) differs from the iteration in the
    # last bits; iterating keeps the same numbers as the original.
    value = initial
    for _ in range(n - 1):
        value *= multiplier
        if value == math.inf:
            break
    return value


def exponential(initial_interval: float = DEFAULT_INITIAL_INTERVAL,
                multiplier: float = DEFAULT_MULTIPLIER,
                max_interval: float | None = None) -> IntervalFunction:
    """``initial × multiplier^(n-1)``, capped at ``max_interval`` if given.

    Resilience4j ``IntervalFunction.ofExponentialBackoff``; with the defaults
    the waits are 0.5, 0.75, 1.125, ... s.
    """
    initial = check_real("initial_interval", initial_interval, low_open=True, unit="seconds")
    mult = check_real("multiplier", multiplier, low_open=True)
    cap = (math.inf if max_interval is None else
           check_real("max_interval", max_interval, low_open=True, unit="seconds"))

    def f(n: int) -> float:
        _check_attempt(n)
        return min(_exponential_step(initial, mult, n), cap)

    return f


def _randomize(rng: random.Random, current: float, factor: float) -> float:
    delta = factor * current
    return max(0.0, rng.uniform(current - delta, current + delta))


def randomized(interval: float = DEFAULT_INITIAL_INTERVAL,
               randomization_factor: float = DEFAULT_RANDOMIZATION_FACTOR, *,
               rng: random.Random) -> IntervalFunction:
    """Uniform in ``[i(1-f), i(1+f)]`` (Resilience4j ``IntervalFunction.ofRandomized``)."""
    interval = check_real("interval", interval, low_open=True, unit="seconds")
    factor = check_real("randomization_factor", randomization_factor, high=1.0)
    rng = _check_rng(rng)

    def f(n: int) -> float:
        _check_attempt(n)
        return _randomize(rng, interval, factor)

    return f


def exponential_random(initial_interval: float = DEFAULT_INITIAL_INTERVAL,
                       multiplier: float = DEFAULT_MULTIPLIER,
                       randomization_factor: float = DEFAULT_RANDOMIZATION_FACTOR,
                       max_interval: float | None = None, *,
                       rng: random.Random) -> IntervalFunction:
    """Exponential, then randomised, then capped (``ofExponentialRandomBackoff``)."""
    initial = check_real("initial_interval", initial_interval, low_open=True, unit="seconds")
    mult = check_real("multiplier", multiplier, low_open=True)
    factor = check_real("randomization_factor", randomization_factor, high=1.0)
    cap = (math.inf if max_interval is None else
           check_real("max_interval", max_interval, low_open=True, unit="seconds"))
    rng = _check_rng(rng)

    def f(n: int) -> float:
        _check_attempt(n)
        return min(_randomize(rng, _exponential_step(initial, mult, n), factor), cap)

    return f


def _check_base_cap(base: float, cap: float) -> tuple[float, float]:
    return (check_real("base", base, low_open=True, unit="seconds"),
            check_real("cap", cap, low_open=True, finite=False, unit="seconds"))


def _expo(base: float, cap: float, n: int) -> float:
    # Backoff.expo: min(cap, 2**n * base); 2.0**n overflows only past n=1023.
    return min(cap, base * 2.0 ** n) if n < 1024 else cap


def full_jitter(base: float, cap: float, *, rng: random.Random) -> IntervalFunction:
    """``uniform(0, min(cap, base·2ⁿ))`` -- AWS "Full Jitter"."""
    base, cap = _check_base_cap(base, cap)
    rng = _check_rng(rng)

    def f(n: int) -> float:
        _check_attempt(n)
        return rng.uniform(0.0, _expo(base, cap, n))

    return f


def equal_jitter(base: float, cap: float, *, rng: random.Random) -> IntervalFunction:
    """Half of ``min(cap, base·2ⁿ)`` plus ``uniform(0, half)`` -- AWS "Equal Jitter"."""
    base, cap = _check_base_cap(base, cap)
    rng = _check_rng(rng)

    def f(n: int) -> float:
        _check_attempt(n)
        half = _expo(base, cap, n) / 2.0
        return half + rng.uniform(0.0, half)

    return f


class DecorrelatedJitter:
    """``sleep = min(cap, uniform(base, sleep·3))`` -- AWS "Decorrelated Jitter".

    It remembers its previous sleep, so it is state: :class:`Retry` takes a
    :meth:`fresh` copy for every call (the simulator gives each client its
    own), and ``n == 1`` starts over from ``sleep = base`` in any case.
    """

    __slots__ = ("base", "cap", "rng", "sleep")

    def __init__(self, base: float, cap: float, *, rng: random.Random) -> None:
        self.base, self.cap = _check_base_cap(base, cap)
        self.rng = _check_rng(rng)
        self.sleep = self.base

    def fresh(self) -> DecorrelatedJitter:
        """A copy with the same settings and random stream, starting over."""
        return DecorrelatedJitter(self.base, self.cap, rng=self.rng)

    def __call__(self, n: int) -> float:
        _check_attempt(n)
        if n == 1:
            self.sleep = self.base
        self.sleep = min(self.cap, self.rng.uniform(self.base, self.sleep * 3.0))
        return self.sleep


def decorrelated_jitter(base: float, cap: float, *, rng: random.Random) -> DecorrelatedJitter:
    """See :class:`DecorrelatedJitter`."""
    return DecorrelatedJitter(base, cap, rng=rng)


def call_interval(function: Callable[[int], float], n: int, field: str) -> float:
    """``function(n)``, refused with a ParamError naming ``field`` unless it is >= 0."""
    value = function(n)
    return check_real(field, value, finite=False, unit=f"seconds, returned for n={n}")


# --------------------------------------------------------------------------- budget


def _milli(field: str, value: object, high: float | None) -> int:
    """A positive number of tokens as whole thousandths (gRPC's milli-tokens)."""
    x = check_real(field, value, low_open=True, high=high)
    # The service config keeps three decimals and drops the rest.
    milli = math.floor(round(x * 1000.0, 6))
    if milli <= 0:
        raise ParamError(field, value, "a number >= 0.001 (three decimals are kept)")
    return milli


class RetryBudget:
    """gRPC retry throttling: a token bucket that stops retries when calls fail.

    ``tokens`` starts at ``max_tokens``.  Each success adds ``token_ratio``
    (never above ``max_tokens``); each retryable failure takes one token
    (never below 0).  Retries are allowed only while the tokens left after
    the failure are strictly more than ``max_tokens / 2``.  One budget is
    shared by every call on an edge -- it throttles the edge, not a call.

    gRPC requires both fields and has no defaults; simcomm uses the values of
    gRPC's own example (proposal A6): ``max_tokens=10``, ``token_ratio=0.1``.
    ``max_tokens`` is at most 1000, as gRPC enforces.  Counting is exact, in
    thousandths of a token, as gRPC does.
    """

    __slots__ = ("_max", "_milli", "_ratio", "failures", "successes", "throttled")

    def __init__(self, max_tokens: float = 10, token_ratio: float = 0.1) -> None:
        self._max = _milli("max_tokens", max_tokens, 1000.0)
        self._ratio = _milli("token_ratio", token_ratio, None)
        self._milli = self._max
        self.successes = 0
        self.failures = 0
        self.throttled = 0

    @property
    def max_tokens(self) -> float:
        return self._max / 1000.0

    @property
    def token_ratio(self) -> float:
        return self._ratio / 1000.0

    @property
    def tokens(self) -> float:
        """The tokens left (thousandths are exact)."""
        return self._milli / 1000.0

    @property
    def retry_allowed(self) -> bool:
        """Whether tokens are above the threshold (the last failure allowed retries)."""
        return self._milli > self._max // 2

    def record_success(self) -> None:
        """A call (any attempt) succeeded: add ``token_ratio``, up to ``max_tokens``."""
        self.successes += 1
        self._milli = min(self._milli + self._ratio, self._max)

    def record_failure(self) -> bool:
        """A retryable failure: take one token; True if a retry is still allowed."""
        self.failures += 1
        self._milli = max(self._milli - 1000, 0)
        allowed = self._milli > self._max // 2
        if not allowed:
            self.throttled += 1
        return allowed

    def __repr__(self) -> str:
        return (f"RetryBudget(tokens={self.tokens:g}/{self.max_tokens:g}, "
                f"token_ratio={self.token_ratio:g})")


# --------------------------------------------------------------------------- retry


class Retry:
    """Resilience4j's Retry, as pure policy: the shared config and counters of one edge.

    ``max_attempts`` counts the first call (3 means at most two retries).
    The wait after the n-th failed attempt comes from ``interval_function``
    (default :func:`constant` of ``wait_duration``, 0.5 s); give one or the
    other, not both, as Resilience4j insists.  ``retry_on`` says which
    failed outcomes are retried: None (the default, as Resilience4j's
    "retry every exception") retries every failure; a collection of outcome
    names (``{"timeout", "reset"}``) or a predicate ``outcome -> bool``
    retries only those -- any other failure surfaces at once.  ``budget``,
    if given, is a :class:`RetryBudget` shared across calls.

    Use one :meth:`context` per call::

        ctx = retry.context()
        while True:
            outcome = <make an attempt>
            if outcome == "ok":
                ctx.on_success(now); break
            wait = ctx.on_error(now, outcome)
            if wait is None: break          # the error surfaces
            <wait ``wait`` seconds>

    The counters (``number_of_successful_calls_without_retry_attempt`` and
    its three siblings) are Resilience4j's Retry.Metrics.
    """

    def __init__(self, max_attempts: int = 3, wait_duration: float | None = None,
                 interval_function: Callable[[int], float] | None = None,
                 retry_on: Collection[Hashable] | Callable[[Hashable], bool] | None = None,
                 budget: RetryBudget | None = None) -> None:
        self.max_attempts = check_whole("max_attempts", max_attempts, 1)
        if wait_duration is not None and interval_function is not None:
            raise ParamError("interval_function", interval_function,
                             "either wait_duration or interval_function, not both")
        if interval_function is None:
            wait = (DEFAULT_INITIAL_INTERVAL if wait_duration is None else
                    check_real("wait_duration", wait_duration, unit="seconds"))
            self.wait_duration: float | None = wait
            interval_function = constant(wait) if wait > 0 else _no_wait
        else:
            if not callable(interval_function):
                raise ParamError("interval_function", interval_function,
                                 "a function of the attempt number n = 1, 2, ... giving seconds")
            self.wait_duration = None
        self.interval_function = interval_function
        self._retryable: Callable[[Hashable], bool]
        if retry_on is None:
            self._retryable = _always
        elif callable(retry_on):
            self._retryable = retry_on
        elif isinstance(retry_on, Collection) and not isinstance(retry_on, str):
            names = frozenset(retry_on)
            self._retryable = names.__contains__
        else:
            raise ParamError("retry_on", retry_on,
                             "None, a collection of outcome names, or a predicate outcome -> bool")
        self.retry_on = retry_on
        if budget is not None and not isinstance(budget, RetryBudget):
            raise ParamError("budget", budget, "None or a RetryBudget")
        self.budget = budget
        self.number_of_successful_calls_without_retry_attempt = 0
        self.number_of_successful_calls_with_retry_attempt = 0
        self.number_of_failed_calls_without_retry_attempt = 0
        self.number_of_failed_calls_with_retry_attempt = 0
        self.number_of_total_attempts = 0
        self.number_of_throttled_retries = 0

    def is_retryable(self, outcome: Hashable) -> bool:
        """Whether a failure with this outcome may be retried at all."""
        return bool(self._retryable(outcome))

    def context(self) -> RetryContext:
        """Fresh per-call state."""
        return RetryContext(self)

    def __repr__(self) -> str:
        return f"Retry(max_attempts={self.max_attempts}, budget={self.budget!r})"


def _always(outcome: Hashable) -> bool:
    return True


def _no_wait(n: int) -> float:
    # wait_duration=0: retry at once (constant() refuses 0, as Resilience4j's
    # IntervalFunction.of does; RetryConfig.waitDuration accepts it).
    return 0.0


class RetryContext:
    """The retry state of one call: how many attempts, and what to do after each.

    ``attempts`` is the number of attempts made so far (Resilience4j's
    ``numOfAttempts`` counts failed ones; this counts every attempt, so a
    request's attempt count for the results is ``ctx.attempts``).
    ``waits`` lists the waits handed out, ``finished`` is set once the call
    has an outcome, and ``surfaced`` says why a failure was not retried:
    ``"not_retryable"``, ``"throttled"`` (budget) or ``"max_attempts"``.
    """

    __slots__ = ("_fn", "_retry", "attempts", "failed_attempts", "finished", "surfaced",
                 "waits")

    def __init__(self, retry: Retry) -> None:
        self._retry = retry
        fn = retry.interval_function
        fresh = getattr(fn, "fresh", None)
        self._fn: Callable[[int], float] = fresh() if callable(fresh) else fn
        self.attempts = 0
        self.failed_attempts = 0
        self.finished = False
        self.surfaced: str | None = None
        self.waits: list[float] = []

    def _attempted(self) -> None:
        if self.finished:
            raise ParamError("context", self, "a RetryContext whose call has not finished "
                             "(take a new context per call)")
        self.attempts += 1
        self._retry.number_of_total_attempts += 1

    def on_success(self, now: float) -> None:
        """The attempt succeeded: the call is over (``onComplete``)."""
        self._attempted()
        retry = self._retry
        if retry.budget is not None:
            retry.budget.record_success()
        if self.failed_attempts == 0:
            retry.number_of_successful_calls_without_retry_attempt += 1
        else:
            retry.number_of_successful_calls_with_retry_attempt += 1
        self.finished = True

    def on_error(self, now: float, outcome: Hashable = "error") -> float | None:
        """The attempt failed with ``outcome``: the wait before the next, or None.

        None means the error surfaces now: it is not retryable, the budget
        throttles retries, or this was the last of ``max_attempts``.
        """
        self._attempted()
        retry = self._retry
        if not retry.is_retryable(outcome):
            self._surface("not_retryable")
            return None
        if retry.budget is not None and not retry.budget.record_failure():
            retry.number_of_throttled_retries += 1
            self._surface("throttled")
            return None
        self.failed_attempts += 1
        if self.failed_attempts >= retry.max_attempts:
            self._surface("max_attempts")
            return None
        wait = call_interval(self._fn, self.failed_attempts, "interval_function")
        self.waits.append(wait)
        return wait

    def _surface(self, why: str) -> None:
        # RetryImpl counts a non-retryable error as "failed without retry
        # attempt" whatever the attempt, and exhausting max_attempts as
        # "failed with retry attempt" (even with max_attempts=1).  A throttled
        # retry is simcomm's (Resilience4j has no budget): it counts as
        # "with" once a retry was made, else "without".
        retry = self._retry
        if why == "not_retryable" or (why == "throttled" and self.attempts == 1):
            retry.number_of_failed_calls_without_retry_attempt += 1
        else:
            retry.number_of_failed_calls_with_retry_attempt += 1
        self.surfaced = why
        self.finished = True

    def __repr__(self) -> str:
        return f"RetryContext(attempts={self.attempts}, finished={self.finished})"
