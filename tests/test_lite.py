"""The course as a JupyterLite site (``make lite``, ``tools/build_lite.py``).

A JupyterLite site runs JupyterLab and a Python kernel (Pyodide, CPython in
WebAssembly) in the browser, from static files.  Executing a notebook in it
needs the Pyodide runtime, which the kernel loads from its CDN
(cdn.jsdelivr.net) -- and these machines cannot reach it.  So these tests
check everything short of running Python in the page:

* the site builds (once per test run, into a temporary folder) and holds every
  notebook of ``notebooks/`` in its file listing and contents index;
* its wheel index (``pypi/all.json``, which the kernel's piplite reads
  first) holds simcomm's wheel and the wheels of the dependencies Pyodide
  lacks, so each notebook's first cell (``await piplite.install("simcomm")``)
  resolves every requirement from the site or from Pyodide's own packages;
* Chromium opens the site's JupyterLab (``lab/index.html``, served by
  ``python -m http.server``) and its file browser lists the notebooks, and
  a notebook opens with its cells (requests leaving 127.0.0.1 are refused,
  so the page is what a learner's browser gets from the course's host).

The browser test needs Debian's chromium and Python playwright, like
``tests/test_browser.py``: without them it skips -- unless
``SIMCOMM_REQUIRE_BROWSER=1`` (CI), then it fails.  Its screenshots go to
``test-artefacts/lite-*.png``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from test_browser import ARTEFACTS, CHROMIUM, CHROMIUM_ARGS, _free_port, _require_browser

import simcomm

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
COURSE_FILES = sorted(p.name for p in (REPO / "notebooks").iterdir()
                      if p.is_file() and not p.name.startswith("."))
#: simcomm's dependencies that Pyodide does not ship, nor the Pyodide kernel.
PYODIDE_LACKS = {"simpy", "ipywidgets", "comm", "jupyterlab-widgets"}


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_lite", REPO / "tools" / "build_lite.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_lite"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


build_lite = _load_tool()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A site built from this checkout into a temporary folder, once per test run.

    Under pytest-xdist the workers share it: the first to get here builds it
    in the run's common temporary folder, holding a lock; the others wait
    and read what it built.  (A module-scoped fixture would build once per
    worker, and again whenever a worker came back to this module.)
    """
    if build_lite.missing_tools():
        pytest.fail(f"missing {build_lite.missing_tools()}: pip install -e '.[dev]'",
                    pytrace=False)
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder every worker's own basetemp sits in
    record = root / "lite-site.json"
    with open(root / "lite-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            built = build_lite.build(root / "lite-site", root / "lite-wheels",
                                     log=lambda _msg: None)
            record.write_text(json.dumps({**dataclasses.asdict(built),
                                          "output": str(built.output)}))
    data = json.loads(record.read_text())
    return build_lite.Site(**{**data, "output": Path(data["output"])})


