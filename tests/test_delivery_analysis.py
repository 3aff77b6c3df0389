"""The delivery analysis of keyed records, on hand-built records tables.

Every anomaly (lost, duplicated, reordered, gap, phantom) and every cause
:mod:`simcomm.analysis.delivery` attributes is built here row by row, in the
records vocabulary of issue 9 (``RECORD_COLUMNS``); then hypothesis checks
that the counts balance on random histories and that the vectorised order
judgement agrees with a plain loop over each key's applications.  Real runs
are in tests/test_result_records.py.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.analysis import delivery as dv
from simcomm.engine.trace import RECORD_COLUMNS
from simcomm.errors import ParamError


def r(t, event, rid=-1, topic="t", p=0, off=-1, key="k", node="n", detail=""):
    """One records-table row."""
    return (float(t), event, rid, topic, p, off, key, node, detail)


def produced(*ids, t0=1.0, key="k", topic="t", p=0):
    """produce rows for ``ids`` (in this order, 0.1 s apart) and their appends
    at offsets 0, 1, ... on partition ``p``."""
    rows = []
    for i, rid in enumerate(ids):
        rows.append(r(t0 + 0.1 * i, "produce", rid, topic, p, key=key, node="prod"))
        rows.append(r(t0 + 0.1 * i + 0.05, "append", rid, topic, p, i, key, "b0"))
    return rows


def group(*members, g="g", topic="t", partitions=(0,)):
    """join rows making ``members`` a group; each assigned the partitions, round robin."""
    rows = [r(0, "join", -1, g, -1, -1, None, m) for m in members]
    rows += [r(0, "assign", -1, topic, p, -1, None, members[i % len(members)], "1")
             for i, p in enumerate(partitions)]
    return rows


def apply(t, rid, off, node="m1", p=0, key="k", topic="t", detail=""):
    return r(t, "apply", rid, topic, p, off, key, node, detail)


def qapply(t, rid, node="c1", key="k", queue="q", detail=""):
    return r(t, "apply", rid, queue, -1, -1, key, node, detail)


def qproduce(t, rid, key="k", channel="q"):
    return r(t, "produce", rid, channel, -1, -1, key, "web")


def crash(t, node):
    return (float(t), node, "crash", "")


def analyse(rows, events=(), mq=None):
    return dv.analyse(sorted(rows, key=lambda x: x[0]), events, mq)


def anomalies(d):
    """[(record_id, anomaly, cause), ...] in time order."""
    a = d.anomalies
    return list(zip(a["record_id"].tolist(), a["anomaly"].tolist(), a["cause"].tolist(),
                    strict=True))


def balanced(d):
    """The identities of the module docstring hold."""
    c = d.counts
    assert c["records_produced"] == c["records_applied"] + c["lost"] + c["pending"]
    assert c["applications"] == (c["records_applied"] - c["skip_only"] + c["phantom"]
                                 + c["duplicated"])
    return True


# -- in order ------------------------------------------------------------------------------
def test_one_key_applied_in_produced_order_has_no_anomaly():
    """Three records of one key, appended and applied in order: in order,
    applied indexes 0, 1, 2, latency produce → apply."""
    rows = [*group("m1"), *produced(1, 2, 3),
            apply(2.0, 1, 0), apply(2.1, 2, 1), apply(2.2, 3, 2)]
    d = analyse(rows)
    ko = d.key_order
    assert list(ko.columns) == list(dv.KEY_ORDER_COLUMNS)
    assert ko["kind"].tolist() == ["in_order"] * 3
    assert ko["produced_index"].tolist() == [0, 1, 2]
    assert ko["applied_index"].tolist() == [0, 1, 2]
    assert set(ko["reader"]) == {"g"}
    assert d.anomalies.empty and list(d.anomalies.columns) == list(dv.ANOMALY_COLUMNS)
    assert d.counts["records_produced"] == d.counts["records_applied"] == 3
    assert d.latency().tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert balanced(d)


def test_produced_order_is_by_time_then_record_id():
    """Two records produced at the same instant: the lower id comes first."""
    rows = [*group("m1"), r(1, "produce", 8, node="p"), r(1, "produce", 5, node="p"),
            apply(2, 8, 1), apply(3, 5, 0)]
    d = analyse(rows)
    ko = d.key_order.set_index("record_id")
    assert ko.loc[5, "produced_index"] == 0 and ko.loc[8, "produced_index"] == 1
    assert ko.loc[5, "kind"] == "reordered"


def test_the_key_is_the_produce_rows_when_a_record_is_sent_under_another():
    """A service may write its ledger row under the order id and send the
    record with a null key (the sticky partitioner scatters it): the order
    judged is the order id's."""
    rows = [*group("m1", "m2", partitions=(0, 1)),
            r(1, "produce", 1, key=7), r(1.1, "produce", 2, key=7),
            r(1.2, "append", 1, off=0, key=None), r(1.3, "append", 2, p=1, off=0, key=None),
            apply(2, 2, 0, node="m2", p=1, key=None), apply(3, 1, 0, node="m1", key=None)]
    d = analyse(rows)
    assert d.key_order["key"].tolist() == [7, 7]
    assert anomalies(d) == [(2, "gap", "competing consumers"),
                            (1, "reordered", "competing consumers")]


