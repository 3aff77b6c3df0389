"""An Agg canvas that keeps the glyphs of the texts it drew, for dashboards.

Profiling a dashboard re-run showed that most of the time spent rendering
its figures goes to text: matplotlib >= 3.11 lays out every string with
FreeType and rasterises it glyph by glyph in a Python loop, on every draw,
although a redrawn dashboard figure shows mostly the same texts at the
same places (tick labels, axis labels, titles, legend entries).

:class:`GlyphCachingCanvas` renders exactly like
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`, except that its
renderer remembers, for each text it draws, the glyph bitmaps and where
they go -- keyed by everything that decides them (the string, the font and
its size, the angle, the exact position in pixels, dpi, hinting,
antialiasing).  Drawing the same text at the same place again then costs
one C call per glyph.  The pixels are the same (the same bitmaps go through
the same ``draw_text_image`` calls; a test compares whole images), only the
colour comes from the drawing at hand.

It relies on the Agg renderer's internals of matplotlib 3.11
(``_draw_text_glyphs_and_boxes``, ``FT2Font._layout``/``_render_glyph``).
When they are not there, :data:`SUPPORTED` is False and the canvas is
plain Agg.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
from matplotlib.backends import backend_agg
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg

__all__ = ["CACHE_SIZE", "SUPPORTED", "GlyphCachingCanvas"]

#: Texts (not glyphs) each canvas remembers; the least recently drawn go first.
#: A dashboard figure shows 30-80 texts, a playback frame a few dozen.
CACHE_SIZE = 2000

SUPPORTED = (hasattr(RendererAgg, "_draw_text_glyphs_and_boxes")
             and hasattr(backend_agg, "get_hinting_flag")
             and hasattr(backend_agg, "RenderMode"))

_Glyphs = tuple[tuple[np.ndarray, int, int], ...]

#: Each font's height metrics at a size and dpi (a few dozen in a session).
_HEIGHTS: dict[Any, tuple[Any, Any, Any]] = {}


class _GlyphCachingRenderer(RendererAgg):
    """RendererAgg whose ``draw_text`` replays glyphs drawn before at the same place."""

    def __init__(self, width: float, height: float, dpi: float,
                 cache: OrderedDict[Any, _Glyphs]) -> None:
        super().__init__(width, height, dpi)
        self._glyphs = cache
        self.hits = 0
        self.misses = 0

    def draw_text(self, gc: Any, x: float, y: float, s: str, prop: Any, angle: float,
                  ismath: Any = False, mtext: Any = None) -> None:
        if ismath:  # mathtext has its own path (log-scale tick labels): not cached
            super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
            return
        features = mtext.get_fontfeatures() if mtext is not None else None
        language = mtext.get_language() if mtext is not None else None
        flags = backend_agg.get_hinting_flag()
        antialiased = bool(gc.get_antialiased())
        key = (s, hash(prop), prop.get_size_in_points(), angle, x, y, self.dpi, self.height,
               None if features is None else tuple(features), language, flags, antialiased)
        glyphs = self._glyphs.get(key)
        if glyphs is None:
            self.misses += 1
            glyphs = self._render(x, y, s, prop, angle, features, language, flags, antialiased)
            self._glyphs[key] = glyphs
            if len(self._glyphs) > CACHE_SIZE:
                self._glyphs.popitem(last=False)
        else:
            self.hits += 1
            self._glyphs.move_to_end(key)
        for buffer, left, bottom in glyphs:
            self._renderer.draw_text_image(buffer, left, bottom, 0, gc)

    def _get_font_height_metrics(self, prop: Any) -> tuple[Any, Any, Any]:
        """A font's ascent, descent and line gap in pixels, as ``Text._get_layout``
        (matplotlib 3.11) reads them from the font's tables on every layout of
        every text -- unless the renderer answers, as here, once per font and
        size: a fifth of a dashboard figure's drawing, for the same numbers."""
        key = (hash(prop), prop.get_size_in_points(), self.dpi)
        metrics = _HEIGHTS.get(key)
        if metrics is None:
            from matplotlib.font_manager import fontManager, get_font

            font: Any = get_font(fontManager._find_fonts_by_props(prop))
            metrics = (None, None, None)
            for name, gap, ascent, descent in (
                    ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
                    ("hhea", "lineGap", "ascent", "descent")):
                table = font.get_sfnt_table(name)
                if table is None:
                    continue
                scale = (1 / font.get_sfnt_table("head")["unitsPerEm"]
                         * prop.get_size_in_points() * self.dpi / 72)
                metrics = (table[ascent] * scale, -table[descent] * scale, table[gap] * scale)
                break
            _HEIGHTS[key] = metrics
        return metrics

    def _render(self, x: float, y: float, s: str, prop: Any, angle: float, features: Any,
                language: Any, flags: Any, antialiased: bool) -> _Glyphs:
        """The glyph bitmaps of ``s`` and where they go: what
        ``RendererAgg.draw_text`` computes (matplotlib 3.11) before drawing."""
        font = self._prepare_font(prop)
        items = font._layout(s, flags=flags, features=features, language=language)
        size = prop.get_size_in_points()
        cos = math.cos(math.radians(angle))
        sin = math.sin(math.radians(angle))
        rotation = (0x10000 * np.array([[cos, -sin], [sin, cos]])).round().astype(int)
        mode = backend_agg.RenderMode.NORMAL if antialiased else backend_agg.RenderMode.MONO
        out = []
        for item in items:
            ft, dx, dy = item.ft_object, item.x, item.y  # dy is upwards
            ft.set_size(size, self.dpi)
            ft._set_transform(rotation, [round(0x40 * (x + dx * cos - dy * sin)),
                                         round(0x40 * (self.height - y + dx * sin
                                                       + dy * cos))])
            bitmap = ft._render_glyph(item.glyph_index, flags, mode)
            buffer = np.array(bitmap.buffer)  # our own copy: FreeType reuses its own
            if not antialiased:
                buffer *= 0xFF
            out.append((buffer, bitmap.left, int(self.height) - bitmap.top + buffer.shape[0]))
        return tuple(out)


class GlyphCachingCanvas(FigureCanvasAgg):
    """FigureCanvasAgg that draws a text seen before at the same place from memory.

    Attach it to a figure with ``GlyphCachingCanvas(fig)``; ``fig.canvas``
    is then this canvas.  The cache lives as long as the canvas (that is,
    as long as the figure keeps it).
    """

    def __init__(self, figure: Any = None) -> None:
        super().__init__(figure)
        self._glyph_cache: OrderedDict[Any, _Glyphs] = OrderedDict()

    def get_renderer(self) -> RendererAgg:
        if not SUPPORTED:
            return super().get_renderer()
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key:
            self.renderer = _GlyphCachingRenderer(w, h, self.figure.dpi, self._glyph_cache)
            self._lastKey = key  # type: ignore[assignment]
        return self.renderer
