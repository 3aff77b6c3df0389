"""The machinery behind :mod:`simcomm.exercises`: declarations, checkers, feedback.

An :class:`Exercise` is declared once, in the module of its notebook, with
an id such as ``"01.2"`` (notebook 01, exercise 2), a short title, the
question, a checker and one to three hints that go from a nudge to almost
the answer.  A checker is any callable ``check(answer) -> Feedback``; three
ready-made ones cover the usual answers:

* :class:`Number` -- a number within a tolerance the question states, with
  the typical wrong answers (:class:`Miss`, :class:`Slip`) named and
  explained;
* :class:`Choice` -- one of a few words, case-insensitive, with a
  did-you-mean for a near miss and an explanation for every option;
* :class:`Settings` -- a dict of scenario parameters that the checker
  *runs*, then says what happened.

Expected values are computed from the package when first needed (theory
functions, a scenario's capacity model, ``format_ceilings``, a run) and
cached, never typed in, so an exercise cannot drift from the model it
teaches.  Nothing here raises for an unanswered exercise (``answer = ...``
or None): a notebook runs top to bottom with every exercise unanswered.

Under nbgrader (which sets ``NBGRADER_EXECUTION`` while it runs a notebook
to autograde or validate it) :func:`check` is a test instead: it raises
:class:`NotRight` unless the answer is right, so the locked check cell
after each answer cell scores its points or none.
"""

from __future__ import annotations

import functools
import html
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from simcomm._checks import as_real, is_whole
from simcomm.errors import ParamError
from simcomm.scenarios.base import did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from simcomm.result import Result

__all__ = [
    "Checker", "Choice", "Exercise", "Feedback", "Hint", "Miss", "NotRight", "Number", "Settings",
    "Slip", "assert_correct", "catalogue", "check", "feedback", "get", "grading", "hint", "not_yet",
    "params", "register", "right",
]

#: Text that may be a plain string or computed from the package when shown.
Text = str | Callable[[], str]


def params(scenario: str, **settings: Any) -> Any:
    """``scenario``'s Params: its defaults with ``settings`` on top, checked as a run
    checks them -- what an exercise derives its expected value from."""
    from simcomm.scenarios import base

    return base.make_params(base.get(scenario), settings)


def _text(value: Text) -> str:
    return value() if callable(value) else value


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _html(text: str) -> str:
    """``text`` escaped for HTML, with Markdown's `code` spans set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


# -- feedback -----------------------------------------------------------------

#: How each state looks: mark, label, accent colour, background (Okabe-Ito
#: accents on pale grounds; the words carry the meaning without the colour).
_LOOKS: dict[bool | None, tuple[str, str, str, str]] = {
    True: ("✔", "Right", "#009E73", "#e6f5ef"),
    False: ("✘", "Not yet", "#E69F00", "#fdf3e0"),
    None: ("…", "No answer yet", "#8c8c8c", "#f2f2f2"),
}


@dataclass(frozen=True)
class Feedback:
    """What :func:`check` says about an answer.

    ``ok`` is True (right), False (not yet) or None (no answer yet: the
    cell still holds ``...``).  ``message`` says why -- for a wrong answer,
    what it looks like and what is off; for a right one, the exact value
    and the lesson.  ``hint`` is the first hint when the answer is not yet
    right, and ``next_hint`` the number to pass to :func:`hint` for more.

    In Jupyter it shows as a coloured box (``_repr_html_``); in a terminal
    as one plain line (``str``).  ``bool(feedback)`` is True only for a
    right answer, so ``assert check(...)`` fails for a wrong one.
    """

    ok: bool | None
    message: str
    hint: str | None = None
    exercise: str = ""
    next_hint: int | None = None

    @property
    def status(self) -> str:
        """``"right"``, ``"not yet"`` or ``"no answer yet"``."""
        return _LOOKS[self.ok][1].lower()

    def __bool__(self) -> bool:
        return self.ok is True

    def __str__(self) -> str:
        mark, label, _, _ = _LOOKS[self.ok]
        head = f"{mark} {self.exercise} {label.lower()}" if self.exercise else \
            f"{mark} {label.lower()}"
        text = f"{head}: {self.message}"
        if self.hint:
            text += f" Hint: {self.hint}"
        if self.next_hint:
            text += f" (more: exercises.hint({self.exercise!r}, {self.next_hint}))"
        return _one_line(text)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        mark, label, accent, ground = _LOOKS[self.ok]
        where = (f' <span style="color:#555;font-weight:normal">· exercise '
                 f'{html.escape(self.exercise)}</span>') if self.exercise else ""
        parts = [f'<div class="simcomm-feedback simcomm-feedback-{self.status.replace(" ", "-")}"'
                 f' style="border-left:5px solid {accent};background:{ground};color:#1a1a1a;'
                 f'padding:0.45em 0.9em;margin:0.3em 0;border-radius:3px;line-height:1.45">',
                 f'<strong><span style="color:{accent}">{mark}</span> {label}</strong>{where}',
                 f'<div>{_html(self.message)}</div>']
        if self.hint:
            parts.append('<details style="margin-top:0.3em"><summary style="cursor:pointer">'
                         f'Hint</summary>{_html(self.hint)}</details>')
        if self.next_hint:
            parts.append(f'<div style="color:#555;font-size:90%">Another hint: '
                         f'<code>exercises.hint("{html.escape(self.exercise)}", '
                         f'{self.next_hint})</code></div>')
        parts.append("</div>")
        return "".join(parts)


def right(message: str) -> Feedback:
    """A right answer's feedback (the exercise id is filled in by :func:`check`)."""
    return Feedback(True, message)


