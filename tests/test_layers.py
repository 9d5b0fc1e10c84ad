from __future__ import annotations

import pytest
import torch

from modeledit import load_model
from modeledit.layers import BoundSite, bind_site, capture, capture_sites, get_site, list_sites, resolve_module, site_forward


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _check_sites(model, x, which, rtol=1e-4):
    """Keys/values have the declared channels and the site's function reproduces its output."""
    sites = list_sites(model)
    chosen = [sites[i] for i in which]
    acts = capture_sites(model, x, chosen)
    for s in chosen:
        a = acts[s.name]
        assert a.key.shape[0] == x.shape[0] and a.key.shape[1] == s.key_channels, (s, a.key.shape)
        assert a.value.shape[1] == s.value_channels
        recomputed = site_forward(model, s, a.key, a.skip)
        torch.testing.assert_close(recomputed, a.value, rtol=rtol, atol=1e-4 * float(a.value.abs().max()) + 1e-5)
    assert _hooks(model) == 0
    return sites


def test_mobilenet_sites_real_weights(mobilenet, photos):
    x = mobilenet.normalize(mobilenet.preprocess(photos["chelsea"])[None])
    sites = _check_sites(mobilenet.model, x, [0, 2, 9, 16])
    assert len(sites) == 17
    assert [s.skip is not None for s in sites].count(True) == 10  # the blocks with a residual connection


@pytest.mark.parametrize("arch,size,which,count", [
    ("resnet18", 64, [0, 3, 7], 8),
    ("resnet50", 64, [0, 4, 15], 16),
    ("vgg16_bn", 64, [0, 6, 12], 13),
    ("vgg16", 64, [1, 12], 13),
])
def test_torchvision_sites(arch, size, which, count):
    torch.manual_seed(0)
    lm = load_model(arch, weights="random")
    # random init: give BN real statistics so the folded affine map is exercised
    for m in lm.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    sites = _check_sites(lm.model, torch.randn(2, 3, size, size), which)
    assert len(sites) == count


def test_world_nets_sites():
    from modeledit.eval.world.nets import build_net

    for arch, n in (("vgg_small", 8), ("resnet_small", 4)):
        net = build_net(arch, num_classes=5).eval()
        sites = _check_sites(net, torch.randn(2, 3, 64, 64), [0, n - 1])
        assert len(sites) == n


def test_clip_and_vit_sites():
    pytest.importorskip("open_clip")
    torch.manual_seed(0)
    rn = load_model("clip:RN50", weights="random", class_names=["a", "b"])
    sites = _check_sites(rn.model, torch.randn(1, 3, 224, 224), [0, 15])
    assert len(sites) == 16 and sites[0].name.startswith("visual.layer1")
    vit = load_model("clip:ViT-B-32", weights="random", class_names=["a", "b"])
    sites = _check_sites(vit.model, torch.randn(2, 3, 224, 224), [0, 11])
    assert len(sites) == 12 and sites[0].kind == "linear" and sites[0].layer.endswith("mlp.c_proj")
    acts = capture_sites(vit.model, torch.randn(2, 3, 224, 224), [sites[3]])[sites[3].name]
    assert acts.key.shape == (2, 3072, 50, 1)  # tokens as pixels: CLS + 7x7 patches


def test_timm_sites():
    pytest.importorskip("timm")
    lm = load_model("timm:resnet18", weights="random", num_classes=4)
    _check_sites(lm.model, torch.randn(1, 3, 64, 64), [0, 7])
    vit = load_model("timm:vit_tiny_patch16_224", weights="random", num_classes=4)
    sites = _check_sites(vit.model, torch.randn(1, 3, 224, 224), [0, 11])
    assert sites[0].layer.endswith("mlp.fc2")


def test_capture_removes_hooks_and_restores_mode_even_on_error(mobilenet):
    model = mobilenet.model
    site = get_site(model, 5)
    model.train()
    try:
        with pytest.raises(ZeroDivisionError):
            with capture(model, [site]) as rec:
                model(torch.rand(1, 3, 64, 64))
                assert not model.training  # capture runs in eval mode (BN statistics untouched)
                raise ZeroDivisionError
        assert _hooks(model) == 0
        assert model.training
        assert rec.keys[site.name].shape[1] == site.key_channels
    finally:
        model.eval()
    with capture(model, [site]) as rec:
        model(torch.rand(1, 3, 64, 64))
    assert _hooks(model) == 0 and not model.training


def test_capture_stop_after_skips_the_rest(mobilenet):
    model = mobilenet.model
    site = get_site(model, 1)
    called = []
    h = model.classifier.register_forward_hook(lambda *a: called.append(1))
    try:
        acts = capture_sites(model, torch.rand(1, 3, 64, 64), [site], stop_after=True)
    finally:
        h.remove()
    assert not called and acts[site.name].value.shape[1] == 24
    assert _hooks(model) == 0


