"""The delivery tables and summary keys of real runs with keyed records.

Runs built from the issue-9 components (a 3-broker :class:`LogCluster`, a
:class:`LogProducer`, a consumer group of :class:`GroupConsumer`), issue 8's
broker with keyed publishes, and the ``outbox`` scenario; the rules of each
table are tested on hand-built rows in tests/test_delivery_analysis.py.
REFERENCE §3: commit before processing is at-most-once (a crash loses),
after is at-least-once (a crash applies again); one consumer per partition
keeps each key's order; competing consumers on one queue break it (§6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simcomm
from simcomm.analysis import delivery as dv
from simcomm.analysis import delivery_row
from simcomm.engine import ClosedLoop, Constant, Exponential, Instance, World
from simcomm.engine.trace import RECORD_COLUMNS
from simcomm.errors import ParamError
from simcomm.messaging import Broker, Consumer, LogCluster, LogProducer, Producer
from simcomm.messaging.group import GroupCoordinator
from simcomm.messaging.group_consumer import GroupConsumer
from simcomm.result import (
    DELIVERY_KEYS,
    MESSAGING_KEYS,
    RECORD_KEYS,
    REQUEST_KEYS,
    SUMMARY_HELP,
    SUMMARY_UNITS,
    Result,
)


def log_run(seed: int = 1, *, commit: str = "after", crash_at: float | None = None,
            records: int = 600, members: int = 3, trace: bool = True,
            until: float = 60.0) -> tuple[Result, LogProducer, list[GroupConsumer]]:
    """600 orders' events over 40 keys to a 6-partition topic, one every
    0.03 s; a group of ``members`` applying each in 20 ms, which first waits
    3 s for its members (``group.initial.rebalance.delay.ms``), so that its
    first batches are large; with ``crash_at`` the member ``m1`` dies then
    (for good: its partitions move to the others after the 45 s session
    timeout)."""
    w = World(seed=seed, trace=trace)
    cluster = LogCluster(w, brokers=3)
    cluster.create_topic("orders", 6)
    GroupCoordinator(cluster, initial_rebalance_delay=3.0)
    producer = LogProducer(w, "order-service", cluster, "orders")
    group = [GroupConsumer(w, f"m{i}", cluster, "history", "orders", commit=commit,
                           auto_offset_reset="earliest", service_time=0.02)
             for i in range(members)]
    env = w.env

    def orders():
        for i in range(records):
            producer.send(f"order-{i % 40}", i)
            yield env.timeout(0.03)

    env.process(orders())
    if crash_at is not None:
        w.at(crash_at, group[1].crash)
    w.run(until=until)
    return Result(w), producer, group


@pytest.fixture(scope="module")
def calm() -> Result:
    return log_run()[0]


# -- a run of records alone -------------------------------------------------------------------
def test_one_consumer_per_partition_keeps_every_keys_order(calm):
    """Sharded channel + idempotent producer, no fault: every record applied
    once, in its key's order."""
    s = calm.summary()
    assert s["records_produced"] == 600 == s["records_applied"] + s["pending"]
    assert (s["lost"], s["duplicated"], s["reordered"], s["gaps"], s["phantom"]) == (0,) * 5
    assert calm.delivery_anomalies().empty and calm.delivery_causes().empty
    ko = calm.key_order()
    assert list(ko.columns) == list(dv.KEY_ORDER_COLUMNS)
    assert set(ko["kind"]) == {"in_order"} and set(ko["reader"]) == {"history"}
    assert (ko["applied_index"] == ko["produced_index"]).all()
    assert len(ko) == s["records_applied"]


def test_a_run_of_records_alone_is_summarised_in_records(calm):
    """No client requests, no issue-8 messaging: the delivery keys first,
    latency produce → first application, the load in records; no request
    or messaging keys, no warning."""
    s = calm.summary()
    want = [*DELIVERY_KEYS, *RECORD_KEYS, "produce_rate", "record_capacity", "offered_load",
            "bottleneck", "bottleneck_utilisation", "stable", "messages_sent",
            "messages_dropped"]
    assert list(s) == want
    assert all(k in SUMMARY_UNITS and k in SUMMARY_HELP for k in s)
    assert not set(s) & (set(REQUEST_KEYS) - {"pending"}) and not set(s) & set(MESSAGING_KEYS)
    lat = calm._delivery.latency()
    assert s["record_p50_latency"] == pytest.approx(float(np.percentile(lat, 50)))
    assert 0 < s["record_p50_latency"] <= s["record_p95_latency"] <= s["record_p99_latency"]
    assert s["record_throughput"] == pytest.approx(s["records_applied"] / 60.0)
    assert s["produce_rate"] == pytest.approx(600 / 60.0)
    assert s["stable"] and calm.warnings() == []
    assert s["lost_per_10k"] == 0.0 and s["rebalances"] == len(calm.rebalances()) >= 1
    assert "600 records produced" in repr(calm)


