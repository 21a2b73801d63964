#!/usr/bin/env bash
# Every mixer on the same short CIFAR-10 schedule, on one machine (docs/results.md).
#
#   scripts/reproduce/cifar10_mixers.sh [DATA_ROOT] [OUT_DIR]
#
# DATA_ROOT holds train/<class>/*.jpg (default ../shared/data/cifar10-jpeg); a
# class-balanced 10% of it (500 images per class, fixed by data.split_seed) is
# the validation split. Every run: the same model, schedule and seed list; only
# mix= differs. After training, each final checkpoint is evaluated with common
# corruptions, and the table and chart are written next to the runs.
# Environment: EPOCHS (default 10), MODEL (default cifar_resnet20), SEEDS_MAIN
# (seeds for none/mixup/cutmix/deit, default "0 1"), METHODS (subset, default all),
# EXTRA (more overrides for every run, e.g. "trainer.limit_train_batches=5" for a smoke test),
# EVAL_EXTRA (options and overrides for scripts/evaluate.py; default "--corruption-every 5":
# corruptions on a fixed fifth of the validation split, 1,000 images, to keep each run's
# evaluation near 1.5 minutes on 2 CPU cores; clean metrics always use all of it), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data/cifar10-jpeg}
OUT=${2:-outputs/cifar10_mixers}
EPOCHS=${EPOCHS:-10}
MODEL=${MODEL:-cifar_resnet20}
SEEDS_MAIN=${SEEDS_MAIN:-"0 1"}
PY=${PYTHON:-.venv/bin/python}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
read -r -a EVAL_ARGS <<< "${EVAL_EXTRA:---corruption-every 5}"

COMMON=(data=folder "data.root=$DATA" data.img_size=32 data.val_fraction=0.1 data.cache=device data.num_workers=2
        aug=cifar "model.name=$MODEL" "trainer.epochs=$EPOCHS" trainer.batch_size=128 trainer.amp=none
        optim=sgd optim.lr=0.2 optim.weight_decay=5e-4 sched=cosine sched.warmup_epochs=1
        loss.label_smoothing=0.0 trainer.progress=false)

# method -> extra overrides (paper defaults come from configs/mix/*.yaml)
declare -A EXTRA=(
  [none]="mix=none"
  [mixup]="mix=mixup mix.alpha=1.0"
  [cutmix]="mix=cutmix mix.alpha=1.0 mix.prob=0.5"
  [deit]="mix=deit"
  [manifold_mixup]="mix=manifold_mixup"
  [fmix]="mix=fmix"
  [resizemix]="mix=resizemix"
  [saliencymix]="mix=saliencymix"
  [cutout]="mix=cutout mix.size=16"
)
read -r -a ORDER <<< "${METHODS:-none mixup cutmix deit manifold_mixup fmix resizemix saliencymix cutout}"

mkdir -p "$OUT"
# Every method once with the first seed, then the other seeds of the main methods, so that a run
# cut short still has every method. Finished steps are skipped: rerun the script to continue.
read -r -a MAIN_SEEDS <<< "$SEEDS_MAIN"
JOBS=()
for method in "${ORDER[@]}"; do JOBS+=("$method:${MAIN_SEEDS[0]}"); done
for seed in "${MAIN_SEEDS[@]:1}"; do
  for method in "${ORDER[@]}"; do
    case $method in none|mixup|cutmix|deit) JOBS+=("$method:$seed") ;; esac
  done
done
for job in "${JOBS[@]}"; do
  method=${job%%:*} seed=${job##*:}
  run="$OUT/$method-s$seed"
  if [ ! -f "$run/summary.json" ]; then
    echo "== $run"
    # shellcheck disable=SC2086
    "$PY" train.py "${COMMON[@]}" ${EXTRA[$method]} "trainer.seed=$seed" "hydra.run.dir=$run" trainer.resume=auto \
        "${EXTRA_ARGS[@]}" 2>&1 | tail -n 4
  fi
  if [ ! -f "$run/eval/last.json" ]; then
    "$PY" scripts/evaluate.py "$run/checkpoints/last.pt" --corruptions trainer.batch_size=500 "${EVAL_ARGS[@]}" 2>&1 | tail -n 2
  fi
done
"$PY" scripts/summarize.py "$OUT"/*/ --md "$OUT/results.md" --png "$OUT/results.png" --title "CIFAR-10 (JPEG), $MODEL, $EPOCHS epochs"
