"""The ready-made scenarios, registered by name on import."""

from simcomm.scenarios import (  # noqa: F401  (registration)
    brokers,
    chain,
    competing_consumers,
    create_order,
    delivery_guarantees,
    discovery,
    formats,
    gateway,
    mmc,
    order_lifecycle,
    outbox,
    rebalance,
    retry_storm,
    styles,
)
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
