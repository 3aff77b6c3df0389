"""The three circuit breakers against REFERENCE §1 and the rules of their originals.

Each test drives a breaker with explicit times -- no World, no sleeps -- and
checks one rule.  The worked examples of REFERENCE §1 come first for each
kind, then cases from the same rules (window edges, strict-after
boundaries, half-open permits, exponential waits, special states).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.errors import ParamError
from simcomm.resilience import (
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
    exponential,
)


class Recorder(BreakerListener):
    """Keeps every state change and every rejection."""

    def __init__(self) -> None:
        self.changes: list[tuple[float, str, str, str]] = []
        self.rejected: list[float] = []
        self.outcomes: list[tuple[float, float, bool]] = []

    def state_change(self, now, old, new, why):
        self.changes.append((now, old, new, why))

    def not_permitted(self, now):
        self.rejected.append(now)

    def success(self, now, duration):
        self.outcomes.append((now, duration, True))

    def failure(self, now, duration):
        self.outcomes.append((now, duration, False))


def call(breaker, now, ok, duration=0.0):
    """One permitted call that ends at ``now`` with ``ok``; asserts it was permitted."""
    assert breaker.try_acquire(now), f"call at {now} not permitted ({breaker.state})"
    if ok:
        breaker.on_success(now, duration)
    else:
        breaker.on_error(now, duration)


# =========================================================================
# Resilience4j CircuitBreaker
# =========================================================================


def worked_example_breaker(**overrides) -> CircuitBreaker:
    """REFERENCE §1a's config: 50 %/50 %, slow 4 s, 20 s time window, min 5, wait 5 s, 4 trials."""
    config = dict(failure_rate_threshold=50, slow_call_rate_threshold=50,
                  slow_call_duration_threshold=4, sliding_window_type="time",
                  sliding_window_size=20, minimum_number_of_calls=5,
                  wait_duration_in_open_state=5, permitted_number_of_calls_in_half_open_state=4)
    config.update(overrides)
    return CircuitBreaker(**config)


def opened_at(cb: CircuitBreaker, t: float) -> None:
    """Trip ``cb`` (worked-example config) with five failures at ``t``."""
    for _ in range(5):
        call(cb, t, False)
    assert cb.state == OPEN


def half_open_at(cb: CircuitBreaker, t: float) -> None:
    """Open ``cb`` at ``t - 6`` so that the wait (5 s) is over at ``t``; one trial not taken."""
    opened_at(cb, t - 6)
    cb.transition_to_half_open_state(t)
    assert cb.state == HALF_OPEN


def test_r4j_defaults_are_resilience4js():
    cb = CircuitBreaker()
    assert (cb.failure_rate_threshold, cb.slow_call_rate_threshold) == (50, 100)
    assert cb.slow_call_duration_threshold == 60
    assert (cb.sliding_window_type, cb.sliding_window_size) == ("count", 100)
    assert cb.minimum_number_of_calls == 100
    assert cb.wait_duration_in_open_state == 60
    assert cb.permitted_number_of_calls_in_half_open_state == 10
    assert cb.max_wait_duration_in_half_open_state == 0
    assert cb.automatic_transition_from_open_to_half_open_enabled is False
    assert cb.state == CLOSED


def test_r4j_example_no_rate_below_minimum_then_trips_at_60_percent():
    """fail ×3 → no rate (3 < 5); success → 4 calls, still none; success → 60 % → OPEN."""
    cb = worked_example_breaker()
    for t in (0.0, 1.0, 2.0):
        call(cb, t, False)
        assert cb.state == CLOSED and cb.failure_rate == -1
    call(cb, 3.0, True)
    assert cb.state == CLOSED and cb.failure_rate == -1 and cb.number_of_buffered_calls == 4
    call(cb, 4.0, True)
    assert cb.state == OPEN
    assert cb.failure_rate == 60.0
    assert not cb.try_acquire(4.0)


def test_r4j_example_half_open_permits_four_rejects_fifth_and_sixth():
    cb = worked_example_breaker()
    half_open_at(cb, 10.0)
    assert [cb.try_acquire(10.0) for _ in range(6)] == [True] * 4 + [False] * 2


def test_r4j_example_half_open_one_failure_in_four_closes_and_resets():
    """fail, success, success, success → 25 % < 50 % → CLOSED with empty metrics."""
    cb = worked_example_breaker()
    half_open_at(cb, 10.0)
    for ok in (False, True, True):
        call(cb, 10.0, ok)
        assert cb.state == HALF_OPEN
    call(cb, 10.0, True)
    assert cb.state == CLOSED
    assert cb.number_of_buffered_calls == 0 and cb.failure_rate == -1
    assert cb.attempts == 0


