"""Service discovery's analysis: instance states, stale calls, detection lag,
churn windows, registered / visible intervals and the lag's worked sum.

The pure functions of :mod:`simcomm.analysis.discovery` on hand-made tables
whose every number is worked out in the docstring; then small Worlds of
plain Instances with faults, whose routes rows are written by hand (the
discovery clients that write them are tested in their own files), read
through :class:`~simcomm.result.Result`.  The bounds of :func:`lag_bounds`
are checked against REFERENCE §5's figures and, with hypothesis, against a
model of the timers themselves (random phases, no World).
"""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from simcomm.analysis import discovery as dy
from simcomm.engine import ClosedLoop, Constant, Instance, World
from simcomm.engine.faults import Crash, Hang, install
from simcomm.engine.trace import DISCOVERY_COLUMNS, EVENT_COLUMNS, ROUTE_COLUMNS
from simcomm.errors import ParamError
from simcomm.result import DISCOVERY_KEYS, SUMMARY_HELP, SUMMARY_UNITS, Result


def events(*rows: tuple) -> pd.DataFrame:
    """An events table from (time, node, event[, detail]) rows."""
    return pd.DataFrame([(*r, "") if len(r) == 3 else r for r in rows],
                        columns=list(EVENT_COLUMNS))


def routes(*rows: tuple) -> pd.DataFrame:
    """A routes table from (time, instance[, outcome]) rows: caller ``gw``,
    service ``order``, via ``client``, attempt 1, ended 0.01 s later."""
    out = []
    for i, r in enumerate(rows):
        time, inst = r[0], r[1]
        outcome = r[2] if len(r) > 2 else ("ok" if inst is not None else "no_instance")
        out.append((time, i + 1, "gw", "order", inst, "client", 1, outcome, time + 0.01))
    return pd.DataFrame(out, columns=list(ROUTE_COLUMNS))


def states_of(df: pd.DataFrame, inst: str) -> list[tuple]:
    """(start, end, state, event) of one instance."""
    sub = df[df["instance"] == inst]
    return list(zip(sub["start"], sub["end"], sub["state"], sub["event"], strict=True))


# -- instance states ---------------------------------------------------------------------

def test_a_life_from_launch_to_stop_goes_through_every_state():
    """Launched at 0 to start at 5; hung 10-12; crashed at 20, restarted at 25;
    drained at 30 and stopped at 40: each event begins the state it leads to."""
    ev = events((0, "a", "launch", "starts at 5"), (5, "a", "start"), (10, "a", "hang"),
                (12, "a", "unhang"), (20, "a", "crash", "restart after 5"),
                (25, "a", "restart"), (30, "a", "drain", "10"), (40, "a", "stop"),
                (41, "a", "restart"))  # nothing after a stop
    assert states_of(dy.instance_states(ev, until=50), "a") == [
        (0, 5, "starting", "launch"), (5, 10, "serving", "start"), (10, 12, "hung", "hang"),
        (12, 20, "serving", "unhang"), (20, 25, "down", "crash"),
        (25, 30, "serving", "restart"), (30, 40, "draining", "drain"),
        (40, 50, "stopped", "stop")]


def test_an_instance_without_launch_served_from_time_zero_and_others_are_left_out():
    """A plain instance that crashes at 3 was serving 0-3; a node with no
    lifecycle event (a partition, a slowdown) is not listed; the end is inf
    without ``until``."""
    ev = events((1, "network", "partition", "a|b"), (2, "b", "slowdown", "x2"),
                (3, "b", "crash"))
    df = dy.instance_states(ev)
    assert states_of(df, "b") == [(0, 3, "serving", "initial"), (3, math.inf, "down", "crash")]
    assert set(df["instance"]) == {"b"}
    assert list(df.columns) == ["instance", "start", "end", "state", "event"]
    assert dy.instance_states(events()).empty


def test_a_node_failure_and_its_crash_are_one_down_begun_by_the_node_failure():
    ev = events((7, "a", "node_failure", "replace after 30"), (7, "a", "crash"))
    assert states_of(dy.instance_states(ev, 9), "a") == [
        (0, 7, "serving", "initial"), (7, 9, "down", "node_failure")]


def test_a_crash_during_a_hang_keeps_the_hang_as_the_death():
    """The engine writes ``unhang`` "ended by crash" then ``crash``: the
    instance goes from hung to down, never serving in between."""
    ev = events((2, "a", "hang"), (5, "a", "unhang", "ended by crash"), (5, "a", "crash"),
                (8, "a", "restart"))
    df = dy.instance_states(ev, 10)
    assert states_of(df, "a") == [(0, 2, "serving", "initial"), (2, 5, "hung", "hang"),
                                  (5, 8, "down", "crash"), (8, 10, "serving", "restart")]
    d = dy.deaths(df)
    assert d.values.tolist() == [["a", 2.0, "hang", 8.0]]


