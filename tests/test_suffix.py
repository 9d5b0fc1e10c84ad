"""Evaluating from the site on (modeledit.suffix) gives the full forward's predictions on every image,
for each model family, with an edit applied; the cache follows the weights and its memory budget."""
from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from modeledit import get_site, list_sites, load_model
from modeledit.edit import Edit, ParamChange
from modeledit.exemplars import Exemplars
from modeledit.finetuning import FinetuneConfig, finetune
from modeledit.editor import EditConfig, rewrite
from modeledit.stats import second_moment
from modeledit.suffix import SplitError, SuffixCacheConfig, SuffixEvaluator, split_at_site, suffix_forward

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------
# data


@pytest.fixture(scope="module")
def world():
    """120 world test images in [0, 1] and 3 road scenes with the road restyled as snow (x, x', road mask)."""
    from modeledit.eval.world.data import WorldDataset, render_tensors

    ds = WorldDataset("test", n=120)
    x, _ = render_tensors(ds, progress=False)
    road = [i for i in range(len(ds)) if "road" in ds.scene(i).masks][:3]
    orig = [ds.scene(i, context="road", text_tag=False) for i in road]
    snow = [ds.scene(i, context="road", texture_overrides={"road": "snow"}, text_tag=False) for i in road]

    def t(scenes):
        return torch.stack([torch.from_numpy(s.image).permute(2, 0, 1).float() / 255 for s in scenes])

    masks = torch.stack([torch.as_tensor(s.masks["road"]).float() for s in orig])[:, None]
    return x.float() / 255, t(orig), t(snow), masks


def world_edit(lm, site, world):
    """A closed-form rank-1 rewrite at ``site`` with statistics from 120 world images."""
    x, x0, x1, m = world
    stats = second_moment(lm.model, site, [x[i:i + 40] for i in range(0, len(x), 40)], transform=lm.normalize,
                          cache=False, progress=False)
    return rewrite(lm, site, Exemplars(x0, x1, m), config=EditConfig(), stats=stats)


def random_lowrank(model, site, rank=2, scale=0.5, seed=0):
    """A random rank-r change of the site's weight, of the weight's own size."""
    g = torch.Generator().manual_seed(seed)
    w = dict(model.named_parameters())[f"{site.layer}.weight"]
    u = torch.randn(w.shape[0], rank, generator=g)
    v = torch.randn(rank, w[0].numel(), generator=g)
    delta = (u @ v).reshape(w.shape)
    delta = delta * (scale * w.detach().norm() / delta.norm())
    return Edit.from_changes(model, "random_lowrank", {f"{site.layer}.weight": ParamChange("delta", {"delta": delta})})


def assert_same_as_full(lm, ev, images, site, edit):
    """Before and with ``edit``: cached logits == the full forward's (argmax on every image, logits allclose),
    and the edit really changed the model's outputs."""
    with torch.no_grad():
        before = lm.predict(images.x)
    cached_before = ev.logits(images, site)
    assert torch.equal(cached_before.argmax(-1), before.argmax(-1))
    torch.testing.assert_close(cached_before, before, rtol=1e-4, atol=1e-4)
    hits = ev.stats["chunks_from_memory"]
    with edit.applied(lm.model):
        naive = lm.predict(images.x)
        cached = ev.logits(images, site)
    assert ev.stats["chunks_from_memory"] > hits          # the edited model reused the cached site inputs
    assert torch.equal(cached.argmax(-1), naive.argmax(-1))
    torch.testing.assert_close(cached, naive, rtol=1e-4, atol=1e-4)
    assert (naive - before).abs().max() > 1e-3           # the edit matters at this site
    return before, naive


# ---------------------------------------------------------------------------------------------
# every family, with an edit applied


