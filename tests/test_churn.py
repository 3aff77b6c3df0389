"""Churn (simcomm.discovery.churn): a fleet whose instances come and go, a churn
schedule, and Kubernetes' HorizontalPodAutoscaler.

The registry side is not needed here: a :class:`Recorder` registration
writes down when the fleet calls it, so each test checks *when* a fleet
tells the registration what (start at the process start, shutdown at the
drain's start, machine_down on a node failure, nothing on a crash).
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.discovery.churn import (
    Autoscaler,
    ChurnStep,
    Fleet,
    Stabilisation,
    desired_replicas,
    hpa_replicas,
    install_churn,
    limit_replicas,
)
from simcomm.engine import Node, RateSchedule, World
from simcomm.errors import ParamError
from simcomm.result import Result


class Recorder:
    """A Registration that records (time, call, instance) in a shared log."""

    def __init__(self, log: list, inst) -> None:
        self.log = log

    def start(self, inst) -> None:
        self.log.append((inst.env.now, "start", inst.name))

    def shutdown(self, inst) -> None:
        self.log.append((inst.env.now, "shutdown", inst.name))

    def machine_down(self, inst) -> None:
        self.log.append((inst.env.now, "machine_down", inst.name))


def fleet(world: World, n: int = 3, **kw) -> tuple[Fleet, list]:
    log: list = []
    return Fleet(world, "orders", instances=n,
                 registration=lambda inst: Recorder(log, inst), **kw), log


class Spray(Node):
    """Poisson requests to a member drawn at random (``up_only``: among those
    whose process is up; else among members and draining ones, so some are
    refused); every reply's (sent, dest, status, answered) is kept."""

    def __init__(self, world: World, name: str, fl: Fleet, rate: float | RateSchedule,
                 up_only: bool = False) -> None:
        super().__init__(world, name)
        self.fleet = fl
        self.schedule = rate if isinstance(rate, RateSchedule) else RateSchedule([(0.0, rate)])
        self.up_only = up_only
        self.rng = world.stream(f"test:{name}")
        self.sent: list = []
        self.replies: list = []
        self.env.process(self._go())

    def _go(self):
        while True:
            rate = self.schedule.rate_at(self.env.now)
            yield self.env.timeout(self.rng.expovariate(rate))
            names = (self.fleet.serving() if self.up_only
                     else self.fleet.members + self.fleet.draining)
            if not names:
                continue
            dest = self.rng.choice(sorted(names))
            t = self.env.now
            ev = self.request(dest, "work")
            self.sent.append((t, dest))
            ev.callbacks.append(lambda e, t=t, d=dest: self.replies.append(
                (t, d, e.value.status, self.env.now)))


def events(world: World, name: str | None = None) -> list[tuple]:
    return [e for e in world.trace.events if name is None or e[1] == name]


# -- the fleet ------------------------------------------------------------------------------

def test_the_initial_instances_run_from_time_zero_and_register_then():
    """The run begins in a steady state: launch, start and Registration.start at 0."""
    w = World(0)
    fl, log = fleet(w, 3)
    w.run(1)
    assert fl.members == ("orders-1", "orders-2", "orders-3")
    assert log == [(0, "start", f"orders-{i}") for i in (1, 2, 3)]
    assert [(e[2], e[3]) for e in events(w, "orders-2")] == [("launch", "starts at 0"),
                                                             ("start", "")]


def test_a_launch_gets_a_new_address_and_registers_only_when_its_process_starts():
    """A launch at 10 with startup 5: the instance is a member at once but down
    (a request is refused) until 15, when Registration.start is called."""
    w = World(0)
    fl, log = fleet(w, 1, startup=5.0)
    new = []
    w.at(10, lambda: new.append(fl.launch()))
    client = Spray(w, "probe", fl, 1e-9)  # sends nothing by itself
    w.at(12, lambda: client.request("orders-2"))
    w.run(20)
    assert new[0].name == "orders-2" and fl.members == ("orders-1", "orders-2")
    assert (15.0, "start", "orders-2") in log
    assert [e[0] for e in log if e[2] == "orders-2"] == [15.0]
    refused = [m for m in w.trace.messages if m[1] == "drop" and m[5] == "orders-2"]
    assert [m[8] for m in refused] == ["node_down"]


