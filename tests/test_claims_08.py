"""Every number notebook 08's prose states is recomputed here (DESIGN.md, principle 10).

Each test repeats the calls of the cells it checks (module-scoped fixtures, so
each run is made once) and registers the exact phrases it checks with
:func:`claim`; ``claims_kit.enforce`` adds three tests: the phrases are still in
the notebook, every digit of its prose is claimed or allowed (with a reason,
:data:`ALLOWED`), and the cells still make the calls repeated here
(:data:`CALLS`).

Runs are deterministic for a seed, so a count or a time the prose gives to its
digits is checked to those digits.  Where the prose draws a lesson from one
run -- competing consumers break the order, a sharded channel keyed by order
id keeps it, null keys break it again, instances beyond the partitions idle, a
crash is noticed a session timeout late, sticky moves fewest -- the lesson is
checked on more seeds too.
"""

from __future__ import annotations

import inspect

import matplotlib
import pytest
from claims_kit import Prose, default, enforce, quiet

import simcomm
from simcomm import viz
from simcomm.messaging import (
    ASSIGNORS,
    GroupConsumer,
    moved_partitions,
    murmur2,
    partition_for_key,
    to_positive,
)
from simcomm.scenarios import order_lifecycle as ol
from simcomm.scenarios import rebalance as rb
from simcomm.viz.ordering import key_order_points

matplotlib.use("Agg")

NB = "08-ordering-and-sharding"

ALLOWED = {
    "§3.3.4–3.3.6": "the book's sections",
    "(notebook 07's RabbitMQ-like broker)": "names the notebook before",
    "(`x & 0x7fffffff`, not `abs`)": "Kafka's mask, a constant of the formula",
    "`toPositive(murmur2(key)) mod N`": "the formula (no number)",
    "Kafka's 32-bit MurmurHash2": "the name of the hash function and its width",
    "**produce loss** 0.1": "a dashboard setting for the learner to try",
    "(notebook 09 follows this up)": "names the next notebook",
}

CALLS = [
    'pd.DataFrame(simcomm.describe("order-lifecycle")).set_index("field")',
    'queue = simcomm.run("order-lifecycle", seed=1)',
    'viz.key_order(queue)',
    'queue.key_order().query("key == 1001")',
    'viz.delivery_causes(queue)',
    'orders = range(1001, 1007)',
    '"partition": [partition_for_key(str(o), 6) for o in orders]',
    '"& 0x7fffffff": [to_positive(murmur2(str(o).encode())) for o in orders]',
    'sharded = simcomm.run("order-lifecycle", seed=1, channel="sharded")',
    "sharded.records.query(\"event == 'append' and key in (1001, 1002, 1003)\")",
    'viz.key_order(sharded)',
    'viz.partition_assignment(sharded)',
    'by_customer = simcomm.run("order-lifecycle", seed=1, channel="sharded", '
    'key="customer_id")',
    'null_keys = simcomm.run("order-lifecycle", seed=1, channel="sharded", key="none")',
    'viz.key_order(null_keys)',
    'crowd = simcomm.run("order-lifecycle", seed=1, channel="sharded", consumers=8)',
    'viz.partition_assignment(crowd)',
    'members = {m: ["t0", "t1", "t2", "t3"] for m in ("C0", "C1", "C2")}',
    'topics = {"t0": 2, "t1": 2, "t2": 2, "t3": 2}',
    'before = {name: ASSIGNORS[name](members, topics) for name in ("range", "roundrobin", '
    '"sticky")}',
    'rest = {m: subs for m, subs in members.items() if m != "C1"}',
    'after = {name: ASSIGNORS[name](rest, topics, before[name]) for name in before}',
    '"moved": len(moved_partitions(before[name], after[name]))',
    'pd.DataFrame(simcomm.describe("rebalance")).set_index("field")',
    'eager = simcomm.run("rebalance", seed=1)',
    'eager.rebalances()',
    'viz.partition_assignment(eager)',
    'viz.consumer_lag(eager)',
    'coop = simcomm.run("rebalance", seed=1, assignor="cooperative-sticky")',
    'coop.rebalances()',
    'viz.partition_assignment(coop)',
    'viz.consumer_lag(coop)',
    'simcomm.explore("order-lifecycle")',
    'simcomm.compare("rebalance", a={"assignor": "range"}, b={"assignor": '
    '"cooperative-sticky"})',
]

