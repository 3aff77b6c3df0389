"""Results of the messaging layer: copies and their fates, holdings, latency, order.

The first half feeds :mod:`simcomm.analysis.messaging` hand-written
``trace.mq`` tuples (the event table of the messaging contract is the
input); the second half checks the same tables on real runs of
:mod:`simcomm.messaging`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.analysis import messaging as am
from simcomm.errors import ParamError


def ev(t, event, mid, channel, node, detail=""):
    return (float(t), event, mid, channel, node, detail)


def pub(t, mid, producer="p", exchange="", key="orders"):
    return ev(t, "publish", mid, exchange, producer, key)


def handled(t, mid, queue="orders", consumer="c1", broker="broker", redelivered=False,
            ack_after=0.5):
    """enqueue → deliver → consume → ack, starting at ``t``."""
    return [ev(t, "enqueue", mid, queue, broker),
            ev(t + 0.1, "deliver", mid, queue, consumer, "redelivered" if redelivered else ""),
            ev(t + 0.2, "consume", mid, queue, consumer),
            ev(t + ack_after, "ack", mid, queue, consumer)]


def network(rows):
    """A network ledger as Result.messages gives it: message_id, kind, fate, reason."""
    return pd.DataFrame(rows, columns=["message_id", "kind", "fate", "reason"])


def row(df, mid, channel=None):
    sel = df[df["message_id"] == mid]
    if channel is not None:
        sel = sel[sel["channel"] == channel]
    assert len(sel) == 1
    return sel.iloc[0]


# -- deliveries: one row per copy --------------------------------------------------
def test_a_message_acked_after_its_handler_finished_is_consumed():
    """publish → enqueue → deliver → consume → ack: consumed, latency to the
    handler finishing, acked when the broker processed the ack."""
    mq = [pub(1.0, 7), *handled(1.5, 7)]
    df = am.deliveries(mq, network([(7, "command", "delivered", "")]))
    assert list(df.columns) == list(am.DELIVERY_COLUMNS)
    r = row(df, 7)
    assert (r["kind"], r["producer"], r["channel"], r["exchange"], r["routing_key"]) == \
        ("command", "p", "orders", "", "orders")
    assert (r["consumer"], r["consumers"], r["fate"], r["reason"]) == ("c1", 1, "consumed", "")
    assert r["published"] == 1.0 and r["enqueued"] == 1.5
    assert r["first_delivered"] == pytest.approx(1.6)
    assert r["applied"] == pytest.approx(1.7) and r["acked"] == pytest.approx(2.0)
    assert r["latency"] == pytest.approx(0.7)
    assert (r["deliveries"], r["redeliveries"], r["consumes"]) == (1, 0, 1)
    assert not r["dead_letter_copy"]


def test_a_handled_message_whose_ack_has_not_arrived_is_still_unacked():
    """Manual ack: the broker holds the message until it processes the ack."""
    mq = [pub(0, 1), ev(0.1, "enqueue", 1, "q", "b"), ev(0.2, "deliver", 1, "q", "c1"),
          ev(0.3, "consume", 1, "q", "c1")]
    r = row(am.deliveries(mq), 1)
    assert r["fate"] == "unacked"
    assert r["latency"] == pytest.approx(0.3)  # its effect happened all the same
    assert math.isnan(r["acked"])


def test_each_queue_a_fanout_routes_to_holds_its_own_copy():
    """A fanout to two queues makes two copies, each with its own fate."""
    mq = [pub(0, 1, exchange="events", key=""), ev(0.1, "enqueue", 1, "events.a", "b"),
          ev(0.1, "enqueue", 1, "events.b", "b"), ev(0.2, "deliver", 1, "events.a", "a1"),
          ev(0.3, "consume", 1, "events.a", "a1"), ev(0.4, "ack", 1, "events.a", "a1")]
    df = am.deliveries(mq)
    assert list(df["channel"]) == ["events.a", "events.b"]
    assert list(df["fate"]) == ["consumed", "queued"]
    assert list(df["exchange"]) == ["events", "events"]
    assert df["kind"].isna().all()  # no network ledger given


def test_a_crashed_consumers_message_is_redelivered_to_another():
    """The broker requeues a closed connection's unacked message; the next
    delivery is flagged redelivered and goes to the other consumer."""
    mq = [pub(0, 1), ev(0.1, "enqueue", 1, "q", "b"), ev(0.2, "deliver", 1, "q", "c1"),
          ev(1.0, "requeue", 1, "q", "b", "consumer_gone"),
          ev(1.1, "deliver", 1, "q", "c2", "redelivered"), ev(1.2, "consume", 1, "q", "c2"),
          ev(1.3, "ack", 1, "q", "c2")]
    r = row(am.deliveries(mq), 1)
    assert (r["fate"], r["consumer"], r["consumers"]) == ("consumed", "c2", 2)
    assert (r["deliveries"], r["redeliveries"]) == (2, 1)
    assert r["first_delivered"] == pytest.approx(0.2)
    assert r["latency"] == pytest.approx(1.2)


def test_a_requeued_message_not_yet_redelivered_is_queued():
    mq = [pub(0, 1), ev(0.1, "enqueue", 1, "q", "b"), ev(0.2, "deliver", 1, "q", "c1"),
          ev(0.3, "nack", 1, "q", "c1", "requeue"), ev(0.3, "requeue", 1, "q", "b", "nack")]
    assert row(am.deliveries(mq), 1)["fate"] == "queued"


def test_a_rejected_message_is_dead_lettered_and_its_copy_lands_on_the_dead_letter_queue():
    mq = [pub(0, 1), ev(0.1, "enqueue", 1, "q", "b"), ev(0.2, "deliver", 1, "q", "c1"),
          ev(0.3, "nack", 1, "q", "c1", "discard"), ev(0.3, "dead_letter", 1, "q", "b", "rejected"),
          ev(0.3, "enqueue", 1, "q.dlq", "b", "dead_letter")]
    df = am.deliveries(mq)
    q, dlq = row(df, 1, "q"), row(df, 1, "q.dlq")
    assert (q["fate"], q["reason"], q["dead_letter_copy"]) == ("dead_lettered", "rejected", False)
    assert (dlq["fate"], dlq["dead_letter_copy"]) == ("queued", True)
    assert dlq["exchange"] == "" and dlq["routing_key"] == "orders"  # of the original publish


def test_a_dead_letter_cycle_back_to_the_same_queue_makes_a_new_copy():
    """RabbitMQ allows a dead-letter exchange that routes back to the queue."""
    mq = [pub(0, 1), ev(0.1, "enqueue", 1, "q", "b"),
          ev(0.2, "dead_letter", 1, "q", "b", "maxlen"),
          ev(0.2, "enqueue", 1, "q", "b", "dead_letter")]
    df = am.deliveries(mq)
    assert list(df["fate"]) == ["dead_lettered", "queued"]
    assert list(df["dead_letter_copy"]) == [False, True]


def test_drops_keep_their_reason():
    mq = [pub(0, 1, exchange="x", key="nobody"), ev(0.1, "drop", 1, "x", "b", "unroutable"),
          pub(0.2, 2), ev(0.3, "drop", 2, "q", "b", "queue_full"),
          pub(0.4, 3), ev(0.5, "enqueue", 3, "q", "b"), ev(0.6, "drop", 3, "q", "b", "maxlen")]
    df = am.deliveries(mq)
    assert list(zip(df["channel"], df["fate"], df["reason"], strict=True)) == [
        ("x", "dropped", "unroutable"), ("q", "dropped", "queue_full"),
        ("q", "dropped", "maxlen")]


def test_a_publish_that_reached_no_queue_takes_its_fate_from_the_network():
    """Lost on the wire: dropped with the network's reason; arrived but not
    routed, or still on the wire: in flight.  Rows stay in publish order."""
    mq = [pub(0, 1), pub(0.1, 2), pub(0.2, 3), *handled(0.3, 4)[:0], pub(0.3, 4),
          *handled(0.4, 4)]
    net = network([(1, "event", "dropped", "loss"), (2, "event", "delivered", ""),
                   (3, "event", "in_flight", ""), (4, "event", "delivered", "")])
    df = am.deliveries(mq, net)
    assert list(df["message_id"]) == [1, 2, 3, 4]
    assert list(df["fate"]) == ["dropped", "in_flight", "in_flight", "consumed"]
    assert list(df["reason"]) == ["loss", "", "", ""]
    assert list(df["channel"]) == ["", "", "", "orders"]


def test_auto_ack_settles_when_the_handler_finishes_and_loses_what_a_crash_interrupts():
    """RabbitMQ's automatic acknowledgement: the broker forgets the message
    as it sends it; consumed only once the handler finished."""
    mq = [pub(0, 1), ev(0, "enqueue", 1, "q", "b"), ev(0.1, "ack", 1, "q", "c1", "auto"),
          ev(0.2, "deliver", 1, "q", "c1"), ev(0.5, "consume", 1, "q", "c1"),
          pub(0, 2), ev(0, "enqueue", 2, "q", "b"), ev(0.1, "ack", 2, "q", "c1", "auto"),
          ev(0.2, "deliver", 2, "q", "c1"), ev(0.3, "drop", 2, "q", "c1", "consumer_crash"),
          pub(0, 3), ev(0, "enqueue", 3, "q", "b"), ev(0.1, "ack", 3, "q", "c1", "auto"),
          ev(0.2, "deliver", 3, "q", "c1")]
    df = am.deliveries(mq)
    assert list(df["fate"]) == ["consumed", "dropped", "in_flight"]
    assert df["acked"].iloc[0] == pytest.approx(0.5)


def test_a_broker_crash_loses_transient_copies_and_requeues_persistent_ones():
    mq = [pub(0, 1), ev(0, "enqueue", 1, "q", "b"), ev(0.1, "deliver", 1, "q", "c1"),
          pub(0, 2), ev(0, "enqueue", 2, "q", "b"), ev(0.1, "deliver", 2, "q", "c2"),
          ev(1.0, "drop", 1, "q", "b", "broker_crash"),
          ev(2.0, "requeue", 2, "q", "b", "broker_restart")]
    df = am.deliveries(mq)
    assert list(df["fate"]) == ["dropped", "queued"]
    assert df["reason"].iloc[0] == "broker_crash"


def test_brokerless_messages_are_consumed_when_handled_and_in_flight_while_held():
    mq = [pub(0, 1, exchange="orders", key=""), ev(0.1, "deliver", 1, "orders", "c1"),
          ev(0.2, "consume", 1, "orders", "c1"),
          pub(0, 2, exchange="orders", key=""), ev(0.1, "deliver", 2, "orders", "c1"),
          pub(0, 3, exchange="orders", key=""), ev(0.1, "drop", 3, "orders", "p", "hwm")]
    df = am.deliveries(mq)
    assert list(df["fate"]) == ["consumed", "in_flight", "dropped"]
    assert df["acked"].iloc[0] == pytest.approx(0.2)


def test_a_consumer_finishing_after_its_copy_was_settled_counts_but_does_not_change_the_fate():
    """The broker restarted and redelivered to c2, which acked; c1's handler,
    still running on the closed connection, finishes later: a second effect."""
    mq = [pub(0, 1), ev(0, "enqueue", 1, "q", "b"), ev(0.1, "deliver", 1, "q", "c1"),
          ev(1.0, "requeue", 1, "q", "b", "broker_restart"),
          ev(2.0, "deliver", 1, "q", "c2", "redelivered"), ev(2.1, "consume", 1, "q", "c2"),
          ev(2.2, "ack", 1, "q", "c2"), ev(3.0, "consume", 1, "q", "c1")]
    r = row(am.deliveries(mq), 1)
    assert (r["fate"], r["consumes"], r["acked"]) == ("consumed", 2, pytest.approx(2.2))
    assert r["latency"] == pytest.approx(2.1)  # the first time it was applied
    assert am.copy_ledger(mq)["conflicts"] == 0


def test_unknown_events_are_skipped():
    mq = [pub(0, 1), ev(0, "enqueue", 1, "q", "b"), ev(0.1, "rebalance", 1, "q", "b"),
          ev(0.2, "rebalance", 1, "other", "b")]
    df = am.deliveries(mq)
    assert list(df["fate"]) == ["queued"] and list(df["channel"]) == ["q"]


def test_brokerless_copies_in_a_pipe_are_in_flight_one_per_subscription():
    """ZeroMQ's PUB: a copy per subscription goes into the sender's pipe to
    it; one is received and handled, one still waits in its pipe."""
    mq = [pub(0, 1, exchange="news", key=""),
          ev(0, "pipe", 1, "news.a", "p", "a1"), ev(0, "pipe", 1, "news.b", "p", "b1"),
          ev(0.1, "deliver", 1, "news.a", "a1"), ev(0.2, "consume", 1, "news.a", "a1")]
    df = am.deliveries(mq)
    assert list(zip(df["channel"], df["fate"], strict=True)) == [
        ("news.a", "consumed"), ("news.b", "in_flight")]
    assert am.copy_ledger(mq)["copies"] == 2


def test_an_empty_trace_gives_empty_tables_with_their_columns():
    assert list(am.deliveries([]).columns) == list(am.DELIVERY_COLUMNS)
    assert list(am.consumer_inflight([]).columns) == list(am.INFLIGHT_COLUMNS)
    assert list(am.consumptions([]).columns) == list(am.CONSUMPTION_COLUMNS)
    assert list(am.queue_depth([]).columns) == ["time", "node", "queue", "ready", "unacked"]
    rep = am.ordering(am.consumptions([]))
    assert rep.empty and list(rep.columns)[:2] == ["producer", "consumer"]


# -- the ledger of copies -----------------------------------------------------------
def test_copy_ledger_counts_each_copy_once_by_fate():
    mq = [pub(0, 1), *handled(0.1, 1),
          pub(0, 2), ev(0.1, "enqueue", 2, "q", "b"),
          pub(0, 3, exchange="x"), ev(0.1, "drop", 3, "x", "b", "unroutable"),
          pub(0, 4), ev(0.1, "enqueue", 4, "q", "b"), ev(0.2, "dead_letter", 4, "q", "b", "maxlen"),
          ev(0.2, "enqueue", 4, "dlq", "b", "dead_letter"),
          pub(0, 5)]
    led = am.copy_ledger(mq, network([(5, "event", "dropped", "partition")]))
    assert led["published"] == 5 and led["copies"] == 6
    assert {f: led[f] for f in am.FATES} == {"consumed": 1, "dead_lettered": 1, "dropped": 2,
                                             "queued": 2, "unacked": 0, "in_flight": 0}
    assert led["dropped_by_reason"] == {"partition": 1, "unroutable": 1}
    assert led["dead_letter_copies"] == 1
    assert led["unpublished"] == 0 and led["conflicts"] == 0


def test_copy_ledger_reports_decisions_on_a_settled_copy_and_unpublished_copies():
    mq = [pub(0, 1), *handled(0.1, 1), ev(1.0, "requeue", 1, "orders", "b", "nack"),
          ev(1.0, "enqueue", 9, "q", "b")]
    led = am.copy_ledger(mq)
    assert led["conflicts"] == 1 and led["unpublished"] == 1
    assert row(am.deliveries(mq), 1)["fate"] == "consumed"  # the fate stays


_EVENTS = st.sampled_from(["enqueue", "deliver", "consume", "ack", "nack", "requeue",
                           "dead_letter", "drop", "publish"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_EVENTS, st.integers(1, 4), st.sampled_from(["q", "r"]),
                          st.sampled_from(["c1", "c2"]), st.sampled_from(["", "auto",
                                                                          "redelivered"])),
                max_size=40))
def test_any_event_sequence_gives_each_copy_one_fate_and_holdings_never_negative(events):
    """Whatever order the events come in, the ledger's fates add up to the
    copies, agree with the deliveries table, and no consumer holds fewer
    than nothing."""
    mq = [ev(i, e, mid, ch, node, detail) for i, (e, mid, ch, node, detail)
          in enumerate(events)]
    df = am.deliveries(mq)
    led = am.copy_ledger(mq)
    assert led["copies"] == len(df) == sum(led[f] for f in am.FATES)
    counts = df["fate"].value_counts()
    assert all(led[f] == counts.get(f, 0) for f in am.FATES)
    assert set(df["fate"]) <= set(am.FATES)
    held = am.consumer_inflight(mq)
    assert (held["unacked"] >= 0).all()


# -- consumer in-flight -------------------------------------------------------------
def test_a_consumer_holds_a_manual_ack_delivery_until_the_broker_processes_its_ack():
    mq = [pub(0, 1), pub(0, 2), ev(0, "enqueue", 1, "q", "b"), ev(0, "enqueue", 2, "q", "b"),
          ev(0.1, "deliver", 1, "q", "c1"), ev(0.15, "deliver", 2, "q", "c1"),
          ev(0.2, "consume", 1, "q", "c1"), ev(0.5, "ack", 1, "q", "c1"),
          ev(0.9, "nack", 2, "q", "c1", "requeue"), ev(0.9, "requeue", 2, "q", "b", "nack")]
    df = am.consumer_inflight(mq)
    assert list(df.columns) == list(am.INFLIGHT_COLUMNS)
    assert list(zip(df["time"], df["unacked"], strict=True)) == [
        (0.1, 1), (0.15, 2), (0.5, 1), (0.9, 0)]
    assert set(df["consumer"]) == {"c1"} and set(df["queue"]) == {"q"}


def test_a_requeue_after_a_crash_releases_the_crashed_consumers_holding():
    mq = [pub(0, 1), ev(0, "enqueue", 1, "q", "b"), ev(0.1, "deliver", 1, "q", "c1"),
          ev(1.0, "requeue", 1, "q", "b", "consumer_gone"),
          ev(1.1, "deliver", 1, "q", "c2", "redelivered"), ev(1.2, "consume", 1, "q", "c2")]
    df = am.consumer_inflight(mq)
    assert list(zip(df["time"], df["consumer"], df["unacked"], strict=True)) == [
        (0.1, "c1", 1), (1.0, "c1", 0), (1.1, "c2", 1)]


def test_auto_ack_and_brokerless_deliveries_are_held_until_their_handler_finishes():
    mq = [pub(0, 1), pub(0, 2, exchange="ch"), ev(0, "enqueue", 1, "q", "b"),
          ev(0.1, "ack", 1, "q", "c1", "auto"), ev(0.2, "deliver", 1, "q", "c1"),
          ev(0.3, "deliver", 2, "ch", "c2"), ev(0.4, "drop", 2, "ch", "c2", "consumer_crash"),
          ev(0.5, "consume", 1, "q", "c1")]
    df = am.consumer_inflight(mq)
    assert list(zip(df["time"], df["consumer"], df["unacked"], strict=True)) == [
        (0.2, "c1", 1), (0.3, "c2", 1), (0.4, "c2", 0), (0.5, "c1", 0)]


def test_queue_depth_is_the_recorded_table():
    rows = [(0.0, "b", "q", 1, 0), (0.1, "b", "q", 0, 1)]
    df = am.queue_depth(rows)
    assert df.values.tolist() == [list(r) for r in rows]


# -- ordering -----------------------------------------------------------------------
def consumes(order, consumer="c1", producer="p", redelivered=()):
    """Messages 1..n published in order by ``producer``, consumed in ``order``."""
    n = max(order)
    mq = [pub(i * 0.01, i, producer) for i in range(1, n + 1)]
    for k, mid in enumerate(order):
        mq.append(ev(1 + k, "deliver", mid, "q", consumer,
                     "redelivered" if mid in redelivered else ""))
        mq.append(ev(1 + k, "consume", mid, "q", consumer))
    return mq


@pytest.mark.parametrize(("order", "late", "dups"), [
    ([1, 2, 3], 0, 0),
    ([1, 3, 2], 1, 0),
    ([3, 2, 1], 2, 0),
    ([2, 3, 1], 1, 0),
    ([1, 2, 1, 3], 0, 1),
    ([2, 1, 2, 1], 1, 2),
])
def test_out_of_order_counts_late_arrivals_and_duplicates_count_repeats(order, late, dups):
    rep = am.ordering(am.consumptions(consumes(order)))
    assert len(rep) == 1
    r = rep.iloc[0]
    assert (r["producer"], r["consumer"]) == ("p", "c1")
    assert (r["messages"], r["consumes"]) == (len(set(order)), len(order))
    assert (r["out_of_order"], r["duplicates"]) == (late, dups)


def test_order_is_judged_per_producer_and_consumer_pair():
    """Each consumer of a queue sees its own share in order: no pair is out
    of order, even though the queue's consumers interleave."""
    mq = [pub(0.1, 1), pub(0.2, 2), pub(0.3, 3, producer="q"), pub(0.4, 4)]
    for t, mid, c in [(1, 2, "c1"), (2, 1, "c2"), (3, 4, "c2"), (4, 3, "c1")]:
        mq += [ev(t, "deliver", mid, "q", c), ev(t, "consume", mid, "q", c)]
    c = am.consumptions(mq)
    rep = am.ordering(c)
    assert list(zip(rep["producer"], rep["consumer"], rep["messages"], rep["out_of_order"],
                    strict=True)) == [("p", "c1", 1, 0), ("p", "c2", 2, 0), ("q", "c1", 1, 0)]
    # judged across the queue's consumers instead, 1 after 2 is late
    by_queue = am.ordering(c, by=("producer", "channel"))
    assert by_queue.set_index("producer").loc["p", "out_of_order"] == 1


