"""The log producer follows Kafka's producer (REFERENCE §3; Kafka's
``KafkaProducer``, ``RecordAccumulator``, ``Sender``).

Each test builds a small :class:`LogCluster` and one :class:`LogProducer`,
sends records at chosen times and checks the events' values, the producer's
counters and the rows of ``world.trace.records`` (``produce``, ``append``,
``ack``, ``retry``, ``fail``, ``dedup``, ``refuse``).  The ordering tests
make the produce path lossy or slow and count, from the ``append`` rows,
records appended twice (duplicates) and keys whose records were appended out
of their produced order (reorders): present without idempotence when more
than one request is in flight, absent with it, over several seeds.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.engine import Crash, Exponential, Hang, Link, World, install
from simcomm.errors import ParamError
from simcomm.messaging import LogCluster, LogProducer, partition_for_key

TOPIC = "t"


def bench(seed: int = 0, *, partitions: int = 3, brokers: int = 3, latency: float = 0.005,
          loss: float = 0.0, slow: float | None = None, name: str = "pr",
          cluster_args: dict | None = None,
          **producer_args: Any) -> tuple[World, LogCluster, LogProducer]:
    """A world with a cluster, topic ``t`` and a producer ``pr``; ``loss`` on the
    producer's links to every broker (both ways), ``slow``: exponential latency
    with that mean on them instead."""
    world = World(seed=seed, network=Link(latency=latency) if latency else None)
    cluster = LogCluster(world, brokers=brokers, **(cluster_args or {}))
    cluster.create_topic(TOPIC, partitions)
    producer = LogProducer(world, name, cluster, TOPIC, **producer_args)
    if loss or slow:
        for b in cluster.brokers:
            world.network.link(name, b.name, loss=loss,
                               latency=Exponential(slow) if slow else latency)
    return world, cluster, producer


def send_at(world: World, producer: LogProducer, t: float, key: Any, value: Any = None,
            out: list | None = None, **kw: Any) -> None:
    """Send one record at time ``t``; its event is appended to ``out``."""
    def go() -> None:
        ev = producer.send(key, value, **kw)
        if out is not None:
            out.append(ev)
    world.at(t, go)


def rows(world: World, event: str | None = None) -> list[tuple]:
    return [r for r in world.trace.records if event is None or r[1] == event]


def anomalies(world: World) -> tuple[int, int]:
    """(records in the partitions' logs more than once, records of a key in the
    logs out of their produced order).

    The logs as the rows leave them: ``append`` puts a record at an offset,
    ``truncate`` (a leader failover) takes it out again.  A reorder is a
    record at a lower offset than a record of its key produced before it.
    """
    at: dict[tuple[int, int], int] = {}
    for r in world.trace.records:
        if r[1] == "append":
            at[r[4], r[5]] = r[2]
        elif r[1] == "truncate":
            at.pop((r[4], r[5]), None)
    copies: dict[int, list[int]] = defaultdict(list)
    for (_p, offset), rid in at.items():
        copies[rid].append(offset)
    duplicated = sum(1 for offsets in copies.values() if len(offsets) > 1)
    by_key: dict[Any, list[int]] = defaultdict(list)
    for r in rows(world, "produce"):
        if r[2] in copies and r[6] is not None:  # null keys have no order
            by_key[r[6]].append(min(copies[r[2]]))
    reordered = 0
    for offsets in by_key.values():
        top = -1
        for off in offsets:
            if off < top:
                reordered += 1
            top = max(top, off)
    return duplicated, reordered


def stream(world: World, producer: LogProducer, n: int, *, gap: float = 0.001,
           keys: int = 10, start: float = 0.0) -> list:
    """``n`` records with keys ``k0`` .. ``k{keys-1}`` in turn, one every ``gap`` s."""
    events: list = []
    for i in range(n):
        send_at(world, producer, start + i * gap, f"k{i % keys}", i, events)
    return events


# ==============================================================================
# arguments
# ==============================================================================

BAD = [
    ("acks", {"acks": "2"}), ("acks", {"acks": 2}), ("acks", {"acks": True}),
    ("acks", {"acks": None}),
    ("linger", {"linger": -1}), ("linger", {"linger": math.nan}),
    ("linger", {"linger": math.inf}), ("linger", {"linger": "5ms"}),
    ("batch_size", {"batch_size": -1}), ("batch_size", {"batch_size": 1.5}),
    ("batch_size", {"batch_size": True}),
    ("record_size", {"record_size": 0}),
    ("retries", {"retries": -1, "idempotence": False}),
    ("max_in_flight", {"max_in_flight": 0}),
    ("request_timeout", {"request_timeout": 0}),
    ("delivery_timeout", {"delivery_timeout": 0}),
    ("delivery_timeout", {"delivery_timeout": 10.0}),  # < linger + request_timeout
    ("retry_backoff", {"retry_backoff": -0.1}),
    ("retry_backoff_max", {"retry_backoff_max": math.nan}),
    ("idempotence", {"idempotence": "yes"}), ("idempotence", {"idempotence": 1}),
    # Kafka's ConfigExceptions for enable.idempotence=true
    ("acks", {"acks": 1, "idempotence": True}), ("acks", {"acks": 0, "idempotence": True}),
    ("max_in_flight", {"max_in_flight": 6, "idempotence": True}),
    ("retries", {"retries": 0, "idempotence": True}),
]


@pytest.mark.parametrize(("field", "kwargs"), BAD)
def test_a_bad_argument_is_a_param_error_naming_it_before_time_zero(field, kwargs):
    world = World()
    cluster = LogCluster(world)
    cluster.create_topic(TOPIC, 2)
    with pytest.raises(ParamError) as err:
        LogProducer(world, "pr", cluster, TOPIC, **kwargs)
    assert err.value.field == field
    assert world.now == 0
    LogProducer(world, "pr", cluster, TOPIC)  # the refused one registered nothing


FIELDS = ["acks", "linger", "batch_size", "record_size", "retries", "max_in_flight",
          "request_timeout", "delivery_timeout", "retry_backoff", "retry_backoff_max",
          "idempotence"]
ODD = st.sampled_from([None, "x", "", -1, 0, 1, 5, 6, -0.5, 0.25, 1.5, math.nan, math.inf,
                       -math.inf, 10**400, True, False, np.float64(-1.0), np.int64(3),
                       np.bool_(True), [], {}, (1,), b"1", 2**31 - 1, 1e-300])


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(FIELDS), value=ODD)
def test_any_value_is_taken_or_refused_naming_its_field(field, value):
    """Whatever value a field gets, the producer is built or a ParamError names
    that field (the idempotence rules may name acks, retries or max_in_flight
    when idempotence=True is given) -- never another exception."""
    world = World()
    cluster = LogCluster(world)
    cluster.create_topic(TOPIC, 2)
    try:
        LogProducer(world, "pr", cluster, TOPIC, **{field: value})
    except ParamError as err:
        allowed = {field}
        if field == "idempotence":
            allowed |= {"acks", "retries", "max_in_flight"}
        assert err.field in allowed


def test_cluster_and_topic_are_checked():
    world = World()
    cluster = LogCluster(world)
    cluster.create_topic(TOPIC, 2)
    with pytest.raises(ParamError) as err:
        LogProducer(world, "pr", object(), TOPIC)  # type: ignore[arg-type]
    assert err.value.field == "cluster"
    with pytest.raises(ParamError) as err:
        LogProducer(world, "pr", cluster, "nope")
    assert err.value.field == "topic"


@pytest.mark.parametrize(("kwargs", "idempotent"), [
    ({}, True), ({"acks": "all"}, True), ({"acks": -1}, True),
    ({"acks": 1}, False), ({"acks": 0}, False), ({"max_in_flight": 6}, False),
    ({"retries": 0}, False), ({"idempotence": False}, False),
    ({"idempotence": True, "max_in_flight": 5}, True),
])
def test_idempotence_is_on_by_default_unless_settings_conflict(kwargs, idempotent):
    """Kafka 3.2+: the default enable.idempotence=true gives way silently to
    acks != all, retries = 0 or more than 5 requests in flight."""
    _world, _cluster, producer = bench(**kwargs)
    assert producer.idempotence is idempotent


def test_delivery_timeout_defaults_to_at_least_linger_plus_request_timeout():
    """Kafka: delivery.timeout.ms defaults to 120 s, raised to linger.ms +
    request.timeout.ms when that is more; set explicitly below it, refused."""
    assert bench()[2].delivery_timeout == 120.0
    assert bench(request_timeout=200.0, linger=1.0)[2].delivery_timeout == 201.0
    assert bench(delivery_timeout=31.0)[2].delivery_timeout == 31.0


@pytest.mark.parametrize(("acks", "code"), [
    (0, 0), ("0", 0), (1, 1), ("1", 1), (np.int64(1), 1), ("all", -1), (-1, -1)])
def test_acks_spellings(acks, code):
    _world, _cluster, producer = bench(acks=acks)
    assert producer.acks == code


@pytest.mark.parametrize(("field", "key", "kw"), [
    ("key", 1.5, {}), ("key", True, {}), ("key", [1], {}), ("key", {"a": 1}, {}),
    ("record_id", "k", {"record_id": -1}), ("record_id", "k", {"record_id": "x"}),
    ("record_id", "k", {"record_id": 2.0}), ("label", "k", {"label": 3}),
])
def test_send_checks_its_arguments(field, key, kw):
    world, _cluster, producer = bench()
    with pytest.raises(ParamError) as err:
        producer.send(key, **kw)
    assert err.value.field == field
    assert producer.sent == 0 and world.trace.records == []


# ==============================================================================
# partitioning
# ==============================================================================

def test_a_keyed_record_goes_to_kafkas_partition_for_its_key():
    """murmur2 of the key's bytes; an int key is hashed as str(key)."""
    world, _cluster, producer = bench(partitions=7)
    keys = ["order-1", "order-2", b"abc", 17, np.int64(42), "é"]
    events: list = []
    for k in keys:
        send_at(world, producer, 0.0, k, out=events)
    world.run(until=1)
    expected = [partition_for_key(k if isinstance(k, (str, bytes)) else str(k), 7)
                for k in keys]
    assert [ev.value[0] for ev in events] == expected
    assert [r[4] for r in rows(world, "produce")] == expected


