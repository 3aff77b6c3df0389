"""Group consumers: polling, commit modes, dedup, rebalances, crashes, hangs, leaving.

REFERENCE §3: commit then process is at-most-once (a crash in between
loses), process then commit is at-least-once (a crash in between processes
again); eager rebalancing revokes everything before assigning, cooperative
keeps what stays and moves a partition over two rebalances; session timeout
45 s, heartbeat 3 s, max poll interval 300 s.  The book (§3.3.4-3.3.6): each
shard has one receiver of the group at a time; a processed-ids table in the
same transaction as the effect makes duplicates harmless.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.engine import Crash, Hang, Link, Slowdown, World, install
from simcomm.errors import ParamError
from simcomm.messaging.cluster import LogCluster
from simcomm.messaging.group import GroupCoordinator
from simcomm.messaging.group_consumer import GroupConsumer, ProcessedIds
from simcomm.messaging.log_producer import LogProducer

# -- helpers -------------------------------------------------------------------------


class Bench:
    """A world with a 3-broker cluster, one topic ``t``, a producer and a group ``g``."""

    def __init__(self, seed: int = 0, *, partitions: int = 6, latency: float | None = None,
                 delay: float = 0.0, trace: bool = True) -> None:
        self.world = World(seed=seed, trace=trace,
                           network=Link(latency=latency) if latency else None)
        self.cluster = LogCluster(self.world, brokers=3)
        self.cluster.create_topic("t", partitions)
        self.coordinator = GroupCoordinator(self.cluster, initial_rebalance_delay=delay)
        self.producer = LogProducer(self.world, "producer", self.cluster, "t")
        self.members: dict[str, GroupConsumer] = {}

    def feed(self, count: int, every: float = 0.05, keys: int = 12, start: float = 0.0
             ) -> Bench:
        env = self.world.env

        def go():
            if start:
                yield env.timeout(start)
            for i in range(count):
                self.producer.send(f"k{i % keys}", i)
                yield env.timeout(every)

        env.process(go())
        return self

    def member(self, name: str, **kw) -> GroupConsumer:
        kw.setdefault("auto_offset_reset", "earliest")
        m = self.members[name] = GroupConsumer(self.world, name, self.cluster, "g", "t", **kw)
        return m

    def run(self, until: float) -> Bench:
        self.world.run(until=until)
        return self

    def rows(self, event: str | None = None, node: str | None = None) -> list[tuple]:
        return [r for r in self.world.trace.records
                if (event is None or r[1] == event) and (node is None or r[7] == node)]

    def acked(self) -> set[int]:
        return {r[2] for r in self.rows("ack")}

    def applies(self) -> Counter:
        return Counter(r[2] for r in self.rows("apply"))

    def ownership(self) -> dict[tuple[str, int], list[tuple[float, float, str]]]:
        """Per partition: (start, end, member) from assign to revoke, or to the
        member's crash, or to the end of the run."""
        crashes = defaultdict(list)
        for t, node, event, _ in self.world.trace.events:
            if event == "crash":
                crashes[node].append(t)
        end = self.world.now
        open_: dict[tuple[str, str, int], float] = {}
        spans = defaultdict(list)

        def close(key: tuple[str, str, int], t: float) -> None:
            start = open_.pop(key)
            member, topic, p = key
            spans[(topic, p)].append((start, t, member))

        for r in self.world.trace.records:
            t, event, member, topic, p = r[0], r[1], r[7], r[3], r[4]
            key = (member, topic, p)
            # a crash ends whatever the member held before it
            for k in [k for k in open_ if k[0] == member]:
                c = [x for x in crashes[member] if open_[k] <= x <= t]
                if c:
                    close(k, c[0])
            if event == "assign":
                open_[key] = t
            elif event == "revoke" and key in open_:
                close(key, t)
        for k in list(open_):
            c = [x for x in crashes[k[0]] if x >= open_[k]]
            close(k, c[0] if c else end)
        return spans


