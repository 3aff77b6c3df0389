"""The life of messages on channels, as tables: fates, holdings, latency, order.

Pure functions from the tuples the messaging layer records while a run goes
(``trace.mq`` and ``trace.queues``, see :mod:`simcomm.engine.trace`) and the
network's record (``trace.messages``, or the ledger :attr:`Result.messages
<simcomm.result.Result.messages>`) to DataFrames.  The run appends plain
tuples; the tables are built here, only when asked for (DESIGN principle
8).  :class:`~simcomm.result.Result` wraps them as ``res.deliveries``,
``res.queue_depth``, ``res.consumer_inflight``, ``res.message_latency()``,
``res.ordering()`` and ``res.message_ledger()``.

The unit of account is a **copy**: one application message on one queue
(or one subscription, or one brokerless channel).  A message published to
a fanout exchange with three bound queues makes three copies; a copy
dead-lettered to another queue makes a new copy there (RabbitMQ's
dead-lettering republishes the message to the dead-letter exchange, which
routes it like any publish).  A copy is known by its ``message_id`` (the id
of the network message that first carried it, the same on every hop) and
its ``channel`` (the queue it sits on).  Every copy has exactly one
**fate** at the end of a run (:data:`FATES`):

* ``consumed`` -- settled after a handler finished with it: a manual ack
  the broker processed, or (auto-ack, brokerless: nothing to acknowledge)
  the handler finishing;
* ``dead_lettered`` -- moved to a dead-letter exchange (``reason``:
  ``rejected``, ``maxlen`` or ``delivery_limit``, RabbitMQ's ``x-death``
  reasons); its continuation is a new copy on the dead-letter queue;
* ``dropped`` -- lost, with the ``reason`` of the ``drop`` event
  (``unroutable``, ``queue_full``, ``broker_crash``, ...), or, for a
  publish that never reached the broker, the network's reason (``loss``,
  ``partition``, ``node_down``, ...);
* ``queued`` -- ready in its queue at the end;
* ``unacked`` -- delivered with manual acknowledgement and not yet acked
  (or nacked) when the run ended: the broker still holds it;
* ``in_flight`` -- held where no queue accounts for it: a publish on the
  wire or waiting to be routed, a brokerless copy in its sender's pipe or on
  the wire, an auto-acked or brokerless message whose handler had not
  finished.

What the events cannot tell, said rather than hidden: the table records a
delivery when the consumer receives it, not when the broker sends it, so a
copy on its way to a consumer at the end reads ``queued`` where the broker
counts it unacked (the two together agree); and an auto-acked delivery
lost on its way reads ``in_flight`` unless the transport records the loss
(the broker does, as a ``drop`` ``consumer_crash``, when a dead consumer's
host resets it).

Only the messaging layer's own words are read (the ``trace.mq`` event table
of the contract in :mod:`simcomm.messaging`); an event this module does not
know is skipped, so a later layer may add events without breaking these
tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, overload

from simcomm._checks import as_real
from simcomm.errors import ParamError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CONSUMPTION_COLUMNS", "DELIVERY_COLUMNS", "FATES", "INFLIGHT_COLUMNS",
           "ORDERING_BY", "consumer_inflight", "consumptions", "copy_ledger", "deliveries",
           "latency_stats", "mark_order", "message_latency", "ordering", "queue_depth"]

#: Every fate a copy can end a run with (see the module docstring).
FATES = ("consumed", "dead_lettered", "dropped", "queued", "unacked", "in_flight")

#: Columns of :func:`deliveries`, one row per copy.
DELIVERY_COLUMNS = ("message_id", "kind", "producer", "channel", "exchange", "routing_key",
                    "consumer", "consumers", "published", "enqueued", "first_delivered",
                    "acked", "applied", "deliveries", "redeliveries", "consumes", "fate",
                    "reason", "latency", "dead_letter_copy")

#: Columns of :func:`consumer_inflight`.
INFLIGHT_COLUMNS = ("time", "consumer", "queue", "unacked")

#: Columns of :func:`consumptions`, one row per time a handler finished.
CONSUMPTION_COLUMNS = ("time", "message_id", "channel", "consumer", "producer",
                       "published", "publish_seq", "redelivered")

#: The default streams of :func:`ordering`: each producer → consumer pair.
ORDERING_BY = ("producer", "consumer")

_NAN = math.nan
# the states a copy passes through while it is walked (fates, plus two
# transient ones: "auto" = acked on delivery, handler not finished yet;
# "held" = a brokerless consumer has it, handler not finished yet)
_SETTLED = frozenset(("consumed", "dead_lettered", "dropped"))
# the broker's decisions on a copy, which a settled copy must not receive
_CHANGES = frozenset(("ack", "requeue", "dead_letter", "drop"))
# the events that concern one copy (publish and confirm concern the message)
_COPY_EVENTS = frozenset(("enqueue", "pipe", "deliver", "consume", "ack", "nack", "requeue",
                          "dead_letter", "drop"))


class _Copy:
    """One copy while :func:`_walk` reads the events (plain slots).

    Made by :func:`_new_copy` (one per copy: the attributes set directly,
    without ``__init__``'s call, which a run of thousands of copies pays
    for)."""

    __slots__ = ("acked", "applied", "brokered", "channel", "conflicts", "consumer",
                 "consumers", "consumes", "dead_letter", "deliveries", "enqueued",
                 "first_delivered", "message_id", "reason", "redeliveries", "state")
    message_id: int
    channel: str
    state: str | None
    reason: str
    enqueued: float
    first_delivered: float
    acked: float
    applied: float
    deliveries: int
    redeliveries: int
    consumes: int
    conflicts: int
    consumer: str | None
    consumers: set[str]
    brokered: bool
    dead_letter: bool

    def __init__(self, message_id: int, channel: str) -> None:
        _fill(self, message_id, channel)


def _fill(c: _Copy, message_id: int, channel: str) -> _Copy:
    c.message_id = message_id
    c.channel = channel
    c.state = None
    c.reason = ""
    c.enqueued = c.first_delivered = c.acked = c.applied = _NAN
    c.deliveries = c.redeliveries = c.consumes = c.conflicts = 0
    c.consumer = None
    c.consumers = set()
    c.brokered = c.dead_letter = False
    return c


def _walk(mq: Iterable[tuple]) -> tuple[dict[int, tuple], list[_Copy]]:
    """Read the ``trace.mq`` tuples once: the publishes, and every copy in
    the order it first appeared, with its state at the end.

    A copy's state follows the events on it, in the order they were
    recorded (which is time order):

    * ``enqueue`` → queued (a copy already settled that is enqueued again on
      the same queue -- a dead-letter cycle -- starts a new copy);
    * ``pipe`` (brokerless: the copy entered the sender's pipe to a
      consumer, ZeroMQ's send buffer) → in flight;
    * ``deliver`` → unacked on a broker; held by the consumer if the broker
      already counted it acked (auto-ack) or there is no broker;
    * ``ack`` → consumed; ``ack`` ``auto`` → acked on delivery, consumed
      when the handler finishes (RabbitMQ's automatic acknowledgement: the
      message is gone from the broker as it is sent);
    * ``consume`` → consumed, if nothing will acknowledge it (auto-ack,
      brokerless); with a manual ack it waits for the ack;
    * ``requeue`` → queued; ``dead_letter`` / ``drop`` → settled;
    * ``nack`` changes nothing: the broker's ``requeue``, ``dead_letter`` or
      ``drop`` that follows it does.

    Once settled, a copy's fate stays: a ``deliver`` or ``consume`` after it
    (a consumer finishing a message whose connection was closed meanwhile)
    is counted, not obeyed; an ``ack``, ``requeue``, ``dead_letter`` or
    ``drop`` after it contradicts the fate and is counted in the copy's
    ``conflicts`` (a balanced ledger has none).
    """
    pubs: dict[int, tuple] = {}
    current: dict[tuple[int, str], _Copy] = {}
    copies: list[_Copy] = []
    # the loop runs once per event of the run: names bound locally
    get = current.get
    append = copies.append
    new = _Copy.__new__
    settled = _SETTLED
    changes = _CHANGES
    copy_events = _COPY_EVENTS
    for t, ev, mid, ch, node, detail in mq:
        if ev == "publish":
            if mid not in pubs:
                pubs[mid] = (t, node, ch, detail, len(pubs))
            continue
        if ev not in copy_events:
            continue  # confirm, or an event this reading does not know
        key = (mid, ch)
        c = get(key)
        if c is None or (ev == "enqueue" and c.state in settled):
            c = current[key] = _fill(new(_Copy), mid, ch)
            append(c)
        state = c.state
        if ev == "enqueue":
            c.brokered = True
            if c.enqueued != c.enqueued:  # NaN: the first enqueue
                c.enqueued = t
            if detail == "dead_letter":
                c.dead_letter = True
            c.state = "queued"
        elif ev == "deliver":
            c.deliveries += 1
            if detail == "redelivered":
                c.redeliveries += 1
            if c.first_delivered != c.first_delivered:
                c.first_delivered = t
            c.consumer = node
            c.consumers.add(node)
            if state not in settled:
                c.state = "held" if (state == "auto" or not c.brokered) else "unacked"
        elif ev == "consume":
            c.consumes += 1
            if c.applied != c.applied:
                c.applied = t
            if state == "auto" or state == "held" or (state is None and not c.brokered):
                c.state = "consumed"
                c.acked = t
        elif ev in changes:
            if state in settled:
                c.conflicts += 1
            elif ev == "ack":
                if detail == "auto":
                    c.state = "auto"
                else:
                    c.state = "consumed"
                    c.acked = t
            elif ev == "requeue":
                c.state = "queued"
            else:  # dead_letter, drop
                c.state = "dead_lettered" if ev == "dead_letter" else "dropped"
                c.reason = detail
    return pubs, copies


def _numeric(values: list[Any]) -> Any:
    """``values`` as the array pandas would make of the list (numbers, bools), or
    the list itself when numpy would not read it so (pandas then decides)."""
    import numpy as np

    arr = np.array(values)
    return arr if arr.dtype.kind in "biuf" and len(arr) == len(values) else values


def _fate(state: str | None) -> str:
    if state == "auto" or state == "held" or state is None:
        return "in_flight"
    return state


def _network(messages: pd.DataFrame | Iterable[tuple] | None,
             ids: list[int]) -> dict[int, tuple[str, str, str]]:
    """``{message_id: (kind, network fate, network reason)}`` of ``ids``
    from the network's record: the ``trace.messages`` tuples
    (:data:`~simcomm.engine.trace.MESSAGE_COLUMNS`), or the ledger
    DataFrame (``message_id, kind, fate, reason``) of
    :attr:`Result.messages <simcomm.result.Result.messages>`; empty without
    one.  A message the network sent and neither delivered nor dropped is
    ``in_flight``."""
    if messages is None or not ids:
        return {}
    import pandas as pd

    out: dict[int, tuple[str, str, str]] = {}
    if isinstance(messages, pd.DataFrame):
        if messages.empty:
            return out
        m = messages.drop_duplicates("message_id").set_index("message_id").reindex(ids)
        for mid, kind, fate, reason in zip(ids, m["kind"].tolist(), m["fate"].tolist(),
                                           m["reason"].tolist(), strict=True):
            if isinstance(kind, str):
                out[mid] = (kind, fate, reason if isinstance(reason, str) else "")
        return out
    want = set(ids)
    kinds: dict[int, str] = {}
    ends: dict[int, tuple[str, str]] = {}
    for row in messages:
        mid = row[2]
        if mid in want:
            ev = row[1]
            if ev == "send":
                kinds.setdefault(mid, row[3])
            elif ev == "deliver":
                ends[mid] = ("delivered", "")
            elif ev == "drop":
                ends[mid] = ("dropped", row[8])
    for mid, kind in kinds.items():
        out[mid] = (kind, *ends.get(mid, ("in_flight", "")))
    return out


def deliveries(mq: Iterable[tuple],
               messages: pd.DataFrame | Iterable[tuple] | None = None) -> pd.DataFrame:
    """One row per copy (a message on one queue or subscription) with its
    fate at the end of the run.

    Columns (:data:`DELIVERY_COLUMNS`; times in seconds, NaN when it never
    happened):

    * ``message_id``, ``kind`` (the kind of the publish, from the network's
      record ``messages`` -- the ``trace.messages`` tuples or the ledger
      DataFrame; None without it), ``producer``, ``exchange`` and
      ``routing_key`` (of the publish; a dead-letter copy keeps those of the
      original), ``channel`` (the queue, subscription or brokerless channel;
      for a publish that reached no queue, the exchange or channel it named);
    * ``consumer`` -- the last consumer it was delivered to (None if never),
      ``consumers`` -- how many distinct ones;
    * ``published``, ``enqueued`` (first time on its queue),
      ``first_delivered``, ``acked`` (the broker processed the ack; with
      auto-ack or brokerless, the handler finished), ``applied`` (the first
      time a handler finished with it: its effect happened);
    * ``deliveries`` -- deliveries a consumer received; ``redeliveries`` --
      those flagged ``redelivered`` (RabbitMQ sets the flag on any delivery
      after the first attempt, even one that never reached a consumer);
      ``consumes`` -- times a handler finished with it (more than 1: its
      effect happened more than once);
    * ``fate`` (:data:`FATES`), ``reason`` (why dropped or dead-lettered,
      else ""), ``latency`` (``applied − published``: publish to the first
      handler finishing, NaN if none did), ``dead_letter_copy`` (True for a
      copy a dead-letter exchange made).

    Rows come in the order the messages were published, a message's copies
    in the order they appeared.  A published message with no event on any
    queue is one copy on the channel it was published to: ``dropped`` with
    the network's reason if the network lost the publish, else
    ``in_flight`` (on the wire, or arrived and not yet routed).
    """
    import numpy as np
    import pandas as pd

    pubs, copies = _walk(mq)
    seen = {c.message_id for c in copies}
    orphan = [mid for mid in pubs if mid not in seen]
    net = _network(messages, list(pubs))
    if not copies and not orphan:
        return pd.DataFrame(columns=list(DELIVERY_COLUMNS))
    # built column by column (a list, or an array of the dtype pandas would infer
    # from it), not row by row: a run has thousands of copies
    nan_pub = (_NAN, None, None, None, -1)
    pub_of = [pubs.get(c.message_id, nan_pub) for c in copies]
    no_kind = (None,)
    mids = [c.message_id for c in copies] + orphan
    published = [p[0] for p in pub_of] + [pubs[m][0] for m in orphan]
    applied = [c.applied for c in copies] + [_NAN] * len(orphan)
    orphan_net = [net.get(mid, (None, "in_flight", "")) for mid in orphan]
    orphan_lost = [n[1] == "dropped" for n in orphan_net]
    zeros = [0] * len(orphan)
    nans = [_NAN] * len(orphan)
    cols: dict[str, Any] = {
        "message_id": mids,
        "kind": [net.get(c.message_id, no_kind)[0] for c in copies]
        + [n[0] for n in orphan_net],
        "producer": [p[1] for p in pub_of] + [pubs[m][1] for m in orphan],
        "channel": [c.channel for c in copies] + [pubs[m][2] for m in orphan],
        "exchange": [p[2] for p in pub_of] + [pubs[m][2] for m in orphan],
        "routing_key": [p[3] for p in pub_of] + [pubs[m][3] for m in orphan],
        "consumer": [c.consumer for c in copies] + [None] * len(orphan),
        "consumers": [len(c.consumers) for c in copies] + zeros,
        "published": published,
        "enqueued": [c.enqueued for c in copies] + nans,
        "first_delivered": [c.first_delivered for c in copies] + nans,
        "acked": [c.acked for c in copies] + nans,
        "applied": applied,
        "deliveries": [c.deliveries for c in copies] + zeros,
        "redeliveries": [c.redeliveries for c in copies] + zeros,
        "consumes": [c.consumes for c in copies] + zeros,
        "fate": [_fate(c.state) for c in copies]
        + ["dropped" if lost else "in_flight" for lost in orphan_lost],
        "reason": [c.reason for c in copies]
        + [n[2] if lost else "" for n, lost in zip(orphan_net, orphan_lost, strict=True)],
        "latency": None,
        "dead_letter_copy": [c.dead_letter for c in copies] + [False] * len(orphan),
    }
    seq = np.fromiter((p[4] for p in pub_of), dtype=np.int64, count=len(copies))
    order = None
    if orphan or (seq.size > 1 and bool((seq[1:] < seq[:-1]).any())):
        # rows in publish order (a stable sort: a message's copies as they appeared)
        keys = np.concatenate([seq, np.fromiter((pubs[m][4] for m in orphan),
                                                dtype=np.int64, count=len(orphan))])
        order = np.argsort(keys, kind="stable")
    for name in ("message_id", "consumers", "published", "enqueued", "first_delivered",
                 "acked", "applied", "deliveries", "redeliveries", "consumes",
                 "dead_letter_copy"):
        cols[name] = _numeric(cols[name])
    applied_, published_ = cols["applied"], cols["published"]
    cols["latency"] = (applied_ - published_ if isinstance(applied_, np.ndarray)
                       and isinstance(published_, np.ndarray)
                       else _numeric([a - p for a, p in zip(applied, published, strict=True)]))
    if order is not None:
        for name, values in cols.items():
            cols[name] = (values[order] if isinstance(values, np.ndarray)
                          else [values[i] for i in order.tolist()])
    return pd.DataFrame(cols)


def copy_ledger(mq: Iterable[tuple],
                messages: pd.DataFrame | Iterable[tuple] | None = None) -> dict[str, Any]:
    """Counts of the copies' fates, from the same reading as
    :func:`deliveries`: ``published`` (messages published), ``copies``,
    one count per fate of :data:`FATES`, ``dropped_by_reason``,
    ``redeliveries``, ``dead_letter_copies`` (copies a dead-letter exchange
    made), ``unpublished`` (copies of a message whose publish is not in the
    table) and ``conflicts`` (broker decisions on a copy already settled:
    an ack, requeue, dead-lettering or drop after its fate).

    ``copies`` equals the sum of the fates by construction (each copy has
    one); what a caller checks is that no copy is ``unpublished``, that
    there are no ``conflicts``, and that the counts agree with the broker's
    own counters (see :meth:`Result.message_ledger
    <simcomm.result.Result.message_ledger>`).
    """
    pubs, copies = _walk(mq)
    seen = {c.message_id for c in copies}
    fates = dict.fromkeys(FATES, 0)
    reasons: dict[str, int] = {}
    for c in copies:
        fate = _fate(c.state)
        fates[fate] += 1
        if fate == "dropped":
            reasons[c.reason] = reasons.get(c.reason, 0) + 1
    orphan = [mid for mid in pubs if mid not in seen]
    net = _network(messages, orphan)
    for mid in orphan:
        _, nfate, nreason = net.get(mid, (None, "in_flight", ""))
        if nfate == "dropped":
            fates["dropped"] += 1
            reasons[nreason] = reasons.get(nreason, 0) + 1
        else:
            fates["in_flight"] += 1
    return {"published": len(pubs), "copies": len(copies) + len(orphan), **fates,
            "dropped_by_reason": dict(sorted(reasons.items())),
            "redeliveries": sum(c.redeliveries for c in copies),
            "dead_letter_copies": sum(1 for c in copies if c.dead_letter),
            "unpublished": sum(1 for c in copies if c.message_id not in pubs),
            "conflicts": sum(c.conflicts for c in copies)}


def queue_depth(queues: Iterable[tuple]) -> pd.DataFrame:
    """Every broker queue's ``ready`` and ``unacked`` counts whenever one of
    them changed: columns ``time, node, queue, ready, unacked`` (the
    ``trace.queues`` table as it was recorded).  Each row holds until the
    queue's next row: a step function, as the pools table."""
    import pandas as pd

    from simcomm.engine.trace import QUEUE_COLUMNS, Table

    if isinstance(queues, Table):  # the trace's own table: built column by column
        return queues.to_frame()
    return pd.DataFrame(list(queues), columns=list(QUEUE_COLUMNS))


def consumer_inflight(mq: Iterable[tuple]) -> pd.DataFrame:
    """How many deliveries each consumer held unsettled over time: columns
    ``time, consumer, queue, unacked``, one row whenever a count changed
    (a step function per consumer and queue, from 0).

    A delivery is held from its ``deliver`` until it is settled: with a
    manual ack, when the broker processes the ``ack`` or ``nack`` (so the
    count is RabbitMQ's unacknowledged messages of that consumer, the number
    a prefetch limit caps), or when the broker takes it back (``requeue``
    after a closed connection or a restart, ``dead_letter``, ``drop``); with
    auto-ack or brokerless, when the handler finishes (``consume``) or the
    message is lost with the consumer (``drop``): the broker then counts
    nothing unacknowledged, but the consumer still has work in hand.
    """
    import pandas as pd

    rows = _inflight_rows(mq)[0]
    if not rows:
        return pd.DataFrame(rows, columns=list(INFLIGHT_COLUMNS))
    return pd.DataFrame(dict(zip(INFLIGHT_COLUMNS, map(list, zip(*rows, strict=True)),
                                 strict=True)))


def _inflight_rows(mq: Iterable[tuple]) -> tuple[list[tuple[float, str, str, int]], list[int]]:
    """The rows of :func:`consumer_inflight` as tuples, and beside them each
    row's change to its count (+1 or -1): what a figure summing a consumer's
    queues needs, without a table."""
    holder: dict[tuple[int, str], str] = {}    # copy -> consumer holding it
    unmanaged: set[tuple[int, str]] = set()    # copies settled by their handler
    brokered: set[tuple[int, str]] = set()
    count: dict[tuple[str, str], int] = {}
    rows: list[tuple[float, str, str, int]] = []
    signs: list[int] = []
    append, sign = rows.append, signs.append
    pop, get = holder.pop, count.get
    settles = frozenset(("ack", "nack", "requeue", "dead_letter", "drop"))
    for t, ev, mid, ch, node, detail in mq:
        if ev == "deliver":
            key = (mid, ch)
            old = pop(key, None)
            if old is not None:
                k = (old, ch)
                n = count[k] = get(k, 0) - 1
                append((t, old, ch, n))
                sign(-1)
            holder[key] = node
            k = (node, ch)
            n = count[k] = get(k, 0) + 1
            append((t, node, ch, n))
            sign(1)
            if key not in brokered:
                unmanaged.add(key)
        elif ev == "enqueue":
            key = (mid, ch)
            brokered.add(key)
            unmanaged.discard(key)
        elif ev == "ack" and detail == "auto":
            unmanaged.add((mid, ch))
        elif ev in settles or (ev == "consume" and (mid, ch) in unmanaged):
            old = pop((mid, ch), None)
            if old is not None:
                k = (old, ch)
                n = count[k] = get(k, 0) - 1
                append((t, old, ch, n))
                sign(-1)
    return rows, signs


def consumptions(mq: Iterable[tuple]) -> pd.DataFrame:
    """One row per time a handler finished with a message (a ``consume``
    event: its effect happened), in the order they happened: ``time``,
    ``message_id``, ``channel``, ``consumer``, ``producer`` and ``published``
    (of its publish; None / NaN if the publish is not in the table),
    ``publish_seq`` (its rank among all publishes: the order the messages
    were published in, ties in time broken by the order recorded; -1 if
    unknown) and ``redelivered`` (the delivery it came from was flagged
    redelivered).  The raw material of :func:`ordering`."""
    import pandas as pd

    pubs: dict[int, tuple] = {}
    last: dict[tuple[int, str, str], bool] = {}  # (copy, consumer) -> redelivered
    rows: list[tuple] = []
    append = rows.append
    unknown = (_NAN, None, -1)
    for t, ev, mid, ch, node, detail in mq:
        if ev == "publish":
            if mid not in pubs:
                pubs[mid] = (t, node, len(pubs))
        elif ev == "deliver":
            last[(mid, ch, node)] = detail == "redelivered"
        elif ev == "consume":
            pub = pubs.get(mid, unknown)
            append((t, mid, ch, node, pub[1], pub[0], pub[2], last.get((mid, ch, node), False)))
    if not rows:
        return pd.DataFrame(rows, columns=list(CONSUMPTION_COLUMNS))
    return pd.DataFrame(dict(zip(CONSUMPTION_COLUMNS, map(list, zip(*rows, strict=True)),
                                 strict=True)))


def _check_by(by: object, columns: Sequence[str]) -> tuple[str, ...]:
    if isinstance(by, str):
        by = (by,)
    if (not isinstance(by, (tuple, list)) or not by
            or not all(isinstance(b, str) and b in columns for b in by)
            or len(set(by)) != len(by)):
        raise ParamError("by", by, f"a non-empty tuple of distinct columns from {tuple(columns)}")
    return tuple(by)


def mark_order(consumed: pd.DataFrame, by: Sequence[str] = ORDERING_BY) -> pd.DataFrame:
    """``consumed`` (from :func:`consumptions`) with two flags per row,
    judged within the stream of rows sharing the values of ``by`` (by
    default a producer → consumer pair), in the order they happened:

    * ``duplicate`` -- the stream had already consumed this ``message_id``;
    * ``out_of_order`` -- not a duplicate, and the stream had already
      consumed a message published after this one (a larger
      ``publish_seq``): it arrived late relative to its producer's order.

    So with messages published 1, 2, 3, the consumes 1, 3, 2 have one out of
    order (2), the consumes 3, 2, 1 two (2 and 1), and 1, 2, 1, 3 one
    duplicate (the second 1) and none out of order.  Counting late arrivals,
    not inverted pairs, makes one message redelivered after many others
    count once.  A message whose publish is unknown (``publish_seq`` -1) is
    never out of order.
    """
    by = _check_by(by, list(consumed.columns))
    state: dict[tuple, tuple[set, list[int]]] = {}
    dup = []
    late = []
    # plain lists: iterating a pandas column yields one boxed value at a time
    keys = zip(*(consumed[b].tolist() for b in by), strict=True)
    for key, mid, seq in zip(keys, consumed["message_id"].tolist(),
                             consumed["publish_seq"].tolist(), strict=True):
        s = state.get(key)
        if s is None:
            s = state[key] = (set(), [-1])
        seen, top = s
        if mid in seen:
            dup.append(True)
            late.append(False)
            continue
        seen.add(mid)
        dup.append(False)
        if 0 <= seq < top[0]:
            late.append(True)
        else:
            late.append(False)
            top[0] = max(top[0], seq)
    out = consumed.copy()
    out["duplicate"] = dup
    out["out_of_order"] = late
    return out


def ordering(consumed: pd.DataFrame, by: Sequence[str] = ORDERING_BY) -> pd.DataFrame:
    """The ordering report: one row per stream (by default each producer →
    consumer pair, in the order each first consumed), columns ``*by``,
    ``messages`` (distinct messages consumed), ``consumes`` (every time a
    handler finished, duplicates included), ``out_of_order`` and
    ``duplicates`` -- counts of the rows :func:`mark_order` flags (see
    there for the exact rules) -- and ``redelivered`` (consumes of a
    redelivered delivery: RabbitMQ keeps a queue's order only until
    something is redelivered, and with several consumers any redelivery can
    reorder).

    ``consumed`` comes from :func:`consumptions`; ``by`` may name any of its
    columns (``("producer", "channel")`` judges the order a queue handed
    out, across its competing consumers).
    """
    import pandas as pd

    by = _check_by(by, list(consumed.columns))
    marked = mark_order(consumed, by)
    cols = [*by, "messages", "consumes", "out_of_order", "duplicates", "redelivered"]
    if marked.empty:
        return pd.DataFrame(columns=cols)
    g = marked.groupby(list(by), sort=False, dropna=False)
    out = pd.DataFrame({
        "messages": g["message_id"].nunique(),
        "consumes": g.size(),
        "out_of_order": g["out_of_order"].sum(),
        "duplicates": g["duplicate"].sum(),
        "redelivered": g["redelivered"].sum(),
    }).reset_index()
    for col in ("messages", "consumes", "out_of_order", "duplicates", "redelivered"):
        out[col] = out[col].astype(int)
    return out[cols]


def latency_stats(latency: Any, percentiles: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """``{"messages": n, "mean": ..., "p50": ..., ...}`` of the finite values
    in ``latency`` (NaN statistics when there are none).  A key is ``p``
    and the percentile as written by ``:g`` (``99.9`` → ``"p99.9"``).
    ``percentiles``: numbers from 0 to 100 (else a ParamError)."""
    import numpy as np

    qs = _check_percentiles(percentiles)
    arr = np.asarray(latency, dtype=float)
    arr = arr[np.isfinite(arr)]
    out: dict[str, float] = {"messages": int(arr.size),
                             "mean": float(arr.mean()) if arr.size else _NAN}
    values = np.percentile(arr, qs) if arr.size and qs else [_NAN] * len(qs)
    for q, v in zip(qs, values, strict=True):
        out[f"p{q:g}"] = float(v)
    return out


@overload
def message_latency(copies: pd.DataFrame, percentiles: Sequence[float] = ...,
                    by: None = None) -> dict[str, float]: ...


@overload
def message_latency(copies: pd.DataFrame, percentiles: Sequence[float],
                    by: str | Sequence[str]) -> pd.DataFrame: ...


def message_latency(copies: pd.DataFrame, percentiles: Sequence[float] = (50, 95, 99),
                    by: str | Sequence[str] | None = None) -> dict[str, float] | pd.DataFrame:
    """:func:`latency_stats` of the ``latency`` column of ``copies`` (from
    :func:`deliveries`: publish to the first time a handler finished, over
    the copies handled); with ``by`` (a column of ``copies`` or a tuple of
    them) a DataFrame of the same statistics, one row per group in the
    order the groups first appear."""
    import pandas as pd

    qs = _check_percentiles(percentiles)
    if by is None:
        return latency_stats(copies["latency"], qs)
    cols = _check_by(by, [c for c in copies.columns if c != "latency"])
    names = [*cols, *latency_stats([], qs)]
    rows = [(*(key if isinstance(key, tuple) else (key,)),
             *latency_stats(group["latency"], qs).values())
            for key, group in copies.groupby(list(cols), sort=False, dropna=False)]
    return pd.DataFrame(rows, columns=names)


def _check_percentiles(percentiles: object) -> list[float]:
    allowed = "a sequence of numbers from 0 to 100, e.g. (50, 95, 99)"
    if isinstance(percentiles, (str, bytes)) or not isinstance(percentiles, Iterable):
        raise ParamError("percentiles", percentiles, allowed)
    out = []
    for q in percentiles:
        x = as_real(q)
        if x is None or not 0.0 <= x <= 100.0:
            raise ParamError("percentiles", percentiles, allowed)
        out.append(x)
    return out
