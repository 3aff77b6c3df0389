"""How long a learner waits after moving a dashboard control: re-run + redraw of ``chain``.

Builds ``simcomm.explore("chain")`` at its defaults, then sets the seed
control to a new value (which re-runs synchronously, exactly as a slider
release does in a notebook) ``REPS`` times, each a seed not seen before.
Reports the median and p90 of the whole wait, and the medians of its parts
as the dashboard measures them: the simulation, the summary, drawing and
rendering the views to PNG (one number per view too), and the time until
the first figure changed -- so a slow release says where the time went.
Last, the wait when a control goes back to a setting seen before (the
dashboard keeps its last runs).

Target: median wait <= 0.5 s.
"""

from __future__ import annotations

import statistics
import sys
import time

REPS = 15
TARGET_SECONDS = 0.5


def _p90(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.9 * (len(xs) - 1)))]


def main(reps: int = REPS) -> dict[str, float | int]:
    """Time ``reps`` re-runs of the chain dashboard; a dict of seconds."""
    from simcomm.widgets import explore

    t0 = time.perf_counter()
    dash = explore("chain")
    first = time.perf_counter() - t0
    seed = dash.controls["seed"]
    waits: list[float] = []
    parts: dict[str, list[float]] = {}
    for i in range(reps):
        t0 = time.perf_counter()
        seed.value = 1000 + i  # a new seed each time: a fresh run, never from the cache
        waits.append(time.perf_counter() - t0)
        for key, value in dash.timings.items():
            parts.setdefault(key, []).append(value)
    assert dash.runs == reps + 1 and dash.cache_hits == 0 and dash.error is None, dash.error
    # moving a control back to a setting seen before shows the kept run
    cached = []
    for i in range(reps):
        t0 = time.perf_counter()
        seed.value = 1000 + (reps - 1) - (1 + i % 2)  # one of the last runs
        cached.append(time.perf_counter() - t0)
    assert dash.cache_hits == reps, dash.cache_hits
    out: dict[str, float | int] = {
        "reps": reps,
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


if __name__ == "__main__":
    results = main(int(sys.argv[1]) if len(sys.argv) > 1 else REPS)
    for key, value in results.items():
        print(f"{key}: {value:.4g}")