def test_r4j_example_open_rejects_at_3_permits_at_6():
    cb = worked_example_breaker()
    opened_at(cb, 100.0)
    assert not cb.try_acquire(103.0)
    assert cb.state == OPEN
    assert cb.try_acquire(106.0)
    assert cb.state == HALF_OPEN


def test_r4j_open_to_half_open_only_strictly_after_the_wait():
    cb = worked_example_breaker()
    opened_at(cb, 100.0)
    assert cb.retry_after == 105.0
    assert not cb.try_acquire(105.0)
    assert cb.state == OPEN
    assert cb.try_acquire(np.nextafter(105.0, 106.0))
    assert cb.state == HALF_OPEN


def test_r4j_automatic_transition_fires_at_exactly_the_wait():
    rec = Recorder()
    cb = worked_example_breaker(automatic_transition_from_open_to_half_open_enabled=True,
                                listeners=[rec])
    opened_at(cb, 100.0)
    assert cb.next_timer == 105.0
    cb.advance(104.999)
    assert cb.state == OPEN
    cb.advance(107.0)   # revealed late: reported at the timer's own time
    assert cb.state == HALF_OPEN
    assert rec.changes[-1][:3] == (105.0, OPEN, HALF_OPEN)
    assert cb.next_timer is None


def test_r4j_automatic_transition_lets_a_call_at_the_instant_through():
    cb = worked_example_breaker(automatic_transition_from_open_to_half_open_enabled=True)
    opened_at(cb, 100.0)
    assert cb.try_acquire(105.0)
    assert cb.state == HALF_OPEN


def test_r4j_time_window_drops_calls_older_than_the_window():
    """A call at second s counts until the clock reaches second s + size."""
    cb = worked_example_breaker(minimum_number_of_calls=1)
    for t in (0.0, 0.5, 0.999):
        call(cb, t, True)
    cb.advance(19.999)
    assert cb.number_of_buffered_calls == 3
    cb.advance(20.0)
    assert cb.number_of_buffered_calls == 0


def test_r4j_time_window_buckets_are_whole_seconds():
    """Calls at 0.999 and 1.0 are in different buckets: the first drops out a second earlier."""
    cb = worked_example_breaker(minimum_number_of_calls=1)
    call(cb, 0.999, True)
    call(cb, 1.0, True)
    cb.advance(20.5)
    assert cb.number_of_buffered_calls == 1
    cb.advance(21.0)
    assert cb.number_of_buffered_calls == 0


def test_r4j_time_window_trips_on_failures_within_it_only():
    """Failures 20 s ago have left; the same count inside the window trips."""
    cb = worked_example_breaker()
    for t in (0.0, 0.1, 0.2):
        call(cb, t, False)
    for t in (20.0, 20.1, 20.2, 20.3):
        call(cb, t, True)
    call(cb, 20.4, False)   # 1 of 5 in the window: 20 %
    assert cb.state == CLOSED and cb.failure_rate == 20.0


def test_r4j_time_going_backwards_is_refused():
    cb = worked_example_breaker()
    call(cb, 5.0, True)
    with pytest.raises(ParamError, match="now"):
        cb.on_success(3.0)


def test_r4j_count_window_keeps_only_the_last_n_outcomes():
    cb = CircuitBreaker(sliding_window_size=4, minimum_number_of_calls=4)
    for ok in (False, True, True, True):
        call(cb, 0.0, ok)
    assert cb.failure_rate == 25.0
    call(cb, 0.0, True)   # the failure rolls out
    assert cb.failure_rate == 0.0 and cb.number_of_buffered_calls == 4


def test_r4j_minimum_calls_is_clamped_to_a_count_window():
    """minimum 100 with a window of 5: five failures are enough."""
    cb = CircuitBreaker(sliding_window_size=5, minimum_number_of_calls=100)
    for _ in range(4):
        call(cb, 0.0, False)
    assert cb.state == CLOSED
    call(cb, 0.0, False)
    assert cb.state == OPEN


def test_r4j_minimum_calls_is_not_clamped_to_a_time_window():
    cb = CircuitBreaker(sliding_window_type="time", sliding_window_size=5,
                        minimum_number_of_calls=8)
    for i in range(7):
        call(cb, i * 0.1, False)
    assert cb.state == CLOSED and cb.failure_rate == -1
    call(cb, 0.7, False)
    assert cb.state == OPEN


