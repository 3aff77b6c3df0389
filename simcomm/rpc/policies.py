"""The glue that applies the pure policies of :mod:`simcomm.resilience` to calls.

:func:`simcomm.resilience.protect` declares an :class:`~simcomm.resilience.EdgePolicy`
on a caller → callee edge; :func:`install` (called by it) gives each caller
instance a copy and an :class:`_Edge` that runs its calls through the
policies, as SimPy events.  :func:`simcomm.rpc.call` finds the edge of a
call in ``Node.outbound`` (a :class:`_Router`) and hands the call over; a
call on an edge with no policy and no deadline never comes here.

How a call goes, layer by layer (outermost first, as ``EdgePolicy.layers``
says; Resilience4j's order by default)::

    deadline ( fallback ( retry ( circuit_breaker ( rate_limiter
             ( time_limit ( bulkhead ( send and wait for the reply ) ) ) ) ) ) )

* **deadline** -- the request's time budget (``EdgePolicy.deadline`` from
  now, or the one in the incoming request's header if sooner) goes in the
  header of every request sent for the call; every wait inside stops at it
  and the call ends ``deadline_exceeded``.  A call whose budget is already
  spent sends nothing (as gRPC fails it at once).
* **fallback** -- a failed outcome (anything but ``ok`` / ``fallback``,
  including a deadline cut-off) is answered by the fallback and ends
  ``fallback``.
* **retry** -- each attempt is recorded (``Result.attempts``); a failed one
  is tried again after the wait the Retry's interval function gives,
  unless the Retry says it surfaces (not retryable, budget, max attempts).
  The wait is simulated time **during which the caller's worker stays
  held** (a thread sleeping between attempts).  Resilience4j retries every
  failure by default -- a ``short_circuited`` or ``bulkhead_full`` one too
  -- unless ``retry_on`` says otherwise.
* **circuit breaker** -- ``try_acquire`` first: refused, the call ends
  ``short_circuited`` and sends nothing.  Else the outcome of everything
  inside is recorded with its duration (from the permit, as Resilience4j's
  ``decorateSupplier`` measures): ``ok`` and ``fallback`` answers are
  successes, every other outcome an error -- a ``timeout`` (a
  TimeoutException), a ``bulkhead_full`` from a bulkhead inside it
  (Resilience4j records a BulkheadFullException as a failure unless it is
  ignored: ``recordExceptions`` defaults to every exception), an ``error``,
  ``refused``, ``reset``...  Slow calls count by that duration.  The
  breaker's timers (``next_timer``) are driven by simulation events, and
  every state change goes to ``Result.breaker_events`` through a
  :class:`BreakerListener`.
* **rate limiter** -- ``acquire_permission``: the caller waits for a permit
  (up to the limiter's ``timeout_duration``) and, refused, ends
  ``rate_limited`` after waiting the whole timeout, as Resilience4j's
  ``waitForPermission`` does; nothing is sent.
* **time limit** -- every wait inside stops at ``timeout_duration`` and the
  call ends ``timeout``.  The callee's work goes on.  With
  ``cancel_running_future`` (the default) the caller forgets the call: the
  late reply is recorded as an ``orphan_reply`` event, and the bulkhead
  slot (or thread) is given back at once.  Without it the abandoned call
  keeps its slot until the late reply comes (recorded as ``late_reply``),
  as a thread still blocked on the call would.
* **bulkhead** -- a semaphore bulkhead permits, makes the caller wait up to
  ``max_wait_duration`` for a slot (first come, first served) or rejects:
  ``bulkhead_full``, nothing sent.  A thread-pool bulkhead starts the call
  on one of its threads, queues it, or rejects it.

A crash of the caller (the worker is interrupted) gives back every slot the
call held; a breaker records the call as failed.

Limits.  Every wait of a call (for a slot, a permit, a retry's backoff, the
reply) stops at the earliest limit in force: the deadline, or the time
limit of the layer it is inside.  An inner limit later than an outer one
never fires; at a tie the outer one rules.  A reply (or a slot) that comes
at exactly the limit is late, as :meth:`TimeLimiter.timed_out` says.  A
limit that runs out is an exception for the layers it crosses on its way
out (a breaker records an error, a bulkhead gives its slot back, a retry
does not retry) until the layer that set it turns it into its outcome; a
fallback also answers a deadline cut-off.  Resilience4j cancels the inner
future, so in a non-default order (a time limit *outside* a retry, say)
the layers inside it stop too; only a bulkhead slot outlives a cut-off,
when ``cancel_running_future`` is off.

Replies made by a policy have id 0 and are in no ledger: a
``short_circuited``, ``bulkhead_full`` or ``rate_limited`` call, and a call
whose budget was spent before it could be sent, put no message on the
network.  Time limits cost no event per call: the calls of an edge share
one timer, set for the first limit still running.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator
from functools import partial
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import Event

from simcomm.engine.messages import REPLY, Message
from simcomm.errors import ParamError
from simcomm.resilience.breakers import (
    BreakerListener,
    CircuitBreaker,
    ConsecutiveFailureBreaker,
)
from simcomm.resilience.bulkhead import (
    QUEUED,
    REJECTED,
    WAITING,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
)
from simcomm.resilience.edge import EdgePolicy
from simcomm.resilience.timelimiter import TimeLimiter

if TYPE_CHECKING:
    from simcomm.engine.nodes import Context, Node
    from simcomm.engine.trace import Table
    from simcomm.engine.world import World
    from simcomm.resilience.ratelimiter import RateLimiter

__all__ = ["SUCCESS", "CutOff", "install", "install_server", "plain_edge"]

#: Outcomes that answer the call (the callee's own answer, or a fallback's).
SUCCESS = frozenset({"ok", "fallback"})

_INF = math.inf


class _Scope:
    """Something that stops waits: the deadline, or one time limiter's limit."""

    __slots__ = ("cancel", "outcome")

    def __init__(self, outcome: str, cancel: bool) -> None:
        self.outcome = outcome
        self.cancel = cancel


