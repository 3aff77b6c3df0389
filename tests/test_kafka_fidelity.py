"""Kafka fidelity: cases beyond REFERENCE §3's examples, from the same real sources.

The rules are Kafka's (apache/kafka: ``Utils.murmur2`` and ``UtilsTest``,
``RangeAssignorTest``, ``RoundRobinAssignorTest``, the ``StickyAssignor`` and
``CooperativeStickyAssignor`` documentation, ``ProducerStateEntry`` /
``ProducerAppendInfo``, ``ClassicGroup.validateOffsetCommit``, the client
config defaults), with kafka-python as the oracle where it implements them:
its murmur2 and DefaultPartitioner, RangePartitionAssignor,
StickyPartitionAssignor (through its real member metadata, user data
encoded) and CooperativeStickyAssignor.  kafka-python 3.0.12's
RoundRobinPartitionAssignor raises KeyError when subscriptions differ (it
takes an (instance id, member id) pair for a member id), so for that case
the oracle is a line-by-line transliteration of Java's
``RoundRobinAssignor.assign`` plus Java's own test expectations.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.engine import Crash, Link, Node, World, install
from simcomm.messaging import (
    InitProducerIdRequest,
    LogCluster,
    ProduceRequest,
    Record,
    RecordBatch,
    cooperative_sticky_assign,
    moved_partitions,
    murmur2,
    partition_for_key,
    range_assign,
    round_robin_assign,
    sticky_assign,
)
from simcomm.messaging.group import (
    COMPLETING_REBALANCE,
    STABLE,
    GroupState,
    HeartbeatRequest,
    JoinGroupRequest,
    OffsetCommitRequest,
    SyncGroupRequest,
)
from simcomm.messaging.group_consumer import GroupConsumer
from simcomm.messaging.log_producer import LogProducer

with warnings.catch_warnings():  # kafka-python reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
    from kafka.partitioner.default import DefaultPartitioner
    from kafka.partitioner.default import murmur2 as kafka_murmur2
    from kafka.structs import TopicPartition as KafkaTP


# =====================================================================================
# murmur2 and the default partitioner
# =====================================================================================

#: apache/kafka clients/src/test/.../common/utils/UtilsTest.java, testMurmur2
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


class _Metadata:
    """The slice of kafka-python's ClusterMetadata its DefaultPartitioner reads."""

    def __init__(self, n: int) -> None:
        self.n = n

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> range:
        return range(self.n)

    def available_partitions_for_topic(self, topic: str) -> range:
        return range(self.n)


def kafka_python_partition(key: bytes, n: int) -> int:
    """kafka-python's DefaultPartitioner.partition for a keyed record."""
    return DefaultPartitioner().partition("t", key, key, None, None, _Metadata(n))


def test_murmur2_is_kafkas_on_its_own_test_vectors() -> None:
    """The signed values Kafka's UtilsTest asserts, and kafka-python's unsigned form."""
    for data, expected in KAFKA_MURMUR2.items():
        assert murmur2(data) == expected
        assert kafka_murmur2(data) == expected & 0xFFFFFFFF


def test_every_tail_length_and_long_keys_match_kafka_python() -> None:
    """Lengths 0..17 cover every ``length % 4`` tail twice over; long keys many words."""
    base = bytes(range(256)) * 40
    for length in [*range(18), 255, 256, 257, 1023, 4096, 10_240]:
        data = base[:length]
        assert murmur2(data) & 0xFFFFFFFF == kafka_murmur2(data), length
        for n in (1, 2, 3, 7, 12, 1000, 65_537):
            assert partition_for_key(data, n) == kafka_python_partition(data, n), (length, n)
    # bytes >= 0x80 are read unsigned (Java masks with 0xff): all-0xff keys of every tail
    for length in range(1, 9):
        data = b"\xff" * length
        assert murmur2(data) & 0xFFFFFFFF == kafka_murmur2(data)


def test_the_empty_key_is_a_key_not_a_null_key() -> None:
    """b'' and '' hash (to 681 of 1000, REFERENCE §3): an empty key is not null."""
    assert partition_for_key(b"", 1000) == partition_for_key("", 1000) == 681
    assert partition_for_key("", 1000) == kafka_python_partition(b"", 1000)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.integers(min_value=1, max_value=5000))
def test_unicode_string_keys_hash_as_their_utf8_bytes(key: str, n: int) -> None:
    """A str key is its UTF-8 bytes (Kafka's StringSerializer), astral characters included."""
    data = key.encode("utf-8")
    assert partition_for_key(key, n) == kafka_python_partition(data, n)
    assert murmur2(data) & 0xFFFFFFFF == kafka_murmur2(data)


