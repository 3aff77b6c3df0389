"""Asynchronous messaging: channels, a RabbitMQ-like broker, producers and consumers.

*Microservices Patterns* ch. 3.3: services exchange messages over channels
-- point-to-point (one consumer gets each message: commands) and
publish-subscribe (each subscription gets a copy: events).  This package
holds:

* the pure pieces: :func:`topic_matches` (RabbitMQ's topic rule) and
  :class:`Exchange` (direct, fanout, topic, the default exchange);
* :class:`Broker` -- a broker node with RabbitMQ's semantics (REFERENCE
  §4): queues with competing consumers, prefetch, manual and automatic
  acks, nack / reject and requeue to the original position, redelivery,
  dead-letter exchanges, delivery limits, length limits, persistence
  across a crash, publisher confirms;
* :class:`Consumer` -- a service instance that reads a queue or a
  subscription, and :class:`Reject` for a handler to nack;
* :func:`publish` from any node, and :class:`Producer`, a Poisson publisher;
* :class:`Brokerless` -- ZeroMQ-style messaging without a broker, and
  :class:`Transport` -- what it and a broker share, so one knob switches
  between them; :class:`ReplicatedBroker` -- a leader and followers, so the
  broker is no longer a single point of failure;
* :mod:`simcomm.messaging.styles` -- the five interaction styles on either;
* :class:`LogCluster` -- Kafka-like brokers (:class:`LogBroker`) holding
  partitioned, replicated logs (:class:`PartitionLog` of :class:`Record`):
  leaders and followers, the high watermark, acks 0/1/all, failover, the
  idempotent producer's dedup (REFERENCE §3); its requests are the
  :mod:`simcomm.messaging.protocol` bodies.

    >>> from simcomm.engine import World
    >>> from simcomm.messaging import Broker, Consumer, Producer
    >>> world = World(seed=1)
    >>> broker = Broker(world)
    >>> orders = broker.point_to_point("orders")
    >>> _ = Producer(world, "web", broker, orders, rate=5.0, count=10)
    >>> consumer = Consumer(world, "billing", broker, orders, service_time=0.01)
    >>> _ = world.run(until=100)
    >>> consumer.consumed
    10

Everything that crosses between nodes is a network message, and every
message's life is recorded in ``world.trace.mq`` (publish, enqueue,
deliver, ack, nack, requeue, dead_letter, drop, consume, confirm) and each
queue's depth in ``world.trace.queues``.
"""

from simcomm.messaging.assignors import (
    ASSIGNORS,
    TopicPartition,
    cooperative_sticky_assign,
    moved_partitions,
    range_assign,
    round_robin_assign,
    sticky_assign,
)
from simcomm.messaging.broker import DROP_REASONS, HEARTBEAT, RECONNECT_INTERVAL, Broker
from simcomm.messaging.brokerless import HIGH_WATER_MARK, Brokerless
from simcomm.messaging.cluster import LogBroker, LogCluster
from simcomm.messaging.consumer import ON_ERROR, Consumer, DeliveryHandler, Reject
from simcomm.messaging.database import Database, LogEntry, Transaction
from simcomm.messaging.envelope import Delivery, Envelope
from simcomm.messaging.exchanges import DEFAULT_EXCHANGE, EXCHANGE_TYPES, Exchange
from simcomm.messaging.group import PROTOCOLS, GroupCoordinator, GroupState
from simcomm.messaging.group_consumer import (
    COMMIT_MODES,
    DEDUP_MODES,
    OFFSET_RESETS,
    GroupConsumer,
    ProcessedIds,
    RecordContext,
)
from simcomm.messaging.log import PartitionLog, Record, RecordBatch
from simcomm.messaging.log_producer import LogProducer
from simcomm.messaging.outbox import (
    OUTBOX_DESIGNS,
    OUTBOX_TABLE,
    CrashBetweenWrites,
    LogTailer,
    Outbox,
    PollingPublisher,
    PublishingService,
    install_faults,
)
from simcomm.messaging.partitioner import (
    StickyPartitioner,
    murmur2,
    partition_for_key,
    to_positive,
)
from simcomm.messaging.producer import APP_KINDS, Producer, publish
from simcomm.messaging.protocol import (
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceRequest,
    ProduceResponse,
    parse_acks,
)
from simcomm.messaging.queues import OVERFLOW, Channel, Queue
from simcomm.messaging.replicated import FAILOVER_AFTER, ReplicatedBroker
from simcomm.messaging.topic import topic_matches
from simcomm.messaging.transport import POINT_TO_POINT, PUBLISH_SUBSCRIBE, Transport

__all__ = [
    "APP_KINDS", "ASSIGNORS", "COMMIT_MODES", "DEDUP_MODES", "DEFAULT_EXCHANGE", "DROP_REASONS",
    "EXCHANGE_TYPES", "FAILOVER_AFTER", "HEARTBEAT", "HIGH_WATER_MARK", "OFFSET_RESETS", "ON_ERROR",
    "OUTBOX_DESIGNS", "OUTBOX_TABLE", "OVERFLOW", "POINT_TO_POINT", "PROTOCOLS",
    "PUBLISH_SUBSCRIBE", "RECONNECT_INTERVAL", "Broker", "Brokerless", "Channel", "Consumer",
    "CrashBetweenWrites", "Database", "Delivery", "DeliveryHandler", "Envelope", "Exchange",
    "FetchRequest", "FetchResponse", "GroupConsumer", "GroupCoordinator", "GroupState",
    "InitProducerIdRequest", "InitProducerIdResponse", "LogBroker", "LogCluster", "LogEntry",
    "LogProducer", "LogTailer", "Outbox", "PartitionLog", "PollingPublisher", "ProcessedIds",
    "ProduceRequest", "ProduceResponse", "Producer", "PublishingService", "Queue", "Record",
    "RecordBatch", "RecordContext", "Reject", "ReplicatedBroker", "StickyPartitioner",
    "TopicPartition", "Transaction", "Transport", "cooperative_sticky_assign", "install_faults",
    "moved_partitions", "murmur2", "parse_acks", "partition_for_key", "publish", "range_assign",
    "round_robin_assign", "sticky_assign", "to_positive", "topic_matches",
]
