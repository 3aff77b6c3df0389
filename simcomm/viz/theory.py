"""Queueing theory against simulation for the ``mmc`` scenario.

The theory curves come from :mod:`simcomm.analysis.theory`
(:func:`~simcomm.analysis.theory.theory_curve`, re-exported here):

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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simcomm.analysis.metrics import steady_mean
from simcomm.analysis.theory import theory_curve
from simcomm.errors import ParamError
from simcomm.viz import reuse
from simcomm.viz.style import GREY, INK, OKABE_ITO, figure_for, pin_axis_labels, style_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simcomm.result import Result

__all__ = ["theory_curve", "theory_sweep_figure", "theory_vs_simulation"]

_Z95 = 1.959963984540054
def _mmc_params(res: Result) -> Any:
    p = res.params
    need = ("arrival_rate", "service_rate", "servers", "service_distribution")
    if p is None or not all(hasattr(p, f) for f in need):
        name = res.scenario.name if res.scenario is not None else "a custom world"
        raise ParamError("res", f"a Result of {name}",
                         "a Result of the mmc scenario (it needs arrival_rate, service_rate, "
                         "servers and service_distribution)")
    return p


#: The theory figures' utilisation axis ends here: the band from 1 to it is
#: the unstable region, where no steady state (and so no mean) exists.
X_MAX = 1.15


def _count(n: float) -> str:
    """A count with spaces between thousands (19 844), as the prose writes it."""
    return f"{n:,.0f}".replace(",", " ")


def _seconds(x: float) -> str:
    """Seconds as the prose writes them: 1 000 s, 12.5 s."""
    return f"{_count(x) if float(x).is_integer() else f'{x:g}'} s"


#: A white backing for words written over the hatched unstable band.
_ON_BAND = {"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "none",
            "alpha": 0.85}


def _draw_curves(ax: Axes, k: reuse.Keeper, curve: pd.DataFrame,
                 mmc_ref: pd.DataFrame | None) -> None:
    """The theory's response and wait curves up to saturation, and the unstable band."""
    rho = curve["utilisation"].to_numpy()
    k.line("theory_response", rho, curve["response"].to_numpy(), color=OKABE_ITO["blue"],
           linewidth=2.0, label=f"mean response time W: {curve.attrs['model']}")
    k.line("theory_wait", rho, curve["wait"].to_numpy(), color=OKABE_ITO["blue"],
           linewidth=1.4, linestyle="--", label="mean queue wait Wq (same theory)")
    if mmc_ref is not None:
        k.line("theory_mmc_reference", mmc_ref["utilisation"].to_numpy(),
               mmc_ref["response"].to_numpy(), color=GREY, linewidth=1.2, linestyle=":",
               label="W if service were exponential (M/M/c)")
    unstable_band(ax, k)


def unstable_band(ax: Axes, k: reuse.Keeper | None = None) -> None:
    """Shade utilisation 1 and above as unstable, with a line at ρ = 1 and a label.

    At ρ ≥ 1 work arrives at least as fast as the servers can do it: the
    queue grows for as long as the run lasts and no mean response time
    exists, so the figures mark the region instead of plotting a point in it.
    """
    from matplotlib.transforms import blended_transform_factory

    k = k or reuse.active(ax) or reuse.Keeper(ax, "unstable_band")
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    k.polys("unstable", [[(1.0, 0.0), (X_MAX + 1.0, 0.0), (X_MAX + 1.0, 1.0), (1.0, 1.0)]],
            transform=trans, facecolor="#F6DCCB", edgecolor=OKABE_ITO["vermillion"],
            hatch="//", linewidth=0.0, alpha=0.6, zorder=0.3,
            label="unstable: ρ ≥ 1, the queue grows without bound")
    k.line("saturation", [1.0, 1.0], [0.0, 1.0], transform=trans, color=INK, linewidth=0.9,
           linestyle="-.", zorder=1)
    k.text("unstable_label", 1.0 + (X_MAX - 1.0) / 2, 0.5,
           "unstable\nρ ≥ 1\nno steady\nstate", transform=trans, ha="center", va="center",
           fontsize=8, color=OKABE_ITO["vermillion"], fontweight="bold", zorder=1.5,
           bbox=_ON_BAND)


