"""``mmc``: one service, c workers, Poisson arrivals -- the M/M/c queue.

Users send requests as a Poisson process at ``arrival_rate``; one service
instance with ``servers`` workers serves them from an unbounded FIFO queue
with exponential service times at ``service_rate`` each (M/M/c), or
constant ones (M/D/c), or log-normal ones (M/G/c).  The network is instant
by default, so the results can be held against queueing theory
(:mod:`simcomm.analysis.theory`).
"""

from __future__ import annotations

from dataclasses import dataclass

from simcomm.engine.network import Link
from simcomm.engine.nodes import Instance
from simcomm.engine.randomness import Exponential, distribution
from simcomm.engine.workload import OpenLoop
from simcomm.engine.world import World
from simcomm.scenarios.base import Load, Scenario, param, register

SERVER = "server-1"
CLIENT = "users"


@dataclass(frozen=True)
class Params:
    arrival_rate: float = param(
        0.8, range=(0.01, 1000.0), unit="req/s", step=0.01,
        help="mean rate of new requests (lambda); Poisson arrivals")
    service_rate: float = param(
        1.0, range=(0.01, 1000.0), unit="req/s", step=0.01,
        help="requests one worker completes per second when busy (mu); "
             "mean service time is 1/service_rate")
    servers: int = param(
        1, range=(1, 64), unit="workers",
        help="concurrent workers (c) sharing one FIFO queue")
    service_distribution: str = param(
        "exponential", choices=("exponential", "constant", "lognormal"),
        help="shape of service times: exponential (M/M/c), constant (M/D/c), "
             "lognormal (long tail, sigma 0.5)")
    network_latency: float = param(
        0.0, range=(0.0, 1.0), unit="s", step=0.001,
        help="one-way network delay between users and server (0 keeps theory exact)")


def build(world: World, p: Params) -> None:
    if p.network_latency > 0:
        world.network.set_default(Link(latency=Exponential(p.network_latency)))
    service_time = distribution(p.service_distribution, 1.0 / p.service_rate,
                                field_name="service_distribution")
    Instance(world, SERVER, workers=p.servers, service_time=service_time, service="server")
    OpenLoop(world, CLIENT, SERVER, p.arrival_rate)


def capacity(p: Params) -> float:
    """Requests per second the server can carry: ``servers * service_rate``.

    The M/M/c queue is stable only while ``arrival_rate`` is below this
    (utilisation rho = lambda / (c mu) < 1), whatever the shape of the
    service times and the network delay (workers are not held while a
    message travels).
    """
    return p.servers * p.service_rate


def load(p: Params) -> Load:
    """One message each way per request; a worker taken and freed, and at most one wait."""
    return Load(requests_per_s=p.arrival_rate, messages_per_request=2,
                pool_changes_per_request=3)


SCENARIO = register(Scenario(
    name="mmc",
    title="M/M/c queue: one service, c workers",
    description=("Users send requests as a Poisson process; one instance with c workers "
                 "serves them from an unbounded FIFO queue with exponential (M/M/c), "
                 "constant (M/D/c) or log-normal service times. The network is instant by "
                 "default, so results can be held against queueing theory."),
    params=Params,
    build=build,
    views=("latency_over_time", "pool_usage", "theory_vs_simulation"),
    until=10_000.0,
    capacity=capacity,
    load=load,
))
