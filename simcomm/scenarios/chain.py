"""``chain``: users -> API gateway -> a chain of services, called synchronously.

Users send requests to the ``api-gateway``, whose handler calls ``order``,
which calls ``payment``, and so on ``depth`` services deep; each waits for
the reply of the next before it answers (one-to-one synchronous
request/response).  Latency therefore adds up along the chain, and the
chain answers only if every service is up: availability multiplies.

Every service has ``service_workers`` workers, a mean ``service_time`` and
random crash/repair outages giving ``service_availability`` in the long
run.  The fault knobs act on the *last* service of the chain (a hang from
``hang_at`` for ``hang_duration`` seconds, an error rate, a slowdown) so
you can watch the failure travel back towards the users.  Users give up
after ``user_patience`` seconds; the gateway does not (yet): its workers
stay stuck waiting, which is how one hung service exhausts its callers.
"""

from __future__ import annotations

from dataclasses import dataclass

from simcomm.engine.faults import ErrorRate, Fault, Hang, Outages, Slowdown, install
from simcomm.engine.formats import FORMATS
from simcomm.engine.network import Link
from simcomm.engine.nodes import Instance
from simcomm.engine.randomness import distribution
from simcomm.engine.workload import OpenLoop
from simcomm.engine.world import World
from simcomm.rpc.handlers import answer, forward
from simcomm.scenarios.base import Load, Scenario, param, register
from simcomm.scenarios.payloads import order

#: Service names along the chain, after the FTGO application of the book.
SERVICE_NAMES = ("order", "payment", "kitchen", "delivery", "accounting", "notification")
GATEWAY = "api-gateway-1"
USERS = "users"


#: What the last service of the chain answers.
_DONE = {"status": "APPROVED", "orderId": 123456789}


def instance_name(service: str) -> str:
    return f"{service}-1"


@dataclass(frozen=True)
class Params:
    request_rate: float = param(
        10.0, range=(0.1, 500.0), unit="req/s", step=0.1,
        help="mean rate at which users send requests to the API gateway (Poisson)")
    depth: int = param(
        3, range=(1, len(SERVICE_NAMES)), unit="services",
        help="how many services the gateway's request passes through, one calling the next")
    gateway_workers: int = param(
        10, range=(1, 200), unit="workers",
        help="concurrent requests the API gateway can handle (its thread pool)")
    service_workers: int = param(
        10, range=(1, 200), unit="workers", help="workers in each service of the chain")
    service_time: float = param(
        0.02, range=(0.001, 1.0), unit="s", step=0.001,
        help="mean CPU time one request costs each service (the gateway: a tenth of it)")
    service_time_distribution: str = param(
        "lognormal", choices=("exponential", "lognormal", "constant"),
        help="shape of service times")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001,
        help="mean one-way network delay of every hop (exponential)")
    service_availability: float = param(
        0.995, range=(0.9, 1.0), unit="fraction", step=0.0005,
        help="long-run fraction of time each chain service is up (random crashes)")
    mean_time_to_repair: float = param(
        10.0, range=(0.1, 600.0), unit="s", step=0.1,
        help="mean length of an outage; failures come every MTTR*A/(1-A) s on average")
    message_format: str = param(
        "json", choices=tuple(FORMATS), help="wire format of every request and reply")
    last_service_hangs: bool = param(
        False, help="make the last service of the chain hang (accept, never reply)")
    hang_at: float = param(
        40.0, range=(0.0, 3600.0), unit="s", step=1.0,
        help="when the last service starts to hang (if it hangs)")
    hang_duration: float = param(
        30.0, range=(1.0, 3600.0), unit="s", step=1.0,
        help="how long the hang lasts")
    last_service_error_rate: float = param(
        0.0, range=(0.0, 1.0), unit="fraction", step=0.01,
        help="probability the last service answers with an error")
    last_service_slowdown: float = param(
        1.0, range=(1.0, 20.0), unit="x", step=0.5,
        help="factor by which the last service is slower than normal")
    user_patience: float = param(
        10.0, range=(0.1, 600.0), unit="s", step=0.1,
        help="how long a user waits for an answer before giving up")


