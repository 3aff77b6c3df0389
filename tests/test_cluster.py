"""The partitioned log cluster follows Kafka's rules (REFERENCE §3; Kafka's
Partition.scala / ReplicaManager.scala / ProducerStateManager.java):
replication by fetch, the high watermark over the ISR, acks 0/1/all, ISR
shrink and expand, failover after broker.session.timeout with truncation,
the idempotent producer's dedup and refusal, the coordinator hooks.

A plain :class:`Node` plays the client (producer and consumer) so that the
broker's behaviour is checked on its own, request by request.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.engine import Crash, ErrorRate, Hang, Link, Node, World, install
from simcomm.engine.randomness import Exponential
from simcomm.errors import ParamError
from simcomm.messaging import (
    FetchRequest,
    InitProducerIdRequest,
    LogBroker,
    LogCluster,
    ProduceRequest,
    Record,
    RecordBatch,
)
from simcomm.messaging.cluster import group_partition

LAT = 0.001


class Bench:
    """A world, a cluster with topic ``t`` and a client node."""

    def __init__(self, seed: int = 0, latency: float | None = LAT, partitions: int = 1,
                 **cluster_args) -> None:
        self.world = World(seed=seed, network=Link(latency=latency) if latency else None)
        self.cluster = LogCluster(self.world, **cluster_args)
        self.cluster.create_topic("t", partitions)
        self.client = Node(self.world, "client")
        self.answers: list[tuple[float, object, object]] = []  # (time, status, body)

    def record(self, key: object = "k") -> Record:
        return Record(self.cluster.next_record_id(), key, None, self.world.now, "client", 100)

    def produce(self, p: int = 0, n: int = 1, acks: object = "all", pid: int | None = None,
                seq: int = -1, records: list[Record] | None = None) -> list[Record]:
        recs = records if records is not None else [self.record() for _ in range(n)]
        lead = self.cluster.leader("t", p)
        assert lead is not None
        body = ProduceRequest(RecordBatch("t", p, recs, pid, seq), acks)
        if acks in (0, "0"):
            self.client.send(self.client.message(lead.name, body))
        else:
            ev = self.client.request(lead.name, body)
            ev.callbacks.append(lambda e: self.answers.append(
                (self.world.now, e.value.status, e.value.body)))
        return recs

    def fetch(self, offset: int, p: int = 0, max_wait: float = 0.0, max_records: int = 500,
              to: str | None = None, replica: str | None = None,
              out: list | None = None) -> list:
        """Send a fetch now; its answer is appended to ``out`` (returned)."""
        dest = to or self.cluster.leader("t", p).name  # type: ignore[union-attr]
        out = [] if out is None else out
        ev = self.client.request(dest, FetchRequest("t", p, offset, max_records, replica,
                                                    max_wait))
        ev.callbacks.append(lambda e: out.append((self.world.now, e.value.status, e.value.body)))
        return out

    def at(self, t: float, fn) -> None:
        self.world.at(t, fn)

    def run(self, until: float) -> Bench:
        self.world.run(until=until)
        return self

    def rows(self, event: str | None = None) -> list[tuple]:
        return [r for r in self.world.trace.records if event is None or r[1] == event]

    def events(self, event: str) -> list[tuple]:
        return [e for e in self.world.trace.events if e[2] == event]

    def ids(self, broker: str | None = None, p: int = 0) -> list[int]:
        return [r.record_id for r in self.cluster.replica("t", p, broker).log.records]


# ---------------------------------------------------------------------------
# construction and metadata
# ---------------------------------------------------------------------------
def test_brokers_and_replica_placement():
    """Brokers <name>-0..; partition p's replicas on brokers (p + j) mod n, the
    first its leader; replication factor min(3, brokers) by default."""
    w = World()
    c = LogCluster(w, brokers=4)
    c.create_topic("t", 5)
    assert [b.name for b in c.brokers] == ["kafka-0", "kafka-1", "kafka-2", "kafka-3"]
    assert all(isinstance(b, LogBroker) for b in c.brokers)
    assert c.partitions("t") == 5
    assert c.replicas("t", 3) == ["kafka-3", "kafka-0", "kafka-1"]
    assert c.leader("t", 3).name == "kafka-3"  # type: ignore[union-attr]
    assert c.isr("t", 4) == ["kafka-0", "kafka-1", "kafka-2"]
    c.create_topic("u", 2, replication_factor=1)
    assert c.replicas("u", 1) == ["kafka-1"]
    assert c.topics == ["t", "u"]
    assert repr(c) == "LogCluster('kafka', brokers=4, topics={'t': 5, 'u': 2})"
    assert LogCluster(World(), brokers=2).replication_factor == 2


@pytest.mark.parametrize(("args", "field"), [
    (dict(brokers=0), "brokers"), (dict(brokers=True), "brokers"),
    (dict(brokers=2, replication_factor=3), "replication_factor"),
    (dict(min_insync_replicas=0), "min_insync_replicas"),
    (dict(replica_lag_time_max=0), "replica_lag_time_max"),
    (dict(failover_after=-1), "failover_after"),
    (dict(failover_after=float("inf")), "failover_after"),
    (dict(unclean_leader_election=1), "unclean_leader_election"),
    (dict(append_time=-0.1), "append_time"),
    (dict(name=""), "name"),
])
def test_bad_cluster_arguments_are_refused(args, field):
    with pytest.raises(ParamError) as err:
        LogCluster(World(), **args)
    assert err.value.field == field


def test_bad_topics_and_lookups_are_refused():
    w = World()
    c = LogCluster(w, min_insync_replicas=2)
    c.create_topic("t", 2)
    for args, field in [(("t", 1), "topic"), (("", 1), "topic"), (("__x", 1), "topic"),
                        (("u", 0), "partitions")]:
        with pytest.raises(ParamError) as err:
            c.create_topic(*args)
        assert err.value.field == field
    with pytest.raises(ParamError, match="replication_factor"):
        c.create_topic("u", 1, replication_factor=1)  # below min_insync_replicas
    with pytest.raises(ParamError, match="replication_factor"):
        c.create_topic("u", 1, replication_factor=0)
    with pytest.raises(ParamError, match="topic"):
        c.leader("nope", 0)
    with pytest.raises(ParamError, match="partition"):
        c.leader("t", 2)
    with pytest.raises(ParamError, match="broker"):
        c.replica("t", 0, "kafka-9")
    with pytest.raises(ParamError, match="name"):
        LogCluster(w)  # kafka-0.. are taken
    with pytest.raises(ParamError, match="group"):
        c.coordinator_for("")
    with pytest.raises(ParamError, match="body_type"):
        c.on_request(ProduceRequest, lambda b, m: None)
    with pytest.raises(ParamError, match="handler"):
        c.on_request(dict, None)  # type: ignore[arg-type]


def test_leaders_answer_from_time_zero():
    """A topic's first leaders lead from its creation: a fetch at time zero is
    answered, not refused as not_leader."""
    b = Bench(latency=None)
    out = b.fetch(0)
    b.run(0.1)
    assert out[0][2].error is None and out[0][2].high_watermark == 0


def test_stats_count_what_happened():
    b = Bench()
    b.at(0.1, lambda: b.produce(n=3))
    b.at(0.5, lambda: b.fetch(0))
    b.run(1)
    stats = b.cluster.stats
    assert {k: stats[k] for k in ("appended", "batches", "produce_requests", "fetches",
                                  "replica_fetched", "record_ids", "elections")} == {
        "appended": 3, "batches": 1, "produce_requests": 1, "fetches": 1,
        "replica_fetched": 6, "record_ids": 3, "elections": 0}


def test_metadata_of_an_offline_partition_is_its_last_leaders():
    b = Bench()
    b.at(0.1, lambda: b.produce(n=2))
    install(b.world, [Crash("kafka-0", 1.0), Crash("kafka-1", 1.0), Crash("kafka-2", 1.0)])
    b.run(20)
    assert b.cluster.leader("t", 0) is None
    assert b.cluster.log_end_offset("t", 0) == b.cluster.high_watermark("t", 0) == 2
    # the coordinator stays on a broker that is down when none is up
    assert not b.cluster.coordinator_for("g").up


def test_record_ids_come_from_one_counter():
    c = LogCluster(World())
    assert [c.next_record_id() for _ in range(3)] == [1, 2, 3]
    assert c.stats["record_ids"] == 3


# ---------------------------------------------------------------------------
# the produce path and acks
# ---------------------------------------------------------------------------
def test_acks_all_is_answered_when_the_followers_have_it():
    """Leader append, followers' parked fetches answered, their next fetch
    moves the HW, the answer goes: four one-way hops of 1 ms."""
    b = Bench()
    b.at(0.1, lambda: b.produce(n=3))
    b.run(1)
    [(t, status, body)] = b.answers
    assert status == "ok" and body.error is None and body.base_offset == 0
    assert t == pytest.approx(0.104)
    assert [r[5] for r in b.rows("append")] == [0, 1, 2]
    assert {r[7] for r in b.rows("append")} == {"kafka-0"}
    for broker in ("kafka-0", "kafka-1", "kafka-2"):
        assert b.ids(broker) == [1, 2, 3]
    assert b.cluster.high_watermark("t", 0) == b.cluster.log_end_offset("t", 0) == 3


def test_acks_1_is_answered_after_the_leaders_append():
    b = Bench()
    b.at(0.1, lambda: b.produce(acks=1))
    b.run(1)
    [(t, _status, body)] = b.answers
    assert t == pytest.approx(0.102) and body.base_offset == 0


def test_acks_0_gets_no_answer_but_is_appended():
    b = Bench()
    b.at(0.1, lambda: b.produce(acks=0))
    b.run(1)
    assert b.answers == [] and len(b.rows("append")) == 1


def test_a_follower_answers_not_leader():
    b = Bench()
    out = b.fetch(0, to="kafka-1")
    b.at(0.1, lambda: b.client.request("kafka-2", ProduceRequest(
        RecordBatch("t", 0, [b.record()]), 1)).callbacks.append(
            lambda e: b.answers.append((0, e.value.status, e.value.body))))
    b.run(1)
    assert out[0][2].error == "not_leader"
    assert b.answers[0][2].error == "not_leader" and b.answers[0][2].base_offset == -1


# ---------------------------------------------------------------------------
# fetch: the high watermark
# ---------------------------------------------------------------------------
def test_consumers_read_only_below_the_high_watermark():
    """Right after the leader's append the record is not readable (HW 0);
    once the followers have it, it is."""
    b = Bench()
    early: list = []
    late: list = []
    b.at(0.1, lambda: b.produce())
    b.at(0.1015, lambda: b.fetch(0, out=early))  # arrives after the append
    b.at(0.2, lambda: b.fetch(0, out=late))
    b.run(1)
    body = early[0][2]
    assert body.records == [] and body.high_watermark == 0 and body.log_end_offset == 1
    body = late[0][2]
    assert [(o, r.record_id) for o, r in body.records] == [(0, 1)]
    assert body.high_watermark == 1


def test_a_consumer_fetch_waits_for_the_high_watermark():
    """A long poll at the HW is answered as soon as the HW moves..."""
    b = Bench()
    out: list = []
    b.at(0.05, lambda: b.fetch(0, max_wait=0.5, out=out))
    b.at(0.1, lambda: b.produce())
    b.run(1)
    [(t, _s, body)] = out
    assert t == pytest.approx(0.104)  # with the producer's ack
    assert [o for o, _ in body.records] == [0]


def test_a_consumer_fetch_with_nothing_comes_back_empty_after_max_wait():
    """... or empty after max_wait (fetch.max.wait.ms)."""
    b = Bench()
    out: list = []
    b.at(0.05, lambda: b.fetch(0, max_wait=0.3, out=out))
    b.run(1)
    [(t, _s, body)] = out
    assert t == pytest.approx(0.352) and body.records == [] and body.error is None


def test_fetch_outside_the_log_is_out_of_range():
    b = Bench()
    b.at(0.1, lambda: b.produce(n=2))
    outs: list = []
    b.at(0.5, lambda: (b.fetch(3, out=outs), b.fetch(-1, out=outs), b.fetch(2, out=outs)))
    b.run(1)
    errors = sorted(str(o[2].error) for o in outs)
    assert errors == ["None", "offset_out_of_range", "offset_out_of_range"]
    assert all(o[2].log_end_offset == 2 for o in outs)


def test_max_records_limits_a_consumer_fetch():
    b = Bench()
    b.at(0.1, lambda: b.produce(n=10))
    out: list = []
    b.at(0.5, lambda: b.fetch(4, max_records=3, out=out))
    b.run(1)
    assert [o for o, _ in out[0][2].records] == [4, 5, 6]


def test_replication_traffic_is_network_messages():
    """Nothing teleports: the records reach the followers in fetch responses."""
    b = Bench()
    b.at(0.1, lambda: b.produce(n=2))
    b.run(0.2)
    follower_answers = [m for m in b.world.trace.messages
                        if m[1] == "send" and m[3] == "reply" and m[4] == "kafka-0"
                        and m[5] in ("kafka-1", "kafka-2") and m[7] == 200]
    assert len(follower_answers) == 2


# ---------------------------------------------------------------------------
# ISR and min.insync.replicas
# ---------------------------------------------------------------------------
def test_a_cut_off_follower_leaves_the_isr_and_rejoins_when_caught_up():
    """replica.lag.time.max.ms: not caught up for 30 s -> out of the ISR (checked
    every 15 s); the HW then moves without it; after the cut heals it catches
    up and re-joins."""
    b = Bench()
    b.world.network.cut(["kafka-2"], at=1.0, heal_at=70.0)
    for i in range(60):
        b.at(2.0 + i, lambda: b.produce())
    b.run(100)
    shrink = b.events("isr_shrink")
    assert len(shrink) == 1 and "kafka-2 out" in shrink[0][3]
    assert 31.0 < shrink[0][0] <= 46.0
    expand = b.events("isr_expand")
    assert len(expand) == 1 and expand[0][0] > 70.0 and "kafka-2 in" in expand[0][3]
    assert b.cluster.isr("t", 0) == ["kafka-0", "kafka-1", "kafka-2"]
    assert b.ids("kafka-2") == b.ids("kafka-0") == list(range(1, 61))
    # acks=all waited for kafka-2 until the shrink (at 45 s), then only for kafka-1
    times = {body.base_offset: t for t, _s, body in b.answers}
    assert times[0] == times[40] == pytest.approx(shrink[0][0] + LAT)
    assert times[50] == pytest.approx(52.004)


def test_acks_all_waiting_for_a_lagging_follower_is_answered_at_the_shrink():
    b = Bench()
    b.world.network.cut(["kafka-2"], at=0.5)
    b.at(1.0, lambda: b.produce())
    b.run(60)
    [(t, _s, body)] = b.answers
    shrink_time = b.events("isr_shrink")[0][0]
    assert body.error is None and t == pytest.approx(shrink_time + LAT)


def test_acks_all_with_too_few_in_sync_replicas_is_refused():
    """min.insync.replicas=2: with both followers fenced the ISR is the leader
    alone; acks=all is refused NOT_ENOUGH_REPLICAS and nothing is appended;
    acks=1 still goes through."""
    b = Bench(min_insync_replicas=2)
    install(b.world, [Crash("kafka-1", 1.0), Crash("kafka-2", 1.0)])
    b.at(5.0, lambda: b.produce())  # waits: no follower copies it ...
    b.at(20.0, lambda: b.produce())
    b.at(20.0, lambda: b.produce(acks=1))
    b.run(30)
    assert b.cluster.isr("t", 0) == ["kafka-0"]
    errors = [(round(t, 3), body.error) for t, _s, body in b.answers]
    # ... and is answered NOT_ENOUGH_REPLICAS_AFTER_APPEND when the HW covers it
    assert errors == [(10.001, "not_enough_replicas"), (20.002, "not_enough_replicas"),
                      (20.002, None)]
    assert len(b.rows("append")) == 2
    assert b.cluster.stats["not_enough_replicas"] == 2


# ---------------------------------------------------------------------------
# failover
# ---------------------------------------------------------------------------
def test_leader_crash_elects_the_first_live_isr_replica_after_failover_after():
    b = Bench()
    install(b.world, [Crash("kafka-0", 1.0, 30.0)])
    b.run(60)
    assert b.cluster.leader("t", 0).name == "kafka-1"  # type: ignore[union-attr]
    [elect] = b.events("leader_election")
    assert elect[0] == pytest.approx(10.0) and elect[1] == "kafka-1"
    assert b.events("fenced")[0][0] == pytest.approx(10.0)
    assert b.cluster.leader_epoch("t", 0) == 1
    # the old leader comes back as a follower and re-joins the ISR
    assert b.cluster.isr("t", 0) == ["kafka-0", "kafka-1", "kafka-2"]


def test_a_leader_back_before_failover_after_keeps_leading():
    b = Bench()
    install(b.world, [Crash("kafka-0", 1.0, 5.0)])
    b.at(7.0, lambda: b.produce())
    b.run(20)
    assert b.events("leader_election") == [] and b.events("fenced") == []
    assert b.cluster.leader("t", 0).name == "kafka-0"  # type: ignore[union-attr]
    assert b.answers[0][2].error is None


def test_records_the_new_leader_lacks_are_truncated_with_acks_1():
    """acks=1: the leader acknowledges records its followers have not fetched;
    it crashes; the new leader's log is shorter; the lost records get a
    ``truncate`` row (node: the old leader) and disappear from the old
    leader's log when it comes back and follows."""
    b = Bench()
    b.at(1.0, lambda: b.produce(n=2, acks=1))
    # the followers cannot fetch the second batch before the leader dies
    b.world.network.cut(["kafka-1", "kafka-2"], at=1.5, heal_at=3.5)
    b.at(2.0, lambda: b.produce(n=3, acks=1))
    install(b.world, [Crash("kafka-0", 3.0, 20.0)])
    b.run(60)
    acked = [body.base_offset for _t, _s, body in b.answers]
    assert acked == [0, 2]  # both acknowledged...
    lost = b.rows("truncate")
    assert [(r[2], r[5], r[7], r[8]) for r in lost] == [
        (3, 2, "kafka-0", "leader_failover"), (4, 3, "kafka-0", "leader_failover"),
        (5, 4, "kafka-0", "leader_failover")]
    assert b.cluster.stats["truncated"] == 3
    for broker in ("kafka-0", "kafka-1", "kafka-2"):  # ... the second batch is gone
        assert b.ids(broker) == [1, 2]
    assert b.cluster.stats["replica_truncated"] == 3