PROSE = Prose(NB, allowed=ALLOWED, calls=CALLS)
claim = PROSE.claim

(test_every_claimed_or_allowed_phrase_is_in_its_notebook,
 test_every_number_in_the_prose_is_checked_or_allowed,
 test_the_notebooks_still_make_the_calls_checked_here) = enforce(PROSE)


def _run(*args, **kwargs):
    return quiet(lambda: simcomm.run(*args, progress=False, **kwargs))


def _texts(fig) -> str:
    """Every text the figure shows, joined (its titles included)."""
    from matplotlib.text import Text

    return " | ".join(t.get_text() for t in fig.findobj(Text) if t.get_text())


# == fixtures: the notebook's runs ==================================================

@pytest.fixture(scope="module")
def queue():
    return _run("order-lifecycle", seed=1)


@pytest.fixture(scope="module")
def sharded():
    return _run("order-lifecycle", seed=1, channel="sharded")


@pytest.fixture(scope="module")
def by_customer():
    return _run("order-lifecycle", seed=1, channel="sharded", key="customer_id")


@pytest.fixture(scope="module")
def null_keys():
    return _run("order-lifecycle", seed=1, channel="sharded", key="none")


@pytest.fixture(scope="module")
def crowd():
    return _run("order-lifecycle", seed=1, channel="sharded", consumers=8)


@pytest.fixture(scope="module")
def eager():
    return _run("rebalance", seed=1)


@pytest.fixture(scope="module")
def coop():
    return _run("rebalance", seed=1, assignor="cooperative-sticky")


MEMBERS = {m: ["t0", "t1", "t2", "t3"] for m in ("C0", "C1", "C2")}
TOPICS = {"t0": 2, "t1": 2, "t2": 2, "t3": 2}


@pytest.fixture(scope="module")
def assignments():
    before = {name: ASSIGNORS[name](MEMBERS, TOPICS) for name in ("range", "roundrobin",
                                                                    "sticky")}
    rest = {m: subs for m, subs in MEMBERS.items() if m != "C1"}
    after = {name: ASSIGNORS[name](rest, TOPICS, before[name]) for name in before}
    return before, after


# == the scenario ===================================================================

@claim("creates about 10 orders a second (Poisson)",
       "follow each other 50 ms apart on average",
       "Three instances of the order history service apply them, each taking 50 ms per "
       "event on average",
       "a topic of `partitions` partitions on a three-broker Kafka-like cluster")
def test_order_lifecycle_defaults(sharded):
    assert default("order-lifecycle", "order_rate") == 10
    assert default("order-lifecycle", "event_gap") == 0.05
    assert default("order-lifecycle", "service_time") == 0.05
    assert default("order-lifecycle", "consumers") == 3
    assert default("order-lifecycle", "channel") == "queue"
    assert ol.BROKERS == 3
    assert sorted(n for n in sharded.world.nodes if n.startswith("kafka-")) == [
        "kafka-0", "kafka-1", "kafka-2"]


# == competing consumers =============================================================

@claim("126 of the 852 events applied were applied after an event of their order "
       "produced later",
       "The ✕ at (2, 1) are 47 orders whose `OrderCreated` was applied second",
       "the ✕ at (3, 1) 24 orders whose `OrderCreated` was applied last",
       "Of the 284 orders, 115 had at least one event out of order",
       "115 of the 284 orders had an event applied out of order")
