"""Outputs never mix with inputs or overwrite what ships (issue 24 §4), for every command that writes a folder.

Each command is run for real, in-process: a refused ``--out`` is one line, exit 2, and nothing there changes;
an own folder resumes; ``--force`` replaces only what modeledit wrote and puts it back when the new run fails;
``modeledit world train`` writes nothing under the package (the shipped zoo keeps its bytes).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modeledit.cli import main
from modeledit.outdir import MARKER, SIGNATURES, owner, prepare_out

PKG = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ws(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("outdir")
    (d / "imgs").mkdir()
    Image.fromarray(photos["chelsea"][:64, :64].copy()).save(d / "imgs" / "a.png")
    (d / "masks" / "a").mkdir(parents=True)
    Image.fromarray(np.pad(np.full((32, 32), 255, np.uint8), 16)).save(d / "masks" / "a" / "object.png")
    Image.fromarray(photos["chelsea"]).save(d / "cat.png")
    (d / "foreign").mkdir()
    (d / "foreign" / "thesis.tex").write_text("a user's own work")
    return d


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def cf_args(d: Path) -> list[str]:
    return ["counterfactuals", "--images", str(d / "imgs"), "--concepts", "object", "--styles", "snow", "--segmenter", "files",
            "--segmenter-arg", f"root={d / 'masks'}", "--stylizer", "texture", "--style-images", "0"]


#: every command that writes a folder: (name as the marker records it, its arguments without --out)
COMMANDS = {
    "counterfactuals": cf_args,
    "sensitivity": lambda d: ["sensitivity", "world_vgg", "--dataset", "world:test:8", "--concepts", "road", "--styles", "snow",
                              "--stylizer", "texture"],
    "bench": lambda d: ["bench", "world_vgg", "--dataset", "world:test:90", "--clean", "world:val:8", "--stats-dataset", "world:train:8",
                        "--pairs", "road:snow"],
    "snow": lambda d: ["snow", "world_vgg", "--clean", "world:val:8"],
    "typographic": lambda d: ["typographic", "world_vgg", "--dataset", "world:test:8", "--clean", "world:val:8", "--stats-dataset", "world:train:8"],
    "photos": lambda d: ["photos", "--quick"],
    "world render": lambda d: ["world", "render", "--n", "2"],
    "world clip-eval": lambda d: ["world", "clip-eval", "--n-test", "18"],
    "demo": lambda d: ["demo", "--quick", "--sections", "sensitivity"],
}

#: commands reading an input folder: the flag and how the arguments name it
INPUT_FOLDER = {
    "counterfactuals": ("--images", lambda d, x: [*cf_args(d)[:1], "--images", str(x), *cf_args(d)[3:]]),
    "sensitivity": ("--dataset", lambda d, x: ["sensitivity", "world_vgg", "--dataset", str(x), "--concepts", "road", "--styles", "snow"]),
    "bench": ("--dataset", lambda d, x: ["bench", "world_vgg", "--dataset", str(x), "--pairs", "object:snow", "--n-exemplars", "1"]),
    "snow": ("--photos", lambda d, x: ["snow", "world_vgg", "--mode", "photos", "--photos", str(x)]),
    "typographic": ("--dataset", lambda d, x: ["typographic", "world_vgg", "--dataset", str(x)]),
}


def refused(capsys, argv: list[str], pattern: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    import re

    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_folder_modeledit_did_not_write_is_refused_even_with_force(ws, capsys, command):
    before = _tree(ws / "foreign")
    for extra in ([], ["--force"]):
        refused(capsys, [*COMMANDS[command](ws), "--out", str(ws / "foreign"), *extra],
                r"--out '.*foreign' is not empty and was not written by modeledit \(it holds thesis.tex\); choose an empty or new folder")
    assert _tree(ws / "foreign") == before


@pytest.mark.parametrize("command", list(COMMANDS))
def test_another_commands_output_is_refused_without_force(ws, tmp_path, capsys, command):
    other = "world render" if command != "world render" else "counterfactuals"
    out = tmp_path / "other"
    out.mkdir()
    (out / "0000.json" if other == "world render" else out / "config.json").write_text("{}")
    (out / MARKER).write_text(json.dumps({"command": other, "config": None}))
    before = _tree(out)
    refused(capsys, [*COMMANDS[command](ws), "--out", str(out)], rf"holds the output of `modeledit {other}`; .*pass --force to replace it")
    assert _tree(out) == before


@pytest.mark.parametrize("command", list(INPUT_FOLDER))
def test_out_equal_to_inside_or_containing_an_input_is_refused(ws, tmp_path, capsys, command):
    flag, args = INPUT_FOLDER[command]
    data = tmp_path / "data"
    (data / "cls").mkdir(parents=True)
    for i in range(3):   # enough images for one exemplar and some to test on
        Image.open(ws / "imgs" / "a.png").save(data / "cls" / f"a{i}.png")
    before = _tree(tmp_path)
    refused(capsys, [*args(ws, data), "--out", str(data)], rf"--out '.*data' is the input of {flag}")
    refused(capsys, [*args(ws, data), "--out", str(data / "results")], rf"lies inside the input folder of {flag} .*choose a folder outside")
    refused(capsys, [*args(ws, data / "cls"), "--out", str(data)], rf"--out '.*data' contains the input of {flag}")
    assert _tree(tmp_path) == before and not (data / "results").exists()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_out_inside_the_package_is_refused(ws, capsys, command):
    refused(capsys, [*COMMANDS[command](ws), "--out", str(PKG / "eval" / "world" / "zoo" / "out")], r"inside the installed modeledit package")
    assert not (PKG / "eval" / "world" / "zoo" / "out").exists()


def test_counterfactuals_rerun_resumes_byte_identically_and_never_reads_its_outputs(ws, tmp_path, capsys):
    out = tmp_path / "cf"
    assert main([*cf_args(ws), "--out", str(out)]) == 0
    first = _tree(out)
    assert json.loads(first[MARKER]) == {"command": "counterfactuals", "config": None}
    assert main([*cf_args(ws), "--out", str(out)]) == 0           # the documented way to resume
    assert _tree(out) == first
    capsys.readouterr()
    # the case: --out inside --images, then the same command again
    refused(capsys, [*cf_args(ws)[:1], "--images", str(tmp_path), *cf_args(ws)[3:], "--out", str(out)], r"lies inside the input folder of --images")
    assert _tree(out) == first


def test_world_render_resumes_with_its_settings_and_force_replaces_other_settings(tmp_path, capsys):
    out = tmp_path / "samples"
    assert main(["world", "render", "--n", "2", "--out", str(out)]) == 0
    first = _tree(out)
    assert main(["world", "render", "--n", "2", "--out", str(out)]) == 0
    assert _tree(out) == first
    capsys.readouterr()
    refused(capsys, ["world", "render", "--n", "3", "--out", str(out)], r"holds `modeledit world render` output made with other settings \(n\)")
    refused(capsys, ["world", "render", "--n", "2", "--split", "val", "--out", str(out)], r"other settings \(split\)")
    assert _tree(out) == first
    assert main(["world", "render", "--n", "3", "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples"]          # the replaced folder is gone once the run finished
    assert json.loads((out / MARKER).read_text())["config"]["n"] == 3 and (out / "0002.json").is_file()


def test_force_puts_the_old_folder_back_when_the_new_run_writes_nothing(ws, tmp_path, capsys):
    out = tmp_path / "samples"
    assert main(["world", "render", "--n", "2", "--out", str(out)]) == 0
    before = _tree(out)
    capsys.readouterr()
    # counterfactuals --force into it: the style typo is found after the folder was moved aside
    args = [a if a != "snow" else "snw" for a in cf_args(ws)]
    refused(capsys, [*args, "--out", str(out), "--force"], r"unknown style 'snw'")
    assert _tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["samples"]


def test_folders_written_before_markers_resume_by_their_own_record(tmp_path):
    from modeledit.eval.results import ResultStore

    store = ResultStore(tmp_path / "bench", config={"seed": 0})
    store.write({"a": 1}, [{"x": 1}])
    for command in ("bench", "snow", "typographic", "photos", "sensitivity"):
        assert SIGNATURES[command] == ("manifest.json", "cells")
        with prepare_out(tmp_path / "bench", command=command):
            pass
        (tmp_path / "bench" / MARKER).unlink()
    assert owner(tmp_path / "bench") == ("sensitivity", None, False)  # a ResultStore folder: its store checks the settings
    with pytest.raises(ValueError, match="holds the output of `modeledit sensitivity`"):
        (tmp_path / "bench" / MARKER).write_text(json.dumps({"command": "sensitivity", "config": None}))
        prepare_out(tmp_path / "bench", command="bench")


def test_committed_results_folders_resume():
    """The project's committed results (written before markers existed) are recognised as their command's output."""
    runs = [p.parent for p in sorted((PKG / "results").rglob("manifest.json")) if (p.parent / "cells").is_dir()]
    runs += [p.parent for p in sorted((PKG / "results").rglob("eval.json"))]
    assert runs
    for run in runs:
        who, _, marked = owner(run)
        assert who is not None and not marked, run
        prepare_out(run, command=who)   # checks only: nothing is written


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_world_train_writes_nothing_under_the_package(tmp_path, monkeypatch, capsys):
    import modeledit.eval.world.train as T
    from modeledit import load_model
    from modeledit.eval.world.models import shipped_checkpoint_dir, trained_dir

    zoo = shipped_checkpoint_dir()
    before = {p: (p.stat().st_mtime_ns, d) for p, d in ((zoo / n, d) for n, d in _digests(zoo).items())}
    monkeypatch.setenv("MODELEDIT_CACHE", str(tmp_path / "cache"))
    # the README's `modeledit world train vgg`, on a tiny preset (the same code path; the CPU is shared)
    monkeypatch.setitem(T.PRESETS, "vgg", dataclasses.replace(T.PRESETS["vgg"], n_train=36, n_test=18, epochs=1, batch_size=18))
    assert main(["world", "train", "vgg"]) == 0
    out = capsys.readouterr().out
    assert {p: (p.stat().st_mtime_ns, d) for p, d in ((zoo / n, d) for n, d in _digests(zoo).items())} == before
    trained = trained_dir() / "world_vgg.pt"
    assert trained.is_relative_to(tmp_path / "cache") and trained.is_file() and "the shipped world_vgg is unchanged" in out
    index = json.loads((trained.parent / "world_models.json").read_text())
    assert index["world_vgg"]["train_config"]["n_train"] == 36
    shipped, mine = load_model("world_vgg"), load_model("world_vgg", weights=str(trained))
    assert shipped.meta["train"]["train_config"]["n_train"] != 36 and mine.meta["train"]["train_config"]["n_train"] == 36
    # an explicit --out into the package is refused before any work
    refused(capsys, ["world", "train", "vgg", "--out", str(zoo / "world_vgg.pt")], r"inside the installed modeledit package")
    assert {p: (p.stat().st_mtime_ns, d) for p, d in ((zoo / n, d) for n, d in _digests(zoo).items())} == before
