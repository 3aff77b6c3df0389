"""A partitioned, replicated log with Kafka's rules: :class:`LogCluster`, :class:`LogBroker`.

*Microservices Patterns* §3.3.4 shards a channel so that messages with one
key keep their order while many consumers share the load; Apache Kafka is
the broker the book uses for it.  A :class:`LogCluster` is ``brokers``
:class:`LogBroker` nodes named ``<name>-0`` .. ``<name>-(n-1)`` (each an
:class:`~simcomm.engine.Instance`, so faults can crash, hang and slow them
and the network can cut them off) and the controller that decides who leads
what (KRaft's quorum controller, kept as a plain object: its decisions are
instantaneous metadata, a simplification).  The rules (REFERENCE §3;
Kafka's ``Partition.scala``, ``ReplicaManager.scala``,
``ProducerStateManager.java``):

**Topics, partitions, replicas.**  ``create_topic(topic, partitions)``
makes ``partitions`` append-only logs (:class:`~simcomm.messaging.log.PartitionLog`).
Partition ``p``'s ``replication_factor`` replicas sit on brokers
``(p + j) mod n`` for ``j = 0 .. rf-1``; the first is its leader to begin
with.  Producers send a partition's batches to its leader, consumers fetch
from its leader; :meth:`LogCluster.leader` is the clients' metadata, and a
metadata refresh is instantaneous (a simplification: a real client learns
of a new leader by an error and a metadata request).

**Replication.**  Followers copy the leader's log by fetching from it
(:class:`~simcomm.messaging.protocol.FetchRequest` with ``replica=``; the
fetch offset is the follower's log end offset (LEO), which tells the leader
how far the follower has copied).  A fetch with nothing to return waits at
the leader until a batch is appended or 0.5 s have passed
(``replica.fetch.wait.max.ms``); a follower whose fetch was refused (the
leader is down) tries again after 1 s (``replica.fetch.backoff.ms``), and
one that got no answer at all after 30 s (``replica.socket.timeout.ms``,
checked every second: the network drops what a partition cuts, where TCP
would deliver it once the cut heals, so a fetch lost in a cut is sent again
only then).  A follower fetch
returns whole batches (with their producer ids, so that the follower's
idempotent-producer state is its leader's), and the leader's HW, which the
follower keeps (capped by its own LEO).  Each follower fetches each partition on its own (Kafka's
fetcher puts all the partitions a follower copies from one leader in one
request: a simplification that sends more, smaller messages).

**High watermark and ISR.**  The leader's high watermark (HW) is the
smallest LEO over the in-sync replicas (ISR), as far as the leader knows
them from their fetch offsets, and it never moves back while one broker
leads.  Consumers read only below the HW (a fetch for an offset from the
HW up to the LEO waits for the HW to move; above the LEO it is
``offset_out_of_range``).  A follower that has not caught up with the
leader's LEO for ``replica_lag_time_max`` s (``replica.lag.time.max.ms``,
30 s) leaves the ISR (checked every half of it, as Kafka's ISR-expiration
task); it re-joins once its fetch offset reaches the HW and the start of
the leader's epoch (Kafka's ``maybeExpandIsr``).  Leaving the ISR can move
the HW up.  A new leader starts from the HW it had as a follower, which may
lag the old leader's: consumers wait until its followers have fetched from
it once.

**acks.**  ``acks=0``: the leader sends no response.  ``acks=1``: the answer
goes out after the leader's append.  ``acks=all``: refused with
``not_enough_replicas`` (nothing appended) when the ISR is smaller than
``min_insync_replicas`` (``min.insync.replicas``), else answered when the HW
covers the batch -- with ``not_enough_replicas`` if the ISR has shrunk
below the minimum meanwhile (``NOT_ENOUGH_REPLICAS_AFTER_APPEND``).

**Failover.**  A broker that crashes or hangs stops heartbeating to the
controller; after ``failover_after`` s (``broker.session.timeout.ms``, 9 s
in KRaft) the controller fences it: it leaves every ISR it is in (the last
member of an ISR stays in it, as KRaft keeps it), and each partition it led
gets a new leader -- the first live ISR replica in replica order (a clean
election).  With no live ISR replica the partition is offline (no leader)
until an ISR member comes back; ``unclean_leader_election=True``
(``unclean.leader.election.enable``) elects the first live replica instead,
and may lose records the HW covered.  Each election starts a new leader
epoch at the new leader's LEO.  Every record on the old leader's log above
that offset is lost: the controller writes a ``truncate`` row for each
(node = the old leader, detail ``leader_failover``).  So with ``acks=1`` a
leader crash can lose records it acknowledged (they were not on the new
leader yet); with ``acks=all`` and clean elections it cannot (the HW never
passes a record some ISR replica lacks).  A replica that follows a new
leader first truncates its log to the start of the first epoch it missed
(Kafka's ``OffsetsForLeaderEpoch``, collapsed into the metadata) and then
copies the new leader's records; the old leader does so when it comes back.
A broker back before ``failover_after`` keeps what it led (nothing failed
over).  Leadership does not move back to the preferred replica
(``auto.leader.rebalance.enable`` is not modelled).  Logs survive a crash
(a process crash; the page cache and disk keep them).  The controller sees
crashes and hangs, not network partitions: a leader cut off from its
followers keeps leading (its ISR shrinks to itself after
``replica_lag_time_max``).

**Idempotent producer** (KIP-98, REFERENCE §3).  A producer with
``enable.idempotence`` gets a producer id
(:class:`~simcomm.messaging.protocol.InitProducerIdRequest`, answered by any
broker from the cluster's counter) and numbers its records per partition.
Each replica keeps, per producer id, its last 5 batches (first and last
sequence, base offset): a batch equal to one of them is a duplicate --
acknowledged with its first offset (``duplicate=True``, a ``dedup`` row per
record), not appended; a batch whose first sequence is not the last one + 1
is refused with ``out_of_order`` (a ``refuse`` row per record).  A producer
the partition holds no state for may start at any sequence (Kafka's
``ProducerAppendInfo.checkSequence``: its records may have been removed).
The state is rebuilt from the replica's own log after a truncation, so it
survives failover; producer epochs and transactions are not modelled.

**Hooks.**  :meth:`LogCluster.on_request` lets a consumer-group coordinator
handle its own request types on the brokers; :meth:`LogCluster.coordinator_for`
is the broker that coordinates a group -- the leader of the group's
``__consumer_offsets`` partition (``abs(groupId.hashCode()) % 50``,
``offsets.topic.num.partitions``), which moves to another broker when the
controller fences its leader.  :meth:`LogCluster.next_record_id` is the
run's record-id counter.

**Cost and faults.**  A produce request takes ``append_time`` s of the
broker's one request handler (first come, first served; 0: free), stretched
by a slowdown; fetches are free.  An error rate fails each request it hits
unprocessed (an ``error`` reply, Kafka's ``UNKNOWN_SERVER_ERROR``).  No
SimPy process runs per record or per request: the broker reacts to
arrivals, and timers are callbacks (the hot path, principle 8).

**Records** (``world.trace.records``, only with ``trace.enabled``):
``append`` (per record, by the leader), ``dedup``, ``refuse``,
``truncate``.  Timeline (``trace.events``, always): ``fenced``,
``unfenced``, ``leader_election``, ``partition_offline``, ``isr_shrink``,
``isr_expand``.  Counters: :attr:`LogCluster.stats`.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real, is_flag, is_whole
from simcomm.engine.messages import COMMAND, REPLY, Message
from simcomm.engine.nodes import Instance, Node
from simcomm.errors import ParamError
from simcomm.messaging.log import PartitionLog, Record
from simcomm.messaging.protocol import (
    ACKS,
    NOT_ENOUGH_REPLICAS,
    NOT_LEADER,
    OFFSET_OUT_OF_RANGE,
    OUT_OF_ORDER,
    REPLICA_FETCH_WAIT,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceRequest,
    ProduceResponse,
)

if TYPE_CHECKING:
    from simpy.events import Event

    from simcomm.engine.world import World

__all__ = ["FAILOVER_AFTER", "OFFSETS_TOPIC_PARTITIONS", "REPLICA_FETCH_BACKOFF",
           "REPLICA_FETCH_MAX_RECORDS", "REPLICA_LAG_TIME_MAX", "REPLICA_SOCKET_TIMEOUT",
           "LogBroker", "LogCluster", "PartitionState", "Replica", "group_partition"]

#: KRaft's broker.session.timeout.ms: a broker silent this long is fenced
FAILOVER_AFTER = 9.0
#: replica.lag.time.max.ms: a follower not caught up this long leaves the ISR
REPLICA_LAG_TIME_MAX = 30.0
#: replica.fetch.backoff.ms: a follower's wait after a failed fetch
REPLICA_FETCH_BACKOFF = 1.0
#: replica.socket.timeout.ms: a follower gives up a fetch with no answer after this
REPLICA_SOCKET_TIMEOUT = 30.0
#: records per follower fetch (replica.fetch.max.bytes = 1 MiB at ~100-byte records)
REPLICA_FETCH_MAX_RECORDS = 10_000
#: offsets.topic.num.partitions: the partitions of __consumer_offsets
OFFSETS_TOPIC_PARTITIONS = 50
_SIZE = attrgetter("size")  # a record's bytes on the wire

#: idempotent producer: batches remembered per producer and partition
#: (ProducerStateEntry.NUM_BATCHES_TO_RETAIN)
BATCHES_TO_RETAIN = 5


def _java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), a signed 32-bit int."""
    h = 0
    data = text.encode("utf-16-be", "surrogatepass")  # Java hashes lone surrogates too
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def group_partition(group: str, partitions: int = OFFSETS_TOPIC_PARTITIONS) -> int:
    """The ``__consumer_offsets`` partition of ``group``: Kafka's
    ``Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions``
    (``Utils.abs`` maps Integer.MIN_VALUE to 0)."""
    h = _java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


