"""Kafka's producer partitioners: murmur2 for keys, sticky for null keys.

REFERENCE §3: keyed record -> toPositive(murmur2(key bytes)) mod N with
toPositive(x) = x & 0x7fffffff (not abs); with 1000 partitions b'' -> 681,
b'a' -> 524, b'ab' -> 434, b'abc' -> 107, b'123456789' -> 566.  A null key:
keep one partition until a batch is full, then pick another, avoiding the
previous one when it can.  kafka-python's murmur2 and DefaultPartitioner are
the oracle.
"""

from __future__ import annotations

import random
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.errors import ParamError
from simcomm.messaging import StickyPartitioner, murmur2, partition_for_key, to_positive

with warnings.catch_warnings():  # kafka-python reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import DefaultPartitioner
    from kafka.partitioner.default import murmur2 as kafka_murmur2


class OracleCluster:
    """The slice of kafka-python's ClusterMetadata its DefaultPartitioner reads."""

    def __init__(self, topic: str, partitions: int) -> None:
        self.topic, self.n = topic, partitions

    def topics(self) -> set[str]:
        return {self.topic}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.n))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.n))


# -- murmur2 and the keyed partitioner ----------------------------------------------


@pytest.mark.parametrize(("key", "partition"), [
    (b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566),
])
def test_reference_partitions_of_1000(key: bytes, partition: int) -> None:
    """REFERENCE §3's worked examples, 1000 partitions."""
    assert partition_for_key(key, 1000) == partition


def test_to_positive_masks_the_sign_bit_not_abs() -> None:
    """b'a' hashes negative: the mask sends it to 524, abs would send it to 124."""
    h = murmur2(b"a")
    assert h < 0
    assert to_positive(h) % 1000 == 524
    assert abs(h) % 1000 == 124
    assert to_positive(-(2**31)) == 0 and to_positive(2**31 - 1) == 2**31 - 1


def test_murmur2_is_signed_32_bit_like_java() -> None:
    """Java ints: the hash is in [-2**31, 2**31); kafka-python gives the same bits unsigned."""
    assert murmur2(b"a") == -1563381124
    assert kafka_murmur2(b"a") == 2731586172 == murmur2(b"a") & 0xFFFFFFFF


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_murmur2_matches_kafka_python(data: bytes) -> None:
    """Byte for byte kafka-python's kafka.partitioner.default.murmur2 (signed vs unsigned form)."""
    h = murmur2(data)
    assert -(2**31) <= h < 2**31
    assert h & 0xFFFFFFFF == kafka_murmur2(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(min_value=1, max_value=2000))
def test_partition_for_bytes_key_matches_kafka_python(key: bytes, n: int) -> None:
    """The partition kafka-python's DefaultPartitioner picks for a keyed record."""
    oracle = DefaultPartitioner().partition("t", None, key, None, None, OracleCluster("t", n))
    assert partition_for_key(key, n) == oracle


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.integers(min_value=1, max_value=64))
def test_str_key_is_utf8_encoded(key: str, n: int) -> None:
    """A str key hashes as its UTF-8 bytes (Kafka's StringSerializer), as kafka-python would."""
    data = key.encode("utf-8")
    oracle = DefaultPartitioner().partition("t", key, data, None, None, OracleCluster("t", n))
    assert partition_for_key(key, n) == partition_for_key(data, n) == oracle


def test_same_key_same_partition_and_every_partition_in_range() -> None:
    """A key always lands on one partition: the sharded channel keeps a key's order."""
    keys = [f"order-{i}" for i in range(2000)]
    first = [partition_for_key(k, 12) for k in keys]
    assert [partition_for_key(k, 12) for k in keys] == first
    counts = Counter(first)
    assert set(counts) == set(range(12))
    assert min(counts.values()) > 2000 / 12 * 0.7  # murmur2 spreads keys evenly


def test_numpy_partition_count_accepted() -> None:
    """A sweep over np.arange gives numpy ints: accepted, same answer."""
    assert partition_for_key(b"abc", np.int64(1000)) == 107
    assert partition_for_key("abc", np.int32(1000)) == 107


@pytest.mark.parametrize("key", [None, 7, 3.5, True, ["a"], ("a",)])
def test_bad_key_is_a_param_error(key: object) -> None:
    """Only str or bytes keys have a hash partition; the error names the field."""
    with pytest.raises(ParamError, match="key"):
        partition_for_key(key, 12)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, -1, 1.5, 12.0, True, "12", None])
def test_bad_partition_count_is_a_param_error(n: object) -> None:
    """num_partitions: a whole number >= 1 -- also after the key was cached with 12."""
    partition_for_key("cached", 12)
    with pytest.raises(ParamError, match="num_partitions"):
        partition_for_key("cached", n)  # type: ignore[arg-type]


def test_murmur2_reads_bytearray_refuses_str() -> None:
    """murmur2 hashes bytes; a str must be encoded first (partition_for_key does it)."""
    assert murmur2(bytearray(b"abc")) == murmur2(b"abc")
    assert murmur2(memoryview(b"abcde")) == murmur2(b"abcde")
    with pytest.raises(ParamError, match="data"):
        murmur2("abc")  # type: ignore[arg-type]


