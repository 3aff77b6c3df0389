"""The group coordinator: Kafka's classic group protocol as a pure state machine, then on a cluster.

Rules (Kafka's GroupCoordinator, REFERENCE §3): a join moves the group to
PreparingRebalance; the join phase ends when every member has rejoined or
the rebalance timeout (max.poll.interval.ms) runs out, removing the late
ones; an Empty group waits group.initial.rebalance.delay.ms first; then the
generation goes up and the leader's SyncGroup hands out the assignment.
Heartbeats keep a session; a member silent for session.timeout.ms is
expired, except while it waits for a JoinGroup/SyncGroup answer.  Commits
from an unknown member or an old generation are refused; one during
CompletingRebalance too.
"""

from __future__ import annotations

import pytest

from simcomm.engine import Crash, World, install
from simcomm.errors import ParamError
from simcomm.messaging.cluster import LogCluster
from simcomm.messaging.group import (
    COMPLETING_REBALANCE,
    EMPTY,
    PREPARING_REBALANCE,
    STABLE,
    GroupCoordinator,
    GroupState,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    OffsetCommitRequest,
    SyncGroupRequest,
)

# -- helpers -------------------------------------------------------------------------


def make(partitions: dict[str, int] | None = None, delay: float = 1.0
         ) -> tuple[GroupState, list[tuple]]:
    counts = partitions or {"t0": 3, "t1": 3}
    log: list[tuple] = []
    state = GroupState("g", counts.__getitem__, initial_rebalance_delay=delay,
                       listener=lambda *row: log.append(row))
    return state, log


def join_req(client: str, member_id: str | None = None, *, topics=("t0", "t1"), owned=(),
             assignor: str = "range", protocol: str = "eager", session: float = 45.0,
             rebalance: float = 300.0, reason: str = "join") -> JoinGroupRequest:
    return JoinGroupRequest("g", member_id, client, tuple(topics), tuple(owned), assignor,
                            protocol, session, rebalance, reason)


def enter(state: GroupState, now: float, token: str, client: str, **kw) -> list[tuple]:
    """A new member's two JoinGroups (KIP-394): the first gets it a member id."""
    first = state.join(now, "id-" + token, join_req(client, **kw))
    (_, reply), = first
    assert reply.error == "member_id_required" and reply.member_id
    return state.join(now, token, join_req(client, reply.member_id, **kw))


def answers(replies: list[tuple]) -> dict:
    """Replies by token."""
    return dict(replies)


def form(state: GroupState, clients: list[str], now: float = 0.0, **kw) -> dict[str, str]:
    """Join ``clients`` at ``now`` and sync them all once the initial delay is
    over: a Stable group; client -> member id."""
    replies = []
    for c in clients:
        replies += enter(state, now, c, c, **kw)
    now += state.initial_rebalance_delay
    replies += state.tick(now)
    got = answers(replies)
    ids = {c: got[c].member_id for c in clients}
    leader = state.leader
    for c in clients:
        if ids[c] != leader:
            state.sync(now, "s-" + c, SyncGroupRequest("g", ids[c], state.generation))
    for c in clients:
        if ids[c] == leader:
            state.sync(now, "s-" + c, SyncGroupRequest("g", ids[c], state.generation))
    assert state.state == STABLE
    return ids


# -- the join phase ------------------------------------------------------------------


def test_a_new_member_first_gets_its_member_id_then_joins_with_it():
    """KIP-394 (MEMBER_ID_REQUIRED): the id comes at once; membership with the second join."""
    state, log = make()
    (token, reply), = state.join(0.0, "j0", join_req("A"))
    assert token == "j0" and reply.error == "member_id_required" and reply.member_id
    assert not state.members and not log and state.state == EMPTY
    assert state.join(1.0, "j1", join_req("A", reply.member_id)) == []
    assert set(state.members) == {reply.member_id} and log[0] == (1.0, "join", "A", "")
    # an id never handed out, or handed out and left unused for a session, is refused
    (_, stranger), = state.join(1.0, "x", join_req("B", "B-99"))
    assert stranger.error == "unknown_member_id"
    (_, late), = state.join(1.0, "y", join_req("C", session=5.0))
    state.tick(6.5)
    (_, refused), = state.join(7.0, "z", join_req("C", late.member_id, session=5.0))
    assert refused.error == "unknown_member_id"


