"""Colours and small drawing helpers shared by every figure.

The palette is Okabe & Ito's (2008) eight colours, chosen to stay distinct
for the common forms of colour blindness.  Each request outcome has one
fixed colour in every figure, so a learner who has learnt "vermillion is an
error" can read the next figure without its legend.

Nothing here touches matplotlib's global state: figures are built with
:func:`new_figure` (a bare :class:`matplotlib.figure.Figure`, unknown to
pyplot) and every style choice is passed to the artists explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "BREAKER_LABELS", "BREAKER_STATES", "BREAKER_STYLES", "COLOR_NAMES", "EXTRA_COLORS",
    "FAIL_CMAP", "FAULT_COLORS", "FAULT_LABELS", "GREY", "HEALTH_COLORS", "INK", "LOAD_CMAP",
    "OKABE_ITO", "OUTCOMES", "OUTCOME_COLORS", "PERCENTILE_STYLES", "POOL_COLORS",
    "SEQUENTIAL_CMAP", "SERIES_COLORS",
    "color_name", "figure_for", "new_figure", "opaque", "outcome_color", "pin_axis_labels",
    "root_figure", "set_titles", "style_axes", "wrap_label",
]

#: Okabe & Ito's colour-blind-safe palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: Text, axes and neutral lines.
INK = "#333333"
GREY = "#999999"

#: Colours beyond Okabe & Ito's eight, for the outcomes a resilience policy
#: decides (eight colours do not go round thirteen outcomes).  Each was
#: chosen to stay at least as far (CIELAB distance, also under simulated
#: protanopia, deuteranopia and tritanopia) from every other outcome colour
#: and from the yellow of a hang band as the closest pair of the original
#: seven outcome colours are from each other.
EXTRA_COLORS: dict[str, str] = {
    "light_green": "#B4DE8A",
    "dark_brown": "#4D2000",
    "wine": "#882255",
    "indigo": "#332288",
    "dark_olive": "#666633",
    "light_grey": "#E5E5E5",
    "violet": "#9900FF",
}

#: The words prose should use for each colour (notebooks cite these, and a
#: test can check a sentence against a figure with :func:`color_name`).
COLOR_NAMES: dict[str, str] = {
    **{v: k.replace("_", " ") for k, v in OKABE_ITO.items()},
    **{v: k.replace("_", " ") for k, v in EXTRA_COLORS.items()},
    INK: "black", GREY: "grey", "#7F7F7F": "grey",
}

#: Every request outcome, in the order figures stack and list them: the
#: answers first (ok, then a fallback's answer), then the failures -- the
#: service's own, those a resilience policy decided (see
#: :data:`simcomm.rpc.OUTCOMES`), those of a down instance and a full
#: queue, the users' giving up -- and last the requests still waiting.
OUTCOMES: tuple[str, ...] = ("ok", "fallback", "error", "timeout", "deadline_exceeded",
                             "bulkhead_full", "short_circuited", "rate_limited", "no_instance",
                             "refused", "rejected", "reset", "abandoned", "pending")

#: One fixed colour per outcome, the same in every figure.  A fallback's
#: answer is light green (answered, but not by the service), a timeout dark
#: brown, a short circuit wine (the colour of an open breaker in
#: :func:`simcomm.viz.breaker_states`), a full bulkhead indigo, a rate
#: limiter's refusal dark olive, a passed deadline black.
OUTCOME_COLORS: dict[str, str] = {
    "ok": OKABE_ITO["bluish_green"],
    "fallback": EXTRA_COLORS["light_green"],
    "error": OKABE_ITO["vermillion"],
    "timeout": EXTRA_COLORS["dark_brown"],
    "deadline_exceeded": OKABE_ITO["black"],
    "bulkhead_full": EXTRA_COLORS["indigo"],
    "short_circuited": EXTRA_COLORS["wine"],
    "rate_limited": EXTRA_COLORS["dark_olive"],
    "no_instance": EXTRA_COLORS["violet"],
    "refused": OKABE_ITO["orange"],
    "rejected": OKABE_ITO["reddish_purple"],
    "reset": OKABE_ITO["blue"],
    "abandoned": OKABE_ITO["sky_blue"],
    "pending": GREY,
}

#: Circuit breaker states, in the order legends list them.
BREAKER_STATES: tuple[str, ...] = ("closed", "open", "half_open", "forced_open", "disabled",
                                   "metrics_only")

#: How :func:`simcomm.viz.breaker_states` draws each state's band: closed
#: light grey (calls flow, nothing to see), open wine (the colour of the
#: ``short_circuited`` outcome: while it shows, calls are refused), half-open
#: wine stripes on white (a few trial calls pass), forced open wine crossed
#: with white, disabled and metrics-only grey dots (the breaker never stops
#: a call).  A hatch takes the band's ``edgecolor`` (bands have no outline).
BREAKER_STYLES: dict[str, dict[str, Any]] = {
    "closed": {"facecolor": EXTRA_COLORS["light_grey"], "edgecolor": "none"},
    "open": {"facecolor": EXTRA_COLORS["wine"], "edgecolor": "none"},
    "half_open": {"facecolor": "#FFFFFF", "hatch": "////", "edgecolor": EXTRA_COLORS["wine"]},
    "forced_open": {"facecolor": EXTRA_COLORS["wine"], "hatch": "xx", "edgecolor": "#FFFFFF"},
    "disabled": {"facecolor": "#FFFFFF", "hatch": "..", "edgecolor": GREY},
    "metrics_only": {"facecolor": EXTRA_COLORS["light_grey"], "hatch": "..", "edgecolor": GREY},
}
BREAKER_LABELS: dict[str, str] = {
    "closed": "closed: calls pass", "open": "open: calls short-circuited",
    "half_open": "half-open: trial calls", "forced_open": "forced open",
    "disabled": "disabled: never trips", "metrics_only": "metrics only: never trips",
}

#: Colours told apart by order, for categories that are not outcomes (the
#: endpoints holding a pool's workers, the services of a load figure).
SERIES_COLORS: tuple[str, ...] = (OKABE_ITO["blue"], OKABE_ITO["reddish_purple"],
                                  OKABE_ITO["sky_blue"], OKABE_ITO["orange"],
                                  OKABE_ITO["bluish_green"], EXTRA_COLORS["indigo"])

#: Background bands for faults (see :func:`simcomm.viz.data.fault_intervals`).
FAULT_COLORS: dict[str, str] = {
    "down": "#7F7F7F",                 # crashed: nothing listens
    "hung": OKABE_ITO["yellow"],       # accepts work, never answers
    "partition": OKABE_ITO["sky_blue"],
    "slow": OKABE_ITO["orange"],
    "errors": OKABE_ITO["reddish_purple"],
}
FAULT_LABELS: dict[str, str] = {
    "down": "down (crashed)", "hung": "hung", "partition": "network partition",
    "slow": "slowed down", "errors": "injected errors",
}

#: Worker pool figure: busy workers (a blue area on the left scale), the
#: queue (a vermillion line on its own right-hand scale: a queue of 300 must
#: not flatten ten busy workers) and the pool size (a dashed black line).
#: Vermillion is far from the yellow of a hang band and the grey of a crash
#: band, so the queue and the faults cannot be confused.
POOL_COLORS: dict[str, str] = {
    "busy": OKABE_ITO["blue"],
    "queued": OKABE_ITO["vermillion"],
    "pool_size": INK,
}

#: Node health in the topology.
HEALTH_COLORS: dict[str, str] = {
    "up": OKABE_ITO["bluish_green"],
    "hung": OKABE_ITO["orange"],
    "down": OKABE_ITO["vermillion"],
    "client": "#DDDDDD",
}

#: Rolling percentile lines drawn over the latency points.
PERCENTILE_STYLES: dict[float, dict[str, Any]] = {
    50: {"color": OKABE_ITO["black"], "linestyle": "-", "linewidth": 1.6},
    99: {"color": OKABE_ITO["black"], "linestyle": "--", "linewidth": 1.6},
}

#: Sequential map for load (0 = idle .. 1 = saturated): light to dark,
#: monotonic in lightness so it reads in grey scale too.
LOAD_CMAP = LinearSegmentedColormap.from_list(
    "simcomm_load", ["#FFFFFF", "#FCE3B0", OKABE_ITO["orange"], OKABE_ITO["vermillion"],
                     "#6B2A00"])
#: Sequential map for any measured quantity (a sweep's heat map): cividis
#: (Nuñez, Anderton & Renslow 2018), perceptually uniform -- equal steps in
#: value look like equal steps in colour -- and built to read the same for
#: viewers with red-green colour blindness; dark blue (low) to yellow (high).
SEQUENTIAL_CMAP = "cividis"
#: Edge colour by share of failed calls (0 grey .. 1 vermillion).
FAIL_CMAP = LinearSegmentedColormap.from_list(
    "simcomm_fail", ["#888888", OKABE_ITO["vermillion"]])


def outcome_color(outcome: str) -> str:
    """The fixed colour of a request outcome (grey for an unknown one)."""
    return OUTCOME_COLORS.get(outcome, GREY)


def color_name(color: str) -> str:
    """The plain name of one of simcomm's colours ("vermillion"), else the colour itself."""
    from matplotlib.colors import to_hex

    try:
        key = to_hex(color).upper()
    except ValueError:
        return color
    return next((n for c, n in COLOR_NAMES.items() if c.upper() == key), color)


