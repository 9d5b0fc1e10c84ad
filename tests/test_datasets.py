"""Dataset specs are parsed in one place (eval/datasets.py: DatasetSpec) and compared by one disjointness check."""
from __future__ import annotations

import numpy as np
import pytest

from modeledit.eval.datasets import (
    DatasetSpec, PredictedLabels, check_disjoint, check_stats_disjoint, label_record, load_dataset, with_labels,
)


def test_dataset_spec_parses_world_folder_and_other_kinds(tmp_path):
    s = DatasetSpec.parse("world:test:1800")
    assert (s.kind, s.split, s.n, s.size) == ("world", "test", 1800, 1800)
    val = DatasetSpec.parse("world:val")
    assert val.n is None and val.size > 0 and DatasetSpec.parse("world::5").split == "test"
    assert DatasetSpec.parse(f"folder:{tmp_path}").path == str(tmp_path) == DatasetSpec.parse(str(tmp_path)).path
    assert DatasetSpec.parse("coco:val2017").kind == "coco" and DatasetSpec.parse(s) is s
    for bad in ("world:test:0", "world:test:abc", "world:test:5:6"):
        with pytest.raises(ValueError, match="world:SPLIT"):
            DatasetSpec.parse(bad)


def test_one_disjointness_check_for_specs_and_splits(tmp_path):
    assert len(DatasetSpec.parse("world:val:10").items() & DatasetSpec.parse("world:val:600").items()) == 10
    check_stats_disjoint("world:train:1500", {"--dataset": "world:test:1800", "--clean": "world:val:600", "--other": None})
    with pytest.raises(ValueError, match="'world:val:100' shares images with --clean 'world:val:600'"):
        check_stats_disjoint("world:val:100", {"--clean": "world:val:600"})
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="shares images with --photos"):
        check_stats_disjoint(str(tmp_path / "a"), {"--photos": str(tmp_path)})
    check_stats_disjoint(str(tmp_path / "a"), {"--clean": "world:val:600"})
    with pytest.raises(ValueError, match="val & test share 1 item"):
        check_disjoint({"val": [1, 2], "test": [2, 3]})


def test_statistics_split_is_disjoint_from_evaluation_sets(photo_folder):
    """The harnesses' default statistics split is disjoint from their evaluation sets; folders are checked too."""
    from modeledit.eval.snow import SnowConfig
    from modeledit.eval.typographic import TypographicConfig

    for cfg in (TypographicConfig(), SnowConfig()):
        assert cfg.stats_dataset == "world:train:1500"
        check_stats_disjoint(cfg.stats_dataset, {"--clean": cfg.clean, "--dataset": getattr(cfg, "dataset", None)})
    with pytest.raises(ValueError, match="shares images with --clean"):
        check_stats_disjoint("world:val:100", {"--clean": "world:val:600"})
    root = photo_folder
    with pytest.raises(ValueError, match="shares images"):
        check_stats_disjoint(str(root), {"--photos": str(root.parent)})
    check_stats_disjoint(str(root), {"--clean": "world:val:600"})


# ---- labels from the model itself (--labels predicted): on an unlabelled folder every original counts as
# correct, low-confidence images are left out, and the choice is recorded in the results' manifest


@pytest.mark.slow
def test_predicted_labels_make_every_original_correct(unlabelled_folder, mobilenet):
    from modeledit.eval.sensitivity import predictions

    ds = load_dataset(str(unlabelled_folder), class_names=mobilenet.class_names, size=224)
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


def test_label_source_errors(unlabelled_folder, mobilenet):
    ds = load_dataset(str(unlabelled_folder), class_names=mobilenet.class_names, size=224)
    assert with_labels(ds, mobilenet, "given") is ds and label_record(ds) == {"labels": "given"}
    with pytest.raises(ValueError, match="unknown label source"):
        with_labels(ds, mobilenet, "guessed")
    with pytest.raises(ValueError, match="only applies with --labels predicted"):
        with_labels(ds, mobilenet, "given", min_confidence=0.5)
