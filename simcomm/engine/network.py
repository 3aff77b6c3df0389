"""The network every message crosses: latency, loss, bandwidth, partitions.

A :class:`Network` knows the nodes of a world and a :class:`Link` for each
ordered pair (a default one unless configured).  ``send`` decides a
message's fate: dropped at once (partition, loss) or delivered after the
link's latency plus its transmission time.  A link with a bandwidth sends
one message at a time, first come first served: a message waits until the
link has finished transmitting the ones before it, then takes size /
bandwidth seconds to go out (so a busy link limits throughput, as a real
one does).  Such a link adds up its transmission seconds as it goes, so its
utilisation is known with or without a trace
(:meth:`Network.link_busy_seconds`).  On arrival
the destination may still refuse it (node down, queue full): the drop is
recorded with that reason.  Nothing teleports, and every message ends in the
ledger as delivered, dropped with a reason, or in flight.

Zero latency with unlimited bandwidth delivers in the same instant without
scheduling an event, which keeps the theory scenarios fast.

A link with random latency may deliver two messages in another order than
they were sent, as packets on different connections do.  One TCP connection
never does: a **FIFO** link delivers each message no earlier than the one
sent before it on the same pair (head-of-line blocking).  A link is FIFO when
it is configured so (``Link(fifo=True)``) or when either end is a node whose
class says its traffic rides one connection (``Node.fifo``: a broker and its
consumers talk over one AMQP connection each, so RabbitMQ's "one publisher,
one queue, one consumer keep their order" holds over a jittery network too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from simcomm._checks import as_real, is_flag
from simcomm.engine.messages import REPLY, Message
from simcomm.engine.randomness import Constant, Distribution
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.nodes import Node
    from simcomm.engine.world import World

__all__ = ["Link", "Network"]


@dataclass
class Link:
    """One direction of a connection between two nodes.

    ``latency`` is the one-way propagation delay in seconds (a distribution),
    ``loss`` the probability a message is lost, ``bandwidth`` bytes per
    second (``None`` for unlimited), ``fifo`` whether messages arrive in the
    order they were sent (one TCP connection) however the latency varies.
    """

    latency: Distribution | float | None = None
    loss: float = 0.0
    bandwidth: float | None = None
    fifo: bool = False

    def __post_init__(self) -> None:
        if self.latency is not None and not isinstance(self.latency, Distribution):
            delay = as_real(self.latency)
            if delay is not None:
                if not delay >= 0 or math.isinf(delay):
                    raise ParamError("latency", self.latency, "a number of seconds >= 0")
                self.latency = Constant(delay) if delay > 0 else None
            else:
                raise ParamError("latency", self.latency, "seconds >= 0 or a Distribution")
        if isinstance(self.latency, Constant) and self.latency.value == 0:
            self.latency = None
        loss = as_real(self.loss)
        if loss is None or not 0.0 <= loss <= 1.0:
            raise ParamError("loss", self.loss, "a probability from 0 to 1")
        self.loss = loss
        if self.bandwidth is not None:
            rate = as_real(self.bandwidth)
            if rate is None or not rate > 0 or math.isinf(rate):
                raise ParamError("bandwidth", self.bandwidth,
                                 "bytes per second > 0 (finite), or None")
            self.bandwidth = rate
        if not is_flag(self.fifo):
            raise ParamError("fifo", self.fifo, "True or False")
        self.fifo = bool(self.fifo)

    @property
    def instant(self) -> bool:
        return self.latency is None and self.bandwidth is None


class _LinkState:
    """A link between one ordered pair, with its own random stream."""

    __slots__ = ("bandwidth", "busy_until", "fifo", "last_arrival", "latency", "loss", "rng",
                 "tx_seconds")

    def __init__(self, link: Link, rng, fifo: bool = False) -> None:
        # a Link turns a number of seconds into a Constant when it is made
        self.latency: Distribution | None = cast("Distribution | None", link.latency)
        self.loss = link.loss
        self.bandwidth = link.bandwidth
        self.rng = rng
        self.busy_until = 0.0  # when the link finishes transmitting its backlog
        self.tx_seconds = 0.0  # transmission time of every message it took, queued or not
        self.fifo = fifo or link.fifo
        self.last_arrival = 0.0  # a FIFO link delivers nothing before this


class Network:
    """Carries messages between the nodes of one world."""

    def __init__(self, world: World, default: Link | None = None) -> None:
        self.world = world
        self.env = world.env
        self.nodes: dict[str, Node] = {}
        self.default = default or Link()
        self._configured: dict[tuple[str, str], Link] = {}
        self._links: dict[tuple[str, str], _LinkState] = {}
        # (pair, tx_seconds, busy_until) of link states replaced by a new
        # configuration, so that their busy time still counts
        self._retired: list[tuple[tuple[str, str], float, float]] = []
        self._group: dict[str, int] | None = None  # node -> partition group
        # the ledger's counters, kept apart from the trace so tests can
        # check one against the other
        self.sent = 0
        self.delivered = 0
        self.dropped: dict[str, int] = {}
        self.in_flight = 0

    # -- configuration -------------------------------------------------
    def add(self, node: Node) -> None:
        if node.name in self.nodes:
            raise ParamError("name", node.name, "a node name not used before in this world")
        self.nodes[node.name] = node

    def link(self, a: str, b: str, *, latency: Distribution | float | None = None,
             loss: float = 0.0, bandwidth: float | None = None, fifo: bool = False,
             symmetric: bool = True) -> Link:
        """Configure the link from ``a`` to ``b`` (and back, if symmetric)."""
        cfg = Link(latency=latency, loss=loss, bandwidth=bandwidth, fifo=fifo)
        self._configured[(a, b)] = cfg
        self._retire((a, b))
        if symmetric:
            self._configured[(b, a)] = cfg
            self._retire((b, a))
        return cfg

    def set_default(self, link: Link) -> None:
        """The link used between any pair not configured explicitly."""
        self.default = link
        for key in [k for k in self._links if k not in self._configured]:
            self._retire(key)

    def _retire(self, key: tuple[str, str]) -> None:
        """Forget a pair's link state (its configuration changed), keeping its busy time."""
        state = self._links.pop(key, None)
        if state is not None and state.tx_seconds:
            self._retired.append((key, state.tx_seconds, state.busy_until))

    def _state(self, source: str, dest: str) -> _LinkState:
        state = self._links.get((source, dest))
        if state is None:
            cfg = self._configured.get((source, dest), self.default)
            ends = (self.nodes.get(source), self.nodes.get(dest))
            state = _LinkState(cfg, self.world.stream(f"link:{source}->{dest}"),
                               fifo=any(getattr(node, "fifo", False) for node in ends))
            self._links[(source, dest)] = state
        return state

    def link_busy_seconds(self, until: float) -> dict[tuple[str, str], float]:
        """Seconds each link with a bandwidth spent transmitting in ``[0, until]``.

        Keyed ``(source, dest)``; only links with a bandwidth that took a
        message are listed.  A link transmits its backlog back to back, so
        the part of the total that lies after ``until`` is exactly
        ``busy_until - until`` (messages still queued or going out at the end
        are clamped off).  ``until`` must not be before the present
        (``world.now``, give or take rounding), as in
        :meth:`Instance.busy_seconds`.
        """
        now = self.env.now
        if not until >= now - 1e-9 * max(1.0, now):
            raise ParamError("until", until, f"a time >= now ({now:g})")
        out: dict[tuple[str, str], float] = {}
        segments = [(k, s.tx_seconds, s.busy_until) for k, s in self._links.items()
                    if s.bandwidth is not None and s.tx_seconds]
        for key, seconds, busy_until in self._retired + segments:
            out[key] = out.get(key, 0.0) + seconds - max(0.0, busy_until - until)
        return out

    # -- partitions ----------------------------------------------------
    def cut(self, *groups: Iterable[str], at: float | None = None,
            heal_at: float | None = None) -> None:
        """Split the network: nodes in different groups cannot reach each other.

        Nodes named in no group form one more group together.  With ``at``
        the cut happens at that simulated time, else now; with ``heal_at``
        it heals then.
        """
        sets = [frozenset(g) for g in groups]
        if len(sets) < 1 or any(not g for g in sets):
            raise ParamError("groups", [sorted(g) for g in sets], "one or more non-empty groups")
        seen: set[str] = set()
        for g in sets:
            if seen & g:
                raise ParamError("groups", sorted(seen & g), "each node in at most one group")
            seen |= g
        if heal_at is not None and at is not None and heal_at <= at:
            raise ParamError("heal_at", heal_at, f"a time after the cut at {at}")

        this_cut: dict[str, int] = {}

        def do_cut() -> None:
            for i, g in enumerate(sets, start=1):
                for name in g:
                    this_cut[name] = i
            self._group = this_cut
            self.world.trace.event(self.env.now, "network", "partition",
                                   " | ".join(",".join(sorted(g)) for g in sets))

        self.world.at(at, do_cut)
        if heal_at is not None:
            # heal only this cut: a later cut that replaced it stays in force
            self.world.at(heal_at, lambda: self.heal() if self._group is this_cut else None)

    def heal(self) -> None:
        """End any partition now."""
        if self._group is not None:
            self._group = None
            self.world.trace.event(self.env.now, "network", "heal", "")

    def can_reach(self, source: str, dest: str) -> bool:
        group = self._group
        return group is None or group.get(source, 0) == group.get(dest, 0)

    # -- the hot path --------------------------------------------------
    def send(self, msg: Message) -> None:
        """Put ``msg`` on the wire from ``msg.source`` to ``msg.dest``."""
        trace = self.world.trace
        self.sent += 1
        msg.sent = self.env.now
        if trace.enabled:
            trace.messages.append((self.env.now, "send", msg.id, msg.kind, msg.source,
                                   msg.dest, msg.trace_id, msg.size, "", msg.correlation_id,
                                   msg.status))
        if self._group is not None and not self.can_reach(msg.source, msg.dest):
            self._drop(msg, "partition")
            return
        state = self._links.get((msg.source, msg.dest)) or self._state(msg.source, msg.dest)
        if state.loss and state.rng.random() < state.loss:
            self._drop(msg, "loss")
            return
        self.in_flight += 1
        if state.latency is None and state.bandwidth is None:
            self._arrive(msg)
            return
        delay = 0.0 if state.latency is None else state.latency.sample(state.rng)
        if state.bandwidth is not None:
            now = self.env.now
            tx = msg.size / state.bandwidth
            state.tx_seconds += tx
            done = max(now, state.busy_until) + tx
            state.busy_until = done
            delay += done - now
        if state.fifo:
            # one connection: nothing overtakes what was sent before it
            now = self.env.now
            if now + delay < state.last_arrival:
                delay = state.last_arrival - now
                while now + delay < state.last_arrival:  # rounding: never an ulp early
                    delay = math.nextafter(delay, math.inf)
            state.last_arrival = now + delay  # the time SimPy schedules it for
        ev = self.env.timeout(delay)
        ev.callbacks.append(lambda _ev: self._arrive(msg))

    def _arrive(self, msg: Message) -> None:
        self.in_flight -= 1
        if self._group is not None and not self.can_reach(msg.source, msg.dest):
            self._drop(msg, "partition")
            return
        node = self.nodes.get(msg.dest)
        if node is None:
            self._drop(msg, "no_such_node")
            return
        reason = node.accept(msg) if node.up else "node_down"
        if reason:
            self._drop(msg, reason)
            if msg.reply_to is not None and msg.kind != REPLY:
                node.refuse(msg, reason)
            return
        self.delivered += 1
        msg.delivered = self.env.now
        trace = self.world.trace
        if trace.enabled:
            trace.messages.append((self.env.now, "deliver", msg.id, msg.kind, msg.source,
                                   msg.dest, msg.trace_id, msg.size, "", msg.correlation_id,
                                   msg.status))
        node.receive(msg)

    def _drop(self, msg: Message, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        trace = self.world.trace
        if trace.enabled:
            trace.messages.append((self.env.now, "drop", msg.id, msg.kind, msg.source,
                                   msg.dest, msg.trace_id, msg.size, reason, msg.correlation_id,
                                   msg.status))
