"""The science summary on a tiny hand-made bench folder in the cell format the runner writes.

Two units (pair x target class x exemplars x seed), two methods, a few rows each, outcomes written by
hand: the selection at each budget, the per-unit numbers and the means are computed by hand below.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from modeledit.eval.metrics import error_counts, errors_corrected
from modeledit.eval.protocol import NO_GAIN, NONE_QUALIFIES
from modeledit.eval.results import ResultStore
from modeledit.eval.science import (BenchData, bench_folders, check_consistency, check_disjoint, load_bench, merge_benches,
                                    science_tables, select, write_science_summary)
from modeledit.eval.world.scene import CLASSES

NAMES = list(CLASSES)
CLEAN_N = 100
N_T, N_O = 4, 6          # per group: target-class images, other-class images


def unit_record(target: str, other: str) -> dict:
    """val / test / heldout: 4 target images (all wrong before), 6 others (3 wrong, 3 right), plus one image
    whose original the model gets wrong (never counted)."""
    t, o = NAMES.index(target), NAMES.index(other)
    y = [t] * N_T + [o] * N_O + [o]
    pre = [o] * N_T + [t] * 3 + [o] * 3 + [t]
    ok = [True] * (N_T + N_O) + [False]
    first = {"val": 0, "test": 100, "heldout": 100}   # held-out-style images are the test images in other styles
    return {g: {"idx": list(range(first[g], first[g] + len(y))), "y": y, "orig_ok": ok, "pre": pre} for g in ("val", "test", "heldout")}


def post_of(rec: dict, fix_t: int, fix_o: int, break_o: int) -> list[int]:
    """The edited predictions: the first ``fix_t`` target errors and ``fix_o`` other errors fixed, the first
    ``break_o`` right other images broken (the uncounted image is always 'fixed', which must not count)."""
    y, pre = rec["y"], list(rec["pre"])
    wrong_class = {c: next(k for k in set(y) if k != c) for c in set(y)}
    post = list(pre)
    for i in range(fix_t):
        post[i] = y[i]
    for i in range(N_T, N_T + fix_o):
        post[i] = y[i]
    for i in range(N_T + 3, N_T + 3 + break_o):
        post[i] = wrong_class[y[i]]
    post[-1] = y[-1]
    return post


def make_row(unit: dict, key: dict, method: str, site: int, strength: float, val: tuple, test: tuple, held: tuple,
             bad: list[int], good: list[int]) -> dict:
    """A row as the runner writes it, its counts computed from the outcomes with the bench's own metric."""
    rec = unit["rec"]
    row = {**key, "model": "world_vgg", "method": method, "site": str(site), "site_index": site, "site_name": f"features.{site}",
           "setting": json.dumps({"strength": strength}), "strength": strength, "clean_acc_pre": 0.9,
           "clean_acc_post": 0.9 - (len(bad) - len(good)) / CLEAN_N, "clean_n": CLEAN_N,
           "clean_flips_bad": len(bad), "clean_flips_good": len(good)}
    row["clean_drop"] = row["clean_acc_pre"] - row["clean_acc_post"]
    outcomes = {"clean_bad": bad, "clean_good": good}
    for g, spec in (("val", val), ("test", test), ("heldout", held)):
        post = post_of(rec[g], *spec)
        outcomes[g] = {"post": post}
        y, t = np.array(rec[g]["y"]), NAMES.index(key["target_class"])
        for who, sel in (("target", y == t), ("other", y != t), ("all", np.ones_like(y, bool))):
            a = np.array(rec[g]["orig_ok"])[sel]
            b, c = np.array(rec[g]["pre"])[sel] == y[sel], np.array(post)[sel] == y[sel]
            row[f"{g}_{who}_n_pre"], row[f"{g}_{who}_n_post"] = error_counts(a, b, c)
            row[f"{g}_{who}_corrected"] = errors_corrected(a, b, c)
    row["val_corrected"] = row["val_all_corrected"]
    row["_outcomes"] = outcomes
    return row


