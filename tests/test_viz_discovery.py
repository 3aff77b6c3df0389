"""Figures of service discovery (issue 10 item 7): the instance timeline, calls to
dead instances over time, and the load share per instance and per balancer.

Each figure is checked against a run whose trace tables are written by hand
in the shapes the contract gives (``trace.events``, ``trace.discovery``,
``trace.routes``), so every interval, stale call and lag is known: what the
figure draws -- rectangles, lines, titles -- is held to those numbers.  The
story of the hand-built run (a gateway calling three order instances by
round robin, a Eureka-like registry):

* ``order-1`` serves throughout;
* ``order-2`` crashes at 60 s without a cancel; the registry evicts it at
  210 s, the caller's view hides it at 250 s: its last call is sent just
  before 250 s, so its detection lag is about 190 s;
* ``order-3`` shuts down cleanly: the drain begins at 150 s (cancel at
  once, hidden at 190 s) and it stops at 210 s: no stale call, lag 0;
* ``order-4`` is launched at 100 s, starts at 105 s, registers then and is
  visible from 140 s.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
from typing import Any

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import StepPatch

from simcomm import viz
from simcomm.engine import World
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.viz import discovery as vd

VIEWS = ("instance_timeline", "stale_calls_over_time", "load_share")
UNTIL = 300.0
STEP = 0.25  # the gateway sends a call every STEP seconds

#: (time, node, event, detail) -- the instances' lives.
EVENTS = [(60.0, "order-2", "crash", ""), (100.0, "order-4", "launch", "starts at 105"),
          (105.0, "order-4", "start", ""), (150.0, "order-3", "drain", "60"),
          (210.0, "order-3", "stop", "")]
#: (time, event, node, service, instance, detail) -- the registry and the view.
DISCOVERY = [
    *[(0.0, "register", "eureka-1", "order", f"order-{i}", "self") for i in (1, 2, 3)],
    *[(0.0, "visible", "api-gateway-1", "order", f"order-{i}", "") for i in (1, 2, 3)],
    (105.0, "register", "eureka-1", "order", "order-4", "self"),
    (140.0, "visible", "api-gateway-1", "order", "order-4", ""),
    (150.0, "cancel", "eureka-1", "order", "order-3", ""),
    (190.0, "hidden", "api-gateway-1", "order", "order-3", ""),
    (210.0, "evict", "eureka-1", "order", "order-2", "expired"),
    (250.0, "hidden", "api-gateway-1", "order", "order-2", ""),
]


def _visible(t: float) -> list[str]:
    """The gateway's view at ``t`` (sorted names), as DISCOVERY says."""
    seen: set[str] = set()
    for row in DISCOVERY:
        if row[0] > t or row[2] != "api-gateway-1":
            continue
        (seen.add if row[1] == "visible" else seen.discard)(row[4])
    return sorted(seen)


def _serving(name: str, t: float) -> bool:
    if name == "order-2":
        return t < 60.0
    if name == "order-3":
        return t < 210.0
    if name == "order-4":
        return t >= 105.0
    return True


def _routes(slow: str | None = None, rule: str = "round_robin") -> list[tuple[Any, ...]]:
    """(time, trace_id, caller, service, instance, via, attempt, outcome, end): one
    call every STEP s by ``rule`` over the view; a dead instance resets the call."""
    rows = []
    counter = itertools.count()
    outstanding: dict[str, list[float]] = {}
    for i, t in enumerate(np.arange(0.0, UNTIL, STEP).tolist()):
        view = _visible(t)
        if rule == "round_robin":
            inst = view[next(counter) % len(view)]
        else:  # least outstanding: fewest calls not yet answered, first in order
            inst = min(view, key=lambda n: sum(e > t for e in outstanding.get(n, [])))
        latency = (2.0 if inst == slow else 0.02)
        ok = _serving(inst, t)
        end = t + (latency if ok else 0.001)
        outstanding.setdefault(inst, []).append(end)
        rows.append((t, i, "api-gateway-1", "order", inst, "client", 1,
                     "ok" if ok else "reset", end))
    return rows


