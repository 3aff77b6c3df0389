"""Dependencies point one way (DESIGN principle 7): the engine imports nothing above it.

``widgets → viz → analysis → scenarios → patterns (rpc, resilience) → engine
→ simpy``; ``api`` and ``sweeps`` run simulations and sit beside the top, so
viz, scenarios and analysis never import them.  These tests read every import
statement of the lower layers -- at module level, inside functions and under
``TYPE_CHECKING`` alike -- and also import the packages in a fresh interpreter
to see what actually loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "simcomm"

#: What each lower layer may import from simcomm (besides itself).
ALLOWED = {
    "engine": {"_checks", "errors"},
    "rpc": {"_checks", "errors", "engine", "resilience"},
    # a pattern: below the scenarios, the analysis and the figures
    "discovery": {"_checks", "errors", "engine", "rpc", "resilience"},
}


def imports(path: Path, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every absolute simcomm import in ``path``.

    ``top_level_only`` keeps the imports that run when the module is
    imported: module level, outside ``if TYPE_CHECKING:``.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    if top_level_only:
        nodes: list[ast.AST] = []
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
                nodes.extend(stmt.orelse)
            else:
                nodes.append(stmt)
        walk = [n for stmt in nodes for n in ast.walk(stmt)
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    else:
        walk = list(ast.walk(tree))
    out = []
    for node in walk:
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            if node.module == "simcomm":  # from simcomm import api: the module simcomm.api
                out += [(node.lineno, f"simcomm.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module or ""))
    return [(line, mod) for line, mod in out if mod == "simcomm" or mod.startswith("simcomm.")]


#: What a layer above the patterns must never import, wherever the import is written
#: (module level, inside a function, under TYPE_CHECKING): viz draws and scenarios
#: describe, so neither reaches the modules that run simulations (api, sweeps, the
#: CLI) or the dashboards; analysis computes from results and tables alone.
#: (``sweep`` is the module's old name: it must not come back under it.)
NEVER = {
    "viz": {"api", "sweeps", "sweep", "widgets", "cli"},
    "scenarios": {"api", "sweeps", "sweep", "widgets", "cli", "viz"},
    "analysis": {"api", "sweeps", "sweep", "widgets", "cli", "viz"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def files(layer: str) -> list[Path]:
    found = sorted((ROOT / layer).rglob("*.py"))
    assert found, f"no modules in simcomm/{layer}"
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_is_below_it_even_lazily(layer):
    """Every import in the layer, wherever it is written, points down."""
    bad = []
    for path in files(layer):
        for line, module in imports(path):
            target = layer_of(module)
            if target != layer and target not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("layer", sorted(NEVER))
def test_viz_scenarios_and_analysis_never_reach_the_runners(layer):
    """viz never runs simulations (a sweep does, and hands it a table), scenarios
    never import simcomm.api or the sweeps: no cycle viz → api → widgets → viz
    or scenarios → api → scenarios, not even through an import inside a function."""
    bad = [f"{path.relative_to(ROOT.parent)}:{line} imports {module}"
           for path in files(layer) for line, module in imports(path)
           if layer_of(module) in NEVER[layer]]
    assert not bad, "\n".join(bad)


def test_the_import_reader_sees_every_spelling(tmp_path):
    """The checks above fail on an import written any way: from the package, as a
    submodule, with an alias, inside a function or under TYPE_CHECKING."""
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\n"
                   "from simcomm import api, errors\n"
                   "import simcomm.sweeps as s\n"
                   "if TYPE_CHECKING:\n    from simcomm.widgets import explore\n"
                   "def f():\n    from simcomm.cli import main\n    return main\n")
    found = {module for _, module in imports(src)}
    assert found == {"simcomm.api", "simcomm.errors", "simcomm.sweeps", "simcomm.widgets",
                     "simcomm.cli"}
    assert {layer_of(m) for m in found} & NEVER["viz"] == {"api", "sweeps", "widgets", "cli"}
    assert {m for _, m in imports(src, top_level_only=True)} == {
        "simcomm.api", "simcomm.errors", "simcomm.sweeps"}


def test_the_engine_has_no_call_method_to_reach_the_call_path():
    """The old ``Context.call`` (which imported simcomm.rpc) is gone: calls are
    ``simcomm.rpc.call(ctx, ...)``."""
    from simcomm.engine.nodes import Context

    assert not hasattr(Context, "call")


def test_the_pure_policies_import_nothing_from_the_layers_above_when_loaded():
    """simcomm.resilience's modules run no import of the engine, rpc or SimPy at
    import time; ``protect`` reaches the glue in simcomm.rpc only when called."""
    bad = []
    for path in files("resilience"):
        for line, module in imports(path, top_level_only=True):
            if layer_of(module) not in ("resilience", "_checks", "errors"):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
        text = path.read_text()
        assert "import simpy" not in text and "from simpy" not in text, path
    assert not bad, "\n".join(bad)


def _loaded_after(statement: str) -> list[str]:
    code = (f"import sys\n{statement}\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('simcomm'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT.parent)
    return out.stdout.split()


def test_importing_the_engine_loads_nothing_above_it():
    """In a fresh interpreter, ``import simcomm.engine`` loads only engine modules
    (and the package root with what it pulls in is not asked for here)."""
    code = ("import sys, types\n"
            f"pkg = types.ModuleType('simcomm'); pkg.__path__ = [{str(ROOT)!r}]\n"
            "sys.modules['simcomm'] = pkg\n"
            "import simcomm.engine")
    loaded = _loaded_after(code)
    above = [m for m in loaded if layer_of(m) not in ("", "engine", "_checks", "errors")]
    assert "simcomm.engine.nodes" in loaded
    assert not above, above
