"""Widget controls generated from a scenario's Params metadata (principle 1).

Each field's range, step, unit, choices and help text become a slider, a
checkbox or a dropdown with the same limits, so a control cannot produce a
value :func:`simcomm.scenarios.base.make_params` would refuse.  Sliders
report their value when it is *set* (``continuous_update=False``): a drag
costs one run, not one per pixel.
"""

from __future__ import annotations

import math
from typing import Any

import ipywidgets as widgets

from simcomm.scenarios.base import FieldSpec
from simcomm.viz.data import nice_step

__all__ = ["DESCRIPTION_WIDTH", "control_for", "decimals", "default_step", "seed_control",
           "until_control"]

#: Width reserved for a control's label ("mean time to repair (s)").
DESCRIPTION_WIDTH = "165px"
_CONTROL_WIDTH = "460px"


def _style() -> dict[str, str]:
    return {"description_width": DESCRIPTION_WIDTH}


def _layout() -> widgets.Layout:
    return widgets.Layout(width=_CONTROL_WIDTH, max_width="100%")


def default_step(lo: float, hi: float) -> float:
    """A slider step for a float range without one: 1, 2 or 5 × 10^k, ~500 steps."""
    span = hi - lo
    if not span > 0 or math.isinf(span):
        return 0.1
    return nice_step(span / 500)


def decimals(step: float) -> int:
    """How many decimals show a multiple of ``step`` exactly (0.0005 -> 4)."""
    for d in range(0, 10):
        if abs(round(step, d) - step) <= 1e-12 * max(1.0, abs(step)):
            return d
    return 10


def _description(spec: FieldSpec) -> str:
    """The label with its unit, unless the label already ends with it
    ("gateway workers", not "gateway workers (workers)")."""
    if not spec.unit or spec.label.split()[-1:] == [spec.unit]:
        return spec.label
    return f"{spec.label} ({spec.unit})"


def _tooltip(spec: FieldSpec) -> str:
    return f"{spec.help} — allowed: {spec.allowed()}" if spec.help else spec.allowed()


def control_for(spec: FieldSpec, value: Any = None) -> widgets.ValueWidget:
    """The control for one field, showing ``value`` (the field's default if None).

    * ``bool`` -> Checkbox
    * ``choices`` -> Dropdown of the choices
    * ``int`` / ``float`` with a range -> IntSlider / FloatSlider with that
      range and the field's step (a float without a step gets ~500 steps)
    * ``int`` / ``float`` without a range -> IntText / FloatText
    * anything else -> Text

    The description carries the unit; the tooltip carries the help text and
    the allowed values.
    """
    value = spec.default if value is None else value
    common: dict[str, Any] = {"description": _description(spec), "tooltip": _tooltip(spec),
                              "style": _style(), "layout": _layout()}
    if spec.type is bool:
        return widgets.Checkbox(value=bool(value), indent=True, **common)
    if spec.choices:
        return widgets.Dropdown(options=list(spec.choices), value=value, **common)
    if spec.type is int:
        if spec.range is not None:
            lo, hi = spec.range
            return widgets.IntSlider(value=int(value), min=math.ceil(lo),
                                     max=math.floor(hi), step=int(spec.step or 1),
                                     continuous_update=False, **common)
        return widgets.IntText(value=int(value), continuous_update=False, **common)
    if spec.type is float:
        if spec.range is not None:
            lo, hi = (float(x) for x in spec.range)
            step = float(spec.step) if spec.step else default_step(lo, hi)
            return widgets.FloatSlider(value=float(value), min=lo, max=hi, step=step,
                                       readout_format=f".{decimals(step)}f",
                                       continuous_update=False, **common)
        return widgets.FloatText(value=float(value), continuous_update=False, **common)
    return widgets.Text(value=str(value), continuous_update=False, **common)


def seed_control(seed: int) -> widgets.BoundedIntText:
    """The root seed (a whole number >= 0): another seed, another sample path."""
    return widgets.BoundedIntText(
        value=seed, min=0, max=2**31 - 1, step=1, description="seed",
        tooltip="root seed of every random stream: same seed + same settings = same run",
        style=_style(), layout=_layout())


def until_control(until: float, default: float) -> widgets.BoundedFloatText:
    """Simulated time to run, from 1/100 to 100 times the scenario's default."""
    lo = min(until, default / 100)
    hi = max(until, default * 100)
    return widgets.BoundedFloatText(
        value=until, min=lo, max=hi, step=default / 10, description="until (s)",
        tooltip=f"simulated seconds to run, from {lo:g} to {hi:g}", style=_style(),
        layout=_layout())