def test_assignments_give_each_partition_one_owner_at_a_time(calm):
    a = calm.assignments()
    assert list(a.columns) == list(dv.ASSIGNMENT_COLUMNS)
    assert set(a["group"]) == {"history"} and set(a["partition"]) == set(range(6))
    assert (a["end"] >= a["start"]).all() and a["end"].max() == 60.0
    for _, iv in a.groupby("partition"):
        iv = iv.sort_values("start")
        assert (iv["start"].to_numpy()[1:] >= iv["end"].to_numpy()[:-1]).all()
    rb = calm.rebalances()
    assert list(rb.columns) == list(dv.REBALANCE_COLUMNS)
    assert rb["generation"].is_monotonic_increasing and (rb["end"] >= rb["start"]).all()


def test_consumer_lag_is_drained_at_the_end_of_a_calm_run(calm):
    lag = calm.consumer_lag()
    assert list(lag.columns) == list(dv.LAG_COLUMNS)
    assert set(lag["partition"]) == set(range(6)) and set(lag["group"]) == {"history"}
    assert (lag["lag"] == lag["log_end"] - lag["committed"]).all()
    last = lag.groupby("partition").tail(1)
    assert (last["lag"] >= 0).all() and last["lag"].sum() <= calm.summary()["pending"] + 6
    assert lag["time"].is_monotonic_increasing


def test_commit_before_processing_loses_a_crashed_batch_and_never_duplicates():
    """At-most-once: m1 commits its position, then dies mid-batch."""
    res = log_run(commit="before", crash_at=3.3)[0]
    s = res.summary()
    causes = res.delivery_causes()
    assert s["lost"] > 0 and s["duplicated"] == 0
    assert set(causes.loc[causes["anomaly"] == "lost", "cause"]) == {"commit before processing"}
    lost = res.delivery_anomalies().query("anomaly == 'lost'")
    assert len(lost) == s["lost"] and s["records_produced"] == (
        s["records_applied"] + s["lost"] + s["pending"])


def test_commit_after_processing_applies_a_crashed_batch_again_and_never_loses():
    """At-least-once: m1 applied records it had not committed; the new owner
    reads them again from the committed offset."""
    res = log_run(commit="after", crash_at=3.3)[0]
    s = res.summary()
    assert s["duplicated"] > 0 and s["lost"] == 0
    dup = res.delivery_anomalies().query("anomaly == 'duplicated'")
    assert set(dup["cause"]) == {"crash before commit"}
    ko = res.key_order()
    assert (ko["kind"] == "duplicate").sum() == s["duplicated"]
    assert s["duplicated_per_10k"] == pytest.approx(s["duplicated"] / 600 * 1e4)


def test_the_delivery_tables_are_deterministic():
    a, b = log_run(seed=4, crash_at=3.3)[0], log_run(seed=4, crash_at=3.3)[0]
    assert a.fingerprint() == b.fingerprint()
    assert a.key_order().equals(b.key_order())
    assert a.delivery_anomalies().equals(b.delivery_anomalies())
    assert a.summary() == b.summary()


def test_the_records_table_is_the_trace(calm):
    df = calm.records
    assert list(df.columns) == list(RECORD_COLUMNS)
    assert len(df) == len(calm.world.trace.records)
    assert (df["event"] == "produce").sum() == 600


def test_delivery_row_gives_the_matrix_numbers(calm):
    row = delivery_row(calm)
    s = calm.summary()
    assert {k: row[k] for k in DELIVERY_KEYS} == {k: s[k] for k in DELIVERY_KEYS}
    assert row["applications"] == s["records_applied"] and row["skipped"] == 0
    assert row["gaps_per_10k"] == 0.0


# -- without the trace ------------------------------------------------------------------
def test_without_the_trace_the_counters_say_what_they_can():
    """trace=False keeps no records: produced and applied come from the
    producers' and consumers' counters, every anomaly is NaN (it needs each
    record's rows), rebalances come from the coordinator, the tables are
    empty, and delivery_row refuses."""
    res, producer, group = log_run(trace=False)
    s = res.summary()
    assert list(s)[:len(DELIVERY_KEYS)] == list(DELIVERY_KEYS)
    assert s["records_produced"] == producer.sent == 600
    assert s["records_applied"] == sum(m.applied for m in group)
    assert s["pending"] == 600 - s["records_applied"]
    for k in ("lost", "duplicated", "reordered", "gaps", "phantom", "lost_per_10k",
              "record_p95_latency"):
        assert math.isnan(s[k])
    # the coordinator counts its rebalances: as many as the traced run's rows
    assert s["rebalances"] == log_run()[0].summary()["rebalances"] >= 1
    assert res.key_order().empty and res.records.empty
    with pytest.raises(ParamError, match="trace"):
        delivery_row(res)


# -- issue 8's queues with keyed publishes ------------------------------------------------------
def queue_run(consumers: int, seed: int = 2) -> Result:
    w = World(seed=seed)
    broker = Broker(w)
    orders = broker.point_to_point("orders")
    Producer(w, "web", broker, orders, rate=20.0, count=400, keys=20)
    for i in range(consumers):
        Consumer(w, f"c{i}", broker, orders, service_time=Exponential(0.04))
    w.run(until=40)
    return Result(w)


