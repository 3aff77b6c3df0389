"""Workloads: the users outside the system that send it requests.

* :class:`OpenLoop` -- requests arrive as a Poisson process whatever the
  system does (new users keep coming); the rate can follow a
  :class:`RateSchedule`, e.g. a :func:`spike`.
* :class:`ClosedLoop` -- a fixed population of users, each thinking, then
  sending a request and waiting for its reply before thinking again.

Both record one row per request in the trace: start, end and outcome
(``ok``, ``error``, ``refused``, ``rejected``, ``reset`` from the reply, or
``abandoned`` when the user's patience ran out first).  Requests still
open when the run ends are reported as ``pending``.

A client can send a **mix of endpoints** -- as a mobile app calls
``createOrder`` now and ``getCustomer`` then -- with ``endpoints={"createOrder":
0.5, "getCustomer": 0.5}`` (weights, normalised).  Each request's endpoint
is drawn from the client's own random stream (``client:<name>:endpoints``,
so adding a mix changes no other draw), and travels in the request body
the way an RPC method name does: ``{"endpoint": "createOrder", "body":
<payload>}`` (:func:`request_body`; read it back with :func:`endpoint_of`
and :func:`payload_of`).  The requests table records it in its
``endpoint`` column (None for a single-endpoint client).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import as_real, is_whole
from simcomm.engine.formats import Format, get_format
from simcomm.engine.nodes import Node
from simcomm.engine.randomness import Distribution
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["Client", "ClosedLoop", "OpenLoop", "RateSchedule", "endpoint_of", "payload_of",
           "request_body", "spike"]


class RateSchedule:
    """A piecewise-constant arrival rate: ``[(from_time, rate), ...]``.

    The first step must start at time 0.  Rates are requests per second
    (0 allowed: nobody arrives).
    """

    def __init__(self, steps: Sequence[tuple[float, float]]) -> None:
        shape = "a list of (time, rate) pairs starting at time 0"
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
            raise ParamError("steps", steps, shape)
        pairs = []
        for step in steps:
            if isinstance(step, (str, bytes)) or not isinstance(step, Sequence) \
                    or len(step) != 2:
                raise ParamError("steps", step, shape)
            t, r = as_real(step[0]), as_real(step[1])
            if t is None or not t >= 0 or math.isinf(t):
                raise ParamError("steps", step, "times: finite seconds >= 0")
            if r is None or not r >= 0 or math.isinf(r):
                raise ParamError("rate", step[1], "requests per second >= 0")
            pairs.append((t, r))
        steps = pairs
        if not steps or steps[0][0] != 0.0:
            raise ParamError("steps", steps, shape)
        for (t0, _), (t1, _) in itertools.pairwise(steps):
            if t1 <= t0:
                raise ParamError("steps", steps, "times in increasing order")
        self.times = [t for t, _ in steps]
        self.rates = [r for _, r in steps]

    def rate_at(self, t: float) -> float:
        return self.rates[bisect.bisect_right(self.times, t) - 1]

    def next_change(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else math.inf

    def mean_rate(self, until: float) -> float:
        """The average rate over ``[0, until]``."""
        total = 0.0
        for i, (t, r) in enumerate(zip(self.times, self.rates, strict=True)):
            end = self.times[i + 1] if i + 1 < len(self.times) else until
            total += r * max(0.0, min(end, until) - t)
        return total / until


def spike(base: float, peak: float, start: float, duration: float) -> RateSchedule:
    """``base`` requests/s, ``peak`` from ``start`` for ``duration`` s, then ``base``."""
    for name, value, ok, allowed in (
        ("start", start, lambda v: v >= 0, "a time in seconds >= 0"),
        ("duration", duration, lambda v: v > 0, "seconds > 0"),
    ):
        number = as_real(value)
        if number is None or not ok(number) or math.isinf(number):
            raise ParamError(name, value, allowed)
    start, duration = float(start), float(duration)
    steps = [(0.0, base)] if start > 0 else []
    return RateSchedule([*steps, (start, peak), (start + duration, base)])


def request_body(endpoint: str, payload: Any = None) -> dict[str, Any]:
    """The body of a request to ``endpoint``: ``{"endpoint": ..., "body": payload}``.

    Like an RPC method name (JSON-RPC's ``method``, gRPC's path), the
    endpoint travels with the request, so it is counted in the message's
    size in every wire format.
    """
    return {"endpoint": endpoint, "body": payload}


def endpoint_of(body: Any) -> str | None:
    """The endpoint a request body names (see :func:`request_body`), or None."""
    if isinstance(body, dict) and isinstance(body.get("endpoint"), str):
        return body["endpoint"]
    return None


def payload_of(body: Any) -> Any:
    """What a request body carries for its endpoint: the payload of a
    :func:`request_body`, or the body itself if it names no endpoint."""
    return body["body"] if endpoint_of(body) is not None else body


def _endpoint_mix(endpoints: Any, bodies: Any, body: Any
                  ) -> tuple[list[str], list[float], dict[str, Any]]:
    """``endpoints`` checked: names, cumulative weights and each one's request body."""
    allowed = ('a mapping of endpoint names to weights > 0, e.g. {"createOrder": 0.5, '
               '"getCustomer": 0.5}, or None for a single endpoint')
    if not isinstance(endpoints, Mapping) or not endpoints:
        raise ParamError("endpoints", endpoints, allowed)
    names, cumulative, total = [], [], 0.0
    for name, weight in endpoints.items():
        if not isinstance(name, str) or not name:
            raise ParamError("endpoints", endpoints, allowed)
        w = as_real(weight)
        if w is None or not 0 < w < math.inf:
            raise ParamError("endpoints", endpoints,
                             f"weights > 0 and finite ({name!r}: {weight!r})")
        total += w
        names.append(name)
        cumulative.append(total)
    if bodies is None:
        bodies = {}
    elif not isinstance(bodies, Mapping) or not set(bodies) <= set(names):
        raise ParamError("bodies", bodies,
                         "None, or a mapping from some of the endpoints ("
                         + ", ".join(names) + ") to their payloads")
    built = {name: request_body(name, bodies.get(name, body)) for name in names}
    return names, [c / total for c in cumulative], built


