"""A service's own database: atomic transactions and a commit log (issue 9 §5).

*Microservices Patterns* §3.3.7 and ch. 4: each service owns a database,
and the transactional outbox needs exactly two things from it -- **local
ACID transactions** (the business row and the outbox row commit together
or not at all) and a **transaction log** that a relay can tail.  This
module models that much and no more.

:class:`Database` is a node (an :class:`~simcomm.engine.Instance`), so it
can crash, hang, slow down and be cut off like any other, and it is only
reached by messages:

* **Transactions.**  ``tx = db.begin(client)`` opens a :class:`Transaction`
  on the CLIENT side: its writes (``insert`` / ``update`` / ``delete``) are
  buffered there, and ``tx.commit()`` sends them to the database as ONE
  commit request (the way a JDBC batch or a stored procedure does, and
  what makes the client's crash simple: a client that dies before
  ``commit()`` sent nothing, so nothing happened).  The database takes
  ``commit_time`` s of a worker (the fsync of the write-ahead log), then
  applies every write in one instant -- **all or nothing**: a database
  crash during that time, a commit refused because the database is down,
  a unique-key violation (an ``insert`` of a key that exists) or an
  injected error (:class:`~simcomm.engine.ErrorRate` fault: a
  serialization failure, a deadlock victim) applies none of them.  What
  committed is durable: tables and the commit log survive a crash (the WAL
  was fsynced before the answer).  The answer can still be lost: a
  commit applied just before the client died, or whose reply was cut off,
  is committed though its client never learns it -- exactly the window
  the dual-write bug lives in.
* **Records.**  Every commit writes a ``tx_commit`` row to
  ``trace.records`` (record_id = transaction id, topic = the database's
  name), every failed commit the database heard of a ``tx_abort`` row
  (detail ``crash``, ``db_down``, ``constraint`` or ``error``).  A
  transaction may carry application records (:meth:`Transaction.record`:
  an outbox message, or the event a dual-writing service will send): the
  database writes their ``produce`` rows when -- and only when -- it
  applies the commit, so a record's place in its key's produced order is
  its commit.
* **Reads** are requests too: :meth:`Database.select` (rows of a table in
  key order, filtered by equal fields, up to a limit; ``read_time`` s of a
  worker) and :meth:`Database.get`.
* **The commit log** (PostgreSQL's WAL read by logical decoding, MySQL's
  binlog): every applied commit appends a :class:`LogEntry` -- position
  (1, 2, ...: the LSN), transaction id, time, client and its writes.
  :meth:`Database.read_log` asks for the entries after a position; if
  there are none, the database holds the request until a commit comes or
  ``wait`` s pass (the replication stream's long poll: a WAL sender
  process, not a query worker, so it takes no worker).

Every client call returns a SimPy event (callbacks, no process per call):
``commit()`` fires with ``"ok"`` or why not (``aborted`` -- the database
refused it; ``reset`` -- it crashed first; ``refused`` -- it was down;
``timeout`` -- no answer within ``timeout`` s: the commit MAY have been
applied), reads with the rows or ``None``.  ``timeout`` is the client's
socket timeout (PgJDBC's ``socketTimeout``); ``workers`` the concurrent
statements (a HikariCP pool's ``maximumPoolSize``, 10 by default).

Simplifications (said, not hidden): one version of each row (no MVCC
snapshot isolation: a read sees what committed before it ran), no locks
(commits are applied one at a time in one instant, so they are
serializable in commit order), no interactive transactions (the writes
reach the database only with the commit), rows are plain dicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from simpy.events import Event

from simcomm._checks import as_real, is_whole
from simcomm.engine.messages import REPLY, Message
from simcomm.engine.nodes import Context, Instance, Node, ServiceError
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["ABORT_REASONS", "COMMIT_OUTCOMES", "Commit", "Database", "Get", "LogEntry",
           "ReadLog", "Select", "Transaction"]

#: why a commit the database heard of was not applied (``tx_abort`` rows' detail)
ABORT_REASONS = ("crash", "db_down", "constraint", "error")

#: what :meth:`Transaction.commit`'s event fires with
COMMIT_OUTCOMES = ("ok", "aborted", "reset", "refused", "timeout")

# write operations in a transaction and in the commit log
INSERT, UPDATE, DELETE = "insert", "update", "delete"

#: a row's key: anything hashable and orderable among its table's keys (ints, strs)
Key = Any
Write = tuple[str, str, Key, "dict[str, Any] | None"]  # (op, table, key, row)


def _seconds(field: str, value: object, *, positive: bool = False,
             none: bool = False) -> float | None:
    if value is None and none:
        return None
    seconds = as_real(value)
    ok = seconds is not None and (seconds > 0 if positive else seconds >= 0) \
        and not math.isinf(seconds)
    if not ok:
        allowed = f"seconds {'> 0' if positive else '>= 0'} (finite)"
        raise ParamError(field, value, allowed + (", or None" if none else ""))
    return seconds


# -- request bodies (sent with Node.request; plain slots) ----------------------------

class Commit:
    """A commit request: a transaction's buffered writes and the records it creates."""

    __slots__ = ("records", "tx_id", "writes")

    def __init__(self, tx_id: int, writes: tuple[Write, ...],
                 records: tuple[tuple[int, str, Any, str], ...]) -> None:
        self.tx_id = tx_id
        self.writes = writes
        self.records = records  # (record_id, topic, key, detail)