@functools.cache
def _result(*, trace: bool = True, slow: str | None = None, rule: str = "round_robin",
            until: float = UNTIL, events: tuple[tuple[Any, ...], ...] = ()) -> Result:
    """The hand-built run (one per set of arguments: the figures only read it)."""
    w = World(seed=0, trace=trace)
    w.run(until)
    w.trace.events.extend(sorted([*EVENTS, *events], key=lambda r: r[0]))
    if slow is not None:
        w.trace.events.append((0.0, slow, "slowdown", "x4"))
        w.trace.events.sort(key=lambda r: r[0])
    if trace:
        w.trace.discovery.extend(DISCOVERY)
    w.trace.routes.extend(_routes(slow, rule))
    return Result(w)


@pytest.fixture(scope="module")
def res() -> Result:
    return _result()


def _gid(fig: Figure, prefix: str, kind: type = object) -> list[Any]:
    return [a for ax in fig.axes for a in ax.get_children()
            if isinstance(a, kind) and (a.get_gid() or "").startswith(prefix)]


def _rects(coll: PolyCollection) -> list[tuple[float, float, float, float]]:
    """(x0, x1, y0, y1) of each rectangle of a collection."""
    out = []
    for path in coll.get_paths():
        v = path.vertices
        out.append((float(v[:, 0].min()), float(v[:, 0].max()), float(v[:, 1].min()),
                    float(v[:, 1].max())))
    return sorted(out)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def _texts(fig: Figure) -> str:
    out = []
    for ax in fig.axes:
        out += [ax.get_title(loc=loc) for loc in ("left", "right")]
        out += [t.get_text() for t in ax.texts]
        leg = ax.get_legend()
        if leg is not None:
            out += [t.get_text() for t in leg.get_texts()]
    return "\n".join(out)


# -- the tables ------------------------------------------------------------------------
def test_timeline_intervals_hold_the_story(res: Result) -> None:
    """Each layer's stretches are the events, the registry's and the view's rows."""
    iv = vd.timeline_intervals(res)
    got = {(r.instance, r.layer, r.state, r.start, r.end) for r in iv.itertuples()}
    last = max(r[0] for r in _routes() if r[4] == "order-2" and r[0] >= 60)
    assert last == 249.25  # the view hides it at 250 s
    assert got == {
        ("order-1", "process", "serving", 0.0, UNTIL),
        ("order-1", "registered", "registered", 0.0, UNTIL),
        ("order-1", "visible", "visible", 0.0, UNTIL),
        ("order-2", "process", "serving", 0.0, 60.0),
        ("order-2", "process", "down", 60.0, UNTIL),
        ("order-2", "registered", "registered", 0.0, 210.0),
        ("order-2", "visible", "visible", 0.0, 250.0),
        ("order-2", "lag", "crash", 60.0, last),
        ("order-3", "process", "serving", 0.0, 150.0),
        ("order-3", "process", "draining", 150.0, 210.0),
        ("order-3", "process", "stopped", 210.0, UNTIL),
        ("order-3", "registered", "registered", 0.0, 150.0),
        ("order-3", "visible", "visible", 0.0, 190.0),
        ("order-4", "process", "starting", 100.0, 105.0),
        ("order-4", "process", "serving", 105.0, UNTIL),
        ("order-4", "registered", "registered", 105.0, UNTIL),
        ("order-4", "visible", "visible", 140.0, UNTIL),
    }
    # launch order, then layers in drawing order
    assert iv["instance"].tolist()[:3] == ["order-1"] * 3


def test_the_lag_row_is_the_results_detection(res: Result) -> None:
    det = res.detection()
    crash = det[det["kind"] == "crash"].iloc[0]
    iv = vd.timeline_intervals(res)
    lag = iv[iv["layer"] == "lag"]
    assert len(lag) == 1  # the clean stop had no stale call: no band
    assert lag.iloc[0]["end"] - lag.iloc[0]["start"] == pytest.approx(crash["lag"])
    assert det.loc[det["kind"] == "stop", "lag"].tolist() == [0.0]


