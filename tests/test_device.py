"""Device-true code and the device/precision plumbing (modeledit.device).

The device-leak tests run each path of the library with the model and its inputs on the CPU while the
default device for new tensors is ``meta``: a tensor created without an explicit device lands on
``meta``, and mixing it with the CPU tensors fails loudly (or leaves a meta result that cannot be read
back), so a path that passes here creates every tensor on its inputs' device, as it must on a GPU.
"""
from __future__ import annotations

import contextlib
import logging

import numpy as np
import pytest
import torch
from torch import nn

from modeledit import load_model
from modeledit.device import PRECISIONS, Runtime, autocast, batched, device_record, loader_options, resolve_device
from modeledit.eval.world.scene import CLASSES
from modeledit.exemplars import Exemplars

pytestmark = pytest.mark.usefixtures("one_thread")

NO_GPU = torch.cuda.device_count() == 0
CAR = CLASSES.index("car")  # the target of the snowy-car exemplars (conftest's snowy_cars)


@contextlib.contextmanager
def elsewhere():
    """New tensors without an explicit device go to ``meta`` inside; the default device is restored on exit."""
    with torch.device("meta"):
        yield
    assert torch.empty(1).device.type == "cpu"


def on_cpu(*tensors: torch.Tensor) -> None:
    for t in tensors:
        assert t.device.type == "cpu", t.device


@pytest.fixture(scope="module")
def ex(snowy_cars):
    x, xp, m = snowy_cars((0, 1))
    return Exemplars(x, xp, m[:, None])


@pytest.fixture(scope="module")
def world_images():
    from modeledit.eval.world.data import WorldDataset, render_tensors

    x, _ = render_tensors(WorldDataset("test", n=48), progress=False)
    return x.float() / 255


def test_the_meta_default_catches_a_tensor_made_without_a_device():
    x = torch.ones(3)
    with elsewhere(), pytest.raises((RuntimeError, NotImplementedError)):
        (x + torch.zeros(3)).sum().item()
    with elsewhere():
        assert float((x + torch.zeros(3, device=x.device)).sum()) == 3.0


# ---------------------------------------------------------------------------------------------
# the leak test: every path on the CPU with the default device elsewhere


def test_statistics_and_both_solvers(world_vgg, ex, world_images):
    from modeledit.editor import EditConfig, rewrite
    from modeledit.layers import get_site
    from modeledit.stats import second_moment

    lm, site = world_vgg, get_site(world_vgg.model, -1)
    batches = [world_images[i:i + 16] for i in range(0, len(world_images), 16)]
    ref = second_moment(lm.model, site, batches, transform=lm.normalize, cache=False, progress=False)
    with elsewhere():
        st = second_moment(lm.model, site, batches, transform=lm.normalize, cache=False, progress=False)
        cf = rewrite(lm, site, ex, config=EditConfig(), stats=st)
        ad = rewrite(lm, site, ex, config=EditConfig(solver="adam", lr=1e-3, steps=3), stats=st)
        masked = rewrite(lm, site, ex, config=EditConfig(mode="masked", rank=2), stats=st)
    assert torch.equal(st.total, ref.total) and st.count == ref.count
    for e in (cf, ad, masked):
        on_cpu(*(t for ch in e.changes.values() for t in ch.tensors.values()))
        assert np.isfinite(e.metrics["objective_after"])
    assert cf.metrics["objective_after"] < cf.metrics["objective_before"]
    outside = rewrite(lm, site, ex, config=EditConfig(), stats=st)
    assert all(torch.equal(a, b) for k in cf.changes for a, b in zip(cf.changes[k].tensors.values(), outside.changes[k].tensors.values()))