class Client(Node):
    """A node that sends requests to ``target`` and records their outcome: the base of
    :class:`OpenLoop` and :class:`ClosedLoop`, and what a Result counts as a client.

    With ``endpoints`` (a mapping name -> weight) each request goes to one
    endpoint of ``target``, drawn in proportion to the weights; its body
    is :func:`request_body` of the endpoint and of ``bodies[endpoint]``
    (default: ``body``).
    """

    def __init__(self, world: World, name: str, target: str, *, body: Any = None,
                 patience: float | None = None, format: Format | str | None = None,
                 endpoints: Mapping[str, float] | None = None,
                 bodies: Mapping[str, Any] | None = None) -> None:
        fmt = get_format(format) if format is not None else None
        if patience is not None:
            wait = as_real(patience)
            if wait is None or not wait > 0:
                raise ParamError("patience", patience, "seconds > 0, or None to wait forever")
            patience = None if math.isinf(wait) else wait  # inf: waits forever too
        mix = None
        if endpoints is not None:
            mix = _endpoint_mix(endpoints, bodies, body)
        elif bodies is not None:
            raise ParamError("bodies", bodies, "None without endpoints (use body)")
        super().__init__(world, name)  # registers the node: check everything first
        self.format = fmt
        self.target = target
        self.body = body
        self.patience = patience
        self.open: dict[int, float] = {}  # request id -> start time
        self.endpoints: tuple[str, ...] = ()
        self._endpoint: dict[int, str] = {}  # request id -> endpoint, with a mix
        if mix is not None:
            self.endpoints = tuple(mix[0])
            self._cumulative = mix[1]
            self._bodies = mix[2]
            self._endpoint_rng = world.stream(f"client:{name}:endpoints")

    def _issue(self, wait: bool = True) -> Event | None:
        """Send one request.  With ``wait``, return an event that fires when it
        has finished (a closed-loop user waits on it); open-loop arrivals
        don't wait, and skip making the event."""
        rid = self.world.next_request_id()
        self.open[rid] = self.env.now
        body = self.body
        if self.endpoints:
            i = bisect.bisect_right(self._cumulative, self._endpoint_rng.random())
            endpoint = self.endpoints[min(i, len(self.endpoints) - 1)]
            self._endpoint[rid] = endpoint
            body = self._bodies[endpoint]
        ev = self.request(self.target, body, trace_id=rid, format=self.format)
        done = Event(self.env) if wait else None
        ev.callbacks.append(lambda e: self._finish(rid, e.value.status, done))
        if self.patience is not None:
            timer = self.env.timeout(self.patience)
            request_id: int = ev.request_id  # type: ignore[attr-defined]
            timer.callbacks.append(lambda _e: self._give_up(rid, request_id, done))
        return done

    def _finish(self, rid: int, outcome: str, done: Event | None) -> None:
        start = self.open.pop(rid, None)
        if start is None:
            return  # already abandoned
        endpoint = self._endpoint.pop(rid, None) if self.endpoints else None
        self.world.trace.requests.append((rid, self.name, self.target, start, self.env.now,
                                          outcome, endpoint))
        if done is not None:
            done.succeed(outcome)

    def _give_up(self, rid: int, request_id: int, done: Event | None) -> None:
        if rid in self.open:
            self.forget(request_id)
            self._finish(rid, "abandoned", done)

    def pending(self) -> list[tuple]:
        """Rows for the requests still open (outcome ``pending``, no end)."""
        return [(rid, self.name, self.target, start, math.nan, "pending",
                 self._endpoint.get(rid))
                for rid, start in self.open.items()]


