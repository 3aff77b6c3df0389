"""Figures of partial failure (issue 7 item 5): breaker strips, outcomes per
endpoint, pools per endpoint, offered load against goodput.

Each figure is checked against the run's own tables -- the breaker strip's
bands against ``Result.breaker_events``, the calls per service against
``Result.amplification()`` -- so a figure cannot quietly drift from the
numbers a learner reads in the tables.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

import simcomm
from simcomm import viz
from simcomm.engine import Instance, OpenLoop, World
from simcomm.errors import OverloadWarning, ParamError
from simcomm.resilience import CircuitBreaker, EdgePolicy, RateLimiter, protect, protect_server
from simcomm.result import Result
from simcomm.rpc import forward
from simcomm.scenarios import retry_storm
from simcomm.viz import style

NEW_VIEWS = ("breaker_states", "outcomes_by_endpoint", "pool_by_endpoint", "load_vs_goodput")
PROTECTED: dict[str, Any] = {"call_timeout": 1.0, "order_bulkhead": 4, "breaker": "resilience4j",
             "fallback": "value"}
GATEWAY, ORDER_EDGE, CUSTOMER_EDGE = "api-gateway-1", ("api-gateway-1", "order"), (
    "api-gateway-1", "customer")


# -- runs shared by the tests -------------------------------------------------------
@pytest.fixture(scope="module")
def gw() -> Result:
    """The unprotected gateway: the order service hangs from 15 s to 40 s."""
    return simcomm.run("gateway", seed=0)


@pytest.fixture(scope="module")
def gw_protected() -> Result:
    return simcomm.run("gateway", seed=0, **PROTECTED)


@pytest.fixture(scope="module")
def storm() -> Result:
    return simcomm.run("retry-storm", seed=0)


@pytest.fixture(scope="module")
def storm_backoff() -> Result:
    return simcomm.run("retry-storm", seed=0, retry_backoff="full_jitter", breaker="consecutive")


@pytest.fixture(scope="module")
def shed() -> Result:
    """A service shedding load with a rate limiter behind a gateway with a deadline:
    the outcomes rate_limited and deadline_exceeded, which the scenarios do not make."""
    w = World(seed=1)
    Instance(w, "gw-1", workers=30, service="gw", handler=forward("svc-1"))
    Instance(w, "svc-1", workers=2, service="svc", service_time=0.2)
    protect_server(w, "svc", rate_limiter=RateLimiter(limit_for_period=8,
                                                      limit_refresh_period=1.0))
    protect(w, "gw", "svc", deadline=0.5)
    OpenLoop(w, "users", "gw-1", 14.0)
    w.run(20)
    return Result(w)


def _gid(fig: Figure, prefix: str, kind: type = object) -> list[Any]:
    return [a for ax in fig.axes for a in ax.get_children()
            if isinstance(a, kind) and (a.get_gid() or "").startswith(prefix)]


def _texts(fig: Figure) -> str:
    parts = [t.get_text() for ax in fig.axes for t in ax.texts]
    parts += [ax.get_title(loc=loc) for ax in fig.axes for loc in ("left", "right")]
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None:
        parts.append(suptitle.get_text())
    return "\n".join(parts)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


# -- every figure, unprotected and protected -------------------------------------------
@pytest.mark.parametrize("name", NEW_VIEWS)
@pytest.mark.parametrize("run", ["gw", "gw_protected", "storm", "storm_backoff"])
def test_each_figure_draws_for_default_and_protected_runs(name: str, run: str,
                                                         request: pytest.FixtureRequest
                                                         ) -> None:
    res = request.getfixturevalue(run)
    fig = viz.view(name, res)
    assert isinstance(fig, Figure) and fig.axes
    rows = [ax for ax in fig.axes if ax.get_label() != "queue"]
    assert all(ax.get_xlim() == (0.0, res.until) for ax in rows)
    assert rows[-1].get_xlabel().endswith("(s)")
    assert fig.axes[0].get_legend() is not None


@pytest.mark.parametrize("name", NEW_VIEWS)
def test_redrawing_a_gateway_figure_for_another_run_looks_like_a_fresh_one(
        name: str, gw: Result, gw_protected: Result) -> None:
    """The dashboard's path: unprotected, then protected (breaker bands, fallbacks
    and short circuits appear), into the same figure; then back again."""
    fig = viz.redraw(name, gw)
    assert viz.redraw(name, gw_protected, fig) is fig
    fresh = viz.redraw(name, gw_protected)
    assert [len(ax.get_children()) for ax in fig.axes] == [
        len(ax.get_children()) for ax in fresh.axes]
    assert _png(fig) == _png(fresh)
    assert _png(viz.redraw(name, gw, fig)) == _png(viz.redraw(name, gw))


# -- breaker strip -----------------------------------------------------------------------
def _intervals_from_events(res: Result) -> dict[tuple[str, str], list[tuple[str, float, float]]]:
    """The breaker's stretches read straight from Result.breaker_events."""
    out: dict[tuple[str, str], list[tuple[str, float, float]]] = {}
    for (caller, callee), ev in res.breaker_events.groupby(["caller", "callee"]):
        times = [0.0, *ev["time"], res.until]
        states = [str(ev["from_state"].iloc[0]), *map(str, ev["to_state"])]
        out[(str(caller), str(callee))] = list(zip(states, times[:-1], times[1:],
                                                   strict=True))
    return out


