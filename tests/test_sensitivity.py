"""The sensitivity harness (eval/sensitivity.py) through ``modeledit sensitivity``."""
from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_sensitivity_cli_with_predicted_labels(unlabelled_folder, tmp_path):
    """End to end on an unlabelled folder: accuracy on the originals is 1 for every class, and the
    manifest records where the labels came from."""
    from modeledit.cli import main

    out = tmp_path / "sens"
    assert main(["sensitivity", "mobilenet_v2", "--dataset", str(unlabelled_folder), "--labels", "predicted", "--min-confidence", "0.5",
                 "--concepts", "object", "--segmenter", "foreground", "--styles", "black and white", "--out", str(out)]) == 0
    table = json.loads((out / "table.json").read_text())
    assert sorted(r["class_name"] for r in table) == ["Egyptian cat", "espresso"]
    assert all(r["acc_clean"] == 1.0 for r in table)
    manifest = json.loads((out / "manifest.json").read_text())["config"]
    assert manifest["labels"] == "predicted" and manifest["min_confidence"] == 0.5
    assert [i["label"] for i in manifest["label_source"]["items"]] == ["Egyptian cat", "espresso"]
