"""Delivery of keyed records: per-key produced order against applied order.

Pure functions from the ``trace.records`` rows (issue 9's vocabulary, see
:mod:`simcomm.engine.trace` and ``RECORD_COLUMNS``), the timeline events
(``trace.events``: the crashes) and, for records published on issue 8's
queues, the ``trace.mq`` events, to DataFrames.  :class:`~simcomm.result.Result`
wraps them as ``res.key_order()``, ``res.delivery_anomalies()``,
``res.delivery_causes()``, ``res.assignments()``, ``res.rebalances()``,
``res.consumer_lag()`` and ``res.outbox_lag()``, and its summary gains the
counts of :data:`COUNT_KEYS`.  Every step is a numpy / pandas column
operation (a million records analyse in seconds); the only Python loops
run over nodes, groups or partitions, never over records.

**The unit of account** is a record *for a reader*.  A reader is what is
expected to apply every record of a topic once: a consumer group on a
partitioned log (a member's group comes from its ``join`` rows; a member
that never joined reads for itself under the topic's name), or a queue of
issue 8's broker (competing consumers on one queue are one reader, as they
are one consumer service in *Microservices Patterns* §3.3.5).  With one
group or one queue -- every scenario of the course -- a unit is simply a
record.  A record produced on a topic is expected by every reader of that
topic (the groups assigned its partitions, and every reader that applied a
record of that topic); a record published on a queue broker is expected by
each queue it was enqueued on (the ``trace.mq`` copies; a dead-letter copy
is not a new expectation: the original is lost, cause ``dead lettered``).

**Produced order** of a key: its ``produce`` rows by time, then record id
(``produced_index`` 0, 1, 2, ...).  A record with a null key has no
produced index: Kafka promises order per partition only, and a null-keyed
record has no partition of its own (the sticky partitioner scatters them),
so its order is never judged; it still counts as applied, lost, pending or
duplicated.

**Applied order**: the ``apply`` rows of one reader, in the order they were
recorded (time order, same-time rows as they happened).  The first
``apply`` of a unit is its *first application*; ``applied_index`` numbers
the first applications of a key within a reader.  A ``skip`` row (consumer
dedup: the effect was NOT applied again) is listed, never counted as an
application.

Each produced unit ends the run in exactly one **status**:

* ``applied`` -- at least one ``apply`` (or, impossible in a consistent run,
  a ``skip`` only: the dedup table says its effect happened);
* ``lost`` -- never applied, with a known cause (below);
* ``pending`` -- never applied, no loss cause: still in flight at the end
  (in a producer's batch, in the log below the committed offset, in a
  queue, in a handler).

and a unit never produced that was applied is a ``phantom`` (the
dual-write bug's publish-first order: the message is out, the transaction
that should have produced it never committed).  The **anomalies**:

* ``lost`` -- one per lost unit (time: when it was produced);
* ``duplicated`` -- every ``apply`` of a unit beyond its first;
* ``reordered`` -- a first application of produced index i after the same
  reader applied an index j > i of the same key;
* ``gap`` -- a first application of index i ≥ 1 while index i-1 of the same
  key is not yet applied by that reader (it comes later, or never);
* ``phantom`` -- one per phantom unit (time: its first application).

Counts balance by construction (tests hold them on every table)::

    records_produced = records_applied + lost + pending
    apply rows       = records_applied - skip_only + phantom + duplicated

where ``skip_only`` (units with a ``skip`` and no ``apply``) is 0 in any run
whose dedup table is written with the effect.  A reordered application
whose predecessor came later is also that predecessor's gap only when the
predecessor is exactly i-1: 2, 0, 1 has one gap (2 before 1) and two
reorders (0 and 1 after 2).

**Causes** (:data:`CAUSES`), read from the rows, first match wins:

* a *repeat* (a duplicated application, or a skipped one) -- on a log, at
  another offset than the first application: the record is twice in the
  log, ``relay crash`` if it was sent twice with label ``relay`` (the outbox
  relay republished after a crash), else ``retry in flight`` if it was
  appended twice (a producer retry of a batch that had in fact been
  appended: Kafka's duplicate without ``enable.idempotence``); at the same
  offset, or on a queue: ``crash before commit`` if the first applier
  crashed between the two (``trace.events``), ``rebalance`` if it was
  revoked, left, was expelled (``expire``: a session or poll timeout; the
  zombie case) or had a commit refused in between, or another member
  applied it again; else ``redelivery`` (on a queue: RabbitMQ redelivered
  after a nack or a closed channel);
* a *reorder* of record a behind record b (the first record of a higher
  index applied before it) -- on a queue: ``redelivery`` if a's
  application was a redelivery, else ``competing consumers``; on a log, a
  and b on different partitions: ``competing consumers`` (one key's records
  read by parallel readers); a at a higher offset than b (the log itself
  holds them out of produced order): ``dual write`` if either was produced
  by a dual-write service, ``retry in flight`` if a was retried or appended
  twice (a batch retried behind a later one in flight, ``max.in.flight.
  requests.per.connection`` > 1 without idempotence), ``producer gave up``
  if a send of a failed first, ``relay crash`` if a was relayed twice, else
  ``unknown``; a at a lower offset (the log was right, the reader was not):
  ``rebalance`` (a previous owner -- a zombie -- applied it after the new
  owner had moved past it);
* a *gap* at index i: the cause of index i-1's reorder if it came later, or
  of its loss; if i-1 is still pending, the reorder rules applied to i-1
  behind i;
* a *loss* -- ``broker drop`` / ``commit before processing`` / ``dead
  lettered`` from the queue broker's drop or dead-letter events (an
  auto-acked message lost with its consumer is a commit before
  processing: RabbitMQ's automatic acknowledgement is the commit);
  ``dual write`` (produced by a dual write, never sent: the service crashed
  between its commit and its publish); ``producer gave up`` (a ``fail``
  row, and no append left in the log: ``delivery.timeout.ms`` or
  ``retries`` ran out); ``leader failover`` (its last append was truncated
  when a new leader was elected: acks=1's acknowledged-then-lost record);
  ``acks=0`` (sent without waiting for an answer -- the producer counted it
  done -- and never appended, while its partition's log went on: lost on
  the way or by a dead leader, and nobody told);
  ``commit before processing`` (its reader committed an offset past it and
  the committing member then crashed, was expelled, left or revoked before
  applying it: at-most-once); ``offset reset`` (a member of its reader
  started past it, ``auto.offset.reset=latest``);
* a *phantom*: ``dual write`` if a dual-write service sent it, else
  ``unknown``.

What the rows cannot tell, said rather than hidden: a queue publish lost on
the network before the broker (no ``trace.mq`` copy) reads ``pending``
(issue 8's ``res.deliveries`` has its fate); ``consumer_lag`` measures
against the leader's log end, not the high watermark (the records table
has no row for the high watermark moving).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from simcomm.engine.trace import RECORD_COLUMNS as _RECORD_COLUMNS
from simcomm.engine.trace import Table
from simcomm.errors import ParamError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["ANOMALIES", "ANOMALY_COLUMNS", "ASSIGNMENT_COLUMNS", "CAUSES", "CAUSE_COLUMNS",
           "COUNT_KEYS", "KEY_ORDER_COLUMNS", "KINDS", "LAG_COLUMNS", "OUTBOX_COLUMNS",
           "REBALANCE_COLUMNS", "Delivery", "analyse", "assignments", "consumer_lag",
           "delivery_causes", "delivery_row", "outbox_lag", "rebalances", "records_frame"]

#: The anomalies of :func:`delivery_anomalies <Delivery.anomalies>`, in this order.
ANOMALIES = ("lost", "duplicated", "reordered", "gap", "phantom")

#: The kinds of a :meth:`Delivery.key_order` row.
KINDS = ("in_order", "reordered", "duplicate", "skipped", "phantom")

#: Every cause an anomaly can be attributed to (see the module docstring).
CAUSES = ("rebalance", "crash before commit", "retry in flight", "competing consumers",
          "relay crash", "commit before processing", "leader failover", "producer gave up",
          "dual write", "redelivery", "offset reset", "acks=0", "dead lettered", "broker drop",
          "unknown")

KEY_ORDER_COLUMNS = ("key", "record_id", "produced_index", "applied_index", "time", "node",
                     "partition", "offset", "kind", "cause", "reader")
ANOMALY_COLUMNS = ("time", "key", "record_id", "anomaly", "cause", "reader")
CAUSE_COLUMNS = ("anomaly", "cause", "count")
ASSIGNMENT_COLUMNS = ("group", "topic", "partition", "member", "start", "end", "generation")
REBALANCE_COLUMNS = ("group", "start", "end", "why", "generation")
LAG_COLUMNS = ("time", "group", "topic", "partition", "log_end", "committed", "lag")
OUTBOX_COLUMNS = ("record_id", "key", "committed", "sent", "applied", "lag")

#: The summary keys of a run with produced records (``Result.summary``).
COUNT_KEYS = ("records_produced", "records_applied", "lost", "duplicated", "reordered",
              "gaps", "phantom", "pending", "lost_per_10k", "duplicated_per_10k",
              "reordered_per_10k", "rebalances")

# the mq events that show a copy of a message on a channel
_MQ_COPY = ("enqueue", "pipe", "deliver", "consume", "requeue", "ack", "drop", "dead_letter")
# the group events after which a member no longer owns what it had
_LET_GO = ("revoke", "leave", "expire", "commit_failed")


def records_frame(records: pd.DataFrame | Iterable[tuple]) -> pd.DataFrame:
    """The records table as a DataFrame with ``RECORD_COLUMNS``: ``time``
    float, ``record_id`` / ``partition`` / ``offset`` int64, the rest
    objects (a key stays the str or int it was given).  A DataFrame is
    checked and returned as it is."""
    import numpy as np
    import pandas as pd

    if isinstance(records, pd.DataFrame):
        missing = [c for c in _RECORD_COLUMNS if c not in records.columns]
        if missing:
            raise ParamError("records", list(records.columns),
                             f"a table with the columns {_RECORD_COLUMNS} (missing {missing})")
        return records
    rows = records if isinstance(records, list) else list(records)
    if not rows:
        grid = np.empty((0, len(_RECORD_COLUMNS)), dtype=object)
    else:
        # pandas' own C loop from tuples to an object grid (what DataFrame(rows)
        # uses, without its inference of every column), or the public way
        from pandas._libs import lib

        to_grid = getattr(lib, "to_object_array_tuples", None)
        grid = (to_grid(rows) if to_grid is not None
                else pd.DataFrame(rows, dtype=object).to_numpy())
    data: dict[str, Any] = {}
    for i, name in enumerate(_RECORD_COLUMNS):
        col = grid[:, i]
        if name == "time":
            data[name] = col.astype(float)
        elif name in ("record_id", "partition", "offset"):
            data[name] = col.astype(np.int64)
        else:
            data[name] = pd.Series(col, dtype=object)
    return pd.DataFrame(data)


class _Rows:
    """The records table split by event (index arrays into the columns)."""

    def __init__(self, rec: pd.DataFrame) -> None:
        import numpy as np
        import pandas as pd

        self.rec = rec
        codes, uniques = pd.factorize(rec["event"], use_na_sentinel=True)
        self._codes = np.asarray(codes)
        self._ids = {name: i for i, name in enumerate(list(uniques))}
        self.n = len(rec)

    def where(self, *events: str) -> np.ndarray:
        """Row positions of these events, in recorded order."""
        import numpy as np

        ids = [self._ids[e] for e in events if e in self._ids]
        if not ids:
            return np.empty(0, dtype=np.int64)
        if len(ids) == 1:
            return np.flatnonzero(self._codes == ids[0])
        mask = self._codes == ids[0]
        for i in ids[1:]:
            mask |= self._codes == i
        return np.flatnonzero(mask)

    def table(self, *events: str, columns: Sequence[str] = _RECORD_COLUMNS) -> pd.DataFrame:
        """These events' rows (``seq`` = their position in the table)."""
        pos = self.where(*events)
        out = self.rec.iloc[pos][list(columns)].reset_index(drop=True)
        out["seq"] = pos
        return out


