"""Exercises of notebook 08, ordering and sharding: keys, partitions, groups, rebalances.

* **08.1** -- where an order's events go: Kafka's default partitioner sends
  a keyed record to ``toPositive(murmur2(key bytes)) mod N`` with
  ``toPositive(x) = x & 0x7fffffff`` (REFERENCE §3), here the order id as
  a string on the 6 partitions of ``order-lifecycle``'s ``order-events``.
  The typical slips (``abs`` instead of the mask, Python's or Java's ``%``
  on the signed hash) are named.
* **08.2** -- a sharded channel that keeps every order's order AND keeps up:
  the checker runs ``order-lifecycle`` at a higher order rate with the
  learner's ``channel``, ``key``, ``partitions`` and ``consumers`` and says
  what broke the order (competing consumers, null keys) or why the group
  fell behind (members without a partition, a member with more partitions
  than it can read).
* **08.3** -- when the coordinator notices a crashed member: not at the
  crash (a crash sends nothing) but when its heartbeats have been missing
  for ``session.timeout.ms`` -- ``crash_at + session_timeout``, give or take
  a heartbeat interval (``rebalance``).

Expected values come from the package (the partitioner, the scenarios'
defaults, the group consumer's heartbeat interval), never typed in;
tests/test_exercises_08.py holds each premise against runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simcomm.exercises._core import (
    Exercise,
    Feedback,
    Miss,
    Number,
    Settings,
    not_yet,
    params,
    register,
    right,
)
from simcomm.scenarios import order_lifecycle as _ol  # noqa: F401 (registers it)
from simcomm.scenarios import rebalance as _rb

if TYPE_CHECKING:
    from simcomm.result import Result

NOTEBOOK = "08-ordering-and-sharding"


_params = params


# -- 08.1: where an order goes ------------------------------------------------------------

#: The order of 08.1: its murmur2 hash is negative, so abs and the mask disagree.
ORDER = 1020


def _partitions() -> int:
    return int(_params("order-lifecycle").partitions)


def _hash() -> int:
    from simcomm.messaging import murmur2

    return murmur2(str(ORDER).encode())


def where_it_goes() -> int:
    """The partition of ``order-events`` that order :data:`ORDER`'s events go to."""
    from simcomm.messaging import partition_for_key

    return partition_for_key(str(ORDER), _partitions())


def _with_abs() -> float:
    return float(abs(_hash()) % _partitions())


def _python_mod() -> float:
    return float(_hash() % _partitions())


def _java_mod() -> float:
    h, n = _hash(), _partitions()
    return float(h - n * int(h / n))  # Java's %: the sign of the dividend


def _explain_partition() -> str:
    h, n = _hash(), _partitions()
    return (f"murmur2(b\"{ORDER}\") = {h:,}, negative as Java's ints can be; "
            f"{h:,} & 0x7fffffff = {h & 0x7FFFFFFF:,} (the sign bit cleared), and "
            f"{h & 0x7FFFFFFF:,} mod {n} = {where_it_goes()}. All three events of order "
            f"{ORDER} go there, so the one member that owns partition {where_it_goes()} "
            f"applies them one after the other, in the order they were appended.")


register(Exercise(
    id="08.1",
    notebook=NOTEBOOK,
    title="Where an order's events go",
    question=(
        f"On the sharded channel of `order-lifecycle` the order service keys each event "
        f"by its order id, written as a string, and the topic `order-events` has "
        f"{_partitions()} partitions (the default). Kafka's default partitioner sends a "
        f"keyed record to `toPositive(murmur2(key bytes)) mod N`, where `toPositive(x) = "
        f"x & 0x7fffffff`. **Which partition** do the events of order {ORDER} go to? "
        f"`simcomm.messaging.murmur2` gives Kafka's hash of some bytes. Give a whole "
        f"number."),
    check=Number(
        where_it_goes, whole=True,
        misses=[
            Miss(_with_abs,
                 "that is abs(murmur2) mod N. Kafka clears the sign bit instead (x & "
                 "0x7fffffff), which for a negative hash is not the same number: "
                 "abs(-x) is x, while -x & 0x7fffffff is 2³¹ - x."),
            Miss(_python_mod,
                 "that is Python's % on the signed hash. Kafka first makes the hash "
                 "non-negative by clearing its sign bit, then takes the remainder."),
            Miss(_java_mod,
                 "that is Java's % on the signed hash: a negative remainder, no partition "
                 "at all. That is why Kafka clears the sign bit first."),
        ],
        explain=_explain_partition),
    hints=(
        "The key is the order id as text: the bytes of the string, UTF-8 encoded.",
        lambda: (f"murmur2(b\"{ORDER}\") is negative. Clear its sign bit with "
                 f"& 0x7fffffff before taking the remainder by {_partitions()}."),
        lambda: (f"(murmur2(b\"{ORDER}\") & 0x7fffffff) % {_partitions()}, or "
                 f"simcomm.messaging.partition_for_key(\"{ORDER}\", {_partitions()})."),
    ),
))

