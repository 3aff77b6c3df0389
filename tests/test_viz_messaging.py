"""Figures of messaging (issue 8 item 7): queues, flow, sequence with channels,
latency, consumer share, order, availability beside the product formula.

The data each figure draws is checked to the message on a small run built by
hand, whose every event is known (a crash requeues a message, which then comes
out of order); each figure is checked against the run's own tables
(``Result.ordering()``, ``consumer_counts``, the summary), so it cannot drift
from the numbers a learner reads; every view draws for each messaging
scenario's default run and redraws in place.
"""

from __future__ import annotations

import io
import math
from collections.abc import Generator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

import simcomm
from simcomm import viz
from simcomm.engine import World
from simcomm.engine.faults import Crash, install
from simcomm.engine.nodes import Node
from simcomm.errors import ParamError
from simcomm.messaging import Broker, Consumer, publish
from simcomm.result import Result
from simcomm.scenarios import create_order
from simcomm.viz import messaging as vm

NEW_VIEWS = ("queue_depth", "message_flow", "message_sequence", "message_latency",
             "consumer_share", "message_order", "availability_over_time")
SCENARIOS = ("styles", "create-order", "brokers", "competing-consumers")


# -- a run built by hand: every event known ---------------------------------------------
@pytest.fixture(scope="module")
def hand() -> Result:
    """``shop`` publishes, with no network delay:

    * t=0.5 to the direct exchange ``misc``, which has no binding: unroutable;
    * t=1.0, 1.2, 2.1 three messages to the queue ``orders`` (c1 and c2 read
      it, prefetch 1; c1 takes 1 s a message, c2 3 s);
    * t=1.5, 3.0 two events to the fanout ``events``, whose only
      subscription ``audit`` handles each in 0.1 s.

    c1 gets the first (done 2.0) and the third (2.1 to 3.1); c2 gets the
    second and crashes at 2.5 holding it: the broker requeues it, c1 gets it
    redelivered at 3.1 and finishes at 4.1 -- after the third: out of order.
    """
    w = World(seed=0)
    broker = Broker(w)
    orders = broker.point_to_point("orders")
    events = broker.publish_subscribe("events")
    broker.declare_exchange("misc", "direct")
    shop = Node(w, "shop")
    plan = [(0.5, "misc", "x"), (1.0, orders, ""), (1.2, orders, ""), (1.5, events, ""),
            (2.1, orders, ""), (3.0, events, "")]

    def publisher() -> Generator[Any, Any, None]:
        for t, channel, key in plan:
            yield w.env.timeout(t - w.env.now)
            publish(shop, broker, channel, f"sent at {t}", routing_key=key)

    w.env.process(publisher())
    Consumer(w, "c1", broker, orders, prefetch=1, service_time=1.0)
    Consumer(w, "c2", broker, orders, prefetch=1, service_time=3.0)
    Consumer(w, "audit", broker, events, subscription="audit", service_time=0.1)
    install(w, [Crash("c2", at=2.5, duration=1.0)])
    w.run(10)
    return Result(w)


@pytest.fixture(scope="module")
def runs() -> dict[str, Result]:
    """Each messaging scenario's default run."""
    return {name: simcomm.run(name, seed=0) for name in SCENARIOS}


@pytest.fixture(scope="module")
def crashy() -> Result:
    """Competing consumers, the slow one (3x) crashing with its prefetch of ten in hand."""
    return simcomm.run("competing-consumers", seed=0, crash_consumer=True, prefetch=10,
                       slow_consumer=3.0)


@pytest.fixture(scope="module")
def chain() -> Result:
    return simcomm.run("chain", seed=0, until=20)


def _gid(fig: Figure, prefix: str, kind: type = object) -> list[Any]:
    return [a for ax in fig.axes for a in ax.get_children()
            if isinstance(a, kind) and (a.get_gid() or "").startswith(prefix)]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


def _texts(fig: Figure) -> str:
    parts = [t.get_text() for ax in fig.axes for t in ax.texts]
    parts += [ax.get_title(loc=loc) for ax in fig.axes for loc in ("left", "right")]
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None:
        parts.append(suptitle.get_text())
    return "\n".join(parts)