def test_consumptions_know_whether_the_delivery_was_a_redelivery():
    mq = consumes([2, 1], redelivered={1})
    c = am.consumptions(mq)
    assert list(c.columns) == list(am.CONSUMPTION_COLUMNS)
    assert list(c["redelivered"]) == [False, True]
    assert list(c["publish_seq"]) == [1, 0]
    marked = am.mark_order(c)
    assert list(marked["out_of_order"]) == [False, True]
    assert am.ordering(c)["redelivered"].iloc[0] == 1


def test_a_consume_of_an_unknown_publish_is_never_out_of_order():
    mq = [pub(0, 2), ev(1, "consume", 2, "q", "c1"), ev(2, "consume", 1, "q", "c1")]
    rep = am.ordering(am.consumptions(mq))
    assert list(rep["out_of_order"]) == [0, 0]  # message 1's producer is unknown
    assert list(rep["producer"].isna()) == [False, True]


@pytest.mark.parametrize("by", ["nope", (), ("producer", "producer"), ("producer", 3), 7])
def test_ordering_refuses_streams_it_cannot_group_by(by):
    with pytest.raises(ParamError, match="by"):
        am.ordering(am.consumptions(consumes([1, 2])), by=by)


def test_ordering_accepts_one_column_by_name():
    rep = am.ordering(am.consumptions(consumes([2, 1])), by="consumer")
    assert list(rep.columns[:1]) == ["consumer"] and rep["out_of_order"].iloc[0] == 1