class Select:
    """Rows of ``table`` whose fields equal ``where``'s, in key order, at most ``limit``."""

    __slots__ = ("limit", "table", "where")

    def __init__(self, table: str, where: Mapping[str, Any] | None, limit: int | None) -> None:
        self.table = table
        self.where = where
        self.limit = limit


class Get:
    """One row of ``table`` by key (None if there is none)."""

    __slots__ = ("key", "table")

    def __init__(self, table: str, key: Key) -> None:
        self.table = table
        self.key = key


class ReadLog:
    """Commit-log entries after position ``after``, at most ``max_entries``; held
    up to ``wait`` s when there are none yet (a long poll)."""

    __slots__ = ("after", "max_entries", "wait")

    def __init__(self, after: int, max_entries: int, wait: float) -> None:
        self.after = after
        self.max_entries = max_entries
        self.wait = wait


class LogEntry:
    """One applied commit in the log: ``position`` (1, 2, ...), the transaction's
    id, when it was applied, by which client, and its writes ``(op, table, key,
    row)`` (the row as written: the full row of an insert, the changed fields
    of an update, None for a delete)."""

    __slots__ = ("client", "position", "time", "tx_id", "writes")

    def __init__(self, position: int, tx_id: int, time: float, client: str,
                 writes: tuple[Write, ...]) -> None:
        self.position = position
        self.tx_id = tx_id
        self.time = time
        self.client = client
        self.writes = writes

    def __repr__(self) -> str:
        return (f"LogEntry(position={self.position}, tx_id={self.tx_id}, "
                f"time={self.time:g}, client={self.client!r}, writes={len(self.writes)})")


# -- the client side -------------------------------------------------------------------

