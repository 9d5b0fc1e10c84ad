"""Every bad input gets one clear line (issue 11): exit code 2, one line on stderr naming what was wrong
and what to do, no traceback, nothing half-written, earlier results intact. And a bug is not a user
error: it shows its traceback and exits 1.

The inputs are built once (tiny images, a real edit of world_vgg, broken copies of it, a finished
counterfactual run); each case runs the real command in-process.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeledit.cli import main

BW = "black and white"


@pytest.fixture(scope="module")
def ws(tmp_path_factory, photos):
    """The workspace every case reads from (never written by a failing case)."""
    d = tmp_path_factory.mktemp("cli_errors")
    cat = photos["chelsea"]
    Image.fromarray(cat).save(d / "cat.png")
    restyled = cat.copy()
    restyled[100:200, 100:300] = 255 - restyled[100:200, 100:300]  # the same picture, one region changed
    Image.fromarray(restyled).save(d / "cat2.png")
    Image.fromarray(cat).save(d / "cat_copy.png")   # the same pixels in another file (a no-op edit)
    Image.fromarray(cat[::2, ::2].copy()).save(d / "small.png")
    m = np.zeros(cat.shape[:2], np.uint8)
    m[100:200, 100:300] = 255
    Image.fromarray(m).save(d / "mask.png")
    Image.fromarray(m[::2, ::2].copy()).save(d / "mask_small.png")
    Image.fromarray(np.zeros_like(m)).save(d / "empty_mask.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (d / "notorch.pt").write_bytes(b"hello world" * 10)
    torch.save({"a": torch.zeros(1)}, d / "tiny.pt")
    (d / "afile").write_text("a file, not a folder")
    (d / "emptydir").mkdir()
    (d / "imgs").mkdir()
    Image.fromarray(cat[:64, :64].copy()).save(d / "imgs" / "a.png")
    (d / "notatable.csv").write_text("a,b\n1,2\n")
    # a real edit and broken copies of it
    assert main(["edit", "world_vgg", "--layer", "-1", "--original", str(d / "cat.png"), "--transformed", str(d / "cat2.png"),
                 "--out", str(d / "good")]) == 0
    for name, st, js in (("trunc", b"\x00" * 10, None), ("corrupt", None, "{bad"), ("empty", None, "{}")):
        (d / f"{name}.safetensors").write_bytes(st if st is not None else (d / "good.safetensors").read_bytes())
        (d / f"{name}.json").write_text(js if js is not None else (d / "good.json").read_text())
    # world_vgg with other weights: the edit's base hash no longer matches
    from modeledit import load_model
    from modeledit.eval.world.models import save_project_checkpoint

    lm = load_model("world_vgg")
    meta = lm.meta
    with torch.no_grad():
        for p in lm.model.parameters():
            p.add_(0.01)
    save_project_checkpoint(d / "other_vgg.pt", lm.model, meta["spec"], lm.class_names)
    # a finished counterfactual run (files segmenter, texture stylizer: fast and deterministic)
    (d / "masks" / "a").mkdir(parents=True)
    Image.fromarray(np.pad(np.full((32, 32), 255, np.uint8), 16)).save(d / "masks" / "a" / "object.png")
    assert main(["counterfactuals", "--images", str(d / "imgs"), "--concepts", "object", "--styles", "snow", "--segmenter", "files",
                 "--segmenter-arg", f"root={d / 'masks'}", "--stylizer", "texture", "--style-images", "0", "--out", str(d / "cf")]) == 0
    pd_sens = d / "sens.csv"
    import pandas as pd

    pd.DataFrame([dict(concept="road", style=BW, class_name=c, presence=0.9, drop=0.3) for c in ("car", "bus", "truck")]).to_csv(pd_sens, index=False)
    return d


#: the folder holding the package's sources (modeledit/, eval/, ...): nothing may be written under it
PKG = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


B = ["bench", "world_vgg", "--dataset", "world:test:90", "--clean", "world:val:8", "--stats-dataset", "world:train:8"]
E = ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png"]
S = ["sensitivity", "world_vgg", "--dataset"]
T = ["typographic", "world_vgg", "--dataset", "world:test:8", "--clean", "world:val:8", "--stats-dataset", "world:train:8"]

# (id, argv with {d} for the workspace and {out} for a fresh output path, regex the one line must match)
CASES = [
    # the command line itself
    ("unknown-command", ["nope"], r"unknown command 'nope'; choose from .*layers"),
    ("missing-argument", ["layers"], r"the following arguments are required: model.*--help"),
    ("unknown-flag", ["layers", "world_vgg", "--bogus"], r"unrecognized arguments: --bogus.*--help"),
    ("models-extra-arg", ["models", "extra"], r"unrecognized arguments: extra"),
    # models and weights
    ("unknown-model", ["layers", "mobilenet_v3"], r"unknown model 'mobilenet_v3'; closest: \['mobilenet_v2'"),
    ("weights-not-torch", ["predict", "world_vgg", "--weights", "{d}/notorch.pt", "{d}/cat.png"], r"'.*notorch.pt' is not a torch checkpoint.*torch.save"),
    ("weights-not-torch-tv", ["predict", "mobilenet_v2", "--weights", "{d}/notorch.pt", "{d}/cat.png"], r"is not a torch checkpoint"),
    ("weights-unknown-enum", ["predict", "mobilenet_v2", "--weights", "FOO", "{d}/cat.png"], r"unknown weights 'FOO' for mobilenet_v2; valid: \['IMAGENET1K_V1', 'IMAGENET1K_V2', 'DEFAULT'\] or"),
    ("weights-missing", ["predict", "world_vgg", "--weights", "{d}/missing.pt", "{d}/cat.png"], r"missing.pt.*(does not exist|missing)"),
    ("weights-wrong-arch", ["predict", "resnet18", "--weights", "{d}/tiny.pt", "{d}/cat.png"], r"does not fit the architecture"),
    ("weights-not-project-ckpt", ["predict", "world_vgg", "--weights", "{d}/tiny.pt", "{d}/cat.png"], r"not a project checkpoint"),
    # images
    ("image-missing", ["predict", "world_vgg", "{d}/missing.png"], r"image '.*missing.png' does not exist"),
    ("image-is-folder", ["predict", "world_vgg", "{d}/imgs"], r"'.*imgs' is a folder, not an image file"),
    ("image-corrupt", ["predict", "world_vgg", "{d}/corrupt.png"], r"corrupt.png' cannot be read.*corrupt"),
    # edit
    ("rank-not-int", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--rank", "abc"], r"argument --rank: 'abc' is neither a positive integer nor 'full'"),
    ("rank-zero", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--rank", "0"], r"--rank: '0' is not a positive integer"),
    ("site-out-of-range", ["edit", "world_vgg", "--layer", "99", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png"], r"site index 99 out of range.*edit sites"),
    ("site-unknown-name", ["edit", "world_vgg", "--layer", "features.99", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png"], r"no edit site named 'features.99'; closest: \['features.8', 'features.4', "),
    ("solver-unknown", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--solver", "sgd"], r"argument --solver: invalid choice: 'sgd'"),
    ("size-negative", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--size", "-3"], r"--size: '-3' is not a positive integer"),
    ("exemplar-size-mismatch", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/small.png"], r"original '.*cat.png' is 451x300 but transformed '.*small.png' is 226x150"),
    ("exemplar-count-mismatch", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "{d}/cat.png", "--transformed", "{d}/cat2.png"], r"2 originals but 1 transformed"),
    ("mask-size-mismatch", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--masked", "--mask", "{d}/mask_small.png"], r"mask '.*mask_small.png' is 226x150 but its image '.*cat.png' is 451x300.*--resize-masks"),
    ("mask-empty", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--masked", "--mask", "{d}/empty_mask.png"], r"the mask is empty.*give no mask"),
    ("mask-without-masked", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--mask", "{d}/mask_small.png"], r"--mask applies only with --masked"),
    ("budget-without-auto", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--budget", "0.01"], r"--budget applies only with --layer auto"),
    ("masked-without-mask", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--masked"], r"masked mode needs a mask"),
    ("edit-out-under-file", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--out", "{d}/afile/fix"], r"--out '.*afile/fix' lies under '.*afile', which is a file"),
    ("edit-out-unwritable", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--out", "/proc/fix"], r"--out '/proc/fix': cannot write in '/proc'"),
    ("edit-out-is-folder", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--out", "{d}/emptydir"], r"--out '.*emptydir' is a folder; give a file name"),
    ("edit-stats-folder-missing", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat2.png", "--images", "{d}/nope"], r"image folder '.*nope' does not exist"),
    # apply
    ("edit-truncated", ["apply", "world_vgg", "{d}/trunc", "{d}/cat.png"], r"edit tensors '.*trunc.safetensors' cannot be read.*truncated or corrupt"),
    ("edit-json-corrupt", ["apply", "world_vgg", "{d}/corrupt", "{d}/cat.png"], r"edit file '.*corrupt.json' is not valid JSON"),
    ("edit-json-empty", ["apply", "world_vgg", "{d}/empty", "{d}/cat.png"], r"edit file '.*empty.json' lacks \['method', 'ops', 'base_hashes'\]"),
    ("edit-missing", ["apply", "world_vgg", "{d}/nope", "{d}/cat.png"], r"edit file '.*nope.safetensors' does not exist"),
    ("edit-other-architecture", ["apply", "world_resnet", "{d}/good", "{d}/cat.png"], r"no parameter 'features.15.weight'; this edit was made for another architecture"),
    ("edit-other-base", ["apply", "world_vgg", "--weights", "{d}/other_vgg.pt", "{d}/good", "{d}/cat.png"], r"different base weight.*--force"),
    # stats
    ("stats-folder-missing", ["stats", "world_vgg", "--layer", "-1", "--images", "{d}/nope"], r"image folder '.*nope' does not exist"),
    ("stats-folder-empty", ["stats", "world_vgg", "--layer", "-1", "--images", "{d}/emptydir"], r"no images .* under '.*emptydir'"),
    ("stats-folder-is-file", ["stats", "world_vgg", "--layer", "-1", "--images", "{d}/cat.png"], r"'.*cat.png' is a file; pass the folder"),
    ("stats-batch-zero", ["stats", "world_vgg", "--layer", "-1", "--images", "{d}/imgs", "--batch-size", "0"], r"--batch-size: '0' is not a positive integer"),
    # counterfactuals
    ("cf-style-typo", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snw", "--segmenter", "files", "--segmenter-arg", "root={d}/masks", "--out", "{out}"], r"unknown style 'snw'; closest: \['snow'"),
    ("cf-concept-unknown-to-segmenter", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "road", "--styles", "snow", "--segmenter", "mediapipe", "--out", "{out}"], r"the mediapipe segmenter cannot find 'road'; it finds: \['person'\]"),
    ("cf-concept-not-in-masks", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "objetc", "--styles", "snow", "--segmenter", "files", "--segmenter-arg", "root={d}/masks", "--out", "{out}"], r"files segmenter cannot find 'objetc'; it finds: \['object'\]"),
    ("cf-segmenter-unknown", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "person", "--styles", "snow", "--segmenter", "sam", "--out", "{out}"], r"unknown segmenter 'sam'"),
    ("cf-stylizer-unknown", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snow", "--segmenter", "files", "--segmenter-arg", "root={d}/masks", "--stylizer", "cyclegan", "--out", "{out}"], r"unknown stylizer 'cyclegan'"),
    ("cf-style-image-out-of-range", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snow", "--segmenter", "files", "--segmenter-arg", "root={d}/masks", "--style-images", "7", "--out", "{out}"], r"style 'snow' has images 0..2; style_images \[7\] do not exist"),
    ("cf-blend", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snow", "--blend", "2", "--out", "{out}"], r"--blend: '2' is not a fraction between 0 and 1"),
    ("cf-segmenter-arg", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snow", "--segmenter", "files", "--segmenter-arg", "rootmasks", "--out", "{out}"], r"--segmenter-arg 'rootmasks' must look like KEY=VALUE"),
    ("cf-images-missing", ["counterfactuals", "--images", "{d}/nope", "--concepts", "object", "--styles", "snow", "--segmenter", "files", "--segmenter-arg", "root={d}/masks", "--out", "{out}"], r"image folder '.*nope' does not exist"),
    ("cf-out-is-file", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snow", "--out", "{d}/afile"], r"--out '.*afile' is a file, not a folder"),
    ("cf-typo-into-finished-run", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snw", "--segmenter", "files", "--segmenter-arg", "root={d}/masks", "--stylizer", "texture", "--style-images", "0", "--out", "{d}/cf"], r"unknown style 'snw'"),
    ("cf-other-settings-into-finished-run", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snow", "--segmenter", "files", "--segmenter-arg", "root={d}/masks", "--stylizer", "texture", "--style-images", "0", "--blend", "0.5", "--out", "{d}/cf"], r"holds a dataset made with different settings; resume with the same settings, choose a new output folder, or pass --force"),
    # sensitivity
    ("sens-concept-typo", ["sensitivity", "world_vgg", "--dataset", "world:test:8", "--concepts", "rod", "--styles", "snow", "--out", "{out}"], r"the oracle segmenter cannot find 'rod'; it finds: \d+ names, closest \['road'"),
    ("sens-style-typo", ["sensitivity", "world_vgg", "--dataset", "world:test:8", "--concepts", "road", "--styles", "snw", "--out", "{out}"], r"unknown style 'snw'; closest: \['snow'"),
    ("sens-split-typo", ["sensitivity", "world_vgg", "--dataset", "world:tst:8", "--concepts", "road", "--styles", "snow", "--out", "{out}"], r"unknown world split 'tst'"),
    ("sens-style-image", ["sensitivity", "world_vgg", "--dataset", "world:test:8", "--concepts", "road", "--styles", "snow", "--style-image", "5", "--out", "{out}"], r"style 'snow' has images 0..2; style image 5 does not exist"),
    ("sens-empty-list", ["sensitivity", "world_vgg", "--concepts", ",", "--styles", "snow", "--out", "{out}"], r"--concepts/--concept: ',' is an empty list"),
    # bench
    ("bench-sensitivity-missing", B + ["--sensitivity", "{d}/nope.csv", "--pairs", f"road:{BW}", "--out", "{out}"], r"--sensitivity '.*nope.csv' does not exist; run `modeledit sensitivity"),
    ("bench-sensitivity-not-a-table", B + ["--sensitivity", "{d}/notatable.csv", "--out", "{out}"], r"is not a sensitivity table"),
    ("bench-method-unknown", B + ["--sensitivity", "{d}/sens.csv", "--pairs", f"road:{BW}", "--methods", "edit,rome", "--out", "{out}"], r"unknown method.*'rome'"),
    ("bench-pair-format", B + ["--pairs", "road", "--out", "{out}"], r"--pairs: 'road' is not a valid concept:style pair.*road:snow"),
    ("bench-pair-style-typo", B + ["--sensitivity", "{d}/sens.csv", "--pairs", "road:snw", "--out", "{out}"], r"(unknown style 'snw'|no affected class)"),
    ("bench-n-exemplars", B + ["--n-exemplars", "0", "--out", "{out}"], r"--n-exemplars: '0' is not a valid exemplar count"),
    ("bench-budget", B + ["--max-clean-drop", "2", "--out", "{out}"], r"--max-clean-drop: '2' is not a fraction between 0 and 1"),
    ("bench-grid", B + ["--sensitivity", "{d}/sens.csv", "--pairs", f"road:{BW}", "--finetune-grid", "1e-3", "--out", "{out}"], r"--finetune-grid takes lr:steps pairs"),
    ("bench-site", B + ["--sensitivity", "{d}/sens.csv", "--pairs", f"road:{BW}", "--sites", "99", "--out", "{out}"], r"site index 99 out of range"),
    ("bench-stats-overlap", ["bench", "world_vgg", "--dataset", "world:test:90", "--clean", "world:val:8", "--stats-dataset", "world:test:8", "--sensitivity", "{d}/sens.csv", "--pairs", f"road:{BW}", "--out", "{out}"], r"statistics dataset 'world:test:8' shares images with --dataset"),
    ("bench-executor", B + ["--executor", "dask", "--out", "{out}"], r"argument --executor: invalid choice: 'dask'"),
    ("bench-no-pairs", B + ["--out", "{out}"], r"give concept-style pairs \(--pairs road:snow\) or a sensitivity table"),
    # typographic, snow
    ("typo-attack-class", T + ["--attack-class", "spaceship", "--out", "{out}"], r"--attack-class 'spaceship' is not a class of world_vgg"),
    ("typo-paster", T + ["--paster", "stamp", "--out", "{out}"], r"argument --paster: invalid choice: 'stamp'"),
    ("typo-font", T + ["--fonts", "sans,comic", "--out", "{out}"], r"the typed paster has no font 'comic'; .*valid: \['hand', 'mono', 'sans', 'serif'\]"),
    ("typo-clip-weights", ["typographic", "clip:world-RN", "--weights", "{d}/nope.pt", "--paster", "world_clip", "--out", "{out}"],
     r"world CLIP checkpoint '.*nope.pt' does not exist"),
    ("typo-stats-overlap", ["typographic", "world_vgg", "--dataset", "world:test:8", "--clean", "world:val:8", "--stats-dataset", "world:val:8", "--out", "{out}"], r"statistics dataset 'world:val:8' shares images with --clean"),
    ("snow-photos-without-photos", ["snow", "world_vgg", "--mode", "photos", "--clean", "world:val:8", "--out", "{out}"], r"photos mode needs --photos DIR"),
    ("snow-style-typo", ["snow", "world_vgg", "--style", "snw", "--out", "{out}"], r"unknown style 'snw'"),
    ("snow-n-test", ["snow", "world_vgg", "--n-test", "0", "--out", "{out}"], r"--n-test: '0' is not a positive integer"),
    # bench-summary, report, world, demo
    ("bench-summary-missing", ["bench-summary", "{d}/nope"], r"cells.csv does not exist; run `modeledit bench"),
    ("bench-summary-budget", ["bench-summary", "{d}", "--budgets", "5"], r"--budgets: '5' is not a valid budget"),
    ("report-missing", ["report", "{d}/nope", "--out", "{out}"], r"'.*nope' does not exist"),
    ("report-nothing-to-report", ["report", "{d}/emptydir", "--out", "{out}"], r"no harness results under '.*emptydir'"),
    ("world-render-n", ["world", "render", "--n", "0", "--out", "{out}"], r"--n: '0' is not a positive integer"),
    ("world-render-out-file", ["world", "render", "--n", "2", "--out", "{d}/afile"], r"--out '.*afile' is a file, not a folder"),
    ("world-train-preset", ["world", "train", "vgg16", "--out", "{out}"], r"unknown world classifier preset 'vgg16'; valid"),
    ("world-no-action", ["world"], r"the following arguments are required: ACTION"),
    ("demo-section", ["demo", "--sections", "snow", "--out", "{out}"], r"unknown demo sections \['snow'\] in --sections"),
] + [
    # issue 24 §5: every grid and count bound, before any cell starts (the grids of the chosen methods)
    (f"grid-{cmd[0]}-{method}-{value}", [*cmd, "--methods", method, f"{flag}={value}", "--out", "{out}"], rf"{flag} takes {what}.*; got {bad}$")
    for cmd in (B, T, ["snow", "world_vgg"])
    for method, flag, value, what, bad in (   # the value given, and the part of it that is out of range
        ("edit", "--strength-grid", "1.5", "fractions in \\(0, 1\\]", "1.5"), ("edit", "--strength-grid", "-0.5,1", "fractions", "-0.5"),
        ("edit_full", "--strength-grid", "0", "fractions", "0.0"), ("edit_masked", "--strength-grid", "0.5,2", "fractions", "2.0"),
        ("paint_local", "--alpha-grid", "2", "interpolation coefficients", "2.0"),
        ("paint_global", "--alpha-grid", "0,1", "interpolation coefficients", "0.0"),
        ("rrr_local", "--lambda-grid", "-1", "non-negative", "-1.0"), ("rrr_global", "--lambda-grid", "1,-0.1", "non-negative", "-0.1"),
    )
] + [
    ("photos-strength-grid", ["photos", "--methods", "edit", "--strength-grid", "2", "--out", "{out}"], r"--strength-grid takes fractions"),
    ("photos-alpha-grid", ["photos", "--alpha-grid", "1.5", "--out", "{out}"], r"--alpha-grid takes interpolation coefficients"),
    ("grid-finetune-lr-zero", B + ["--methods", "finetune_local", "--finetune-grid", "0:10", "--out", "{out}"], r"--finetune-grid takes lr:steps pairs \(lr > 0"),
    ("grid-adam-steps-zero", B + ["--methods", "edit_adam", "--adam-grid", "1e-3:0", "--out", "{out}"], r"--adam-grid takes lr:steps pairs"),
    ("bench-n-exemplars-too-many", B + ["--methods", "edit", "--n-exemplars", "100000", "--out", "{out}"],
     r"--n-exemplars 100000 needs a class with more than 100000 images of --dataset 'world:test:90'.*largest class holds 5"),
    ("bench-n-exemplars-one-of-several", B + ["--n-exemplars", "1,5", "--out", "{out}"], r"--n-exemplars 5 needs a class with more than 5"),
    ("bench-n-exemplars-folder", ["bench", "world_vgg", "--dataset", "{d}/imgs", "--n-exemplars", "1", "--pairs", "object:snow", "--out", "{out}"],
     r"--n-exemplars 1 needs a class with more than 1 images of --dataset '.*imgs'.*largest class holds 1"),
    # issue 24 §5: flags that do not apply to the chosen mode (the APPLIES tables)
    ("snow-exemplar-in-world-mode", ["snow", "world_vgg", "--exemplar", "{d}/cat.png", "--out", "{out}"], r"--exemplar applies only with --mode photos"),
    ("snow-exemplar-mask-in-world-mode", ["snow", "world_vgg", "--exemplar-mask", "{d}/mask.png", "--out", "{out}"], r"--exemplar-mask applies only with --mode photos"),
    ("snow-photos-in-world-mode", ["snow", "world_vgg", "--photos", "{d}/imgs", "--out", "{out}"], r"--photos applies only with --mode photos"),
    ("snow-n-test-in-photos-mode", ["snow", "world_vgg", "--mode", "photos", "--n-test", "5", "--out", "{out}"], r"--n-test applies only with --mode world"),
    ("snow-n-val-in-photos-mode", ["snow", "world_vgg", "--mode", "photos", "--n-val", "5", "--out", "{out}"], r"--n-val applies only with --mode world"),
    ("world-train-set-not-clip", ["world", "train", "vgg", "--set", "foo=1"], r"--set applies only with world train clip"),
    ("world-train-steps-not-clip", ["world", "train", "resnet", "--steps", "3"], r"--steps applies only with world train clip"),
    ("world-train-resume-not-clip", ["world", "train", "vgg", "--resume", "{out}/r.pt"], r"--resume applies only with world train clip"),
    ("world-train-recipe-not-clip", ["world", "train", "vgg", "--recipe", "v1"], r"--recipe applies only with world train clip"),
    ("world-train-stop-on-gate-not-clip", ["world", "train", "vgg_text", "--stop-on-gate"], r"--stop-on-gate applies only with world train clip"),
    ("world-train-epochs-clip", ["world", "train", "clip", "--epochs", "1"], r"--epochs applies only with world train vgg, resnet or vgg_text"),
    ("world-train-clip-unknown-key", ["world", "train", "clip", "--set", "foo=1", "--out", "{out}/c.pt"], r"unknown ClipTrainConfig field 'foo'"),
    ("world-train-into-package", ["world", "train", "vgg", "--out", "{pkg}/eval/world/zoo/world_vgg.pt"], r"inside the installed modeledit package"),
    ("bench-address-without-ray", B + ["--address", "ray://127.0.0.1:1", "--out", "{out}"], r"--address applies only with --executor ray"),
    ("bench-workers-without-ray", B + ["--workers", "4", "--out", "{out}"], r"--workers applies only with --executor ray"),
    ("bench-min-confidence-given-labels", B + ["--min-confidence", "0.5", "--out", "{out}"], r"--min-confidence applies only with --labels predicted"),
    ("bench-max-pairs-with-pairs", B + ["--pairs", f"road:{BW}", "--max-pairs", "5", "--out", "{out}"], r"--max-pairs applies only with pairs selected"),
    ("bench-alpha-grid-without-paint", B + ["--methods", "edit", "--alpha-grid", "0.5", "--out", "{out}"], r"--alpha-grid applies only with --methods including paint"),
    ("bench-strength-grid-without-edit", B + ["--methods", "finetune_local", "--strength-grid", "0.5", "--out", "{out}"], r"--strength-grid applies only with --methods including edit"),
    ("bench-lambda-grid-without-rrr", B + ["--lambda-grid", "1", "--out", "{out}"], r"--lambda-grid applies only with --methods including rrr"),
    ("bench-adam-grid-without-adam", B + ["--adam-grid", "1e-3:10", "--out", "{out}"], r"--adam-grid applies only with --methods including edit_adam"),
    ("bench-finetune-grid-edit-only", B + ["--methods", "edit,edit_full", "--finetune-grid", "1e-3:10", "--out", "{out}"], r"--finetune-grid applies only with --methods including finetune"),
    ("typo-fonts-world-tag", T + ["--paster", "world_tag", "--fonts", "sans", "--out", "{out}"], r"--fonts applies only with --paster typed or world_clip"),
    ("typo-size-world-clip", T + ["--paster", "world_clip", "--size", "0.3", "--out", "{out}"], r"--size applies only with --paster typed"),
    ("typo-alpha-grid-default-methods", T + ["--alpha-grid", "0.5", "--out", "{out}"], r"--alpha-grid applies only with --methods including paint"),
    ("photos-lambda-grid-default-methods", ["photos", "--lambda-grid", "1", "--out", "{out}"], r"--lambda-grid applies only with --methods including rrr"),
    ("sens-min-confidence-given-labels", ["sensitivity", "world_vgg", "--concepts", "road", "--styles", "snow", "--min-confidence", "0.5", "--out", "{out}"],
     r"--min-confidence applies only with --labels predicted"),
    ("edit-lr-closed-form", E + ["--lr", "0.1"], r"--lr applies only with --solver adam"),
    ("edit-steps-closed-form", E + ["--steps", "5"], r"--steps applies only with --solver adam"),
    ("edit-resize-masks-without-mask", E + ["--resize-masks"], r"--resize-masks applies only with --mask"),
    # issue 24 §5: tracebacks become one line; sizes and places checked before work
    ("dataset-n-not-a-number", S + ["world:test:abc", "--concepts", "road", "--styles", "snow", "--out", "{out}"], r"dataset 'world:test:abc': write world:SPLIT\[:N\]"),
    ("dataset-n-zero", S + ["world:test:0", "--concepts", "road", "--styles", "snow", "--out", "{out}"], r"N a positive whole number"),
    ("dataset-too-many-parts", S + ["world:test:5:6", "--concepts", "road", "--styles", "snow", "--out", "{out}"], r"write world:SPLIT\[:N\]"),
    ("dataset-n-typographic", T[:2] + ["--dataset", "world:test:x", "--out", "{out}"], r"is not a world dataset|write world:SPLIT"),
    ("segmenter-arg-unknown-key", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snow", "--segmenter", "grabcut", "--segmenter-arg", "bx=1,2,3,4", "--out", "{out}"],
     r"the grabcut segmenter takes no keyword 'bx'; it takes \['box', 'concept', 'iterations', 'seed_mask'\]"),
    ("segmenter-arg-files-unknown-key", ["counterfactuals", "--images", "{d}/imgs", "--concepts", "object", "--styles", "snow", "--segmenter", "files", "--segmenter-arg", "rot={d}/masks", "--out", "{out}"],
     r"the files segmenter takes no keyword 'rot'"),
    ("ray-unreachable", B + ["--executor", "ray", "--address", "ray://127.0.0.1:1", "--out", "{out}"], r"the Ray cluster at ray://127.0.0.1:1 does not answer"),
    ("ray-bad-address", B + ["--executor", "ray", "--address", "ray://nohost", "--out", "{out}"], r"--address 'ray://nohost' is not a Ray address"),
    ("stats-size-beyond-memory", ["stats", "world_vgg", "--layer", "-1", "--images", "{d}/imgs", "--size", "100000"], r"--size 100000 with batches of 32 needs about .* of memory.*is free"),
    ("stats-size-too-small", ["stats", "world_vgg", "--layer", "-1", "--images", "{d}/imgs", "--size", "8"], r"--size 8 is too small for world_vgg"),
    ("stats-cache-dir-is-file", ["stats", "world_vgg", "--layer", "-1", "--images", "{d}/imgs", "--cache-dir", "{d}/cat.png"], r"--cache-dir '.*cat.png' is a file, not a folder"),
    ("stats-cache-dir-unwritable", ["stats", "world_vgg", "--layer", "-1", "--images", "{d}/imgs", "--cache-dir", "/proc/cache"], r"--cache-dir '/proc/cache': cannot write"),
    ("edit-size-one", E + ["--size", "1"], r"--size 1 is too small for world_vgg"),
    ("edit-size-beyond-memory", E + ["--size", "200000"], r"--size 200000 .* needs about"),
    ("edit-no-op", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat.png"], r"is the same picture as --original.*would change nothing"),
    ("edit-no-op-copy", ["edit", "world_vgg", "--layer", "-1", "--original", "{d}/cat.png", "--transformed", "{d}/cat_copy.png"], r"is the same picture as --original"),
    ("edit-out-inside-images", E + ["--images", "{d}/imgs", "--out", "{d}/imgs/fix"], r"--out '.*imgs/fix' lies inside the input folder of --images"),
    ("edit-out-into-package", E + ["--out", "{pkg}/modeledit/fix"], r"inside the installed modeledit package"),
    ("context-n-style-without-style", ["world", "context", "--n-style", "5", "--out", "{out}/c.json"], r"--n-style applies only with --style"),
    ("context-out-into-package", ["world", "context", "--out", "{pkg}/eval/world/ctx.json"], r"inside the installed modeledit package"),
]


@pytest.mark.parametrize("case_id,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(ws, tmp_path, capsys, case_id, argv, expected):
    out = tmp_path / "out"
    args = [a.replace("{d}", str(ws)).replace("{out}", str(out)).replace("{pkg}", str(PKG)) for a in argv]
    before = _tree(ws)
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert re.match(r"modeledit( [a-z-]+)?: error: ", lines[0]), lines[0]
    assert re.search(expected, lines[0]), lines[0]
    assert not out.exists(), f"{case_id} left {sorted(p.name for p in out.rglob('*'))}"  # nothing half-written
    assert _tree(ws) == before  # earlier results (the finished run in ws/cf, the edit files) intact


def test_enough_bad_inputs():
    assert len(CASES) >= 150 and len({c[0] for c in CASES}) == len(CASES)


def test_a_bug_shows_its_traceback_and_exits_1(monkeypatch, capsys):
    """A TypeError/ValueError/KeyError that is not the library's own raise (a bug) is not a user error."""
    import modeledit.commands.models as cmd

    def buggy(args):
        return {"a": 1}["b"]  # a KeyError from a lookup, not a `raise` of the library

    monkeypatch.setattr(cmd, "run", buggy)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'b'" in err and "this is a bug" in err.splitlines()[-1]

    def buggy2(args):
        return int("abc")

    monkeypatch.setattr(cmd, "run", buggy2)
    assert main(["models"]) == 1
    assert "ValueError: invalid literal" in capsys.readouterr().err


