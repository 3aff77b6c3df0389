"""Kubernetes-style discovery: node controller, kube-proxy sync, kubelet, API server, watch.

The timing tests derive their bounds from the configured periods
(``readiness_removal_bounds``, ``node_not_ready_bounds``,
``crash_removal_bounds``) plus the network latencies on the way.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.discovery.balancers import balancer
from simcomm.discovery.churn import Fleet
from simcomm.discovery.consul import ConsulServer
from simcomm.discovery.kubernetes import (
    NODE_MONITOR_GRACE_PERIOD,
    NODE_MONITOR_PERIOD,
    Kubelet,
    KubernetesApiServer,
    KubernetesView,
    NodeHealth,
    ProxySync,
    crash_removal_bounds,
    next_tick,
    node_not_ready_bounds,
    readiness_removal_bounds,
)
from simcomm.discovery.probe import ProbeSpec
from simcomm.discovery.router import Router
from simcomm.engine import Instance, World
from simcomm.engine.network import Link
from simcomm.errors import ParamError

LATENCY = 0.001  # one-way, every link


# -- pure: the node controller ---------------------------------------------------------------


def test_node_health_stamps_with_the_controllers_clock():
    """tryUpdateNodeHealth: a newer renew time stamps the node with the controller's
    now, so NotReady comes grace after the pass that SAW the renewal, not after it."""
    h = NodeHealth(grace=40.0)
    assert h.monitor(3.0, 5.0) is None  # renewed at 3, seen at 5: stamp 5
    assert h.stamp == 5.0
    assert h.monitor(3.0, 45.0) is None  # 45 is not strictly after 5 + 40
    assert h.ready
    assert h.monitor(3.0, 50.0) == "not_ready"
    assert h.monitor(3.0, 55.0) is None  # the transition is reported once
    assert not h.ready


def test_node_health_ready_again_when_the_lease_is_renewed():
    h = NodeHealth(grace=40.0)
    h.monitor(0.0, 0.0)
    assert h.monitor(0.0, 45.0) == "not_ready"
    assert h.monitor(0.0, 50.0) is None  # the same renew time: still lost
    assert h.monitor(49.0, 55.0) == "ready"
    assert h.stamp == 55.0


def test_node_health_first_seen_is_stamped_now():
    """"Missing timestamp for Node. Assuming now as a timestamp"."""
    h = NodeHealth(grace=40.0)
    assert h.monitor(None, 7.0) is None
    assert h.stamp == 7.0
    assert h.monitor(None, 47.0) is None
    assert h.monitor(None, 52.0) == "not_ready"


def test_node_health_restart_forgets_the_stamp_not_the_condition():
    h = NodeHealth(grace=40.0)
    h.monitor(1.0, 1.0)
    h.restarted()
    assert h.monitor(1.0, 100.0) is None  # stamped 100 afresh: no NotReady storm
    assert h.monitor(1.0, 141.0) == "not_ready"
    h.restarted()
    assert h.monitor(1.0, 200.0) is None  # an old renew time does not make it ready
    assert not h.ready


@settings(max_examples=200, deadline=None)
@given(frac=st.floats(0.0, 1.0, exclude_max=True), beat=st.floats(0.0, 10.0),
       period=st.sampled_from([1.0, 2.5, 5.0]), grace=st.sampled_from([10.0, 40.0, 41.5]))
def test_node_not_ready_within_bounds_of_the_last_renewal(frac, beat, period, grace):
    """Ticks every period from a phase, a last renewal at ``beat``: NotReady comes in
    [grace, grace + 2 × period] after it (node_not_ready_bounds)."""
    phase = frac * period
    h = NodeHealth(grace=grace)
    lo, hi = node_not_ready_bounds(grace, period)
    k = 0
    while True:
        now = phase + k * period
        k += 1
        seen = beat if now >= beat else None
        if h.monitor(seen, now) == "not_ready":
            break
    assert lo <= now - beat <= hi + 1e-9
    if (grace / period).is_integer():
        # a grace that is a whole number of periods: the strict "after" costs one more
        assert now - beat >= grace + period - 1e-9


def test_node_not_ready_bounds_defaults_and_errors():
    assert node_not_ready_bounds() == (40.0, 50.0)
    assert (NODE_MONITOR_GRACE_PERIOD, NODE_MONITOR_PERIOD) == (40.0, 5.0)
    with pytest.raises(ParamError, match="node_monitor_period"):
        node_not_ready_bounds(40.0, 0)
    with pytest.raises(ParamError, match="node_monitor_grace_period"):
        NodeHealth(grace=True)


# -- pure: kube-proxy, ticks, bounds ----------------------------------------------------------


def test_proxy_sync_bounded_frequency():
    s = ProxySync(1.0)
    assert s.due(3.0) == 3.0  # never ran: at once
    s.ran(3.0)
    assert s.due(3.4) == 4.0  # too soon: when the minimum period is over
    assert s.due(5.0) == 5.0
    assert ProxySync(0).due(7.0) == 7.0
    with pytest.raises(ParamError, match="proxy_sync"):
        ProxySync(-1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=30),
       st.floats(0.1, 5.0))
def test_proxy_sync_runs_spaced_and_no_change_waits_longer(changes, gap):
    """Every sync is at least min_sync_period after the last; every change is in the
    rules within min_sync_period of being seen (the view's scheduling, replayed)."""
    s = ProxySync(gap)
    runs: list[float] = []
    pending: float | None = None
    for t in sorted(changes):
        if pending is not None and pending <= t:
            runs.append(pending)
            s.ran(pending)
            pending = None
        if pending is None:
            due = s.due(t)
            assert t <= due <= t + gap
            if due == t:
                runs.append(t)
                s.ran(t)
            else:
                pending = due
    assert all(b - a >= gap - 1e-9 for a, b in itertools.pairwise(runs))


@given(st.floats(0.0, 1e5), st.floats(0.0, 10.0), st.floats(0.01, 10.0))
def test_next_tick_is_the_first_tick_after_now(now, phase, period):
    t = next_tick(now, phase, period)
    assert t > now
    assert t - period <= now
    k = (t - phase) / period
    assert abs(k - round(k)) < 1e-6 * max(1.0, k)


def test_removal_bounds_arithmetic():
    assert readiness_removal_bounds() == (21.0, 31.0)
    assert readiness_removal_bounds(5.0, 2.0, 1) == (2.0, 7.0)
    assert crash_removal_bounds() == (0.0, 2.0)
    assert readiness_removal_bounds(np.float64(10), np.int64(1), np.int64(3)) == (21.0, 31.0)
    with pytest.raises(ParamError, match="failure_threshold"):
        readiness_removal_bounds(10.0, 1.0, 0)
    with pytest.raises(ParamError, match="failure_threshold"):
        readiness_removal_bounds(10.0, 1.0, True)
    with pytest.raises(ParamError, match="period"):
        readiness_removal_bounds(math.inf)


# -- the World: a service of pods behind kube-proxy ------------------------------------------


@dataclass
class Cluster:
    w: World
    api: KubernetesApiServer
    fleet: Fleet
    router: Router
    view: KubernetesView


def cluster(seed: int = 1, n: int = 3, *, probe: ProbeSpec | None = None,
            trace: bool = True, **api_args) -> Cluster:
    """A world with an API server, ``n`` pods with kubelets and a kube-proxy router."""
    w = World(seed=seed, trace=trace, network=Link(latency=LATENCY))
    api = KubernetesApiServer(w, "k8s", **api_args)
    kubelet_args = {} if probe is None else {"probe": probe}
    fleet = Fleet(w, "orders", instances=n, registration=api.registration(**kubelet_args),
                  service_time=0.01, workers=2)
    router = Router(w, "orders-vip", service="orders")
    view = KubernetesView(w, router, "k8s", "orders")
    router.attach(view, balancer("random"))
    return Cluster(w, api, fleet, router, view)


def rows(w: World, event: str, instance: str | None = None, node: str | None = None):
    return [r for r in w.trace.discovery if r[1] == event
            and (instance is None or r[4] == instance) and (node is None or r[2] == node)]


def test_pods_join_the_endpoints_after_their_first_probe():
    """The pods running when the run begins are ready already (a steady state:
    their last probe passed); a pod launched later joins at its first good
    probe, within one period of its container's start.  Every ``ready`` row
    says why in trace.discovery's words: ``probe``."""
    c = cluster()
    w = c.w
    w.at(30.0, c.fleet.launch)  # orders-4, its container starts at 35 (startup 5 s)
    w.run(60)
    assert c.view.instances == ("orders-1", "orders-2", "orders-3", "orders-4")
    assert c.api.listing("orders") == c.view.instances
    for name in c.view.instances:
        ready = rows(w, "ready", name)
        assert len(ready) == 1 and ready[0][5] == "probe"
        if name != "orders-4":
            assert ready[0][0] <= 3 * LATENCY + 0.02
    # a probe every 10 s from a random phase: the first within one period
    (ready,) = rows(w, "ready", "orders-4")
    assert 35.0 < ready[0] <= 35.0 + 10.0 + 3 * LATENCY + 0.02


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_hung_pod_leaves_the_endpoints_within_the_readiness_bounds(seed):
    """failureThreshold consecutive failed probes: unready in
    [hang + (ft-1) × period + timeout, hang + ft × period + timeout] (+ latencies)."""
    c = cluster(seed)
    w = c.w
    hang_at = 100.0 + seed
    w.at(hang_at, lambda: c.fleet.hang("orders-2"))
    w.run(200)
    lo, hi = readiness_removal_bounds(10.0, 1.0, 3)
    (unready,) = rows(w, "unready", "orders-2")
    assert unready[5] == "probe"
    assert hang_at + lo - 0.05 <= unready[0] <= hang_at + hi + 0.05
    assert len(rows(w, "probe_failed", "orders-2")) >= 3
    (hidden,) = rows(w, "hidden", "orders-2", node="orders-vip")
    assert unready[0] <= hidden[0] <= unready[0] + 1.0 + 3 * LATENCY  # + proxy_sync
    assert "orders-2" not in c.view.instances
    assert w.nodes["orders-2"].up  # the container keeps running: readiness only


def test_custom_probe_spec_sets_the_bounds():
    spec = ProbeSpec(period=2.0, timeout=0.5, failure_threshold=2)
    c = cluster(5, probe=spec)
    w = c.w
    w.at(50.0, lambda: c.fleet.hang("orders-1"))
    w.run(80)
    lo, hi = readiness_removal_bounds(2.0, 0.5, 2)
    (unready,) = rows(w, "unready", "orders-1")
    assert 50.0 + lo - 0.05 <= unready[0] <= 50.0 + hi + 0.05


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crashed_container_leaves_at_the_next_relist(seed):
    c = cluster(seed)
    w = c.w
    w.at(100.0, lambda: c.fleet.crash("orders-3", restart_after=30.0))
    w.run(200)
    lo, hi = crash_removal_bounds(1.0, 1.0)
    unready = rows(w, "unready", "orders-3")
    assert unready[0][5] == "container_exit"
    assert 100.0 <= unready[0][0] <= 100.0 + 1.0 + 3 * LATENCY
    hidden = rows(w, "hidden", "orders-3", node="orders-vip")
    assert 100.0 + lo <= hidden[0][0] <= 100.0 + hi + 4 * LATENCY
    # restarted at 130: a new container, ready again at its first good probe
    ready = rows(w, "ready", "orders-3")
    assert len(ready) == 2
    assert 130.0 < ready[1][0] <= 130.0 + 1.0 + 10.0 + 1.0
    assert "orders-3" in c.view.instances


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_node_failure_is_noticed_after_the_grace_period(seed):
    """The kubelet dies with its machine: no more lease renewals; the node controller
    marks the node NotReady within node_not_ready_bounds of the last renewal."""
    c = cluster(seed)
    w = c.w
    w.at(200.0, lambda: c.fleet.node_failure("orders-1"))
    w.run(320)
    last_renew = max(r[0] for r in rows(w, "renew", "orders-1") if r[0] <= 200.0)
    lo, hi = node_not_ready_bounds(40.0, 5.0)
    (unready,) = rows(w, "unready", "orders-1")
    assert unready[5] == "node_not_ready"
    assert last_renew + lo <= unready[0] <= last_renew + hi + 1e-6
    assert c.api.node_ready("kubelet-orders-1") is False
    assert c.api.node_ready("kubelet-orders-2") is True
    assert not rows(w, "renew", "orders-1")[-1][0] > 200.0
    # meanwhile the router kept sending new connections to the dead pod
    dead = [r for r in w.trace.routes if r[4] == "orders-1" and r[0] > 200.0]
    assert all(r[7] != "ok" for r in dead)


def test_partitioned_node_leaves_after_the_grace_and_comes_back_after_the_heal():
    """A machine cut off from the control plane (kubelet and pod together): its lease
    is not renewed, so its pod leaves the endpoints after the grace period; once the
    partition heals the next renewal makes the node Ready and the pod is back."""
    c = cluster(6)
    w = c.w
    w.network.cut(["kubelet-orders-2", "orders-2"], at=100.0, heal_at=250.0)
    w.run(300)
    last_renew = max(r[0] for r in rows(w, "renew", "orders-2") if r[0] <= 100.0)
    lo, hi = node_not_ready_bounds()
    (unready,) = rows(w, "unready", "orders-2")
    assert unready[5] == "node_not_ready"
    assert last_renew + lo <= unready[0] <= last_renew + hi + 1e-6
    first_back = min(r[0] for r in rows(w, "renew", "orders-2") if r[0] > 250.0)
    (ready,) = [r for r in rows(w, "ready", "orders-2") if r[0] > 100.0]
    assert first_back < ready[0] <= first_back + NODE_MONITOR_PERIOD + 1e-6
    assert c.view.instances == ("orders-1", "orders-2", "orders-3")
    assert c.api.node_ready("kubelet-orders-2") is True


def test_graceful_shutdown_leaves_at_once():
    c = cluster(2)
    w = c.w
    w.at(60.0, lambda: c.fleet.shutdown("orders-2", drain=5.0))
    w.run(100)
    (unready,) = rows(w, "unready", "orders-2")
    assert unready[5] == "terminating"
    assert 60.0 <= unready[0] <= 60.0 + 2 * LATENCY + 0.02
    (hidden,) = rows(w, "hidden", "orders-2", node="orders-vip")
    assert hidden[0] <= 60.0 + 1.0 + 0.05
    assert "orders-2" not in c.view.instances
    assert len(rows(w, "probe_failed", "orders-2")) == 0  # probing stopped


def test_router_picks_at_random_and_does_not_retry():
    """kube-proxy: a uniformly random ready pod per connection, no other backend tried."""
    from simcomm.engine.nodes import Node

    c = cluster(3, n=4)
    w = c.w
    client = Node(w, "caller")
    sent: list[int] = []

    def fire() -> None:
        sent.append(1)
        client.request("orders-vip", {"op": "create"})

    for i in range(2000):
        w.at(30.0 + i * 0.05, fire)
    w.at(80.0, lambda: c.fleet.hang("orders-4", 60.0))  # stuck calls are reset at 140
    w.run(200)
    routes = [r for r in w.trace.routes if r[0] < 80.0]
    assert len(routes) == 1000
    counts = {n: sum(1 for r in routes if r[4] == n) for n in c.fleet.members}
    assert sum(counts.values()) == 1000
    for c in counts.values():  # binomial(1000, 1/4): sd ≈ 13.7; 5 sd
        assert abs(c - 250) < 70
    assert all(r[6] == 1 for r in w.trace.routes)  # attempt 1 only: no retry elsewhere
    stale = [r for r in w.trace.routes if r[4] == "orders-4" and r[0] >= 80.0]
    assert stale  # sent to the hung pod until the probes caught it
    assert max(r[0] for r in stale) <= 80.0 + 31.0 + 1.0 + 0.1


def test_api_server_outage_keeps_the_rules_and_resends_the_status():
    """The API server is down: watches fail (lookup_failed) and kube-proxy keeps its
    last rules; a pod status sent meanwhile is resent by the kubelet until taken."""
    c = cluster(4)
    w = c.w
    w.at(100.0, lambda: c.api.crash(repair_after=60.0))
    w.at(110.0, lambda: c.fleet.crash("orders-1", restart_after=500.0))
    w.run(200)
    assert rows(w, "lookup_failed", node="orders-vip")
    before = [r for r in rows(w, "hidden", node="orders-vip") if r[0] < 160.0]
    assert before == []  # nothing changed in the rules while the server was down
    (unready,) = rows(w, "unready", "orders-1")
    assert unready[5] == "container_exit"
    assert 160.0 <= unready[0] <= 160.0 + 10.0 + 0.1  # the next status resync
    assert "orders-1" not in c.view.instances
    assert c.api.listing("orders") == ("orders-2", "orders-3")  # etcd kept the rest


def test_messages_are_counted_untraced_and_the_run_is_deterministic():
    def run(seed: int, trace: bool):
        c = cluster(seed, trace=trace)
        w = c.w
        w.at(50.0, lambda: c.fleet.hang("orders-1", 40.0))
        w.at(70.0, lambda: c.fleet.node_failure("orders-2", replace_after=5.0))
        w.run(200)
        return w

    a, b = run(7, True), run(7, True)
    assert a.trace.discovery == b.trace.discovery
    assert a.trace.counters == b.trace.counters
    c = run(7, False)
    assert c.trace.discovery == []
    assert c.trace.counters == a.trace.counters
    assert a.trace.counters["discovery_messages"] > 0
    assert run(8, True).trace.discovery != a.trace.discovery
    # the replacement joined the endpoints
    assert "orders-4" in a.nodes["orders-vip"].client.view.instances  # type: ignore[attr-defined]


def test_bad_arguments_fail_before_time_zero():
    w = World(seed=1)
    with pytest.raises(ParamError, match="node_monitor_period"):
        KubernetesApiServer(w, "k", node_monitor_period=0)
    with pytest.raises(ParamError, match="node_monitor_grace_period"):
        KubernetesApiServer(w, "k", node_monitor_grace_period="40")
    api = KubernetesApiServer(w, "k8s")
    ConsulServer(w, "consul")
    inst = Instance(w, "orders-1", service="orders")
    with pytest.raises(ParamError, match="api"):
        Kubelet(w, inst, "consul")
    with pytest.raises(ParamError, match="instance"):
        Kubelet(w, "orders-1", "k8s")  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="probe"):
        Kubelet(w, inst, "k8s", probe=10)  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="pleg_period"):
        Kubelet(w, inst, "k8s", pleg_period=-1)
    with pytest.raises(ParamError, match="heartbeat_interval"):
        api.registration(heartbeat_interval=np.float64("nan"))
    with pytest.raises(ParamError, match="registry"):
        KubernetesView(w, inst, "consul", "orders")
    with pytest.raises(ParamError, match="proxy_sync"):
        KubernetesView(w, inst, "k8s", "orders", proxy_sync=True)
    kubelet = Kubelet(w, inst, "k8s")
    other = Instance(w, "orders-2", service="orders")
    with pytest.raises(ParamError, match="inst"):
        kubelet.start(other)