def not_yet(message: str) -> Feedback:
    """A wrong answer's feedback; :func:`check` adds the exercise's first hint."""
    return Feedback(False, message)


@dataclass(frozen=True)
class Hint:
    """Hint ``n`` of ``total`` for an exercise; shows as a box in Jupyter, a line in a terminal."""

    exercise: str
    n: int
    total: int
    text: str
    note: str = ""

    def __str__(self) -> str:
        return _one_line(f"Hint {self.n} of {self.total} for {self.exercise}: {self.text}"
                         + (f" ({self.note})" if self.note else ""))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        note = f'<div style="color:#555;font-size:90%">{_html(self.note)}</div>' \
            if self.note else ""
        return ('<div class="simcomm-hint" style="border-left:5px solid #56B4E9;'
                'background:#eef7fc;color:#1a1a1a;padding:0.45em 0.9em;margin:0.3em 0;'
                'border-radius:3px;line-height:1.45">'
                f'<strong>Hint {self.n} of {self.total}</strong>'
                f' <span style="color:#555">· exercise {html.escape(self.exercise)}</span>'
                f'<div>{_html(self.text)}</div>{note}</div>')


# -- checkers -----------------------------------------------------------------

class Checker(Protocol):
    """What an exercise's ``check`` is: a callable from an answer to Feedback.

    ``kind`` names the kind of answer (``"number"``, ``"choice"``,
    ``"settings"``) and ``solution()`` gives a right answer, computed from
    the package: the tests feed it back, and ``make assignments`` writes it
    into the answer key's answer cells (:func:`simcomm.exercises.cells.solved`).
    """

    kind: str

    def __call__(self, answer: Any) -> Feedback: ...

    def solution(self) -> Any: ...


@dataclass(frozen=True)
class Miss:
    """A typical wrong number and why it is wrong, e.g. the time in the queue
    given where the question asks for the response time.

    ``value`` computes the wrong number from the package, like the expected
    one, so the diagnosis stays true when the model changes.
    """

    value: Callable[[], float]
    why: Text


@dataclass(frozen=True)
class Slip:
    """A wrong number that is the right one times ``factor`` -- a unit slip
    (milliseconds for seconds: 1000; bits for bytes: 8) -- and why."""

    factor: float
    why: Text


def _short(answer: Any, width: int = 60) -> str:
    """``repr(answer)`` on one line, cut to ``width`` characters for a message."""
    text = _one_line(repr(answer))
    return text if len(text) <= width else text[: width - 1] + "…"