def test_a_crash_never_deregisters_and_its_replacement_comes_on_a_new_address():
    """crash(replace_after=20) at 10: no shutdown call, the instance leaves the
    members, orders-4 is launched at 30 and registers at 30 + startup."""
    w = World(0)
    fl, log = fleet(w, 3, startup=2.0)
    w.at(10, lambda: fl.crash("orders-2", replace_after=20))
    w.run(100)
    assert fl.members == ("orders-1", "orders-3", "orders-4")
    assert [c for c in log if c[2] == "orders-2"] == [(0, "start", "orders-2")]
    assert (32.0, "start", "orders-4") in log
    assert not fl["orders-2"].up
    assert ("orders-4", "launch", "starts at 32") in [e[1:] for e in events(w)]


def test_a_crash_with_a_restart_keeps_the_address_and_the_membership():
    w = World(0)
    fl, log = fleet(w, 2)
    w.at(10, lambda: fl.crash("orders-1", restart_after=7))
    w.run(30)
    assert fl.members == ("orders-1", "orders-2")
    assert fl["orders-1"].up
    assert [(e[0], e[2]) for e in events(w, "orders-1")][-2:] == [(10, "crash"), (17, "restart")]
    assert len(log) == 2  # the registration resumes on its own: no second start call


def test_a_crash_while_down_changes_nothing():
    w = World(0)
    fl, _ = fleet(w, 2)
    w.at(10, lambda: fl.crash("orders-1", restart_after=20))
    w.at(15, lambda: fl.crash("orders-1", replace_after=1))
    w.run(50)
    assert fl.members == ("orders-1", "orders-2") and fl["orders-1"].up
    assert ("orders-1", "crash_skipped", "instance down") in [e[1:] for e in events(w)]


def test_a_shutdown_deregisters_at_once_serves_through_the_drain_then_stops():
    """shutdown at 10 with drain 5: Registration.shutdown at 10, event drain '5',
    a request at 12 is answered ok, the process stops at 15, one at 16 is refused."""
    w = World(0)
    fl, log = fleet(w, 2)
    w.at(10, lambda: fl.shutdown("orders-1", drain=5))
    client = Spray(w, "c", fl, 1e-9)
    answers: list = []
    for t in (12, 16):
        w.at(t, lambda: client.request("orders-1").callbacks.append(
            lambda e: answers.append((w.now, e.value.status))))
    checks: list = []
    w.at(11, lambda: checks.append((fl.members, fl.draining, fl.serving())))
    w.run(30)
    assert (10, "shutdown", "orders-1") in log
    assert checks == [(("orders-2",), ("orders-1",), ("orders-2", "orders-1"))]
    assert [(e[0], e[2], e[3]) for e in events(w, "orders-1")][-2:] == [(10, "drain", "5"),
                                                                        (15, "stop", "")]
    assert answers[0] == (12, "ok")
    assert fl["orders-1"].stopped and fl.draining == () and fl.members == ("orders-2",)
    assert [m[8] for m in w.trace.messages if m[1] == "drop"] == ["node_down"]


def test_shutting_down_an_instance_still_starting_stops_it_without_registering():
    w = World(0)
    fl, log = fleet(w, 1, startup=10)
    w.at(1, fl.launch)
    w.at(3, lambda: fl.shutdown("orders-2", drain=30))
    w.run(40)
    assert [c for c in log if c[2] == "orders-2"] == []
    assert fl["orders-2"].stopped and not fl["orders-2"].up
    assert [e[2] for e in events(w, "orders-2")] == ["launch", "stop"]


def test_a_shutdown_without_a_drain_still_sends_the_cancel_first():
    """Eureka's client cancels from the instance: with drain 0 the cancel still
    goes out before the process exits, and the lease is gone."""
    from simcomm.discovery.eureka import EurekaRegistration, EurekaServer

    w = World(1)
    EurekaServer(w, "eureka")
    fl = Fleet(w, "orders", instances=2, registration=EurekaRegistration(w, "eureka"))
    w.at(50, lambda: fl.shutdown("orders-2", drain=0))
    w.run(100)
    cancels = [r for r in w.trace.discovery if r[1] == "cancel"]
    assert [(r[0], r[4]) for r in cancels] == [(pytest.approx(50, abs=0.01), "orders-2")]
    assert [e[0] for e in events(w, "orders-2") if e[2] == "stop"] == [50]


