"""Exercises under nbgrader: the check is a test there, and the cells nbgrader grades.

``exercises.check`` has two modes.  For a learner it returns Feedback and
never raises for an answer.  While nbgrader runs a notebook (it sets
``NBGRADER_EXECUTION`` to ``autograde`` or ``validate``) it raises NotRight,
an AssertionError whose IPython rendering is the feedback's lines, unless
the answer is right; a right answer's feedback is displayed and nothing is
returned, since nbgrader would read a returned value's text as partial
credit.  Then :mod:`simcomm.exercises.cells`: the answer and check cells of
every exercise, the layout checks and the solved copy.  All in-process and
cheap (no kernel, no simulation runs); the nbgrader
round trip is tests/test_assignments.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simcomm import exercises
from simcomm.errors import ParamError
from simcomm.exercises import cells

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture
def learner(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)


@pytest.fixture(params=["autograde", "validate"])
def nbgrader(monkeypatch, request):
    monkeypatch.setenv("NBGRADER_EXECUTION", request.param)
    return request.param


# -- the two modes of check ------------------------------------------------------------

@pytest.mark.parametrize(("answer", "ok"), [(0.05, True), (0.04, False), (..., None),
                                            ("0.05 s", False)])
def test_a_learner_gets_feedback_and_never_an_exception(learner, answer, ok):
    assert not exercises.grading()
    fb = exercises.check("01.2", answer)
    assert isinstance(fb, exercises.Feedback) and fb.ok is ok


def test_an_empty_variable_is_not_nbgrader(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "")
    assert not exercises.grading()
    assert exercises.check("01.2", ...).ok is None


def test_under_nbgrader_a_right_answer_shows_its_feedback_and_returns_nothing(nbgrader, capsys):
    assert exercises.grading()
    assert exercises.check("01.2", 0.05) is None
    shown = capsys.readouterr()
    assert shown.out.startswith("✔ 01.2 right: ") and shown.err == ""


@pytest.mark.parametrize(("answer", "status", "phrase"), [
    (0.04, "not yet", "counted the network once"),
    (..., "no answer yet", "Replace ... with your answer"),
    (None, "no answer yet", "Replace ... with your answer"),
    ("fast", "not yet", "give a number"),
])
def test_under_nbgrader_anything_else_raises_the_feedback(nbgrader, capsys, answer, status,
                                                          phrase):
    with pytest.raises(exercises.NotRight) as caught:
        exercises.check("01.2", answer)
    err = caught.value
    assert isinstance(err, AssertionError)
    assert err.feedback.status == status and phrase in str(err)
    assert str(err) == str(exercises.feedback("01.2", answer))
    assert capsys.readouterr().out == ""  # nothing displayed: the error is the feedback


def test_a_settings_dict_still_to_fill_in_scores_nothing(nbgrader):
    with pytest.raises(exercises.NotRight, match="Fill in bandwidth_mbps"):
        exercises.check("02.3", {"message_format": "avro", "bandwidth_mbps": ...})


def test_ipython_shows_the_feedback_lines_not_a_stack(nbgrader):
    """IPython calls ``_render_traceback_`` for the lines of an error output."""
    with pytest.raises(exercises.NotRight) as caught:
        exercises.check("01.2", 0.04)
    lines = caught.value._render_traceback_()
    hint = exercises.hint("01.2", 1).text
    assert lines[0].startswith("✘ 01.2 not yet: ") and "counted the network once" in lines[0]
    assert lines[1] == f"Hint: {' '.join(hint.split())}"
    assert lines[2] == "More: exercises.hint('01.2', 2)"
    assert not any("Traceback" in line or ".py" in line for line in lines)
    with pytest.raises(exercises.NotRight) as caught:
        exercises.check("01.2", ...)
    assert caught.value._render_traceback_() == [
        "… 01.2 no answer yet: Replace ... with your answer, run that cell, then this check "
        "again. Stuck? `exercises.hint('01.2')` gives a hint."]


def test_an_unknown_exercise_is_refused_in_both_modes(monkeypatch):
    for value in ("", "autograde"):
        monkeypatch.setenv("NBGRADER_EXECUTION", value)
        with pytest.raises(ParamError, match=r"did you mean '01\.2'"):
            exercises.check("1.2", 0.05)


def test_assert_correct_raises_in_every_mode(learner):
    assert exercises.assert_correct("01.2", 0.05).ok is True
    with pytest.raises(exercises.NotRight, match="counted the network once"):
        exercises.assert_correct("01.2", 0.04)


# -- the cells ------------------------------------------------------------------------------

def test_grade_ids_follow_the_exercise_ids():
    assert cells.answer_id("01.2") == "answer-01-2"
    assert cells.check_id("10.3") == "check-10-3"
    with pytest.raises(ParamError):
        cells.answer_id("1.2")


def test_an_exercise_is_a_solution_cell_then_a_locked_graded_check():
    ex = exercises.get("02.3")
    answer, check = cells.answer_cell(ex), cells.check_cell(ex)
    assert answer["metadata"]["nbgrader"] == {
        "grade": False, "grade_id": "answer-02-3", "locked": False, "schema_version": 3,
        "solution": True}
    assert check["metadata"]["nbgrader"] == {
        "grade": True, "grade_id": "check-02-3", "locked": True, "points": ex.points,
        "schema_version": 3, "solution": False}
    assert "".join(answer["source"]) == (
        '# 02.3: Carry the load on a bandwidth budget\n'
        'answer = {"message_format": ..., "bandwidth_mbps": ...}  '
        '# replace each ... with your choice')
    assert "".join(check["source"]) == 'exercises.check("02.3", answer)'
    for cell in (answer, check, cells.import_cell()):
        assert cell["outputs"] == [] and cell["execution_count"] is None
        assert cell["id"] == cell["metadata"]["nbgrader"]["grade_id"]
        assert cells.TAG in cell["metadata"]["tags"]


def test_the_metadata_is_valid_for_nbgrader():
    nbformat = pytest.importorskip("nbformat")
    v3 = pytest.importorskip("nbgrader.nbgraderformat.v3")
    nb = nbformat.from_dict(json.loads((NOTEBOOKS / "02-message-formats.ipynb").read_text()))
    v3.MetadataValidatorV3().validate_nb(nb)  # raises if not
    nbformat.validate(nb)


@pytest.mark.parametrize("exercise_id", list(exercises.list()["id"]))
def test_a_solved_answer_cell_is_the_solution_as_a_literal(exercise_id):
    ex = exercises.get(exercise_id)
    text = cells.solution_source(ex)
    title, line = text.split("\n")
    assert title == f"# {ex.id}: {ex.title}" and line.startswith("answer = ")
    scope: dict = {}
    exec(line, {}, scope)  # what the kernel does with the cell
    assert scope["answer"] == ex.solution()


def _notebook(stem: str) -> dict:
    return json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())


def test_solved_fills_the_answer_cells_and_nothing_else():
    nb = _notebook("00-tour")
    done = cells.solved(nb)
    assert cells.layout_problems(nb, "00-tour") == []
    assert cells.layout_problems(done, "00-tour", answers="solved") == []
    changed = [a["id"] for a, b in zip(nb["cells"], done["cells"], strict=True) if a != b]
    assert changed == ["answer-00-1", "answer-00-2", "answer-00-3"]
    assert nb == _notebook("00-tour")  # the original is left alone


def test_layout_problems_name_what_is_wrong():
    nb = _notebook("00-tour")
    where = cells.exercise_cells(nb)
    assert set(where) == {"00.1", "00.2", "00.3"}
    a, c = where["00.2"]
    assert c == a + 1

    swapped = json.loads(json.dumps(nb))
    swapped["cells"][a], swapped["cells"][c] = swapped["cells"][c], swapped["cells"][a]
    assert "check-00-2 does not follow answer-00-2 directly" in \
        cells.layout_problems(swapped, "00-tour")

    broken = json.loads(json.dumps(nb))
    del broken["cells"][c]
    broken["cells"][a]["metadata"]["nbgrader"]["solution"] = False
    problems = cells.layout_problems(broken, "00-tour")
    assert "check-00-2: missing" in problems
    assert "answer-00-2: solution is False, not True" in problems

    leaked = cells.solved(nb)
    problems = cells.layout_problems(leaked, "00-tour")
    assert len(problems) == 3 and all(p.startswith("answer-00-") and "source" in p
                                      for p in problems)

    cheap = json.loads(json.dumps(nb))
    cheap["cells"][c]["metadata"]["nbgrader"]["points"] = 5
    assert cells.layout_problems(cheap, "00-tour") == ["check-00-2: points is 5, not 1"]

    twice = json.loads(json.dumps(nb))
    twice["cells"].insert(0, json.loads(json.dumps(nb["cells"][c])))
    assert "grade id 'check-00-2' is used twice" in cells.layout_problems(twice, "00-tour")

    with pytest.raises(ValueError, match="answers="):
        cells.layout_problems(nb, "00-tour", answers="maybe")