# -- the data, to the message -----------------------------------------------------------
def test_consumer_counts_of_the_hand_made_run(hand: Result) -> None:
    df = vm.consumer_counts(hand).set_index("consumer")
    assert list(df.index) == ["c1", "c2", "audit"]
    assert df.loc["c1", ["queue", "delivered", "consumed", "redelivered", "lost"]].tolist() == [
        "orders", 3, 3, 1, 0]
    assert df.loc["c2", ["delivered", "consumed", "redelivered"]].tolist() == [1, 0, 0]
    assert df.loc["audit", ["queue", "delivered", "consumed"]].tolist() == ["events.audit", 2, 2]
    assert df.loc["c1", "share"] == 1.0 and df.loc["c2", "share"] == 0.0


def test_consume_order_flags_the_redelivered_message_as_ordering_counts_it(
        hand: Result) -> None:
    c1 = vm.consume_order(hand).query("consumer == 'c1'")
    # published: misc 1st, then 2nd, 3rd (the one c2 held), 4th (event), 5th, 6th (event)
    assert c1["sequence"].tolist() == [2, 5, 3]
    assert c1["position"].tolist() == [1, 2, 3]
    assert c1["out_of_order"].tolist() == [False, False, True]
    report = hand.ordering().set_index("consumer")
    assert report.loc["c1", "out_of_order"] == 1 and report.loc["audit", "out_of_order"] == 0


def test_flow_graph_counts_each_path_and_the_drop_where_it_happened(hand: Result) -> None:
    g = vm.flow_graph(hand)
    edges = {(u, v): (d["kind"], d["messages"], d["redelivered"])
             for u, v, d in g.edges(data=True)}
    assert edges == {
        ("pub:shop", "ex:broker:misc"): ("publish", 1, 0),
        ("pub:shop", "q:broker:orders"): ("publish", 3, 0),  # the default exchange
        ("pub:shop", "ex:broker:events"): ("publish", 2, 0),
        ("ex:broker:events", "q:broker:events.audit"): ("route", 2, 0),
        ("q:broker:orders", "con:c1"): ("deliver", 3, 1),
        ("q:broker:orders", "con:c2"): ("deliver", 1, 0),
        ("q:broker:events.audit", "con:audit"): ("deliver", 2, 0),
    }
    assert g.nodes["ex:broker:misc"]["dropped"] == {"unroutable": 1}
    assert g.nodes["ex:broker:events"]["type"] == "fanout"
    assert g.nodes["con:c1"]["consumed"] == 3 and g.nodes["con:c2"]["consumed"] == 0
    # publishers left, exchanges, queues, consumers right
    assert [g.nodes[n]["pos"][0] for n in ("pub:shop", "ex:broker:misc", "q:broker:orders",
                                           "con:c1")] == [0.0, 1.0, 2.0, 3.0]


def test_message_latencies_of_the_hand_made_run(hand: Result) -> None:
    df = vm.message_latencies(hand).set_index("message_id")
    assert df["status"].tolist() == ["dropped", "consumed", "redelivered", "consumed",
                                     "consumed", "consumed"]
    lat = dict(zip(df["published"], df["latency"], strict=True))
    assert lat[1.0] == pytest.approx(1.0) and lat[1.2] == pytest.approx(2.9)  # waited for c1
    assert lat[1.5] == pytest.approx(0.1) and math.isnan(lat[0.5])


def test_queue_and_consumer_series_of_the_hand_made_run(hand: Result) -> None:
    t, ready, unacked = vm.queue_series(hand)["orders"]
    assert t.tolist() == pytest.approx([1.0, 1.2, 2.0, 2.1, 2.5, 3.1, 4.1])
    assert ready.tolist() == [0, 0, 0, 0, 1, 0, 0]  # the requeued one waits for c1
    assert unacked.tolist() == [1, 2, 1, 2, 1, 1, 0]
    held = vm.consumer_series(hand)
    assert list(held) == ["c1", "c2", "audit"]
    assert held["c2"][0].tolist() == [1.2, 2.5] and held["c2"][1].tolist() == [1, 0]
    assert held["c1"][1].max() == 1  # prefetch 1 is never passed


def test_availability_windows_and_formula() -> None:
    res = simcomm.run("create-order", seed=0, until=100)
    df = vm.availability_windows(res, bin=10)
    rq = res.requests[res.requests["outcome"] != "pending"]
    assert int(df["finished"].sum()) == len(rq)
    assert int(df["answered"].sum()) == int(rq["outcome"].isin(("ok", "fallback")).sum())
    first = rq[rq["start"] < 10]
    assert df["finished"].iloc[0] == len(first) and df.attrs["bin"] == 10
    f = vm.availability_formula(res)
    assert f is not None and f["value"] == pytest.approx(create_order.formula(res.params))
    assert f["nodes"] == create_order.required_nodes(res.params)
    assert vm.availability_formula(simcomm.run("chain", seed=0, until=5)) is None


