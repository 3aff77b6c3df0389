"""Memory a run holds, measured, against what ``simcomm.estimate`` predicts.

The calibration behind :mod:`simcomm.guard`: each case is run under
:mod:`tracemalloc` and the memory the world still holds at the end of the
run (trace rows, waiting requests, everything allocated after the build)
is set beside the estimate -- the scenario's own model (its Load and
capacity) where it declares one, and the pilot every scenario can fall
back on.  Printed per case: requests, pending at the end, measured bytes
per request, each estimate as a ratio of the measured bytes (1.00 is
exact; the guard wants a little above 1, never much below), and the same
ratio for the *growth*: bytes added by the second half of the run against
the estimate's ``bytes_per_second``.  The growth is what decides whether a
long run fits; the totals of these short runs also carry the estimate's
fixed allowance (``guard.BASE_BYTES``, 1 MiB) for the world and the work
in flight, which is why an untraced short run comes out well above 1.

    python benchmarks/bench_memory.py          # the calibration cases
    python benchmarks/bench_memory.py --quick  # smaller runs, a few seconds
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import tracemalloc
from typing import Any

#: (scenario, until, params): normal runs and overloaded ones, where
#: requests pile up in a worker queue (mmc, chain) or a link's (formats).
CASES: list[tuple[str, float, dict[str, Any]]] = [
    ("mmc", 10_000, {}),
    ("mmc", 10_000, {"arrival_rate": 2.0}),
    ("mmc", 20, {"arrival_rate": 1000.0, "service_rate": 0.01}),
    ("chain", 100, {}),
    ("chain", 100, {"depth": 6, "request_rate": 30.0}),
    ("chain", 100, {"request_rate": 100.0, "service_workers": 2}),
    ("formats", 60, {}),
    ("formats", 20, {"request_rate": 300.0, "order_lines": 2000}),
]
QUICK = [(name, until / 5, params) for name, until, params in CASES]


def measure(name: str, until: float, trace: bool, **params: Any) -> dict[str, float]:
    """Run one case under tracemalloc; the bytes it holds at the end and its counts."""
    from simcomm import guard
    from simcomm.api import estimate
    from simcomm.engine.workload import Client
    from simcomm.engine.world import World
    from simcomm.scenarios import get, make_params

    sc = get(name)
    p = make_params(sc, params)
    model = estimate(name, until=until, trace=trace, **params)
    pilot = guard.estimate(dataclasses.replace(sc, load=None), p, until, trace=trace)
    gc.collect()
    tracemalloc.start()
    world = World(1, trace=trace)
    sc.build(world, p)
    built = tracemalloc.get_traced_memory()[0]
    world.run(until / 2)
    gc.collect()
    half = tracemalloc.get_traced_memory()[0] - built
    world.run(until)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - built
    tracemalloc.stop()
    pending = sum(len(n.open) for n in world.nodes.values() if isinstance(n, Client))
    growth = (held - half) / (until / 2)  # bytes per simulated second
    nan = float("nan")
    return {"requests": world.request_count, "pending": pending, "bytes": held,
            "model": model.bytes / held if model.source == "model" else nan,
            "pilot": pilot.bytes / held,
            "model_growth": model.bytes_per_second / growth if model.source == "model" else nan,
            "pilot_growth": pilot.bytes_per_second / growth}


def main(quick: bool = False) -> list[dict[str, Any]]:
    rows = []
    print(f"{'case':52s} {'trace':5s} {'requests':>9s} {'pending':>8s} {'B/request':>9s} "
          f"{'model':>6s} {'pilot':>6s} {'growth: model':>14s} {'pilot':>6s}")
    for name, until, params in (QUICK if quick else CASES):
        for trace in (True, False):
            m = measure(name, until, trace, **params)
            label = f"{name} until={until:g} " + " ".join(f"{k}={v:g}" for k, v in params.items())
            print(f"{label:52s} {trace!s:5s} {m['requests']:9d} {m['pending']:8d} "
                  f"{m['bytes'] / max(1, m['requests']):9.0f} "
                  f"{m['model']:6.2f} {m['pilot']:6.2f} {m['model_growth']:14.2f} "
                  f"{m['pilot_growth']:6.2f}")
            rows.append({"case": label, "trace": trace, **m})
    return rows


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
