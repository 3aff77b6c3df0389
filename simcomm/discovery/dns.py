"""DNS-based discovery: A records with a TTL, cached by each client.

The oldest service discovery there is, kept for comparison: a zone holds one
A record per instance of each service (``order.svc.example`` → the
addresses of its instances), a registrar adds and removes records
(Route 53 with health checks, Consul's and Kubernetes' DNS interfaces do
the same in their ways -- see :mod:`simcomm.discovery.registrar`), and a
client resolves the name and **caches the answer for its TTL**.  Nothing
tells a client that the answer changed: it learns only when its cached
answer expires and it resolves again.  So the lag after a change is up to
the TTL (plus the registrar's own detection), whatever the registry does.

* :class:`DnsServer` -- the authoritative zone (``persistent``: a zone
  file or Route 53's store survives a crash).  Every answer carries the
  record TTL ``ttl``, by default **60 s**: the TTL AWS gives the alias
  records of its load balancers (an ELB's DNS name answers with TTL 60),
  the usual choice for records that must follow instances; a plain record
  created in the Route 53 console defaults to 300 s, and Consul's own DNS
  interface answers with TTL 0 (``dns_config.service_ttl`` unset), which
  makes every lookup a query (that is :class:`~simcomm.discovery.registry.
  NoCacheView`; here ``ttl`` must be > 0).
* :class:`DnsView` -- a client's resolver with a **positive cache** that
  honours the record's TTL (as systemd-resolved or a local dnsmasq keep
  it; not Java's ``InetAddress`` cache, whose ``networkaddress.cache.ttl``
  is a fixed period of its own, 30 s in OpenJDK without a security
  manager, whatever the record says): the
  answer is used until its TTL expires (RFC 1035 §3.2.1, "the time
  interval that the resource record may be cached before the source of
  the information should again be consulted"), then the name is resolved
  again.  A resolution that fails (no answer within ``timeout``, 5 s as
  resolv.conf's ``timeout:5``) leaves an **empty** list once the old
  answer has expired -- a stale answer may not be used -- unless
  ``serve_stale`` (RFC 8767) keeps it; it is retried every ``retry``
  seconds.

Only the authoritative answer's full TTL is modelled (no caching recursive
resolver in between, whose answers would carry what is left of the TTL).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import is_flag
from simcomm.discovery.registry import RegistryServer, View, ask, check_seconds, record
from simcomm.engine.nodes import Node, ServiceError
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["DEFAULT_TTL", "DnsServer", "DnsView", "cancel_body", "register_body"]

#: the record TTL by default: an AWS load balancer's alias record (60 s)
DEFAULT_TTL = 60.0


def register_body(service: str, instance: str) -> dict[str, Any]:
    """The body of a DNS ``register`` request (add ``instance``'s A record)."""
    if not isinstance(service, str) or not service:
        raise ParamError("service", service, "a service name")
    if not isinstance(instance, str) or not instance:
        raise ParamError("instance", instance, "an instance name")
    return {"op": "register", "service": service, "instance": instance}


def cancel_body(service: str, instance: str) -> dict[str, Any]:
    """The body of a DNS ``cancel`` request (delete ``instance``'s A record)."""
    body = register_body(service, instance)
    body["op"] = "cancel"
    return body


class DnsServer(RegistryServer):
    """An authoritative DNS zone: A records per service, answered with a TTL.

    Operations: ``register`` / ``cancel`` (``service``, ``instance``: add or
    delete a record, from a registrar; cancelling an unknown record answers
    ``not_found``), ``query`` (``service``: the records, sorted, and the
    ``ttl``).  Writes ``register`` (detail ``third-party``: records are put
    there by a registrar) and ``cancel`` rows.
    """

    kind = "dns"
    persistent = True

    def __init__(self, world: World, name: str = "dns", *, ttl: float = DEFAULT_TTL,
                 **instance_args: Any) -> None:
        ttl = check_seconds("ttl", ttl)
        super().__init__(world, name, **instance_args)
        self.record_ttl = ttl
        self.records: dict[str, set[str]] = {}

    def listing(self, service: str) -> tuple[str, ...]:
        """The A records of ``service``, sorted by name."""
        return tuple(sorted(self.records.get(service, ())))

    def ttl(self, service: str) -> float | None:
        """The TTL every answer carries (the zone's record TTL)."""
        return self.record_ttl

    def clear_state(self) -> None:
        """Forget every record (never called on a crash: the zone is persistent)."""
        self.records = {}

    def _instance_of(self, body: dict[str, Any]) -> str:
        name = body.get("instance")
        if not isinstance(name, str) or not name:
            raise ServiceError("no instance named", status="bad_request")
        return name

    def op_register(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        service = self._service_of(body)
        name = self._instance_of(body)
        members = self.records.setdefault(service, set())
        if name not in members:
            members.add(name)
            record(self.world, self.name, "register", service, name, "third-party")
            self.changed(service)
        return {"instance": name}

    def op_cancel(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        service = self._service_of(body)
        name = self._instance_of(body)
        members = self.records.get(service)
        if not members or name not in members:
            raise ServiceError(f"no record for {name!r}", status="not_found")
        members.discard(name)
        record(self.world, self.name, "cancel", service, name)
        self.changed(service)
        return {"instance": name}


class DnsView(View):
    """A client's resolver with a positive cache (see the module docstring).

    Resolves ``service`` when the cached answer expires and keeps the new
    answer for the TTL it carries.  The first answer's remaining lifetime is
    drawn uniformly in ``(0, ttl]`` from the stream
    ``dns:<owner>:<service>:phase`` -- as if a shared cache had been filled
    at some unknown earlier time -- so that clients do not all expire
    together; every later answer lives its full TTL.  Between the expiry and
    the new answer (one round trip) the old answer is still used, as a
    resolver that refreshes when the TTL runs out would.  ``timeout``: how
    long a resolution waits (5 s); ``retry``: the wait before trying again
    after a failure (1 s); ``serve_stale``: keep using an expired answer
    while resolution fails (RFC 8767; off by default, as in a plain stub
    resolver).
    """

    def __init__(self, world: World, owner: Node, registry: str, service: str, *,
                 timeout: float = 5.0, retry: float = 1.0, serve_stale: bool = False) -> None:
        super().__init__(world, owner, registry, service)
        if not isinstance(world.nodes.get(registry), DnsServer):
            raise ParamError("registry", registry, "the name of a DNS server")
        self.timeout = check_seconds("timeout", timeout)
        self.retry = check_seconds("retry", retry)
        if not is_flag(serve_stale):
            raise ParamError("serve_stale", serve_stale, "True or False")
        self.serve_stale = bool(serve_stale)
        self._phase = world.stream(f"dns:{owner.name}:{service}:phase")
        #: when the cached answer expires (None: nothing cached yet)
        self.expires: float | None = None

    def _start(self) -> None:
        self.env.process(self._resolve_loop())

    def _resolve_loop(self) -> Generator[Event, Any, None]:
        env = self.env
        owner = self.owner
        body = {"op": "query", "service": self.service}
        first = True
        while not getattr(owner, "stopped", False):
            up = owner.up
            reply = yield from ask(owner, self.registry, body, self.timeout)
            if reply is not None and reply.status == "ok":
                ttl = float(reply.body["ttl"])  # > 0: a DnsServer's record TTL
                self.update(reply.body["instances"])
                if first:
                    ttl *= 1.0 - self._phase.random()  # in (0, ttl]
                    first = False
                self.expires = env.now + ttl
                yield env.timeout(ttl)
                continue
            if up:
                record(self.world, owner.name, "lookup_failed", self.service, None,
                       "timeout" if reply is None else reply.status)
            if not self.serve_stale and (self.expires is None or env.now >= self.expires):
                self.update(())
            yield env.timeout(self.retry)