def test_a_drain_leaves_a_dead_instance_dead_and_a_drained_one_never_serves_again():
    """Hung at 2, drained at 3 (still hung: no answer), unhung at 4 (answers
    again, but is leaving: draining), stopped at 6 -- one death, the hang's,
    ended at 4."""
    ev = events((2, "a", "hang"), (3, "a", "drain", "3"), (4, "a", "unhang"),
                (6, "a", "stop"))
    df = dy.instance_states(ev, 10)
    assert states_of(df, "a") == [(0, 2, "serving", "initial"), (2, 4, "hung", "hang"),
                                  (4, 6, "draining", "unhang"), (6, 10, "stopped", "stop")]
    assert dy.deaths(df).values.tolist() == [["a", 2.0, "hang", 4.0],
                                             ["a", 6.0, "stop", 10.0]]


def test_changes_at_one_time_leave_the_last_and_launch_then_start_is_serving():
    ev = events((0, "a", "launch", "starts at 0"), (0, "a", "start"), (4, "a", "hang"),
                (4, "a", "unhang"), (6, "a", "stop", "already down"))
    assert states_of(dy.instance_states(ev, 10), "a") == [
        (0, 6, "serving", "start"), (6, 10, "stopped", "stop")]


# -- routes, deaths, detection ------------------------------------------------------------

def crash_world_states() -> pd.DataFrame:
    """a: crashed at 10, restarted at 20, crashed at 30 for good; b: launched
    at 1 to start at 5 (a replacement); c: never an event (serving all along)."""
    ev = events((1, "b", "launch", "starts at 5"), (5, "b", "start"),
                (10, "a", "crash", "restart after 10"), (20, "a", "restart"),
                (30, "a", "crash"))
    return dy.instance_states(ev, until=60)


def test_a_call_is_stale_when_its_instance_was_starting_or_dead_when_it_was_sent():
    """Sent at 9 (a serving), 10 (a just crashed: the change at 10 counts),
    15 (a down), 21 (a restarted), 2 (b starting), 6 (b serving), 3 (c, never
    an event: serving), 40 (none found)."""
    r = routes((9, "a"), (10, "a"), (15, "a"), (21, "a"), (2, "b"), (6, "b"), (3, "c"),
               (40, None))
    out = dy.routes_with_state(r, crash_world_states())
    assert out["state"].tolist() == ["serving", "down", "down", "serving", "starting",
                                     "serving", "serving", None]
    assert out["stale"].tolist() == [False, True, True, False, True, False, False, False]
    assert out["trace_id"].dtype == "Int64"
    assert list(out.columns) == [*ROUTE_COLUMNS, "state", "stale"]
    # the rows keep their order, and tuples work as well as a DataFrame
    same = dy.routes_with_state(list(r.itertuples(index=False, name=None)),
                                crash_world_states())
    pd.testing.assert_frame_equal(same, out)


def test_detection_lag_is_the_last_call_sent_to_a_dead_instance_after_its_death():
    """a's first death (10-20) got calls at 10 and 15: lag 5; its second
    (30, for good) calls at 31 and 44.5: lag 14.5; a call after the restart
    (21) is not stale.  A death nobody called after has lag 0."""
    r = routes((10, "a"), (15, "a"), (21, "a"), (31, "a"), (44.5, "a"), (50, None))
    ev = events((10, "a", "crash", "restart after 10"), (20, "a", "restart"),
                (30, "a", "crash"), (12, "z", "hang"))
    st_ = dy.instance_states(ev, until=60)
    det = dy.detection(r, st_)
    assert list(det.columns) == ["instance", "died", "kind", "stale_calls",
                                 "last_stale_call", "lag"]
    assert det.drop(columns="last_stale_call").values.tolist() == [
        ["a", 10.0, "crash", 2, 5.0], ["a", 30.0, "crash", 2, 14.5], ["z", 12.0, "hang", 0, 0.0]]
    assert det["last_stale_call"].tolist()[:2] == [15.0, 44.5]
    assert math.isnan(det["last_stale_call"][2])
    assert dy.detection(routes(), st_)["lag"].tolist() == [0.0, 0.0, 0.0]


def test_churn_windows_end_a_death_for_good_at_its_detection():
    """b starting 1-5; a down 10-20; a down for good from 30, last called at
    44.5: windows [1, 5), [10, 20), [30, 44.5).  A draining instance is churn;
    the first deployment (starting from time 0) is not."""
    st_ = crash_world_states()
    det = dy.detection(routes((44.5, "a")), st_)
    assert dy.churn_windows(st_, det) == [(1.0, 5.0), (10.0, 20.0), (30.0, 44.5)]
    # without calls the death for good is a point: no window
    assert dy.churn_windows(st_) == [(1.0, 5.0), (10.0, 20.0)]
    first = dy.instance_states(events((0, "f", "launch", "starts at 5"), (5, "f", "start")),
                               until=9)
    assert dy.churn_windows(first) == []
    drain = dy.instance_states(events((3, "d", "drain", "2"), (5, "d", "stop"),
                                      (4, "e", "hang")), until=9)
    # d draining 3-5 is churn; its stop and e's hang for good, never called: points
    assert dy.churn_windows(drain) == [(3.0, 5.0)]


