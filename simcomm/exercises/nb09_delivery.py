"""Exercises of notebook 09, duplicates and delivery guarantees (*Microservices Patterns* §3.3.6).

* **09.1** -- retries on a lossy produce path, with ``acks=all`` and no
  idempotence, duplicate and reorder an order's events.  Which one change
  removes both?  Only Kafka's idempotent producer (``enable.idempotence``):
  the leader drops a batch it already appended (producer id + sequence) and
  refuses one that overtook another.  A processed-ids table on the consumer
  removes the duplicates' effects but not the reorders; a longer
  ``request.timeout.ms`` retries less, and stalls a partition behind every
  lost request for as long.
* **09.2** -- a consumer crashes in the middle of a polled batch: which
  commit point loses nothing and applies nothing twice?  Committing before
  processing loses the rest of the batch (at-most-once), after processing
  or every few seconds (auto) applies again what was not committed
  (at-least-once); only a commit after processing with a processed-ids
  table gives exactly-once *effects*.
* **09.3** -- all three faults of ``delivery-guarantees`` at once: the
  learner picks ``acks``, ``idempotence``, ``commit`` and ``dedup``; the
  checker runs it and says what was lost, duplicated and reordered, and why.

Expected behaviour comes from the scenario's runs, never typed in;
tests/test_exercises_09.py holds each premise against runs on several seeds.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simcomm.exercises._core import (
    Choice,
    Exercise,
    Feedback,
    Settings,
    not_yet,
    params,
    register,
    right,
)
from simcomm.scenarios import delivery_guarantees as _dg  # noqa: F401 (registers it)

if TYPE_CHECKING:
    from simcomm.result import Result

NOTEBOOK = "09-duplicates-and-delivery-guarantees"
SCENARIO = "delivery-guarantees"


_params = functools.partial(params, SCENARIO)


def _default(cls: Any, name: str) -> Any:
    """A keyword's default in ``cls``'s constructor (the library's, Kafka's)."""
    return inspect.signature(cls.__init__).parameters[name].default


def _in_flight() -> int:
    """The producer's ``max_in_flight`` (max.in.flight.requests.per.connection)."""
    from simcomm.messaging.log_producer import LogProducer

    return int(_default(LogProducer, "max_in_flight"))


def _deduped() -> int:
    """Batches per partition the leader remembers to drop repeats of (Kafka: 5)."""
    from simcomm.messaging.log_producer import MAX_IN_FLIGHT_IDEMPOTENT

    return MAX_IN_FLIGHT_IDEMPOTENT


def _auto_commit() -> float:
    """The group consumer's ``auto_commit_interval`` (auto.commit.interval.ms)."""
    from simcomm.messaging.group_consumer import GroupConsumer

    return float(_default(GroupConsumer, "auto_commit_interval"))


# -- 09.1: the producer's retries --------------------------------------------------------

#: 09.1's trouble: only the lossy produce path, a producer with acks=all and no idempotence.
RETRY_FIXED: dict[str, Any] = {"crash_leader": False, "crash_consumer": False,
                               "acks": "all", "idempotence": False}
#: Each option of 09.1 as settings on top of RETRY_FIXED (for the tests).
RETRY_OPTIONS: dict[str, dict[str, Any]] = {
    "timeout": {"request_timeout": 30.0},
    "dedup": {"dedup": "processed_ids"},
    "idempotence": {"idempotence": True},
}