def test_user_message_rules():
    from modeledit.errors import user_message
    from modeledit.models import load_model

    with pytest.raises(KeyError) as exc:
        load_model("mobilenet_v3")
    assert user_message(exc.value).startswith("unknown model 'mobilenet_v3'")
    try:
        [].pop()
    except IndexError as e:
        assert user_message(e) is None
    try:
        open(os.devnull + "/x", "w")
    except OSError as e:
        assert "cannot use" in user_message(e)


def test_ctrl_c_is_one_line_and_130(monkeypatch, capsys):
    import modeledit.commands.models as cmd

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "run", interrupted)
    assert main(["models"]) == 130
    assert capsys.readouterr().err.strip() == "modeledit models: interrupted: rerun the same command to resume"


def test_help_shows_defaults_and_descriptions(capsys):
    for cmd in (["bench"], ["snow"], ["world", "render"], ["counterfactuals"]):
        with pytest.raises(SystemExit):
            main([*cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default:" in text
        if cmd[0] in ("bench", "snow"):
            assert "--weights WEIGHTS" in text and "model name (see `modeledit models`)" in text
    with pytest.raises(SystemExit):
        main(["edit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "not the module index" in text  # --layer: site index vs module index


def test_list_flags_one_convention(ws, tmp_path):
    """Plural list flags are comma-separated and repeatable; the first use replaces the default."""
    from modeledit.cli import Parser
    from modeledit.commands import bench, counterfactuals, sensitivity

    p = Parser(prog="t")
    bench.add_arguments(p)
    a = p.parse_args(["--out", "o", "--methods", "edit", "--methods", "finetune_local,edit_full", "--n-exemplars", "1,3"])
    assert a.methods == ["edit", "finetune_local", "edit_full"] and a.n_exemplars == [1, 3] and a.sites == ["-1"]
    for mod in (counterfactuals, sensitivity):
        p = Parser(prog="t")
        mod.add_arguments(p)
        extra = ["--images", "x"] if mod is counterfactuals else ["world_vgg"]
        a = p.parse_args([*extra, "--concept", "road", "--concepts", "grass,sky", "--styles", "snow", "--out", "o"])
        assert a.concepts == ["road", "grass", "sky"] and a.styles == ["snow"]
