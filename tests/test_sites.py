"""Where to edit: rank_sites and `modeledit sites` / `modeledit edit --layer auto` on the real world_vgg."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modeledit.cli import main
from modeledit.exemplars import Exemplars
from modeledit.rules import Rule, rank_sites

from tests.test_rules import swapped


@pytest.fixture(scope="module")
def world_files(tmp_path_factory):
    """world_vgg, a rule (cars whose road is snow) and a folder of clean world images, as PNG files."""
    from PIL import Image

    from modeledit import load_model
    from modeledit.eval.datasets import load_dataset

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    lm = load_model("world_vgg")
    d = tmp_path_factory.mktemp("sites")
    x, xp = swapped("car", "road", [0, 1, 2])
    save = lambda t, p: Image.fromarray((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(p)  # noqa: E731
    for i in range(3):
        save(x[i], d / f"car{i}.png")
        save(xp[i], d / f"car{i}_snow.png")
    ds = load_dataset("world:val:96", class_names=lm.class_names, size=lm.input_size)
    (d / "clean").mkdir()
    clean = torch.stack([ds[i][0] for i in range(len(ds))])
    for i in range(len(clean)):
        save(clean[i], d / "clean" / f"{i:03d}.png")
    (d / "empty").mkdir()
    yield lm, d, x, xp, clean
    torch.set_num_threads(old)


def test_rank_sites_orders_by_validation_correction(world_files):
    lm, _, x, xp, clean = world_files
    vx, vxp = swapped("car", "road", range(10, 34))
    tx, txp = swapped("car", "road", range(40, 64))
    rows = rank_sites(lm, Rule("car", Exemplars(x, xp)), clean=clean, val=(vx, vxp, None), stats=clean, budget=0.02,
                      test=(tx, txp, None))
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert sorted(r["site_index"] for r in rows) == [0, 1, 2, 3, 4]
    scores = [r["val_corrected"] for r in rows]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    for r in rows:
        assert r["clean_drop"] <= 0.02 + 1e-12
        assert len(r["tried"]) == 4
        assert (r["test_corrected"] == 0.0) if r["strength"] == 0 else (-1 <= r["test_corrected"] <= 1)
    with pytest.raises(ValueError, match="no clean images given"):
        rank_sites(lm, Rule("car", Exemplars(x, xp)), clean=clean[:0], stats=clean)


def test_a_site_listed_twice_is_refused(world_files):
    """By index and by name, the same site twice was ranked once without a word: now one line, before any work."""
    from modeledit.layers import list_sites

    lm, _, x, xp, clean = world_files
    name = list_sites(lm.model)[4].name
    for sites in ([4, 4], [4, name]):
        with pytest.raises(ValueError, match=f"name {name} more than once"):
            rank_sites(lm, Rule("car", Exemplars(x, xp)), clean=clean, stats=clean, sites=sites)


def test_sites_command_and_layer_auto(world_files, capsys):
    _, d, *_ = world_files
    rule = ["--original", *(str(d / f"car{i}.png") for i in range(3)), "--transformed", *(str(d / f"car{i}_snow.png") for i in range(3))]
    assert main(["sites", "world_vgg", *rule, "--images", str(d / "clean"), "--budget", "0.02", "--json"]) == 0
    ranking = json.loads(capsys.readouterr().out)
    assert len(ranking) == 5 and ranking[0]["rank"] == 1
    out = d / "auto_edit"
    assert main(["edit", "world_vgg", "--layer", "auto", *rule, "--images", str(d / "clean"), "--budget", "0.02", "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["site"] == ranking[0]["site"] and res["site_ranking"][0]["site"] == ranking[0]["site"]
    assert (d / "auto_edit.safetensors").is_file()
    # the saved edit is the one the ranking validated: at the strength whose clean drop was within the budget
    from modeledit.edit import Edit

    saved = Edit.load(str(out))
    assert saved.metrics.get("strength", 1.0) == ranking[0]["strength"] == res["site_ranking"][0]["strength"]


def test_layer_auto_refuses_when_there_is_nothing_to_correct(world_files, capsys):
    """A transformed image one pixel away from its original leaves no error to correct at any site: `edit --layer auto`
    refuses in one line (it edited the shallowest site at full strength before) and `sites` says it recommends nothing."""
    from PIL import Image

    _, d, *_ = world_files
    a = np.asarray(Image.open(d / "car0.png")).copy()
    a[0, 0, 0] = (int(a[0, 0, 0]) + 1) % 256
    Image.fromarray(a).save(d / "car0_px.png")
    rule = ["--original", str(d / "car0.png"), "--transformed", str(d / "car0_px.png"), "--images", str(d / "clean")]
    assert main(["sites", "world_vgg", *rule]) == 0
    out = capsys.readouterr().out
    assert "no error to correct" in out and "no recommendation" in out and "(on 96 clean images)" in out
    assert main(["edit", "world_vgg", "--layer", "auto", *rule, "--out", str(d / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no error to correct" in err[-1] and "Traceback" not in "\n".join(err) and not (d / "nothing.safetensors").exists()


def test_no_recommendation_says_why():
    from modeledit.rules import no_recommendation

    assert no_recommendation([{"val_corrected": 0.5, "val_errors": 2}], 0.01) is None
    assert "no error to correct" in no_recommendation([{"val_corrected": 0.0, "val_errors": 0}], 0.01)
    assert "within a clean drop of 1.00 pp" in no_recommendation([{"val_corrected": 0.0, "val_errors": 3}], 0.01)


def test_rank_sites_refuses_sets_it_cannot_read_right(world_files):
    """0-255 or NaN clean images, labels that are not classes, a transformed set of another size and a rule with
    nothing to learn were accepted and ranked every site at 0 (or at 1.0 corrected with no clean drop)."""
    lm, _, x, xp, clean = world_files
    rule = Rule("car", Exemplars(x, xp))
    nan = clean.clone()
    nan[0, 0, 0, 0] = float("nan")
    for kw, msg in (({"clean": clean * 255}, r"clean images hold values in \[0.00, 2"), ({"clean": nan}, "NaN or infinite"),
                    ({"clean": (clean, [99] * len(clean))}, "not a class index"), ({"clean": (clean, [0, 1])}, "one class index per image"),
                    ({"clean": clean, "val": (x, xp[:, :, :32, :32], None)}, "transformed images of shape"),
                    ({"clean": clean.double().to(torch.uint8)}, "uint8 tensors")):
        with pytest.raises(ValueError, match=msg):
            rank_sites(lm, rule, stats=None, sites=["4"], **kw)
    with pytest.raises(ValueError, match="nothing to learn"):
        rank_sites(lm, Rule("same", Exemplars(x, x)), clean=clean, sites=["4"])


@pytest.mark.parametrize("args, message", [
    (["--original", "car0.png", "car1.png", "--transformed", "car0_snow.png", "--images", "clean"], "2 originals but 1 transformed"),
    (["--original", "car0.png", "--transformed", "car0_snow.png", "--images", "empty"], "no images"),
    (["--original", "car0.png", "--transformed", "car0_snow.png", "--images", "clean", "--val-original", "car1.png"], "--val-transformed"),
])
def test_sites_bad_inputs_one_line(world_files, capsys, args, message):
    _, d, *_ = world_files
    fixed = [str(d / a) if a.endswith(".png") or a in ("clean", "empty") else a for a in args]
    assert main(["sites", "world_vgg", *fixed]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_layer_auto_needs_images(world_files, capsys):
    _, d, *_ = world_files
    assert main(["edit", "world_vgg", "--layer", "auto", "--original", str(d / "car0.png"), "--transformed", str(d / "car0_snow.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--images" in err[0]
