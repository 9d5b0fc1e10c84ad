"""``modeledit bench-summary RESULTS --budgets 0.0025,0.02``: re-select a finished bench at other clean-accuracy budgets.

The budget only chooses among cells already computed, so no cell is rerun: for each budget this writes
``summary_budget_B.csv`` (pair x exemplars x method), ``summary_by_site_budget_B.csv`` (depth) and
``figures/methods_budget_B.png``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from modeledit.commands.common import add_list, fraction


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", help="a `modeledit bench` output folder (with cells.csv)")
    add_list(p, "--budgets", item=_budget, what="budget", default="0.0025,0.01,0.02,0.05", help="clean accuracy budgets (fractions: 0.01 = 1 pp)")


def _budget(text: str) -> str:
    fraction(text)  # checks; the text itself names the output files
    return text


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from modeledit.eval.bench import summarize
    from modeledit.eval.plots import plot_methods

    out = Path(args.results)
    cells = out / "cells.csv"
    if not cells.is_file():
        raise FileNotFoundError(f"{cells} does not exist; run `modeledit bench ... --out {out}` first")
    table = pd.read_csv(cells)
    cols = ["method", "test_target_corrected", "test_other_corrected", "heldout_target_corrected", "heldout_other_corrected", "clean_drop"]
    for text in args.budgets:
        b = float(text)
        s = summarize(table, b)
        s.to_csv(out / f"summary_budget_{text}.csv", index=False)
        by_site = summarize(table, b, by=["concept", "style", "n_exemplars", "seed", "method", "site_name"])
        by_site.to_csv(out / f"summary_by_site_budget_{text}.csv", index=False)
        plot_methods(s, out / "figures" / f"methods_budget_{text}.png", title=f"errors corrected (test), budget {100 * b:.2f} pp")
        print(f"budget {100 * b:.2f} pp (mean over pairs; 'changed' = pairs where a setting qualified)")
        g = s.groupby("method").agg(**{c: (c, "mean") for c in cols[1:]}, changed=("changed", "sum"))
        print(g.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0