def test_offline_partition_waits_for_its_last_isr_replica():
    """Clean election only: with every other replica down the partition has no
    leader until the last in-sync one comes back."""
    b = Bench()
    install(b.world, [Crash("kafka-1", 1.0, 100.0), Crash("kafka-2", 1.0, 100.0),
                      Crash("kafka-0", 20.0, 30.0)])
    b.run(40)
    assert b.cluster.leader("t", 0) is None
    assert b.cluster.isr("t", 0) == ["kafka-0"]
    assert b.events("partition_offline")
    b.run(60)
    assert b.cluster.leader("t", 0).name == "kafka-0"  # type: ignore[union-attr]


def test_an_offline_partition_takes_its_isr_replica_back_before_it_is_fenced():
    """kafka-0 and kafka-2 die for good; kafka-1, the last in-sync replica, is
    down when kafka-0 is fenced (offline) and back before its own fence: it
    leads at once."""
    b = Bench()
    install(b.world, [Crash("kafka-0", 1.0), Crash("kafka-2", 1.0),
                      Crash("kafka-1", 5.0, 7.0)])
    b.run(11)
    assert b.cluster.leader("t", 0) is None and b.cluster.isr("t", 0) == ["kafka-1"]
    b.run(12.5)
    assert b.cluster.leader("t", 0).name == "kafka-1"  # type: ignore[union-attr]
    assert b.events("unfenced") == []


