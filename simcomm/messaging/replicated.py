"""A replicated broker: a leader and followers, failover after a detection delay.

*Microservices Patterns* §3.3.4 counts the broker as a possible single point
of failure; production brokers remove it by replication -- RabbitMQ's
quorum queues keep each queue on several nodes, one of them the leader,
and when the leader's node fails the followers elect a new leader (Raft)
after a few seconds without hearing from it.  :class:`ReplicatedBroker`
shows that effect on availability:

* ``replicas`` broker nodes ``<name>-1`` .. ``<name>-N`` (each a
  :class:`~simcomm.messaging.Broker`, so each can crash, hang, slow down
  and be cut off); ``<name>-1`` leads at first.
* Clients -- producers, consumers, :func:`~simcomm.messaging.publish` --
  use the ReplicatedBroker as their transport and always send to the
  current leader (the address a client's connection list or a virtual IP
  points them to).  Followers take no client traffic (``not_leader``).
* When the leader crashes, the broker is away as a single one is -- its
  clients' publishes are refused, its consumers' connections reset -- but
  only for ``failover_after`` s (the detection delay: heartbeats missed,
  an election), not until it is repaired: then the first live follower
  leads, holding what the leader had replicated to it, and the consumers'
  next reconnect reaches it.  A leader that is back before the delay runs
  out keeps leading (nothing to fail over); with no follower up, the first
  member to come back leads.  The old leader rejoins as a follower.
* **Replicated** is what survives a crash of a single broker: persistent
  messages on durable queues (delivered-and-unacked ones come back
  redelivered), and the declarations.  Simplified (said, not hidden): the
  replication is synchronous and its traffic is not modelled (followers
  receive no messages), and a quorum is not required -- a lone surviving
  replica keeps serving, where a quorum queue would need a majority.

Counters and contents: each member keeps its own (:attr:`Broker.stats`
counts what it did while it led); :attr:`ReplicatedBroker.stats` adds them
up, and :meth:`contents`, :meth:`queue_depth` read the current leader.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real, is_whole
from simcomm.errors import ParamError
from simcomm.messaging.broker import Broker
from simcomm.messaging.exchanges import DEFAULT_EXCHANGE, default_exchange

if TYPE_CHECKING:
    from simpy.events import Event

    from simcomm.engine.formats import Format
    from simcomm.engine.messages import Message
    from simcomm.engine.nodes import Node
    from simcomm.engine.world import World
    from simcomm.messaging.consumer import Consumer
    from simcomm.messaging.envelope import Delivery
    from simcomm.messaging.exchanges import Exchange
    from simcomm.messaging.queues import Queue

__all__ = ["FAILOVER_AFTER", "ReplicatedBroker"]

#: seconds from a leader's crash to a follower taking over: a few missed
#: heartbeats and an election (RabbitMQ quorum queues: seconds)
FAILOVER_AFTER = 5.0


class ReplicatedBroker:
    """``replicas`` broker nodes behind one transport (see the module docstring).

    ``broker_args`` (``routing_rate``, ``workers``, ``reconnect_interval``,
    ``heartbeat``) go to every member.  Declare the topology on it as on a
    :class:`Broker`; it is replicated to whichever member leads.
    """

    def __init__(self, world: World, name: str = "broker", *, replicas: int = 3,
                 failover_after: float = FAILOVER_AFTER, **broker_args: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ParamError("name", name, "a non-empty string")
        if not is_whole(replicas) or replicas < 2:
            raise ParamError("replicas", replicas, "a whole number >= 2 (a leader and at "
                                                   "least one follower)")
        delay = as_real(failover_after)
        if delay is None or not 0 <= delay < math.inf:
            raise ParamError("failover_after", failover_after, "seconds >= 0 (finite)")
        names = [f"{name}-{i}" for i in range(1, int(replicas) + 1)]
        taken = [n for n in names if n in world.nodes]
        if taken:
            raise ParamError("name", name, f"a name whose members are free ({taken[0]!r} "
                                           f"is taken)")
        self.world = world
        self.name = name
        self.failover_after = delay
        self.members = [Broker(world, n, **broker_args) for n in names]
        clients: set[str] = set()  # one client-side heartbeat timer per consumer
        for member in self.members:
            member.cluster = self
            member._clients = clients
        self.leader: Broker = self.members[0]
        self.reconnect_interval = self.leader.reconnect_interval
        self._pending: Broker | None = None  # a crashed leader awaiting failover
        self.failovers = 0

    # -- leadership ---------------------------------------------------------
    def _member_down(self, member: Broker) -> None:
        """A member crashed (its crash has run: its state is what a restart keeps)."""
        if member is self.leader:
            self._pending = member
            self.world.at(self.world.now + self.failover_after,
                          lambda: self._failover(member))

    def _member_up(self, member: Broker) -> None:
        if self._pending is not None and self._pending is member:
            self._pending = None  # back before the delay ran out: it still leads
        elif not self.leader.up and self._pending is None:
            self._take_over(self.leader, member)  # nobody could take over before

    def _failover(self, old: Broker) -> None:
        if self._pending is not old or old.up:
            return
        follower = next((m for m in self.members if m is not old and m.up), None)
        if follower is None:
            self._pending = None  # the first member back will lead
            return
        self._take_over(old, follower)

    def _take_over(self, old: Broker, new: Broker) -> None:
        """``new`` leads with the state replicated from ``old``."""
        self._pending = None
        if old is new:
            return
        new.exchanges, old.exchanges = old.exchanges, {DEFAULT_EXCHANGE: default_exchange()}
        new.queues, old.queues = old.queues, {}
        new._owners, old._owners = old._owners, {}
        new._closed = dict(old._closed)
        self.leader = new
        self.failovers += 1
        self.world.trace.event(self.world.now, new.name, "failover",
                               f"leads instead of {old.name}")

    # -- topology and channels (on the leader) ------------------------------
    def declare_exchange(self, name: str, type: str = "direct") -> Exchange:
        return self.leader.declare_exchange(name, type)

    def declare_queue(self, name: str, **options: Any) -> Queue:
        return self.leader.declare_queue(name, **options)

    def bind(self, queue: str, exchange: str, key: str = "") -> None:
        self.leader.bind(queue, exchange, key)

    def unbind(self, queue: str, exchange: str, key: str = "") -> None:
        self.leader.unbind(queue, exchange, key)

    def point_to_point(self, name: str, **options: Any) -> str:
        return self.leader.point_to_point(name, **options)

    def publish_subscribe(self, name: str) -> str:
        return self.leader.publish_subscribe(name)

    def channel_kind(self, name: str) -> str | None:
        return self.leader.channel_kind(name)

    def resolve(self, channel: str, routing_key: str = "") -> tuple[str, str]:
        return self.leader.resolve(channel, routing_key)

    # -- the Transport interface (client side: always the current leader) ---
    def publish(self, node: Node, channel: str, body: Any = None, *, routing_key: str = "",
                kind: str = "event", key: Any = None, persistent: bool = True,
                confirm: bool = False, correlation_id: int | None = None,
                reply_to: str | None = None, headers: dict | None = None,
                size: int | None = None, format: Format | None = None,
                trace_id: int | None = None) -> Event | None:
        return self.leader.publish(node, channel, body, routing_key=routing_key, kind=kind,
                                   key=key, persistent=persistent, confirm=confirm,
                                   correlation_id=correlation_id, reply_to=reply_to,
                                   headers=headers, size=size, format=format,
                                   trace_id=trace_id)

    def resolve_consumer(self, consumer: str, channel: str, *, subscription: str | None,
                         durable: bool) -> str:
        return self.leader.resolve_consumer(consumer, channel, subscription=subscription,
                                            durable=durable)

    def attach(self, consumer: Consumer) -> None:
        self.leader.attach(consumer)

    def connect(self, consumer: Consumer, delay: float = 0.0) -> None:
        self.leader.connect(consumer, delay)

    def settle(self, consumer: Consumer, delivery: Delivery, ack: bool,
               requeue: bool = False, multiple: bool = False) -> None:
        self.leader.settle(consumer, delivery, ack, requeue, multiple)

    def disconnect(self, consumer: Consumer) -> None:
        self.leader.disconnect(consumer)

    def control(self, consumer: Consumer, msg: Message) -> None:
        self.leader.control(consumer, msg)

    # -- what it holds --------------------------------------------------------
    @property
    def queues(self) -> dict[str, Queue]:
        return self.leader.queues

    @property
    def exchanges(self) -> dict[str, Exchange]:
        return self.leader.exchanges

    def queue_depth(self, name: str) -> tuple[int, int]:
        return self.leader.queue_depth(name)

    def contents(self) -> list[tuple[str, int, str, str | None]]:
        return self.leader.contents()

    @property
    def stats(self) -> dict[str, Any]:
        """Every member's counters added up (``ready`` / ``unacked``: the leader's)."""
        total: dict[str, Any] = {}
        for member in self.members:
            for key, value in member.stats.items():
                if isinstance(value, dict):
                    into = total.setdefault(key, {})
                    for reason, n in value.items():
                        into[reason] = into.get(reason, 0) + n
                else:
                    total[key] = total.get(key, 0) + value
        total["failovers"] = self.failovers
        return total
