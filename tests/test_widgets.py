"""simcomm.widgets without a browser: set a control's value, the callbacks run.

Setting ``.value`` on a control from Python fires its ``observe``
callbacks synchronously, exactly as a slider release in JupyterLab does
through the kernel, so every assertion here is about what a learner would
see: a new run with the new parameter, a new summary, new figures, errors
shown in the dashboard rather than raised.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import ipywidgets as widgets
import pytest

import simcomm
from simcomm.errors import ParamError
from simcomm.scenarios import base, mmc
from simcomm.widgets import Comparison, Dashboard, Playback, _render, compare, explore, playback
from simcomm.widgets import dashboard as dashboard_module
from simcomm.widgets.controls import control_for, decimals, default_step

PNG = b"\x89PNG\r\n\x1a\n"
FAST = {"until": 200.0, "views": ("latency_over_time",)}  # mmc: ~160 requests


def _leaked_figures() -> list[int]:
    plt = sys.modules.get("matplotlib.pyplot")
    return list(plt.get_fignums()) if plt is not None else []


# -- controls from metadata -----------------------------------------------------
@pytest.mark.parametrize("name", ["chain", "mmc"])
def test_controls_match_the_params_metadata(name: str) -> None:
    sc = base.get(name)
    for spec in sc.fields():
        c = control_for(spec)
        assert c.value == spec.default, spec.name
        assert spec.help in c.tooltip
        if spec.unit and not spec.label.endswith(spec.unit):
            assert f"({spec.unit})" in c.description
        if spec.type is bool:
            assert isinstance(c, widgets.Checkbox)
        elif spec.choices:
            assert isinstance(c, widgets.Dropdown)
            assert tuple(c.options) == spec.choices
        elif spec.type is int:
            assert isinstance(c, widgets.IntSlider)
            assert (c.min, c.max, c.step) == (spec.range[0], spec.range[1], spec.step or 1)
            assert c.continuous_update is False
        else:
            assert isinstance(c, widgets.FloatSlider)
            assert (c.min, c.max) == spec.range
            assert c.step == pytest.approx(spec.step)
            assert c.continuous_update is False
            # the readout shows every decimal of the step (0.0005 -> 4)
            assert c.readout_format == f".{decimals(spec.step)}f"


def test_a_float_range_without_step_gets_a_round_one() -> None:
    assert default_step(0.0, 1.0) == 0.002
    assert default_step(0.01, 1000.0) == 2.0
    assert decimals(0.0005) == 4 and decimals(1.0) == 0 and decimals(0.1) == 1

    @dataclasses.dataclass(frozen=True)
    class P:
        x: float = base.param(0.5, range=(0.0, 1.0), help="h")
        n: int = base.param(3, help="unbounded")
        name: str = base.param("a", help="free text")

    specs = {s.name: s for s in base.fields(P)}
    assert control_for(specs["x"]).step == 0.002
    assert isinstance(control_for(specs["n"]), widgets.IntText)
    assert isinstance(control_for(specs["name"]), widgets.Text)
    assert control_for(specs["name"]).continuous_update is False


# -- explore ----------------------------------------------------------------------
def test_explore_builds_controls_and_runs_once() -> None:
    dash = simcomm.explore("mmc", seed=2, **FAST)
    assert isinstance(dash, Dashboard) and isinstance(dash, widgets.Box)
    assert set(dash.controls) == {s.name for s in mmc.SCENARIO.fields()} | {"seed", "until"}
    assert dash.runs == 1 and dash.error is None
    assert dash.params == mmc.Params()
    assert dash.result.seed == 2 and dash.result.until == 200.0
    assert bytes(dash.images["latency_over_time"].value).startswith(PNG)
    assert "availability" in dash.summary.value
    assert "application/vnd.jupyter.widget-view+json" in dash._repr_mimebundle_()
    assert _leaked_figures() == []


def test_setting_a_control_reruns_with_the_new_value() -> None:
    dash = explore("mmc", arrival_rate=0.9, **FAST)
    first_summary = dash.summary.value
    first_png = bytes(dash.images["latency_over_time"].value)
    children = len(dash.children)
    dash.controls["servers"].value = 3
    assert dash.runs == 2
    assert dash.params.servers == 3 and dash.params.arrival_rate == 0.9
    assert dash.result.params.servers == 3
    assert dash.summary.value != first_summary
    assert bytes(dash.images["latency_over_time"].value) != first_png
    assert dash.timings["total"] > 0 and "view_latency_over_time" in dash.timings
    dash.controls["service_distribution"].value = "constant"
    assert dash.runs == 3 and dash.params.service_distribution == "constant"
    assert len(dash.children) == children  # nothing accumulates
    assert _leaked_figures() == []


def test_seed_and_until_controls_and_the_dashboard_run_equals_simcomm_run() -> None:
    dash = explore("chain", seed=0, until=20.0, views=("outcomes_over_time",))
    dash.controls["seed"].value = 7
    dash.controls["until"].value = 25.0
    assert dash.runs == 3
    assert dash.result.seed == 7 and dash.result.until == 25.0
    # the dashboard runs in slices (for its progress bar): same trace as one run
    same = simcomm.run("chain", seed=7, until=25.0)
    assert dash.result.fingerprint() == same.fingerprint()


def test_update_sets_several_controls_and_runs_once() -> None:
    dash = explore("mmc", **FAST)
    dash.update(servers=2, arrival_rate=1.5, seed=4)
    assert dash.runs == 2
    assert (dash.params.servers, dash.params.arrival_rate, dash.result.seed) == (2, 1.5, 4)
    with pytest.raises(ParamError, match="nope"):
        dash.update(nope=1)
    dash.reset()
    assert dash.params == mmc.Params() and dash.result.seed == 4


def test_going_back_to_earlier_settings_shows_the_kept_run() -> None:
    dash = explore("mmc", **FAST)
    first, first_png = dash.result, bytes(dash.images["latency_over_time"].value)
    dash.controls["servers"].value = 2
    assert dash.cache_hits == 0 and dash.result is not first
    dash.controls["servers"].value = 1  # back: same seed + params = the same run
    assert dash.runs == 3 and dash.cache_hits == 1 and dash.params.servers == 1
    # only pictures and numbers were kept: the Result is made again when asked for
    assert dash.result is not first and dash.result.fingerprint() == first.fingerprint()
    assert bytes(dash.images["latency_over_time"].value) == first_png
    assert "from memory" in dash.status.value
    dash.buttons["run"].click()  # nothing changed: shown again, not simulated
    assert dash.runs == 4 and dash.cache_hits == 2
    dash.buttons["new_seed"].click()
    assert dash.result.seed == 1 and dash.cache_hits == 2
    none = Dashboard("mmc", cache=0, **FAST)
    none.buttons["run"].click()
    assert none.runs == 2 and none.cache_hits == 0
    two = Dashboard("mmc", cache=2, **FAST)  # keeps the last two settings only
    assert two.update(servers=2) and two.update(servers=3) and two.update(servers=1)
    assert two.cache_hits == 0  # servers=1 had been pushed out by 2 and 3
    assert two.update(servers=3) and two.cache_hits == 1


def test_an_overloaded_run_shows_a_banner_and_a_healthy_one_does_not() -> None:
    """mmc with lambda = 2, mu = 1: half the requests are still pending at the
    end; the banner says so above the numbers, and goes when the load is fair."""
    dash = explore("mmc", arrival_rate=2.0, **FAST)
    assert dash.warnings and dash.warnings[0].startswith("overloaded")
    assert "simcomm-warning" in dash.banner.value
    assert "<b>overloaded</b>" in dash.banner.value and "pending" in dash.banner.value
    right = dash.children[1].children[1].children
    assert right.index(dash.banner) < right.index(dash.summary)  # read before the numbers
    dash.controls["arrival_rate"].value = 0.5
    assert dash.warnings == [] and dash.banner.value == ""
    dash.controls["arrival_rate"].value = 2.0  # shown from memory: the banner comes back
    assert dash.cache_hits == 1 and "simcomm-warning" in dash.banner.value
    assert dash.warnings and dash.warnings[0].startswith("overloaded")


def test_the_summary_names_the_busiest_resource_and_what_availability_counts() -> None:
    from simcomm.result import SUMMARY_HELP

    dash = explore("chain", until=20.0, views=("latency_over_time",))
    text = dash.result.bottleneck()["text"]
    assert f"Busiest resource: {text}" in dash.summary.value.replace("&#x27;", "'")
    assert "availability*" in dash.summary.value
    assert f"* availability = {SUMMARY_HELP['availability']}" in dash.summary.value
    # every number carries its meaning as a tooltip
    assert f"title='{SUMMARY_HELP['p99']}'" in dash.summary.value
    assert "data-key='pending_share'" in dash.summary.value


def test_a_rerun_redraws_the_same_figures() -> None:
    """Re-running draws into the figures the dashboard keeps (their artists are
    updated, nothing is added); a chain of another depth gets new ones."""
    dash = explore("chain", until=20.0, views=("latency_over_time", "pool_usage"))
    figs = dict(dash._figures)
    pool = figs["pool_usage"]
    busy = [p for ax in pool.axes for p in ax.patches if p.get_gid() == "busy"]
    png = bytes(dash.images["pool_usage"].value)
    dash.controls["seed"].value = 3
    assert dash._figures == figs  # the same Figure objects...
    assert [p for ax in pool.axes for p in ax.patches if p.get_gid() == "busy"] == busy
    assert bytes(dash.images["pool_usage"].value) != png  # ...showing the new run
    fresh = _render.draw_view("pool_usage", dash.result)
    # exactly what a figure drawn from scratch holds, and looks the same
    assert [len(ax.get_children()) for ax in pool.axes] == [
        len(ax.get_children()) for ax in fresh.axes]
    assert bytes(dash.images["pool_usage"].value) == _render.png_bytes(fresh)
    dash.controls["depth"].value = 4
    assert dash._figures["pool_usage"] is not pool
    assert len(dash._figures["pool_usage"].axes) == 2 * 5  # gateway + 4, each with a queue
    assert _leaked_figures() == []
    dash.close()
    assert dash._figures == {}


def test_the_glyph_caching_canvas_draws_exactly_what_agg_draws() -> None:
    """Texts drawn again at the same place come from memory, pixel for pixel."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from simcomm import viz
    from simcomm.widgets._agg import SUPPORTED, GlyphCachingCanvas

    runs = [simcomm.run("chain", seed=s, until=30) for s in (0, 1)]
    for name in ("latency_over_time", "pool_usage", "sequence_diagram"):
        cached = plain = None
        for res in runs:
            cached = viz.redraw(name, res, cached)
            plain = viz.redraw(name, res, plain)
            canvas = (cached.canvas if isinstance(cached.canvas, GlyphCachingCanvas)
                      else GlyphCachingCanvas(cached))
            canvas.draw()
            reference = FigureCanvasAgg(plain)
            reference.draw()
            assert np.array_equal(np.asarray(canvas.buffer_rgba()),
                                  np.asarray(reference.buffer_rgba())), name
        if SUPPORTED and name != "sequence_diagram":  # (its labels move with the times)
            # the second run found many of its texts where the first left them
            assert canvas.renderer.hits > canvas.renderer.misses / 2, name


