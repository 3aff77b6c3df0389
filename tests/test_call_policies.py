"""Policies on the call path (simcomm.resilience.protect, simcomm.rpc.policies).

Each test builds a tiny world with an instant network and constant service
times, so that every time is exact: a user (``Caller``) sends requests to
``front-1`` at chosen times, ``front-1``'s handler calls ``back-1`` through
``simcomm.rpc.call`` and logs what its call gave and when, and the edge
front → back carries the policy under test.
"""

from __future__ import annotations

import math

import pytest

from simcomm.engine import Constant, Hang, Instance, Node, ServiceError, World, install
from simcomm.errors import ParamError
from simcomm.resilience import (
    BreakerListener,
    CircuitBreaker,
    ConsecutiveFailureBreaker,
    EdgePolicy,
    Fallback,
    HystrixBreaker,
    RateLimiter,
    Retry,
    RetryBudget,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
    TimeLimiter,
    protect,
    protect_server,
)
from simcomm.result import FAILURES, SUMMARY_HELP, SUMMARY_UNITS, Result
from simcomm.rpc import OUTCOMES, answer, answer_for, call, forward


class Caller(Node):
    """A user that sends requests at given times and keeps the replies."""

    def __init__(self, world: World, name: str = "user") -> None:
        super().__init__(world, name)
        self.replies: list[tuple[float, float, str, object]] = []
        self._n = 0

    def ask(self, dest: str, t: float, body: object = None) -> None:
        def go() -> None:
            start = self.env.now
            self._n += 1
            rid = self._n
            ev = self.request(dest, body, trace_id=rid)

            def done(e) -> None:
                self.replies.append((start, self.env.now, e.value.status, e.value.body))
                # a row of the requests table, as a workload client writes it
                self.world.trace.requests.append((rid, self.name, dest, start, self.env.now,
                                                  e.value.status, None))

            ev.callbacks.append(done)

        self.world.at(t, go)

    @property
    def statuses(self) -> list[str]:
        return [r[2] for r in sorted(self.replies)]


def front(dest: str, log: list, *, work: float = 0.0):
    """A handler: ``work`` seconds of CPU, call ``dest``, log (start, end, status, body)."""

    def handler(ctx, request):
        if work:
            yield ctx.work(work)
        start = ctx.now
        reply = yield from call(ctx, dest, request.body)
        log.append((start, ctx.now, reply.status, reply.body))
        return answer_for(dest, reply)

    return handler


def failing(ctx, request):
    yield ctx.work()
    raise ServiceError("always fails")


def world_with(policy: EdgePolicy | None, *, back_time: float = 0.0, back_handler=None,
               back_workers: int = 10, front_workers: int = 10, seed: int = 0):
    """user → front-1 → back-1, policy on front → back; returns (world, user, log, copy)."""
    w = World(seed)
    log: list = []
    Instance(w, "front-1", service="front", workers=front_workers, handler=front("back-1", log))
    Instance(w, "back-1", service="back", workers=back_workers,
             service_time=Constant(back_time), handler=back_handler or answer("fine"))
    user = Caller(w)
    copy = protect(w, "front", "back", policy)["front-1"] if policy is not None else None
    return w, user, log, copy


def sent(w: World, source: str, dest: str) -> int:
    """Requests (not replies) ``source`` put on the network for ``dest``."""
    return sum(1 for m in w.trace.messages
               if m[1] == "send" and m[4] == source and m[5] == dest and m[3] != "reply")


def events(w: World, kind: str) -> list[tuple]:
    return [e for e in w.trace.events if e[2] == kind]


def balanced(w: World) -> None:
    led = Result(w).ledger()
    assert led["balanced"], led


# -- time limit ------------------------------------------------------------------------------

def test_time_limit_ends_the_call_at_exactly_start_plus_limit_and_the_late_reply_is_an_orphan():
    """Resilience4j TimeLimiter: the caller stops waiting; the callee's work goes on and
    its reply, when it comes, finds nobody waiting (an orphan)."""
    w, user, log, _ = world_with(EdgePolicy(time_limit=1.0), back_time=5.0)
    user.ask("front-1", 2.0)
    w.run(20)
    assert log == [(2.0, 3.0, "timeout", None)]
    # the user's request ends with what ended it: the gateway passes the timeout on
    assert user.replies == [(2.0, 3.0, "timeout", "back-1: timeout")]
    # the callee worked on for its 5 s and replied at 7: an orphan
    assert [(e[0], e[1]) for e in events(w, "orphan_reply")] == [(7.0, "front-1")]
    res = Result(w)
    assert res.attempts[["time", "caller", "callee", "attempt", "outcome", "end"]] \
        .values.tolist() == [[2.0, "front-1", "back-1", 1, "timeout", 3.0]]
    balanced(w)


