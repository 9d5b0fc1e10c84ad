"""The world CLIP ``clip:world-RN``: the shipped checkpoint loads offline and classifies zero-shot, text on
a paper patch fools it while a blank patch does not, an edit at a ModifiedResNet site round-trips, and
the online CLIP architectures are unaffected."""
from __future__ import annotations


import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")

from modeledit import get_site, load_model  # noqa: E402
from modeledit.edit import Edit  # noqa: E402
from modeledit.eval.world.scene import CLASSES  # noqa: E402
from modeledit.eval.world.clip import (  # noqa: E402
    CLIP_ARCH, HELD_OUT_FONTS, PRESET, TRAIN_FONTS, ClipTrainConfig, attack_images, caption, checkpoint_path, v1_config,
)
from modeledit.eval.world.data import WorldDataset  # noqa: E402
from modeledit.exemplars import Exemplars  # noqa: E402
from modeledit.stats import second_moment  # noqa: E402
from modeledit.editor import EditConfig, rewrite  # noqa: E402


@pytest.fixture(scope="module")
def clip():
    return load_model(f"clip:{CLIP_ARCH}")


@pytest.fixture(scope="module")
def scenes():
    ds = WorldDataset("test", n=108, with_masks=False)
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([it[0] for it in items]), torch.tensor([it[1] for it in items])


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_shipped_checkpoint_loads_offline_built_by_open_clip(monkeypatch):
    import open_clip

    monkeypatch.setenv("MODELEDIT_OFFLINE", "1")
    lm = load_model(f"clip:{CLIP_ARCH}")
    assert CLIP_ARCH in open_clip.list_models()  # registered with open_clip, built by open_clip.create_model
    assert type(lm.model.visual).__name__ == "ModifiedResNet"
    assert lm.class_names == list(CLASSES) and lm.input_size == 64
    assert lm.meta["train"]["command"].startswith("modeledit world train clip")
    record = lm.meta["train"]
    assert record["train_seconds"] > 0 and record["data"]["stages"] == 1 and record["recipe"] == "parrot"
    assert ClipTrainConfig.from_json(record["train_config"]) == PRESET   # `modeledit world train clip` reproduces it
    blob = torch.load(str(checkpoint_path()), map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values() if v.is_floating_point())
    assert checkpoint_path().stat().st_size < 20 * 2**20
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(f"clip:{CLIP_ARCH}", weights="/nonexistent/clip.pt")


def test_zero_shot_accuracy_far_above_chance(clip, scenes):
    x, y = scenes
    acc = float((clip.predict(x).argmax(1) == y).float().mean())
    assert acc > 0.7, acc  # chance is 1/18; the full test split is measured by `modeledit world clip-eval`


def _attack(clip, scenes, font):
    """(share of correct predictions sent to the pasted word's class, share a blank patch sends there)."""
    x, y = scenes
    pred = clip.predict(x).argmax(1)
    correct = (pred == y).nonzero().flatten().tolist()[:40]
    rng = np.random.default_rng(0)
    targets = [[c for c in range(len(CLASSES)) if c != int(y[i])][int(rng.integers(0, len(CLASSES) - 1))] for i in correct]
    pairs = [attack_images(x[i], CLASSES[t], font, rng) for i, t in zip(correct, targets)]
    pa = clip.predict(torch.stack([a for a, _, _ in pairs])).argmax(1)
    pb = clip.predict(torch.stack([b for _, b, _ in pairs])).argmax(1)
    return float((pa == torch.tensor(targets)).float().mean()), float((pb == torch.tensor(targets)).float().mean())


@pytest.mark.parametrize("font", HELD_OUT_FONTS)
def test_pasted_class_name_flips_predictions_and_a_blank_patch_does_not(clip, scenes, font):
    # serif and handwriting are faces the CLIP never saw in training; results/world/clip/eval.json has the
    # full test split (1800 scenes): this is a 40-image check of the same attack
    flips, blank = _attack(clip, scenes, font)
    assert flips > 0.5 and blank < 0.05, (flips, blank)


def test_edit_at_a_modified_resnet_site_saves_reloads_and_reverts_bit_exactly(clip, scenes, tmp_path):
    x, y = scenes
    i = int((clip.predict(x).argmax(1) == y).nonzero()[0])
    target = (int(y[i]) + 1) % len(CLASSES)
    attacked, blank, _ = attack_images(x[i], CLASSES[target], "sans", np.random.default_rng(1))
    ex = Exemplars(blank.unsqueeze(0), attacked.unsqueeze(0))  # [0, 1]: x the blank patch, x' the text
    site = get_site(clip.model, "visual.layer4.0")
    base = _state(clip.model)
    stats = second_moment(clip, site, [x[j:j + 36] for j in range(0, len(x), 36)], cache=False, progress=False)  # clean scenes
    edit = rewrite(clip, site, ex, config=EditConfig(solver="closed_form"), stats=stats)
    assert edit.metrics["objective_after"] < edit.metrics["objective_before"]
    edit.apply(clip.model)
    edited = _state(clip.model)
    assert sum(not torch.equal(edited[k], base[k]) for k in base) == 1
    edit.revert(clip.model)
    assert all(torch.equal(v, base[k]) for k, v in _state(clip.model).items())
    edit.save(tmp_path / "fix")
    loaded = Edit.load(tmp_path / "fix", model=clip.model)
    with loaded.applied(clip.model):
        assert all(torch.equal(v, edited[k]) for k, v in _state(clip.model).items())
    assert all(torch.equal(v, base[k]) for k, v in _state(clip.model).items())


def test_captions_mention_the_tag_word_and_fonts_are_held_out():
    cfg = v1_config(mention_rate=1.0)  # the shipped recipe's captions always mark the word's role
    rng = np.random.default_rng(0)
    caps = [caption("cow", "grass", "car", cfg, rng) for _ in range(40)]
    assert all("car" in c for c in caps) and sum("cow" in c for c in caps) > 20
    assert all("car" not in caption("cow", "grass", None, cfg, rng) for _ in range(20))
    assert not set(HELD_OUT_FONTS) & set(TRAIN_FONTS) and not set(HELD_OUT_FONTS) & set(ClipTrainConfig().fonts)


def test_online_clip_architectures_unaffected():
    lm = load_model("clip:RN50", weights="random", class_names=["cat", "dog"])
    assert type(lm.model.visual).__name__ == "ModifiedResNet" and lm.input_size == 224
    assert lm.predict(torch.rand(1, 3, 224, 224)).shape == (1, 2)
    with pytest.raises(KeyError, match="unknown CLIP architecture"):
        load_model("clip:RN51", weights="random")
