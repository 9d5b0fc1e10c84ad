"""``modeledit demo --out report/``: the main job on the embedded default, as a browsable report."""
from __future__ import annotations

import argparse
import json

from modeledit.commands.common import add_force_argument, add_list, check_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="report", help="report folder (index.html, results.json, one folder per section)")
    from modeledit.commands.common import add_device_arguments

    add_device_arguments(p)
    p.add_argument("--quick", action="store_true", help="a small version (about two minutes); the numbers are noisy")
    add_list(p, "--sections", default="sensitivity,bench,typographic,photos", what="section", help="subset of the sections to run")
    add_force_argument(p)


def run(args: argparse.Namespace) -> int:
    from modeledit.eval.demo import SECTIONS, DemoConfig, run_demo
    from modeledit.eval.report import format_value

    check_out(args.out)
    sections = tuple(args.sections)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown demo sections {unknown} in --sections; valid: {','.join(SECTIONS)}")
    from modeledit.outdir import prepare_out

    with prepare_out(args.out, command="demo", force=args.force):
        page = run_demo(args.out, DemoConfig.quick() if args.quick else DemoConfig(), sections=sections)
    results = json.loads((page.parent / "results.json").read_text())
    print("\nsummary")
    for sec in results["sections"]:
        print(f"  {sec['title']}")
        for k, v in sec["numbers"].items():
            print(f"    {k:<72} {format_value(v, k)}")
    print(f"\nreport: {page}")
    return 0
