#!/usr/bin/env bash
# The typographic study of issue 15 (item 4; thesis figures 6-11, 6-12) on the world CLIP `clip:world-RN`, under the
# science run's rules (results/world/science/studies.sh). One exemplar per attack class: a world:test scene of another
# class with the attack class's name pasted on it (x') and the same scene with the blank patch (x). Methods: the
# rank-one edit and its mask-restricted ablation over the strength grid; local and global fine-tuning through the
# zero-shot logits at the paper's five (lr, steps) settings; PAINT (alpha grid) and RRR (lambda grid) of the baselines
# issue (#13). Site: `visual.layer4.0`, the ModifiedResNet's last block, whose conv3 is the layer before the attention
# pool (where the paper edited CLIP RN50; global fine-tuning trains that conv3 and everything after it). Settings are
# chosen on the validation attacked images within 0.25 pp of clean accuracy on the 10,000-image world:clean split
# (used for nothing else); statistics C from world:train:1500 (disjoint); the test numbers carry paired 95% intervals.
# The attack is the CLIP's own (`--paster world_clip`, the attack of `modeledit world clip-eval`): the word fitted to
# the image width in serif and handwriting (faces held out from the CLIP's training), in sans, and the world's tag as
# a band, the fonts taken in turn over the attacked images (accuracy under attack also per font); the exemplar in sans.
# Reported in each folder's summary.csv (the command prints the main columns): accuracy under attack (attack_acc,
# attack_acc_<font>), attack success (attack_success), clean accuracy (clean), the attack class's own clean images
# (own_class_acc), the same test images without text (orig_acc), and "text means the exemplar's class"
# (to_exemplar_class; spurious_rule = its rise). First, `modeledit world clip-eval` on the same checkpoint (does a
# pasted class name flip it at all? every class name, every font) into <out>/clip_eval.
# Stated subsets: the deepest site (the edit also one block earlier, in <attack class>_layer3/); one exemplar and one
# seed per attack class for the comparison (the edit alone also with seeds 1 and 2, at both sites); attack classes "car" (the
# attack class of the world_vgg_text study) and "airplane" (a long name; which words a new CLIP reads best is not
# known before it exists); world:test:900 (per attack class about 600 attacked test images, 250 validation ones and
# 50 clean images of the attack class); RRR on three of the five rates (as in studies.sh).
# Checkpoint: MODELEDIT_CLIP_WEIGHTS (default: the shipped eval/world/zoo/clip_world-RN.pt), e.g.
#     MODELEDIT_CLIP_WEIGHTS=/work/clip_runs/clip_parrot2.pt nice -n 10 bash results/world/clip_typographic/run.sh
# Results go to results/world/clip_typographic/<checkpoint file name>/ (OUT= to change): <attack class>/,
# <attack class>_rrr/, <attack class>_layer3/ and <attack class>_<layer>_seed<seed>/ per attack class; the
# checkpoint's sha256 is kept there, another file of the same name is refused.
# Run time, from smoke runs on this 2-core machine with a training job on the other core (one thread, nice 10): per
# attack class two comparison folders (main, RRR), each ~82 s to render, paste, evaluate the unedited model and cache the site's
# inputs; 62 evaluations at ~5.5 s (12,650 images each, from the site's cached inputs); 20 fine-tunings (~2.5 s local,
# ~5.5 s global per 500 steps) and 12 RRR trainings (~20 s / ~24 s per 500 steps): ~15.5 min per attack class, ~1 min
# for clip-eval, ~32 min predicted (a 2-cell check at full size, predicted 141 s, took 142 s); measured (run.log): 31 min
# for the four comparison folders, 6 min for the layer3 ablation; each seed folder ~3 min. Resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ME=${MODELEDIT:-.venv/bin/modeledit}
WEIGHTS=${MODELEDIT_CLIP_WEIGHTS:-eval/world/zoo/clip_world-RN.pt}
ATTACK_CLASSES=${ATTACK_CLASSES:-car airplane}
OUT=${OUT:-results/world/clip_typographic/$(basename "$WEIGHTS" .pt)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}      # one core: two threads measured several times slower beside a busy core
# sizes and grids (overridable for a smoke run; the defaults are the study)
DATASET=${DATASET:-world:test:900}
CLEAN=${CLEAN:-world:clean:10000}
STATS=${STATS:-world:train:1500}
CLIP_EVAL_N=${CLIP_EVAL_N:-1800}
FT_GRID=${FT_GRID:-1e-2:500,1e-3:500,1e-4:500,1e-5:800,1e-6:800}   # the paper's five fine-tuning settings
RRR_GRID=${RRR_GRID:-1e-3:500,1e-4:500,1e-5:800}                  # RRR's subset of them
STRENGTHS=${STRENGTHS:-0.125,0.25,0.5,0.75,1}                       # fraction of the closed-form update
ALPHAS=${ALPHAS:-0.25,0.5,1}                                        # PAINT; alpha = 1 is plain fine-tuning
LAMBDAS=${LAMBDAS:-10,100}                                          # RRR's relative penalty weights

