"""``modeledit samples``: real photos, a real person mask and a real Magenta restyle, written so that the
README's examples run on them; reruns are idempotent and nothing of the user's is overwritten."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modeledit.cli import main
from modeledit.commands.samples import PHOTOS


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    (out / "notes.txt").write_text("the user's own file")
    assert main(["samples", "--out", str(out), "--n-stats", "6"]) == 0
    return out


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def test_samples_are_real_photos_a_person_mask_and_its_restyled_copy(samples):
    for name in PHOTOS:
        im = Image.open(samples / "photos" / f"{name}.png")
        assert min(im.size) == 256 and im.mode == "RGB", (name, im.size, im.mode)
    assert len(list((samples / "stats_images").glob("*.png"))) == 6
    x, y = _rgb(samples / "astronaut.png"), _rgb(samples / "astronaut_snow.png")
    mask = np.asarray(Image.open(samples / "astronaut_mask.png")) > 127
    assert x.shape == y.shape == (224, 224, 3) and mask.shape == (224, 224)
    assert 0.2 < mask.mean() < 0.8, "MediaPipe's person covers a good part of the astronaut photo"
    assert np.array_equal(x[~mask], y[~mask]), "only the person is restyled"
    assert np.abs(x[mask] - y[mask]).mean() > 20, "the person is restyled"
    assert (samples / "notes.txt").read_text() == "the user's own file"


def test_the_sample_photo_is_what_the_model_sees_in_it(samples):
    from modeledit import load_model, read_tensor

    lm = load_model("mobilenet_v2")
    top = lm.topk(read_tensor(samples / "photos" / "chelsea.png", lm)[None])[0][0]
    assert top["label"] in ("Egyptian cat", "tabby", "tiger cat"), top


def test_a_rerun_writes_nothing_and_the_users_files_are_never_overwritten(samples, capsys):
    before = {p: p.stat().st_mtime_ns for p in samples.rglob("*.png")}
    assert main(["samples", "--out", str(samples), "--n-stats", "6"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["written"] == 0 and report["already there"] == len(before)
    assert {p: p.stat().st_mtime_ns for p in samples.rglob("*.png")} == before

    mine = samples / "photos" / "coffee.png"
    mine.write_bytes(b"my own coffee picture")
    assert main(["samples", "--out", str(samples), "--n-stats", "6"]) == 2
    assert "--force" in capsys.readouterr().err
    assert mine.read_bytes() == b"my own coffee picture"
    assert main(["samples", "--out", str(samples), "--n-stats", "6", "--force"]) == 0
    assert Image.open(mine).size[1] == 256