def _index(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    return {str(canonicalize_name(k)): v["releases"] for k, v in data.items()}


# -- the files -------------------------------------------------------------------
def test_the_site_holds_every_notebook(site: Any) -> None:
    files = sorted(p.name for p in (site.output / "files").iterdir())
    assert files == COURSE_FILES
    assert set(NOTEBOOKS) <= set(files) and len(NOTEBOOKS) >= 11
    listing = json.loads((site.output / "api" / "contents" / "all.json").read_text())
    assert sorted(c["name"] for c in listing["content"]) == COURSE_FILES
    for name in NOTEBOOKS:  # byte for byte what is committed
        assert (site.output / "files" / name).read_bytes() == (
            REPO / "notebooks" / name).read_bytes()


def test_the_site_holds_simcomms_wheel_and_the_ones_pyodide_lacks(site: Any) -> None:
    wheels = {str(parse_wheel_filename(w)[0]): w for w in site.wheels}
    assert set(wheels) == {"simcomm", *PYODIDE_LACKS}
    assert wheels["simcomm"] == f"simcomm-{simcomm.__version__}-py3-none-any.whl"
    assert all(w.endswith("-none-any.whl") for w in site.wheels)
    with zipfile.ZipFile(site.output / "pypi" / wheels["simcomm"]) as zf:
        names = zf.namelist()
    assert "simcomm/widgets/dashboard.py" in names and "simcomm/exercises/_core.py" in names
    assert not any("__pycache__" in n for n in names)
    index = _index(site.output / "pypi" / "all.json")
    assert set(index) == set(wheels)
    assert site.bundled == {name: str(parse_wheel_filename(w)[1])
                            for name, w in wheels.items() if name != "simcomm"}


def test_the_first_cells_install_resolves_from_the_site_and_pyodide(site: Any) -> None:
    """Resolve ``piplite.install("simcomm")`` as piplite would: the indexes the
    site's jupyter-lite.json names (its own, then the kernel's), and for the
    rest the packages Pyodide ships -- never PyPI."""
    config = json.loads((site.output / "jupyter-lite.json").read_text())
    urls = config["jupyter-config-data"]["litePluginSettings"][
        "@jupyterlite/pyodide-kernel-extension:kernel"]["pipliteUrls"]
    assert urls[0].startswith("./pypi/all.json")
    indexes: dict[str, dict[str, Any]] = {}
    for url in urls:
        path = site.output / url.split("?")[0]
        for name, releases in _index(path).items():
            indexes.setdefault(name, {}).update(
                {v: (path.parent, files) for v, files in releases.items()})
    pyodide = {str(canonicalize_name(k)): v for k, v in build_lite.PYODIDE_SHIPS.items()}
    installed: dict[str, str] = {}
    todo = ["simcomm"]
    while todo:
        req = Requirement(todo.pop())
        name = str(canonicalize_name(req.name))
        if req.marker is not None and not req.marker.evaluate(build_lite.PYODIDE_MARKERS):
            continue
        if name in pyodide:
            assert req.specifier.contains(Version(pyodide[name]), prereleases=True), req
            installed[name] = pyodide[name]
            continue
        assert name in indexes, f"{req} is neither in the site's indexes nor in Pyodide"
        versions = [v for v in indexes[name] if req.specifier.contains(Version(v), True)]
        assert versions, f"no version of {name} in the site meets {req}"
        best = max(versions, key=Version)
        if installed.get(name) == best:
            continue
        installed[name] = best
        folder, files = indexes[name][best]
        wheel = folder / files[0]["url"].split("?")[0]
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(meta).decode()
        todo.extend(line.split(":", 1)[1].strip() for line in text.splitlines()
                    if line.startswith("Requires-Dist:"))
    assert installed["simcomm"] == simcomm.__version__
    for name in ("simpy", "ipywidgets", "comm", "jupyterlab-widgets", "widgetsnbextension",
                 "pandas", "matplotlib", "networkx", "scipy", "tqdm"):
        assert name in installed, name


def test_the_site_carries_the_widget_manager_and_not_nbgrader(site: Any) -> None:
    config = json.loads((site.output / "jupyter-lite.json").read_text())["jupyter-config-data"]
    names = {e["name"] for e in config["federated_extensions"]}
    assert {"@jupyterlite/pyodide-kernel-extension", "@jupyter-widgets/jupyterlab-manager"} <= names
    assert "@jupyter/nbgrader" not in names  # it needs a Jupyter server
    assert config["appName"] == "simcomm"
    assert not list(site.output.rglob("*.js.map"))  # no source maps: a smaller site


def test_the_readme_gives_the_sites_size(site: Any) -> None:
    """The README's "about N MB" for the site is the built site's size, within 15 %."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("(JupyterLite)"):]
    stated = float(re.search(r"about (\d+(?:\.\d+)?) MB", section).group(1))  # type: ignore[union-attr]
    size = sum(p.stat().st_size for p in site.output.rglob("*") if p.is_file()) / 1e6
    assert abs(size - stated) <= 0.15 * stated, f"the site is {size:.1f} MB"


# -- what the build refuses --------------------------------------------------------
def _fake_wheel(path: Path, name: str, requires: list[str]) -> Path:
    meta = "".join(["Metadata-Version: 2.1\n", f"Name: {name}\n", "Version: 1.0\n"]
                   + [f"Requires-Dist: {r}\n" for r in requires])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}-1.0.dist-info/METADATA", meta)
    path.write_bytes(buf.getvalue())
    return path


def test_the_plan_follows_pyodides_platform_and_versions(tmp_path: Path) -> None:
    fetched: list[str] = []

    def fetch(wanted: dict[str, str]) -> dict[str, Path]:
        fetched.extend(wanted)
        return {name: _fake_wheel(tmp_path / f"{name}-{version}-py3-none-any.whl", name, [])
                for name, version in wanted.items()}

    wheel = _fake_wheel(tmp_path / "simcomm-1.0-py3-none-any.whl", "simcomm", [
        "numpy>=1.26", "simpy>=4.1", 'pywin32; sys_platform == "win32"',
        'pytest; extra == "dev"', "tqdm>=4.66"])
    bundled, from_pyodide = build_lite.plan_dependencies(wheel, fetch)
    assert fetched == ["simpy"] and set(bundled) == {"simpy"}
    assert from_pyodide == {"numpy>=1.26": build_lite.PYODIDE_SHIPS["numpy"],
                            "tqdm>=4.66": build_lite.PYODIDE_SHIPS["tqdm"]}

    too_new = _fake_wheel(tmp_path / "x-1.0-py3-none-any.whl", "simcomm", ["pandas>=99"])
    with pytest.raises(build_lite.LiteBuildError, match="Pyodide ships pandas"):
        build_lite.plan_dependencies(too_new, fetch)

    def platform_only(wanted: dict[str, str]) -> dict[str, Path]:
        return {name: _fake_wheel(
            tmp_path / f"{name}-{version}-cp311-cp311-manylinux_2_17_x86_64.whl", name, [])
            for name, version in wanted.items()}

    with pytest.raises(build_lite.LiteBuildError, match="no pure wheel"):
        build_lite.plan_dependencies(wheel, platform_only)


def test_a_missing_build_tool_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jupyterlite_core" else real(name, *a))
    with pytest.raises(build_lite.LiteBuildError, match=r"jupyterlite-core.*pip install"):
        build_lite.build(tmp_path / "site", tmp_path / "wheels", log=lambda _m: None)
    assert build_lite.main(["--output", str(tmp_path / "site")]) == 2
    assert not (tmp_path / "site").exists()


def test_a_kernel_loading_another_pyodide_stops_the_build(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    """PYODIDE_SHIPS holds one Pyodide series' packages: another series must be checked."""
    import jupyterlite_pyodide_kernel.constants as constants

    assert build_lite.check_pyodide_series() == constants.PYODIDE_VERSION
    monkeypatch.setattr(constants, "PYODIDE_VERSION", "400.0.0")
    with pytest.raises(build_lite.LiteBuildError, match=r"Pyodide 400\.0\.0.*PYODIDE_SHIPS"):
        build_lite.build(tmp_path / "site", tmp_path / "wheels", log=lambda _m: None)


def test_it_does_not_replace_a_folder_that_is_not_a_site(tmp_path: Path) -> None:
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(build_lite.LiteBuildError, match="not a JupyterLite site"):
        build_lite.build(keep, tmp_path / "wheels", log=lambda _m: None)
    assert (keep / "notes.txt").read_text() == "mine"


# -- in Chromium -------------------------------------------------------------------
@contextlib.contextmanager
def _static_server(root: Path) -> Iterator[str]:
    """``python -m http.server`` on 127.0.0.1 and a free port, serving ``root``."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "--directory", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"http.server exited with {proc.returncode}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                urllib.request.urlopen(f"{base}/jupyter-lite.json", timeout=2).close()
                break
            if time.monotonic() > deadline:
                pytest.fail("http.server did not answer within 30 s")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.browser
def test_chromium_opens_the_site_and_lists_the_notebooks(site: Any) -> None:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with _static_server(site.output) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                    headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        # only the site itself: what a class gets from its host (the CDN is unreachable here)
        page.route("**/*", lambda route: route.continue_()
                   if route.request.url.startswith(base) else route.abort())
        try:
            page.goto(f"{base}/lab/index.html")
            items = page.locator(".jp-DirListing-content .jp-DirListing-itemText")
            page.wait_for_function(
                "n => document.querySelectorAll("
                "'.jp-DirListing-content .jp-DirListing-itemText').length >= n",
                arg=len(COURSE_FILES))
            assert sorted(items.all_inner_texts()) == COURSE_FILES
            items.last.wait_for(state="visible")
            ARTEFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTEFACTS / "lite-file-browser.png"))

            # a notebook opens with its cells -- the first code cell is the piplite
            # install -- on the Pyodide kernel, with no "Select Kernel" dialog
            page.locator(".jp-DirListing-item", has_text=NOTEBOOKS[0]).dblclick()
            cell = page.locator(".jp-Notebook .jp-CodeCell").first
            cell.wait_for(state="visible")
            assert 'piplite.install("simcomm")' in cell.inner_text()
            kernel = page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName").first
            page.wait_for_function("el => el.textContent.includes('Pyodide')",
                                   arg=kernel.element_handle())
            assert page.locator(".jp-Dialog").count() == 0
            page.screenshot(path=str(ARTEFACTS / "lite-notebook.png"))
        except BaseException:
            with contextlib.suppress(Exception):
                ARTEFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTEFACTS / "lite-failure.png"))
            raise
        finally:
            browser.close()