def test_competing_consumers_break_the_order(queue):
    s = queue.summary()
    assert (s["reordered"], s["records_applied"]) == (126, 852)
    assert s["lost"] == s["duplicated"] == s["redeliveries"] == 0
    pts = key_order_points(queue)
    marks = pts[pts["kind"] == "reordered"].groupby(["applied", "produced"])["count"].sum()
    assert marks[(2.0, 1.0)] == 47 and marks[(3.0, 1.0)] == 24
    ko = queue.key_order()
    broken = ko.groupby("key")["kind"].apply(lambda k: bool((k == "reordered").any()))
    assert (len(broken), int(broken.sum())) == (284, 115)


@claim("Order 1001, event by event (`produced_index` 0 is `OrderCreated`)",
       "Meanwhile `order-history-3` applied `OrderRevised` and `OrderCancelled`, and the "
       "`OrderCreated` came last, at 0.40 s")
def test_order_1001(queue):
    ko = queue.key_order().query("key == 1001").sort_values("time")
    assert list(ko["produced_index"]) == [1.0, 2.0, 0.0]
    assert list(ko["node"]) == ["order-history-3", "order-history-3", "order-history-1"]
    assert round(float(ko["time"].iloc[-1]), 2) == 0.40
    created = int(ko.loc[ko["produced_index"] == 0, "record_id"].iloc[0])
    # order-history-1 took it first: delivered before either other event was applied
    delivered = [r[0] for r in queue.world.trace.mq
                 if r[1] == "deliver" and r[2] == created and r[4] == "order-history-1"]
    assert delivered and delivered[0] < float(ko["time"].iloc[0])
    produced = queue.records.query("event == 'produce' and key == 1001").sort_values("time")
    assert int(produced["record_id"].iloc[0]) == created


@claim("126 reordered events and 120 gaps",
       "all caused by competing consumers; nothing lost, nothing applied twice")
def test_delivery_causes_of_the_queue(queue):
    causes = queue.delivery_causes()
    got = {(r.anomaly, r.cause): r.count for r in causes.itertuples()}
    assert got == {("reordered", "competing consumers"): 126,
                   ("gap", "competing consumers"): 120}
    assert "126 reordered, 120 gaps: all competing consumers" in _texts(
        viz.delivery_causes(queue))


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_competing_consumers_break_it_on_other_seeds(seed):
    """The lesson: competing consumers reorder with no fault; order id shards do not."""
    q = _run("order-lifecycle", seed=seed, trace=True)
    assert q.summary()["reordered"] > 0
    s = _run("order-lifecycle", seed=seed, channel="sharded")
    assert s.summary()["reordered"] == 0 and s.summary()["gaps"] == 0


# == the partitioner ===================================================================

@claim("The first six orders, keyed by their id on the 6 partitions of `order-events`",
       "Order 1001 goes to partition 0 and order 1002 to partition 3",
       "Order 1002's hash is negative",
       "`abs` would have sent it to partition 5, and Python's `%` on the signed hash to "
       "partition 1")
def test_the_partitioner():
    assert default("order-lifecycle", "partitions") == 6
    assert partition_for_key("1001", 6) == 0
    h = murmur2(b"1002")
    assert h < 0
    assert (to_positive(h) % 6, abs(h) % 6, h % 6) == (3, 5, 1)
    assert partition_for_key("1002", 6) == 3


@claim("1001's at offsets 0, 1 and 2 of partition 0, 1002's in partition 3, 1003's in "
       "partition 1")
def test_each_order_in_one_partition(sharded):
    rec = sharded.records.query("event == 'append' and key in (1001, 1002, 1003)")
    where = {k: (sorted(set(g["partition"])), sorted(g["offset"])) for k, g in rec.groupby("key")}
    assert where[1001] == ([0], [0, 1, 2])
    assert where[1002][0] == [3] and where[1003][0] == [1]
    for key, (parts, _) in where.items():
        assert parts == [partition_for_key(str(key), 6)]


@claim("All 851 events applied were applied in the order they were produced",
       "three green dots on the diagonal, 285 orders each")
