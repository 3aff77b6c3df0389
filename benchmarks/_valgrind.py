"""Instructions per unit of work, counted by valgrind: a measure the machine's load cannot move.

The benchmarks' time ratios wander on a shared, noisy machine; an
instruction count does not.  Each side of a benchmark is run twice as a
child process (``SCRIPT --side SIDE N``) under cachegrind, at ``n1`` and
``n2`` units; the difference divided by ``n2 - n1`` is the cost of one
more unit, with the start-up (imports, building the model) cancelled out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable


def instructions_per_unit(script: str, sides: Iterable[str], n1: int,
                          n2: int) -> dict[str, float]:
    """Instructions per extra unit of each side of ``script`` (valgrind's ``I refs``)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind on the PATH")
    per_unit: dict[str, float] = {}
    for side in sides:
        counts = []
        for n in (n1, n2):
            child = subprocess.run(
                ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                 "--cachegrind-out-file=/dev/null", sys.executable, script, "--side",
                 side, str(n)], check=True, capture_output=True, text=True)
            found = re.search(r"I\s+refs:\s+([\d,]+)", child.stderr)
            if found is None:
                raise RuntimeError(f"no instruction count from valgrind: {child.stderr[-500:]}")
            counts.append(int(found.group(1).replace(",", "")))
        per_unit[side] = (counts[1] - counts[0]) / (n2 - n1)
    return per_unit
