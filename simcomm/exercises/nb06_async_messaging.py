"""Exercises of notebook 06, asynchronous messaging and the interaction styles.

* **06.1** -- the downtime of an asynchronous createOrder (*Microservices
  Patterns* §3.4): it needs the order service and the broker, so its
  availability is their product; in hours per week, with a broker that
  fails too (``create_order.formula``).
* **06.2** -- orphan replies: while the kitchen is down, every request
  with an asynchronous response waits out its ``reply_timeout``; the
  commands wait in the kitchen's queue and are all answered when it comes
  back, and each answer that finds its request gone is an orphan.  On
  average ``request_rate × (service_down_for − reply_timeout)`` of them.
* **06.3** -- publish / async responses with one subscriber down: the
  checker runs ``styles`` with the learner's way of collecting replies
  (how many, how long) and judges how fast the users were answered.

Expected values come from the scenarios' own defaults and formulas, never
typed in; tests/test_exercises.py holds the premises against runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simcomm.exercises._core import (
    Exercise,
    Feedback,
    Miss,
    Number,
    Settings,
    Slip,
    not_yet,
    params,
    register,
    right,
)
from simcomm.scenarios import styles as _styles  # noqa: F401 (registers styles)

if TYPE_CHECKING:
    from simcomm.result import Result

NOTEBOOK = "06-async-messaging"


_params = params


def _pct(fraction: float, digits: int = 1) -> str:
    return f"{fraction * 100:.{digits}f} %"


# -- 06.1: the downtime of the asynchronous createOrder ----------------------------------

#: Hours in a week: the book states downtime per week as well as in percent.
HOURS_PER_WEEK = 7 * 24
#: The question's broker: up 99.9 % of the time (the scenario's default never fails).
BROKER_AVAILABILITY = 0.999


def _design(design: str) -> Any:
    return _params("create-order", design=design, broker_availability=BROKER_AVAILABILITY)


def _formula(design: str) -> float:
    from simcomm.scenarios.create_order import formula

    return formula(_design(design))


def _hours(availability: float) -> float:
    return (1.0 - availability) * HOURS_PER_WEEK


def _async_hours() -> float:
    """Hours per week the async design is down: (1 − A_order · A_broker) × 168."""
    return _hours(_formula("async"))


def _explain_async() -> str:
    p = _design("async")
    return (f"The user's createOrder needs only the order service and the broker: "
            f"{p.order_availability:g} × {p.broker_availability:g} = "
            f"{_pct(_formula('async'), 2)}, so about {_async_hours():.2f} hours a week "
            f"against {_hours(_formula('sync')):.2f} for the synchronous design (three "
            f"services at {p.order_availability:g}). The consumer and restaurant services "
            f"are left out of the product, not out of the work: while one is down its "
            f"commands wait in its queue and the orders are approved later. The broker comes "
            f"in instead -- the messaging infrastructure must be highly available itself.")


register(Exercise(
    id="06.1",
    notebook=NOTEBOOK,
    title="The downtime of an asynchronous createOrder",
    question=(
        f"In the asynchronous design of `create-order` the order service accepts the order "
        f"and sends its commands through the broker. Each service is up "
        f"{_pct(_design('async').order_availability)} of the time (the defaults), and now "
        f"the broker fails too: it is up {_pct(BROKER_AVAILABILITY)} of the time "
        f"(`broker_availability={BROKER_AVAILABILITY:g}`). By the product formula, **how "
        f"many hours per week** is createOrder unavailable to its users? Answers within "
        f"±2 % count."),
    check=Number(
        _async_hours, unit="hours", rel=0.02,
        misses=[
            Miss(lambda: _hours(_formula("sync")),
                 "that is the synchronous design: the product of the three services. The "
                 "asynchronous createOrder answers without waiting for the consumer and "
                 "restaurant services."),
            Miss(lambda: _hours(_formula("sync") * BROKER_AVAILABILITY),
                 "that multiplies in all three services and the broker. Which of them must "
                 "be up for the user to get the answer 'pending'?"),
            Miss(lambda: _hours(_design("async").order_availability),
                 "that is the order service alone: the order service also needs the broker "
                 "to confirm its commands before it can answer."),
            Miss(lambda: _hours(BROKER_AVAILABILITY),
                 "that is the broker alone: the order service fails too."),
            Miss(lambda: (1.0 - _formula("async")) * 24,
                 "that is per day; the question asks per week."),
            Slip(60, "that looks like minutes; the question asks for hours."),
        ],
        explain=_explain_async, digits=3),
    hints=(
        "Which nodes must be up for the user to get an answer from the asynchronous "
        "design? The consumer and restaurant services are not among them.",
        "Availability = A_order × A_broker; the unavailable fraction is 1 minus that.",
        lambda: (f"(1 − {_design('async').order_availability:g} × {BROKER_AVAILABILITY:g}) "
                 f"× {HOURS_PER_WEEK} hours."),
    ),
))

# -- 06.2: orphan replies ------------------------------------------------------------------

#: The question's outage of the kitchen service (the other knobs at their defaults).
DOWN_FOR = 10.0
ORPHAN_SETTINGS: dict[str, Any] = {"style": "request-async-response",
                                   "service_down_for": DOWN_FOR}


def _orphan_params() -> Any:
    return _params("styles", **ORPHAN_SETTINGS)


def expected_orphans(p: Any) -> float:
    """Orphan replies a kitchen outage causes on average, with Params ``p``.

    A request sent while the kitchen is down waits ``reply_timeout`` and
    gives up; its command waits in the kitchen's queue and is answered
    once the kitchen is back.  That answer is an orphan unless the request
    is still waiting: only those sent in the last ``reply_timeout`` seconds
    of the outage are (the backlog is handled in a fraction of a second).
    So ``request_rate × (service_down_for − reply_timeout)``.
    """
    return p.request_rate * max(p.service_down_for - p.reply_timeout, 0.0)


def _orphans() -> float:
    return expected_orphans(_orphan_params())


def _explain_orphans() -> str:
    p = _orphan_params()
    n = _orphans()
    return (f"{p.request_rate:g} requests per second × ({p.service_down_for:g} − "
            f"{p.reply_timeout:g}) s = {n:g}: every request sent during the outage timed out "
            f"after {p.reply_timeout:g} s, except those of its last {p.reply_timeout:g} s, "
            f"still waiting when the kitchen came back and answered its whole queue. Poisson "
            f"arrivals make one run differ by about ±{math.sqrt(n):.0f}. Each orphan is work "
            f"the kitchen did for an order whose user was told 'timeout': a timeout says "
            f"nothing about whether the request was carried out, so the requester must "
            f"recognise the late reply by its correlation id and decide what to do with it.")


register(Exercise(
    id="06.2",
    notebook=NOTEBOOK,
    title="Replies that come too late",
    question=(
        f"In the `styles` scenario with `style=\"request-async-response\"`, the kitchen "
        f"service is down for {DOWN_FOR:g} s (`service_down_for={DOWN_FOR:g}`); users send "
        f"{_orphan_params().request_rate:g} requests per second and the order service waits "
        f"`reply_timeout` = {_orphan_params().reply_timeout:g} s for each reply (the "
        f"defaults). The broker keeps the kitchen's commands while it is down. **On "
        f"average, how many orphan replies** -- replies that arrive after their request gave "
        f"up -- does the outage cause? Answers within ±5 % count."),
    check=Number(
        _orphans, unit="replies", rel=0.05,
        misses=[
            Miss(lambda: _orphan_params().request_rate * _orphan_params().service_down_for,
                 "that counts every request sent during the outage. The ones sent in its "
                 "last reply_timeout seconds are still waiting when the kitchen comes back: "
                 "their replies arrive in time."),
            Miss(lambda: _orphan_params().request_rate * _orphan_params().reply_timeout,
                 "those are the requests whose replies arrive in time -- the ones sent in "
                 "the outage's last reply_timeout seconds. The question asks for the "
                 "others."),
            Miss(lambda: _orphan_params().request_rate
                 * (_orphan_params().service_down_for + _orphan_params().reply_timeout),
                 "the requests sent in the outage's last reply_timeout seconds are still "
                 "waiting when their replies come: subtract them, do not add them."),
        ],
        advise=lambda v: ("the broker does not drop the commands of a down consumer: they "
                          "wait in its durable queue, and every one is answered when the "
                          "kitchen is back." if v == 0 else None),
        explain=_explain_orphans, digits=3),
    hints=(
        "Which requests time out, and what happens to their commands? The broker keeps "
        "them in the kitchen's queue until it is back.",
        "Every command sent during the outage is answered right after it. The reply is an "
        "orphan if its request stopped waiting before that: sent more than reply_timeout "
        "seconds before the kitchen came back.",
        "request_rate × (service_down_for − reply_timeout).",
    ),
))

# -- 06.3: collect replies with one subscriber down ---------------------------------------

#: The question's setting: four subscribers, the first one (kitchen) down for 20 s.
COLLECT_FIXED: dict[str, Any] = {"style": "publish-async-responses", "subscribers": 4,
                                 "service_down_for": 20.0}
COLLECT_ALLOWED = ("replies_to_collect", "reply_timeout", "transport")
#: The bar: this share of all requests answered ok within LIMIT seconds.
FAST_SHARE = 0.95
LIMIT = 0.5


def collect_report(res: Result) -> dict[str, Any]:
    """Of a ``styles`` run's finished requests: how many, the share answered ok,
    the share answered ok within LIMIT, the outcomes, and of those sent while
    the first subscriber was down, the share answered ok within LIMIT."""
    p = res.params
    rq = res.requests
    done = rq[rq["outcome"] != "pending"]
    fast = (done["outcome"] == "ok") & (done["latency"] <= LIMIT)
    down = done["start"].between(p.service_down_at, p.service_down_at + p.service_down_for,
                                 inclusive="left")
    n_down = int(down.sum())
    return {"requests": len(done),
            "ok": float((done["outcome"] == "ok").mean()) if len(done) else math.nan,
            "fast": float(fast.mean()) if len(done) else math.nan,
            "fast_during_outage": float(fast[down].mean()) if n_down else math.nan,
            "outcomes": {str(k): int(v) for k, v in done["outcome"].value_counts().items()}}


def _wanted(p: Any) -> int:
    return p.replies_to_collect or p.subscribers


def _judge_collect(res: Result, answer: Mapping[str, Any]) -> Feedback:
    p = res.params
    rep = collect_report(res)
    outcomes = ", ".join(f"{n} {name}" for name, n in rep["outcomes"].items())
    said = (f"{_pct(rep['fast'], 0)} of the users were answered ok within {LIMIT:g} s "
            f"({outcomes}); of those who asked while the kitchen was down, "
            f"{_pct(rep['fast_during_outage'], 0)}")
    wanted = _wanted(p)
    if rep["fast"] >= FAST_SHARE:
        return right(
            f"{said}. The order service waited for {wanted} of {p.subscribers} replies, so "
            f"one subscriber's outage could not hold it up: a requester that collects "
            f"replies until a count (or a deadline) is as available as the replies it "
            f"needs, while one that waits for every subscriber is only as available as the "
            f"least available of them -- the product formula again.")
    if wanted > p.subscribers:
        why = (f"It waited for {wanted} replies from {p.subscribers} subscribers: more than "
               f"can ever come, so every request waited out the timeout.")
    elif wanted == p.subscribers:
        why = (f"It waited for a reply from every one of the {p.subscribers} subscribers, the "
               f"kitchen included: while the kitchen was down, no request could be "
               f"answered ok, however short the timeout -- a shorter one only fails them "
               f"sooner.")
    else:
        why = (f"It waited for {wanted} of {p.subscribers} replies, which the healthy "
               f"subscribers can give; but the timeout of {p.reply_timeout:g} s cut some "
               f"requests off before enough replies came.")
    return not_yet(f"{said}. {why}")


register(Exercise(
    id="06.3",
    notebook=NOTEBOOK,
    title="Collecting replies with a subscriber down",
    question=(
        f"With `style=\"publish-async-responses\"` the order service publishes each request "
        f"as an event to {COLLECT_FIXED['subscribers']} subscribers and collects their "
        f"replies. The first subscriber, the kitchen, is down for "
        f"{COLLECT_FIXED['service_down_for']:g} s of the minute-long run. Choose how the "
        f"order service collects replies so that at least {FAST_SHARE * 100:g} % of all the "
        f"users are answered ok within {LIMIT:g} s. Give a dict with any of "
        + ", ".join(f"`{name}`" for name in COLLECT_ALLOWED)
        + ", such as `{\"reply_timeout\": 0.3}`. The checker runs `styles` with your "
          "settings and says how the users fared."),
    check=Settings(
        "styles", allowed=COLLECT_ALLOWED, fixed=COLLECT_FIXED, judge=_judge_collect,
        solution={"replies_to_collect": COLLECT_FIXED["subscribers"] - 1}),
    hints=(
        "While the kitchen is down, at most three replies can come. What is the order "
        "service waiting for?",
        "replies_to_collect = 0 means a reply from every subscriber; a timeout only decides "
        "how long to wait before failing.",
        "Collect fewer replies than there are subscribers.",
    ),
))
