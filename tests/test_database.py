"""Database: atomic transactions, durability, reads, the commit log (issue 9 §5).

Each test runs a tiny world: a ``Database`` and a client node whose
process opens transactions; what the database holds and what the records
table says are checked exactly.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.engine import Crash, ErrorRate, Hang, Instance, Link, Node, World, install
from simcomm.errors import ParamError
from simcomm.messaging import Database, LogEntry


def world_with_db(seed: int = 1, **kwargs):
    world = World(seed=seed)
    world.network.set_default(Link(latency=0.001))
    db = Database(world, "db", **kwargs)
    db.create_table("orders")
    db.create_table("outbox")
    client = Node(world, "client")
    return world, db, client


def records(world, event=None):
    return [r for r in world.trace.records if event is None or r[1] == event]


def test_a_commit_applies_every_write_and_logs_it():
    world, db, client = world_with_db()
    outcome = []

    def run():
        tx = db.begin(client)
        tx.insert("orders", 1, {"state": "CREATED"})
        tx.insert("outbox", 101, {"key": 1, "published": False})
        tx.record(101, "orders", 1, "outbox")
        done = yield tx.commit()
        outcome.append((world.now, done))
        tx = db.begin(client)
        tx.update("orders", 1, {"state": "REVISED"})
        tx.update("orders", 99, {"state": "X"})  # no such row: nothing, as SQL
        tx.delete("outbox", 101)
        done = yield tx.commit()
        outcome.append((world.now, done))

    world.env.process(run())
    world.run(until=1)
    # 1 ms there, 2 ms of commit work, 1 ms back
    assert outcome == [(pytest.approx(0.004), "ok"), (pytest.approx(0.008), "ok")]
    assert db.rows("orders") == {1: {"state": "REVISED"}}
    assert db.rows("outbox") == {}
    assert [e.position for e in db.log] == [1, 2] and [e.tx_id for e in db.log] == [1, 2]
    assert db.log[0].writes[0] == ("insert", "orders", 1, {"state": "CREATED"})
    assert db.log[0].client == "client" and db.log[0].time == pytest.approx(0.003)
    assert [r[1:3] for r in records(world)] == [("tx_commit", 1), ("produce", 101),
                                                ("tx_commit", 2)]
    produce = records(world, "produce")[0]
    assert produce == (pytest.approx(0.003), "produce", 101, "orders", -1, -1, 1, "client",
                       "outbox")
    assert db.committed == 2 and db.aborted == {}


def test_a_unique_key_violation_aborts_the_whole_transaction():
    """The second insert of key 1 fails: the first transaction's rows stay, the
    second's OTHER write (order 2) is not applied, and its record is never produced."""
    world, db, client = world_with_db()
    outcome = []

    def run():
        tx = db.begin(client)
        tx.insert("orders", 1, {"state": "CREATED"})
        outcome.append((yield tx.commit()))
        tx = db.begin(client)
        tx.insert("orders", 2, {"state": "CREATED"})
        tx.insert("orders", 1, {"state": "DUPLICATE"})
        tx.record(7, "orders", 2, "outbox")
        outcome.append((yield tx.commit()))
        tx = db.begin(client)  # delete then insert in one transaction is fine
        tx.delete("orders", 1)
        tx.insert("orders", 1, {"state": "AGAIN"})
        outcome.append((yield tx.commit()))
        tx = db.begin(client)  # two inserts of one new key are not
        tx.insert("orders", 3, {})
        tx.insert("orders", 3, {})
        outcome.append((yield tx.commit()))

    world.env.process(run())
    world.run(until=1)
    assert outcome == ["ok", "aborted", "ok", "aborted"]
    assert db.rows("orders") == {1: {"state": "AGAIN"}}
    assert [(r[1], r[2], r[8]) for r in records(world)] == [
        ("tx_commit", 1, ""), ("tx_abort", 2, "constraint"), ("tx_commit", 3, ""),
        ("tx_abort", 4, "constraint")]
    assert db.aborted == {"constraint": 2}


