"""Named, independent random streams from one seed, and the distributions.

Every component draws from its own stream, named after the component
(``"service:order-1:service-time"``).  A stream's seed is derived from
``(root seed, name)`` with SHA-256, so adding a component never changes
the draws of another one, and the same root seed always gives the same
numbers on every machine and Python version.

Distributions are small immutable objects with a ``mean`` and a
``sample(rng)`` method.  They validate their parameters on construction and
raise :class:`~simcomm.errors.ParamError` naming the offending field.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from simcomm._checks import as_real, is_whole
from simcomm.errors import ParamError

__all__ = [
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "LogNormal",
    "Streams",
    "Uniform",
    "distribution",
]


#: The largest root seed: seeds are whole numbers from 0 to 2**64 - 1 (numpy's
#: unsigned 64-bit range), so any seed a sweep draws fits and its name stays short.
MAX_SEED = 2**64 - 1
SEED_ALLOWED = "a whole number from 0 to 2**64 - 1"


class Streams:
    """A family of independent ``random.Random`` streams keyed by name."""

    def __init__(self, seed: int) -> None:
        if not is_whole(seed) or not 0 <= seed <= MAX_SEED:
            raise ParamError("seed", seed, SEED_ALLOWED)
        self.seed = int(seed)
        self._streams: dict[str, random.Random] = {}

    def __call__(self, name: str) -> random.Random:
        """The stream called ``name`` (created on first use)."""
        rng = self._streams.get(name)
        if rng is None:
            digest = hashlib.sha256(f"{self.seed}/{name}".encode()).digest()
            rng = random.Random(int.from_bytes(digest[:16], "big"))
            self._streams[name] = rng
        return rng

    def names(self) -> list[str]:
        """The names of the streams used so far, sorted."""
        return sorted(self._streams)


def _positive(field_name: str, value: float) -> float:
    number = as_real(value)
    if number is None or not number > 0:
        raise ParamError(field_name, value, "a number > 0")
    if math.isinf(number):
        raise ParamError(field_name, value, "a finite number > 0")
    return number


def _non_negative(field_name: str, value: float) -> float:
    number = as_real(value)
    if number is None or not number >= 0:
        raise ParamError(field_name, value, "a number >= 0")
    if math.isinf(number):
        raise ParamError(field_name, value, "a finite number >= 0")
    return number


class Distribution:
    """A distribution of non-negative durations or sizes."""

    name: str = "distribution"

    @property
    def mean(self) -> float:
        raise NotImplementedError

    def sample(self, rng: random.Random) -> float:
        raise NotImplementedError

    def scaled(self, factor: float) -> Distribution:
        """The same shape with every value multiplied by ``factor``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Distribution):
    """Always ``value`` (the D in M/D/1)."""

    value: float
    name = "constant"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _non_negative("value", self.value))

    @property
    def mean(self) -> float:
        return float(self.value)

    def sample(self, rng: random.Random) -> float:
        return self.value

    def scaled(self, factor: float) -> Constant:
        return Constant(self.value * factor)


@dataclass(frozen=True)
class Exponential(Distribution):
    """Exponential with the given ``mean`` (rate = 1/mean): the M in M/M/1."""

    mean_value: float
    name = "exponential"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean_value", _positive("mean", self.mean_value))
        object.__setattr__(self, "_rate", 1.0 / self.mean_value)

    @property
    def mean(self) -> float:
        return float(self.mean_value)

    @property
    def rate(self) -> float:
        return self._rate  # type: ignore[attr-defined]

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(self._rate)  # type: ignore[attr-defined]

    def scaled(self, factor: float) -> Exponential:
        return Exponential(self.mean_value * factor)


@dataclass(frozen=True)
class Uniform(Distribution):
    """Uniform on ``[low, high]``."""

    low: float
    high: float
    name = "uniform"

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", _non_negative("low", self.low))
        object.__setattr__(self, "high", _non_negative("high", self.high))
        if self.high < self.low:
            raise ParamError("high", self.high, f"a number >= low ({self.low})")

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2.0

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    def scaled(self, factor: float) -> Uniform:
        return Uniform(self.low * factor, self.high * factor)


@dataclass(frozen=True)
class LogNormal(Distribution):
    """Log-normal with the given ``mean`` and shape ``sigma`` (of the log).

    Parameterised by its mean rather than by mu so that a slider for "mean
    service time" means the same thing whatever the shape: mu is
    ``log(mean) - sigma**2 / 2``.  Service and network latencies in real
    systems are close to log-normal: a body near the median and a long tail.
    """

    mean_value: float
    sigma: float = 0.5
    name = "lognormal"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean_value", _positive("mean", self.mean_value))
        object.__setattr__(self, "sigma", _non_negative("sigma", self.sigma))
        object.__setattr__(self, "_mu", math.log(self.mean_value) - self.sigma**2 / 2.0)

    @property
    def mean(self) -> float:
        return float(self.mean_value)

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(self._mu, self.sigma)  # type: ignore[attr-defined]

    def scaled(self, factor: float) -> LogNormal:
        return LogNormal(self.mean_value * factor, self.sigma)


@dataclass(frozen=True)
class Empirical(Distribution):
    """Draws uniformly from measured ``samples`` (e.g. latencies from a log)."""

    samples: Sequence[float] = field(default=())
    name = "empirical"

    def __post_init__(self) -> None:
        if isinstance(self.samples, (str, bytes)) or not isinstance(self.samples, Iterable):
            raise ParamError("samples", self.samples, "a sequence of numbers >= 0")
        given = list(self.samples)
        if not given:
            raise ParamError("samples", given, "at least one number >= 0")
        values = []
        for s in given:
            v = as_real(s)
            if v is None or not v >= 0 or math.isinf(v):
                raise ParamError("samples", s, "finite numbers >= 0")
            values.append(v)
        object.__setattr__(self, "samples", tuple(values))

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples)

    def sample(self, rng: random.Random) -> float:
        return self.samples[int(rng.random() * len(self.samples))]

    def scaled(self, factor: float) -> Empirical:
        return Empirical(tuple(s * factor for s in self.samples))


DISTRIBUTIONS = ("constant", "exponential", "uniform", "lognormal")


def distribution(kind: str, mean: float, *, field_name: str = "distribution",
                 sigma: float = 0.5) -> Distribution:
    """A distribution by name with the given mean.

    ``uniform`` spans ``[0, 2*mean]``; ``lognormal`` uses shape ``sigma``.
    Raises :class:`ParamError` naming ``field_name`` for an unknown kind.
    """
    if kind == "constant":
        return Constant(mean)
    if kind == "exponential":
        return Exponential(mean)
    if kind == "uniform":
        return Uniform(0.0, 2.0 * mean)
    if kind == "lognormal":
        return LogNormal(mean, sigma)
    raise ParamError(field_name, kind, f"one of {', '.join(DISTRIBUTIONS)}")
