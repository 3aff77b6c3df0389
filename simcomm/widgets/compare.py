"""``compare(scenario, a={...}, b={...})``: two settings side by side, on the same scales.

Both settings run with the same seed (common random numbers: the
difference you see is the settings', not luck's).  Each view is drawn for
both sides, then corresponding axes get the union of their limits before
the figures are rendered, so a latency of one second is the same height in
both columns.  Above each column, that run's banner if it was overloaded,
stuck or unfinished (:meth:`~simcomm.result.Result.warnings`), its key
numbers and its busiest resource; below them, a table of the key numbers
and B − A.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets as widgets

from simcomm.api import prepare, simulate
from simcomm.result import Result
from simcomm.scenarios import base
from simcomm.widgets import _render

__all__ = ["Comparison", "compare"]

Limits = list[tuple[tuple[float, float], tuple[float, float]]]


def _label(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in settings.items()) or "defaults"


class Comparison(widgets.VBox):
    """Two runs of one scenario side by side (see :func:`compare`).

    * ``results`` / ``params`` / ``summaries`` / ``warnings`` -- ``{"a": ...,
      "b": ...}`` (``warnings``: each run's ``Result.warnings()``, shown as a
      banner over its column);
    * ``difference`` -- B − A of the key summary numbers;
    * ``limits`` -- ``{view: {"a": [(xlim, ylim), ...], "b": [...]}}``, the
      axis limits each side was rendered with (equal by construction);
    * ``images`` -- ``{"a": {view: Image}, "b": {view: Image}}``;
    * ``heads`` -- ``{"a": HTML, "b": HTML}``: each column's settings, banner,
      key numbers and busiest resource.
    """

    def __init__(self, scenario: str | base.Scenario, a: Mapping[str, Any],
                 b: Mapping[str, Any], *, seed: int = 0, until: float | None = None,
                 views: Iterable[str] | str | None = None, dpi: float = _render.DPI,
                 names: tuple[str, str] = ("A", "B")) -> None:
        sc, pa, until_ = prepare(scenario, seed, until, **dict(a))  # both checked first
        _, pb, _ = prepare(sc, seed, until_, **dict(b))
        self.scenario = sc
        self.views = _render.check_views(views, sc.views)
        self.settings = {"a": dict(a), "b": dict(b)}
        self.params = {"a": pa, "b": pb}
        self.results: dict[str, Result] = {side: simulate(sc, p, seed, until_)
                                           for side, p in self.params.items()}
        self.summaries = {side: r.summary() for side, r in self.results.items()}
        self.warnings = {side: r.warnings() for side, r in self.results.items()}
        self.difference = _render.difference(self.summaries["a"], self.summaries["b"])
        self.limits: dict[str, dict[str, Limits]] = {}
        self.images: dict[str, dict[str, widgets.Image]] = {"a": {}, "b": {}}
        for name in self.views:
            figs = {side: _render.draw_view(name, r) for side, r in self.results.items()}
            _render.unify_limits([figs["a"], figs["b"]])
            self.limits[name] = {side: _render.axes_limits(f) for side, f in figs.items()}
            for side, fig in figs.items():
                self.images[side][name] = widgets.Image(
                    value=_render.png_bytes(fig, dpi), format="png",
                    layout=widgets.Layout(max_width="100%", height="auto"))

        columns = []
        self.heads: dict[str, widgets.HTML] = {}
        for side, name in zip(("a", "b"), names, strict=True):
            head = widgets.HTML(
                f"<b>{html.escape(name)}</b>: {html.escape(_label(self.settings[side]))}"
                + _render.health_html(self.warnings[side])
                + _render.summary_html(self.summaries[side],
                                       self.results[side].bottleneck()["text"]))
            head.add_class(f"simcomm-compare-{side}")
            self.heads[side] = head
            columns.append(widgets.VBox(
                [head, *self.images[side].values()],
                layout=widgets.Layout(width="50%", min_width="0", padding="0 4px")))
        title = widgets.HTML(
            f"<b>{html.escape(sc.name)}</b> — {html.escape(sc.title)}: "
            f"{html.escape(names[0])} vs {html.escape(names[1])}, seed {seed}, "
            f"{until_:g} s simulated each; axes share their scales")
        table = widgets.HTML(_render.diff_html(self.summaries["a"], self.summaries["b"], names))
        super().__init__([title, widgets.HBox(columns), table])
        self.add_class("simcomm-compare")

    def __repr__(self) -> str:
        return (f"<simcomm comparison {self.scenario.name}: A {_label(self.settings['a'])} "
                f"vs B {_label(self.settings['b'])}>")


def compare(scenario: str | base.Scenario, a: Mapping[str, Any] | None = None,
            b: Mapping[str, Any] | None = None, *, seed: int = 0, until: float | None = None,
            views: Iterable[str] | str | None = None) -> Comparison:
    """Run ``scenario`` with settings ``a`` and ``b`` (field=value dicts; missing
    fields keep their defaults) and show them side by side on shared scales,
    with the difference of the key summary numbers.  Both are checked before
    either runs; both use ``seed``."""
    return Comparison(scenario, a or {}, b or {}, seed=seed, until=until, views=views)
