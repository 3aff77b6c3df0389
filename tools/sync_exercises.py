"""Write each notebook's "Exercises" section from :mod:`simcomm.exercises`.

Every exercise is declared once, in the package, with its question; the
notebooks show the same text.  This script (re)writes the section just
before "Questions to think about": one markdown cell with the questions,
the locked cell that imports ``exercises``, then two code cells per
exercise -- the answer cell a learner fills in and the check cell that
says whether it is right.  They are nbgrader's solution and graded test
cells as well (``make assignments``); their layout and metadata are
:mod:`simcomm.exercises.cells`'s.  It only touches that section and leaves
outputs out, so the notebooks stay committable as they are.

    python tools/sync_exercises.py          # rewrite the sections
    python tools/sync_exercises.py --check  # exit 1 if a notebook is out of date

``tests/test_notebooks.py`` runs the check, so the notebook's words cannot
drift from the checker's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simcomm import exercises
from simcomm.exercises import cells

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
HEADING = "## Exercises"
QUESTIONS = "## Questions to think about"
#: Marks the cells this script owns, so a rewrite finds and replaces them.
TAG = cells.TAG


def _source(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def section(stem: str) -> list[dict]:
    """The cells of the Exercises section of the notebook called ``stem``."""
    table = exercises.list(stem[:2])
    items = [exercises.get(i) for i in table["id"]]
    if not items:
        return []
    first = items[0].id
    intro = (f"{HEADING}\n\n"
             "Check your answers here: the checks run in this notebook, nothing is sent "
             "anywhere. Replace `...` with your answer, run that cell, then the check below "
             "it. A green tick means right; an amber *not yet* says what is off and gives a "
             f'first hint; `exercises.hint("{first}", 2)` gives the next one.')
    questions = "\n\n".join(f"**{ex.id} — {ex.title}.** {ex.question}" for ex in items)
    out = [{"cell_type": "markdown", "id": "exercise-0", "metadata": {"tags": [TAG]},
            "source": _source(f"{intro}\n\n{questions}")},
           cells.import_cell()]
    for ex in items:
        out += [cells.answer_cell(ex), cells.check_cell(ex)]
    return out


def synced(nb: dict, stem: str) -> dict:
    """``nb`` with its Exercises section rewritten just before the questions."""
    kept = [c for c in nb["cells"] if TAG not in c.get("metadata", {}).get("tags", [])]
    at = next(i for i, c in enumerate(kept)
              if c["cell_type"] == "markdown" and "".join(c["source"]).startswith(QUESTIONS))
    return {**nb, "cells": kept[:at] + section(stem) + kept[at:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        # read, rewrite and write back at once: others may be editing the lessons
        nb = json.loads(path.read_text())
        new = synced(nb, path.stem)
        if new != nb:
            stale.append(path.name)
            if not args.check:
                text = json.dumps(new, indent=1, sort_keys=True, ensure_ascii=False)
                path.write_text(text + "\n")
    if args.check and stale:
        print("exercises out of date in: " + ", ".join(stale)
              + " (run: python tools/sync_exercises.py)", file=sys.stderr)
        return 1
    for name in stale if not args.check else []:
        print(f"rewrote the exercises of {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