@pytest.mark.parametrize("name,index", [("world_vgg", 2), ("world_vgg", -1), ("world_resnet", 0), ("world_resnet", 1)])
def test_world_models_with_a_closed_form_edit(world, name, index):
    lm = load_model(name)
    site = get_site(lm.model, index)
    ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=32))
    images = ev.image_set(world[0])
    edit = world_edit(lm, site, world)
    assert_same_as_full(lm, ev, images, site, edit)
    split = ev.split(site)
    if site.skip:  # the skip input crosses the cut beside the key (block input or downsample output)
        assert len(split.inputs) == 2
        assert any(("downsample" in n) == site.skip.startswith("output:") for n in split.inputs)
    assert ev.stats["prefix_runs"] == 4 and ev.stats["fallbacks"] == 0  # 120 images / 32: the prefix ran once


def _bn_recalibrated(arch, size, stats_batches):
    """A torchvision model with random init and BatchNorm statistics re-estimated on real photos."""
    torch.manual_seed(0)
    lm = load_model(arch, weights="random")
    for mod in lm.model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None
            mod.reset_running_stats()
    lm.model.train()
    with torch.no_grad():
        lm.model(lm.normalize(torch.cat(stats_batches(size))))
    lm.model.eval()
    return lm


@pytest.mark.parametrize("arch,index", [("vgg16_bn", 6), ("resnet18", 0), ("resnet18", 2)])
def test_torchvision_vgg_and_resnet_with_a_random_lowrank_change(stats_batches, arch, index):
    lm = _bn_recalibrated(arch, 64, stats_batches)
    site = get_site(lm.model, index)
    x = torch.cat(stats_batches(64))
    ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=8))
    assert_same_as_full(lm, ev, ev.image_set(x), site, random_lowrank(lm.model, site))


@pytest.fixture(scope="module")
def mnet_data(restyled_pairs, stats_batches, mobilenet):
    x, xp, m = restyled_pairs(1, size=96)
    return torch.cat([*stats_batches(96), xp]), Exemplars(x, xp, m)


@pytest.mark.parametrize("index", [2, 16])  # features.3 (with skip) and features.17 (without)
def test_mobilenet_v2_real_weights_with_a_closed_form_edit(stats_batches, mobilenet, mnet_data, index):
    site = get_site(mobilenet.model, index)
    assert (site.skip is not None) == (index == 2)
    x, ex = mnet_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # few keys: regularised on purpose
        stats = second_moment(mobilenet.model, site, stats_batches(96), transform=mobilenet.normalize, cache=False, progress=False)
    edit = rewrite(mobilenet, site, ex, config=EditConfig(), stats=stats)
    ev = SuffixEvaluator(mobilenet.model, mobilenet.normalize, SuffixCacheConfig(batch_size=8))
    assert_same_as_full(mobilenet, ev, ev.image_set(x), site, edit)
    assert len(ev.split(site).inputs) == (2 if site.skip else 1)


def test_timm_vit_with_a_random_lowrank_change():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    lm = load_model("timm:vit_tiny_patch16_224", weights="random", num_classes=10)
    torch.nn.init.normal_(lm.model.head.weight, std=0.5)  # timm starts the head at zero: make logits informative
    site = get_site(lm.model, 6)
    ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=4))
    images = ev.image_set(torch.rand(6, 3, 224, 224))
    assert_same_as_full(lm, ev, images, site, random_lowrank(lm.model, site, scale=2.0))
    assert len(ev.split(site).inputs) == 2  # the MLP's key and the block's residual stream