def test_stale_series_counts_every_stale_call_once(res: Result) -> None:
    s = vd.stale_series(res)
    bin_ = s.attrs["bin"]
    assert bin_ == 5.0  # a nice step near a sixtieth of the run
    routes = res.routes
    assert s.attrs["stale_calls"] == int(routes["stale"].sum()) == \
        res.summary()["stale_calls"] == 237  # 60 s to 250 s, a third then a quarter
    assert (s["stale"] * bin_).sum() == pytest.approx(237)
    assert (s["down"] * bin_).sum() == pytest.approx(237)  # all of them to a crashed one
    assert s[["hung", "starting", "stopped"]].to_numpy().sum() == 0
    assert (s["calls"] * bin_).sum() == pytest.approx(len(routes)) and len(routes) == 1200
    assert s.loc[: 55.0, "stale"].sum() == 0 and s.loc[250.0:, "stale"].sum() == 0
    # while three are visible, one call in three goes to the dead one: 4 calls/s / 3
    assert s.loc[100.0, "down"] == pytest.approx(1.4, abs=0.21)
    assert s["no_instance"].sum() == 0


def test_load_shares_add_up(res: Result) -> None:
    sh = vd.load_shares(res)
    assert sh["instance"].tolist() == ["order-1", "order-2", "order-3", "order-4"]
    assert sh["calls"].sum() == sh.attrs["calls"] == 1200
    assert sh["share"].sum() == pytest.approx(1.0)
    assert (sh["ok"] + sh["failed"]).tolist() == sh["calls"].tolist()
    assert sh.set_index("instance").loc["order-2", "failed"] == 237
    # fair: each call split among those serving when it was sent -- 0-60 s: three
    # (240 calls), 60-105 s: order-1 and order-3 (180), 105-210 s: three again, order-3
    # draining (420), 210-300 s: order-1 and order-4 (360)
    assert (sh["fair"] * 1200).tolist() == pytest.approx([490, 80, 310, 320])
    assert sh["share"].iloc[1] > 3 * sh["fair"].iloc[1]  # the dead one got far more
    assert sh["slowdown"].tolist() == [1.0] * 4
    assert sh["mean_latency"].tolist() == pytest.approx([0.02] * 4)


# -- the figures against the tables ---------------------------------------------------
def test_the_timeline_draws_each_stretch_where_the_table_puts_it(res: Result) -> None:
    fig = vd.instance_timeline(res)
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["order-1", "order-2", "order-3", "order-4"]
    iv = vd.timeline_intervals(res)
    for layer, prefix in (("process", "state:"), ("registered", "band:registered"),
                          ("visible", "band:visible"), ("lag", "lag")):
        sub = iv[iv["layer"] == layer]
        drawn = [r for c in _gid(fig, prefix, PolyCollection) for r in _rects(c)]
        got = sorted((x0, x1) for x0, x1, _y0, _y1 in drawn)
        want = sorted(zip(sub["start"], sub["end"], strict=True))
        assert np.array(got) == pytest.approx(np.array(want))
    down = _rects(_gid(fig, "state:down", PolyCollection)[0])
    assert down[0][2] > 0.5 and down[0][3] < 1.5  # on order-2's row
    # the lag band is hatched, over the crashed bar, and its length is written at its end
    (lag,) = _gid(fig, "lag", PolyCollection)
    assert lag.get_hatch() == "////"
    assert "lag 189 s" in _texts(fig)
    title = ax.get_title(loc="left")
    assert title == "order-2 kept receiving calls for 189 s after its crash"
    assert "detection lag 94.6 s (mean of 2 deaths)" in _texts(fig)
    assert "237 stale calls" in _texts(fig)
    # churn markers at the events
    marks = {a.get_gid(): a for a in _gid(fig, "churn:", Line2D)}
    assert set(marks) == {"churn:crash", "churn:launch", "churn:drain", "churn:stop"}
    assert list(marks["churn:crash"].get_xdata()) == [60.0]
    assert list(marks["churn:stop"].get_xdata()) == [210.0]