_DEADLINE = _Scope("deadline_exceeded", True)


class CutOff(Exception):
    """A wait was stopped by ``scope``; ``hold`` is the reply still awaited, if any."""

    def __init__(self, scope: _Scope) -> None:
        super().__init__(scope.outcome)
        self.scope = scope
        self.hold: Event | None = None


#: What a reply wait resumes with when its limit ran out first.
_CUT = object()


class _Call:
    """The state of one call on its way through the layers."""

    __slots__ = ("body", "ctx", "deadline", "dest", "key", "kind", "node", "rid", "scope",
                 "size", "trace_id", "until", "until_ev", "waiting")

    def __init__(self, node: Node, ctx: Context | None, dest: str, body: Any, kind: str,
                 key: Any, trace_id: int | None) -> None:
        self.node = node
        self.ctx = ctx
        self.dest = dest
        self.body = body
        self.kind = kind
        self.key = key
        self.trace_id = trace_id
        self.size: int | None = None
        self.deadline: float | None = None   # for the header of each request sent
        self.until = _INF                    # the earliest time any wait stops
        self.until_ev: Event | None = None   # its timer, made when a wait needs it
        self.scope: _Scope = _DEADLINE       # what stops waits at ``until``
        self.waiting: Event | None = None    # the reply being awaited, if any
        self.rid = 0                         # ... and the id of its request

    def timer(self, env: simpy.Environment) -> Event:
        """The timer of the limit in force, made on first need."""
        lim = self.until_ev
        if lim is None:
            lim = self.until_ev = env.timeout(self.until - env.now)
            lim.callbacks.append(self.fire)
        return lim

    def fire(self, timer: Event) -> None:
        """This call's own limit timer ran out (if it is still the one in force)."""
        if timer is self.until_ev:
            self.cut()

    def cut(self) -> None:
        """The limit in force ran out: if a reply is being awaited, stop waiting
        (the caller forgets the request; its reply will be an orphan)."""
        ev = self.waiting
        if ev is None or ev.triggered:
            return
        self.waiting = None
        self.node.forget(self.rid)
        ev.succeed(_CUT)


def _on_reply(ev: Event, fn: Callable[[Event], None]) -> None:
    """Run ``fn(ev)`` when ``ev`` is processed (now, if it already was)."""
    if ev.callbacks is None:
        fn(ev)
    else:
        ev.callbacks.append(fn)


