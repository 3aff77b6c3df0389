"""``order-lifecycle``: competing consumers break an order's event order; sharding restores it.

*Microservices Patterns* §3.3.5-3.3.7 on FTGO's Order aggregate: the
``order-service`` emits, for every order, ``OrderCreated`` → ``OrderRevised``
→ ``OrderCancelled`` (:data:`~simcomm.scenarios.payloads.ORDER_EVENTS`; an
order's events follow each other ``event_gap`` s apart on average, orders
arrive as a Poisson stream at ``order_rate``), and ``consumers`` instances of
the ``order-history`` service apply them.  One knob, ``channel``, switches
how the events travel:

* ``queue`` -- one RabbitMQ-like broker queue (issue 8's
  :class:`~simcomm.messaging.Broker`; manual acks, ``prefetch``) read by the
  instances as **competing consumers**: each event goes to whichever
  instance is free, so an order's ``OrderRevised`` can be applied by one
  instance while another is still applying its ``OrderCreated`` -- and
  finish first.  The order of an order's events is broken, visibly
  (``res.key_order()``, cause ``competing consumers``), with no fault at all:
  13-16 % of the events of a default run (seeds 1-8).
* ``sharded`` -- one Kafka-like topic of ``partitions`` partitions on a
  3-broker :class:`~simcomm.messaging.LogCluster` (replication factor 3,
  ``min.insync.replicas`` 2), written by a
  :class:`~simcomm.messaging.LogProducer` and read by a **consumer group**
  (:class:`~simcomm.messaging.GroupConsumer`, one per instance): the shard
  key picks the partition (Kafka's murmur2 partitioner), and each partition
  is read by one member of the group at a time, in offset order.  Every
  event of one order lands in one partition and is applied in order: none
  reordered (seeds 1-8).  The group forms 3 s into the run
  (``group.initial.rebalance.delay.ms``) and starts from the earliest offset.

``key`` says what the order service uses as the shard key: ``order_id``
(each order's events in one partition: per-order order holds),
``customer_id`` (all of a customer's orders in one partition: per-order
order holds too, and a busy customer makes a hot partition), or ``none``
(null keys: Kafka's sticky partitioner spreads an order's events over the
partitions, and the order breaks again).  A queue routes by no key: each
event carries its order id (its customer id with ``customer_id``) only as a
label for the ledger.  The ordering ledger is kept per **order**
whatever the shard key: with ``customer_id`` or ``none`` the order service
writes each event's ``produce`` row itself under its order id and hands the
record to the producer with that record id (a ``send`` row, label
``order_service``) -- the same ledger rows as the transactional outbox.

The same dashboard toggles the delivery guarantees of the sharded channel
and shows duplicates and losses appear and vanish:

* the producer's ``acks`` (``acks``) and ``idempotence``
  (``enable.idempotence``; needs ``acks=all``, as Kafka refuses otherwise);
  ``produce_loss`` loses that share of the messages between the order
  service and the brokers, so requests time out (``request_timeout``,
  ``request.timeout.ms``) and are retried: without idempotence a retried
  batch whose first try was appended is appended again (a duplicate), and
  one retried behind a later batch in flight lands after it (a reorder);
* ``crash_leader`` cuts the broker leading partition 0 off from its
  followers for ``leader_isolation`` s, then crashes it at
  ``crash_leader_at`` for ``crash_leader_for`` s: with ``acks=1`` the
  records it acknowledged meanwhile are on no follower and are lost when a
  follower takes over; with ``acks=all`` none (they were never
  acknowledged, and the producer sends them again);
* the group's ``commit`` point (``before`` processing: at-most-once, a crash
  loses what was polled; ``after``: at-least-once, a crash re-delivers; ``auto``:
  ``enable.auto.commit`` every 5 s) and ``dedup`` (``processed_ids``: a
  processed-ids table in the service's database, updated with the business
  data; ``idempotent``: the handler's effect is idempotent), with
  ``crash_consumer`` crashing ``order-history-1`` at ``crash_at`` for
  ``crash_duration`` s (on a queue too: its unacked events go back to the
  queue and another instance applies them -- late, out of order, or twice).

:func:`member_names` names the consumer instances; :class:`OrderStream` is the
order service's workload, shared with ``rebalance`` and
``delivery-guarantees``, and so is :func:`build_sharded`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm.engine.faults import Crash, install
from simcomm.engine.messages import EVENT
from simcomm.engine.network import Link
from simcomm.engine.nodes import Node
from simcomm.engine.randomness import Exponential
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.messaging import ASSIGNORS as _ASSIGNORS
from simcomm.messaging import (
    Broker,
    Consumer,
    GroupConsumer,
    LogCluster,
    LogProducer,
    ProcessedIds,
)
from simcomm.scenarios.base import Load, Scenario, param, register
from simcomm.scenarios.payloads import ORDER_EVENTS, order_event

if TYPE_CHECKING:
    from simpy.events import Event

__all__ = [
    "ACKS",
    "ASSIGNORS",
    "BROKER",
    "BROKERS",
    "CHANNELS",
    "CLUSTER",
    "COMMITS",
    "DEDUPS",
    "GROUP",
    "KEYS",
    "LEDGER_LABEL",
    "MIN_INSYNC_REPLICAS",
    "ORDER_BASE",
    "PRODUCER",
    "PROTOCOLS",
    "QUEUE",
    "SERVICE",
    "TOPIC",
    "OrderStream",
    "Params",
    "Sharded",
    "build",
    "build_queue",
    "build_sharded",
    "capacity",
    "check",
    "check_delivery",
    "load",
    "make_member",
    "member_names",
]

BROKER = "broker"  #: the issue-8 broker node (queue channel)
QUEUE = "order-events"  #: its queue
CLUSTER = "kafka"  #: the log cluster's name: brokers kafka-0, kafka-1, kafka-2
TOPIC = "order-events"  #: the sharded channel
BROKERS = 3  #: brokers in the cluster (each partition replicated on all three)
MIN_INSYNC_REPLICAS = 2  #: min.insync.replicas: acks=all needs the leader and one follower
PRODUCER = "order-service"
SERVICE = "order-history"  #: the consuming service (FTGO's order history service)
GROUP = "order-history"  #: its consumer group id
ORDER_BASE = 1000  #: order ids are ORDER_BASE + 1, + 2, ...
LEDGER_LABEL = "order_service"  #: the send label when the shard key is not the order id

CHANNELS = ("queue", "sharded")
KEYS = ("order_id", "customer_id", "none")
ASSIGNORS = tuple(_ASSIGNORS)  #: Kafka's built-in assignors' names
PROTOCOLS = ("auto", "eager", "cooperative")
ACKS = ("0", "1", "all")
COMMITS = ("auto", "before", "after")
DEDUPS = ("none", "processed_ids", "idempotent")


def member_names(n: int) -> list[str]:
    """The consumer instances' names: ``order-history-1`` ... ``order-history-n``."""
    return [f"{SERVICE}-{i}" for i in range(1, n + 1)]