@pytest.fixture
def folder(tmp_path):
    """Units U1 = road|snow|cow|3|0 and U2 = grass|graffiti|tree|3|0; methods edit and finetune_local; the
    deepest site (4) in world_vgg/A_deep (the returned folder), site 2 in world_vgg/B_sites.

    val (fix_t, fix_o, break_o) decides the validation score (7 errors: 4 target + 3 other, see post_of):
      U1 edit  site 4 s=1   val (4,2,0)=6/7     clean drop 0.02 (bad 0,1)   test (4,2,0) held (2,0,0)
      U1 edit  site 4 s=0.5 val (2,1,0)=3/7     clean drop 0    (bad 2, good 3)  test (2,0,0) held (1,0,0)
      U1 edit  site 2 s=1   val (4,3,0)=1.0     clean drop 0.05 (bad 10..14)     test (4,3,0) held (4,3,0)
      U1 ft    site 4       val (0,0,2)=-2/7    clean drop 0                     test (0,0,2) held (0,0,3)
      U2 edit  site 4 s=1   val (4,0,0)=4/7     clean drop 0.01 (bad 5)          test (4,0,1) held (3,0,0)
      U2 ft    site 4       val (1,0,0)=1/7     clean drop 0.03 (bad 6,7,8)      test (1,0,0) held (1,0,0)
    """
    root = tmp_path / "world_vgg" / "A_deep"
    store = ResultStore(root, config={"model": "world_vgg", "n_exemplars": [3], "methods": ["edit", "finetune_local"]})
    store_b = ResultStore(tmp_path / "world_vgg" / "B_sites", config={"model": "world_vgg", "methods": ["edit"]})
    u1 = {"key": {"concept": "road", "style": "snow", "target_class": "cow", "n_exemplars": 3, "seed": 0},
          "rec": unit_record("cow", "car")}
    u2 = {"key": {"concept": "grass", "style": "graffiti", "target_class": "tree", "n_exemplars": 3, "seed": 0},
          "rec": unit_record("tree", "tractor")}
    cells = [
        (u1, "edit", 4, [(1.0, (4, 2, 0), (4, 2, 0), (2, 0, 0), [0, 1], []), (0.5, (2, 1, 0), (2, 0, 0), (1, 0, 0), [2], [3])]),
        (u1, "edit", 2, [(1.0, (4, 3, 0), (4, 3, 0), (4, 3, 0), list(range(10, 15)), [])]),
        (u1, "finetune_local", 4, [(1.0, (0, 0, 2), (0, 0, 2), (0, 0, 3), [], [])]),
        (u2, "edit", 4, [(1.0, (4, 0, 0), (4, 0, 1), (3, 0, 0), [5], [])]),
        (u2, "finetune_local", 4, [(1.0, (1, 0, 0), (1, 0, 0), (1, 0, 0), [6, 7, 8], [])]),
    ]
    for unit, method, site, specs in cells:
        rows = [make_row(unit, unit["key"], method, site, *s) for s in specs]
        if unit is u1 and method == "edit":   # U1's reference images travel in a cell of each folder, as from a worker
            rows[0]["_unit"] = {"key": "road|snow|cow|3|0", **unit["rec"]}
        (store if site == 4 else store_b).write({**unit["key"], "method": method, "site": str(site)}, rows)
    (root / "unedited.json").write_text(json.dumps({"units": {"grass|graffiti|tree|3|0": u2["rec"]}}))
    return root


def chosen(sel, unit_prefix, method, budget):
    r = sel[sel["unit"].str.startswith(unit_prefix) & (sel["method"] == method) & np.isclose(sel["budget"], budget)]
    assert len(r) == 1
    return r.iloc[0]


def both(folder):
    return merge_benches([load_bench(folder, NAMES), load_bench(folder.parent / "B_sites", NAMES)])


def test_selection_by_hand(folder):
    b = both(folder)
    assert set(b.units) == {"road|snow|cow|3|0", "grass|graffiti|tree|3|0"}
    assert check_consistency(b) == []
    sel = {x: select(b, x) for x in (0.0025, 0.01, 0.02, 0.05)}
    # U1 edit: 0.25 pp and 1 pp -> the half-strength row (free), 2 pp -> full strength, 5 pp -> site 2 (7/7 > 6/7)
    assert chosen(sel[0.0025], "road", "edit", 0.0025)[["site_name", "strength"]].tolist() == ["features.4", 0.5]
    assert chosen(sel[0.01], "road", "edit", 0.01)["strength"] == 0.5
    assert chosen(sel[0.02], "road", "edit", 0.02)["strength"] == 1.0
    assert chosen(sel[0.05], "road", "edit", 0.05)[["site_name", "strength"]].tolist() == ["features.2", 1.0]
    # restricted to the deepest site, 5 pp keeps full strength at site 4
    assert chosen(select(b, 0.05, sites=[4]), "road", "edit", 0.05)[["site_name", "strength"]].tolist() == ["features.4", 1.0]
    # fine-tuning on U1 scores below zero at every budget: no change, because no setting beats it
    r = chosen(sel[0.05], "road", "finetune_local", 0.05)
    assert not r["changed"] and r["reason"] == NO_GAIN and r["row"] == -1
    # U2 edit costs 1 pp: nothing qualifies at 0.25 pp
    r = chosen(sel[0.0025], "grass", "edit", 0.0025)
    assert not r["changed"] and r["reason"] == NONE_QUALIFIES
    assert chosen(sel[0.01], "grass", "edit", 0.01)["changed"]


