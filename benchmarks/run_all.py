"""Run every benchmark in this folder and print its numbers (``make bench``).

The machines are shared and noisy: each benchmark repeats its measurement
and reports medians and ratios measured side by side in one run.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def main() -> int:
    scripts = sorted(p for p in HERE.glob("bench_*.py"))
    if not scripts:
        print("no benchmarks found", file=sys.stderr)
        return 1
    for path in scripts:
        print(f"== {path.stem}")
        t0 = time.perf_counter()
        results = _load(path).main()
        # a dict of numbers to print, or rows of a table the benchmark printed itself
        # (bench_memory), which would otherwise stop the run before the next script
        for key, value in (results.items() if isinstance(results, dict) else ()):
            print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
        print(f"  (took {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