def test_unclean_election_takes_a_stale_replica_and_loses_what_the_hw_covered():
    b = Bench(unclean_leader_election=True)
    install(b.world, [Crash("kafka-1", 1.0, 200.0), Crash("kafka-2", 1.0, 20.0),
                      Crash("kafka-0", 20.5)])
    b.at(15.0, lambda: b.produce(n=2))  # acknowledged by kafka-0 alone (ISR = itself)
    b.run(100)
    assert b.answers[0][2].error is None
    assert b.cluster.leader("t", 0).name == "kafka-2"  # type: ignore[union-attr]
    assert "(unclean)" in b.events("leader_election")[0][3]
    assert [r[2] for r in b.rows("truncate")] == [1, 2]


def test_a_hung_leader_is_fenced_and_answers_not_leader_when_it_wakes():
    b = Bench()
    install(b.world, [Hang("kafka-0", 1.0, 20.0)])
    b.at(2.0, lambda: b.produce())
    b.run(40)
    assert b.cluster.leader("t", 0).name == "kafka-1"  # type: ignore[union-attr]
    [(t, status, body)] = b.answers
    assert t == pytest.approx(21.001) and status == "ok" and body.error == "not_leader"
    assert b.events("unfenced")[0][0] == pytest.approx(21.0)


def test_a_crash_during_a_hang_keeps_the_silence_count():
    """The broker has sent no heartbeat since its hang began: a crash during the
    hang does not push its fencing back."""
    b = Bench()
    install(b.world, [Hang("kafka-0", 1.0, 20.0), Crash("kafka-0", 5.0, 30.0)])
    b.run(20)
    assert b.events("fenced")[0][0] == pytest.approx(10.0)