def overlaps(spans: list[tuple[float, float, str]]) -> list[tuple]:
    out = []
    for i, a in enumerate(spans):
        for b in spans[i + 1:]:
            if a[2] != b[2] and a[0] < b[1] and b[0] < a[1]:
                out.append((a, b))
    return out


def applies_outside_ownership(bench: Bench) -> list[tuple]:
    spans = bench.ownership()
    bad = []
    for r in bench.rows("apply"):
        t, member, tp = r[0], r[7], (r[3], r[4])
        if not any(s <= t <= e and m == member for s, e, m in spans[tp]):
            bad.append(r)
    return bad


# -- the basics ------------------------------------------------------------------------


def test_members_share_the_partitions_and_apply_every_record_once():
    bench = Bench().feed(600)
    members = [bench.member(f"m{i}", commit="after") for i in range(3)]
    bench.run(40.0)
    assert [len(m.assignment) for m in members] == [2, 2, 2]
    assert sorted(tp for m in members for tp in m.assignment) == [("t", p) for p in range(6)]
    applies = bench.applies()
    assert set(applies) == bench.acked() and len(applies) == 600
    assert set(applies.values()) == {1}
    assert sum(m.applied for m in members) == 600
    # each partition's records are applied in offset order, by one member
    by_partition = defaultdict(list)
    for r in bench.rows("apply"):
        by_partition[r[4]].append(r[5])
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())


def test_a_members_busy_time_is_its_records_work():
    """The utilisation tables see a member busy while it processes records."""
    bench = Bench().feed(300, every=0.02)
    members = [bench.member(f"m{i}", service_time=0.01) for i in range(2)]
    bench.run(20.0)
    for m in members:
        assert m.busy_seconds(20.0) == pytest.approx(m.applied * 0.01)
    assert bench.world.trace.pools


def test_a_group_reads_several_topics_with_the_range_assignor():
    """REFERENCE §3's range rule per topic: C0 gets t0p0 t0p1 t1p0 t1p1, C1 t0p2 t1p2."""
    world = World(seed=2)
    cluster = LogCluster(world)
    for topic in ("t0", "t1"):
        cluster.create_topic(topic, 3)
    GroupCoordinator(cluster, initial_rebalance_delay=1.0)
    producers = [LogProducer(world, f"p-{t}", cluster, t) for t in ("t0", "t1")]
    for i in range(60):
        world.at(i * 0.1, lambda i=i: producers[i % 2].send(f"k{i}", i))
    members = [GroupConsumer(world, f"C{i}", cluster, "g", ["t0", "t1"],
                             auto_offset_reset="earliest") for i in range(2)]
    world.run(until=10.0)
    assert [m.assignment for m in members] == [
        [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)], [("t0", 2), ("t1", 2)]]
    assert sum(m.applied for m in members) == 60


def test_the_first_generation_waits_the_initial_rebalance_delay():
    """group.initial.rebalance.delay.ms (3 s): members starting together share generation 1."""
    bench = Bench(delay=3.0).feed(100)
    for i in range(3):
        bench.member(f"m{i}", start=i * 1.0)
    bench.run(10.0)
    assigns = bench.rows("assign")
    assert {r[8] for r in assigns} == {"1"} and len(assigns) == 6
    assert min(r[0] for r in assigns) >= 5.0  # the last joined at 2 s: 2 + 3


def test_auto_offset_reset_latest_skips_what_came_before_and_earliest_reads_it():
    for how, expect_old in (("latest", False), ("earliest", True)):
        bench = Bench().feed(200, every=0.1)
        bench.member("m", auto_offset_reset=how, start=10.0)
        bench.run(30.0)
        resets = bench.rows("reset")
        assert len(resets) == 6 and {r[8] for r in resets} == {how}
        old = [r for r in bench.rows("produce") if r[0] < 9.0]
        applied = bench.applies()
        assert all((r[2] in applied) == expect_old for r in old)
        if how == "latest":
            assert sum(r[5] for r in resets) > 0  # started at the high watermarks


