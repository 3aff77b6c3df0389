"""The public surface: simcomm.run / prepare / describe / scenarios and Result (api, result)."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest

import simcomm
from simcomm import api
from simcomm.errors import ParamError

REQUEST_COLUMNS = ["request_id", "client", "target", "start", "end", "outcome", "endpoint",
                   "latency", "hops", "attempts"]
SUMMARY_KEYS = {"requests", "completed", "failed", "mean_latency", "p50", "p95", "p99",
                "throughput", "availability"}


def test_public_names():
    for name in simcomm.__all__:
        assert hasattr(simcomm, name), name
    assert simcomm.scenarios() == sorted(simcomm.scenarios())
    assert {"mmc", "chain"} <= set(simcomm.scenarios())
    assert isinstance(simcomm.__version__, str)


def test_import_stays_light():
    code = ("import sys, simcomm; heavy = [m for m in ('matplotlib', 'ipywidgets', "
            "'networkx', 'IPython') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_run_returns_a_result_with_the_documented_tables():
    res = simcomm.run("mmc", seed=1, until=1000, servers=3, arrival_rate=2.0)
    assert isinstance(res, simcomm.Result)
    assert res.seed == 1 and res.until == 1000.0
    df = res.requests
    assert list(df.columns) == REQUEST_COLUMNS
    assert len(df) > 1500
    assert df["request_id"].is_monotonic_increasing
    assert (df["hops"] == 1).all()
    ok = df[df.outcome == "ok"]
    assert (ok["latency"] == ok["end"] - ok["start"]).all()
    assert set(df["client"]) == {"users"} and set(df["target"]) == {"server-1"}
    assert list(res.trace.columns)[:9] == ["time", "event", "message_id", "kind", "source",
                                           "dest", "trace_id", "size", "reason"]
    assert list(res.pools.columns) == ["time", "node", "busy", "queued"]
    assert list(res.events.columns) == ["time", "node", "event", "detail"]
    assert {"message_id", "fate", "reason", "sent", "ended"} <= set(res.messages.columns)
    assert res.requests is res.requests  # built once


def test_summary_keys_and_values():
    res = simcomm.run("mmc", seed=1, until=1000, servers=3, arrival_rate=2.0)
    s = res.summary()
    assert SUMMARY_KEYS.issubset(s)
    df = res.requests
    ok = df[df.outcome == "ok"]
    assert s["requests"] == len(df)
    assert s["completed"] == len(ok)
    assert s["failed"] == 0 and s["availability"] == 1.0
    assert s["mean_latency"] == pytest.approx(ok["latency"].mean())
    assert s["p50"] == pytest.approx(ok["latency"].median())
    assert s["p50"] <= s["p95"] <= s["p99"] <= ok["latency"].max()
    assert s["throughput"] == pytest.approx(len(ok) / 1000)
    assert s["throughput"] == pytest.approx(2.0, rel=0.1)
    for k, v in s.items():
        if k == "bottleneck":  # a name; stable is a flag; the rest are numbers
            assert v == "server-1"
        elif k == "stable":
            assert v is True
        else:
            assert isinstance(v, (int, float)) and not isinstance(v, bool)


def test_summary_of_a_run_without_requests():
    res = simcomm.run("mmc", seed=1, until=0.001, arrival_rate=0.01)
    s = res.summary()
    assert s["requests"] == 0
    assert math.isnan(s["mean_latency"]) and math.isnan(s["availability"])
    assert s["throughput"] == 0
    assert list(res.requests.columns) == REQUEST_COLUMNS


def test_availability_counts_failures_but_not_pending():
    res = simcomm.run("chain", seed=3, until=60.0, service_availability=1.0,
                      last_service_error_rate=0.5)
    s = res.summary()
    assert s["failed"] > 0
    assert s["availability"] == pytest.approx(s["completed"] / (s["completed"] + s["failed"]))
    assert s["completed"] + s["failed"] + s["pending"] == s["requests"]


def test_trace_off_keeps_requests_and_summary():
    on = simcomm.run("mmc", seed=2, until=500, arrival_rate=0.9)
    off = simcomm.run("mmc", seed=2, until=500, arrival_rate=0.9, trace=False)
    assert off.requests["hops"].isna().all()
    assert off.trace.empty and off.pools.empty
    a, b = on.summary(), off.summary()
    assert a == b


def test_utilisation():
    res = simcomm.run("mmc", seed=3, until=5000, arrival_rate=1.6, servers=2)
    u = res.utilisation()
    assert set(u) == {"server-1"}
    assert u["server-1"] == pytest.approx(0.8, abs=0.05)


def test_repr_mentions_the_scenario_and_seed():
    res = simcomm.run("mmc", seed=9, until=100)
    text = repr(res)
    assert "mmc" in text and "seed=9" in text


def test_result_of_a_world_not_yet_run():
    with pytest.raises(ValueError):
        simcomm.Result(simcomm.World(0))


def test_fingerprint_is_stable_and_sensitive():
    a = simcomm.run("chain", seed=5, until=10)
    b = simcomm.run("chain", seed=5, until=10)
    c = simcomm.run("chain", seed=5, until=10, request_rate=10.5)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 64


# -- bad input fails before time zero ------------------------------------------------------

@pytest.fixture
def no_world(monkeypatch):
    """Make building a World fail the test: bad input must be caught before."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a World was built for bad input")

    monkeypatch.setattr(api, "World", forbidden)


