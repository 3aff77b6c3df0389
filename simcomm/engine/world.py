"""The world: a SimPy environment, random streams, a network and a trace.

Everything in a simulation belongs to one :class:`World`.  It owns the
clock (``world.env``), hands out named random streams derived from one seed
(``world.stream(name)``), counts message and request ids, keeps the trace,
and runs the simulation to a time limit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

from simcomm._checks import as_real, is_flag
from simcomm.engine.network import Link, Network
from simcomm.engine.randomness import Streams
from simcomm.engine.trace import CHECK_EVERY, Trace
from simcomm.errors import ParamError

if TYPE_CHECKING:
    import random

    from simcomm.engine.nodes import Node

__all__ = ["World"]


class World:
    """One simulated system.

    ``seed`` is the root of every random stream; ``trace=False`` keeps only
    the request table (for long sweeps where per-message events are not
    needed).  ``network`` may set the default link between any two nodes.
    ``spill``: a directory to stream the trace to as Parquet files instead of
    keeping it in memory (see :func:`simcomm.engine.trace.check_spill`).
    """

    def __init__(self, seed: int = 0, *, trace: bool = True,
                 network: Link | None = None, spill: str | os.PathLike[str] | None = None
                 ) -> None:
        if not is_flag(trace):
            raise ParamError("trace", trace, "True or False")
        self.streams = Streams(seed)
        self.seed = self.streams.seed
        self.env = simpy.Environment()
        self.trace = Trace(enabled=bool(trace), spill=spill)
        self.network = Network(self, default=network)
        self.nodes: dict[str, Node] = self.network.nodes
        #: messages and client requests created so far (the last ids handed out)
        self.message_count = 0
        self.request_count = 0
        self.until: float | None = None
        self._started = False

    @property
    def now(self) -> float:
        return self.env.now

    def stream(self, name: str) -> random.Random:
        """The independent random stream called ``name``."""
        return self.streams(name)

    def next_message_id(self) -> int:
        n = self.message_count + 1
        self.message_count = n
        if not n % CHECK_EVERY:  # now and then the trace packs its rows into columns
            self.trace.compact()
        return n

    def next_request_id(self) -> int:
        self.request_count += 1
        return self.request_count

    def add(self, node: Node) -> None:
        """Register ``node`` (done by Node's constructor)."""
        self.network.add(node)

    def at(self, time: float | None, action: Callable[[], None]) -> None:
        """Call ``action()`` at simulated ``time`` (now if ``None``)."""
        if time is None or time <= self.env.now:
            if time is not None and time < self.env.now:
                raise ParamError("time", time, f"a time >= now ({self.env.now})")
            if not self._started:
                # before the run, "now" means at time zero once it starts
                ev = self.env.timeout(0)
                ev.callbacks.append(lambda _ev: action())
                return
            action()
            return
        ev = self.env.timeout(time - self.env.now)
        ev.callbacks.append(lambda _ev: action())

    def run(self, until: float) -> World:
        """Run the simulation up to simulated time ``until`` (seconds)."""
        end = as_real(until)
        if end is None or not end > self.env.now or math.isinf(end):
            raise ParamError("until", until, f"a finite time in seconds > {self.env.now}")
        self._started = True
        self.env.run(until=end)
        self.until = end
        self.trace.compact(force=True)
        return self
