"""Load balancers: which instance of a service the next call goes to.

A balancer is the client-side half of discovery's last step (*Microservices
Patterns* §3.2.4): the view holds the instances the registry knows of, and
the balancer picks one of them for each call.  Every balancer here is pure
(principle 7): no World, no clock, no global random -- :meth:`Balancer.choose`
gets the candidates, a ``random.Random`` (the caller's own stream,
``balancer:<caller>:<service>``) and the simulated time; :meth:`started`
and :meth:`finished` tell it about the calls it routed, which is all the
state the load-aware ones keep.  One balancer serves one (caller, service)
pair, as Ribbon keeps one ``ILoadBalancer`` (with its rule and its
``LoadBalancerStats``) per client.

``candidates`` come in the view's order (a Eureka client's list is shuffled at
every fetch, as the real one is; the other views keep names sorted) and are
never empty (:class:`~simcomm.discovery.client.DiscoveryClient` answers
``no_instance`` itself without asking); on a retry on the next server they
are the instances not tried yet.

The five rules and where they come from (``Netflix/ribbon``,
``ribbon-loadbalancer/src/main/java/com/netflix/loadbalancer/``; Envoy
``source/extensions/load_balancing_policies/least_request/least_request_lb.cc``):

=========================== ================================================
``round_robin``             Ribbon ``RoundRobinRule``: a counter advanced
                            modulo the list size.
``random``                  Ribbon ``RandomRule``; also kube-proxy's iptables
                            mode (one uniform pick per new connection).
``least_outstanding``       Ribbon ``BestAvailableRule``: fewest active
                            requests, skipping instances whose connection
                            circuit is tripped.
``power_of_two``            Envoy ``LEAST_REQUEST`` with equal weights
                            (``choice_count`` 2): the less busy of two random
                            picks -- Mitzenmacher's power of two choices.
``weighted_response_time``  Ribbon ``WeightedResponseTimeRule``: a random
                            pick weighted by (sum of mean response times −
                            own mean), weights recomputed every 30 s.
=========================== ================================================

What the callers see of each: round robin is exactly fair and blind (a
slow or dead instance gets its full share until the view drops it); random
is fair on average; the load-aware ones send less to an instance whose
calls pile up (a slow one -- and a hung one, whose calls end only at the
caller's time limit).  None avoids a crashed instance before the view drops
it, except ``least_outstanding`` through Ribbon's connection circuit (three
failed calls skip it for 10 s and more); ``weighted_response_time`` even
prefers it, because its refusals are fast.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Sequence

from simcomm._checks import as_real, is_whole
from simcomm.errors import ParamError

__all__ = ["BALANCERS", "Balancer", "LeastOutstanding", "PowerOfTwoChoices", "RandomChoice",
           "RoundRobin", "WeightedResponseTime", "balancer"]


def _real(field: str, value: object, *, low_open: bool, unit: str = "seconds") -> float:
    """``value`` as a finite float >= 0 (> 0 with ``low_open``), else a ParamError."""
    x = as_real(value)
    if x is None or not math.isfinite(x) or x < 0 or (low_open and x == 0):
        raise ParamError(field, value, f"a finite number {'> 0' if low_open else '>= 0'} "
                                       f"({unit})")
    return x


def _whole(field: str, value: object, low: int) -> int:
    """``value`` as an int >= ``low``, else a ParamError."""
    if not is_whole(value) or value < low:  # type: ignore[operator]
        raise ParamError(field, value, f"a whole number >= {low}")
    return int(value)  # type: ignore[call-overload]


def _no_candidates(candidates: Sequence[str]) -> ParamError:
    return ParamError("candidates", candidates,
                      "at least one instance to choose from (an empty view is answered "
                      "no_instance by the client, before any balancer is asked)")


class Balancer(ABC):
    """Picks an instance for each call; told when each call starts and ends.

    Subclasses implement :meth:`choose`; :meth:`started` and
    :meth:`finished` do nothing unless the rule needs what they report.
    """

    #: the name :func:`balancer` knows it by (the ``balancer`` knob's value)
    name: str = ""

    @abstractmethod
    def choose(self, candidates: Sequence[str], rng: random.Random, now: float) -> str:
        """The instance the next call goes to, one of ``candidates`` (non-empty,
        in the view's order)."""

    def started(self, instance: str, now: float) -> None:  # noqa: B027 -- a no-op hook
        """A call to ``instance`` went out at ``now``."""

    def finished(self, instance: str, latency: float, ok: bool,  # noqa: B027 -- a no-op hook
                 now: float) -> None:
        """The call to ``instance`` ended at ``now`` after ``latency`` seconds.

        ``ok`` is True when the instance answered (``ok`` or ``fallback``),
        False when the call failed (timeout, reset, refused, rejected, error).
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RoundRobin(Balancer):
    """Ribbon ``RoundRobinRule``: each call to the next instance in the list.

    ``RoundRobinRule.incrementAndGetModulo``: a counter starting at 0 is
    replaced by ``(counter + 1) % size`` and that index is picked -- so the
    first call goes to the *second* instance of the list, as in Ribbon.
    When the list changes, the counter is kept (taken modulo the new size
    on the next call), not reset: an instance added or removed shifts who
    is next, it does not restart the cycle.  Over any run on an unchanged
    list the counts per instance differ by at most one.

    Ribbon's rule also skips servers its pinger marks dead (``isAlive``,
    up to 10 tries); with Eureka's ``NIWSDiscoveryPing`` that is the
    registry's status, which the view already applies, so the candidates
    are taken as they come.
    """

    name = "round_robin"

    def __init__(self) -> None:
        #: ``nextServerCyclicCounter``: the index picked last
        self.counter = 0

    def choose(self, candidates: Sequence[str], rng: random.Random, now: float) -> str:
        n = len(candidates)
        if not n:
            raise _no_candidates(candidates)
        self.counter = index = (self.counter + 1) % n
        return candidates[index]


class RandomChoice(Balancer):
    """Ribbon ``RandomRule``: a uniform pick, independent of every other call.

    ``RandomRule.chooseRandomInt`` is ``ThreadLocalRandom.nextInt(serverCount)``;
    kube-proxy's iptables mode does the same per new connection (a chain of
    ``-m statistic --mode random --probability 1/(n-i)`` rules, which is a
    uniform choice among n endpoints).  Each instance gets a binomial share.
    """

    name = "random"

    def choose(self, candidates: Sequence[str], rng: random.Random, now: float) -> str:
        if not candidates:
            raise _no_candidates(candidates)
        return rng.choice(candidates)


class _Outstanding(Balancer):
    """Counts each instance's active (sent, not yet finished) requests."""

    def __init__(self) -> None:
        #: active requests per instance (``ServerStats.activeRequestsCount``,
        #: Envoy's ``rq_active``)
        self.active: dict[str, int] = {}

    def outstanding(self, instance: str) -> int:
        """The calls sent to ``instance`` that have not finished."""
        return self.active.get(instance, 0)

    def started(self, instance: str, now: float) -> None:
        active = self.active
        active[instance] = active.get(instance, 0) + 1

    def finished(self, instance: str, latency: float, ok: bool, now: float) -> None:
        # ServerStats.decrementActiveRequestsCount: never below 0
        active = self.active
        active[instance] = max(0, active.get(instance, 0) - 1)


