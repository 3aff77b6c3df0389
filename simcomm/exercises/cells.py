"""A notebook's exercises as cells: what a learner runs and what nbgrader grades.

Each exercise ``NN.k`` is two code cells in its notebook's Exercises section:

* the **answer cell**: ``# NN.k: title`` and ``answer = ...`` with a
  template of what to write (a dict of ``...`` for a settings exercise).
  nbgrader metadata: a solution cell (the student's to edit), not graded,
  grade id ``answer-NN-k``;
* the **check cell**: ``exercises.check("NN.k", answer)``.  nbgrader
  metadata: graded and locked, worth the exercise's ``points``, grade id
  ``check-NN-k``.

Before them, the cell ``from simcomm import exercises`` is locked (read
only, grade id ``exercises-import``) so that no student breaks every
check at once.  For a learner a check shows feedback and never raises;
while nbgrader runs the notebook it raises unless the answer is right
(:func:`simcomm.exercises.check`), so a check cell scores all its points
or none -- nbgrader's rule for a graded code cell is full marks unless it
shows an error (``nbgrader.utils.determine_grade``).

The metadata is nbgrader's cell metadata schema, version 3.  The answer
cells hold templates, never solutions: the committed notebooks are what a
self-study learner opens.  So the course's ``nbgrader_config.py``
(``tools/assignments.py``) turns nbgrader's ClearSolutions off, and the
student version keeps each template -- ClearSolutions would replace a
solution cell without ``### BEGIN SOLUTION`` markers by one course-wide
stub, losing the dict a settings exercise asks for.  A right answer is
never typed into a notebook: :func:`solved` writes every exercise's
``solution()``, computed from the package, into a copy.

Everything here works on a notebook's JSON as plain dicts (nbformat 4),
with no nbgrader import, so the sync tool, the assignment builder and the
tests share one layout.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Mapping
from typing import Any

from simcomm.exercises._core import Exercise, catalogue, get

__all__ = [
    "IMPORT_ID", "SCHEMA_VERSION", "TAG", "answer_cell", "answer_id", "check_cell", "check_id",
    "check_source", "exercise_cells", "import_cell", "layout_problems", "solution_source",
    "solved", "template",
]

#: The nbgrader cell metadata schema these cells follow.
SCHEMA_VERSION = 3
#: The tag of every cell of an Exercises section (tools/sync_exercises.py rewrites them).
TAG = "exercise"
#: Grade id (and cell id) of the locked ``from simcomm import exercises`` cell.
IMPORT_ID = "exercises-import"
IMPORT_SOURCE = "from simcomm import exercises"


def _slug(exercise_id: str) -> str:
    """``"01.2"`` -> ``"01-2"``: nbgrader grade ids allow letters, digits, - and _."""
    return get(exercise_id).id.replace(".", "-")


def answer_id(exercise_id: str) -> str:
    """The grade id of exercise ``exercise_id``'s answer cell: ``answer-01-2``."""
    return f"answer-{_slug(exercise_id)}"


def check_id(exercise_id: str) -> str:
    """The grade id of exercise ``exercise_id``'s check cell: ``check-01-2``."""
    return f"check-{_slug(exercise_id)}"


def template(ex: Exercise) -> str:
    """The answer line a learner fills in: ``answer = ...`` and what to put there.

    A settings exercise shows the dict it wants, one ``...`` per setting
    (the keys of its solution); a choice asks for a word in quotes.
    """
    if ex.kind == "settings":
        keys = ", ".join(f'"{k}": ...' for k in ex.solution())
        return f"answer = {{{keys}}}  # replace each ... with your choice"
    if ex.kind == "choice":
        return "answer = ...  # replace ... with your answer, a word in quotes"
    return "answer = ...  # replace ... with your answer"


def _title(ex: Exercise) -> str:
    return f"# {ex.id}: {ex.title}"


def answer_source(ex: Exercise) -> str:
    """The answer cell as handed out: the exercise's title line and its template."""
    return f"{_title(ex)}\n{template(ex)}"


def solution_source(ex: Exercise) -> str:
    """The answer cell with the exercise's ``solution()`` written in.

    Raises ValueError if the solution's ``repr`` is not a Python literal
    that reads back equal (it could not be typed into a cell).
    """
    value = ex.solution()
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        same = False
    if not same:
        raise ValueError(f"exercise {ex.id}: its solution {text} is not a Python literal")
    return f"{_title(ex)}\nanswer = {text}"


def check_source(ex: Exercise) -> str:
    """The check cell: ``exercises.check("NN.k", answer)``."""
    return f'exercises.check("{ex.id}", answer)'


def _lines(text: str) -> list[str]:
    """Cell source as nbformat's JSON stores it: lines, each but the last ending in \\n."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def _code(cell_id: str, text: str, nbgrader: dict[str, Any]) -> dict[str, Any]:
    meta = {"grade": False, "locked": False, "solution": False, **nbgrader,
            "schema_version": SCHEMA_VERSION}
    return {"cell_type": "code", "execution_count": None, "id": cell_id,
            "metadata": {"nbgrader": meta, "tags": [TAG]}, "outputs": [],
            "source": _lines(text)}


def import_cell() -> dict[str, Any]:
    """The locked (read-only) cell that imports ``exercises`` for the checks below it."""
    return _code(IMPORT_ID, IMPORT_SOURCE, {"grade_id": IMPORT_ID, "locked": True})


def answer_cell(ex: Exercise) -> dict[str, Any]:
    """``ex``'s answer cell: an nbgrader solution cell holding the template."""
    return _code(answer_id(ex.id), answer_source(ex),
                 {"grade_id": answer_id(ex.id), "solution": True})


