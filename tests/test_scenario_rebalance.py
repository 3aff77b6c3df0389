"""rebalance: members join, crash and leave; eager stops the world, cooperative moves in two rounds.

Kafka's group rules (REFERENCE §3).  The default run is 60 s: three members
from the start, order-history-4 joins at 10 s, order-history-1 crashes at 25 s
(never back within the run), order-history-3 leaves cleanly at 45 s.  The
assignors are pure functions of the membership, so who owns what does not
depend on the seed; the times do, a little.
"""

from __future__ import annotations

import itertools
import math

import pytest

import simcomm
from simcomm.errors import ParamError
from simcomm.scenarios import get, make_params
from simcomm.scenarios.rebalance import capacity, crashing, joining, leaving, load

NAME = "rebalance"
PARTITIONS = 6


def run(seed: int = 1, **params):
    return simcomm.run(NAME, seed=seed, warn=False, **params)


@pytest.fixture(scope="module")
def eager():
    return run()


@pytest.fixture(scope="module")
def cooperative():
    return run(assignor="cooperative-sticky")


def owners(res) -> list[dict[int, str]]:
    """Who owns each partition after each rebalance (generation order)."""
    table = res.assignments()
    out = []
    for _, gen in table.groupby("generation", sort=True):
        out.append(dict(zip(gen["partition"], gen["member"], strict=True)))
    return out


def moves(res) -> int:
    """How many times a partition changed owner over the run."""
    table = res.assignments().sort_values(["partition", "start"])
    changed = 0
    for _, part in table.groupby("partition"):
        members = list(part["member"])
        changed += sum(a != b for a, b in itertools.pairwise(members))
    return changed


def unowned_seconds(res) -> float:
    """Partition-seconds, after the first assignment, when a partition had no owner:
    the pauses a rebalance imposes (eager: every partition; cooperative: the moved)."""
    table = res.assignments()
    first = table["start"].min()
    total = 0.0
    for _, part in table.groupby("partition"):
        covered = sorted(zip(part["start"], part["end"], strict=True))
        t = first
        for start, end in covered:
            total += max(0.0, start - t)
            t = max(t, end)
        total += max(0.0, res.until - t)
    return total


# -- the scenario as a scenario ---------------------------------------------------------------

def test_registered_with_its_views_and_model():
    sc = get(NAME)
    assert sc.views == ("partition_assignment", "consumer_lag", "key_order")
    assert sc.capacity is capacity and sc.load is load and sc.check is not None
    p = make_params(sc)
    assert (crashing(), leaving(p), joining(p)) == (
        "order-history-1", "order-history-3", "order-history-4")
    one = make_params(sc, {"consumers": 1})
    assert leaving(one) == joining(one) == "order-history-2"
    assert capacity(p) == pytest.approx(3 / 0.05)
    assert load(p).events_per_s > 0 and load(make_params(sc, {"crash": False})).events_per_s == 0


def test_the_same_seed_gives_the_same_run(eager):
    assert run().fingerprint() == eager.fingerprint()


# -- each change of membership rebalances the group --------------------------------------------

def test_a_join_a_crash_and_a_leave_each_rebalance_the_group(eager):
    """The first join at time zero (the group forms: 3 s of
    group.initial.rebalance.delay), the joiner at 10 s, the crash noticed a
    session timeout later, the clean leave at once."""
    table = eager.rebalances()
    assert list(table["why"]) == ["join", "join", "session_timeout", "leave"]
    assert list(table["generation"]) == [1, 2, 3, 4]
    assert (table["end"] > table["start"]).all()
    join, crash, leave = table["start"].iloc[1:].tolist()
    p = eager.params
    assert p.join_at <= join < p.join_at + 0.1
    # expired after session_timeout without a heartbeat (heartbeats every 3 s)
    assert p.crash_at + p.session_timeout - 3.0 < crash <= p.crash_at + p.session_timeout
    assert p.leave_at <= leave < p.leave_at + 1.0  # after the batch in hand and its commit
    assert eager.summary()["rebalances"] == 4


def test_every_partition_has_one_owner_at_a_time(eager, cooperative):
    """A partition is consumed by at most one member of the group at a time
    (no member hangs here: no zombie window)."""
    for res in (eager, cooperative):
        table = res.assignments()
        for _, part in table.groupby("partition"):
            spans = sorted(zip(part["start"], part["end"], strict=True))
            assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(spans))
        assert set(table["partition"]) == set(range(PARTITIONS))


