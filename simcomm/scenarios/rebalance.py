"""``rebalance``: members join, crash and leave a consumer group; eager vs cooperative.

*Microservices Patterns* §3.3.5 ("each shard has one receiver of the group at
a time, reassigned when receivers start and stop") on Kafka's group protocol
(REFERENCE §3).  The ``order-service`` sends its orders' events, keyed by
order id, to the ``order-events`` topic (``partitions`` partitions); the
``order-history`` group starts with ``consumers`` members
(``order-history-1`` ...) and, on a schedule:

* ``join`` -- a new member, ``order-history-<consumers + 1>``, starts at
  ``join_at`` and joins: the coordinator rebalances (why ``join``);
* ``crash`` -- ``order-history-1`` crashes at ``crash_at`` and stays down
  ``crash_duration`` s: it says nothing, so the coordinator notices only when
  its heartbeats have been missing for ``session_timeout`` s (why
  ``session_timeout``); meanwhile its partitions are read by nobody, and the
  records it applied but had not committed are applied again by the next
  owner (commit ``after``: at-least-once);
* ``leave`` -- ``order-history-<consumers>`` (the joiner when the group
  starts with one member) shuts down cleanly at ``leave_at``: it commits and
  sends LeaveGroup, and the group rebalances at once (why ``leave``).

Each rebalance is run with the ``protocol`` the ``assignor`` allows:
**eager** -- every member revokes every partition, then all get the new
assignment: a member hears of the rebalance at its next heartbeat (within
``heartbeat_interval``), finishes the batch in hand and revokes, and from
the last revocation to ``rebalance_end`` no member of the group consumes
(the stop-the-world pause, ``res.rebalances()``), as in Kafka;
**cooperative** (``cooperative-sticky``) -- members keep the partitions that
stay where they are and go on consuming them; a partition that moves is
revoked by its owner in the first round and assigned in a follow-up
rebalance (why ``follow_up``): two rounds, but only the moved partitions
pause.  ``sticky`` keeps more partitions in place than ``range`` or
``roundrobin`` when a member comes or goes (``res.assignments()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simcomm.engine.faults import Crash, install
from simcomm.engine.world import World
from simcomm.scenarios import order_lifecycle as ol
from simcomm.scenarios.base import Load, Scenario, param, register

__all__ = ["Params", "capacity", "check", "crashing", "joining", "leaving", "load"]


@dataclass(frozen=True)
class Params:
    partitions: int = param(
        6, range=(1, 48), unit="partitions", help="partitions of the order-events topic")
    consumers: int = param(
        3, range=(1, 12), unit="members",
        help="members of the order-history group at the start")
    assignor: str = param(
        "range", choices=ol.ASSIGNORS,
        help="partition.assignment.strategy: range and roundrobin reshuffle, sticky keeps "
             "what it can, cooperative-sticky keeps it and rebalances cooperatively")
    protocol: str = param(
        "auto", choices=ol.PROTOCOLS,
        help="rebalance protocol: eager (every member revokes everything: stop the world), "
             "cooperative (only moved partitions pause, in two rounds; needs "
             "cooperative-sticky); auto = cooperative for cooperative-sticky, else eager")
    join: bool = param(True, help="a new member starts at join_at and joins the group")
    join_at: float = param(
        10.0, range=(0.0, 3600.0), unit="s", step=0.5, help="when the new member starts")
    crash: bool = param(
        True, help="order-history-1 crashes at crash_at: noticed after session_timeout")
    crash_at: float = param(
        25.0, range=(0.0, 3600.0), unit="s", step=0.5, help="when order-history-1 crashes")
    crash_duration: float = param(
        60.0, range=(0.1, 3600.0), unit="s", step=0.1,
        help="how long order-history-1 stays down before it restarts and rejoins")
    leave: bool = param(
        True, help="the last of the first members shuts down cleanly at leave_at (LeaveGroup)")
    leave_at: float = param(
        45.0, range=(0.0, 3600.0), unit="s", step=0.5, help="when that member leaves")
    session_timeout: float = param(
        10.0, range=(1.0, 300.0), unit="s", step=0.5,
        help="a member silent this long is expelled (session.timeout.ms: 45 s since Kafka "
             "3.0, 10 s before; heartbeats every 3 s)")
    commit: str = param(
        "after", choices=ol.COMMITS,
        help="when members commit offsets: before processing (at-most-once), after "
             "(at-least-once: a crash or a rebalance re-delivers), auto (every 5 s)")
    dedup: str = param(
        "none", choices=ol.DEDUPS,
        help="duplicate handling: none, processed_ids (a processed-ids table), idempotent")
    order_rate: float = param(
        5.0, range=(0.1, 200.0), unit="orders/s", step=0.1,
        help="mean rate of new orders (Poisson), three events each")
    service_time: float = param(
        0.05, range=(0.001, 5.0), unit="s", step=0.001,
        help="mean time a member takes to apply one event (exponential)")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001, help="one-way network delay of every hop")


def crashing() -> str:
    """The member that crashes: ``order-history-1``."""
    return ol.member_names(1)[0]


def leaving(p: Params) -> str:
    """The member that leaves cleanly: the last of the first ones -- or, when the
    group starts with one member, the one that joined (if any), else that one
    (if it crashed before, it is down: it sends nothing and does not come back,
    as ``KafkaConsumer.close()`` on a dead process)."""
    if p.consumers >= 2 or not p.join:
        return ol.member_names(p.consumers)[-1]
    return joining(p)


def joining(p: Params) -> str:
    """The member that joins later: the one after the first ones."""
    return ol.member_names(p.consumers + 1)[-1]


def check(p: Params) -> None:
    """Kafka's rule: the cooperative protocol needs cooperative-sticky."""
    ol.check_delivery("all", False, p.protocol, p.assignor)


