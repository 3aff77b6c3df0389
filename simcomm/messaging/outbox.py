"""The transactional outbox, its two relays, and the dual-write bug it removes (issue 9 §5).

*Microservices Patterns* §3.3.7 (REFERENCE §6): a service that updates its
database and then sends a message has two writes that no transaction
spans.  Whatever it does first, a crash (or an abort) between the two
leaves them disagreeing:

* **dual write, commit then publish** (``design="dual-write"``): the order
  is committed, the service dies before the send -- the event is **lost**
  (committed, never sent; its ``produce`` row, detail ``dual_write``, has
  no ``send``);
* **dual write, publish then commit** (``design="publish-first"``): the
  event is out, then the commit fails (the service dies, the database
  refuses it) -- a **phantom**: consumers apply an event of an order that
  never existed (a ``send`` row, label ``dual_write``, and ``apply`` rows
  with no ``produce`` row).

The **transactional outbox** (``design="outbox"``) writes the event as a
row of an OUTBOX table in the SAME local transaction as the business row
(:meth:`Outbox.write`; :mod:`simcomm.messaging.database` makes it atomic),
so the event exists if and only if the transaction commits; a separate
**message relay** sends it afterwards, at least once, in order:

* :class:`PollingPublisher` (the book's *polling publisher*, as Eventuate
  Tram CDC's polling mode): every ``poll_interval`` s
  (``eventuate.cdc.polling.interval.in.milliseconds``, 500 ms) it selects
  up to ``batch_size`` (``max.events.per.polling``, 1000) unpublished
  outbox rows in id order, sends each, waits for the acks, then marks them
  published in a transaction.  A relay that crashes after the send and
  before the mark sends them again when it restarts: the **relay
  duplicate** (two ``send`` rows, label ``relay``, of one record).
* :class:`LogTailer` (the book's *transaction log tailing*, as Debezium):
  reads the database's commit log (:meth:`Database.read_log
  <simcomm.messaging.database.Database.read_log>`: the WAL / binlog) and
  sends each outbox insert ``lag`` s after its commit (the replication and
  connector delay), with no query on the tables.  Its position is saved
  every ``offset_flush_interval`` s (Kafka Connect's
  ``offset.flush.interval.ms``, 60 s): a crash sends again everything
  since the last flush.

Consumers must therefore deduplicate (``GroupConsumer(dedup=...)``).

:class:`PublishingService` is a service instance that makes a change and
announces it in one of the three designs; :class:`CrashBetweenWrites` is a
fault that crashes a service or a relay at the worst moment -- between its
two writes -- so that each design's failure shows deterministically
(:func:`install_faults` installs it, checked before time zero).

**Rows** in ``world.trace.records``: ``produce`` at the commit of the
transaction that creates the event (detail ``outbox`` or ``dual_write``;
written by the database, so never for a transaction that did not commit),
``send`` per send with a record id (label ``relay`` or ``dual_write``; by
the :class:`~simcomm.messaging.LogProducer`), and the database's
``tx_commit`` / ``tx_abort``.  The record id is drawn from the cluster's
counter (``cluster.next_record_id()``) when the event is written -- a
database sequence's ``nextval()``: not transactional, so an aborted
transaction leaves a gap.  Relays and dual writes send with that id, so a
record keeps one id from its commit to every consumer's ``apply``.

The relay and its :class:`~simcomm.messaging.LogProducer` are one process:
crashing the relay crashes its producer (its unacknowledged sends fail);
so do the service and its producer for the dual writes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import AllOf, Event

from simcomm._checks import as_real, is_whole
from simcomm.engine.faults import Fault
from simcomm.engine.nodes import Context, Instance, ServiceError
from simcomm.engine.randomness import Distribution
from simcomm.errors import ParamError
from simcomm.messaging.database import Database, Transaction

if TYPE_CHECKING:
    from simcomm.engine.messages import Message
    from simcomm.engine.world import World
    from simcomm.messaging.cluster import LogCluster
    from simcomm.messaging.log_producer import LogProducer

__all__ = ["OUTBOX_DESIGNS", "OUTBOX_TABLE", "CrashBetweenWrites", "LogTailer", "Outbox",
           "PollingPublisher", "PublishingService", "install_faults"]

#: the outbox table's default name
OUTBOX_TABLE = "outbox"

#: how a :class:`PublishingService` makes its two writes
OUTBOX_DESIGNS = ("outbox", "dual-write", "publish-first")

#: a change: given the handler's context, an open transaction and the request,
#: write the business rows and return the event ``(key, value)`` to announce,
#: or None for none (a generator: it may read the database first)
Change = Callable[[Context, Transaction, "Message"],
                  Generator[Event, Any, "tuple[Any, Any] | None"]]


def _seconds(field: str, value: object, *, positive: bool, allowed: str | None = None) -> float:
    seconds = as_real(value)
    ok = seconds is not None and (seconds > 0 if positive else seconds >= 0) \
        and not math.isinf(seconds)
    if not ok:
        raise ParamError(field, value, allowed or f"seconds {'> 0' if positive else '>= 0'} "
                                                  "(finite)")
    return seconds  # type: ignore[return-value]


def _check_producer(producer: Any) -> LogProducer:
    from simcomm.messaging.log_producer import LogProducer

    if not isinstance(producer, LogProducer):
        raise ParamError("producer", producer, "a LogProducer")
    return producer


# -- the outbox table ---------------------------------------------------------------------

class Outbox:
    """The OUTBOX table of ``db`` for events to ``cluster``'s ``topic``.

    Declares the table (``table``, default ``outbox``) on the database.
    A row is keyed by its record id and holds ``key``, ``value`` and
    ``published`` (False until a polling publisher marks it; a log tailer
    never looks at it), an indexed column.
    """

    def __init__(self, db: Database, cluster: LogCluster, topic: str, *,
                 table: str = OUTBOX_TABLE) -> None:
        from simcomm.messaging.cluster import LogCluster

        if not isinstance(db, Database):
            raise ParamError("db", db, "a Database")
        if not isinstance(cluster, LogCluster):
            raise ParamError("cluster", cluster, "a LogCluster")
        if not isinstance(topic, str) or topic not in cluster.topics:
            raise ParamError("topic", topic, "a topic created on the cluster: "
                             + ", ".join(sorted(cluster.topics)))
        db.create_table(table, index=("published",))
        self.db = db
        self.cluster = cluster
        self.topic = topic
        self.table = table
        self.written = 0

    def write(self, tx: Transaction, key: Any, value: Any = None) -> int:
        """Add the event ``(key, value)`` to ``tx`` as an outbox row; its record id.

        The row is inserted only if ``tx`` commits, and the database then
        writes the record's ``produce`` row (detail ``outbox``)."""
        if not isinstance(tx, Transaction) or tx.db is not self.db:
            raise ParamError("tx", tx, f"a transaction on {self.db.name}")
        rid = self.cluster.next_record_id()
        tx.insert(self.table, rid, {"key": key, "value": value, "published": False})
        tx.record(rid, self.topic, key, "outbox")
        self.written += 1
        return rid


