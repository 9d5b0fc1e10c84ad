"""Where the attacked test images go after each chosen edit of the world CLIP's typographic study.

The study's summaries count, on the attacked test images, the correct predictions (accuracy under attack), the
attack class (attack success) and the exemplar's class; the rest land on some third class. This script rebuilds
each folder's study from its manifest (same seed: same exemplar, attacked images and split), makes the edit the
summary chose (method and strength of `summary.csv`), and records the predicted class of every attacked test
image before and after: shares (own class, attack class, exemplar class, other) and the most frequent other
classes. A check: the share of correct predictions must equal the summary's post_attack_acc.

    .venv/bin/python results/world/clip_typographic/destinations.py results/world/clip_typographic/clip_world-RN

writes <folder>/../destinations.json (a few minutes per attack class and seed: the study is rebuilt once per
pair and shared by its folders).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from dataclasses import fields
from pathlib import Path

import numpy as np

EDITS = ("edit", "edit_masked", "edit_full")


def chosen_edits(folder: Path) -> list[tuple[str, dict]]:
    """(method, chosen setting) of the folder's qualifying edit rows."""
    out = []
    with open(folder / "summary.csv") as f:
        for row in csv.DictReader(f):
            if row["method"] in EDITS and row["changed"] == "True":
                out.append((row["method"], json.loads(row["setting"]), float(row["post_attack_acc"]), row["site_name"]))
    return out


def shares(pred: np.ndarray, y: np.ndarray, attack: int, exemplar: int, names: list[str], top: int = 5) -> dict:
    n = len(pred)
    other = (pred != y) & (pred != attack) & (pred != exemplar)
    counts = Counter(names[int(p)] for p in pred[other])
    return {"n": n, "own": float((pred == y).mean()), "attack_class": float((pred == attack).mean()),
            "exemplar_class": float(((pred == exemplar) & (y != exemplar)).mean()), "other": float(other.mean()),
            "top_other": counts.most_common(top)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="the checkpoint's results folder (holding <attack class>... folders)")
    args = ap.parse_args()
    from modeledit.eval.methods import method_edit, scaled_edits
    from modeledit.eval.typographic import TypographicConfig, build_study
    from modeledit.layers import get_site
    from modeledit.progress import tqdm

    root = Path(args.root)
    names = {f.name for f in fields(TypographicConfig)}
    groups: dict[tuple, list[tuple[Path, TypographicConfig]]] = {}
    for folder in sorted(p for p in root.iterdir() if (p / "summary.csv").is_file() and (p / "manifest.json").is_file()):
        if not chosen_edits(folder):
            continue
        cfg = TypographicConfig(**{k: v for k, v in json.loads((folder / "manifest.json").read_text())["config"].items() if k in names})
        key = (cfg.model, cfg.weights, cfg.attack_class, cfg.seed, cfg.dataset, cfg.paster, tuple(cfg.fonts), cfg.size)
        groups.setdefault(key, []).append((folder, cfg))
    out_path = root / "destinations.json"
    result = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for key, members in tqdm(list(groups.items()), desc="studies", unit="study"):
        if all(f.name in result for f, _ in members):
            continue
        study, _ = build_study(members[0][1])
        lm = study.lm
        x, y = study.groups["attack_acc"]
        y = np.asarray(y)
        attack, exemplar = lm.class_names.index(members[0][1].attack_class), study.ex.label
        before = shares(study.predict(x), y, attack, exemplar, lm.class_names)
        for folder, cfg in members:
            rows = {}
            for method, setting, post_acc, site_name in chosen_edits(folder):
                site = get_site(lm.model, site_name)
                strength = setting.pop("strength", None)
                base = method_edit(lm, method, setting, site, study.ex.x[None], study.ex.x_prime[None], study.ex.mask[None],
                                   [study.ex.label], stats=study.statistics)
                (_, edit), = scaled_edits(lm, method, base, None if strength is None else [strength])
                with edit.applied(lm.model):
                    after = shares(study.predict(x), y, attack, exemplar, lm.class_names)
                after["matches_summary"] = abs(after["own"] - post_acc) < 1e-9
                rows[method] = {"setting": {**setting, **({} if strength is None else {"strength": strength})},
                                "site": site_name, "after": after}
                print(folder.name, method, json.dumps(after), flush=True)
            result[folder.name] = {"attack_class": cfg.attack_class, "seed": cfg.seed, "exemplar_class": lm.class_names[exemplar],
                                   "before": before, "edits": rows}
        out_path.write_text(json.dumps(result, indent=1))
    bad = [(f, m) for f, r in result.items() for m, e in r["edits"].items() if not e["after"]["matches_summary"]]
    if bad:
        sys.exit(f"destinations.py: accuracy under attack differs from summary.csv for {bad}")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
