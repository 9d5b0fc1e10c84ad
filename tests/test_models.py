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
    lm = load_model("resnet18", weights=None, num_classes=7)
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
    lm = load_model("timm:resnet18", weights=None, num_classes=3)
    assert lm.predict(torch.rand(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(KeyError, match="closest"):
        load_model("timm:resnet18x")
    pytest.importorskip("open_clip")
    clip = load_model("clip:RN50", weights=None, class_names=["cat", "dog", "car"])
    assert clip.predict(torch.rand(2, 3, 224, 224)).shape == (2, 3)
    assert clip.class_names == ["cat", "dog", "car"]


def test_registry_lists_required_names():
    names = available_models()
    for n in ("vgg16", "vgg16_bn", "resnet18", "resnet50", "mobilenet_v2", "clip:", "timm:"):
        assert n in names


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, modeledit; modeledit.load_model; print(any(m in sys.modules for m in ('tensorflow', 'open_clip', 'detectron2')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