@dataclass(frozen=True)
class Params:
    channel: str = param(
        "queue", choices=CHANNELS,
        help="queue: one broker queue read by competing consumers (any instance may take "
             "any event: an order's events are applied out of order); sharded: a partitioned "
             "topic read by a consumer group (one reader per partition: order kept per key)")
    consumers: int = param(
        3, range=(1, 12), unit="instances",
        help="instances of the order-history service: competing consumers on the queue, "
             "members of one consumer group on the sharded channel (those beyond the number "
             "of partitions get none and idle)")
    partitions: int = param(
        6, range=(1, 48), unit="partitions",
        help="partitions of the sharded topic (the sharded channel only)")
    key: str = param(
        "order_id", choices=KEYS,
        help="the shard key of each event: order_id (an order's events in one partition), "
             "customer_id (all of a customer's orders in one), none (null keys: the sticky "
             "partitioner scatters an order's events); a queue routes by no key")
    order_rate: float = param(
        10.0, range=(0.1, 200.0), unit="orders/s", step=0.1,
        help="mean rate of new orders (Poisson); each brings three events: OrderCreated, "
             "OrderRevised, OrderCancelled")
    event_gap: float = param(
        0.05, range=(0.001, 10.0), unit="s", step=0.001,
        help="mean time between an order's successive events (exponential): the shorter, "
             "the more often two of them are in flight together")
    customers: int = param(
        20, range=(1, 10_000), unit="customers",
        help="customers placing the orders (uniformly): the keys with key=customer_id")
    service_time: float = param(
        0.05, range=(0.001, 5.0), unit="s", step=0.001,
        help="mean time an instance takes to apply one event (exponential)")
    prefetch: int = param(
        1, range=(0, 100), unit="messages",
        help="unacknowledged events the broker lets each instance hold (basic.qos; the queue "
             "channel only): 1 = fair dispatch, 0 = unlimited")
    assignor: str = param(
        "range", choices=ASSIGNORS,
        help="the group's partition assignor (partition.assignment.strategy; sharded only)")
    protocol: str = param(
        "auto", choices=PROTOCOLS,
        help="rebalance protocol: eager (every member revokes everything: a stop-the-world "
             "pause) or cooperative (only moved partitions pause; needs cooperative-sticky); "
             "auto = cooperative for cooperative-sticky, else eager")
    acks: str = param(
        "all", choices=ACKS,
        help="producer acks (acks): 0 = do not wait, 1 = the leader appended it, all = every "
             "in-sync replica has it (sharded only)")
    idempotence: bool = param(
        True, help="idempotent producer (enable.idempotence): the brokers refuse out-of-order "
                   "batches and drop repeats of the last 5, so retries neither duplicate nor "
                   "reorder; needs acks=all")
    commit: str = param(
        "auto", choices=COMMITS,
        help="when the group commits offsets: auto (enable.auto.commit, every 5 s), before "
             "processing (at-most-once: a crash loses what was polled), after (at-least-once: "
             "a crash re-delivers)")
    dedup: str = param(
        "none", choices=DEDUPS,
        help="duplicate handling by the consumer: none, processed_ids (a table of processed "
             "record ids updated with the business data), idempotent (the effect is "
             "idempotent: applying twice changes nothing)")
    crash_consumer: bool = param(
        False, help="crash order-history-1 at crash_at for crash_duration s (its unfinished "
                    "events are re-delivered, lost or applied twice, by channel and commit)")
    crash_at: float = param(
        3.5, range=(0.0, 3600.0), unit="s", step=0.1,
        help="when order-history-1 crashes: at 3.5 s, on the sharded channel, it is half a "
             "second into its first batch (the records that waited 3 s for the group's first "
             "assignment)")
    crash_duration: float = param(
        5.0, range=(0.1, 3600.0), unit="s", step=0.1,
        help="how long order-history-1 stays down before it restarts")
    crash_leader: bool = param(
        False, help="crash the broker leading partition 0 at crash_leader_at (sharded only): "
                    "with acks=1 what it acked and no follower had fetched is lost at failover")
    crash_leader_at: float = param(
        10.0, range=(0.0, 3600.0), unit="s", step=0.5, help="when the leader crashes")
    crash_leader_for: float = param(
        20.0, range=(0.1, 3600.0), unit="s", step=0.1,
        help="how long the crashed leader stays down (a follower leads after 9 s, "
             "broker.session.timeout.ms)")
    leader_isolation: float = param(
        2.0, range=(0.0, 60.0), unit="s", step=0.1,
        help="for this long before its crash the leader is cut off from its followers (the "
             "order service still reaches it): what it appends meanwhile is on no follower")
    produce_loss: float = param(
        0.0, range=(0.0, 0.5), unit="fraction", step=0.01,
        help="share of the messages between the order service and the brokers lost on the "
             "network (both ways): requests time out and are retried (sharded only)")
    request_timeout: float = param(
        1.0, range=(0.05, 60.0), unit="s", step=0.05,
        help="how long the producer waits for a produce response before retrying "
             "(request.timeout.ms; Kafka's default 30 s, shorter here so a retry happens "
             "within a short run)")
    session_timeout: float = param(
        10.0, range=(1.0, 300.0), unit="s", step=0.5,
        help="a member silent this long is expelled and its partitions reassigned "
             "(session.timeout.ms: 45 s since Kafka 3.0, 10 s before)")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001,
        help="one-way network delay of every hop")