def test_r4j_never_trips_below_the_minimum_even_at_100_percent():
    cb = CircuitBreaker(minimum_number_of_calls=10, sliding_window_size=10)
    for _ in range(9):
        call(cb, 0.0, False)
    assert cb.state == CLOSED and cb.failure_rate == -1 and cb.number_of_failed_calls == 9


def test_r4j_trips_at_exactly_the_threshold_not_below():
    cb = CircuitBreaker(sliding_window_size=10, minimum_number_of_calls=10)
    for ok in [True] * 5 + [False] * 4:
        call(cb, 0.0, ok)
    call(cb, 0.0, True)    # 4 of 10 = 40 %
    assert cb.state == CLOSED
    cb2 = CircuitBreaker(sliding_window_size=10, minimum_number_of_calls=10)
    for ok in [True] * 5 + [False] * 4:
        call(cb2, 0.0, ok)
    call(cb2, 0.0, False)  # 5 of 10 = 50 % >= 50 %
    assert cb2.state == OPEN


def test_r4j_rates_are_judged_after_every_call():
    """With a count window, a 50 % rate reached mid-stream trips at once."""
    cb = CircuitBreaker(sliding_window_size=4, minimum_number_of_calls=2)
    call(cb, 0.0, True)
    call(cb, 0.0, False)   # 1 of 2 = 50 %
    assert cb.state == OPEN


def test_r4j_slow_means_strictly_longer_than_the_threshold():
    cb = worked_example_breaker()
    for t in range(5):
        call(cb, float(t), True, duration=4.0)   # exactly 4 s: not slow
    assert cb.state == CLOSED and cb.slow_call_rate == 0.0


def test_r4j_slow_successes_trip_on_the_slow_call_rate():
    cb = worked_example_breaker()
    for t, d in enumerate([4.5, 4.5, 4.5, 1.0, 1.0]):
        call(cb, float(t), True, duration=d)
    assert cb.state == OPEN
    assert cb.failure_rate == 0.0 and cb.slow_call_rate == 60.0
    assert cb.number_of_slow_successful_calls == 3 and cb.number_of_slow_failed_calls == 0


def test_r4j_slow_failures_count_in_both_rates():
    cb = worked_example_breaker(failure_rate_threshold=100, slow_call_rate_threshold=100)
    for t in range(5):
        call(cb, float(t), t % 2 == 0, duration=5.0 if t < 2 else 0.0)
    assert cb.number_of_slow_calls == 2
    assert cb.number_of_slow_failed_calls == 1 and cb.number_of_slow_successful_calls == 1


def test_r4j_default_slow_rate_threshold_of_100_needs_every_call_slow():
    cb = CircuitBreaker(sliding_window_size=3, minimum_number_of_calls=3,
                        slow_call_duration_threshold=1.0)
    for d in (2.0, 2.0, 0.5):
        call(cb, 0.0, True, duration=d)
    assert cb.state == CLOSED
    call(cb, 0.0, True, duration=2.0)  # window: 2, 0.5, 2 -> 66 %
    call(cb, 0.0, True, duration=2.0)  # window: 0.5, 2, 2
    call(cb, 0.0, True, duration=2.0)  # window: 2, 2, 2 -> 100 %
    assert cb.state == OPEN


def test_r4j_half_open_stays_until_enough_trial_calls():
    """Half-open judges only once its (clamped) minimum of calls is in."""
    cb = worked_example_breaker()
    half_open_at(cb, 10.0)
    call(cb, 10.0, False)
    call(cb, 10.0, False)      # 2 failures of 2, but only 2 of 4 calls
    assert cb.state == HALF_OPEN
    call(cb, 10.0, True)
    assert cb.state == HALF_OPEN
    call(cb, 10.0, True)       # 2 of 4 = 50 % -> open again
    assert cb.state == OPEN and cb.attempts == 2


def test_r4j_half_open_minimum_is_clamped_to_its_permitted_calls():
    """Defaults: minimum 100, 10 trial calls -> judged after the 10th."""
    cb = CircuitBreaker(sliding_window_size=5)
    for _ in range(5):
        call(cb, 0.0, False)
    cb.transition_to_half_open_state(0.0)
    for i in range(9):
        call(cb, 0.0, True)
        assert cb.state == HALF_OPEN, i
    call(cb, 0.0, True)
    assert cb.state == CLOSED


def test_r4j_release_permission_gives_a_trial_back():
    cb = worked_example_breaker()
    half_open_at(cb, 10.0)
    for _ in range(4):
        assert cb.try_acquire(10.0)
    assert not cb.try_acquire(10.0)
    cb.release_permission(10.0)
    assert cb.permitted_calls_left == 1
    assert cb.try_acquire(10.0)