class _Follower:
    """The leader's view of one follower replica (Kafka's ``ReplicaState``)."""

    __slots__ = ("last_caught_up", "last_fetch", "last_fetch_leader_leo", "leo")

    def __init__(self, now: float) -> None:
        self.leo = -1  # unknown until it fetches from this leader
        self.last_caught_up = now
        self.last_fetch = now
        self.last_fetch_leader_leo = -1


class PartitionState:
    """The controller's record of one partition: replicas, leader, ISR, epochs.

    ``history`` lists ``(leader_epoch, start_offset)`` for every epoch: the
    new leader's LEO when it was elected.  ``last_leader`` is the broker that
    led the latest epoch (kept while the partition is offline).
    """

    __slots__ = ("epoch", "history", "isr", "last_leader", "leader", "partition", "replicas",
                 "topic", "virtual")

    def __init__(self, topic: str, partition: int, replicas: list[LogBroker],
                 virtual: bool = False) -> None:
        #: a __consumer_offsets partition: its leadership is kept, not its log
        self.virtual = virtual
        self.topic = topic
        self.partition = partition
        self.replicas = replicas
        self.leader: LogBroker | None = replicas[0]
        self.last_leader: LogBroker = replicas[0]
        self.isr: list[LogBroker] = list(replicas)
        self.epoch = 0
        self.history: list[tuple[int, int]] = [(0, 0)]


class Replica:
    """One broker's replica of one partition: its log, HW, epoch and, while it
    leads, what the leader keeps (its followers' state, acks=all produces
    waiting for the HW, fetches waiting for data)."""

    __slots__ = ("backoff", "epoch", "fetch_epoch", "fetch_sent", "fetching", "followers",
                 "hw", "led_epoch", "log", "parked_consumers", "parked_replicas", "partition",
                 "producers", "state", "topic", "waiting")

    def __init__(self, state: PartitionState) -> None:
        self.state = state
        self.topic = state.topic
        self.partition = state.partition
        self.log = PartitionLog()
        self.hw = 0
        self.epoch = 0  # the latest leader epoch this replica has led or followed
        #: producer id -> its last batches (first seq, last seq, base offset)
        self.producers: dict[int, deque[tuple[int, int, int]]] = {}
        # leader side
        self.led_epoch: int | None = None
        self.followers: dict[str, _Follower] = {}
        self.waiting: list[tuple[int, int, Message, int, bool]] = []  # acks=all heap
        self.parked_replicas: list[list[Any]] = []
        self.parked_consumers: list[list[Any]] = []
        # follower side
        self.fetching: int | None = None  # the id of the fetch in flight
        self.fetch_sent = 0.0
        self.fetch_epoch = -1
        self.backoff = 0  # a backoff timer's token (0: none running)

    def rebuild_producers(self) -> None:
        """The idempotent producers' state from the log's batches (after a truncation)."""
        producers: dict[int, deque[tuple[int, int, int]]] = {}
        for base, count, pid, seq in self.log.batches:
            if pid is not None:
                entries = producers.get(pid)
                if entries is None:
                    entries = producers[pid] = deque(maxlen=BATCHES_TO_RETAIN)
                entries.append((seq, seq + count - 1, base))
        self.producers = producers


