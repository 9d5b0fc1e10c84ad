"""Local and global fine-tuning baselines return the same Edit value as the rewrite."""
from __future__ import annotations

import pytest
import torch

from modeledit import get_site, load_model
from modeledit.exemplars import Exemplars
from modeledit.finetuning import FINETUNE_GRID, FinetuneConfig, downstream_parameters, finetune

pytestmark = pytest.mark.usefixtures("one_thread")

TABBY = 281


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def ex(restyled_pairs, mobilenet):
    x, xp, m = restyled_pairs(2)
    return Exemplars(x, xp, m)


def test_local_finetune_changes_only_the_site_weight(mobilenet, ex):
    base = _state(mobilenet.model)
    edit = finetune(mobilenet, 13, ex, target=TABBY, config=FinetuneConfig(scope="local", lr=1e-3, steps=8))
    assert list(edit.changes) == ["features.14.conv.2.weight"] and edit.method == "finetune_local"
    assert all(torch.equal(v, base[k]) for k, v in _state(mobilenet.model).items())  # model left alone
    assert edit.metrics["loss_after"] < edit.metrics["loss_before"]
    with edit.applied(mobilenet.model):
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(mobilenet.predict(ex.x_prime), torch.tensor([TABBY, TABBY]))
        assert float(loss) == pytest.approx(edit.metrics["loss_after"], rel=1e-5)
    assert all(torch.equal(v, base[k]) for k, v in _state(mobilenet.model).items())


def test_global_finetune_trains_everything_after_the_site(mobilenet, ex):
    site = get_site(mobilenet.model, 13)
    names = downstream_parameters(mobilenet.model, site, mobilenet.normalize(ex.x_prime))
    order = [n for n, _ in mobilenet.model.named_parameters()]
    first = order.index("features.14.conv.2.weight")
    assert names[0] == "features.14.conv.2.weight" and "classifier.1.weight" in names
    assert set(names) == set(order[first:])  # MobileNetV2 registers parameters in forward order
    edit = finetune(mobilenet, site, ex, config=FinetuneConfig(scope="global", lr=1e-3, steps=3))  # target: own prediction
    assert set(edit.changes) == set(names) and edit.metrics["loss_after"] <= edit.metrics["loss_before"]
    assert all(c.op == "replace" for c in edit.changes.values())


def test_residual_site_cuts_the_skip_too():
    torch.manual_seed(0)
    lm = load_model("resnet18", weights="random")
    site = get_site(lm.model, 5)  # layer3.1: the block input reaches the output through the skip
    names = downstream_parameters(lm.model, site, torch.randn(1, 3, 64, 64))
    assert names[0] == "layer3.1.conv2.weight" and "fc.weight" in names
    assert not any(n.startswith(("layer3.0", "layer3.1.conv1", "layer2", "conv1")) for n in names)


def test_clip_zero_shot_finetunes_through_its_logits():
    pytest.importorskip("open_clip")
    torch.manual_seed(0)
    lm = load_model("clip:RN50", weights="random", class_names=["cat", "road", "snow"])
    x = torch.rand(1, 3, 224, 224)
    edit = finetune(lm, -1, x, target=1, config=FinetuneConfig(scope="global", lr=1e-1, steps=2))
    assert "text_head" not in " ".join(edit.changes)  # the zero-shot head is a fixed buffer
    assert any(n.startswith("visual.attnpool") for n in edit.changes)
    assert edit.metrics["loss_after"] < edit.metrics["loss_before"]


def test_config_and_errors(mobilenet, ex):
    cfg = FinetuneConfig(scope="global", lr=1e-5, steps=800)
    assert FinetuneConfig.from_json(cfg.to_json()) == cfg
    assert FINETUNE_GRID[0] == (1e-2, 500) and FINETUNE_GRID[-1] == (1e-6, 800)
    with pytest.raises(ValueError, match="unknown fine-tuning scope"):
        finetune(mobilenet, 13, ex, config=FinetuneConfig(scope="everything"))
    with pytest.raises(ValueError, match="3 targets for 2 exemplars"):
        finetune(mobilenet, 13, ex, target=[1, 2, 3], config=FinetuneConfig(steps=1))
