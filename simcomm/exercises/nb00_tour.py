"""Exercises of notebook 00, the tour: queueing theory as a check on the simulator.

* **00.1** -- the M/M/c mean response time at 90 % utilisation, from the
  formula the tour holds the simulation against (Erlang C).
* **00.2** -- the request rate at which the chain's API gateway runs out of
  workers, from the time each worker is held (the chain's capacity model).
* **00.3** -- what brings a simulated point closer to the theory curve.
"""

from __future__ import annotations

from typing import Any

from simcomm.exercises._core import Choice, Exercise, Miss, Number, params, register
from simcomm.scenarios import chain

NOTEBOOK = "00-tour"

# -- 00.1: M/M/3 at 90 % --------------------------------------------------------

#: The tour's queue: three workers that each finish one request per second.
SERVICE_RATE = 1.0
SERVERS = 3
#: The tour ran it at 2.4 requests per second (80 %); the question asks 90 %.
TOUR_RATE = 2.4
RATE = 2.7


def _mmc(rate: float = RATE) -> Any:
    """The M/M/c means at ``rate`` on the tour's workers.

    ``simcomm.analysis`` is imported here, not at the top: its package loads
    pandas, and importing the exercises must stay light.
    """
    from simcomm.analysis.theory import mmc

    return mmc(rate, SERVICE_RATE, SERVERS)


def _load(rate: float) -> str:
    """The utilisation rho = lambda / (c mu) at ``rate``, as "80 %"."""
    return f"{rate / (SERVERS * SERVICE_RATE) * 100:.0f} %"


def _response(rate: float = RATE) -> float:
    return _mmc(rate).response


def _explain_response() -> str:
    at80, at90 = _response(TOUR_RATE), _response(RATE)
    idle = 1 / SERVICE_RATE
    return (f"From {_load(TOUR_RATE)} to {_load(RATE)} the mean response time grows from "
            f"{at80:.2f} s to {at90:.2f} s: that step adds {at90 - at80:.2f} s, more than "
            f"the whole climb from an idle server ({idle:g} s) to {_load(TOUR_RATE)} "
            f"({at80 - idle:.2f} s). That is the hockey stick: near saturation every "
            f"extra request waits behind many others.")


register(Exercise(
    id="00.1",
    notebook=NOTEBOOK,
    title="M/M/3 response time at 90 % utilisation",
    question=(
        f"The tour ran `mmc` at {_load(TOUR_RATE)} utilisation: {TOUR_RATE:g} requests per "
        f"second on {SERVERS} workers that each finish {SERVICE_RATE:g} per second. Predict "
        f"with the M/M/c formula (`mmc_theory`, imported above) the **mean response time "
        f"in seconds** at {_load(RATE)}: `arrival_rate={RATE:g}` on the same {SERVERS} "
        f"workers. "
        f"Answers within ±2 % count."),
    check=Number(
        _response, unit="s", rel=0.02,
        misses=[
            Miss(lambda: _mmc().wait,
                 "that is the mean wait in the queue (Wq). The response time is the wait "
                 "plus the service itself, 1/μ."),
            Miss(lambda: 1 / SERVICE_RATE,
                 "that is the service time alone, 1/μ; at 90 % most requests also wait "
                 "for a worker."),
            Miss(lambda: _response(TOUR_RATE),
                 f"that is the response time at {_load(TOUR_RATE)} ({TOUR_RATE:g} req/s), "
                 f"the tour's run; the question asks for {RATE:g} req/s."),
            Miss(lambda: 1 / (SERVICE_RATE - RATE / SERVERS),
                 f"that is {SERVERS} separate queues, one per worker, each with 1/{SERVERS} "
                 f"of the traffic (M/M/1 {SERVERS} times). In M/M/c one shared queue feeds "
                 f"all the workers, so a request never waits while a worker is free."),
            Miss(lambda: 1 / (SERVERS * SERVICE_RATE - RATE),
                 f"that is one server {SERVERS} times as fast (M/M/1 with μ = "
                 f"{SERVERS * SERVICE_RATE:g}). The question has {SERVERS} ordinary workers: "
                 f"each request still takes 1/μ to serve."),
            Miss(lambda: _mmc().in_system,
                 "that is L, the mean number of requests in the system, not a time. "
                 "Little's law, L = λW, turns one into the other."),
            Miss(lambda: _mmc().queue_length,
                 "that is Lq, the mean number waiting, not a time."),
        ],
        explain=_explain_response),
    hints=(
        "`mmc_theory(arrival_rate, service_rate, servers)` returns the steady-state "
        "means of the queue. Which of its fields is the time from a request's arrival "
        "to its answer?",
        "Its `response` field is W = Wq + 1/μ: the mean wait for a worker plus the "
        "service itself.",
        f"`mmc_theory({RATE:g}, {SERVICE_RATE:g}, {SERVERS}).response`; compare it with "
        f"the tour's value at {TOUR_RATE:g} req/s.",
    ),
))

