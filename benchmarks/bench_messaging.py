"""simcomm's messaging overhead over bare SimPy: producer -> broker queue -> 4 consumers.

One model, written twice and run side by side in this one process:

* a producer publishes ``MESSAGES`` messages as a Poisson stream
  (``RATE``/s) to a broker, over a link of ``LATENCY`` s;
* the broker spends ``1 / ROUTING_RATE`` s of its one CPU routing each
  publish (first come first served) and puts it on one queue;
* the queue dispatches round-robin over ``CONSUMERS`` consumers, skipping
  a consumer that holds ``PREFETCH`` unacknowledged deliveries (RabbitMQ's
  ``basic.qos`` prefetch count); each delivery crosses a ``LATENCY`` link;
* each consumer handles one delivery at a time (exponential service time,
  mean ``SERVICE_MEAN``, so the consumers are busy ``UTILISATION`` of the
  time) and then acks manually: the ack crosses a ``LATENCY`` link back,
  and when the broker has it the consumer's window opens again.

The two sides:

* **bare SimPy** -- Stores and processes and nothing else: a process for
  the producer, the broker's CPU and each consumer, a ``simpy.Store`` for
  the broker's inbox and each consumer's inbox, and the network hops as
  the SimPy documentation's ``Cable`` (a process per message that waits
  out the latency and puts the message in the receiver's Store; acks go
  to a Store the broker's ack process reads, and are free, as simcomm's
  broker takes them without routing cost).  A second, leaner variant
  (``bare_lean``) sends each hop as one timeout whose callback hands the
  message over (an ack straight to the broker's window bookkeeping), so
  no hop costs a process: the least a SimPy model with these hops and
  these processes can do.
* **simcomm** -- ``simcomm.messaging``: a ``Broker`` with the routing
  rate, a ``point_to_point`` queue, a ``Producer`` with a count, and four
  ``Consumer`` nodes with manual acks and the prefetch; every publish,
  delivery and ack is a ``Message`` through the ``Network``.  Run with the
  trace on (every message event and ``trace.mq`` row recorded) and off.

The bare side keeps what it needs to be checked -- a count and a sum of
latencies -- and no per-message record; simcomm with the trace keeps every
row a Result is built from (the message ledger, ``trace.mq``, queue depths
and worker pools), without it only counters.

Each repetition runs every side once, in turn (starting with the next side
each time), so the rest of a shared machine's load falls on all alike; we
report the median CPU time per message of each side (building the model
and running it; no DataFrame is built), the ratio of simcomm's to bare
SimPy's within each repetition -- median (target <= 2x), lowest and
highest -- and the peak memory per message of one run of each side under
:mod:`tracemalloc` (the peak of everything allocated from building the
model to the end of the run, divided by the messages: for a side that
keeps no per-message record it is its in-flight state, and shrinks as the
run grows).  Every side must consume every message, and the mean publish
-> consume latency of each is printed: the models agree (the random draws
differ, the distributions do not; without a trace simcomm reports none).

CPU time on a shared machine is noisy: one repetition's ratio can be a
third off the next one's.  ``--instructions`` counts instead (valgrind):
the instructions one more message costs on each side, the same on every
run.  simcomm's ratios come out lower by that count than by time: it
touches more memory per message (an envelope, a delivery and three
network messages, and with the trace about 2 kB of rows kept, written to
fresh cache lines), which costs time but no instructions.

    python benchmarks/bench_messaging.py            # 5 repetitions of 200 000
    python benchmarks/bench_messaging.py 3 20000    # repetitions, messages
    python benchmarks/bench_messaging.py --instructions   # counted by valgrind
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from simcomm.engine import COMMAND, Exponential, Link, World
from simcomm.messaging import Broker, Consumer, Producer

MESSAGES = 200_000
RATE = 80.0  # publishes per second
CONSUMERS = 4
SERVICE_MEAN = 0.04  # s per message on a consumer: 4 consumers at 80/s are busy 0.8
UTILISATION = RATE * SERVICE_MEAN / CONSUMERS
LATENCY = 0.001  # s, every hop: publish, delivery, ack
ROUTING_RATE = 5000.0  # publishes per second the broker can route
PREFETCH = 10  # unacknowledged deliveries a consumer may hold


# -- bare SimPy ------------------------------------------------------------
def bare_simpy(n: int, seed: int, lean: bool = False) -> tuple[int, Callable[[], float]]:
    """The model in plain SimPy, run; returns (messages consumed, their mean latency).

    ``lean=False``: every hop is a Cable process (the SimPy docs' example);
    ``lean=True``: every hop is one timeout with a callback.
    """
    env = simpy.Environment()
    rng = random.Random(seed)
    routing = 1.0 / ROUTING_RATE
    service_rate = 1.0 / SERVICE_MEAN
    broker_inbox = simpy.Store(env)
    ack_inbox = simpy.Store(env)
    inboxes = [simpy.Store(env) for _ in range(CONSUMERS)]
    ready: deque[tuple[int, float]] = deque()  # the queue: (message id, published)
    unacked = [0] * CONSUMERS
    active = deque(range(CONSUMERS))  # consumers with room in their window
    done = [0, 0.0]  # messages consumed, sum of their publish -> consume latencies

    def cable(value: Any, store: simpy.Store):
        yield env.timeout(LATENCY)
        store.put(value)

    def hop_cable(value: Any, store: simpy.Store, _sink: Callable[[Any], Any]) -> None:
        env.process(cable(value, store))

    def hop_lean(value: Any, _store: simpy.Store, sink: Callable[[Any], Any]) -> None:
        env.timeout(LATENCY).callbacks.append(lambda _ev: sink(value))

    hop = hop_lean if lean else hop_cable

    def dispatch() -> None:
        """Deliver ready messages round-robin over the consumers with room.

        ``active`` holds the consumers with room in their window, first come
        first served: each delivery takes the first and puts it back at the
        end if it still has room; an ack puts a blocked one back at the end
        (RabbitMQ's ``rabbit_queue_consumers``, as simcomm's Queue does).
        """
        while active and ready:
            c = active.popleft()
            unacked[c] += 1
            if unacked[c] < PREFETCH:
                active.append(c)
            inbox = inboxes[c]
            hop(ready.popleft(), inbox, inbox.put)

    def on_ack(c: int) -> None:
        if unacked[c] == PREFETCH:
            active.append(c)
        unacked[c] -= 1
        dispatch()

    def producer():
        for i in range(n):
            yield env.timeout(rng.expovariate(RATE))
            hop((i, env.now), broker_inbox, broker_inbox.put)

    def broker():
        while True:
            msg = yield broker_inbox.get()
            yield env.timeout(routing)
            ready.append(msg)
            dispatch()

    def broker_acks():
        while True:
            on_ack((yield ack_inbox.get()))

    def consumer(c: int):
        inbox = inboxes[c]
        while True:
            _mid, published = yield inbox.get()
            yield env.timeout(rng.expovariate(service_rate))
            done[0] += 1
            done[1] += env.now - published
            hop(c, ack_inbox, on_ack)

    env.process(producer())
    env.process(broker())
    if not lean:
        env.process(broker_acks())
    for c in range(CONSUMERS):
        env.process(consumer(c))
    env.run()
    return done[0], lambda: done[1] / done[0]


def bare_lean(n: int, seed: int) -> tuple[int, Callable[[], float]]:
    return bare_simpy(n, seed, lean=True)


# -- simcomm -----------------------------------------------------------------
def simcomm_world(n: int, seed: int, trace: bool) -> tuple[World, list[Consumer]]:
    """The model in simcomm, built and not yet run; returns (world, consumers)."""
    world = World(seed, trace=trace, network=Link(latency=LATENCY))
    broker = Broker(world, routing_rate=ROUTING_RATE)
    queue = broker.point_to_point("work")
    Producer(world, "producer", broker, queue, rate=RATE, count=n, kind=COMMAND)
    consumers = [Consumer(world, f"consumer-{i}", broker, queue, prefetch=PREFETCH,
                          service_time=Exponential(SERVICE_MEAN))
                 for i in range(1, CONSUMERS + 1)]
    return world, consumers


def _until(n: int) -> float:
    """Long enough for the last of ``n`` publishes (well past its mean time) to drain."""
    return n / RATE * 1.1 + 60.0


def with_simcomm(n: int, seed: int, trace: bool = True) -> tuple[int, Callable[[], float]]:
    """The model in simcomm, run; returns (messages consumed, their mean latency).

    The latency is read from ``trace.mq`` when asked for, after the timing
    (it is analysis, not simulation); without the trace it is NaN.
    """
    world, consumers = simcomm_world(n, seed, trace)
    world.run(_until(n))
    count = sum(c.consumed for c in consumers)

    def latency() -> float:
        if not trace:
            return math.nan
        published: dict[int, float] = {}
        total = 0.0
        for time_, event, mid, *_rest in world.trace.mq:
            if event == "publish":
                published[mid] = time_
            elif event == "consume":
                total += time_ - published[mid]
        return total / count

    return count, latency


def simcomm_untraced(n: int, seed: int) -> tuple[int, Callable[[], float]]:
    return with_simcomm(n, seed, trace=False)


SIDES: dict[str, Callable[[int, int], tuple[int, Callable[[], float]]]] = {
    "bare": bare_simpy,
    "bare_lean": bare_lean,
    "simcomm": with_simcomm,
    "simcomm_untraced": simcomm_untraced,
}


# -- measuring -------------------------------------------------------------
def _timed(side: str, n: int, seed: int) -> tuple[float, int, float]:
    """CPU seconds per message, messages consumed and mean latency of one run."""
    gc.collect()
    t0 = time.process_time()
    count, latency = SIDES[side](n, seed)
    elapsed = time.process_time() - t0
    if count != n:
        raise RuntimeError(f"{side} consumed {count} of {n} messages: the models differ")
    return elapsed / count, count, latency()


def peak_bytes_per_message(side: str, n: int, seed: int = 1) -> float:
    """Peak traced memory of one run (model built and run) per message consumed."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        count, _ = SIDES[side](n, seed)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / count


def main(reps: int = 5, n: int = MESSAGES) -> dict[str, Any]:
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    out: dict[str, Any] = {"messages": n}
    names = list(SIDES)
    for rep in range(reps):
        # each repetition starts with the next side, so none always runs first
        for side in names[rep % len(names):] + names[:rep % len(names)]:
            per_msg, count, latency = _timed(side, n, seed=rep + 1)
            times[side].append(per_msg)
            if rep == 0:
                out[f"{side}_consumed"] = count
                out[f"{side}_mean_latency_s"] = latency
    med = {side: statistics.median(t) for side, t in times.items()}
    for side in SIDES:
        out[f"{side}_us_per_message_median"] = med[side] * 1e6
    for side in SIDES:
        if side.startswith("bare"):
            continue
        for base in ("bare", "bare_lean"):
            ratios = [s / b for s, b in zip(times[side], times[base], strict=True)]
            out[f"ratio_{side}_over_{base}_median"] = statistics.median(ratios)
            out[f"ratio_{side}_over_{base}_lowest"] = min(ratios)
            out[f"ratio_{side}_over_{base}_highest"] = max(ratios)
    for side in SIDES:
        out[f"{side}_peak_bytes_per_message"] = peak_bytes_per_message(side, n)
    return out


def instructions(n1: int = 1_000, n2: int = 6_000) -> dict[str, Any]:
    """Instructions per message of each side, counted by valgrind (cachegrind).

    Each side runs alone in a child process under valgrind with ``n1`` and
    then ``n2`` messages; the difference of the two counts over ``n2 - n1``
    is what one more message costs, without the interpreter's start-up and
    the imports.  Unlike CPU time the count does not depend on what else
    the machine is doing, so the ratios are the same on every run -- but
    they count work, not the cache misses a larger working set adds, so
    they come out below the time ratios.  Needs ``valgrind`` on the PATH.
    """
    from _valgrind import instructions_per_unit  # beside this script

    per_msg = instructions_per_unit(__file__, SIDES, n1, n2)
    out: dict[str, Any] = {f"{side}_instructions_per_message": v for side, v in per_msg.items()}
    for side in SIDES:
        if not side.startswith("bare"):
            for base in ("bare", "bare_lean"):
                out[f"instructions_{side}_over_{base}"] = per_msg[side] / per_msg[base]
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--side"]:  # one run of one side (a child of --instructions)
        count, _ = SIDES[args[1]](int(args[2]), 1)
        sys.exit(0 if count == int(args[2]) else 1)
    if args[:1] == ["--instructions"]:
        results = instructions(*(int(a) for a in args[1:3]))
    else:
        reps = int(args[0]) if args else 5
        results = main(reps, int(args[1]) if len(args) > 1 else MESSAGES)
    for key, value in results.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
