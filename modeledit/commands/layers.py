"""``modeledit layers MODEL [--json]``: list the edit sites."""
from __future__ import annotations

import argparse
import json

from modeledit.commands.common import add_device_arguments, add_model_arguments, load_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print a JSON list of sites")
    add_device_arguments(p, precision=False)


def run(args: argparse.Namespace) -> int:
    from modeledit.layers import list_sites

    lm = load_from_args(args)
    sites = list_sites(lm.model)
    if args.json:
        print(json.dumps([s.to_dict() for s in sites], indent=1))
        return 0
    print(f"{lm.name}: {len(sites)} edit sites")
    print(f"{'index':>5}  {'name':<28} {'kind':<6} {'rewritten layer':<32} {'keys':>5} {'values':>6}  skip")
    for s in sites:
        print(f"{s.index:>5}  {s.name:<28} {s.kind:<6} {s.layer:<32} {s.key_channels:>5} {s.value_channels:>6}  {s.skip or '-'}")
    return 0
