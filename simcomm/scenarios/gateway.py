"""``gateway``: one hung service behind an API gateway, and the tools against it.

The example of *Microservices Patterns* §3.2.3.  Mobile clients call an
API gateway whose one pool of ``gateway_workers`` serves two endpoints:
``createOrder`` (routed to the ``order`` service) and ``getCustomer``
(routed to the ``customer`` service), mixed in the proportion
``create_order_share``.  From ``hang_at`` for ``hang_duration`` seconds the
order service is unresponsive: it accepts requests and never answers.

Without protection (the default run) the gateway's workers wait for the
order service like everyone else: within a second every worker is stuck
on a createOrder, getCustomer requests queue behind them and the users
give up -- **both** endpoints fail although only one service is down.
The knobs are the book's remedies, each applied to the gateway's calls to
both services, so a learner can switch them on one at a time:

* ``call_timeout`` -- the gateway stops waiting (Resilience4j's
  TimeLimiter): a createOrder ends ``timeout`` after that long and the
  worker is free again; the order service's late reply is an orphan.
  A pool of ``gateway_workers`` still runs out if ``call_timeout ×
  createOrder rate`` exceeds it;
* ``order_bulkhead`` / ``customer_bulkhead`` -- at most that many calls in
  flight to each service (Resilience4j's SemaphoreBulkhead, waiting up to
  ``bulkhead_max_wait``); the rest end ``bulkhead_full`` at once, so a hung
  order service can hold no more than its share of the pool;
* ``breaker`` -- a circuit breaker per downstream (Resilience4j's,
  pybreaker's consecutive-failure one, or Hystrix's) that, once tripped,
  answers ``short_circuited`` without calling.  It trips on failures, and
  a hang produces none until a timeout says so: a breaker needs a
  ``call_timeout`` to see a hang.  Without one it sees the held calls fail
  only when the hang ends and they are reset -- and then short-circuits a
  service that is healthy again;
* ``fallback`` -- a failed call is answered with a fixed value or the
  last good reply instead: the request ends ``fallback`` (answered, but
  not by the service);
* ``max_attempts`` / ``retry_backoff`` -- retries, which against a hung
  service only multiply the waiting: with a timeout, each createOrder then
  holds a gateway worker for every attempt and every wait between them,
  and the pool runs out again.

The requests table's ``endpoint`` column tells the two endpoints apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from simcomm.engine.faults import Hang, install
from simcomm.engine.formats import FORMATS
from simcomm.engine.network import Link
from simcomm.engine.nodes import Instance
from simcomm.engine.randomness import distribution
from simcomm.engine.workload import OpenLoop
from simcomm.engine.world import World
from simcomm.rpc.handlers import answer, route
from simcomm.scenarios import _policies
from simcomm.scenarios.base import Load, Scenario, param, register
from simcomm.scenarios.payloads import order

__all__ = ["CUSTOMER", "ENDPOINTS", "GATEWAY", "ORDER", "USERS", "Params", "capacity",
           "edge_policy", "load"]

GATEWAY = "api-gateway-1"
ORDER = "order-1"
CUSTOMER = "customer-1"
USERS = "mobile-clients"

#: The gateway's endpoints and the instance each is routed to.
ENDPOINTS = {"createOrder": ORDER, "getCustomer": CUSTOMER}

#: What each service answers, and what each endpoint's request carries.
_ORDER_CREATED = {"orderId": 123456789, "state": "APPROVAL_PENDING"}
_CUSTOMER = {"customerId": 4711, "name": "Ada Lovelace", "creditLimit": 500.0}
_BODIES = {"createOrder": order(2), "getCustomer": {"customerId": 4711}}

#: A fallback "value": what the gateway answers when the call fails.
FALLBACK_VALUES = {"order": {"orderId": None, "state": "PENDING",
                             "note": "order received, confirmation will follow"},
                   "customer": {"customerId": 4711, "name": None, "creditLimit": None}}


@dataclass(frozen=True)
class Params:
    # -- the system --------------------------------------------------------------------
    request_rate: float = param(
        20.0, range=(0.1, 500.0), unit="req/s", step=0.1,
        help="mean rate at which mobile clients send requests to the API gateway (Poisson)")
    create_order_share: float = param(
        0.5, range=(0.0, 1.0), unit="fraction", step=0.05,
        help="share of the requests that are createOrder (to the order service); the rest "
             "are getCustomer (to the customer service)")
    gateway_workers: int = param(
        10, range=(1, 200), unit="workers",
        help="the API gateway's one worker pool, shared by both endpoints: a worker waits "
             "for the downstream reply (thread per request)")
    service_workers: int = param(
        10, range=(1, 200), unit="workers",
        help="workers in the order service and in the customer service (each)")
    service_time: float = param(
        0.05, range=(0.001, 1.0), unit="s", step=0.001,
        help="mean CPU time of a request in the order or customer service (the gateway: a "
             "tenth of it); log-normal")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001,
        help="mean one-way network delay of every hop (exponential)")
    user_patience: float = param(
        5.0, range=(0.1, 600.0), unit="s", step=0.1,
        help="how long a mobile client waits for an answer before giving up (abandoned)")
    # -- the failure -------------------------------------------------------------------
    order_hangs: bool = param(
        True, help="make the order service unresponsive (accepts requests, never replies) "
                   "for a window")
    hang_at: float = param(
        15.0, range=(0.0, 3600.0), unit="s", step=1.0,
        help="when the order service stops replying")
    hang_duration: float = param(
        25.0, range=(1.0, 3600.0), unit="s", step=1.0,
        help="how long the order service stays hung (then it is restarted and the requests "
             "it held are reset)")
    # -- the protections (on the gateway's calls to both services) ----------------------
    call_timeout: float = param(
        0.0, range=(0.0, 60.0), unit="s", step=0.05,
        help="the gateway stops waiting for a downstream reply after this long (timeout); "
             "0 waits forever. Resilience4j's TimeLimiter default is 1 s")
    order_bulkhead: int = param(
        0, range=(0, 200), unit="calls",
        help="most calls the gateway has in flight to the order service at once; more end "
             "bulkhead_full (0: no bulkhead)")
    customer_bulkhead: int = param(
        0, range=(0, 200), unit="calls",
        help="most calls the gateway has in flight to the customer service at once "
             "(0: no bulkhead)")
    bulkhead_max_wait: float = param(
        0.0, range=(0.0, 10.0), unit="s", step=0.01,
        help="how long a call may wait for a free bulkhead slot before it ends bulkhead_full "
             "(Resilience4j's max wait duration, default 0)")
    breaker: str = param(
        "none", choices=_policies.BREAKERS,
        help="circuit breaker on each downstream: none, resilience4j (failure rate over a "
             "window), consecutive (the book's, pybreaker's rules) or hystrix")
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
    fallback: str = param(
        "none", choices=_policies.FALLBACKS,
        help="what the gateway answers when a call fails: nothing (the failure), a fixed "
             "value, or the last good reply (cache); an answer from it ends fallback")
    max_attempts: int = param(
        1, range=(1, 10), unit="attempts",
        help="attempts per downstream call, the first included (1: no retries); retried: "
             "timeout, error, reset, refused, rejected")
    retry_backoff: str = param(
        "constant", choices=_policies.BACKOFFS,
        help="wait between attempts: none (at once), constant, exponential (x2), randomized "
             "(exponential ±50 %), or the AWS full / equal / decorrelated jitter")
    retry_wait: float = param(
        0.5, range=(0.001, 60.0), unit="s", step=0.001,
        help="the wait before a retry (the base of the exponential and jitter backoffs); "
             "Resilience4j's default is 0.5 s")
    retry_max_wait: float = param(
        10.0, range=(0.001, 600.0), unit="s", step=0.1,
        help="the longest wait the exponential and jitter backoffs give")


def edge_policy(world: World, p: Params, service: str):
    """The gateway's policy for its calls to ``service`` ("order" or "customer")."""
    from simcomm.resilience import EdgePolicy, Fallback, SemaphoreBulkhead

    limit = p.order_bulkhead if service == "order" else p.customer_bulkhead
    fallback = None
    if p.fallback == "value":
        fallback = Fallback.value(FALLBACK_VALUES[service])
    elif p.fallback == "cache":
        fallback = Fallback.cache()
    return EdgePolicy(
        time_limit=p.call_timeout if p.call_timeout > 0 else None,
        bulkhead=(SemaphoreBulkhead(max_concurrent_calls=limit,
                                    max_wait_duration=p.bulkhead_max_wait)
                  if limit > 0 else None),
        circuit_breaker=_policies.breaker(
            p.breaker, failure_rate=p.breaker_failure_rate,
            minimum_calls=p.breaker_minimum_calls, fail_max=p.breaker_fail_max,
            open_wait=p.breaker_open_wait, name=f"api-gateway→{service}"),
        retry=_policies.retry(p.max_attempts, p.retry_backoff, p.retry_wait, p.retry_max_wait,
                              world.stream(f"policy:api-gateway→{service}:backoff")),
        fallback=fallback,
    )


