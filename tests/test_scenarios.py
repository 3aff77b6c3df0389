"""Scenarios: Params metadata, validation, and what the ready-made ones do (scenarios/)."""

from __future__ import annotations

import dataclasses
import math

import pytest

import simcomm
from simcomm.errors import ParamError
from simcomm.scenarios import fields, get, make_params, names, param, parse_value
from simcomm.scenarios.base import Scenario
from simcomm.scenarios.chain import SERVICE_NAMES

ALL = names()


# -- metadata -------------------------------------------------------------------------

def test_the_ready_made_scenarios_are_registered():
    assert {"mmc", "chain"} <= set(ALL)
    assert sorted(ALL) == ALL


@pytest.mark.parametrize("name", ALL)
def test_every_field_says_what_it_is_and_what_is_allowed(name):
    sc = get(name)
    assert sc.name == name and sc.title and sc.description
    assert sc.until > 0 and sc.views
    specs = sc.fields()
    assert [s.name for s in specs] == [f.name for f in dataclasses.fields(sc.params)]
    for s in specs:
        assert len(s.help) > 10, s.name
        assert s.label
        if s.type in (int, float):
            assert s.unit, f"{name}.{s.name} has no unit"
            assert s.range is not None, f"{name}.{s.name} has no range"
            lo, hi = s.range
            assert lo < hi
            assert lo <= s.default <= hi, f"{name}.{s.name} default outside its range"
            assert isinstance(s.default, s.type) and not isinstance(s.default, bool)
            if s.step is not None:
                assert 0 < s.step <= hi - lo
        elif s.type is str:
            assert s.choices, f"{name}.{s.name} has no choices"
            assert s.default in s.choices
        else:
            assert s.type is bool, f"{name}.{s.name}: unexpected type {s.type}"
            assert isinstance(s.default, bool)
        assert s.check(s.default) == s.default


@pytest.mark.parametrize("name", ALL)
def test_defaults_make_valid_params_and_run(name):
    sc = get(name)
    p = make_params(sc)
    assert p == sc.defaults()
    res = simcomm.run(name, seed=1, until=5.0)
    assert res.ledger()["balanced"]
    assert res.params == p and res.scenario is sc


@pytest.mark.parametrize("name", ALL)
def test_every_bound_of_every_range_is_accepted_and_just_outside_is_not(name):
    sc = get(name)
    for s in sc.fields():
        if s.range is None:
            continue
        lo, hi = s.range
        for ok in (lo, hi):
            assert getattr(make_params(sc, {s.name: s.type(ok)}), s.name) == ok
        below = lo - (1 if s.type is int else 1e-9 * max(1.0, abs(lo)))
        above = hi + (1 if s.type is int else 1e-9 * max(1.0, abs(hi)))
        for bad in (below, above):
            with pytest.raises(ParamError) as info:
                make_params(sc, {s.name: s.type(bad)})
            assert info.value.field == s.name


# -- make_params errors -------------------------------------------------------------------

@pytest.mark.parametrize(("name", "values", "field"), [
    ("mmc", {"arrival_rate": -1.0}, "arrival_rate"),
    ("mmc", {"arrival_rate": 0.0}, "arrival_rate"),
    ("mmc", {"service_rate": -0.5}, "service_rate"),
    ("mmc", {"servers": 0}, "servers"),
    ("mmc", {"servers": -3}, "servers"),
    ("mmc", {"service_distribution": "pareto"}, "service_distribution"),
    ("mmc", {"service_distribution": "exponentiall"}, "service_distribution"),
    ("mmc", {"serverz": 3}, "serverz"),
    ("mmc", {"servers": "3"}, "servers"),
    ("mmc", {"servers": 2.5}, "servers"),
    ("mmc", {"servers": True}, "servers"),
    ("mmc", {"servers": None}, "servers"),
    ("mmc", {"arrival_rate": "fast"}, "arrival_rate"),
    ("mmc", {"arrival_rate": True}, "arrival_rate"),
    ("mmc", {"arrival_rate": math.nan}, "arrival_rate"),
    ("mmc", {"arrival_rate": math.inf}, "arrival_rate"),
    ("chain", {"depth": 7}, "depth"),
    ("chain", {"service_availability": 1.5}, "service_availability"),
    ("chain", {"last_service_hangs": "yes"}, "last_service_hangs"),
    ("chain", {"last_service_hangs": 1}, "last_service_hangs"),
    ("chain", {"message_format": "yaml"}, "message_format"),
    ("chain", {"request_rate": -10.0}, "request_rate"),
])
def test_make_params_names_the_field(name, values, field):
    with pytest.raises(ParamError) as info:
        make_params(get(name), values)
    err = info.value
    assert err.field == field
    assert err.value is values[field] or err.value == values[field]
    assert err.allowed
    text = str(err)
    assert text.startswith(f"{field}=") and err.allowed in text