def test_a_hung_callee_times_out_and_its_reset_after_the_hang_is_an_orphan():
    w, user, log, _ = world_with(EdgePolicy(time_limit=0.25))
    install(w, [Hang("back-1", 0.0, 10.0)])
    user.ask("front-1", 1.0)
    w.run(20)
    assert log == [(1.0, 1.25, "timeout", None)]
    assert [(e[0], e[1]) for e in events(w, "orphan_reply")] == [(10.0, "front-1")]
    balanced(w)


def test_a_reply_at_exactly_the_limit_is_late():
    """TimeLimiter.timed_out is ``now >= deadline``: a tie goes to the time limit."""
    w, user, log, _ = world_with(EdgePolicy(time_limit=1.0), back_time=1.0)
    user.ask("front-1", 0.0)
    w.run(5)
    assert log == [(0.0, 1.0, "timeout", None)]
    assert [(e[0], e[1]) for e in events(w, "orphan_reply")] == [(1.0, "front-1")]
    balanced(w)


def test_without_a_time_limit_a_hung_callee_holds_the_caller():
    w, user, log, _ = world_with(None)
    install(w, [Hang("back-1", 0.0, None)])
    user.ask("front-1", 1.0)
    w.run(50)
    assert log == [] and user.replies == []
    assert w.nodes["front-1"].busy == 1


# -- bulkhead --------------------------------------------------------------------------------

def test_bulkhead_of_two_with_three_concurrent_calls_turns_one_away_without_sending():
    """Resilience4j SemaphoreBulkhead, limit 2, no wait: the third is rejected at once."""
    w, user, log, copy = world_with(EdgePolicy(bulkhead=SemaphoreBulkhead(
        max_concurrent_calls=2)), back_time=1.0)
    for _ in range(3):
        user.ask("front-1", 0.0)
    user.ask("front-1", 1.5)     # after the first two finished: a slot again
    w.run(10)
    assert sorted(log) == [(0.0, 0.0, "bulkhead_full", None), (0.0, 1.0, "ok", "fine"),
                           (0.0, 1.0, "ok", "fine"), (1.5, 2.5, "ok", "fine")]
    assert sent(w, "front-1", "back-1") == 3      # the rejected call sent nothing
    assert copy.bulkhead.in_use == 0
    assert sorted(user.statuses) == ["bulkhead_full", "ok", "ok", "ok"]
    balanced(w)


def test_bulkhead_waiter_is_rejected_after_its_max_wait_and_a_freed_slot_goes_to_a_waiter():
    """Limit 1, wait 50 ms, slot held: the second caller is rejected after 50 ms.
    A slot freed while someone waits passes to that waiter."""
    w, user, log, _ = world_with(EdgePolicy(bulkhead=SemaphoreBulkhead(
        max_concurrent_calls=1, max_wait_duration=0.05)), back_time=1.0)
    user.ask("front-1", 0.0)
    user.ask("front-1", 0.5)     # waits 0.05, gives up
    user.ask("front-1", 0.98)    # waits, gets the slot at 1.0
    w.run(10)
    assert sorted(log) == [(0.0, 1.0, "ok", "fine"), (0.5, 0.55, "bulkhead_full", None),
                           (0.98, 2.0, "ok", "fine")]
    balanced(w)


def test_thread_pool_bulkhead_starts_queues_then_rejects():
    """One thread, a queue of one: the second call waits for the thread, the third is
    rejected (ThreadPoolExecutor's admission)."""
    w, user, log, copy = world_with(EdgePolicy(bulkhead=ThreadPoolBulkhead(
        max_thread_pool_size=1, core_thread_pool_size=1, queue_capacity=1)), back_time=1.0)
    for _ in range(3):
        user.ask("front-1", 0.0)
    w.run(10)
    assert sorted(log) == [(0.0, 0.0, "bulkhead_full", None), (0.0, 1.0, "ok", "fine"),
                           (0.0, 2.0, "ok", "fine")]
    assert copy.bulkhead.active_thread_count == 0 and copy.bulkhead.queue_depth == 0
    balanced(w)