def test_a_second_shutdown_is_skipped():
    w = World(0)
    fl, log = fleet(w, 2)
    w.at(5, lambda: fl.shutdown("orders-2", drain=10))
    w.at(6, lambda: fl.shutdown("orders-2", drain=0))
    w.run(30)
    assert [c[1] for c in log if c[2] == "orders-2"] == ["start", "shutdown"]
    assert (6, "orders-2", "shutdown_skipped", "not a member") in events(w)
    assert [e[0] for e in events(w, "orders-2") if e[2] == "stop"] == [15]


def test_a_crash_during_the_drain_ends_it_without_a_later_stop():
    w = World(0)
    fl, _ = fleet(w, 2)
    w.at(5, lambda: fl.shutdown("orders-2", drain=10))
    w.at(8, lambda: fl.crash("orders-2"))
    w.run(30)
    assert [e[2] for e in events(w, "orders-2")] == ["launch", "start", "drain", "crash"]
    assert fl.draining == () and fl.members == ("orders-1",)


def test_a_node_failure_tells_the_registration_the_machine_is_down_then_crashes():
    w = World(0)
    fl, log = fleet(w, 2, startup=1)
    w.at(10, lambda: fl.node_failure("orders-1", replace_after=40))
    w.run(60)
    assert (10, "machine_down", "orders-1") in log
    assert [(e[0], e[2], e[3]) for e in events(w, "orders-1")][-2:] == [
        (10, "node_failure", "replace after 40"), (10, "crash", "")]
    assert fl.members == ("orders-2", "orders-3")
    assert (51.0, "start", "orders-3") in log


def test_a_node_failure_under_a_down_instance_keeps_it_from_restarting():
    w = World(0)
    fl, _ = fleet(w, 1)
    w.at(10, lambda: fl.crash("orders-1", restart_after=10))
    w.at(15, lambda: fl.node_failure("orders-1"))
    w.run(40)
    assert not fl["orders-1"].up and fl.members == ()
    assert "restart" not in [e[2] for e in events(w, "orders-1")]


def test_a_hang_ends_after_its_duration():
    w = World(0)
    fl, _ = fleet(w, 1)
    w.at(10, lambda: fl.hang("orders-1", 25))
    w.run(60)
    assert [(e[0], e[2]) for e in events(w, "orders-1")][-2:] == [(10, "hang"), (35, "unhang")]


def test_a_scale_in_retires_the_instances_not_up_first_then_the_newest():
    """controller.ActivePods: a starting pod and a crashed one go before
    running ones, the newer before the older."""
    w = World(0)
    fl, log = fleet(w, 4, startup=10)
    w.at(5, lambda: fl.crash("orders-1", restart_after=100))
    w.at(6, fl.launch)
    w.at(7, lambda: fl.scale_to(2))
    w.run(8)
    assert fl.deletion_order(["orders-2", "orders-3", "orders-4"]) == [
        "orders-4", "orders-3", "orders-2"]
    assert [c[2] for c in log if c[1] == "shutdown"] == ["orders-1", "orders-4"]
    assert fl.members == ("orders-2", "orders-3")
    assert fl["orders-5"].stopped  # stopped while starting: it never registered


def test_scale_to_adds_on_top_and_retires_the_newest_first():
    w = World(0)
    fl, log = fleet(w, 2, startup=1)
    w.at(10, lambda: fl.scale_to(5))
    w.at(20, lambda: fl.scale_to(2, drain=3))
    w.run(40)
    assert fl.members == ("orders-1", "orders-2")
    assert [c[2] for c in log if c[1] == "shutdown"] == ["orders-5", "orders-4", "orders-3"]
    assert all(fl[f"orders-{i}"].stopped for i in (3, 4, 5))


# -- the rolling upgrade --------------------------------------------------------------------

@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 4), startup=st.floats(0, 20), drain=st.floats(0, 30),
       min_ready=st.sampled_from([0.0, 4.0]))
