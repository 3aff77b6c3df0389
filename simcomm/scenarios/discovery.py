"""``discovery``: an order service behind service discovery, while its instances churn.

*Microservices Patterns* §3.2.4.  Mobile clients call an API gateway; the
gateway calls one of the ``instances`` of the order service, found through
a service registry whose picture of the world lags behind it:

* ``pattern="client-side"`` -- the book's **self-registration + client-side
  discovery** (Eureka + Ribbon): each order instance registers itself and
  renews its lease; the gateway's discovery library caches the registry's
  list, refreshes it on its own period and picks an instance per call with
  its ``balancer``;
* ``pattern="server-side"`` -- **third-party registration + server-side
  discovery** (Kubernetes): the platform registers each instance (a
  readiness probe decides), and the gateway sends every call to one
  address, a router (kube-proxy's virtual IP) that keeps its own view and
  picks a backend.

``registry`` says whose rules and timings the registry follows (Eureka,
Consul, Kubernetes, DNS), each timing defaulting to the real system's
(REFERENCE §5); ``registration`` is who registers (``auto``: the
pattern's pairing, and always the platform for Kubernetes and DNS).

The churn is the same whichever pattern runs: by default one order
instance crashes at ``churn_at`` **without a clean shutdown** (no cancel
reaches the registry) and the platform launches a replacement on a new
address ``replace_after`` seconds later.  Until the registry notices and
every view on the way has refreshed, the gateway keeps calling the dead
address: those are the **stale calls**, and the time from the death to
the last of them is the **detection lag** (``res.detection()``;
``stale_calls``, ``detection_lag`` in the summary).  Other churns: a hang
(the process lives and renews its lease, but serves nothing), a clean
shutdown (deregister, drain, stop), a node failure, a rolling upgrade, an
autoscaler following a load step; and the registry's own faults.

The run begins in a steady state: the instances running at time zero are
registered and healthy already (:func:`simcomm.discovery.kinds.warm`), as
after a long time up, so the first calls find them; instances launched
later (replacements, scale-outs, an upgrade) go through registration and
every cache as they would.

A retry on another instance (``retry_next_server``, Ribbon's
``MaxAutoRetriesNextServer``) hides a stale entry from the user, and a
``call_timeout`` (the partial-failure capability's time limit) is what
lets a call to a hung instance end at all.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from simcomm.discovery import kinds
from simcomm.discovery.balancers import balancer as make_balancer
from simcomm.discovery.churn import Autoscaler, Fleet, install_churn
from simcomm.discovery.client import DiscoveryClient
from simcomm.discovery.router import Router
from simcomm.engine.faults import Crash, Hang, Slowdown, install
from simcomm.engine.messages import Message
from simcomm.engine.network import Link
from simcomm.engine.nodes import Context, Instance
from simcomm.engine.randomness import distribution
from simcomm.engine.workload import OpenLoop, RateSchedule
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.rpc.call import call
from simcomm.rpc.handlers import answer, answer_for
from simcomm.scenarios.base import Load, Scenario, param, register

__all__ = ["GATEWAY", "ROUTER", "SERVICE", "SLOW", "USERS", "Params", "balancer_name", "capacity",
           "churn_steps", "load", "timings"]

GATEWAY = "api-gateway-1"
#: The instance ``slow_factor`` slows down.
SLOW = "order-1"
ROUTER = "order-router"
SERVICE = "order"
USERS = "mobile-clients"
_ORDER = {"orderId": 123456789, "state": "APPROVAL_PENDING"}

#: The churn schedules, all starting at ``churn_at``.
CHURNS = ("none", "crash", "hang", "shutdown", "node-failure", "mixed", "rolling-upgrade",
          "autoscale")

REGISTRIES = kinds.KINDS
PATTERNS = kinds.PATTERNS
REGISTRATIONS = kinds.REGISTRATIONS
BALANCER_CHOICES = ("auto", "round_robin", "random", "least_outstanding", "power_of_two",
                    "weighted_response_time")
REGISTRY_FAULTS = ("none", "crash", "hang", "partition")


@dataclass(frozen=True)
class Params:
    # -- the pattern -------------------------------------------------------------------
    pattern: str = param(
        "client-side", choices=PATTERNS,
        help="client-side: the gateway's own discovery library caches the registry and "
             "picks an instance (Eureka + Ribbon); server-side: the gateway calls a router "
             "(a virtual IP, kube-proxy) that keeps the view and picks")
    registry: str = param(
        "eureka", choices=REGISTRIES,
        help="whose rules and timings the registry follows: eureka (leases), consul (TTL "
             "checks, blocking queries), kubernetes (readiness probes, endpoints watch) or "
             "dns (records cached for a TTL)")
    registration: str = param(
        "auto", choices=REGISTRATIONS,
        help="who registers the instances: self (the instance registers and renews), "
             "third-party (a registrar or the platform probes their health); auto: self for "
             "client-side, third-party for server-side, and always the platform for "
             "kubernetes and dns")
    balancer: str = param(
        "auto", choices=BALANCER_CHOICES,
        help="how the caller (or the router) picks an instance per call; auto: random for "
             "a kubernetes router (kube-proxy's iptables rules), round robin otherwise "
             "(Ribbon's)")
    cache: bool = param(
        True, help="the caller keeps the registry's answer and refreshes it on its period; "
                   "off: it asks the registry before every call (fresh, but lost when the "
                   "registry is)")
    retry_next_server: int = param(
        0, range=(0, 3), unit="retries",
        help="a failed call is tried again on another instance this many times (Ribbon's "
             "MaxAutoRetriesNextServer; kube-proxy never does)")
    call_timeout: float = param(
        0.0, range=(0.0, 30.0), unit="s", step=0.1,
        help="the gateway stops waiting for an order instance after this long (0: waits "
             "forever — a hung instance then holds the gateway's worker)")
    # -- the system --------------------------------------------------------------------
    instances: int = param(
        10, range=(1, 200), unit="instances", help="order service instances at the start")
    request_rate: float = param(
        10.0, range=(0.1, 2000.0), unit="req/s", step=0.1,
        help="mean rate at which mobile clients call the gateway (Poisson)")
    service_time: float = param(
        0.02, range=(0.001, 1.0), unit="s", step=0.001,
        help="mean CPU time of a request in an order instance (log-normal)")
    workers: int = param(
        4, range=(1, 200), unit="workers", help="workers per order instance")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001,
        help="mean one-way network delay of every hop (exponential)")
    slow_factor: float = param(
        1.0, range=(1.0, 50.0), unit="x", step=0.5,
        help="one order instance (order-1) does all its work this many times slower, from "
             "the start (1: none) — what a balancer that watches load can steer around")
    user_patience: float = param(
        10.0, range=(0.1, 600.0), unit="s", step=0.1,
        help="how long a mobile client waits for an answer before giving up (abandoned)")
    # -- the churn ---------------------------------------------------------------------
    churn: str = param(
        "crash", choices=CHURNS,
        help="what happens to the order instances: a crash without clean shutdown "
             "(replaced on a new address), a hang, a clean shutdown, a node failure, all of "
             "them one after another (mixed), a rolling upgrade, or an autoscaler facing a "
             "load step (autoscale)")
    churn_at: float = param(
        60.0, range=(0.0, 36000.0), unit="s", step=1.0, help="when the churn begins")
    replace_after: float = param(
        30.0, range=(0.0, 3600.0), unit="s", step=1.0,
        help="how long the platform takes to launch a replacement on a new address after a "
             "crash (0: none)")
    hang_duration: float = param(
        300.0, range=(1.0, 36000.0), unit="s", step=1.0, help="how long a hang lasts")
    drain: float = param(
        5.0, range=(0.0, 600.0), unit="s", step=0.5,
        help="a clean shutdown deregisters first, then serves this long before it stops")
    startup: float = param(
        5.0, range=(0.0, 600.0), unit="s", step=0.5,
        help="how long a new instance takes to start before it can serve and register")
    target_utilisation: float = param(
        0.6, range=(0.05, 1.0), unit="fraction", step=0.05,
        help="autoscale: the utilisation the autoscaler aims at (HPA target)")
    # -- the registry's own faults -------------------------------------------------------
    registry_fault: str = param(
        "none", choices=REGISTRY_FAULTS,
        help="the registry's own failure: it crashes, hangs, or is cut off from everyone")
    registry_fault_at: float = param(
        300.0, range=(0.0, 36000.0), unit="s", step=1.0, help="when the registry fails")
    registry_fault_duration: float = param(
        120.0, range=(1.0, 36000.0), unit="s", step=1.0, help="how long it stays failed")
    # -- the registry's timings (each defaults to the real system's) ---------------------
    eureka_renewal_interval: float = param(
        30.0, range=(1.0, 600.0), unit="s", step=1.0,
        help="eureka: an instance renews its lease this often "
             "(lease-renewal-interval-in-seconds)")
    eureka_lease_duration: float = param(
        90.0, range=(1.0, 3600.0), unit="s", step=1.0,
        help="eureka: a lease not renewed for this long expires "
             "(lease-expiration-duration-in-seconds)")
    eureka_eviction_interval: float = param(
        60.0, range=(1.0, 3600.0), unit="s", step=1.0,
        help="eureka: the server's eviction task runs this often "
             "(eviction-interval-timer-in-ms)")
    eureka_cache_interval: float = param(
        30.0, range=(1.0, 600.0), unit="s", step=1.0,
        help="eureka: the server's read-only response cache refreshes this often "
             "(response-cache-update-interval-ms)")
    eureka_fetch_interval: float = param(
        30.0, range=(1.0, 600.0), unit="s", step=1.0,
        help="eureka: a client fetches the registry this often "
             "(registry-fetch-interval-seconds)")
    ribbon_refresh_interval: float = param(
        30.0, range=(1.0, 600.0), unit="s", step=1.0,
        help="eureka: Ribbon copies the client's list into its load balancer this often "
             "(ServerListRefreshInterval)")
    eureka_quirk: bool = param(
        True, help="eureka: a renewal sets the expiry one lease duration too far, so a dead "
                   "instance expires after about 2 x the duration (kept upstream on purpose)")
    eureka_self_preservation: bool = param(
        True, help="eureka: stop evicting when renewals fall to 85 % of those expected (a "
                   "network problem, not dead instances, the server assumes)")
    consul_ttl: float = param(
        30.0, range=(1.0, 600.0), unit="s", step=1.0,
        help="consul: a TTL check not passed for this long turns critical (passed every "
             "ttl x 2/3)")
    consul_deregister_after: float = param(
        60.0, range=(60.0, 36000.0), unit="s", step=1.0,
        help="consul: a service critical for this long is removed by the reaper "
             "(deregister_critical_service_after, at least 1 min)")
    probe_period: float = param(
        10.0, range=(1.0, 300.0), unit="s", step=1.0,
        help="kubernetes readiness probe (and a registrar's health check): how often "
             "(periodSeconds)")
    probe_timeout: float = param(
        1.0, range=(0.1, 60.0), unit="s", step=0.1,
        help="a probe not answered within this long fails (timeoutSeconds)")
    failure_threshold: int = param(
        3, range=(1, 20), unit="probes",
        help="consecutive failed probes before an instance is taken out (failureThreshold)")
    success_threshold: int = param(
        1, range=(1, 20), unit="probes",
        help="consecutive good probes before it is put back (successThreshold)")
    node_grace: float = param(
        40.0, range=(1.0, 600.0), unit="s", step=1.0,
        help="kubernetes: a node silent for this long is marked not ready and its pods "
             "leave the endpoints (node-monitor-grace-period)")
    proxy_sync: float = param(
        1.0, range=(0.0, 60.0), unit="s", step=0.1,
        help="kubernetes: kube-proxy applies an endpoints change at most this often "
             "(--iptables-min-sync-period)")
    dns_ttl: float = param(
        60.0, range=(0.0, 3600.0), unit="s", step=1.0,
        help="dns: clients cache an answer this long")
    dns_check_interval: float = param(
        30.0, range=(10.0, 600.0), unit="s", step=1.0,
        help="dns: the health checker probes each instance this often (Route 53: 30 s)")
    dns_failure_threshold: int = param(
        3, range=(1, 10), unit="checks",
        help="dns: consecutive results before a record is removed or restored (Route 53: 3)")


def timings(p: Params) -> kinds.Timings:
    """The registry timings the knobs set."""
    return kinds.Timings(
        renewal_interval=p.eureka_renewal_interval, lease_duration=p.eureka_lease_duration,
        eviction_interval=p.eureka_eviction_interval,
        response_cache_interval=p.eureka_cache_interval,
        fetch_interval=p.eureka_fetch_interval,
        ribbon_refresh_interval=p.ribbon_refresh_interval,
        lease_expiry_quirk=p.eureka_quirk, self_preservation=p.eureka_self_preservation,
        consul_ttl=p.consul_ttl, consul_deregister_after=p.consul_deregister_after,
        probe_period=p.probe_period, probe_timeout=p.probe_timeout,
        failure_threshold=p.failure_threshold, success_threshold=p.success_threshold,
        node_grace=p.node_grace, proxy_sync=p.proxy_sync, dns_ttl=p.dns_ttl,
        dns_check_interval=p.dns_check_interval,
        dns_failure_threshold=p.dns_failure_threshold)


def balancer_name(p: Params) -> str:
    """The balancer ``auto`` stands for: kube-proxy's random pick for a Kubernetes
    router, Ribbon's round robin otherwise."""
    if p.balancer != "auto":
        return p.balancer
    if p.pattern == "server-side" and p.registry == "kubernetes":
        return "random"
    return "round_robin"


