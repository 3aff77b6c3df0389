"""Exercises of notebook 07, brokers: buffering, competing consumers, acks and order.

* **07.1** -- the buffer a brokerless design needs: while both kitchen
  instances are down the order service's pipes keep what it publishes, up
  to ``high_water_mark`` each (ZeroMQ's send high-water mark), and PUSH
  deals the messages round-robin over the pipes, so each must hold
  ``publish_rate × fault_duration / consumers``.
* **07.2** -- prefetch and ack mode for a slow consumer that crashes: the
  checker runs ``competing-consumers`` with the learner's ``prefetch`` and
  ``ack_mode`` and says what was lost, redelivered and late.
* **07.3** -- which way of reading a queue keeps the publish order and
  loses nothing across a crash and rejects (RabbitMQ: one publisher, one
  queue, one consumer keep their order; several consumers, a window of
  unacked messages or auto-ack do not).

Expected values come from the scenarios' own defaults, never typed in;
tests/test_exercises.py holds each premise against runs.
"""

from __future__ import annotations

import math
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
from simcomm.scenarios import brokers as _brokers  # noqa: F401 (registers brokers)
from simcomm.scenarios import competing_consumers as _cc  # noqa: F401 (registers it)

if TYPE_CHECKING:
    from simcomm.result import Result

NOTEBOOK = "07-brokers"


_params = params


def _pct(fraction: float, digits: int = 0) -> str:
    return f"{fraction * 100:.{digits}f} %"


# -- 07.1: the high-water mark a brokerless outage needs ----------------------------------

#: The question's outage: both kitchens down for this long, brokerless.
OUTAGE = 30.0
HWM_SETTINGS: dict[str, Any] = {"transport": "brokerless", "fault": "consumer-down",
                                "fault_duration": OUTAGE}


def _hwm_params() -> Any:
    return _params("brokers", **HWM_SETTINGS)


def needed_hwm(p: Any) -> float:
    """Messages each pipe must hold to keep an average outage of every consumer, with
    Params ``p`` of ``brokers``: PUSH deals the messages round-robin over the pipes
    (ZeroMQ's, a pipe to a down peer taking its turn), so each pipe gets
    ``publish_rate × fault_duration / consumers``."""
    return p.publish_rate * p.fault_duration / p.consumers


def _needed() -> float:
    return needed_hwm(_hwm_params())


def _zmq_default() -> float:
    from simcomm.messaging.brokerless import HIGH_WATER_MARK

    return float(HIGH_WATER_MARK)


def _explain_hwm() -> str:
    p = _hwm_params()
    total = p.publish_rate * p.fault_duration
    return (f"{p.publish_rate:g} commands per second × {p.fault_duration:g} s = {total:g} "
            f"commands, dealt round-robin to {p.consumers} pipes: {_needed():g} each. A run "
            f"loses a few more even then: the count in {p.fault_duration:g} s is random "
            f"(Poisson, about ±{math.sqrt(total):.0f}), and each pipe reconnects up to a "
            f"second after its kitchen is back (ZeroMQ's reconnect interval), so size the "
            f"mark with room. And see where those {total:g} commands wait: in the order "
            f"service's memory. If the order service restarts they are gone; a broker keeps "
            f"them in a durable queue, on its own disk, whoever restarts.")


register(Exercise(
    id="07.1",
    notebook=NOTEBOOK,
    title="The buffer a brokerless design needs",
    question=(
        f"In `brokers` with `transport=\"brokerless\"`, both kitchen instances are down for "
        f"{OUTAGE:g} s (`fault=\"consumer-down\", fault_duration={OUTAGE:g}`) while the "
        f"order service publishes {_hwm_params().publish_rate:g} commands per second (the "
        f"default), round-robin to its {_hwm_params().consumers} kitchens. Its pipe to each "
        f"kitchen holds at most `high_water_mark` commands and drops the rest. What is the "
        f"**smallest high_water_mark** that holds every command published during an "
        f"average outage? Answers within ±5 % count."),
    check=Number(
        _needed, unit="commands", rel=0.05,
        misses=[
            Miss(lambda: _hwm_params().publish_rate * _hwm_params().fault_duration,
                 "that is what both pipes hold together. The high-water mark is per pipe, "
                 "and each pipe gets its own kitchen's share of the commands."),
            Miss(lambda: _hwm_params().publish_rate / _hwm_params().consumers,
                 "that is one second of the outage; the pipes must hold all of it."),
            Miss(_zmq_default,
                 "that is ZeroMQ's default high-water mark: it holds this outage, but it is "
                 "not the smallest that does."),
        ],
        explain=_explain_hwm, digits=4),
    hints=(
        "With no broker, the commands published while the kitchens are down can only wait "
        "in the order service's pipes. How many are published during the outage?",
        "The order service deals its commands round-robin over the pipes, one per kitchen, "
        "whether or not the kitchen is up. Each pipe must hold its share.",
        lambda: (f"{_hwm_params().publish_rate:g} × {_hwm_params().fault_duration:g} ÷ "
                 f"{_hwm_params().consumers}."),
    ),
))

