"""The ``discovery`` scenario: both patterns, every registry kind, the same churn.

The timing tests derive their bounds from the configured periods
(:func:`simcomm.analysis.discovery.lag_bounds`), never from typed numbers.
"""

from __future__ import annotations

import itertools
import math

import pytest

import simcomm
from simcomm.analysis.discovery import lag_bounds
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.scenarios import discovery as scenario

#: A gap between two calls to one instance: the measured lag is the last call
#: *sent* before every list caught up, so it may end this much before the bound.
#: 20 req/s over 10 instances by round robin: one call each 0.5 s; 5 s is ten gaps.
CALL_GAP = 5.0


def _run(seed: int = 1, **params) -> Result:
    return simcomm.run("discovery", seed=seed, progress=False, **params)


def _bounds(res: Result, fault: str = "crash"):
    p = res.params
    mode = simcomm.discovery.kinds.registration_mode(p.registry, p.pattern, p.registration)
    t = scenario.timings(p)
    latency = p.network_latency * 10  # exponential: generous for a few hops
    if p.registry == "eureka":
        common = dict(lease_duration=t.lease_duration, renewal_interval=t.renewal_interval,
                      eviction_interval=t.eviction_interval,
                      response_cache_update_interval=t.response_cache_interval,
                      registry_fetch_interval=t.fetch_interval,
                      server_list_refresh_interval=t.ribbon_refresh_interval,
                      lease_expiry_quirk=t.lease_expiry_quirk, latency=latency)
        if mode == "self":
            return lag_bounds("eureka", fault=fault, **common)
        return lag_bounds("eureka", fault=fault, registration="registrar",
                          period=t.probe_period, timeout=t.probe_timeout,
                          failure_threshold=t.failure_threshold, **common)
    if p.registry == "consul":
        if mode == "self":
            return lag_bounds("consul", fault=fault, check="ttl", ttl=t.consul_ttl,
                              latency=latency)
        return lag_bounds("consul", fault=fault, check="http",
                          check_interval=t.probe_period, check_timeout=t.probe_timeout,
                          latency=latency)
    if p.registry == "kubernetes":
        return lag_bounds("kubernetes", fault=fault, period=t.probe_period,
                          timeout=t.probe_timeout, failure_threshold=t.failure_threshold,
                          proxy_sync=t.proxy_sync, latency=latency)
    return lag_bounds("dns", fault=fault, ttl=t.dns_ttl, period=t.dns_check_interval,
                      failure_threshold=t.dns_failure_threshold, latency=latency)


@pytest.fixture(scope="module")
def default() -> Result:
    return _run()


def test_the_default_run_crashes_an_instance_without_a_clean_shutdown(default: Result) -> None:
    ev = default.events
    crash = ev[(ev.event == "crash") & (ev.node == "order-2")]
    assert len(crash) == 1 and crash.time.iloc[0] == default.params.churn_at
    rows = default.discovery
    # no cancel reached the registry: the instance left it by eviction
    gone = rows[(rows.instance == "order-2") & rows.event.isin(["cancel", "evict"])]
    assert list(gone.event) == ["evict"]
    s = default.summary()
    assert s["stale_calls"] > 0
    assert s["registry_messages_per_s"] > 0
    assert 0 < s["availability_during_churn"] < 1


def test_the_default_lag_falls_between_the_bounds_its_timings_give(default: Result) -> None:
    lag = default.detection().set_index("instance").loc["order-2", "lag"]
    b = _bounds(default)
    assert b.lower - CALL_GAP <= lag <= b.upper
    assert lag == pytest.approx(default.summary()["detection_lag"])


@pytest.mark.parametrize(("registry", "pattern"),
                         list(itertools.product(scenario.REGISTRIES, scenario.PATTERNS)))
def test_every_registry_and_pattern_detects_a_crash_within_its_bounds(registry: str,
                                                                      pattern: str) -> None:
    res = _run(registry=registry, pattern=pattern, until=500.0, trace=False)
    net = res.world.network
    assert net.sent == net.delivered + sum(net.dropped.values()) + net.in_flight
    lag = res.summary()["detection_lag"]
    b = _bounds(res)
    assert b.lower - CALL_GAP <= lag <= b.upper, (registry, pattern, lag, b.lower, b.upper)


