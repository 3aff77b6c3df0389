"""Build the course as a JupyterLite site: JupyterLab and Python in the browser, no server.

    python tools/build_lite.py                      # -> build/lite/ (what `make lite` runs)
    python tools/build_lite.py --output DIR [--wheel-cache DIR]

Serve the output folder with any static web server (``python -m http.server
-d build/lite``, GitHub Pages, ...) and open it: JupyterLab starts in the
browser, its Python kernel is Pyodide (CPython compiled to WebAssembly),
and a class needs no server and no Binder session.

What the site holds:

* the course: every file of ``notebooks/`` (the notebooks, ``README.md``),
  at the top of the file browser;
* a wheel index (``pypi/all.json``, read by the kernel's ``piplite``) with
  simcomm's own wheel, built from this checkout (``pip wheel --no-deps``),
  and the pure wheels of its dependencies that neither Pyodide
  (:data:`PYODIDE_SHIPS`) nor the Pyodide kernel (its own wheel index:
  ``widgetsnbextension``, ``ipykernel``, ...) provides -- today simpy,
  ipywidgets, comm and jupyterlab_widgets -- worked out from the wheel's
  ``Requires-Dist`` for Pyodide's platform (``sys_platform ==
  "emscripten"``), at the versions installed here (the ones the tests ran
  with), fetched with ``pip download`` (pip's cache serves a rebuild);
* the JupyterLab extensions the course needs (:data:`EXTENSIONS`): the
  Pyodide kernel and ipywidgets' widget manager (the dashboards), plus the
  Notebook interface switch and the Pygments theme.  Other extensions of
  this environment stay out: nbgrader's needs a Jupyter server.

Every notebook's first code cell runs ``await piplite.install("simcomm")``
when ``sys.platform == "emscripten"``; piplite looks in the site's own
index first, so simcomm and the wheels above come from the site.  What
Pyodide ships (numpy, pandas, matplotlib, networkx, scipy, tqdm, ipython,
traitlets) comes with Pyodide itself, which the kernel loads from its CDN
(``https://cdn.jsdelivr.net/pyodide/``): a learner's browser needs that
site, the course's host serves the rest.

The build checks what it can offline: a missing build tool, a dependency
that has no pure wheel and that Pyodide does not ship, or a requirement
that Pyodide's version of a package does not meet stops it with a message
saying what to do (exit status 2).  ``tests/test_lite.py`` builds a site,
checks its files and opens it in Chromium.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
DEFAULT_OUTPUT = REPO / "build" / "lite"
#: Where downloaded dependency wheels are kept between builds (git-ignored with build/).
DEFAULT_WHEEL_CACHE = REPO / "build" / "lite-wheels"

#: Python modules the build runs with (the ``teach`` extra installs them).
TOOLS = {
    "jupyterlite_core": "jupyterlite-core",
    "jupyterlite_pyodide_kernel": "jupyterlite-pyodide-kernel",
    "jupyter_server": "jupyter-server",
    "packaging": "packaging",
}
#: Installed JupyterLab extensions the site carries, by package name: the kernel
#: and the widget manager are needed, the other two are small comforts.
EXTENSIONS = {
    "@jupyterlite/pyodide-kernel-extension": True,
    "@jupyter-widgets/jupyterlab-manager": True,
    "@jupyter-notebook/lab-extension": False,
    "jupyterlab_pygments": False,
}
#: What the Pyodide that jupyterlite-pyodide-kernel 0.8 loads (314.0.x, Python 3.14)
#: ships, for the packages simcomm's dependencies reach: name -> version, from the
#: recipes of pyodide/pyodide-recipes tags 314-20260408 .. 314-20260729 (numpy is
#: 2.4.3 or 2.4.6 and scipy 1.17.0 .. 1.18.0 there: the lowest is given).  Pyodide
#: resolves their own dependencies itself.
PYODIDE_SHIPS = {
    "numpy": "2.4.3",
    "pandas": "3.0.2",
    "matplotlib": "3.10.8",
    "networkx": "3.6.1",
    "scipy": "1.17.0",
    "tqdm": "4.67.3",
    "ipython": "9.12.0",
    "traitlets": "5.14.3",
    "matplotlib-inline": "0.2.1",
    "pyarrow": "22.0.0",
}
#: The Pyodide series :data:`PYODIDE_SHIPS` describes (checked against the kernel's).
PYODIDE_SERIES = "314"
#: Environment markers of Pyodide's platform, for a requirement's ``; marker``.
PYODIDE_MARKERS = {
    "sys_platform": "emscripten",
    "platform_system": "Emscripten",
    "os_name": "posix",
    "platform_machine": "wasm32",
    "python_version": "3.14",
    "python_full_version": "3.14.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
#: The only kind of wheel piplite installs from a site besides Pyodide's own builds.
PURE_TAG = "none-any"


class LiteBuildError(RuntimeError):
    """The site cannot be built; the message says why and what to do."""


@dataclass
class Site:
    """What a build produced: where, which notebooks and wheels, how long it took."""

    output: Path
    notebooks: list[str]
    wheels: list[str]  # file names in ``output/pypi``
    bundled: dict[str, str] = field(default_factory=dict)  # dependency -> version
    from_pyodide: dict[str, str] = field(default_factory=dict)  # requirement -> Pyodide's
    seconds: float = 0.0


def check_pyodide_series() -> str:
    """The Pyodide version the installed kernel loads, if :data:`PYODIDE_SHIPS` is for it.

    A kernel loading another Pyodide series ships other package versions:
    the table must be checked against that Pyodide's packages first.
    """
    from jupyterlite_pyodide_kernel.constants import PYODIDE_VERSION

    if str(PYODIDE_VERSION).split(".")[0] != PYODIDE_SERIES:
        raise LiteBuildError(
            f"jupyterlite-pyodide-kernel loads Pyodide {PYODIDE_VERSION}, but PYODIDE_SHIPS "
            f"lists Pyodide {PYODIDE_SERIES}.x's packages: check that Pyodide's package list "
            "and update PYODIDE_SHIPS and PYODIDE_SERIES in tools/build_lite.py")
    return str(PYODIDE_VERSION)


def missing_tools() -> list[str]:
    """The build tools that are not importable here, as pip names."""
    return [pip for module, pip in TOOLS.items() if importlib.util.find_spec(module) is None]


def _labextension_dirs() -> list[Path]:
    from jupyter_core.paths import jupyter_path

    return [Path(p) for p in jupyter_path("labextensions")]


def find_extension(name: str) -> Path | None:
    """The folder of the installed (prebuilt) JupyterLab extension ``name``, if any."""
    for root in _labextension_dirs():
        if (root / name / "package.json").is_file():
            return root / name
    return None


def kernel_wheels() -> dict[str, list[str]]:
    """Packages the Pyodide kernel brings in its own wheel index: name -> versions."""
    ext = find_extension("@jupyterlite/pyodide-kernel-extension")
    if ext is None:
        return {}
    index = ext / "static" / "pypi" / "all.json"
    if not index.is_file():
        return {}
    data = json.loads(index.read_text())
    return {_canonical(k): sorted(v.get("releases", {})) for k, v in data.items()}


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next((n for n in zf.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
        if meta is None:
            raise LiteBuildError(f"{wheel.name} has no .dist-info/METADATA")
        text = zf.read(meta).decode()
    return Parser().parsestr(text).get_all("Requires-Dist") or []


def _applies_in_pyodide(req: object) -> bool:
    marker = getattr(req, "marker", None)
    return marker is None or bool(marker.evaluate(PYODIDE_MARKERS))


def _backend_installed() -> bool:
    """Whether this environment meets pyproject's ``build-system.requires`` (then pip
    builds the wheel here, offline and in a third of the time, instead of installing
    setuptools into a fresh build environment first)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return False
    from packaging.requirements import Requirement
    from packaging.version import Version

    with open(REPO / "pyproject.toml", "rb") as f:
        requires = tomllib.load(f).get("build-system", {}).get("requires", [])
    for text in requires:
        req = Requirement(text)
        try:
            have = Version(importlib.metadata.version(req.name))
        except importlib.metadata.PackageNotFoundError:
            return False
        if not req.specifier.contains(have, prereleases=True):
            return False
    return bool(requires)


