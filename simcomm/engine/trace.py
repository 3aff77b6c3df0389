"""The event log of a run, kept as plain tuples and turned into tables late.

Recording is a tuple append per event (principle 8): DataFrames are built
only when a :class:`~simcomm.result.Result` is asked for one.

Tables (column names are the DataFrame columns):

* ``messages`` -- one row per message event: ``send``, ``deliver`` or
  ``drop`` (with a reason such as ``loss``, ``partition``, ``node_down``,
  ``rejected``).  Together they form the message ledger.  A reply's
  ``correlation_id`` is the ``message_id`` of the request it answers, and
  its ``status`` says how the call went (``ok``, ``error``, ``refused``,
  ``rejected``, ``reset``); other messages have status ``ok``.
* ``requests`` -- one row per finished client request (``endpoint``: the
  endpoint a client with a mix of endpoints called, else None).
* ``pools`` -- each worker pool's busy count and queue length whenever one
  of them changes.
* ``events`` -- everything else worth seeing on a timeline: faults,
  repairs, partitions, abandoned work, replies nobody waited for.
* ``attempts`` -- one row per attempt of a call from a service's handler
  (the first try and every retry): when it started and ended, the client
  request it serves, caller, callee, the attempt number (from 1), its
  outcome and the wait before it.  Kept with ``enabled`` only, as messages.
* ``breakers`` -- every state change of every circuit breaker on a
  protected edge: time, caller instance, callee service, from, to, why.
  Always kept: they are few.
* ``mq`` -- the life of every application message on a channel (see
  :mod:`simcomm.messaging`): ``publish``, ``enqueue``, ``deliver``,
  ``ack``, ``nack``, ``requeue``, ``dead_letter``, ``drop``, ``consume``,
  ``confirm``.  ``message_id`` is the application message's id (that of
  the network message that first carried it), the same on every hop and
  every copy; ``channel`` is the queue, exchange or brokerless channel;
  ``node`` who did it; ``detail`` a routing key or a reason.  Kept with
  ``enabled`` only, as messages.
* ``queues`` -- each broker queue's ready and unacknowledged counts
  whenever one of them changes (``enabled`` only).
* ``records`` -- the life of every keyed application record (see
  :mod:`simcomm.messaging`, issue 9): ``produce`` (the application emitted
  it: the per-key produced order), ``retry``, ``append``, ``dedup``,
  ``refuse``, ``ack``, ``fail``, ``truncate`` (on a partitioned log),
  ``apply`` / ``skip`` (a consumer applied its effect, or skipped a
  duplicate), ``commit``, ``commit_failed``, ``assign``, ``revoke``,
  ``rebalance_start``, ``rebalance_end``, ``join``, ``leave``, ``expire``,
  ``reset`` (consumer groups), ``send`` (a record sent under an id given
  by its caller: a relay or a dual write), ``tx_commit``, ``tx_abort``
  (a service's database).  ``record_id`` is the application record's id,
  the same on every copy; ``partition`` and ``offset`` are -1 where they
  do not apply; ``detail`` a reason or a mode.  Kept with ``enabled``
  only, as messages.

* ``discovery`` -- what service discovery did (see
  :mod:`simcomm.discovery`): a registry's ``register``, ``renew``,
  ``cancel``, ``evict``, ``critical``, ``passing``, ``reap``, ``ready``,
  ``unready`` and ``self_preservation``; a prober's ``probe_failed``; a
  client's or router's view: ``visible``, ``hidden``, ``lookup_failed``.
  ``node`` is who did it, ``instance`` the instance it is about.  Kept with
  ``enabled`` only, as messages.
* ``routes`` -- one row per call a discovery client or a router sent to an
  instance it picked: when it was sent, the client request it serves, the
  caller, the service, the instance (None when none could be found), how it
  was found (``via``: ``client``, or the router's name), the attempt (from
  1; the next one went to another instance), the outcome and when it ended.
  Always kept, as requests: the stale-call counts need it.
* ``counters`` -- named counts kept whether or not the run is traced
  (``discovery_messages``: every discovery message put on the network).

The engine only holds these tables; what fills ``attempts`` and
``breakers`` is the call path above it (:mod:`simcomm.rpc`), and what fills
``mq``, ``queues`` and ``records`` is the messaging layer
(:mod:`simcomm.messaging`), and what fills ``discovery``, ``routes`` and
``counters`` is service discovery (:mod:`simcomm.discovery`).
"""

from __future__ import annotations

__all__ = ["ATTEMPT_COLUMNS", "BREAKER_COLUMNS", "DISCOVERY_COLUMNS", "EVENT_COLUMNS",
           "MESSAGE_COLUMNS", "MQ_COLUMNS", "POOL_COLUMNS", "QUEUE_COLUMNS", "RECORD_COLUMNS",
           "REQUEST_COLUMNS", "ROUTE_COLUMNS", "Trace"]

MESSAGE_COLUMNS = ("time", "event", "message_id", "kind", "source", "dest",
                   "trace_id", "size", "reason", "correlation_id", "status")
REQUEST_COLUMNS = ("request_id", "client", "target", "start", "end", "outcome",
                   "endpoint")
POOL_COLUMNS = ("time", "node", "busy", "queued")
EVENT_COLUMNS = ("time", "node", "event", "detail")
ATTEMPT_COLUMNS = ("time", "trace_id", "caller", "callee", "attempt", "outcome",
                   "wait_before", "end")
BREAKER_COLUMNS = ("time", "caller", "callee", "from_state", "to_state", "why")
MQ_COLUMNS = ("time", "event", "message_id", "channel", "node", "detail")
QUEUE_COLUMNS = ("time", "node", "queue", "ready", "unacked")
RECORD_COLUMNS = ("time", "event", "record_id", "topic", "partition", "offset", "key", "node",
                  "detail")
DISCOVERY_COLUMNS = ("time", "event", "node", "service", "instance", "detail")
ROUTE_COLUMNS = ("time", "trace_id", "caller", "service", "instance", "via", "attempt",
                 "outcome", "end")


class Trace:
    """Append-only lists of tuples; ``enabled=False`` keeps only requests."""

    __slots__ = ("attempts", "breakers", "counters", "discovery", "enabled", "events",
                 "messages", "mq", "pools", "queues", "records", "requests", "routes")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.messages: list[tuple] = []
        self.requests: list[tuple] = []
        self.pools: list[tuple] = []
        self.events: list[tuple] = []
        self.attempts: list[tuple] = []
        self.breakers: list[tuple] = []
        self.mq: list[tuple] = []
        self.queues: list[tuple] = []
        self.records: list[tuple] = []
        self.discovery: list[tuple] = []
        self.routes: list[tuple] = []
        self.counters: dict[str, int] = {}

    def event(self, time: float, node: str, event: str, detail: str = "") -> None:
        """Record a timeline event (always kept: they are few)."""
        self.events.append((time, node, event, detail))