def test_a_rolling_upgrade_never_has_fewer_than_n_started_nor_more_than_n_plus_one(
        n, startup, drain, min_ready):
    """maxSurge 1 / maxUnavailable 0: sampled every 0.25 s, the started members
    that are not draining stay within [n, n + 1]; each old member is shut down
    only once its replacement has been up ``min_ready`` s; all n are replaced."""
    w = World(0)
    fl, log = fleet(w, n, startup=startup)
    fl.rolling_upgrade(at=10, drain=drain, min_ready=min_ready)
    counts: list = []

    def watch():
        yield w.env.timeout(0.125)  # after the starts at time 0
        while True:
            counts.append(sum(fl[m].up for m in fl.members))
            yield w.env.timeout(0.25)

    w.env.process(watch())
    w.run(10 + n * (startup + min_ready) + drain + 5)
    assert min(counts) >= n and max(counts) <= n + 1
    assert fl.members == tuple(f"orders-{i}" for i in range(n + 1, 2 * n + 1))
    starts = {c[2]: c[0] for c in log if c[1] == "start"}
    shutdowns = [(c[0], c[2]) for c in log if c[1] == "shutdown"]
    # a ReplicaSet deletes the newest of the old pods first
    assert [s[1] for s in shutdowns] == [f"orders-{i}" for i in range(n, 0, -1)]
    for i, (t, _old) in enumerate(shutdowns):
        assert t >= starts[f"orders-{n + 1 + i}"] + min_ready


def test_a_rolling_upgrade_skips_a_member_that_crashed_meanwhile():
    """orders-2 crashes for good (not replaced): two old ones are left to replace."""
    w = World(0)
    fl, log = fleet(w, 3, startup=5)
    fl.rolling_upgrade(at=10, drain=2)
    w.at(12, lambda: fl.crash("orders-2"))
    sizes: list = []
    for t in (9, 11, 13, 16):
        w.at(t, lambda: sizes.append((fl.replicas, len(fl.members))))
    w.run(60)
    assert fl.members == ("orders-4", "orders-5") and fl.replicas == 2
    assert [c[2] for c in log if c[1] == "shutdown"] == ["orders-3", "orders-1"]
    # the surge is not a replica: 3 (4 members), then 2 after the crash
    assert sizes == [(3, 3), (3, 4), (2, 3), (2, 3)]


def test_a_scheduled_replacement_counts_as_a_replica():
    """While the orchestrator's replacement is on its way, replicas stays 3:
    scaling to 3 adds nothing, scaling to 2 calls the replacement off."""
    w = World(0)
    fl, log = fleet(w, 3, startup=1)
    w.at(10, lambda: fl.crash("orders-1", replace_after=20))
    seen: list = []
    w.at(11, lambda: seen.append((fl.replicas, fl.members)))
    w.at(12, lambda: fl.scale_to(3))
    w.at(13, lambda: fl.scale_to(2))
    w.run(60)
    assert seen == [(3, ("orders-2", "orders-3"))]
    assert fl.members == ("orders-2", "orders-3") and "orders-4" not in fl.instances
    assert [c for c in log if c[1] == "shutdown"] == []


def test_the_autoscaler_does_not_add_an_instance_the_orchestrator_is_replacing():
    """Idle fleet of 3, min 3: a crash with a replacement 60 s later never
    makes the HPA launch one of its own."""
    w = World(0)
    fl, _ = fleet(w, 3, startup=1)
    hpa = Autoscaler(fl, 0.5, min_replicas=3)
    w.at(100, lambda: fl.crash("orders-2", replace_after=60))
    w.run(300)
    assert fl.members == ("orders-1", "orders-3", "orders-4")
    assert {h[1] for h in hpa.history} == {3} and {h[4] for h in hpa.history} == {3}


# -- the churn schedule ---------------------------------------------------------------------

def test_a_churn_schedule_runs_each_step_at_its_time():
    w = World(0)
    fl, _ = fleet(w, 3, startup=1)
    steps = install_churn(fl, [("crash", 10, "orders-1", 5), ("hang", 20, "orders-2", 4),
                               ("shutdown", 30, "orders-3", 2),
                               ChurnStep("node_failure", 40, "orders-4", None),
                               ("scale", 50, 3, 1), ("upgrade", 70, None, 1)])
    assert steps[0] == ChurnStep("crash", 10.0, "orders-1", 5.0)
    w.run(120)
    seen = [(e[0], e[1], e[2]) for e in events(w) if e[2] in (
        "crash", "hang", "unhang", "drain", "node_failure")]
    assert seen[:6] == [(10, "orders-1", "crash"), (20, "orders-2", "hang"),
                        (24, "orders-2", "unhang"), (30, "orders-3", "drain"),
                        (40, "orders-4", "node_failure"), (40, "orders-4", "crash")]
    assert len(fl.members) == 3
    assert all(int(m.split("-")[1]) >= 6 for m in fl.members)  # all upgraded