def test_a_restarted_container_keeps_the_probe_workers_run_of_results():
    """``worker.doProbe`` sets a new container's readiness to its initial value
    (Failure) but keeps the worker's ``lastResult`` / ``resultRun``: with
    ``successThreshold`` 3, a pod whose probes passed before its container
    crashed is ready again at the first good probe of the new container, not
    the third (a hung pod, whose run is of failures, still needs three)."""
    spec = ProbeSpec(period=2.0, timeout=0.5, success_threshold=3)
    c = cluster(3, probe=spec)
    w = c.w
    w.at(100.0, lambda: c.fleet.crash("orders-3", restart_after=25.0))
    w.at(100.0, lambda: c.fleet.hang("orders-1", 25.0))
    w.run(160)
    (exit_row,) = rows(w, "unready", "orders-3")
    assert exit_row[5] == "container_exit"
    back = [r for r in rows(w, "ready", "orders-3") if r[0] > 100.0]
    # the relist sees it running within 1 s, the next probe tick within 2 s more
    assert 125.0 < back[0][0] <= 125.0 + 1.0 + 2.0 + 0.5 + 3 * LATENCY
    # the hung pod: failures ran up to unready; after the hang, 3 successes in a row
    # (the first may be a probe sent within its timeout before the hang ended)
    unhung = [r for r in rows(w, "ready", "orders-1") if r[0] > 100.0]
    assert unhung[0][0] >= 125.0 - 0.5 + 2 * 2.0


