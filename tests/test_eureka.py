"""Eureka (simcomm.discovery.eureka): the registry's rules as Netflix/eureka has them.

The pure :class:`EurekaRegistry` is checked against the upstream arithmetic
(``Lease``, ``MeasuredRate``, ``AbstractInstanceRegistry.evict``,
``PeerAwareInstanceRegistryImpl.isLeaseExpirationEnabled``,
``ResponseCacheImpl``) without a World; the server, the client's view and
the self-registration are then run in a World, and every timing bound is
derived from the configured periods.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.discovery.eureka import (
    EurekaRegistration,
    EurekaRegistry,
    EurekaServer,
    EurekaView,
    Lease,
    MeasuredRate,
)
from simcomm.discovery.registry import COUNTER, ask
from simcomm.engine.network import Link
from simcomm.engine.nodes import Instance
from simcomm.engine.randomness import Uniform
from simcomm.engine.world import World
from simcomm.errors import ParamError

# -- Lease: the quirk ----------------------------------------------------------


def test_renewed_lease_expires_two_durations_after_the_last_renewal_with_the_quirk():
    """Lease.renew sets lastUpdate = now + duration; isExpired adds duration again."""
    lease = Lease(0.0, 90.0)
    lease.renew(30.0)
    assert lease.expires_at() == 30.0 + 2 * 90.0
    assert not lease.is_expired(210.0)  # strictly after: now > lastUpdate + duration
    assert lease.is_expired(210.0 + 1e-9)


def test_renewed_lease_expires_one_duration_after_the_last_renewal_without_the_quirk():
    lease = Lease(0.0, 90.0, quirk=False)
    lease.renew(30.0)
    assert lease.expires_at() == 120.0
    assert not lease.is_expired(120.0)
    assert lease.is_expired(120.5)


@pytest.mark.parametrize("quirk", [True, False])
def test_lease_never_renewed_expires_one_duration_after_registration(quirk):
    """The constructor sets lastUpdate to the registration time: no quirk before a renewal."""
    lease = Lease(10.0, 90.0, quirk=quirk)
    assert lease.expires_at() == 100.0
    assert not lease.is_expired(100.0) and lease.is_expired(100.1)


def test_additional_lease_time_postpones_expiry():
    lease = Lease(0.0, 90.0, quirk=False)
    assert lease.expires_at(15.0) == 105.0
    assert not lease.is_expired(104.0, 15.0) and lease.is_expired(106.0, 15.0)


# -- MeasuredRate: the last FULL minute ---------------------------------------


def test_measured_rate_counts_the_last_full_interval_not_a_sliding_window():
    rate = MeasuredRate(60.0, origin=0.0)
    for t in (10.0, 40.0, 59.9):
        rate.increment(t)
    assert rate.count(59.9) == 0  # no full minute yet
    assert rate.count(60.0) == 3
    rate.increment(61.0)
    assert rate.count(119.0) == 3  # 61.0 is in the current minute
    assert rate.count(120.0) == 1
    assert rate.count(240.0) == 0  # a whole minute with nothing


@settings(max_examples=60, deadline=None)
@given(origin=st.floats(-100, 100),
       offsets=st.lists(st.floats(0, 600), max_size=40),
       later=st.floats(0, 100))
def test_measured_rate_equals_the_count_in_the_previous_bucket(origin, offsets, later):
    """Bucket k is [origin + 60k, origin + 60(k+1)); getCount is bucket k-1's count."""
    times = sorted(origin + dt for dt in offsets)
    probe = (times[-1] if times else origin) + later
    rate = MeasuredRate(60.0, origin=origin)
    for t in times:
        rate.increment(t)
    k = math.floor((probe - origin) / 60.0)
    expected = sum(1 for t in times if math.floor((t - origin) / 60.0) == k - 1)
    assert rate.count(probe) == expected


# -- register / renew / cancel ----------------------------------------------------


def test_register_renew_cancel_answer_as_upstream():
    reg = EurekaRegistry()
    assert reg.renew("orders", "orders-1", 1.0) is False  # 404: the client registers again
    assert reg.register("orders", "orders-1", 1.0) is True
    assert reg.register("orders", "orders-1", 2.0) is False  # a re-registration
    assert reg.size == 1 and reg.expected_clients == 1
    assert reg.renew("orders", "orders-1", 31.0) is True
    assert reg.cancel("orders", "orders-2", 40.0) is False
    assert reg.cancel("orders", "orders-1", 40.0) is True
    assert reg.size == 0 and reg.listing("orders") == ()
    assert reg.cancel("orders", "orders-1", 41.0) is False