def test_a_request_in_flight_at_a_crash_is_reset():
    b = Bench()
    b.world.network.cut(["kafka-1", "kafka-2"], at=0.5)
    b.at(1.0, lambda: b.produce())  # waits for followers that cannot fetch
    install(b.world, [Crash("kafka-0", 2.0, 1.0)])
    b.run(5)
    assert [s for _t, s, _b in b.answers] == ["reset"]


def test_a_lost_replica_fetch_is_sent_again_after_the_socket_timeout():
    b = Bench()
    b.world.network.link("kafka-1", "kafka-0", latency=LAT, loss=1.0, symmetric=False)
    b.at(0.5, lambda: b.world.network.link("kafka-1", "kafka-0", latency=LAT,
                                           symmetric=False))
    b.at(1.0, lambda: b.produce(acks=1))
    b.run(30.5)
    assert b.ids("kafka-1") == [] and b.ids("kafka-2") == [1]
    b.run(31.5)  # the first one-second check after 30 s (replica.socket.timeout.ms)
    assert b.ids("kafka-1") == [1]


# ---------------------------------------------------------------------------
# the idempotent producer
# ---------------------------------------------------------------------------
def _pid(b: Bench) -> int:
    out: list = []
    b.client.request("kafka-1", InitProducerIdRequest("client")).callbacks.append(
        lambda e: out.append(e.value.body.producer_id))
    b.run(b.world.now + 0.1)
    return out[0]