# -- latency ------------------------------------------------------------------------
def test_latency_stats_over_finite_values():
    out = am.latency_stats([1.0, 2.0, 3.0, 4.0, math.nan], percentiles=(50, np.int64(100),
                                                                        99.9))
    assert out["messages"] == 4 and out["mean"] == pytest.approx(2.5)
    assert out["p50"] == pytest.approx(2.5) and out["p100"] == 4.0
    assert "p99.9" in out


def test_latency_stats_of_nothing_are_nan():
    out = am.latency_stats([])
    assert out["messages"] == 0
    assert all(math.isnan(out[k]) for k in ("mean", "p50", "p95", "p99"))


@pytest.mark.parametrize("bad", ["50", [101], [-1], [True], [math.nan], 5, [None]])
def test_latency_stats_refuse_bad_percentiles(bad):
    with pytest.raises(ParamError, match="percentiles"):
        am.latency_stats([1.0], percentiles=bad)


# -- Result: the same tables on a run ---------------------------------------------------
def synthetic_result(mq, queues=()):
    """A finished World whose messaging tables hold ``mq`` and ``queues``."""
    from simcomm.engine import World
    from simcomm.result import Result

    w = World(0)
    w.run(10)
    w.trace.mq.extend(mq)
    w.trace.queues.extend(queues)
    return Result(w)


