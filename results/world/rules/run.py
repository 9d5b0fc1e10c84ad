"""The rules study of issue 27 on the world: many rules in one solve and long sequences, against single edits.

Science rules (as results/world/science/run.sh): pairs selected on world:val by the paper's rule (the committed
selection table), exemplars / val / test from world:test:1800, clean change on world:clean:10000, statistics C from
world:train:1500; every admitted pair x 3 target classes is a rule (60 on world_vgg), at the deepest site.
Variants and outputs: see modeledit/eval/rules.py (module docstring). Resumable: rerun the same command and finished
variants / units are kept. Commits nothing itself.

    nice -n 19 .venv/bin/python results/world/rules/run.py --model world_vgg            # the full study
    .venv/bin/python results/world/rules/run.py --model world_vgg --max-rules 10 --clean world:clean:2000 --out /tmp/small
"""
from __future__ import annotations

import argparse
import logging
import sys

from modeledit.eval.bench import BenchConfig
from modeledit.rules import FORMS, PAST_MODES
from modeledit.eval.rules import VARIANTS, RulesStudyConfig, run_rules_study, write_figures

DEEP = {"world_vgg": "4", "world_resnet": "3"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="world_vgg", choices=sorted(DEEP))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--max-rules", type=int, default=None)
    ap.add_argument("--clean", default="world:clean:10000")
    ap.add_argument("--out", default=None, help="default results/world/rules/MODEL")
    ap.add_argument("--keep-form", default=None, choices=list(FORMS), help="sequence_keep: the update's form (default: SEQUENCE_DEFAULTS)")
    ap.add_argument("--norm-weight", type=float, default=None, help="sequence_keep: the absolute norm weight (default: SEQUENCE_DEFAULTS)")
    ap.add_argument("--past-weight", type=float, default=None, help="sequence_keep: the past keys' weight (default: SEQUENCE_DEFAULTS)")
    ap.add_argument("--past-mode", default=None, choices=list(PAST_MODES), help="sequence_keep: the past term's scaling (default: SEQUENCE_DEFAULTS)")
    ap.add_argument("--keep-train", action="store_true", help="sequence_keep: also keep the training statistics (K0)")
    ap.add_argument("--budget", type=float, default=0.01, help="single_sel/batch_sel/batch_k: clean-accuracy budget")
    ap.add_argument("--sites-per-pair", type=int, default=None, help="sites: only the first k rules of each pair (default all)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    m = args.model
    bench = BenchConfig(model=m, dataset="world:test:1800", clean=args.clean, stats_dataset="world:train:1500",
                        sensitivity=f"results/world/science/{m}/selection/table.csv", max_pairs=None, n_targets=3,
                        n_exemplars=[3], methods=["edit"], sites=[DEEP[m]], heldout_style_images=[])   # test: the exemplars' style image
    cfg = RulesStudyConfig(bench=bench, site=DEEP[m], variants=args.variants.split(","), max_rules=args.max_rules,
                           keep_form=args.keep_form, norm_weight=args.norm_weight, past_weight=args.past_weight, past_mode=args.past_mode,
                           keep_train=args.keep_train, budget=args.budget,
                           sites_per_pair=args.sites_per_pair)
    out = args.out or f"results/world/rules/{m}"
    summary = run_rules_study(cfg, out)
    write_figures(out)
    print(open(summary).read())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