def _bands(strip: Any) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for coll in strip.collections:
        gid = coll.get_gid() or ""
        if gid.startswith("breaker:"):
            spans = [(float(p.vertices[0, 0]), float(p.vertices[2, 0]))
                     for p in coll.get_paths()]
            out[gid.split(":", 1)[1]] = sorted(spans)
    return out


@pytest.mark.parametrize("kind", ["resilience4j", "consecutive", "hystrix"])
def test_strip_bands_are_exactly_the_breaker_event_intervals(kind: str) -> None:
    res = simcomm.run("gateway", seed=0, call_timeout=1.0, breaker=kind)
    ev = res.breaker_events
    assert not ev.empty and (ev["to_state"] == "open").any()
    # the table itself is a chain: each change starts where the last one ended
    for _, sub in ev.groupby(["caller", "callee"]):
        assert (sub["from_state"].iloc[1:].to_numpy() == sub["to_state"].iloc[:-1]
                .to_numpy()).all()
    fig = viz.breaker_states(res)
    edges = viz.call_edges(res)
    assert edges == [ORDER_EDGE, CUSTOMER_EDGE]
    expected = _intervals_from_events(res)
    for i, edge in enumerate(edges):
        bands = _bands(fig.axes[2 * i])
        want: dict[str, list[tuple[float, float]]] = {}
        for state, a, b in expected.get(edge, [("closed", 0.0, res.until)]):
            want.setdefault(state, []).append((a, b))
        assert bands == {s: sorted(v) for s, v in want.items()}, edge
    # the data function says the same, and the bands tile the run without gaps
    iv = viz.breaker_intervals(res)
    order = iv[(iv["caller"] == ORDER_EDGE[0]) & (iv["callee"] == ORDER_EDGE[1])]
    assert order["start"].iloc[0] == 0.0 and order["end"].iloc[-1] == res.until
    assert (order["start"].iloc[1:].to_numpy() == order["end"].iloc[:-1].to_numpy()).all()
    opened = int((ev["to_state"] == "open").sum())
    assert f"opened {opened}×" in _texts(fig)


def test_forced_open_and_disabled_states_get_their_own_bands() -> None:
    """States set by hand (Resilience4j's transition_to_*_state) are drawn too."""
    w = World(seed=2)
    Instance(w, "gw-1", workers=10, service="gw", handler=forward("svc-1"))
    Instance(w, "svc-1", workers=4, service="svc", service_time=0.01)
    copies = protect(w, "gw", "svc", EdgePolicy(circuit_breaker=CircuitBreaker()))
    cb = copies["gw-1"].circuit_breaker
    assert cb is not None

    def operator():  # an operator forces the breaker open, then disables it
        yield w.env.timeout(5.0)
        cb.transition_to_forced_open_state(w.env.now)
        yield w.env.timeout(5.0)
        cb.transition_to_disabled_state(w.env.now)
        yield w.env.timeout(5.0)
        cb.transition_to_closed_state(w.env.now)

    w.env.process(operator())
    OpenLoop(w, "users", "gw-1", 10.0)
    w.run(20)
    res = Result(w)
    fig = viz.breaker_states(res)
    assert _bands(fig.axes[0]) == {"closed": [(0.0, 5.0), (15.0, 20.0)],
                                   "forced_open": [(5.0, 10.0)], "disabled": [(10.0, 15.0)]}
    legend = fig.axes[0].get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert any("forced open" in s for s in labels) and any("disabled" in s for s in labels)
    # while forced open every call was short-circuited
    rates = viz.edge_call_rates(res, bin=1.0)[("gw-1", "svc")]
    assert (rates.loc[5.0:9.0, "short_share"] == 1.0).all()