def test_reregistration_starts_a_fresh_unrenewed_lease():
    reg = EurekaRegistry()
    reg.register("orders", "orders-1", 0.0)
    reg.renew("orders", "orders-1", 30.0)
    assert reg.lease("orders", "orders-1").expires_at() == 210.0
    reg.register("orders", "orders-1", 40.0)
    assert reg.lease("orders", "orders-1").expires_at() == 130.0


def test_listing_is_sorted_by_name_per_service():
    reg = EurekaRegistry()
    for name in ("orders-3", "orders-1", "orders-2"):
        reg.register("orders", name, 0.0)
    reg.register("users", "users-1", 0.0)
    assert reg.listing("orders") == ("orders-1", "orders-2", "orders-3")
    assert reg.listing("users") == ("users-1",)
    assert reg.listing("payments") == ()
    assert reg.size == 4


# -- self-preservation arithmetic ------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 500), pct=st.sampled_from([0.0, 0.5, 0.75, 0.8, 0.85, 0.9, 0.99, 1.0]),
       interval=st.sampled_from([5.0, 10.0, 15.0, 30.0, 60.0]))
def test_renews_threshold_is_updateRenewsPerMinThreshold(n, pct, interval):
    """(int) (expected × (60.0 / expectedClientRenewalIntervalSeconds)
    × renewalPercentThreshold), in doubles as upstream."""
    reg = EurekaRegistry(renewal_interval=interval, renewal_percent_threshold=pct)
    for i in range(n):
        reg.register("s", f"s-{i}", 0.0)
    assert reg.expected_clients == n
    assert reg.renews_threshold == int(n * (60.0 / interval) * pct)


def test_default_threshold_values():
    """2 renewals per instance per minute, 85 %: 10 instances -> int(17.0) = 17."""
    reg = EurekaRegistry()
    for i in range(10):
        reg.register("s", f"s-{i}", 0.0)
    assert reg.renews_threshold == 17
    assert reg.eviction_limit == 10 - 8


