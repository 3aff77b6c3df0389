"""``competing-consumers``: one queue, N consumers -- prefetch, acks, fairness and order.

*Microservices Patterns* §3.3.5 (competing receivers and message ordering) on RabbitMQ's rules
(REFERENCE §4).  The ``order-service`` publishes ``CreateTicket`` commands
as a Poisson stream on one point-to-point channel, the durable queue
``kitchen-commands`` on a broker; ``consumers`` instances of the kitchen
service (``kitchen-1`` ... ``kitchen-N``) read it as competing consumers:
each message goes to one of them.  What the knobs show:

* ``prefetch`` -- how many unacknowledged messages the broker lets each
  consumer hold (``basic.qos``).  With **1** the next message goes to a
  consumer that is not busy (RabbitMQ's *fair dispatch*), so a slow
  consumer gets fewer messages; with **0** (unlimited) the broker deals
  them out round-robin whatever each consumer's speed, so a slow one gets
  its 1/N share anyway and a backlog builds up in its own buffer, where
  the other consumers cannot help with it.
* ``slow_consumer`` -- ``kitchen-1``'s service time is that many times
  longer (uneven work: an older machine, a noisy neighbour).
* ``ack_mode`` -- ``manual``: the consumer acks after its handler finished,
  so the messages a crashed consumer held go back to the queue and are
  redelivered (``redelivered=True``) to another consumer: nothing is lost.
  ``auto``: the broker counts a message done as it sends it (and ignores
  the prefetch limit, as RabbitMQ does), so what a consumer held when it
  died is lost.
* ``crash_consumer`` -- ``kitchen-1`` crashes at ``crash_at`` and restarts
  ``crash_duration`` s later, forcing redeliveries.
* ``reject_rate`` -- a handler rejects a message with requeue at that rate
  (after doing the work: a transient failure); the message goes back to
  its original place in the queue and is redelivered.  With auto-ack there
  is nothing to reject: the broker already forgot the message, which is
  lost.

**Order.**  One publisher's messages through one queue to one consumer keep
their order; with several consumers any redelivery can reorder them: a
message that comes back is consumed after messages published later
(:meth:`Result.ordering <simcomm.result.Result.ordering>` counts them as
``out_of_order``).  Measured, not asserted: see the tests.

:func:`consumer_report` tabulates what each consumer did;
:func:`ordering_summary` the order, duplicates and losses of the run.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm.engine.faults import Crash, install
from simcomm.engine.messages import COMMAND
from simcomm.engine.network import Link
from simcomm.engine.randomness import distribution
from simcomm.engine.world import World
from simcomm.messaging import Broker, Consumer, Producer, Reject
from simcomm.scenarios.base import Load, Scenario, param, register
from simcomm.scenarios.brokers import CHANNEL, PRODUCER, SERVICE, consumer_names
from simcomm.scenarios.payloads import ticket

if TYPE_CHECKING:
    import random

    import pandas as pd
    from simpy.events import Event

    from simcomm.engine.nodes import Context
    from simcomm.messaging import Delivery
    from simcomm.result import Result

__all__ = ["BROKER", "PRODUCER", "QUEUE", "REPORT_COLUMNS", "Params", "capacity",
           "consumer_names", "consumer_report", "load", "ordering_summary"]

BROKER = "broker"
QUEUE = CHANNEL  # the brokers scenario's channel: the same kitchen, the same commands

#: Columns of :func:`consumer_report`.
REPORT_COLUMNS = ("consumer", "delivered", "consumed", "share", "redelivered",
                  "processing_time", "out_of_order", "duplicates", "lost")


@dataclass(frozen=True)
class Params:
    consumers: int = param(
        3, range=(1, 20), unit="consumers",
        help="instances of the kitchen service reading the one queue (competing consumers: "
             "each message goes to one of them)")
    prefetch: int = param(
        1, range=(0, 100), unit="messages",
        help="unacknowledged messages the broker lets each consumer hold (basic.qos): 1 = "
             "fair dispatch (a busy consumer gets nothing more), 0 = unlimited (plain "
             "round-robin); ignored with auto-ack, as RabbitMQ does")
    ack_mode: str = param(
        "manual", choices=("manual", "auto"),
        help="manual: the consumer acks after handling, so a crashed consumer's messages are "
             "redelivered; auto: the broker counts a message done when it sends it, so what "
             "a crashed consumer held is lost")
    publish_rate: float = param(
        30.0, range=(0.1, 1000.0), unit="msg/s", step=0.1,
        help="mean rate at which the order service publishes CreateTicket commands (Poisson)")
    service_time: float = param(
        0.05, range=(0.001, 10.0), unit="s", step=0.001,
        help="mean time a consumer's handler takes for one message")
    service_time_distribution: str = param(
        "exponential", choices=("exponential", "lognormal", "constant"),
        help="shape of the handlers' times")
    slow_consumer: float = param(
        1.0, range=(1.0, 20.0), unit="x", step=0.5,
        help="kitchen-1 takes this many times longer per message than the others (uneven "
             "work); 1 = all alike")
    crash_consumer: bool = param(
        False, help="crash kitchen-1 at crash_at for crash_duration s, forcing redeliveries "
                    "of what it held (manual acks) or losing it (auto-ack)")
    crash_at: float = param(
        20.0, range=(0.0, 3600.0), unit="s", step=1.0, help="when kitchen-1 crashes")
    crash_duration: float = param(
        10.0, range=(0.1, 3600.0), unit="s", step=0.1,
        help="how long kitchen-1 stays down before it restarts and resubscribes")
    reject_rate: float = param(
        0.0, range=(0.0, 0.5), unit="fraction", step=0.01,
        help="probability a handler rejects its message with requeue after doing the work "
             "(a transient failure): the message goes back to its place in the queue")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001,
        help="one-way network delay of every hop (constant: TCP keeps each connection's "
             "messages in order)")


def _rejecting(rng: random.Random, rate: float):
    """A handler: one unit of work, then a reject with requeue with probability ``rate``."""
    def handle(ctx: Context, delivery: Delivery) -> Generator[Event, Any, None]:
        yield ctx.work()
        if rng.random() < rate:
            raise Reject(requeue=True)
    return handle


def build(world: World, p: Params) -> None:
    # a constant delay: AMQP runs over TCP, which never lets a message overtake
    # an earlier one on the same connection (random per-message delays would)
    world.network.set_default(Link(latency=p.network_latency))
    broker = Broker(world, BROKER)
    queue = broker.point_to_point(QUEUE)
    shape = p.service_time_distribution
    for i, name in enumerate(consumer_names(p.consumers)):
        mean = p.service_time * (p.slow_consumer if i == 0 else 1.0)
        handler = (_rejecting(world.stream(f"consumer:{name}:reject"), p.reject_rate)
                   if p.reject_rate > 0 else None)
        Consumer(world, name, broker, queue, service=SERVICE, handler=handler,
                 prefetch=p.prefetch, auto_ack=p.ack_mode == "auto",
                 service_time=distribution(shape, mean,
                                           field_name="service_time_distribution"))
    if p.crash_consumer:
        install(world, [Crash(consumer_names(1)[0], p.crash_at, p.crash_duration)])
    Producer(world, PRODUCER, broker, queue, rate=p.publish_rate, kind=COMMAND, body=ticket)


def capacity(p: Params) -> float:
    """Messages per second the consumers can carry in RabbitMQ's dispatch: an
    optimistic ceiling.

    A consumer busy ``h`` s per message (its mean service time,
    ``slow_consumer`` times longer for kitchen-1) handles at most ``1/h``
    per second.  With manual acks a delivery slot comes back only after the
    round trip of the ack and the next delivery (``2 × network_latency``),
    so a window of ``prefetch`` messages carries at most ``prefetch / (h +
    2 × network_latency)`` per second: with prefetch 1 the consumer waits
    idle through every round trip; a wider window keeps it busy.  The
    broker sends a message to whoever has room, so with a finite prefetch
    the consumers' rates add up.  With an unlimited prefetch, or auto-ack
    (no window at all), it deals them out round-robin: each consumer gets
    ``1/N`` of the messages whatever its speed, so the slowest one caps the
    whole at ``N`` times its own rate.  A rejected message is handled
    again, so only ``1 - reject_rate`` of the handling counts.

    Optimistic: random service times leave a small window empty now and
    then (prefetch 2 at 20 ms a hop carries about 50 of the 60 msg/s this
    says), and the crash is left out (it passes).
    """
    holds = [p.service_time * (p.slow_consumer if i == 0 else 1.0)
             for i in range(p.consumers)]
    if p.ack_mode == "auto" or p.prefetch == 0:
        total = p.consumers / max(holds)
    else:
        trip = 2 * p.network_latency
        total = sum(min(1.0 / h, p.prefetch / (h + trip)) for h in holds)
    return total * (1.0 - p.reject_rate)


def load(p: Params) -> Load:
    """A published message counts as a request.  Each makes a publish, a
    delivery and (manual acks) an ack on the network -- a rejected one a
    nack and another delivery, ``1 / (1 - reject_rate)`` deliveries on
    average; the messaging rows it writes (``trace.mq``: publish, enqueue,
    deliver, ack, consume; ``trace.queues``: a depth change at each) are
    counted with the pool rows, tuples of about their size.  Events: the
    crash and the restart."""
    tries = 1.0 / (1.0 - p.reject_rate)
    acks = 1.0 if p.ack_mode == "manual" else 0.0
    messages = 1.0 + tries * (1.0 + acks)
    rows = 3.0 * tries + 1.0 + 2.0 * tries + 3.0 * tries  # pools + mq + queues
    events = 2.0 / (p.crash_at + p.crash_duration) if p.crash_consumer else 0.0
    return Load(requests_per_s=p.publish_rate, messages_per_request=messages,
                pool_changes_per_request=rows, events_per_s=events)


# -- reports (they read a Result: this module never runs a simulation) ------------------

def _consumers(res: Result) -> list[Consumer]:
    return [node for node in res.world.nodes.values() if isinstance(node, Consumer)]


def consumer_report(res: Result) -> pd.DataFrame:
    """What each consumer of the run did, one row per consumer (any run with
    :class:`~simcomm.messaging.Consumer` nodes, not only this scenario's):

    * ``delivered`` -- deliveries it received (on an open connection);
    * ``consumed`` -- messages its handler finished (their effect happened),
      and ``share`` -- its part of all the consumers' ``consumed``;
    * ``redelivered`` -- of its deliveries, those flagged ``redelivered``
      (the message had been delivered before: to a consumer that crashed,
      or that rejected it);
    * ``processing_time`` -- mean seconds a worker of it was busy per
      message it finished (consumed, or failed by a reject): its busy-time
      integral over the run divided by those messages, so it includes a
      slowdown and, for a consumer that crashed, the work the crash wasted;
    * ``out_of_order`` and ``duplicates`` -- summed over the producers whose
      messages it consumed (:meth:`Result.ordering
      <simcomm.result.Result.ordering>`: consumed after a later-published
      message of the same producer; consumed again);
    * ``lost`` -- messages it received and will never process: auto-acked
      ones it held when it crashed, or whose handler failed.

    ``redelivered``, ``out_of_order`` and ``duplicates`` need the trace (NaN
    with ``trace=False``).  ``report.attrs["summary"]`` holds
    :func:`ordering_summary` of the run.
    """
    import pandas as pd

    consumers = _consumers(res)
    traced = res.world.trace.enabled
    redelivered: dict[str, int] = {}
    order: dict[str, tuple[int, int]] = {}
    if traced:
        for row in res.world.trace.mq:
            if row[1] == "deliver" and row[5] == "redelivered":
                redelivered[row[4]] = redelivered.get(row[4], 0) + 1
        table = res.ordering()
        for name, group in table.groupby("consumer", sort=False):
            order[str(name)] = (int(group["out_of_order"].sum()),
                                int(group["duplicates"].sum()))
    total = sum(c.consumed for c in consumers)
    rows = []
    for c in consumers:
        finished = c.consumed + c.failed
        ooo, dup = order.get(c.name, (0, 0))
        rows.append((c.name, c.received, c.consumed,
                     c.consumed / total if total else math.nan,
                     redelivered.get(c.name, 0) if traced else math.nan,
                     c.busy_seconds(res.until) / finished if finished else math.nan,
                     ooo if traced else math.nan, dup if traced else math.nan, c.lost))
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    report.attrs["summary"] = ordering_summary(res)
    return report


def ordering_summary(res: Result) -> dict[str, Any]:
    """The run's messages in a few numbers: ``published``, ``consumed``
    (copies consumed), ``lost`` (:data:`~simcomm.result.SUMMARY_HELP`'s
    ``messages_lost``), ``queued`` (not settled at the end), ``redeliveries``,
    and over every producer → consumer pair ``out_of_order`` and
    ``duplicates`` (:meth:`Result.ordering
    <simcomm.result.Result.ordering>`).  The order needs the trace: with
    ``trace=False`` those two are NaN (the counts hold without it)."""
    s = res.summary()
    out: dict[str, Any] = {
        "published": s.get("messages_published", 0),
        "consumed": s.get("messages_consumed", 0),
        "lost": s.get("messages_lost", 0),
        "queued": s.get("messages_queued", 0),
        "redeliveries": s.get("redeliveries", 0),
        "out_of_order": math.nan,
        "duplicates": math.nan,
    }
    if res.world.trace.enabled:
        table = res.ordering()
        out["out_of_order"] = int(table["out_of_order"].sum()) if len(table) else 0
        out["duplicates"] = int(table["duplicates"].sum()) if len(table) else 0
    return out


SCENARIO = register(Scenario(
    name="competing-consumers",
    title="Competing consumers on one queue: prefetch, acks, fairness and order",
    description=("An order service publishes commands to one broker queue read by several "
                 "kitchen consumers, each message going to one of them. Prefetch 1 sends work "
                 "to whoever is free (fair dispatch); unlimited prefetch deals it out "
                 "round-robin even to a slow consumer. Crash a consumer: with manual acks its "
                 "messages are redelivered to the others, and the redelivery breaks their "
                 "order; with auto-ack they are lost."),
    params=Params,
    build=build,
    views=("queue_depth", "consumer_share", "message_order"),
    until=60.0,
    capacity=capacity,
    load=load,
))