def build_simcomm_wheel(dest: Path, log: Callable[[str], None]) -> Path:
    """Build simcomm's wheel from a copy of this checkout into ``dest``.

    A copy, so setuptools' ``build/`` and ``*.egg-info`` stay out of the
    work tree and two builds at once do not share them.
    """
    with tempfile.TemporaryDirectory(prefix="simcomm-src-") as tmp:
        src = Path(tmp) / "simcomm"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(REPO / name, src / name)
        shutil.copytree(REPO / "simcomm", src / "simcomm",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        isolation = ["--no-build-isolation"] if _backend_installed() else []
        log(f"building simcomm's wheel (pip wheel --no-deps {' '.join(isolation)})")
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                               "--disable-pip-version-check", *isolation, str(src),
                               "-w", str(dest)], capture_output=True, text=True)
        if done.returncode != 0:
            raise LiteBuildError("pip wheel of simcomm failed:\n" + done.stderr[-3000:])
    wheels = sorted(dest.glob("simcomm-*.whl"))
    if len(wheels) != 1 or not wheels[0].name.endswith(f"-py3-{PURE_TAG}.whl"):
        raise LiteBuildError(f"expected one pure simcomm wheel in {dest}, found "
                             f"{[w.name for w in wheels]}")
    return wheels[0]