def test_the_membership_moves_the_partitions(eager):
    """range over the sorted members: the joiner gets partitions, the crashed
    and the departed members none afterwards."""
    gens = owners(eager)
    assert len(gens) == 4
    assert set(gens[0].values()) == {"order-history-1", "order-history-2", "order-history-3"}
    assert "order-history-4" in gens[1].values()
    assert "order-history-1" not in gens[2].values()
    assert set(gens[3].values()) == {"order-history-2", "order-history-4"}
    assert all(len(g) == PARTITIONS for g in gens)  # eager: everything reassigned each time


def test_per_key_order_holds_through_every_rebalance(eager, cooperative):
    """One owner per partition at a time, commit after processing: a new owner
    starts from the last commit -- possibly again, never out of order."""
    for res in (eager, cooperative):
        s = res.summary()
        assert s["reordered"] == 0 and s["gaps"] == 0 and s["lost"] == 0


# -- eager vs cooperative ------------------------------------------------------------------------

def test_eager_stops_every_partition_cooperative_only_the_moved(eager, cooperative):
    """Eager: at each rebalance every member revokes everything, so every
    partition starts a new assignment (6 each time) and waits for it;
    cooperative-sticky keeps what stays (a partition that stays keeps one
    assignment across rebalances) and pauses only what moves.  Partition-seconds
    without an owner, seeds 1-4: eager 17.5-19.0, cooperative 13.0-14.9."""
    starts = eager.assignments().groupby("generation").size()
    assert (starts == PARTITIONS).all()
    spans = cooperative.assignments()
    assert len(spans) <= 2 * PARTITIONS  # 6 first, then the 5 moved ones
    assert unowned_seconds(cooperative) < unowned_seconds(eager)


def test_cooperative_moves_a_partition_in_two_rounds(cooperative):
    """KIP-429: the joiner's partition is revoked by its owner in the first
    rebalance and assigned in a follow-up one -- never handed over in one."""
    table = cooperative.rebalances()
    assert list(table["why"]) == ["join", "join", "follow_up", "session_timeout", "leave"]
    first, follow = table.iloc[1], table.iloc[2]
    spans = cooperative.assignments()
    joined = spans[spans["member"] == "order-history-4"]
    taken = joined[joined["start"] < table.iloc[3]["start"]]
    assert len(taken) >= 1
    for part in taken["partition"]:
        before = spans[(spans["partition"] == part) & (spans["member"] != "order-history-4")]
        given_up = before["end"].max()
        assert first["start"] <= given_up <= follow["start"]  # revoked in round 1
        start = joined.loc[joined["partition"] == part, "start"].min()
        assert start >= follow["end"]  # assigned after round 2


@pytest.mark.parametrize("assignor", ["range", "roundrobin"])
def test_sticky_keeps_more_partitions_in_place(assignor):
    """The same joins, crash and leave: sticky moves fewer partitions than range
    (8 moves here) or round robin (13): 5."""
    sticky = moves(run(assignor="sticky"))
    assert sticky < moves(run(assignor=assignor))


# -- bad knobs -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("partitions", 0), ("consumers", 0), ("consumers", 13), ("assignor", "fair"),
    ("protocol", "lazy"), ("join", "yes"), ("join_at", -1.0), ("crash", 1),
    ("crash_at", math.nan), ("crash_duration", 0.0), ("leave", None), ("leave_at", -0.5),
    ("session_timeout", 0.5), ("commit", "never"), ("dedup", "bloom"), ("order_rate", 0.0),
    ("service_time", 0.0), ("network_latency", -1.0),
])
def test_bad_values_are_refused_before_time_zero(field, value):
    with pytest.raises(ParamError) as info:
        simcomm.run(NAME, until=1.0, **{field: value})
    assert info.value.field == field


def test_the_cooperative_protocol_needs_cooperative_sticky():
    with pytest.raises(ParamError, match="cooperative-sticky") as info:
        simcomm.run(NAME, until=1.0, protocol="cooperative", assignor="range")
    assert info.value.field == "protocol"


def test_a_group_of_one_hands_over_to_the_joiner():
    """One member that crashes: the joiner takes everything, then leaves -- the
    last member out leaves the group empty (its rebalance assigns nothing);
    the run ends with nobody consuming, the records pending, none lost.
    (At 5 orders/s: one member carries the load, so it is not deep in a long
    batch when asked to close -- KafkaConsumer.close() finishes the batch in
    hand first.)"""
    res = run(consumers=1, order_rate=5.0, until=50.0)
    assert list(res.rebalances()["why"]) == ["join", "join", "session_timeout", "leave"]
    spans = res.assignments()
    assert set(spans.loc[spans["generation"] == 3, "member"]) == {"order-history-2"}
    records = res.records
    left = records[records["event"] == "leave"]
    assert list(left["node"]) == ["order-history-2"]
    assert spans.loc[spans["member"] == "order-history-2", "end"].max() < 50.0
    s = res.summary()
    assert s["lost"] == 0 and s["pending"] > 0