def test_producer_ids_are_unique():
    b = Bench()
    assert [_pid(b), _pid(b)] == [1, 2]


def test_a_repeat_of_one_of_the_last_5_batches_is_acked_not_appended():
    b = Bench()
    pid = _pid(b)
    batches = []
    for i in range(6):
        batches.append(b.produce(n=2, pid=pid, seq=2 * i))
        b.run(b.world.now + 0.1)
    b.produce(pid=pid, seq=2, records=batches[1])  # the 5th from last: a duplicate
    b.run(b.world.now + 0.1)
    last = b.answers[-1][2]
    assert last.error is None and last.duplicate and last.base_offset == 2
    assert len(b.rows("append")) == 12
    assert [(r[2], r[5]) for r in b.rows("dedup")] == [(3, 2), (4, 3)]
    # the 6th from last is no longer remembered: out of order
    b.produce(pid=pid, seq=0, records=batches[0])
    b.run(b.world.now + 0.1)
    assert b.answers[-1][2].error == "out_of_order"
    assert b.cluster.stats["duplicates_refused"] == 1


def test_a_duplicate_with_acks_all_waits_for_the_high_watermark_too():
    """A retry of a batch the followers do not have yet is acknowledged (as a
    duplicate, with its first offset) only once the HW covers it."""
    b = Bench()
    pid = _pid(b)
    for follower in ("kafka-1", "kafka-2"):  # a slow replication link: 2 s each way
        b.world.network.link("kafka-0", follower, latency=2.0)
    first: list = []
    b.at(1.0, lambda: first.extend(b.produce(n=2, pid=pid, seq=0)))
    b.at(2.0, lambda: b.produce(pid=pid, seq=0, records=first))
    b.run(10)
    # the leader answers the followers' parked fetches at 0.501 s: on the slow link
    # now, so they fetch offset 0 at 4.501 s and offset 2 at 8.501 s: the HW is 2
    assert [(round(t, 3), body.base_offset, body.duplicate) for t, _s, body in b.answers] == [
        (8.502, 0, False), (8.502, 0, True)]
    assert len(b.rows("append")) == 2 and len(b.rows("dedup")) == 2


