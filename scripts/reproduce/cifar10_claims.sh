#!/usr/bin/env bash
# The papers' claims at CPU scale: a small CIFAR-10 regime in which the no-mixing baseline overfits,
# every mixer on it, every evaluator on every final checkpoint (docs/results.md, "The claims").
#
#   scripts/reproduce/cifar10_claims.sh [SOURCE] [OUT_DIR]
#
# SOURCE holds <class>/*.jpg (default /work/shared/data/cifar10-jpeg/train, else ../shared/data/...).
# Data (symbolic links, made once under OUT_DIR/data):
#   c10/        train: TRAIN_PER_CLASS (500) images per class = 5,000; val: VAL_PER_CLASS (300) others per class
#   c10_train/  val/ = the training images, to measure the train-val gap of every run
#   canvas/     scripts/make_canvas_set.py: CANVAS_TRAIN_PER_CLASS objects per class pasted on CANVAS px clutter,
#               with boxes.txt (localization runs are trained on it in the same regime)
# Runs (each trained once; finished steps are skipped, so rerunning resumes the study):
#   MAIN_METHODS (default none, mixup, cutmix, deit)   x SEEDS_MAIN (default "0 1 2")
#   cutout, manifold_mixup, fmix, resizemix, saliencymix   first seed
#   mixup and cutmix at every alpha of ALPHAS (default "0.2 0.5"; the main runs use alpha 1.0)   first seed
#   canvas: CANVAS_METHODS (default "none mixup cutmix cutout")   first seed
# Evaluation of every final checkpoint: scripts/evaluate.py --claims (temperature scaling, FGSM/PGD on every
# ADV_EVERY-th validation image, occlusion on every OCC_EVERY-th, OOD vs noise/digits; localization on the canvas runs), the
# training-image evaluation (train-val gap), and, unless CORRUPTIONS=0, common corruptions on every 10th image.
# Output: OUT_DIR/results.md (tables, machine, wall time, commands), results.png, claims.png, cams.png.
#
# Budget (measured on the shared 2-core dev machine): cifar_resnet20 trains 5,000 32-px images at ~1,000 img/s when
# the machine is otherwise idle (4.8 s per epoch), ~320 img/s at load 3.5 and 30-80 img/s at load 7. Why 40 epochs:
# a 20-epoch pilot of the baseline still had train loss 0.85 and a falling validation NLL at epoch 15 (no
# overfitting yet), while 40 epochs overfit (issue 14: train loss 0.21). One run's evaluation (clean + corruptions
# on 300 + temperature + FGSM/PGD on 500 + occlusion on 1,000 + OOD + train split) takes ~1 min idle, 3-4 min at
# load 4.5. 21 CIFAR runs + 4 canvas runs (1,500 64-px images each, ~1.2 CIFAR runs) at 40 epochs: ~85 min of
# training and ~30 min of evaluation on an idle machine (~2 hours); a loaded machine multiplies that.
#
# Environment: EPOCHS (default 40), MODEL (cifar_resnet20), LR (0.1), WD (5e-4), BATCH (128), AMP (none; bf16
# measured no faster here: 328 vs 318 img/s), WARMUP (1),
# TRAIN_PER_CLASS, VAL_PER_CLASS, SEEDS_MAIN, MAIN_METHODS (the every-seed methods), ALPHAS, METHODS (the
# single-seed methods); an empty ALPHAS, METHODS or CANVAS_METHODS skips those runs,
# CANVAS, CANVAS_TRAIN_PER_CLASS (150), CANVAS_VAL_PER_CLASS (100), CANVAS_METHODS,
# ADV_EVERY (6: 500 images), OCC_EVERY (3: 1,000 images), PGD_STEPS (3), EVAL_BATCH (250; at most the training split), EVAL_EXTRA (more evaluate.py options), EXTRA (more train.py overrides, e.g.
# "trainer.limit_train_batches=2" for a smoke test), CORRUPTIONS (1), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
default_src=/work/shared/data/cifar10-jpeg/train
[ -d "$default_src" ] || default_src=../shared/data/cifar10-jpeg/train
SRC=${1:-$default_src}
OUT=${2:-outputs/cifar10_claims}
EPOCHS=${EPOCHS:-40}
MODEL=${MODEL:-cifar_resnet20}
LR=${LR:-0.1}
WD=${WD:-5e-4}
BATCH=${BATCH:-128}
AMP=${AMP:-none}
TRAIN_PER_CLASS=${TRAIN_PER_CLASS:-500}
VAL_PER_CLASS=${VAL_PER_CLASS:-300}
SEEDS_MAIN=${SEEDS_MAIN:-"0 1 2"}
ALPHAS=${ALPHAS-"0.2 0.5"}
CANVAS=${CANVAS:-64}
CANVAS_TRAIN_PER_CLASS=${CANVAS_TRAIN_PER_CLASS:-150}
CANVAS_VAL_PER_CLASS=${CANVAS_VAL_PER_CLASS:-100}
CANVAS_METHODS=${CANVAS_METHODS-"none mixup cutmix cutout"}
ADV_EVERY=${ADV_EVERY:-6}
OCC_EVERY=${OCC_EVERY:-3}
PGD_STEPS=${PGD_STEPS:-3}
CORRUPTIONS=${CORRUPTIONS:-1}
EVAL_BATCH=${EVAL_BATCH:-250}
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
read -r -a EVAL_ARGS <<< "${EVAL_EXTRA:-}"
read -r -a MAIN_SEEDS <<< "$SEEDS_MAIN"
S0=${MAIN_SEEDS[0]}
T_START=$(date +%s)

