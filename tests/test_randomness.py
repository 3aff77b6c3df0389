"""Named random streams and the distributions (simcomm.engine.randomness)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from simcomm.engine import (
    Constant,
    Empirical,
    Exponential,
    Instance,
    LogNormal,
    OpenLoop,
    Streams,
    Uniform,
    World,
    distribution,
)
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.scenarios import get, make_params


def draws(rng, n: int = 20) -> list[float]:
    return [rng.random() for _ in range(n)]


# -- streams ------------------------------------------------------------------

def test_same_seed_and_name_give_the_same_draws():
    assert draws(Streams(7)("a")) == draws(Streams(7)("a"))


def test_stream_depends_on_seed_and_on_name():
    base = draws(Streams(7)("a"))
    assert draws(Streams(8)("a")) != base
    assert draws(Streams(7)("b")) != base
    assert draws(Streams(7)("ab")) != base


def test_a_stream_is_created_once_and_kept():
    s = Streams(3)
    rng = s("x")
    assert s("x") is rng
    assert s.names() == ["x"]


def test_creating_and_using_other_streams_does_not_change_a_stream():
    alone = draws(Streams(11)("service"), 50)
    s = Streams(11)
    for name in ("client", "link:a->b", "zzz"):
        draws(s(name), 100)  # others created first and consumed
    rng = s("service")
    first = draws(rng, 25)
    draws(s("late-comer"), 100)  # created in between two uses
    assert first + draws(rng, 25) == alone


def test_stream_values_are_pinned_across_machines_and_versions():
    # (seed, name) -> SHA-256 -> Mersenne Twister: no hash() randomisation, no
    # platform dependence.  If this changes, every stored trace changes.
    assert Streams(0)("golden").random() == 0.6169116596017435
    assert Streams(12345)("instance:server-1:service-time").random() == 0.9525621794759576


@pytest.mark.parametrize("seed", [-1, 1.5, True, "1", None])
def test_seed_must_be_a_whole_number(seed):
    with pytest.raises(ParamError) as info:
        Streams(seed)
    assert info.value.field == "seed"


def _mmc_world(extra: bool) -> World:
    sc = get("mmc")
    world = World(seed=5)
    if extra:  # another component created *before* the scenario's own ones
        Instance(world, "extra-before", service_time=Exponential(0.3))
    sc.build(world, make_params(sc, {"arrival_rate": 0.9}))
    if extra:  # and one after, with its own client drawing arrivals
        Instance(world, "extra-after", workers=2, service_time=Exponential(0.5))
        OpenLoop(world, "extra-users", "extra-after", 3.0)
    return world


def test_adding_a_component_to_a_world_does_not_change_the_arrivals():
    plain, bigger = _mmc_world(False), _mmc_world(True)
    name = "client:users:arrivals"
    assert plain.stream(name).getstate() == bigger.stream(name).getstate()
    plain.run(500)
    bigger.run(500)
    a, b = Result(plain).requests, Result(bigger).requests
    b = b[b["client"] == "users"]
    assert len(a) > 300
    # same arrival times, and (same service-time stream) the same latencies
    assert a["start"].tolist() == b["start"].tolist()
    np.testing.assert_array_equal(a["latency"].to_numpy(), b["latency"].to_numpy())
    assert a["outcome"].tolist() == b["outcome"].tolist()
    assert (b["client"] == "users").sum() < len(Result(bigger).requests)  # extra traffic ran
    # and the stream is in the same state after the run
    assert draws(plain.stream(name)) == draws(bigger.stream(name))


# -- distributions: means ---------------------------------------------------------

N = 40_000


@pytest.mark.parametrize(
    ("dist", "sd"),
    [
        (Exponential(0.25), 0.25),
        (Exponential(3.0), 3.0),
        (Uniform(1.0, 5.0), 4.0 / math.sqrt(12)),
        (LogNormal(0.2, 0.5), 0.2 * math.sqrt(math.exp(0.25) - 1)),
        (LogNormal(2.0, 1.0), 2.0 * math.sqrt(math.e - 1)),
        (Empirical((0.1, 0.2, 0.2, 5.0)), statistics.pstdev((0.1, 0.2, 0.2, 5.0))),
        (distribution("uniform", 0.5), 1.0 / math.sqrt(12)),
        (distribution("lognormal", 0.5, sigma=0.8), 0.5 * math.sqrt(math.exp(0.64) - 1)),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_sample_mean_approaches_the_mean(dist, sd):
    rng = Streams(1)(f"test:{dist!r}")
    xs = [dist.sample(rng) for _ in range(N)]
    assert min(xs) >= 0
    # independent draws: the sample mean has standard error sd/sqrt(N);
    # 5 standard errors is exceeded with probability < 1e-6
    assert abs(statistics.fmean(xs) - dist.mean) < 5 * sd / math.sqrt(N)
    # and the spread is the one the parameterisation promises (sd of the
    # sample sd is about sd*sqrt((kurtosis-1)/4N); 15 % is far beyond it
    # for these shapes at this N)
    assert statistics.pstdev(xs) == pytest.approx(sd, rel=0.15)


def test_constant_is_constant():
    rng = Streams(1)("c")
    assert {Constant(0.3).sample(rng) for _ in range(100)} == {0.3}
    assert Constant(0.3).mean == 0.3
    assert Constant(0).mean == 0


def test_lognormal_is_parameterised_by_its_mean():
    d = LogNormal(2.0, 0.5)
    assert d.mean == 2.0
    median = math.exp(math.log(2.0) - 0.125)
    rng = Streams(2)("ln")
    xs = sorted(d.sample(rng) for _ in range(N))
    # sample median of N draws: relative error ~ 1.25*sigma/sqrt(N) ~ 0.3 %
    assert xs[N // 2] == pytest.approx(median, rel=0.02)


def test_empirical_draws_only_its_samples_each_about_equally_often():
    d = Empirical([1, 2, 3, 4])
    rng = Streams(3)("emp")
    xs = [d.sample(rng) for _ in range(N)]
    assert set(xs) == {1.0, 2.0, 3.0, 4.0}
    for v in (1.0, 2.0, 3.0, 4.0):
        # binomial(N, 1/4): sd = sqrt(N*3/16) ~ 87; 5 sd
        assert abs(xs.count(v) - N / 4) < 5 * math.sqrt(N * 3 / 16)


@pytest.mark.parametrize(
    "dist",
    [Constant(0.5), Exponential(0.5), Uniform(0.0, 1.0), LogNormal(0.5, 0.7),
     Empirical([0.25, 0.75])],
    ids=lambda d: d.name,
)
def test_scaled_scales_the_mean_and_keeps_the_shape(dist):
    s = dist.scaled(3.0)
    assert type(s) is type(dist)
    assert s.mean == pytest.approx(3.0 * dist.mean)
    if isinstance(dist, LogNormal):
        assert s.sigma == dist.sigma


@pytest.mark.parametrize("kind", ["constant", "exponential", "uniform", "lognormal"])
def test_distribution_by_name_has_the_requested_mean(kind):
    d = distribution(kind, 0.7)
    assert d.name == kind
    assert d.mean == pytest.approx(0.7)


def test_same_stream_same_samples_for_every_distribution():
    for d in (Exponential(1.0), Uniform(0.0, 2.0), LogNormal(1.0, 0.5), Empirical([1, 2, 3])):
        a = [d.sample(Streams(9)("s")) for _ in range(3)]
        assert a[0] == a[1] == a[2]


# -- validation -----------------------------------------------------------------

BAD_NUMBERS = [-1.0, math.nan, math.inf, -math.inf, "1", None, True]


@pytest.mark.parametrize("value", [0.0, *BAD_NUMBERS])
def test_exponential_mean_must_be_positive_and_finite(value):
    with pytest.raises(ParamError) as info:
        Exponential(value)
    assert info.value.field == "mean"
    assert "mean=" in str(info.value)


@pytest.mark.parametrize("value", [0.0, *BAD_NUMBERS])
def test_lognormal_mean_must_be_positive_and_finite(value):
    with pytest.raises(ParamError) as info:
        LogNormal(value, 0.5)
    assert info.value.field == "mean"


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_lognormal_sigma_must_be_non_negative_and_finite(value):
    with pytest.raises(ParamError) as info:
        LogNormal(1.0, value)
    assert info.value.field == "sigma"


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_constant_value_must_be_non_negative_and_finite(value):
    with pytest.raises(ParamError) as info:
        Constant(value)
    assert info.value.field == "value"


@pytest.mark.parametrize(("low", "high", "field"), [
    (-1.0, 1.0, "low"), (math.nan, 1.0, "low"), (0.0, math.inf, "high"),
    (0.0, math.nan, "high"), (2.0, 1.0, "high"),
])
def test_uniform_bounds_are_checked(low, high, field):
    with pytest.raises(ParamError) as info:
        Uniform(low, high)
    assert info.value.field == field


@pytest.mark.parametrize("samples", [[], (), [1.0, -0.5], [math.nan], [1.0, math.inf]])
def test_empirical_needs_finite_non_negative_samples(samples):
    with pytest.raises(ParamError) as info:
        Empirical(samples)
    assert info.value.field == "samples"


def test_unknown_distribution_kind_names_the_field_and_the_choices():
    with pytest.raises(ParamError) as info:
        distribution("pareto", 1.0, field_name="service_distribution")
    err = info.value
    assert err.field == "service_distribution"
    assert err.value == "pareto"
    for kind in ("constant", "exponential", "uniform", "lognormal"):
        assert kind in err.allowed
    with pytest.raises(ParamError) as info:
        distribution("gauss", 1.0)
    assert info.value.field == "distribution"


@pytest.mark.parametrize("mean", [0.0, -1.0, math.nan, math.inf])
def test_distribution_by_name_checks_the_mean(mean):
    for kind in ("exponential", "lognormal"):
        with pytest.raises(ParamError):
            distribution(kind, mean)