def test_result_tables_come_from_the_trace():
    mq = [pub(0, 1), *handled(0.5, 1, queue="q", consumer="c1"), pub(1, 2),
          ev(1.1, "enqueue", 2, "q", "b"), ev(1.2, "deliver", 2, "q", "c2")]
    res = synthetic_result(mq, [(0.5, "b", "q", 1, 0), (0.6, "b", "q", 0, 1)])
    assert list(res.deliveries["fate"]) == ["consumed", "unacked"]
    assert res.queue_depth.values.tolist() == [[0.5, "b", "q", 1, 0], [0.6, "b", "q", 0, 1]]
    assert res.consumer_inflight["unacked"].tolist() == [1, 0, 1]
    rep = res.ordering()
    assert rep[["producer", "consumer", "messages"]].values.tolist() == [["p", "c1", 1]]
    lat = res.message_latency()
    assert lat["messages"] == 1 and lat["p50"] == pytest.approx(0.7)


def test_message_latency_by_group_and_bad_arguments():
    mq = [pub(0, 1), *handled(0, 1, consumer="c1"), pub(1, 2), *handled(1, 2, consumer="c2",
                                                                        ack_after=0.3)]
    res = synthetic_result(mq)
    df = res.message_latency((50,), by="consumer")
    assert df.columns.tolist() == ["consumer", "messages", "mean", "p50"]
    assert df.values.tolist() == [["c1", 1, pytest.approx(0.2), pytest.approx(0.2)],
                                  ["c2", 1, pytest.approx(0.2), pytest.approx(0.2)]]
    two = res.message_latency(by=("producer", "channel"))
    assert two[["producer", "channel", "messages"]].values.tolist() == [["p", "orders", 2]]
    with pytest.raises(ParamError, match="percentiles"):
        res.message_latency((50, 120))
    with pytest.raises(ParamError, match="by"):
        res.message_latency(by="latency")