# -- crashing at the worst moment ----------------------------------------------------------

class _Window:
    """What a node with a crash window does: an armed crash, taken at the window."""

    _armed: list[float | None]

    def arm_crash(self, repair_after: float | None = None) -> None:
        """Crash at the next moment between the two writes, restart ``repair_after`` s later."""
        self._armed.append(repair_after)

    def _window(self) -> Event | None:
        """At the window: if a crash is armed, an event to wait on while it comes."""
        if not self._armed:
            return None
        repair = self._armed.pop(0)
        node: Instance = self  # type: ignore[assignment]
        env = node.env
        node.world.trace.event(env.now, node.name, "crash_point", "between writes")
        # a process may not interrupt itself: the crash comes from a callback,
        # while this process waits on an event that never fires
        env.timeout(0).callbacks.append(lambda _ev: node.crash(repair))
        return Event(env)


@dataclass(frozen=True)
class CrashBetweenWrites(Fault):
    """From ``at`` on, ``node`` crashes at the next moment it is between its two
    writes, and restarts ``duration`` s later (never if None).

    For a dual-writing :class:`PublishingService`: after the commit and
    before the send (``dual-write``), or after the send and before the
    commit (``publish-first``); for a :class:`PollingPublisher`: after its
    sends were acknowledged and before it marks them published; a
    :class:`LogTailer` is always between its sends and its next position
    flush, so it crashes at ``at``, as with a plain
    :class:`~simcomm.engine.Crash`.  ``node`` must be one of these; if it
    never reaches the window again, nothing happens.
    """

    def start(self, inst: Instance) -> None:
        arm = getattr(inst, "arm_crash", None)
        if arm is None:
            raise ParamError("node", self.node, "a PublishingService, PollingPublisher or "
                                                "LogTailer (a node with a crash window)")
        arm(self.duration)

    def end(self, inst: Instance, token: Any = None) -> None:
        pass  # the restart is scheduled by the crash


