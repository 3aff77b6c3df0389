"""Health probes: Kubernetes' consecutive-results rule, the probe settings, one probe.

:class:`ProbeState` and :class:`ProbeSpec` are pure and tested with plain
sequences of results (``pkg/kubelet/prober/worker.go``'s ``doProbe``);
:func:`probe` is one health request in a small World, against an instance
that answers, hangs, is busy, has crashed or fails.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.discovery.probe import (
    HEALTH,
    READY,
    UNREADY,
    ProbeSpec,
    ProbeState,
    probe,
    probe_status,
)
from simcomm.discovery.registry import COUNTER
from simcomm.engine.network import Link
from simcomm.engine.nodes import Context, Instance, Node
from simcomm.engine.world import World
from simcomm.errors import ParamError

FAST = settings(max_examples=60, deadline=None)


# -- ProbeState: the thresholds -----------------------------------------------------------

def test_a_readiness_probe_starts_unready_and_one_success_makes_it_ready():
    """newWorker: readiness's initial value is Failure; successThreshold 1."""
    state = ProbeState()
    assert state.ready is False
    assert state.observe(True) == READY
    assert state.ready is True
    assert state.observe(True) is None


def test_three_consecutive_failures_make_it_unready():
    """failureThreshold 3: the 3rd failure in a row flips it; later ones change nothing."""
    state = ProbeState(initially_ready=True)
    assert [state.observe(False) for _ in range(5)] == [None, None, UNREADY, None, None]
    assert state.ready is False


def test_a_success_in_between_restarts_the_failure_count():
    """resultRun counts equal results in a row: F F S F F is not unready."""
    state = ProbeState(initially_ready=True)
    assert [state.observe(ok) for ok in (False, False, True, False, False)] == [None] * 5
    assert state.ready is True
    assert state.observe(False) == UNREADY


def test_success_threshold_needs_that_many_successes_in_a_row():
    """successThreshold 2: S F S S -> ready at the 4th."""
    state = ProbeState(success_threshold=2)
    assert [state.observe(ok) for ok in (True, False, True, True)] == [None, None, None, READY]


def test_force_sets_readiness_and_keeps_the_run():
    """resultsManager.Set without a probe (a new container: not ready); the
    kubelet keeps lastResult / resultRun, so with successThreshold 2 a new
    container after a run of successes is ready at its first success."""
    state = ProbeState(success_threshold=2)
    state.observe(True)
    assert state.observe(True) == READY
    assert state.force(False) == UNREADY
    assert state.force(False) is None
    assert state.run == 2 and state.last is True
    assert state.observe(True) == READY


def ready_after_each(results: list[bool], fail: int, succeed: int,
                     initial: bool) -> list[bool]:
    """The rule stated another way: readiness after result k is the value of
    the latest result j <= k that ended a run of equal results at least its
    threshold long; the initial value if there is none."""
    out = []
    for k in range(len(results)):
        state = initial
        for j in range(k, -1, -1):
            length = 1
            while j - length >= 0 and results[j - length] == results[j]:
                length += 1
            if length >= (succeed if results[j] else fail):
                state = results[j]
                break
        out.append(state)
    return out


@FAST
@given(results=st.lists(st.booleans(), max_size=40), fail=st.integers(1, 5),
       succeed=st.integers(1, 5), initial=st.booleans())
def test_probe_state_follows_the_consecutive_results_rule(results, fail, succeed, initial):
    """Readiness after each result matches the rule, and a transition is
    reported exactly when readiness changed."""
    state = ProbeState(failure_threshold=fail, success_threshold=succeed,
                       initially_ready=initial)
    expected = ready_after_each(results, fail, succeed, initial)
    before = initial
    for ok, want in zip(results, expected, strict=True):
        change = state.observe(ok)
        assert state.ready is want
        assert change == (None if want == before else (READY if want else UNREADY))
        before = want


@FAST
@given(period=st.floats(0.5, 30.0), timeout=st.floats(0.05, 0.45),
       phase=st.floats(0.0, 1.0), hang=st.floats(0.0, 200.0), fail=st.integers(1, 5))
def test_a_hung_instance_is_unready_within_the_threshold_bounds(period, timeout, phase,
                                                                 hang, fail):
    """Probes at phase + k x period, each failing when sent after the hang
    starts (its answer never comes: it fails ``timeout`` later): unready in
    [hang + (f - 1) x period + timeout, hang + f x period + timeout]."""
    state = ProbeState(failure_threshold=fail, initially_ready=True)
    first = phase * period
    unready_at = None
    for k in range(int((hang + (fail + 2) * period) / period) + 2):
        sent = first + k * period
        ok = sent < hang
        if state.observe(ok) == UNREADY:
            unready_at = sent + (0.0 if ok else timeout)
            break
    assert unready_at is not None
    assert hang + (fail - 1) * period + timeout <= unready_at + 1e-9
    assert unready_at <= hang + fail * period + timeout + 1e-9


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"failure_threshold": 0}, "failure_threshold"),
    ({"failure_threshold": True}, "failure_threshold"),
    ({"success_threshold": 1.5}, "success_threshold"),
    ({"initially_ready": 1}, "initially_ready"),
])
def test_bad_probe_state_settings_are_param_errors(kwargs, field):
    with pytest.raises(ParamError) as err:
        ProbeState(**kwargs)
    assert err.value.field == field


