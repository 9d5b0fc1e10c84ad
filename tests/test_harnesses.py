"""Each harness end to end on the world at small scale through the CLI, with its numbers checked."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from modeledit.cli import main

BW = "black and white"  # a transform style: cheap, so the tests exercise the harnesses, not Magenta


def test_sensitivity_cli_matches_direct_measurement(tmp_path, world_vgg, capsys):
    out = tmp_path / "sens"
    args = ["sensitivity", "world_vgg", "--dataset", "world:test:72", "--concepts", "road", "--styles", BW,
            "--bootstrap", "50", "--out", str(out)]
    assert main(args) == 0
    table = pd.read_csv(out / "table.csv")
    assert len(table) == 18 and set(table["concept"]) == {"road"}
    # presence and clean accuracy, recomputed from the world's own records (not through the segmenter)
    from modeledit.eval.world.data import WorldDataset
    from modeledit.styles.base import apply_in_mask
    from modeledit.styles.bank import grayscale

    ds = WorldDataset("test", n=72)
    items = [ds[i] for i in range(72)]
    for row in table.itertuples():
        idx = [i for i, (_, y, m) in enumerate(items) if y == row.class_index]
        with_road = [i for i in idx if "road" in items[i][2]["masks"] and items[i][2]["masks"]["road"].sum() >= 8]
        assert row.n_class_images == len(idx) and row.n_with_concept == len(with_road)
        if with_road:
            x = torch.stack([items[i][0] for i in with_road])
            m = torch.stack([torch.as_tensor(items[i][2]["masks"]["road"]) for i in with_road])
            xt = apply_in_mask(x, grayscale(x), m, blend=0.8)
            clean = (world_vgg.predict(x).argmax(-1) == row.class_index).float().mean().item()
            trans = (world_vgg.predict(xt).argmax(-1) == row.class_index).float().mean().item()
            assert row.acc_clean == pytest.approx(clean) and row.acc_transformed == pytest.approx(trans)
            assert row.drop == pytest.approx(clean - trans) and row.drop_low <= row.drop + 1e-9 <= row.drop_high + 2e-9
    assert (out / "figures" / "heatmap.png").is_file()
    # a rerun reads the finished cell instead of recomputing it
    mtime = next((out / "cells").glob("*.json")).stat().st_mtime_ns
    assert main(args) == 0
    assert next((out / "cells").glob("*.json")).stat().st_mtime_ns == mtime


def _sensitivity_csv(path):
    rows = [dict(concept="road", style=BW, class_name=c, presence=0.9, drop=0.3) for c in ("car", "bus", "truck")]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


BENCH = ["bench", "world_vgg", "--dataset", "world:test:108", "--clean", "world:val:72", "--stats-dataset", "world:train:72",
         "--pairs", f"road:{BW}", "--methods", "edit,finetune_local", "--finetune-grid", "1e-2:5,1e-3:5",
         "--sites=-2,-1", "--max-clean-drop", "0.02"]


def test_bench_cli_numbers_are_consistent(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(BENCH + ["--sensitivity", str(_sensitivity_csv(tmp_path / "s.csv")), "--out", str(out)]) == 0
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 2 * (1 + 2)  # sites x (edit + two fine-tuning settings)
    # pre-edit error counts do not depend on the method; target + other = all
    for g in ("val", "test", "heldout"):
        assert cells[f"{g}_all_n_pre"].nunique() == 1
        assert (cells[f"{g}_target_n_pre"] + cells[f"{g}_other_n_pre"] == cells[f"{g}_all_n_pre"]).all()
        ok = cells[f"{g}_all_n_pre"] > 0
        want = (cells[f"{g}_all_n_pre"] - cells[f"{g}_all_n_post"]) / cells[f"{g}_all_n_pre"]
        assert np.allclose(cells.loc[ok, f"{g}_all_corrected"], want[ok])
    assert set(cells["target_class"]) <= {"car", "bus", "truck"} and cells["target_class"].nunique() == 1
    # the selection rule, by hand: best validation score among settings within the clean budget
    summary = pd.read_csv(out / "summary.csv")
    for method, g in cells.groupby("method"):
        ok = g[g["clean_drop"] <= 0.02 + 1e-12]
        row = summary[summary["method"] == method].iloc[0]
        if ok.empty or ok["val_corrected"].fillna(0).max() <= 0:  # "no change" (score 0) is always a candidate
            assert not row["changed"] and row["test_other_corrected"] == 0 and row["site_name"] == "-"
            assert row["setting"] == ("no setting qualifies: no change" if ok.empty else "no setting beats no change: no change")
        else:
            best = ok.loc[ok["val_corrected"].fillna(0).idxmax()]
            assert row["changed"] and row["site_name"] == best["site_name"] and row["setting"] == best["setting"]
    assert (out / "figures" / "methods.png").is_file() and (out / "figures" / "vs_site.png").is_file()


@pytest.mark.slow
def test_bench_ray_matches_local_and_resumes_after_a_kill(tmp_path, warm_cli):
    pytest.importorskip("ray")
    import signal
    import time

    sens = str(_sensitivity_csv(tmp_path / "s.csv"))
    args = BENCH + ["--sensitivity", sens, "--sites=-1"]
    assert main(args + ["--out", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2"]) == 0
    # a local run killed midway (SIGKILL once the first cell is on disk), then resumed: the same table as Ray's
    # (the run is a process of its own, forked from the warm server: tests/warm_cli.py)
    killed = tmp_path / "killed"
    proc = warm_cli.start([*args, "--out", str(killed)], cwd=tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list((killed / "cells").glob("*.json")):
        time.sleep(0.2)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main(args + ["--out", str(killed)]) == 0
    cols = ["method", "setting", "site_name", "test_all_n_pre", "test_all_n_post", "heldout_all_n_post", "clean_acc_post"]
    tables = [pd.read_csv(tmp_path / d / "cells.csv")[cols].sort_values(["method", "setting"]).reset_index(drop=True)
              for d in ("ray", "killed")]
    pd.testing.assert_frame_equal(tables[0], tables[1])


@pytest.mark.slow
def test_typographic_cli(tmp_path, capsys):
    out = tmp_path / "typo"
    assert main(["typographic", "world_vgg", "--dataset", "world:test:90", "--clean", "world:val:54",
                 "--methods", "edit,finetune_local", "--finetune-grid", "1e-2:5,1e-3:5", "--out", str(out)]) == 0
    cells = pd.read_csv(out / "cells.csv")
    pre = [c for c in cells.columns if c.startswith("pre_")]
    assert (cells[pre].nunique() == 1).all()  # measured once, before any edit
    assert (out / "examples.png").is_file()
    s = pd.read_csv(out / "summary.csv")
    assert np.allclose(s["spurious_rule"], s["post_to_exemplar_class"] - s["pre_to_exemplar_class"])
    # attack success and accuracy under attack are disjoint outcomes of the same images
    assert (cells["pre_attack_acc"] + cells["pre_attack_success"] <= 1 + 1e-9).all()


@pytest.mark.slow
def test_snow_cli_world(tmp_path, capsys):
    out = tmp_path / "snow"
    from modeledit.commands.snow import run  # noqa: F401  (the command module imports cleanly)

    assert main(["snow", "world_vgg", "--clean", "world:val:54", "--n-val", "12", "--n-test", "24",
                 "--methods", "edit,finetune_local", "--finetune-grid", "1e-2:5", "--out", str(out)]) == 0
    s = pd.read_csv(out / "summary.csv")
    assert {"pre_snowy_vehicles", "post_snowy_vehicles", "pre_vehicles_clean", "pre_clean"} <= set(s.columns)
    cfg = json.loads((out / "manifest.json").read_text())["config"]
    assert cfg["exemplar_class"] == "cow" and cfg["mode"] == "world"


def test_oneshot_summary_has_paired_intervals_by_hand():
    from modeledit.eval.oneshot import summarize_oneshot

    def row(method, val_gain, drop, good, bad):
        return {"method": method, "site_name": "features.15", "setting": "{}", "pre_val": 0.5, "post_val": 0.5 + val_gain,
                "pre_clean": 0.9, "post_clean": 0.9 - drop, "clean_drop": drop, "val_gain": val_gain,
                "flips_val_good": good, "flips_val_bad": bad, "n_val": 100,
                "flips_clean_good": 0, "flips_clean_bad": round(drop * 1000), "n_clean": 1000}

    table = pd.DataFrame([row("edit", 0.2, 0.002, 25, 5), row("edit", 0.3, 0.01, 35, 5), row("finetune_global", -0.1, 0.0, 0, 10)])
    s = summarize_oneshot(table, 0.0025).set_index("method")
    e = s.loc["edit"]      # the second row costs 1 pp: out of budget; the first: +25 -5 of 100 = +0.20
    assert e["changed"] and e["change_val"] == pytest.approx(0.2) and e["change_val_lo"] < 0.2 < e["change_val_hi"]
    assert e["change_clean"] == pytest.approx(-0.002) and e["change_clean_hi"] <= 0.0
    f = s.loc["finetune_global"]   # scores below zero: no change, a point interval at 0
    assert not f["changed"] and (f["change_val"], f["change_val_lo"], f["change_val_hi"]) == (0.0, 0.0, 0.0)


@pytest.mark.slow
def test_oneshot_study_trains_a_fine_tuning_once_when_its_paint_variant_runs(tmp_path, capsys):
    """With PAINT (alpha 1 in its grid) beside plain fine-tuning, one cell per fine-tuning setting: the plain rows
    are the PAINT cell's alpha = 1 rows, in the table and the summary."""
    out = tmp_path / "typo"
    assert main(["typographic", "world_vgg", "--dataset", "world:test:90", "--clean", "world:val:54",
                 "--methods", "finetune_local,paint_local", "--finetune-grid", "1e-2:5", "--alpha-grid", "0.5,1",
                 "--out", str(out)]) == 0
    assert len(list((out / "cells").glob("*.json"))) == 1
    cells = pd.read_csv(out / "cells.csv")
    assert sorted(cells["method"]) == ["finetune_local", "paint_local", "paint_local"]
    # the common columns of every harness cell (eval/cell.py): the plain row is alpha 1 at strength 1
    assert {"strength", "site_index", "cell_seconds"} <= set(cells.columns) and any(c.startswith("edit_") for c in cells.columns)
    plain = cells[cells.method == "finetune_local"].iloc[0]
    alpha1 = cells[(cells.method == "paint_local") & cells.setting.str.contains('"alpha": 1.0')].iloc[0]
    post = [c for c in cells.columns if c.startswith(("post_", "flips_"))]
    assert (plain[post] == alpha1[post]).all() and json.loads(plain["setting"]) == {"lr": 0.01, "steps": 5}
    assert "finetune_local" in set(pd.read_csv(out / "summary.csv")["method"])


