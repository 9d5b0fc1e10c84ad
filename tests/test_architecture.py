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


# ---------------------------------------------------------------------------------------------------
# issue 25: one harness cell, one selection rule, CLI choices read from their registries


def _tree(rel: str) -> ast.Module:
    return ast.parse((ROOT / rel).read_text(), rel)


def _called(node: ast.AST) -> set[str]:
    """Names of the functions called anywhere under ``node`` (``f(...)`` and ``x.f(...)``)."""
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            out.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "")
    return out


def _function(tree: ast.Module, name: str, cls: str | None = None) -> ast.FunctionDef:
    scope = tree.body if cls is None else next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    return next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name)


#: each harness's cell (file, class): its __call__ must hand the cell to eval/cell.py's run_cell
HARNESS_CELLS = {"eval/bench.py": "BenchRunner", "eval/photos.py": "PhotoStudy", "eval/oneshot.py": "OneShotStudy"}
#: what walks a method's in-cell grid (strengths, alphas) and makes the scaled edits: only eval/cell.py calls these
CELL_KERNEL = {"scaled_edits", "method_strengths"}
#: each summary (file, function) must choose through eval/protocol.py's choose_setting
SELECTIONS = {"eval/bench.py": "summarize", "eval/science/selection.py": "select", "eval/photos.py": "summarize_photos",
              "eval/oneshot.py": "summarize_oneshot"}


def test_every_harness_cell_runs_through_the_shared_cell():
    for rel, cls in HARNESS_CELLS.items():
        calls = _called(_function(_tree(rel), "__call__", cls))
        assert "run_cell" in calls, f"{rel}: {cls}.__call__ does not call modeledit.eval.cell.run_cell"
        assert not calls & (CELL_KERNEL | {"method_edit"}), f"{rel}: {cls}.__call__ makes or scales edits itself"


def test_no_module_but_the_cell_walks_an_in_cell_grid():
    bad = []
    for f in sorted((ROOT / "eval").rglob("*.py")):
        rel = str(f.relative_to(ROOT))
        if rel in ("eval/cell.py", "eval/methods.py"):   # the cell, and the catalogue that defines the grid
            continue
        tree = ast.parse(f.read_text(), rel)
        if _called(tree) & CELL_KERNEL:
            bad.append(rel)
        for loop in (n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.comprehension))):
            names = {n.id for n in ast.walk(loop.iter) if isinstance(n, ast.Name)} | {
                n.attr for n in ast.walk(loop.iter) if isinstance(n, ast.Attribute)}
            body = loop if isinstance(loop, ast.For) else None
            if body is not None and names & {"strength_grid", "alpha_grid", "strengths", "alphas"} and "applied" in _called(body):
                bad.append(f"{rel}:{loop.lineno}")
    assert not bad, f"these walk a strength/alpha grid and apply edits outside eval/cell.py: {bad}"


def test_every_summary_selects_with_the_one_rule():
    for rel, fn in SELECTIONS.items():
        assert "choose_setting" in _called(_function(_tree(rel), fn)), f"{rel}:{fn} does not choose through choose_setting"
    defined = [str(f.relative_to(ROOT)) for f in (ROOT / "eval").rglob("*.py")
               if any(isinstance(n, ast.FunctionDef) and n.name in ("choose_setting", "select_setting")
                      for n in ast.walk(ast.parse(f.read_text())))]
    assert defined == ["eval/protocol.py"], f"a selection rule is defined outside eval/protocol.py: {defined}"


def test_cli_choices_and_help_come_from_the_registries():
    """--solver, --methods, --segmenter, --stylizer and --executor take their choices and the names in their
    help from the registries (modeledit/commands/choices.py); a hand-written list of those names fails."""
    from modeledit.commands.choices import REGISTRIES, RegistryNames

    flags = {"--solver": "solver", "--methods": "method", "--segmenter": "segmenter", "--stylizer": "stylizer", "--executor": "executor"}
    names = {kind: set(RegistryNames(kind)) for kind in REGISTRIES}
    bad = []
    for f in sorted([ROOT / "modeledit" / "cli.py", *(ROOT / "modeledit" / "commands").glob("*.py")]):
        for call in (n for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.Call)):
            flag = next((a.value for a in call.args if isinstance(a, ast.Constant) and a.value in flags), None)
            if flag is None:
                continue
            kw = {k.arg: k.value for k in call.keywords}
            literal = [c.value for c in ast.walk(kw["choices"]) if isinstance(c, ast.Constant)] if "choices" in kw else []
            help_ = " ".join(c.value for c in ast.walk(kw.get("help", ast.Constant(""))) if isinstance(c, ast.Constant)
                             and isinstance(c.value, str))
            listed = {w.strip(" ,;.()") for w in help_.split()} & names[flags[flag]]
            if literal or len(listed) > 1:
                bad.append(f"{f.name}:{call.lineno} {flag} lists {sorted(set(literal) | listed)} by hand")
    assert not bad, bad


def test_cli_registry_flags_show_what_is_registered():
    """A solver registered at run time is in ``modeledit edit --help`` and accepted by --solver."""
    import contextlib
    import io

    from modeledit.cli import command_parser
    from modeledit.editor import SOLVERS, register_solver

    register_solver("test_only_solver", SOLVERS["closed_form"])
    try:
        _, parser = command_parser("edit")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
            parser.parse_args(["--help"])
        assert "test_only_solver" in " ".join(buf.getvalue().split())
        action = next(a for a in parser._actions if "--solver" in a.option_strings)
        assert "test_only_solver" in action.choices and "no_such_solver" not in action.choices
    finally:
        SOLVERS.pop("test_only_solver")
