"""Draw the pictures the README shows, from the package itself.

    .venv/bin/python docs/make_pictures.py

Each picture is a simcomm figure of a fixed, seeded run, so running this
again after a change to the engine or the figures redraws them faithfully.
"""

from __future__ import annotations

from pathlib import Path

import simcomm
from simcomm import viz

HERE = Path(__file__).resolve().parent


def cascade() -> Path:
    """One hung service exhausts the worker pools of all its callers."""
    res = simcomm.run("chain", seed=1, last_service_hangs=True)
    fig = viz.pool_usage(res)
    path = HERE / "cascade.png"
    fig.savefig(path, dpi=90)
    viz.close(fig)
    return path


def main() -> None:
    for make in (cascade,):
        print(f"wrote {make().relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
