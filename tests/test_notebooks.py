"""The course notebooks keep the house rules (nbmake executes them separately).

Committed without outputs, with a Python 3 kernelspec (or JupyterLab's
"Select Kernel" dialog blocks a learner and the browser test), opening with
"What you will see" and closing with questions to think about; cells call
the package instead of defining functions of their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_course_has_its_notebooks():
    names = [p.name for p in NOTEBOOKS]
    for expected in ("00-tour.ipynb", "01-sync-request-response.ipynb",
                     "02-message-formats.ipynb", "03-partial-failure.ipynb",
                     "04-retries-and-storms.ipynb"):
        assert expected in names


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def notebook(request) -> dict:
    return json.loads(request.param.read_text())


def test_committed_without_outputs(notebook):
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == []
            assert cell["execution_count"] is None


def test_has_a_python3_kernelspec(notebook):
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def test_opens_with_what_you_will_see_and_ends_with_questions(notebook):
    markdown = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]
    assert "what you will see" in "\n".join(markdown[:2]).lower()
    assert "questions to think about" in markdown[-1].lower()
    assert notebook["cells"][-1]["cell_type"] == "markdown"


def test_exercises_say_what_their_checkers_check():
    """Each notebook's Exercises section is the text simcomm.exercises declares."""
    tool = NOTEBOOKS[0].parent.parent / "tools" / "sync_exercises.py"
    done = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_every_notebook_has_exercises_to_check(notebook):
    code = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    assert any("exercises.check(" in source for source in code)


def test_every_exercise_is_a_graded_cell_of_its_notebook():
    """nbgrader grades an exercise by its check cell: every exercise of
    ``exercises.list()`` is an answer cell then a locked check cell worth its
    points in its own notebook, and no notebook grades anything else."""
    from simcomm import exercises
    from simcomm.exercises import cells

    by_notebook = exercises.list().groupby("notebook")["id"]
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        ids = list(by_notebook.get_group(path.stem)) if path.stem in by_notebook.groups else []
        graded = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"]["points"]
                  for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")}
        assert graded == {cells.check_id(i): exercises.get(i).points for i in ids}, path.name
        assert cells.layout_problems(nb, path.stem) == [], path.name
    assert set(by_notebook.groups) <= {p.stem for p in NOTEBOOKS}


#: What every notebook's first code cell runs (comments aside): in JupyterLite
#: (Pyodide) simcomm is installed from the site's own wheel (``make lite``).
JUPYTERLITE_SETUP = """\
import sys

if sys.platform == "emscripten":
    import piplite

    await piplite.install("simcomm")
"""


def test_the_first_code_cell_installs_simcomm_in_jupyterlite(notebook):
    """The first code cell, tagged ``jupyterlite-setup``, is exactly the piplite
    install (a no-op outside Pyodide), so a notebook opened in the JupyterLite
    site finds simcomm before any cell imports it (tests/test_lite.py checks
    the site's index lists the wheels that install needs)."""
    import ast

    first = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    assert "jupyterlite-setup" in first["metadata"].get("tags", [])

    def tree(source: str) -> str:
        flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        return ast.dump(compile(source, "<cell>", "exec", flags=flags))

    assert tree("".join(first["source"])) == tree(JUPYTERLITE_SETUP)


def test_logic_lives_in_the_package(notebook):
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            assert "def " not in source and "class " not in source, source[:80]