def install_faults(world: World, faults: Iterable[Fault]) -> None:
    """:func:`simcomm.engine.faults.install`, after checking that each
    :class:`CrashBetweenWrites` names a node with a crash window -- so a wrong
    node fails before time zero, not when the fault starts."""
    from simcomm.engine.faults import install

    faults = list(faults)
    for fault in faults:
        if isinstance(fault, CrashBetweenWrites) and not isinstance(
                world.nodes.get(fault.node), _Window):
            windows = sorted(n for n, v in world.nodes.items() if isinstance(v, _Window))
            raise ParamError("node", fault.node, "a PublishingService, PollingPublisher or "
                             "LogTailer: " + (", ".join(windows) or "there is none"))
    install(world, faults)


# -- the service: a change and its event, three ways ---------------------------------------

class PublishingService(_Window, Instance):
    """A service instance that changes its database and announces the change.

    Each request runs ``service_time`` of work, opens a transaction on
    ``db`` and calls ``change(ctx, tx, request)`` (a generator: it writes
    the business rows, may read first, and returns the event ``(key,
    value)`` or None); then, by ``design``:

    * ``"outbox"`` -- the event goes into ``outbox`` in the same
      transaction; commit.  Nothing else: a relay sends it.
    * ``"dual-write"`` -- commit, then send the event with ``producer``
      (label ``dual_write``) and wait for its ack.
    * ``"publish-first"`` -- send the event and wait for its ack, then
      commit.

    The reply is ``"ok"``, or an error naming what failed (the commit's
    outcome, or ``unpublished`` when the send was given up: the request
    failed, though with ``dual-write`` the order is committed).  Counters:
    ``changes`` (requests that reached the writes), ``committed``,
    ``published`` (events this service sent and saw acknowledged),
    ``failed``.
    """

    def __init__(self, world: World, name: str, db: Database, change: Change, *,
                 design: str = "outbox", outbox: Outbox | None = None,
                 producer: LogProducer | None = None, workers: int = 4,
                 service_time: Distribution | float = 0.0) -> None:
        if not isinstance(db, Database):
            raise ParamError("db", db, "a Database")
        if not callable(change):
            raise ParamError("change", change, "a generator function change(ctx, tx, request)")
        if design not in OUTBOX_DESIGNS:
            raise ParamError("design", design, "one of " + ", ".join(OUTBOX_DESIGNS))
        if design == "outbox":
            if not isinstance(outbox, Outbox) or outbox.db is not db:
                raise ParamError("outbox", outbox, f"the Outbox of {db.name} (design outbox)")
        else:
            producer = _check_producer(producer)
        self._armed = []
        super().__init__(world, name, workers=workers, service_time=service_time,
                         handler=self._serve)
        self.db = db
        self.change = change
        self.design = design
        self.outbox = outbox
        self.producer = producer
        self.changes = 0
        self.committed = 0
        self.published = 0
        self.failed = 0

    def _serve(self, ctx: Context, msg: Message) -> Generator[Event, Any, Any]:
        yield ctx.work()
        tx = self.db.begin(self)
        event = yield from self.change(ctx, tx, msg)
        self.changes += 1
        if event is None:
            outcome = yield tx.commit()
            return self._done(outcome)
        key, value = event
        if self.design == "outbox":
            assert self.outbox is not None
            self.outbox.write(tx, key, value)
            outcome = yield tx.commit()
            return self._done(outcome)
        producer = self.producer
        assert producer is not None
        rid = producer.cluster.next_record_id()
        tx.record(rid, producer.topic, key, "dual_write")
        if self.design == "dual-write":
            outcome = yield tx.commit()
            if outcome != "ok":
                return self._done(outcome)
            self.committed += 1
            wait = self._window()
            if wait is not None:
                yield wait
            acked = yield producer.send(key, value, record_id=rid, label="dual_write")
            if acked is None:
                self.failed += 1
                raise ServiceError("unpublished")
            self.published += 1
            return "ok"
        acked = yield producer.send(key, value, record_id=rid, label="dual_write")
        if acked is None:
            tx.rollback()
            self.failed += 1
            raise ServiceError("unpublished")
        self.published += 1
        wait = self._window()
        if wait is not None:
            yield wait
        outcome = yield tx.commit()
        return self._done(outcome)

    def _done(self, outcome: str) -> str:
        if outcome != "ok":
            self.failed += 1
            raise ServiceError(outcome)
        self.committed += 1
        return "ok"

    def crash(self, repair_after: float | None = None) -> None:
        """The service and its producer are one process: both die."""
        was_up = self.up
        super().crash(repair_after)
        if was_up and self.producer is not None and self.producer.up:
            self.producer.crash(repair_after)


# -- the relays -------------------------------------------------------------------------------