def test_keys_are_judged_separately():
    """Interleaved keys: each in its own order is no reorder."""
    rows = [*group("m1"), r(1, "produce", 1, key="a"), r(1.1, "produce", 2, key="b"),
            r(1.2, "produce", 3, key="a"),
            apply(2, 2, 1, key="b"), apply(2.1, 1, 0, key="a"), apply(2.2, 3, 2, key="a")]
    d = analyse(rows)
    assert d.anomalies.empty
    assert d.key_order["applied_index"].tolist() == [0, 0, 1]


def test_a_null_key_is_never_judged_for_order():
    """Kafka promises order per partition; a null-keyed record has no place
    in a key's order: no produced index, never reordered, still counted."""
    rows = [*group("m1"), r(1, "produce", 1, key=None), r(1.1, "produce", 2, key=None),
            apply(2, 2, 1, key=None), apply(2.1, 1, 0, key=None), apply(2.2, 1, 0, key=None)]
    d = analyse(rows)
    ko = d.key_order
    assert ko["produced_index"].isna().all() and ko["applied_index"].isna().all()
    assert ko["kind"].tolist() == ["in_order", "in_order", "duplicate"]
    assert [a for _, a, _ in anomalies(d)] == ["duplicated"]
    assert d.counts["records_applied"] == 2 and balanced(d)


# -- duplicates ------------------------------------------------------------------------------
def test_a_record_appended_twice_is_a_retry_in_flight_duplicate():
    """Without idempotence a timed-out batch that had in fact been appended is
    appended again: two offsets, two applications."""
    rows = [*group("m1"), r(1, "produce", 1, node="prod"), r(1.1, "append", 1, off=0),
            r(1.5, "retry", 1, node="prod", detail="timeout"), r(1.6, "append", 1, off=1),
            apply(2, 1, 0), apply(2.1, 1, 1)]
    d = analyse(rows)
    assert anomalies(d) == [(1, "duplicated", "retry in flight")]
    assert d.key_order["kind"].tolist() == ["in_order", "duplicate"]
    assert d.key_order["applied_index"].isna().tolist() == [False, True]
    assert d.counts["duplicated"] == 1 and d.counts["duplicated_per_10k"] == 10_000
    assert balanced(d)


def test_a_record_relayed_twice_is_a_relay_crash_duplicate():
    """The outbox relay sent, crashed before marking, and sent again."""
    rows = [*group("m1"), r(1, "produce", 1, node="svc", detail="outbox"),
            r(2, "send", 1, node="relay", detail="relay"), r(2.1, "append", 1, off=0),
            r(5, "send", 1, node="relay", detail="relay"), r(5.1, "append", 1, off=1),
            apply(3, 1, 0), apply(6, 1, 1)]
    d = analyse(rows, [crash(4, "relay")])
    assert anomalies(d) == [(1, "duplicated", "relay crash")]


def test_the_same_offset_applied_again_after_the_applier_crashed_is_crash_before_commit():
    """Process, then commit (at-least-once): a crash in between re-delivers
    the record from the last committed offset to the new owner."""
    rows = [*group("m1", "m2"), *produced(1), apply(2, 1, 0, node="m1"),
            r(60, "revoke", -1, "t", 0, node="m2"), apply(61, 1, 0, node="m2")]
    d = analyse(rows, [crash(3, "m1")])
    assert anomalies(d) == [(1, "duplicated", "crash before commit")]


