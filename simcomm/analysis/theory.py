"""Closed forms from queueing and reliability theory, to hold simulations against.

All times in seconds, rates per second.  ``lam`` is the arrival rate, ``mu``
the service rate of one server, ``c`` the number of servers.  Each queue
function returns a :class:`QueueMetrics`; an unstable queue (utilisation
>= 1) has infinite waits rather than raising, so a sweep can cross the
boundary.

References: Kleinrock, *Queueing Systems* vol. 1 (M/M/1, M/M/c with the
Erlang C formula, M/G/1 by Pollaczek-Khinchine, of which M/D/1 is the case
with zero service-time variance); Allen (1990) for the Allen-Cunneen
approximation of M/G/c; Little (1961) for ``L = lambda W``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from simcomm._checks import as_real, is_whole
from simcomm.errors import ParamError

__all__ = [
    "QueueMetrics", "chain_availability", "erlang_c", "little_l", "md1", "mg1", "mgc",
    "mgc_is_exact", "mm1", "mmc",
]


@dataclass(frozen=True)
class QueueMetrics:
    """Steady-state means of a queue.

    ``utilisation`` (rho, per server), ``wait`` (Wq, time in the queue),
    ``response`` (W, queue + service), ``queue_length`` (Lq),
    ``in_system`` (L), and ``p_wait`` the probability an arrival waits.
    """

    utilisation: float
    wait: float
    response: float
    queue_length: float
    in_system: float
    p_wait: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _positive(name: str, value: float, allowed: str) -> float:
    """``value`` as a plain float if it is a finite number > 0 (numpy's too)."""
    v = as_real(value)
    if v is None or not v > 0 or math.isinf(v):
        raise ParamError(name, value, allowed)
    return v


def _scv(scv: float) -> float:
    v = as_real(scv)
    if v is None or not v >= 0 or math.isinf(v):
        raise ParamError("scv", scv, "a finite number >= 0")
    return v


def _rates(lam: float, mu: float) -> tuple[float, float]:
    return (_positive("arrival_rate", lam, "a finite rate per second > 0"),
            _positive("service_rate", mu, "a finite rate per second > 0"))


def _unstable(rho: float) -> QueueMetrics:
    return QueueMetrics(rho, math.inf, math.inf, math.inf, math.inf, 1.0)


def erlang_c(c: int, offered_load: float) -> float:
    """Probability that an arrival must wait in M/M/c (Erlang C).

    ``offered_load`` is ``a = lam / mu`` in Erlangs; requires ``a < c``.
    Computed from the Erlang B recursion, which is stable for large c.
    """
    c = _servers(c)
    a = float(offered_load)
    if a >= c:
        return 1.0
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho + rho * b)


def _servers(c: int) -> int:
    if not is_whole(c) or c < 1:
        raise ParamError("servers", c, "a whole number >= 1")
    return int(c)


def mmc(lam: float, mu: float, c: int) -> QueueMetrics:
    """M/M/c: Poisson arrivals, exponential service, c servers, FIFO."""
    lam, mu = _rates(lam, mu)
    c = _servers(c)
    a = lam / mu
    rho = a / c
    if rho >= 1:
        return _unstable(rho)
    pw = erlang_c(c, a)
    wq = pw / (c * mu - lam)
    return QueueMetrics(rho, wq, wq + 1 / mu, lam * wq, lam * (wq + 1 / mu), pw)


def mm1(lam: float, mu: float) -> QueueMetrics:
    """M/M/1: W = 1 / (mu - lam)."""
    return mmc(lam, mu, 1)


def mg1(lam: float, mean_service: float, scv: float) -> QueueMetrics:
    """M/G/1 by Pollaczek-Khinchine; ``scv`` is the squared coefficient of
    variation of service time (1 exponential, 0 constant)."""
    mean_service = _positive("mean_service", mean_service, "a finite time in seconds > 0")
    scv = _scv(scv)
    lam, _ = _rates(lam, 1.0 / mean_service)
    rho = lam * mean_service
    if rho >= 1:
        return _unstable(rho)
    wq = rho * mean_service * (1 + scv) / (2 * (1 - rho))
    w = wq + mean_service
    return QueueMetrics(rho, wq, w, lam * wq, lam * w, rho)


def md1(lam: float, mu: float) -> QueueMetrics:
    """M/D/1: constant service 1/mu; its queue wait is half of M/M/1's."""
    lam, mu = _rates(lam, mu)
    return mg1(lam, 1.0 / mu, 0.0)


def mgc(lam: float, mean_service: float, c: int, scv: float) -> QueueMetrics:
    """M/G/c: Poisson arrivals, service with squared coefficient of variation ``scv``.

    Exact where a closed form exists -- ``scv == 1`` is M/M/c (Erlang C) and
    ``c == 1`` is M/G/1 (Pollaczek-Khinchine) -- and otherwise the
    Allen-Cunneen approximation ``Wq ~ Wq(M/M/c) * (1 + scv) / 2`` (Poisson
    arrivals: the arrivals' SCV is 1).  :func:`mgc_is_exact` says which.
    """
    scv = _scv(scv)
    mean_service = _positive("mean_service", mean_service, "a finite time in seconds > 0")
    lam, _ = _rates(lam, 1.0 / mean_service)
    c = _servers(c)
    if c == 1:
        return mg1(lam, mean_service, scv)
    base = mmc(lam, 1.0 / mean_service, c)
    if scv == 1 or math.isinf(base.wait):
        return base
    wq = base.wait * (1.0 + scv) / 2.0
    return QueueMetrics(base.utilisation, wq, wq + mean_service, lam * wq,
                        lam * (wq + mean_service), base.p_wait)


def mgc_is_exact(c: int, scv: float) -> bool:
    """Whether :func:`mgc` is exact (True) or the Allen-Cunneen approximation."""
    return c == 1 or scv == 1


def little_l(arrival_rate: float, mean_time_in_system: float) -> float:
    """Little's law: mean number in the system ``L = lambda * W``."""
    return arrival_rate * mean_time_in_system


def chain_availability(availabilities: Iterable[float]) -> float:
    """Availability of a synchronous chain: every service must be up.

    With independent failures the product of the parts: three services at
    99.5 % give 0.995**3 = 98.5 %.
    """
    total = 1.0
    for i, a in enumerate(availabilities):
        v = as_real(a)
        if v is None or not 0 <= v <= 1:
            raise ParamError(f"availabilities[{i}]", a, "a fraction from 0 to 1")
        total *= v
    return total
