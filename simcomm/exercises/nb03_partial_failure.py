"""Exercises of notebook 03, partial failure: the gateway's hung order service.

* **03.1** -- how long a timeout may be: the calls to a hung service hold
  ``createOrder rate × call_timeout`` of the gateway's workers (Little's
  law), so the longest timeout that leaves some free follows from the rates.
* **03.2** -- which protection acts without a timeout: the bulkhead counts
  calls, the breaker, the fallback and retries all wait for a failure that
  a hang never produces.
* **03.3** -- settings that answer every user within a second during the
  hang: the checker runs ``gateway`` with them and says, endpoint by
  endpoint, what happened and why.

Expected values come from the scenario's own defaults (``gateway``'s
Params) and from runs, never typed in.
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
    Slip,
    not_yet,
    params,
    register,
    right,
)

if TYPE_CHECKING:
    import pandas as pd

    from simcomm.result import Result

NOTEBOOK = "03-partial-failure"

#: What a user counts as an answer: the service's own, or a fallback's.
ANSWERED = ("ok", "fallback")


_gateway = functools.partial(params, "gateway")


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.0f} %"


def during_hang(res: Result) -> pd.DataFrame:
    """The requests of a ``gateway`` run that users sent while the order service hung."""
    p = res.params
    r = res.requests
    return r[r["start"].between(p.hang_at, p.hang_at + p.hang_duration, inclusive="left")]


# -- 03.1: the longest timeout that leaves workers free ----------------------------------

#: The question's load: more requests than the notebook's, most of them createOrder.
RATE = 25.0
SHARE = 0.6
#: Workers the gateway must keep free for getCustomer, on average, during the hang.
FREE = 4


def _workers() -> int:
    """The gateway's pool: the scenario's default ``gateway_workers``."""
    return _gateway().gateway_workers


def _order_rate() -> float:
    return RATE * SHARE


def _longest_timeout() -> float:
    """Little's law: calls to the hung service hold ``rate × timeout`` workers on average,
    and at most ``workers - FREE`` of them may be held."""
    return (_workers() - FREE) / _order_rate()


def _explain_timeout() -> str:
    held = _workers() - FREE
    return (f"createOrder arrives at {RATE:g} × {SHARE:g} = {_order_rate():g} per second, and "
            f"while the order service hangs each call holds a gateway worker for the whole "
            f"timeout: by Little's law {_order_rate():g}/s × {_longest_timeout():.2g} s = "
            f"{held} workers busy waiting, leaving {FREE} of {_workers()}. At "
            f"{_workers() / _order_rate():.2g} s the hung calls would hold all of them and "
            f"getCustomer would queue again. A timeout is a budget of workers, not only of "
            f"time.")


register(Exercise(
    id="03.1",
    notebook=NOTEBOOK,
    title="The longest timeout the pool allows",
    question=(
        f"The order service hangs. Users now send {RATE:g} requests per second, "
        f"{SHARE * 100:g} % of them createOrder (`request_rate={RATE:g}, "
        f"create_order_share={SHARE:g}`), to the gateway's {_workers()} workers, which stop "
        f"waiting for the order service after `call_timeout` seconds. What is the "
        f"**longest call_timeout, in seconds,** that leaves at least {FREE} of the gateway's "
        f"workers free for getCustomer on average during the hang? Answers within ±5 % "
        f"count."),
    check=Number(
        _longest_timeout, unit="s", rel=0.05,
        misses=[
            Miss(lambda: FREE / _order_rate(),
                 f"that gives the hung calls {FREE} workers on average; the question keeps "
                 f"{FREE} free for getCustomer, so the hung calls may hold the rest."),
            Miss(lambda: _workers() / _order_rate(),
                 "at that timeout the hung calls hold the whole pool on average: nothing is "
                 "left for getCustomer."),
            Miss(lambda: (_workers() - FREE) / RATE,
                 "only createOrder calls go to the hung order service; getCustomer's calls "
                 "come back in milliseconds. Use createOrder's rate."),
            Miss(lambda: (_workers() - FREE) / (RATE * (1 - SHARE)),
                 "that is getCustomer's rate. The calls that wait out the timeout are "
                 "createOrder's, to the hung order service."),
            Slip(1000, "that looks like milliseconds; the question asks for seconds."),
        ],
        explain=_explain_timeout, digits=3),
    hints=(
        "While the order service hangs, every createOrder call waits the full timeout. "
        "How many such calls are in flight at once, on average?",
        "Little's law: calls in flight = arrival rate × time each stays. Here the rate is "
        "createOrder's and the time is call_timeout.",
        lambda: (f"({_workers()} − {FREE}) workers ÷ ({RATE:g} × {SHARE:g}) createOrder "
                 f"calls per second."),
    ),
))

# -- 03.2: which protection acts without a timeout ------------------------------------------

#: How each option of 03.2 is switched on, alone, in the gateway (for the tests).
ALONE: dict[str, dict[str, Any]] = {
    "bulkhead": {"order_bulkhead": 5},
    "breaker": {"breaker": "resilience4j"},
    "fallback": {"fallback": "value"},
    "retries": {"max_attempts": 3},
}

register(Exercise(
    id="03.2",
    notebook=NOTEBOOK,
    title="The protection that needs no timeout",
    question=(
        "Leave `call_timeout` at 0 (the gateway waits for ever, as in the cascade). Which "
        "**one** protection, switched on alone, keeps getCustomer answered while the order "
        "service hangs: `\"bulkhead\"` (`order_bulkhead=5`), `\"breaker\"`, "
        "`\"fallback\"` or `\"retries\"`? Answer with the word."),
    check=Choice({
        "bulkhead": ("A bulkhead counts calls in flight, not failures: however long they "
                     "hang, the calls to the order service can hold no more than "
                     "order_bulkhead of the gateway's workers, and the others stay free for "
                     "getCustomer. Every other protection waits for a call to fail, and a "
                     "hung call does not fail until someone stops waiting."),
        "breaker": ("a breaker counts failures, and a hung call is not a failure until "
                    "something stops waiting for it. Without a timeout the breaker sees "
                    "the hung calls fail only when the hang ends and they are reset -- it "
                    "trips after the damage, then short-circuits a service that is healthy "
                    "again."),
        "fallback": ("a fallback answers a call that failed; the hung calls never fail "
                     "while the order service hangs, so it never gets to answer, and the "
                     "gateway's workers stay stuck."),
        "retries": ("a retry follows a failure too, and a hung call never fails. With a "
                    "timeout, retries would make each createOrder hold a gateway worker for "
                    "every attempt and every wait between them: worse, not better."),
    }, correct="bulkhead"),
    hints=(
        "Which of the four acts on a call before it has failed?",
        "A hung call neither succeeds nor fails until somebody stops waiting for it. The "
        "breaker, the fallback and retries all react to failures; one of the four counts "
        "something else.",
    ),
))

# -- 03.3: every user answered within a second --------------------------------------------

#: The bar: this share of each endpoint's requests answered within LIMIT seconds.
FAST_SHARE = 0.95
LIMIT = 1.0
ANSWER_ALLOWED = ("call_timeout", "order_bulkhead", "customer_bulkhead", "bulkhead_max_wait",
                  "breaker", "breaker_failure_rate", "breaker_minimum_calls",
                  "breaker_fail_max", "breaker_open_wait", "fallback")


def endpoint_report(res: Result) -> dict[str, dict[str, Any]]:
    """Per endpoint, of the requests sent during the hang: how many, the share answered
    (ok or fallback), the share answered within LIMIT seconds, the outcomes, and the
    median latency of those that were not answered in time."""
    d = during_hang(res)
    out: dict[str, dict[str, Any]] = {}
    for endpoint, g in d.groupby("endpoint"):
        answered = g["outcome"].isin(ANSWERED)
        fast = answered & (g["latency"] <= LIMIT)
        slow = g.loc[~fast, "latency"]
        out[str(endpoint)] = {
            "requests": len(g), "answered": float(answered.mean()), "fast": float(fast.mean()),
            "outcomes": {str(k): int(v) for k, v in g["outcome"].value_counts().items()},
            "slow_median": float(slow.median()) if len(slow) else float("nan")}
    return out


def _outcomes(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{n} {name}" for name, n in row["outcomes"].items())


def _why_not(endpoint: str, row: Mapping[str, Any], p: Any) -> str:
    """Why ``endpoint`` missed the bar in a run with Params ``p``."""
    head = (f"{endpoint}: {_pct(row['fast'])} answered within {LIMIT:g} s "
            f"({_outcomes(row)})")
    if endpoint == "getCustomer":
        return (f"{head}. getCustomer's own service is healthy: its requests waited for "
                f"gateway workers held by calls to the hung order service. Limit how many "
                f"workers those calls may hold (order_bulkhead) or for how long (a shorter "
                f"call_timeout).")
    fails_fast = p.call_timeout > 0 or p.order_bulkhead > 0 or p.breaker != "none"
    if not fails_fast and p.fallback == "none":
        return (f"{head}. Nothing stops a call to the hung service, so the users give up "
                f"first. Make the calls fail fast (a call_timeout, a bulkhead or a "
                f"breaker), and let a fallback turn each failure into an answer.")
    if not fails_fast:
        return (f"{head}. A fallback answers a call that failed, and a hung call does not "
                f"fail while nothing stops waiting for it: make it fail fast first (a "
                f"call_timeout, a bulkhead or a breaker).")
    if row["answered"] < FAST_SHARE and p.fallback == "none":
        return (f"{head}. The calls now fail, and a failure reaches the user as one: only "
                f"a fallback turns it into an answer.")
    if row["answered"] < FAST_SHARE:
        return (f"{head}. Some calls got through to the hung service and waited there "
                f"until their users gave up: a bulkhead limits how many calls wait, a "
                f"timeout how long.")
    return (f"{head}. They were answered, but late: those not in time took "
            f"{row['slow_median']:.1f} s (median). A failure is answered only once the call "
            f"has failed -- after the call_timeout, unless a bulkhead or an open breaker "
            f"refuses the call at once.")


def _judge_answers(res: Result, answer: Mapping[str, Any]) -> Feedback:
    rows = endpoint_report(res)
    s = res.summary()
    said = "; ".join(f"{ep}: {_pct(row['fast'])} answered within {LIMIT:g} s "
                     f"({_outcomes(row)})" for ep, row in rows.items())
    missed = [ep for ep, row in rows.items() if row["fast"] < FAST_SHARE]
    if not missed:
        return right(
            f"During the hang -- {said}. Over the whole run {_pct(s['availability'])} of the "
            f"users got an answer but only {_pct(s['success_rate'])} got the service's own "
            f"(availability against success_rate): failing fast keeps the gateway's "
            f"workers free, and the fallback turns each fast failure into an answer the "
            f"app can show.")
    return not_yet(" ".join(_why_not(ep, rows[ep], res.params) for ep in missed))


register(Exercise(
    id="03.3",
    notebook=NOTEBOOK,
    title="Every user answered within a second",
    question=(
        f"With the notebook's hang and load, choose protections so that during the hang "
        f"at least {FAST_SHARE * 100:g} % of **each** endpoint's requests get an answer "
        f"(ok or fallback) within {LIMIT:g} s. Give a dict with any of "
        + ", ".join(f"`{name}`" for name in ANSWER_ALLOWED)
        + ", such as `{\"call_timeout\": 2.0, \"breaker\": \"hystrix\"}`. The checker runs "
        "`gateway` with your settings and tells you, endpoint by endpoint, what happened."),
    check=Settings(
        "gateway", allowed=ANSWER_ALLOWED, judge=_judge_answers,
        solution={"call_timeout": 0.5, "fallback": "value"}),
    hints=(
        "Two things must happen to a createOrder during the hang: its call must fail "
        "quickly, and the failure must become an answer. Which knobs do each?",
        f"A call fails quickly with a short call_timeout (well under {LIMIT:g} s), a "
        f"bulkhead or an open breaker; a fallback makes the failure an answer.",
        "For example a call_timeout of half a second with a fallback value -- then check "
        "that getCustomer still has gateway workers to spare (exercise 03.1).",
    ),
))