def opaque(color: str, alpha: float) -> str:
    """``color`` at ``alpha`` over white, as an opaque colour: looks the same as the
    translucent one, but nothing drawn behind it shows through and tints it."""
    from matplotlib.colors import to_hex, to_rgb

    r, g, b = to_rgb(color)
    return to_hex((1 - alpha + alpha * r, 1 - alpha + alpha * g, 1 - alpha + alpha * b))


def new_figure(width: float = 9.0, height: float = 4.0, *,
               margins: tuple[float, float, float, float] = (0.8, 0.3, 0.45, 0.6),
               hspace: float = 0.2, **kwargs: Any) -> Figure:
    """A bare Figure (no pyplot, no global state) with fixed margins.

    ``margins`` are ``(left, right, top, bottom)`` in inches: room for tick
    labels, axis labels, titles and a legend to the right.  Fixed margins
    instead of a layout engine keep rendering fast (constrained layout
    roughly doubles the time a dashboard waits for a redraw).
    """
    left, right, top, bottom = margins
    kwargs.setdefault("dpi", 100)
    fig = Figure(figsize=(width, height), **kwargs)
    if kwargs.get("layout") is None:  # a layout engine, if asked for, places the axes
        fig.subplots_adjust(left=left / width, right=1 - right / width,
                            top=1 - top / height, bottom=bottom / height, hspace=hspace)
    return fig


