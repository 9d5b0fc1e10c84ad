"""Right for the right reasons: the input-gradient penalty inside the mask, local and global, as an Edit."""
from __future__ import annotations

import pytest
import torch

from modeledit.edit import Edit
from modeledit.exemplars import Exemplars
from modeledit.finetuning import FinetuneConfig, finetune
from modeledit.rrr import LAMBDA_GRID, RRRConfig, explanation_penalty, rrr

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ex(snowy_cars, world_vgg):
    x, xp, m = snowy_cars((0,))
    return Exemplars(x, xp, m[:, None])


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _mass(lm, ex, mask):
    return explanation_penalty(lm, ex.x_prime, mask)


@pytest.mark.parametrize("scope", ["local", "global"])
def test_penalty_lowers_gradient_mass_in_the_mask_versus_plain_finetuning(car, world_vgg, ex, scope):
    model = world_vgg.model
    base = _state(model)
    steps, lr = 20, 1e-2
    plain = finetune(world_vgg, 3, ex, target=car, config=FinetuneConfig(scope=scope, lr=lr, steps=steps))
    edit = rrr(world_vgg, 3, ex, target=car, config=RRRConfig(scope=scope, lr=lr, steps=steps, lam=5.0))
    assert edit.method == f"rrr_{scope}" and set(edit.changes) == set(plain.changes)
    assert all(torch.equal(v, base[k]) for k, v in _state(model).items())  # the model is left alone
    m0 = _mass(world_vgg, ex, ex.mask)
    with plain.applied(model):
        m_plain = _mass(world_vgg, ex, ex.mask)
    with edit.applied(model):
        m_rrr = _mass(world_vgg, ex, ex.mask)
        with torch.no_grad():
            assert int(model(world_vgg.normalize(ex.x_prime)).argmax(-1)) == car  # still learns the exemplar's class
    assert edit.metrics["penalty_before"] == pytest.approx(m0) and edit.metrics["penalty_after"] == pytest.approx(m_rrr)
    assert m_rrr < 0.5 * m_plain and m_rrr < 0.5 * m0
    assert edit.metrics["loss_after"] < 0.5 * edit.metrics["loss_before"]


def test_lambda_zero_is_plain_finetuning_bit_for_bit(car, world_vgg, ex):
    cfg = dict(scope="local", lr=1e-2, steps=5)
    plain = finetune(world_vgg, 3, ex, target=car, config=FinetuneConfig(**cfg))
    zero = rrr(world_vgg, 3, ex, target=car, config=RRRConfig(**cfg, lam=0.0))
    assert all(torch.equal(zero.changes[k].tensors["value"], plain.changes[k].tensors["value"]) for k in plain.changes)


def test_mask_free_variant_penalises_everywhere(car, world_vgg, ex):
    model = world_vgg.model
    no_mask = Exemplars(ex.x, ex.x_prime)
    a = rrr(world_vgg, 3, no_mask, target=car, config=RRRConfig(lr=1e-2, steps=15, lam=5.0))
    b = rrr(world_vgg, 3, ex, target=car, config=RRRConfig(lr=1e-2, steps=15, lam=5.0, region="everywhere"))
    assert a.metrics["region"] == b.metrics["region"] == "everywhere"
    assert all(torch.equal(a.changes[k].tensors["value"], b.changes[k].tensors["value"]) for k in a.changes)
    total0 = _mass(world_vgg, ex, None)
    with a.applied(model):
        assert _mass(world_vgg, ex, None) < 0.5 * total0
        # outside the mask too: the mask-free penalty reaches where the masked one does not
        outside = 1 - ex.mask
        assert a.metrics["penalty_after"] == pytest.approx(_mass(world_vgg, ex, None))
        m_out = _mass(world_vgg, ex, outside)
    masked = rrr(world_vgg, 3, ex, target=car, config=RRRConfig(lr=1e-2, steps=15, lam=5.0))
    with masked.applied(model):
        assert _mass(world_vgg, ex, outside) > m_out


def test_saves_reloads_reverts_and_errors(car, world_vgg, ex, tmp_path):
    model = world_vgg.model
    base = _state(model)
    cfg = RRRConfig(scope="global", lr=1e-2, steps=3, lam=LAMBDA_GRID[0])
    assert RRRConfig.from_json(cfg.to_json()) == cfg
    edit = rrr(world_vgg, 3, ex, target=car, config=cfg)
    with edit.applied(model), torch.no_grad():
        a = model(world_vgg.normalize(ex.x_prime))
    edit.save(tmp_path / "rrr")
    loaded = Edit.load(tmp_path / "rrr", model=model)
    assert loaded.method == "rrr_global" and loaded.config == edit.config and loaded.metrics["lam"] == LAMBDA_GRID[0]
    with loaded.applied(model), torch.no_grad():
        assert torch.equal(model(world_vgg.normalize(ex.x_prime)), a)
    assert all(torch.equal(v, base[k]) for k, v in _state(model).items())
    with pytest.raises(ValueError, match="non-negative"):
        RRRConfig(lam=-1.0)
    with pytest.raises(ValueError, match="unknown penalty region"):
        RRRConfig(region="outside")
    with pytest.raises(ValueError, match="unknown fine-tuning scope"):
        RRRConfig(scope="all")