def test_r4j_exponential_open_waits_grow_per_opening_and_reset_on_close():
    cb = worked_example_breaker(wait_duration_in_open_state=None,
                                wait_interval_function_in_open_state=exponential(5.0, 2.0))
    opened_at(cb, 0.0)
    assert (cb.attempts, cb.retry_after) == (1, 5.0)
    cb.try_acquire(5.5)                                   # half-open, trial 1
    for _ in range(4):
        cb.on_error(5.5)
    assert cb.state == OPEN and (cb.attempts, cb.retry_after) == (2, 15.5)
    assert not cb.try_acquire(15.5)
    assert cb.try_acquire(15.6)
    for _ in range(4):
        cb.on_error(15.6)
    assert (cb.attempts, cb.retry_after) == (3, 35.6)
    cb.try_acquire(36.0)
    for _ in range(4):
        cb.on_success(36.0)
    assert cb.state == CLOSED and cb.attempts == 0
    opened_at(cb, 40.0)
    assert (cb.attempts, cb.retry_after) == (1, 45.0)


def test_r4j_wait_duration_and_interval_function_together_are_refused():
    with pytest.raises(ParamError, match="wait_interval_function_in_open_state"):
        CircuitBreaker(wait_duration_in_open_state=5,
                       wait_interval_function_in_open_state=exponential())


def test_r4j_interval_function_must_return_a_time():
    cb = CircuitBreaker(sliding_window_size=1, wait_interval_function_in_open_state=lambda n: -1)
    with pytest.raises(ParamError, match="wait_interval_function_in_open_state"):
        call(cb, 0.0, False)


def test_r4j_max_wait_in_half_open_reopens_when_trials_do_not_finish():
    rec = Recorder()
    cb = worked_example_breaker(max_wait_duration_in_half_open_state=3.0, listeners=[rec])
    half_open_at(cb, 10.0)
    assert cb.try_acquire(10.0)           # a trial that never reports back
    assert cb.next_timer == 13.0
    cb.advance(12.999)
    assert cb.state == HALF_OPEN
    cb.advance(13.0)
    assert cb.state == OPEN and cb.attempts == 2 and cb.retry_after == 18.0
    assert rec.changes[-1][:3] == (13.0, HALF_OPEN, OPEN)


def test_r4j_max_wait_in_half_open_can_close_instead():
    cb = worked_example_breaker(max_wait_duration_in_half_open_state=3.0,
                                transition_to_state_after_wait_duration="closed")
    half_open_at(cb, 10.0)
    assert cb.try_acquire(13.5)   # the timer fired at 13.0: closed, calls flow
    assert cb.state == CLOSED


def test_r4j_without_max_wait_half_open_waits_for_its_trials_for_ever():
    cb = worked_example_breaker()
    half_open_at(cb, 10.0)
    cb.advance(1e6)
    assert cb.state == HALF_OPEN and cb.next_timer is None


def test_r4j_chain_of_timers_is_applied_in_order():
    """Automatic open→half-open and half-open max wait alternate while nobody calls."""
    rec = Recorder()
    cb = worked_example_breaker(automatic_transition_from_open_to_half_open_enabled=True,
                                max_wait_duration_in_half_open_state=1.0, listeners=[rec])
    opened_at(cb, 0.0)
    cb.advance(12.5)   # half-open at 5, open at 6 (wait 5), half-open at 11, open at 12
    assert [c[:3] for c in rec.changes[1:]] == [
        (5.0, OPEN, HALF_OPEN), (6.0, HALF_OPEN, OPEN),
        (11.0, OPEN, HALF_OPEN), (12.0, HALF_OPEN, OPEN)]
    assert cb.attempts == 3


def test_r4j_disabled_permits_everything_and_records_nothing():
    cb = CircuitBreaker(sliding_window_size=2, minimum_number_of_calls=2)
    cb.transition_to_disabled_state(0.0)
    for _ in range(10):
        call(cb, 0.0, False)
    assert cb.state == DISABLED and cb.number_of_buffered_calls == 0


def test_r4j_forced_open_rejects_everything_for_ever():
    cb = CircuitBreaker()
    cb.transition_to_forced_open_state(0.0)
    assert not any(cb.try_acquire(t) for t in (0.0, 1e3, 1e6))
    assert cb.state == FORCED_OPEN and cb.number_of_not_permitted_calls == 3


def test_r4j_metrics_only_records_but_never_rejects():
    cb = CircuitBreaker(sliding_window_size=4, minimum_number_of_calls=4)
    cb.transition_to_metrics_only_state(0.0)
    for _ in range(8):
        call(cb, 0.0, False)
    assert cb.state == METRICS_ONLY and cb.failure_rate == 100.0