def test_auto_commit_commits_the_positions_every_interval():
    bench = Bench().feed(500, every=0.05)
    m = bench.member("m", commit="auto", auto_commit_interval=5.0)
    bench.run(30.0)
    commits = bench.rows("commit", "m")
    assert commits and {r[8] for r in commits} == {"auto"}
    times = sorted({r[0] for r in commits})
    assert all(b - a >= 5.0 for a, b in pairwise(times))
    assert m.commits == len(times)
    # the last commit covers no record that was not returned by a poll
    last = {(r[3], r[4]): r[5] for r in commits}
    for (topic, p), off in last.items():
        assert off <= bench.cluster.high_watermark(topic, p)


# -- one member per partition ------------------------------------------------------------


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000),
       assignor=st.sampled_from(["range", "roundrobin", "sticky", "cooperative-sticky"]),
       joins=st.lists(st.floats(0, 30), min_size=2, max_size=4),
       crash=st.one_of(st.none(), st.floats(5, 30)),
       leave=st.one_of(st.none(), st.floats(5, 30)))
def test_a_partition_is_consumed_by_one_member_at_a_time(seed, assignor, joins, crash, leave):
    """Without hangs (no zombie), ownership intervals never overlap and every
    apply lies in its member's interval, whatever joins, crashes and leaves."""
    bench = Bench(seed, latency=0.002).feed(500, every=0.07)
    members = [bench.member(f"m{i}", start=t, assignor=assignor, commit="after",
                            session_timeout=10.0, service_time=0.002)
               for i, t in enumerate(joins)]
    if crash is not None:
        install(bench.world, [Crash("m0", at=crash, duration=10.0)])
    if leave is not None:
        bench.world.at(leave, members[-1].leave)
    bench.run(55.0)
    spans = bench.ownership()
    assert all(not overlaps(s) for s in spans.values())
    assert applies_outside_ownership(bench) == []
    # and the group ends up consuming everything that was acknowledged
    assert bench.acked() <= set(bench.applies())


def test_eager_rebalance_stops_the_world():
    """Eager: every member revokes all, and once all have rejoined nobody consumes
    until the new assignment is out."""
    bench = Bench(latency=0.005).feed(1000, every=0.02)
    for i in range(2):
        bench.member(f"m{i}", commit="after", service_time=0.002)
    bench.member("m2", commit="after", service_time=0.002, start=10.0)
    bench.run(25.0)
    start = next(r for r in bench.rows("rebalance_start") if r[0] >= 10.0)
    end = next(r for r in bench.rows("rebalance_end") if r[0] >= start[0])
    gen = end[8]
    assert start[8] == "join"
    revokes = [r for r in bench.rows("revoke") if start[0] <= r[0] <= end[0]]
    assert {r[7] for r in revokes} == {"m0", "m1"} and len(revokes) == 6  # all of them
    last_revoke = max(r[0] for r in revokes)
    first_assign = min(r[0] for r in bench.rows("assign") if r[8] == gen)
    assert first_assign > last_revoke  # a pause of positive length...
    assert not [r for r in bench.rows("apply") if last_revoke < r[0] < first_assign]  # idle
    for name in ("m0", "m1"):  # each member is idle from its revoke to its new assignment
        mine = [r[0] for r in revokes if r[7] == name]
        back = min(r[0] for r in bench.rows("assign", name) if r[8] == gen)
        assert not [r for r in bench.rows("apply", name) if max(mine) < r[0] < back]
    assert bench.acked() <= set(bench.applies())