def test_unknown_field_lists_the_fields():
    with pytest.raises(ParamError) as info:
        make_params(get("mmc"), {"server": 2})
    assert "servers" in info.value.allowed and "arrival_rate" in info.value.allowed


@pytest.mark.parametrize(("call", "meant"), [
    (lambda: get("mcc"), "mmc"),
    (lambda: get("Chain"), "chain"),
    (lambda: make_params(get("mmc"), {"servr": 3}), "servers"),
    (lambda: make_params(get("mmc"), {"arival_rate": 1.0}), "arrival_rate"),
    (lambda: make_params(get("chain"), {"message_format": "jsn"}), "json"),
    (lambda: make_params(get("mmc"), {"service_distribution": "Lognormall"}), "lognormal"),
])
def test_a_near_miss_says_did_you_mean(call, meant):
    """A mistyped scenario, field or choice names the one meant, before the list."""
    with pytest.raises(ParamError) as info:
        call()
    assert f"did you mean {meant!r}? " in info.value.allowed
    assert info.value.allowed.index("did you mean") < info.value.allowed.index(",")


@pytest.mark.parametrize("call", [
    lambda: get("zzzz"), lambda: get(None),
    lambda: make_params(get("mmc"), {"qwxy": 3}),
    lambda: make_params(get("chain"), {"message_format": "yaml"}),
    lambda: make_params(get("chain"), {"message_format": 3}),
])
def test_a_far_miss_only_lists_what_is_allowed(call):
    with pytest.raises(ParamError) as info:
        call()
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("text", ["JSON", "Json", "json"])
def test_choices_ignore_case(text):
    """``JSON`` means json, from Python as from the command line."""
    assert make_params(get("chain"), {"message_format": text}).message_format == "json"
    res = simcomm.run("chain", seed=1, until=1.0, message_format=text)
    assert res.params.message_format == "json"


def test_whole_floats_are_accepted_for_int_fields_and_ints_for_float_fields():
    p = make_params(get("mmc"), {"servers": 3.0, "arrival_rate": 2})
    assert p.servers == 3 and type(p.servers) is int
    assert p.arrival_rate == 2.0 and type(p.arrival_rate) is float


def test_unknown_scenario_lists_the_known_ones():
    with pytest.raises(ParamError) as info:
        get("mm1")
    assert info.value.field == "scenario"
    for name in ALL:
        assert name in info.value.allowed
    with pytest.raises(ParamError):
        get(None)  # type: ignore[arg-type]


def test_allowed_in_words():
    specs = {s.name: s for s in get("mmc").fields()}
    assert specs["servers"].allowed() == "a whole number from 1 to 64 workers"
    assert specs["arrival_rate"].allowed().startswith("a number from 0.01 to 1000")
    assert specs["service_distribution"].allowed() == (
        "one of exponential, constant, lognormal")
    chain_specs = {s.name: s for s in get("chain").fields()}
    assert chain_specs["last_service_hangs"].allowed() == "true or false"


@pytest.mark.parametrize(("field", "text", "value"), [
    ("servers", "3", 3), ("arrival_rate", "2.5", 2.5), ("arrival_rate", "1e-1", 0.1),
    ("service_distribution", "constant", "constant"),
])
def test_parse_value(field, text, value):
    spec = {s.name: s for s in get("mmc").fields()}[field]
    assert parse_value(spec, text) == value


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("Yes", True), ("on", True), ("1", True),
    ("false", False), ("NO", False), ("off", False), ("0", False),
])
def test_parse_bool(text, value):
    spec = {s.name: s for s in get("chain").fields()}["last_service_hangs"]
    assert parse_value(spec, text) is value


@pytest.mark.parametrize(("name", "field", "text"), [
    ("mmc", "servers", "three"), ("mmc", "servers", "2.5"), ("mmc", "arrival_rate", "fast"),
    ("chain", "last_service_hangs", "maybe"),
])
def test_parse_value_errors_name_the_field(name, field, text):
    spec = {s.name: s for s in get(name).fields()}[field]
    with pytest.raises(ParamError) as info:
        parse_value(spec, text)
    assert info.value.field == field and info.value.value == text


def test_a_scenarios_own_cross_field_check_runs_before_anything():
    @dataclasses.dataclass(frozen=True)
    class Params:
        low: float = param(1.0, range=(0.0, 10.0), unit="s", help="the lower bound of it")
        high: float = param(2.0, range=(0.0, 10.0), unit="s", help="the upper bound of it")

    def check(p: Params) -> None:
        if p.high < p.low:
            raise ParamError("high", p.high, f"a number >= low ({p.low})")

    built = []
    sc = Scenario(name="pair", title="t", description="d", params=Params,
                  build=lambda world, p: built.append(p), views=(), until=1.0, check=check)
    assert [s.name for s in fields(Params)] == ["low", "high"]
    with pytest.raises(ParamError) as info:
        simcomm.run(sc, low=5.0, high=3.0)
    assert info.value.field == "high"
    assert built == []
    res = simcomm.run(sc, low=1.0, high=3.0)
    # built for the run, and before it for the size estimate's pilot (no Load declared)
    assert res.params == Params(low=1.0, high=3.0)
    assert built == [Params(low=1.0, high=3.0)] * 2