def _seconds(field: str, value: object, allowed: str = "seconds > 0 (finite)",
             zero: bool = False) -> float:
    seconds = as_real(value)
    if seconds is None or math.isnan(seconds) or math.isinf(seconds) or seconds < 0 or (
            seconds == 0 and not zero):
        raise ParamError(field, value, allowed)
    return seconds


class LogBroker(Instance):
    """One Kafka broker of a :class:`LogCluster` (see the module docstring).

    It hosts replicas of partitions, leads some of them and follows the
    others.  Its request types are the bodies of :mod:`simcomm.messaging.protocol`
    and whatever the cluster's :meth:`LogCluster.on_request` registered.
    """

    #: Kafka's clients and brokers talk over one TCP connection per peer: the
    #: network keeps each pair's messages in order
    fifo = True

    def __init__(self, world: World, name: str, cluster: LogCluster) -> None:
        cost = cluster.append_time
        self.cluster = cluster
        self._cost = cost if cost > 0 else None
        self._epoch = 0  # +1 at every crash: timers of the dead process are void
        self._free = 0
        self._job = 0
        self._ticking = False
        self._isr_due = 0.0  # when the next ISR check is due
        super().__init__(world, name, workers=1)
        self.fenced = False
        self._incident = 0  # +1 at every crash / hang / recovery (a fence timer's token)
        self._away = False  # silent (down or hung) since the controller last heard it
        self._replicas: dict[tuple[str, int], Replica] = {}
        self._fetches: dict[int, Replica] = {}  # follower fetch id -> the replica
        self._held: list[Any] = []  # what arrived (or fell due) during a hang
        self._dispatch: dict[type, Callable[[Message], None]] = {
            ProduceRequest: self._on_produce,
            FetchRequest: self._on_fetch,
            InitProducerIdRequest: self._on_init_producer_id,
        }
        self._rows = world.trace.records.append if world.trace.enabled else None

    # ------------------------------------------------------------------
    # arrival
    # ------------------------------------------------------------------
    def receive(self, msg: Message) -> None:
        if msg.kind == REPLY:
            if msg.correlation_id in self._fetches:
                if self.hung:
                    self._held.append(msg)
                    return
                self._on_replica_response(msg, self._fetches.pop(msg.correlation_id))  # type: ignore[arg-type]
                return
            Node.receive(self, msg)
        else:
            self.handle(msg)

    def handle(self, msg: Message) -> None:
        if self.hung:
            self._held.append(msg)
            return
        if self.error_rate and self._error_rng.random() < self.error_rate:
            # an injected fault: the request fails unprocessed (an unknown server error)
            if msg.reply_to is not None:
                self.reply(msg, None, "error")
            return
        fn = self._dispatch.get(type(msg.body))
        if fn is not None:
            fn(msg)
            return
        custom = self.cluster._handlers.get(type(msg.body))
        if custom is not None:
            custom(self, msg)
            return
        self.world.trace.event(self.env.now, self.name, "unhandled", f"message {msg.id}")
        if msg.reply_to is not None:
            self.reply(msg, None, "error")

    # ------------------------------------------------------------------
    # produce
    # ------------------------------------------------------------------
    def _on_produce(self, msg: Message) -> None:
        if self._cost is None:
            self._produce(msg)
        elif self._free:
            self._begin_append(msg)
        else:
            self.queue.append(msg)
            self._log_pool()

    def _start_workers(self) -> None:
        self._epoch += 1
        self._free = 1 if self._cost is not None else 0
        self._procs = []
        if not self._ticking:
            self._ticking = True
            epoch = self._epoch
            self._isr_due = self.env.now + self.cluster.replica_lag_time_max / 2
            self.env.timeout(REPLICA_FETCH_BACKOFF).callbacks.append(
                lambda _ev: self._tick(epoch))

    def _begin_append(self, msg: Message) -> None:
        self._free -= 1
        env = self.env
        self._busy_area -= env.now
        self.busy += 1
        job = self._job = self._job + 1
        self._current[job] = msg
        self._log_pool()
        epoch = self._epoch
        env.timeout(self._cost * self.slowdown).callbacks.append(  # type: ignore[operator]
            lambda _ev: self._end_append(job, msg, epoch))

    def _end_append(self, job: int, msg: Message, epoch: int) -> None:
        if epoch != self._epoch:
            return  # crashed meanwhile: the request died with the process
        if self.hung:
            self._held.append(lambda: self._end_append(job, msg, epoch))
            return
        del self._current[job]
        self._produce(msg)
        self._busy_area += self.env.now
        self.busy -= 1
        self._free += 1
        if self.queue:
            self._begin_append(self.queue.popleft())
        else:
            self._log_pool()

    def _produce(self, msg: Message) -> None:
        req: ProduceRequest = msg.body
        batch = req.batch
        acks = req.acks if req.acks in (0, 1, -1) else ACKS.get(req.acks, -1)
        answer = acks != 0 and msg.reply_to is not None
        topic, part = batch.topic, batch.partition
        cluster = self.cluster
        stats = cluster._stats
        stats["produce_requests"] += 1
        rep = self._replicas.get((topic, part))
        if rep is None or rep.state.leader is not self:
            if answer:
                self.reply(msg, ProduceResponse(topic, part, -1, NOT_LEADER))
            return
        state = rep.state
        if acks == -1 and len(state.isr) < cluster.min_insync_replicas:
            stats["not_enough_replicas"] += 1
            if answer:
                self.reply(msg, ProduceResponse(topic, part, -1, NOT_ENOUGH_REPLICAS))
            return
        records = batch.records
        pid = batch.producer_id
        rows = self._rows
        now = self.env.now
        log = rep.log
        if pid is not None:
            first = batch.base_sequence
            last = first + len(records) - 1
            entries = rep.producers.get(pid)
            if entries is not None:
                for seq0, seq1, offset in entries:
                    if seq0 == first and seq1 == last:
                        # a repeat of one of the last 5 batches: acknowledged, not appended
                        stats["duplicates_refused"] += 1
                        if rows is not None:
                            name = self.name
                            for i, r in enumerate(records):
                                rows((now, "dedup", r.record_id, topic, part, offset + i,
                                      r.key, name, ""))
                        self._acknowledge(msg, rep, acks, answer, offset, offset + len(records),
                                          True)
                        return
                expected = entries[-1][1] + 1 if entries else first
            else:
                expected = first  # no state for this producer: any sequence goes
            if first != expected:
                stats["out_of_order"] += 1
                if rows is not None:
                    name = self.name
                    for r in records:
                        rows((now, "refuse", r.record_id, topic, part, -1, r.key, name,
                              OUT_OF_ORDER))
                if answer:
                    self.reply(msg, ProduceResponse(topic, part, -1, OUT_OF_ORDER))
                return
            base = log.append(records, pid, first)
            if entries is None:
                entries = rep.producers[pid] = deque(maxlen=BATCHES_TO_RETAIN)
            entries.append((first, last, base))
        else:
            base = log.append(records)
        n = len(records)
        stats["appended"] += n
        stats["batches"] += 1
        if rows is not None:
            name = self.name
            self.world.trace.records.extend(
                [(now, "append", r.record_id, topic, part, off, r.key, name, "")
                 for off, r in enumerate(records, base)])
        if rep.parked_replicas:
            self._answer_parked_replicas(rep)
        if len(state.isr) == 1:
            self._advance_hw(rep)
        self._acknowledge(msg, rep, acks, answer, base, base + n, False)

    def _acknowledge(self, msg: Message, rep: Replica, acks: int, answer: bool, base: int,
                     required: int, duplicate: bool) -> None:
        """Answer a produce now (acks=1, or the HW already covers it) or when
        the HW reaches ``required`` (acks=all)."""
        if not answer:
            return
        if acks == 1 or rep.hw >= required:
            error = None
            if acks == -1 and len(rep.state.isr) < self.cluster.min_insync_replicas:
                error = NOT_ENOUGH_REPLICAS
                self.cluster._stats["not_enough_replicas"] += 1
            self.reply(msg, ProduceResponse(rep.topic, rep.partition,
                                            -1 if error else base, error, duplicate))
            return
        self.cluster._seq += 1
        heapq.heappush(rep.waiting, (required, self.cluster._seq, msg, base, duplicate))

    def _on_init_producer_id(self, msg: Message) -> None:
        cluster = self.cluster
        cluster._producer_ids += 1
        if msg.reply_to is not None:
            self.reply(msg, InitProducerIdResponse(cluster._producer_ids))

    # ------------------------------------------------------------------
    # the high watermark and the ISR (leader side)
    # ------------------------------------------------------------------
    def _advance_hw(self, rep: Replica) -> None:
        """Move the HW up to the smallest LEO over the ISR (never down)."""
        hw = len(rep.log.records)
        followers = rep.followers
        for b in rep.state.isr:
            if b is not self:
                f = followers.get(b.name)
                if f is None:
                    return
                if f.leo < hw:
                    hw = f.leo
        if hw <= rep.hw:
            return
        rep.hw = hw
        waiting = rep.waiting
        if waiting and waiting[0][0] <= hw:
            min_isr = self.cluster.min_insync_replicas
            enough = len(rep.state.isr) >= min_isr
            while waiting and waiting[0][0] <= hw:
                _req, _seq, msg, base, duplicate = heapq.heappop(waiting)
                if enough:
                    self.reply(msg, ProduceResponse(rep.topic, rep.partition, base, None,
                                                    duplicate))
                else:
                    self.cluster._stats["not_enough_replicas"] += 1
                    self.reply(msg, ProduceResponse(rep.topic, rep.partition, -1,
                                                    NOT_ENOUGH_REPLICAS, duplicate))
        if rep.parked_consumers:
            keep = []
            for entry in rep.parked_consumers:
                if entry[0].body.offset < hw:
                    entry[2] = False
                    self._answer_consumer(entry[0], rep)
                elif entry[2]:
                    keep.append(entry)
            rep.parked_consumers = keep

    def _become_leader(self, rep: Replica) -> None:
        state = rep.state
        now = self.env.now
        rep.led_epoch = state.epoch
        rep.epoch = state.epoch
        rep.hw = min(rep.hw, len(rep.log.records))
        rep.followers = {b.name: _Follower(now) for b in state.replicas if b is not self}
        if rep.fetching is not None:
            self._fetches.pop(rep.fetching, None)
            rep.fetching = None
        rep.backoff = 0
        self._advance_hw(rep)

    def _resign(self, rep: Replica) -> None:
        """No longer the leader: everything waiting on the leader is told so."""
        rep.led_epoch = None
        rep.followers = {}
        waiting, rep.waiting = rep.waiting, []
        for _req, _seq, msg, _base, _dup in sorted(waiting):
            self.reply(msg, ProduceResponse(rep.topic, rep.partition, -1, NOT_LEADER))
        for entry in rep.parked_replicas + rep.parked_consumers:
            if entry[2]:
                entry[2] = False
                req = entry[0].body
                self.reply(entry[0], FetchResponse(req.topic, req.partition, [], -1, -1,
                                                   NOT_LEADER))
        rep.parked_replicas = []
        rep.parked_consumers = []

    def _shrink_isr(self, rep: Replica, now: float) -> None:
        state = rep.state
        lag_max = self.cluster.replica_lag_time_max
        leo = len(rep.log.records)
        out = [b for b in state.isr if b is not self and rep.followers[b.name].leo < leo
               and now - rep.followers[b.name].last_caught_up > lag_max]
        if out:
            state.isr = [b for b in state.isr if b not in out]
            self.cluster._stats["isr_shrinks"] += len(out)
            self.world.trace.event(now, self.name, "isr_shrink",
                                   f"{rep.topic}-{rep.partition}: "
                                   f"{','.join(b.name for b in out)} out, isr "
                                   f"{','.join(b.name for b in state.isr)}")
            self._advance_hw(rep)

    def _tick(self, epoch: int) -> None:
        """Every second: give up fetches unanswered for ``replica.socket.timeout.ms``;
        every half ``replica_lag_time_max`` (Kafka's ISR-expiration task): shrink
        the ISRs of the partitions this broker leads."""
        if epoch != self._epoch:
            return  # a timer of a process that crashed
        env = self.env
        env.timeout(REPLICA_FETCH_BACKOFF).callbacks.append(lambda _ev: self._tick(epoch))
        now = env.now
        isr_check = now >= self._isr_due - 1e-9
        if isr_check:
            self._isr_due += self.cluster.replica_lag_time_max / 2
        if self.hung:
            return
        for rep in self._replicas.values():
            if rep.led_epoch is not None:
                if isr_check and len(rep.state.isr) > 1:
                    self._shrink_isr(rep, now)
            elif rep.fetching is not None and now - rep.fetch_sent > REPLICA_SOCKET_TIMEOUT:
                self._fetches.pop(rep.fetching, None)
                rep.fetching = None
                self._fetch(rep)

    # ------------------------------------------------------------------
    # fetch (leader side)
    # ------------------------------------------------------------------
    def _on_fetch(self, msg: Message) -> None:
        req: FetchRequest = msg.body
        rep = self._replicas.get((req.topic, req.partition))
        if msg.reply_to is None:
            return
        if rep is None or rep.led_epoch is None or rep.state.leader is not self:
            self.reply(msg, FetchResponse(req.topic, req.partition, [], -1, -1, NOT_LEADER))
            return
        offset = req.offset
        leo = len(rep.log.records)
        if (type(offset) is not int and not is_whole(offset)) or offset < 0 or offset > leo:
            self.reply(msg, FetchResponse(req.topic, req.partition, [], rep.hw, leo,
                                          OFFSET_OUT_OF_RANGE))
            return
        name = req.replica
        if name is not None:
            f = rep.followers.get(name)
            if f is None:
                self.reply(msg, FetchResponse(req.topic, req.partition, [], -1, -1,
                                              NOT_LEADER))
                return
            self._follower_fetched(rep, f, name, offset, leo)
            if offset < leo:
                self._answer_replica(msg, rep)
                return
            parked = rep.parked_replicas
        else:
            self.cluster._stats["fetches"] += 1
            if offset < rep.hw:
                self._answer_consumer(msg, rep)
                return
            parked = rep.parked_consumers
        wait = req.max_wait
        if wait > 0:
            entry = [msg, rep, True]
            parked.append(entry)
            epoch = self._epoch
            self.env.timeout(wait).callbacks.append(lambda _ev: self._expire(entry, epoch))
        elif name is not None:
            self._answer_replica(msg, rep)
        else:
            self._answer_consumer(msg, rep)

    def _follower_fetched(self, rep: Replica, f: _Follower, name: str, offset: int,
                          leo: int) -> None:
        """Kafka's ``updateFollowerFetchState``, ``maybeExpandIsr`` and
        ``maybeIncrementLeaderHW``."""
        now = self.env.now
        if offset >= leo:
            f.last_caught_up = now
        elif offset >= f.last_fetch_leader_leo and f.last_fetch > f.last_caught_up:
            f.last_caught_up = f.last_fetch
        f.last_fetch_leader_leo = leo
        f.last_fetch = now
        moved = offset != f.leo
        f.leo = offset
        state = rep.state
        isr = state.isr
        for b in isr:
            if b.name == name:
                if moved and offset > rep.hw:
                    self._advance_hw(rep)
                return
        if offset >= rep.hw and offset >= state.history[-1][1]:
            node = self.world.nodes[name]
            state.isr = [b for b in state.replicas if b in isr or b is node]
            self.cluster._stats["isr_expands"] += 1
            self.world.trace.event(now, self.name, "isr_expand",
                                   f"{rep.topic}-{rep.partition}: {name} in, isr "
                                   f"{','.join(b.name for b in state.isr)}")
            self._advance_hw(rep)

    def _answer_replica(self, msg: Message, rep: Replica) -> None:
        req: FetchRequest = msg.body
        log = rep.log
        offset = req.offset
        leo = len(log.records)
        batches: list[tuple[int, list[Record], int | None, int]] = []
        size = 0
        if offset < leo:
            end = log.batch_end(min(leo, offset + max(req.max_records, 1)) - 1)
            records = log.records
            for base, count, pid, seq in log.batches_between(log.batch_start(offset), end):
                if base < offset:  # the follower holds part of this batch (cannot
                    # happen with whole-batch fetches; kept safe): send the rest
                    count -= offset - base
                    seq = seq + offset - base if seq >= 0 else seq
                    base = offset
                chunk = records[base:base + count]
                batches.append((base, chunk, pid, seq))
                size += sum(map(_SIZE, chunk))
            self.cluster._stats["replica_fetched"] += end - offset
        self._send_reply(msg, FetchResponse(rep.topic, rep.partition, [], rep.hw, leo, None,
                                            batches), size)

    def _answer_consumer(self, msg: Message, rep: Replica) -> None:
        req: FetchRequest = msg.body
        log = rep.log
        offset = req.offset
        hw = rep.hw
        records: list[tuple[int, Record]] = []
        size = 0
        if offset < hw:
            end = min(hw, offset + req.max_records)
            chunk = log.records[offset:end]
            records = list(zip(range(offset, end), chunk, strict=True))
            size = sum(map(_SIZE, chunk))
        self._send_reply(msg, FetchResponse(rep.topic, rep.partition, records, hw,
                                            len(log.records)), size)

    def _send_reply(self, msg: Message, body: Any, size: int) -> None:
        self._network.send(Message(
            self.world.next_message_id(), REPLY, self.name,
            msg.reply_to,  # type: ignore[arg-type]
            self.env.now, body, correlation_id=msg.id, trace_id=msg.trace_id, size=size))

    def _answer_parked_replicas(self, rep: Replica) -> None:
        parked, rep.parked_replicas = rep.parked_replicas, []
        for entry in parked:
            if entry[2]:
                entry[2] = False
                self._answer_replica(entry[0], rep)

    def _expire(self, entry: list[Any], epoch: int) -> None:
        """A parked fetch's wait is over: answer it with what there is (maybe nothing)."""
        if not entry[2] or epoch != self._epoch:
            return
        if self.hung:
            self._held.append(lambda: self._expire(entry, epoch))
            return
        entry[2] = False
        rep: Replica = entry[1]
        msg: Message = entry[0]
        if msg.body.replica is not None:
            rep.parked_replicas = [e for e in rep.parked_replicas if e is not entry]
            self._answer_replica(msg, rep)
        else:
            rep.parked_consumers = [e for e in rep.parked_consumers if e is not entry]
            self._answer_consumer(msg, rep)

    # ------------------------------------------------------------------
    # fetch (follower side)
    # ------------------------------------------------------------------
    def _sync(self, rep: Replica) -> None:
        """Act on the controller's decision for ``rep``'s partition: lead it,
        or stop leading it and follow its leader."""
        if not self.up or self.hung:
            return  # done again when the broker is back
        state = rep.state
        if state.leader is self:
            if rep.led_epoch != state.epoch:
                self._become_leader(rep)
            return
        if rep.led_epoch is not None:
            self._resign(rep)
        if rep.fetching is not None and rep.fetch_epoch != state.epoch:
            self._fetches.pop(rep.fetching, None)
            rep.fetching = None
        rep.backoff = 0
        self._fetch(rep)

    def _fetch(self, rep: Replica) -> None:
        """Send the next replication fetch for ``rep`` to its leader."""
        state = rep.state
        leader = state.leader
        if (leader is None or leader is self or rep.fetching is not None or rep.backoff
                or not self.up or self.hung):
            return
        log = rep.log
        if rep.epoch != state.epoch:
            # the start of the first epoch this replica missed: its log above
            # that offset diverged (Kafka's OffsetsForLeaderEpoch truncation)
            cut = min((s for e, s in state.history if e > rep.epoch), default=len(log))
            if cut < len(log):
                removed = log.truncate_to(cut)
                self.cluster._stats["replica_truncated"] += len(removed)
                rep.rebuild_producers()
            rep.hw = min(rep.hw, len(log))
            rep.epoch = state.epoch
        msg = Message(self.world.next_message_id(), COMMAND, self.name, leader.name,
                      self.env.now, FetchRequest(rep.topic, rep.partition, len(log.records),
                                                 REPLICA_FETCH_MAX_RECORDS, self.name,
                                                 REPLICA_FETCH_WAIT),
                      reply_to=self.name)
        self._fetches[msg.id] = rep
        rep.fetching = msg.id
        rep.fetch_sent = self.env.now
        rep.fetch_epoch = state.epoch
        self._network.send(msg)

    def _on_replica_response(self, msg: Message, rep: Replica) -> None:
        rep.fetching = None
        state = rep.state
        if rep.fetch_epoch != state.epoch or state.leader is self:
            self._sync(rep)  # an answer from an earlier epoch's leader: void
            return
        body: FetchResponse | None = msg.body if msg.status == "ok" else None
        if body is None or body.error == NOT_LEADER:
            self._back_off(rep)
            return
        log = rep.log
        if body.error == OFFSET_OUT_OF_RANGE:
            # the leader's log is shorter than ours (an unclean election): truncate
            removed = log.truncate_to(max(0, body.log_end_offset))
            self.cluster._stats["replica_truncated"] += len(removed)
            rep.rebuild_producers()
            rep.hw = min(rep.hw, len(log))
            self._fetch(rep)
            return
        if body.batches:
            producers = rep.producers
            for base, records, pid, seq in body.batches:
                if base != len(log.records):
                    break  # not where this log ends (cannot happen: fetched from the LEO)
                log.append(records, pid, seq)
                if pid is not None:
                    entries = producers.get(pid)
                    if entries is None:
                        entries = producers[pid] = deque(maxlen=BATCHES_TO_RETAIN)
                    entries.append((seq, seq + len(records) - 1, base))
        hw = body.high_watermark
        leo = len(log.records)
        rep.hw = hw if hw < leo else leo
        self._fetch(rep)

    def _back_off(self, rep: Replica) -> None:
        self.cluster._seq += 1
        token = rep.backoff = self.cluster._seq
        epoch = self._epoch

        def retry(_ev: Event) -> None:
            if rep.backoff == token and epoch == self._epoch:
                rep.backoff = 0
                self._fetch(rep)

        self.env.timeout(REPLICA_FETCH_BACKOFF).callbacks.append(retry)

    # ------------------------------------------------------------------
    # faults
    # ------------------------------------------------------------------
    def crash(self, repair_after: float | None = None) -> None:
        """Crash: requests in progress and waiting are reset; the logs survive."""
        if not self.up:
            super().crash(repair_after)
            return
        held = [m for m in self._held if isinstance(m, Message) and m.kind != REPLY]
        self._held = []
        super().crash(repair_after)  # resets what waits for the request handler
        self._epoch += 1
        self._free = 0
        self._ticking = False
        self._fetches.clear()
        for rep in self._replicas.values():
            waiting, rep.waiting = rep.waiting, []
            for _req, _seq, msg, _base, _dup in sorted(waiting):
                self.reply(msg, None, "reset")
            for entry in rep.parked_replicas + rep.parked_consumers:
                if entry[2]:
                    entry[2] = False
                    self.reply(entry[0], None, "reset")
            rep.parked_replicas = []
            rep.parked_consumers = []
            rep.fetching = None
            rep.backoff = 0
        for m in held:
            if m.reply_to is not None:
                self.reply(m, None, "reset")
        self.cluster._broker_down(self)

    def restart(self) -> None:
        """Start again: the controller un-fences the broker; it leads or follows."""
        if self.up:
            return
        super().restart()
        self.cluster._broker_up(self)

    def hang(self) -> Event | None:
        token = super().hang()
        if token is not None:
            self.cluster._broker_down(self)
        return token

    def unhang(self, token: Event | None = None) -> None:
        """End a hang: what arrived or fell due meanwhile is handled in order."""
        was = self.hung
        super().unhang(token)
        if not was or self.hung:
            return
        held, self._held = self._held, []
        for item in held:
            if isinstance(item, Message):
                self.receive(item)
            else:
                item()
        self.cluster._broker_up(self)

    # ------------------------------------------------------------------
    # reading
    # ------------------------------------------------------------------
    def replica(self, topic: str, partition: int) -> Replica | None:
        """This broker's replica of a partition (None if it holds none)."""
        return self._replicas.get((topic, partition))