def _steady(n: int, *, dead: int = 0, until: float = 600.0, **kw) -> EurekaRegistry:
    """n instances registered at t = 0 renewing every 30 s from a random phase;
    ``dead`` of them stop renewing at t = 0 (crashed just after registering)."""
    rng = random.Random(n * 1000 + dead)
    reg = EurekaRegistry(opened=0.0, **kw)
    renewals = []
    for i in range(n):
        reg.register("s", f"s-{i:03d}", 0.0)
        if i >= dead:
            phase = rng.uniform(0, 30)
            renewals += [(phase + 30.0 * k, f"s-{i:03d}") for k in range(int(until // 30) + 1)]
    for t, name in sorted(renewals):
        if t <= until:
            reg.renew("s", name, t)
    return reg


def test_renews_last_min_is_two_per_live_instance_in_steady_state():
    reg = _steady(10, dead=3)
    assert reg.renews_last_min(600.0) == 2 * 7


def test_lease_expiration_needs_renewals_strictly_above_the_threshold():
    """10 instances: threshold 17.  9 alive renew 18 > 17 -> expiry on; 8 alive: 16 -> off."""
    assert _steady(10, dead=1).lease_expiration_enabled(600.0)
    assert not _steady(10, dead=2).lease_expiration_enabled(600.0)
    assert _steady(10, dead=2).self_preservation(600.0)


@pytest.mark.parametrize("n", range(1, 15))
def test_one_dead_instance_blocks_eviction_in_registries_of_six_or_fewer(n):
    """2(n-1) > int(1.7 n) holds from n = 7 on: smaller registries keep their dead."""
    reg = _steady(n, dead=1)
    assert reg.lease_expiration_enabled(600.0) == (2 * (n - 1) > int(n * 2.0 * 0.85))
    assert reg.lease_expiration_enabled(600.0) == (n >= 7)


def test_disabled_self_preservation_always_allows_expiry():
    reg = _steady(3, dead=3, enable_self_preservation=False)
    assert reg.renews_last_min(600.0) == 0
    assert reg.lease_expiration_enabled(600.0)


def test_empty_registry_threshold_zero_means_no_expiry():
    """isLeaseExpirationEnabled needs numberOfRenewsPerMinThreshold > 0."""
    assert not EurekaRegistry().lease_expiration_enabled(100.0)


# -- eviction ---------------------------------------------------------------------


def test_eviction_is_capped_at_size_minus_int_size_times_threshold():
    """All 20 leases expired, self-preservation off: runs remove 3, 3, 3, 2, ... ."""
    reg = EurekaRegistry(enable_self_preservation=False)
    for i in range(20):
        reg.register("s", f"s-{i:02d}", 0.0)
    rng = random.Random(1)
    removed = []
    t = 100.0
    while reg.size:
        size = reg.size
        run = reg.evict(t, rng)
        assert not run.preserved
        assert run.expired == size
        assert run.limit == size - int(size * 0.85)
        assert len(run.evicted) == min(size, run.limit)
        removed.append(len(run.evicted))
        t += 60.0
    assert removed[:4] == [3, 3, 3, 2]
    assert sum(removed) == 20


def test_eviction_picks_at_random_among_the_expired():
    """Which expired instances go first depends on the draw, and only expired ones go."""
    chosen = set()
    for seed in range(20):
        reg = EurekaRegistry(enable_self_preservation=False, lease_expiry_quirk=False)
        for i in range(20):
            reg.register("s", f"s-{i:02d}", 0.0)
        for i in range(10, 20):  # the second half stays fresh
            reg.renew("s", f"s-{i:02d}", 95.0)
        run = reg.evict(100.0, random.Random(seed))
        assert run.expired == 10 and len(run.evicted) == 3
        assert all(int(inst[-2:]) < 10 for _, inst in run.evicted)
        chosen.add(run.evicted)
    assert len(chosen) > 10


def test_self_preservation_stops_the_run_before_it_looks():
    reg = _steady(4, dead=1)  # 6 renewals <= int(6.8) = 6
    run = reg.evict(600.0, random.Random(0))
    assert run.preserved and run.evicted == () and reg.size == 4


def test_eviction_removes_the_dead_in_a_large_registry():
    reg = _steady(10, dead=1)
    run = reg.evict(600.0, random.Random(0))
    assert not run.preserved and run.evicted == (("s", "s-000"),)
    assert reg.size == 9 and reg.expected_clients == 9  # internalCancel lowers the expectation


def test_a_late_eviction_run_compensates_the_leases():
    """EvictionTask.getCompensationTimeMs: the run 30 s late gives every lease 30 s more."""
    def run_at(times):
        reg = EurekaRegistry(enable_self_preservation=False, lease_expiry_quirk=False)
        reg.register("s", "s-1", 0.0)
        reg.renew("s", "s-1", 30.0)  # expires after 120 without compensation
        runs = [reg.evict(t, random.Random(0)) for t in times]
        return reg, runs

    reg, runs = run_at([60.0, 150.0])  # 90 s apart: 30 s late
    assert runs[0].compensation == 0.0 and runs[1].compensation == 30.0
    assert runs[1].evicted == () and reg.size == 1  # 150 > 30 + 90 + 30 is false
    reg, runs = run_at([60.0, 120.5, 150.0])  # on time (sooner is no compensation)
    assert runs[2].compensation == 0.0 and reg.size == 0


@settings(max_examples=60, deadline=None)
@given(last=st.floats(0, 300), phase=st.floats(0, 1, exclude_max=True),
       quirk=st.booleans(), duration=st.sampled_from([30.0, 90.0, 120.0]),
       period=st.sampled_from([15.0, 60.0]))
def test_eviction_time_bounds_from_the_last_renewal(last, phase, quirk, duration, period):
    """Eviction runs every ``period``: evicted in (expiry, expiry + period], expiry =
    last + 2 × duration (quirk) or last + duration."""
    reg = EurekaRegistry(enable_self_preservation=False, lease_expiry_quirk=quirk,
                         lease_duration=duration, eviction_interval=period)
    reg.register("s", "s-1", 0.0)
    if last > 0:
        reg.renew("s", "s-1", last)
    expiry = last + (2 * duration if quirk and last > 0 else duration)
    t = phase * period  # the task's first run: a random phase in [0, period)
    while reg.size:
        reg.evict(t, random.Random(0))
        if reg.size:
            t += period
    eps = 1e-9 * max(1.0, expiry)  # (last + d) + d vs last + 2d: rounding only
    assert expiry - eps < t <= expiry + period + eps


# -- the read-only response cache ---------------------------------------------


def test_read_only_cache_serves_the_copy_until_the_timer_refreshes_it():
    reg = EurekaRegistry()
    reg.register("s", "s-1", 0.0)
    assert reg.query("s") == ("s-1",)  # the first query fills the cache
    reg.register("s", "s-2", 1.0)
    reg.cancel("s", "s-1", 2.0)
    assert reg.listing("s") == ("s-2",)
    assert reg.query("s") == ("s-1",)  # stale until the cache timer runs
    assert reg.update_response_cache() == ["s"]
    assert reg.query("s") == ("s-2",)
    assert reg.update_response_cache() == []


def test_without_read_only_cache_queries_see_the_live_registry():
    reg = EurekaRegistry(use_read_only_response_cache=False)
    reg.register("s", "s-1", 0.0)
    assert reg.query("s") == ("s-1",)
    reg.register("s", "s-2", 1.0)
    assert reg.query("s") == ("s-1", "s-2")


def test_a_service_first_queried_when_empty_is_cached_empty():
    reg = EurekaRegistry()
    assert reg.query("s") == ()
    reg.register("s", "s-1", 0.0)
    assert reg.query("s") == ()
    reg.update_response_cache()
    assert reg.query("s") == ("s-1",)


# -- parameters ---------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("lease_duration", 0), ("lease_duration", -1.0), ("lease_duration", math.inf),
    ("lease_duration", True), ("lease_duration", "90"), ("lease_duration", math.nan),
    ("renewal_interval", 0.0), ("renewal_interval", False),
    ("renewal_percent_threshold", 1.5), ("renewal_percent_threshold", -0.1),
    ("renewal_percent_threshold", True),
    ("enable_self_preservation", 1), ("enable_self_preservation", "yes"),
    ("eviction_interval", 0), ("eviction_interval", None),
    ("use_read_only_response_cache", 0),
    ("lease_expiry_quirk", None),
    ("opened", math.nan), ("opened", True),
])
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ParamError) as err:
        EurekaRegistry(**{field: value})
    assert err.value.field == field


