"""What every registry, view and registration shares.

Service discovery (*Microservices Patterns* §3.2.4) has three parts, and
each is built here from the same few pieces so that Eureka, Consul,
Kubernetes and DNS differ only in their rules and timings:

* a **registry server** (:class:`RegistryServer`) -- the database of the
  instances of each service.  It is an ordinary service instance on the
  network, so it can crash, hang, slow down and be cut off like any other;
  every registration, renewal, cancel and query is a message to it.
* a **view** (:class:`View`) -- a consumer's picture of one service: a
  client library's cached list (client-side discovery) or a router's
  table (server-side discovery).  It lags behind the registry by however
  its kind refreshes it, and that lag is what the learner watches.
* a **registration** (:class:`Registration`) -- what puts an instance in
  the registry and takes it out: the instance itself (self-registration)
  or a registrar that watches its health (third-party registration).

Every discovery message is counted in ``trace.counters["discovery_messages"]``
(:func:`count`), traced or not, so ``registry_messages_per_s`` is exact in
every run; what the registries and views did is recorded in
``trace.discovery`` (:func:`record`) when the run is traced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from simpy.events import Event

from simcomm._checks import as_real, is_whole
from simcomm.engine.messages import CONTROL, Message
from simcomm.engine.nodes import Context, Instance, Node, ServiceError
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from simcomm.engine.world import World

__all__ = ["COUNTER", "NoCacheView", "Registration", "RegistryServer", "View", "ask",
           "check_count", "check_seconds", "count", "record"]

#: The key of ``trace.counters`` that counts discovery messages.
COUNTER = "discovery_messages"


def count(world: World, n: int = 1) -> None:
    """Count ``n`` discovery messages put on the network (traced or not)."""
    counters = world.trace.counters
    counters[COUNTER] = counters.get(COUNTER, 0) + n


def record(world: World, node: str, event: str, service: str | None,
           instance: str | None, detail: str = "") -> None:
    """A ``trace.discovery`` row at the present time (only when the run is traced)."""
    trace = world.trace
    if trace.enabled:
        trace.discovery.append((world.env.now, event, node, service, instance, detail))


def check_seconds(field: str, value: Any, *, minimum: float = 0.0,
                  zero: bool = False) -> float:
    """``value`` as finite seconds, at least ``minimum`` and above 0 (0 allowed
    with ``zero``), or a :class:`ParamError` naming ``field``."""
    seconds = as_real(value)
    if seconds is not None and not math.isinf(seconds) and seconds >= minimum \
            and (seconds > 0 or zero):
        return float(seconds)
    allowed = f"finite seconds >= {minimum:g}" if minimum > 0 else (
        "finite seconds >= 0" if zero else "finite seconds > 0")
    raise ParamError(field, value, allowed)


def ask(node: Node, dest: str, body: dict[str, Any], timeout: float
        ) -> Generator[Event, Any, Message | None]:
    """Send a discovery request from ``node`` to ``dest`` and wait for the reply.

    The request is a ``control`` message (protocol traffic, not an
    application message) and is counted, as is the reply when it comes.
    Returns the reply (whatever its status: a down registry answers
    ``refused``), or None when ``timeout`` seconds passed first -- the
    request is then forgotten, and a late reply is an orphan, as when an
    HTTP client's read timeout fires.  A node that is down sends nothing
    (None at once).
    """
    if not node.up:
        return None
    world = node.world
    ev = node.request(dest, body, kind=CONTROL)
    count(world)
    timer = node.env.timeout(timeout)
    yield ev | timer
    if ev.triggered:
        count(world)
        return ev.value  # type: ignore[no-any-return]
    node.forget(ev.request_id)  # type: ignore[attr-defined]
    return None


class Registration(Protocol):
    """What puts one instance in a registry and takes it out.

    :mod:`simcomm.discovery.churn` calls these as the instance's life goes
    on; self-registration does the work from the instance, third-party
    registration from a registrar (or, in Kubernetes, the kubelet).
    """

    def start(self, inst: Instance) -> None:
        """The instance's process has started: register it (or start watching it)."""

    def shutdown(self, inst: Instance) -> None:
        """A clean shutdown begins: take the instance out of the registry now."""

    def machine_down(self, inst: Instance) -> None:
        """The machine died with the instance (its kubelet, its sidecar too)."""