def build(world: World, p: Params) -> None:
    from simcomm.resilience import protect

    world.network.set_default(Link(latency=distribution("exponential", p.network_latency)
                                   if p.network_latency > 0 else None))
    fmt = FORMATS["json"]
    Instance(world, GATEWAY, workers=p.gateway_workers, service="api-gateway", format=fmt,
             service_time=distribution("lognormal", p.service_time / 10),
             handler=route(ENDPOINTS))
    Instance(world, ORDER, workers=p.service_workers, service="order", format=fmt,
             service_time=distribution("lognormal", p.service_time),
             handler=answer(_ORDER_CREATED))
    Instance(world, CUSTOMER, workers=p.service_workers, service="customer", format=fmt,
             service_time=distribution("lognormal", p.service_time),
             handler=answer(_CUSTOMER))
    for service in ("order", "customer"):
        protect(world, "api-gateway", service, edge_policy(world, p, service))
    if p.order_hangs:
        install(world, [Hang(ORDER, p.hang_at, p.hang_duration)])
    share = p.create_order_share
    mix = {name: w for name, w in (("createOrder", share), ("getCustomer", 1.0 - share))
           if w > 0}
    OpenLoop(world, USERS, GATEWAY, p.request_rate, endpoints=mix,
             bodies={name: _BODIES[name] for name in mix}, patience=p.user_patience,
             format=fmt)


