"""Exchanges: where a publish goes, by RabbitMQ's routing rules (REFERENCE §4).

A producer publishes to an *exchange* with a *routing key*; the exchange
hands a copy to each queue whose binding matches, by its type:

* ``direct`` -- bindings whose key equals the routing key;
* ``fanout`` -- every bound queue, whatever the key;
* ``topic`` -- bindings whose key matches the routing key word by word
  (:func:`~simcomm.messaging.topic.topic_matches`: ``*`` one word, ``#``
  zero or more).

A queue gets **at most one copy** of a message however many of its
bindings match (RabbitMQ: "a message matching two bindings of the same
queue is delivered to it once"), and :meth:`Exchange.route` lists the
queues in the order they were first bound.  Binding the same queue with the
same key twice is one binding (AMQP's ``queue.bind`` is idempotent).

The **default exchange** (named ``""``) is a direct exchange to which every
queue is bound with its own name, so publishing to it with routing key
``"orders"`` reaches the queue ``orders`` (RabbitMQ: it "routes to the
queue named by the routing key"); it cannot be bound or unbound by hand.
:func:`default_exchange` makes one; the broker binds each queue it declares.

A key that routes nowhere is *unroutable*: RabbitMQ drops the message
(without the ``mandatory`` flag), and so does the broker, recording why.

Pure data and functions: routing is tested without a simulation.
"""

from __future__ import annotations

from simcomm.errors import ParamError
from simcomm.messaging.topic import check_key, topic_matches

__all__ = ["DEFAULT_EXCHANGE", "EXCHANGE_TYPES", "Exchange", "default_exchange"]

#: The exchange types the broker implements (AMQP 0-9-1's, less ``headers``).
EXCHANGE_TYPES = ("direct", "fanout", "topic")
#: The name of the default exchange.
DEFAULT_EXCHANGE = ""

# a topic exchange remembers where this many distinct routing keys went
_CACHE_LIMIT = 4096


class Exchange:
    """A named exchange of one type with its bindings (see the module docstring).

    ``bindings`` is the list of ``(queue, key)`` pairs in the order they
    were made.  :meth:`route` is the broker's hot path: a direct exchange
    looks the key up in a dict, a fanout returns one list, a topic exchange
    remembers the answer for each routing key it has seen (forgotten when a
    binding changes).
    """

    __slots__ = ("_by_key", "_cache", "_fanout", "bindings", "default", "name", "type")

    def __init__(self, name: str, type: str = "direct") -> None:
        if not isinstance(name, str):
            raise ParamError("name", name, "a string (\"\" is the default exchange)")
        if type not in EXCHANGE_TYPES:
            raise ParamError("type", type, "one of " + ", ".join(map(repr, EXCHANGE_TYPES)))
        self.name = name
        self.type = type
        self.default = False
        self.bindings: list[tuple[str, str]] = []
        self._by_key: dict[str, tuple[str, ...]] = {}
        self._fanout: tuple[str, ...] = ()
        self._cache: dict[str, tuple[str, ...]] = {}

    # -- bindings --------------------------------------------------------
    def bind(self, queue: str, key: str = "") -> None:
        """Bind ``queue`` with binding key ``key`` (a second identical binding is a no-op)."""
        if not isinstance(queue, str) or not queue:
            raise ParamError("queue", queue, "a queue name (a non-empty string)")
        check_key("key", key)
        if (queue, key) not in self.bindings:
            self.bindings.append((queue, key))
            self._rebuild()

    def unbind(self, queue: str, key: str = "") -> None:
        """Remove one binding (unknown bindings are ignored, as AMQP's ``queue.unbind``)."""
        if (queue, key) in self.bindings:
            self.bindings.remove((queue, key))
            self._rebuild()

    def unbind_queue(self, queue: str) -> None:
        """Remove every binding of ``queue`` (the queue was deleted)."""
        kept = [b for b in self.bindings if b[0] != queue]
        if len(kept) != len(self.bindings):
            self.bindings = kept
            self._rebuild()

    def queues(self) -> list[str]:
        """The bound queues, each once, in the order they were first bound."""
        return list(dict.fromkeys(q for q, _ in self.bindings))

    def _rebuild(self) -> None:
        self._cache.clear()
        by_key: dict[str, dict[str, None]] = {}
        for queue, key in self.bindings:
            by_key.setdefault(key, {})[queue] = None
        self._by_key = {k: tuple(v) for k, v in by_key.items()}
        self._fanout = tuple(self.queues())

    # -- routing ---------------------------------------------------------
    def route(self, routing_key: str) -> list[str]:
        """The queues a message published with ``routing_key`` goes to.

        Each queue at most once (however many of its bindings match), in
        the order of the queue's first binding; ``[]`` when unroutable.
        """
        check_key("routing_key", routing_key)
        return list(self.targets(routing_key))

    def targets(self, routing_key: str) -> tuple[str, ...]:
        """:meth:`route` without the checks, as a shared tuple (the broker's hot path)."""
        kind = self.type
        if kind == "direct":
            return self._by_key.get(routing_key, ())
        if kind == "fanout":
            return self._fanout
        hit = self._cache.get(routing_key)
        if hit is None:
            hit = tuple(dict.fromkeys(q for q, key in self.bindings
                                      if topic_matches(key, routing_key)))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[routing_key] = hit
        return hit

    def __repr__(self) -> str:
        return f"Exchange({self.name!r}, {self.type!r}, bindings={len(self.bindings)})"


def default_exchange() -> Exchange:
    """The default exchange: direct, named ``""``, every queue bound by its own name."""
    ex = Exchange(DEFAULT_EXCHANGE, "direct")
    ex.default = True
    return ex
