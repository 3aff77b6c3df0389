"""Churn: instances that come and go -- crashes, hangs, replacements, scaling, upgrades.

Service discovery exists because the instances of a service have addresses
assigned at launch and the set of them keeps changing -- with failures,
autoscaling and upgrades (*Microservices Patterns* §3.2.4).  This module
makes it change, the way an orchestrator changes it:

* :class:`Fleet` -- the instances of one service, as a Kubernetes
  ReplicaSet / Deployment or an AWS auto-scaling group keeps them.  Every
  launch gets a **new address** (``{service}-{n}`` from a counter, as a new
  pod gets a new IP): a replacement is never the instance it replaces, so a
  client that still holds the old address calls a dead one.  Each instance
  has a :class:`~simcomm.discovery.registry.Registration` (self-registration
  or a registrar's / kubelet's per-instance watch) that the fleet tells when
  the process starts, when a clean shutdown begins and when the machine
  dies with it.
* :func:`install_churn` -- a schedule of crashes, hangs, shutdowns, node
  failures, scaling steps and rolling upgrades, checked before time zero.
* :class:`Autoscaler` -- Kubernetes' HorizontalPodAutoscaler (HPA): every
  sync period it measures the fleet's utilisation and asks for
  ``ceil(ready × utilisation / target)`` replicas, with the HPA's tolerance,
  its treatment of pods that are not ready yet, its scale-down
  stabilisation window and its scale-up limit.  The arithmetic is pure
  (:func:`desired_replicas`, :func:`hpa_replicas`, :class:`Stabilisation`,
  :func:`limit_replicas`) and tested without a World.

Events this module writes to the events table (``Result.events``), besides
the engine's own ``launch`` / ``start`` / ``crash`` / ``restart`` /
``hang`` / ``unhang`` / ``stop``:

* ``drain`` (detail: the drain in seconds) -- a clean shutdown began: the
  instance is deregistered at once and still serves what reaches it until
  it stops, ``drain`` seconds later (Kubernetes: the pod is Terminating,
  removed from the endpoints, and its process gets SIGTERM after the
  ``preStop`` hook; Spring Boot's ``server.shutdown=graceful``);
* ``node_failure`` (detail ``replace after T`` or ``""``) -- the machine
  died: the process dies with it (a ``crash`` follows at the same instant)
  and so does whatever ran beside it (the kubelet, a local agent);
* ``<step>_skipped`` (detail ``not launched`` / ``not a member``) -- a
  scheduled step whose instance does not exist (yet) or is already gone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real, is_whole
from simcomm.discovery.registry import Registration
from simcomm.engine.formats import get_format
from simcomm.engine.nodes import Instance
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simpy.events import Event

    from simcomm.engine.world import World

__all__ = ["STEP_KINDS", "Autoscaler", "ChurnStep", "Fleet", "Stabilisation", "desired_replicas",
           "hpa_replicas", "install_churn", "limit_replicas"]


def _time(field: str, value: object, *, allow_none: bool = False,
          positive: bool = False) -> float | None:
    """``value`` as a finite float >= 0 (> 0 if ``positive``), or a ParamError."""
    if value is None and allow_none:
        return None
    t = as_real(value)
    if t is None or math.isnan(t) or math.isinf(t) or t < 0 or (positive and t == 0):
        what = "> 0" if positive else ">= 0"
        raise ParamError(field, value, f"a finite number of seconds {what}"
                         + (", or None" if allow_none else ""))
    return t


def _is_registration(obj: object) -> bool:
    """An object (not a class) with the three calls of a Registration."""
    return not isinstance(obj, type) and all(
        callable(getattr(obj, op, None)) for op in ("start", "shutdown", "machine_down"))


# the Instance arguments a fleet passes on to every instance it launches
_INSTANCE_ARGS = ("workers", "service_time", "queue_capacity", "handler", "format")


class Fleet:
    """The instances of one service, launched, replaced and retired as an
    orchestrator does it.

    ``instances`` are running at the fleet's creation (the run begins in a
    steady state: their ``launch`` and ``start`` are at that instant);
    every later :meth:`launch` creates a new instance that starts
    ``startup`` seconds later (the image pull, the JVM warming up).
    ``registration`` is either one :class:`Registration` for every instance
    (``EurekaRegistration``, ``ConsulRegistration``: a client library that
    keeps per-instance state itself) or a function making each instance's
    own (``KubernetesApiServer.registration()``: a kubelet per pod); its
    ``start`` is called when the instance's process starts, never before.
    ``instance_args`` (``workers``, ``service_time``, ``queue_capacity``,
    ``handler``, ``format``) go to every
    :class:`~simcomm.engine.nodes.Instance`.

    ``members`` are the instances the orchestrator counts as the service's
    replicas: launched (starting or running, or down waiting for a restart)
    and neither shutting down, stopped, nor crashed for good -- as a
    ReplicaSet does not count a Terminating pod.  ``replicas`` is the count
    the orchestrator is keeping (a Deployment's ``spec.replicas``): the
    members, plus the replacements it has scheduled, minus the extra one a
    rolling upgrade runs (its surge).  It is what :meth:`scale_to` and the
    :class:`Autoscaler` compare against, so an autoscaler does not add an
    instance for one the orchestrator is already replacing.
    """

    def __init__(self, world: World, service: str, *, instances: int,
                 registration: Registration | Callable[[Instance], Registration],
                 startup: float = 5.0, **instance_args: Any) -> None:
        if not isinstance(service, str) or not service:
            raise ParamError("service", service, "a non-empty service name")
        if not is_whole(instances) or instances < 0:
            raise ParamError("instances", instances, "a whole number >= 0")
        if not _is_registration(registration) and not callable(registration):
            raise ParamError("registration", registration,
                             "a Registration, or a function of an Instance returning one")
        startup_s = _time("startup", startup)
        unknown = sorted(set(instance_args) - set(_INSTANCE_ARGS))
        if unknown:
            raise ParamError(unknown[0], instance_args[unknown[0]],
                             f"an Instance argument a fleet passes on: {', '.join(_INSTANCE_ARGS)}")
        workers = instance_args.get("workers", 1)
        if not is_whole(workers) or workers < 1:
            raise ParamError("workers", workers, "a whole number >= 1")
        capacity = instance_args.get("queue_capacity")
        if capacity is not None and (not is_whole(capacity) or capacity < 0):
            raise ParamError("queue_capacity", capacity, "a whole number >= 0, or None")
        if instance_args.get("format") is not None:
            get_format(instance_args["format"])
        self.world = world
        self.env = world.env
        self.service = service
        self.startup = float(startup_s)  # type: ignore[arg-type]
        self.instance_args = dict(instance_args)
        self._registration = registration
        self._count = 0
        self._pattern = re.compile(re.escape(service) + r"-([1-9][0-9]*)")
        #: every instance ever launched, by name
        self.instances: dict[str, Instance] = {}
        self.registrations: dict[str, Registration] = {}
        self._members: dict[str, None] = {}  # insertion-ordered: launch order
        self._draining: dict[str, None] = {}
        self._registered: set[str] = set()  # Registration.start called
        self._pending = 0  # replacements scheduled, not launched yet
        self._surge = 0  # a rolling upgrade's extra instance(s)
        for _ in range(int(instances)):
            self._launch(world.env.now)

    # -- who is there -------------------------------------------------
    @property
    def members(self) -> tuple[str, ...]:
        """The replicas, oldest first (see the class docstring)."""
        return tuple(self._members)

    @property
    def replicas(self) -> int:
        """The count the orchestrator keeps (see the class docstring)."""
        return len(self._members) + self._pending - self._surge

    @property
    def draining(self) -> tuple[str, ...]:
        """Instances shutting down: deregistered, still serving until they stop."""
        return tuple(self._draining)

    def serving(self) -> tuple[str, ...]:
        """Members and draining instances whose process is up now (hung ones too)."""
        return tuple(n for n in (*self._members, *self._draining)
                     if self.instances[n].up)

    def __getitem__(self, name: str) -> Instance:
        return self._instance(name)

    def _instance(self, name: str) -> Instance:
        inst = self.instances.get(name)
        if inst is None:
            launched = ", ".join(self.instances) or "none yet"
            raise ParamError("name", name, f"an instance this fleet launched: {launched}")
        return inst

    # -- launching ----------------------------------------------------
    def launch(self) -> Instance:
        """A new instance on a new address, starting ``startup`` s from now."""
        return self._launch(self.env.now + self.startup)

    def _launch(self, start_at: float) -> Instance:
        self._count += 1
        name = f"{self.service}-{self._count}"
        inst = Instance(self.world, name, service=self.service, start_at=start_at,
                        **self.instance_args)
        shared: Any = self._registration
        reg: Registration = shared if _is_registration(shared) else shared(inst)
        if not _is_registration(reg):
            raise ParamError("registration", reg,
                             "an object with start, shutdown and machine_down (a Registration)")
        self.instances[name] = inst
        self.registrations[name] = reg
        self._members[name] = None
        self.world.at(start_at, lambda: self._started(name))
        return inst

    def _schedule_replacement(self, after: float) -> None:
        self._pending += 1
        self.world.at(self.env.now + after, self._replace)

    def _replace(self) -> None:
        """The orchestrator's replacement for an instance gone for good
        (unless a scale-in took it back meanwhile)."""
        if self._pending > 0:
            self._pending -= 1
            self.launch()

    def _started(self, name: str) -> None:
        """The instance's start time: its process is up (scheduled after the
        instance's own start, at the same instant), so registration begins."""
        inst = self.instances[name]
        if inst.up and not inst.stopped and name not in self._registered:
            self._registered.add(name)
            self.registrations[name].start(inst)

    def _skip(self, step: str, name: str, why: str) -> None:
        self.world.trace.event(self.env.now, name, f"{step}_skipped", why)

    # -- what happens to instances -------------------------------------
    def crash(self, name: str, replace_after: float | None = None,
              restart_after: float | None = None) -> None:
        """The process dies now, without deregistering (no cancel, no goodbye).

        ``restart_after``: the supervisor (systemd, the kubelet's
        ``restartPolicy: Always``) restarts it on the SAME address that many
        seconds later -- it stays a member and its registration resumes on
        its own.  ``replace_after``: it is gone for good and the
        orchestrator (a ReplicaSet, an auto-scaling group) launches a
        replacement on a NEW address that many seconds later (only for a
        member: a draining instance was going away).  Neither: gone for
        good, not replaced (``replicas`` drops by one).  A crash while the
        instance is down changes nothing (``crash_skipped``, from the
        engine).
        """
        inst = self._instance(name)
        replace = _time("replace_after", replace_after, allow_none=True)
        restart = _time("restart_after", restart_after, allow_none=True)
        if replace is not None and restart is not None:
            raise ParamError("restart_after", restart_after,
                             "None when replace_after is given (a replacement has a new address)")
        if not inst.up:
            inst.crash()  # recorded as crash_skipped
            return
        inst.crash(repair_after=restart)
        if restart is None:
            member = name in self._members
            self._gone(name)
            if replace is not None and member:
                self._schedule_replacement(replace)

    def _gone(self, name: str) -> None:
        self._members.pop(name, None)
        self._draining.pop(name, None)

    def hang(self, name: str, duration: float | None = None) -> None:
        """The process stops answering now, for ``duration`` s (None: for good).

        Its heartbeat thread may well go on (a self-registered instance
        keeps renewing): that is what makes a hang hard to detect.
        """
        inst = self._instance(name)
        length = _time("duration", duration, allow_none=True)
        token: Event | None = inst.hang()
        if token is not None and length is not None:
            self.world.at(self.env.now + length, lambda: inst.unhang(token))

    def shutdown(self, name: str, drain: float = 0.0) -> None:
        """A clean shutdown: deregister now, keep serving ``drain`` s, then stop.

        This is the graceful path every registry documents: Eureka's client
        cancels its lease on shutdown (``DiscoveryClient.shutdown`` →
        ``unregister``), Consul's agent deregisters the service, Kubernetes
        removes a Terminating pod from the endpoints at once and sends
        SIGTERM after the ``preStop`` hook (``terminationGracePeriodSeconds``
        bounds the whole).  Clients whose cached list still holds the
        instance keep calling it during the drain and are still answered; a
        drain shorter than the clients' refresh path turns those calls into
        ``refused`` ones after the stop.  An instance that has not started
        yet is just stopped (it never registered); one that is not a member
        any more (stopped, gone, already draining) is ``shutdown_skipped``.
        """
        inst = self._instance(name)
        wait = _time("drain", drain)
        assert wait is not None
        if name not in self._members:
            self._skip("shutdown", name, "not a member")
            return
        del self._members[name]
        if name not in self._registered:
            inst.stop()  # still launching: nothing to deregister, nothing to drain
            return
        self._draining[name] = None
        self.registrations[name].shutdown(inst)
        self.world.trace.event(self.env.now, name, "drain", f"{wait:g}")
        # an event even for no drain: what the registration set going just
        # now (a cancel sent from the instance) goes out before the stop
        self.env.timeout(wait).callbacks.append(lambda _ev: self._stop(name))

    def _stop(self, name: str) -> None:
        """The drain is over: the process exits (unless it crashed for good meanwhile)."""
        if name in self._draining:
            del self._draining[name]
            self.instances[name].stop()

    def node_failure(self, name: str, replace_after: float | None = None) -> None:
        """The machine under the instance dies now.

        The process dies (a crash, no deregistration) and so does every
        agent on that machine: the registration hears ``machine_down`` (a
        kubelet stops posting its node lease, so the control plane notices
        only after ``node-monitor-grace-period``).  The instance is gone for
        good; the orchestrator launches a replacement on a new address after
        ``replace_after`` s if given (Kubernetes evicts the pods of a lost
        node and the ReplicaSet recreates them elsewhere).
        """
        inst = self._instance(name)
        replace = _time("replace_after", replace_after, allow_none=True)
        if name not in self._members and name not in self._draining:
            self._skip("node_failure", name, "not a member")
            return
        self.world.trace.event(self.env.now, name, "node_failure",
                               f"replace after {replace:g}" if replace is not None else "")
        if name in self._registered:
            self.registrations[name].machine_down(inst)
        if inst.up:
            inst.crash()
        else:
            inst.stopped = True  # never restarts: its machine is gone
        member = name in self._members
        self._gone(name)
        if replace is not None and member:
            self._schedule_replacement(replace)

    def scale_to(self, replicas: int, drain: float = 0.0) -> None:
        """Launch or retire members until there are ``replicas``.

        Compared with :attr:`replicas`: new instances are added on top (new
        addresses); on a scale-in the replacements not launched yet are
        called off first (a ReplicaSet deletes its unscheduled pods first),
        then members are shut down (each with ``drain``) in the order of
        :meth:`deletion_order`.
        """
        if not is_whole(replicas) or replicas < 0:
            raise ParamError("replicas", replicas, "a whole number >= 0")
        wait = _time("drain", drain)
        assert wait is not None
        change = int(replicas) - self.replicas
        for _ in range(change):
            self.launch()
        if change < 0:
            called_off = min(self._pending, -change)
            self._pending -= called_off
            retire = -change - called_off
            for name in self.deletion_order(self._members)[:retire]:
                self.shutdown(name, wait)

    def deletion_order(self, names: Iterable[str]) -> list[str]:
        """``names`` in the order a ReplicaSet deletes pods: those whose
        process is not up (starting, or down) first, then the newest first.

        Kubernetes' ``controller.ActivePods`` ranking
        (``pkg/controller/controller_utils.go``, used by the ReplicaSet's
        ``getPodsToDelete``): Pending before Running, not ready before ready,
        ready for less time before more, newer before older.  Here the
        process being up stands for Running and ready, and the launch
        counter for the creation and ready times.
        """
        def rank(name: str) -> tuple[bool, int]:
            return self.instances[name].up, -int(name.rsplit("-", 1)[1])
        return sorted(names, key=rank)

    def rolling_upgrade(self, at: float | None = None, drain: float = 0.0,
                        min_ready: float = 0.0) -> None:
        """Replace every member, one at a time, from time ``at`` (now if None).

        A Kubernetes Deployment's ``RollingUpdate`` with ``maxSurge: 1`` and
        ``maxUnavailable: 0`` (``DeploymentController.rolloutRolling`` in
        ``pkg/controller/deployment/rolling.go``): ``reconcileNewReplicaSet``
        adds one new instance (the surge); once it is available -- started
        and up ``min_ready`` s (``minReadySeconds``) --
        ``scaleDownOldReplicaSetsForRollingUpdate`` may take one old member
        away (available pods > ``replicas - maxUnavailable``): it is shut
        down with ``drain``, the one a ReplicaSet deletes first
        (:meth:`deletion_order`).  The next new one is launched at the same
        instant (a Terminating pod does not count against the surge), and so
        on while any member present at ``at`` is left.  So the fleet never
        has fewer than its replica count of started, non-draining
        instances, and at most one more (the surge, not counted in
        :attr:`replicas`).  Kubernetes counts a
        pod available once it is *Ready* (its readiness probe); here it is
        once the process has started, plus ``min_ready`` -- give
        ``min_ready`` the readiness delay (a probe period) to get the same,
        or watch the endpoints thin out during the upgrade.  Old members
        that go meanwhile (a crash, a scale-in) leave fewer to replace.
        """
        when = self.env.now if at is None else _time("at", at)
        assert when is not None
        if when < self.env.now:
            raise ParamError("at", at, f"a time >= now ({self.env.now:g})")
        wait = _time("drain", drain)
        settle = _time("min_ready", min_ready)
        assert wait is not None and settle is not None

        def begin() -> None:
            self.env.process(self._roll(wait, settle))

        self.world.at(when, begin)

    def _roll(self, drain: float, min_ready: float) -> Generator[Event, Any, None]:
        old = set(self._members)
        while any(name in old for name in self._members):
            self.launch()
            self._surge += 1
            # the new instance's start (and its Registration.start) were
            # scheduled at its launch, before this timeout: they run first
            yield self.env.timeout(self.startup)
            if min_ready > 0:
                yield self.env.timeout(min_ready)
            self._surge -= 1
            left = [name for name in self._members if name in old]
            if left:
                self.shutdown(self.deletion_order(left)[0], drain)


# -- a churn schedule ------------------------------------------------------------------

#: the kinds of churn step and what their ``seconds`` mean
STEP_KINDS = {
    "crash": "replace after (None: not replaced)",
    "hang": "duration (None: for good)",
    "shutdown": "drain",
    "node_failure": "replace after (None: not replaced)",
    "scale": "drain of the members retired",
    "upgrade": "drain of each old member",
}


@dataclass(frozen=True)
class ChurnStep:
    """One scheduled change: ``kind`` at time ``at`` to ``target`` (an
    instance name; the replica count for ``scale``; None for ``upgrade``),
    with ``seconds`` as :data:`STEP_KINDS` says."""

    kind: str
    at: float
    target: str | int | None
    seconds: float | None = None


def _check_step(fleet: Fleet, i: int, step: ChurnStep | Sequence[Any]) -> ChurnStep:
    where = f"steps[{i}]"
    if not isinstance(step, ChurnStep):
        if isinstance(step, (str, bytes)) or not isinstance(step, Sequence) \
                or len(step) not in (3, 4):
            raise ParamError(where, step, "(kind, at, name_or_count, seconds) or a ChurnStep")
        step = ChurnStep(*step)
    if step.kind not in STEP_KINDS:
        raise ParamError(f"{where}.kind", step.kind, f"one of {', '.join(STEP_KINDS)}")
    at = _time(f"{where}.at", step.at)
    assert at is not None
    if at < fleet.env.now:
        raise ParamError(f"{where}.at", step.at, f"a time >= now ({fleet.env.now:g})")
    seconds = _time(f"{where}.seconds", step.seconds, allow_none=True)
    target = step.target
    if step.kind == "scale":
        if not is_whole(target) or target < 0:  # type: ignore[operator]
            raise ParamError(f"{where}.target", target, "a replica count: a whole number >= 0")
        target = int(target)  # type: ignore[arg-type]
    elif step.kind == "upgrade":
        if target is not None:
            raise ParamError(f"{where}.target", target, "None (an upgrade replaces every member)")
    elif not isinstance(target, str) or not fleet._pattern.fullmatch(target):
        raise ParamError(f"{where}.target", target,
                         f"an instance name of this fleet: {fleet.service}-<n>, n >= 1")
    return ChurnStep(step.kind, at, target, seconds)


def install_churn(fleet: Fleet, steps: Iterable[ChurnStep | Sequence[Any]]
                  ) -> tuple[ChurnStep, ...]:
    """Schedule every step of a churn schedule; all are checked first.

    A step is ``(kind, at, name_or_count, seconds)`` (or a
    :class:`ChurnStep`): ``("crash", 60, "orders-2", 30)`` crashes
    ``orders-2`` at 60 s and launches its replacement at 90 s;
    ``("scale", 300, 5, 10)`` scales to 5 at 300 s, draining retired
    members 10 s; ``("upgrade", 600, None, 10)`` starts a rolling upgrade.
    A name may be one launched later (a replacement: ``orders-4``); if it
    does not exist yet at the step's time the step is recorded as
    ``<kind>_skipped`` (``not launched``).  Returns the checked steps.
    """
    checked = tuple(_check_step(fleet, i, s) for i, s in enumerate(steps))
    for step in checked:
        fleet.world.at(step.at, _action(fleet, step))
    return checked


def _action(fleet: Fleet, step: ChurnStep) -> Callable[[], None]:
    def run() -> None:
        kind, target, seconds = step.kind, step.target, step.seconds
        if kind == "scale":
            fleet.scale_to(target, seconds or 0.0)  # type: ignore[arg-type]
            return
        if kind == "upgrade":
            fleet.rolling_upgrade(None, seconds or 0.0)
            return
        assert isinstance(target, str)
        if target not in fleet.instances:
            fleet._skip(kind, target, "not launched")
        elif kind == "crash":
            fleet.crash(target, replace_after=seconds)
        elif kind == "hang":
            fleet.hang(target, seconds)
        elif kind == "shutdown":
            fleet.shutdown(target, seconds or 0.0)
        else:
            fleet.node_failure(target, replace_after=seconds)
    return run


# -- the horizontal pod autoscaler -----------------------------------------------------

def desired_replicas(current: int, utilisation: float, target: float,
                     tolerance: float = 0.1) -> int:
    """The HPA's formula: ``ceil(current × utilisation / target)``, unless
    the ratio is within ``tolerance`` of 1 (then ``current``: no change).

    Kubernetes ``ReplicaCalculator.GetResourceReplicas``
    (``pkg/controller/podautoscaler/replica_calculator.go``): ``if
    math.Abs(1.0-usageRatio) <= c.tolerance { return currentReplicas }``
    else ``math.Ceil(usageRatio * readyPodCount)``; the tolerance is the
    controller manager's ``--horizontal-pod-autoscaler-tolerance``, 0.1.
    """
    ratio = utilisation / target
    if abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(ratio * current)


def hpa_replicas(current: int, utilisations: Sequence[float], unready: int, target: float,
                 tolerance: float = 0.1) -> int | None:
    """The HPA's proposal from the ready pods' utilisations and the pods
    that are not ready yet (starting, or down awaiting a restart).

    ``ReplicaCalculator.GetResourceReplicas`` with every ready pod
    reporting a metric: the usage ratio is the ready pods' mean over the
    target; without unready pods, or when it asks to scale down, the
    proposal is ``ceil(ratio × ready)`` (``current`` within tolerance).
    When it asks to scale UP and some pods are not ready, those count as
    using 0 % (``rebalanceIgnored``) and the ratio is recomputed over all of
    them: no change if the new ratio is within tolerance or says scale
    down, else ``ceil(new ratio × (ready + unready))``.  This is what keeps
    an HPA from piling up replicas while the ones it asked for are still
    starting.  None when no pod is ready (Kubernetes: "did not receive
    metrics for any ready pods" -- the sync changes nothing).
    """
    ready = len(utilisations)
    if ready == 0:
        return None
    total = float(sum(utilisations))
    ratio = total / ready / target
    if not (unready > 0 and ratio > 1.0):
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * ready)
    new_ratio = total / (ready + unready) / target
    if abs(1.0 - new_ratio) <= tolerance or new_ratio < 1.0:
        return current
    return math.ceil(new_ratio * (ready + unready))