# -- 08.2: keep each order's order and keep up ---------------------------------------------

#: The question's load: three events per order at this rate.
BUSY: dict[str, Any] = {"order_rate": 20.0}
KEEP_ALLOWED = ("channel", "key", "partitions", "consumers")
#: Keeping up: at the end of the run at most this share of the events still unapplied.
BEHIND = 0.02


def _busy() -> Any:
    return _params("order-lifecycle", **BUSY)


def _per_instance() -> float:
    """Events one instance applies per second (its mean service time's inverse)."""
    return 1.0 / float(_busy().service_time)


def keep_report(res: Result) -> dict[str, Any]:
    """Of an ``order-lifecycle`` run: ``produced``, ``reordered``, ``pending`` (never
    applied by the end), ``owners`` (members owning a partition at the end),
    ``busiest`` (the largest share of the appended events one member's partitions
    held) and its member.  Needs the trace."""
    s = res.summary()
    produced = int(s.get("records_produced", 0))
    out: dict[str, Any] = {"produced": produced, "reordered": int(s.get("reordered", 0)),
                           "pending": int(s.get("pending", 0)), "owners": 0,
                           "busiest": 0.0, "busiest_member": None, "busiest_partitions": 0}
    a = res.assignments()
    if not len(a):
        return out
    last = a[a["end"] >= float(res.until) - 1e-9]
    out["owners"] = int(last["member"].nunique())
    rec = res.records
    appended = rec[rec["event"] == "append"].groupby("partition").size()
    total = float(appended.sum())
    if total > 0:
        shares = {m: float(appended.reindex(g["partition"].tolist(), fill_value=0).sum())
                  / total for m, g in last.groupby("member")}
        member = max(shares, key=lambda m: shares[m])
        out.update(busiest=shares[member], busiest_member=member,
                   busiest_partitions=int((last["member"] == member).sum()))
    return out


def _judge_keep(res: Result, answer: Mapping[str, Any]) -> Feedback:
    p = res.params
    rep = keep_report(res)
    n = rep["produced"]
    said = (f"{rep['reordered']} of the {n} events applied out of order, {rep['pending']} "
            f"still unapplied at the end")
    if rep["reordered"]:
        if p.channel == "queue":
            return not_yet(f"{said}. On one queue the {p.consumers} instances compete for "
                           f"the events: an order's OrderRevised goes to whichever instance "
                           f"is free and can finish before its OrderCreated on another.")
        return not_yet(f"{said}. With null keys (key=\"none\") the sticky partitioner "
                       f"scatters an order's events over the partitions, so different "
                       f"members apply them, in parallel. Order holds per partition only.")
    rate = 3 * p.order_rate
    if rep["pending"] > BEHIND * n:
        idle = p.consumers - rep["owners"]
        if idle > 0 and p.partitions < p.consumers:
            why = (f"{p.partitions} partitions can keep only {p.partitions} members busy: "
                   f"{idle} of your {p.consumers} instances got no partition and idled, and "
                   f"{p.partitions} instances at about {_per_instance():g} events a second "
                   f"each cannot apply {rate:g} a second.")
        elif p.consumers * _per_instance() <= rate:
            why = (f"{p.consumers} instances at about {_per_instance():g} events a second "
                   f"each can at best just match {rate:g} a second: with no room to spare, "
                   f"the backlog of a busy moment never drains.")
        else:
            why = (f"The group could, but {rep['busiest_member']} owns "
                   f"{rep['busiest_partitions']} partitions holding "
                   f"{rep['busiest'] * 100:.0f} % of the events -- about "
                   f"{rep['busiest'] * rate:.0f} a second for one instance that applies about "
                   f"{_per_instance():g}. The partitions split over the members unevenly: "
                   f"one partition is read by one member, so spread them evenly.")
        return not_yet(f"{said}: the group fell behind. {why}")
    return right(
        f"{said}. The shard key puts each order's three events in one partition, one "
        f"member reads each partition in offset order, and "
        f"{min(p.consumers, p.partitions)} members share the {rate:g} events a second. "
        f"More members than partitions would idle; more partitions than members are "
        f"room to grow.")