def test_null_keys_fill_one_partition_per_batch():
    """The sticky partitioner: every null-keyed record goes to one partition
    until its batch is full, then to another one (never the same twice in a row)."""
    world, _cluster, producer = bench(partitions=4, batch_size=300, record_size=100,
                                      linger=1.0)
    for _ in range(12):
        send_at(world, producer, 0.0, None)
    world.run(until=3)
    parts = [r[4] for r in rows(world, "produce")]
    groups = [parts[i:i + 3] for i in range(0, 12, 3)]
    assert all(len(set(g)) == 1 for g in groups)
    firsts = [g[0] for g in groups]
    assert all(a != b for a, b in pairwise(firsts))
    assert producer.batches == 4
    assert Counter(r[4] for r in rows(world, "append")) == Counter(parts)


# ==============================================================================
# batching: linger and batch size
# ==============================================================================

def test_linger_gathers_the_records_of_its_window_into_one_batch():
    world, _cluster, producer = bench(linger=0.05, acks=1)
    events: list = []
    for i in range(10):
        send_at(world, producer, i * 0.001, "same-key", i, events)
    world.run(until=1)
    assert producer.batches == 1 and producer.requests == 1
    offsets = [ev.value[1] for ev in events]
    assert offsets == list(range(10))
    # the batch left when the first record's linger ran out, not before
    first_ack = min(r[0] for r in rows(world, "ack"))
    assert first_ack >= 0.05