def test_a_call_queued_in_a_thread_pool_bulkhead_that_times_out_leaves_the_queue_unsent():
    """The first call keeps the only thread (no cancel) until its late reply at 5; the
    second, queued at 0.1, reaches its time limit at 1.1 still queued: it leaves the
    queue and never sends."""
    policy = EdgePolicy(time_limit=TimeLimiter(timeout_duration=1.0,
                                               cancel_running_future=False),
                        bulkhead=ThreadPoolBulkhead(max_thread_pool_size=1,
                                                    core_thread_pool_size=1, queue_capacity=1))
    w, user, log, copy = world_with(policy, back_time=5.0)
    user.ask("front-1", 0.0)
    user.ask("front-1", 0.1)
    w.run(3)
    assert sorted(log) == [(0.0, 1.0, "timeout", None), (0.1, 1.1, "timeout", None)]
    assert sent(w, "front-1", "back-1") == 1
    assert copy.bulkhead.queue_depth == 0 and copy.bulkhead.active_thread_count == 1
    w.run(10)
    assert copy.bulkhead.active_thread_count == 0   # freed by the late reply at 5


def test_a_plain_call_is_an_attempt_too():
    w, user, _log, _ = world_with(None, back_time=0.5)
    user.ask("front-1", 1.0)
    w.run(5)
    att = Result(w).attempts
    assert att[["time", "caller", "callee", "attempt", "outcome", "wait_before", "end"]] \
        .values.tolist() == [[1.0, "front-1", "back-1", 1, "ok", 0.0, 1.5]]


@pytest.mark.parametrize(("cancel", "second"), [(True, "ok"), (False, "bulkhead_full")])
def test_a_timed_out_call_keeps_its_slot_until_the_late_reply_only_without_cancel(
        cancel, second):
    """With cancel_running_future the slot is given back at the timeout; without it the
    abandoned call holds it (a thread still blocked) until its late reply comes."""
    policy = EdgePolicy(time_limit=TimeLimiter(timeout_duration=1.0,
                                               cancel_running_future=cancel),
                        bulkhead=SemaphoreBulkhead(max_concurrent_calls=1))
    w, user, log, copy = world_with(policy, back_time=3.0)
    user.ask("front-1", 0.0)     # times out at 1, reply at 3
    user.ask("front-1", 1.5)     # slot free (cancel) or still held (no cancel)
    user.ask("front-1", 3.5)     # free either way
    w.run(20)
    assert sorted(log)[:2] == [(0.0, 1.0, "timeout", None),
                               (1.5, 2.5 if cancel else 1.5, "timeout" if cancel else second,
                                None)]
    assert sorted(log)[2][2] == "timeout"
    kind = "orphan_reply" if cancel else "late_reply"
    assert [e[0] for e in events(w, kind)][:1] == [3.0]
    assert copy.bulkhead.in_use == 0   # every late reply has come by the end
    balanced(w)


def test_a_crash_of_the_caller_gives_back_the_bulkhead_slot():
    w, user, log, copy = world_with(EdgePolicy(bulkhead=SemaphoreBulkhead(
        max_concurrent_calls=1)), back_time=2.0)
    user.ask("front-1", 0.0)
    w.at(1.0, lambda: w.nodes["front-1"].crash(repair_after=0.5))
    user.ask("front-1", 2.0)
    w.run(10)
    assert copy.bulkhead.in_use == 0
    assert log == [(2.0, 4.0, "ok", "fine")]
    balanced(w)


# -- circuit breaker -------------------------------------------------------------------------

def test_breaker_opens_after_fail_max_failures_and_short_circuits_without_sending():
    """pybreaker's rules: the third consecutive failure opens it; calls are then turned
    away without running until reset_timeout has passed; a good trial closes it."""
    state = {"fail": True}

    def back(ctx, request):
        yield ctx.work()
        if state["fail"]:
            raise ServiceError("down")
        return "fine"

    w, user, log, copy = world_with(EdgePolicy(circuit_breaker=ConsecutiveFailureBreaker(
        fail_max=3, reset_timeout=10.0)), back_handler=back)
    for t in (1, 2, 3, 4, 5):
        user.ask("front-1", float(t))
    w.at(6.0, lambda: state.update(fail=False))
    user.ask("front-1", 12.0)    # before 3 + 10: still open
    user.ask("front-1", 13.0)    # at exactly opened + reset_timeout: the trial
    w.run(20)
    assert [r[2] for r in sorted(log)] == ["error"] * 3 + ["short_circuited"] * 3 + ["ok"]
    assert sent(w, "front-1", "back-1") == 4
    res = Result(w)
    ev = res.breaker_events
    assert ev[["time", "caller", "callee", "from_state", "to_state"]].values.tolist() == [
        [3.0, "front-1", "back", "closed", "open"],
        [13.0, "front-1", "back", "open", "half_open"],
        [13.0, "front-1", "back", "half_open", "closed"]]
    assert "3 consecutive failures" in ev["why"][0]
    assert copy.circuit_breaker.state == "closed"
    assert res.summary()["breaker_opens"] == 1
    assert res.summary()["short_circuited"] == 3
    balanced(w)