def test_numpy_numbers_and_flags_are_accepted():
    reg = EurekaRegistry(lease_duration=np.float64(60), renewal_interval=np.int64(20),
                         renewal_percent_threshold=np.float32(0.5),
                         enable_self_preservation=np.bool_(False))
    assert reg.lease_duration == 60.0 and reg.renewal_interval == 20.0
    assert reg.enable_self_preservation is False


# -- in a World: the server, the view, the registration ------------------------------------

#: one-way latency of every link in these worlds: up to MAX_LATENCY seconds
MAX_LATENCY = 0.003
#: a server's unit of work per request (RegistryServer's default service time)
WORK = 0.001
#: a request's round trip, at most
RTT = 2 * MAX_LATENCY + WORK


def _world(seed: int = 1, n: int = 10, *, view: bool = True, view_kw: dict | None = None,
           reg_kw: dict | None = None, **server_kw):
    """A Eureka server, ``n`` self-registered instances of ``orders`` (started at 0) and
    a caller whose view of ``orders`` is a Eureka client + Ribbon."""
    world = World(seed=seed, network=Link(latency=Uniform(0.0005, MAX_LATENCY)))
    server = EurekaServer(world, "eureka", **server_kw)
    registration = EurekaRegistration(world, "eureka", **(reg_kw or {}))
    insts = [Instance(world, f"orders-{i}", service="orders") for i in range(1, n + 1)]
    for inst in insts:
        registration.start(inst)
    the_view = None
    if view:
        caller = Instance(world, "caller")
        the_view = EurekaView(world, caller, "eureka", "orders", **(view_kw or {}))
        the_view.start()
    return world, server, registration, insts, the_view


def _times(world: World, event: str, instance: str | None = None, node: str | None = None):
    return [r[0] for r in world.trace.discovery
            if r[1] == event and (instance is None or r[4] == instance)
            and (node is None or r[2] == node)]


def _crash_and_measure(seed: int, quirk: bool, **kw):
    """Crash orders-1 at t = 400 without a cancel: (last renewal, eviction, hidden)."""
    world, server, _, insts, _ = _world(seed, lease_expiry_quirk=quirk, **kw)
    world.at(400.0, insts[0].crash)
    world.run(1200.0)
    last = max(t for t in _times(world, "renew", "orders-1") if t <= 400.0)
    evicted = _times(world, "evict", "orders-1")
    hidden = _times(world, "hidden", "orders-1", node="caller")
    return world, server, last, evicted, hidden


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("self_preservation", [True, False])
def test_a_crash_without_cancel_is_evicted_two_durations_after_the_last_renewal(
        seed, self_preservation):
    """Quirk on: evicted in (r + 2 × 90, r + 2 × 90 + 60] after the last renewal r.

    Ten instances, so one dead one leaves 18 renewals a minute, above
    int(20 × 0.85) = 17: self-preservation (on or off) does not stop it."""
    world, server, last, evicted, _ = _crash_and_measure(
        seed, True, enable_self_preservation=self_preservation)
    assert len(evicted) == 1
    assert last + 2 * 90.0 < evicted[0] <= last + 2 * 90.0 + 60.0
    assert all(run.compensation == 0.0 for run in server.eviction_runs)
    assert world.trace.discovery.count(
        (evicted[0], "evict", "eureka", "orders", "orders-1", "expired")) == 1


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_without_the_quirk_a_crash_is_evicted_one_duration_after_the_last_renewal(seed):
    _, _, last, evicted, _ = _crash_and_measure(seed, False)
    assert len(evicted) == 1
    assert last + 90.0 < evicted[0] <= last + 90.0 + 60.0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("cache", [True, False])
