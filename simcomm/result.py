"""The outcome of a run: summary numbers and tables, built when asked for.

Besides latency and outcomes, a result says how hard the system worked and
whether the run can be trusted (principle 11, honest results): the
utilisation of every worker pool and every link with a bandwidth
(:meth:`Result.resources`), the busiest of them (:meth:`Result.bottleneck`),
the offered load against the capacity, the share of requests still pending
at the end, and plain-sentence :meth:`Result.warnings` when the run was
overloaded.  ``Result`` itself never issues a Python warning: ``simcomm.run``
turns ``warnings()`` into an :class:`~simcomm.errors.OverloadWarning`, the CLI
into a line on stderr, the dashboards into a banner.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from functools import cached_property
from typing import TYPE_CHECKING, Any, overload

from simcomm._checks import as_real
from simcomm.engine.trace import DISCOVERY_COLUMNS
from simcomm.engine.workload import Client
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import pandas as pd

    from simcomm.engine.trace import Batch, Table
    from simcomm.engine.world import World
    from simcomm.scenarios.base import Scenario

__all__ = ["DELIVERY_KEYS", "DISCOVERY_KEYS", "FAILURES", "LATE_MIN_ARRIVALS", "LATE_SHARE",
           "MESSAGING_KEYS", "PENDING_SHARE", "RECORD_KEYS", "REQUEST_KEYS", "SATURATED",
           "SUMMARY_HELP", "SUMMARY_UNITS", "Result"]

#: Request outcomes that count as failures (``pending`` is neither, and
#: ``fallback`` is an answer, if a degraded one).  The last five are decided
#: by a policy (see :data:`simcomm.rpc.OUTCOMES`).
FAILURES = ("error", "refused", "rejected", "reset", "abandoned", "timeout",
            "deadline_exceeded", "bulkhead_full", "short_circuited", "rate_limited",
            "no_instance")

#: A resource this busy on average over the run is saturated: its queue
#: (or backlog) only grows.
SATURATED = 0.99

#: More than this share of the requests still pending at the end (and at
#: least :data:`MIN_PENDING` of them) means the summary leaves out too much.
PENDING_SHARE = 0.10

#: Fewer pending requests than this never count as a backlog: a handful
#: still in service at the end of a tiny run says nothing about overload.
MIN_PENDING = 10

#: The closing share of a run in which a saturated pool means an overload
#: that outlived its trigger (a metastable failure).
LATE_SHARE = 0.25

#: Requests a pool must receive in that closing share before its being busy
#: there counts: a short run's last seconds can be busy by chance.
LATE_MIN_ARRIVALS = 100

#: The unit of every :meth:`Result.summary` key: ``"s"`` seconds,
#: ``"req/s"`` requests per second, ``"msg/s"`` messages and ``"rec/s"``
#: records per second, ``"per 10k"`` a count per 10 000 records produced,
#: ``"fraction"`` a number from 0 to 1 (shown also as a percentage), ``""`` a
#: count, a ratio, a name or a flag.
SUMMARY_UNITS: dict[str, str] = {
    "requests": "", "completed": "", "fallback": "", "answered": "", "failed": "",
    "pending": "",
    "error": "", "refused": "", "rejected": "", "reset": "", "abandoned": "",
    "timeout": "", "deadline_exceeded": "", "bulkhead_full": "", "short_circuited": "",
    "rate_limited": "", "no_instance": "",
    "completed_share": "fraction", "pending_share": "fraction",
    "mean_latency": "s", "p50": "s", "p95": "s", "p99": "s",
    "throughput": "req/s", "availability": "fraction", "success_rate": "fraction",
    "retries": "", "breaker_opens": "", "orphan_replies": "", "max_amplification": "",
    "offered_rate": "req/s", "capacity": "req/s",
    "publish_rate": "msg/s", "message_capacity": "msg/s", "offered_load": "",
    "bottleneck": "", "bottleneck_utilisation": "fraction", "stable": "",
    "messages_sent": "", "messages_dropped": "",
    "messages_published": "", "messages_consumed": "", "messages_lost": "",
    "messages_dead_lettered": "", "messages_queued": "", "redeliveries": "",
    "message_p95_latency": "s",
    "records_produced": "", "records_applied": "", "lost": "", "duplicated": "",
    "reordered": "", "gaps": "", "phantom": "", "records_pending": "",
    "lost_per_10k": "per 10k", "duplicated_per_10k": "per 10k",
    "reordered_per_10k": "per 10k", "rebalances": "",
    "record_mean_latency": "s", "record_p50_latency": "s", "record_p95_latency": "s",
    "record_p99_latency": "s", "record_throughput": "rec/s", "produce_rate": "rec/s",
    "record_capacity": "rec/s",
    "routed_calls": "", "stale_calls": "", "stale_share": "fraction", "detection_lag": "s",
    "registry_messages_per_s": "msg/s", "availability_during_churn": "fraction",
    "no_instance_calls": "",
}

#: The :meth:`Result.summary` keys of a run with messaging (publishers,
#: brokers, consumers); a run without any has none of them.
MESSAGING_KEYS = ("messages_published", "messages_consumed", "messages_lost",
                  "messages_dead_lettered", "messages_queued", "redeliveries",
                  "message_p95_latency")

#: The :meth:`Result.summary` keys of a run whose records table has
#: ``produce`` rows (keyed application records, issue 9: a partitioned log,
#: an outbox, or keyed publishes on a queue), from
#: :mod:`simcomm.analysis.delivery` (:data:`~simcomm.analysis.delivery.COUNT_KEYS`).
#: In a run with client requests, whose ``pending`` counts requests, the
#: records' ``pending`` is called ``records_pending``.
DELIVERY_KEYS = ("records_produced", "records_applied", "lost", "duplicated", "reordered",
                 "gaps", "phantom", "pending", "lost_per_10k", "duplicated_per_10k",
                 "reordered_per_10k", "rebalances")

#: The :meth:`Result.summary` keys of a run with service discovery (its
#: routes table has rows: calls a discovery client or a router sent), from
#: :func:`simcomm.analysis.discovery.discovery_keys`.  The same with or
#: without the trace (routes, timeline events and counters are always kept).
DISCOVERY_KEYS = ("routed_calls", "stale_calls", "stale_share", "detection_lag",
                  "registry_messages_per_s", "availability_during_churn",
                  "no_instance_calls")

#: The keys a run of records alone (a log, its producers and consumer
#: groups; no client requests, no issue-8 messaging) reports beside
#: :data:`DELIVERY_KEYS`: latency from produce to the first application,
#: and records applied per second.
RECORD_KEYS = ("record_mean_latency", "record_p50_latency", "record_p95_latency",
               "record_p99_latency", "record_throughput")

#: The keys about client requests.  A run of messages alone (producers,
#: brokers and consumers, no users waiting for replies) leaves them out of
#: its summary, and says ``publish_rate`` and ``message_capacity`` where a
#: run with requests says ``offered_rate`` and ``capacity``.
REQUEST_KEYS = ("requests", "completed", "fallback", "answered", "failed", "pending",
                *FAILURES, "completed_share", "pending_share", "mean_latency", "p50", "p95",
                "p99", "throughput", "availability", "success_rate", "retries",
                "breaker_opens", "orphan_replies", "max_amplification", "offered_rate",
                "capacity")

#: One line on the meaning of every :meth:`Result.summary` key.
SUMMARY_HELP: dict[str, str] = {
    "requests": "client requests sent during the run",
    "completed": "requests answered ok",
    "fallback": "requests answered by a fallback (a default, a cached value or another "
                "service) after a call failed: answered, but degraded",
    "answered": "completed + fallback: requests the user got an answer to",
    "failed": "requests that ended badly (error, refused, rejected, reset, abandoned, "
              "timeout, deadline_exceeded, bulkhead_full, short_circuited, rate_limited, "
              "no_instance)",
    "pending": "requests still unanswered when the run ended (in a run of records alone: "
               "produced records not applied and not lost, still in flight at the end)",
    "error": "requests answered with an error",
    "refused": "requests refused because the instance was down",
    "rejected": "requests turned away by a full queue",
    "reset": "requests whose connection was reset (a crash, or a hang ending)",
    "abandoned": "requests the user gave up on (patience ran out)",
    "timeout": "requests ended by a call's time limit (the caller stopped waiting)",
    "deadline_exceeded": "requests whose end-to-end deadline passed before the answer",
    "bulkhead_full": "requests ended because a bulkhead had no free slot for a call",
    "short_circuited": "requests ended because an open circuit breaker refused a call",
    "rate_limited": "requests ended because a rate limiter (the caller's, or the "
                    "callee's load shedding) had no permit",
    "no_instance": "requests ended because service discovery found no instance to call "
                   "(an empty list, or a registry that could not be asked)",
    "completed_share": "completed / requests: the share answered ok, pending included "
                       "in the denominator",
    "pending_share": "pending / requests: the share still unanswered at the end",
    "mean_latency": "mean time from request to ok reply, of completed requests",
    "p50": "median latency of completed requests",
    "p95": "95th percentile latency of completed requests",
    "p99": "99th percentile latency of completed requests",
    "throughput": "completed requests per second of simulated time",
    "availability": "answered / (answered + failed), answered = ok or fallback: the share "
                    "of finished requests the user got an answer to; pending ones are left "
                    "out",
    "success_rate": "completed / (answered + failed): the share of finished requests "
                    "answered ok, fallbacks not counted; pending ones are left out",
    "retries": "attempts beyond the first made by retry policies (every call, not only "
               "the users' requests)",
    "breaker_opens": "times a circuit breaker opened (from closed or half-open)",
    "orphan_replies": "replies that came after their caller had stopped waiting",
    "max_amplification": "the most calls one service received per user request, "
                         "retries included (1 per hop without retries)",
    "offered_rate": "requests sent per second (the load offered to the system)",
    "capacity": "requests per second the system can carry: the scenario's model, or "
                "estimated as throughput / utilisation of the bottleneck",
    "publish_rate": "in a run of messages alone: messages published per second (the load "
                    "offered to the system)",
    "message_capacity": "in a run of messages alone: messages per second the system can "
                        "carry: the scenario's model, or estimated as consumed per second / "
                        "utilisation of the bottleneck",
    "offered_load": ("arrival rate / capacity (the scenario's nominal rate where it declares "
                     "one, else offered_rate; in a run of messages alone, the publish rate): "
                     "1 or more cannot be carried for long"),
    "bottleneck": "the busiest resource: a worker pool (instance) or a link (a → b)",
    "bottleneck_utilisation": "mean fraction of time the bottleneck was busy",
    "stable": "no sign of overload: bottleneck below 99 % busy, offered load below 1 "
              "and at most 10 % of requests pending (of messages still queued, in a run "
              "of messages alone)",
    "messages_sent": "messages put on the network (requests, replies, ...)",
    "messages_dropped": "messages lost, cut off or refused on the way",
    "messages_published": "application messages published to a channel (each once, however "
                          "many queues or subscribers it reaches)",
    "messages_consumed": "copies of messages (one per queue or subscription a message "
                         "reached) settled after a handler finished with them: acked, or "
                         "auto-acked / brokerless and handled",
    "messages_lost": "copies lost for any reason but dead-lettering: unroutable, queue full "
                     "or over its length, a broker or consumer crash, lost on the way to "
                     "the broker, ... (with trace=False a publish still on its way at the "
                     "end counts too)",
    "messages_dead_lettered": "copies moved to a dead-letter exchange (rejected, over the "
                              "queue's length or its delivery limit)",
    "messages_queued": "copies not settled at the end: ready in a queue, delivered and not "
                       "yet acked, or on their way",
    "redeliveries": "deliveries flagged redelivered: a message handed out again after a "
                    "nack, a consumer's crash or a broker restart",
    "message_p95_latency": "95th percentile time from publish to a handler first finishing "
                           "with the message, over the copies handled (NaN with "
                           "trace=False: it needs each message's times)",
    "records_produced": "keyed application records produced (each once per consumer group "
                        "or queue expected to apply it); with trace=False, the records the "
                        "log producers sent (a relay's resends included)",
    "records_applied": "produced records whose effect a consumer applied at least once "
                       "(records_produced = records_applied + lost + pending); with "
                       "trace=False, the applications the group consumers counted",
    "lost": "produced records never applied, with a cause: the producer gave up, a leader "
            "failover truncated them, an offset committed before processing, a dual write, "
            "... (NaN with trace=False: causes need the records table)",
    "duplicated": "applications of a record beyond its first (its effect applied twice)",
    "reordered": "first applications of a record after a later record of the same key",
    "gaps": "first applications of a record while the previous record of its key was not "
            "applied yet (lost, or still to come)",
    "phantom": "records applied that were never produced: the dual write's publish-first "
               "message whose transaction never committed",
    "records_pending": "in a run with client requests: produced records not applied and not "
                       "lost, still in flight at the end",
    "lost_per_10k": "lost per 10 000 records produced",
    "duplicated_per_10k": "duplicated applications per 10 000 records produced",
    "reordered_per_10k": "reordered applications per 10 000 records produced",
    "rebalances": "consumer-group rebalances (a start to its end; cooperative's follow-up "
                  "round counts as one more)",
    "record_mean_latency": "mean time from a record's produce to its first application",
    "record_p50_latency": "median time from a record's produce to its first application",
    "record_p95_latency": "95th percentile time from produce to first application",
    "record_p99_latency": "99th percentile time from produce to first application",
    "record_throughput": "records applied (first applications) per second of simulated time",
    "produce_rate": "in a run of records alone: records produced per second (the load "
                    "offered to the system)",
    "record_capacity": "in a run of records alone: records per second the system can carry, "
                       "estimated as applied per second / utilisation of the bottleneck",
    "routed_calls": "calls a discovery client or router sent to an instance it picked "
                    "(each try on another instance counts)",
    "stale_calls": "routed calls sent to an instance that was starting, hung, down or "
                   "stopped: the caller's list was behind the service",
    "stale_share": "stale_calls / routed_calls",
    "detection_lag": "mean seconds from an instance's death (crash, hang, stop, node "
                     "failure) to the last call routed to it (0 when none came after); NaN "
                     "with no death",
    "registry_messages_per_s": "discovery messages (registrations, renewals, cancels, "
                               "queries, probes and their replies) per second",
    "availability_during_churn": "availability of the user requests that started while "
                                 "some instance of a routed service was not serving "
                                 "(starting after the first deployment, hung, down, "
                                 "draining; one gone for good until the last call routed "
                                 "to it); NaN with none",
    "no_instance_calls": "calls for which discovery found no instance to send to",
}


class Result:
    """What :func:`simcomm.run` returns.

    * ``summary()`` -- a dict of headline numbers.
    * ``requests`` -- one row per client request: ``request_id, client,
      target, start, end, outcome, endpoint, latency, hops, attempts``
      (``hops``: how many messages the request caused to be sent, beside
      replies; ``attempts``: how many call attempts services made for it,
      retries and calls a policy stopped before sending included).
    * ``trace`` -- one row per message event (send / deliver / drop).
    * ``messages`` -- the ledger: one row per message with its fate.
    * ``pools`` -- busy workers and queue length of every instance over time.
    * ``events`` -- faults, repairs, partitions and other timeline events.
    * ``attempts`` -- one row per call attempt a service made;
      ``breaker_events`` -- every circuit breaker state change;
      ``amplification()`` -- calls reaching each service per user request.
    * ``utilisation()``, ``link_utilisation()``, ``resources()``,
      ``bottleneck()`` -- how busy each worker pool and link was;
      ``warnings()`` -- what makes the headline numbers misleading.
    * messaging (a run with publishers, brokers and consumers):
      ``deliveries`` -- one row per copy of a message with its fate;
      ``queue_depth`` and ``consumer_inflight`` over time;
      ``message_latency()``, ``ordering()`` and ``message_ledger()``; the
      summary then also has the keys of :data:`MESSAGING_KEYS`.
    * keyed records (issue 9: a partitioned log, consumer groups, an
      outbox; keyed publishes on a queue): ``records`` -- the records table;
      ``key_order()``, ``delivery_anomalies()``, ``delivery_causes()``,
      ``assignments()``, ``rebalances()``, ``consumer_lag()``,
      ``outbox_lag()``; the summary then also has :data:`DELIVERY_KEYS`
      (rules: :mod:`simcomm.analysis.delivery`).
    * service discovery (issue 10): ``routes`` -- one row per call a
      discovery client or router sent, with the instance's ``state`` then and
      ``stale``; ``detection()`` -- each instance death and how long calls
      still went to it; ``discovery`` -- what registries and views did; the
      summary then also has :data:`DISCOVERY_KEYS` (rules:
      :mod:`simcomm.analysis.discovery`).

    The tables come from the trace's typed columns, built when first asked
    for; ``summary()``, ``ledger()``, ``hops`` and ``utilisation(start)``
    count the columns a chunk at a time without building the big tables,
    so a run streamed to Parquet (``simcomm.run(..., spill=DIR)``) is read
    back from its files only as far as what is asked needs.
    """

    def __init__(self, world: World, scenario: Scenario | None = None,
                 params: Any = None) -> None:
        if world.until is None:
            raise ValueError("the world has not been run yet: call world.run(until) first")
        self.world = world
        self.scenario = scenario
        self.params = params
        self.seed = world.seed
        self.until = world.until
        if world.trace.spill is not None:
            world.trace.flush()  # every row on disk, the files complete and readable

    # -- tables --------------------------------------------------------
    @cached_property
    def requests(self) -> pd.DataFrame:
        tr = self.world.trace
        pending = [row for node in self.world.nodes.values() if isinstance(node, Client)
                   for row in node.pending()]
        df = tr.requests.to_frame(extra=pending, order=_id_order(tr.requests, pending))
        df = df.sort_values("request_id", kind="stable").reset_index(drop=True)  # if not yet
        df["latency"] = df["end"] - df["start"]
        if tr.enabled:
            ids = df["request_id"].to_numpy()
            df["hops"] = _count_ids(tr.messages, "trace_id", ids, _sent_not_reply)
            df["attempts"] = _count_ids(tr.attempts, "trace_id", ids)
        else:
            df["hops"] = math.nan
            df["attempts"] = math.nan
        return df

    @cached_property
    def attempts(self) -> pd.DataFrame:
        """One row per attempt of a call made by a service's handler: ``time``
        (start), ``trace_id`` (the user request it serves), ``caller`` (the
        instance), ``callee`` (the node called), ``attempt`` (1 for the first
        try, 2 for the first retry, ...), ``outcome`` (the attempt's own, e.g.
        ``timeout``; the call's final one is the last attempt's, unless a
        fallback answered), ``wait_before`` (seconds waited since the previous
        attempt failed) and ``end``.  Calls a policy stopped before anything
        was sent (``short_circuited``, ``bulkhead_full``, ...) are attempts
        too.  Needs the trace (empty with ``trace=False``)."""
        return self.world.trace.attempts.to_frame(dtypes={"trace_id": "Int64"})

    @cached_property
    def breaker_events(self) -> pd.DataFrame:
        """Every state change of every circuit breaker on a protected edge, in
        time order: ``time``, ``caller`` (the instance whose breaker it is),
        ``callee`` (the service it guards), ``from_state``, ``to_state`` and
        ``why``.  Kept with or without the trace.  A change a timer made is
        at the timer's time (see :class:`~simcomm.resilience.BreakerListener`)."""
        df = self.world.trace.breakers.to_frame()
        return df.sort_values("time", kind="stable").reset_index(drop=True)

    def amplification(self) -> dict[str, float]:
        """Calls reaching each service per user request: ``{service: factor}``.

        A call *reaches* a service when it arrives at one of its instances
        while it is up (accepted, or turned away at the door by a full queue
        or load shedding), retries included; a chain without retries gives 1
        per service on the request's path, and every retry layer multiplies
        it.  User requests are those the clients sent (pending included).
        Exact with or without a trace.  NaN for every service if no user
        request was sent.
        """
        from simcomm.engine.nodes import Instance

        users = self._health["requests"]
        calls: dict[str, int] = {}
        for node in self.world.nodes.values():
            if isinstance(node, Instance):
                calls[node.service] = calls.get(node.service, 0) + node.arrivals
        return {name: (n / users if users else math.nan) for name, n in calls.items()}

    @cached_property
    def trace(self) -> pd.DataFrame:
        return self.world.trace.messages.to_frame(
            dtypes={"trace_id": "Int64", "correlation_id": "Int64"})

    @cached_property
    def pools(self) -> pd.DataFrame:
        return self.world.trace.pools.to_frame()

    @cached_property
    def events(self) -> pd.DataFrame:
        return self.world.trace.events.to_frame()

    @cached_property
    def messages(self) -> pd.DataFrame:
        """The ledger: each message once, with ``fate`` delivered / dropped /
        in_flight, the drop ``reason`` and the time it was ``sent`` and ``ended``."""
        tr = self.trace
        sent = tr[tr["event"] == "send"].set_index("message_id")
        ends = tr[tr["event"] != "send"].drop_duplicates("message_id", keep="last")
        ends = ends.set_index("message_id")
        out = sent[["kind", "source", "dest", "trace_id", "size"]].copy()
        out["sent"] = sent["time"]
        out["fate"] = ends["event"].reindex(out.index).map(
            {"deliver": "delivered", "drop": "dropped"}).fillna("in_flight")
        out["reason"] = ends["reason"].reindex(out.index).fillna("")
        out["ended"] = ends["time"].reindex(out.index)
        return out.reset_index()

    def _frame_fates(self) -> dict[str, Any]:
        """:func:`_trace_fates` from the ledger table (:attr:`messages`)."""
        m = self.messages
        fates = m["fate"].value_counts()
        tr = self.trace
        terminal = tr[tr["event"] != "send"]["message_id"]
        return {"sent": len(m),
                "consistent": bool(m["message_id"].is_unique and terminal.is_unique
                                   and set(terminal) <= set(m["message_id"])),
                **{f: int(fates.get(f, 0)) for f in ("delivered", "dropped", "in_flight")}}

    def ledger(self) -> dict[str, Any]:
        """Counts of message fates; ``balanced`` if each sent message has
        exactly one fate and they agree with the network's own counters.

        Counted from the messages table a chunk at a time
        (:func:`_trace_fates`), so the ledger of a run too large to build
        :attr:`trace` or :attr:`messages` for (a spilled one) is exact too.
        A message sent twice under one id unbalances it."""
        net = self.world.network
        counts: dict[str, Any] = {"sent": net.sent, "delivered": net.delivered,
                                  "dropped": sum(net.dropped.values()),
                                  "in_flight": net.in_flight,
                                  "dropped_by_reason": dict(sorted(net.dropped.items()))}
        balanced = counts["sent"] == (counts["delivered"] + counts["dropped"]
                                      + counts["in_flight"])
        if self.world.trace.enabled:
            fates = _trace_fates(self.world.trace.messages)
            if fates is None:  # message ids no array can index: the ledger table
                fates = self._frame_fates()
            balanced = (balanced and fates["sent"] == net.sent and fates["consistent"]
                        and fates["delivered"] == net.delivered
                        and fates["dropped"] == counts["dropped"]
                        and fates["in_flight"] == net.in_flight)
        counts["balanced"] = bool(balanced)
        return counts

    # -- messaging (see simcomm.analysis.messaging) ---------------------
    @cached_property
    def deliveries(self) -> pd.DataFrame:
        """One row per copy of an application message (a message on one
        queue, subscription or brokerless channel): who published it, where
        it went, who consumed it, its publish / enqueue / deliver / ack
        times, redeliveries, its ``fate`` at the end (``consumed``,
        ``dead_lettered``, ``dropped`` with a ``reason``, ``queued``,
        ``unacked``, ``in_flight``) and its ``latency`` from publish to a
        handler finishing with it.  Columns and rules:
        :func:`simcomm.analysis.messaging.deliveries`.  Needs the trace
        (empty with ``trace=False``)."""
        from simcomm.analysis.messaging import deliveries

        return deliveries(self.world.trace.mq, self.world.trace.messages)

    @cached_property
    def queue_depth(self) -> pd.DataFrame:
        """Every broker queue's ``ready`` and ``unacked`` counts over time:
        ``time, node, queue, ready, unacked``, a row whenever one changed
        (a step function per queue).  Needs the trace."""
        from simcomm.analysis.messaging import queue_depth

        return queue_depth(self.world.trace.queues)

    @cached_property
    def consumer_inflight(self) -> pd.DataFrame:
        """How many deliveries each consumer held unsettled over time:
        ``time, consumer, queue, unacked``, a row whenever a count changed
        (with manual acks, RabbitMQ's unacknowledged count that prefetch
        caps; with auto-ack or brokerless, messages received and not yet
        handled).  Rules: :func:`simcomm.analysis.messaging.consumer_inflight`.
        Needs the trace."""
        from simcomm.analysis.messaging import consumer_inflight

        return consumer_inflight(self.world.trace.mq)

    @cached_property
    def _consumptions(self) -> pd.DataFrame:
        from simcomm.analysis.messaging import consumptions

        return consumptions(self.world.trace.mq)

    @overload
    def message_latency(self, percentiles: Sequence[float] = ...,
                        by: None = None) -> dict[str, float]: ...

    @overload
    def message_latency(self, percentiles: Sequence[float] = ...,
                        *, by: str | Sequence[str]) -> pd.DataFrame: ...

    def message_latency(self, percentiles: Sequence[float] = (50, 95, 99),
                        by: str | Sequence[str] | None = None) -> dict[str, float] | pd.DataFrame:
        """End-to-end latency of messages: from the publish to the first
        time a handler finished with the copy (its effect happened), over
        every copy handled.  ``{"messages": n, "mean": ..., "p50": ...,
        "p95": ..., "p99": ...}`` (seconds; a key per percentile, NaN with
        none handled).  ``by`` (a column of :attr:`deliveries` or a tuple of
        them, e.g. ``"channel"`` or ``("producer", "consumer")``) gives a
        DataFrame instead, one row per group with the same columns.
        ``percentiles``: numbers from 0 to 100.  Needs the trace."""
        from simcomm.analysis.messaging import message_latency

        return message_latency(self.deliveries, percentiles, by)

    def ordering(self, by: str | Sequence[str] = ("producer", "consumer")) -> pd.DataFrame:
        """The ordering report: one row per producer → consumer pair (or per
        group of ``by``, any column of
        :func:`~simcomm.analysis.messaging.consumptions`) with ``messages``,
        ``consumes``, ``out_of_order`` (consumed after a message of the same
        producer published later), ``duplicates`` (consumed again) and
        ``redelivered``.  The exact rules:
        :func:`simcomm.analysis.messaging.mark_order`.  Needs the trace."""
        from simcomm.analysis.messaging import ordering

        return ordering(self._consumptions, by)

    def message_ledger(self) -> dict[str, Any]:
        """Every copy of every message accounted for: ``published``
        (messages), ``copies`` (one per queue or subscription a message
        reached; a publish that reached none is one copy), one count per
        fate (``consumed``, ``dead_lettered``, ``dropped``, ``queued``,
        ``unacked``, ``in_flight``), ``dropped_by_reason``,
        ``redeliveries``, and ``balanced``.

        ``balanced`` means: copies = consumed + dead_lettered + dropped +
        queued + unacked + in_flight, each copy having exactly one fate; no
        copy of a message that was never published; no broker decision on a
        copy already settled (``conflicts``); and the brokers agree -- the
        copies each one holds at the end (:meth:`Broker.contents
        <simcomm.messaging.Broker.contents>`) are exactly the queued and
        unacked ones on its queues, and its own counters of acks,
        dead-letterings and drops by reason (``Broker.stats``) equal the
        events it recorded; every copy waiting in a brokerless transport's
        pipes is in flight.

        With ``trace=False`` the same counts come from the counters the
        brokers and consumers keep (see :meth:`_counted_ledger`), and
        ``balanced`` checks each broker's conservation of the copies it
        enqueued.
        """
        from simcomm.analysis.messaging import FATES, copy_ledger

        tr = self.world.trace
        if not tr.enabled:
            return self._counted_ledger()
        brokers = self._brokers()
        out = copy_ledger(tr.mq, tr.messages)
        balanced = (out["copies"] == sum(out[f] for f in FATES)
                    and out["unpublished"] == 0 and out["conflicts"] == 0)
        df = self.deliveries
        held = df[df["fate"].isin(("queued", "unacked"))]
        traced = Counter(zip(held["channel"], held["message_id"], strict=True))
        holds: Counter = Counter()
        for b in brokers:
            holds.update((queue, mid) for queue, mid, _, _ in b.contents())
        out["held_by_brokers"] = sum(holds.values())
        balanced = balanced and holds == traced
        # a brokerless transport's pipes hold copies the trace has in flight
        flying = df[df["fate"] == "in_flight"]
        flying_keys = set(zip(flying["channel"], flying["message_id"], strict=True))
        for t in self._brokerless():
            balanced = balanced and all((ch, mid) in flying_keys
                                        for ch, mid, *_ in t.contents())
        # the brokers' counters against their events: acks, dead-letterings,
        # and drops -- per reason for those only a broker records, in total
        # for those a consumer may record too (an auto-acked message lost
        # with a crashed consumer: the consumer, or the broker hearing the
        # reset, records it)
        from simcomm.messaging import Consumer

        names = {b.name for b in brokers}
        readers = {n.name: n for n in self.world.nodes.values()
                   if isinstance(n, Consumer) and n.transport in brokers}
        shared = ("consumer_crash", "rejected")
        acks: Counter = Counter()
        drops: Counter = Counter()
        for _, ev, _, _, node, detail in tr.mq:
            if ev == "drop" and (node in names or node in readers):
                drops[detail if node in names and detail not in shared else "*"] += 1
            elif ev in ("ack", "dead_letter"):
                acks[ev] += 1
        stats = [b.stats for b in brokers]
        counted: Counter = Counter()
        for st in stats:
            for why, n in st["dropped"].items():
                counted[why if why not in shared else "*"] += n
        counted["*"] += sum(c.stats["lost"] for c in readers.values())
        balanced = (balanced
                    and acks["ack"] == sum(st["consumed"] for st in stats)
                    and acks["dead_letter"] == sum(st["dead_lettered"] for st in stats)
                    and +drops == +counted)
        out["balanced"] = bool(balanced)
        return out

    def _counted_ledger(self) -> dict[str, Any]:
        """:meth:`message_ledger` from the brokers' and consumers' counters
        (``Broker.stats``, ``Consumer.stats``), for a run without a trace.

        Per broker, from its counters: published = ``sent``; consumed =
        manual acks (``consumed - auto_acked``) plus the auto-acked messages
        whose handler finished (the consumers' ``consumed``); dead-lettered
        = ``dead_lettered``; dropped = its drops by reason, the consumers'
        ``lost`` (auto-acked messages a crash or a failed handler lost) and
        the publishes that never reached it (``not_arrived``: ``sent``
        minus those it routed, holds unrouted or lost unrouted in a crash);
        queued = ``ready``; unacked = ``unacked``; in flight = publishes
        waiting to be routed plus auto-acked messages not yet handled (nor
        lost: by the consumer, or by the broker hearing a dead consumer's
        host reset one, its ``consumer_crash`` drops).

        A brokerless transport (``Brokerless.stats``): published =
        ``published``; consumed = its consumers' ``consumed`` (nothing to
        acknowledge); dropped = its drops by reason and its consumers'
        ``lost``; in flight = the rest of its copies (``copies`` put in
        pipes, and ``refused`` ones dropped before a pipe): in a pipe, on
        the wire, or in a consumer's hands; ``balanced`` checks that rest is
        not negative.

        Differences from the traced ledger, said rather than hidden: a
        publish still on the wire when the run ends counts as dropped
        (``not_arrived``: without a trace the network cannot tell a publish
        on its way from one it lost), and consumer losses are not split by
        reason (``consumer_lost``).  ``balanced`` checks that each broker
        accounts for every copy it enqueued: ``routed`` = acks (auto
        included) + dead-lettered + drops of enqueued copies (not of those
        already auto-acked) + ready + unacked.
        """
        from simcomm.analysis.messaging import FATES
        from simcomm.messaging import Consumer

        fates = dict.fromkeys(FATES, 0)
        reasons: Counter[str] = Counter()
        published = copies = redeliveries = held = 0
        balanced = True
        consumers = [n for n in self.world.nodes.values() if isinstance(n, Consumer)]
        for b in self._brokers():
            st = b.stats
            dropped = st["dropped"]
            arrived = st["published"] + st["waiting"] + st["unrouted_lost"]
            not_arrived = st["sent"] - arrived
            mine = [c for c in consumers if c.transport is b]
            auto = [c.stats for c in mine if c.auto_ack]
            handled = sum(c["consumed"] for c in auto)
            lost = sum(c.stats["lost"] for c in mine)
            # auto-acked deliveries the broker heard were lost with their consumer
            bounced = dropped.get("consumer_crash", 0)
            published += st["sent"]
            fates["consumed"] += st["consumed"] - st["auto_acked"] + handled
            fates["dead_lettered"] += st["dead_lettered"]
            fates["dropped"] += sum(dropped.values()) + not_arrived + lost
            fates["queued"] += st["ready"]
            fates["unacked"] += st["unacked"]
            in_flight = st["auto_acked"] - handled - sum(c["lost"] for c in auto) - bounced
            fates["in_flight"] += st["waiting"] + in_flight
            reasons.update(dropped)
            reasons.update({"not_arrived": not_arrived, "consumer_lost": lost})
            redeliveries += sum(c.stats["redelivered"] for c in mine)
            held += st["ready"] + st["unacked"]
            not_enqueued = (dropped.get("unroutable", 0) + dropped.get("queue_full", 0)
                            + st["unrouted_lost"])
            copies += st["routed"] + not_enqueued + not_arrived + st["waiting"]
            balanced = balanced and not_arrived >= 0 and in_flight >= 0 and st["routed"] == (
                st["consumed"] + st["dead_lettered"] + sum(dropped.values()) - not_enqueued
                - bounced + st["ready"] + st["unacked"])
        for t in self._brokerless():
            st = t.stats
            mine = [c for c in consumers if c.transport is t]
            handled = sum(c.stats["consumed"] for c in mine)
            lost = sum(c.stats["lost"] for c in mine)
            dropped = st["dropped"]
            total = st["copies"] + st["refused"]
            in_flight = total - handled - sum(dropped.values()) - lost
            published += st["published"]
            copies += total
            fates["consumed"] += handled
            fates["dropped"] += sum(dropped.values()) + lost
            fates["in_flight"] += in_flight
            reasons.update(dropped)
            reasons.update({"consumer_lost": lost})
            redeliveries += sum(c.stats["redelivered"] for c in mine)
            balanced = balanced and in_flight >= 0
        return {"published": published, "copies": copies, **fates,
                "dropped_by_reason": {k: n for k, n in sorted(reasons.items()) if n},
                "redeliveries": redeliveries, "held_by_brokers": held,
                "balanced": bool(balanced and copies == sum(fates.values()))}

    def _brokerless(self) -> list[Any]:
        """The run's brokerless transports (not nodes: found through the
        consumers and producers that use them)."""
        from simcomm.messaging import Broker, Consumer, Producer

        out: list[Any] = []
        for n in self.world.nodes.values():
            if isinstance(n, (Consumer, Producer)):
                t = n.transport
                if not isinstance(t, Broker) and all(t is not o for o in out):
                    out.append(t)
        return out

    def _brokers(self) -> list[Any]:
        """The run's broker nodes."""
        from simcomm.messaging import Broker

        return [n for n in self.world.nodes.values() if isinstance(n, Broker)]

    def _has_messaging(self) -> bool:
        """Messages were published, or the run has a broker, a consumer or a
        producer (a messaging run in which nothing happened says so)."""
        if self.world.trace.mq:
            return True
        from simcomm.messaging import Broker, Consumer, Producer

        return any(isinstance(n, (Broker, Consumer, Producer))
                   for n in self.world.nodes.values())

    @cached_property
    def _message_counts(self) -> dict[str, Any] | None:
        """The summary's messaging keys (:data:`MESSAGING_KEYS`), or None
        for a run without messaging.  With the trace they are counted from
        the copies of :attr:`deliveries`; without, from the counters
        (:meth:`_counted_ledger`), and the latency is NaN (it needs each
        message's times)."""
        import numpy as np

        if not self._has_messaging():
            return None
        if not self.world.trace.enabled:
            led = self._counted_ledger()
            return {"messages_published": led["published"],
                    "messages_consumed": led["consumed"],
                    "messages_lost": led["dropped"],
                    "messages_dead_lettered": led["dead_lettered"],
                    "messages_queued": led["queued"] + led["unacked"] + led["in_flight"],
                    "redeliveries": led["redeliveries"], "message_p95_latency": math.nan}
        df = self.deliveries
        fates = df["fate"].value_counts()
        lat = df["latency"].to_numpy(dtype=float)
        lat = lat[np.isfinite(lat)]
        return {
            "messages_published": int(df.loc[df["producer"].notna(), "message_id"].nunique()),
            "messages_consumed": int(fates.get("consumed", 0)),
            "messages_lost": int(fates.get("dropped", 0)),
            "messages_dead_lettered": int(fates.get("dead_lettered", 0)),
            "messages_queued": int(sum(fates.get(f, 0)
                                       for f in ("queued", "unacked", "in_flight"))),
            "redeliveries": int(df["redeliveries"].sum()),
            "message_p95_latency": float(np.percentile(lat, 95)) if lat.size else math.nan,
        }

    # -- keyed records (see simcomm.analysis.delivery) ---------------------
    @cached_property
    def records(self) -> pd.DataFrame:
        """The records table: one row per event in the life of a keyed
        application record (``produce``, ``send``, ``retry``, ``append``,
        ``ack``, ``fail``, ``truncate``, ``apply``, ``skip``, ``commit``,
        ``assign``, ``revoke``, ``rebalance_start``, ...), columns
        ``RECORD_COLUMNS`` (``time, event, record_id, topic, partition,
        offset, key, node, detail``) as recorded.  Needs the trace (empty with
        ``trace=False``)."""
        from simcomm.analysis.delivery import records_frame

        return records_frame(self.world.trace.records)

    @cached_property
    def _delivery(self) -> Any:
        """The delivery analysis of the records (a
        :class:`simcomm.analysis.delivery.Delivery`), made once."""
        from simcomm.analysis.delivery import analyse

        tr = self.world.trace
        return analyse(self.records, tr.events, tr.mq if tr.mq else None)

    def _has_records(self) -> bool:
        """The records table has a ``produce`` row (a traced run with keyed records)."""
        return any(row[1] == "produce" for row in self.world.trace.records)

    def key_order(self) -> pd.DataFrame:
        """Per key, the order records were applied in against the order they
        were produced: one row per ``apply`` or ``skip``, in the order they
        happened, columns ``key, record_id, produced_index`` (the record's
        place in its key's produced order, from 0; NaN for a null key or a
        record never produced), ``applied_index`` (its place among the
        key's first applications; NaN for a repeat), ``time, node,
        partition, offset``, ``kind`` (``in_order``, ``reordered``,
        ``duplicate``, ``skipped``; ``phantom`` for a record never
        produced), ``cause`` (of a reorder, a duplicate or a skip) and
        ``reader`` (the consumer group or queue).  Rules:
        :mod:`simcomm.analysis.delivery`.  Needs the trace."""
        return self._delivery.key_order  # type: ignore[no-any-return]

    def delivery_anomalies(self) -> pd.DataFrame:
        """Every delivery anomaly, in time order: ``time, key, record_id,
        anomaly`` (``lost``, ``duplicated``, ``reordered``, ``gap``,
        ``phantom``), ``cause`` (``rebalance``, ``crash before commit``,
        ``retry in flight``, ``competing consumers``, ``relay crash``,
        ``commit before processing``, ``leader failover``, ``producer gave
        up``, ``dual write``, ``redelivery``, ...) and ``reader``.  Rules:
        :mod:`simcomm.analysis.delivery`.  Needs the trace."""
        return self._delivery.anomalies  # type: ignore[no-any-return]

    def delivery_causes(self) -> pd.DataFrame:
        """The anomalies counted by cause: ``anomaly, cause, count`` (tidy,
        only what happened).  Needs the trace."""
        return self._delivery.causes()  # type: ignore[no-any-return]

    def assignments(self) -> pd.DataFrame:
        """Which member of which consumer group owned which partition when:
        ``group, topic, partition, member, start, end, generation``, one row
        per interval (``end`` = the run's end for one still held).  Rules:
        :func:`simcomm.analysis.delivery.assignments`.  Needs the trace."""
        from simcomm.analysis.delivery import assignments

        return assignments(self.records, until=self.until)

    def rebalances(self) -> pd.DataFrame:
        """Every consumer-group rebalance: ``group, start, end, why,
        generation`` (eager: from the last member's revocation -- each hears
        of it at its next heartbeat and finishes its batch -- to the end,
        nobody in the group consumes: the stop-the-world pause).  Rules:
        :func:`simcomm.analysis.delivery.rebalances`.  Needs the trace."""
        from simcomm.analysis.delivery import rebalances

        return rebalances(self.records)

    def consumer_lag(self) -> pd.DataFrame:
        """Each group's lag per partition over time: ``time, group, topic,
        partition, log_end, committed, lag`` (log end minus committed offset,
        a row whenever either changed).  Rules:
        :func:`simcomm.analysis.delivery.consumer_lag`.  Needs the trace."""
        from simcomm.analysis.delivery import consumer_lag

        return consumer_lag(self.records)

    def outbox_lag(self) -> pd.DataFrame:
        """Each record written with a business transaction (outbox or dual
        write): ``record_id, key, committed, sent, applied, lag`` (commit →
        first application; a phantom has ``committed`` NaN).  Rules:
        :func:`simcomm.analysis.delivery.outbox_lag`.  Needs the trace."""
        from simcomm.analysis.delivery import outbox_lag

        return outbox_lag(self.records)

    def _log_nodes(self) -> tuple[list[Any], list[Any]]:
        """The run's log producers and group consumers (issue 9)."""
        from simcomm.messaging.group_consumer import GroupConsumer
        from simcomm.messaging.log_producer import LogProducer

        nodes = list(self.world.nodes.values())
        return ([n for n in nodes if isinstance(n, LogProducer)],
                [n for n in nodes if isinstance(n, GroupConsumer)])

    @cached_property
    def _record_counts(self) -> dict[str, Any] | None:
        """The summary's delivery keys (:data:`DELIVERY_KEYS`) and the
        record latency keys (:data:`RECORD_KEYS`), or None for a run without
        records.  Traced: from :attr:`_delivery`.  With ``trace=False`` a run
        with log producers or group consumers still has them: produced and
        applied from the nodes' counters (``LogProducer.sent``,
        ``GroupConsumer.applied``), pending as their difference, rebalances
        from the group coordinators; every anomaly, its rate and the latency
        are NaN (they need each record's rows)."""
        import numpy as np

        if self.world.trace.enabled:
            if not self._has_records():
                return None
            d = self._delivery
            out = {k: d.counts[k] for k in DELIVERY_KEYS}
            lat = d.latency()
            pct = np.percentile(lat, [50, 95, 99]) if lat.size else [math.nan] * 3
            out.update({"record_mean_latency": float(lat.mean()) if lat.size else math.nan,
                        "record_p50_latency": float(pct[0]),
                        "record_p95_latency": float(pct[1]),
                        "record_p99_latency": float(pct[2]),
                        "record_throughput": lat.size / self.until})
            return out
        producers, consumers = self._log_nodes()
        if not producers and not consumers:
            return None
        produced = sum(p.sent for p in producers)
        applied = sum(c.applied for c in consumers)
        out = dict.fromkeys((*DELIVERY_KEYS, *RECORD_KEYS), math.nan)
        out.update({"records_produced": produced, "records_applied": applied,
                    "pending": max(produced - applied, 0),
                    "record_throughput": applied / self.until})
        if consumers:
            # the coordinators count the rebalances they started
            from simcomm.messaging.group import GroupCoordinator

            clusters: list[Any] = []
            for c in consumers:
                if all(c.cluster is not k for k in clusters):
                    clusters.append(c.cluster)
            out["rebalances"] = sum(h.state.rebalances for k in clusters
                                    for h in GroupCoordinator.of(k).groups.values())
        return out

    @cached_property
    def _record_run(self) -> bool:
        """A run of records alone: keyed records (or log producers / group
        consumers), no client sending requests and no issue-8 messaging."""
        return (not self._message_run and self._record_counts is not None
                and not self._has_messaging()
                and not any(isinstance(node, Client) for node in self.world.nodes.values()))

    def _delivery_keys(self, requests: bool) -> dict[str, Any]:
        """The delivery keys for a summary that has others before them
        (requests or messages): ``pending`` renamed ``records_pending``
        where the request keys have a ``pending`` of their own."""
        rc = self._record_counts
        if rc is None:
            return {}
        return {("records_pending" if requests and k == "pending" else k): rc[k]
                for k in DELIVERY_KEYS}

    def _record_summary(self) -> dict[str, Any]:
        """The summary of a run of records alone: the delivery keys first,
        latency from produce to first application, the load in records."""
        health = self._health
        rc = self._record_counts
        assert rc is not None
        out: dict[str, Any] = {k: rc[k] for k in (*DELIVERY_KEYS, *RECORD_KEYS)}
        out.update(self._load_keys(health, "produce_rate", "record_capacity"))
        return out

    # -- service discovery (see simcomm.analysis.discovery) ---------------
    @cached_property
    def discovery(self) -> pd.DataFrame:
        """What service discovery did: ``DISCOVERY_COLUMNS`` (``time, event,
        node, service, instance, detail``) as recorded: registrations,
        renewals, cancels, evictions, critical / passing checks, readiness,
        probe failures, and the views' ``visible`` / ``hidden`` /
        ``lookup_failed``.  Needs the trace (empty with ``trace=False``)."""
        import pandas as pd

        return pd.DataFrame(self.world.trace.discovery, columns=list(DISCOVERY_COLUMNS))

    @cached_property
    def _instance_states(self) -> pd.DataFrame:
        """Every instance's state over the run (from the timeline events)."""
        from simcomm.analysis.discovery import instance_states

        return instance_states(self.world.trace.events, until=self.until)

    @cached_property
    def routes(self) -> pd.DataFrame:
        """One row per call a discovery client or router sent: ``time``
        (sent), ``trace_id``, ``caller``, ``service``, ``instance`` (None when
        none was found), ``via`` (``client`` or the router), ``attempt``,
        ``outcome`` (``pending`` with ``end`` NaN for a call still waiting at
        the end), ``end``, and the instance's ``state`` when the call was
        sent with ``stale`` (it was starting, hung, down or stopped).  Rules:
        :func:`simcomm.analysis.discovery.routes_with_state`.  Kept with or
        without the trace."""
        from simcomm.analysis.discovery import routes_with_state

        return routes_with_state(self.world.trace.routes, self._instance_states)

    @cached_property
    def _routed_states(self) -> pd.DataFrame:
        """The states of the instances of the services calls were routed to
        (a registry's, a caller's or a router's own crash -- a router may
        carry the service's name -- is not a routed instance's death)."""
        from simcomm.engine.nodes import Instance

        rows = self.world.trace.routes
        services = {row[3] for row in rows}
        routers = {row[2] for row in rows} | {row[5] for row in rows}
        names = {name for name, node in self.world.nodes.items()
                 if isinstance(node, Instance) and node.service in services
                 and name not in routers}
        names |= {row[4] for row in rows if row[4] is not None}
        states = self._instance_states
        return states[states["instance"].isin(names)].reset_index(drop=True)

    def detection(self) -> pd.DataFrame:
        """Each death of an instance of a routed service and how long calls
        still went to it: ``instance, died, kind`` (``crash``, ``hang``,
        ``stop``, ``node_failure``), ``stale_calls``, ``last_stale_call`` and
        ``lag`` (last stale call − death; 0 when none).  Rules:
        :func:`simcomm.analysis.discovery.detection`; the bound of the lag
        from a registry's timings: :func:`simcomm.analysis.discovery.lag_bounds`."""
        from simcomm.analysis.discovery import detection

        return detection(self.routes, self._routed_states)

    def _discovery_keys(self) -> dict[str, Any]:
        """The summary's :data:`DISCOVERY_KEYS`."""
        from simcomm.analysis.discovery import discovery_keys

        return discovery_keys(self.routes, self._routed_states, self.requests,
                              self.world.trace.counters.get("discovery_messages", 0),
                              self.until)

    # -- numbers -------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Headline numbers (seconds, per second, fractions); see
        :data:`SUMMARY_UNITS` and :data:`SUMMARY_HELP` for each key.

        Beside latency and outcomes it reports what did not finish and how
        hard the system worked: ``completed_share`` and ``pending_share`` of
        all requests, ``offered_rate`` against ``capacity`` (their ratio
        ``offered_load``), the ``bottleneck`` and its utilisation, and
        ``stable`` (False when :meth:`warnings` has something to say).
        Every number is the same with ``trace=False``; of the messaging keys
        a run with messaging adds (:data:`MESSAGING_KEYS`), the latency then
        needs the trace (NaN), and a publish still on its way to the broker
        at the end counts as lost (:meth:`message_ledger`).  A run with keyed
        records adds :data:`DELIVERY_KEYS` (a run of records alone has them
        first, with :data:`RECORD_KEYS` and the load in records); with
        ``trace=False`` only the counted ones are numbers (records produced
        and applied, pending, rebalances) and the anomalies are NaN.  A run
        with service discovery (calls in its routes table) adds
        :data:`DISCOVERY_KEYS`, the same with or without the trace.
        """
        out = self._base_summary()
        if self.world.trace.routes:
            out.update(self._discovery_keys())
        return out

    def _base_summary(self) -> dict[str, Any]:
        """The summary without the discovery keys (see :meth:`summary`)."""
        import numpy as np

        if self._message_run:
            return self._message_summary()
        if self._record_run:
            return self._record_summary()
        df = self.requests
        outcomes = df["outcome"]
        ok = df[outcomes == "ok"]
        lat = ok["latency"].to_numpy()
        failed = int(outcomes.isin(FAILURES).sum())
        fallback = int((outcomes == "fallback").sum())
        answered = len(ok) + fallback
        finished = answered + failed
        out: dict[str, Any] = {
            "requests": len(df),
            "completed": len(ok),
            "fallback": fallback,
            "answered": answered,
            "failed": failed,
            "pending": int((outcomes == "pending").sum()),
        }
        for outcome in FAILURES:
            out[outcome] = int((outcomes == outcome).sum())
        health = self._health
        pct = np.percentile(lat, [50, 95, 99]) if lat.size else [math.nan] * 3
        out.update({
            "completed_share": health["completed_share"],
            "pending_share": health["pending_share"],
            "mean_latency": float(lat.mean()) if lat.size else math.nan,
            "p50": float(pct[0]),
            "p95": float(pct[1]),
            "p99": float(pct[2]),
            "throughput": len(ok) / self.until,
            "availability": answered / finished if finished else math.nan,
            "success_rate": len(ok) / finished if finished else math.nan,
            "retries": sum(edge.retries for edge in self._edges()),
            "breaker_opens": sum(1 for row in self.world.trace.breakers if row[4] == "open"),
            "orphan_replies": sum(1 for row in self.world.trace.events
                                  if row[2] == "orphan_reply"),
            "max_amplification": max(self.amplification().values(), default=math.nan),
            "offered_rate": health["offered_rate"],
            "capacity": health["capacity"],
            "offered_load": health["offered_load"],
            "bottleneck": health["bottleneck"]["resource"],
            "bottleneck_utilisation": health["bottleneck"]["utilisation"],
            "stable": health["stable"],
            "messages_sent": self.world.network.sent,
            "messages_dropped": sum(self.world.network.dropped.values()),
        })
        mq = self._message_counts
        if mq is not None:
            out.update({key: mq[key] for key in MESSAGING_KEYS})
        out.update(self._delivery_keys(requests=True))
        return out

    @cached_property
    def _message_run(self) -> bool:
        """A run of messages alone: messaging, and no client sending requests."""
        return self._has_messaging() and not any(
            isinstance(node, Client) for node in self.world.nodes.values())

    def _message_summary(self) -> dict[str, Any]:
        """The summary of a run of messages alone: no request keys (there were
        no requests), the messaging keys first, and the load in messages."""
        health = self._health
        mq = self._message_counts
        assert mq is not None
        out: dict[str, Any] = {key: mq[key] for key in MESSAGING_KEYS}
        out.update(self._load_keys(health, "publish_rate", "message_capacity"))
        out.update(self._delivery_keys(requests=False))
        return out

    def _load_keys(self, health: dict[str, Any], rate: str, capacity: str) -> dict[str, Any]:
        """The load part of a summary without requests: the offered rate and the
        capacity under the names of what is counted (``rate``, ``capacity``),
        the bottleneck, and the network's traffic."""
        return {
            rate: health["offered_rate"],
            capacity: health["capacity"],
            "offered_load": health["offered_load"],
            "bottleneck": health["bottleneck"]["resource"],
            "bottleneck_utilisation": health["bottleneck"]["utilisation"],
            "stable": health["stable"],
            "messages_sent": self.world.network.sent,
            "messages_dropped": sum(self.world.network.dropped.values()),
        }

    def _edges(self) -> list[Any]:
        """The protected edges of every caller (see :mod:`simcomm.rpc.policies`)."""
        out: list[Any] = []
        for node in self.world.nodes.values():
            router = node.outbound
            if router is not None:
                out.extend(router.edges)
        return out

    def utilisation(self, start: float = 0.0) -> dict[str, float]:
        """Mean fraction of busy workers per instance over ``[start, until]``.

        From ``start=0`` (the default) it comes from the busy-time integral
        every instance keeps as it runs (:meth:`Instance.busy_seconds
        <simcomm.engine.nodes.Instance.busy_seconds>`), so it is exact with
        or without a trace.  From a later ``start`` (to drop a warm-up) it
        needs the pool trace; a run with ``trace=False`` keeps no history of
        the busy count, so a ``start > 0`` then raises a ParamError naming
        ``start`` rather than guess.
        """
        from simcomm.analysis.metrics import time_averages
        from simcomm.engine.nodes import Instance

        t0 = as_real(start)
        if t0 is None or not 0.0 <= t0 < self.until:
            raise ParamError("start", start, f"a time in seconds from 0 to below {self.until:g}")
        nodes = {name: node for name, node in self.world.nodes.items()
                 if isinstance(node, Instance)}
        if t0 == 0.0:
            return {name: node.busy_seconds(self.until) / (node.workers * self.until)
                    for name, node in nodes.items()}
        if not self.world.trace.enabled:
            raise ParamError("start", start, "0 for a run with trace=False (a later start "
                                             "needs the pool trace: run with trace=True)")
        busy = time_averages(self.world.trace.pools, "busy", t0, self.until)
        return {name: busy.get(name, 0.0) / node.workers for name, node in nodes.items()}

    def link_utilisation(self) -> dict[str, float]:
        """Fraction of the run each link with a bandwidth spent transmitting.

        Keyed ``"a → b"`` (one direction of a connection); only links with a
        bandwidth that carried traffic are listed.  Exact with or without a
        trace: each link adds up its transmission times as it goes, and what
        was still queued or going out at the end is left out.
        """
        busy = self.world.network.link_busy_seconds(self.until)
        return {f"{a} → {b}": seconds / self.until for (a, b), seconds in busy.items()}

    @cached_property
    def _resource_rows(self) -> list[tuple[str, str, float]]:
        """(resource, kind, utilisation) of every worker pool and link, busiest first."""
        rows = [(name, "workers", u) for name, u in self.utilisation().items()]
        rows += [(name, "link", u) for name, u in self.link_utilisation().items()]
        rows.sort(key=lambda r: -r[2])  # stable: ties keep pools before links, node order
        return rows

    def resources(self) -> pd.DataFrame:
        """How busy every resource was: columns ``resource``, ``kind``
        (``"workers"`` for an instance's worker pool, ``"link"`` for a link
        with a bandwidth, named ``"a → b"``) and ``utilisation`` (mean
        fraction busy over the run), busiest first."""
        import pandas as pd

        return pd.DataFrame(self._resource_rows, columns=["resource", "kind", "utilisation"])

    def bottleneck(self) -> dict[str, Any]:
        """The busiest resource: ``resource``, ``kind``, ``utilisation`` and a
        ``text`` such as "the api-gateway-1 → order-1 link is 100 % busy" or
        "order-1's workers are 53 % busy".

        With no worker pool and no link with a bandwidth, ``resource`` and
        ``kind`` are None and ``utilisation`` is NaN.
        """
        if not self._resource_rows:
            return {"resource": None, "kind": None, "utilisation": math.nan,
                    "text": "no worker pool or link with a bandwidth to measure"}
        name, kind, u = self._resource_rows[0]
        busy = f"{_percent(u)} busy"
        text = f"the {name} link is {busy}" if kind == "link" else f"{name}'s workers are {busy}"
        return {"resource": name, "kind": kind, "utilisation": u, "text": text}

    @cached_property
    def _health(self) -> dict[str, Any]:
        """The numbers behind the overload keys of the summary and warnings().

        The judgement (``stable``) is made on the whole run, so that a
        transient fault that passed is not called overload:

        * *saturated* -- the bottleneck's mean utilisation over the run is at
          least :data:`SATURATED`;
        * *over capacity* -- the offered load (the scenario's nominal arrival
          rate, ``Scenario.load``, where it declares one: a short run's count
          of arrivals wanders) is 1 or more.  Only a capacity
          from the scenario's own model (``Scenario.capacity``) judges this:
          the estimate (throughput / bottleneck utilisation) counts workers
          held by a hang or requests that failed as if they were spent on
          useful work, so it is reported but does not judge on its own (a
          real overload then shows as saturation or a backlog anyway);
        * *backlog* -- more than :data:`PENDING_SHARE` of the requests, and
          at least :data:`MIN_PENDING`, were still pending at the end.  A
          hang that ended before the run did leaves its callers reset or
          abandoned, not pending, and does not count;
        * *saturated at the end* -- a worker pool was at least
          :data:`SATURATED` busy over the last :data:`LATE_SHARE` of the run,
          having received at least :data:`LATE_MIN_ARRIVALS` requests there,
          while no instance was hanging (needs the trace).  This is how
          a metastable failure shows: a trigger that passed left an overload
          behind it (a retry storm keeps a service busy on work nobody waits
          for), which the whole-run mean dilutes and a closed loop of users
          never turns into a backlog.
        """
        if self._message_run:
            # the work is messages: published ones, of which consumed or still queued
            mq = self._message_counts
            assert mq is not None
            n, completed = mq["messages_published"], mq["messages_consumed"]
            pending = mq["messages_queued"]
        elif self._record_run:
            # the work is records: produced ones, of which applied or still pending
            rc = self._record_counts
            assert rc is not None
            n, completed, pending = (rc["records_produced"], rc["records_applied"],
                                     rc["pending"])
        else:
            reqs = self.world.trace.requests
            n = len(reqs)
            completed = sum(int(b.equals("outcome", "ok").sum()) for b in reqs.batches())
            pending = sum(len(node.open) for node in self.world.nodes.values()
                          if isinstance(node, Client))
            n += pending
        neck = self.bottleneck()
        u = neck["utilisation"]
        offered = n / self.until
        throughput = completed / self.until
        model = getattr(self.scenario, "capacity", None)
        if callable(model) and self.params is not None:
            capacity, source = float(model(self.params)), "model"
        elif u > 0 and completed:
            capacity, source = throughput / u, "estimate"
        else:
            capacity, source = math.nan, "estimate"
        # judge the load on the scenario's nominal rate where it declares one:
        # a short run's arrival count wanders (21 arrivals in 20 s at 0.8/s
        # is not an overload of a 1 req/s server)
        declared = getattr(self.scenario, "load", None)
        nominal = (float(declared(self.params).requests_per_s)
                   if callable(declared) and self.params is not None else offered)
        load = nominal / capacity if capacity > 0 else math.nan
        pending_share = pending / n if n else math.nan
        saturated = u >= SATURATED
        over = source == "model" and load >= 1
        backlog = pending >= MIN_PENDING and pending_share > PENDING_SHARE
        late = self._late_saturation()
        return {"requests": n, "completed": completed, "pending": pending,
                "completed_share": completed / n if n else math.nan,
                "pending_share": pending_share, "offered_rate": offered,
                "capacity": capacity, "capacity_source": source, "offered_load": load,
                "bottleneck": neck, "saturated": saturated, "over_capacity": over,
                "backlog": backlog, "late": late,
                "stable": not (saturated or over or backlog or late is not None)}

    def _late_saturation(self) -> tuple[str, float] | None:
        """The busiest pool over the run's last :data:`LATE_SHARE`, if it was
        saturated there and nothing was hanging; None otherwise or untraced."""
        from simcomm.engine.nodes import Instance

        if not self.world.trace.enabled or any(
                isinstance(node, Instance) and node.hung for node in self.world.nodes.values()):
            return None
        start = self.until * (1.0 - LATE_SHARE)
        late = self.utilisation(start=start)
        if not late:
            return None
        name = max(late, key=lambda k: late[k])
        if late[name] < SATURATED:
            return None
        # enough work arrived there for "busy" to mean overload, not chance
        arrivals = sum(int(((b.floats("time") >= start) & b.equals("event", "deliver")
                            & b.equals("dest", name) & ~b.equals("kind", "reply")).sum())
                       for b in self.world.trace.messages.batches())
        return (name, late[name]) if arrivals >= LATE_MIN_ARRIVALS else None

    def warnings(self) -> list[str]:
        """What makes this run's headline numbers misleading, in plain sentences.

        Empty for a healthy run (``summary()["stable"]``).  When the
        bottleneck is saturated, the offered load is at or over the modelled
        capacity, or many requests were still pending at the end (the rules
        are in :attr:`_health`), one text names the pending share, the
        bottleneck and the offered rate against the capacity, e.g.
        "overloaded: 9 783 of 19 844 requests (49 %) were still pending at
        the end; server-1's workers are 100 % busy; offered 2.0 req/s
        against a capacity of about 1.0 req/s. availability counts finished
        requests only."

        It begins with what went wrong: ``overloaded`` (saturated or over
        capacity), ``stuck`` (an instance was hanging at the end: workers
        held by a hang look busy but are not overloaded, and the text names
        the hung instance), or ``unfinished`` (only the backlog: the run may
        be too short for its latencies).  No Python warning is issued here:
        ``simcomm.run`` does that.
        """
        from simcomm.engine.nodes import Instance

        h = self._health
        if h["stable"]:
            return []
        hung = [name for name, node in self.world.nodes.items()
                if isinstance(node, Instance) and node.hung]
        n, pending = h["requests"], h["pending"]
        messages = self._message_run
        records = self._record_run
        work, unit, left = (("messages", "msg/s", "still queued") if messages
                            else ("records", "rec/s", "still pending (not yet applied)")
                            if records else ("requests", "req/s", "still pending"))
        parts = [f"{_count(pending)} of {_count(n)} {work} "
                 f"({_percent(h['pending_share'] if n else 0.0)}) were {left} "
                 f"at the end", h["bottleneck"]["text"]]
        if math.isfinite(h["capacity"]):
            how = "a capacity" if h["capacity_source"] == "model" else "an estimated capacity"
            verb = "published" if messages else "produced" if records else "offered"
            parts.append(f"{verb} {_rate(h['offered_rate'])} "
                         f"{unit} against {how} of about {_rate(h['capacity'])} {unit}")
        if hung and not h["over_capacity"]:
            # busy workers held by a hang (here or downstream) are not overload
            lead, why = "stuck", ""
            parts.append(f"{', '.join(hung)} {'was' if len(hung) == 1 else 'were'} "
                         f"hanging at the end")
        elif h["saturated"] or h["over_capacity"] or h["late"] is not None:
            lead, why = "overloaded", ""
            if h["late"] is not None and not (h["saturated"] or h["over_capacity"]):
                # only news when the whole run's numbers do not show the overload
                name, busy = h["late"]
                parts.append(f"{name}'s workers were {_percent(busy)} busy over the last "
                             f"{_percent(LATE_SHARE)} of the run: the overload outlived "
                             f"what started it")
        else:
            lead, why = "unfinished", (" The run may be too short for its latencies, or "
                                       f"{work} are stuck waiting.")
        tail = ("" if messages or records
                else " availability counts finished requests only.")
        return [f"{lead}: {'; '.join(parts)}.{why}{tail}"]

    def fingerprint(self) -> str:
        """SHA-256 of every traced event: equal fingerprints, identical runs.

        The hash of the tables' reprs as lists of tuples (what the trace
        held before its rows went into columns), written a chunk at a time."""
        h = hashlib.sha256()
        tr = self.world.trace
        for table in (tr.messages, tr.requests, tr.pools, tr.events, tr.attempts,
                      tr.breakers):
            table.write_repr(h.update)  # repr(list of the rows), a chunk at a time
        # the messaging tables only when a run has them, so that runs without
        # messaging keep the fingerprints they always had
        for table in (tr.mq, tr.queues, tr.records, tr.discovery, tr.routes):
            if table:
                table.write_repr(h.update)
        if tr.counters:
            h.update(repr(sorted(tr.counters.items())).encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        name = self.scenario.name if self.scenario else "world"
        s = self.summary()
        if self._message_run:
            return (f"<Result {name} seed={self.seed} until={self.until:g}s: "
                    f"{s['messages_published']} messages published, "
                    f"{s['messages_consumed']} consumed, "
                    f"p95 {s['message_p95_latency']:.4g}s>")
        if self._record_run:
            return (f"<Result {name} seed={self.seed} until={self.until:g}s: "
                    f"{s['records_produced']} records produced, "
                    f"{s['records_applied']} applied, lost {s['lost']}, "
                    f"duplicated {s['duplicated']}, reordered {s['reordered']}>")
        return (f"<Result {name} seed={self.seed} until={self.until:g}s: "
                f"{s['requests']} requests, availability {s['availability']:.4f}, "
                f"p50 {s['p50']:.4g}s>")


def _percent(fraction: float) -> str:
    """0.4930 -> "49 %"."""
    return f"{fraction * 100:.0f} %"


def _count(n: int) -> str:
    """19844 -> "19 844" (a space between thousands, as in prose)."""
    return f"{n:,}".replace(",", " ")


def _rate(x: float) -> str:
    """A rate for a sentence: 2 -> "2.0", 0.013 -> "0.013", 1234.5 -> "1 234"."""
    if x >= 100:
        return _count(round(x))
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def _id_order(requests: Table, pending: list[tuple]) -> np.ndarray | None:
    """The positions of the requests table's rows (then ``pending``'s) in
    the order of their ids (a stable sort), to build the table already
    sorted; None if an id is not an int (the frame is sorted afterwards)."""
    import numpy as np

    parts = []
    for b in requests.batches():
        ids, valid = b.ints("request_id")
        if not valid.all():
            return None
        parts.append(ids)
    if pending:
        if not all(type(row[0]) is int for row in pending):
            return None
        parts.append(np.array([row[0] for row in pending], dtype=np.int64))
    if not parts:
        return None
    ids = np.concatenate(parts)
    return np.argsort(ids, kind="stable")


def _sent_not_reply(b: Batch) -> np.ndarray:
    """The rows of a messages batch that count as a hop: sends, replies left out."""
    return b.equals("event", "send") & ~b.equals("kind", "reply")  # type: ignore[no-any-return]


def _count_ids(table: Table, column: str, ids: np.ndarray,
               where: Callable[[Batch], np.ndarray] | None = None) -> Any:
    """For each of ``ids``, the rows of ``table`` (``where`` it says, if
    given) whose ``column`` holds it: the ``hops`` and ``attempts`` of the
    requests table, counted a chunk at a time, exactly (an int64 array; a
    list for no ids, as a list of counts gave)."""
    import numpy as np

    if not len(ids):
        return []
    if ids.dtype.kind in "iu":
        lo, hi = int(ids.min()), int(ids.max())
        if hi - lo <= 8 * len(ids) + 1024:
            counts = np.zeros(hi - lo + 1, dtype=np.int64)
            for b in table.batches():
                vals, valid = b.ints(column)
                if where is not None:
                    valid &= where(b)
                vals = vals[valid & (vals >= lo) & (vals <= hi)] - lo
                if vals.size:
                    counts += np.bincount(vals, minlength=counts.size)
            return counts[ids.astype(np.int64) - lo]
    found: Counter = Counter()
    for b in table.batches():
        keep = None if where is None else where(b).tolist()
        found.update(v for k, v in enumerate(b.values(column)) if keep is None or keep[k])
    return np.array([found.get(i, 0) for i in ids.tolist()], dtype=np.int64)


def _trace_fates(messages: Table) -> dict[str, Any] | None:
    """The ledger of the messages table, counted a chunk at a time: ``sent``
    (send rows), ``consistent`` (every id sent once, at most one terminal
    event -- deliver or drop -- per id, none for an id never sent), and the
    sends whose message was ``delivered``, ``dropped`` or is still
    ``in_flight``.  Three bytes per message id; None when the ids are not
    small non-negative ints (a hand-made trace): then the tables do it."""
    import numpy as np

    def grow(arr: np.ndarray, size: int) -> np.ndarray:
        if size <= arr.size:
            return arr
        out = np.zeros(max(size, 2 * arr.size), dtype=np.uint8)
        out[:arr.size] = arr
        return out

    sends = np.zeros(0, dtype=np.uint8)  # send rows per id, up to 2
    ends = np.zeros(0, dtype=np.uint8)   # terminal rows per id, up to 2
    fate = np.zeros(0, dtype=np.uint8)   # the last terminal event: 1 deliver, 2 drop, 3 other
    sent = rows = 0
    for b in messages.batches():
        ids, valid = b.ints("message_id")
        rows += b.n
        if not valid.all() or (ids.size and (ids.min() < 0
                                             or ids.max() > 16 * rows + (1 << 20))):
            return None
        is_send = b.equals("event", "send")
        sent += int(is_send.sum())
        for mask, counts in ((is_send, "sends"), (~is_send, "ends")):
            sel = ids[mask]
            if not sel.size:
                continue
            top = int(sel.max()) + 1
            u, c = np.unique(sel, return_counts=True)
            if counts == "sends":
                sends = grow(sends, top)
                sends[u] = np.minimum(sends[u] + np.minimum(c, 2), 2)
            else:
                ends = grow(ends, top)
                fate = grow(fate, top)
                ends[u] = np.minimum(ends[u] + np.minimum(c, 2), 2)
                kind = np.where(b.equals("event", "deliver")[mask], 1,
                                np.where(b.equals("event", "drop")[mask], 2, 3))
                fate[sel] = kind.astype(np.uint8)
    size = max(sends.size, ends.size)
    sends = grow(sends, size)[:size]
    ends = grow(ends, size)[:size]
    fate = grow(fate, size)[:size]
    once = sends == 1
    consistent = not ((sends > 1).any() or (ends > 1).any() or ((ends > 0) & (sends == 0)).any())
    return {"sent": sent, "consistent": bool(consistent),
            "delivered": int((once & (fate == 1)).sum()),
            "dropped": int((once & (fate == 2)).sum()),
            "in_flight": int((once & ((fate == 0) | (fate == 3))).sum())}