@pytest.mark.parametrize("step, field", [
    (("restart", 1, "orders-1", None), "steps[1].kind"),
    (("crash", -1, "orders-1", None), "steps[1].at"),
    (("crash", math.nan, "orders-1", None), "steps[1].at"),
    (("crash", True, "orders-1", None), "steps[1].at"),
    (("crash", 1, "order-1", None), "steps[1].target"),
    (("crash", 1, "orders-0", None), "steps[1].target"),
    (("hang", 1, 3, None), "steps[1].target"),
    (("hang", 1, "orders-1", -2), "steps[1].seconds"),
    (("scale", 1, True, 0), "steps[1].target"),
    (("scale", 1, -1, 0), "steps[1].target"),
    (("upgrade", 1, "orders-1", 0), "steps[1].target"),
    (("crash", 1), "steps[1]"),
    ("crash", "steps[1]"),
])
def test_a_churn_schedule_is_checked_whole_before_time_zero(step, field):
    """A bad step names its field; the good step before it is not scheduled."""
    w = World(0)
    fl, _ = fleet(w, 2)
    with pytest.raises(ParamError) as err:
        install_churn(fl, [("crash", 5, "orders-1", None), step])
    assert err.value.field == field
    w.run(10)
    assert "crash" not in [e[2] for e in events(w)]


def test_a_step_for_an_instance_not_launched_yet_is_recorded_as_skipped():
    """orders-3 exists only if orders-1's replacement was launched: at 5 it was not."""
    w = World(0)
    fl, _ = fleet(w, 2)
    install_churn(fl, [("crash", 5, "orders-3", None), ("crash", 6, "orders-1", 10),
                       ("hang", 30, "orders-3", 1)])
    w.run(40)
    assert (5, "orders-3", "crash_skipped", "not launched") in events(w)
    assert (30, "orders-3", "hang", "") in events(w)


def test_fleet_arguments_are_checked_before_time_zero():
    w = World(0)
    reg = lambda inst: Recorder([], inst)  # noqa: E731
    bad = [dict(service=""), dict(instances=-1), dict(instances=True), dict(instances=1.5),
           dict(registration=None), dict(startup=-1), dict(startup=math.inf),
           dict(worker=2), dict(workers=0), dict(queue_capacity=-1), dict(name="x"),
           dict(registration=lambda inst: object())]
    for kw in bad:
        args = dict(service="s", instances=1, registration=reg) | kw
        with pytest.raises(ParamError):
            Fleet(w, args.pop("service"), **args)
    fl, _ = fleet(w, 1)
    for call in (lambda: fl.crash("orders-9"), lambda: fl.crash("orders-1", 1, 1),
                 lambda: fl.hang("orders-1", -1), lambda: fl.shutdown("orders-1", -1),
                 lambda: fl.scale_to(-1), lambda: fl.scale_to(2, drain=math.nan),
                 lambda: fl.rolling_upgrade(at=-1), lambda: fl.rolling_upgrade(min_ready=-1)):
        with pytest.raises(ParamError):
            call()


# -- ledger and determinism under churn -----------------------------------------------------

def churn_run(seed: int, steps: list, *, trace: bool = True, autoscale: bool = False):
    w = World(seed, trace=trace)
    fl, log = fleet(w, 3, startup=2.0, workers=2, service_time=0.05)
    client = Spray(w, "client", fl, 8.0)
    install_churn(fl, steps)
    hpa = Autoscaler(fl, 0.3, max_replicas=6, delay=60) if autoscale else None
    w.run(160)
    return w, fl, log, client, hpa