def test_open_clip_vit_with_a_random_lowrank_change():
    open_clip = pytest.importorskip("open_clip")
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    from modeledit.models import LoadedModel, ZeroShotClassifier

    torch.manual_seed(0)
    clip = open_clip.model.CLIP(32, vision_cfg=CLIPVisionCfg(layers=4, width=64, head_width=16, patch_size=8, image_size=32),
                                text_cfg=CLIPTextCfg(context_length=16, vocab_size=1000, width=32, heads=2, layers=1))
    head = torch.nn.functional.normalize(torch.randn(6, 32), dim=-1)
    lm = LoadedModel("clip_vit_tiny", ZeroShotClassifier(clip.visual, head, 100.0).eval(), [str(i) for i in range(6)], input_size=32)
    keys_before = set(lm.model.state_dict())
    site = get_site(lm.model, 2)
    ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=8))
    assert_same_as_full(lm, ev, ev.image_set(torch.rand(20, 3, 32, 32)), site, random_lowrank(lm.model, site, scale=2.0))
    assert set(lm.model.state_dict()) == keys_before and not any(n.startswith("_tensor_constant") for n, _ in lm.model.named_buffers())


# ---------------------------------------------------------------------------------------------
# the cache follows the weights, and its budget


def test_cache_is_invalidated_when_weights_before_the_site_change(world):
    lm = load_model("world_resnet")
    site = get_site(lm.model, 2)
    ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=64))
    images = ev.image_set(world[0])
    ev.logits(images, site)
    assert ev.stats["prefix_runs"] == 2
    before = list_sites(lm.model)[0]           # a change before the site: stale inputs must not be reused
    change = random_lowrank(lm.model, before, scale=1.0)
    with change.applied(lm.model):
        naive = lm.predict(images.x)
        cached = ev.logits(images, site)
    assert ev.stats["invalidations"] == 1 and ev.stats["prefix_runs"] == 4
    assert torch.equal(cached.argmax(-1), naive.argmax(-1))
    torch.testing.assert_close(cached, naive, rtol=1e-4, atol=1e-4)
    # the fc after the site: the cached inputs stay valid
    fc = dict(lm.model.named_parameters())["fc.weight"]
    with torch.no_grad():
        fc.mul_(-1.0)
    try:
        naive = lm.predict(images.x)
        cached = ev.logits(images, site)   # recomputed once more (the prefix changed back), then reused
        again = ev.logits(images, site)
    finally:
        with torch.no_grad():
            fc.mul_(-1.0)
    assert ev.stats["invalidations"] == 2 and ev.stats["prefix_runs"] == 6 and ev.stats["chunks_from_memory"] == 2
    assert torch.equal(cached, again) and torch.equal(cached.argmax(-1), naive.argmax(-1))


@pytest.mark.parametrize("spill", ["disk", "recompute"])
def test_memory_budget_spills_or_recomputes(world, spill, tmp_path):
    lm = load_model("world_vgg")
    site = get_site(lm.model, 1)                      # 24 x 32 x 32 keys: 98 kB per image
    one_chunk = 16 * 24 * 32 * 32 * 4 / 2**20
    cfg = SuffixCacheConfig(batch_size=16, budget_mb=2.5 * one_chunk, spill=spill, cache_dir=str(tmp_path))
    ev = SuffixEvaluator(lm.model, lm.normalize, cfg)
    images = ev.image_set(world[0][:80])               # 5 chunks, 2 fit
    edit = random_lowrank(lm.model, site, scale=1.0)
    assert_same_as_full(lm, ev, images, site, edit)
    assert ev.memory_bytes <= cfg.budget_mb * 2**20 and ev.stats["chunks_cached"] == 2
    if spill == "disk":
        assert ev.stats["chunks_spilled"] == 3 and ev.stats["chunks_from_disk"] == 3 and ev.disk_bytes() > 0
        assert ev.stats["prefix_runs"] == 5 and len(list(tmp_path.rglob("*.pt"))) == 3
    else:
        assert ev.stats["chunks_recomputed"] == 6 and ev.stats["prefix_runs"] == 8 and not list(tmp_path.rglob("*.pt"))
    ev.close()
    assert not list(tmp_path.rglob("*.pt")) and ev.memory_bytes == 0