def test_a_database_crash_mid_commit_leaves_nothing_and_committed_data_survives():
    world, db, client = world_with_db(commit_time=0.01)
    outcome = []

    def run():
        tx = db.begin(client)
        tx.insert("orders", 1, {"state": "CREATED"})
        outcome.append((yield tx.commit()))
        tx = db.begin(client)
        tx.insert("orders", 2, {"state": "CREATED"})
        tx.record(2, "orders", 2, "outbox")
        outcome.append((yield tx.commit()))  # the crash comes during its 10 ms
        yield world.env.timeout(1.0)
        tx = db.begin(client)  # the database is down: refused
        tx.insert("orders", 3, {})
        outcome.append((yield tx.commit()))
        yield world.env.timeout(5.0)
        tx = db.begin(client)  # back up
        tx.insert("orders", 4, {})
        outcome.append((yield tx.commit()))

    world.env.process(run())
    install(world, [Crash("db", at=0.020, duration=2.0)])
    world.run(until=10)
    assert outcome == ["ok", "reset", "refused", "ok"]
    assert db.rows("orders") == {1: {"state": "CREATED"}, 4: {}}  # durable, atomic
    assert [(r[1], r[2], r[8]) for r in records(world)] == [
        ("tx_commit", 1, ""), ("tx_abort", 2, "crash"), ("tx_abort", 3, "db_down"),
        ("tx_commit", 4, "")]
    assert [e.tx_id for e in db.log] == [1, 4]


def test_a_client_crash_before_the_commit_leaves_nothing():
    """The writes wait on the client: a service killed between its writes and
    its commit sent nothing, and the database never heard of the transaction."""
    world = World(seed=1)
    db = Database(world, "db")
    db.create_table("orders")

    def handler(ctx, msg):
        tx = db.begin(ctx.instance)
        tx.insert("orders", 1, {"state": "CREATED"})
        yield ctx.work(1.0)  # the service dies here
        outcome = yield tx.commit()
        return outcome

    service = Instance(world, "service", handler=handler)
    client = Node(world, "client")
    world.at(0.0, lambda: client.request("service", "create"))
    install(world, [Crash("service", at=0.5, duration=1.0)])
    world.run(until=5)
    assert service.up
    assert db.rows("orders") == {} and db.log == [] and records(world) == []


def test_an_injected_error_aborts_before_anything_is_applied():
    """An ErrorRate fault on the database refuses commits (a serialization
    failure): all or nothing, never applied-then-failed."""
    world, db, client = world_with_db()
    outcome = []

    def run():
        for i in range(20):
            tx = db.begin(client)
            tx.insert("orders", i, {"n": i})
            tx.insert("outbox", i, {"n": i})
            outcome.append((yield tx.commit()))

    world.env.process(run())
    install(world, [ErrorRate("db", at=0.0, rate=0.5)])
    world.run(until=5)
    ok = [i for i, o in enumerate(outcome) if o == "ok"]
    assert set(outcome) == {"ok", "aborted"}
    assert sorted(db.rows("orders")) == ok == sorted(db.rows("outbox"))
    assert db.aborted == {"error": 20 - len(ok)}
    assert db.error_rate == 0.0 and db.abort_rate == 0.5


def test_reads_see_committed_rows_in_key_order():
    world, db, client = world_with_db()
    got = []

    def run():
        tx = db.begin(client)
        for k in (5, 3, 9, 1):
            tx.insert("outbox", k, {"published": k == 3, "key": k})
        yield tx.commit()
        got.append((yield db.select(client, "outbox", where={"published": False})))
        got.append((yield db.select(client, "outbox", where={"published": False}, limit=2)))
        got.append((yield db.select(client, "outbox", where={"missing": 1})))
        got.append((yield db.get(client, "outbox", 9)))
        got.append((yield db.get(client, "outbox", 4)))

    world.env.process(run())
    world.run(until=1)
    unpublished = [(1, {"published": False, "key": 1}), (5, {"published": False, "key": 5}),
                   (9, {"published": False, "key": 9})]
    assert got == [unpublished, unpublished[:2], [], {"published": False, "key": 9}, None]
    assert db.reads == 5


write_ops = st.lists(st.tuples(st.sampled_from(["insert", "update", "delete"]),
                               st.integers(0, 6), st.sampled_from([False, True, 1, 0, "x"]),
                               st.booleans()), max_size=40)