def test_a_liveness_probe_restarts_a_hung_container():
    """REFERENCE §5: readiness takes a hung pod out of the endpoints and leaves
    it running; a liveness probe (10 s, 1 s, 3 failures) kills it after as many
    failures and the kubelet starts a new container at once (the first
    restart has no back-off), which rejoins at its first good readiness probe.
    A second hang is killed again, its restart after CrashLoopBackOff's 10 s."""
    w = World(seed=4, trace=True, network=Link(latency=LATENCY))
    api = KubernetesApiServer(w, "k8s")
    fleet = Fleet(w, "orders", instances=3, service_time=0.01, workers=2,
                  registration=api.registration(liveness=ProbeSpec()))
    router = Router(w, "orders-vip", service="orders")
    view = KubernetesView(w, router, "k8s", "orders")
    router.attach(view, balancer("random"))
    w.at(100.0, lambda: fleet.hang("orders-2", 1e6))
    w.at(200.0, lambda: fleet.hang("orders-2", 1e6))
    w.run(300)
    lo, hi = readiness_removal_bounds(10.0, 1.0, 3)
    inst = w.nodes["orders-2"]
    kills = [e for e in w.trace.events if e[1] == "orders-2" and e[2] == "crash"]
    restarts = [e[0] for e in w.trace.events if e[1] == "orders-2" and e[2] == "restart"]
    assert len(kills) == 2
    assert 100.0 + lo - 0.05 <= kills[0][0] <= 100.0 + hi + 0.05
    assert 200.0 + lo - 0.05 <= kills[1][0] <= 200.0 + hi + 0.05
    assert restarts == [kills[0][0], kills[1][0] + 10.0]
    assert inst.up and not inst.hung
    ready = [r[0] for r in rows(w, "ready", "orders-2")]
    assert any(restarts[0] < t <= restarts[0] + 1.0 + 10.0 + 1.0 for t in ready)
    assert "orders-2" in view.instances
    with pytest.raises(ParamError, match="liveness"):
        api.registration(liveness=ProbeSpec(success_threshold=2))