def test_some_unicode_keys_by_hand() -> None:
    for key in ("é", "e\u0301", "ß", "日本語", "😀", "order-😀-17", "\u0000", "a" * 5000):
        for n in (3, 12, 1000):
            assert partition_for_key(key, n) == kafka_python_partition(key.encode(), n), key
    # NFC and NFD forms are different bytes, so (in general) different partitions
    assert partition_for_key("é", 1000) != partition_for_key("e\u0301", 1000)


def test_a_lone_surrogate_is_hashed_as_java_encodes_it() -> None:
    """Java's String.getBytes(UTF_8) writes '?' for an unpaired surrogate and joins a
    high and a low surrogate into one 4-byte character; a Python str can hold either."""
    assert partition_for_key("a\ud800b", 1000) == partition_for_key(b"a?b", 1000)
    assert partition_for_key("\udfff", 12) == partition_for_key(b"?", 12)
    assert partition_for_key("\ud83d\ude00", 1000) == partition_for_key("😀", 1000)


def test_producer_int_keys_hash_as_their_decimal_string() -> None:
    """An int key is hashed as str(key) (simcomm's documented key encoding)."""
    world = World(seed=3)
    kafka = LogCluster(world, brokers=3)
    kafka.create_topic("t", 7)
    producer = LogProducer(world, "p", kafka, "t")
    events = {k: producer.send(k) for k in (0, 7, 12345, -3, 10**12)}
    world.run(until=2)
    for k, ev in events.items():
        assert ev.value[0] == partition_for_key(str(k), 7) == kafka_python_partition(
            str(k).encode(), 7)


# =====================================================================================
# assignors
# =====================================================================================


class OracleCluster:
    """The slice of kafka-python's ClusterMetadata its assignors read."""

    def __init__(self, subscriptions: dict[str, list[str]], partitions: dict[str, int]) -> None:
        wanted = {t for ts in subscriptions.values() for t in ts}
        self.parts = {t: n for t, n in partitions.items() if t in wanted}

    def topics(self) -> set[str]:
        return set(self.parts)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.parts[topic])) if topic in self.parts else None


def _flatten(assignment) -> list[tuple[str, int]]:
    return sorted((tp.topic, tp.partition) for tp in assignment.partitions())


def kp_range(subs: dict[str, list[str]], counts: dict[str, int]) -> dict:
    members = [SimpleNamespace(member_id=m, group_instance_id=None,
                               metadata=SimpleNamespace(topics=sorted(ts)))
               for m, ts in subs.items()]
    result = RangePartitionAssignor.assign(OracleCluster(subs, counts), members)
    return {m: _flatten(a) for m, a in result.items()}


def kp_sticky(subs: dict[str, list[str]], counts: dict[str, int],
              current: dict[str, list[tuple[str, int]]], generation: int) -> dict:
    """kafka-python's StickyPartitionAssignor.assign over its real member metadata
    (the previous assignment and generation encoded as the StickyAssignor's user data)."""
    members = []
    for m, ts in subs.items():
        owned = current.get(m)
        meta = StickyPartitionAssignor._metadata(
            sorted(ts), None if owned is None else [KafkaTP(t, p) for t, p in owned],
            generation if owned is not None else -1)
        members.append(SimpleNamespace(member_id=m, group_instance_id=None, metadata=meta))
    result = StickyPartitionAssignor().assign(OracleCluster(subs, counts), members)
    return {m: _flatten(a) for m, a in result.items()}


def kp_cooperative(subs: dict[str, list[str]], counts: dict[str, int],
                   current: dict[str, list[tuple[str, int]]], generation: int) -> dict:
    def owned(m: str) -> list:
        by_topic: dict[str, list[int]] = {}
        for t, p in current.get(m, []):
            by_topic.setdefault(t, []).append(p)
        return [SimpleNamespace(topic=t, partitions=ps) for t, ps in sorted(by_topic.items())]

    members = [SimpleNamespace(member_id=m, group_instance_id=None, metadata=SimpleNamespace(
        topics=sorted(ts), owned_partitions=owned(m), generation_id=generation))
        for m, ts in subs.items()]
    result = CooperativeStickyAssignor().assign(OracleCluster(subs, counts), members)
    return {m: _flatten(a) for m, a in result.items()}


