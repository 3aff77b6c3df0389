"""Exercises of notebook 02, message formats: bytes, CPU and the two ceilings.

* **02.1** -- a format's link ceiling from bytes ÷ bandwidth.
* **02.2** -- the crossover bandwidth, where the link ceiling meets the CPU
  ceiling, for smaller orders than the notebook's.
* **02.3** -- settings that carry a load the notebook's JSON could not: the
  checker runs the ``formats`` scenario with them and says what happened.

Every expected value comes from :func:`simcomm.scenarios.formats.format_ceilings`,
the same prediction the notebook holds its runs against.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real
from simcomm.engine.formats import FORMATS
from simcomm.exercises._core import (
    Exercise,
    Feedback,
    Miss,
    Number,
    Settings,
    Slip,
    not_yet,
    register,
    right,
)
from simcomm.scenarios import formats

if TYPE_CHECKING:
    from simcomm.result import Result

NOTEBOOK = "02-message-formats"


def _count(n: float) -> str:
    """72330 -> "72 330": a space between thousands, as the rest of simcomm's prose."""
    return f"{round(n):,}".replace(",", " ")


@functools.cache
def ceilings(fmt: str, order_lines: int, bandwidth_mbps: float = 100.0,
             service_workers: int | None = None,
             gateway_workers: int | None = None) -> dict[str, Any]:
    """``format_ceilings`` for one format, as a dict (cached: it sizes the order)."""
    more = {k: v for k, v in (("service_workers", service_workers),
                              ("gateway_workers", gateway_workers)) if v is not None}
    df = formats.format_ceilings(order_lines=order_lines, bandwidth_mbps=bandwidth_mbps,
                                 formats=[fmt], **more)
    return {str(k): v for k, v in df.iloc[0].items()}


# -- 02.1: a link ceiling by hand ------------------------------------------------------

LINK_FORMAT = "xml"
LINK_LINES = 500
LINK_MBPS = 100.0


def _link() -> dict[str, Any]:
    return ceilings(LINK_FORMAT, LINK_LINES, LINK_MBPS)


def _explain_link() -> str:
    row = _link()
    bytes_per_s = LINK_MBPS * 1e6 / 8
    where = ("so on this link the bytes decide" if row["binds"] == "link"
             else f"but here the {row['binds']} bind first")
    return (f"{LINK_MBPS:g} Mbit/s is {bytes_per_s / 1e6:g} million bytes per second; ÷ "
            f"{_count(row['link_bytes'])} bytes per order ≈ {row['link_ceiling']:.0f} orders per "
            f"second (`format_ceilings` divides by the reply, bigger than the request by a "
            f"hair). The workers' CPU could manage {row['cpu_ceiling']:.0f}, {where}.")


register(Exercise(
    id="02.1",
    notebook=NOTEBOOK,
    title="A link ceiling from bytes and bandwidth",
    question=(
        f"How many **{FORMATS[LINK_FORMAT].name.upper()} orders of {LINK_LINES} line items "
        f"per second** can one direction of a {LINK_MBPS:g} Mbit/s link carry? Find the "
        f"bytes of one order with `formats.format_table({LINK_LINES})`. Answers within "
        f"±2 % count."),
    check=Number(
        lambda: _link()["link_ceiling"], unit="orders/s", rel=0.02,
        misses=[
            Slip(8, "Mbit/s counts bits and format_table counts bytes: a byte is 8 bits, "
                    "so a link moves an eighth as many bytes per second as its Mbit/s "
                    "suggest."),
            Slip(1 / 8, "that is 8 times too few: divide the bits per second by 8 to get "
                        "bytes per second, then by the bytes of one order."),
            Slip(2 ** 20 / 1e6, "network speeds count in powers of ten: 1 Mbit/s is "
                                "1 000 000 bits per second, not 2²⁰."),
            Slip(1 / 4, "each of the four link directions carries its own copy of the order, "
                        "at the same time as the others: one direction's limit is the "
                        "ceiling."),
            Slip(1 / 2, "the request and the reply travel in opposite directions, on "
                        "different link directions: they do not share one."),
            Miss(lambda: ceilings("json", LINK_LINES, LINK_MBPS)["link_ceiling"],
                 f"that is JSON's ceiling; the question asks about "
                 f"{LINK_FORMAT.upper()}, whose orders are bigger."),
            Miss(lambda: _link()["link_bytes"] * 8 / (LINK_MBPS * 1e6),
                 "that is the time one order takes to cross the link, in seconds. How many "
                 "such orders fit in one second?"),
            Miss(lambda: _link()["cpu_ceiling"],
                 "that is the CPU ceiling (the workers' limit). The question asks what the "
                 "link lets through."),
        ],
        explain=_explain_link, digits=3),
    hints=(
        "A link sends one message at a time: in one second it sends as many orders as "
        "fit in its bandwidth. Careful with the units: the bandwidth is in bits, the "
        "table in bytes.",
        f"{LINK_MBPS:g} Mbit/s = {_count(LINK_MBPS * 1e6)} bits per second = "
        f"{_count(LINK_MBPS * 1e6 / 8)} bytes per second.",
        lambda: (f"{_count(LINK_MBPS * 1e6 / 8)} ÷ the `bytes` of {LINK_FORMAT} in "
                 f"`formats.format_table({LINK_LINES})`."),
    ),
))