def _as_number(answer: Any) -> float | None:
    """The answer as a float: any real number (numpy's too, not a bool), a
    one-element array or Series (what a pandas lookup often returns), or a
    string such as ``"0.985"`` or ``"98.5 %"``; None if it is not one."""
    if getattr(answer, "size", None) == 1 and callable(getattr(answer, "item", None)):
        answer = answer.item()
    value = as_real(answer)
    if value is None and isinstance(answer, str):
        text = answer.strip().replace("_", "").replace(" ", "")
        scale = 1.0
        if text.endswith("%"):
            text, scale = text[:-1], 0.01
        try:
            value = float(text) * scale
        except ValueError:
            return None
    if value is None or math.isnan(value):
        return None
    return value


def _fmt(x: float, digits: int) -> str:
    """A number as a reader writes it: 0.985, 135.1, 3.724 (``digits`` significant)."""
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x)}"
    return f"{x:.{digits}g}"


class Number:
    """Checks a number against ``expected()`` within the tolerance the question states.

    Give exactly one of ``rel`` (a fraction: 0.02 is ±2 %) or ``abs`` (in
    the answer's unit); ``whole=True`` asks for a whole number, compared
    exactly unless a tolerance is given.  A wrong answer is diagnosed in
    this order: a :class:`Miss` or :class:`Slip` it matches (within the
    same relative tolerance; the closest wins), then ``advise(answer)``
    (a function returning a sentence or None, for diagnoses that are not a
    single number), then a non-whole number where a whole one is asked, then
    plain "too high" / "too low".  ``explain`` is added to the right
    answer's message: the lesson, with numbers computed from the package.
    """

    kind = "number"

    def __init__(self, expected: Callable[[], float], *, unit: str = "",
                 rel: float | None = None, abs: float | None = None, whole: bool = False,
                 misses: Sequence[Miss | Slip] = (), advise: Callable[[float], str | None]
                 | None = None, explain: Text = "", digits: int = 4) -> None:
        if rel is not None and abs is not None:
            raise ValueError("give rel or abs, not both")
        if rel is None and abs is None:
            if not whole:
                raise ValueError("a number needs a tolerance: rel= or abs=")
            abs = 0.0
        self._expected = functools.cache(expected)
        self.unit = unit
        self.rel = rel
        self.abs = abs
        self.whole = whole
        self.misses = tuple(misses)
        self.advise = advise
        self.explain = explain
        self.digits = digits

    def expected(self) -> float:
        """The right value, computed from the package on first use."""
        return float(self._expected())

    def solution(self) -> float | int:
        value = self.expected()
        return int(value) if self.whole and value.is_integer() else value

    def tolerance(self) -> str:
        """The tolerance in words, as the question states it."""
        if self.rel is not None:
            return f"±{self.rel * 100:g} %"
        if self.abs:
            return f"±{_fmt(self.abs, self.digits)}" + (f" {self.unit}" if self.unit else "")
        return "exactly"

    def _within(self, answer: float, target: float) -> bool:
        """``answer`` within the tolerance of ``target``; ``rel`` is a fraction of
        the target (not of the larger of the two, as :func:`math.isclose` has it)."""
        room = self.rel * abs(target) if self.rel is not None else (self.abs or 0.0)
        return abs(answer - target) <= room * (1 + 1e-12)

    def _relative(self) -> float:
        """The tolerance as a fraction of the answer, to match typical mistakes."""
        if self.rel is not None:
            return self.rel
        expected = abs(self.expected())
        return max((self.abs or 0.0) / expected if expected else 0.0, 1e-9)

    def _show(self, x: float) -> str:
        return _fmt(x, self.digits) + (f" {self.unit}" if self.unit else "")

    def __call__(self, answer: Any) -> Feedback:
        value = _as_number(answer)
        if value is None:
            what = "a whole number" if self.whole else "a number"
            unit = f" (in {self.unit})" if self.unit else ""
            return not_yet(f"give {what}{unit}, not {_short(answer)}.")
        if math.isinf(value):
            return not_yet(f"{_short(answer)} is not a finite number; give one.")
        expected = self.expected()
        if self._within(value, expected) and (not self.whole or value.is_integer()):
            close = "" if value == expected else f" (you said {_fmt(value, self.digits)})"
            tol = "" if self.tolerance() == "exactly" else \
                f"; answers within {self.tolerance()} count"
            text = f"{self._show(expected)}{close}{tol}."
            explain = _text(self.explain)
            return right(f"{text} {explain}".strip())
        rel = self._relative()
        best: tuple[float, Text] | None = None
        for miss in self.misses:
            target = miss.value() if isinstance(miss, Miss) else expected * miss.factor
            if not target:
                continue
            distance = abs(value - target) / abs(target)
            if distance <= rel * (1 + 1e-12) and (best is None or distance < best[0]):
                best = (distance, miss.why)
        if best is not None:
            return not_yet(f"{_fmt(value, self.digits)}: {_text(best[1])}")
        if self.advise is not None:
            said = self.advise(value)
            if said:
                return not_yet(f"{_fmt(value, self.digits)}: {said}")
        if self.whole and not value.is_integer():
            return not_yet(f"{_fmt(value, self.digits)} is not a whole number; the answer is "
                           f"a count -- round it the way the question needs.")
        direction = "too high" if value > expected else "too low"
        far = value / expected if expected and value * expected > 0 else math.nan
        scale = " -- by more than a factor of two" if far > 2 or far < 0.5 else ""
        tol = "" if self.tolerance() == "exactly" else \
            f" (answers within {self.tolerance()} count)"
        return not_yet(f"{_fmt(value, self.digits)} is {direction}{scale}{tol}.")