def test_an_empty_group_waits_the_initial_rebalance_delay_and_each_new_member_extends_it():
    """group.initial.rebalance.delay.ms: members starting together share one generation."""
    state, log = make(delay=3.0)
    assert enter(state, 0.0, "a", "A") == []
    assert state.state == PREPARING_REBALANCE
    assert state.next_deadline(0.0) == 3.0
    assert enter(state, 2.0, "b", "B") == []
    assert state.tick(3.0) == []  # extended to 2 + 3 = 5
    replies = answers(state.tick(5.0))
    assert set(replies) == {"a", "b"}
    assert {r.generation for r in replies.values()} == {1}
    assert state.state == COMPLETING_REBALANCE
    assert [row[1] for row in log] == ["join", "rebalance_start", "join"]


def test_the_join_phase_ends_when_every_member_has_rejoined():
    state, log = make()
    ids = form(state, ["A", "B"])
    log.clear()
    # a third member joins: a rebalance starts, nobody is answered until A and B rejoin
    assert enter(state, 10.0, "c", "C") == []
    assert state.state == PREPARING_REBALANCE
    assert state.join(11.0, "a", join_req("A", ids["A"], reason="rejoin")) == []
    replies = answers(state.join(12.0, "b", join_req("B", ids["B"], reason="rejoin")))
    assert set(replies) == {"a", "b", "c"}
    assert state.generation == 2
    # the leader stays the leader, and only it hears of the members
    assert replies["a"].leader == ids["A"] and len(replies["a"].members) == 3
    assert replies["b"].members == ()
    assert log[:2] == [(10.0, "join", "C", ""), (10.0, "rebalance_start", None, "join")]


def test_the_rebalance_timeout_removes_members_that_did_not_rejoin():
    """max.poll.interval.ms is the rebalance timeout: late members are expired (poll_timeout)."""
    state, log = make()
    ids = form(state, ["A", "B"], rebalance=60.0)
    enter(state, 10.0, "c", "C", rebalance=60.0)
    state.join(11.0, "a", join_req("A", ids["A"], rebalance=60.0))
    for t in (30.0, 60.0):  # B's heartbeats go on: it is alive, just not polling
        assert state.heartbeat(t, HeartbeatRequest("g", ids["B"], 1)) == "rebalance_in_progress"
    assert state.next_deadline(60.0) == 70.0
    assert state.tick(69.0) == []
    replies = answers(state.tick(70.0))
    assert set(replies) == {"a", "c"}
    assert ids["B"] not in state.members
    assert (70.0, "expire", "B", "poll_timeout") in log