# -- what each figure shows --------------------------------------------------------------
def test_queue_depth_rows_and_lanes(hand: Result) -> None:
    fig = vm.queue_depth(hand)
    assert len(fig.axes) == 3  # orders, events.audit, the consumers' lanes
    lanes = fig.axes[-1]
    assert [t.get_text() for t in lanes.get_yticklabels()] == ["c1", "c2", "audit"]
    assert "prefetch limit (1)" in [t.get_text() for t in lanes.get_legend().get_texts()]
    assert "queue orders · most waiting 1 · at the end 0 ready, 0 unacked" in _texts(fig)
    fig = vm.queue_depth(hand, queues="events.audit")
    assert len(fig.axes) == 2
    assert all(ax.get_xlim() == (0.0, hand.until) for ax in fig.axes)


def test_queue_depth_shows_the_crash_on_the_consumers_lane(crashy: Result) -> None:
    """A crashed consumer holds nothing while it is down: its lane is empty under
    the grey band, and what it held went back to the queue (redelivered)."""
    fig = vm.queue_depth(crashy)
    down = viz.fault_intervals(crashy).query("kind == 'down'")
    node, start, end = down[["node", "start", "end"]].iloc[0]
    assert _gid(fig, "fault:down", PolyCollection)
    t, held = vm.consumer_series(crashy)[node]
    before = held[t < start]
    assert before.size and before[-1] > 0  # it had messages in hand
    # the broker takes them back as the connection closes (one network delay later)
    settled = np.searchsorted(t, start + 0.05, side="right") - 1
    assert held[settled] == 0 and not held[(t > start + 0.05) & (t < end)].any()
    assert vm.consumer_counts(crashy)["redelivered"].sum() >= before[-1]


def test_brokerless_pipes_stand_where_the_queue_would() -> None:
    """Without a broker the senders' pipes hold what the consumers cannot take,
    up to ZeroMQ's high-water mark per pipe; beyond it messages are lost."""
    res = simcomm.run("brokers", seed=0, transport="brokerless", fault="consumer-down")
    series = vm.queue_series(res)
    pipes = [lab for lab in series if lab.endswith(" (pipes)")]
    assert len(pipes) == 1
    _, ready, unacked = series[pipes[0]]
    p = res.params
    assert ready.max() == p.high_water_mark * p.consumers and not unacked.any()
    assert res.summary()["messages_lost"] > 0
    fig = vm.queue_depth(res)
    assert f"the senders' pipes, no broker · most waiting {int(ready.max())}" in _texts(fig)
    assert fig.get_suptitle().startswith("No broker")


def test_message_flow_draws_every_node_edge_and_drop(hand: Result) -> None:
    fig = vm.message_flow(hand)
    g = vm.flow_graph(hand)
    assert {a.get_gid()[len("flow_node:"):] for a in _gid(fig, "flow_node:")} == set(g.nodes)
    assert len(_gid(fig, "flow_edge:", FancyArrowPatch)) == g.number_of_edges()
    assert [a.get_gid() for a in _gid(fig, "flow_drop:")] == ["flow_drop:ex:broker:misc"]
    assert "1 lost: unroutable" in _texts(fig)
    assert "3\n(1 redelivered)" in _texts(fig)


def test_message_sequence_has_channels_as_lifelines(hand: Result) -> None:
    fig = vm.message_sequence(hand, first=6)
    names = [t.get_text().split("\n")[0] for t in fig.axes[0].texts
             if (t.get_gid() or "").startswith("lifeline_name:")]
    assert names[:2] == ["shop", "misc"] and {"orders", "events", "events.audit"} <= set(names)
    arrows = _gid(fig, "seq:", FancyArrowPatch)
    kinds = [a.get_gid().split(":")[1] for a in arrows]
    assert kinds.count("publish") == 6  # each message published once
    assert kinds.count("route") == 2    # the fanout to events.audit
    assert kinds.count("deliver") == 6  # four to c1/c2 (one redelivered), two to audit
    assert kinds.count("ack") == 5
    text = _texts(fig)
    assert "unroutable" in text and "redelivered" in text and "requeued: consumer_gone" in text
    assert "6 messages and what they caused" in text


