"""Kafka's partition assignors: range, round robin, sticky, cooperative-sticky.

REFERENCE §3 holds the worked examples (from the assignors' own
documentation); kafka-python's assignors are the oracle for the rest: range
and round robin exactly, sticky and cooperative-sticky exactly too (they run
Kafka's general sticky algorithm, as simcomm does).  Properties: every
subscribed partition is assigned exactly once and only to a subscriber;
balance within one; sticky keeps the most a balanced assignment can keep (so
at least as many as round robin); cooperative moves a partition in two
rounds, never giving it to a member while another still owns it.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.errors import ParamError
from simcomm.messaging import (
    ASSIGNORS,
    cooperative_sticky_assign,
    moved_partitions,
    range_assign,
    round_robin_assign,
    sticky_assign,
)

with warnings.catch_warnings():  # kafka-python reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import (
        StickyAssignmentExecutor,
        StickyAssignorMemberMetadataV1,
    )
    from kafka.structs import TopicPartition as KafkaTP

T4 = {"t0": 2, "t1": 2, "t2": 2, "t3": 2}
ALL4 = ["t0", "t1", "t2", "t3"]


def tps(text: str) -> list[tuple[str, int]]:
    """'t0p0 t1p1' -> [('t0', 0), ('t1', 1)], sorted, as the assignors return them."""
    out = []
    for word in text.split():
        topic, p = word.split("p")
        out.append((topic, int(p)))
    return sorted(out)


# -- kafka-python as the oracle --------------------------------------------------------


class OracleCluster:
    """The slice of kafka-python's ClusterMetadata its assignors read.

    Only the subscribed topics, as the Java client's partitionsPerTopic.
    """

    def __init__(self, subscriptions: dict[str, list[str]], partitions: dict[str, int]) -> None:
        wanted = {t for ts in subscriptions.values() for t in ts}
        self.parts = {t: n for t, n in partitions.items() if t in wanted}

    def topics(self) -> set[str]:
        return set(self.parts)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.parts[topic])) if topic in self.parts else None


def _flatten(assignment) -> list[tuple[str, int]]:
    return sorted((tp.topic, tp.partition) for tp in assignment.partitions())


def oracle_eager(assignor, subscriptions, partitions):
    members = [SimpleNamespace(member_id=m, group_instance_id=None,
                               metadata=SimpleNamespace(topics=list(ts)))
               for m, ts in subscriptions.items()]
    result = assignor.assign(OracleCluster(subscriptions, partitions), members)
    return {m: _flatten(a) for m, a in result.items()}


def oracle_sticky(subscriptions, partitions, current):
    members = {m: StickyAssignorMemberMetadataV1(
        subscription=list(ts), generation=1 if current.get(m) else -1,
        partitions=[KafkaTP(t, p) for t, p in current.get(m, [])])
        for m, ts in subscriptions.items()}
    executor = StickyAssignmentExecutor(OracleCluster(subscriptions, partitions), members)
    executor.perform_initial_assignment()
    executor.balance()
    return {m: sorted((t, p) for t, ps in executor.get_final_assignment(m) for p in ps)
            for m in subscriptions}


def oracle_cooperative(subscriptions, partitions, current):
    def owned(m):
        by_topic: dict[str, list[int]] = {}
        for t, p in current.get(m, []):
            by_topic.setdefault(t, []).append(p)
        return [SimpleNamespace(topic=t, partitions=ps) for t, ps in by_topic.items()]

    members = [SimpleNamespace(member_id=m, group_instance_id=None, metadata=SimpleNamespace(
        topics=list(ts), owned_partitions=owned(m), generation_id=1))
        for m, ts in subscriptions.items()]
    result = CooperativeStickyAssignor().assign(OracleCluster(subscriptions, partitions), members)
    return {m: _flatten(a) for m, a in result.items()}


# -- strategies ---------------------------------------------------------------------------

TOPICS = ["t0", "t1", "t2", "t3"]
# string order is not number order: consumer-10 sorts before consumer-2
MEMBERS = [f"consumer-{i}" for i in range(1, 12)]


@st.composite
def groups(draw, same: bool | None = None):
    """(subscriptions, partitions): topics sorted in every list (kafka-python compares lists)."""
    topics = sorted(draw(st.lists(st.sampled_from(TOPICS), min_size=1, max_size=4, unique=True)))
    partitions = {t: draw(st.integers(min_value=1, max_value=8)) for t in topics}
    if draw(st.booleans()):  # a topic nobody subscribes to is ignored
        partitions["unread"] = draw(st.integers(min_value=1, max_value=4))
    members = draw(st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=6, unique=True))
    if same is None:
        same = draw(st.booleans())
    subscriptions = {
        m: topics if same else sorted(draw(st.lists(st.sampled_from(topics), min_size=1,
                                                    unique=True)))
        for m in members}
    return subscriptions, partitions


@st.composite
def changes(draw, subscriptions, same: bool):
    """The next subscriptions: a member leaves, one joins, or one changes its topics."""
    topics = sorted({t for ts in subscriptions.values() for t in ts})
    subs = dict(subscriptions)
    kind = draw(st.sampled_from(["leave", "join", "resubscribe"]))
    free = [m for m in MEMBERS if m not in subs]
    if kind == "leave" and len(subs) > 1:
        del subs[draw(st.sampled_from(sorted(subs)))]
    elif kind == "join" and free:
        subs[draw(st.sampled_from(free))] = topics if same else sorted(
            draw(st.lists(st.sampled_from(topics), min_size=1, unique=True)))
    elif not same:
        subs[draw(st.sampled_from(sorted(subs)))] = sorted(
            draw(st.lists(st.sampled_from(topics), min_size=1, unique=True)))
    return subs


def subscribed(subscriptions, partitions) -> set[tuple[str, int]]:
    topics = {t for ts in subscriptions.values() for t in ts}
    return {(t, p) for t in topics if t in partitions for p in range(partitions[t])}


def check_valid(assignment, subscriptions, partitions) -> None:
    """Every member a key, lists sorted, each subscribed partition once, only to a subscriber."""
    assert set(assignment) == set(subscriptions)
    seen = [tp for m in assignment for tp in assignment[m]]
    assert len(seen) == len(set(seen))
    assert set(seen) == subscribed(subscriptions, partitions)
    for m, owned in assignment.items():
        assert owned == sorted(owned)
        assert all(t in subscriptions[m] for t, _ in owned)


def kept(before, after) -> int:
    """How many partitions stay with the member that owned them."""
    owner = {tp: m for m, owned in before.items() for tp in owned}
    return sum(1 for m, owned in after.items() for tp in owned if owner.get(tp) == m)


def spread(assignment) -> int:
    sizes = [len(v) for v in assignment.values()]
    return max(sizes) - min(sizes)


# -- REFERENCE §3 examples -------------------------------------------------------------------


def test_range_reference_example() -> None:
    """C0, C1 on t0, t1 of 3 partitions: C0 t0p0 t0p1 t1p0 t1p1; C1 t0p2 t1p2."""
    result = range_assign({"C0": ["t0", "t1"], "C1": ["t0", "t1"]}, {"t0": 3, "t1": 3})
    assert result == {"C0": tps("t0p0 t0p1 t1p0 t1p1"), "C1": tps("t0p2 t1p2")}


def test_range_formula_first_members_take_the_extra() -> None:
    """n = P div C, extra = P mod C: 3 members over 8 partitions get 3, 3, 2 contiguous ones."""
    result = range_assign({"C2": ["t"], "C0": ["t"], "C1": ["t"]}, {"t": 8})
    assert result == {"C0": tps("tp0 tp1 tp2"), "C1": tps("tp3 tp4 tp5"), "C2": tps("tp6 tp7")}


def test_round_robin_reference_example() -> None:
    """Same input, round robin: C0 t0p0 t0p2 t1p1; C1 t0p1 t1p0 t1p2."""
    result = round_robin_assign({"C0": ["t0", "t1"], "C1": ["t0", "t1"]}, {"t0": 3, "t1": 3})
    assert result == {"C0": tps("t0p0 t0p2 t1p1"), "C1": tps("t0p1 t1p0 t1p2")}


def test_round_robin_skips_members_not_subscribed() -> None:
    """Kafka's docs: C0 on t0; C1 on t0, t1; C2 on t0, t1, t2 -> C2 gets four (unbalanced)."""
    subs = {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}
    result = round_robin_assign(subs, {"t0": 1, "t1": 2, "t2": 3})
    assert result == {"C0": tps("t0p0"), "C1": tps("t1p0"), "C2": tps("t1p1 t2p0 t2p1 t2p2")}


