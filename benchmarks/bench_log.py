"""simcomm's partitioned-log overhead over bare SimPy: producer -> 3 brokers -> a group.

One model (issue 9 §11), written twice and run side by side in this one process:

* one producer sends ``RECORDS`` keyed records as a Poisson stream
  (``RATE``/s, from ``START`` s, once the group has formed), each key
  drawn from ``KEYS`` order ids, to a topic of ``PARTITIONS`` partitions
  (Kafka's default partitioner: murmur2 of the key); it batches per
  partition (``LINGER`` = ``linger.ms``, batches of at most ``BATCH_SIZE``
  bytes of ``RECORD_SIZE``-byte records = ``batch.size``), at most
  ``MAX_IN_FLIGHT`` requests in flight per leader connection
  (``max.in.flight.requests.per.connection``), ``acks=all``;
* ``BROKERS`` brokers hold the topic with replication factor 3: partition
  ``p``'s leader is broker ``p mod 3`` and the other two follow it, each
  follower long-polling its leader (``replica.fetch.wait.max.ms``, 0.5 s):
  a batch is appended by the leader, which answers the followers' parked
  fetches with it; each follower appends it and fetches again from its new
  log end, which tells the leader how far it has copied; the high watermark
  (HW) is the smallest log end over the three, and when it covers the batch
  the leader acknowledges the produce request (acks=all);
* ``CONSUMERS`` consumers of one group share the partitions (range: three
  each); each sends one long-polled fetch (``fetch.max.wait.ms`` 0.5 s, up
  to ``MAX_POLL`` records, only below the HW) per assigned partition to its
  leader, the next one when the partition's fetched records have been
  handed out; its poll loop takes up to ``MAX_POLL`` buffered records
  (``max.poll.records``) and processes them one at a time (``SERVICE`` s of
  work each), committing its positions every ``AUTO_COMMIT`` s
  (``enable.auto.commit``) to the group's coordinator;
* every hop -- produce request, follower fetch and answer, acknowledgement,
  consumer fetch and answer, commit and its answer -- crosses a
  ``LATENCY`` s link.

The two sides:

* **bare SimPy** -- the least a SimPy model with these hops can do: a
  process for the producer's arrivals and one per consumer's poll loop;
  every hop is one ``env.timeout(LATENCY)`` whose callback hands the
  message over (no process per hop, record or request); logs are lists of
  ``(record id, key, produced)`` tuples; acks, HW and long polls are plain
  bookkeeping.  It keeps what it needs to be checked -- counts and a sum of
  latencies -- and no per-record record besides the logs themselves.
* **simcomm** -- ``simcomm.messaging``: a ``LogCluster`` of 3 brokers, a
  topic of 12 partitions with replication factor 3, a ``LogProducer`` with
  ``acks="all"`` (idempotent, Kafka's default) fed by one process, and 4
  ``GroupConsumer`` members of one group (range assignor, auto commit,
  ``auto_offset_reset="earliest"``); every request and answer is a
  ``Message`` through the ``Network``, heartbeats and the group's join and
  sync included.  Run with the trace on (every message event and every
  ``trace.records`` row: produce, append, ack, apply, commit ...) and off.

Each repetition runs every side once, in turn (starting with the next side
each time), so the rest of a shared machine's load falls on all alike; we
report the median wall time and CPU time of each side (building the model
and running it; no DataFrame is built), records per wall second, the ratio
of simcomm's time to bare SimPy's within each repetition -- median (target
<= 2x), lowest and highest -- and the peak memory per record of one run of
each side under :mod:`tracemalloc` (everything allocated from building the
model to the end of the run -- the logs of all three replicas included --
divided by the records).  Every side must consume every record, and the
mean produce -> consume latency of each is printed: the models agree (the
random draws differ, the distributions do not).

    python benchmarks/bench_log.py              # 3 repetitions of 1 000 000 records
    python benchmarks/bench_log.py 5 200000     # repetitions, records
    python benchmarks/bench_log.py --quick      # 1 repetition of 20 000 (< 1 min)
    python benchmarks/bench_log.py --instructions   # counted by valgrind
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

from simcomm.engine import Link, World
from simcomm.messaging import GroupConsumer, LogCluster, LogProducer, partition_for_key

RECORDS = 1_000_000
RATE = 100_000.0  # records per second from the producer
KEYS = 10_000  # order ids the records' keys are drawn from
PARTITIONS = 12
BROKERS = 3  # replication factor 3: every broker holds every partition
CONSUMERS = 4
LATENCY = 0.001  # s, every hop
LINGER = 0.005  # linger.ms (Kafka 4.0's default 5 ms)
BATCH_SIZE = 16384  # batch.size, bytes
RECORD_SIZE = 100  # bytes per record
PER_BATCH = BATCH_SIZE // RECORD_SIZE  # records a batch holds
MAX_IN_FLIGHT = 5  # max.in.flight.requests.per.connection
REPLICA_WAIT = 0.5  # replica.fetch.wait.max.ms
FETCH_WAIT = 0.5  # fetch.max.wait.ms
MAX_POLL = 500  # max.poll.records (and records per consumer fetch)
SERVICE = 20e-6  # s of work per record on a consumer: 4 consumers at 100 000/s are busy 0.5
AUTO_COMMIT = 5.0  # auto.commit.interval.ms
START = 4.0  # s: the producer starts once the group has formed (its initial rebalance delay)
QUICK_RECORDS = 20_000


def _until(n: int) -> float:
    """Long enough for the last of ``n`` records (well past its mean time) to be consumed."""
    return START + n / RATE * 1.05 + 5.0


# -- bare SimPy ------------------------------------------------------------
def bare_simpy(n: int, seed: int) -> tuple[int, Callable[[], float]]:
    """The model in plain SimPy, run; returns (records consumed, their mean latency)."""
    env = simpy.Environment()
    rng = random.Random(seed)
    timeout = env.timeout
    part_of = [partition_for_key(str(k), PARTITIONS) for k in range(KEYS)]
    leader_of = [p % BROKERS for p in range(PARTITIONS)]
    logs: list[list[tuple[int, int, float]]] = [[] for _ in range(PARTITIONS)]
    # the two followers' logs of each partition, and the leader's view of their log ends
    copies: list[list[list[tuple[int, int, float]]]] = [[[], []] for _ in range(PARTITIONS)]
    follower_leo = [[0, 0] for _ in range(PARTITIONS)]
    hw = [0] * PARTITIONS
    parked_followers: list[list[list[Any]]] = [[] for _ in range(PARTITIONS)]
    parked_consumers: list[list[list[Any]]] = [[] for _ in range(PARTITIONS)]
    waiting_acks: list[deque[tuple[int, list[Any]]]] = [deque() for _ in range(PARTITIONS)]
    queues: list[deque[list[Any]]] = [deque() for _ in range(PARTITIONS)]  # producer batches
    in_flight = [0] * BROKERS
    leader_parts = [[p for p in range(PARTITIONS) if leader_of[p] == b] for b in range(BROKERS)]
    acked = [0]
    committed: dict[int, int] = {}
    done = [0, 0.0]  # records consumed, sum of their produce -> consume latencies

    def hop(fn: Callable[..., None], *args: Any) -> None:
        timeout(LATENCY).callbacks.append(lambda _ev: fn(*args))

    # -- producer: batches [records, created, sent] per partition --
    def drain(b: int) -> None:
        now = env.now
        for p in leader_parts[b]:
            q = queues[p]
            while q and in_flight[b] < MAX_IN_FLIGHT:
                batch = q[0]
                if not (len(batch[0]) >= PER_BATCH or len(q) > 1
                        or now + 1e-9 >= batch[1] + LINGER):
                    break
                q.popleft()
                batch[2] = True
                in_flight[b] += 1
                hop(on_produce, p, batch)

    def linger_over(_ev: Any, p: int) -> None:
        drain(leader_of[p])

    def send(rid: int, key: int) -> None:
        p = part_of[key]
        now = env.now
        q = queues[p]
        batch = q[-1] if q else None
        if batch is None or batch[2] or len(batch[0]) >= PER_BATCH:
            batch = [[], now, False]
            q.append(batch)
            timeout(LINGER).callbacks.append(lambda ev, p=p: linger_over(ev, p))
        batch[0].append((rid, key, now))
        if len(batch[0]) >= PER_BATCH or len(q) > 1:
            drain(leader_of[p])

    def on_ack(p: int, batch: list[Any]) -> None:
        acked[0] += len(batch[0])
        b = leader_of[p]
        in_flight[b] -= 1
        drain(b)

    def producer():
        yield timeout(START)
        for rid in range(n):
            yield timeout(rng.expovariate(RATE))
            send(rid, rng.randrange(KEYS))

    # -- leader side --
    def on_produce(p: int, batch: list[Any]) -> None:
        log = logs[p]
        log.extend(batch[0])
        waiting_acks[p].append((len(log), batch))
        parked = parked_followers[p]
        if parked:
            parked_followers[p] = []
            for entry in parked:
                if entry[0]:
                    entry[0] = False
                    answer_follower(p, entry[1])

    def answer_follower(p: int, j: int) -> None:
        offset = follower_leo[p][j]
        hop(on_replica_data, p, j, logs[p][offset:offset + 10_000])

    def on_follower_fetch(p: int, j: int, offset: int) -> None:
        follower_leo[p][j] = offset
        log = logs[p]
        leo = len(log)
        new_hw = min(leo, *follower_leo[p])
        if new_hw > hw[p]:
            advance_hw(p, new_hw)
        if offset < leo:
            answer_follower(p, j)
        else:
            entry = [True, j]
            parked_followers[p].append(entry)
            timeout(REPLICA_WAIT).callbacks.append(lambda _ev: expire_follower(p, entry))

    def expire_follower(p: int, entry: list[Any]) -> None:
        if entry[0]:
            entry[0] = False
            parked_followers[p] = [e for e in parked_followers[p] if e is not entry]
            answer_follower(p, entry[1])

    def advance_hw(p: int, new_hw: int) -> None:
        hw[p] = new_hw
        waiting = waiting_acks[p]
        while waiting and waiting[0][0] <= new_hw:
            hop(on_ack, p, waiting.popleft()[1])
        parked = parked_consumers[p]
        if parked:
            keep = []
            for entry in parked:
                if entry[1] < new_hw:
                    entry[0] = False
                    answer_consumer(p, entry[1], entry[2])
                elif entry[0]:
                    keep.append(entry)
            parked_consumers[p] = keep

    # -- follower side --
    def on_replica_data(p: int, j: int, records: list[tuple[int, int, float]]) -> None:
        copy = copies[p][j]
        copy.extend(records)
        hop(on_follower_fetch, p, j, len(copy))

    # -- consumer fetches --
    def on_consumer_fetch(p: int, offset: int, consumer: Consumer) -> None:
        if offset < hw[p]:
            answer_consumer(p, offset, consumer)
        else:
            entry = [True, offset, consumer]
            parked_consumers[p].append(entry)
            timeout(FETCH_WAIT).callbacks.append(lambda _ev: expire_consumer(p, entry))

    def expire_consumer(p: int, entry: list[Any]) -> None:
        if entry[0]:
            entry[0] = False
            parked_consumers[p] = [e for e in parked_consumers[p] if e is not entry]
            answer_consumer(p, entry[1], entry[2])

    def answer_consumer(p: int, offset: int, consumer: Consumer) -> None:
        end = min(hw[p], offset + MAX_POLL)
        hop(consumer.fetched, p, logs[p][offset:end])

    def on_commit(consumer: Consumer, positions: dict[int, int]) -> None:
        committed.update(positions)
        hop(consumer.commit_answered)

    class Consumer:
        """One member: its partitions' positions, buffers and the poll loop's wake-up."""

        def __init__(self, parts: list[int]) -> None:
            self.positions = dict.fromkeys(parts, 0)  # next offset to hand out
            self.fetch_at = dict.fromkeys(parts, 0)  # next offset to fetch
            self.buffers: dict[int, list[tuple[int, int, float]]] = {}
            self.ready: deque[int] = deque()
            self.inflight: set[int] = set()
            self.wake: simpy.Event | None = None
            for p in parts:
                self.fetch(p)

        def fetch(self, p: int) -> None:
            self.inflight.add(p)
            hop(on_consumer_fetch, p, self.fetch_at[p], self)

        def fetched(self, p: int, records: list[tuple[int, int, float]]) -> None:
            self.inflight.discard(p)
            if records:
                self.fetch_at[p] += len(records)
                self.buffers[p] = records
                self.ready.append(p)
                if self.wake is not None and not self.wake.triggered:
                    self.wake.succeed()
            else:
                self.fetch(p)

        def commit_answered(self) -> None:
            pass

        def take(self) -> list[tuple[int, int, float]]:
            room = MAX_POLL
            out: list[tuple[int, int, float]] = []
            while room and self.ready:
                p = self.ready.popleft()
                buf = self.buffers[p]
                if len(buf) > room:
                    recs, self.buffers[p] = buf[:room], buf[room:]
                    self.ready.appendleft(p)
                else:
                    recs = buf
                    del self.buffers[p]
                    self.fetch(p)
                self.positions[p] += len(recs)
                out.extend(recs)
                room -= len(recs)
            return out

        def loop(self):
            next_commit = AUTO_COMMIT
            while True:
                if env.now >= next_commit:
                    next_commit = env.now + AUTO_COMMIT
                    hop(on_commit, self, dict(self.positions))
                batch = self.take()
                if not batch:
                    self.wake = env.event()
                    yield self.wake
                    self.wake = None
                    continue
                for _rid, _key, produced in batch:
                    yield timeout(SERVICE)
                    done[0] += 1
                    done[1] += env.now - produced

    for j in range(2):  # the followers start fetching
        for p in range(PARTITIONS):
            hop(on_follower_fetch, p, j, 0)
    per = PARTITIONS // CONSUMERS
    for c in range(CONSUMERS):
        env.process(Consumer(list(range(c * per, (c + 1) * per))).loop())
    env.process(producer())
    env.run(until=_until(n))
    if acked[0] != n:
        raise RuntimeError(f"bare: {acked[0]} of {n} records acknowledged")
    return done[0], lambda: done[1] / done[0]


# -- simcomm -----------------------------------------------------------------
def simcomm_world(n: int, seed: int, trace: bool
                  ) -> tuple[World, LogCluster, LogProducer, list[GroupConsumer]]:
    """The model in simcomm, built and not yet run."""
    world = World(seed, trace=trace, network=Link(latency=LATENCY))
    cluster = LogCluster(world, brokers=BROKERS)
    cluster.create_topic("orders", PARTITIONS)  # replication factor min(3, brokers) = 3
    producer = LogProducer(world, "producer", cluster, "orders", acks="all", linger=LINGER,
                           batch_size=BATCH_SIZE, record_size=RECORD_SIZE,
                           max_in_flight=MAX_IN_FLIGHT)
    consumers = [GroupConsumer(world, f"consumer-{i}", cluster, "billing", "orders",
                               service_time=SERVICE, max_poll_records=MAX_POLL,
                               fetch_max_wait=FETCH_WAIT, auto_commit_interval=AUTO_COMMIT,
                               auto_offset_reset="earliest")
                 for i in range(1, CONSUMERS + 1)]
    rng = world.stream("bench:records")
    env = world.env
    send = producer.send

    def feed():
        timeout = env.timeout
        yield timeout(START)
        for _ in range(n):
            yield timeout(rng.expovariate(RATE))
            send(rng.randrange(KEYS))

    env.process(feed())
    return world, cluster, producer, consumers


def with_simcomm(n: int, seed: int, trace: bool = True) -> tuple[int, Callable[[], float]]:
    """The model in simcomm, run; returns (records consumed, their mean latency).

    The latency is read from ``trace.records`` (produce -> apply) when asked
    for, after the timing (it is analysis, not simulation); NaN without it.
    """
    world, _cluster, producer, consumers = simcomm_world(n, seed, trace)
    world.run(_until(n))
    if producer.acked != n:
        raise RuntimeError(f"simcomm: {producer.acked} of {n} records acknowledged")
    count = sum(c.applied for c in consumers)

    def latency() -> float:
        if not trace:
            return math.nan
        produced: dict[int, float] = {}
        total = 0.0
        for row in world.trace.records:
            if row[1] == "produce":
                produced[row[2]] = row[0]
            elif row[1] == "apply":
                total += row[0] - produced[row[2]]
        return total / count

    return count, latency


def simcomm_untraced(n: int, seed: int) -> tuple[int, Callable[[], float]]:
    return with_simcomm(n, seed, trace=False)


SIDES: dict[str, Callable[[int, int], tuple[int, Callable[[], float]]]] = {
    "bare": bare_simpy,
    "simcomm": with_simcomm,
    "simcomm_untraced": simcomm_untraced,
}


# -- measuring -------------------------------------------------------------
def _timed(side: str, n: int, seed: int) -> tuple[float, float, int, float]:
    """Wall and CPU seconds, records consumed and mean latency of one run."""
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    count, latency = SIDES[side](n, seed)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    if count != n:
        raise RuntimeError(f"{side} consumed {count} of {n} records: the models differ")
    return wall, cpu, count, latency()


def peak_bytes_per_record(side: str, n: int, seed: int = 1) -> float:
    """Peak traced memory of one run (model built and run) per record consumed."""
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


def main(reps: int = 3, n: int = RECORDS, memory_records: int | None = None) -> dict[str, Any]:
    """Run every side ``reps`` times, interleaved; medians, ratios and memory per record.

    ``memory_records``: the records of the tracemalloc runs (tracing makes a
    run several times slower; the peak per record barely depends on the
    size once the logs dominate) -- ``n`` when None.
    """
    wall: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    out: dict[str, Any] = {"records": n, "partitions": PARTITIONS, "consumers": CONSUMERS,
                           "replication_factor": BROKERS, "acks": "all"}
    names = list(SIDES)
    for rep in range(reps):
        # each repetition starts with the next side, so none always runs first
        for side in names[rep % len(names):] + names[:rep % len(names)]:
            w, c, count, latency = _timed(side, n, seed=rep + 1)
            wall[side].append(w)
            cpu[side].append(c)
            if rep == 0:
                out[f"{side}_consumed"] = count
                out[f"{side}_mean_latency_ms"] = latency * 1e3
    for side in SIDES:
        med = statistics.median(wall[side])
        out[f"{side}_wall_s_median"] = med
        out[f"{side}_cpu_s_median"] = statistics.median(cpu[side])
        out[f"{side}_records_per_wall_s"] = n / med
    for side in SIDES:
        if side == "bare":
            continue
        for clock, times in (("wall", wall), ("cpu", cpu)):
            ratios = [s / b for s, b in zip(times[side], times["bare"], strict=True)]
            out[f"ratio_{side}_over_bare_{clock}_median"] = statistics.median(ratios)
            out[f"ratio_{side}_over_bare_{clock}_lowest"] = min(ratios)
            out[f"ratio_{side}_over_bare_{clock}_highest"] = max(ratios)
    m = n if memory_records is None else memory_records
    out["memory_records"] = m
    for side in SIDES:
        out[f"{side}_peak_bytes_per_record"] = peak_bytes_per_record(side, m)
    return out


def instructions(n1: int = 2_000, n2: int = 12_000) -> dict[str, Any]:
    """Instructions per record of each side, counted by valgrind (cachegrind).

    Each side runs alone in a child process under valgrind with ``n1`` and
    then ``n2`` records; the difference of the two counts over ``n2 - n1``
    is what one more record costs, without the interpreter's start-up, the
    imports and the group's forming.  Unlike time, the count does not
    depend on what else the machine is doing (the ratios are the same on
    every run), but it counts work, not the cache misses of a larger
    working set.  Needs ``valgrind`` on the PATH.
    """
    from _valgrind import instructions_per_unit  # beside this script

    per_record = instructions_per_unit(__file__, SIDES, n1, n2)
    out: dict[str, Any] = {f"{side}_instructions_per_record": v
                           for side, v in per_record.items()}
    for side in SIDES:
        if side != "bare":
            out[f"instructions_{side}_over_bare"] = per_record[side] / per_record["bare"]
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--side"]:  # one run of one side (a child of --instructions)
        count, _ = SIDES[args[1]](int(args[2]), 1)
        sys.exit(0 if count == int(args[2]) else 1)
    if args[:1] == ["--instructions"]:
        results = instructions(*(int(a) for a in args[1:3]))
    elif args[:1] == ["--quick"]:
        results = main(1, QUICK_RECORDS)
    else:
        reps = int(args[0]) if args else 3
        results = main(reps, int(args[1]) if len(args) > 1 else RECORDS)
    for key, value in results.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
