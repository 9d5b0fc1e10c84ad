"""The same pipeline on a CUDA GPU and on the CPU: predictions, statistics, the edit's objective, the saved
edit's bytes and base hash, a bench cell, mixed precision, determinism, the Ray executor with one GPU per
actor. Every test is marked ``cuda`` and skipped with a reason where no GPU is visible
(``benchmarks/gpu_check.sh`` runs them: ``pytest -m cuda``).

Tolerances (stated in the README's GPU section): top-1 predictions of the world models agree on at least
99.5% of the world test images between GPU (fp32, TF32 off) and CPU; logits within 1e-3 absolute; the
second moment within 1e-6 relative; the closed-form edit's objective within 1e-3 relative.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modeledit import load_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() == 0,
                       reason="no CUDA GPU visible (run benchmarks/gpu_check.sh on a machine with an NVIDIA GPU)"),
]

AGREE = 0.995


@pytest.fixture(scope="module", autouse=True)
def no_tf32():
    """fp32 means fp32: TF32 matmuls/convolutions would move GPU results beyond the stated tolerances."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.fixture(scope="module")
def world_images():
    from modeledit.eval.world.data import WorldDataset, render_tensors

    x, y = render_tensors(WorldDataset("test", n=600), progress=False)
    return x.float() / 255, y


@pytest.fixture(scope="module")
def exemplars(snowy_cars):
    from modeledit.exemplars import Exemplars

    x, xp, m = snowy_cars((0, 1, 2))
    return Exemplars(x, xp, m[:, None])


@pytest.mark.parametrize("name", ["world_vgg", "world_resnet"])
def test_predictions_match_the_cpu(name, world_images):
    x, _ = world_images
    cpu, gpu = load_model(name), load_model(name, device="cuda")
    assert gpu.device.type == "cuda"
    a, b = cpu.predict_labels(x, 128), gpu.predict_labels(x, 128)
    assert (a == b).mean() >= AGREE
    la, lb = cpu.predict(x[:64]), gpu.predict(x[:64]).cpu()
    torch.testing.assert_close(lb, la, atol=1e-3, rtol=1e-3)


def test_mobilenet_real_weights_match_the_cpu(photos):
    from modeledit.images import to_tensor01  # noqa: F401 - the image convention the CLI uses

    cpu, gpu = load_model("mobilenet_v2"), load_model("mobilenet_v2", device="cuda")
    x = torch.stack([cpu.preprocess(p) for p in photos.values()])
    torch.testing.assert_close(gpu.predict(x).cpu(), cpu.predict(x), atol=1e-3, rtol=1e-3)


def test_statistics_edit_objective_saved_bytes_and_base_hash(world_images, exemplars, tmp_path):
    from modeledit.edit import Edit
    from modeledit.editor import EditConfig, rewrite
    from modeledit.layers import get_site
    from modeledit.stats import second_moment

    x, _ = world_images
    out = {}
    for dev in ("cpu", "cuda"):
        lm = load_model("world_vgg", device=dev)
        site = get_site(lm.model, -1)
        st = second_moment(lm.model, site, [x[i:i + 100] for i in range(0, 300, 100)], transform=lm.normalize, cache=False,
                           progress=False)
        assert st.total.dtype == torch.float64 and st.total.device.type == torch.device(dev).type
        edit = rewrite(lm, site, exemplars, config=EditConfig(), stats=st)
        st_path, _ = edit.save(tmp_path / f"edit_{dev}")
        out[dev] = (st, edit, st_path, lm)
    (sc, ec, pc, lc), (sg, eg, pg, lg) = out["cpu"], out["cuda"]
    torch.testing.assert_close(sg.total.cpu(), sc.total, rtol=1e-6, atol=1e-6 * float(sc.total.abs().max()))
    assert eg.metrics["objective_after"] == pytest.approx(ec.metrics["objective_after"], rel=1e-3)
    assert eg.base_hashes == ec.base_hashes                           # the same base, whatever device held it
    from safetensors.torch import load_file

    saved = load_file(str(pg))                                         # the GPU edit's file: CPU tensors, its exact values
    for n, c in eg.changes.items():
        for k, t in c.tensors.items():
            assert saved[f"{n}::{k}"].device.type == "cpu" and torch.equal(saved[f"{n}::{k}"], t.detach().cpu())
    # an edit made on the GPU applies on the CPU and the reverse, and predicts alike
    on_cpu, on_gpu = Edit.load(pg, model=lc.model), Edit.load(pc, model=lg.model)
    with on_cpu.applied(lc.model):
        a = lc.predict_labels(x, 128)
    with on_gpu.applied(lg.model):
        b = lg.predict_labels(x, 128)
    assert (a == b).mean() >= AGREE


def test_finetune_paint_rrr_run_on_the_gpu(exemplars):
    from modeledit.finetuning import FinetuneConfig, finetune
    from modeledit.patching import PatchConfig, patch
    from modeledit.rrr import RRRConfig, rrr

    lm = load_model("world_vgg", device="cuda")
    for edit in (finetune(lm, -1, exemplars, target=0, config=FinetuneConfig(scope="global", lr=1e-3, steps=5)),
                 patch(lm, -1, exemplars, target=0, config=PatchConfig(scope="local", lr=1e-3, steps=5, alpha=0.5)),
                 rrr(lm, -1, exemplars, target=0, config=RRRConfig(scope="local", lr=1e-3, steps=5, lam=1.0))):
        assert all(t.device.type == "cuda" for c in edit.changes.values() for t in c.tensors.values())