def test_the_same_offset_applied_again_after_a_revoke_is_a_rebalance():
    rows = [*group("m1", "m2"), *produced(1), apply(2, 1, 0, node="m1"),
            r(3, "revoke", -1, "t", 0, node="m1", detail="2"),
            r(4, "assign", -1, "t", 0, node="m2", detail="3"), apply(5, 1, 0, node="m2")]
    d = analyse(rows)
    assert anomalies(d) == [(1, "duplicated", "rebalance")]


def test_a_zombie_expelled_while_another_reads_its_partition_is_a_rebalance():
    """A member that hung past the session timeout is expired; the new owner
    re-reads from the committed offset (the zombie's window)."""
    rows = [*group("m1", "m2"), *produced(1), apply(2, 1, 0, node="m1"),
            r(50, "expire", -1, "g", -1, -1, None, "m1", "session_timeout"),
            apply(51, 1, 0, node="m2")]
    assert anomalies(analyse(rows)) == [(1, "duplicated", "rebalance")]


def test_the_same_offset_applied_again_by_the_same_member_is_a_redelivery():
    rows = [*group("m1"), *produced(1), apply(2, 1, 0), apply(3, 1, 0)]
    assert anomalies(analyse(rows)) == [(1, "duplicated", "redelivery")]


def test_on_a_queue_a_second_apply_is_a_redelivery_or_a_crash_before_commit():
    """RabbitMQ: a nack or a closed channel redelivers; a consumer crashing
    before its ack (the queue's commit) gets it redelivered to another."""
    rows = [qproduce(1, 1), qapply(2, 1, "c1"), qapply(3, 1, "c1", detail="redelivered"),
            qproduce(1.1, 2), qapply(2.1, 2, "c2"), qapply(9, 2, "c1", detail="redelivered")]
    d = analyse(rows, [crash(5, "c2")])
    assert anomalies(d) == [(1, "duplicated", "redelivery"),
                            (2, "duplicated", "crash before commit")]
    assert set(d.units["reader"]) == {"q"}


def test_a_repeat_the_dedup_skipped_is_no_duplicate():
    """A processed-ids table in the effect's transaction: the repeat is
    skipped, listed with why it came, and not counted."""
    rows = [*group("m1"), *produced(1), apply(2, 1, 0),
            r(3, "skip", 1, "t", 0, 0, "k", "m1", "processed_ids")]
    d = analyse(rows)
    assert d.anomalies.empty
    assert d.key_order["kind"].tolist() == ["in_order", "skipped"]
    assert d.key_order["cause"].tolist() == ["", "redelivery"]
    assert d.counts["skipped"] == 1 and d.counts["applications"] == 1 and balanced(d)


# -- reorders and gaps ----------------------------------------------------------------------
def test_competing_consumers_on_a_queue_reorder_and_leave_a_gap():
    """Two consumers on one queue: the second record finishes first.  The
    first is reordered (applied after a later one), the second applied
    while the first was missing (a gap); both are the competing consumers'."""
    rows = [qproduce(1, 1), qproduce(1.1, 2), qapply(2, 2, "c2"), qapply(2.5, 1, "c1")]
    d = analyse(rows)
    assert anomalies(d) == [(2, "gap", "competing consumers"),
                            (1, "reordered", "competing consumers")]
    ko = d.key_order
    assert ko["kind"].tolist() == ["in_order", "reordered"]
    assert ko["applied_index"].tolist() == [0, 1]
    assert ko["produced_index"].tolist() == [1, 0]
    assert d.counts["reordered"] == 1 and d.counts["gaps"] == 1


def test_a_redelivered_record_on_a_queue_is_reordered_by_redelivery():
    rows = [qproduce(1, 1), qproduce(1.1, 2), qapply(2, 2, "c1"),
            qapply(3, 1, "c1", detail="redelivered")]
    d = analyse(rows)
    assert ("reordered", "redelivery") in {(a, c) for _, a, c in anomalies(d)}


def test_a_batch_retried_behind_a_later_one_is_reordered_by_retry_in_flight():
    """max.in.flight > 1 without idempotence: the first batch fails, the
    second lands, the retry of the first lands after it."""
    rows = [*group("m1"), r(1, "produce", 1), r(1.1, "produce", 2),
            r(1.2, "append", 2, off=0), r(1.3, "retry", 1, detail="not_leader"),
            r(1.4, "append", 1, off=1), apply(2, 2, 0), apply(2.1, 1, 1)]
    d = analyse(rows)
    assert anomalies(d) == [(2, "gap", "retry in flight"), (1, "reordered", "retry in flight")]