def test_the_same_seed_gives_the_same_run() -> None:
    a = _run(seed=7, until=200.0, churn_at=20.0, registry="consul")
    b = _run(seed=7, until=200.0, churn_at=20.0, registry="consul")
    assert a.fingerprint() == b.fingerprint()
    c = _run(seed=8, until=200.0, churn_at=20.0, registry="consul")
    assert a.fingerprint() != c.fingerprint()


def test_a_next_server_retry_hides_the_stale_entry_from_users(default: Result) -> None:
    retried = _run(retry_next_server=1, trace=False)
    assert retried.summary()["stale_calls"] > 0
    assert retried.summary()["failed"] == 0 < default.summary()["failed"]


def test_eureka_never_notices_a_hang_and_kubernetes_does() -> None:
    eureka = _run(churn="hang", call_timeout=1.0, until=600.0, trace=False)
    kube = _run(churn="hang", call_timeout=1.0, until=600.0, trace=False,
                pattern="server-side", registry="kubernetes")
    p = eureka.params
    # Eureka: the heartbeat thread keeps renewing, calls go to the hung instance to the end
    last = eureka.detection().set_index("instance").loc["order-2", "last_stale_call"]
    assert last > p.churn_at + p.hang_duration - CALL_GAP
    assert math.isinf(_bounds(eureka, "hang").upper)
    lag = kube.summary()["detection_lag"]
    b = _bounds(kube, "hang")
    assert b.lower - CALL_GAP <= lag <= b.upper


def test_a_graceful_shutdown_must_drain_longer_than_the_views_lag() -> None:
    short = _run(churn="shutdown", drain=5.0, until=400.0, trace=False)
    long = _run(churn="shutdown", drain=120.0, until=400.0, trace=False)
    kube = _run(churn="shutdown", drain=5.0, until=400.0, trace=False,
                pattern="server-side", registry="kubernetes")
    assert short.summary()["stale_calls"] > 0      # Eureka's caches outlive a 5 s drain
    assert long.summary()["stale_calls"] == 0
    assert kube.summary()["stale_calls"] == 0      # endpoints drop a terminating pod at once


def test_a_registry_outage_spares_cached_clients_only() -> None:
    for registry in ("eureka", "consul"):
        cached = _run(registry=registry, churn="none", registry_fault="crash",
                      registry_fault_at=100.0, registry_fault_duration=100.0, until=300.0,
                      trace=False)
        uncached = _run(registry=registry, churn="none", registry_fault="crash", cache=False,
                        registry_fault_at=100.0, registry_fault_duration=100.0, until=300.0,
                        trace=False)
        assert cached.summary()["no_instance"] == 0, registry
        req = uncached.requests
        lost = req[req.outcome == "no_instance"]
        # a restarted Eureka server synced nothing: it refuses fetches for
        # wait_when_sync_empty (300 s) more; Consul's catalog survives the crash
        end = 200.0 + (300.0 if registry == "eureka" else 0.0)
        assert len(lost) > 0 and lost.start.between(100.0, end).all(), registry
        assert (lost.start > 200.0).any() == (registry == "eureka")


def test_cross_field_rules_are_refused_before_time_zero() -> None:
    with pytest.raises(ParamError, match="registration"):
        _run(registry="kubernetes", registration="self")
    with pytest.raises(ParamError, match="registration"):
        _run(registry="dns", registration="self")
    with pytest.raises(ParamError, match="instances"):
        _run(churn="mixed", instances=1)
    with pytest.raises(ParamError, match="registry"):
        _run(registry="zookeeper")


def test_every_churn_runs_and_balances_its_ledger() -> None:
    for churn in scenario.CHURNS:
        res = _run(churn=churn, churn_at=30.0, until=300.0, trace=False, instances=4)
        net = res.world.network
        assert net.sent == net.delivered + sum(net.dropped.values()) + net.in_flight, churn
        s = res.summary()
        assert s["requests"] > 0
        assert s["answered"] + s["failed"] + s["pending"] == s["requests"], churn