class LogCluster:
    """A Kafka-like cluster of :class:`LogBroker` nodes (see the module docstring).

    ``brokers`` -- how many (named ``<name>-0`` ..); ``replication_factor``
    -- the default for new topics (None: ``min(3, brokers)``,
    ``default.replication.factor``); ``min_insync_replicas``
    (``min.insync.replicas``, 1); ``replica_lag_time_max``
    (``replica.lag.time.max.ms``, 30 s); ``failover_after``
    (``broker.session.timeout.ms``, 9 s); ``unclean_leader_election``
    (``unclean.leader.election.enable``, False); ``append_time`` -- the
    broker's CPU seconds per produce request (0: free).
    """

    def __init__(self, world: World, name: str = "kafka", *, brokers: int = 3,
                 replication_factor: int | None = None, min_insync_replicas: int = 1,
                 replica_lag_time_max: float = REPLICA_LAG_TIME_MAX,
                 failover_after: float = FAILOVER_AFTER,
                 unclean_leader_election: bool = False, append_time: float = 0.0) -> None:
        if not isinstance(name, str) or not name:
            raise ParamError("name", name, "a non-empty string")
        if not is_whole(brokers) or brokers < 1:
            raise ParamError("brokers", brokers, "a whole number >= 1")
        brokers = int(brokers)
        if replication_factor is None:
            replication_factor = min(3, brokers)
        if not is_whole(replication_factor) or not 1 <= replication_factor <= brokers:
            raise ParamError("replication_factor", replication_factor,
                             f"a whole number from 1 to brokers ({brokers}), or None")
        if not is_whole(min_insync_replicas) or min_insync_replicas < 1:
            raise ParamError("min_insync_replicas", min_insync_replicas,
                             "a whole number >= 1")
        lag = _seconds("replica_lag_time_max", replica_lag_time_max)
        failover = _seconds("failover_after", failover_after)
        if not is_flag(unclean_leader_election):
            raise ParamError("unclean_leader_election", unclean_leader_election,
                             "True or False")
        cost = _seconds("append_time", append_time, "seconds >= 0 (finite)", zero=True)
        names = [f"{name}-{i}" for i in range(brokers)]
        for n in names:
            if n in world.nodes:
                raise ParamError("name", name, f"a cluster name whose broker names are free "
                                               f"({n!r} is taken)")
        self.world = world
        self.name = name
        self.replication_factor = int(replication_factor)
        self.min_insync_replicas = int(min_insync_replicas)
        self.replica_lag_time_max = lag
        self.failover_after = failover
        self.unclean_leader_election = bool(unclean_leader_election)
        self.append_time = cost
        self._handlers: dict[type, Callable[[LogBroker, Message], None]] = {}
        self._topics: dict[str, list[PartitionState]] = {}
        self._broker_parts: dict[str, list[PartitionState]] = {n: [] for n in names}
        self._records = 0
        self._producer_ids = 0
        self._seq = 0
        self._stats: dict[str, int] = dict.fromkeys(
            ("appended", "batches", "produce_requests", "duplicates_refused", "out_of_order",
             "not_enough_replicas", "truncated", "replica_truncated", "fetches",
             "replica_fetched", "elections", "isr_shrinks", "isr_expands", "fenced"), 0)
        self.brokers: list[LogBroker] = [LogBroker(world, n, self) for n in names]
        # the leaders of __consumer_offsets' partitions (no log kept: leadership only)
        rf = min(3, brokers)
        self._offsets = [PartitionState("__consumer_offsets", p,
                                        [self.brokers[(p + j) % brokers] for j in range(rf)],
                                        virtual=True)
                         for p in range(OFFSETS_TOPIC_PARTITIONS)]
        for state in self._offsets:
            for b in state.replicas:
                self._broker_parts[b.name].append(state)

    def __repr__(self) -> str:
        return (f"LogCluster({self.name!r}, brokers={len(self.brokers)}, "
                f"topics={ {t: len(s) for t, s in self._topics.items()} })")

    # ------------------------------------------------------------------
    # topics and metadata
    # ------------------------------------------------------------------
    def create_topic(self, topic: str, partitions: int, *,
                     replication_factor: int | None = None) -> str:
        """Create ``topic`` with ``partitions`` partitions; returns its name."""
        if not isinstance(topic, str) or not topic or topic.startswith("__"):
            raise ParamError("topic", topic, "a non-empty name not starting with '__'")
        if topic in self._topics:
            raise ParamError("topic", topic, "a topic name not created before")
        if not is_whole(partitions) or partitions < 1:
            raise ParamError("partitions", partitions, "a whole number >= 1")
        n = len(self.brokers)
        rf = self.replication_factor if replication_factor is None else replication_factor
        if not is_whole(rf) or not 1 <= rf <= n:
            raise ParamError("replication_factor", replication_factor,
                             f"a whole number from 1 to the brokers ({n}), or None")
        rf = int(rf)
        if self.min_insync_replicas > rf:
            raise ParamError("replication_factor", rf,
                             f"at least min_insync_replicas ({self.min_insync_replicas}), "
                             f"or acks=all could never succeed")
        states = []
        for p in range(int(partitions)):
            state = PartitionState(topic, p, [self.brokers[(p + j) % n] for j in range(rf)])
            states.append(state)
            for b in state.replicas:
                b._replicas[(topic, p)] = Replica(state)
                self._broker_parts[b.name].append(state)
        self._topics[topic] = states
        for state in states:  # the leaders lead from now on (fetches answer at once) ...
            lead = state.replicas[0]
            lead._sync(lead._replicas[(topic, state.partition)])
        self.world.at(None, lambda: self._start(states))  # ... the followers fetch at 0
        return topic

    def _start(self, states: list[PartitionState]) -> None:
        for state in states:
            for b in state.replicas[1:]:
                b._sync(b._replicas[(state.topic, state.partition)])

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    def _state(self, topic: str, partition: int) -> PartitionState:
        states = self._topics.get(topic)
        if states is None:
            raise ParamError("topic", topic, "a topic created on this cluster: "
                             + (", ".join(map(repr, self._topics)) or "(none yet)"))
        if type(partition) is int and 0 <= partition < len(states):
            return states[partition]  # the clients' hot path
        if not is_whole(partition) or not 0 <= partition < len(states):
            raise ParamError("partition", partition, f"a partition of {topic!r}: 0 to "
                                                     f"{len(states) - 1}")
        return states[int(partition)]

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has."""
        self._state(topic, 0)
        return len(self._topics[topic])

    def leader(self, topic: str, partition: int) -> LogBroker | None:
        """The broker leading the partition now (None while it is offline).

        This is the clients' metadata; its refresh is instantaneous (a
        simplification: real clients learn of a new leader from a
        ``not_leader`` error and a metadata request).  A leader that crashed
        stays the leader until the controller fences it (``failover_after``):
        requests to it are refused meanwhile.
        """
        return self._state(topic, partition).leader

    def replicas(self, topic: str, partition: int) -> list[str]:
        """The names of the brokers holding the partition, its first leader first."""
        return [b.name for b in self._state(topic, partition).replicas]

    def isr(self, topic: str, partition: int) -> list[str]:
        """The names of the in-sync replicas now (leader included)."""
        return [b.name for b in self._state(topic, partition).isr]

    def leader_epoch(self, topic: str, partition: int) -> int:
        return self._state(topic, partition).epoch

    def replica(self, topic: str, partition: int, broker: str | None = None) -> Replica:
        """A broker's replica of the partition (None: the leader's, or the last leader's)."""
        state = self._state(topic, partition)
        if broker is None:
            b = state.leader or state.last_leader
        else:
            found = [x for x in state.replicas if x.name == broker]
            if not found:
                raise ParamError("broker", broker, "a broker holding the partition: "
                                 + ", ".join(x.name for x in state.replicas))
            b = found[0]
        return b._replicas[(topic, int(partition))]

    def log_end_offset(self, topic: str, partition: int) -> int:
        """The leader's log end offset (the last leader's while offline)."""
        return len(self.replica(topic, partition).log.records)

    def high_watermark(self, topic: str, partition: int) -> int:
        """The leader's high watermark (the last leader's while offline)."""
        return self.replica(topic, partition).hw

    # ------------------------------------------------------------------
    # hooks for clients
    # ------------------------------------------------------------------
    def next_record_id(self) -> int:
        """The next application record id of this run (a counter, from 1)."""
        self._records += 1
        return self._records

    def on_request(self, body_type: type, handler: Callable[[LogBroker, Message], None]
                   ) -> None:
        """Let ``handler(broker, msg)`` handle requests whose body is a ``body_type``.

        Any broker that receives one calls it (the handler decides whether
        that broker is the right one, e.g. by :meth:`coordinator_for`, and
        answers with ``broker.reply``).  A hung broker holds such requests
        like any other; a crashed one refuses them.
        """
        if not isinstance(body_type, type):
            raise ParamError("body_type", body_type, "a class (the request body's type)")
        if body_type in (ProduceRequest, FetchRequest, InitProducerIdRequest):
            raise ParamError("body_type", body_type, "a type the brokers do not handle "
                                                     "themselves")
        if not callable(handler):
            raise ParamError("handler", handler, "a function (broker, msg) -> None")
        self._handlers[body_type] = handler

    def coordinator_for(self, group: str) -> LogBroker:
        """The broker that coordinates consumer group ``group`` now.

        The leader of the group's ``__consumer_offsets`` partition
        (:func:`group_partition`); when the controller fences that broker
        (``failover_after`` s after it crashed or hung) the next live replica
        of the partition takes over.  Until then it is the broker that went
        down (requests to it are refused, as a client's to a dead coordinator).
        """
        if not isinstance(group, str) or not group:
            raise ParamError("group", group, "a consumer group id (a non-empty string)")
        state = self._offsets[group_partition(group)]
        return state.leader or state.last_leader

    # ------------------------------------------------------------------
    # the controller
    # ------------------------------------------------------------------
    def _broker_down(self, broker: LogBroker) -> None:
        """``broker`` crashed or hung: fence it if it is still away after
        ``failover_after`` s of silence (a crash during a hang does not restart
        the count: the broker has been silent since the hang began)."""
        if broker._away:
            return
        broker._away = True
        broker._incident += 1
        token = broker._incident

        def check() -> None:
            if broker._incident == token and (not broker.up or broker.hung):
                self._fence(broker)

        self.world.at(self.world.now + self.failover_after, check)

    def _fence(self, broker: LogBroker) -> None:
        now = self.world.now
        broker.fenced = True
        self._stats["fenced"] += 1
        self.world.trace.event(now, broker.name, "fenced",
                               f"no heartbeat for {self.failover_after:g} s")
        for state in self._broker_parts[broker.name]:
            if state.virtual:
                if state.leader is broker:
                    new = next((b for b in state.replicas if self._live(b)), None)
                    if new is not None:
                        state.leader = state.last_leader = new
                        state.epoch += 1
                continue
            if broker in state.isr and len(state.isr) > 1:
                # KRaft keeps the last member of an ISR in it
                state.isr = [b for b in state.isr if b is not broker]
                lead = state.leader
                if lead is not None and lead is not broker and lead.up and not lead.hung:
                    lead_rep = lead._replicas[(state.topic, state.partition)]
                    if lead_rep.led_epoch is not None:
                        lead._advance_hw(lead_rep)  # a smaller ISR may move the HW up
            if state.leader is broker:
                self._elect(state)

    def _live(self, b: LogBroker) -> bool:
        return b.up and not b.hung and not b.fenced

    def _elect(self, state: PartitionState) -> None:
        """Choose a new leader for ``state``, whose leader was fenced: the
        first live ISR replica; with none, the first live replica if unclean
        election is on, else nobody (the partition is offline)."""
        new = next((b for b in state.isr if self._live(b)), None)
        unclean = False
        if new is None and self.unclean_leader_election:
            new = next((b for b in state.replicas if self._live(b)), None)
            unclean = new is not None
        if new is None:
            state.leader = None
            self.world.trace.event(self.world.now, state.last_leader.name,
                                   "partition_offline",
                                   f"{state.topic}-{state.partition}: no live in-sync replica")
            return
        self._make_leader(state, new, unclean)

    def _make_leader(self, state: PartitionState, new: LogBroker, unclean: bool) -> None:
        now = self.world.now
        key = (state.topic, state.partition)
        start = len(new._replicas[key].log.records)
        old = state.last_leader
        if old is not new:
            lost = old._replicas[key].log.records[start:]
            if lost:
                self._stats["truncated"] += len(lost)
                rows = self.world.trace.records.append if self.world.trace.enabled else None
                if rows is not None:
                    for i, r in enumerate(lost):
                        rows((now, "truncate", r.record_id, state.topic, state.partition,
                              start + i, r.key, old.name, "leader_failover"))
        state.epoch += 1
        state.history.append((state.epoch, start))
        state.leader = state.last_leader = new
        if unclean:
            state.isr = [new]
        self._stats["elections"] += 1
        self.world.trace.event(now, new.name, "leader_election",
                               f"{state.topic}-{state.partition} epoch {state.epoch} at "
                               f"offset {start}{' (unclean)' if unclean else ''}")
        for b in state.replicas:
            b._sync(b._replicas[key])

    def _broker_up(self, broker: LogBroker) -> None:
        """``broker`` is back (restarted, or its hang ended), un-fenced if it was
        fenced.  It takes the offline partitions it may lead (it is their last
        in-sync replica, or unclean election is on) and follows the rest."""
        broker._incident += 1
        broker._away = False
        if broker.fenced:
            broker.fenced = False
            self.world.trace.event(self.world.now, broker.name, "unfenced", "")
        for state in self._broker_parts[broker.name]:
            if state.virtual:
                if state.leader is None or state.leader.fenced:
                    state.leader = state.last_leader = broker
                    state.epoch += 1
            elif state.leader is None:
                if broker in state.isr:
                    self._make_leader(state, broker, False)
                elif self.unclean_leader_election:
                    self._make_leader(state, broker, True)
        for rep in list(broker._replicas.values()):
            broker._sync(rep)

    # ------------------------------------------------------------------
    # counters
    # ------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """Counters of the whole run, kept whatever the trace: ``appended``
        (records), ``batches``, ``produce_requests``, ``duplicates_refused``
        (idempotent repeats acknowledged, not appended), ``out_of_order``,
        ``not_enough_replicas``, ``truncated`` (records lost at leader
        elections), ``replica_truncated`` (records removed from followers'
        logs), ``fetches`` (consumer fetches), ``replica_fetched`` (records
        copied to followers), ``elections``, ``isr_shrinks``,
        ``isr_expands``, ``fenced``, and ``record_ids`` handed out."""
        out = dict(self._stats)
        out["record_ids"] = self._records
        return out