@pytest.mark.parametrize(("start", "target"), [
    ("closed", "half_open"), ("metrics_only", "open"), ("metrics_only", "half_open")])
def test_r4j_illegal_transitions_are_refused(start, target):
    cb = CircuitBreaker()
    if start != "closed":
        getattr(cb, f"transition_to_{start}_state")(0.0)
    with pytest.raises(IllegalStateTransition):
        getattr(cb, f"transition_to_{target}_state")(0.0)
    assert cb.state == start


def test_r4j_reset_closes_with_empty_metrics():
    cb = worked_example_breaker()
    opened_at(cb, 0.0)
    cb.reset(1.0)
    assert cb.state == CLOSED and cb.number_of_buffered_calls == 0 and cb.attempts == 0


def test_r4j_outcome_of_a_call_let_through_before_opening_counts_in_open():
    cb = CircuitBreaker(sliding_window_size=2, minimum_number_of_calls=2)
    assert cb.try_acquire(0.0) and cb.try_acquire(0.0) and cb.try_acquire(0.0)
    cb.on_error(0.1)
    cb.on_error(0.2)
    assert cb.state == OPEN
    cb.on_success(0.3)         # the third call comes back: recorded, no transition
    assert cb.state == OPEN and cb.failure_rate == 50.0


def test_r4j_listener_sees_changes_rejections_and_outcomes():
    rec = Recorder()
    cb = worked_example_breaker(listeners=[rec])
    opened_at(cb, 1.0)
    assert not cb.try_acquire(2.0)
    assert rec.changes == [(1.0, CLOSED, OPEN, "failure rate 100 % >= 50 % over 5 calls")]
    assert rec.rejected == [2.0]
    assert len(rec.outcomes) == 5
    assert cb.number_of_not_permitted_calls == 1


def test_r4j_accepts_numpy_numbers():
    cb = CircuitBreaker(failure_rate_threshold=np.float64(40.0), sliding_window_size=np.int64(3),
                        minimum_number_of_calls=np.int32(3))
    assert cb.sliding_window_size == 3 and isinstance(cb.sliding_window_size, int)


@pytest.mark.parametrize(("field", "value"), [
    ("failure_rate_threshold", 0), ("failure_rate_threshold", 101),
    ("failure_rate_threshold", True), ("failure_rate_threshold", float("nan")),
    ("slow_call_rate_threshold", 0), ("slow_call_rate_threshold", "50"),
    ("slow_call_duration_threshold", 0), ("slow_call_duration_threshold", -1),
    ("sliding_window_type", "COUNT_BASED"), ("sliding_window_size", 0),
    ("sliding_window_size", 2.5), ("sliding_window_size", True),
    ("minimum_number_of_calls", 0), ("wait_duration_in_open_state", 0),
    ("wait_duration_in_open_state", float("inf")),
    ("wait_interval_function_in_open_state", 5),
    ("permitted_number_of_calls_in_half_open_state", 0),
    ("max_wait_duration_in_half_open_state", -0.1),
    ("transition_to_state_after_wait_duration", "half_open"),
    ("automatic_transition_from_open_to_half_open_enabled", 1),
    ("listeners", "not a list"), ("listeners", [object()]),
])
def test_r4j_refuses_bad_fields_naming_them(field, value):
    with pytest.raises(ParamError) as err:
        CircuitBreaker(**{field: value})
    assert err.value.field == field


# =========================================================================
# ConsecutiveFailureBreaker (pybreaker's rules)
# =========================================================================


def test_cf_defaults_are_pybreakers():
    cb = ConsecutiveFailureBreaker()
    assert (cb.fail_max, cb.reset_timeout, cb.success_threshold) == (5, 60, 1)


def test_cf_example_three_failures_open_then_a_success_after_two_seconds_closes():
    """fail_max 3, reset_timeout 1: f, f (closed, 2), f → open (3); rejected; +2 s ok → closed."""
    cb = ConsecutiveFailureBreaker(fail_max=3, reset_timeout=1)
    call(cb, 0.0, False)
    call(cb, 0.1, False)
    assert (cb.state, cb.fail_counter) == (CLOSED, 2)
    call(cb, 0.2, False)
    assert (cb.state, cb.fail_counter) == (OPEN, 3)
    assert not cb.try_acquire(0.3) and not cb.try_acquire(1.0)
    call(cb, 2.2, True)
    assert (cb.state, cb.fail_counter) == (CLOSED, 0)


