"""Retries, interval functions and the retry budget against REFERENCE §2.

A retry context is driven by hand: each attempt's outcome is given, the
context answers with the wait before the next attempt or None (the error
surfaces).  Times are added up here, so "attempts at 0, 0.5, 1.0" is read
straight off the waits.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.errors import ParamError
from simcomm.resilience import (
    Retry,
    RetryBudget,
    constant,
    decorrelated_jitter,
    equal_jitter,
    exponential,
    exponential_random,
    full_jitter,
    randomized,
)


def attempt_times(retry: Retry, outcomes, duration: float = 0.0) -> tuple[list[float], object]:
    """Start times of the attempts a call makes, given each attempt's outcome in turn."""
    ctx = retry.context()
    t = 0.0
    times = []
    for outcome in outcomes:
        times.append(t)
        t += duration
        if outcome == "ok":
            ctx.on_success(t)
            return times, ctx
        wait = ctx.on_error(t, outcome)
        if wait is None:
            return times, ctx
        t += wait
    raise AssertionError("ran out of outcomes")


# ----------------------------------------------------------------- Retry


def test_defaults_always_failing_attempts_at_0_half_and_1_then_error_surfaces():
    times, ctx = attempt_times(Retry(), ["error"] * 10)
    assert times == [0.0, 0.5, 1.0]
    assert ctx.attempts == 3 and ctx.surfaced == "max_attempts" and ctx.finished


def test_defaults_are_resilience4js():
    r = Retry()
    assert r.max_attempts == 3 and r.wait_duration == 0.5
    assert r.interval_function(1) == r.interval_function(7) == 0.5


def test_non_retryable_error_surfaces_at_once():
    retry = Retry(retry_on={"timeout", "reset"})
    times, ctx = attempt_times(retry, ["error", "error"])
    assert times == [0.0] and ctx.surfaced == "not_retryable"
    times, ctx = attempt_times(retry, ["timeout", "reset", "error"])
    assert times == [0.0, 0.5, 1.0] and ctx.surfaced == "not_retryable"


def test_retry_on_predicate():
    retry = Retry(max_attempts=5, retry_on=lambda outcome: outcome != "rejected")
    times, _ = attempt_times(retry, ["timeout", "rejected"])
    assert times == [0.0, 0.5]


def test_success_after_retries_stops():
    times, ctx = attempt_times(Retry(), ["error", "ok"], duration=0.2)
    assert times == [0.0, 0.7] and ctx.attempts == 2 and ctx.surfaced is None


def test_max_attempts_one_means_no_retry():
    times, ctx = attempt_times(Retry(max_attempts=1), ["error"])
    assert times == [0.0] and ctx.surfaced == "max_attempts"


def test_exponential_interval_function_in_a_retry():
    times, _ = attempt_times(Retry(max_attempts=4, interval_function=exponential()),
                             ["error"] * 4)
    assert times == [0.0, 0.5, 1.25, 2.375]


def test_wait_duration_zero_retries_at_once():
    times, _ = attempt_times(Retry(wait_duration=0), ["error"] * 3)
    assert times == [0.0, 0.0, 0.0]


def test_resilience4j_counters():
    retry = Retry(retry_on={"error"})
    attempt_times(retry, ["ok"])
    attempt_times(retry, ["error", "ok"])
    attempt_times(retry, ["error", "error", "error"])
    attempt_times(retry, ["timeout"])
    attempt_times(retry, ["error", "timeout"])   # non-retryable on the 2nd: still "without"
    assert retry.number_of_successful_calls_without_retry_attempt == 1
    assert retry.number_of_successful_calls_with_retry_attempt == 1
    assert retry.number_of_failed_calls_with_retry_attempt == 1
    assert retry.number_of_failed_calls_without_retry_attempt == 2
    assert retry.number_of_total_attempts == 1 + 2 + 3 + 1 + 2


def test_a_finished_context_refuses_more_attempts():
    ctx = Retry().context()
    ctx.on_success(0.0)
    with pytest.raises(ParamError, match="context"):
        ctx.on_error(1.0)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_attempts": 0}, "max_attempts"), ({"max_attempts": 2.0}, "max_attempts"),
    ({"max_attempts": True}, "max_attempts"), ({"wait_duration": -0.1}, "wait_duration"),
    ({"wait_duration": 0.5, "interval_function": constant()}, "interval_function"),
    ({"interval_function": 0.5}, "interval_function"), ({"retry_on": "timeout"}, "retry_on"),
    ({"retry_on": 3}, "retry_on"), ({"budget": 10}, "budget")])
