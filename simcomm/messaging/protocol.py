"""The bodies of the requests and responses a partitioned log's clients send.

Kafka's clients talk to brokers with requests (``Produce``, ``Fetch``,
``InitProducerId``, ...) over one TCP connection per broker.  Here each is a
network :class:`~simcomm.engine.Message` whose body is one of these slots
dataclasses, sent with :meth:`Node.request` and answered with
:meth:`Node.reply`.  A broker that is down answers nothing: the engine's
``refused`` (a closed port) or ``reset`` (a connection reset by a crash)
reply status is the "broker down" answer; the errors below are what a
live broker answers.

Errors (strings, Kafka's error codes in lower case, shortened):

* :data:`NOT_LEADER` -- ``NOT_LEADER_OR_FOLLOWER``: this broker does not
  lead the partition (any more): refresh the metadata and retry.  Also the
  answer for a topic or partition the broker does not host.
* :data:`OUT_OF_ORDER` -- ``OUT_OF_ORDER_SEQUENCE_NUMBER``: an idempotent
  producer's batch whose sequence is not the last one + 1 (refused, not
  appended).
* :data:`NOT_ENOUGH_REPLICAS` -- ``NOT_ENOUGH_REPLICAS`` (and
  ``..._AFTER_APPEND``): ``acks=all`` and the in-sync replicas are fewer than
  ``min.insync.replicas``.
* :data:`OFFSET_OUT_OF_RANGE` -- a fetch for an offset below 0 or above the
  log end offset (a consumer resets its position by ``auto.offset.reset``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm._checks import is_whole
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.messaging.log import Record, RecordBatch

__all__ = ["ACKS", "NOT_ENOUGH_REPLICAS", "NOT_LEADER", "OFFSET_OUT_OF_RANGE", "OUT_OF_ORDER",
           "REPLICA_FETCH_WAIT", "FetchRequest", "FetchResponse", "InitProducerIdRequest",
           "InitProducerIdResponse", "ProduceRequest", "ProduceResponse", "parse_acks"]

NOT_LEADER = "not_leader"
OUT_OF_ORDER = "out_of_order"
NOT_ENOUGH_REPLICAS = "not_enough_replicas"
OFFSET_OUT_OF_RANGE = "offset_out_of_range"

#: how long a fetch waits at the leader for data before it is answered empty
#: (``fetch.max.wait.ms`` = ``replica.fetch.wait.max.ms`` = 500 ms)
REPLICA_FETCH_WAIT = 0.5

#: the acks settings a producer may give, and the code each stands for on the
#: wire (Kafka's ``acks``: 0 = no answer, 1 = the leader's append, -1 = all
#: in-sync replicas)
ACKS: dict[Any, int] = {0: 0, 1: 1, -1: -1, "0": 0, "1": 1, "all": -1, "-1": -1}


def parse_acks(value: object, field: str = "acks") -> int:
    """``value`` (0, 1, "0", "1", "all" or -1; numpy integers too) as its wire
    code 0, 1 or -1; anything else is a :class:`~simcomm.errors.ParamError`."""
    code = None
    if isinstance(value, str):
        code = ACKS.get(value)
    elif is_whole(value):
        code = ACKS.get(int(value))  # type: ignore[call-overload]
    if code is None:
        raise ParamError(field, value, '0, 1, "0", "1", "all" or -1')
    return code


@dataclass(slots=True)
class ProduceRequest:
    """A batch of records for one partition's leader (Kafka's ``Produce``).

    ``acks``: 0 (the leader sends no response), 1 (answered after the
    leader's append) or -1 / ``"all"`` (answered once the high watermark
    covers the batch, i.e. every in-sync replica has it).
    """

    batch: RecordBatch
    acks: int | str = -1


@dataclass(slots=True)
class ProduceResponse:
    """The leader's answer: the offset of the batch's first record, or an error.

    ``duplicate`` is True when an idempotent producer's batch was a repeat of
    one of its last 5 batches: acknowledged with the offset it got the first
    time, not appended again.  ``base_offset`` is -1 with an error.
    """

    topic: str
    partition: int
    base_offset: int
    error: str | None = None
    duplicate: bool = False


@dataclass(slots=True)
class FetchRequest:
    """Read a partition from ``offset`` on (Kafka's ``Fetch``), sent to its leader.

    ``replica`` is the follower broker's name for a replication fetch (its
    ``offset`` is then its log end offset, which tells the leader how far it
    has copied) and None for a consumer.  A consumer reads only below the
    high watermark, a follower up to the log end.  With nothing to return
    the leader holds the fetch until there is (a long poll) or ``max_wait``
    seconds have passed (``fetch.max.wait.ms``, 0.5 s); ``max_wait=0``
    answers at once.
    """

    topic: str
    partition: int
    offset: int
    max_records: int = 500
    replica: str | None = None
    max_wait: float = REPLICA_FETCH_WAIT


@dataclass(slots=True)
class FetchResponse:
    """The records read, and where the partition's log stands.

    ``records`` -- ``(offset, Record)`` pairs in offset order (empty on an
    error or when nothing came in time); ``high_watermark`` -- the offset up
    to which every in-sync replica has the log (what consumers may read);
    ``log_end_offset`` -- the leader's LEO (for a consumer's lag);
    ``error`` -- :data:`NOT_LEADER` or :data:`OFFSET_OUT_OF_RANGE`.
    A replication fetch's answer carries the records in ``batches`` instead
    -- ``(base_offset, records, producer_id, base_sequence)`` per whole batch,
    so that the follower's idempotent-producer state is its leader's -- and
    leaves ``records`` empty.
    """

    topic: str
    partition: int
    records: list[tuple[int, Record]]
    high_watermark: int
    log_end_offset: int
    error: str | None = None
    batches: list[tuple[int, list[Record], int | None, int]] | None = None


@dataclass(slots=True)
class InitProducerIdRequest:
    """An idempotent producer asks any broker for its producer id (``InitProducerId``)."""

    producer: str = ""


@dataclass(slots=True)
class InitProducerIdResponse:
    """The producer id handed out (unique in the cluster, from a counter)."""

    producer_id: int
    error: str | None = None
