"""Build the course as an nbgrader course: ``make assignments``.

Every notebook is an nbgrader source as committed: each exercise is an
answer cell (an nbgrader solution cell holding the ``answer = ...``
template) and a locked, graded check cell (``exercises.check``, which
raises while nbgrader runs the notebook unless the answer is right); see
:mod:`simcomm.exercises.cells`.  This script lays out a course directory
and runs ``nbgrader generate_assignment`` on every notebook::

    build/assignments/
      nbgrader_config.py            course id "simcomm", ClearSolutions off (below)
      source/<stem>/<stem>.ipynb    the committed notebook, one assignment each
      release/<stem>/<stem>.ipynb   the student version nbgrader made
      solved/<stem>/<stem>.ipynb    the student version with every answer right
      gradebook.db                  nbgrader's: assignments, cells, points

``solved/`` is the answer key, written from each exercise's ``solution()``
(computed from the package, never typed in): it is also what a student
who got everything right hands in, so copying it to
``submitted/<student>/<stem>/`` and running ``nbgrader autograde <stem>``
must give full marks (``tests/test_assignments.py`` does that).

ClearSolutions is off because there is nothing to clear: the sources hold
templates, not solutions (they are the notebooks self-study learners open).
With it on, nbgrader would replace each answer cell by one course-wide stub
(``# YOUR CODE HERE`` / ``raise NotImplementedError()``), and a student
would lose the template -- the dict of settings a settings exercise asks
for.  Once generated, every release notebook is checked: its exercise
cells are exactly the committed ones (no solution), outputs are empty.

Rebuilding replaces ``nbgrader_config.py``, ``source/``, ``release/`` and
``solved/``; anything else in the course (``gradebook.db``,
``submitted/``, ``autograded/``, ``feedback/``) is left where it is.

    python tools/assignments.py                       # all notebooks -> build/assignments
    python tools/assignments.py --out DIR 00-tour     # some notebooks, elsewhere
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simcomm import exercises
from simcomm.errors import ParamError
from simcomm.exercises import cells

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "build" / "assignments"
COURSE = "simcomm"
#: Seconds nbgrader lets one cell run when it executes a notebook (its default,
#: 30, is short for the longest runs of the lessons on a busy machine).
CELL_TIMEOUT = 600

CONFIG = f'''\
"""nbgrader configuration of the simcomm course (written by tools/assignments.py).

Run nbgrader from this directory: nbgrader generate_assignment 00-tour, ...
"""

c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = "{COURSE}"

# The sources are the course's notebooks as learners open them: every answer
# cell holds a template ("answer = ..." or a dict of ...), never a solution.
# Clearing would replace each by one course-wide stub and lose the template;
# there is nothing to clear, so the student versions keep them as they are.
c.ClearSolutions.enabled = False

# A lesson's longest run takes tens of seconds on a busy machine.
c.Execute.timeout = {CELL_TIMEOUT}
'''


@dataclass(frozen=True)
class Assignment:
    """One generated assignment: a notebook, its exercises and their points."""

    stem: str
    exercises: tuple[str, ...]
    points: int
    source: Path
    release: Path
    solved: Path


def notebooks(stems: Sequence[str] = (), where: Path = NOTEBOOKS) -> list[Path]:
    """The course notebooks with exercises, in order, or those named by ``stems``.

    A name may be the stem, the file name or the two-digit prefix; an unknown
    one is refused (ParamError) before anything is written.
    """
    known = sorted(p for p in where.glob("[0-9][0-9]-*.ipynb")
                   if not exercises.list(p.stem[:2]).empty)
    if not stems:
        return known
    chosen = []
    for name in stems:
        text = str(name).removesuffix(".ipynb")
        match = [p for p in known if p.stem == text or p.stem[:2] == text]
        if len(match) != 1:
            raise ParamError("notebook", name, "one of " + ", ".join(p.stem for p in known))
        chosen.append(match[0])
    return chosen


def _nbgrader(args: Sequence[str], course: Path) -> None:
    """Run ``nbgrader ARGS`` in the course directory; its log is shown only if it fails.

    nbgrader runs ``alembic`` (its database migrations) by name, so this
    Python's scripts directory goes first on the PATH, venv activated or not.
    """
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def _write(path: Path, nb: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def release_problems(nb: dict, stem: str) -> list[str]:
    """What keeps ``nb``, a student version, from being handed out (empty if nothing):
    exercise cells other than the committed ones (a solution would show), outputs."""
    problems = cells.layout_problems(nb, stem, answers="template")
    for cell in nb["cells"]:
        if cell.get("outputs") or cell.get("execution_count") is not None:
            problems.append(f"cell {cell.get('id')}: has outputs")
    return problems


def build(out: Path = OUT, stems: Sequence[str] = (), *,
          where: Path = NOTEBOOKS) -> list[Assignment]:
    """Lay out the nbgrader course in ``out`` and generate its student versions.

    ``stems`` picks notebooks (all with exercises by default).  Returns an
    :class:`Assignment` per notebook.  Raises RuntimeError if nbgrader fails
    or a student version is not as it must be (:func:`release_problems`).
    """
    paths = notebooks(stems, where)
    out = Path(out)
    for sub in ("source", "release", "solved"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(CONFIG)
    for path in paths:
        nb = json.loads(path.read_text())
        problems = cells.layout_problems(nb, path.stem, answers="template")
        if problems:
            raise RuntimeError(f"{path.name} is not an nbgrader source as the course needs "
                               f"(run tools/sync_exercises.py): " + "; ".join(problems))
        _write(out / "source" / path.stem / path.name, nb)
    # one nbgrader process for every assignment (the id is a glob): its start-up is
    # most of the cost of generating one
    _nbgrader(["generate_assignment", "*", "--force"], out)
    made = []
    for path in paths:
        stem = path.stem
        release = out / "release" / stem / path.name
        if not release.is_file():
            raise RuntimeError(f"nbgrader made no student version of {stem}")
        student = json.loads(release.read_text())
        problems = release_problems(student, stem)
        if problems:
            raise RuntimeError(f"the student version of {stem}: " + "; ".join(problems))
        solved = out / "solved" / stem / path.name
        _write(solved, cells.solved(student))
        ids = tuple(exercises.list(stem[:2])["id"])
        points = sum(exercises.get(i).points for i in ids)
        made.append(Assignment(stem, ids, points, out / "source" / stem / path.name, release,
                               solved))
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stems", nargs="*", metavar="NOTEBOOK",
                        help="notebooks to build (stem or NN; default: all with exercises)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"course directory ({OUT})")
    args = parser.parse_args(argv)
    try:
        made = build(args.out, args.stems)
    except ParamError as exc:
        parser.error(str(exc))
    out = args.out.resolve()
    print(f"nbgrader course '{COURSE}' in {out}")
    for a in made:
        print(f"  {a.stem:<40} {len(a.exercises)} exercises, {a.points} points")
    print(f"  {'total':<40} {sum(len(a.exercises) for a in made)} exercises, "
          f"{sum(a.points for a in made)} points")
    print(f"sources:           {out / 'source'}/<notebook>/")
    print(f"student versions:  {out / 'release'}/<notebook>/   (hand these out)")
    print(f"answer key:        {out / 'solved'}/<notebook>/    (every answer right)")
    print(f"to grade: put each submission in {out / 'submitted'}/<student>/<notebook>/, "
          f"then\n  cd {out} && nbgrader autograde <notebook>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
