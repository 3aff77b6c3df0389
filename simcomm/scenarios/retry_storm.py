"""``retry-storm``: a short slowdown, eager retries, and an overload that outlives it.

A metastable failure (Bronson, Aghayev, Charapko and Zhu, "Metastable
Failures in Distributed Systems", HotOS 2021).  ``users`` mobile users each
think for ``think_time`` seconds (exponential), send a request to the API
gateway and wait for its answer before thinking again (a closed loop).  The
gateway calls the ``order`` service -- ``service_workers`` workers, a FIFO
queue, log-normal service times of mean ``service_time`` -- and, like many
clients, it is *eager*: each call has a ``call_timeout`` and a timed-out or
failed call is tried again at once, up to ``max_attempts`` times.

Normally the order service is comfortably loaded (a little over half busy
with the defaults), replies come well within the timeout and retries are
rare.  The system is stable -- left alone it stays so for as long as you
run it -- but, in the paper's words, **vulnerable**: with eager retries it
has a second, bad equilibrium.  Then the **trigger**: from ``slowdown_at``
the service is ``slowdown_factor`` times slower for ``slowdown_duration``
seconds.  Its queue grows, waits pass the timeout, and every timed-out call
comes back as another attempt.  When the slowdown ends the service is as
fast as before, yet the system does not recover: it is in the
**metastable failure** state, and stays there.

The sustaining effect is the retries themselves.  A timed-out attempt is
not cancelled: it stays in the order service's queue and is served later,
for nobody (its reply is an orphan), while its retry joins the same queue.
Every user request now costs up to ``max_attempts`` units of work, so the
load offered to the service (retries included) stays above its capacity
(``service_workers / service_time``): the queue keeps growing, waits stay
above the timeout, nearly every attempt times out, and the goodput (users'
requests answered ok per second) stays near zero long after the trigger is
gone.  Nothing in the system is broken any more; the work it does is.

What ends it is whatever cuts the load the retries add while the system is
overloaded:

* a ``retry_backoff`` that grows -- ``exponential``, or with jitter
  ``full_jitter``, ``equal_jitter``, ``decorrelated_jitter`` (base
  ``retry_wait``): each user now also waits between attempts, so the users
  send fewer attempts per second -- the backoff lowers the load of a closed
  loop below the capacity, the queue drains and the timeouts stop.  A
  ``constant`` wait of ``retry_wait`` (1 s) lowers it too little, and the
  storm lingers.  Jitter adds the spreading: retries that a shared trigger
  made fail together do not come back together;
* ``retry_budget`` (gRPC's retry throttling): once many calls fail, the
  shared token bucket forbids retries, and the load falls back to one
  attempt per request;
* a ``breaker``: it trips on the timeouts and short-circuits the calls,
  the queue drains while it is open, and its trial calls close it again.

:func:`storm_report` measures it: goodput and offered load before, during
and after the trigger, and whether the system recovered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm.engine.faults import Slowdown, install
from simcomm.engine.network import Link
from simcomm.engine.nodes import Instance
from simcomm.engine.randomness import Exponential, distribution
from simcomm.engine.workload import ClosedLoop
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.rpc.handlers import answer, forward
from simcomm.scenarios import _policies
from simcomm.scenarios.base import Load, Scenario, param, register

if TYPE_CHECKING:
    from simcomm.result import Result

__all__ = ["GATEWAY", "SERVICE", "USERS", "Params", "capacity", "edge_policy", "load",
           "storm_report"]

GATEWAY = "api-gateway-1"
SERVICE = "order-1"
USERS = "users"

#: What the order service answers.
_DONE = {"orderId": 123456789, "state": "APPROVED"}


@dataclass(frozen=True)
class Params:
    # -- the system --------------------------------------------------------------------
    users: int = param(
        47, range=(1, 1000), unit="users",
        help="mobile users; each thinks, sends a request, waits for its answer, and "
             "thinks again (a closed loop)")
    think_time: float = param(
        5.0, range=(0.1, 60.0), unit="s", step=0.1,
        help="mean time a user thinks between an answer and the next request (exponential)")
    service_workers: int = param(
        4, range=(1, 200), unit="workers", help="workers in the order service")
    service_time: float = param(
        0.25, range=(0.001, 10.0), unit="s", step=0.001,
        help="mean CPU time of one attempt in the order service (log-normal); with "
             "service_workers it sets the capacity")
    network_latency: float = param(
        0.001, range=(0.0, 0.5), unit="s", step=0.001,
        help="mean one-way network delay of every hop (exponential)")
    # -- the trigger -------------------------------------------------------------------
    slowdown_at: float = param(
        20.0, range=(0.0, 3600.0), unit="s", step=1.0,
        help="when the order service slows down (the trigger)")
    slowdown_duration: float = param(
        5.0, range=(0.1, 3600.0), unit="s", step=0.1,
        help="how long the slowdown lasts; afterwards the service is as fast as before")
    slowdown_factor: float = param(
        4.0, range=(1.0, 50.0), unit="x", step=0.5,
        help="how many times slower every attempt is during the slowdown (1: no trigger)")
    # -- the gateway's calls: timeout and retries --------------------------------------
    call_timeout: float = param(
        1.0, range=(0.01, 60.0), unit="s", step=0.01,
        help="the gateway stops waiting for the order service after this long; the "
             "attempt goes on in the service, for nobody")
    max_attempts: int = param(
        4, range=(1, 10), unit="attempts",
        help="attempts per request, the first included (1: no retries); retried: timeout, "
             "error, reset, refused, rejected")
    retry_backoff: str = param(
        "none", choices=_policies.BACKOFFS,
        help="wait between attempts: none (at once: the eager client), constant, "
             "exponential (x2), randomized (exponential ±50 %), or the AWS full / equal / "
             "decorrelated jitter")
    retry_wait: float = param(
        1.0, range=(0.001, 60.0), unit="s", step=0.001,
        help="the wait before a retry (the base of the exponential and jitter backoffs)")
    retry_max_wait: float = param(
        10.0, range=(0.001, 600.0), unit="s", step=0.1,
        help="the longest wait the exponential and jitter backoffs give")
    retry_budget: bool = param(
        False, help="gRPC retry throttling: a token bucket shared by all the gateway's calls "
                    "allows retries only while few calls fail")
    budget_max_tokens: float = param(
        10.0, range=(1.0, 1000.0), unit="tokens", step=1.0,
        help="retry budget: tokens in a full bucket; a failure takes one, retries stop "
             "at half")
    budget_token_ratio: float = param(
        0.1, range=(0.001, 10.0), unit="tokens", step=0.001,
        help="retry budget: tokens a success gives back")
    # -- a breaker ---------------------------------------------------------------------
    breaker: str = param(
        "none", choices=_policies.BREAKERS,
        help="circuit breaker on the gateway's calls: none, resilience4j (failure rate over "
             "a window), consecutive (the book's, pybreaker's rules) or hystrix")
    breaker_failure_rate: int = param(
        50, range=(1, 100), unit="%",
        help="resilience4j and hystrix: the breaker trips when at least this share of the "
             "recent calls failed")
    breaker_minimum_calls: int = param(
        20, range=(1, 1000), unit="calls",
        help="resilience4j: the window of recent calls judged (and the fewest it judges); "
             "hystrix: the fewest calls in 10 s that can trip it")
    breaker_fail_max: int = param(
        5, range=(1, 1000), unit="failures",
        help="consecutive: the breaker trips after this many failures in a row")
    breaker_open_wait: float = param(
        5.0, range=(0.1, 600.0), unit="s", step=0.1,
        help="how long a tripped breaker short-circuits calls before it lets a trial "
             "through (resilience4j wait in open state, pybreaker reset timeout, hystrix "
             "sleep window)")


def edge_policy(world: World, p: Params):
    """The gateway's policy for its calls to the order service."""
    from simcomm.resilience import EdgePolicy

    budget = (p.budget_max_tokens, p.budget_token_ratio) if p.retry_budget else None
    return EdgePolicy(
        time_limit=p.call_timeout,
        circuit_breaker=_policies.breaker(
            p.breaker, failure_rate=p.breaker_failure_rate,
            minimum_calls=p.breaker_minimum_calls, fail_max=p.breaker_fail_max,
            open_wait=p.breaker_open_wait, name="api-gateway→order"),
        retry=_policies.retry(p.max_attempts, p.retry_backoff, p.retry_wait, p.retry_max_wait,
                              world.stream("policy:api-gateway→order:backoff"), budget),
    )


