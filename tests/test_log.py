"""The pure pieces of the partitioned log: Record, RecordBatch, PartitionLog,
and the protocol's acks parsing (Kafka's model, REFERENCE §3)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.errors import ParamError
from simcomm.messaging.log import NO_SEQUENCE, PartitionLog, Record, RecordBatch
from simcomm.messaging.protocol import (
    FetchRequest,
    FetchResponse,
    ProduceRequest,
    ProduceResponse,
    parse_acks,
)


def recs(*ids: int) -> list[Record]:
    return [Record(i, f"k{i}", i * 10, 0.5, "p", 100) for i in ids]


def test_append_gives_consecutive_offsets_from_zero():
    """Each record gets the next offset; append returns the batch's first."""
    log = PartitionLog()
    assert log.log_end_offset == 0
    assert log.append(recs(1, 2, 3)) == 0
    assert log.append(recs(4)) == 3
    assert log.log_end_offset == len(log) == 4
    assert [(o, r.record_id) for o, r in log.read(0, 10)] == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_an_empty_batch_appends_nothing():
    log = PartitionLog()
    assert log.append([]) == 0
    assert log.batches == [] and log.log_end_offset == 0


def test_read_stops_at_max_records_and_upto():
    """A consumer reads below the high watermark (``upto``), at most max_records."""
    log = PartitionLog()
    log.append(recs(*range(10)))
    assert [o for o, _ in log.read(2, 3)] == [2, 3, 4]
    assert [o for o, _ in log.read(2, 100, upto=5)] == [2, 3, 4]
    assert log.read(5, 100, upto=5) == []
    assert log.read(10, 5) == []
    assert log.read(3, 0) == []
    assert [o for o, _ in log.read(8, 100, upto=50)] == [8, 9]


@pytest.mark.parametrize("offset", [-1, 1.5, True, "0"])
def test_read_refuses_a_bad_offset(offset):
    log = PartitionLog()
    with pytest.raises(ParamError, match="offset"):
        log.read(offset, 1)


def test_read_refuses_a_bad_max_records():
    with pytest.raises(ParamError, match="max_records"):
        PartitionLog().read(0, -1)


def test_numpy_offsets_are_accepted():
    log = PartitionLog()
    log.append(recs(1, 2))
    assert [o for o, _ in log.read(np.int64(1), np.int32(5))] == [1]
    assert log.truncate_to(np.int64(1))[0][0] == 1


def test_truncate_removes_the_tail_and_returns_it():
    """Kafka's truncateTo: every record at the offset and above goes."""
    log = PartitionLog()
    log.append(recs(1, 2), producer_id=7, base_sequence=0)
    log.append(recs(3, 4, 5), producer_id=7, base_sequence=2)
    removed = log.truncate_to(3)
    assert [(o, r.record_id) for o, r in removed] == [(3, 4), (4, 5)]
    assert log.log_end_offset == 3
    # the batch cut short keeps its head
    assert log.batches == [(0, 2, 7, 0), (2, 1, 7, 2)]
    assert log.append(recs(9)) == 3
    assert log.truncate_to(10) == []
    assert [b[0] for b in log.batches] == [0, 2, 3]
    assert [r.record_id for _, r in log.truncate_to(0)] == [1, 2, 3, 9]
    assert log.batches == [] and log.log_end_offset == 0


def test_truncate_refuses_a_negative_offset():
    with pytest.raises(ParamError, match="offset"):
        PartitionLog().truncate_to(-1)


def test_batches_remember_producer_and_sequence():
    log = PartitionLog()
    log.append(recs(1, 2, 3), producer_id=4, base_sequence=10)
    log.append(recs(4))
    assert log.batches == [(0, 3, 4, 10), (3, 1, None, NO_SEQUENCE)]
    assert log.batch_start(2) == 0 and log.batch_end(2) == 3
    assert log.batch_start(3) == 3 and log.batch_end(3) == 4
    assert log.batches_between(0, 4) == log.batches
    assert log.batches_between(3, 4) == [(3, 1, None, NO_SEQUENCE)]
    assert log.batches_between(1, 3) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=12), st.data())
def test_truncate_then_append_is_a_prefix_plus_the_new(sizes, data):
    """Offsets stay dense after any truncation; the kept prefix is untouched."""
    log = PartitionLog()
    rid = 0
    for n in sizes:
        log.append(recs(*range(rid, rid + n)))
        rid += n
    cut = data.draw(st.integers(0, rid))
    before = [r.record_id for r in log.records]
    log.truncate_to(cut)
    assert [r.record_id for r in log.records] == before[:cut]
    assert sum(b[1] for b in log.batches) == cut
    assert log.append(recs(999)) == cut
    assert [o for o, _ in log.read(0, 10_000)] == list(range(cut + 1))


def test_record_batch_sequences():
    b = RecordBatch("t", 2, recs(1, 2, 3), producer_id=5, base_sequence=7)
    assert len(b) == 3 and b.last_sequence == 9
    assert RecordBatch("t", 0, recs(1)).last_sequence == NO_SEQUENCE
    assert "t" in repr(b) and "Record(" in repr(b.records[0])


@pytest.mark.parametrize(("value", "code"), [
    (0, 0), (1, 1), (-1, -1), ("0", 0), ("1", 1), ("all", -1), ("-1", -1),
    (np.int64(1), 1), (np.int8(-1), -1)])
def test_parse_acks_gives_the_wire_code(value, code):
    assert parse_acks(value) == code


@pytest.mark.parametrize("value", [True, False, 2, "ALL", 1.0, None, "one"])
def test_parse_acks_refuses_anything_else(value):
    with pytest.raises(ParamError, match="acks"):
        parse_acks(value)


def test_protocol_bodies_are_slotted_with_kafkas_defaults():
    """Slots dataclasses (no per-instance dict); a fetch waits 0.5 s by default
    (fetch.max.wait.ms) and is a consumer's unless ``replica`` is set."""
    f = FetchRequest("t", 0, 5)
    assert (f.max_records, f.replica, f.max_wait) == (500, None, 0.5)
    assert not hasattr(f, "__dict__")
    r = ProduceResponse("t", 0, 3)
    assert (r.error, r.duplicate) == (None, False)
    assert ProduceRequest(RecordBatch("t", 0, [])).acks == -1
    assert FetchResponse("t", 0, [], 0, 0).batches is None
