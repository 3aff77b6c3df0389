"""A broker queue and the channels of the consumers reading it (RabbitMQ's rules).

A :class:`Queue` holds the *ready* copies of messages in enqueue order and
counts those delivered and not yet acknowledged (*unacked*).  What it
follows from RabbitMQ (REFERENCE §4, and RabbitMQ's docs where the
reference is silent):

* **Requeue to the original position.**  A copy that comes back (nack or
  reject with requeue, or its consumer's channel closed) goes back where it
  was by enqueue order -- RabbitMQ's classic queues put a requeued message
  "to its original position in its queue, if possible".  Every copy still
  ready was enqueued after every copy that has been delivered (dispatch
  always takes the oldest), so returned copies sit in a small heap ordered
  by their enqueue number and go out before the rest: O(1) for the common
  case, O(log n) per return.
* **Length limit on ready copies only.**  ``max_length`` counts ready
  messages; "messages unacknowledged by consumers do not count towards the
  limit" (RabbitMQ, *Queue Length Limit*).  ``overflow="drop-head"`` (the
  default) drops or dead-letters the oldest ready copies to make room;
  ``"reject-publish"`` refuses the new one (and nacks it to a publisher
  using confirms).
* **Round-robin over consumers that have room.**  The consumers with room
  in their prefetch window wait in ``active`` (a FIFO); each delivery takes
  the first and puts it back at the end if it still has room, else it is
  *blocked* until an ack or nack frees a slot, when it rejoins at the end --
  RabbitMQ's ``rabbit_queue_consumers`` does the same.  With prefetch 1
  this is fair dispatch: the next message goes to a consumer that is not
  busy.  Prefetch 0 is unlimited; with auto-ack there is nothing to wait
  for, so the window never closes (RabbitMQ ignores prefetch then).

:class:`Channel` is the broker's side of one consumer's subscription: the
consumer, its connection number, its prefetch, auto-ack, its delivery-tag
counter (tags count from 1 per channel, as in AMQP) and its unacked
deliveries by tag.

Plain state with ``__slots__``: the broker drives them (its hot path reads
the fields directly).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from simcomm.engine.messages import Message
    from simcomm.engine.nodes import Node
    from simcomm.messaging.envelope import Delivery

__all__ = ["OVERFLOW", "Channel", "Queue"]

#: The overflow behaviours of a queue with a length limit (RabbitMQ's ``x-overflow``).
OVERFLOW = ("drop-head", "reject-publish")


class Queue:
    """One queue on a broker (see the module docstring).

    ``durable`` queues survive a broker crash (their persistent messages
    too); ``exclusive`` queues belong to one consumer's connection and are
    deleted when it closes (a non-durable subscription).
    """

    __slots__ = ("_ready", "_returned", "_seq", "active", "consumers", "dead_letter_exchange",
                 "dead_letter_routing_key", "delivery_limit", "durable", "exclusive",
                 "max_length", "name", "overflow", "owner", "unacked")

    def __init__(self, name: str, *, durable: bool = True, exclusive: bool = False,
                 owner: str | None = None, max_length: int | None = None,
                 overflow: str = "drop-head", dead_letter_exchange: str | None = None,
                 dead_letter_routing_key: str | None = None,
                 delivery_limit: int | None = None) -> None:
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.owner = owner
        self.max_length = max_length
        self.overflow = overflow
        self.dead_letter_exchange = dead_letter_exchange
        self.dead_letter_routing_key = dead_letter_routing_key
        self.delivery_limit = delivery_limit
        self._ready: deque[Delivery] = deque()  # never delivered, in enqueue order
        self._returned: list[tuple[int, Delivery]] = []  # heap of (seq, copy) put back
        self._seq = 0
        self.unacked = 0
        self.consumers: list[Channel] = []
        self.active: deque[Channel] = deque()  # consumers with room, round-robin

    @property
    def ready(self) -> int:
        """Copies waiting to be delivered."""
        return len(self._ready) + len(self._returned)

    def __len__(self) -> int:
        return len(self._ready) + len(self._returned)

    def push(self, copy: Delivery) -> None:
        """Enqueue a new copy at the tail (it gets the next enqueue number)."""
        self._seq += 1
        copy.seq = self._seq
        self._ready.append(copy)

    def pop(self) -> Delivery:
        """Take the oldest ready copy by enqueue order (returned ones first)."""
        if self._returned:
            return heapq.heappop(self._returned)[1]
        return self._ready.popleft()

    def put_back(self, copy: Delivery) -> None:
        """Return a copy to its original position (by its enqueue number)."""
        heapq.heappush(self._returned, (copy.seq, copy))

    def copies(self) -> list[Delivery]:
        """The ready copies, oldest first (not a hot-path operation)."""
        return [c for _, c in sorted(self._returned, key=lambda p: p[0])] + list(self._ready)

    def take_all(self) -> list[Delivery]:
        """Remove and return every ready copy, oldest first."""
        out = self.copies()
        self._ready.clear()
        self._returned.clear()
        return out

    def take_where(self, drop: Callable[[Delivery], bool]) -> list[Delivery]:
        """Remove and return the ready copies for which ``drop(copy)`` is true."""
        gone = [c for c in self.copies() if drop(c)]
        if gone:
            self._ready = deque(c for c in self._ready if not drop(c))
            self._returned = [(s, c) for s, c in self._returned if not drop(c)]
            heapq.heapify(self._returned)
        return gone

    def __repr__(self) -> str:
        return (f"Queue({self.name!r}, ready={self.ready}, unacked={self.unacked}, "
                f"consumers={len(self.consumers)})")


class Channel:
    """The broker's side of one consumer's subscription to one queue."""

    __slots__ = ("active", "auto_ack", "conn", "consumer", "heard", "next_tag", "node", "open",
                 "prefetch", "queue", "sent", "unacked", "wire")

    def __init__(self, consumer: str, conn: int, queue: Queue, prefetch: int,
                 auto_ack: bool, now: float = 0.0) -> None:
        self.consumer = consumer
        self.node: Node | None = None  # the consumer's node (its socket's other end)
        self.conn = conn  # the consumer's connection number
        self.queue = queue
        self.prefetch = 0 if auto_ack else prefetch
        self.auto_ack = auto_ack
        self.next_tag = 0
        self.open = True
        self.active = False  # waiting in queue.active (has room)
        self.unacked: dict[int, Delivery] = {}  # tag -> copy, in tag order
        self.heard = now  # when the broker last heard from the consumer on it
        self.sent = now  # when the broker last sent on it (heartbeats fill silences)
        #: auto-ack deliveries maybe still on the wire (network messages): the
        #: broker forgot them once acked, and must learn if they bounce
        self.wire: deque[Message] | None = deque() if auto_ack else None

    def has_room(self) -> bool:
        return self.prefetch == 0 or len(self.unacked) < self.prefetch

    def __repr__(self) -> str:
        return (f"Channel({self.consumer!r}#{self.conn} on {self.queue.name!r}, "
                f"unacked={len(self.unacked)}/{self.prefetch or 'inf'})")
