"""The rules study's harness (eval/rules.py): what a resume accepts and refuses, on the committed study folders."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from modeledit.eval.rules import RulesStudyConfig, check_same_study

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p.parent for p in (ROOT / "results" / "world" / "rules").glob("*/manifest.json"))


def test_every_committed_study_folder_resumes_under_its_own_settings():
    assert len(FOLDERS) >= 4
    for folder in FOLDERS:
        old = json.loads((folder / "manifest.json").read_text())["config"]
        cfg = RulesStudyConfig(**old)
        check_same_study(old, cfg, folder)                          # the same rules: accepted
        # another variant or its settings is the same study; another order or site is not
        check_same_study(old, RulesStudyConfig(**{**old, "variants": ["sites"], "past_weight": 99.0}), folder)
        for change in ({"order_seed": old["order_seed"] + 1}, {"site": "0"}, {"max_rules": 7}):
            with pytest.raises(ValueError, match="another configuration"):
                check_same_study(old, RulesStudyConfig(**{**old, **change}), folder)
        with pytest.raises(ValueError, match="another configuration"):
            check_same_study(old, RulesStudyConfig(**{**old, "bench": {**old["bench"], "clean": "world:clean:123"}}), folder)


def test_a_manifest_without_a_later_bench_field_still_resumes():
    """A bench field added after a folder was written (absent from its manifest) takes its default: not a mismatch."""
    old = json.loads((FOLDERS[0] / "manifest.json").read_text())["config"]
    cfg = RulesStudyConfig(**old)
    trimmed = {**old, "bench": {k: v for k, v in old["bench"].items() if k != "min_confidence"}}
    check_same_study(trimmed, cfg, FOLDERS[0])


def test_unknown_variant_and_bad_counts_are_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        RulesStudyConfig(variants=["sequence_grid", "stres"])
    for bad in ({"stress_every": 0}, {"stress_draws": -1}, {"sites_per_pair": 0}, {"stress_every": 2.5}):
        with pytest.raises(ValueError, match="must be a whole number >= 1"):
            RulesStudyConfig(**bad)


def test_unknown_sequence_settings_are_refused_before_any_work():
    for bad in ({"keep_form": "rank1"}, {"past_mode": "median"}):
        with pytest.raises(ValueError, match="unknown (keep_form|past_mode)"):
            RulesStudyConfig(**bad)


@pytest.mark.slow
def test_a_small_study_runs_resumes_and_summarises(tmp_path):
    """The study end to end on world_vgg's first admitted pair (2 rules, small sets): single edits, the joint solve,
    the preserved sequence and the selected single edits write one row per rule; the joint solve of the rules lowers
    each rule's objective; the sequence's retention is measured at its end against its own step; a rerun resumes
    (nothing recomputed: the files stay byte-identical) and a rerun with another order is refused."""
    import pandas as pd

    from modeledit.eval.bench import BenchConfig
    from modeledit.eval.rules import run_rules_study

    bench = BenchConfig(model="world_vgg", dataset="world:test:900", clean="world:clean:200", stats_dataset="world:train:100",
                        sensitivity=str(ROOT / "results/world/science/world_vgg/selection/table.csv"), max_pairs=1, n_targets=2,
                        n_exemplars=[3], methods=["edit"], sites=["4"], heldout_style_images=[])
    cfg = RulesStudyConfig(bench=bench, site="4", variants=["single", "batch", "sequence_keep", "single_sel"], max_rules=2)
    out = tmp_path / "study"
    summary = pd.read_csv(run_rules_study(cfg, out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["n_rules"] == 2 and manifest["site"] == "features.15"
    rules = manifest["rules"]
    for v in cfg.variants:
        rows = pd.read_csv(out / f"{v}.csv")
        assert sorted(rows["rule"]) == sorted(rules), v
        assert rows["n_pre"].ge(0).all() and rows["clean_acc_change"].between(-1, 1).all(), v
    batch = pd.read_csv(out / "batch.csv")
    assert (batch["objective_after"] < batch["objective_before"]).all()
    seq = pd.read_csv(out / "sequence_keep.csv")
    steps = pd.read_csv(out / "sequence_keep_steps.csv")
    assert set(steps["step"]) == {0, 1} and len(steps) == 3           # after step 0: rule 1; after step 1: both
    assert {"corrected_own_step", "position"} <= set(seq.columns)
    assert set(summary["variant"]) >= {"batch", "sequence_keep"}
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    run_rules_study(cfg, out)                                           # resumed: every variant already done
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == before
    assert len(json.loads((out / "manifest.json").read_text())["runs"]) == 2
    with pytest.raises(ValueError, match="another configuration"):
        run_rules_study(dataclasses.replace(cfg, order_seed=1), out)


def test_the_sites_summary_counts_rules_within_5pp_of_the_best_site():
    """Three rules of two pairs, two sites each: recommended (rank 1) within 5 pp of the best test correction for
    two rules, the deepest site for one; the interval resamples the pairs and covers the share."""
    import pandas as pd

    from modeledit.eval.rules import summarize_sites

    rows = []
    for rule, pair, (deep, shallow), rec in (("a|x|1", "a|x", (0.50, 0.30), "deep"), ("a|x|2", "a|x", (0.20, 0.60), "deep"),
                                             ("b|y|1", "b|y", (0.40, 0.42), "shallow")):
        best = max(deep, shallow)
        for name, idx, val in (("deep", 2, deep), ("shallow", 1, shallow)):
            rows.append({"rule": rule, "pair": pair, "site_name": name, "site_index": idx, "test_corrected": val,
                         "rank": 1 if name == rec else 2, "best_test_corrected": best})
    rec, deepest = summarize_sites(pd.DataFrame(rows))
    assert (rec["variant"], rec["n_rules"], rec["n_pairs"], rec["within_5pp"]) == ("sites_recommended", 3, 2, 2)
    assert deepest["within_5pp"] == 2                     # a|x|1 (best) and b|y|1 (0.40 vs 0.42)
    assert rec["within_5pp_share_lo"] <= rec["within_5pp_share"] == 2 / 3 <= rec["within_5pp_share_hi"]
    assert rec["recommended_sites"] == "deep 2; shallow 1" and rec["best_sites"] == "shallow 2; deep 1"   # most frequent first