step_st = st.one_of(
    st.tuples(st.sampled_from(["crash", "hang", "shutdown", "node_failure"]),
              st.floats(0, 150), st.integers(1, 8).map(lambda i: f"orders-{i}"),
              st.one_of(st.none(), st.floats(0, 40))),
    st.tuples(st.just("scale"), st.floats(0, 150), st.integers(0, 6), st.floats(0, 10)),
    st.tuples(st.just("upgrade"), st.floats(0, 150), st.none(), st.floats(0, 10)),
).map(lambda s: (s[0], s[1], s[2], 0.0 if s[0] == "shutdown" and s[3] is None else s[3]))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.lists(step_st, max_size=6))
def test_the_ledger_balances_under_churn(seed, steps):
    """Whatever the churn, every message is delivered, dropped with a reason or
    in flight, and every request sent to a member got at most one reply."""
    w, _, _, client, _ = churn_run(seed, steps, autoscale=seed % 2 == 0)
    led = Result(w).ledger()
    assert led["balanced"], led
    assert led["sent"] == led["delivered"] + led["dropped"] + led["in_flight"]
    assert len(client.replies) <= len(client.sent)
    assert {r[2] for r in client.replies} <= {"ok", "reset", "refused"}
    assert set(led["dropped_by_reason"]) <= {"node_down"}


def test_the_same_seed_gives_the_same_run():
    steps = [("crash", 20, "orders-1", 10), ("hang", 40, "orders-2", 30),
             ("node_failure", 60, "orders-3", 5), ("upgrade", 100, None, 3)]
    a = churn_run(7, steps, autoscale=True)
    b = churn_run(7, steps, autoscale=True)
    assert a[0].trace.events == b[0].trace.events
    assert a[0].trace.messages == b[0].trace.messages
    assert a[2] == b[2] and a[4].history == b[4].history
    c = churn_run(8, steps, autoscale=True)
    assert c[0].trace.messages != a[0].trace.messages


# -- the autoscaler's arithmetic (pure) -----------------------------------------------------

def test_desired_replicas_is_the_hpa_formula():
    """Kubernetes' documented examples: 200m used for 100m wanted doubles the
    replicas, 50m halves them; a ratio within 10 % changes nothing."""
    assert desired_replicas(3, 0.8, 0.4) == 6
    assert desired_replicas(4, 0.2, 0.4) == 2
    assert desired_replicas(4, 0.43, 0.4) == 4      # ratio 1.075: within tolerance
    assert desired_replicas(4, 0.37, 0.4) == 4      # 0.925
    assert desired_replicas(4, 0.46, 0.4) == 5      # 1.15 -> ceil(4.6)
    assert desired_replicas(4, 0.46, 0.4, tolerance=0.2) == 4
    assert desired_replicas(10, 0.0, 0.5) == 0      # the HPA clamps to minReplicas after


@settings(max_examples=200, deadline=None)
@given(current=st.integers(1, 50), u=st.floats(0, 1), target=st.floats(0.05, 1),
       tol=st.floats(0, 0.5))
def test_desired_replicas_moves_only_outside_the_tolerance_and_to_the_ceiling(
        current, u, target, tol):
    ratio = u / target
    got = desired_replicas(current, u, target, tol)
    if abs(1 - ratio) <= tol:
        assert got == current
    else:
        exact = ratio * current
        assert got - 1 < exact <= got
        assert (got > current) == (ratio > 1) or got == current


def test_hpa_replicas_counts_unready_pods_as_idle_on_a_scale_up_only():
    """replica_calculator.go's rebalanceIgnored: on a scale-up the pods not ready
    yet count as using 0 %; on a scale-down they are left out."""
    # ready pods at 100 % of a 50 % target: ratio 2; with two idle unready pods 1.0
    assert hpa_replicas(4, [1.0, 1.0], 0, 0.5) == 4
    assert hpa_replicas(4, [1.0, 1.0], 2, 0.5) == 4
    # ratio 1.8, over 3 pods 1.2: ceil(1.2 * 3) = 4
    assert hpa_replicas(3, [0.9, 0.9], 1, 0.5) == 4
    # the rebalanced ratio says scale down: no change (no direction flip)
    assert hpa_replicas(6, [0.6, 0.6], 4, 0.5) == 6
    # scale-down: unready pods ignored, ceil(0.2 * 2) = 1
    assert hpa_replicas(4, [0.1, 0.1], 2, 0.5) == 1
    assert hpa_replicas(4, [], 4, 0.5) is None


