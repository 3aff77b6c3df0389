"""``brokers``: a broker or no broker, under the same faults.

*Microservices Patterns* §3.3.4 sets brokered messaging beside brokerless
messaging: a broker buffers, decouples and is flexible, but it is one more
hop, a possible bottleneck and a single point of failure; without one the
latency is lower and there is no broker to fail, but both ends must be up
(REFERENCE §6).  Here the ``order-service`` publishes ``CreateTicket``
commands as a Poisson stream on one point-to-point channel,
``kitchen-commands``, read by ``consumers`` instances of the kitchen
service (competing consumers, each message to one of them), and one knob,
``transport``, switches how the messages travel:

* ``broker`` -- through a RabbitMQ-like broker node (a durable queue on the
  default exchange, manual acks, prefetch :data:`PREFETCH`): publish →
  broker → consumer, two hops, and each publish costs the broker
  ``1 / broker_routing_rate`` s of CPU;
* ``brokerless`` -- ZeroMQ-style: the producer sends straight to the
  consumers (PUSH, round-robin over the connected ones), one hop; while a
  consumer is unreachable its pipe at the producer buffers at most
  ``high_water_mark`` messages, and drops what comes beyond.

and the same ``fault`` strikes either design from ``fault_at`` for
``fault_duration`` seconds:

* ``consumer-down`` -- every kitchen instance crashes (the consuming
  service is down) and restarts at the end of the window.  The broker keeps
  the messages in its queue and delivers them when the consumers are back:
  late, but none lost.  Brokerless, the producer's pipes fill up to the
  high-water mark and the rest is lost.
* ``broker-down`` -- the broker crashes and restarts.  Messages published
  meanwhile are refused and lost (the producer does not use confirms to
  publish again); persistent messages on the durable queue survive the
  crash (``persistent=False``: they are lost too); the consumers reconnect
  every 5 s (Spring AMQP's recovery interval), so messages after the
  restart wait up to that long.  Brokerless there is no broker: **nothing
  happens**, which is the point.
* ``slow-consumer`` -- every kitchen instance works ``slowdown`` times
  slower.  The broker's queue absorbs the backlog; brokerless the backlog
  waits with the consumers (or in the producer's pipes).

A message counts as **late** if it is consumed more than ``late_after``
seconds after it was published.  :func:`transport_report` sums a run up:
latency percentiles, published, consumed, lost, late, and availability
(the share of the published messages consumed by the end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real
from simcomm.engine.faults import Crash, Fault, Slowdown, install
from simcomm.engine.messages import COMMAND
from simcomm.engine.network import Link
from simcomm.engine.randomness import distribution
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.messaging import Broker, Consumer, Producer, ReplicatedBroker
from simcomm.scenarios.base import Load, Scenario, param, register
from simcomm.scenarios.payloads import ticket

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from simcomm.messaging import Transport
    from simcomm.result import Result

__all__ = [
    "BROKER",
    "CHANNEL",
    "FAULTS",
    "PREFETCH",
    "PRODUCER",
    "TABLE_COLUMNS",
    "TRANSPORTS",
    "Params",
    "broker_node",
    "capacity",
    "consumer_names",
    "load",
    "transport_report",
    "transport_table",
]

BROKER = "broker"
PRODUCER = "order-service"
CHANNEL = "kitchen-commands"
SERVICE = "kitchen"

TRANSPORTS = ("broker", "brokerless")

#: Columns of :func:`transport_table`.
TABLE_COLUMNS = ("transport", "fault", "published", "consumed", "lost", "pending", "late",
                 "availability", "on_time_share", "latency_p50", "latency_p95", "latency_max",
                 "duplicates")
FAULTS = ("none", "consumer-down", "broker-down", "slow-consumer")

#: Unacknowledged messages the broker lets each consumer hold: enough that
#: the round trip of an ack never leaves a consumer waiting (prefetch is
#: the subject of the ``competing-consumers`` scenario).
PREFETCH = 10


def consumer_names(n: int) -> list[str]:
    """``kitchen-1`` ... ``kitchen-n``."""
    return [f"{SERVICE}-{i}" for i in range(1, n + 1)]


@dataclass(frozen=True)
class Params:
    transport: str = param(
        "broker", choices=TRANSPORTS,
        help="how the messages travel: through a broker (RabbitMQ-like, two hops, buffers "
             "in a durable queue) or brokerless (ZeroMQ-like, straight to a consumer, one "
             "hop, a bounded pipe per consumer)")
    fault: str = param(
        "consumer-down", choices=FAULTS,
        help="what goes wrong from fault_at for fault_duration s: nothing, every consumer "
             "down, the broker down (brokerless: there is no broker, so nothing happens -- "
             "that is the lesson), or every consumer slow")
    fault_at: float = param(
        20.0, range=(0.0, 3600.0), unit="s", step=1.0, help="when the fault starts")
    fault_duration: float = param(
        12.0, range=(0.1, 3600.0), unit="s", step=0.1,
        help="how long it lasts (then the crashed node restarts, or the slowdown ends)")
    publish_rate: float = param(
        20.0, range=(0.1, 1000.0), unit="msg/s", step=0.1,
        help="mean rate at which the order service publishes commands (Poisson)")
    consumers: int = param(
        2, range=(1, 20), unit="consumers",
        help="kitchen instances reading the channel (competing consumers)")
    service_time: float = param(
        0.02, range=(0.001, 10.0), unit="s", step=0.001,
        help="mean time a consumer's handler takes for one message (exponential)")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001,
        help="one-way network delay of every hop (constant: TCP keeps each connection's "
             "messages in order); the broker adds a hop")
    broker_routing_rate: float = param(
        1000.0, range=(1.0, 100000.0), unit="msg/s", step=1.0,
        help="publishes per second the broker can route (each costs it 1/rate s of CPU); "
             "below the publish rate the broker is the bottleneck")
    broker_replicas: int = param(
        1, range=(1, 5), unit="nodes",
        help="broker nodes: 1 is a single point of failure; with more, a follower takes "
             "over the queues 5 s after the leader crashes (a replicated broker, as "
             "RabbitMQ's quorum queues), so broker-down only pauses the messages")
    persistent: bool = param(
        True, help="publish persistent messages (delivery mode 2): they survive a broker "
                   "crash on the durable queue; transient ones are lost with it")
    high_water_mark: int = param(
        100, range=(0, 100000), unit="messages",
        help="brokerless: messages the producer's pipe to each consumer holds while that "
             "consumer is unreachable (and each consumer's receive buffer), beyond which "
             "they are dropped (ZeroMQ's SNDHWM / RCVHWM, default 1000; 0 = no limit)")
    slowdown: float = param(
        10.0, range=(1.0, 100.0), unit="x", step=0.5,
        help="slow-consumer: how many times slower every consumer works during the fault")
    late_after: float = param(
        1.0, range=(0.001, 3600.0), unit="s", step=0.1,
        help="a message consumed more than this long after it was published counts as late")


def broker_node(p: Params) -> str:
    """The node the broker-down fault crashes: the broker, or the leader of a
    replicated one (``broker-1``)."""
    return BROKER if p.broker_replicas == 1 else f"{BROKER}-1"


def _transport(world: World, p: Params) -> Transport:
    if p.transport == "broker":
        if p.broker_replicas > 1:
            return ReplicatedBroker(world, BROKER, replicas=p.broker_replicas,
                                    routing_rate=p.broker_routing_rate)
        return Broker(world, BROKER, routing_rate=p.broker_routing_rate)
    from simcomm.messaging.brokerless import Brokerless

    return Brokerless(world, high_water_mark=p.high_water_mark)


def build(world: World, p: Params) -> None:
    # a constant delay: AMQP and ZeroMQ both run over TCP, which never lets a
    # message overtake an earlier one on the same connection
    world.network.set_default(Link(latency=p.network_latency))
    transport = _transport(world, p)
    channel = transport.point_to_point(CHANNEL)
    names = consumer_names(p.consumers)
    for name in names:
        Consumer(world, name, transport, channel, service=SERVICE, prefetch=PREFETCH,
                 service_time=distribution("exponential", p.service_time))
    faults: list[Fault] = []
    if p.fault == "consumer-down":
        faults = [Crash(name, p.fault_at, p.fault_duration) for name in names]
    elif p.fault == "slow-consumer":
        faults = [Slowdown(name, p.fault_at, p.fault_duration, factor=p.slowdown)
                  for name in names]
    elif p.fault == "broker-down" and p.transport == "broker":
        faults = [Crash(broker_node(p), p.fault_at, p.fault_duration)]
    install(world, faults)
    Producer(world, PRODUCER, transport, channel, rate=p.publish_rate, kind=COMMAND,
             body=ticket, persistent=p.persistent)


def capacity(p: Params) -> float:
    """Messages per second the design can carry when nothing is wrong: an
    optimistic ceiling.

    Each consumer handles at most ``1 / service_time``.  Through a broker
    with manual acks a consumer's window of :data:`PREFETCH` deliveries
    frees a slot only after the ack's round trip (two hops), so it carries
    at most ``PREFETCH / (service_time + 2 × network_latency)`` -- the same
    unless the network is very slow -- and every message must also be
    routed, at most ``broker_routing_rate`` per second.  Brokerless there is
    neither.  The fault is left out (it passes).
    """
    if p.transport == "brokerless":
        return p.consumers / p.service_time
    each = min(1.0 / p.service_time,
               PREFETCH / (p.service_time + 2 * p.network_latency))
    return min(p.consumers * each, p.broker_routing_rate)


def load(p: Params) -> Load:
    """A published message counts as a request.  On the network it is a
    publish, a delivery and an ack through a broker, one message
    brokerless; its ``trace.mq`` rows (publish, enqueue, deliver, ack,
    consume through a broker; publish, deliver, consume without), the
    queue-depth rows and the pool rows (the consumer's; the broker's
    routing worker) are counted as pool rows, tuples of about that size.
    Events: the fault's start and end (a crash: crash and restart, per node
    it strikes)."""
    brokered = p.transport == "broker"
    nodes = 0
    if p.fault in ("consumer-down", "slow-consumer"):
        nodes = p.consumers
    elif p.fault == "broker-down" and brokered:
        nodes = 1
    events = 2.0 * nodes / (p.fault_at + p.fault_duration)
    if brokered:
        return Load(requests_per_s=p.publish_rate, messages_per_request=3.0,
                    pool_changes_per_request=3.0 + 5.0 + 3.0 + 2.0, events_per_s=events)
    return Load(requests_per_s=p.publish_rate, messages_per_request=1.0,
                pool_changes_per_request=3.0 + 3.0, events_per_s=events)


# -- the report (it reads a Result: this module never runs a simulation) ----------------

def transport_report(res: Result, late_after: float | None = None) -> dict[str, Any]:
    """What the messages of a run went through, as numbers.

    * ``published`` -- messages published;
    * ``consumed`` -- of them, those a consumer's handler finished with by
      the end (and, through a broker, acked);
    * ``lost`` -- dropped on the way, for any reason (``lost_by_reason``:
      refused by a broker that was down -- the network's ``node_down`` --,
      ``broker_crash``, ``hwm`` beyond a brokerless pipe's high-water mark,
      ``consumer_crash``, ...);
    * ``pending`` -- neither: still queued, unacked or on the wire at the
      end (``published = consumed + lost + pending``);
    * ``late`` -- consumed more than ``late_after`` s after publishing
      (default: the run's ``late_after`` parameter, else 1 s), and
      ``on_time`` the rest of ``consumed``;
    * ``availability`` -- ``consumed / published``: the share of the
      published messages consumed by the end (late ones included: the
      channel made them available, if slowly); ``on_time_share`` --
      ``on_time / published``;
    * ``latency_p50``, ``latency_p95``, ``latency_max`` -- publish to
      consume, over the consumed messages (seconds);
    * ``duplicates`` -- messages consumed more than once (a redelivery after
      an ack that never reached a crashed broker).

    Counts messages, not copies: on a point-to-point channel each message
    is one copy.  The counts come from :meth:`Result.summary
    <simcomm.result.Result.summary>` and :meth:`Result.message_ledger
    <simcomm.result.Result.message_ledger>`, so they hold with
    ``trace=False`` too; what needs each message's times (``late``,
    ``on_time``, the latencies, ``duplicates``) is NaN then.
    """
    import numpy as np

    if late_after is None:
        late_after = float(getattr(res.params, "late_after", 1.0))
    else:
        seconds = as_real(late_after)
        if seconds is None or not 0 < seconds < math.inf:
            raise ParamError("late_after", late_after, "seconds > 0 (finite), or None for "
                                                       "the run's late_after")
        late_after = seconds
    s = res.summary()
    published = int(s.get("messages_published", 0))
    consumed = int(s.get("messages_consumed", 0))
    lost = int(s.get("messages_lost", 0))
    reasons = res.message_ledger().get("dropped_by_reason", {}) if published else {}
    nan = math.nan
    late: float = nan
    p50 = p95 = worst = duplicates = nan
    if res.world.trace.enabled:
        copies = res.deliveries
        lat = copies.loc[copies["fate"] == "consumed", "latency"].to_numpy(dtype=float)
        lat = lat[np.isfinite(lat)]
        late = int((lat > late_after).sum())
        if lat.size:
            p50, p95 = (float(x) for x in np.percentile(lat, [50, 95]))
            worst = float(lat.max())
        duplicates = int((copies["consumes"] > 1).sum())
    return {
        "transport": getattr(res.params, "transport", None),
        "fault": getattr(res.params, "fault", None),
        "published": published,
        "consumed": consumed,
        "lost": lost,
        "pending": published - consumed - lost,
        "late": late,
        "on_time": consumed - late,
        "availability": consumed / published if published else nan,
        "on_time_share": (consumed - late) / published if published else nan,
        "latency_p50": p50,
        "latency_p95": p95,
        "latency_max": worst,
        "duplicates": duplicates,
        "lost_by_reason": {str(k): int(v) for k, v in sorted(reasons.items())},
        "late_after": late_after,
    }


def transport_table(results: Iterable[Result], late_after: float | None = None
                    ) -> pd.DataFrame:
    """:func:`transport_report` of each run in ``results``, one row each
    (:data:`TABLE_COLUMNS`), to set broker and brokerless side by side::

        runs = [simcomm.run("brokers", transport=t, fault=f)
                for f in ("consumer-down", "broker-down") for t in ("broker", "brokerless")]
        transport_table(runs)
    """
    import pandas as pd

    rows = []
    for res in results:
        r = transport_report(res, late_after)
        rows.append(tuple(r[c] for c in TABLE_COLUMNS))
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


SCENARIO = register(Scenario(
    name="brokers",
    title="Broker or brokerless messaging under the same faults",
    description=("An order service sends commands to kitchen consumers through a broker or "
                 "straight to them (brokerless). Take the consumers down: the broker buffers "
                 "and delivers late, brokerless loses what its high-water mark cannot hold. "
                 "Take the broker down: the brokered design loses and delays messages, "
                 "brokerless does not care. Brokerless is one hop faster; a broker that routes "
                 "slower than the publish rate is the bottleneck."),
    params=Params,
    build=build,
    views=("message_latency", "queue_depth", "message_flow"),
    until=60.0,
    capacity=capacity,
    load=load,
))