def check_cell(ex: Exercise) -> dict[str, Any]:
    """``ex``'s check cell: graded, locked, worth ``ex.points``."""
    return _code(check_id(ex.id), check_source(ex),
                 {"grade": True, "grade_id": check_id(ex.id), "locked": True,
                  "points": ex.points})


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def _grade_id(cell: Mapping[str, Any]) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta.get("grade_id") if isinstance(meta, Mapping) else None


def exercise_cells(nb: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Where each exercise's answer and check cells are in ``nb``: id -> (index, index).

    Found by grade id; an exercise with either cell missing is left out
    (:func:`layout_problems` says so).
    """
    where: dict[str, int] = {}
    for i, cell in enumerate(nb["cells"]):
        gid = _grade_id(cell)
        if gid is not None:
            where.setdefault(gid, i)
    found = {}
    for ex_id in catalogue()["id"]:
        a, c = where.get(answer_id(ex_id)), where.get(check_id(ex_id))
        if a is not None and c is not None:
            found[ex_id] = (a, c)
    return found


def layout_problems(nb: Mapping[str, Any], stem: str, *,
                    answers: str = "template") -> list[str]:
    """What is wrong with the exercise cells of notebook ``stem`` (empty if nothing).

    Checked: every exercise of the notebook has its answer cell (a solution
    cell, not graded) directly followed by its check cell (graded, locked,
    its points, calling ``exercises.check`` on its own id); the import cell
    comes first and is locked; no other cell is graded or a solution; grade
    ids are unique; the metadata is schema version 3.  ``answers`` says
    what the answer cells must hold: ``"template"`` (as handed out: no
    solution), ``"solved"`` (:func:`solution_source`) or ``"any"``.
    """
    if answers not in ("template", "solved", "any"):
        raise ValueError(f"answers={answers!r}: 'template', 'solved' or 'any'")
    problems: list[str] = []
    mine = [get(i) for i in catalogue(stem[:2])["id"]] if stem[:2].isdigit() else []
    expected: dict[str, tuple[str, dict[str, Any]]] = {}
    if mine:
        expected[IMPORT_ID] = (IMPORT_SOURCE, import_cell()["metadata"]["nbgrader"])
    for ex in mine:
        answer = {"template": answer_source(ex), "solved": solution_source(ex)}.get(answers)
        expected[answer_id(ex.id)] = (answer or "", answer_cell(ex)["metadata"]["nbgrader"])
        expected[check_id(ex.id)] = (check_source(ex), check_cell(ex)["metadata"]["nbgrader"])
    seen: dict[str, int] = {}
    for i, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id")
        if gid in seen:
            problems.append(f"grade id {gid!r} is used twice")
            continue
        seen[gid] = i
        if meta.get("schema_version") != SCHEMA_VERSION:
            problems.append(f"{gid}: nbgrader schema version {meta.get('schema_version')}, "
                            f"not {SCHEMA_VERSION}")
        if gid not in expected:
            if meta.get("grade") or meta.get("solution"):
                problems.append(f"{gid}: a graded or solution cell that is no exercise's")
            continue
        source, want = expected[gid]
        if cell["cell_type"] != "code":
            problems.append(f"{gid}: a {cell['cell_type']} cell, not code")
        for key in ("grade", "solution", "locked", "points"):
            if meta.get(key) != want.get(key):
                problems.append(f"{gid}: {key} is {meta.get(key)!r}, not {want.get(key)!r}")
        if (answers != "any" or not gid.startswith("answer-")) and _source(cell) != source:
            problems.append(f"{gid}: source {_source(cell)!r}, not {source!r}")
    for gid in expected:
        if gid not in seen:
            problems.append(f"{gid}: missing")
    for ex in mine:
        a, c = seen.get(answer_id(ex.id)), seen.get(check_id(ex.id))
        if a is not None and c is not None and c != a + 1:
            problems.append(f"{check_id(ex.id)} does not follow {answer_id(ex.id)} directly")
        if a is not None and seen.get(IMPORT_ID, a) > a:
            problems.append(f"{answer_id(ex.id)} comes before {IMPORT_ID}")
    return problems


def solved(nb: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``nb`` with every exercise's answer cell holding its ``solution()``.

    Only the answer cells change (found by grade id), metadata and all, so
    a handed-out notebook becomes the submission of a student who got
    everything right, and a source notebook becomes the instructor's key.
    """
    out = copy.deepcopy(dict(nb))
    for cell in out["cells"]:
        gid = _grade_id(cell)
        if gid is None or not gid.startswith("answer-"):
            continue
        ex = get(gid.removeprefix("answer-").replace("-", ".", 1))
        cell["source"] = _lines(solution_source(ex))
    return out
