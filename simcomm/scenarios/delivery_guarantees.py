"""``delivery-guarantees``: what acks, idempotence, the commit point and dedup buy, under crashes.

*Microservices Patterns* §3.3.6 ("handling duplicate messages") on Kafka's
delivery rules (REFERENCE §3).  The ``order-service`` sends its orders'
events (``OrderCreated`` → ``OrderRevised`` → ``OrderCancelled``, keyed by
order id) to the sharded ``order-events`` topic of a 3-broker log cluster;
the ``order-history`` consumer group applies them.  Three faults strike the
same run, each aimed at one guarantee:

* **a lossy produce path** (``produce_loss``): that share of the messages
  between the order service and the brokers is lost, both ways.  A lost
  request or response times out (``request_timeout``) and the batch is sent
  again.  Without idempotence a batch whose response was lost is appended
  twice (a **duplicate**, cause ``retry in flight``), and a batch retried
  behind a later one in flight lands after it (a **reorder**); the
  idempotent producer's sequence numbers let the leader drop the repeat and
  refuse the overtaking batch, so neither happens.
* **a leader crash** (``crash_leader``): the broker leading partition 0
  (and others) is cut off from its followers for ``leader_isolation`` s --
  the order service still reaches it -- then dies; 9 s later a follower
  from the in-sync set leads.  With ``acks=1`` the leader acknowledged what
  it appended while cut off, though no follower had it: those records are
  truncated away (**lost**, cause ``leader failover``).  With ``acks=all`` a
  record is acknowledged only once every in-sync replica has it, so none is
  lost (the producer sends the unacknowledged ones again); with ``acks=0``
  the producer never learns what the dead leader or the lossy network
  swallowed.
* **a consumer crash** (``crash_consumer``): ``order-history-1`` dies while
  applying a polled batch -- by default half a second into its first one,
  the records that waited for the group's first assignment (3 s,
  ``group.initial.rebalance.delay.ms``); its partitions go to the others
  after the session timeout, from the last committed offset.  Committed **before** processing
  (at-most-once) the rest of the batch is never applied (**lost**, cause
  ``commit before processing``); committed **after** (at-least-once) what it
  applied since its last commit is applied again (**duplicates**, cause
  ``crash before commit``) -- unless the consumer deduplicates (``dedup``:
  a processed-ids table updated with the business data, or an idempotent
  effect: the repeat is a ``skip``, not an ``apply``).

:func:`simcomm.sweeps.delivery_matrix` runs this scenario over every
combination of the four settings and several seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from simcomm.engine.world import World
from simcomm.scenarios import order_lifecycle as ol
from simcomm.scenarios.base import Load, Scenario, param, register

__all__ = ["Params", "capacity", "lifecycle_params", "load"]


@dataclass(frozen=True)
class Params:
    acks: str = param(
        "all", choices=ol.ACKS,
        help="producer acks (acks): 0 = do not wait, 1 = the leader appended it (lost if it "
             "dies before a follower fetched it), all = every in-sync replica has it")
    idempotence: bool = param(
        True, help="idempotent producer (enable.idempotence): the brokers drop a retried "
                   "batch they already appended and refuse one that overtook another, so "
                   "retries neither duplicate nor reorder; needs acks=all")
    commit: str = param(
        "after", choices=ol.COMMITS,
        help="when the group commits offsets: before processing (at-most-once: a crash loses "
             "the rest of the polled batch), after (at-least-once: a crash applies again "
             "what was not committed), auto (every 5 s, and before a rebalance)")
    dedup: str = param(
        "none", choices=ol.DEDUPS,
        help="duplicate handling by the consumer: none, processed_ids (record ids kept in the "
             "service's database, in the same transaction as the business data), idempotent "
             "(applying twice changes nothing)")
    produce_loss: float = param(
        0.01, range=(0.0, 0.5), unit="fraction", step=0.01,
        help="share of the messages between the order service and the brokers lost (both "
             "ways): requests time out and are retried")
    request_timeout: float = param(
        1.0, range=(0.05, 60.0), unit="s", step=0.05,
        help="how long the producer waits for a produce response before sending the batch "
             "again (request.timeout.ms; Kafka's default 30 s)")
    crash_leader: bool = param(
        True, help="crash the broker leading partition 0 at crash_leader_at: with acks=1 what "
                   "it acknowledged and no follower had fetched is lost at the failover")
    crash_leader_at: float = param(
        8.0, range=(0.0, 3600.0), unit="s", step=0.5, help="when the leader crashes")
    crash_leader_for: float = param(
        20.0, range=(0.1, 3600.0), unit="s", step=0.1,
        help="how long it stays down (a follower leads after 9 s, broker.session.timeout.ms)")
    leader_isolation: float = param(
        2.0, range=(0.0, 60.0), unit="s", step=0.1,
        help="for this long before its crash the leader is cut off from its followers (the "
             "order service still reaches it): with acks=1 what it acknowledges meanwhile "
             "is on no follower")
    crash_consumer: bool = param(
        True, help="crash order-history-1 at crash_at, in the middle of a polled batch")
    crash_at: float = param(
        3.5, range=(0.0, 3600.0), unit="s", step=0.1,
        help="when order-history-1 crashes: at 3.5 s it is half a second into its first "
             "batch, the records that waited 3 s for the group's first assignment")
    crash_duration: float = param(
        5.0, range=(0.1, 3600.0), unit="s", step=0.1,
        help="how long order-history-1 stays down before it restarts and rejoins")
    partitions: int = param(
        6, range=(1, 48), unit="partitions", help="partitions of the order-events topic")
    consumers: int = param(
        3, range=(1, 12), unit="instances", help="members of the order-history group")
    order_rate: float = param(
        20.0, range=(0.1, 200.0), unit="orders/s", step=0.1,
        help="mean rate of new orders (Poisson), three events each")
    service_time: float = param(
        0.02, range=(0.001, 5.0), unit="s", step=0.001,
        help="mean time a member takes to apply one event (exponential)")
    session_timeout: float = param(
        6.0, range=(1.0, 300.0), unit="s", step=0.5,
        help="a crashed member is expelled after this silence and its partitions reassigned "
             "(session.timeout.ms; Kafka's default 45 s)")
    network_latency: float = param(
        0.002, range=(0.0, 0.5), unit="s", step=0.001, help="one-way network delay of every hop")


def check(p: Params) -> None:
    """Kafka's own rule: ``enable.idempotence`` needs ``acks=all``."""
    ol.check_delivery(p.acks, p.idempotence)