def test_discovery_keys_on_a_hand_made_run():
    """Calls: 9 ok, 10 and 15 stale (a down), 21 ok, 2 stale (b starting), 6
    ok, 44.5 stale (a down for good), 50 none found: 7 routed, 4 stale.
    Deaths: a at 10 (lag 5), a at 30 (lag 14.5): mean 9.75.  Windows [1, 5),
    [10, 20), [30, 44.5): the user requests starting at 1 (ok), 12 (reset),
    31 (ok) and 44 (pending) are inside -- 2 answered of 3 finished --, 25
    (refused) is not.  120 discovery messages in 60 s: 2 per second."""
    st_ = crash_world_states()
    r = dy.routes_with_state(routes((9, "a"), (10, "a"), (15, "a"), (21, "a"), (2, "b"),
                                    (6, "b"), (44.5, "a"), (50, None)), st_)
    req = pd.DataFrame({"start": [1.0, 12.0, 25.0, 31.0, 44.0],
                        "outcome": ["ok", "reset", "refused", "fallback", "pending"]})
    keys = dy.discovery_keys(r, st_, req, 120, 60.0)
    assert keys == {"routed_calls": 7, "stale_calls": 4, "stale_share": 4 / 7,
                    "detection_lag": 9.75, "registry_messages_per_s": 2.0,
                    "availability_during_churn": 2 / 3, "no_instance_calls": 1}
    assert tuple(keys) == DISCOVERY_KEYS
    calm = dy.discovery_keys(dy.routes_with_state(routes(), st_.iloc[:0]), st_.iloc[:0],
                             req.iloc[:0], 0, 10.0)
    assert math.isnan(calm["stale_share"]) and math.isnan(calm["detection_lag"])
    assert math.isnan(calm["availability_during_churn"])


# -- registered and visible ---------------------------------------------------------------

def test_registered_runs_from_register_passing_ready_to_the_next_removal():
    """Eureka: a registered at 1, renewed, evicted at 200; Consul: b
    registered at 2, critical at 40, passing at 50, still in at the end (90);
    Kubernetes: c ready at 3, unready at 30.  A row about no instance
    (self-preservation) is ignored."""
    rows = [(1, "register", "eureka", "order", "a", "self"), (31, "renew", "eureka", "order",
                                                              "a", ""),
            (200, "evict", "eureka", "order", "a", "expired"),
            (2, "register", "consul", "order", "b", "self"),
            (40, "critical", "consul", "order", "b", "ttl"),
            (50, "passing", "consul", "order", "b", ""),
            (3, "ready", "k8s", "order", "c", "probe"),
            (30, "unready", "k8s", "order", "c", "probe"),
            (60, "self_preservation", "eureka", "order", None, "on")]
    df = dy.registered_intervals(rows, until=250)
    assert df.values.tolist() == [["a", "eureka", 1.0, 200.0], ["b", "consul", 2.0, 40.0],
                                  ["c", "k8s", 3.0, 30.0], ["b", "consul", 50.0, 250.0]]
    assert list(df.columns) == ["instance", "registry", "start", "end"]


def test_visible_is_in_at_least_one_view():
    """gw-1 sees a 5-20, gw-2 sees a 10-30 and 40 to the end: visible 5-30 and
    40-50; by owner, one row per view's interval."""
    rows = pd.DataFrame([(5, "visible", "gw-1", "order", "a", ""),
                         (10, "visible", "gw-2", "order", "a", ""),
                         (20, "hidden", "gw-1", "order", "a", ""),
                         (30, "hidden", "gw-2", "order", "a", ""),
                         (35, "lookup_failed", "gw-2", "order", None, "timeout"),
                         (40, "visible", "gw-2", "order", "a", "")],
                        columns=list(DISCOVERY_COLUMNS))
    assert dy.visible_intervals(rows, 50).values.tolist() == [["a", 5.0, 30.0],
                                                              ["a", 40.0, 50.0]]
    owners = dy.visible_intervals(rows, 50, by_owner=True)
    assert owners.values.tolist() == [["a", "gw-1", 5.0, 20.0], ["a", "gw-2", 10.0, 30.0],
                                      ["a", "gw-2", 40.0, 50.0]]
    with pytest.raises(ParamError, match="by_owner"):
        dy.visible_intervals(rows, by_owner=1)


