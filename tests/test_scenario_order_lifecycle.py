"""order-lifecycle: competing consumers break each order's order; a sharded channel restores it.

Runs are the default 30 s (about 300 orders, 900 events) unless a test says
otherwise; the tolerances come from seeds 1-8 of the same runs (quoted beside
each assertion), with room to spare.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simcomm
from simcomm.cli import main
from simcomm.errors import ParamError
from simcomm.scenarios import get, make_params
from simcomm.scenarios.order_lifecycle import (
    ORDER_BASE,
    PRODUCER,
    QUEUE,
    TOPIC,
    capacity,
    load,
    member_names,
)
from simcomm.scenarios.payloads import (
    ORDER_EVENTS,
    order_cancelled,
    order_created,
    order_event,
    order_revised,
)

NAME = "order-lifecycle"


def run(seed: int = 1, **params):
    return simcomm.run(NAME, seed=seed, warn=False, **params)


def ledger(res) -> dict[str, int]:
    """Per order, the produced order against the applied order, from the raw
    records table (independent of the analysis module): events produced,
    first applications, reordered first applications (an earlier event of the
    order applied after a later one), repeats."""
    count: dict[object, int] = {}
    index: dict[int, tuple[object, int]] = {}  # record id -> (its key, its place in the key)
    for row in res.world.trace.records:
        if row[1] == "produce":
            index[row[2]] = (row[6], count.get(row[6], 0))
            count[row[6]] = count.get(row[6], 0) + 1
    highest: dict[object, int] = {}
    seen: set[int] = set()
    reordered = repeats = 0
    for row in sorted((r for r in res.world.trace.records if r[1] == "apply"),
                      key=lambda r: r[0]):
        if row[2] in seen:
            repeats += 1
            continue
        seen.add(row[2])
        key, i = index[row[2]]
        if i < highest.get(key, -1):
            reordered += 1
        highest[key] = max(highest.get(key, -1), i)
    return {"produced": len(index), "applied": len(seen), "reordered": reordered,
            "repeats": repeats}


@pytest.fixture(scope="module")
def default():
    return run()


# -- the payloads -------------------------------------------------------------------------

def test_an_orders_three_events_carry_its_ids_and_versions():
    assert ORDER_EVENTS == ("OrderCreated", "OrderRevised", "OrderCancelled")
    bodies = [order_created(1001, 7), order_revised(1001, 7), order_cancelled(1001, 7)]
    assert [b["event"] for b in bodies] == list(ORDER_EVENTS)
    assert [b["version"] for b in bodies] == [1, 2, 3]
    assert all(b["orderId"] == 1001 and b["consumerId"] == 7 for b in bodies)
    assert [order_event(i, 1001, 7) for i in range(3)] == bodies


@pytest.mark.parametrize("step", [-1, 3, 1.5, True, "0"])
def test_there_is_no_fourth_event(step):
    with pytest.raises(ParamError) as info:
        order_event(step, 1001, 7)
    assert info.value.field == "step"


# -- the scenario as a scenario ---------------------------------------------------------------

def test_registered_with_its_views_checks_and_model():
    sc = get(NAME)
    assert sc.views == ("key_order", "delivery_causes", "partition_assignment")
    assert sc.capacity is capacity and sc.load is load and sc.check is not None
    p = make_params(sc)
    assert p.channel == "queue" and p.consumers == 3
    assert capacity(p) == pytest.approx(3 / 0.054)  # 0.05 s + the ack's round trip
    sharded = make_params(sc, {"channel": "sharded", "consumers": 8, "partitions": 6})
    assert capacity(sharded) == pytest.approx(6 / 0.05)  # two members idle
    assert load(p).requests_per_s == pytest.approx(30.0)  # three events an order


def test_the_cli_runs_it_with_json(capsys):
    assert main(["run", NAME, "--until", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages_published"] > 0


def test_every_order_is_emitted_as_its_three_events_in_order(default):
    """The workload: each order id gets OrderCreated, OrderRevised, OrderCancelled,
    produced in that order (the last orders' later events may fall past the end)."""
    events = [row for row in default.world.trace.mq if row[1] == "publish"]
    produced = [row for row in default.world.trace.records if row[1] == "produce"]
    assert len(events) == len(produced) > 600  # 30 s x 10 orders/s x 3, seeds 1-8: 825-968
    per_order: dict[int, list[float]] = {}
    for row in produced:
        assert row[3] == QUEUE and row[7] == PRODUCER
        per_order.setdefault(row[6], []).append(row[0])
    assert min(per_order) == ORDER_BASE + 1
    complete = [times for times in per_order.values() if len(times) == 3]
    assert len(complete) >= len(per_order) - 3
    assert all(times == sorted(times) for times in per_order.values())
    assert all(len(times) <= 3 for times in per_order.values())


def test_the_same_seed_gives_the_same_run(default):
    assert run().fingerprint() == default.fingerprint()
    assert run(seed=2).fingerprint() != default.fingerprint()


# -- the lesson: competing consumers break the order ------------------------------------------

def test_competing_consumers_apply_an_orders_events_out_of_order(default):
    """Three instances on one queue, no fault at all: an order's next event is
    taken by a free instance while another is still applying the one before,
    and finishes first.  Seeds 1-8: 13-16 % of the events reordered; none lost
    or applied twice."""
    led = ledger(default)
    assert led["reordered"] > 0.05 * led["produced"]
    assert led["repeats"] == 0
    assert led["produced"] - led["applied"] <= 10  # only what is in flight at the end


def test_one_consumer_on_the_queue_keeps_the_order():
    """One instance reads the queue in order: nothing is reordered (seeds 1-8: 0),
    at the price of throughput -- it carries 18.5 of the 30 events/s (seeds 1-8:
    57-64 % applied)."""
    led = ledger(run(consumers=1))
    assert led["reordered"] == 0 and led["repeats"] == 0
    assert led["applied"] < 0.75 * led["produced"]


def test_the_analysis_reads_the_queue_as_the_raw_ledger_does(default):
    """Result.key_order / the summary count what the raw records say, and name
    the cause: competing consumers."""
    s = default.summary()
    led = ledger(default)
    assert s["reordered"] == led["reordered"] and s["duplicated"] == led["repeats"] == 0
    assert s["records_produced"] == led["produced"]
    table = default.delivery_causes()
    assert set(table.loc[table["anomaly"] == "reordered", "cause"]) == {"competing consumers"}


# -- the lesson: a sharded channel restores it ---------------------------------------------

@pytest.fixture(scope="module")
def sharded():
    return run(channel="sharded")


def test_a_sharded_channel_keyed_by_order_id_applies_every_order_in_order(sharded):
    """The same orders on a 6-partition topic read by a 3-member group: an
    order's events share a partition, read by one member in offset order.
    Seeds 1-8: nothing reordered, lost or duplicated."""
    s = sharded.summary()
    assert s["records_produced"] > 600
    assert s["reordered"] == s["gaps"] == s["duplicated"] == s["lost"] == 0
    assert s["pending"] <= 15  # seeds 1-8: 0-11, on their way at the end
    records = sharded.records
    produced = records[records["event"] == "produce"]
    assert set(produced["topic"]) == {TOPIC} and set(produced["node"]) == {PRODUCER}
    # every record of one order went to one partition
    appended = records[records["event"] == "append"]
    assert (appended.groupby("key")["partition"].nunique() == 1).all()


def test_customer_keys_keep_each_order_in_order_too():
    """All of a customer's orders in one partition: coarser, still in order."""
    s = run(channel="sharded", key="customer_id").summary()
    assert s["reordered"] == 0 and s["gaps"] == 0


def test_null_keys_scatter_an_orders_events_and_break_its_order():
    """No key: the sticky partitioner spreads an order's events over the
    partitions, read in parallel by different members -- competing consumers
    again.  Seeds 1-8: 167-204 of ~900 events reordered.  The ledger stays per
    order: the order service writes the produce rows under the order id."""
    res = run(channel="sharded", key="none")
    assert res.summary()["reordered"] > 50
    table = res.delivery_causes()
    assert set(table.loc[table["anomaly"] == "reordered", "cause"]) == {"competing consumers"}
    records = res.records
    assert (records.loc[records["event"] == "produce", "key"] > ORDER_BASE).all()
    assert set(records.loc[records["event"] == "send", "detail"]) == {"order_service"}


def test_members_beyond_the_partitions_idle():
    """Eight members, six partitions: two get nothing and apply nothing."""
    res = run(channel="sharded", consumers=8)
    applied = res.records.loc[res.records["event"] == "apply", "node"]
    assert applied.nunique() == 6
    assert res.summary()["reordered"] == 0


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), partitions=st.integers(1, 8),
       consumers=st.integers(1, 4), assignor=st.sampled_from(
           ["range", "roundrobin", "sticky", "cooperative-sticky"]),
       key=st.sampled_from(["order_id", "customer_id"]),
       produce_loss=st.sampled_from([0.0, 0.05]), crash_leader=st.booleans())