if [ ! -f "$WEIGHTS" ]; then echo "run.sh: world CLIP checkpoint $WEIGHTS does not exist" >&2; exit 2; fi
mkdir -p "$OUT"
SHA=$(sha256sum "$WEIGHTS" | cut -d' ' -f1)
if [ -f "$OUT/weights.sha256" ] && [ "$(cut -d' ' -f1 "$OUT/weights.sha256")" != "$SHA" ]; then
    echo "run.sh: $OUT holds results of another checkpoint named $(basename "$WEIGHTS") (sha256 differs); set OUT= or move it" >&2
    exit 2
fi
echo "$SHA  $WEIGHTS" > "$OUT/weights.sha256"

[ -f "$OUT/clip_eval/eval.json" ] || "$ME" world clip-eval --weights "$WEIGHTS" --n-test "$CLIP_EVAL_N" --out "$OUT/clip_eval"

COMMON=(--weights "$WEIGHTS" --paster world_clip --fonts serif,hand,sans,world --dataset "$DATASET" --clean "$CLEAN"
        --stats-dataset "$STATS" --sites visual.layer4.0 --strength-grid "$STRENGTHS" --alpha-grid "$ALPHAS"
        --lambda-grid "$LAMBDAS" --max-clean-drop 0.0025)
for ATTACK in $ATTACK_CLASSES; do
    "$ME" typographic clip:world-RN --attack-class "$ATTACK" "${COMMON[@]}" --finetune-grid "$FT_GRID" \
        --methods edit,edit_masked,finetune_local,finetune_global,paint_local,paint_global --out "$OUT/$ATTACK"
    # RRR on its subset of rates: its cells share the folder's configuration only by method, so its own folder
    "$ME" typographic clip:world-RN --attack-class "$ATTACK" "${COMMON[@]}" --finetune-grid "$RRR_GRID" \
        --methods rrr_local,rrr_global --out "$OUT/${ATTACK}_rrr"
done
# Ablation by site: the edit (and its mask-only variant) one block earlier, at visual.layer3.0 (the paper edited
# CLIP's last block; is the text feature easier to cancel before it merges into layer4's skip path?). Its own folder
# per attack class, the same grids, exemplar and rules.
for ATTACK in $ATTACK_CLASSES; do
    "$ME" typographic clip:world-RN --attack-class "$ATTACK" "${COMMON[@]/visual.layer4.0/visual.layer3.0}" \
        --finetune-grid "$FT_GRID" --methods edit,edit_masked --out "$OUT/${ATTACK}_layer3"
done
# Other exemplars: the edit (both objectives) at both sites with seeds EXTRA_SEEDS (each seed draws another
# exemplar scene, other text placements and another validation/test split of the same images). Folders
# <attack class>_<layer>_seed<seed>.
for SEED in ${EXTRA_SEEDS:-1 2}; do
    for ATTACK in $ATTACK_CLASSES; do
        for LAYER in layer4 layer3; do
            "$ME" typographic clip:world-RN --attack-class "$ATTACK" "${COMMON[@]/visual.layer4.0/visual.$LAYER.0}" \
                --finetune-grid "$FT_GRID" --methods edit,edit_masked --seed "$SEED" --out "$OUT/${ATTACK}_${LAYER}_seed$SEED"
        done
    done
done
# Where the attacked test images go after each chosen edit: <out>/destinations.json (rebuilds each study from its
# manifest; skips folders already in the file; ~1 min per attack class and seed).
"${PYTHON:-.venv/bin/python}" results/world/clip_typographic/destinations.py "$OUT"
