"""``modeledit science FOLDER [FOLDER ...] --out DIR``: the science summary of finished bench folders.

Per model (a model's bench folders are merged), the protocol's selection at several clean-accuracy budgets,
errors corrected with two-stage bootstrap intervals, the paired ablations and the edit against each baseline,
the depth and exemplar-count tables, the split check and the run record (:mod:`modeledit.eval.science`).
Only reads the cells: nothing is recomputed.
"""
from __future__ import annotations

import argparse

from modeledit.commands.common import add_list, fraction, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    from modeledit.eval.intervals import N_BOOT
    from modeledit.eval.science import BUDGETS, PAPER_BUDGET

    p.add_argument("folders", nargs="+", help="bench folders, or folders holding them (a model's folders are merged)")
    p.add_argument("--sites", choices=["deepest", "all"], default="deepest",
                   help="the main comparison at each model's deepest site run, or selecting among all sites")
    p.add_argument("--out", required=True, help="folder for the summary CSVs, science.json and figures/")
    add_list(p, "--budgets", item=fraction, what="budget", default=list(BUDGETS),
             help="clean-accuracy budgets (fractions: 0.01 = 1 pp)")
    p.add_argument("--resample", choices=["units", "pairs"], default="units",
                   help="the bootstrap's first stage: units (pair x target x exemplars x seed) or concept-style pairs")
    p.add_argument("--n-boot", type=positive_int, default=N_BOOT, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    p.add_argument("--figure-budget", type=fraction, default=PAPER_BUDGET, help="the budget the figures show")


def run(args: argparse.Namespace) -> int:
    from modeledit.commands.common import check_out
    from modeledit.eval.science import write_science_summary

    check_out(args.out)
    result = write_science_summary(args.folders, args.out, args.budgets, n_boot=args.n_boot, seed=args.seed,
                                   figure_budget=args.figure_budget, sites=args.sites, resample=args.resample)
    print(f"wrote {args.out} ({len(result.summary)} summary rows, {result.selection['unit'].nunique()} units)")
    return 0