def test_ties_go_to_the_smaller_clean_drop(folder):
    b = both(folder)
    rows = b.rows.copy()
    site2 = rows["site_index"] == 2
    rows.loc[site2, "val_corrected"] = 6 / 7   # now site 2 (5 pp) ties with site 4 full strength (2 pp)
    tied = BenchData(b.folder, b.model, b.config, rows, b.outcomes, b.units, b.class_names, b.clean_n)
    assert chosen(select(tied, 0.05), "road", "edit", 0.05)["site_name"] == "features.4"


def test_summary_numbers_by_hand(folder):
    b = both(folder)
    res = science_tables([b], budgets=(0.0025, 0.01), site_budgets=(math.inf,), n_boot=400)
    s = res.summary.set_index(["method", "budget"])
    # at 1 pp, edit: U1 half strength fixes 2 of 4 target errors (test) -> 0.5; U2 fixes 4 of 4 -> 1.0
    e = s.loc[("edit", 0.01)]
    assert e["test_target_corrected"] == pytest.approx(0.75)
    assert e["test_target_corrected_lo"] <= 0.75 <= e["test_target_corrected_hi"]
    assert (e["test_target_corrected_unit_min"], e["test_target_corrected_unit_max"]) == (0.5, 1.0)
    # other classes: U1 fixes none of 3 (0), U2 fixes none and breaks one right image: -1/3
    assert e["test_other_corrected"] == pytest.approx((0 - 1 / 3) / 2)
    # held-out: U1 1 of 4 target, U2 3 of 4
    assert e["heldout_target_corrected"] == pytest.approx(0.5)
    # clean drop: U1 (1 bad - 1 good) = 0, U2 1 bad of 100 -> mean 0.005
    assert e["clean_drop"] == pytest.approx(0.005)
    assert e["clean_drop_lo"] <= 0.005 <= e["clean_drop_hi"]
    assert (e["clean_bad_mean"], e["clean_good_mean"]) == (1.0, 0.5)   # U1 breaks 1 and fixes 1, U2 breaks 1
    assert (e["n_units"], e["n_changed"], e["n_none_qualifies"], e["n_no_gain"]) == (2, 2, 0, 0)
    assert "features.4 s=0.5 x1" in e["chosen"] and "features.4 x1" in e["chosen"]
    # at 0.25 pp: U2 makes no change (0 corrected, counted), U1 keeps 0.5
    e = s.loc[("edit", 0.0025)]
    assert e["test_target_corrected"] == pytest.approx(0.25)
    assert (e["n_changed"], e["n_none_qualifies"]) == (1, 1)
    # fine-tuning: no change everywhere at 0.25 pp -> every number is exactly 0 with a point interval
    f = s.loc[("finetune_local", 0.0025)]
    assert (f["test_other_corrected"], f["test_other_corrected_lo"], f["test_other_corrected_hi"]) == (0.0, 0.0, 0.0)
    assert (f["clean_drop"], f["clean_drop_lo"], f["clean_drop_hi"]) == (0.0, 0.0, 0.0)
    assert (f["n_no_gain"], f["n_none_qualifies"]) == (1, 1)


