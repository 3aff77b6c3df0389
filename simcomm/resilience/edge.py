"""Policies declared on an edge: what protects the calls from one service to another.

An :class:`EdgePolicy` bundles the pure policies of this package (a time
limit, a bulkhead, a circuit breaker, a retry, a rate limiter, a fallback, a
deadline) and the order they wrap a call in; :func:`protect` declares it
once for every call from one service to another; :func:`protect_server`
puts a rate limiter in front of a service (load shedding).  The glue that
turns them into SimPy events lives above the engine, in
:mod:`simcomm.rpc.policies`; this module itself imports no SimPy, so the
policies stay usable without a World.

The order is Resilience4j's by default (its documented decoration order,
outermost first)::

    Retry ( CircuitBreaker ( RateLimiter ( TimeLimiter ( Bulkhead ( call ) ) ) ) )

with the fallback around all of them and the deadline around that.  Any
order of the five (and of the fallback) may be given instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real, is_real
from simcomm.errors import ParamError
from simcomm.resilience.breakers import Breaker
from simcomm.resilience.bulkhead import SemaphoreBulkhead, ThreadPoolBulkhead
from simcomm.resilience.ratelimiter import RateLimiter
from simcomm.resilience.retry import Retry
from simcomm.resilience.timelimiter import TimeLimiter

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["DEFAULT_ORDER", "POLICY_NAMES", "EdgePolicy", "Fallback", "protect",
           "protect_server"]

#: Resilience4j's decoration order, outermost first (the fallback goes around it).
DEFAULT_ORDER = ("retry", "circuit_breaker", "rate_limiter", "time_limit", "bulkhead")

#: Every name ``EdgePolicy.order`` may hold.
POLICY_NAMES = (*DEFAULT_ORDER, "fallback")


class Fallback:
    """What a failed call answers instead (*Microservices Patterns* §3.2.3,
    "recovering from an unavailable service").

    Three kinds, made by the class methods:

    * :meth:`value` -- a fixed body (a default, an empty list, "unknown");
    * :meth:`cache` -- the body of the last ``ok`` reply on that edge (of
      that caller instance); with none yet, the original failure stands;
    * :meth:`service` -- call another service (a node name, or a service
      name: its first instance) with the same body; if that call does not
      answer ``ok`` (or ``fallback``) either, the original failure stands.

    A call answered by a fallback ends ``fallback``, not ``ok``, and so does
    the request it served (the answer is degraded), so that availability
    with fallbacks and true success can both be told apart.  Every failed
    outcome falls back -- Resilience4j's fallbacks catch every exception by
    default -- including ``short_circuited`` and ``bulkhead_full``.
    """

    __slots__ = ("body", "kind", "target")

    def __init__(self, kind: str, body: Any = None, target: str | None = None) -> None:
        if kind not in ("value", "cache", "service"):
            raise ParamError("kind", kind, "'value', 'cache' or 'service' (use Fallback.value(), "
                                           "Fallback.cache() or Fallback.service())")
        if kind == "service" and (not isinstance(target, str) or not target):
            raise ParamError("service", target, "the name of a node or service to call")
        self.kind = kind
        self.body = body
        self.target = target

    @classmethod
    def value(cls, body: Any) -> Fallback:
        """Answer ``body``."""
        return cls("value", body=body)

    @classmethod
    def cache(cls) -> Fallback:
        """Answer the last good reply body of this edge (none yet: the failure stands)."""
        return cls("cache")

    @classmethod
    def service(cls, name: str) -> Fallback:
        """Call ``name`` (a node, or a service: its first instance) instead."""
        return cls("service", target=name)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Fallback) and self.kind == other.kind
                and self.target == other.target and self.body == other.body)

    def __hash__(self) -> int:
        return hash((self.kind, self.target))

    def __repr__(self) -> str:
        if self.kind == "value":
            return f"Fallback.value({self.body!r})"
        if self.kind == "cache":
            return "Fallback.cache()"
        return f"Fallback.service({self.target!r})"


def _check_instance(name: str, value: object, types: tuple[type, ...], allowed: str) -> None:
    if value is not None and not isinstance(value, types):
        raise ParamError(name, value, allowed)


@dataclass
class EdgePolicy:
    """The policies on one caller → callee edge, and the order they wrap a call in.

    Every field is optional (None: not used):

    * ``time_limit`` -- seconds (> 0) or a :class:`TimeLimiter`: the caller
      stops waiting after that long; the call ends ``timeout``, the callee's
      work goes on and its late reply is an orphan;
    * ``bulkhead`` -- a :class:`SemaphoreBulkhead` or :class:`ThreadPoolBulkhead`:
      a call it turns away ends ``bulkhead_full`` and sends nothing;
    * ``circuit_breaker`` -- any :class:`Breaker`: a call it turns away ends
      ``short_circuited`` and sends nothing;
    * ``retry`` -- a :class:`Retry`: failed attempts are tried again;
    * ``rate_limiter`` -- a :class:`RateLimiter`: a call that gets no permit
      in time ends ``rate_limited`` and sends nothing;
    * ``fallback`` -- a :class:`Fallback`: a failed call answers with it and
      ends ``fallback``;
    * ``deadline`` -- seconds (> 0): the time budget of the request from the
      moment this edge's call starts (or the budget left in the incoming
      request, if sooner).  It travels in the request's header
      (``Message.deadline``, absolute time), so every call made downstream
      for it stops waiting then too; a call cut off by it ends
      ``deadline_exceeded`` (gRPC's DEADLINE_EXCEEDED);
    * ``order`` -- names from :data:`POLICY_NAMES`, outermost first;
      :data:`DEFAULT_ORDER` (Resilience4j's) by default.  Each policy given
      must be named; ``fallback`` may be left out (it then goes outermost).

    Each field is checked here: a wrong one raises a :class:`ParamError`
    naming it.  A number for ``time_limit`` becomes a ``TimeLimiter`` with
    that ``timeout_duration`` (and ``cancel_running_future`` on).
    """

    time_limit: TimeLimiter | float | None = None
    bulkhead: SemaphoreBulkhead | ThreadPoolBulkhead | None = None
    circuit_breaker: Breaker | None = None
    retry: Retry | None = None
    rate_limiter: RateLimiter | None = None
    fallback: Fallback | None = None
    deadline: float | None = None
    order: Sequence[str] = field(default=DEFAULT_ORDER)

    def __post_init__(self) -> None:
        tl = self.time_limit
        if tl is not None and not isinstance(tl, TimeLimiter):
            if not is_real(tl):
                raise ParamError("time_limit", tl, "seconds > 0, a TimeLimiter, or None")
            try:
                tl = TimeLimiter(timeout_duration=tl)
            except ParamError:
                raise ParamError("time_limit", self.time_limit,
                                 "seconds > 0, a TimeLimiter, or None") from None
            self.time_limit = tl
        _check_instance("bulkhead", self.bulkhead, (SemaphoreBulkhead, ThreadPoolBulkhead),
                        "a SemaphoreBulkhead, a ThreadPoolBulkhead, or None")
        cb = self.circuit_breaker
        if cb is not None and not isinstance(cb, Breaker):
            raise ParamError("circuit_breaker", cb, "a breaker (CircuitBreaker, "
                             "ConsecutiveFailureBreaker, HystrixBreaker) or None")
        _check_instance("retry", self.retry, (Retry,), "a Retry or None")
        _check_instance("rate_limiter", self.rate_limiter, (RateLimiter,),
                        "a RateLimiter or None")
        _check_instance("fallback", self.fallback, (Fallback,),
                        "Fallback.value(...), Fallback.cache(), Fallback.service(...) or None")
        if self.deadline is not None:
            d = as_real(self.deadline)
            if d is None or not d > 0 or math.isnan(d):
                raise ParamError("deadline", self.deadline, "seconds > 0, or None")
            self.deadline = d
        self.order = self._check_order(self.order)

    def _check_order(self, order: object) -> tuple[str, ...]:
        shape = "names from " + ", ".join(repr(n) for n in POLICY_NAMES) + ", outermost first"
        if isinstance(order, (str, bytes)) or not isinstance(order, Iterable):
            raise ParamError("order", order, "a sequence of " + shape)
        names = tuple(order)
        for name in names:
            if name not in POLICY_NAMES:
                near = get_close_matches(str(name), POLICY_NAMES, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise ParamError("order", name, hint + shape)
        if len(set(names)) != len(names):
            raise ParamError("order", names, "each name at most once")
        missing = [n for n in DEFAULT_ORDER if getattr(self, n) is not None and n not in names]
        if missing:
            raise ParamError("order", names, "every policy given, in some place: "
                             + ", ".join(missing) + " missing")
        return names

    @property
    def layers(self) -> tuple[str, ...]:
        """The policies given, outermost first (``fallback`` placed as ``order`` says)."""
        out = [n for n in self.order if getattr(self, n) is not None]
        if self.fallback is not None and "fallback" not in self.order:
            out.insert(0, "fallback")
        return tuple(out)

    def copy(self) -> EdgePolicy:
        """A copy with fresh state: its own breaker, bulkhead, limiter, retry counters
        and retry budget, in the state this one's are now.

        Breaker listeners and random streams are shared, not copied: whoever
        listens to the original hears every copy, and the draws stay one
        reproducible sequence.
        """
        import copy

        memo: dict[int, Any] = {}
        cb = self.circuit_breaker
        if cb is not None:
            for listener in getattr(cb, "listeners", ()):
                memo[id(listener)] = listener
        retry = None
        if self.retry is not None:
            retry = copy.copy(self.retry)
            if self.retry.budget is not None:
                retry.budget = copy.deepcopy(self.retry.budget)
        return replace(
            self,
            time_limit=self.time_limit,
            bulkhead=copy.deepcopy(self.bulkhead),
            circuit_breaker=copy.deepcopy(cb, memo),
            retry=retry,
            rate_limiter=copy.deepcopy(self.rate_limiter),
        )

    def __repr__(self) -> str:
        given = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name != "order" and getattr(self, f.name) is not None]
        if tuple(self.order) != DEFAULT_ORDER:
            given.append(f"order={self.order!r}")
        return f"EdgePolicy({', '.join(given)})"


def _services(world: World) -> dict[str, list[Any]]:
    """Service name -> its instances (nodes with a ``service``), in creation order."""
    out: dict[str, list[Any]] = {}
    for node in world.nodes.values():
        service = getattr(node, "service", None)
        if service is not None and hasattr(node, "workers"):
            out.setdefault(service, []).append(node)
    return out


def _unknown(field_name: str, value: object, known: Iterable[str], what: str) -> ParamError:
    options = sorted(known)
    near = get_close_matches(str(value), options, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    listing = ", ".join(repr(o) for o in options) or "none yet: create the instances first"
    return ParamError(field_name, value, f"{hint}{what} of this world ({listing})")


def protect(world: World, caller: str, callee: str, policy: EdgePolicy | None = None, *,
            deadline: float | None = None) -> dict[str, EdgePolicy]:
    """Wrap every call from service ``caller`` to service ``callee`` in ``policy``.

    ``caller`` and ``callee`` are SERVICE names (``Instance.service``), so
    the edge covers every instance of each: declare it once, after the
    instances exist and before the run.  ``callee`` may also be the name of
    a node without a service (a client, a registry).  Calls are matched by
    the callee node's service, so a call to ``order-2`` goes through the
    ``order`` edge.

    **Each caller instance gets its own copy** of the stateful policies
    (:meth:`EdgePolicy.copy`): its own breaker, bulkhead, rate limiter,
    retry counters and budget -- as each process of a real service holds its
    own Resilience4j registry.  The copies are returned, keyed by caller
    instance name, so that a test or a figure can watch them
    (``protect(...)["api-gateway-1"].circuit_breaker.state``).

    ``deadline`` (seconds) is a shortcut for ``EdgePolicy(deadline=...)``:
    the edge that starts a request gives it a time budget that travels
    downstream in the message header.  Give it one way or the other.

    Every breaker state change is recorded (``Result.breaker_events``) by a
    :class:`BreakerListener` the glue adds to each copy, and the breaker's
    timers (automatic open → half-open, the max wait in half-open, Hystrix's
    health snapshots) are driven by the simulation when the breaker has any.

    Unknown names, a second declaration of the same edge and a wrong policy
    raise a :class:`ParamError` at once, before time zero.
    """
    if policy is None and deadline is None:
        raise ParamError("policy", policy, "an EdgePolicy (or deadline=seconds)")
    if policy is not None and not isinstance(policy, EdgePolicy):
        raise ParamError("policy", policy, "an EdgePolicy")
    if deadline is not None:
        if policy is not None and policy.deadline is not None:
            raise ParamError("deadline", deadline, "given once: in the EdgePolicy or to "
                                                   "protect(), not both")
        policy = replace(policy, deadline=deadline) if policy is not None else \
            EdgePolicy(deadline=deadline)
    assert policy is not None
    services = _services(world)
    if not isinstance(caller, str) or caller not in services:
        raise _unknown("caller", caller, services, "a service")
    if not isinstance(callee, str) or (callee not in services and callee not in world.nodes):
        raise _unknown("callee", callee, services, "a service")
    fallback = policy.fallback
    if fallback is not None and fallback.kind == "service" \
            and fallback.target not in world.nodes and fallback.target not in services:
        raise _unknown("fallback", fallback.target, [*services, *world.nodes],
                       "a node or service")
    from simcomm.rpc.policies import install

    return install(world, services[caller], callee, policy)


def protect_server(world: World, service: str, *,
                   rate_limiter: RateLimiter) -> dict[str, RateLimiter]:
    """Shed load at ``service``: each instance admits requests at ``rate_limiter``'s rate.

    Server-side load shedding (a servlet filter or Envoy's local rate limit
    answering HTTP 429): a request that finds no permit when it arrives is
    turned away at once -- it never enters the queue -- and its caller gets
    a ``rate_limited`` reply (the request is dropped in the ledger with
    reason ``rate_limited``).  The server holds no connection open waiting
    for a permit, so the limiter's ``timeout_duration`` is not used here.

    Each instance gets its own copy of ``rate_limiter`` (its own permits);
    the copies are returned by instance name.
    """
    if not isinstance(rate_limiter, RateLimiter):
        raise ParamError("rate_limiter", rate_limiter, "a RateLimiter")
    services = _services(world)
    if not isinstance(service, str) or service not in services:
        raise _unknown("service", service, services, "a service")
    from simcomm.rpc.policies import install_server

    return install_server(world, services[service], rate_limiter)