def test_a_sequence_gap_is_refused_out_of_order():
    b = Bench()
    pid = _pid(b)
    b.produce(n=2, pid=pid, seq=0)
    b.run(b.world.now + 0.1)
    gap = b.produce(n=1, pid=pid, seq=3)  # expected 2
    b.run(b.world.now + 0.1)
    b.produce(n=1, pid=pid, seq=2)
    b.run(b.world.now + 0.1)
    assert [a[2].error for a in b.answers] == [None, "out_of_order", None]
    refused = b.rows("refuse")
    assert [(r[2], r[5], r[8]) for r in refused] == [(gap[0].record_id, -1, "out_of_order")]
    assert b.cluster.stats["out_of_order"] == 1 and len(b.rows("append")) == 3


def test_a_producer_without_state_may_start_at_any_sequence():
    """Kafka's checkSequence: no state for the producer (its records may have
    been removed) -> any first sequence is accepted; then it must follow."""
    b = Bench()
    pid = _pid(b)
    b.produce(n=2, pid=pid, seq=7)
    b.run(b.world.now + 0.1)
    b.produce(n=1, pid=pid, seq=10)
    b.run(b.world.now + 0.1)
    assert [a[2].error for a in b.answers] == [None, "out_of_order"]


def test_idempotent_state_survives_failover():
    """Followers keep the producers' last batches too: a retry of a batch the
    old leader appended is a duplicate on the new leader, not a second copy."""
    b = Bench()
    pid = _pid(b)
    first = b.produce(n=3, pid=pid, seq=0)
    install(b.world, [Crash("kafka-0", 1.0, 50.0)])
    b.run(12)
    assert b.cluster.leader("t", 0).name == "kafka-1"  # type: ignore[union-attr]
    b.produce(pid=pid, seq=0, records=first)
    b.produce(n=1, pid=pid, seq=3)
    b.run(13)
    dup, nxt = b.answers[-2][2], b.answers[-1][2]
    assert dup.duplicate and dup.base_offset == 0
    assert nxt.error is None and nxt.base_offset == 3
    assert [r[7] for r in b.rows("dedup")] == ["kafka-1"] * 3


def test_idempotent_state_is_rebuilt_after_truncation():
    """A follower that loses records it had keeps no sequence state for them:
    the producer's retry of the lost batch is appended, not taken for a
    duplicate."""
    b = Bench()
    pid = _pid(b)
    b.at(1.0, lambda: b.produce(n=1, pid=pid, seq=0, acks=1))
    lost: list = []
    b.world.network.cut(["kafka-1", "kafka-2"], at=1.5, heal_at=3.5)
    b.at(2.0, lambda: lost.extend(b.produce(n=1, pid=pid, seq=1, acks=1)))
    install(b.world, [Crash("kafka-0", 3.0, 20.0)])
    b.at(15.0, lambda: b.produce(pid=pid, seq=1, records=lost, acks=1))
    b.run(60)
    assert b.answers[-1][2].error is None and not b.answers[-1][2].duplicate
    assert b.ids("kafka-0") == b.ids("kafka-1") == [1, 2]
    assert [r[5] for r in b.rows("append") if r[2] == 2] == [1, 1]


# ---------------------------------------------------------------------------
# hooks: coordinator, custom requests
# ---------------------------------------------------------------------------
def test_group_partition_is_kafkas():
    """abs(groupId.hashCode()) % 50 with Java's String.hashCode."""
    assert group_partition("abc") == 96354 % 50
    assert group_partition("") == 0
    # "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0
    assert group_partition("polygenelubricants") == 0
    # a negative hash code: "my-group".hashCode() == 1231296232? computed here
    h = 0
    for ch in "consumer-group-1":
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    assert group_partition("consumer-group-1") == abs(h) % 50


def test_the_coordinator_moves_when_its_broker_is_fenced():
    w = World()
    c = LogCluster(w)
    group = "g"
    first = c.coordinator_for(group)
    assert first is c.brokers[group_partition(group) % 3]
    install(w, [Crash(first.name, 1.0, 100.0)])
    w.run(5)
    assert c.coordinator_for(group) is first  # not yet fenced: requests refused
    w.run(15)
    moved = c.coordinator_for(group)
    assert moved is not first and moved.up


