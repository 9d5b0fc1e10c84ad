#!/usr/bin/env bash
# The science run of issue 14: editing vs fine-tuning (and PAINT, RRR) under the paper's protocol on both
# world classifiers, with strength grids, a 10,000-image clean set, several pairs and target classes, and
# per-image outcomes for intervals. Every step resumes where it stopped (rerun this script); each bench
# folder is one configuration. Splits (disjoint by construction, world scene index ranges):
#   pair selection: world:val (sensitivity)   bench exemplars/val/test: world:test   clean: world:clean
#   statistics C: world:train                 exemplars are never in val/test (split_pair)
# Stages run in order of importance, so an interrupted run has the main comparison first:
#   A  all methods at the deepest site, 3 exemplars: every admitted pair x 3 target classes (the full scale; first
#      run with the top 6 pairs, then extended to all: the folder resumes, its manifest records the growth)
#   C  exemplar counts 1 and 10 (figure 6-8): edit and PAINT/fine-tuning (global), deepest site
#   B  the edit (rank 1 and unrestricted) at an early and a middle site (figure 6-7; fine-tuning at those sites is
#      left out: at features.8 one cell evaluates the 10,000 clean images through most of the network per
#      strength or alpha, ~60 s a cell, and the five settings x three alphas would need ~1.5 h per classifier)
#   D  edit_adam (paper's solver, a stated subset of its grid: lr 1e-3 x 10,000 and 1e-4 x 20,000 steps) and RRR
#      (input-gradient penalty; lr 1e-3 and 1e-4 x 500 steps, lambda 10 and 100), deepest site
#   then studies.sh: the typographic and snow one-exemplar studies under the same rules
# Stated subsets (the ablations, issue 14 item 4), each a subset of A's units so an ablation compares like with
# like: C runs A's top 6 pairs (largest mean drop) x 3 target classes; B the 6 pairs x the first of A's 3 seeded target classes; D the
# top 3 pairs x that first target class (edit_adam's 10,000-20,000 steps per cell are the expensive part).
set -euo pipefail
cd "$(dirname "$0")/../../.."
ME=${MODELEDIT:-.venv/bin/modeledit}
OUT=results/world/science
STYLES="snow,wooden,graffiti,floral,fall colors,black and white"
CONCEPTS="road,grass,water,sky,sand,floor"
FT_GRID="1e-2:500,1e-3:500,1e-4:500,1e-5:800,1e-6:800"        # the paper's five fine-tuning settings
STRENGTHS="0.125,0.25,0.5,0.75,1"                              # fraction of the closed-form update
ALPHAS="0.25,0.5,1"                                            # PAINT; alpha = 1 is plain fine-tuning
ALL=(--max-pairs all --n-targets 3)                            # stage A
FULL=(--max-pairs 6 --n-targets 3)                             # stage C
PAIRS=(--max-pairs 6 --n-targets 1)                            # stage B
SUBSET=(--max-pairs 3 --n-targets 1)                           # stage D
COMMON=(--dataset world:test:1800 --clean world:clean:10000 --stats-dataset world:train:1500
        --strength-grid "$STRENGTHS" --alpha-grid "$ALPHAS"
        --finetune-grid "$FT_GRID" --max-clean-drop 0.0025 --executor local)
declare -A DEEP=([world_vgg]=4 [world_resnet]=3)
declare -A EARLY_MID=([world_vgg]="2,3" [world_resnet]="1,2")
MODELS=${MODELS:-"world_vgg world_resnet"}

for M in $MODELS; do   # selection, then the main comparison, one model at a time
  "$ME" sensitivity "$M" --dataset world:val:900 --concepts "$CONCEPTS" --styles "$STYLES" \
      --segmenter oracle --stylizer magenta --out "$OUT/$M/selection"
  "$ME" bench "$M" "${COMMON[@]}" "${ALL[@]}" --sensitivity "$OUT/$M/selection/table.csv" --n-exemplars 3 \
      --methods edit,edit_full,edit_masked,finetune_local,finetune_global,paint_local,paint_global \
      --sites="${DEEP[$M]}" --out "$OUT/$M/A_deep"
done
for M in $MODELS; do
  "$ME" bench "$M" "${COMMON[@]}" "${FULL[@]}" --sensitivity "$OUT/$M/selection/table.csv" --n-exemplars 1,10 \
      --methods edit,finetune_global,paint_global --sites="${DEEP[$M]}" --out "$OUT/$M/C_exemplars"
done
for M in $MODELS; do
  "$ME" bench "$M" "${COMMON[@]}" "${PAIRS[@]}" --sensitivity "$OUT/$M/selection/table.csv" --n-exemplars 3 \
      --methods edit,edit_full --sites="${EARLY_MID[$M]}" --out "$OUT/$M/B_sites"
done
for M in $MODELS; do
  "$ME" bench "$M" "${COMMON[@]}" "${SUBSET[@]}" --sensitivity "$OUT/$M/selection/table.csv" --n-exemplars 3 \
      --methods edit_adam,rrr_local,rrr_global --adam-grid 1e-3:10000,1e-4:20000 \
      --finetune-grid 1e-3:500,1e-4:500 --lambda-grid 10,100 --sites="${DEEP[$M]}" --out "$OUT/$M/D_adam_rrr"
done
# the one-exemplar studies (typographic attack, snow) under the same rules, then their RRR cells
[ -n "${SKIP_STUDIES:-}" ] || bash "$OUT/studies.sh" main
[ -n "${SKIP_STUDIES:-}" ] || bash "$OUT/studies.sh" rrr
