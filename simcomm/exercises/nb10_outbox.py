"""Exercises of notebook 10, the transactional outbox (*Microservices Patterns* §3.3.7).

* **10.1** -- a phantom without any crash: the database refuses some
  commits (a serialization failure) and nothing crashes; in which design do
  the consumers apply events of orders that were never stored?  Only
  ``publish-first`` sends before it knows the commit's outcome.
* **10.2** -- the polling publisher's lag: a row committed at a random
  moment of a poll cycle waits for the next poll, on average half the
  ``poll_interval`` (eventuate's ``polling.interval.in.milliseconds``).
* **10.3** -- every committed order change applied exactly once, with the
  service and the relay crashing as the ``outbox`` scenario's defaults have
  them: the learner picks the ``design`` and the consumers' ``dedup``; the
  checker runs it and says what was lost, invented or applied twice.

Expected values come from the ``outbox`` scenario's own parameters and
runs, never typed in; tests/test_exercises_10.py holds each premise against
runs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simcomm.exercises._core import (
    Choice,
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
from simcomm.scenarios import outbox as _outbox

if TYPE_CHECKING:
    from simcomm.result import Result

NOTEBOOK = "10-transactional-outbox"
SCENARIO = "outbox"


_params = functools.partial(params, SCENARIO)


# -- 10.1: a phantom without a crash ---------------------------------------------------

#: 10.1's trouble: no crash anywhere, the database refusing this share of the commits.
REFUSED_SETTINGS: dict[str, Any] = {"service_crash_every": 0.0, "relay_crash_every": 0.0,
                                    "db_error_rate": 0.02}

register(Exercise(
    id="10.1",
    notebook=NOTEBOOK,
    title="A phantom without a crash",
    question=(
        f"In `outbox`, nothing crashes (`service_crash_every=0, relay_crash_every=0`), but "
        f"the database refuses {REFUSED_SETTINGS['db_error_rate'] * 100:g} % of the commits "
        f"(`db_error_rate={REFUSED_SETTINGS['db_error_rate']:g}`: a serialization failure; "
        f"the order service reports the error to its client and the change is not stored). "
        f"In which design does the order-history service apply events of order changes "
        f"that were never stored: `\"dual-write\"`, `\"publish-first\"`, `\"polling\"` or "
        f"`\"log-tailing\"`? Answer with the design's name."),
    check=Choice({
        "dual-write": ("commit first: a refused commit stops the change before the send, so "
                       "its event is never sent -- nothing is announced that was not stored. "
                       "A dual write commit-first goes wrong only when the service dies "
                       "between the two writes."),
        "publish-first": ("It sends the event and waits for Kafka's ack before it even "
                          "tries to commit, so a refused commit comes too late: the event "
                          "is on the log, the consumers apply it, and the order change it "
                          "announces was never stored -- a phantom, with no crash at all. "
                          "The delivery analysis names the cause `dual write`. With the "
                          "outbox the event is a row of the refused transaction and "
                          "vanishes with it."),
        "polling": ("the event is a row of the outbox, written in the change's own "
                    "transaction: a refused commit stores neither, and the relay never sees "
                    "an event that was not committed."),
        "log-tailing": ("the log tailer reads the database's commit log, and a refused "
                        "transaction never reaches it: its outbox row, like its order "
                        "change, does not exist."),
    }, correct="publish-first"),
    hints=(
        "Which design sends the event before it knows whether the commit succeeded?",
        "In the outbox designs the event is part of the transaction; in the dual writes it "
        "is a second, separate write. Which order of the two writes can announce a change "
        "that then fails?",
    ),
))

# -- 10.2: the polling publisher's lag -------------------------------------------------

#: 10.2's run: a polling publisher with a long interval, nothing crashing.
POLL_SETTINGS: dict[str, Any] = {"design": "polling", "poll_interval": 2.0,
                                 "service_crash_every": 0.0, "relay_crash_every": 0.0}


def expected_relay_wait(p: Any) -> float:
    """The mean time from an outbox row's commit to the relay's send, for
    ``outbox`` Params ``p`` with a polling publisher: the commits fall at
    random moments of a poll cycle, so each waits on average half a cycle,
    ``poll_interval / 2`` (the poll's own round trips, tens of milliseconds,
    left out)."""
    return p.poll_interval / 2


def _relay_wait() -> float:
    return expected_relay_wait(_params(**POLL_SETTINGS))


def _explain_relay_wait() -> str:
    p = _params(**POLL_SETTINGS)
    return (f"A row committed just after a poll waits the whole {p.poll_interval:g} s, one "
            f"committed just before the next poll hardly at all; the commits fall anywhere "
            f"in between, so on average {p.poll_interval / 2:g} s. That wait is the price "
            f"of polling: a shorter interval cuts it and queries the outbox table more "
            f"often (eventuate's default is 500 ms). Log tailing has no poll: its wait is "
            f"its tailing lag, about the same for every row.")


register(Exercise(
    id="10.2",
    notebook=NOTEBOOK,
    title="How long an event waits in the outbox",
    question=(
        f"In `outbox` with `design=\"polling\"` and `poll_interval="
        f"{POLL_SETTINGS['poll_interval']:g}` (nothing crashing), the order service commits "
        f"order changes at random moments; the relay polls the outbox every "
        f"{POLL_SETTINGS['poll_interval']:g} s and sends what it finds. On average, how many "
        f"seconds pass from a change's commit to the relay's send of its event? Answers "
        f"within ±10 % count."),
    check=Number(
        _relay_wait, unit="s", rel=0.10,
        misses=[
            Miss(lambda: _params(**POLL_SETTINGS).poll_interval,
                 "that is the longest wait: a row committed just after a poll. A row "
                 "committed just before the next poll hardly waits at all."),
            Miss(lambda: _params(**POLL_SETTINGS).tail_lag,
                 "that is the log tailer's lag; this relay polls."),
        ],
        explain=_explain_relay_wait, digits=3),
    hints=(
        "A row waits in the outbox until the next poll. How long is that, for a row "
        "committed just after a poll, and for one committed just before the next?",
        "The commits are spread evenly over the poll cycle.",
        lambda: f"Half of {_params(**POLL_SETTINGS).poll_interval:g} s.",
    ),
))

# -- 10.3: exactly once ----------------------------------------------------------------

EXACTLY_ALLOWED = ("design", "dedup")


def _judge_exactly_once(res: Result, answer: Mapping[str, Any]) -> Feedback:
    p = res.params
    r = _outbox.outbox_report(res)
    said = (f"design {p.design!r}, dedup {p.dedup!r}: {r['events_committed']} events "
            f"committed, {r['lost']} lost, {r['phantom']} phantom, {r['relay_resends']} sent "
            f"again by the relay, {r['applied_twice']} applied twice")
    if r["lost"]:
        return not_yet(f"{said}. Commit, then send: the service died between its two writes "
                       f"and {r['lost']} committed order changes were never announced. No "
                       f"dedup brings back an event that was never sent.")
    if r["phantom"]:
        return not_yet(f"{said}. Send, then commit: the service died between its two writes "
                       f"and the consumers applied {r['phantom']} events of changes never "
                       f"stored. Dedup does not help: each phantom came once.")
    if r["applied_twice"]:
        return not_yet(f"{said}. The outbox lost nothing and invented nothing, but the relay "
                       f"crashed after sending and before it recorded that it had sent, and "
                       f"sent again: the consumers applied those events twice.")
    if p.dedup == "none":
        return not_yet(f"{said}. No duplicate this time, but only by luck: a relay is at "
                       f"least once, and the next crash at the wrong moment sends again. The "
                       f"consumers must be ready for it.")
    how = ("a table of processed record ids, updated in the same transaction as the "
           "business data" if p.dedup == "processed_ids" else
           "a handler for which applying an event twice changes nothing")
    return right(f"{said} -- every repeat absorbed. The outbox makes the event exist if "
                 f"and only if the change is committed; the relay delivers it at least "
                 f"once; the consumers make at least once into exactly once with {how}. "
                 f"Neither half is enough alone.")


register(Exercise(
    id="10.3",
    notebook=NOTEBOOK,
    title="Every order change applied exactly once",
    question=(
        f"In `outbox` with its default crashes (the order service and the relay each crash "
        f"every {_params().service_crash_every:g} s, at the worst moment), the order-history "
        f"service must apply every "
        "committed order change exactly once: none lost, none invented, none applied "
        "twice (those still on their way at the end of the run do not count). Choose the "
        "order service's `design` and the consumers' `dedup`, as a dict such as "
        "`{\"design\": \"dual-write\", \"dedup\": \"none\"}`. The checker runs `outbox` "
        "with your settings and says what was lost, invented and applied twice."),
    check=Settings(
        SCENARIO, allowed=EXACTLY_ALLOWED, judge=_judge_exactly_once,
        solution={"design": "polling", "dedup": "processed_ids"}, trace=True),
    hints=(
        "Three things can go wrong: an event lost, an event invented, an event applied "
        "twice. Which knob decides each?",
        "Only the outbox keeps the database and the events in agreement; but its relay "
        "sends at least once.",
        "An outbox design, and consumers that remember what they processed.",
    ),
))
