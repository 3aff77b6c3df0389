"""A partition's log: records, batches and the append-only log (Kafka's model).

A Kafka topic is split into partitions; each partition is an append-only
log in which every record gets the next **offset** (REFERENCE §3).  Order
holds within a partition, not across partitions.  This module holds the
pure pieces, with no simulation in them:

* :class:`Record` -- one application record: the id that follows it through
  the trace (``record_id``), its key and value, when and by whom it was
  produced, and its size in bytes on the wire;
* :class:`RecordBatch` -- what a producer sends in one produce request: the
  records of one partition, and for an idempotent producer its producer id
  and the sequence number of the batch's first record (Kafka's
  ``RecordBatch`` header: ``producerId``, ``baseSequence``; ``-1`` when the
  producer is not idempotent, Kafka's ``NO_SEQUENCE``);
* :class:`PartitionLog` -- one replica's copy of a partition's log.  It
  appends whole batches (offsets from 0 up; there is no retention, so the
  log start offset stays 0), reads ranges of offsets, and truncates its
  tail, as a follower does when a new leader's log is shorter (Kafka's
  ``Log.truncateTo``).  It remembers where each batch begins, with its
  producer id and base sequence, so that a replica can rebuild the
  idempotent producers' state from its own log (as Kafka rebuilds
  ``ProducerStateManager`` from its segments after a failover).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from simcomm._checks import is_whole
from simcomm.errors import ParamError

__all__ = ["NO_SEQUENCE", "PartitionLog", "Record", "RecordBatch"]

#: the base sequence of a batch from a producer that is not idempotent (Kafka's NO_SEQUENCE)
NO_SEQUENCE = -1


class Record:
    """One application record.  Plain slots: records are made on the hot path.

    ``record_id`` -- the record's id in the trace (from
    :meth:`LogCluster.next_record_id`, or given by a relay), the same on
    every copy and every retry; ``key`` -- its key (None: a null key);
    ``value`` -- the payload; ``produced`` -- the simulated time the
    application produced it; ``producer`` -- the producing node's name;
    ``size`` -- bytes on the wire.
    """

    __slots__ = ("key", "produced", "producer", "record_id", "size", "value")

    def __init__(self, record_id: int, key: Any, value: Any, produced: float,
                 producer: str, size: int) -> None:
        self.record_id = record_id
        self.key = key
        self.value = value
        self.produced = produced
        self.producer = producer
        self.size = size

    def __repr__(self) -> str:
        return f"Record(record_id={self.record_id}, key={self.key!r}, producer={self.producer!r})"


class RecordBatch:
    """The records of one partition sent in one produce request.

    ``producer_id`` is the idempotent producer's id (None: not idempotent)
    and ``base_sequence`` the sequence number of its first record in this
    partition (``-1``, :data:`NO_SEQUENCE`, when not idempotent); the batch's
    last sequence is ``base_sequence + len(records) - 1``.
    """

    __slots__ = ("base_sequence", "partition", "producer_id", "records", "topic")

    def __init__(self, topic: str, partition: int, records: list[Record],
                 producer_id: int | None = None, base_sequence: int = NO_SEQUENCE) -> None:
        self.topic = topic
        self.partition = partition
        self.records = records
        self.producer_id = producer_id
        self.base_sequence = base_sequence

    @property
    def last_sequence(self) -> int:
        """The sequence number of the batch's last record (-1 if not idempotent)."""
        if self.base_sequence < 0:
            return NO_SEQUENCE
        return self.base_sequence + len(self.records) - 1

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (f"RecordBatch({self.topic!r}, {self.partition}, {len(self.records)} records, "
                f"producer_id={self.producer_id}, base_sequence={self.base_sequence})")


class PartitionLog:
    """One replica's append-only log of a partition.

    Offsets start at 0 and nothing is ever deleted except by
    :meth:`truncate_to` (no retention: the log start offset is always 0).
    ``batches`` lists ``(base_offset, count, producer_id, base_sequence)``
    for every batch appended, in offset order (``producer_id`` None and
    ``base_sequence`` -1 for a batch of a producer that is not idempotent).
    """

    __slots__ = ("_bases", "batches", "records")

    def __init__(self) -> None:
        #: the records, the one at offset i at index i
        self.records: list[Record] = []
        self.batches: list[tuple[int, int, int | None, int]] = []
        self._bases: list[int] = []  # batch base offsets, for bisect

    @property
    def log_end_offset(self) -> int:
        """The offset the next record will get (Kafka's LEO)."""
        return len(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: list[Record], producer_id: int | None = None,
               base_sequence: int = NO_SEQUENCE) -> int:
        """Append ``records`` as one batch; return the offset of the first."""
        base = len(self.records)
        if records:
            self.records.extend(records)
            self.batches.append((base, len(records), producer_id, base_sequence))
            self._bases.append(base)
        return base

    def read(self, offset: int, max_records: int, upto: int | None = None
             ) -> list[tuple[int, Record]]:
        """``(offset, record)`` pairs from ``offset``, at most ``max_records``,
        below ``upto`` (a consumer reads below the high watermark; None: the
        log end)."""
        if not is_whole(offset) or offset < 0:
            raise ParamError("offset", offset, "a whole number >= 0")
        if not is_whole(max_records) or max_records < 0:
            raise ParamError("max_records", max_records, "a whole number >= 0")
        end = len(self.records) if upto is None else min(upto, len(self.records))
        end = min(end, offset + max_records)
        if end <= offset:
            return []
        return list(zip(range(offset, end), self.records[offset:end], strict=True))

    def batch_end(self, offset: int) -> int:
        """The offset just after the batch that holds ``offset`` (a fetch for a
        follower never splits a batch, as Kafka's never does)."""
        i = bisect_right(self._bases, offset) - 1
        if i < 0:
            return 0
        base, count, _pid, _seq = self.batches[i]
        return base + count

    def batch_start(self, offset: int) -> int:
        """The offset of the first record of the batch that holds ``offset``."""
        i = bisect_right(self._bases, offset) - 1
        return self._bases[i] if i >= 0 else 0

    def batches_between(self, start: int, end: int) -> list[tuple[int, int, int | None, int]]:
        """The batches that start in ``[start, end)``, as in :attr:`batches`."""
        return self.batches[bisect_left(self._bases, start):bisect_left(self._bases, end)]

    def truncate_to(self, offset: int) -> list[tuple[int, Record]]:
        """Remove every record at ``offset`` and above; return them as
        ``(offset, record)`` pairs (empty when the log is not longer)."""
        if not is_whole(offset) or offset < 0:
            raise ParamError("offset", offset, "a whole number >= 0")
        n = len(self.records)
        if offset >= n:
            return []
        removed = list(zip(range(offset, n), self.records[offset:], strict=True))
        del self.records[offset:]
        i = bisect_left(self._bases, offset)
        # keep the batches that start below offset (one may be cut short)
        if i > 0:
            base, count, pid, seq = self.batches[i - 1]
            if base + count > offset:
                self.batches[i - 1] = (base, offset - base, pid, seq)
        del self.batches[i:]
        del self._bases[i:]
        return removed