def java_round_robin(subs: dict[str, list[str]], counts: dict[str, int]) -> dict:
    """Java's RoundRobinAssignor.assign, line for line (CircularIterator with peek)."""
    members = sorted(subs)
    assignment: dict[str, list[tuple[str, int]]] = {m: [] for m in members}
    topics = sorted({t for ts in subs.values() for t in ts})
    all_partitions = [(t, p) for t in topics if t in counts for p in range(counts[t])]
    i = 0
    for topic, p in all_partitions:
        while topic not in subs[members[i % len(members)]]:  # assigner.peek() ... next()
            i += 1
        assignment[members[i % len(members)]].append((topic, p))  # assigner.next()
        i += 1
    return {m: sorted(v) for m, v in assignment.items()}


def check_complete(result: dict, subs: dict[str, list[str]], counts: dict[str, int]) -> None:
    """Every partition of a subscribed topic exactly once, to a subscriber, each list sorted."""
    owners: dict[tuple[str, int], str] = {}
    for m, tps in result.items():
        assert tps == sorted(tps)
        for tp in tps:
            assert tp not in owners, tp
            assert tp[0] in subs[m]
            owners[tp] = m
    wanted = {(t, p) for ts in subs.values() for t in ts if t in counts
              for p in range(counts[t])}
    assert set(owners) == wanted
    assert set(result) == set(subs)


TOPICS = ["orders", "payments", "t0", "t1", "t2"]
MEMBERS = ["consumer-1", "consumer-2", "consumer-10", "consumer-11", "C0", "c0", "m-3", "m-20"]