# -- the worked sum ----------------------------------------------------------------------

def test_eureka_defaults_give_reference_figures_term_by_term():
    """REFERENCE §5: renew every 30 s, lease 90 s with the quirk (expiry
    2 × 90 after the last renewal), eviction every 60 s, response cache,
    client fetch and Ribbon refresh every 30 s: 150 .. 330 s, mean 240 s."""
    b = dy.lag_bounds("eureka")
    assert [t.name for t in b.terms] == ["lease expiry", "eviction wait", "response cache",
                                         "client fetch", "ribbon refresh"]
    assert [tuple(t[1:]) for t in b.terms] == [(150, 180, 165), (0, 60, 30), (0, 30, 15),
                                                (0, 30, 15), (0, 30, 15)]
    assert (b.lower, b.upper, b.mean) == (150, 330, 240)
    assert "2 × lease_duration 90" in b.formulas[0] and "renewal_interval 30" in b.formulas[0]
    assert "eviction_interval 60" in b.formulas[1]
    assert "ServerListRefreshInterval 30" in b.formulas[4]
    text = str(b)
    assert text.splitlines()[-1].split() == ["total", "150", "..", "330", "(mean", "240)"]
    table = b.table()
    assert table["term"].tolist()[-1] == "total"
    assert table["upper"].iloc[:-1].sum() == table["upper"].iloc[-1] == 330


def test_eureka_without_the_quirk_or_its_caches():
    """Without the quirk the lease expires one duration after the last
    renewal (60 .. 90); no read-only cache and a client that asks per call
    (fetch and refresh 0) leave lease + eviction: 60 .. 150, mean 105."""
    b = dy.lag_bounds("eureka", lease_expiry_quirk=False, use_read_only_response_cache=False,
                      registry_fetch_interval=0, server_list_refresh_interval=0)
    assert b.terms[0][1:] == (60, 90, 75)
    assert (b.lower, b.upper, b.mean) == (60, 150, 105)
    assert math.isinf(dy.lag_bounds("eureka", fault="hang").upper)


def test_eureka_registrar_detects_by_probes_then_the_caches_follow():
    """A registrar probing every 10 s, three failures: a crash is known 20 ..
    30 s after (refused at once), a hang 21 .. 31 (+ timeout 1); then 0 .. 90
    of caches; latency 0.001 adds 5 trips for a crash."""
    crash = dy.lag_bounds("eureka", registration="registrar", latency=0.001)
    assert (crash.lower, crash.upper) == pytest.approx((20.005, 120.005))
    hang = dy.lag_bounds("eureka", registration="registrar", fault="hang")
    assert (hang.lower, hang.upper, hang.mean) == (21, 121, 71)


def test_consul_ttl_and_http_checks():
    """TTL 30 s passed every 20 s (ttl × 2/3): critical 10 .. 30 s after the
    crash, answered to the blocking query at once (+1 latency).  An HTTP
    check every 10 s: 0 .. 10 for a crash, + the 10 s timeout for a hang."""
    ttl = dy.lag_bounds("consul", latency=0.002)
    assert (ttl.lower, ttl.upper, ttl.mean) == pytest.approx((10.002, 30.002, 20.002))
    assert "heartbeat_interval 20" in ttl.formulas[0]
    assert dy.lag_bounds("consul", ttl=15, heartbeat_interval=5).lower == 10
    http = dy.lag_bounds("consul", check="http")
    assert (http.lower, http.upper) == (0, 10)
    assert (dy.lag_bounds("consul", check="http", fault="hang").upper) == 20
    assert math.isinf(dy.lag_bounds("consul", fault="hang").lower)
    with pytest.raises(ParamError, match="heartbeat_interval"):
        dy.lag_bounds("consul", ttl=10, heartbeat_interval=20)


def test_kubernetes_crash_hang_and_node_failure():
    """Crash: PLEG relist 0 .. 1 + kube-proxy 0 .. 1.  Hang: the readiness
    probe's (3 − 1) × 10 + 1 .. 3 × 10 + 1 (the contract's test bound) +
    kube-proxy.  Node failure: lease 0 .. 10 s old, grace 40, the controller
    sees the renewal 0 .. 5 s after it and marks the node at the first pass
    strictly 40 s after that (5 s more on its 5 s grid): 35 .. 50 after the
    failure, + kube-proxy."""
    assert (dy.lag_bounds("kubernetes").lower, dy.lag_bounds("kubernetes").upper) == (0, 2)
    hang = dy.lag_bounds("kubernetes", fault="hang")
    probes = [t for t in hang.terms if t.name != "kube-proxy sync"]
    assert math.fsum(t.lo for t in probes) == (3 - 1) * 10 + 1
    assert math.fsum(t.hi for t in probes) == 3 * 10 + 1
    assert (hang.lower, hang.upper, hang.mean) == (21, 32, 26.5)
    node = dy.lag_bounds("kubernetes", fault="node_failure")
    assert (node.lower, node.upper, node.mean) == (35, 51, 43)
    assert "node_monitor_grace_period 40" in node.formulas[1]
    assert "9 × node_monitor_period 5" in node.formulas[3]
    # a grace that is no multiple of the period: the first pass after it is 3 s later
    odd = dy.lag_bounds("kubernetes", fault="node_failure", node_monitor_grace_period=42)
    assert (odd.lower, odd.upper) == (35, 51)