def check_delivery(acks: str, idempotence: bool, protocol: str = "auto",
                   assignor: str = "range") -> None:
    """The cross-field rules Kafka itself enforces, as ParamErrors before time zero.

    * ``enable.idempotence=true`` needs ``acks=all`` (Kafka's producer throws a
      ConfigException otherwise);
    * the cooperative rebalance protocol needs an assignor that supports it:
      of Kafka's built-in ones only ``cooperative-sticky`` does.
    """
    if idempotence and acks != "all":
        raise ParamError("idempotence", idempotence,
                         f"false with acks={acks}: the idempotent producer needs acks=all "
                         "(Kafka refuses enable.idempotence=true otherwise)")
    if protocol == "cooperative" and assignor != "cooperative-sticky":
        raise ParamError("protocol", protocol,
                         f"eager or auto with assignor={assignor}: only cooperative-sticky "
                         "supports the cooperative protocol")


def check(p: Params) -> None:
    """The cross-field checks (:func:`check_delivery`) -- on every channel, so a
    dashboard never holds settings that would be refused on the other one."""
    check_delivery(p.acks, p.idempotence, p.protocol, p.assignor)


# -- the workload ----------------------------------------------------------------------

Emit = Callable[[int, int, int], Any]


class OrderStream:
    """The order service's workload: orders and their three events, emitted in time.

    Orders arrive as a Poisson stream at ``rate`` per second (stream
    ``orders:arrivals``), each for a customer drawn uniformly from
    ``customers`` (stream ``orders:customers``); an order's three events
    (:data:`~simcomm.scenarios.payloads.ORDER_EVENTS`) follow each other
    after exponential gaps of mean ``gap`` (stream ``orders:gaps``).  Each
    event is handed to ``emit(step, order_id, customer_id)`` (step 0, 1, 2)
    when it happens.  One SimPy process makes the arrivals; an order's later
    events ride timers, not processes.  ``stop`` ends the arrivals (the
    events of orders already created still follow).  ``orders`` and
    ``events`` count what was emitted.
    """

    def __init__(self, world: World, emit: Emit, *, rate: float, gap: float, customers: int,
                 start: float = 0.0, stop: float = math.inf) -> None:
        self.env = world.env
        self.emit = emit
        self.rate = float(rate)
        self.gap = float(gap)
        self.customers = int(customers)
        self.stop = float(stop)
        self.orders = 0
        self.events = 0
        self._arrivals = world.stream("orders:arrivals")
        self._gaps = world.stream("orders:gaps")
        self._customers = world.stream("orders:customers")
        self.start = float(start)
        self.env.process(self._run())

    def _run(self) -> Generator[Event, Any, None]:
        env = self.env
        draw = self._arrivals.expovariate
        pick = self._customers.random
        if self.start > 0:
            yield env.timeout(self.start)
        while True:
            yield env.timeout(draw(self.rate))
            if env.now >= self.stop:
                return
            self.orders += 1
            self._event(ORDER_BASE + self.orders, 1 + int(pick() * self.customers), 0)

    def _event(self, order_id: int, customer_id: int, step: int) -> None:
        self.events += 1
        self.emit(step, order_id, customer_id)
        if step + 1 < len(ORDER_EVENTS):
            ev = self.env.timeout(self._gaps.expovariate(1.0 / self.gap))
            ev.callbacks.append(lambda _ev: self._event(order_id, customer_id, step + 1))