class Choice:
    """Checks one word among ``options``, whatever its case and surrounding spaces.

    ``options`` maps each option to what choosing it means: for the
    ``correct`` one the lesson, for the others why it is not the answer.  A
    word that is not an option gets a did-you-mean for a near miss.
    """

    kind = "choice"

    def __init__(self, options: Mapping[str, Text], correct: str) -> None:
        if correct not in options:
            raise ValueError(f"the correct option {correct!r} is not among {list(options)}")
        self.options = dict(options)
        self.correct = correct

    def solution(self) -> str:
        return self.correct

    def __call__(self, answer: Any) -> Feedback:
        listed = ", ".join(repr(o) for o in self.options)
        if not isinstance(answer, str):
            return not_yet(f"give one of the options as a string ({listed}), "
                           f"not {_short(answer)}.")
        by_fold = {o.casefold(): o for o in self.options}
        chosen = by_fold.get(answer.strip().strip("'\"").casefold())
        if chosen is None:
            near = did_you_mean(answer.strip(), self.options)
            return not_yet(f"{answer!r} is not one of the options; {near}choose from {listed}.")
        if chosen == self.correct:
            return right(f"{chosen!r}. {_text(self.options[chosen])}")
        return not_yet(f"{chosen!r}: {_text(self.options[chosen])}")