mkdir -p "$OUT/data"
[ -d "$OUT/data/c10/val" ] || "$PY" scripts/make_subset.py "$SRC" "$OUT/data/c10" --train-per-class "$TRAIN_PER_CLASS" \
    --val-per-class "$VAL_PER_CLASS" --train-as-val "$OUT/data/c10_train"
[ -z "${CANVAS_METHODS// }" ] || [ -f "$OUT/data/canvas/boxes.txt" ] || "$PY" scripts/make_canvas_set.py "$SRC" "$OUT/data/canvas" --canvas "$CANVAS" \
    --train-per-class "$CANVAS_TRAIN_PER_CLASS" --val-per-class "$CANVAS_VAL_PER_CLASS"

# one regime for every run; only mix= (and the data, for the canvas runs) differs
COMMON=(data=folder data.cache=device data.num_workers=2 data.val_fraction=0 aug=cifar "model.name=$MODEL"
        "trainer.epochs=$EPOCHS" "trainer.batch_size=$BATCH" "trainer.amp=$AMP" optim=sgd "optim.lr=$LR"
        "optim.weight_decay=$WD" sched=cosine "sched.warmup_epochs=${WARMUP:-1}" loss.label_smoothing=0.0 trainer.progress=false)
C10=("data.root=$OUT/data/c10" data.img_size=32 data.mean=[0.4914,0.4822,0.4465] data.std=[0.2470,0.2435,0.2616])
CANV=(data=canvas "data.root=$OUT/data/canvas" "data.img_size=$CANVAS")

declare -A MIX=(
  [none]="mix=none"
  [mixup]="mix=mixup mix.alpha=1.0"
  [cutmix]="mix=cutmix mix.alpha=1.0 mix.prob=0.5"
  [deit]="mix=deit"
  [cutout]="mix=cutout mix.size=16"
  [manifold_mixup]="mix=manifold_mixup"
  [fmix]="mix=fmix"
  [resizemix]="mix=resizemix"
  [saliencymix]="mix=saliencymix"
  [recursivemix]="mix=recursivemix mix.omega=0.1"  # the CIFAR setting of the authors' README
  [transmix]="mix=transmix"  # needs a ViT: MODEL=vit_tiny_patch16_224 with EXTRA giving patch 4 at 32 px
)
read -r -a SINGLE <<< "${METHODS-cutout manifold_mixup fmix resizemix saliencymix}"
read -r -a MAIN <<< "${MAIN_METHODS-none mixup cutmix deit}"

# JOBS: "run name|label|overrides"; first seed of everything first, so a study cut short has every method
JOBS=()
for m in "${MAIN[@]}" "${SINGLE[@]}"; do JOBS+=("$m-s$S0|$m|${MIX[$m]} trainer.seed=$S0"); done
for a in $ALPHAS; do
  JOBS+=("mixup_a$a-s$S0|mixup_a$a|mix=mixup mix.alpha=$a trainer.seed=$S0")
  JOBS+=("cutmix_a$a-s$S0|cutmix_a$a|mix=cutmix mix.alpha=$a mix.prob=0.5 trainer.seed=$S0")
done
for s in "${MAIN_SEEDS[@]:1}"; do
  for m in "${MAIN[@]}"; do JOBS+=("$m-s$s|$m|${MIX[$m]} trainer.seed=$s"); done
done
for m in $CANVAS_METHODS; do JOBS+=("canvas_$m-s$S0|$m|${MIX[$m]} trainer.seed=$S0"); done

