"""Queueing theory against simulation for the ``mmc`` scenario.

The theory curves come from :mod:`simcomm.analysis.theory`:

* exponential service -- M/M/c, exact (Erlang C);
* constant service, one server -- M/D/1, exact (Pollaczek-Khinchine);
* log-normal service, one server -- M/G/1, exact (Pollaczek-Khinchine with
  the squared coefficient of variation ``exp(sigma**2) - 1``);
* constant or log-normal service with c > 1 servers -- the Allen-Cunneen
  approximation ``Wq ~ Wq(M/M/c) * (ca² + cs²) / 2`` with ``ca² = 1``
  (Poisson arrivals) and ``cs²`` the service time's SCV (0 for constant):
  an approximation, and the legend says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simcomm.analysis import theory as qt
from simcomm.analysis.metrics import batch_means
from simcomm.errors import ParamError
from simcomm.viz.style import GREY, INK, OKABE_ITO, figure_for, style_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simcomm.result import Result

__all__ = ["theory_curve", "theory_sweep", "theory_sweep_figure", "theory_vs_simulation"]

_Z95 = 1.959963984540054
_DISTRIBUTIONS = ("exponential", "constant", "lognormal")


def _model(servers: int, distribution: str, sigma: float) -> tuple[str, float, bool]:
    """(legend label, service SCV, exact?) of the theory used (see :func:`qt.mgc`)."""
    if distribution not in _DISTRIBUTIONS:
        raise ParamError("service_distribution", distribution,
                         "one of " + ", ".join(_DISTRIBUTIONS))
    scv = {"exponential": 1.0, "constant": 0.0}.get(distribution, math.exp(sigma**2) - 1.0)
    c = servers
    kendall = {"exponential": "M", "constant": "D"}.get(distribution, "G")
    exact = qt.mgc_is_exact(c, scv)
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

    Columns ``utilisation`` (rho = lambda / (c mu)), ``arrival_rate``,
    ``wait`` (Wq, s) and ``response`` (W = Wq + 1/mu + 2 x network latency,
    s); ``attrs["model"]`` names the formula (see the module docstring),
    ``attrs["exact"]`` says whether it is exact or an approximation.
    Utilisations >= 1 give infinite times (the queue grows without bound).
    """
    if not isinstance(servers, int) or isinstance(servers, bool) or servers < 1:
        raise ParamError("servers", servers, "a whole number >= 1")
    if not (isinstance(service_rate, (int, float)) and service_rate > 0):
        raise ParamError("service_rate", service_rate, "a rate per second > 0")
    label, scv, exact = _model(servers, service_distribution, sigma)
    rho = (np.linspace(0.01, 0.985, 300) if utilisations is None
           else np.asarray(utilisations, dtype=float))
    if np.any(~(rho > 0)):
        raise ParamError("utilisations", list(rho[~(rho > 0)]), "fractions > 0")
    lam = rho * servers * service_rate
    wait = np.array([qt.mgc(lam_i, 1.0 / service_rate, servers, scv).wait for lam_i in lam],
                    dtype=float)
    df = pd.DataFrame({"utilisation": rho, "arrival_rate": lam, "wait": wait,
                       "response": wait + 1.0 / service_rate + 2.0 * network_latency})
    df.attrs.update(model=label, exact=exact, servers=servers, service_rate=service_rate,
                    service_distribution=service_distribution)
    return df


def _mmc_params(res: Result) -> Any:
    p = res.params
    need = ("arrival_rate", "service_rate", "servers", "service_distribution")
    if p is None or not all(hasattr(p, f) for f in need):
        name = res.scenario.name if res.scenario is not None else "a custom world"
        raise ParamError("res", f"a Result of {name}",
                         "a Result of the mmc scenario (it needs arrival_rate, service_rate, "
                         "servers and service_distribution)")
    return p


def _measure(res: Result, warmup: float, batches: int) -> tuple[float, float, int]:
    rq = res.requests
    ok = rq[(rq["outcome"] == "ok") & (rq["start"] >= warmup * res.until)]
    lat = ok.sort_values("start", kind="stable")["latency"].to_numpy(dtype=float)
    if lat.size == 0:
        return math.nan, math.nan, 0
    if lat.size < 2 * batches:
        return float(lat.mean()), math.nan, int(lat.size)
    mean, se = batch_means(lat, batches)
    return mean, se, int(lat.size)


