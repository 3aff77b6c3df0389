"""Runs of many simulations: the one place above the scenarios that sweeps.

viz draws results and never runs simulations; a sweep runs them and hands
viz a table.  :func:`theory_sweep` runs the ``mmc`` scenario at several
loads and holds each against queueing theory, for
:func:`simcomm.viz.theory_sweep_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from simcomm.analysis.metrics import steady_mean
from simcomm.api import run
from simcomm.errors import ParamError
from simcomm.viz.theory import theory_curve

__all__ = ["theory_sweep"]


def theory_sweep(servers: int = 1, service_rate: float = 1.0,
                 utilisations: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
                                                  0.9),
                 seed: int = 0, until: float = 10_000.0,
                 service_distribution: str = "exponential", *, warmup: float = 0.1,
                 batches: int = 20) -> pd.DataFrame:
    """Run the mmc scenario at several loads and hold each against theory.

    One run per utilisation (arrival rate ``rho * servers * service_rate``,
    the same ``seed`` for all: common random numbers make the points move
    together and the curve's shape clearer), traced lightly
    (``trace=False``).  Returns a DataFrame with columns ``utilisation``,
    ``arrival_rate``, ``sim_mean`` (mean latency of ok requests after the
    ``warmup`` fraction, s), ``sim_se`` (its batch-means standard error),
    ``theory`` (mean response time, s) and ``requests``; ``attrs`` keeps
    the queue's parameters for :func:`simcomm.viz.theory_sweep_figure`.
    """
    rhos = [float(u) for u in utilisations]
    if not rhos:
        raise ParamError("utilisations", list(utilisations), "at least one utilisation")
    theory = theory_curve(servers, service_rate, service_distribution, rhos)
    rows = []
    for rho, lam, w in zip(rhos, theory["arrival_rate"], theory["response"], strict=True):
        res = run("mmc", seed=seed, until=until, trace=False, arrival_rate=float(lam),
                  service_rate=service_rate, servers=servers,
                  service_distribution=service_distribution)
        mean, se, n = steady_mean(res, warmup, batches)
        rows.append((rho, float(lam), mean, se, float(w), n))
    df = pd.DataFrame(rows, columns=["utilisation", "arrival_rate", "sim_mean", "sim_se",
                                     "theory", "requests"])
    df.attrs.update(servers=servers, service_rate=service_rate,
                    service_distribution=service_distribution, seed=seed, until=until,
                    model=theory.attrs["model"], warmup=warmup)
    return df