def lifecycle_params(p: Params) -> ol.Params:
    """The ``order-lifecycle`` settings of the run (sharded, keyed by order id)."""
    return ol.Params(channel="sharded", key="order_id", partitions=p.partitions,
                     consumers=p.consumers, assignor=p.assignor, protocol=p.protocol,
                     session_timeout=p.session_timeout, commit=p.commit, dedup=p.dedup,
                     order_rate=p.order_rate, service_time=p.service_time,
                     network_latency=p.network_latency)


def build(world: World, p: Params) -> None:
    lp = lifecycle_params(p)
    sharded = ol.build_sharded(world, lp)
    members: dict[str, Any] = {
        name: world.nodes[name] for name in ol.member_names(p.consumers)}
    if p.join:
        ol.make_member(world, sharded.cluster, lp, joining(p), processed=sharded.processed,
                       start=p.join_at)
    if p.crash:
        install(world, [Crash(crashing(), p.crash_at, p.crash_duration)])
    if p.leave:
        member: Any = members.get(leaving(p)) or world.nodes[leaving(p)]
        world.at(p.leave_at, member.leave)


def capacity(p: Params) -> float:
    """Events per second the group can apply with its first members."""
    return ol.capacity(lifecycle_params(p))


def load(p: Params) -> Load:
    """As ``order-lifecycle``'s sharded channel, with the crash's two events."""
    ld = ol.load(lifecycle_params(p))
    events = 2.0 / (p.crash_at + p.crash_duration) if p.crash else 0.0
    return Load(ld.requests_per_s, ld.messages_per_request, ld.pool_changes_per_request,
                events)


SCENARIO = register(Scenario(
    name="rebalance",
    title="Rebalancing a consumer group: members join, crash and leave; eager vs cooperative",
    description=("A consumer group reads a partitioned topic of order events while a member "
                 "joins, one crashes (noticed only after the session timeout) and one leaves "
                 "cleanly. Each change rebalances the group: eager rebalancing stops every "
                 "member until the new assignment is in; cooperative-sticky keeps what stays "
                 "and moves the rest in two rounds. Watch the partition strips and the lag."),
    params=Params,
    build=build,
    views=("partition_assignment", "consumer_lag", "key_order"),
    until=60.0,
    check=check,
    capacity=capacity,
    load=load,
))
