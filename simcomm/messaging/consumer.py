"""A message consumer: a service instance that reads one queue or subscription.

A :class:`Consumer` is an ordinary :class:`~simcomm.engine.Instance` (so it
can crash, hang, slow down, fail at an error rate, and its workers show in
the utilisation tables) whose work arrives as deliveries from a transport
instead of requests from clients.  It subscribes when it starts and after
every restart; each delivery is handled by one of its ``workers``:

* the **handler** ``handler(ctx, delivery)`` is a generator like an
  instance's (``yield ctx.work()`` for CPU time, ``yield from
  simcomm.rpc.call(ctx, ...)`` for a call, ``publish(ctx.instance, ...)``
  to send a message on); the default is one unit of work (a draw of
  ``service_time``), run as a timer and a callback rather than a process,
  since it is the hot path.  When it returns, the message's effect has
  been applied: ``consume`` is recorded in ``trace.mq``.
* then, with **manual acks** (the default), the consumer acks the delivery;
  a handler that raises :class:`Reject` nacks it (``Reject(requeue=True)``
  puts it back in its queue, ``Reject(requeue=False)`` dead-letters or drops
  it), and a :class:`~simcomm.engine.ServiceError` -- or an injected error
  (``ErrorRate`` fault) -- does what ``on_error`` says: ``"requeue"`` or
  ``"dead_letter"``.  With **auto-ack** the broker counted the message done
  when it sent it: nothing is sent back, and a message the consumer holds
  when it dies, or whose handler fails, is lost (REFERENCE §4).

The broker delivers at most ``prefetch`` unacknowledged messages to this
consumer (0 = unlimited; RabbitMQ's ``basic.qos``); those beyond its free
workers wait in its local buffer.

Faults, as a real consumer process suffers them:

* **crash** -- the process dies with what it held: its operating system
  closes its connection, so the broker requeues the unacked deliveries
  (they go to another consumer, or to this one when it is back, with
  ``redelivered=True``); with auto-ack they are lost (``drop``,
  ``consumer_crash``).  It resubscribes when it restarts.
* **hang** -- the workers stop at the next delivery (or before the ack of
  the one they finished); when the hang ends a watchdog restarts the
  process, as for any instance: its connection is reset (the broker
  requeues what it held), the deliveries it sat on are dropped, and it
  resubscribes at once.
* the **broker** closing its connection (the broker crashed), or going
  silent for the heartbeat timeout (a partition, a hung broker) -- deliveries
  still buffered are dropped (the broker requeues what it can), handlers
  already running finish (their acks cannot travel on a closed channel, so
  those messages come back: at-least-once), and it tries to reconnect every
  ``reconnect_interval`` s (default: the transport's, 5 s).

With ``batch_ack=n`` (and one worker) the consumer acks with
``multiple=True`` every ``n`` deliveries, or as soon as no more wait (Spring
AMQP's ``batchSize``): fewer acks on the wire, more redeliveries if it dies.

``trace.mq``: ``deliver`` when a delivery arrives (``redelivered`` or ``""``),
``consume`` when the handler has finished with it, ``drop`` with
``consumer_crash`` for an auto-acked message it lost, or ``rejected`` for an
auto-acked message its handler failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import Event

from simcomm._checks import as_real, is_flag, is_whole
from simcomm.engine.messages import CONTROL, REPLY, Message
from simcomm.engine.nodes import Context, Instance, Node, ServiceError
from simcomm.errors import ParamError
from simcomm.messaging.envelope import Delivery
from simcomm.messaging.transport import Transport, is_transport

if TYPE_CHECKING:
    from simcomm.engine.formats import Format
    from simcomm.engine.randomness import Distribution
    from simcomm.engine.world import World

__all__ = ["ON_ERROR", "Consumer", "DeliveryHandler", "Reject"]

#: what a consumer does with a delivery whose handler raised ServiceError
ON_ERROR = ("requeue", "dead_letter")

DeliveryHandler = Callable[[Context, Delivery], Generator[Event, Any, Any]]


class Reject(Exception):
    """Raised by a handler to nack its delivery (AMQP ``basic.reject``).

    ``requeue=True`` (AMQP's default) puts the message back at its original
    position in the queue, to be redelivered with ``redelivered=True``;
    ``requeue=False`` sends it to the queue's dead-letter exchange, or drops
    it if there is none.  The handler's effect counts as not applied.
    """

    def __init__(self, requeue: bool = True, *args: object) -> None:
        if not is_flag(requeue):
            raise ParamError("requeue", requeue, "True or False")
        super().__init__(*args)
        self.requeue = bool(requeue)


class Consumer(Instance):
    """A consumer of ``queue`` on ``transport`` (see the module docstring).

    ``queue`` names a point-to-point channel (a queue) or, with
    ``subscription``, a publish-subscribe channel: the consumer then reads
    its subscription's own queue ``<channel>.<subscription>``, which with
    ``durable=True`` keeps collecting messages while the consumer is away
    (and is shared by every consumer of that subscription: competing
    consumers), and with ``durable=False`` exists only while this
    consumer's connection is open (it misses what is published meanwhile).
    """

    #: one connection per peer (AMQP, or a brokerless pipe's TCP): the network keeps its
    #: messages in order
    fifo = True

    def __init__(self, world: World, name: str, transport: Transport, queue: str, *,
                 handler: DeliveryHandler | None = None, prefetch: int = 1,
                 auto_ack: bool = False, workers: int = 1,
                 service_time: Distribution | float = 0.0, on_error: str = "requeue",
                 subscription: str | None = None, durable: bool = True,
                 reconnect_interval: float | None = None, batch_ack: int = 1,
                 format: Format | str | None = None, service: str | None = None) -> None:
        if not is_transport(transport):
            raise ParamError("transport", transport,
                             "a Broker or Brokerless transport the consumer reads from")
        if not isinstance(queue, str) or not queue:
            raise ParamError("queue", queue, "a channel name (a queue, or with subscription "
                                             "a publish-subscribe channel)")
        if handler is not None and not callable(handler):
            raise ParamError("handler", handler, "a generator function handler(ctx, delivery),"
                                                 " or None for one unit of work")
        if not is_whole(prefetch) or prefetch < 0:
            raise ParamError("prefetch", prefetch, "a whole number >= 0 (0 = unlimited, "
                                                   "1 = fair dispatch)")
        for field, flag in (("auto_ack", auto_ack), ("durable", durable)):
            if not is_flag(flag):
                raise ParamError(field, flag, "True or False")
        if not is_whole(batch_ack) or batch_ack < 1:
            raise ParamError("batch_ack", batch_ack, "a whole number >= 1 (1: ack each "
                                                     "delivery)")
        if batch_ack > 1 and workers != 1:
            raise ParamError("batch_ack", batch_ack, "1 unless workers=1 (an ack with "
                                                     "multiple=True covers every earlier "
                                                     "delivery, finished or not)")
        if on_error not in ON_ERROR:
            raise ParamError("on_error", on_error, " or ".join(map(repr, ON_ERROR)))
        if reconnect_interval is None:
            interval = float(transport.reconnect_interval)
        else:
            interval = as_real(reconnect_interval)  # type: ignore[assignment]
            if interval is None or not 0 < interval < math.inf:
                raise ParamError("reconnect_interval", reconnect_interval,
                                 "seconds > 0 (finite), or None for the transport's")
        queue_name = transport.resolve_consumer(name, queue, subscription=subscription,
                                                durable=bool(durable))
        # read by _start_workers, which Instance.__init__ calls: the default
        # handler runs as a timer per delivery, no process (the hot path)
        self._fast = handler is None
        self._epoch = 0  # +1 at every (re)start: a timer of a dead process is void
        self._free = 0  # free workers (default handler)
        self._job = 0  # deliveries taken by a worker (their keys in _current)
        self._parked = 0  # workers stuck before their ack by a hang (default handler)
        super().__init__(world, name, workers=workers, service_time=service_time,
                         format=format, service=service)  # registers the node
        self.handler = handler  # type: ignore[assignment]
        self.transport = transport
        self.channel = queue
        self.queue_name = queue_name
        self.subscription = subscription
        self.durable = bool(durable)
        self.prefetch = int(prefetch)
        self.auto_ack = bool(auto_ack)
        self.on_error = on_error
        self.reconnect_interval = interval
        self.batch_ack = int(batch_ack)
        self._done = 0  # finished deliveries not acked yet (batch_ack > 1)
        self._last_done: Delivery | None = None
        #: this consumer's connection number: +1 at every (re)connection
        self.conn = 0
        #: True once the transport has confirmed the subscription
        self.connected = False
        #: when it last heard from / said something to its transport (heartbeats)
        self.heard = 0.0
        self.said = 0.0
        self._declare: Any = None  # what the transport declares when it subscribes
        self._frozen: dict[int, Message] = {}  # taken by a worker stopped by a hang
        self._mq = world.trace.mq.append if world.trace.enabled else None
        # counters
        self.received = 0
        self.consumed = 0
        self.failed = 0
        self.lost = 0
        self.redelivered = 0  # deliveries received flagged redelivered
        transport.attach(self)
        world.at(None, lambda: transport.connect(self))

    # -- arrival ---------------------------------------------------------
    def receive(self, msg: Message) -> None:
        # a delivery of kind "reply" (an application reply on a channel) is
        # work, not the answer to one of this node's own requests
        if msg.kind != REPLY or type(msg.body) is Delivery:
            self.handle(msg)
        else:
            Node.receive(self, msg)

    def accept(self, msg: Message) -> str | None:
        return None  # the prefetch window is the broker's business

    def handle(self, msg: Message) -> None:
        self.heard = self.env.now
        if msg.kind == CONTROL:
            self.transport.control(self, msg)
            return
        d = msg.body
        if type(d) is not Delivery:
            super(Instance, self).handle(msg)  # Node.handle: recorded as unhandled
            return
        ch = d.channel
        if ch is not None and ch.conn != self.conn:
            # from a connection that has closed: TCP never hands it to the new one
            if self.auto_ack:
                self._lose(d)
            return
        self.arrivals += 1
        self.received += 1
        if d.redelivered:
            self.redelivered += 1
        mq = self._mq
        if mq is not None:
            mq((self.env.now, "deliver", d.envelope.message_id, d.queue, self.name,
                "redelivered" if d.redelivered else ""))
        if self._fast:
            if self._free:
                self._take_delivery(msg)
                return
        elif self._idle:
            wid, ev = self._idle.popleft()
            self._current[wid] = msg
            ev.succeed(msg)
            return
        self.queue.append(msg)
        self._log_pool()

    def _lose(self, d: Delivery, reason: str = "consumer_crash") -> None:
        """An auto-acked message this consumer will never process."""
        self.lost += 1
        if self._mq is not None:
            self._mq((self.env.now, "drop", d.envelope.message_id, d.queue, self.name, reason))

    # -- the workers -----------------------------------------------------
    def _start_workers(self) -> None:
        self._epoch += 1
        if self._fast:
            self._free = self.workers
            self._procs = []
        else:
            self._procs = [self.env.process(self._consume(i)) for i in range(self.workers)]

    def _take_delivery(self, msg: Message) -> None:
        """Default handler: a free worker takes ``msg`` for one draw of the
        service time -- a timer and a callback, no generator."""
        self._free -= 1
        env = self.env
        now = env.now
        self._busy_area -= now
        self.busy += 1
        if self._record is not None:
            self._record((now, self.name, self.busy, len(self.queue)))
        job = self._job = self._job + 1
        if self.hung:
            self._frozen[job] = msg  # stopped before the handler
            return
        self._current[job] = msg
        work = self.service_time.sample(self.rng) * self.slowdown
        fmt = self.format
        if fmt is not None and msg.format is not None:
            work += fmt.decode_cost(msg.size) * self.slowdown
        epoch = self._epoch
        env.timeout(work).callbacks.append(lambda _ev: self._delivery_done(job, msg, epoch))

    def _delivery_done(self, job: int, msg: Message, epoch: int) -> None:
        if epoch != self._epoch:
            return  # the process died meanwhile, and the delivery with it
        del self._current[job]
        ok = True
        requeue = False
        if self.error_rate and self._error_rng.random() < self.error_rate:
            ok, requeue = False, self.on_error == "requeue"
        d = msg.body
        self._finished(d, ok)
        if self.hung:
            self._parked += 1  # the ack waits for the watchdog's restart
            return
        self._settle(d, ok, requeue)
        now = self.env.now
        self._busy_area += now
        self.busy -= 1
        self._free += 1
        if self.queue and not self.hung:
            self._take_delivery(self.queue.popleft())
        elif self._record is not None:
            self._record((now, self.name, self.busy, len(self.queue)))

    def _consume(self, wid: int) -> Generator[Event, Any, None]:
        """A worker process, for a handler of the user's (a generator)."""
        env = self.env
        queue = self.queue
        idle = self._idle
        current = self._current
        ev: Event | None = None
        try:
            while True:
                if queue:
                    msg = queue.popleft()
                    current[wid] = msg
                else:
                    ev = Event(env)
                    idle.append((wid, ev))
                    msg = yield ev  # handle() put it in current
                    ev = None
                self._busy_area -= env.now
                self.busy += 1
                self._log_pool()
                d: Delivery = msg.body
                if self.hung:
                    # stopped before the handler: the watchdog's restart takes it
                    del current[wid]
                    self._frozen[wid] = msg
                    yield self._unhang  # type: ignore[misc]
                    self._frozen.pop(wid, None)
                else:
                    ok = True
                    requeue = False
                    fmt = self.format
                    debt = (fmt.decode_cost(msg.size) * self.slowdown
                            if fmt is not None and msg.format is not None else 0.0)
                    ctx = Context(self, msg, debt)
                    try:
                        yield from self.handler(ctx, d)  # type: ignore[arg-type]
                        if ctx.debt > 0:
                            yield env.timeout(ctx.debt)
                    except Reject as exc:
                        ok, requeue = False, exc.requeue
                    except ServiceError:
                        ok, requeue = False, self.on_error == "requeue"
                    if ok and self.error_rate and self._error_rng.random() < self.error_rate:
                        ok, requeue = False, self.on_error == "requeue"
                    del current[wid]
                    self._finished(d, ok)
                    if self.hung:
                        yield self._unhang  # type: ignore[misc]  # the ack waits
                    self._settle(d, ok, requeue)
                self._busy_area += env.now
                self.busy -= 1
                self._log_pool()
        except simpy.Interrupt:
            if ev is not None and (wid, ev) in idle:
                idle.remove((wid, ev))

    def _finished(self, d: Delivery, ok: bool) -> None:
        """The handler is done: ``consume`` (its effect applied) or a failure."""
        if ok:
            self.consumed += 1
            if self._mq is not None:
                env = d.envelope
                self._mq((self.env.now, "consume", env.message_id, d.queue, self.name, ""))
                if env.key is not None:  # a keyed message's effect, for the ordering ledger
                    self.world.trace.records.append((self.env.now, "apply", env.message_id,
                                                     d.queue, -1, -1, env.key, self.name,
                                                     "redelivered" if d.redelivered else ""))
        else:
            self.failed += 1
            if self.auto_ack:
                # nothing goes back to the broker, so the message is lost now:
                # not when a hang lets the worker go on (a crash may come first)
                self._lose(d, "rejected")

    def _settle(self, d: Delivery, ok: bool, requeue: bool) -> None:
        """Ack or nack (manual acks; auto-acks send nothing)."""
        if self.auto_ack:
            return
        if self.batch_ack == 1:
            self.transport.settle(self, d, ok, requeue)
        else:
            self._settle_batched(d, ok, requeue)

    def _settle_batched(self, d: Delivery, ok: bool, requeue: bool) -> None:
        """Spring AMQP's ``batchSize``: ack with ``multiple=True`` once
        ``batch_ack`` deliveries are done, or when no more wait (so a batch
        never holds the prefetch window shut); a failure acks the finished
        ones first, then nacks its own."""
        if ok:
            self._done += 1
            self._last_done = d
            if self._done >= self.batch_ack or not self.queue:
                self._flush_acks()
        else:
            self._flush_acks()
            self.transport.settle(self, d, False, requeue)

    def _flush_acks(self) -> None:
        last = self._last_done
        if last is not None:
            self._done = 0
            self._last_done = None
            self.transport.settle(self, last, True, multiple=True)

    # -- connection ------------------------------------------------------
    def connection_lost(self) -> None:
        """The transport closed this consumer's connection: buffered
        deliveries die with it (auto-acked ones are lost)."""
        self.connected = False
        self.world.trace.event(self.env.now, self.name, "connection_lost", self.queue_name)
        self._discard_buffer()

    def _discard_buffer(self) -> None:
        self._done = 0  # acks not sent yet cannot travel any more
        self._last_done = None
        held = [m.body for m in self.queue]
        self.queue.clear()
        if held:
            self._log_pool()
        if self.auto_ack:
            for d in held:
                self._lose(d)

    # -- faults ------------------------------------------------------------
    def crash(self, repair_after: float | None = None) -> None:
        """The process dies with the deliveries it held (see the module docstring)."""
        if not self.up:
            super().crash(repair_after)
            return
        held = [m.body for m in (*self._current.values(), *self._frozen.values(),
                                 *self.queue)]
        self._frozen.clear()
        self._done = 0
        self._last_done = None
        super().crash(repair_after)
        self._epoch += 1  # timers still running belong to the dead process
        self._free = 0
        self._parked = 0
        self.connected = False
        if self.auto_ack:
            for d in held:
                self._lose(d)
        self.transport.disconnect(self)

    def restart(self) -> None:
        """Start again and resubscribe."""
        if self.up:
            return
        super().restart()
        self.transport.connect(self)

    def unhang(self, token: Event | None = None) -> None:
        """End a hang: the watchdog restarts the process (see the module docstring)."""
        was = self.hung
        super().unhang(token)
        if was and not self.hung:
            frozen = [m.body for m in self._frozen.values()]
            self._frozen.clear()
            if self._fast:  # the stopped workers are free again
                stuck = len(frozen) + self._parked
                self._parked = 0
                self._busy_area += stuck * self.env.now
                self.busy -= stuck
                self._free += stuck
                if stuck:
                    self._log_pool()
            if self.auto_ack:
                for d in frozen:
                    self._lose(d)
            self._discard_buffer()
            self.transport.disconnect(self)
            self.transport.connect(self)

    @property
    def stats(self) -> dict[str, int]:
        """``received`` deliveries (``redelivered`` of them flagged so),
        ``consumed`` (handler finished), ``failed``
        (handler failed: nacked, or lost with auto-ack), ``lost`` (auto-acked
        messages it never processed), ``buffered`` now, ``busy`` workers now."""
        return {"received": self.received, "consumed": self.consumed, "failed": self.failed,
                "lost": self.lost, "buffered": len(self.queue), "busy": self.busy,
                "redelivered": self.redelivered}
