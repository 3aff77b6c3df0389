"""The course index (notebooks/README.md) and the README's course table stay true.

The index says, for every notebook, what it teaches, how long it takes, what
comes before it, its dashboards and its exercises.  Everything in it that can
be counted is recounted here from the notebooks and from
:mod:`simcomm.exercises`: the notebooks listed (all of them, in order, by links
that exist), the exercise ids and titles (the registered ones), the dashboards
(the ``simcomm.explore``/``compare``/``playback`` calls the notebook makes), the
words, cells and exercises each time is estimated from, the times themselves
(by the formula the index states) and their sums.  A notebook added, cut or
grown makes one of these fail, with the line to write instead.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from simcomm import exercises

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
INDEX = NOTEBOOK_DIR / "README.md"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
STEMS = [p.stem for p in NOTEBOOKS]

#: The estimate the index states: words a minute, and minutes per code cell, per
#: dashboard, per exercise asking for a number or a word, per one asking for settings.
WORDS_PER_MINUTE = 150
CELL_MINUTES = 1
DASHBOARD_MINUTES = 5
ANSWER_MINUTES = {"number": 5, "choice": 5, "settings": 10}
#: How the index names each kind of answer: in an exercise's bullet, and counted
#: (one, several) in a notebook's time.
ANSWER_BULLET = {"number": "a number", "choice": "a word", "settings": "settings"}
ANSWER_COUNTED = {"number": ("number", "numbers"), "choice": ("word", "words"),
                  "settings": ("settings", "settings")}
DASHBOARD_CALL = re.compile(r"simcomm\.(explore|compare|playback)\(([^,)]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen"]


def _index() -> str:
    return INDEX.read_text(encoding="utf-8")


def _sections() -> dict[str, str]:
    """The index's per-notebook sections ("### NN — Title" ...), by NN."""
    text = _index().split("## The notebooks", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (\d\d) — .*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _field(section: str, name: str) -> str:
    """The text of the bullet ``* **name:** ...`` of a section (its sub-bullets too)."""
    m = re.search(rf"^\* \*\*{name}:\*\*(.*?)(?=^\* \*\*|\Z)", section, flags=re.M | re.S)
    assert m, f"no '{name}' in the section"
    return m.group(1)


def _cells_before_exercises(stem: str) -> list[dict]:
    cells = json.loads((NOTEBOOK_DIR / f"{stem}.ipynb").read_text())["cells"]
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown" and "".join(cell["source"]).startswith(
                "## Exercises"):
            return cells[:i]
    raise AssertionError(f"{stem} has no Exercises section")


def _counts(stem: str) -> dict:
    """What the time of notebook ``stem`` is estimated from, counted from the notebook."""
    cells = _cells_before_exercises(stem)
    words = len(" ".join("".join(c["source"]) for c in cells
                         if c["cell_type"] == "markdown").split())
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"
            and "jupyterlite-setup" not in c.get("metadata", {}).get("tags", [])]
    dashboards = [m.groups() for source in code for m in DASHBOARD_CALL.finditer(source)]
    table = exercises.list(stem[:2])
    kinds = [exercises.get(i).kind for i in table["id"]]
    minutes = (words / WORDS_PER_MINUTE + CELL_MINUTES * len(code)
               + DASHBOARD_MINUTES * len(dashboards) + sum(ANSWER_MINUTES[k] for k in kinds))
    return {"words": words, "cells": len(code), "dashboards": dashboards, "kinds": kinds,
            "minutes": minutes, "ids": list(table["id"]), "titles": list(table["title"])}


