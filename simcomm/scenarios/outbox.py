"""``outbox``: an order service's two writes -- dual write, publish first, or the outbox.

*Microservices Patterns* §3.3.7 (REFERENCE §6).  FTGO's ``order-service``
stores each change of an order in its own database (``order-db``, a
:class:`~simcomm.messaging.Database`) and announces it as an event --
``OrderCreated``, then ``OrderRevised``, then ``OrderCancelled`` per order,
the workload of ``order-lifecycle`` (:class:`OrderStream
<simcomm.scenarios.order_lifecycle.OrderStream>`, requests from ``web``)
-- on the Kafka-like topic ``order-events`` (a 3-broker
:class:`~simcomm.messaging.LogCluster`, ``acks=all``, idempotent
producers), keyed by order id; the ``order-history`` service reads it as
a consumer group (committing offsets after processing: at least once).
One knob, ``design``, says how the two writes are made:

* ``dual-write`` -- commit, then send (the service's own producer).  A
  service crash between the two (``service_crash_every``: the crash comes
  at the worst moment) leaves the order committed and its event **lost**.
* ``publish-first`` -- send, then commit.  The same crash, or a commit the
  database refuses (``db_error_rate``), leaves an event out for an order
  that never existed: a **phantom** the consumers apply.
* ``polling`` -- the transactional outbox: the event is a row of the
  ``outbox`` table written in the order's transaction; the
  ``outbox-relay`` polls it every ``poll_interval`` s (at most
  ``batch_size`` rows), sends, waits for the acks and marks the rows
  published.  Nothing is lost and nothing is invented whatever crashes;
  the relay crashing after sending and before marking
  (``relay_crash_every``: at that very moment) sends the batch again -- a
  **duplicate**, which the consumers absorb only with ``dedup``.
* ``log-tailing`` -- the outbox again, relayed by tailing the database's
  commit log ``tail_lag`` s behind; the relay saves its position every
  ``offset_flush_interval`` s (Kafka Connect's ``offset.flush.interval.ms``;
  10 s here, 60 s by Kafka Connect's default), and a crash sends again
  everything since the last save.

The service's crash in the outbox designs is a plain crash: the orders in
its hands are not committed, so neither are their events -- the client's
request fails, and that is all.

:func:`outbox_report` sums a run up: events committed, published, lost,
phantom, resent by the relay, applied more than once.  The figures are Part V's
``outbox_lag`` (commit → send → apply per record) and ``key_order``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm.engine.network import Link
from simcomm.engine.nodes import Context, Node, ServiceError
from simcomm.engine.randomness import Exponential
from simcomm.engine.world import World
from simcomm.messaging import (
    Database,
    GroupConsumer,
    LogCluster,
    LogProducer,
    LogTailer,
    Outbox,
    PollingPublisher,
    ProcessedIds,
    PublishingService,
)
from simcomm.scenarios.base import Load, Scenario, param, register
from simcomm.scenarios.order_lifecycle import OrderStream, member_names
from simcomm.scenarios.payloads import ORDER_EVENTS, order_event

if TYPE_CHECKING:
    from simpy.events import Event

    from simcomm.engine.messages import Message
    from simcomm.messaging import Transaction
    from simcomm.result import Result

__all__ = ["CLIENT", "CLUSTER", "DATABASE", "DEDUPS", "DESIGNS", "GROUP", "ORDERS", "RELAY",
           "REPORT_KEYS", "SERVICE", "TOPIC", "Params", "build", "capacity", "load",
           "outbox_report"]

SERVICE = "order-service"
DATABASE = "order-db"
ORDERS = "orders"  #: the business table
CLIENT = "web"  #: sends the order changes to the service
RELAY = "outbox-relay"
CLUSTER = "kafka"
TOPIC = "order-events"
GROUP = "order-history"  #: the consumer group (members order-history-1, ...)
CUSTOMERS = 50  #: customers placing the orders (the workload's, not a knob here)

SERVICE_WORKERS = 4  #: the order service's workers (PublishingService's default)
COMMIT_TIME = 0.002  #: seconds of the database's work per commit (Database's default)
READ_TIME = 0.0005  #: per read (Database's default)
LINGER = 0.005  #: the producers' linger.ms (LogProducer's default, Kafka 4.0's)

DESIGNS = ("dual-write", "publish-first", "polling", "log-tailing")
DEDUPS = ("none", "processed_ids", "idempotent")

#: the keys of :func:`outbox_report`
REPORT_KEYS = ("design", "events_committed", "events_published", "lost", "phantom", "in_outbox",
               "relay_resends", "applied", "applied_twice", "pending")


@dataclass(frozen=True)
class Params:
    design: str = param(
        "polling", choices=DESIGNS,
        help="how the order service makes its two writes: dual-write (commit, then send: a "
             "crash between loses the event), publish-first (send, then commit: a crash or "
             "a refused commit leaves a phantom event), polling or log-tailing (the "
             "transactional outbox, relayed by a polling publisher or by tailing the "
             "commit log: nothing lost or invented, maybe sent twice)")
    order_rate: float = param(
        5.0, range=(0.1, 100.0), unit="orders/s", step=0.1,
        help="mean rate of new orders (Poisson); each brings three events: OrderCreated, "
             "OrderRevised, OrderCancelled")
    event_gap: float = param(
        1.0, range=(0.01, 30.0), unit="s", step=0.01,
        help="mean time between an order's successive changes (exponential)")
    poll_interval: float = param(
        0.5, range=(0.01, 10.0), unit="s", step=0.01,
        help="polling: the relay sleeps this long between polls "
             "(eventuate.cdc.polling.interval.in.milliseconds, 500 ms)")
    batch_size: int = param(
        1000, range=(1, 10_000), unit="rows",
        help="polling: most outbox rows one poll sends (max.events.per.polling, 1000)")
    tail_lag: float = param(
        0.2, range=(0.0, 10.0), unit="s", step=0.01,
        help="log-tailing: how far behind the commit log the relay reads (the replication "
             "stream's and the connector's delay)")
    offset_flush_interval: float = param(
        10.0, range=(0.1, 600.0), unit="s", step=0.1,
        help="log-tailing: the relay saves its log position this often "
             "(offset.flush.interval.ms; Kafka Connect's default is 60 s, longer than this "
             "run): a crash resends everything that came since")
    relay_crash_every: float = param(
        20.0, range=(0.0, 3600.0), unit="s", step=1.0,
        help="polling / log-tailing: the relay crashes every this many seconds (0 = never) "
             "-- polling at its worst moment, after sending a batch and before marking it "
             "published")
    service_crash_every: float = param(
        20.0, range=(0.0, 3600.0), unit="s", step=1.0,
        help="the order service crashes every this many seconds (0 = never) -- in the "
             "dual-write designs at its worst moment, between its two writes")
    crash_duration: float = param(
        2.0, range=(0.01, 60.0), unit="s", step=0.01,
        help="how long a crashed service or relay stays down before it restarts")
    db_error_rate: float = param(
        0.0, range=(0.0, 0.5), unit="fraction", step=0.01,
        help="share of the commits the database refuses (a serialization failure): with "
             "publish-first each is a phantom event")
    partitions: int = param(
        3, range=(1, 24), unit="partitions", help="partitions of the order-events topic")
    consumers: int = param(
        2, range=(1, 12), unit="instances",
        help="members of the order-history consumer group")
    dedup: str = param(
        "none", choices=DEDUPS,
        help="duplicate handling by the consumers: none, processed_ids (a table of processed "
             "record ids updated with the business data), idempotent (applying twice "
             "changes nothing)")
    service_time: float = param(
        0.005, range=(0.0001, 1.0), unit="s", step=0.0001,
        help="mean time an order-history instance takes to apply one event (exponential)")
    network_latency: float = param(
        0.001, range=(0.0, 0.5), unit="s", step=0.001, help="one-way delay of every hop")


# -- the order service's change -----------------------------------------------------------

def _order_change(db: Database) -> Callable[..., Generator[Event, Any, Any]]:
    """The business change of one request ``(step, order_id, customer_id)``:
    step 0 inserts the order; a revision or a cancellation reads it first (no
    such order -- its creation failed -- and the request fails) and updates
    it.  The event is the step's ``OrderCreated`` / ``OrderRevised`` /
    ``OrderCancelled``, keyed by the order id."""
    def change(ctx: Context, tx: Transaction, msg: Message) -> Generator[Event, Any, Any]:
        step, order_id, customer_id = msg.body
        state = ORDER_EVENTS[step]
        if step == 0:
            tx.insert(ORDERS, order_id, {"customer": customer_id, "state": state})
        else:
            row = yield db.get(ctx.instance, ORDERS, order_id)
            if row is None:
                raise ServiceError("no such order")
            tx.update(ORDERS, order_id, {"state": state})
        return order_id, order_event(step, order_id, customer_id)
    return change


def _every(world: World, interval: float, action: Callable[[], None]) -> None:
    """Call ``action()`` at ``interval``, 2 × ``interval``, ... (timers, not a process)."""
    env = world.env

    def tick(_ev: Event) -> None:
        action()
        env.timeout(interval).callbacks.append(tick)

    env.timeout(interval).callbacks.append(tick)


def build(world: World, p: Params) -> None:
    world.network.set_default(Link(latency=p.network_latency))
    cluster = LogCluster(world, CLUSTER, brokers=3, min_insync_replicas=2)
    cluster.create_topic(TOPIC, p.partitions)
    db = Database(world, DATABASE)
    db.create_table(ORDERS)
    change = _order_change(db)
    relay: Any = None
    if p.design in ("polling", "log-tailing"):
        outbox = Outbox(db, cluster, TOPIC)
        service = PublishingService(world, SERVICE, db, change, design="outbox", outbox=outbox)
        producer = LogProducer(world, f"{RELAY}-producer", cluster, TOPIC)
        if p.design == "polling":
            relay = PollingPublisher(world, RELAY, outbox, producer,
                                     poll_interval=p.poll_interval, batch_size=p.batch_size)
        else:
            relay = LogTailer(world, RELAY, outbox, producer, lag=p.tail_lag,
                              offset_flush_interval=p.offset_flush_interval)
    else:
        producer = LogProducer(world, f"{SERVICE}-producer", cluster, TOPIC)
        service = PublishingService(world, SERVICE, db, change, design=p.design,
                                    producer=producer)
    processed = ProcessedIds() if p.dedup == "processed_ids" else None
    for name in member_names(p.consumers):
        GroupConsumer(world, name, cluster, GROUP, [TOPIC],
                      service_time=Exponential(p.service_time), commit="after",
                      auto_offset_reset="earliest", dedup=p.dedup, processed=processed)
    client = Node(world, CLIENT)

    def emit(step: int, order_id: int, customer_id: int) -> None:
        client.request(SERVICE, (step, order_id, customer_id))

    OrderStream(world, emit, rate=p.order_rate, gap=p.event_gap, customers=CUSTOMERS)
    down = p.crash_duration
    if p.service_crash_every > 0:
        if p.design in ("dual-write", "publish-first"):
            _every(world, p.service_crash_every, lambda: service.arm_crash(down))
        else:
            _every(world, p.service_crash_every, lambda: service.crash(down))
    if relay is not None and p.relay_crash_every > 0:
        # the polling publisher at its next window; the log tailer at once (it is
        # always between its sends and its next position flush)
        _every(world, p.relay_crash_every, lambda: relay.arm_crash(down))
    if p.db_error_rate > 0:
        db.set_error_rate(p.db_error_rate)


def capacity(p: Params) -> float:
    """Order changes per second the system can carry: an optimistic ceiling.

    The order service's 4 workers each hold a change for its round trips to
    the database (a read for a revision or a cancellation -- two changes in
    three -- and the commit: :data:`COMMIT_TIME` of the database's work), and
    in the dual-write designs also for the send: the producer's 5 ms
    ``linger.ms`` and the round trips to the leader and from it to a follower
    (``acks=all``).  The order-history group applies one change per
    ``service_time`` in each partition that has a member:
    ``min(consumers, partitions) / service_time``.  The smaller one is the
    ceiling (the database's 10 workers and the relay, which sends whole
    batches, are far above either)."""
    trip = 2 * p.network_latency
    hold = (2 / 3) * (trip + READ_TIME) + trip + COMMIT_TIME
    if p.design in ("dual-write", "publish-first"):
        hold += LINGER + 2 * trip
    service = SERVICE_WORKERS / hold
    consumers = min(p.consumers, p.partitions) / p.service_time
    return min(service, consumers)


def load(p: Params) -> Load:
    """An order change counts as a request: three per order.  Each makes the
    request and its reply, a commit and its answer (and a read for a
    revision or cancellation), about a produce request and a fetch per
    event, the relay's select and mark, the replication fetches: counted as
    10 messages; its ledger rows (produce, send, append, ack, apply, commit,
    tx_commit, ...) about 8, with the pool rows of the service and the
    database, as pool rows.  Events: the crashes and restarts."""
    events = 0.0
    for every in (p.service_crash_every, p.relay_crash_every):
        if every > 0:
            events += 2.0 / every
    return Load(requests_per_s=3 * p.order_rate, messages_per_request=10.0,
                pool_changes_per_request=14.0, events_per_s=events)


# -- the report (reads a Result: this module never runs a simulation there) ---------------

def outbox_report(res: Result) -> dict[str, Any]:
    """The run's events in a few numbers (any run with a service database:
    ``produce`` rows of detail ``outbox`` or ``dual_write``).  ``lost``,
    ``phantom``, ``applied_twice`` and ``pending`` are the summary's
    (:data:`~simcomm.result.DELIVERY_KEYS`: ``lost``, ``phantom``,
    ``duplicated``, ``pending``, whose causes ``res.delivery_causes()``
    gives), the others are read from the records table.  Everything needs
    the trace (with ``trace=False`` the counts are NaN):

    * ``events_committed`` -- events whose transaction committed (``produce``);
    * ``events_published`` -- of all events sent (``send`` rows labelled
      ``relay`` or ``dual_write``), those that reached the log (``append``):
      a send its producer gave up -- it died with its service -- did not;
    * ``lost`` -- committed, never applied, for a known cause: here a dual
      write's service that died between its commit and its send (cause
      ``dual write``);
    * ``phantom`` -- applied, never committed: publish first, and the commit
      failed;
    * ``in_outbox`` -- committed to the outbox, not published by the end:
      waiting for the relay (not lost: it will be sent);
    * ``relay_resends`` -- the relay's sends beyond each record's first
      (its duplicates, cause ``relay crash``);
    * ``applied`` -- records applied by the consumers at least once, and
      ``applied_twice`` -- applications beyond each record's first;
    * ``pending`` -- committed, not applied by the end, and not lost: on its
      way (in the outbox, on the log, or a dual write about to send).
    """
    out: dict[str, Any] = {"design": getattr(res.params, "design", None)}
    if not res.world.trace.enabled:
        out.update({k: math.nan for k in REPORT_KEYS[1:]})
        return out
    produced: set[int] = set()
    dual: set[int] = set()
    sends: dict[int, int] = {}
    appended: set[int] = set()
    applied: set[int] = set()
    for row in res.world.trace.records:
        event = row[1]
        if event == "produce" and row[8] in ("outbox", "dual_write"):
            produced.add(row[2])
            if row[8] == "dual_write":
                dual.add(row[2])
        elif event == "send" and row[8] in ("relay", "dual_write"):
            sends[row[2]] = sends.get(row[2], 0) + (row[8] == "relay")
        elif event == "append":
            appended.add(row[2])
        elif event == "apply":
            applied.add(row[2])
    published = appended.intersection(sends)
    s = res.summary()
    out.update({
        "events_committed": len(produced),
        "events_published": len(published),
        "lost": s.get("lost", 0),
        "phantom": s.get("phantom", 0),
        "in_outbox": len(produced - dual - published),
        "relay_resends": sum(max(n - 1, 0) for n in sends.values()),
        "applied": len(applied),
        "applied_twice": s.get("duplicated", 0),
        "pending": s.get("pending", 0),
    })
    return out


SCENARIO = register(Scenario(
    name="outbox",
    title="The transactional outbox: an order and its event, committed together",
    description=("The order service stores each order change in its database and announces "
                 "it as an event on a Kafka-like topic read by a consumer group. Written as "
                 "two separate writes, a crash between them loses the event (commit first) "
                 "or publishes one for an order that never existed (publish first). The "
                 "transactional outbox writes the event in the order's transaction and a "
                 "relay -- a polling publisher or a log tailer -- sends it afterwards: "
                 "nothing lost, nothing invented, but a relay crash sends some twice, so "
                 "the consumers must deduplicate."),
    params=Params,
    build=build,
    views=("outbox_lag", "key_order", "delivery_causes"),
    until=60.0,
    capacity=capacity,
    load=load,
))
