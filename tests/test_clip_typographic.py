"""The typographic study on the world CLIP (issue 15, item 4): its attack is the CLIP's own, every method of the
comparison runs at the ModifiedResNet site before the attention pool (RRR differentiates twice through that
pool), a checkpoint other than the shipped one is used when given, and edited predictions computed from the
site's cached inputs equal the full forward. Real weights: the shipped checkpoint and a damaged copy of it."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("open_clip")

from modeledit import load_model  # noqa: E402
from modeledit.cli import main  # noqa: E402
from modeledit.eval.typographic import PASTERS, TypographicConfig, build_study  # noqa: E402
from modeledit.eval.world.clip import attack_images, checkpoint_path, load_clip_checkpoint, save_clip_checkpoint  # noqa: E402
from modeledit.eval.world.data import WorldDataset  # noqa: E402
from modeledit.exemplars import Exemplars  # noqa: E402
from modeledit.rrr import RRRConfig, rrr  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SITE = "visual.layer4.0"   # the ModifiedResNet's last block: its conv3 is the layer before the attention pool
FONTS = ["serif", "hand", "sans", "world"]
ALL = ["edit", "edit_masked", "finetune_local", "finetune_global", "paint_local", "paint_global", "rrr_local", "rrr_global"]
TINY = ["--dataset", "world:test:54", "--clean", "world:clean:36", "--stats-dataset", "world:train:36", "--attack-class", "car",
        "--paster", "world_clip", "--fonts", ",".join(FONTS), "--sites", SITE]


@pytest.fixture(scope="module")
def clip():
    return load_model("clip:world-RN")


@pytest.fixture(scope="module")
def scenes():
    ds = WorldDataset("test", n=8, with_masks=False)
    return torch.stack([ds[i][0] for i in range(len(ds))]), [int(ds[i][1]) for i in range(len(ds))]


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("font", FONTS)
def test_world_clip_paster_is_the_clip_attack_with_its_patch_as_mask(scenes, font):
    x = scenes[0][3]
    attacked, blank, mask = PASTERS["world_clip"](x, "umbrella", font, 0.2, np.random.default_rng(5))
    a2, b2, _ = attack_images(x, "umbrella", font, np.random.default_rng(5))   # what `modeledit world clip-eval` pastes
    assert torch.equal(attacked, a2) and torch.equal(blank, b2)
    assert mask.dtype == torch.bool and mask.shape == x.shape[1:]
    rows, cols = mask.nonzero(as_tuple=True)
    assert mask[int(rows.min()):int(rows.max()) + 1, int(cols.min()):int(cols.max()) + 1].all()   # one rectangle
    assert 0.03 < float(mask.float().mean()) < 0.5
    out = ~mask
    assert torch.equal(attacked[:, out], x[:, out]) and torch.equal(blank[:, out], x[:, out])   # only the patch changes
    assert float((blank[:, mask] != x[:, mask]).any(0).float().mean()) > 0.9                    # paper covers the patch
    assert float((attacked[:, mask] != blank[:, mask]).any(0).float().mean()) > 0.05            # and the word is on it


@pytest.mark.parametrize("scope", ["local", "global"])
def test_rrr_differentiates_twice_through_the_attention_pool(clip, scenes, scope):
    x, y = scenes
    attacked, blank, mask = PASTERS["world_clip"](x[0], "car", "sans", 0.2, np.random.default_rng(0))
    ex = Exemplars(blank[None], attacked[None], mask[None, None].float())
    base = _state(clip.model)
    edit = rrr(clip, SITE, ex, target=y[0], config=RRRConfig(scope=scope, lr=1e-3, steps=20, lam=10.0))
    assert edit.metrics["penalty_after"] < 0.5 * edit.metrics["penalty_before"]
    assert all(torch.equal(v, base[k]) for k, v in _state(clip.model).items())   # the model is left alone
    with edit.applied(clip.model):
        assert not all(torch.equal(v, base[k]) for k, v in _state(clip.model).items())


def test_paster_choices_of_the_command_are_the_harness_pasters():
    from modeledit.commands.typographic import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    (action,) = [a for a in p._actions if a.dest == "paster"]
    assert sorted(action.choices) == sorted(PASTERS)


def test_every_method_on_the_world_clip_through_the_cli(tmp_path, capsys):
    out = tmp_path / "shipped"
    args = ["typographic", "clip:world-RN", "--weights", str(checkpoint_path()), *TINY, "--methods", ",".join(ALL),
            "--finetune-grid", "1e-3:2", "--strength-grid", "0.5,1", "--alpha-grid", "0.5,1", "--lambda-grid", "10"]
    assert main(args + ["--out", str(out)]) == 0
    cfg = json.loads((out / "manifest.json").read_text())["config"]
    assert cfg["weights"] == str(checkpoint_path()) and cfg["paster"] == "world_clip" and cfg["fonts"] == FONTS
    cells = pd.read_csv(out / "cells.csv")
    assert set(cells["method"]) == set(ALL) and set(cells["site_name"]) == {SITE}
    assert len(cells) == 2 + 2 + 1 + 1 + 2 + 2 + 1 + 1   # strengths and alphas inside their cells
    s = pd.read_csv(out / "summary.csv").set_index("method")
    assert sorted(s.index) == sorted(ALL)
    # the measures the study reports: accuracy under attack (pooled and per font), attack success, clean accuracy,
    # the attack word's own class without text, and the spurious rule "text means the exemplar's class"
    for k in ["attack_acc", "attack_success", "clean", "own_class_acc", "to_exemplar_class", *[f"attack_acc_{f}" for f in FONTS]]:
        assert {f"pre_{k}", f"post_{k}", f"change_{k}_lo", f"change_{k}_hi"} <= set(s.columns), k
    assert "spurious_rule" in s.columns
    assert sum(cells[f"n_attack_acc_{f}"].iloc[0] for f in FONTS) == cells["n_attack_acc"].iloc[0]
    assert cells["n_own_class_acc"].iloc[0] >= 1 and cells["n_clean"].iloc[0] == 36
    assert float(cells["pre_clean"].iloc[0]) > 0.6   # the shipped CLIP
    assert "post_attack_success" in capsys.readouterr().out


def test_another_checkpoint_is_used_when_given(tmp_path, capsys):
    model, record = load_clip_checkpoint(None)
    with torch.no_grad():
        model.visual.attnpool.c_proj.weight.neg_()   # image embeddings flipped: zero-shot picks the least similar class
    path = tmp_path / "other_clip.pt"
    save_clip_checkpoint(path, model, {**record, "note": "damaged copy for a test"})
    out = tmp_path / "other"
    assert main(["typographic", "clip:world-RN", "--weights", str(path), *TINY, "--methods", "edit", "--out", str(out)]) == 0
    cells = pd.read_csv(out / "cells.csv")
    assert json.loads((out / "manifest.json").read_text())["config"]["weights"] == str(path)
    assert float(cells["pre_clean"].iloc[0]) < 0.3   # not the shipped weights (> 0.6 on the same images)


def test_edited_predictions_from_the_site_equal_the_full_forward():
    cfg = TypographicConfig(model="clip:world-RN", dataset="world:test:54", clean="world:clean:48", stats_dataset="world:train:36",
                            paster="world_clip", fonts=FONTS, strength_grid=[0.5, 1.0], finetune_grid=[[1e-2, 3]])
    study, _ = build_study(cfg)
    cells = [{"method": "edit", "site": SITE, "setting": {}}, {"method": "finetune_global", "site": SITE, "setting": {"lr": 1e-2, "steps": 3}}]
    fast = [study(c) for c in cells]
    ev = study.cache.suffix()   # the cell's per-worker cache (eval/cell.py) holds the evaluator
    # the prefix ran once per image set and was reused; global fine-tuning trains only what follows the cut
    assert ev is not None and ev.stats["fallbacks"] == 0 and ev.stats["invalidations"] == 0 and ev.stats["chunks_from_memory"] > 0
    runs = ev.stats["prefix_runs"]
    study.from_site = False
    slow = [study(c) for c in cells]
    assert ev.stats["prefix_runs"] == runs

    def untimed(rows):   # timings differ from run to run; every other column must not
        return [[{k: v for k, v in r.items() if not k.endswith("seconds")} for r in cell] for cell in rows]

    assert untimed(fast) == untimed(slow)
    assert any(r["post_clean"] != r["pre_clean"] or r["post_attack_acc"] != r["pre_attack_acc"] for rows in fast for r in rows)