class LeastOutstanding(_Outstanding):
    """Ribbon ``BestAvailableRule``: the instance with the fewest active requests.

    ``BestAvailableRule.choose`` walks the list in order and keeps the first
    instance whose ``ServerStats.getActiveRequestsCount`` is *strictly*
    below the best so far: **ties go to the first in the view's order**,
    so at equal load that instance gets the call -- with Eureka's view,
    whichever the last fetch's shuffle put first; with a sorted view, the
    alphabetically first.  Instances whose connection circuit is tripped
    (``ServerStats.isCircuitBreakerTripped``) are skipped; if every one is,
    the rule falls back to round robin (its parent
    ``ClientConfigEnabledRoundRobinRule``).

    The two pieces of ``ServerStats`` it reads, with Ribbon's defaults:

    * **active requests** -- +1 when a call goes out, −1 (floored at 0) when
      it ends.  A count that has not changed for ``active_requests_window``
      seconds (600, ``niws.loadbalancer.serverStats.activeRequestsCount.
      effectiveWindowSeconds``) is taken as 0 and reset, so calls lost
      without an end do not shun an instance forever.
    * **the connection circuit** -- ``successiveConnectionFailureCount``:
      +1 per failed call, cleared by a call that got an answer.  From
      ``connection_failure_threshold`` failures on (3,
      ``niws.loadbalancer.<client>.connectionFailureCountThreshold``) the
      instance is skipped for ``2^min(failures − threshold, 16) ×
      circuit_trip_timeout_factor`` seconds (10,
      ``circuitTripTimeoutFactorSeconds``), at most
      ``circuit_trip_max_timeout`` (30, ``circuitTripMaxTimeoutSeconds``),
      counted from the last failure: 10 s after the 3rd, 20 s after the
      4th, 30 s after every later one.  Ribbon counts only connection
      failures and socket timeouts (``DefaultLoadBalancerRetryHandler.
      isCircuitTrippingException``); here every failed call counts (the
      client's ``ok=False``), so an instance answering errors trips it too.

    This is the one rule that notices a crashed instance before the view
    does: its calls are refused at once, three refusals trip the circuit.
    """

    name = "least_outstanding"

    def __init__(self, *, connection_failure_threshold: int = 3,
                 circuit_trip_timeout_factor: float = 10.0,
                 circuit_trip_max_timeout: float = 30.0,
                 active_requests_window: float = 600.0) -> None:
        super().__init__()
        self.connection_failure_threshold = _whole(
            "connection_failure_threshold", connection_failure_threshold, 1)
        self.circuit_trip_timeout_factor = _real(
            "circuit_trip_timeout_factor", circuit_trip_timeout_factor, low_open=False)
        self.circuit_trip_max_timeout = _real(
            "circuit_trip_max_timeout", circuit_trip_max_timeout, low_open=False)
        self.active_requests_window = _real(
            "active_requests_window", active_requests_window, low_open=True)
        #: ``lastActiveRequestsCountChangeTimestamp`` per instance
        self._changed: dict[str, float] = {}
        #: ``successiveConnectionFailureCount`` per instance
        self.failures: dict[str, int] = {}
        #: ``lastConnectionFailedTimestamp`` per instance
        self._failed_at: dict[str, float] = {}
        self._fallback = RoundRobin()

    def active_requests(self, instance: str, now: float) -> int:
        """``ServerStats.getActiveRequestsCount(now)``: the active count, or 0
        (and reset) when it has not changed for ``active_requests_window``."""
        count = self.active.get(instance, 0)
        if count and now - self._changed[instance] > self.active_requests_window:
            self.active[instance] = 0
            return 0
        return count

    def blackout(self, instance: str) -> float:
        """``getCircuitBreakerBlackoutPeriod``: seconds the instance is skipped
        after its last failure (0: its circuit is not tripped)."""
        failures = self.failures.get(instance, 0)
        threshold = self.connection_failure_threshold
        if failures < threshold:
            return 0.0
        seconds = (1 << min(failures - threshold, 16)) * self.circuit_trip_timeout_factor
        return min(seconds, self.circuit_trip_max_timeout)

    def tripped(self, instance: str, now: float) -> bool:
        """``isCircuitBreakerTripped(now)``: within the blackout after the last failure."""
        blackout = self.blackout(instance)
        return blackout > 0 and self._failed_at[instance] + blackout > now

    def choose(self, candidates: Sequence[str], rng: random.Random, now: float) -> str:
        if not candidates:
            raise _no_candidates(candidates)
        chosen: str | None = None
        least = math.inf
        failures = self.failures
        for name in candidates:
            if name in failures and self.tripped(name, now):
                continue
            count = self.active_requests(name, now)
            if count < least:
                least = count
                chosen = name
        if chosen is None:
            return self._fallback.choose(candidates, rng, now)
        return chosen

    def started(self, instance: str, now: float) -> None:
        super().started(instance, now)
        self._changed[instance] = now

    def finished(self, instance: str, latency: float, ok: bool, now: float) -> None:
        super().finished(instance, latency, ok, now)
        self._changed[instance] = now
        if ok:
            # clearSuccessiveConnectionFailureCount
            self.failures.pop(instance, None)
        else:
            # incrementSuccessiveConnectionFailureCount
            self.failures[instance] = self.failures.get(instance, 0) + 1
            self._failed_at[instance] = now