def test_the_client_stops_seeing_the_dead_instance_within_the_refresh_periods(seed, cache):
    """After the eviction at e the caller's Ribbon list drops it after the read-only
    cache refresh (<= 30 s, none without the cache), the client fetch (<= 30 s and a
    round trip: the next fetch is scheduled when the last one ends, as
    TimedSupervisorTask does) and Ribbon's list refresh (<= 30 s)."""
    _, _, last, evicted, hidden = _crash_and_measure(
        seed, True, use_read_only_response_cache=cache)
    assert len(evicted) == 1 and len(hidden) == 1
    e = evicted[0]
    upper = (30.0 if cache else 0.0) + (30.0 + RTT) + 30.0
    assert e < hidden[0] <= e + upper + 1e-9
    # the whole lag from the last renewal, term by term
    assert hidden[0] - last <= 2 * 90.0 + 60.0 + upper + 1e-9


def test_a_small_registry_keeps_its_dead_instance_in_self_preservation():
    """Five instances: one dead leaves 8 renewals a minute, not above int(10 × 0.85) = 8."""
    world, server, _, insts, view = _world(5, n=5)
    world.at(400.0, insts[0].crash)
    world.run(2000.0)
    assert _times(world, "evict") == []
    assert "orders-1" in view.instances
    registry = server.registry
    assert registry.renews_threshold == 8
    assert registry.renews_last_min(world.now) == 8
    assert server.self_preservation
    modes = [r[5] for r in world.trace.discovery if r[1] == "self_preservation"]
    assert modes[-1] == "on"
    late = [run for run in server.eviction_runs if run.time > 400.0 + 2 * 60.0]
    assert late and all(run.preserved for run in late)


def test_without_self_preservation_the_small_registry_evicts():
    world, _, _, insts, view = _world(5, n=5, enable_self_preservation=False)
    world.at(400.0, insts[0].crash)
    world.run(1000.0)
    assert len(_times(world, "evict", "orders-1")) == 1
    assert "orders-1" not in view.instances
    assert _times(world, "self_preservation") == []


def test_one_eviction_run_removes_at_most_size_minus_int_size_times_threshold():
    """20 instances, 5 crash at once: the first run evicts 20 - int(17.0) = 3 at most,
    the next the other 2 (17 - int(14.45) = 3 >= 2)."""
    world, server, _, insts, _ = _world(6, n=20, enable_self_preservation=False, view=False)
    for inst in insts[:5]:
        world.at(400.0, inst.crash)
    world.run(1200.0)
    times = _times(world, "evict")
    assert sorted({r[4] for r in world.trace.discovery if r[1] == "evict"}) == \
        sorted(inst.name for inst in insts[:5])
    runs = [run for run in server.eviction_runs if run.evicted]
    assert [len(run.evicted) for run in runs] == [3, 2]
    assert runs[0].expired == 5 and runs[0].limit == 3 and runs[1].limit == 3
    assert len(times) == 5


def test_a_graceful_shutdown_cancels_at_once():
    world, _, registration, insts, view = _world(7)
    world.at(400.0, lambda: registration.shutdown(insts[0]))
    world.at(400.0 + 60.0, insts[0].stop)
    world.run(800.0)
    cancels = _times(world, "cancel", "orders-1")
    assert len(cancels) == 1 and 400.0 < cancels[0] <= 400.0 + RTT
    assert _times(world, "evict") == []
    assert max(_times(world, "renew", "orders-1")) < 400.0
    hidden = _times(world, "hidden", "orders-1", node="caller")
    assert len(hidden) == 1 and cancels[0] < hidden[0] <= cancels[0] + 90.0 + RTT
    assert "orders-1" not in view.instances


def test_a_hung_instance_keeps_renewing_and_stays_listed():
    """The heartbeat is a thread of its own: Eureka cannot see a hang."""
    world, _, _, insts, view = _world(8)
    world.at(400.0, insts[0].hang)
    world.run(1500.0)
    renewals = _times(world, "renew", "orders-1")
    assert sum(1 for t in renewals if t > 400.0) >= (1500.0 - 400.0) // 31
    assert _times(world, "evict") == []
    assert "orders-1" in view.instances