def test_site_depth_and_ablation_tables(folder):
    b = both(folder)
    res = science_tables([b], budgets=(0.05,), site_budgets=(math.inf, 0.0025), n_boot=300)
    bs = res.by_site
    # site 2 exists only for U1: unconstrained it fixes everything (test target 1.0, other 1.0)
    s2 = bs[(bs["method"] == "edit") & (bs["site_index"] == 2) & np.isinf(bs["budget"])].iloc[0]
    assert (s2["n_units"], s2["test_target_corrected"], s2["test_other_corrected"]) == (1, 1.0, 1.0)
    # depth is compared on the units run at every site: U2 (site 4 only) is left out of the edit's rows
    s4 = bs[(bs["method"] == "edit") & (bs["site_index"] == 4) & np.isinf(bs["budget"])].iloc[0]
    assert s4["n_units"] == 1
    assert set(bs.loc[bs["method"] == "finetune_local", "n_units"]) == {2}   # one site: every unit
    # within 0.25 pp site 2 (5 pp) does not qualify: no change
    s2b = bs[(bs["method"] == "edit") & (bs["site_index"] == 2) & np.isclose(bs["budget"], 0.0025)].iloc[0]
    assert (s2b["test_target_corrected"], s2b["n_none_qualifies"]) == (0.0, 1)
    # no edit_full / edit_masked in this folder: the one comparison is edit - finetune_local, paired per unit
    a = res.ablations
    assert a[["ablation", "base", "variant"]].drop_duplicates().values.tolist() == [["vs", "finetune_local", "edit"]]
    s = res.summary.set_index("method")
    assert a["diff_test_target_corrected"].iloc[0] == pytest.approx(
        s.loc["edit", "test_target_corrected"] - s.loc["finetune_local", "test_target_corrected"])
    assert res.resolution["budget_images"].tolist() == [5.0]


def test_rank_ablation_is_a_paired_difference(folder, tmp_path):
    # copy the edit rows as "edit_full" with U1's test outcome changed: a paired difference known by hand
    b = both(folder)
    rows = b.rows[b.rows["method"] == "edit"].copy()
    extra = []
    for r in rows.to_dict("records"):
        o = json.loads(json.dumps(b.outcomes[r["row"]]))
        if r["unit"].startswith("road"):
            o["test"]["post"] = post_of(b.units["road|snow|cow|3|0"]["test"], 4, 3, 0)   # fixes every error
        r = {**r, "method": "edit_full", "row": len(b.outcomes) + len(extra)}
        r["test_target_corrected"], r["test_other_corrected"] = 1.0, 1.0
        extra.append((r, o))
    import pandas as pd

    b2 = BenchData(b.folder, b.model, b.config, pd.concat([b.rows, pd.DataFrame([e[0] for e in extra])], ignore_index=True),
                   b.outcomes + [e[1] for e in extra], b.units, b.class_names, b.clean_n)
    res = science_tables([b2], budgets=(0.01,), site_budgets=(0.01,), n_boot=300)
    a = res.ablations[res.ablations["ablation"] == "rank"].iloc[0]
    # U1 at 1 pp: edit (half strength) 2/4 target -> edit_full 4/4: +0.5; other 0 -> 1: +1; U2 identical: 0
    assert a["diff_test_target_corrected"] == pytest.approx(0.25)
    assert a["diff_test_other_corrected"] == pytest.approx(0.5)
    assert a["diff_clean_drop"] == pytest.approx(0.0)
    assert (a["diff_clean_drop_lo"], a["diff_clean_drop_hi"]) == (0.0, 0.0)   # the same clean flips
    assert a["n_units"] == 2