def test_the_stale_area_is_the_stale_series(res: Result) -> None:
    s = vd.stale_series(res)
    plain = vd.stale_calls_over_time(res)  # by default the scale is the stale calls'
    assert _gid(plain, "calls") == [] and plain.axes[0].get_ylim()[1] < s["calls"].max()
    assert "all routed calls: 4/s on average" in _texts(plain)
    fig = vd.stale_calls_over_time(res, total=True)
    (area,) = _gid(fig, "stale:down", StepPatch)
    values, edges, _baseline = area.get_data()
    assert values == pytest.approx(s["down"].to_numpy())
    assert edges[-1] == UNTIL
    assert _gid(fig, "stale:hung") == []  # nothing hung: no area
    (total,) = _gid(fig, "calls", StepPatch)
    assert total.get_data()[0] == pytest.approx(s["calls"].to_numpy())
    (deaths,) = _gid(fig, "deaths", Line2D)
    assert [x for x in deaths.get_xdata() if not math.isnan(x)] == [60.0, 60.0, 210.0, 210.0]
    assert fig.axes[0].get_title(loc="left") == (
        "237 calls went to instances that could not answer (19.8 % of 1200)")
    assert "✕ order-2" in _texts(fig) and "■ order-3" in _texts(fig)
    (lags,) = _gid(fig, "lags", Line2D)  # the crash's lag as a bracket; the stop had none
    assert [x for x in lags.get_xdata() if not math.isnan(x)] == [60.0, 249.25]
    assert "lag 189 s" in _texts(fig)
    assert fig.axes[0].get_ylim()[1] >= s["calls"].max()


def test_load_share_bars_are_the_shares(res: Result) -> None:
    fig = vd.load_share(res)
    sh = vd.load_shares(res)
    ok = _rects(_gid(fig, "share:ok", PolyCollection)[0])
    failed = _rects(_gid(fig, "share:failed", PolyCollection)[0])
    assert [y1 for *_, y1 in ok] == pytest.approx(list(100 * sh["ok"] / 1200))
    assert [y1 for *_, y1 in failed] == pytest.approx(list(100 * sh["share"]))
    (fair,) = _gid(fig, "fair", Line2D)  # a dash across each bar at its fair share
    ys = [y for y in fair.get_ydata() if not math.isnan(y)]
    assert ys == pytest.approx([v for f in sh["fair"] for v in (100 * f, 100 * f)])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == sh["instance"].tolist()


def test_least_outstanding_shows_less_load_on_the_slow_instance() -> None:
    """The comparison's point: round robin gives a slowed instance its full
    share, a least-outstanding rule routes around it; the slow one is named."""
    rr, lo = _result(slow="order-1"), _result(slow="order-1", rule="least_outstanding")
    share = {name: vd.load_shares(r).set_index("instance")["share"]
             for name, r in (("rr", rr), ("lo", lo))}
    assert share["lo"]["order-1"] < share["rr"]["order-1"] / 2
    fig = vd.load_share_comparison({"round_robin": rr, "least_outstanding": lo})
    for j, name in enumerate(("rr", "lo")):
        bars = _rects(_gid(fig, f"run{j}:ok", PolyCollection)[0])
        assert [y1 for *_, y1 in sorted(bars)] == pytest.approx(list(100 * share[name]))
    ticks = fig.axes[0].get_xticklabels()
    assert ticks[0].get_text() == "order-1\nslowed ×4"
    assert ticks[0].get_color() == viz.OKABE_ITO["orange"]
    legend = _texts(fig)
    assert "round_robin: " in legend and "least_outstanding: " in legend
    for name in ("rr", "lo"):  # the slowed instance's shares written on its bars
        assert f"{100 * share[name]['order-1']:.3g}" in legend.split("\n")
    # the slow instance marked in a single run's figure too
    assert vd.load_share(lo).axes[0].get_xticklabels()[0].get_text() == "order-1\nslowed ×4"


