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
:func:`format_ceilings` predicts, also without running anything, the most
orders per second each format can carry -- limited by the links or by the
workers' CPU, whichever is lower -- and it is the scenario's ``capacity``;
:func:`simcomm.sweeps.format_sweep` runs the scenario for every format across
values of one parameter (load, bandwidth, order size): scenarios describe, sweeps run.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real, is_whole
from simcomm.engine.formats import FORMATS, Format, get_format
from simcomm.engine.network import Link
from simcomm.engine.nodes import Instance
from simcomm.engine.randomness import distribution
from simcomm.engine.workload import OpenLoop
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.rpc.handlers import answer, forward
from simcomm.scenarios.base import Scenario, fields, param, register
from simcomm.scenarios.payloads import MAX_LINES, order, order_reply

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GATEWAY", "SERVICE", "USERS", "Params", "capacity", "format_ceilings",
           "format_list", "format_table", "order", "order_reply"]

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


def format_list(formats: Iterable[str | Format] | None) -> list[Format]:
    """The formats to tabulate or sweep, checked: a non-empty list of names or Formats.

    A single string is refused rather than read as a list of letters
    (``"json"`` would otherwise be the formats ``j``, ``s``, ``o``, ``n``).
    """
    if formats is None:
        return list(FORMATS.values())
    allowed = "a non-empty list of formats, e.g. ['json', 'protobuf'] (from " \
              + ", ".join(FORMATS) + "), or None for all"
    if isinstance(formats, (str, bytes, Format)) or not isinstance(formats, Iterable):
        raise ParamError("formats", formats, allowed)
    fmts = [get_format(f, "formats") for f in formats]
    if not fmts:
        raise ParamError("formats", formats, allowed)
    return fmts


def _bandwidth(value: Any, allowed: str = "a finite number of Mbit/s > 0") -> float:
    """``value`` as Mbit/s: a real number (not a bool), finite and > 0."""
    bw = as_real(value)
    if bw is None or not 0 < bw < math.inf:
        raise ParamError("bandwidth_mbps", value, allowed)
    return bw


def format_table(payload: Any = 500, formats: Iterable[str | Format] | None = None, *,
                 bandwidth_mbps: float | None = None) -> pd.DataFrame:
    """Bytes on the wire and CPU seconds per message, one row per format.

    ``payload`` is a message body, or a whole number of order lines (see
    :func:`order`).  ``formats`` is a list of format names or
    :class:`~simcomm.engine.formats.Format` objects (default: all four).
    Columns: ``format``, ``bytes``, ``vs_json`` (size
    relative to JSON, if JSON is among the formats), ``encode_s``,
    ``decode_s``, ``cpu_s`` (encode + decode: what one message costs its
    sender and receiver together) and, with ``bandwidth_mbps``, ``transmit_s``
    (the time to push the bytes through a link of that speed).  The numbers
    come from the same size and cost model the simulation charges.
    """
    import pandas as pd

    if bandwidth_mbps is not None:
        bandwidth_mbps = _bandwidth(bandwidth_mbps, "a finite number of Mbit/s > 0, or None")
    fmts = format_list(formats)
    body = order(int(payload)) if is_whole(payload) else payload
    rows = []
    for fmt in fmts:
        n = fmt.size(body)
        encode_s, decode_s = fmt.encode_cost(n), fmt.decode_cost(n)
        row: dict[str, Any] = {"format": fmt.name, "bytes": n, "encode_s": encode_s,
                               "decode_s": decode_s, "cpu_s": encode_s + decode_s}
        if bandwidth_mbps is not None:
            row["transmit_s"] = n * 8 / (bandwidth_mbps * 1e6)
        rows.append(row)
    df = pd.DataFrame(rows)
    if "json" in set(df["format"]):
        json_bytes = df.loc[df["format"] == "json", "bytes"].iloc[0]
        df.insert(2, "vs_json", df["bytes"] / json_bytes)
    if bandwidth_mbps is not None:
        df.attrs["bandwidth_mbps"] = bandwidth_mbps
    if is_whole(payload):
        df.attrs["payload"] = f"an order of {payload} line item{'s' if payload != 1 else ''}"
    return df


@functools.lru_cache(maxsize=256)
def _order_bytes(fmt: Format, lines: int) -> tuple[int, int]:
    """Bytes of one order request and of its reply in ``fmt`` (sizing 2000
    lines takes milliseconds, and a dashboard asks on every run)."""
    body = order(lines)
    return fmt.size(body), fmt.size(order_reply(body))


