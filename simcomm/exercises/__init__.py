"""Exercises a learner checks offline, with hints and friendly feedback.

In a notebook::

    from simcomm import exercises

    answer = ...  # replace ... with your answer      (the answer cell)
    exercises.check("01.2", answer)     # ✔ right / ✘ not yet (and why) / … no answer yet
    exercises.hint("01.2")              # a nudge; hint("01.2", 3) almost gives it away
    exercises.list("01")                # the exercises of a notebook, as a table

Every exercise is declared once, in the module of its notebook
(``nb00_tour``, ``nb01_sync``, ..., ``nb04_retries``), with its question,
its checker and one to three hints; expected values are computed from the
package (queueing theory, a scenario's capacity model, ``format_ceilings``,
runs), never typed in.  An unanswered exercise gives "no answer yet" and
never raises, so a notebook runs top to bottom as it is handed out.

No server is involved: the checks run in the learner's kernel.  The
notebooks are nbgrader sources too (:mod:`simcomm.exercises.cells` lays
out each exercise as an answer cell and a locked, graded check cell): while
nbgrader runs a notebook it sets ``NBGRADER_EXECUTION``, and :func:`check`
then raises :class:`NotRight` (an AssertionError) unless the answer is
right.  Every exercise's ``solution()`` gives a right answer from the
package, for solved copies.  Importing this module is light: no pandas,
matplotlib or widgets until a check needs them.
"""

from simcomm.exercises import (  # noqa: F401 (registration)
    nb00_tour,
    nb01_sync,
    nb02_formats,
    nb03_partial_failure,
    nb04_retries,
    nb05_discovery,
    nb06_async_messaging,
    nb07_brokers,
    nb08_ordering,
    nb09_delivery,
    nb10_outbox,
)
from simcomm.exercises._core import (
    Checker,
    Choice,
    Exercise,
    Feedback,
    Hint,
    Miss,
    NotRight,
    Number,
    Settings,
    Slip,
    assert_correct,
    check,
    feedback,
    get,
    grading,
    hint,
    not_yet,
    register,
    right,
)

# exercises.list(): the catalogue, under the name a learner looks for
from simcomm.exercises._core import catalogue as list

__all__ = [
    "Checker", "Choice", "Exercise", "Feedback", "Hint", "Miss", "NotRight", "Number", "Settings",
    "Slip", "assert_correct", "check", "feedback", "get", "grading", "hint", "list", "not_yet",
    "register", "right",
]