def test_failure_share_is_what_the_breaker_judges(gw_protected: Result) -> None:
    rates = viz.edge_call_rates(gw_protected, bin=1.0)[ORDER_EDGE]
    att = gw_protected.attempts
    order = att[att["callee"] == "order-1"]
    assert rates["calls"].sum() == len(order)
    assert rates["short_circuited"].sum() == (order["outcome"] == "short_circuited").sum()
    failed = ~order["outcome"].isin(["ok", "fallback", "short_circuited"])
    assert rates["failed"].sum() == failed.sum()
    # during the hang, every call let through timed out
    hang = rates.loc[17.0:38.0]
    shares = hang["failed_share"].dropna()
    assert len(shares) and (shares == 1.0).all()
    fig = viz.breaker_states(gw_protected)
    thresholds = _gid(fig, "threshold")
    assert len(thresholds) == 2 and all(t.get_ydata()[0] == 50.0 for t in thresholds)


def test_a_run_without_breakers_says_so(gw: Result) -> None:
    fig = viz.breaker_states(gw)
    text = _texts(fig)
    assert "No circuit breaker in this run" in text
    assert text.count("no circuit breaker on this edge") == 2
    assert not _gid(fig, "breaker:")
    # the calls are still shown: a hang makes no call fail until it ends
    assert _gid(fig, "failed")
    chain = simcomm.run("chain", seed=0, until=20)
    fig = viz.breaker_states(chain)
    assert len(fig.axes) == 2 * len(viz.call_edges(chain)) == 6
    assert "No circuit breaker" in _texts(fig)


def test_a_run_without_calls_or_trace_says_what_is_missing() -> None:
    mmc = simcomm.run("mmc", seed=0, until=50)
    fig = viz.breaker_states(mmc)
    assert len(fig.axes) == 1 and "No calls between services" in _texts(fig)
    untraced = simcomm.run("gateway", seed=0, until=30, trace=False, call_timeout=1.0,
                           breaker="consecutive")
    fig = viz.breaker_states(untraced)
    assert _gid(fig, "breaker:open")  # kept without the trace
    assert "trace=True" in _texts(fig)
    assert "trace=True" in _texts(viz.pool_by_endpoint(untraced))
    assert "trace=True" in _texts(viz.load_vs_goodput(untraced))
    assert "no service is called" in _texts(viz.load_vs_goodput(mmc))


def test_bad_arguments_are_param_errors(gw: Result) -> None:
    with pytest.raises(ParamError, match="api-gateway-1 → order"):
        viz.breaker_states(gw, edges=["api-gateway-1 → payment"])
    fig = viz.breaker_states(gw, edges=["api-gateway-1 -> customer"])
    assert len(fig.axes) == 2
    for fn in (viz.breaker_states, viz.load_vs_goodput, viz.outcomes_by_endpoint):
        with pytest.raises(ParamError):
            fn(gw, bin=0)
    with pytest.raises(ParamError, match="createOrder"):
        viz.outcomes_over_time(gw, endpoint="createorder")
    with pytest.raises(ParamError):
        viz.pool_by_endpoint(gw, nodes=["order-2"])
    with pytest.raises(ParamError):
        viz.endpoint_occupancy(gw, "api-gateway-1", max_points=0)
    with pytest.raises(ParamError):
        viz.breaker_states(gw, axes=[Figure().add_subplot()])


# -- outcomes ---------------------------------------------------------------------------
NEW_OUTCOMES = ("fallback", "timeout", "deadline_exceeded", "bulkhead_full",
                "short_circuited", "rate_limited")


