"""The counterfactual generator end to end: real photos, real masks, the real Magenta networks;
a run killed midway resumes to the same result; bad inputs get one clear error and lose nothing."""
from __future__ import annotations

import json
import signal
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from modeledit.atomic import finished_files
from modeledit.counterfactuals import (
    restyle,
    CounterfactualConfig,
    generate_counterfactuals,
    load_counterfactuals,
)
from modeledit.images import read_image, save_image, to_tensor01
from modeledit.segmenters.files import write_mask_png

SIZE = 96


def _small(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def make_tree(root: Path, photos: dict, n_extra: int = 0) -> tuple[Path, Path]:
    """An ImageFolder tree of real photos at 96x96 and per-image PNG masks.

    ``person`` is present in every image but ``coffee`` (empty mask) and ``rocket`` (3 px, below the
    presence threshold of 100 px at 224 -> 18 px at 96); ``wall`` only in ``chelsea``.
    """
    images, masks = root / "images", root / "masks"
    plan = {"space/astronaut": photos["astronaut"], "cat/chelsea": photos["chelsea"], "food/coffee": photos["coffee"],
            "space/rocket": photos["rocket"]}
    for k in range(n_extra):
        plan[f"cat/chelsea{k}"] = np.roll(photos["chelsea"], 7 * (k + 1), axis=1)
    for rel, img in plan.items():
        save_image(_small(img), images / f"{rel}.png")
        stem = Path(rel).name
        (masks / stem).mkdir(parents=True, exist_ok=True)
        person = np.zeros((SIZE, SIZE), bool)
        if stem == "rocket":
            person[5, 5:8] = True
        elif stem != "coffee":
            person[20:80, 25:70] = True
        write_mask_png(person, masks / stem / "person.png")
        if stem == "chelsea":
            wall = np.zeros((SIZE, SIZE), bool)
            wall[:15] = True
            write_mask_png(wall, masks / stem / "wall.png")
    return images, masks


def test_generator_writes_a_dataset_the_loader_reads(tmp_path, photos):
    images, masks = make_tree(tmp_path, photos)
    out = generate_counterfactuals(images, "files", "magenta", ["person", "wall"], ["snow", "black and white"], tmp_path / "cf",
                                   CounterfactualConfig(style_images=[0, 1], progress=False), segmenter_kwargs={"root": str(masks)})
    ds = load_counterfactuals(out)
    t = ds.table
    # person in astronaut + chelsea, wall in chelsea; x (2 snow images + 1 black and white)
    assert len(ds) == 3 * 3
    assert set(t["image_id"]) == {"space__astronaut", "cat__chelsea"}
    assert set(zip(t["concept"], t["image_id"])) == {("person", "space__astronaut"), ("person", "cat__chelsea"), ("wall", "cat__chelsea")}
    assert sorted(t[t["style"] == "snow"]["style_image_id"].unique()) == [0, 1]
    assert dict(zip(t["image_id"], t["label"])) == {"space__astronaut": "space", "cat__chelsea": "cat"}
    for i in range(len(ds)):
        r = ds[i]
        assert r.original.shape == r.transformed.shape == (3, SIZE, SIZE) and r.mask.shape == (SIZE, SIZE)
        outside = (r.mask == 0)[None].expand_as(r.original)
        assert torch.equal(r.transformed[outside], r.original[outside])
        assert (r.transformed - r.original)[~outside].abs().mean() > 0.02
    bw = ds.subset(style="black and white", concept="person")
    assert len(bw) == 2
    rec = bw[0]
    inside = rec.mask.bool()
    # black and white at 0.8: channels move 80% of the way to the luma
    assert (rec.transformed[0][inside] - rec.transformed[2][inside]).abs().mean() < 0.5 * (rec.original[0][inside] - rec.original[2][inside]).abs().mean()
    b = ds.subset(concept="person", style="snow").batch([0, 1])
    assert b["original"].shape == (2, 3, SIZE, SIZE) and b["mask"].shape == (2, SIZE, SIZE)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["concepts"] == ["person", "wall"] and cfg["stylizer"] == "magenta" and cfg["style_sources"]["snow"][0].startswith("procedural")
    assert CounterfactualConfig.from_json(json.dumps(cfg["config"])) == CounterfactualConfig(style_images=[0, 1], progress=False)
    assert not list(out.rglob(".*.tmp"))


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from modeledit.counterfactuals import CounterfactualConfig, generate_counterfactuals
    images, masks, out = sys.argv[1:4]
    generate_counterfactuals(images, "files", "magenta", ["person"], ["snow"], out,
                             CounterfactualConfig(batch_size=1, progress=False), segmenter_kwargs={"root": masks})
""")


def _pngs(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): np.asarray(read_image(p), dtype=np.int16) for p in sorted(folder.rglob("*.png"))}


def test_killed_midway_resumes_to_the_same_result(tmp_path, photos, warm_cli):
    import tempfile

    images, masks = make_tree(tmp_path, photos, n_extra=4)
    out = tmp_path / "cf"
    records = out / "records"
    with tempfile.TemporaryFile("w+") as err:     # a process of its own, forked from the warm server (tests/warm_cli.py)
        proc = warm_cli.start([str(images), str(masks), str(out)], cwd=tmp_path, code=KILL_SCRIPT, stderr=err)
        try:
            while proc.poll() is None and len(list(records.glob("*.json"))) < 2:
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        err.seek(0)
        assert proc.returncode == -signal.SIGKILL, err.read()[-2000:]
    done_before = {p.name: p.stat().st_mtime_ns for p in finished_files(records)}   # not a temporary file the kill left
    assert 2 <= len(done_before) < 8, "the run was not interrupted midway"
    assert not (out / "metadata.csv").exists()
    first = next(iter(done_before))      # a killed writer's complete but unrenamed record is not a finished image
    fake = json.loads((records / first).read_text())
    fake["records"] = [{**r, "image_id": "never_finished"} for r in fake["records"]]
    (records / f".{first[:-5]}.999.tmp.json").write_text(json.dumps(fake))
    partial = load_counterfactuals(out)  # readable while unfinished: the finished images only
    assert set(partial.table["image_id"]) <= {p[:-5] for p in done_before}

    torch.manual_seed(0)
    cfg = CounterfactualConfig(batch_size=1, progress=False)
    generate_counterfactuals(images, "files", "magenta", ["person"], ["snow"], out, cfg, segmenter_kwargs={"root": str(masks)})
    for name, mtime in done_before.items():  # finished images were not redone
        assert (records / name).stat().st_mtime_ns == mtime
    clean = generate_counterfactuals(images, "files", "magenta", ["person"], ["snow"], tmp_path / "clean", cfg,
                                     segmenter_kwargs={"root": str(masks)})
    a, b = load_counterfactuals(out).table, load_counterfactuals(clean).table
    assert len(a) == 6 * 3  # 6 images with a person x 3 snow images
    assert a.equals(b)
    pa, pb = _pngs(out), _pngs(clean)
    assert pa.keys() == pb.keys()
    assert max(int(np.abs(pa[k] - pb[k]).max()) for k in pa) <= 1
    assert not list(out.rglob(".*.tmp"))


def test_bad_inputs_get_one_clear_error_and_nothing_is_lost(tmp_path, photos):
    images, masks = make_tree(tmp_path, photos)
    run = lambda imgs, out, **kw: generate_counterfactuals(  # noqa: E731
        imgs, "files", "magenta", kw.pop("concepts", ["person"]), kw.pop("styles", ["black and white"]), tmp_path / out,
        CounterfactualConfig(batch_size=1, progress=False, **kw), segmenter_kwargs={"root": str(masks)})
    with pytest.raises(KeyError, match="cannot find 'persn'; it finds: \\['person', 'wall'\\]"):
        run(images, "a", concepts=["persn"])
    with pytest.raises(KeyError, match="unknown style 'snwo'.*snow"):
        run(images, "a", styles=["snwo"])
    # grayscale and RGBA files are converted (composited on white), not rejected
    save_image(np.asarray(read_image(images / "space" / "astronaut.png").convert("L")), images / "space" / "gray.png")
    rgba = np.dstack([_small(photos["astronaut"]), np.full((SIZE, SIZE), 200, np.uint8)])
    save_image(rgba, images / "space" / "rgba.png")
    for stem in ("gray", "rgba"):
        (masks / stem).mkdir()
        write_mask_png(np.pad(np.ones((40, 40), bool), 28), masks / stem / "person.png")
    # a corrupt image stops the run with its name; what was written before stays
    (images / "space" / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(ValueError, match="zz_corrupt.png.*corrupt"):
        run(images, "b")
    done = load_counterfactuals(tmp_path / "b")
    assert {"space__gray", "space__rgba", "space__astronaut", "cat__chelsea"} == set(done.table["image_id"])
    skipped = run(images, "b", on_error="skip")  # resume, skipping it
    assert json.loads((skipped / "config.json").read_text())["skipped"] == ["space__zz_corrupt"]
    assert len(load_counterfactuals(skipped)) == 4
    with pytest.raises(ValueError, match="different settings|different"):
        run(images, "b", blend=0.5)
    (images / "space" / "zz_corrupt.png").unlink()
    # a mask of the wrong size names the image
    write_mask_png(np.ones((10, 10), bool), masks / "astronaut" / "person.png")
    with pytest.raises(ValueError, match="astronaut.*must match"):
        run(images, "c")
    # image tensors that are not RGB
    with pytest.raises(ValueError, match="RGB"):
        generate_counterfactuals(torch.rand(2, 1, 32, 32), "files", "texture", ["person"], ["snow"], tmp_path / "d",
                                 CounterfactualConfig(progress=False), segmenter_kwargs={"root": str(masks)})
    with pytest.raises(ValueError, match="RGB"):
        generate_counterfactuals(torch.rand(2, 4, 32, 32), "files", "texture", ["person"], ["snow"], tmp_path / "e",
                                 CounterfactualConfig(progress=False), segmenter_kwargs={"root": str(masks)})
    # a style image that cannot be read (a folder style is named by its path)
    folder = tmp_path / "mystyle"
    folder.mkdir()
    save_image(photos["coffee"], folder / "a.png")
    (folder / "b.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match="style image .*b.png"):
        run(images, "f", styles=[str(folder)])


def test_restyle_region_in_memory(photos):
    x = torch.stack([to_tensor01(_small(photos["astronaut"])), to_tensor01(_small(photos["chelsea"]))])
    m = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    m[:, 30:60, 30:60] = True
    y = restyle(x, m, "graffiti", 2)
    assert y.shape == x.shape
    assert torch.equal(y[:, :, ~m[0]], x[:, :, ~m[0]])
    assert (y - x)[:, :, m[0]].abs().mean() > 0.05
    with pytest.raises(ValueError, match="empty"):
        restyle(x, torch.zeros(2, SIZE, SIZE, dtype=torch.bool), "snow")
    with pytest.raises(ValueError, match="do not fit"):
        restyle(x, m[:, :50], "snow")
    with pytest.raises(KeyError, match="images 0..2"):
        restyle(x, m, "snow", 7)


def test_cli(tmp_path, photos, capsys):
    from modeledit.cli import main

    images, masks = make_tree(tmp_path, photos)
    args = ["counterfactuals", "--images", str(images), "--concept", "person", "--style", "black and white", "--style", "snow",
            "--style-images", "0", "--segmenter", "files", "--segmenter-arg", f"root={masks}", "--out", str(tmp_path / "cf")]
    assert main(args) == 0
    assert "4 counterfactuals from 2 images" in capsys.readouterr().out
    assert main(args[:5] + ["--style", "snwo"] + args[9:]) == 2
    assert "unknown style" in capsys.readouterr().err


def test_mask_files_fit_after_max_size(tmp_path, photos):
    """Mask files made for the original size still fit after --max-size."""
    from PIL import Image

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    img = photos["astronaut"]  # 512x512
    Image.fromarray(img).save(images / "astro.png")
    m = np.zeros(img.shape[:2], bool)
    m[100:400, 150:350] = True
    (masks / "astro").mkdir(parents=True)
    write_mask_png(m, masks / "astro" / "road.png")
    cfg = CounterfactualConfig(max_size=128, progress=False)
    out = generate_counterfactuals(images, "files", "texture", ["road"], ["snow"], tmp_path / "cf", cfg, segmenter_kwargs={"root": str(masks)})
    ds = load_counterfactuals(out)
    r = ds[0]
    assert tuple(r.mask.shape) == (128, 128) and abs(float(r.mask.float().mean()) - m.mean()) < 0.02
    # a mask of neither size is refused, naming both
    write_mask_png(np.ones((50, 60), bool), masks / "astro" / "road.png")
    with pytest.raises(ValueError, match=r"mask for 'road' is 60x50 but the image is 512x512 \(processed at 128x128\)"):
        generate_counterfactuals(images, "files", "texture", ["road"], ["snow"], tmp_path / "cf2", cfg, segmenter_kwargs={"root": str(masks)})
    assert not (tmp_path / "cf2").exists()
