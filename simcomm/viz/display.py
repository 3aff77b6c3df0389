"""Show bare :class:`~matplotlib.figure.Figure` objects inline in Jupyter.

simcomm builds figures without pyplot (so it leaks no global state), but
IPython only registers its PNG formatter for ``Figure`` when the inline
backend is activated, which normally happens on ``import
matplotlib.pyplot``.  Without it a notebook cell ending in a Figure would
show only ``<Figure size ...>``.  :func:`enable_inline` registers the same
formatter the inline backend would (PNG, ``bbox_inches="tight"``), and only
if no formatter for ``Figure`` is registered yet, so a user's own
``%matplotlib`` or ``%config InlineBackend.figure_formats`` choice wins.
"""

from __future__ import annotations

import sys

__all__ = ["enable_inline"]


def _shell():
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()


def enable_inline() -> bool:
    """Make Figures display as PNG in a Jupyter kernel; True if they will."""
    shell = _shell()
    if shell is None or not hasattr(shell, "kernel"):
        return False  # plain Python or a terminal IPython: nothing to show inline
    from matplotlib.figure import Figure

    formatters = shell.display_formatter.formatters
    for fmt in formatters.values():
        try:
            fmt.lookup_by_type(Figure)
        except KeyError:
            continue
        return True  # the user or the inline backend already chose
    try:
        from IPython.core.pylabtools import select_figure_formats

        select_figure_formats(shell, {"png"}, bbox_inches="tight")
    except Exception:  # pragma: no cover - never break an import over display
        return False
    return True