#: ``fetch({name: version, ...})`` -> ``{name: wheel file}``.
Fetch = Callable[[dict[str, str]], dict[str, Path]]


def plan_dependencies(simcomm_wheel: Path, fetch: Fetch
                      ) -> tuple[dict[str, Path], dict[str, str]]:
    """The wheels the site must carry for ``simcomm_wheel`` to install in Pyodide.

    Walks ``Requires-Dist`` from simcomm's wheel (only what applies on
    Pyodide's platform, no extras), level by level: a requirement Pyodide
    ships is checked against Pyodide's version and left to Pyodide; one the
    kernel's own index has is left to it; the others of a level are
    fetched together (``fetch({name: version})``) at the versions installed
    here, which must meet the requirements and be pure wheels, and their
    own requirements make the next level.  Returns ``({name: wheel},
    {requirement: Pyodide's version})``.
    """
    from packaging.requirements import Requirement
    from packaging.version import Version

    kernel = kernel_wheels()
    bundled: dict[str, Path] = {}
    from_pyodide: dict[str, str] = {}
    level = [(str(r), "simcomm") for r in wheel_requirements(simcomm_wheel)]
    while level:
        wanted: dict[str, str] = {}
        for text, wanted_by in level:
            req = Requirement(text)
            if not _applies_in_pyodide(req):
                continue
            name = _canonical(req.name)
            if name in PYODIDE_SHIPS:
                have = PYODIDE_SHIPS[name]
                if not req.specifier.contains(Version(have), prereleases=True):
                    raise LiteBuildError(
                        f"{wanted_by} requires {text}, but Pyodide ships {name} {have}: "
                        "relax the requirement or bundle a pure wheel of it")
                from_pyodide[text] = have
                continue
            if name in kernel:
                if not any(req.specifier.contains(Version(v), prereleases=True)
                           for v in kernel[name]):
                    raise LiteBuildError(f"{wanted_by} requires {text}; the Pyodide kernel "
                                         f"provides {name} {kernel[name]} only")
                continue
            try:
                version = importlib.metadata.version(req.name)
            except importlib.metadata.PackageNotFoundError:
                raise LiteBuildError(f"{name} ({wanted_by} requires {text}) is not installed "
                                     "here: pip install -e '.[dev]' first") from None
            if not req.specifier.contains(Version(version), prereleases=True):
                raise LiteBuildError(f"{wanted_by} requires {text}, {name} {version} is "
                                     "installed here")
            if name not in bundled:
                wanted[name] = version
        fetched = fetch(wanted) if wanted else {}
        level = []
        for name, version in wanted.items():
            wheel = fetched[name]
            if not wheel.name.endswith(f"{PURE_TAG}.whl"):
                raise LiteBuildError(
                    f"{name} {version} has no pure wheel ({wheel.name}) and Pyodide does "
                    "not ship it: piplite cannot install it (if a newer Pyodide ships it, "
                    "add it to PYODIDE_SHIPS)")
            bundled[name] = wheel
            level.extend((str(r), name) for r in wheel_requirements(wheel))
    return bundled, from_pyodide