# -- every view: registration, empty runs, the trace, redraws, arguments ------------------
def test_the_views_are_registered_and_exported() -> None:
    for name in VIEWS:
        assert viz.VIEWS[name] is getattr(viz, name) is getattr(vd, name)
    for name in ("load_share_comparison", "timeline_intervals", "stale_series", "load_shares"):
        assert getattr(viz, name) is getattr(vd, name)
        assert name in viz.__all__ and name in (viz.__doc__ or "")


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_says_what_it_cannot_show_for_a_run_without_discovery(view: str) -> None:
    w = World(seed=0)
    w.run(10.0)
    fig = viz.view(view, Result(w))
    assert fig.axes[0].get_title(loc="left")
    assert "in this run" in _texts(fig).replace("\n", " ")
    _png(fig)


def test_without_the_trace_the_bars_and_the_lag_stay_the_bands_go() -> None:
    bare = _result(trace=False)
    fig = vd.instance_timeline(bare)
    assert _gid(fig, "band:") == []
    assert _gid(fig, "state:down") and _gid(fig, "lag")
    assert "trace=True" in _texts(fig)
    assert vd.stale_series(bare).attrs["stale_calls"] == 237  # routes are always kept


def test_rows_picked_by_name_and_capped() -> None:
    res = _result()
    fig = vd.instance_timeline(res, instances=["order-2"])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["order-2"]
    capped = vd.instance_timeline(res, max_rows=2)
    rows = [t.get_text() for t in capped.axes[0].get_yticklabels()]
    assert rows == ["order-2", "order-3"]  # those that died come first, in launch order
    assert "2 of 4 instances" in _texts(capped)


@pytest.mark.parametrize("view", VIEWS)
def test_redraw_in_place_looks_like_a_fresh_figure(view: str) -> None:
    first, second = _result(), _result(slow="order-1", rule="least_outstanding")
    fig = viz.redraw(view, first)
    assert viz.redraw(view, second, fig) is fig
    fresh = viz.redraw(view, second)
    assert [len(ax.get_children()) for ax in fig.axes] == [
        len(ax.get_children()) for ax in fresh.axes]
    assert _png(fig) == _png(fresh)
    assert _png(viz.redraw(view, first, fig)) == _png(viz.redraw(view, first))


@pytest.mark.parametrize(("call", "field"), [
    (lambda r: vd.instance_timeline(r, max_rows=0), "max_rows"),
    (lambda r: vd.instance_timeline(r, max_rows=True), "max_rows"),
    (lambda r: vd.instance_timeline(r, instances=["order-9"]), "instances"),
    (lambda r: vd.instance_timeline(r, instances=[]), "instances"),
    (lambda r: vd.instance_timeline(r, markers="yes"), "markers"),
    (lambda r: vd.stale_calls_over_time(r, bin=0), "bin"),
    (lambda r: vd.stale_calls_over_time(r, total=1), "total"),
    (lambda r: vd.stale_calls_over_time(r, faults=None), "faults"),
    (lambda r: vd.instance_timeline(r, faults="no"), "faults"),
    (lambda r: vd.stale_series(r, bin=-1.0), "bin"),
    (lambda r: vd.load_share_comparison({}), "results"),
    (lambda r: vd.load_share_comparison({"a": "not a result"}), "results"),
    (lambda r: vd.load_share_comparison([r]), "results"),
])
def test_bad_arguments_name_their_field(res: Result, call: Any, field: str) -> None:
    with pytest.raises(ParamError) as err:
        call(res)
    assert err.value.field == field


# -- a real run: Eureka, a fleet with churn, a gateway with a discovery client --------------
@pytest.fixture(scope="module")
def eureka() -> Result:
    """Four self-registered order instances behind a Eureka server; the gateway's
    discovery client (Eureka client + Ribbon, round robin) calls them.  orders-2
    crashes at 150 s without a cancel (replaced 30 s later on a new address);
    orders-3 shuts down cleanly at 300 s with a 60 s drain."""
    from simcomm.discovery.balancers import balancer
    from simcomm.discovery.churn import Fleet
    from simcomm.discovery.client import DiscoveryClient
    from simcomm.discovery.eureka import EurekaRegistration, EurekaServer, EurekaView
    from simcomm.engine import Instance, OpenLoop

    w = World(seed=3)
    EurekaServer(w, "eureka-1")
    fleet = Fleet(w, "orders", instances=4, registration=EurekaRegistration(w, "eureka-1"),
                  startup=5.0, service_time=0.01)
    gw = Instance(w, "gateway-1", service="gateway", workers=50)
    client = DiscoveryClient(w, gw, "orders", EurekaView(w, gw, "eureka-1", "orders"),
                             balancer("round_robin"))

    def handler(ctx: Any, request: Any) -> Any:
        return (yield from client.call(ctx, {"op": "order"}))

    gw.handler = handler
    OpenLoop(w, "users", "gateway-1", 5.0)
    w.at(150.0, lambda: fleet.crash("orders-2", replace_after=30.0))
    w.at(300.0, lambda: fleet.shutdown("orders-3", drain=60.0))
    w.run(600.0)
    return Result(w)