def test_breaker_records_a_timeout_as_an_error():
    w, user, log, copy = world_with(EdgePolicy(
        time_limit=0.5, circuit_breaker=ConsecutiveFailureBreaker(fail_max=2)), back_time=1.0)
    for t in (0, 1, 2):
        user.ask("front-1", float(t))
    w.run(10)
    assert [r[2] for r in sorted(log)] == ["timeout", "timeout", "short_circuited"]
    assert copy.circuit_breaker.state == "open"


def test_breaker_records_a_bulkhead_rejection_inside_it_as_an_error():
    """Resilience4j records every exception by default, BulkheadFullException too,
    when the bulkhead is inside the breaker (the default order)."""
    w, user, log, copy = world_with(EdgePolicy(
        bulkhead=SemaphoreBulkhead(max_concurrent_calls=0),
        circuit_breaker=ConsecutiveFailureBreaker(fail_max=2)))
    for t in (0, 1, 2):
        user.ask("front-1", float(t))
    w.run(10)
    assert [r[2] for r in sorted(log)] == ["bulkhead_full", "bulkhead_full", "short_circuited"]
    assert copy.circuit_breaker.fail_counter == 2
    assert sent(w, "front-1", "back-1") == 0


def test_breaker_counts_slow_calls_by_their_duration():
    """Resilience4j: a call slower than slow_call_duration_threshold is slow even if it
    succeeds; two slow calls of two trip a 100 % slow-call threshold."""
    cb = CircuitBreaker(slow_call_duration_threshold=0.5, sliding_window_size=2,
                        minimum_number_of_calls=2)
    w, user, log, _copy = world_with(EdgePolicy(circuit_breaker=cb), back_time=1.0)
    for t in (0, 2, 4):
        user.ask("front-1", float(t))
    w.run(10)
    assert [r[2] for r in sorted(log)] == ["ok", "ok", "short_circuited"]
    ev = Result(w).breaker_events
    assert ev["to_state"].tolist() == ["open"] and ev["time"].tolist() == [3.0]
    assert "slow-call rate 100 %" in ev["why"][0]


def test_breaker_timers_run_with_the_simulation():
    """Resilience4j with automatic transition: OPEN → HALF_OPEN exactly at the end of
    the wait, with no call to reveal it; the max wait in half-open ends it too."""
    cb = CircuitBreaker(sliding_window_size=2, minimum_number_of_calls=2,
                        wait_duration_in_open_state=5.0,
                        automatic_transition_from_open_to_half_open_enabled=True,
                        max_wait_duration_in_half_open_state=2.0)
    w, user, _log, _copy = world_with(EdgePolicy(circuit_breaker=cb), back_handler=failing)
    user.ask("front-1", 1.0)
    user.ask("front-1", 1.5)
    w.run(30)
    ev = Result(w).breaker_events
    assert ev[["time", "from_state", "to_state"]].values.tolist()[:4] == [
        [1.5, "closed", "open"], [6.5, "open", "half_open"], [8.5, "half_open", "open"],
        [13.5, "open", "half_open"]]


def test_hystrix_opens_on_its_health_snapshot_driven_by_the_simulation():
    """Hystrix judges on snapshots every 0.5 s: 20 failures in the first half second
    open it at the snapshot, with no call needed afterwards."""
    w, user, _log, _copy = world_with(EdgePolicy(circuit_breaker=HystrixBreaker()),
                                    back_handler=failing)
    for i in range(20):
        user.ask("front-1", 0.01 * i)
    w.run(3)
    ev = Result(w).breaker_events
    assert ev[["time", "to_state"]].values.tolist() == [[0.5, "open"]]