def test_cf_a_success_resets_the_count_so_only_consecutive_failures_trip():
    cb = ConsecutiveFailureBreaker(fail_max=3)
    for ok in (False, False, True, False, False, True, False, False):
        call(cb, 0.0, ok)
    assert cb.state == CLOSED and cb.fail_counter == 2


def test_cf_trial_allowed_at_exactly_reset_timeout():
    cb = ConsecutiveFailureBreaker(fail_max=1, reset_timeout=1.0)
    call(cb, 10.0, False)
    assert not cb.try_acquire(np.nextafter(11.0, 0.0))
    assert cb.try_acquire(11.0)
    assert cb.state == HALF_OPEN


def test_cf_half_open_failure_reopens_with_a_new_time_and_counter_goes_on():
    cb = ConsecutiveFailureBreaker(fail_max=2, reset_timeout=5.0)
    call(cb, 0.0, False)
    call(cb, 0.0, False)
    call(cb, 6.0, False)   # the trial fails
    assert (cb.state, cb.fail_counter, cb.opened_at) == (OPEN, 3, 6.0)
    assert not cb.try_acquire(10.0)
    assert cb.try_acquire(11.0)


def test_cf_half_open_admits_one_trial_at_a_time():
    cb = ConsecutiveFailureBreaker(fail_max=1, reset_timeout=1.0, success_threshold=2)
    call(cb, 0.0, False)
    assert cb.try_acquire(1.0)
    assert not cb.try_acquire(1.0) and not cb.try_acquire(1.5)
    cb.on_success(1.5)
    assert cb.state == HALF_OPEN and cb.success_counter == 1
    assert cb.try_acquire(1.6)
    assert not cb.try_acquire(1.6)
    cb.on_success(1.7)
    assert cb.state == CLOSED and cb.success_counter == 0 and cb.fail_counter == 0


def test_cf_success_threshold_counts_successes_in_a_row_in_half_open():
    cb = ConsecutiveFailureBreaker(fail_max=1, reset_timeout=1.0, success_threshold=3)
    call(cb, 0.0, False)
    call(cb, 1.0, True)
    call(cb, 1.0, True)
    call(cb, 1.0, False)      # re-opens: the successes are forgotten
    assert cb.state == OPEN and cb.success_counter == 0
    for t in (2.0, 2.0, 2.0):
        call(cb, t, True)
    assert cb.state == CLOSED


def test_cf_listener_sees_each_change_with_reason():
    rec = Recorder()
    cb = ConsecutiveFailureBreaker(fail_max=2, reset_timeout=1.0, listeners=[rec])
    call(cb, 0.0, False)
    call(cb, 0.5, False)
    assert not cb.try_acquire(1.0)
    call(cb, 1.5, True)
    assert [c[:3] for c in rec.changes] == [(0.5, CLOSED, OPEN), (1.5, OPEN, HALF_OPEN),
                                            (1.5, HALF_OPEN, CLOSED)]
    assert "2 consecutive failures" in rec.changes[0][3]
    assert rec.rejected == [1.0]


@pytest.mark.parametrize(("field", "value"), [
    ("fail_max", 0), ("fail_max", 2.0), ("reset_timeout", -1), ("reset_timeout", None),
    ("success_threshold", 0), ("success_threshold", False)])
def test_cf_refuses_bad_fields_naming_them(field, value):
    with pytest.raises(ParamError) as err:
        ConsecutiveFailureBreaker(**{field: value})
    assert err.value.field == field


# =========================================================================
# HystrixBreaker
# =========================================================================


def test_hystrix_defaults_are_hystrixs():
    h = HystrixBreaker()
    assert (h.request_volume_threshold, h.error_threshold_percentage) == (20, 50)
    assert (h.sleep_window, h.rolling_window, h.buckets) == (5.0, 10.0, 10)
    assert h.health_snapshot_interval == 0.5


def test_hystrix_example_19_failing_calls_in_10_s_stay_closed():
    h = HystrixBreaker()
    for i in range(19):
        call(h, i * 0.5, False)
    h.advance(10.0)
    assert h.state == CLOSED and h.total_requests == 19 and h.error_percentage == 100


def test_hystrix_example_20_calls_10_failing_open():
    h = HystrixBreaker()
    for i in range(20):
        call(h, i * 0.5, i % 2 == 0)
    assert h.state == CLOSED            # the last bucket is not in a snapshot yet
    assert not h.try_acquire(10.0)      # the 10.0 s snapshot sees 20 calls, 50 %
    assert h.state == OPEN and h.opened_at == 10.0
    assert (h.total_requests, h.error_percentage) == (20, 50)


