"""The rate limiter (Resilience4j's AtomicRateLimiter arithmetic) and the time limiter.

Rate-limiter cases are worked by hand from ``calculateNextState``: cycles of
``limit_refresh_period`` counted from ``start``, permits topped up (not
piled up) at each new cycle, reservations that push the count below zero,
and the wait ``fullCyclesToWait × period + time to the next cycle``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.errors import ParamError
from simcomm.resilience import RateLimiter, TimeLimiter

# ----------------------------------------------------------------- rate limiter


def test_defaults_are_resilience4js():
    rl = RateLimiter()
    assert rl.limit_for_period == 50
    assert rl.limit_refresh_period == pytest.approx(500e-9)
    assert rl.timeout_duration == 5.0


def test_permits_per_period_then_refused_without_timeout():
    rl = RateLimiter(limit_for_period=2, limit_refresh_period=1.0, timeout_duration=0.0)
    assert [rl.reserve_permission(0.0) for _ in range(3)] == [0.0, 0.0, -1.0]
    assert rl.reserve_permission(0.999) == -1.0
    assert rl.reserve_permission(1.0) == 0.0      # a new cycle, new permits


def test_refused_caller_is_held_for_the_whole_timeout():
    rl = RateLimiter(limit_for_period=1, limit_refresh_period=10.0, timeout_duration=2.0)
    assert rl.acquire_permission(0.0) == (True, 0.0)
    assert rl.acquire_permission(0.0) == (False, 2.0)
    assert rl.refused == 1 and rl.granted == 1


def test_waits_are_reserved_ahead_cycle_by_cycle():
    """1 permit per second, timeout 5 s: at t=0 the waits are 0, 1, 2; at 0.5 a fourth waits 2.5."""
    rl = RateLimiter(limit_for_period=1, limit_refresh_period=1.0, timeout_duration=5.0)
    assert [rl.reserve_permission(0.0) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert rl.available_permissions(0.5) == -2
    assert rl.reserve_permission(0.5) == 2.5
    assert rl.seconds_to_wait(0.5) == 3.5


def test_a_wait_longer_than_the_timeout_reserves_nothing():
    rl = RateLimiter(limit_for_period=1, limit_refresh_period=1.0, timeout_duration=1.5)
    assert rl.reserve_permission(0.0) == 0.0
    assert rl.reserve_permission(0.0) == 1.0
    assert rl.reserve_permission(0.0) == -1.0     # would wait 2 s > 1.5 s
    assert rl.available_permissions(0.0) == -1    # only the granted reservation is held


def test_unused_permits_do_not_pile_up():
    rl = RateLimiter(limit_for_period=3, limit_refresh_period=1.0, timeout_duration=0.0)
    assert rl.available_permissions(100.0) == 3
    assert [rl.reserve_permission(100.0) for _ in range(4)] == [0.0, 0.0, 0.0, -1.0]


def test_reservations_are_paid_back_by_later_cycles():
    rl = RateLimiter(limit_for_period=2, limit_refresh_period=1.0, timeout_duration=10.0)
    for _ in range(6):
        rl.reserve_permission(0.0)       # 2 now, 2 from cycle 1, 2 from cycle 2
    assert rl.available_permissions(0.0) == -4
    assert rl.available_permissions(1.0) == -2
    assert rl.available_permissions(2.0) == 0
    assert rl.available_permissions(3.0) == 2


def test_several_permits_at_once():
    rl = RateLimiter(limit_for_period=4, limit_refresh_period=1.0, timeout_duration=10.0)
    assert rl.reserve_permission(0.25, permits=3) == 0.0
    # 1 left; 6 more need the next cycle (5) and one after (9): wait 0.75 + 1
    assert rl.reserve_permission(0.25, permits=6) == 1.75
    with pytest.raises(ParamError, match="permits"):
        rl.reserve_permission(0.3, permits=0)


def test_cycles_count_from_start():
    rl = RateLimiter(limit_for_period=1, limit_refresh_period=1.0, timeout_duration=0.0,
                     start=0.5)
    assert rl.reserve_permission(1.0) == 0.0
    assert rl.reserve_permission(1.4) == -1.0     # still the cycle [0.5, 1.5)
    assert rl.reserve_permission(1.5) == 0.0
    with pytest.raises(ParamError, match="now"):
        rl.reserve_permission(0.2)


def test_cycle_arithmetic_is_exact_in_nanoseconds():
    """0.3 / 0.1 is 2.999... in floats; in nanoseconds it is cycle 3, as in Java."""
    rl = RateLimiter(limit_for_period=1, limit_refresh_period=0.1, timeout_duration=0.0)
    assert rl.reserve_permission(0.2) == 0.0      # cycle 2
    assert rl.reserve_permission(0.3) == 0.0      # cycle 3, not 2


def test_drain_takes_what_the_cycle_has_left():
    rl = RateLimiter(limit_for_period=5, limit_refresh_period=1.0, timeout_duration=0.0)
    rl.reserve_permission(0.0)
    rl.drain_permissions(0.1)
    assert rl.available_permissions(0.1) == 0
    assert rl.reserve_permission(0.2) == -1.0
    assert rl.available_permissions(1.0) == 5


def test_available_permissions_takes_nothing():
    rl = RateLimiter(limit_for_period=1, limit_refresh_period=1.0, timeout_duration=0.0)
    for _ in range(5):
        assert rl.available_permissions(0.0) == 1
    assert rl.reserve_permission(0.0) == 0.0


@pytest.mark.parametrize(("field", "value"), [
    ("limit_for_period", 0), ("limit_for_period", 1.5), ("limit_refresh_period", 0),
    ("limit_refresh_period", 1e-10), ("timeout_duration", -1),
    ("timeout_duration", math.inf), ("start", "0")])
def test_rate_limiter_refuses_bad_fields(field, value):
    with pytest.raises(ParamError) as err:
        RateLimiter(**{field: value})
    assert err.value.field == field


def test_rate_limiter_accepts_numpy_numbers():
    rl = RateLimiter(limit_for_period=np.int64(3), limit_refresh_period=np.float64(0.5))
    assert rl.limit_for_period == 3


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 5), period=st.sampled_from([0.1, 0.25, 1.0]),
       timeout=st.sampled_from([0.0, 0.3, 2.0]),
       steps=st.lists(st.floats(0.0, 0.4), max_size=60))
def test_granted_permits_never_outrun_the_rate(limit, period, timeout, steps):
    """Every permit is granted for a start time; by any cycle end, no more permits have
    started than the cycles so far allow, and no wait exceeds the timeout."""
    rl = RateLimiter(limit_for_period=limit, limit_refresh_period=period,
                     timeout_duration=timeout)
    t = 0.0
    starts = []
    for dt in steps:
        t += dt
        wait = rl.reserve_permission(t)
        if wait >= 0:
            assert wait <= timeout + 1e-9
            starts.append(t + wait)
    for s in starts:
        cycle = math.floor(round(s * 1e9) / round(period * 1e9))
        allowed = (cycle + 1) * limit
        assert sum(1 for x in starts if x <= s + 1e-12) <= allowed


# ----------------------------------------------------------------- time limiter


def test_time_limiter_defaults_are_resilience4js():
    tl = TimeLimiter()
    assert tl.timeout_duration == 1.0 and tl.cancel_running_future is True


def test_time_limiter_deadline_and_tie():
    tl = TimeLimiter(timeout_duration=2.5)
    assert tl.deadline(10.0) == 12.5
    assert not tl.timed_out(10.0, 12.499)
    assert tl.timed_out(10.0, 12.5)          # a reply at the deadline is late


@pytest.mark.parametrize(("field", "value"), [
    ("timeout_duration", 0), ("timeout_duration", -1), ("timeout_duration", None),
    ("cancel_running_future", 1)])
def test_time_limiter_refuses_bad_fields(field, value):
    with pytest.raises(ParamError) as err:
        TimeLimiter(**{field: value})
    assert err.value.field == field