def test_one_reader_per_partition_and_an_idempotent_producer_keep_per_key_order(
        seed, partitions, consumers, assignor, key, produce_loss, crash_leader):
    """The per-key order property: with a key, the idempotent producer and one
    member per partition at a time, no key's events are applied out of order
    -- whatever the partitions, members, assignor, lossy network or leader
    crash."""
    res = simcomm.run(NAME, seed=seed, until=12.0, warn=False, channel="sharded",
                      partitions=partitions, consumers=consumers, assignor=assignor,
                      key=key, produce_loss=produce_loss, crash_leader=crash_leader,
                      crash_leader_at=4.0)
    s = res.summary()
    assert s["reordered"] == 0 and s["gaps"] == 0


# -- the same dashboard: delivery guarantees ------------------------------------------------

def test_acks_1_and_a_leader_crash_lose_records():
    """The leader of partition 0, cut off from its followers for 2 s, acknowledges
    what no follower has; the failover truncates it.  Seeds 1-8: 17-30 lost."""
    res = run(channel="sharded", acks="1", idempotence=False, crash_leader=True)
    assert res.summary()["lost"] > 0
    table = res.delivery_causes()
    assert set(table.loc[table["anomaly"] == "lost", "cause"]) == {"leader failover"}


def test_retries_without_idempotence_duplicate_and_dedup_removes_them():
    """A 5 % lossy produce path (15 s): seeds 1-8: 103-226 duplicates (retry in
    flight) and 3-8 reorders without idempotence; a processed-ids table
    applies each once (the reorders stay: they are in the log); the idempotent
    producer has neither."""
    plain = run(channel="sharded", idempotence=False, produce_loss=0.05, until=15.0)
    assert plain.summary()["duplicated"] > 100
    assert plain.summary()["reordered"] > 0
    deduped = run(channel="sharded", idempotence=False, produce_loss=0.05, until=15.0,
                  dedup="processed_ids")
    assert deduped.summary()["duplicated"] == 0
    idempotent = run(channel="sharded", produce_loss=0.05, until=15.0).summary()
    assert idempotent["duplicated"] == 0 and idempotent["reordered"] == 0


