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

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from simcomm._checks import as_real, is_whole
from simcomm.errors import ParamError

__all__ = [
    "QueueMetrics", "chain_availability", "erlang_c", "little_l", "md1", "mg1", "mgc",
    "mgc_is_exact", "mm1", "mmc", "theory_curve",
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


# -- the curve against utilisation (what the theory figures draw) ------------------------

_DISTRIBUTIONS = ("exponential", "constant", "lognormal")


def _model(servers: int, distribution: str, sigma: float) -> tuple[str, float, bool]:
    """(legend label, service SCV, exact?) of the theory used (see :func:`mgc`)."""
    if distribution not in _DISTRIBUTIONS:
        raise ParamError("service_distribution", distribution,
                         "one of " + ", ".join(_DISTRIBUTIONS))
    scv = {"exponential": 1.0, "constant": 0.0}.get(distribution, math.exp(sigma**2) - 1.0)
    c = servers
    kendall = {"exponential": "M", "constant": "D"}.get(distribution, "G")
    exact = mgc_is_exact(c, scv)
    if exact:
        how = ("Erlang C" if scv == 1 else "Pollaczek–Khinchine"
               + (f", SCV {scv:.2f}" if kendall == "G" else ""))
        return f"M/{kendall}/{c} theory ({how}, exact)", scv, True
    return (f"M/{kendall}/{c} ≈ Allen–Cunneen: Wq(M/M/{c})·(1+{scv:.2g})/2 (approximation)",
            scv, False)


def theory_curve(servers: int, service_rate: float, service_distribution: str = "exponential",
                 utilisations: Sequence[float] | np.ndarray | None = None, *,
                 sigma: float = 0.5, network_latency: float = 0.0) -> pd.DataFrame:
    """Theoretical mean queue wait and response time against utilisation.

    The model follows the service time: exponential -- M/M/c, exact
    (Erlang C); constant or log-normal (``sigma``) with one server -- M/D/1
    or M/G/1, exact (Pollaczek-Khinchine); constant or log-normal with
    c > 1 servers -- the Allen-Cunneen approximation (see :func:`mgc`).
    Pure arithmetic: what :mod:`simcomm.viz.theory` draws and
    :func:`simcomm.sweeps.theory_sweep` holds simulations against.

    Columns ``utilisation`` (rho = lambda / (c mu)), ``arrival_rate``,
    ``wait`` (Wq, s) and ``response`` (W = Wq + 1/mu + 2 x network latency,
    s); ``attrs["model"]`` names the formula (see the module docstring),
    ``attrs["exact"]`` says whether it is exact or an approximation.
    Utilisations >= 1 give infinite times (the queue grows without bound).
    """
    if not is_whole(servers) or servers < 1:
        raise ParamError("servers", servers, "a whole number >= 1")
    rate = as_real(service_rate)
    if rate is None or not 0 < rate < math.inf:
        raise ParamError("service_rate", service_rate, "a rate per second > 0")
    servers, service_rate = int(servers), rate
    label, scv, exact = _model(servers, service_distribution, sigma)
    rho = (np.linspace(0.01, 0.985, 300) if utilisations is None
           else np.asarray(utilisations, dtype=float))
    if np.any(~(rho > 0)):
        raise ParamError("utilisations", list(rho[~(rho > 0)]), "fractions > 0")
    lam = rho * servers * service_rate
    wait = _waits(servers, service_rate, scv, tuple(rho.tolist()))
    df = pd.DataFrame({"utilisation": rho, "arrival_rate": lam, "wait": wait,
                       "response": wait + 1.0 / service_rate + 2.0 * network_latency})
    df.attrs.update(model=label, exact=exact, servers=servers, service_rate=service_rate,
                    service_distribution=service_distribution)
    return df


@functools.lru_cache(maxsize=64)
def _waits(servers: int, service_rate: float, scv: float, rho: tuple[float, ...]
           ) -> np.ndarray:
    """Mean queue waits at utilisations ``rho``: computed once per queue and kept,
    because a dashboard redraws the same curve after every run."""
    wait = np.array([mgc(r * servers * service_rate, 1.0 / service_rate, servers, scv).wait
                     for r in rho], dtype=float)
    wait.flags.writeable = False  # shared by every caller
    return wait
