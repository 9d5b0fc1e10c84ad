"""The README is a manual whose examples run as written, and the result and benchmark readings cannot drift
from the committed data.

Every ```bash and ```python block of README.md runs, in document order within its chain, in a fresh folder,
after nothing but what the README tells a reader to run first (`modeledit samples --out .`, itself the first
shell example). The examples form two independent chains, each run by its own test so that make test's two
workers can run them at once: the photos chain (the blocks that use the sample files and what they make) and
the world chain (the blocks on the generated world, which read no sample file); a fast test checks that
neither chain names a file the other writes. ```sh blocks are set-up commands (make, pip) shown but not run
here. The tables of README.md,
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


# what `modeledit samples --out .` writes (README: "photos/, astronaut.png + _mask + _snow, stats_images/")
SAMPLE_FILES = ("photos/", "astronaut.png", "astronaut_mask.png", "astronaut_snow.png", "stats_images/")


def _reads_samples(code: str) -> bool:
    return any(name in code for name in SAMPLE_FILES)


def chains() -> dict[str, list[tuple[int, str, str]]]:
    """The README's examples as two chains, each starting with `modeledit samples --out .` (the first shell
    block) and then in document order: "world" holds the blocks on the generated world that read no sample
    file, "photos" every other block."""
    first, *rest = blocks()
    world = [b for b in rest if "world" in b[2] and not _reads_samples(b[2])]
    return {"photos": [first, *(b for b in rest if b not in world)], "world": [first, *world]}


def _written(code: str) -> set[str]:
    """The files and folders a block writes: ``--out X`` and the name given to ``save``/``save_image``."""
    return ({m for m in re.findall(r"--out (\S+)", code) if m != "."}
            | set(re.findall(r"\bsave(?:_image)?\((?:[^\n]*?, )?\"([^\"]+)\"\)", code)))


def test_the_example_chains_are_independent():
    """Running the chains apart is running the README in order: every block is in exactly one chain after
    the shared first block, the world chain reads no sample file, and neither chain names what the other
    writes (so no block depends on, or overwrites, the other chain's output)."""
    every, c = blocks(), chains()
    assert c["photos"][0] == c["world"][0] == every[0]
    assert sorted(c["photos"][1:] + c["world"][1:]) == sorted(every[1:])
    assert len(c["world"]) >= 3 and len(c["photos"]) >= 5, {k: [b[0] for b in v] for k, v in c.items()}
    assert not any(_reads_samples(code) for _, _, code in c["world"][1:])
    for mine, other in (("photos", "world"), ("world", "photos")):
        theirs = set().union(*(_written(code) for _, _, code in c[other][1:]))
        assert theirs, other
        for line, _, code in c[mine][1:]:
            assert not any(name in code for name in theirs), f"README.md block at line {line} ({mine}) names one of {sorted(theirs)}"


def _run_chain(name: str, folder: Path, warm) -> None:
    """Shell blocks with bash (stopping at the first failing line), Python blocks as ``python -c``; each
    ``modeledit`` command and Python block is a process of its own, forked from the warm server
    (tests/warm_cli.py) instead of importing torch anew."""
    env = warm.env({**os.environ, "MPLBACKEND": "Agg", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    for line, kind, code in chains()[name]:
        if kind == "bash":
            res = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
        else:
            res = warm.run(cwd=folder, env=env, code=code, timeout=1800)
        assert res.returncode == 0, f"README.md {kind} block at line {line} failed (exit {res.returncode}):\n{res.stderr[-3000:]}"


# Two classes, not one parametrized test: make test schedules by scope (--dist loadscope), and a class is its
# own scope, so the two chains can run on the two workers at once.
@pytest.mark.slow
class TestPhotosChain:
    def test_runs_as_written(self, tmp_path, warm_cli):
        """samples, the ten-line example, the command tour, the Python API blocks, in a fresh folder."""
        _run_chain("photos", tmp_path, warm_cli)


@pytest.mark.slow
class TestWorldChain:
    def test_runs_as_written(self, tmp_path, warm_cli):
        """samples, the world and harness commands, the world's Python block, in a fresh folder."""
        _run_chain("world", tmp_path, warm_cli)