@settings(max_examples=25, deadline=None)
@given(ops=write_ops, probe=st.sampled_from([False, True, 1, "x", None]))
def test_an_index_changes_the_cost_of_a_select_never_its_rows(ops, probe):
    """Two databases take the same transactions, one with an index on the
    selected column: every select answers the same rows, in the same order."""
    world = World(seed=1)
    plain, indexed = Database(world, "plain"), Database(world, "indexed")
    plain.create_table("t")
    indexed.create_table("t", index=("flag",))
    client = Node(world, "client")
    got: dict[str, list] = {"plain": [], "indexed": []}

    def run(db):
        for op, key, value, with_field in ops:
            tx = db.begin(client)
            row = {"flag": value, "n": key} if with_field else {"n": key}
            if op == "insert":
                tx.insert("t", key, row)
            elif op == "update":
                tx.update("t", key, row)
            else:
                tx.delete("t", key)
            yield tx.commit()
            rows = yield db.select(client, "t", where={"flag": probe})
            got[db.name].append(rows)
            rows = yield db.select(client, "t", where={"flag": probe, "n": key}, limit=2)
            got[db.name].append(rows)

    world.env.process(run(plain))
    world.env.process(run(indexed))
    world.run(until=100)
    assert got["plain"] == got["indexed"]
    assert plain.rows("t") == indexed.rows("t")


def test_the_commit_log_long_poll_answers_at_the_next_commit():
    """read_log with nothing new is held until a commit comes (or ``wait`` s)."""
    world, db, client = world_with_db()
    got = []

    def reader():
        entries = yield db.read_log(client, after=0, wait=10.0)
        got.append((world.now, [e.tx_id for e in entries]))
        entries = yield db.read_log(client, after=1, wait=0.5)
        got.append((world.now, entries))
        entries = yield db.read_log(client, after=0, max_entries=1)
        got.append((world.now, [e.position for e in entries]))

    def writer():
        yield world.env.timeout(2.0)
        tx = db.begin(client)
        tx.insert("orders", 1, {})
        yield tx.commit()

    world.env.process(reader())
    world.env.process(writer())
    world.run(until=10)
    assert got[0][0] == pytest.approx(2.004) and got[0][1] == [1]
    assert got[1] == (pytest.approx(2.506), [])
    assert got[2][1] == [1]
    assert isinstance(db.log[0], LogEntry)


def test_a_cut_off_client_times_out_and_the_commit_may_still_apply():
    """No answer within ``timeout``: the client cannot tell whether it committed.
    Here the reply is lost in a partition that starts after the request left."""
    world, db, client = world_with_db(timeout=1.0)
    outcome = []

    def run():
        tx = db.begin(client)
        tx.insert("orders", 1, {})
        outcome.append((yield tx.commit()))

    world.env.process(run())
    world.network.cut(["client"], ["db"], at=0.002)
    world.run(until=3)
    assert outcome == ["timeout"]
    assert db.rows("orders") == {1: {}}  # it did commit


def test_the_database_crash_resets_a_held_log_read():
    world, db, client = world_with_db()
    got = []

    def reader():
        got.append((yield db.read_log(client, after=0, wait=5.0)))

    world.env.process(reader())
    install(world, [Crash("db", at=1.0, duration=1.0)])
    world.run(until=10)
    assert got == [None]


def test_a_hung_database_holds_commits_and_log_reads_until_the_hang_ends():
    """A commit that arrives during a hang is stuck: its client gets ``reset``
    when the hang ends, and nothing was applied; a log read held through the
    hang waits for the next commit."""
    world, db, client = world_with_db()
    got = []

    def writer():
        tx = db.begin(client)
        tx.insert("orders", 1, {})
        got.append(("first", (yield tx.commit())))
        yield world.env.timeout(1.0)
        tx = db.begin(client)
        tx.insert("orders", 2, {})
        outcome = yield tx.commit()
        got.append(("second", world.now, outcome))
        tx = db.begin(client)
        tx.insert("orders", 3, {})
        got.append(("third", (yield tx.commit())))

    def reader():
        entries = yield db.read_log(client, after=1, wait=10.0)
        got.append(("log", world.now, [e.tx_id for e in entries]))

    world.env.process(writer())
    world.env.process(reader())
    install(world, [Hang("db", at=0.5, duration=2.0)])
    world.run(until=5)
    assert got[0] == ("first", "ok")
    assert got[1] == ("second", pytest.approx(2.501), "reset")
    assert got[2] == ("log", pytest.approx(2.505), [3])  # applied at 2.504
    assert got[3] == ("third", "ok")
    assert db.rows("orders") == {1: {}, 3: {}}


