"""Health probes: one health request, and the thresholds that turn results into readiness.

Third-party registration (*Microservices Patterns* §3.2.4) needs someone to
ask each instance whether it is healthy: Kubernetes' kubelet runs its
readiness probe, Consul's agent its HTTP check, a registrar (Registrator,
Netflix Prana, Route 53 health checks) its own.  Three pieces, used by all
of them:

* :func:`probe` / :func:`probe_status` -- one health request (a message to
  the instance, through its worker pool), answered in time or not;
* :class:`ProbeState` -- pure: the consecutive-results rule that turns a
  stream of probe results into ready / unready transitions;
* :class:`ProbeSpec` -- the probe's settings, checked, with Kubernetes'
  defaults.

Source followed: Kubernetes ``pkg/kubelet/prober/worker.go``
(``worker.doProbe``, ``newWorker``) and ``pkg/apis/core`` ``Probe``
(``periodSeconds`` 10, ``timeoutSeconds`` 1, ``failureThreshold`` 3,
``successThreshold`` 1, ``initialDelaySeconds`` 0).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from simpy.events import Event

from simcomm._checks import as_real, is_flag, is_whole
from simcomm.discovery.registry import ask
from simcomm.engine.nodes import Instance, Node
from simcomm.errors import ParamError

__all__ = ["HEALTH", "READY", "UNREADY", "ProbeSpec", "ProbeState", "probe", "probe_status"]

#: the body of a health request
HEALTH = {"op": "health"}
#: what :meth:`ProbeState.observe` returns on a transition
READY = "ready"
UNREADY = "unready"


def _seconds(field: str, value: object, *, zero: bool) -> float:
    x = as_real(value)
    if x is None or not math.isfinite(x) or x < 0 or (x == 0 and not zero):
        raise ParamError(field, value, f"finite seconds {'>= 0' if zero else '> 0'}")
    return x


def _threshold(field: str, value: object) -> int:
    if not is_whole(value) or value < 1:  # type: ignore[operator]
        raise ParamError(field, value, "a whole number >= 1 (consecutive probe results)")
    return int(value)  # type: ignore[call-overload]


class ProbeState:
    """Kubernetes' prober rule: thresholds of *consecutive* results flip readiness.

    ``worker.doProbe``: each result extends the run of equal results or
    starts a new run of 1 (``lastResult`` / ``resultRun``); a run of
    failures shorter than ``failure_threshold`` (``failureThreshold``, 3),
    or of successes shorter than ``success_threshold``
    (``successThreshold``, 1), leaves the state unchanged; a run that
    reaches its threshold sets the result -- every further result of that
    run sets it again, which changes nothing.  A readiness worker starts
    *not* ready (``newWorker``: ``initialValue = results.Failure``), so a
    new pod joins the endpoints at its first successful probe.

    With the defaults, a pod that stops answering is unready at its 3rd
    failed probe: between ``(failure_threshold − 1) × period + timeout``
    and ``failure_threshold × period + timeout`` after it stopped
    (REFERENCE §5: "about 30 s").  One success in between restarts the
    count.
    """

    __slots__ = ("failure_threshold", "last", "ready", "run", "success_threshold")

    def __init__(self, failure_threshold: int = 3, success_threshold: int = 1,
                 initially_ready: bool = False) -> None:
        self.failure_threshold = _threshold("failure_threshold", failure_threshold)
        self.success_threshold = _threshold("success_threshold", success_threshold)
        if not is_flag(initially_ready):
            raise ParamError("initially_ready", initially_ready, "True or False")
        #: the result in force (what the endpoints see)
        self.ready = bool(initially_ready)
        #: ``lastResult``: the last probe's result (None before the first)
        self.last: bool | None = None
        #: ``resultRun``: how many probes in a row gave ``last``
        self.run = 0

    def observe(self, ok: bool) -> str | None:
        """One probe result: ``"ready"`` / ``"unready"`` when readiness flips, else None."""
        if not is_flag(ok):
            raise ParamError("ok", ok, "True or False (the probe's result)")
        ok = bool(ok)
        if ok == self.last:
            self.run += 1
        else:
            self.last = ok
            self.run = 1
        if self.run < (self.success_threshold if ok else self.failure_threshold):
            return None
        return self.force(ok)

    def force(self, ready: bool) -> str | None:
        """Set readiness without a probe (``resultsManager.Set``); the run of
        probe results is kept, as the kubelet keeps it.

        The kubelet does this for a new container (``initialValue``: not
        ready) and for a container that is not running (``Failure``).
        Returns the transition, or None if readiness was already that.
        """
        if not is_flag(ready):
            raise ParamError("ready", ready, "True or False")
        if bool(ready) == self.ready:
            return None
        self.ready = bool(ready)
        return READY if self.ready else UNREADY

    def __repr__(self) -> str:
        return (f"ProbeState(ready={self.ready}, last={self.last}, run={self.run}, "
                f"failure_threshold={self.failure_threshold}, "
                f"success_threshold={self.success_threshold})")


@dataclass(frozen=True)
class ProbeSpec:
    """A probe's settings, checked, with Kubernetes' defaults (``v1.Probe``).

    ===================== ========================= =========
    ours                  Kubernetes                default
    ===================== ========================= =========
    ``period``            ``periodSeconds``         10 s
    ``timeout``           ``timeoutSeconds``        1 s
    ``failure_threshold`` ``failureThreshold``      3
    ``success_threshold`` ``successThreshold``      1
    ``initial_delay``     ``initialDelaySeconds``   0 s
    ===================== ========================= =========

    Kubernetes takes whole seconds (at least 1); here any positive seconds
    are allowed, so a lesson can shrink a probe.  A bad value is a
    :class:`ParamError` naming the field, raised when the spec is made.
    """

    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay: float = 0.0

    def __post_init__(self) -> None:
        # normalise numpy numbers to plain ones; frozen, hence object.__setattr__
        object.__setattr__(self, "period", _seconds("period", self.period, zero=False))
        object.__setattr__(self, "timeout", _seconds("timeout", self.timeout, zero=False))
        object.__setattr__(self, "failure_threshold",
                           _threshold("failure_threshold", self.failure_threshold))
        object.__setattr__(self, "success_threshold",
                           _threshold("success_threshold", self.success_threshold))
        object.__setattr__(self, "initial_delay",
                           _seconds("initial_delay", self.initial_delay, zero=True))

    def state(self, initially_ready: bool = False) -> ProbeState:
        """A fresh :class:`ProbeState` with these thresholds."""
        return ProbeState(self.failure_threshold, self.success_threshold, initially_ready)


def probe_status(node: Node, inst: Instance | str, timeout: float
                 ) -> Generator[Event, Any, str]:
    """Send one health request from ``node`` to ``inst``; how it went.

    The request (body ``{"op": "health"}``, kind ``control``) goes through
    :func:`simcomm.discovery.registry.ask`, so it and its reply are counted
    as discovery messages.  It is served like any request: it waits for a
    worker of the instance and runs its handler, so a hung instance, or one
    whose queue is long, fails it -- as an HTTP ``readinessProbe`` /
    Consul HTTP check on the service's own port does.  Returns the reply's
    status (``ok``; ``refused`` for a closed port, ``reset``, ``rejected``,
    ``error``), or ``timeout`` when no reply came within ``timeout`` seconds
    (the prober's HTTP client gives up: ``timeoutSeconds``).
    """
    dest = inst if isinstance(inst, str) else inst.name
    reply = yield from ask(node, dest, dict(HEALTH), timeout)
    return "timeout" if reply is None else reply.status


def probe(node: Node, inst: Instance | str, timeout: float) -> Generator[Event, Any, bool]:
    """One health request (see :func:`probe_status`): True when ``inst``
    answered ``ok`` within ``timeout`` seconds."""
    status = yield from probe_status(node, inst, timeout)
    return status == "ok"