def _draw_curves(ax: Axes, curve: pd.DataFrame, mmc_ref: pd.DataFrame | None) -> None:
    rho = curve["utilisation"].to_numpy()
    ax.plot(rho, curve["response"], color=OKABE_ITO["blue"], linewidth=2.0,
            label=f"mean response time W: {curve.attrs['model']}", gid="theory_response")
    ax.plot(rho, curve["wait"], color=OKABE_ITO["blue"], linewidth=1.4, linestyle="--",
            label="mean queue wait Wq (same theory)", gid="theory_wait")
    if mmc_ref is not None:
        ax.plot(mmc_ref["utilisation"], mmc_ref["response"], color=GREY, linewidth=1.2,
                linestyle=":", label="W if service were exponential (M/M/c)",
                gid="theory_mmc_reference")
    ax.axvline(1.0, color=INK, linewidth=0.8, linestyle="-.")
    ax.text(0.99, 0.03, "saturation: ρ = 1", transform=ax.get_xaxis_transform(),
            ha="right", va="bottom", rotation=90, fontsize=7.5, color=INK)


def theory_vs_simulation(res: Result, ax: Axes | None = None, *, warmup: float = 0.1,
                         batches: int = 20) -> Figure:
    """The theory's hockey stick, and where this simulation landed on it.

    What the learner sees: the theoretical mean response time (solid blue)
    and queue wait (dashed) of the run's queue against utilisation, rising
    slowly and then exploding as utilisation nears 1; and one vermillion
    point -- the simulation's mean latency of ok requests at its measured
    utilisation, with a 95 % confidence bar from ``batches`` batch means
    (the first ``warmup`` fraction of the run is skipped, the queue
    starts empty).  The point sitting on the curve is the simulator
    agreeing with Erlang.  For constant or log-normal service the M/M/c
    curve is drawn dotted for comparison; with more than one server that
    theory is the Allen-Cunneen approximation, and the legend says so.
    """
    p = _mmc_params(res)
    if not 0 <= warmup < 1:
        raise ParamError("warmup", warmup, "a fraction of the run from 0 to below 1")
    from simcomm.engine.nodes import Instance

    server = next((n for n in res.world.nodes.values() if isinstance(n, Instance)), None)
    sigma = getattr(getattr(server, "service_time", None), "sigma", 0.5)
    latency = float(getattr(p, "network_latency", 0.0))
    curve = theory_curve(p.servers, p.service_rate, p.service_distribution, sigma=sigma,
                         network_latency=latency)
    mmc_ref = (theory_curve(p.servers, p.service_rate, network_latency=latency)
               if p.service_distribution != "exponential" else None)
    offered = p.arrival_rate / (p.servers * p.service_rate)
    mean, se, n = _measure(res, warmup, batches)
    rho = offered
    if server is not None and not res.pools.empty:
        rho = res.utilisation(start=warmup * res.until).get(server.name, offered)
    expected = theory_curve(p.servers, p.service_rate, p.service_distribution, [offered],
                            sigma=sigma, network_latency=latency)["response"].iloc[0]

    fig, ax, _ = figure_for(ax, 8.5, 5.2, margins=(0.75, 0.3, 0.4, 1.55))
    style_axes(ax)
    _draw_curves(ax, curve, mmc_ref)
    err = _Z95 * se if np.isfinite(se) else None
    ax.errorbar([rho], [mean], yerr=None if err is None else [[err], [err]], fmt="o",
                color=OKABE_ITO["vermillion"], markersize=7, capsize=4, linewidth=1.5,
                zorder=4, gid="simulation",
                label=f"simulation: mean latency of {n} ok requests"
                      + (" ± 95 % CI (batch means)" if err is not None else ""))
    if np.isfinite(expected):
        ax.plot([offered], [expected], linestyle="none", marker="o", markersize=9,
                markerfacecolor="none", markeredgecolor=OKABE_ITO["blue"],
                markeredgewidth=1.5, zorder=3, gid="theory_point",
                label=f"theory at offered ρ = {offered:.3g}")
    show = max(0.9, min(0.985, max(rho, offered) + 0.05))
    top_curve = float(np.interp(show, curve["utilisation"], curve["response"]))
    top = max(top_curve, (mean + (err or 0.0)) if np.isfinite(mean) else 0.0)
    ax.set_ylim(0, 1.12 * top)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("utilisation ρ = λ / (c·μ)")
    ax.set_ylabel("mean time (s)")
    ax.set_title(f"Theory vs simulation: {p.servers} server{'s' if p.servers > 1 else ''}, "
                 f"μ = {p.service_rate:g} req/s each, {p.service_distribution} service",
                 loc="left", fontsize=11, y=1.0)
    text = [f"simulated W = {mean:.4g} s" + (f" ± {err:.2g}" if err is not None else "")]
    if np.isfinite(expected):
        text.append(f"theory W = {expected:.4g} s")
    text.append(f"measured ρ = {rho:.3f} (offered {offered:.3f})")
    if latency:
        text.append(f"theory includes 2 × {latency:g} s network latency")
    ax.text(0.02, 0.97, "\n".join(text), transform=ax.transAxes, va="top", ha="left",
            fontsize=8.5, color=INK,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "#CCCCCC"})
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), fontsize=8, frameon=False,
              ncols=1)
    return fig


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
    the queue's parameters for :func:`theory_sweep_figure`.
    """
    from simcomm.api import run

    rhos = [float(u) for u in utilisations]
    if not rhos:
        raise ParamError("utilisations", list(utilisations), "at least one utilisation")
    theory = theory_curve(servers, service_rate, service_distribution, rhos)
    rows = []
    for rho, lam, w in zip(rhos, theory["arrival_rate"], theory["response"], strict=True):
        res = run("mmc", seed=seed, until=until, trace=False, arrival_rate=float(lam),
                  service_rate=service_rate, servers=servers,
                  service_distribution=service_distribution)
        mean, se, n = _measure(res, warmup, batches)
        rows.append((rho, float(lam), mean, se, float(w), n))
    df = pd.DataFrame(rows, columns=["utilisation", "arrival_rate", "sim_mean", "sim_se",
                                     "theory", "requests"])
    df.attrs.update(servers=servers, service_rate=service_rate,
                    service_distribution=service_distribution, seed=seed, until=until,
                    model=theory.attrs["model"])
    return df


def theory_sweep_figure(df: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Simulated means (points, 95 % bars) on the theory curve, from :func:`theory_sweep`.

    What the learner sees: the theory's mean response time against
    utilisation and, at each load that was simulated, a vermillion point
    with its confidence bar -- close to the curve at low load, further and
    wider near saturation, where queues are long and slow to settle.
    """
    need = {"utilisation", "sim_mean", "sim_se"}
    if not need <= set(df.columns):
        raise ParamError("df", f"columns {list(df.columns)}",
                         "the DataFrame returned by theory_sweep")
    servers = int(df.attrs.get("servers", 1))
    mu = float(df.attrs.get("service_rate", 1.0))
    dist = str(df.attrs.get("service_distribution", "exponential"))
    curve = theory_curve(servers, mu, dist)
    mmc_ref = theory_curve(servers, mu) if dist != "exponential" else None
    fig, ax, _ = figure_for(ax, 8.5, 4.5, margins=(0.75, 0.3, 0.4, 0.55))
    style_axes(ax)
    _draw_curves(ax, curve, mmc_ref)
    se = df["sim_se"].to_numpy(dtype=float)
    ax.errorbar(df["utilisation"], df["sim_mean"], yerr=np.where(np.isfinite(se), _Z95 * se, 0),
                fmt="o", color=OKABE_ITO["vermillion"], markersize=6, capsize=3, zorder=4,
                gid="simulation", label="simulation: mean latency ± 95 % CI (batch means)")
    top = float(np.nanmax(np.concatenate([
        (df["sim_mean"] + np.nan_to_num(_Z95 * se)).to_numpy(dtype=float),
        [float(np.interp(max(0.9, min(0.985, df["utilisation"].max() + 0.05)),
                         curve["utilisation"], curve["response"]))]])))
    ax.set_ylim(0, 1.12 * top)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("utilisation ρ = λ / (c·μ)")
    ax.set_ylabel("mean time (s)")
    until = df.attrs.get("until")
    ax.set_title(f"Simulation vs theory across loads: {servers} server"
                 f"{'s' if servers > 1 else ''}, μ = {mu:g} req/s, {dist} service"
                 + (f", {until:g} s per run" if until else ""), loc="left", fontsize=11, y=1.0)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return fig