class _Recorder(BreakerListener):
    """Writes every state change of one breaker copy to ``trace.breakers``."""

    def __init__(self, rows: Table, caller: str, callee: str) -> None:
        self.rows = rows
        self.caller = caller
        self.callee = callee

    def state_change(self, now: float, old: str, new: str, why: str) -> None:
        self.rows.append((now, self.caller, self.callee, old, new, why))


class _Pause:
    """A hook's answer when the call must wait first (for a slot, a permit).

    The driver waits for ``event`` (cut short by any limit in force), then
    calls ``resume(value)`` for the hook's token or verdict; ``abort()`` if
    the wait itself was cut short.
    """

    __slots__ = ("abort", "event", "resume")

    def __init__(self, event: Event, resume: Callable[[Any], Any],
                 abort: Callable[[], None]) -> None:
        self.event = event
        self.resume = resume
        self.abort = abort


#: Layers that only act before and after what is inside them: run as hooks,
#: many in one generator.  The others (retry, fallback) are generators.
_HOOKS = frozenset({"once", "circuit_breaker", "rate_limiter", "time_limit", "bulkhead"})

_Hook = tuple[Callable[[_Call, float], Any],
              Callable[[_Call, Any, Any, Any, float], tuple[Any, Any]] | None]


class _Edge:
    """One caller instance's copy of an edge policy, applied to its calls.

    A call runs through ``self._steps``: each step is a generator function
    ``step(c, i)`` that runs the next one as ``self._steps[i](c, i + 1)``.
    A retry and a fallback are steps of their own.  The layers that only
    act before and after the inside (breaker, rate limiter, time limit,
    bulkhead, the attempt record) are *hooks*, an ``enter`` and a ``leave``
    method each, and a run of them in a row is one step (:meth:`_hooked`);
    the last step is always such a run (maybe empty) and sends the request
    itself.  Fewer generators per call, the same order.
    """

    def __init__(self, world: World, caller: Node, callee: str | None,
                 policy: EdgePolicy) -> None:
        self.world = world
        self.env = world.env
        self.caller = caller
        self.callee = callee
        self.policy = policy
        self.trace = world.trace
        self.deadline = policy.deadline
        self.retries = 0
        layers = list(policy.layers)
        if "retry" not in layers:
            # one attempt per call, recorded just inside a leading fallback
            layers.insert(1 if layers[:1] == ["fallback"] else 0, "once")
        self.layers = tuple(layers)
        steps: list[Callable[..., Generator[Event, Any, Message]]] = []
        group: list[_Hook] = []
        attempts: str | None = None
        for j, name in enumerate(layers):
            if name in ("retry", "once") and all(n in _HOOKS for n in layers[j + 1:]):
                # the attempt layer right outside the last group: it runs there
                if group:
                    steps.append(partial(self._hooked, tuple(group), None))
                    group = []
                attempts = name
                continue
            if name in _HOOKS:
                enter = "thread_pool" if name == "bulkhead" and isinstance(
                    policy.bulkhead, ThreadPoolBulkhead) else name
                group.append((getattr(self, "_enter_" + enter),
                              getattr(self, "_leave_" + name, None)))
                continue
            if group:
                steps.append(partial(self._hooked, tuple(group), None))
                group = []
            steps.append(getattr(self, "_" + name))
        # the last step is a group of hooks (maybe none) that sends
        steps.append(partial(self._hooked, tuple(group), attempts))
        self._steps = tuple(steps)
        self.first = steps[0]
        self._last = len(steps)
        self._format = getattr(caller, "format", None)
        tl = policy.time_limit
        self._limit = (_Scope("timeout", tl.cancel_running_future)
                       if isinstance(tl, TimeLimiter) else None)
        self._limit_seconds = tl.timeout_duration if isinstance(tl, TimeLimiter) else _INF
        # the time limits in force, (end, call) in start order -- so in end
        # order too, the limit being the same for every call -- and the time
        # the one timer that serves them all is set for
        self._due: deque[tuple[float, _Call]] = deque()
        self._due_at: float | None = None
        self._wake: dict[Any, Event] = {}   # a waiting call -> the event that wakes it
        self._armed: float | None = None
        self._cache: Any = None
        self._cached = False
        self._fallback_dest: str | None = None
        fb = policy.fallback
        if fb is not None and fb.kind == "service":
            target = fb.target
            assert target is not None
            if target not in world.nodes:
                target = min(n.name for n in world.nodes.values()
                             if getattr(n, "service", None) == fb.target)
            self._fallback_dest = target
        cb = policy.circuit_breaker
        if cb is not None:
            cb.add_listener(_Recorder(self.trace.breakers, caller.name, callee or ""))
        # whether the breaker can have timers to drive (see _arm)
        self._breaker: Any = cb
        self._timed = not isinstance(cb, ConsecutiveFailureBreaker) and not (
            isinstance(cb, CircuitBreaker)
            and not cb.automatic_transition_from_open_to_half_open_enabled
            and cb.max_wait_duration_in_half_open_state == 0)

    # -- entry ---------------------------------------------------------
    def call(self, ctx: Context | None, dest: str, body: Any, kind: str, key: Any,
             trace_id: int | None = None) -> Generator[Event, Any, Message]:
        """Make one call through the policies; return the reply (real or local).

        :func:`simcomm.rpc.call` does the same in its own frame (one
        generator fewer per call).
        """
        c = self.begin(ctx, dest, body, kind, key, trace_id)
        try:
            reply = yield from self._steps[0](c, 1)
        except CutOff as exc:
            reply = self.cut_off(c, exc)
        if ctx is not None and reply.status == "fallback":
            ctx.status = "fallback"
        return reply

    def begin(self, ctx: Context | None, dest: str, body: Any, kind: str, key: Any,
              trace_id: int | None = None) -> _Call:
        """The state of a new call, with its deadline (the edge's or the incoming one,
        whichever is sooner)."""
        if ctx is not None:
            request = ctx.request
            c = _Call(self.caller, ctx, dest, body, kind, key, request.trace_id)
            deadline = request.deadline
        else:
            c = _Call(self.caller, ctx, dest, body, kind, key, trace_id)
            deadline = None
        if self.deadline is not None:
            mine = self.env.now + self.deadline
            if deadline is None or mine < deadline:
                deadline = mine
        if deadline is not None:
            c.deadline = c.until = deadline
        return c

    def cut_off(self, c: _Call, exc: CutOff) -> Message:
        """The reply of a call the deadline cut off (the only limit that gets here)."""
        if exc.scope is not _DEADLINE:  # pragma: no cover - each limit catches its own
            raise exc
        return self._local(c, "deadline_exceeded")

    def _local(self, c: _Call, status: str, body: Any = None) -> Message:
        """A reply made here, never sent (id 0): a policy's verdict."""
        name = self.caller.name
        return Message(0, REPLY, name, name, self.env.now, body, trace_id=c.trace_id,
                       status=status)

    def _wait(self, c: _Call, ev: Event) -> Generator[Event, Any, Any]:
        """Wait for ``ev``, but not past ``c.until`` (then raise CutOff).

        A tie goes to the limit: an event at exactly the limit is late, as
        :meth:`TimeLimiter.timed_out` says.
        """
        until = c.until
        if until == _INF:
            return (yield ev)
        env = self.env
        if env.now >= until:
            raise CutOff(c.scope)
        yield ev | c.timer(env)
        if env.now >= until:
            raise CutOff(c.scope)
        return ev.value

    def _row(self, c: _Call, start: float, n: int, outcome: str, wait: float) -> None:
        if self.trace.enabled:
            self.trace.attempts.append((start, c.trace_id, self.caller.name, c.dest, n,
                                        outcome, wait, self.env.now))

    def _abandon(self, c: _Call, reply: Any, exc: CutOff) -> None:
        """The caller stopped waiting for the reply to request ``c.rid``.

        ``reply`` is ``_CUT`` (the limit's timer fired first: the request is
        already forgotten) or the reply itself, which came in the very
        instant of the limit and is late all the same.
        """
        caller = self.caller
        trace = self.trace
        env = self.env
        if exc.scope.cancel:
            if reply is not _CUT:
                # the reply came in this very instant, too late: nobody takes it
                trace.event(env.now, caller.name, "orphan_reply",
                            f"reply {reply.id} to request {reply.correlation_id}")
            return

        def late(msg: Message) -> None:
            trace.event(env.now, caller.name, "late_reply",
                        f"reply {msg.id} to request {msg.correlation_id} came after the "
                        f"caller stopped waiting")

        if reply is not _CUT:
            late(reply)
            return
        # not cancelled: the abandoned call still takes the reply when it comes
        hold = caller.expect(c.rid)  # type: ignore[attr-defined]
        hold.callbacks.append(lambda e: late(e.value))  # type: ignore[union-attr]
        exc.hold = hold

    # -- the hooks, run by one generator ---------------------------------
    def _hooked(self, group: tuple[_Hook, ...], attempts: str | None, c: _Call,
                i: int) -> Generator[Event, Any, Message]:
        """Enter each hook of ``group`` in turn, run the next step (or, for the
        last group, send the request and wait for the reply), leave the hooks
        in reverse.

        A hook that answers (a short-circuit, a full bulkhead) stops the way
        in; every hook entered sees the outcome on the way out, and may change
        it (a time limit turns its own cut-off into ``timeout``).  Hooks get
        the time as an argument: it is read once on the way in and once on
        the way out.

        When the layer just outside the group is the attempt layer,
        ``attempts`` says so and the group runs it too (one generator fewer):
        ``"retry"`` tries again as :meth:`_retry` does, ``"once"`` records the
        single attempt.
        """
        env = self.env
        trace = self.trace
        rctx = self.policy.retry.context() if attempts == "retry" else None  # type: ignore[union-attr]
        wait = 0.0
        n = 0
        while True:
            n += 1
            tokens: list[Any] = [None] * len(group)   # of the hooks entered, by position
            k = 0                                      # how many were entered
            reply: Message | None = None
            exc: BaseException | None = None
            start = now = env.now
            try:
                for enter, _leave in group:
                    token = enter(c, now)
                    if token.__class__ is _Pause:
                        try:
                            value = yield from self._wait(c, token.event)
                        except (CutOff, simpy.Interrupt):
                            token.abort()
                            raise
                        now = env.now
                        token = token.resume(value)
                    if token.__class__ is Message:
                        reply = token
                        break
                    tokens[k] = token
                    k += 1
                else:
                    if i < self._last:
                        reply = yield from self._steps[i](c, i + 1)
                    else:
                        # -- send the request and wait for its reply, up to the
                        # limit in force (inline: the hot path, one generator
                        # fewer on every call)
                        caller = self.caller
                        ctx = c.ctx
                        fmt = self._format
                        size = None
                        if fmt is not None and c.body is not None:
                            size = c.size
                            if size is None:
                                size = c.size = fmt.size(c.body)
                            if ctx is not None:
                                ctx.debt += fmt.encode_cost(size) * caller.slowdown  # type: ignore[attr-defined]
                        if ctx is not None and ctx.debt > 0:
                            # encoding on the caller's own CPU: not cut short by a limit
                            debt, ctx.debt = ctx.debt, 0.0
                            yield env.timeout(debt)
                        until = c.until
                        if until != _INF and env.now >= until:
                            raise CutOff(c.scope)   # the budget is spent: nothing is sent
                        ev = caller.request(c.dest, c.body, kind=c.kind, key=c.key,
                                            trace_id=c.trace_id, format=fmt, size=size,
                                            deadline=c.deadline)
                        if until == _INF:
                            reply = yield ev
                        else:
                            if c.scope is not self._limit:
                                c.timer(env)   # a deadline: its own timer
                            c.waiting = ev
                            c.rid = ev.request_id  # type: ignore[attr-defined]
                            try:
                                got = yield ev
                            finally:   # a crash of the caller interrupts the wait too
                                c.waiting = None
                            if got is _CUT or env.now >= until:   # a tie: the limit's
                                cut = CutOff(c.scope)
                                self._abandon(c, got, cut)
                                raise cut
                            reply = got
                        if ctx is not None and fmt is not None \
                                and reply.format is not None and reply.body is not None:  # type: ignore[union-attr]
                            ctx.debt += fmt.decode_cost(reply.size) * caller.slowdown  # type: ignore[attr-defined,union-attr]
            except (CutOff, simpy.Interrupt) as e:
                exc = e
            if k:
                now = env.now
                while k:
                    k -= 1
                    leave = group[k][1]
                    if leave is not None:
                        reply, exc = leave(c, tokens[k], reply, exc, now)
            if attempts is None:
                if exc is not None:
                    raise exc
                return reply  # type: ignore[return-value]
            # -- the attempt layer: record it, and maybe try again
            now = env.now
            if exc is not None:
                if exc.__class__ is CutOff and trace.enabled:
                    trace.attempts.append((start, c.trace_id, self.caller.name, c.dest, n,
                                           exc.scope.outcome, wait, now))  # type: ignore[attr-defined]
                raise exc
            assert reply is not None
            status = reply.status
            if trace.enabled:
                trace.attempts.append((start, c.trace_id, self.caller.name, c.dest, n,
                                       status, wait, now))
            if rctx is None:
                return reply
            if status in SUCCESS:
                rctx.on_success(now)
                return reply
            after = rctx.on_error(now, status)
            if after is None:
                return reply
            self.retries += 1
            wait = after
            if after > 0:
                yield from self._wait(c, env.timeout(after))

    def _enter_once(self, c: _Call, now: float) -> float:
        return now

    def _leave_once(self, c: _Call, start: float, reply: Message | None,
                    exc: BaseException | None,
                    now: float) -> tuple[Message | None, BaseException | None]:
        if reply is not None:
            self._row(c, start, 1, reply.status, 0.0)
        elif exc.__class__ is CutOff:
            self._row(c, start, 1, exc.scope.outcome, 0.0)  # type: ignore[union-attr]
        return reply, exc

    def _enter_circuit_breaker(self, c: _Call, now: float) -> float | Message:
        if self._breaker.try_acquire(now):
            return now
        if self._timed:
            self._arm()
        return self._local(c, "short_circuited")

    def _leave_circuit_breaker(self, c: _Call, start: float, reply: Message | None,
                               exc: BaseException | None,
                               now: float) -> tuple[Message | None, BaseException | None]:
        if reply is not None and reply.status in SUCCESS:
            self._breaker.on_success(now, now - start)
        else:   # a failed outcome, a cut-off, or the caller crashed mid-call
            self._breaker.on_error(now, now - start)
        if self._timed:
            self._arm()
        return reply, exc

    def _arm(self) -> None:
        """Make sure a simulation event wakes the breaker at its next timer.

        Only breakers that can have timers (``self._timed``) are asked: a
        Resilience4j breaker with an automatic transition or a max wait in
        half-open, a Hystrix breaker (health snapshots), any other kind.
        """
        t = self.policy.circuit_breaker.next_timer  # type: ignore[union-attr]
        if t is None or (self._armed is not None and self._armed <= t):
            return
        self._armed = t
        ev = self.env.timeout(max(0.0, t - self.env.now))
        ev.callbacks.append(self._tick)

    def _tick(self, _ev: Event) -> None:
        now = self.env.now
        if self._armed is not None and self._armed <= now:
            self._armed = None
        self.policy.circuit_breaker.advance(now)  # type: ignore[union-attr]
        self._arm()

    def _enter_rate_limiter(self, c: _Call, now: float) -> Any:
        rl = self.policy.rate_limiter
        env = self.env
        granted, held = rl.acquire_permission(now)  # type: ignore[union-attr]
        if held > 0:
            # refused or not, the caller is held (Resilience4j's waitForPermission)
            return _Pause(env.timeout(held),
                          lambda _v: None if granted else self._local(c, "rate_limited"),
                          _nothing)
        return None if granted else self._local(c, "rate_limited")

    def _enter_time_limit(self, c: _Call, now: float) -> Any:
        end = now + self._limit_seconds
        if not end < c.until:   # an outer limit comes first (or together): it rules
            return None
        saved = (c.until, c.until_ev, c.scope)
        c.until, c.until_ev, c.scope = end, None, self._limit  # type: ignore[assignment]
        self._due.append((end, c))
        if self._due_at is None:
            self._set_due_timer(end)
        return saved

    def _leave_time_limit(self, c: _Call, saved: Any, reply: Message | None,
                          exc: BaseException | None,
                          now: float) -> tuple[Message | None, BaseException | None]:
        if saved is None:
            return reply, exc
        c.until, c.until_ev, c.scope = saved
        if exc.__class__ is CutOff and exc.scope is self._limit:  # type: ignore[union-attr]
            return self._local(c, "timeout"), None
        return reply, exc

    def _set_due_timer(self, at: float) -> None:
        self._due_at = at
        self.env.timeout(at - self.env.now).callbacks.append(self._limits_due)

    def _limits_due(self, _ev: Event) -> None:
        """The shared time-limit timer: cut the calls whose limit ran out, then set
        the timer for the first call still within its limit.

        Calls that finished inside their limit are dropped as they come up,
        so with replies faster than the limit the timer fires about once per
        limit, not once per call.  A call's entry is live while its limit is
        the one in force (``c.scope`` this edge's, ``c.until`` that end).
        """
        now = self.env.now
        self._due_at = None
        due = self._due
        scope = self._limit
        while due:
            end, c = due[0]
            live = c.scope is scope and c.until == end
            if end <= now:
                due.popleft()
                if live:
                    c.cut()
            elif live:
                self._set_due_timer(end)
                return
            else:
                due.popleft()

    def _enter_thread_pool(self, c: _Call, now: float) -> Any:
        tp = self.policy.bulkhead
        assert isinstance(tp, ThreadPoolBulkhead)
        env = self.env
        verdict = tp.submit(now, c)
        if verdict == REJECTED:
            return self._local(c, "bulkhead_full")
        if verdict != QUEUED:
            return True
        ev = self._wake[c] = Event(env)

        def dequeue() -> None:   # the call gave up while queued
            if tp.cancel(env.now, c):
                del self._wake[c]
            else:                # a thread took it in this very instant
                self._free()

        return _Pause(ev, lambda _v: True, dequeue)

    def _enter_bulkhead(self, c: _Call, now: float) -> Any:
        bh: SemaphoreBulkhead = self.policy.bulkhead  # type: ignore[assignment]
        env = self.env
        verdict = bh.acquire_permission(now, c)
        if verdict == REJECTED:
            return self._local(c, "bulkhead_full")
        if verdict != WAITING:
            return True
        ev = self._wake[c] = Event(env)
        env.timeout(bh.max_wait_duration).callbacks.append(self._expire)

        def give_up() -> None:   # the call gave up while waiting
            if bh.cancel(env.now, c):
                del self._wake[c]
            elif ev.triggered and ev.value:   # the slot came in this very instant
                self._wake_next(bh.release_permission(env.now))

        return _Pause(ev, lambda granted: True if granted else
                      self._local(c, "bulkhead_full"), give_up)

    def _leave_bulkhead(self, c: _Call, _token: Any, reply: Message | None,
                        exc: BaseException | None,
                        now: float) -> tuple[Message | None, BaseException | None]:
        """Give the slot (or thread) back -- or, if the call was cut off while its
        reply is still awaited without cancelling, when that reply comes."""
        if exc is not None and exc.__class__ is CutOff and exc.hold is not None:  # type: ignore[attr-defined]
            _on_reply(exc.hold, lambda _e: self._free())  # type: ignore[attr-defined]
            return reply, exc
        waiter = self.policy.bulkhead.on_complete(now)  # type: ignore[union-attr]
        if waiter is not None:
            self._wake.pop(waiter).succeed(True)
        return reply, exc

    def _free(self) -> None:
        self._wake_next(self.policy.bulkhead.on_complete(self.env.now))  # type: ignore[union-attr]

    def _wake_next(self, waiter: Any) -> None:
        if waiter is not None:
            self._wake.pop(waiter).succeed(True)

    def _expire(self, _ev: Event) -> None:
        for waiter in self.policy.bulkhead.expire(self.env.now):  # type: ignore[union-attr]
            ev = self._wake.pop(waiter, None)
            if ev is not None and not ev.triggered:
                ev.succeed(False)

    # -- the layers that are generators ----------------------------------
    def _retry(self, c: _Call, i: int) -> Generator[Event, Any, Message]:
        env = self.env
        rctx = self.policy.retry.context()  # type: ignore[union-attr]
        wait = 0.0
        n = 0
        step = self._steps[i]
        trace = self.trace
        while True:
            n += 1
            start = env.now
            try:
                reply = yield from step(c, i + 1)
            except CutOff as exc:
                self._row(c, start, n, exc.scope.outcome, wait)
                raise
            status = reply.status
            now = env.now
            if trace.enabled:
                trace.attempts.append((start, c.trace_id, self.caller.name, c.dest, n,
                                       status, wait, now))
            if status in SUCCESS:
                rctx.on_success(now)
                return reply
            after = rctx.on_error(now, status)
            if after is None:
                return reply
            self.retries += 1
            wait = after
            if after > 0:
                yield from self._wait(c, env.timeout(after))

    def _fallback(self, c: _Call, i: int) -> Generator[Event, Any, Message]:
        try:
            reply = yield from self._steps[i](c, i + 1)
        except CutOff as exc:
            if exc.scope is not _DEADLINE:
                raise
            reply = self._local(c, "deadline_exceeded")
        status = reply.status
        fb = self.policy.fallback
        assert fb is not None
        if status == "ok":
            if fb.kind == "cache":
                self._cache, self._cached = reply.body, True
            return reply
        if status == "fallback":
            return reply
        if fb.kind == "value":
            return self._local(c, "fallback", fb.body)
        if fb.kind == "cache":
            return self._local(c, "fallback", self._cache) if self._cached else reply
        if c.ctx is None or self._fallback_dest is None:
            return reply
        from simcomm.rpc.call import call

        other = yield from call(c.ctx, self._fallback_dest, c.body, kind=c.kind, key=c.key)
        if other.status in SUCCESS:
            return self._local(c, "fallback", other.body)
        return reply

    def __repr__(self) -> str:
        return (f"<edge {self.caller.name} → {self.callee}: "
                f"{' ( '.join(self.layers)}>")