def test_message_sequence_follows_requests_into_their_messages() -> None:
    """In a run with users, a reply published by a consumer while it handled a
    command belongs to the request that sent the command."""
    res = simcomm.run("styles", seed=0, style="request-async-response", until=10)
    fig = vm.message_sequence(res, first=2)
    arrows = _gid(fig, "seq:", FancyArrowPatch)
    kinds = [a.get_gid().split(":")[1] for a in arrows]
    assert kinds.count("request") == 2 and kinds.count("reply") == 2
    assert kinds.count("publish") == 4  # a command and its reply, per request
    colours = {a.get_gid(): a.get_edgecolor() for a in arrows}
    assert len({tuple(c) for g, c in colours.items() if ":publish:" in g}) == 2
    assert "2 requests and the messages they caused" in _texts(fig)


def test_message_latency_marks_what_was_lost(runs: dict[str, Result]) -> None:
    res = simcomm.run("brokers", seed=0, transport="brokerless", fault="consumer-down")
    fig = vm.message_latency(res)
    lost = [a for a in fig.axes[0].lines if a.get_gid() == "status:dropped"]
    n_lost = int((vm.message_latencies(res)["status"] == "dropped").sum())
    assert n_lost > 0 and len(lost[0].get_xdata()) == n_lost
    assert f"lost {n_lost} of" in _texts(fig)
    assert any(a.get_gid() == "late_after" for a in fig.axes[0].lines)
    assert fig.axes[0].get_xlabel() == "publish time (s)"


def test_consumer_share_bars_are_the_counts(crashy: Result) -> None:
    fig = vm.consumer_share(crashy)
    counts = vm.consumer_counts(crashy)
    ax = fig.axes[0]
    first = next(c for c in ax.collections if c.get_gid() == "first")
    again = next(c for c in ax.collections if c.get_gid() == "again")
    heights = [p.vertices[2, 1] for p in first.get_paths()]
    assert heights == pytest.approx((counts["consumed"] - counts["redelivered"]).tolist())
    tops = [p.vertices[2, 1] for p in again.get_paths()]
    assert tops == pytest.approx(counts["consumed"].tolist())
    assert counts["redelivered"].sum() > 0
    assert [t.get_text() for t in ax.get_xticklabels()] == counts["consumer"].tolist()


def test_message_order_marks_as_many_as_ordering_counts(crashy: Result) -> None:
    fig = vm.message_order(crashy)
    report = crashy.ordering().set_index("consumer")
    for ax in fig.axes:
        name = ax.get_title(loc="left").split(" · ")[0]
        late = [ln for ln in ax.lines if ln.get_gid() == "mark:late"]
        marked = len(late[0].get_xdata()) if late else 0
        assert marked == report.loc[name, "out_of_order"], name
    assert report["out_of_order"].sum() > 0  # a crash with ten in hand reorders


def test_availability_over_time_shows_the_formula_for_each_design() -> None:
    for design in ("sync", "async"):
        res = simcomm.run("create-order", seed=0, design=design, until=100)
        fig = vm.availability_over_time(res)
        ax = fig.axes[0]
        line = next(ln for ln in ax.lines if ln.get_gid() == "formula")
        assert line.get_ydata()[0] == pytest.approx(create_order.formula(res.params))
        assert ("A(consumer-service-1)" in line.get_label()) == (design == "sync")
        assert ax.get_ylim()[1] > 1.0 >= ax.get_ylim()[0]


def test_availability_comparison_takes_reports_or_a_table() -> None:
    reports = {d: create_order.availability_report(simcomm.run("create-order", seed=0,
                                                               design=d, until=100))
               for d in ("sync", "async")}
    fig = vm.availability_comparison(reports)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sync", "async"]
    measured = next(c for c in ax.collections if c.get_gid() == "measured")
    tops = [p.vertices[2, 1] for p in measured.get_paths()]
    assert tops == pytest.approx([reports["sync"]["measured"], reports["async"]["measured"]])
    table = pd.DataFrame({"design": ["sync", "async"], "measured": [0.97, 0.99],
                          "formula": [0.985, 0.995]})
    fig = vm.availability_comparison(table)
    assert "97.00 %" in _texts(fig) and "99.50 %" in _texts(fig)
    assert "axis from" in fig.axes[0].get_ylabel()