class RegistryServer(Instance):
    """A registry as a service instance: it can crash, hang, slow down, be cut off.

    Requests are dicts ``{"op": ..., "service": ..., "instance": ..., ...}``.
    A worker does one unit of work (``service_time``, 1 ms by default) and
    calls ``self.op_<op>(body, now)``, which returns the reply's body or
    raises :class:`ServiceError` (status ``not_found`` for an unknown
    instance, ``bad_request`` for an unknown operation).

    **Long polls** (Consul's blocking queries, Kubernetes' watches): a
    ``query`` whose body has ``wait`` > 0 and an ``index`` not behind the
    service's present index is **parked** without holding a worker, as an
    event loop holds an open connection; :meth:`changed` bumps the index
    and answers every parked query of that service with the new
    :meth:`listing`; a parked query left unanswered for ``wait`` seconds is
    answered with the present one.  A hung server answers nothing; when the
    hang ends (the process restarted) or the server crashes, parked queries
    are reset as open connections are.

    ``persistent`` says whether the registry's state survives a crash
    (Consul's Raft log, Kubernetes' etcd, a DNS zone file: yes; a lone
    Eureka server, which keeps its registry in memory and refills it from
    peers or renewals: no -- :meth:`clear_state` is called on a crash).
    Periodic tasks (:meth:`every`) skip their runs while the server is down
    or hung.
    """

    kind = "registry"
    persistent = True

    def __init__(self, world: World, name: str, *, workers: int = 64,
                 service_time: Any = 0.001, service: str | None = None,
                 **instance_args: Any) -> None:
        super().__init__(world, name, workers=workers, service_time=service_time,
                         handler=self._serve, service=service or self.kind,
                         **instance_args)
        #: per service, bumped by :meth:`changed` (what a long poll waits on)
        self.index: dict[str, int] = {}
        self._parked: dict[str, list[tuple[Message, Event]]] = {}

    # -- what a subclass defines --------------------------------------------------------
    def listing(self, service: str) -> tuple[str, ...]:
        """What a query for ``service`` answers now: instance names, sorted (a
        client may reorder them: Eureka's shuffles its copy)."""
        raise NotImplementedError

    def ttl(self, service: str) -> float | None:
        """How long a client may cache the answer (DNS); None: no TTL."""
        return None

    def clear_state(self) -> None:
        """Forget every registration (a non-persistent server's crash)."""
        raise NotImplementedError

    # -- queries ------------------------------------------------------------------------
    def answer(self, service: str) -> dict[str, Any]:
        """The body of a query's reply: the listing, the index and the TTL."""
        return {"instances": self.listing(service), "index": self.index.get(service, 0),
                "ttl": self.ttl(service)}

    def op_query(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        return self.answer(self._service_of(body))

    def changed(self, service: str) -> None:
        """``service``'s listing changed: bump its index, answer its parked queries."""
        self.index[service] = self.index.get(service, 0) + 1
        if self.up and not self.hung:
            parked = self._parked.pop(service, None)
            if parked:
                body = self.answer(service)
                for msg, _timer in parked:
                    self.reply(msg, body)

    def parked(self, service: str | None = None) -> int:
        """How many queries are parked (for ``service``, or all)."""
        if service is not None:
            return len(self._parked.get(service, ()))
        return sum(len(v) for v in self._parked.values())

    def handle(self, msg: Message) -> None:
        body = msg.body
        if (isinstance(body, dict) and body.get("op") == "query" and msg.reply_to is not None
                and not self.hung):
            wait = body.get("wait") or 0.0
            service = body.get("service")
            if wait > 0 and isinstance(service, str) \
                    and body.get("index", -1) >= self.index.get(service, 0):
                self._park(msg, service, float(wait))
                return
        super().handle(msg)

    def _park(self, msg: Message, service: str, wait: float) -> None:
        timer = self.env.timeout(wait)
        entry = (msg, timer)
        self._parked.setdefault(service, []).append(entry)

        def expire(_ev: Event) -> None:
            waiting = self._parked.get(service)
            if waiting and entry in waiting:
                waiting.remove(entry)
                if self.up and not self.hung:
                    self.reply(msg, self.answer(service))
                # hung: the query stays unanswered; the client's own timeout ends it

        timer.callbacks.append(expire)

    def _reset_parked(self) -> None:
        parked, self._parked = self._parked, {}
        for entries in parked.values():
            for msg, _timer in entries:
                self.reply(msg, None, "reset")

    # -- serving --------------------------------------------------------------------------
    @staticmethod
    def _service_of(body: dict[str, Any]) -> str:
        service = body.get("service")
        if not isinstance(service, str) or not service:
            raise ServiceError("no service named", status="bad_request")
        return service

    def _serve(self, ctx: Context, request: Message) -> Generator[Event, Any, Any]:
        yield ctx.work()
        body = request.body
        op = body.get("op") if isinstance(body, dict) else None
        method = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if method is None:
            raise ServiceError(f"{self.kind} has no operation {op!r}", status="bad_request")
        return method(body, self.env.now)

    # -- faults: a crash or a restart ends the open connections ---------------------------
    def _die(self, event: str, detail: str) -> None:
        super()._die(event, detail)
        self._reset_parked()
        if not self.persistent:
            self.clear_state()
            self.index = {s: i + 1 for s, i in self.index.items()}

    def unhang(self, token: Event | None = None) -> None:
        was = self.hung
        super().unhang(token)
        if was and not self.hung:
            self._reset_parked()

    # -- periodic tasks ---------------------------------------------------------------------
    def every(self, period: float, fn: Callable[[float], None], stream: str) -> None:
        """Run ``fn(now)`` every ``period`` seconds from a random phase drawn from
        the stream ``stream``, skipping runs while the server is down or hung."""
        rng = self.world.stream(stream)
        env = self.env

        def loop() -> Generator[Event, Any, None]:
            yield env.timeout(rng.uniform(0.0, period))
            while True:
                if self.up and not self.hung:
                    fn(env.now)
                yield env.timeout(period)

        env.process(loop())


class View:
    """A consumer's picture of one service: what its balancer picks from.

    ``owner`` is the node that keeps it (a client service's instance for
    client-side discovery, a router for server-side discovery): its
    queries go from that node, so when the owner is cut off from the
    registry its view goes stale.  A subclass refreshes the view its own
    way (a poll, a long poll, a TTL) and calls :meth:`update` with every
    answer; :meth:`update` records which instances became ``visible`` or
    ``hidden`` to the owner.  ``cached`` False marks a view without a cache,
    which asks the registry on every call (:meth:`lookup`).
    """

    cached = True

    def __init__(self, world: World, owner: Node, registry: str, service: str) -> None:
        if not isinstance(owner, Node):
            raise ParamError("owner", owner, "a node of the world (the view's owner)")
        if not isinstance(registry, str) or not isinstance(world.nodes.get(registry),
                                                           RegistryServer):
            servers = sorted(n for n, v in world.nodes.items() if isinstance(v, RegistryServer))
            raise ParamError("registry", registry,
                             "the name of a registry server: " + (", ".join(servers) or "none yet"))
        if not isinstance(service, str) or not service:
            raise ParamError("service", service, "a service name")
        self.world = world
        self.env = world.env
        self.owner = owner
        self.registry = registry
        self.service = service
        self.instances: tuple[str, ...] = ()
        self.started = False

    def start(self) -> None:
        """Begin refreshing (called once, by the discovery client that uses the view)."""
        if self.started:
            return
        self.started = True
        self._start()

    def _start(self) -> None:
        raise NotImplementedError

    def update(self, instances: Iterable[str]) -> None:
        """The view now lists ``instances``: record what appeared and what went."""
        new = tuple(instances)
        old = self.instances
        if new == old:
            return
        self.instances = new
        if self.world.trace.enabled:
            before, after = set(old), set(new)
            owner = self.owner.name
            for name in sorted(after - before):
                record(self.world, owner, "visible", self.service, name)
            for name in sorted(before - after):
                record(self.world, owner, "hidden", self.service, name)

    def lookup(self) -> Generator[Event, Any, tuple[str, ...] | None]:
        """Ask the registry now (a view without a cache); None if it could not be asked."""
        raise NotImplementedError(f"{type(self).__name__} keeps a cache: read .instances")


class NoCacheView(View):
    """A client without a cache: it asks the registry before every call.

    Always fresh while the registry answers -- and every call pays a round
    trip to it; when the registry is down, slow or cut off, calls find no
    instance (``no_instance``), where a cached view keeps working on its
    last, possibly stale, list.  ``timeout`` bounds the wait for an answer.
    """

    cached = False

    def __init__(self, world: World, owner: Node, registry: str, service: str, *,
                 timeout: float = 1.0) -> None:
        super().__init__(world, owner, registry, service)
        self.timeout = check_seconds("timeout", timeout)

    def _start(self) -> None:
        pass  # nothing to refresh: every call asks

    def lookup(self) -> Generator[Event, Any, tuple[str, ...] | None]:
        reply = yield from ask(self.owner, self.registry,
                               {"op": "query", "service": self.service}, self.timeout)
        if reply is None or reply.status != "ok":
            record(self.world, self.owner.name, "lookup_failed", self.service, None,
                   "timeout" if reply is None else reply.status)
            return None
        instances = tuple(reply.body["instances"])
        self.update(instances)
        return instances


def check_count(field: str, value: Any, minimum: int = 0) -> int:
    """``value`` as a whole number >= ``minimum``, or a ParamError naming ``field``."""
    if not is_whole(value) or value < minimum:
        raise ParamError(field, value, f"a whole number >= {minimum}")
    return int(value)
