"""Figures to PNG bytes, summary tables to HTML, and shared axis limits.

The dashboards show figures as ``ipywidgets.Image`` values (PNG bytes)
rather than through an ``Output`` widget: replacing an image's bytes is one
comm message, never accumulates outputs, and needs no matplotlib backend in
the kernel.  A dashboard keeps one figure per view and draws each new run
into it (:func:`simcomm.viz.redraw` updates the artists in place), so a
dashboard that re-runs a hundred times holds as many figures as it shows.

Rendering is Agg straight to an RGB buffer, encoded by Pillow with light
compression: for a figure of ~650 x 400 px the default zlib level costs
several times the encoding at level 1 for a PNG only a little smaller.  A
kept figure renders through :class:`~simcomm.widgets._agg.GlyphCachingCanvas`,
which draws the texts it drew before (tick labels, titles, legends: most
of a redrawn figure's text, and most of its rendering time) from memory.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from simcomm.errors import ParamError
from simcomm.result import SUMMARY_HELP

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simcomm.result import Result

__all__ = [
    "DPI", "KEY_NUMBERS", "PNG_COMPRESSION", "axes_limits", "check_views", "close_figure",
    "diff_html", "draw_view", "fmt", "health_html", "png_bytes", "summary_html",
    "unify_limits",
]

#: Resolution of the PNGs the dashboards show.  Matplotlib's default (100)
#: makes a 9x4 inch figure 900x400 px, wider than a dashboard column; 72 dpi
#: is sharp enough on screen and renders in about half the time.
DPI = 72

#: zlib level of the dashboards' PNGs (0-9): 1 encodes several times faster
#: than Pillow's default 6; the PNG is 10-20 % larger, a few kB over a comm.
PNG_COMPRESSION = 1

#: The summary numbers a dashboard shows, with their label and unit ("%" for
#: a fraction, shown as a percentage).
KEY_NUMBERS: tuple[tuple[str, str, str], ...] = (
    ("requests", "requests", ""),
    ("completed", "completed", ""),
    ("failed", "failed", ""),
    ("pending_share", "pending", "%"),
    ("availability", "availability", "%"),
    ("throughput", "throughput", "req/s"),
    ("offered_load", "offered load", ""),
    ("mean_latency", "mean latency", "s"),
    ("p50", "p50", "s"),
    ("p95", "p95", "s"),
    ("p99", "p99", "s"),
    ("fallback", "fallback", ""),
    ("success_rate", "ok only", "%"),
    ("retries", "retries", ""),
    ("breaker_opens", "breaker opens", ""),
    ("max_amplification", "amplification", "×"),
    ("messages_published", "published", ""),
    ("messages_consumed", "consumed", ""),
    ("messages_lost", "lost", ""),
    ("messages_dead_lettered", "dead-lettered", ""),
    ("messages_queued", "still queued", ""),
    ("redeliveries", "redeliveries", ""),
    ("message_p95_latency", "message p95", "s"),
    # a run with keyed records (issue 9: simcomm.analysis.delivery's COUNT_KEYS)
    ("records_produced", "records produced", ""),
    ("records_applied", "applied", ""),
    ("lost", "lost", ""),
    ("duplicated", "duplicated", ""),
    ("reordered", "reordered", ""),
    ("gaps", "gaps", ""),
    ("phantom", "phantoms", ""),
    ("pending", "in flight", ""),
    ("lost_per_10k", "lost", "per 10k"),
    ("duplicated_per_10k", "duplicated", "per 10k"),
    ("reordered_per_10k", "reordered", "per 10k"),
    ("rebalances", "rebalances", ""),
    ("record_throughput", "applied rate", "rec/s"),
    ("record_p50_latency", "record p50", "s"),
    ("record_p95_latency", "record p95", "s"),
)

#: The request numbers: what a run with user requests is about.  A run of
#: messages alone (producers, a broker, consumers) has none, and its
#: dashboard shows the messaging numbers instead of a row of zeros.
_REQUEST_KEYS = ("requests", "completed", "failed", "pending_share", "availability",
                 "throughput", "mean_latency", "p50", "p95", "p99")


def _has_requests(s: Mapping[str, Any]) -> bool:
    return bool(s.get("requests")) or "messages_published" not in s

#: Key numbers a run shows only when they say something: the resilience ones
#: (fallback answers, the ok-only share beside an availability that counts
#: them, retries, breaker openings, amplification above one call per
#: request).  A run without policies keeps the short summary it had.
OPTIONAL: dict[str, Any] = {
    "fallback": lambda s: bool(s.get("fallback")),
    "success_rate": lambda s: bool(s.get("fallback")),
    "retries": lambda s: bool(s.get("retries")),
    "breaker_opens": lambda s: bool(s.get("breaker_opens")),
    "max_amplification": lambda s: _finite(s.get("max_amplification")) and (
        s["max_amplification"] > 1 + 1e-9),
    # the messaging keys are in a summary only when the run has messaging; of
    # them, dead-lettering shows only when something was dead-lettered
    "messages_dead_lettered": lambda s: bool(s.get("messages_dead_lettered")),
    # of the records' numbers, the rarer anomalies and the rebalances show only
    # when they happened (a phantom is the dual write's bug: worth a cell then)
    "gaps": lambda s: bool(s.get("gaps")),
    "phantom": lambda s: bool(s.get("phantom")),
    "pending": lambda s: bool(s.get("pending")),
    "rebalances": lambda s: bool(s.get("rebalances")),
    **dict.fromkeys(_REQUEST_KEYS, _has_requests),
}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _shows(key: str, *summaries: Mapping[str, Any]) -> bool:
    """True if ``key`` is in every summary and, if optional, one of them says something."""
    if not all(key in s for s in summaries):
        return False
    test = OPTIONAL.get(key)
    return test is None or any(test(s) for s in summaries)

#: Keys whose value is a fraction (shown as %, differences in percentage points).
_FRACTIONS = ("availability", "pending_share", "completed_share", "bottleneck_utilisation",
              "success_rate")


def check_views(names: Iterable[str] | str | None, default: Sequence[str]) -> tuple[str, ...]:
    """The view names to draw: ``names`` or the scenario's ``default``, all known to viz.

    Checked before anything runs (principle 6), so a typo in ``views=``
    fails with the list of known views instead of an empty dashboard.
    """
    from simcomm import viz

    chosen = tuple(default) if names is None else (
        (names,) if isinstance(names, str) else tuple(names))
    known = getattr(viz, "VIEWS", None)
    if known is not None:
        for name in chosen:
            if name not in known:
                raise ParamError("views", name, "names from " + ", ".join(sorted(known)))
    return chosen


def draw_view(name: str, res: Result, into: Figure | Sequence[Figure] | None = None,
              **kwargs: Any) -> Figure:
    """The figure of view ``name`` for ``res``: drawn into ``into`` (a figure this
    view drew before, or several) when one fits, else a new one (see
    :func:`simcomm.viz.redraw`)."""
    from simcomm import viz

    return viz.redraw(name, res, into, **kwargs)


def close_figure(fig: Figure) -> None:
    """Release ``fig`` once rendered.

    viz builds bare Figures that pyplot does not know: dropping the last
    reference is all it takes (the cyclic garbage collector frees them),
    and clearing one first costs 5-20 ms per figure for nothing.  A figure
    pyplot does manage (a view drawn with pyplot) is closed through
    :func:`simcomm.viz.close`, so pyplot lets go of it too.
    """
    if getattr(fig.canvas, "manager", None) is not None:
        from simcomm import viz

        viz.close(fig)


def png_bytes(fig: Figure, dpi: float = DPI, *, close: bool = True) -> bytes:
    """``fig`` rendered as PNG bytes (and closed unless ``close=False``).

    The figure's own resolution becomes ``dpi`` (set once: a kept figure
    is not switched back and forth on every save, which would redo its
    layout), it is drawn by Agg (a bare figure gets a
    :class:`~simcomm.widgets._agg.GlyphCachingCanvas`, kept with it) and
    encoded as an RGB PNG at :data:`PNG_COMPRESSION`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    from simcomm.widgets._agg import GlyphCachingCanvas

    buf = io.BytesIO()
    try:
        if fig.dpi != dpi:
            fig.set_dpi(dpi)
        canvas = fig.canvas
        if not isinstance(canvas, FigureCanvasAgg):  # a bare Figure: ours to render
            canvas = GlyphCachingCanvas(fig)
        canvas.draw()
        size = canvas.get_width_height()
        img = Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        img.convert("RGB").save(buf, format="png", compress_level=PNG_COMPRESSION)
    finally:
        if close:
            close_figure(fig)
    return buf.getvalue()