def theory_vs_simulation(res: Result, ax: Axes | None = None, *, warmup: float = 0.1,
                         batches: int = 20) -> Figure:
    """The theory's hockey stick, and where this simulation landed on it.

    What the learner sees: the theoretical mean response time (solid blue)
    and queue wait (dashed) of the run's queue against utilisation, rising
    slowly and then exploding as utilisation nears 1; and one vermillion
    point -- the simulation's mean latency of ok requests at its measured
    utilisation, with a 95 % confidence bar from ``batches`` batch means.
    The point sitting on the curve is the simulator agreeing with Erlang.
    For constant or log-normal service the M/M/c curve is drawn dotted for
    comparison; with more than one server that theory is the Allen-Cunneen
    approximation, and the legend says so.

    The queue starts empty, so the first ``warmup`` fraction of the run is
    left out of the point: the box on the figure says how much ("first
    10 % (1 000 s) dropped as warm-up") and gives the summary's mean
    latency (all ok requests, warm-up included) beside it, so the two
    numbers can be reconciled.

    Utilisation 1 and above is shaded as unstable (hatched, vermillion
    words): there the queue grows without bound and there is no mean to
    compare, so a run offered ρ ≥ 1 gets no point -- the box says so, with
    its offered load, and an arrow points into the band.
    Drawing again on the same ``ax`` updates it in place.
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
    stable = offered < 1.0
    mean, se, n = steady_mean(res, warmup, batches)
    rho = offered
    if server is not None:  # after the warm-up too; a run without trace has the total only
        start = warmup * res.until if res.world.trace.enabled else 0.0
        rho = res.utilisation(start=start).get(server.name, offered)
    expected = (theory_curve(p.servers, p.service_rate, p.service_distribution, [offered],
                             sigma=sigma, network_latency=latency)["response"].iloc[0]
                if stable else math.inf)

    fig, ax, _ = figure_for(ax, 8.5, 5.2, margins=(0.75, 0.3, 0.4, 1.55))
    k = reuse.keeper(ax, "theory_vs_simulation")
    if k.fresh:
        style_axes(ax)
    _draw_curves(ax, k, curve, mmc_ref)
    err = _Z95 * se if np.isfinite(se) else None
    if stable:
        k.adopt("simulation", ax.errorbar(
            [rho], [mean], yerr=None if err is None else [[err], [err]], fmt="o",
            color=OKABE_ITO["vermillion"], markersize=7, capsize=4, linewidth=1.5, zorder=4,
            gid="simulation",
            label=f"simulation: mean latency of {_count(n)} ok requests after the warm-up"
                  + (" ± 95 % CI (batch means)" if err is not None else "")))
    if np.isfinite(expected):
        k.line("theory_point", [offered], [expected], linestyle="none", marker="o",
               markersize=9, markerfacecolor="none", markeredgecolor=OKABE_ITO["blue"],
               markeredgewidth=1.5, zorder=3, label=f"theory at offered ρ = {offered:.3g}")
    show = max(0.9, min(0.985, (max(rho, offered) if stable else 0.9) + 0.05))
    top_curve = float(np.interp(show, curve["utilisation"], curve["response"]))
    top = max(top_curve, (mean + (err or 0.0)) if stable and np.isfinite(mean) else 0.0)
    ax.set_ylim(0, 1.12 * top)
    ax.set_xlim(0, X_MAX)
    ax.set_xlabel("utilisation ρ = λ / (c·μ)")
    ax.set_ylabel("mean time (s)")
    ax.set_title(f"Theory vs simulation: {p.servers} server{'s' if p.servers > 1 else ''}, "
                 f"μ = {p.service_rate:g} req/s each, {p.service_distribution} service",
                 loc="left", fontsize=11, y=1.0)
    summary = res.summary()
    dropped = (f"first {100 * warmup:.0f} % ({_seconds(warmup * res.until)}) dropped as warm-up"
               if warmup else "no warm-up dropped")
    if stable:
        text = [f"simulated W = {mean:.4g} s" + (f" ± {err:.2g}" if err is not None else ""),
                f"  {dropped}: {_count(n)} of {_count(summary['completed'])} ok requests"]
        if np.isfinite(expected):
            text.append(f"theory W = {expected:.4g} s")
        text.append(f"measured ρ = {rho:.3f} (offered {offered:.3f})")
    else:
        text = [f"offered ρ = {offered:.3g} ≥ 1: unstable, no point to plot",
                "the queue grows for as long as the run lasts, so the",
                "mean latency depends on the run's length, not on ρ",
                f"measured utilisation {rho:.3f}: the servers never rest"]
        k.text("offered_arrow", 1.0 + (X_MAX - 1.0) / 2, 0.9,
               f"this run:\nρ = {offered:.3g} →" if offered > X_MAX else
               f"this run:\nρ = {offered:.3g}", transform=ax.get_xaxis_transform(),
               ha="center", va="top", fontsize=8.5, color=OKABE_ITO["vermillion"],
               fontweight="bold", zorder=5, bbox=_ON_BAND)
    text.append(f"summary's mean latency = {summary['mean_latency']:.4g} s "
                f"(all {_count(summary['completed'])} ok requests, warm-up included)")
    if latency:
        text.append(f"theory includes 2 × {latency:g} s network latency")
    k.text("numbers", 0.02, 0.97, "\n".join(text), transform=ax.transAxes, va="top",
           ha="left", fontsize=8.5, color=INK, zorder=6,
           bbox={"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "#CCCCCC"})
    pin_axis_labels(ax)
    k.finish()
    reuse.legend(ax, *ax.get_legend_handles_labels(), loc="upper left",
                 bbox_to_anchor=(0.0, -0.12), fontsize=8, frameon=False, ncols=1)
    return fig


def theory_sweep_figure(df: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Simulated means (points, 95 % bars) on the theory curve.

    ``df`` comes from :func:`simcomm.sweeps.theory_sweep` (viz only draws).

    What the learner sees: the theory's mean response time against
    utilisation and, at each load that was simulated, a vermillion point
    with its confidence bar -- close to the curve at low load, further and
    wider near saturation, where queues are long and slow to settle.  The
    title says how much of each run was dropped as warm-up.  Utilisation 1
    and above is shaded as unstable; a load simulated there gets no point
    (it has no steady-state mean), its ρ is listed in the band instead.
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
    fig, ax, _ = figure_for(ax, 8.5, 4.5, margins=(0.75, 0.3, 0.55, 0.55))
    k = reuse.keeper(ax, "theory_sweep_figure")
    if k.fresh:
        style_axes(ax)
    _draw_curves(ax, k, curve, mmc_ref)
    stable = df[df["utilisation"] < 1.0]
    unstable = df[df["utilisation"] >= 1.0]
    se = stable["sim_se"].to_numpy(dtype=float)
    k.adopt("simulation", ax.errorbar(
        stable["utilisation"], stable["sim_mean"],
        yerr=np.where(np.isfinite(se), _Z95 * se, 0), fmt="o", color=OKABE_ITO["vermillion"],
        markersize=6, capsize=3, zorder=4, gid="simulation",
        label="simulation: mean latency ± 95 % CI (batch means)"))
    if len(unstable):
        k.text("unstable_runs", 1.0 + (X_MAX - 1.0) / 2, 0.97,
               "simulated\nhere, not\nplotted:\n" + "\n".join(
                   f"ρ = {u:.3g}" for u in unstable["utilisation"]),
               transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=7.5,
               color=OKABE_ITO["vermillion"], zorder=5, bbox=_ON_BAND)
    top = float(np.nanmax(np.concatenate([
        (stable["sim_mean"] + np.nan_to_num(_Z95 * se)).to_numpy(dtype=float),
        [float(np.interp(max(0.9, min(0.985, (stable["utilisation"].max()
                                             if len(stable) else 0.9) + 0.05)),
                         curve["utilisation"], curve["response"]))]])))
    ax.set_ylim(0, 1.12 * top)
    ax.set_xlim(0, X_MAX)
    ax.set_xlabel("utilisation ρ = λ / (c·μ)")
    ax.set_ylabel("mean time (s)")
    until = df.attrs.get("until")
    warmup = df.attrs.get("warmup")
    ax.set_title(f"Simulation vs theory across loads: {servers} server"
                 f"{'s' if servers > 1 else ''}, μ = {mu:g} req/s, {dist} service"
                 + (f", {until:g} s per run" if until else ""), loc="left", fontsize=11,
                 y=1.06)
    if warmup is not None:
        ax.set_title(f"first {100 * warmup:.0f} % of each run"
                     + (f" ({_seconds(warmup * until)})" if until else "")
                     + " dropped as warm-up", loc="right", fontsize=8, color=INK, y=1.0)
    pin_axis_labels(ax)
    k.finish()
    reuse.legend(ax, *ax.get_legend_handles_labels(), loc="upper left", fontsize=8,
                 frameon=False)
    return fig
