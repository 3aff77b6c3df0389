"""``make assignments`` and the nbgrader round trip: solved copies get full marks, unsolved none.

``tools/assignments.py`` builds the nbgrader course from the committed
notebooks (one ``nbgrader generate_assignment`` process for all eleven).
For every notebook, without executing it:

* nbgrader's gradebook holds one graded cell per exercise, worth its points
  (1 each: the notebook's total is its number of exercises), and one
  solution cell per exercise;
* the student version (``release/``) has the exercise cells exactly as
  committed -- no solution, no output -- and the answer key (``solved/``)
  differs from it in the answer cells only, each holding ``solution()``;
* nbgrader's own checks that need no kernel pass: its metadata schema
  (version 3) and the checksums of the locked cells, which ``autograde``
  compares to restore anything a student changed; the answer cells'
  checksums tell an answered cell from an untouched one, as ``nbgrader
  validate`` does.

Then ``nbgrader autograde`` end to end, in one process, for two students
and two notebooks: "solved" hands in the answer key, "unsolved" the
student version as handed out.  The gradebook must give solved full marks
and unsolved zero, per notebook and per cell, and the check cells' outputs
must be the feedback (displayed when right; a ``NotRight`` error whose
lines are the feedback when not).  The notebooks: 00-tour, where every
course starts (number and choice answers), and 07-brokers, which has all
three kinds of answer -- its settings exercise runs a simulation in the
graded kernel, one of the cheapest to check (under a second).

Cost, measured here: autograding a whole notebook executes all of it, and
the lessons are heavy -- autograding the whole of 00-tour for the two
students took 34 s of CPU (2.5 min on this shared machine), and one nbmake
of 02 takes ~45 s, so all eleven notebooks twice would take minutes.  So
the submissions are the students' notebooks with the lesson cells deleted,
which nbgrader allows (only the exercise cells are locked against
deletion); the path that scores -- sanitising, restoring locked cells,
running a kernel with ``NBGRADER_EXECUTION=autograde``, saving grades --
is the one a whole notebook takes, and nbmake runs every lesson anyway.
The whole file: ~42 s of CPU in one worker -- a third of it the start-up
of the two nbgrader processes (6 s each, most of it importing jsonschema's
format checkers) -- and ~100 s of wall time with the machine under a load
of 6.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simcomm import exercises
from simcomm.errors import ParamError
from simcomm.exercises import cells

pytest.importorskip("nbgrader")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
#: Autograded end to end (see the module docstring for why these two).
GRADED = ("00-tour", "07-brokers")
STUDENTS = ("solved", "unsolved")


def _tool():
    """tools/assignments.py as a module (tools/ is no package)."""
    name = "simcomm_tools_assignments"
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "assignments.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


assignments = _tool()


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("course")
    made = assignments.build(out)
    assert [a.stem for a in made] == [p.stem for p in NOTEBOOKS]
    return out


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _gradebook(course: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="simcomm")


def _ids(stem: str) -> list[str]:
    return list(exercises.list(stem[:2])["id"])


# -- every notebook, without a kernel ---------------------------------------------------

def test_an_unknown_notebook_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ParamError, match="one of 00-tour, 01-sync"):
        assignments.build(tmp_path / "course", ["00", "11-nothing"])
    assert not (tmp_path / "course").exists()
    assert [p.stem for p in assignments.notebooks(["07", "00-tour.ipynb"])] == [
        "07-brokers", "00-tour"]


def test_the_course_is_laid_out(course):
    config = (course / "nbgrader_config.py").read_text()
    assert 'c.CourseDirectory.course_id = "simcomm"' in config
    assert "c.ClearSolutions.enabled = False" in config
    for path in NOTEBOOKS:
        for part in ("source", "release", "solved"):
            assert (course / part / path.stem / path.name).is_file(), (part, path.stem)
        assert _read(course / "source" / path.stem / path.name) == _read(path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_gradebook_grades_each_exercise_by_its_points(course, path):
    ids = _ids(path.stem)
    with _gradebook(course) as gb:
        nb = gb.find_notebook(path.stem, path.stem)
        graded = {c.name: c.max_score for c in nb.grade_cells}
        assert graded == {cells.check_id(i): exercises.get(i).points for i in ids}
        assert {c.name for c in nb.solution_cells} == {cells.answer_id(i) for i in ids}
        assert gb.find_assignment(path.stem).max_score == len(ids)  # 1 point each
        locked = {c.name for c in nb.source_cells if c.locked}
        assert locked == {cells.IMPORT_ID} | {cells.check_id(i) for i in ids}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_student_version_has_no_solution_and_the_key_every_one(course, path):
    release = _read(course / "release" / path.stem / path.name)
    solved = _read(course / "solved" / path.stem / path.name)
    assert assignments.release_problems(release, path.stem) == []
    assert cells.layout_problems(solved, path.stem, answers="solved") == []
    differ = [a.get("id") for a, b in zip(release["cells"], solved["cells"], strict=True)
              if a != b]
    assert differ == [cells.answer_id(i) for i in _ids(path.stem)]
    # the lessons reach the students as committed
    committed = _read(path)
    lesson = [c for c in committed["cells"] if "nbgrader" not in c["metadata"]]
    assert [c for c in release["cells"] if "nbgrader" not in c["metadata"]] == lesson


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbgraders_own_checks_pass_without_a_kernel(course, path):
    """Schema version 3 and checksums, as nbgrader computes them: the locked cells of
    the key are the handed-out ones, and only its answer cells count as answered."""
    import nbformat
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.utils import compute_checksum, is_locked, is_solution

    for part, answered in (("release", False), ("solved", True)):
        nb = nbformat.read(course / part / path.stem / path.name, as_version=4)
        MetadataValidator().validate_nb(nb)
        nbformat.validate(nb)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader")
            if meta is None:
                continue
            same = compute_checksum(cell) == meta["checksum"]
            if is_locked(cell):
                assert same, (part, meta["grade_id"])
            if is_solution(cell):
                assert same != answered, (part, meta["grade_id"])


# -- autograde, end to end --------------------------------------------------------------

def _submission(course: Path, student: str, stem: str) -> dict:
    """What ``student`` hands in for ``stem``: the key or the student version, with the
    lesson cells deleted (see the module docstring)."""
    nb = _read(course / ("solved" if student == "solved" else "release") / stem /
               f"{stem}.ipynb")
    nb["cells"] = [c for c in nb["cells"] if "nbgrader" in c["metadata"]]
    return nb


@pytest.fixture(scope="module")
def graded(course) -> Path:
    for student in STUDENTS:
        for stem in GRADED:
            dest = course / "submitted" / student / stem / f"{stem}.ipynb"
            dest.parent.mkdir(parents=True)
            dest.write_text(json.dumps(_submission(course, student, stem)))
    scripts = str(Path(sys.executable).parent)  # nbgrader runs alembic by name
    env = {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}
    env.pop("NBGRADER_EXECUTION", None)
    done = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", "*"], cwd=course,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return course


@pytest.mark.parametrize("stem", GRADED)
def test_autograde_gives_the_key_full_marks_and_the_handout_none(graded, stem):
    ids = _ids(stem)
    with _gradebook(graded) as gb:
        for student, expected in (("solved", 1.0), ("unsolved", 0.0)):
            sub = gb.find_submission_notebook(stem, stem, student)
            assert sub.max_score == len(ids)
            assert sub.score == expected * len(ids), (student, sub.score)
            scores = {g.name: (g.auto_score, g.max_score) for g in sub.grades}
            assert scores == {cells.check_id(i): (expected * exercises.get(i).points,
                                                  exercises.get(i).points) for i in ids}
            assert not any(g.needs_manual_grade for g in sub.grades)


@pytest.mark.parametrize("stem", GRADED)
def test_the_graded_cells_show_the_feedback(graded, stem):
    """Right: the feedback box, displayed (no value: nbgrader would read its text as
    partial credit). Not right: one NotRight error whose lines are the feedback."""
    for student in STUDENTS:
        nb = _read(graded / "autograded" / student / stem / f"{stem}.ipynb")
        checks = {c["metadata"]["nbgrader"]["grade_id"]: c for c in nb["cells"]
                  if c["metadata"].get("nbgrader", {}).get("grade")}
        for ex_id in _ids(stem):
            outputs = checks[cells.check_id(ex_id)]["outputs"]
            assert len(outputs) == 1, (student, ex_id, outputs)
            out = outputs[0]
            if student == "solved":
                assert out["output_type"] == "display_data"
                assert "simcomm-feedback-right" in "".join(out["data"]["text/html"])
            else:
                scope: dict = {}
                exec(cells.template(exercises.get(ex_id)), {}, scope)  # answer = ... / {...}
                unanswered = exercises.feedback(ex_id, scope["answer"])
                assert unanswered.status == "no answer yet"
                assert out["output_type"] == "error" and out["ename"] == "NotRight"
                assert out["traceback"] == exercises.NotRight(unanswered)._render_traceback_()
        errors = [c["id"] for c in nb["cells"] for o in c.get("outputs", [])
                  if o["output_type"] == "error" or o.get("name") == "stderr"]
        expected = [] if student == "solved" else [cells.check_id(i) for i in _ids(stem)]
        assert errors == expected, (student, errors)
