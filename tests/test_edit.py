"""The Edit value: apply/revert bit for bit, composition, save/load, base checks; the CLI round trip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modeledit import get_site
from modeledit.edit import Edit, EditSequence
from modeledit.exemplars import Exemplars
from modeledit.finetuning import FinetuneConfig, finetune
from modeledit.editor import EditConfig, rewrite
from modeledit.stats import second_moment

pytestmark = pytest.mark.usefixtures("one_thread")


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def setup(restyled_pairs, stats_batches, mobilenet):
    x, xp, m = restyled_pairs(1)
    ex = Exemplars(x, xp, m)
    site = get_site(mobilenet.model, 16)
    st = second_moment(mobilenet.model, site, stats_batches(), transform=mobilenet.normalize, progress=False)
    return mobilenet, ex, site, st


def test_apply_revert_bit_exact_and_context_manager(setup):
    lm, ex, site, st = setup
    base = _state(lm.model)
    edit = rewrite(lm, site, ex, config=EditConfig(), stats=st)
    edit.apply(lm.model)
    changed = _state(lm.model)
    assert not torch.equal(changed[f"{site.layer}.weight"], base[f"{site.layer}.weight"])
    assert sum(not torch.equal(changed[k], base[k]) for k in base) == 1
    with pytest.raises(ValueError, match="already applied"):
        edit.apply(lm.model)
    edit.revert(lm.model)
    assert _same(_state(lm.model), base)
    with pytest.raises(ValueError, match="not applied"):
        edit.revert(lm.model)
    with pytest.raises(ZeroDivisionError):
        with edit.applied(lm.model):
            assert _same(_state(lm.model), changed)
            raise ZeroDivisionError
    assert _same(_state(lm.model), base)


def test_composed_edits_each_measurable_and_reverted(photo_batch, restyled_pairs, setup):
    lm, ex, site, st = setup
    base = _state(lm.model)
    probe = lm.normalize(photo_batch()[1:3])
    seq = EditSequence()
    first = rewrite(lm, site, ex, config=EditConfig(), stats=st)
    seq.append(first)
    with first.applied(lm.model):  # the second edit is computed on the model the first one left
        x2, xp2, m2 = restyled_pairs(1, texture="gravel")
        second = rewrite(lm, site, Exemplars(x2, xp2, m2), config=EditConfig(), stats=st)
        third = finetune(lm, 13, Exemplars(x2, xp2), target=281,
                         config=FinetuneConfig(scope="local", lr=1e-3, steps=2))
    seq.append(second)
    seq.append(third)
    outputs = []
    for i, e in seq.steps(lm.model):
        with torch.no_grad():
            outputs.append(lm.model(probe))
        assert e.is_applied(lm.model)
    assert len(outputs) == 3 and not torch.equal(outputs[0], outputs[1])
    seq.revert(lm.model)
    assert _same(_state(lm.model), base)
    # out of order, the second edit meets a base it was not made for
    with pytest.raises(ValueError, match="different base weight"):
        second.apply(lm.model)
    with seq.applied(lm.model):
        pass
    assert _same(_state(lm.model), base)


def test_save_load_identical_and_refused_on_another_base(setup, tmp_path):
    lm, ex, site, st = setup
    base = _state(lm.model)
    edit = rewrite(lm, site, ex, config=EditConfig(rank=2), stats=st)
    st_path, js_path = edit.save(tmp_path / "fix")
    meta = json.loads(js_path.read_text())
    assert meta["method"] == "rewrite" and meta["config"]["rank"] == 2 and "torch" in meta["versions"]
    assert meta["base_hashes"][f"{site.layer}.weight"] == edit.base_hashes[f"{site.layer}.weight"]
    loaded = Edit.load(tmp_path / "fix.safetensors", model=lm.model)
    with edit.applied(lm.model):
        a = _state(lm.model)
    with loaded.applied(lm.model):
        b = _state(lm.model)
    assert _same(a, b) and _same(_state(lm.model), base)
    assert loaded.metrics == edit.metrics
    # another base weight: refused at load and at apply, unless forced
    other = rewrite(lm, 13, ex, config=EditConfig(), stats=None)
    with other.applied(lm.model):
        pass
    w = dict(lm.model.named_parameters())[f"{site.layer}.weight"]
    original = w.detach().clone()
    with torch.no_grad():
        w[0, 0] += 1.0
    try:
        with pytest.raises(ValueError, match="different base weight"):
            Edit.load(tmp_path / "fix", model=lm.model)
        with pytest.raises(ValueError, match="force=True"):
            loaded.apply(lm.model)
        forced = Edit.load(tmp_path / "fix", model=lm.model, force=True)
        with forced.applied(lm.model, force=True):
            pass
    finally:
        with torch.no_grad():
            w.copy_(original)
    assert _same(_state(lm.model), base)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Edit.load(tmp_path / "missing")


def test_cli_stats_edit_apply(photo_batch, restyled_pairs, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from modeledit.cli import main

    monkeypatch.setenv("MODELEDIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, x in enumerate(photo_batch(128)[:3]):
        Image.fromarray((x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / f"{i}.png")
    x, xp, m = restyled_pairs(1)
    for name, t in (("x", x[0]), ("xp", xp[0])):
        Image.fromarray((t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    Image.fromarray((m[0, 0].numpy() * 255).astype(np.uint8)).save(tmp_path / "m.png")

    assert main(["stats", "mobilenet_v2", "--layer", "features.17", "--images", str(folder), "--size", "128"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["site"] == "features.17" and out["images"] == 3 and out["keys"] == 3 * 16 and not out["from_cache"]
    stats_args = ["stats", "mobilenet_v2", "--layer", "features.17", "--images", str(folder), "--size", "128"]
    assert main(stats_args) == 0 and json.loads(capsys.readouterr().out)["from_cache"]
    Path(out["cache"]).write_bytes(b"not a cache file")   # a corrupt file is recomputed, so not "from cache"
    assert main(stats_args) == 0
    again = json.loads(capsys.readouterr().out)
    assert not again["from_cache"] and again["keys"] == out["keys"]
    args = ["edit", "mobilenet_v2", "--layer", "features.17", "--original", str(tmp_path / "x.png"),
            "--transformed", str(tmp_path / "xp.png"), "--masked", "--mask", str(tmp_path / "m.png"), "--images", str(folder),
            "--size", "128", "--out", str(tmp_path / "e")]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    for k in ("objective_before", "objective_after", "seconds", "solver", "layer"):
        assert k in res
    assert res["objective_after"] < res["objective_before"] and res["solver"] == "closed_form"
    written = (tmp_path / "e.json").read_bytes()
    assert main(args + ["--size", "64"]) == 2    # an edit already at --out is kept: refused before any work
    assert "already holds an edit" in capsys.readouterr().err and (tmp_path / "e.json").read_bytes() == written
    assert main(args + ["--force"]) == 0 and json.loads(capsys.readouterr().out)["files"]
    assert main(args[:-2] + ["--solver", "adam", "--steps", "3", "--rank", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["solver"] == "adam"
    assert main(["apply", "mobilenet_v2", str(tmp_path / "e"), str(tmp_path / "xp.png"), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert len(pred) == 1 and len(pred[0]["after"]) == 5 and pred[0]["after"] != pred[0]["before"]
    assert main(args[:-2] + ["--rank", "5000"]) == 2
    assert "larger than the key dimension" in capsys.readouterr().err
    bad_mask = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad_mask)
    assert main(args[:5] + [str(tmp_path / "x.png"), "--transformed", str(tmp_path / "xp.png"), "--masked", "--mask", str(bad_mask)]) == 2
    assert "is 8x8 but its image" in capsys.readouterr().err  # a mask of another size is refused, naming both sizes
    Image.fromarray(np.zeros(Image.open(tmp_path / "x.png").size[::-1], np.uint8)).save(bad_mask)
    assert main(args[:5] + [str(tmp_path / "x.png"), "--transformed", str(tmp_path / "xp.png"), "--masked", "--mask", str(bad_mask)]) == 2
    assert "mask is empty" in capsys.readouterr().err


def test_edit_files_are_0644(tmp_path):
    import os
    import stat

    from modeledit import load_model
    from modeledit.edit import ParamChange

    lm = load_model("world_vgg")
    name = next(n for n, _ in lm.model.named_parameters())
    p = dict(lm.model.named_parameters())[name]
    e = Edit.from_changes(lm.model, "finetune_local", {name: ParamChange("delta", {"delta": torch.zeros_like(p)})},
                          sites=[name.rsplit(".", 1)[0]])   # a saved edit names a known method and its site
    st, js = e.save(tmp_path / "e")
    old = os.umask(0o022)
    os.umask(old)
    for f in (st, js):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644 & ~old


def test_an_edit_of_several_rules_saves_loads_and_applies_the_same(tmp_path):
    """rewrite_rules' edits are files like any other (they were refused at save: unknown method)."""
    from modeledit import load_model
    from modeledit.edit import Edit
    from modeledit.eval.world.data import WorldDataset
    from modeledit.rules import Rule, rewrite_rules

    lm = load_model("world_vgg")
    ds = WorldDataset("train", n=20)
    x = torch.stack([ds[i][0] for i in range(20)])
    rules = [Rule.from_images(lm, "a", x[:2], x[:2].flip(-1)), Rule.from_images(lm, "b", x[2:4], x[2:4].flip(-2))]
    edit = rewrite_rules(lm, rules, "-1", stats=torch.utils.data.TensorDataset(x[4:]))
    edit.save(tmp_path / "rules")
    again = Edit.load(tmp_path / "rules", model=lm.model)
    assert again.method == "rewrite_rules"
    with edit.applied(lm.model):
        first = lm.predict(x[:4])
    with again.applied(lm.model):
        assert torch.equal(lm.predict(x[:4]), first)
    from modeledit.rules import scale_edit

    half = scale_edit(edit, 0.5)   # a scaled edit keeps its provenance (the weights record was dropped) and saves
    assert half.weights == edit.weights and half.weights["weights"] != "unknown" and half.versions == edit.versions
    half.save(tmp_path / "half")
    assert Edit.load(tmp_path / "half", model=lm.model).metrics["strength"] == 0.5
