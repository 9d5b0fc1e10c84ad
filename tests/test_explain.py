"""Explanation maps (captum) before and after a real edit: shapes, finiteness, change, no hook leak, figure."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modeledit.exemplars import Exemplars
from modeledit.rrr import RRRConfig, rrr

pytest.importorskip("captum")
from modeledit.eval.explain import (  # noqa: E402
    EXPLAINERS, ExplainConfig, attribution_maps, before_after, compare_edits, explanation_figure, mask_share,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def case(car, snowy_cars, world_vgg):
    """A real edit: RRR on one snowy car (road mask) at site 3; images: the exemplar and two held-out snowy cars."""
    x, xp, m = snowy_cars((0, 3, 4))
    ex = Exemplars(x[:1], xp[:1], m[:1, None])
    edit = rrr(world_vgg, 3, ex, target=car, config=RRRConfig(scope="global", lr=1e-2, steps=20, lam=5.0))
    return xp, m, edit


def _hooks(model):
    keys = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks")
    return {(n, k): len(getattr(mod, k, {})) for n, mod in model.named_modules() for k in keys}


def test_maps_before_after_a_real_edit(car, world_vgg, case, tmp_path):
    model = world_vgg.model
    xp, m, edit = case
    hooks = _hooks(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # the caller's mode comes back
    maps = before_after(world_vgg, edit, xp, target=car, config=ExplainConfig(ig_steps=8))
    assert model.training
    model.eval()
    assert _hooks(model) == hooks  # captum's hooks are gone
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # edit reverted
    assert all(p.grad is None for p in model.parameters())
    assert set(maps) == {"before", "after"} and set(maps["before"]) == set(EXPLAINERS)
    for stage in maps.values():
        for name, a in stage.items():
            assert a.shape == (3, 64, 64) and a.dtype == np.float32 and np.isfinite(a).all(), name
            assert (a >= 0).all() and a.max() > 0, name
    for name in EXPLAINERS:
        assert not np.allclose(maps["before"][name], maps["after"][name], rtol=1e-3, atol=0), name
    # the penalty trained on the exemplar's road: the input gradient there shrinks (measured 65 -> 8)
    inside = {s: (maps[s]["input_gradient"] * m.numpy()).sum((1, 2)) for s in maps}
    assert inside["after"][0] < 0.5 * inside["before"][0]
    share = mask_share(maps["before"], m.numpy())
    assert all(((0 <= v) & (v <= 1)).all() for v in share.values())
    g = maps["before"]["gradcam"][1]
    assert share["gradcam"][1] == pytest.approx(float((g * m[1].numpy()).sum() / g.sum()), rel=1e-5)
    png = explanation_figure(xp, maps, tmp_path / "fig" / "explain.png", ["exemplar", "test 1", "test 2"])
    from PIL import Image

    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100


def test_prediction_default_single_image_and_errors(world_vgg, case):
    model = world_vgg.model
    xp, _, edit = case
    x = xp[0]
    with torch.no_grad():
        pred = int(model(world_vgg.normalize(x[None])).argmax(-1))
    a = attribution_maps(world_vgg, x, site=3, config=ExplainConfig(methods=["gradcam", "input_gradient"]))
    b = attribution_maps(world_vgg, x, target=pred, site=3, config=ExplainConfig(methods=["gradcam", "input_gradient"]))
    assert set(a) == {"gradcam", "input_gradient"} and all(np.array_equal(a[k], b[k]) for k in a)
    assert ExplainConfig.from_json(ExplainConfig(ig_steps=4).to_json()) == ExplainConfig(ig_steps=4)
    with pytest.raises(ValueError, match="needs an edit site"):
        attribution_maps(world_vgg, x, config=ExplainConfig(methods=["gradcam"]))
    with pytest.raises(KeyError, match="unknown explanation methods"):
        ExplainConfig(methods=["lime"])
    with pytest.raises(TypeError, match="takes a LoadedModel"):
        attribution_maps(model, x, site=3)  # a bare module: the image convention needs the model's normalisation
    with pytest.raises(ValueError, match="2 targets for 1 images"):
        attribution_maps(world_vgg, x, target=[0, 1], site=3)


def test_missing_captum_names_the_extra(world_vgg, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "captum.attr", None)  # import of captum.attr now fails
    with pytest.raises(ImportError, match=r"modeledit\[explain\]"):
        attribution_maps(world_vgg, torch.zeros(1, 3, 64, 64), target=0, config=ExplainConfig(methods=["input_gradient"]))


def test_compare_edits_one_column_per_method(car, world_vgg, case, tmp_path):
    from modeledit.finetuning import FinetuneConfig, finetune

    xp, m, edit = case
    x = xp[:2]
    cfg = ExplainConfig(methods=["gradcam", "input_gradient"])
    ft = finetune(world_vgg, 3, Exemplars(x[:1], x[:1], m[:1, None]), target=car, config=FinetuneConfig(scope="global", lr=1e-2, steps=5))
    maps = compare_edits(world_vgg, {"rrr_global": edit, "finetune_global": ft}, x, config=cfg)
    assert list(maps) == ["before", "rrr_global", "finetune_global"]
    ba = before_after(world_vgg, edit, x, config=cfg)
    for k in cfg.methods:
        assert np.array_equal(maps["before"][k], ba["before"][k]) and np.array_equal(maps["rrr_global"][k], ba["after"][k])
        assert not np.array_equal(maps["finetune_global"][k], maps["rrr_global"][k])
    png = explanation_figure(xp[:2], maps, tmp_path / "methods.png")
    assert png.stat().st_size > 1000
    with pytest.raises(ValueError, match="names the unedited model"):
        compare_edits(world_vgg, {"before": edit}, x, config=cfg)