def test_records_further_apart_than_linger_travel_alone():
    world, _cluster, producer = bench(linger=0.005, acks=1)
    for i in range(5):
        send_at(world, producer, i * 0.1, "same-key", i)
    world.run(until=1)
    assert producer.batches == 5 and producer.requests == 5 and producer.acked == 5


def test_linger_zero_still_gathers_the_records_sent_in_one_instant():
    world, _cluster, producer = bench(linger=0.0, acks=1)
    for i in range(4):
        send_at(world, producer, 0.0, "same-key", i)
    send_at(world, producer, 0.5, "same-key", 4)
    world.run(until=1)
    assert producer.batches == 2


@pytest.mark.parametrize(("batch_size", "sizes", "sent"), [
    # full at 300 bytes: each goes at once; the last waits for its linger
    (300, [3, 3, 3, 1], [0.0, 0.0, 0.0, 1.0]),
    # room for 2 (hasRoomFor: 300 > 250), not full (200 < 250): each goes when
    # the next record starts a batch behind it; the last waits for its linger
    (250, [2, 2, 2, 2, 2], [0.0, 0.0, 0.0, 0.0, 1.0]),
    (0, [1] * 10, [0.0] * 10),  # batch.size=0: no batching
    (100_000, [10], [1.0]),
])
def test_batch_size_closes_a_batch(batch_size, sizes, sent):
    world, cluster, producer = bench(latency=0.0, linger=1.0, batch_size=batch_size,
                                     record_size=100, acks=1, partitions=1)
    events: list = []
    for i in range(10):
        send_at(world, producer, 0.0, "k", i, events)
    world.run(until=5)
    assert producer.batches == len(sizes)
    batches = cluster.replica(TOPIC, 0).log.batches
    assert [count for _base, count, _pid, _seq in batches] == sizes
    # on a network without latency a batch is acknowledged when it is sent
    acked = {r[5]: r[0] for r in rows(world, "ack")}
    assert [acked[base] for base, _count, _pid, _seq in batches] == sent