def test_retry_refuses_bad_fields_naming_them(kwargs, field):
    with pytest.raises(ParamError) as err:
        Retry(**kwargs)
    assert err.value.field == field


def test_interval_function_returning_garbage_is_named():
    ctx = Retry(interval_function=lambda n: -1.0).context()
    with pytest.raises(ParamError, match="interval_function"):
        ctx.on_error(0.0)


# ----------------------------------------------------------------- interval functions


def test_constant():
    f = constant(2.0)
    assert [f(n) for n in (1, 2, 9)] == [2.0, 2.0, 2.0]


def test_exponential_defaults_500_750_1125_ms():
    f = exponential()
    assert [f(n) for n in (1, 2, 3)] == [0.5, 0.75, 1.125]


def test_exponential_with_cap():
    f = exponential(1.0, 2.0, max_interval=5.0)
    assert [f(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert f(5000) == 5.0   # no overflow


def test_attempt_numbers_start_at_one():
    with pytest.raises(ParamError):
        exponential()(0)


def test_randomized_stays_within_the_factor():
    rng = random.Random(1)
    f = randomized(rng=rng)
    waits = [f(1) for _ in range(2000)]
    assert min(waits) >= 0.25 and max(waits) <= 0.75
    assert min(waits) < 0.26 and max(waits) > 0.74     # it does spread over the range


def test_randomized_is_reproducible_from_the_seed():
    a = randomized(1.0, 0.3, rng=random.Random(7))
    b = randomized(1.0, 0.3, rng=random.Random(7))
    assert [a(1) for _ in range(5)] == [b(1) for _ in range(5)]


def test_exponential_random_randomises_then_caps():
    f = exponential_random(1.0, 2.0, 0.5, max_interval=3.0, rng=random.Random(3))
    for _ in range(200):
        assert 0.5 <= f(1) <= 1.5
        assert 1.0 <= f(2) <= 3.0
        assert f(3) <= 3.0


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), base=st.floats(0.001, 10), cap=st.floats(0.001, 100),
       n=st.integers(1, 40))
def test_full_and_equal_jitter_bounds(seed, base, cap, n):
    v = min(cap, base * 2.0 ** n)
    full = full_jitter(base, cap, rng=random.Random(seed))(n)
    equal = equal_jitter(base, cap, rng=random.Random(seed))(n)
    assert 0.0 <= full <= v
    assert v / 2 <= equal <= v


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), base=st.floats(0.001, 10), cap=st.floats(0.001, 100),
       steps=st.integers(1, 20))
def test_decorrelated_jitter_bounds(seed, base, cap, steps):
    f = decorrelated_jitter(base, cap, rng=random.Random(seed))
    previous = base
    for n in range(1, steps + 1):
        sleep = f(n)
        assert sleep <= cap
        assert sleep >= min(cap, base) - 1e-12
        assert sleep <= max(base, previous * 3) + 1e-12
        previous = sleep


def test_decorrelated_jitter_starts_over_for_each_call():
    retry = Retry(max_attempts=10, interval_function=decorrelated_jitter(1.0, 1000.0,
                                                                        rng=random.Random(5)))
    a = retry.context()
    waits_a = [a.on_error(0.0) for _ in range(5)]
    b = retry.context()   # a fresh copy: its first wait is from [base, 3 base] again
    first_b = b.on_error(0.0)
    assert 1.0 <= first_b <= 3.0
    assert max(waits_a) > 3.0   # a grew (with this seed) while b started over


@pytest.mark.parametrize(("factory", "kwargs", "field"), [
    (constant, {"interval": 0}, "interval"),
    (exponential, {"initial_interval": -1}, "initial_interval"),
    (exponential, {"multiplier": 0}, "multiplier"),
    (exponential, {"max_interval": 0}, "max_interval"),
    (randomized, {"randomization_factor": 1.5, "rng": random.Random()}, "randomization_factor"),
    (randomized, {"rng": np.random.default_rng(1)}, "rng"),
    (full_jitter, {"base": 0, "cap": 1, "rng": random.Random()}, "base"),
    (equal_jitter, {"base": 1, "cap": -1, "rng": random.Random()}, "cap"),
])
def test_interval_functions_refuse_bad_fields(factory, kwargs, field):
    with pytest.raises(ParamError) as err:
        factory(**kwargs)
    assert err.value.field == field


