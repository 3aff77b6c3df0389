"""The transactional outbox, its relays and the dual-write bug (issue 9 §5, the book §3.3.7).

Each test builds a small world: an order service (a ``PublishingService``)
with its ``Database``, a 3-broker ``LogCluster`` topic, and -- for the
outbox -- a relay with its own ``LogProducer``.  What reached the log is
read from ``world.trace.records``: ``produce`` rows (written by the
database at commit), ``send`` rows (a relay's or a dual write's sends) and
``append`` rows (the partition leader appended the record).
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.engine import Crash, ErrorRate, Hang, Link, Node, World
from simcomm.errors import ParamError
from simcomm.messaging import (
    CrashBetweenWrites,
    Database,
    LogCluster,
    LogProducer,
    LogTailer,
    Outbox,
    PollingPublisher,
    PublishingService,
    install_faults,
)

TOPIC = "order-events"


def create_order(ctx, tx, msg):
    """The business change: one order row; its event is OrderCreated."""
    yield from ()
    order_id = msg.body
    tx.insert("orders", order_id, {"state": "CREATED"})
    return order_id, {"event": "OrderCreated", "orderId": order_id}


def build(seed=1, *, design="outbox", relay="polling", orders=40, rate=20.0, **relay_args):
    """The service, its database, the cluster; ``orders`` create requests at ``rate``/s."""
    world = World(seed=seed)
    world.network.set_default(Link(latency=0.001))
    cluster = LogCluster(world, "kafka", brokers=3, min_insync_replicas=2)
    cluster.create_topic(TOPIC, 3)
    db = Database(world, "order-db")
    db.create_table("orders")
    parts = {"world": world, "cluster": cluster, "db": db}
    if design == "outbox":
        outbox = Outbox(db, cluster, TOPIC)
        service = PublishingService(world, "order-service", db, create_order, outbox=outbox)
        producer = LogProducer(world, "relay-producer", cluster, TOPIC)
        cls = PollingPublisher if relay == "polling" else LogTailer
        parts["relay"] = cls(world, "relay", outbox, producer, **relay_args)
    else:
        producer = LogProducer(world, "order-service-producer", cluster, TOPIC)
        service = PublishingService(world, "order-service", db, create_order, design=design,
                                    producer=producer)
    parts["service"] = service
    client = Node(world, "web")
    for i in range(orders):
        world.at(i / rate, lambda i=i: client.request("order-service", 1000 + i))
    return parts


def rows(world, event, detail=None):
    return [r for r in world.trace.records
            if r[1] == event and (detail is None or r[8] == detail)]


def ids(world, event, detail=None):
    return [r[2] for r in rows(world, event, detail)]


# -- the outbox with a polling publisher ------------------------------------------------------

def test_polling_sends_every_committed_event_once_in_commit_order():
    p = build()
    world, db, relay = p["world"], p["db"], p["relay"]
    world.run(until=10)
    produced = ids(world, "produce", "outbox")
    assert len(produced) == 40 == len(db.rows("orders")) == len(db.rows("outbox"))
    assert ids(world, "send", "relay") == produced  # in commit order, once each
    assert Counter(ids(world, "append")) == Counter(produced)
    assert all(row["published"] for row in db.rows("outbox").values())
    assert relay.marked == 40 and relay.resent == 0 and relay.sent == 40
    # keys are the order ids; the produce row is written by the database at commit
    assert [r[6] for r in rows(world, "produce")] == list(range(1000, 1040))
    assert {r[7] for r in rows(world, "produce")} == {"order-service"}
    # the relay sends at its next poll: it sleeps 0.5 s after each round (select,
    # send, acks, mark: some 15 ms here), so an event waits up to about 0.52 s
    commit = {r[2]: r[0] for r in rows(world, "produce")}
    waits = [r[0] - commit[r[2]] for r in rows(world, "send")]
    assert min(waits) > 0 and max(waits) < 0.5 + 0.03


def test_a_relay_crash_after_sending_before_marking_sends_the_batch_again():
    """The relay duplicate: sent, acknowledged, then the relay dies before its
    mark commits; the rows are still unpublished and go out again."""
    p = build(orders=40, rate=20.0)
    world, relay = p["world"], p["relay"]
    install_faults(world, [CrashBetweenWrites("relay", at=1.0, duration=0.5)])
    world.run(until=10)
    produced = ids(world, "produce", "outbox")
    sends = Counter(ids(world, "send", "relay"))
    assert set(sends) == set(produced)  # nothing lost
    twice = [rid for rid, n in sends.items() if n == 2]
    assert twice and max(sends.values()) == 2  # the batch in hand at the crash, again
    assert relay.resent == len(twice)
    crash = [e for e in world.trace.events if e[2] == "crash"]
    assert [(e[1], e[0]) for e in crash] == [("relay", crash[0][0]),
                                             ("relay-producer", crash[0][0])]
    assert any(e[2] == "crash_point" for e in world.trace.events)
    # each duplicate was appended twice: the consumers will see it twice
    appends = Counter(ids(world, "append"))
    assert all(appends[rid] == 2 for rid in twice)
    assert all(row["published"] for row in p["db"].rows("outbox").values())


def test_a_plain_relay_crash_between_polls_loses_and_duplicates_nothing():
    p = build(orders=40, rate=20.0)
    world = p["world"]
    install_faults(world, [Crash("relay", at=0.75, duration=0.5)])  # between two polls
    world.run(until=10)
    assert Counter(ids(world, "send", "relay")) == Counter(ids(world, "produce", "outbox"))


@pytest.mark.parametrize("relay", ["polling", "tailing"])
def test_a_hung_relay_sends_nothing_until_the_hang_ends(relay):
    p = build(relay=relay, orders=40, rate=20.0)
    world = p["world"]
    install_faults(world, [Hang("relay", at=0.6, duration=1.0)])
    world.run(until=10)
    sends = rows(world, "send", "relay")
    assert not [r for r in sends if 0.6 + 0.02 < r[0] < 1.6]
    assert Counter(r[2] for r in sends) == Counter(ids(world, "produce", "outbox"))


def test_the_batch_size_caps_each_poll_and_a_full_batch_polls_again_at_once():
    p = build(orders=40, rate=1000.0, batch_size=7)
    world, relay = p["world"], p["relay"]
    world.run(until=0.6)  # the first poll is at 0: nothing yet; the next at 0.5
    assert len(ids(world, "send", "relay")) == 40
    assert relay.polls >= 1 + 6  # 40 rows in batches of 7, back to back


# -- the outbox with transaction log tailing --------------------------------------------------

def test_log_tailing_sends_each_insert_lag_seconds_after_its_commit():
    p = build(relay="tailing", lag=0.2)
    world = p["world"]
    world.run(until=10)
    produced = ids(world, "produce", "outbox")
    assert ids(world, "send", "relay") == produced
    commit = {r[2]: r[0] for r in rows(world, "produce")}
    waits = [r[0] - commit[r[2]] for r in rows(world, "send")]
    assert min(waits) == pytest.approx(0.2) and max(waits) == pytest.approx(0.2)
    assert p["db"].reads > 0 and all(not row["published"]
                                     for row in p["db"].rows("outbox").values())


def test_a_log_tailer_crash_sends_again_everything_since_the_last_offset_flush():
    """Flushed every 0.5 s; the crash at 1.2 s loses the position read since the
    flush at 1.0 s: those records are sent twice, nothing is lost."""
    p = build(relay="tailing", orders=40, rate=20.0, offset_flush_interval=0.5)
    world, relay = p["world"], p["relay"]
    install_faults(world, [CrashBetweenWrites("relay", at=1.2, duration=0.3)])  # = Crash
    world.run(until=10)
    produced = ids(world, "produce", "outbox")
    sends = Counter(ids(world, "send", "relay"))
    assert set(sends) == set(produced)
    twice = sorted(rid for rid, n in sends.items() if n == 2)
    commit = {r[2]: r[0] for r in rows(world, "produce")}
    assert twice and all(1.0 - 0.01 < commit[rid] < 1.2 for rid in twice)
    assert relay.resent == len(twice) and relay.flushed == len(p["db"].log)


# -- without the outbox: the dual-write bug ---------------------------------------------------

def test_dual_write_a_crash_between_commit_and_send_loses_the_event():
    p = build(design="dual-write")
    world, db = p["world"], p["db"]
    install_faults(world, [CrashBetweenWrites("order-service", at=1.0, duration=0.5)])
    world.run(until=10)
    produced = ids(world, "produce", "dual_write")
    sent = set(ids(world, "send", "dual_write"))
    lost = [rid for rid in produced if rid not in sent]
    assert len(lost) == 1  # committed, never sent
    assert len(produced) == len(db.rows("orders"))
    assert sent <= set(produced)  # no phantom this way round
    crash = next(e for e in world.trace.events if e[2] == "crash")
    assert crash[1] == "order-service"


def test_publish_first_a_crash_between_send_and_commit_publishes_a_phantom():
    p = build(design="publish-first")
    world, db = p["world"], p["db"]
    install_faults(world, [CrashBetweenWrites("order-service", at=1.0, duration=0.5)])
    world.run(until=10)
    produced = set(ids(world, "produce", "dual_write"))
    phantoms = [rid for rid in ids(world, "send", "dual_write") if rid not in produced]
    assert len(phantoms) == 1
    assert phantoms[0] in set(ids(world, "append"))  # out on the log, its order never stored
    assert len(produced) == len(db.rows("orders"))


def test_publish_first_an_aborted_commit_publishes_a_phantom_without_any_crash():
    p = build(design="publish-first")
    world = p["world"]
    install_faults(world, [ErrorRate("order-db", at=0.0, rate=0.25)])
    world.run(until=10)
    produced = set(ids(world, "produce", "dual_write"))
    sent = ids(world, "send", "dual_write")
    phantoms = [rid for rid in sent if rid not in produced]
    aborted = rows(world, "tx_abort", "error")
    assert len(phantoms) == len(aborted) > 0
    svc = p["service"]
    assert svc.failed == len(aborted) and svc.published == 40


def test_dual_write_with_an_aborted_commit_sends_nothing():
    p = build(design="dual-write")
    world = p["world"]
    install_faults(world, [ErrorRate("order-db", at=0.0, rate=0.25)])
    world.run(until=10)
    assert ids(world, "send", "dual_write") == ids(world, "produce", "dual_write")


# -- the properties ---------------------------------------------------------------------------

def _faults(draw_crashes, node):
    return [Crash(node, at=a, duration=d) for a, d in draw_crashes]


crash_lists = st.lists(st.tuples(st.floats(0.0, 3.0), st.floats(0.01, 0.5)), max_size=2)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), relay=st.sampled_from(["polling", "tailing"]),
       service_crashes=crash_lists, db_crashes=crash_lists, relay_crashes=crash_lists,
       window_crash=st.one_of(st.none(), st.floats(0.0, 3.0)),
       error_rate=st.sampled_from([0.0, 0.2]))
def test_the_outbox_never_loses_a_committed_event_nor_publishes_an_uncommitted_one(
        seed, relay, service_crashes, db_crashes, relay_crashes, window_crash, error_rate):
    """Whatever crashes (service, database, relay -- at the worst moment too) and
    whatever commits fail: every event of a committed order is sent and appended
    by the end, and every event sent belongs to a committed order."""
    args = {"offset_flush_interval": 1.0} if relay == "tailing" else {}
    p = build(seed, relay=relay, orders=60, rate=20.0, **args)
    world, db = p["world"], p["db"]
    faults = (_faults(service_crashes, "order-service") + _faults(db_crashes, "order-db")
              + _faults(relay_crashes, "relay"))
    if window_crash is not None and relay == "polling":
        faults.append(CrashBetweenWrites("relay", at=window_crash, duration=0.3))
    if error_rate:
        faults.append(ErrorRate("order-db", at=0.0, rate=error_rate))
    install_faults(world, faults)
    world.run(until=20)
    committed = {rid for rid, row in db.rows("outbox").items()}
    produced = set(ids(world, "produce", "outbox"))
    assert produced == committed
    orders = db.rows("orders")
    assert sorted(row["key"] for row in db.rows("outbox").values()) == sorted(orders)
    sent = set(ids(world, "send", "relay"))
    assert sent == committed  # none lost, none uncommitted
    assert set(ids(world, "append")) == committed


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), at=st.floats(0.0, 1.9))
def test_without_the_outbox_a_crash_in_the_window_loses_or_invents_one_event(seed, at):
    for design in ("dual-write", "publish-first"):
        p = build(seed, design=design)
        world = p["world"]
        install_faults(world, [CrashBetweenWrites("order-service", at=at, duration=0.2)])
        world.run(until=10)
        produced = set(ids(world, "produce", "dual_write"))
        sent = set(ids(world, "send", "dual_write"))
        if design == "dual-write":
            assert len(produced - sent) == 1 and sent <= produced
        else:
            assert len(sent - produced) == 1 and produced <= sent


def test_the_same_seed_gives_the_same_records():
    def once(seed):
        p = build(seed, orders=30)
        install_faults(p["world"], [CrashBetweenWrites("relay", at=0.7, duration=0.3)])
        p["world"].run(until=5)
        return list(p["world"].trace.records)

    assert once(3) == once(3)


# -- bad arguments, before time zero ---------------------------------------------------------

def test_bad_arguments_fail_before_time_zero():
    p = build(orders=0)
    world, cluster, db = p["world"], p["cluster"], p["db"]
    outbox = p["relay"].outbox
    producer = LogProducer(world, "p2", cluster, TOPIC)
    with pytest.raises(ParamError, match="db"):
        Outbox("db", cluster, TOPIC)  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="topic"):
        Outbox(db, cluster, "nope")
    with pytest.raises(ParamError, match="table"):
        Outbox(db, cluster, TOPIC)  # the table exists already
    with pytest.raises(ParamError, match="poll_interval"):
        PollingPublisher(world, "r2", outbox, producer, poll_interval=0)
    with pytest.raises(ParamError, match="batch_size"):
        PollingPublisher(world, "r3", outbox, producer, batch_size=0)
    with pytest.raises(ParamError, match="producer"):
        PollingPublisher(world, "r4", outbox, "p2")  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="lag"):
        LogTailer(world, "r5", outbox, producer, lag=-1)
    with pytest.raises(ParamError, match="offset_flush_interval"):
        LogTailer(world, "r6", outbox, producer, offset_flush_interval=0)
    with pytest.raises(ParamError, match="design"):
        PublishingService(world, "s2", db, create_order, design="twice", outbox=outbox)
    with pytest.raises(ParamError, match="outbox"):
        PublishingService(world, "s3", db, create_order, design="outbox")
    with pytest.raises(ParamError, match="producer"):
        PublishingService(world, "s4", db, create_order, design="dual-write")
    with pytest.raises(ParamError, match="change"):
        PublishingService(world, "s5", db, None, outbox=outbox)  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="node"):
        install_faults(world, [CrashBetweenWrites("order-db", at=1.0)])
    other = World(seed=1)
    other_db = Database(other, "db")
    with pytest.raises(ParamError, match="tx"):
        outbox.write(other_db.begin(Node(other, "c")), 1, None)