def limit_replicas(current: int, desired: int, min_replicas: int, max_replicas: int) -> int:
    """Clamp a recommendation as the HPA does (``convertDesiredReplicasWithRules``).

    Never below ``minReplicas``, never above ``maxReplicas``, and never more
    than ``max(2 × current, 4)`` in one step (``scaleUpLimitFactor`` 2,
    ``scaleUpLimitMinimum`` 4: a guard against a bogus metric).
    """
    up_limit = int(max(2.0 * current, 4.0))
    highest = min(max_replicas, up_limit)
    if desired < min_replicas:
        return min_replicas
    return min(desired, highest)


class Stabilisation:
    """The HPA's scale-down stabilisation window (pure; time is an argument).

    ``HorizontalController.stabilizeRecommendation``: every sync's raw
    recommendation is stored with its time; the one applied is the highest
    of those not older than the window (``--horizontal-pod-autoscaler-
    downscale-stabilization``, 300 s by default).  So a scale-up applies
    at once and a scale-down only once the load has stayed low for the
    whole window.  The first sync seeds the list with the current replica
    count (``recordInitialRecommendation``), so nothing scales down within
    the first window either.
    """

    def __init__(self, window: float = 300.0) -> None:
        self.window = float(_time("delay", window))  # type: ignore[arg-type]
        self.recommendations: list[tuple[float, int]] = []

    def seed(self, now: float, current: int) -> None:
        """``recordInitialRecommendation``: only if nothing is stored yet."""
        if not self.recommendations:
            self.recommendations.append((now, current))

    def stabilise(self, now: float, proposal: int) -> int:
        """The highest recommendation within the window, this one included."""
        cutoff = now - self.window
        highest = proposal
        kept = []
        for t, rec in self.recommendations:
            if t >= cutoff:  # Go: "if rec.timestamp.Before(cutoff)" is old
                highest = max(highest, rec)
                kept.append((t, rec))
        kept.append((now, proposal))
        self.recommendations = kept
        return highest