def test_cooperative_rebalance_moves_a_partition_in_two_rounds_and_keeps_consuming():
    """KIP-429: the owner revokes in round 1, the newcomer gets it in round 2; the
    partitions that stay are consumed all along."""
    bench = Bench(latency=0.005).feed(1000, every=0.02)
    for i in range(2):
        bench.member(f"m{i}", assignor="cooperative-sticky", commit="after",
                     service_time=0.002)
    bench.member("m2", assignor="cooperative-sticky", commit="after", service_time=0.002,
                 start=10.0)
    bench.run(25.0)
    later = [r for r in bench.rows() if r[0] >= 10.0]
    rebalances = [(r[1], r[8]) for r in later if r[1].startswith("rebalance")]
    g = int(rebalances[1][1])
    assert rebalances[:4] == [("rebalance_start", "join"), ("rebalance_end", str(g)),
                              ("rebalance_start", "follow_up"), ("rebalance_end", str(g + 1))]
    revoked = [r for r in later if r[1] == "revoke"]
    assigned = [r for r in later if r[1] == "assign"]
    assert revoked and {r[7] for r in revoked} <= {"m0", "m1"}
    assert {r[8] for r in revoked} == {str(g - 1)}  # let go of in round 1 ...
    assert {r[7] for r in assigned} == {"m2"} and {r[8] for r in assigned} == {str(g + 1)}
    assert {(r[3], r[4]) for r in assigned} == {(r[3], r[4]) for r in revoked}  # ... taken in 2
    assert len(assigned) == 2
    # no stop-the-world: the old members applied records of the partitions they kept
    # between the first rebalance's start and the second one's end
    t0 = next(r[0] for r in later if r[1] == "rebalance_start")
    t1 = [r[0] for r in later if r[1] == "rebalance_end"][1]
    moving = {(r[3], r[4]) for r in revoked}
    kept_applies = [r for r in bench.rows("apply") if t0 <= r[0] <= t1
                    and (r[3], r[4]) not in moving]
    assert {r[7] for r in kept_applies} == {"m0", "m1"}
    assert all(not overlaps(s) for s in bench.ownership().values())


# -- delivery guarantees ------------------------------------------------------------------


def crash_run(crash_at: float, **kw) -> Bench:
    """Three members fall behind a burst of 600 records (batches of many records),
    and one crashes in the middle of a batch."""
    bench = Bench(latency=0.002).feed(600, every=0.005, keys=60)
    for i in range(3):
        bench.member(f"m{i}", session_timeout=10.0, service_time=0.05, **kw)
    install(bench.world, [Crash("m1", at=crash_at)])
    return bench.run(40.0)


@pytest.mark.parametrize("crash_at", [2.3, 4.71, 7.05])
def test_commit_after_never_loses_across_a_member_crash(crash_at):
    bench = crash_run(crash_at, commit="after")
    applies = bench.applies()
    assert bench.acked() <= set(applies)  # nothing lost
    assert any(n > 1 for n in applies.values())  # the crash re-delivered (at-least-once)


@pytest.mark.parametrize("crash_at", [2.3, 4.71, 7.05])
def test_commit_before_never_duplicates(crash_at):
    bench = crash_run(crash_at, commit="before")
    applies = bench.applies()
    assert set(applies.values()) == {1}  # nothing twice (at-most-once)
    assert bench.acked() - set(applies)  # the batch in hand at the crash is lost


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), commit=st.sampled_from(["after", "before"]),
       dedup=st.sampled_from(["none", "processed_ids"]),
       fault=st.sampled_from([Crash, Hang]), at=st.floats(1.0, 8.0),
       duration=st.floats(1.0, 25.0), assignor=st.sampled_from(["range",
                                                                "cooperative-sticky"]))
def test_the_commit_point_decides_loss_or_duplication(seed, commit, dedup, fault, at,
                                                       duration, assignor):
    """Whatever crashes or pauses (a zombie included): commit after processing
    never loses, commit before never duplicates, a processed-ids table never
    applies twice."""
    bench = Bench(seed, latency=0.002).feed(300, every=0.01, keys=60)
    for i in range(3):
        bench.member(f"m{i}", session_timeout=6.0, heartbeat_interval=2.0,
                     service_time=0.04, commit=commit, dedup=dedup, assignor=assignor)
    install(bench.world, [fault("m1", at=at, duration=duration)])
    bench.run(60.0)
    applies = bench.applies()
    if commit == "after":
        assert bench.acked() <= set(applies)
    if commit == "before" or dedup == "processed_ids":
        assert set(applies.values()) <= {1}