class PowerOfTwoChoices(_Outstanding):
    """Envoy ``LEAST_REQUEST``: the less busy of ``choice_count`` random picks.

    ``LeastRequestLoadBalancer::unweightedHostPickNChoices`` (the path for
    hosts of equal weight): draw ``choice_count`` hosts uniformly **with
    replacement** (``random() % size``, so both draws may be the same
    instance), keep the first drawn and replace it only by a draw with
    *strictly* fewer active requests (``rq_active``).  ``choice_count`` 2 is
    Envoy's default and the "power of two choices" of Mitzenmacher (2001):
    two random looks are enough to make the busiest queue exponentially
    shorter than with one, with no global scan and without every client
    herding onto the same least-loaded instance as a full scan does.
    """

    name = "power_of_two"

    def __init__(self, *, choice_count: int = 2) -> None:
        super().__init__()
        self.choice_count = _whole("choice_count", choice_count, 2)

    def choose(self, candidates: Sequence[str], rng: random.Random, now: float) -> str:
        n = len(candidates)
        if not n:
            raise _no_candidates(candidates)
        active = self.active
        randbelow = rng.randrange
        chosen = candidates[randbelow(n)]
        least = active.get(chosen, 0)
        for _ in range(self.choice_count - 1):
            sampled = candidates[randbelow(n)]
            count = active.get(sampled, 0)
            if count < least:
                chosen, least = sampled, count
        return chosen


