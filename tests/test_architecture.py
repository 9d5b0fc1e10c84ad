"""The import rules of docs/ARCHITECTURE.md, checked on the source: the core, styles/ and segmenters/
never import modeledit.eval; the core reaches style and segmentation backends only lazily (inside
functions); and no cycle exists between the four packages or between modules at import time. The
command line (``modeledit.cli``, ``modeledit.commands``) and the studio (``modeledit.studio``, the browser's
command line) are the one layer above everything: they may import the harnesses."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder -> the package it is installed as
FOLDERS = {"modeledit": "modeledit", "styles": "modeledit.styles", "segmenters": "modeledit.segmenters", "eval": "modeledit.eval"}


def package_of(module: str) -> str:
    """core / styles / segmenters / eval (or cli, the top layer) for a dotted module name under modeledit."""
    if module in ("modeledit.cli", "modeledit.__main__") or module.startswith(("modeledit.commands", "modeledit.studio")):
        return "cli"
    for pkg in ("modeledit.eval", "modeledit.styles", "modeledit.segmenters"):
        if module == pkg or module.startswith(pkg + "."):
            return pkg.split(".")[1]
    return "core"


def modules() -> dict[str, Path]:
    out = {}
    for folder, pkg in FOLDERS.items():
        for f in (ROOT / folder).rglob("*.py"):
            rel = f.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if folder == "modeledit" and parts and parts[0] in ("styles", "segmenters", "eval"):
                continue
            out[name] = f
    return out


def imports(path: Path, name: str) -> list[tuple[str, bool]]:
    """(imported module, at import time?) for every import in the file; relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = ".".join(pkg[: len(pkg) - child.level + 1] + ([base] if base else []))
                found.append((base, top))
                found.extend((f"{base}.{a.name}", top) for a in child.names)
            visit(child, inner)

    visit(tree, True)
    return [(m, top) for m, top in found if m.startswith("modeledit")]


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    assert "modeledit.editor" in mods and "modeledit.eval.world.scene" in mods and "modeledit.styles.bank" in mods
    return {name: imports(path, name) for name, path in mods.items()}, mods


def test_core_styles_and_segmenters_never_import_eval(graph):
    edges, _ = graph
    bad = [(src, dst) for src, deps in edges.items() if package_of(src) not in ("eval", "cli")
           for dst, _ in deps if package_of(dst) == "eval"]
    assert not bad, f"these import modeledit.eval: {bad}"


def test_core_reaches_backends_only_lazily(graph):
    edges, _ = graph
    eager = [(src, dst) for src, deps in edges.items() if package_of(src) == "core"
             for dst, top in deps if top and package_of(dst) in ("styles", "segmenters")]
    assert not eager, f"the core imports style/segmentation backends at import time: {eager}"


def _cycle(nodes: set[str], adj: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(adj.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (c := dfs(v)):
                return c
        stack.pop()
        state[u] = 2
        return None

    for n in sorted(nodes):
        if n not in state and (c := dfs(n)):
            return c
    return None


def test_no_cycle_between_the_four_packages(graph):
    edges, _ = graph
    adj: dict[str, set[str]] = {}
    for src, deps in edges.items():
        for dst, top in deps:
            if top and package_of(dst) != package_of(src) and "cli" not in (package_of(src), package_of(dst)):
                adj.setdefault(package_of(src), set()).add(package_of(dst))
    assert _cycle({"core", "styles", "segmenters", "eval"}, adj) is None, adj
    assert "eval" not in set().union(*adj.values())     # nothing below the command line depends on the harnesses


def test_no_cycle_between_modules_at_import_time(graph):
    edges, mods = graph
    adj = {src: {d for d, top in deps if top and d in mods and d != src} for src, deps in edges.items()}
    # a package's __init__ importing its own submodules is how packages re-export: not a cycle
    for src in adj:
        adj[src] = {d for d in adj[src] if not (mods[src].name == "__init__.py" and d.startswith(src + "."))}
    cycle = _cycle(set(mods), adj)
    assert cycle is None, " -> ".join(cycle)


def test_the_checker_sees_a_planted_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom modeledit.eval.bench import run_bench\n\ndef f():\n    from modeledit.styles import get_stylizer\n")
    found = imports(bad, "modeledit.bad")
    assert ("modeledit.eval.bench", True) in found and ("modeledit.styles", False) in found
    assert _cycle({"a", "b"}, {"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