def _ceiling_row(fmt: Format, p: Params) -> dict[str, Any]:
    """The three ceilings of one format under ``p`` (see :func:`format_ceilings`)."""
    request, reply = _order_bytes(fmt, p.order_lines)
    bandwidth = p.bandwidth_mbps * 1e6 / 8  # bytes/s
    # each link direction carries one message per order: the request on the way
    # in (users -> gateway -> order), the reply on the way out; the bigger one
    # fills its links first
    link_bytes = max(request, reply)
    link = bandwidth / link_bytes
    service_cpu = (fmt.decode_cost(request) + p.service_time + fmt.encode_cost(reply))
    gateway_cpu = (fmt.decode_cost(request) + p.service_time / 10 + fmt.encode_cost(request)
                   + fmt.decode_cost(reply) + fmt.encode_cost(reply))
    pools = {SERVICE: p.service_workers / service_cpu,
             GATEWAY: p.gateway_workers / gateway_cpu}
    cpu_pool = min(pools, key=pools.__getitem__)
    cpu = pools[cpu_pool]
    # a gateway worker is held for its own CPU and the whole call: the request
    # and the reply crossing their links, two latencies and the service's CPU
    hold = gateway_cpu + (request + reply) / bandwidth + 2 * p.network_latency + service_cpu
    held = p.gateway_workers / hold
    bounds = {"link": link, "cpu": cpu, "gateway workers": held}
    binds = min(bounds, key=bounds.__getitem__)
    return {"format": fmt.name, "request_bytes": request, "reply_bytes": reply,
            "link_bytes": link_bytes, "link_ceiling": link,
            "service_cpu_s": service_cpu, "gateway_cpu_s": gateway_cpu,
            "cpu_ceiling": cpu, "cpu_pool": cpu_pool,
            "hold_s": hold, "hold_ceiling": held,
            "ceiling": bounds[binds], "binds": binds,
            "crossover_mbps": cpu * link_bytes * 8 / 1e6}


def format_ceilings(order_lines: int = 500, bandwidth_mbps: float = 100.0,
                    formats: Iterable[str | Format] | None = None, *,
                    service_workers: int = 4, gateway_workers: int = 20,
                    service_time: float = 0.01, network_latency: float = 0.001,
                    ) -> pd.DataFrame:
    """The most orders per second each format can carry, predicted without a run.

    Two resources can run out, and the lower ceiling binds:

    * **the link** -- every link direction carries one message per order
      (users -> gateway -> order service carry the request, the way back
      the reply) and sends one message at a time, so no direction can pass
      more than ``bandwidth / bytes`` orders per second.  The reply is the
      bigger message (the stored order gains its state), so
      ``link_ceiling = bandwidth / reply bytes``.
    * **the CPU** -- a pool of ``workers`` can finish at most
      ``workers / (CPU seconds per order)`` orders per second.  The order
      service pays its business logic (``service_time``), decoding the request
      and encoding the reply; the gateway a tenth of ``service_time`` and four
      codings.  ``cpu_ceiling`` is the lower of the two pools (``cpu_pool``
      names it).

    A third bound matters only when the gateway has few workers: each gateway
    worker is *held* while it waits for the order service (thread per
    request), at least ``hold_s`` per order -- its CPU, the request and reply
    crossing their links, two mean latencies and the service's CPU -- so
    ``hold_ceiling = gateway_workers / hold_s``.

    Columns: ``format``, ``request_bytes``, ``reply_bytes``, ``link_bytes``,
    ``link_ceiling``, ``service_cpu_s``, ``gateway_cpu_s``, ``cpu_ceiling``,
    ``cpu_pool``, ``hold_s``, ``hold_ceiling``, ``ceiling`` (the lowest),
    ``binds`` (``"link"``, ``"cpu"`` or ``"gateway workers"``) and
    ``crossover_mbps``: the bandwidth at which the link ceiling meets the CPU
    ceiling (below it the link binds, above it the CPU).  Ceilings are in
    orders per second; the parameters mean what the ``formats`` scenario's
    fields mean and are checked against the same ranges.  A run offered more
    than ``ceiling`` orders per second falls behind: its throughput flattens
    there and a backlog grows.  Long simulated runs land within about 1 % of
    these numbers, except right at the crossover, where the two queues
    interact and a run reaches about 96 % of it.
    """
    import pandas as pd

    specs = {f.name: f for f in fields(Params)}
    given = {"order_lines": order_lines, "bandwidth_mbps": bandwidth_mbps,
             "service_workers": service_workers, "gateway_workers": gateway_workers,
             "service_time": service_time, "network_latency": network_latency}
    p = Params(**{name: specs[name].check(v) for name, v in given.items()})
    df = pd.DataFrame([_ceiling_row(fmt, p) for fmt in format_list(formats)])
    df.attrs.update(given)
    return df


def capacity(p: Params) -> float:
    """Orders per second the scenario can carry with ``p``: the binding ceiling
    of :func:`format_ceilings` for ``p.message_format``."""
    return float(_ceiling_row(FORMATS[p.message_format], p)["ceiling"])


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
    capacity=capacity,
))
