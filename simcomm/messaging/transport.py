"""What a messaging transport provides: the one knob between broker and brokerless.

*Microservices Patterns* §3.3.4 sets brokered messaging beside brokerless
messaging; simcomm lets one scenario switch between them without touching
its producers and consumers.  Both transports implement :class:`Transport`:

* a :class:`~simcomm.messaging.Broker` (RabbitMQ's semantics) -- channels
  are exchanges and queues on a broker node, deliveries come from it;
* ``simcomm.messaging.Brokerless`` (ZeroMQ's) -- producers send straight to
  the consumers' endpoints.

**Channels** work the same on both: :meth:`Transport.point_to_point` makes a
channel where each message goes to one consumer (commands) and
:meth:`Transport.publish_subscribe` one where every subscription gets a
copy (events).  :func:`simcomm.messaging.publish` sends on either, and a
:class:`~simcomm.messaging.Consumer` attaches to either.

**The consumer's side** of a transport is its client library, running in
the consumer's process: the consumer calls :meth:`~Transport.connect` when
it starts and after each restart, :meth:`~Transport.settle` after its
handler (ack, or nack with or without requeue), :meth:`~Transport.disconnect`
when it crashes (its operating system closes its connections), and hands
every ``control`` message it receives to :meth:`~Transport.control`.  A
delivery reaches the consumer as a network message of the application's kind
whose body is a :class:`~simcomm.messaging.Delivery`; the consumer records
``deliver`` and ``consume`` in ``trace.mq`` itself, so a transport records
the rest (``publish``, ``enqueue``, ``ack``, ``nack``, ``requeue``,
``dead_letter``, ``drop``, ``confirm``: the table in
:mod:`simcomm.engine.trace`'s docstring and the contract).

A delivery whose ``channel`` is set must carry, as ``channel.conn``, the
consumer's connection number (``consumer.conn``) it was sent on: a
delivery from an older connection is discarded on arrival, as TCP never
hands a new connection the bytes of a closed one.  A transport without
connections leaves ``channel`` as None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from simpy.events import Event

    from simcomm.engine.formats import Format
    from simcomm.engine.messages import Message
    from simcomm.engine.nodes import Node
    from simcomm.engine.world import World
    from simcomm.messaging.consumer import Consumer
    from simcomm.messaging.envelope import Delivery

__all__ = ["POINT_TO_POINT", "PUBLISH_SUBSCRIBE", "Transport", "is_transport"]

#: channel kinds, as :meth:`Transport.channel_kind` reports them
POINT_TO_POINT = "point_to_point"
PUBLISH_SUBSCRIBE = "publish_subscribe"


@runtime_checkable
class Transport(Protocol):
    """The interface a broker and a brokerless transport share (see the module docstring)."""

    world: World
    #: seconds a consumer waits between attempts to (re)connect
    reconnect_interval: float

    # -- channels --------------------------------------------------------
    def point_to_point(self, name: str, **options: Any) -> str:
        """Make (or find) a point-to-point channel ``name``; returns its name."""
        ...

    def publish_subscribe(self, name: str) -> str:
        """Make (or find) a publish-subscribe channel ``name``; returns its name."""
        ...

    def channel_kind(self, name: str) -> str | None:
        """``"point_to_point"``, ``"publish_subscribe"`` or None for an unknown name."""
        ...

    # -- the producer's side ---------------------------------------------
    def publish(self, node: Node, channel: str, body: Any = None, *, routing_key: str = "",
                kind: str = "event", key: Any = None, persistent: bool = True,
                confirm: bool = False, correlation_id: int | None = None,
                reply_to: str | None = None, headers: dict | None = None,
                size: int | None = None, format: Format | None = None,
                trace_id: int | None = None) -> Event | None:
        """Send one message from ``node`` on ``channel`` (arguments already checked).

        Records ``publish`` in ``trace.mq``.  With ``confirm`` returns an
        event that fires with ``"ack"`` or ``"nack"`` (also recorded as
        ``confirm``), or with the failure status when no confirm can come
        (``"refused"``, ``"reset"``); else None.
        """
        ...

    # -- the consumer's side (its client library) --------------------------
    def resolve_consumer(self, consumer: str, channel: str, *, subscription: str | None,
                         durable: bool) -> str:
        """Check a consumer's arguments before it is made and return the name of
        the queue (or endpoint) it will read; raises ParamError, changes nothing."""
        ...

    def attach(self, consumer: Consumer) -> None:
        """Set up what ``consumer`` needs (e.g. a durable subscription's queue)."""
        ...

    def connect(self, consumer: Consumer, delay: float = 0.0) -> None:
        """Open ``consumer``'s connection and subscribe, after ``delay`` s,
        retrying every ``reconnect_interval`` s until it succeeds."""
        ...

    def settle(self, consumer: Consumer, delivery: Delivery, ack: bool,
               requeue: bool = False, multiple: bool = False) -> None:
        """After the handler: ack, or nack with or without requeue (manual acks
        only); ``multiple`` settles every earlier delivery of the channel too."""
        ...

    def disconnect(self, consumer: Consumer) -> None:
        """``consumer`` crashed: its operating system closes its connections."""
        ...

    def control(self, consumer: Consumer, msg: Message) -> None:
        """A ``control`` message for ``consumer`` arrived (e.g. its connection closed)."""
        ...


#: is_transport's answers, by class: a runtime Protocol check inspects every
#: member on each call (about 90 µs, more than a whole message costs the
#: simulation), and a class does not change its members during a run
_IS_TRANSPORT: dict[type, bool] = {}


def is_transport(obj: Any) -> bool:
    """``isinstance(obj, Transport)``, answered once per class."""
    cls = type(obj)
    known = _IS_TRANSPORT.get(cls)
    if known is None:
        known = _IS_TRANSPORT[cls] = isinstance(obj, Transport)
    return known