def test_every_caller_instance_has_its_own_breaker():
    w = World(0)
    log: list = []
    for i in (1, 2):
        Instance(w, f"front-{i}", service="front", handler=front("back-1", log))
    Instance(w, "back-1", service="back", handler=failing)
    copies = protect(w, "front", "back", EdgePolicy(
        circuit_breaker=ConsecutiveFailureBreaker(fail_max=2)))
    user = Caller(w)
    for t in (1, 2):
        user.ask("front-1", float(t))
    user.ask("front-2", 3.0)
    w.run(10)
    assert copies["front-1"].circuit_breaker.state == "open"
    assert copies["front-2"].circuit_breaker.state == "closed"
    assert copies["front-1"].circuit_breaker is not copies["front-2"].circuit_breaker


# -- retry -----------------------------------------------------------------------------------

def test_retry_with_defaults_attempts_at_0_half_and_1_then_the_error_surfaces():
    """Resilience4j Retry, defaults: 3 attempts including the first, 0.5 s apart; the
    caller's worker stays held while it waits between attempts."""
    w, user, log, copy = world_with(EdgePolicy(retry=Retry()), back_handler=failing)
    user.ask("front-1", 0.0)
    w.run(5)
    assert log == [(0.0, 1.0, "error", "always fails")]
    res = Result(w)
    att = res.attempts
    assert att["time"].tolist() == [0.0, 0.5, 1.0]
    assert att["attempt"].tolist() == [1, 2, 3]
    assert att["wait_before"].tolist() == [0.0, 0.5, 0.5]
    assert att["outcome"].tolist() == ["error"] * 3
    assert sent(w, "front-1", "back-1") == 3
    assert w.nodes["front-1"].busy_seconds(5.0) == 1.0   # held through the waits
    assert res.requests["attempts"].tolist() == [3]
    assert res.summary()["retries"] == 2
    assert res.amplification() == {"front": 1.0, "back": 3.0}
    assert copy.retry.number_of_failed_calls_with_retry_attempt == 1


def test_retry_stops_at_the_first_success():
    calls = {"n": 0}

    def flaky(ctx, request):
        yield ctx.work()
        calls["n"] += 1
        if calls["n"] < 2:
            raise ServiceError("once")
        return "fine"

    w, user, log, _ = world_with(EdgePolicy(retry=Retry(max_attempts=5, wait_duration=0.25)),
                                 back_handler=flaky)
    user.ask("front-1", 0.0)
    w.run(5)
    assert log == [(0.0, 0.25, "ok", "fine")]
    assert Result(w).attempts["outcome"].tolist() == ["error", "ok"]


def test_a_non_retryable_outcome_surfaces_at_once():
    w, user, log, _ = world_with(EdgePolicy(retry=Retry(retry_on={"timeout"})),
                                 back_handler=failing)
    user.ask("front-1", 0.0)
    w.run(5)
    assert log == [(0.0, 0.0, "error", "always fails")]


def test_retries_outside_the_breaker_retry_short_circuited_calls_as_resilience4j_does():
    """Retry(CircuitBreaker(call)), retry_on every failure: an open breaker's refusals
    are retried too (CallNotPermittedException is an exception like any other), and
    none of them sends anything."""
    cb = ConsecutiveFailureBreaker(fail_max=1, reset_timeout=100.0)
    w, user, _log, _ = world_with(EdgePolicy(retry=Retry(), circuit_breaker=cb),
                                 back_handler=failing)
    user.ask("front-1", 0.0)
    w.run(5)
    assert Result(w).attempts["outcome"].tolist() == ["error", "short_circuited",
                                                      "short_circuited"]
    assert sent(w, "front-1", "back-1") == 1


def test_the_breaker_outside_the_retry_sees_one_outcome_per_call():
    cb = ConsecutiveFailureBreaker(fail_max=2)
    policy = EdgePolicy(retry=Retry(), circuit_breaker=cb,
                        order=("circuit_breaker", "retry"))
    w, user, _log, copy = world_with(policy, back_handler=failing)
    user.ask("front-1", 0.0)
    w.run(5)
    assert sent(w, "front-1", "back-1") == 3
    assert copy.circuit_breaker.fail_counter == 1 and copy.circuit_breaker.state == "closed"


def test_the_retry_budget_stops_retries_when_tokens_run_low():
    """gRPC throttling, max_tokens 2: the first failure leaves 1 token, not above 1, so
    no retry at all; the budget is the edge's, shared by its calls."""
    w, user, _log, copy = world_with(EdgePolicy(retry=Retry(budget=RetryBudget(
        max_tokens=2, token_ratio=0.1))), back_handler=failing)
    user.ask("front-1", 0.0)
    w.run(5)
    assert sent(w, "front-1", "back-1") == 1
    assert copy.retry.budget.throttled == 1