def test_a_zombie_applying_late_below_the_new_owners_position_is_a_rebalance_reorder():
    """The log holds 1 then 2; the old owner (a zombie) applies 1 after the
    new owner, which started past it, applied 2."""
    rows = [*group("m1", "m2"), *produced(1, 2), apply(5, 2, 1, node="m2"),
            apply(6, 1, 0, node="m1")]
    d = analyse(rows)
    assert anomalies(d) == [(2, "gap", "rebalance"), (1, "reordered", "rebalance")]


def test_records_of_one_key_on_two_partitions_are_reordered_by_competing_consumers():
    rows = [*group("m1", "m2", partitions=(0, 1)), r(1, "produce", 1), r(1.1, "produce", 2),
            r(1.2, "append", 1, off=0), r(1.3, "append", 2, p=1, off=0),
            apply(2, 2, 0, node="m2", p=1), apply(3, 1, 0, node="m1")]
    d = analyse(rows)
    assert anomalies(d)[-1] == (1, "reordered", "competing consumers")


def test_dual_writes_committed_in_another_order_than_sent_are_reordered_by_dual_write():
    """Publish first, then commit: the sends land 1, 2 but the transactions
    commit 2, 1 -- the produced order is the commit order."""
    rows = [*group("m1"), r(1, "send", 1, detail="dual_write"), r(1.01, "append", 1, off=0),
            r(1.1, "send", 2, detail="dual_write"), r(1.11, "append", 2, off=1),
            r(1.2, "produce", 2, detail="dual_write"), r(1.3, "produce", 1, detail="dual_write"),
            apply(2, 1, 0), apply(2.1, 2, 1)]
    d = analyse(rows)
    assert (2, "reordered", "dual write") in anomalies(d)


def test_gap_is_counted_when_the_predecessor_is_lost():
    """0 never reached the log (the producer gave up), 1 applied: a gap
    caused by the loss, no reorder."""
    rows = [*group("m1"), r(1, "produce", 1), r(1.1, "produce", 2), r(1.2, "append", 2, off=0),
            r(130, "fail", 1, node="prod", detail="delivery_timeout"), apply(2, 2, 0)]
    d = analyse(rows)
    assert anomalies(d) == [(1, "lost", "producer gave up"), (2, "gap", "producer gave up")]
    assert d.counts["lost"] == 1 and d.counts["reordered"] == 0 and balanced(d)


def test_gap_on_a_queue_with_the_predecessor_still_in_a_handler():
    rows = [qproduce(1, 1), qproduce(1.1, 2), qapply(2, 2, "c2")]
    d = analyse(rows)
    assert anomalies(d) == [(2, "gap", "competing consumers")]
    assert d.counts["pending"] == 1 and balanced(d)


def test_two_three_one_orders_count_each_late_arrival_once():
    """Produced 0, 1, 2 applied 2, 0, 1: two reorders (0 and 1 after 2),
    one gap (2 before 1); applied 0, 1 in place after 2 are no gaps."""
    rows = [qproduce(1, 10), qproduce(1.1, 11), qproduce(1.2, 12),
            qapply(2, 12, "c3"), qapply(2.1, 10, "c1"), qapply(2.2, 11, "c2")]
    d = analyse(rows)
    assert [(rid, a) for rid, a, _ in anomalies(d)] == [(12, "gap"), (10, "reordered"),
                                                        (11, "reordered")]


# -- losses and pending -------------------------------------------------------------------
def test_a_truncated_record_is_lost_to_leader_failover():
    """acks=1: acknowledged by the old leader, above the new leader's log end."""
    rows = [*group("m1"), r(1, "produce", 1), r(1.1, "append", 1, off=0),
            r(1.2, "ack", 1, off=0, detail="1"),
            r(10, "truncate", 1, off=0, node="b0", detail="leader_failover")]
    d = analyse(rows)
    assert anomalies(d) == [(1, "lost", "leader failover")]
    assert d.units["status"].tolist() == ["lost"]


