"""The protocol's rules checked against hand-computed cases."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from modeledit.eval.metrics import accuracy_drop_ci, error_counts, errors_corrected
from modeledit.eval.protocol import ProtocolConfig, choose_setting, select_pairs, split_pair
from modeledit.eval.results import ResultStore


def test_errors_corrected_by_hand():
    # originals right for 0..3; transformed wrong before for 0,1,2; after, only 2 stays wrong; 4 is ignored
    orig = [1, 1, 1, 1, 0]
    pre = [0, 0, 0, 1, 0]
    post = [1, 1, 0, 1, 1]
    assert error_counts(orig, pre, post) == (3, 1)
    assert errors_corrected(orig, pre, post) == pytest.approx(2 / 3)
    # a method that adds errors scores below zero
    assert errors_corrected([1, 1], [0, 1], [0, 0]) == pytest.approx(-1.0)
    assert math.isnan(errors_corrected([1], [1], [1]))


def test_accuracy_drop_ci_contains_value_and_is_paired():
    ci = accuracy_drop_ci([1] * 80 + [0] * 20, [1] * 50 + [0] * 50, n_boot=500)
    assert ci.value == pytest.approx(0.30)
    assert ci.low < 0.30 < ci.high
    same = accuracy_drop_ci([1, 0, 1, 1], [1, 0, 1, 1])
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same non-zero number"):
        accuracy_drop_ci([1, 0], [1])


def _table():
    rows = []
    # road/snow: cars, trucks, buses qualify; boats drop but the concept is rare there
    for cls, presence, drop in [("car", 0.9, 0.4), ("truck", 0.8, 0.3), ("bus", 0.5, 0.16), ("boat", 0.1, 0.5), ("cat", 0.3, 0.02)]:
        rows.append(dict(concept="road", style="snow", class_name=cls, presence=presence, drop=drop))
    # grass/snow: only two classes qualify
    for cls, presence, drop in [("cow", 0.9, 0.3), ("sheep", 0.9, 0.2), ("car", 0.3, 0.1)]:
        rows.append(dict(concept="grass", style="snow", class_name=cls, presence=presence, drop=drop))
    return pd.DataFrame(rows)


def test_select_pairs_rule():
    out = select_pairs(_table(), ProtocolConfig())
    assert list(out["concept"]) == ["road"]
    assert out.iloc[0]["classes"] == ["bus", "car", "truck"]
    # excluding one concept-class pair drops road below three classes
    assert select_pairs(_table(), ProtocolConfig(exclude=[("road", "bus")])).empty
    assert list(select_pairs(_table(), ProtocolConfig(min_classes=2))["concept"]) == ["grass", "road"]


def test_split_pair_30_70_per_class():
    idx = list(range(40))
    labels = ["car"] * 13 + ["truck"] * 10 + ["cat"] * 17
    s = split_pair(idx, labels, candidates=["car"], n_exemplars=3, seed=1)
    assert s.target_class == "car" and len(s.exemplars) == 3
    assert all(labels[i] == "car" for i in s.exemplars)
    assert sorted(s.exemplars + s.val + s.test) == idx
    assert not set(s.val) & set(s.test)
    # per class: car 10 left -> 3 val, truck 10 -> 3, cat 17 -> 5
    by = lambda part, c: sum(labels[i] == c for i in part)
    assert (by(s.val, "car"), by(s.val, "truck"), by(s.val, "cat")) == (3, 3, 5)
    assert split_pair(idx, labels, ["car"], 3, seed=1) == s
    with pytest.raises(ValueError, match="more than 20"):
        split_pair(idx, labels, ["car"], 20)


def test_choose_setting_budget():
    res = [
        {"lr": 1, "val_corrected": 0.9, "clean_drop": 0.01},
        {"lr": 2, "val_corrected": 0.5, "clean_drop": 0.002},
        {"lr": 3, "val_corrected": 0.6, "clean_drop": 0.0025},
        {"lr": 4, "val_corrected": float("nan"), "clean_drop": 0.0},
    ]
    assert choose_setting(res)["lr"] == 3
    assert choose_setting(res, max_clean_drop=0.05)["lr"] == 1
    assert choose_setting(res[:1]) is None


def test_result_store_resumes_and_refuses_other_config(tmp_path):
    calls = []

    def fn(p):
        calls.append(p["x"])
        return [{"x": p["x"], "y": p["x"] ** 2}]

    store = ResultStore(tmp_path / "r", config={"seed": 0})
    cells = [{"x": i} for i in range(4)]
    from modeledit.eval.executors import get_executor

    get_executor("local").run(cells[:2], lambda: fn, store)
    again = ResultStore(tmp_path / "r", config={"seed": 0})
    get_executor("local").run(cells, lambda: fn, again)
    table = again.table()
    assert calls == [0, 1, 2, 3]
    assert sorted(table["y"]) == [0, 1, 4, 9]
    assert not list((tmp_path / "r" / "cells").glob(".*tmp"))
    assert "torch" in store.manifest()["versions"]
    with pytest.raises(ValueError, match="another configuration"):
        ResultStore(tmp_path / "r", config={"seed": 1})


def test_a_temporary_file_left_by_a_killed_writer_is_never_a_result(tmp_path):
    """A process killed between writing a cell's temporary file and renaming it leaves the hidden file behind (complete,
    as here, or truncated): it is neither a finished cell nor a row, and the cell runs again."""
    store = ResultStore(tmp_path / "r", config={"seed": 0})
    store.write({"x": 0}, [{"x": 0, "y": 0}])
    real = next(p for p in (tmp_path / "r" / "cells").glob("*.json") if not p.name.startswith("."))
    (real.parent / f".{real.stem.replace('0', '1')}.999.tmp.json").write_text(real.read_text().replace('"y": 0', '"y": 1'))
    (real.parent / ".truncated.998.tmp.json").write_text('{"rows": [{"x"')
    again = ResultStore(tmp_path / "r", config={"seed": 0})
    assert again.n_done() == 1 and list(again.table()["y"]) == [0]


def test_result_store_extends_along_scale_keys_only(tmp_path):
    """A run made with a few pairs resumes with more (the manifest records the growth); any other change of
    configuration is refused, also when a scale key changes with it."""
    store = ResultStore(tmp_path / "r", config={"seed": 0, "max_pairs": 6})
    store.write({"x": 0}, [{"x": 0}])
    grown = ResultStore(tmp_path / "r", config={"seed": 0, "max_pairs": None}, scale_keys=("max_pairs",))
    assert grown.manifest()["config"]["max_pairs"] is None
    assert grown.manifest()["extended_from"] == [{"max_pairs": 6}]
    assert grown.done({"x": 0})
    with pytest.raises(ValueError, match="differs in max_pairs, seed"):
        ResultStore(tmp_path / "r", config={"seed": 1, "max_pairs": 3}, scale_keys=("max_pairs",))
    with pytest.raises(ValueError, match="another configuration"):
        ResultStore(tmp_path / "r", config={"seed": 0, "max_pairs": 3})


def test_result_store_knows_an_input_file_under_another_path(tmp_path):
    """A folder copied elsewhere (or run from another directory) names its input file by another path: the same
    content is the same configuration (the manifest records its hash and then the new path); other content is not."""
    import shutil

    table = tmp_path / "a" / "table.csv"
    table.parent.mkdir()
    table.write_text("concept,style\nroad,snow\n")
    store = ResultStore(tmp_path / "a" / "run", config={"seed": 0, "sensitivity": str(table)}, file_keys=("sensitivity",))
    store.write({"x": 0}, [{"x": 0}])
    assert store.manifest()["file_sha256"]["sensitivity"]
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = tmp_path / "b" / "table.csv"
    copy = ResultStore(tmp_path / "b" / "run", config={"seed": 0, "sensitivity": str(moved)}, file_keys=("sensitivity",))
    assert copy.done({"x": 0}) and copy.manifest()["config"]["sensitivity"] == str(moved)
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    other = tmp_path / "c" / "table.csv"
    other.write_text("concept,style\nroad,sand\n")
    with pytest.raises(ValueError, match="differs in sensitivity"):
        ResultStore(tmp_path / "c" / "run", config={"seed": 0, "sensitivity": str(other)}, file_keys=("sensitivity",))
    with pytest.raises(ValueError, match="differs in seed"):     # another difference still refuses (the copy's own table)
        ResultStore(tmp_path / "a" / "run", config={"seed": 1, "sensitivity": str(table)}, file_keys=("sensitivity",))
    with pytest.raises(ValueError, match="differs in sensitivity"):     # without file_keys a path is only text
        ResultStore(tmp_path / "a" / "run", config={"seed": 0, "sensitivity": str(tmp_path / "b" / "table.csv")})


def test_bench_max_pairs_all_takes_every_admitted_pair(tmp_path):
    from modeledit.eval.bench import BenchConfig, choose_pairs

    table = pd.DataFrame([{"concept": c, "style": s, "class_name": k, "presence": 0.9, "drop": d}
                          for c, s, d in [("road", "snow", 0.5), ("grass", "snow", 0.4), ("sky", "wooden", 0.3)]
                          for k in ("car", "bus", "cow")])
    table.to_csv(tmp_path / "table.csv", index=False)
    chosen = {n: [(p["concept"], p["style"]) for p in choose_pairs(BenchConfig(max_pairs=n, sensitivity=str(tmp_path / "table.csv")))]
              for n in (2, None)}
    assert chosen[2] == [("road", "snow"), ("grass", "snow")]
    assert chosen[None] == chosen[2] + [("sky", "wooden")]


def test_no_change_beats_a_negative_best():
    """"No change" is always a candidate scoring 0."""
    from modeledit.eval.bench import display_summary, summarize

    rows = [{"val_corrected": -0.2, "clean_drop": 0.0}, {"val_corrected": -0.05, "clean_drop": 0.001}]
    assert choose_setting(rows, 0.0025) is None
    assert choose_setting(rows + [{"val_corrected": 0.1, "clean_drop": 0.002}], 0.0025)["val_corrected"] == 0.1
    assert choose_setting([{"val_corrected": 0.0, "clean_drop": 0.0}], 0.0025) is None  # a tie goes to no change
    base = dict(concept="road", style="snow", n_exemplars=3, seed=0, site_name="features.15", target_class="car",
                test_target_corrected=0.5, test_other_corrected=-0.3, heldout_target_corrected=0.1, heldout_other_corrected=-0.1,
                test_target_n_pre=10, test_other_n_pre=20)
    table = pd.DataFrame([{**base, "method": "edit", "setting": "{}", "val_corrected": -0.1, "clean_drop": 0.0},
                          {**base, "method": "finetune_local", "setting": "{}", "val_corrected": 0.4, "clean_drop": 0.5},
                          {**base, "method": "finetune_global", "setting": "{}", "val_corrected": 0.4, "clean_drop": 0.001}])
    s = summarize(table, 0.0025).set_index("method")
    assert not s.loc["edit", "changed"] and s.loc["edit", "setting"] == "no setting beats no change: no change"
    assert s.loc["edit", "test_other_corrected"] == 0.0 and s.loc["edit", "site_name"] == "-"
    assert not s.loc["finetune_local", "changed"] and s.loc["finetune_local", "setting"] == "no setting qualifies: no change"
    assert s.loc["finetune_global", "changed"] and s.loc["finetune_global", "test_other_corrected"] == -0.3
    text = display_summary(s.reset_index(), ["method", "test_other_corrected", "clean_drop", "site_name", "setting"])
    assert "no setting qualifies: no change" in text and "no setting beats no change: no change" in text
    assert "0.000" not in text.splitlines()[1] + text.splitlines()[2]  # unchanged rows show '-', not 0.000