def test_a_time_limit_inside_the_retry_limits_each_attempt():
    w, user, log, _ = world_with(EdgePolicy(time_limit=0.2, retry=Retry(wait_duration=0.1)),
                                 back_time=1.0)
    user.ask("front-1", 0.0)
    w.run(5)
    att = Result(w).attempts
    assert att["outcome"].tolist() == ["timeout"] * 3
    assert att["time"].tolist() == pytest.approx([0.0, 0.3, 0.6])
    assert att["end"].tolist() == pytest.approx([0.2, 0.5, 0.8])
    assert log[0][1:3] == (pytest.approx(0.8), "timeout")


def test_a_time_limit_outside_the_retry_limits_the_whole_call():
    policy = EdgePolicy(time_limit=0.7, retry=Retry(wait_duration=0.5),
                        order=("time_limit", "retry"))
    w, user, log, _ = world_with(policy, back_handler=failing)
    user.ask("front-1", 0.0)
    w.run(5)
    assert log == [(0.0, 0.7, "timeout", None)]   # cut off in the second wait
    assert Result(w).attempts["outcome"].tolist() == ["error", "error"]


# -- rate limiter ----------------------------------------------------------------------------

def test_client_side_rate_limiter_refuses_after_waiting_its_timeout_and_sends_nothing():
    """AtomicRateLimiter: one permit per second; the second call of the cycle can wait
    0.2 s at most -- refused after waiting the whole 0.2 s; the third gets the next
    cycle's permit if it can wait for it."""
    rl = RateLimiter(limit_for_period=1, limit_refresh_period=1.0, timeout_duration=0.2)
    w, user, log, _ = world_with(EdgePolicy(rate_limiter=rl))
    user.ask("front-1", 0.1)
    user.ask("front-1", 0.2)    # next permit at 1.0: 0.8 s away > 0.2 → refused at 0.4
    user.ask("front-1", 0.9)    # next permit at 1.0: waits 0.1
    w.run(5)
    log.sort()
    assert [r[2] for r in log] == ["ok", "rate_limited", "ok"]
    assert [r[0] for r in log] == [0.1, 0.2, 0.9]
    assert [r[1] for r in log] == pytest.approx([0.1, 0.4, 1.0])
    assert sent(w, "front-1", "back-1") == 2


def test_server_side_load_shedding_turns_away_arrivals_beyond_the_limit():
    w, user, log, _ = world_with(None, back_time=0.5)
    limiters = protect_server(w, "back", rate_limiter=RateLimiter(
        limit_for_period=2, limit_refresh_period=1.0))
    for _ in range(3):
        user.ask("front-1", 0.0)
    user.ask("front-1", 1.0)
    w.run(5)
    assert sorted(r[2] for r in log) == ["ok", "ok", "ok", "rate_limited"]
    assert sorted(user.statuses) == ["ok", "ok", "ok", "rate_limited"]
    led = Result(w).ledger()
    assert led["dropped_by_reason"] == {"rate_limited": 1} and led["balanced"]
    assert limiters["back-1"].refused == 1
    assert w.nodes["back-1"].arrivals == 4   # the shed one reached it too


# -- fallback --------------------------------------------------------------------------------

def test_fallback_value_answers_a_failed_call_and_the_request_ends_fallback():
    w, user, log, _ = world_with(EdgePolicy(fallback=Fallback.value({"items": []})),
                                 back_handler=failing)
    user.ask("front-1", 0.0)
    w.run(5)
    assert log == [(0.0, 0.0, "fallback", {"items": []})]
    assert user.replies == [(0.0, 0.0, "fallback", {"items": []})]
    s = Result(w).summary()
    assert (s["completed"], s["fallback"], s["answered"], s["failed"]) == (0, 1, 1, 0)
    assert s["availability"] == 1.0 and s["success_rate"] == 0.0


def test_fallback_cache_answers_the_last_good_reply_or_lets_the_failure_stand():
    state = {"n": 0}

    def back(ctx, request):
        yield ctx.work()
        state["n"] += 1
        if state["n"] != 2:
            raise ServiceError("down")
        return {"v": state["n"]}

    w, user, log, _ = world_with(EdgePolicy(fallback=Fallback.cache()), back_handler=back)
    for t in (0, 1, 2):
        user.ask("front-1", float(t))
    w.run(5)
    assert [(r[2], r[3]) for r in sorted(log)] == [("error", "down"), ("ok", {"v": 2}),
                                                  ("fallback", {"v": 2})]