def test_a_real_crash_the_calls_stop_when_the_callers_view_lets_go(eureka: Result) -> None:
    """The figure's lesson on a real run: the registry drops the crashed instance
    (blue band ends at the eviction) before the caller's view does (purple band
    ends later), and the calls -- the lag band -- go on until the view lets go."""
    iv = vd.timeline_intervals(eureka).set_index(["instance", "layer"])
    crash = eureka.detection().set_index("kind").loc["crash"]
    assert crash["instance"] == "orders-2" and crash["died"] == 150.0
    lag = iv.loc[("orders-2", "lag")]
    assert (lag["start"], lag["end"]) == pytest.approx((150.0, 150.0 + crash["lag"]))
    registered_end = iv.loc[("orders-2", "registered"), "end"]
    visible_end = iv.loc[("orders-2", "visible"), "end"]
    assert registered_end < lag["end"] <= visible_end
    assert visible_end - lag["end"] < 5.0  # a call every 0.8 s or so reaches it until then
    summary = eureka.summary()
    assert vd.stale_series(eureka).attrs["stale_calls"] == summary["stale_calls"] > 0
    sh = vd.load_shares(eureka)
    assert sh["calls"].sum() == summary["routed_calls"]
    assert sh["fair"].sum() == pytest.approx(1.0)
    assert "orders-5" in sh["instance"].tolist()  # the replacement, on a new address
    fig = vd.instance_timeline(eureka)
    assert f"lag {crash['lag']:.3g} s" in _texts(fig)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [
        "orders-1", "orders-2", "orders-3", "orders-4", "orders-5"]
    for view in VIEWS:
        _png(viz.view(view, eureka))


def test_deaths_close_together_are_named_on_two_lines_and_launches_at_zero_unmarked() -> None:
    """Two deaths 2 s apart: their names would overlap on one line, so the second
    goes on a line above it, and the title rises over both; the fleet launched at
    time 0 is not churn and gets no marker."""
    res = _result(events=((0.0, "order-1", "launch", "starts at 0"),
                          (0.0, "order-1", "start", ""), (62.0, "order-1", "crash", "")))
    assert sorted(res.detection()["died"].tolist()) == [60.0, 62.0, 210.0]
    fig = vd.stale_calls_over_time(res)
    names = {t.get_text(): t for t in fig.axes[0].texts if t.get_gid().startswith("death:")}
    assert set(names) == {"✕ order-1", "✕ order-2", "■ order-3"}
    lift = {n: t.get_transform().transform((0, 1))[1] for n, t in names.items()}
    assert lift["✕ order-1"] > lift["✕ order-2"] == lift["■ order-3"]
    timeline = vd.instance_timeline(res)
    (launch,) = _gid(timeline, "churn:launch", Line2D)
    assert list(launch.get_xdata()) == [100.0]  # order-4's, not order-1's at 0


