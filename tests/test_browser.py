"""The notebooks in a real browser: JupyterLab + headless Chromium (Playwright).

What no headless test can show: that each notebook's dashboards render in
JupyterLab -- widgets drawn, first figure loaded, no error in a cell or in
the browser's console -- and that moving a slider in the page re-runs the
simulation in the kernel and changes the figure the learner sees.  A
second, generated notebook checks what only a browser does: the Play
button advancing the time slider it is jslinked to (and the kernel
redrawing the topology), and compare's two columns side by side.

Executing every cell is nbmake's job (``pytest --nbmake notebooks``), so
the browser runs, of each notebook, only what it must prove: a copy
holding the setup cell, the import cells and every dashboard cell
(``simcomm.explore(...)``), plus any earlier cell defining a name those
use (:func:`browser_cells`).  That keeps each notebook to its dashboards'
own runs instead of all its simulations.

Needs Debian's chromium (``apt-get install -y chromium``) and Python
``playwright`` (its own browser download is not used).  Without them the
test skips -- unless ``SIMCOMM_REQUIRE_BROWSER=1`` (CI), then it fails.
Everything runs in temporary directories (HOME, Jupyter config, data,
runtime and settings dirs, the notebooks' copies), on a free port, so
it runs next to other tests under ``pytest -n 2`` and leaves the venv and
the repository untouched, apart from screenshots in ``test-artefacts/``
(``*-failure.png`` shows the page when a step failed).
``SIMCOMM_RUN_ALL_TIMEOUT`` (seconds, default 240) bounds "run all".
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "00-tour.ipynb"
ARTEFACTS = REPO / "test-artefacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: JupyterLab's news and update toasts would cover the screenshots.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}
#: A notebook the test writes: playback and compare, which the tour does not show.
PLAYBACK_NOTEBOOK = "widgets-check.ipynb"
PLAYBACK_CELLS = [
    "import simcomm",
    "simcomm.playback('chain', seed=1, until=60, steps=30, last_service_hangs=True,\n"
    "                 hang_at=10, hang_duration=20, service_availability=1.0)",
    "simcomm.compare('mmc', a={'servers': 1}, b={'servers': 2}, until=500)",
]
SERVER_START_TIMEOUT = 60.0
RUN_ALL_TIMEOUT = float(os.environ.get("SIMCOMM_RUN_ALL_TIMEOUT", "240"))


def _require_browser() -> None:
    """Skip (or, with SIMCOMM_REQUIRE_BROWSER=1, fail) without chromium or playwright."""
    problems = []
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"no {CHROMIUM}: install it with `apt-get install -y chromium`")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("no playwright: `pip install -e '.[dev]'`")
    if problems:
        message = "browser test needs: " + "; ".join(problems)
        if os.environ.get("SIMCOMM_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (SIMCOMM_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(message)


def _write_notebook(path: Path, cells: list[str]) -> None:
    """A notebook of code ``cells`` with the kernelspec JupyterLab needs to start one."""
    nb = {"nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "cells": [{"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "source": src,
                     "outputs": [], "execution_count": None} for i, src in enumerate(cells)]}
    path.write_text(json.dumps(nb, indent=1))


#: A dashboard cell: it opens ``simcomm.explore(...)`` (what tests/test_pyodide.py runs).
DASHBOARD = re.compile(r"\bsimcomm\.explore\(")


def _cell_tree(source: str) -> ast.Module:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # the setup cell awaits
    tree = compile(source, "<cell>", "exec", flags=flags)
    assert isinstance(tree, ast.Module)
    return tree


def _names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The names a cell binds and the (non-builtin) names it reads."""
    bound: set[str] = set()
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return bound, read - set(dir(builtins))