def test_fallback_service_calls_another_service():
    w, user, log, _ = world_with(None, back_time=2.0)
    Instance(w, "stale-1", service="stale", service_time=Constant(0.1),
             handler=answer("stale copy"))
    protect(w, "front", "back", EdgePolicy(time_limit=0.5,
                                           fallback=Fallback.service("stale")))
    user.ask("front-1", 0.0)
    w.run(5)
    assert log == [(0.0, 0.6, "fallback", "stale copy")]
    assert sent(w, "front-1", "stale-1") == 1
    balanced(w)


def test_a_fallback_answer_travels_up_as_degraded():
    """back → deep fails; back's fallback answers; front's call sees ``fallback`` and so
    does the user, though front itself had no fallback."""
    w = World(0)
    log: list = []
    Instance(w, "front-1", service="front", handler=forward("back-1"))
    Instance(w, "back-1", service="back", handler=front("deep-1", log))
    Instance(w, "deep-1", service="deep", handler=failing)
    protect(w, "back", "deep", EdgePolicy(fallback=Fallback.value("default")))
    user = Caller(w)
    user.ask("front-1", 0.0)
    w.run(5)
    assert user.replies == [(0.0, 0.0, "fallback", "default")]


# -- deadline --------------------------------------------------------------------------------

def deadline_world(budget: float, *, middle_work: float = 0.0, deep_time: float = 5.0):
    """user → front-1 → mid-1 → deep-1, a deadline on front → mid; ``seen`` keeps the
    deadline each request arrived with, by instance."""
    w = World(0)
    front_log: list = []
    mid_log: list = []
    seen: list = []
    mid = front("deep-1", mid_log, work=middle_work)

    def spy_mid(ctx, request):
        seen.append(("mid-1", request.deadline))
        return (yield from mid(ctx, request))

    def deep(ctx, request):
        seen.append(("deep-1", ctx.deadline))
        yield ctx.work()
        return "deep"

    Instance(w, "front-1", service="front", handler=front("mid-1", front_log))
    Instance(w, "mid-1", service="mid", handler=spy_mid)
    Instance(w, "deep-1", service="deep", service_time=Constant(deep_time), handler=deep)
    protect(w, "front", "mid", deadline=budget)
    return w, Caller(w), front_log, mid_log, seen


def test_the_deadline_travels_downstream_and_stops_the_downstream_call_at_it():
    w, user, front_log, mid_log, seen = deadline_world(1.0)
    user.ask("front-1", 2.0)
    w.run(20)
    assert mid_log == [(2.0, 3.0, "deadline_exceeded", None)]
    assert front_log == [(2.0, 3.0, "deadline_exceeded", None)]
    assert user.replies[0][1:3] == (3.0, "deadline_exceeded")
    # the header: the remaining budget as an absolute time, on both hops
    assert seen == [("mid-1", 3.0), ("deep-1", 3.0)]
    # mid's answer (deadline_exceeded, sent at 3.0) reaches front at exactly its own
    # deadline: late, an orphan; deep's answer at 7.0 is one too
    assert sorted((e[0], e[1]) for e in events(w, "orphan_reply")) == [(3.0, "front-1"),
                                                                       (7.0, "mid-1")]
    balanced(w)


def test_a_call_whose_budget_is_spent_sends_nothing():
    """mid works 2 s before calling deep, with a 1 s budget: the deadline has passed
    when it calls, so the call fails at once (gRPC) and deep never hears of it."""
    w, user, front_log, mid_log, seen = deadline_world(1.0, middle_work=2.0)
    user.ask("front-1", 0.0)
    w.run(20)
    assert front_log == [(0.0, 1.0, "deadline_exceeded", None)]
    assert mid_log == [(2.0, 2.0, "deadline_exceeded", None)]
    assert sent(w, "mid-1", "deep-1") == 0
    assert w.nodes["deep-1"].arrivals == 0 and seen == [("mid-1", 1.0)]


def test_a_fallback_answers_a_deadline_cut_off():
    w, user, log, _ = world_with(EdgePolicy(deadline=0.5, fallback=Fallback.value("late")),
                                 back_time=2.0)
    user.ask("front-1", 0.0)
    w.run(5)
    assert log == [(0.0, 0.5, "fallback", "late")]


# -- composition, validation, results --------------------------------------------------------