def test_a_truncated_record_appended_again_later_is_not_lost():
    rows = [*group("m1"), r(1, "produce", 1), r(1.1, "append", 1, off=0),
            r(10, "truncate", 1, off=0, node="b0"), r(11, "retry", 1),
            r(11.1, "append", 1, off=0, node="b1")]
    d = analyse(rows)
    assert d.units["status"].tolist() == ["pending"]


def test_an_acks_0_record_the_log_went_on_without_is_lost_unheard():
    """acks=0: the producer counts a record done as it sends it; one never
    appended while later ones were is lost, and nobody was told.  The last
    one sent, with nothing appended after it, may still be on its way."""
    rows = [*group("m1"), r(1, "produce", 1), r(1, "ack", 1, off=-1, detail="0"),
            r(1.1, "produce", 2), r(1.1, "ack", 2, off=-1, detail="0"),
            r(1.2, "append", 2, off=0), r(1.3, "produce", 3), r(1.3, "ack", 3, detail="0"),
            apply(2, 2, 0)]
    d = analyse(rows)
    assert anomalies(d) == [(1, "lost", "acks=0"), (2, "gap", "acks=0")]
    assert d.counts["pending"] == 1 and balanced(d)


def test_committed_past_then_crashed_is_lost_before_processing():
    """Commit, then process (at-most-once): the member committed offset 2 and
    crashed after applying only offset 0."""
    rows = [*group("m1"), *produced(1, 2), apply(2, 1, 0),
            r(1.9, "commit", -1, "t", 0, 2, None, "m1", "before")]
    d = analyse(rows, [crash(2.5, "m1")])
    assert anomalies(d) == [(2, "lost", "commit before processing")]


def test_committed_past_without_a_crash_is_still_pending():
    """The batch is in the handler when the run ends: not lost yet."""
    rows = [*group("m1"), *produced(1, 2), apply(2, 1, 0),
            r(1.9, "commit", -1, "t", 0, 2, None, "m1", "before")]
    d = analyse(rows)
    assert d.anomalies.empty and d.counts["pending"] == 1 and balanced(d)


def test_a_reset_to_latest_past_a_record_loses_it():
    rows = [*group("m1"), *produced(1), r(5, "reset", -1, "t", 0, 1, None, "m1", "latest")]
    assert anomalies(analyse(rows)) == [(1, "lost", "offset reset")]


def test_a_dual_write_never_sent_is_lost_to_the_dual_write():
    """Commit then publish: the service crashed between its two writes."""
    rows = [*group("m1"), r(1, "produce", 1, node="svc", detail="dual_write")]
    d = analyse(rows, [crash(1.5, "svc")])
    assert anomalies(d) == [(1, "lost", "dual write")]


def test_an_applied_record_never_produced_is_a_phantom():
    """Publish first, then commit: the transaction aborted, the message was out."""
    rows = [*group("m1"), r(1, "send", 1, node="svc", detail="dual_write"),
            r(1.1, "append", 1, off=0), r(1.2, "tx_abort", 7, "db", detail="crash"),
            apply(2, 1, 0), apply(3, 1, 0), apply(4, 2, 1)]
    d = analyse(rows)
    assert anomalies(d) == [(1, "phantom", "dual write"), (1, "duplicated", "redelivery"),
                            (2, "phantom", "unknown")]
    assert d.key_order["kind"].tolist() == ["phantom", "duplicate", "phantom"]
    c = d.counts
    assert (c["phantom"], c["records_produced"], c["applications"]) == (2, 0, 3)
    assert math.isnan(c["lost_per_10k"]) and balanced(d)


def test_a_keyed_queue_publish_dropped_by_the_broker_has_the_brokers_reason():
    """The queue broker's trace.mq: drop consumer_crash (auto-ack: acked on
    delivery, lost with the consumer) is a commit before processing; a full
    queue a broker drop; a dead-lettered copy is lost to its queue, and the
    copy on the dead-letter queue is no new expectation."""
    rows = [qproduce(1, 1), qproduce(1.1, 2), qproduce(1.2, 3), qproduce(1.3, 4),
            qapply(2, 4, "c1")]
    mq = [(1.0, "publish", 1, "", "web", "q"), (1.0, "enqueue", 1, "q", "b", ""),
          (1.5, "deliver", 1, "q", "c1", ""), (1.6, "drop", 1, "q", "c1", "consumer_crash"),
          (1.1, "publish", 2, "", "web", "q"), (1.1, "drop", 2, "q", "b", "queue_full"),
          (1.2, "publish", 3, "", "web", "q"), (1.2, "enqueue", 3, "q", "b", ""),
          (1.3, "dead_letter", 3, "q", "b", "rejected"),
          (1.3, "enqueue", 3, "dlq", "b", "dead_letter"),
          (1.3, "publish", 4, "", "web", "q"), (1.3, "enqueue", 4, "q", "b", "")]
    d = analyse(rows, mq=sorted(mq, key=lambda m: m[0]))
    lost = {rid: c for rid, a, c in anomalies(d) if a == "lost"}
    assert lost == {1: "commit before processing", 2: "broker drop", 3: "dead lettered"}
    assert set(d.units["reader"]) == {"q"} and balanced(d)