def _nothing() -> None:
    """An abort with nothing to undo."""


class _Router(dict):
    """A caller's edges by destination node, found from the node's service on first use."""

    def __init__(self, world: World, caller: Node) -> None:
        super().__init__()
        self.world = world
        self.caller = caller
        self.by_service: dict[str, _Edge] = {}
        self.plain: _Edge | None = None   # deadline only, for unprotected calls

    def __missing__(self, dest: str) -> _Edge | None:
        node = self.world.nodes.get(dest)
        service = getattr(node, "service", None) or dest
        edge = self.by_service.get(service)
        self[dest] = edge
        return edge

    @property
    def edges(self) -> list[_Edge]:
        """Every edge of this caller (the deadline-only one too, if made)."""
        return [*self.by_service.values(), *([self.plain] if self.plain else [])]


def _router(node: Node) -> _Router:
    router = node.outbound
    if router is None:
        router = node.outbound = _Router(node.world, node)
    return router


def plain_edge(node: Node) -> _Edge:
    """The edge for ``node``'s unprotected calls that carry a deadline."""
    router = _router(node)
    if router.plain is None:
        router.plain = _Edge(node.world, node, None, EdgePolicy())
    return router.plain


def install(world: World, callers: list[Node], callee: str,
            policy: EdgePolicy) -> dict[str, EdgePolicy]:
    """Give each caller instance its own copy of ``policy`` on calls to ``callee``."""
    for node in callers:
        router = node.outbound
        if router is not None and callee in router.by_service:
            raise ParamError("callee", callee, f"an edge not protected before: "
                             f"{node.name} → {callee} already is (declare each edge once)")
    copies: dict[str, EdgePolicy] = {}
    for node in callers:
        mine = policy.copy()
        router = _router(node)
        router.by_service[callee] = _Edge(world, node, callee, mine)
        router.clear()   # destinations looked up before this edge existed
        copies[node.name] = mine
    return copies


class _Shedder:
    """An instance's admission check: a permit now, or ``rate_limited``."""

    __slots__ = ("env", "limiter")

    def __init__(self, env: simpy.Environment, limiter: RateLimiter) -> None:
        self.env = env
        self.limiter = limiter

    def __call__(self, msg: Message) -> str | None:
        now = self.env.now
        rl = self.limiter
        if rl.available_permissions(now) >= 1:
            rl.reserve_permission(now)
            return None
        rl.refused += 1
        return "rate_limited"


def install_server(world: World, instances: list[Node],
                   limiter: RateLimiter) -> dict[str, RateLimiter]:
    """Put a copy of ``limiter`` in front of each instance (see ``protect_server``)."""
    import copy

    for inst in instances:
        if getattr(inst, "admission", None) is not None:
            raise ParamError("service", getattr(inst, "service", inst.name),
                             "a service without load shedding yet (declare it once)")
    copies: dict[str, RateLimiter] = {}
    for inst in instances:
        mine = copy.deepcopy(limiter)
        inst.admission = _Shedder(world.env, mine)  # type: ignore[attr-defined]
        copies[inst.name] = mine
    return copies