def test_bad_arguments_fail_before_time_zero():
    world, db, client = world_with_db()
    with pytest.raises(ParamError, match="commit_time"):
        Database(world, "db2", commit_time=-1)
    with pytest.raises(ParamError, match="read_time"):
        Database(world, "db3", read_time=True)
    with pytest.raises(ParamError, match="timeout"):
        Database(world, "db4", timeout=0)
    with pytest.raises(ParamError, match="workers"):
        Database(world, "db5", workers=0)
    with pytest.raises(ParamError, match="table"):
        db.create_table("orders")
    with pytest.raises(ParamError, match="index"):
        db.create_table("other", index="published")  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="table"):
        db.begin(client).insert("nope", 1, {})
    with pytest.raises(ParamError, match="row"):
        db.begin(client).insert("orders", 1, "not a dict")  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="client"):
        db.begin("client")  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="limit"):
        db.select(client, "orders", limit=0)
    with pytest.raises(ParamError, match="where"):
        db.select(client, "orders", where=[1])  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="after"):
        db.read_log(client, after=-1)
    with pytest.raises(ParamError, match="table"):
        db.rows("nope")
    tx = db.begin(client)
    tx.commit()
    with pytest.raises(ParamError, match="transaction"):
        tx.insert("orders", 1, {})
    with pytest.raises(ParamError, match="transaction"):
        tx.commit()


# -- the property: whatever crashes, each transaction is all there or not there ---------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000),
       crashes=st.lists(st.tuples(st.floats(0.0, 2.0), st.floats(0.001, 0.3)), max_size=3),
       client_crashes=st.lists(st.floats(0.0, 2.0), max_size=2),
       error_rate=st.sampled_from([0.0, 0.2]))
def test_atomicity_and_durability_under_crashes(seed, crashes, client_crashes, error_rate):
    """Services write an order row, its items and an outbox row per transaction
    while the database and the services crash at random: replaying the commit
    log gives exactly the tables; each transaction's rows are all there or none;
    every "ok" commit is in the log and no aborted or refused one is."""
    world = World(seed=seed)
    world.network.set_default(Link(latency=0.001))
    db = Database(world, "db", commit_time=0.005)
    for t in ("orders", "items", "outbox"):
        db.create_table(t)
    outcomes: dict[int, str] = {}
    rng = world.stream("test:orders")

    def handler(ctx, msg):
        tx = db.begin(ctx.instance)
        oid = msg.id
        tx.insert("orders", oid, {"n": 2})
        yield ctx.work(0.003)
        for i in range(2):
            tx.insert("items", (oid, i), {"order": oid})
        tx.insert("outbox", oid, {"order": oid})
        if rng.random() < 0.1:
            tx.insert("orders", 0, {})  # a duplicate key: the whole tx must abort
        tx.record(oid, "orders", oid, "outbox")
        outcomes[tx.id] = yield tx.commit()

    Instance(world, "svc", workers=4, handler=handler)
    db_zero = Node(world, "setup")

    def setup():
        tx = db.begin(db_zero)
        tx.insert("orders", 0, {"n": 0})
        yield tx.commit()

    world.env.process(setup())
    client = Node(world, "client")
    for k in range(60):
        world.at(0.03 * k, lambda: client.request("svc", None))
    install(world, [Crash("db", at=a, duration=d) for a, d in crashes]
            + [Crash("svc", at=a, duration=0.05) for a in client_crashes])
    if error_rate:
        install(world, [ErrorRate("db", at=0.0, rate=error_rate)])
    world.run(until=5)

    replay: dict[str, dict] = {t: {} for t in db.tables}
    for entry in db.log:
        for op, table, key, row in entry.writes:
            if op == "insert":
                replay[table][key] = dict(row)
    assert replay == {t: db.rows(t) for t in db.tables}
    for oid in db.rows("orders"):
        if oid:
            assert oid in db.rows("outbox") and (oid, 1) in db.rows("items")
    assert set(db.rows("outbox")) == set(db.rows("orders")) - {0}
    logged = {e.tx_id for e in db.log}
    for tx_id, outcome in outcomes.items():
        if outcome == "ok":
            assert tx_id in logged
        elif outcome in ("aborted", "refused", "reset"):
            assert tx_id not in logged
    committed = {r[2] for r in world.trace.records if r[1] == "tx_commit"}
    assert committed == logged
    produced = {r[2] for r in world.trace.records if r[1] == "produce"}
    assert produced == set(db.rows("outbox"))
