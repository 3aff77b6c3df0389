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
  out the latency and puts the message in the receiver's Store).  A
  second, leaner variant (``bare_lean``) sends each hop as one timeout
  whose callback hands the message over, so no hop costs a process: the
  least a SimPy model with these hops can do.
* **simcomm** -- ``simcomm.messaging``: a ``Broker`` with the routing
  rate, a ``point_to_point`` queue, a ``Producer`` with a count, and four
  ``Consumer`` nodes with manual acks and the prefetch; every publish,
  delivery and ack is a ``Message`` through the ``Network``.  Run with the
  trace on (every message event and ``trace.mq`` row recorded) and off.

Each repetition runs every side once, in turn, so the rest of a shared
machine's load falls on all alike; we report the median CPU time per
message of each side, the ratio of simcomm's to bare SimPy's (target
<= 2x), its lowest and highest over the repetitions, and the peak memory
per message of one run of each side under :mod:`tracemalloc` (the peak of
everything allocated from building the model to the end of the run,
divided by the messages).  Each side also reports the messages consumed and
their mean publish -> consume latency: the two models must agree (the
random draws differ, the distributions do not).

    python benchmarks/bench_messaging.py            # 5 repetitions of 200 000
    python benchmarks/bench_messaging.py 3 20000    # repetitions, messages
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

MESSAGES = 200_000
RATE = 80.0  # publishes per second
CONSUMERS = 4
SERVICE_MEAN = 0.04  # s per message on a consumer: 4 consumers at 80/s are busy 0.8
UTILISATION = RATE * SERVICE_MEAN / CONSUMERS
LATENCY = 0.001  # s, every hop: publish, delivery, ack
ROUTING_RATE = 5000.0  # publishes per second the broker can route
PREFETCH = 10  # unacknowledged deliveries a consumer may hold


# -- bare SimPy ------------------------------------------------------------
def bare_simpy(n: int, seed: int, lean: bool = False) -> tuple[int, float]:
    """The model in plain SimPy; returns (messages consumed, mean latency).

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
    latencies: list[float] = []
    next_consumer = 0

    def cable(value: Any, store: simpy.Store):
        yield env.timeout(LATENCY)
        store.put(value)

    def hop_cable(value: Any, store: simpy.Store, _sink: Callable[[Any], Any]) -> None:
        env.process(cable(value, store))

    def hop_lean(value: Any, _store: simpy.Store, sink: Callable[[Any], Any]) -> None:
        env.timeout(LATENCY).callbacks.append(lambda _ev: sink(value))

    hop = hop_lean if lean else hop_cable

    def dispatch() -> None:
        """Round-robin over the consumers with room in their window."""
        nonlocal next_consumer
        while ready:
            for k in range(CONSUMERS):
                c = (next_consumer + k) % CONSUMERS
                if unacked[c] < PREFETCH:
                    break
            else:
                return
            next_consumer = (c + 1) % CONSUMERS
            unacked[c] += 1
            inbox = inboxes[c]
            hop(ready.popleft(), inbox, inbox.put)

    def on_ack(c: int) -> None:
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
            latencies.append(env.now - published)
            hop(c, ack_inbox, on_ack)

    env.process(producer())
    env.process(broker())
    if not lean:
        env.process(broker_acks())
    for c in range(CONSUMERS):
        env.process(consumer(c))
    env.run()
    return len(latencies), sum(latencies) / len(latencies)


def bare_lean(n: int, seed: int) -> tuple[int, float]:
    return bare_simpy(n, seed, lean=True)


SIDES: dict[str, Callable[[int, int], tuple[int, float]]] = {
    "bare": bare_simpy,
    "bare_lean": bare_lean,
}


# -- measuring -------------------------------------------------------------
def _timed(side: str, n: int, seed: int) -> tuple[float, int, float]:
    """CPU seconds per message, messages consumed and mean latency of one run."""
    gc.collect()
    t0 = time.process_time()
    count, latency = SIDES[side](n, seed)
    return (time.process_time() - t0) / count, count, latency


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
    for rep in range(reps):
        for side in SIDES:
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


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    n = int(sys.argv[2]) if len(sys.argv) > 2 else MESSAGES
    for key, value in main(reps, n).items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