@st.composite
def unequal_groups(draw) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Several topics, members subscribed to different subsets of them."""
    topics = draw(st.lists(st.sampled_from(TOPICS), min_size=2, max_size=5, unique=True))
    counts = {t: draw(st.integers(min_value=1, max_value=9)) for t in topics}
    members = draw(st.lists(st.sampled_from(MEMBERS), min_size=2, max_size=6, unique=True))
    subs = {m: sorted(draw(st.lists(st.sampled_from(topics), min_size=1, unique=True)))
            for m in members}
    return subs, counts


# -- range ------------------------------------------------------------------------------


def test_range_javas_own_cases() -> None:
    """RangeAssignorTest: two topics of 3 for two consumers; only subscribed topics."""
    subs = {"consumer1": ["topic1", "topic2"], "consumer2": ["topic1", "topic2"]}
    result = range_assign(subs, {"topic1": 3, "topic2": 3})
    assert result == {"consumer1": [("topic1", 0), ("topic1", 1), ("topic2", 0), ("topic2", 1)],
                      "consumer2": [("topic1", 2), ("topic2", 2)]}
    assert range_assign({"consumer1": ["topic1"]}, {"topic1": 3, "other": 3}) == {
        "consumer1": [("topic1", 0), ("topic1", 1), ("topic1", 2)]}


def test_range_with_unequal_subscriptions_ranges_each_topic_over_its_own_readers() -> None:
    """Each topic is split among ITS subscribers only, sorted by member id as strings
    (consumer-10 before consumer-2)."""
    subs = {"consumer-2": ["a", "b"], "consumer-10": ["a"], "consumer-1": ["b", "c"]}
    counts = {"a": 5, "b": 3, "c": 2}
    result = range_assign(subs, counts)
    assert result == {"consumer-10": [("a", 0), ("a", 1), ("a", 2)],
                      "consumer-2": [("a", 3), ("a", 4), ("b", 2)],
                      "consumer-1": [("b", 0), ("b", 1), ("c", 0), ("c", 1)]}
    assert result == kp_range(subs, counts)


@settings(max_examples=150, deadline=None)
@given(unequal_groups())
def test_range_matches_kafka_python_with_unequal_subscriptions(group) -> None:
    subs, counts = group
    result = range_assign(subs, counts)
    assert result == kp_range(subs, counts)
    check_complete(result, subs, counts)


# -- round robin --------------------------------------------------------------------------


def test_round_robin_javas_own_cases() -> None:
    """RoundRobinAssignorTest and the RoundRobinAssignor Javadoc's unequal example."""
    subs = {"consumer1": ["topic1"], "consumer2": ["topic1", "topic2"], "consumer3": ["topic1"]}
    assert round_robin_assign(subs, {"topic1": 3, "topic2": 2}) == {
        "consumer1": [("topic1", 0)],
        "consumer2": [("topic1", 1), ("topic2", 0), ("topic2", 1)],
        "consumer3": [("topic1", 2)]}
    subs = {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}
    assert round_robin_assign(subs, {"t0": 1, "t1": 2, "t2": 3}) == {
        "C0": [("t0", 0)], "C1": [("t1", 0)],
        "C2": [("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]}


@settings(max_examples=80, deadline=None)
@given(unequal_groups())
def test_round_robin_matches_java_with_members_on_different_topics(group) -> None:
    subs, counts = group
    result = round_robin_assign(subs, counts)
    assert result == java_round_robin(subs, counts)
    check_complete(result, subs, counts)


# -- sticky ---------------------------------------------------------------------------------


def test_sticky_javadoc_unequal_example_and_its_leave() -> None:
    """The StickyAssignor Javadoc's second example: C0 on t0, C1 on t0 t1, C2 on t0 t1 t2
    (1, 2, 3 partitions); then C0 leaves -- sticky keeps all, round robin moves some."""
    subs = {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}
    counts = {"t0": 1, "t1": 2, "t2": 3}
    first = sticky_assign(subs, counts)
    assert first == {"C0": [("t0", 0)], "C1": [("t1", 0), ("t1", 1)],
                     "C2": [("t2", 0), ("t2", 1), ("t2", 2)]}
    del subs["C0"]
    second = sticky_assign(subs, counts, first)
    assert second == {"C1": [("t0", 0), ("t1", 0), ("t1", 1)],
                      "C2": [("t2", 0), ("t2", 1), ("t2", 2)]}
    assert round_robin_assign(subs, counts) == {
        "C1": [("t0", 0), ("t1", 1)], "C2": [("t1", 0), ("t2", 0), ("t2", 1), ("t2", 2)]}
    assert second == kp_sticky(subs, counts, first, 1)


def _kept(before: dict, after: dict) -> int:
    return sum(len(set(before.get(m, ())) & set(tps)) for m, tps in after.items())


def _balanced(result: dict) -> bool:
    sizes = [len(v) for v in result.values()]
    return max(sizes) - min(sizes) <= 1


@st.composite
def histories(draw):
    """Members all reading the same topics; a sequence of joins and leaves."""
    topics = draw(st.lists(st.sampled_from(TOPICS), min_size=1, max_size=4, unique=True))
    counts = {t: draw(st.integers(min_value=1, max_value=8)) for t in topics}
    pool = list(MEMBERS)
    start = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5, unique=True))
    steps = []
    members = list(start)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        outside = [m for m in pool if m not in members]
        if len(members) > 1 and (not outside or draw(st.booleans())):
            gone = draw(st.sampled_from(members))
            members = [m for m in members if m != gone]
        else:
            members = [*members, draw(st.sampled_from(outside))]
        steps.append(list(members))
    return counts, start, steps


@settings(max_examples=40, deadline=None)
@given(histories())
def test_sticky_joins_and_leaves_match_kafka_python_and_stay_balanced_and_sticky(history) -> None:
    """At each rebalance: kafka-python's StickyPartitionAssignor's answer, counts within
    one, as many partitions kept as a balanced assignment can keep (so at least as
    many as round robin would keep)."""
    counts, start, steps = history
    topics = sorted(counts)
    subs = {m: topics for m in start}
    current = sticky_assign(subs, counts)
    assert current == kp_sticky(subs, counts, {}, -1)
    for generation, members in enumerate(steps, start=1):
        subs = {m: topics for m in members}
        owned = {m: current[m] for m in members if m in current}
        result = sticky_assign(subs, counts, owned)
        assert result == kp_sticky(subs, counts, owned, generation)
        check_complete(result, subs, counts)
        assert _balanced(result)
        # round robin from the same owners keeps no more
        assert _kept(current, result) >= _kept(current, round_robin_assign(subs, counts))
        # maximal stickiness with equal subscriptions: every survivor keeps
        # min(what it owned, its share), up to the number of larger shares
        q, extra = divmod(sum(counts.values()), len(members))
        keeps = sorted((len(v) for v in owned.values()), reverse=True)
        best = sum(min(k, q + 1 if i < extra else q) for i, k in enumerate(keeps))
        assert _kept(current, result) == best
        current = result


@settings(max_examples=60, deadline=None)
@given(unequal_groups(), st.data())
def test_sticky_with_unequal_subscriptions_matches_kafka_python(group, data) -> None:
    subs, counts = group
    current = sticky_assign(subs, counts)
    assert current == kp_sticky(subs, counts, {}, -1)
    for generation in (1, 2):
        leaver = data.draw(st.sampled_from(sorted(subs)))
        subs = {m: ts for m, ts in subs.items() if m != leaver} or subs
        owned = {m: current[m] for m in subs if m in current}
        result = sticky_assign(subs, counts, owned)
        assert result == kp_sticky(subs, counts, owned, generation)
        check_complete(result, subs, counts)
        current = result


# -- cooperative sticky ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(histories())
def test_cooperative_two_rounds_match_kafka_python(history) -> None:
    """Round 1 withholds what moves (its owner revokes it); the follow-up round, with
    the owned partitions as round 1 left them, hands it over and ends at the sticky
    target.  Both rounds are kafka-python's CooperativeStickyAssignor's answers."""
    counts, start, steps = history
    topics = sorted(counts)
    subs = {m: topics for m in start}
    current = cooperative_sticky_assign(subs, counts)
    assert current == sticky_assign(subs, counts)
    generation = 1
    for members in steps:
        subs = {m: topics for m in members}
        owned = {m: current[m] for m in members if m in current}
        target = sticky_assign(subs, counts, owned)
        round1 = cooperative_sticky_assign(subs, counts, owned)
        assert round1 == kp_cooperative(subs, counts, owned, generation)
        moved = moved_partitions(owned, target)
        given_out = {tp for v in round1.values() for tp in v}
        assert not moved & given_out  # nobody gets a partition another still owns
        assert all(set(round1[m]) == set(target[m]) - moved for m in members)
        # nothing a member keeps is revoked in round 1
        for m, tps in owned.items():
            assert set(tps) & set(target[m]) <= set(round1[m])
        generation += 1
        round2 = cooperative_sticky_assign(subs, counts, round1)
        assert round2 == kp_cooperative(subs, counts, round1, generation)
        assert round2 == target
        assert not moved_partitions(round1, round2)  # round 2 only adds
        generation += 1
        current = round2


# =====================================================================================
# defaults
# =====================================================================================


def test_consumer_defaults_are_kafkas() -> None:
    """session.timeout.ms 45 s (KIP-735, Kafka 3.0), heartbeat.interval.ms 3 s,
    max.poll.interval.ms 300 s, max.poll.records 500, enable.auto.commit with
    auto.commit.interval.ms 5 s, auto.offset.reset latest, fetch.max.wait.ms 0.5 s,
    request.timeout.ms 30 s, retry.backoff.ms 100 ms, the range assignor first."""
    world = World(seed=1)
    kafka = LogCluster(world)
    kafka.create_topic("t", 2)
    c = GroupConsumer(world, "c", kafka, "g", "t")
    assert (c.session_timeout, c.heartbeat_interval, c.max_poll_interval) == (45.0, 3.0, 300.0)
    assert (c.max_poll_records, c.commit, c.auto_commit_interval) == (500, "auto", 5.0)
    assert (c.auto_offset_reset, c.fetch_max_wait) == ("latest", 0.5)
    assert (c.request_timeout, c.retry_backoff) == (30.0, 0.1)
    assert (c.assignor, c.protocol) == ("range", "eager")
    coop = GroupConsumer(world, "d", kafka, "g2", "t", assignor="cooperative-sticky")
    assert coop.protocol == "cooperative"


def test_producer_defaults_are_kafka_4s() -> None:
    """acks=all and enable.idempotence=true (Kafka 3.0+), max.in.flight 5, linger.ms 5
    (Kafka 4.0), batch.size 16384, request.timeout.ms 30 s, delivery.timeout.ms 120 s,
    retries MAX_INT, retry.backoff.ms 100 ms, retry.backoff.max.ms 1 s."""
    world = World(seed=1)
    kafka = LogCluster(world)
    kafka.create_topic("t", 2)
    p = LogProducer(world, "p", kafka, "t")
    assert (p.acks, p.idempotence, p.max_in_flight) == (-1, True, 5)
    assert (p.linger, p.batch_size, p.retries) == (0.005, 16384, 2**31 - 1)
    assert (p.request_timeout, p.delivery_timeout) == (30.0, 120.0)
    assert (p.retry_backoff, p.retry_backoff_max) == (0.1, 1.0)
    # the default idempotence gives way silently to a conflicting setting (Kafka 3.2+)
    assert LogProducer(world, "p1", kafka, "t", acks=1).idempotence is False
    assert LogProducer(world, "p6", kafka, "t", max_in_flight=6).idempotence is False
    assert LogProducer(world, "p0", kafka, "t", retries=0).idempotence is False


# =====================================================================================
# the broker: the idempotent producer, acks=all and min.insync.replicas
# =====================================================================================


class Bench:
    """A cluster with topic ``t`` and a raw client sending ProduceRequests."""

    def __init__(self, partitions: int = 2, **cluster_args) -> None:
        self.world = World(seed=0, network=Link(latency=0.001))
        self.cluster = LogCluster(self.world, **cluster_args)
        self.cluster.create_topic("t", partitions)
        self.client = Node(self.world, "client")
        self.answers: list = []

    def pid(self) -> int:
        out: list = []
        self.client.request("kafka-0", InitProducerIdRequest("client")).callbacks.append(
            lambda e: out.append(e.value.body.producer_id))
        self.step()
        return out[0]

    def produce(self, *, p: int = 0, n: int = 1, pid: int | None = None, seq: int = -1,
                acks: object = "all", records: list | None = None):
        recs = records if records is not None else [
            Record(self.cluster.next_record_id(), "k", None, self.world.now, "client", 100)
            for _ in range(n)]
        lead = self.cluster.leader("t", p)
        assert lead is not None
        ev = self.client.request(lead.name, ProduceRequest(RecordBatch("t", p, recs, pid, seq),
                                                           acks))
        ev.callbacks.append(lambda e: self.answers.append(e.value.body))
        self.step()
        return recs

    def step(self, dt: float = 0.2) -> None:
        self.world.run(until=self.world.now + dt)

    def last(self):
        return self.answers[-1]

    def log(self, p: int = 0) -> list[int]:
        return [r.record_id for r in self.cluster.replica("t", p).log.records]


def test_only_the_last_five_batches_are_deduplicated_each_one_of_them() -> None:
    """ProducerStateEntry.NUM_BATCHES_TO_RETAIN = 5: a repeat of any of the newest five
    is acked with its original offset and not appended; the 6th-oldest and older ones
    are no longer known -- their sequence is behind, refused as out of order."""
    b = Bench()
    pid = b.pid()
    batches = [b.produce(n=3, pid=pid, seq=3 * i) for i in range(8)]
    assert [a.base_offset for a in b.answers] == [3 * i for i in range(8)]
    for i in range(3, 8):  # the newest five
        b.produce(pid=pid, seq=3 * i, records=batches[i])
        assert b.last().error is None and b.last().duplicate
        assert b.last().base_offset == 3 * i
    for i in range(3):  # older: forgotten
        b.produce(pid=pid, seq=3 * i, records=batches[i])
        assert b.last().error == "out_of_order" and not b.last().duplicate
    assert len(b.log()) == 24
    assert b.cluster.stats["duplicates_refused"] == 5


def test_dedup_needs_the_same_first_and_last_sequence() -> None:
    """A retry that overlaps a retained batch but differs in length is not a duplicate;
    its sequence is not last + 1, so it is out of order (nothing appended)."""
    b = Bench()
    pid = b.pid()
    first = b.produce(n=4, pid=pid, seq=0)
    b.produce(pid=pid, seq=0, records=first[:2])
    assert b.last().error == "out_of_order"
    b.produce(pid=pid, seq=2, records=first[2:])
    assert b.last().error == "out_of_order"
    b.produce(n=1, pid=pid, seq=4)  # the next in sequence still goes
    assert b.last().error is None and b.last().base_offset == 4
    assert len(b.log()) == 5


def test_sequences_are_per_producer_id_and_per_partition() -> None:
    """The state is per (producer id, partition): another producer's or another
    partition's batch with the same sequence is a different batch."""
    b = Bench()
    pid1, pid2 = b.pid(), b.pid()
    b.produce(n=2, pid=pid1, seq=0)
    b.produce(n=2, pid=pid2, seq=0)
    assert not b.last().duplicate and b.last().base_offset == 2
    b.produce(n=2, p=1, pid=pid1, seq=0)
    assert not b.last().duplicate and b.last().base_offset == 0
    b.produce(n=1, pid=pid1, seq=3)  # a gap on partition 0
    assert b.last().error == "out_of_order"
    b.produce(n=1, pid=pid1, seq=2)
    assert b.last().error is None and b.last().base_offset == 4
    assert len(b.log(0)) == 5 and len(b.log(1)) == 2


def test_a_duplicate_of_the_newest_batch_after_later_ones_is_still_acked() -> None:
    """Retried late (behind later batches of the same producer): still one of the last 5."""
    b = Bench()
    pid = b.pid()
    first = b.produce(n=2, pid=pid, seq=0)
    b.produce(n=2, pid=pid, seq=2)
    b.produce(n=2, pid=pid, seq=4)
    b.produce(pid=pid, seq=0, records=first)
    assert b.last().duplicate and b.last().base_offset == 0 and b.last().error is None
    b.produce(n=1, pid=pid, seq=6)
    assert b.last().error is None and b.last().base_offset == 6


def test_non_idempotent_repeats_are_appended_again() -> None:
    """Without a producer id there is no dedup: a retry is a second copy."""
    b = Bench()
    recs = b.produce(n=2)
    b.produce(records=recs)
    assert [a.base_offset for a in b.answers] == [0, 2]
    assert b.log() == [r.record_id for r in recs] * 2


def test_acks_all_and_min_insync_replicas() -> None:
    """min.insync.replicas=2 of 3: one follower down still takes acks=all (ISR 2);
    two down leave the ISR at 1 -- acks=all refused NOT_ENOUGH_REPLICAS before any
    append, while acks=1 and acks=0 still go."""
    b = Bench(partitions=1, brokers=3, min_insync_replicas=2, replica_lag_time_max=5.0)
    b.produce(n=1)
    assert b.last().error is None and b.last().base_offset == 0
    install(b.world, [Crash("kafka-1", b.world.now, 1000.0)])
    b.step(15.0)  # kafka-1 fenced and out of the ISR
    assert sorted(b.cluster.isr("t", 0)) == ["kafka-0", "kafka-2"]
    b.produce(n=1)
    assert b.last().error is None and b.last().base_offset == 1
    install(b.world, [Crash("kafka-2", b.world.now, 1000.0)])
    b.step(15.0)
    assert b.cluster.isr("t", 0) == ["kafka-0"]
    before = len(b.log())
    b.produce(n=1)
    assert b.last().error == "not_enough_replicas" and len(b.log()) == before
    b.produce(n=1, acks=1)
    assert b.last().error is None and b.last().base_offset == before
    assert b.cluster.high_watermark("t", 0) == before + 1  # the ISR of one: HW = its LEO


def test_an_isr_shrinking_under_a_waiting_acks_all_batch_answers_after_the_append() -> None:
    """Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND: followers cut off, the batch is on the
    leader, the ISR shrinks to it after replica.lag.time.max.ms -- the HW covers the
    batch (an ISR of one) but the ISR is below min.insync.replicas: refused, yet
    appended (a retry without idempotence is then a duplicate)."""
    b = Bench(partitions=1, brokers=3, min_insync_replicas=2, replica_lag_time_max=5.0)
    b.produce(n=1)
    b.world.network.cut(["kafka-1", "kafka-2"], at=b.world.now, heal_at=b.world.now + 100.0)
    recs = b.produce(n=1)
    assert len(b.answers) == 1  # waiting for the followers
    b.step(10.0)
    assert b.cluster.isr("t", 0) == ["kafka-0"]
    assert b.last().error == "not_enough_replicas" and b.last().base_offset == -1
    assert b.log()[-1] == recs[0].record_id and b.cluster.high_watermark("t", 0) == 2


# =====================================================================================
# the coordinator: stale generations
# =====================================================================================


def _join(state: GroupState, now: float, client: str, member_id: str | None = None,
          token: str = "j"):
    req = JoinGroupRequest("g", member_id, client, ("t",), (), "range", "eager", 45.0, 300.0)
    return state.join(now, token, req)


def test_a_commit_from_a_stale_generation_is_refused_and_the_offsets_are_kept() -> None:
    """ClassicGroup.validateOffsetCommit: the member must be known and its generation
    the group's; a member expelled (session timeout) is unknown; during
    CompletingRebalance even the current generation waits (REBALANCE_IN_PROGRESS)."""
    state = GroupState("g", {"t": 4}.__getitem__, initial_rebalance_delay=0)
    (_, r), = _join(state, 0.0, "a")
    a = r.member_id
    _join(state, 0.0, "a", a, "ja")
    state.sync(0.0, "sa", SyncGroupRequest("g", a, 1))
    assert state.state == STABLE and state.generation == 1
    assert state.commit(1.0, OffsetCommitRequest("g", a, 1, {("t", 0): 5})) is None
    # b joins: generation 2 forms once a rejoins
    (_, r), = _join(state, 2.0, "b")
    bid = r.member_id
    _join(state, 2.0, "b", bid, "jb")
    _join(state, 2.0, "a", a, "ja2")
    assert state.generation == 2 and state.state == COMPLETING_REBALANCE
    assert state.commit(2.1, OffsetCommitRequest("g", a, 2, {("t", 0): 6})) \
        == "rebalance_in_progress"
    state.sync(2.1, "sa2", SyncGroupRequest("g", a, 2))
    state.sync(2.1, "sb2", SyncGroupRequest("g", bid, 2))
    assert state.state == STABLE
    # a commit stamped with generation 1 (a member that missed the rebalance)
    assert state.commit(3.0, OffsetCommitRequest("g", a, 1, {("t", 0): 9})) \
        == "illegal_generation"
    assert state.commit(3.0, OffsetCommitRequest("g", bid, 1, {("t", 3): 9})) \
        == "illegal_generation"
    assert state.commit(3.0, OffsetCommitRequest("g", a, 2, {("t", 1): 2})) is None
    # b goes silent: expired after its session; its commit now comes from a stranger
    for t in (10.0, 20.0, 30.0, 40.0, 47.0):
        state.heartbeat(t, _hb(a, state.generation))
    state.tick(47.5)
    assert bid not in state.members
    assert state.commit(48.0, OffsetCommitRequest("g", bid, 2, {("t", 3): 1})) \
        == "unknown_member_id"
    assert state.fetch_offsets((("t", 0), ("t", 1), ("t", 3))) == {
        ("t", 0): 5, ("t", 1): 2, ("t", 3): -1}


def _hb(member_id: str, generation: int) -> HeartbeatRequest:
    return HeartbeatRequest("g", member_id, generation)


# =====================================================================================
# auto.offset.reset, end to end
# =====================================================================================


def _run_reset(how: str) -> tuple[list, list]:
    world = World(seed=5)
    kafka = LogCluster(world, brokers=3)
    kafka.create_topic("t", 3)
    producer = LogProducer(world, "p", kafka, "t")
    for i in range(60):  # 60 records before the consumer exists, 60 after
        world.at(0.05 * i, lambda i=i: producer.send(f"k{i % 7}"))
        world.at(20.0 + 0.05 * i, lambda i=i: producer.send(f"k{i % 7}"))
    GroupConsumer(world, "c", kafka, "g", "t", auto_offset_reset=how, start=10.0,
                  commit="after")
    world.run(until=40.0)
    rows = world.trace.records
    return [r for r in rows if r[1] == "reset"], [r for r in rows if r[1] == "apply"]


def test_auto_offset_reset_earliest_reads_from_offset_0_and_latest_from_the_end() -> None:
    """No committed offset: earliest starts every partition at 0 (all 120 records);
    latest at the partition's end when the consumer is assigned (only the 60 later)."""
    resets, applies = _run_reset("earliest")
    assert sorted((r[4], r[5], r[8]) for r in resets) == [(p, 0, "earliest") for p in range(3)]
    assert len(applies) == 120 and len({r[2] for r in applies}) == 120
    resets, applies = _run_reset("latest")
    assert sorted(r[4] for r in resets) == [0, 1, 2]
    assert sum(r[5] for r in resets) == 60  # every partition's end at the time
    assert len(applies) == 60 and min(r[0] for r in applies) >= 20.0


def test_a_committed_offset_wins_over_auto_offset_reset() -> None:
    """auto.offset.reset applies only without a committed offset: a second member of
    the group, after the first left having committed, resumes at the commit."""
    world = World(seed=6)
    kafka = LogCluster(world, brokers=3)
    kafka.create_topic("t", 2)
    producer = LogProducer(world, "p", kafka, "t")
    for i in range(40):
        world.at(0.1 * i, lambda i=i: producer.send(f"k{i}"))
    first = GroupConsumer(world, "c1", kafka, "g", "t", auto_offset_reset="earliest",
                          commit="after")
    world.at(15.0, first.leave)
    for i in range(40):
        world.at(16.0 + 0.1 * i, lambda i=i: producer.send(f"k{i}"))
    GroupConsumer(world, "c2", kafka, "g", "t", auto_offset_reset="latest", start=30.0,
                  commit="after")
    world.run(until=60.0)
    rows = world.trace.records
    resets = [r for r in rows if r[1] == "reset"]
    assert {r[7] for r in resets} == {"c1"}
    applied = [r[2] for r in rows if r[1] == "apply"]
    assert len(applied) == 80 and len(set(applied)) == 80  # no loss, no repeat


def test_group_ids_hash_over_utf16_code_units_as_java() -> None:
    """The coordinator's partition: Utils.abs(groupId.hashCode()) % 50, where Java's
    String.hashCode runs over UTF-16 code units -- a lone surrogate is one of them."""
    from simcomm.messaging.cluster import group_partition

    assert group_partition("\ud800") == 55296 % 50
    # "😀" is the pair \ud83d \ude00: 31 * 0xd83d + 0xde00
    assert group_partition("😀") == (31 * 0xD83D + 0xDE00) % 50
    assert group_partition("\ud83d\ude00") == group_partition("😀")