# -- the two channels -------------------------------------------------------------------

def build_queue(world: World, p: Params) -> None:
    """The queue channel: broker, queue ``order-events``, competing consumers."""
    world.network.set_default(Link(latency=p.network_latency))
    broker = Broker(world, BROKER)
    queue = broker.point_to_point(QUEUE)
    service_time = Exponential(p.service_time)
    for name in member_names(p.consumers):
        Consumer(world, name, broker, queue, service=SERVICE, prefetch=p.prefetch,
                 service_time=service_time)
    service = Node(world, PRODUCER)
    publish = broker.publish
    by_customer = p.key == "customer_id"

    def emit(step: int, order_id: int, customer_id: int) -> None:
        # the queue routes by no key; the key labels the event for the ledger
        publish(service, QUEUE, order_event(step, order_id, customer_id), kind=EVENT,
                key=customer_id if by_customer else order_id)

    OrderStream(world, emit, rate=p.order_rate, gap=p.event_gap, customers=p.customers)
    if p.crash_consumer:
        install(world, [Crash(member_names(1)[0], p.crash_at, p.crash_duration)])


@dataclass
class Sharded:
    """What :func:`build_sharded` made: the cluster, the order service's producer,
    its workload, and the service's processed-ids table (None without
    ``dedup=processed_ids``) that members made later must share."""

    cluster: Any
    producer: Any
    stream: OrderStream
    processed: Any