def test_oneshot_folders_begun_with_separate_fine_tuning_cells_keep_them(tmp_path):
    from modeledit.eval.oneshot import study_cells
    from modeledit.eval.results import ResultStore
    from modeledit.eval.typographic import TypographicConfig

    cfg = TypographicConfig(methods=["finetune_local", "paint_local"], finetune_grid=[(1e-2, 5)], alpha_grid=[0.5, 1.0])
    plain = {"method": "finetune_local", "site": "-1", "setting": {"lr": 0.01, "steps": 5}}
    paint = {**plain, "method": "paint_local"}

    def store(name, written):
        s = ResultStore(tmp_path / name)
        for params, methods in written:
            s.write(params, [{"method": m} for m in methods])
        return s

    assert study_cells(store("new", []), cfg) == ([paint], True)
    assert study_cells(store("new_resumed", [(paint, ["paint_local", "paint_local", "finetune_local"])]), cfg) == ([paint], True)
    assert study_cells(store("old_plain", [(plain, ["finetune_local"])]), cfg) == ([plain, paint], False)
    assert study_cells(store("old_paint", [(paint, ["paint_local", "paint_local"])]), cfg) == ([plain, paint], False)
    no_alpha1 = TypographicConfig(methods=["finetune_local", "paint_local"], finetune_grid=[(1e-2, 5)], alpha_grid=[0.5])
    assert study_cells(store("half", []), no_alpha1) == ([plain, paint], False)