def test_processed_ids_make_redelivery_harmless():
    """The processed-ids table: what the crash re-delivers is skipped, each effect once."""
    table = ProcessedIds("orders.processed")
    bench = crash_run(4.71, commit="after", dedup="processed_ids", processed=table)
    applies = bench.applies()
    assert set(applies.values()) == {1} and bench.acked() <= set(applies)
    skips = bench.rows("skip")
    assert skips and {r[8] for r in skips} == {"processed_ids"}
    assert len(table) == len(applies)


def test_an_idempotent_handler_runs_again_with_no_new_effect():
    bench = crash_run(4.71, commit="after", dedup="idempotent")
    assert set(bench.applies().values()) == {1}
    skips = bench.rows("skip")
    assert skips and {r[8] for r in skips} == {"idempotent"}
    # the group's members shared one table by default
    tables = {id(m.processed) for m in bench.members.values()}
    assert len(tables) == 1


def test_a_handler_sees_the_record_and_where_it_sits():
    seen = []

    def handler(ctx, record):
        seen.append((ctx.topic, ctx.partition, ctx.offset, record.value))
        yield ctx.work(0.01)

    bench = Bench().feed(50)
    bench.member("m", handler=handler, commit="after")
    bench.run(10.0)
    assert sorted(v for *_, v in seen) == list(range(50))
    assert {t for t, *_ in seen} == {"t"}
    applies = {(r[4], r[5]) for r in bench.rows("apply")}
    assert applies == {(p, o) for _, p, o, _ in seen}


# -- sessions, poll timeouts, zombies -------------------------------------------------------


@pytest.mark.parametrize(("session", "beat"), [(45.0, 3.0), (10.0, 3.0), (6.0, 2.0)])
def test_a_crashed_member_expires_a_session_timeout_after_its_last_heartbeat(session, beat):
    """The expiry comes between session - heartbeat and session after the crash."""
    bench = Bench().feed(200, every=0.5)
    bench.member("m0", session_timeout=session, heartbeat_interval=beat)
    bench.member("m1", session_timeout=session, heartbeat_interval=beat)
    crash = 20.4
    install(bench.world, [Crash("m0", at=crash)])
    bench.run(crash + session + 10.0)
    expire = bench.rows("expire")
    assert [(r[7], r[8]) for r in expire] == [("m0", "session_timeout")]
    t = expire[0][0]
    assert crash + session - beat <= t <= crash + session
    start = [r for r in bench.rows("rebalance_start") if r[0] == t]
    assert [r[8] for r in start] == ["session_timeout"]


def test_a_restarted_member_joins_again_as_a_new_member():
    bench = Bench().feed(400, every=0.1)
    bench.member("m0", session_timeout=10.0, commit="after")
    bench.member("m1", session_timeout=10.0, commit="after")
    install(bench.world, [Crash("m0", at=10.0, duration=5.0)])
    bench.run(40.0)
    joins = [r for r in bench.rows("join") if r[7] == "m0"]
    assert len(joins) == 2 and joins[1][0] == 15.0
    assert bench.coordinator.group("g").members.keys() >= {bench.members["m0"].member_id}
    assert len(bench.members["m0"].assignment) == 3
    assert bench.acked() <= set(bench.applies())


def test_a_slow_poll_loop_is_expelled_by_the_poll_timeout():
    """max.poll.interval.ms: the heartbeat thread leaves the group for a stuck loop."""
    bench = Bench().feed(60, every=0.5)
    bench.member("m0", max_poll_interval=5.0, commit="after", service_time=0.001)
    bench.member("m1", max_poll_interval=5.0, commit="after", service_time=0.001)
    install(bench.world, [Slowdown("m0", at=10.0, duration=30.0, factor=1e4)])
    bench.run(60.0)
    expire = bench.rows("expire")
    assert expire and {(r[7], r[8]) for r in expire} == {("m0", "poll_timeout")}
    # the first record after 10 s takes 10 s: the loop is silent from about 10 s on
    assert 15.0 <= expire[0][0] <= 15.0 + 3.0 + 0.5
    # its commit then fails, and it comes back as a new member (to be expelled
    # again while the slowdown lasts)
    assert bench.rows("commit_failed", "m0")
    assert len([r for r in bench.rows("join") if r[7] == "m0"]) >= 2
    assert bench.acked() <= set(bench.applies())