class _Relay(_Window, Instance):
    """What both relays share: an outbox, a producer, one loop process."""

    def __init__(self, world: World, name: str, outbox: Outbox, producer: LogProducer,
                 retry_backoff: float) -> None:
        if not isinstance(outbox, Outbox):
            raise ParamError("outbox", outbox, "an Outbox")
        producer = _check_producer(producer)
        if producer.topic != outbox.topic or producer.cluster is not outbox.cluster:
            raise ParamError("producer", producer,
                             f"a LogProducer to {outbox.topic!r} of the outbox's cluster")
        self._armed = []
        self.outbox = outbox
        self.producer = producer
        self.retry_backoff = _seconds("retry_backoff", retry_backoff, positive=True)
        #: records sent (``send`` rows) and records sent more than once by this relay
        self.sent = 0
        self.resent = 0
        self._ever_sent: set[int] = set()  # bookkeeping for ``resent``, not the model's memory
        super().__init__(world, name, workers=1)

    def _start_workers(self) -> None:
        self._procs = [self.env.process(self._run())]

    def _run(self) -> Generator[Event, Any, None]:
        try:
            yield from self._loop()
        except simpy.Interrupt:  # crashed: the process dies with what it held
            return

    def _loop(self) -> Generator[Event, Any, None]:
        raise NotImplementedError

    def _stalled(self) -> Event | None:
        """While the relay hangs, the event its end fires (a hung process does nothing)."""
        return self._unhang if self.hung else None

    def _send(self, rid: int, row: dict[str, Any]) -> Event:
        self.sent += 1
        if rid in self._ever_sent:
            self.resent += 1
        else:
            self._ever_sent.add(rid)
        return self.producer.send(row["key"], row["value"], record_id=rid, label="relay")

    def crash(self, repair_after: float | None = None) -> None:
        """The relay and its producer are one process: both die."""
        was_up = self.up
        super().crash(repair_after)
        if was_up and self.producer.up:
            self.producer.crash(repair_after)


class PollingPublisher(_Relay):
    """The polling publisher: select unpublished outbox rows, send them, mark them.

    Every ``poll_interval`` s (Eventuate's
    ``eventuate.cdc.polling.interval.in.milliseconds``, 500 ms) -- at once
    again after a full batch -- it selects up to ``batch_size``
    (``max.events.per.polling``, 1000) rows with ``published = False`` in
    id order, sends each with the producer (``send`` rows, label
    ``relay``), waits until every send is acknowledged or given up, and
    marks the acknowledged ones published in one transaction -- up to the
    first that was given up, so that one and those after it go again, in
    order, at the next poll.  A failed read or mark is tried again at the
    next poll (``retry_backoff`` s after a refused one).

    A crash after the sends and before the mark (:class:`CrashBetweenWrites`
    aims there) leaves the rows unpublished: the restarted relay sends them
    again -- the relay duplicate the consumers must absorb.  Counters:
    ``polls``, ``sent``, ``resent`` (records this relay had sent before),
    ``marked``.
    """

    def __init__(self, world: World, name: str, outbox: Outbox, producer: LogProducer, *,
                 poll_interval: float = 0.5, batch_size: int = 1000,
                 retry_backoff: float = 0.5) -> None:
        interval = _seconds("poll_interval", poll_interval, positive=True)
        if not is_whole(batch_size) or batch_size < 1:
            raise ParamError("batch_size", batch_size, "a whole number of rows >= 1")
        self.poll_interval = interval
        self.batch_size = int(batch_size)
        self.polls = 0
        self.marked = 0
        super().__init__(world, name, outbox, producer, retry_backoff)

    def _loop(self) -> Generator[Event, Any, None]:
        env = self.env
        db = self.outbox.db
        table = self.outbox.table
        unpublished = {"published": False}
        while True:
            stall = self._stalled()
            if stall is not None:
                yield stall
                continue
            self.polls += 1
            rows = yield db.select(self, table, where=unpublished, limit=self.batch_size)
            if rows is None:  # the database did not answer
                yield env.timeout(max(self.retry_backoff, self.poll_interval))
                continue
            if rows:
                sends = [self._send(rid, row) for rid, row in rows]
                yield AllOf(env, sends)
                done = []
                for (rid, _row), ev in zip(rows, sends, strict=True):
                    if ev.value is None:
                        break
                    done.append(rid)
                wait = self._window()
                if wait is not None:
                    yield wait
                stall = self._stalled()
                if stall is not None:
                    yield stall
                if done:
                    tx = db.begin(self)
                    for rid in done:
                        tx.update(table, rid, {"published": True})
                    outcome = yield tx.commit()
                    if outcome == "ok":
                        self.marked += len(done)
                if len(rows) == self.batch_size:
                    continue  # more waiting: poll again at once
            yield env.timeout(self.poll_interval)