def test_a_batch_waiting_for_a_free_slot_keeps_taking_records():
    """With one request in flight and a slow link, records pile up behind it
    and leave together: batches grow beyond what linger alone gives."""
    world, _cluster, producer = bench(latency=0.05, linger=0.0, max_in_flight=1, acks=1,
                                      idempotence=False, partitions=1)
    stream(world, producer, 200, gap=0.001, keys=1)
    world.run(until=5)
    assert producer.acked == 200
    assert producer.batches < 10  # a request takes 0.1 s: ~100 records arrive meanwhile


# ==============================================================================
# acks
# ==============================================================================

def test_acks_0_never_waits_and_never_retries():
    """acks=0: each record is acknowledged (offset -1) when its batch goes out,
    even if every request is lost on the way."""
    world, _cluster, producer = bench(acks=0, loss=1.0, linger=0.005)
    events = stream(world, producer, 20, gap=0.01)
    world.run(until=5)
    assert all(ev.value[1] == -1 for ev in events)
    acks = rows(world, "ack")
    assert len(acks) == 20 and {r[8] for r in acks} == {"0"} and {r[5] for r in acks} == {-1}
    # acknowledged a linger after the record, no round trip
    produced = {r[2]: r[0] for r in rows(world, "produce")}
    assert all(r[0] - produced[r[2]] <= 0.005 + 1e-9 for r in acks)
    assert rows(world, "retry") == [] and rows(world, "append") == []
    assert producer.acked == 20 and producer.failed == 0


def test_acks_0_records_still_reach_the_log():
    world, cluster, producer = bench(acks=0)
    stream(world, producer, 30, gap=0.01)
    world.run(until=5)
    assert sum(cluster.log_end_offset(TOPIC, p) for p in range(3)) == 30
    assert len(rows(world, "append")) == 30


@pytest.mark.parametrize(("acks", "detail"), [(1, "1"), ("all", "all")])
def test_acks_1_and_all_give_each_record_its_offset(acks, detail):
    world, _cluster, producer = bench(acks=acks)
    events = stream(world, producer, 50, gap=0.002)
    world.run(until=5)
    appended = {r[2]: (r[4], r[5]) for r in rows(world, "append")}
    assert [ev.value for ev in events] == [appended[ev.record_id] for ev in events]
    assert {r[8] for r in rows(world, "ack")} == {detail}
    assert producer.sent == producer.acked == 50


def test_acks_all_waits_for_the_followers():
    times = {}
    for acks in (1, "all"):
        world, _cluster, producer = bench(acks=acks, latency=0.01)
        send_at(world, producer, 1.0, "k")
        world.run(until=5)
        times[acks] = rows(world, "ack")[0][0]
    assert times["all"] > times[1]