def test_sharded_keeps_the_order(sharded):
    s = sharded.summary()
    assert (s["records_applied"], s["reordered"], s["gaps"]) == (851, 0, 0)
    pts = key_order_points(sharded)
    assert set(pts["kind"]) == {"in_order"}
    assert sorted(pts["count"]) == [283, 283, 285]


@claim("The group forms 3 s into the run",
       "`order-history-1` partitions 0 and 1 and so on",
       "The events produced in those first 3 s waited in the log")
def test_the_group_forms_and_ranges(sharded):
    first = sharded.rebalances().iloc[0]
    assert first["why"] == "join" and round(float(first["end"])) == 3
    a = sharded.assignments()
    assert round(float(a["start"].min())) == 3
    owners = a.groupby("member")["partition"].apply(sorted).to_dict()
    assert owners == {"order-history-1": [0, 1], "order-history-2": [2, 3],
                      "order-history-3": [4, 5]}


@claim("Orders 1001 and 1002 are read by different instances")
def test_two_orders_two_readers(sharded):
    applied = sharded.records.query("event == 'apply' and key in (1001, 1002)")
    nodes = applied.groupby("key")["node"].unique()
    assert len(nodes[1001]) == len(nodes[1002]) == 1
    assert nodes[1001][0] != nodes[1002][0]


# == the keys =========================================================================

@claim("Keyed by customer, all of a customer's orders go to one partition, so each order's "
       "events do too: none reordered",
       "But 20 customers are few keys for 6 partitions: partition 4 took 204 of the 857 "
       "events and partition 2 only 66",
       "Keyed by customer, one partition took three times the events of another")
def test_customer_keys(by_customer):
    assert default("order-lifecycle", "customers") == 20
    s = by_customer.summary()
    assert s["reordered"] == 0 and s["records_produced"] == 857
    per = by_customer.records.query("event == 'append'").groupby("partition").size()
    assert (per[4], per[2]) == (204, 66)
    assert per.idxmax() == 4 and per.idxmin() == 2
    assert round(per.max() / per.min()) == 3


@claim("With null keys (`key=\"none\"`), 180 events were reordered")
def test_null_keys_scatter(null_keys):
    s = null_keys.summary()
    assert s["reordered"] == 180
    causes = set(null_keys.key_order().query("kind == 'reordered'")["cause"])
    assert causes == {"competing consumers"}
    # an order's events land in more than one partition
    rec = null_keys.records
    produced = rec[rec["event"] == "produce"][["record_id", "key"]]
    appended = rec[rec["event"] == "append"][["record_id", "partition"]]
    spread = produced.merge(appended, on="record_id").groupby("key")["partition"].nunique()
    assert (spread > 1).mean() > 0.5


@pytest.mark.parametrize("seed", [2, 3])
def test_keys_on_other_seeds(seed):
    """Order and customer keys keep each order in order; null keys do not."""
    for key, reorders in (("customer_id", False), ("none", True)):
        res = _run("order-lifecycle", seed=seed, channel="sharded", key=key)
        assert (res.summary()["reordered"] > 0) is reorders, key


# == more instances than partitions ==================================================

@claim("All eight joined the group, and six own a partition each")
def test_instances_beyond_the_partitions_idle(crowd):
    joined = set(crowd.records.query("event == 'join'")["node"])
    assert joined == set(ol.member_names(8))
    a = crowd.assignments()
    assert set(a["member"]) == set(ol.member_names(6))
    assert (a.groupby("member").size() == 1).all()


@pytest.mark.parametrize("seed", [2, 3])
def test_instances_beyond_the_partitions_idle_on_other_seeds(seed):
    res = _run("order-lifecycle", seed=seed, channel="sharded", consumers=8)
    assert res.assignments()["member"].nunique() == 6


# == the assignors ====================================================================

@claim("three members, four topics of 2 partitions each",
       "with 2 partitions per topic and 3 members, `C0` gets every `p0`, `C1` every `p1`, "
       "and `C2` nothing at all",
       "`roundrobin` deals all 8 partitions in turn (3, 3 and 2)")
