"""``explore(scenario)``: controls for every parameter, re-run on change, see the views.

The dashboard is an ``ipywidgets.VBox``; displaying it in a notebook shows
a title and the scenario's description, then two columns:

* left: one control per Params field (generated from the metadata), the
  seed and the simulated time ``until``, and the buttons Run, "new seed"
  and "defaults";
* right: a status line with a progress bar that appears while a run takes
  longer than a moment, a message area (a cross-field ParamError is shown
  here, not raised), a banner when the run is overloaded, stuck or
  unfinished (:meth:`~simcomm.result.Result.warnings`), the key summary
  numbers with the busiest resource and what availability counts, and the
  scenario's views as PNG images, each replaced as soon as it is drawn.
  On a narrow page the right column wraps below the left one.

Setting any control's ``value`` -- by a learner releasing a slider, or by
Python code -- re-runs the simulation synchronously, which is what makes
the dashboard testable without a browser.  The last few runs are kept:
going back to settings seen before shows that run again at once (same
seed and params, same run).

Redrawing is the larger part of a re-run, so the dashboard keeps one
figure per view and draws each new run into it: the figure functions
update their artists' data instead of building axes, ticks and texts anew
(:func:`simcomm.viz.redraw`).
"""

from __future__ import annotations

import html
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import ipywidgets as widgets

from simcomm.api import prepare, simulate
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.scenarios import base
from simcomm.viz import data as viz_data
from simcomm.widgets import _render
from simcomm.widgets.controls import control_for, seed_control, until_control

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Dashboard", "explore"]

#: A run that has taken this long (wall seconds) shows the progress bar.
PROGRESS_AFTER = 0.25
#: Width of the controls column.
CONTROLS_WIDTH = "390px"
#: Figures are drawn 9 in wide at 72 dpi (648 px) and shrink to fit; a
#: column narrower than this would make their text too small to read, so
#: the figures wrap below the controls instead.
FIGURE_MIN = "480px"


class _Shown(NamedTuple):
    """What the dashboard keeps of a run to show it again: its HTML and PNGs."""

    summary: str
    banner: str
    warnings: list[str]
    pngs: dict[str, bytes]