def test_suffix_evaluator(world_vgg, ex, world_images):
    from modeledit.editor import EditConfig, rewrite
    from modeledit.layers import get_site
    from modeledit.suffix import SuffixCacheConfig, SuffixEvaluator

    lm = world_vgg
    site = get_site(lm.model, -2)
    with elsewhere():
        ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=16))
        images = ev.image_set(world_images)
        base = ev.predict(images, site)
        edit = rewrite(lm, site, ex, config=EditConfig(), stats=torch.eye(site.key_channels, device=world_images.device))
        with edit.applied(lm.model):
            post = ev.predict(images, site)
            full = lm.predict_labels(world_images, 16)
        ev.close()
    on_cpu(base, post)
    assert np.array_equal(post.numpy(), full) and np.array_equal(base.numpy(), lm.predict_labels(world_images, 16))


@pytest.mark.parametrize("method", ["finetune", "paint", "rrr"])
def test_finetune_paint_rrr(world_vgg, ex, method):
    from modeledit.finetuning import FinetuneConfig, finetune
    from modeledit.patching import PatchConfig, patch
    from modeledit.rrr import RRRConfig, explanation_penalty, rrr

    make = {"finetune": lambda: finetune(world_vgg, -1, ex, target=CAR, config=FinetuneConfig(scope="global", lr=1e-3, steps=2)),
            "paint": lambda: patch(world_vgg, -1, ex, target=CAR, config=PatchConfig(scope="local", lr=1e-3, steps=2, alpha=0.5)),
            "rrr": lambda: rrr(world_vgg, -1, ex, target=CAR, config=RRRConfig(scope="local", lr=1e-3, steps=2, lam=1.0))}
    before = {k: v.clone() for k, v in world_vgg.model.state_dict().items()}
    with elsewhere():
        edit = make[method]()
        if method == "rrr":
            assert np.isfinite(explanation_penalty(world_vgg, ex.x_prime, ex.mask))
    on_cpu(*(t for ch in edit.changes.values() for t in ch.tensors.values()))
    assert all(torch.equal(v, world_vgg.model.state_dict()[k]) for k, v in before.items())
    with edit.applied(world_vgg.model):
        assert not all(torch.equal(v, world_vgg.model.state_dict()[k]) for k, v in before.items())


def test_restyle_with_the_magenta_torch_port(ex):
    from modeledit.counterfactuals import restyle
    from modeledit.styles import get_stylizer

    stylizer = get_stylizer("magenta")
    x, m = ex.x[:1], ex.mask[:1, 0].numpy() > 0.5
    ref = restyle(x, m, "snow", 0, stylizer)
    with elsewhere():
        y = restyle(x, m, "snow", 0, stylizer)
    on_cpu(y)
    assert torch.equal(y, ref) and torch.equal(y[:, :, ~torch.from_numpy(m[0])], x[:, :, ~torch.from_numpy(m[0])])


def test_one_bench_cell(tmp_path):
    from modeledit.eval.bench import BenchConfig, BenchRunner, bench_cells
    from modeledit.eval.methods import FINETUNE_GRID  # noqa: F401 - the catalogue loads before the meta default
    from modeledit.styles.bank import available_styles

    style = "black_and_white" if "black_and_white" in available_styles() else sorted(available_styles())[0]
    cfg = BenchConfig(dataset="world:test:108", clean="world:val:36", stats_dataset="world:train:36", pairs=[["road", style]],
                      methods=["edit", "finetune_local"], finetune_grid=[[1e-2, 2]], sites=["-1"], batch_size=64)
    runner = BenchRunner(cfg)
    cells = bench_cells(cfg, [{"concept": "road", "style": style, "candidates": ["car", "bus", "truck"]}])
    runner.stylizer(), runner.concept_masks("road")  # backends load outside (their constructors are not the code under test)
    ref = runner(cells[0])
    fresh = BenchRunner(cfg)
    fresh._stylizer, fresh._masks = runner._stylizer, runner._masks
    with elsewhere():
        rows = [fresh(c) for c in cells]
    assert len(rows) == len(cells) and all(rows)
    timing = {k for k in ref[0] if "seconds" in k or k.startswith("time") or k.endswith("_s")}
    same = [k for k, v in ref[0].items() if k not in timing and isinstance(v, (int, float))]
    assert len(same) > 5
    np.testing.assert_array_equal([rows[0][0][k] for k in same], [ref[0][k] for k in same])