def test_labels_titles_and_small_print_stay_clear_and_inside(eureka: Result) -> None:
    """Axis labels are pinned, not measured: they must sit clear of the tick labels
    and inside the figure; a title must end before the small print, both inside."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    slow = _result(slow="order-1")
    figs = [viz.view(name, eureka) for name in VIEWS]
    figs.append(vd.load_share_comparison({"round_robin": slow, "least_outstanding": _result(
        slow="order-1", rule="least_outstanding")}))
    for fig in figs:
        FigureCanvasAgg(fig).draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        small = [t for ax in fig.axes for t in ax.texts
                 if t.get_gid() == "small_print" and t.get_text()]
        for ax in fig.axes:
            for axis, ticks in ((ax.xaxis, ax.get_xticklabels()),
                                (ax.yaxis, ax.get_yticklabels())):
                label = axis.label
                if not (label.get_visible() and label.get_text()):
                    continue
                box = label.get_window_extent(renderer)
                assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, label
                for t in ticks:
                    if t.get_visible() and t.get_text():
                        assert not box.overlaps(t.get_window_extent(renderer))
            for title in (ax.title, ax._left_title):  # type: ignore[attr-defined]
                if not title.get_text():
                    continue
                box = title.get_window_extent(renderer)
                assert box.x1 <= fig.bbox.x1 + 1 and box.y1 <= fig.bbox.y1 + 1, title
                for t in small:
                    assert not box.overlaps(t.get_window_extent(renderer))
                    tb = t.get_window_extent(renderer)
                    assert tb.x1 <= fig.bbox.x1 + 1 and tb.y1 <= fig.bbox.y1 + 1, t
        assert fig.canvas.manager is None  # a bare figure, unknown to pyplot


def test_the_discovery_scenarios_views_draw_its_run() -> None:
    """The scenario's own views on its default story (a crash without cancel behind
    Eureka): the lag drawn is the Result's, the balancer ``auto`` is named as the
    one it stands for (Ribbon's round robin)."""
    import simcomm

    res = simcomm.run("discovery", seed=0, until=300.0, instances=4, progress=False)
    assert res.scenario is not None and set(res.scenario.views) == set(VIEWS)
    det = res.detection()
    crash = det[det["kind"] == "crash"].iloc[0]
    fig = viz.view("instance_timeline", res)
    assert f"lag {crash['lag']:.3g} s" in _texts(fig)
    assert viz.view("load_share", res).axes[0].get_title(loc="left").endswith(
        ": round_robin")
    stale = viz.view("stale_calls_over_time", res)
    assert stale.axes[0].get_title(loc="left").startswith(
        f"{res.summary()['stale_calls']} calls went to instances")


def test_the_registrys_own_outage_is_a_band_behind_both_figures() -> None:
    """A registry crash (a fault of the registry server's node) is drawn behind
    the timeline and the stale calls, from its crash to its restart; the
    instances' own crashes are not (they are the bars)."""
    from simcomm.discovery.eureka import EurekaServer

    w = World(seed=0)
    EurekaServer(w, "eureka-1")
    w.run(UNTIL)
    w.trace.events.extend([(120.0, "eureka-1", "crash", ""), (180.0, "eureka-1", "restart", ""),
                           *EVENTS])
    w.trace.events.sort(key=lambda r: r[0])
    w.trace.discovery.extend(DISCOVERY)
    w.trace.routes.extend(_routes())
    res = Result(w)
    for fig in (vd.instance_timeline(res), vd.stale_calls_over_time(res)):
        (band,) = _gid(fig, "fault:", PolyCollection)
        assert [(x0, x1) for x0, x1, *_ in _rects(band)] == [(120.0, 180.0)]
        assert "registry down (crashed): eureka-1" in _texts(fig).replace("\n  ", " ")
    assert _gid(vd.instance_timeline(res, faults=False), "fault:") == []
    assert "eureka-1" not in vd.timeline_intervals(res)["instance"].tolist()


def test_a_run_without_failed_calls_has_no_failed_bars() -> None:
    w = World(seed=0)
    w.run(10.0)
    w.trace.routes.extend((t, i, "gw-1", "svc", f"svc-{1 + i % 3}", "client", 1, "ok",
                           t + 0.01) for i, t in enumerate(np.arange(0.0, 9.0, 0.3).tolist()))
    fig = vd.load_share(Result(w))
    assert _gid(fig, "share:failed") == []
    assert "not answered ok" not in _texts(fig)
    assert [y1 for *_, y1 in _rects(_gid(fig, "share:ok")[0])] == pytest.approx([100 / 3] * 3)