def test_every_outcome_has_its_own_named_colour() -> None:
    from simcomm.result import FAILURES
    from simcomm.rpc import OUTCOMES as RPC_OUTCOMES

    assert set(style.OUTCOMES) >= set(FAILURES) | set(RPC_OUTCOMES) | {"pending"}
    assert set(style.OUTCOME_COLORS) == set(style.OUTCOMES)
    colours = [to_hex(c) for c in style.OUTCOME_COLORS.values()]
    assert len(set(colours)) == len(colours)
    names = [style.color_name(c) for c in colours]
    assert len(set(names)) == len(names)
    assert all(not n.startswith("#") for n in names)
    assert style.color_name(style.OUTCOME_COLORS["short_circuited"]) == "wine"
    assert style.color_name(style.OUTCOME_COLORS["timeout"]) == "dark brown"
    # the open breaker's band wears the short circuit's colour
    assert style.BREAKER_STYLES["open"]["facecolor"] == style.OUTCOME_COLORS["short_circuited"]


_CVD = {  # Machado, Oliveira & Fernandes (2009), severity 1, on linear RGB
    "normal": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968],
                              [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}


def _lab(colour: str, matrix: np.ndarray) -> np.ndarray:
    c = np.asarray(to_rgb(colour))
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ np.clip(matrix @ lin, 0, 1)
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > 216 / 24389, np.cbrt(t), (24389 / 27 * t + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_new_outcome_colours_are_as_distinct_as_the_original_ones_for_colour_blind_eyes():
    """Each new colour is at least as far (CIELAB) from every other outcome colour
    and from the hang band's yellow as the closest pair of the original seven,
    for normal vision and the three dichromacies (simulated)."""
    original = ("ok", "error", "refused", "rejected", "reset", "abandoned", "pending")
    palette = {**style.OUTCOME_COLORS, "hung band": style.FAULT_COLORS["hung"]}
    for vision, m in _CVD.items():
        def dist(a: str, b: str, m: np.ndarray = m) -> float:
            return float(np.linalg.norm(_lab(palette[a], m) - _lab(palette[b], m)))

        worst_original = min(dist(a, b) for a, b in itertools.combinations(original, 2))
        for new in NEW_OUTCOMES:
            for other in palette:
                if other != new:
                    assert dist(new, other) >= worst_original, (vision, new, other)


def test_the_new_outcomes_get_their_colours_in_the_figures(gw_protected: Result,
                                                           shed: Result) -> None:
    seen = set()
    for res in (gw_protected, shed, simcomm.run("gateway", seed=0, call_timeout=1.0,
                                                breaker="consecutive", order_bulkhead=3)):
        present = set(res.requests["outcome"])
        fig = viz.outcomes_over_time(res)
        for outcome in present & set(NEW_OUTCOMES):
            (patch,) = _gid(fig, f"outcome:{outcome}")
            assert to_hex(patch.get_facecolor(), keep_alpha=False) == to_hex(
                style.OUTCOME_COLORS[outcome]), outcome
            seen.add(outcome)
        lat = viz.latency_over_time(res)
        for outcome in present & set(NEW_OUTCOMES):
            (points,) = _gid(lat, f"outcome:{outcome}")
            assert to_hex(points.get_color()) == to_hex(style.OUTCOME_COLORS[outcome])
        # stacked in the declared order: answers first, then the failures
        rates = viz.outcome_rates(res)
        assert list(rates.columns) == [o for o in style.OUTCOMES if o in rates.columns]
    assert seen == set(NEW_OUTCOMES)


def test_outcomes_by_endpoint_shows_the_cascade_and_the_bulkhead(gw: Result) -> None:
    """Unprotected, getCustomer fails during the order service's hang too; with a
    bulkhead on the order edge it stays available."""
    fig = viz.outcomes_by_endpoint(gw, bin=5)
    assert [ax.get_title(loc="left").split(":")[0] for ax in fig.axes] == [
        "createOrder", "getCustomer"]
    assert len({ax.get_ylim() for ax in fig.axes}) == 1  # one scale: rows compare
    rates = viz.outcome_rates(gw, bin=5, endpoint="getCustomer")
    rq = gw.requests
    assert (rates.to_numpy() * 5).sum() == pytest.approx((rq["endpoint"] == "getCustomer").sum())
    hang = rates.loc[20.0:35.0]
    assert (hang.drop(columns="ok", errors="ignore").sum(axis=1) > hang.get("ok", 0)).all()
    bulkhead = simcomm.run("gateway", seed=0, call_timeout=1.0, order_bulkhead=4)
    fig = viz.outcomes_by_endpoint(bulkhead)
    right = fig.axes[1].get_title(loc="right")
    assert float(right.split()[1]) > 99.0
    # without endpoints: one row for all requests
    assert len(viz.outcomes_by_endpoint(simcomm.run("chain", seed=0, until=20)).axes) == 1


# -- pools per endpoint -------------------------------------------------------------------
def test_pool_by_endpoint_splits_the_busy_workers(gw: Result) -> None:
    occ = viz.endpoint_occupancy(gw, GATEWAY, max_points=600)
    assert list(occ.columns) == ["createOrder", "getCustomer", "own_work", "busy", "queued"]
    held = occ["createOrder"] + occ["getCustomer"]
    assert (held <= occ["busy"] + 1e-9).all()  # a worker waiting on a call is busy
    assert np.allclose(held + occ["own_work"], occ["busy"])
    # during the hang createOrder holds the whole pool; getCustomer none
    hang = occ.loc[25.0:39.0]
    assert (hang["createOrder"] > 9.99).all() and (hang["getCustomer"] < 0.01).all()
    fig = viz.pool_by_endpoint(gw)
    rows = [ax for ax in fig.axes if ax.get_label() != "queue"]
    assert len(rows) == 1 and "most held at once: createOrder 10" in rows[0].get_title(
        loc="left")
    legend = rows[0].get_legend()
    assert legend is not None
    labels = [" ".join(t.get_text().split()) for t in legend.get_texts()]
    assert any("createOrder → order" in s for s in labels)
    assert any("getCustomer → customer" in s for s in labels)


def test_calls_still_waiting_at_the_end_hold_their_workers() -> None:
    """A hang that outlasts the run: its calls never end, so the attempts table
    (which records an attempt when it ends) lacks them; they hold their workers
    all the same, to the end."""
    res = simcomm.run("gateway", seed=0, hang_duration=100.0)
    att = res.attempts
    assert att["time"].max() < 20.0  # nothing recorded after the gateway ran out
    occ = viz.endpoint_occupancy(res, GATEWAY)
    held = occ["createOrder"] + occ["getCustomer"]
    assert (held <= occ["busy"] + 1e-9).all()
    assert (occ.loc[20.0:59.9, "createOrder"] > 9.99).all()
    with pytest.warns(OverloadWarning, match="stuck"):  # as it should: kitchen hangs
        chain = simcomm.run("chain", seed=0, until=60, last_service_hangs=True, hang_at=40)
    for node in ("api-gateway-1", "order-1", "payment-1"):  # each waits on the next
        late = viz.endpoint_occupancy(chain, node).loc[50.0:59.9]
        assert (late.drop(columns=["own_work", "busy", "queued"]).sum(axis=1) > 9.99).all()


def test_a_bulkhead_caps_the_workers_one_endpoint_holds() -> None:
    res = simcomm.run("gateway", seed=0, order_bulkhead=4)
    occ = viz.endpoint_occupancy(res, GATEWAY)
    assert occ["createOrder"].max() <= 4 + 1e-9
    fig = viz.pool_by_endpoint(res)
    assert "createOrder 4" in fig.axes[0].get_title(loc="left")


def test_without_endpoints_workers_are_split_by_the_service_they_wait_on(storm: Result) -> None:
    occ = viz.endpoint_occupancy(storm, retry_storm.GATEWAY)
    assert "→ order" in occ.columns
    fig = viz.pool_by_endpoint(simcomm.run("chain", seed=0, until=20))
    rows = [ax for ax in fig.axes if ax.get_label() != "queue"]
    assert [ax.get_title(loc="left").split(" ·")[0] for ax in rows] == [
        "api-gateway-1", "order-1", "payment-1"]  # the instances that call others


# -- offered load, goodput, amplification -------------------------------------------------
def test_calls_per_service_add_up_to_the_amplification(gw_protected: Result,
                                                       storm: Result) -> None:
    for res in (gw_protected, storm):
        df = viz.load_rates(res, bin=2.0)
        users = len(res.requests)
        width = np.diff(np.append(df.index.to_numpy(), res.until))
        assert (df["users"] * width).sum() == pytest.approx(users)
        for service, factor in res.amplification().items():
            if f"calls:{service}" in df:
                assert (df[f"calls:{service}"] * width).sum() == pytest.approx(factor * users)
        assert (df["goodput"] * width).sum() == pytest.approx(
            (res.requests["outcome"] == "ok").sum())


def test_the_storm_stays_above_capacity_after_its_trigger(storm: Result,
                                                          storm_backoff: Result) -> None:
    p = storm.params
    after = p.slowdown_at + p.slowdown_duration
    cap = retry_storm.capacity(p)
    cuts, values = viz.service_capacity(storm)["order"]
    at = {float(t): float(v) for t, v in zip(cuts[:-1], values, strict=True)}
    assert at[0.0] == pytest.approx(cap)
    assert at[p.slowdown_at] == pytest.approx(cap / p.slowdown_factor)
    assert at[after] == pytest.approx(cap)
    df = viz.load_rates(storm, bin=5.0)
    late = df.loc[after + 5:]  # from 5 s after the trigger ended to the end of the run
    assert late["calls:order"].mean() > 1.2 * cap and (late["calls:order"] > 0.9 * cap).all()
    assert late["goodput"].mean() < 0.2 * df.loc[:p.slowdown_at - 5, "goodput"].mean()
    assert (late["amplification:order"] > 2).all()
    fixed = viz.load_rates(storm_backoff, bin=5.0)
    assert (fixed.loc[60.0:, "calls:order"] < cap).all()
    fig = viz.load_vs_goodput(storm)
    assert _gid(fig, "capacity:order") and _gid(fig, "fault:slow")
    factor = storm.amplification()["order"]
    assert f"order ×{factor:.2f}" in fig.axes[1].get_title(loc="right")


def test_a_capacity_far_above_the_load_is_named_not_drawn(gw: Result) -> None:
    fig = viz.load_vs_goodput(gw)
    assert not _gid(fig, "capacity:")
    legend = fig.axes[0].get_legend()
    assert legend is not None
    labels = [" ".join(t.get_text().split()) for t in legend.get_texts()]
    assert any("off the scale" in s and "order 200/s" in s for s in labels)


# -- registry and layout -------------------------------------------------------------------
def test_views_are_registered_and_the_scenarios_use_them() -> None:
    assert set(NEW_VIEWS) <= set(viz.VIEWS)
    for name in ("gateway", "retry-storm"):
        views = simcomm.api.base.get(name).views
        assert set(views) <= set(viz.VIEWS)
    assert {"breaker_states", "outcomes_by_endpoint", "pool_by_endpoint"} <= set(
        simcomm.api.base.get("gateway").views)
    assert "load_vs_goodput" in simcomm.api.base.get("retry-storm").views


@pytest.mark.parametrize("name", NEW_VIEWS)
def test_axis_labels_clear_the_tick_labels(name: str, gw_protected: Result) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = viz.view(name, gw_protected)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        for axis, ticks in ((ax.xaxis, ax.get_xticklabels()), (ax.yaxis, ax.get_yticklabels())):
            label = axis.label
            if not (label.get_visible() and label.get_text()):
                continue
            box = label.get_window_extent(renderer)
            assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1
            for t in ticks:
                if t.get_visible() and t.get_text():
                    assert not box.overlaps(t.get_window_extent(renderer))


def test_data_functions_return_plain_tables(gw_protected: Result) -> None:
    iv = viz.breaker_intervals(gw_protected)
    assert list(iv.columns) == ["caller", "callee", "state", "start", "end"]
    assert isinstance(viz.load_rates(gw_protected), pd.DataFrame)
    assert set(viz.edge_call_rates(gw_protected)) == {ORDER_EDGE, CUSTOMER_EDGE}
    assert _gid(viz.breaker_states(gw_protected), "breaker:open", PolyCollection)
