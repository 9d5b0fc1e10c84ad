"""``modeledit report RESULTS_DIR [--out DIR]``: build the HTML report from harness outputs."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", help="folder holding harness outputs (each with a summary.json)")
    p.add_argument("--out", default=None, help="where to write index.html and results.json (default: RESULTS)")
    p.add_argument("--title", default="modeledit report")


def run(args: argparse.Namespace) -> int:
    from modeledit.commands.common import check_out
    from modeledit.eval.report import build_report

    check_out(args.out)

    print(build_report(args.results, args.out, args.title))
    return 0