class Transaction:
    """A transaction opened by ``client`` on ``db`` (:meth:`Database.begin`).

    Writes are buffered here, on the client, and reach the database only
    with :meth:`commit`, as one request: so a client crash before the
    commit leaves nothing, and the database applies all of them or none.
    A transaction commits (or rolls back) once.
    """

    __slots__ = ("client", "db", "id", "records", "state", "writes")

    def __init__(self, db: Database, client: Node, tx_id: int) -> None:
        self.db = db
        self.client = client
        self.id = tx_id
        self.writes: list[Write] = []
        self.records: list[tuple[int, str, Any, str]] = []
        self.state = "open"

    def _write(self, op: str, table: str, key: Key, row: dict[str, Any] | None) -> None:
        if self.state != "open":
            raise ParamError("transaction", self.id, f"an open transaction (this one is "
                                                     f"{self.state})")
        if table not in self.db.tables:
            raise ParamError("table", table,
                             "a table of " + self.db.name + ": " + ", ".join(self.db.tables))
        if row is not None and not isinstance(row, dict):
            raise ParamError("row", row, "a dict of column values")
        self.writes.append((op, table, key, None if row is None else dict(row)))

    def insert(self, table: str, key: Key, row: dict[str, Any]) -> None:
        """Insert ``row`` under ``key``; the commit fails (``constraint``) if the
        key exists -- the unique index a processed-ids table relies on."""
        self._write(INSERT, table, key, row)

    def update(self, table: str, key: Key, changes: dict[str, Any]) -> None:
        """Set the fields ``changes`` of the row under ``key`` (no row: nothing,
        as an SQL UPDATE that matches none)."""
        self._write(UPDATE, table, key, changes)

    def delete(self, table: str, key: Key) -> None:
        """Delete the row under ``key`` (no row: nothing)."""
        self._write(DELETE, table, key, None)

    def record(self, record_id: int, topic: str, key: Any, detail: str) -> None:
        """This transaction creates application record ``record_id`` (its key
        ``key``, for ``topic``): the database writes its ``produce`` row, with
        ``detail`` (``outbox``, ``dual_write``), when it applies the commit --
        never if it does not.  No table holds it (the bookkeeping of the
        records table, not data)."""
        if self.state != "open":
            raise ParamError("transaction", self.id, f"an open transaction (this one is "
                                                     f"{self.state})")
        self.records.append((record_id, topic, key, detail))

    def commit(self) -> Event:
        """Send the buffered writes as one commit request.

        The event fires with ``"ok"`` once the database applied them, or with
        why not: ``"aborted"`` (a unique key violated, an injected error),
        ``"reset"`` (the database crashed first), ``"refused"`` (it was
        down), ``"timeout"`` (no answer in the database's ``timeout``: the
        commit may have been applied).  An empty transaction commits too.
        """
        if self.state != "open":
            raise ParamError("transaction", self.id, f"an open transaction (this one is "
                                                     f"{self.state})")
        self.state = "committing"
        body = Commit(self.id, tuple(self.writes), tuple(self.records))
        return self.db._call(self.client, body, _commit_outcome)

    def rollback(self) -> None:
        """Give the transaction up: nothing was sent, so nothing happens."""
        if self.state == "open":
            self.state = "rolled back"


def _commit_outcome(reply: Message) -> str:
    return "ok" if reply.status == "ok" else ("aborted" if reply.status == "aborted"
                                              else reply.status)


def _rows_or_none(reply: Message) -> Any:
    return reply.body if reply.status == "ok" else None


# -- the database node -------------------------------------------------------------------

