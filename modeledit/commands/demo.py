"""``modeledit demo --out report/``: the main job on the embedded default, as a browsable report."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="report", help="report folder (index.html, results.json, one folder per section)")
    p.add_argument("--quick", action="store_true", help="a small version (about two minutes); the numbers are noisy")
    p.add_argument("--sections", default="sensitivity,bench,typographic,photos", help="comma-separated subset to run")


def run(args: argparse.Namespace) -> int:
    from modeledit.eval.demo import SECTIONS, DemoConfig, run_demo

    sections = tuple(s for s in args.sections.split(",") if s)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown demo sections {unknown}; valid: {list(SECTIONS)}")
    page = run_demo(args.out, DemoConfig.quick() if args.quick else DemoConfig(), sections=sections)
    results = json.loads((page.parent / "results.json").read_text())
    print("\nsummary")
    for sec in results["sections"]:
        print(f"  {sec['title']}")
        for k, v in sec["numbers"].items():
            print(f"    {k:<72} {v:.3f}" if isinstance(v, float) else f"    {k:<72} {v}")
    print(f"\nreport: {page}")
    return 0