def test_followers_wait_for_the_leaders_sync_and_get_the_assignors_answer():
    """REFERENCE §3's range example: C0 t0p0 t0p1 t1p0 t1p1, C1 t0p2 t1p2."""
    state, log = make()
    enter(state, 0.0, "a", "C0")
    enter(state, 0.0, "b", "C1")
    replies = answers(state.tick(0.1))
    assert replies == {} and state.state == PREPARING_REBALANCE
    replies = answers(state.tick(1.0))
    leader = replies["a"].leader
    a, b = replies["a"].member_id, replies["b"].member_id
    follower = b if leader == a else a
    assert state.sync(1.1, "sf", SyncGroupRequest("g", follower, 1)) == []
    got = answers(state.sync(1.2, "sl", SyncGroupRequest("g", leader, 1)))
    assert state.state == STABLE
    by_member = {state.members[leader].client: got["sl"].assignment,
                 state.members[follower].client: got["sf"].assignment}
    assert by_member == {"C0": (("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)),
                         "C1": (("t0", 2), ("t1", 2))}
    assert log[-1] == (1.2, "rebalance_end", None, "1")
    # a late sync in the Stable group is answered at once
    again = answers(state.sync(1.3, "late", SyncGroupRequest("g", follower, 1)))
    assert again["late"].assignment == got["sf"].assignment


def test_a_sync_from_an_old_generation_or_a_stranger_is_refused():
    state, _ = make()
    ids = form(state, ["A"])
    assert answers(state.sync(1.0, "x", SyncGroupRequest("g", ids["A"], 0)))["x"].error \
        == "illegal_generation"
    assert answers(state.sync(1.0, "y", SyncGroupRequest("g", "nobody", 1)))["y"].error \
        == "unknown_member_id"


def test_members_must_agree_on_the_assignor():
    state, _ = make()
    form(state, ["A"])
    reply = answers(state.join(1.0, "b", join_req("B", assignor="roundrobin")))
    assert reply["b"].error == "inconsistent_group_protocol"


# -- heartbeats and sessions ------------------------------------------------------------


def test_heartbeat_answers_follow_the_groups_state():
    state, _ = make()
    ids = form(state, ["A", "B"])
    gen = state.generation
    assert state.heartbeat(1.0, HeartbeatRequest("g", ids["A"], gen)) is None
    assert state.heartbeat(1.0, HeartbeatRequest("g", ids["A"], gen - 1)) \
        == "illegal_generation"
    assert state.heartbeat(1.0, HeartbeatRequest("g", "ghost", gen)) == "unknown_member_id"
    enter(state, 2.0, "c", "C")
    assert state.heartbeat(2.5, HeartbeatRequest("g", ids["B"], gen)) == "rebalance_in_progress"


def test_a_silent_member_expires_session_timeout_after_its_last_heartbeat():
    state, log = make()
    ids = form(state, ["A", "B"], session=10.0)
    for t in (3.0, 6.0, 9.0):
        state.heartbeat(t, HeartbeatRequest("g", ids["A"], 1))
        state.heartbeat(t, HeartbeatRequest("g", ids["B"], 1))
    state.heartbeat(12.0, HeartbeatRequest("g", ids["A"], 1))  # B falls silent after 9
    assert state.next_deadline(12.0) == 19.0
    assert state.tick(18.999) == []
    state.tick(19.0)
    assert ids["B"] not in state.members and ids["A"] in state.members
    assert (19.0, "expire", "B", "session_timeout") in log
    assert (19.0, "rebalance_start", None, "session_timeout") in log
    assert state.state == PREPARING_REBALANCE


def test_a_member_waiting_for_its_join_answer_does_not_expire():
    """Kafka counts a pending JoinGroup as a sign of life."""
    state, _ = make()
    ids = form(state, ["A", "B"], session=10.0)
    state.join(1.0, "a2", join_req("A", ids["A"], session=10.0, reason="rejoin"))
    state.heartbeat(5.0, HeartbeatRequest("g", ids["B"], 1))
    state.tick(15.0)  # B expired; A waits for its answer and is kept
    assert ids["A"] in state.members and ids["B"] not in state.members
    assert state.generation == 2  # A alone completes the join phase at once


def test_leave_rebalances_at_once_and_a_poll_timeout_leave_is_an_expiry():
    state, log = make()
    ids = form(state, ["A", "B", "C"])
    err, _ = state.leave(5.0, LeaveGroupRequest("g", ids["B"]))
    assert err is None
    assert (5.0, "leave", "B", "") in log and (5.0, "rebalance_start", None, "leave") in log
    state.join(5.5, "a", join_req("A", ids["A"]))
    state.join(5.5, "c", join_req("C", ids["C"]))
    err, _ = state.leave(6.0, LeaveGroupRequest("g", ids["C"], "poll_timeout"))
    assert (6.0, "expire", "C", "poll_timeout") in log
    assert state.leave(7.0, LeaveGroupRequest("g", ids["C"]))[0] == "unknown_member_id"


def test_the_last_member_leaving_empties_the_group():
    state, log = make()
    ids = form(state, ["A"])
    state.leave(3.0, LeaveGroupRequest("g", ids["A"]))
    assert state.state == EMPTY and not state.members
    assert log[-1] == (3.0, "rebalance_end", None, "2")


# -- offsets ---------------------------------------------------------------------------


def test_commits_are_refused_from_strangers_old_generations_and_during_sync():
    state, _ = make()
    ids = form(state, ["A", "B"])
    ok = OffsetCommitRequest("g", ids["A"], 1, {("t0", 0): 7})
    assert state.commit(1.0, ok) is None
    assert state.fetch_offsets((("t0", 0), ("t0", 1))) == {("t0", 0): 7, ("t0", 1): -1}
    assert state.commit(1.0, OffsetCommitRequest("g", ids["A"], 0, {("t0", 0): 9})) \
        == "illegal_generation"
    assert state.commit(1.0, OffsetCommitRequest("g", "zombie", 1, {("t0", 0): 9})) \
        == "unknown_member_id"
    # PreparingRebalance: a commit of the current generation is how a member
    # commits before it rejoins -- accepted
    enter(state, 2.0, "c", "C")
    assert state.commit(2.5, OffsetCommitRequest("g", ids["B"], 1, {("t0", 2): 4})) is None
    state.join(3.0, "a", join_req("A", ids["A"]))
    state.join(3.0, "b", join_req("B", ids["B"]))
    assert state.state == COMPLETING_REBALANCE
    assert state.commit(3.5, OffsetCommitRequest("g", ids["A"], 2, {("t0", 0): 9})) \
        == "rebalance_in_progress"
    assert state.offsets == {("t0", 0): 7, ("t0", 2): 4}


# -- cooperative ---------------------------------------------------------------------------


def test_cooperative_sticky_withholds_a_moving_partition_until_the_follow_up():
    """KIP-429: round 1 gives the newcomer nothing its owner still holds."""
    state, log = make({"t": 4})
    ids = form(state, ["A"], topics=("t",), assignor="cooperative-sticky",
               protocol="cooperative")
    owned = state.members[ids["A"]].assignment
    assert len(owned) == 4
    enter(state, 5.0, "b", "B", topics=("t",), assignor="cooperative-sticky",
                                  protocol="cooperative")
    replies = answers(state.join(5.5, "a", join_req(
        "A", ids["A"], topics=("t",), owned=owned, assignor="cooperative-sticky",
        protocol="cooperative", reason="rejoin")))
    b = replies["b"].member_id
    got = answers(state.sync(6.0, "sb", SyncGroupRequest("g", b, 2))
                  + state.sync(6.0, "sa", SyncGroupRequest("g", ids["A"], 2)))
    assert got["sb"].assignment == ()  # the moving partitions are not B's yet
    kept = got["sa"].assignment
    assert len(kept) == 2
    # A revoked two and rejoins: the follow-up round gives them to B
    state.join(6.5, "a2", join_req("A", ids["A"], topics=("t",), owned=kept,
                                   assignor="cooperative-sticky", protocol="cooperative",
                                   reason="follow_up"))
    state.join(6.5, "b2", join_req("B", b, topics=("t",), assignor="cooperative-sticky",
                                   protocol="cooperative", reason="rejoin"))
    got = answers(state.sync(7.0, "sb", SyncGroupRequest("g", b, 3))
                  + state.sync(7.0, "sa", SyncGroupRequest("g", ids["A"], 3)))
    assert got["sa"].assignment == kept
    assert len(got["sb"].assignment) == 2
    assert not set(got["sb"].assignment) & set(kept)
    assert (6.5, "rebalance_start", None, "follow_up") in log


# -- moving coordinators -------------------------------------------------------------------


def test_a_new_coordinator_restarts_every_session_and_the_join_phase():
    state, _ = make()
    ids = form(state, ["A", "B"], session=10.0)
    enter(state, 5.0, "c", "C", session=10.0)
    state.moved(8.0)
    assert state.state == PREPARING_REBALANCE
    assert all(m.join_token is None for m in state.members.values())
    assert state.next_deadline(8.0) == 18.0
    assert ids["A"] in state.members


def test_a_new_coordinator_forgets_members_that_were_never_answered():
    """Kafka persists a group's members with each generation: a member whose first
    join was still pending lived only in the old coordinator's memory."""
    state, _ = make()
    ids = form(state, ["A"])
    enter(state, 5.0, "c", "C")
    dropped = state.moved(6.0)
    assert dropped == ["c"]
    assert set(state.members) == {ids["A"]}


# -- on a cluster -----------------------------------------------------------------------


def test_the_coordinator_is_one_per_cluster_and_checks_its_arguments():
    world = World()
    cluster = LogCluster(world)
    with pytest.raises(ParamError, match="initial_rebalance_delay"):
        GroupCoordinator(cluster, initial_rebalance_delay=-1)
    with pytest.raises(ParamError, match="initial_rebalance_delay"):
        GroupCoordinator(cluster, initial_rebalance_delay=True)
    coordinator = GroupCoordinator(cluster, initial_rebalance_delay=0)
    assert GroupCoordinator.of(cluster) is coordinator
    with pytest.raises(ParamError, match="cluster"):
        GroupCoordinator(cluster)
    other = LogCluster(World())
    assert GroupCoordinator.of(other) is not coordinator


def test_committed_offsets_survive_the_coordinator_brokers_crash():
    """The __consumer_offsets store is replicated: a new coordinator has the offsets."""
    from simcomm.messaging.group_consumer import GroupConsumer
    from simcomm.messaging.log_producer import LogProducer

    world = World(seed=3)
    cluster = LogCluster(world, brokers=3, failover_after=9.0)
    cluster.create_topic("t", 3)
    coordinator = GroupCoordinator(cluster, initial_rebalance_delay=0.0)
    producer = LogProducer(world, "producer", cluster, "t")

    def feed():
        for i in range(400):
            yield world.env.timeout(0.1)
            producer.send(f"k{i % 7}", i)

    world.env.process(feed())
    members = [GroupConsumer(world, f"m{i}", cluster, "g", "t", commit="after",
                             auto_offset_reset="earliest") for i in range(2)]
    home = cluster.coordinator_for("g")
    install(world, [Crash(home.name, at=10.0, duration=30.0)])
    world.run(until=60.0)
    assert cluster.coordinator_for("g") is not home
    rows = world.trace.records
    applied = {r[2] for r in rows if r[1] == "apply"}
    acked = {r[2] for r in rows if r[1] == "ack"}
    assert acked <= applied  # nothing lost, though the coordinator moved
    before = [r for r in rows if r[1] == "commit" and r[0] < 10.0]
    assert before and all(
        coordinator.committed("g", r[3], r[4]) >= r[5] for r in before)
    assert sum(m.commits for m in members) > len(before)  # commits went on after the move
