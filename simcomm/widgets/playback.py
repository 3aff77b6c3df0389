"""``playback(result)``: step through simulated time and watch a failure spread.

A Play button is linked in the browser (``jslink``) to a time slider over
``[0, until]``; at each time the topology is redrawn with every node's
health and load at that moment (:func:`simcomm.viz.topology` with ``at``),
and a short text says what happened near that time: faults and repairs,
and how the users' requests ended in the last step.

Redrawing stays cheap: the topology figure is drawn once, then only
updated in place (viz keeps the layout and changes colours, widths and
labels on the same axes); times snap to ``steps`` frames and each frame's
PNG is kept, so replaying costs nothing; and the Play interval grows to
the measured redraw time so the kernel is never handed frames faster than
it can draw them.
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
from traitlets import CFloat

from simcomm._checks import is_whole
from simcomm.api import run
from simcomm.errors import ParamError
from simcomm.result import FAILURES, Result
from simcomm.scenarios import base
from simcomm.widgets import _render

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FloatPlay", "Playback", "playback"]

#: Shortest time between two frames while playing (ms).
MIN_INTERVAL_MS = 250


class FloatPlay(widgets.Play):
    """A Play widget whose value, bounds and step are floats.

    The browser side of Play just adds ``step`` to ``value``, so it plays
    float times as well; only the Python traits need to allow them, which
    lets it be jslinked to a FloatSlider of seconds.
    """

    value = CFloat(0.0, help="current value").tag(sync=True)
    min = CFloat(0.0, help="min value").tag(sync=True)
    max = CFloat(100.0, help="max value").tag(sync=True)
    step = CFloat(1.0, help="increment step").tag(sync=True)


class Playback(widgets.VBox):
    """Time-step through one run (see :func:`playback`).

    * ``result`` -- the run shown; ``until`` its length;
    * ``play`` / ``slider`` -- the Play button and the time slider
      (``slider.min == 0``, ``slider.max == until``), jslinked;
    * ``image`` -- the topology at the current time; ``text`` -- what
      happened near it; ``time`` -- the time drawn last;
    * ``frames_drawn`` -- frames rendered (cache misses), ``redraws`` --
      times the picture changed; ``render_seconds`` -- last render time.
    """

    def __init__(self, result: Result, *, steps: int = 60, dpi: float = _render.DPI,
                 color_by: str = "utilisation") -> None:
        if not is_whole(steps) or steps < 1:
            raise ParamError("steps", steps, "a whole number >= 1")
        self.result = result
        self.until = float(result.until)
        self.steps = steps = int(steps)
        self.dt = self.until / steps
        self.dpi = dpi
        self.color_by = color_by
        self.frames_drawn = 0
        self.redraws = 0
        self.render_seconds = 0.0
        self.time: float | None = None
        self._frames: dict[int, bytes] = {}
        self._fig: Figure | None = None  # one figure, updated frame to frame
        self._ax: Axes | None = None
        self._prepare_tables()

        self.slider = widgets.FloatSlider(
            value=0.0, min=0.0, max=self.until, step=self.dt, description="time (s)",
            readout_format=".1f" if self.dt >= 0.1 else ".3g", continuous_update=False,
            style={"description_width": "60px"}, layout=widgets.Layout(width="520px"))
        # a hair above until: the browser adds step to value `steps` times, and
        # float rounding must not make the last sum exceed max and skip the last frame
        self.play = FloatPlay(value=0.0, min=0.0, max=self.until + 1e-9 * self.dt,
                              step=self.dt, interval=MIN_INTERVAL_MS, description="play",
                              tooltip="play the run forward in time")
        self.link = widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(
            max_width="100%", height="auto"))
        self.image.add_class("simcomm-figure")
        self.text = widgets.HTML(layout=widgets.Layout(min_height="4em"))
        self.slider.observe(lambda ch: self.show(ch["new"]), names="value")
        name = result.scenario.name if result.scenario else "world"
        title = widgets.HTML(
            f"<b>{html.escape(name)}</b>, seed {result.seed}: {self.until:g} s in "
            f"{steps} steps of {self.dt:g} s — press play and watch the nodes")
        super().__init__([title, widgets.HBox([self.play, self.slider]), self.image, self.text])
        self.add_class("simcomm-playback")
        self.show(0.0)

    # -- what happened near t ----------------------------------------------
    def _prepare_tables(self) -> None:
        """Arrays to answer "what happened in (t - dt, t]" with a searchsorted."""
        req = self.result.requests
        done = req[req["outcome"] != "pending"].sort_values("end", kind="stable")
        self._ends = done["end"].to_numpy(dtype=float)
        self._outcomes = done["outcome"].to_numpy(dtype=object)
        ev = self.result.events.sort_values("time", kind="stable")
        self._ev_times = ev["time"].to_numpy(dtype=float)
        self._ev_rows = list(ev.itertuples(index=False, name=None))

    def happened(self, t: float, window: float | None = None) -> dict[str, Any]:
        """Events and request outcomes in ``(t - window, t]`` (window: one step)."""
        window = self.dt if window is None else window
        lo = t - window
        i, j = np.searchsorted(self._ends, [lo, t], side="right")
        outcomes: dict[str, int] = {}
        for o in self._outcomes[i:j]:
            outcomes[o] = outcomes.get(o, 0) + 1
        k, m = np.searchsorted(self._ev_times, [lo, t], side="right")
        if t <= 0:  # events at time zero belong to the first frame
            k, m = 0, int(np.searchsorted(self._ev_times, 0.0, side="right"))
        return {"events": self._ev_rows[k:m], "outcomes": outcomes, "from": max(lo, 0.0),
                "to": t}

    def _text(self, t: float) -> str:
        h = self.happened(t)
        parts = []
        for time_, node, event, detail in h["events"][:8]:
            extra = f" ({html.escape(str(detail))})" if detail else ""
            parts.append(f"<li>{time_:.2f} s: <b>{html.escape(str(node))}</b> "
                         f"{html.escape(str(event))}{extra}</li>")
        if len(h["events"]) > 8:
            parts.append(f"<li>… and {len(h['events']) - 8} more events</li>")
        out = h["outcomes"]
        total = sum(out.values())
        failed = sum(out.get(o, 0) for o in FAILURES)
        if total:
            detail = ", ".join(f"{n} {html.escape(str(o))}" for o, n in sorted(
                out.items(), key=lambda kv: -kv[1]))
            colour = "#D55E00" if failed else "#009E73"
            reqs = (f"<span style='color:{colour}'>{total} requests ended: {detail}</span>")
        else:
            reqs = "no request ended"
        events = f"<ul style='margin:2px 0'>{''.join(parts)}</ul>" if parts else ""
        broken = ", ".join(f"<b>{html.escape(str(n))}</b> {html.escape(str(s))}"
                           for n, s in self.health(t).items() if s != "up")
        now = (f"<br><span style='color:#D55E00'>at {t:.1f} s: {broken}</span>" if broken
               else "")
        when = (f"{h['from']:.1f}–{h['to']:.1f} s" if t > 0 else "0 s, the start")
        return (f"<div class='simcomm-happened' style='font-size:12px'>"
                f"<b>{when}</b>: {reqs}{now}{events}</div>")

    def health(self, t: float) -> dict[str, str]:
        """``{node: "up" | "down" | "hung"}`` at time ``t`` (from viz's topology state)."""
        from simcomm import viz

        nodes = viz.topology_state(self.result, at=t)["nodes"]
        return {str(k): str(v) for k, v in nodes["health"].items()}

    # -- drawing -------------------------------------------------------------
    def frame(self, t: float) -> int:
        """The frame index nearest to time ``t``."""
        return int(min(max(round(t / self.dt), 0), self.steps))

    def show(self, t: float) -> None:
        """Draw the topology at the frame nearest ``t`` and say what happened."""
        from simcomm import viz

        n = self.frame(float(t))
        at = min(n * self.dt, self.until)
        if self.time == at and self.redraws:
            return
        png = self._frames.get(n)
        if png is None:
            t0 = time.perf_counter()
            if self._ax is None:
                fig = viz.topology(self.result, at=at, color_by=self.color_by)
                self._fig, self._ax = fig, fig.axes[0]
            else:  # same axes and Result: viz only updates colours, widths, labels
                viz.topology(self.result, at=at, color_by=self.color_by, ax=self._ax)
            assert self._fig is not None  # drawn just above
            png = _render.png_bytes(self._fig, self.dpi, close=False)
            self.render_seconds = time.perf_counter() - t0
            self._frames[n] = png
            self.frames_drawn += 1
            # throttle: never ask for frames faster than they can be drawn
            wanted = max(MIN_INTERVAL_MS, int(1500 * self.render_seconds))
            if abs(wanted - self.play.interval) > 50:
                self.play.interval = wanted
        self.image.value = png
        self.text.value = self._text(at)
        self.time = at
        self.redraws += 1

    def close(self) -> None:
        """Close the widgets and let the figure go.

        The figure is a bare matplotlib Figure that nothing else refers to,
        so dropping it is enough (clearing it could fail at interpreter exit).
        """
        self._fig = self._ax = None
        getattr(self, "_frames", {}).clear()  # absent if __init__ failed early
        super().close()

    def __repr__(self) -> str:
        return f"<simcomm playback: {self.until:g} s in {self.steps} steps>"


def playback(result_or_scenario: Result | str | base.Scenario, *, steps: int = 60,
             color_by: str = "utilisation", seed: int = 0, until: float | None = None,
             **params: Any) -> Playback:
    """Play a run forward in time: the topology at each moment, and what happened.

    Give a :class:`~simcomm.result.Result`, or a scenario (name) to run
    first with ``seed``, ``until`` and ``params``.  ``steps`` is the number
    of time steps the slider and the Play button move through;
    ``color_by`` is ``"utilisation"`` (how full each node's workers are:
    watch a hang fill its callers) or ``"health"`` (up / hung / down).
    """
    from simcomm.viz.topology import check_color_by

    check_color_by(color_by)  # before a scenario is run for nothing
    if isinstance(result_or_scenario, Result):
        extra = dict(params, **({} if until is None else {"until": until}))
        if extra:
            key = next(iter(extra))
            raise ParamError(key, extra[key], "nothing: the Result given has already run")
        return Playback(result_or_scenario, steps=steps, color_by=color_by)
    res = run(result_or_scenario, seed=seed, until=until, **params)
    return Playback(res, steps=steps, color_by=color_by)
