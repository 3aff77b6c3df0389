"""What a scenario is: a Params dataclass, a build function, default views.

Every field of a scenario's ``Params`` carries its allowed range (or
choices), its unit and a help text in the dataclass field metadata; the one
definition drives validation, the CLI's ``--set``, the widget controls and
the sweeps.  Use :func:`param` to declare a field::

    @dataclass(frozen=True)
    class Params:
        arrival_rate: float = param(0.8, range=(0.01, 1000), unit="req/s",
                                    help="mean rate of new requests")

:func:`make_params` checks every value (type, range, choices, then the
scenario's own cross-field check) and raises a
:class:`~simcomm.errors.ParamError` naming the field before anything runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from simcomm._checks import as_real, is_flag, is_real, is_whole
from simcomm.engine.world import World
from simcomm.errors import ParamError

__all__ = [
    "FieldSpec", "Load", "Scenario", "did_you_mean", "fields", "get", "make_params", "names",
    "param", "parse_value", "register",
]


def param(default: Any, *, help: str, unit: str = "", range: tuple[float, float] | None = None,
          choices: tuple[str, ...] | None = None, step: float | None = None,
          label: str | None = None) -> Any:
    """A Params field with its range or choices, unit and help text."""
    meta = {"help": help, "unit": unit, "range": range, "choices": choices, "step": step,
            "label": label}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldSpec:
    """Everything a UI or a validator needs to know about one field."""

    name: str
    type: type
    default: Any
    help: str
    unit: str
    range: tuple[float, float] | None
    choices: tuple[str, ...] | None
    step: float | None
    label: str

    def allowed(self) -> str:
        """What values are allowed, in words."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.type is bool:
            return "true or false"
        kind = "a whole number" if self.type is int else "a number"
        if self.range:
            lo, hi = self.range
            return f"{kind} from {lo:g} to {hi:g}" + (f" {self.unit}" if self.unit else "")
        return kind

    def check(self, value: Any) -> Any:
        """``value`` converted to the field's type, or a ParamError.

        Any :class:`numbers.Integral` counts as a whole number and any
        :class:`numbers.Real` as a number (numpy's too, so a sweep over
        ``np.arange`` works), never a bool; a whole float (``3.0``) is taken
        for an int field.  The value returned is a plain ``int``, ``float``,
        ``bool`` or ``str``, so nothing downstream sees a numpy scalar.  A
        number too large for a float (``10**400``) is refused by the range
        check like any other out-of-range value.
        """
        t = self.type
        given = value  # errors quote what the user gave (10**400, not inf)
        if t is bool:
            if not is_flag(value):
                raise ParamError(self.name, value, self.allowed())
            return bool(value)
        if t is int:
            if is_real(value) and not is_whole(value):
                as_float = as_real(value)
                if as_float is not None and as_float.is_integer():
                    value = int(as_float)
            if not is_whole(value):
                raise ParamError(self.name, value, self.allowed())
            value = int(value)
        elif t is float:
            as_float = as_real(value)
            if as_float is None or math.isnan(as_float):
                raise ParamError(self.name, value, self.allowed())
            if self.range is None and math.isinf(as_float):
                raise ParamError(self.name, value, "a finite number")
            value = as_float
        elif t is str:
            if (self.choices is not None and is_whole(value)
                    and str(int(value)) in self.choices):
                value = str(int(value))  # a numeric choice given as a number: acks=1
            if not isinstance(value, str):
                raise ParamError(self.name, value, self.allowed())
            value = str(value)
        if self.choices is not None and value not in self.choices:
            # choices match whatever the case (JSON -> json); a near miss is named
            folded = {c.casefold(): c for c in self.choices}
            value_cf = value.casefold() if isinstance(value, str) else None
            if value_cf not in folded:
                raise ParamError(self.name, value,
                                 did_you_mean(value, self.choices) + self.allowed())
            value = folded[value_cf]
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            raise ParamError(self.name, given, self.allowed())
        return value


