"""One name per registry kind: its server, a caller's view of it, its registration.

Eureka, Consul, Kubernetes and DNS are built from the same parts
(:mod:`simcomm.discovery.registry`) with their own rules; this module puts
each kind's parts together from one :class:`Timings`, whose every field
defaults to the real system's (REFERENCE §5), so that a scenario -- or a
user's own topology -- switches registry with one word:

>>> from simcomm.discovery import kinds
>>> kinds.registration_mode("kubernetes", "client-side", "auto")
'third-party'

Which registrations each kind has:

* **eureka** -- ``self``: the instance's Eureka client registers, renews
  every 30 s and cancels on a clean shutdown; ``third-party``: a registrar
  (Netflix Prana, a sidecar) probes it and registers / renews / cancels
  on its behalf.
* **consul** -- ``self``: the instance registers with a TTL check and
  passes it (Spring Cloud Consul's heartbeat); ``third-party``: a
  registrar (Registrator) registers it with an HTTP check that Consul runs
  itself.
* **kubernetes** -- ``third-party`` only: the kubelet's readiness probe
  decides and the endpoints follow.
* **dns** -- ``third-party`` only: a health checker (Route 53's) keeps an
  A record per healthy instance.

``auto`` picks the book's pairing: self-registration for client-side
discovery, third-party for server-side -- and third-party always where
it is the only kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simcomm.discovery import consul, dns
from simcomm.discovery.consul import ConsulRegistration, ConsulServer, ConsulView
from simcomm.discovery.dns import DnsServer, DnsView
from simcomm.discovery.eureka import EurekaRegistration, EurekaServer, EurekaView
from simcomm.discovery.kubernetes import KubernetesApiServer, KubernetesView
from simcomm.discovery.probe import ProbeSpec
from simcomm.discovery.registrar import Registrar
from simcomm.discovery.registry import NoCacheView, Registration, RegistryServer, View
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.nodes import Instance, Node
    from simcomm.engine.world import World

__all__ = ["KINDS", "PATTERNS", "REGISTRATIONS", "SERVER_NAMES", "Timings", "registration",
           "registration_mode", "registry_server", "view", "warm"]

#: The registry kinds, in the order a learner meets them.
KINDS = ("eureka", "consul", "kubernetes", "dns")

#: The discovery patterns of *Microservices Patterns* §3.2.4.
PATTERNS = ("client-side", "server-side")

#: Who registers: ``auto`` (the pattern's pairing), the instance, or a registrar.
REGISTRATIONS = ("auto", "self", "third-party")

#: The registry server's node name per kind.
SERVER_NAMES = {"eureka": "eureka-server", "consul": "consul-server",
                "kubernetes": "kube-apiserver", "dns": "dns-server"}

#: The kinds an instance can register itself with.
_SELF = ("eureka", "consul")


@dataclass(frozen=True)
class Timings:
    """Every period of every registry kind, each defaulting to the real system's.

    Eureka (``eureka.instance.*``, ``eureka.server.*``, ``eureka.client.*``,
    Ribbon): ``renewal_interval`` 30 s (``lease-renewal-interval-in-seconds``),
    ``lease_duration`` 90 s (``lease-expiration-duration-in-seconds``),
    ``eviction_interval`` 60 s (``eviction-interval-timer-in-ms``),
    ``response_cache_interval`` 30 s (``response-cache-update-interval-ms``),
    ``fetch_interval`` 30 s (``registry-fetch-interval-seconds``),
    ``ribbon_refresh_interval`` 30 s (``ServerListRefreshInterval``),
    ``lease_expiry_quirk`` (the renewal that adds the duration twice: on,
    as upstream keeps it), ``self_preservation`` (on) and
    ``renewal_percent_threshold`` 0.85.

    Consul: ``consul_ttl`` 30 s (a TTL check; passed every ttl × 2/3, Spring
    Cloud Consul's ratio), ``consul_deregister_after`` 60 s
    (``DeregisterCriticalServiceAfter``; Consul's minimum, None: never).

    Probes (Kubernetes' readiness probe, and a registrar's checks for
    Eureka and Consul): ``probe_period`` 10 s, ``probe_timeout`` 1 s,
    ``failure_threshold`` 3, ``success_threshold`` 1.  Kubernetes:
    ``node_grace`` 40 s (``node-monitor-grace-period``), ``proxy_sync`` 1 s
    (kube-proxy's ``--iptables-min-sync-period``).

    DNS: ``dns_ttl`` 60 s; Route 53's health checks every
    ``dns_check_interval`` 30 s, ``dns_failure_threshold`` 3 results.
    """

    renewal_interval: float = 30.0
    lease_duration: float = 90.0
    eviction_interval: float = 60.0
    response_cache_interval: float = 30.0
    fetch_interval: float = 30.0
    ribbon_refresh_interval: float = 30.0
    lease_expiry_quirk: bool = True
    self_preservation: bool = True
    renewal_percent_threshold: float = 0.85
    consul_ttl: float = 30.0
    consul_deregister_after: float | None = 60.0
    probe_period: float = 10.0
    probe_timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    node_grace: float = 40.0
    proxy_sync: float = 1.0
    dns_ttl: float = 60.0
    dns_check_interval: float = 30.0
    dns_failure_threshold: int = 3

    def probe(self) -> ProbeSpec:
        """The probe of a kubelet or a registrar for Eureka and Consul."""
        return ProbeSpec(period=self.probe_period, timeout=self.probe_timeout,
                         failure_threshold=self.failure_threshold,
                         success_threshold=self.success_threshold)

    def dns_probe(self) -> ProbeSpec:
        """Route 53's health check, with this interval and threshold (both ways)."""
        return ProbeSpec(period=self.dns_check_interval, timeout=4.0,
                         failure_threshold=self.dns_failure_threshold,
                         success_threshold=self.dns_failure_threshold)


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ParamError("registry", kind, "one of " + ", ".join(KINDS))
    return kind


def registration_mode(kind: str, pattern: str, registration: str = "auto") -> str:
    """``self`` or ``third-party`` for ``kind`` under ``pattern`` (see the module
    docstring); a ParamError for a pairing the kind does not have."""
    _kind(kind)
    if pattern not in PATTERNS:
        raise ParamError("pattern", pattern, "one of " + ", ".join(PATTERNS))
    if registration not in REGISTRATIONS:
        raise ParamError("registration", registration, "one of " + ", ".join(REGISTRATIONS))
    if registration == "auto":
        return "self" if pattern == "client-side" and kind in _SELF else "third-party"
    if registration == "self" and kind not in _SELF:
        who = ("the kubelet registers pods (readiness probes)" if kind == "kubernetes"
               else "a health checker keeps the records")
        raise ParamError("registration", registration,
                         f"third-party or auto with registry={kind}: {who}")
    return registration


def registry_server(world: World, kind: str, timings: Timings | None = None,
                    name: str | None = None) -> RegistryServer:
    """The registry server of ``kind``, named ``SERVER_NAMES[kind]`` unless ``name``."""
    t = timings or Timings()
    name = name or SERVER_NAMES[_kind(kind)]
    if kind == "eureka":
        return EurekaServer(world, name, lease_duration=t.lease_duration,
                            renewal_interval=t.renewal_interval,
                            renewal_percent_threshold=t.renewal_percent_threshold,
                            enable_self_preservation=t.self_preservation,
                            eviction_interval=t.eviction_interval,
                            response_cache_update_interval=t.response_cache_interval,
                            lease_expiry_quirk=t.lease_expiry_quirk)
    if kind == "consul":
        return ConsulServer(world, name)
    if kind == "kubernetes":
        return KubernetesApiServer(world, name, node_monitor_grace_period=t.node_grace)
    return DnsServer(world, name, ttl=t.dns_ttl)


def registration(world: World, kind: str, mode: str, registry: str,
                 timings: Timings | None = None, *, registrar_name: str = "registrar"
                 ) -> Registration | Callable[[Instance], Registration]:
    """What registers the instances of a :class:`~simcomm.discovery.churn.Fleet`
    with the server ``registry`` of ``kind``: one Registration for all, or a
    function making each instance's own (a kubelet per pod)."""
    t = timings or Timings()
    _kind(kind)
    if mode not in ("self", "third-party"):
        raise ParamError("registration", mode, "self or third-party")
    if kind == "kubernetes":
        if mode == "self":
            registration_mode(kind, "client-side", "self")  # raises, saying why
        server = world.nodes[registry]
        assert isinstance(server, KubernetesApiServer)
        return server.registration(probe=t.probe())
    if mode == "self":
        if kind == "eureka":
            return EurekaRegistration(world, registry, renewal_interval=t.renewal_interval,
                                      lease_duration=t.lease_duration)
        if kind == "consul":
            return ConsulRegistration(world, registry, ttl=t.consul_ttl,
                                      deregister_after=t.consul_deregister_after)
        registration_mode(kind, "client-side", "self")  # dns: raises, saying why
    if kind == "eureka":
        return Registrar(world, registrar_name, registry, probe=t.probe(),
                         renewal_interval=t.renewal_interval)
    if kind == "consul":
        return Registrar(world, registrar_name, registry, probe=t.probe(), check="http",
                         deregister_after=t.consul_deregister_after)
    return Registrar(world, registrar_name, registry, probe=t.dns_probe())


def view(world: World, kind: str, owner: Node, registry: str, service: str,
         timings: Timings | None = None, *, cache: bool = True) -> View:
    """``owner``'s view of ``service`` in the registry ``registry`` of ``kind``:
    the kind's own cache (Eureka's fetch + Ribbon's refresh, Consul's blocking
    queries, Kubernetes' watch + kube-proxy's sync, a DNS resolver's TTL), or a
    :class:`NoCacheView` that asks before every call (``cache=False``)."""
    t = timings or Timings()
    _kind(kind)
    if not cache:
        return NoCacheView(world, owner, registry, service)
    if kind == "eureka":
        return EurekaView(world, owner, registry, service,
                          registry_fetch_interval=t.fetch_interval,
                          server_list_refresh_interval=t.ribbon_refresh_interval)
    if kind == "consul":
        return ConsulView(world, owner, registry, service)
    if kind == "kubernetes":
        return KubernetesView(world, owner, registry, service, proxy_sync=t.proxy_sync)
    return DnsView(world, owner, registry, service)



def warm(server: RegistryServer, mode: str, service: str, instances: Iterable[str],
         timings: Timings | None = None) -> None:
    """Put ``instances`` in ``server`` as they would be after running a while.

    A run begins in a **steady state**: the instances that exist when the
    world is built have registered (and, for a registrar or a kubelet,
    passed their checks) long ago, so the registry already lists them and
    the first query of every view finds them -- instead of a cold start
    in which the first calls find no instance.  Each is registered through
    the server's own operation at time zero, with the body its
    registration would send (a TTL or HTTP check passing, a ready pod on
    its own node with a fresh node lease); their registrations then go on
    as usual (a registration repeated at time zero changes nothing).
    """
    t = timings or Timings()
    by = "self" if mode == "self" else "third-party"
    now = server.env.now
    for name in instances:
        if isinstance(server, EurekaServer):
            server.op_register({"op": "register", "service": service, "instance": name,
                                "by": by}, now)
        elif isinstance(server, ConsulServer):
            if mode == "self":
                body = consul.register_body(service, name, check="ttl", ttl=t.consul_ttl,
                                            deregister_after=t.consul_deregister_after,
                                            status=consul.PASSING, by=by)
            else:
                body = consul.register_body(service, name, check="http",
                                            interval=t.probe_period, timeout=t.probe_timeout,
                                            deregister_after=t.consul_deregister_after,
                                            status=consul.PASSING, by=by)
            server.op_register(body, now)
        elif isinstance(server, KubernetesApiServer):
            pod = {"service": service, "instance": name, "node": f"kubelet-{name}"}
            server.op_heartbeat({"op": "heartbeat", **pod}, now)
            server.op_ready({"op": "ready", **pod, "detail": "probe", "seq": 0}, now)
        elif isinstance(server, DnsServer):
            server.op_register(dns.register_body(service, name), now)
        else:
            raise ParamError("server", server, "a Eureka, Consul, Kubernetes or DNS server")