# -- 00.2: when the gateway's pool fills ------------------------------------------


def _chain_defaults() -> Any:
    return params("chain")


def _gateway_ceiling() -> float:
    """Requests per second the default chain carries: the chain's capacity model."""
    return chain.capacity(_chain_defaults())


def _default(name: str) -> float:
    return getattr(_chain_defaults(), name)


def _explain_gateway() -> str:
    cap = _gateway_ceiling()
    workers = _default("gateway_workers")
    return (f"The chain's capacity model (`chain.capacity`) says {cap:.0f} requests per "
            f"second: {workers:g} workers ÷ {workers / cap * 1000:.0f} ms, the time each "
            f"is held -- its own work, then {_default('depth'):g} calls, each a network round "
            f"trip and the next service's work, nested inside one another. The gateway fills first "
            f"because its workers wait for the whole chain; the services' pools each hold "
            f"a request for less. The model is optimistic (it ignores queueing downstream), "
            f"so a run's gateway is nearly full a little before: try it in the dashboard.")


register(Exercise(
    id="00.2",
    notebook=NOTEBOOK,
    title="The request rate that fills the gateway",
    question=(
        "In the tour's `chain` with its default settings, at about what **request rate "
        "(requests per second)** are all the API gateway's workers busy, so that its "
        "pool fills up? Predict it from `gateway_workers`, `service_time`, "
        "`network_latency` and `depth` in the table of knobs, before you try it in the "
        "dashboard. Answers within ±8 % count."),
    check=Number(
        _gateway_ceiling, unit="req/s", rel=0.08,
        misses=[
            Miss(lambda: _default("gateway_workers") / _default("service_time"),
                 "that is as if a gateway worker were held only for one service's work. It "
                 "is held until the whole chain has answered."),
            Miss(lambda: _default("gateway_workers") / (_default("service_time") / 10),
                 "that counts only the gateway's own work (a tenth of service_time). Its "
                 "worker waits, held, until the whole chain below has answered."),
            Miss(lambda: _default("gateway_workers")
                 / (_default("service_time") / 10 + _default("depth") * _default("service_time")),
                 "you left out the network: each of the calls down the chain waits a round "
                 "trip, 2 × network_latency, and the gateway's worker waits through all of "
                 "them."),
            Miss(lambda: _gateway_ceiling() / _default("gateway_workers"),
                 "that is what one worker can take. The gateway has gateway_workers of "
                 "them, working in parallel."),
            Miss(lambda: _default("service_workers") / _default("service_time"),
                 "that is what a service's pool could take if its workers were held only "
                 "for their own work. Which pool holds its workers longest?"),
        ],
        explain=_explain_gateway, digits=3),
    hints=(
        "A pool of c workers, each held for h seconds per request, can take at most c ÷ h "
        "requests per second. What is h for a gateway worker?",
        "A gateway worker is held for the whole call: its own work (service_time ÷ 10) "
        "and, for each of the depth services below it, a network round trip "
        "(2 × network_latency) and that service's service_time.",
        lambda: (f"h = {_default('service_time') / 10:g} + {_default('depth'):g} × "
                 f"({2 * _default('network_latency'):g} + {_default('service_time'):g}) s; "
                 f"the gateway has {_default('gateway_workers'):g} workers."),
    ),
))

# -- 00.3: what brings the points closer to the curve ---------------------------------

register(Exercise(
    id="00.3",
    notebook=NOTEBOOK,
    title="What brings simulation closer to theory",
    question=(
        "The simulated points of the theory sweep sit near the curve but not on it. "
        "Which **one** change would bring them closer: `\"seed\"` (another seed), "
        "`\"until\"` (longer runs), `\"servers\"` (more workers) or `\"trace\"` "
        "(`trace=False`)? Answer with the word."),
    check=Choice({
        "until": ("A longer run averages over more requests, so its mean lands closer to the "
                  "steady state the formula describes: the confidence bar shrinks like "
                  "1/√(run length), so halving the error takes a run four times as long. "
                  "The price is computing time, most of all near saturation."),
        "seed": ("another seed is another sample of the same randomness: the points move, "
                 "some closer and some further, but on average no closer. Only more data "
                 "shrinks the error."),
        "servers": ("more workers change the queue itself, and the theory curve moves with "
                    "them; a run does not agree any better with its own curve."),
        "trace": ("the trace only records what happens: a run with trace=False gives exactly "
                  "the same numbers, just faster."),
    }, correct="until"),
    hints=(
        "The formula gives the mean of a queue that runs for ever; a simulation measures "
        "the mean of a finite sample.",
        "Which of the four gives the simulation more requests to average over?",
    ),
))