# -- 07.2: prefetch and acks for a slow consumer that crashes --------------------------

#: The question's trouble: kitchen-1 three times slower, and it crashes (the defaults'
#: crash_at and crash_duration).
CRASH_FIXED: dict[str, Any] = {"slow_consumer": 3.0, "crash_consumer": True}
CRASH_ALLOWED = ("prefetch", "ack_mode")
#: The bar: this share of the published commands handled within LIMIT seconds.
ON_TIME_SHARE = 0.95
LIMIT = 1.0


def crash_report(res: Result) -> dict[str, Any]:
    """Of a ``competing-consumers`` run: ``published``, ``lost``, ``queued`` (not
    settled at the end), ``redeliveries``, ``on_time`` (the share of the published
    messages a consumer finished within LIMIT s of publishing), ``p95`` (latency of
    the consumed ones) and ``held`` (deliveries kitchen-1 held unsettled when it
    crashed: its requeued or lost messages).  Needs the trace."""
    s = res.summary()
    copies = res.deliveries
    consumed = copies[copies["fate"] == "consumed"]
    published = int(s.get("messages_published", 0))
    on_time = int((consumed["latency"] <= LIMIT).sum())
    return {"published": published,
            "lost": int(s.get("messages_lost", 0)),
            "queued": int(s.get("messages_queued", 0)),
            "redeliveries": int(s.get("redeliveries", 0)),
            "on_time": on_time / published if published else math.nan,
            "p95": float(s.get("message_p95_latency", math.nan))}


def _judge_crash(res: Result, answer: Mapping[str, Any]) -> Feedback:
    p = res.params
    rep = crash_report(res)
    slow = p.service_time * p.slow_consumer
    said = (f"{_pct(rep['on_time'])} of the {rep['published']} commands were handled within "
            f"{LIMIT:g} s; {rep['lost']} lost, {rep['redeliveries']} redelivered, "
            f"{rep['queued']} still waiting at the end")
    if rep["lost"] == 0 and rep["on_time"] >= ON_TIME_SHARE:
        return right(
            f"{said}. Manual acks: the commands kitchen-1 held when it crashed went back to "
            f"the queue and the other kitchens got them, flagged redelivered -- nothing "
            f"lost. A prefetch of {p.prefetch} kept kitchen-1's hands small: it takes "
            f"{slow:g} s per command, and each command it holds waits behind the others, "
            f"so a small window is what keeps the slow consumer from making commands late "
            f"(fair dispatch), and what it holds at a crash is all that is redelivered.")
    if rep["lost"]:
        return not_yet(
            f"{said}. With auto-ack the broker counts a command done as it sends it: the "
            f"{rep['lost']} commands kitchen-1 held when it crashed were lost. And RabbitMQ "
            f"ignores the prefetch with auto-ack, so the slow kitchen got a third of the "
            f"commands, more than it could handle, and piled them up.")
    if p.prefetch == 0:
        why = (f"With prefetch 0 (unlimited) the broker deals the commands out round-robin: "
               f"kitchen-1 gets a third of them and handles one every {slow:g} s, so they "
               f"pile up in its hands -- late, and all redelivered at the crash.")
    else:
        why = (f"With prefetch {p.prefetch} kitchen-1, at {slow:g} s per command, holds up "
               f"to {p.prefetch} of them: the last one waits about {p.prefetch * slow:.2g} s "
               f"behind the others, and at the crash all it held are redelivered, late. A "
               f"smaller window sends the work to the kitchens that are free.")
    return not_yet(f"{said}. {why}")