def build(world: World, p: Params) -> None:
    from simcomm.resilience import protect

    world.network.set_default(Link(latency=Exponential(p.network_latency)
                                   if p.network_latency > 0 else None))
    # one gateway worker per user: the gateway is never the bottleneck
    Instance(world, GATEWAY, workers=p.users, service="api-gateway", handler=forward(SERVICE))
    Instance(world, SERVICE, workers=p.service_workers, service="order",
             service_time=distribution("lognormal", p.service_time), handler=answer(_DONE))
    protect(world, "api-gateway", "order", edge_policy(world, p))
    if p.slowdown_factor != 1:
        install(world, [Slowdown(SERVICE, p.slowdown_at, p.slowdown_duration,
                                 factor=p.slowdown_factor)])
    ClosedLoop(world, USERS, GATEWAY, p.users, Exponential(p.think_time))


def capacity(p: Params) -> float:
    """Attempts per second the order service can serve: ``service_workers /
    service_time`` (the gateway has a worker per user and is never the limit).

    The storm is the load offered to it -- retries included -- staying above
    this after the trigger."""
    return p.service_workers / p.service_time


def load(p: Params) -> Load:
    """At most ``users / think_time`` requests per second (a closed loop sends fewer
    as answers slow); each makes up to ``max_attempts`` attempts, a request and a
    reply each, and a late reply to a timed-out attempt is an orphan event."""
    rate = p.users / p.think_time
    attempts = p.max_attempts
    return Load(requests_per_s=rate, messages_per_request=2 + 2 * attempts,
                pool_changes_per_request=3 + 3 * attempts, events_per_s=rate * attempts)


