"""Every number notebook 06's prose states is recomputed here (DESIGN.md, principle 10).

Each test repeats the calls of the cells it checks (fixtures, module-scoped so
a run is made once) and registers the exact phrases it checks with
:func:`claim`; ``claims_kit.enforce`` makes three more tests: the phrases are
still in the notebook, every digit of its prose is claimed or allowed (with a
reason, :data:`ALLOWED`), and the cells still make the calls repeated here
(:data:`CALLS`).

Runs are deterministic for a seed, so a count or a time is checked to the
digits the prose gives.  Where the prose draws a lesson from a run -- the
measured availability against the product formula, the errors a 5 s outage
causes -- the test also checks the lesson with a tolerance the run's length
justifies: a Poisson count of ``n`` is held to ``n ± 2√n``, an availability to
the standard error ``availability_report`` derives from the run's outages.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from claims_kit import Prose, default, enforce, quiet

import simcomm
from simcomm import Result, World
from simcomm.engine.faults import Crash, install
from simcomm.messaging import Broker, Consumer, Producer
from simcomm.messaging.styles import Requester, replier, request_async
from simcomm.scenarios import create_order as co
from simcomm.scenarios import styles as st
from simcomm.scenarios.create_order import availability_report
from simcomm.scenarios.styles import STYLES, styles_table
from simcomm.viz.messaging import _SEQ_CYCLE, FATE_COLORS
from simcomm.viz.style import color_name, outcome_color

NB = "06-async-messaging"

ALLOWED = {
    "Follow request 1 (blue)": "the request the sequence diagram starts with (its colour is "
                               "checked in test_sequence_colours)",
    "the user (1′)": "the label of request 1's answer in the diagram",
    "both down from 10 s to 20 s while the order service publishes about two events a "
    "second": "the settings the durable-subscription cell uses",
    "First the synchronous design over 3000 s, with outages of 5 s on average so that each "
    "one shows, and 0.5 requests a second": "the settings the outage cells use",
    "a longer run: 10 000 s": "the length the long runs use",
    "exercise 06.1": "an exercise's number",
    "the kitchen down for 5 s. Try": "the dashboard's setting",
    "The other half of chapter 3": "the book's chapter",
    "95th percentile": "names a percentile",
    "Over these 3000 s": "the length of the outage cells' runs",
}

CALLS = [
    'world = World(seed=1)',
    'broker.point_to_point("kitchen.commands")', 'broker.point_to_point("order.replies")',
    'Consumer(world, "kitchen-1", broker, "kitchen.commands", service_time=0.01, '
    'handler=replier(broker, {"ticketId": 8765}))',
    'order = Requester(world, "order-1", broker, "order.replies")',
    'waiting = request_async(order, broker, "kitchen.commands", {"orderId": 42}, '
    '"order.replies", timeout=1.0)',
    'world.run(1.0)',
    'notification = simcomm.run("styles", seed=1, style="notification")',
    'events = simcomm.run("styles", seed=1, style="publish-subscribe")',
    'order_events = broker.publish_subscribe("order.events")',
    'Producer(world, "order-1", broker, order_events, rate=2.0, count=60)',
    'Consumer(world, "accounting-1", broker, order_events, subscription="accounting", '
    'durable=True)',
    'Consumer(world, "delivery-1", broker, order_events, subscription="delivery", '
    'durable=False)',
    'install(world, [Crash("accounting-1", at=10.0, duration=10.0), '
    'Crash("delivery-1", at=10.0, duration=10.0)])',
    'world.run(60.0)',
    'runs = {style: simcomm.run("styles", seed=1, style=style) for style in STYLES}',
    'down = {style: simcomm.run("styles", seed=1, style=style, service_down_for=5) for style '
    'in ("request-response", "notification", "request-async-response")}',
    'outages = {"until": 3000, "request_rate": 0.5, "mean_time_to_repair": 5.0, '
    '"trace": False}',
    'sync = simcomm.run("create-order", seed=1, design="sync", **outages)',
    'async_ = simcomm.run("create-order", seed=1, design="async", **outages)',
    'simcomm.run("create-order", seed=1, design=design, until=10_000, request_rate=0.5, '
    'trace=False)) for design in ("sync", "async")}',
    'simcomm.explore("styles", style="request-async-response", service_down_for=5)',
]

PROSE = Prose(NB, allowed=ALLOWED, calls=CALLS)
claim = PROSE.claim

(test_every_claimed_or_allowed_phrase_is_in_its_notebook,
 test_every_number_in_the_prose_is_checked_or_allowed,
 test_the_notebooks_still_make_the_calls_checked_here) = enforce(PROSE)


def _run(*args, **kwargs):
    return quiet(lambda: simcomm.run(*args, progress=False, **kwargs))


# == a message: header and body ===================================================

@pytest.fixture(scope="module")
def one_request():
    """The hand-built request with an asynchronous response (cell "A message")."""
    world = World(seed=1)
    broker = Broker(world)
    broker.point_to_point("kitchen.commands")
    broker.point_to_point("order.replies")
    Consumer(world, "kitchen-1", broker, "kitchen.commands", service_time=0.01,
             handler=replier(broker, {"ticketId": 8765}))
    order = Requester(world, "order-1", broker, "order.replies")
    waiting = request_async(order, broker, "kitchen.commands", {"orderId": 42},
                            "order.replies", timeout=1.0)
    world.run(1.0)
    return world, waiting


@claim("The request is message 1 and the reply message 7",
       "messages 2 to 6 were the two consumers subscribing to their queues and the broker "
       "delivering the command to the kitchen",
       "The reply's correlation id is 1")
def test_message_ids_and_correlation(one_request):
    world, waiting = one_request
    reply = waiting.value
    assert waiting.correlation_id == 1 and reply.message_id == 7
    assert reply.correlation_id == 1 and reply.queue == "order.replies"
    assert reply.kind == "reply" and reply.body == {"ticketId": 8765}
    m = Result(world).messages.set_index("message_id")
    between = m.loc[2:6]
    # two subscriptions and the broker's answers to them, and the command's delivery
    assert (between["kind"] == "control").sum() == 2
    assert set(between.query("kind == 'control'")["source"]) == {"kitchen-1", "order-1"}
    delivery = between.query("kind == 'command'")
    assert len(delivery) == 1 and list(delivery["source"]) == ["broker"]
    assert list(delivery["dest"]) == ["kitchen-1"]


@claim("The command's latency, from publish to handled, is the kitchen's work")
def test_the_commands_latency_is_the_kitchens_work(one_request):
    world, _ = one_request
    d = Result(world).deliveries.set_index("message_id")
    assert (d["fate"] == "consumed").all() and list(d.index) == [1, 7]
    # no network delay in a bare World: the latency is the kitchen's service time
    assert d.loc[1, "latency"] == pytest.approx(0.01)


# == channels ===================================================================

@pytest.fixture(scope="module")
def notification():
    return _run("styles", seed=1, style="notification")


@pytest.fixture(scope="module")
def events():
    return _run("styles", seed=1, style="publish-subscribe")


@claim("each of the three subscribers (kitchen, accounting, delivery)",
       "The notification run sent each of its 336 commands to the one kitchen; the "
       "publish-subscribe run published 336 events and the broker delivered 1008 copies, 336 "
       "to each subscriber")
def test_point_to_point_and_publish_subscribe(notification, events):
    assert default("styles", "subscribers") == 3
    assert st.SUBSCRIBERS[:3] == ("kitchen", "accounting", "delivery")
    n = notification.deliveries
    assert len(n) == 336 and set(n["consumer"]) == {"kitchen-1"}
    assert (n["kind"] == "command").all() and (n["fate"] == "consumed").all()
    e = events.deliveries
    assert e["message_id"].nunique() == 336 and len(e) == 1008
    assert (e.groupby("consumer").size() == 336).all() and e["consumer"].nunique() == 3
    assert (e["kind"] == "event").all() and (e["fate"] == "consumed").all()


@pytest.fixture(scope="module")
def subscriptions() -> pd.DataFrame:
    """The durable / non-durable subscription cell."""
    world = World(seed=1)
    broker = Broker(world)
    order_events = broker.publish_subscribe("order.events")
    Producer(world, "order-1", broker, order_events, rate=2.0, count=60)
    Consumer(world, "accounting-1", broker, order_events, subscription="accounting",
             durable=True)
    Consumer(world, "delivery-1", broker, order_events, subscription="delivery",
             durable=False)
    install(world, [Crash("accounting-1", at=10.0, duration=10.0),
                    Crash("delivery-1", at=10.0, duration=10.0)])
    world.run(60.0)
    return Result(world).deliveries


@claim("The durable subscriber got all 60 events", "the first of them 9.2 s",
       "The non-durable one got 42 and never saw the other 18",
       "no network delay, hence the waits of 0")
def test_durable_and_non_durable(subscriptions):
    d = subscriptions
    by = d.groupby("consumer")
    assert by.size().to_dict() == {"accounting-1": 60, "delivery-1": 42}
    assert round(by["latency"].max()["accounting-1"], 1) == 9.2
    assert by["latency"].max()["delivery-1"] == 0
    # the 18 it missed were published while it was down, and are nobody's loss
    missed = set(d.query("consumer == 'accounting-1'")["message_id"]) \
        - set(d.query("consumer == 'delivery-1'")["message_id"])
    published = d.drop_duplicates("message_id").set_index("message_id")["published"]
    assert len(missed) == 18 and published[list(missed)].between(10, 20).all()
    assert (d["fate"] == "consumed").all()


# == the five styles ==============================================================

@pytest.fixture(scope="module")
def styles_runs() -> dict:
    return {style: _run("styles", seed=1, style=style) for style in STYLES}


@pytest.fixture(scope="module")
def table(styles_runs) -> pd.DataFrame:
    return styles_table(list(styles_runs.values())).set_index("style")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@claim("Every user was answered in every style",
       "a median of 13 ms", "The synchronous call waits for the kitchen too: 26 ms",
       "the call — 30 ms", "two hops each way instead of one",
       "`publish-async-responses` waits for the slowest of three subscribers: 35 ms",
       "4 for the call, 8 for the asynchronous request/response, 18 to collect three "
       "replies")
def test_styles_table(table, styles_runs):
    assert (table["answered"] == 1.0).all()
    w = table["wait_p50"]
    assert _ms(w["notification"]) == _ms(w["publish-subscribe"]) == 13
    assert (_ms(w["request-response"]), _ms(w["request-async-response"]),
            _ms(w["publish-async-responses"])) == (26, 30, 35)
    m = table["messages_per_request"].round()
    assert (m["request-response"], m["request-async-response"],
            m["publish-async-responses"]) == (4, 8, 18)
    assert table.loc["publish-async-responses", "replies_per_request"] == 3
    # two hops each way: a message through the broker crosses the network twice
    assert st._hops(styles_runs["request-async-response"].params) == 2


@claim("Follow request 1 (blue)", "One (orange)", "timed out (dark brown)")
def test_sequence_colours():
    """The colours the prose names are the figures': the first request of a sequence
    diagram, a message consumed after a redelivery, and the timeout outcome."""
    assert color_name(_SEQ_CYCLE[0]) == "blue"
    assert color_name(FATE_COLORS["redelivered"]) == "orange"
    assert color_name(outcome_color("timeout")) == "dark brown"


@claim("all three replies carrying the same correlation id, the event's id",
       "The order service answers the user when the third reply is in")
def test_publish_async_responses_waits_for_the_third(styles_runs):
    res = styles_runs["publish-async-responses"]
    d = res.deliveries
    first = res.requests.sort_values("start").iloc[0]
    replies = d[(d["channel"] == st.REPLIES)].sort_values("published").head(3)
    assert set(replies["producer"]) == {"kitchen-1", "accounting-1", "delivery-1"}
    assert first["end"] >= replies["applied"].max()


# == when the service behind is down ===============================================

@pytest.fixture(scope="module")
def down() -> dict:
    return {style: _run("styles", seed=1, style=style, service_down_for=5)
            for style in ("request-response", "notification", "request-async-response")}


@pytest.fixture(scope="module")
def down_table(down) -> pd.DataFrame:
    return styles_table(list(down.values())).set_index("style")


@claim("With `service_down_for=5` the kitchen crashes at 20 s (`service_down_at`) and is "
       "back at 25 s")
def test_the_outage(down):
    assert default("styles", "service_down_at") == 20
    ev = down["notification"].events
    assert list(ev.query("node == 'kitchen-1' and event == 'crash'")["time"]) == [20]
    assert list(ev.query("node == 'kitchen-1' and event == 'restart'")["time"]) == [25]


@claim("7.7 % of all the requests ended `error`",
       "the 5 s of the outage at 5 requests a second",
       "The notification answered every user", "to 2.1 s",
       "failed about as many users as the call, 6.8 %",
       "each waited its full `reply_timeout` of 1 s and got `timeout`",
       "the commands of those 23 requests", "23 orphan replies")
def test_outage_table(down, down_table):
    t = down_table
    assert round(t.loc["request-response", "error"] * 100, 1) == 7.7
    assert t.loc["request-response", "timeout"] == 0
    errors = (down["request-response"].requests["outcome"] == "error").sum()
    expected = default("styles", "request_rate") * 5  # a Poisson count: ± 2 sqrt(n)
    assert expected == 25 and abs(errors - expected) <= 2 * math.sqrt(expected)
    assert t.loc["notification", "answered"] == 1.0
    assert round(t.loc["notification", "delivery_p95"], 1) == 2.1
    assert round(t.loc["request-async-response", "timeout"] * 100, 1) == 6.8
    assert t.loc["request-async-response", "error"] == 0
    assert default("styles", "reply_timeout") == 1
    rq = down["request-async-response"].requests
    timed_out = rq.query("outcome == 'timeout'")
    # the full timeout, plus the order service's own work and the user's round trip
    assert len(timed_out) == 23 and timed_out["latency"].between(1.0, 1.05).all()
    assert t.loc["request-async-response", "orphan_replies"] == 23


@claim("waited in the queue until the kitchen was back at 25 s — the first about 5 s, the "
       "last a fraction of a second — and none was lost",
       "One (orange) was in the kitchen's hands when it crashed")
def test_commands_wait_in_the_queue(down):
    d = down["notification"].deliveries
    assert (d["fate"] == "consumed").all()
    during = d[d["published"].between(20, 25, inclusive="left")]
    assert round(during["latency"].max()) == 5 and during["latency"].min() < 1
    assert (during["applied"] >= 25).all()
    again = d[d["redeliveries"] > 0]
    assert len(again) == 1 and again["published"].iloc[0] < 20 < again["applied"].iloc[0]


@claim("those sent in its last second got their reply in time, late, once the kitchen was "
       "back",
       "They are `late`, and they all came within a few milliseconds of the kitchen's "
       "restart at 25 s")
def test_orphans_are_late_and_come_at_the_restart(down):
    res = down["request-async-response"]
    rq = res.requests
    last = rq[rq["start"].between(24, 25, inclusive="left")]
    assert (last["outcome"] == "ok").all() and (last["end"] > 25).all()
    orphans = res.events.query("event == 'orphan_reply'")
    assert len(orphans) == 23 and orphans["detail"].str.endswith("(late)").all()
    assert orphans["time"].between(25, 25.05).all()


# == createOrder (§3.4) ==========================================================

OUTAGES = {"until": 3000, "request_rate": 0.5, "mean_time_to_repair": 5.0, "trace": False}


@pytest.fixture(scope="module")
def outage_runs() -> dict:
    return {design: _run("create-order", seed=1, design=design, **OUTAGES)
            for design in ("sync", "async")}


@pytest.fixture(scope="module")
def reports() -> dict:
    return {design: availability_report(
        _run("create-order", seed=1, design=design, until=10_000, request_rate=0.5,
             trace=False)) for design in ("sync", "async")}


@claim("99.5 % each giving ≈ 98.5 %", "0.995³ ≈ 98.5 %")
def test_the_product_formula():
    assert default("create-order", "order_availability") == 0.995
    assert default("create-order", "consumer_availability") == 0.995
    assert default("create-order", "restaurant_availability") == 0.995
    assert round(0.995 ** 3 * 100, 1) == 98.5


def _failed_in(res, intervals, slack: float = 0.1) -> pd.Series:
    """Per failed request: did it start in one of ``intervals`` (or just before, while
    it was being handled when the node crashed)?"""
    rq = res.requests
    failed = rq[~rq["outcome"].isin(("ok", "pending"))]
    return failed["start"].apply(lambda t: any(a - slack <= t < b for a, b in intervals))


@claim("The notches fall at the outages of all three services",
       "createOrder answered 99.18 % of its users, more than the formula's 98.51 %",
       "this run happened to hold less downtime than the long-run average")
def test_sync_outages(outage_runs):
    res = outage_runs["sync"]
    rep = availability_report(res)
    assert round(rep["measured"] * 100, 2) == 99.18 and round(rep["formula"] * 100, 2) == 98.51
    assert rep["formula_observed"] > rep["formula"]
    rq = res.requests
    failed = rq[~rq["outcome"].isin(("ok", "pending"))]
    for node in (co.ORDER, co.CONSUMER, co.RESTAURANT):
        downs = co.down_intervals(res, node)
        assert failed["start"].apply(
            lambda t, downs=downs: any(a - 0.1 <= t < b for a, b in downs)).any(), node


@claim("Only the order service's outages cut a notch now",
       "The consumer and restaurant services went down just as often",
       "Both designs see the same outages with the same seed",
       "the orders were approved a little later",
       "99.94 % of the users were answered")
def test_async_outages(outage_runs):
    res, sync = outage_runs["async"], outage_runs["sync"]
    assert _failed_in(res, co.down_intervals(res, co.ORDER)).all()
    for node in (co.ORDER, co.CONSUMER, co.RESTAURANT):
        assert co.down_intervals(res, node) == co.down_intervals(sync, node)
    assert round(availability_report(res)["measured"] * 100, 2) == 99.94
    # orders that arrived while the consumer service was down were approved after it was up
    db = res.world.nodes[co.ORDER].orders
    start = dict(zip(res.requests["request_id"], res.requests["start"], strict=True))
    hit = 0
    for a, b in co.down_intervals(res, co.CONSUMER):
        for order, t in db.approved.items():
            if a <= start[order] < b:
                hit += 1
                assert t >= b
    assert hit > 0


@claim("the default outages of about a second, some fifty per service")
def test_long_run_outages(reports):
    assert default("create-order", "mean_time_to_repair") == 1.0
    # MTBF + MTTR = MTTR / (1 - A) = 200 s: 50 outages in 10 000 s, a Poisson count
    for node, k in reports["sync"]["outages"].items():
        assert abs(k - 50) <= 2 * math.sqrt(50), (node, k)


@claim("The synchronous design was available 98.67 % of the time, the asynchronous one "
       "99.57 %: each within one standard error of its formula, 98.51 % and 99.50 %",
       "is closer still")
def test_long_run_availability(reports):
    s, a = reports["sync"], reports["async"]
    assert (round(s["measured"] * 100, 2), round(a["measured"] * 100, 2)) == (98.67, 99.57)
    assert (round(s["formula"] * 100, 2), round(a["formula"] * 100, 2)) == (98.51, 99.50)
    for r in (s, a):
        assert abs(r["measured"] - r["formula"]) < r["standard_error"]
        assert abs(r["measured"] - r["formula_observed"]) < abs(r["measured"] - r["formula"])
    # and the lesson holds beyond chance: the designs differ by more than 2 standard errors
    assert a["measured"] - s["measured"] > 2 * math.hypot(s["standard_error"],
                                                          a["standard_error"])


@claim("Every pending order was approved in the end (`completed_share`), 99 % of them "
       "within about 0.07 s",
       "98.5 % is two and a half hours without createOrder and 99.5 % under an hour",
       "(`broker_availability` is 1.0 by default)")
def test_completion_and_hours(reports):
    a = reports["async"]
    assert a["completed_share"] == 1.0 and a["incomplete"] == 0
    assert round(a["completion_p99"], 2) == 0.07
    assert round((1 - 0.985) * 168, 1) == 2.5 and (1 - 0.995) * 168 < 1
    assert default("create-order", "broker_availability") == 1.0


def test_the_unchecked_number_scanner_is_not_vacuous():
    assert any("42 %" in s for s in PROSE.unclaimed_numbers(PROSE.markdown + "\n42 % more"))


def test_runs_are_what_the_cells_make(styles_runs):
    """The fixtures' runs have the parameters the cells give (defaults elsewhere)."""
    p = styles_runs["notification"].params
    assert (p.request_rate, p.service_down_for, p.transport) == (5.0, 0.0, "broker")
    assert np.isclose(styles_runs["notification"].until, 60.0)