def test_summary_gains_the_messaging_keys_only_for_a_run_with_messaging():
    from simcomm.result import MESSAGING_KEYS, REQUEST_KEYS, SUMMARY_HELP, SUMMARY_UNITS

    plain = synthetic_result([]).summary()
    assert not set(MESSAGING_KEYS) & set(plain)
    mq = [pub(0, 1), *handled(0, 1),                                       # consumed
          pub(1, 2, exchange="x"), ev(1.1, "drop", 2, "x", "b", "unroutable"),  # lost
          pub(2, 3), ev(2.1, "enqueue", 3, "q", "b"),                         # queued
          ev(2.2, "deliver", 3, "q", "c1"), ev(2.3, "requeue", 3, "q", "b", "consumer_gone"),
          ev(2.4, "deliver", 3, "q", "c2", "redelivered"),                    # unacked
          ev(2.5, "nack", 3, "q", "c2", "discard"),
          ev(2.5, "dead_letter", 3, "q", "b", "rejected"),                    # dead-lettered
          ev(2.5, "enqueue", 3, "dlq", "b", "dead_letter")]                   # queued
    s = synthetic_result(mq).summary()
    # no clients sent requests: a run of messages alone, summarised in messages
    # (tests/test_result_health.py)
    from simcomm.result import DELIVERY_KEYS, RECORD_KEYS

    # (the keys of keyed records, issue 9, are not in a run without records)
    records = {*DELIVERY_KEYS, *RECORD_KEYS, "records_pending", "produce_rate",
               "record_capacity"}
    # (nor those of service discovery, issue 10)
    from simcomm.result import DISCOVERY_KEYS

    records |= set(DISCOVERY_KEYS)
    alone = set(SUMMARY_UNITS) - set(REQUEST_KEYS) - records
    assert set(s) == alone == set(SUMMARY_HELP) - set(REQUEST_KEYS) - records
    assert {k: s[k] for k in MESSAGING_KEYS[:-1]} == {
        "messages_published": 3, "messages_consumed": 1, "messages_lost": 1,
        "messages_dead_lettered": 1, "messages_queued": 1, "redeliveries": 1}
    assert s["message_p95_latency"] == pytest.approx(0.2)
    assert SUMMARY_UNITS["message_p95_latency"] == "s"