class Autoscaler:
    """Kubernetes' HorizontalPodAutoscaler on a :class:`Fleet`.

    Every ``period`` s (``--horizontal-pod-autoscaler-sync-period``, 15 s;
    the first sync at a random phase in ``[0, period)`` from the stream
    ``autoscaler:<service>:sync``) it reads each member's utilisation over
    the last period -- ``Instance.busy_seconds`` difference over
    ``workers × period``, the share of its workers that were busy (a hung
    instance's stuck workers count as busy: it looks loaded) -- and then
    does what ``HorizontalController.reconcileAutoscaler`` does with no
    ``behavior`` set: ``current`` is :attr:`Fleet.replicas` (the
    Deployment's ``spec.replicas``); zero disables it (as an HPA whose target was scaled
    to 0); outside ``[min_replicas, max_replicas]`` it is brought back in;
    else the proposal of :func:`hpa_replicas` (members with a full period
    of metrics are ready; those without -- starting, down, just restarted
    -- are unready) goes through
    :class:`Stabilisation` (``delay``: the downscale stabilisation window,
    300 s) and :func:`limit_replicas`, and the fleet is scaled to it
    (:meth:`Fleet.scale_to`, retiring the newest first with ``drain``).

    ``target_utilisation`` is the HPA's ``averageUtilization`` (as a
    fraction: 0.5 for 50 %), ``tolerance`` its 0.1.  Each sync is kept in
    ``history`` as ``(time, current, utilisation, proposal, desired)``
    (``utilisation`` the ready members' mean, NaN and ``proposal`` None when
    none was ready).
    """

    def __init__(self, fleet: Fleet, target_utilisation: float, *, period: float = 15.0,
                 delay: float = 300.0, min_replicas: int = 1, max_replicas: int = 10,
                 tolerance: float = 0.1, drain: float = 0.0) -> None:
        if not isinstance(fleet, Fleet):
            raise ParamError("fleet", fleet, "a Fleet")
        target = as_real(target_utilisation)
        if target is None or not 0 < target <= 1:
            raise ParamError("target_utilisation", target_utilisation,
                             "a fraction of the workers' time in (0, 1]")
        period_s = _time("period", period, positive=True)
        delay_s = _time("delay", delay)
        if not is_whole(min_replicas) or min_replicas < 1:
            raise ParamError("min_replicas", min_replicas, "a whole number >= 1")
        if not is_whole(max_replicas) or max_replicas < min_replicas:
            raise ParamError("max_replicas", max_replicas,
                             f"a whole number >= min_replicas ({min_replicas})")
        tol = as_real(tolerance)
        if tol is None or not 0 <= tol < 1:
            raise ParamError("tolerance", tolerance, "a fraction in [0, 1)")
        drain_s = _time("drain", drain)
        self.fleet = fleet
        self.target = float(target)
        self.period = float(period_s)  # type: ignore[arg-type]
        self.tolerance = float(tol)
        self.min_replicas = int(min_replicas)
        self.max_replicas = int(max_replicas)
        self.drain = float(drain_s)  # type: ignore[arg-type]
        self.stabilisation = Stabilisation(delay_s)  # type: ignore[arg-type]
        self.history: list[tuple[float, int, float, int | None, int]] = []
        # name -> (time, busy_seconds) at the last sync that found it up
        self._seen: dict[str, tuple[float, float]] = {}
        self._rng = fleet.world.stream(f"autoscaler:{fleet.service}:sync")
        fleet.env.process(self._run())

    def _run(self) -> Generator[Event, Any, None]:
        env = self.fleet.env
        yield env.timeout(self._rng.uniform(0.0, self.period))
        while True:
            self.sync(env.now)
            yield env.timeout(self.period)

    def _measure(self, now: float) -> tuple[list[float], int]:
        """(utilisations of the ready members, count of the unready ones)."""
        fleet = self.fleet
        seen, self._seen = self._seen, {}
        utils: list[float] = []
        unready = 0
        for name in fleet._members:
            inst = fleet.instances[name]
            if not inst.up:
                unready += 1
                continue
            busy = inst.busy_seconds(now)
            self._seen[name] = (now, busy)
            last = seen.get(name)
            if last is None or now <= last[0]:
                unready += 1  # no full period of metrics yet
                continue
            utils.append((busy - last[1]) / (inst.workers * (now - last[0])))
        return utils, unready

    def sync(self, now: float) -> None:
        """One reconcile (what the periodic task runs; callable in tests)."""
        current = self.fleet.replicas
        self.stabilisation.seed(now, current)
        utils, unready = self._measure(now)
        mean = sum(utils) / len(utils) if utils else math.nan
        proposal: int | None = None
        if current == 0:
            # "scaling is disabled since the replica count of the target is zero"
            desired = 0
        elif current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        else:
            proposal = hpa_replicas(current, utils, unready, self.target, self.tolerance)
            if proposal is None:
                self.history.append((now, current, mean, None, current))
                return
            stable = self.stabilisation.stabilise(now, proposal)
            desired = limit_replicas(current, stable, self.min_replicas, self.max_replicas)
        self.history.append((now, current, mean, proposal, desired))
        if desired != current:
            self.fleet.scale_to(desired, self.drain)