class OpenLoop(Client):
    """Poisson arrivals at ``rate`` requests/s (a number or a RateSchedule)."""

    def __init__(self, world: World, name: str, target: str, rate: float | RateSchedule, *,
                 body: Any = None, patience: float | None = None,
                 format: Format | str | None = None,
                 endpoints: Mapping[str, float] | None = None,
                 bodies: Mapping[str, Any] | None = None) -> None:
        if not isinstance(rate, RateSchedule):
            per_second = as_real(rate)
            if per_second is None or not per_second > 0 or math.isinf(per_second):
                raise ParamError("rate", rate, "requests per second > 0 (finite)")
            rate = RateSchedule([(0.0, per_second)])
        super().__init__(world, name, target, body=body, patience=patience, format=format,
                         endpoints=endpoints, bodies=bodies)
        self.schedule = rate
        self._rng = world.stream(f"client:{name}:arrivals")
        self.env.process(self._arrivals())

    def _arrivals(self) -> Generator[Event, Any, None]:
        env = self.env
        rng = self._rng
        sched = self.schedule
        if len(sched.rates) == 1:  # the common case, kept tight
            rate = sched.rates[0]
            timeout = env.timeout
            issue = self._issue
            while True:
                yield timeout(rng.expovariate(rate))
                issue(False)
        while True:
            rate = sched.rate_at(env.now)
            change = sched.next_change(env.now)
            gap = rng.expovariate(rate) if rate > 0 else math.inf
            if env.now + gap >= change:
                # memoryless: restart the draw at the rate change
                yield env.timeout(change - env.now)
                continue
            yield env.timeout(gap)
            self._issue(False)


class ClosedLoop(Client):
    """``users`` users, each: think (``think_time``), request, wait, repeat."""

    def __init__(self, world: World, name: str, target: str, users: int,
                 think_time: Distribution, *, body: Any = None,
                 patience: float | None = None, format: Format | str | None = None,
                 endpoints: Mapping[str, float] | None = None,
                 bodies: Mapping[str, Any] | None = None) -> None:
        if not is_whole(users) or users < 1:
            raise ParamError("users", users, "a whole number >= 1")
        users = int(users)
        if not isinstance(think_time, Distribution):
            raise ParamError("think_time", think_time, "a Distribution (seconds)")
        super().__init__(world, name, target, body=body, patience=patience, format=format,
                         endpoints=endpoints, bodies=bodies)
        self.users = users
        self.think_time = think_time
        for u in range(users):
            self.env.process(self._user(world.stream(f"client:{name}:user{u}")))

    def _user(self, rng) -> Generator[Event, Any, None]:
        while True:
            yield self.env.timeout(self.think_time.sample(rng))
            done = self._issue()
            assert done is not None  # a user waits for its answer
            yield done