def storm_report(res: Result, *, settle: float | None = None) -> dict[str, Any]:
    """Goodput and offered load before, during and after the trigger of a run.

    * ``goodput_before`` / ``_during`` / ``_after`` -- users' requests answered
      ``ok`` per second, by the time they were answered, in ``[0,
      slowdown_at)``, during the slowdown, and from its end to the end of
      the run;
    * ``offered_before`` / ``_during`` / ``_after`` -- attempts reaching the
      order service per second (retries included), by the time they were sent;
    * ``goodput_last`` / ``offered_last`` -- the same over the last
      ``settle`` seconds of the run (default: the last third of the time
      after the trigger), where a system that recovered is back to normal;
    * ``capacity`` -- attempts per second the order service can serve;
    * ``recovered`` -- True when, over the last ``settle`` seconds, the
      goodput is back to at least 80 % of what it was before the trigger and
      the offered load is below the capacity.

    Needs a traced run of this scenario (the attempts are counted from the
    message trace); anything else is a ParamError naming ``res``.
    """
    import numpy as np

    p = getattr(res, "params", None)
    if not isinstance(p, Params):
        raise ParamError("res", res, "the Result of a retry-storm run")
    if not res.world.trace.enabled:
        raise ParamError("res", res, "a run with trace=True (the attempts are counted "
                                     "from the message trace)")
    start = p.slowdown_at
    end = min(p.slowdown_at + p.slowdown_duration, res.until)
    if settle is None:
        settle = (res.until - end) / 3
    last = max(end, res.until - settle)
    rq = res.requests
    ok_end = rq.loc[rq["outcome"] == "ok", "end"].to_numpy()
    sent = _attempt_times(res)

    def rate(times: np.ndarray, a: float, b: float) -> float:
        if not b > a:
            return math.nan
        return float(((times >= a) & (times < b)).sum()) / (b - a)

    windows = {"before": (0.0, start), "during": (start, end), "after": (end, res.until),
               "last": (last, res.until)}
    out: dict[str, Any] = {}
    for name, (a, b) in windows.items():
        out[f"goodput_{name}"] = rate(ok_end, a, b)
        out[f"offered_{name}"] = rate(sent, a, b)
    cap = capacity(p)
    out["capacity"] = cap
    out["recovered"] = bool(out["goodput_last"] >= 0.8 * out["goodput_before"]
                            and out["offered_last"] < cap)
    return out


def _attempt_times(res: Result):
    """When each attempt to the order service was sent (from the message trace)."""
    tr = res.trace
    sent = tr[(tr["event"] == "send") & (tr["dest"] == SERVICE) & (tr["kind"] != "reply")]
    return sent["time"].to_numpy()


SCENARIO = register(Scenario(
    name="retry-storm",
    title="Retry storm: a metastable failure that outlives its trigger",
    description=("Users call an API gateway that calls the order service with a timeout "
                 "and eager retries. A short slowdown makes calls time out; the retries add "
                 "load, so the service stays overloaded after the slowdown has passed. "
                 "Backoff with jitter, a retry budget or a circuit breaker ends the storm."),
    params=Params,
    build=build,
    views=("load_vs_goodput", "outcomes_over_time", "breaker_states"),
    until=80.0,
    capacity=capacity,
    load=load,
))