register(Exercise(
    id="07.2",
    notebook=NOTEBOOK,
    title="A slow consumer that crashes",
    question=(
        f"In `competing-consumers`, kitchen-1 is {CRASH_FIXED['slow_consumer']:g} times "
        f"slower than the other two kitchens (`slow_consumer="
        f"{CRASH_FIXED['slow_consumer']:g}`) and crashes for "
        f"{_params('competing-consumers').crash_duration:g} s at "
        f"{_params('competing-consumers').crash_at:g} s (`crash_consumer=True`). Choose "
        f"how the kitchens read the queue so that no command is lost and at least "
        f"{ON_TIME_SHARE * 100:g} % of all the published commands are handled within "
        f"{LIMIT:g} s. Give a dict with `prefetch` and `ack_mode`, such as "
        f"`{{\"prefetch\": 10, \"ack_mode\": \"auto\"}}`. The checker runs "
        f"`competing-consumers` with your settings and says what was lost, redelivered and "
        f"late."),
    check=Settings(
        "competing-consumers", allowed=CRASH_ALLOWED, fixed=CRASH_FIXED, judge=_judge_crash,
        solution={"prefetch": 1, "ack_mode": "manual"}, trace=True),
    hints=(
        "Two things can go wrong: commands lost at the crash, and commands waiting in the "
        "slow kitchen's hands. Which knob decides each?",
        "Only manual acks let the broker redeliver what a crashed consumer held. The "
        "prefetch decides how much the slow kitchen holds at once.",
        "Manual acks with a small prefetch -- fair dispatch.",
    ),
))

# -- 07.3: keeping the order --------------------------------------------------------------

#: What every option of 07.3 shares: a kitchen crash and rejects (transient failures
#: that requeue), at a rate one kitchen can handle.
ORDER_FIXED: dict[str, Any] = {"crash_consumer": True, "reject_rate": 0.05,
                               "publish_rate": 10.0}
#: Each option of 07.3 as settings of ``competing-consumers`` (for the tests).
ORDER_OPTIONS: dict[str, dict[str, Any]] = {
    "fair": {"consumers": 3, "prefetch": 1, "ack_mode": "manual"},
    "auto": {"consumers": 3, "ack_mode": "auto"},
    "single": {"consumers": 1, "prefetch": 1, "ack_mode": "manual"},
    "window": {"consumers": 1, "prefetch": 10, "ack_mode": "manual"},
}

register(Exercise(
    id="07.3",
    notebook=NOTEBOOK,
    title="Keeping the order",
    question=(
        "The kitchen service must handle the commands in the order the order service "
        "published them (an order's CreateTicket before its CancelTicket), and neither a "
        "crash of a kitchen instance nor a command rejected with requeue may lose "
        "anything. Which way of reading `kitchen-commands` gives both: `\"fair\"` (three "
        "kitchens, prefetch 1, manual acks), `\"auto\"` (three kitchens, auto-ack, so "
        "nothing is ever redelivered), `\"single\"` (one kitchen, prefetch 1, manual acks) "
        "or `\"window\"` (one kitchen, prefetch 10, manual acks)? Answer with the word."),
    check=Choice({
        "fair": ("three kitchens work at once: a short command on one finishes before a "
                 "long one started earlier on another, so the service as a whole handles "
                 "commands out of order even with no failure, and every redelivery makes "
                 "it worse. Fair dispatch is about load, not order."),
        "auto": ("with auto-ack nothing is redelivered, but a rejected command and the "
                 "commands a crashed kitchen held are simply lost -- and three kitchens "
                 "still work at once, out of order."),
        "single": ("One consumer with one message in its hands at a time: a command that "
                   "comes back (a reject, a crash) returns to the head of the queue and is "
                   "the very next one that consumer gets, so nothing overtakes it; manual "
                   "acks lose nothing. RabbitMQ keeps one publisher's order through one "
                   "queue to one consumer -- the price is the throughput of one consumer. "
                   "To scale and still keep order, the book shards the channel by key, "
                   "one consumer per shard."),
        "window": ("one kitchen, but with ten unacked commands in its hands: a rejected "
                   "command goes back to the head of the queue, behind the nine already "
                   "delivered, and comes back after commands published later."),
    }, correct="single"),
    hints=(
        "Two things reorder commands: several consumers working at once, and a "
        "redelivered command arriving after later ones. Which option has neither?",
        "A requeued command goes back to its original place at the head of the queue. "
        "Where is the consumer's next command coming from if it already holds nine more?",
    ),
))