def test_a_hang_longer_than_the_session_makes_a_zombie():
    """Expelled while paused, the member goes on with its batch when it wakes: two
    members process one partition until it learns; its commit fails."""
    bench = Bench(latency=0.002).feed(1200, every=0.02)
    bench.member("m0", commit="after", session_timeout=10.0, service_time=0.02,
                 max_poll_records=200)
    bench.member("m1", commit="after", session_timeout=10.0, service_time=0.002)
    install(bench.world, [Hang("m0", at=10.0, duration=20.0)])
    bench.run(45.0)
    expire = bench.rows("expire")
    assert [(r[7], r[8]) for r in expire] == [("m0", "session_timeout")]
    assert 17.0 <= expire[0][0] <= 20.01
    spans = bench.ownership()
    windows = [o for s in spans.values() for o in overlaps(s)]
    assert windows  # the zombie window
    zombie_applies = [r for r in bench.rows("apply", "m0") if r[0] >= 30.0]
    failed = bench.rows("commit_failed", "m0")
    assert zombie_applies and failed and {r[8] for r in failed} == {"rebalance"}
    assert failed[0][0] >= zombie_applies[0][0]
    applies = bench.applies()
    assert any(n > 1 for n in applies.values())  # processed by both
    assert bench.acked() <= set(applies)


def test_processed_ids_hold_through_the_zombie_window():
    bench = Bench(latency=0.002).feed(1200, every=0.02)
    kw = {"commit": "after", "session_timeout": 10.0, "dedup": "processed_ids"}
    bench.member("m0", service_time=0.02, max_poll_records=200, **kw)
    bench.member("m1", service_time=0.002, **kw)
    install(bench.world, [Hang("m0", at=10.0, duration=20.0)])
    bench.run(45.0)
    applies = bench.applies()
    assert set(applies.values()) == {1} and bench.acked() <= set(applies)
    assert bench.rows("skip")


def test_a_member_cut_off_is_expelled_and_rejoins_when_the_network_heals():
    """A partition hides the member's heartbeats: it expires after a session; once
    the network heals, it learns it is out (the coordinator silent for a session is
    given up and asked again) and joins as a new member."""
    bench = Bench(2, latency=0.002).feed(800, every=0.04)
    for i in range(3):
        bench.member(f"m{i}", commit="after", session_timeout=10.0, service_time=0.003)
    bench.world.network.cut(["m1"], at=10.0, heal_at=25.0)
    bench.run(45.0)
    expire = bench.rows("expire")
    assert [(r[7], r[8]) for r in expire] == [("m1", "session_timeout")]
    assert 17.0 <= expire[0][0] <= 20.01
    back = [r[0] for r in bench.rows("join") if r[7] == "m1" and r[0] > 10.0]
    assert back and 25.0 < back[0] <= 25.0 + 10.0 + 3.0
    assert bench.acked() <= set(bench.applies())


@pytest.mark.parametrize("fault", [Hang, Crash])
def test_the_group_carries_on_when_its_coordinator_broker_fails(fault):
    """The next broker coordinates once the controller fences the old one
    (failover_after, 9 s); it loads the group, whose sessions start afresh:
    nobody expires, nothing is lost."""
    bench = Bench(2, latency=0.002).feed(1500, every=0.02)
    for i in range(3):
        bench.member(f"m{i}", commit="after", session_timeout=10.0, service_time=0.003,
                     assignor="cooperative-sticky")
    home = bench.cluster.coordinator_for("g")
    install(bench.world, [fault(home.name, at=10.0, duration=20.0)])
    bench.run(60.0)
    assert bench.cluster.coordinator_for("g") is not home
    assert not bench.rows("expire")
    assert bench.acked() <= set(bench.applies())
    commits_after = [r for r in bench.rows("commit") if 20.0 <= r[0] <= 30.0]
    assert commits_after  # committing to the new coordinator while the old one is away


