"""Circuit breakers: three kinds behind one interface, as pure state machines.

The book's circuit breaker (*Microservices Patterns* §3.2.3) is "an RPI
proxy that immediately rejects invocations for a timeout period after the
number of consecutive failures crosses a specified threshold".  Libraries
people use differ in what they count and when they decide, and learners
should be able to compare them, so simcomm has three:

* :class:`CircuitBreaker` -- Resilience4j's rate breaker: a count or time
  window, failure-rate and slow-call-rate thresholds, minimum calls, a wait
  in open that can grow, a fixed number of half-open trial calls, and the
  special states disabled / forced-open / metrics-only;
* :class:`ConsecutiveFailureBreaker` -- the book's definition, with
  pybreaker's rules (``fail_max``, ``reset_timeout``, ``success_threshold``);
* :class:`HystrixBreaker` -- Netflix Hystrix 1.5: rolling health counts,
  a request-volume threshold, a truncated integer error percentage judged
  on health snapshots, and a single trial call.

All three share one interface (:class:`Breaker`)::

    if breaker.try_acquire(now):          # may move open -> half-open
        ... make the call ...
        breaker.on_success(now, duration)  # or on_error(now, duration)
    else:
        ... short-circuited ...

and report ``state`` (``"closed"``, ``"open"``, ``"half_open"``; the
Resilience4j breaker also ``"disabled"``, ``"forced_open"``,
``"metrics_only"``).  Every method takes the current simulated time ``now``
(seconds) instead of reading a clock, so a test needs no sleeps and a run
is reproducible; ``now`` must never go backwards.  :meth:`advance` applies
what a timer of the original would have done by ``now`` (automatic
open → half-open, the max wait in half-open, Hystrix's health snapshots);
:attr:`next_timer` says when that next matters, so glue can wake up then.
Listeners (:class:`BreakerListener`, no-op methods as pybreaker's
``CircuitBreakerListener``) see every state change with the time and the
reason, which is what figures of breaker states are drawn from.

Nothing here imports SimPy: the glue that applies breakers to calls lives
above the engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from simcomm.errors import ParamError
from simcomm.resilience._validate import (
    check_callable,
    check_choice,
    check_flag,
    check_real,
    check_whole,
)
from simcomm.resilience.retry import call_interval

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
    "HystrixBreaker",
    "IllegalStateTransition",
]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
DISABLED = "disabled"
FORCED_OPEN = "forced_open"
METRICS_ONLY = "metrics_only"

_INF = math.inf


class BreakerListener:
    """Watches a breaker; every method is a no-op, override the ones you need.

    As pybreaker's ``CircuitBreakerListener``, but each hook gets the
    simulated time: ``state_change(now, old, new, why)`` with ``why`` a short
    sentence ("failure rate 60 % >= 50 % over 5 calls"), ``success`` and
    ``failure`` for each recorded outcome, ``not_permitted`` for each call
    the breaker turned away.  Transitions a timer makes (automatic
    open → half-open, a Hystrix health snapshot) are reported with the
    timer's time, which can be earlier than the ``now`` that revealed them.
    """

    def state_change(self, now: float, old: str, new: str, why: str) -> None:
        """The breaker went from ``old`` to ``new`` at ``now``."""

    def success(self, now: float, duration: float) -> None:
        """A call that took ``duration`` seconds succeeded."""

    def failure(self, now: float, duration: float) -> None:
        """A call that took ``duration`` seconds failed."""

    def not_permitted(self, now: float) -> None:
        """A call was turned away (short-circuited)."""


@runtime_checkable
class Breaker(Protocol):
    """What every breaker kind offers the call path and the figures."""

    @property
    def state(self) -> str: ...

    @property
    def next_timer(self) -> float | None: ...

    def try_acquire(self, now: float) -> bool: ...

    def on_success(self, now: float, duration: float = 0.0) -> None: ...

    def on_error(self, now: float, duration: float = 0.0) -> None: ...

    def advance(self, now: float) -> None: ...

    def add_listener(self, listener: BreakerListener) -> None: ...


class IllegalStateTransition(ValueError):
    """A transition the original refuses (Resilience4j: CLOSED → HALF_OPEN, ...)."""

    def __init__(self, old: str, new: str) -> None:
        self.old = old
        self.new = new
        super().__init__(f"a circuit breaker cannot go from {old} to {new}")


def _check_listeners(listeners: Iterable[BreakerListener]) -> list[BreakerListener]:
    if isinstance(listeners, (str, bytes)) or not isinstance(listeners, Iterable):
        raise ParamError("listeners", listeners, "a sequence of BreakerListener objects")
    out = list(listeners)
    for item in out:
        if not callable(getattr(item, "state_change", None)):
            raise ParamError("listeners", item, "objects with a state_change(now, old, new, "
                             "why) method, e.g. BreakerListener subclasses")
    return out


class _Listened:
    """The listener plumbing the three breakers share."""

    _listeners: list[BreakerListener]

    @property
    def listeners(self) -> tuple[BreakerListener, ...]:
        return tuple(self._listeners)

    def add_listener(self, listener: BreakerListener) -> None:
        """Register ``listener`` (see :class:`BreakerListener`)."""
        self._listeners.extend(_check_listeners([listener]))

    def remove_listener(self, listener: BreakerListener) -> None:
        self._listeners.remove(listener)

    def _announce(self, now: float, old: str, new: str, why: str) -> None:
        for listener in self._listeners:
            listener.state_change(now, old, new, why)

    def _tell_not_permitted(self, now: float) -> None:
        for listener in self._listeners:
            listener.not_permitted(now)

    def _tell_outcome(self, now: float, duration: float, failed: bool) -> None:
        for listener in self._listeners:
            if failed:
                listener.failure(now, duration)
            else:
                listener.success(now, duration)


# =========================================================================
# Resilience4j CircuitBreaker
# =========================================================================

# CircuitBreakerMetrics.Result, as small ints: "exceeded" is >= _FAILURE.
_BELOW_MINIMUM = 0
_BELOW = 1
_FAILURE = 2
_SLOW = 3
_BOTH = 4


class _CountWindow:
    """FixedSizeSlidingWindowMetrics: the last ``size`` outcomes in a ring.

    Each slot holds an outcome code: bit 1 recorded, bit 2 failed, bit 4 slow.
    """

    __slots__ = ("calls", "failed", "head", "ring", "size", "slow", "slow_failed")

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring = [0] * max(size, 1)
        self.head = 0
        self.calls = self.failed = self.slow = self.slow_failed = 0

    def advance(self, now: float) -> None:
        """A count window does not age."""

    def record(self, now: float, failed: bool, slow: bool) -> None:
        head = self.head + 1
        if head >= self.size:
            head = 0
        self.head = head
        ring = self.ring
        old = ring[head]
        if old:
            self.calls -= 1
            if old & 2:
                self.failed -= 1
                if old & 4:
                    self.slow_failed -= 1
            if old & 4:
                self.slow -= 1
        self.calls += 1
        code = 1
        if failed:
            code |= 2
            self.failed += 1
        if slow:
            code |= 4
            self.slow += 1
            if failed:
                self.slow_failed += 1
        ring[head] = code


class _TimeWindow:
    """SlidingTimeWindowMetrics: one bucket per whole second, ``size`` of them.

    A call recorded at time t lands in the bucket of second ``floor(t)``;
    buckets ``size`` or more seconds older than the current second are
    emptied as the window moves (``moveWindowToCurrentEpochSecond``).  The
    window starts at the first time it is given (Resilience4j builds it at
    the state's creation; an empty window is the same either way).
    """

    __slots__ = ("b_calls", "b_failed", "b_slow", "b_slow_failed", "calls", "epoch",
                 "failed", "head", "size", "slow", "slow_failed")

    def __init__(self, size: int) -> None:
        self.size = size
        self.epoch: list[int | None] = [None] * size
        self.b_calls = [0] * size
        self.b_failed = [0] * size
        self.b_slow = [0] * size
        self.b_slow_failed = [0] * size
        self.head = 0
        self.calls = self.failed = self.slow = self.slow_failed = 0

    def _move(self, now: float) -> None:
        second = math.floor(now)
        head = self.head
        current = self.epoch[head]
        if current is None:
            self.epoch[head] = second
            return
        diff = second - current
        if diff == 0:
            return
        if diff < 0:
            raise ParamError("now", now, f"a time >= the last time this window saw "
                             f"(second {current}): time never goes backwards")
        steps = min(diff, self.size)
        size = self.size
        while steps > 0:
            steps -= 1
            head += 1
            if head == size:
                head = 0
            self.calls -= self.b_calls[head]
            self.failed -= self.b_failed[head]
            self.slow -= self.b_slow[head]
            self.slow_failed -= self.b_slow_failed[head]
            self.b_calls[head] = self.b_failed[head] = 0
            self.b_slow[head] = self.b_slow_failed[head] = 0
            self.epoch[head] = second - steps
        self.head = head

    def advance(self, now: float) -> None:
        self._move(now)

    def record(self, now: float, failed: bool, slow: bool) -> None:
        self._move(now)
        head = self.head
        self.calls += 1
        self.b_calls[head] += 1
        if failed:
            self.failed += 1
            self.b_failed[head] += 1
        if slow:
            self.slow += 1
            self.b_slow[head] += 1
            if failed:
                self.slow_failed += 1
                self.b_slow_failed[head] += 1


class _Metrics:
    """CircuitBreakerMetrics: a window plus the thresholds it is judged against."""

    __slots__ = ("failure_threshold", "minimum", "not_permitted", "slow_duration",
                 "slow_threshold", "window")

    def __init__(self, window: _CountWindow | _TimeWindow, minimum: int,
                 cb: CircuitBreaker) -> None:
        self.window = window
        self.minimum = minimum
        self.failure_threshold = cb.failure_rate_threshold
        self.slow_threshold = cb.slow_call_rate_threshold
        self.slow_duration = cb.slow_call_duration_threshold
        self.not_permitted = 0

    def record(self, now: float, failed: bool, duration: float) -> int:
        """Record one outcome and judge the window (``checkIfThresholdsExceeded``)."""
        w = self.window
        w.record(now, failed, duration > self.slow_duration)
        calls = w.calls
        if calls == 0 or calls < self.minimum:
            return _BELOW_MINIMUM
        failure = w.failed * 100.0 / calls >= self.failure_threshold
        slow = w.slow * 100.0 / calls >= self.slow_threshold
        if failure:
            return _BOTH if slow else _FAILURE
        return _SLOW if slow else _BELOW

    def _rate(self, count: int) -> float:
        calls = self.window.calls
        if calls == 0 or calls < self.minimum:
            return -1.0
        return count * 100.0 / calls

    @property
    def failure_rate(self) -> float:
        return self._rate(self.window.failed)

    @property
    def slow_call_rate(self) -> float:
        return self._rate(self.window.slow)

    def why(self, result: int) -> str:
        calls = self.window.calls
        parts = []
        if result in (_FAILURE, _BOTH):
            parts.append(f"failure rate {self.failure_rate:g} % >= "
                         f"{self.failure_threshold:g} %")
        if result in (_SLOW, _BOTH):
            parts.append(f"slow-call rate {self.slow_call_rate:g} % >= "
                         f"{self.slow_threshold:g} %")
        return " and ".join(parts) + f" over {calls} calls"


class _R4jState:
    """One state of the Resilience4j machine (``CircuitBreakerState``)."""

    __slots__ = ("attempts", "cb", "deadline", "metrics")
    name = ""

    def __init__(self, cb: CircuitBreaker, attempts: int, metrics: _Metrics) -> None:
        self.cb = cb
        self.attempts = attempts
        self.metrics = metrics
        self.deadline = _INF   # when a timer of this state fires, if ever

    def try_acquire(self, now: float) -> bool:
        return True

    def on_result(self, now: float, failed: bool, duration: float) -> None:
        """Record an outcome (a no-op in the states that record nothing)."""

    def on_deadline(self, at: float) -> None:  # pragma: no cover - only timed states
        raise AssertionError("no timer in this state")

    def release_permission(self) -> None:
        """Give back a permission taken by :meth:`try_acquire` (half-open only)."""


class _Closed(_R4jState):
    __slots__ = ()
    name = CLOSED

    def on_result(self, now: float, failed: bool, duration: float) -> None:
        result = self.metrics.record(now, failed, duration)
        if result >= _FAILURE:
            self.cb._go_open(now, 1, self.metrics, self.metrics.why(result))


class _Open(_R4jState):
    """Rejects until the wait has passed; the first call *strictly after* goes half-open."""

    __slots__ = ("retry_after",)
    name = OPEN

    def __init__(self, cb: CircuitBreaker, now: float, attempts: int, metrics: _Metrics) -> None:
        super().__init__(cb, attempts, metrics)
        self.retry_after = now + cb._wait_in_open(attempts)
        if cb.automatic_transition_from_open_to_half_open_enabled:
            self.deadline = self.retry_after

    def try_acquire(self, now: float) -> bool:
        if now > self.retry_after:
            cb = self.cb
            cb._go_half_open(now, self.attempts, "wait in open state over; a call came")
            return cb._state.try_acquire(now)
        self.metrics.not_permitted += 1
        return False

    def on_result(self, now: float, failed: bool, duration: float) -> None:
        # A call let through before the breaker opened still counts.
        self.metrics.record(now, failed, duration)

    def on_deadline(self, at: float) -> None:
        self.cb._go_half_open(at, self.attempts, "wait in open state over (automatic)")


class _HalfOpen(_R4jState):
    """Lets ``permitted`` calls through and judges them in a count window of that size."""

    __slots__ = ("permits",)
    name = HALF_OPEN

    def __init__(self, cb: CircuitBreaker, now: float, attempts: int) -> None:
        permitted = cb.permitted_number_of_calls_in_half_open_state
        # forHalfOpen: a COUNT_BASED window of the permitted calls, so the
        # minimum is clamped to it.
        metrics = _Metrics(_CountWindow(permitted), min(cb.minimum_number_of_calls, permitted), cb)
        super().__init__(cb, attempts, metrics)
        self.permits = permitted
        if cb.max_wait_duration_in_half_open_state > 0:
            self.deadline = now + cb.max_wait_duration_in_half_open_state

    def try_acquire(self, now: float) -> bool:
        if self.permits > 0:
            self.permits -= 1
            return True
        self.metrics.not_permitted += 1
        return False

    def release_permission(self) -> None:
        self.permits += 1

    def on_result(self, now: float, failed: bool, duration: float) -> None:
        result = self.metrics.record(now, failed, duration)
        if result >= _FAILURE:
            self.cb._go_open(now, self.attempts + 1, self.metrics,
                             self.metrics.why(result) + " in half-open")
        elif result == _BELOW:
            calls = self.metrics.window.calls
            self.cb._go_closed(now, f"half-open calls below thresholds "
                                    f"(failure rate {self.metrics.failure_rate:g} % "
                                    f"over {calls} calls)")

    def on_deadline(self, at: float) -> None:
        cb = self.cb
        why = f"max wait of {cb.max_wait_duration_in_half_open_state:g} s in half-open over"
        if cb.transition_to_state_after_wait_duration == OPEN:
            cb._go_open(at, self.attempts + 1, self.metrics, why)
        else:
            cb._go_closed(at, why)


class _Disabled(_R4jState):
    __slots__ = ()
    name = DISABLED


class _MetricsOnly(_R4jState):
    __slots__ = ()
    name = METRICS_ONLY

    def on_result(self, now: float, failed: bool, duration: float) -> None:
        self.metrics.record(now, failed, duration)


class _ForcedOpen(_R4jState):
    __slots__ = ()
    name = FORCED_OPEN

    def try_acquire(self, now: float) -> bool:
        self.metrics.not_permitted += 1
        return False


# StateTransition: every pair is legal except these three.
_ILLEGAL = frozenset({(CLOSED, HALF_OPEN), (METRICS_ONLY, OPEN), (METRICS_ONLY, HALF_OPEN)})


class CircuitBreaker(_Listened):
    """Resilience4j's CircuitBreaker: failure and slow-call rates over a window.

    Follows ``CircuitBreakerStateMachine``, ``CircuitBreakerMetrics``,
    ``FixedSizeSlidingWindowMetrics`` and ``SlidingTimeWindowMetrics``
    (resilience4j main), with the defaults of ``CircuitBreakerConfig``:

    * ``sliding_window_type="count"``: the last ``sliding_window_size``
      outcomes; ``"time"``: outcomes of the last ``sliding_window_size``
      whole seconds (one bucket per second of ``floor(now)``).
    * With fewer recorded calls than ``minimum_number_of_calls`` there is no
      rate (-1, as Resilience4j reports it) and the breaker never trips;
      with a count window the minimum is clamped to the window size.
    * After every recorded outcome, CLOSED trips to OPEN when the failure
      rate **>=** ``failure_rate_threshold`` or the slow-call rate **>=**
      ``slow_call_rate_threshold`` (percent).  A call is slow when its
      ``duration`` is **strictly greater** than
      ``slow_call_duration_threshold``; a slow call can be a success.
    * OPEN rejects until ``now`` is **strictly after** the opening time plus
      the wait, then the call moves it to HALF_OPEN.  The wait is
      ``wait_interval_function_in_open_state(n)`` where n counts openings
      since the breaker last closed (1, 2, ...), else the constant
      ``wait_duration_in_open_state``.  With
      ``automatic_transition_from_open_to_half_open_enabled`` a timer moves
      it at exactly that time (a call at that instant finds it half-open).
    * HALF_OPEN permits ``permitted_number_of_calls_in_half_open_state``
      calls and rejects the rest; it judges them in a count window of that
      size (minimum clamped to it): over a threshold → OPEN (n + 1), below
      → CLOSED with fresh metrics, too few yet → stay.  With
      ``max_wait_duration_in_half_open_state`` > 0 a timer ends half-open
      after that long, to ``transition_to_state_after_wait_duration``
      (``"open"`` by default, or ``"closed"``).
    * DISABLED permits everything and records nothing; FORCED_OPEN rejects
      everything; METRICS_ONLY records and never rejects.  Reach them (and
      any legal state) with the ``transition_to_*_state`` methods; CLOSED →
      HALF_OPEN and METRICS_ONLY → OPEN / HALF_OPEN raise
      :class:`IllegalStateTransition`, as in Resilience4j.
    * An outcome that arrives after the state changed is recorded by the
      state it arrives in (Resilience4j does the same: a call let through
      while closed and finished while open is recorded in the open state's
      metrics -- those of the closed state that tripped).

    Deviations: times are seconds as floats, so the 1 ms floors of
    ``wait_duration_in_open_state`` and of the half-open max wait do not
    apply (any positive value works); rates are compared in double, not
    Java ``float``, which can differ only when a threshold lies within
    float rounding of an attainable rate.  Exceptions vs. results
    (``recordExceptions``, ``ignoreExceptions``, ``recordResult``) are the
    caller's business: it decides what is an error and calls
    :meth:`on_error` or :meth:`on_success` (or :meth:`release_permission`
    for an ignored one).
    """

    def __init__(self, *,
                 failure_rate_threshold: float = 50.0,
                 slow_call_rate_threshold: float = 100.0,
                 slow_call_duration_threshold: float = 60.0,
                 sliding_window_type: str = "count",
                 sliding_window_size: int = 100,
                 minimum_number_of_calls: int = 100,
                 wait_duration_in_open_state: float | None = None,
                 wait_interval_function_in_open_state: Callable[[int], float] | None = None,
                 permitted_number_of_calls_in_half_open_state: int = 10,
                 max_wait_duration_in_half_open_state: float = 0.0,
                 transition_to_state_after_wait_duration: str = OPEN,
                 automatic_transition_from_open_to_half_open_enabled: bool = False,
                 listeners: Iterable[BreakerListener] = (),
                 name: str | None = None) -> None:
        self.failure_rate_threshold = check_real(
            "failure_rate_threshold", failure_rate_threshold, low_open=True, high=100.0,
            unit="percent")
        self.slow_call_rate_threshold = check_real(
            "slow_call_rate_threshold", slow_call_rate_threshold, low_open=True, high=100.0,
            unit="percent")
        self.slow_call_duration_threshold = check_real(
            "slow_call_duration_threshold", slow_call_duration_threshold, low_open=True,
            finite=False, unit="seconds")
        self.sliding_window_type = check_choice("sliding_window_type", sliding_window_type,
                                                ("count", "time"))
        self.sliding_window_size = check_whole("sliding_window_size", sliding_window_size, 1)
        self.minimum_number_of_calls = check_whole("minimum_number_of_calls",
                                                   minimum_number_of_calls, 1)
        if wait_duration_in_open_state is not None and \
                wait_interval_function_in_open_state is not None:
            raise ParamError("wait_interval_function_in_open_state",
                             wait_interval_function_in_open_state,
                             "either wait_duration_in_open_state or "
                             "wait_interval_function_in_open_state, not both")
        self.wait_duration_in_open_state = (
            60.0 if wait_duration_in_open_state is None else
            check_real("wait_duration_in_open_state", wait_duration_in_open_state,
                       low_open=True, unit="seconds"))
        self.wait_interval_function_in_open_state = (
            None if wait_interval_function_in_open_state is None else
            check_callable("wait_interval_function_in_open_state",
                           wait_interval_function_in_open_state,
                           "a function of the opening count n = 1, 2, ... giving seconds"))
        self.permitted_number_of_calls_in_half_open_state = check_whole(
            "permitted_number_of_calls_in_half_open_state",
            permitted_number_of_calls_in_half_open_state, 1)
        self.max_wait_duration_in_half_open_state = check_real(
            "max_wait_duration_in_half_open_state", max_wait_duration_in_half_open_state,
            unit="seconds (0 = stay until the permitted calls finish)")
        self.transition_to_state_after_wait_duration = check_choice(
            "transition_to_state_after_wait_duration", transition_to_state_after_wait_duration,
            (OPEN, CLOSED))
        self.automatic_transition_from_open_to_half_open_enabled = check_flag(
            "automatic_transition_from_open_to_half_open_enabled",
            automatic_transition_from_open_to_half_open_enabled)
        self._listeners = _check_listeners(listeners)
        self.name = name
        self._state: _R4jState = _Closed(self, 0, self._closed_metrics())

    # ----------------------------------------------------------- internals

    def _closed_metrics(self) -> _Metrics:
        size = self.sliding_window_size
        if self.sliding_window_type == "count":
            return _Metrics(_CountWindow(size), min(self.minimum_number_of_calls, size), self)
        return _Metrics(_TimeWindow(size), self.minimum_number_of_calls, self)

    def _wait_in_open(self, attempts: int) -> float:
        fn = self.wait_interval_function_in_open_state
        if fn is None:
            return self.wait_duration_in_open_state
        return call_interval(fn, attempts, "wait_interval_function_in_open_state")

    def _switch(self, now: float, new: _R4jState, why: str) -> None:
        old = self._state.name
        if (old, new.name) in _ILLEGAL:
            raise IllegalStateTransition(old, new.name)
        self._state = new
        if old != new.name:   # X -> X is internal: not published, as upstream
            self._announce(now, old, new.name, why)

    def _go_open(self, now: float, attempts: int, metrics: _Metrics, why: str) -> None:
        self._switch(now, _Open(self, now, attempts, metrics), why)

    def _go_half_open(self, now: float, attempts: int, why: str) -> None:
        self._switch(now, _HalfOpen(self, now, attempts), why)

    def _go_closed(self, now: float, why: str) -> None:
        self._switch(now, _Closed(self, 0, self._closed_metrics()), why)

    def _fire_timers(self, now: float) -> None:
        state = self._state
        while now >= state.deadline:
            state.on_deadline(state.deadline)
            state = self._state

    # ----------------------------------------------------------- interface

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"``, ``"half_open"``, ``"disabled"``, ``"forced_open"``
        or ``"metrics_only"`` (as of the last time given)."""
        return self._state.name

    @property
    def next_timer(self) -> float | None:
        """When a timer (automatic transition, half-open max wait) fires next, if any."""
        deadline = self._state.deadline
        return None if deadline == _INF else deadline

    def advance(self, now: float) -> None:
        """Apply the timers due by ``now`` and move a time window to ``now``."""
        self._fire_timers(now)
        self._state.metrics.window.advance(now)

    def try_acquire(self, now: float) -> bool:
        """May a call start now?  (``tryAcquirePermission``; may move OPEN → HALF_OPEN.)"""
        if now >= self._state.deadline:
            self._fire_timers(now)
        if self._state.try_acquire(now):
            return True
        if self._listeners:
            self._tell_not_permitted(now)
        return False

    def release_permission(self, now: float) -> None:
        """Give back a permission of a call that was never made (or whose error is ignored)."""
        if now >= self._state.deadline:
            self._fire_timers(now)
        self._state.release_permission()

    def on_success(self, now: float, duration: float = 0.0) -> None:
        """A permitted call succeeded after ``duration`` seconds."""
        if now >= self._state.deadline:
            self._fire_timers(now)
        if self._listeners:
            self._tell_outcome(now, duration, False)
        self._state.on_result(now, False, duration)

    def on_error(self, now: float, duration: float = 0.0) -> None:
        """A permitted call failed after ``duration`` seconds."""
        if now >= self._state.deadline:
            self._fire_timers(now)
        if self._listeners:
            self._tell_outcome(now, duration, True)
        self._state.on_result(now, True, duration)

    # ----------------------------------------------------------- manual transitions

    def transition_to_closed_state(self, now: float) -> None:
        self._fire_timers(now)
        self._go_closed(now, "transition_to_closed_state")

    def transition_to_open_state(self, now: float) -> None:
        self._fire_timers(now)
        s = self._state
        self._go_open(now, s.attempts + 1, s.metrics, "transition_to_open_state")

    def transition_to_half_open_state(self, now: float) -> None:
        self._fire_timers(now)
        self._go_half_open(now, self._state.attempts, "transition_to_half_open_state")

    def transition_to_disabled_state(self, now: float) -> None:
        self._fire_timers(now)
        self._switch(now, _Disabled(self, 0, _Metrics(_CountWindow(0), 1, self)),
                     "transition_to_disabled_state")

    def transition_to_forced_open_state(self, now: float) -> None:
        self._fire_timers(now)
        self._switch(now, _ForcedOpen(self, self._state.attempts + 1,
                                      _Metrics(_CountWindow(0), 1, self)),
                     "transition_to_forced_open_state")

    def transition_to_metrics_only_state(self, now: float) -> None:
        self._fire_timers(now)
        self._switch(now, _MetricsOnly(self, 0, self._closed_metrics()),
                     "transition_to_metrics_only_state")

    def reset(self, now: float) -> None:
        """Back to CLOSED with empty metrics, from any state (``reset``)."""
        old = self._state.name
        self._state = _Closed(self, 0, self._closed_metrics())
        if old != CLOSED:
            self._announce(now, old, CLOSED, "reset")

    # ----------------------------------------------------------- metrics

    @property
    def attempts(self) -> int:
        """How many times the breaker has opened since it last closed."""
        return self._state.attempts

    @property
    def retry_after(self) -> float | None:
        """In OPEN: the time after which the next call is let through."""
        s = self._state
        return s.retry_after if isinstance(s, _Open) else None

    @property
    def failure_rate(self) -> float:
        """Failed calls, percent of the window; -1 below the minimum number of calls."""
        return self._state.metrics.failure_rate

    @property
    def slow_call_rate(self) -> float:
        """Slow calls, percent of the window; -1 below the minimum number of calls."""
        return self._state.metrics.slow_call_rate

    @property
    def number_of_buffered_calls(self) -> int:
        return self._state.metrics.window.calls

    @property
    def number_of_failed_calls(self) -> int:
        return self._state.metrics.window.failed

    @property
    def number_of_successful_calls(self) -> int:
        w = self._state.metrics.window
        return w.calls - w.failed

    @property
    def number_of_slow_calls(self) -> int:
        return self._state.metrics.window.slow

    @property
    def number_of_slow_failed_calls(self) -> int:
        return self._state.metrics.window.slow_failed

    @property
    def number_of_slow_successful_calls(self) -> int:
        w = self._state.metrics.window
        return w.slow - w.slow_failed

    @property
    def number_of_not_permitted_calls(self) -> int:
        """Calls turned away by the current state's metrics (reset with them)."""
        return self._state.metrics.not_permitted

    @property
    def permitted_calls_left(self) -> int | None:
        """In HALF_OPEN: how many more trial calls it will let through."""
        s = self._state
        return s.permits if isinstance(s, _HalfOpen) else None

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (f"<CircuitBreaker{label} {self.state} failure_rate={self.failure_rate:g} "
                f"calls={self.number_of_buffered_calls}>")


# =========================================================================
# pybreaker: consecutive failures
# =========================================================================


class _CfState:
    __slots__ = ("cb",)
    name = ""

    def __init__(self, cb: ConsecutiveFailureBreaker) -> None:
        self.cb = cb

    def try_acquire(self, now: float) -> bool:
        return True

    def on_success(self, now: float) -> None:
        """CircuitBreakerState.on_success: nothing by default."""

    def on_failure(self, now: float) -> None:
        """CircuitBreakerState.on_failure: nothing by default."""


class _CfClosed(_CfState):
    __slots__ = ()
    name = CLOSED

    def on_failure(self, now: float) -> None:
        cb = self.cb
        if cb.fail_counter >= cb.fail_max:
            cb._open(now, f"{cb.fail_counter} consecutive failures (fail_max {cb.fail_max})")


class _CfOpen(_CfState):
    __slots__ = ()
    name = OPEN

    def try_acquire(self, now: float) -> bool:
        cb = self.cb
        if now < cb.opened_at + cb.reset_timeout:   # type: ignore[operator]
            cb.not_permitted += 1
            return False
        cb._half_open(now)
        return cb._state.try_acquire(now)


class _CfHalfOpen(_CfState):
    __slots__ = ("trial",)
    name = HALF_OPEN

    def __init__(self, cb: ConsecutiveFailureBreaker) -> None:
        super().__init__(cb)
        self.trial = False

    def try_acquire(self, now: float) -> bool:
        if self.trial:
            self.cb.not_permitted += 1
            return False
        self.trial = True
        return True

    def on_success(self, now: float) -> None:
        self.trial = False
        cb = self.cb
        cb.success_counter += 1
        if cb.success_counter >= cb.success_threshold:
            cb._close(now, f"{cb.success_counter} trial call(s) succeeded "
                           f"(success_threshold {cb.success_threshold})")

    def on_failure(self, now: float) -> None:
        self.trial = False
        self.cb._open(now, "trial call failed")


class ConsecutiveFailureBreaker(_Listened):
    """The book's breaker with pybreaker's rules: open after ``fail_max`` failures in a row.

    Follows pybreaker 1.4 (``CircuitBreaker``, ``CircuitClosedState``,
    ``CircuitOpenState``, ``CircuitHalfOpenState``), defaults ``fail_max=5``,
    ``reset_timeout=60`` s, ``success_threshold=1``:

    * every failure adds one to ``fail_counter`` and every success sets it
      to 0, in any state -- so it counts consecutive failures;
    * in CLOSED, the failure that brings the counter to ``fail_max`` opens
      the breaker (that call already failed);
    * in OPEN, calls are rejected until ``now >= opened_at + reset_timeout``
      (at exactly that instant the trial is allowed); then the breaker is
      HALF_OPEN and that call is its trial;
    * in HALF_OPEN a failure re-opens it (new ``opened_at``; the counter goes
      on counting), and ``success_threshold`` successes in a row close it,
      resetting both counters.

    pybreaker holds a lock for the whole of every call, so it never has two
    calls in flight.  simcomm keeps the consequence the pattern depends on
    -- half-open admits **one trial at a time** (others are rejected until
    the trial's outcome is reported) -- but not the lock in the closed
    state, which would turn the breaker into a one-call bulkhead.  An
    outcome reported in half-open ends the trial, even if it belongs to a
    call let through earlier (pybreaker cannot see such a call).  Counters
    and listeners are called in pybreaker's order.
    """

    def __init__(self, *, fail_max: int = 5, reset_timeout: float = 60.0,
                 success_threshold: int = 1, listeners: Iterable[BreakerListener] = (),
                 name: str | None = None) -> None:
        self.fail_max = check_whole("fail_max", fail_max, 1)
        self.reset_timeout = check_real("reset_timeout", reset_timeout, unit="seconds")
        self.success_threshold = check_whole("success_threshold", success_threshold, 1)
        self._listeners = _check_listeners(listeners)
        self.name = name
        self.fail_counter = 0
        self.success_counter = 0
        self.not_permitted = 0
        self.opened_at: float | None = None
        self._state: _CfState = _CfClosed(self)

    def _set(self, now: float, new: _CfState, why: str) -> None:
        old = self._state.name
        self._state = new
        self._announce(now, old, new.name, why)

    def _open(self, now: float, why: str) -> None:
        # CircuitBreaker.open + CircuitOpenState(notify=True)
        self.opened_at = now
        self.success_counter = 0
        self._set(now, _CfOpen(self), why)

    def _half_open(self, now: float) -> None:
        self.success_counter = 0
        self._set(now, _CfHalfOpen(self), f"reset_timeout of {self.reset_timeout:g} s over")

    def _close(self, now: float, why: str) -> None:
        # CircuitBreaker.close + CircuitClosedState(notify=True)
        self.success_counter = 0
        self.fail_counter = 0
        self._set(now, _CfClosed(self), why)

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (pybreaker: ``"half-open"``)."""
        return self._state.name

    @property
    def next_timer(self) -> None:
        """pybreaker has no timers: an open breaker waits for a call."""
        return None

    def advance(self, now: float) -> None:
        """Nothing happens without a call."""

    def try_acquire(self, now: float) -> bool:
        """May a call start now?  (In OPEN after ``reset_timeout``: half-open, one trial.)"""
        if self._state.try_acquire(now):
            return True
        if self._listeners:
            self._tell_not_permitted(now)
        return False

    def on_success(self, now: float, duration: float = 0.0) -> None:
        """The call succeeded: the failure counter goes back to 0."""
        self.fail_counter = 0
        self._state.on_success(now)
        if self._listeners:
            self._tell_outcome(now, duration, False)

    def on_error(self, now: float, duration: float = 0.0) -> None:
        """The call failed: one more consecutive failure."""
        self.fail_counter += 1
        if self._listeners:
            self._tell_outcome(now, duration, True)
        self._state.on_failure(now)

    @property
    def failure_rate(self) -> float:
        """Consecutive failures as a percent of ``fail_max`` (100 = the trip point)."""
        return 100.0 * self.fail_counter / self.fail_max

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (f"<ConsecutiveFailureBreaker{label} {self.state} "
                f"fail_counter={self.fail_counter}/{self.fail_max}>")


# =========================================================================
# Hystrix
# =========================================================================


def _to_ms(now: float) -> int:
    """Simulated seconds as whole milliseconds, truncated like currentTimeMillis.

    Rounding to the nanosecond first keeps 4.35 s at 4350 ms (4.35 * 1000
    is 4349.999... in binary).
    """
    return round(now * 1e9) // 1_000_000


def _config_ms(field: str, value: object, low_ms: int, unit: str = "seconds") -> int:
    seconds = check_real(field, value, unit=unit)
    ms = round(seconds * 1000.0)
    if ms < low_ms:
        raise ParamError(field, value, f"at least {low_ms / 1000:g} s (Hystrix counts "
                         "whole milliseconds)")
    return ms


class HystrixBreaker(_Listened):
    """Netflix Hystrix's breaker: rolling health counts judged on snapshots; one trial.

    Follows Hystrix 1.5 (``HystrixCircuitBreakerImpl`` with its ``Status``
    CLOSED / OPEN / HALF_OPEN, ``HealthCountsStream``,
    ``BucketedRollingCounterStream``, ``HystrixCommandMetrics.HealthCounts``,
    ``AbstractCommand``), defaults from ``HystrixCommandProperties``:

    * **health counts** are counted in buckets of ``health_snapshot_interval``
      (0.5 s) -- ``rolling_window / health_snapshot_interval`` of them (20),
      so they cover ``rolling_window`` (10 s).  At the end of every bucket a
      snapshot is taken of the buckets just completed (never the current,
      unfinished one): total = successes + errors, errors = failures,
      timeouts and rejections (whatever the caller reports with
      :meth:`on_error`), short-circuited calls not counted;
      ``error_percentage = int(errors / total * 100)``, truncated, computed
      in double as Java does;
    * the breaker is judged **on each snapshot only**: CLOSED → OPEN when
      total **>=** ``request_volume_threshold`` (20) and error % **>=**
      ``error_threshold_percentage`` (50).  Snapshots count from the first
      time the breaker is used, and start over when it closes;
    * OPEN short-circuits until ``now`` is **strictly after** the opening
      time plus ``sleep_window`` (5 s); then **one** call is let through and
      the breaker is HALF_OPEN, rejecting every other call, until the
      trial's outcome: a success closes it and resets the health counts, a
      failure re-opens it with a new sleep window;
    * ``force_open`` / ``force_closed`` are Hystrix's
      ``circuitBreaker.forceOpen`` / ``forceClosed``.

    Time is whole milliseconds, as Hystrix's ``System.currentTimeMillis``:
    ``now`` is truncated to the millisecond and the durations of the config
    are rounded to it.

    Where REFERENCE §1c reads differently: it describes the rolling window
    as "10 s in 10 buckets"; in Hystrix 1.5 ``buckets``
    (``metrics.rollingStats.numBuckets``) shapes only the rolling event
    counts (:attr:`rolling_counts`, what the Hystrix dashboard shows), while
    the breaker's health counts use buckets of the snapshot interval --
    simcomm does the same.  Also as in Hystrix: every :meth:`on_error` in
    half-open re-opens the breaker (``markNonSuccess``), and a success or a
    failure reported while OPEN changes only the counts.
    """

    def __init__(self, *, request_volume_threshold: int = 20,
                 error_threshold_percentage: int = 50, sleep_window: float = 5.0,
                 rolling_window: float = 10.0, buckets: int = 10,
                 health_snapshot_interval: float = 0.5, force_open: bool = False,
                 force_closed: bool = False, listeners: Iterable[BreakerListener] = (),
                 name: str | None = None) -> None:
        self.request_volume_threshold = check_whole("request_volume_threshold",
                                                    request_volume_threshold, 1)
        self.error_threshold_percentage = check_whole("error_threshold_percentage",
                                                      error_threshold_percentage, 0, 100)
        self._sleep_ms = _config_ms("sleep_window", sleep_window, 0)
        self._window_ms = _config_ms("rolling_window", rolling_window, 1)
        self.buckets = check_whole("buckets", buckets, 1, self._window_ms)
        self._h = _config_ms("health_snapshot_interval", health_snapshot_interval, 1)
        if self._h > self._window_ms:
            raise ParamError("health_snapshot_interval", health_snapshot_interval,
                             f"at most the rolling_window ({rolling_window!r} s)")
        self.force_open = check_flag("force_open", force_open)
        self.force_closed = check_flag("force_closed", force_closed)
        self._listeners = _check_listeners(listeners)
        self.name = name
        self._n = self._window_ms // self._h          # health buckets per snapshot
        self._rbs = self._window_ms // self.buckets   # rolling-count bucket size, ms
        self._status = CLOSED
        self._opened_ms = -1
        self._r0 = 0                  # origin of the rolling-count buckets
        self._last_ms = 0
        self._reset_health(0)
        self._t0: int | None = None   # origin of the health buckets: the first use
        self._rolling: dict[int, list[int]] = {}
        self._rolling_j = -1
        self._rolling_bucket = [0, 0, 0]

    # ----------------------------------------------------------- config, read back

    @property
    def sleep_window(self) -> float:
        return self._sleep_ms / 1000.0

    @property
    def rolling_window(self) -> float:
        return self._window_ms / 1000.0

    @property
    def health_snapshot_interval(self) -> float:
        return self._h / 1000.0

    # ----------------------------------------------------------- health stream

    def _reset_health(self, origin: int) -> None:
        # HystrixCommandMetrics.resetStream: a new HealthCountsStream, empty,
        # whose buckets start now.
        self._t0 = origin
        self._k = 0   # index of the latest snapshot taken (at t0 + k * interval)
        self._health: dict[int, list[int]] = {}
        self._last_j = -(1 << 62)
        self._win_total = 0
        self._win_errors = 0

    def _advance(self, ms: int) -> None:
        """Take the health snapshots due by ``ms``, in order, judging each if CLOSED."""
        if self._t0 is None:
            self._t0 = ms
            self._r0 = ms
        self._last_ms = ms
        k_now = (ms - self._t0) // self._h
        k = self._k
        if k_now <= k:
            return
        n = self._n
        health = self._health
        stop = min(k_now, self._last_j + n)   # later windows hold no calls
        while k < stop:
            k += 1
            entering = health.get(k - 1)
            if entering is not None:
                self._win_total += entering[0]
                self._win_errors += entering[1]
            leaving = health.pop(k - 1 - n, None)
            if leaving is not None:
                self._win_total -= leaving[0]
                self._win_errors -= leaving[1]
            if self._status == CLOSED and self._win_total >= self.request_volume_threshold \
                    and self.error_percentage >= self.error_threshold_percentage:
                at = self._t0 + k * self._h
                self._status = OPEN
                self._opened_ms = at
                self._announce(at / 1000.0, CLOSED, OPEN,
                               f"error {self.error_percentage} % >= "
                               f"{self.error_threshold_percentage} % over "
                               f"{self._win_total} requests (health snapshot)")
        if k < k_now:
            health.clear()
            self._win_total = self._win_errors = 0
        self._k = k_now

    def _record(self, ms: int, error: bool) -> None:
        assert self._t0 is not None
        j = (ms - self._t0) // self._h
        if j == self._last_j:
            bucket = self._health[j]
        else:
            bucket = self._health.setdefault(j, [0, 0])
            self._last_j = j
        bucket[0] += 1
        if error:
            bucket[1] += 1
        if (ms - self._r0) // self._rbs == self._rolling_j:   # _count, inlined
            self._rolling_bucket[1 if error else 0] += 1
        else:
            self._count(ms, 1 if error else 0)

    def _count(self, ms: int, kind: int) -> None:
        # Rolling event counts (success, failure, short-circuited) in
        # ``buckets`` buckets; kept only for :attr:`rolling_counts`.
        j = (ms - self._r0) // self._rbs
        if j != self._rolling_j:
            rolling = self._rolling
            for old in [i for i in rolling if i < j - self.buckets]:
                del rolling[old]
            self._rolling_bucket = rolling.setdefault(j, [0, 0, 0])
            self._rolling_j = j
        self._rolling_bucket[kind] += 1

    # ----------------------------------------------------------- interface

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (as of the last time given).

        ``force_open`` / ``force_closed`` decide calls without changing it.
        """
        return self._status

    @property
    def next_timer(self) -> float | None:
        """When the next health snapshot could open a CLOSED breaker, if any."""
        if self._status != CLOSED or self._t0 is None or \
                self._k >= self._last_j + self._n:
            return None
        return (self._t0 + (self._k + 1) * self._h) / 1000.0

    def advance(self, now: float) -> None:
        """Take the health snapshots due by ``now``."""
        self._advance(_to_ms(now))

    def try_acquire(self, now: float) -> bool:
        """``attemptExecution``: closed → yes; open → one trial after the sleep window."""
        ms = round(now * 1e9) // 1_000_000   # _to_ms, inlined: the hot path
        self._advance(ms)
        if self.force_open:
            return self._short_circuit(now, ms)
        if self.force_closed or self._opened_ms == -1:
            return True
        if ms > self._opened_ms + self._sleep_ms and self._status == OPEN:
            self._status = HALF_OPEN
            self._announce(now, OPEN, HALF_OPEN,
                           f"sleep window of {self.sleep_window:g} s over: one trial call")
            return True
        return self._short_circuit(now, ms)

    def _short_circuit(self, now: float, ms: int) -> bool:
        self._count(ms, 2)
        if self._listeners:
            self._tell_not_permitted(now)
        return False

    def on_success(self, now: float, duration: float = 0.0) -> None:
        """``markSuccess``: counted; in HALF_OPEN it closes and resets the health counts."""
        ms = round(now * 1e9) // 1_000_000   # _to_ms, inlined: the hot path
        self._advance(ms)
        if self._status == HALF_OPEN:
            # markSuccess runs before the command's completion reaches the
            # health stream, so the trial itself counts in the fresh stream.
            self._status = CLOSED
            self._opened_ms = -1
            self._reset_health(ms)
            self._announce(now, HALF_OPEN, CLOSED, "trial call succeeded")
        self._record(ms, False)
        if self._listeners:
            self._tell_outcome(now, duration, False)

    def on_error(self, now: float, duration: float = 0.0) -> None:
        """``markNonSuccess``: counted as an error; in HALF_OPEN it re-opens."""
        ms = round(now * 1e9) // 1_000_000   # _to_ms, inlined: the hot path
        self._advance(ms)
        self._record(ms, True)
        if self._listeners:
            self._tell_outcome(now, duration, True)
        if self._status == HALF_OPEN:
            self._status = OPEN
            self._opened_ms = ms
            self._announce(now, HALF_OPEN, OPEN, "trial call failed")

    # ----------------------------------------------------------- metrics

    @property
    def is_open(self) -> bool:
        """Hystrix's ``isOpen``: OPEN or HALF_OPEN (or forced open)."""
        if self.force_open:
            return True
        if self.force_closed:
            return False
        return self._opened_ms >= 0

    @property
    def opened_at(self) -> float | None:
        """When the circuit last opened (seconds), while it is open or half-open."""
        return None if self._opened_ms < 0 else self._opened_ms / 1000.0

    @property
    def total_requests(self) -> int:
        """Requests in the latest health snapshot."""
        return self._win_total

    @property
    def error_count(self) -> int:
        """Errors in the latest health snapshot."""
        return self._win_errors

    @property
    def error_percentage(self) -> int:
        """``(int)(errors / total * 100)`` of the latest health snapshot (0 if empty)."""
        total = self._win_total
        return int(self._win_errors / total * 100) if total > 0 else 0

    @property
    def failure_rate(self) -> float:
        """The error percentage, as a float, for figures that compare breaker kinds."""
        return float(self.error_percentage)

    @property
    def rolling_counts(self) -> dict[str, int]:
        """Successes, failures and short-circuited calls in the last ``rolling_window``.

        Counted in ``buckets`` buckets, whole buckets only, as the Hystrix
        dashboard's rolling counts.
        """
        k = (self._last_ms - self._r0) // self._rbs
        totals = [0, 0, 0]
        for j, bucket in self._rolling.items():
            if k - self.buckets <= j < k:
                for i in range(3):
                    totals[i] += bucket[i]
        return {"success": totals[0], "failure": totals[1], "short_circuited": totals[2]}

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (f"<HystrixBreaker{label} {self.state} error={self.error_percentage} % "
                f"of {self.total_requests}>")