def lifecycle_params(p: Params) -> ol.Params:
    """The ``order-lifecycle`` settings this run is: its sharded channel, keyed by
    order id, with these fields (every other one at its default)."""
    shared = {f.name: getattr(p, f.name) for f in fields(p)}
    return ol.Params(channel="sharded", key="order_id", **shared)


def build(world: World, p: Params) -> None:
    ol.build(world, lifecycle_params(p))


def capacity(p: Params) -> float:
    """Events per second the group can apply (:func:`order_lifecycle.capacity
    <simcomm.scenarios.order_lifecycle.capacity>`)."""
    return ol.capacity(lifecycle_params(p))


def load(p: Params) -> Load:
    """As ``order-lifecycle``'s sharded channel."""
    return ol.load(lifecycle_params(p))


SCENARIO = register(Scenario(
    name="delivery-guarantees",
    title="Delivery guarantees: acks, idempotence, commit point and dedup under crashes",
    description=("The order service sends its orders' events to a partitioned topic through "
                 "a lossy network; a leader broker and a consumer crash mid-run. Switch acks, "
                 "the idempotent producer, the commit point and the consumer's "
                 "deduplication: acks=1 loses what the dead leader acknowledged, retries "
                 "without idempotence duplicate and reorder, committing before processing "
                 "loses the crashed consumer's batch, committing after applies it twice -- "
                 "unless the consumer deduplicates."),
    params=Params,
    build=build,
    views=("delivery_causes", "key_order", "consumer_lag"),
    until=30.0,
    check=check,
    capacity=capacity,
    load=load,
))
