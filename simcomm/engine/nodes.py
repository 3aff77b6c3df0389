"""Nodes: anything with a network address.  Instances serve requests.

:class:`Node` is the base: it can send messages, make requests and match
replies to them by correlation id, and it can be up or down.  Clients,
registries, brokers and gateways are all nodes.

:class:`Instance` is one running copy of a service: a pool of N concurrent
workers that take requests from a FIFO queue (bounded or not), run the
service's *handler* for each and send the reply.  A handler is a generator
function ``handler(ctx, request)`` that yields SimPy events -- usually
``ctx.work()`` for CPU time and ``yield from simcomm.rpc.call(ctx, ...)``
for calls to other services -- and returns the reply body, or raises
:class:`ServiceError`.

The engine knows nothing of how calls are made or protected (it imports
nothing above it): the call path lives in :mod:`simcomm.rpc`, the policies
in :mod:`simcomm.resilience`.  The layers above plug in through three
attributes the engine only passes along: ``Node.outbound`` (how this node's
calls are wrapped, set by ``simcomm.resilience.protect``),
``Instance.admission`` (a check on each arriving request, set by
``simcomm.resilience.protect_server``) and ``Context.status`` (the status an
answer goes out with, ``fallback`` when it was degraded).

Faults an instance can suffer (see :mod:`simcomm.engine.faults`):

* **crash** -- the process dies: queued and in-flight requests are lost and
  their callers get a ``reset`` (the peer's TCP stack resets the
  connections, as when a real process dies); while down, new requests are
  refused (``refused``, like a closed port); it restarts after a repair
  time with an empty queue.
* **hang** -- the process accepts requests and never replies: each worker
  that picks one up stays stuck on it.  When the hang ends (the process is
  restarted by a watchdog) the stuck requests' connections are reset: their
  callers get a ``reset`` reply, and the workers carry on.
* **slowdown** -- every unit of work takes ``factor`` times longer.
* **error rate** -- each request fails with that probability (an error
  reply after the work is done).

An instance's life may also have a beginning and an end other than the
run's (service discovery's churn, :mod:`simcomm.discovery.churn`): created
with ``start_at`` it is **launched** down (event ``launch``) and its process
**starts** then (event ``start``); :meth:`Instance.stop` ends it cleanly
and for good (event ``stop``).

When faults overlap, the events table (``Result.events``) never shows a
state the instance was not in:

* a **hang that starts while the instance is down does not happen** (there
  is no process to hang); it is recorded as ``hang_skipped`` with detail
  ``instance down``, and its scheduled end does nothing -- in particular it
  cannot end a later hang;
* a **crash during a hang ends the hang**: an ``unhang`` event (detail
  ``ended by crash``) comes just before the ``crash`` event, and the
  instance restarts healthy; the hang's scheduled end then does nothing;
* a hang that starts while the instance already hangs is recorded as
  ``hang_skipped`` (detail ``already hung``): the first hang goes on until
  its own end;
* a crash while the instance is already down is recorded as
  ``crash_skipped`` (detail ``instance down``) and schedules no restart.

Every instance keeps the integral of its busy-worker count over time
(:meth:`Instance.busy_seconds`), so its utilisation is exact whether or not
the run was traced.  Workers that hold a request during a hang count as
busy: they are taken, even though they do no work.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import Event

from simcomm._checks import as_real, is_whole
from simcomm.engine.formats import Format, get_format
from simcomm.engine.messages import COMMAND, CONTROL, REPLY, Message
from simcomm.engine.randomness import Constant, Distribution
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["Context", "Handler", "Instance", "Node", "Service", "ServiceError", "serve"]

# what the caller sees when the network or the peer refuses a request
_REFUSAL_STATUS = {"node_down": "refused", "rejected": "rejected"}


class ServiceError(Exception):
    """Raised by a handler to answer with an error reply (like HTTP 5xx).

    ``status`` is the reply's status: ``"error"`` by default, or the outcome
    that ended the request when a handler passes a policy's verdict on (a
    gateway whose call timed out answers ``"timeout"``, as an HTTP gateway
    answers 504).  It cannot be ``"ok"`` or ``"fallback"``: those are answers.
    """

    def __init__(self, *args: object, status: str = "error") -> None:
        if not isinstance(status, str) or not status or status in ("ok", "fallback"):
            raise ParamError("status", status, "a failure outcome such as 'error' or 'timeout'")
        super().__init__(*args)
        self.status = status


class Node:
    """A network endpoint that can send, request and receive messages.

    ``fifo`` (a class attribute) says that this kind of node talks to each
    peer over one connection, so the network keeps the order of what it
    sends and receives (see :mod:`simcomm.engine.network`).  Plain nodes do
    not: their requests may overtake each other on a jittery link.
    """

    fifo: bool = False

    def __init__(self, world: World, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ParamError("name", name, "a non-empty string")
        self.world = world
        self.env = world.env
        self.name = name
        self.up = True
        self._network = world.network
        self._pending: dict[int, Event] = {}
        #: How this node's calls are wrapped, keyed by destination: set by the
        #: layers above (``simcomm.resilience.protect``); None = plain calls.
        #: The engine never looks inside.
        self.outbound: Any = None
        world.add(self)

    # -- sending -------------------------------------------------------
    def message(self, dest: str, body: Any = None, *, kind: str = COMMAND,
                reply_to: str | None = None, correlation_id: int | None = None,
                key: Any = None, trace_id: int | None = None, status: str = "ok",
                format: Format | None = None, size: int | None = None) -> Message:
        """A new message from this node with the next id."""
        return Message(self.world.next_message_id(), kind, self.name, dest, self.env.now,
                       body, correlation_id=correlation_id, reply_to=reply_to, key=key,
                       trace_id=trace_id, status=status, format=format, size=size)

    def send(self, msg: Message) -> None:
        self._network.send(msg)

    def request(self, dest: str, body: Any = None, *, kind: str = COMMAND,
                key: Any = None, trace_id: int | None = None,
                format: Format | None = None, size: int | None = None,
                deadline: float | None = None) -> Event:
        """Send a request to ``dest``; the event fires with the reply Message.

        The reply is matched by correlation id (the request's own id, which
        the returned event carries as ``request_id``).  The event never
        fires if no reply comes: wrap it with a policy to bound the wait.
        ``deadline`` (absolute simulated time) goes in the request's header
        for the callee's own calls to respect.
        """
        msg = Message(self.world.next_message_id(), kind, self.name, dest, self.env.now,
                      body, reply_to=self.name, key=key, trace_id=trace_id,
                      format=format, size=size, deadline=deadline)
        ev = Event(self.env)
        ev.request_id = msg.id  # type: ignore[attr-defined]
        self._pending[msg.id] = ev
        self._network.send(msg)
        return ev

    def forget(self, request_id: int) -> None:
        """Stop waiting for the reply to ``request_id`` (a late reply is an orphan)."""
        self._pending.pop(request_id, None)

    def expect(self, request_id: int) -> Event:
        """A fresh event for the reply to ``request_id``, sent earlier.

        It replaces whatever waited for that reply before (so the old event
        can be fired with something else, e.g. a time limit's verdict): the
        reply, when it comes, fires this one instead of being an orphan.
        """
        ev = Event(self.env)
        self._pending[request_id] = ev
        return ev

    def reply(self, request: Message, body: Any = None, status: str = "ok",
              format: Format | None = None) -> None:
        """Answer ``request`` with a reply carrying its correlation id."""
        self._network.send(Message(
            self.world.next_message_id(), REPLY, self.name,
            request.reply_to,  # type: ignore[arg-type]  # only requests with reply_to are answered
            self.env.now, body, correlation_id=request.id, trace_id=request.trace_id,
            status=status, format=format))

    # -- receiving -----------------------------------------------------
    def accept(self, msg: Message) -> str | None:
        """Admission check on arrival: a drop reason, or None to accept."""
        return None

    def receive(self, msg: Message) -> None:
        """A message has been delivered to this node."""
        if msg.kind == REPLY:
            ev = self._pending.pop(msg.correlation_id, None)  # type: ignore[arg-type]
            if ev is None:
                self.world.trace.event(self.env.now, self.name, "orphan_reply",
                                       f"reply {msg.id} to request {msg.correlation_id}")
            else:
                ev.succeed(msg)
        else:
            self.handle(msg)

    def handle(self, msg: Message) -> None:
        """A request, command, event or document arrived (override)."""
        self.world.trace.event(self.env.now, self.name, "unhandled", f"message {msg.id}")

    def refuse(self, msg: Message, reason: str) -> None:
        """Tell the caller its request never got in (closed port, full queue)."""
        self.reply(msg, None, _REFUSAL_STATUS.get(reason, reason))


Handler = Callable[["Context", Message], Generator[Event, Any, Any]]


def serve(ctx: Context, request: Message) -> Generator[Event, Any, Any]:
    """The default handler: one unit of work, then an empty reply."""
    yield ctx.work()
    return None


class Context:
    """What a handler sees while it serves one request.

    CPU time for decoding and encoding messages is owed as ``debt`` and paid
    with the next unit of work, call or reply, so that coding costs take no
    extra simulation events of their own.

    ``status`` is the status the answer goes out with when the handler
    returns normally: ``"ok"``, or ``"fallback"`` once a call made for this
    request was answered by a fallback (``simcomm.rpc.call`` sets it), so
    that a degraded answer stays visible all the way back to the user.  A
    handler may set it back to ``"ok"`` if it does not count the answer as
    degraded.
    """

    __slots__ = ("debt", "instance", "request", "status")

    def __init__(self, instance: Instance, request: Message, debt: float = 0.0) -> None:
        self.instance = instance
        self.request = request
        self.debt = debt
        self.status = "ok"

    @property
    def env(self) -> simpy.Environment:
        return self.instance.env

    @property
    def now(self) -> float:
        return self.instance.env.now

    @property
    def deadline(self) -> float | None:
        """The request's deadline (absolute simulated time), if its caller set one."""
        return self.request.deadline

    def work(self, duration: float | None = None) -> Event:
        """CPU time on this worker: a service-time draw, or ``duration``.

        Either is stretched by the instance's current slowdown factor.
        """
        inst = self.instance
        if duration is None:
            duration = inst.service_time.sample(inst.rng)
        debt, self.debt = self.debt, 0.0
        return inst.env.timeout(duration * inst.slowdown + debt)


class Instance(Node):
    """One instance of a service: ``workers`` concurrent workers and a queue.

    ``queue_capacity`` bounds the requests waiting for a worker (``None``:
    unbounded); a request that finds the queue full is rejected and its
    caller gets a ``rejected`` reply at once.

    ``arrivals`` counts the requests that reached the instance while it was
    up (accepted or turned away at the door), which is the load its callers
    put on it, retries included -- application requests only: protocol
    traffic (``control`` messages: a registry's registrations and queries, a
    health probe) is served too but not counted.  ``admission``, if set by a layer above
    (server-side load shedding), is asked about each arriving request before
    the queue is: a drop reason (the caller's reply status) or None.
    """

    def __init__(self, world: World, name: str, *, workers: int = 1,
                 service_time: Distribution | float = 0.0,
                 queue_capacity: int | None = None, handler: Handler = serve,
                 format: Format | str | None = None, service: str | None = None,
                 start_at: float | None = None) -> None:
        if not is_whole(workers) or workers < 1:
            raise ParamError("workers", workers, "a whole number >= 1")
        workers = int(workers)
        if queue_capacity is not None and (not is_whole(queue_capacity) or queue_capacity < 0):
            raise ParamError("queue_capacity", queue_capacity, "a whole number >= 0, or None")
        queue_capacity = None if queue_capacity is None else int(queue_capacity)
        if not isinstance(service_time, Distribution):
            service_time = Constant(service_time)
        fmt = get_format(format) if format is not None else None
        if start_at is not None:
            when = as_real(start_at)
            if when is None or not when >= world.env.now or math.isinf(when):
                raise ParamError("start_at", start_at,
                                 f"a finite time in seconds >= now ({world.env.now:g}), or None")
            start_at = when
        super().__init__(world, name)  # registers the node: check everything first
        self.service = service or name
        self.workers = workers
        self.service_time = service_time
        self.queue_capacity = queue_capacity
        self.handler = handler
        self.format = fmt
        self.rng = world.stream(f"instance:{name}:service-time")
        self._error_rng = world.stream(f"instance:{name}:errors")
        self.queue: deque[Message] = deque()
        self._idle: deque[tuple[int, Event]] = deque()  # (worker id, wake-up event)
        self._current: dict[int, Message] = {}
        self._procs: list[simpy.Process] = []
        self.busy = 0
        # sum of the end times minus the start times of every busy stretch
        # of every worker: with ``busy`` it gives the busy-time integral in
        # one float operation per change (see busy_seconds)
        self._busy_area = 0.0
        self.slowdown = 1.0
        self.error_rate = 0.0
        self.hung = False
        self._unhang: Event | None = None
        self.arrivals = 0
        self.admission: Callable[[Message], str | None] | None = None
        self._record = world.trace.pools.append if world.trace.enabled else None
        #: True once :meth:`stop` ended the process for good
        self.stopped = False
        #: functions called as ``fn(event)`` when the process starts, restarts,
        #: crashes or stops (``start``, ``restart``, ``crash``, ``stop``): how an
        #: agent on the same machine watches it without polling (a kubelet's PLEG)
        self.watchers: list[Callable[[str], None]] = []
        if start_at is None:
            self._start_workers()
        else:
            # a process being launched: down (its port closed) until it starts
            self.up = False
            world.trace.event(world.env.now, name, "launch", f"starts at {start_at:g}")
            world.at(start_at, self._start)

    def _start(self) -> None:
        """The launched process starts (see ``start_at``)."""
        if self.up or self.stopped:
            return
        self.up = True
        self.world.trace.event(self.env.now, self.name, "start", "")
        self._start_workers()
        for fn in self.watchers:
            fn("start")

    def _start_workers(self) -> None:
        self._procs = [self.env.process(self._worker(i)) for i in range(self.workers)]

    def _log_pool(self) -> None:
        if self._record is not None:
            self._record((self.env.now, self.name, self.busy, len(self.queue)))

    def busy_seconds(self, until: float) -> float:
        """Worker-seconds spent busy from time 0 to ``until``.

        The integral of the busy-worker count, kept as the run goes (a
        worker's stretch adds its end time and subtracts its start time), so
        it is exact with ``trace=False`` too.  Divided by ``workers * until``
        it is the instance's utilisation.  ``until`` must not be before the
        present (``world.now``): the integral is kept for the run so far,
        not as a history; a later time assumes the present count holds.
        A time short of the present by rounding only (a run that went in
        slices ends an ulp or so away from its ``until``) is accepted.
        """
        now = self.env.now
        if not until >= now - 1e-9 * max(1.0, now):
            raise ParamError("until", until, f"a time >= now ({now:g})")
        return self._busy_area + self.busy * until

    # -- arrival -------------------------------------------------------
    def accept(self, msg: Message) -> str | None:
        kind = msg.kind
        if kind == REPLY:
            return None
        if kind != CONTROL:
            self.arrivals += 1
        if self.admission is not None:
            reason = self.admission(msg)
            if reason:
                return reason
        if (self.queue_capacity is not None and not self._idle
                and len(self.queue) >= self.queue_capacity):
            return "rejected"
        return None

    def handle(self, msg: Message) -> None:
        if self._idle:
            # the worker owns the request from the hand-over on, so that a
            # crash before it resumes still resets the caller's connection
            wid, ev = self._idle.popleft()
            self._current[wid] = msg
            ev.succeed(msg)
        else:
            self.queue.append(msg)
            self._log_pool()

    # -- the workers ---------------------------------------------------
    def _worker(self, wid: int) -> Generator[Event, Any, None]:
        env = self.env
        queue = self.queue
        idle = self._idle
        current = self._current
        ev: Event | None = None  # the wake-up event while idle
        try:
            while True:
                if queue:
                    msg = queue.popleft()
                else:
                    ev = Event(env)
                    idle.append((wid, ev))
                    msg = yield ev
                    ev = None
                self._busy_area -= env.now
                self.busy += 1
                self._log_pool()
                current[wid] = msg
                if self.hung:
                    yield from self._stuck(msg)
                else:
                    fmt = self.format
                    ctx = Context(self, msg)
                    if fmt is not None and msg.format is not None:
                        ctx.debt = fmt.decode_cost(msg.size) * self.slowdown
                    try:
                        body = yield from self.handler(ctx, msg)
                        status = ctx.status
                    except ServiceError as exc:
                        status, body = exc.status, str(exc)
                    if self.error_rate and self._error_rng.random() < self.error_rate:
                        status, body = "error", "injected error"
                    if fmt is not None and body is not None:
                        ctx.debt += fmt.encode_cost(fmt.size(body)) * self.slowdown
                    if ctx.debt > 0:
                        yield env.timeout(ctx.debt)
                    if self.hung:
                        yield from self._stuck(msg)
                    else:
                        self.reply(msg, body, status, fmt)
                del current[wid]
                self._busy_area += env.now
                self.busy -= 1
                self._log_pool()
        except simpy.Interrupt:
            # killed while idle: take the wake-up call out of the idle list
            # (a crash before the worker first ran clears the list too early)
            if ev is not None and (wid, ev) in idle:
                idle.remove((wid, ev))
            return

    def _stuck(self, msg: Message) -> Generator[Event, Any, None]:
        """Hold ``msg`` until the hang ends, then reset its connection.

        A hang ends the way a real one does: the process is restarted (by a
        watchdog or an operator), so the connections it held are reset and
        the callers learn of it with a ``reset`` reply.
        """
        assert self._unhang is not None
        yield self._unhang
        self.world.trace.event(self.env.now, self.name, "abandoned",
                               f"request {msg.id} held during a hang")
        if msg.reply_to is not None:
            self.reply(msg, None, "reset")

    # -- faults --------------------------------------------------------
    def crash(self, repair_after: float | None = None) -> None:
        """Kill the process now; restart after ``repair_after`` seconds.

        A crash during a hang ends the hang first (an ``unhang`` event,
        ``ended by crash``); a crash while already down is recorded as
        ``crash_skipped`` and changes nothing (see the module docstring).
        """
        trace = self.world.trace
        if not self.up:
            trace.event(self.env.now, self.name, "crash_skipped", "instance down")
            return
        self._die("crash",
                  f"restart after {repair_after:g}" if repair_after is not None else "")
        if repair_after is not None:
            self.world.at(self.env.now + repair_after, self.restart)

    def stop(self) -> None:
        """End the process cleanly and for good (a graceful shutdown's last step).

        Whatever is still queued or being served is reset, as when a real
        process exits with open connections; a caller that drained its
        traffic away first (see :mod:`simcomm.discovery.churn`) loses
        nothing.  The instance never restarts: ``stopped`` is True and a
        scheduled restart does nothing.  Stopping a down instance only
        marks it stopped (event ``stop``, detail ``already down``).
        """
        if self.stopped:
            return
        self.stopped = True
        if not self.up:
            self.world.trace.event(self.env.now, self.name, "stop", "already down")
            return
        self._die("stop", "")

    def _die(self, event: str, detail: str) -> None:
        """The process ends now (a crash or a stop): workers die, queued and
        in-flight requests are reset, waits for replies are forgotten."""
        trace = self.world.trace
        if self.hung:
            # the stuck workers die with the process below: they are not
            # woken, so nobody is reset twice
            self.hung = False
            self._unhang = None
            trace.event(self.env.now, self.name, "unhang", f"ended by {event}")
        self.up = False
        trace.event(self.env.now, self.name, event, detail)
        for proc in self._procs:
            if proc.is_alive:
                proc.interrupt("crash")
        self._procs = []
        lost = list(self._current.values()) + list(self.queue)
        self.queue.clear()
        self._idle.clear()
        self._current.clear()
        self._pending.clear()
        self._busy_area += self.busy * self.env.now  # every busy stretch ends now
        self.busy = 0
        self._log_pool()
        for msg in lost:
            if msg.reply_to is not None:
                self.reply(msg, None, "reset")
        for fn in self.watchers:
            fn(event)

    def restart(self) -> None:
        """Start again with an empty queue and fresh workers (not after :meth:`stop`)."""
        if self.up or self.stopped:
            return
        self.up = True
        self.world.trace.event(self.env.now, self.name, "restart", "")
        self._start_workers()
        for fn in self.watchers:
            fn("restart")

    def hang(self) -> Event | None:
        """Stop replying (see the module docstring).

        Returns a token for :meth:`unhang`, or ``None`` when the hang does
        not happen because the instance is down or already hangs (recorded
        as ``hang_skipped``).
        """
        if not self.up or self.hung:
            self.world.trace.event(self.env.now, self.name, "hang_skipped",
                                   "instance down" if not self.up else "already hung")
            return None
        self.hung = True
        self._unhang = Event(self.env)
        self.world.trace.event(self.env.now, self.name, "hang", "")
        return self._unhang

    def unhang(self, token: Event | None = None) -> None:
        """End a hang: stuck requests are reset and work resumes.

        With ``token`` (what :meth:`hang` returned) only that hang ends: a
        hang that was skipped, or already ended by a crash, cannot end a
        later one.  Without it, whatever hang is on ends.
        """
        if not self.hung or (token is not None and token is not self._unhang):
            return
        self.hung = False
        ev, self._unhang = self._unhang, None
        self.world.trace.event(self.env.now, self.name, "unhang", "")
        if ev is not None:
            ev.succeed()

    def slow_down(self, factor: float) -> None:
        """Make every unit of work ``factor`` times longer (1 = normal)."""
        if not factor > 0:
            raise ParamError("factor", factor, "a number > 0")
        self.slowdown = float(factor)
        self.world.trace.event(self.env.now, self.name, "slowdown", f"x{factor:g}")

    def set_error_rate(self, rate: float) -> None:
        """Fail each request with probability ``rate``."""
        if not 0.0 <= rate <= 1.0:
            raise ParamError("error_rate", rate, "a probability from 0 to 1")
        self.error_rate = float(rate)
        self.world.trace.event(self.env.now, self.name, "error_rate", f"{rate:g}")


class Service:
    """A named service and its instances ``{name}-1`` ... ``{name}-N``."""

    def __init__(self, world: World, name: str, *, instances: int = 1, **instance_args: Any):
        if not is_whole(instances) or instances < 1:
            raise ParamError("instances", instances, "a whole number >= 1")
        instances = int(instances)
        self.name = name
        self.instances = [Instance(world, f"{name}-{i}", service=name, **instance_args)
                          for i in range(1, instances + 1)]

    def __getitem__(self, i: int) -> Instance:
        return self.instances[i]

    def __len__(self) -> int:
        return len(self.instances)