register(Exercise(
    id="09.1",
    notebook=NOTEBOOK,
    title="Retries that duplicate and reorder",
    question=(
        f"In `delivery-guarantees` without the crashes (`crash_leader=False, "
        f"crash_consumer=False`), {_params().produce_loss * 100:g} % of the messages between "
        f"the order service and the brokers are lost (`produce_loss`). The producer uses "
        f"`acks=\"all\"` without idempotence and up to {_in_flight()} requests in flight, "
        f"and the order-history service sees some events twice and some after later events of the "
        f"same order. Which one change removes both the duplicates and the reorders: "
        f"`\"timeout\"` (`request_timeout={RETRY_OPTIONS['timeout']['request_timeout']:g}`, "
        f"Kafka's default, instead of "
        f"{_params().request_timeout:g} s), `\"dedup\"` (a processed-ids table on the "
        f"consumer) or `\"idempotence\"` (the idempotent producer)? Answer with the word."),
    check=Choice({
        "timeout": ("a longer timeout only retries later: a request or a response lost on "
                    "the way still gets its batch sent again after 30 s, and meanwhile "
                    "nothing behind it on that partition is acknowledged -- in the 30 s run "
                    "nearly every event is still waiting at the end. Waiting longer does not "
                    "tell the leader that a batch is a repeat."),
        "dedup": ("the processed-ids table makes a repeat a skip, so no effect is applied "
                  "twice -- but the reorders stay: a batch retried behind a later one in "
                  "flight is appended after it, and the consumer applies the log in order, "
                  "the OrderRevised after the OrderCancelled."),
        "idempotence": lambda: (
            f"The idempotent producer numbers each partition's batches (a producer id and a "
            f"sequence). The leader drops a batch it already appended -- one of the last "
            f"{_deduped()} -- and acknowledges it again, and it refuses a batch whose "
            f"sequence is not the next one, so a batch that overtook a lost one is sent "
            f"again after it. No duplicate, no reorder, with {_in_flight()} requests in "
            f"flight."),
    }, correct="idempotence"),
    hints=(
        "A retry duplicates when the first attempt was appended and only its response was "
        "lost; it reorders when a later batch in flight was appended before it. Which "
        "option lets the leader tell?",
        "Only the broker sees both attempts of a batch: it needs something in the batch "
        "that says which one it is.",
    ),
))

# -- 09.2: the commit point ---------------------------------------------------------------

#: 09.2's trouble: only the consumer crash (order-history-1 half a second into its batch).
COMMIT_FIXED: dict[str, Any] = {"crash_leader": False, "produce_loss": 0.0}
#: Each option of 09.2 as settings on top of COMMIT_FIXED (for the tests).
COMMIT_OPTIONS: dict[str, dict[str, Any]] = {
    "before": {"commit": "before"},
    "after": {"commit": "after"},
    "auto": {"commit": "auto"},
    "dedup": {"commit": "after", "dedup": "processed_ids"},
}

register(Exercise(
    id="09.2",
    notebook=NOTEBOOK,
    title="Where to commit",
    question=(
        f"In `delivery-guarantees` with only the consumer crash (`crash_leader=False, "
        f"produce_loss=0`), order-history-1 dies in the middle of its first "
        f"polled batch and stays down {_params().crash_duration:g} s; its partitions "
        f"go to the other members, which read from the last committed offset. Which way of "
        f"consuming loses no event and applies none twice: `\"before\"` (commit before "
        f"processing), `\"after\"` (commit after processing), `\"auto\"` (commit every "
        f"{_auto_commit():g} s, `enable.auto.commit`) or `\"dedup\"` (commit after "
        f"processing, and a processed-ids table updated in the same transaction as the "
        f"business data)? Answer with the word."),
    check=Choice({
        "before": ("committing before processing is at-most-once: the crashed member had "
                   "committed its whole batch, so the next owner starts after it and the "
                   "rest of the batch is never applied -- lost, cause `commit before "
                   "processing`."),
        "after": ("committing after processing is at-least-once: what the crashed member "
                  "applied since its last commit is read again from the committed offset "
                  "and applied twice -- duplicates, cause `crash before commit`."),
        "auto": ("an auto-commit every 5 s is at-least-once too: everything applied since "
                 "the last auto-commit is applied again after the crash -- the same "
                 "duplicates as committing after processing."),
        "dedup": ("At-least-once delivery, exactly-once effects: the records applied before "
                  "the crash are delivered again, but their ids are in the processed-ids "
                  "table, written in the same transaction as the business data, so each "
                  "repeat is a skip. Nothing lost, nothing applied twice (§3.3.6)."),
    }, correct="dedup"),
    hints=(
        "A crash can come between processing a record and committing its offset, or "
        "between committing and processing. Which one loses, which one repeats?",
        "No commit point alone avoids both: the consumer must recognise a record it has "
        "already processed.",
    ),
))