def test_a_records_event_can_be_waited_on_before_and_after_its_ack():
    """The event of an acknowledged record is usable however it is waited on: a
    callback added right after send(), a process yielding it long after the
    ack, a condition over several events."""
    world, _cluster, producer = bench(acks=1)
    env = world.env
    seen: list = []
    events: list = []

    def app():
        ev = producer.send("a", 1)
        ev.callbacks.append(lambda e: seen.append(("callback", e.value)))
        events.append(ev)
        events.append(producer.send("a", 2))
        yield env.timeout(1.0)  # both acknowledged meanwhile
        value = yield events[0]
        seen.append(("late yield", value))
        both = yield env.all_of(events)
        seen.append(("all_of", [both[e] for e in events]))

    env.process(app())
    world.run(until=3)
    assert seen == [("callback", (events[0].value)), ("late yield", events[0].value),
                    ("all_of", [events[0].value, events[1].value])]
    assert [ev.value[1] for ev in events] == [0, 1]


def test_produce_and_send_rows_and_record_ids():
    """Without a record id the cluster's counter gives one (a produce row);
    with one the caller's id and label go in a send row."""
    world, _cluster, producer = bench()
    events: list = []
    send_at(world, producer, 0.0, "a", out=events)
    send_at(world, producer, 0.0, "b", out=events, record_id=1000, label="relay")
    world.run(until=1)
    assert events[0].record_id == 1 and events[1].record_id == 1000
    (prod,) = rows(world, "produce")
    (sent,) = rows(world, "send")
    assert prod[2] == 1 and prod[6] == "a" and prod[7] == "pr" and prod[8] == ""
    assert sent[2] == 1000 and sent[6] == "b" and sent[8] == "relay"
    assert {r[2] for r in rows(world, "append")} == {1, 1000}


# ==============================================================================
# retries, timeouts and the in-flight limit
# ==============================================================================

def test_retries_run_out():
    """retries=2: a batch whose requests are all lost is sent three times, then
    given up -- fail rows, detail 'retries', and None for each record."""
    world, _cluster, producer = bench(acks=1, idempotence=False, loss=1.0, retries=2,
                                      request_timeout=0.1, retry_backoff=0.01)
    events = stream(world, producer, 3, gap=0.0, keys=1)  # one batch
    world.run(until=5)
    assert [ev.value for ev in events] == [None] * 3
    assert Counter(r[2] for r in rows(world, "retry")) == {ev.record_id: 2 for ev in events}
    assert {r[8] for r in rows(world, "retry")} == {"timeout"}
    fails = rows(world, "fail")
    assert len(fails) == 3 and {r[8] for r in fails} == {"retries"}
    assert producer.requests == 3 and producer.failed == 3 and producer.acked == 0


def test_delivery_timeout_bounds_the_time_from_send_to_outcome():
    world, _cluster, producer = bench(acks=1, idempotence=False, loss=1.0,
                                      request_timeout=0.2, delivery_timeout=1.0, linger=0.01)
    events: list = []
    send_at(world, producer, 0.5, "k", out=events)
    world.run(until=5)
    assert events[0].value is None
    (fail,) = rows(world, "fail")
    assert fail[8] == "delivery_timeout"
    assert fail[0] == pytest.approx(1.5)  # created at 0.5, given up at 0.5 + 1.0
    assert len(rows(world, "retry")) >= 2


def test_a_leader_crash_is_retried_until_the_new_leader_takes_the_records():
    """Requests to a crashed leader are refused (retried, detail 'refused') until
    the controller elects a new one; with acks=all nothing is lost."""
    world, cluster, producer = bench(acks="all")
    leader = cluster.leader(TOPIC, partition_for_key("k", 3))
    install(world, [Crash(leader.name, at=0.5, duration=30.0)])
    events = stream(world, producer, 40, gap=0.05, keys=1)
    world.run(until=30)
    assert producer.acked == 40 and all(ev.value is not None for ev in events)
    assert "refused" in {r[8] for r in rows(world, "retry")}
    assert min(r[0] for r in rows(world, "ack") if r[0] > 0.5) >= 0.5 + cluster.failover_after
    dup, reord = anomalies(world)
    assert dup == 0 and reord == 0


