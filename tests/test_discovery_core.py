"""The shared pieces of service discovery: registry server, views, client, router."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import pytest

from simcomm.discovery.client import DiscoveryClient
from simcomm.discovery.registry import COUNTER, NoCacheView, RegistryServer, View, ask
from simcomm.discovery.router import Router
from simcomm.engine.nodes import Instance, ServiceError
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.rpc.handlers import answer


class Book(RegistryServer):
    """A minimal registry: register / cancel, listing sorted."""

    kind = "book"

    def __init__(self, world: World, name: str, persistent: bool = True) -> None:
        super().__init__(world, name)
        self.persistent = persistent
        self.members: dict[str, set[str]] = {}

    def listing(self, service: str) -> tuple[str, ...]:
        return tuple(sorted(self.members.get(service, ())))

    def clear_state(self) -> None:
        self.members = {}

    def op_register(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        self.members.setdefault(body["service"], set()).add(body["instance"])
        self.changed(body["service"])
        return {}

    def op_cancel(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        if body["instance"] not in self.members.get(body["service"], set()):
            raise ServiceError("unknown", status="not_found")
        self.members[body["service"]].discard(body["instance"])
        self.changed(body["service"])
        return {}


class Poll(View):
    """Polls the registry every second (long polls when ``wait``)."""

    def __init__(self, *args: Any, wait: float = 0.0) -> None:
        super().__init__(*args)
        self.wait = wait
        self.index = -1

    def _start(self) -> None:
        self.env.process(self._loop())

    def _loop(self) -> Generator[Any, Any, None]:
        while True:
            body = {"op": "query", "service": self.service}
            if self.wait:
                body.update(index=self.index, wait=self.wait)
            reply = yield from ask(self.owner, self.registry, body, self.wait + 10.0)
            if reply is not None and reply.status == "ok":
                self.index = reply.body["index"]
                self.update(reply.body["instances"])
            if not self.wait or reply is None or reply.status != "ok":
                yield self.env.timeout(1.0)


class First:
    """A balancer that picks the first candidate (deterministic, for tests)."""

    name = "first"

    def __init__(self) -> None:
        self.started_calls: list[str] = []
        self.finished_calls: list[tuple[str, bool]] = []

    def choose(self, candidates: Sequence[str], rng: Any, now: float) -> str:
        return candidates[0]

    def started(self, instance: str, now: float) -> None:
        self.started_calls.append(instance)

    def finished(self, instance: str, latency: float, ok: bool, now: float) -> None:
        self.finished_calls.append((instance, ok))


def _register(world: World, node: Instance, service: str, name: str, at: float) -> None:
    def go() -> None:
        world.env.process(ask(node, "book", {"op": "register", "service": service,
                                             "instance": name}, 5.0))
    world.at(at, go)


def test_a_long_poll_is_answered_at_the_change_not_before() -> None:
    world = World(seed=1)
    Book(world, "book")
    caller = Instance(world, "caller")
    view = Poll(world, caller, "book", "order", wait=300.0)
    view.start()
    Instance(world, "order-1", handler=answer("x"), service="order")
    _register(world, caller, "order", "order-1", at=50.0)
    world.run(49.0)
    assert view.instances == ()
    assert world.nodes["book"].parked("order") == 1
    world.run(50.1)
    assert view.instances == ("order-1",)
    rows = [r for r in world.trace.discovery if r[1] == "visible"]
    assert rows and rows[0][2:5] == ("caller", "order", "order-1")
    assert rows[0][0] == pytest.approx(50.0, abs=0.01)


def test_a_parked_query_times_out_with_the_present_listing_and_counts_its_messages() -> None:
    world = World(seed=1)
    Book(world, "book")
    caller = Instance(world, "caller")
    view = Poll(world, caller, "book", "order", wait=30.0)
    view.start()
    world.run(95.0)
    # at 0: a plain answer (index 0 ≥ -1 → not parked? index -1 < 0: answered at once),
    # then long polls answered at 30, 60, 90 by their wait running out
    assert world.trace.counters[COUNTER] == 2 * 4 + 1  # 4 answered asks + 1 parked now


def test_a_crash_resets_parked_queries_and_a_volatile_registry_forgets() -> None:
    world = World(seed=1)
    book = Book(world, "book", persistent=False)
    caller = Instance(world, "caller")
    view = Poll(world, caller, "book", "order", wait=300.0)
    view.start()
    _register(world, caller, "order", "order-1", at=1.0)
    world.at(10.0, lambda: book.crash(repair_after=5.0))
    world.run(30.0)
    assert book.members == {}
    assert view.instances == ()   # the restarted registry answered an empty list
    assert any(r[1] == "hidden" for r in world.trace.discovery)


def test_ask_gives_up_after_its_timeout_on_a_hung_registry() -> None:
    world = World(seed=1)
    book = Book(world, "book")
    caller = Instance(world, "caller")
    got: list[Any] = []

    def asker() -> Generator[Any, Any, None]:
        reply = yield from ask(caller, "book", {"op": "query", "service": "x"}, 2.0)
        got.append((world.now, reply))

    world.at(1.0, book.hang)
    world.at(3.0, lambda: world.env.process(asker()))
    world.run(10.0)
    assert got == [(5.0, None)]


def _client_world(retry_next_server: int = 0, *, cache: bool = True):
    world = World(seed=3)
    book = Book(world, "book")
    for i in (1, 2):
        Instance(world, f"order-{i}", handler=answer({"i": i}), service="order",
                 service_time=0.01)
    gateway = Instance(world, "gateway", workers=4)
    view = (Poll(world, gateway, "book", "order") if cache
            else NoCacheView(world, gateway, "book", "order"))
    balancer = First()
    client = DiscoveryClient(world, gateway, "order", view, balancer,
                             retry_next_server=retry_next_server)

    def handler(ctx, request):
        reply = yield from client.call(ctx, request.body)
        if reply.status != "ok":
            raise ServiceError(reply.status, status=reply.status
                               if reply.status == "no_instance" else "error")
        return reply.body

    gateway.handler = handler
    for i in (1, 2):
        _register(world, gateway, "order", f"order-{i}", at=0.0)
    return world, book, balancer


def _users(world: World, at: Sequence[float]) -> None:
    from simcomm.engine.nodes import Node

    users = Node(world, "users")
    for i, t in enumerate(at, 1):
        world.at(t, lambda i=i: users.request("gateway", None, trace_id=i))


def test_the_client_routes_rows_say_which_instance_and_how_it_ended() -> None:
    world, _book, balancer = _client_world()
    world.at(4.0, lambda: world.nodes["order-1"].crash())
    _users(world, [2.0, 5.0])
    world.run(20.0)
    rows = world.trace.routes
    assert [(r[1], r[4], r[6], r[7]) for r in rows] == [(1, "order-1", 1, "ok"),
                                                        (2, "order-1", 1, "refused")]
    assert balancer.finished_calls == [("order-1", True), ("order-1", False)]


def test_retry_next_server_hides_the_stale_entry() -> None:
    world, _book, _ = _client_world(retry_next_server=1)
    world.at(4.0, lambda: world.nodes["order-1"].crash())
    _users(world, [5.0])
    world.run(20.0)
    assert [(r[4], r[6], r[7]) for r in world.trace.routes] == [("order-1", 1, "refused"),
                                                               ("order-2", 2, "ok")]


def test_no_instance_when_the_uncached_registry_is_down() -> None:
    world, book, _ = _client_world(cache=False)
    world.at(4.0, lambda: book.crash())
    _users(world, [2.0, 5.0])
    world.run(20.0)
    rows = world.trace.routes
    assert [(r[4], r[7]) for r in rows] == [("order-1", "ok"), (None, "no_instance")]
    assert next(r for r in world.trace.discovery if r[1] == "lookup_failed")[5] == "refused"


def test_the_router_forwards_and_passes_a_failure_back_unchanged() -> None:
    world = World(seed=2)
    Book(world, "book")
    Instance(world, "order-1", handler=answer("ok!"), service="order")
    router = Router(world, "order-vip", service="order")
    router.attach(Poll(world, router, "book", "order"), First())
    gateway = Instance(world, "gateway")
    _register(world, gateway, "order", "order-1", at=0.0)
    got: list[str] = []
    world.at(3.0, lambda: gateway.request("order-vip", None).callbacks.append(
        lambda e: got.append(e.value.status)))
    world.at(4.0, lambda: world.nodes["order-1"].crash())
    world.at(5.0, lambda: gateway.request("order-vip", None).callbacks.append(
        lambda e: got.append(e.value.status)))
    world.run(10.0)
    assert got == ["ok", "refused"]
    assert [r[5] for r in world.trace.routes] == ["order-vip", "order-vip"]


def test_bad_arguments_name_the_field() -> None:
    world = World()
    Book(world, "book")
    owner = Instance(world, "gw")
    with pytest.raises(ParamError, match="registry"):
        Poll(world, owner, "nope", "order")
    view = Poll(world, owner, "book", "order")
    with pytest.raises(ParamError, match="retry_next_server"):
        DiscoveryClient(world, owner, "order", view, First(), retry_next_server=-1)
    with pytest.raises(ParamError, match="balancer"):
        DiscoveryClient(world, owner, "order", view, object())  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="timeout"):
        NoCacheView(world, owner, "book", "order", timeout=0)