class WeightedResponseTime(RoundRobin):
    """Ribbon ``WeightedResponseTimeRule``: a random pick weighted by speed.

    Every ``interval`` seconds (30, ``ServerWeightTaskTimerInterval``;
    ``DEFAULT_TIMER_INTERVAL``) ``ServerWeight.maintainWeights`` recomputes
    the weights from each instance's mean response time
    (``ServerStats.getResponseTimeAvg``: the mean over *every* call it
    finished since the client started, failed ones included, as
    ``LoadBalancerContext.recordStats`` notes them all; 0 for an instance
    with none yet)::

        total     = Σ mean_i
        weight_i  = total − mean_i

    so a slow instance gets less.  ``choose`` draws ``u × Σ weight`` (u
    uniform in [0, 1)) and picks the first instance whose accumulated
    weight is ``>=`` it.  Until weights exist -- before the first
    recompute, when they sum to under 0.001 ms (no calls finished yet), or
    when a candidate has no weight (an instance that joined since the last
    recompute: Ribbon's ``serverCount != currentWeights.size()``) -- it
    falls back to round robin (its parent ``RoundRobinRule``).

    Two consequences the learner can see: an instance nobody has called
    yet has mean 0 and so the *largest* weight; and a crashed instance's
    calls fail fast (refused in a few ms), which lowers its mean and
    raises its weight -- the rule prefers the dead instance until the view
    drops it.

    Deviations, because a pure rule has no timer thread: the recompute runs
    when the balancer is next used at or after a due time (the statistics
    are then exactly those at the due time, since only its own methods
    change them), over the candidates of that call -- the view's list, as
    ``getAllServers`` would give -- and weights are kept by instance name
    rather than by list position, so a retry on a subset keeps its weights.
    The first recompute is at ``phase`` (seconds), or, with ``phase=None``,
    at a random offset in [0, interval) after the first call, drawn from
    the caller's stream: Ribbon's timer starts with the client, and clients
    on different machines start at different times.
    """

    name = "weighted_response_time"

    #: ``maxTotalWeight < 0.001`` (milliseconds in Ribbon), in seconds
    MIN_TOTAL_WEIGHT = 1e-6

    def __init__(self, *, interval: float = 30.0, phase: float | None = None) -> None:
        super().__init__()
        self.interval = _real("interval", interval, low_open=True)
        #: when the weights are next recomputed (None: at the first call + a random phase)
        self.next_update: float | None = (
            None if phase is None else _real("phase", phase, low_open=False))
        self._sum: dict[str, float] = {}
        self._count: dict[str, int] = {}
        #: weight per instance at the last recompute
        self.weights: dict[str, float] = {}
        self._weighted: tuple[str, ...] = ()
        self._accumulated: list[float] = []
        self._servers: tuple[str, ...] = ()

    def mean_response_time(self, instance: str) -> float:
        """``ServerStats.getResponseTimeAvg``: mean seconds of the calls
        ``instance`` finished so far (0 with none)."""
        n = self._count.get(instance, 0)
        return self._sum[instance] / n if n else 0.0

    @property
    def accumulated(self) -> tuple[float, ...]:
        """``accumulatedWeights``: running sums of the weights, in the order
        of the instances they were computed for."""
        return tuple(self._accumulated)

    def recompute(self, servers: Sequence[str]) -> dict[str, float]:
        """``ServerWeight.maintainWeights`` over ``servers``: weight_i =
        Σ mean − mean_i (the new weights are returned and kept)."""
        means = [self.mean_response_time(s) for s in servers]
        total = 0.0
        for m in means:
            total += m
        so_far = 0.0
        accumulated = []
        weights = {}
        for s, m in zip(servers, means, strict=True):
            weight = total - m
            so_far += weight
            accumulated.append(so_far)
            weights[s] = weight
        self.weights = weights
        self._weighted = tuple(servers)
        self._accumulated = accumulated
        return weights

    def _tick(self, now: float) -> None:
        due = self.next_update
        if due is not None and now >= due:
            self.recompute(self._servers)
            # the next due time after now, on the grid due + k × interval
            self.next_update = due + (math.floor((now - due) / self.interval) + 1) * self.interval

    def choose(self, candidates: Sequence[str], rng: random.Random, now: float) -> str:
        if not candidates:
            raise _no_candidates(candidates)
        self._servers = candidates if isinstance(candidates, tuple) else tuple(candidates)
        if self.next_update is None:
            self.next_update = now + rng.random() * self.interval
        self._tick(now)
        if self._servers == self._weighted:
            accumulated = self._accumulated
        else:
            weights = self.weights
            accumulated = []
            so_far = 0.0
            for name in candidates:
                weight = weights.get(name)
                if weight is None:
                    return super().choose(candidates, rng, now)
                so_far += weight
                accumulated.append(so_far)
        if not accumulated or accumulated[-1] < self.MIN_TOTAL_WEIGHT:
            return super().choose(candidates, rng, now)
        drawn = rng.random() * accumulated[-1]
        return candidates[bisect_left(accumulated, drawn)]

    def started(self, instance: str, now: float) -> None:
        self._tick(now)

    def finished(self, instance: str, latency: float, ok: bool, now: float) -> None:
        self._tick(now)
        # ServerStats.noteResponseTime: every finished call, failed ones too
        self._sum[instance] = self._sum.get(instance, 0.0) + latency
        self._count[instance] = self._count.get(instance, 0) + 1


#: The balancers by the name the ``balancer`` knob takes.
BALANCERS: dict[str, type[Balancer]] = {
    "round_robin": RoundRobin,
    "random": RandomChoice,
    "least_outstanding": LeastOutstanding,
    "power_of_two": PowerOfTwoChoices,
    "weighted_response_time": WeightedResponseTime,
}


def balancer(name: str) -> Balancer:
    """A new balancer of the kind ``name`` names, with its real system's defaults."""
    if not isinstance(name, str) or name not in BALANCERS:
        raise ParamError("balancer", name, "one of " + ", ".join(repr(k) for k in BALANCERS))
    return BALANCERS[name]()
