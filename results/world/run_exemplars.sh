#!/usr/bin/env bash
# Exemplar-count ablation (figure 6-8): 1 and 10 exemplars (3 is in run.sh). Run for the committed results after run.sh.
set -euo pipefail
M=.venv/bin/modeledit
OUT=results/world
$M bench world_vgg --sensitivity $OUT/sensitivity/table.csv --max-pairs 2 --n-exemplars 1,10 \
    --methods edit,finetune_global --sites 3,4 --finetune-grid 1e-3:500 \
    --dataset world:test --clean world:val:900 --executor ray --workers 2 --out $OUT/bench_exemplars
$M bench-summary $OUT/bench_exemplars --budgets 0.0025,0.02
