"""DNS-based discovery: a zone of A records with a TTL, clients caching the answer."""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import pytest

from simcomm.discovery.dns import DEFAULT_TTL, DnsServer, DnsView, cancel_body, register_body
from simcomm.discovery.registry import COUNTER, ask
from simcomm.engine.network import Link
from simcomm.engine.nodes import Instance
from simcomm.engine.world import World
from simcomm.errors import ParamError

LATENCY = 0.002


def _world(seed: int = 1, **server: Any) -> tuple[World, DnsServer, Instance]:
    world = World(seed=seed, network=Link(latency=LATENCY))
    server_ = DnsServer(world, "dns", **server)
    registrar = Instance(world, "registrar")
    return world, server_, registrar


def _send(world: World, node: Instance, body: dict[str, Any], at: float) -> None:
    def go() -> None:
        world.env.process(ask(node, "dns", body, 5.0))
    world.at(at, go)


def _queries(world: World, owner: str) -> list[float]:
    return [r[0] for r in world.trace.messages
            if r[1] == "send" and r[4] == owner and r[5] == "dns"]


def test_the_default_ttl_is_sixty_seconds() -> None:
    assert DEFAULT_TTL == 60.0
    _, server, _ = _world()
    assert server.ttl("order") == 60.0 and server.persistent


def test_bodies_are_checked() -> None:
    assert register_body("order", "order-1") == {"op": "register", "service": "order",
                                                 "instance": "order-1"}
    assert cancel_body("order", "order-1")["op"] == "cancel"
    for args, field in ((("", "a"), "service"), (("order", None), "instance")):
        with pytest.raises(ParamError) as err:
            register_body(*args)  # type: ignore[arg-type]
        assert err.value.field == field


def test_records_are_added_and_removed_and_answers_carry_the_ttl() -> None:
    world, _server, registrar = _world(ttl=30.0)
    for i in (2, 1, 3):
        _send(world, registrar, register_body("order", f"order-{i}"), at=1.0)
    _send(world, registrar, cancel_body("order", "order-2"), at=2.0)
    answers: list[Any] = []

    def query() -> Generator[Any, Any, None]:
        yield world.env.timeout(3.0)
        reply = yield from ask(registrar, "dns", {"op": "query", "service": "order"}, 5.0)
        answers.append(reply.body)
        reply = yield from ask(registrar, "dns", cancel_body("order", "order-9"), 5.0)
        answers.append(reply.status)

    world.env.process(query())
    world.run(10.0)
    assert answers[0]["instances"] == ("order-1", "order-3") and answers[0]["ttl"] == 30.0
    assert answers[1] == "not_found"
    events = [(r[1], r[4], r[5]) for r in world.trace.discovery]
    assert events.count(("register", "order-2", "third-party")) == 1
    assert ("cancel", "order-2", "") in events


def test_a_client_resolves_again_exactly_when_its_cached_answer_expires() -> None:
    """Positive cache: the next resolution is one TTL after the previous answer came,
    except the first answer, whose remaining life is drawn in (0, ttl]."""
    world, _, _ = _world(ttl=60.0)
    client = Instance(world, "client")
    view = DnsView(world, client, "dns", "order")
    view.start()
    world.run(1000.0)
    sent = _queries(world, "client")
    assert sent[0] == 0.0
    assert 0.0 < sent[1] - sent[0] <= 60.0 + 2 * LATENCY + 0.001 + 1e-9
    gaps = np.diff(sent[1:])
    # each answer arrives a round trip + one unit of work after the query, and lives 60 s
    assert np.allclose(gaps, 60.0 + 2 * LATENCY + 0.001)


def test_a_removed_record_stays_visible_until_the_cached_answer_expires() -> None:
    """The lag of DNS discovery: a client learns of a removal only at its next
    resolution, at most one TTL (+ a round trip) after the record went."""
    for seed in (1, 2, 3, 4):
        world, _server, registrar = _world(seed, ttl=60.0)
        _send(world, registrar, register_body("order", "order-1"), at=0.0)
        _send(world, registrar, register_body("order", "order-2"), at=0.0)
        client = Instance(world, "client")
        view = DnsView(world, client, "dns", "order")
        world.at(1.0, view.start)
        _send(world, registrar, cancel_body("order", "order-1"), at=100.0)
        world.run(400.0)
        (cancel,) = [r[0] for r in world.trace.discovery if r[1] == "cancel"]
        (hidden,) = [r[0] for r in world.trace.discovery
                     if r[1] == "hidden" and r[4] == "order-1"]
        assert cancel < hidden <= cancel + 60.0 + 2 * LATENCY + 0.001 + 1e-9
        assert view.instances == ("order-2",)


