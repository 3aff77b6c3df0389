"""Eureka: self-registration with leases, and a registry that forgets slowly.

This module follows Netflix Eureka (``Netflix/eureka``, eureka-core) and the
client side of Spring Cloud Netflix / Ribbon, with the timings of
``REFERENCE.md`` §5.  Every rule below is the upstream one; the class and
method each comes from is named where it is implemented.

The pure part, :class:`EurekaRegistry`, is the server's state: one lease per
registered instance, the renewals counted per minute, the self-preservation
rule and the eviction run with its cap, and the read-only response cache.
It takes the simulated time as an argument and draws nothing itself (the
eviction run takes a random stream), so it is tested without a World.
Around it, the parts that live on the network:

* :class:`EurekaServer` -- the registry as a node (a
  :class:`~simcomm.discovery.registry.RegistryServer`): register / renew /
  cancel / query, the eviction task and the response-cache timer;
* :class:`EurekaView` -- a caller's Eureka client cache and Ribbon's server
  list, each refreshed by its own timer;
* :class:`EurekaRegistration` -- self-registration: register at start,
  renew from a heartbeat thread, cancel on a clean shutdown, nothing on a
  crash.

Timeline of a crash without a cancel, with the defaults (quirk on)::

    last renewal r ── lease "expires" at r + 2 × 90 s (Lease.renew's quirk)
                   ── evicted by the next eviction run, ≤ 60 s later
                   ── read-only response cache refreshed, ≤ 30 s later
                   ── client fetch (registry-fetch-interval), ≤ 30 s later
                   ── Ribbon's ServerListRefreshInterval, ≤ 30 s later

so a client keeps calling the dead instance for up to about
180 + 60 + 30 + 30 + 30 = 330 s after its last renewal (minus the time
between that renewal and the crash).
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm._checks import is_flag, is_whole
from simcomm.discovery.registry import RegistryServer, View, ask, check_seconds, record
from simcomm.engine.nodes import Instance, Node, ServiceError
from simcomm.errors import ParamError
from simcomm.resilience._validate import check_real

if TYPE_CHECKING:
    from simcomm.engine.messages import Message
    from simcomm.engine.world import World

__all__ = [
    "EurekaRegistration",
    "EurekaRegistry",
    "EurekaServer",
    "EurekaView",
    "EvictionRun",
    "Lease",
    "MeasuredRate",
]


def _flag(field: str, value: object) -> bool:
    """``value`` as a bool if it is one (numpy's ``bool_`` too; 0 and 1 are not flags)."""
    if not is_flag(value):
        raise ParamError(field, value, "True or False")
    return bool(value)


class Lease:
    """One instance's lease, as ``com.netflix.eureka.lease.Lease``.

    ``registered`` is when the lease was created (``registrationTimestamp``);
    ``last_update`` is upstream's ``lastUpdateTimestamp``, the time expiry is
    measured from; ``last_renewal`` is when the last renewal really arrived
    (what upstream's ``getLastRenewalTimestamp`` claims to return, but does
    not: it returns ``last_update``).

    The quirk (``Lease.renew``): a renewal sets ``lastUpdateTimestamp =
    now + duration`` and ``isExpired`` tests ``now > lastUpdateTimestamp +
    duration``, so a renewed lease expires **two** durations after its last
    renewal (180 s with the default 90 s), while a lease never renewed since
    registration expires one duration after it (the constructor sets
    ``lastUpdateTimestamp`` to the registration time).  The javadoc of
    ``Lease.isExpired`` calls this "a minor bug [that] should only affect
    instances that ungracefully shutdown" and keeps it because fixing it
    would change every deployment's eviction timing ("Due to possible wide
    ranging impact to existing usage, this will not be fixed").
    ``quirk=False`` gives the documented rule: expiry one duration after the
    last renewal.
    """

    __slots__ = ("duration", "last_renewal", "last_update", "quirk", "registered")

    def __init__(self, now: float, duration: float, quirk: bool = True) -> None:
        self.registered = now
        self.last_update = now
        self.last_renewal = now
        self.duration = duration
        self.quirk = quirk

    def renew(self, now: float) -> None:
        """``Lease.renew``: ``lastUpdateTimestamp = now + duration`` (quirk) or ``now``."""
        self.last_renewal = now
        self.last_update = now + self.duration if self.quirk else now

    def expires_at(self, additional: float = 0.0) -> float:
        """The time after which :meth:`is_expired` is true (strictly after it)."""
        return self.last_update + self.duration + additional

    def is_expired(self, now: float, additional: float = 0.0) -> bool:
        """``Lease.isExpired(additionalLeaseMs)``: ``now > lastUpdate + duration + additional``.

        (Upstream also answers true for a cancelled lease; a cancelled lease
        is out of the registry here, so the case does not arise.)
        """
        return now > self.last_update + self.duration + additional


class MeasuredRate:
    """A count per full interval, as ``com.netflix.eureka.util.MeasuredRate``.

    Upstream keeps two buckets; a timer every ``sampleInterval`` (one minute
    for the renewals) moves the current bucket into the last one and zeroes
    the current one; ``getCount`` returns the LAST FULL bucket, not a sliding
    window.  The timer starts when the registry opens for traffic
    (``AbstractInstanceRegistry.postInit``), so bucket ``k`` covers
    ``[origin + k × interval, origin + (k + 1) × interval)``.  Here the buckets
    are rolled lazily from the time passed in, which gives the same counts
    without a timer process.  Before the first roll the count is 0.
    """

    __slots__ = ("_bucket", "_current", "_last", "interval", "origin")

    def __init__(self, interval: float = 60.0, origin: float = 0.0) -> None:
        self.interval = interval
        self.origin = origin
        self._bucket = self._index(origin)
        self._current = 0
        self._last = 0

    def _index(self, now: float) -> int:
        return math.floor((now - self.origin) / self.interval)

    def _roll(self, now: float) -> None:
        k = self._index(now)
        if k > self._bucket:
            self._last = self._current if k == self._bucket + 1 else 0
            self._current = 0
            self._bucket = k

    def increment(self, now: float) -> None:
        """``MeasuredRate.increment``: one more in the current interval."""
        self._roll(now)
        self._current += 1

    def count(self, now: float) -> int:
        """``MeasuredRate.getCount``: the count of the last full interval before ``now``."""
        self._roll(now)
        return self._last


@dataclass(frozen=True)
class EvictionRun:
    """What one run of the eviction task did (``AbstractInstanceRegistry.evict``).

    ``preserved`` is True when self-preservation stopped the run before it
    looked at any lease (``isLeaseExpirationEnabled()`` false); ``expired``
    counts the expired leases found, ``limit`` is the cap
    ``size − int(size × renewal_percent_threshold)`` and ``evicted`` lists
    the ``(service, instance)`` pairs removed, in the order they were drawn.
    ``compensation`` is the extra lease time allowed because the task ran
    late (``EvictionTask.getCompensationTimeMs``).
    """

    time: float
    preserved: bool
    expired: int
    limit: int
    evicted: tuple[tuple[str, str], ...]
    compensation: float


class EurekaRegistry:
    """The state of one Eureka server, as eureka-core's registry classes.

    Parameters (our name -- the real configuration key, its default):

    * ``lease_duration`` -- ``eureka.instance.lease-expiration-duration-in-seconds``
      (90 s): how long a lease lasts without a renewal (with the quirk, see
      :class:`Lease`, twice that after a renewal);
    * ``renewal_interval`` -- ``eureka.server.expected-client-renewal-interval-seconds``
      (30 s), the server's assumption about the clients'
      ``eureka.instance.lease-renewal-interval-in-seconds`` (30 s): it makes
      the expected renewals per minute ``60 / renewal_interval`` = 2 per
      instance;
    * ``renewal_percent_threshold`` -- ``eureka.server.renewal-percent-threshold``
      (0.85): the share of expected renewals below which the server stops
      evicting, and the share of the registry an eviction run must leave;
    * ``enable_self_preservation`` -- ``eureka.server.enable-self-preservation``
      (True);
    * ``eviction_interval`` -- ``eureka.server.eviction-interval-timer-in-ms``
      (60 s): the eviction task's period, used here for the compensation of a
      late run;
    * ``use_read_only_response_cache`` --
      ``eureka.server.use-read-only-response-cache`` (True): queries are
      answered from a snapshot refreshed by a timer
      (``eureka.server.response-cache-update-interval-ms``, 30 s; the timer is
      the server's, see :meth:`update_response_cache`);
    * ``lease_expiry_quirk`` -- no upstream switch (upstream always has it):
      False gives expiry one duration after the last renewal;
    * ``opened`` -- when the server opened for traffic
      (``PeerAwareInstanceRegistryImpl.openForTraffic``): the origin of the
      renewals-per-minute buckets;
    * ``open_count`` -- the count ``openForTraffic`` seeds
      ``expectedNumberOfClientsSendingRenews`` with (None: a server that has
      run a while, see below).

    **Self-preservation** (``PeerAwareInstanceRegistryImpl.isLeaseExpirationEnabled``):
    leases expire only if ``numberOfRenewsPerMinThreshold > 0`` and the
    renewals of the last full minute (:class:`MeasuredRate`) are strictly
    above it, where (``AbstractInstanceRegistry.updateRenewsPerMinThreshold``)
    ``threshold = int(expected_clients × (60 / renewal_interval) ×
    renewal_percent_threshold)``.  ``expected_clients``
    (``expectedNumberOfClientsSendingRenews``) goes up by one for each new
    lease (``register``) and down by one for each removed lease
    (``internalCancel``, which eviction calls too) -- both only while it is
    above 0 (``if (this.expectedNumberOfClientsSendingRenews > 0)``).
    ``openForTraffic`` seeds it with the registrations copied from peers: 0
    for a lone Netflix server (which therefore evicts nothing: threshold 0)
    and 1 for Spring Cloud's
    (``eureka.instance.registry.expected-number-of-clients-sending-renews``,
    one client too many); the ``updateRenewalThreshold`` task
    (``eureka.server.renewal-threshold-update-interval-ms``, 15 min,
    :meth:`recount`) sets it to the number of registered instances when
    that count is above ``renewal_percent_threshold`` × the expectation (or
    self-preservation is off) -- so it may raise the expectation freely but
    lower it by at most 15 % a run.  A registry made with ``open_count``
    None is one that has run a while: recounted, its expectation is the
    number of leases and follows each register and cancel (until they are
    all gone: then it is upstream's counter at 0); one made with a count (a
    restarted server, :class:`EurekaServer`) follows upstream's counter
    from that seed.

    A consequence worth seeing: one dead instance among ``n`` blocks all
    eviction when ``2 (n − 1) ≤ int(1.7 n)``, that is for ``n ≤ 6``.  Small
    registries keep their dead instances, which is why development setups
    switch self-preservation off.

    **Eviction** (``AbstractInstanceRegistry.evict``): if leases may expire,
    collect the expired ones, cap the run at ``size − int(size ×
    renewal_percent_threshold)`` (size = every lease of every service) and
    remove that many chosen at random (a partial Fisher–Yates shuffle, as
    upstream's "Knuth shuffle"), each as ``internalCancel``.
    """

    def __init__(self, *, lease_duration: float = 90.0, renewal_interval: float = 30.0,
                 renewal_percent_threshold: float = 0.85, enable_self_preservation: bool = True,
                 eviction_interval: float = 60.0, use_read_only_response_cache: bool = True,
                 lease_expiry_quirk: bool = True, opened: float = 0.0,
                 open_count: int | None = None) -> None:
        self.lease_duration = check_real("lease_duration", lease_duration, low_open=True,
                                         unit="seconds")
        self.renewal_interval = check_real("renewal_interval", renewal_interval, low_open=True,
                                           unit="seconds")
        self.renewal_percent_threshold = check_real(
            "renewal_percent_threshold", renewal_percent_threshold, low=0.0, high=1.0,
            unit="share of the expected renewals")
        self.enable_self_preservation = _flag("enable_self_preservation",
                                              enable_self_preservation)
        self.eviction_interval = check_real("eviction_interval", eviction_interval,
                                            low_open=True, unit="seconds")
        self.use_read_only_response_cache = _flag("use_read_only_response_cache",
                                                  use_read_only_response_cache)
        self.lease_expiry_quirk = _flag("lease_expiry_quirk", lease_expiry_quirk)
        opened_at = check_real("opened", opened, low=-math.inf, unit="seconds")
        if open_count is not None and (not is_whole(open_count) or open_count < 0):
            raise ParamError("open_count", open_count,
                             "None (recounted: the number of leases) or a whole number >= 0")
        #: False: ``expectedNumberOfClientsSendingRenews`` is upstream's counter,
        #: seeded with ``open_count``; True: recounted, the number of leases
        self._recounted = open_count is None
        self._expected = 0 if open_count is None else int(open_count)
        #: service -> instance -> lease (upstream's ``registry`` map of maps)
        self.leases: dict[str, dict[str, Lease]] = {}
        self._size = 0
        #: renewals per full minute (``renewsLastMin``)
        self.renews = MeasuredRate(60.0, opened_at)
        #: the read-only response cache: service -> listing as last copied
        self._read_only: dict[str, tuple[str, ...]] = {}
        self._last_eviction: float | None = None

    # -- leases --------------------------------------------------------
    @property
    def size(self) -> int:
        """Every lease of every service (``getLocalRegistrySize``)."""
        return self._size

    def lease(self, service: str, instance: str) -> Lease | None:
        """The lease of ``instance`` of ``service``, or None."""
        return self.leases.get(service, {}).get(instance)

    def register(self, service: str, instance: str, now: float,
                 duration: float | None = None) -> bool:
        """``AbstractInstanceRegistry.register``: a new lease; True if there was none.

        ``duration`` is the lease duration the instance asked for (its
        ``LeaseInfo.durationInSecs``, sent with the registration:
        ``PeerAwareInstanceRegistryImpl.register`` uses it when positive),
        else ``lease_duration``.  A re-registration replaces the lease with a
        fresh one (not renewed yet: it expires one duration after this
        registration) and does not change the expected renewals.
        """
        group = self.leases.setdefault(service, {})
        new = instance not in group
        length = duration if duration is not None and duration > 0 else self.lease_duration
        group[instance] = Lease(now, length, self.lease_expiry_quirk)
        if new:
            self._size += 1
            if not self._recounted and self._expected > 0:
                self._expected += 1
        return new

    def renew(self, service: str, instance: str, now: float) -> bool:
        """``AbstractInstanceRegistry.renew``: False if there is no lease (the 404
        that makes the client register again), else count it and renew."""
        lease = self.leases.get(service, {}).get(instance)
        if lease is None:
            return False
        self.renews.increment(now)
        lease.renew(now)
        return True

    def cancel(self, service: str, instance: str, now: float) -> bool:
        """``AbstractInstanceRegistry.internalCancel``: remove the lease; False if none.

        A client's cancel (graceful shutdown) and an eviction both come here.
        """
        group = self.leases.get(service)
        if group is None or group.pop(instance, None) is None:
            return False
        self._size -= 1
        if self._recounted:
            if not self._size:  # the expectation reached 0: upstream's counter sticks there
                self._recounted = False
                self._expected = 0
        elif self._expected > 0:
            self._expected -= 1
        return True

    # -- self-preservation ---------------------------------------------
    @property
    def expected_clients(self) -> int:
        """``expectedNumberOfClientsSendingRenews``: the number of leases once
        recounted, else upstream's counter (see the class docstring)."""
        return self._size if self._recounted else self._expected

    def recount(self) -> bool:
        """``PeerAwareInstanceRegistryImpl.updateRenewalThreshold`` (every 15 min):
        the registered instances are counted; when there are more than
        ``renewal_percent_threshold`` × the expectation, or self-preservation
        is off, the count becomes the expectation.  True if it did.

        Upstream counts the instances its own Eureka client fetched (the
        registry as the cluster serves it); here the leases held.
        """
        count = self._size
        if count > self.renewal_percent_threshold * self.expected_clients \
                or not self.enable_self_preservation:
            if not self._recounted:
                self._expected = count
            return True
        return False

    @property
    def renews_threshold(self) -> int:
        """``numberOfRenewsPerMinThreshold``, as ``updateRenewsPerMinThreshold``
        computes it (the same double arithmetic, truncated)."""
        return int(self.expected_clients * (60.0 / self.renewal_interval)
                   * self.renewal_percent_threshold)

    def renews_last_min(self, now: float) -> int:
        """``getNumOfRenewsInLastMin``: renewals counted in the last full minute."""
        return self.renews.count(now)

    def lease_expiration_enabled(self, now: float) -> bool:
        """``PeerAwareInstanceRegistryImpl.isLeaseExpirationEnabled``.

        Always True with self-preservation disabled; otherwise only when
        the threshold is positive and the last minute's renewals are
        strictly above it.
        """
        if not self.enable_self_preservation:
            return True
        threshold = self.renews_threshold
        return threshold > 0 and self.renews_last_min(now) > threshold

    def self_preservation(self, now: float) -> bool:
        """True while self-preservation stops eviction (the dashboard's red warning)."""
        return not self.lease_expiration_enabled(now)

    # -- eviction ------------------------------------------------------
    @property
    def eviction_limit(self) -> int:
        """The most one eviction run removes: ``size − int(size × threshold)``."""
        size = self._size
        return size - int(size * self.renewal_percent_threshold)

    def expired(self, now: float, additional: float = 0.0) -> list[tuple[str, str]]:
        """Every ``(service, instance)`` whose lease has expired, sorted by name."""
        return sorted((service, inst) for service, group in self.leases.items()
                      for inst, lease in group.items() if lease.is_expired(now, additional))

    def evict(self, now: float, rng: random.Random) -> EvictionRun:
        """One run of the eviction task (``EvictionTask.run`` → ``evict(compensation)``).

        The compensation is how much later than ``eviction_interval`` after
        the previous run this one runs, in whole milliseconds as upstream
        (0 for the first run): a run delayed
        by a pause gives every lease that much longer, so a pause of the
        server is not taken for silence of the clients.  The expired leases
        are collected in name order (upstream: hash-map order) and drawn with
        ``rng`` (upstream: ``new Random(currentTimeMillis)``).
        """
        last, self._last_eviction = self._last_eviction, now
        # whole milliseconds late, as upstream (TimeUnit.NANOSECONDS.toMillis): a
        # float's rounding in a timer's period is not lateness
        late = 0.0 if last is None else math.floor((now - last - self.eviction_interval) * 1e3)
        compensation = max(0.0, late / 1e3)
        limit = self.eviction_limit
        if not self.lease_expiration_enabled(now):
            return EvictionRun(now, True, 0, limit, (), compensation)
        expired = self.expired(now, compensation)
        to_evict = min(len(expired), limit)
        for i in range(to_evict):
            j = i + rng.randrange(len(expired) - i)
            expired[i], expired[j] = expired[j], expired[i]
            self.cancel(*expired[i], now)
        return EvictionRun(now, False, len(expired), limit, tuple(expired[:to_evict]),
                           compensation)

    # -- queries -------------------------------------------------------
    def listing(self, service: str) -> tuple[str, ...]:
        """The live (read-write) listing of ``service``: its leases, sorted by name.

        Upstream's read-write cache (``ResponseCacheImpl.readWriteCacheMap``)
        is invalidated on every register and cancel, so it always equals the
        registry; its 180 s auto-expiry changes nothing visible here.  An
        expired lease not yet evicted is still listed (``getApplication``
        does not look at expiry).
        """
        group = self.leases.get(service)
        return tuple(sorted(group)) if group else ()

    def query(self, service: str) -> tuple[str, ...]:
        """What a client's fetch of ``service`` gets (``ResponseCacheImpl.getValue``).

        With the read-only cache, the first query of a service copies the
        live listing into it; later queries get the copy until the cache
        timer refreshes it (:meth:`update_response_cache`).  Without it, the
        live listing.
        """
        if not self.use_read_only_response_cache:
            return self.listing(service)
        cached = self._read_only.get(service)
        if cached is None:
            cached = self._read_only[service] = self.listing(service)
        return cached

    def update_response_cache(self) -> list[str]:
        """The cache timer (``ResponseCacheImpl.getCacheUpdateTask``): refresh
        every service already in the read-only cache from the live listing.

        Returns the services whose cached listing changed.
        """
        changed = []
        for service, cached in self._read_only.items():
            live = self.listing(service)
            if live != cached:
                self._read_only[service] = live
                changed.append(service)
        return changed


# -- the server ----------------------------------------------------------------------------------
class EurekaServer(RegistryServer):
    """A Eureka server: an :class:`EurekaRegistry` behind the network.

    Operations (request bodies ``{"op": ..., "service": ..., "instance": ...}``,
    as Eureka's REST resources):

    * ``register`` (``POST /eureka/apps/{app}``, ``ApplicationResource.addInstance``):
      optional ``lease_duration`` (the instance's
      ``lease-expiration-duration-in-seconds``) and ``by`` (``self`` or
      ``third-party``, the detail of the ``register`` row);
    * ``renew`` (``PUT /eureka/apps/{app}/{id}``, ``InstanceResource.renewLease``):
      ``not_found`` (404) for an unknown instance, which makes the client
      register again;
    * ``cancel`` (``DELETE /eureka/apps/{app}/{id}``): ``not_found`` if unknown;
    * ``query`` (``GET /eureka/apps/{app}``): the listing through the read-only
      response cache (:meth:`EurekaRegistry.query`).

    Three periodic tasks, each with its own random phase: the eviction task
    every ``eviction_interval`` (``eureka.server.eviction-interval-timer-in-ms``,
    60 s; ``AbstractInstanceRegistry.EvictionTask``), the response cache
    refresh every ``response_cache_update_interval``
    (``eureka.server.response-cache-update-interval-ms``, 30 s;
    ``ResponseCacheImpl``'s timer, only with ``use_read_only_response_cache``),
    and the renewals-per-minute buckets (:class:`MeasuredRate`, rolled from the
    time, so without a process).  A fourth, the ``updateRenewalThreshold``
    task, recounts the expected renewing clients every
    ``renewal_threshold_update_interval``
    (``eureka.server.renewal-threshold-update-interval-ms``, 15 min;
    :meth:`EurekaRegistry.recount`).  The other parameters are
    :class:`EurekaRegistry`'s.

    A Eureka server keeps its registry in memory (``persistent`` False): a
    crash loses every lease; the instances' next renewals get 404 and they
    register again (``DiscoveryClient.renew``), so the registry refills within
    one renewal interval of the restart.  (A cluster would copy it from a
    peer at start-up, ``PeerAwareInstanceRegistryImpl.syncUp``; simcomm runs
    one server.)  Having synced nothing from a peer, a restarted server
    refuses registry fetches for ``wait_when_sync_empty`` (300 s,
    ``eureka.server.wait-time-in-ms-when-sync-empty``;
    ``PeerAwareInstanceRegistryImpl.shouldAllowAccess``, which the REST
    resource turns into 403): its queries are answered ``forbidden`` while
    the instances register again, so the clients keep their cached lists
    instead of taking an empty one.  Registrations, renewals and cancels
    are served meanwhile.  A restarted server also opens for traffic afresh
    (``openForTraffic``): its renewals-per-minute buckets start at the
    restart, and its expected renewing clients start from ``open_count``
    (Spring Cloud's ``eureka.instance.registry.expected-number-of-clients-sending-renews``,
    1; a lone Netflix server opens with the 0 instances it copied from no
    peer) and follow upstream's counter -- so with 0 it evicts nothing, and
    with 1 it expects one client too many, until the first recount 15 min
    after the restart.

    Rows written (``trace.discovery``): ``register`` (a new lease), ``renew``,
    ``cancel``, ``evict`` (detail ``expired``), ``self_preservation``
    (``on`` / ``off``, as judged at each eviction run: on while the last
    minute's renewals are at or below the threshold).  ``eviction_runs``
    keeps every run's :class:`EvictionRun`; ``self_preservation`` is the mode
    now.  The ``index`` of a service moves when what its queries answer
    changes (the read-only cache's copy, or the live listing without it).
    """

    kind = "eureka"
    persistent = False

    def __init__(self, world: World, name: str = "eureka", *, lease_duration: float = 90.0,
                 renewal_interval: float = 30.0, renewal_percent_threshold: float = 0.85,
                 enable_self_preservation: bool = True, eviction_interval: float = 60.0,
                 use_read_only_response_cache: bool = True,
                 response_cache_update_interval: float = 30.0,
                 lease_expiry_quirk: bool = True, wait_when_sync_empty: float = 300.0,
                 open_count: int = 1, renewal_threshold_update_interval: float = 900.0,
                 **instance_args: Any) -> None:
        self.wait_when_sync_empty = check_seconds("wait_when_sync_empty",
                                                  wait_when_sync_empty, zero=True)
        if not is_whole(open_count) or open_count < 0:
            raise ParamError("open_count", open_count, "a whole number >= 0 (the expected "
                             "renewing clients a restarted server opens with)")
        self.open_count = int(open_count)
        self.renewal_threshold_update_interval = check_seconds(
            "renewal_threshold_update_interval", renewal_threshold_update_interval)
        #: queries are refused until then (a restart that synced nothing)
        self.refuse_queries_until = -math.inf
        self._config: dict[str, Any] = {
            "lease_duration": lease_duration, "renewal_interval": renewal_interval,
            "renewal_percent_threshold": renewal_percent_threshold,
            "enable_self_preservation": enable_self_preservation,
            "eviction_interval": eviction_interval,
            "use_read_only_response_cache": use_read_only_response_cache,
            "lease_expiry_quirk": lease_expiry_quirk}
        self._rate_rng = world.stream(f"eureka:{name}:renews")
        #: the registry's state (replaced by a fresh one on a crash)
        self.registry = self._new_registry(world.env.now)  # checks the parameters
        self._config = {k: getattr(self.registry, k) for k in self._config}
        self.response_cache_update_interval = check_seconds(
            "response_cache_update_interval", response_cache_update_interval)
        super().__init__(world, name, **instance_args)
        self._pick_rng = world.stream(f"eureka:{name}:evict-pick")
        #: True while self-preservation stops eviction (as of the last run)
        self.self_preservation = False
        self.eviction_runs: list[EvictionRun] = []
        self.every(self.registry.eviction_interval, self._evict, f"eureka:{name}:evict")
        if self.registry.use_read_only_response_cache:
            self.every(self.response_cache_update_interval, self._refresh_cache,
                       f"eureka:{name}:cache")
        interval = self.renewal_threshold_update_interval
        #: when the updateRenewalThreshold task runs next (moved by a restart)
        self.recount_due = world.env.now + world.stream(
            f"eureka:{name}:recount").uniform(0.0, interval)
        self.env.process(self._recount_loop())

    def _new_registry(self, now: float, restarted: bool = False) -> EurekaRegistry:
        if restarted:
            # openForTraffic: the renewal buckets start now, the expectation is
            # seeded with open_count (nothing copied from a peer)
            return EurekaRegistry(**self._config, opened=now, open_count=self.open_count)
        # a server that has run a while: its renewal buckets started at some
        # point of a minute (the MeasuredRate timer starts when the server opens
        # for traffic), and its expectation has been recounted
        return EurekaRegistry(**self._config, opened=now - self._rate_rng.uniform(0.0, 60.0))

    # -- RegistryServer ---------------------------------------------------------------
    def listing(self, service: str) -> tuple[str, ...]:
        return self.registry.query(service)

    def op_query(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        if now < self.refuse_queries_until:
            raise ServiceError("registry access not allowed yet: started empty "
                               "(waitTimeInMsWhenSyncEmpty)", status="forbidden")
        return super().op_query(body, now)

    def handle(self, msg: Message) -> None:
        if self.env.now < self.refuse_queries_until:
            # no long poll to park: the worker answers forbidden at once
            Instance.handle(self, msg)
            return
        super().handle(msg)

    def restart(self) -> None:
        was_down = not self.up
        super().restart()
        if was_down and self.up:
            now = self.env.now
            self.refuse_queries_until = now + self.wait_when_sync_empty
            # the process starts afresh: openForTraffic now, the 15-minute
            # updateRenewalThreshold timer from now (its first run one period on)
            self.registry = self._new_registry(now, restarted=True)
            self.recount_due = now + self.renewal_threshold_update_interval

    def clear_state(self) -> None:
        """The crash lost every lease (kept in memory): each leaves the registry,
        recorded as ``evict`` with detail ``lost_in_crash`` for the timeline."""
        for service, group in sorted(self.registry.leases.items()):
            for name in sorted(group):
                record(self.world, self.name, "evict", service, name, "lost_in_crash")
        self.registry = self._new_registry(self.env.now, restarted=True)
        self.self_preservation = False

    def _live_changed(self, service: str) -> None:
        """The live listing changed: without the read-only cache, queries see it now."""
        if not self.registry.use_read_only_response_cache:
            self.changed(service)

    @staticmethod
    def _instance_of(body: dict[str, Any]) -> str:
        name = body.get("instance")
        if not isinstance(name, str) or not name:
            raise ServiceError("no instance named", status="bad_request")
        return name

    # -- operations -----------------------------------------------------------------------
    def op_register(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        service = self._service_of(body)
        name = self._instance_of(body)
        duration = body.get("lease_duration")
        if duration is not None and not (isinstance(duration, (int, float))
                                         and 0 < duration < math.inf):
            raise ServiceError("lease_duration must be seconds > 0", status="bad_request")
        if self.registry.register(service, name, now, duration):
            by = body.get("by", "self")
            record(self.world, self.name, "register", service, name,
                   by if by in ("self", "third-party") else "self")
            self._live_changed(service)
        return {"instance": name}

    def op_renew(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        service = self._service_of(body)
        name = self._instance_of(body)
        if not self.registry.renew(service, name, now):
            raise ServiceError(f"no lease for {name}", status="not_found")
        record(self.world, self.name, "renew", service, name)
        return {"instance": name}

    def op_cancel(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        service = self._service_of(body)
        name = self._instance_of(body)
        if not self.registry.cancel(service, name, now):
            raise ServiceError(f"no lease for {name}", status="not_found")
        record(self.world, self.name, "cancel", service, name)
        self._live_changed(service)
        return {"instance": name}

    # -- periodic tasks ---------------------------------------------------------------------
    def _evict(self, now: float) -> None:
        """The eviction task's run (``EvictionTask.run``)."""
        registry = self.registry
        run = registry.evict(now, self._pick_rng)
        self.eviction_runs.append(run)
        if registry.enable_self_preservation and run.preserved != self.self_preservation:
            self.self_preservation = run.preserved
            record(self.world, self.name, "self_preservation", None, None,
                   "on" if run.preserved else "off")
        for service, name in run.evicted:
            record(self.world, self.name, "evict", service, name, "expired")
        for service in sorted({service for service, _ in run.evicted}):
            self._live_changed(service)

    def _recount_loop(self) -> Generator[Event, Any, None]:
        """``PeerAwareInstanceRegistryImpl.scheduleRenewalThresholdUpdateTask``:
        :meth:`EurekaRegistry.recount` every ``renewal_threshold_update_interval``
        (``eureka.server.renewal-threshold-update-interval-ms``, 15 min) while
        the server is up and not hung; a restart starts the timer again."""
        env = self.env
        while True:
            yield env.timeout(max(0.0, self.recount_due - env.now))
            if env.now < self.recount_due:
                continue  # a restart moved it
            if self.up and not self.hung:
                self.registry.recount()
            self.recount_due += self.renewal_threshold_update_interval

    def _refresh_cache(self, now: float) -> None:
        """The read-only response cache's timer (``ResponseCacheImpl.getCacheUpdateTask``)."""
        for service in self.registry.update_response_cache():
            self.changed(service)


def _eureka_server(world: World, registry: object) -> str:
    """``registry`` if it names a :class:`EurekaServer` of ``world``, else a ParamError."""
    if not isinstance(registry, str) or not isinstance(world.nodes.get(registry), EurekaServer):
        servers = sorted(n for n, v in world.nodes.items() if isinstance(v, EurekaServer))
        raise ParamError("registry", registry,
                         "the name of a Eureka server: " + (", ".join(servers) or "none yet"))
    return registry


# -- the client's view: Eureka client cache + Ribbon's server list ------------------------------
class EurekaView(View):
    """A Eureka client's cache and Ribbon's server list, for one service.

    Two timers, each with its own random phase, as in a Spring Cloud Netflix
    client:

    * the Eureka client's ``CacheRefreshThread`` (``DiscoveryClient.refreshRegistry``)
      fetches the registry every ``registry_fetch_interval``
      (``eureka.client.registry-fetch-interval-seconds``, 30 s) into the
      client's local copy, :attr:`cache`;
    * Ribbon's ``PollingServerListUpdater`` copies that local copy into the
      load balancer's list (:attr:`instances`, what the balancer picks from)
      every ``server_list_refresh_interval`` (Ribbon's
      ``ServerListRefreshInterval``, 30 000 ms).

    At start the client fetches once at once (``DiscoveryClient``'s
    constructor does) and Ribbon fills its list from that first answer
    (``DynamicServerListLoadBalancer.restOfInit``).  Each fetch shuffles the
    instances (``Applications.shuffleInstances``), so Ribbon's list is in a
    new random order after each refresh.  A fetch that fails
    (``timeout`` s without an answer -- ``eureka.client.eureka-server-read-timeout-seconds``,
    8 s -- or an error) leaves the local copy as it was: the client keeps
    calling what it last knew (a ``lookup_failed`` row, when the owner is up).
    """

    def __init__(self, world: World, owner: Node, registry: str, service: str, *,
                 registry_fetch_interval: float = 30.0,
                 server_list_refresh_interval: float = 30.0, timeout: float = 8.0) -> None:
        _eureka_server(world, registry)
        super().__init__(world, owner, registry, service)
        self.registry_fetch_interval = check_seconds("registry_fetch_interval",
                                                     registry_fetch_interval)
        self.server_list_refresh_interval = check_seconds("server_list_refresh_interval",
                                                          server_list_refresh_interval)
        self.timeout = check_seconds("timeout", timeout)
        #: the Eureka client's local copy of the service's instances (None: never fetched),
        #: in the order of its last fetch: shuffled, as the Eureka client shuffles it
        self.cache: tuple[str, ...] | None = None
        self._shuffle = world.stream(f"eureka-client:{owner.name}:{service}:shuffle")

    def _start(self) -> None:
        self.env.process(self._fetch_loop())
        self.env.process(self._ribbon_loop())

    def _done(self) -> bool:
        return bool(getattr(self.owner, "stopped", False))

    def _fetch(self) -> Generator[Event, Any, None]:
        owner = self.owner
        up = owner.up
        reply = yield from ask(owner, self.registry, {"op": "query", "service": self.service},
                               self.timeout)
        if reply is not None and reply.status == "ok":
            # every fetch shuffles the instances (DiscoveryClient.filterAndShuffle /
            # updateDelta -> Applications.shuffleInstances), so the order Ribbon
            # gets -- where round robin starts, who wins a tie -- changes each time
            listing = list(reply.body["instances"])
            self._shuffle.shuffle(listing)
            self.cache = tuple(listing)
        elif up:
            record(self.world, owner.name, "lookup_failed", self.service, None,
                   "timeout" if reply is None else reply.status)

    def _fetch_loop(self) -> Generator[Event, Any, None]:
        env = self.env
        interval = self.registry_fetch_interval
        rng = self.world.stream(f"eureka:{self.owner.name}:{self.service}:fetch")
        yield from self._fetch()
        if self.cache is not None:
            self.update(self.cache)
        yield env.timeout(rng.uniform(0.0, interval))
        while not self._done():
            yield from self._fetch()
            yield env.timeout(interval)

    def _ribbon_loop(self) -> Generator[Event, Any, None]:
        env = self.env
        interval = self.server_list_refresh_interval
        rng = self.world.stream(f"eureka:{self.owner.name}:{self.service}:ribbon")
        yield env.timeout(rng.uniform(0.0, interval))
        while not self._done():
            if self.cache is not None:
                self.update(self.cache)
            yield env.timeout(interval)


# -- self-registration ---------------------------------------------------------------------------
class EurekaRegistration:
    """Self-registration with a Eureka client (``com.netflix.discovery.DiscoveryClient``).

    ``start(inst)``: the instance registers at once (Spring Cloud's
    ``EurekaAutoServiceRegistration`` marks it UP at start-up, which
    registers it on demand; the plain Netflix client would wait
    ``initial-instance-info-replication-interval-seconds``, 40 s), asking for
    a lease of ``lease_duration`` (``eureka.instance.lease-expiration-duration-in-seconds``,
    90 s).  Its ``HeartbeatThread`` then renews every ``renewal_interval``
    (``eureka.instance.lease-renewal-interval-in-seconds``, 30 s) from a random
    phase.  A renewal answered ``not_found`` (the server lost or evicted the
    lease) registers again at once (``DiscoveryClient.renew``); one that fails
    otherwise waits for the next beat.

    The heartbeat is a thread of its own: a **hung** instance (its request
    workers stuck) keeps renewing and stays registered -- Eureka cannot see
    a hang.  A **crash** stops the beats without a cancel: the lease runs
    out (two durations after the last renewal, with the quirk) and the
    eviction task removes it.  While the process is down the beat finds it
    so, and the first beat after it is up again registers it afresh (a
    restarted application registers at start-up; here within one
    ``renewal_interval`` of it).  ``shutdown(inst)``: cancel at once
    (``DiscoveryClient.shutdown`` → ``unregister``) and stop beating.
    ``machine_down``: nothing is sent.  ``timeout`` bounds each request
    (``eureka.client.eureka-server-read-timeout-seconds``, 8 s).
    """

    def __init__(self, world: World, registry: str, *, renewal_interval: float = 30.0,
                 lease_duration: float = 90.0, timeout: float = 8.0) -> None:
        self.world = world
        self.registry = _eureka_server(world, registry)
        self.renewal_interval = check_seconds("renewal_interval", renewal_interval)
        self.lease_duration = check_seconds("lease_duration", lease_duration)
        self.timeout = check_seconds("timeout", timeout)
        self._stopped: set[str] = set()

    def start(self, inst: Instance) -> None:
        """The instance's process is up: register, then renew on a schedule."""
        self._stopped.discard(inst.name)
        self.world.env.process(self._heartbeat(inst))

    def _register(self, inst: Instance) -> Generator[Event, Any, bool]:
        reply = yield from ask(inst, self.registry,
                               {"op": "register", "service": inst.service,
                                "instance": inst.name, "lease_duration": self.lease_duration,
                                "by": "self"}, self.timeout)
        return reply is not None and reply.status == "ok"

    def _heartbeat(self, inst: Instance) -> Generator[Event, Any, None]:
        env = self.world.env
        name = inst.name
        renew = {"op": "renew", "service": inst.service, "instance": name}
        registered = yield from self._register(inst)
        yield env.timeout(self.world.stream(f"eureka:{name}:renew").uniform(
            0.0, self.renewal_interval))
        while name not in self._stopped and not inst.stopped:
            if not inst.up:
                registered = False  # the process died: it registers again when it is back
            elif not registered:
                registered = yield from self._register(inst)
            else:
                reply = yield from ask(inst, self.registry, renew, self.timeout)
                if reply is not None and reply.status == "not_found" \
                        and name not in self._stopped:
                    registered = yield from self._register(inst)
            yield env.timeout(self.renewal_interval)

    def shutdown(self, inst: Instance) -> None:
        """A clean shutdown: cancel the lease now and stop renewing."""
        self._stopped.add(inst.name)
        self.world.env.process(ask(inst, self.registry,
                                   {"op": "cancel", "service": inst.service,
                                    "instance": inst.name}, self.timeout))

    def machine_down(self, inst: Instance) -> None:
        """The machine died with the instance: nothing is sent (the lease runs out)."""
        self._stopped.add(inst.name)