def test_a_restarted_instance_registers_again_within_one_renewal_interval():
    world, _, _, insts, _ = _world(9, enable_self_preservation=False, view=False)
    world.at(400.0, lambda: insts[0].crash(repair_after=500.0))
    world.run(1200.0)
    (evicted,) = _times(world, "evict", "orders-1")
    assert evicted < 900.0
    registers = _times(world, "register", "orders-1")
    assert len(registers) == 2
    assert 900.0 < registers[1] <= 900.0 + 30.0 + RTT


def test_a_crashed_server_forgets_and_the_instances_register_again_on_404():
    """Eureka keeps its registry in memory: after the restart every renewal gets a
    404 and the client registers again (DiscoveryClient.renew)."""
    world, server, _, insts, view = _world(10)
    world.at(300.0, lambda: server.crash(repair_after=20.0))
    world.run(700.0)
    assert server.registry.size == 10
    for inst in insts:
        again = [t for t in _times(world, "register", inst.name) if t > 300.0]
        assert len(again) == 1 and 320.0 < again[0] <= 320.0 + 30.0 + 2 * RTT
    assert sorted(view.instances) == sorted(inst.name for inst in insts)


def test_a_registry_outage_leaves_the_client_on_its_stale_list():
    world, server, _, insts, view = _world(11)
    world.at(300.0, server.crash)
    world.at(310.0, insts[0].crash)
    world.run(1000.0)
    assert "orders-1" in view.instances  # nobody can tell the client
    failed = [r for r in world.trace.discovery if r[1] == "lookup_failed"]
    assert failed and all(r[2] == "caller" and r[0] > 300.0 for r in failed)


def test_every_message_is_counted():
    """Each request and each reply: 2 per register, renew and fetch (no failures)."""
    world, *_ = _world(12, n=3)
    world.run(300.0)
    rows = world.trace.discovery
    registers = sum(1 for r in rows if r[1] == "register")
    renews = sum(1 for r in rows if r[1] == "renew")
    fetches = 1 + math.floor((300.0 - 0.0) / 30.0) + 1  # at most: start + one a period
    count = world.trace.counters[COUNTER]
    assert count % 2 == 0
    assert 2 * (registers + renews + 1) <= count <= 2 * (registers + renews + fetches)


def test_same_seed_same_trace_other_seed_other_phases():
    def run(seed):
        world, _, _, insts, _ = _world(seed, n=6)
        world.at(200.0, insts[2].crash)
        world.run(900.0)
        return list(world.trace.discovery)
    assert run(21) == run(21)
    assert run(21) != run(22)


def test_world_parameters_are_checked_before_time_zero():
    world = World(seed=1)
    with pytest.raises(ParamError) as err:
        EurekaServer(world, "eureka", eviction_interval=0)
    assert err.value.field == "eviction_interval"
    with pytest.raises(ParamError) as err:
        EurekaServer(world, "eureka", response_cache_update_interval=-1)
    assert err.value.field == "response_cache_update_interval"
    assert "eureka" not in world.nodes  # nothing half-built
    EurekaServer(world, "eureka")
    Instance(world, "other")
    caller = Instance(world, "caller")
    for bad in ("other", "nowhere", 3):
        with pytest.raises(ParamError) as err:
            EurekaView(world, caller, bad, "orders")
        assert err.value.field == "registry"
        with pytest.raises(ParamError) as err:
            EurekaRegistration(world, bad)
        assert err.value.field == "registry"
    for field in ("registry_fetch_interval", "server_list_refresh_interval", "timeout"):
        with pytest.raises(ParamError) as err:
            EurekaView(world, caller, "eureka", "orders", **{field: 0})
        assert err.value.field == field
    for field in ("renewal_interval", "lease_duration", "timeout"):
        with pytest.raises(ParamError) as err:
            EurekaRegistration(world, "eureka", **{field: True})
        assert err.value.field == field