# -- readers ------------------------------------------------------------------------------------
def test_two_groups_each_apply_every_record_once_without_duplicates():
    """Two consumer groups on one topic (two services): each is a reader, a
    record applied once by each is no duplicate; one group missing a
    record has it pending."""
    rows = [*group("a1", g="billing"), *group("b1", g="kitchen"), *produced(1, 2),
            apply(2, 1, 0, node="a1"), apply(2, 2, 1, node="a1"), apply(3, 1, 0, node="b1")]
    d = analyse(rows)
    assert d.anomalies.empty
    assert sorted(d.units["reader"]) == ["billing", "billing", "kitchen", "kitchen"]
    c = d.counts
    assert (c["records_produced"], c["records_applied"], c["pending"]) == (4, 3, 1)


def test_a_member_without_a_group_reads_under_its_topics_name():
    rows = [*produced(1), apply(2, 1, 0, node="solo")]
    d = analyse(rows)
    assert d.key_order["reader"].tolist() == ["t"]


def test_a_produced_topic_nobody_reads_is_pending_for_no_reader():
    rows = [*produced(1)]
    d = analyse(rows)
    assert d.units["reader"].tolist() == [None]
    assert d.counts["pending"] == 1


# -- the tables around the groups ----------------------------------------------------------
def test_assignments_run_from_assign_to_revoke_leave_expire_or_the_end():
    rows = [r(0, "join", -1, "g", -1, -1, None, "m1"), r(0, "join", -1, "g", -1, -1, None, "m2"),
            r(1, "assign", -1, "t", 0, node="m1", detail="1"),
            r(1, "assign", -1, "t", 1, node="m2", detail="1"),
            r(5, "revoke", -1, "t", 0, node="m1", detail="1"),
            r(6, "assign", -1, "t", 0, node="m2", detail="2"),
            r(7, "assign", -1, "t", 1, node="m2", detail="2"),
            r(9, "expire", -1, "g", -1, -1, None, "m2", "session_timeout"),
            r(10, "assign", -1, "t", 0, node="m1", detail="3")]
    a = dv.assignments(rows, until=20.0)
    assert list(a.columns) == list(dv.ASSIGNMENT_COLUMNS)
    got = [(p, m, s, e, g) for p, m, s, e, g in zip(a["partition"], a["member"], a["start"],
                                                    a["end"], a["generation"], strict=True)]
    assert got == [(0, "m1", 1, 5, 1), (1, "m2", 1, 7, 1), (0, "m2", 6, 9, 2),
                   (1, "m2", 7, 9, 2), (0, "m1", 10, 20, 3)]
    assert set(a["group"]) == {"g"}
    assert math.isnan(dv.assignments(rows)["end"].iloc[-1])


def test_rebalances_pair_starts_with_ends_per_group():
    rows = [r(1, "rebalance_start", -1, "g", -1, -1, None, "kafka-0", "join"),
            r(1.5, "rebalance_start", -1, "g", -1, -1, None, "kafka-0", "session_timeout"),
            r(2, "rebalance_end", -1, "g", -1, -1, None, "kafka-0", "4"),
            r(3, "rebalance_start", -1, "h", -1, -1, None, "kafka-1", "follow_up"),
            r(4, "rebalance_start", -1, "g", -1, -1, None, "kafka-0", "leave")]
    rb = dv.rebalances(rows)
    assert list(rb.columns) == list(dv.REBALANCE_COLUMNS)
    assert rb[["group", "start", "why", "generation"]].values.tolist() == [
        ["g", 1.0, "join,session_timeout", 4], ["h", 3.0, "follow_up", -1],
        ["g", 4.0, "leave", -1]]
    assert rb["end"].tolist()[0] == 2.0 and rb["end"].isna().tolist() == [False, True, True]
    d = analyse([*produced(1), *rows])
    assert d.counts["rebalances"] == 3


