"""Bulkheads: a limit on outstanding calls, as pure bookkeeping.

The book's second tool against partial failure (*Microservices Patterns*
§3.2.3, "limit the number of outstanding requests"): a caller that gives
each downstream service its own small pool cannot have all its workers
stuck on one slow service.  Two kinds, both Resilience4j's:

* :class:`SemaphoreBulkhead` -- at most ``max_concurrent_calls`` calls in
  flight; a caller that finds no slot waits up to ``max_wait_duration``
  (0: rejected at once);
* :class:`ThreadPoolBulkhead` -- calls run on the bulkhead's own threads
  (core and max pool size) with a bounded queue in front, exactly as Java's
  ``ThreadPoolExecutor`` admits work.

Neither waits or runs anything: they take ``now`` and an opaque ``waiter``
/ ``task`` id and say what happens -- permitted, waiting, rejected; which
waiter gets a freed slot; which waiters ran out of time -- so the glue
above the engine can turn that into SimPy events, and tests need no World.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from simcomm.errors import ParamError
from simcomm.resilience._validate import check_real, check_whole

__all__ = ["PERMITTED", "QUEUED", "REJECTED", "STARTED", "WAITING", "SemaphoreBulkhead",
           "ThreadPoolBulkhead"]

PERMITTED = "permitted"
WAITING = "waiting"
REJECTED = "rejected"
STARTED = "started"
QUEUED = "queued"


class SemaphoreBulkhead:
    """Resilience4j's SemaphoreBulkhead: a fair semaphore of ``max_concurrent_calls``.

    Follows ``bulkhead/internal/SemaphoreBulkhead.java`` and
    ``BulkheadConfig`` (defaults 25 calls, no wait): ``tryEnterBulkhead`` is
    ``semaphore.tryAcquire(maxWaitDuration)`` on a *fair* semaphore
    (``fairCallHandlingEnabled`` is on by default), so waiters are served
    first come, first served, and a newcomer never overtakes a waiter.

    * :meth:`acquire_permission` -- a free slot (and nobody waiting ahead):
      ``"permitted"``; none and ``max_wait_duration`` 0: ``"rejected"``;
      else ``"waiting"`` until ``now + max_wait_duration``.
    * :meth:`on_complete` -- a call finished: its slot goes to the first
      waiter whose wait has not run out, which is returned (the glue starts
      it); a slot freed at exactly a waiter's deadline comes too late.
    * :meth:`expire` -- the waiters whose deadline is ``<= now``: they are
      rejected (``BulkheadFullException`` after waiting the full wait).

    Deviation: ``fair_call_handling_enabled=False`` (barging) is not offered:
    in a discrete-event run nothing can slip in between a release and the
    wake-up of the waiter it signals.
    """

    def __init__(self, *, max_concurrent_calls: int = 25, max_wait_duration: float = 0.0,
                 name: str | None = None) -> None:
        self.max_concurrent_calls = check_whole("max_concurrent_calls", max_concurrent_calls, 0)
        self.max_wait_duration = check_real("max_wait_duration", max_wait_duration,
                                            unit="seconds")
        self.name = name
        self._in_use = 0
        self._waiters: deque[tuple[Hashable, float]] = deque()
        self._waiting: set[Hashable] = set()
        self.permitted = 0
        self.rejected = 0
        self.finished = 0

    # ----------------------------------------------------------- metrics (R4j names)

    @property
    def available_concurrent_calls(self) -> int:
        return self.max_concurrent_calls - self._in_use

    @property
    def max_allowed_concurrent_calls(self) -> int:
        return self.max_concurrent_calls

    @property
    def in_use(self) -> int:
        """Calls holding a slot now."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot (including any whose deadline is exactly now)."""
        return len(self._waiters)

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline of a waiter, if any (when :meth:`expire` matters next)."""
        return self._waiters[0][1] if self._waiters else None

    # ----------------------------------------------------------- admission

    def try_acquire_permission(self, now: float) -> bool:
        """Take a slot only if one is free now and nobody waits for one."""
        if self._in_use < self.max_concurrent_calls and not self._waiters:
            self._in_use += 1
            self.permitted += 1
            return True
        self.rejected += 1
        return False

    def acquire_permission(self, now: float, waiter: Hashable) -> str:
        """``"permitted"``, ``"waiting"`` (until ``now + max_wait_duration``) or ``"rejected"``."""
        if self._in_use < self.max_concurrent_calls and not self._waiters:
            self._in_use += 1
            self.permitted += 1
            return PERMITTED
        if self.max_wait_duration <= 0:
            self.rejected += 1
            return REJECTED
        if waiter in self._waiting:
            raise ParamError("waiter", waiter, "an id that is not already waiting")
        self._waiters.append((waiter, now + self.max_wait_duration))
        self._waiting.add(waiter)
        return WAITING

    def on_complete(self, now: float) -> Hashable | None:
        """A call finished: free its slot; return the waiter that takes it, if any."""
        return self._release(now, finished=True)

    def release_permission(self, now: float) -> Hashable | None:
        """Give back a slot whose call never ran (not counted as finished)."""
        return self._release(now, finished=False)

    def _release(self, now: float, finished: bool) -> Hashable | None:
        if self._in_use <= 0:
            raise ParamError("on_complete", now, "a release matching an earlier permit "
                             "(no call holds a slot)")
        if finished:
            self.finished += 1
        for i, (waiter, deadline) in enumerate(self._waiters):
            if deadline > now:
                del self._waiters[i]
                self._waiting.discard(waiter)
                self.permitted += 1
                return waiter          # the slot passes on: in_use unchanged
        self._in_use -= 1
        return None

    def expire(self, now: float) -> list[Hashable]:
        """Reject and return the waiters whose deadline is ``<= now``, first come first."""
        out: list[Hashable] = []
        kept: deque[tuple[Hashable, float]] = deque()
        for waiter, deadline in self._waiters:
            if deadline <= now:
                out.append(waiter)
                self._waiting.discard(waiter)
            else:
                kept.append((waiter, deadline))
        self._waiters = kept
        self.rejected += len(out)
        return out

    def cancel(self, now: float, waiter: Hashable) -> bool:
        """A waiter gave up (its caller stopped waiting): forget it.  True if it was waiting."""
        if waiter not in self._waiting:
            return False
        self._waiting.discard(waiter)
        self._waiters = deque(w for w in self._waiters if w[0] != waiter)
        return True

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (f"<SemaphoreBulkhead{label} {self._in_use}/{self.max_concurrent_calls} "
                f"waiting={len(self._waiters)}>")


class ThreadPoolBulkhead:
    """Resilience4j's FixedThreadPoolBulkhead: its own threads and a bounded queue.

    Follows ``FixedThreadPoolBulkhead`` (a ``ThreadPoolExecutor`` over an
    ``ArrayBlockingQueue`` of ``queue_capacity``, or a ``SynchronousQueue``
    when it is 0) and the JDK's ``ThreadPoolExecutor.execute`` / ``getTask``:

    1. fewer than ``core_thread_pool_size`` threads: a **new** thread runs
       the task (even if others are idle);
    2. else the task is offered to the queue: an idle thread takes it at
       once (``"started"``), otherwise it waits in the queue (``"queued"``)
       if there is room (a ``SynchronousQueue`` has none);
    3. else, fewer than ``max_thread_pool_size`` threads: a new thread;
    4. else ``"rejected"`` (``BulkheadFullException``).

    A thread that finishes takes the next queued task; with none it idles.
    An idle thread that went idle while the pool had more than the core
    size dies after ``keep_alive_duration`` if the pool still has more than
    the core size then (otherwise it waits for work for good), as
    ``getTask`` decides.

    Defaults: ``queue_capacity`` 100 and keep-alive 20 ms as Resilience4j;
    its pool sizes come from the host's processors (max = processors, core
    = processors - 1) -- a simulation must not depend on the machine it
    runs on, so simcomm takes a nominal 4-processor host: max 4, core 3.
    """

    def __init__(self, *, max_thread_pool_size: int = 4, core_thread_pool_size: int = 3,
                 queue_capacity: int = 100, keep_alive_duration: float = 0.02,
                 name: str | None = None) -> None:
        self.max_thread_pool_size = check_whole("max_thread_pool_size", max_thread_pool_size, 1)
        self.core_thread_pool_size = check_whole("core_thread_pool_size",
                                                 core_thread_pool_size, 1)
        if self.max_thread_pool_size < self.core_thread_pool_size:
            raise ParamError("max_thread_pool_size", max_thread_pool_size,
                             f"a whole number >= core_thread_pool_size "
                             f"({self.core_thread_pool_size})")
        self.queue_capacity = check_whole("queue_capacity", queue_capacity, 0)
        self.keep_alive_duration = check_real("keep_alive_duration", keep_alive_duration,
                                              unit="seconds")
        self.name = name
        self._threads = 0
        self._busy = 0
        self._idle: deque[list] = deque()   # [idle since, timed], longest idle first
        self._queue: deque[Hashable] = deque()
        self.started = 0
        self.queued = 0
        self.rejected = 0
        self.finished = 0

    # ----------------------------------------------------------- metrics (R4j names)

    @property
    def thread_pool_size(self) -> int:
        """Threads alive (busy or idle)."""
        return self._threads

    @property
    def active_thread_count(self) -> int:
        """Threads running a task."""
        return self._busy

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def remaining_queue_capacity(self) -> int:
        return self.queue_capacity - len(self._queue)

    @property
    def queued_tasks(self) -> tuple[Hashable, ...]:
        return tuple(self._queue)

    @property
    def next_timer(self) -> float | None:
        """When the next idle thread's keep-alive runs out, if one is counting down."""
        times = [since + self.keep_alive_duration for since, timed in self._idle if timed]
        return min(times) if times else None

    # ----------------------------------------------------------- admission

    def advance(self, now: float) -> None:
        """Let idle threads whose keep-alive ran out by ``now`` die (``getTask``)."""
        ka = self.keep_alive_duration
        core = self.core_thread_pool_size
        for entry in sorted((e for e in self._idle if e[1]), key=lambda e: e[0]):
            if entry[0] + ka > now:
                break
            if self._threads > core:
                self._idle.remove(entry)
                self._threads -= 1
            else:
                entry[1] = False       # timed out, but the pool is at core: take() for good

    def submit(self, now: float, task: Hashable) -> str:
        """``"started"``, ``"queued"`` or ``"rejected"`` -- ``ThreadPoolExecutor.execute``."""
        self.advance(now)
        if self._threads < self.core_thread_pool_size:
            self._threads += 1
            return self._start()
        if self._idle:                       # an idle thread is waiting on the queue
            self._idle.popleft()
            return self._start()
        if len(self._queue) < self.queue_capacity:
            self._queue.append(task)
            self.queued += 1
            return QUEUED
        if self._threads < self.max_thread_pool_size:
            self._threads += 1
            return self._start()
        self.rejected += 1
        return REJECTED

    def _start(self) -> str:
        self._busy += 1
        self.started += 1
        return STARTED

    def on_complete(self, now: float) -> Hashable | None:
        """A task finished: its thread takes the next queued task (returned) or idles."""
        if self._busy <= 0:
            raise ParamError("on_complete", now, "a completion matching a started task "
                             "(no thread is busy)")
        self.advance(now)
        self.finished += 1
        if self._queue:
            self.started += 1
            return self._queue.popleft()
        self._busy -= 1
        self._idle.append([now, self._threads > self.core_thread_pool_size])
        return None

    def cancel(self, now: float, task: Hashable) -> bool:
        """Take a queued task out of the queue (its caller gave up).  True if it was there."""
        try:
            self._queue.remove(task)
        except ValueError:
            return False
        return True

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (f"<ThreadPoolBulkhead{label} busy={self._busy}/{self._threads} threads "
                f"queue={len(self._queue)}/{self.queue_capacity}>")
