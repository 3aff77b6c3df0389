"""``formats``: the same order in JSON, XML, Protobuf or Avro, under load.

Users send orders to the ``api-gateway``, which forwards each to the
``order`` service and passes its reply back; the reply carries the order
as stored.  Every one of the four messages is an order of ``order_lines``
line items in ``message_format``: its size follows that format's encoding
rules, so crossing a link of ``bandwidth_mbps`` takes size / bandwidth
seconds on top of the ``network_latency``, and decoding and encoding it
costs CPU time on the worker that handles it (the gateway codes each order
four times, the service twice).  Bigger, slower-to-parse messages hold
workers longer: latency rises, and so does the load at which the workers
run out.

Service times are exponential with mean ``service_time`` (the gateway's
own work is a tenth of it); the users' own coding cost is not counted.
A link transmits one message at a time, so a message may first wait for
the ones ahead of it: a link near its capacity adds queueing delay and caps
throughput, as a real one does.  :func:`format_table` tabulates the bytes and CPU
time of one order in every format without running anything;
:func:`format_sweep` runs the scenario for every format across values of one
parameter (load, bandwidth, order size).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm.engine.formats import FORMATS, Format, get_format
from simcomm.engine.network import Link
from simcomm.engine.nodes import Instance
from simcomm.engine.randomness import distribution
from simcomm.engine.workload import OpenLoop
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.rpc.handlers import answer, forward
from simcomm.scenarios.base import Scenario, param, register
from simcomm.scenarios.payloads import MAX_LINES, order, order_reply

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GATEWAY", "SERVICE", "USERS", "Params", "format_sweep", "format_table", "order",
           "order_reply"]

GATEWAY = "api-gateway-1"
SERVICE = "order-1"
USERS = "users"

@dataclass(frozen=True)
class Params:
    request_rate: float = param(
        50.0, range=(0.1, 1000.0), unit="req/s", step=0.1,
        help="mean rate at which users send orders to the API gateway (Poisson)")
    message_format: str = param(
        "json", choices=tuple(FORMATS),
        help="wire format of every request and reply (JSON, XML, Protocol Buffers, Avro)")
    order_lines: int = param(
        500, range=(1, MAX_LINES), unit="line items",
        help="line items in each order: the payload size knob")
    bandwidth_mbps: float = param(
        100.0, range=(1.0, 10_000.0), unit="Mbit/s", step=1.0,
        help="link bandwidth on every hop; a message takes size / bandwidth to cross")
    network_latency: float = param(
        0.001, range=(0.0, 0.5), unit="s", step=0.001,
        help="mean one-way propagation delay of every hop (exponential), "
             "on top of the transmission time")
    gateway_workers: int = param(
        20, range=(1, 200), unit="workers",
        help="concurrent requests the API gateway can handle; each worker waits "
             "for the order service's reply")
    service_workers: int = param(
        4, range=(1, 200), unit="workers", help="workers in the order service")
    service_time: float = param(
        0.01, range=(0.001, 1.0), unit="s", step=0.001,
        help="mean business-logic CPU time per order in the service, without "
             "coding (the gateway: a tenth of it); exponential")


def format_table(payload: Any = 500, formats: Iterable[str | Format] | None = None, *,
                 bandwidth_mbps: float | None = None) -> pd.DataFrame:
    """Bytes on the wire and CPU seconds per message, one row per format.

    ``payload`` is a message body, or a whole number of order lines (see
    :func:`order`).  Columns: ``format``, ``bytes``, ``vs_json`` (size
    relative to JSON, if JSON is among the formats), ``encode_s``,
    ``decode_s``, ``cpu_s`` (encode + decode: what one message costs its
    sender and receiver together) and, with ``bandwidth_mbps``, ``transmit_s``
    (the time to push the bytes through a link of that speed).  The numbers
    come from the same size and cost model the simulation charges.
    """
    import pandas as pd

    body = order(payload) if isinstance(payload, int) and not isinstance(payload, bool) \
        else payload
    if bandwidth_mbps is not None and not (
        isinstance(bandwidth_mbps, (int, float)) and bandwidth_mbps > 0
    ):
        raise ParamError("bandwidth_mbps", bandwidth_mbps, "Mbit/s > 0, or None")
    fmts = [get_format(f) for f in (formats if formats is not None else FORMATS)]
    rows = []
    for fmt in fmts:
        n = fmt.size(body)
        row = {"format": fmt.name, "bytes": n, "encode_s": fmt.encode_cost(n),
               "decode_s": fmt.decode_cost(n)}
        row["cpu_s"] = row["encode_s"] + row["decode_s"]
        if bandwidth_mbps is not None:
            row["transmit_s"] = n * 8 / (bandwidth_mbps * 1e6)
        rows.append(row)
    df = pd.DataFrame(rows)
    if "json" in set(df["format"]):
        json_bytes = df.loc[df["format"] == "json", "bytes"].iloc[0]
        df.insert(2, "vs_json", df["bytes"] / json_bytes)
    if bandwidth_mbps is not None:
        df.attrs["bandwidth_mbps"] = float(bandwidth_mbps)
    if isinstance(payload, int) and not isinstance(payload, bool):
        df.attrs["payload"] = f"an order of {payload} line item{'s' if payload != 1 else ''}"
    return df


def format_sweep(field: str, values: Iterable[Any],
                 formats: Iterable[str] | None = None, *, seed: int = 0,
                 until: float | None = 30.0, **params: Any) -> pd.DataFrame:
    """Run the scenario for every format at every value of ``field``.

    ``field`` is one of the scenario's parameters (say ``request_rate`` or
    ``bandwidth_mbps``), ``params`` fix the others.  Every run uses the same
    ``seed`` (common random numbers: the formats see the same arrivals).
    One row per run: ``format``, the ``field`` value, ``mean_latency``,
    ``p95`` (s, of ok requests), ``throughput`` (completed per second),
    ``offered`` (requests sent per second), ``pending`` (requests unanswered
    at the end: a backlog), and the mean fraction of busy workers of the
    gateway and the service (``gateway_busy``, ``service_busy``).
    ``df.attrs`` records ``field``, ``seed``, ``until`` and ``params``.
    Every setting is checked before the first run.
    """
    import pandas as pd

    from simcomm.api import prepare, run

    fmts = list(formats) if formats is not None else list(FORMATS)
    if "message_format" in params or field == "message_format":
        raise ParamError("message_format", params.get("message_format", field),
                         "set by the sweep: choose them with formats=")
    values = list(values)
    if not values:
        raise ParamError(field, values, "at least one value to sweep over")
    for fmt in fmts:  # check everything before time zero
        for v in values:
            prepare(SCENARIO, seed, until, message_format=fmt, **{field: v}, **params)
    rows = []
    for fmt in fmts:
        for v in values:
            res = run(SCENARIO, seed, until, message_format=fmt, **{field: v}, **params)
            s = res.summary()
            busy = res.utilisation()
            rows.append({"format": fmt, field: v, "mean_latency": s["mean_latency"],
                         "p95": s["p95"], "throughput": s["throughput"],
                         "offered": s["requests"] / res.until, "pending": s["pending"],
                         "gateway_busy": busy[GATEWAY], "service_busy": busy[SERVICE]})
    df = pd.DataFrame(rows)
    df.attrs.update({"field": field, "seed": seed, "until": res.until, "params": params})
    return df


def build(world: World, p: Params) -> None:
    world.network.set_default(Link(
        latency=distribution("exponential", p.network_latency) if p.network_latency > 0
        else None,
        bandwidth=p.bandwidth_mbps * 1e6 / 8))  # Mbit/s -> bytes/s
    fmt = FORMATS[p.message_format]
    body = order(p.order_lines)
    Instance(world, GATEWAY, workers=p.gateway_workers, service="api-gateway", format=fmt,
             service_time=distribution("exponential", p.service_time / 10),
             handler=forward(SERVICE))
    Instance(world, SERVICE, workers=p.service_workers, service="order", format=fmt,
             service_time=distribution("exponential", p.service_time),
             handler=answer(order_reply(body)))
    OpenLoop(world, USERS, GATEWAY, p.request_rate, body=body, format=fmt)


SCENARIO = register(Scenario(
    name="formats",
    title="Message formats: JSON, XML, Protobuf and Avro under load",
    description=("Users send orders to an API gateway, which forwards them to the order "
                 "service; every request and reply is an order of order_lines line items in "
                 "the chosen format. Its size sets the time to cross each link, and coding "
                 "it costs worker CPU: bigger, slower-to-parse messages raise latency and "
                 "lower the load at which the workers run out."),
    params=Params,
    build=build,
    views=("latency_over_time", "pool_usage", "sequence_diagram"),
    until=60.0,
))