def test_least_recently_used_entry_is_dropped_for_a_new_one(world):
    lm = load_model("world_vgg")
    site = get_site(lm.model, -1)                     # 96 x 8 x 8 keys: 24.6 kB per image
    cfg = SuffixCacheConfig(batch_size=40, budget_mb=130 * 96 * 64 * 4 / 2**20, spill="recompute")
    ev = SuffixEvaluator(lm.model, lm.normalize, cfg)
    a, b = ev.image_set(world[0][:80]), ev.image_set(world[0][40:120])
    ev.logits(a, site)
    ev.logits(b, site)                                # a is dropped to make room for b
    assert ev.stats["chunks_cached"] == 4 and ev.memory_bytes == 80 * 96 * 64 * 4
    ev.logits(b, site)
    assert ev.stats["chunks_from_memory"] == 2 and ev.stats["prefix_runs"] == 4


@pytest.mark.parametrize("host_mb_images", [100, 50])
def test_host_tier_takes_the_least_recently_used_entry_beyond_the_device_budget(world, host_mb_images):
    """With a host tier, the entry pushed off the device moves to host memory (as far as its budget goes; the
    rest is dropped and recomputed on use) and predictions equal the uncached forward's bit for bit."""
    lm = load_model("world_vgg")
    site = get_site(lm.model, -1)                     # 96 x 8 x 8 keys: 24.6 kB per image, 40 images a chunk
    per_image = 96 * 64 * 4
    cfg = SuffixCacheConfig(batch_size=40, budget_mb=130 * per_image / 2**20, spill="recompute")
    host_mb = host_mb_images * per_image / 2**20
    uncached = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=40, budget_mb=0, spill="recompute"))
    ev = SuffixEvaluator(lm.model, lm.normalize, cfg, host_budget_mb=host_mb, host_tier=True)
    assert ev.has_host_tier() and not SuffixEvaluator(lm.model, lm.normalize, cfg, host_budget_mb=host_mb).has_host_tier()   # the CPU
    a, b = ev.image_set(world[0][:80]), ev.image_set(world[0][40:120])
    first = ev.logits(a, site)
    ev.logits(b, site)                                # a leaves the device for b
    moved = host_mb_images // 40                      # chunks of a that fit the host tier
    assert ev.stats["chunks_to_host"] == moved and ev.host_bytes == moved * 40 * per_image
    assert ev.memory_bytes == 80 * per_image <= cfg.budget_mb * 2**20
    edit = random_lowrank(lm.model, site, scale=1.0)
    for model_now in (contextlib.nullcontext(), edit.applied(lm.model)):
        with model_now:
            again = ev.logits(a, site)
            assert torch.equal(again, uncached.logits(a, site)) and torch.equal(again.argmax(-1), lm.predict(a.x).argmax(-1))
    assert torch.equal(first, uncached.logits(a, site))
    assert ev.stats["chunks_from_host"] == 2 * moved and ev.stats["prefix_runs"] == 4 + (2 - moved)
    ev.clear()
    assert ev.host_bytes == 0 and ev.memory_bytes == 0


def test_float16_cache_is_close(world):
    lm = load_model("world_vgg")
    site = get_site(lm.model, 2)
    ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(dtype="float16", batch_size=64))
    images = ev.image_set(world[0])
    full = lm.predict(images.x)
    half = ev.logits(images, site)
    assert half.dtype == torch.float32 and ev.memory_bytes == 120 * 48 * 16 * 16 * 2
    torch.testing.assert_close(half, full, rtol=1e-2, atol=2e-2)
    assert (half.argmax(-1) == full.argmax(-1)).float().mean() >= 0.97


def test_unsplittable_model_falls_back_to_the_full_forward():
    class Twice(torch.nn.Module):                     # the site's conv is applied twice: no single cut
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU())
            self.fc = torch.nn.Linear(3, 4)

        def forward(self, x):
            return self.fc(self.features(self.features(x)).mean((2, 3)))

    torch.manual_seed(0)
    model = Twice().eval()
    site = get_site(model, 0)
    with pytest.raises(SplitError, match="called 2 times"):
        split_at_site(model, site)
    ev = SuffixEvaluator(model)
    x = torch.rand(5, 3, 16, 16)
    assert torch.equal(ev.logits(x, site), model(x).detach()) and ev.stats["fallbacks"] == 1