def test_suffix_evaluator_on_the_gpu(world_images, exemplars):
    from modeledit.editor import EditConfig, rewrite
    from modeledit.layers import get_site
    from modeledit.suffix import SuffixCacheConfig, SuffixEvaluator

    x, _ = world_images
    lm = load_model("world_vgg", device="cuda")
    site = get_site(lm.model, -2)
    edit = rewrite(lm, site, exemplars, config=EditConfig(), stats=None)
    ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=128))
    images = ev.image_set(x)
    with edit.applied(lm.model):
        assert np.array_equal(ev.predict(images, site).numpy(), lm.predict_labels(x, 128))
    ev.close()


def test_suffix_cache_spills_to_pinned_host_memory_beyond_the_device_budget(world_images):
    """On the GPU the entry pushed off the device's budget moves to pinned host memory and comes back (a
    non-blocking copy) with the same predictions as the full forward."""
    from modeledit.layers import get_site
    from modeledit.suffix import SuffixCacheConfig, SuffixEvaluator, _Host

    x, _ = world_images
    lm = load_model("world_vgg", device="cuda")
    site = get_site(lm.model, -1)
    one_set = 300 * 96 * 8 * 8 * 4 / 2**20                # 300 images of 96 x 8 x 8 float32 keys
    ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=100, budget_mb=1.5 * one_set), host_budget_mb=2 * one_set)
    assert ev.has_host_tier()
    a, b = ev.image_set(x[:300]), ev.image_set(x[300:600])
    ev.predict(a, site)
    ev.predict(b, site)                                   # a moves to the host tier
    host = [v for e in ev._entries.values() for v in e.chunks.values() if isinstance(v, _Host)]
    assert ev.stats["chunks_to_host"] == 3 and len(host) == 3 and ev.host_bytes > 0
    assert all(t.is_pinned() for h in host for t in h.values if isinstance(t, torch.Tensor))
    assert np.array_equal(ev.predict(a, site).numpy(), lm.predict_labels(x[:300], 100))
    assert ev.stats["chunks_from_host"] == 3
    ev.close()


def test_restyle_on_the_gpu(exemplars):
    from modeledit.counterfactuals import restyle
    from modeledit.styles.magenta import MagentaStylizer

    x, m = exemplars.x[:2], exemplars.mask[:2, 0] > 0.5
    cpu = restyle(x, m, "snow", 0, MagentaStylizer())
    gpu = restyle(x.cuda(), m.cuda(), "snow", 0, MagentaStylizer(device="cuda"))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-2, rtol=0)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_agrees_with_fp32(precision, world_images):
    x, _ = world_images
    fp32 = load_model("world_vgg", device="cuda").predict_labels(x, 256)
    low = load_model("world_vgg", device="cuda").to("cuda", precision=precision).predict_labels(x, 256)
    assert (fp32 == low).mean() >= 0.98


def test_deterministic_runs_repeat_bit_for_bit(world_images):
    from modeledit.device import set_deterministic

    set_deterministic(0)
    x, _ = world_images
    lm = load_model("world_vgg", device="cuda")
    a, b = lm.predict(x[:256]).cpu(), lm.predict(x[:256]).cpu()
    assert torch.equal(a, b)


def test_bench_cli_on_the_gpu_matches_the_cpu(tmp_path):
    import pandas as pd

    from modeledit.cli import main

    style = "black_and_white"
    rows = [dict(concept="road", style=style, class_name=c, presence=0.9, drop=0.3) for c in ("car", "bus", "truck")]
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    base = ["bench", "world_vgg", "--dataset", "world:test:108", "--clean", "world:val:72", "--stats-dataset", "world:train:72",
            "--pairs", f"road:{style}", "--sensitivity", str(tmp_path / "s.csv"), "--methods", "edit", "--sites=-1",
            "--max-clean-drop", "0.05"]
    tables = {}
    for name, extra in (("cpu", ["--device", "cpu"]), ("cuda", ["--device", "cuda"]),
                        ("ray", ["--device", "cuda", "--executor", "ray", "--workers", "1"])):
        if name == "ray" and not _has_ray():
            continue
        assert main(base + extra + ["--out", str(tmp_path / name)]) == 0
        tables[name] = pd.read_csv(tmp_path / name / "cells.csv")
    if "ray" in tables:   # the Ray actor ran its cells on the GPU Ray gave it: the same rows as the local GPU run
        np.testing.assert_allclose(tables["ray"]["clean_drop"], tables["cuda"]["clean_drop"], atol=1e-9)
    import json

    assert json.loads((tmp_path / "cuda" / "manifest.json").read_text())["runtime"]["device"].startswith("cuda")
    for col in ("test_target_corrected", "clean_drop"):
        np.testing.assert_allclose(tables["cuda"][col], tables["cpu"][col], atol=0.02)


def _has_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def test_ray_gives_each_cell_task_a_gpu(tmp_path):
    pytest.importorskip("ray")
    from modeledit.device import Runtime, using
    from modeledit.eval.executors import RayExecutor

    with using(Runtime.resolve("cuda")):
        ex = RayExecutor(workers=1)
    assert ex.gpus == 1.0
    assert RayExecutor(workers=1).gpus == 0.0