register(Exercise(
    id="08.2",
    notebook=NOTEBOOK,
    title="In order, and keeping up",
    question=(
        f"In `order-lifecycle` the order service now creates {BUSY['order_rate']:g} orders a "
        f"second (`order_rate={BUSY['order_rate']:g}`): {3 * BUSY['order_rate']:g} events a "
        f"second, and one instance of order-history applies about {_per_instance():g} a "
        f"second. Choose `channel`, `key`, `partitions` and `consumers` so that every "
        f"order's events are applied in the order they were produced AND the instances "
        f"keep up: at the end of the run at most {BEHIND * 100:g} % of the events are still "
        f"unapplied. Give a dict such as `{{\"channel\": \"queue\", \"key\": \"order_id\", "
        f"\"partitions\": 6, \"consumers\": 3}}`. The checker runs `order-lifecycle` with "
        f"your settings and says what broke the order or why the group fell behind."),
    check=Settings(
        "order-lifecycle", allowed=KEEP_ALLOWED, fixed=BUSY, judge=_judge_keep,
        solution={"channel": "sharded", "key": "order_id", "partitions": 6, "consumers": 6},
        trace=True),
    hints=(
        "Two things to get right: the order (which channel and key keep an order's events "
        "with one reader?) and the throughput (how many instances must work at once?).",
        lambda: (f"{3 * BUSY['order_rate']:g} events a second at about {_per_instance():g} "
                 f"each means at least {3 * BUSY['order_rate'] / _per_instance():g} busy "
                 f"instances -- and only as many can be busy as there are partitions."),
        "A sharded channel keyed by order id, with as many partitions as instances and "
        "enough instances.",
    ),
))

# -- 08.3: when a crash is noticed ---------------------------------------------------------


def _heartbeat() -> float:
    from simcomm.messaging import GroupConsumer

    return float(inspect.signature(GroupConsumer).parameters["heartbeat_interval"].default)


def _rb_params() -> Any:
    return _params("rebalance")


def noticed() -> float:
    """When the coordinator expires the crashed member: its heartbeats stop at the
    crash, and it is expired ``session_timeout`` after the last one (within a
    heartbeat interval before the crash)."""
    p = _rb_params()
    return float(p.crash_at + p.session_timeout)


def _explain_noticed() -> str:
    p = _rb_params()
    return (f"A crash sends nothing: the coordinator only sees the heartbeats stop. The "
            f"last one came at most {_heartbeat():g} s (heartbeat.interval.ms) before the "
            f"crash at {p.crash_at:g} s, so the member is expired {p.session_timeout:g} s "
            f"(session.timeout.ms) after it: between {noticed() - _heartbeat():g} and "
            f"{noticed():g} s. Until then {_rb.crashing()} still owns its partitions and "
            f"nobody reads them -- their lag climbs. A clean shutdown (LeaveGroup) "
            f"rebalances at once; a shorter session timeout notices sooner, but expels a "
            f"member that is only slow for a moment.")


register(Exercise(
    id="08.3",
    notebook=NOTEBOOK,
    title="When a crash is noticed",
    question=(
        f"In `rebalance` (its defaults), {_rb.crashing()} crashes at "
        f"{_rb_params().crash_at:g} s. Its partitions stay with it until the group "
        f"coordinator notices and rebalances. At about what time (in s) does that "
        f"rebalance start? The members send a heartbeat every {_heartbeat():g} s and the "
        f"group's `session_timeout` is {_rb_params().session_timeout:g} s. Answers within "
        f"±{_heartbeat():g} s count."),
    check=Number(
        noticed, unit="s", abs=_heartbeat(),
        misses=[
            Miss(lambda: float(_rb_params().crash_at),
                 "that is the crash itself. A crashed process sends nothing: how would the "
                 "coordinator know?"),
            Miss(lambda: float(_rb_params().crash_at + _rb_params().crash_duration),
                 "that is when the member restarts. The coordinator does not wait for it: "
                 "it expires a member that stays silent long enough."),
            Miss(lambda: float(_rb_params().crash_at + 300.0),
                 "that is max.poll.interval.ms (300 s), the limit for a member that "
                 "heartbeats but stops polling. A crash stops the heartbeats too."),
        ],
        explain=_explain_noticed, digits=4),
    hints=(
        "The coordinator cannot see a crash; what does it see stop?",
        "A member whose heartbeats have been missing for session.timeout.ms is expired.",
        lambda: f"{_rb_params().crash_at:g} + {_rb_params().session_timeout:g}.",
    ),
))
