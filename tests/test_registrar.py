"""Third-party registration: a Registrar probing instances for Eureka, Consul and DNS.

Removal times are checked against ``readiness_removal_bounds`` of the
registrar's ProbeSpec (the same consecutive-failures rule as the kubelet's).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from simcomm.discovery.churn import Fleet
from simcomm.discovery.consul import ConsulServer
from simcomm.discovery.dns import DnsServer
from simcomm.discovery.eureka import EurekaServer
from simcomm.discovery.kubernetes import KubernetesApiServer, readiness_removal_bounds
from simcomm.discovery.probe import ProbeSpec
from simcomm.discovery.registrar import KINDS, ROUTE53_PROBE, Registrar
from simcomm.engine import World
from simcomm.engine.network import Link
from simcomm.errors import ParamError

LATENCY = 0.001
SERVERS = {"eureka": EurekaServer, "consul": ConsulServer, "dns": DnsServer}


@dataclass
class Setup:
    w: World
    server: EurekaServer | ConsulServer | DnsServer
    registrar: Registrar
    fleet: Fleet


def setup(kind: str, seed: int = 1, n: int = 3, trace: bool = True, **registrar_args
          ) -> Setup:
    w = World(seed=seed, trace=trace, network=Link(latency=LATENCY))
    server = SERVERS[kind](w, "reg")
    registrar = Registrar(w, "registrar", "reg", **registrar_args)
    fleet = Fleet(w, "orders", instances=n, registration=registrar.registration,
                  service_time=0.01)
    return Setup(w, server, registrar, fleet)


def rows(w: World, event: str, instance: str | None = None):
    return [r for r in w.trace.discovery
            if r[1] == event and (instance is None or r[4] == instance)]


def test_kinds_and_their_operations():
    """The contract's op names: register/renew/cancel, register/pass/deregister."""
    assert KINDS == {"eureka": ("register", "renew", "cancel"),
                     "consul": ("register", "pass", "deregister"),
                     "dns": ("register", None, "cancel")}
    assert ProbeSpec(30.0, 4.0, 3, 3) == ROUTE53_PROBE


@pytest.mark.parametrize("kind", ["eureka", "consul", "dns"])
def test_registered_when_healthy_with_third_party_detail(kind):
    s = setup(kind)
    s.w.run(40)
    assert s.server.listing("orders") == ("orders-1", "orders-2", "orders-3")
    registered = rows(s.w, "register")
    assert {r[4] for r in registered} == {"orders-1", "orders-2", "orders-3"}
    assert all(r[5] == "third-party" for r in registered)
    if kind == "dns":  # healthy until shown otherwise: in the zone at once
        assert all(r[0] <= 2 * LATENCY + 1e-9 for r in registered)
    else:  # after the first passing probe, within one period
        assert all(r[0] <= 10.0 + 0.05 for r in registered)


@pytest.mark.parametrize(("kind", "seed"),
                         list(itertools.product(["eureka", "consul", "dns"], [1, 2])))
def test_hung_instance_is_taken_out_within_the_probe_bounds(kind, seed):
    s = setup(kind, seed)
    hang_at = 200.0 + seed
    s.w.at(hang_at, lambda: s.fleet.hang("orders-2"))
    s.w.run(400)
    spec = s.registrar.spec
    lo, hi = readiness_removal_bounds(spec.period, spec.timeout, spec.failure_threshold)
    out = "deregister" if kind == "consul" else "cancel"
    (gone,) = rows(s.w, "cancel", "orders-2")  # consul traces its deregister as cancel
    assert out in KINDS[kind]
    assert hang_at + lo - 0.05 <= gone[0] <= hang_at + hi + 0.05
    assert "orders-2" not in s.server.listing("orders")
    failed = [r for r in rows(s.w, "probe_failed", "orders-2") if r[0] <= gone[0]]
    assert len(failed) == spec.failure_threshold
    assert {r[5] for r in failed} == {"timeout"}
    assert all(r[2] == "registrar" for r in failed)


def test_eureka_renewals_on_behalf_keep_the_beat():
    """Prana-style: a renewal every renewal_interval (30 s) while healthy, on probe ticks."""
    s = setup("eureka", 3, renewal_interval=30.0)
    s.w.run(400)
    for name in ("orders-1", "orders-2", "orders-3"):
        times = [r[0] for r in rows(s.w, "renew", name)]
        assert len(times) >= 12
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(abs(g - 30.0) < 0.05 for g in gaps)
    assert not rows(s.w, "evict")


def test_eureka_server_crash_refilled_by_renewals():
    """A Eureka server forgets everything in a crash; the next renewal gets 404 and
    the registrar registers again (DiscoveryClient.renew), within one renewal interval."""
    s = setup("eureka", 4)
    s.w.at(100.0, lambda: s.server.crash(repair_after=5.0))
    s.w.run(200)
    again = [r for r in rows(s.w, "register") if r[0] > 100.0]
    assert {r[4] for r in again} == {"orders-1", "orders-2", "orders-3"}
    assert all(r[0] <= 105.0 + 30.0 + 10.0 + 0.1 for r in again)
    assert s.server.listing("orders") == ("orders-1", "orders-2", "orders-3") or \
        s.server.registry.size() == 3


def test_consul_ttl_passed_after_each_good_probe_then_critical_then_deregistered():
    s = setup("consul", 5)
    s.w.at(100.0, lambda: s.fleet.hang("orders-1"))
    s.w.run(200)
    passes = [r[0] for r in rows(s.w, "renew", "orders-1")]
    assert all(abs(b - a - 10.0) < 0.05 for a, b in itertools.pairwise(passes))
    last_pass = max(passes)
    assert last_pass < 100.0 + 1.0
    (critical,) = rows(s.w, "critical", "orders-1")
    assert critical[5] == "ttl"
    assert abs(critical[0] - (last_pass + 30.0)) < 0.01  # exactly the last pass + ttl
    (gone,) = rows(s.w, "cancel", "orders-1")
    assert gone[0] >= critical[0] - 10.0


