"""What service discovery costs: a day of Eureka for 100 instances, and a call through it.

Two measurements (issue 10 §10), run side by side in this one process:

**1. A simulated day of the ``discovery`` scenario.**  Client-side
discovery with Eureka (the scenario's defaults: every instance renews its
lease every 30 s, ``eureka.instance.lease-renewal-interval-in-seconds``;
the server evicts every 60 s and refreshes its read-only cache every 30 s;
the gateway's Eureka client fetches every 30 s and Ribbon refreshes its
list every 30 s; one instance crashes at 60 s and is replaced), with
``instances=100``, ``until=86400`` and ``request_rate=DAY_RATE`` (10
requests per second: ~864 000 requests a day, 0.1/s per instance --
chosen so that one day runs in about two minutes of CPU; the discovery
traffic itself does not depend on the rate), untraced
(``trace=False``, as a day-long run is meant to be: the request table,
``trace.routes`` and the counters are kept).  We report its wall and CPU
time and the share of the run spent on discovery traffic:

* **messages** -- counted exactly: ``trace.counters["discovery_messages"]``
  (every registration, renewal, cancel and fetch, and each reply) over
  ``world.network.sent`` (every message put on the network);
* **simulation events** -- the events SimPy processed, counted for free
  from the environment's event-id counter (scheduled minus still queued;
  no wrapper around ``env.step``, so the count costs the timed run
  nothing).  An event does not say whom it serves, so the day is run a
  second time with the knob's lowest rate (``BASE_RATE`` 0.1/s) and the
  count split linearly: ``events = D + e x requests``, two runs, two
  unknowns -- ``D`` the discovery traffic's events (and the crash's, and
  the timers'), ``e`` the events of one request.  The same split applied
  to the messages is printed next to the exact count as a check of the
  linear model, and applied to the CPU time gives the discovery traffic's
  share of the run's time.

**2. A client-side call's overhead over calling a fixed instance.**  The
same workload built four ways in a bare :class:`~simcomm.engine.World`
(link latency 1 ms): an open loop of ``CALL_RATE`` requests per second to
an API gateway (200 workers) whose handler does a unit of work and calls
the order service, ``ORDER_INSTANCES`` instances of 16 workers each
(log-normal service time of 20 ms: no request ever queues for a worker,
on any side, so every side simulates the same work):

* **fixed** -- the caller names the instance: ``rpc.call(ctx, "order-1",
  body)``, the path before this issue;
* **named** -- the caller names each instance itself, in turn
  (``order-1``, ``order-2``, ... by a plain counter): the spread of round
  robin over the instances without the library, which tells the cost of
  calling four instances instead of one apart from the library's own;
* **static** -- :class:`simcomm.discovery.DiscoveryClient` with a view
  that lists the instances once and never changes (:class:`StaticView`,
  defined here: a registry that never answers differently) and Ribbon's
  round robin: what the client library adds to a call -- the balancer's
  pick, its bookkeeping and the ``trace.routes`` row;
* **eureka** -- the same client with a real :class:`EurekaView` (client
  fetch and Ribbon refresh every 30 s) over instances that register and
  renew with a :class:`EurekaServer`: the call's overhead plus the
  discovery traffic, amortised over the requests.

The sides are run in slices of simulated time, one slice of each in turn,
so that whatever else the machine does falls on all alike, after an
untimed warm-up of ``WARMUP`` s without requests (Eureka's first fetch,
response cache and Ribbon list are in place before the first call); each
run gives the CPU time per request of each side, and the ratio of each
discovery side to ``fixed`` within the run (target <= 1.2 for
``static``), ``CALL_RUNS`` runs per repetition.  The pair is also run
traced (``trace=True``, the default of :func:`simcomm.run`).  The
garbage collector stays on, as in a user's run; it is one process, so a
collection started by one side also walks the other sides' objects --
part of the noise.  With valgrind on the PATH, the instructions one more
request costs on each side are counted too (:mod:`_valgrind`): a ratio
the machine's load cannot move.  The time ratios come out above it and
wander from run to run on a loaded machine: an instruction count misses
the cache misses of the memory the library adds (a ``trace.routes`` row
per call, kept traced or not; the balancer's state) and of calling four
instances instead of one (what ``named`` over ``fixed`` measures alone).

The machine these numbers come from is usually shared: quote medians and
ratios, not single times; the load average at the start and the end is
printed with them.

    python benchmarks/bench_discovery.py              # 3 repetitions: a day, 20 000 calls
    python benchmarks/bench_discovery.py 5            # repetitions
    python benchmarks/bench_discovery.py --quick      # 1 repetition, an hour, 4 000 calls (< 1 min)
    python benchmarks/bench_discovery.py --instructions   # part 2 counted by valgrind
"""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any