def _targets(n: int) -> list[str]:
    """The initial instances churn picks, in order: 2, 3, 1, 4, ... (as many as exist)."""
    order = [2, 3, 1, *range(4, n + 1)]
    return [f"{SERVICE}-{i}" for i in order if i <= n]


#: Seconds between the steps of the ``mixed`` churn.
MIXED_SPACING = 120.0


def churn_steps(p: Params) -> list[tuple[str, float, Any, float | None]]:
    """The churn schedule the knobs describe, as Fleet steps."""
    t0 = p.churn_at
    replace = p.replace_after if p.replace_after > 0 else None
    targets = _targets(p.instances)
    one = {
        "crash": ("crash", replace), "hang": ("hang", p.hang_duration),
        "shutdown": ("shutdown", p.drain), "node-failure": ("node_failure", replace),
    }
    if p.churn in one:
        kind, seconds = one[p.churn]
        return [(kind, t0, targets[0], seconds)]
    if p.churn == "mixed":
        plan = [("crash", replace), ("hang", p.hang_duration), ("shutdown", p.drain),
                ("node_failure", replace)]
        return [(kind, t0 + i * MIXED_SPACING, targets[i % len(targets)], seconds)
                for i, (kind, seconds) in enumerate(plan)]
    if p.churn == "rolling-upgrade":
        return [("upgrade", t0, None, p.drain)]
    return []


