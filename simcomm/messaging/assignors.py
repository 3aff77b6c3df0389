"""Kafka's partition assignors as pure functions: who in a consumer group reads which partition.

A consumer group shares the partitions of its topics: each partition is read
by exactly one member, so records of one key (one partition) are processed
in order, one at a time (*Microservices Patterns* §3.3.4, sharded channels).
When members join or leave, the group coordinator asks an *assignor* for a
new assignment.  These are Kafka's client-side assignors
(``partition.assignment.strategy``), following the Java client's code
(``org.apache.kafka.clients.consumer.*Assignor``) and REFERENCE §3:

* :func:`range_assign` -- ``RangeAssignor``: per topic, a contiguous range
  of partitions to each subscribed member in member-id order;
* :func:`round_robin_assign` -- ``RoundRobinAssignor``: every partition of
  every topic, sorted, dealt to the members in turn, skipping members not
  subscribed to the partition's topic;
* :func:`sticky_assign` -- ``StickyAssignor`` (``AbstractStickyAssignor``):
  balanced (member counts differ by at most one when subscriptions allow)
  while keeping as many current assignments as possible;
* :func:`cooperative_sticky_assign` -- ``CooperativeStickyAssignor``
  (KIP-429): the sticky assignment staged over two rebalances, so no
  partition is ever owned by two members at once.

Each takes ``subscriptions`` (member id -> subscribed topics), ``partitions``
(topic -> number of partitions) and optionally ``current`` (member id -> the
partitions it owns now), and returns member id -> sorted list of
``(topic, partition)`` for EVERY member of ``subscriptions`` (an idle member
gets ``[]``).  A subscribed topic missing from ``partitions`` is skipped
(Kafka: "skipping assignment for topic ... since no metadata is available").
Range and round robin ignore ``current`` (they are not sticky); every bad
argument is a :class:`~simcomm.errors.ParamError`.

    >>> subs = {"C0": ["t0", "t1"], "C1": ["t0", "t1"]}
    >>> range_assign(subs, {"t0": 3, "t1": 3})
    {'C0': [('t0', 0), ('t0', 1), ('t1', 0), ('t1', 1)], 'C1': [('t0', 2), ('t1', 2)]}
    >>> round_robin_assign(subs, {"t0": 3, "t1": 3})
    {'C0': [('t0', 0), ('t0', 2), ('t1', 1)], 'C1': [('t0', 1), ('t1', 0), ('t1', 2)]}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from simcomm._checks import is_whole
from simcomm.errors import ParamError

__all__ = [
    "ASSIGNORS", "Assignor", "TopicPartition", "cooperative_sticky_assign", "moved_partitions",
    "range_assign", "round_robin_assign", "sticky_assign",
]

#: a partition of a topic, as Kafka's ``TopicPartition``
TopicPartition = tuple[str, int]

Subscriptions = Mapping[str, Iterable[str]]
Partitions = Mapping[str, int]
Current = Mapping[str, Iterable[TopicPartition]]
Assignment = dict[str, list[TopicPartition]]
#: the signature every assignor shares
Assignor = Callable[..., Assignment]


# -- arguments -----------------------------------------------------------------------


def _check_subscriptions(subscriptions: object) -> dict[str, frozenset[str]]:
    if not isinstance(subscriptions, Mapping):
        raise ParamError("subscriptions", subscriptions,
                         "a dict of member id (str) -> list of subscribed topics (str)")
    subs: dict[str, frozenset[str]] = {}
    for member, topics in subscriptions.items():
        if not isinstance(member, str):
            raise ParamError("subscriptions", member, "member ids that are strings")
        if isinstance(topics, (str, bytes)) or not isinstance(topics, Iterable):
            raise ParamError(f"subscriptions[{member!r}]", topics,
                             "a list of topic names (strings), not a single string")
        topic_set = frozenset(topics)
        for topic in topic_set:
            if not isinstance(topic, str):
                raise ParamError(f"subscriptions[{member!r}]", topic,
                                 "topic names that are strings")
        subs[member] = topic_set
    return subs


def _check_partitions(partitions: object) -> dict[str, int]:
    if not isinstance(partitions, Mapping):
        raise ParamError("partitions", partitions,
                         "a dict of topic (str) -> number of partitions (int >= 1)")
    counts: dict[str, int] = {}
    for topic, count in partitions.items():
        if not isinstance(topic, str):
            raise ParamError("partitions", topic, "topic names that are strings")
        if not is_whole(count) or count < 1:
            raise ParamError(f"partitions[{topic!r}]", count,
                             "the number of partitions of the topic (a whole number >= 1)")
        counts[topic] = int(count)
    return counts


def _check_current(current: object) -> dict[str, list[TopicPartition]]:
    if current is None:
        return {}
    if not isinstance(current, Mapping):
        raise ParamError("current", current,
                         "None, or a dict of member id -> list of (topic, partition) it owns")
    owned: dict[str, list[TopicPartition]] = {}
    for member, tps in current.items():
        if not isinstance(member, str):
            raise ParamError("current", member, "member ids that are strings")
        if isinstance(tps, (str, bytes)) or not isinstance(tps, Iterable):
            raise ParamError(f"current[{member!r}]", tps, "a list of (topic, partition) pairs")
        pairs: list[TopicPartition] = []
        for tp in tps:
            if (not isinstance(tp, tuple) or len(tp) != 2 or not isinstance(tp[0], str)
                    or not is_whole(tp[1]) or tp[1] < 0):
                raise ParamError(f"current[{member!r}]", tp,
                                 "(topic, partition) pairs: a str and a whole number >= 0")
            pairs.append((tp[0], int(tp[1])))
        owned[member] = pairs
    return owned


def _check(subscriptions: object, partitions: object, current: object = None
           ) -> tuple[dict[str, frozenset[str]], dict[str, int], dict[str, list[TopicPartition]]]:
    return (_check_subscriptions(subscriptions), _check_partitions(partitions),
            _check_current(current))


def _subscribed_topics(subs: dict[str, frozenset[str]], counts: dict[str, int]) -> list[str]:
    """The topics some member subscribes to and that exist, sorted (Kafka's partitionsPerTopic)."""
    return sorted({t for topics in subs.values() for t in topics if t in counts})


def _sorted(assignment: dict[str, list[TopicPartition]]) -> Assignment:
    return {member: sorted(tps) for member, tps in assignment.items()}


# -- range and round robin -----------------------------------------------------------


def range_assign(subscriptions: Subscriptions, partitions: Partitions,
                 current: Current | None = None) -> Assignment:
    """Kafka's ``RangeAssignor`` (the default before Kafka 3.0's list, still first in it).

    Per topic: its partitions in order, its subscribers sorted by member id;
    with ``n = P // C`` and ``extra = P % C``, member ``i`` gets ``n + (1 if
    i < extra else 0)`` partitions starting at ``n*i + min(i, extra)``.  The
    first members get the extra partition of EVERY topic, so with many
    topics range is unbalanced -- but partition ``p`` of co-partitioned
    topics lands on one member (joins by key).  ``current`` is ignored.

        >>> range_assign({"C0": ["t"], "C1": ["t"], "C2": ["t"]}, {"t": 4})["C0"]
        [('t', 0), ('t', 1)]
    """
    subs, counts, _ = _check(subscriptions, partitions, current)
    assignment: dict[str, list[TopicPartition]] = {m: [] for m in subs}
    for topic in _subscribed_topics(subs, counts):
        members = sorted(m for m, topics in subs.items() if topic in topics)
        n, extra = divmod(counts[topic], len(members))
        for i, member in enumerate(members):
            start = n * i + min(i, extra)
            length = n + (1 if i < extra else 0)
            assignment[member].extend((topic, p) for p in range(start, start + length))
    return _sorted(assignment)


def round_robin_assign(subscriptions: Subscriptions, partitions: Partitions,
                       current: Current | None = None) -> Assignment:
    """Kafka's ``RoundRobinAssignor``.

    All partitions of all subscribed topics sorted by (topic, partition),
    dealt to the members sorted by id in turn, skipping a member not
    subscribed to the partition's topic (Kafka's ``CircularIterator``).
    With identical subscriptions the counts differ by at most one; with
    different ones it can be unbalanced.  ``current`` is ignored: a member
    leaving reshuffles almost everything (compare :func:`sticky_assign`).
    """
    subs, counts, _ = _check(subscriptions, partitions, current)
    assignment: dict[str, list[TopicPartition]] = {m: [] for m in subs}
    members = sorted(subs)
    i = 0
    for topic in _subscribed_topics(subs, counts):
        for p in range(counts[topic]):
            while topic not in subs[members[i]]:
                i = (i + 1) % len(members)
            assignment[members[i]].append((topic, p))
            i = (i + 1) % len(members)
    return _sorted(assignment)


# -- sticky --------------------------------------------------------------------------


class _PartitionMovements:
    """Kafka's ``PartitionMovements``: which partition moved from whom to whom.

    During one rebalance it keeps, per topic, the moves between each pair
    of members, so that moving a partition of a topic from A to B first
    undoes an earlier B -> A move of the same topic instead of adding a
    second one (stickiness: no partition swaps between two members).
    """

    __slots__ = ("by_topic", "moves")

    def __init__(self) -> None:
        self.moves: dict[TopicPartition, tuple[str, str]] = {}
        self.by_topic: dict[str, dict[tuple[str, str], set[TopicPartition]]] = {}

    def _remove(self, tp: TopicPartition) -> tuple[str, str]:
        pair = self.moves.pop(tp)
        topic_moves = self.by_topic[tp[0]]
        topic_moves[pair].discard(tp)
        if not topic_moves[pair]:
            del topic_moves[pair]
        if not topic_moves:
            del self.by_topic[tp[0]]
        return pair

    def _add(self, tp: TopicPartition, pair: tuple[str, str]) -> None:
        self.moves[tp] = pair
        self.by_topic.setdefault(tp[0], {}).setdefault(pair, set()).add(tp)

    def move(self, tp: TopicPartition, old: str, new: str) -> None:
        if tp in self.moves:
            src, _ = self._remove(tp)
            if src != new:  # not moving back to where it started
                self._add(tp, (src, new))
        else:
            self._add(tp, (old, new))

    def to_be_moved(self, tp: TopicPartition, old: str, new: str) -> TopicPartition:
        """The partition to move from ``old`` to ``new`` in place of ``tp``.

        Kafka's ``getTheActualPartitionToBeMoved``; where Kafka takes any
        element of a hash set, this takes the smallest, to be deterministic.
        """
        topic_moves = self.by_topic.get(tp[0])
        if topic_moves is None:
            return tp
        if tp in self.moves:
            old = self.moves[tp][0]
        reverse = topic_moves.get((new, old))
        return min(reverse) if reverse else tp


class _GeneralAssignment:
    """Kafka's general sticky algorithm (``StickyAssignor`` / ``AbstractStickyAssignor``), no racks.

    Step for step kafka-python's ``StickyAssignmentExecutor`` (a port of the
    Java client's general algorithm), with one generation: keep what each
    member owns and still reads; list the partitions in the order Kafka
    considers them; give each unowned one to the least loaded subscriber;
    then move partitions from the most to the least loaded member until
    balanced, keeping the result only if it is more balanced.
    """

    def __init__(self, subs: dict[str, frozenset[str]], counts: dict[str, int],
                 current: dict[str, list[TopicPartition]]) -> None:
        topics = _subscribed_topics(subs, counts)
        self.counts = {t: counts[t] for t in topics}
        members = sorted(subs)
        self.topic_members = {t: [m for m in members if t in subs[m]] for t in topics}
        self.member_topics = {m: [t for t in topics if t in subs[m]] for m in members}
        self.max_size = {m: sum(self.counts[t] for t in self.member_topics[m]) for m in members}
        self.assignment: dict[str, list[TopicPartition]] = {m: [] for m in members}
        self.owner: dict[TopicPartition, str] = {}
        self.revocation_required = False
        self.movements = _PartitionMovements()
        self.active = set(members)

        claims = {m: list(dict.fromkeys(current.get(m, ()))) for m in members}
        fresh = not any(claims.values())
        claimed: dict[TopicPartition, int] = {}
        for tps in claims.values():
            for tp in tps:
                claimed[tp] = claimed.get(tp, 0) + 1
        self.doubly = {tp for tp, n in claimed.items() if n > 1}
        # the partitions that still exist and one member alone claims, in its order
        valid = {m: [tp for tp in tps if tp[0] in self.counts and tp[1] < self.counts[tp[0]]
                     and tp not in self.doubly] for m, tps in claims.items()}
        self.owned = valid

        # the order partitions are considered in: topics with fewer potential
        # members first (then by name), partitions in order ...
        by_topic = sorted(topics, key=lambda t: (len(self.topic_members[t]), t))
        order = [(t, p) for t in by_topic for p in range(self.counts[t])]
        if not fresh and len({subs[m] & frozenset(self.counts) for m in members}) == 1:
            # ... but when everyone reads the same topics, first one partition of
            # the most loaded member at a time, its last listed first: those are
            # the ones to move if balance needs it (the rest keep their owners)
            live = {m: list(tps) for m, tps in valid.items()}
            picked: list[TopicPartition] = []
            left = set(members)
            while left:
                m = max(left, key=lambda m: (len(live[m]), m))
                if live[m]:
                    picked.append(live[m].pop())
                else:
                    left.discard(m)
            seen = set(picked)
            order = picked + [tp for tp in order if tp not in seen]
        self.all_partitions = order

        for m, tps in valid.items():  # keep what each member owns and still reads
            for tp in tps:
                if tp[0] in subs[m]:
                    self.assignment[m].append(tp)
                    self.owner[tp] = m
                else:  # it stopped reading that topic: the partition must go
                    self.revocation_required = True

    def _least_loaded(self, topic: str) -> str:
        """The least loaded member (by count, then id) reading ``topic``.

        The first such member of Kafka's ``sortedCurrentSubscriptions``.
        """
        assignment = self.assignment
        return min((m for m in self.topic_members[topic] if m in self.active),
                   key=lambda m: (len(assignment[m]), m))

    def _give(self, tp: TopicPartition, member: str) -> None:
        self.assignment[member].append(tp)
        self.owner[tp] = member

    def build(self) -> Assignment:
        unassigned = [tp for tp in self.all_partitions if tp not in self.owner]
        if not self.assignment:
            return {}
        assignment = self.assignment
        initializing = not any(assignment.values())
        for tp in unassigned:  # maybeAssign: each to the least loaded subscriber
            self._give(tp, self._least_loaded(tp[0]))

        # only partitions with two or more potential members can move
        fixed_topics = {t for t, ms in self.topic_members.items() if len(ms) < 2}
        reassignable = [tp for tp in self.all_partitions if tp[0] not in fixed_topics]
        unassigned = [tp for tp in unassigned if tp[0] not in fixed_topics]
        # ... and only members that could gain or lose one take part
        fixed: dict[str, list[TopicPartition]] = {}
        for m in list(assignment):
            if not self._can_participate(m, fixed_topics):
                fixed[m] = assignment.pop(m)
                self.active.discard(m)

        before = {m: list(tps) for m, tps in assignment.items()}
        before_owner = dict(self.owner)
        if not self.revocation_required:  # first try moving only the newly assigned ones
            self._reassign(unassigned)
        performed = self._reassign(reassignable)
        if (not initializing and performed
                and _balance_score(assignment) >= _balance_score(before)):
            assignment.clear()
            assignment.update(before)
            self.owner = before_owner
        assignment.update(fixed)
        return _sorted(assignment)

    def _can_participate(self, member: str, fixed_topics: set[str]) -> bool:
        tps = self.assignment[member]
        if len(tps) < self.max_size[member]:
            return True
        return any(tp[0] not in fixed_topics for tp in tps)

    def _is_balanced(self) -> bool:
        """Kafka's ``isBalanced``: counts within one, or no partition may go to a poorer member."""
        assignment = self.assignment
        sizes = [len(tps) for tps in assignment.values()]
        if not sizes or min(sizes) >= max(sizes) - 1:
            return True
        owner = self.owner
        for m, tps in assignment.items():
            n = len(tps)
            if n == self.max_size[m]:
                continue
            mine = set(tps)
            for topic in self.member_topics[m]:
                for p in range(self.counts[topic]):
                    tp = (topic, p)
                    if tp not in mine and n + 1 < len(assignment[owner[tp]]):
                        return False
        return True

    def _reassign(self, partitions: list[TopicPartition]) -> bool:
        """Kafka's ``performReassignments``: move partitions to poorer members until balanced."""
        assignment = self.assignment
        performed = False
        while True:
            modified = False
            for tp in partitions:
                if self._is_balanced():
                    break
                member = self.owner[tp]
                n = len(assignment[member])
                if any(n > len(assignment[other]) + 1 for other in self.topic_members[tp[0]]):
                    self._reassign_partition(tp, self._least_loaded(tp[0]))
                    performed = modified = True
            if not modified:
                return performed

    def _reassign_partition(self, tp: TopicPartition, new: str) -> None:
        member = self.owner[tp]
        to_move = self.movements.to_be_moved(tp, member, new)
        holder = self.owner[to_move]
        if holder != member:
            # tp came to member from holder earlier in this rebalance and to_move
            # went from new to holder: undo both moves (kafka-python's fix of
            # Kafka's loop, which would otherwise leave member overloaded)
            self._move(tp, holder)
        self._move(to_move, new)

    def _move(self, tp: TopicPartition, new: str) -> None:
        old = self.owner[tp]
        self.movements.move(tp, old, new)
        self.assignment[old].remove(tp)
        self._give(tp, new)


def _balance_score(assignment: Mapping[str, list[TopicPartition]]) -> int:
    """Kafka's ``getBalanceScore``: the sum over member pairs of their count difference."""
    sizes = sorted(len(tps) for tps in assignment.values())
    # sum_{i<j} (s_j - s_i) over sorted sizes
    return sum(s * (2 * i - len(sizes) + 1) for i, s in enumerate(sizes))


def sticky_assign(subscriptions: Subscriptions, partitions: Partitions,
                  current: Current | None = None) -> Assignment:
    """Kafka's ``StickyAssignor`` (``AbstractStickyAssignor``, KIP-54): balanced, then sticky.

    Two goals, the first taking precedence (REFERENCE §3):

    1. balance -- member counts differ by at most one, or no member with two
       fewer partitions than another could take one of its partitions
       (subscriptions may forbid it);
    2. stickiness -- keep as many current assignments as possible: a member
       keeps what it owns, the partitions of departed members (and new
       ones) go to the least loaded subscribers, and partitions move only
       to restore balance, each at most once and never back and forth.

    With ``current=None`` it deals like round robin.  This is Kafka's
    *general* sticky algorithm (keep owned; assign the rest to the least
    loaded member -- by count, then id; move partitions from the most to
    the least loaded until balanced, each at most once; keep the result
    only if it is more balanced), the one the StickyAssignor's
    documentation examples describe, as kafka-python's
    ``StickyPartitionAssignor`` runs it (the Java client's before 2.7; the
    tests hold simcomm to kafka-python exactly).  When every member reads
    the same topics, the partitions considered for a move first are the
    last listed ones of the most loaded members, so a member that must give
    some up keeps the first of its list.  Differences from the Java client
    of today: no rack awareness and no generations (``current`` is one
    generation: a partition two members claim is dropped from both, as Java
    does within a generation); where Java takes any element of a hash set,
    a move picks the smallest partition; and since 2.7 (KAFKA-9987), when
    ALL members subscribe to the same topics, Java takes a faster
    "constrained" path that keeps as many owned partitions but may deal the
    freed ones to other members than the documented example shows.

        >>> subs = {"C0": ["t0", "t1", "t2", "t3"], "C2": ["t0", "t1", "t2", "t3"]}
        >>> sticky_assign(subs, {"t0": 2, "t1": 2, "t2": 2, "t3": 2},
        ...               current={"C0": [("t0", 0), ("t1", 1), ("t3", 0)],
        ...                        "C1": [("t0", 1), ("t2", 0), ("t3", 1)],
        ...                        "C2": [("t1", 0), ("t2", 1)]})["C0"]
        [('t0', 0), ('t1', 1), ('t2', 0), ('t3', 0)]
    """
    subs, counts, cur = _check(subscriptions, partitions, current)
    return _GeneralAssignment(subs, counts, cur).build()


def cooperative_sticky_assign(subscriptions: Subscriptions, partitions: Partitions,
                              current: Current | None = None) -> Assignment:
    """Kafka's ``CooperativeStickyAssignor`` (KIP-429): THIS round's assignment.

    The target is :func:`sticky_assign`'s; a partition the target gives to a
    member other than the one that owns it now (in ``current``, a member
    still in the group) is left out of this round: its owner sees it missing
    from its assignment and revokes it, and the coordinator runs a second
    rebalance right away (the consumer rejoins), in which nobody owns it and
    it goes to its new member.  Members keep consuming everything that does
    not move in between -- no stop-the-world pause, and no partition owned
    by two members at once.  A partition two members claim is assigned to
    neither this round.  With ``current=None`` (or nothing owned) it equals
    :func:`sticky_assign`.
    """
    subs, counts, cur = _check(subscriptions, partitions, current)
    builder = _GeneralAssignment(subs, counts, cur)
    target = builder.build()
    owner = {tp: m for m, tps in builder.owned.items() for tp in tps}
    doubly = builder.doubly
    return {m: [tp for tp in tps if owner.get(tp, m) == m and tp not in doubly]
            for m, tps in target.items()}


def moved_partitions(current: Current | None, target: Current) -> set[TopicPartition]:
    """The partitions ``target`` gives to another member than the one owning them in ``current``.

    The partitions a rebalance moves: each is revoked from one member and
    assigned to another (its records in flight there may be processed
    twice, its order is broken at the hand-over).  A partition owned by a
    member absent from ``target`` (it left) counts as moved when ``target``
    assigns it; newly assigned partitions nobody owned do not.

        >>> moved_partitions({"A": [("t", 0), ("t", 1)]}, {"A": [("t", 0)], "B": [("t", 1)]})
        {('t', 1)}
    """
    cur = _check_current(current)
    tgt = _check_current(target)
    owner = {tp: m for m, tps in cur.items() for tp in tps}
    return {tp for m, tps in tgt.items() for tp in tps if tp in owner and owner[tp] != m}


#: the assignors by Kafka's ``partition.assignment.strategy`` names
ASSIGNORS: dict[str, Assignor] = {
    "range": range_assign,
    "roundrobin": round_robin_assign,
    "sticky": sticky_assign,
    "cooperative-sticky": cooperative_sticky_assign,
}