import simcomm
from simcomm.discovery import DiscoveryClient, RegistryServer, View
from simcomm.discovery.balancers import balancer
from simcomm.discovery.churn import Fleet
from simcomm.discovery.eureka import EurekaRegistration, EurekaServer, EurekaView
from simcomm.engine import Context, Instance, Link, Message, OpenLoop, World
from simcomm.engine.randomness import distribution
from simcomm.rpc.call import call
from simcomm.rpc.handlers import answer, answer_for

# -- part 1: a day of the discovery scenario ---------------------------------
DAY = 86_400.0  # s
INSTANCES = 100
DAY_RATE = 10.0  # requests per second
BASE_RATE = 0.1  # the request_rate knob's minimum: the day with (almost) only discovery
QUICK_UNTIL = 3_600.0  # --quick: an hour instead of a day

# -- part 2: a call through discovery vs a call to a fixed instance ----------
CALL_REQUESTS = 20_000
QUICK_CALL_REQUESTS = 4_000
CALL_RATE = 50.0  # requests per second
ORDER_INSTANCES = 4
ORDER_WORKERS = 16
SERVICE_TIME = 0.02  # s, mean (log-normal)
LATENCY = 0.001  # s, every hop
SLICES = 20
CALL_RUNS = 3  # runs of the call sides per repetition (they are short and noisy)
WARMUP = 120.0  # s before the requests start: Eureka's first fetch, cache and list refreshes
GATEWAY = "api-gateway-1"
SERVICE = "order"
FIXED = "order-1"
_ORDER = {"orderId": 123456789, "state": "APPROVAL_PENDING"}


# -- counting events -----------------------------------------------------------
def events_processed(world: World) -> int:
    """Events SimPy has processed in ``world`` so far (the run must be over).

    ``Environment.schedule`` numbers every event from one counter
    (``_eid``); processed = numbered - still queued.  Reading it costs
    the run nothing.  Without that counter (another SimPy), 0: see
    :func:`count_steps`.
    """
    env = world.env
    eid = getattr(env, "_eid", None)
    if eid is None:
        return getattr(env, "steps_counted", 0)
    return next(eid) - len(env._queue)


def count_steps(world: World) -> None:
    """Count ``env.step`` calls (a fallback when SimPy has no ``_eid``; costs time)."""
    env = world.env
    if hasattr(env, "_eid"):
        return
    step = env.step
    env.steps_counted = 0  # type: ignore[attr-defined]

    def counting() -> None:
        env.steps_counted += 1  # type: ignore[attr-defined]
        step()

    env.step = counting  # type: ignore[method-assign]


# -- part 1 --------------------------------------------------------------------
def day(until: float, rate: float, seed: int) -> dict[str, float]:
    """Build and run the discovery scenario; its times and counts."""
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    sc, params, end = simcomm.prepare("discovery", seed=seed, until=until, trace=False,
                                      instances=INSTANCES, request_rate=rate)
    world = World(seed, trace=False)
    sc.build(world, params)
    count_steps(world)
    world.run(end)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "events": events_processed(world),
            "messages": world.network.sent,
            "discovery_messages": world.trace.counters.get("discovery_messages", 0),
            "requests": world.request_count}


