"""The baselines beyond the paper (paint_*, rrr_*) in the shared method catalogue: their grids, their
edits, and rows from tiny bench and typographic runs through the CLI."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from modeledit.cli import main
from modeledit.eval.methods import METHODS, MethodGrid, method_edit, method_settings, method_strengths, scaled_edits
from modeledit.patching import ALPHA_GRID
from modeledit.rrr import LAMBDA_GRID

NEW = ["paint_local", "paint_global", "rrr_local", "rrr_global"]
BW = "black and white"


def test_grids_cross_the_finetuning_grid():
    g = MethodGrid(finetune_grid=[[1e-2, 5], [1e-3, 7]], alpha_grid=[0.5, 1.0], lambda_grid=[3.0])
    assert MethodGrid.from_json(g.to_json()) == g
    # PAINT: one fine-tuning per (lr, steps) cell, its alpha grid evaluated inside the cell
    assert method_settings(g, "paint_local") == [{"lr": 1e-2, "steps": 5}, {"lr": 1e-3, "steps": 7}]
    assert method_strengths(g, "paint_local") == [0.5, 1.0]
    assert method_settings(g, "rrr_global") == [{"lr": 1e-2, "steps": 5, "lam": 3.0}, {"lr": 1e-3, "steps": 7, "lam": 3.0}]
    assert method_settings(g, "finetune_local") == [{"lr": 1e-2, "steps": 5}, {"lr": 1e-3, "steps": 7}]

    class NoExtra:  # a config without alpha_grid / lambda_grid (the bench's) gets the methods' defaults
        finetune_grid = [[1e-2, 5]]

    assert method_strengths(NoExtra(), "paint_global") == list(ALPHA_GRID)
    assert [s["lam"] for s in method_settings(NoExtra(), "rrr_local")] == list(LAMBDA_GRID)
    assert all(METHODS.entry(n).description for n in NEW)


@pytest.mark.slow
def test_method_edit_builds_each_new_method(car, snowy_cars):
    from modeledit import get_site, load_model

    lm = load_model("world_vgg")
    x, xp, m = snowy_cars((0,))
    site = get_site(lm.model, 3)
    base = {k: v.clone() for k, v in lm.model.state_dict().items()}
    for name in NEW:
        setting = {"lr": 1e-2, "steps": 3, **({"alpha": 0.5} if name.startswith("paint") else {"lam": 10.0})}
        edit = method_edit(lm, name, setting, site, x, xp, m, [car])   # a setting naming alpha: the patched edit itself
        assert edit.method == name and edit.config["scope"] == name.split("_")[1]
        assert edit.config.get("alpha", edit.config.get("lam")) in (0.5, 10.0)
        assert {c.op for c in edit.changes.values()} == ({"delta"} if name.startswith("paint") else {"replace"})
        if name.startswith("rrr"):
            assert edit.metrics["region"] == "mask"  # the harness's masks reach the penalty
        with edit.applied(lm.model):
            assert not all(torch.equal(v, base[k]) for k, v in lm.model.state_dict().items())
    assert all(torch.equal(v, base[k]) for k, v in lm.model.state_dict().items())
    # in a cell: one fine-tuning, interpolated at each alpha (alpha = 1 is the fine-tuning itself)
    ft = method_edit(lm, "paint_global", {"lr": 1e-2, "steps": 3}, site, x, xp, m, [car])
    scaled = scaled_edits(lm, "paint_global", ft, [0.5, 1.0])
    assert [e for e, _ in scaled] == [{"alpha": 0.5}, {"alpha": 1.0}] and scaled[1][1] is ft
    assert scaled[0][1].method == "paint_global" and {c.op for c in scaled[0][1].changes.values()} == {"delta"}


@pytest.mark.slow
def test_typographic_runs_the_new_methods(tmp_path, capsys):
    out = tmp_path / "typo"
    assert main(["typographic", "world_vgg", "--dataset", "world:test:54", "--clean", "world:val:36", "--methods", ",".join(NEW),
                 "--finetune-grid", "1e-2:3", "--alpha-grid", "0.5,1", "--lambda-grid", "10", "--out", str(out)]) == 0
    cells = pd.read_csv(out / "cells.csv")
    assert sorted(cells["method"].value_counts().items()) == [("paint_global", 2), ("paint_local", 2), ("rrr_global", 1), ("rrr_local", 1)]
    assert sorted(json.loads(s)["alpha"] for s in cells.loc[cells["method"] == "paint_local", "setting"]) == [0.5, 1.0]
    assert cells["post_attack_acc"].notna().all()
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["method"]) == sorted(NEW)


def _sensitivity_csv(path):
    pd.DataFrame([dict(concept="road", style=BW, class_name=c, presence=0.9, drop=0.3) for c in ("car", "bus", "truck")]).to_csv(path, index=False)
    return str(path)


@pytest.mark.slow
def test_bench_runs_the_new_methods(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "world_vgg", "--dataset", "world:test:72", "--clean", "world:val:36", "--stats-dataset", "world:train:36",
            "--pairs", f"road:{BW}", "--sensitivity", _sensitivity_csv(tmp_path / "s.csv"), "--n-exemplars", "1",
            "--methods", "paint_local,rrr_local", "--finetune-grid", "1e-2:3", "--max-clean-drop", "0.05"]
    assert main(args + ["--alpha-grid", "0.5,1", "--lambda-grid", "1,10", "--out", str(out)]) == 0
    cells = pd.read_csv(out / "cells.csv")
    assert dict(cells["method"].value_counts()) == {"paint_local": 2, "rrr_local": 2}
    assert cells["test_all_n_pre"].nunique() == 1 and cells["clean_acc_post"].notna().all()
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["method"]) == ["paint_local", "rrr_local"]
