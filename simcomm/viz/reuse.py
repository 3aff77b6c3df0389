"""Draw a figure again by updating its artists instead of building new ones.

A dashboard redraws the same views after every slider move.  Building a
figure from scratch costs far more than the data in it: new axes, new tick
objects, new texts.  So every figure function draws through a
:class:`Keeper`, which holds the artists it made on one Axes under stable
keys.  The first time a key is asked for, the artist is created; the next
time (the same function drawing on the same Axes again, for the next
run), the existing artist gets the new data and properties; artists not
asked for in a pass are removed at its end.  One code path draws both the
first and every later time, so a redraw cannot drift from a fresh drawing.

    >>> k = keeper(ax, "latency_over_time")     # doctest: +SKIP
    >>> k.line("outcome:ok", x, y, color="green")  # created, or updated
    >>> k.finish()                               # drop what was not drawn now

Figure functions set their axes' limits explicitly, so the data limits an
earlier run left behind never decide what a redraw shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, StepPatch
from matplotlib.text import Text

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.legend import Legend

__all__ = ["Keeper", "active", "keeper", "keeper_of", "legend"]

#: Where an Axes keeps its Keeper (an attribute: a WeakKeyDictionary would
#: never let go, since the artists refer back to their Axes).
_ATTR = "_simcomm_keeper"


class Keeper:
    """The artists one figure function drew on one Axes, by key.

    ``fresh`` is True on the first pass (nothing to update yet): figure
    functions style the axes only then.  Between :func:`keeper` and
    :meth:`finish` the keeper is *active* on its Axes, so helpers such as
    :func:`simcomm.viz.fault_bands` called in the same pass add their
    artists to it too.
    """

    def __init__(self, ax: Axes, owner: str) -> None:
        self.ax = ax
        self.owner = owner
        self.artists: dict[str, Artist] = {}
        self.fresh = True
        self.passes = 0
        self._seen: dict[str, None] = {}  # keys drawn in this pass, in order
        self._active = False

    # -- the pass ------------------------------------------------------------
    def _begin(self) -> None:
        self._seen = {}
        self._active = True
        self.passes += 1

    def finish(self) -> None:
        """Remove the artists not drawn in this pass and put the others in the
        order this pass drew them, as a fresh drawing would have them (equal
        z-orders draw, and legends list, in that order); the next pass updates.
        """
        for key in [k for k in self.artists if k not in self._seen]:
            _remove(self.artists.pop(key))
        children = getattr(self.ax, "_children", None)  # matplotlib >= 3.5
        if isinstance(children, list) and not self.fresh:
            present = {id(c) for c in children}  # (an adopted container is not a child)
            mine = [a for k in self._seen if id(a := self.artists[k]) in present]
            ids = {id(a) for a in mine}
            children[:] = [c for c in children if id(c) not in ids] + mine
        self._active = False
        self.fresh = False

    def _get(self, key: str, make: Callable[[], Artist]) -> tuple[Artist, bool]:
        if key in self._seen:
            raise ValueError(f"artist key {key!r} drawn twice in one pass")
        self._seen[key] = None
        artist = self.artists.get(key)
        if artist is not None and artist.axes is self.ax:
            return artist, False
        artist = make()
        self.artists[key] = artist
        return artist, True

    # -- artists -------------------------------------------------------------
    def line(self, key: str, x: Any, y: Any, **props: Any) -> Line2D:
        """A Line2D with data ``(x, y)`` (markers, steps or plain lines)."""
        line, new = self._get(key, lambda: Line2D(x, y, **props))
        if new:
            self.ax.add_line(line)  # type: ignore[arg-type]
        else:
            line.set_data(x, y)  # type: ignore[attr-defined]
            line.set(**props)
        line.set_gid(props.get("gid", key))
        return line  # type: ignore[return-value]

    def stairs(self, key: str, values: Any, edges: Any, baseline: Any = 0.0,
               **props: Any) -> StepPatch:
        """A StepPatch: a step curve, or with ``fill=True`` the area between it and
        ``baseline`` (a number or an array: stacked areas)."""
        patch, new = self._get(key, lambda: StepPatch(values, edges, baseline=baseline,
                                                      **props))
        if new:
            self.ax.add_artist(patch)  # limits are set by the figure, not from data
            patch.set_clip_path(self.ax.patch)
        else:
            patch.set_data(values, edges, baseline)  # type: ignore[attr-defined]
            patch.set(**props)
        patch.set_gid(props.get("gid", key))
        return patch  # type: ignore[return-value]

    def polys(self, key: str, verts: Any, **props: Any) -> PolyCollection:
        """A PolyCollection of ``verts`` (bands, bars)."""
        coll, new = self._get(key, lambda: PolyCollection(verts, **props))
        if new:
            self.ax.add_collection(coll, autolim=False)  # type: ignore[arg-type]
        else:
            coll.set_verts(verts)  # type: ignore[attr-defined]
            coll.set(**props)
        coll.set_gid(props.get("gid", key))
        return coll  # type: ignore[return-value]

    def text(self, key: str, x: float, y: float, s: str, **props: Any) -> Text:
        """A Text at ``(x, y)`` (data coordinates unless ``transform`` says otherwise)."""
        text, new = self._get(key, lambda: self.ax.text(x, y, s, **props))
        if not new:
            text.set_position((x, y))  # type: ignore[attr-defined]
            text.set_text(s)  # type: ignore[attr-defined]
            text.set(**props)
        text.set_gid(props.get("gid", key))
        return text  # type: ignore[return-value]

    def arrow(self, key: str, start: tuple[float, float], end: tuple[float, float],
              **props: Any) -> FancyArrowPatch:
        """A FancyArrowPatch from ``start`` to ``end``."""
        arrow, new = self._get(key, lambda: FancyArrowPatch(start, end, **props))
        props = dict(props)
        if new:
            self.ax.add_artist(arrow)  # not add_patch: limits are set by the figure
        else:
            arrow.set_positions(start, end)  # type: ignore[attr-defined]
            for name in ("shrinkA", "shrinkB"):  # constructor-only: plain attributes
                if name in props:
                    setattr(arrow, name, props.pop(name))
            arrow.set(**props)
        arrow.set_gid(props.get("gid", key))
        return arrow  # type: ignore[return-value]

    def adopt(self, key: str, artist: Any) -> Any:
        """Keep an artist made elsewhere (an errorbar's parts, an axhspan) for one
        pass: it is removed and made again next time."""
        old = self.artists.get(key)
        if old is not None and old is not artist:
            old.remove()
        self._seen[key] = None
        self.artists[key] = artist
        return artist


def _remove(artist: Any) -> None:
    """Take ``artist`` off its axes, unless something else already did."""
    if getattr(artist, "axes", None) is not None or not isinstance(artist, (
            Line2D, Text, PolyCollection, StepPatch, FancyArrowPatch)):
        artist.remove()


def keeper(ax: Axes, owner: str) -> Keeper:
    """The Keeper of ``owner`` (a figure function's name) on ``ax``, its pass begun.

    If ``ax`` holds a drawing by another function, its artists are removed
    first: the new drawing replaces it.
    """
    k = getattr(ax, _ATTR, None)
    if k is None or k.owner != owner:
        if k is not None:
            for artist in k.artists.values():
                _remove(artist)
        k = Keeper(ax, owner)
        setattr(ax, _ATTR, k)
    k._begin()
    return k


def active(ax: Axes) -> Keeper | None:
    """The Keeper whose pass is under way on ``ax``, if any."""
    k = getattr(ax, _ATTR, None)
    return k if k is not None and k._active else None


def keeper_of(ax: Axes) -> Keeper | None:
    """The Keeper of the last drawing on ``ax`` (None if none drew there)."""
    return getattr(ax, _ATTR, None)


_LOOKS = ("get_color", "get_facecolor", "get_edgecolor", "get_linestyle", "get_linewidth",
          "get_marker", "get_markersize", "get_markerfacecolor", "get_alpha", "get_hatch",
          "get_fill")


def _look(artist: Any) -> str:
    """What a legend copies from a handle when it is made, as a comparable text."""
    parts = [type(artist).__name__]
    for name in _LOOKS:
        get = getattr(artist, name, None)
        if get is not None:
            value = get()
            parts.append(repr(np.asarray(value).tolist() if isinstance(value, np.ndarray)
                              else value))
    return "|".join(parts)


def legend(ax: Axes, handles: Sequence[Any], labels: Sequence[str],
           **kwargs: Any) -> Legend | None:
    """``ax.legend(handles, labels, **kwargs)``, unless ``ax`` already shows that legend.

    A legend copies its handles' look when it is made, and making one costs
    more than drawing it; a redraw whose entries read and look the same as
    before keeps the one it has.  With no handles, an earlier legend goes.
    """
    old = ax.get_legend()
    if not handles:
        if old is not None:
            old.remove()
        return None
    key = (tuple(labels), tuple(_look(h) for h in handles), repr(sorted(kwargs.items())))
    was = getattr(old, "_simcomm_key", None)
    if old is not None and was == key:
        return old
    if old is not None and was is not None and was[1:] == key[1:]:
        # the same entries with other words (a count in a label): its texts take the
        # new ones, laid out again when drawn, as a new legend would have them
        for text, label in zip(old.texts, labels, strict=True):
            text.set_text(label)
        old._simcomm_key = key  # type: ignore[attr-defined]
        return old
    leg = ax.legend(list(handles), list(labels), **kwargs)
    leg._simcomm_key = key  # type: ignore[attr-defined]
    return leg