# -- 09.3: exactly-once effects under all three faults -------------------------------------

EXACT_ALLOWED = ("acks", "idempotence", "commit", "dedup")


def exact_report(res: Result) -> dict[str, Any]:
    """Of a ``delivery-guarantees`` run: ``produced``, ``lost``, ``duplicated``,
    ``reordered``, ``pending`` and ``causes`` (``{(anomaly, cause): count}`` of
    the lost, duplicated and reordered records).  Needs the trace."""
    s = res.summary()
    causes = {(str(a), str(c)): int(n) for a, c, n in
              res.delivery_causes()[["anomaly", "cause", "count"]].itertuples(index=False)
              if a in ("lost", "duplicated", "reordered")}
    return {"produced": int(s["records_produced"]), "lost": int(s["lost"]),
            "duplicated": int(s["duplicated"]), "reordered": int(s["reordered"]),
            "pending": int(s["pending"]), "causes": causes}


#: What each cause means, and the setting that removes it.
CAUSE_FIX = {
    "leader failover": "acks=1 acknowledged records the dead leader's followers never had "
                       "(acks=\"all\" waits for every in-sync replica)",
    "retry in flight": "retries without idempotence appended batches twice or after later "
                       "ones (the idempotent producer removes both)",
    "crash before commit": "the crashed member's records were applied again from the last "
                           "committed offset (a processed-ids table skips the repeats)",
    "commit before processing": "the crashed member committed records it never applied "
                                "(commit after processing)",
    "producer gave up": "the producer gave up on records (acks=0 never learns what was "
                        "lost)",
}


def _judge_exact(res: Result, answer: Mapping[str, Any]) -> Feedback:
    rep = exact_report(res)
    said = (f"of {rep['produced']} events, {rep['lost']} lost, {rep['duplicated']} applied "
            f"twice, {rep['reordered']} reordered")
    if rep["lost"] == rep["duplicated"] == rep["reordered"] == 0:
        p = res.params
        how = ("a processed-ids table in the same transaction as the business data"
               if p.dedup == "processed_ids" else "an idempotent effect")
        return right(
            f"{said}. acks=all kept the records the dead leader had acknowledged on the "
            f"followers; the idempotent producer let the leaders drop the retried batches "
            f"and refuse the overtaking ones; the consumer committed {p.commit} processing, "
            f"so the crash re-delivered instead of losing, and {how} turned each "
            f"re-delivery into a skip. Exactly-once effects on at-least-once delivery. "
            f"({rep['pending']} events were still on their way when the run ended.)")
    parts = []
    for (anomaly, cause), n in sorted(rep["causes"].items(), key=lambda kv: -kv[1]):
        why = CAUSE_FIX.get(cause, "see the delivery_causes figure")
        parts.append(f"{n} {anomaly}, {cause} -- {why}")
    return not_yet(f"{said}: " + "; ".join(parts) + ".")


register(Exercise(
    id="09.3",
    notebook=NOTEBOOK,
    title="Exactly-once effects",
    question=(
        "In `delivery-guarantees` with its default faults -- a lossy produce path, a leader "
        "crash and a consumer crash in one run -- choose the producer's `acks` and "
        "`idempotence` and the consumer's `commit` and `dedup` so that no event is lost, "
        "applied twice or applied out of order. Give a dict with the four settings, such as "
        "`{\"acks\": \"1\", \"idempotence\": False, \"commit\": \"before\", \"dedup\": "
        "\"none\"}`. The checker runs the scenario with your settings and says what went "
        "wrong, and why."),
    check=Settings(
        SCENARIO, allowed=EXACT_ALLOWED, judge=_judge_exact,
        solution={"acks": "all", "idempotence": True, "commit": "after",
                  "dedup": "processed_ids"},
        trace=True),
    hints=(
        "Each fault needs its own setting: the leader crash, the retries, and the "
        "consumer crash. Which anomaly does each cause?",
        "On the producer, the strongest acks and the idempotent producer; on the consumer, "
        "never lose (which commit point?) and then make the repeats harmless.",
        "acks=\"all\", idempotence=True, commit after processing, and a processed-ids table.",
    ),
))