# -- mmc ---------------------------------------------------------------------------------

def test_mmc_network_latency_adds_two_one_way_delays():
    base = simcomm.run("mmc", seed=4, until=4000.0, arrival_rate=0.2, servers=50)
    slow = simcomm.run("mmc", seed=4, until=4000.0, arrival_rate=0.2, servers=50,
                       network_latency=0.5)
    a, b = base.summary(), slow.summary()
    # no queueing with 50 workers; request and reply each take Exp(0.5):
    # +1 s on average, sd sqrt(2)*0.5 per request
    n = b["completed"]
    assert abs((b["mean_latency"] - a["mean_latency"]) - 1.0) < 5 * math.sqrt(0.5 / n) * 2


@pytest.mark.parametrize("dist", ["exponential", "constant", "lognormal"])
def test_mmc_service_distribution_has_mean_one_over_mu(dist):
    res = simcomm.run("mmc", seed=5, until=5000.0, arrival_rate=1.0, service_rate=2.0,
                      servers=64, service_distribution=dist)
    s = res.summary()
    assert abs(s["mean_latency"] - 0.5) < 0.03  # no waiting: ~5000 samples, sd <= 0.5
    if dist == "constant":
        assert s["p50"] == s["p99"] == pytest.approx(0.5)


# -- chain --------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", range(1, len(SERVICE_NAMES) + 1))
def test_chain_hops_are_depth_plus_one(depth):
    res = simcomm.run("chain", seed=depth, until=20.0, depth=depth, service_availability=1.0)
    df = res.requests
    ok = df[df.outcome == "ok"]
    assert len(ok) > 100
    assert (ok["hops"] == depth + 1).all()
    instances = [n for n in res.world.nodes if n not in ("users", "api-gateway-1")]
    assert instances == [f"{s}-1" for s in SERVICE_NAMES[:depth]]


def test_chain_latency_adds_up_along_the_chain():
    lat = [simcomm.run("chain", seed=1, until=60.0, depth=d, service_availability=1.0)
           .summary()["mean_latency"] for d in (1, 3, 6)]
    assert lat[0] < lat[1] < lat[2]
    # each extra service: ~ its service time (0.02 s) plus two hops (0.004 s)
    assert (lat[2] - lat[0]) / 5 == pytest.approx(0.024, rel=0.15)


def test_chain_error_rate_one_fails_everything():
    res = simcomm.run("chain", seed=1, until=20.0, service_availability=1.0,
                      last_service_error_rate=1.0)
    s = res.summary()
    assert s["completed"] == 0 and s["availability"] == 0.0
    assert s["error"] == s["failed"] > 100


def test_chain_hang_exhausts_the_callers_and_users_give_up():
    res = simcomm.run("chain", seed=2, until=60.0, service_availability=1.0,
                      last_service_hangs=True, hang_at=20.0, hang_duration=20.0,
                      user_patience=2.0)
    df = res.requests
    before = df[df.start < 19.0]
    during = df[(df.start > 21.0) & (df.start < 38.0)]
    after = df[df.start > 45.0]
    assert (before.outcome == "ok").mean() > 0.99
    assert set(during.outcome) <= {"abandoned", "rejected"}
    assert (during.outcome == "abandoned").any()
    assert (after.outcome == "ok").mean() > 0.99
    # the gateway's workers were all stuck waiting on the chain
    pools = res.pools
    gw = pools[(pools.node == "api-gateway-1") & (pools.time > 21) & (pools.time < 38)]
    assert gw["busy"].max() == 10
    assert res.ledger()["balanced"]


def test_chain_slowdown_slows_the_last_service():
    a = simcomm.run("chain", seed=3, until=60.0, service_availability=1.0).summary()
    b = simcomm.run("chain", seed=3, until=60.0, service_availability=1.0,
                    last_service_slowdown=5.0).summary()
    # the last service's 0.02 s becomes 0.1 s
    assert b["mean_latency"] - a["mean_latency"] == pytest.approx(0.08, rel=0.2)


def test_chain_message_format_changes_bytes_on_the_wire():
    sizes = {}
    for fmt in ("xml", "json", "protobuf"):
        res = simcomm.run("chain", seed=1, until=5.0, message_format=fmt)
        tr = res.trace
        sizes[fmt] = tr[(tr.event == "send") & (tr.kind == "command")]["size"].mean()
    assert sizes["xml"] > sizes["json"] > sizes["protobuf"] > 0