class Settings:
    """Runs ``scenario`` with the learner's settings and judges what happened.

    The answer is a dict of the scenario's parameters.  Only the names in
    ``allowed`` may be set; ``fixed`` holds what the question fixes (the
    load, say), which the answer may not change.  ``limits(answer)`` may
    return a sentence refusing an answer before any run (a budget the
    question sets).  The run is ``simcomm.run(scenario, seed, until,
    trace=..., progress=False, warn=False, **fixed, **answer)``: a value
    the simulator refuses comes back as not-yet feedback quoting its
    ParamError.  ``judge(result, answer)`` turns the run into Feedback.
    Runs are cached per answer, so running the cell again is instant.
    ``solution`` is one right answer.
    """

    kind = "settings"

    def __init__(self, scenario: str, *, allowed: Sequence[str],
                 judge: Callable[[Result, Mapping[str, Any]], Feedback],
                 solution: Mapping[str, Any], fixed: Mapping[str, Any] | None = None,
                 limits: Callable[[Mapping[str, Any]], str | None] | None = None,
                 seed: int = 0, until: float | None = None, trace: bool = False) -> None:
        self.scenario = scenario
        self.allowed = tuple(allowed)
        self.judge = judge
        self._solution = dict(solution)
        self.fixed = dict(fixed or {})
        self.limits = limits
        self.seed = seed
        self.until = until
        self.trace = trace
        self._runs: dict[tuple[tuple[str, Any], ...], Result] = {}

    def solution(self) -> dict[str, Any]:
        return dict(self._solution)

    def run(self, answer: Mapping[str, Any]) -> Result:
        """The scenario run with ``answer`` on top of ``fixed`` (cached)."""
        from simcomm.api import run

        key = tuple(sorted(answer.items()))
        try:
            return self._runs[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: run it uncached (it is refused anyway)
            return run(self.scenario, self.seed, self.until, trace=self.trace, progress=False,
                       warn=False, **self.fixed, **answer)
        res = run(self.scenario, self.seed, self.until, trace=self.trace, progress=False,
                  warn=False, **self.fixed, **answer)
        self._runs[key] = res
        return res

    def __call__(self, answer: Any) -> Feedback:
        from simcomm.scenarios.base import get

        shape = "{" + ", ".join(f"{name!r}: ..." for name in self.allowed[:2]) + "}"
        if not isinstance(answer, Mapping):
            return not_yet(f"give your settings as a dict such as {shape}, "
                           f"not {_short(answer)}.")
        fields = {f.name for f in get(self.scenario).fields()}
        for name in answer:
            if not isinstance(name, str):
                return not_yet(f"setting names are strings such as {self.allowed[0]!r}, "
                               f"not {_short(name)}.")
            if name in self.fixed:
                fixed = self.fixed[name]
                shown = _fmt(fixed, 6) if as_real(fixed) is not None else repr(fixed)
                return not_yet(f"{name} is fixed by the question at {shown}; leave it out.")
            if name not in self.allowed:
                what = "a setting this exercise lets you change" if name in fields else \
                    f"a setting of {self.scenario}"
                return not_yet(f"{name!r} is not {what}; {did_you_mean(name, self.allowed)}"
                               f"choose among {', '.join(self.allowed)}.")
        if self.limits is not None:
            refused = self.limits(answer)
            if refused:
                return not_yet(refused)
        try:
            res = self.run(answer)
        except ParamError as exc:
            return not_yet(f"the simulator refused it: {exc}.")
        return self.judge(res, answer)


# -- exercises and their registry -----------------------------------------------

_ID = re.compile(r"^(\d\d)\.(\d+)$")
_NOTEBOOK = re.compile(r"^(\d\d)-[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Exercise:
    """One exercise, declared once: everything :func:`check`, :func:`hint` and
    :func:`catalogue` need, and a right answer for tests and graders.

    ``id`` is ``"NN.k"``: exercise k of notebook NN (``notebook`` is the
    notebook's file stem, which starts with NN).  ``question`` is the text
    the notebook shows (Markdown).  ``hints`` (one to three) go from a
    nudge to almost the answer; a hint may be computed when shown.
    ``points`` is what a grader gives for it.
    """

    id: str
    notebook: str
    title: str
    question: str
    check: Checker
    hints: tuple[Text, ...]
    points: int = 1

    @property
    def kind(self) -> str:
        return getattr(self.check, "kind", "custom")

    def solution(self) -> Any:
        """A right answer, computed from the package (the checker's ``solution()``)."""
        return self.check.solution()

    def hint_text(self, n: int) -> str:
        return _text(self.hints[n - 1])


_REGISTRY: dict[str, Exercise] = {}


def _order(ex: Exercise) -> tuple[str, int]:
    notebook, k = ex.id.split(".")
    return notebook, int(k)


def register(exercise: Exercise) -> Exercise:
    """Add ``exercise`` to the catalogue, after checking its declaration.

    Refused (ValueError): a malformed or duplicate id, an id whose number is
    not its notebook's, no hint or more than three, a check that is not
    callable.
    """
    m = _ID.match(exercise.id)
    if not m:
        raise ValueError(f"exercise id {exercise.id!r}: use 'NN.k', e.g. '01.2'")
    nb = _NOTEBOOK.match(exercise.notebook)
    if not nb or nb.group(1) != m.group(1):
        raise ValueError(f"exercise {exercise.id}: notebook {exercise.notebook!r} must be a "
                         f"notebook stem starting with {m.group(1)}-")
    if exercise.id in _REGISTRY:
        raise ValueError(f"exercise id {exercise.id} is declared twice")
    if not 1 <= len(exercise.hints) <= 3:
        raise ValueError(f"exercise {exercise.id}: give one to three hints")
    if not callable(exercise.check):
        raise ValueError(f"exercise {exercise.id}: check must be callable")
    if not exercise.title.strip() or not exercise.question.strip():
        raise ValueError(f"exercise {exercise.id}: a title and a question are needed")
    _REGISTRY[exercise.id] = exercise
    return exercise


def get(exercise_id: str) -> Exercise:
    """The exercise ``exercise_id`` (like ``"01.2"``); a ParamError names the known ones."""
    try:
        return _REGISTRY[exercise_id]
    except (KeyError, TypeError):
        known = ", ".join(ex.id for ex in sorted(_REGISTRY.values(), key=_order))
        # "1.1" is notebook 01's first exercise, not 10.1 (which is as close by spelling)
        padded = "0" + exercise_id if isinstance(exercise_id, str) else None
        near = (f"did you mean {padded!r}? " if padded in _REGISTRY
                else did_you_mean(exercise_id, _REGISTRY))
        raise ParamError("exercise", exercise_id, near + "one of " + known) from None


def _unanswered(answer: Any) -> list[str] | None:
    """None if answered; else the names still to fill in ([] for the whole answer).

    ``...`` and None are no answer, and so is a string that is empty or
    ``"..."``; a dict of settings with a ``...`` value is not finished.
    """
    if answer is ... or answer is None:
        return []
    if isinstance(answer, str) and answer.strip() in ("", "..."):
        return []
    if isinstance(answer, Mapping):
        todo = [str(k) for k, v in answer.items() if v is ...]
        return todo or None
    return None


def feedback(exercise_id: str, answer: Any) -> Feedback:
    """What :func:`check` says about ``answer`` to ``exercise_id``, as a value, in every mode.

    ``...`` or None give "no answer yet", an answer of the wrong kind says
    what kind is wanted, and a wrong answer comes with the exercise's first
    hint.  Raises only for an unknown exercise (ParamError).
    """
    ex = get(exercise_id)
    todo = _unanswered(answer)
    if todo is not None:
        what = f"Fill in {', '.join(todo)} (still ...)" if todo else \
            "Replace ... with your answer"
        return Feedback(None, f"{what}, run that cell, then this check again. Stuck? "
                              f"`exercises.hint({ex.id!r})` gives a hint.", exercise=ex.id)
    fb = ex.check(answer)
    if not isinstance(fb, Feedback):
        raise TypeError(f"exercise {ex.id}: its check returned {fb!r}, not a Feedback")
    fb = replace(fb, exercise=ex.id)
    if fb.ok is False and fb.hint is None:
        fb = replace(fb, hint=ex.hint_text(1), next_hint=2 if len(ex.hints) > 1 else None)
    return fb


class NotRight(AssertionError):
    """An answer that is not right (or not given), raised by :func:`check` under nbgrader.

    An AssertionError, as a failed test is; ``feedback`` is what the
    learner would have seen.  ``_render_traceback_`` is the hook IPython
    calls to show an exception: the cell's error output is the feedback's
    lines, not a stack of simcomm's frames.
    """

    def __init__(self, feedback: Feedback) -> None:
        super().__init__(str(feedback))
        self.feedback = feedback

    def _render_traceback_(self) -> list[str]:
        fb = self.feedback
        mark, label, _, _ = _LOOKS[fb.ok]
        lines = [f"{mark} {fb.exercise} {label.lower()}: {_one_line(fb.message)}"]
        if fb.hint:
            lines.append(f"Hint: {_one_line(fb.hint)}")
        if fb.next_hint:
            lines.append(f"More: exercises.hint({fb.exercise!r}, {fb.next_hint})")
        return lines


def grading() -> bool:
    """True while nbgrader runs the notebook (``NBGRADER_EXECUTION`` is set: nbgrader
    sets it to ``autograde`` or ``validate`` around the kernel it starts)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def _show(fb: Feedback) -> None:
    """Display ``fb`` as a cell output (its HTML box in Jupyter, its line elsewhere)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        print(fb)
        return
    if get_ipython() is None:
        print(fb)
    else:
        display(fb)


def check(exercise_id: str, answer: Any) -> Feedback | None:
    """Check ``answer`` to exercise ``exercise_id`` and say why it is right or not yet.

    For a learner it never raises for an answer and returns the
    :class:`Feedback`, which Jupyter shows: ``...`` or None give "no answer
    yet" (so a notebook runs top to bottom as handed out), an answer of the
    wrong kind says what kind is wanted, and a wrong answer comes with the
    exercise's first hint.

    Under nbgrader (:func:`grading`) it is the test of an autograded cell:
    a right answer's feedback is displayed and None returned (nbgrader
    would read a returned value's text as partial credit), anything else
    raises :class:`NotRight` with the feedback as its message, and the
    cell scores nothing.
    """
    fb = feedback(exercise_id, answer)
    if not grading():
        return fb
    if fb.ok is not True:
        raise NotRight(fb)
    _show(fb)
    return None


def assert_correct(exercise_id: str, answer: Any) -> Feedback:
    """The feedback on ``answer``, raising :class:`NotRight` (an AssertionError)
    unless it is right, in every mode -- for tests of one's own."""
    fb = feedback(exercise_id, answer)
    if fb.ok is not True:
        raise NotRight(fb)
    return fb


def hint(exercise_id: str, n: int = 1) -> Hint:
    """Hint ``n`` of exercise ``exercise_id``: 1 is a nudge, the last almost the answer.

    Asking past the last hint gives the last one, and says so.
    """
    ex = get(exercise_id)
    total = len(ex.hints)
    if not is_whole(n) or n < 1:
        raise ParamError("n", n, f"a hint number from 1 to {total}")
    n = int(n)
    note = ""
    if n > total:
        n, note = total, f"there {'is' if total == 1 else 'are'} only {total} " \
                         f"hint{'s' if total > 1 else ''}; this is the last"
    elif n < total:
        note = f"next: `exercises.hint({ex.id!r}, {n + 1})`"
    return Hint(ex.id, n, total, ex.hint_text(n), note)


def _notebook_prefix(notebook: Any) -> str:
    """The two-digit prefix of ``notebook`` (``"01"``, ``1``, its stem or the
    start of it), checked."""
    known = sorted({ex.notebook for ex in _REGISTRY.values()})
    allowed = ("a notebook with exercises: " + ", ".join(known)
               + " (or its number, such as '01'), or None for all")
    if is_whole(notebook):
        prefix = f"{int(notebook):02d}"
    elif isinstance(notebook, str):
        text = notebook.strip().removesuffix(".ipynb")
        starts = [nb for nb in known if nb.startswith(text)]
        if text.isdigit():
            prefix = f"{int(text):02d}"
        elif len(starts) == 1:  # the stem, or enough of it: "01-sync"
            prefix = starts[0][:2]
        else:
            raise ParamError("notebook", notebook, did_you_mean(text, known) + allowed)
    else:
        raise ParamError("notebook", notebook, allowed)
    if not any(nb[:2] == prefix for nb in known):
        raise ParamError("notebook", notebook, allowed)
    return prefix


def catalogue(notebook: str | int | None = None) -> pd.DataFrame:
    """The exercises as a table, optionally of one notebook (``"01"``, ``1`` or its stem).

    Columns: ``id``, ``notebook``, ``title``, ``answer`` (``"number"``,
    ``"choice"``, ``"settings"``), ``hints`` (how many) and ``points``.
    Exported as ``simcomm.exercises.list``.
    """
    import pandas as pd

    exercises = sorted(_REGISTRY.values(), key=_order)
    if notebook is not None:
        prefix = _notebook_prefix(notebook)
        exercises = [ex for ex in exercises if ex.id.startswith(prefix + ".")]
    rows = [{"id": ex.id, "notebook": ex.notebook, "title": ex.title, "answer": ex.kind,
             "hints": len(ex.hints), "points": ex.points} for ex in exercises]
    return pd.DataFrame(rows, columns=["id", "notebook", "title", "answer", "hints", "points"])