def test_a_consumer_crash_loses_or_duplicates_by_the_commit_point():
    """order-history-1 crashes half a second into its first batch: committed
    before processing, the rest of the batch is lost (seeds 1-8: 10-34);
    after, what it applied is applied again (5-13)."""
    before = run(channel="sharded", crash_consumer=True, commit="before", until=15.0).summary()
    after = run(channel="sharded", crash_consumer=True, commit="after", until=15.0).summary()
    assert before["lost"] > 0 and before["duplicated"] == 0
    assert after["lost"] == 0 and after["duplicated"] > 0


def test_a_crashed_consumers_events_come_back_on_the_queue():
    """On the queue (manual acks), the events order-history-1 held unacked when
    it crashed go back to the queue and another instance applies them: nothing
    lost.  With prefetch 5 it holds 0-4 then (seeds 1-8): seeds 1-3 hold 6."""
    runs = [run(seed, crash_consumer=True, crash_at=10.0, prefetch=5) for seed in (1, 2, 3)]
    assert sum(res.summary()["redeliveries"] for res in runs) >= 3
    assert all(res.summary()["lost"] == 0 for res in runs)


# -- bad knobs ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("channel", "topic"), ("channel", 1), ("consumers", 0), ("consumers", 13),
    ("consumers", 2.5), ("consumers", True), ("partitions", 0), ("key", "region"),
    ("order_rate", 0.0), ("event_gap", 0.0), ("customers", 0), ("service_time", 0.0),
    ("prefetch", -1), ("assignor", "fair"), ("protocol", "lazy"), ("acks", "2"),
    ("acks", 2), ("idempotence", "yes"), ("commit", "never"), ("dedup", "bloom"),
    ("crash_consumer", 1), ("crash_at", -1.0), ("crash_duration", 0.0),
    ("crash_leader", "no"), ("crash_leader_at", math.nan), ("crash_leader_for", 0.0),
    ("produce_loss", 0.6), ("request_timeout", 0.0), ("session_timeout", 0.5),
    ("network_latency", -0.001),
])
def test_bad_values_are_refused_before_time_zero(field, value):
    with pytest.raises(ParamError) as info:
        simcomm.run(NAME, until=1.0, **{field: value})
    assert info.value.field == field


@pytest.mark.parametrize("acks", ["0", "1"])
def test_idempotence_needs_acks_all_as_kafka_says(acks):
    """Kafka's producer refuses enable.idempotence=true without acks=all
    (a ConfigException); so does the scenario, before time zero, on either
    channel -- and accepts the same acks without idempotence."""
    for channel in ("queue", "sharded"):
        with pytest.raises(ParamError, match="acks=all") as info:
            simcomm.run(NAME, until=1.0, channel=channel, acks=acks)
        assert info.value.field == "idempotence"
    make_params(get(NAME), {"acks": acks, "idempotence": False})


def test_the_cooperative_protocol_needs_cooperative_sticky():
    with pytest.raises(ParamError, match="cooperative-sticky") as info:
        simcomm.run(NAME, until=1.0, protocol="cooperative", assignor="sticky")
    assert info.value.field == "protocol"
    make_params(get(NAME), {"protocol": "cooperative", "assignor": "cooperative-sticky"})
    make_params(get(NAME), {"protocol": "eager", "assignor": "cooperative-sticky"})


def test_the_members_are_named_after_the_service():
    assert member_names(3) == ["order-history-1", "order-history-2", "order-history-3"]