@pytest.mark.parametrize(("args", "kwargs", "field"), [
    (("nosuch",), {}, "scenario"),
    (("mmc",), {"servers": 0}, "servers"),
    (("mmc",), {"arrival_rate": -1.0}, "arrival_rate"),
    (("mmc",), {"service_distribution": "weibull"}, "service_distribution"),
    (("mmc",), {"server": 3}, "server"),
    (("mmc",), {"servers": "3"}, "servers"),
    (("mmc",), {"seed": -1}, "seed"),
    (("mmc",), {"seed": 1.5}, "seed"),
    (("mmc",), {"seed": True}, "seed"),
    (("mmc",), {"until": 0}, "until"),
    (("mmc",), {"until": -5}, "until"),
    (("mmc",), {"until": math.inf}, "until"),
    (("mmc",), {"until": math.nan}, "until"),
    (("mmc",), {"until": "10"}, "until"),
    (("chain",), {"depth": 0}, "depth"),
    (("mmc",), {"seed": 2**64}, "seed"),
    (("mmc",), {"until": 10**400}, "until"),
    (("mmc",), {"arrival_rate": 10**400}, "arrival_rate"),
    (("mmc",), {"trace": "false"}, "trace"),
    (("mmc",), {"trace": None}, "trace"),
])
def test_bad_input_raises_before_a_world_is_built(no_world, args, kwargs, field):
    with pytest.raises(ParamError) as info:
        simcomm.run(*args, **kwargs)
    assert info.value.field == field


def test_the_guard_itself_works(no_world):
    with pytest.raises(AssertionError, match="World was built"):
        simcomm.run("mmc", until=1)


def test_prepare_checks_and_fills_in_the_default_until():
    sc, p, until = simcomm.prepare("mmc", seed=3, servers=2)
    assert sc.name == "mmc" and p.servers == 2 and until == sc.until
    _, _, until = simcomm.prepare("mmc", until=12)
    assert until == 12.0 and isinstance(until, float)


def test_prepare_takes_numpy_numbers_and_hands_on_plain_ones():
    import numpy as np

    _, p, until = simcomm.prepare("mmc", seed=np.int64(3), until=np.float32(12.5),
                                  servers=np.int64(2), arrival_rate=np.float64(1.5))
    assert (p.servers, p.arrival_rate, until) == (2, 1.5, 12.5)
    assert type(p.servers) is int and type(p.arrival_rate) is float and type(until) is float
    res = simcomm.run("mmc", seed=np.int64(3), until=12.5, warn=False)
    assert type(res.seed) is int and res.seed == 3


def test_run_accepts_a_scenario_object():
    from simcomm.scenarios import get

    res = simcomm.run(get("mmc"), seed=1, until=50)
    assert res.scenario.name == "mmc"


# -- describe ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", simcomm.scenarios())
def test_describe_lists_every_field(name):
    from simcomm.scenarios import get

    rows = simcomm.describe(name)
    specs = get(name).fields()
    assert [r["field"] for r in rows] == [s.name for s in specs]
    for r, s in zip(rows, specs, strict=True):
        assert set(r) == {"field", "type", "default", "allowed", "unit", "help"}
        assert r["type"] == s.type.__name__
        assert r["default"] == s.default
        assert r["allowed"] == s.allowed() and r["help"] == s.help
    pd.DataFrame(rows)  # a table in a notebook


def test_describe_unknown():
    with pytest.raises(ParamError) as info:
        simcomm.describe("nosuch")
    assert info.value.field == "scenario"