def test_the_assignors_before(assignments):
    before, _ = assignments
    r = before["range"]
    assert r["C0"] == [(t, 0) for t in TOPICS] and r["C1"] == [(t, 1) for t in TOPICS]
    assert r["C2"] == []
    assert sorted(len(v) for v in before["roundrobin"].values()) == [2, 3, 3]
    assert before["sticky"] == before["roundrobin"]


@claim("Now `C1` leaves", "move `C1`'s partitions to someone else",
       "`sticky` moves only those 3", "`range` moves 4 (`C2`, which had none, now gets "
       "every `p1`)", "`roundrobin` moves 5")
def test_the_assignors_after_a_leave(assignments):
    before, after = assignments
    moved = {n: moved_partitions(before[n], after[n]) for n in after}
    assert {n: len(m) for n, m in moved.items()} == {"range": 4, "roundrobin": 5,
                                                     "sticky": 3}
    assert moved["sticky"] == set(before["sticky"]["C1"])
    for n in after:
        assert set(before[n]["C1"]) <= moved[n]
    assert after["range"]["C2"] == [(t, 1) for t in TOPICS]


# == rebalancing ======================================================================

@claim("for a minute (5 orders a second, 6 partitions, three members, the range assignor",
       "a fourth member starts at 10 s, `order-history-1` crashes at 25 s",
       "`order-history-3` shuts down cleanly at 45 s")
def test_rebalance_defaults():
    from simcomm.scenarios import base

    assert base.get("rebalance").until == 60
    p = base.make_params(base.get("rebalance"), {})
    assert (p.order_rate, p.partitions, p.consumers, p.assignor) == (5, 6, 3, "range")
    assert p.commit == "after"
    assert (p.join_at, p.crash_at, p.leave_at) == (10, 25, 45)
    assert rb.crashing() == "order-history-1" and rb.leaving(p) == "order-history-3"
    assert rb.joining(p) == "order-history-4"


@claim("Four rebalances", "the group forming (0 to 3 s), the join (10.0 to 12.0 s)",
       "noticed only at 34.0 s", "the session timeout, 10 s", "(45.0 s)",
       "Each takes 2 to 3 s", "(every 3 s)")
def test_eager_rebalances(eager):
    r = eager.rebalances()
    assert list(r["why"]) == ["join", "join", "session_timeout", "leave"]
    assert [round(float(x)) for x in r["start"][:1]] == [0]
    assert round(float(r["end"].iloc[0])) == 3
    assert (round(float(r["start"].iloc[1]), 1), round(float(r["end"].iloc[1]), 1)) == (
        10.0, 12.0)
    assert round(float(r["start"].iloc[2]), 1) == 34.0
    assert round(float(r["start"].iloc[3]), 1) == 45.0
    assert default("rebalance", "session_timeout") == 10
    dur = (r["end"] - r["start"]).to_numpy()
    assert ((dur > 1.95) & (dur < 3.05)).all()
    hb = inspect.signature(GroupConsumer).parameters["heartbeat_interval"].default
    assert hb == 3.0


@claim("the title counts all 6 partitions stopped by each of the 3 rebalances",
       "held partitions 0 and 1 from 12 s on", "from its crash at 25 s",
       "until the new assignment at 37 s", "18.8 partition·seconds without an owner")
def test_eager_stops_everything(eager):
    text = _texts(viz.partition_assignment(eager))
    assert "each of 3 rebalances stopped all 6 partitions" in text
    assert "18.8 partition·s without an owner" in text
    a = eager.assignments()
    mine = a.query("member == 'order-history-1' and generation == 2")
    assert sorted(mine["partition"]) == [0, 1] and round(float(mine["start"].min())) == 12
    assert (mine["end"] > 25.0).all()  # the dead member still holds them
    crash = eager.events.query("event == 'crash'")
    assert list(crash["node"]) == ["order-history-1"] and float(crash["time"].iloc[0]) == 25
    nxt = a.query("generation == 3 and partition in (0, 1)")
    assert round(float(nxt["start"].min())) == 37