# ---------------------------------------------------------------------------------------------
# fine-tuning through the suffix


def _finetune_both(lm, site, ex, scope, **kw):
    cfgs = [FinetuneConfig(scope=scope, from_site=f, **kw) for f in (True, False)]
    return [finetune(lm, site, ex, target=3, config=c) for c in cfgs]


@pytest.mark.parametrize("name,index,scope", [("world_vgg", 2, "global"), ("world_resnet", 1, "global"), ("world_resnet", 2, "local")])
def test_finetune_from_the_site_equals_the_full_network(world, name, index, scope):
    lm = load_model(name)
    site = get_site(lm.model, index)
    x, x0, x1, m = world
    ex = Exemplars(x0, x1, m)
    fast, slow = _finetune_both(lm, site, ex, scope, lr=1e-2, steps=15)
    assert set(fast.changes) == set(slow.changes)
    for n in fast.changes:
        torch.testing.assert_close(fast.changes[n].tensors["value"], slow.changes[n].tensors["value"], rtol=1e-4, atol=1e-5)
    assert fast.metrics["loss_after"] == pytest.approx(slow.metrics["loss_after"], rel=1e-4)
    preds = []
    for e in (fast, slow):
        with e.applied(lm.model):
            preds.append(lm.predict(torch.cat([x, x1])).argmax(-1))
    assert torch.equal(*preds) and fast.metrics["loss_after"] < fast.metrics["loss_before"]


def test_finetune_uses_the_full_network_when_a_trained_parameter_is_before_the_cut():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    lm = load_model("timm:vit_tiny_patch16_224", weights="random", num_classes=4)
    site = get_site(lm.model, 10)
    split = split_at_site(lm.model, site)
    assert split.can_train([f"{site.layer}.weight", "head.weight"])
    assert not split.can_train(["blocks.3.attn.qkv.weight"])  # the residual stream carries it past the cut
    x = torch.rand(2, 3, 224, 224)
    lm.model.eval()
    forward = suffix_forward(lm.model, site, lm.normalize(x), ["blocks.3.attn.qkv.weight"])
    loss = forward().sum()
    loss.backward()
    assert dict(lm.model.named_parameters())["blocks.3.attn.qkv.weight"].grad is not None
    lm.model.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------------------------------
# the bench harness


def test_bench_cells_from_the_site_equal_full_forward_cells():
    from modeledit.eval.bench import BenchConfig, BenchRunner, bench_cells

    pairs = [{"concept": "road", "style": "black and white", "candidates": ["car", "bus", "truck"]}]
    rows = {}
    for from_site in (True, False):
        cfg = BenchConfig(model="world_vgg", dataset="world:test:108", clean="world:val:72", stats_dataset="world:train:72",
                          methods=["edit", "finetune_global"], finetune_grid=[[1e-2, 5]], sites=["1", "-1"], from_site=from_site,
                          cache=SuffixCacheConfig(batch_size=32))
        assert BenchConfig.from_json(cfg.to_json()) == cfg
        runner = BenchRunner(cfg)
        rows[from_site] = [{k: v for k, v in r.items() if not k.endswith("seconds")}
                           for cell in bench_cells(cfg, pairs) for r in runner(cell)]
        if from_site:
            assert runner.suffix().stats["chunks_from_memory"] > 0 and runner.suffix().stats["fallbacks"] == 0
    import pandas as pd

    fast, slow = pd.DataFrame(rows[True]), pd.DataFrame(rows[False])
    assert len(fast) == 4
    pd.testing.assert_frame_equal(fast, slow)
    changed = (fast["clean_acc_post"] != fast["clean_acc_pre"]) | (fast["test_all_n_post"] != fast["test_all_n_pre"])
    assert changed.sum() >= 2
