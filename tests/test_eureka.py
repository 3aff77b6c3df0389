"""Eureka (simcomm.discovery.eureka): the registry's rules as Netflix/eureka has them.

The pure :class:`EurekaRegistry` is checked against the upstream arithmetic
(``Lease``, ``MeasuredRate``, ``AbstractInstanceRegistry.evict``,
``PeerAwareInstanceRegistryImpl.isLeaseExpirationEnabled``,
``ResponseCacheImpl``) without a World.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.discovery.eureka import EurekaRegistry, Lease, MeasuredRate
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
@given(last=st.floats(0, 300), phase=st.floats(0, 60, exclude_max=True),
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
    t = phase
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
