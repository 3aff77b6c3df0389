"""competing-consumers: what each knob must show, measured (RabbitMQ's rules, REFERENCE §4).

Every run is the default 60 s (about 1 850 messages at 30 msg/s) unless a
test says otherwise.  The tolerances come from seeds 1-8 of the same runs
(the spread is quoted beside each assertion), with room to spare: they hold
for any seed, not only the one used here.
"""

from __future__ import annotations

import json
import math

import pytest

import simcomm
from simcomm.cli import main
from simcomm.errors import ParamError
from simcomm.scenarios import get, make_params
from simcomm.scenarios.competing_consumers import (
    REPORT_COLUMNS,
    capacity,
    consumer_names,
    consumer_report,
    load,
    ordering_summary,
)

NAME = "competing-consumers"


def run(seed: int = 1, **params):
    return simcomm.run(NAME, seed=seed, warn=False, **params)


@pytest.fixture(scope="module")
def default():
    return run()


# -- the scenario as a scenario ---------------------------------------------------------

def test_registered_with_the_views_of_its_lessons():
    sc = get(NAME)
    assert sc.views == ("queue_depth", "consumer_share", "message_order")
    assert sc.capacity is capacity and sc.load is load


def test_the_cli_runs_it_with_json(capsys):
    assert main(["run", NAME, "--until", "10", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages_published"] > 0
    assert summary["messages_published"] == (summary["messages_consumed"]
                                             + summary["messages_queued"])
    assert summary["messages_lost"] == 0 and summary["redeliveries"] == 0


def test_the_default_run_delivers_every_message_once_in_order(default):
    """Three alike consumers with prefetch 1 and manual acks, no fault: each
    gets about a third, nothing is lost, redelivered, duplicated or reordered."""
    report = consumer_report(default)
    s = report.attrs["summary"]
    assert list(report.columns) == list(REPORT_COLUMNS)
    assert list(report["consumer"]) == consumer_names(3)
    assert s["published"] == s["consumed"] + s["queued"]
    assert s["queued"] <= 5  # only what is on its way at the end
    assert s["lost"] == s["redeliveries"] == s["out_of_order"] == s["duplicates"] == 0
    assert report["share"].sum() == pytest.approx(1.0)
    # seeds 1-8: each share 0.33 ± 0.01
    assert report["share"].tolist() == pytest.approx([1 / 3] * 3, abs=0.03)
    # a consumer is busy its mean service time per message (0.05 s, exponential;
    # ~600 messages each, so the mean is within 3 standard errors, 0.006 s)
    assert report["processing_time"].tolist() == pytest.approx([0.05] * 3, abs=0.006)
    assert default.summary()["stable"]


def test_the_report_agrees_with_the_summary(default):
    report = consumer_report(default)
    s = default.summary()
    assert report.attrs["summary"] == ordering_summary(default)
    # the consumers' handlers finished what the broker saw acked, give or take
    # the acks still on the wire at the end
    assert 0 <= report["consumed"].sum() - s["messages_consumed"] <= 3
    # without redeliveries each message was delivered at most once, and what a
    # consumer holds at the end is at most its prefetch window (1)
    assert report["delivered"].sum() <= s["messages_published"]
    assert (report["delivered"] - report["consumed"]).between(0, 1).all()


def test_without_a_trace_the_counts_hold_and_the_order_is_unknown(default):
    """Untraced, the consumers' counters still give what each did; what needs
    each message's events (redelivered flags, order) is NaN, not zero."""
    bare = consumer_report(run(trace=False))
    traced = consumer_report(default)
    for col in ("consumer", "delivered", "consumed", "share", "processing_time", "lost"):
        assert bare[col].tolist() == traced[col].tolist(), col
    for col in ("redelivered", "out_of_order", "duplicates"):
        assert bare[col].isna().all(), col
    s, t = bare.attrs["summary"], traced.attrs["summary"]
    assert {k: s[k] for k in ("published", "consumed", "lost", "queued", "redeliveries")} \
        == {k: t[k] for k in ("published", "consumed", "lost", "queued", "redeliveries")}
    assert math.isnan(s["out_of_order"]) and math.isnan(s["duplicates"])


def test_the_same_seed_gives_the_same_run(default):
    assert run().fingerprint() == default.fingerprint()
    assert run(seed=2).fingerprint() != default.fingerprint()


# -- prefetch and uneven work -------------------------------------------------------------

def test_fair_dispatch_gives_a_slow_consumer_fewer_messages():
    """Prefetch 1 (RabbitMQ's fair dispatch): a consumer 4x slower is usually
    busy when a message comes, so the broker gives it to one that is not.
    Seeds 1-8: its share 0.130-0.153 (speed alone would say 1/9 = 0.11)."""
    res = run(slow_consumer=4, prefetch=1)
    report = consumer_report(res)
    slow = report.iloc[0]
    assert slow["consumer"] == "kitchen-1"
    assert slow["share"] < 0.2
    assert (report["share"].iloc[1:] > 0.4).all()
    assert slow["processing_time"] == pytest.approx(0.2, rel=0.15)  # 4 x 0.05 s
    # work goes where it can be done: nothing piles up
    assert report.attrs["summary"]["queued"] <= 10


def test_unlimited_prefetch_deals_a_slow_consumer_its_share_anyway():
    """Prefetch 0: plain round-robin, whatever each consumer's speed: the slow
    one is handed exactly a third (seeds 1-8: 0.333-0.334 of the deliveries)
    and, able to handle 5 msg/s of the 10 it gets, builds a backlog in its own
    buffer that the idle consumers cannot help with."""
    res = run(slow_consumer=4, prefetch=0)
    report = consumer_report(res)
    delivered = report["delivered"] / report["delivered"].sum()
    assert delivered.tolist() == pytest.approx([1 / 3] * 3, abs=0.002)
    slow = report.iloc[0]
    assert slow["share"] < 0.25  # seeds 1-8: 0.187-0.212 of what was consumed
    backlog = slow["delivered"] - slow["consumed"]
    assert backlog > 200  # ~10 - 5 msg/s over the run: ~300
    assert res.summary()["messages_queued"] >= backlog
    assert res.bottleneck()["resource"] == "kitchen-1"
    # the model: round-robin caps the whole at 3 x the slow one's 5 msg/s
    assert capacity(res.params) == pytest.approx(15.0)
    assert not res.summary()["stable"]


# -- acknowledgements and a crash ------------------------------------------------------------

CRASH = dict(crash_consumer=True, prefetch=10, slow_consumer=4)


def test_manual_acks_lose_nothing_when_a_consumer_crashes():
    """kitchen-1 (slow, holding its 10 unacked messages) crashes at 20 s: the
    broker requeues them and the others get them with redelivered=True.
    Seeds 1-8: 9-10 redeliveries, none lost."""
    res = run(**CRASH)
    report = consumer_report(res)
    s = report.attrs["summary"]
    assert s["lost"] == 0
    assert s["redeliveries"] >= 5
    assert report["redelivered"].iloc[1:].sum() == s["redeliveries"]
    assert s["published"] == s["consumed"] + s["queued"]
    assert (report["lost"] == 0).all()


def test_auto_ack_loses_what_a_crashed_consumer_held():
    """With auto-ack the broker forgot each message as it sent it (and ignores
    the prefetch): the slow consumer's buffer dies with it.  Seeds 1-8: 94-124
    messages lost; nothing is ever redelivered."""
    res = run(**CRASH, ack_mode="auto")
    report = consumer_report(res)
    s = report.attrs["summary"]
    assert s["lost"] > 50
    assert s["redeliveries"] == 0
    assert report["lost"].iloc[0] == s["lost"]  # all of them at kitchen-1
    drops = res.deliveries.query("fate == 'dropped'")
    assert set(drops["reason"]) == {"consumer_crash"}
    assert (drops["consumer"] == "kitchen-1").all()


# -- order ---------------------------------------------------------------------------------

def test_one_consumer_and_no_redelivery_keeps_the_order():
    """One publisher, one queue, one consumer: its order is kept (seeds 1-8: 0)."""
    res = run(consumers=1, publish_rate=10)
    s = ordering_summary(res)
    assert s["redeliveries"] == 0 and s["consumed"] > 500
    assert s["out_of_order"] == 0 and s["duplicates"] == 0


def test_a_crash_redelivery_with_several_consumers_breaks_the_order():
    """The messages the crashed consumer held are consumed by the others after
    messages published later: each redelivery is out of order (seeds 1-8:
    8-10 of 9-10 redeliveries)."""
    s = ordering_summary(run(**CRASH))
    assert s["out_of_order"] > 0
    assert s["out_of_order"] <= s["redeliveries"]
    assert s["duplicates"] == 0


def test_a_rejected_message_comes_back_after_later_ones():
    """A reject with requeue puts the message back at its place, but the other
    consumers have moved on: seeds 1-8: 7-13 out of order among 78-106
    redeliveries (5 % of ~1 850 messages, some rejected twice)."""
    s = ordering_summary(run(reject_rate=0.05))
    assert s["out_of_order"] > 0
    assert 40 < s["redeliveries"] < 150
    assert s["lost"] == 0 and s["duplicates"] == 0


def test_with_one_consumer_and_prefetch_1_a_reject_does_not_reorder():
    """The rejected message is the only one the consumer holds: it goes back to
    the head of the queue and comes straight back (seeds 1-8: 22-42 redeliveries,
    none out of order) -- the order breaks only when something overtakes it."""
    s = ordering_summary(run(consumers=1, publish_rate=10, reject_rate=0.05))
    assert s["redeliveries"] > 10
    assert s["out_of_order"] == 0


# -- the model of the run ---------------------------------------------------------------------

def test_capacity_matches_a_saturated_consumer():
    """One consumer at prefetch 1: 1 / (0.05 s + two 2 ms hops) = 18.5 msg/s,
    what it carries when offered 30 (1 110 consumed in 60 s: 18.5 msg/s)."""
    res = run(consumers=1)
    p = res.params
    assert capacity(p) == pytest.approx(1 / 0.054)
    rate = consumer_report(res)["consumed"].sum() / res.until
    assert rate == pytest.approx(capacity(p), rel=0.05)
    s = res.summary()
    assert s["offered_load"] == pytest.approx(30 / capacity(p))
    assert s["stable"] is False


@pytest.mark.parametrize(("knobs", "ceiling"), [
    ({"prefetch": 1}, 3 / 0.09), ({"prefetch": 10}, 60.0), ({"ack_mode": "auto"}, 60.0)])
def test_prefetch_and_ack_mode_set_the_throughput(knobs, ceiling):
    """Offered 100 msg/s with 20 ms a hop, three consumers at 0.05 s a message:
    with prefetch 1 each waits 40 ms for its ack's round trip after every
    message and they carry 3 / 0.09 = 33 msg/s (seeds 1-3: 32.8-34.1); a
    window of 10, or auto-ack, keeps them busy: 60 msg/s (59.0-61.8)."""
    res = run(publish_rate=100, network_latency=0.02, **knobs)
    assert capacity(res.params) == pytest.approx(ceiling)
    rate = consumer_report(res)["consumed"].sum() / res.until
    assert rate == pytest.approx(ceiling, rel=0.06)


def test_capacity_and_load_follow_the_knobs():
    sc = get(NAME)
    p = make_params(sc)
    assert capacity(p) == pytest.approx(3 / 0.054)
    assert capacity(make_params(sc, {"prefetch": 10})) == pytest.approx(60.0)
    assert capacity(make_params(sc, {"prefetch": 2, "network_latency": 0.1})
                    ) == pytest.approx(3 * 2 / 0.25)
    assert capacity(make_params(sc, {"reject_rate": 0.5, "prefetch": 10})) == pytest.approx(30)
    auto = make_params(sc, {"ack_mode": "auto", "slow_consumer": 2.0})
    assert capacity(auto) == pytest.approx(3 / 0.1)
    ld = load(p)
    assert ld.requests_per_s == p.publish_rate
    assert ld.messages_per_request == 3  # publish, deliver, ack
    assert load(make_params(sc, {"ack_mode": "auto"})).messages_per_request == 2
    assert load(make_params(sc, {"crash_consumer": True})).events_per_s > 0


@pytest.mark.parametrize(("field", "value"), [
    ("consumers", 0), ("consumers", 21), ("consumers", 2.5), ("consumers", True),
    ("prefetch", -1), ("prefetch", 101), ("ack_mode", "sometimes"), ("ack_mode", 1),
    ("publish_rate", 0.0), ("service_time", 0.0), ("service_time_distribution", "pareto"),
    ("slow_consumer", 0.5), ("crash_consumer", "yes"), ("crash_at", -1.0),
    ("crash_duration", 0.0), ("reject_rate", 0.6), ("reject_rate", math.nan),
    ("network_latency", -0.001),
])
def test_bad_values_are_refused_before_time_zero(field, value):
    with pytest.raises(ParamError) as info:
        simcomm.run(NAME, until=1.0, **{field: value})
    assert info.value.field == field