def test_the_fingerprint_sees_the_messaging_tables_and_ignores_them_when_empty():
    from simcomm.engine import World
    from simcomm.result import Result

    w = World(0)
    w.run(10)
    before = Result(w).fingerprint()
    assert synthetic_result([]).fingerprint() == before
    a = synthetic_result([pub(0, 1)]).fingerprint()
    assert a != before and a != synthetic_result([pub(0, 2)]).fingerprint()
    assert synthetic_result([], [(0.0, "b", "q", 1, 0)]).fingerprint() != before


# -- real runs: producer → broker → consumers --------------------------------------------
def crashing_run(*, trace=True, seed=5, until=30.0):
    """Two producers (one persistent, one transient) → a queue → two consumers
    with prefetch 3; a consumer crashes at 4 s for 3 s and the broker at 10 s
    for 4 s.  The run ends while messages are still coming."""
    from simcomm.engine import World
    from simcomm.messaging import Broker, Consumer, Producer
    from simcomm.result import Result

    w = World(seed=seed, trace=trace)
    broker = Broker(w)
    q = broker.point_to_point("orders")
    Producer(w, "web", broker, q, rate=12.0, count=400)
    Producer(w, "batch", broker, q, rate=4.0, count=150, persistent=False)
    c1 = Consumer(w, "c1", broker, q, service_time=0.15, prefetch=3)
    Consumer(w, "c2", broker, q, service_time=0.15, prefetch=3)
    w.at(4.0, lambda: c1.crash(repair_after=3.0))
    w.at(10.0, lambda: broker.crash(repair_after=4.0))
    w.run(until=until)
    return Result(w)


def test_the_ledger_balances_across_a_consumer_crash_and_a_broker_crash():
    res = crashing_run()
    led = res.message_ledger()
    assert led["balanced"]
    nodes = res.world.nodes
    assert led["published"] == nodes["web"].published + nodes["batch"].published
    assert led["copies"] == led["consumed"] + led["dead_lettered"] + led["dropped"] \
        + led["queued"] + led["unacked"] + led["in_flight"]
    # the crashes left their marks: transient copies lost with the broker,
    # publishes refused while it was down, redeliveries after both crashes
    assert led["dropped_by_reason"]["broker_crash"] > 0
    assert led["dropped_by_reason"]["node_down"] > 0
    assert led["redeliveries"] > 0
    # the run ended mid-stream: some copies are still with the broker
    assert led["queued"] + led["unacked"] == led["held_by_brokers"] > 0
    d = res.deliveries
    lost = d[d["reason"] == "broker_crash"]
    assert (lost["producer"] == "batch").all()  # only transient messages die with it
    # every copy still held by the broker is known to the trace, and vice versa
    assert set(d.loc[d["fate"].isin(("queued", "unacked")), "message_id"]) == {
        mid for _, mid, _, _ in res._brokers()[0].contents()}


def test_the_summary_of_a_messaging_run_agrees_with_its_ledger_and_its_tables():
    res = crashing_run()
    s, led, d = res.summary(), res.message_ledger(), res.deliveries
    assert s["messages_published"] == led["published"]
    assert s["messages_consumed"] == led["consumed"]
    assert s["messages_lost"] == led["dropped"]
    assert s["messages_dead_lettered"] == led["dead_lettered"]
    assert s["messages_queued"] == led["queued"] + led["unacked"] + led["in_flight"]
    assert s["redeliveries"] == led["redeliveries"] == res.ordering()["redelivered"].sum()
    assert s["message_p95_latency"] == pytest.approx(res.message_latency()["p95"])
    assert res.message_latency()["messages"] == d["latency"].notna().sum()
    # a consumer never held more than its prefetch window
    assert res.consumer_inflight["unacked"].max() == 3
    assert (res.queue_depth["unacked"] <= 6).all()


def test_a_redelivery_to_another_consumer_is_out_of_order():
    """c1 takes message 1 and crashes before it is done; the broker requeues
    it and c2, which has meanwhile consumed 2 and 3, gets it redelivered:
    for the pair p → c2, message 1 comes after later-published ones."""
    from simcomm.engine import Node, World
    from simcomm.messaging import Broker, Consumer, publish
    from simcomm.result import Result

    w = World(seed=1)
    broker = Broker(w)
    q = broker.point_to_point("orders")
    p = Node(w, "p")
    c1 = Consumer(w, "c1", broker, q, service_time=5.0)
    Consumer(w, "c2", broker, q, service_time=0.5)
    for i in range(4):
        w.at(0.1 * (i + 1), lambda i=i: publish(p, broker, q, i))
    w.at(1.0, lambda: c1.crash())
    w.run(until=10)
    res = Result(w)
    rep = res.ordering().set_index(["producer", "consumer"])
    assert rep.loc[("p", "c2"), "out_of_order"] >= 1
    assert rep.loc[("p", "c2"), "redelivered"] == 1
    assert ("p", "c1") not in rep.index  # c1 never finished one
    first = res.deliveries.iloc[0]
    assert (first["consumer"], first["consumers"], first["redeliveries"]) == ("c2", 2, 1)
    assert first["fate"] == "consumed"
    assert res.message_ledger()["balanced"]


