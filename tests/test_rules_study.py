"""The rules study's harness (eval/rules.py): what a resume accepts and refuses, on the committed study folders."""
from __future__ import annotations

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
