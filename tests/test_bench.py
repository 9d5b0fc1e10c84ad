"""The bench's science-run features on a tiny world run: target classes as units, in-cell strength and
alpha grids (one edit or fine-tuning, evaluated at each fraction), fine-tuning taken from PAINT's alpha = 1,
per-image outcomes that reproduce every row's numbers, and the units' reference file."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modeledit.cli import main

BW = "black and white"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    rows = [dict(concept="road", style=BW, class_name=c, presence=0.9, drop=0.3) for c in ("car", "bus", "truck")]
    pd.DataFrame(rows).to_csv(root / "s.csv", index=False)
    out = root / "bench"
    args = ["bench", "world_vgg", "--dataset", "world:test:108", "--clean", "world:clean:90", "--stats-dataset", "world:train:72",
            "--pairs", f"road:{BW}", "--sensitivity", str(root / "s.csv"), "--n-targets", "2", "--n-exemplars", "1",
            "--methods", "edit,finetune_global,paint_global", "--finetune-grid", "1e-2:4", "--strength-grid", "0.5,1",
            "--alpha-grid", "0.5,1", "--sites=-1", "--max-clean-drop", "0.05", "--out", str(out)]
    assert main(args) == 0
    return out


@pytest.mark.slow
def test_units_strengths_and_paint(run):
    cells = pd.read_csv(run / "cells.csv")
    assert cells["target_class"].nunique() == 2 and set(cells["target_class"]) <= {"car", "bus", "truck"}
    for _, g in cells.groupby("target_class"):
        assert sorted(g.loc[g.method == "edit", "strength"]) == [0.5, 1.0]
        assert sorted(json.loads(s)["alpha"] for s in g.loc[g.method == "paint_global", "setting"]) == [0.5, 1.0]
        ft, paint1 = g[g.method == "finetune_global"], g[(g.method == "paint_global") & (g.strength == 1.0)]
        assert len(ft) == 1 and ft["clean_acc_post"].iloc[0] == paint1["clean_acc_post"].iloc[0]   # the same computation
    files = list((run / "cells").glob("*.json"))
    assert len(files) == 2 * 2      # targets x (edit, paint_global): no separate fine-tuning cells


@pytest.mark.slow
def test_outcomes_reproduce_the_rows(run):
    units = json.loads((run / "unedited.json").read_text())["units"]
    assert len(units) == 2
    for f in (run / "cells").glob("*.json"):
        for row in json.loads(f.read_text())["rows"]:
            unit = units["|".join([row["concept"], row["style"], row["target_class"], str(row["n_exemplars"]), str(row["seed"])])]
            assert not set(unit["exemplars"]) & set(unit["val"]["idx"] + unit["test"]["idx"])   # exemplars never evaluated
            for g in ("val", "test", "heldout"):
                y, ok, pre = np.array(unit[g]["y"]), np.array(unit[g]["orig_ok"]), np.array(unit[g]["pre"])
                post = np.array(row["_outcomes"][g]["post"])
                n_pre, n_post = int(((pre != y) & ok).sum()), int(((post != y) & ok).sum())
                assert (row[f"{g}_all_n_pre"], row[f"{g}_all_n_post"]) == (n_pre, n_post)
            bad, good = row["_outcomes"]["clean_bad"], row["_outcomes"]["clean_good"]
            assert (len(bad), len(good)) == (row["clean_flips_bad"], row["clean_flips_good"])
            assert row["clean_drop"] == pytest.approx((len(bad) - len(good)) / row["clean_n"])


def test_bench_statistics_key_follows_the_folder(photo_folder, photos):
    """The bench keys C on the dataset's content (it was ``spec:None`` for folders): a changed folder
    gives another cache file."""
    from PIL import Image

    from modeledit.eval.bench import BenchConfig, BenchRunner
    from modeledit.layers import get_site

    root = photo_folder
    cfg = BenchConfig(model="world_vgg", dataset="world:test:8", clean="world:val:8", stats_dataset=str(root))
    r = BenchRunner(cfg)
    site = get_site(r.lm.model, -1)
    first = r.statistics(site)
    from modeledit.eval.datasets import dataset_key, load_dataset

    key = dataset_key(str(root), load_dataset(str(root), class_names=r.lm.class_names, size=r.lm.input_size))
    assert first.dataset_id == key
    Image.fromarray(photos["rocket"][:96, :96]).save(root / "cat" / "0.png")
    r2 = BenchRunner(cfg)
    second = r2.statistics(site)
    key2 = dataset_key(str(root), load_dataset(str(root), class_names=r.lm.class_names, size=r.lm.input_size))
    assert key2 != key and second.dataset_id == key2
    assert not np.allclose(first.total.numpy(), second.total.numpy())  # recomputed, not the stale cached C


def test_bench_takes_predicted_labels(unlabelled_folder, mobilenet):
    """bench's evaluation and clean sets from an unlabelled folder: the model's own labels, so the clean
    accuracy before any edit is 1 and a clean 'drop' is the share of clean images whose prediction changes."""
    from modeledit.commands.bench import add_arguments, config_from_args
    from modeledit.cli import Parser
    from modeledit.eval.bench import labelled_datasets
    from modeledit.eval.datasets import PredictedLabels
    from modeledit.eval.sensitivity import predictions

    p = Parser(prog="bench")
    add_arguments(p)
    args = p.parse_args(["mobilenet_v2", "--dataset", str(unlabelled_folder), "--clean", str(unlabelled_folder), "--stats-dataset", str(unlabelled_folder),
                         "--pairs", "object:floral", "--labels", "predicted", "--min-confidence", "0.5", "--out", "x"])
    cfg = config_from_args(args)
    assert cfg.labels == "predicted" and cfg.min_confidence == 0.5
    data, clean = labelled_datasets(cfg, mobilenet)
    assert isinstance(data, PredictedLabels) and len(clean) == 2
    assert (predictions(mobilenet, clean, range(len(clean))) == np.array(clean.labels)).all()


# -- the config: one comparison grid, and every committed bench manifest loads and resumes

def _committed_bench_manifests():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "results"
    found = []
    for path in sorted(root.rglob("manifest.json")):
        meta = json.loads(path.read_text())
        config = meta.get("config") or {}
        if meta.get("harness") == "bench" or ("protocol" in config and "n_exemplars" in config and "pairs" in config):
            found.append((path, config))
    return found


def test_bench_config_derives_the_comparison_grid_once():
    import dataclasses

    from modeledit.eval.bench import BenchConfig
    from modeledit.eval.methods import ComparisonGrid, MethodGrid

    grid = [f.name for f in dataclasses.fields(ComparisonGrid)]
    assert issubclass(BenchConfig, ComparisonGrid) and issubclass(MethodGrid, ComparisonGrid)
    assert [f.name for f in dataclasses.fields(BenchConfig)][:len(grid)] == grid
    assert "max_clean_drop" not in {f.name for f in dataclasses.fields(BenchConfig)}   # the budget is the protocol's
    assert len(BenchConfig().finetune_grid) > len(MethodGrid().finetune_grid)          # the bench's own default grid


def test_every_committed_bench_manifest_loads_and_the_complete_ones_resume():
    """Each committed bench folder's config reads back through BenchConfig.from_manifest; a folder written since the
    manifest took its present fields gets back exactly the config dict it holds, which is what a resume compares."""
    import dataclasses
    from pathlib import Path

    from modeledit.eval.bench import BenchConfig, manifest_config

    found = _committed_bench_manifests()
    assert len(found) >= 10, [str(p) for p, _ in found]
    complete = 0
    for path, config in found:
        cfg = BenchConfig.from_manifest(config)
        again = json.loads(json.dumps(manifest_config(cfg), default=str))
        assert {k: again[k] for k in config} == config, path          # every recorded value comes back as it was
        if set(again) == set(config):
            complete += 1
            assert again == config, path
    assert complete >= 8
    for path in sorted((Path(__file__).resolve().parents[1] / "results").rglob("manifest.json")):   # the rules study's bench
        bench = (json.loads(path.read_text()).get("config") or {}).get("bench")
        if isinstance(bench, dict):
            assert json.loads(json.dumps(dataclasses.asdict(BenchConfig.from_manifest(bench)), default=str)) == bench, path
    with pytest.raises(ValueError, match="unknown BenchConfig fields"):
        BenchConfig.from_manifest({**found[0][1], "learning_rate": 0.1})