def test_sticky_reference_example_and_c1_leaves() -> None:
    """Three members, t0..t3 of 2: like round robin; C1 leaves: sticky keeps all five others."""
    subs = {m: ALL4 for m in ("C0", "C1", "C2")}
    first = sticky_assign(subs, T4)
    assert first == {"C0": tps("t0p0 t1p1 t3p0"), "C1": tps("t0p1 t2p0 t3p1"),
                     "C2": tps("t1p0 t2p1")}
    del subs["C1"]
    after = sticky_assign(subs, T4, current=first)
    assert after == {"C0": tps("t0p0 t1p1 t3p0 t2p0"), "C2": tps("t1p0 t2p1 t0p1 t3p1")}
    # round robin would reshuffle
    assert round_robin_assign(subs, T4) == {"C0": tps("t0p0 t1p0 t2p0 t3p0"),
                                           "C2": tps("t0p1 t1p1 t2p1 t3p1")}
    assert kept(first, after) == 5 > kept(first, round_robin_assign(subs, T4))


def test_sticky_documentation_example_2_unequal_subscriptions() -> None:
    """Kafka's StickyAssignor docs, example 2: balanced where round robin is not; C0 leaves."""
    subs = {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}
    counts = {"t0": 1, "t1": 2, "t2": 3}
    first = sticky_assign(subs, counts)
    assert first == {"C0": tps("t0p0"), "C1": tps("t1p0 t1p1"), "C2": tps("t2p0 t2p1 t2p2")}
    rr_first = round_robin_assign(subs, counts)
    del subs["C0"]
    after = sticky_assign(subs, counts, current=first)
    assert after == {"C1": tps("t1p0 t1p1 t0p0"), "C2": tps("t2p0 t2p1 t2p2")}
    rr_after = round_robin_assign(subs, counts)
    assert rr_after == {"C1": tps("t0p0 t1p1"), "C2": tps("t1p0 t2p0 t2p1 t2p2")}
    assert kept(first, after) == 5  # round robin keeps 3 of its own
    assert kept(rr_first, rr_after) == 3