def _glance() -> list[list[str]]:
    """The rows of the "At a glance" table, as lists of cells."""
    text = _index().split("## At a glance", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def _stated_minutes() -> dict[str, int]:
    return {_number(row[0]): int(row[2].removesuffix(" min")) for row in _glance()}


def _number(cell: str) -> str:
    m = re.match(r"\[(\d\d) — ", cell)
    assert m, cell
    return m.group(1)


def _h_min(minutes: int) -> str:
    return f"{minutes // 60} h {minutes % 60} min"


# -- every notebook, once, in order, by links that exist -------------------------------

def test_the_index_counts_the_notebooks():
    assert f"{NUMBER_WORDS[len(NOTEBOOKS)].capitalize()} notebooks" in _index()


def test_every_link_of_the_index_exists():
    for target in LINK.findall(_index()):
        if "://" in target or target.startswith("#"):
            continue
        assert (NOTEBOOK_DIR / target.split("#")[0]).exists(), target


def test_the_table_lists_every_notebook_in_order():
    rows = _glance()
    links = [LINK.search(row[0]).group(1) for row in rows]  # type: ignore[union-attr]
    assert links == [p.name for p in NOTEBOOKS]
    assert [_number(row[0]) for row in rows] == [s[:2] for s in STEMS]


def test_every_notebook_has_its_section_in_order_with_its_link():
    sections = _sections()
    assert list(sections) == [s[:2] for s in STEMS]
    for stem in STEMS:
        assert f"[`{stem}.ipynb`]({stem}.ipynb)" in sections[stem[:2]]


def test_the_titles_are_the_notebooks_own():
    """A section's title is the notebook's own heading, or its first words."""
    titles = dict(re.findall(r"^### (\d\d) — (.*)$", _index(), flags=re.M))
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        heading = "".join(cells[0]["source"]).splitlines()[0].removeprefix("# ")
        assert heading.lower().startswith(titles[path.stem[:2]].lower()), heading


# -- exercises and dashboards ---------------------------------------------------------

def test_the_exercises_listed_are_the_registered_ones():
    sections = _sections()
    listed_everywhere = []
    for row in _glance():
        nn = _number(row[0])
        ids = re.findall(r"\d\d\.\d+", row[4])
        listed = re.findall(r"^\s+\* (\d\d\.\d+) — (.*) \((.*)\)$",
                            _field(sections[nn], "Exercises"), flags=re.M)
        stem = STEMS[int(nn)]
        counted = _counts(stem)
        assert ids == counted["ids"], nn
        assert [(i, t) for i, t, _ in listed] == list(
            zip(counted["ids"], counted["titles"], strict=True)), nn
        assert [kind for _, _, kind in listed] == [ANSWER_BULLET[k]
                                                   for k in counted["kinds"]], nn
        listed_everywhere += ids
    assert listed_everywhere == list(exercises.list()["id"])


def test_the_dashboards_listed_are_the_notebooks_calls():
    sections = _sections()
    for stem in STEMS:
        listed = [m.groups() for m in DASHBOARD_CALL.finditer(
            _field(sections[stem[:2]], "Dashboards"))]
        assert Counter(listed) == Counter(_counts(stem)["dashboards"]), stem


# -- prerequisites --------------------------------------------------------------------

def test_prerequisites_come_earlier():
    sections = _sections()
    for row in _glance():
        nn = _number(row[0])
        before = re.findall(r"\d\d", row[3])
        if nn == "00":
            assert row[3] == "—"
        assert before or nn == "00", nn
        assert all(b < nn for b in before), nn
        linked = [Path(t).name[:2] for t in LINK.findall(_field(sections[nn], "Before it"))]
        assert all(b < nn for b in linked), nn
        assert set(before) <= set(linked) or nn == "00", nn


# -- times ----------------------------------------------------------------------------

def test_the_index_states_the_formula_the_test_uses():
    text = " ".join(_index().split())
    assert f"at {WORDS_PER_MINUTE} words a minute" in text
    assert f"{CELL_MINUTES} minute for each code cell" in text
    assert f"{DASHBOARD_MINUTES} minutes for each dashboard" in text
    assert (f"{ANSWER_MINUTES['number']} minutes for each exercise that asks for a number or "
            f"a word, {ANSWER_MINUTES['settings']} for one that asks for settings") in text
    assert ANSWER_MINUTES["choice"] == ANSWER_MINUTES["number"]


@pytest.mark.parametrize("stem", STEMS)
def test_each_time_follows_from_the_notebook(stem):
    counted = _counts(stem)
    time = " ".join(_field(_sections()[stem[:2]], "Time").split())
    m = re.fullmatch(r"about (\d+) minutes: ([\d,]+) words to read, (\d+) code cells, "
                     r"(\d+) dashboards?, (\d+) exercises \((.*)\)\.", time)
    assert m, time
    minutes, words, cells, dashboards, n_exercises, kinds = m.groups()
    kind_counts = Counter(counted["kinds"])
    expected_kinds = ", ".join(f"{kind_counts[k]} {ANSWER_COUNTED[k][kind_counts[k] > 1]}"
                               for k in dict.fromkeys(counted["kinds"]))
    should = (f"about {5 * round(counted['minutes'] / 5)} minutes: "
              f"{round(counted['words'], -2):,} words to read, {counted['cells']} code cells, "
              f"{len(counted['dashboards'])} dashboard"
              f"{'s' if len(counted['dashboards']) != 1 else ''}, "
              f"{len(counted['kinds'])} exercises ({expected_kinds}).")
    assert abs(int(minutes) - counted["minutes"]) < 5, should
    assert abs(int(words.replace(",", "")) - counted["words"]) <= 100, should
    assert (int(cells), int(dashboards), int(n_exercises)) == (
        counted["cells"], len(counted["dashboards"]), len(counted["kinds"])), should
    assert kinds == expected_kinds, should
    assert _stated_minutes()[stem[:2]] == int(minutes), "the table's time is the section's"


def test_the_sums_of_the_times():
    stated = _stated_minutes()
    text = " ".join(_index().split())
    assert f"The whole course: {_h_min(sum(stated.values()))}," in text
    paths = re.findall(r"\* \*[^*]+\* \((\d+ h \d+ min)\): ((?:\d\d, )*\d\d)", text)
    assert len(paths) == 3
    for total, members in paths:
        assert total == _h_min(sum(stated[nn] for nn in members.split(", "))), members


# -- the README ----------------------------------------------------------------------------

def test_the_readme_course_table_lists_every_notebook_in_order():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("\n## The course\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| \[`([^`]+)`\]\(notebooks/([^)]+)\) \| (.+) \|$", table, flags=re.M)
    assert [(name, link) for name, link, _ in rows] == [(s, f"{s}.ipynb") for s in STEMS]
    assert all(len(summary) > 20 for _, _, summary in rows)
    assert "(notebooks/README.md)" in table and "(docs/teaching.md)" in table


def test_the_readme_links_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in LINK.findall(readme):
        if "://" in target or target.startswith("#"):
            continue
        assert (ROOT / target.split("#")[0]).exists(), target