def pip_fetcher(cache: Path, log: Callable[[str], None]) -> Fetch:
    """A ``fetch`` taking wheels from ``cache``, pip-downloading the missing ones into it."""
    from packaging.utils import parse_wheel_filename

    def cached(name: str, version: str) -> Path | None:
        for whl in cache.glob("*.whl"):
            try:
                wname, wversion, *_ = parse_wheel_filename(whl.name)
            except ValueError:
                continue
            if wname == name and str(wversion) == version:
                return whl
        return None

    def fetch(wanted: dict[str, str]) -> dict[str, Path]:
        missing = [f"{n}=={v}" for n, v in wanted.items() if cached(n, v) is None]
        stderr = ""
        if missing:
            cache.mkdir(parents=True, exist_ok=True)
            log(f"downloading {' '.join(missing)} (pip download)")
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                                   "--only-binary=:all:", "--quiet",
                                   "--disable-pip-version-check", "--dest", str(cache),
                                   *missing], capture_output=True, text=True)
            stderr = done.stderr
        found = {n: cached(n, v) for n, v in wanted.items()}
        lost = [f"{n}=={wanted[n]}" for n, w in found.items() if w is None]
        if lost:
            raise LiteBuildError(
                f"could not download the wheels of {lost} into {cache} (no network?); "
                f"put them there by hand and build again:\n{stderr[-2000:]}")
        return {n: w for n, w in found.items() if w is not None}

    return fetch


def stage_contents(dest: Path) -> list[str]:
    """Copy the course (``notebooks/``, no hidden files or caches) to ``dest``; the notebooks."""
    shutil.copytree(NOTEBOOKS, dest, ignore=shutil.ignore_patterns(
        ".*", "__pycache__", "*.pyc"))
    notebooks = sorted(p.name for p in dest.glob("*.ipynb"))
    if not notebooks:
        raise LiteBuildError(f"no notebooks in {NOTEBOOKS}")
    return notebooks


def _extension_paths() -> list[str]:
    paths = []
    for name, needed in EXTENSIONS.items():
        found = find_extension(name)
        if found is None:
            if needed:
                raise LiteBuildError(f"the JupyterLab extension {name} is not installed "
                                     "here: pip install -e '.[teach]'")
            continue
        paths.append(str(found))
    return paths


def check_index(output: Path, names: Iterable[str]) -> dict[str, list[str]]:
    """The site's piplite index (``pypi/all.json``), checked to list every one of ``names``.

    Also checks that each listed release's wheel file is in ``pypi/``, with
    the sha256 the index gives (piplite refuses a wheel whose digest differs).
    """
    index = output / "pypi" / "all.json"
    if not index.is_file():
        raise LiteBuildError(f"the build wrote no wheel index ({index})")
    data = json.loads(index.read_text())
    listed = {_canonical(k): v for k, v in data.items()}
    missing = sorted(set(map(_canonical, names)) - set(listed))
    if missing:
        raise LiteBuildError(f"{index} does not list {missing}")
    for name, entry in listed.items():
        for files in entry.get("releases", {}).values():
            for f in files:
                path = output / "pypi" / f["url"].split("?")[0].removeprefix("./")
                if not path.is_file():
                    raise LiteBuildError(f"{index} lists {name} at {f['url']}, not in the site")
                if hashlib.sha256(path.read_bytes()).hexdigest() != f["digests"]["sha256"]:
                    raise LiteBuildError(f"{path.name}: sha256 differs from {index}'s")
    return {k: sorted(v.get("releases", {})) for k, v in listed.items()}