def capacity(p: Params) -> float:
    """An optimistic ceiling, in requests per second, of what the gateway can carry.

    The least of three pools, each ``workers / seconds held per request``:
    the gateway's (a worker is held for its own tenth of a service time,
    two network delays and the downstream service time), and the order and
    customer services', each carrying only its endpoint's share of the
    requests.  It leaves out the hang, which holds the workers far longer
    (that is the lesson), the coding costs and the queueing.
    """
    gateway_hold = p.service_time / 10 + 2 * p.network_latency + p.service_time
    ceiling = p.gateway_workers / gateway_hold
    for share in (p.create_order_share, 1.0 - p.create_order_share):
        if share > 0:
            ceiling = min(ceiling, p.service_workers / p.service_time / share)
    return ceiling


def load(p: Params) -> Load:
    """A request and a reply to the gateway, and one per downstream attempt (at most
    ``max_attempts``); up to three pool changes per service that handles it.

    Events: the hang and its end, and for each createOrder attempt made during
    the hang one more (a request reset when the hang ends, or the orphan reply
    of one the gateway stopped waiting for) -- spread, for the estimate, over
    the time to the hang's end (a longer run only overestimates them).
    """
    attempts = p.max_attempts
    events = 0.0
    if p.order_hangs:
        held = p.request_rate * p.create_order_share * p.hang_duration * attempts
        events = (2.0 + held) / (p.hang_at + p.hang_duration)
    return Load(requests_per_s=p.request_rate, messages_per_request=2 + 2 * attempts,
                pool_changes_per_request=3 + 3 * attempts, events_per_s=events)


SCENARIO = register(Scenario(
    name="gateway",
    title="API gateway with a hung service: timeouts, bulkheads, breakers, fallbacks",
    description=("Mobile clients call an API gateway whose one worker pool serves "
                 "createOrder (order service) and getCustomer (customer service). The order "
                 "service hangs for a while: unprotected, the gateway's workers all wait on "
                 "it and getCustomer fails too. Switch on a timeout, a bulkhead, a circuit "
                 "breaker, a fallback or retries and watch what each changes."),
    params=Params,
    build=build,
    views=("outcomes_by_endpoint", "pool_by_endpoint", "breaker_states"),
    until=60.0,
    capacity=capacity,
    load=load,
))