def build_sharded(world: World, p: Any, *, members: int | None = None,
                  start_members: bool = True) -> Sharded:
    """The sharded channel: a 3-broker log cluster, the topic, the producer, the group.

    Reads the fields ``order-lifecycle``, ``rebalance`` and
    ``delivery-guarantees`` share (partitions, key, order_rate, event_gap,
    customers, service_time, assignor, protocol, acks, idempotence, commit,
    dedup, produce_loss, request_timeout, session_timeout, network_latency,
    crash_leader*).  ``members`` (default ``p.consumers``) group consumers
    are made when ``start_members``; returns the pieces (:class:`Sharded`).  The group starts
    from the earliest offset (``auto.offset.reset=earliest``), so the events
    produced before a member's first assignment are read too.
    """
    world.network.set_default(Link(latency=p.network_latency))
    cluster = LogCluster(world, CLUSTER, brokers=BROKERS,
                         min_insync_replicas=MIN_INSYNC_REPLICAS)
    cluster.create_topic(TOPIC, p.partitions)
    producer = LogProducer(world, PRODUCER, cluster, TOPIC, acks=p.acks,
                           idempotence=p.idempotence, request_timeout=p.request_timeout)
    if p.produce_loss > 0:
        for i in range(BROKERS):
            world.network.link(PRODUCER, f"{CLUSTER}-{i}", latency=p.network_latency,
                               loss=p.produce_loss)
    send = producer.send
    if p.key == "order_id":
        def emit(step: int, order_id: int, customer_id: int) -> None:
            send(order_id, order_event(step, order_id, customer_id))
    else:
        # the ledger stays per order: the service writes the produce row under the order
        # id and hands the record over with its id (the outbox's ledger rows)
        by_customer = p.key == "customer_id"
        records = world.trace.records.append if world.trace.enabled else None
        next_id = cluster.next_record_id
        env = world.env

        def emit(step: int, order_id: int, customer_id: int) -> None:
            rid = next_id()
            if records is not None:
                records((env.now, "produce", rid, TOPIC, -1, -1, order_id, PRODUCER, ""))
            send(customer_id if by_customer else None,
                 order_event(step, order_id, customer_id), record_id=rid, label=LEDGER_LABEL)

    stream = OrderStream(world, emit, rate=p.order_rate, gap=p.event_gap,
                         customers=p.customers)
    processed = ProcessedIds() if p.dedup == "processed_ids" else None
    if start_members:
        for name in member_names(p.consumers if members is None else members):
            make_member(world, cluster, p, name, processed=processed)
    if p.crash_leader:
        _crash_leader(world, cluster, p)
    return Sharded(cluster, producer, stream, processed)


def _crash_leader(world: World, cluster: Any, p: Any) -> None:
    """The leader of partition 0 is cut off from its followers for ``leader_isolation``
    s (the network drops every message between them; producer, consumers and the
    controller still reach it), then crashes at ``crash_leader_at`` for
    ``crash_leader_for`` s, when the links come back.

    A leader cut off from its followers keeps leading (Kafka's controller sees
    crashes, not partitions): with ``acks=1`` it acknowledges what it appends
    though no follower has it; with ``acks=all`` the high watermark stops and
    nothing more is acknowledged.  When it dies, a follower from the ISR is
    elected 9 s later at its own log end: the records appended during the
    isolation are truncated away -- lost if they were acknowledged (``acks=1``),
    sent again by the producer if not (``acks=all``).
    """
    leader = cluster.leader(TOPIC, 0)
    if leader is None:  # pragma: no cover - a fresh topic always has a leader
        return
    followers = [b for b in cluster.replicas(TOPIC, 0) if b != leader.name]
    latency = p.network_latency
    network = world.network

    def links(loss: float) -> None:
        for name in followers:
            network.link(leader.name, name, latency=latency, loss=loss)

    if p.leader_isolation > 0:
        world.at(max(0.0, p.crash_leader_at - p.leader_isolation), lambda: links(1.0))
        world.at(p.crash_leader_at, lambda: links(0.0))
    install(world, [Crash(leader.name, p.crash_leader_at, p.crash_leader_for)])


