"""Weight-interpolation patching (PAINT): α = 0 is the base, α = 1 the fine-tuned model, edits are values."""
from __future__ import annotations

import pytest
import torch

from modeledit.edit import Edit
from modeledit.exemplars import Exemplars
from modeledit.finetuning import FinetuneConfig, finetune
from modeledit.patching import ALPHA_GRID, PatchConfig, interpolate, patch


@pytest.fixture(scope="module")
def ex(snowy_cars, world_vgg):
    x, xp, m = snowy_cars((0, 1))
    return Exemplars(x, xp, m[:, None])


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rounding_close(new: torch.Tensor, ft: torch.Tensor, base: torch.Tensor) -> bool:
    """float32 θ₀ + fl(θ_ft - θ₀) is θ_ft up to 2 eps max(|θ₀|, |θ_ft|) per element (exact when the two
    are within a factor 2 of each other; off by a few ulps of θ₀ where a small weight changes sign)."""
    tol = 2 * torch.finfo(new.dtype).eps * torch.maximum(base.abs(), ft.abs())
    return bool(((new - ft).abs() <= tol).all())


@pytest.mark.parametrize("scope", ["local", "global"])
def test_alpha_zero_is_the_base_and_alpha_one_the_finetuned_model(car, world_vgg, ex, scope):
    model = world_vgg.model
    xn = world_vgg.normalize(ex.x_prime)
    base = _state(model)
    ft = finetune(world_vgg, 3, ex, target=car, config=FinetuneConfig(scope=scope, lr=1e-2, steps=15))
    assert all(torch.equal(v, base[k]) for k, v in _state(model).items())  # the model is left alone
    with torch.no_grad():
        logits0 = model(xn)
        with ft.applied(model):
            ft_state, logits_ft = _state(model), model(xn)

    with interpolate(model, ft, 0.0).applied(model):  # bit for bit the base
        assert all(torch.equal(v, base[k]) for k, v in _state(model).items())
        with torch.no_grad():
            assert torch.equal(model(xn), logits0)

    one = interpolate(model, ft, 1.0)
    assert set(one.changes) == set(ft.changes) and all(c.op == "delta" for c in one.changes.values())
    with one.applied(model):
        state = _state(model)
        exact = sum(int((state[k] == ft_state[k]).sum()) for k in ft.changes)
        assert all(_rounding_close(state[k], ft_state[k], base[k]) for k in ft.changes)
        with torch.no_grad():
            torch.testing.assert_close(model(xn), logits_ft, rtol=1e-5, atol=1e-5)
    assert exact >= 0.99 * sum(base[k].numel() for k in ft.changes)  # nearly every element comes back exactly
    assert all(torch.equal(v, base[k]) for k, v in _state(model).items())

    # in between: the target's log-probability moves monotonically for this small step
    lp = []
    for a in (0.0, *ALPHA_GRID):
        with interpolate(model, ft, a).applied(model), torch.no_grad():
            lp.append(float(model(xn).log_softmax(-1)[:, car].mean()))
    assert lp == sorted(lp) and lp[-1] > lp[0]


def test_patch_saves_reloads_and_reverts(car, world_vgg, ex, tmp_path):
    model = world_vgg.model
    base = _state(model)
    cfg = PatchConfig(scope="global", lr=1e-2, steps=10, alpha=0.5)
    assert PatchConfig.from_json(cfg.to_json()) == cfg
    edit = patch(world_vgg, 3, ex, target=car, config=cfg)
    xn = world_vgg.normalize(ex.x_prime)
    assert edit.method == "paint_global" and edit.config["alpha"] == 0.5 and edit.metrics["source_method"] == "finetune_global"
    assert "classifier" in " ".join(edit.changes) or len(edit.changes) > 1
    with edit.applied(model), torch.no_grad():
        a = model(xn)
    edit.save(tmp_path / "paint")
    loaded = Edit.load(tmp_path / "paint", model=model)
    assert loaded.method == "paint_global" and loaded.config == edit.config
    with loaded.applied(model), torch.no_grad():
        assert torch.equal(model(xn), a)
    assert all(torch.equal(v, base[k]) for k, v in _state(model).items())
    # the same fine-tuning at α = 0.5 from patch() and from interpolate() agree bit for bit
    ft = finetune(world_vgg, 3, ex, target=car, config=cfg.finetune_config())
    half = interpolate(world_vgg, ft, 0.5)
    assert all(torch.equal(half.changes[k].tensors["delta"], edit.changes[k].tensors["delta"]) for k in edit.changes)


def test_errors(car, world_vgg, ex):
    with pytest.raises(ValueError, match="alpha must be in"):
        PatchConfig(alpha=1.5)
    ft = finetune(world_vgg, 3, ex, target=car, config=FinetuneConfig(lr=1e-2, steps=2))
    with pytest.raises(ValueError, match="alpha must be in"):
        interpolate(world_vgg, ft, -0.1)
    with ft.applied(world_vgg), pytest.raises(ValueError, match="different base weight"):
        interpolate(world_vgg.model, ft, 0.5)  # computed on another base
