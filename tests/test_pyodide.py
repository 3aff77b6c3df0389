"""The course's default paths do nothing Pyodide cannot do (the JupyterLite site).

In JupyterLite the kernel is Pyodide: CPython compiled to WebAssembly,
running inside the browser tab.  There ``threading.Thread.start`` raises
("can't start new thread"), there is no fork, no subprocess and no process
pool, and asyncio's loop is the browser's, already running: a
``run_until_complete`` fails.  These tests run what a learner runs -- every
notebook's dashboard cell (``simcomm.explore(...)`` with its own arguments,
simulated time capped to keep the test cheap), a slider move, ``compare``,
``playback`` of a scenario, a long ``simcomm.run`` with its tqdm bar, a
default ``simcomm.sweep`` -- with those entry points replaced
by recorders that raise as Pyodide does, and fail if anything called them,
even a caller that catches the error (tqdm does, then warns and carries on
without its monitor thread).  Importing such modules is harmless (Pyodide
has them; matplotlib and IPython import subprocess anyway): starting is what
fails.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import multiprocessing.process
import os
import re
import subprocess
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import simcomm
from simcomm import api

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: A dashboard cell: what the browser test runs too (tests/test_browser.py).
DASHBOARD = re.compile(r"\bsimcomm\.explore\(")
#: Simulated seconds a dashboard here runs at most: the paths are the same, the
#: runs shorter (every notebook's dashboard at full length costs ~20 s of CPU,
#: about half of it drawing, which stays).
UNTIL = 10.0


class Refused(RuntimeError):
    """What a recorder raises: the call Pyodide would refuse."""


@contextlib.contextmanager
def pyodide_refusals(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Replace thread, process, subprocess and event-loop starts by recorders.

    Yields the list of what was attempted; each attempt also raises
    :class:`Refused`, as Pyodide would raise there.
    """
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def recorder(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise Refused(f"{what}: Pyodide cannot do this")
        return recorder

    targets = [
        (threading.Thread, "start", "threading.Thread.start"),
        (multiprocessing.process.BaseProcess, "start", "multiprocessing Process.start"),
        (subprocess.Popen, "__init__", "subprocess.Popen"),
        (asyncio.BaseEventLoop, "run_until_complete", "asyncio run_until_complete"),
        (asyncio.BaseEventLoop, "run_forever", "asyncio run_forever"),
        (asyncio, "run", "asyncio.run"),
    ]
    targets += [(os, name, f"os.{name}") for name in
                ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen")
                if hasattr(os, name)]
    import tqdm._monitor
    import tqdm.auto
    import tqdm.notebook
    import tqdm.std

    with monkeypatch.context() as m:
        for owner, name, what in targets:
            m.setattr(owner, name, refuse(what))
        # tqdm starts its monitor thread once per process and, when that fails, stops
        # trying (monitor_interval = 0): undo what earlier tests left, so a bar here
        # tries as a fresh Pyodide kernel's first bar would
        m.setattr(tqdm.std.tqdm, "monitor_interval", 10)
        m.setattr(tqdm.std.tqdm, "monitor", None)
        for cls in (tqdm.auto.tqdm, tqdm.notebook.tqdm_notebook):
            for attr in ("monitor_interval", "monitor"):
                if attr in vars(cls):
                    m.delattr(cls, attr)
        # a monitor registers its atexit join before it starts: a refused one would
        # make the interpreter's exit join a thread never started (a traceback)
        m.setattr(tqdm._monitor, "atexit", types.SimpleNamespace(register=lambda f: f))
        yield attempts


def _dashboard_calls(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The ``simcomm.explore(scenario, **kwargs)`` calls of a notebook's dashboard cells."""
    calls = []
    for cell in json.loads(path.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not DASHBOARD.search(source):
            continue
        tree = compile(source, path.name, "exec",
                       flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "explore"):
                (scenario,) = (ast.literal_eval(a) for a in node.args)
                kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
                calls.append((scenario, kwargs))
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebooks_dashboard_starts_no_thread_or_process(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _dashboard_calls(path)
    assert calls, f"{path.name} has no simcomm.explore(...) cell"
    with pyodide_refusals(monkeypatch) as attempts:
        for scenario, kwargs in calls:
            kwargs = {**kwargs, "until": min(float(kwargs.get("until", UNTIL)), UNTIL)}
            dash = simcomm.explore(scenario, **kwargs)
            assert dash.error is None and dash.runs == 1, dash.error
    assert attempts == []


def test_compare_playback_a_long_run_and_a_sweep_start_no_thread_or_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "PROGRESS_DELAY", 0.0)  # a run's tqdm bar at once
    with pyodide_refusals(monkeypatch) as attempts:
        dash = simcomm.explore("mmc", until=100)
        dash.controls["servers"].value += 1  # a slider moved: the dashboard runs again
        assert dash.error is None and dash.runs == 2, dash.error
        simcomm.compare("mmc", a={"servers": 1}, b={"servers": 2}, until=100)
        simcomm.playback("chain", seed=1, until=20, steps=5)
        res = simcomm.run("mmc", until=100, progress=True)
        assert res.summary()["requests"] > 0
        runs = simcomm.sweep("mmc", {"servers": [1, 2]}, until=50, progress=True)
        assert len(runs) == 2
    assert attempts == []


def test_the_recorders_catch_what_pyodide_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: a thread, a process pool and tqdm's monitor are all seen."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import TqdmMonitorWarning, tqdm

    with pyodide_refusals(monkeypatch) as attempts:
        with pytest.raises(Refused):
            threading.Thread(target=print).start()
        with pytest.raises(Refused), ThreadPoolExecutor(1) as pool:
            pool.submit(print)
        with pytest.raises(Refused):
            subprocess.run(["true"])
        with open(os.devnull, "w") as sink, pytest.warns(TqdmMonitorWarning):
            tqdm(total=1, file=sink).close()
    assert attempts[:3] == ["threading.Thread.start"] * 2 + ["subprocess.Popen"]
    assert attempts[3:] == ["threading.Thread.start"]  # tqdm caught it and warned