#: The load step the ``autoscale`` churn puts on the service: this many times the rate.
AUTOSCALE_STEP = 3.0


def check(p: Params) -> None:
    """Cross-field rules, before anything runs."""
    kinds.registration_mode(p.registry, p.pattern, p.registration)
    if p.churn == "mixed" and p.instances < 2:
        raise ParamError("instances", p.instances,
                         "at least 2 with churn=mixed (it needs an instance left to serve)")


def build(world: World, p: Params) -> None:
    from simcomm.resilience import EdgePolicy, protect

    world.network.set_default(Link(latency=distribution("exponential", p.network_latency)
                                   if p.network_latency > 0 else None))
    t = timings(p)
    server = kinds.registry_server(world, p.registry, t)
    mode = kinds.registration_mode(p.registry, p.pattern, p.registration)
    fleet = Fleet(world, SERVICE, instances=p.instances,
                  registration=kinds.registration(world, p.registry, mode, server.name, t),
                  startup=p.startup, workers=p.workers,
                  service_time=distribution("lognormal", p.service_time),
                  handler=answer(_ORDER))
    # the run begins in a steady state: the registry lists the instances already
    kinds.warm(server, mode, SERVICE, fleet.members, t)
    pick = make_balancer(balancer_name(p))
    if p.pattern == "client-side":
        gateway = Instance(world, GATEWAY, workers=200, service="api-gateway",
                           service_time=distribution("lognormal", p.service_time / 10))
        client = DiscoveryClient(
            world, gateway, SERVICE,
            kinds.view(world, p.registry, gateway, server.name, SERVICE, t, cache=p.cache),
            pick, retry_next_server=p.retry_next_server)

        def via_client(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
            yield ctx.work()
            reply = yield from client.call(ctx, request.body)
            return answer_for(SERVICE, reply)

        gateway.handler = via_client
    else:
        router = Router(world, ROUTER, service=SERVICE)
        router.attach(kinds.view(world, p.registry, router, server.name, SERVICE, t,
                                 cache=p.cache),
                      pick, retry_next_server=p.retry_next_server)

        def via_router(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
            yield ctx.work()
            reply = yield from call(ctx, ROUTER, request.body)
            return answer_for(ROUTER, reply)

        gateway = Instance(world, GATEWAY, workers=200, service="api-gateway",
                           service_time=distribution("lognormal", p.service_time / 10),
                           handler=via_router)
        # kube-proxy's rules run on the caller's own machine: no hop between them
        world.network.link(GATEWAY, ROUTER, latency=0.0)
    if p.call_timeout > 0:
        callers = "api-gateway" if p.pattern == "client-side" else f"{SERVICE}-router"
        protect(world, callers, SERVICE, EdgePolicy(time_limit=p.call_timeout))
    install_churn(fleet, churn_steps(p))
    if p.slow_factor > 1:
        install(world, [Slowdown(SLOW, 0.0, None, factor=p.slow_factor)])
    rate: float | RateSchedule = p.request_rate
    if p.churn == "autoscale":
        rate = RateSchedule([(0.0, p.request_rate),
                             (p.churn_at, p.request_rate * AUTOSCALE_STEP)])
        Autoscaler(fleet, p.target_utilisation, min_replicas=1,
                   max_replicas=max(p.instances * 4, 10), drain=p.drain)
    if p.registry_fault == "crash":
        install(world, [Crash(server.name, p.registry_fault_at, p.registry_fault_duration)])
    elif p.registry_fault == "hang":
        install(world, [Hang(server.name, p.registry_fault_at, p.registry_fault_duration)])
    elif p.registry_fault == "partition":
        world.network.cut([server.name], at=p.registry_fault_at,
                          heal_at=p.registry_fault_at + p.registry_fault_duration)
    OpenLoop(world, USERS, GATEWAY, rate, body={"order": 1}, patience=p.user_patience)


def capacity(p: Params) -> float:
    """An optimistic ceiling in requests per second: every initial order instance's
    workers busy, each request holding one for a service time (the gateway's
    200 workers are never the limit at these rates)."""
    return p.instances * p.workers / p.service_time


def load(p: Params) -> Load:
    """A request and its reply to the gateway and to one order instance (more with
    retries on another instance); the discovery traffic is a few messages per
    instance per renewal or probe period, spread as events."""
    periods = {"eureka": p.eureka_renewal_interval, "consul": p.consul_ttl * 2 / 3,
               "kubernetes": p.probe_period, "dns": p.dns_check_interval}
    per_s = 4.0 * p.instances / periods[p.registry] + 1.0
    rate = p.request_rate * (AUTOSCALE_STEP if p.churn == "autoscale" else 1.0)
    return Load(requests_per_s=rate,
                messages_per_request=4 + 2 * p.retry_next_server + (2 if not p.cache else 0),
                pool_changes_per_request=6, events_per_s=per_s)


SCENARIO = register(Scenario(
    name="discovery",
    title="Service discovery: registries, both patterns, stale calls while instances churn",
    description=("An API gateway calls the instances of an order service, found through a "
                 "registry (Eureka, Consul, Kubernetes or DNS) by client-side or server-side "
                 "discovery. An instance crashes without a clean shutdown: watch the calls "
                 "that still go to it until every cache on the way has noticed."),
    params=Params,
    build=build,
    views=("instance_timeline", "stale_calls_over_time", "load_share"),
    until=900.0,
    check=check,
    capacity=capacity,
    load=load,
))