def test_a_member_starting_while_the_coordinator_is_down_joins_once_it_moves():
    bench = Bench(405, latency=0.001).feed(400, every=0.02)
    bench.member("m0")
    bench.member("m1")
    bench.member("m2", start=10.0)
    home = bench.cluster.coordinator_for("g")
    install(bench.world, [Crash(home.name, at=9.8, duration=10.0)])
    bench.run(60.0)
    assert [r[7] for r in bench.rows("join")].count("m2") == 1
    assert not bench.rows("expire")
    assert [len(m.assignment) for m in bench.members.values()] == [2, 2, 2]
    assert bench.acked() <= set(bench.applies())


def test_a_coordinator_back_before_its_failover_loads_the_group_afresh():
    """Down for longer than a session but shorter than failover_after: nobody could
    heartbeat; the restarted broker loads the group (sessions start again), so
    nobody is expired for the coordinator's own absence."""
    bench = Bench(4, latency=0.002).feed(100, every=0.05, start=20.0)
    for i in range(3):  # idle until 20 s: only heartbeats reach the coordinator
        bench.member(f"m{i}", commit="after", session_timeout=4.0, heartbeat_interval=3.0)
    home = bench.cluster.coordinator_for("g")
    install(bench.world, [Crash(home.name, at=8.0, duration=6.0)])
    bench.run(30.0)
    assert bench.cluster.coordinator_for("g") is home  # back before it was fenced (9 s)
    assert not bench.rows("expire")
    assert bench.acked() <= set(bench.applies())


def test_leave_rebalances_at_once():
    bench = Bench().feed(600, every=0.05)
    members = [bench.member(f"m{i}", commit="after") for i in range(3)]
    done = []
    bench.world.at(10.0, lambda: members[2].leave().callbacks.append(
        lambda _e: done.append(bench.world.now)))
    bench.run(40.0)
    leave = bench.rows("leave")
    assert [(r[0], r[7]) for r in leave] == [(10.0, "m2")]
    assert done == [10.0]
    start = next(r for r in bench.rows("rebalance_start") if r[0] >= 10.0)
    assert start[8] == "leave" and start[0] == 10.0
    assert {r[8] for r in bench.rows("commit", "m2") if r[0] == 10.0} <= {"revoke"}
    assert len(bench.rows("revoke", "m2")) == 2
    assert members[2].assignment == [] and sorted(
        members[0].assignment + members[1].assignment) == [("t", p) for p in range(6)]
    assert not bench.rows("apply", "m2") or max(r[0] for r in bench.rows("apply", "m2")) <= 10
    assert set(bench.applies().values()) == {1} and bench.acked() <= set(bench.applies())


def test_leave_before_the_start_or_while_down_keeps_the_member_out():
    bench = Bench().feed(200, every=0.05)
    early = bench.member("early", start=5.0)
    down = bench.member("down")
    bench.member("stays")
    install(bench.world, [Crash("down", at=3.0, duration=4.0)])
    events = {}
    bench.world.at(1.0, lambda: events.setdefault("early", early.leave()))
    bench.world.at(4.0, lambda: events.setdefault("down", down.leave()))
    bench.run(60.0)  # the dead member sent no LeaveGroup: its session expires (45 s)
    assert events["early"].triggered and events["down"].triggered
    assert [r[7] for r in bench.rows("join")].count("early") == 0
    assert [r[7] for r in bench.rows("join")].count("down") == 1  # not again after restart
    assert early.applied == 0 and down.assignment == []
    assert [(r[7], r[8]) for r in bench.rows("expire")] == [("down", "session_timeout")]
    assert len(bench.members["stays"].assignment) == 6


