"""Labels from the model itself (``--labels predicted``): on an unlabelled folder every original counts as
correct, low-confidence images are left out, and the choice is recorded in the results' manifest."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from modeledit.eval.datasets import PredictedLabels, label_record, load_dataset, with_labels


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photos):
    root = tmp_path_factory.mktemp("unlabelled")
    for name in ("chelsea", "coffee", "rocket"):
        Image.fromarray(photos[name]).save(root / f"{name}.png")
    return root


def test_predicted_labels_make_every_original_correct(folder, mobilenet):
    from modeledit.eval.sensitivity import predictions

    ds = load_dataset(str(folder), class_names=mobilenet.class_names, size=224)
    assert [ds[i][1] for i in range(len(ds))] == [-1, -1, -1]          # a flat folder has no labels
    pl = PredictedLabels(ds, mobilenet)
    # hand-checked: MobileNetV2 (ImageNet weights) on the stretched 224 px photos
    assert [mobilenet.class_names[y] for y in pl.labels] == ["Egyptian cat", "espresso", "obelisk"]
    assert pl.confidence[1] > 0.95 and 0.3 < pl.confidence[2] < 0.4
    pred = predictions(mobilenet, pl, range(len(pl)))
    assert (pred == np.array([pl[i][1] for i in range(len(pl))])).all()   # every original is "correct"
    # only confident images stay: the rocket (0.35) goes at 0.5, the cat (0.70) at 0.9
    assert [mobilenet.class_names[pl2] for pl2 in PredictedLabels(ds, mobilenet, min_confidence=0.5).labels] == ["Egyptian cat", "espresso"]
    high = PredictedLabels(ds, mobilenet, min_confidence=0.9)
    assert high.indices == [1] and high.n_dropped == 2
    rec = label_record(high)
    assert rec["labels"] == "predicted" and rec["items"][0]["label"] == "espresso" and rec["items"][0]["file"].endswith("coffee.png")
    assert pl.identity != high.identity
    with pytest.raises(ValueError, match="lower --min-confidence"):
        PredictedLabels(ds, mobilenet, min_confidence=0.999)


def test_label_source_errors(folder, mobilenet):
    ds = load_dataset(str(folder), class_names=mobilenet.class_names, size=224)
    assert with_labels(ds, mobilenet, "given") is ds and label_record(ds) == {"labels": "given"}
    with pytest.raises(ValueError, match="unknown label source"):
        with_labels(ds, mobilenet, "guessed")
    with pytest.raises(ValueError, match="only applies with --labels predicted"):
        with_labels(ds, mobilenet, "given", min_confidence=0.5)


def test_sensitivity_cli_with_predicted_labels(folder, tmp_path):
    """End to end on an unlabelled folder: accuracy on the originals is 1 for every class, and the
    manifest records where the labels came from."""
    from modeledit.cli import main

    out = tmp_path / "sens"
    assert main(["sensitivity", "mobilenet_v2", "--dataset", str(folder), "--labels", "predicted", "--min-confidence", "0.5",
                 "--concepts", "object", "--segmenter", "foreground", "--styles", "black and white", "--out", str(out)]) == 0
    table = json.loads((out / "table.json").read_text())
    assert sorted(r["class_name"] for r in table) == ["Egyptian cat", "espresso"]
    assert all(r["acc_clean"] == 1.0 for r in table)
    manifest = json.loads((out / "manifest.json").read_text())["config"]
    assert manifest["labels"] == "predicted" and manifest["min_confidence"] == 0.5
    assert [i["label"] for i in manifest["label_source"]["items"]] == ["Egyptian cat", "espresso"]


def test_bench_takes_predicted_labels(folder, mobilenet):
    """bench's evaluation and clean sets from an unlabelled folder: the model's own labels, so the clean
    accuracy before any edit is 1 and a clean 'drop' is the share of clean images whose prediction changes."""
    from modeledit.commands.bench import add_arguments, config_from_args
    from modeledit.cli import Parser
    from modeledit.eval.bench import labelled_datasets
    from modeledit.eval.sensitivity import predictions

    p = Parser(prog="bench")
    add_arguments(p)
    args = p.parse_args(["mobilenet_v2", "--dataset", str(folder), "--clean", str(folder), "--stats-dataset", str(folder),
                         "--pairs", "object:floral", "--labels", "predicted", "--min-confidence", "0.5", "--out", "x"])
    cfg = config_from_args(args)
    assert cfg.labels == "predicted" and cfg.min_confidence == 0.5
    data, clean = labelled_datasets(cfg, mobilenet)
    assert isinstance(data, PredictedLabels) and len(clean) == 2
    assert (predictions(mobilenet, clean, range(len(clean))) == np.array(clean.labels)).all()