@claim("peaks at 42 records on partition 0 at 39.3 s", "The lag of partitions 0 and 1 "
       "climbs from the crash on", "until `order-history-2`, their new owner")
def test_eager_lag(eager):
    lag = eager.consumer_lag()
    peak = lag.loc[lag["lag"].idxmax()]
    assert (int(peak["lag"]), int(peak["partition"]), round(float(peak["time"]), 1)) == (
        42, 0, 39.3)
    assert "peaks at 42 records (p0 at 39.3 s" in _texts(viz.consumer_lag(eager))
    during = lag[(lag["time"] > 25) & (lag["time"] < 37)]
    top = during.groupby("partition")["lag"].max()
    assert set(top.nlargest(2).index) == {0, 1}
    owner = eager.assignments().query("generation == 3 and partition in (0, 1)")
    assert set(owner["member"]) == {"order-history-2"}


@claim("Five rebalances now", "10.0 to 12.1 s and the `follow_up` from 12.1 to 15.0 s",
       "The crash and the leave need only one")
def test_cooperative_rounds(coop):
    r = coop.rebalances()
    assert list(r["why"]) == ["join", "join", "follow_up", "session_timeout", "leave"]
    got = [(round(float(s), 1), round(float(e), 1)) for s, e in zip(r["start"][1:3],
                                                                   r["end"][1:3], strict=True)]
    assert got == [(10.0, 12.1), (12.1, 15.0)]


@claim("At the join only partition 5 moved, from `order-history-3` to the new "
       "`order-history-4`",
       "The 3 rebalances after the group formed stopped 1.7 of the 6 partitions on average",
       "13 partition·seconds without an owner, against 18.8 eager")
def test_cooperative_moves_only_what_moves(coop, eager):
    a = coop.assignments()
    second = a[a["generation"] == 3]
    assert list(second["partition"]) == [5] and list(second["member"]) == ["order-history-4"]
    was = a.query("partition == 5 and generation == 1")
    assert list(was["member"]) == ["order-history-3"]
    # the other five kept their owner through the join
    kept = a.query("generation == 1 and partition != 5")
    assert (kept["end"] > 20).all()
    text = _texts(viz.partition_assignment(coop))
    assert "3 rebalances stopped 1.7 of 6 partitions on average" in text
    assert "13 partition·s without an owner" in text


@claim("Its lag peaks at 39 records, on partition 0 at 38 s")
def test_cooperative_lag(coop):
    lag = coop.consumer_lag()
    peak = lag.loc[lag["lag"].idxmax()]
    assert (int(peak["lag"]), int(peak["partition"]), round(float(peak["time"]))) == (
        39, 0, 38)


@pytest.mark.parametrize("seed", [2, 3])
def test_rebalancing_on_other_seeds(seed):
    """Eager stops every partition each time; cooperative takes two rounds for a join and
    stops fewer; the crash is noticed a session timeout (less a heartbeat) later."""
    e = _run("rebalance", seed=seed)
    c = _run("rebalance", seed=seed, assignor="cooperative-sticky")
    assert "stopped all 6 partitions" in _texts(viz.partition_assignment(e))
    assert "follow_up" in set(c.rebalances()["why"])
    assert "stopped all" not in _texts(viz.partition_assignment(c))
    for res in (e, c):
        start = float(res.rebalances().query("why == 'session_timeout'")["start"].iloc[0])
        assert 25 + 10 - 3 <= start <= 25 + 10 + 0.1


# == the questions ====================================================================

@claim("why did Kafka raise its default from 10 s to 45 s")
def test_kafkas_session_timeout_defaults():
    assert inspect.signature(GroupConsumer).parameters["session_timeout"].default == 45.0
    assert default("rebalance", "session_timeout") == 10