# ---------------------------------------------------------------------------------------------
# device, precision, the OOM retry, manifests


def test_resolve_device_and_one_line_errors():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cpu" if NO_GPU else "cuda")
    with pytest.raises(ValueError, match="is not a device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="not supported"):
        resolve_device("meta")
    if NO_GPU:
        with pytest.raises(ValueError, match="no CUDA GPU is visible"):
            resolve_device("cuda:0")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Runtime(device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="not one of"):
        Runtime(device="cpu", precision="int8")


@pytest.mark.skipif(not NO_GPU, reason="checks the message for a machine without a GPU")
def test_cli_device_cuda_without_a_gpu_is_one_line_and_exit_2(warm_cli, tmp_path):
    r = warm_cli.run(["layers", "world_vgg", "--device", "cuda"], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["modeledit layers: error: --device cuda but no CUDA GPU is visible; use --device cpu (or auto)"]


def test_every_command_that_runs_a_model_takes_device_and_evaluators_take_precision():
    from modeledit.cli import COMMANDS, build_parser  # noqa: F401
    import importlib
    import argparse

    import inspect

    harnesses = {"counterfactuals", "world", "bench", "typographic", "snow", "photos", "demo", "sensitivity", "studio"}
    evaluate = {"predict", "apply", "sensitivity", "bench", "typographic", "snow", "photos", "demo", "studio"}
    for name, (module, _) in COMMANDS.items():
        mod = importlib.import_module(module)
        runs_model = name in harnesses or "load_from_args(" in inspect.getsource(mod)
        p = argparse.ArgumentParser()
        mod.add_arguments(p)
        flags = set(p._option_string_actions)
        for sub in (a for a in p._actions if isinstance(a, argparse._SubParsersAction)):
            for sp in sub.choices.values():
                flags |= set(sp._option_string_actions)
        if not runs_model:
            continue
        assert {"--device", "--deterministic"} <= flags, name
        if name in evaluate:
            assert "--precision" in flags, name


def test_world_train_subcommands_take_device():
    import argparse

    from modeledit.commands import world

    p = argparse.ArgumentParser()
    world.add_arguments(p)
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("train", "clip-eval", "context"):
        assert "--device" in sub.choices[name]._option_string_actions, name


def test_bf16_autocast_on_the_cpu_agrees_with_fp32(world_vgg, world_images):
    lm = load_model("world_vgg")
    fp32 = lm.predict_labels(world_images, 16)
    lm.to("cpu", precision="bf16")
    bf16 = lm.predict_labels(world_images, 16)
    assert lm.predict(world_images[:2]).dtype == torch.float32
    assert (fp32 == bf16).mean() >= 0.9
    with autocast("fp32", "cpu"):
        assert torch.is_autocast_enabled("cpu") is False
    with autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")
    assert set(PRECISIONS) == {"fp32", "bf16", "fp16"}


def test_statistics_keep_float64_under_a_bf16_model(world_images):
    from modeledit.layers import get_site
    from modeledit.stats import second_moment

    a, b = load_model("world_vgg"), load_model("world_vgg").to("cpu", precision="bf16")
    site = get_site(a.model, -1)
    sa = second_moment(a.model, site, [world_images], transform=a.normalize, cache=False, progress=False)
    sb = second_moment(b.model, site, [world_images], transform=b.normalize, cache=False, progress=False)
    assert sa.total.dtype == torch.float64 and torch.equal(sa.total, sb.total)


class RaisesAboveBatch(nn.Module):
    """A real module that runs out of CUDA memory (raises torch's own error) above ``limit`` images per batch."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.sizes = limit, []
        self.head = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} batches")
        return self.head(x.mean((2, 3)))


def test_out_of_memory_retries_once_at_half_the_batch_with_one_warning(caplog):
    from modeledit.models import LoadedModel

    torch.manual_seed(0)
    net = RaisesAboveBatch(limit=8)
    lm = LoadedModel.wrap(net, class_names=list("abcde"), input_size=4)
    x = torch.rand(40, 3, 4, 4)
    with torch.no_grad():
        expected = net.head(lm.normalize(x).mean((2, 3))).argmax(-1).numpy()
    net.sizes.clear()
    with caplog.at_level(logging.WARNING, logger="modeledit.device"):
        got = lm.predict_labels(x, batch_size=16)
    assert np.array_equal(got, expected)
    assert net.sizes == [16, 8, 8, 8, 8, 8]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "at batch size 16; retrying at 8" in warnings[0].getMessage()
    net.sizes.clear()
    with pytest.raises(torch.cuda.OutOfMemoryError):   # a second out-of-memory error is not swallowed
        lm.predict_labels(x, batch_size=32)
    assert net.sizes == [32, 16]


def test_batched_keeps_order_and_handles_an_empty_batch():
    x = torch.arange(10.0)[:, None]
    assert torch.equal(torch.cat(batched(lambda t: t * 2, x, 3)), x * 2)
    assert batched(lambda t: t, x[:0], 4) == []


def test_loader_options_pin_memory_only_for_cuda():
    assert loader_options("cpu", 2) == {"num_workers": 2, "pin_memory": False, "persistent_workers": False}
    assert loader_options("cpu")["pin_memory"] is False


def test_runtime_record_is_what_manifests_hold_and_round_trips():
    rt = Runtime.resolve("cpu", "bf16", deterministic=False, workers=1, batch_size=32)
    rec = rt.record()
    assert rec["device"] == "cpu" and rec["precision"] == "bf16" and rec["deterministic"] is False and rec["device_name"]
    assert Runtime.from_json(rt.to_json()) == rt
    assert device_record("cpu") == {**device_record("cpu"), "precision": "fp32"}


def test_load_model_device_and_loaded_model_to():
    lm = load_model("world_vgg", device="cpu")
    assert lm.device.type == "cpu" and lm.to("cpu") is lm and lm.precision == "fp32"
    if NO_GPU:
        with pytest.raises(ValueError, match="no CUDA GPU"):
            load_model("world_vgg", device="cuda")


def test_a_command_runtime_places_every_model_and_manifests_record_it(tmp_path):
    from modeledit.device import current_runtime, using
    from modeledit.eval.results import ResultStore

    with using(Runtime.resolve("cpu", "bf16")):
        lm = load_model("world_vgg")
        assert current_runtime().precision == "bf16" and lm.precision == "bf16" and lm.device.type == "cpu"
        store = ResultStore(tmp_path / "run", config={"seed": 0}, model=lm)
        store.write({"cell": 1}, [{"x": 1.0}])
    assert current_runtime() is None and load_model("world_vgg").precision == "fp32"
    manifest = store.manifest()
    assert manifest["runtime"]["precision"] == "bf16" and manifest["runtime"]["device"] == "cpu"
    with pytest.raises(ValueError, match="predicted at --precision bf16, not fp32"):
        ResultStore(tmp_path / "run", config={"seed": 0}, model=load_model("world_vgg"))
    again = ResultStore(tmp_path / "run", config={"seed": 0}, model=load_model("world_vgg").to("cpu", precision="bf16"))
    assert again.n_done() == 1


def test_image_folders_load_through_dataloader_workers_with_the_same_batches(tmp_path, photos):
    import imageio.v3 as iio

    from modeledit.device import using
    from modeledit.eval.datasets import iterate_batches, load_dataset

    for name, img in photos.items():
        (tmp_path / "cat").mkdir(exist_ok=True)
        iio.imwrite(tmp_path / "cat" / f"{name}.png", img)
    ds = load_dataset(str(tmp_path), size=64)
    plain = list(iterate_batches(ds, [3, 0, 2, 1], 3))
    with using(Runtime.resolve("cpu", workers=2)):
        loaded = list(iterate_batches(ds, [3, 0, 2, 1], 3))
    assert [b[0] for b in loaded] == [b[0] for b in plain] == [[3, 0, 2], [1]]
    for a, b in zip(plain, loaded):
        assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]) and a[3] == b[3]


def test_the_suffix_evaluator_predicts_at_the_command_precision(world_vgg, ex, world_images):
    """Under --precision bf16 the edited predictions (from the site on) and the unedited ones (full forward)
    are made at the same precision, so no flip is an artefact of mixing fp32 and bf16."""
    from modeledit.device import using
    from modeledit.editor import EditConfig, rewrite
    from modeledit.layers import get_site
    from modeledit.suffix import SuffixCacheConfig, SuffixEvaluator

    with using(Runtime.resolve("cpu", "bf16")):
        lm = load_model("world_vgg")
        site = get_site(lm.model, -2)
        edit = rewrite(lm, site, ex, config=EditConfig(), stats=torch.eye(site.key_channels))
        ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=16))
        x = world_images[:16]                 # bf16 is slow on a CPU without bf16 instructions: one batch makes the point
        images = ev.image_set(x)
        with edit.applied(lm.model):
            assert np.array_equal(ev.predict(images, site).numpy(), lm.predict_labels(x, 16))
            assert ev.logits(images, site).dtype == torch.float32
        ev.close()
    assert SuffixEvaluator(lm.model, precision="fp32").precision == "fp32"


def test_captum_explanations(world_vgg, ex):
    pytest.importorskip("captum")
    from modeledit.eval.explain import ExplainConfig, attribution_maps

    # integrated gradients is left out: captum itself builds its step sizes on the default device and then moves
    # them to the gradients' (right on a GPU, but not under a meta default); our part of it is checked by the others
    cfg = ExplainConfig(methods=["gradcam", "input_gradient"], batch_size=8)
    ref = attribution_maps(world_vgg, ex.x, target=CAR, site=-1, config=cfg)
    with elsewhere():
        maps = attribution_maps(world_vgg, ex.x, target=CAR, site=-1, config=cfg)
    assert set(maps) == set(ref) and all(np.allclose(maps[k], ref[k], atol=1e-6) for k in ref)


@pytest.mark.parametrize("method", ["rewrite", "finetune", "paint", "rrr"])
def test_every_edit_file_names_the_device_it_was_made_on(world_vgg, ex, method, tmp_path):
    """Each way to make an edit records its device, the device's name and the weights' dtype in the saved file,
    and the record survives a load and a second save."""
    import json

    from modeledit.device import describe_device
    from modeledit.edit import Edit
    from modeledit.editor import EditConfig, rewrite
    from modeledit.finetuning import FinetuneConfig, finetune
    from modeledit.patching import PatchConfig, patch
    from modeledit.rrr import RRRConfig, rrr

    make = {"rewrite": lambda: rewrite(world_vgg, -1, ex, config=EditConfig()),
            "finetune": lambda: finetune(world_vgg, -1, ex, target=CAR, config=FinetuneConfig(scope="local", lr=1e-3, steps=2)),
            "paint": lambda: patch(world_vgg, -1, ex, target=CAR, config=PatchConfig(scope="local", lr=1e-3, steps=2, alpha=0.5)),
            "rrr": lambda: rrr(world_vgg, -1, ex, target=CAR, config=RRRConfig(scope="local", lr=1e-3, steps=2, lam=1.0))}
    edit = make[method]()
    _, js = edit.save(tmp_path / "e")
    made_on = {"device": "cpu", "device_name": describe_device("cpu"), "dtype": "float32"}
    assert {k: json.loads(js.read_text())["metrics"].get(k) for k in made_on} == made_on
    assert {k: edit.metrics.get(k) for k in made_on} == made_on   # in memory too
    again = Edit.load(tmp_path / "e", model=world_vgg.model)
    _, js2 = again.save(tmp_path / "again")
    assert json.loads(js2.read_text())["metrics"] == json.loads(js.read_text())["metrics"]