def test_a_result_must_be_a_flag():
    """0 / 1 are not results: a status string slipping in would be a bug."""
    with pytest.raises(ParamError) as err:
        ProbeState().observe("ok")  # type: ignore[arg-type]
    assert err.value.field == "ok"
    assert ProbeState().observe(np.bool_(True)) == READY


# -- ProbeSpec -----------------------------------------------------------------------------

def test_probe_spec_defaults_are_kubernetes():
    """periodSeconds 10, timeoutSeconds 1, failureThreshold 3, successThreshold 1,
    initialDelaySeconds 0."""
    spec = ProbeSpec()
    assert (spec.period, spec.timeout, spec.failure_threshold, spec.success_threshold,
            spec.initial_delay) == (10.0, 1.0, 3, 1, 0.0)
    state = spec.state()
    assert (state.failure_threshold, state.success_threshold, state.ready) == (3, 1, False)


def test_probe_spec_takes_numpy_numbers_and_keeps_plain_ones():
    spec = ProbeSpec(period=np.float64(5), timeout=np.int64(2), failure_threshold=np.int32(4))
    assert spec == ProbeSpec(period=5.0, timeout=2.0, failure_threshold=4)
    assert type(spec.period) is float and type(spec.failure_threshold) is int


@pytest.mark.parametrize(("field", "value"), [
    ("period", 0), ("period", -1.0), ("period", math.inf), ("period", "10"),
    ("timeout", 0.0), ("timeout", math.nan), ("timeout", True),
    ("failure_threshold", 0), ("failure_threshold", 2.0),
    ("success_threshold", -1), ("initial_delay", -0.5), ("initial_delay", None),
])
def test_bad_probe_spec_fields_are_param_errors_naming_them(field, value):
    with pytest.raises(ParamError) as err:
        ProbeSpec(**{field: value})
    assert err.value.field == field


# -- one probe in a World ----------------------------------------------------------------------

def probe_once(world: World, inst: Instance | str, timeout: float, at: float = 0.0
               ) -> list[tuple[float, str, bool]]:
    """Start a probe from a node ``prober`` at ``at``; the run fills the list
    with (time answered, status, probe's bool)."""
    prober = world.nodes.get("prober") or Node(world, "prober")
    out: list[tuple[float, str, bool]] = []

    def proc() -> Generator[Any, Any, None]:
        yield world.env.timeout(at)
        status = yield from probe_status(prober, inst, timeout)
        ok = yield from probe(prober, inst, timeout)
        out.append((world.env.now, status, ok))

    world.env.process(proc())
    return out


def test_a_healthy_instance_answers_ok_and_both_messages_are_counted():
    world = World(1, network=Link(latency=0.001))
    inst = Instance(world, "order-1", service="order", service_time=0.01)
    out = probe_once(world, inst, timeout=1.0)
    world.run(5.0)
    assert out == [(pytest.approx(0.024), "ok", True)]
    # two probes: request + reply each
    assert world.trace.counters[COUNTER] == 4


def test_the_health_request_is_a_control_message_through_the_handler():
    """Body {"op": "health"}, kind control, served by the instance's own handler."""
    world = World(1)
    seen = []

    def handler(ctx: Context, request: Any) -> Generator[Any, Any, Any]:
        seen.append((request.kind, request.body))
        yield ctx.work(0.0)
        return None

    Instance(world, "order-1", handler=handler)
    probe_once(world, "order-1", timeout=1.0)
    world.run(1.0)
    assert seen == [("control", HEALTH), ("control", HEALTH)]


def test_a_hung_instance_fails_at_the_timeout():
    """timeoutSeconds: no answer within the timeout is a failure; only the request counts."""
    world = World(1)
    inst = Instance(world, "order-1", workers=2)
    world.at(None, inst.hang)
    out = probe_once(world, inst, timeout=1.0, at=0.5)
    world.run(10.0)
    assert out == [(pytest.approx(2.5), "timeout", False)]
    assert world.trace.counters[COUNTER] == 2


def test_a_busy_instance_fails_its_probe_behind_the_queue():
    """The probe waits for a worker like any request: one worker busy for 5 s
    means a 1 s probe times out, although the process is fine."""
    world = World(1)
    inst = Instance(world, "order-1", workers=1, service_time=5.0)
    client = Node(world, "client")
    world.at(None, lambda: client.request("order-1", None))
    out = probe_once(world, inst, timeout=1.0, at=0.1)
    world.run(20.0)
    assert out[0][1:] == ("timeout", False)


def test_a_crashed_instance_refuses_and_an_erring_one_fails():
    """A closed port answers refused at once; an error reply is no success."""
    world = World(1)
    dead = Instance(world, "order-1")
    world.at(None, dead.crash)
    sick = Instance(world, "order-2")
    sick.set_error_rate(1.0)
    out_dead = probe_once(world, dead, timeout=1.0, at=0.1)
    out_sick = probe_once(world, sick, timeout=1.0, at=0.1)
    world.run(5.0)
    assert out_dead == [(pytest.approx(0.1), "refused", False)]
    assert out_sick == [(pytest.approx(0.1), "error", False)]