# -- the sticky partitioner -----------------------------------------------------------


def test_sticky_keeps_one_partition_until_its_batch_closes() -> None:
    """Every null-keyed record goes to the sticky partition until on_new_batch."""
    sticky = StickyPartitioner(random.Random(3))
    assert sticky.current("t") is None
    p = sticky.partition("t", 6)
    assert [sticky.partition("t", 6) for _ in range(50)] == [p] * 50
    assert sticky.current("t") == p
    sticky.on_new_batch("t", 6, p)
    q = sticky.partition("t", 6)
    assert q != p
    assert [sticky.partition("t", 6) for _ in range(50)] == [q] * 50


def test_a_batch_of_another_partition_does_not_switch() -> None:
    """Kafka's StickyPartitionCache switches only when the closed batch is the sticky one's."""
    sticky = StickyPartitioner(random.Random(5))
    p = sticky.partition("t", 6)
    sticky.on_new_batch("t", 6, (p + 1) % 6)  # a keyed record's batch closed
    assert sticky.partition("t", 6) == p


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=2, max_value=30),
       st.integers(min_value=1, max_value=60))
def test_new_batch_never_returns_to_the_previous_partition(seed: int, n: int, batches: int) -> None:
    """With two or more partitions the next sticky partition always differs from the last."""
    sticky = StickyPartitioner(random.Random(seed))
    p = sticky.partition("t", n)
    for _ in range(batches):
        sticky.on_new_batch("t", n, p)
        q = sticky.partition("t", n)
        assert q != p and 0 <= q < n
        p = q


def test_one_partition_stays_put() -> None:
    """Nothing to avoid the previous one with: partition 0 every time."""
    sticky = StickyPartitioner(random.Random(1))
    assert sticky.partition("t", 1) == 0
    sticky.on_new_batch("t", 1, 0)
    assert sticky.partition("t", 1) == 0


def test_sticky_batches_spread_over_all_partitions() -> None:
    """Over many batches each partition gets its share (uniform draws among the others)."""
    sticky = StickyPartitioner(random.Random(11))
    counts: Counter[int] = Counter()
    for _ in range(6000):
        p = sticky.partition("t", 12)
        counts[p] += 1
        sticky.on_new_batch("t", 12, p)
    assert set(counts) == set(range(12))
    assert min(counts.values()) > 6000 / 12 * 0.8
    assert max(counts.values()) < 6000 / 12 * 1.2


def test_topics_are_independent() -> None:
    """One sticky partition per topic; a batch of one topic does not move another's."""
    sticky = StickyPartitioner(random.Random(2))
    a, b = sticky.partition("a", 8), sticky.partition("b", 8)
    sticky.on_new_batch("a", 8, a)
    assert sticky.partition("b", 8) == b and sticky.partition("a", 8) != a


def test_same_stream_same_choices() -> None:
    """Determinism: the choices come only from the given stream."""
    def run(seed: int) -> list[int]:
        sticky = StickyPartitioner(random.Random(seed))
        out = []
        for _ in range(40):
            p = sticky.partition("t", 7)
            out.append(p)
            sticky.on_new_batch("t", 7, p)
        return out

    assert run(9) == run(9)
    assert run(9) != run(10)


def test_available_partitions_are_preferred() -> None:
    """Kafka draws among partitions with a live leader (availablePartitionsForTopic)."""
    sticky = StickyPartitioner(random.Random(4))
    p = sticky.partition("t", 6, available=[2, 4])
    assert p in (2, 4)
    for _ in range(20):
        sticky.on_new_batch("t", 6, p, available=[2, 4])
        q = sticky.partition("t", 6)
        assert q in (2, 4) and q != p
        p = q
    sticky.on_new_batch("t", 6, p, available=[5])
    assert sticky.partition("t", 6) == 5


def test_fewer_partitions_than_the_sticky_one_picks_again() -> None:
    """A sticky partition beyond the topic's count is not returned."""
    sticky = StickyPartitioner(random.Random(8))
    while sticky.partition("t", 10) < 3:
        sticky.on_new_batch("t", 10, sticky.partition("t", 10))
    assert sticky.partition("t", 3) < 3


@pytest.mark.parametrize(("call", "field"), [
    (lambda s: StickyPartitioner(42), "rng"),  # type: ignore[arg-type]
    (lambda s: s.partition("t", 0), "num_partitions"),
    (lambda s: s.partition("t", True), "num_partitions"),
    (lambda s: (s.partition("t", 4), s.partition("t", "4")), "num_partitions"),
    (lambda s: (s.partition("t", 4), s.partition("t", 4.0)), "num_partitions"),
    (lambda s: s.partition(3, 4), "topic"),
    (lambda s: s.on_new_batch("t", 4, None), "previous"),
    (lambda s: s.on_new_batch("t", 4, 1.0), "previous"),
])
def test_sticky_bad_arguments(call, field: str) -> None:
    """Each bad argument is a ParamError naming it."""
    with pytest.raises(ParamError, match=field):
        call(StickyPartitioner(random.Random(0)))