def test_on_request_hands_a_registered_body_type_to_its_handler():
    class Ping:
        pass

    seen: list = []

    def handler(broker, msg):
        seen.append((broker.name, type(msg.body)))
        broker.reply(msg, "pong")

    b = Bench()
    b.cluster.on_request(Ping, handler)
    out: list = []
    b.client.request("kafka-2", Ping()).callbacks.append(lambda e: out.append(e.value.body))
    b.client.request("kafka-2", object()).callbacks.append(
        lambda e: out.append(e.value.status))
    b.run(1)
    assert seen == [("kafka-2", Ping)] and out == ["pong", "error"]


def test_an_error_rate_fails_requests_unprocessed():
    b = Bench()
    install(b.world, [ErrorRate("kafka-0", 0.5, 1.0, rate=1.0)])
    b.at(1.0, lambda: b.produce(acks=1))
    b.at(2.0, lambda: b.produce(acks=1))
    b.run(3)
    assert (b.answers[0][1], b.answers[0][2]) == ("error", None)
    assert b.answers[1][2].base_offset == 0 and len(b.rows("append")) == 1


def test_an_append_in_progress_waits_out_a_short_hang():
    """A hang shorter than failover_after: the append under way finishes when
    it ends, and the queued request after it."""
    b = Bench(append_time=0.5)
    install(b.world, [Hang("kafka-0", 1.2, 3.0)])
    b.at(1.0, lambda: [b.produce(acks=1) for _ in range(2)])
    b.run(10)
    assert [round(t, 3) for t, _s, _b in b.answers] == [4.201, 4.701]
    assert [body.base_offset for _t, _s, body in b.answers] == [0, 1]
    assert b.events("fenced") == []


def test_append_time_is_the_request_handlers_cost():
    """Produce requests queue for the broker's one request handler."""
    b = Bench(append_time=0.01)
    b.at(0.1, lambda: [b.produce(acks=1) for _ in range(3)])
    b.run(1)
    times = [round(t, 4) for t, _s, _b in b.answers]
    assert times == [0.112, 0.122, 0.132]
    assert b.cluster.brokers[0].busy_seconds(1.0) == pytest.approx(0.03)


# ---------------------------------------------------------------------------
# properties over seeds
# ---------------------------------------------------------------------------
class Load:
    """A steady producer (a batch of 3 records every 20 ms to each partition, no
    retries) and a consumer reading every partition from its leader, checking
    what it gets; the first leader of partition 0 crashes at ``crash_at`` for
    ``down_for`` s.  The network's latencies are exponential, 2 ms on average
    from the client, 50 ms between brokers (another region), so the leader always
    holds records its followers have not fetched yet."""

    def __init__(self, seed: int, acks: object, crash_at: float, down_for: float,
                 partitions: int = 2, faults: list | None = None) -> None:
        b = self.b = Bench(seed=seed, latency=None, partitions=partitions)
        w = b.world
        w.network.set_default(Link(latency=Exponential(0.002)))
        names = [x.name for x in b.cluster.brokers]
        for i, x in enumerate(names):
            for y in names[i + 1:]:
                w.network.link(x, y, latency=Exponential(0.05))
        self.acks = acks
        self.acked: dict[int, tuple[int, int]] = {}  # record id -> (partition, offset)
        self.read: dict[tuple[int, int], int] = {}  # (p, offset) -> record id
        self.violations: list[str] = []
        self.partitions = partitions
        self.offsets = [0] * partitions
        for p in range(partitions):
            w.at(0.0, lambda p=p: self._tick(p))
            w.at(0.0, lambda p=p: self._consume(p))
        w.at(0.0, self._check)
        leader = b.cluster.leader("t", 0).name  # type: ignore[union-attr]
        install(w, faults if faults is not None else [Crash(leader, crash_at, down_for)])
        self.stop = crash_at + 12.0  # 3 s on the new leader
        self.end = max(self.stop, crash_at + down_for) + 5.0

    def _tick(self, p: int) -> None:
        b = self.b
        w = b.world
        if w.now >= self.stop:
            return
        lead = b.cluster.leader("t", p)
        if lead is not None:
            recs = [b.record(key=p) for _ in range(3)]
            ev = b.client.request(lead.name, ProduceRequest(RecordBatch("t", p, recs),
                                                            self.acks))

            rids = [r.record_id for r in recs]

            def answered(e) -> None:
                m = e.value
                if m.status == "ok" and m.body.error is None:
                    for i, rid in enumerate(rids):
                        self.acked[rid] = (p, m.body.base_offset + i)

            ev.callbacks.append(answered)
        w.env.timeout(0.02).callbacks.append(lambda _e: self._tick(p))

    def _consume(self, p: int) -> None:
        b = self.b
        lead = b.cluster.leader("t", p)
        w = b.world
        if lead is None or not lead.up:
            w.env.timeout(0.1).callbacks.append(lambda _e: self._consume(p))
            return
        ev = b.client.request(lead.name, FetchRequest("t", p, self.offsets[p], 50))

        def got(e) -> None:
            m = e.value
            if m.status == "ok" and m.body.error is None:
                body = m.body
                for off, r in body.records:
                    if off >= body.high_watermark:
                        self.violations.append(f"read {off} above HW {body.high_watermark}")
                    self.read[(p, off)] = r.record_id
                if body.records:
                    self.offsets[p] = body.records[-1][0] + 1
                w.env.timeout(0).callbacks.append(lambda _e: self._consume(p))
            else:
                w.env.timeout(0.1).callbacks.append(lambda _e: self._consume(p))

        ev.callbacks.append(got)

    def _check(self) -> None:
        """HW <= the smallest LEO over the ISR, at every leader, every 20 ms."""
        c = self.b.cluster
        for p in range(self.partitions):
            lead = c.leader("t", p)
            if lead is not None and lead.up:
                hw = c.replica("t", p, lead.name).hw
                low = min(len(c.replica("t", p, n).log) for n in c.isr("t", p))
                if hw > low:
                    self.violations.append(f"p{p} HW {hw} > min ISR LEO {low}")
        self.b.world.env.timeout(0.02).callbacks.append(lambda _e: self._check())

    def run(self) -> Load:
        self.b.run(self.end)
        return self

    def lost_acked(self) -> list[int]:
        c = self.b.cluster
        lost = []
        for rid, (p, off) in self.acked.items():
            log = c.replica("t", p).log
            if off >= len(log) or log.records[off].record_id != rid:
                lost.append(rid)
        return lost