def test_write_summary_and_cli(folder, tmp_path):
    out = tmp_path / "science"
    # the parent folder: both stages found and merged; class names from the real world_vgg
    (folder.parent / "selection" / "cells").mkdir(parents=True)   # a sensitivity folder beside them is skipped
    (folder.parent / "selection" / "manifest.json").write_text(json.dumps({"config": {"model": "world_vgg", "concepts": []}}))
    assert bench_folders([folder.parent]) == [folder, folder.parent / "B_sites"]
    from modeledit.cli import main

    assert main(["science", str(folder.parent), "--out", str(out), "--n-boot", "200", "--budgets", "0.0025,0.01,0.05"]) == 0
    for f in ("selection.csv", "summary.csv", "by_site.csv", "ablations.csv", "resolution.csv", "science.json", "summary.md"):
        assert (out / f).is_file(), f
    md = (out / "summary.md").read_text()
    # edit at 1 pp: 75% of target errors (same style), clean drop 0.5 pp, both units changed
    assert "| edit | 75.0 [" in md and "1 pp" in md and "2 / 0 / 0 of 2" in md
    doc = json.loads((out / "science.json").read_text())
    assert doc["models"] == ["world_vgg"] and doc["consistency"] == {"world_vgg": []}
    assert len(doc["folders"]["world_vgg"]) == 2 and doc["main_sites"] == "deepest"
    assert {"fig6_3_world_vgg.png", "fig6_4_world_vgg.png", "fig6_7_world_vgg.png"} <= {p.split("/")[-1] for p in doc["figures"]}
    row = next(r for r in doc["summary"] if r["method"] == "edit" and r["budget"] == 0.01)
    assert row["test_target_corrected"] == pytest.approx(0.75)
    at5 = next(r for r in doc["summary"] if r["method"] == "edit" and r["budget"] == 0.05)
    assert "features.2" not in at5["chosen"]   # the main comparison stays at the deepest site
    res = write_science_summary([folder, folder.parent / "B_sites"], tmp_path / "all", budgets=(0.05,), n_boot=50,
                                class_names={str(folder): NAMES, str(folder.parent / "B_sites"): NAMES}, sites="all")
    assert "features.2 x1" in res.summary.set_index("method").loc["edit", "chosen"]


def test_merge_refuses_units_with_other_images(folder):
    a, b = load_bench(folder, NAMES), load_bench(folder.parent / "B_sites", NAMES)
    b.units["road|snow|cow|3|0"] = {**b.units["road|snow|cow|3|0"], "test": {**b.units["road|snow|cow|3|0"]["test"], "idx": [9]}}
    with pytest.raises(ValueError, match="different images"):
        merge_benches([a, b])


def test_units_without_reference_images_are_left_out(folder):
    # a run in progress: U2's reference images not written yet (no unedited.json): its rows are left out
    (folder / "unedited.json").unlink()
    b = load_bench(folder, NAMES)
    assert set(b.rows["unit"]) == {"road|snow|cow|3|0"}
    assert check_consistency(b) == []


def test_old_cells_without_outcomes_are_refused(tmp_path):
    store = ResultStore(tmp_path / "old", config={"model": "world_vgg"})
    store.write({"a": 1}, [{"model": "world_vgg", "clean_drop": 0.0}])
    with pytest.raises(ValueError, match="per-image outcomes"):
        load_bench(tmp_path / "old", NAMES)
    with pytest.raises(FileNotFoundError):
        load_bench(tmp_path / "nothing", NAMES)


def test_check_disjoint_names_the_overlapping_splits():
    check_disjoint({"selection": range(0, 10), "val": [10, 11], "test": (12, 13), "clean": {"c1"}, "statistics": [],
                    "exemplars": [14]})
    with pytest.raises(ValueError, match=r"val & test share 1 item \(e.g. 11\)") as err:
        check_disjoint({"val": [10, 11], "test": [11, 12], "exemplars": [20]})
    assert "exemplars" not in str(err.value)
    with pytest.raises(ValueError, match="selection & exemplars share 2 items.*test & exemplars"):
        check_disjoint({"selection": [1, 2], "test": [3], "exemplars": [1, 2, 3]})


def test_figures_survive_units_without_errors(folder, tmp_path):
    # a run whose images hold no error to correct (every metric NaN) still draws its figures
    from modeledit.eval.science import write_figures

    res = science_tables([both(folder)], budgets=(0.0025, 0.01), site_budgets=(math.inf,), n_boot=50)
    for frame in (res.summary, res.by_site):
        for c in [c for c in frame.columns if "_corrected" in c]:
            frame[c] = np.nan
    names = {p.name for p in write_figures(res, tmp_path / "figs", 0.0025)}
    assert {"fig6_3_world_vgg.png", "fig6_4_world_vgg.png", "fig6_7_world_vgg.png"} <= names


def test_resampling_pairs(folder):
    b = both(folder)
    units = science_tables([b], budgets=(0.01,), site_budgets=(0.01,), n_boot=300).summary
    pairs = science_tables([b], budgets=(0.01,), site_budgets=(0.01,), n_boot=300, resample="pairs").summary
    # each pair here has one unit: drawing pairs is drawing units (same numbers, same seed)
    pd_testing = __import__("pandas").testing
    pd_testing.assert_frame_equal(units, pairs)
    with pytest.raises(ValueError, match="resample"):
        science_tables([b], budgets=(0.01,), resample="images")


