"""Errors simcomm raises for input a user can fix."""

from __future__ import annotations


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