@settings(max_examples=150, deadline=None)
@given(beat=st.sampled_from([2.0, 10.0]), period=st.sampled_from([1.0, 5.0, 7.0]),
       grace=st.sampled_from([20.0, 40.0, 42.0]), u=st.floats(0, 1, exclude_max=True),
       v=st.floats(0, 1, exclude_max=True), w=st.floats(0, 1, exclude_max=True))
@example(beat=10.0, period=5.0, grace=40.0, u=0.0, v=0.999, w=0.0)  # seen just late
def test_node_failure_bounds_hold_the_node_controller(beat, period, grace, u, v, w):
    """The kubelet renews at r_j = phase + j × beat, the machine dies a
    random time after the last renewal; the node controller
    (:class:`NodeHealth`, the simulator's own rule) passes every ``period``
    from its own phase.  The time from the failure to the NotReady pass is
    within lag_bounds' node-failure terms (no latency, no kube-proxy)."""
    from simcomm.discovery.kubernetes import NodeHealth

    phase_beat, phase_monitor = u * beat, v * period
    last = phase_beat + 20 * beat  # the last renewal
    failure = last + w * beat
    health = NodeHealth(grace)
    t = phase_monitor
    while True:
        seen = None if t < phase_beat else phase_beat + math.floor(
            (min(t, last) - phase_beat) / beat) * beat
        if health.monitor(seen, t) == "not_ready":
            break
        t += period
    b = dy.lag_bounds("kubernetes", fault="node_failure", heartbeat_interval=beat,
                      node_monitor_period=period, node_monitor_grace_period=grace,
                      proxy_sync=0)
    assert b.lower - 1e-6 <= t - failure <= b.upper + 1e-6


def test_dns_probes_then_the_cached_answer():
    """Route 53's health checks (every 30 s, 3 failures): 60 .. 90; a 60 s
    TTL: 0 .. 60; a hang adds the check's 4 s."""
    b = dy.lag_bounds("dns")
    assert (b.lower, b.upper, b.mean) == (60, 150, 105)
    assert dy.lag_bounds("dns", fault="hang").upper == 154
    assert (dy.lag_bounds("dns", ttl=5, period=1, failure_threshold=1).upper) == 6


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"registry": "zookeeper"}, "registry"),
    ({"registry": "eureka", "fault": "slow"}, "fault"),
    ({"registry": "eureka", "ttl": 30}, "ttl"),
    ({"registry": "eureka", "lease_duration": 0}, "lease_duration"),
    ({"registry": "eureka", "renewal_interval": True}, "renewal_interval"),
    ({"registry": "eureka", "eviction_interval": math.inf}, "eviction_interval"),
    ({"registry": "eureka", "lease_expiry_quirk": 1}, "lease_expiry_quirk"),
    ({"registry": "eureka", "registration": "agent"}, "registration"),
    ({"registry": "eureka", "latency": -1}, "latency"),
    ({"registry": "consul", "check": "tcp"}, "check"),
    ({"registry": "kubernetes", "failure_threshold": 0}, "failure_threshold"),
    ({"registry": "kubernetes", "failure_threshold": 2.5}, "failure_threshold"),
    ({"registry": "dns", "ttl": "60"}, "ttl"),
])
def test_bad_timings_name_the_field(kwargs, field):
    registry = kwargs.pop("registry")
    with pytest.raises(ParamError, match=field):
        dy.lag_bounds(registry, **kwargs)


def test_numpy_numbers_are_timings():
    b = dy.lag_bounds("kubernetes", fault="hang", period=np.float64(5),
                      failure_threshold=np.int64(2))
    assert (b.lower, b.upper) == (6, 12)


def _next_run(phase: float, period: float, t: float, strict: bool = False) -> float:
    """The first run at or after ``t`` (after, if ``strict``) of a timer
    firing at ``phase + k × period``."""
    if period == 0:
        return t
    k = math.ceil((t - phase) / period)
    run = phase + k * period
    if strict and run <= t:
        run += period
    return run