class _NodeTimes:
    """Sorted times of some events per node: "did X happen to node n in
    [t0, t1]", vectorised over many queries (a loop over nodes only)."""

    def __init__(self, nodes: Iterable[Any], times: Iterable[float]) -> None:
        import numpy as np

        by: dict[Any, list[float]] = {}
        for n, t in zip(nodes, times, strict=True):
            by.setdefault(n, []).append(float(t))
        self.by = {n: np.sort(np.asarray(ts)) for n, ts in by.items()}

    def any_between(self, nodes: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        import numpy as np

        out = np.zeros(len(nodes), dtype=bool)
        if not self.by or not len(nodes):
            return out
        nodes = np.asarray(nodes, dtype=object)
        for n, times in self.by.items():
            sel = np.flatnonzero(nodes == n)
            if sel.size:
                lo = np.searchsorted(times, t0[sel], side="left")
                hi = np.searchsorted(times, t1[sel], side="right")
                out[sel] = hi > lo
        return out


def _obj(values: Any) -> pd.Series:
    """An object column as given: pandas would read a column of strings and
    None as its string dtype, None turned NaN (a null key must stay None)."""
    import pandas as pd

    return pd.Series(values, dtype=object)


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: [] for c in columns})


class Delivery:
    """The analysis of one run's records (what :func:`analyse` returns).

    * ``units`` -- one row per (reader, record): ``reader``, ``record_id``,
      ``key``, ``produced`` (bool), ``produced_time``, ``produced_index``,
      ``status`` (``applied``, ``lost``, ``pending``, ``phantom``),
      ``cause`` (of a loss or a phantom, else ""), ``first_applied``,
      ``applications`` (apply rows), ``skips`` and ``latency`` (produce →
      first application);
    * ``key_order`` -- :data:`KEY_ORDER_COLUMNS`, one row per apply / skip;
    * ``anomalies`` -- :data:`ANOMALY_COLUMNS`;
    * ``counts`` -- :data:`COUNT_KEYS` (``rebalances`` from the rows), and
      beside them ``applications``, ``skipped`` and ``skip_only``.
    """

    def __init__(self, units: pd.DataFrame, key_order: pd.DataFrame,
                 anomalies: pd.DataFrame, rebalance_count: int) -> None:
        self.units = units
        self.key_order = key_order
        self.anomalies = anomalies
        self.counts = _counts(units, key_order, anomalies, rebalance_count)

    def causes(self) -> pd.DataFrame:
        """:func:`delivery_causes` of :attr:`anomalies`."""
        return delivery_causes(self.anomalies)

    def latency(self) -> np.ndarray:
        """Produce → first application, seconds, of every applied unit."""
        import numpy as np

        lat = self.units["latency"].to_numpy(dtype=float)
        return lat[np.isfinite(lat)]


