"""docs/teaching.md, the instructor guide: its code runs as written, its links and
numbers hold.

The guide's "Adding a scenario" is a worked example in files, each a block of
Python marked ``<!-- file: NAME -->``.  The test writes them out as they stand
and runs them: the example's own tests (each ``test_`` function of its test
file), then the scripts, whose ``print(...)  # output`` comments must be what
they print (a trailing ``...`` stands for the rest of the line).  They run in
this process, where simcomm and its figures are already imported; the example
registers a scenario and an exercise, and the fixture takes both out of the
registries again afterwards, so no other test sees them.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from simcomm.exercises import _core as exercise_registry
from simcomm.scenarios import base as scenario_registry

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "teaching.md"
INDEX = ROOT / "notebooks" / "README.md"
BLOCK = re.compile(r"<!-- file: (\S+) -->\n```python\n(.*?)```", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
#: The example's files, in the order the guide builds them up.
FILES = ["cache_aside.py", "try_it.py", "test_cache_aside.py", "nb11_caching.py",
         "check_it.py"]
SCRIPTS = ["try_it.py", "check_it.py"]
#: What the example registers: a scenario and an exercise.
SCENARIO, EXERCISE = "cache-aside", "11.1"


def _guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example's files in a folder on ``sys.path``; afterwards the modules, the
    scenario and the exercise they registered are gone again."""
    folder = tmp_path_factory.mktemp("teaching")
    for name, code in BLOCK.findall(_guide()):
        (folder / name).write_text(code, encoding="utf-8")
    modules = [name.removesuffix(".py") for name in FILES]
    assert SCENARIO not in scenario_registry.names()
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        for module in modules:
            sys.modules.pop(module, None)
        scenario_registry._REGISTRY.pop(SCENARIO, None)
        exercise_registry._REGISTRY.pop(EXERCISE, None)


def test_the_example_is_the_files_the_guide_names():
    assert [name for name, _ in BLOCK.findall(_guide())] == FILES


def test_the_example_scenarios_own_tests_pass(example):
    import test_cache_aside  # the example's test file, from the guide

    tests = [fn for name, fn in vars(test_cache_aside).items() if name.startswith("test_")]
    assert len(tests) == 3
    for test in tests:
        test()


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_scripts_print_what_their_comments_say(example, script):
    code = (example / script).read_text()
    said = [m.group(1).strip() for m in re.finditer(r"^print\(.*\)\s+# (.*)$", code,
                                                    flags=re.M)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(example / script), run_name="__main__")
    printed = out.getvalue().splitlines()
    assert said and len(printed) == len(said), printed
    for comment, line in zip(said, printed, strict=True):
        if comment.endswith("..."):
            assert line.startswith(comment.removesuffix("...").rstrip()), (comment, line)
        else:
            assert line == comment


def test_the_example_is_clean_for_ruff(example):
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this Python")
    # the project's rules, with the example's own modules first-party as simcomm is
    first_party = [name.removesuffix(".py") for name in FILES] + ["simcomm"]
    done = subprocess.run([str(ruff), "check", "--config", str(ROOT / "pyproject.toml"),
                           "--config", f"lint.isort.known-first-party = {first_party!r}",
                           *FILES], cwd=example, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_link_exists():
    for target in LINK.findall(_guide()):
        if "://" in target or target.startswith("#"):
            continue
        assert (GUIDE.parent / target.split("#")[0]).exists(), target


def test_the_times_are_the_course_index():
    """The guide's times are the index's estimates, summed as the index sums them."""
    index = _words(INDEX.read_text(encoding="utf-8"))
    guide = _words(_guide())
    workshop = re.search(r"The chapter's main argument\* \((\d+ h \d+ min)\)", index)
    assert workshop and f"00, 01, 03, 06 ({workshop.group(1)} for a learner alone)" in guide
    whole = re.search(r"The whole course: (\d+ h \d+ min)", index)
    assert whole and f"for the whole course: {whole.group(1)} of a learner's time" in guide


def test_the_binder_budget_is_the_one_the_guard_test_holds():
    guard_test = (ROOT / "tests" / "test_guard.py").read_text(encoding="utf-8")
    assert "est.bytes < 32 * MiB" in guard_test
    assert "estimated at less than 32 MiB" in _words(_guide())