def test_the_retry_backoff_doubles_up_to_its_maximum_with_jitter():
    """KIP-580: retry.backoff.ms doubling per retry up to retry.backoff.max.ms,
    each wait drawn within +-20 %."""
    world, cluster, producer = bench(latency=0.005, acks=1, idempotence=False,
                                     cluster_args={"failover_after": 100.0})
    leader = cluster.leader(TOPIC, partition_for_key("k", 3))
    install(world, [Crash(leader.name, at=0.0, duration=50.0)])
    send_at(world, producer, 0.1, "k")
    world.run(until=20)
    times = [r[0] for r in rows(world, "retry")]
    assert {r[8] for r in rows(world, "retry")} == {"refused"}
    rtt = 0.01  # the refusal comes back a round trip after each send
    waits = [b - a - rtt for a, b in pairwise(times)]
    for n, wait in enumerate(waits, start=1):
        nominal = min(0.1 * 2 ** (n - 1), 1.0)  # the wait after the n-th failure
        assert 0.8 * nominal - 1e-9 <= wait <= 1.2 * nominal + 1e-9
    assert len(set(round(w, 6) for w in waits[5:])) > 1  # jittered, not constant


def test_without_a_trace_the_counters_still_count():
    world = World(seed=1, trace=False)
    cluster = LogCluster(world)
    cluster.create_topic(TOPIC, 3)
    producer = LogProducer(world, "pr", cluster, TOPIC)
    events = stream(world, producer, 50, gap=0.01)
    world.run(until=5)
    assert world.trace.records == []
    assert producer.sent == producer.acked == 50 and producer.batches >= 1
    assert all(ev.value is not None for ev in events)


def test_too_few_in_sync_replicas_is_retried_until_they_are_back():
    """acks=all with min.insync.replicas=2: while the follower is away the leader
    holds the answers (the high watermark stands still: the requests time out),
    then, once the follower is fenced out of the ISR, refuses with
    not_enough_replicas; when it is back and caught up the records go in."""
    world, cluster, producer = bench(brokers=2, partitions=1, request_timeout=2.0,
                                     cluster_args={"min_insync_replicas": 2})
    follower = cluster.replicas(TOPIC, 0)[1]
    install(world, [Crash(follower, at=0.5, duration=15.0)])
    events = stream(world, producer, 100, gap=0.01, keys=3)
    world.run(until=40)
    why = {r[8] for r in rows(world, "retry")}
    assert {"timeout", "not_enough_replicas"} <= why
    assert producer.acked == 100 and all(ev.value is not None for ev in events)
    assert max(r[0] for r in rows(world, "ack")) >= 15.5
    assert anomalies(world) == (0, 0)


def outstanding_max(world: World, name: str = "pr") -> int:
    """The most produce requests ``name`` had out at once (no losses: every
    request is answered)."""
    ev = []
    for r in world.trace.messages:
        time, what, _mid, kind, source, dest = r[:6]
        if what == "send" and source == name and kind != "reply":
            ev.append((time, 1))
        elif what == "deliver" and dest == name and kind == "reply":
            ev.append((time, -1))
    ev.sort(key=lambda e: (e[0], e[1]))  # answers first at a tie
    top = cur = 0
    for _t, d in ev:
        cur += d
        top = max(top, cur)
    return top


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_max_in_flight_bounds_the_requests_on_a_connection(limit):
    world, _cluster, producer = bench(latency=0.05, linger=0.0, partitions=1,
                                      max_in_flight=limit, acks=1, idempotence=False,
                                      batch_size=2000)
    stream(world, producer, 300, gap=0.001, keys=1)
    world.run(until=10)
    assert producer.acked == 300
    assert outstanding_max(world) == limit


# ==============================================================================
# ordering: retries with requests in flight, with and without idempotence
# ==============================================================================

#: a path that loses 10 % of the messages both ways, or one whose latency
#: (exponential, mean 40 ms each way) often exceeds the 0.15 s request timeout
PATHS = {"lossy": {"loss": 0.1}, "slow": {"slow": 0.04, "latency": 0.0}}