def test_cooperative_reference_example_c1_leaves_moves_nothing_owned() -> None:
    """C1's partitions are nobody's once it left: cooperative assigns them in one round."""
    subs = {m: ALL4 for m in ("C0", "C1", "C2")}
    first = cooperative_sticky_assign(subs, T4)
    assert first == sticky_assign(subs, T4)
    del subs["C1"]
    assert cooperative_sticky_assign(subs, T4, first) == sticky_assign(subs, T4, first)


def test_cooperative_join_takes_two_rounds() -> None:
    """C3 joins: round 1 revokes the partitions that move (nobody gets them), round 2 assigns them.

    Kafka (KIP-429): the owner keeps consuming what stays, revokes only what
    moves; the new member gets it in the follow-up rebalance.
    """
    subs = {m: ALL4 for m in ("C0", "C1")}
    owned = sticky_assign(subs, T4)
    subs["C3"] = ALL4
    target = sticky_assign(subs, T4, owned)
    moving = moved_partitions(owned, target)
    assert moving and all(tp in target["C3"] for tp in moving)
    round1 = cooperative_sticky_assign(subs, T4, owned)
    assert round1["C3"] == []  # every partition C3 will get is still someone's
    for m in ("C0", "C1"):
        assert round1[m] == sorted(set(owned[m]) - moving)
    round2 = cooperative_sticky_assign(subs, T4, round1)
    assert round2 == target
    assert moved_partitions(round1, round2) == set()


def test_moved_partitions() -> None:
    """Owned before by another member than in the target; new ones and kept ones are not moved."""
    before = {"A": [("t", 0), ("t", 1)], "B": [("t", 2)], "gone": [("t", 3)]}
    after = {"A": [("t", 0)], "B": [("t", 1), ("t", 2)], "C": [("t", 3), ("t", 4)]}
    assert moved_partitions(before, after) == {("t", 1), ("t", 3)}
    assert moved_partitions(None, after) == set()


