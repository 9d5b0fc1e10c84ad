"""Paired 95% intervals (resampling concept-style pairs) for the preserved-sequence settings of a sequence_grid folder.

Per setting, on the test halves: each rule's correction at the end of the sequence of all rules against (a) the same
rule edited alone (single_sel: closed form, strength selected within 1 pp on the validation half; the same test half)
and (b) the chosen setting (sequence_grid_choice.json; where none qualified, the library's SEQUENCE_DEFAULTS).
Writes GRID/paired.json.

    .venv/bin/python results/world/rules/grid_paired.py                      # world_vgg_grid/ (single_sel in world_vgg_sel/)
    .venv/bin/python results/world/rules/grid_paired.py world_resnet world_resnet
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from modeledit.atomic import write_json_atomic
from modeledit.eval.rules import paired_over_pairs

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    import sys

    args = sys.argv[1:] if argv is None else argv
    grid_name, single_name = (args + ["world_vgg_grid", "world_vgg_sel"][len(args):])[:2]
    grid = HERE / grid_name
    single = pd.read_csv(HERE / single_name / "single_sel.csv")
    chosen = json.loads((grid / "sequence_grid_choice.json").read_text())["chosen"]
    if chosen is None:             # no setting met the choice rule there: compare against the library's defaults
        from modeledit.eval.rules import _setting_tag
        from modeledit.rules import SEQUENCE_DEFAULTS

        chosen = _setting_tag(*(SEQUENCE_DEFAULTS[k] for k in ("form", "norm_weight", "past_weight", "past_mode")))
    ends = {}
    for path in sorted(grid.glob("sequence_grid_*_steps.csv")):
        tag = path.name[len("sequence_grid_"):-len("_steps.csv")]
        t = pd.read_csv(path)
        t = t[(t["half"] == "test") & (t["step"] == t["step"].max())]
        ends[tag] = t[["rule", "pair", "corrected"]]
    out = {"description": __doc__.split("\n\n")[0], "chosen": chosen, "settings": {}}
    for tag, end in ends.items():
        out["settings"][tag] = {"end_corrected_mean": float(end["corrected"].mean()),
                                "vs_single_sel": paired_over_pairs(single, end),
                                **({} if tag == chosen else {"vs_chosen": paired_over_pairs(ends[chosen], end)})}
    out["single_sel_test_half_mean"] = float(single["corrected"].mean())
    write_json_atomic(grid / "paired.json", out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