def split(full: dict[str, float], base: dict[str, float], key: str) -> tuple[float, float]:
    """``key`` = D + e x requests through the two runs: (D, e)."""
    dr = full["requests"] - base["requests"]
    per_request = (full[key] - base[key]) / dr
    return base[key] - per_request * base["requests"], per_request


# -- part 2 --------------------------------------------------------------------
class StaticView(View):
    """A view that lists fixed instances and never changes (a registry that never
    answers differently): what a balancer over a list costs, without refreshes."""

    def __init__(self, world: World, owner: Any, registry: str, service: str,
                 instances: Iterable[str]) -> None:
        super().__init__(world, owner, registry, service)
        self._fixed = tuple(sorted(instances))

    def _start(self) -> None:
        self.update(self._fixed)


def _orders() -> list[str]:
    return [f"{SERVICE}-{i}" for i in range(1, ORDER_INSTANCES + 1)]


def _order_args() -> dict[str, Any]:
    return {"workers": ORDER_WORKERS, "service_time": distribution("lognormal", SERVICE_TIME),
            "handler": answer(_ORDER)}


def _gateway(world: World, handler: Callable[..., Any] | None = None) -> Instance:
    return Instance(world, GATEWAY, workers=200, service="api-gateway",
                    service_time=distribution("lognormal", SERVICE_TIME / 10), handler=handler)