def test_bad_arguments_fail_before_anything_runs() -> None:
    with pytest.raises(ParamError, match="servers"):
        explore("mmc", servers=0)
    with pytest.raises(ParamError, match="views"):
        explore("mmc", views=("no_such_view",))
    with pytest.raises(ParamError, match="until"):
        explore("mmc", until=-1)
    with pytest.raises(ParamError, match="scenario"):
        explore("no_such_scenario")


def _stable_mmc() -> base.Scenario:
    """mmc with a cross-field check: the queue must be stable (lambda < c mu)."""

    def check(p: Any) -> None:
        if p.arrival_rate >= p.servers * p.service_rate:
            raise ParamError("arrival_rate", p.arrival_rate,
                             f"less than servers * service_rate = {p.servers * p.service_rate:g}")

    return dataclasses.replace(mmc.SCENARIO, name="mmc-stable", check=check)


def test_a_cross_field_error_is_shown_not_raised() -> None:
    dash = explore(_stable_mmc(), **FAST)
    good = dash.result
    dash.controls["arrival_rate"].value = 5.0  # each control alone allows it
    assert dash.runs == 1 and dash.result is good
    assert dash.error is not None and "arrival_rate" in dash.error
    assert "arrival_rate" in dash.message.value and "simcomm-error" in dash.message.value
    dash.controls["servers"].value = 8  # now 5 < 8: fine again
    assert dash.runs == 2 and dash.error is None and dash.message.value == ""
    assert dash.params.arrival_rate == 5.0 and dash.params.servers == 8