# -- 02.2: the crossover for small orders ------------------------------------------------

CROSS_FORMAT = "protobuf"
CROSS_LINES = 200
#: The order size of the notebook's crossover figure.
NOTEBOOK_LINES = 2000


def _cross(fmt: str = CROSS_FORMAT, lines: int = CROSS_LINES) -> dict[str, Any]:
    return ceilings(fmt, lines, 100.0)


def _crossover_of(fmt: str) -> Callable[[], float]:
    """The crossover of ``fmt`` for the question's orders, computed when asked."""
    return lambda: float(_cross(fmt)["crossover_mbps"])


def _explain_cross() -> str:
    small, big = _cross(), _cross(CROSS_FORMAT, NOTEBOOK_LINES)
    ratio = big["crossover_mbps"] / small["crossover_mbps"]
    return (f"{small['crossover_mbps']:.1f} Mbit/s: there the link ceiling "
            f"(bandwidth ÷ {_count(small['link_bytes'])} bytes) meets the CPU ceiling, "
            f"{small['cpu_ceiling']:.0f} orders per second. With {NOTEBOOK_LINES}-line orders "
            f"it was {big['crossover_mbps']:.0f} Mbit/s, {ratio:.1f} times higher: the bytes "
            f"shrink with the order, while the CPU ceiling hardly "
            f"moves ({big['cpu_ceiling']:.0f} → {small['cpu_ceiling']:.0f} orders per second), "
            f"because the business logic, not the coding, takes most of the CPU.")


register(Exercise(
    id="02.2",
    notebook=NOTEBOOK,
    title="The crossover bandwidth for smaller orders",
    question=(
        f"At what **bandwidth, in Mbit/s,** does Protocol Buffers cross over from "
        f"link-bound to CPU-bound for orders of {CROSS_LINES} line items (the other "
        f"settings at their defaults)? Work it out from "
        f"`formats.format_ceilings(order_lines={CROSS_LINES}, bandwidth_mbps=100)`: the link "
        f"ceiling grows in proportion to the bandwidth, the CPU ceiling does not. Answers "
        f"within ±3 % count."),
    check=Number(
        lambda: _cross()["crossover_mbps"], unit="Mbit/s", rel=0.03,
        misses=[
            Miss(lambda: _cross(CROSS_FORMAT, NOTEBOOK_LINES)["crossover_mbps"],
                 f"that is the crossover for the notebook's {NOTEBOOK_LINES}-line orders; "
                 f"the question asks about orders of {CROSS_LINES} line items."),
            Miss(lambda: 100.0 * _cross()["link_ceiling"] / _cross()["cpu_ceiling"],
                 "upside down: at 100 Mbit/s the link ceiling is above the CPU ceiling, so "
                 "the bandwidth must shrink until the two meet: 100 × cpu_ceiling ÷ "
                 "link_ceiling."),
            Miss(lambda: _cross()["cpu_ceiling"],
                 "that is the CPU ceiling, in orders per second; the question asks for a "
                 "bandwidth in Mbit/s."),
            Miss(lambda: _cross()["link_ceiling"],
                 "that is the link ceiling at 100 Mbit/s, in orders per second; the question "
                 "asks for a bandwidth in Mbit/s."),
            *[Miss(_crossover_of(f), f"that is {f}'s crossover; the question asks about "
                                     f"Protocol Buffers (protobuf).")
              for f in FORMATS if f != CROSS_FORMAT],
            Slip(1 / 8, "the link carries bits: a bandwidth in Mbit/s is bytes per second "
                        "× 8 ÷ 10⁶."),
        ],
        explain=_explain_cross, digits=3),
    hints=(
        "Below the crossover the link binds, above it the CPU. At 100 Mbit/s, which of "
        "protobuf's two ceilings is lower?",
        "The link ceiling at bandwidth B is link_ceiling × B ÷ 100; find the B at which it "
        "equals cpu_ceiling.",
        "B = 100 × cpu_ceiling ÷ link_ceiling, from the protobuf row of the table (the "
        "crossover_mbps column says it too).",
    ),
))