for job in "${JOBS[@]}"; do
  IFS='|' read -r name label overrides <<< "$job"
  run="$OUT/runs/$name"
  if [[ $name == canvas_* ]]; then data=("${CANV[@]}"); else data=("${C10[@]}"); fi
  if [ ! -f "$run/summary.json" ]; then
    echo "== $run ($label)"
    # shellcheck disable=SC2086
    "$PY" train.py "${COMMON[@]}" "${data[@]}" $overrides "logger.run_name=$label" "hydra.run.dir=$run" \
        trainer.resume=auto "${EXTRA_ARGS[@]}" 2>&1 | tail -n 4
  fi
  ckpt="$run/checkpoints/last.pt"
  if [[ $name == canvas_* ]]; then
    [ -f "$run/eval/last.json" ] || "$PY" scripts/evaluate.py "$ckpt" --localization --temperature \
        "trainer.batch_size=$EVAL_BATCH" "${EVAL_ARGS[@]}" 2>&1 | tail -n 3
    continue
  fi
  if [ ! -f "$run/eval/last.json" ]; then
    corr=()
    [ "$CORRUPTIONS" = 1 ] && corr=(--corruptions --corruption-every 10)
    "$PY" scripts/evaluate.py "$ckpt" --claims --adversarial-every "$ADV_EVERY" --occlusion-every "$OCC_EVERY" \
        --pgd-steps "$PGD_STEPS" "${corr[@]}" \
        "trainer.batch_size=$EVAL_BATCH" "${EVAL_ARGS[@]}" 2>&1 | tail -n 12
  fi
  [ -f "$run/eval_train/last.json" ] || "$PY" scripts/evaluate.py "$ckpt" --out "$run/eval_train" \
      "data.root=$OUT/data/c10_train" "trainer.batch_size=$EVAL_BATCH" 2>&1 | tail -n 1
done

# tables and charts (CIFAR runs grouped by label; canvas runs on their own)
main_runs=() canvas_runs=()
for job in "${JOBS[@]}"; do  # in job order: the baseline first, then the main methods, variants, alphas
  name=${job%%|*}
  [ -f "$OUT/runs/$name/summary.json" ] || continue
  if [[ $name == canvas_* ]]; then canvas_runs+=("$OUT/runs/$name"); else main_runs+=("$OUT/runs/$name"); fi
done
title="CIFAR-10 JPEG subset ($((TRAIN_PER_CLASS * 10)) train / $((VAL_PER_CLASS * 10)) val), $MODEL, $EPOCHS epochs"
"$PY" scripts/summarize.py "${main_runs[@]}" --label logger.run_name --md "$OUT/table.md" --png "$OUT/results.png" \
    --claims-png "$OUT/claims.png" --verdicts-md "$OUT/verdicts.md" --title "$title" > /dev/null
rm -f "$OUT/table_canvas.md" "$OUT/verdicts_canvas.md"
[ ${#canvas_runs[@]} -eq 0 ] || "$PY" scripts/summarize.py "${canvas_runs[@]}" --label logger.run_name \
    --md "$OUT/table_canvas.md" --cams-png "$OUT/cams.png" --verdicts-md "$OUT/verdicts_canvas.md" \
    --title "canvas localization" > /dev/null
{
  echo "## The claims, at CPU scale: $title"
  echo
  echo "Machine: $(uname -m), $(nproc --all) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), torch $("$PY" -c 'import torch; print(torch.__version__)')."
  "$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
train = evals = 0.0
for run in sorted((out / "runs").glob("*/")):
    s = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    train += s.get("wall_time_s") or 0.0
    for ev in list((run / "eval").glob("*.json")) + list((run / "eval_train").glob("*.json")):
        evals += json.loads(ev.read_text()).get("wall_time_s") or 0.0
print(f"Wall time: training {train / 60:.1f} min, evaluation {evals / 60:.1f} min, total {(train + evals) / 60:.1f} min "
      f"over {len(list((out / 'runs').glob('*/')))} runs.")
EOF
  echo
  echo "Regime: every CIFAR run trains on the same $((TRAIN_PER_CLASS * 10)) images with \`${COMMON[*]}\`; only mix= differs."
  echo "The train-val gap is top-1 on the training images (no augmentation) minus validation top-1."
  echo
  echo "### The claims, one by one"
  echo
  cat "$OUT/verdicts.md"
  echo
  [ -f "$OUT/verdicts_canvas.md" ] && { cat "$OUT/verdicts_canvas.md"; echo; }
  cat "$OUT/table.md"
  echo
  if [ -f "$OUT/table_canvas.md" ]; then
    echo "### Localization on the canvas set (${CANVAS}px, $((CANVAS_TRAIN_PER_CLASS * 10)) training images)"
    echo
    cat "$OUT/table_canvas.md"
    echo
  fi
  echo "Study command: \`EPOCHS=$EPOCHS MODEL=$MODEL SEEDS_MAIN=\"$SEEDS_MAIN\" MAIN_METHODS=\"${MAIN[*]}\" METHODS=\"${SINGLE[*]}\" ALPHAS=\"$ALPHAS\" CANVAS_METHODS=\"$CANVAS_METHODS\" scripts/reproduce/cifar10_claims.sh $SRC $OUT\`"
  echo "(this script's own wall time in this invocation: $(( ($(date +%s) - T_START) / 60 )) min)"
} > "$OUT/results.md"
echo "written: $OUT/results.md, results.png, claims.png, cams.png"