class LogTailer(_Relay):
    """Transaction log tailing: send the outbox inserts read from the commit log.

    It asks the database for the commit-log entries after its position
    (:meth:`Database.read_log <simcomm.messaging.database.Database.read_log>`,
    at most ``max_batch`` -- Debezium's ``max.batch.size``, 2048 -- held up
    to ``poll_wait`` s when there is nothing new), and sends each entry's
    inserts into the outbox table, in commit order, no earlier than ``lag``
    s after the commit (the replication stream and the connector's delay),
    without waiting for the acks.  Every ``offset_flush_interval`` s
    (``offset.flush.interval.ms``, 60 s) it saves its position: the last
    entry whose sends are all acknowledged, and all before it.  A send given
    up makes it start again from the saved position (as a failed Kafka
    Connect task restarts), so nothing is skipped.

    The saved position lives outside the relay (Kafka Connect's offsets
    topic; a simplification: saving is instant and not a record), so it
    survives a crash, and what was sent since is sent again after the
    restart: the relay's duplicates.  Counters: ``sent``, ``resent``,
    ``flushes``; ``position`` (in memory) and ``flushed`` (saved).
    """

    def __init__(self, world: World, name: str, outbox: Outbox, producer: LogProducer, *,
                 lag: float = 0.0, offset_flush_interval: float = 60.0, max_batch: int = 2048,
                 poll_wait: float = 0.5, retry_backoff: float = 0.5) -> None:
        delay = _seconds("lag", lag, positive=False)
        flush = _seconds("offset_flush_interval", offset_flush_interval, positive=True)
        wait = _seconds("poll_wait", poll_wait, positive=True)
        if not is_whole(max_batch) or max_batch < 1:
            raise ParamError("max_batch", max_batch, "a whole number of log entries >= 1")
        self.lag = delay
        self.offset_flush_interval = flush
        self.max_batch = int(max_batch)
        self.poll_wait = wait
        self.position = 0
        self.flushed = 0
        self.flushes = 0
        # (log position, the sends of its outbox inserts) not yet covered by a flush
        self._unflushed: deque[tuple[int, list[Event]]] = deque()
        self._rewind = False
        super().__init__(world, name, outbox, producer, retry_backoff)
        self.env.timeout(flush).callbacks.append(self._flush)

    def arm_crash(self, repair_after: float | None = None) -> None:
        """Crash now: a log tailer is always between its sends and its next flush."""
        self.crash(repair_after)

    def _loop(self) -> Generator[Event, Any, None]:
        env = self.env
        db = self.outbox.db
        table = self.outbox.table
        self.position = self.flushed
        self._unflushed.clear()
        self._rewind = False
        while True:
            stall = self._stalled()
            if stall is not None:
                yield stall
                continue
            if self._rewind:
                self._rewind = False
                self.position = self.flushed
                self._unflushed.clear()
            entries = yield db.read_log(self, self.position, self.max_batch, self.poll_wait)
            if entries is None:  # the database did not answer
                yield env.timeout(self.retry_backoff)
                continue
            for entry in entries:
                due = entry.time + self.lag
                if due > env.now:
                    yield env.timeout(due - env.now)
                stall = self._stalled()
                if stall is not None:
                    yield stall
                if self._rewind:
                    break
                sends = [self._send(key, row) for op, t, key, row in entry.writes
                         if t == table and op == "insert"]  # type: ignore[arg-type]
                self.position = entry.position
                if sends:
                    self._unflushed.append((entry.position, sends))

    def _flush(self, _ev: Event | None = None) -> None:
        """Save the position covered by acknowledged sends (every
        ``offset_flush_interval`` s, whatever the relay's state)."""
        self.env.timeout(self.offset_flush_interval).callbacks.append(self._flush)
        if not self.up:
            return
        unflushed = self._unflushed
        position = self.flushed
        while unflushed:
            pos, sends = unflushed[0]
            if not all(ev.triggered for ev in sends):
                break
            if any(ev.value is None for ev in sends):
                self._rewind = True  # a send was given up: go again from the saved position
                break
            unflushed.popleft()
            position = pos
        if not unflushed and not self._rewind:
            position = max(position, self.position)  # entries without outbox rows count too
        if position != self.flushed:
            self.flushed = position
            self.flushes += 1
            self.world.trace.event(self.env.now, self.name, "offset_flush", str(position))