def _via(client: DiscoveryClient) -> Callable[[Context, Message], Generator[Any, Any, Any]]:
    def via_client(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        reply = yield from client.call(ctx, request.body)
        return answer_for(SERVICE, reply)

    return via_client


def build_fixed(world: World) -> None:
    for name in _orders():
        Instance(world, name, service=SERVICE, **_order_args())

    def via_fixed(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        reply = yield from call(ctx, FIXED, request.body)
        return answer_for(SERVICE, reply)

    _gateway(world, via_fixed)


def build_named(world: World) -> None:
    names = _orders()
    for name in names:
        Instance(world, name, service=SERVICE, **_order_args())
    turn = itertools.cycle(names)

    def via_named(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        reply = yield from call(ctx, next(turn), request.body)
        return answer_for(SERVICE, reply)

    _gateway(world, via_named)


def build_static(world: World) -> None:
    for name in _orders():
        Instance(world, name, service=SERVICE, **_order_args())
    registry = RegistryServer(world, "registry")
    gateway = _gateway(world)
    view = StaticView(world, gateway, registry.name, SERVICE, _orders())
    gateway.handler = _via(DiscoveryClient(world, gateway, SERVICE, view,
                                           balancer("round_robin")))


def build_eureka(world: World) -> None:
    server = EurekaServer(world, "eureka-server")
    Fleet(world, SERVICE, instances=ORDER_INSTANCES,
          registration=EurekaRegistration(world, server.name), **_order_args())
    gateway = _gateway(world)
    view = EurekaView(world, gateway, server.name, SERVICE)
    gateway.handler = _via(DiscoveryClient(world, gateway, SERVICE, view,
                                           balancer("round_robin")))


BUILDS: dict[str, Callable[[World], None]] = {
    "fixed": build_fixed, "named": build_named, "static": build_static,
    "eureka": build_eureka}

#: side -> (build, traced)
SIDES: dict[str, tuple[str, bool]] = {
    "fixed": ("fixed", False), "named": ("named", False), "static": ("static", False),
    "eureka": ("eureka", False), "fixed_traced": ("fixed", True),
    "static_traced": ("static", True)}

#: (side, the side it is compared with): the target is static over fixed
PAIRS = (("static", "fixed"), ("eureka", "fixed"), ("named", "fixed"), ("static", "named"),
         ("static_traced", "fixed_traced"))


def call_world(side: str, seed: int) -> World:
    """One side's world, built and warmed up (``WARMUP`` s without requests), with
    its open loop of requests starting now."""
    build, traced = SIDES[side]
    world = World(seed, trace=traced, network=Link(latency=LATENCY))
    BUILDS[build](world)
    world.run(WARMUP)
    OpenLoop(world, "mobile-clients", GATEWAY, CALL_RATE, body={"order": 1})
    return world


def _check(worlds: dict[str, World]) -> int:
    """The requests every side was sent (the same on every side, as the arrivals
    come from the open loop's own stream); every finished one must be answered."""
    issued = {side: w.request_count for side, w in worlds.items()}
    failed = {side: sum(1 for r in w.trace.requests if r[5] != "ok")
              for side, w in worlds.items()}
    if len(set(issued.values())) != 1 or any(failed.values()):
        raise RuntimeError(f"the sides differ: requests {issued}, not answered {failed}")
    return next(iter(issued.values()))


def run_calls(n: int, seed: int, sides: list[str],
              slices: int = SLICES) -> dict[str, float]:
    """CPU seconds per request of each side, run in turn a slice of simulated time at a time.

    Slicing changes nothing in a run (SimPy resumes where it stopped).  The
    warm-up (building, Eureka's first fetches and cache refreshes) is not
    timed: what is timed is ``n`` requests' worth of the steady state.
    """
    span = n / CALL_RATE
    gc.collect()
    worlds = {side: call_world(side, seed) for side in sides}
    spent = dict.fromkeys(sides, 0.0)
    for k in range(1, slices + 1):
        order = sides[k % len(sides):] + sides[:k % len(sides)]
        for side in order:
            t0 = time.process_time()
            worlds[side].run(WARMUP + span * k / slices)
            spent[side] += time.process_time() - t0
    total = _check(worlds)
    return {side: spent[side] / total for side in sides} | {"requests": total}


def _one_side(side: str, n: int) -> int:
    """Build and run one side (a child of --instructions); the requests sent."""
    world = call_world(side, 1)
    world.run(WARMUP + n / CALL_RATE)
    return _check({side: world})


def instructions(n1: int = 500, n2: int = 2_500,
                 sides: tuple[str, ...] = ("fixed", "named", "static", "eureka")
                 ) -> dict[str, Any]:
    """Instructions per request of each side, counted by valgrind (cachegrind).

    Each side runs alone in a child process under valgrind with ``n1`` and
    then ``n2`` requests' worth of simulated time; the difference over
    ``n2 - n1`` is what one more request costs (the arrivals are Poisson,
    so the requests differ a little from ``n``: the count is per
    ``n2 - n1`` expected requests).  It does not depend on the machine's
    load, but it counts work, not cache misses.  Needs ``valgrind``.
    """
    from _valgrind import instructions_per_unit  # beside this script

    per_request = instructions_per_unit(__file__, sides, n1, n2)
    out: dict[str, Any] = {f"{side}_instructions_per_request": v
                           for side, v in per_request.items()}
    for side, base in PAIRS:
        if side in per_request and base in per_request:
            out[f"instructions_{side}_over_{base}"] = per_request[side] / per_request[base]
    return out


# -- measuring -----------------------------------------------------------------
def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _peak_rss_mb() -> float:
    """This process's peak resident memory, in MB (NaN where unknown)."""
    try:
        import resource
    except ImportError:
        return float("nan")
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 / (1024 if sys.platform == "darwin" else 1)


def main(reps: int = 3, quick: bool = False, valgrind: bool | None = None) -> dict[str, Any]:
    """Both measurements, ``reps`` interleaved repetitions; medians and ratios.

    Each repetition runs the day (at ``DAY_RATE``), the base day (at
    ``BASE_RATE``) and the call sides, starting with the next one each
    time.  ``quick``: an hour instead of a day and ``QUICK_CALL_REQUESTS``
    calls.  ``valgrind`` None: count instructions if valgrind is on the
    PATH (not in quick mode).
    """
    until = QUICK_UNTIL if quick else DAY
    n = QUICK_CALL_REQUESTS if quick else CALL_REQUESTS
    out: dict[str, Any] = {"load_average_at_start": _load(), "instances": INSTANCES,
                           "simulated_s": until, "request_rate": DAY_RATE,
                           "base_request_rate": BASE_RATE, "call_requests_expected": n,
                           "call_rate": CALL_RATE}
    days: dict[str, list[dict[str, float]]] = {"full": [], "base": []}
    calls: list[dict[str, float]] = []
    sides = list(SIDES)
    jobs: list[tuple[str, Callable[[int], None]]] = [
        ("full", lambda seed: days["full"].append(day(until, DAY_RATE, seed))),
        ("base", lambda seed: days["base"].append(day(until, BASE_RATE, seed))),
        ("calls", lambda seed: calls.extend(run_calls(n, CALL_RUNS * seed + k, sides)
                                            for k in range(CALL_RUNS))),
    ]
    for rep in range(reps):
        for _name, job in jobs[rep % len(jobs):] + jobs[:rep % len(jobs)]:
            job(rep + 1)
    # -- part 1
    full, base = days["full"], days["base"]
    first = full[0]
    out["day_requests"] = first["requests"]
    out["day_messages"] = first["messages"]
    out["day_discovery_messages"] = first["discovery_messages"]
    out["day_events"] = first["events"]
    for clock in ("wall", "cpu"):
        out[f"day_{clock}_s_median"] = statistics.median(r[clock] for r in full)
        out[f"day_{clock}_s_lowest"] = min(r[clock] for r in full)
        out[f"day_{clock}_s_highest"] = max(r[clock] for r in full)
        out[f"base_day_{clock}_s_median"] = statistics.median(r[clock] for r in base)
    out["discovery_message_share"] = first["discovery_messages"] / first["messages"]
    d_msg, _ = split(first, base[0], "messages")
    out["discovery_message_share_by_split"] = d_msg / first["messages"]
    d_ev, e_ev = split(first, base[0], "events")
    out["events_per_request"] = e_ev
    out["discovery_events"] = d_ev
    out["discovery_event_share"] = d_ev / first["events"] if first["events"] else float("nan")
    # CPU split per repetition (the same seed's pair), median share
    cpu_shares = []
    for f, b in zip(full, base, strict=True):
        d_cpu, _ = split(f, b, "cpu")
        cpu_shares.append(d_cpu / f["cpu"])
    out["discovery_cpu_share_median"] = statistics.median(cpu_shares)
    # -- part 2
    out["call_requests"] = calls[0]["requests"]
    for side in sides:
        out[f"{side}_us_per_request_median"] = statistics.median(c[side] for c in calls) * 1e6
    for side, ref in PAIRS:
        ratios = [c[side] / c[ref] for c in calls]
        out[f"ratio_{side}_over_{ref}_cpu_median"] = statistics.median(ratios)
        out[f"ratio_{side}_over_{ref}_cpu_lowest"] = min(ratios)
        out[f"ratio_{side}_over_{ref}_cpu_highest"] = max(ratios)
    if valgrind is None:
        valgrind = not quick and shutil.which("valgrind") is not None
    if valgrind:
        out |= instructions()
    out["peak_rss_mb"] = _peak_rss_mb()
    out["load_average_at_end"] = _load()
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--side"]:  # one run of one side (a child of --instructions)
        want = int(args[2])
        sys.exit(0 if _one_side(args[1], want) > 0 else 1)
    if args[:1] == ["--instructions"]:
        results = instructions(*(int(a) for a in args[1:3]))
    elif args[:1] == ["--quick"]:
        results = main(1, quick=True)
    else:
        results = main(int(args[0]) if args else 3)
    for key, value in results.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
