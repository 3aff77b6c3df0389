"""Exercises of notebook 04, retries and retry storms.

* **04.1** -- when can a storm feed itself?  In the storm every attempt
  times out, so a closed loop of users offers ``users × attempts / (think
  + attempts × timeout)`` attempts per second; the most attempts that keep
  that below the service's capacity.
* **04.2** -- a retry budget's slow refill: after an outage has emptied
  gRPC's token bucket, how many successes before a failure may be retried
  again (computed by driving :class:`~simcomm.resilience.RetryBudget`).
* **04.3** -- end a longer storm with the waits alone: the checker runs
  ``retry-storm`` with the learner's backoff and judges it with
  :func:`~simcomm.scenarios.retry_storm.storm_report`.

Expected values come from the scenario's defaults, its capacity model and
the package's own policies, never typed in.
"""

from __future__ import annotations

import functools
import math
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
from simcomm.scenarios import retry_storm

if TYPE_CHECKING:
    from simcomm.result import Result

NOTEBOOK = "04-retries-and-storms"
SCENARIO = "retry-storm"


_storm = functools.partial(params, SCENARIO)


def storm_load(p: Any, attempts: int | None = None) -> float:
    """Attempts per second the users offer the order service once every attempt times out.

    A user's cycle is then its think time plus ``attempts`` timeouts (waits
    between attempts are left out: the eager client has none), and each cycle
    sends ``attempts`` attempts: ``users × attempts / (think_time + attempts ×
    call_timeout)``.  Above the capacity the queue only grows, the waits stay
    above the timeout, and the storm feeds itself.
    """
    a = p.max_attempts if attempts is None else attempts
    return p.users * a / (p.think_time + a * p.call_timeout)


# -- 04.1: the most attempts that cannot feed a storm ---------------------------------

#: The question's users: fewer than the notebook's, thinking less.
USERS = 40
THINK = 4.0
#: The checker's runs (the notebook's seed is 1; another shows it is no accident).
SEED = 0


def _question() -> Any:
    return _storm(users=USERS, think_time=THINK)


def _capacity() -> float:
    return retry_storm.capacity(_question())


def _largest_safe() -> int:
    """The most attempts whose storm load stays below the capacity (the field allows 10)."""
    a = 0
    while a < 10 and storm_load(_question(), a + 1) < _capacity():
        a += 1
    return a


def _load_text(a: int) -> str:
    p = _question()
    return (f"{p.users} × {a} / ({p.think_time:g} + {a} × {p.call_timeout:g}) = "
            f"{storm_load(p, a):.1f} attempts/s")


@functools.cache
def storm_runs() -> dict[int, bool]:
    """Whether the question's system recovers from the notebook's trigger, with the
    answer's attempts and one more (``storm_report(...)["recovered"]``)."""
    from simcomm.api import run

    safe = _largest_safe()
    return {a: retry_storm.storm_report(run(SCENARIO, SEED, trace=True, progress=False,
                                            warn=False, users=USERS, think_time=THINK,
                                            max_attempts=a))["recovered"]
            for a in (safe, safe + 1)}


def _explain_safe() -> str:
    safe = _largest_safe()
    runs = storm_runs()
    said = {True: "recovers", False: "stays in the storm"}
    return (f"In the storm every attempt times out: {_load_text(safe)}, below the capacity "
            f"of {_capacity():g}, so the queue drains and the storm dies out; with "
            f"{safe + 1}, {_load_text(safe + 1)}, above it, so it can feed itself. The runs "
            f"agree: after the notebook's trigger (seed {SEED}) the system "
            f"{said[runs[safe]]} with {safe} attempts and {said[runs[safe + 1]]} with "
            f"{safe + 1}. Below the line the system is stable whatever happens; above it, "
            f"it is only waiting for a trigger.")


def _advise_attempts(value: float) -> str | None:
    if value < 1:
        return "max_attempts counts the first attempt too, so it is at least 1."
    if not value.is_integer():
        return "attempts are whole: round the way that keeps the storm's load below capacity."
    return None