# -- 02.3: carry the load on a budget ----------------------------------------------------

LOAD_RATE = 150.0
LOAD_LINES = 2000
MAX_MBPS = 100.0
RUN_SECONDS = 20.0
LOAD_ALLOWED = ("message_format", "bandwidth_mbps", "service_workers", "gateway_workers")


def _within_budget(answer: Mapping[str, Any]) -> str | None:
    bandwidth = as_real(answer.get("bandwidth_mbps", MAX_MBPS))
    if bandwidth is not None and bandwidth > MAX_MBPS:
        return (f"bandwidth_mbps={answer['bandwidth_mbps']!r} is over the budget: links of at "
                f"most {MAX_MBPS:g} Mbit/s. Faster links would work, but they are not on "
                f"offer -- what else can you change?")
    return None


def _judge_load(res: Result, answer: Mapping[str, Any]) -> Feedback:
    s = res.summary()
    p = res.params
    row = ceilings(p.message_format, p.order_lines, p.bandwidth_mbps,
                   p.service_workers, p.gateway_workers)
    neck = res.bottleneck()
    need = p.request_rate / row["link_ceiling"] * p.bandwidth_mbps
    setup = f"{p.message_format} on {p.bandwidth_mbps:g} Mbit/s links"
    if s["stable"]:
        return right(
            f"{setup} carried {s['throughput']:.0f} of the {s['offered_rate']:.0f} orders per "
            f"second offered, 95 % of them answered within {s['p95'] * 1000:.0f} ms; "
            f"{neck['text']}. Its orders of {_count(row['link_bytes'])} bytes need links of at "
            f"least {need:.0f} Mbit/s for {p.request_rate:g} per second: a compact format "
            f"buys bandwidth.")
    waiting = (f"{_count(s['pending'])} of {_count(s['requests'])} orders "
               f"({s['pending_share'] * 100:.0f} %) were still waiting after "
               f"{res.until:g} s")
    if neck["kind"] == "link":
        why = (f"Orders of {_count(row['link_bytes'])} bytes in {p.message_format} need links "
               f"of at least {need:.0f} Mbit/s for {p.request_rate:g} per second, and more "
               f"workers cannot help a full link.")
    else:
        why = ("The workers are the bottleneck: a format that costs less CPU, or more "
               "workers, would help.")
    return not_yet(f"{setup} fell behind: {waiting}, and {neck['text']}. {why}")


register(Exercise(
    id="02.3",
    notebook=NOTEBOOK,
    title="Carry the load on a bandwidth budget",
    question=(
        f"Users send {LOAD_RATE:g} orders per second of {LOAD_LINES} line items, and the "
        f"budget allows links of at most {MAX_MBPS:g} Mbit/s. Choose settings that carry "
        f"this load without falling behind: a dict with any of "
        + ", ".join(f"`{name}`" for name in LOAD_ALLOWED)
        + f", such as `{{\"message_format\": \"json\", \"bandwidth_mbps\": {MAX_MBPS:g}}}`. "
        f"The checker runs the `formats` scenario for {RUN_SECONDS:g} simulated seconds "
        f"with your settings and tells you what happened."),
    check=Settings(
        "formats", allowed=LOAD_ALLOWED,
        fixed={"request_rate": LOAD_RATE, "order_lines": LOAD_LINES},
        limits=_within_budget, judge=_judge_load, until=RUN_SECONDS,
        solution={"message_format": "protobuf", "bandwidth_mbps": MAX_MBPS}),
    hints=(
        f"Which ceiling stops JSON at {MAX_MBPS:g} Mbit/s: the link or the CPU? Would more "
        f"workers raise it?",
        f"The link ceiling is bandwidth ÷ bytes per order. With the bandwidth capped, "
        f"only smaller orders raise it: compare the formats' link ceilings in "
        f"`formats.format_ceilings(order_lines={LOAD_LINES}, bandwidth_mbps={MAX_MBPS:g})`.",
        f"A format whose link ceiling at {MAX_MBPS:g} Mbit/s is above {LOAD_RATE:g} orders "
        f"per second, with the bandwidth at {MAX_MBPS:g}.",
    ),
))