def fmt(key: str, value: Any) -> str:
    """A summary number as text: counts whole, fractions as %, times in s."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key in ("availability", "success_rate"):
        return f"{100 * value:.2f} %"
    if key == "max_amplification" and isinstance(value, float):
        return f"{value:.3g}"
    if key in _FRACTIONS:
        return f"{100 * value:.1f} %"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


_TABLE_STYLE = ("border-collapse:collapse;font-size:12px;margin:2px 0;"
                "font-variant-numeric:tabular-nums")
_CELL = "padding:1px 8px;border-bottom:1px solid #e5e5e5;"


def summary_html(summary: Mapping[str, Any], bottleneck: str | None = None) -> str:
    """The key summary numbers as small label-over-value cells that wrap to fit.

    Each label carries its meaning as a tooltip (``SUMMARY_HELP``); below
    the numbers, the busiest resource (``bottleneck``, the sentence of
    :meth:`~simcomm.result.Result.bottleneck`) and a footnote saying what
    availability counts, where it is shown.
    """
    helps = SUMMARY_HELP
    cells = []
    for key, label, unit in KEY_NUMBERS:
        if not _shows(key, summary):
            continue
        unit_html = (f" <span style='color:#888'>({html.escape(unit)})</span>"
                     if unit and unit != "%" else "")
        star = "*" if key == "availability" else ""
        tip = html.escape(helps.get(key, ""), quote=True)
        cells.append(
            f"<div title='{tip}' style='padding:2px 10px 2px 0;min-width:5.5em'>"
            f"<div style='color:#555;font-size:11px;white-space:nowrap'>"
            f"{html.escape(label)}{star}{unit_html}</div>"
            f"<div class='simcomm-number' data-key='{key}' style='font-size:14px;"
            f"font-weight:600;font-variant-numeric:tabular-nums'>{fmt(key, summary[key])}"
            "</div></div>")
    notes = []
    if bottleneck:
        notes.append(f"<div class='simcomm-bottleneck'>Busiest resource: "
                     f"{html.escape(bottleneck)}</div>")
    if _shows("availability", summary) and "availability" in helps:
        notes.append("<div class='simcomm-footnote' style='color:#666;font-size:11px'>"
                     f"* availability = {html.escape(helps['availability'])}</div>")
    return ("<div class='simcomm-summary' style='border-bottom:1px solid #e5e5e5;"
            "margin:2px 0 4px 0'><div style='display:flex;flex-wrap:wrap'>"
            + "".join(cells) + "</div><div style='font-size:12px;margin:2px 0'>"
            + "".join(notes) + "</div></div>")


def health_html(warnings: Sequence[str]) -> str:
    """A banner for a run that :meth:`~simcomm.result.Result.warnings` says is
    overloaded, stuck or unfinished; empty for a healthy run.

    Its first word (``overloaded``, ``stuck``, ``unfinished``) is bold, so the
    kind of trouble reads at a glance above the numbers it qualifies.
    """
    if not warnings:
        return ""
    items = []
    for text in warnings:
        head, sep, rest = text.partition(": ")
        body = (f"<b>{html.escape(head)}</b>: {html.escape(rest)}" if sep
                else html.escape(text))
        items.append(f"<div>⚠ {body}</div>")
    return ("<div class='simcomm-warning' role='alert' style='border-left:4px solid #D55E00;"
            "background:#FBEAE0;color:#4A1F00;padding:4px 8px;margin:2px 0 4px 0;"
            "font-size:12px'>" + "".join(items) + "</div>")


def difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, float]:
    """``b - a`` for each key number both summaries show."""
    out: dict[str, float] = {}
    for key, _, _ in KEY_NUMBERS:
        if _shows(key, a, b):
            out[key] = float(b[key]) - float(a[key])
    return out


def diff_html(a: Mapping[str, Any], b: Mapping[str, Any], names: tuple[str, str] = ("A", "B")
              ) -> str:
    """Key numbers of A and B and their difference B − A (and B/A − 1); each
    metric's meaning is its tooltip."""
    helps = SUMMARY_HELP
    rows = []
    for key, label, unit in KEY_NUMBERS:
        if not _shows(key, a, b):
            continue
        va, vb = float(a[key]), float(b[key])
        delta = vb - va
        if key in _FRACTIONS:
            d = "–" if math.isnan(delta) else f"{100 * delta:+.2f} pp"
        elif isinstance(a[key], int) and isinstance(b[key], int):
            d = f"{int(delta):+,}"
        else:
            d = "–" if math.isnan(delta) else f"{delta:+.4g}"
        rel = (f"{100 * (vb / va - 1):+.1f} %" if va and not math.isnan(va)
               and not math.isnan(vb) and key not in _FRACTIONS else "")
        colour = ""
        better_up = key in ("completed", "availability", "throughput", "success_rate",
                            "messages_consumed", "records_applied", "record_throughput")
        worse_up = key in ("failed", "pending_share", "mean_latency", "p50", "p95", "p99",
                           "retries", "breaker_opens", "max_amplification", "messages_lost",
                           "messages_dead_lettered", "messages_queued", "redeliveries",
                           "message_p95_latency", "lost", "duplicated", "reordered",
                           "gaps", "phantom", "lost_per_10k", "duplicated_per_10k",
                           "reordered_per_10k", "rebalances", "record_p50_latency",
                           "record_p95_latency")
        if delta and not math.isnan(delta) and (better_up or worse_up):
            good = (delta > 0) == better_up
            colour = "color:#009E73;" if good else "color:#D55E00;"
        unit_html = (f" <span style='color:#888'>({html.escape(unit)})</span>"
                     if unit and unit != "%" else "")
        tip = html.escape(helps.get(key, ""), quote=True)
        rows.append(
            f"<tr><td style='{_CELL}' title='{tip}'>{html.escape(label)}{unit_html}</td>"
            f"<td style='{_CELL}text-align:right'>{fmt(key, a[key])}</td>"
            f"<td style='{_CELL}text-align:right'>{fmt(key, b[key])}</td>"
            f"<td style='{_CELL}text-align:right;{colour}'>{d}</td>"
            f"<td style='{_CELL}text-align:right;{colour}'>{rel}</td></tr>")
    na, nb = (html.escape(n) for n in names)
    head = "".join(f"<th style='{_CELL}text-align:right'>{h}</th>"
                   for h in (na, nb, f"{nb} − {na}", "change"))
    return (f"<table class='simcomm-difference' style='{_TABLE_STYLE}'>"
            f"<tr><th style='{_CELL}text-align:left'>metric</th>{head}</tr>"
            + "".join(rows) + "</table>")


