"""The machinery that holds a notebook's prose to its numbers (DESIGN.md, principle 10).

A test module checks the claims of one or more notebooks with a :class:`Prose`
per notebook: ``prose.claim(*phrases)`` marks a test as the check of those
exact phrases, ``prose.allowed`` lists the numbers that are not claims (each
with its reason) and ``prose.calls`` the code the module's fixtures repeat.
:func:`enforce` then makes the rule a test of its own in that module:

* every claimed or allowed phrase must still be in the notebook's markdown;
* every digit in the markdown must sit inside a claimed phrase, an allowed
  one, or a :data:`GENERIC` pattern (book sections, links, instance names,
  list numbers);
* the code cells must still make the calls the fixtures repeat.

The Exercises section is left out: tools/sync_exercises.py writes it from
simcomm.exercises, whose numbers tests/test_exercises.py holds against the
model.  Spacing and line breaks do not matter when phrases are matched.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from simcomm.errors import OverloadWarning
from simcomm.scenarios import base

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

#: Patterns whose digits are never claims.
GENERIC = [
    (r"§\d+(?:\.\d+)*", "a section of the book"),
    (r"\[\d\d — ", "a notebook's number in a link"),
    (r"\]\(\d\d-[\w-]+\.ipynb\)", "a link to a notebook"),
    (r"\b[a-z]+-\d+\b", "an instance name such as payment-1"),
    (r"`p\d\d`", "the name of a percentile column"),
    (r"(?m)^\d+\. ", "a question's number"),
    (r"(?i)resilience4j", "a library's name (and the breaker kind named after it)"),
]


def cells(stem: str, kind: str) -> list[str]:
    """The notebook's own cells of ``kind``, its Exercises section left out."""
    nb = json.loads((NOTEBOOK_DIR / f"{stem}.ipynb").read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind
            and "exercise" not in c.get("metadata", {}).get("tags", [])]


def squash(text: str) -> str:
    """Whitespace runs as one space: phrases match across line breaks."""
    return re.sub(r"\s+", " ", text).strip()


class Prose:
    """One notebook's markdown and code, with the phrases checked and allowed."""

    def __init__(self, stem: str, *, allowed: dict[str, str] | None = None,
                 calls: Iterable[str] = ()) -> None:
        self.stem = stem
        self.markdown = "\n\n".join(cells(stem, "markdown"))
        self.code = squash("\n\n".join(cells(stem, "code")))
        self.claims: list[str] = []
        self.allowed: dict[str, str] = dict(allowed or {})
        self.calls: list[str] = list(calls)

    def claim(self, *phrases: str) -> Callable:
        """Mark a test as the check of ``phrases`` (exact words) in the prose."""
        def mark(test: Callable) -> Callable:
            self.claims.extend(phrases)
            return test
        return mark

    def unclaimed_numbers(self, markdown: str | None = None) -> list[str]:
        """Each number in the prose no claim, allowance or pattern covers, in context."""
        text = self.markdown if markdown is None else markdown
        line_patterns = [p for p, _ in GENERIC if p.startswith("(?m)")]
        for pattern in line_patterns:  # before line breaks are squashed away
            text = re.sub(pattern, " ", text)
        text = squash(text)
        for phrase in [*self.claims, *self.allowed]:
            text = text.replace(squash(phrase), " ")
        for pattern, _reason in GENERIC:
            if pattern not in line_patterns:
                text = re.sub(pattern, " ", text)
        return [text[max(0, m.start() - 40): m.end() + 40]
                for m in re.finditer(r"\d+(?:[.,]\d+)*", text)]

    def missing_phrases(self) -> list[str]:
        prose = squash(self.markdown)
        return [p for p in [*self.claims, *self.allowed] if squash(p) not in prose]

    def missing_calls(self) -> list[str]:
        return [call for call in self.calls if squash(call) not in self.code]


def enforce(*proses: Prose) -> tuple[Callable, ...]:
    """The three tests that make the rule hold for ``proses``; assign them at
    module level of the test module (pytest collects them there)."""
    ids = [p.stem for p in proses]

    @pytest.mark.parametrize("prose", proses, ids=ids)
    def test_every_claimed_or_allowed_phrase_is_in_its_notebook(prose: Prose) -> None:
        missing = prose.missing_phrases()
        assert not missing, f"{prose.stem}: the prose no longer says {missing}; update the checks"

    @pytest.mark.parametrize("prose", proses, ids=ids)
    def test_every_number_in_the_prose_is_checked_or_allowed(prose: Prose) -> None:
        assert prose.claims, "no claims registered"
        left = prose.unclaimed_numbers()
        assert not left, (f"{prose.stem}: numbers in the prose that no test checks (claim "
                          f"them or allow them with a reason): {left}")

    @pytest.mark.parametrize("prose", proses, ids=ids)
    def test_the_notebooks_still_make_the_calls_checked_here(prose: Prose) -> None:
        missing = prose.missing_calls()
        assert not missing, (f"{prose.stem}: cells changed; update the fixtures that "
                             f"repeat {missing}")

    return (test_every_claimed_or_allowed_phrase_is_in_its_notebook,
            test_every_number_in_the_prose_is_checked_or_allowed,
            test_the_notebooks_still_make_the_calls_checked_here)


def quiet(make: Callable):
    """Run ``make()`` without its overload warning (asserted where the prose says so)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverloadWarning)
        return make()


def default(scenario: str, field: str):
    """The default of a scenario's parameter."""
    return {f.name: f.default for f in base.get(scenario).fields()}[field]