register(Exercise(
    id="04.1",
    notebook=NOTEBOOK,
    title="The most attempts a storm cannot feed on",
    question=(
        f"Change the notebook's system: {USERS} users who think {THINK:g} s on average "
        f"(`users={USERS}, think_time={THINK:g}`), the rest as before -- the order service "
        f"can serve {_capacity():g} attempts per second and the gateway gives up on an "
        f"attempt after `call_timeout` = {_question().call_timeout:g} s and retries at once. "
        f"What is the **largest max_attempts** for which the storm cannot sustain itself, "
        f"because even with every attempt timing out the users offer less than the "
        f"capacity? Give a whole number."),
    check=Number(
        _largest_safe, unit="attempts", whole=True,
        misses=[
            Miss(lambda: _largest_safe() + 1,
                 lambda: (f"with {_largest_safe() + 1} attempts "
                          f"{_load_text(_largest_safe() + 1)}, above the capacity of "
                          f"{_capacity():g}: the storm can feed itself.")),
            Miss(lambda: _largest_safe() - 1,
                 lambda: (f"safe, but so is one more: "
                          f"{_load_text(_largest_safe())} stays below {_capacity():g}.")),
            Miss(lambda: _storm().max_attempts,
                 lambda: (f"that is the notebook's max_attempts, with {_storm().users} users "
                          f"thinking {_storm().think_time:g} s; the question changes the "
                          f"users.")),
        ],
        advise=_advise_attempts,
        explain=_explain_safe),
    hints=(
        "In the storm every attempt waits the whole call_timeout and fails. How long is a "
        "user's cycle then -- think, then max_attempts attempts -- and how many attempts "
        "does it send?",
        "The users offer users × attempts ÷ (think_time + attempts × call_timeout) attempts "
        "per second. Compare it with the capacity, service_workers ÷ service_time.",
        lambda: (f"Try 1, 2, 3 ...: {_load_text(1)}, {_load_text(2)}, ... against "
                 f"{_capacity():g}."),
    ),
))

# -- 04.2: how slowly a retry budget refills ---------------------------------------------


def _budget_fields() -> tuple[float, float]:
    """The scenario's default retry budget: (max_tokens, token_ratio)."""
    p = _storm()
    return p.budget_max_tokens, p.budget_token_ratio


def _empty_budget() -> Any:
    """A RetryBudget with the scenario's defaults, emptied by failures."""
    from simcomm.resilience import RetryBudget

    budget = RetryBudget(*_budget_fields())
    while budget.tokens > 0:
        budget.record_failure()
    return budget


def _successes_to_retry() -> int:
    """Successes an empty budget needs before the next failure may be retried again,
    found by driving the package's RetryBudget (no formula to get wrong)."""
    k = 0
    while True:
        budget = _empty_budget()
        for _ in range(k):
            budget.record_success()
        if budget.record_failure():
            return k
        k += 1


def _half() -> float:
    return _budget_fields()[0] / 2


def _ratio() -> float:
    return _budget_fields()[1]


def _explain_budget() -> str:
    k = _successes_to_retry()
    max_tokens, ratio = _budget_fields()
    return (f"{k} successes × {ratio:g} = {k * ratio:g} tokens; the failure takes one, "
            f"leaving {k * ratio - 1:g}, strictly more than half of {max_tokens:g}. With one "
            f"success fewer it would leave exactly {_half():g}: not enough. So after an "
            f"outage retries come back only once about {k} calls have gone through: the "
            f"budget lets a healthy service's rare failures be retried and keeps a sick "
            f"one from being hammered -- the retries it allows are at most about "
            f"{ratio * 100:g} % of the successes.")


register(Exercise(
    id="04.2",
    notebook=NOTEBOOK,
    title="How slowly a retry budget refills",
    question=(
        f"The scenario's retry budget (gRPC's retry throttling) holds at most "
        f"`budget_max_tokens` = {_budget_fields()[0]:g} tokens; each failed call takes "
        f"one (never below 0), each success gives back `budget_token_ratio` = "
        f"{_ratio():g}, and a failed call may be retried only if the tokens left after it "
        f"are **strictly more** than half the maximum. A storm has emptied the bucket to "
        f"0. **How many successes in a row** are needed before the next failure may be "
        f"retried? Give a whole number."),
    check=Number(
        _successes_to_retry, unit="successes", whole=True,
        misses=[
            Miss(lambda: _successes_to_retry() - 1,
                 lambda: (f"then the failure leaves exactly {_half():g} tokens, and a retry "
                          f"needs strictly more than {_half():g}.")),
            Miss(lambda: math.floor(_half() / _ratio() + 1e-9) + 1,
                 "that refills the bucket past half, but the failure itself takes a token "
                 "first: the tokens *left after it* must be more than half."),
            Miss(lambda: round(_half() / _ratio()),
                 "that brings the bucket to exactly half -- and the failure still has to "
                 "take its token, leaving less than half."),
            Miss(lambda: math.ceil(_half() + 1),
                 "each success gives back only budget_token_ratio of a token, not a whole "
                 "one."),
            Miss(lambda: round(_budget_fields()[0] / _ratio()),
                 "that refills the whole bucket; retries need only more than half of it."),
        ],
        explain=_explain_budget),
    hints=(
        "Count in tokens: the bucket starts at 0, each success adds budget_token_ratio, "
        "and the failure you want to retry takes one before the check.",
        lambda: (f"You need k × {_ratio():g} − 1 > {_half():g}: the tokens after the "
                 f"failure must be strictly more than half of {_budget_fields()[0]:g}."),
        lambda: (f"k × {_ratio():g} > {_half() + 1:g}: the smallest whole k. "
                 f"(`simcomm.resilience.RetryBudget` lets you try it.)"),
    ),
))