def test_hystrix_error_percentage_is_truncated_in_double():
    """29 of 100 is 28.999999999999996 % in double: Hystrix says 28, so 29 % does not trip."""
    h = HystrixBreaker(error_threshold_percentage=29, rolling_window=100.0)
    for i in range(100):
        call(h, i * 0.1, i < 71)
    h.advance(10.5)
    assert (h.total_requests, h.error_count, h.error_percentage) == (100, 29, 28)
    assert h.state == CLOSED


def test_hystrix_error_percentage_rounds_down():
    h = HystrixBreaker(request_volume_threshold=3, error_threshold_percentage=34)
    for ok in (False, True, True):
        call(h, 0.0, ok)
    h.advance(0.5)
    assert h.error_percentage == 33 and h.state == CLOSED


def test_hystrix_is_judged_on_snapshots_not_per_call():
    rec = Recorder()
    h = HystrixBreaker(request_volume_threshold=2, listeners=[rec])
    call(h, 0.0, False)    # first use: snapshots at 0.5, 1.0, ...
    call(h, 0.2, False)
    assert h.state == CLOSED and h.next_timer == 0.5
    assert h.try_acquire(0.499)        # still closed: no snapshot yet
    assert not h.try_acquire(0.5)
    assert rec.changes[0][:3] == (0.5, CLOSED, OPEN)


def test_hystrix_snapshot_interval_sets_the_grid():
    h = HystrixBreaker(request_volume_threshold=2, health_snapshot_interval=2.0)
    call(h, 0.0, False)
    call(h, 1.0, False)
    h.advance(1.999)
    assert h.state == CLOSED
    h.advance(2.0)
    assert h.state == OPEN and h.opened_at == 2.0


def test_hystrix_snapshots_count_from_first_use():
    h = HystrixBreaker(request_volume_threshold=1)
    call(h, 100.3, False)
    h.advance(100.799)
    assert h.state == CLOSED
    h.advance(100.8)
    assert h.state == OPEN and h.opened_at == 100.8


def test_hystrix_rolling_window_forgets_old_calls():
    h = HystrixBreaker()
    for i in range(15):
        call(h, i * 0.1, False)    # 15 failures early on
    for i in range(10):
        call(h, 10.0 + i * 0.1, True)
    h.advance(11.0)         # the snapshot covers [1.0, 11.0): 5 old failures still in
    assert (h.total_requests, h.error_count) == (15, 5)
    h.advance(11.5)         # [1.5, 11.5): only the successes
    assert (h.total_requests, h.error_count) == (10, 0)
    assert h.state == CLOSED


def test_hystrix_sleep_window_then_one_trial_strictly_after():
    h = HystrixBreaker(request_volume_threshold=1)
    call(h, 0.0, False)
    h.advance(0.5)
    assert h.state == OPEN
    assert not h.try_acquire(5.5)                 # exactly opened + sleep window
    assert h.try_acquire(5.501)                   # the single trial
    assert h.state == HALF_OPEN
    assert not h.try_acquire(5.502) and not h.try_acquire(100.0)


def test_hystrix_trial_success_closes_and_resets_the_health_counts():
    h = HystrixBreaker(request_volume_threshold=1)
    call(h, 0.0, False)
    h.advance(0.5)
    assert h.try_acquire(6.0)
    h.on_success(6.2)
    assert h.state == CLOSED and h.opened_at is None
    h.advance(6.7)
    assert (h.total_requests, h.error_count) == (1, 0)    # only the trial, in a new stream


def test_hystrix_trial_failure_reopens_with_a_new_sleep_window():
    h = HystrixBreaker(request_volume_threshold=1)
    call(h, 0.0, False)
    h.advance(0.5)
    assert h.try_acquire(6.0)
    h.on_error(7.0)
    assert h.state == OPEN and h.opened_at == 7.0
    assert not h.try_acquire(12.0)
    assert h.try_acquire(12.001)


def test_hystrix_outcomes_while_open_do_not_change_the_state():
    h = HystrixBreaker(request_volume_threshold=1)
    call(h, 0.0, False)
    h.advance(0.5)
    h.on_success(1.0)
    h.on_success(1.1)
    assert h.state == OPEN


def test_hystrix_short_circuited_calls_are_not_in_the_health_counts():
    h = HystrixBreaker(request_volume_threshold=1)
    call(h, 0.0, False)
    for t in (1.0, 2.0, 3.0):
        assert not h.try_acquire(t)
    h.advance(3.0)
    assert h.total_requests == 1      # the failure; the three rejections are not requests
    h.advance(10.0)
    assert h.rolling_counts == {"success": 0, "failure": 1, "short_circuited": 3}


