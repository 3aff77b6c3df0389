"""Runs cannot run away: estimate a run's size before time zero, refuse one too large.

A run keeps every traced event as a row in memory, and every request still
waiting (queued at a worker pool or a link, or awaited by a user) holds its
message, events and callbacks until the end.  Before time zero
:func:`estimate` predicts how many requests a run will see, how many will
still be pending at its end, how many trace rows it will write and so how
many bytes it will hold; :func:`simcomm.api.prepare` refuses a run whose
estimate is over :func:`memory_budget` with :class:`~simcomm.errors.RunTooLarge`,
a one-line message that says what to change.

How the estimate is made
------------------------
* A scenario that declares its :class:`~simcomm.scenarios.base.Load` and
  its ``capacity`` is sized by arithmetic: requests arrive at
  ``requests_per_s`` for ``until`` seconds; those arriving beyond the
  capacity pile up (they are pending at the end); each finished request
  writes ``2 * messages_per_request`` message rows (sent, delivered) and
  ``pool_changes_per_request`` pool rows; each pending one has crossed one
  hop (2 message rows) and joined one queue (1 pool row).
* Any other scenario is sized by a *pilot*: the same scenario and
  parameters run from time zero, in doubling steps of simulated time, until
  :data:`PILOT_MESSAGES` messages have been sent (or ``until`` is reached);
  its rows and its pending requests are then scaled up linearly to
  ``until``.  The pilot costs a few hundredths of a second and is
  remembered for the same scenario, parameters, ``trace`` and ``until``.
  It cannot foresee a load that changes later in the run (a spike
  scheduled after the pilot ended).

The bytes per row and per pending request were measured, not guessed:
``benchmarks/bench_memory.py`` runs mmc, chain and formats with tracing on
and off under :mod:`tracemalloc` and compares the memory each run still
holds at its end with this estimate.  What it found (CPython 3.11, 64-bit;
bytes held per request that arrived):

=====================================================  ========  =========
run                                                    trace on  trace off
=====================================================  ========  =========
mmc, defaults, until=10 000                               142 B       24 B
mmc, arrival_rate=2 (half the requests pending)           560 B      471 B
mmc, arrival_rate=1000, service_rate=0.01 (all pend.)     903 B      850 B
chain, defaults                                           686 B      139 B
chain, depth=6, request_rate=30                         1 123 B      124 B
chain, request_rate=100, service_workers=2 (overload)     597 B      391 B
formats, defaults                                         304 B       31 B
formats, request_rate=300, order_lines=2000 (overload)  1 183 B    1 089 B
=====================================================  ========  =========

The trace keeps its rows in typed columns (:mod:`simcomm.engine.trace`),
so a message row takes about 25-30 B (36 B counted here, with the rows of
call attempts that come with the messages), a pool row 12 B, a request
row 25-30 B, a timeline event up to 150 B (mostly its text); a request
still waiting at the end 850-920 B in a worker's queue (mmc) and about
1 500 B in a link's queue (formats).  The model counts 1 000 B for each
request piling up; the pilot 1 000 B for one queued for a worker and
1 700 B for one waiting anywhere else.  On these runs the estimated growth
(``bytes_per_second``) is 1.1-1.6 times the measured one for the model
traced (2.1 for an overloaded chain) and 1.1-2.7 untraced, where a
chain's requests cost so little that the world's own bookkeeping shows,
and 1.0-1.5 times for the pilot traced (1.9 for the overloaded chain);
the totals also carry a fixed 1 MiB allowance for the world and the work
in flight.  A run with ``spill`` (the trace streamed to Parquet files) is
estimated as an untraced one.  ``summary()`` and ``ledger()`` read the
trace a chunk at a time and add little; building every DataFrame
afterwards (``res.trace`` and friends) takes about twice the trace's
memory again (chain: 630 B per request held at the end of a 20 000-request
run, 2 000 B with every table built), which is why the default budget is
half the machine's memory, not all of it.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simcomm._checks import as_real
from simcomm.errors import ParamError, RunTooLarge

if TYPE_CHECKING:
    from simcomm.scenarios.base import Scenario

__all__ = ["BUDGET_ENV", "Estimate", "check", "estimate", "memory_budget", "parse_size"]

#: Environment variable that sets the default memory budget ("4G", "500M", bytes).
BUDGET_ENV = "SIMCOMM_MEMORY_BUDGET"

#: Share of the machine's memory (or of the container's limit) a run may use
#: by default; the rest is for the tables built from it, the notebook and the system.
BUDGET_SHARE = 0.5

# -- calibration (see the module docstring and benchmarks/bench_memory.py) -----------
MESSAGE_ROW_BYTES = 36
POOL_ROW_BYTES = 12
REQUEST_ROW_BYTES = 30
EVENT_ROW_BYTES = 150
PENDING_BYTES = 1_000        # a request still waiting at the end, in a worker's queue
PILOT_PENDING_BYTES = 1_700  # one waiting elsewhere (a link's queue), for the pilot
BASE_BYTES = 1 << 20         # the world itself: nodes, streams, processes
#: Wall-clock seconds one message costs the engine, with its events, rows and
#: the work around it (20 us in mmc, 50 us in chain, 65 us in formats on one
#: 2020s server core); only a hint.
SECONDS_PER_MESSAGE = 50e-6

#: A pilot stops once about this many messages have been sent (a few
#: hundredths of a second of work).
PILOT_MESSAGES = 1_000
#: Simulated seconds of the pilot's first step (it doubles from there).
PILOT_FIRST_STEP = 0.01

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
SIZE_ALLOWED = "a size such as 4G, 500M or 2.5T (powers of 1024), or a number of bytes >= 1"


@dataclass(frozen=True)
class Estimate:
    """What a run will need, predicted before time zero.

    ``requests``: requests expected to arrive; ``pending``: of them, still
    unfinished at the end (a system over its capacity piles them up);
    ``messages``: messages sent; ``trace_rows``: rows of the trace tables
    (messages, pools, requests, events; with ``trace=False`` only requests
    and events); ``bytes``: memory the run holds at its end;
    ``bytes_per_second``: how fast that grows with ``until`` (so the
    ``until`` that fits a budget is ``(budget - base) / bytes_per_second``);
    ``seconds``: a rough wall-clock hint; ``source``: ``"model"`` (the
    scenario's Load and capacity) or ``"pilot"`` (a short measured run);
    ``requests_per_s``: the arrival rate; ``untraced_bytes``: what the same
    run would hold with ``trace=False``; ``capacity``: the scenario's
    capacity model (req/s) or NaN.
    """

    scenario: str
    until: float
    trace: bool
    requests: float
    pending: float
    messages: float
    trace_rows: float
    bytes: float
    bytes_per_second: float
    seconds: float
    source: str
    requests_per_s: float
    untraced_bytes: float
    capacity: float = math.nan

    @property
    def base_bytes(self) -> float:
        """Memory that does not grow with ``until``."""
        return BASE_BYTES


# -- sizes ---------------------------------------------------------------------------

def parse_size(value: Any, field: str = "memory_budget") -> int:
    """Bytes from ``value``: a number of bytes, or text such as ``"4G"``, ``"500M"``.

    Units K, M, G, T, P are powers of 1024 (``"4G"`` is 4 GiB) and may be
    followed by ``B`` or ``iB`` (``"4GB"``, ``"4GiB"``), in any case.  The
    result is at least one byte; anything else raises a ParamError naming
    ``field``.
    """
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgtp]?)(?:i?b)?\s*",
                         value.lower())
        if m is None:
            raise ParamError(field, value, SIZE_ALLOWED)
        number = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        number = as_real(value)  # type: ignore[assignment]
        if number is None:
            raise ParamError(field, value, SIZE_ALLOWED)
    if not (number >= 1 and math.isfinite(number)):
        raise ParamError(field, value, SIZE_ALLOWED)
    return int(number)


def format_size(nbytes: float) -> str:
    """``nbytes`` for people: ``"12 GiB"``, ``"640 MiB"``, ``"2.1 PiB"``."""
    if not math.isfinite(nbytes):
        return "unbounded"
    for unit, scale in (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30),
                        ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            x = nbytes / scale
            if x >= 10_000:
                return f"{x:.1e} {unit}"
            return f"{x:.0f} {unit}" if x >= 10 else f"{x:.1f} {unit}"
    return f"{nbytes:.0f} B"


def _physical_memory() -> int | None:
    """Bytes of memory this process can use: the machine's, or its container's limit."""
    sizes: list[int] = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        sizes.extend(_windows_memory())
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" or a huge number: no limit
            sizes.append(int(text))
    sizes = [s for s in sizes if s > 0]
    return min(sizes) if sizes else None


def _windows_memory() -> list[int]:  # pragma: no cover - exercised on Windows only
    try:
        import ctypes

        class _Status(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                        ("ullTotalPhys", ctypes.c_ulonglong),
                        ("ullAvailPhys", ctypes.c_ulonglong),
                        ("ullTotalPageFile", ctypes.c_ulonglong),
                        ("ullAvailPageFile", ctypes.c_ulonglong),
                        ("ullTotalVirtual", ctypes.c_ulonglong),
                        ("ullAvailVirtual", ctypes.c_ulonglong),
                        ("sullAvailExtendedVirtual", ctypes.c_ulonglong)]

        status = _Status()
        status.dwLength = ctypes.sizeof(_Status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return [int(status.ullTotalPhys)]
    except (AttributeError, OSError, ImportError):
        pass
    return []


#: Assumed when the machine's memory cannot be read: a small laptop's.
FALLBACK_MEMORY = 4 << 30


def memory_budget(value: Any = None) -> int:
    """The memory a run may take, in bytes.

    ``value`` (a number of bytes or a size such as ``"4G"``) if given; else
    the environment variable ``SIMCOMM_MEMORY_BUDGET`` if set; else half of
    the memory of this machine -- or of its container, if that limit is
    lower (a Binder session has about 2 GiB whatever the host has).
    A bad value raises a ParamError naming ``memory_budget`` or the
    environment variable.
    """
    if value is not None:
        return parse_size(value)
    env = os.environ.get(BUDGET_ENV)
    if env is not None and env.strip():
        return parse_size(env, BUDGET_ENV)
    total = _physical_memory() or FALLBACK_MEMORY
    return int(total * BUDGET_SHARE)


# -- the estimate --------------------------------------------------------------------

def estimate(scenario: Scenario, params: Any, until: float, *, trace: bool = True) -> Estimate:
    """Predict the size of a run of ``scenario`` (already checked ``params``) to ``until``.

    Arithmetic from the scenario's ``load`` and ``capacity`` if it declares
    both, else a short pilot run (see the module docstring).  Use
    :func:`simcomm.api.estimate` to estimate from unchecked arguments.
    """
    if scenario.load is not None and scenario.capacity is not None:
        return _from_model(scenario, params, until, trace)
    try:
        rates = _pilot_cached(scenario, params, bool(trace), until)
    except TypeError:  # unhashable params (a list field, say): measure without the memo
        rates = _pilot(scenario, params, bool(trace), until)
    return _from_rates(scenario, params, until, trace, rates, "pilot")


@dataclass(frozen=True)
class _Rates:
    """Counts per simulated second (what a run adds for each second it lasts)."""

    requests: float
    pending: float
    pending_bytes: float  # bytes the requests piling up add
    messages: float
    message_rows: float
    pool_rows: float
    request_rows: float
    event_rows: float


def _from_model(scenario: Scenario, params: Any, until: float, trace: bool) -> Estimate:
    load = scenario.load(params)  # type: ignore[misc]
    cap = float(scenario.capacity(params))  # type: ignore[misc]
    lam = float(load.requests_per_s)
    stuck = max(0.0, lam - cap) if cap >= 0 else 0.0  # req/s that pile up
    done = lam - stuck
    rates = _Rates(
        requests=lam, pending=stuck, pending_bytes=stuck * PENDING_BYTES,
        messages=done * load.messages_per_request + stuck,
        message_rows=2 * done * load.messages_per_request + 2 * stuck,
        pool_rows=done * load.pool_changes_per_request + stuck,
        request_rows=done, event_rows=float(load.events_per_s))
    return _from_rates(scenario, params, until, trace, rates, "model", cap)


def _from_rates(scenario: Scenario, params: Any, until: float, trace: bool, r: _Rates,
                source: str, cap: float | None = None) -> Estimate:
    if cap is None:
        cap = float(scenario.capacity(params)) if scenario.capacity is not None else math.nan
    traced_rows = (r.message_rows + r.pool_rows) if trace else 0.0
    rows_per_s = traced_rows + r.request_rows + r.event_rows
    untraced = (r.request_rows * REQUEST_ROW_BYTES + r.event_rows * EVENT_ROW_BYTES
                + r.pending_bytes)
    per_s = untraced + (r.message_rows * MESSAGE_ROW_BYTES + r.pool_rows * POOL_ROW_BYTES
                        if trace else 0.0)
    return Estimate(
        scenario=scenario.name, until=until, trace=bool(trace),
        requests=r.requests * until, pending=r.pending * until,
        messages=r.messages * until, trace_rows=rows_per_s * until,
        bytes=BASE_BYTES + per_s * until, bytes_per_second=per_s,
        seconds=r.messages * until * SECONDS_PER_MESSAGE, source=source,
        requests_per_s=r.requests, untraced_bytes=BASE_BYTES + untraced * until,
        capacity=cap)


@functools.lru_cache(maxsize=256)
def _pilot_cached(scenario: Scenario, params: Any, trace: bool, until: float) -> _Rates:
    return _pilot(scenario, params, trace, until)


def _pilot(scenario: Scenario, params: Any, trace: bool, until: float) -> _Rates:
    """Run ``scenario`` a little and measure what each simulated second adds.

    Doubling steps of simulated time from :data:`PILOT_FIRST_STEP` until
    :data:`PILOT_MESSAGES` messages have been sent or ``until`` is reached,
    so the pilot's cost does not depend on ``until`` or on the rates.  Seed
    0 always: the size of a run hardly depends on its seed, and the result
    can then be remembered across seeds.
    """
    from simcomm.engine.workload import Client
    from simcomm.engine.world import World

    world = World(0, trace=trace)
    scenario.build(world, params)
    nodes = world.nodes.values()

    def waiting() -> tuple[int, int]:
        """Requests queued for a worker, and others still awaited by a user."""
        queued = sum(len(q) for n in nodes if isinstance(q := getattr(n, "queue", None), Sized))
        users = sum(len(n.open) for n in nodes if isinstance(n, Client))
        return queued, max(0, users - queued)

    seen = [(0.0, (0, 0))]
    t = min(until, PILOT_FIRST_STEP)
    while True:
        world.run(t)
        seen.append((t, waiting()))
        sent = world.message_count
        if t >= until or sent >= PILOT_MESSAGES:
            break
        # double, or less if the rate so far says the target is nearer
        aim = t * PILOT_MESSAGES / sent * 1.05 if sent else 2 * t
        t = min(until, 2 * t, max(1.1 * t, aim))
    # requests pile up at the rate their number grew over the pilot's second
    # half; a stable system's few in flight do not grow, and are not scaled up
    t0, (queued0, other0) = max(x for x in seen if x[0] <= t / 2)
    queued, other = seen[-1][1]
    span = t - t0
    queued_rate = max(0, queued - queued0) / span
    other_rate = max(0, other - other0) / span
    tr = world.trace
    per = 1.0 / t
    return _Rates(
        requests=world.request_count * per, pending=queued_rate + other_rate,
        pending_bytes=queued_rate * PENDING_BYTES + other_rate * PILOT_PENDING_BYTES,
        messages=world.message_count * per, message_rows=len(tr.messages) * per,
        pool_rows=len(tr.pools) * per, request_rows=len(tr.requests) * per,
        event_rows=len(tr.events) * per)


# -- the refusal ---------------------------------------------------------------------

def _round_down(x: float) -> float:
    """``x`` rounded down to two significant digits (a limit to quote)."""
    if not x > 0 or not math.isfinite(x):
        return x
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return math.floor(x / scale) * scale


def _count(x: float) -> str:
    if not math.isfinite(x) or x >= 1e15:
        return f"{x:.1e}"
    return f"{round(x):,}".replace(",", " ")


def check(est: Estimate, budget: int, *, until_given: bool = True) -> None:
    """Raise :class:`RunTooLarge` if ``est`` needs more than ``budget`` bytes.

    The one-line message says how much the run would need, why (an
    overloaded system piles up requests), and what to change: ``until`` to
    at most the value that fits, ``trace=False`` if that alone would fit,
    or a larger budget.
    """
    if est.bytes <= budget:
        return
    need = (f"about {format_size(est.bytes)} of memory" if math.isfinite(est.bytes)
            else "more memory than any machine has")
    parts = [f"this run would need {need} "
             f"({_count(est.requests)} requests"
             + (f", {_count(est.pending)} of them still pending at the end"
                if est.pending >= 0.1 * est.requests else "")
             + ("; traced" if est.trace else "; untraced")
             + f"), over the memory budget of {format_size(budget)}"]
    if est.pending >= 0.1 * est.requests and math.isfinite(est.capacity):
        parts.append(f"requests arrive at {est.requests_per_s:g} req/s but the system "
                     f"carries about {est.capacity:.3g} req/s, so they pile up")
    fixes = []
    if est.bytes_per_second > 0:
        fit = _round_down((budget - est.base_bytes) / est.bytes_per_second)
        if fit > 0:
            fixes.append(f"until <= {fit:g} s")
    if est.trace and est.untraced_bytes <= budget:
        fixes.append(f"trace=False (CLI --no-trace; about {format_size(est.untraced_bytes)})")
    fixes.append(f"a larger budget: memory_budget= (CLI --memory-budget, or {BUDGET_ENV})")
    text = "; ".join(parts) + "; use " + ", or ".join(fixes)
    raise RunTooLarge("until", est.until, text, estimate=est)