def test_names_and_indices(mobilenet):
    model = mobilenet.model
    assert get_site(model, "features.17").index == 16
    assert get_site(model, -1).name == "features.17"
    assert get_site(model, "features.17.conv.2").name == "features.17"
    with pytest.raises(KeyError, match="features.17"):
        get_site(model, "features.71")
    with pytest.raises(KeyError, match="features.1.conv"):
        resolve_module(model, "features.1.convv")
    with pytest.raises(KeyError, match="out of range"):
        get_site(model, 40)


@pytest.mark.parametrize("arch,idx,size", [("mobilenet_v2", 9, 96), ("vgg16_bn", 6, 64), ("resnet18", 6, 64)])
def test_bound_site_is_resolved_once_and_matches_the_network(arch, idx, size, mobilenet):
    """A bound site knows its modules, weight, folded affine and geometry; its forward reproduces the
    site's output (skip included) and agrees with site_forward; binding again is not needed per call."""
    torch.manual_seed(0)
    lm = mobilenet if arch == "mobilenet_v2" else load_model(arch, weights="random")
    model = lm.model
    site = get_site(model, idx)
    bound = site.bind(model)
    assert isinstance(bound, BoundSite) and bind_site(model, bound) is bound
    assert bind_site(model, site.name).site == site and get_site(model, bound) == site
    assert bound.name == site.name and bound.layer_module is resolve_module(model, site.layer)
    assert bound.weight.shape[:2] == (site.value_channels, site.key_channels)
    assert bound.scale.shape == bound.shift.shape == (site.value_channels,)
    assert (bound.skip_module is not None) == (site.skip is not None)
    x = torch.rand(2, 3, size, size)
    a = capture_sites(model, x, [bound])[site.name]
    out = bound.forward(a.key, a.skip)
    torch.testing.assert_close(out, a.value, rtol=1e-4, atol=1e-4 * float(a.value.abs().max()) + 1e-5)
    assert torch.equal(out, site_forward(model, site, a.key, a.skip))
    w = bound.weight.detach() * 1.5
    assert torch.equal(bound.forward(a.key, a.skip, w), site_forward(model, site, a.key, a.skip, w))
    assert _hooks(model) == 0


def test_stop_forward_stays_inside_capture(mobilenet):
    """rec.run() returns None when the pass is cut short; the stop exception never reaches callers."""
    import pathlib

    import modeledit

    model = mobilenet.model
    site = get_site(model, 2)
    with capture(model, [site], stop_after=True) as rec:
        for _ in range(2):                       # several passes in one block
            assert rec.run(torch.rand(1, 3, 64, 64)) is None
            assert rec.keys[site.name].shape[1] == site.key_channels
    with capture(model, [site]) as rec:
        assert rec.run(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    assert _hooks(model) == 0
    root = pathlib.Path(modeledit.__file__).parent
    users = [p.name for p in root.rglob("*.py") if p.name != "layers.py" and "_StopForward" in p.read_text()]
    assert users == []


def test_a_user_site_rule_registered_later_wins_over_the_catch_all_vgg_rule():
    """The built-in 'vgg' rule matches any Conv-ReLU nn.Sequential; a rule registered later (default priority)
    is tried first, and one that matches nothing leaves the built-in rules as they were."""
    from torch import nn

    from modeledit.layers import _vgg_sites, register_site_rule, site_rule_for, unregister_site_rule

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    assert site_rule_for(net).name == "vgg" and len(list_sites(net)) >= 2
    register_site_rule("only_the_last_conv", lambda m: isinstance(m, nn.Sequential) and len(m) == 9, lambda m: _vgg_sites(m)[-1:])
    register_site_rule("never", lambda m: False, lambda m: [])
    try:
        assert site_rule_for(net).name == "only_the_last_conv"
        assert [s.name for s in list_sites(net)] == [_vgg_sites(net)[-1]["name"]]
        assert site_rule_for(load_model("world_vgg").model).name != "only_the_last_conv"   # its match is the user's to define
        with pytest.raises(ValueError, match="already registered"):
            register_site_rule("never", lambda m: False, lambda m: [])
    finally:
        unregister_site_rule("only_the_last_conv")
        unregister_site_rule("never")
    assert site_rule_for(net).name == "vgg"


def test_layers_json(capsys):
    """`modeledit layers --json` lists the sites with their channels."""
    import json

    from modeledit.cli import main

    assert main(["layers", "mobilenet_v2", "--json"]) == 0
    sites = json.loads(capsys.readouterr().out)
    assert len(sites) >= 17
    assert {"index", "name", "kind", "key_channels", "value_channels"} <= set(sites[0])
