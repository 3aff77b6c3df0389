"""pybreaker 1.4 as an oracle for ConsecutiveFailureBreaker.

Hypothesis draws a breaker config and a sequence of calls -- each a time
step and an outcome -- and drives the real pybreaker and simcomm's breaker
with the same sequence.  pybreaker reads its clock as
``datetime.now(UTC)`` through its module's ``datetime`` name; replacing
that name with a ``datetime`` subclass whose ``now()`` returns a
controlled instant runs it in simulated time.  After every call both must
agree on whether the call ran, on the state and on the counters, and they
must have reported the same state changes.

Times are multiples of 1/64 s: exact both as binary floats (simcomm) and
as whole microseconds (``datetime``), so the ``now < opened_at +
reset_timeout`` boundary means the same to both.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from importlib import metadata
from unittest import mock

import pybreaker  # the dev extra: pip install -e '.[dev]'
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.resilience import BreakerListener, ConsecutiveFailureBreaker

EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
TICK = 1 / 64


class SimulatedDatetime(datetime):
    """``datetime`` whose ``now()`` is whatever the test set last."""

    instant = EPOCH

    @classmethod
    def now(cls, tz=None):
        return cls.instant if tz is not None else cls.instant.replace(tzinfo=None)


class Boom(Exception):
    """The guarded call's failure."""


class PyChanges(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def state_change(self, cb, old_state, new_state):
        old = old_state.name if old_state is not None else None
        self.changes.append((old, new_state.name))


class OurChanges(BreakerListener):
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def state_change(self, now, old, new, why):
        self.changes.append((old, new))


def pybreaker_name(state: str) -> str:
    return {"half_open": "half-open"}.get(state, state)


def run_pybreaker_call(cb, ok: bool) -> bool:
    """Make one call through pybreaker; True if the guarded function ran."""
    ran = []

    def guarded():
        ran.append(True)
        if not ok:
            raise Boom

    with contextlib.suppress(Boom, pybreaker.CircuitBreakerError):
        cb.call(guarded)
    return bool(ran)


calls = st.lists(st.tuples(st.integers(0, 160), st.booleans()), min_size=1, max_size=80)


@settings(max_examples=400, deadline=None)
@given(fail_max=st.integers(1, 5), reset_ticks=st.integers(0, 200),
       success_threshold=st.integers(1, 3), steps=calls)
def test_consecutive_failure_breaker_agrees_with_pybreaker(fail_max, reset_ticks,
                                                           success_threshold, steps):
    reset_timeout = reset_ticks * TICK
    py_listener = PyChanges()
    our_listener = OurChanges()
    with mock.patch.object(pybreaker, "datetime", SimulatedDatetime):
        SimulatedDatetime.instant = EPOCH
        theirs = pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_timeout,
                                          success_threshold=success_threshold,
                                          listeners=[py_listener])
        ours = ConsecutiveFailureBreaker(fail_max=fail_max, reset_timeout=reset_timeout,
                                         success_threshold=success_threshold,
                                         listeners=[our_listener])
        ticks = 0
        for i, (dt, ok) in enumerate(steps):
            ticks += dt
            now = ticks * TICK
            SimulatedDatetime.instant = EPOCH + timedelta(microseconds=ticks * 15625)
            ran_theirs = run_pybreaker_call(theirs, ok)
            ran_ours = ours.try_acquire(now)
            if ran_ours:
                (ours.on_success if ok else ours.on_error)(now)
            where = f"call {i} at t={now} ok={ok}"
            assert ran_ours == ran_theirs, where
            assert pybreaker_name(ours.state) == theirs.current_state, where
            assert ours.fail_counter == theirs.fail_counter, where
            assert ours.success_counter == theirs.success_counter, where
    translated = [(pybreaker_name(a), pybreaker_name(b)) for a, b in our_listener.changes]
    assert translated == py_listener.changes


def test_the_oracle_is_pybreaker_1_4():
    major, minor = (int(x) for x in metadata.version("pybreaker").split(".")[:2])
    assert (major, minor) >= (1, 4)
    assert isinstance(pybreaker.datetime.now(timezone.utc), datetime)


def test_the_oracle_clock_really_drives_pybreaker():
    """Sanity check of the harness: pybreaker stays open until the simulated reset_timeout."""
    with mock.patch.object(pybreaker, "datetime", SimulatedDatetime):
        SimulatedDatetime.instant = EPOCH
        cb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=10)
        assert run_pybreaker_call(cb, False)
        assert cb.current_state == "open"
        SimulatedDatetime.instant = EPOCH + timedelta(seconds=9.999)
        assert not run_pybreaker_call(cb, True)
        SimulatedDatetime.instant = EPOCH + timedelta(seconds=10)
        assert run_pybreaker_call(cb, True)
        assert cb.current_state == "closed"


def test_reference_worked_example_in_both():
    """fail_max 3, reset_timeout 1: three failures open; after 2 s a success closes."""
    with mock.patch.object(pybreaker, "datetime", SimulatedDatetime):
        SimulatedDatetime.instant = EPOCH
        theirs = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=1)
        ours = ConsecutiveFailureBreaker(fail_max=3, reset_timeout=1)
        for _ in range(3):
            assert run_pybreaker_call(theirs, False)
            assert ours.try_acquire(0.0)
            ours.on_error(0.0)
        assert theirs.current_state == "open" == ours.state and theirs.fail_counter == 3
        assert not run_pybreaker_call(theirs, True) and not ours.try_acquire(0.0)
        SimulatedDatetime.instant = EPOCH + timedelta(seconds=2)
        assert run_pybreaker_call(theirs, True) and ours.try_acquire(2.0)
        ours.on_success(2.0)
        assert theirs.current_state == "closed" == ours.state
        assert theirs.fail_counter == 0 == ours.fail_counter
