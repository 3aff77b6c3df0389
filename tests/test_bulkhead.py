"""Bulkheads against REFERENCE §2 and the JDK/Resilience4j rules they follow.

The bulkheads only keep books: each test plays callers arriving, waiting,
finishing and giving up at explicit times, and checks who holds a slot.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.errors import ParamError
from simcomm.resilience import SemaphoreBulkhead, ThreadPoolBulkhead
from simcomm.resilience.bulkhead import PERMITTED, QUEUED, REJECTED, STARTED, WAITING

# ----------------------------------------------------------------- semaphore


def test_semaphore_defaults_are_resilience4js():
    b = SemaphoreBulkhead()
    assert (b.max_concurrent_calls, b.max_wait_duration) == (25, 0.0)


def test_semaphore_example_limit_2_third_rejected_until_one_finishes():
    b = SemaphoreBulkhead(max_concurrent_calls=2)
    assert b.try_acquire_permission(0.0)
    assert b.try_acquire_permission(0.0)
    assert not b.try_acquire_permission(0.0)
    assert b.on_complete(1.0) is None
    assert b.try_acquire_permission(1.0)
    assert b.available_concurrent_calls == 0


def test_semaphore_example_limit_1_wait_50_ms_rejected_after_waiting():
    b = SemaphoreBulkhead(max_concurrent_calls=1, max_wait_duration=0.05)
    assert b.acquire_permission(0.0, "first") == PERMITTED
    assert b.acquire_permission(0.0, "second") == WAITING
    assert b.next_deadline == 0.05
    assert b.expire(0.0499) == []
    assert b.expire(0.05) == ["second"]
    assert b.waiting == 0 and b.rejected == 1 and b.in_use == 1


def test_semaphore_hands_a_freed_slot_to_the_first_waiter():
    b = SemaphoreBulkhead(max_concurrent_calls=1, max_wait_duration=1.0)
    b.acquire_permission(0.0, "a")
    assert b.acquire_permission(0.1, "b") == WAITING
    assert b.acquire_permission(0.2, "c") == WAITING
    assert b.on_complete(0.5) == "b"
    assert b.in_use == 1 and b.waiting == 1
    assert b.on_complete(0.6) == "c"
    assert b.on_complete(0.7) is None
    assert b.in_use == 0


def test_semaphore_is_fair_a_newcomer_does_not_overtake_a_waiter():
    b = SemaphoreBulkhead(max_concurrent_calls=1, max_wait_duration=1.0)
    b.acquire_permission(0.0, "a")
    b.acquire_permission(0.1, "b")
    assert b.on_complete(0.2) == "b"     # the slot goes straight to b
    assert b.acquire_permission(0.2, "late") == WAITING
    assert not b.try_acquire_permission(0.2)


def test_semaphore_slot_freed_at_a_deadline_comes_too_late():
    b = SemaphoreBulkhead(max_concurrent_calls=1, max_wait_duration=0.5)
    b.acquire_permission(0.0, "a")
    b.acquire_permission(0.0, "b")
    b.acquire_permission(0.1, "c")
    assert b.on_complete(0.5) == "c"     # b's wait ran out at 0.5 exactly
    assert b.expire(0.5) == ["b"]


def test_semaphore_cancel_forgets_a_waiter():
    b = SemaphoreBulkhead(max_concurrent_calls=1, max_wait_duration=1.0)
    b.acquire_permission(0.0, "a")
    b.acquire_permission(0.0, "b")
    assert b.cancel(0.3, "b") and not b.cancel(0.3, "b")
    assert b.on_complete(0.4) is None


def test_semaphore_release_without_a_permit_is_an_error():
    with pytest.raises(ParamError):
        SemaphoreBulkhead().on_complete(0.0)


def test_semaphore_waiter_ids_must_be_unique_while_waiting():
    b = SemaphoreBulkhead(max_concurrent_calls=0, max_wait_duration=1.0)
    b.acquire_permission(0.0, 1)
    with pytest.raises(ParamError, match="waiter"):
        b.acquire_permission(0.0, 1)


def test_semaphore_limit_zero_rejects_everything():
    b = SemaphoreBulkhead(max_concurrent_calls=0)
    assert b.acquire_permission(0.0, "a") == REJECTED


@pytest.mark.parametrize(("field", "value"), [
    ("max_concurrent_calls", -1), ("max_concurrent_calls", 2.5),
    ("max_concurrent_calls", True), ("max_wait_duration", -0.01),
    ("max_wait_duration", float("inf"))])
def test_semaphore_refuses_bad_fields(field, value):
    with pytest.raises(ParamError) as err:
        SemaphoreBulkhead(**{field: value})
    assert err.value.field == field


def test_semaphore_accepts_numpy_numbers():
    b = SemaphoreBulkhead(max_concurrent_calls=np.int64(3), max_wait_duration=np.float32(0.5))
    assert b.max_concurrent_calls == 3


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(0, 4), wait=st.sampled_from([0.0, 0.3, 1.0]),
       ops=st.lists(st.tuples(st.sampled_from(["arrive", "finish", "expire", "cancel"]),
                              st.floats(0.0, 0.5)), max_size=120))
def test_a_semaphore_bulkhead_never_exceeds_its_limit(limit, wait, ops):
    """Whatever arrives, finishes, times out or gives up, holders never exceed the limit,
    and nobody both holds a slot and waits."""
    b = SemaphoreBulkhead(max_concurrent_calls=limit, max_wait_duration=wait)
    t = 0.0
    holders: list[int] = []
    waiting: set[int] = set()
    next_id = 0
    for op, dt in ops:
        t += dt
        if op == "arrive":
            next_id += 1
            result = b.acquire_permission(t, next_id)
            if result == PERMITTED:
                holders.append(next_id)
            elif result == WAITING:
                waiting.add(next_id)
        elif op == "finish" and holders:
            holders.pop(0)
            granted = b.on_complete(t)
            if granted is not None:
                waiting.discard(granted)
                holders.append(granted)
        elif op == "expire":
            for gone in b.expire(t):
                waiting.remove(gone)
        elif op == "cancel" and waiting:
            assert b.cancel(t, min(waiting))
            waiting.discard(min(waiting))
        assert len(holders) == b.in_use <= limit
        assert b.available_concurrent_calls >= 0
        assert not waiting & set(holders)


# ----------------------------------------------------------------- thread pool


def test_thread_pool_defaults():
    b = ThreadPoolBulkhead()
    assert (b.core_thread_pool_size, b.max_thread_pool_size) == (3, 4)
    assert b.queue_capacity == 100 and b.keep_alive_duration == 0.02


def test_thread_pool_core_then_queue_then_max_then_reject():
    """ThreadPoolExecutor.execute: core threads first, then the queue, then up to max."""
    b = ThreadPoolBulkhead(core_thread_pool_size=1, max_thread_pool_size=2, queue_capacity=2)
    assert [b.submit(0.0, i) for i in range(6)] == [STARTED, QUEUED, QUEUED, STARTED,
                                                     REJECTED, REJECTED]
    assert (b.thread_pool_size, b.active_thread_count, b.queue_depth) == (2, 2, 2)
    assert b.queued_tasks == (1, 2)


def test_thread_pool_new_core_thread_even_when_one_is_idle():
    b = ThreadPoolBulkhead(core_thread_pool_size=2, max_thread_pool_size=2, queue_capacity=1)
    b.submit(0.0, "a")
    b.on_complete(1.0)                    # one idle thread
    assert b.submit(1.0, "b") == STARTED
    assert b.thread_pool_size == 2        # a second thread was made for b


def test_thread_pool_finished_thread_takes_the_next_queued_task():
    b = ThreadPoolBulkhead(core_thread_pool_size=1, max_thread_pool_size=1, queue_capacity=5)
    b.submit(0.0, "a")
    b.submit(0.0, "b")
    b.submit(0.0, "c")
    assert b.on_complete(1.0) == "b"
    assert b.on_complete(2.0) == "c"
    assert b.on_complete(3.0) is None
    assert b.active_thread_count == 0 and b.thread_pool_size == 1


def test_thread_pool_idle_thread_takes_new_work_at_once():
    b = ThreadPoolBulkhead(core_thread_pool_size=1, max_thread_pool_size=1, queue_capacity=5)
    b.submit(0.0, "a")
    b.on_complete(1.0)
    assert b.submit(2.0, "b") == STARTED and b.queue_depth == 0


def test_thread_pool_zero_capacity_is_a_synchronous_queue():
    b = ThreadPoolBulkhead(core_thread_pool_size=1, max_thread_pool_size=2, queue_capacity=0)
    assert [b.submit(0.0, i) for i in range(3)] == [STARTED, STARTED, REJECTED]
    b.on_complete(0.001)   # an idle thread waits on the queue: the hand-off works
    assert b.submit(0.001, 9) == STARTED


def test_thread_pool_extra_threads_die_after_keep_alive():
    b = ThreadPoolBulkhead(core_thread_pool_size=1, max_thread_pool_size=3, queue_capacity=0,
                           keep_alive_duration=0.02)
    for i in range(3):
        b.submit(0.0, i)
    b.on_complete(1.0)
    b.on_complete(1.0)
    b.on_complete(1.0)      # the third went idle with the pool at 3 > 1: all timed
    assert b.next_timer == pytest.approx(1.02)
    b.advance(1.019)
    assert b.thread_pool_size == 3
    b.advance(1.02)
    assert b.thread_pool_size == 1   # down to core; the last one waits for good
    assert b.next_timer is None


def test_thread_pool_thread_idle_at_core_size_never_times_out():
    b = ThreadPoolBulkhead(core_thread_pool_size=1, max_thread_pool_size=2, queue_capacity=0)
    b.submit(0.0, "a")
    b.on_complete(1.0)
    b.advance(100.0)
    assert b.thread_pool_size == 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"core_thread_pool_size": 0}, "core_thread_pool_size"),
    ({"max_thread_pool_size": 2, "core_thread_pool_size": 3}, "max_thread_pool_size"),
    ({"queue_capacity": -1}, "queue_capacity"),
    ({"keep_alive_duration": -1}, "keep_alive_duration")])
def test_thread_pool_refuses_bad_fields(kwargs, field):
    with pytest.raises(ParamError) as err:
        ThreadPoolBulkhead(**kwargs)
    assert err.value.field == field


@settings(max_examples=300, deadline=None)
@given(core=st.integers(1, 3), extra=st.integers(0, 2), capacity=st.integers(0, 3),
       ops=st.lists(st.tuples(st.sampled_from(["submit", "submit", "finish", "cancel"]),
                              st.floats(0.0, 0.05)), max_size=100))
def test_a_thread_pool_bulkhead_never_exceeds_its_threads_or_queue(core, extra, capacity, ops):
    b = ThreadPoolBulkhead(core_thread_pool_size=core, max_thread_pool_size=core + extra,
                           queue_capacity=capacity)
    t = 0.0
    running = 0
    queued: list[int] = []
    for i, (op, dt) in enumerate(ops):
        t += dt
        if op == "submit":
            result = b.submit(t, i)
            if result == STARTED:
                running += 1
            elif result == QUEUED:
                queued.append(i)
        elif op == "finish" and running:
            nxt = b.on_complete(t)
            if nxt is None:
                running -= 1
            else:
                assert nxt == queued.pop(0)      # first in, first out
        elif op == "cancel" and queued:
            assert b.cancel(t, queued.pop())
        assert b.active_thread_count == running <= b.thread_pool_size <= core + extra
        assert b.queue_depth == len(queued) <= capacity
        if queued:
            assert b.active_thread_count == b.thread_pool_size   # nobody idles over work
