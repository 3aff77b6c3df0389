"""Type checks shared by every validator: numpy numbers count as numbers.

``isinstance(v, int)`` refuses ``numpy.int64`` and lets ``True`` through;
these helpers accept any :class:`numbers.Integral` / :class:`numbers.Real`
and refuse ``bool``, so a sweep over ``np.arange`` works and a flag is
never mistaken for a count.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["as_real", "is_flag", "is_real", "is_whole"]


def is_flag(value: object) -> bool:
    """A bool, or numpy's ``bool_`` (what ``array > 0`` holds) -- not 0, 1 or "false"."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy"
                                       and type(value).__name__ in ("bool_", "bool"))


def is_whole(value: object) -> bool:
    """A whole number (int, numpy integer, ...), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A real number (int, float, numpy number, ...), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_real(value: object) -> float | None:
    """``value`` as a float, or None if it is not a real number.

    A number too large for a float (``10**400``) becomes ``±inf`` instead of
    raising OverflowError, so a range check refuses it with a ParamError.
    NaN stays NaN: callers decide whether it is allowed.
    """
    if not is_real(value):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]
