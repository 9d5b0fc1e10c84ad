"""Segmenter backends on real inputs: MediaPipe's person model on skimage's astronaut, masks from
PNG and COCO files, GrabCut, torchvision's Mask R-CNN from a checkpoint file, detectron2's install message."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modeledit.segmenters import available_segmenters, concept_present, get_segmenter, min_pixels
from modeledit.segmenters.files import read_mask_png, write_mask_png
from modeledit.segmenters.vocab import canonical_concept, coco_label_name


def test_registry_names_and_unknown():
    assert {"detectron2", "torchvision", "mediapipe", "files", "grabcut", "oracle"} <= set(available_segmenters())
    with pytest.raises(KeyError, match="mediapipe"):
        get_segmenter("mediapip")


def test_vocabulary_synonyms_and_close_matches():
    assert canonical_concept("Automobile") == "car"
    assert canonical_concept("motorbike") == "motorcycle"
    assert canonical_concept("car_(automobile)") == "car"
    assert canonical_concept("wheel") == "wheel"  # LVIS part
    assert coco_label_name(3) == "car" and coco_label_name(1) == "person"
    with pytest.raises(KeyError, match="road"):
        canonical_concept("raod")
    with pytest.raises(KeyError):
        coco_label_name(12)  # an N/A slot


def test_presence_rule_scales_with_area():
    assert min_pixels(224, 224) == 100
    assert min_pixels(448, 448) == 400
    assert min_pixels(64, 64) == 8
    m = np.zeros((224, 224), bool)
    m[:10, :9] = True  # 90 px
    assert not concept_present(m)
    m[:10, :10] = True  # 100 px
    assert concept_present(m)


def test_mediapipe_finds_the_astronaut(photos):
    seg = get_segmenter("mediapipe")
    insts = seg.segment(photos["astronaut"])
    assert [i.concept for i in insts] == ["person"]
    m = insts[0].mask
    assert m.shape == photos["astronaut"].shape[:2]
    assert 0.25 < m.mean() < 0.8
    assert m[150:200, 180:260].mean() > 0.95  # her face
    assert m[:60, 380:].mean() < 0.2  # the sky-blue wall top right
    assert insts[0].score > 0.8
    assert seg.segment(photos["astronaut"], concepts=["car"]) == []


def test_segmenters_reject_bad_images(photos):
    seg = get_segmenter("mediapipe")
    with pytest.raises(ValueError, match="HxWx3"):
        seg.segment(photos["astronaut"][..., 0])
    with pytest.raises(TypeError, match="uint8"):
        seg.segment(photos["astronaut"].astype(np.float32) / 255)


def test_png_masks_round_trip(tmp_path, photos):
    img = photos["chelsea"]
    h, w = img.shape[:2]
    cat = np.zeros((h, w), bool)
    cat[40:260, 100:350] = True
    (tmp_path / "chelsea").mkdir()
    write_mask_png(cat, tmp_path / "chelsea" / "cat.png")
    write_mask_png(~cat, tmp_path / "chelsea" / "wall.png")
    seg = get_segmenter("files", root=tmp_path)
    insts = seg.segment(img, meta={"path": "/photos/chelsea.jpg"})
    assert sorted(i.concept for i in insts) == ["cat", "wall"]
    # hidden files are never masks: macOS's AppleDouble companions ("._cat.png", not PNGs) or a killed writer's temp file
    (tmp_path / "chelsea" / "._cat.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    write_mask_png(cat, tmp_path / "chelsea" / ".sky.123.tmp.png")
    assert sorted(i.concept for i in seg.segment(img, meta={"path": "/photos/chelsea.jpg"})) == ["cat", "wall"]
    assert "sky" not in seg.concepts
    assert np.array_equal(next(i for i in insts if i.concept == "cat").mask, cat)
    assert [i.concept for i in seg.segment(img, ["cat"], meta={"path": "chelsea.png"})] == ["cat"]
    assert seg.segment(img, meta={"path": "other.png"}) == []
    write_mask_png(cat[:100], tmp_path / "chelsea" / "cat.png")
    with pytest.raises(ValueError, match="masks must match their image"):
        seg.segment(img, meta={"path": "chelsea.png"})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cat.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="corrupt"):
        read_mask_png(tmp_path / "bad" / "cat.png")


def test_coco_json_polygons_and_rle_round_trip(tmp_path, photos):
    from pycocotools import mask as mask_utils

    img = photos["coffee"]
    h, w = img.shape[:2]
    cup = np.zeros((h, w), np.uint8)
    cup[100:300, 150:450] = 1
    rle = mask_utils.encode(np.asfortranarray(cup))
    rle["counts"] = rle["counts"].decode()
    poly = [[50.0, 50.0, 120.0, 50.0, 120.0, 90.0, 50.0, 90.0]]
    data = {
        "images": [{"id": 7, "file_name": "coffee.png", "height": h, "width": w}],
        "categories": [{"id": 47, "name": "cup"}, {"id": 81, "name": "table"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 47, "segmentation": rle, "score": 0.9},
            {"id": 2, "image_id": 7, "category_id": 81, "segmentation": poly},
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    seg = get_segmenter("files", coco_json=path)
    insts = {i.concept: i for i in seg.segment(img, meta={"file_name": "coffee.png"})}
    assert set(insts) == {"cup", "table"}
    assert np.array_equal(insts["cup"].mask, cup.astype(bool)) and insts["cup"].score == pytest.approx(0.9)
    assert 70 * 40 <= insts["table"].mask.sum() <= 72 * 42 and insts["table"].mask[70, 80]
    assert [i.concept for i in seg.segment(img, ["cup"], meta={"image_id": 7})] == ["cup"]
    path.write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        get_segmenter("files", coco_json=path)


def test_grabcut_from_a_box(photos):
    img = photos["chelsea"]
    seg = get_segmenter("grabcut", concept="cat", box=(60, 20, 400, 300))
    (inst,) = seg.segment(img)
    assert inst.concept == "cat"
    assert inst.mask[:20].sum() == 0 and inst.mask[:, :60].sum() == 0  # nothing outside the box
    assert 0.15 < inst.mask.mean() < 0.6
    with pytest.raises(ValueError, match="not inside"):
        seg.segment(img, meta={"box": (0, 0, 9999, 10)})
    with pytest.raises(ValueError, match="empty"):
        get_segmenter("grabcut", concept="cat", seed_mask=np.zeros(img.shape[:2], bool)).segment(img)


def test_torchvision_maskrcnn_from_a_checkpoint(tmp_path, photos, monkeypatch):
    """Random-init Mask R-CNN (no COCO weights offline) biased towards 'car' with confident masks:
    the checkpoint loading, score and mask thresholds and COCO naming are the real code paths."""
    from modeledit.segmenters.torchvision_backend import build_maskrcnn

    torch.manual_seed(0)
    small = dict(min_size=128, max_size=160, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=20, box_detections_per_img=4)
    model = build_maskrcnn(None, **small)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[3] = 40.0  # label 3 = car
        model.roi_heads.mask_predictor.mask_fcn_logits.bias[3] = 6.0
    ckpt = tmp_path / "maskrcnn.pth"
    torch.save(model.state_dict(), ckpt)
    seg = get_segmenter("torchvision", weights=str(ckpt), **small)
    img = photos["rocket"][::3, ::3].copy()
    insts = seg.segment(img, concepts=["automobile"])
    assert insts and {i.concept for i in insts} == {"car"}
    assert all(i.mask.shape == img.shape[:2] and i.mask.any() and i.score >= 0.5 for i in insts)
    with pytest.raises(ValueError, match="not a maskrcnn"):
        torch.save({"w": torch.zeros(1)}, tmp_path / "other.pth")
        get_segmenter("torchvision", weights=str(tmp_path / "other.pth"))
    monkeypatch.setenv("MODELEDIT_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(RuntimeError, match="local path"):
        get_segmenter("torchvision", weights="DEFAULT")


def test_detectron2_says_how_to_install():
    pytest.importorskip("torch")
    try:
        import detectron2  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="not on PyPI"):
            get_segmenter("detectron2")
    else:
        pytest.skip("detectron2 is installed; its model-zoo weights cannot be fetched offline")