def test_consumer_lag_follows_the_log_end_and_the_committed_offset():
    rows = [*group("m1"), *produced(1, 2, 3),
            r(1.12, "commit", -1, "t", 0, 1, None, "m1", "auto"),
            r(1.4, "commit", -1, "t", 0, 3, None, "m1", "auto"),
            r(2, "truncate", 3, "t", 0, 2, "k", "b0"), r(2.1, "append", 9, "t", 0, 2, "k", "b1")]
    lag = dv.consumer_lag(sorted(rows, key=lambda x: x[0]))
    assert list(lag.columns) == list(dv.LAG_COLUMNS)
    got = np.round(lag[["time", "log_end", "committed", "lag"]].to_numpy(float), 6).tolist()
    # from the first commit; a truncation moves the log end back below the
    # committed offset (the rows say so: a negative lag)
    assert got == [[1.12, 1, 1, 0], [1.15, 2, 1, 1], [1.25, 3, 1, 2], [1.4, 3, 3, 0],
                   [2.0, 2, 3, -1], [2.1, 3, 3, 0]]
    assert set(lag["group"]) == {"g"}
    assert dv.consumer_lag([r(1, "append", 1, off=0)]).empty


def test_outbox_lag_from_commit_to_first_application_and_phantoms():
    rows = [*group("m1"), r(1, "produce", 1, detail="outbox"), r(1.5, "send", 1, detail="relay"),
            r(1.6, "append", 1, off=0), apply(2, 1, 0), r(3, "send", 1, detail="relay"),
            r(4, "produce", 2, detail="outbox"),
            r(5, "send", 3, detail="dual_write"), r(5.1, "append", 3, off=1), apply(6, 3, 1),
            r(7, "produce", 4)]
    ob = dv.outbox_lag(rows)
    assert list(ob.columns) == list(dv.OUTBOX_COLUMNS)
    assert ob["record_id"].tolist() == [1, 2, 3]
    assert ob.loc[0, ["committed", "sent", "applied", "lag"]].tolist() == [1.0, 1.5, 2.0, 1.0]
    assert np.isnan(ob.loc[1, "sent"]) and np.isnan(ob.loc[1, "lag"])
    assert np.isnan(ob.loc[2, "committed"]) and ob.loc[2, "applied"] == 6.0


def test_delivery_causes_is_tidy_and_ordered():
    rows = [qproduce(1, 1), qproduce(1.1, 2), qproduce(1.2, 3), qapply(2, 3, "c2"),
            qapply(2.1, 2, "c1"), qapply(2.2, 1, "c3"), qapply(3, 1, "c3")]
    c = analyse(rows).causes()
    assert list(c.columns) == list(dv.CAUSE_COLUMNS)
    assert c.values.tolist() == [["duplicated", "redelivery", 1],
                                 ["reordered", "competing consumers", 2],
                                 ["gap", "competing consumers", 2]]
    assert dv.delivery_causes(analyse([]).anomalies).empty


def test_an_empty_table_analyses_to_empty_tables_and_nan_rates():
    d = dv.analyse([])
    assert d.key_order.empty and d.anomalies.empty and d.units.empty
    assert d.counts["records_produced"] == 0 and math.isnan(d.counts["lost_per_10k"])
    assert dv.assignments([]).empty and dv.rebalances([]).empty
    assert dv.outbox_lag([]).empty and dv.consumer_lag([]).empty


def test_records_frame_types_and_a_bad_table():
    df = dv.records_frame([r(1, "produce", 1, key=7)])
    assert list(df.columns) == list(RECORD_COLUMNS)
    assert df["time"].dtype == float and df["record_id"].dtype == np.int64
    assert df["key"].tolist() == [7]
    assert dv.records_frame(df) is df
    with pytest.raises(ParamError, match="records"):
        dv.records_frame(pd.DataFrame({"time": [1.0]}))


