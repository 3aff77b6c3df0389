"""Properties of the broker over generated runs (hypothesis).

Each example builds a broker with a few consumers (prefetch, workers, auto
or manual acks, handlers that sometimes reject), producers, and a random
schedule of faults -- consumer crashes and hangs, broker crashes and hangs
-- and checks, from ``trace.mq`` and what the broker holds at the end:

* **prefetch is never exceeded**: a manual-ack consumer never holds more
  unsettled deliveries than its prefetch (REFERENCE §4);
* **every copy is accounted for**: each copy put on a queue ends acked,
  dead-lettered, dropped with a reason, or still held (ready or unacked),
  and each publish reached the broker and was routed, or was lost on the
  way or with the broker (DESIGN principle 3);
* **at least once**: every acked copy was consumed (its handler finished)
  before the ack, by the consumer that acked it;
* **determinism**: the same seed gives the same trace (principle 4);
* **requeue keeps the original position**: a queue always hands out its
  oldest ready copy by enqueue order, however copies come back.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from simcomm.engine import Crash, Exponential, Hang, Link, World, install
from simcomm.messaging import (
    Broker,
    Consumer,
    Delivery,
    Envelope,
    Producer,
    Reject,
    ReplicatedBroker,
)
from simcomm.messaging.queues import Queue

# -- generated runs -------------------------------------------------------------------

consumer_st = st.fixed_dictionaries({
    "prefetch": st.integers(0, 4),
    "workers": st.integers(1, 2),
    "service": st.sampled_from([0.05, 0.3, 1.0]),
    "auto_ack": st.booleans(),
    "reject": st.sampled_from([0.0, 0.0, 0.2]),
    "own_handler": st.booleans(),  # False: the default handler (timers, no process)
})
fault_st = st.tuples(st.sampled_from(["crash", "hang"]), st.integers(-1, 3),
                     st.floats(1.0, 40.0), st.floats(0.5, 15.0))
run_st = st.fixed_dictionaries({
    "seed": st.integers(0, 10_000),
    "latency": st.sampled_from([None, 0.01, "exp"]),
    "routing_rate": st.sampled_from([None, 50.0]),
    "consumers": st.lists(consumer_st, min_size=1, max_size=4),
    "rate": st.sampled_from([2.0, 8.0]),
    "persistent": st.booleans(),
    "durable": st.booleans(),
    "max_length": st.sampled_from([None, None, 5]),
    "delivery_limit": st.sampled_from([None, 1]),
    "dlx": st.booleans(),
    "faults": st.lists(fault_st, max_size=4),
    "replicated": st.sampled_from([False, False, True]),
})


def build(p: dict) -> tuple[World, Broker, list[Consumer], list[Producer]]:
    latency = Exponential(0.01) if p["latency"] == "exp" else p["latency"]
    world = World(seed=p["seed"], network=Link(latency=latency) if latency else None)
    broker: Any
    if p["replicated"]:
        broker = ReplicatedBroker(world, replicas=2, failover_after=2.0,
                                  routing_rate=p["routing_rate"], reconnect_interval=2.0)
    else:
        broker = Broker(world, routing_rate=p["routing_rate"], reconnect_interval=2.0)
    if p["dlx"]:
        broker.declare_exchange("dlx", "fanout")
        broker.declare_queue("dead")
        broker.bind("dead", "dlx")
    broker.point_to_point("work", durable=p["durable"], max_length=p["max_length"],
                          delivery_limit=p["delivery_limit"],
                          dead_letter_exchange="dlx" if p["dlx"] else None)
    events = broker.publish_subscribe("events")
    consumers = []
    for i, c in enumerate(p["consumers"]):
        rng = world.stream(f"test:reject:{i}")

        def handler(ctx, d, c=c, rng=rng):
            yield ctx.work(c["service"])
            if c["reject"] and rng.random() < c["reject"]:
                raise Reject(requeue=rng.random() < 0.5)

        sub = {} if i % 2 == 0 else {"queue": events, "subscription": f"s{i % 3}",
                                     "durable": i != 3}
        queue = sub.pop("queue", "work")
        own = c["own_handler"] or c["reject"] > 0
        consumers.append(Consumer(world, f"c{i}", broker, queue, prefetch=c["prefetch"],
                                  workers=c["workers"], auto_ack=c["auto_ack"],
                                  handler=handler if own else None,
                                  service_time=c["service"], **sub))
    producers = [Producer(world, "p-work", broker, "work", rate=p["rate"],
                          persistent=p["persistent"], count=150),
                 Producer(world, "p-events", broker, events, rate=p["rate"] / 2,
                          persistent=p["persistent"], count=60)]
    names = ["broker-1" if p["replicated"] else "broker"] + [c.name for c in consumers]
    faults = []
    for kind, who, at, duration in p["faults"]:
        node = names[min(who + 1, len(names) - 1)]
        faults.append((Crash if kind == "crash" else Hang)(node, at=at, duration=duration))
    install(world, faults)
    return world, broker, consumers, producers


def run(p: dict, until: float = 80.0):
    world, broker, consumers, producers = build(p)
    world.run(until=until)
    return world, broker, consumers, producers


# -- prefetch --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(run_st)
def test_a_manual_ack_consumer_never_holds_more_than_its_prefetch(p):
    world, _broker, consumers, _ = run(p)
    limit = {c.name: c.prefetch for c in consumers if not c.auto_ack and c.prefetch}
    held: dict[str, set] = defaultdict(set)
    where: dict[tuple, str] = {}
    for _t, event, mid, channel, node, _detail in world.trace.mq:
        copy = (mid, channel)
        if event == "deliver" and node in limit:
            held[node].add(copy)
            where[copy] = node
            assert len(held[node]) <= limit[node], (node, held[node])
        elif event in ("ack", "nack", "requeue", "dead_letter", "drop") and copy in where:
            held[where.pop(copy)].discard(copy)


# -- the ledger ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(run_st)
# a handler that fails during a hang, then a crash before the hang ends: the
# auto-acked message is lost when its handler fails, not at the (never-come) unhang
@example({"seed": 2436, "latency": None, "routing_rate": None,
          "consumers": [{"prefetch": 0, "workers": 1, "service": 0.05, "auto_ack": True,
                         "reject": 0.2, "own_handler": False}],
          "rate": 2.0, "persistent": False, "durable": False, "max_length": None,
          "delivery_limit": None, "dlx": False,
          "faults": [("crash", 0, 25.0, 1.0), ("hang", 0, 24.0, 1.0)],
          "replicated": False})
def test_every_published_copy_is_accounted_for_across_crashes(p):
    world, broker, consumers, producers = run(p)
    mq = world.trace.mq
    members = getattr(broker, "members", [broker])
    names = {m.name for m in members}
    queues = set(broker.queues) | {r[3] for r in mq if r[1] == "enqueue"}
    events = Counter(r[1] for r in mq)
    copy_drops = Counter(r[5] for r in mq if r[1] == "drop" and r[4] in names
                         and r[3] in queues and r[5] != "queue_full")
    held = sum(len(m.contents()) for m in members)
    # copies: each one put on a queue is acked, dead-lettered, dropped or held
    assert events["enqueue"] == (events["ack"] + events["dead_letter"]
                                 + sum(copy_drops.values()) + held)
    # publishes: routed by the broker, lost with it, lost on the network, or on their way
    published = {r[2] for r in mq if r[1] == "publish"}
    assert len(published) == sum(p_.published for p_ in producers)
    lost_with_broker = {r[2] for r in mq if r[1] == "drop" and r[5] == "broker_crash"
                        and r[3] not in queues}
    net = world.trace.messages
    sent = {r[2] for r in net if r[1] == "send" and r[2] in published}
    arrived = {r[2] for r in net if r[1] == "deliver" and r[2] in published}
    lost_on_network = {r[2] for r in net if r[1] == "drop" and r[2] in published}
    waiting = {m.body.message_id for b in members
               for m in (*b.queue, *b._current.values(), *b._held) if m.kind != "control"}
    assert sent == published  # every publish went out (to whichever member led)
    assert broker.stats["published"] + len(lost_with_broker) + len(waiting) == len(arrived)
    assert len(arrived) + len(lost_on_network) + world.network.in_flight >= len(published)
    assert arrived | lost_on_network == published - in_flight_ids(world, published)
    # auto-acked copies: consumed, lost by their consumer, or never received
    auto = {c.name for c in consumers if c.auto_ack}
    auto_acked = Counter((r[2], r[3]) for r in mq if r[1] == "ack" and r[5] == "auto")
    ended = Counter((r[2], r[3]) for r in mq if r[4] in auto and (
        r[1] == "consume" or (r[1] == "drop" and r[5] in ("consumer_crash", "rejected"))))
    assert ended <= auto_acked
    if not any(kind == "crash" and who == -1 for kind, who, *_ in p["faults"]):
        # with the broker up to hear every reset, an auto-acked copy not ended
        # is still with its consumer (or on its way, or its reset on the way back)
        missing = sum((auto_acked - ended).values())
        with_consumers = sum(len(c.queue) + len(c._current) + len(c._frozen)
                             for c in consumers if c.auto_ack)
        assert missing <= with_consumers + world.network.in_flight


def in_flight_ids(world: World, ids: set) -> set:
    """Message ids sent and neither delivered nor dropped yet."""
    done = {r[2] for r in world.trace.messages if r[1] in ("deliver", "drop")}
    return {r[2] for r in world.trace.messages if r[1] == "send" and r[2] in ids} - done


@settings(max_examples=40, deadline=None)
@given(run_st)
def test_every_acked_copy_was_consumed_first_by_the_consumer_that_acked_it(p):
    world, *_ = run(p)
    consumed: Counter = Counter()
    for _t, event, mid, channel, node, detail in world.trace.mq:
        if event == "consume":
            consumed[(mid, channel, node)] += 1
        elif event == "ack" and detail == "":
            assert consumed[(mid, channel, node)] > 0, (mid, channel, node)


# -- determinism ---------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(run_st)
def test_the_same_seed_gives_the_same_trace(p):
    w1, b1, *_ = run(p, until=40.0)
    w2, b2, *_ = run(p, until=40.0)
    for table in ("mq", "queues", "messages", "events", "pools"):
        assert getattr(w1.trace, table) == getattr(w2.trace, table), table
    assert b1.stats == b2.stats


# -- requeue position -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["push", "pop", "back"]), max_size=60))
def test_a_queue_always_hands_out_its_oldest_ready_copy(ops):
    """However copies are pushed, taken and put back, the next one out is the
    ready copy with the smallest enqueue number (RabbitMQ: original position)."""
    q = Queue("q")
    env = Envelope(1, "event", "p", "", "q", None, 0.0)
    out: list[Delivery] = []
    for op in ops:
        if op == "push":
            q.push(Delivery(env, "q"))
        elif op == "pop" and q.ready:
            expected = min(c.seq for c in q.copies())
            got = q.pop()
            assert got.seq == expected
            out.append(got)
        elif op == "back" and out:
            q.put_back(out.pop(len(out) // 2))
    assert [c.seq for c in q.copies()] == sorted(c.seq for c in q.copies())
