"""Messages: a header plus a body, the only thing that crosses the network.

Requests, replies, heartbeats, registry look-ups and broker deliveries are
all :class:`Message` objects.  The header follows the vocabulary of
*Microservices Patterns* ch. 3: a message has a kind (command, event,
document, or a reply), an id, and for request/response a correlation id and
a reply-to address.  Ids come from a per-world counter, never from uuid4, so
a run is reproducible.
"""

from __future__ import annotations

from typing import Any

from simcomm.engine.formats import Format

__all__ = ["COMMAND", "CONTROL", "DOCUMENT", "EVENT", "KINDS", "REPLY", "Message"]

COMMAND = "command"
EVENT = "event"
DOCUMENT = "document"
REPLY = "reply"
#: protocol traffic that carries no application message: a broker's acks,
#: confirms, subscriptions and connection closes (AMQP's methods)
CONTROL = "control"
KINDS = (COMMAND, EVENT, DOCUMENT, REPLY, CONTROL)


class Message:
    """One message.  Plain slots: a message is created on the hot path.

    Header fields:

    * ``id`` -- unique in the world, from a counter.
    * ``kind`` -- ``command``, ``event``, ``document``, ``reply``, or
      ``control`` for protocol traffic (acks, confirms, subscriptions).
    * ``source``, ``dest`` -- node names.
    * ``correlation_id`` -- on a reply, the id of the request it answers.
    * ``reply_to`` -- on a request, the node that waits for the reply.
    * ``key`` -- the shard / partition key, if any.
    * ``trace_id`` -- the id of the client request this message serves.
    * ``status`` -- on a reply: how the call went -- ``ok``, ``error``,
      ``refused``, ``rejected``, ``reset``, or an outcome a policy decided
      (``timeout``, ``fallback``, ... -- see :data:`simcomm.rpc.OUTCOMES`).
    * ``deadline`` -- on a request, the absolute simulated time by which
      the caller at the start of the request must have its answer (the
      remaining time budget, as gRPC's ``grpc-timeout`` header carries it);
      the callee's own calls stop waiting then.  ``None``: no deadline.
    * ``created``, ``sent``, ``delivered`` -- simulated times the message was
      made, put on the wire and handed to its destination (``None`` until
      then).
    * ``body``, ``format`` -- the payload and its wire format.

    A reply with ``id`` 0 was made by the caller's own policy (a timeout, a
    short-circuit, a fallback, ...) and never crossed the network: it is in
    no ledger.
    """

    __slots__ = (
        "_size",
        "body",
        "correlation_id",
        "created",
        "deadline",
        "delivered",
        "dest",
        "format",
        "id",
        "key",
        "kind",
        "reply_to",
        "sent",
        "source",
        "status",
        "trace_id",
    )

    def __init__(
        self,
        id: int,
        kind: str,
        source: str,
        dest: str,
        created: float,
        body: Any = None,
        *,
        correlation_id: int | None = None,
        reply_to: str | None = None,
        key: Any = None,
        trace_id: int | None = None,
        status: str = "ok",
        format: Format | None = None,
        size: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self.id = id
        self.kind = kind
        self.source = source
        self.dest = dest
        self.created = created
        self.body = body
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.key = key
        self.trace_id = trace_id
        self.status = status
        self.format = format
        self._size = size
        self.deadline = deadline
        self.sent: float | None = None
        self.delivered: float | None = None

    @property
    def size(self) -> int:
        """Bytes on the wire (0 for a message without a format or body)."""
        if self._size is None:
            if self.format is None or self.body is None:
                self._size = 0
            else:
                self._size = self.format.size(self.body)
        return self._size

    def __repr__(self) -> str:
        return (
            f"Message(id={self.id}, kind={self.kind!r}, {self.source}->{self.dest}, "
            f"status={self.status!r}, trace_id={self.trace_id})"
        )