def test_assignors_by_kafka_name() -> None:
    """partition.assignment.strategy names."""
    expected = {"range": range_assign, "roundrobin": round_robin_assign,
                "sticky": sticky_assign, "cooperative-sticky": cooperative_sticky_assign}
    assert expected == ASSIGNORS


# -- properties ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_partition_once_and_only_to_subscribers(name: str, data) -> None:
    """Each subscribed partition goes to exactly one subscribed member; every member a key."""
    assign = ASSIGNORS[name]
    subs, counts = data.draw(groups())
    first = assign(subs, counts)
    check_valid(first, subs, counts)
    later = data.draw(changes(subs, same=False))
    second = assign(later, counts, first)
    if name == "cooperative-sticky":  # this round leaves the moving partitions out
        full = sticky_assign(later, counts, first)
        staying = {m: v for m, v in first.items() if m in later}  # a leaver owns nothing
        moving = moved_partitions(staying, full)
        assert {tp for v in second.values() for tp in v} == (
            {tp for v in full.values() for tp in v} - moving)
    else:
        check_valid(second, later, counts)


@pytest.mark.parametrize("name", ["roundrobin", "sticky"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_balance_within_one_with_equal_subscriptions(name: str, data) -> None:
    """Same topics for everyone: counts differ by at most one, also after joins and leaves."""
    assign = ASSIGNORS[name]
    subs, counts = data.draw(groups(same=True))
    current = assign(subs, counts)
    assert spread(current) <= 1
    for _ in range(3):
        subs = data.draw(changes(subs, same=True))
        current = assign(subs, counts, current)
        assert spread(current) <= 1


def test_range_is_unbalanced_over_many_topics() -> None:
    """Range gives the first member the extra partition of every topic."""
    result = range_assign({"C0": ALL4, "C1": ALL4, "C2": ALL4}, T4)
    assert [len(result[m]) for m in ("C0", "C1", "C2")] == [4, 4, 0]


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_sticky_keeps_the_most_a_balanced_assignment_can(data) -> None:
    """Equal subscriptions, a member joins or leaves: sticky keeps min(owned, quota) of each.

    The most any balanced assignment keeps -- so at least as many as round
    robin from the same starting point.
    """
    subs, counts = data.draw(groups(same=True))
    current = sticky_assign(subs, counts)
    for _ in range(3):
        later = data.draw(changes(subs, same=True))
        after = sticky_assign(later, counts, current)
        total = sum(len(v) for v in after.values())
        lo, extra = divmod(total, len(later))
        owned = sorted((len(current.get(m, [])) for m in later), reverse=True)
        best = sum(min(n, lo + 1 if i < extra else lo) for i, n in enumerate(owned))
        assert kept(current, after) == best
        assert kept(current, after) >= kept(current, round_robin_assign(later, counts))
        subs, current = later, after


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_cooperative_never_gives_an_owned_partition_away_in_one_round(data) -> None:
    """No member is assigned a partition another member still owns; rounds converge to sticky."""
    subs, counts = data.draw(groups())
    owned = cooperative_sticky_assign(subs, counts)
    assert owned == sticky_assign(subs, counts)
    for _ in range(2):
        subs = data.draw(changes(subs, same=False))
        owned = {m: v for m, v in owned.items() if m in subs}  # the leavers own nothing
        target = sticky_assign(subs, counts, owned)
        rounds = 0
        while True:
            rounds += 1
            nxt = cooperative_sticky_assign(subs, counts, owned)
            holder = {tp: m for m, v in owned.items() for tp in v}
            for m, v in nxt.items():
                assert all(holder.get(tp, m) == m for tp in v)
            if nxt == sticky_assign(subs, counts, owned):
                break
            assert rounds < 4
            owned = nxt
        if moved_partitions(owned, target):
            assert rounds >= 2
        owned = nxt


# -- kafka-python agrees -----------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(groups())
def test_range_matches_kafka_python(group) -> None:
    """kafka-python's RangePartitionAssignor, same answers."""
    subs, counts = group
    assert range_assign(subs, counts) == oracle_eager(RangePartitionAssignor, subs, counts)


@settings(max_examples=60, deadline=None)
@given(groups(same=True))
def test_round_robin_matches_kafka_python(group) -> None:
    """kafka-python's RoundRobinPartitionAssignor, same answers.

    Equal subscriptions only: kafka-python's loop that skips an unsubscribed
    member looks the member up by a (instance id, member id) tuple and raises
    KeyError (the skipping rule is held by the Kafka docs' example above).
    """
    subs, counts = group
    assert round_robin_assign(subs, counts) == oracle_eager(RoundRobinPartitionAssignor,
                                                            subs, counts)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_sticky_matches_kafka_python_over_a_history(data) -> None:
    """kafka-python's StickyAssignmentExecutor (Kafka's general algorithm), at each rebalance."""
    same = data.draw(st.booleans())
    subs, counts = data.draw(groups(same=same))
    current: dict[str, list[tuple[str, int]]] = {}
    for _ in range(4):
        result = sticky_assign(subs, counts, current)
        assert result == oracle_sticky(subs, counts, current)
        current = result
        subs = data.draw(changes(subs, same=same))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_cooperative_matches_kafka_python(data) -> None:
    """kafka-python's CooperativeStickyAssignor: the same first-round assignment."""
    subs, counts = data.draw(groups())
    current = sticky_assign(subs, counts)
    for _ in range(3):
        subs = data.draw(changes(subs, same=False))
        current = {m: v for m, v in current.items() if m in subs}
        result = cooperative_sticky_assign(subs, counts, current)
        assert result == oracle_cooperative(subs, counts, current)
        current = result


# -- inputs ------------------------------------------------------------------------------------


def test_unknown_topics_and_stale_partitions_are_skipped() -> None:
    """A subscribed topic without metadata gets nothing; owned partitions gone are dropped."""
    subs = {"A": ["t", "ghost"], "B": ["t"]}
    for name, assign in ASSIGNORS.items():
        result = assign(subs, {"t": 2}, {"A": [("t", 0), ("t", 9), ("ghost", 0)]})
        assert sorted(tp for v in result.values() for tp in v) == [("t", 0), ("t", 1)], name


def test_partition_claimed_twice_goes_to_neither_in_a_cooperative_round() -> None:
    """Two members claiming one partition in one generation: Kafka invalidates both claims."""
    subs = {"A": ["t"], "B": ["t"]}
    current = {"A": [("t", 0), ("t", 1)], "B": [("t", 1)]}
    sticky = sticky_assign(subs, {"t": 2}, current)
    check_valid(sticky, subs, {"t": 2})
    coop = cooperative_sticky_assign(subs, {"t": 2}, current)
    assert ("t", 1) not in {tp for v in coop.values() for tp in v}


def test_idle_members_get_empty_lists_and_numpy_counts_work() -> None:
    """More members than partitions: the rest idle, each still a key; numpy counts accepted."""
    subs = {f"m{i}": ["t"] for i in range(5)}
    for assign in ASSIGNORS.values():
        result = assign(subs, {"t": np.int64(3)})
        assert set(result) == set(subs)
        assert sorted(len(v) for v in result.values()) == [0, 0, 1, 1, 1]
    assert sticky_assign({}, {"t": 3}) == {}


@pytest.mark.parametrize(("args", "field"), [
    (([("A", ["t"])], {"t": 1}), "subscriptions"),
    (({1: ["t"]}, {"t": 1}), "subscriptions"),
    (({"A": "t"}, {"t": 1}), "subscriptions"),
    (({"A": [3]}, {"t": 1}), "subscriptions"),
    (({"A": ["t"]}, [("t", 1)]), "partitions"),
    (({"A": ["t"]}, {"t": 0}), "partitions"),
    (({"A": ["t"]}, {"t": 1.0}), "partitions"),
    (({"A": ["t"]}, {"t": True}), "partitions"),
    (({"A": ["t"]}, {"t": 1}, [("t", 0)]), "current"),
    (({"A": ["t"]}, {"t": 1}, {"A": [("t", -1)]}), "current"),
    (({"A": ["t"]}, {"t": 1}, {"A": ["t0"]}), "current"),
    (({"A": ["t"]}, {"t": 1}, {"A": [("t", 0.0)]}), "current"),
])
@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_bad_arguments_are_param_errors(name: str, args: tuple, field: str) -> None:
    """Every bad argument is a ParamError naming its field."""
    with pytest.raises(ParamError, match=field):
        ASSIGNORS[name](*args)
