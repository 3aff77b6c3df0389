"""Consul-style discovery: health checks, ``?passing`` queries, blocking queries, the reaper.

Consul (``REFERENCE.md`` §5) keeps each instance in its catalog with one or
more **health checks**, and a health-filtered query
(``/v1/health/service/<name>?passing``) lists only the instances whose
checks pass.  So an instance whose check turns **critical drops out of the
answer at once** -- it is not removed, only filtered -- and a separate
**reaper** deregisters it for good once it has been critical for longer
than the check's ``deregister_critical_service_after``.  Every rule below
is the upstream one (hashicorp/consul, cited by file and function):

* **TTL check** (``agent/checks/check.go`` ``CheckTTL``): a timer of ``ttl``
  seconds starts when the check is registered (``Start``:
  ``time.NewTimer(c.TTL)``) and is reset by every update
  (``SetStatus``: ``c.timer.Reset(c.TTL)``); when it fires the check is
  set critical ("missed TTL, is now critical").  So the check turns
  critical **exactly at the last pass + ttl** (:class:`TtlCheck`).  The
  application updates it with ``PUT /v1/agent/check/pass/<id>`` (our op
  ``pass``, recorded as ``renew``).
* **HTTP check** (``CheckHTTP``): the agent requests the instance's health
  endpoint every ``interval``; the first run comes after a random stagger
  in ``[0, interval)`` (``lib.RandomStagger``) and each next one
  ``interval`` after the previous one *returned* (``next =
  time.After(c.Interval)`` after ``c.check()``), so a probe that times out
  stretches the period by its ``timeout`` (default 10 s, ``http.Client``
  ``Timeout: 10 * time.Second``).  A 2xx is passing, anything else or no
  answer critical -- through the ``StatusHandler``
  (:class:`StatusHandler`): ``failures_before_critical`` (default 0: the
  first failure) and ``success_before_passing`` (default 0).
* **Critical time** (``agent/local/state.go`` ``UpdateCheck``): the
  moment a check goes from not critical to critical is kept
  (``CriticalTime``) and cleared when it passes again
  (:class:`CheckStatus`).
* **Reaper** (``agent/agent.go`` ``reapServices`` /
  ``reapServicesInternal``): every ``check_reap_interval`` (30 s, a
  non-user setting in ``agent/config/default.go``) the agent removes each
  service one of whose checks has been critical for *more than* its
  ``DeregisterCriticalServiceAfter`` (``cs.CriticalFor() > timeout``,
  :func:`reap_due`).  A timeout below ``check_deregister_interval_min``
  (1 min, same file) is raised to it with a warning (``addCheck``: "has
  deregister interval below minimum"); simcomm refuses it instead, with a
  :class:`ParamError` before time zero, so that a learner who asks for
  30 s is told it cannot happen rather than silently getting 60 s.  Unset
  (our ``None``) means never reaped, Consul's default.
* **Blocking queries** (``agent/consul/rpc.go`` ``blockingQuery``): a query
  with an index not behind the table's present one is held until the index
  moves or ``wait`` passes (``defaultQueryTime = 300 * time.Second``), plus
  a random jitter of up to ``wait / 16`` (``jitterFraction = 16``,
  ``lib.RandomStagger``).  A pass that changes nothing (same status, same
  output) is not written to the catalog (``UpdateCheck``: "Do nothing if
  update is idempotent"), so it wakes nobody; registering, deregistering,
  a status change and a reap do.

What simcomm merges: in a real cluster the checks, their timers and the
reaper live on the **local agent** of the instance's machine, which pushes
status changes to the servers (anti-entropy); here one
:class:`ConsulServer` is agent and catalog at once, so a check's probes and
passes cross the network to it.  The catalog is kept in Raft
(``persistent``: a crash loses nothing); after a restart or the end of a
hang every TTL timer starts again from ``ttl`` (the agent starts its
``CheckTTL`` afresh) and every check keeps its status and critical time.
That is a crash of the *servers* (the registry) as a learner means it;
a restarted *agent* differs upstream in two ways not modelled here:
``loadCheckState`` restores a TTL check's persisted status only while its
last update + TTL is still ahead ("check state expired, not restoring":
else the check starts from its registered status, critical by default),
and an agent's ``CriticalTime`` lives in memory, so the reaper's count
starts again at the next critical update.

Self-registration (:class:`ConsulRegistration`) follows Spring Cloud
Consul: register with a TTL check (``spring.cloud.consul.discovery.
heartbeat.ttl``, 30 s) and pass it every ``ttl × 2/3`` (``intervalRatio``;
:func:`heartbeat_interval` is ``HeartbeatProperties.
computeHeartbeatInterval``) from a scheduler thread -- so a **hung**
instance, whose request workers are stuck, keeps passing.  A crash stops
the passes without a deregister; a clean shutdown deregisters at once.
Consumers watch with :class:`ConsulView`: blocking queries back to back.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import as_real, is_flag
from simcomm.discovery.probe import probe_status
from simcomm.discovery.registry import (
    RegistryServer,
    View,
    ask,
    check_count,
    check_seconds,
    record,
)
from simcomm.engine.nodes import Instance, Node, ServiceError
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["CHECK_REAP_INTERVAL", "DEFAULT_QUERY_TIME", "DEREGISTER_MIN", "CheckStatus",
           "ConsulRegistration", "ConsulServer", "ConsulView", "StatusHandler", "TtlCheck",
           "check_deregister_after", "heartbeat_interval", "reap_due", "register_body"]

#: ``check_reap_interval``: how often the reaper runs (agent/config/default.go)
CHECK_REAP_INTERVAL = 30.0
#: ``check_deregister_interval_min``: the least ``deregister_critical_service_after``
DEREGISTER_MIN = 60.0
#: ``defaultQueryTime``: how long a blocking query is held without a change
DEFAULT_QUERY_TIME = 300.0
#: ``jitterFraction``: a blocking query's wait gets up to ``wait / 16`` more
JITTER_FRACTION = 16

PASSING = "passing"
CRITICAL = "critical"


# -- the pure rules --------------------------------------------------------------------------
def check_deregister_after(value: Any, field: str = "deregister_after") -> float | None:
    """``deregister_critical_service_after`` checked: None (never reaped, Consul's
    default) or finite seconds >= 60 (``check_deregister_interval_min``)."""
    if value is None:
        return None
    seconds = as_real(value)
    if seconds is None or math.isnan(seconds) or math.isinf(seconds) \
            or seconds < DEREGISTER_MIN:
        raise ParamError(field, value,
                         f"None (never reaped) or finite seconds >= {DEREGISTER_MIN:g} "
                         "(Consul's check_deregister_interval_min, 1 min)")
    return seconds


def reap_due(critical_since: float | None, now: float, deregister_after: float | None) -> bool:
    """Whether the reaper removes an instance at ``now``.

    Consul's ``reapServicesInternal``: ``timeout > 0 && cs.CriticalFor() >
    timeout`` -- critical for strictly more than ``deregister_after``.  A
    check that is not critical, or has no timeout, is never reaped.  With a
    reaper running every ``check_reap_interval`` (30 s), an instance
    critical since ``c`` is removed in ``(c + after, c + after + 30]``.
    """
    if critical_since is None or deregister_after is None:
        return False
    return now - critical_since > deregister_after


def heartbeat_interval(ttl: float, ratio: float = 2.0 / 3.0) -> float:
    """How often Spring Cloud Consul passes a TTL check of ``ttl`` seconds.

    ``HeartbeatProperties.computeHeartbeatInterval``: ``ttl × intervalRatio``
    (2/3), but no sooner than 1 s and no later than ``ttl − 1`` s (the
    later bound wins), rounded to the millisecond: 20 s for the default
    30 s TTL.
    """
    ttl = check_seconds("ttl", ttl)
    r = as_real(ratio)
    if r is None or not 0.1 <= r <= 0.9:
        raise ParamError("ratio", ratio, "a number from 0.1 to 0.9 (intervalRatio)")
    interval = min(ttl - 1.0, max(ttl * r, 1.0))
    return round(1000.0 * interval) / 1000.0


class TtlCheck:
    """The timer of a Consul TTL check (``agent/checks/check.go`` ``CheckTTL``).

    Started at registration (``Start``: ``time.NewTimer(c.TTL)``), reset by
    every update (``SetStatus``: ``c.timer.Reset(c.TTL)``): the check is due
    to turn critical at ``deadline`` = the last update (or the start) +
    ``ttl``, and not a moment before.
    """

    __slots__ = ("deadline", "ttl")

    def __init__(self, ttl: float, now: float) -> None:
        self.ttl = check_seconds("ttl", ttl)
        self.deadline = now + self.ttl

    def update(self, now: float) -> None:
        """A pass (or a restart of the timer): due again ``ttl`` from ``now``."""
        self.deadline = now + self.ttl

    def expired(self, now: float) -> bool:
        """Whether the TTL has run out by ``now``."""
        return now >= self.deadline


class CheckStatus:
    """A check's status and when it turned critical (``agent/local/state.go``).

    ``UpdateCheck``: on a critical status, ``CriticalTime`` is set only if
    the check was not critical already; any other status clears it.  So
    :attr:`critical_since` is the start of the present critical stretch
    (what the reaper measures), or None while the check is not critical.
    A check registered critical (Consul's default initial status) has no
    ``CriticalTime`` until an update sets it critical (for a TTL check,
    when its timer first fires): ``AddCheck`` does not set it.
    """

    __slots__ = ("critical_since", "status")

    def __init__(self, status: str = CRITICAL) -> None:
        if status not in (PASSING, CRITICAL):
            raise ParamError("status", status, "'passing' or 'critical'")
        self.status = status
        self.critical_since: float | None = None

    def set(self, status: str, now: float) -> bool:
        """Set the status at ``now``; True if it changed (passing <-> critical)."""
        if status == CRITICAL:
            if self.critical_since is None:
                self.critical_since = now
        else:
            self.critical_since = None
        changed = status != self.status
        self.status = status
        return changed

    def critical_for(self, now: float) -> float:
        """Seconds in the present critical stretch (0 when not critical)."""
        return 0.0 if self.critical_since is None else now - self.critical_since


class StatusHandler:
    """Consul's ``StatusHandler`` (``agent/checks/check.go``): thresholds on
    consecutive probe results before a periodic check's status changes.

    ``success_before_passing`` / ``failures_before_critical`` (both 0 by
    default).  The counters start *at* the thresholds ("in order to
    immediately update status after first check"), so the first result
    after registration always goes through; afterwards a failure needs
    ``failures_before_critical`` consecutive failures (a success resets the
    count), and a success ``success_before_passing`` consecutive ones.
    :meth:`observe` returns the status to set, or None to leave it.
    """

    __slots__ = ("failures", "failures_before_critical", "success_before_passing", "successes")

    def __init__(self, success_before_passing: int = 0, failures_before_critical: int = 0) -> None:
        self.success_before_passing = check_count("success_before_passing",
                                                  success_before_passing)
        self.failures_before_critical = check_count("failures_before_critical",
                                                    failures_before_critical)
        self.successes = self.success_before_passing
        self.failures = self.failures_before_critical

    def observe(self, ok: bool) -> str | None:
        """One probe's result: the status to set now, or None."""
        if ok:
            self.successes += 1
            self.failures = 0
            return PASSING if self.successes >= self.success_before_passing else None
        self.failures += 1
        self.successes = 0
        return CRITICAL if self.failures >= self.failures_before_critical else None


def register_body(service: str, instance: str, *, check: str = "ttl", ttl: float = 30.0,
                  interval: float = 10.0, timeout: float = 10.0,
                  deregister_after: float | None = None, status: str = CRITICAL,
                  success_before_passing: int = 0, failures_before_critical: int = 0,
                  by: str = "self") -> dict[str, Any]:
    """The body of a Consul ``register`` request, every field checked (ParamError).

    ``check``: ``"ttl"`` (the instance passes it, :class:`ConsulRegistration`)
    or ``"http"`` (the server probes the instance every ``interval`` with a
    ``timeout``: third-party registration, as Registrator registers a
    container with ``SERVICE_CHECK_HTTP``).  ``status`` is the check's
    initial status (Consul's default: critical).  ``by``: ``"self"`` or
    ``"third-party"`` (the detail of the ``register`` row).
    """
    if not isinstance(service, str) or not service:
        raise ParamError("service", service, "a service name")
    if not isinstance(instance, str) or not instance:
        raise ParamError("instance", instance, "an instance name")
    if check not in ("ttl", "http"):
        raise ParamError("check", check, "'ttl' or 'http'")
    if status not in (PASSING, CRITICAL):
        raise ParamError("status", status, "'passing' or 'critical'")
    if by not in ("self", "third-party"):
        raise ParamError("by", by, "'self' or 'third-party'")
    body: dict[str, Any] = {
        "op": "register", "service": service, "instance": instance, "check": check,
        "deregister_after": check_deregister_after(deregister_after), "status": status,
        "by": by}
    if check == "ttl":
        body["ttl"] = check_seconds("ttl", ttl)
    else:
        body["interval"] = check_seconds("interval", interval)
        body["timeout"] = check_seconds("timeout", timeout)
        body["success_before_passing"] = check_count("success_before_passing",
                                                     success_before_passing)
        body["failures_before_critical"] = check_count("failures_before_critical",
                                                       failures_before_critical)
    return body


# -- the server -------------------------------------------------------------------------------
class _Entry:
    """One registered instance and its check, in a :class:`ConsulServer`."""

    __slots__ = ("after", "check", "gen", "handler", "instance", "interval", "service",
                 "state", "timeout", "timer", "ttl_check")

    def __init__(self, service: str, instance: str, check: str, state: CheckStatus,
                 after: float | None, gen: int) -> None:
        self.service = service
        self.instance = instance
        self.check = check
        self.state = state
        self.after = after
        self.gen = gen
        self.ttl_check: TtlCheck | None = None
        self.timer: float | None = None  # when the armed TTL timer fires, if one is armed
        self.handler: StatusHandler | None = None
        self.interval = 0.0
        self.timeout = 0.0


def _seconds_in(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    seconds = as_real(value)
    if seconds is None or not 0 < seconds < math.inf:
        raise ServiceError(f"{key} must be seconds > 0", status="bad_request")
    return seconds


def _count_in(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 0)
    try:
        return check_count(key, value)
    except ParamError:
        raise ServiceError(f"{key} must be a whole number >= 0", status="bad_request") from None


class ConsulServer(RegistryServer):
    """A Consul agent + catalog (see the module docstring for every rule).

    Operations (request bodies; make them with :func:`register_body`):

    * ``register`` -- ``service``, ``instance``, ``check`` (``ttl`` with
      ``ttl``; ``http`` with ``interval``, ``timeout``,
      ``success_before_passing``, ``failures_before_critical``),
      ``status`` (initial, default ``critical`` as Consul's),
      ``deregister_after`` (None: never reaped; below 60 s raised to 60 s,
      as Consul does), ``by`` (``self`` / ``third-party``).  Registering a
      known instance again replaces its check, which keeps its status
      (``agent.AddService`` restores it from a snapshot; ``status`` applies
      to a new registration only) but starts with no critical time and a
      fresh TTL.
    * ``pass`` -- ``instance``: update its TTL check (``not_found`` if
      unknown, ``bad_request`` if its check is not a TTL check).
    * ``deregister`` -- ``instance`` (``not_found`` if unknown).
    * ``query`` -- ``service`` [+ ``index``, ``wait``]: the passing
      instances, sorted; a blocking query when ``wait`` > 0.

    ``reap_interval`` is Consul's ``check_reap_interval`` (30 s; not a user
    setting upstream, a knob here for experiments).  ``query_jitter`` adds
    Consul's jitter of up to ``wait / 16`` to a blocking query's wait.
    Writes ``register``, ``renew``, ``passing``, ``critical`` (``ttl`` /
    ``http``), ``cancel`` and ``reap`` rows.
    """

    kind = "consul"
    persistent = True

    def __init__(self, world: World, name: str = "consul", *,
                 reap_interval: float = CHECK_REAP_INTERVAL, query_jitter: bool = True,
                 **instance_args: Any) -> None:
        reap_interval = check_seconds("reap_interval", reap_interval)
        if not is_flag(query_jitter):
            raise ParamError("query_jitter", query_jitter, "True or False")
        super().__init__(world, name, **instance_args)
        self.reap_interval = reap_interval
        self.query_jitter = bool(query_jitter)
        self.entries: dict[str, _Entry] = {}
        self.services: dict[str, set[str]] = {}
        self._gen = 0
        self._jitter_rng = world.stream(f"consul:{name}:query-jitter")
        self.every(reap_interval, self._reap, f"consul:{name}:reap")

    # -- queries ------------------------------------------------------------------------
    def listing(self, service: str) -> tuple[str, ...]:
        """The instances of ``service`` whose check passes, sorted (``?passing``)."""
        entries = self.entries
        return tuple(sorted(n for n in self.services.get(service, ())
                            if entries[n].state.status == PASSING))

    def clear_state(self) -> None:
        """Forget every registration (never called on a crash: the catalog is in Raft)."""
        self.entries = {}
        self.services = {}

    def _park(self, msg: Any, service: str, wait: float) -> None:
        # blockingQuery: queryTimeout += lib.RandomStagger(queryTimeout / jitterFraction)
        if self.query_jitter:
            wait += self._jitter_rng.uniform(0.0, wait / JITTER_FRACTION)
        super()._park(msg, service, wait)

    # -- operations ---------------------------------------------------------------------
    def _entry(self, body: dict[str, Any]) -> _Entry:
        name = body.get("instance")
        entry = self.entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise ServiceError(f"unknown instance {name!r}", status="not_found")
        return entry

    def op_register(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        service = self._service_of(body)
        name = body.get("instance")
        if not isinstance(name, str) or not name:
            raise ServiceError("no instance named", status="bad_request")
        check = body.get("check", "ttl")
        status = body.get("status", CRITICAL)
        if check not in ("ttl", "http") or status not in (PASSING, CRITICAL):
            raise ServiceError("check must be ttl or http, status passing or critical",
                               status="bad_request")
        after = body.get("deregister_after")
        if after is not None:
            seconds = as_real(after)
            if seconds is None or not seconds > 0:
                raise ServiceError("deregister_after must be seconds > 0",
                                   status="bad_request")
            after = max(seconds, DEREGISTER_MIN)  # Consul raises it to the minimum
        known = self.entries.get(name)
        if known is not None and known.service == service:
            # agent.AddService's checkStateSnapshot: a service registered again
            # keeps its check's status ("Restore the fields from the snapshot"),
            # in a fresh check state (no critical time) with a fresh TTL timer
            status = known.state.status
        self._gen += 1
        entry = _Entry(service, name, check, CheckStatus(status), after, self._gen)
        if check == "ttl":
            entry.ttl_check = TtlCheck(_seconds_in(body, "ttl", 30.0), now)
        else:
            entry.interval = _seconds_in(body, "interval", 10.0)
            entry.timeout = _seconds_in(body, "timeout", 10.0)
            entry.handler = StatusHandler(_count_in(body, "success_before_passing"),
                                          _count_in(body, "failures_before_critical"))
        old = self.entries.get(name)
        if old is not None and old.service != service:  # moved to another service
            self._remove(old)
            record(self.world, self.name, "cancel", old.service, name)
            self.changed(old.service)
            old = None
        self.entries[name] = entry
        self.services.setdefault(service, set()).add(name)
        if old is None:
            by = body.get("by", "self")
            record(self.world, self.name, "register", service, name,
                   by if by in ("self", "third-party") else "self")
        elif old.state.status != status:
            record(self.world, self.name, status, service, name,
                   "" if status == PASSING else check)
        if entry.ttl_check is not None:
            self._arm(entry)
        else:
            self._start_http(entry)
        self.changed(service)
        return {"instance": name, "status": status}

    def op_pass(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        entry = self._entry(body)
        if entry.ttl_check is None:
            raise ServiceError(f"{entry.instance}'s check has no TTL", status="bad_request")
        entry.ttl_check.update(now)
        record(self.world, self.name, "renew", entry.service, entry.instance)
        if entry.timer is None:
            self._arm(entry)
        self._set(entry, PASSING, now, "ttl")
        return {"instance": entry.instance, "status": PASSING}

    def op_deregister(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        entry = self._entry(body)
        self._remove(entry)
        record(self.world, self.name, "cancel", entry.service, entry.instance)
        self.changed(entry.service)
        return {"instance": entry.instance}

    # -- state changes -----------------------------------------------------------------
    def _set(self, entry: _Entry, status: str, now: float, why: str) -> None:
        if entry.state.set(status, now):
            record(self.world, self.name, status, entry.service, entry.instance,
                   "" if status == PASSING else why)
            self.changed(entry.service)

    def _remove(self, entry: _Entry) -> None:
        del self.entries[entry.instance]
        members = self.services.get(entry.service)
        if members is not None:
            members.discard(entry.instance)
            if not members:
                del self.services[entry.service]

    def _is_current(self, entry: _Entry) -> bool:
        return self.entries.get(entry.instance) is entry

    # -- TTL timers: one pending timeout per check, re-armed lazily -----------------------
    def _arm(self, entry: _Entry) -> None:
        """Arm ``entry``'s TTL timer for its deadline (a pass only moves the
        deadline; the armed timer, on firing early, re-arms for the new one)."""
        assert entry.ttl_check is not None
        at = entry.ttl_check.deadline
        entry.timer = at
        ev = self.env.timeout(max(0.0, at - self.env.now))
        ev.callbacks.append(lambda _ev: self._fire(entry, at))

    def _fire(self, entry: _Entry, at: float) -> None:
        if not self._is_current(entry) or entry.timer != at:
            return
        entry.timer = None
        ttl_check = entry.ttl_check
        assert ttl_check is not None
        if ttl_check.deadline > at:
            self._arm(entry)  # passed since: wait for the new deadline
            return
        if self.up and not self.hung:
            # CheckTTL.run: "missed TTL, is now critical"
            self._set(entry, CRITICAL, self.env.now, "ttl")
        # down or hung: no timer runs; restart()/unhang() start the timers again

    def _restart_timers(self) -> None:
        """The agent starts again: every TTL check's timer starts afresh from ``ttl``."""
        now = self.env.now
        for entry in self.entries.values():
            if entry.ttl_check is not None:
                entry.ttl_check.update(now)
                if entry.timer is None:
                    self._arm(entry)

    def restart(self) -> None:
        was = self.up
        super().restart()
        if not was and self.up:
            self._restart_timers()

    def unhang(self, token: Event | None = None) -> None:
        was = self.hung
        super().unhang(token)
        if was and not self.hung and self.up:
            self._restart_timers()

    # -- HTTP checks: one loop per check, as Consul's CheckHTTP goroutine ------------------
    def _start_http(self, entry: _Entry) -> None:
        self.env.process(self._http_loop(entry))

    def _http_loop(self, entry: _Entry) -> Generator[Event, Any, None]:
        env = self.env
        # lib.RandomStagger(interval), from a stream of this check's own
        rng = self.world.stream(f"consul:{self.name}:{entry.instance}:http-stagger")
        yield env.timeout(rng.uniform(0.0, entry.interval))
        handler = entry.handler
        assert handler is not None
        while self._is_current(entry):
            if self.up and not self.hung:
                result = yield from probe_status(self, entry.instance, entry.timeout)
                if not self._is_current(entry):
                    return
                if self.up and not self.hung:  # a result reaching a dead agent is lost
                    ok = result == "ok"
                    if not ok:
                        record(self.world, self.name, "probe_failed", entry.service,
                               entry.instance, result)
                    status = handler.observe(ok)
                    if status is not None:
                        self._set(entry, status, env.now, "http")
            yield env.timeout(entry.interval)

    # -- the reaper ----------------------------------------------------------------------
    def _reap(self, now: float) -> None:
        """``reapServicesInternal``: deregister what has been critical too long."""
        for name in sorted(self.entries):
            entry = self.entries[name]
            if reap_due(entry.state.critical_since, now, entry.after):
                self._remove(entry)
                record(self.world, self.name, "reap", entry.service, name)
                self.changed(entry.service)


# -- consumers ----------------------------------------------------------------------------------
class ConsulView(View):
    """A consumer watching one service with blocking queries (``?passing``).

    As Consul's watches (``api/watch``) and consul-template do: a query with
    the last index is held by the server until the passing list changes or
    ``wait`` passes (300 s, ``defaultQueryTime``); as soon as one answers
    the next is sent.  A failed query (no answer within ``timeout``, or an
    error) is retried after ``retry`` seconds (1 s) without an index; the
    list stays as it was meanwhile.  An index that went backwards is reset
    (the watch's rule), so the next query is answered at once.

    ``timeout`` is the client's read timeout: it must outlast the server's
    hold (``wait`` + ``wait/16`` jitter), so its default is that + 10 s.

    A critical instance leaves this view one network latency after the
    server marks it critical (the held query's answer; nothing to wait
    for, unlike a poll); the next query goes out at once.
    """

    def __init__(self, world: World, owner: Node, registry: str, service: str, *,
                 wait: float = DEFAULT_QUERY_TIME, retry: float = 1.0,
                 timeout: float | None = None) -> None:
        super().__init__(world, owner, registry, service)
        self.wait = check_seconds("wait", wait)
        self.retry = check_seconds("retry", retry)
        hold = self.wait * (1.0 + 1.0 / JITTER_FRACTION)
        if timeout is None:
            self.timeout = hold + 10.0
        else:
            self.timeout = check_seconds("timeout", timeout)
            if self.timeout <= hold:
                raise ParamError("timeout", timeout,
                                 f"seconds > wait + wait/16 = {hold:g} (the server's longest "
                                 "hold), or None")
        self.index = -1

    def _start(self) -> None:
        self.env.process(self._watch())

    def _watch(self) -> Generator[Event, Any, None]:
        env = self.env
        owner = self.owner
        while not getattr(owner, "stopped", False):
            body: dict[str, Any] = {"op": "query", "service": self.service}
            if self.index >= 0:
                body["index"] = self.index
                body["wait"] = self.wait
            up = owner.up
            reply = yield from ask(owner, self.registry, body, self.timeout)
            if reply is not None and reply.status == "ok":
                index = reply.body["index"]
                self.index = index if index >= self.index else -1
                self.update(reply.body["instances"])
                continue
            if up:
                record(self.world, owner.name, "lookup_failed", self.service, None,
                       "timeout" if reply is None else reply.status)
            self.index = -1
            yield env.timeout(self.retry)


# -- self-registration ----------------------------------------------------------------------------
class ConsulRegistration:
    """Self-registration with a TTL check, as Spring Cloud Consul does it.

    ``start(inst)``: the instance registers (``ConsulServiceRegistry.
    register``) with a TTL check of ``ttl`` (30 s,
    ``spring.cloud.consul.discovery.heartbeat.ttl``) and initial status
    critical (Consul's default), and its heartbeat scheduler passes the
    check at once and then every ``interval`` (default
    :func:`heartbeat_interval`: 20 s; ``TtlScheduler.add`` uses
    ``scheduleAtFixedRate``, whose first run is immediate).  The scheduler
    is a thread of its own: a **hung** instance keeps passing, and stays
    listed.  A crash stops the passes (nothing is deregistered): the check
    turns critical at the last pass + ttl.  While the process is down the
    scheduler's next tick finds it so, and the first tick after it is up
    again registers it afresh (a restarted application registers at
    startup; here within ``interval`` of it).  ``shutdown(inst)``:
    deregister now (``ConsulServiceRegistry.deregister``) and stop.
    ``machine_down``: nothing is sent.

    A pass answered ``not_found`` (the instance was reaped, e.g. after a
    long partition) re-registers only with ``reregister`` (Spring's
    ``heartbeat.reregister-service-on-failure``, False by default: the
    instance then stays out until it restarts).  ``deregister_after`` is
    the check's ``DeregisterCriticalServiceAfter``
    (``spring.cloud.consul.discovery.health-check-critical-timeout``;
    None: never reaped).  ``timeout`` bounds each request to the server.
    """

    def __init__(self, world: World, registry: str, *, ttl: float = 30.0,
                 interval: float | None = None, deregister_after: float | None = None,
                 reregister: bool = False, timeout: float = 1.0) -> None:
        if not isinstance(registry, str) or not isinstance(world.nodes.get(registry),
                                                           ConsulServer):
            servers = sorted(n for n, v in world.nodes.items() if isinstance(v, ConsulServer))
            raise ParamError("registry", registry,
                             "the name of a Consul server: " + (", ".join(servers) or "none yet"))
        self.world = world
        self.registry = registry
        self.ttl = check_seconds("ttl", ttl)
        self.interval = (heartbeat_interval(self.ttl) if interval is None
                         else check_seconds("interval", interval))
        if self.interval >= self.ttl:
            raise ParamError("interval", interval, f"seconds < ttl ({self.ttl:g}), or None")
        self.deregister_after = check_deregister_after(deregister_after)
        if not is_flag(reregister):
            raise ParamError("reregister", reregister, "True or False")
        self.reregister = bool(reregister)
        self.timeout = check_seconds("timeout", timeout)
        self._stopped: set[str] = set()

    def _body(self, inst: Instance) -> dict[str, Any]:
        return register_body(inst.service, inst.name, check="ttl", ttl=self.ttl,
                             deregister_after=self.deregister_after)

    def start(self, inst: Instance) -> None:
        """The instance's process is up: register, then pass on a schedule."""
        self._stopped.discard(inst.name)
        self.world.env.process(self._heartbeat(inst))

    def _heartbeat(self, inst: Instance) -> Generator[Event, Any, None]:
        env = self.world.env
        registry = self.registry
        timeout = self.timeout
        name = inst.name
        registered = False
        passing = {"op": "pass", "instance": name}
        # running when the run begins, the instance registered some time ago: after
        # a first pass its heartbeat keeps a phase of its own, as independent
        # machines' timers do (not all in step from time zero)
        phase = (self.world.stream(f"consul:{name}:heartbeat-phase").uniform(0.0, self.interval)
                 if env.now == 0.0 else None)
        tick = env.now
        while name not in self._stopped and not inst.stopped:
            if not inst.up:
                registered = False  # the process died: it registers again when it is back
            else:
                if not registered:
                    reply = yield from ask(inst, registry, self._body(inst), timeout)
                    registered = reply is not None and reply.status == "ok"
                    if registered:
                        tick = env.now  # scheduleAtFixedRate: the first pass now
                if registered and name not in self._stopped:
                    reply = yield from ask(inst, registry, passing, timeout)
                    if reply is not None and reply.status == "not_found" and self.reregister:
                        reply = yield from ask(inst, registry, self._body(inst), timeout)
                        registered = reply is not None and reply.status == "ok"
                        if registered:
                            yield from ask(inst, registry, passing, timeout)
            # a fixed rate: the next tick is due `interval` after the last one was
            tick += self.interval
            if phase is not None and registered:
                tick += phase - self.interval
                phase = None
            yield env.timeout(max(0.0, tick - env.now))

    def shutdown(self, inst: Instance) -> None:
        """A clean shutdown: deregister now and stop passing."""
        self._stopped.add(inst.name)
        self.world.env.process(ask(inst, self.registry,
                                   {"op": "deregister", "instance": inst.name}, self.timeout))

    def machine_down(self, inst: Instance) -> None:
        """The machine died with the instance: nothing is sent (the TTL runs out)."""
        self._stopped.add(inst.name)