@settings(max_examples=100, deadline=None)
@given(renew=st.sampled_from([5.0, 10.0, 30.0]), lease=st.sampled_from([15.0, 40.0, 90.0]),
       evict=st.sampled_from([7.0, 60.0]), cache=st.sampled_from([0.0, 30.0]),
       fetch=st.sampled_from([0.0, 13.0, 30.0]), ribbon=st.sampled_from([0.0, 30.0]),
       quirk=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_eureka_bounds_hold_a_model_of_its_timers(renew, lease, evict, cache, fetch, ribbon,
                                                  quirk, seed):
    """Timers at random phases, the crash at a random time after a first
    renewal: the lease expires (strictly after last_update + duration), the
    eviction task's next run removes it, the read-only cache's next refresh,
    the client's next fetch and Ribbon's next refresh pass it on.  The time
    from the crash to the last step is within lag_bounds."""
    rng = random.Random(seed)
    crash = 1000.0 + rng.uniform(0, 500)
    p_renew, p_evict, p_cache, p_fetch, p_ribbon = (rng.uniform(0, p) if p else 0.0
                                                    for p in (renew, evict, cache, fetch,
                                                              ribbon))
    last_renewal = _next_run(p_renew, renew, crash, strict=True) - renew  # the last < crash
    expiry = last_renewal + (2 if quirk else 1) * lease
    removed = _next_run(p_evict, evict, expiry, strict=True)
    shown = _next_run(p_cache, cache, removed)
    fetched = _next_run(p_fetch, fetch, shown)
    listed = _next_run(p_ribbon, ribbon, fetched)
    b = dy.lag_bounds("eureka", renewal_interval=renew, lease_duration=lease,
                      eviction_interval=evict, response_cache_update_interval=cache,
                      registry_fetch_interval=fetch, server_list_refresh_interval=ribbon,
                      lease_expiry_quirk=quirk)
    assert b.lower <= listed - crash <= b.upper
    assert b.lower <= b.mean <= b.upper


@settings(max_examples=100, deadline=None)
@given(registry=st.sampled_from(dy.REGISTRIES), fault=st.sampled_from(["crash", "hang",
                                                                         "node_failure"]),
       latency=st.floats(0, 0.1))
def test_every_bound_is_the_sum_of_its_terms(registry, fault, latency):
    b = dy.lag_bounds(registry, fault=fault, latency=latency)
    assert len(b.terms) == len(b.formulas) and all(b.formulas)
    assert b.lower == math.fsum(t.lo for t in b.terms)
    assert b.upper == math.fsum(t.hi for t in b.terms)
    for t in b.terms:
        assert t.lo <= t.mean <= t.hi


# -- through Result ----------------------------------------------------------------------

def discovery_world(trace: bool = True) -> World:
    """order-1 serves; order-2 crashes at 3.7 for good; order-3 is launched
    at 2 to start at 6 (scaled out); a registry ``eureka-1`` crashes at 2 for 1 s (not a
    routed instance: no death of the service).  A user calls order-2 itself
    (think 1 s, 0.5 s of work): requests at 1 and 2.5 are answered, at 4, 5,
    6, 7, 8 and 9 refused.  Routes written by hand, as a discovery client
    would: order-2 at 3 (serving), 4.5 and 6.5 (down); order-3 at 5.5
    (starting) and 7; order-1 at 8; none found at 9.  120 discovery
    messages in 10 s."""
    w = World(0, trace=trace)
    Instance(w, "order-1", service="order", service_time=Constant(0.5))
    Instance(w, "order-2", service="order", service_time=Constant(0.5))
    w.at(2.0, lambda: Instance(w, "order-3", service="order", service_time=Constant(0.5),
                               start_at=6.0) and None)
    Instance(w, "eureka-1", service="eureka")
    ClosedLoop(w, "users", "order-2", 1, Constant(1.0))
    install(w, [Crash("order-2", 3.7), Crash("eureka-1", 2.0, 1.0), Hang("order-1", 9.5)])
    w.run(10)
    for i, (t, inst) in enumerate([(3.0, "order-2"), (4.5, "order-2"), (6.5, "order-2"),
                                   (5.5, "order-3"), (7.0, "order-3"), (8.0, "order-1"),
                                   (9.0, None)]):
        w.trace.routes.append((t, 100 + i, "gw-1", "order", inst, "client", 1,
                               "ok" if inst else "no_instance", t + 0.01))
    w.trace.counters["discovery_messages"] = 120
    return w


def test_result_routes_detection_and_summary_keys():
    """Stale: 4.5, 6.5 (order-2 down) and 5.5 (order-3 starting): 3 of 6.
    Deaths of routed instances: order-2 at 3.7, last called at 6.5 (lag
    2.8), and order-1's hang at 9.5, never called after (lag 0): mean 1.4;
    the registry's crash is not among them.  Churn windows: order-3
    starting [2, 6), order-2 [3.7, 6.5), order-1 hung from 9.5 with no call
    after (nothing): [2, 6.5) holds the requests of 2.5 (ok), 4, 5, 6
    (refused): 1 of 4."""
    res = Result(discovery_world())
    r = res.routes
    assert r["stale"].tolist() == [False, True, True, True, False, False, False]
    assert r["state"].tolist()[:4] == ["serving", "down", "down", "starting"]
    det = res.detection()
    assert det[["instance", "died", "kind", "stale_calls", "lag"]].values.tolist() == [
        ["order-2", 3.7, "crash", 2, pytest.approx(2.8)], ["order-1", 9.5, "hang", 0, 0.0]]
    s = res.summary()
    assert {k: s[k] for k in DISCOVERY_KEYS} == {
        "routed_calls": 6, "stale_calls": 3, "stale_share": 0.5,
        "detection_lag": pytest.approx(1.4), "registry_messages_per_s": 12.0,
        "availability_during_churn": 0.25, "no_instance_calls": 1}
    assert s["availability"] == pytest.approx(2 / 8)
    assert list(s)[-len(DISCOVERY_KEYS):] == list(DISCOVERY_KEYS)
    assert all(k in SUMMARY_UNITS and k in SUMMARY_HELP for k in s)
    assert SUMMARY_UNITS["detection_lag"] == "s"
    assert SUMMARY_UNITS["stale_share"] == SUMMARY_UNITS["availability_during_churn"] \
        == "fraction"


def test_the_discovery_keys_need_no_trace_and_only_appear_with_routes():
    on, off = Result(discovery_world(True)), Result(discovery_world(False))
    assert on.summary() == off.summary()
    assert off.discovery.empty and list(off.discovery.columns) == list(DISCOVERY_COLUMNS)
    w = World(0)
    Instance(w, "srv", service_time=Constant(1.0))
    ClosedLoop(w, "users", "srv", 1, Constant(1.0))
    w.run(10)
    plain = Result(w)
    assert not set(DISCOVERY_KEYS) & set(plain.summary())
    assert plain.routes.empty and plain.detection().empty


def test_the_discovery_table_is_the_trace_rows():
    w = discovery_world()
    w.trace.discovery.append((1.0, "register", "eureka-1", "order", "order-1", "self"))
    df = Result(w).discovery
    assert df.values.tolist() == [[1.0, "register", "eureka-1", "order", "order-1", "self"]]


def test_the_fingerprint_sees_routes_and_discovery_rows_and_ignores_them_when_empty():
    """A run without discovery keeps the fingerprint it always had: the six
    tables' reprs (and the messaging tables, empty here)."""
    w = World(3)
    Instance(w, "srv", service_time=Constant(0.3))
    ClosedLoop(w, "users", "srv", 2, Constant(1.0))
    w.run(20)
    h = hashlib.sha256()
    tr = w.trace
    for table in (tr.messages, tr.requests, tr.pools, tr.events, tr.attempts, tr.breakers):
        h.update(repr(table).encode())
    assert Result(w).fingerprint() == h.hexdigest()
    base = Result(discovery_world()).fingerprint()
    assert Result(discovery_world()).fingerprint() == base
    w2 = discovery_world()
    w2.trace.routes[0] = (*w2.trace.routes[0][:4], "order-1", *w2.trace.routes[0][5:])
    assert Result(w2).fingerprint() != base
    w3 = discovery_world()
    w3.trace.discovery.append((1.0, "register", "eureka-1", "order", "order-1", "self"))
    assert Result(w3).fingerprint() != base
    w4 = discovery_world()
    w4.trace.counters["discovery_messages"] = 121
    assert Result(w4).fingerprint() != base


def test_a_router_named_for_its_service_is_not_one_of_its_instances():
    """kube-proxy's virtual IP carries the service's name (``Router(...,
    service="order")``): its own crash is not a death of an order instance;
    order-1's crash at 2, called at 2.5 by the router, is (lag 0.5)."""
    w = World(0)
    Instance(w, "order-vip", service="order")
    Instance(w, "order-1", service="order")
    install(w, [Crash("order-vip", 1.0, 0.5), Crash("order-1", 2.0)])
    w.run(5)
    w.trace.routes.extend([(0.5, 1, "order-vip", "order", "order-1", "order-vip", 1, "ok", 0.6),
                           (2.5, 2, "order-vip", "order", "order-1", "order-vip", 1, "refused",
                            2.5)])
    res = Result(w)
    assert res.detection()[["instance", "died", "lag"]].values.tolist() == [
        ["order-1", 2.0, 0.5]]
    assert res.summary()["detection_lag"] == 0.5


def test_a_call_still_waiting_at_the_end_is_a_stale_call():
    """A discovery client writes the row when the call is sent, outcome
    ``pending`` until it ends: a call sent to a hung instance at 3 that never
    came back is stale and sets the lag (hang at 2: 1 s)."""
    w = World(0)
    Instance(w, "order-1", service="order")
    install(w, [Hang("order-1", 2.0)])
    w.run(5)
    w.trace.routes.append((3.0, 1, "gw", "order", "order-1", "client", 1, "pending",
                           math.nan))
    res = Result(w)
    assert res.routes["stale"].tolist() == [True]
    assert res.summary()["stale_calls"] == 1 and res.summary()["detection_lag"] == 1.0


# -- the measured lag inside the worked sum, on real registries -------------------------------

LATENCY = 0.002


def eureka_run(seed: int) -> Result:
    """Ten order instances registering themselves with Eureka (defaults of
    REFERENCE §5), a gateway calling them round robin through the Eureka
    client's view, 10 requests/s; order-3 crashes at 100 + seed without a
    cancel.  Ten instances so that self-preservation lets the eviction happen
    (18 renewals a minute left > int(20 × 0.85) = 17)."""
    from simcomm.discovery.balancers import balancer
    from simcomm.discovery.churn import Fleet
    from simcomm.discovery.client import DiscoveryClient
    from simcomm.discovery.eureka import EurekaRegistration, EurekaServer, EurekaView
    from simcomm.engine import OpenLoop
    from simcomm.engine.network import Link
    from simcomm.engine.nodes import ServiceError

    w = World(seed=seed, network=Link(latency=LATENCY))
    EurekaServer(w, "eureka")
    registration = EurekaRegistration(w, "eureka")
    fleet = Fleet(w, "order", instances=10, registration=lambda inst: registration,
                  service_time=0.01, workers=4)
    gateway = Instance(w, "gateway", workers=64)
    client = DiscoveryClient(w, gateway, "order", EurekaView(w, gateway, "eureka", "order"),
                             balancer("round_robin"))

    def handler(ctx, request):
        reply = yield from client.call(ctx, request.body)
        if reply.status != "ok":
            raise ServiceError(reply.status)
        return reply.body

    gateway.handler = handler
    OpenLoop(w, "users", "gateway", 10.0)
    w.at(100.0 + seed, lambda: fleet.crash("order-3"))
    w.run(100.0 + seed + 340.0)
    return Result(w)


def kubernetes_run(seed: int, fault: str) -> Result:
    """Three pods behind kube-proxy (a Router, random backend, no retry),
    20 requests/s; orders-2 hangs for good or its node fails at 100 + seed."""
    from simcomm.discovery.balancers import balancer
    from simcomm.discovery.churn import Fleet
    from simcomm.discovery.kubernetes import KubernetesApiServer, KubernetesView
    from simcomm.discovery.router import Router
    from simcomm.engine import OpenLoop
    from simcomm.engine.network import Link

    w = World(seed=seed, network=Link(latency=LATENCY))
    api = KubernetesApiServer(w, "k8s")
    fleet = Fleet(w, "orders", instances=3, registration=api.registration(),
                  service_time=0.01, workers=2)
    router = Router(w, "orders-vip", service="orders")
    router.attach(KubernetesView(w, router, "k8s", "orders"), balancer("random"))
    OpenLoop(w, "users", "orders-vip", 20.0)
    at = 100.0 + seed
    if fault == "hang":
        w.at(at, lambda: fleet.hang("orders-2", 1e6))
    else:
        w.at(at, lambda: fleet.node_failure("orders-2"))
    w.run(at + 60.0)
    return Result(w)


def test_eureka_measured_lag_is_inside_its_worked_sum():
    """The last call to the crashed instance comes 150 .. 330 s after the
    crash (+ the trips), less at most one gap between its calls (a call
    every second, round robin over ten)."""
    res = eureka_run(1)
    (death,) = res.detection().itertuples(index=False)
    b = dy.lag_bounds("eureka", latency=LATENCY)
    assert death.instance == "order-3" and death.kind == "crash"
    assert b.lower - 1.5 <= death.lag <= b.upper
    assert res.summary()["stale_calls"] == death.stale_calls > 100


@pytest.mark.parametrize("fault", ["hang", "node_failure"])
def test_kubernetes_measured_lag_is_inside_its_worked_sum(fault):
    """A hung pod: readiness probes, 21 .. 32 s (+ trips); a lost node: its
    lease's grace period, 35 .. 51 s.  A hung pod's calls wait for ever
    (kube-proxy has no time limit): they count, pending, as stale."""
    res = kubernetes_run(2, fault)
    (death,) = res.detection().itertuples(index=False)
    b = dy.lag_bounds("kubernetes", fault=fault, latency=LATENCY)
    assert death.instance == "orders-2" and death.kind == fault
    assert b.lower - 0.5 <= death.lag <= b.upper
    stale = res.routes[res.routes["stale"]]
    assert len(stale) == death.stale_calls > 100
    if fault == "hang":
        assert set(stale["outcome"]) == {"pending"}
