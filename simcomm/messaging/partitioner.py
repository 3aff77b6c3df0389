"""Kafka's producer partitioners: murmur2 for keyed records, sticky for null keys.

A Kafka producer decides which partition of a topic each record goes to
before it batches it (REFERENCE §3):

* a record WITH a key goes to ``toPositive(murmur2(key bytes)) mod N`` --
  Kafka's ``BuiltInPartitioner.partitionForKey`` over ``Utils.murmur2``
  (seed ``0x9747b28c``, ``m = 0x5bd1e995``, ``r = 24``) and
  ``Utils.toPositive(x) = x & 0x7fffffff`` (**not** ``abs``: ``abs`` would
  send ``b"a"`` to partition 124 of 1000 instead of 524).  Every record of
  one key lands in one partition, so a consumer group reads them in order;
  this is the *sharded channel* of *Microservices Patterns* §3.3.4.
  :func:`murmur2` is byte for byte Kafka's (and kafka-python's
  ``kafka.partitioner.default.murmur2``, which returns the same 32 bits
  unsigned: ``murmur2(d) & 0xffffffff`` equals it);
* a record with a NULL key goes to the producer's current *sticky*
  partition (:class:`StickyPartitioner`): one partition until its batch is
  full, then another, so null-keyed records still fill whole batches
  instead of scattering one record per batch over every partition.

These are pure functions and a small state machine: no World, no clock; the
producer (:mod:`simcomm.messaging.log_producer`) applies them.

    >>> partition_for_key(b"a", 1000)
    524
    >>> murmur2(b"abc") & 0x7fffffff == murmur2(b"abc") or murmur2(b"abc") < 0
    True
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

from simcomm._checks import is_whole
from simcomm.errors import ParamError

__all__ = ["StickyPartitioner", "murmur2", "partition_for_key", "to_positive"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2(byte[])``: the 32-bit MurmurHash2 of ``data``, signed.

    Java's ints are signed 32-bit, so Kafka's hash is in ``[-2**31, 2**31)``;
    this returns the same number.  kafka-python's ``murmur2`` returns the
    same bits unsigned (``murmur2(data) & 0xffffffff``).  ``data`` is bytes
    (a ``bytearray`` or ``memoryview`` is read as its bytes); anything else
    is a :class:`~simcomm.errors.ParamError`.
    """
    if not isinstance(data, bytes):
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        else:
            raise ParamError("data", data, "bytes (encode a str first, or use partition_for_key)")
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    # the 4-byte little-endian words, as Java reads them from the array
    for k in struct.unpack_from(f"<{whole >> 2}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def to_positive(x: int) -> int:
    """Kafka's ``Utils.toPositive``: ``x & 0x7fffffff`` -- clears the sign bit.

    Not ``abs(x)``: ``abs(-2**31)`` overflows in Java, and for every other
    negative number the two differ (``abs`` would move most keys).
    """
    return x & 0x7FFFFFFF


def _check_partitions(num_partitions: object) -> int:
    if not is_whole(num_partitions) or num_partitions < 1:  # type: ignore[operator]
        raise ParamError("num_partitions", num_partitions,
                         "the number of partitions of the topic (a whole number >= 1)")
    return int(num_partitions)  # type: ignore[call-overload]


def _utf8(text: str) -> bytes:
    """``text`` as Java's ``String.getBytes(UTF_8)`` (Kafka's ``StringSerializer``) encodes it.

    A Python str may hold surrogates, which ``str.encode`` refuses: Java joins
    a high and a low surrogate into one (4-byte) character and writes ``?``
    for an unpaired one.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return joined.encode("utf-8", "replace")


# (key, num_partitions) -> partition: a producer hashes the same keys again and
# again (an order id per event of its lifecycle); the cache keeps the hot path
# to one dict lookup.  Bounded: cleared when full.
_CACHE: dict[tuple[object, int], int] = {}
_CACHE_MAX = 1 << 16


def partition_for_key(key: bytes | str, num_partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record.

    ``toPositive(murmur2(key bytes)) % num_partitions`` (Kafka's
    ``BuiltInPartitioner.partitionForKey``); a str key is UTF-8 encoded first
    (Kafka's ``StringSerializer``).  ``num_partitions`` must be a whole number
    >= 1 and ``key`` a str or bytes, else :class:`~simcomm.errors.ParamError`
    (a null key has no hash partition: see :class:`StickyPartitioner`).

        >>> [partition_for_key(k, 1000) for k in (b"", b"a", b"ab", b"abc", b"123456789")]
        [681, 524, 434, 107, 566]
        >>> partition_for_key("order-17", 12) == partition_for_key(b"order-17", 12)
        True
    """
    if type(num_partitions) is int:
        try:
            return _CACHE[key, num_partitions]
        except (KeyError, TypeError):  # not seen yet, or an unhashable key
            pass
    if type(key) is str:
        data = _utf8(key)
    elif type(key) is bytes:
        data = key
    elif isinstance(key, (str, bytes)):  # subclasses: hash their value
        data = _utf8(str(key)) if isinstance(key, str) else bytes(key)
    else:
        raise ParamError("key", key, "a str (UTF-8 encoded) or bytes; a null key has no "
                         "hash partition (the sticky partitioner places it)")
    n = _check_partitions(num_partitions)
    p = (murmur2(data) & 0x7FFFFFFF) % n
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    if type(num_partitions) is int:
        _CACHE[key, n] = p
    return p


class StickyPartitioner:
    """The producer's partitioner for NULL-keyed records: stick to one partition per batch.

    Kafka's sticky partitioner (KIP-480, ``StickyPartitionCache``, the
    default from Kafka 2.4): the producer keeps, per topic, one partition
    that every null-keyed record goes to; when the batch being filled for
    that partition is full (or is closed and sent) the producer calls
    :meth:`on_new_batch` and the partitioner picks another partition at
    random -- never the previous one when there is another to pick
    (REFERENCE §3: "avoiding the previous one when it can").  Null-keyed
    records thus travel in full batches, one partition at a time, and
    spread evenly over the partitions in the long run; they keep no order
    by key (they have none).

    ``rng`` is the producer's own random stream (``world.stream(
    "producer:<name>:sticky")``), so the choices are reproducible and
    independent of every other draw.

    ``available`` (optional, on :meth:`on_new_batch` and :meth:`partition`)
    are the partitions whose leader is known to be up, as Kafka's
    ``cluster.availablePartitionsForTopic``: the next partition is drawn
    among them, among all partitions when none is available.

    Kafka 3.3's ``BuiltInPartitioner`` (KIP-794) keeps the same idea but
    switches after ``batch.size`` bytes were produced to the partition
    (and may weight the draw by queue sizes,
    ``partitioner.adaptive.partitioning.enable``); it no longer avoids the
    previous partition.  simcomm follows KIP-480's rule, which the
    REFERENCE states: switch when the batch fills, avoid the previous one.

        >>> sticky = StickyPartitioner(random.Random(1))
        >>> p = sticky.partition("clicks", 6)
        >>> sticky.partition("clicks", 6) == p          # sticks ...
        True
        >>> sticky.on_new_batch("clicks", 6, p)
        >>> sticky.partition("clicks", 6) != p          # ... until the batch fills
        True
    """

    __slots__ = ("_current", "_rng")

    def __init__(self, rng: random.Random) -> None:
        if not isinstance(rng, random.Random):
            raise ParamError("rng", rng, "a random.Random stream (world.stream(...))")
        self._rng = rng
        self._current: dict[str, int] = {}

    def partition(self, topic: str, num_partitions: int,
                  available: Sequence[int] | None = None) -> int:
        """The sticky partition for the next null-keyed record of ``topic``.

        Picks one (at random, among ``available`` if given) the first time,
        or when the topic has fewer partitions than the sticky one.
        """
        p = self._current.get(topic)
        if p is not None and type(num_partitions) is int and p < num_partitions:
            return p
        return self._next(topic, num_partitions, -1, available)

    def on_new_batch(self, topic: str, num_partitions: int, previous: int,
                     available: Sequence[int] | None = None) -> None:
        """The batch for ``previous`` filled or closed: switch to another partition.

        As Kafka's ``StickyPartitionCache.nextPartition(topic, cluster,
        prevPartition)``: only when ``previous`` is the current sticky
        partition (a batch of another partition -- a keyed one -- changes
        nothing); the new one differs from ``previous`` whenever there is
        more than one partition to choose from.
        """
        if not is_whole(previous):
            raise ParamError("previous", previous, "the partition whose batch closed (an int)")
        current = self._current.get(topic)
        if current is None or current == previous:
            self._next(topic, num_partitions, current, available)

    def current(self, topic: str) -> int | None:
        """The sticky partition of ``topic`` now, or None before its first null-keyed record."""
        return self._current.get(topic)

    def _next(self, topic: str, num_partitions: int, old: int | None,
              available: Sequence[int] | None) -> int:
        if not isinstance(topic, str):
            raise ParamError("topic", topic, "a topic name (a string)")
        n = _check_partitions(num_partitions)
        rng = self._rng
        pool = [int(p) for p in available if 0 <= p < n] if available else []
        if not pool:
            if n == 1:
                new = 0
            else:
                new = rng.randrange(n)
                while new == old:
                    new = rng.randrange(n)
        elif len(pool) == 1:
            new = pool[0]
        else:
            new = pool[rng.randrange(len(pool))]
            while new == old:
                new = pool[rng.randrange(len(pool))]
        self._current[topic] = new
        return new