def test_hystrix_force_open_and_force_closed():
    assert not HystrixBreaker(force_open=True).try_acquire(0.0)
    h = HystrixBreaker(force_closed=True, request_volume_threshold=1)
    call(h, 0.0, False)
    h.advance(1.0)
    assert h.state == OPEN and h.try_acquire(1.0)


def test_hystrix_counts_whole_milliseconds():
    """4.35 s is 4350 ms, not 4349 (4.35 * 1000 is 4349.999... in binary)."""
    h = HystrixBreaker(request_volume_threshold=1, sleep_window=0.0)
    call(h, 0.0, False)
    h.advance(0.5)
    assert not h.try_acquire(0.5)
    assert not h.try_acquire(0.5009)       # same millisecond as the opening
    assert h.try_acquire(0.501)


@pytest.mark.parametrize(("field", "value"), [
    ("request_volume_threshold", 0), ("error_threshold_percentage", 101),
    ("error_threshold_percentage", 50.5), ("sleep_window", -1), ("rolling_window", 0),
    ("buckets", 0), ("health_snapshot_interval", 0.0001), ("health_snapshot_interval", 20.0),
    ("force_open", "yes")])
def test_hystrix_refuses_bad_fields_naming_them(field, value):
    with pytest.raises(ParamError) as err:
        HystrixBreaker(**{field: value})
    assert err.value.field == field


# =========================================================================
# All kinds: the shared interface and properties
# =========================================================================

KINDS = {
    "resilience4j": lambda: CircuitBreaker(sliding_window_size=4, minimum_number_of_calls=4,
                                           wait_duration_in_open_state=1.0,
                                           permitted_number_of_calls_in_half_open_state=3),
    "pybreaker": lambda: ConsecutiveFailureBreaker(fail_max=3, reset_timeout=1.0,
                                                   success_threshold=2),
    "hystrix": lambda: HystrixBreaker(request_volume_threshold=3, sleep_window=1.0),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_the_breaker_interface(kind):
    breaker = KINDS[kind]()
    assert isinstance(breaker, Breaker)
    assert breaker.state == CLOSED


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_opens_under_failures_and_recovers(kind):
    breaker = KINDS[kind]()
    t = 0.0
    while breaker.state == CLOSED and t < 10:
        if breaker.try_acquire(t):
            breaker.on_error(t)
        t += 0.1
    assert breaker.state == OPEN
    t += 2.0
    for _ in range(20):
        if breaker.try_acquire(t):
            breaker.on_success(t)
        t += 0.1
    assert breaker.state == CLOSED


class HalfOpenEpisode(BreakerListener):
    """Counts admissions and reported outcomes since the breaker last entered half-open."""

    def __init__(self) -> None:
        self.admitted = 0
        self.reported = 0

    def state_change(self, now, old, new, why):
        if new == HALF_OPEN:
            self.admitted = self.reported = 0


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)),
       events=st.lists(st.tuples(st.sampled_from(["acquire", "acquire", "ok", "fail"]),
                                 st.floats(0.0, 0.7)), max_size=100))
def test_half_open_never_admits_more_than_its_permits(kind, events):
    """Resilience4j: at most its permitted calls per half-open spell; Hystrix: one;
    pybreaker: one trial at a time (admitted minus reported never above 1)."""
    breaker = KINDS[kind]()
    episode = HalfOpenEpisode()
    breaker.add_listener(episode)
    t = 0.0
    in_flight = 0
    for action, dt in events:
        t += dt
        if action == "acquire":
            if breaker.try_acquire(t):
                in_flight += 1
                if breaker.state == HALF_OPEN:
                    episode.admitted += 1
        elif in_flight:
            in_flight -= 1
            if breaker.state == HALF_OPEN:
                episode.reported += 1
            (breaker.on_success if action == "ok" else breaker.on_error)(t)
        if kind == "resilience4j":
            assert episode.admitted <= 3
        elif kind == "hystrix":
            assert episode.admitted <= 1
        else:
            assert episode.admitted - episode.reported <= 1


def test_resilience_package_imports_no_simpy():
    """simcomm.resilience stands alone: loaded without simcomm/__init__, SimPy stays out."""
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('simcomm'); pkg.__path__ = [{str(root / 'simcomm')!r}]\n"
        "sys.modules['simcomm'] = pkg\n"
        "import simcomm.resilience as r\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('simpy', 'simcomm.engine',"
        " 'simcomm.rpc', 'pandas', 'numpy')))\n"
        "assert not bad, bad\n"
        "print(len(r.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 10
