"""`modeledit predict` (modeledit/commands/predict.py) on real photos, and its one-line errors."""
from __future__ import annotations

import json

from PIL import Image

from modeledit.cli import main


def test_predict_json(tmp_path, photos, capsys):
    paths = []
    for name in ("chelsea", "coffee"):
        p = tmp_path / f"{name}.png"
        Image.fromarray(photos[name]).save(p)
        paths.append(str(p))
    assert main(["predict", "mobilenet_v2", *paths, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 281 <= out[0]["top5"][0]["index"] <= 285
    assert out[1]["top5"][0]["label"] in ("espresso", "cup")
    assert set(out[0]["top5"][0]) == {"label", "index", "prob"} and len(out[0]["top5"]) == 5


def test_bad_inputs_one_line_errors(tmp_path, capsys):
    assert main(["layers", "mobilenet_v3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "mobilenet_v2" in err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["predict", "mobilenet_v2", str(bad)]) == 2
    assert "cannot be read" in capsys.readouterr().err