def _counts(units: pd.DataFrame, key_order: pd.DataFrame, anomalies: pd.DataFrame,
            rebalance_count: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    def tally(values: Any, names: Sequence[str]) -> dict[str, int]:
        counts = pd.Series(np.asarray(values, dtype=object)).value_counts()
        return {v: int(counts.get(v, 0)) for v in names}

    is_prod = units["produced"].to_numpy(bool)
    n = int(is_prod.sum())
    status = tally(units["status"].to_numpy(object)[is_prod], ("applied", "lost", "pending"))
    kinds = tally(key_order["kind"], KINDS)
    anom = tally(anomalies["anomaly"], ANOMALIES)

    def per_10k(x: int) -> float:
        return x / n * 10_000 if n else math.nan

    lost = int(status.get("lost", 0))
    dup = int(anom.get("duplicated", 0))
    reord = int(anom.get("reordered", 0))
    skip_only = int(((units["applications"] == 0) & (units["skips"] > 0)
                     & units["produced"]).sum()) if len(units) else 0
    return {"records_produced": n, "records_applied": int(status.get("applied", 0)),
            "lost": lost, "duplicated": dup, "reordered": reord,
            "gaps": int(anom.get("gap", 0)), "phantom": int(anom.get("phantom", 0)),
            "pending": int(status.get("pending", 0)),
            "lost_per_10k": per_10k(lost), "duplicated_per_10k": per_10k(dup),
            "reordered_per_10k": per_10k(reord), "rebalances": rebalance_count,
            "applications": int(kinds.get("in_order", 0) + kinds.get("reordered", 0)
                                + kinds.get("duplicate", 0) + kinds.get("phantom", 0)),
            "skipped": int(kinds.get("skipped", 0)), "skip_only": skip_only}


def _select(conds: list[np.ndarray], choices: list[Any], default: str) -> np.ndarray:
    import numpy as np

    n = len(conds[0]) if conds else 0
    out = np.full(n, default, dtype=object)
    done = np.zeros(n, dtype=bool)
    for c, v in zip(conds, choices, strict=True):
        take = c & ~done
        out[take] = v[take] if isinstance(v, np.ndarray) else v
        done |= take
    return out


def _lookup(keys: pd.DataFrame, table: pd.DataFrame, on: list[str],
            fields: list[str]) -> pd.DataFrame:
    """``fields`` of ``table`` for each row of ``keys`` (matched on ``on``,
    the table's first match; NaN where none), aligned with ``keys``' rows."""
    t = table.drop_duplicates(on)[[*on, *fields]]
    return keys[on].reset_index(drop=True).merge(t, on=on, how="left", sort=False)


def analyse(records: pd.DataFrame | Iterable[tuple], events: Iterable[tuple] = (),
            mq: Iterable[tuple] | None = None) -> Delivery:
    """Read a run's records (``trace.records`` tuples or :func:`records_frame`),
    its timeline ``events`` (``trace.events``: ``time, node, event, detail``;
    the ``crash`` rows are read) and, optionally, the queue broker's
    ``trace.mq`` tuples (which queues a keyed publish reached, and what
    dropped it): the units, the key order, the anomalies with their causes
    and the counts, by the rules of the module docstring."""
    import numpy as np
    import pandas as pd

    rec = records_frame(records)
    rows = _Rows(rec)
    crashes = [(e[1], e[0]) for e in events if e[2] == "crash"]
    crashed = _NodeTimes([c[0] for c in crashes], [c[1] for c in crashes])

    # -- members → groups, readers of the applications ------------------------------
    joins = rows.table("join", columns=("topic", "node"))
    member_group: dict[Any, Any] = dict(zip(joins["node"], joins["topic"], strict=True))
    apps = rows.table("apply", "skip")
    apps["reader"] = _readers(apps, member_group)
    # readers as int codes (merges on ints, not on names); _units adds the
    # readers that applied nothing
    rcode, runiq = pd.factorize(_obj(apps["reader"].to_numpy(object)), use_na_sentinel=True)
    apps["rc"] = np.asarray(rcode, dtype=np.int64)
    reader_code: dict[Any, int] = {r: i for i, r in enumerate(list(runiq))}

    # -- produced records and their order per key -------------------------------------
    prod = rows.table("produce").drop_duplicates("record_id").reset_index(drop=True)
    kc, _ = pd.factorize(prod["key"], use_na_sentinel=True)
    kc = np.asarray(kc, dtype=np.int64)
    prod["kc"] = kc
    prod["pidx"] = _produced_index(kc, prod["time"].to_numpy(float),
                                   prod["record_id"].to_numpy(np.int64))

    # -- per record: what the producer side did -------------------------------------
    facts = _record_facts(rows, prod)

    # -- the units: expected (reader, record) pairs, plus what was applied ---------------
    units = _units(rows, prod, apps, member_group, mq, reader_code)

    # -- applications per unit ------------------------------------------------------------
    is_apply = (apps["event"] == "apply").to_numpy()
    apps["is_apply"] = is_apply
    key_cols = ["rc", "record_id"]
    first = np.zeros(len(apps), dtype=bool)
    if len(apps):
        only = apps[is_apply]
        first[np.flatnonzero(is_apply)[~only.duplicated(key_cols).to_numpy()]] = True
    apps["first"] = first
    pinfo = _lookup(apps, prod, ["record_id"], ["time", "kc", "pidx", "detail", "key"])
    apps["ptime"] = pinfo["time"].to_numpy(float)
    apps["produced"] = ~np.isnan(apps["ptime"].to_numpy(float))
    # the key is the produce row's (a service may send a record under another
    # key than the one whose order it belongs to: a null key, a customer id)
    apps["key"] = _obj(np.where(apps["produced"].to_numpy(bool), pinfo["key"].to_numpy(object),
                                apps["key"].to_numpy(object)))
    apps["kc"] = pinfo["kc"].fillna(-1).to_numpy(np.int64)
    apps["pidx"] = pinfo["pidx"].to_numpy(float)
    apps["pdetail"] = pinfo["detail"].to_numpy(object)

    # -- order: reordered, applied index, gap (first applications of keyed records) -------
    judged = apps["first"].to_numpy() & apps["produced"].to_numpy() & (apps["kc"] >= 0).to_numpy()
    f = apps[judged].copy()
    _order(f)

    # -- causes -----------------------------------------------------------------------------
    firsts = apps[apps["first"]]
    first_info = firsts[["rc", "record_id", "node", "time", "partition", "offset",
                         "detail"]].rename(columns={"node": "node1", "time": "t1",
                                                    "partition": "part1", "offset": "off1",
                                                    "detail": "detail1"})
    f["cause"] = _reorder_causes(f, facts)
    repeats = apps[~apps["first"]].copy()
    repeats["cause"] = _repeat_causes(repeats, first_info, facts, crashed, rows)

    units = _unit_status(units, apps, prod, facts, rows, member_group, crashed, mq,
                         reader_code)
    f["gap_cause"] = _gap_causes(f, units, facts)

    # -- the tables ----------------------------------------------------------------------
    kind = np.where(apps["event"].to_numpy() == "skip", "skipped",
                    np.where(~apps["first"].to_numpy(), "duplicate",
                             np.where(~apps["produced"].to_numpy(), "phantom", "in_order")))
    kind = kind.astype(object)
    cause = np.full(len(apps), "", dtype=object)
    applied_index = np.full(len(apps), np.nan)
    pos = np.flatnonzero(judged)
    kind[pos[f["reordered"].to_numpy()]] = "reordered"
    cause[pos] = np.where(f["reordered"].to_numpy(), f["cause"].to_numpy(object), "")
    applied_index[pos] = f["aidx"].to_numpy(float)
    rep_pos = np.flatnonzero(~apps["first"].to_numpy())
    cause[rep_pos] = repeats["cause"].to_numpy(object)
    phantom_pos = np.flatnonzero(apps["first"].to_numpy() & ~apps["produced"].to_numpy())
    if phantom_pos.size:
        ph = units[units["status"] == "phantom"][["rc", "record_id", "cause"]]
        cause[phantom_pos] = _lookup(apps.iloc[phantom_pos], ph, ["rc", "record_id"],
                                     ["cause"])["cause"].fillna("unknown").to_numpy(object)
    key_order = pd.DataFrame({
        "key": _obj(apps["key"].to_numpy(object)),
        "record_id": apps["record_id"].to_numpy(np.int64),
        "produced_index": apps["pidx"].to_numpy(float), "applied_index": applied_index,
        "time": apps["time"].to_numpy(float), "node": apps["node"].to_numpy(object),
        "partition": apps["partition"].to_numpy(np.int64),
        "offset": apps["offset"].to_numpy(np.int64), "kind": kind, "cause": cause,
        "reader": _obj(apps["reader"].to_numpy(object))})

    anomalies = _anomalies(units, apps, f, repeats)
    nreb = len(_rebalances(rows))
    return Delivery(units, key_order, anomalies, nreb)


def _readers(apps: pd.DataFrame, member_group: dict[Any, Any]) -> np.ndarray:
    """The reader of each apply / skip row: the member's group on a log, the
    queue (the topic column) on a queue or for a member without a group."""
    import numpy as np

    if not len(apps):
        return np.empty(0, dtype=object)
    topic = apps["topic"].to_numpy(object)
    if not member_group:
        return topic
    mapped = apps["node"].map(member_group)
    use = (apps["partition"].to_numpy(np.int64) >= 0) & mapped.notna().to_numpy(bool)
    return np.where(use, mapped.to_numpy(object), topic).astype(object)


def _produced_index(kc: np.ndarray, t: np.ndarray, rid: np.ndarray) -> np.ndarray:
    """Each record's place in its key's produced order (by time, then record
    id); NaN for a null key."""
    import numpy as np

    n = len(kc)
    out = np.full(n, np.nan)
    if not n:
        return out
    o = np.lexsort((rid, t, kc))
    ks = kc[o]
    start = np.r_[True, ks[1:] != ks[:-1]]
    first_pos = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    out[o] = np.arange(n) - first_pos
    out[kc < 0] = np.nan
    return out


def _record_facts(rows: _Rows, prod: pd.DataFrame) -> pd.DataFrame:
    """Per record id, what happened on the producer side: ``n_appends``,
    the last append's ``a_topic, a_part, a_off, a_time``, ``t_trunc`` (the
    last truncate), ``retried``, ``failed``, ``n_relay`` (sends labelled
    relay), ``n_sends`` (any send), ``n_dual_sends`` and the produce row's
    ``pdetail``; indexed by record id."""
    import numpy as np
    import pandas as pd

    rec = rows.rec
    ap = rows.where("append")
    rid_col = rec["record_id"].to_numpy(np.int64)
    a = pd.DataFrame({"record_id": rid_col[ap],
                      "a_topic": rec["topic"].to_numpy(object)[ap],
                      "a_part": rec["partition"].to_numpy(np.int64)[ap],
                      "a_off": rec["offset"].to_numpy(np.int64)[ap],
                      "a_time": rec["time"].to_numpy(float)[ap]})
    last = a.drop_duplicates("record_id", keep="last").set_index("record_id")
    last["n_appends"] = a["record_id"].value_counts()
    out = last
    tr = rows.where("truncate")
    t_trunc = pd.Series(rec["time"].to_numpy(float)[tr], index=rid_col[tr])
    t_trunc = t_trunc.groupby(level=0).max()
    ids = pd.Index(_unique_ints(np.concatenate([
        out.index.to_numpy(np.int64), t_trunc.index.to_numpy(np.int64),
        rid_col[rows.where("retry", "fail", "send")], prod["record_id"].to_numpy(np.int64)])))
    out = out.reindex(ids)
    out["n_appends"] = out["n_appends"].fillna(0).astype(np.int64)
    out["t_trunc"] = t_trunc.reindex(ids)
    out["retried"] = ids.isin(rid_col[rows.where("retry")])
    out["failed"] = ids.isin(rid_col[rows.where("fail")])
    out["acked"] = ids.isin(rid_col[rows.where("ack")])
    sp = rows.where("send")
    det = rec["detail"].to_numpy(object)[sp]
    srid = rid_col[sp]
    out["n_sends"] = pd.Series(srid).value_counts().reindex(ids).fillna(0).to_numpy(np.int64)
    out["n_relay"] = pd.Series(srid[det == "relay"]).value_counts().reindex(ids).fillna(
        0).to_numpy(np.int64)
    out["n_dual_sends"] = pd.Series(srid[det == "dual_write"]).value_counts().reindex(
        ids).fillna(0).to_numpy(np.int64)
    out["pdetail"] = prod.set_index("record_id")["detail"].reindex(ids).to_numpy(object)
    live = ~np.isnan(out["a_time"].to_numpy(float))
    tt = out["t_trunc"].to_numpy(float)
    out["live"] = live & ~(~np.isnan(tt) & (out["a_time"].to_numpy(float) <= tt))
    # acks=0: the producer counted it sent; lost if its partition's log went
    # on without it (a later append there, none of it)
    out["unheard"] = np.zeros(len(ids), dtype=bool)
    ak = rows.where("ack")
    zero = ak[rec["detail"].to_numpy(object)[ak] == "0"]
    if zero.size:
        z = pd.DataFrame({"record_id": rid_col[zero],
                          "topic": rec["topic"].to_numpy(object)[zero],
                          "partition": rec["partition"].to_numpy(np.int64)[zero],
                          "t": rec["time"].to_numpy(float)[zero]}).drop_duplicates("record_id")
        ends = a.groupby(["a_topic", "a_part"], sort=False)["a_time"].max().rename("t_end")
        z = z.merge(ends.reset_index().rename(columns={"a_topic": "topic",
                                                       "a_part": "partition"}),
                    on=["topic", "partition"], how="left")
        moved_on = (z["t_end"].to_numpy(float) > z["t"].to_numpy(float))
        gone = z.loc[moved_on, "record_id"].to_numpy(np.int64)
        out["unheard"] = ids.isin(gone) & ~live
    out.index.name = "record_id"
    return out


def _unique_ints(x: np.ndarray) -> np.ndarray:
    """The distinct values of an int array, sorted (numpy's own unique hashes
    them first, several times slower on a million)."""
    import numpy as np

    a = np.sort(x)
    return a[np.r_[True, a[1:] != a[:-1]]] if a.size else a


def _fact(facts: pd.DataFrame, rid: np.ndarray, name: str, fill: Any) -> np.ndarray:
    col = facts[name].reindex(rid)
    if fill is not None:
        col = col.fillna(fill)
    return col.to_numpy()


def _units(rows: _Rows, prod: pd.DataFrame, apps: pd.DataFrame,
           member_group: dict[Any, Any], mq: Iterable[tuple] | None,
           reader_code: dict[Any, int]) -> pd.DataFrame:
    """Every (reader, record) expected, and every one applied: columns
    ``reader, rc, record_id`` (unique pairs; ``rc`` the reader's code in
    ``reader_code``, which this extends with the readers that applied
    nothing, None -- no reader at all -- included)."""
    import numpy as np
    import pandas as pd

    rec = rows.rec

    def code(name: Any) -> int:
        c = reader_code.get(name)
        if c is None:
            c = reader_code[name] = len(reader_code)
        return c

    # topics of the partitioned log: appended to, applied at an offset, or assigned
    logs: set[Any] = set()
    for ev in ("append", "assign"):
        logs.update(rec["topic"].to_numpy(object)[rows.where(ev)].tolist())
    logs.update(apps.loc[apps["partition"] >= 0, "topic"].tolist())
    # the produced records' topics as codes
    tcode, tuniq = pd.factorize(_obj(prod["topic"].to_numpy(object)), use_na_sentinel=True)
    tcode = np.asarray(tcode, dtype=np.int64)
    topics = list(tuniq)
    topic_code = {t: i for i, t in enumerate(topics)}
    # readers of each topic: groups assigned it, and readers that applied its records
    pairs: set[tuple[int, int]] = set()
    asg = rows.table("assign", columns=("topic", "node"))
    for n, t in zip(asg["node"], asg["topic"], strict=True):
        if t in topic_code:
            pairs.add((topic_code[t], code(member_group.get(n, t))))
    rid_prod = prod["record_id"].to_numpy(np.int64)
    at = pd.Index(rid_prod).get_indexer(apps["record_id"].to_numpy(np.int64))
    hit = at >= 0
    if hit.any():
        span = max(len(reader_code), 1) + 1
        linked = _unique_ints(tcode[at[hit]] * span + apps["rc"].to_numpy(np.int64)[hit])
        pairs.update(zip((linked // span).tolist(), (linked % span).tolist(), strict=True))
    readers_of: dict[int, list[int]] = {}
    for t, rc in sorted(pairs):
        readers_of.setdefault(t, []).append(rc)

    log_topic = np.array([t in logs for t in topics], dtype=bool)
    queue_rec = (prod["partition"].to_numpy(np.int64) < 0) & ~(
        log_topic[tcode] & (tcode >= 0) if len(topics) else np.zeros(len(prod), bool))
    parts_rc: list[np.ndarray] = []
    parts_rid: list[np.ndarray] = []
    covered = np.zeros(len(prod), dtype=bool)
    if queue_rec.any() and mq is not None:
        via_mq = _mq_copies(mq, rid_prod[queue_rec])
        if len(via_mq):
            parts_rc.append(np.array([code(c) for c in via_mq["reader"].tolist()],
                                     dtype=np.int64))
            parts_rid.append(via_mq["record_id"].to_numpy(np.int64))
            covered = pd.Series(rid_prod).isin(parts_rid[-1]).to_numpy(bool)
    none = code(None) if (~covered).any() else -1
    for t in range(len(topics)):
        sel = np.flatnonzero(~covered & (tcode == t))
        if not sel.size:
            continue
        for rc in readers_of.get(t, [none]):
            parts_rc.append(np.full(sel.size, rc, dtype=np.int64))
            parts_rid.append(rid_prod[sel])
    nulltopic = np.flatnonzero(~covered & (tcode < 0))
    if nulltopic.size:
        parts_rc.append(np.full(nulltopic.size, none, dtype=np.int64))
        parts_rid.append(rid_prod[nulltopic])
    parts_rc.append(apps["rc"].to_numpy(np.int64))
    parts_rid.append(apps["record_id"].to_numpy(np.int64))
    rc_all = np.concatenate(parts_rc)
    rid_all = np.concatenate(parts_rid)
    if rid_all.size:
        lo = int(rid_all.min())
        span = int(rid_all.max()) - lo + 1
        keys = _unique_ints(rc_all * span + (rid_all - lo))
        rc_u, rid_u = keys // span, keys % span + lo
    else:
        rc_u = rid_u = np.empty(0, dtype=np.int64)
    names = np.empty(len(reader_code), dtype=object)
    for name, i in reader_code.items():
        names[i] = name
    return pd.DataFrame({"reader": _obj(names[rc_u]), "rc": rc_u, "record_id": rid_u})


def _mq_frame(mq: Iterable[tuple]) -> pd.DataFrame:
    import pandas as pd

    if isinstance(mq, Table):  # the trace's own table: built column by column
        return mq.to_frame()
    rows = mq if isinstance(mq, list) else list(mq)
    return pd.DataFrame(rows, columns=["time", "event", "message_id", "channel", "node",
                                       "detail"])


def _mq_copies(mq: Iterable[tuple], ids: np.ndarray) -> pd.DataFrame:
    """(record_id, reader=queue) of every queue a keyed publish was copied to
    (a dead-letter copy excepted)."""
    m = _mq_frame(mq)
    m = m[m["message_id"].isin(ids) & m["event"].isin(_MQ_COPY)
          & ~((m["event"] == "enqueue") & (m["detail"] == "dead_letter"))]
    out = m[["message_id", "channel"]].drop_duplicates()
    return out.rename(columns={"message_id": "record_id", "channel": "reader"})


def _order(f: pd.DataFrame) -> None:
    """Mark the first applications ``f`` (of produced, keyed records, in
    recorded order): ``aidx`` (applied index within reader and key),
    ``top`` (the highest produced index applied before, -1 if none),
    ``reordered``, and ``pred_later`` / ``gap``."""
    import numpy as np

    n = len(f)
    rc = f["rc"].to_numpy(np.int64)
    kc = f["kc"].to_numpy(np.int64)
    pidx = f["pidx"].to_numpy(float).astype(np.int64) if n else np.empty(0, np.int64)
    seq = f["seq"].to_numpy(np.int64)
    o = np.lexsort((seq, kc, rc))
    rs, ks, ps = rc[o], kc[o], pidx[o]
    start = np.r_[True, (rs[1:] != rs[:-1]) | (ks[1:] != ks[:-1])] if n else np.empty(0, bool)
    gid = np.cumsum(start) - 1
    first_pos = np.maximum.accumulate(np.where(start, np.arange(n), 0)) if n else gid
    big = int(ps.max()) + 2 if n else 1
    cm = np.maximum.accumulate(ps + gid * big) - gid * big if n else ps
    prev = np.where(start, -1, np.r_[-1, cm[:-1]]) if n else ps
    top = np.empty(n, np.int64)
    top[o] = prev
    aidx = np.empty(n, np.int64)
    aidx[o] = np.arange(n) - first_pos
    f["aidx"] = aidx
    f["top"] = top
    f["reordered"] = pidx < top
    # the predecessor's first application in the same reader, if any
    own = {"rc": rc, "kc": kc, "pidx": pidx}
    import pandas as pd

    me = pd.DataFrame(own)
    me["seq"] = seq
    want = pd.DataFrame({"rc": rc, "kc": kc, "pidx": pidx - 1})
    pred = want.merge(me, on=["rc", "kc", "pidx"], how="left")["seq"].to_numpy(float)
    f["pred_seq"] = pred
    f["gap"] = (pidx >= 1) & (np.isnan(pred) | (pred > seq))


def _pair_cause(queue: np.ndarray, redelivered: np.ndarray, part_a: np.ndarray,
                off_a: np.ndarray, part_b: np.ndarray, off_b: np.ndarray,
                facts_a: dict[str, np.ndarray], dual_b: np.ndarray) -> np.ndarray:
    """Why record a was applied after record b of a higher produced index
    (the reorder rules of the module docstring); ``off_a`` NaN when a is
    nowhere in the log."""
    import numpy as np

    other_part = ~queue & (part_a >= 0) & (part_a != part_b)
    inverted = ~queue & ~other_part & (np.isnan(off_a) | (off_a > off_b))
    dual = (facts_a["pdetail"] == "dual_write") | dual_b
    retry = facts_a["retried"] | (facts_a["n_appends"] >= 2)
    return _select(
        [queue & redelivered, queue, other_part, inverted & dual, inverted & retry,
         inverted & facts_a["failed"], inverted & (facts_a["n_relay"] >= 2), inverted],
        ["redelivery", "competing consumers", "competing consumers", "dual write",
         "retry in flight", "producer gave up", "relay crash", "unknown"],
        "rebalance")


def _facts_of(facts: pd.DataFrame, rid: np.ndarray) -> dict[str, np.ndarray]:
    import numpy as np

    return {"pdetail": _fact(facts, rid, "pdetail", None).astype(object),
            "retried": _fact(facts, rid, "retried", False).astype(bool),
            "failed": _fact(facts, rid, "failed", False).astype(bool),
            "acked": _fact(facts, rid, "acked", False).astype(bool),
            "n_appends": _fact(facts, rid, "n_appends", 0).astype(np.int64),
            "n_relay": _fact(facts, rid, "n_relay", 0).astype(np.int64),
            "n_sends": _fact(facts, rid, "n_sends", 0).astype(np.int64),
            "n_dual_sends": _fact(facts, rid, "n_dual_sends", 0).astype(np.int64),
            "live": _fact(facts, rid, "live", False).astype(bool),
            "unheard": _fact(facts, rid, "unheard", False).astype(bool),
            "a_topic": _fact(facts, rid, "a_topic", None).astype(object),
            "a_part": _fact(facts, rid, "a_part", None).astype(float),
            "a_off": _fact(facts, rid, "a_off", None).astype(float),
            "a_time": _fact(facts, rid, "a_time", None).astype(float),
            "t_trunc": _fact(facts, rid, "t_trunc", None).astype(float)}


def _reorder_causes(f: pd.DataFrame, facts: pd.DataFrame) -> np.ndarray:
    """The cause of each reordered first application in ``f`` ("" for the
    others)."""
    import numpy as np

    out = np.full(len(f), "", dtype=object)
    sel = np.flatnonzero(f["reordered"].to_numpy(bool))
    if not sel.size:
        return out
    a = f.iloc[sel]
    # b: the first record of the highest index applied before a
    b = a[["rc", "kc", "top"]].rename(columns={"top": "pidx"}).merge(
        f[["rc", "kc", "pidx", "partition", "offset", "record_id"]].assign(
            pidx=f["pidx"].to_numpy(float).astype(np.int64)),
        on=["rc", "kc", "pidx"], how="left")
    rid_b = b["record_id"].to_numpy(np.int64)
    part_a = a["partition"].to_numpy(np.int64)
    dual_b = _fact(facts, rid_b, "pdetail", None) == "dual_write"
    out[sel] = _pair_cause(part_a < 0, (a["detail"] == "redelivered").to_numpy(bool),
                           part_a, a["offset"].to_numpy(float),
                           b["partition"].to_numpy(np.int64), b["offset"].to_numpy(float),
                           _facts_of(facts, a["record_id"].to_numpy(np.int64)), dual_b)
    return out


def _repeat_causes(rep: pd.DataFrame, first_info: pd.DataFrame, facts: pd.DataFrame,
                   crashed: _NodeTimes, rows: _Rows) -> np.ndarray:
    """Why each repeat (an apply after the unit's first, or a skip) came."""
    import numpy as np

    if not len(rep):
        return np.empty(0, dtype=object)
    fi = _lookup(rep, first_info, ["rc", "record_id"],
                 ["node1", "t1", "part1", "off1", "detail1"])
    has_first = fi["t1"].notna().to_numpy()
    t1 = fi["t1"].to_numpy(float)
    t2 = rep["time"].to_numpy(float)
    node1 = fi["node1"].to_numpy(object)
    part2 = rep["partition"].to_numpy(np.int64)
    off2 = rep["offset"].to_numpy(np.int64)
    same = (fi["part1"].to_numpy(float) == part2) & (fi["off1"].to_numpy(float) == off2)
    queue = part2 < 0
    rid = rep["record_id"].to_numpy(np.int64)
    fa = _facts_of(facts, rid)
    t1q = np.where(has_first, t1, t2)
    crash = crashed.any_between(node1, t1q, t2) & has_first
    let_go_rows = rows.table(*_LET_GO, columns=("time", "node"))
    let_go = _NodeTimes(let_go_rows["node"], let_go_rows["time"])
    moved = (let_go.any_between(node1, t1q, t2)
             | (rep["node"].to_numpy(object) != node1)) & has_first
    relay = fa["n_relay"] >= 2
    return _select(
        [~has_first, ~queue & ~same & relay, ~queue & ~same & (fa["n_appends"] >= 2),
         ~queue & ~same, crash, ~queue & moved],
        ["unknown", "relay crash", "retry in flight", "unknown", "crash before commit",
         "rebalance"],
        "redelivery")


def _unit_status(units: pd.DataFrame, apps: pd.DataFrame, prod: pd.DataFrame,
                 facts: pd.DataFrame, rows: _Rows, member_group: dict[Any, Any],
                 crashed: _NodeTimes, mq: Iterable[tuple] | None,
                 reader_code: dict[Any, int]) -> pd.DataFrame:
    """``units`` with their status, cause, applications and latency."""
    import numpy as np

    keys = ["rc", "record_id"]
    only = apps[apps["is_apply"]]
    n_app = only.groupby(keys, dropna=False, sort=False).size().rename("applications")
    n_skip = apps[~apps["is_apply"]].groupby(keys, dropna=False, sort=False).size().rename(
        "skips")
    first_t = only[only["first"]].set_index(keys)["time"].rename("first_applied")
    u = units.merge(n_app.reset_index(), on=keys, how="left")
    u = u.merge(n_skip.reset_index(), on=keys, how="left")
    u = u.merge(first_t.reset_index(), on=keys, how="left")
    u["applications"] = u["applications"].fillna(0).astype(np.int64)
    u["skips"] = u["skips"].fillna(0).astype(np.int64)
    p = _lookup(u, prod, ["record_id"], ["time", "key", "pidx", "topic", "kc"])
    u["kc"] = p["kc"].fillna(-1).to_numpy(np.int64)
    u["produced"] = p["time"].notna().to_numpy()
    u["produced_time"] = p["time"].to_numpy(float)
    u["produced_index"] = p["pidx"].to_numpy(float)
    u["ptopic"] = p["topic"].to_numpy(object)
    # the key: the produce row's, else an application's (a phantom)
    akey = _lookup(u, apps, ["record_id"], ["key"])["key"].to_numpy(object)
    u["key"] = _obj(np.where(u["produced"].to_numpy(), p["key"].to_numpy(object), akey))
    u["latency"] = u["first_applied"].to_numpy(float) - u["produced_time"].to_numpy(float)
    produced = u["produced"].to_numpy(bool)
    applied = (u["applications"].to_numpy() > 0) | (u["skips"].to_numpy() > 0)
    rid = u["record_id"].to_numpy(np.int64)
    fa = _facts_of(facts, rid)
    status = np.where(produced, np.where(applied, "applied", "pending"),
                      np.where(u["applications"].to_numpy() > 0, "phantom", "none")).astype(
        object)
    cause = np.full(len(u), "", dtype=object)
    # phantoms
    ph = status == "phantom"
    cause[ph] = np.where(fa["n_dual_sends"][ph] > 0, "dual write", "unknown")
    # losses among the never applied
    cand = np.flatnonzero(status == "pending")
    if cand.size:
        cause[cand] = _loss_causes(u.iloc[cand], fa, cand, rows, member_group, crashed, mq,
                                   reader_code)
        status[cand[cause[cand] != ""]] = "lost"
    u["status"] = status
    u["cause"] = cause
    u = u[u["status"] != "none"].reset_index(drop=True)
    return u[["reader", "record_id", "key", "produced", "produced_time", "produced_index",
              "status", "cause", "first_applied", "applications", "skips", "latency",
              "ptopic", "kc", "rc"]]


def _loss_causes(u: pd.DataFrame, fa_all: dict[str, np.ndarray], idx: np.ndarray,
                 rows: _Rows, member_group: dict[Any, Any], crashed: _NodeTimes,
                 mq: Iterable[tuple] | None, reader_code: dict[Any, int]) -> np.ndarray:
    """The loss cause of each never-applied unit ("" = pending)."""
    import numpy as np

    fa = {k: v[idx] for k, v in fa_all.items()}
    n = len(u)
    rid = u["record_id"].to_numpy(np.int64)
    # the queue broker's word on a queue copy
    mq_cause = np.full(n, "", dtype=object)
    if mq is not None:
        m = _mq_frame(mq)
        m = m[m["event"].isin(("drop", "dead_letter")) & m["message_id"].isin(rid)]
        if len(m):
            m = m.drop_duplicates(["message_id", "channel"], keep="last")
            why = np.where(m["event"].to_numpy(object) == "dead_letter", "dead lettered",
                           np.where(m["detail"].to_numpy(object) == "consumer_crash",
                                    "commit before processing", "broker drop"))
            rc = np.array([reader_code.get(c, -2) for c in m["channel"].tolist()],
                          dtype=np.int64)
            m = m.assign(why=why, rc=rc).rename(columns={"message_id": "record_id"})
            got = _lookup(u, m, ["rc", "record_id"], ["why"])
            mq_cause = got["why"].fillna("").to_numpy(object)
    live = fa["live"]
    dual = (fa["pdetail"] == "dual_write") & (fa["n_sends"] == 0)
    gave_up = fa["failed"] & ~live
    # acknowledged, then truncated: lost; unacknowledged, the producer is still at it
    failover = ~live & ~np.isnan(fa["t_trunc"]) & fa["acked"]
    past, reset = _committed_past(u, fa, rows, member_group, crashed)
    has_live = live & ~np.isnan(fa["a_off"])
    return _select([mq_cause != "", dual, gave_up, failover, fa["unheard"], has_live & past,
                    has_live & reset],
                   [mq_cause, "dual write", "producer gave up", "leader failover", "acks=0",
                    "commit before processing", "offset reset"], "") if n else np.empty(
        0, dtype=object)


def _committed_past(u: pd.DataFrame, fa: dict[str, np.ndarray], rows: _Rows,
                    member_group: dict[Any, Any], crashed: _NodeTimes
                    ) -> tuple[np.ndarray, np.ndarray]:
    """For each never-applied unit with a live append at (topic, p, o):
    whether its reader committed an offset past o by a member that then
    crashed, was expelled, left or was revoked; and whether a member of
    its reader reset its position past o (``auto.offset.reset``)."""
    import numpy as np

    n = len(u)
    past = np.zeros(n, dtype=bool)
    reset = np.zeros(n, dtype=bool)
    reader = u["reader"].to_numpy(object)
    topic = fa["a_topic"]
    part = fa["a_part"]
    off = fa["a_off"]
    ok = ~np.isnan(off)
    if not ok.any():
        return past, reset
    commits = rows.table("commit", columns=("time", "topic", "partition", "offset", "node"))
    commits["reader"] = [member_group.get(nd, t) for nd, t in
                         zip(commits["node"], commits["topic"], strict=True)]
    # a crash lets go too
    let_go_rows = rows.table(*_LET_GO, columns=("time", "node"))
    crash_nodes = [nd for nd, times in crashed.by.items() for _ in times]
    crash_times = [t for times in crashed.by.values() for t in times.tolist()]
    let_go = _NodeTimes(list(let_go_rows["node"]) + crash_nodes,
                        list(let_go_rows["time"]) + crash_times)
    for key, c in commits.groupby(["reader", "topic", "partition"], sort=False):
        r, t, p = key  # type: ignore[misc]
        sel = np.flatnonzero(ok & (reader == r) & (topic == t) & (part == p))
        if not sel.size:
            continue
        offs = np.maximum.accumulate(c["offset"].to_numpy(np.int64))
        i = np.searchsorted(offs, off[sel], side="right")  # first commit with offset > o
        has = i < len(offs)
        j = np.minimum(i, len(offs) - 1)
        tc = c["time"].to_numpy(float)[j]
        who = c["node"].to_numpy(object)[j]
        gone = let_go.any_between(who, tc, np.full(len(sel), np.inf))
        past[sel] = has & gone
    resets = rows.table("reset", columns=("topic", "partition", "offset", "node"))
    for row in resets.itertuples(index=False):
        r = member_group.get(row.node, row.topic)
        reset |= ok & (reader == r) & (topic == row.topic) & (part == row.partition) & (
            off < row.offset)
    return past, reset


def _gap_causes(f: pd.DataFrame, units: pd.DataFrame, facts: pd.DataFrame) -> np.ndarray:
    """The cause of each gap in ``f`` ("" for the rows without a gap)."""
    import numpy as np

    out = np.full(len(f), "", dtype=object)
    sel = np.flatnonzero(f["gap"].to_numpy(bool))
    if not sel.size:
        return out
    g = f.iloc[sel]
    pidx = g["pidx"].to_numpy(float).astype(np.int64)
    fi = f.assign(pidx=f["pidx"].to_numpy(float).astype(np.int64))
    later = g[["rc", "kc"]].assign(pidx=pidx - 1).merge(
        fi[["rc", "kc", "pidx", "cause", "record_id"]], on=["rc", "kc", "pidx"], how="left")
    cause = later["cause"].to_numpy(object)
    missing = np.flatnonzero(later["record_id"].isna().to_numpy())
    if missing.size:
        # the predecessor never applied by this reader: lost (its cause) or pending
        pr = units[units["produced"] & (units["produced_index"].notna())]
        pr = pr.assign(pidx=pr["produced_index"].to_numpy(float).astype(np.int64))
        import pandas as pd

        gm = g.iloc[missing]
        want = pd.DataFrame({"rc": gm["rc"].to_numpy(np.int64),
                             "kc": gm["kc"].to_numpy(np.int64),
                             "pidx": pidx[missing] - 1})
        pu = _lookup(want, pr, ["rc", "kc", "pidx"], ["record_id", "status", "cause"])
        lost = (pu["status"] == "lost").to_numpy(bool)
        rid_a = pu["record_id"].fillna(-1).to_numpy(np.int64)
        fa = _facts_of(facts, rid_a)
        part_b = gm["partition"].to_numpy(np.int64)
        pending = _pair_cause(part_b < 0, np.zeros(len(gm), bool), fa["a_part"],
                              fa["a_off"], part_b, gm["offset"].to_numpy(float), fa,
                              _fact(facts, gm["record_id"].to_numpy(np.int64), "pdetail",
                                    None) == "dual_write")
        cause[missing] = np.where(lost, pu["cause"].to_numpy(object), pending)
    out[sel] = cause
    return out


def _anomalies(units: pd.DataFrame, apps: pd.DataFrame, f: pd.DataFrame,
               repeats: pd.DataFrame) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    parts = []
    lost = units[units["status"] == "lost"]
    parts.append(pd.DataFrame({"time": lost["produced_time"], "key": lost["key"],
                               "record_id": lost["record_id"], "anomaly": "lost",
                               "cause": lost["cause"], "reader": lost["reader"],
                               "seq": -1}))
    dup = repeats[repeats["is_apply"].to_numpy(bool)]
    parts.append(pd.DataFrame({"time": dup["time"], "key": dup["key"],
                               "record_id": dup["record_id"], "anomaly": "duplicated",
                               "cause": dup["cause"], "reader": dup["reader"],
                               "seq": dup["seq"]}))
    ro = f[f["reordered"].to_numpy(bool)]
    parts.append(pd.DataFrame({"time": ro["time"], "key": ro["key"],
                               "record_id": ro["record_id"], "anomaly": "reordered",
                               "cause": ro["cause"], "reader": ro["reader"],
                               "seq": ro["seq"]}))
    gp = f[f["gap"].to_numpy(bool)]
    parts.append(pd.DataFrame({"time": gp["time"], "key": gp["key"],
                               "record_id": gp["record_id"], "anomaly": "gap",
                               "cause": gp["gap_cause"], "reader": gp["reader"],
                               "seq": gp["seq"]}))
    ph = apps[apps["first"].to_numpy(bool) & ~apps["produced"].to_numpy(bool)]
    phc = units[units["status"] == "phantom"][["rc", "record_id", "cause"]]
    phj = _lookup(ph, phc, ["rc", "record_id"], ["cause"])
    parts.append(pd.DataFrame({"time": ph["time"].to_numpy(float),
                               "key": _obj(ph["key"].to_numpy(object)),
                               "record_id": ph["record_id"].to_numpy(np.int64),
                               "anomaly": "phantom",
                               "cause": phj["cause"].fillna("unknown").to_numpy(object),
                               "reader": _obj(ph["reader"].to_numpy(object)),
                               "seq": ph["seq"].to_numpy(np.int64)}))
    out = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(
        len(p) for p in parts) else None
    if out is None:
        out = _empty([*ANOMALY_COLUMNS, "seq"])
    order = np.lexsort((out["seq"].to_numpy(np.int64), out["time"].to_numpy(float)))
    out = out.iloc[order].reset_index(drop=True)
    out["record_id"] = out["record_id"].astype(np.int64)
    out["time"] = out["time"].astype(float)
    return out[list(ANOMALY_COLUMNS)]


# -- public tables ------------------------------------------------------------------------
def delivery_causes(anomalies: pd.DataFrame) -> pd.DataFrame:
    """Tidy counts of ``anomalies`` (:data:`ANOMALY_COLUMNS`): one row per
    (anomaly, cause) that happened, ``count`` > 0, anomalies in the order of
    :data:`ANOMALIES`, the commonest cause first within one."""
    import pandas as pd

    if not len(anomalies):
        return pd.DataFrame({"anomaly": pd.Series([], dtype=object),
                             "cause": pd.Series([], dtype=object),
                             "count": pd.Series([], dtype="int64")})
    c = anomalies.groupby(["anomaly", "cause"], sort=False).size().rename("count").reset_index()
    c["rank"] = c["anomaly"].map({a: i for i, a in enumerate(ANOMALIES)})
    c = c.sort_values(["rank", "count", "cause"], ascending=[True, False, True], kind="stable")
    c["count"] = c["count"].astype("int64")
    return c[list(CAUSE_COLUMNS)].reset_index(drop=True)


def assignments(records: pd.DataFrame | Iterable[tuple], until: float | None = None
                ) -> pd.DataFrame:
    """Which member of which group owned which partition when: one row per
    interval, :data:`ASSIGNMENT_COLUMNS`, from the ``assign`` rows to the
    member's next ``revoke`` of that partition, or its ``leave`` or
    ``expire`` (the coordinator took it away), or a new ``assign`` of the
    same partition to it (a new generation: the row splits); ``end`` is
    ``until`` (NaN without it) for an assignment still held at the end.
    ``generation`` is the assign row's (an int; -1 if unreadable).  A
    crashed member keeps its partitions until the coordinator expires it
    (Kafka's ``session.timeout.ms``): nobody reads them in between."""
    import numpy as np
    import pandas as pd

    rec = records_frame(records)
    rows = _Rows(rec)
    groups = dict(zip(rec["node"].to_numpy(object)[rows.where("join")],
                      rec["topic"].to_numpy(object)[rows.where("join")], strict=True))
    ev = rows.table("assign", "revoke", "leave", "expire",
                    columns=("time", "event", "topic", "partition", "node", "detail"))
    end = math.nan if until is None else float(until)
    open_: dict[tuple[Any, Any, int], tuple[float, int]] = {}
    out: list[tuple] = []
    for t, e, topic, p, node, detail in zip(ev["time"], ev["event"], ev["topic"],
                                             ev["partition"], ev["node"], ev["detail"],
                                             strict=True):
        if e == "assign" or e == "revoke":
            k = (node, topic, int(p))
            if k in open_:
                start, gen = open_.pop(k)
                out.append((groups.get(node, topic), topic, int(p), node, start, float(t), gen))
            if e == "assign":
                open_[k] = (float(t), _int(detail))
        else:  # leave / expire: the member loses everything it held
            for k in [k for k in open_ if k[0] == node]:
                start, gen = open_.pop(k)
                out.append((groups.get(node, k[1]), k[1], k[2], node, start, float(t), gen))
    for (node, topic, p), (start, gen) in open_.items():
        out.append((groups.get(node, topic), topic, p, node, start, end, gen))
    df = pd.DataFrame(out, columns=list(ASSIGNMENT_COLUMNS))
    if not len(df):
        return df.astype({"partition": np.int64, "start": float, "end": float,
                          "generation": np.int64})
    df = df.sort_values(["start", "group", "topic", "partition"], kind="stable")
    return df.reset_index(drop=True)


def _int(detail: Any) -> int:
    try:
        return int(detail)
    except (TypeError, ValueError):
        return -1


def rebalances(records: pd.DataFrame | Iterable[tuple]) -> pd.DataFrame:
    """One row per rebalance of a group: :data:`REBALANCE_COLUMNS`, from a
    ``rebalance_start`` (``why``: ``join``, ``leave``, ``session_timeout``,
    ``poll_timeout``, ``follow_up`` -- cooperative's second round) to the
    group's next ``rebalance_end`` (``generation``: the generation it
    created).  A start while one is under way (another member joining
    mid-rebalance) joins it: ``why`` lists each distinct reason, comma
    separated, in order.  An unfinished one has ``end`` NaN and
    ``generation`` -1.  An EAGER group's members hear of a rebalance at
    their next heartbeat, finish the batch in hand and revoke everything;
    from the last revocation to the end the group consumes nothing: the
    stop-the-world pause (a few records may be applied just after the
    start, as in Kafka)."""

    return _rebalances(_Rows(records_frame(records)))


def _rebalances(rows: _Rows) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    ev = rows.table("rebalance_start", "rebalance_end",
                    columns=("time", "event", "topic", "detail"))
    open_: dict[Any, list[Any]] = {}
    out: list[tuple] = []
    for t, e, group, detail in zip(ev["time"], ev["event"], ev["topic"], ev["detail"],
                                   strict=True):
        if e == "rebalance_start":
            cur = open_.get(group)
            if cur is None:
                open_[group] = [float(t), [str(detail)]]
            elif str(detail) not in cur[1]:
                cur[1].append(str(detail))
        else:
            cur = open_.pop(group, None)
            if cur is not None:
                out.append((group, cur[0], float(t), ",".join(cur[1]), _int(detail)))
    for group, (start, whys) in open_.items():
        out.append((group, start, math.nan, ",".join(whys), -1))
    df = pd.DataFrame(out, columns=list(REBALANCE_COLUMNS))
    df = df.astype({"start": float, "end": float, "generation": np.int64})
    return df.sort_values("start", kind="stable").reset_index(drop=True)


def consumer_lag(records: pd.DataFrame | Iterable[tuple]) -> pd.DataFrame:
    """Each group's lag on each partition over time: :data:`LAG_COLUMNS`,
    a row whenever the partition's log end (the leader's ``append`` rows;
    a ``truncate`` moves it back) or the group's committed offset (its
    members' ``commit`` rows) changed, from the group's first commit on
    that partition; ``lag = log_end - committed`` (Kafka's consumer lag as
    ``kafka-consumer-groups --describe`` shows it, against the log end
    rather than the high watermark: the records hold no row for the high
    watermark).  Queues (partition -1) have no offsets and no rows."""
    import numpy as np
    import pandas as pd

    rec = records_frame(records)
    rows = _Rows(rec)
    groups = dict(zip(rec["node"].to_numpy(object)[rows.where("join")],
                      rec["topic"].to_numpy(object)[rows.where("join")], strict=True))
    ends = rows.table("append", "truncate", columns=("time", "event", "topic", "partition",
                                                     "offset"))
    ends = ends[ends["partition"] >= 0]
    commits = rows.table("commit", columns=("time", "topic", "partition", "offset", "node"))
    commits = commits[commits["partition"] >= 0]
    if not len(commits):
        return pd.DataFrame({"time": pd.Series([], dtype=float),
                             "group": pd.Series([], dtype=object),
                             "topic": pd.Series([], dtype=object),
                             "partition": pd.Series([], dtype=np.int64),
                             "log_end": pd.Series([], dtype=np.int64),
                             "committed": pd.Series([], dtype=np.int64),
                             "lag": pd.Series([], dtype=np.int64)})
    commits["group"] = [groups.get(n, t) for n, t in
                        zip(commits["node"], commits["topic"], strict=True)]
    out = []
    ends_by = {k: g for k, g in ends.groupby(["topic", "partition"], sort=False)}
    for (group, topic, p), c in commits.groupby(["group", "topic", "partition"], sort=False):
        e = ends_by.get((topic, p))
        if e is None:
            et = np.empty(0)
            eseq = np.empty(0, np.int64)
            le = np.empty(0, np.int64)
        else:
            et = e["time"].to_numpy(float)
            eseq = e["seq"].to_numpy(np.int64)
            off = e["offset"].to_numpy(np.int64)
            trunc = (e["event"] == "truncate").to_numpy(bool)
            le = _log_end(off, trunc)
        ct = c["time"].to_numpy(float)
        cseq = c["seq"].to_numpy(np.int64)
        keep = eseq > cseq[0]
        seq = np.concatenate([eseq[keep], cseq])
        t = np.concatenate([et[keep], ct])
        o = np.argsort(seq, kind="stable")
        seq, t = seq[o], t[o]
        # the log end and the committed offset in force at each row
        i = np.searchsorted(eseq, seq, side="right") - 1
        log_end = np.where(i >= 0, le[np.maximum(i, 0)] if len(le) else 0, 0)
        j = np.searchsorted(cseq, seq, side="right") - 1
        committed = c["offset"].to_numpy(np.int64)[j]
        out.append(pd.DataFrame({"time": t, "group": group, "topic": topic, "partition": p,
                                 "log_end": log_end.astype(np.int64),
                                 "committed": committed, "lag": log_end - committed}))
    df = pd.concat(out, ignore_index=True)
    df["partition"] = df["partition"].astype(np.int64)
    return df.sort_values("time", kind="stable").reset_index(drop=True)


def _log_end(off: np.ndarray, trunc: np.ndarray) -> np.ndarray:
    """The log end after each append / truncate row of one partition: an
    append at offset o makes it at least o + 1, a truncate of offset o makes
    it at most o (the rows of one election come highest offset last or
    first: the minimum over them holds)."""
    import numpy as np

    if not trunc.any():
        return np.maximum.accumulate(off + 1)
    out = np.empty(len(off), np.int64)
    cur = 0
    for i, (o, tr) in enumerate(zip(off.tolist(), trunc.tolist(), strict=True)):
        cur = min(cur, o) if tr else max(cur, o + 1)
        out[i] = cur
    return out


def outbox_lag(records: pd.DataFrame | Iterable[tuple]) -> pd.DataFrame:
    """How long each record of a service's transaction took to take effect
    downstream: :data:`OUTBOX_COLUMNS`, one row per record written to a
    transactional outbox or by a dual write (a ``produce`` row with detail
    ``outbox`` or ``dual_write``), and per record sent by a relay or a dual
    write that was never produced (a phantom: ``committed`` NaN).
    ``committed``: the transaction's commit (when the record came to be),
    ``sent``: the first ``send`` (the relay's, or the dual write's),
    ``applied``: the first ``apply`` by any reader, ``lag = applied -
    committed`` (a polling publisher's saw-tooth as tall as its poll
    interval, or a log tailer's band at its lag; the relay's own share is
    ``sent - committed``, Debezium's ``MilliSecondsBehindSource``); NaN where
    it never happened.  Rows in commit order, phantoms last by send time."""
    import numpy as np
    import pandas as pd

    rec = records_frame(records)
    rows = _Rows(rec)
    p = rows.table("produce", columns=("time", "record_id", "key", "detail"))
    p = p[p["detail"].isin(("outbox", "dual_write"))].drop_duplicates("record_id")
    s = rows.table("send", columns=("time", "record_id", "key", "detail"))
    s = s[s["detail"].isin(("relay", "dual_write"))].drop_duplicates("record_id")
    a = rows.table("apply", columns=("time", "record_id")).drop_duplicates("record_id")
    ghosts = s[~s["record_id"].isin(p["record_id"])]
    ids = np.concatenate([p["record_id"].to_numpy(np.int64),
                          ghosts["record_id"].to_numpy(np.int64)])
    keys = np.concatenate([p["key"].to_numpy(object), ghosts["key"].to_numpy(object)])
    committed = np.concatenate([p["time"].to_numpy(float), np.full(len(ghosts), np.nan)])
    sent = s.set_index("record_id")["time"].reindex(ids).to_numpy(float)
    applied = a.set_index("record_id")["time"].reindex(ids).to_numpy(float)
    return pd.DataFrame({"record_id": ids, "key": _obj(keys), "committed": committed,
                         "sent": sent, "applied": applied, "lag": applied - committed})


def delivery_row(res: Any) -> dict[str, Any]:
    """The delivery numbers of one run, for the delivery matrix: the counts
    of :data:`COUNT_KEYS` plus ``applications``, ``skipped`` and
    ``gaps_per_10k``.  ``res`` is a :class:`~simcomm.result.Result` of a
    traced run (the counts need the records table: a run with
    ``trace=False`` is a ParamError naming ``trace``)."""
    if not res.world.trace.enabled:
        raise ParamError("trace", False, "True: the delivery counts are read from the records "
                                         "table, which only a traced run keeps")
    d = res._delivery
    out = {k: d.counts[k] for k in COUNT_KEYS}
    n = out["records_produced"]
    out["gaps_per_10k"] = out["gaps"] / n * 10_000 if n else math.nan
    out["applications"] = d.counts["applications"]
    out["skipped"] = d.counts["skipped"]
    return out