# ----------------------------------------------------------------- budget


def test_budget_token_arithmetic_as_grpc():
    """gRPC's own example: max 4 (threshold 2), ratio 1.6."""
    b = RetryBudget(max_tokens=4, token_ratio=1.6)
    assert b.tokens == 4
    assert b.record_failure() is True and b.tokens == 3
    b.record_success()
    assert b.tokens == 4                          # capped at max
    assert b.record_failure() is True and b.tokens == 3
    assert b.record_failure() is False and b.tokens == 2   # at the threshold: no retries
    assert b.record_failure() is False and b.tokens == 1
    b.record_success()
    assert b.tokens == 2.6 and b.retry_allowed
    for _ in range(5):
        b.record_failure()
    assert b.tokens == 0                          # floored at 0


def test_budget_keeps_three_decimals_exactly():
    b = RetryBudget(max_tokens=10, token_ratio=0.1239)
    assert b.token_ratio == 0.123
    for _ in range(3):
        b.record_failure()
    for _ in range(10):
        b.record_success()
    assert b.tokens == 8.23


def test_budget_defaults_are_grpcs_example():
    b = RetryBudget()
    assert (b.max_tokens, b.token_ratio) == (10, 0.1)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": 1001}, "max_tokens"),
    ({"token_ratio": 0}, "token_ratio"), ({"token_ratio": 0.0004}, "token_ratio"),
    ({"max_tokens": True}, "max_tokens")])
def test_budget_refuses_bad_fields(kwargs, field):
    with pytest.raises(ParamError) as err:
        RetryBudget(**kwargs)
    assert err.value.field == field


def test_budget_throttles_retries_across_calls():
    budget = RetryBudget(max_tokens=4, token_ratio=0.5)
    retry = Retry(max_attempts=5, budget=budget)
    times, ctx = attempt_times(retry, ["error"] * 5)
    # tokens 4 -> 3 (retry) -> 2 (throttled): two attempts, then the error surfaces
    assert times == [0.0, 0.5] and ctx.surfaced == "throttled"
    times, ctx = attempt_times(retry, ["error"] * 5)
    assert times == [0.0] and ctx.surfaced == "throttled"
    assert retry.number_of_throttled_retries == 2 and budget.throttled == 2


def test_budget_counts_only_retryable_failures():
    budget = RetryBudget(max_tokens=4, token_ratio=1)
    retry = Retry(retry_on={"timeout"}, budget=budget)
    attempt_times(retry, ["error"])
    assert budget.tokens == 4


def test_budget_last_failed_attempt_costs_a_token_too():
    budget = RetryBudget(max_tokens=100, token_ratio=1)
    attempt_times(Retry(max_attempts=3, budget=budget), ["error"] * 3)
    assert budget.tokens == 97


@settings(max_examples=300, deadline=None)
@given(max_attempts=st.integers(1, 6),
       budget_args=st.none() | st.tuples(st.integers(1, 20), st.sampled_from([0.1, 0.5, 1.0])),
       calls=st.lists(st.lists(st.sampled_from(["ok", "error", "timeout"]), min_size=6,
                               max_size=6), max_size=30))
def test_retries_never_exceed_max_attempts_or_the_budget(max_attempts, budget_args, calls):
    budget = None if budget_args is None else RetryBudget(*budget_args)
    retry = Retry(max_attempts=max_attempts, retry_on={"error", "timeout"}, budget=budget)
    for outcomes in calls:
        ctx = retry.context()
        for outcome in outcomes:
            if outcome == "ok":
                ctx.on_success(0.0)
                break
            tokens_before = budget.tokens if budget is not None else None
            wait = ctx.on_error(0.0, outcome)
            if wait is not None and budget is not None:
                # a retry is only granted while tokens stay above half
                assert budget.tokens > budget.max_tokens / 2
                assert budget.tokens == round(max(tokens_before - 1, 0), 3)   # exact milli
            if wait is None:
                break
        assert ctx.attempts <= max_attempts
        if budget is not None:
            assert 0 <= budget.tokens <= budget.max_tokens