class Database(Instance):
    """A service-local database node (see the module docstring for its rules).

    ``commit_time`` s of a worker per commit (the WAL fsync), ``read_time``
    per read, ``workers`` statements at a time, ``timeout`` s a client waits
    for an answer before giving up (None: forever).  Declare tables with
    :meth:`create_table` before the run.
    """

    def __init__(self, world: World, name: str = "db", *, commit_time: float = 0.002,
                 read_time: float = 0.0005, workers: int = 10,
                 timeout: float | None = 30.0) -> None:
        commit = _seconds("commit_time", commit_time)
        read = _seconds("read_time", read_time)
        wait = _seconds("timeout", timeout, positive=True, none=True)
        super().__init__(world, name, workers=workers, handler=self._serve)
        self.commit_time = commit
        self.read_time = read
        self.timeout = wait
        self.tables: dict[str, dict[Key, dict[str, Any]]] = {}
        # table -> indexed column -> value -> keys of the rows holding it
        self._indexes: dict[str, dict[str, dict[Any, set[Key]]]] = {}
        self.log: list[LogEntry] = []
        #: probability a commit is refused (an ErrorRate fault sets it): drawn
        #: before the writes are applied, so a refused commit leaves nothing
        self.abort_rate = 0.0
        self.committed = 0
        self.aborted: dict[str, int] = {}
        self.reads = 0
        self._tx_count = 0
        self._tails: list[tuple[Message, ReadLog]] = []  # long polls waiting for a commit
        self._records = world.trace.records.append if world.trace.enabled else None

    # -- schema and inspection (not messages: before the run, and for reports) ---------
    def create_table(self, name: str, *, index: tuple[str, ...] = ()) -> None:
        """Declare table ``name`` (rows are dicts under a unique key).

        ``index`` names the columns with an index (``CREATE INDEX``): a
        :meth:`select` whose ``where`` names one of them reads only the rows
        holding that value, not the whole table -- a polling publisher's
        ``WHERE published = false`` stays cheap as the outbox grows.  The
        values of an indexed column must be hashable.  The results are the
        same with or without an index; only the cost of finding them
        differs (and no simulated time is charged for it either way).
        """
        if not isinstance(name, str) or not name:
            raise ParamError("table", name, "a non-empty string")
        if name in self.tables:
            raise ParamError("table", name, f"a table name not used before in {self.name}")
        if isinstance(index, str) or not isinstance(index, (tuple, list)) or not all(
                isinstance(f, str) and f for f in index):
            raise ParamError("index", index, "a tuple of column names")
        self.tables[name] = {}
        self._indexes[name] = {field: {} for field in index}

    def rows(self, table: str) -> dict[Key, dict[str, Any]]:
        """A copy of ``table``'s committed rows by key (for tests and reports,
        not for nodes: they read with requests)."""
        if table not in self.tables:
            raise ParamError("table", table, "a table of " + self.name + ": "
                             + ", ".join(self.tables))
        return {k: dict(r) for k, r in self.tables[table].items()}

    # -- the client calls -----------------------------------------------------------------
    def begin(self, client: Node) -> Transaction:
        """A new transaction of ``client`` (its writes wait on the client until
        :meth:`Transaction.commit`)."""
        if not isinstance(client, Node):
            raise ParamError("client", client, "the Node that runs the transaction")
        self._tx_count += 1
        return Transaction(self, client, self._tx_count)

    def select(self, client: Node, table: str, where: Mapping[str, Any] | None = None,
               limit: int | None = None) -> Event:
        """Ask for ``table``'s rows whose fields equal ``where``'s, in key order,
        at most ``limit``; the event fires with a list of ``(key, row)`` (copies),
        or None if the read failed (database down, crashed, timed out)."""
        if table not in self.tables:
            raise ParamError("table", table, "a table of " + self.name + ": "
                             + ", ".join(self.tables))
        if where is not None and not isinstance(where, Mapping):
            raise ParamError("where", where, "a mapping of column -> value, or None")
        if limit is not None and (not is_whole(limit) or limit < 1):
            raise ParamError("limit", limit, "a whole number >= 1, or None")
        return self._call(client, Select(table, where, None if limit is None else int(limit)),
                          _rows_or_none)

    def get(self, client: Node, table: str, key: Key) -> Event:
        """Ask for one row; the event fires with the row (a copy), or None if there
        is none -- or the read failed."""
        if table not in self.tables:
            raise ParamError("table", table, "a table of " + self.name + ": "
                             + ", ".join(self.tables))
        return self._call(client, Get(table, key), _rows_or_none)

    def read_log(self, client: Node, after: int, max_entries: int = 2048,
                 wait: float = 0.5) -> Event:
        """Ask for the commit-log entries after position ``after`` (at most
        ``max_entries``); with none yet, the database answers when a commit
        comes or after ``wait`` s.  The event fires with a list of
        :class:`LogEntry` (maybe empty), or None if the read failed."""
        if not is_whole(after) or after < 0:
            raise ParamError("after", after, "a log position (a whole number >= 0)")
        if not is_whole(max_entries) or max_entries < 1:
            raise ParamError("max_entries", max_entries, "a whole number >= 1")
        hold = _seconds("wait", wait)
        assert hold is not None
        return self._call(client, ReadLog(int(after), int(max_entries), hold), _rows_or_none)

    def _call(self, client: Node, body: Any, outcome: Callable[[Message], Any]) -> Event:
        """Send ``body`` as a request from ``client``; the event returned fires with
        ``outcome(reply)``, or as a timeout after ``self.timeout`` s."""
        env = self.env
        reply = client.request(self.name, body)
        done = Event(env)

        def answered(ev: Event) -> None:
            if not done.triggered:
                done.succeed(outcome(cast(Message, ev.value)))

        reply.callbacks.append(answered)
        if self.timeout is not None:
            request_id = reply.request_id  # type: ignore[attr-defined]

            def expired(_ev: Event) -> None:
                if not done.triggered:
                    client.forget(request_id)
                    done.succeed("timeout" if isinstance(body, Commit) else None)

            env.timeout(self.timeout).callbacks.append(expired)
        return done

    # -- the server side -----------------------------------------------------------------
    def handle(self, msg: Message) -> None:
        body = msg.body
        if isinstance(body, ReadLog) and not self.hung:
            self._tail(msg, body)
        else:
            super().handle(msg)

    def _serve(self, ctx: Context, msg: Message) -> Generator[Event, Any, Any]:
        body = msg.body
        if isinstance(body, Commit):
            yield ctx.work(self.commit_time)
            return self._apply(msg, body)
        yield ctx.work(self.read_time)
        self.reads += 1
        if isinstance(body, Select):
            table = self.tables[body.table]
            where = body.where
            if where:
                items = list(where.items())
                indexes = self._indexes[body.table]
                indexed = next((f for f in where if f in indexes), None)
                candidates: Iterable[tuple[Key, dict[str, Any]]]
                if indexed is not None:
                    candidates = [(k, table[k])
                                  for k in indexes[indexed].get(where[indexed], ())]
                else:
                    candidates = table.items()
                hits = [(k, r) for k, r in candidates
                        if all(f in r and r[f] == v for f, v in items)]
            else:
                hits = list(table.items())
            hits.sort(key=lambda kr: kr[0])
            if body.limit is not None:
                hits = hits[:body.limit]
            return [(k, dict(r)) for k, r in hits]
        if isinstance(body, Get):
            row = self.tables[body.table].get(body.key)
            return None if row is None else dict(row)
        if isinstance(body, ReadLog):  # arrived during a hang: served once it ends
            return self.log[body.after:body.after + body.max_entries]
        raise ServiceError(f"not a database request: {type(body).__name__}")

    def _abort(self, tx_id: int, why: str) -> None:
        self.aborted[why] = self.aborted.get(why, 0) + 1
        if self._records is not None:
            self._records((self.env.now, "tx_abort", tx_id, self.name, -1, -1, None,
                           self.name, why))

    def _apply(self, msg: Message, c: Commit) -> int:
        """Apply a commit in one instant, all of it or (a ServiceError) nothing."""
        if self.abort_rate and self._error_rng.random() < self.abort_rate:
            self._abort(c.tx_id, "error")
            raise ServiceError("error", status="aborted")
        tables = self.tables
        # check first, apply after: a failed check leaves nothing.  An insert of
        # a key that exists (or was inserted earlier in the same transaction,
        # and not deleted since) violates the unique key
        present: dict[tuple[str, Key], bool] = {}
        for op, table, key, _row in c.writes:
            where = (table, key)
            if op == INSERT:
                if present[where] if where in present else key in tables[table]:
                    self._abort(c.tx_id, "constraint")
                    raise ServiceError("constraint", status="aborted")
                present[where] = True
            elif op == DELETE:
                present[where] = False
        for op, table, key, row in c.writes:
            rows = tables[table]
            indexes = self._indexes[table]
            if op == INSERT:
                new = rows[key] = dict(row)  # type: ignore[arg-type]
                for field, index in indexes.items():
                    if field in new:
                        index.setdefault(new[field], set()).add(key)
            elif op == UPDATE:
                old = rows.get(key)
                if old is not None:
                    for field, index in indexes.items():
                        if field in row and field in old:  # type: ignore[operator]
                            index[old[field]].discard(key)
                    old.update(row)  # type: ignore[arg-type]
                    for field, index in indexes.items():
                        if field in row:  # type: ignore[operator]
                            index.setdefault(old[field], set()).add(key)
            else:
                gone = rows.pop(key, None)
                if gone is not None:
                    for field, index in indexes.items():
                        if field in gone:
                            index[gone[field]].discard(key)
        now = self.env.now
        entry = LogEntry(len(self.log) + 1, c.tx_id, now, msg.source, c.writes)
        self.log.append(entry)
        self.committed += 1
        record = self._records
        if record is not None:
            record((now, "tx_commit", c.tx_id, self.name, -1, -1, None, self.name, ""))
            for record_id, topic, key, detail in c.records:
                record((now, "produce", record_id, topic, -1, -1, key, msg.source, detail))
        if self._tails and not self.hung:
            self._wake_tails()
        return entry.position

    # -- the commit log's long polls -------------------------------------------------------
    def _tail(self, msg: Message, req: ReadLog) -> None:
        if len(self.log) > req.after or req.wait == 0:
            self.reads += 1
            self.reply(msg, self.log[req.after:req.after + req.max_entries])
            return
        pair = (msg, req)
        self._tails.append(pair)

        def expire(_ev: Event) -> None:
            if pair in self._tails:
                self._tails.remove(pair)
                if self.up and not self.hung:
                    self.reads += 1
                    self.reply(msg, [])

        self.env.timeout(req.wait).callbacks.append(expire)

    def _wake_tails(self) -> None:
        """Answer the long polls that have entries now (the others wait on)."""
        end = len(self.log)
        ready = [t for t in self._tails if end > t[1].after]
        if ready:
            self._tails = [t for t in self._tails if end <= t[1].after]
            for msg, req in ready:
                self.reads += 1
                self.reply(msg, self.log[req.after:req.after + req.max_entries])

    # -- faults ----------------------------------------------------------------------------
    def crash(self, repair_after: float | None = None) -> None:
        """Crash: commits in progress or queued are not applied (``tx_abort``,
        ``crash``) and their clients get ``reset``; long polls are reset;
        committed data and the log survive (durability)."""
        if self.up:
            for msg in list(self._current.values()) + list(self.queue):
                if isinstance(msg.body, Commit):
                    self._abort(msg.body.tx_id, "crash")
            tails, self._tails = self._tails, []
            for msg, _req in tails:
                self.reply(msg, None, "reset")
        super().crash(repair_after)

    def unhang(self, token: Event | None = None) -> None:
        """End a hang: long polls held through it get what was committed meanwhile."""
        super().unhang(token)
        if not self.hung and self._tails:
            self._wake_tails()

    def refuse(self, msg: Message, reason: str) -> None:
        if isinstance(msg.body, Commit) and msg.kind != REPLY:
            self._abort(msg.body.tx_id, "db_down" if reason == "node_down" else reason)
        super().refuse(msg, reason)

    def set_error_rate(self, rate: float) -> None:
        """An error rate makes the database refuse that share of the commits
        (``aborted``, detail ``error``) BEFORE applying anything -- a commit
        is atomic, so it cannot apply and then fail, as the generic injected
        error (drawn after the handler) would."""
        super().set_error_rate(rate)
        self.abort_rate, self.error_rate = self.error_rate, 0.0
