"""A Kafka producer: partitioning, batching, acks, retries and the idempotent producer.

:class:`LogProducer` is the client library of a Kafka producer running in a
node of its own (an :class:`~simcomm.engine.Instance`, so faults can crash
it).  The application calls :meth:`LogProducer.send`; the producer does
what Kafka's ``KafkaProducer`` does between ``send()`` and the callback
(REFERENCE §3; Kafka's ``RecordAccumulator`` and ``Sender``):

**Partitioning.**  A keyed record goes to ``partition_for_key(key, N)``
(murmur2, Kafka's default partitioner; an int key is hashed as
``str(key)``); a null-keyed record goes to the :class:`StickyPartitioner`'s
partition, and when that partition has no open batch to take it the
producer calls ``on_new_batch`` and asks again (KIP-480's
``abortOnNewBatch``, Kafka 2.4 to 3.2), so null-keyed records fill whole
batches one partition at a time.

**Batching** (``linger`` = ``linger.ms``, ``batch_size`` = ``batch.size``,
``record_size`` bytes per record).  Records of one partition are appended
to the partition's last batch while it has room (Kafka's ``hasRoomFor``:
``bytes + record_size <= batch_size``, and an empty batch takes any record)
and has not been sent.  A batch may be sent once it is full (``bytes >=
batch_size``), once another batch was started behind it, or ``linger`` s
after it was created -- and then only when the leader's connection has a
free slot: a batch that waits for one keeps taking records, so under load
batches grow towards ``batch_size`` by themselves, as Kafka's do.
``linger=0`` still gathers the records sent in the same instant.

**Requests and acks** (``acks`` = ``acks``).  Each batch travels in one
:class:`~simcomm.messaging.protocol.ProduceRequest` to the partition's
leader (the cluster's metadata, see :meth:`LogCluster.leader
<simcomm.messaging.cluster.LogCluster.leader>`).  ``acks=0``: nothing is
awaited -- the request goes out and every record is acknowledged at once
with offset -1, never retried (Kafka completes the future when the request
is sent).  ``acks=1`` / ``"all"``: the leader answers after its own append,
or when the in-sync replicas have the batch; at most ``max_in_flight``
(``max.in.flight.requests.per.connection``) requests are in flight per
leader connection.  The producer talks to each broker over one TCP
connection (``fifo``): what it sends to a leader arrives in that order, and
it reads the answers in the order it sent the requests (Kafka's
``InFlightRequests``): an answer that overtook a lost one waits for it.

**Retries** (``retries``, ``request_timeout`` = ``request.timeout.ms``,
``retry_backoff`` / ``retry_backoff_max`` = ``retry.backoff.ms`` /
``retry.backoff.max.ms``, ``delivery_timeout`` = ``delivery.timeout.ms``).
A request that is not answered within ``request_timeout`` closes its
connection, as Kafka's ``NetworkClient`` does: every request in flight on
it fails (retry detail ``timeout``), answered or not.  A request refused or
reset by a broker that is down (``refused``), or answered with a retriable
error (``not_leader``, ``not_enough_replicas``, ``out_of_order``) fails
alone.  A failed batch is retried: it goes back to the FRONT of its
partition's queue (Kafka's ``reenqueue``; an idempotent producer puts it
back in sequence order; the batches of a closed connection keep their
order) and is sent again after an exponential backoff, ``retry_backoff * 2**(n-1)``
capped at ``retry_backoff_max`` with ±20 % jitter (KIP-580, Kafka 3.7+).
A batch fails -- its records get ``None`` -- after ``retries`` retries or
``delivery_timeout`` s after it was created, wherever it is then (queued,
waiting for a leader, or in flight: Kafka's ``delivery.timeout.ms`` bounds
the whole time from ``send()`` to the outcome).

Without idempotence, a retry with more than one request in flight breaks
the partition's order and can duplicate: a batch whose request was lost is
sent again after later batches were appended (reordered), and a batch that
was appended but whose answer was lost or late is appended again
(duplicated) -- both visible as ``append`` rows in ``world.trace.records``.
With ``max_in_flight=1`` nothing is sent behind a batch until its outcome
is known: order holds, duplicates remain.

**The idempotent producer** (``idempotence`` = ``enable.idempotence``).  The
producer first asks a broker for a producer id
(:class:`~simcomm.messaging.protocol.InitProducerIdRequest`); each batch
then carries it and the sequence number of its first record in its
partition (sequences count records from 0, assigned when the batch is
first sent, kept on every retry).  The leader refuses a batch whose
sequence is not the next one (``out_of_order``) and acknowledges a repeat
of one of its last 5 batches without appending it (``dedup``), so the
producer retries refused batches in sequence order, and a retried batch is
sent only when every earlier batch of its partition is done (Kafka's
``RecordAccumulator`` waits until the retried batch is the first in flight:
"this effectively reduces our in flight request count to 1"): no reorder,
no duplicate.  A leader accepts any sequence from a producer id it holds no
state for (Kafka's ``ProducerAppendInfo.checkSequence``), which TCP makes
safe: a connection never delivers a later request after losing an earlier
one.  simcomm's network loses single messages, so a partition's first batch
under a producer id goes alone, and the next ones only once it is
acknowledged (a deviation from Kafka that stands in for TCP).

It needs ``acks="all"``, ``retries >= 1`` and ``max_in_flight <= 5``:
asking for it with anything else is a :class:`~simcomm.errors.ParamError`,
as Kafka's ``ConfigException``; left at ``None`` it is on unless those
settings conflict (Kafka 3.2+: the default ``enable.idempotence=true``
gives way silently). When an idempotent batch fails after it was sent, the
producer cannot know whether it was appended, so once nothing is in flight
it takes a new producer id and numbers its queued batches from 0 again
(what Kafka 1.1 to 2.4 did; Kafka 2.5+ bumps the epoch instead, KIP-360) --
a queued retry that had in fact been appended is then appended again, as it
could be in Kafka.

**Crash.**  The producer's buffers live in its process: a crash loses every
record not yet acknowledged (each gets a ``fail`` row, detail ``crash``,
and ``None``); after the restart it takes a new producer id.  A record
sent while it is down fails the same way at once.  A hang stalls the
sender (nothing goes out) until it ends; answers that arrive meanwhile are
read (a simplification: the network thread of a hung client is not
modelled apart).

**Rows** in ``world.trace.records`` (when the trace is on): ``produce``
(a record made by :meth:`send` without a ``record_id``) or ``send`` (with
one given by the caller, detail its ``label``), ``retry`` per record of a
batch sent again (detail why: ``timeout``, ``refused``, ``not_leader``,
``out_of_order``, ``not_enough_replicas``), ``ack`` per acknowledged record
(detail ``0``, ``1`` or ``all``), ``fail`` per record given up (detail
``delivery_timeout``, ``retries`` or ``crash``).  Counters: ``sent``,
``acked``, ``failed`` (records), ``batches``, ``requests``, ``retried``
(batch retries).

Speed: no process per record or request.  A record costs a dict look-up, a
:class:`~simcomm.messaging.log.Record`, an event and a row (the event of an
acknowledged record that nothing waits on yet is settled in place, without
a turn in the event queue); a batch a linger timer and a request; request
and delivery timeouts share one timer each, armed for the oldest deadline
(every request has the same timeout, so they expire in the order they were
sent).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from simpy.events import Event

from simcomm._checks import as_real, is_flag, is_whole
from simcomm.engine.nodes import Instance
from simcomm.errors import ParamError
from simcomm.messaging.log import NO_SEQUENCE, Record, RecordBatch
from simcomm.messaging.partitioner import StickyPartitioner, partition_for_key
from simcomm.messaging.protocol import InitProducerIdRequest, ProduceRequest, parse_acks

if TYPE_CHECKING:
    from simcomm.engine.messages import Message
    from simcomm.engine.world import World
    from simcomm.messaging.cluster import LogCluster

__all__ = ["DELIVERY_TIMEOUT", "MAX_IN_FLIGHT_IDEMPOTENT", "LogProducer"]

_ACK_DETAIL = {0: "0", 1: "1", -1: "all"}

#: the most requests in flight an idempotent producer may have per connection
#: (the broker keeps the last 5 batches per producer and partition)
MAX_IN_FLIGHT_IDEMPOTENT = 5

#: delivery.timeout.ms's default, seconds
DELIVERY_TIMEOUT = 120.0

_JITTER = 0.2  # KIP-580's retry backoff jitter
_EPS = 1e-9  # seconds: a timer may fire an ulp before the time it was set for
_FAST_KEYS = (str, int, bytes)  # key types cached by value (bool and float are not keys)


def _settled(ev: Event, value: Any) -> None:
    """Give ``ev`` its value as if SimPy had already processed it.

    An acknowledged record's event that nothing waits on yet needs no turn
    in the event queue (a third of a log run's events otherwise): it is left
    in the state SimPy leaves a processed event in -- ``ok``, its value set,
    ``callbacks`` None -- so a process that yields it later, a condition
    (``AllOf`` / ``AnyOf``) or ``env.run(until=ev)`` take its value at
    once.  As for any processed event, callbacks must be added before it
    triggers (``send(...).callbacks.append`` right after :meth:`send` is
    fine: the acknowledgement comes later).
    """
    ev._ok = True  # type: ignore[attr-defined]
    ev._value = value
    ev.callbacks = None  # type: ignore[assignment]


class _Batch:
    """A producer batch: the records of one partition, sent and retried together."""

    __slots__ = ("backoff_until", "closed", "created", "done", "events", "full",
                 "partition", "ready_at", "records", "req", "retries", "sequence", "wire")

    def __init__(self, partition: int, created: float, ready_at: float) -> None:
        self.partition = partition
        self.records: list[Record] = []
        self.events: list[Event] = []
        self.created = created
        self.ready_at = ready_at  # created + linger
        self.full = False
        self.closed = False  # sent at least once: takes no more records
        self.done = False  # acknowledged or failed
        self.sequence = NO_SEQUENCE  # base sequence, once the idempotent producer gave one
        self.retries = 0
        self.backoff_until = 0.0
        self.req: _Request | None = None  # the request in flight for it
        self.wire: RecordBatch | None = None


class _Request:
    """One produce request in flight on a leader's connection."""

    __slots__ = ("batch", "expires", "leader", "live", "reply", "request_id")

    def __init__(self, batch: _Batch, leader: str, request_id: int, expires: float) -> None:
        self.batch = batch
        self.leader = leader
        self.request_id = request_id
        self.expires = expires
        self.live = True
        self.reply: Message | None = None  # arrived, waiting for the ones before it


def _seconds(field: str, value: object, *, zero: bool, kafka: str) -> float:
    seconds = as_real(value)
    if seconds is None or math.isnan(seconds) or math.isinf(seconds) or seconds < 0 or (
            not zero and seconds == 0):
        allowed = ">= 0" if zero else "> 0"
        raise ParamError(field, value, f"seconds {allowed} (finite; Kafka's {kafka})")
    return seconds


def _whole(field: str, value: object, low: int, kafka: str) -> int:
    if not is_whole(value) or value < low:  # type: ignore[operator]
        raise ParamError(field, value, f"a whole number >= {low} (Kafka's {kafka})")
    return int(value)  # type: ignore[call-overload]


class LogProducer(Instance):
    """A Kafka producer for one topic of a :class:`~simcomm.messaging.cluster.LogCluster`.

    Parameters (Kafka's producer configs in brackets; see the module
    docstring for the rules):

    * ``acks`` -- 0, 1 or ``"all"`` (also ``"0"``, ``"1"``, -1) [``acks``];
    * ``linger`` -- seconds a batch waits for more records [``linger.ms``,
      Kafka 4.0's default 5 ms];
    * ``batch_size`` -- bytes a batch holds at most [``batch.size``; 0: a
      record per batch]; ``record_size`` -- bytes per record;
    * ``retries`` [``retries``], ``max_in_flight``
      [``max.in.flight.requests.per.connection``], ``request_timeout``
      [``request.timeout.ms``], ``delivery_timeout`` [``delivery.timeout.ms``:
      120 s, or ``linger + request_timeout`` if that is more; given, it must
      be at least that, as Kafka requires],
      ``retry_backoff`` / ``retry_backoff_max`` [``retry.backoff.ms`` /
      ``retry.backoff.max.ms``];
    * ``idempotence`` [``enable.idempotence``] -- True, False, or None: on
      unless ``acks``, ``retries`` or ``max_in_flight`` conflict with it.

    Every bad argument is a :class:`~simcomm.errors.ParamError` naming it.

        >>> from simcomm.engine import World
        >>> from simcomm.messaging.cluster import LogCluster
        >>> world = World(seed=1)
        >>> kafka = LogCluster(world, brokers=3)
        >>> _ = kafka.create_topic("orders", 4)
        >>> producer = LogProducer(world, "orders-service", kafka, "orders")
        >>> ev = producer.send("order-1", {"total": 10})
        >>> _ = world.run(until=1)
        >>> ev.value[0] == partition_for_key("order-1", 4), ev.value[1]
        (True, 0)
    """

    #: one TCP connection per broker: requests reach a leader in the order sent
    fifo = True

    def __init__(self, world: World, name: str, cluster: LogCluster, topic: str, *,
                 acks: int | str = "all", linger: float = 0.005, batch_size: int = 16384,
                 record_size: int = 100, retries: int = 2**31 - 1, max_in_flight: int = 5,
                 request_timeout: float = 30.0, delivery_timeout: float | None = None,
                 retry_backoff: float = 0.1, retry_backoff_max: float = 1.0,
                 idempotence: bool | None = None) -> None:
        from simcomm.messaging.cluster import LogCluster

        if not isinstance(cluster, LogCluster):
            raise ParamError("cluster", cluster, "a LogCluster")
        if not isinstance(topic, str) or topic not in cluster.topics:
            raise ParamError("topic", topic, "a topic created on the cluster "
                             f"(cluster.create_topic): {sorted(cluster.topics)}")
        ack = parse_acks(acks)
        linger = _seconds("linger", linger, zero=True, kafka="linger.ms")
        batch_size = _whole("batch_size", batch_size, 0, "batch.size, in bytes")
        record_size = _whole("record_size", record_size, 1, "record size, in bytes")
        retries = _whole("retries", retries, 0, "retries")
        max_in_flight = _whole("max_in_flight", max_in_flight, 1,
                               "max.in.flight.requests.per.connection")
        request_timeout = _seconds("request_timeout", request_timeout, zero=False,
                                   kafka="request.timeout.ms")
        if delivery_timeout is None:
            # Kafka: 120 s, raised to linger.ms + request.timeout.ms if that is more
            delivery_timeout = max(DELIVERY_TIMEOUT, linger + request_timeout)
        delivery_timeout = _seconds("delivery_timeout", delivery_timeout, zero=False,
                                    kafka="delivery.timeout.ms")
        if delivery_timeout < linger + request_timeout:
            raise ParamError("delivery_timeout", delivery_timeout,
                             f"seconds >= linger + request_timeout = "
                             f"{linger + request_timeout:g} (Kafka's delivery.timeout.ms >= "
                             f"linger.ms + request.timeout.ms)")
        retry_backoff = _seconds("retry_backoff", retry_backoff, zero=True,
                                 kafka="retry.backoff.ms")
        retry_backoff_max = _seconds("retry_backoff_max", retry_backoff_max, zero=True,
                                     kafka="retry.backoff.max.ms")
        if idempotence is None:
            # Kafka 3.2+: the default enable.idempotence=true gives way to conflicts
            idem = ack == -1 and retries >= 1 and max_in_flight <= MAX_IN_FLIGHT_IDEMPOTENT
        elif not is_flag(idempotence):
            raise ParamError("idempotence", idempotence, "True, False, or None (on unless "
                             "acks, retries or max_in_flight conflict)")
        else:
            idem = bool(idempotence)
            if idem and ack != -1:
                raise ParamError("acks", acks, "'all' with idempotence=True (Kafka: must set "
                                 "acks to all in order to use the idempotent producer)")
            if idem and retries < 1:
                raise ParamError("retries", retries, ">= 1 with idempotence=True (Kafka: must "
                                 "set retries to non-zero for the idempotent producer)")
            if idem and max_in_flight > MAX_IN_FLIGHT_IDEMPOTENT:
                raise ParamError("max_in_flight", max_in_flight,
                                 f"<= {MAX_IN_FLIGHT_IDEMPOTENT} with idempotence=True (the "
                                 f"broker deduplicates the last 5 batches)")
        super().__init__(world, name)  # registers the node: everything is checked
        self.cluster = cluster
        self.topic = topic
        self.acks = ack
        self.linger = linger
        self.batch_size = batch_size
        self.record_size = record_size
        self.retries = retries
        self.max_in_flight = max_in_flight
        self.request_timeout = request_timeout
        self.delivery_timeout = delivery_timeout
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = max(retry_backoff, retry_backoff_max)
        self.idempotence = idem
        self.num_partitions = n = cluster.partitions(topic)
        # records a batch takes (hasRoomFor), and the count at which it is full
        self._per_batch = max(1, batch_size // record_size)
        self._full_at = self._per_batch if batch_size % record_size == 0 or (
            record_size > batch_size) else self._per_batch + 1
        self._ack_detail = _ACK_DETAIL[ack]
        self._sticky = StickyPartitioner(world.stream(f"producer:{name}:sticky"))
        self._backoff_rng = world.stream(f"producer:{name}:backoff")
        self._bootstrap_rng = world.stream(f"producer:{name}:bootstrap")
        self._keyed: dict[Any, int] = {}  # key -> partition
        self._queues: list[deque[_Batch]] = [deque() for _ in range(n)]
        self._queued: dict[int, None] = {}  # partitions whose queue is not empty
        #: per partition, the batch that takes its next record (None: a new one)
        self._open: list[_Batch | None] = [None] * n
        self._next_record_id = cluster.next_record_id
        #: leader name -> its connection's requests in flight, oldest first
        self._conns: dict[str, deque[_Request]] = {}
        self._requests: deque[_Request] = deque()  # all of them in send order = expiry order
        self._req_timer: float | None = None  # when the request timer fires
        self._expiry: deque[_Batch] = deque()  # in creation order = delivery-deadline order
        self._exp_timer: float | None = None
        self._wake: float = math.inf  # when a drain is due for a backoff / a missing leader
        self._draining = False
        self._drain_again = False
        self._drain_cb = lambda _ev: self._drain()
        # idempotent producer state
        self.producer_id: int | None = None
        self._next_seq = [0] * n
        self._unacked: list[list[_Batch]] = [[] for _ in range(n)]  # sequenced, not done
        #: a batch of the partition was acknowledged under this producer id: its
        #: leader holds our state (acks=all: on every in-sync replica)
        self._known = [False] * n
        self._reset_pending = False
        self._pid_asked = False
        self._epoch = 0  # +1 per crash: a callback from before it is void
        trace = world.trace
        self._rows = trace.records.append if trace.enabled else None
        #: records given to send(), acknowledged, failed
        self.sent = 0
        self.acked = 0
        self.failed = 0
        #: batches sent (first sends), produce requests, batch retries
        self.batches = 0
        self.requests = 0
        self.retried = 0
        if idem:
            world.at(None, self._init_producer_id)

    # ==================================================================
    # the application's side
    # ==================================================================
    def send(self, key: Any, value: Any = None, *,  # type: ignore[override]
             record_id: int | None = None, label: str = "") -> Event:
        """Send one record; the event succeeds with ``(partition, offset)`` or ``None``.

        ``key`` -- a str, bytes or int (hashed as ``str(key)``), or None (the
        sticky partitioner places it); ``value`` -- the payload;
        ``record_id`` -- the record's id when the caller has one (a relay
        republishing an outbox row: a ``send`` row with ``label`` as detail),
        else a new id from the cluster (a ``produce`` row).  The event never
        fails: ``(partition, offset)`` once acknowledged (offset -1 with
        ``acks=0``), ``None`` when the record was given up.  It carries the
        record's id as ``.record_id``.
        """
        if key is None:
            p = -1
        elif key.__class__ in _FAST_KEYS:  # not bool, not a float equal to an int key
            p = self._keyed.get(key, -1)
            if p < 0:
                p = self._key_partition(key)
        else:
            p = self._key_partition(key)
        if label.__class__ is not str and not isinstance(label, str):
            raise ParamError("label", label, "a string (the send row's detail)")
        if record_id is None:
            rid = self._next_record_id()
            event = "produce"
        else:
            if not is_whole(record_id) or record_id < 0:
                raise ParamError("record_id", record_id, "a whole number >= 0, or None")
            rid = int(record_id)
            event = "send"
        self.sent += 1
        env = self.env
        now = env.now
        ev = Event(env)
        ev.record_id = rid  # type: ignore[attr-defined]
        record = Record(rid, key, value, now, self.name, self.record_size)
        rows = self._rows
        if not self.up:
            if rows is not None:
                rows((now, event, rid, self.topic, p, -1, key, self.name, label))
                rows((now, "fail", rid, self.topic, p, -1, key, self.name, "crash"))
            self.failed += 1
            ev.succeed(None)
            return ev
        if p < 0:
            sticky = self._sticky
            p = sticky.partition(self.topic, self.num_partitions)
            if self._open[p] is None:
                # no open batch takes it: switch first (KIP-480's abortOnNewBatch)
                sticky.on_new_batch(self.topic, self.num_partitions, p)
                p = sticky.partition(self.topic, self.num_partitions)
        if rows is not None:
            rows((now, event, rid, self.topic, p, -1, key, self.name, label))
        batch = self._open[p]
        if batch is None:
            batch = self._new_batch(p, now)
        records = batch.records
        records.append(record)
        batch.events.append(ev)
        n = len(records)
        if n >= self._per_batch:  # no room for another record (hasRoomFor)
            self._open[p] = None
            if n >= self._full_at:
                batch.full = True
                self._drain()
        return ev

    def _new_batch(self, p: int, now: float) -> _Batch:
        """Open a batch for partition ``p``: it takes records until it is sent or full."""
        q = self._queues[p]
        wake = bool(q) and not q[-1].closed  # a batch behind it: it may go now
        batch = self._open[p] = _Batch(p, now, now + self.linger)
        q.append(batch)
        self._queued[p] = None
        self._expiry.append(batch)
        if self._exp_timer is None:
            self._arm_expiry()
        self.env.timeout(self.linger).callbacks.append(self._drain_cb)
        if wake:
            self._drain()
        return batch

    def _key_partition(self, key: Any) -> int:
        if isinstance(key, (str, bytes)):
            data: str | bytes = key
        elif is_whole(key):
            data = str(key)
        else:
            raise ParamError("key", key, "a str, bytes or int (hashed as str(key)), or None")
        p = partition_for_key(data, self.num_partitions)
        if type(key) in _FAST_KEYS:
            self._keyed[key] = p
        return p

    # ==================================================================
    # the sender
    # ==================================================================
    def _drain(self) -> None:
        """Send every batch that may go now (ready, leader known, a free slot)."""
        if self._draining:
            self._drain_again = True
            return
        self._draining = True
        try:
            self._drain_again = True
            while self._drain_again:
                self._drain_again = False
                self._drain_once()
        finally:
            self._draining = False

    def _drain_once(self) -> None:
        if not self.up or self.hung or (self.idempotence and (
                self.producer_id is None or self._reset_pending)):
            return  # (an idempotent producer with a hole waits for its new id)
        now = self.env.now
        wake = math.inf
        cluster = self.cluster
        topic = self.topic
        conns = self._conns
        limit = self.max_in_flight if self.acks else math.inf
        idem = self.idempotence
        known = self._known
        queues = self._queues
        queued = self._queued
        for p in list(queued):  # the partitions with batches, longest waiting first
            q = queues[p]
            while q:
                b = q[0]
                if b.closed:  # a retry
                    if now + _EPS < b.backoff_until:
                        wake = min(wake, b.backoff_until)
                        break
                    if idem and b.sequence >= 0 and self._unacked[p][0] is not b:
                        break  # an earlier batch of the partition is not done yet
                elif not (b.full or len(q) > 1 or now + _EPS >= b.ready_at):
                    break  # lingering: its timer drains again
                if idem and not known[p] and self._unacked[p] and self._unacked[p][0] is not b:
                    break  # the partition's first batch under this id goes alone
                leader = cluster.leader(topic, p)
                if leader is None:
                    wake = min(wake, now + max(self.retry_backoff, 1e-3))
                    break
                name = leader.name
                conn = conns.get(name)
                if conn is not None and len(conn) >= limit:
                    break  # a reply frees a slot and drains again
                q.popleft()
                self._send_batch(b, p, name)
            if not q:
                del queued[p]
        if wake < math.inf:
            self._wake_at(wake)

    def _wake_at(self, when: float) -> None:
        if when < self._wake:
            self._wake = when
            epoch = self._epoch
            self.env.timeout(max(0.0, when - self.env.now)).callbacks.append(
                lambda _ev: self._on_wake(when, epoch))

    def _on_wake(self, when: float, epoch: int) -> None:
        if epoch != self._epoch:
            return
        if self._wake == when:
            self._wake = math.inf
        self._drain()

    def _send_batch(self, b: _Batch, p: int, leader: str) -> None:
        now = self.env.now
        if not b.closed:
            b.closed = True
            self.batches += 1
            if self._open[p] is b:
                self._open[p] = None
        if b.wire is None:
            if self.idempotence:
                b.sequence = self._next_seq[p]
                self._next_seq[p] += len(b.records)
                self._unacked[p].append(b)
                b.wire = RecordBatch(self.topic, p, b.records, self.producer_id, b.sequence)
            else:
                b.wire = RecordBatch(self.topic, p, b.records)
        self.requests += 1
        body = ProduceRequest(b.wire, self.acks)
        nbytes = len(b.records) * self.record_size
        if not self.acks:
            # nobody waits for an answer: no reply-to (the leader sends none)
            self._network.send(self.message(leader, body, size=nbytes))
            self._complete(b, -1)
            return
        ev = self.request(leader, body, size=nbytes)
        req = _Request(b, leader, ev.request_id, now + self.request_timeout)  # type: ignore[attr-defined]
        b.req = req
        conn = self._conns.get(leader)
        if conn is None:
            conn = self._conns[leader] = deque()
        conn.append(req)
        epoch = self._epoch
        ev.callbacks.append(lambda e: self._on_reply(req, e.value, epoch))
        self._requests.append(req)
        if self._req_timer is None:
            self._arm_requests()

    # -- answers ---------------------------------------------------------
    def _on_reply(self, req: _Request, msg: Message, epoch: int) -> None:
        """An answer: handled once every older request on its connection is.

        Kafka's client reads a connection's responses in the order it sent
        the requests (``InFlightRequests.completeNext``; TCP keeps the
        order): an answer that overtook a lost one waits behind it, and is
        dropped with it if that one times out (the connection is closed).
        """
        if not req.live or epoch != self._epoch:
            return
        req.reply = msg
        conn = self._conns[req.leader]
        while conn and conn[0].reply is not None:
            r = conn.popleft()
            r.live = False
            self._answered(r.batch, r.reply)  # type: ignore[arg-type]
        reqs = self._requests
        while reqs and not reqs[0].live:
            reqs.popleft()
        self._maybe_reset()
        self._drain()

    def _answered(self, b: _Batch, msg: Message) -> None:
        b.req = None
        if b.done:
            return  # given up while in flight (delivery timeout)
        if msg.status != "ok":
            self._retry(b, "refused")  # the broker is down, or crashed with it
            return
        resp = msg.body
        if resp.error is None:
            self._complete(b, resp.base_offset)
        else:
            self._retry(b, str(resp.error))

    def _disconnect(self, leader: str) -> None:
        """A request timed out: close the connection, failing all its requests.

        As Kafka's ``NetworkClient`` does on a request timeout: every request
        in flight on the connection fails (retriable), the oldest last
        re-queued first, so that each partition's queue keeps their order.
        """
        conn = self._conns.pop(leader, None)
        if not conn:
            return
        for r in reversed(conn):
            r.live = False
            self.forget(r.request_id)  # a late answer is an orphan
            b = r.batch
            b.req = None
            if not b.done:
                self._retry(b, "timeout")

    def _complete(self, b: _Batch, base_offset: int) -> None:
        """Acknowledge every record of ``b`` (offsets from ``base_offset``; -1: acks=0)."""
        b.done = True
        p = b.partition
        if b.sequence >= 0:
            unacked = self._unacked[p]
            if b in unacked:
                unacked.remove(b)
            self._known[p] = True
        rows = self._rows
        now = self.env.now
        if rows is not None:
            topic, name, detail = self.topic, self.name, self._ack_detail
            for i, r in enumerate(b.records):
                rows((now, "ack", r.record_id, topic, p,
                      base_offset + i if base_offset >= 0 else -1, r.key, name, detail))
        if base_offset >= 0:
            # (called on an answer, never inside send(): see _settled)
            offset = base_offset
            for ev in b.events:
                if ev.callbacks:
                    ev.succeed((p, offset))
                else:
                    _settled(ev, (p, offset))
                offset += 1
        else:
            for ev in b.events:
                ev.succeed((p, -1))
        self.acked += len(b.records)
        exp = self._expiry
        while exp and exp[0].done:  # keep the deadline queue short (memory)
            exp.popleft()

    def _retry(self, b: _Batch, why: str) -> None:
        """Put ``b`` back in its partition's queue for another try, or give it up."""
        now = self.env.now
        if b.retries >= self.retries:
            self._fail(b, "retries")
            return
        if now - b.created >= self.delivery_timeout:
            self._fail(b, "delivery_timeout")
            return
        b.retries += 1
        self.retried += 1
        rows = self._rows
        p = b.partition
        if rows is not None:
            topic, name = self.topic, self.name
            for r in b.records:
                rows((now, "retry", r.record_id, topic, p, -1, r.key, name, why))
        delay = min(self.retry_backoff * 2.0 ** min(b.retries - 1, 64), self.retry_backoff_max)
        if delay > 0:
            delay *= 1.0 + _JITTER * (2.0 * self._backoff_rng.random() - 1.0)
        b.backoff_until = now + delay
        q = self._queues[p]
        if b.sequence >= 0:
            # in sequence order among the batches that have one (Kafka's insertInSequenceOrder)
            i = 0
            for other in q:
                if other.sequence < 0 or other.sequence > b.sequence:
                    break
                i += 1
            q.insert(i, b)
        else:
            q.appendleft(b)  # Kafka's reenqueue: the front of the queue
        self._queued[p] = None
        self._wake_at(b.backoff_until)

    def _fail(self, b: _Batch, why: str) -> None:
        """Give ``b`` up: its records get ``None``."""
        b.done = True
        p = b.partition
        if b.sequence >= 0:
            unacked = self._unacked[p]
            if b in unacked:
                unacked.remove(b)
            # the broker may or may not have it: the sequence has a hole
            self._reset_pending = True
        rows = self._rows
        if rows is not None:
            now = self.env.now
            topic, name = self.topic, self.name
            for r in b.records:
                rows((now, "fail", r.record_id, topic, p, -1, r.key, name, why))
        for ev in b.events:
            ev.succeed(None)
        self.failed += len(b.records)

    # -- timeouts: one timer each, for the oldest deadline ---------------
    def _arm_requests(self) -> None:
        reqs = self._requests
        while reqs and not reqs[0].live:
            reqs.popleft()
        if reqs:
            at = self._req_timer = reqs[0].expires
            epoch = self._epoch
            self.env.timeout(at - self.env.now).callbacks.append(
                lambda _ev: self._on_request_timer(at, epoch))
        else:
            self._req_timer = None

    def _on_request_timer(self, at: float, epoch: int) -> None:
        if epoch != self._epoch:
            return
        reqs = self._requests
        while reqs and reqs[0].expires <= at:
            req = reqs.popleft()
            if req.live:
                self._disconnect(req.leader)
        self._arm_requests()
        self._maybe_reset()
        self._drain()

    def _arm_expiry(self) -> None:
        exp = self._expiry
        while exp and exp[0].done:
            exp.popleft()
        if exp:
            at = self._exp_timer = exp[0].created + self.delivery_timeout
            epoch = self._epoch
            self.env.timeout(at - self.env.now).callbacks.append(
                lambda _ev: self._on_expiry_timer(at, epoch))
        else:
            self._exp_timer = None

    def _on_expiry_timer(self, at: float, epoch: int) -> None:
        if epoch != self._epoch:
            return
        exp = self._expiry
        dt = self.delivery_timeout
        while exp and exp[0].created + dt <= at:
            b = exp.popleft()
            if not b.done:
                if b.req is None:  # queued, not in flight
                    self._queues[b.partition].remove(b)
                    if self._open[b.partition] is b:
                        self._open[b.partition] = None
                # in flight: its request keeps its slot until answered or timed out
                self._fail(b, "delivery_timeout")
        self._arm_expiry()
        self._maybe_reset()
        self._drain()

    # -- the idempotent producer's id --------------------------------------
    def _init_producer_id(self) -> None:
        """Ask a live broker for a producer id (retried until one answers)."""
        if not self.up or self._pid_asked:
            return
        brokers = [b for b in self.cluster.brokers if b.up] or list(self.cluster.brokers)
        broker = brokers[self._bootstrap_rng.randrange(len(brokers))]
        self._pid_asked = True
        ev = self.request(broker.name, InitProducerIdRequest(self.name))
        rid = ev.request_id  # type: ignore[attr-defined]
        epoch = self._epoch
        state = {"live": True}

        def answered(e: Event) -> None:
            if epoch != self._epoch or not state["live"]:
                return
            state["live"] = False
            self._pid_asked = False
            msg = cast("Message", e.value)
            if msg.status == "ok" and getattr(msg.body, "error", None) is None:
                self._got_producer_id(int(msg.body.producer_id))
            else:
                self.world.at(self.env.now + self.retry_backoff_max, self._init_producer_id)

        def timed_out(_e: Event) -> None:
            if epoch != self._epoch or not state["live"]:
                return
            state["live"] = False
            self._pid_asked = False
            self.forget(rid)
            self.world.at(self.env.now + self.retry_backoff, self._init_producer_id)

        ev.callbacks.append(answered)
        self.env.timeout(self.request_timeout).callbacks.append(timed_out)

    def _got_producer_id(self, pid: int) -> None:
        self.producer_id = pid
        self._drain()

    def _maybe_reset(self) -> None:
        """After an idempotent batch failed: once nothing is in flight, take a new id."""
        if not self._reset_pending or any(self._conns.values()):
            return
        self._reset_pending = False
        self.producer_id = None
        self._known = [False] * self.num_partitions
        for p, q in enumerate(self._queues):
            self._next_seq[p] = 0
            self._unacked[p].clear()
            for b in q:  # queued retries are numbered again under the new id
                b.sequence = NO_SEQUENCE
                b.wire = None
        self._init_producer_id()

    # ==================================================================
    # faults
    # ==================================================================
    def _start_workers(self) -> None:
        self._procs = []  # the client library runs on callbacks, not processes

    def crash(self, repair_after: float | None = None) -> None:
        """Die now: every record not yet acknowledged is lost (``fail``, ``crash``)."""
        was_up = self.up
        super().crash(repair_after)
        if not was_up:
            return
        self._epoch += 1
        for req in self._requests:
            req.live = False
        for q in self._queues:
            q.clear()
        self._queued.clear()
        self._open = [None] * self.num_partitions
        for b in self._expiry:  # every batch not done yet, in creation order
            if not b.done:
                b.sequence = NO_SEQUENCE  # no new id for a hole: the process is gone
                self._fail(b, "crash")
        self._requests.clear()
        self._expiry.clear()
        self._conns.clear()
        self._req_timer = self._exp_timer = None
        self._wake = math.inf
        self._reset_pending = False
        self._pid_asked = False
        self.producer_id = None
        self._next_seq = [0] * self.num_partitions
        self._known = [False] * self.num_partitions
        for u in self._unacked:
            u.clear()

    def restart(self) -> None:
        was_up = self.up
        super().restart()
        if not was_up and self.idempotence:
            self._init_producer_id()

    def unhang(self, token: Event | None = None) -> None:
        super().unhang(token)
        self._drain()

    # ==================================================================
    def __repr__(self) -> str:
        return (f"LogProducer({self.name!r}, topic={self.topic!r}, acks={self._ack_detail}, "
                f"idempotence={self.idempotence})")