def test_limit_replicas_applies_min_max_and_the_scale_up_limit():
    assert limit_replicas(1, 10, 1, 20) == 4        # max(2 * 1, 4)
    assert limit_replicas(3, 10, 1, 20) == 6        # 2 * 3
    assert limit_replicas(8, 30, 1, 10) == 10       # maxReplicas
    assert limit_replicas(5, 0, 2, 10) == 2         # minReplicas
    assert limit_replicas(5, 3, 1, 10) == 3


def test_the_stabilisation_window_keeps_the_highest_recent_recommendation():
    """Seeded with 3 at 0, then 1 every 15 s: 3 is applied up to 300 s (a
    recommendation exactly window-old still counts), 1 from 315 s."""
    s = Stabilisation(300)
    s.seed(0.0, 3)
    applied = {t: s.stabilise(float(t), 1) for t in range(0, 331, 15)}
    assert all(applied[t] == 3 for t in range(0, 301, 15))
    assert applied[315] == 1 and applied[330] == 1
    s.seed(330.0, 9)  # only the first seed counts
    assert s.stabilise(345.0, 5) == 5  # a scale-up applies at once


@settings(max_examples=60, deadline=None)
@given(window=st.floats(0, 200), recs=st.lists(st.integers(0, 20), min_size=1, max_size=40))
def test_stabilise_is_the_max_over_the_window(window, recs):
    s = Stabilisation(window)
    for i, r in enumerate(recs):
        t = 15.0 * i
        assert s.stabilise(t, r) == max(recs[j] for j in range(i + 1) if 15.0 * j >= t - window)


def test_autoscaler_arguments_are_checked_before_time_zero():
    w = World(0)
    fl, _ = fleet(w, 1)
    for kw in (dict(target_utilisation=0), dict(target_utilisation=1.5),
               dict(target_utilisation=True), dict(period=0), dict(delay=-1),
               dict(min_replicas=0), dict(max_replicas=0), dict(min_replicas=3, max_replicas=2),
               dict(tolerance=1), dict(tolerance=-0.1), dict(drain=-1), dict(fleet=None)):
        args = dict(fleet=fl, target_utilisation=0.5) | kw
        with pytest.raises(ParamError):
            Autoscaler(args.pop("fleet"), **args)


# -- the autoscaler in a run ----------------------------------------------------------------

def autoscaled(seed: int = 3):
    """2 one-worker instances of 1 s work, 3 req/s for 600 s then 0.4 req/s;
    target 50 %: the HPA wants 6 while loaded and 1 after."""
    w = World(seed, trace=False)
    fl, _ = fleet(w, 2, startup=5, service_time=1.0)
    Spray(w, "load", fl, RateSchedule([(0.0, 3.0), (600.0, 0.4)]), up_only=True)
    hpa = Autoscaler(fl, 0.5, max_replicas=8)
    sizes: list = []

    def watch():
        while True:
            sizes.append((w.now, len(fl.members)))
            yield w.env.timeout(5)

    w.env.process(watch())
    w.run(1500)
    return fl, hpa, sizes


def test_the_autoscaler_scales_out_under_load_and_in_only_after_the_window():
    fl, hpa, sizes = autoscaled()
    times = [h[0] for h in hpa.history]
    assert times[0] < 15 and all(b - a == pytest.approx(15) for a, b in itertools.pairwise(times))
    # the first step up is the HPA's limit: from 2 to max(2 * 2, 4) = 4
    ups = [h for h in hpa.history if h[4] > h[1]]
    assert ups[0][1:2] == (2,) and ups[0][4] == 4
    loaded = [n for t, n in sizes if 300 <= t < 600]
    assert min(loaded) >= 5 and max(loaded) <= 8
    # the fleet shrinks to the light load's size only a window after the load
    # dropped (the last loaded proposal was made in the sync period before 600 s)
    downs = [h for h in hpa.history if h[4] < h[1]]
    assert min(h[0] for h in downs if h[4] <= 2) >= 600 - 15 + 300
    # every scale-in is the highest proposal of the last 300 s
    for t, _, _, _, desired in downs:
        window = [h[3] for h in hpa.history if t - 300 <= h[0] <= t and h[3] is not None]
        assert desired == max(max(window), hpa.min_replicas)
    assert fl.members and len(fl.members) <= 2
    assert [n for t, n in sizes if t >= 1450] == [len(fl.members)] * len(
        [t for t, _ in sizes if t >= 1450])