def test_the_committed_science_run_uses_disjoint_splits():
    # the real run: selection on world:val, exemplars/val/test from world:test, clean on world:clean, C from world:train
    from pathlib import Path

    from modeledit.eval.science import verify_splits

    folder = Path(__file__).resolve().parents[1] / "results/world/science/world_vgg/A_deep"
    b = load_bench(folder, NAMES)
    rec = verify_splits([b])
    assert rec["disjoint"] and rec["not_recorded"] == []
    assert rec["datasets"] == {"selection": ["world:val:900"], "bench": ["world:test:1800"], "clean": ["world:clean:10000"],
                               "statistics": ["world:train:1500"]}
    assert rec["units_checked"] == len(b.units) >= 18
    from modeledit.eval.science import selection_table

    sel = selection_table([b])   # 6 concepts x 6 styles; the rule admits 20 pairs, stage A runs every one x 3 targets
    assert len(sel) == 36 and int(sel["admitted"].sum()) == 20
    assert {tuple(p.split("|")) for p in {"|".join(u.split("|")[:2]) for u in b.units}} == {
        (c, st) for c, st, a in zip(sel["concept"], sel["style"], sel["admitted"]) if a}
    assert len(b.units) == 60
    for u in b.units.values():   # the exemplars are images of the bench set, in neither val nor test
        assert len(u["exemplars"]) == 3 and not set(u["exemplars"]) & (set(u["val"]["idx"]) | set(u["test"]["idx"]))


def test_verify_splits_names_a_leak(folder):
    import dataclasses

    from modeledit.eval.science import verify_splits

    b = load_bench(folder, NAMES)
    leak = dataclasses.replace(b, config={**b.config, "dataset": "world:test:40", "clean": "world:test:20"})
    with pytest.raises(ValueError, match="overlap"):
        verify_splits([leak])
    ok = dataclasses.replace(b, config={**b.config, "dataset": "world:test:40", "clean": "world:clean:50", "stats_dataset": "world:train:30"})
    assert verify_splits([ok])["datasets"]["clean"] == ["world:clean:50"]
    unit = next(iter(b.units))
    bad = {**b.units, unit: {**b.units[unit], "exemplars": [b.units[unit]["val"]["idx"][0]]}}
    with pytest.raises(ValueError, match="val & .*exemplars share"):
        verify_splits([dataclasses.replace(ok, units=bad)])


def test_exemplar_counts_compared_on_common_units():
    from modeledit.eval.science import common_exemplar_units

    # edit: pair a run at 1, 3 and 10 exemplars, pair b only at 3 (a wider stage); finetune: one count only
    units = [("edit", "a|snow|car|1|0"), ("edit", "a|snow|car|3|0"), ("edit", "a|snow|car|10|0"), ("edit", "b|snow|bus|3|0"),
             ("finetune_global", "a|snow|car|3|0")]
    sel = __import__("pandas").DataFrame([{"method": m, "unit": u, "n_exemplars": int(u.split("|")[3]), "budget": 0.0025} for m, u in units])
    kept = common_exemplar_units(sel)
    assert sorted(kept["unit"]) == ["a|snow|car|10|0", "a|snow|car|1|0", "a|snow|car|3|0"]
    assert set(kept["method"]) == {"edit"}
    assert common_exemplar_units(sel[sel["method"] == "finetune_global"]).empty


def test_comparisons_come_from_the_method_registry():
    """The ablations and the edit-vs-baseline rows of the summary are the registered methods' ``comparison``s, in
    the order the committed summaries have them; a method registered with one joins them."""
    from dataclasses import replace

    from modeledit.eval.methods import METHODS, comparisons, register_method

    assert comparisons() == [("rank", "edit", "edit_full"), ("mask", "edit", "edit_masked"), ("solver", "edit", "edit_adam"),
                             ("vs", "finetune_local", "edit"), ("vs", "finetune_global", "edit"), ("vs", "paint_local", "edit"),
                             ("vs", "paint_global", "edit"), ("vs", "rrr_local", "edit"), ("vs", "rrr_global", "edit")]
    register_method(replace(METHODS.get("finetune_local"), name="test_only_baseline", comparison_order=99))
    try:
        assert comparisons()[-1] == ("vs", "test_only_baseline", "edit")
    finally:
        METHODS.unregister("test_only_baseline")
