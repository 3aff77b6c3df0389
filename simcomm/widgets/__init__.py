"""ipywidgets dashboards: ``explore``, ``compare`` and ``playback``.

The only part of simcomm that imports ipywidgets (principle 7); the core
imports this package lazily, from :func:`simcomm.explore` and friends.

* :func:`explore` -- controls generated from a scenario's Params metadata;
  each change re-runs the simulation and redraws the scenario's views.
* :func:`compare` -- two settings side by side on shared axis scales, with
  the difference of the key numbers.
* :func:`playback` -- a Play button and a time slider over a run: the
  topology's health and load at each moment, and what happened then.
"""

from simcomm.widgets.compare import Comparison, compare
from simcomm.widgets.controls import control_for
from simcomm.widgets.dashboard import Dashboard, explore
from simcomm.widgets.playback import FloatPlay, Playback, playback

__all__ = ["Comparison", "Dashboard", "FloatPlay", "Playback", "compare", "control_for",
           "explore", "playback"]
