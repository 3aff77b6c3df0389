"""Errors and warnings simcomm raises for input or runs a user can fix."""

from __future__ import annotations

__all__ = ["OverloadWarning", "ParamError", "RunTooLarge", "SimcommWarning"]


class ParamError(ValueError):
    """A parameter is out of range, of the wrong type, or unknown.

    The message always names the field, the value given and what is allowed,
    so that the CLI can print it as one line and a notebook user knows what
    to change.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r} is not allowed: {allowed}")


class RunTooLarge(ParamError):
    """A run whose estimated memory is over the budget, refused before time zero.

    ``field`` is the setting that makes it large (usually ``until``) and
    ``allowed`` says what to change: a shorter ``until``, ``trace=False``,
    or a larger memory budget.  ``estimate`` holds the numbers behind it.
    """

    def __init__(self, field: str, value: object, allowed: str,
                 estimate: object = None) -> None:
        super().__init__(field, value, allowed)
        self.estimate = estimate


class SimcommWarning(UserWarning):
    """Base class of the warnings simcomm issues about a run's results."""


class OverloadWarning(SimcommWarning):
    """The run was overloaded or unstable: its headline numbers mislead.

    Issued when the busiest resource is saturated or most requests were
    still pending at the end; the text names the bottleneck.
    """
