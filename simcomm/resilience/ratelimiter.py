"""A rate limiter: so many permits per refresh period, as a pure function of ``now``.

Client-side it keeps a caller from sending more than an agreed rate; on the
server side the same object sheds load (a request that cannot get a permit
in time is refused instead of queued).
"""

from __future__ import annotations

from simcomm.errors import ParamError
from simcomm.resilience._validate import check_real, check_whole

__all__ = ["RateLimiter"]


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


class RateLimiter:
    """Resilience4j's AtomicRateLimiter: ``limit_for_period`` permits per cycle.

    Follows ``ratelimiter/internal/AtomicRateLimiter.java`` step by step, in
    whole nanoseconds as it does (``now`` is rounded to the nanosecond):

    * time is cut into cycles of ``limit_refresh_period`` counted from
      ``start`` (the limiter's creation); at the start of a cycle the
      permits are topped up to ``limit_for_period`` (unused ones do not
      pile up beyond that);
    * a request for ``permits`` that are there takes them at once; if not,
      the wait until enough cycles have refilled is computed
      (``nanosToWaitForPermission``) and, if it is at most
      ``timeout_duration``, the permits are **reserved** now (the count may
      go below zero) and the caller waits; otherwise nothing is reserved and
      the caller is refused.

    :meth:`reserve_permission` is Resilience4j's ``reservePermission``: the
    wait in seconds (0 for at once), or -1 for refused.
    :meth:`acquire_permission` is ``acquirePermission`` as a pure function:
    ``(granted, blocked)`` where ``blocked`` is how long the caller is held
    -- the wait if granted, the whole ``timeout_duration`` if refused
    (``waitForPermission(timeoutInNanos)`` before returning false).

    Defaults are Resilience4j's: 50 permits per 500 **nanoseconds** (which
    is no limit at all at simulation scales -- set your own), timeout 5 s.
    """

    def __init__(self, *, limit_for_period: int = 50, limit_refresh_period: float = 500e-9,
                 timeout_duration: float = 5.0, start: float = 0.0,
                 name: str | None = None) -> None:
        self.limit_for_period = check_whole("limit_for_period", limit_for_period, 1)
        period = check_real("limit_refresh_period", limit_refresh_period, low_open=True,
                            unit="seconds")
        self._period = _ns(period)
        if self._period < 1:
            raise ParamError("limit_refresh_period", limit_refresh_period,
                             "at least 1 ns (1e-9 s)")
        self._timeout = _ns(check_real("timeout_duration", timeout_duration, unit="seconds"))
        self._start = _ns(check_real("start", start, low=-1e15, unit="seconds"))
        self.name = name
        # AtomicRateLimiter.State(config, activeCycle=0, activePermissions=limit, nanosToWait=0)
        self._cycle = 0
        self._permissions = self.limit_for_period
        self._nanos_to_wait = 0
        self.granted = 0
        self.refused = 0

    @property
    def limit_refresh_period(self) -> float:
        return self._period / 1e9

    @property
    def timeout_duration(self) -> float:
        return self._timeout / 1e9

    def _now(self, now: float) -> int:
        t = _ns(now) - self._start
        if t < 0:
            raise ParamError("now", now, f"a time >= the limiter's start ({self._start / 1e9})")
        return t

    def _next_state(self, permits: int, timeout: int, now_ns: int) -> tuple[int, int, int]:
        """``calculateNextState``: (cycle, permissions after any reservation, nanos to wait)."""
        period = self._period
        per_cycle = self.limit_for_period
        current_cycle = now_ns // period
        cycle = self._cycle
        permissions = self._permissions
        if cycle != current_cycle:
            elapsed = current_cycle - cycle
            permissions = min(permissions + elapsed * per_cycle, per_cycle)
            cycle = current_cycle
        # nanosToWaitForPermission
        if permissions >= permits:
            wait = 0
        else:
            next_cycle_time = (current_cycle + 1) * period
            to_next_cycle = next_cycle_time - now_ns
            at_next_cycle = permissions + per_cycle
            full_cycles = (-(at_next_cycle - permits) + per_cycle - 1) // per_cycle
            wait = full_cycles * period + to_next_cycle
        # reservePermissions
        if timeout >= wait:
            permissions -= permits
        return cycle, permissions, wait

    def _update(self, now: float, permits: int) -> int:
        if permits != 1:
            check_whole("permits", permits, 1)
        cycle, permissions, wait = self._next_state(permits, self._timeout, self._now(now))
        self._cycle, self._permissions, self._nanos_to_wait = cycle, permissions, wait
        return wait

    def reserve_permission(self, now: float, permits: int = 1) -> float:
        """Seconds to wait for the permits (0 = now, reserved), or -1.0 if refused."""
        wait = self._update(now, permits)
        if wait <= 0:
            self.granted += 1
            return 0.0
        if self._timeout >= wait:
            self.granted += 1
            return wait / 1e9
        self.refused += 1
        return -1.0

    def acquire_permission(self, now: float, permits: int = 1) -> tuple[bool, float]:
        """``(granted, seconds the caller is held)``: the wait, or the timeout if refused."""
        wait = self.reserve_permission(now, permits)
        if wait >= 0:
            return True, wait
        return False, self._timeout / 1e9

    def drain_permissions(self, now: float) -> None:
        """Take the permits left (``drainPermissions``).

        As upstream, it asks for the permits the *stored* state holds (not
        refreshed to ``now``): within the same cycle that empties it; after
        a refresh it takes only that many of the new cycle's permits.
        """
        cycle, permissions, wait = self._next_state(self._permissions, 0, self._now(now))
        self._cycle, self._permissions, self._nanos_to_wait = cycle, permissions, wait

    def available_permissions(self, now: float) -> int:
        """Permits left at ``now`` (negative: reserved ahead), without taking any."""
        return self._next_state(1, -1, self._now(now))[1]

    def seconds_to_wait(self, now: float) -> float:
        """How long one permit requested at ``now`` would wait (``getNanosToWait``)."""
        return self._next_state(1, -1, self._now(now))[2] / 1e9

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (f"<RateLimiter{label} {self.limit_for_period} per "
                f"{self.limit_refresh_period:g} s, timeout {self.timeout_duration:g} s>")
