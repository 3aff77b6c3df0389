"""The ready-made scenarios, registered by name on import."""

from simcomm.scenarios import chain, formats, mmc  # noqa: F401  (registration)
from simcomm.scenarios.base import (
    FieldSpec,
    Load,
    Scenario,
    fields,
    get,
    make_params,
    names,
    param,
    parse_value,
    register,
)

__all__ = ["FieldSpec", "Load", "Scenario", "fields", "get", "make_params", "names", "param",
           "parse_value", "register"]