def everything_run(*, trace=True, seed=2, until=30.0, latency=None):
    """Every way a copy can end: fanout to two queues, a dead-letter exchange,
    a length limit of each kind, a delivery limit, unroutable publishes,
    rejects, manual and auto acks, a routing cost, consumer crashes, a broker
    hang and a broker crash."""
    from simcomm.engine import Link, World
    from simcomm.messaging import Broker, Consumer, Producer, Reject
    from simcomm.result import Result

    w = World(seed=seed, trace=trace, network=Link(latency=latency))
    broker = Broker(w, routing_rate=200.0)
    broker.declare_exchange("events", "fanout")
    broker.declare_exchange("dlx", "fanout")
    broker.declare_exchange("direct", "direct")
    broker.declare_queue("orders", max_length=30, dead_letter_exchange="dlx",
                         delivery_limit=2)
    broker.declare_queue("audit", max_length=10, overflow="reject-publish")
    broker.declare_queue("dead")
    broker.declare_queue("tmp", durable=False, max_length=5)
    broker.bind("orders", "events")
    broker.bind("audit", "events")
    broker.bind("dead", "dlx")
    broker.bind("tmp", "direct", "tmp")
    Producer(w, "web", broker, "events", rate=15.0)
    Producer(w, "batch", broker, "events", rate=3.0, persistent=False)
    Producer(w, "stray", broker, "direct", rate=1.0, routing_key="nowhere")
    Producer(w, "temp", broker, "direct", rate=2.0, routing_key="tmp")

    def picky(ctx, d):
        yield ctx.work()
        if d.message_id % 7 == 0:
            raise Reject(requeue=d.message_id % 2 == 0)

    c1 = Consumer(w, "c1", broker, "orders", handler=picky, prefetch=2, service_time=0.05)
    c2 = Consumer(w, "c2", broker, "orders", auto_ack=True, service_time=0.08)
    Consumer(w, "slow", broker, "audit", service_time=0.3, prefetch=5)
    w.at(5.0, lambda: c1.crash(repair_after=2.0))
    w.at(8.0, lambda: c2.crash(repair_after=2.0))
    w.at(12.0, lambda: broker.crash(repair_after=3.0))
    w.at(20.0, lambda: broker.hang())
    w.at(21.0, lambda: broker.unhang())
    w.at(25.0, lambda: c2.crash(repair_after=10.0))
    w.run(until=until)
    return Result(w)


def test_every_fate_is_accounted_for_in_a_run_that_has_them_all():
    res = everything_run()
    led = res.message_ledger()
    assert led["balanced"]
    reasons = led["dropped_by_reason"]
    for why in ("unroutable", "queue_full", "maxlen", "broker_crash", "node_down",
                "consumer_crash"):
        assert reasons.get(why, 0) > 0, why
    assert led["dead_lettered"] > 0 and led["dead_letter_copies"] == led["dead_lettered"]
    assert led["queued"] > 0 and led["redeliveries"] > 0
    d = res.deliveries
    assert set(d["fate"]) >= {"consumed", "dead_lettered", "dropped", "queued"}
    dead = d[d["dead_letter_copy"]]
    assert (dead["channel"] == "dead").all() and len(dead) == led["dead_lettered"]
    # the queues, and the exchanges of publishes that reached no queue
    assert set(d.loc[~d["dead_letter_copy"], "channel"]) == {
        "orders", "audit", "tmp", "direct", "events"}
    unrouted = d[d["channel"] == "events"]  # lost on the way or with the broker, or waiting
    assert set(zip(unrouted["fate"], unrouted["reason"], strict=True)) <= {
        ("dropped", "node_down"), ("dropped", "broker_crash"), ("in_flight", "")}


@pytest.mark.parametrize("run", [crashing_run, everything_run])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_summary_is_the_same_without_the_trace(run, seed):
    """The counters the brokers and consumers keep give the summary's
    messaging numbers that the trace gives (the latency needs the trace)."""
    from simcomm.result import MESSAGING_KEYS

    on, off = run(seed=seed), run(seed=seed, trace=False)
    a, b = on.summary(), off.summary()
    assert {k: a[k] for k in MESSAGING_KEYS[:-1]} == {k: b[k] for k in MESSAGING_KEYS[:-1]}
    assert math.isfinite(a["message_p95_latency"]) and math.isnan(b["message_p95_latency"])
    traced, counted = on.message_ledger(), off.message_ledger()
    assert traced["balanced"] and counted["balanced"]
    for key in ("published", "copies", "consumed", "dead_lettered", "dropped",
                "redeliveries", "held_by_brokers"):
        assert traced[key] == counted[key], key
    assert traced["queued"] + traced["unacked"] + traced["in_flight"] == \
        counted["queued"] + counted["unacked"] + counted["in_flight"]
    lost_on_the_way = sum(n for why, n in traced["dropped_by_reason"].items()
                          if why in ("node_down", "partition", "loss"))
    assert counted["dropped_by_reason"].get("not_arrived", 0) == lost_on_the_way


