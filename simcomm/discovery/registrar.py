"""Third-party registration: a registrar probes instances and registers the healthy ones.

*Microservices Patterns* §3.2.4: with the third-party registration pattern
the instances do not register themselves; a **registrar** -- Registrator
(gliderlabs), Netflix Prana, an AWS Route 53 health checker, Kubernetes
itself -- watches them and keeps the registry up to date.  The service
code knows nothing of the registry, and the registrar is one more moving
part that can lag, crash or be cut off.

:class:`Registrar` is that component, for the registries whose clients
would otherwise register themselves: Eureka, Consul and DNS
(Kubernetes' own registrar is the kubelet,
:class:`simcomm.discovery.kubernetes.Kubelet`).  It is a node of its own
(a central health checker, as Route 53's are: a machine that dies with an
instance does not take the registrar with it).  For every watched
instance it runs one probe loop from a random phase
(:class:`~simcomm.discovery.probe.ProbeSpec`: ``period``, ``timeout``,
``failure_threshold``, ``success_threshold``, ``initial_delay``), feeds
each result to a :class:`~simcomm.discovery.probe.ProbeState`
(Kubernetes' threshold semantics, which Route 53 shares: a status changes
after that many consecutive results), and after each probe makes the
registry agree with the verdict:

* **Eureka** (``register`` / ``renew`` / ``cancel``): registered when
  ready, cancelled when not; while ready it renews the lease on the
  instance's behalf every ``renewal_interval`` (30 s,
  ``eureka.instance.lease-renewal-interval-in-seconds``), as Prana's
  embedded Eureka client does for a non-JVM service, checked at each probe
  tick -- so renewals fall on probe ticks, at the first tick at least
  ``renewal_interval`` after the last one.  A renewal answered
  ``not_found`` (the server lost its registry, or evicted the lease)
  registers again at once, as ``DiscoveryClient.renew`` does.
* **Consul**, ``check="ttl"`` (``register`` / ``pass`` / ``deregister``):
  registered with a TTL check (``ttl``, 30 s) when ready, passed after each
  successful probe while ready (the registrar is the check's updater),
  deregistered when not ready.  ``check="http"``: Registrator's way -- the
  instance is registered at start with an HTTP check that Consul runs
  itself (``interval`` / ``timeout`` from the probe spec, Consul's own
  thresholds), and deregistered on a clean shutdown; the registrar does no
  probing then.
* **DNS** (``register`` / ``cancel``): an A record while ready, none
  otherwise -- Route 53 failover / health-checked records.  Route 53's
  health checks run every 30 s (``RequestInterval``), need an answer within
  about 4 s and change status after 3 consecutive results either way
  (``FailureThreshold``): :data:`ROUTE53_PROBE`, the default for a DNS
  registry.

A request the registry did not acknowledge (down, cut off, timed out) is
tried again after the next probe.  ``shutdown(inst)`` (a clean shutdown)
takes the instance out at once and stops watching it; ``machine_down``
changes nothing here -- the probes fail and the thresholds decide.  The
registrar itself is a Registration for every instance it watches: pass
``registrar.registration`` to :class:`~simcomm.discovery.churn.Fleet`.

Traced rows (node = the registrar): ``probe_failed`` (detail: why).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import is_flag
from simcomm.discovery.probe import ProbeSpec, ProbeState, probe_status
from simcomm.discovery.registry import RegistryServer, ask, check_seconds, record
from simcomm.engine.nodes import Instance, Node
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["KINDS", "ROUTE53_PROBE", "Registrar"]

#: the registry kinds a Registrar can keep up to date, and the ops it sends them
KINDS = {"eureka": ("register", "renew", "cancel"),
         "consul": ("register", "pass", "deregister"),
         "dns": ("register", None, "cancel")}

#: Route 53's health check defaults: every 30 s, ~4 s to answer, 3 results to change
ROUTE53_PROBE = ProbeSpec(period=30.0, timeout=4.0, failure_threshold=3, success_threshold=3)

_EPS = 1e-9


class _Watch:
    """One watched instance: its probe state and what the registry holds of it."""

    __slots__ = ("closed", "inst", "last_renew", "registered", "state", "wake", "warm")

    def __init__(self, inst: Instance, state: ProbeState, warm: bool = False) -> None:
        self.inst = inst
        self.state = state
        #: watched from before the run began: healthy already (a steady state)
        self.warm = warm
        self.registered = False  # the registry acknowledged a registration
        self.closed = False  # shut down: take it out and stop
        self.last_renew = 0.0
        self.wake: Event | None = None  # set while the loop waits for its next tick


class Registrar(Node):
    """A third-party registrar for one Eureka, Consul or DNS registry (module docstring).

    ``registry``: the registry server's name (its ``kind`` says which
    protocol).  ``probe``: a ProbeSpec (None: Kubernetes' defaults 10 s, 1 s,
    3, 1, 0 -- or :data:`ROUTE53_PROBE` for DNS).  ``renewal_interval``:
    Eureka renewals on the instance's behalf.  ``check`` (Consul): ``"ttl"``
    or ``"http"``; ``ttl``: the TTL check's ttl (must exceed the probe
    period, or the check lapses between passes); ``deregister_after``:
    Consul's ``DeregisterCriticalServiceAfter`` (None: never reaped).
    ``initially_ready``: whether a newly watched instance counts as healthy
    before its first probe (then it is registered at once); None: True for
    DNS (a record is created with the instance, and Route 53 treats a new
    health check as healthy until it has results), False otherwise (a
    Kubernetes-style readiness: in the registry after the first passing
    probe).  ``timeout`` bounds each request to the registry.
    """

    def __init__(self, world: World, name: str, registry: str, *,
                 probe: ProbeSpec | None = None, renewal_interval: float = 30.0,
                 check: str = "ttl", ttl: float = 30.0, deregister_after: float | None = None,
                 initially_ready: bool | None = None, timeout: float = 5.0) -> None:
        server = world.nodes.get(registry) if isinstance(registry, str) else None
        if not isinstance(server, RegistryServer) or server.kind not in KINDS:
            servers = sorted(n for n, v in world.nodes.items()
                             if isinstance(v, RegistryServer) and v.kind in KINDS)
            raise ParamError("registry", registry, "the name of a Eureka, Consul or DNS "
                             "registry server: " + (", ".join(servers) or "none yet"))
        kind = server.kind
        spec = (ROUTE53_PROBE if kind == "dns" else ProbeSpec()) if probe is None else probe
        if not isinstance(spec, ProbeSpec):
            raise ParamError("probe", probe, "a ProbeSpec, or None for the default")
        if check not in ("ttl", "http") or is_flag(check):
            raise ParamError("check", check, "'ttl' or 'http' (a Consul check)")
        renewal = check_seconds("renewal_interval", renewal_interval)
        ttl_s = check_seconds("ttl", ttl)
        if kind == "consul" and check == "ttl" and not ttl_s > spec.period:
            raise ParamError("ttl", ttl, f"seconds > the probe period ({spec.period:g}): "
                             "the registrar passes the check once per probe")
        if deregister_after is not None:
            deregister_after = check_seconds("deregister_after", deregister_after,
                                             minimum=60.0)
        if initially_ready is None:
            initially_ready = kind == "dns"
        elif not is_flag(initially_ready):
            raise ParamError("initially_ready", initially_ready, "True, False or None")
        limit = check_seconds("timeout", timeout)
        super().__init__(world, name)
        self.initially_ready = bool(initially_ready)
        self.registry = registry
        self.kind = kind
        self.spec = spec
        self.renewal_interval = renewal
        self.check = check
        self.ttl = ttl_s
        self.deregister_after = deregister_after
        self.timeout = limit
        self.watches: dict[str, _Watch] = {}

    # -- Registration (for every watched instance) ------------------------------------------
    def registration(self, inst: Instance | None = None) -> Registrar:
        """The Registration for ``inst``: the registrar itself (a Fleet's callable)."""
        return self

    def start(self, inst: Instance) -> None:
        """Watch ``inst`` from now on (its process has started)."""
        if not isinstance(inst, Instance):
            raise ParamError("inst", inst, "an Instance to watch")
        if inst.name in self.watches:
            return
        # an instance running when the run begins has passed its checks for a
        # while already (a steady state): healthy, and in the registry at once
        warm = self.env.now == 0.0 and inst.up
        watch = _Watch(inst, self.spec.state(initially_ready=self.initially_ready or warm), warm)
        self.watches[inst.name] = watch
        loop = self._consul_http(watch) if self.kind == "consul" and self.check == "http" \
            else self._watch(watch)
        self.env.process(loop)

    def shutdown(self, inst: Instance) -> None:
        """A clean shutdown: take ``inst`` out of the registry now and stop watching it."""
        watch = self.watches.get(getattr(inst, "name", None))  # type: ignore[arg-type]
        if watch is None or watch.closed:
            return
        watch.closed = True
        if watch.wake is not None and not watch.wake.triggered:
            watch.wake.succeed()

    def machine_down(self, inst: Instance) -> None:
        """Nothing: the registrar runs elsewhere; its probes will fail."""

    # -- requests ------------------------------------------------------------------------------
    def _body(self, op: str, inst: Instance) -> dict[str, Any]:
        body: dict[str, Any] = {"op": op, "service": inst.service, "instance": inst.name}
        if op == "register":
            body["by"] = "third-party"
            if self.kind == "consul":
                body["deregister_after"] = self.deregister_after
                body["check"] = self.check
                if self.check == "ttl":
                    body["ttl"] = self.ttl
                    body["status"] = "passing"  # registered because the probe passes
                else:
                    body["interval"] = self.spec.period
                    body["timeout"] = self.spec.timeout
                    watch = self.watches.get(inst.name)
                    if watch is not None and watch.warm:
                        body["status"] = "passing"  # checked and passing before the run
        return body

    def _send(self, op: str, inst: Instance) -> Generator[Event, Any, str | None]:
        """Send ``op`` about ``inst``; the reply's status, or None without an answer."""
        reply = yield from ask(self, self.registry, self._body(op, inst), self.timeout)
        return None if reply is None else reply.status

    def _reconcile(self, watch: _Watch, ok: bool, tick: float
                   ) -> Generator[Event, Any, None]:
        """Make the registry agree with the verdict on ``watch`` (after the probe of
        the tick at ``tick``; renewals are timed from ticks, so they keep the beat)."""
        register, renew, cancel = KINDS[self.kind]
        inst = watch.inst
        want = watch.state.ready and not watch.closed
        if want and not watch.registered:
            status = yield from self._send(register, inst)
            if status == "ok":
                watch.registered = True
                watch.last_renew = tick
        elif want and renew is not None:
            due = (renew == "pass" and ok) or (
                renew == "renew" and tick >= watch.last_renew + self.renewal_interval - _EPS)
            if due:
                status = yield from self._send(renew, inst)
                if status == "ok":
                    watch.last_renew = tick
                elif status == "not_found":  # the registry forgot it: register again
                    watch.registered = False
                    status = yield from self._send(register, inst)
                    if status == "ok":
                        watch.registered = True
                        watch.last_renew = tick
        elif not want and watch.registered:
            status = yield from self._send(cancel, inst)
            if status in ("ok", "not_found"):
                watch.registered = False

    # -- the loops -----------------------------------------------------------------------------
    def _wait(self, watch: _Watch, at: float) -> Generator[Event, Any, None]:
        """Sleep until ``at`` or until the instance is shut down."""
        env = self.env
        if watch.closed or at <= env.now:
            return
        watch.wake = Event(env)
        yield watch.wake | env.timeout(at - env.now)
        watch.wake = None

    def _watch(self, watch: _Watch) -> Generator[Event, Any, None]:
        """Probe ``watch.inst`` every period and keep the registry in step."""
        env = self.env
        spec = self.spec
        inst = watch.inst
        rng = self.world.stream(f"registrar:{self.name}:{inst.name}:probe")
        at = env.now + spec.initial_delay + rng.uniform(0.0, spec.period)
        if watch.state.ready:  # healthy until shown otherwise: in the registry at once
            yield from self._reconcile(watch, True, env.now)
        while self.up and not inst.stopped and not watch.closed:
            yield from self._wait(watch, at)
            if watch.closed or not self.up:
                break
            status = yield from probe_status(self, inst, spec.timeout)
            if watch.closed or not self.up:
                break
            ok = status == "ok"
            if not ok:
                record(self.world, self.name, "probe_failed", inst.service, inst.name, status)
            watch.state.observe(ok)
            yield from self._reconcile(watch, ok, at)
            at += spec.period
            while at <= env.now:
                at += spec.period
        yield from self._close(watch)

    def _consul_http(self, watch: _Watch) -> Generator[Event, Any, None]:
        """Registrator + Consul: register once with an HTTP check; Consul probes."""
        env = self.env
        inst = watch.inst
        while self.up and not watch.closed and not watch.registered and not inst.stopped:
            status = yield from self._send("register", inst)
            if status == "ok":
                watch.registered = True
            else:
                yield from self._wait(watch, env.now + self.spec.period)
        while self.up and not watch.closed and not inst.stopped:
            yield from self._wait(watch, env.now + 3600.0)
        yield from self._close(watch)

    def _close(self, watch: _Watch) -> Generator[Event, Any, None]:
        """The watch ends: a shut-down instance is taken out of the registry."""
        if watch.closed and watch.registered and self.up:
            cancel = KINDS[self.kind][2]
            for _ in range(3):  # a few tries: a clean shutdown deserves a cancel
                status = yield from self._send(cancel, watch.inst)
                if status in ("ok", "not_found"):
                    watch.registered = False
                    break