def build(world: World, p: Params) -> None:
    world.network.set_default(Link(latency=distribution("exponential", p.network_latency)
                                   if p.network_latency > 0 else None))
    services = SERVICE_NAMES[: p.depth]
    shape = p.service_time_distribution
    fmt = FORMATS[p.message_format]
    Instance(world, GATEWAY, workers=p.gateway_workers, service="api-gateway", format=fmt,
             service_time=distribution(shape, p.service_time / 10,
                                       field_name="service_time_distribution"),
             handler=forward(instance_name(services[0])))
    for i, name in enumerate(services):
        is_last = i + 1 == len(services)
        handler = answer(_DONE) if is_last else forward(instance_name(services[i + 1]))
        Instance(world, instance_name(name), workers=p.service_workers, service=name,
                 format=fmt, service_time=distribution(shape, p.service_time),
                 handler=handler)
        if p.service_availability < 1:
            Outages(world, instance_name(name), p.service_availability, p.mean_time_to_repair)
    last = instance_name(services[-1])
    faults: list[Fault] = []
    if p.last_service_hangs:
        faults.append(Hang(last, p.hang_at, p.hang_duration))
    if p.last_service_error_rate > 0:
        faults.append(ErrorRate(last, 0.0, None, rate=p.last_service_error_rate))
    if p.last_service_slowdown != 1:
        faults.append(Slowdown(last, 0.0, None, factor=p.last_service_slowdown))
    install(world, faults)
    OpenLoop(world, USERS, GATEWAY, p.request_rate, body=order(2),
             patience=p.user_patience, format=fmt)


def capacity(p: Params) -> float:
    """An optimistic ceiling, in requests per second, of what the chain can carry.

    Calls are synchronous, so a worker is held from the moment it takes a
    request until its reply is sent: for its own work (the mean service
    time, the gateway's a tenth of it, the last service's stretched by
    ``last_service_slowdown``), for coding the messages it reads and
    writes, and for the whole downstream call (both network delays plus
    the next service's holding time).  Each pool carries at most
    ``workers / holding time`` requests per second; the chain carries the
    least of these.

    It is optimistic: it leaves out the waits in the queues downstream
    (which lengthen every upstream holding time as the load rises), the
    outages (``service_availability``: a request to a service that is
    down is refused quickly) and a hang (which holds the last service's
    workers until it ends), so the chain saturates somewhat below it.
    """
    fmt = FORMATS[p.message_format]
    services = SERVICE_NAMES[: p.depth]
    request = fmt.size(order(2))
    reply = fmt.size(_DONE)  # what travels back, hop by hop
    downstream = 0.0  # holding time of the next service down the chain
    ceiling = float("inf")
    for i in reversed(range(-1, len(services))):  # the last service first; -1: gateway
        own = p.service_time / 10 if i < 0 else p.service_time
        if i == len(services) - 1:
            own *= p.last_service_slowdown
        coding = fmt.decode_cost(request) + fmt.encode_cost(reply)
        if i < len(services) - 1:  # it calls the next one down: codes that call too
            coding += fmt.encode_cost(request) + fmt.decode_cost(reply)
            own += 2 * p.network_latency + downstream
        holding = own + coding
        workers = p.gateway_workers if i < 0 else p.service_workers
        ceiling = min(ceiling, workers / holding)
        downstream = holding
    return ceiling


def load(p: Params) -> Load:
    """A request and a reply on each of the ``depth + 1`` hops; up to three pool
    changes per service; a crash and a restart per outage of each service."""
    hops = p.depth + 1
    events = 0.0
    if p.service_availability < 1:  # MTBF + MTTR = MTTR / (1 - A)
        cycle = p.mean_time_to_repair / (1 - p.service_availability)
        events = 2 * p.depth / cycle
    return Load(requests_per_s=p.request_rate, messages_per_request=2 * hops,
                pool_changes_per_request=3 * hops, events_per_s=events)


SCENARIO = register(Scenario(
    name="chain",
    title="API gateway and a chain of synchronous calls",
    description=("Users call an API gateway, which calls order, which calls payment, and so "
                 "on, each waiting for the next one's reply. Latency adds up along the chain "
                 "and availability multiplies; the fault knobs act on the last service so "
                 "you can watch a failure travel back to the users."),
    params=Params,
    build=build,
    views=("latency_over_time", "outcomes_over_time", "pool_usage"),
    until=100.0,
    capacity=capacity,
    load=load,
))