def build(output: Path = DEFAULT_OUTPUT, wheel_cache: Path | None = DEFAULT_WHEEL_CACHE, *,
          log: Callable[[str], None] = print) -> Site:
    """Build the site into ``output`` (replaced if it holds an earlier site)."""
    t0 = time.perf_counter()
    missing = missing_tools()
    if missing:
        raise LiteBuildError(f"missing build tools {missing}: pip install -e '.[teach]' "
                             "(or `make venv`, which installs the dev extras that include it)")
    check_pyodide_series()
    output = Path(output).resolve()
    if output.exists() and any(output.iterdir()) and not (output / "jupyter-lite.json").exists():
        raise LiteBuildError(f"{output} exists and is not a JupyterLite site: not replacing it")
    with tempfile.TemporaryDirectory(prefix="simcomm-lite-") as tmp_name:
        tmp = Path(tmp_name)
        wheels_dir = tmp / "wheels"
        simcomm_wheel = build_simcomm_wheel(wheels_dir, log)
        cache = Path(wheel_cache) if wheel_cache is not None else tmp / "cache"
        bundled, from_pyodide = plan_dependencies(simcomm_wheel, pip_fetcher(cache, log))
        for whl in bundled.values():
            shutil.copy2(whl, wheels_dir / whl.name)
        notebooks = stage_contents(tmp / "contents")
        lite_dir = tmp / "lite"
        lite_dir.mkdir()
        config = {"LiteBuildConfig": {
            # extensions: only EXTENSIONS; translations: none installed, and skipping them
            # spares importing jupyterlab_server
            "ignore_sys_prefix": ["federated_extensions", "translation"],
            "federated_extensions": _extension_paths(),
            "contents": [str(tmp / "contents")],
            "no_sourcemaps": True,
            "no_unused_shared_packages": True,
        }, "PipliteAddon": {"piplite_urls": [str(w) for w in sorted(wheels_dir.glob("*.whl"))]}}
        (lite_dir / "jupyter_lite_config.json").write_text(json.dumps(config, indent=1))
        (lite_dir / "jupyter-lite.json").write_text(json.dumps({
            "jupyter-lite-schema-version": 0,
            "jupyter-config-data": {"appName": "simcomm"}}, indent=1))
        staged = tmp / "site"
        log(f"jupyter lite build ({len(notebooks)} notebooks, "
            f"{len(bundled) + 1} wheels) -> {output}")
        done = subprocess.run([sys.executable, "-m", "jupyterlite_core", "build",
                               "--lite-dir", str(lite_dir), "--output-dir", str(staged)],
                              cwd=lite_dir, capture_output=True, text=True)
        if done.returncode != 0:
            raise LiteBuildError("jupyter lite build failed:\n"
                                 + (done.stdout + done.stderr)[-4000:])
        check_index(staged, ["simcomm", *bundled])
        if output.exists():
            shutil.rmtree(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(output))
    wheels = sorted(p.name for p in (output / "pypi").glob("*.whl"))
    return Site(output=output, notebooks=notebooks, wheels=wheels,
                bundled={k: _wheel_version(v) for k, v in bundled.items()},
                from_pyodide=from_pyodide, seconds=time.perf_counter() - t0)


def _wheel_version(wheel: Path) -> str:
    from packaging.utils import parse_wheel_filename

    return str(parse_wheel_filename(wheel.name)[1])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="the site's folder (default: build/lite)")
    parser.add_argument("--wheel-cache", type=Path, default=DEFAULT_WHEEL_CACHE,
                        help="where downloaded dependency wheels are kept "
                             "(default: build/lite-wheels)")
    args = parser.parse_args(argv)
    try:
        site = build(args.output, args.wheel_cache)
    except LiteBuildError as exc:
        print(f"build_lite: error: {exc}", file=sys.stderr)
        return 2
    print(f"built {site.output} in {site.seconds:.1f} s: {_size(site.output) / 1e6:.1f} MB, "
          f"{len(site.notebooks)} notebooks, wheels {', '.join(site.wheels)}")
    print("from Pyodide: " + ", ".join(sorted(site.from_pyodide)))
    print(f"serve it with: python -m http.server -d {site.output} 8000  "
          "(then open http://127.0.0.1:8000/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
