"""Kafka's group coordinator: consumer groups, generations, rebalances, offsets.

A consumer group shares the partitions of its topics among its members so
that each partition is read by one member at a time (*Microservices
Patterns* §3.3.4: "each shard has one receiver of the group at a time,
reassigned when receivers start and stop").  Kafka does it with a **group
coordinator** on one broker -- the leader of the ``__consumer_offsets``
partition the group id hashes to (:meth:`LogCluster.coordinator_for`) -- and
the classic group protocol (KIP-62, ``GroupCoordinator.scala``), which this
module follows:

* a member **joins** (``JoinGroup``: its topics, the partitions it owns, its
  assignor, ``session.timeout.ms`` and ``max.poll.interval.ms`` -- the
  rebalance timeout).  A new member's first JoinGroup is answered at once
  with a member id and ``member_id_required`` (KIP-394); it joins again
  with that id within a session timeout, and only then is it a member
  (a ``join`` row).  A join from a new member, a rejoin, a leave or an
  expiry moves the group from ``Stable`` (or ``Empty``) to
  ``PreparingRebalance`` (a ``rebalance_start`` row, with why);
* the **join phase** ends when every member has (re)joined, or when the
  rebalance timeout (the largest ``max_poll_interval`` of the members) runs
  out -- members that did not rejoin are removed then (``expire``,
  ``poll_timeout``).  A group that was ``Empty`` waits
  ``initial_rebalance_delay`` s first (``group.initial.rebalance.delay.ms``,
  3 s), extended by each member that joins meanwhile, so that members
  starting together land in one generation;
* the **generation** goes up by one, the first member to join (or the
  previous leader) is the group's **leader**, every member gets its
  JoinGroup answer and the group is ``CompletingRebalance``; the members
  send ``SyncGroup``, and when the leader's comes the assignment is made
  and handed to each (``Stable``, a ``rebalance_end`` row with the
  generation).  In Kafka the leader runs the assignor and sends the result
  with its SyncGroup; here the coordinator runs the leader's assignor for
  it when the leader's SyncGroup arrives -- the same function of the same
  inputs at the same moment, without carrying the table on the wire;
* **heartbeats** (``heartbeat.interval.ms``) keep a member's session alive;
  a member not heard from for its ``session.timeout.ms`` is **expired**
  (``expire``, ``session_timeout``) and the group rebalances.  A member
  waiting for its JoinGroup or SyncGroup answer is not expired (Kafka
  counts the pending request as a sign of life).  A member whose client
  found that it has not polled for ``max.poll.interval.ms`` leaves with
  that reason, recorded as ``expire`` / ``poll_timeout``;
* **offsets**: ``OffsetCommit`` from a member of the current generation is
  stored (the committed offset is the next offset to read); one from an
  unknown member or an old generation is refused (``unknown_member_id`` /
  ``illegal_generation``: the zombie's commit fails), and so is one while
  the group is ``CompletingRebalance`` (``rebalance_in_progress``).  A
  commit during ``PreparingRebalance`` with the current generation is
  accepted -- that is how a member commits before it rejoins.
  ``OffsetFetch`` answers the committed offsets (-1: none).

**Eager or cooperative** is the members' business, not the coordinator's
(KIP-429): with the eager protocol each member revokes everything before
it rejoins; with the cooperative one it keeps its partitions, reports them
as owned, and ``cooperative_sticky_assign`` withholds every partition that
moves, which its owner revokes and which is assigned in a follow-up
rebalance (reason ``follow_up``) -- see :mod:`simcomm.messaging.group_consumer`.

**Where the state lives.**  Group metadata and committed offsets are
records of ``__consumer_offsets`` in Kafka, replicated like any partition:
here they live in one :class:`GroupCoordinator` object per cluster, so they
survive the coordinator broker's crash.  When another broker becomes the
group's coordinator (the first request or timer that reaches it), or the
same broker comes back from a crash, it "loads" the group: every member's
session timer restarts from that moment, members whose first JoinGroup was
never answered are forgotten (only the old coordinator's memory had them),
and a join or sync phase that was in progress starts again (its held
requests died with the old process: a restarted broker resets them, and
members of a moved group see the move in the metadata; either way they
rejoin).  While the coordinator broker is down or hung, nobody expires.
Simplifications, said: an offset commit is stored as it arrives (Kafka
answers once its ``__consumer_offsets`` append is replicated); there is no
static membership (``group.instance.id``).

Every piece of the group logic is :class:`GroupState`, a pure state
machine that takes the simulated time as an argument and returns the
answers to send (tested without a World); :class:`GroupCoordinator` is the
thin glue that puts it on the coordinator broker.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.messages import Message
    from simcomm.messaging.cluster import LogBroker, LogCluster

__all__ = [
    "COMPLETING_REBALANCE", "EMPTY", "GROUP_ERRORS", "GROUP_STATES", "PREPARING_REBALANCE",
    "PROTOCOLS", "STABLE", "GroupCoordinator", "GroupMember", "GroupState",
    "HeartbeatRequest", "HeartbeatResponse", "JoinGroupRequest", "JoinGroupResponse",
    "LeaveGroupRequest", "LeaveGroupResponse", "OffsetCommitRequest", "OffsetCommitResponse",
    "OffsetFetchRequest", "OffsetFetchResponse", "SyncGroupRequest", "SyncGroupResponse",
]

TP = tuple[str, int]

# -- the group's states (Kafka's GroupState names) --------------------------
EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"
GROUP_STATES = (EMPTY, PREPARING_REBALANCE, COMPLETING_REBALANCE, STABLE)

#: the rebalance protocols (ConsumerPartitionAssignor.RebalanceProtocol)
PROTOCOLS = ("eager", "cooperative")

#: the error codes a coordinator answers with (Kafka's Errors, lower case)
GROUP_ERRORS = ("member_id_required", "unknown_member_id", "illegal_generation",
                "rebalance_in_progress", "not_coordinator", "inconsistent_group_protocol")


# -- the requests and their answers (Kafka's group APIs) --------------------
@dataclass(slots=True)
class JoinGroupRequest:
    """JoinGroup: ``member_id`` None for a member new to the group.

    ``owned`` are the partitions the member holds (cooperative) or held
    before it revoked them (eager: the sticky assignors' "user data");
    ``reason`` why it (re)joins (KIP-800): ``join`` or ``follow_up`` (a
    cooperative member that revoked partitions), ``rejoin`` otherwise.
    """

    group: str
    member_id: str | None
    client: str
    topics: tuple[str, ...]
    owned: tuple[TP, ...]
    assignor: str
    protocol: str
    session_timeout: float
    rebalance_timeout: float
    reason: str = "join"


@dataclass(slots=True)
class JoinGroupResponse:
    group: str
    error: str | None
    generation: int = -1
    member_id: str | None = None
    leader: str | None = None
    members: tuple[str, ...] = ()


@dataclass(slots=True)
class SyncGroupRequest:
    group: str
    member_id: str
    generation: int


@dataclass(slots=True)
class SyncGroupResponse:
    group: str
    error: str | None
    generation: int = -1
    assignment: tuple[TP, ...] = ()


@dataclass(slots=True)
class HeartbeatRequest:
    group: str
    member_id: str
    generation: int


@dataclass(slots=True)
class HeartbeatResponse:
    group: str
    error: str | None


@dataclass(slots=True)
class LeaveGroupRequest:
    """LeaveGroup; ``reason`` ``""`` for a clean leave, ``poll_timeout`` when the
    client's heartbeat thread found the poll loop silent for too long."""

    group: str
    member_id: str
    reason: str = ""


@dataclass(slots=True)
class LeaveGroupResponse:
    group: str
    error: str | None


@dataclass(slots=True)
class OffsetCommitRequest:
    group: str
    member_id: str
    generation: int
    offsets: dict[TP, int]


@dataclass(slots=True)
class OffsetCommitResponse:
    group: str
    error: str | None


@dataclass(slots=True)
class OffsetFetchRequest:
    group: str
    partitions: tuple[TP, ...]


@dataclass(slots=True)
class OffsetFetchResponse:
    group: str
    error: str | None
    offsets: dict[TP, int]


# -- the pure state machine --------------------------------------------------
class GroupMember:
    """What the coordinator knows of one member."""

    __slots__ = ("assignment", "assignor", "client", "deadline", "fresh", "join_token",
                 "member_id", "owned", "protocol", "rebalance_timeout", "session_timeout",
                 "sync_token", "topics")

    def __init__(self, member_id: str, req: JoinGroupRequest) -> None:
        self.member_id = member_id
        self.client = req.client
        self.topics = req.topics
        self.owned = req.owned
        self.assignor = req.assignor
        self.protocol = req.protocol
        self.session_timeout = req.session_timeout
        self.rebalance_timeout = req.rebalance_timeout
        self.deadline = 0.0
        #: the JoinGroup / SyncGroup request held for an answer (opaque to the state)
        self.join_token: Any = None
        self.sync_token: Any = None
        self.assignment: tuple[TP, ...] = ()
        #: not answered yet: only the coordinator's memory knows it (not persisted)
        self.fresh = True

    @property
    def awaiting(self) -> bool:
        """Waiting for a JoinGroup or SyncGroup answer: not expired meanwhile."""
        return self.join_token is not None or self.sync_token is not None


Reply = tuple[Any, Any]  # (token of the request to answer, the answer body)
Listener = Callable[[float, str, "str | None", str], None]


def _no_listener(time: float, event: str, member: str | None, detail: str) -> None:
    """The default listener: nothing is recorded."""


class GroupState:
    """The coordinator's state machine for one group (Kafka's classic protocol).

    Pure: no World, no network.  Each method takes the simulated time
    ``now`` and returns the answers to send as ``(token, response)`` pairs,
    where a token is whatever the caller passed with the request (the glue
    passes the request message).  :meth:`next_deadline` says when
    :meth:`tick` must run next (an expiry, the end of a join phase).

    ``partitions(topic)`` gives a topic's partition count (the cluster's
    metadata); ``assignors`` maps an assignor name to its function (default:
    :data:`simcomm.messaging.assignors.ASSIGNORS`).  ``listener(time, event,
    member_client, detail)`` hears ``join``, ``leave``, ``expire`` (with the
    member's client name) and ``rebalance_start`` / ``rebalance_end`` (member
    None), as the trace vocabulary names them.

        >>> state = GroupState("g", {"t": 2}.__getitem__, initial_rebalance_delay=0)
        >>> join = JoinGroupRequest("g", None, "c1", ("t",), (), "range", "eager", 45.0, 300.0)
        >>> [(token, r.error, r.member_id) for token, r in state.join(0.0, "j0", join)]
        [('j0', 'member_id_required', 'c1-1')]
        >>> join.member_id = "c1-1"
        >>> [(token, r.generation, r.member_id) for token, r in state.join(0.0, "j", join)]
        [('j', 1, 'c1-1')]
        >>> [r.assignment for _, r in state.sync(0.1, "s", SyncGroupRequest("g", "c1-1", 1))]
        [(('t', 0), ('t', 1))]
        >>> state.next_deadline(0.1)  # no heartbeat: expired a session later
        45.1
        >>> state.tick(45.1), state.state, state.generation
        ([], 'Empty', 2)
    """

    def __init__(self, group: str, partitions: Callable[[str], int], *,
                 initial_rebalance_delay: float = 3.0,
                 assignors: dict[str, Callable[..., dict[str, list[TP]]]] | None = None,
                 listener: Listener | None = None) -> None:
        self.group = group
        self.partitions = partitions
        self.initial_rebalance_delay = initial_rebalance_delay
        self._assignors = assignors
        self.listener: Listener = listener or _no_listener
        self.state = EMPTY
        self.generation = 0
        self.leader: str | None = None
        self.members: dict[str, GroupMember] = {}
        #: the committed offsets (next offset to read), the __consumer_offsets store
        self.offsets: dict[TP, int] = {}
        self.rebalances = 0
        self._ids = 0  # member-id counter
        self._pending: dict[str, float] = {}  # member ids handed out -> join by then
        self._why = ""
        self._initial_until = 0.0  # the join phase of an Empty group waits till then
        self._initial_cap = 0.0
        self._join_deadline = 0.0  # the rebalance timeout of the join phase

    # -- helpers -------------------------------------------------------------
    def _assign(self) -> dict[str, list[TP]]:
        assignors = self._assignors
        if assignors is None:
            from simcomm.messaging.assignors import ASSIGNORS
            assignors = ASSIGNORS
        leader = self.members.get(self.leader) if self.leader is not None else None
        ref = leader or next(iter(self.members.values()))
        name = ref.assignor
        if name == "cooperative-sticky" and ref.protocol == "eager":
            # CooperativeStickyAssignor under the EAGER protocol: every member
            # revoked everything, so the full sticky target is handed out at once
            name = "sticky"
        subscriptions = {mid: list(m.topics) for mid, m in self.members.items()}
        topics = sorted({t for m in self.members.values() for t in m.topics})
        counts = {t: self.partitions(t) for t in topics}
        current = {mid: list(m.owned) for mid, m in self.members.items()}
        return assignors[name](subscriptions, counts, current)

    def _prepare(self, now: float, why: str) -> list[Reply]:
        """Enter PreparingRebalance (a rebalance starts, unless one is on)."""
        replies: list[Reply] = []
        if self.state == PREPARING_REBALANCE:
            return replies
        if self.state == COMPLETING_REBALANCE:
            # the members waiting for their assignment must join again
            for m in self.members.values():
                if m.sync_token is not None:
                    replies.append((m.sync_token, SyncGroupResponse(
                        self.group, "rebalance_in_progress", self.generation)))
                    m.sync_token = None
        else:
            self.rebalances += 1
            self._why = why
            self.listener(now, "rebalance_start", None, why)
            if self.state == EMPTY:
                delay = min(self.initial_rebalance_delay, self._rebalance_timeout())
                self._initial_until = now + delay
                self._initial_cap = now + self._rebalance_timeout()
        self.state = PREPARING_REBALANCE
        self._join_deadline = now + self._rebalance_timeout()
        return replies

    def _rebalance_timeout(self) -> float:
        return max((m.rebalance_timeout for m in self.members.values()), default=0.0)

    def _maybe_complete_join(self, now: float) -> list[Reply]:
        if self.state != PREPARING_REBALANCE or now < self._initial_until:
            return []
        if any(m.join_token is None for m in self.members.values()):
            if now < self._join_deadline:
                return []
            for m in [m for m in self.members.values() if m.join_token is None]:
                # did not rejoin within the rebalance timeout (max.poll.interval.ms)
                del self.members[m.member_id]
                self.listener(now, "expire", m.client, "poll_timeout")
        self.generation += 1
        if not self.members:
            self.state = EMPTY
            self.leader = None
            self.listener(now, "rebalance_end", None, str(self.generation))
            return []
        self.state = COMPLETING_REBALANCE
        if self.leader not in self.members:
            self.leader = next(iter(self.members))
        ids = tuple(self.members)
        replies: list[Reply] = []
        for m in self.members.values():
            replies.append((m.join_token, JoinGroupResponse(
                self.group, None, self.generation, m.member_id, self.leader,
                ids if m.member_id == self.leader else ())))
            m.join_token = None
            m.fresh = False
            m.deadline = now + m.session_timeout
        return replies

    # -- the requests ------------------------------------------------------
    def join(self, now: float, token: Any, req: JoinGroupRequest) -> list[Reply]:
        """A JoinGroup request; the answer comes when the join phase ends.

        A member without a member id gets one at once with the error
        ``member_id_required`` (KIP-394) and must join again with it within a
        session timeout; only then is it a member (the ``join`` row).
        """
        mid = req.member_id
        others = [o for o in self.members.values() if o.member_id != mid]
        if others and (others[0].assignor != req.assignor
                       or others[0].protocol != req.protocol):
            return [(token, JoinGroupResponse(self.group, "inconsistent_group_protocol"))]
        if mid is None:
            self._ids += 1
            mid = f"{req.client}-{self._ids}"
            self._pending[mid] = now + req.session_timeout
            return [(token, JoinGroupResponse(self.group, "member_id_required",
                                              member_id=mid))]
        m = self.members.get(mid)
        if m is None:
            if self._pending.pop(mid, -1.0) < now:
                return [(token, JoinGroupResponse(self.group, "unknown_member_id"))]
            m = GroupMember(mid, req)
            self.members[mid] = m
            self.listener(now, "join", req.client, "")
            why = "join"
            if self.state == PREPARING_REBALANCE and now < self._initial_until:
                # a member joining an Empty group's first rebalance extends the wait
                self._initial_until = min(now + self.initial_rebalance_delay,
                                          self._initial_cap)
        else:
            m.topics, m.owned = req.topics, req.owned
            m.session_timeout, m.rebalance_timeout = req.session_timeout, req.rebalance_timeout
            why = req.reason or "join"
        m.join_token = token
        replies = self._prepare(now, why)
        return replies + self._maybe_complete_join(now)

    def sync(self, now: float, token: Any, req: SyncGroupRequest) -> list[Reply]:
        """A SyncGroup request: answered when the leader's comes (or at once)."""
        m = self.members.get(req.member_id)
        if m is None:
            return [(token, SyncGroupResponse(self.group, "unknown_member_id"))]
        if req.generation != self.generation:
            return [(token, SyncGroupResponse(self.group, "illegal_generation"))]
        if self.state == PREPARING_REBALANCE:
            return [(token, SyncGroupResponse(self.group, "rebalance_in_progress"))]
        m.deadline = now + m.session_timeout
        if self.state == STABLE:
            return [(token, SyncGroupResponse(self.group, None, self.generation, m.assignment))]
        m.sync_token = token
        if req.member_id != self.leader:
            return []
        assignment = self._assign()
        replies: list[Reply] = []
        for mid, member in self.members.items():
            member.assignment = tuple(assignment.get(mid, ()))
            member.owned = member.assignment
        self.state = STABLE
        self.listener(now, "rebalance_end", None, str(self.generation))
        for member in self.members.values():
            if member.sync_token is not None:
                replies.append((member.sync_token, SyncGroupResponse(
                    self.group, None, self.generation, member.assignment)))
                member.sync_token = None
                member.deadline = now + member.session_timeout
        return replies

    def heartbeat(self, now: float, req: HeartbeatRequest) -> str | None:
        """A heartbeat: None (fine), or the error that tells the member to act."""
        m = self.members.get(req.member_id)
        if m is None:
            return "unknown_member_id"
        if req.generation != self.generation:
            return "illegal_generation"
        m.deadline = now + m.session_timeout
        if self.state == PREPARING_REBALANCE:
            return "rebalance_in_progress"
        return None

    def leave(self, now: float, req: LeaveGroupRequest) -> tuple[str | None, list[Reply]]:
        """A LeaveGroup: the member is removed and the group rebalances."""
        m = self.members.pop(req.member_id, None)
        if m is None:
            return "unknown_member_id", []
        if req.reason == "poll_timeout":
            self.listener(now, "expire", m.client, "poll_timeout")
        else:
            self.listener(now, "leave", m.client, "")
        replies: list[Reply] = []
        if m.join_token is not None:
            replies.append((m.join_token, JoinGroupResponse(self.group, "unknown_member_id")))
        if m.sync_token is not None:
            replies.append((m.sync_token, SyncGroupResponse(self.group, "unknown_member_id")))
        replies += self._prepare(now, req.reason or "leave")
        return None, replies + self._maybe_complete_join(now)

    def commit(self, now: float, req: OffsetCommitRequest) -> str | None:
        """An OffsetCommit: None when stored, else the error (refused)."""
        m = self.members.get(req.member_id)
        if m is None:
            return "unknown_member_id"
        if req.generation != self.generation:
            return "illegal_generation"
        if self.state == COMPLETING_REBALANCE:
            return "rebalance_in_progress"
        self.offsets.update(req.offsets)
        m.deadline = max(m.deadline, now + m.session_timeout)
        return None

    def fetch_offsets(self, partitions: tuple[TP, ...]) -> dict[TP, int]:
        """OffsetFetch: the committed offset of each partition, -1 if none."""
        offsets = self.offsets
        return {tp: offsets.get(tp, -1) for tp in partitions}

    # -- time ----------------------------------------------------------------
    def tick(self, now: float) -> list[Reply]:
        """Expire the members whose session ran out; end a join phase whose time came."""
        expired = [m for m in self.members.values()
                   if m.deadline <= now and not m.awaiting]
        for mid in [mid for mid, t in self._pending.items() if t <= now]:
            del self._pending[mid]  # handed an id, never joined with it
        replies: list[Reply] = []
        for m in expired:
            del self.members[m.member_id]
            self.listener(now, "expire", m.client, "session_timeout")
        if expired:
            replies += self._prepare(now, "session_timeout")
        return replies + self._maybe_complete_join(now)

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`tick` has something to do next (None: nothing pending)."""
        times = [m.deadline for m in self.members.values() if not m.awaiting]
        if self.state == PREPARING_REBALANCE:
            times += [t for t in (self._initial_until, self._join_deadline) if t > now]
        return min(times) if times else None

    def moved(self, now: float) -> list[Any]:
        """Another broker took over as coordinator (it loaded the group).

        Requests held by the old coordinator died with it (their tokens are
        returned); members that joined and were never answered were only in
        its memory (Kafka persists a group's members with each generation):
        they are gone, and join again as new members; every session restarts
        now; a rebalance in progress starts its join phase again.
        """
        dropped = []
        self._pending.clear()
        for m in [m for m in self.members.values() if m.fresh]:
            del self.members[m.member_id]
            dropped += [t for t in (m.join_token, m.sync_token) if t is not None]
        for m in self.members.values():
            dropped += [t for t in (m.join_token, m.sync_token) if t is not None]
            m.join_token = None
            m.sync_token = None
            m.deadline = now + m.session_timeout
        if self.state in (PREPARING_REBALANCE, COMPLETING_REBALANCE):
            self.state = PREPARING_REBALANCE
            self._join_deadline = now + self._rebalance_timeout()
            self._initial_until = now
        return dropped


# -- the glue on the cluster ---------------------------------------------------
class _Hosted:
    """One group's state with where it lives and its timer."""

    __slots__ = ("broker", "stale", "state", "timer_at")

    def __init__(self, state: GroupState) -> None:
        self.state = state
        self.broker: LogBroker | None = None
        self.stale = False  # its broker died since: a restart loads the group afresh
        self.timer_at: float | None = None

    def load(self, broker: LogBroker, now: float) -> None:
        """``broker`` coordinates the group now: if another did before, or this
        one died meanwhile, it loads the group (GroupState.moved)."""
        if self.broker is not broker or self.stale:
            if self.broker is not None:
                dropped = self.state.moved(now)
                if self.broker is broker:
                    # the same broker restarted: the connections those requests
                    # came on were reset (their senders ask again)
                    for msg in dropped:
                        broker.reply(msg, None, "reset")
            self.broker = broker
            self.stale = False


_COORDINATORS: weakref.WeakKeyDictionary[Any, GroupCoordinator] = weakref.WeakKeyDictionary()


class GroupCoordinator:
    """The group coordinators of one :class:`LogCluster` (see the module docstring).

    Registered on the cluster (``cluster.on_request``) for the group
    requests; the broker a request reaches answers it only if it is the
    group's coordinator now (``cluster.coordinator_for(group)``), else
    ``not_coordinator``.  One per cluster: :meth:`of` finds it or makes it
    with the defaults, so a :class:`GroupConsumer` needs no set-up; make it
    yourself first to choose ``initial_rebalance_delay``
    (``group.initial.rebalance.delay.ms``, default 3 s; 0 in tests that want
    the first generation at once).

    Timers, not processes: one pending timer per group at most, at the
    earliest member's session deadline or the end of the join phase.
    """

    def __init__(self, cluster: LogCluster, *, initial_rebalance_delay: float = 3.0) -> None:
        delay = as_real(initial_rebalance_delay)
        if delay is None or not 0 <= delay < float("inf"):
            raise ParamError("initial_rebalance_delay", initial_rebalance_delay,
                             "seconds >= 0 (finite): group.initial.rebalance.delay.ms")
        if cluster in _COORDINATORS:
            raise ParamError("cluster", cluster, "a cluster without a GroupCoordinator yet "
                                                 "(use GroupCoordinator.of(cluster))")
        self.cluster = cluster
        self.world = cluster.world
        self.env = cluster.world.env
        self.initial_rebalance_delay = float(delay)
        self.groups: dict[str, _Hosted] = {}
        #: per group: the assignor and protocol its consumers were built with
        self.configs: dict[str, tuple[str, str]] = {}
        #: per consumer service (group): its processed-ids table, if one was asked for
        self.tables: dict[str, Any] = {}
        self._rows = self.world.trace.records.append if self.world.trace.enabled else None
        _COORDINATORS[cluster] = self
        for body_type, handler in (
                (JoinGroupRequest, self._on_join), (SyncGroupRequest, self._on_sync),
                (HeartbeatRequest, self._on_heartbeat), (LeaveGroupRequest, self._on_leave),
                (OffsetCommitRequest, self._on_commit), (OffsetFetchRequest, self._on_fetch)):
            cluster.on_request(body_type, handler)

    @classmethod
    def of(cls, cluster: LogCluster) -> GroupCoordinator:
        """The cluster's group coordinator, made with the defaults if there is none."""
        found = _COORDINATORS.get(cluster)
        return found if found is not None else cls(cluster)

    # -- the groups ------------------------------------------------------------
    def group(self, group: str) -> GroupState:
        """The state of ``group`` (made empty on first use)."""
        return self._hosted(group).state

    def committed(self, group: str, topic: str, partition: int) -> int | None:
        """The committed offset of a partition for ``group`` (None: none)."""
        hosted = self.groups.get(group)
        if hosted is None:
            return None
        return hosted.state.offsets.get((topic, partition))

    def _hosted(self, group: str) -> _Hosted:
        hosted = self.groups.get(group)
        if hosted is None:
            def listener(time: float, event: str, member: str | None, detail: str) -> None:
                self._row(hosted, time, event, member, detail)  # type: ignore[arg-type]

            state = GroupState(group, self.cluster.partitions,
                               initial_rebalance_delay=self.initial_rebalance_delay,
                               listener=listener)
            hosted = self.groups[group] = _Hosted(state)
        return hosted

    def _row(self, hosted: _Hosted, time: float, event: str, member: str | None,
             detail: str) -> None:
        if self._rows is not None:
            node = member if member is not None else (
                hosted.broker.name if hosted.broker is not None else "")
            self._rows((time, event, -1, hosted.state.group, -1, -1, None, node, detail))

    def _take(self, broker: LogBroker, msg: Message) -> _Hosted | None:
        """The group of ``msg`` if ``broker`` coordinates it (else answered
        ``not_coordinator``); a broker taking over loads the group."""
        group = msg.body.group
        hosted = self._hosted(group)
        if self.cluster.coordinator_for(group) is not broker:
            self._answer(broker, msg, "not_coordinator")
            return None
        hosted.load(broker, self.env.now)
        return hosted

    @staticmethod
    def _answer(broker: LogBroker, msg: Message, error: str) -> None:
        body = msg.body
        group = body.group
        if type(body) is JoinGroupRequest:
            broker.reply(msg, JoinGroupResponse(group, error))
        elif type(body) is SyncGroupRequest:
            broker.reply(msg, SyncGroupResponse(group, error))
        elif type(body) is HeartbeatRequest:
            broker.reply(msg, HeartbeatResponse(group, error))
        elif type(body) is LeaveGroupRequest:
            broker.reply(msg, LeaveGroupResponse(group, error))
        elif type(body) is OffsetCommitRequest:
            broker.reply(msg, OffsetCommitResponse(group, error))
        else:
            broker.reply(msg, OffsetFetchResponse(group, error, {}))

    def _send(self, hosted: _Hosted, replies: list[Reply]) -> None:
        broker = hosted.broker
        if broker is None or not broker.up:
            return
        for msg, body in replies:
            broker.reply(msg, body)

    def _arm(self, hosted: _Hosted) -> None:
        """Make sure a timer fires at the group's next deadline."""
        when = hosted.state.next_deadline(self.env.now)
        if when is None or (hosted.timer_at is not None and hosted.timer_at <= when):
            return
        hosted.timer_at = when
        self.env.timeout(max(0.0, when - self.env.now)).callbacks.append(
            lambda _ev: self._fire(hosted, when))

    def _fire(self, hosted: _Hosted, when: float) -> None:
        if hosted.timer_at != when:
            return  # an earlier timer took over
        hosted.timer_at = None
        now = self.env.now
        broker = self.cluster.coordinator_for(hosted.state.group)
        if not broker.up or broker.hung:
            # no coordinator is running: nobody expires; look again in a second
            later = hosted.timer_at = now + 1.0
            self.env.timeout(1.0).callbacks.append(lambda _ev: self._fire(hosted, later))
            if hosted.broker is not None and not hosted.broker.up:
                hosted.stale = True
            return
        hosted.load(broker, now)
        self._send(hosted, hosted.state.tick(now))
        self._arm(hosted)

    # -- the request handlers (called by the coordinator broker) -------------
    def _on_join(self, broker: LogBroker, msg: Message) -> None:
        hosted = self._take(broker, msg)
        if hosted is not None:
            self._send(hosted, hosted.state.join(self.env.now, msg, msg.body))
            self._arm(hosted)

    def _on_sync(self, broker: LogBroker, msg: Message) -> None:
        hosted = self._take(broker, msg)
        if hosted is not None:
            self._send(hosted, hosted.state.sync(self.env.now, msg, msg.body))
            self._arm(hosted)

    def _on_heartbeat(self, broker: LogBroker, msg: Message) -> None:
        hosted = self._take(broker, msg)
        if hosted is not None:
            error = hosted.state.heartbeat(self.env.now, msg.body)
            broker.reply(msg, HeartbeatResponse(hosted.state.group, error))

    def _on_leave(self, broker: LogBroker, msg: Message) -> None:
        hosted = self._take(broker, msg)
        if hosted is not None:
            error, replies = hosted.state.leave(self.env.now, msg.body)
            broker.reply(msg, LeaveGroupResponse(hosted.state.group, error))
            self._send(hosted, replies)
            self._arm(hosted)

    def _on_commit(self, broker: LogBroker, msg: Message) -> None:
        hosted = self._take(broker, msg)
        if hosted is not None:
            error = hosted.state.commit(self.env.now, msg.body)
            broker.reply(msg, OffsetCommitResponse(hosted.state.group, error))

    def _on_fetch(self, broker: LogBroker, msg: Message) -> None:
        hosted = self._take(broker, msg)
        if hosted is not None:
            req = msg.body
            broker.reply(msg, OffsetFetchResponse(hosted.state.group, None,
                                                  hosted.state.fetch_offsets(req.partitions)))