class Dashboard(widgets.VBox):
    """An interactive dashboard for one scenario (see :func:`explore`).

    Attributes a notebook or a test may read:

    * ``controls`` -- ``{field: widget}`` for every Params field, plus
      ``"seed"`` and ``"until"``;
    * ``result`` / ``params`` -- the last successful run and its Params;
    * ``runs`` -- how many runs have been shown;
    * ``cache_hits`` -- of those, how many were settings seen before: the
      pictures and summary of the last ``cache`` (default 32) runs are kept,
      and since the same seed and params give the same run, moving a slider
      back shows the earlier run at once instead of simulating it again;
    * ``error`` -- the message of the last refused setting (None if fine);
    * ``warnings`` -- the shown run's :meth:`~simcomm.result.Result.warnings`
      (empty for a healthy run), also shown in ``banner``;
    * ``summary`` (HTML: the key numbers, the busiest resource, what
      availability counts), ``banner`` (HTML, empty unless ``warnings``),
      ``images`` (``{view: Image}``), ``status``, ``progress``, ``message``,
      ``buttons`` (``run``, ``new_seed``, ``defaults``) -- the display widgets;
    * ``timings`` -- wall seconds of the last run: ``simulate``,
      ``summary``, ``draw`` (all views), ``view_<name>`` (each view),
      ``first_view`` (until the first figure changed) and ``total``.
    """

    def __init__(self, scenario: str | base.Scenario, *, seed: int = 0,
                 until: float | None = None, views: Iterable[str] | str | None = None,
                 dpi: float = _render.DPI, cache: int = 32, **initial: Any) -> None:
        sc, params, until_ = prepare(scenario, seed, until, **initial)  # fails early
        self.scenario = sc
        self.views = _render.check_views(views, sc.views)
        self.dpi = dpi
        self._result: Result | None = None
        self._shown: tuple[Any, int, float] | None = None  # (params, seed, until) shown
        self.params: Any = None
        self.runs = 0
        self.error: str | None = None
        self.timings: dict[str, float] = {}
        self.cache_size = cache
        self.cache_hits = 0
        self.warnings: list[str] = []
        self._cache: OrderedDict[tuple[Any, int, float], _Shown] = OrderedDict()
        self._figures: dict[str, Figure] = {}  # one per view, redrawn run after run
        # and the figures of its two shapes before: a run of a shape seen lately (a
        # choice toggled back) is redrawn in its figure instead of one built anew
        self._earlier: dict[str, list[Figure]] = {}
        self._hold = False
        self._busy = False

        self.controls: dict[str, widgets.ValueWidget] = {
            spec.name: control_for(spec, getattr(params, spec.name)) for spec in sc.fields()}
        self.controls["seed"] = seed_control(seed)
        self.controls["until"] = until_control(until_, sc.until)
        for control in self.controls.values():
            control.observe(self._on_change, names="value")

        run_button = widgets.Button(description="Run", icon="play", tooltip="run again",
                                    layout=widgets.Layout(width="80px"))
        run_button.on_click(lambda _b: self.rerun())
        seed_button = widgets.Button(description="new seed", icon="random",
                                     tooltip="run again with the next seed",
                                     layout=widgets.Layout(width="110px"))
        seed_button.on_click(lambda _b: self._next_seed())
        reset_button = widgets.Button(description="defaults", icon="undo",
                                      tooltip="set every parameter back to its default",
                                      layout=widgets.Layout(width="100px"))
        reset_button.on_click(lambda _b: self.reset())
        self.progress = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="running…",
            layout=widgets.Layout(width="240px", visibility="hidden"))
        self.status = widgets.HTML(value="")
        self.status.add_class("simcomm-status")
        self.message = widgets.HTML(value="", layout=widgets.Layout(margin="0 0 0 4px"))
        self.summary = widgets.HTML(value="")
        self.summary.add_class("simcomm-summary-box")
        self.banner = widgets.HTML(value="")
        self.banner.add_class("simcomm-banner")
        self.images: dict[str, widgets.Image] = {
            name: widgets.Image(format="png", layout=widgets.Layout(
                max_width="100%", height="auto", object_fit="contain"))
            for name in self.views}
        for img in self.images.values():
            img.add_class("simcomm-figure")

        title = widgets.HTML(
            f"<b>{html.escape(sc.name)}</b> — {html.escape(sc.title)}"
            f"<div style='color:#555;font-size:12px;max-width:60em'>"
            f"{html.escape(sc.description)}</div>")
        for control in self.controls.values():
            control.layout.width = "100%"
        self.buttons = {"run": run_button, "new_seed": seed_button, "defaults": reset_button}
        buttons = widgets.HBox(list(self.buttons.values()))
        # controls on the left, always in sight of the figures on the right; on a
        # narrow page the figures wrap below
        left = widgets.VBox([*self.controls.values(), buttons],
                            layout=widgets.Layout(width=CONTROLS_WIDTH, flex="0 0 auto"))
        left.add_class("simcomm-controls")
        columns = f"repeat(auto-fill, minmax({FIGURE_MIN}, 1fr))"
        figures = widgets.GridBox(list(self.images.values()), layout=widgets.Layout(
            grid_template_columns=columns, grid_gap="6px", width="100%"))
        bar = widgets.HBox([self.status, self.progress],
                           layout=widgets.Layout(align_items="center"))
        right = widgets.VBox([bar, self.message, self.banner, self.summary, figures],
                             layout=widgets.Layout(flex="1 1 " + FIGURE_MIN, min_width="0",
                                                   padding="0 0 0 12px"))
        body = widgets.HBox([left, right], layout=widgets.Layout(flex_flow="row wrap",
                                                                 width="100%"))
        super().__init__([title, body])
        self.add_class("simcomm-dashboard")
        self.rerun()

    @property
    def result(self) -> Result | None:
        """The run shown now (None before the first).

        After settings seen before were shown from memory, the run is made
        again on first access: same seed and params, the same run.
        """
        if self._result is None and self._shown is not None:
            params, seed, until = self._shown
            self._result = simulate(self.scenario, params, seed, until)
        return self._result

    # -- reading and setting the controls --------------------------------
    def values(self) -> dict[str, Any]:
        """The Params field values the controls show now."""
        return {name: c.value for name, c in self.controls.items()
                if name not in ("seed", "until")}

    def update(self, **values: Any) -> bool:
        """Set several controls (``field=value``, also ``seed``/``until``), then run once;
        True if the run was shown (see :meth:`rerun`)."""
        unknown = [k for k in values if k not in self.controls]
        if unknown:
            raise ParamError(unknown[0], values[unknown[0]],
                             "one of the controls: " + ", ".join(self.controls))
        self._hold = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            self._hold = False
        return self.rerun()

    def reset(self) -> bool:
        """Every parameter back to its default (seed and until stay), then run."""
        defaults = self.scenario.defaults()
        return self.update(**{s.name: getattr(defaults, s.name) for s in self.scenario.fields()})

    def _next_seed(self) -> None:
        self.controls["seed"].value = int(self.controls["seed"].value) + 1

    def _on_change(self, _change: dict[str, Any]) -> None:
        if not self._hold:
            self.rerun()

    # -- running -----------------------------------------------------------
    def rerun(self) -> bool:
        """Run with the controls' values and redraw; True if shown, False if not.

        A :class:`~simcomm.errors.ParamError` (a cross-field check: each
        control alone only offers allowed values) is shown in the dashboard
        and the previous figures stay; so is any other error, with its type,
        because an exception raised in a widget callback is invisible in a
        notebook.
        """
        if self._busy:  # a control changed by our own code during a run
            return False
        self._busy = True
        t0 = time.perf_counter()
        try:
            try:
                sc, params, until = prepare(self.scenario, int(self.controls["seed"].value),
                                            float(self.controls["until"].value),
                                            **self.values())
            except ParamError as exc:
                self._show_error(f"Not run: {exc}")
                return False
            seed = int(self.controls["seed"].value)
            key = self._cache_key(params, seed, until)
            if key is not None and key in self._cache:
                return self._show_cached(key, t0)
            self.status.value = "<span style='color:#888'>running…</span>"
            timings: dict[str, float] = {}
            try:
                res = simulate(sc, params, seed, until,
                               progress=lambda f: self._progress(f, t0))
                timings["simulate"] = time.perf_counter() - t0
                summary = viz_data.summary(res)  # the figures find it there too
                timings["summary"] = time.perf_counter() - t0 - timings["simulate"]
            except Exception as exc:  # shown, not lost in the kernel log
                self._show_error(f"Run failed: {type(exc).__name__}: {exc}")
                return False
            self.progress.layout.visibility = "hidden"
            self.warnings = res.warnings()
            self.banner.value = _render.health_html(self.warnings)
            self.summary.value = _render.summary_html(summary, res.bottleneck()["text"])
            self._result, self.params, self._shown = res, params, (params, seed, until)
            self.runs += 1
            self.error = None
            self.message.value = ""
            self.status.value = "<span style='color:#888'>drawing…</span>"
            t_draw = time.perf_counter()
            failed: list[str] = []
            pngs: dict[str, bytes] = {}
            for name in self.views:  # each figure appears as soon as it is ready
                t_view = time.perf_counter()
                try:
                    kept = [*([self._figures[name]] if name in self._figures else []),
                            *self._earlier.get(name, [])]
                    fig = _render.draw_view(name, res, into=kept)
                    self._figures[name] = fig
                    self._earlier[name] = [f for f in kept if f is not fig][:2]
                    pngs[name] = _render.png_bytes(fig, self.dpi, close=False)
                except Exception as exc:
                    self._figures.pop(name, None)  # maybe half drawn: start afresh next time
                    self._earlier.pop(name, None)
                    failed.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                self.images[name].value = pngs[name]
                timings[f"view_{name}"] = time.perf_counter() - t_view
                timings.setdefault("first_view", time.perf_counter() - t0)
            timings["draw"] = time.perf_counter() - t_draw
            timings["total"] = time.perf_counter() - t0
            self.timings = timings
            if failed:  # the run itself is fine: its numbers stay
                self.error = "Drawing failed: " + "; ".join(failed)
                self.message.value = ("<div class='simcomm-error' style='color:#D55E00'>"
                                      f"{html.escape(self.error)}</div>")
            elif key is not None and self.cache_size > 0:
                self._cache[key] = _Shown(self.summary.value, self.banner.value,
                                          list(self.warnings), pngs)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            self.status.value = (
                f"<span style='color:#555'>run {self.runs}: seed {res.seed}, "
                f"{res.until:g} s simulated, shown in {timings['total']:.2f} s</span>")
            return True
        finally:
            self.progress.layout.visibility = "hidden"
            self._busy = False

    @staticmethod
    def _cache_key(params: Any, seed: int, until: float) -> tuple[Any, int, float] | None:
        try:
            hash(params)
        except TypeError:  # a Params with unhashable values: never cached
            return None
        return (params, seed, until)

    def _show_cached(self, key: tuple[Any, int, float], t0: float) -> bool:
        """Show a run made earlier with exactly these settings (same seed, same
        params: the same run, principle 4) without simulating or drawing again.

        Only the pictures and the summary are kept (a run's trace can be
        large); ``result`` runs it again if someone asks for it.
        """
        self._cache.move_to_end(key)
        shown = self._cache[key]
        self.summary.value = shown.summary
        self.banner.value = shown.banner
        self.warnings = list(shown.warnings)
        for name, png in shown.pngs.items():
            self.images[name].value = png
        if self._shown != key:
            self._result, self.params, self._shown = None, key[0], key
        self.runs += 1
        self.cache_hits += 1
        self.error = None
        self.message.value = ""
        self.timings = {"total": time.perf_counter() - t0, "cached": 1.0}
        self.status.value = (
            f"<span style='color:#555'>run {self.runs}: seed {key[1]}, {key[2]:g} s "
            "simulated, the same settings as an earlier run: shown from memory</span>")
        return True

    def _progress(self, fraction: float, t0: float) -> None:
        if time.perf_counter() - t0 > PROGRESS_AFTER:
            self.progress.value = fraction
            self.progress.layout.visibility = "visible"

    def _show_error(self, text: str) -> None:
        self.error = text
        self.message.value = (
            "<div class='simcomm-error' style='color:#D55E00;font-weight:600'>"
            f"{html.escape(text)}</div>")
        self.status.value = "<span style='color:#D55E00'>not run</span>"

    def close(self) -> None:
        """Close the widgets and let the kept figures go."""
        getattr(self, "_figures", {}).clear()  # absent if __init__ failed early
        getattr(self, "_earlier", {}).clear()
        super().close()

    def __repr__(self) -> str:
        return (f"<simcomm dashboard {self.scenario.name}: {self.runs} runs, "
                f"views {', '.join(self.views)}>")


def explore(scenario: str | base.Scenario, *, seed: int = 0, until: float | None = None,
            views: Iterable[str] | str | None = None, **initial: Any) -> Dashboard:
    """A dashboard to explore ``scenario``: move a control, watch the views change.

    ``initial`` sets starting values of Params fields (checked like
    :func:`simcomm.run` checks them: a bad value raises ParamError here,
    before anything runs).  ``views`` picks figures by name from
    :data:`simcomm.viz.VIEWS` (default: the scenario's own views).
    """
    return Dashboard(scenario, seed=seed, until=until, views=views, **initial)
