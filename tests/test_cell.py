"""The one harness cell (eval/cell.py): common columns, the in-cell grid, one site per cell today, the drive."""
from __future__ import annotations

import json

import pytest
import torch

from modeledit.eval.cell import CellCache, CellExemplars, Prebuilt, run_cell, run_cells
from modeledit.eval.methods import MethodGrid
from modeledit.eval.results import ResultStore


@pytest.fixture(scope="module")
def world():
    from modeledit import load_model
    from modeledit.eval.world.data import WorldDataset

    lm = load_model("world_vgg")
    ds = WorldDataset("train", n=24)
    x = torch.stack([ds[i][0] for i in range(24)])
    return lm, x


def test_a_cell_walks_its_grid_once_made_and_adds_the_common_columns(world):
    lm, x = world
    cache = CellCache(lm, lambda: ([x[:16]], None), batch_size=8)
    ex = CellExemplars(x[16:17], x[16:17].flip(-1), torch.ones(1, *x.shape[-2:], dtype=torch.bool), [0])
    grid = MethodGrid(methods=["finetune_local", "paint_local"], alpha_grid=[0.5, 1.0], strength_grid=[0.5, 1.0])
    seen = []

    def measure(sites):
        seen.append([s.name for s in sites])
        return {"acc": float((cache.predict_at("eval", x[17:], sites) == 0).mean()), "_outcomes": {"n": 7}}

    rows = run_cell(cache, {"method": "edit", "site": "-1", "setting": {}}, ex, grid, {"unit": "u"}, measure)
    assert [json.loads(r["setting"]) for r in rows] == [{"strength": 0.5}, {"strength": 1.0}] and len(seen) == 2
    for r in rows:
        assert {"unit", "method", "site", "site_name", "site_index", "setting", "strength", "acc", "cell_seconds"} <= set(r)
        assert r["method"] == "edit" and r["site"] == "-1" and r["_outcomes"] == {"n": 7}
        assert any(k.startswith("edit_") for k in r) and r["cell_seconds"] > 0
    assert rows[0]["strength"] == 0.5 and rows[0]["edit_source_method"] == "rewrite"   # the half-strength edit interpolates the rewrite
    # PAINT at alpha 1 also stands for the plain fine-tuning asked for beside it
    rows = run_cell(cache, {"method": "paint_local", "site": "-1", "setting": {"lr": 1e-2, "steps": 2}}, ex, grid, {}, measure,
                    plain_methods=grid.methods)
    assert [(r["method"], r["strength"]) for r in rows] == [("paint_local", 0.5), ("paint_local", 1.0), ("finetune_local", 1.0)]
    assert rows[1]["acc"] == rows[2]["acc"] and json.loads(rows[2]["setting"]) == {"lr": 1e-2, "steps": 2}


def test_a_cell_with_several_sites_is_refused_before_any_work(world):
    lm, x = world
    cache = CellCache(lm, lambda: pytest.fail("statistics computed for a refused cell"))
    ex = CellExemplars(x[:1], x[:1], None, [0])
    with pytest.raises(ValueError, match="one site today"):
        run_cell(cache, {"method": "edit", "sites": ["-2", "-1"], "setting": {}}, ex, MethodGrid(), {}, lambda s: {})


class _Failing:
    def __call__(self, params):
        if params["x"] == 1:
            raise RuntimeError("boom")
        return [{"x": params["x"]}]


def test_run_cells_writes_the_others_then_raises_and_hands_out_a_prebuilt_runner_once(tmp_path):
    store = ResultStore(tmp_path / "r", config={"k": 1}, harness="test")
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["harness"] == "test"
    built = []
    factory = Prebuilt(lambda: built.append(1) or _Failing(), _Failing())
    with pytest.raises(RuntimeError, match="1 of 3 cells failed .*boom"):
        run_cells(store, [{"x": 0}, {"x": 1}, {"x": 2}], factory)
    assert store.done({"x": 0}) and store.done({"x": 2}) and not store.done({"x": 1}) and built == []
    table, failed = run_cells(store, [{"x": 0}, {"x": 1}, {"x": 2}], factory, strict=False)
    assert built == [1] and len(failed) == 1 and sorted(table["x"]) == [0, 2]
    assert Prebuilt(len, "runner").__getstate__() == {"build": len, "runner": None}   # pickled for Ray: the runner stays here


def test_a_diverging_setting_is_recorded_as_diverged_not_failed_and_never_selected(world):
    """Fine-tuning at a learning rate that sends the loss to NaN is a result of that setting: the cell gives its
    rows flagged ``diverged`` with no measurement (not a failed cell to retry), and the selection skips them."""
    from modeledit.errors import Diverged
    from modeledit.eval.protocol import choose_setting
    from modeledit.finetuning import FinetuneConfig, finetune

    lm, x = world
    ex = CellExemplars(x[16:18], x[16:18].flip(-1), None, [0, 1])
    with pytest.raises(Diverged, match="smaller learning rate"):
        finetune(lm, "-1", x[16:18].flip(-1), target=[0, 1], config=FinetuneConfig(scope="global", lr=1e8, steps=3))
    cache = CellCache(lm, lambda: pytest.fail("fine-tuning needs no statistics"), batch_size=8)
    grid = MethodGrid(methods=["finetune_global", "paint_global"], alpha_grid=[0.5, 1.0])
    measured = []
    rows = run_cell(cache, {"method": "paint_global", "site": "-1", "setting": {"lr": 1e8, "steps": 3}}, ex, grid, {"unit": "u"},
                    lambda sites: measured.append(1) or {"val_corrected": 1.0, "clean_drop": 0.0}, plain_methods=grid.methods)
    assert not measured, "a diverged change was applied and measured"
    assert [(r["method"], r["strength"], r["diverged"]) for r in rows] == [
        ("paint_global", 0.5, True), ("paint_global", 1.0, True), ("finetune_global", 1.0, True)]
    assert all("val_corrected" not in r for r in rows)
    sane = {"val_corrected": 0.5, "clean_drop": 0.0, "strength": 1.0, "site_index": 1}
    table = __import__("pandas").DataFrame([*rows, sane]).to_dict("records")
    assert choose_setting(table, 0.0025)["val_corrected"] == 0.5
    assert choose_setting(table[:3], 0.0025) is None