def test_the_default_order_is_resilience4j_s():
    p = EdgePolicy(time_limit=1.0, bulkhead=SemaphoreBulkhead(), circuit_breaker=
                   CircuitBreaker(), retry=Retry(), rate_limiter=RateLimiter(),
                   fallback=Fallback.value(None))
    assert p.layers == ("fallback", "retry", "circuit_breaker", "rate_limiter", "time_limit",
                        "bulkhead")
    assert EdgePolicy(retry=Retry(), fallback=Fallback.cache(),
                      order=("fallback", "retry")).layers == ("fallback", "retry")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"time_limit": 0}, "time_limit"),
    ({"time_limit": "1s"}, "time_limit"),
    ({"bulkhead": 3}, "bulkhead"),
    ({"circuit_breaker": "r4j"}, "circuit_breaker"),
    ({"retry": 3}, "retry"),
    ({"rate_limiter": 5}, "rate_limiter"),
    ({"fallback": "cache"}, "fallback"),
    ({"deadline": -1}, "deadline"),
    ({"deadline": math.nan}, "deadline"),
    ({"order": "retry"}, "order"),
    ({"order": ("retry", "retry")}, "order"),
    ({"order": ("retyr",)}, "order"),
    ({"retry": Retry(), "order": ("bulkhead",)}, "order"),
])
def test_each_field_of_an_edge_policy_is_checked(kwargs, field):
    with pytest.raises(ParamError) as err:
        EdgePolicy(**kwargs)
    assert err.value.field == field


def test_protect_refuses_unknown_names_and_a_second_declaration_before_time_zero():
    w, _user, _log, _ = world_with(None)
    with pytest.raises(ParamError) as err:
        protect(w, "frnt", "back", EdgePolicy(time_limit=1.0))
    assert err.value.field == "caller" and "front" in str(err.value)
    with pytest.raises(ParamError) as err:
        protect(w, "front", "nowhere", EdgePolicy(time_limit=1.0))
    assert err.value.field == "callee"
    with pytest.raises(ParamError) as err:
        protect(w, "front", "back", EdgePolicy(fallback=Fallback.service("nope")))
    assert err.value.field == "fallback"
    with pytest.raises(ParamError) as err:
        protect(w, "front", "back")
    assert err.value.field == "policy"
    with pytest.raises(ParamError) as err:
        protect(w, "front", "back", EdgePolicy(deadline=1.0), deadline=2.0)
    assert err.value.field == "deadline"
    protect(w, "front", "back", EdgePolicy(time_limit=1.0))
    with pytest.raises(ParamError) as err:
        protect(w, "front", "back", EdgePolicy(time_limit=2.0))
    assert err.value.field == "callee"
    with pytest.raises(ParamError) as err:
        protect_server(w, "bak", rate_limiter=RateLimiter())
    assert err.value.field == "service"


def test_the_original_policy_is_left_untouched_and_its_listeners_hear_every_copy():
    heard = []

    class Ear(BreakerListener):
        def state_change(self, now, old, new, why):
            heard.append((now, new))

    cb = ConsecutiveFailureBreaker(fail_max=1, listeners=[Ear()])
    w, user, _log, copy = world_with(EdgePolicy(circuit_breaker=cb), back_handler=failing)
    user.ask("front-1", 1.0)
    w.run(5)
    assert cb.state == "closed" and copy.circuit_breaker.state == "open"
    assert heard == [(1.0, "open")]


def test_every_outcome_is_documented_counted_and_explained():
    assert set(FAILURES) | {"ok", "fallback"} == set(OUTCOMES) | {"abandoned"}
    for key in ("fallback", "answered", "success_rate", "retries", "breaker_opens",
                "orphan_replies", "max_amplification", *FAILURES):
        assert key in SUMMARY_UNITS and key in SUMMARY_HELP


def test_summary_counts_the_new_outcomes_and_the_ledger_balances():
    w, user, _log, _ = world_with(EdgePolicy(time_limit=0.5, bulkhead=SemaphoreBulkhead(
        max_concurrent_calls=1)), back_time=1.0)
    user.ask("front-1", 0.0)
    user.ask("front-1", 0.1)
    user.ask("front-1", 2.0)
    w.run(10)
    res = Result(w)
    s = res.summary()
    assert (s["timeout"], s["bulkhead_full"], s["failed"], s["requests"]) == (2, 1, 3, 3)
    assert s["orphan_replies"] == 2
    assert res.requests["outcome"].tolist() == ["timeout", "bulkhead_full", "timeout"]
    assert res.requests["attempts"].tolist() == [1, 1, 1]
    balanced(w)