# -- every view, every messaging scenario, drawn again in place --------------------------
def test_every_view_is_registered_and_exported() -> None:
    assert set(NEW_VIEWS) <= set(viz.VIEWS)
    for name in NEW_VIEWS:
        assert getattr(viz, name) is viz.VIEWS[name]
    assert viz.availability_comparison is vm.availability_comparison
    for name in SCENARIOS:
        assert set(simcomm.api.base.get(name).views) <= set(viz.VIEWS), name


@pytest.mark.parametrize("view", NEW_VIEWS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_view_draws_for_each_scenario(view: str, scenario: str,
                                           runs: dict[str, Result]) -> None:
    res = runs[scenario]
    fig = viz.view(view, res)
    assert isinstance(fig, Figure) and fig.axes
    assert fig.axes[0].get_title(loc="left")
    labelled = [ax for ax in fig.axes if ax.get_xlabel() or ax.get_ylabel()]
    assert labelled or view == "message_flow"


@pytest.mark.parametrize("view", NEW_VIEWS)
def test_each_view_says_what_it_cannot_show_for_a_run_without_messaging(
        view: str, chain: Result) -> None:
    fig = viz.view(view, chain)
    if view not in ("availability_over_time", "message_sequence"):  # these need requests
        assert "in this run" in _texts(fig)


def test_each_view_says_when_it_needs_the_trace() -> None:
    res = simcomm.run("competing-consumers", seed=0, until=10, trace=False)
    for view in NEW_VIEWS:
        if view != "availability_over_time":  # requests are kept without a trace
            assert "trace=True" in _texts(viz.view(view, res)), view


@pytest.mark.parametrize("view", NEW_VIEWS)
def test_axis_labels_clear_the_tick_labels(view: str, runs: dict[str, Result]) -> None:
    """Labels are pinned, not measured on every draw: they must still sit clear
    of the tick labels, and inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    res = runs["create-order" if view == "availability_over_time" else "styles"]
    if view in ("queue_depth", "consumer_share", "message_order"):
        res = simcomm.run("styles", seed=0, style="publish-async-responses", until=20)
    fig = viz.view(view, res)
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for axis, ticks in ((ax.xaxis, ax.get_xticklabels()), (ax.yaxis, ax.get_yticklabels())):
            label = axis.label
            if not (label.get_visible() and label.get_text()):
                continue
            box = label.get_window_extent(renderer)
            assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, label.get_text()
            assert fig.bbox.y0 - 1 <= box.y0, label.get_text()
            for t in [*ticks, *ax.texts]:
                if t.get_visible() and t.get_text() and t.get_text().startswith("queue "):
                    assert not box.overlaps(t.get_window_extent(renderer)), t.get_text()
            for t in ticks:
                if t.get_visible() and t.get_text():
                    assert not box.overlaps(t.get_window_extent(renderer)), (
                        label.get_text(), t.get_text())


#: Pairs of runs of one shape (same queues, consumers, lifelines) and different
#: contents: the second adds a crash, redeliveries, losses or another design.
PAIRS: dict[str, tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]] = {
    "queue_depth": (("competing-consumers", {}),
                    ("competing-consumers", {"crash_consumer": True, "prefetch": 10,
                                             "slow_consumer": 3.0})),
    "message_flow": (("brokers", {}), ("brokers", {"fault": "broker-down"})),
    "message_sequence": (("create-order", {"design": "async"}),
                         ("create-order", {"design": "async", "seed": 1})),
    "message_latency": (("brokers", {}), ("brokers", {"fault": "consumer-down"})),
    "consumer_share": (("competing-consumers", {}),
                       ("competing-consumers", {"crash_consumer": True, "prefetch": 10,
                                                "slow_consumer": 3.0})),
    "message_order": (("competing-consumers", {}),
                      ("competing-consumers", {"crash_consumer": True, "prefetch": 10,
                                               "slow_consumer": 3.0})),
    "availability_over_time": (("create-order", {}), ("create-order", {"design": "async"})),
}


@pytest.mark.parametrize("view", NEW_VIEWS)
def test_redraw_in_place_looks_like_a_fresh_figure(view: str) -> None:
    """The dashboards' path: a figure drawn for one run, redrawn for another of
    the same shape, holds the same artists and renders to the same pixels as a
    figure drawn for the second from scratch; and back again."""
    (n1, kw1), (n2, kw2) = PAIRS[view]
    first = simcomm.run(n1, **{"seed": 0, **kw1})
    second = simcomm.run(n2, **{"seed": 0, **kw2})
    fig = viz.redraw(view, first)
    assert viz.redraw(view, second, fig) is fig
    fresh = viz.redraw(view, second)
    assert [len(ax.get_children()) for ax in fig.axes] == [
        len(ax.get_children()) for ax in fresh.axes]
    assert _png(fig) == _png(fresh)
    assert _png(viz.redraw(view, first, fig)) == _png(viz.redraw(view, first))


def test_redraw_makes_a_new_figure_for_another_shape(hand: Result, crashy: Result) -> None:
    fig = viz.redraw("queue_depth", hand)
    assert viz.redraw("queue_depth", crashy, fig) is not fig  # other queues, consumers


# -- bad arguments -----------------------------------------------------------------------
@pytest.mark.parametrize(("call", "field"), [
    (lambda r: vm.queue_depth(r, queues="nope"), "queues"),
    (lambda r: vm.queue_depth(r, queues=[]), "queues"),
    (lambda r: vm.queue_depth(r, max_points=True), "max_points"),
    (lambda r: vm.queue_depth(r, max_points=5), "max_points"),
    (lambda r: vm.queue_depth(r, faults=1), "faults"),
    (lambda r: vm.queue_depth(r, axes=[Figure().add_subplot()]), "axes"),
    (lambda r: vm.message_latency(r, window=0), "window"),
    (lambda r: vm.message_latency(r, window=math.inf), "window"),
    (lambda r: vm.message_latency(r, percentiles=(50, 101)), "percentiles"),
    (lambda r: vm.message_latency(r, log="yes"), "log"),
    (lambda r: vm.message_order(r, consumers=["c9"]), "consumers"),
    (lambda r: vm.message_sequence(r, first=0), "first"),
    (lambda r: vm.message_sequence(r, first=True), "first"),
    (lambda r: vm.message_sequence(r, first=2.5), "first"),
    (lambda r: vm.message_sequence(r, since=-1), "since"),
    (lambda r: vm.message_sequence(r, acks=1), "acks"),
    (lambda r: vm.message_sequence(r, compress="no"), "compress"),
    (lambda r: vm.availability_over_time(r, bin=0), "bin"),
    (lambda r: vm.availability_windows(r, bin=True), "bin"),
    (lambda r: vm.availability_comparison(5), "table"),
    (lambda r: vm.availability_comparison([{"design": "sync", "measured": 0.9}]), "table"),
    (lambda r: vm.availability_comparison([{"design": "a", "measured": 1.2,
                                             "formula": 0.9}]), "measured"),
    (lambda r: vm.availability_comparison([]), "table"),
])
def test_bad_arguments_are_param_errors_naming_the_field(call: Any, field: str,
                                                         hand: Result) -> None:
    with pytest.raises(ParamError) as err:
        call(hand)
    assert err.value.field == field


def test_figure_arguments_take_numpy_numbers(hand: Result) -> None:
    vm.message_sequence(hand, first=np.int64(3), since=np.float64(0.5))
    vm.message_latency(hand, window=np.float32(1.0), percentiles=np.array([50, 90]))
    vm.queue_depth(hand, max_points=np.int64(50), faults=np.bool_(False))
    assert vm.availability_windows(hand, bin=np.int64(2)).attrs["bin"] == 2


# -- the dashboard's numbers -------------------------------------------------------------
def test_dashboard_shows_messaging_numbers_only_when_a_run_has_them(
        runs: dict[str, Result], chain: Result) -> None:
    from simcomm.widgets._render import summary_html

    keys = ("messages_published", "messages_consumed", "messages_lost", "messages_queued",
            "redeliveries", "message_p95_latency")
    plain = summary_html(chain.summary())
    assert not any(f"data-key='{k}'" in plain for k in keys)
    msgs = summary_html(runs["competing-consumers"].summary())
    assert all(f"data-key='{k}'" in msgs for k in keys)
    assert "data-key='requests'" not in msgs  # messages alone: no row of zero requests
    assert "data-key='messages_dead_lettered'" not in msgs  # nothing dead-lettered
    both = summary_html(runs["create-order"].summary())
    assert "data-key='requests'" in both and "data-key='availability'" in both


def test_figures_are_bare_figures_unknown_to_pyplot(hand: Result) -> None:
    for name in NEW_VIEWS:
        fig = viz.view(name, hand)
        assert isinstance(fig, Figure) and fig.canvas.manager is None


# -- labels clear of each other ------------------------------------------------------------
def _boxes(fig: Figure, texts: list[Any]) -> list[tuple[str, Any]]:
    """The rendered boxes of the visible, non-empty ``texts`` of ``fig``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    return [(t.get_text().strip(), t.get_window_extent(renderer)) for t in texts
            if t.get_visible() and t.get_text().strip()]


def _overlapping(boxes: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    return [(a, b) for (i, (a, box_a)) in enumerate(boxes) for (b, box_b) in boxes[i + 1:]
            if box_a.overlaps(box_b)]


@pytest.mark.parametrize(("style", "subscribers"), [("publish-subscribe", 3),
                                                     ("publish-subscribe", 6),
                                                     ("publish-async-responses", 4)])
def test_lifeline_names_never_overlap(style: str, subscribers: int) -> None:
    """Several channels side by side (an exchange and a queue per subscriber):
    each lifeline's name and kind stay clear of every other's."""
    res = simcomm.run("styles", seed=0, style=style, subscribers=subscribers, until=20)
    fig = vm.message_sequence(res)
    ax = fig.axes[0]
    boxes = _boxes(fig, [t for t in ax.texts if (t.get_gid() or "").startswith("lifeline_name:")])
    assert len(boxes) == len(vm._lifelines(res))
    assert _overlapping(boxes) == []
    title = _boxes(fig, [ax._left_title])[0][1]  # type: ignore[attr-defined]
    assert not any(box.overlaps(title) for _, box in boxes)  # the title above them all
    assert all(box.y1 <= fig.bbox.y1 for _, box in boxes)    # and inside the figure


def _fault_names(ax: Any) -> list[Any]:
    """The texts naming the nodes of fault bands on ``ax`` (drawn by fault_bands or
    by message_latency along the top)."""
    keeper = ax._simcomm_keeper
    return [a for key, a in keeper.artists.items() if "_name:" in key]


def test_fault_names_of_nodes_crashing_together_never_overlap() -> None:
    """order-service-1 and its reply consumer crash together: one label, a line
    for each name, clear of every other band's label."""
    res = simcomm.run("create-order", seed=0, design="async")
    fig = vm.availability_over_time(res)
    names = _fault_names(fig.axes[0])
    text = " ".join(t.get_text() for t in names)
    assert "order-service-1-replies" in text and "consumer-service-1" in text
    boxes = _boxes(fig, names)
    assert len(boxes) == len(names) and _overlapping(boxes) == []
    assert any("order-service-1\n order-service-1-replies" in t.get_text() for t in names)


@pytest.mark.parametrize("fault", ["broker-down", "consumer-down"])
def test_message_latency_names_its_faults_clear_of_the_data(fault: str) -> None:
    """The name of a crashed node runs along the top, above the markers of lost
    messages and the latency points and steps, which all stay below it."""
    from matplotlib.patches import StepPatch

    res = simcomm.run("brokers", seed=0, fault=fault)
    fig = vm.message_latency(res)
    ax = fig.axes[0]
    names = _fault_names(ax)
    assert names and all(t.get_rotation() == 0 for t in names)
    boxes = _boxes(fig, names)
    assert _overlapping(boxes) == []
    for _, box in boxes:
        for line in ax.lines:  # markers, reaching half their size around each point
            xy = line.get_transform().transform(np.column_stack(line.get_data()))
            pad = line.get_markersize() / 2 * fig.dpi / 72
            inside = ((xy[:, 0] >= box.x0 - pad) & (xy[:, 0] <= box.x1 + pad)
                      & (xy[:, 1] >= box.y0 - pad) & (xy[:, 1] <= box.y1 + pad))
            assert not inside.any(), line.get_gid()
        for patch in ax.patches:  # the percentile steps
            if isinstance(patch, StepPatch):
                path = patch.get_transform().transform_path(patch.get_path())
                v = path.vertices[np.isfinite(path.vertices).all(axis=1)]
                assert not ((v[:, 0] >= box.x0) & (v[:, 0] <= box.x1)
                            & (v[:, 1] >= box.y0)).any(), patch.get_gid()


@pytest.mark.parametrize(("scenario", "params"), [
    ("styles", {"style": "publish-async-responses", "subscribers": 4}),
    ("styles", {"style": "publish-subscribe", "subscribers": 6}),
    ("styles", {"style": "request-async-response", "transport": "brokerless"}),
    ("create-order", {"design": "async"}),
    ("brokers", {"consumers": 5}),
    ("brokers", {"fault": "broker-down", "transport": "brokerless"}),
    ("competing-consumers", {"consumers": 6, "reject_rate": 0.3, "long": 50}),
])
def test_flow_counts_sit_clear_of_the_nodes_and_each_other(scenario: str,
                                                           params: dict[str, Any]) -> None:
    """Where a fan of edges crosses a column, each edge's count moves along its
    edge to a spot clear of every node, node label and other count.  ``long``
    multiplies the counts, as a run that many times longer would have them
    (five digits and a line of redeliveries: the labels of a fan that collided)."""
    params = dict(params)
    long = params.pop("long", 1)
    res = simcomm.run(scenario, seed=0, until=30, **params)
    flow = vm._flow_data(res)
    for e in flow.edges.values():
        e["messages"] *= long
        e["redelivered"] *= long
    for n in flow.nodes.values():
        n["consumed"] *= long
    fig = vm.message_flow(res)
    ax = fig.axes[0]
    counts = [t for t in ax.texts if (t.get_gid() or "").startswith("edge_label:")]
    labels = [t for t in ax.texts if (t.get_gid() or "").startswith(("label:", "drop_label:"))]
    count_boxes = _boxes(fig, counts)
    label_boxes = _boxes(fig, labels)
    assert len(count_boxes) == len(counts) > 1
    assert _overlapping(count_boxes) == []
    for text, box in count_boxes:
        assert not any(box.overlaps(other) for _, other in label_boxes), text
        for node in _gid(fig, "flow_node:", Line2D):
            x, y = node.get_transform().transform(np.column_stack(node.get_data()))[0]
            half = node.get_markersize() / 2 * fig.dpi / 72
            assert not (box.x0 < x + half and x - half < box.x1
                        and box.y0 < y + half / 2 and y - half / 2 < box.y1), text


def test_queue_depth_says_why_an_auto_ack_queue_stays_empty() -> None:
    """With automatic acknowledgement the broker hands every message out at
    once: the queue's panel says so (inside it, clear of its ticks) instead of
    an empty 0-1 axis; a manually acked queue's panel has no such note."""
    auto = vm.queue_depth(simcomm.run("competing-consumers", seed=0, ack_mode="auto",
                                      until=20))
    ax = auto.axes[0]
    notes = [t for t in ax.texts if "auto-ack" in t.get_text()]
    assert len(notes) == 1 and "hands each message" in notes[0].get_text()
    assert "(auto-ack: never unacked)" in ax.get_title(loc="left")
    (_, box), *ticks = _boxes(auto, [notes[0], *ax.get_yticklabels()])
    assert ax.get_window_extent().contains(box.x0, box.y0)
    assert ax.get_window_extent().contains(box.x1, box.y1)
    assert not any(box.overlaps(other) for _, other in ticks)
    manual = vm.queue_depth(simcomm.run("competing-consumers", seed=0, until=20))
    assert not any("auto-ack" in t.get_text() for a in manual.axes for t in a.texts)
    assert "auto-ack" not in manual.axes[0].get_title(loc="left")


def test_redraw_picks_the_kept_figure_of_the_runs_shape() -> None:
    """Given the figures of earlier shapes, redraw draws into the one of this
    run's shape (a choice toggled back), and only makes one when none fits."""
    a = simcomm.run("brokers", seed=0, until=10)
    b = simcomm.run("brokers", seed=0, until=10, transport="brokerless")
    fig_a = viz.redraw("message_flow", a)
    fig_b = viz.redraw("message_flow", b, fig_a)
    assert fig_b is not fig_a  # queues and channels: another shape
    again = simcomm.run("brokers", seed=1, until=10)
    assert viz.redraw("message_flow", again, [fig_b, fig_a]) is fig_a
    assert _png(fig_a) == _png(viz.redraw("message_flow", again))
    assert viz.redraw("message_flow", b, (fig_a,)) is not fig_a


def test_a_dashboard_toggled_back_redraws_its_earlier_figures() -> None:
    from simcomm.widgets import explore

    dash = explore("brokers", until=10.0)
    first = dict(dash._figures)
    dash.update(transport="brokerless")
    assert dash._figures["message_flow"] is not first["message_flow"]
    dash.update(transport="broker", seed=1)  # back: a new run in the earlier figures
    assert dash._figures == first
    dash.close()
