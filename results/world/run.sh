#!/usr/bin/env bash
# The full run on the benchmark world whose results are committed beside this file (README: "Results on the world").
# Run from the repository root after `make venv`:  bash results/world/run.sh   (every step resumes where it stopped)
set -euo pipefail
M=.venv/bin/modeledit
OUT=results/world
FT=1e-2:500,1e-3:500
$M sensitivity world_vgg --dataset world:test --concepts road,grass,water,sky,sand,floor \
    --styles "snow,wooden,graffiti,floral,fall colors,black and white" --out $OUT/sensitivity
$M typographic world_vgg_text --paster world_tag --attack-class car --dataset world:test:900 --clean world:val:900 \
    --methods edit,finetune_local,finetune_global --sites 2,3,4 --finetune-grid 1e-2:500,1e-3:500,1e-4:500 --out $OUT/typographic
# the paper's protocol: 3 exemplars, all methods and ablations (rank, mask), sites 2-4 (depth)
$M bench world_vgg --sensitivity $OUT/sensitivity/table.csv --max-pairs 2 --n-exemplars 3 \
    --methods edit,edit_full,edit_masked,finetune_local,finetune_global --sites 2,3,4 --finetune-grid $FT \
    --dataset world:test --clean world:val:900 --executor ray --workers 2 --out $OUT/bench
$M snow world_vgg --exemplar-class cow --clean world:val:900 --methods edit,finetune_local,finetune_global \
    --sites 3,4 --finetune-grid $FT --out $OUT/snow
# the budget only selects among finished cells: the paper's 0.25 pp and looser ones
$M bench-summary $OUT/bench --budgets 0.0025,0.01,0.02,0.05
