"""Kubernetes-style discovery: readiness probes, endpoints, node leases, kube-proxy.

Third-party registration + server-side discovery as Kubernetes does it
(*Microservices Patterns* §3.2.4): nobody registers itself.  A **kubelet**
on each pod's machine probes the container's readiness and reports it; the
**API server** keeps a Service's endpoints (the ready pods); a **node
controller** marks a machine whose kubelet went silent NotReady and takes its
pods out; **kube-proxy** watches the endpoints and routes each new
connection to one ready pod picked uniformly at random, never retrying
another (the router itself is :class:`simcomm.discovery.router.Router`).

The rules, and the upstream code they come from:

* **Readiness probe** (``pkg/kubelet/prober/worker.go``, ``worker.run`` and
  ``worker.doProbe``): one probe per ``periodSeconds`` tick (default 10 s),
  each with ``timeoutSeconds`` (1 s); the result must repeat
  ``failureThreshold`` times (3) to make a ready pod unready and
  ``successThreshold`` times (1) to make an unready one ready; a readiness
  worker's initial value is ``Failure`` (a new container is not ready until
  it passes), probing waits ``initialDelaySeconds`` (0) after the container
  started.  Ours: :class:`~simcomm.discovery.probe.ProbeSpec` and
  :class:`~simcomm.discovery.probe.ProbeState`.  A hung pod therefore leaves
  the endpoints between ``(failure_threshold - 1) * period + timeout`` and
  ``failure_threshold * period + timeout`` after it stops answering
  (:func:`readiness_removal_bounds`): about 30 s with the defaults.
* **Container exit**: the kubelet's pod lifecycle event generator relists
  the containers every second (``plegRelistPeriod`` in
  ``pkg/kubelet/kubelet.go``); a container found not running makes the pod's
  ``Ready`` condition false at once, whatever the probes said.  Ours: at the
  first tick of a ``pleg_period`` (1 s) timer after the exit (the instance
  tells its ``watchers``; :func:`next_tick`), the pod turns unready with
  detail ``container_exit``.  A restarted container is a new container: its
  readiness starts again from not ready (``worker.doProbe`` sets the result
  to the initial value, ``Failure``, on a new container id) -- but the
  worker's run of equal results (``lastResult`` / ``resultRun``) is the
  worker's, not the container's, and is kept: with ``successThreshold`` > 1
  a container that crashed after passing probes is ready again at its first
  good probe.
* **Pod deletion** (a graceful shutdown): the EndpointSlice controller
  (``staging/src/k8s.io/endpointslice/utils.go``, ``podToEndpoint``: ``ready
  := serving && !terminating``) takes a pod with a deletion timestamp out of
  the ready endpoints at once, before the container stops.  Detail
  ``terminating``.
* **Node lease and the node controller**
  (``pkg/controller/nodelifecycle/node_lifecycle_controller.go``,
  ``Controller.monitorNodeHealth`` / ``tryUpdateNodeHealth``): the kubelet
  renews its node's Lease every 10 s (``nodeLeaseDurationSeconds`` 40 ×
  ``nodeLeaseRenewIntervalFraction`` 0.25); the controller runs every
  ``--node-monitor-period`` (5 s) and, when it sees a newer renew time,
  stamps the node with ITS OWN clock (``probeTimestamp = nc.now()``); a node
  whose stamp is older than ``--node-monitor-grace-period`` (40 s,
  ``RecommendedDefaultNodeLifecycleControllerConfiguration``) goes to
  ``Unknown`` and ``MarkPodsNotReady`` takes its pods out of the endpoints.
  Because the stamp is the controller's observation time and the test is a
  strict "after", removal comes between ``grace`` and ``grace + 2 × period``
  after the last renewal (:func:`node_not_ready_bounds`; 45-50 s with the
  defaults -- REFERENCE §5's "40-50 s").  Pod eviction 300 s later
  (``--pod-eviction-timeout``) is not modelled: the pod is already out of
  the endpoints, and a replacement is the orchestrator's business
  (:mod:`simcomm.discovery.churn`).
* **kube-proxy** (``pkg/proxy/iptables/proxier.go``): it watches the
  endpoints and rewrites the rules through a bounded-frequency runner, at
  most once per ``--iptables-min-sync-period`` (1 s); each rule picks an
  endpoint with ``-m statistic --mode random --probability 1/(n-i)``, i.e.
  uniformly at random per new connection.  Ours: :class:`ProxySync` (a
  change is applied at ``max(now, last sync + proxy_sync)``; upstream allows
  a burst of 2 syncs, we allow 1 -- a change waits at most ``proxy_sync``
  either way) in :class:`KubernetesView`.

Pure parts (tested without a World): :class:`NodeHealth`,
:class:`ProxySync`, :func:`next_tick`, :func:`readiness_removal_bounds`,
:func:`node_not_ready_bounds`, :func:`crash_removal_bounds`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import as_real, is_whole
from simcomm.discovery.probe import ProbeSpec, ProbeState, probe_status
from simcomm.discovery.registry import RegistryServer, View, ask, record
from simcomm.engine.nodes import Instance, Node, ServiceError
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = [
    "NODE_LEASE_RENEW_INTERVAL",
    "NODE_MONITOR_GRACE_PERIOD",
    "NODE_MONITOR_PERIOD",
    "PLEG_PERIOD",
    "PROXY_SYNC",
    "STATUS_SYNC_PERIOD",
    "Kubelet",
    "KubernetesApiServer",
    "KubernetesView",
    "NodeHealth",
    "ProxySync",
    "crash_removal_bounds",
    "next_tick",
    "node_not_ready_bounds",
    "readiness_removal_bounds",
]

#: the kubelet renews its node Lease every 10 s (40 s lease × 0.25)
NODE_LEASE_RENEW_INTERVAL = 10.0
#: ``--node-monitor-period``: how often the node controller looks at the leases
NODE_MONITOR_PERIOD = 5.0
#: ``--node-monitor-grace-period``: a lease older than this makes the node NotReady
NODE_MONITOR_GRACE_PERIOD = 40.0
#: the kubelet's ``plegRelistPeriod``: how often it relists its containers
PLEG_PERIOD = 1.0
#: kube-proxy's ``--iptables-min-sync-period``
PROXY_SYNC = 1.0
#: the kubelet's status manager resends a pod status the API server did not take
#: (``syncPeriod`` in ``pkg/kubelet/status/status_manager.go``)
STATUS_SYNC_PERIOD = 10.0

# SimPy times are sums of float periods: a tick that should land exactly on a
# boundary can land an ulp either side of it.  Comparisons with a boundary
# allow this much, so that the rule's strict "after" stays strict.
_EPS = 1e-9


def _seconds(field: str, value: object, *, positive: bool = True) -> float:
    """``value`` as finite seconds (> 0, or >= 0), else ParamError naming ``field``."""
    x = as_real(value)
    if x is None or math.isnan(x) or math.isinf(x) or (x <= 0 if positive else x < 0):
        raise ParamError(field, value, "a finite number of seconds " + ("> 0" if positive
                                                                         else ">= 0"))
    return x


def _count(field: str, value: object) -> int:
    if not is_whole(value) or value < 1:  # type: ignore[operator]
        raise ParamError(field, value, "a whole number >= 1")
    return int(value)  # type: ignore[call-overload]


class NodeHealth:
    """The node controller's picture of one node (upstream's ``nodeHealthData``).

    Pure: the time is an argument.  :meth:`monitor` is one pass of
    ``Controller.monitorNodeHealth`` for this node, given the renew time of
    the node's Lease as the API server holds it now (None: never renewed).
    It follows ``tryUpdateNodeHealth``:

    * a renew time newer than the last one seen stamps the node with the
      controller's clock (``probeTimestamp = nc.now()``), not with the renew
      time -- the controller trusts its own clock, not the kubelet's;
    * a node seen for the first time is stamped now as well ("Missing
      timestamp for Node. Assuming now as a timestamp");
    * when ``now`` is strictly after ``stamp + grace`` the node's Ready
      condition becomes Unknown: ``monitor`` returns ``"not_ready"`` (once,
      on the transition -- upstream's ``MarkPodsNotReady`` runs then);
    * a NotReady node whose lease is renewed again is ready again:
      ``"ready"`` (upstream the kubelet posts Ready=True with its next status
      update; here the renewal stands for both).

    ``grace`` is ``--node-monitor-grace-period`` (40 s).  The grace for a node
    that never posted its status (``--node-startup-grace-period``, 60 s) is
    not modelled: a node is known from its kubelet's first message.
    """

    __slots__ = ("grace", "ready", "renew_seen", "stamp")

    def __init__(self, grace: float = NODE_MONITOR_GRACE_PERIOD) -> None:
        self.grace = _seconds("node_monitor_grace_period", grace)
        self.ready = True
        self.renew_seen: float | None = None
        self.stamp: float | None = None

    def monitor(self, renew_time: float | None, now: float) -> str | None:
        """One monitor pass at ``now``: ``"not_ready"`` / ``"ready"`` on a transition."""
        renewed = renew_time is not None and (self.renew_seen is None
                                              or renew_time > self.renew_seen)
        if renewed:
            self.renew_seen = renew_time
            self.stamp = now
        elif self.stamp is None:
            self.stamp = now
        if not self.ready:
            if renewed:
                self.ready = True
                return "ready"
            return None
        assert self.stamp is not None
        if now > self.stamp + self.grace + _EPS:
            self.ready = False
            return "not_ready"
        return None

    def restarted(self) -> None:
        """The controller restarted: it forgets when it last saw the lease (the next
        pass stamps the node "now"); the Ready condition, stored in etcd, stays."""
        self.stamp = None


class ProxySync:
    """kube-proxy's rule for when a change of the endpoints reaches its rules.

    Upstream (``pkg/proxy/iptables/proxier.go``) every endpoints change asks
    a ``BoundedFrequencyRunner`` to run ``syncProxyRules``; it runs at once
    unless the last run was less than ``--iptables-min-sync-period`` ago,
    else as soon as that period has passed.  :meth:`due` says when a change
    seen at ``now`` is applied; :meth:`ran` records that a sync happened.
    Upstream's token bucket allows a burst of 2 back-to-back syncs; this
    allows one (a change waits at most ``min_sync_period`` either way).
    ``min_sync_period`` 0 applies every change at once.
    """

    __slots__ = ("last", "min_sync_period")

    def __init__(self, min_sync_period: float = PROXY_SYNC) -> None:
        self.min_sync_period = _seconds("proxy_sync", min_sync_period, positive=False)
        self.last: float | None = None

    def due(self, now: float) -> float:
        """When a change seen at ``now`` gets into the rules."""
        if self.last is None:
            return now
        return max(now, self.last + self.min_sync_period)

    def ran(self, now: float) -> None:
        """A sync ran at ``now``."""
        self.last = now


def next_tick(now: float, phase: float, period: float) -> float:
    """The first tick strictly after ``now`` of a timer ticking at ``phase + k × period``."""
    k = math.floor((now - phase) / period) + 1
    tick = phase + k * period
    while tick <= now:  # rounding
        tick += period
    while tick - period > now:
        tick -= period
    return tick


def readiness_removal_bounds(period: float = 10.0, timeout: float = 1.0,
                             failure_threshold: int = 3) -> tuple[float, float]:
    """Seconds from a pod hanging to its kubelet deciding it is unready.

    The probes tick every ``period`` at a phase of their own; the first tick
    after the hang is 0 to ``period`` later; each failure is known
    ``timeout`` after its tick, and the ``failure_threshold``-th one flips the
    pod (``worker.doProbe``).  So the decision falls in
    ``[(failure_threshold - 1) × period + timeout, failure_threshold × period
    + timeout]``: [21, 31] s with the defaults (10, 1, 3).  The endpoints and
    the routers learn of it a few network latencies and at most one
    ``proxy_sync`` later.
    """
    p = _seconds("period", period)
    t = _seconds("timeout", timeout)
    n = _count("failure_threshold", failure_threshold)
    return (n - 1) * p + t, n * p + t


def node_not_ready_bounds(grace: float = NODE_MONITOR_GRACE_PERIOD,
                          monitor_period: float = NODE_MONITOR_PERIOD) -> tuple[float, float]:
    """Seconds from a node's last lease renewal to the node controller's NotReady.

    The controller sees the renewal at its next pass (0 to ``monitor_period``
    later) and stamps it then; it marks the node at the first pass strictly
    more than ``grace`` after that stamp, up to one more ``monitor_period``.
    So the bounds are ``[grace, grace + 2 × monitor_period]`` ([40, 50] s with
    the defaults; when ``grace`` is a multiple of the period, as by default,
    the strict "after" makes it 45-50 s).
    """
    g = _seconds("node_monitor_grace_period", grace)
    p = _seconds("node_monitor_period", monitor_period)
    return g, g + 2 * p


def crash_removal_bounds(pleg_period: float = PLEG_PERIOD,
                         proxy_sync: float = PROXY_SYNC) -> tuple[float, float]:
    """Seconds from a container's crash to kube-proxy's rules without it (no latency).

    The next PLEG relist finds the container gone (0 to ``pleg_period``);
    kube-proxy's next allowed sync is 0 to ``proxy_sync`` after the watch
    tells it.  So ``[0, pleg_period + proxy_sync]`` plus the messages'
    latencies (kubelet → API server → watch → proxy).
    """
    a = _seconds("pleg_period", pleg_period)
    b = _seconds("proxy_sync", proxy_sync, positive=False)
    return 0.0, a + b


# -- the API server and its node controller -----------------------------------------------


class _Pod:
    """What the API server holds of one pod: its kubelet's last word and its node."""

    __slots__ = ("node", "ready", "seq", "service", "terminating")

    def __init__(self, service: str, node: str) -> None:
        self.service = service
        self.node = node
        self.ready = False
        self.terminating = False
        self.seq = 0


class KubernetesApiServer(RegistryServer):
    """The API server (with etcd behind it) and the node lifecycle controller.

    It holds, per service, the **endpoints**: the pods whose kubelet last
    reported them ready, that are not being deleted, and whose node is not
    NotReady (``podToEndpoint``'s ``ready := serving && !terminating``, plus
    ``MarkPodsNotReady`` for a lost node).  Operations (request bodies
    carry ``service``, ``instance`` = the pod, ``node`` = its kubelet):

    * ``ready`` / ``unready`` (``detail``: ``probe``, ``container_exit``,
      ``terminating``; ``seq``: the kubelet's counter, so that a status
      overtaken on the network by a newer one is ignored) -- the kubelet's
      pod status update (or, for ``terminating``, the pod's deletion);
    * ``heartbeat`` -- the node Lease renewal (every 10 s), traced as
      ``renew``;
    * ``query`` with ``index`` and ``wait`` -- a watch: parked until the
      endpoints change (:meth:`RegistryServer.changed`).

    The **node controller** runs every ``node_monitor_period``
    (``--node-monitor-period``, 5 s) from a random phase and applies
    :class:`NodeHealth` (``--node-monitor-grace-period``, 40 s) to every
    node: a NotReady node's pods leave the endpoints (``unready``, detail
    ``node_not_ready``) and come back (``ready``) when its lease is renewed
    again.  Upstream the controller is a separate process
    (kube-controller-manager); here it runs in the server, so it stops when
    the server is down or hung, and after a restart its memory of when it
    last saw each lease is fresh (a restarted controller stamps every node
    "now"), while the endpoints -- etcd -- persist.

    ``listing`` is the ready endpoints, sorted.  :meth:`registration` gives
    a :class:`~simcomm.discovery.churn.Fleet` a kubelet per pod.  Traced rows
    (``node`` = the server): ``ready``, ``unready``, ``renew``.
    """

    kind = "kubernetes"
    persistent = True

    def __init__(self, world: World, name: str = "kubernetes", *,
                 node_monitor_period: float = NODE_MONITOR_PERIOD,
                 node_monitor_grace_period: float = NODE_MONITOR_GRACE_PERIOD,
                 **instance_args: Any) -> None:
        period = _seconds("node_monitor_period", node_monitor_period)
        grace = _seconds("node_monitor_grace_period", node_monitor_grace_period)
        super().__init__(world, name, **instance_args)
        self.node_monitor_period = period
        self.node_monitor_grace_period = grace
        self._pods: dict[str, _Pod] = {}
        self._endpoints: dict[str, set[str]] = {}
        self._leases: dict[str, float] = {}  # node -> renew time (the server's clock)
        self._health: dict[str, NodeHealth] = {}  # node -> the controller's picture
        self._on_node: dict[str, list[str]] = {}  # node -> its pods
        self.every(period, self._monitor, f"kubernetes:{name}:node-monitor")

    # -- what a query answers -----------------------------------------------------------
    def listing(self, service: str) -> tuple[str, ...]:
        return tuple(sorted(self._endpoints.get(service, ())))

    def clear_state(self) -> None:
        """Forget everything (never called on a crash: etcd persists)."""
        self._pods.clear()
        self._endpoints.clear()
        self._leases.clear()
        self._health.clear()
        self._on_node.clear()

    def node_ready(self, node: str) -> bool | None:
        """The node controller's verdict on ``node`` (None: never heard of)."""
        health = self._health.get(node)
        return None if health is None else health.ready

    def registration(self, **kubelet_args: Any) -> Callable[[Instance], Kubelet]:
        """What a :class:`~simcomm.discovery.churn.Fleet` needs to register its pods
        here: a function making each pod's own :class:`Kubelet` with
        ``kubelet_args`` (checked now, before time zero)."""
        Kubelet.check_args(**kubelet_args)
        world, name = self.world, self.name
        return lambda inst: Kubelet(world, inst, name, **kubelet_args)

    # -- operations ---------------------------------------------------------------------
    def _pod(self, body: dict[str, Any]) -> tuple[str, _Pod]:
        service = self._service_of(body)
        inst, node = body.get("instance"), body.get("node")
        if not isinstance(inst, str) or not inst or not isinstance(node, str) or not node:
            raise ServiceError("a pod status needs an instance and a node",
                               status="bad_request")
        pod = self._pods.get(inst)
        if pod is None:
            pod = self._pods[inst] = _Pod(service, node)
            self._on_node.setdefault(node, []).append(inst)
            if node not in self._health:
                self._health[node] = NodeHealth(self.node_monitor_grace_period)
        return inst, pod

    def op_ready(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        return self._status(body, True)

    def op_unready(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        return self._status(body, False)

    def op_heartbeat(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        inst, pod = self._pod(body)
        self._leases[pod.node] = now
        record(self.world, self.name, "renew", pod.service, inst)
        return {}

    def _status(self, body: dict[str, Any], ready: bool) -> dict[str, Any]:
        inst, pod = self._pod(body)
        seq = body.get("seq", 0)
        if not is_whole(seq):
            raise ServiceError("seq must be a whole number", status="bad_request")
        if seq < pod.seq:
            return {"stale": True}  # overtaken by a newer status from the same kubelet
        pod.seq = int(seq)
        detail = body.get("detail") or "probe"
        if detail == "terminating":
            pod.terminating = True  # a deleted pod never comes back
        pod.ready = ready
        self._refresh(inst, pod, str(detail))
        return {}

    def _refresh(self, inst: str, pod: _Pod, detail: str) -> None:
        """Put ``inst`` in its service's endpoints or take it out, as its state says."""
        health = self._health.get(pod.node)
        serving = pod.ready and not pod.terminating and (health is None or health.ready)
        endpoints = self._endpoints.setdefault(pod.service, set())
        if serving == (inst in endpoints):
            return
        if serving:
            endpoints.add(inst)
        else:
            endpoints.discard(inst)
        record(self.world, self.name, "ready" if serving else "unready", pod.service, inst,
               detail)
        self.changed(pod.service)

    # -- the node controller --------------------------------------------------------------
    def _monitor(self, now: float) -> None:
        """One ``monitorNodeHealth`` pass over every node (see :class:`NodeHealth`)."""
        leases = self._leases
        for node, health in self._health.items():
            change = health.monitor(leases.get(node), now)
            if change is not None:
                detail = "node_not_ready" if change == "not_ready" else "probe"
                for inst in self._on_node.get(node, ()):
                    self._refresh(inst, self._pods[inst], detail)

    def restart(self) -> None:
        was_down = not self.up
        super().restart()
        if was_down and self.up:
            for health in self._health.values():
                health.restarted()


# -- the kubelet ----------------------------------------------------------------------------


class Kubelet(Node):
    """The kubelet on one pod's machine: readiness probes, PLEG, node lease.

    A :class:`~simcomm.discovery.registry.Registration` (third-party
    registration: the platform registers the pod, the pod does nothing).
    One kubelet per pod, named ``kubelet-<pod>`` -- each pod on a machine of
    its own, so a machine failure takes one pod down.  From
    :meth:`start` (the container's first start) it runs three loops, each
    from a random phase of its own (the kubelet starts its probe workers at a
    random point of the period, ``worker.run``):

    * **readiness probes** per ``probe`` (a
      :class:`~simcomm.discovery.probe.ProbeSpec`; Kubernetes' defaults
      ``periodSeconds`` 10, ``timeoutSeconds`` 1, ``failureThreshold`` 3,
      ``successThreshold`` 1, ``initialDelaySeconds`` 0): each a health
      request through the pod's worker pool (so a hung or saturated pod fails
      it); a transition of the :class:`~simcomm.discovery.probe.ProbeState`
      is sent to the API server (``ready`` / ``unready``, detail ``probe``);
      a failed probe is traced as ``probe_failed``;
    * the **PLEG relist** every ``pleg_period`` (``plegRelistPeriod``, 1 s):
      a container found exited makes the pod unready (``container_exit``);
      found running again (a restart) it is a new container that must pass
      its probes again.  Only the relists that find a change matter, so
      only those are simulated: the instance tells its watchers
      (``Instance.watchers``) when its process starts, restarts, crashes or
      stops, and the kubelet acts at the first relist tick after that
      (:func:`next_tick`) -- the same instants as a relist every second,
      without an event per second per pod;
    * the **node lease** renewal every ``heartbeat_interval`` (10 s), until
      the pod has stopped for good (or the machine died);
    * with ``liveness`` (a :class:`~simcomm.discovery.probe.ProbeSpec`; none
      by default, as a pod has no ``livenessProbe`` unless it declares one),
      **liveness probes**: the worker starts from Success
      (``initialValue``), and ``failureThreshold`` consecutive failures make
      the kubelet kill the container and start a new one (``restartPolicy:
      Always``) -- the way out for a hung process, which readiness only takes
      out of the endpoints.  The worker then holds until the new container
      (``onHold``, ``resultRun = 0``).  The kill is at once (a process that
      ignores SIGTERM would take ``terminationGracePeriodSeconds``, 30 s); the
      first restart is at once, each further one waits the kubelet's
      CrashLoopBackOff (10 s, doubling, at most 300 s; forgotten after the
      container ran 600 s).  The new container goes through the PLEG and
      the readiness probes like any restart.

    A status the API server did not acknowledge (down, cut off) is sent
    again every ``STATUS_SYNC_PERIOD`` (10 s, the status manager's resync),
    newest first.  :meth:`shutdown` (the pod is deleted) sends ``unready``
    (``terminating``) at once and stops probing; :meth:`machine_down` stops
    the kubelet for good: no lease renewals, no probes -- the node controller
    notices after its grace period.  ``timeout`` bounds each request to the
    API server.
    """

    def __init__(self, world: World, instance: Instance, api: str, *,
                 probe: ProbeSpec | None = None,
                 heartbeat_interval: float = NODE_LEASE_RENEW_INTERVAL,
                 pleg_period: float = PLEG_PERIOD, timeout: float = 5.0,
                 liveness: ProbeSpec | None = None, name: str | None = None) -> None:
        if not isinstance(instance, Instance):
            raise ParamError("instance", instance, "an Instance (the pod's container)")
        server = world.nodes.get(api) if isinstance(api, str) else None
        if not isinstance(server, KubernetesApiServer):
            servers = sorted(n for n, v in world.nodes.items()
                             if isinstance(v, KubernetesApiServer))
            raise ParamError("api", api, "the name of a KubernetesApiServer: "
                             + (", ".join(servers) or "none yet"))
        spec, hb, pleg, limit = self.check_args(probe=probe,
                                                heartbeat_interval=heartbeat_interval,
                                                pleg_period=pleg_period, timeout=timeout,
                                                liveness=liveness)
        super().__init__(world, name or f"kubelet-{instance.name}")
        self.instance = instance
        self.api = api
        self.spec = spec
        self.heartbeat_interval = hb
        self.pleg_period = pleg
        self.timeout = limit
        #: the liveness probe (None: the pod declares none, Kubernetes' default)
        self.liveness = liveness
        #: the next CrashLoopBackOff wait before a container killed by liveness restarts
        self._backoff = 0.0
        self.state = self._fresh_state()
        self._container_gen = 0  # bumped when the PLEG finds the container exited
        self.started = False
        self.terminating = False
        self._container_up = False
        self._container_since = 0.0
        self._pleg_phase = 0.0
        self._relist_due: float | None = None
        self._exited = False  # the container exited since the last relist
        self._desired: tuple[bool, str, int] | None = None  # (ready, detail, seq)
        self._acked = 0
        self._seq = 0
        self._sending = False

    @staticmethod
    def check_args(*, probe: ProbeSpec | None = None,
                   heartbeat_interval: float = NODE_LEASE_RENEW_INTERVAL,
                   pleg_period: float = PLEG_PERIOD, timeout: float = 5.0,
                   liveness: ProbeSpec | None = None
                   ) -> tuple[ProbeSpec, float, float, float]:
        """The kubelet's settings checked (a ParamError naming the field), with defaults."""
        spec = ProbeSpec() if probe is None else probe
        if not isinstance(spec, ProbeSpec):
            raise ParamError("probe", probe, "a ProbeSpec, or None for Kubernetes' defaults")
        if liveness is not None and (not isinstance(liveness, ProbeSpec)
                                     or liveness.success_threshold != 1):
            # Kubernetes' validation: a liveness probe's successThreshold must be 1
            raise ParamError("liveness", liveness,
                             "None (no liveness probe) or a ProbeSpec with success_threshold 1")
        return (spec, _seconds("heartbeat_interval", heartbeat_interval),
                _seconds("pleg_period", pleg_period), _seconds("timeout", timeout))

    def _fresh_state(self) -> ProbeState:
        """The probe worker's state at its start: not ready until the container
        passes (initial value Failure), no results yet."""
        return self.spec.state(initially_ready=False)

    # -- Registration ---------------------------------------------------------------------
    def _check(self, inst: Instance) -> None:
        if inst is not self.instance:
            raise ParamError("inst", getattr(inst, "name", inst),
                             f"the kubelet's own pod, {self.instance.name}")

    def start(self, inst: Instance) -> None:
        """The pod's container started: begin probing, relisting and renewing the lease."""
        self._check(inst)
        if self.started or not self.up:
            return
        self.started = True
        env = self.env
        self._container_up = inst.up
        self._container_since = env.now
        self._pleg_phase = env.now + self.world.stream(
            f"kubelet:{self.name}:pleg").uniform(0.0, self.pleg_period)
        inst.watchers.append(self._on_container)
        if env.now == 0.0 and inst.up:
            # a pod running when the run begins has been running and ready for a
            # while (a steady state): ready at once, as its last probe said (so the
            # detail is "probe", trace.discovery's word for a readiness verdict)
            self.state = self.spec.state(initially_ready=True)
            self.state.last, self.state.run = True, self.spec.success_threshold
            self._want(True, "probe")
        env.process(self._heartbeats())
        env.process(self._probes())
        if self.liveness is not None:
            env.process(self._liveness_probes(self.liveness))

    def shutdown(self, inst: Instance) -> None:
        """The pod is being deleted: out of the endpoints at once (``terminating``)."""
        self._check(inst)
        if self.terminating or not self.up:
            return
        self.terminating = True
        self._want(False, "terminating", force=True)

    def machine_down(self, inst: Instance) -> None:
        """The machine died: the kubelet with it (no more probes, lease renewals, updates)."""
        self._check(inst)
        self.up = False
        self._pending.clear()

    # -- reporting to the API server --------------------------------------------------------
    def _want(self, ready: bool, detail: str, *, force: bool = False) -> None:
        """The pod's status to report is now ``ready`` (sent unless nothing changes)."""
        current = None if self._desired is None else self._desired[0]
        if not force and (current == ready or (current is None and not ready)):
            return  # no change (a pod never reported ready has nothing to take back)
        self._seq += 1
        self._desired = (ready, detail, self._seq)
        if not self._sending:
            self._sending = True
            self.env.process(self._sync())

    def _body(self, op: str) -> dict[str, Any]:
        inst = self.instance
        return {"op": op, "service": inst.service, "instance": inst.name, "node": self.name}

    def _sync(self) -> Generator[Event, Any, None]:
        """Send the newest status until the API server takes it (resend every 10 s)."""
        try:
            while self.up and self._desired is not None and self._desired[2] != self._acked:
                ready, detail, seq = self._desired
                body = self._body("ready" if ready else "unready")
                body["detail"] = detail
                body["seq"] = seq
                reply = yield from ask(self, self.api, body, self.timeout)
                if reply is not None and reply.status == "ok":
                    self._acked = seq
                else:
                    yield self.env.timeout(STATUS_SYNC_PERIOD)
        finally:
            self._sending = False

    # -- the three loops ----------------------------------------------------------------------
    def _heartbeats(self) -> Generator[Event, Any, None]:
        env = self.env
        period = self.heartbeat_interval
        at = env.now + self.world.stream(f"kubelet:{self.name}:lease").uniform(0.0, period)
        body = self._body("heartbeat")
        inst = self.instance
        while True:
            yield env.timeout(at - env.now)
            if not self.up or inst.stopped:
                return  # the machine is gone, or the pod deleted and stopped
            yield from ask(self, self.api, dict(body), self.timeout)
            if not self._sending and self._desired is not None \
                    and self._desired[2] != self._acked and self.up:
                self._sending = True
                env.process(self._sync())
            at += period
            while at <= env.now:
                at += period

    def _on_container(self, event: str) -> None:
        """The container started, restarted, crashed or stopped: the next relist sees it."""
        if not self.up:
            return
        if event in ("crash", "stop"):
            self._exited = True
        if self._relist_due is None:
            due = next_tick(self.env.now, self._pleg_phase, self.pleg_period)
            self._relist_due = due
            self.world.at(due, self._relist)

    def _relist(self) -> None:
        """A PLEG relist that finds a change: an exited container makes the pod
        unready; a running one after an exit is a new container (probed afresh)."""
        self._relist_due = None
        if not self.up:
            return
        running = self.instance.up
        if self._exited:
            self._exited = False
            # a new container: not ready (initialValue), the run of results kept
            self.state.force(False)
            self._container_gen += 1
            if not self.terminating:
                self._want(False, "container_exit")
            self._container_up = False
        if running and not self._container_up:
            self._container_since = self.env.now
        self._container_up = running

    def _probes(self) -> Generator[Event, Any, None]:
        env = self.env
        spec = self.spec
        period = spec.period
        inst = self.instance
        trace_on = self.world.trace.enabled
        at = env.now + self.world.stream(f"kubelet:{self.name}:probe").uniform(0.0, period)
        while True:
            yield env.timeout(at - env.now)
            if not self.up or self.terminating:
                return
            if self._container_up and env.now >= self._container_since + spec.initial_delay:
                state = self.state
                gen = self._container_gen
                status = yield from probe_status(self, inst, spec.timeout)
                if not self.up or self.terminating:
                    return
                ok = status == "ok"
                # the same container as when the probe went out (a result about
                # an exited one is dropped)
                if state is self.state and gen == self._container_gen:
                    if not ok and trace_on:
                        record(self.world, self.name, "probe_failed", inst.service, inst.name,
                               status)
                    change = state.observe(ok)
                    if change == "ready":
                        self._want(True, "probe")
                    elif change == "unready":
                        self._want(False, "probe")
            at += period
            while at <= env.now:
                at += period


    def _liveness_probes(self, spec: ProbeSpec) -> Generator[Event, Any, None]:
        """The liveness worker: ``failureThreshold`` failures in a row kill the
        container, which the kubelet starts again; the worker holds until then."""
        env = self.env
        inst = self.instance
        period = spec.period
        state = spec.state(initially_ready=True)  # initialValue: Success
        held = -1  # the container whose kill the worker waits out (onHold)
        at = env.now + self.world.stream(f"kubelet:{self.name}:liveness").uniform(0.0, period)
        while True:
            yield env.timeout(at - env.now)
            if not self.up or self.terminating or inst.stopped:
                return
            gen = self._container_gen
            if gen != held and self._container_up and inst.up \
                    and env.now >= self._container_since + spec.initial_delay:
                status = yield from probe_status(self, inst, spec.timeout)
                if not self.up or self.terminating or inst.stopped:
                    return
                if gen == self._container_gen and inst.up \
                        and state.observe(status == "ok") == "unready":
                    held = gen
                    state.force(True)  # the new container starts from Success ...
                    state.run = 0  # ... and the run starts again (worker.doProbe)
                    self._kill(inst)
            at += period
            while at <= env.now:
                at += period

    def _kill(self, inst: Instance) -> None:
        """Kill the container for a failed liveness probe and start a new one after
        the CrashLoopBackOff (0 the first time; 10 s doubling to 300 s; forgotten
        once a container has run 600 s)."""
        if self.env.now - self._container_since >= 600.0:
            self._backoff = 0.0
        delay = self._backoff
        self._backoff = 10.0 if delay == 0.0 else min(2.0 * delay, 300.0)
        inst.crash(repair_after=delay)


# -- kube-proxy's view ------------------------------------------------------------------------


class KubernetesView(View):
    """kube-proxy's picture of a Service's endpoints: a watch plus a sync delay.

    A watch is a long poll (``query`` with ``index`` and ``wait``): the API
    server parks it until the endpoints change and answers at once, or after
    ``watch_timeout`` (client-go's reflector asks for 5-10 minutes; we use
    300 s) with the same list; a new watch follows each answer.  A failed
    watch (no answer within ``watch_timeout + timeout``, a reset, a refusal)
    is traced ``lookup_failed`` and retried ``retry`` (1 s) later with a full
    relist, as a reflector does; meanwhile the rules stay as they were -- a
    kube-proxy cut off from the API server keeps routing to the endpoints it
    last knew.  Each new list reaches :attr:`instances` through
    :class:`ProxySync` (``proxy_sync``, ``--iptables-min-sync-period``, 1 s).
    Use it with :class:`~simcomm.discovery.router.Router` and the ``random``
    balancer, ``retry_next_server=0``: kube-proxy's iptables rules.
    """

    def __init__(self, world: World, owner: Node, registry: str, service: str, *,
                 proxy_sync: float = PROXY_SYNC, watch_timeout: float = 300.0,
                 timeout: float = 10.0, retry: float = 1.0) -> None:
        super().__init__(world, owner, registry, service)
        if not isinstance(world.nodes[registry], KubernetesApiServer):
            raise ParamError("registry", registry, "the name of a KubernetesApiServer")
        self.sync = ProxySync(proxy_sync)
        self.watch_timeout = _seconds("watch_timeout", watch_timeout)
        self.timeout = _seconds("timeout", timeout)
        self.retry = _seconds("retry", retry)
        self._latest: tuple[str, ...] = ()
        self._due: float | None = None  # when the pending sync runs

    def _start(self) -> None:
        self.env.process(self._watch())

    def _watch(self) -> Generator[Event, Any, None]:
        env = self.env
        owner = self.owner
        index = -1  # a full list first: never parked
        body = {"op": "query", "service": self.service, "wait": self.watch_timeout}
        limit = self.watch_timeout + self.timeout
        while True:
            if not owner.up:  # the router is down: nothing watches
                index = -1
                yield env.timeout(self.retry)
                continue
            reply = yield from ask(owner, self.registry, dict(body, index=index), limit)
            if reply is None or reply.status != "ok":
                record(self.world, owner.name, "lookup_failed", self.service, None,
                       "timeout" if reply is None else reply.status)
                index = -1
                yield env.timeout(self.retry)
                continue
            index = reply.body["index"]
            self._seen(tuple(reply.body["instances"]))

    def _seen(self, instances: tuple[str, ...]) -> None:
        """A new list from the watch: into the rules at kube-proxy's next allowed sync."""
        self._latest = instances
        if self._due is not None:
            return  # a sync is already scheduled: it will take the newest list
        now = self.env.now
        due = self.sync.due(now)
        if due <= now:
            self._apply()
        else:
            self._due = due
            self.world.at(due, self._apply)

    def _apply(self) -> None:
        self._due = None
        self.sync.ran(self.env.now)
        self.update(self._latest)