def browser_cells(path: Path) -> list[str]:
    """The code cells of notebook ``path`` the browser runs, in order.

    The first code cell (the JupyterLite setup), every cell of imports only,
    every dashboard cell (:data:`DASHBOARD`), and -- transitively -- the
    latest earlier cell binding each name one of those reads, so a
    dashboard that needs an earlier result still gets it.
    """
    sources = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]
               if c["cell_type"] == "code"]
    trees = [_cell_tree(s) for s in sources]
    names = [_names(t) for t in trees]
    keep = {0} | {i for i, s in enumerate(sources) if DASHBOARD.search(s)}
    keep |= {i for i, t in enumerate(trees)
             if t.body and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in t.body)}
    todo = sorted(keep)
    while todo:
        i = todo.pop()
        for name in names[i][1] - names[i][0]:
            j = next((j for j in range(i - 1, -1, -1) if name in names[j][0]), None)
            if j is not None and j not in keep:
                keep.add(j)
                todo.append(j)
    return [sources[i] for i in sorted(keep)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(url: str, method: str = "GET", timeout: float = 5.0) -> Any:
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], base: str | None) -> None:
    """Shut the kernels down through the API, then stop the server's process group."""
    if base is not None and proc.poll() is None:
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            for kernel in _http(f"{base}/api/kernels"):
                _http(f"{base}/api/kernels/{kernel['id']}", method="DELETE", timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JupyterLab server on a free port serving a copy of ``notebooks/``; its URL."""
    _require_browser()
    tmp_path = tmp_path_factory.mktemp("jupyterlab")
    notebooks = REPO / "notebooks"
    root = tmp_path / "notebooks"
    root.mkdir()
    for path in sorted(notebooks.glob("*.ipynb")):
        _write_notebook(root / path.name, browser_cells(path))
    _write_notebook(root / PLAYBACK_NOTEBOOK, PLAYBACK_CELLS)
    if not (root / NOTEBOOK).exists():
        pytest.fail(f"{notebooks / NOTEBOOK} is missing", pytrace=False)
    home = tmp_path / "home"
    settings = home / "lab-settings"
    for rel, values in USER_SETTINGS.items():
        f = settings / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    import matplotlib

    env = dict(os.environ)
    env.update({
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "MPLCONFIGDIR": matplotlib.get_configdir(),  # reuse the font cache
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_TOKEN", None)
    port = _free_port()
    log = tmp_path / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--port", str(port),
           "--ip", "127.0.0.1", "--ServerApp.port_retries=0", "--ServerApp.token=",
           "--ServerApp.password=", "--allow-root", f"--ServerApp.root_dir={root}",
           # no token and no cookie: without this the API refuses the DELETEs that shut
           # each notebook's kernel down (403, '_xsrf' missing) and the kernels pile up
           "--ServerApp.disable_check_xsrf=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=root, start_new_session=True)
    ready: str | None = None
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while ready is None:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{_log_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab not ready after {SERVER_START_TIMEOUT:g} s:\n"
                            f"{_log_tail(log)}")
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                _http(f"{base}/api/status", timeout=2)
                ready = base
            if ready is None:
                time.sleep(0.2)
        yield ready
    finally:
        _stop(proc, ready)


# -- the page --------------------------------------------------------------
#: True once the kernel is idle and every code cell ran -- or one failed (a failed
#: cell stops "run all": the cells after it never get an execution count).
_RUN_ALL_DONE = """() => {
  if (!document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']")) {
    return false;
  }
  const prompts = [...document.querySelectorAll(
      '.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
  if (prompts.length === 0 || prompts.some(p => p.includes('*'))) return false;
  const failed = document.querySelector(
      ".jp-RenderedText[data-mime-type*='error']");
  return failed !== null || prompts.every(p => /\\[\\d+\\]/.test(p));
}"""

_ERRORS = """() => {
  const out = [];
  for (const el of document.querySelectorAll(
      ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")) {
    if (el.textContent.includes('Traceback')) out.push(el.textContent);
  }
  for (const el of document.querySelectorAll(".jp-RenderedText[data-mime-type*='error']")) {
    out.push(el.textContent);
  }
  return out;
}"""


def _wait_for_kernel(page: Any, base: str, notebook: str, timeout: float = 90.0) -> None:
    """Wait until the notebook's kernel is started and idle.

    The page's execution indicator says "idle" before any kernel is
    attached; a "run all" then asks which kernel to start, in a dialog
    that blocks the page.  So wait for the server to report an idle
    kernel in a session for the notebook, and accept the kernel dialog if
    JupyterLab shows it anyway (it picks the notebook's own kernelspec).
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            sessions = _http(f"{base}/api/sessions")
            if any(s.get("path", "").endswith(notebook) and s.get("kernel")
                   and s["kernel"].get("execution_state") == "idle" for s in sessions):
                break
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count():
            dialog.first.click()
        if time.monotonic() > deadline:
            raise AssertionError(f"no idle kernel for {notebook} after {timeout:g} s")
        time.sleep(0.2)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    page.wait_for_function("() => document.querySelector('.jp-Dialog') === null")


def _shot(target: Any, name: str) -> Path:
    ARTEFACTS.mkdir(exist_ok=True)
    path = ARTEFACTS / name
    target.screenshot(path=str(path))
    return path


def _assert_no_errors(page: Any, when: str) -> None:
    errors = page.evaluate(_ERRORS)
    assert not errors, f"cell errors {when}:\n" + "\n---\n".join(errors)


@contextlib.contextmanager
def _notebook_page(base: str, notebook: str, shot_prefix: str) -> Iterator[Any]:
    """A Chromium page with ``notebook`` open, all its cells run without an error.

    On any failure a screenshot of the page is saved as
    ``test-artefacts/<shot_prefix>-failure.png``; the browser always closes.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                    headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(60_000)
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        try:
            page.goto(f"{base}/lab/tree/{notebook}?reset")  # not the last test's tabs
            _wait_for_kernel(page, base, notebook)
            page.click(".lm-MenuBar-item:has-text('Run')")
            page.click("[data-command='runmenu:run-all']")
            page.wait_for_function(_RUN_ALL_DONE, timeout=RUN_ALL_TIMEOUT * 1000)
            _shot(page, f"{shot_prefix}-after-run-all.png")
            _assert_no_errors(page, f"in {notebook}")
            yield page
            _assert_no_errors(page, f"in {notebook} after interacting")
            widget_errors = [c for c in console if "widget" in c.lower()]
            assert not widget_errors, "widget errors in the browser console:\n" + "\n".join(
                widget_errors)
        except BaseException:
            with contextlib.suppress(Exception):
                _shot(page, f"{shot_prefix}-failure.png")
            raise
        finally:
            browser.close()
            _shutdown_sessions(base, notebook)


def _shutdown_sessions(base: str, notebook: str) -> None:
    """Stop the kernels of ``notebook``'s sessions (the server runs on for the next test)."""
    with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
        for s in _http(f"{base}/api/sessions"):
            if s.get("path", "").endswith(notebook):
                _http(f"{base}/api/sessions/{s['id']}", method="DELETE", timeout=15)


def _wait_for_image(page: Any, img: Any, old_src: str | None = None,
                    timeout: float = 30.0) -> None:
    """Wait until ``img`` has loaded a picture (a new one, if ``old_src`` is given)."""
    page.wait_for_function(
        "([img, old]) => img.getAttribute('src') !== old && img.complete"
        " && img.naturalWidth > 0", arg=[img.element_handle(), old_src],
        timeout=timeout * 1000)


# -- the tests -------------------------------------------------------------------
def test_tour_runs_and_dashboard_slider_redraws(jupyterlab: str) -> None:
    """Run the tour's browser cells; no errors; moving a dashboard slider changes its figure."""
    with _notebook_page(jupyterlab, NOTEBOOK, "browser-tour") as page:
        dash = page.locator(".simcomm-dashboard").first
        dash.wait_for(state="visible")
        dash.scroll_into_view_if_needed()
        figure = dash.locator("img.simcomm-figure").first
        _wait_for_image(page, figure)
        slider = dash.locator(".widget-hslider").first
        readout = slider.locator(".widget-readout")
        status = dash.locator(".simcomm-status")
        before_status = status.inner_text()
        assert before_status.startswith("run "), before_status
        before_readout = readout.inner_text()
        before_src = figure.get_attribute("src")
        before_png = figure.screenshot()
        _shot(dash, "browser-dashboard-before.png")

        slider.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("([el, old]) => el.textContent !== old",
                               arg=[readout.element_handle(), before_readout])
        # the kernel re-ran: the status names the next run once every view is drawn
        page.wait_for_function(
            "([el, old]) => /^run \\d+:/.test(el.textContent) && el.textContent !== old",
            arg=[status.element_handle(), before_status], timeout=30_000)
        _wait_for_image(page, figure, before_src)
        after_png = figure.screenshot()
        _shot(dash, "browser-dashboard-after.png")
        assert after_png != before_png, "the figure did not change after the slider moved"


#: Every course notebook besides the tour, which the test above runs.
COURSE = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]-*.ipynb")
                if p.name != NOTEBOOK)


def test_browser_cells_keep_setup_imports_dashboards_and_what_they_need(
        tmp_path: Path) -> None:
    """The selection itself (no browser): a dashboard reading an earlier result
    keeps the cell making it, and the cell making what that one reads."""
    path = tmp_path / "nb.ipynb"
    cells = ["import sys  # setup", "import simcomm", "slow = simcomm.run('chain')",
             "n = 3", "res = simcomm.run('mmc', servers=n)", "unrelated = 1",
             "simcomm.explore('mmc', servers=res.params.servers)", "print(unrelated)"]
    _write_notebook(path, cells)
    assert browser_cells(path) == [cells[i] for i in (0, 1, 3, 4, 6)]
    tour = REPO / "notebooks" / NOTEBOOK
    first = next(c for c in json.loads(tour.read_text())["cells"] if c["cell_type"] == "code")
    kept = browser_cells(tour)
    assert kept[0] == "".join(first["source"])  # the JupyterLite setup cell
    assert any(DASHBOARD.search(s) for s in kept)


@pytest.mark.parametrize("notebook", COURSE)
def test_course_notebook_runs_and_its_dashboards_render(jupyterlab: str, notebook: str) -> None:
    """Run a course notebook's browser cells in JupyterLab: no cell raises, and
    every dashboard it opens renders with its first figure drawn."""
    expected = sum(len(DASHBOARD.findall(s))
                   for s in browser_cells(REPO / "notebooks" / notebook))
    with _notebook_page(jupyterlab, notebook, f"browser-{notebook[:2]}") as page:
        dashboards = page.locator(".simcomm-dashboard")
        if expected:
            dashboards.nth(expected - 1).wait_for(state="visible")
        assert dashboards.count() == expected
        for i in range(expected):
            dash = dashboards.nth(i)
            dash.scroll_into_view_if_needed()
            _wait_for_image(page, dash.locator("img.simcomm-figure").first)
            suffix = "" if i == 0 else f"-{i + 1}"
            _shot(dash, f"browser-{notebook[:2]}-dashboard{suffix}.png")


def test_playback_plays_and_compare_renders(jupyterlab: str) -> None:
    """Pressing Play moves the time slider (jslink) and redraws the topology; compare
    shows two columns of figures."""
    with _notebook_page(jupyterlab, PLAYBACK_NOTEBOOK, "browser-widgets") as page:
        pb = page.locator(".simcomm-playback").first
        pb.wait_for(state="visible")
        pb.scroll_into_view_if_needed()
        figure = pb.locator("img.simcomm-figure")
        _wait_for_image(page, figure)
        readout = pb.locator(".widget-hslider .widget-readout")
        assert float(readout.inner_text()) == 0.0
        before_src = figure.get_attribute("src")
        before_png = figure.screenshot()
        _shot(pb, "browser-playback-before.png")

        pb.locator(".widget-play button").first.click()  # play
        page.wait_for_function("el => parseFloat(el.textContent) >= 12",
                               arg=readout.element_handle(), timeout=60_000)
        pb.locator(".widget-play button").first.click()  # pause
        _wait_for_image(page, figure, before_src)
        page.wait_for_function(
            "el => el.textContent.includes('hung')",
            arg=pb.locator(".simcomm-happened").element_handle(), timeout=30_000)
        assert figure.screenshot() != before_png
        _shot(pb, "browser-playback-playing.png")

        cmp = page.locator(".simcomm-compare").first
        cmp.scroll_into_view_if_needed()
        images = cmp.locator("img")
        assert images.count() == 2 * 3  # mmc's three views on each side
        for i in range(images.count()):
            _wait_for_image(page, images.nth(i))
        boxes = [images.nth(i).bounding_box() for i in (0, 1)]
        a_x = boxes[0]["x"]
        b_images = [images.nth(i).bounding_box()["x"] for i in range(3, 6)]
        assert all(x > a_x + 100 for x in b_images), "B is not beside A"
        assert "B − A" in cmp.locator(".simcomm-difference").inner_text()
        _shot(cmp, "browser-compare.png")