# -- 04.3: end a longer storm with the waits alone ---------------------------------------

WAITS_ALLOWED = ("retry_backoff", "retry_wait", "retry_max_wait")
#: The question's trigger: twice the notebook's; the gateway keeps four attempts.
LONG_TRIGGER = {"slowdown_duration": 10.0, "max_attempts": 4}


def _retry_waits(res: Result) -> float:
    """Mean wait before a retry sent after the trigger began (0 if there were none)."""
    a = res.attempts
    retried = a[(a["attempt"] > 1) & (a["time"] >= res.params.slowdown_at)]
    return float(retried["wait_before"].mean()) if len(retried) else 0.0


def _judge_storm(res: Result, answer: Mapping[str, Any]) -> Feedback:
    p = res.params
    rep = retry_storm.storm_report(res)
    wait = _retry_waits(res)
    a = p.max_attempts
    cycle = p.think_time + a * p.call_timeout + (a - 1) * wait
    offered = p.users * a / cycle
    arithmetic = (f"In the storm a user's cycle is {p.think_time:g} s of thinking, {a} "
                  f"timeouts of {p.call_timeout:g} s and {a - 1} waits of about {wait:.2g} s "
                  f"(your retries' mean): {cycle:.1f} s for {a} attempts, so {p.users} users "
                  f"offer about {offered:.1f} attempts/s against a capacity of "
                  f"{rep['capacity']:g}.")
    last = (f"over the last part of the run the users got {rep['goodput_last']:.1f} "
            f"answers/s ({rep['goodput_before']:.1f} before the trigger) and the order "
            f"service was offered {rep['offered_last']:.1f} attempts/s")
    if rep["recovered"]:
        return right(f"The storm ended: {last}. {arithmetic} Below the capacity the queue "
                     f"drains, waits fall under the timeout and the retries stop being "
                     f"needed. The price is latency: a request that needs retries now takes "
                     f"seconds longer.")
    if offered >= rep["capacity"]:
        advice = "The waits must lengthen the cycle until that falls below the capacity."
    else:
        advice = (f"That is below the capacity, but only by {rep['capacity'] - offered:.1f} "
                  f"attempts/s: the backlog the trigger left drains that slowly at best, "
                  f"and the storm outlasts the run. Lengthen the waits further.")
    return not_yet(f"Still in the storm: {last}. {arithmetic} {advice}")


register(Exercise(
    id="04.3",
    notebook=NOTEBOOK,
    title="End a longer storm with the waits alone",
    question=(
        f"The trigger now lasts {LONG_TRIGGER['slowdown_duration']:g} s "
        f"(`slowdown_duration={LONG_TRIGGER['slowdown_duration']:g}`), and the gateway "
        f"keeps its {LONG_TRIGGER['max_attempts']} attempts: no budget, no breaker. Choose "
        f"the **waits between attempts** that end the storm: a dict with any of "
        + ", ".join(f"`{name}`" for name in WAITS_ALLOWED)
        + f", such as `{{\"retry_backoff\": \"constant\", \"retry_wait\": 0.5}}`. The "
        f"checker runs `{SCENARIO}` with your settings and tells you whether the system "
        f"recovered (`storm_report`) and why."),
    check=Settings(
        SCENARIO, allowed=WAITS_ALLOWED, fixed=LONG_TRIGGER, judge=_judge_storm, trace=True,
        solution={"retry_backoff": "exponential", "retry_wait": 1.0}),
    hints=(
        "In the storm the users form a closed loop: they send their next attempt only "
        "after the last one has timed out and the wait has passed. Longer waits mean "
        "fewer attempts per second.",
        lambda: (f"A user's cycle in the storm is think_time + 4 × call_timeout + the three "
                 f"waits; {_storm().users} × 4 ÷ cycle must fall below the capacity of "
                 f"{retry_storm.capacity(_storm()):g}."),
        "A constant wait of 1 s is not enough; waits that grow, or a longer constant one, "
        "are.",
    ),
))
