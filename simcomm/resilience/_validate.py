"""Field checks shared by the policies: each failure is a ParamError naming the field.

Every constructor argument of a policy goes through one of these, so that a
slider in a dashboard, a ``--set`` on the command line and a notebook cell
all get the same one-line message ("failure_rate_threshold=0 is not
allowed: a number > 0 and <= 100").  Numbers follow :mod:`simcomm._checks`:
numpy numbers count, bools never do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from simcomm._checks import as_real, is_whole
from simcomm.errors import ParamError

__all__ = ["check_callable", "check_choice", "check_flag", "check_real", "check_whole"]


def check_whole(field: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an int, if it is a whole number in ``[low, high]``."""
    if not is_whole(value) or value < low or (high is not None and value > high):  # type: ignore[operator]
        allowed = (f"a whole number >= {low}" if high is None
                   else f"a whole number from {low} to {high}")
        raise ParamError(field, value, allowed)
    return int(value)  # type: ignore[call-overload]


def check_real(field: str, value: object, *, low: float = 0.0, low_open: bool = False,
               high: float | None = None, finite: bool = True, unit: str = "") -> float:
    """``value`` as a float, if it is a real number in the range.

    ``low_open`` makes the lower bound strict (``> low`` instead of
    ``>= low``); ``high`` is inclusive; ``finite=False`` lets ``inf``
    through (it is then a bound "never").  NaN is always refused.
    """
    x = as_real(value)
    ok = x is not None and not math.isnan(x)
    if ok:
        assert x is not None
        ok = (x > low if low_open else x >= low) and (high is None or x <= high)
        ok = ok and (not finite or math.isfinite(x))
    if not ok:
        low_text = f"> {low:g}" if low_open else f">= {low:g}"
        what = "a finite number" if finite else "a number"
        allowed = f"{what} {low_text}" + (f" and <= {high:g}" if high is not None else "")
        raise ParamError(field, value, allowed + (f" ({unit})" if unit else ""))
    assert x is not None
    return x


def check_flag(field: str, value: object) -> bool:
    """``value`` if it is a bool (numbers are not flags: 0/1 are refused)."""
    if not isinstance(value, bool):
        raise ParamError(field, value, "True or False")
    return value


def check_choice(field: str, value: object, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ParamError(field, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_callable(field: str, value: object, allowed: str) -> Callable[..., Any]:
    """``value`` if it can be called."""
    if not callable(value):
        raise ParamError(field, value, allowed)
    return value
