"""Runs cannot run away: size estimate, memory budget, refusal, progress, overload warning.

(simcomm.guard, simcomm.api.prepare / estimate / run)
"""

from __future__ import annotations

import gc
import tracemalloc
import warnings

import numpy as np
import pytest

import simcomm
from simcomm import api, guard
from simcomm.engine.world import World
from simcomm.errors import OverloadWarning, ParamError, RunTooLarge, SimcommWarning
from simcomm.scenarios import get, make_params

GiB = 1 << 30
MiB = 1 << 20


@pytest.fixture
def laptop(monkeypatch):
    """A 16 GiB machine with no budget in the environment: the default is 8 GiB."""
    monkeypatch.delenv(guard.BUDGET_ENV, raising=False)
    monkeypatch.setattr(guard, "_physical_memory", lambda: 16 * GiB)


@pytest.fixture
def no_world(monkeypatch):
    """Fail if anything builds a World (a refusal must come before one)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a World was built")

    monkeypatch.setattr(World, "__init__", refuse)


# -- the issue's runaway runs are refused, fast, before a World exists ------------------

@pytest.mark.parametrize(("kwargs", "pile_up"), [
    ({"until": 1e9}, False),
    ({"arrival_rate": 1000, "service_rate": 0.01}, True),  # default until, 10 000 s
    ({"until": 1e308}, False),
])
def test_the_issues_runaway_runs_are_refused_before_a_world_exists(laptop, no_world,
                                                                   kwargs, pile_up):
    # no_world: the refusal is arithmetic on the declared load, nothing is simulated
    with pytest.raises(RunTooLarge) as info:
        simcomm.run("mmc", **kwargs)
    err = info.value
    assert isinstance(err, ParamError) and err.field == "until"
    text = str(err)
    assert "\n" not in text  # one line, for the CLI
    assert "over the memory budget of 8.0 GiB" in text
    assert "until <= " in text and "memory_budget=" in text
    assert "--memory-budget" in text and "SIMCOMM_MEMORY_BUDGET" in text
    assert isinstance(err.estimate, guard.Estimate) and err.estimate.bytes > 8 * GiB
    assert ("pile up" in text and "still pending at the end" in text) == pile_up


def test_the_refusal_quotes_an_until_that_fits_and_it_does(laptop):
    with pytest.raises(RunTooLarge) as info:
        api.prepare("mmc", until=1e9)
    quoted = float(str(info.value).split("until <= ")[1].split(" s")[0])
    assert 1e6 < quoted < 1e9
    api.prepare("mmc", until=quoted)  # the advice works
    with pytest.raises(RunTooLarge):
        api.prepare("mmc", until=quoted * 1.5)


def test_the_refusal_offers_trace_false_only_when_that_alone_would_fit(laptop):
    # 1000 req/s for 10 000 s, all piling up: ~10.1 GiB traced, ~9.3 GiB without the trace
    with pytest.raises(RunTooLarge) as info:
        api.prepare("mmc", arrival_rate=1000, service_rate=0.01, memory_budget="9.7G")
    assert "trace=False (CLI --no-trace; about 9.3 GiB)" in str(info.value)
    api.prepare("mmc", arrival_rate=1000, service_rate=0.01, memory_budget="9.7G", trace=False)
    with pytest.raises(RunTooLarge) as info:  # too large even untraced: not offered
        api.prepare("mmc", until=1e9)
    assert "trace=False" not in str(info.value)


def test_the_overloaded_refusal_names_the_rates():
    with pytest.raises(RunTooLarge) as info:
        api.prepare("mmc", arrival_rate=1000, service_rate=0.01, memory_budget="1G")
    assert ("requests arrive at 1000 req/s but the system carries about 0.01 req/s"
            in str(info.value))


@pytest.mark.parametrize("name", simcomm.scenarios())
def test_normal_runs_are_small_and_never_refused(name):
    # the defaults of every scenario, and mmc's long run, fit a Binder session's budget
    for until in (None, 10_000.0) if name == "mmc" else (None,):
        for trace in (True, False):
            est = api.estimate(name, until=until, trace=trace)
            assert est.bytes < 32 * MiB
            api.prepare(name, until=until, trace=trace, memory_budget="1G")


@pytest.mark.parametrize("name", simcomm.scenarios())
def test_every_scenario_is_guarded_whether_it_declares_its_load_or_not(laptop, name):
    # prepare is what run, the CLI and the dashboards all call before time zero
    with pytest.raises(RunTooLarge) as info:
        api.prepare(name, until=1e9)
    sc = get(name)
    declared = sc.load is not None and sc.capacity is not None
    assert info.value.estimate.source == ("model" if declared else "pilot")


def test_a_pilot_measures_the_rates_of_a_scenario_that_declares_nothing():
    import dataclasses

    sc = dataclasses.replace(get("formats"), load=None)  # whatever formats declares
    est = guard.estimate(sc, make_params(sc), sc.until)
    assert est.source == "pilot"
    assert est.requests == pytest.approx(50 * 60, rel=0.1)  # request_rate * until
    assert est.pending < 0.01 * est.requests  # a stable run: nothing piles up
    over = guard.estimate(sc, make_params(sc, {"request_rate": 1000, "order_lines": 2000}),
                          sc.until)
    assert over.pending > 0.5 * over.requests  # the link carries ~60 req/s of these


# -- the estimate --------------------------------------------------------------------

def test_the_model_estimate_counts_arrivals_and_the_pile_up():
    est = api.estimate("mmc", until=10_000, arrival_rate=2.0, service_rate=1.0)
    assert est.source == "model" and est.capacity == 1.0
    assert est.requests == pytest.approx(20_000)
    assert est.pending == pytest.approx(10_000)
    assert est.messages == pytest.approx(10_000 * 2 + 10_000)
    untraced = api.estimate("mmc", until=10_000, arrival_rate=2.0, trace=False)
    assert untraced.bytes == pytest.approx(est.untraced_bytes)
    assert untraced.bytes < est.bytes
    assert est.bytes == pytest.approx(est.base_bytes + est.bytes_per_second * 10_000)
    stable = api.estimate("mmc", until=10_000)
    assert stable.pending == 0 and stable.requests == pytest.approx(8_000)


def test_estimate_takes_the_arguments_of_run_and_checks_them():
    assert simcomm.estimate is api.estimate
    assert simcomm.estimate("mmc", until=1e9).bytes > 1e11  # and refuses nothing
    with pytest.raises(ParamError) as info:
        api.estimate("mmc", servers=0)
    assert info.value.field == "servers"
    with pytest.raises(ParamError) as info:
        api.estimate("mmc", trace="no")
    assert info.value.field == "trace"


def test_the_pilot_agrees_with_the_model_where_both_exist():
    import dataclasses

    for name, params in (("mmc", {"arrival_rate": 2.0}), ("mmc", {}), ("chain", {})):
        sc = get(name)
        p = make_params(sc, params)
        model = guard.estimate(sc, p, 5_000.0)
        pilot = guard.estimate(dataclasses.replace(sc, load=None), p, 5_000.0)
        assert pilot.source == "pilot"
        assert pilot.requests == pytest.approx(model.requests, rel=0.15)
        assert pilot.bytes == pytest.approx(model.bytes, rel=0.3)


def _held_bytes(name: str, until: float, trace: bool, **params) -> int:
    sc = get(name)
    p = make_params(sc, params)
    gc.collect()
    tracemalloc.start()
    try:
        world = World(1, trace=trace)
        sc.build(world, p)
        built = tracemalloc.get_traced_memory()[0]
        world.run(until)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - built
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("name", "until", "trace", "params"), [
    ("mmc", 2_000, True, {"arrival_rate": 2.0}),
    ("mmc", 2_000, False, {"arrival_rate": 2.0}),
    ("mmc", 4, True, {"arrival_rate": 1000.0, "service_rate": 0.01}),
    ("chain", 60, True, {}),
    ("formats", 15, True, {}),
    ("formats", 5, False, {"request_rate": 300.0, "order_lines": 2000}),
])
def test_the_estimate_is_calibrated_against_measured_memory(name, until, trace, params):
    """The bytes a run holds at its end (tracemalloc) are at most the estimate, and
    the estimate is not wildly above them (its fixed 1 MiB allowance aside)."""
    est = api.estimate(name, until=until, trace=trace, **params)
    held = _held_bytes(name, until, trace, **params)
    assert est.bytes >= 0.9 * held
    assert est.bytes - est.base_bytes <= 1.6 * held


# -- the budget ----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "nbytes"), [
    ("4G", 4 * GiB), ("500M", 500 * MiB), ("1.5g", int(1.5 * GiB)), ("4GiB", 4 * GiB),
    ("4GB", 4 * GiB), (" 2 t ", 2 << 40), ("64k", 64 << 10), ("1000", 1000), ("1e9", 10**9),
    (1000, 1000), (np.int64(GiB), GiB), (2.5e9, 2_500_000_000), (np.float32(1024), 1024),
])
def test_budget_sizes(value, nbytes):
    assert guard.parse_size(value) == nbytes
    assert api.memory_budget(value) == nbytes


@pytest.mark.parametrize("value", [
    "", "lots", "4X", "-1G", "G", "4 G B", "nan", "inf", "1e400", 0, 0.5, -5, True, False,
    float("nan"), float("inf"), 10**400, [], {}, b"4G", np.bool_(True), 1 + 2j,
])
def test_bad_budgets_name_the_field(value):
    with pytest.raises(ParamError) as info:
        api.memory_budget(value)
    assert info.value.field == "memory_budget"
    with pytest.raises(ParamError) as info:
        simcomm.run("mmc", until=10, memory_budget=value)
    assert info.value.field == "memory_budget"


def test_the_default_budget_is_half_the_memory(monkeypatch):
    monkeypatch.delenv(guard.BUDGET_ENV, raising=False)
    monkeypatch.setattr(guard, "_physical_memory", lambda: 8 * GiB)
    assert api.memory_budget() == 4 * GiB
    monkeypatch.setattr(guard, "_physical_memory", lambda: None)  # unknown: a small laptop
    assert api.memory_budget() == guard.FALLBACK_MEMORY // 2


def test_this_machines_memory_is_read():
    total = guard._physical_memory()
    assert total is not None and 256 * MiB < total < 1 << 50


def test_the_environment_sets_the_budget_and_an_argument_overrides_it(monkeypatch, no_world):
    monkeypatch.setenv(guard.BUDGET_ENV, "1M")
    assert api.memory_budget() == MiB
    with pytest.raises(RunTooLarge) as info:  # mmc's defaults need ~10 MiB
        simcomm.run("mmc")
    assert "memory budget of 1.0 MiB" in str(info.value)
    api.prepare("mmc", memory_budget="1G")  # the argument wins
    monkeypatch.setenv(guard.BUDGET_ENV, "lots")
    with pytest.raises(ParamError) as info:
        api.prepare("mmc")
    assert info.value.field == "SIMCOMM_MEMORY_BUDGET"
    monkeypatch.setenv(guard.BUDGET_ENV, "  ")  # blank: as if unset
    assert api.memory_budget() > MiB


# -- trace, progress, warn ----------------------------------------------------------

@pytest.mark.parametrize("trace", ["false", "True", None, 0, 1, [], np.int64(1), 1.0])
def test_trace_must_be_a_bool(no_world, trace):
    with pytest.raises(ParamError) as info:
        simcomm.run("mmc", until=10, trace=trace)
    assert info.value.field == "trace"


def test_trace_accepts_numpy_bools():
    res = simcomm.run("mmc", until=50, trace=np.bool_(False))
    assert res.world.trace.enabled is False


def test_progress_slices_do_not_change_the_run(capsys):
    plain = simcomm.run("chain", seed=3, until=40, progress=False)
    seen: list[float] = []
    sliced = simcomm.run("chain", seed=3, until=40, progress=seen.append)
    shown = simcomm.run("chain", seed=3, until=40, progress=True)
    default = simcomm.run("chain", seed=3, until=40)
    assert plain.fingerprint() == sliced.fingerprint() == shown.fingerprint() \
        == default.fingerprint()
    assert len(seen) > 3 and seen == sorted(seen) and seen[-1] == 1.0
    assert sliced.until == plain.until == 40.0


def test_the_bar_shows_only_when_asked_or_when_the_run_is_long(capsys, monkeypatch):
    simcomm.run("mmc", until=500)  # short: the delayed bar never appears
    assert capsys.readouterr().err == ""
    simcomm.run("mmc", until=500, progress=True)
    assert "simcomm mmc" in capsys.readouterr().err
    monkeypatch.setattr(api, "PROGRESS_DELAY", 0.0)  # as if the run had been long
    simcomm.run("mmc", until=500)
    assert "simulated s" in capsys.readouterr().err


def test_ctrl_c_stops_the_run_with_the_time_reached_and_the_bar_closed(monkeypatch):
    from tqdm.auto import tqdm

    calls = []
    real_run = World.run

    def interrupted(self, until):
        calls.append(until)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run(self, until)

    monkeypatch.setattr(World, "run", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        simcomm.run("mmc", until=1000, progress=True)
    assert info.value.simcomm_time == pytest.approx(calls[1])
    assert 0 < info.value.simcomm_time < 1000
    assert len(tqdm._instances) == 0  # closed


@pytest.mark.parametrize(("field", "value"), [("progress", "yes"), ("progress", 3),
                                              ("warn", "no"), ("warn", None)])
def test_progress_and_warn_are_checked(field, value):
    with pytest.raises(ParamError) as info:
        simcomm.run("mmc", until=10, **{field: value})
    assert info.value.field == field


def test_warn_issues_one_overload_warning_for_an_overloaded_run():
    """mmc at lambda=2, mu=1: half the requests still pending (issue 6, item 4)."""
    with pytest.warns(OverloadWarning) as caught:
        res = simcomm.run("mmc", seed=1, until=2_000, arrival_rate=2.0, service_rate=1.0)
    assert len(caught) == 1
    assert issubclass(caught[0].category, SimcommWarning)
    assert str(caught[0].message) == " ".join(res.warnings())
    assert "pending" in str(caught[0].message) and "server-1" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simcomm.run("mmc", seed=1, until=2_000, arrival_rate=2.0, warn=False)
        simcomm.run("mmc", seed=1, until=2_000)  # healthy: silent