def test_a_poll_returns_at_most_max_poll_records():
    """max.poll.records: commit-before commits each poll's records, never more."""
    bench = Bench().feed(400, every=0.001)
    bench.member("m", commit="before", max_poll_records=25, service_time=0.01)
    bench.run(30.0)
    last: dict[int, int] = {}
    for r in bench.rows("commit", "m"):
        assert r[5] - last.get(r[4], 0) <= 25
        last[r[4]] = r[5]
    assert sum(last.values()) == 400


# -- runs --------------------------------------------------------------------------------


def run_once(seed: int) -> tuple[list, list]:
    bench = Bench(seed, latency=0.003).feed(800, every=0.03)
    for i in range(3):
        bench.member(f"m{i}", commit="auto", start=i * 4.0, session_timeout=10.0,
                     service_time=0.005)
    install(bench.world, [Crash("m1", at=14.0, duration=6.0), Hang("m2", at=18.0,
                                                                    duration=15.0)])
    bench.run(40.0)
    return list(bench.world.trace.records), list(bench.world.trace.events)


def test_a_run_is_deterministic():
    assert run_once(5) == run_once(5)


def test_counters_are_kept_without_a_trace():
    bench = Bench(trace=False).feed(300)
    members = [bench.member(f"m{i}", commit="after") for i in range(2)]
    bench.run(30.0)
    assert not bench.world.trace.records
    assert sum(m.applied for m in members) == 300
    stats = members[0].stats
    assert stats["generation"] == 2 and stats["partitions"] == 3 and stats["commits"] > 0


@pytest.mark.parametrize(("kw", "field"), [
    ({"group": ""}, "group"),
    ({"topics": []}, "topics"),
    ({"topics": "nope"}, "topics"),
    ({"handler": 3}, "handler"),
    ({"assignor": "magic"}, "assignor"),
    ({"protocol": "lazy"}, "protocol"),
    ({"protocol": "cooperative", "assignor": "range"}, "protocol"),
    ({"session_timeout": 0}, "session_timeout"),
    ({"session_timeout": True}, "session_timeout"),
    ({"heartbeat_interval": 50.0}, "heartbeat_interval"),
    ({"max_poll_interval": -1}, "max_poll_interval"),
    ({"max_poll_records": 0}, "max_poll_records"),
    ({"max_poll_records": 2.5}, "max_poll_records"),
    ({"fetch_max_wait": float("nan")}, "fetch_max_wait"),
    ({"commit": "sometimes"}, "commit"),
    ({"auto_commit_interval": 0}, "auto_commit_interval"),
    ({"auto_offset_reset": "none"}, "auto_offset_reset"),
    ({"dedup": "bloom"}, "dedup"),
    ({"processed": set()}, "processed"),
    ({"start": -1}, "start"),
    ({"request_timeout": float("inf")}, "request_timeout"),
    ({"retry_backoff": 0}, "retry_backoff"),
])
def test_bad_arguments_are_refused_before_time_zero(kw, field):
    world = World()
    cluster = LogCluster(world)
    cluster.create_topic("t", 2)
    args = {"group": "g", "topics": "t"}
    args.update(kw)
    group, topics = args.pop("group"), args.pop("topics")
    with pytest.raises(ParamError) as err:
        GroupConsumer(world, "m", cluster, group, topics, **args)
    assert err.value.field == field
    assert "m" not in world.nodes


def test_members_of_one_group_must_agree_and_numpy_numbers_are_numbers():
    np = pytest.importorskip("numpy")
    world = World()
    cluster = LogCluster(world)
    cluster.create_topic("t", 2)
    GroupConsumer(world, "a", cluster, "g", "t", assignor="sticky",
                  session_timeout=np.float64(20.0), max_poll_records=np.int64(10))
    with pytest.raises(ParamError, match="assignor"):
        GroupConsumer(world, "b", cluster, "g", "t", assignor="range")
    with pytest.raises(ParamError, match="cluster"):
        GroupConsumer(world, "c", object(), "g", "t")  # type: ignore[arg-type]