def did_you_mean(word: object, options: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` naming the option closest to ``word``, or ``""``.

    A mistyped scenario, field or choice then says what was meant, in the
    Python API as on the command line (difflib's ratio, case ignored).
    """
    if not isinstance(word, str):
        return ""
    by_fold = {o.casefold(): o for o in options}
    close = difflib.get_close_matches(word.casefold(), list(by_fold), n=1)
    return f"did you mean {by_fold[close[0]]!r}? " if close else ""


def fields(params_cls: type) -> list[FieldSpec]:
    """The FieldSpecs of a Params dataclass, in declaration order."""
    hints = typing.get_type_hints(params_cls)
    specs = []
    for f in dataclasses.fields(params_cls):
        m = f.metadata
        specs.append(FieldSpec(
            name=f.name, type=hints[f.name], default=f.default, help=m.get("help", ""),
            unit=m.get("unit", ""), range=m.get("range"), choices=m.get("choices"),
            step=m.get("step"), label=m.get("label") or f.name.replace("_", " "),
        ))
    return specs


@dataclass(frozen=True)
class Load:
    """What a run of a scenario asks of the engine: its rates, per simulated second.

    :func:`simcomm.api.estimate` multiplies these by ``until`` to size a run
    before time zero (how many requests, trace rows and bytes), so a run
    too large for the memory is refused instead of started.

    * ``requests_per_s`` -- mean rate at which new requests arrive;
    * ``messages_per_request`` -- messages one finished request causes
      (its request and reply on every hop: 2 per service call);
    * ``pool_changes_per_request`` -- rows one request adds to the
      ``pools`` table (a worker taken, a worker freed, a wait in a queue:
      at most 3 per service that handles it);
    * ``events_per_s`` -- timeline events (crashes, repairs, faults) per
      second, kept even with ``trace=False``.
    """

    requests_per_s: float
    messages_per_request: float
    pool_changes_per_request: float = 0.0
    events_per_s: float = 0.0


@dataclass(frozen=True)
class Scenario:
    """A registered scenario.

    ``capacity(params)`` (optional) is the scenario's own model of the
    requests per second it can carry; the summary sets the offered load
    against it, and the run-size estimate counts the requests arriving
    beyond it as piling up (pending at the end).  ``load(params)``
    (optional) describes the run's rates (:class:`Load`); with both, the
    estimate is arithmetic.  Without them, :func:`simcomm.api.estimate`
    measures a short pilot run instead, so any scenario is guarded.
    """

    name: str
    title: str
    description: str
    params: type
    build: Callable[[World, Any], None]
    views: tuple[str, ...]
    until: float
    check: Callable[[Any], None] | None = None
    capacity: Callable[[Any], float] | None = None
    load: Callable[[Any], Load] | None = None

    def fields(self) -> list[FieldSpec]:
        return fields(self.params)

    def defaults(self) -> Any:
        return self.params()


_REGISTRY: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    """Make ``scenario`` available by name (to run, the CLI and the widgets)."""
    _REGISTRY[scenario.name] = scenario
    return scenario


def names() -> list[str]:
    """The names of the registered scenarios, sorted."""
    return sorted(_REGISTRY)


def get(name: str | Scenario) -> Scenario:
    """The scenario called ``name``; a ParamError lists the known ones."""
    if isinstance(name, Scenario):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ParamError("scenario", name,
                         did_you_mean(name, names()) + "one of " + ", ".join(names())) from None


def make_params(scenario: Scenario, values: Mapping[str, Any] | None = None) -> Any:
    """A validated Params instance: defaults overridden by ``values``."""
    values = dict(values or {})
    specs = {s.name: s for s in scenario.fields()}
    for key in values:
        if key not in specs:
            raise ParamError(key, values[key],
                             f"not a field of {scenario.name}; {did_you_mean(key, specs)}"
                             f"fields: {', '.join(specs)}")
    checked = {k: specs[k].check(v) for k, v in values.items()}
    params = scenario.params(**checked)
    for spec in specs.values():  # defaults must hold too
        spec.check(getattr(params, spec.name))
    if scenario.check is not None:
        scenario.check(params)
    return params


def parse_value(spec: FieldSpec, text: str) -> Any:
    """Turn command-line text into the field's type (then ``check`` it)."""
    t = spec.type
    try:
        if t is bool:
            low = text.strip().lower()
            if low in ("true", "yes", "on", "1"):
                return True
            if low in ("false", "no", "off", "0"):
                return False
            raise ValueError(text)
        if t is int:
            value = float(text)
            if not value.is_integer():
                raise ValueError(text)
            return int(value)
        if t is float:
            return float(text)
        return text
    except ValueError:
        raise ParamError(spec.name, text, spec.allowed()) from None