def test_a_failing_view_is_reported_in_the_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    dash = explore("mmc", **FAST)

    def broken(name: str, res: Any, **kw: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(_render, "draw_view", broken)
    dash.controls["servers"].value = 2
    assert dash.runs == 2 and dash.params.servers == 2  # the run and its numbers stand
    assert dash.error is not None and "boom" in dash.error and "boom" in dash.message.value


def test_progress_bar_shows_during_a_long_run_and_hides_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    dash = explore("mmc", **FAST)
    seen: list[tuple[float, str]] = []
    dash.progress.observe(lambda ch: seen.append((ch["new"], dash.progress.layout.visibility)),
                          names="value")
    monkeypatch.setattr(dashboard_module, "PROGRESS_AFTER", 0.0)  # every run is "long"
    dash.controls["seed"].value = 1
    assert seen and seen[-1][0] == 1.0
    assert [v for _, v in seen][1:] == ["visible"] * (len(seen) - 1)
    assert dash.progress.layout.visibility == "hidden"


def test_top_level_import_does_not_load_ipywidgets() -> None:
    code = "import sys, simcomm; sys.exit('ipywidgets' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -- the partial-failure scenarios -----------------------------------------------
#: The gateway with every protection the book names (issue 7).
PROTECTED: dict[str, Any] = {"call_timeout": 1.0, "order_bulkhead": 4,
                             "breaker": "resilience4j", "fallback": "value"}


@pytest.mark.parametrize("name, knobs", [
    ("gateway", {"call_timeout": 1.0, "breaker": "consecutive"}),
    ("retry-storm", {"retry_backoff": "full_jitter"}),
])
def test_the_resilience_scenarios_show_every_knob_and_rerun_on_a_change(
        name: str, knobs: dict[str, Any]) -> None:
    sc = base.get(name)
    dash = explore(name, until=30.0)
    # every policy knob is a Params field, so it is a control of its own kind
    assert set(dash.controls) == {s.name for s in sc.fields()} | {"seed", "until"}
    for spec in sc.fields():
        control = dash.controls[spec.name]
        if spec.choices:
            assert isinstance(control, widgets.Dropdown)
            assert tuple(control.options) == spec.choices
        assert control.value == spec.default
    assert dash.views == sc.views and dash.error is None
    assert all(bytes(img.value).startswith(PNG) for img in dash.images.values())
    figs = dict(dash._figures)
    before = {v: bytes(img.value) for v, img in dash.images.items()}
    summary = dash.summary.value
    name_of_first = next(iter(knobs))
    dash.controls[name_of_first].value = knobs[name_of_first]  # one control: one run
    assert dash.runs == 2 and dash.error is None
    dash.update(**knobs)
    assert dash.error is None
    assert all(getattr(dash.params, k) == v for k, v in knobs.items())
    assert dash._figures == figs  # the same figures, redrawn in place
    assert all(bytes(dash.images[v].value) != before[v] for v in dash.views)
    assert dash.summary.value != summary
    assert _leaked_figures() == []


# -- the messaging scenarios -------------------------------------------------------
@pytest.mark.parametrize("name, knobs", [
    ("styles", {"style": "request-async-response", "transport": "brokerless"}),
    ("create-order", {"design": "async"}),
    ("brokers", {"transport": "brokerless"}),
    ("competing-consumers", {"prefetch": 0, "slow_consumer": 4.0}),
])
def test_the_messaging_scenarios_show_every_knob_and_rerun_on_a_change(
        name: str, knobs: dict[str, Any]) -> None:
    """Every messaging scenario is in explore: a control per knob, its views drawn,
    a re-run when a knob moves, and the messaging numbers in the summary (a run of
    messages alone shows no row of request zeros)."""
    sc = base.get(name)
    dash = explore(name, until=30.0)
    assert set(dash.controls) == {s.name for s in sc.fields()} | {"seed", "until"}
    assert dash.views == sc.views and dash.error is None
    assert all(bytes(img.value).startswith(PNG) for img in dash.images.values())
    before = {v: bytes(img.value) for v, img in dash.images.items()}
    dash.update(**knobs)
    assert dash.error is None and dash.runs == 2
    assert all(getattr(dash.params, k) == v for k, v in knobs.items())
    assert any(bytes(dash.images[v].value) != before[v] for v in dash.views)
    summary = dash.summary.value
    if name in ("brokers", "competing-consumers"):
        assert "data-key='messages_published'" in summary
        assert "data-key='requests'" not in summary
    else:
        assert "data-key='requests'" in summary
    assert _leaked_figures() == []


def test_the_summary_adds_the_resilience_numbers_only_when_a_run_has_them() -> None:
    plain = explore("chain", until=20.0, views=("latency_over_time",))
    for key in ("fallback", "success_rate", "retries", "breaker_opens", "max_amplification"):
        assert f"data-key='{key}'" not in plain.summary.value
    dash = explore("gateway", until=45.0, views=("breaker_states",), **PROTECTED)
    for key in ("fallback", "success_rate", "breaker_opens"):
        assert f"data-key='{key}'" in dash.summary.value, key
    storm = explore("retry-storm", until=40.0, views=("load_vs_goodput",))
    assert "data-key='retries'" in storm.summary.value
    assert "data-key='max_amplification'" in storm.summary.value


def test_compare_gateway_unprotected_against_protected() -> None:
    """The book's cascade and its cure, side by side on shared scales."""
    cmp = compare("gateway", a={}, b=PROTECTED, until=45.0)
    assert cmp.views == base.get("gateway").views
    for view, sides in cmp.limits.items():
        assert sides["a"] == sides["b"] and len(sides["a"]) > 0, view
    for side in ("a", "b"):
        assert all(bytes(img.value).startswith(PNG) for img in cmp.images[side].values())
    sa, sb = cmp.summaries["a"], cmp.summaries["b"]
    assert sa["availability"] < 0.8 < 0.99 < sb["availability"]
    assert cmp.difference["availability"] == pytest.approx(sb["availability"] - sa["availability"])
    html = cmp.children[-1].value  # B has fallbacks and breaker openings: rows for them
    assert ">fallback<" in html and ">breaker opens<" in html and ">ok only" in html
    assert "breaker opens" in cmp.heads["b"].value
    assert _leaked_figures() == []


# -- compare ----------------------------------------------------------------------
def test_compare_shares_axis_limits_and_reports_the_difference() -> None:
    cmp = simcomm.compare("mmc", a={"servers": 1}, b={"servers": 2, "arrival_rate": 1.5},
                          until=300.0)
    assert isinstance(cmp, Comparison)
    assert cmp.params["a"].servers == 1 and cmp.params["b"].servers == 2
    assert set(cmp.limits) == set(mmc.SCENARIO.views)
    for name, sides in cmp.limits.items():
        assert sides["a"], name  # every view has axes with scales
        assert sides["a"] == sides["b"], name
    # the shared limits contain what each side would have drawn on its own
    for side in ("a", "b"):
        own = _render.axes_limits(_render.draw_view("latency_over_time", cmp.results[side]))
        for (sx, sy), (ox, oy) in zip(cmp.limits["latency_over_time"][side], own, strict=True):
            assert sx[0] <= ox[0] and sx[1] >= ox[1] and sy[0] <= oy[0] and sy[1] >= oy[1]
    sa, sb = cmp.summaries["a"], cmp.summaries["b"]
    assert cmp.difference["p50"] == pytest.approx(sb["p50"] - sa["p50"])
    assert cmp.difference["requests"] == sb["requests"] - sa["requests"]
    html = cmp.children[-1].value
    assert "simcomm-difference" in html and "B − A" in html
    for side in ("a", "b"):
        assert all(bytes(img.value).startswith(PNG) for img in cmp.images[side].values())
    assert _leaked_figures() == []


def test_compare_pairs_panels_in_order_and_shares_a_log_scale() -> None:
    # B hangs: its latencies span decades and viz draws them on a log scale; B also
    # has two more services, so two more worker-pool panels than A
    cmp = compare("chain", a={"depth": 2}, b={"depth": 4, "last_service_hangs": True,
                                              "hang_at": 10.0},
                  until=40.0, views=("latency_over_time", "pool_usage"))
    lat = cmp.limits["latency_over_time"]
    assert lat["a"] == lat["b"] and lat["a"][0][1][0] > 0  # log: a positive lower limit
    # each pool row is two axes: busy workers, then the queue's own scale
    pools_a, pools_b = cmp.limits["pool_usage"]["a"], cmp.limits["pool_usage"]["b"]
    assert len(pools_b) == len(pools_a) + 2 * 2
    assert pools_b[: len(pools_a)] == pools_a  # gateway with gateway, order with order...
    # the hung chain's gateway queue sets the scale of both gateways' queues
    own = _render.axes_limits(_render.draw_view("pool_usage", cmp.results["a"]))
    assert pools_a[1][1][1] > own[1][1][1]
    assert pools_a[0] == own[0]  # while busy workers keep the scale of their pool


def test_compare_shows_each_runs_banner() -> None:
    cmp = compare("mmc", a={"arrival_rate": 0.5}, b={"arrival_rate": 2.0}, until=300.0,
                  views=("latency_over_time",))
    assert cmp.warnings["a"] == [] and cmp.warnings["b"]
    assert "simcomm-warning" not in cmp.heads["a"].value
    assert "simcomm-warning" in cmp.heads["b"].value and "overloaded" in cmp.heads["b"].value
    both = compare("mmc", a={"arrival_rate": 2.0}, b={"arrival_rate": 3.0}, until=300.0,
                   views=("latency_over_time",))
    assert all("simcomm-warning" in h.value for h in both.heads.values())
    for side in ("a", "b"):
        assert "Busiest resource: server-1" in both.heads[side].value
        assert "* availability = " in both.heads[side].value


def test_compare_checks_both_settings_first() -> None:
    with pytest.raises(ParamError, match="servers"):
        compare("mmc", a={"servers": 1}, b={"servers": 0})


def test_unify_limits_keeps_inverted_axes_inverted() -> None:
    from matplotlib.figure import Figure

    f1, f2 = Figure(), Figure()
    a1, a2 = f1.add_subplot(), f2.add_subplot()
    a1.set_ylim(10, 0)
    a2.set_ylim(5, -1)
    a1.set_xlim(0, 1)
    a2.set_xlim(0.5, 3)
    _render.unify_limits([f1, f2])
    assert a1.get_ylim() == a2.get_ylim() == (10, -1)
    assert a1.get_xlim() == a2.get_xlim() == (0, 3)


# -- playback ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def hung_chain() -> simcomm.Result:
    return simcomm.run("chain", seed=1, until=60.0, last_service_hangs=True, hang_at=20.0,
                       hang_duration=20.0, service_availability=1.0)


def test_playback_slider_spans_the_run_and_is_linked_to_play(hung_chain: Any) -> None:
    pb = simcomm.playback(hung_chain, steps=30)
    assert isinstance(pb, Playback)
    assert (pb.slider.min, pb.slider.max) == (0.0, 60.0)
    assert pb.play.min == 0.0 and pb.play.max == pytest.approx(60.0)
    assert pb.slider.step == pb.play.step == pytest.approx(2.0)
    assert isinstance(pb.link, widgets.widget_link.Link)
    assert pb.link.source == (pb.play, "value") and pb.link.target == (pb.slider, "value")
    assert pb.time == 0.0 and bytes(pb.image.value).startswith(PNG)
    pb.close()


def test_moving_the_time_slider_redraws_and_says_what_happened(hung_chain: Any) -> None:
    pb = playback(hung_chain, steps=30)
    start = bytes(pb.image.value)
    pb.slider.value = 20.0  # the hang starts
    assert pb.time == 20.0 and pb.frames_drawn == 2
    assert bytes(pb.image.value) != start
    assert "hang" in pb.text.value and "kitchen-1" in pb.text.value
    assert pb.health(30.0)["kitchen-1"] == "hung"
    pb.slider.value = 33.5  # snaps to the nearest step: 34 s
    assert pb.time == pytest.approx(34.0)
    assert "hung" in pb.text.value
    pb.slider.value = 0.0  # a frame seen before comes from the cache
    assert pb.frames_drawn == 3 and bytes(pb.image.value) == start and pb.redraws == 4
    assert pb.play.interval >= 250  # never faster than frames can be drawn
    assert _leaked_figures() == []
    pb.close()


def test_playback_runs_a_scenario_by_name() -> None:
    pb = playback("mmc", seed=3, until=100.0, steps=10, servers=2)
    assert pb.result.params.servers == 2 and pb.result.seed == 3
    assert pb.slider.max == 100.0 and pb.slider.step == 10.0
    with pytest.raises(ParamError):
        playback(pb.result, servers=3)
    with pytest.raises(ParamError, match="steps"):
        playback(pb.result, steps=0)
    with pytest.raises(ParamError, match="steps"):
        playback(pb.result, steps=True)
    import numpy as np

    assert Playback(pb.result, steps=np.int64(5)).steps == 5  # a numpy count is a count
    pb.close()


def test_playback_refuses_a_bad_colouring_before_running_the_scenario(monkeypatch) -> None:
    pb_module = sys.modules["simcomm.widgets.playback"]  # the module, not the function
    ran = []
    monkeypatch.setattr(pb_module, "run", lambda *a, **k: ran.append(a))
    with pytest.raises(ParamError) as info:
        playback("chain", color_by="rainbow")
    assert info.value.field == "color_by" and not ran
