"""Exercises of notebook 01, one-to-one synchronous request/response.

* **01.1** -- availability multiplies: the longest chain that still meets an
  availability target (the product formula, ``chain_availability``).
* **01.2** -- latency adds up: what one more service adds to the mean
  latency (its work plus one network round trip).
* **01.3** -- a hang fills the gateway's queue: its peak from the request
  rate and the hang's length; the checker runs the hang to show the peak.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from simcomm.exercises._core import Exercise, Miss, Number, Slip, params, register

NOTEBOOK = "01-sync-request-response"


_chain = functools.partial(params, "chain")


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.1f} %"


# -- 01.1: the longest chain that meets a target ----------------------------------

#: The availability the product team needs from the whole chain.
TARGET = 0.98


def _each() -> float:
    """Each service's availability: the chain's default ``service_availability``."""
    return _chain().service_availability


def _chain_of(n: int) -> float:
    """Availability of a chain of ``n`` services, each up ``_each()`` of the time.

    ``simcomm.analysis`` is imported here, not at the top: its package loads
    pandas, and importing the exercises must stay light.
    """
    from simcomm.analysis.theory import chain_availability

    return chain_availability([_each()] * n)


def _longest() -> int:
    """The most services whose product of availabilities still meets TARGET."""
    n = 0
    while _chain_of(n + 1) >= TARGET:
        n += 1
    return n


def _advise_depth(value: float) -> str | None:
    if 0 < value < 1:
        return ("that looks like an availability. The question asks for a number of "
                "services: how deep can the chain be?")
    if value < 1:
        return "a chain has at least one service."
    if not value.is_integer():
        return (f"a chain has a whole number of services. Where {_each():g}ⁿ reaches "
                f"{_pct(TARGET)} is not a whole number: round it the way that keeps the "
                f"chain at or above the target.")
    return None


register(Exercise(
    id="01.1",
    notebook=NOTEBOOK,
    title="The longest chain that meets an availability target",
    question=(
        f"Each service of the chain is up `service_availability` = {_pct(_each())} of the "
        f"time (the default), independently of the others. A product team needs the chain "
        f"to work at least {TARGET * 100:g} % of the time. **How many services deep** can "
        f"the chain be? Give a whole number."),
    check=Number(
        _longest, unit="services", whole=True,
        misses=[
            Miss(lambda: _longest() + 1,
                 lambda: (f"{_each():g}^{_longest() + 1} = {_pct(_chain_of(_longest() + 1))}, "
                          f"below {TARGET * 100:g} %: one service too many.")),
            Miss(lambda: _longest() - 1,
                 lambda: (f"{_each():g}^{_longest() - 1} = {_pct(_chain_of(_longest() - 1))} "
                          f"meets the target, but so does one more service.")),
        ],
        advise=_advise_depth,
        explain=lambda: (f"{_each():g}^{_longest()} = {_pct(_chain_of(_longest()))} meets "
                         f"{TARGET * 100:g} %, {_each():g}^{_longest() + 1} = "
                         f"{_pct(_chain_of(_longest() + 1))} does not. Every service "
                         f"added multiplies in another factor of {_each():g}: each costs the "
                         f"chain about {_pct(1 - _each())} more downtime.")),
    hints=(
        "A synchronous chain answers only if every service in it is up. With "
        "independent failures, what is the chain's availability for n services?",
        lambda: (f"It is the product, Aⁿ. Try n = 1, 2, 3, ... until it drops below the "
                 f"target (`chain_availability([{_each():g}] * n)` computes it)."),
        lambda: (f"{_each():g}^{_longest()} = {_chain_of(_longest()):.4f} and "
                 f"{_each():g}^{_longest() + 1} = {_chain_of(_longest() + 1):.4f}."),
    ),
))

# -- 01.2: what one more service adds -----------------------------------------------

#: Slower hops and slower services than the notebook's defaults.
NETWORK_LATENCY = 0.01
SERVICE_TIME = 0.03


def _question_params() -> Any:
    return _chain(network_latency=NETWORK_LATENCY, service_time=SERVICE_TIME)


def _increment() -> float:
    """Mean latency one more service adds: its work and one round trip.

    The coding of the small JSON messages adds microseconds (see the
    chain's capacity model), far inside the tolerance, so it is left out
    here as in the notebook's explanation.
    """
    p = _question_params()
    return p.service_time + 2 * p.network_latency


def _default_increment() -> float:
    p = _chain()
    return p.service_time + 2 * p.network_latency


register(Exercise(
    id="01.2",
    notebook=NOTEBOOK,
    title="What one more service adds to latency",
    question=(
        f"In the depth table each extra service added about "
        f"{_default_increment() * 1000:.0f} ms. With slower hops, "
        f"`network_latency={NETWORK_LATENCY:g}` ({NETWORK_LATENCY * 1000:g} ms each way), "
        f"and slower services, `service_time={SERVICE_TIME:g}`, how many **seconds** would "
        f"each extra service add to the mean latency? Answers within ±5 % count."),
    check=Number(
        _increment, unit="s", rel=0.05,
        misses=[
            Miss(lambda: SERVICE_TIME + NETWORK_LATENCY,
                 "you counted the network once. A call crosses it twice: the request goes "
                 "down, the reply comes back, and the caller waits for both."),
            Miss(lambda: SERVICE_TIME,
                 "that is only the new service's work; its caller also waits for the "
                 "network round trip to reach it and back."),
            Miss(lambda: 2 * NETWORK_LATENCY,
                 "that is only the network round trip; the new service's own work adds to "
                 "it."),
            Miss(_default_increment,
                 "that is the increment with the default settings, from the depth table; "
                 "the question makes the hops and the services slower."),
            Slip(1000, "that looks like milliseconds; the question asks for seconds."),
        ],
        explain=lambda: (f"Each service adds its own work ({SERVICE_TIME:g} s) and one "
                         f"round trip (2 × {NETWORK_LATENCY:g} s) = {_increment():g} s. Every "
                         f"caller above it waits that much longer too, so the gateway's "
                         f"workers are held longer and its pool fills at a lower rate.")),
    hints=(
        "In a synchronous chain every caller waits for the next service's reply. What does "
        "one more service at the end of the chain make its caller wait for?",
        "Its work (service_time) and the network both ways: the request there and the "
        "reply back.",
        "service_time + 2 × network_latency, in seconds.",
    ),
))

# -- 01.3: the gateway's queue during a hang ---------------------------------------------

#: The hang of the question: twice the notebook's load, a shorter hang.
HANG_RATE = 20.0
HANG_DURATION = 20.0
#: The run that shows the peak: no random crashes, so only the hang acts.
HANG_SETTINGS: dict[str, Any] = {"last_service_hangs": True, "request_rate": HANG_RATE,
                 "hang_duration": HANG_DURATION, "service_availability": 1.0}
HANG_SEED = 1


def _predicted_peak() -> float:
    """Arrivals during the hang, less the requests the gateway's workers hold.

    Every request that reaches the gateway while the last service hangs is
    stuck: the first ``gateway_workers`` of them hold the gateway's workers
    (and, nested below, a worker of every service down to the hung one);
    all the others wait in the gateway's queue until the hang ends.  Users
    who give up do not take their request out of the queue: the gateway
    never learns that they left.
    """
    p = _chain(**HANG_SETTINGS)
    return p.request_rate * p.hang_duration - p.gateway_workers


@functools.cache
def hang_run_peak() -> tuple[int, int]:
    """(peak of the gateway's queue, requests that arrived during the hang) in the
    question's run, ``simcomm.run("chain", seed=1, **HANG_SETTINGS)``."""
    from simcomm.api import run
    from simcomm.scenarios.chain import GATEWAY

    res = run("chain", HANG_SEED, trace=True, progress=False, warn=False, **HANG_SETTINGS)
    p = res.params
    gateway = res.pools[res.pools["node"] == GATEWAY]
    starts = res.requests["start"]
    arrived = int(starts.between(p.hang_at, p.hang_at + p.hang_duration,
                                 inclusive="left").sum())
    return int(gateway["queued"].max()), arrived


def _explain_peak() -> str:
    peak, arrived = hang_run_peak()
    p = _chain(**HANG_SETTINGS)
    return (f"{p.request_rate:g} req/s × {p.hang_duration:g} s = "
            f"{p.request_rate * p.hang_duration:g} requests arrive during the hang on "
            f"average; {p.gateway_workers} of them hold the gateway's workers, the rest "
            f"queue. The run with seed {HANG_SEED} peaked at {peak} waiting ({arrived} "
            f"arrived during its hang: Poisson arrivals vary by about "
            f"±{math.sqrt(p.request_rate * p.hang_duration):.0f}). Users gave up after "
            f"{p.user_patience:g} s, yet their requests stayed in the queue: the gateway "
            f"works through all of them when the hang ends, for nobody.")


register(Exercise(
    id="01.3",
    notebook=NOTEBOOK,
    title="The gateway's queue at the peak of a hang",
    question=(
        f"In the notebook the last service hung for {_chain().hang_duration:g} s at "
        f"{_chain().request_rate:g} requests per second. "
        f"Predict the **peak number of requests waiting in the gateway's queue** if the "
        f"users send {HANG_RATE:g} requests per second and the hang lasts "
        f"{HANG_DURATION:g} s (the other settings at their defaults, crashes off): "
        f"`simcomm.run(\"chain\", seed={HANG_SEED}, last_service_hangs=True, "
        f"request_rate={HANG_RATE:g}, hang_duration={HANG_DURATION:g}, "
        f"service_availability=1.0)`. Predict first, then check yourself against the "
        f"run. Answers within ±10 % count."),
    check=Number(
        _predicted_peak, unit="requests", rel=0.10,
        misses=[
            Miss(lambda: _chain(**HANG_SETTINGS).request_rate
                 * _chain(**HANG_SETTINGS).user_patience,
                 "users give up after user_patience seconds, but the gateway never learns "
                 "that they left: their requests stay in its queue for the whole hang."),
            Miss(lambda: HANG_RATE,
                 "that is how much the queue grows every second. For how long does it "
                 "grow?"),
            Miss(lambda: float(_chain(**HANG_SETTINGS).gateway_workers),
                 "those are the gateway's workers, all held by the hang; the queue is what "
                 "waits behind them."),
            Miss(lambda: float((_chain(**HANG_SETTINGS).depth + 1)
                               * _chain(**HANG_SETTINGS).gateway_workers),
                 "the requests that hold the gateway's workers are the same ones that hold a "
                 "worker in every service below (each gateway worker waits on one call down "
                 "the chain). The queue holds everything else that arrives."),
            Miss(lambda: _chain().request_rate * _chain().hang_duration,
                 "that is the notebook's hang (its default rate and duration); the question "
                 "changes both."),
        ],
        explain=_explain_peak, digits=3),
    hints=(
        "While the last service hangs, nothing comes back up the chain. How many requests "
        "per second join the gateway's queue, and for how long?",
        "request_rate × hang_duration requests arrive during the hang; only the first "
        "gateway_workers of them get a worker. Users who give up do not leave the queue.",
        lambda: (f"{HANG_RATE:g} × {HANG_DURATION:g} − "
                 f"{_chain(**HANG_SETTINGS).gateway_workers} (the gateway's workers)."),
    ),
))
