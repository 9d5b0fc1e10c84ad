"""The README is a manual whose examples run as written, and the result and benchmark readings cannot drift
from the committed data.

Every ```bash and ```python block of README.md runs, in document order, in a fresh folder, after nothing but
what the README tells a reader to run first (`modeledit samples --out .`, itself the first shell example);
```sh blocks are set-up commands (make, pip) shown but not run here. The tables of README.md,
results/README.md and benchmarks/README.md are checked against the files they are written from
(`python results/render.py --check`)."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 400


def blocks(kinds: tuple[str, ...] = ("bash", "python")) -> list[tuple[int, str, str]]:
    """(line, kind, code) of the README's fenced blocks of those kinds, in document order."""
    text = README.read_text()
    return [(text[: m.start()].count("\n") + 2, m.group(1), m.group(2))
            for m in re.finditer(r"```(\w+)\n(.*?)```", text, re.S) if m.group(1) in kinds]


def python_blocks() -> list[tuple[int, str]]:
    return [(line, code) for line, _, code in blocks(("python",))]


def test_readme_is_a_manual():
    lines = README.read_text().splitlines()
    assert len(lines) < MAX_LINES, f"README.md has {len(lines)} lines; readings and tables belong in results/ and benchmarks/"
    text = "\n".join(lines)
    for must in ("make demo", "make test", "results/README.md", "benchmarks/README.md", "<!-- errors -->"):
        assert must in text, must


def test_readme_has_the_blocks_users_copy():
    py = python_blocks()
    assert len(py) >= 3
    first = py[0][1]
    assert len([l for l in first.splitlines() if l.strip()]) <= 10, "the ten-line example grew"
    assert len([l for l in first.splitlines() if l.startswith(("import ", "from "))]) <= 3
    assert "before" in first and "after" in first, "the ten-line example prints the prediction before and after the edit"
    shell = [code for _, kind, code in blocks(("bash",))]
    assert shell and shell[0].lstrip().startswith("modeledit samples --out ."), "the first shell example makes the files the others use"


def test_every_name_the_readme_imports_from_modeledit_is_public():
    """Every ``from modeledit import ...`` name and ``modeledit.NAME`` the README's Python uses is in
    ``modeledit.__all__`` and resolves (the flat public API)."""
    import modeledit

    names: set[str] = set()
    for _, code in python_blocks():
        for m in re.finditer(r"^from modeledit import (.+)$", code, re.M):
            names |= {n.strip() for n in m.group(1).split(",")}
        names |= set(re.findall(r"\bmodeledit\.([a-z_A-Z]+)\(", code))
    assert {"load_model", "rewrite", "restyle", "concept_mask"} <= names
    missing = sorted(n for n in names if n not in modeledit.__all__)
    assert not missing, f"README uses names outside modeledit.__all__: {missing}"
    for n in names:
        assert getattr(modeledit, n) is not None


def test_every_command_the_readme_runs_exists():
    from modeledit.cli import COMMANDS

    used = {m.group(1) for _, _, code in blocks(("bash",)) for m in re.finditer(r"^\s*modeledit (?:-v )?([a-z-]+)", code, re.M)}
    assert used and used <= set(COMMANDS), sorted(used - set(COMMANDS))


def _render():
    spec = importlib.util.spec_from_file_location("results_render", ROOT / "results" / "render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_result_and_benchmark_tables_match_the_committed_data(capsys):
    assert _render().main(["--check"]) == 0, capsys.readouterr().err


def test_a_drifted_table_is_caught():
    render = _render()
    text = (ROOT / "results" / "README.md").read_text()
    drifted = text.replace("| edit | world_vgg | 79 [70, 87]", "| edit | world_vgg | 80 [70, 87]", 1)
    assert drifted != text, "the main comparison's first row moved; update this test"
    _, changed = render.render(drifted, render.TABLES["results/README.md"], "results/README.md")
    assert changed == ["main"]


@pytest.mark.slow
def test_readme_runs_as_written(tmp_path):
    """Every example, in order, in a fresh folder: shell blocks with bash (stopping at the first failing
    line), Python blocks in a fresh interpreter."""
    env = {**os.environ, "MPLBACKEND": "Agg", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for line, kind, code in blocks():
        argv = ["bash", "-euo", "pipefail", "-c", code] if kind == "bash" else [sys.executable, "-c", code]
        res = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0, f"README.md {kind} block at line {line} failed (exit {res.returncode}):\n{res.stderr[-3000:]}"