def test_clients_expire_at_different_times() -> None:
    world, _, _ = _world()
    for i in range(5):
        view = DnsView(world, Instance(world, f"client-{i}"), "dns", "order")
        view.start()
    world.run(100.0)
    second = [_queries(world, f"client-{i}")[1] for i in range(5)]
    assert len(set(second)) == 5


def test_an_expired_answer_is_dropped_when_the_server_cannot_answer() -> None:
    """RFC 1035: a record may be cached for its TTL, not after; lookups fail meanwhile."""
    world, server, registrar = _world(ttl=30.0)
    _send(world, registrar, register_body("order", "order-1"), at=0.0)
    client = Instance(world, "client")
    view = DnsView(world, client, "dns", "order", timeout=2.0, retry=1.0)
    world.at(1.0, view.start)
    world.at(50.0, lambda: server.crash(repair_after=100.0))
    world.run(149.0)
    assert view.instances == ()
    hidden = [r[0] for r in world.trace.discovery if r[1] == "hidden"]
    failed = [r for r in world.trace.discovery if r[1] == "lookup_failed"]
    assert len(hidden) == 1 and 50.0 < hidden[0] <= 50.0 + 30.0 + 2 * LATENCY + 0.01
    assert failed and failed[0][5] == "refused"
    world.run(200.0)
    assert view.instances == ("order-1",)  # resolved again once the server is back


def test_serve_stale_keeps_the_expired_answer_while_resolution_fails() -> None:
    """RFC 8767: an expired answer may be served when the authority is unreachable."""
    world, _server, registrar = _world(ttl=30.0)
    _send(world, registrar, register_body("order", "order-1"), at=0.0)
    client = Instance(world, "client")
    view = DnsView(world, client, "dns", "order", serve_stale=True)
    world.at(1.0, view.start)
    world.network.cut(["client"], at=50.0, heal_at=150.0)
    world.run(149.0)
    assert view.instances == ("order-1",)
    failed = [r for r in world.trace.discovery if r[1] == "lookup_failed"]
    assert failed and {r[5] for r in failed} == {"timeout"}


def test_a_crash_keeps_the_zone() -> None:
    world, server, registrar = _world()
    _send(world, registrar, register_body("order", "order-1"), at=0.0)
    world.at(5.0, lambda: server.crash(repair_after=5.0))
    world.run(20.0)
    assert server.listing("order") == ("order-1",)


def test_every_query_and_answer_is_counted() -> None:
    world, _, _ = _world(ttl=10.0)
    client = Instance(world, "client")
    DnsView(world, client, "dns", "order").start()
    world.run(100.0)
    n = len(_queries(world, "client"))
    assert world.trace.counters[COUNTER] == 2 * n


def test_params_are_checked_before_time_zero() -> None:
    world, _, _ = _world()
    for bad in (0, -1, math.inf, True, "60"):
        with pytest.raises(ParamError) as err:
            DnsServer(world, "dns-x", ttl=bad)
        assert err.value.field == "ttl"
    client = Instance(world, "client")
    for kwargs, field in (({"timeout": 0}, "timeout"), ({"retry": math.nan}, "retry"),
                          ({"serve_stale": 1}, "serve_stale")):
        with pytest.raises(ParamError) as err:
            DnsView(world, client, "dns", "order", **kwargs)
        assert err.value.field == field
    with pytest.raises(ParamError) as err:
        DnsView(world, client, "nowhere", "order")
    assert err.value.field == "registry"


def _rows(seed: int) -> list[tuple]:
    world, _, registrar = _world(seed, ttl=20.0)
    for i in range(3):
        _send(world, registrar, register_body("order", f"order-{i}"), at=float(i))
    _send(world, registrar, cancel_body("order", "order-1"), at=50.0)
    for i in range(3):
        DnsView(world, Instance(world, f"client-{i}"), "dns", "order").start()
    world.run(200.0)
    return list(world.trace.discovery)


def test_same_seed_same_rows() -> None:
    assert _rows(3) == _rows(3)
    assert _rows(3) != _rows(4)