def test_with_network_latency_both_ledgers_balance():
    """Deliveries and acks take time on the wire: the copies on it at the end
    are in flight (traced) -- the counters see the same total."""
    on, off = everything_run(latency=0.01), everything_run(latency=0.01, trace=False)
    assert on.message_ledger()["balanced"] and off.message_ledger()["balanced"]
    assert on.summary()["messages_published"] == off.summary()["messages_published"]


def brokerless_run(*, trace=True, seed=3, until=20.0, latency=0.005):
    """ZeroMQ-style: PUSH to two competing consumers (one crashes), PUB to a
    durable and a non-durable subscription (whose subscriber crashes), a
    small high-water mark so full pipes drop."""
    from simcomm.engine import Link, World
    from simcomm.messaging import Consumer, Producer
    from simcomm.messaging.brokerless import Brokerless
    from simcomm.result import Result

    w = World(seed=seed, trace=trace, network=Link(latency=latency))
    t = Brokerless(w, high_water_mark=5)
    q = t.point_to_point("orders")
    news = t.publish_subscribe("news")
    Producer(w, "web", t, q, rate=30.0)
    Producer(w, "pr", t, news, rate=8.0)
    c1 = Consumer(w, "c1", t, q, service_time=0.06)
    Consumer(w, "c2", t, q, service_time=0.06)
    Consumer(w, "s1", t, news, subscription="a", service_time=0.01)
    s2 = Consumer(w, "s2", t, news, subscription="b", durable=False, service_time=0.01)
    w.at(3.0, lambda: c1.crash(repair_after=4.0))
    w.at(5.0, lambda: s2.crash(repair_after=2.0))
    w.run(until=until)
    return Result(w)


def test_brokerless_runs_are_accounted_for_the_same_way():
    res = brokerless_run()
    led = res.message_ledger()
    assert led["balanced"] and led["held_by_brokers"] == 0
    assert led["copies"] > led["published"]  # two subscriptions each get a copy
    assert led["dropped_by_reason"].get("hwm", 0) > 0
    assert led["dropped_by_reason"].get("consumer_crash", 0) > 0
    d = res.deliveries
    assert set(d["channel"]) == {"orders", "news.a", "news.b"}
    assert res.ordering()["duplicates"].sum() == 0  # nothing is ever sent twice
    assert res.summary()["redeliveries"] == 0


@pytest.mark.parametrize("seed", [1, 3])
def test_a_brokerless_summary_is_the_same_without_the_trace(seed):
    from simcomm.result import MESSAGING_KEYS

    on, off = brokerless_run(seed=seed), brokerless_run(seed=seed, trace=False)
    a, b = on.summary(), off.summary()
    assert {k: a[k] for k in MESSAGING_KEYS[:-1]} == {k: b[k] for k in MESSAGING_KEYS[:-1]}
    counted = off.message_ledger()
    assert counted["balanced"] and counted["copies"] == on.message_ledger()["copies"]


def test_without_the_trace_the_tables_are_empty_and_the_summary_still_counts():
    from simcomm.engine import World
    from simcomm.messaging import Broker, Consumer, Producer
    from simcomm.result import Result

    w = World(seed=4, trace=False)
    broker = Broker(w)
    q = broker.point_to_point("orders")
    Producer(w, "web", broker, q, rate=5.0, count=20)
    Consumer(w, "c", broker, q, service_time=0.01)
    w.run(until=30)
    res = Result(w)
    assert res.deliveries.empty and list(res.deliveries.columns) == list(am.DELIVERY_COLUMNS)
    assert res.consumer_inflight.empty and res.queue_depth.empty and res.ordering().empty
    assert res.message_latency()["messages"] == 0
    s = res.summary()
    assert (s["messages_published"], s["messages_consumed"], s["messages_queued"]) == (20, 20, 0)
    assert res.message_ledger()["balanced"]


def test_a_messaging_run_where_nothing_was_published_still_says_so():
    from simcomm.engine import World
    from simcomm.messaging import Broker, Consumer
    from simcomm.result import MESSAGING_KEYS, Result

    w = World(seed=0)
    broker = Broker(w)
    Consumer(w, "c", broker, broker.point_to_point("orders"))
    w.run(until=5)
    s = Result(w).summary()
    assert {k: s[k] for k in MESSAGING_KEYS[:-1]} == dict.fromkeys(MESSAGING_KEYS[:-1], 0)
    assert math.isnan(s["message_p95_latency"])


@pytest.mark.parametrize("trace", [True, False])
def test_auto_acked_deliveries_lost_on_the_way_to_a_crashed_consumer_are_dropped(trace):
    """The broker sends auto-acked deliveries to a consumer that has just
    crashed (its close is still on the wire): they are lost, and the
    ledger says so rather than leaving them in flight."""
    from simcomm.engine import Link, World
    from simcomm.messaging import Broker, Consumer, Producer
    from simcomm.result import Result

    w = World(seed=1, trace=trace, network=Link(latency=0.05))
    broker = Broker(w)
    q = broker.point_to_point("orders")
    Producer(w, "web", broker, q, rate=50.0, count=200)
    c = Consumer(w, "c", broker, q, auto_ack=True, service_time=0.01, prefetch=0)
    w.at(1.0, lambda: c.crash(repair_after=1.0))
    w.run(until=20)
    led = Result(w).message_ledger()
    assert led["balanced"]
    assert (led["published"], led["in_flight"], led["queued"]) == (200, 0, 0)
    assert led["consumed"] + led["dropped"] == 200 and led["dropped"] > 0