# -- properties ---------------------------------------------------------------------------------
def _reference_order(key_order):
    """A plain loop over each (reader, key)'s first applications: the
    reordered and gap flags of the module docstring."""
    top: dict = defaultdict(lambda: -1)
    done: dict = defaultdict(set)
    reordered = gaps = 0
    for key, pidx, reader, kind in zip(key_order["key"], key_order["produced_index"],
                                       key_order["reader"], key_order["kind"], strict=True):
        if kind not in ("in_order", "reordered") or key is None:
            continue
        i = int(pidx)
        s = (reader, key)
        if i < top[s]:
            reordered += 1
        if i >= 1 and i - 1 not in done[s]:
            gaps += 1
        top[s] = max(top[s], i)
        done[s].add(i)
    return reordered, gaps


@st.composite
def histories(draw):
    """Records of a few keys on one partitioned topic and one queue: each
    produced (or not: a phantom), appended, failed or truncated, applied 0-3
    times in any order, sometimes skipped, by one of three members."""
    n = draw(st.integers(1, 25))
    rows = [*group("m1", "m2", "m3", partitions=(0, 1))]
    events = []
    offsets = [0, 0]
    t = 1.0
    for rid in range(n):
        key = draw(st.sampled_from(["a", "b", "c", None]))
        queue = draw(st.booleans())
        p = -1 if queue else draw(st.integers(0, 1))
        topic = "q" if queue else "t"
        if draw(st.integers(0, 9)) > 0:
            rows.append(r(t, "produce", rid, topic, p, key=key))
        off = -1
        if not queue:
            fate = draw(st.sampled_from(["append", "append", "append", "fail", "truncate"]))
            if fate == "fail":
                rows.append(r(t + 0.01, "fail", rid, topic, p, key=key, detail="retries"))
            else:
                off = offsets[p]
                offsets[p] += 1
                rows.append(r(t + 0.01, "append", rid, topic, p, off, key, "b0"))
                if fate == "truncate":
                    rows.append(r(t + 0.02, "truncate", rid, topic, p, off, key, "b0"))
        for _ in range(draw(st.integers(0, 3))):
            when = t + draw(st.floats(0.05, 30.0))
            node = draw(st.sampled_from(["m1", "m2", "m3"]))
            ev = "skip" if draw(st.integers(0, 5)) == 0 else "apply"
            rows.append(r(when, ev, rid, topic, p, off, key, node,
                          draw(st.sampled_from(["", "redelivered"]))))
        t += draw(st.floats(0.0, 1.0))
    if draw(st.booleans()):
        events.append(crash(draw(st.floats(0.0, 40.0)), draw(st.sampled_from(["m1", "m2"]))))
    if draw(st.booleans()):
        rows.append(r(draw(st.floats(0.0, 40.0)), "commit", -1, "t", 0,
                      draw(st.integers(0, 10)), None, "m1", "before"))
    rows.sort(key=lambda x: x[0])
    return rows, events


@settings(max_examples=25, deadline=None)
@given(histories())
def test_counts_balance_and_every_anomaly_has_a_known_cause(history):
    rows, events = history
    d = dv.analyse(rows, events)
    assert balanced(d)
    c = d.counts
    applies = sum(1 for x in rows if x[1] == "apply")
    skips = sum(1 for x in rows if x[1] == "skip")
    assert c["applications"] == applies and c["skipped"] == skips
    assert len(d.key_order) == applies + skips
    assert set(d.key_order["kind"]) <= set(dv.KINDS)
    assert set(d.anomalies["anomaly"]) <= set(dv.ANOMALIES)
    assert set(d.anomalies["cause"]) <= set(dv.CAUSES)
    assert set(d.units["status"]) <= {"applied", "lost", "pending", "phantom"}
    # duplicated = applications beyond each unit's first
    per_unit = d.units["applications"].to_numpy()
    assert c["duplicated"] == int(np.maximum(per_unit - 1, 0).sum())
    assert c["lost"] == int((d.units["status"] == "lost").sum())
    # the vectorised order judgement agrees with a plain loop
    assert (c["reordered"], c["gaps"]) == _reference_order(d.key_order)
    # the time column is sorted; first applications have an applied index
    assert d.anomalies["time"].is_monotonic_increasing
    first = d.key_order["kind"].isin(("in_order", "reordered"))
    keyed = d.key_order["produced_index"].notna()
    assert d.key_order.loc[first & keyed, "applied_index"].notna().all()
    assert d.key_order.loc[~first, "applied_index"].isna().all()
    # per 10k
    if c["records_produced"]:
        assert c["lost_per_10k"] == pytest.approx(c["lost"] / c["records_produced"] * 1e4)