def figure_for(ax: Axes | None, width: float = 9.0, height: float = 4.0,
               margins: tuple[float, float, float, float] = (0.8, 0.3, 0.45, 0.6)
               ) -> tuple[Figure, Axes, bool]:
    """``(fig, ax, owned)``: the given axes and its figure, or a new one-axes figure.

    ``owned`` is False when drawing into the caller's axes: figure-level
    decorations (suptitle, colorbar) are then left to the caller.
    """
    if ax is not None:
        return root_figure(ax), ax, False
    fig = new_figure(width, height, margins=margins)
    return fig, fig.add_subplot(), True


def set_titles(ax: Axes, left: str, right: str | None = None, *, size: float = 11,
               y: float = 1.0) -> None:
    """A title on the left and small print on the right, at a fixed height.

    A fixed ``y`` spares matplotlib from searching for room above the axes
    on every draw, which with shared axes costs more than the rest of the
    figure.
    """
    ax.set_title(left, loc="left", fontsize=size, y=y)
    if right is not None:
        ax.set_title(right, loc="right", fontsize=8, color=INK, y=y)


def wrap_label(text: str, width: int = 34) -> str:
    """``text`` broken into lines of at most ``width`` characters (legends)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, subsequent_indent="  ")) or text


def root_figure(ax: Axes) -> Figure:
    """The top-level Figure holding ``ax`` (not a SubFigure)."""
    try:
        return ax.get_figure(root=True)  # type: ignore[call-arg,return-value]
    except TypeError:  # matplotlib < 3.10
        fig = ax.figure
        while getattr(fig, "figure", fig) is not fig:  # SubFigure -> its parent
            fig = fig.figure
        return fig  # type: ignore[return-value]


def style_axes(ax: Axes) -> None:
    """Light grid and no top/right spines: less ink, same information."""
    ax.grid(True, color="#E5E5E5", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _widest_tick_label(axis: Any) -> int:
    """Characters in the widest major tick label ``axis`` will show now."""
    lo, hi = sorted(axis.get_view_interval())
    values = [v for v in axis.get_major_locator()() if lo <= v <= hi]
    if not values:
        return 1
    labels = axis.get_major_formatter().format_ticks(values)
    if axis.get_scale() == "log" and any(label.startswith("$") for label in labels):
        return 4  # 10^-1 as mathtext: about four characters wide
    return max(len(label) for label in labels)


def pin_axis_labels(ax: Axes) -> None:
    """Put the axis labels of ``ax`` just clear of its tick labels, computed here.

    Matplotlib otherwise measures every tick label of the axes and of all
    the axes sharing it on every draw to place the labels, which costs a
    fifth of a dashboard figure's rendering.  Call this after the limits,
    scale and locators are set: the distance comes from the widest tick
    label's length (about 0.6 em per character), so it follows the ticks
    the same way in a fresh drawing and in a redraw.
    """
    fig = root_figure(ax)
    pos = ax.get_position()
    width_pt = pos.width * fig.get_figwidth() * 72
    height_pt = pos.height * fig.get_figheight() * 72
    for axis in (ax.xaxis, ax.yaxis):
        if not axis.label.get_text():  # pinned anyway: no measuring for an empty label
            if axis is ax.xaxis:
                axis.set_label_coords(0.5, 0.0)
            else:
                axis.set_label_coords(0.0, 0.5)
            continue
        ticks = axis.get_major_ticks(1)
        size = float(ticks[0].label1.get_fontsize()) if ticks else 10.0
        # tick length outside the axes and the label's pad (points)
        gap = 7.0 + 3.0
        if ticks:
            pad: Any = ticks[0].get_pad()  # type: ignore[func-returns-value]
            gap = ticks[0].get_tick_padding() + float(pad) + 3.0
        if axis is ax.xaxis:
            below = axis.get_label_position() == "bottom"
            offset = (gap + 1.25 * size) / height_pt
            axis.set_label_coords(0.5, -offset if below else 1 + offset)
        else:
            left = axis.get_label_position() == "left"
            offset = (gap + 0.62 * size * _widest_tick_label(axis)) / width_pt
            axis.set_label_coords(-offset if left else 1 + offset, 0.5)
