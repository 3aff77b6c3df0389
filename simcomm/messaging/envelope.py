"""The application message on a channel, and one delivery of it to a consumer.

*Microservices Patterns* §3.3.1: a message is a header plus a body.  On a
channel the header is what :class:`Envelope` holds -- the message id, its
kind (command, event, document or reply), who published it, where to (the
exchange and routing key, AMQP's ``basic.publish`` arguments), the shard
key, whether it must survive a broker restart (AMQP ``delivery_mode`` 2 =
persistent), and for request / asynchronous response the reply channel and
the correlation id.  An envelope is made once, by the publish, and never
changes: every copy on every queue, every delivery and every redelivery
refers to the same one (a dead-lettered copy gets a new one, as RabbitMQ
republishes it with an ``x-death`` header).

A :class:`Delivery` is one delivery of one copy to one consumer: AMQP's
``basic.deliver`` -- the envelope, the queue it came from, the delivery tag
the consumer acknowledges it by, and the ``redelivered`` flag RabbitMQ sets
on any message that was delivered before.  It is what a consumer's handler
receives.

Both are plain ``__slots__`` objects: they are made on the hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simcomm.engine.formats import Format

__all__ = ["Delivery", "Envelope"]


class Envelope:
    """One application message: header + body (see the module docstring).

    * ``message_id`` -- the id of the network :class:`~simcomm.engine.Message`
      that first carried it (the publish); the same on every hop and copy.
    * ``kind`` -- ``command``, ``event``, ``document`` or ``reply``.
    * ``producer`` -- the node that published it.
    * ``exchange``, ``routing_key`` -- where it was published: the exchange
      (``""`` = the default exchange, which routes to the queue named by the
      routing key) and the key the exchange routes by.
    * ``body`` -- the payload; ``key`` -- the shard key, if any.
    * ``persistent`` -- survives a broker crash on a durable queue.
    * ``published`` -- simulated time of the publish.
    * ``correlation_id`` -- on a reply, the ``message_id`` of the request.
    * ``reply_to`` -- on a request, the reply CHANNEL name (not a node).
    * ``headers`` -- other header fields (a dict), or None; a dead-lettered
      copy carries RabbitMQ's ``x-death`` list here.
    * ``trace_id`` -- the client request the publish was made for, if any.
    * ``format``, ``size`` -- the body's wire format and bytes (deliveries
      carry the same bytes as the publish).
    """

    __slots__ = ("body", "correlation_id", "exchange", "format", "headers", "key", "kind",
                 "message_id", "persistent", "producer", "published", "reply_to",
                 "routing_key", "size", "trace_id")

    def __init__(self, message_id: int, kind: str, producer: str, exchange: str,
                 routing_key: str, body: Any, published: float, *, key: Any = None,
                 persistent: bool = True, correlation_id: int | None = None,
                 reply_to: str | None = None, headers: dict | None = None,
                 trace_id: int | None = None, format: Format | None = None,
                 size: int | None = None) -> None:
        self.message_id = message_id
        self.kind = kind
        self.producer = producer
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.published = published
        self.key = key
        self.persistent = persistent
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.headers = headers
        self.trace_id = trace_id
        self.format = format
        self.size = size

    def republished(self, exchange: str, routing_key: str, headers: dict | None) -> Envelope:
        """The same message (same id, body and times) sent on by the broker to
        ``exchange`` with ``routing_key`` -- a dead-lettered copy."""
        return Envelope(self.message_id, self.kind, self.producer, exchange, routing_key,
                        self.body, self.published, key=self.key, persistent=self.persistent,
                        correlation_id=self.correlation_id, reply_to=self.reply_to,
                        headers=headers, trace_id=self.trace_id, format=self.format,
                        size=self.size)

    def __repr__(self) -> str:
        return (f"Envelope(message_id={self.message_id}, kind={self.kind!r}, "
                f"producer={self.producer!r}, exchange={self.exchange!r}, "
                f"routing_key={self.routing_key!r})")


class Delivery:
    """One delivery of one copy of a message to one consumer (AMQP ``basic.deliver``).

    * ``envelope`` -- the message (shared by every copy and delivery).
    * ``queue`` -- the queue the copy is on (brokerless: the channel).
    * ``delivery_tag`` -- what the consumer acks it by, counted per channel
      from 1 (AMQP); 0 while the copy waits in its queue.
    * ``redelivered`` -- True if this copy was delivered before (RabbitMQ
      sets it on every requeued message, whoever gets it next).
    * ``count`` -- failed deliveries so far: returns by nack/reject with
      requeue or by a consumer that went away (a quorum queue's
      ``x-delivery-count``), which the delivery limit checks.
    * ``seq`` -- the copy's place in its queue (enqueue order), kept so that
      a requeue puts it back at its original position.
    * ``channel`` -- the broker-side channel it was delivered on (the
      consumer's connection), or whatever a brokerless transport keeps.
    """

    __slots__ = ("channel", "count", "delivery_tag", "envelope", "queue", "redelivered", "seq")

    def __init__(self, envelope: Envelope, queue: str, delivery_tag: int = 0,
                 redelivered: bool = False, *, seq: int = 0, count: int = 0,
                 channel: Any = None) -> None:
        self.envelope = envelope
        self.queue = queue
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.seq = seq
        self.count = count
        self.channel = channel

    # read-only views of the envelope, for handlers
    @property
    def body(self) -> Any:
        return self.envelope.body

    @property
    def message_id(self) -> int:
        return self.envelope.message_id

    @property
    def correlation_id(self) -> int | None:
        return self.envelope.correlation_id

    @property
    def reply_to(self) -> str | None:
        return self.envelope.reply_to

    @property
    def kind(self) -> str:
        return self.envelope.kind

    @property
    def key(self) -> Any:
        return self.envelope.key

    @property
    def headers(self) -> dict | None:
        return self.envelope.headers

    @property
    def routing_key(self) -> str:
        return self.envelope.routing_key

    @property
    def producer(self) -> str:
        return self.envelope.producer

    @property
    def published(self) -> float:
        return self.envelope.published

    def __repr__(self) -> str:
        return (f"Delivery(message_id={self.envelope.message_id}, queue={self.queue!r}, "
                f"delivery_tag={self.delivery_tag}, redelivered={self.redelivered})")