SEEDS = st.integers(0, 10_000)


@settings(max_examples=5, deadline=None)
@given(SEEDS, st.floats(1.0, 3.0), st.floats(5.0, 20.0))
def test_acks_all_never_loses_an_acknowledged_record(seed, crash_at, down_for):
    load = Load(seed, "all", crash_at, down_for).run()
    assert load.acked and load.lost_acked() == []
    assert load.violations == []
    # what a consumer read (below the HW) is never truncated
    truncated = {r[2] for r in load.b.rows("truncate")}
    assert truncated.isdisjoint(load.read.values())
    assert truncated.isdisjoint(load.acked)


FAULTS = st.lists(st.tuples(st.sampled_from(["kafka-0", "kafka-1", "kafka-2"]),
                            st.sampled_from([Crash, Hang]), st.floats(0.5, 12.0),
                            st.floats(1.0, 20.0)), min_size=1, max_size=4)


@settings(max_examples=8, deadline=None)
@given(SEEDS, FAULTS)
def test_any_crashes_and_hangs_keep_the_guarantees(seed, faults):
    """Random crashes and hangs of any brokers: acks=all loses no acknowledged
    record, the HW never passes an in-sync replica's log end, consumers read
    only below it and never a record later truncated, and once every broker
    is back and quiet all replicas hold the same log."""
    load = Load(seed, "all", 12.0, 20.0,
                faults=[kind(node, at, length) for node, kind, at, length in faults])
    load.end = 70.0
    load.run()
    assert load.acked and load.lost_acked() == []
    assert load.violations == []
    truncated = {r[2] for r in load.b.rows("truncate")}
    assert truncated.isdisjoint(load.read.values())
    c = load.b.cluster
    for p in range(load.partitions):
        logs = {n: load.b.ids(n, p) for n in c.replicas("t", p)}
        assert len({tuple(v) for v in logs.values()}) == 1, logs
        assert c.high_watermark("t", p) == c.log_end_offset("t", p)
    # the ledger balances: every message delivered, dropped or still in flight
    net = load.b.world.network
    assert net.sent == net.delivered + sum(net.dropped.values()) + net.in_flight


def test_acks_1_leader_crash_loses_acknowledged_records():
    """Over seeds, the records the old leader acknowledged but had not passed on
    are lost; each has a truncate row; the consumers never saw them."""
    losses = []
    for seed in range(3):
        load = Load(seed, 1, 2.0 + seed / 7, 12.0).run()
        lost = load.lost_acked()
        truncated = {r[2] for r in load.b.rows("truncate")}
        assert set(lost) <= truncated
        assert truncated.isdisjoint(load.read.values())
        assert load.violations == []
        losses.append(len(lost))
    assert all(n > 0 for n in losses), losses


@settings(max_examples=3, deadline=None)
@given(SEEDS, st.sampled_from([0, 1, "all"]))
def test_replicas_agree_after_failover(seed, acks):
    """Once everything is back and quiet, every replica holds the leader's log."""
    load = Load(seed, acks, 1.5, 12.0).run()
    c = load.b.cluster
    for p in range(load.partitions):
        logs = {n: load.b.ids(n, p) for n in c.replicas("t", p)}
        assert len({tuple(v) for v in logs.values()}) == 1, logs
        assert c.high_watermark("t", p) == c.log_end_offset("t", p)
        assert sorted(c.isr("t", p)) == sorted(c.replicas("t", p))


def test_same_seed_same_run():
    def run(seed):
        load = Load(seed, 1, 1.7, 12.0).run()
        w = load.b.world
        return w.trace.records, w.trace.messages, w.trace.events

    assert run(3) == run(3)
    assert run(3)[1] != run(4)[1]
