"""Random wrong values at every field of every scenario, and at seed, until, trace.

The property of issue 6 (item 10) that keeps its fuzzing findings closed:
whatever wrong-typed or out-of-range value is given, ``simcomm.run``
raises a ParamError naming that field -- never another exception, never an
OverflowError, and never after a World was built (nothing runs).  And the
other side of item 7: numpy numbers in range are accepted and come out as
plain ints and floats.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import simcomm
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.scenarios import get, make_params

SPECS = [(name, spec) for name in simcomm.scenarios() for spec in get(name).fields()]

FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def no_world():
    """Fail if a World is built: a bad value must be refused before anything runs."""
    with mock.patch.object(World, "__init__", side_effect=AssertionError("a World was built")):
        yield


# values no numeric, flag or choice field may take
ANYTHING_WRONG = st.one_of(
    st.none(), st.text(max_size=8), st.binary(max_size=4), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.tuples(st.integers()),
    st.just(1 + 2j), st.just(object()), st.just(np.array([1.0, 2.0])),
)
# not a number at all, or a number no range admits
NOT_A_FINITE_NUMBER = st.sampled_from([
    math.nan, math.inf, -math.inf, 10**400, -(10**400), 1e308, -1e308, np.float64(np.nan),
    np.float64(np.inf), np.float32(np.inf), np.float64(1e300),
])
BOOLS = st.sampled_from([True, False, np.bool_(True), np.bool_(False)])


def _wrong_for(spec) -> st.SearchStrategy:
    """Values ``spec`` must refuse."""
    if spec.type is bool:
        return st.one_of(ANYTHING_WRONG, st.integers(), st.floats(allow_nan=True),
                         st.sampled_from(["true", "false", "0", "1", np.int64(1)]))
    if spec.choices:
        folded = {c.casefold() for c in spec.choices}
        # a whole number naming a choice is that choice (acks=1 is acks "1"); others are wrong
        return st.one_of(
            st.none(), st.integers().filter(lambda i: str(i) not in spec.choices),
            st.floats(), BOOLS, st.lists(st.text(), max_size=2),
            st.text(max_size=12).filter(lambda t: t.casefold() not in folded),
            st.sampled_from([b"json", np.int64(7)]))
    lo, hi = spec.range
    out_of_range = st.one_of(
        st.floats(max_value=lo, exclude_max=True, allow_nan=False),
        st.floats(min_value=hi, exclude_min=True, allow_nan=False),
        st.integers(max_value=math.ceil(lo) - 1), st.integers(min_value=math.floor(hi) + 1),
        st.integers(min_value=math.floor(hi) + 1, max_value=2**62).map(np.int64),
    )
    wrong = [ANYTHING_WRONG, BOOLS, NOT_A_FINITE_NUMBER, out_of_range]
    if spec.type is int:  # a fraction is not a whole number, numpy's neither
        wrong.append(st.floats(min_value=lo, max_value=hi).filter(lambda x: not x.is_integer()))
        wrong.append(st.sampled_from([np.float64(1.5), 2.5]))
    return st.one_of(*wrong)


@FUZZ
@given(data=st.data())
def test_a_wrong_value_at_any_field_is_a_param_error_naming_it(data):
    name, spec = data.draw(st.sampled_from(SPECS), label="field")
    value = data.draw(_wrong_for(spec), label="value")
    if spec.type is int and spec.range and isinstance(value, float) and value.is_integer():
        assume(not spec.range[0] <= value <= spec.range[1])  # 3.0 is a fine whole number
    with no_world(), pytest.raises(ParamError) as info:
        simcomm.run(name, until=1.0, **{spec.name: value})
    assert info.value.field == spec.name


RUN_ARGS = {
    "seed": st.one_of(ANYTHING_WRONG, BOOLS, NOT_A_FINITE_NUMBER, st.integers(max_value=-1),
                      st.integers(min_value=2**64), st.floats(allow_nan=True),
                      st.sampled_from([np.float64(3.0), np.int64(-1), "3"])),
    "until": st.one_of(ANYTHING_WRONG.filter(lambda v: v is not None), BOOLS,
                       st.sampled_from([math.nan, math.inf, -math.inf, 10**400, np.float64(np.inf),
                                        np.float32(np.nan)]),
                       st.floats(max_value=0.0), st.integers(max_value=0)),
    "trace": st.one_of(ANYTHING_WRONG, st.integers(), st.floats(allow_nan=True),
                       st.sampled_from(["true", "false", "True", np.int64(1)])),
}


@FUZZ
@given(data=st.data())
def test_a_wrong_seed_until_or_trace_is_a_param_error_naming_it(data):
    name = data.draw(st.sampled_from(simcomm.scenarios()), label="scenario")
    arg = data.draw(st.sampled_from(sorted(RUN_ARGS)), label="argument")
    value = data.draw(RUN_ARGS[arg], label="value")
    kwargs = {"until": 1.0, arg: value}
    with no_world(), pytest.raises(ParamError) as info:
        simcomm.run(name, **kwargs)
    assert info.value.field == arg


def test_a_huge_until_or_rate_is_a_param_error_not_an_overflow():
    # the fuzzing findings of issue 6, item 10, one by one
    for kwargs, field in (({"arrival_rate": 10**400}, "arrival_rate"),
                          ({"until": 10**400}, "until"), ({"until": 1e308}, "until"),
                          ({"servers": 10**400}, "servers"), ({"seed": 10**400}, "seed")):
        with no_world(), pytest.raises(ParamError) as info:
            simcomm.run("mmc", **kwargs)
        assert info.value.field == field
        assert info.value.value == next(iter(kwargs.values()))  # quoted as given


def _valid_numpy(spec) -> st.SearchStrategy:
    lo, hi = spec.range
    if spec.type is int:
        ints = st.integers(math.ceil(lo), math.floor(hi))
        return st.one_of(ints.map(np.int64), ints.map(np.int32), ints.map(np.uint16),
                         ints.map(lambda i: np.float64(float(i))))
    floats = st.floats(lo, hi)
    return st.one_of(floats.map(np.float64), floats.map(np.float32), floats.map(np.longdouble))


NUMERIC = [(name, spec) for name, spec in SPECS if spec.type in (int, float)]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_numpy_numbers_in_range_are_accepted_as_plain_numbers(data):
    name, spec = data.draw(st.sampled_from(NUMERIC), label="field")
    value = data.draw(_valid_numpy(spec), label="value")
    assume(spec.range[0] <= float(value) <= spec.range[1])  # float32 may round out of it
    sc = get(name)
    try:
        p = make_params(sc, {spec.name: value})
    except ParamError as exc:  # only a cross-field check may object
        assert sc.check is not None and exc.field != spec.name
        return
    got = getattr(p, spec.name)
    assert type(got) is spec.type
    assert got == pytest.approx(float(value))


@pytest.mark.parametrize("name", simcomm.scenarios())
def test_a_run_from_numpy_values_is_the_run_from_plain_ones(name):
    """A sweep over np.arange works: every numeric default as a numpy number, numpy
    seed and until -- the same run, and no numpy scalar in what comes out."""
    sc = get(name)
    numeric = {s.name: s.default for s in sc.fields() if s.type in (int, float)}
    as_numpy = {k: (np.int64(v) if isinstance(v, int) else np.float64(v))
                for k, v in numeric.items()}
    plain = simcomm.run(name, seed=3, until=5.0, warn=False, **numeric)
    res = simcomm.run(name, seed=np.int64(3), until=np.float64(5.0), warn=False, **as_numpy)
    assert res.fingerprint() == plain.fingerprint()
    assert type(res.seed) is int and type(res.until) is float
    for k in numeric:
        assert type(getattr(res.params, k)) is type(numeric[k])
    rows = res.world.trace.requests + res.world.trace.messages + res.world.trace.pools
    assert rows and not any(type(x).__module__ == "numpy" for row in rows for x in row)


def test_a_sweep_over_np_arange():
    rates = np.arange(0.5, 2.0, 0.5)
    for servers in np.arange(1, 3):
        for rate in rates:
            res = simcomm.run("mmc", seed=np.int64(1), until=50, servers=servers,
                              arrival_rate=rate, warn=False)
            assert res.params.servers == int(servers) and res.params.arrival_rate == rate


def test_the_theory_functions_take_numpy_numbers_and_refuse_flags_and_overflow():
    from simcomm.analysis import theory

    got = theory.mmc(np.float32(2.0), np.int64(1), np.int64(3))
    assert got == theory.mmc(2.0, 1.0, 3)
    assert all(type(v) is float for v in got.as_dict().values())
    assert type(theory.mgc(np.float64(2.0), np.float64(0.5), np.int64(2), np.float32(0.5))
                .wait) is float
    assert theory.chain_availability(np.array([0.99, 0.995])) == pytest.approx(0.98505)
    for args, field in (((True, 1.0, 1), "arrival_rate"), ((10**400, 1.0, 1), "arrival_rate"),
                        (("1", 1.0, 1), "arrival_rate"), ((1.0, 2.0, 2.5), "servers")):
        with pytest.raises(ParamError) as info:
            theory.mmc(*args)
        assert info.value.field == field
    with pytest.raises(ParamError) as info:
        theory.chain_availability([0.99, "up"])
    assert info.value.field == "availabilities[1]"