# -- shared axis scales -------------------------------------------------------
def _plot_axes(fig: Figure) -> list[Axes]:
    """The axes of ``fig`` that show data on scales (not colorbars, not hidden)."""
    return [ax for ax in fig.axes
            if ax.axison and getattr(ax, "_colorbar", None) is None
            and ax.get_label() != "<colorbar>"]


def axes_limits(fig: Figure) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """``(xlim, ylim)`` of each data axes of ``fig``, in order."""
    return [(tuple(map(float, ax.get_xlim())), tuple(map(float, ax.get_ylim())))  # type: ignore[misc]
            for ax in _plot_axes(fig)]


def _union(lims: Sequence[tuple[float, float]], log: bool) -> tuple[float, float]:
    """The smallest interval holding every one of ``lims`` (positive if ``log``),
    inverted if the first one is (a time axis running downwards stays so)."""
    values = [v for lim in lims for v in lim if math.isfinite(v) and (not log or v > 0)]
    lo, hi = min(values), max(values)
    return (hi, lo) if lims[0][0] > lims[0][1] else (lo, hi)


def unify_limits(figs: Sequence[Figure]) -> None:
    """Give corresponding axes of ``figs`` the same scale and limits (their union).

    Two sides of a comparison are only comparable at a glance when a
    latency of 1 s is the same height on both.  Axes correspond by position:
    the k-th data axes of each figure (views draw per-instance panels in
    the order the instances were added, so the gateway pairs with the
    gateway even when one side has more services; the extra panels keep
    their own limits).  If one side chose a log scale (viz does for
    latencies spanning decades), all sides get it.
    """
    groups = [_plot_axes(f) for f in figs]
    if len(groups) < 2:
        return
    for axes in zip(*groups, strict=False):
        for which in ("x", "y"):
            get_scale, set_scale = f"get_{which}scale", f"set_{which}scale"
            get_lim, set_lim = f"get_{which}lim", f"set_{which}lim"
            scales = {getattr(ax, get_scale)() for ax in axes}
            if not scales <= {"linear", "log"}:
                continue  # symlog, logit, categorical units...: leave them alone
            log = "log" in scales
            lims = [getattr(ax, get_lim)() for ax in axes]
            if any(not all(map(math.isfinite, lim)) for lim in lims):
                continue
            if log and not any(v > 0 for lim in lims for v in lim):
                continue
            if log:  # a linear side's lower limit is often 0: use its smallest datum
                lims += [tuple(getattr(ax.dataLim, f"interval{which}")) for ax in axes
                         if getattr(ax, get_scale)() != "log"]
            union = _union(lims, log)
            for ax in axes:
                if log and getattr(ax, get_scale)() != "log":
                    getattr(ax, set_scale)("log")
                getattr(ax, set_lim)(union)
