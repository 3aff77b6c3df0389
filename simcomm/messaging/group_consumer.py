"""A member of a Kafka consumer group: poll, process, commit, rebalance.

A :class:`GroupConsumer` is an ordinary :class:`~simcomm.engine.Instance`
(it can crash, hang and slow down like any node) that runs Kafka's
consumer: one **poll loop** (one SimPy process per member, never one per
record) and a **heartbeat thread** (a chain of timers), talking to the
group coordinator (:mod:`simcomm.messaging.group`) and to the partition
leaders of a :class:`~simcomm.messaging.LogCluster` over the network.

**The poll loop** (``KafkaConsumer.poll``): if the group asked it to
(re)join, it rebalances; then it returns up to ``max_poll_records``
(``max.poll.records``, 500) buffered records, and the loop processes them
one after the other with the ``handler`` -- ``handler(ctx, record)``, a
generator like an instance's (``yield ctx.work()``), default one draw of
``service_time`` -- writing an ``apply`` row when each record's effect is
applied.  Fetching is Kafka's fetcher: one ``Fetch`` per assigned partition
to its leader (long-polled, ``fetch_max_wait`` = ``fetch.max.wait.ms``,
0.5 s), the next one sent when the partition's buffered records have been
handed out, so fetching overlaps processing.  A consumer reads only below
the high watermark (the leader sees to that).  Metadata (who leads a
partition, who coordinates the group, a partition's high watermark for
``auto_offset_reset="latest"``) is read from the cluster at once: a
simplification of Kafka's metadata and ``ListOffsets`` requests.

**Commit modes** (REFERENCE §3, delivery):

* ``auto`` (``enable.auto.commit=true``, ``auto.commit.interval.ms`` =
  ``auto_commit_interval``, 5 s): at a poll, when the interval has passed,
  the position of every partition (the offset after the last record
  returned) is committed asynchronously; and synchronously before the
  member's partitions are revoked and when it leaves.  Records returned by
  the previous poll have been processed by then, so a crash re-delivers
  what came after the last commit: at-least-once, with up to an interval's
  worth of duplicates;
* ``before`` (``commitSync`` right after ``poll``, then process):
  **at-most-once** -- a crash between the commit and the processing loses
  those records, and nothing is ever processed twice: a batch whose commit
  is refused (the member was expelled) is dropped unprocessed, as an
  application that gets Kafka's ``CommitFailedException`` does;
* ``after`` (process, then ``commitSync``; and in ``onPartitionsRevoked``):
  **at-least-once** -- a crash between the processing and the commit
  processes those records again (the next owner starts at the last
  commit), and nothing is lost (with ``auto_offset_reset="earliest"``: a
  partition that never had a commit starts at "latest" otherwise, skipping
  what came before).

Commit rows: ``commit`` when the coordinator stored it (detail ``auto``,
``before``, ``after`` or ``revoke``), ``commit_failed`` when it refused it
(detail ``rebalance``; ``coordinator_unavailable`` when no coordinator
answered within ``request_timeout``).

**Duplicates** (*Microservices Patterns* §3.3.6): ``dedup="processed_ids"``
keeps the id of every processed record in the service's
:class:`ProcessedIds` table, inserted in the same transaction as the
handler's effect: a record already there is skipped (``skip``,
``processed_ids``) -- looked up before the handler runs, and checked again
when its transaction commits, so two members processing one record at once
(the zombie window) still apply it once.  ``dedup="idempotent"``: the
handler runs again but its effect is the same (``skip``, ``idempotent``).
``processed`` is the table, one per consumer SERVICE, shared by its
members (the service's database); None gives every member of the group the
group's own table.

**Rebalancing** follows the group's protocol.  ``eager``: on a rebalance
the member commits (``auto``/``after``) and revokes ALL its partitions
(``revoke`` rows), then rejoins; between its revocation and the new
assignment it consumes nothing -- and once every member has rejoined
nobody in the group consumes until the assignment comes back (the
stop-the-world pause).  ``cooperative`` (``cooperative-sticky``, KIP-429):
it rejoins keeping its partitions; the new assignment says what it may
keep; it revokes only what moved away (committing them first) and, if it
revoked any, rejoins at once (a follow-up rebalance) so that those
partitions reach their new owners in the second round.  A member learns of
a rebalance from its heartbeat's answer (``rebalance_in_progress``) -- up to
``heartbeat_interval`` after it started -- and rejoins at its next poll, so
it finishes the batch in hand first, as Kafka's does.  So after the
coordinator's ``rebalance_start`` each member still consumes until it has
heard; the group-wide stop-the-world pause runs from the last member's
revocation to ``rebalance_end``.

**One consumer per partition at a time -- and when not.**  A partition is
assigned to a new member only after its previous owner revoked it, or was
expelled from the group.  The exception is the one Kafka has: a member
expelled while it still runs -- a **zombie** (a hang longer than
``session_timeout``: a long GC pause, a stuck disk; or a poll loop silent
for ``max_poll_interval``) -- goes on processing the records it had
fetched, while the partition's new owner reads them from the last commit,
until the zombie learns (a heartbeat or commit answered
``unknown_member_id``) that it is out: then it drops its partitions
(``revoke`` rows: Kafka's ``onPartitionsLost``, without a commit), its
commit fails (``commit_failed``) and it joins again as a new member.  In
that window two members of the group process one partition; with
``commit="after"`` this makes duplicates, with ``processed_ids`` they are
skipped.

**Faults.**  A **crash** sends nothing: the coordinator learns of it when
``session_timeout`` (``session.timeout.ms``, 45 s) passes without a
heartbeat (heartbeats every ``heartbeat_interval``, 3 s), so the expiry
comes between ``session_timeout - heartbeat_interval`` and
``session_timeout`` after the crash (plus the network's latency).  What it
had fetched and not committed is processed again by the partition's next
owner (or lost, with ``commit="before"``).  On restart it joins as a new
member (no static membership).  A **hang** stops everything -- poll loop
and heartbeats -- and when it ends the process resumes where it stopped
(a pause, not a restart: the zombie above when the pause outlasted the
session).  A **slowdown** stretches the handler's work; a handler slower
than ``max_poll_interval`` (``max.poll.interval.ms``, 300 s) per batch makes
the heartbeat thread leave the group (``expire``, ``poll_timeout``).
:meth:`GroupConsumer.leave` is a clean shutdown (``close()``: commit,
revoke, ``LeaveGroup``): the group rebalances at once.  **The coordinator**
failing: requests to a crashed coordinator are refused and retried after
``retry_backoff``; the metadata names the next coordinator once the
controller fences the old one (``failover_after``), and the member's
heartbeats, joins and commits go there (the group's state and offsets
moved with it, :mod:`simcomm.messaging.group`).  A coordinator that has
not answered for a whole ``session_timeout`` (hung, cut off) is given up as
Kafka's heartbeat thread does ("coordinator unknown"): the heartbeat and
the JoinGroup/SyncGroup in flight are abandoned and sent again.

The member's one worker counts as busy while it processes a batch (with a
handler or a service time), so ``busy_seconds`` and the utilisation tables
see consumers as they see any instance.

Rows (``trace.records``, with ``trace.enabled``): ``apply``, ``skip``,
``commit``, ``commit_failed``, ``assign``, ``revoke`` (detail: the
generation), ``reset``; the coordinator writes ``join``, ``leave``,
``expire``, ``rebalance_start`` and ``rebalance_end``.  Counters (any
trace): :attr:`~GroupConsumer.applied`, :attr:`~GroupConsumer.skipped`,
:attr:`GroupConsumer.stats`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import Event

from simcomm._checks import as_real, is_whole
from simcomm.engine.nodes import Context, Instance
from simcomm.engine.randomness import Constant
from simcomm.errors import ParamError
from simcomm.messaging.group import (
    PROTOCOLS,
    GroupCoordinator,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from simcomm.messaging.protocol import NOT_LEADER, OFFSET_OUT_OF_RANGE, FetchRequest

if TYPE_CHECKING:
    from simcomm.engine.messages import Message
    from simcomm.engine.randomness import Distribution
    from simcomm.engine.world import World
    from simcomm.messaging.cluster import LogCluster
    from simcomm.messaging.log import Record

__all__ = ["COMMIT_MODES", "DEDUP_MODES", "OFFSET_RESETS", "GroupConsumer", "ProcessedIds",
           "RecordContext", "RecordHandler"]

TP = tuple[str, int]

#: when a member commits its offsets (see the module docstring)
COMMIT_MODES = ("auto", "before", "after")
#: where a member without a committed offset starts (``auto.offset.reset``)
OFFSET_RESETS = ("latest", "earliest")
#: how a member avoids applying a record's effect twice
DEDUP_MODES = ("none", "processed_ids", "idempotent")
#: the assignors a member may name (``partition.assignment.strategy``)
ASSIGNOR_NAMES = ("range", "roundrobin", "sticky", "cooperative-sticky")

RecordHandler = Callable[["RecordContext", "Record"], Generator[Event, Any, Any]]


class ProcessedIds:
    """A consumer service's table of processed record ids (the book's §3.3.6).

    Kept in the service's database, so it survives a member's crash and is
    shared by every member of the service: insert the id in the same
    transaction as the business update, and a record already in the table
    is a duplicate to skip.
    """

    __slots__ = ("ids", "name")

    def __init__(self, name: str = "processed_ids") -> None:
        if not isinstance(name, str) or not name:
            raise ParamError("name", name, "a non-empty table name")
        self.name = name
        self.ids: set[int] = set()

    def __contains__(self, record_id: object) -> bool:
        return record_id in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, record_id: int) -> None:
        self.ids.add(record_id)

    def __repr__(self) -> str:
        return f"ProcessedIds({self.name!r}, {len(self.ids)} ids)"


class RecordContext(Context):
    """What a record handler sees: the member (``instance``), ``work()`` for
    CPU time, and where the record sits (``topic``, ``partition``,
    ``offset``; Kafka's ``ConsumerRecord``)."""

    __slots__ = ("offset", "partition", "topic")

    def __init__(self, instance: Instance) -> None:
        super().__init__(instance, None)  # type: ignore[arg-type]  # no request: a record
        self.topic = ""
        self.partition = -1
        self.offset = -1

    @property
    def deadline(self) -> float | None:
        return None


def _seconds(field: str, value: object, allowed: str, *, zero: bool = False) -> float:
    number = as_real(value)
    if number is None or math.isnan(number) or math.isinf(number) or number < 0 \
            or (number == 0 and not zero):
        raise ParamError(field, value, allowed)
    return number


class GroupConsumer(Instance):
    """A member of consumer group ``group`` reading ``topics`` of ``cluster``.

    See the module docstring for the behaviour; Kafka's config names:
    ``assignor`` = ``partition.assignment.strategy`` (``range``,
    ``roundrobin``, ``sticky``, ``cooperative-sticky``), ``protocol`` the
    rebalance protocol (None: ``cooperative`` for ``cooperative-sticky``,
    else ``eager``; ``cooperative`` needs ``cooperative-sticky``, the only
    assignor here that supports it), ``session_timeout`` =
    ``session.timeout.ms`` (45 s), ``heartbeat_interval`` =
    ``heartbeat.interval.ms`` (3 s, below the session timeout),
    ``max_poll_interval`` = ``max.poll.interval.ms`` (300 s; also the
    rebalance timeout), ``max_poll_records`` = ``max.poll.records`` (500),
    ``fetch_max_wait`` = ``fetch.max.wait.ms`` (0.5 s), ``commit`` (``auto``
    = ``enable.auto.commit``; ``before``/``after`` = ``commitSync`` before or
    after processing), ``auto_commit_interval`` = ``auto.commit.interval.ms``
    (5 s), ``auto_offset_reset`` = ``auto.offset.reset`` (``latest``),
    ``request_timeout`` = ``request.timeout.ms`` (30 s), ``retry_backoff`` =
    ``retry.backoff.ms`` (0.1 s).  ``start``: when the member starts (joins).
    Every member of a group must name the same assignor and protocol.

        >>> from simcomm.engine import World
        >>> from simcomm.messaging import LogCluster, LogProducer
        >>> world = World(seed=1)
        >>> kafka = LogCluster(world, brokers=3)
        >>> _ = kafka.create_topic("orders", 4)
        >>> producer = LogProducer(world, "order-service", kafka, "orders")
        >>> _ = [producer.send(f"order-{i}", i) for i in range(100)]
        >>> billing = [GroupConsumer(world, f"billing-{i}", kafka, "billing", "orders",
        ...                          commit="after", auto_offset_reset="earliest")
        ...            for i in (1, 2)]
        >>> _ = world.run(until=10)
        >>> [m.assignment for m in billing]
        [[('orders', 0), ('orders', 1)], [('orders', 2), ('orders', 3)]]
        >>> sum(m.applied for m in billing)
        100
    """

    def __init__(self, world: World, name: str, cluster: LogCluster, group: str,
                 topics: str | Iterable[str], *, handler: RecordHandler | None = None,
                 service_time: Distribution | float = 0.0, assignor: str = "range",
                 protocol: str | None = None, session_timeout: float = 45.0,
                 heartbeat_interval: float = 3.0, max_poll_interval: float = 300.0,
                 max_poll_records: int = 500, fetch_max_wait: float = 0.5,
                 commit: str = "auto", auto_commit_interval: float = 5.0,
                 auto_offset_reset: str = "latest", dedup: str = "none",
                 processed: ProcessedIds | None = None, start: float = 0.0,
                 request_timeout: float = 30.0, retry_backoff: float = 0.1,
                 service: str | None = None) -> None:
        from simcomm.messaging.cluster import LogCluster

        if not isinstance(cluster, LogCluster):
            raise ParamError("cluster", cluster, "a LogCluster whose topics the group reads")
        if not isinstance(group, str) or not group:
            raise ParamError("group", group, "a non-empty group id (group.id)")
        topic_list = [topics] if isinstance(topics, str) else (
            list(topics) if isinstance(topics, Iterable) else None)
        if not topic_list or not all(isinstance(t, str) and t for t in topic_list):
            raise ParamError("topics", topics, "a topic name or a non-empty list of them")
        known = set(cluster.topics)
        missing = [t for t in topic_list if t not in known]
        if missing:
            raise ParamError("topics", topics, "topics created on the cluster first "
                             f"(create_topic); unknown: {', '.join(missing)}")
        if handler is not None and not callable(handler):
            raise ParamError("handler", handler, "a generator function handler(ctx, record), "
                                                 "or None for service_time of work")
        if assignor not in ASSIGNOR_NAMES:
            raise ParamError("assignor", assignor, " or ".join(map(repr, ASSIGNOR_NAMES)))
        if protocol is None:
            protocol = "cooperative" if assignor == "cooperative-sticky" else "eager"
        if protocol not in PROTOCOLS:
            raise ParamError("protocol", protocol, "'eager' or 'cooperative', or None")
        if protocol == "cooperative" and assignor != "cooperative-sticky":
            raise ParamError("protocol", protocol, "'eager' with assignor "
                             f"{assignor!r}: only 'cooperative-sticky' supports cooperative")
        session = _seconds("session_timeout", session_timeout, "seconds > 0 (finite): "
                           "session.timeout.ms")
        beat = _seconds("heartbeat_interval", heartbeat_interval, "seconds > 0 (finite): "
                        "heartbeat.interval.ms")
        if not beat < session:
            raise ParamError("heartbeat_interval", heartbeat_interval,
                             f"seconds below session_timeout ({session:g})")
        poll_interval = _seconds("max_poll_interval", max_poll_interval,
                                 "seconds > 0 (finite): max.poll.interval.ms")
        if not is_whole(max_poll_records) or max_poll_records < 1:
            raise ParamError("max_poll_records", max_poll_records, "a whole number >= 1")
        wait = _seconds("fetch_max_wait", fetch_max_wait, "seconds >= 0 (finite): "
                        "fetch.max.wait.ms", zero=True)
        if commit not in COMMIT_MODES:
            raise ParamError("commit", commit, " or ".join(map(repr, COMMIT_MODES)))
        interval = _seconds("auto_commit_interval", auto_commit_interval,
                            "seconds > 0 (finite): auto.commit.interval.ms")
        if auto_offset_reset not in OFFSET_RESETS:
            raise ParamError("auto_offset_reset", auto_offset_reset,
                             " or ".join(map(repr, OFFSET_RESETS)))
        if dedup not in DEDUP_MODES:
            raise ParamError("dedup", dedup, " or ".join(map(repr, DEDUP_MODES)))
        if processed is not None and not isinstance(processed, ProcessedIds):
            raise ParamError("processed", processed, "a ProcessedIds table, or None")
        begin = _seconds("start", start, "a time in seconds >= 0", zero=True)
        timeout = _seconds("request_timeout", request_timeout,
                           "seconds > 0 (finite): request.timeout.ms")
        backoff = _seconds("retry_backoff", retry_backoff, "seconds > 0 (finite): "
                           "retry.backoff.ms")
        coordinator = GroupCoordinator.of(cluster)
        config = coordinator.configs.get(group)
        if config is not None and config != (assignor, protocol):
            raise ParamError("assignor", assignor, f"the group's: {group!r} has assignor "
                             f"{config[0]!r} with protocol {config[1]!r}")
        # read by _start_workers, which Instance.__init__ calls
        self._epoch = 0
        self._begin = begin
        self._restarted = False
        super().__init__(world, name, service_time=service_time,
                         service=service)  # registers the node: everything checked first
        coordinator.configs[group] = (assignor, protocol)
        if processed is None and dedup != "none":
            processed = coordinator.tables.setdefault(group, ProcessedIds(f"{group}.processed"))
        self.cluster = cluster
        self.coordinator = coordinator
        self.group = group
        self.topics = tuple(topic_list)
        #: the record handler (None: ``service_time`` of work per record)
        self.record_handler: RecordHandler | None = handler
        self.assignor = assignor
        self.protocol = protocol
        self.session_timeout = session
        self.heartbeat_interval = beat
        self.max_poll_interval = poll_interval
        self.max_poll_records = int(max_poll_records)
        self.fetch_max_wait = wait
        self.commit = commit
        self.auto_commit_interval = interval
        self.auto_offset_reset = auto_offset_reset
        self.dedup = dedup
        self.processed = processed
        self.start = begin
        self.request_timeout = timeout
        self.retry_backoff = backoff
        st = self.service_time
        self._no_work = isinstance(st, Constant) and st.value == 0
        self._rows = world.trace.records.append if world.trace.enabled else None
        # membership
        self.member_id: str | None = None
        self.generation = -1
        self._owned_before: tuple[TP, ...] = ()  # eager: the last assignment (sticky user data)
        self._rejoin = False
        self._follow_up = False
        self._lost = False
        self._joining = False
        self._join_rid: int | None = None
        self._join_dest = ""
        self._leaving: Event | None = None
        self._left = False
        # partitions: position, buffered records, fetch in flight
        self._positions: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}
        self._buffers: dict[TP, list[tuple[int, Record]]] = {}
        self._ready: deque[TP] = deque()
        self._inflight: dict[TP, int] = {}
        self._fetch_ids = 0
        self._wake: Event | None = None
        self._in_poll = False
        self._last_poll = 0.0
        self._next_auto = 0.0
        self._hb_on = False
        self._hb_rid: int | None = None  # the heartbeat in flight
        self._hb_dest = ""
        self._heard = 0.0  # the coordinator's last answer
        # counters
        self.applied = 0
        self.skipped = 0
        self.commits = 0
        self.commit_failures = 0
        self.fetches = 0
        self.assignments = 0
        self.resets = 0

    # -- lifecycle ---------------------------------------------------------------
    def _start_workers(self) -> None:
        self._epoch += 1
        self._procs = [self.env.process(self._run(self._epoch))]

    @property
    def assignment(self) -> list[TP]:
        """The partitions this member owns now, sorted."""
        return sorted(self._positions)

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: ``applied``, ``skipped``, ``commits``, ``commit_failures``,
        ``fetches``, ``assignments`` (assignments received), ``resets``, and
        the member's ``generation`` and number of ``partitions`` now."""
        return {"applied": self.applied, "skipped": self.skipped, "commits": self.commits,
                "commit_failures": self.commit_failures, "fetches": self.fetches,
                "assignments": self.assignments, "resets": self.resets,
                "generation": self.generation, "partitions": len(self._positions)}

    def leave(self) -> Event:
        """Shut down cleanly (``KafkaConsumer.close()``): after the batch in hand,
        commit (``auto``/``after``), revoke everything, send ``LeaveGroup``.

        Returns an event that succeeds once the member is out (at once if it
        is down or already left).  The group rebalances without waiting for
        a session timeout.
        """
        if self._leaving is not None:
            return self._leaving
        done = self._leaving = Event(self.env)
        if not self.up or self._left:
            self._left = True
            done.succeed()
        else:
            self._poke()
        return done

    def _poke(self) -> None:
        wake = self._wake
        if wake is not None and not wake.triggered:
            wake.succeed()

    # -- faults ------------------------------------------------------------------
    def crash(self, repair_after: float | None = None) -> None:
        """The process dies: nothing is sent; the coordinator expires it later."""
        was_up = self.up
        super().crash(repair_after)
        if was_up:
            self._epoch += 1  # timers and callbacks of the dead process are void
            self._reset_membership()
            self._restarted = True

    def _reset_membership(self) -> None:
        self.member_id = None
        self.generation = -1
        self._owned_before = ()
        self._rejoin = self._follow_up = self._lost = self._joining = False
        self._join_rid = None
        self._positions.clear()
        self._committed.clear()
        self._buffers.clear()
        self._ready.clear()
        self._inflight.clear()
        self._wake = None
        self._in_poll = False
        self._hb_on = False
        self._hb_rid = None

    def restart(self) -> None:
        """Start again as a new member of the group (unless it had left)."""
        if self.up:
            return
        super().restart()

    def unhang(self, token: Event | None = None) -> None:
        """End a hang: the process resumes where it stopped (a pause, not a restart)."""
        was = self.hung
        super().unhang(token)
        if was and not self.hung:
            self._start_heartbeats()
            self._poke()  # a poll waiting for data fetches again

    # -- requests ----------------------------------------------------------------
    def _ask(self, dest: str, body: Any, timeout: float) -> Event:
        """A request whose event fires with the reply, or with None after ``timeout``."""
        ev = self.request(dest, body)
        rid = ev.request_id  # type: ignore[attr-defined]
        pending = self._pending

        def expire(_ev: Event) -> None:
            # by id, not the event: a timer holding the event would keep its
            # reply (a fetch's records) alive for the whole timeout
            late = pending.pop(rid, None)
            if late is not None:
                late.succeed(None)

        self.env.timeout(timeout).callbacks.append(expire)
        return ev

    def _abort_join(self) -> None:
        """The coordinator our JoinGroup/SyncGroup waits on is gone: stop waiting."""
        rid = self._join_rid
        if rid is not None:
            ev = self._pending.pop(rid, None)
            if ev is not None:
                ev.succeed(None)

    # -- heartbeats (the heartbeat thread: timers) ---------------------------------
    def _start_heartbeats(self) -> None:
        if not self._hb_on and self.up and not self._left:
            self._hb_on = True
            self._heard = max(self._heard, self.env.now - self.heartbeat_interval)
            self._beat(self._epoch)

    def _beat(self, epoch: int) -> None:
        if epoch != self._epoch:
            return
        if self.hung or self._left:
            self._hb_on = False  # resumed by unhang
            return
        now = self.env.now
        coordinator = self.cluster.coordinator_for(self.group)
        # a member (with a member id, so heartbeating) whose coordinator has not
        # answered for a whole session gives it up (Kafka: "coordinator unknown")
        silent = self.member_id is not None and now - self._heard > self.session_timeout
        if self._joining and self._join_rid is not None and (
                coordinator.name != self._join_dest or silent):
            # the coordinator holding our JoinGroup/SyncGroup moved (the metadata
            # says so) or went silent: ask again
            self._abort_join()
        rid = self._hb_rid
        if rid is not None and (coordinator.name != self._hb_dest or silent):
            self.forget(rid)  # the same for the heartbeat in flight
            self._hb_rid = None
        mid = self.member_id
        if mid is not None and not self._joining and not self._in_poll \
                and now - self._last_poll > self.max_poll_interval:
            # the poll loop has been away too long: leave the group (Kafka's
            # heartbeat thread does), the coordinator records a poll timeout
            self.request(coordinator.name, LeaveGroupRequest(self.group, mid, "poll_timeout"))
            self.member_id = None
            self._lost = True
        elif mid is not None and self._hb_rid is None:
            ev = self._ask(coordinator.name, HeartbeatRequest(self.group, mid, self.generation),
                           self.request_timeout)
            hb = self._hb_rid = ev.request_id  # type: ignore[attr-defined]
            self._hb_dest = coordinator.name
            ev.callbacks.append(lambda e: self._beaten(epoch, hb, mid, e.value))
        self.env.timeout(self.heartbeat_interval).callbacks.append(
            lambda _e: self._beat(epoch))

    def _beaten(self, epoch: int, hb: int, mid: str, reply: Message | None) -> None:
        if epoch != self._epoch or hb != self._hb_rid:
            return
        self._hb_rid = None
        if reply is not None and reply.status == "ok":
            self._heard = self.env.now
        if reply is None or reply.status != "ok" or reply.body.error == "not_coordinator":
            if self._joining:
                self._abort_join()  # the coordinator died with our request
            return
        error = reply.body.error
        if error is None or self._joining or mid != self.member_id:
            return
        if error == "rebalance_in_progress":
            self._rejoin = True
        elif error in ("unknown_member_id", "illegal_generation"):
            self._out(error)
        self._poke()

    def _out(self, error: str) -> None:
        """The coordinator says our membership is over: ``unknown_member_id`` (we
        were expelled: a new member id next time) or ``illegal_generation`` (the
        group moved on without us: same member id, no generation) -- either way
        the partitions are lost (Kafka's ``resetGenerationOnResponseError``)."""
        self._lost = True
        if error == "unknown_member_id":
            self.member_id = None

    # -- the poll loop --------------------------------------------------------------
    def _pause(self) -> Generator[Event, Any, None]:
        while self.hung:
            yield self._unhang  # type: ignore[misc]

    def _run(self, epoch: int) -> Generator[Event, Any, None]:
        env = self.env
        try:
            if not self._restarted and self._begin > env.now:
                yield env.timeout(self._begin - env.now)
            yield from self._pause()
            self._last_poll = env.now
            while not self._left:
                if self._leaving is not None:
                    yield from self._close()
                    return
                if self._lost:
                    self._partitions_lost()
                if self.member_id is None or self._rejoin:
                    yield from self._join()
                    continue
                now = env.now
                self._last_poll = now
                if self.commit == "auto" and now >= self._next_auto:
                    self._next_auto = now + self.auto_commit_interval
                    self._commit_async()
                batch = self._take()
                if not batch:
                    yield from self._wait_in_poll()
                    continue
                if self.commit == "before" and not (
                        yield from self._commit_sync("before", self._ends(batch))):
                    continue  # CommitFailedException: the batch is dropped unprocessed
                if self._no_work and self.record_handler is None:
                    yield from self._process(batch)
                else:  # the member's one worker is busy (utilisation tables)
                    self._busy_area -= env.now
                    self.busy = 1
                    self._log_pool()
                    yield from self._process(batch)
                    self._busy_area += env.now
                    self.busy = 0
                    self._log_pool()
                if self.commit == "after":
                    yield from self._commit_sync("after", self._ends(batch))
        except simpy.Interrupt:
            return

    def _wait_in_poll(self) -> Generator[Event, Any, None]:
        """Nothing to hand out: fetch, and wait inside poll for data or news."""
        self._fetch_all()
        env = self.env
        wake = self._wake = Event(env)
        if self.commit == "auto" and any(self._committed.get(tp) != pos
                                         for tp, pos in self._positions.items()):
            env.timeout(max(0.0, self._next_auto - env.now)).callbacks.append(
                lambda _e: self._poke() if self._wake is wake else None)
        self._in_poll = True
        yield wake
        self._in_poll = False
        self._wake = None
        yield from self._pause()

    def _take(self) -> list[tuple[TP, list[tuple[int, Record]]]]:
        """Up to ``max_poll_records`` buffered records, partition by partition."""
        room = self.max_poll_records
        ready = self._ready
        buffers = self._buffers
        positions = self._positions
        batch = []
        while room and ready:
            tp = ready.popleft()
            buf = buffers.get(tp)
            if not buf or tp not in positions:
                continue
            if len(buf) > room:
                recs = buf[:room]
                del buf[:room]
                ready.appendleft(tp)
                positions[tp] = recs[-1][0] + 1
            else:
                recs = buf
                del buffers[tp]
                positions[tp] = recs[-1][0] + 1
                self._fetch(tp)  # drained: the fetcher asks for more
            room -= len(recs)
            batch.append((tp, recs))
        return batch

    def _ends(self, batch: list[tuple[TP, list[tuple[int, Record]]]]) -> dict[TP, int]:
        return {tp: recs[-1][0] + 1 for tp, recs in batch}

    def _process(self, batch: list[tuple[TP, list[tuple[int, Record]]]]
                 ) -> Generator[Event, Any, None]:
        """Apply each record's effect (the handler), with the dedup rule."""
        env = self.env
        rows = self._rows
        name = self.name
        handler = self.record_handler
        no_work = self._no_work and handler is None
        table = self.processed
        dedup = self.dedup
        if handler is None and dedup == "none":  # the hot path: plain work per record
            st = self.service_time
            const = st.value if isinstance(st, Constant) else None
            timeout = env.timeout
            for (topic, p), recs in batch:
                for off, rec in recs:
                    if not no_work:
                        yield timeout((const if const is not None else st.sample(self.rng))
                                      * self.slowdown)
                        if self.hung:
                            yield from self._pause()
                    self.applied += 1
                    if rows is not None:
                        rows((env.now, "apply", rec.record_id, topic, p, off, rec.key, name, ""))
            return
        if dedup == "none":
            table = None  # a table given without a dedup rule is not consulted
        ctx = RecordContext(self) if handler is not None else None
        for (topic, p), recs in batch:
            for off, rec in recs:
                rid = rec.record_id
                if dedup == "processed_ids" and rid in table:  # type: ignore[operator]
                    self._skip(rec, topic, p, off, dedup)
                    continue
                if not no_work:
                    if ctx is not None:
                        ctx.topic, ctx.partition, ctx.offset = topic, p, off
                        yield from handler(ctx, rec)  # type: ignore[misc]  # set with ctx
                        if ctx.debt > 0:
                            yield env.timeout(ctx.debt)
                            ctx.debt = 0.0
                    else:
                        yield env.timeout(self.service_time.sample(self.rng) * self.slowdown)
                    if self.hung:
                        yield from self._pause()
                if table is not None:
                    if rid in table:  # the id is there already: the transaction's insert fails
                        self._skip(rec, topic, p, off, dedup)
                        continue
                    table.add(rid)
                self.applied += 1
                if rows is not None:
                    rows((env.now, "apply", rid, topic, p, off, rec.key, name, ""))

    def _skip(self, rec: Record, topic: str, p: int, off: int, why: str) -> None:
        self.skipped += 1
        if self._rows is not None:
            self._rows((self.env.now, "skip", rec.record_id, topic, p, off, rec.key, self.name,
                        why))

    # -- fetching (Kafka's fetcher: callbacks, no process) --------------------------
    def _fetch_all(self) -> None:
        inflight = self._inflight
        buffers = self._buffers
        for tp in self._positions:
            if tp not in inflight and tp not in buffers:
                self._fetch(tp)

    def _fetch(self, tp: TP) -> None:
        if tp in self._inflight or tp not in self._positions or not self.up or self.hung:
            return  # (a hung process sends nothing: its poll loop fetches when it resumes)
        self._fetch_ids += 1
        fid = self._inflight[tp] = self._fetch_ids
        topic, p = tp
        leader = self.cluster.leader(topic, p)
        epoch = self._epoch
        if leader is None:  # no leader now (a failover): ask the metadata again later
            self.env.timeout(self.retry_backoff).callbacks.append(
                lambda _e: self._refetch(tp, fid, epoch))
            return
        self.fetches += 1
        pos = self._positions[tp]
        ev = self._ask(leader.name, FetchRequest(topic, p, pos, self.max_poll_records, None,
                                                 self.fetch_max_wait), self.request_timeout)
        sent = self.env.now
        ev.callbacks.append(lambda e: self._fetched(tp, fid, pos, sent, epoch, e.value))

    def _refetch(self, tp: TP, fid: int, epoch: int) -> None:
        if epoch == self._epoch and self._inflight.get(tp) == fid:
            del self._inflight[tp]
            self._fetch(tp)

    def _fetched(self, tp: TP, fid: int, pos: int, sent: float, epoch: int,
                 reply: Message | None) -> None:
        if epoch != self._epoch or self._inflight.get(tp) != fid:
            return  # revoked, reset or crashed meanwhile
        env = self.env
        if reply is None or reply.status != "ok" or reply.body.error == NOT_LEADER:
            # broker down, timed out, or not the leader any more: retry after a backoff
            env.timeout(self.retry_backoff).callbacks.append(
                lambda _e: self._refetch(tp, fid, epoch))
            return
        resp = reply.body
        if resp.error == OFFSET_OUT_OF_RANGE:
            del self._inflight[tp]
            self._reset(tp)
            self._fetch(tp)
            return
        if self._positions.get(tp) != pos:
            del self._inflight[tp]
            self._fetch(tp)
            return
        records = resp.records
        if records:
            del self._inflight[tp]
            self._buffers[tp] = records
            self._ready.append(tp)
            self._poke()
            return
        # nothing came: ask again once fetch_max_wait has passed since the last ask
        wait = self.fetch_max_wait - (env.now - sent)
        if wait > 0:
            env.timeout(wait).callbacks.append(lambda _e: self._refetch(tp, fid, epoch))
        else:
            del self._inflight[tp]
            self._fetch(tp)

    def _reset(self, tp: TP) -> None:
        """No committed offset (or out of range): ``auto_offset_reset`` decides."""
        topic, p = tp
        how = self.auto_offset_reset
        offset = 0 if how == "earliest" else self.cluster.high_watermark(topic, p)
        self._positions[tp] = offset
        self._buffers.pop(tp, None)
        self.resets += 1
        if self._rows is not None:
            self._rows((self.env.now, "reset", -1, topic, p, offset, None, self.name, how))

    # -- commits -------------------------------------------------------------------
    def _changed(self, offsets: dict[TP, int]) -> dict[TP, int]:
        committed = self._committed
        return {tp: off for tp, off in offsets.items() if committed.get(tp) != off}

    def _commit_rows(self, event: str, offsets: dict[TP, int], detail: str) -> None:
        rows = self._rows
        if rows is not None:
            now, name = self.env.now, self.name
            for (topic, p), off in sorted(offsets.items()):
                rows((now, event, -1, topic, p, off, None, name, detail))

    def _committed_ok(self, offsets: dict[TP, int], detail: str) -> None:
        self.commits += 1
        self._committed.update(offsets)
        self._commit_rows("commit", offsets, detail)

    def _commit_refused(self, offsets: dict[TP, int], error: str) -> None:
        self.commit_failures += 1
        detail = "coordinator_unavailable" if error == "coordinator_unavailable" else "rebalance"
        self._commit_rows("commit_failed", offsets, detail)
        if error in ("unknown_member_id", "illegal_generation"):
            self._out(error)  # expelled, or our generation is over
        elif error == "rebalance_in_progress":
            self._rejoin = True

    def _commit_sync(self, detail: str, offsets: dict[TP, int]
                     ) -> Generator[Event, Any, bool]:
        """``commitSync``: True once stored; False when refused (or no coordinator)."""
        offsets = self._changed(offsets)
        if not offsets:
            return True
        mid = self.member_id
        if mid is None or self._lost:
            self._commit_refused(offsets, "unknown_member_id")
            return False
        give_up = self.env.now + self.request_timeout
        while True:
            coordinator = self.cluster.coordinator_for(self.group)
            reply = yield self._ask(coordinator.name, OffsetCommitRequest(
                self.group, mid, self.generation, offsets), self.request_timeout)
            yield from self._pause()
            error = "coordinator_unavailable" if reply is None or reply.status != "ok" \
                else reply.body.error
            if error is None:
                self._committed_ok(offsets, detail)
                return True
            if error in ("coordinator_unavailable", "not_coordinator") \
                    and self.env.now < give_up:
                yield self.env.timeout(self.retry_backoff)
                continue
            if error == "not_coordinator":
                error = "coordinator_unavailable"
            self._commit_refused(offsets, error)
            return False

    def _commit_async(self) -> None:
        """``commitAsync`` of every position (auto commit): the answer is a callback."""
        offsets = self._changed(self._positions)
        mid = self.member_id
        coordinator = self.cluster.coordinator_for(self.group)
        if not offsets or mid is None:
            return
        epoch = self._epoch
        ev = self._ask(coordinator.name, OffsetCommitRequest(self.group, mid, self.generation,
                                                             offsets), self.request_timeout)

        def done(e: Event) -> None:
            reply = e.value
            if epoch != self._epoch:
                return
            if reply is None or reply.status != "ok":
                return  # retried at the next auto commit
            if reply.body.error is None:
                self._committed_ok(offsets, "auto")
            elif reply.body.error != "not_coordinator":
                self._commit_refused(offsets, reply.body.error)
                self._poke()

        ev.callbacks.append(done)

    # -- rebalancing -------------------------------------------------------------------
    def _revoke_rows(self, tps: Iterable[TP], generation: int) -> None:
        rows = self._rows
        if rows is not None:
            now, name, gen = self.env.now, self.name, str(generation)
            for topic, p in sorted(tps):
                rows((now, "revoke", -1, topic, p, -1, None, name, gen))

    def _drop(self, tps: Iterable[TP]) -> None:
        for tp in list(tps):
            self._positions.pop(tp, None)
            self._committed.pop(tp, None)
            self._buffers.pop(tp, None)
            self._inflight.pop(tp, None)
        if self._ready:
            positions = self._positions
            self._ready = deque(tp for tp in self._ready if tp in positions)

    def _revoke(self, tps: list[TP], held_in: int) -> Generator[Event, Any, None]:
        """``onPartitionsRevoked``: commit what was processed, then let go
        (rows name ``held_in``, the generation the member held them in)."""
        if not tps:
            return
        if self.commit in ("auto", "after"):
            yield from self._commit_sync("revoke", {tp: self._positions[tp] for tp in tps})
        self._revoke_rows(tps, held_in)
        self._drop(tps)

    def _partitions_lost(self) -> None:
        """``onPartitionsLost``: out of the group -- let go without a commit."""
        self._lost = False
        self._revoke_rows(self._positions, self.generation)
        self._owned_before = ()
        self._drop(list(self._positions))
        self.generation = -1
        self._rejoin = True

    def _join(self) -> Generator[Event, Any, None]:
        """Rebalance: (eager: revoke all,) JoinGroup, SyncGroup, take the assignment."""
        self._joining = True
        self._in_poll = True
        self._start_heartbeats()
        eager = self.protocol == "eager"
        if eager and self._positions:
            self._owned_before = tuple(sorted(self._positions))
            yield from self._revoke(sorted(self._positions), self.generation)
        env = self.env
        while True:
            if self._lost:
                self._partitions_lost()
            if self._leaving is not None:
                break
            coordinator = self.cluster.coordinator_for(self.group)
            owned = self._owned_before if eager else tuple(sorted(self._positions))
            reason = "follow_up" if self._follow_up else (
                "join" if self.member_id is None else "rejoin")
            req = JoinGroupRequest(self.group, self.member_id, self.name, self.topics, owned,
                                   self.assignor, self.protocol, self.session_timeout,
                                   self.max_poll_interval, reason)
            # a new member's first JoinGroup is answered at once (KIP-394); a
            # member's own waits for the join phase (Kafka: rebalance timeout + 5 s)
            wait = self.request_timeout if self.member_id is None \
                else self.max_poll_interval + 5.0
            reply = yield from self._exchange(coordinator.name, req, wait)
            if reply is None:
                yield env.timeout(self.retry_backoff)
                continue
            resp = reply.body
            if resp.error is not None:
                if resp.error == "member_id_required":
                    self.member_id = resp.member_id  # join again with it, at once
                    self._start_heartbeats()
                elif resp.error == "unknown_member_id":
                    self._out(resp.error)
                else:
                    yield env.timeout(self.retry_backoff)
                continue
            self.member_id = resp.member_id
            self._start_heartbeats()
            previous, self.generation = self.generation, resp.generation
            reply = yield from self._exchange(coordinator.name, SyncGroupRequest(
                self.group, resp.member_id, resp.generation), self.request_timeout)
            if reply is None or reply.body.error is not None:
                if reply is not None and reply.body.error == "unknown_member_id":
                    self._out("unknown_member_id")
                self.generation = previous
                continue
            self._rejoin = self._follow_up = False
            yield from self._assigned(previous, resp.generation, reply.body.assignment)
            break
        self._joining = False
        self._in_poll = False
        self._last_poll = env.now

    def _exchange(self, dest: str, body: Any, timeout: float
                  ) -> Generator[Event, Any, Message | None]:
        """A JoinGroup/SyncGroup: its reply, or None (timed out, coordinator gone)."""
        ev = self._ask(dest, body, timeout)
        self._join_rid = ev.request_id  # type: ignore[attr-defined]
        self._join_dest = dest
        reply = yield ev
        self._join_rid = None
        yield from self._pause()
        if reply is None or reply.status != "ok":
            return None
        self._heard = self.env.now
        return reply  # type: ignore[no-any-return]

    def _assigned(self, previous: int, generation: int, assignment: tuple[TP, ...]
                  ) -> Generator[Event, Any, None]:
        """``onPartitionsAssigned`` (and, cooperative, ``onPartitionsRevoked`` of
        what moved away, then the follow-up rejoin)."""
        self.assignments += 1
        new = set(assignment)
        revoked = sorted(set(self._positions) - new)
        if revoked:  # cooperative: what moves away is revoked in this round
            yield from self._revoke(revoked, previous)
            self._rejoin = self._follow_up = True
        added = sorted(new - set(self._positions))
        self._owned_before = tuple(sorted(new))
        if not added:
            return
        offsets = yield from self._fetch_committed(tuple(added))
        if offsets is None or self._lost:
            return
        rows = self._rows
        if rows is not None:
            now, name, gen_s = self.env.now, self.name, str(generation)
            for topic, p in added:
                rows((now, "assign", -1, topic, p, -1, None, name, gen_s))
        for tp in added:
            off = offsets.get(tp, -1)
            if off >= 0:
                self._positions[tp] = off
                self._committed[tp] = off
            else:
                self._reset(tp)
        self._fetch_all()

    def _fetch_committed(self, tps: tuple[TP, ...]
                         ) -> Generator[Event, Any, dict[TP, int] | None]:
        """OffsetFetch: the committed offsets of ``tps`` (retried until answered)."""
        env = self.env
        while True:
            coordinator = self.cluster.coordinator_for(self.group)
            reply = yield self._ask(coordinator.name, OffsetFetchRequest(self.group, tps),
                                    self.request_timeout)
            yield from self._pause()
            if reply is not None and reply.status == "ok" and reply.body.error is None:
                return reply.body.offsets  # type: ignore[no-any-return]
            if self._lost:
                return None
            yield env.timeout(self.retry_backoff)

    def _close(self) -> Generator[Event, Any, None]:
        """``close()``: commit, revoke all, LeaveGroup, stop."""
        done = self._leaving
        mid = self.member_id
        if mid is not None and not self._lost:
            yield from self._revoke(sorted(self._positions), self.generation)
            coordinator = self.cluster.coordinator_for(self.group)
            yield self._ask(coordinator.name, LeaveGroupRequest(self.group, mid),
                            self.request_timeout)
        elif self._positions:
            self._revoke_rows(self._positions, self.generation)
        self._drop(list(self._positions))
        self.member_id = None
        self.generation = -1
        self._left = True
        self._epoch += 1  # the heartbeat thread stops
        self._hb_on = False
        if done is not None and not done.triggered:
            done.succeed()
