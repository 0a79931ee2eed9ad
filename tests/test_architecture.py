"""The layering of the code base, read from the code's own imports (no hand-kept list of modules).

    pages/, app.py          UI: thin pages; never torch, transformers, faiss or duckdb (not even through what
                            they import at module level)
    backend/                models, generation, experiments, bench, training, CLI; never streamlit
    kernels/, store/,       below backend: import nothing from backend/ or the UI
    retrieval/
    no import cycles between modules, in-function imports included
    `python -m backend <command>` is the one entry point: no library module has a `__main__` block
    no source file over MAX_LINES lines
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backend", "kernels", "store", "retrieval", "pages")
LOWER = ("kernels", "store", "retrieval")
UI_FORBIDDEN = ("torch", "transformers", "faiss", "duckdb", "sentence_transformers", "triton", "ray", "numba",
                "statsmodels")
MAX_LINES = 420


def _module_files() -> dict[str, Path]:
    mods = {"app": ROOT / "app.py"}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


MODULES = _module_files()


def _resolve(name: str) -> str | None:
    """The longest prefix of a dotted name that is one of our modules (None for third-party / stdlib)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return None


def _imports(module: str, top_level_only: bool = False) -> set[str]:
    """Dotted names imported by `module` (`from pkg import submodule` counts as pkg.submodule)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module level includes `try:` / `if` blocks at the top level
        nodes = [n for top in tree.body for n in ast.walk(top) if not isinstance(top, (ast.FunctionDef,
                                                                                       ast.AsyncFunctionDef,
                                                                                       ast.ClassDef))]
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            for a in node.names:
                full = f"{base}.{a.name}"
                out.add(full if full in MODULES else base)
    return out


def _internal_graph(top_level_only: bool = False) -> dict[str, set[str]]:
    graph = {}
    for m in MODULES:
        deps = {_resolve(n) for n in _imports(m, top_level_only)}
        graph[m] = {d for d in deps if d and d != m}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read_from_the_code():
    """Guards the reader itself: known edges must be found, so the checks below cannot pass vacuously."""
    graph = _internal_graph()
    assert "backend.models.loading" in graph["backend.models.manager"]  # an in-function import
    assert "backend.generation.interface" in graph["backend.errors"]  # a module-level import
    assert len(MODULES) > 100


def test_no_import_cycles():
    cycles = _cycles(_internal_graph())
    assert not cycles, "import cycles (break each: pass a function in, or move the shared part down): " + \
        "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_import_nothing_from_backend_or_the_ui(layer):
    bad = sorted(f"{m} imports {d}" for m, deps in _internal_graph().items() if m.split(".")[0] == layer
                 for d in deps if d.split(".")[0] in ("backend", "pages", "app"))
    assert not bad, bad


def test_backend_imports_no_streamlit():
    bad = sorted(f"{m}: {n}" for m in MODULES if m.startswith("backend") for n in _imports(m)
                 if n.split(".")[0] == "streamlit")
    assert not bad, bad


def _ui_closure() -> dict[str, set[str]]:
    """Every module reached from the UI at import time, with the third-party names each imports there."""
    seen: dict[str, set[str]] = {}
    todo = [m for m in MODULES if m == "app" or m.startswith("pages")]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        names = _imports(m, top_level_only=not (m == "app" or m.startswith("pages")))
        seen[m] = {n for n in names if _resolve(n) is None}
        todo += [r for r in (_resolve(n) for n in names) if r and r not in seen]
    return seen


def test_the_ui_imports_no_heavy_library():
    """Pages (anywhere in them) and what they import at module level, transitively: no torch & co."""
    bad = sorted(f"{m}: {n}" for m, names in _ui_closure().items() for n in names
                 if n.split(".")[0] in UI_FORBIDDEN)
    assert not bad, bad


def test_one_entry_point():
    """Runnable jobs are `python -m backend <command>`; library modules have no `__main__` block."""
    bad = []
    for m, path in MODULES.items():
        if path.name == "__main__.py" and m == "backend.__main__":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                bad.append(m)
        if path.name == "__main__.py":
            bad.append(m)
    assert not bad, f"move these entry points into backend/cli/: {bad}"


def test_no_source_file_is_too_long():
    files = [*MODULES.values(), *(ROOT / "tests").rglob("*.py")]
    long = sorted(f"{p.relative_to(ROOT)}: {n}" for p in files
                  if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES)
    assert not long, f"split these files (over {MAX_LINES} lines): {long}"
