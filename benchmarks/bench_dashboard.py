"""How long a learner waits after moving a dashboard control: re-run + redraw of ``chain``.

Builds ``simcomm.explore("chain")`` at its defaults, then sets the seed
control to a new value (which re-runs synchronously, exactly as a slider
release does in a notebook) ``REPS`` times, each a seed not seen before.
Reports the median and p90 of the whole wait, the machine's load average
while it ran (the machines are shared: a median means little without it),
and the medians of its parts as the dashboard measures them: the
simulation, the summary, drawing and rendering the views to PNG (one
number per view too), and the time until the first figure changed -- so a
slow release says where the time went.  Last, the wait when a control goes
back to a setting seen before (the dashboard keeps its last runs).

Target: median wait <= 0.3 s on an idle machine.

To hold a change against the code before it on a busy machine, copy the old
``simcomm`` package somewhere (say ``/tmp/old/simcomm``) and run

    .venv/bin/python benchmarks/bench_dashboard.py --against /tmp/old 4 8

which alternates old and new in fresh processes (4 rounds of 8 re-runs
each), and reports both and their ratio: the load hits both alike.  A
fifth argument names the new tree if it is not this work tree.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPS = 20
TARGET_SECONDS = 0.3


def _p90(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.9 * (len(xs) - 1)))]


def _waits(reps: int, first_seed: int) -> tuple[list[float], dict[str, list[float]], float]:
    """``reps`` re-runs of a fresh chain dashboard: (waits, parts, first build)."""
    from simcomm.widgets import explore

    t0 = time.perf_counter()
    dash = explore("chain")
    first = time.perf_counter() - t0
    assert dash.error is None, dash.error
    seed = dash.controls["seed"]
    waits: list[float] = []
    parts: dict[str, list[float]] = {}
    for i in range(reps):
        t0 = time.perf_counter()
        seed.value = first_seed + i  # a new seed each time: a fresh run, never from the cache
        waits.append(time.perf_counter() - t0)
        assert dash.error is None, dash.error
        for key, value in dash.timings.items():
            parts.setdefault(key, []).append(value)
    return waits, parts, first


def main(reps: int = REPS) -> dict[str, float | int]:
    """Time ``reps`` re-runs of the chain dashboard; a dict of seconds."""
    from simcomm.widgets import explore

    load_before = os.getloadavg()[0]
    waits, parts, first = _waits(reps, 1000)
    load_after = os.getloadavg()[0]
    dash = explore("chain")
    seed = dash.controls["seed"]
    for i in range(3):
        seed.value = 1000 + i
    cached = []  # moving a control back to a setting seen before shows the kept run
    for i in range(reps):
        t0 = time.perf_counter()
        seed.value = 1000 + i % 3
        cached.append(time.perf_counter() - t0)
    assert dash.cache_hits == reps, dash.cache_hits
    out: dict[str, float | int] = {
        "reps": reps,
        "load_1min_before": load_before,
        "load_1min_after": load_after,
        "first_dashboard_s": first,
        "rerun_median_s": statistics.median(waits),
        "rerun_p90_s": _p90(waits),
        "rerun_min_s": min(waits),
        "back_to_earlier_setting_median_s": statistics.median(cached),
    }
    for key, values in parts.items():
        if key != "total":
            out[f"{key}_median_s"] = statistics.median(values)
    out["target_median_s"] = TARGET_SECONDS
    return out


def _worker(root: str, reps: int, first_seed: int) -> None:
    """In a fresh process: the waits of the ``simcomm`` found under ``root``, as JSON."""
    # the editable install's finder would import the work tree's simcomm instead
    sys.meta_path[:] = [f for f in sys.meta_path
                        if "editable" not in getattr(f, "__module__", "")]
    sys.path.insert(0, root)
    import simcomm

    assert simcomm.__file__.startswith(str(Path(root).absolute())), simcomm.__file__
    waits, parts, _ = _waits(reps, first_seed)
    print(json.dumps({"waits": waits, "parts": {k: statistics.median(v)
                                                for k, v in parts.items()}}))


def against(old_root: str, rounds: int = 4, reps: int = 8,
            new_root: str | None = None) -> dict[str, float]:
    """Alternate the ``simcomm`` under ``old_root`` and the one under ``new_root``
    (default: this work tree), ``rounds`` times each."""
    here = new_root or str(Path(__file__).resolve().parents[1])
    waits: dict[str, list[float]] = {"old": [], "new": []}
    parts: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    loads = []
    for r in range(rounds):
        order = [("old", old_root), ("new", here)]
        for tag, root in order if r % 2 == 0 else order[::-1]:
            loads.append(os.getloadavg()[0])
            done = subprocess.run([sys.executable, __file__, "--worker", root, str(reps),
                                   str(2000 + 100 * r)], capture_output=True, text=True,
                                  check=True)
            data = json.loads(done.stdout.strip().splitlines()[-1])
            waits[tag] += data["waits"]
            parts[tag].append(data["parts"])
    out: dict[str, float] = {"load_1min_min": min(loads), "load_1min_max": max(loads)}
    for tag in ("old", "new"):
        out[f"{tag}_median_s"] = statistics.median(waits[tag])
        out[f"{tag}_p90_s"] = _p90(waits[tag])
        for key in ("simulate", "draw"):
            out[f"{tag}_{key}_median_s"] = statistics.median(p[key] for p in parts[tag])
    out["new_over_old_median"] = out["new_median_s"] / out["old_median_s"]
    out["runs_each"] = len(waits["new"])
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        sys.exit(0)
    if sys.argv[1:2] == ["--against"]:  # OLD_ROOT [ROUNDS [REPS [NEW_ROOT]]]
        results = against(sys.argv[2], *(int(a) for a in sys.argv[3:5]),
                          *sys.argv[5:6])  # type: ignore[arg-type]
    else:
        results = main(int(sys.argv[1]) if len(sys.argv) > 1 else REPS)
    for key, value in results.items():
        print(f"{key}: {value:.4g}")
