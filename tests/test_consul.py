"""Consul-style discovery: TTL and HTTP checks, ?passing queries, the reaper.

The bounds are derived from the configured timings, as hashicorp/consul
defines them (CheckTTL, StatusHandler, reapServicesInternal, blockingQuery).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.discovery.consul import (
    CHECK_REAP_INTERVAL,
    DEREGISTER_MIN,
    CheckStatus,
    ConsulRegistration,
    ConsulServer,
    ConsulView,
    StatusHandler,
    TtlCheck,
    check_deregister_after,
    heartbeat_interval,
    reap_due,
    register_body,
)
from simcomm.discovery.registry import COUNTER, ask
from simcomm.engine.network import Link
from simcomm.engine.nodes import Instance
from simcomm.engine.world import World
from simcomm.errors import ParamError

LATENCY = 0.002  # one-way, every link


# -- the pure rules -------------------------------------------------------------------------
def test_a_ttl_check_is_due_exactly_ttl_after_its_start_or_last_update() -> None:
    """CheckTTL: the timer starts at registration and Reset(TTL) on every update."""
    check = TtlCheck(30.0, now=5.0)
    assert check.deadline == 35.0
    assert not check.expired(34.999)
    assert check.expired(35.0)
    check.update(20.0)
    assert check.deadline == 50.0
    assert not check.expired(49.9)
    assert check.expired(50.0)


@settings(max_examples=60, deadline=None)
@given(ttl=st.floats(0.5, 120.0),
       gaps=st.lists(st.floats(0.0, 200.0), min_size=1, max_size=12))
def test_the_ttl_deadline_is_the_last_pass_plus_ttl_whatever_came_before(
        ttl: float, gaps: list[float]) -> None:
    check = TtlCheck(ttl, now=0.0)
    now = 0.0
    for gap in gaps:
        now += gap
        check.update(now)
    assert check.deadline == now + ttl


def test_critical_time_is_set_on_entering_critical_and_cleared_by_passing() -> None:
    """agent/local/state.go UpdateCheck: CriticalTime only when it was not critical."""
    state = CheckStatus("passing")
    assert state.critical_since is None
    assert state.set("critical", 10.0) is True
    assert state.critical_since == 10.0
    assert state.set("critical", 25.0) is False  # still critical: the time is kept
    assert state.critical_since == 10.0
    assert state.critical_for(70.0) == 60.0
    assert state.set("passing", 80.0) is True
    assert state.critical_since is None and state.critical_for(90.0) == 0.0


def test_a_check_registered_critical_has_no_critical_time_until_it_is_set_critical() -> None:
    """AddCheck does not set CriticalTime: the reaper's clock starts at the first
    update to critical (for a TTL check, when its timer first fires)."""
    state = CheckStatus()
    assert state.status == "critical" and state.critical_since is None
    assert not reap_due(state.critical_since, 1e6, 60.0)
    assert state.set("critical", 30.0) is False  # no status change...
    assert state.critical_since == 30.0  # ...but the reaper's clock starts


def test_the_reaper_removes_only_after_strictly_more_than_deregister_after() -> None:
    """reapServicesInternal: timeout > 0 && cs.CriticalFor() > timeout."""
    assert not reap_due(100.0, 160.0, 60.0)
    assert reap_due(100.0, 160.001, 60.0)
    assert not reap_due(None, 1e9, 60.0)
    assert not reap_due(100.0, 1e9, None)


def test_deregister_after_below_one_minute_is_refused() -> None:
    assert check_deregister_after(None) is None
    assert check_deregister_after(60) == 60.0
    assert check_deregister_after(np.float64(90.5)) == 90.5
    for bad in (59.9, 0, -1, math.inf, math.nan, True, "90", 30):
        with pytest.raises(ParamError) as err:
            check_deregister_after(bad)
        assert err.value.field == "deregister_after"
    assert DEREGISTER_MIN == 60.0 and CHECK_REAP_INTERVAL == 30.0


def test_the_heartbeat_interval_is_spring_cloud_consuls() -> None:
    """computeHeartbeatInterval: min(ttl - 1, max(ttl * ratio, 1)), to the ms."""
    assert heartbeat_interval(30.0) == 20.0
    assert heartbeat_interval(10.0) == pytest.approx(6.667)
    assert heartbeat_interval(2.0) == 1.0  # ttl - 1 wins over 1.333
    assert heartbeat_interval(1.2) == pytest.approx(0.2)  # ttl - 1 wins over the 1 s floor
    assert heartbeat_interval(30.0, 0.9) == 27.0
    for bad in (0.05, 0.95, True):
        with pytest.raises(ParamError) as err:
            heartbeat_interval(30.0, bad)
        assert err.value.field == "ratio"


def test_the_status_handler_lets_the_first_result_through_then_counts() -> None:
    """StatusHandler: counters start at the thresholds."""
    handler = StatusHandler(success_before_passing=2, failures_before_critical=3)
    assert handler.observe(False) == "critical"  # the first result goes through
    assert handler.observe(True) is None  # 1 success < 2
    assert handler.observe(True) == "passing"
    assert [handler.observe(False) for _ in range(3)] == [None, None, "critical"]
    assert handler.observe(True) is None
    assert handler.observe(False) is None  # the success reset the failure count


def test_the_default_status_handler_flips_on_every_result() -> None:
    """failures_before_critical = 0 (Consul's default): critical on the first failure."""
    handler = StatusHandler()
    assert [handler.observe(ok) for ok in (True, False, True, True, False)] == [
        "passing", "critical", "passing", "passing", "critical"]


@settings(max_examples=80, deadline=None)
@given(s=st.integers(0, 4), f=st.integers(0, 4), results=st.lists(st.booleans(), max_size=30))
def test_the_status_handler_follows_its_thresholds_on_consecutive_results(
        s: int, f: int, results: list[bool]) -> None:
    """A status is set when the run of equal results reaches its threshold, counting
    from thresholds-already-reached at the start."""
    handler = StatusHandler(s, f)
    run_ok, run_fail = s, f  # "set counters values to threshold"
    for ok in results:
        out = handler.observe(ok)
        if ok:
            run_ok, run_fail = run_ok + 1, 0
            assert out == ("passing" if run_ok >= s else None)
        else:
            run_ok, run_fail = 0, run_fail + 1
            assert out == ("critical" if run_fail >= f else None)


def test_register_body_checks_its_fields() -> None:
    body = register_body("order", "order-1")
    assert body == {"op": "register", "service": "order", "instance": "order-1",
                    "check": "ttl", "ttl": 30.0, "deregister_after": None,
                    "status": "critical", "by": "self"}
    http = register_body("order", "order-1", check="http", by="third-party",
                         deregister_after=90)
    assert http["interval"] == 10.0 and http["timeout"] == 10.0
    assert http["failures_before_critical"] == 0 and http["deregister_after"] == 90.0
    for kwargs, field in (({"check": "tcp"}, "check"), ({"ttl": 0}, "ttl"),
                          ({"status": "warning"}, "status"), ({"by": "me"}, "by"),
                          ({"deregister_after": 10}, "deregister_after"),
                          ({"check": "http", "interval": -1}, "interval"),
                          ({"check": "http", "failures_before_critical": 1.5},
                           "failures_before_critical")):
        with pytest.raises(ParamError) as err:
            register_body("order", "order-1", **kwargs)
        assert err.value.field == field


# -- a small world ------------------------------------------------------------------------------
def _world(seed: int = 1, **server: Any) -> tuple[World, ConsulServer]:
    world = World(seed=seed, network=Link(latency=LATENCY))
    return world, ConsulServer(world, "consul", **server)


def _rows(world: World, event: str, instance: str | None = None) -> list[float]:
    return [r[0] for r in world.trace.discovery
            if r[1] == event and (instance is None or r[4] == instance)]


def _fleet(world: World, n: int, reg: ConsulRegistration) -> list[Instance]:
    insts = [Instance(world, f"order-{i}", service="order") for i in range(1, n + 1)]
    for inst in insts:
        reg.start(inst)
    return insts


def test_self_registration_lists_the_instances_after_their_first_pass() -> None:
    world, server = _world()
    reg = ConsulRegistration(world, "consul")
    _fleet(world, 3, reg)
    client = Instance(world, "client")
    view = ConsulView(world, client, "consul", "order")
    view.start()
    world.run(1.0)
    assert server.listing("order") == ("order-1", "order-2", "order-3")
    assert view.instances == ("order-1", "order-2", "order-3")
    # the request's latency + one unit of the server's work; passing after the first pass
    assert _rows(world, "register") == pytest.approx([LATENCY + 0.001] * 3)
    assert _rows(world, "passing") == pytest.approx([3 * LATENCY + 0.002] * 3)


def test_passes_come_every_twenty_seconds_and_keep_the_instance_listed() -> None:
    world, server = _world()
    reg = ConsulRegistration(world, "consul")
    _fleet(world, 1, reg)
    world.run(200.0)
    renews = _rows(world, "renew", "order-1")
    # at ~0, then every 20 s from a phase of its own (it was running before time zero)
    assert len(renews) in (10, 11)
    gaps = np.diff(renews)
    assert 0 < gaps[0] < 20.0 + 1e-6
    assert np.allclose(gaps[1:], 20.0, atol=1e-6)
    assert _rows(world, "critical") == []
    assert server.listing("order") == ("order-1",)


@pytest.mark.parametrize("crash_at", [7.0, 33.3, 59.99])
def test_after_a_crash_the_check_turns_critical_exactly_at_last_pass_plus_ttl(
        crash_at: float) -> None:
    """CheckTTL: critical at the last pass's arrival + ttl, not a moment sooner or later;
    the watching view drops the instance one round trip later (blocking query)."""
    world, server = _world()
    reg = ConsulRegistration(world, "consul")
    (inst,) = _fleet(world, 1, reg)
    client = Instance(world, "client")
    view = ConsulView(world, client, "consul", "order")
    view.start()
    world.at(crash_at, inst.crash)
    world.run(200.0)
    last_pass = max(t for t in _rows(world, "renew", "order-1") if t <= crash_at)
    (critical,) = _rows(world, "critical", "order-1")
    assert critical == pytest.approx(last_pass + 30.0, abs=1e-9)
    # passes every 20 s: the last one came within 20 s before the crash
    assert crash_at + 30.0 - 20.0 <= critical <= crash_at + 30.0 + 2 * LATENCY + 0.001
    (hidden,) = [r[0] for r in world.trace.discovery if r[1] == "hidden"]
    assert critical < hidden <= critical + LATENCY + 1e-9
    assert server.listing("order") == () and view.instances == ()
    assert [r[5] for r in world.trace.discovery if r[1] == "critical"] == ["ttl"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_reaper_removes_a_critical_instance_within_its_bounds(seed: int) -> None:
    """reapServices every 30 s: reap in (critical + after, critical + after + 30]."""
    world, server = _world(seed)
    reg = ConsulRegistration(world, "consul", deregister_after=90.0)
    (inst,) = _fleet(world, 1, reg)
    world.at(41.0, inst.crash)
    world.run(400.0)
    (critical,) = _rows(world, "critical", "order-1")
    (reap,) = _rows(world, "reap", "order-1")
    assert critical + 90.0 < reap <= critical + 90.0 + CHECK_REAP_INTERVAL
    assert "order-1" not in server.entries


def test_without_deregister_after_a_critical_instance_stays_registered() -> None:
    world, server = _world()
    reg = ConsulRegistration(world, "consul")
    (inst,) = _fleet(world, 1, reg)
    world.at(10.0, inst.crash)
    world.run(2000.0)
    assert _rows(world, "reap") == []
    assert server.entries["order-1"].state.status == "critical"


def test_a_hung_instance_keeps_passing_its_ttl_check() -> None:
    """Spring's heartbeat is a scheduler thread: stuck request workers do not stop it."""
    world, server = _world()
    reg = ConsulRegistration(world, "consul")
    (inst,) = _fleet(world, 1, reg)
    world.at(10.0, inst.hang)
    world.run(300.0)
    assert _rows(world, "critical") == []
    assert server.listing("order") == ("order-1",)


def test_a_clean_shutdown_deregisters_at_once_and_the_view_follows() -> None:
    world, server = _world()
    reg = ConsulRegistration(world, "consul")
    (inst,) = _fleet(world, 1, reg)
    client = Instance(world, "client")
    view = ConsulView(world, client, "consul", "order")
    view.start()
    world.at(50.0, lambda: reg.shutdown(inst))
    world.run(100.0)
    (cancel,) = _rows(world, "cancel", "order-1")
    assert 50.0 < cancel <= 50.0 + LATENCY + 0.001 + 1e-9
    (hidden,) = [r[0] for r in world.trace.discovery if r[1] == "hidden"]
    assert hidden == pytest.approx(cancel + LATENCY)
    assert view.instances == () and "order-1" not in server.entries
    assert _rows(world, "renew", "order-1")[-1] < 50.0  # no pass after the shutdown


def test_a_restarted_instance_registers_again_at_its_next_tick() -> None:
    world, server = _world()
    reg = ConsulRegistration(world, "consul")
    (inst,) = _fleet(world, 1, reg)
    world.at(10.0, lambda: inst.crash(repair_after=50.0))
    world.run(200.0)
    (critical,) = _rows(world, "critical", "order-1")
    passing = _rows(world, "passing", "order-1")
    assert len(passing) == 2
    assert critical < passing[1] <= 60.0 + reg.interval + 0.01
    assert server.listing("order") == ("order-1",)


def test_a_reaped_instance_registers_again_only_with_reregister() -> None:
    """Spring Cloud Consul: heartbeat.reregister-service-on-failure (False by default)."""
    for reregister, listed in ((False, ()), (True, ("order-1",))):
        world, server = _world()
        reg = ConsulRegistration(world, "consul", deregister_after=60.0,
                                 reregister=reregister)
        _fleet(world, 1, reg)
        world.network.cut(["order-1"], at=5.0, heal_at=200.0)
        world.run(300.0)
        assert len(_rows(world, "reap", "order-1")) == 1
        assert server.listing("order") == listed


# -- HTTP checks (third-party registration) ---------------------------------------------------
def _http_fleet(world: World, n: int, at: float = 0.0, **check: Any) -> list[Instance]:
    """``n`` instances registered by a registrar node with an HTTP check."""
    registrar = Instance(world, "registrar")
    insts = [Instance(world, f"order-{i}", service="order") for i in range(1, n + 1)]

    def go() -> Any:
        for inst in insts:
            yield from ask(registrar, "consul",
                           register_body("order", inst.name, check="http", by="third-party",
                                         **check), 1.0)

    world.at(at, lambda: world.env.process(go()) and None)
    return insts


def _probes(world: World, inst: str) -> list[tuple]:
    """(sent, status of the reply) of every health request the server sent ``inst``."""
    sent = {r[2]: r[0] for r in world.trace.messages
            if r[1] == "send" and r[4] == "consul" and r[5] == inst}
    return sorted((sent[r[9]], r[10]) for r in world.trace.messages
                  if r[1] == "deliver" and r[4] == inst and r[5] == "consul"
                  and r[9] in sent)


def test_http_checks_start_staggered_within_one_interval_then_run_every_interval() -> None:
    """CheckHTTP.run: first after RandomStagger(interval), then interval after each
    check returned."""
    world, server = _world()
    _http_fleet(world, 4)
    world.run(100.0)
    firsts = [_probes(world, f"order-{i}")[0][0] for i in range(1, 5)]
    assert len(set(firsts)) == 4 and all(0.0 <= t < 10.0 + 0.1 for t in firsts)
    sent = [t for t, _ in _probes(world, "order-1")]
    # a probe's round trip: request latency + one unit of work (0) + reply latency
    assert np.allclose(np.diff(sent), 10.0 + 2 * LATENCY)
    assert server.listing("order") == ("order-1", "order-2", "order-3", "order-4")
    assert [r[5] for r in world.trace.discovery if r[1] == "register"] == ["third-party"] * 4


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_crashed_instance_fails_its_next_http_check_and_turns_critical(seed: int) -> None:
    """failures_before_critical 0: critical at the first refused probe, within one
    interval (+ a round trip) of the crash."""
    world, server = _world(seed)
    (inst,) = _http_fleet(world, 1)
    world.at(33.0, inst.crash)
    world.run(100.0)
    (critical,) = _rows(world, "critical", "order-1")
    assert 33.0 < critical <= 33.0 + 10.0 + 3 * LATENCY
    assert [r[5] for r in world.trace.discovery if r[1] == "critical"] == ["http"]
    failed = [r[5] for r in world.trace.discovery if r[1] == "probe_failed"]
    assert failed and set(failed) == {"refused"}
    assert server.listing("order") == ()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_hung_instance_turns_critical_when_a_probe_times_out(seed: int) -> None:
    """A hang: the probe waits its timeout (10 s) -- critical in
    [hang + timeout, hang + interval + timeout + a round trip]."""
    world, _ = _world(seed)
    (inst,) = _http_fleet(world, 1)
    world.at(41.0, inst.hang)
    world.run(120.0)
    (critical,) = _rows(world, "critical", "order-1")
    assert 41.0 + 10.0 <= critical <= 41.0 + 10.0 + 10.0 + 3 * LATENCY
    assert {r[5] for r in world.trace.discovery if r[1] == "probe_failed"} == {"timeout"}


def test_failures_before_critical_needs_that_many_consecutive_failures() -> None:
    """StatusHandler: after passing, 2 consecutive failed probes (each waiting its
    timeout, then an interval) before critical."""
    world, _ = _world(4)
    (inst,) = _http_fleet(world, 1, failures_before_critical=2, timeout=2.0)
    world.at(41.0, inst.hang)
    world.run(120.0)
    (critical,) = _rows(world, "critical", "order-1")
    assert 41.0 + 2 * 2.0 + 10.0 <= critical <= 41.0 + 2 * (2.0 + 10.0) + 3 * LATENCY
    assert len([r for r in world.trace.discovery if r[1] == "probe_failed"
                and r[0] <= critical]) == 2


def test_an_instance_passing_again_comes_back_into_the_listing() -> None:
    world, server = _world()
    (inst,) = _http_fleet(world, 1, timeout=1.0)
    token: list[Any] = []
    world.at(20.0, lambda: token.append(inst.hang()))
    world.at(50.0, lambda: inst.unhang(token[0]))
    world.run(100.0)
    (critical,) = _rows(world, "critical", "order-1")
    passing = _rows(world, "passing", "order-1")
    assert passing[-1] > 50.0 > critical
    assert passing[-1] <= 50.0 + 10.0 + 1.0 + 3 * LATENCY
    assert server.listing("order") == ("order-1",)


def test_a_deregistered_instance_is_probed_no_more() -> None:
    world, _ = _world()
    (inst,) = _http_fleet(world, 1)
    registrar = world.nodes["registrar"]
    world.at(30.0, lambda: world.env.process(
        ask(registrar, "consul", {"op": "deregister", "instance": "order-1"}, 1.0)) and None)
    world.run(100.0)
    assert max(t for t, _ in _probes(world, "order-1")) < 30.0
    assert inst.up


def test_a_blocking_query_is_held_without_a_worker_and_times_out_with_jitter() -> None:
    """blockingQuery: held until a change or wait + up to wait/16."""
    world, server = _world()
    client = Instance(world, "client")
    view = ConsulView(world, client, "consul", "order", wait=60.0)
    view.start()
    world.run(30.0)
    assert server.parked("order") == 1 and server.busy == 0
    world.run(1000.0)
    queries = [r for r in world.trace.messages
               if r[1] == "send" and r[4] == "client" and r[5] == "consul"]
    times = [r[0] for r in queries]
    gaps = np.diff(times)[1:]  # the first query has no index: answered at once
    assert np.all(gaps >= 60.0) and np.all(gaps <= 60.0 * 17 / 16 + 2 * LATENCY + 0.002)
    assert len(set(np.round(gaps, 6))) > 1  # jittered


def test_a_crashed_server_keeps_its_catalog_and_restarts_the_ttl_timers() -> None:
    """Raft keeps the catalog; CheckTTL starts afresh when the agent is back."""
    world, server = _world()
    reg = ConsulRegistration(world, "consul")
    (inst,) = _fleet(world, 1, reg)
    world.at(30.0, lambda: server.crash(repair_after=100.0))
    world.run(129.0)
    assert server.listing("order") == ("order-1",)  # not critical while the agent was down
    world.at(135.0, inst.crash)
    world.run(300.0)
    (critical,) = _rows(world, "critical", "order-1")
    last_pass = max(_rows(world, "renew", "order-1"))
    assert critical == pytest.approx(max(last_pass, 130.0) + 30.0)


def test_discovery_messages_are_counted() -> None:
    world, _ = _world()
    reg = ConsulRegistration(world, "consul")
    _fleet(world, 2, reg)
    world.run(100.0)
    # per instance: a register, then a pass at ~0 and one every 20 s from its own phase
    # (4 or 5 more before 100 s), each a request and a reply
    passes = [len(_rows(world, "renew", f"order-{i}")) for i in (1, 2)]
    assert all(p in (5, 6) for p in passes)
    assert world.trace.counters[COUNTER] == 2 * sum(1 + p for p in passes)


def test_the_server_answers_bad_requests_and_unknown_instances() -> None:
    world, _server = _world()
    node = Instance(world, "x")
    replies: list[Any] = []

    def go() -> Any:
        for body in ({"op": "pass", "instance": "nobody"},
                     {"op": "deregister", "instance": "nobody"},
                     {"op": "register", "service": "order", "instance": "a", "check": "tcp"},
                     {"op": "register", "service": "order"},
                     {"op": "frobnicate", "service": "order"}):
            reply = yield from ask(node, "consul", body, 1.0)
            replies.append(reply.status)

    world.env.process(go())
    world.run(10.0)
    assert replies == ["not_found", "not_found", "bad_request", "bad_request", "bad_request"]


def test_registering_again_replaces_the_check() -> None:
    """A second register of a known instance replaces its check (an HTTP check stops
    probing; the new status is recorded); under another service it moves there."""
    world, server = _world()
    (inst,) = _http_fleet(world, 1)
    registrar = world.nodes["registrar"]

    def again(body: dict[str, Any]) -> None:
        world.env.process(ask(registrar, "consul", body, 1.0))

    world.at(30.0, lambda: again(register_body("order", "order-1", ttl=100.0,
                                               status="passing")))
    world.at(60.0, lambda: again(register_body("billing", "order-1", ttl=100.0)))
    world.run(200.0)
    assert max(t for t, _ in _probes(world, "order-1")) < 30.0
    events = [(r[1], r[3]) for r in world.trace.discovery if r[4] == "order-1"]
    assert events.count(("register", "order")) == 1
    assert ("cancel", "order") in events and ("register", "billing") in events
    assert server.listing("order") == () and server.entries["order-1"].service == "billing"
    assert inst.up


def test_a_deregister_after_below_the_minimum_is_raised_to_it_by_the_server() -> None:
    """addCheck: 'has deregister interval below minimum' -> the minimum."""
    world, server = _world()
    node = Instance(world, "order-1", service="order")

    def go() -> Any:
        body = register_body("order", "order-1")
        body["deregister_after"] = 5.0
        yield from ask(node, "consul", body, 1.0)

    world.env.process(go())
    world.run(1.0)
    assert server.entries["order-1"].after == 60.0


def test_params_are_checked_before_time_zero() -> None:
    world, _ = _world()
    with pytest.raises(ParamError) as err:
        ConsulRegistration(world, "nope")
    assert err.value.field == "registry"
    for kwargs, field in (({"ttl": 0}, "ttl"), ({"interval": 30.0}, "interval"),
                          ({"deregister_after": 59}, "deregister_after"),
                          ({"reregister": 1}, "reregister"), ({"timeout": -1}, "timeout")):
        with pytest.raises(ParamError) as err:
            ConsulRegistration(world, "consul", **kwargs)
        assert err.value.field == field
    client = Instance(world, "c")
    for kwargs, field in (({"wait": 0}, "wait"), ({"retry": math.nan}, "retry"),
                          ({"wait": 60.0, "timeout": 60.0}, "timeout")):
        with pytest.raises(ParamError) as err:
            ConsulView(world, client, "consul", "order", **kwargs)
        assert err.value.field == field
    for kwargs, field in (({"reap_interval": 0}, "reap_interval"),
                          ({"query_jitter": "yes"}, "query_jitter")):
        with pytest.raises(ParamError) as err:
            ConsulServer(world, "consul-2", **kwargs)
        assert err.value.field == field


def _run_rows(seed: int) -> list[tuple]:
    world, _ = _world(seed, reap_interval=30.0)
    reg = ConsulRegistration(world, "consul", deregister_after=60.0)
    insts = _fleet(world, 4, reg)
    client = Instance(world, "client")
    ConsulView(world, client, "consul", "order").start()
    world.at(33.0, insts[1].crash)
    world.at(47.0, insts[2].hang)
    world.run(400.0)
    return list(world.trace.discovery)


def test_same_seed_same_rows() -> None:
    assert _run_rows(5) == _run_rows(5)
    assert _run_rows(5) != _run_rows(6)


def test_end_to_end_the_last_call_to_a_crashed_instance_is_before_it_turns_critical() -> None:
    """Client-side discovery over blocking queries: calls keep going to the dead
    instance until its TTL runs out, then stop within one round trip; the stale
    window is [crash, last pass + ttl + a round trip]."""
    from simcomm.discovery.balancers import balancer
    from simcomm.discovery.churn import Fleet
    from simcomm.discovery.client import DiscoveryClient
    from simcomm.engine.nodes import Node, ServiceError

    world, _ = _world(7)
    reg = ConsulRegistration(world, "consul")
    fleet = Fleet(world, "order", instances=3, registration=lambda inst: reg)
    gateway = Instance(world, "gateway", workers=8)
    view = ConsulView(world, gateway, "consul", "order")
    client = DiscoveryClient(world, gateway, "order", view, balancer("round_robin"))

    def handler(ctx: Any, request: Any) -> Any:
        reply = yield from client.call(ctx, request.body)
        if reply.status != "ok":
            raise ServiceError(reply.status)
        return reply.body

    gateway.handler = handler
    users = Node(world, "users")
    for i in range(1, 400):
        world.at(i * 0.25, lambda i=i: users.request("gateway", None, trace_id=i) and None)
    world.at(37.0, lambda: fleet.crash("order-2"))
    world.run(100.0)
    to_dead = [r for r in world.trace.routes if r[4] == "order-2" and r[0] >= 37.0]
    (critical,) = _rows(world, "critical", "order-2")
    assert to_dead and all(r[7] == "refused" for r in to_dead)
    assert max(r[0] for r in to_dead) <= critical + 2 * LATENCY
    assert critical - 37.0 >= 10.0  # at least ttl - interval of stale calls
    after = [r for r in world.trace.routes if r[0] > critical + 2 * LATENCY]
    assert after and {r[4] for r in after} == {"order-1", "order-3"}


def test_registering_again_keeps_the_checks_status_with_a_fresh_critical_time() -> None:
    """agent.AddService restores each check's status from a snapshot: a passing
    instance registered again (body status: Consul's default, critical) stays
    listed -- no critical blip -- and a critical one registered again with
    status passing stays critical, its critical time (the reaper's clock)
    cleared until the next critical update (its fresh TTL timer, ttl later)."""
    world, server = _world()
    reg = ConsulRegistration(world, "consul")
    (inst,) = _fleet(world, 1, reg)
    other = Instance(world, "ops")

    def again(status: str) -> None:
        world.env.process(ask(other, "consul", register_body("order", "order-1",
                                                             status=status), 1.0))

    world.at(50.0, lambda: again("critical"))
    world.run(51.0)
    assert server.listing("order") == ("order-1",)
    assert _rows(world, "critical", "order-1") == []
    world.at(61.0, inst.crash)  # passes stop; critical at the last pass + 30
    world.run(130.0)
    (critical,) = _rows(world, "critical", "order-1")
    assert server.entries["order-1"].state.critical_since == critical
    world.at(130.0, lambda: again("passing"))
    world.run(131.0)
    state = server.entries["order-1"].state
    assert state.status == "critical" and state.critical_since is None
    assert server.listing("order") == ()
    world.run(170.0)  # the new TTL timer fires at 130 + 30: critical time set again
    assert server.entries["order-1"].state.critical_since == pytest.approx(160.0, abs=0.01)
    assert _rows(world, "critical", "order-1") == [critical]  # no status change: no row
