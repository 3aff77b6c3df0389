"""A time limit per call: the caller stops waiting; the callee's work goes on.

The book's first tool against partial failure (*Microservices Patterns*
§3.2.3, "network timeouts"): never block indefinitely, always use timeouts
when waiting for a response.
"""

from __future__ import annotations

from simcomm.resilience._validate import check_flag, check_real

__all__ = ["TimeLimiter"]


class TimeLimiter:
    """Resilience4j's TimeLimiter config: ``timeout_duration`` 1 s, cancel on.

    Follows ``timelimiter/TimeLimiterConfig.java``.  The caller waits at most
    ``timeout_duration`` for the reply; then the call ends ``timeout``.  In
    Resilience4j ``cancel_running_future`` cancels the local future; the
    remote service never hears of it.  So in simcomm the callee's work goes
    on either way and its late reply is recorded as an orphan; the flag is
    kept so that configurations read the same, and the glue may use it to
    release local resources held for the call.

    A reply that arrives at exactly the deadline is late: :meth:`timed_out`
    is ``now >= deadline`` (in SimPy the timeout, scheduled first, fires
    first at a tie).
    """

    __slots__ = ("cancel_running_future", "timeout_duration")

    def __init__(self, *, timeout_duration: float = 1.0,
                 cancel_running_future: bool = True) -> None:
        self.timeout_duration = check_real("timeout_duration", timeout_duration, low_open=True,
                                           finite=False, unit="seconds")
        self.cancel_running_future = check_flag("cancel_running_future", cancel_running_future)

    def deadline(self, start: float) -> float:
        """When a call started at ``start`` stops being waited for."""
        return start + self.timeout_duration

    def timed_out(self, start: float, now: float) -> bool:
        """Whether a call started at ``start`` has run out of time at ``now``."""
        return now >= start + self.timeout_duration

    def __repr__(self) -> str:
        return (f"TimeLimiter(timeout_duration={self.timeout_duration:g}, "
                f"cancel_running_future={self.cancel_running_future})")