def ordering_run(seed: int, path: str, **producer_args: Any) -> tuple[World, LogProducer]:
    args: dict[str, Any] = dict(request_timeout=0.15, linger=0.002, batch_size=500,
                                retry_backoff=0.02, max_in_flight=5)
    args.update(producer_args)
    world, _cluster, producer = bench(seed, **PATHS[path], **args)
    stream(world, producer, 600, gap=0.001)
    world.run(until=60)
    return world, producer


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), path=st.sampled_from(sorted(PATHS)))
def test_without_idempotence_retries_in_flight_duplicate_and_reorder(seed, path):
    """Kafka: without enable.idempotence, retries with more than one request in
    flight can reorder and duplicate (a lost or late request is sent again
    after later batches were appended; an appended one whose answer was lost
    or late is appended again)."""
    world, producer = ordering_run(seed, path, acks=1, idempotence=False)
    dup, reord = anomalies(world)
    assert dup > 0
    if path == "lossy":
        # a lost request is sent again after later batches of its partition were
        # appended; a late one still arrives first (one connection keeps the
        # order): its retry duplicates it but appends nothing before it
        assert reord > 0
    assert producer.acked == 600


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), path=st.sampled_from(sorted(PATHS)))
def test_the_idempotent_producer_neither_duplicates_nor_reorders(seed, path):
    """With enable.idempotence the leader refuses out-of-order batches and
    acknowledges repeats without appending them: every record is appended
    exactly once, each key's records in produced order."""
    world, producer = ordering_run(seed, path, acks="all", idempotence=True)
    assert anomalies(world) == (0, 0)
    appended = Counter(r[2] for r in rows(world, "append"))
    assert len(appended) == 600 and set(appended.values()) == {1}
    assert producer.acked == 600 and producer.failed == 0
    assert rows(world, "retry")  # the path really was lossy / slow
    # every acknowledgement names the offset the record was appended at
    at = {r[2]: r[5] for r in rows(world, "append")}
    assert all(r[5] == at[r[2]] for r in rows(world, "ack"))


def test_the_idempotent_producer_is_deduplicated_and_refused_by_the_leader():
    world, _producer = ordering_run(3, "lossy", acks="all", idempotence=True)
    kinds = Counter(r[1] for r in world.trace.records)
    assert kinds["dedup"] > 0 and kinds["refuse"] > 0
    # the refusals' answers wait behind the lost request's and go with its
    # connection when it times out: they are retried as timeouts
    assert "timeout" in {r[8] for r in rows(world, "retry")}


def test_one_request_in_flight_keeps_the_order_without_idempotence():
    """max.in.flight.requests.per.connection=1: a retried batch goes before any
    later one, so order holds (duplicates may still happen)."""
    for seed in (1, 2):
        world, producer = ordering_run(seed, "lossy", acks=1, idempotence=False,
                                       max_in_flight=1)
        dup, reord = anomalies(world)
        assert reord == 0 and dup > 0
        assert producer.acked == 600


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), broker=st.integers(0, 2),
       crash_at=st.floats(0.05, 0.8), down=st.sampled_from([3.0, 12.0]))
def test_the_idempotent_producer_keeps_order_across_a_leader_crash(seed, broker, crash_at,
                                                                     down):
    """A broker crashes mid-stream on a lossy path (down shorter or longer than
    the failover time): retries go to the old leader (refused) or the new one
    (which rebuilt the producers' state from its log); every record is still
    appended once, in order, and acknowledged."""
    world, cluster, producer = bench(seed, loss=0.05, request_timeout=0.3, linger=0.002)
    install(world, [Crash(cluster.brokers[broker].name, at=crash_at, duration=down)])
    stream(world, producer, 800, gap=0.001)
    world.run(until=60)
    assert anomalies(world) == (0, 0)
    assert sum(cluster.log_end_offset(TOPIC, p) for p in range(3)) == 800
    assert producer.acked == 800 and producer.failed == 0