def test_server_operations_answer_as_the_rest_resources():
    """404 for a renew or cancel of an unknown lease, 400 without an instance; a
    registrar's registration is recorded as third-party."""
    world = World(seed=2)
    EurekaServer(world, "eureka", use_read_only_response_cache=False)
    node = Instance(world, "registrar")
    answers = {}

    def go():
        for key, body in [
            ("renew_unknown", {"op": "renew", "service": "orders", "instance": "orders-1"}),
            ("cancel_unknown", {"op": "cancel", "service": "orders", "instance": "orders-1"}),
            ("no_instance", {"op": "register", "service": "orders"}),
            ("bad_duration", {"op": "register", "service": "orders", "instance": "orders-1",
                              "lease_duration": -5}),
            ("register", {"op": "register", "service": "orders", "instance": "orders-1",
                          "by": "third-party"}),
            ("renew", {"op": "renew", "service": "orders", "instance": "orders-1"}),
            ("query", {"op": "query", "service": "orders"}),
            ("cancel", {"op": "cancel", "service": "orders", "instance": "orders-1"}),
            ("query_after", {"op": "query", "service": "orders"}),
        ]:
            reply = yield from ask(node, "eureka", body, 5.0)
            answers[key] = (reply.status, reply.body)

    world.env.process(go())
    world.run(10.0)
    assert answers["renew_unknown"][0] == "not_found"
    assert answers["cancel_unknown"][0] == "not_found"
    assert answers["no_instance"][0] == "bad_request"
    assert answers["bad_duration"][0] == "bad_request"
    assert answers["register"][0] == answers["renew"][0] == "ok"
    assert answers["query"] == ("ok", {"instances": ("orders-1",), "index": 1, "ttl": None})
    assert answers["query_after"][1]["instances"] == ()
    events = [(r[1], r[5]) for r in world.trace.discovery]
    assert events == [("register", "third-party"), ("renew", ""), ("cancel", "")]


def test_the_lease_duration_the_instance_asks_for_is_used():
    """PeerAwareInstanceRegistryImpl.register: the registrant's LeaseInfo duration."""
    world, server, _, insts, _ = _world(13, n=10, view=False, reg_kw={"lease_duration": 40.0},
                                        lease_expiry_quirk=False)
    world.at(400.0, insts[0].crash)
    world.run(700.0)
    assert server.registry.lease("orders", "orders-2").duration == 40.0
    last = max(t for t in _times(world, "renew", "orders-1") if t <= 400.0)
    (evicted,) = _times(world, "evict", "orders-1")
    assert last + 40.0 < evicted <= last + 40.0 + 60.0


def test_ribbon_list_lags_the_client_cache():
    """Two timers: a fetch fills the client's cache, Ribbon's refresh copies it later."""
    world, _, registration, _, view = _world(
        14, n=2, view_kw={"registry_fetch_interval": 5.0,
                          "server_list_refresh_interval": 120.0},
        use_read_only_response_cache=False)
    late = Instance(world, "orders-9", service="orders")
    world.at(200.0, lambda: registration.start(late))
    seen_in_cache = []

    def watch():
        while "orders-9" not in (view.cache or ()):
            yield world.env.timeout(0.5)
        seen_in_cache.append(world.now)

    world.env.process(watch())
    world.run(500.0)
    (visible,) = _times(world, "visible", "orders-9", node="caller")
    assert 200.0 < seen_in_cache[0] <= 200.0 + 5.0 + 2 * RTT + 0.5
    assert seen_in_cache[0] < visible <= seen_in_cache[0] + 120.0


def test_self_preservation_is_on_at_start_up_until_renewals_flow():
    """No full minute of renewals yet: the server will not evict (the first rows
    of every run), then off once 2 a minute per instance arrive."""
    world, server, _, _, _ = _world(15, n=10, view=False)
    world.run(400.0)
    modes = [(r[0], r[5]) for r in world.trace.discovery if r[1] == "self_preservation"]
    assert [m for _, m in modes] == ["on", "off"]
    assert modes[0][0] < 60.0 and modes[1][0] <= 60.0 + 2 * 60.0 + 60.0
    assert not server.self_preservation


# -- the expected renewing clients: upstream's counter and the 15-minute recount ------------


def test_an_opened_registry_counts_from_its_seed_and_only_above_zero():
    """register / internalCancel change expectedNumberOfClientsSendingRenews only
    while it is > 0: a lone Netflix server (openForTraffic(0)) never counts, so its
    threshold stays 0 and nothing expires; Spring Cloud's seed 1 counts one too many."""
    netflix = EurekaRegistry(open_count=0)
    spring = EurekaRegistry(open_count=1)
    for reg in (netflix, spring):
        for i in range(10):
            reg.register("s", f"s-{i}", 0.0)
        reg.cancel("s", "s-0", 1.0)
    assert netflix.expected_clients == 0 and netflix.renews_threshold == 0
    assert spring.expected_clients == 10 and spring.renews_threshold == int(10 * 2 * 0.85)
    assert netflix.size == spring.size == 9
    assert not netflix.lease_expiration_enabled(1000.0)