def test_the_autoscaler_ignores_an_empty_fleet():
    """A target scaled to zero disables the HPA ("scaling is disabled since the
    replica count of the target is zero")."""
    w = World(0)
    fl, _ = fleet(w, 1)
    hpa = Autoscaler(fl, 0.5)
    w.at(1, lambda: fl.scale_to(0))
    w.run(100)
    assert fl.members == () and all(h[4] == 0 for h in hpa.history)


# -- with real registrations ----------------------------------------------------------------

def test_a_shared_self_registration_sees_crashes_replacements_and_shutdowns():
    """One ConsulRegistration for the whole fleet: a crash leaves the instance
    to its TTL (critical exactly a ttl after its last pass, never cancelled),
    its replacement registers when it starts, a shutdown deregisters at once."""
    from simcomm.discovery.consul import ConsulRegistration, ConsulServer

    w = World(1)
    ConsulServer(w, "consul")
    fl = Fleet(w, "orders", instances=3, registration=ConsulRegistration(w, "consul", ttl=30),
               startup=5)
    install_churn(fl, [("crash", 100, "orders-1", 10), ("shutdown", 200, "orders-2", 5)])
    w.run(300)
    rows = [(r[0], r[1], r[4]) for r in w.trace.discovery]
    last_pass = max(t for t, ev, inst in rows if ev == "renew" and inst == "orders-1")
    assert [(t, ev) for t, ev, inst in rows if inst == "orders-1" and ev != "renew"][-1] == (
        pytest.approx(last_pass + 30), "critical")
    assert not any(ev == "cancel" and inst == "orders-1" for _, ev, inst in rows)
    assert min(t for t, ev, inst in rows if inst == "orders-4") >= 115
    assert [t for t, ev, inst in rows if ev == "cancel"] == [pytest.approx(200, abs=0.01)]
    assert w.nodes["consul"].listing("orders") == ("orders-3", "orders-4")


def endpoint_counts(min_ready: float) -> tuple[list[int], list]:
    """3 pods behind a Kubernetes API server (a kubelet per pod), a rolling
    upgrade at 50: the endpoint count every 0.25 s, and the discovery rows."""
    from simcomm.discovery.kubernetes import KubernetesApiServer

    w = World(2)
    api = KubernetesApiServer(w, "kubernetes")
    fl = Fleet(w, "orders", instances=3, registration=api.registration(), startup=5)
    fl.rolling_upgrade(at=50, drain=5, min_ready=min_ready)
    counts: list[int] = []

    def watch():
        yield w.env.timeout(30)  # every first probe has passed
        while True:
            counts.append(len(api.listing("orders")))
            yield w.env.timeout(0.25)

    w.env.process(watch())
    w.run(150)
    return counts, w.trace.discovery


def test_a_rolling_upgrade_keeps_the_endpoints_full_only_if_it_waits_for_readiness():
    """maxUnavailable 0 counts READY pods: waiting a probe period after the start
    (minReadySeconds) keeps 3 endpoints throughout; moving on at the start
    leaves gaps until the new pods' first readiness probes (and they add up:
    the next old pod goes as soon as the next new one starts)."""
    waited, rows = endpoint_counts(min_ready=10.5)
    assert min(waited) == 3 and waited[-1] == 3
    assert sorted(r[4] for r in rows if r[1] == "unready") == ["orders-1", "orders-2", "orders-3"]
    assert {r[5] for r in rows if r[1] == "unready"} == {"terminating"}
    hasty, _ = endpoint_counts(min_ready=0.0)
    assert min(hasty) < 3 and hasty[-1] == 3


def test_a_node_failure_stops_the_kubelet_so_the_pod_leaves_by_the_node_controller():
    from simcomm.discovery.kubernetes import KubernetesApiServer

    w = World(1)
    api = KubernetesApiServer(w, "kubernetes")
    fl = Fleet(w, "orders", instances=2, registration=api.registration(), startup=5)
    install_churn(fl, [("node_failure", 100, "orders-1", 10)])
    w.run(200)
    gone = [r for r in w.trace.discovery if r[1] == "unready" and r[4] == "orders-1"]
    assert [r[5] for r in gone] == ["node_not_ready"] and gone[0][0] > 100 + 40 - 10
    assert api.listing("orders") == ("orders-2", "orders-3")
