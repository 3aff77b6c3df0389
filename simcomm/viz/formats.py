"""Message formats side by side: what one message costs, and what that does under load.

* :func:`formats_comparison` -- bars from
  :func:`simcomm.scenarios.formats.format_table`: bytes on the wire, CPU
  per message and (if the table has it) time to cross the link.
* :func:`formats_sweep_figure` -- lines from
  :func:`simcomm.sweeps.format_sweep`: mean latency and
  throughput of each format as load (or bandwidth, or order size) rises.

Each format keeps one colour in both figures (Okabe & Ito's palette).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from simcomm.errors import ParamError
from simcomm.viz.style import GREY, INK, OKABE_ITO, new_figure, style_axes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["FORMAT_COLORS", "formats_comparison", "formats_sweep_figure"]

#: One fixed colour per wire format.
FORMAT_COLORS: dict[str, str] = {
    "json": OKABE_ITO["blue"],
    "xml": OKABE_ITO["vermillion"],
    "protobuf": OKABE_ITO["bluish_green"],
    "avro": OKABE_ITO["reddish_purple"],
}


def _color(name: str) -> str:
    return FORMAT_COLORS.get(name, GREY)


def _bytes_label(n: float) -> str:
    if n >= 10_000:
        return f"{n / 1000:.0f} kB"
    if n >= 1000:
        return f"{n / 1000:.1f} kB"
    return f"{n:.0f} B"


def _time_label(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def formats_comparison(df: pd.DataFrame) -> Figure:
    """Bars per format: bytes on the wire, CPU per message, time on the link.

    What the learner sees: one row per format (in the table's order), one
    panel per cost, each bar labelled with its value -- the text formats'
    long bars against the binary formats' short ones.  CPU is encode plus
    decode of one message (what its sender and its receiver pay together);
    the third panel appears when the table was made with a bandwidth.
    """
    need = {"format", "bytes", "cpu_s"}
    if not need <= set(df.columns):
        raise ParamError("df", f"columns {list(df.columns)}",
                         "the DataFrame returned by simcomm.scenarios.formats.format_table")
    panels = [("bytes", "bytes on the wire", _bytes_label),
              ("cpu_s", "CPU per message (encode + decode)", _time_label)]
    if "transmit_s" in df.columns:
        bw = df.attrs.get("bandwidth_mbps")
        panels.append(("transmit_s", f"time to cross a {bw:g} Mbit/s link" if bw
                       else "time to cross the link", _time_label))
    fig = new_figure(3.3 * len(panels) + 1.0, 0.45 * len(df) + 1.6)
    axes = fig.subplots(1, len(panels), sharey=True)
    names = [str(n) for n in df["format"]]
    y = np.arange(len(names))
    colors = [_color(n) for n in names]
    for ax, (col, title, label) in zip(np.atleast_1d(axes), panels, strict=True):
        style_axes(ax)
        ax.grid(False, axis="y")
        values = df[col].to_numpy(dtype=float)
        ax.barh(y, values, color=colors, height=0.6, gid=f"bars:{col}")
        top = float(np.nanmax(values)) if len(values) else 1.0
        for yi, v in zip(y, values, strict=True):
            ax.text(v + 0.02 * top, yi, label(v), va="center", fontsize=8, color=INK)
        ax.set_xlim(0, 1.35 * top if top > 0 else 1)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xticks([])  # every bar carries its value
        ax.spines["bottom"].set_visible(False)
    first = np.atleast_1d(axes)[0]
    first.set_yticks(y, names)
    first.invert_yaxis()
    payload = df.attrs.get("payload")
    fig.suptitle("One message in each format" + (f": {payload}" if payload else ""),
                 x=0.01, ha="left", fontsize=11)
    return fig


#: Axis labels of the swept parameters and of the measured columns.
_X_LABELS = {"request_rate": "request rate (req/s)", "bandwidth_mbps": "bandwidth (Mbit/s)",
             "order_lines": "order size (line items)", "network_latency": "network latency (s)",
             "service_workers": "order service workers", "gateway_workers": "gateway workers",
             "service_time": "service time (s)"}
_PANELS = {
    "mean_latency": ("Latency", "mean latency of ok requests (s)"),
    "p95": ("Tail latency", "95th percentile latency of ok requests (s)"),
    "throughput": ("Throughput", "completed requests per second"),
    "pending": ("Backlog", "requests unanswered at the end"),
    "gateway_busy": ("Gateway pool", "share of gateway workers busy"),
    "service_busy": ("Order service pool", "share of order-service workers busy"),
}


def formats_sweep_figure(df: pd.DataFrame,
                         panels: Sequence[str] = ("mean_latency", "throughput"), *,
                         log: bool | None = None) -> Figure:
    """Each format's results against the swept parameter, one panel per measure.

    What the learner sees: side-by-side panels sharing the x axis (the
    parameter :func:`~simcomm.sweeps.format_sweep` varied, e.g. the
    request rate), one line per format in its fixed colour.  By default the
    left panel is the mean latency of ok requests -- flat while the workers
    keep up, then shooting up where a format's coding cost saturates them --
    and the right one the completed requests per second; when the x axis is
    the request rate a dashed diagonal shows the offered load, and a format
    whose line falls below it is leaving a backlog.  ``panels`` picks other
    columns of the sweep (``p95``, ``pending``, ``gateway_busy``,
    ``service_busy``).  ``log`` makes latency axes logarithmic (default: when
    latencies span more than two decades).
    """
    field = df.attrs.get("field")
    panels = [panels] if isinstance(panels, str) else list(panels)
    if field is None or not {"format", field, *panels} <= set(df.columns):
        raise ParamError("df", f"columns {list(df.columns)}",
                         "the DataFrame returned by simcomm.sweeps.format_sweep, "
                         "and panels among its columns")
    if not panels:
        raise ParamError("panels", panels, "at least one column of the sweep to draw")
    fig = new_figure(max(7.0, 4.4 * len(panels) + 1.4), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharex=True))
    xs = np.sort(df[field].unique().astype(float))
    log_x = bool(field == "bandwidth_mbps" and xs.size and xs.min() > 0
                 and xs.max() / xs.min() > 50)
    for ax, col in zip(axes, panels, strict=True):
        style_axes(ax)
        for name, part in df.groupby("format", sort=False):
            part = part.sort_values(field)
            ax.plot(part[field].to_numpy(dtype=float), part[col].to_numpy(dtype=float),
                    marker="o", color=_color(str(name)), label=str(name),
                    gid=f"{col}:{name}")
        if col == "throughput" and field == "request_rate":
            ax.plot(xs, xs, linestyle="--", color=GREY, linewidth=1.2, label="offered load",
                    gid="offered")
        values = df[col].to_numpy(dtype=float)
        if col in ("mean_latency", "p95"):
            ok = values[np.isfinite(values) & (values > 0)]
            use_log = log if log is not None else bool(ok.size and ok.max() / ok.min() > 100)
            if use_log:
                ax.set_yscale("log")
            else:
                ax.set_ylim(bottom=0)
        elif col.endswith("_busy"):
            ax.set_ylim(0, 1.05)
        else:
            ax.set_ylim(bottom=0)
        if log_x:
            ax.set_xscale("log")
        title, ylabel = _PANELS.get(col, (col.replace("_", " "), col.replace("_", " ")))
        if ax.get_yscale() == "log":
            ylabel += ", log scale"
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(_X_LABELS.get(field, field.replace("_", " ")))
    handles, labels = axes[-1].get_legend_handles_labels()
    axes[0].legend(handles, labels, loc="best", fontsize=8, frameon=False)
    params = df.attrs.get("params") or {}
    fixed = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in params.items())
    until = df.attrs.get("until")
    what = _X_LABELS.get(field, field).split(" (")[0]
    details = ", ".join(filter(None, [fixed, f"{until:g} s per run" if until else ""]))
    fig.suptitle(f"The formats as the {what} varies" + (f" · {details}" if details else ""),
                 x=0.01, ha="left", fontsize=10)
    return fig