def test_consul_http_check_is_consuls_own():
    """check="http": registered at start with an HTTP check Consul runs; the registrar
    only deregisters on a clean shutdown."""
    s = setup("consul", 6, check="http")
    s.w.at(50.0, lambda: s.fleet.hang("orders-3", 30.0))
    s.w.at(120.0, lambda: s.fleet.shutdown("orders-2", drain=2.0))
    s.w.run(200)
    assert all(r[0] <= 2 * LATENCY + 1e-9 for r in rows(s.w, "register"))
    assert not [r for r in s.w.trace.discovery if r[2] == "registrar"]  # no probes of ours
    assert rows(s.w, "critical", "orders-3")[0][5] == "http"
    (gone,) = rows(s.w, "cancel", "orders-2")
    assert 120.0 <= gone[0] <= 120.0 + 2 * LATENCY + 0.02
    assert s.server.listing("orders") == ("orders-1", "orders-3")


@pytest.mark.parametrize("kind", ["eureka", "consul", "dns"])
def test_clean_shutdown_takes_it_out_at_once(kind):
    s = setup(kind, 7)
    s.w.at(90.0, lambda: s.fleet.shutdown("orders-1", drain=10.0))
    s.w.run(200)
    (gone,) = rows(s.w, "cancel", "orders-1")
    # at once, or after a probe in flight returns (at most the probe timeout)
    assert 90.0 <= gone[0] <= 90.0 + s.registrar.spec.timeout + 4 * LATENCY + 0.05
    assert not [r for r in rows(s.w, "probe_failed", "orders-1") if r[0] > gone[0]]
    assert "orders-1" not in s.server.listing("orders")


def test_crash_and_restart_out_then_back_in():
    s = setup("dns", 8)
    s.w.at(100.0, lambda: s.fleet.crash("orders-3", restart_after=200.0))
    s.w.run(500)
    (gone,) = rows(s.w, "cancel", "orders-3")
    lo, hi = readiness_removal_bounds(30.0, 4.0, 3)
    # a refused probe fails at once, not after the timeout
    assert 100.0 + lo - 4.0 - 0.05 <= gone[0] <= 100.0 + hi + 0.05
    back = [r for r in rows(s.w, "register", "orders-3") if r[0] > 300.0]
    assert len(back) == 1 and back[0][0] <= 300.0 + 3 * 30.0 + 0.1  # 3 good probes


def test_partition_from_the_registry_then_heal():
    """The registrar cut off from Eureka: every renewal fails at once, so the server's
    self-preservation keeps the expired leases (nothing evicted); after the heal the
    renewals are accepted again -- nothing to register anew."""
    s = setup("eureka", 9)
    s.w.network.cut(["registrar"], at=60.0, heal_at=460.0)
    s.w.run(600)
    assert not rows(s.w, "evict")
    assert [r[5] for r in rows(s.w, "self_preservation") if r[0] < 460.0][-1] == "on"
    renewed = {r[4] for r in rows(s.w, "renew") if r[0] > 460.0}
    assert renewed == {"orders-1", "orders-2", "orders-3"}
    assert not [r for r in rows(s.w, "renew") if 60.0 + 2 * LATENCY < r[0] < 460.0]
    assert len(rows(s.w, "register")) == 3


def test_deterministic_and_counted_untraced():
    def run(seed: int, trace: bool) -> World:
        s = setup("consul", seed, trace=trace)
        s.w.at(40.0, lambda: s.fleet.hang("orders-1", 50.0))
        s.w.at(60.0, lambda: s.fleet.node_failure("orders-2", replace_after=5.0))
        s.w.run(200)
        return s.w

    a, b, c = run(3, True), run(3, True), run(3, False)
    assert a.trace.discovery == b.trace.discovery
    assert a.trace.counters == b.trace.counters == c.trace.counters
    assert c.trace.discovery == []
    assert run(4, True).trace.discovery != a.trace.discovery
    # the replacement of the failed machine's instance was registered
    assert any(r[4] == "orders-4" for r in a.trace.discovery if r[1] == "register")


def test_bad_arguments_fail_before_time_zero():
    w = World(seed=1)
    KubernetesApiServer(w, "k8s")
    ConsulServer(w, "consul")
    with pytest.raises(ParamError, match="registry"):
        Registrar(w, "r", "k8s")
    with pytest.raises(ParamError, match="registry"):
        Registrar(w, "r", "nowhere")
    with pytest.raises(ParamError, match="probe"):
        Registrar(w, "r", "consul", probe=(10, 1, 3))  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="check"):
        Registrar(w, "r", "consul", check="tcp")
    with pytest.raises(ParamError, match="ttl"):
        Registrar(w, "r", "consul", ttl=10.0)  # not above the probe period
    with pytest.raises(ParamError, match="deregister_after"):
        Registrar(w, "r", "consul", deregister_after=30.0)  # Consul's minimum is 60 s
    with pytest.raises(ParamError, match="renewal_interval"):
        Registrar(w, "r", "consul", renewal_interval=0)
    with pytest.raises(ParamError, match="initially_ready"):
        Registrar(w, "r", "consul", initially_ready=1)  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="timeout"):
        Registrar(w, "r", "consul", timeout=-1)
    registrar = Registrar(w, "r", "consul")
    with pytest.raises(ParamError, match="inst"):
        registrar.start("orders-1")  # type: ignore[arg-type]
    assert registrar.registration() is registrar