def test_the_recount_sets_the_count_when_above_the_share_of_the_expectation():
    """updateRenewalThreshold: count > renewal_percent_threshold × expected (or
    self-preservation off) -> expected = count; it may raise the expectation at
    will but lower it by at most 15 % a run."""
    reg = EurekaRegistry(open_count=0)
    for i in range(10):
        reg.register("s", f"s-{i}", 0.0)
    assert reg.recount() and reg.expected_clients == 10 and reg.renews_threshold == 17
    reg.register("s", "s-10", 1.0)
    assert reg.expected_clients == 11  # counting again, from above 0
    peers = EurekaRegistry(open_count=100)  # seeded by 100 copied from a peer, then lost
    for i in range(5):
        peers.register("s", f"s-{i}", 0.0)
    assert not peers.recount() and peers.expected_clients == 105
    off = EurekaRegistry(open_count=100, enable_self_preservation=False)
    off.register("s", "s-0", 0.0)
    assert off.recount() and off.expected_clients == 1


def test_a_recounted_registry_emptied_sticks_at_zero_until_the_recount():
    reg = EurekaRegistry()  # recounted: the expectation is the leases
    for i in range(3):
        reg.register("s", f"s-{i}", 0.0)
    assert reg.expected_clients == 3
    for i in range(3):
        reg.cancel("s", f"s-{i}", 1.0)
    for i in range(3):
        reg.register("s", f"t-{i}", 2.0)
    assert reg.expected_clients == 0 and reg.renews_threshold == 0
    assert reg.recount() and reg.expected_clients == 3


def test_open_count_and_the_recount_period_are_checked():
    with pytest.raises(ParamError, match="open_count"):
        EurekaRegistry(open_count=-1)
    world = World(seed=1)
    with pytest.raises(ParamError, match="open_count"):
        EurekaServer(world, "e1", open_count=True)
    with pytest.raises(ParamError, match="renewal_threshold_update_interval"):
        EurekaServer(world, "e2", renewal_threshold_update_interval=0)


@pytest.mark.parametrize("open_count", [0, 1])
def test_a_restarted_server_keeps_a_dead_instance_until_its_first_recount(open_count):
    """The server restarts at 320 and opens with ``open_count`` expected clients:
    0 never counts up (threshold 0), 1 counts 11 for 10 instances (threshold 18,
    and one dead leaves 18 renewals a minute, not above it).  Either way the
    instance that crashes at 450 stays registered until the updateRenewalThreshold
    task, 15 min after the restart, recounts 10 -- then the next eviction run
    removes it."""
    world, server, _, insts, _ = _world(21, view=False, open_count=open_count)
    world.at(300.0, lambda: server.crash(repair_after=20.0))
    world.at(450.0, insts[0].crash)
    world.run(320.0 + 900.0 + 120.0)
    (evicted,) = [r[0] for r in world.trace.discovery
                  if r[1] == "evict" and r[4] == "orders-1" and r[5] == "expired"]
    assert 320.0 + 900.0 < evicted <= 320.0 + 900.0 + 60.0 + 1e-6
    assert server.registry.expected_clients == 9
    assert server.registry.renews_threshold == int(9 * 2 * 0.85)


def test_instances_renew_every_renewal_interval_from_a_phase_of_their_own():
    """REFERENCE §5: renewals every 30 s (the HeartbeatThread's next beat is
    scheduled when the last one returned, so a round trip later at most),
    each instance from its own phase in [0, 30) after registering."""
    world, _, _, insts, _ = _world(3, n=4, view=False)
    world.run(400.0)
    firsts = []
    for inst in insts:
        (registered,) = _times(world, "register", inst.name)
        renewals = _times(world, "renew", inst.name)
        gaps = np.diff(renewals)
        assert (gaps >= 30.0).all() and (gaps <= 30.0 + RTT).all()
        assert registered < renewals[0] < registered + 30.0 + RTT
        firsts.append(renewals[0] - registered)
    assert len({round(f, 3) for f in firsts}) == len(insts)


def test_each_fetch_shuffles_the_clients_list_as_the_eureka_client_does() -> None:
    """``Applications.shuffleInstances`` after every fetch: the same instances, a new
    order -- so round robin's start and a least-outstanding tie move around."""
    from simcomm.discovery.registry import ask as _ask

    world = World(seed=4)
    EurekaServer(world, "eureka")
    client = Instance(world, "client")
    names = [f"orders-{i}" for i in range(1, 7)]
    for name in names:
        Instance(world, name, service="orders")
        world.at(0.0, lambda name=name: world.env.process(_ask(
            client, "eureka", {"op": "register", "service": "orders", "instance": name}, 5.0)))
    view = EurekaView(world, client, "eureka", "orders")
    view.start()
    orders = []
    for t in range(100, 400, 30):
        world.run(float(t))
        orders.append(view.instances)
    assert all(sorted(o) == names for o in orders)
    assert len(set(orders)) > 3