def make_member(world: World, cluster: Any, p: Any, name: str, *, processed: Any = None,
                start: float = 0.0) -> Any:
    """One member of the ``order-history`` group, as ``p`` says (see :func:`build_sharded`).

    ``processed`` is the service's processed-ids table (``dedup=processed_ids``):
    one per service, in its database, shared by all its members.
    """
    return GroupConsumer(
        world, name, cluster, GROUP, [TOPIC], service_time=Exponential(p.service_time),
        assignor=p.assignor, protocol=None if p.protocol == "auto" else p.protocol,
        session_timeout=p.session_timeout, commit=p.commit, auto_offset_reset="earliest",
        dedup=p.dedup, processed=processed, start=start)


def build(world: World, p: Params) -> None:
    if p.channel == "queue":
        build_queue(world, p)
        return
    build_sharded(world, p)
    if p.crash_consumer:
        install(world, [Crash(member_names(1)[0], p.crash_at, p.crash_duration)])


def capacity(p: Params) -> float:
    """Events per second the order-history instances can apply: an optimistic ceiling.

    On the queue each of the ``consumers`` applies ``1 / service_time`` per
    second, less the ack round trip it waits through with prefetch 1
    (competing consumers add up).  On the sharded channel a partition is
    read by one member at a time, so only ``min(consumers, partitions)``
    members work; and a member applies its partitions' records one by one.
    A hot key (``customer_id`` with few customers) can cap it lower.
    """
    if p.channel == "queue":
        trip = 2 * p.network_latency if p.prefetch == 1 else 0.0
        return p.consumers / (p.service_time + trip)
    return min(p.consumers, p.partitions) / p.service_time


def load(p: Params) -> Load:
    """An event counts as a request: three per order.  On the queue each is a
    publish, a delivery and an ack, with the rows of issue 8's broker.  On
    the sharded channel (measured: about 8 network messages an event at the
    defaults) a produce request and its response per batch, the followers'
    fetches and their responses, the group's fetches and commits; with 6
    ledger rows (produce, append, ack, apply, commit and the group's) counted
    as pool rows of about their size.  Events: the crashes and restarts."""
    events = 0.0
    if p.crash_consumer:
        events += 2.0 / (p.crash_at + p.crash_duration)
    if p.channel == "queue":
        return Load(requests_per_s=3 * p.order_rate, messages_per_request=3.0,
                    pool_changes_per_request=9.0, events_per_s=events)
    if p.crash_leader:
        events += 2.0 / (p.crash_leader_at + p.crash_leader_for)
    return Load(requests_per_s=3 * p.order_rate, messages_per_request=8.0,
                pool_changes_per_request=6.0, events_per_s=events)


SCENARIO = register(Scenario(
    name="order-lifecycle",
    title="Order lifecycle: competing consumers break each order's order, a sharded "
          "channel restores it",
    description=("The order service emits OrderCreated, OrderRevised and OrderCancelled for "
                 "every order; the order-history instances apply them. On one queue read by "
                 "competing consumers an order's events are applied out of order; on a "
                 "partitioned topic with a consumer group, keyed by order id, every order's "
                 "events are applied in order. The same dashboard switches the producer's "
                 "acks and idempotence, the commit point and deduplication, and crashes a "
                 "consumer or a partition leader: watch duplicates and losses appear and "
                 "vanish."),
    params=Params,
    build=build,
    views=("key_order", "delivery_causes", "partition_assignment"),
    until=30.0,
    check=check,
    capacity=capacity,
    load=load,
))