def test_the_first_batch_under_a_producer_id_goes_alone():
    """A leader takes any sequence from a producer it has no state for: were
    the second batch sent while the first is lost on the way, the first could
    never follow.  The producer sends a partition's first batch alone."""
    world, _cluster, producer = bench(partitions=1, linger=0.002, request_timeout=0.1)
    world.network.cut(["pr"], at=0.021, heal_at=0.023)  # loses the first batch's request
    events: list = []
    for t in (0.02, 0.03, 0.04):
        for i in range(3):
            send_at(world, producer, t, "k", (t, i), events)
    world.run(until=3)
    assert [ev.value for ev in events] == [(0, i) for i in range(9)]
    assert [r[2] for r in rows(world, "append")] == [ev.record_id for ev in events]
    assert "timeout" in {r[8] for r in rows(world, "retry")}
    assert rows(world, "refuse") == []


# ==============================================================================
# the idempotent producer's id and sequences
# ==============================================================================

def test_batches_carry_the_producer_id_and_consecutive_sequences():
    world, cluster, producer = bench(linger=0.003)
    stream(world, producer, 200, gap=0.0005)
    world.run(until=5)
    assert producer.producer_id == 1
    for p in range(3):
        batches = cluster.replica(TOPIC, p).log.batches
        assert batches and {pid for _b, _c, pid, _s in batches} == {1}
        seqs = [seq for _b, _c, _pid, seq in batches]
        counts = [c for _b, c, _pid, _s in batches]
        assert seqs == [sum(counts[:i]) for i in range(len(counts))]


def test_a_failed_idempotent_batch_makes_the_producer_take_a_new_id():
    """A batch given up after it was sent leaves a hole in its partition's
    sequence: once nothing is in flight the producer takes a new producer id
    and numbers its records from 0 again (Kafka 1.1-2.4's reset)."""
    world, cluster, producer = bench(partitions=1, request_timeout=0.2,
                                     delivery_timeout=0.5, linger=0.005)
    net = world.network
    names = [b.name for b in cluster.brokers]
    world.at(0.5, lambda: [net.link("pr", n, latency=0.005, loss=1.0) for n in names])
    world.at(2.0, lambda: [net.link("pr", n, latency=0.005) for n in names])
    early: list = []
    late: list = []
    send_at(world, producer, 0.1, "k", out=early)
    send_at(world, producer, 0.6, "k", out=early)
    send_at(world, producer, 3.0, "k", out=late)
    world.run(until=10)
    assert early[0].value == (0, 0) and early[1].value is None
    assert late[0].value == (0, 1)
    assert producer.producer_id == 2
    batches = cluster.replica(TOPIC, 0).log.batches
    assert [(pid, seq) for _b, _c, pid, seq in batches] == [(1, 0), (2, 0)]


# ==============================================================================
# faults of the producer
# ==============================================================================

def test_a_producer_crash_loses_what_it_has_not_had_acknowledged():
    world, _cluster, producer = bench(latency=0.05, acks="all")
    install(world, [Crash("pr", at=0.5, duration=1.0)])
    before: list = []
    down: list = []
    after: list = []
    for i in range(5):
        send_at(world, producer, 0.0, f"k{i}", out=before)
    for i in range(3):
        send_at(world, producer, 0.45, f"k{i}", out=before)
    send_at(world, producer, 1.0, "k0", out=down)
    send_at(world, producer, 2.0, "k0", out=after)
    world.run(until=5)
    assert all(ev.value is not None for ev in before[:5])
    assert [ev.value for ev in before[5:]] == [None] * 3
    assert down[0].value is None
    assert after[0].value is not None
    fails = rows(world, "fail")
    assert len(fails) == 4 and {r[8] for r in fails} == {"crash"}
    assert producer.producer_id == 2  # a new id after the restart
    assert producer.failed == 4 and producer.acked == 6


def test_a_hang_stalls_the_sender_until_it_ends():
    world, _cluster, producer = bench(acks=1)
    install(world, [Hang("pr", at=0.1, duration=1.0)])
    events: list = []
    send_at(world, producer, 0.5, "k", out=events)
    world.run(until=3)
    (ack,) = rows(world, "ack")
    assert ack[0] >= 1.1 and events[0].value is not None


def test_the_same_seed_gives_the_same_records():
    runs = [ordering_run(7, "lossy", acks=1, idempotence=False)[0].trace.records
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) > 600