def test_competing_consumers_on_one_queue_break_each_keys_order():
    """The book §3.3.4: three consumers of one queue apply a key's messages
    out of order; the messaging keys come first, the delivery keys after."""
    res = queue_run(3)
    s = res.summary()
    assert list(s)[:len(MESSAGING_KEYS)] == list(MESSAGING_KEYS)
    assert list(s)[-len(DELIVERY_KEYS):] == list(DELIVERY_KEYS)
    assert s["records_produced"] == 400 and s["reordered"] > 0 and s["gaps"] > 0
    causes = res.delivery_causes()
    assert set(causes["cause"]) == {"competing consumers"}
    assert set(res.key_order()["reader"]) == {"orders"}
    assert res.assignments().empty and res.consumer_lag().empty


def test_one_consumer_on_a_queue_keeps_the_order():
    s = queue_run(1).summary()
    assert s["reordered"] == s["gaps"] == s["duplicated"] == 0
    assert s["records_applied"] + s["pending"] == 400


# -- the outbox scenario ------------------------------------------------------------------------
@pytest.mark.parametrize(("design", "anomaly", "cause"), [
    ("polling", "duplicated", "relay crash"),
    ("publish-first", "phantom", "dual write"),
    ("dual-write", "lost", "dual write"),
])
def test_the_outbox_designs_show_their_anomaly_and_its_cause(design, anomaly, cause):
    res = simcomm.run("outbox", seed=1, design=design)
    a = res.delivery_anomalies()
    assert cause in set(a.loc[a["anomaly"] == anomaly, "cause"])
    assert set(a["anomaly"]) == {anomaly}
    ob = res.outbox_lag()
    assert list(ob.columns) == list(dv.OUTBOX_COLUMNS)
    committed = ob["committed"].notna()
    assert committed.sum() == res.summary()["records_produced"]
    lags = ob.loc[committed, "lag"].dropna()
    # publish first: the message can take effect before its transaction commits
    assert (lags >= 0).all() if design != "publish-first" else (lags < 0).any()
    if anomaly == "phantom":
        assert (~committed).sum() >= res.summary()["phantom"] > 0


# -- runs without records keep their summaries --------------------------------------------------
def test_runs_without_records_have_no_delivery_keys():
    plain = simcomm.run("mmc", seed=1, until=50).summary()
    assert not (set(DELIVERY_KEYS) - {"pending"}) & set(plain)
    w = World(seed=1)
    broker = Broker(w)
    q = broker.point_to_point("q")
    Producer(w, "web", broker, q, rate=5.0, count=20)  # no keys: no records
    Consumer(w, "c", broker, q)
    w.run(until=10)
    s = Result(w).summary()
    assert not w.trace.records and list(s)[:len(MESSAGING_KEYS)] == list(MESSAGING_KEYS)
    assert not (set(DELIVERY_KEYS) - {"pending"}) & set(s)


def test_a_run_with_requests_and_records_calls_the_records_pending_records_pending():
    """The request keys keep their ``pending``; the records' is renamed."""
    w = World(seed=3)
    Instance(w, "srv", service_time=Constant(0.5))
    ClosedLoop(w, "users", "srv", 1, Constant(1.0))
    cluster = LogCluster(w, brokers=1)
    cluster.create_topic("t", 1)
    producer = LogProducer(w, "p", cluster, "t")

    def go():
        for i in range(5):
            producer.send("k", i)
            yield w.env.timeout(0.5)

    w.env.process(go())
    w.run(until=10)
    s = Result(w).summary()
    assert s["requests"] > 0 and s["pending"] <= 1
    assert s["records_produced"] == 5 and s["records_pending"] == 5  # nobody reads the topic
    assert list(s)[-len(DELIVERY_KEYS):] == [
        "records_pending" if k == "pending" else k for k in DELIVERY_KEYS]


# -- properties over real runs ----------------------------------------------------------------
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), commit=st.sampled_from(["before", "after"]),
       crash_at=st.one_of(st.none(), st.floats(3.0, 20.0)))
def test_real_runs_balance_and_explain_every_anomaly(seed, commit, crash_at):
    """Whatever the seed and the crash: every produced record is applied,
    lost or pending; commit after never loses, commit before never
    duplicates (idempotent producer, so the log has no repeats); every
    anomaly has a known cause."""
    res = log_run(seed=seed, commit=commit, crash_at=crash_at, records=300, until=40.0)[0]
    s = res.summary()
    assert s["records_produced"] == 300 == s["records_applied"] + s["lost"] + s["pending"]
    if commit == "after":
        assert s["lost"] == 0
    else:
        assert s["duplicated"] == 0
    a = res.delivery_anomalies()
    assert "unknown" not in set(a["cause"]) and set(a["cause"]) <= set(dv.CAUSES)
    applies = sum(1 for row in res.world.trace.records if row[1] in ("apply", "skip"))
    assert len(res.key_order()) == applies
    assert s["reordered"] == 0  # one consumer per partition, in-order log
