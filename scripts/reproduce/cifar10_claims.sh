#!/usr/bin/env bash
# The papers' claims at CPU scale: a small CIFAR-10 regime in which the no-mixing baseline overfits,
# every mixer on it, every evaluator on every final checkpoint (docs/results.md, "The claims").
#
#   scripts/reproduce/cifar10_claims.sh [SOURCE] [OUT_DIR]
#
# SOURCE holds <class>/*.jpg (default /work/shared/data/cifar10-jpeg/train, else ../shared/data/...).
# Data (symbolic links or PNGs, made once under OUT_DIR/data):
#   c10/           train: TRAIN_PER_CLASS (500) images per class = 5,000; val: VAL_PER_CLASS (300) others per class
#   c10_train/     val/ = the training images, to measure the train-val gap of every run
#   open_known/    the open-set protocol's known classes OPENSET_KNOWN (train + val, the same counts per class)
#   open_heldout/  val/: VAL_PER_CLASS images of every other class of SOURCE, scored as out-of-distribution
#   canvas_shapes/ scripts/make_canvas_set.py --objects shapes: ten silhouettes cut out of natural images on
#                  CANVAS px clutter, CANVAS_TRAIN_PER_CLASS per class; boxes.txt = each silhouette's exact box
# Runs (each trained once; finished steps are skipped, so rerunning resumes the study):
#   MAIN_METHODS (default none, mixup, cutmix, deit)   x SEEDS_MAIN (default "0 1 2")
#   cutout, manifold_mixup, fmix, resizemix, saliencymix   first seed
#   mixup and cutmix at every alpha of ALPHAS (default "0.2 0.5"; the main runs use alpha 1.0)   first seed
#   open set: OPENSET_METHODS (default "none mixup cutmix") x SEEDS_MAIN, trained on the known classes only
#   canvas: CANVAS_METHODS (default "none cutmix") x SEEDS_MAIN, on the shape canvas set
# Evaluation of every final checkpoint: scripts/evaluate.py --claims (temperature scaling with ECE's sampling floor,
# FGSM/PGD on every ADV_EVERY-th validation image, occlusion on every OCC_EVERY-th, noise/digits OOD as a sanity
# check), the training-image evaluation (train-val gap), and, unless CORRUPTIONS=0, common corruptions on every 10th
# image; open-set runs: --ood with the held-out classes' folder; canvas runs: --localization --temperature.
# Output: OUT_DIR/results.md (the whole claims page: every table written by scripts/summarize.py, none by hand),
# results.png, claims.png, cams.png. IMG_PREFIX (default empty) goes before the PNG names in results.md
# (IMG_PREFIX=results/ when the PNGs are copied to docs/results/ beside docs/results.md).
#
# Budget (measured on the shared 2-core dev machine): cifar_resnet20 trains 5,000 32-px images at ~1,000 img/s when
# the machine is otherwise idle (4.8 s per epoch), ~320 img/s at load 3.5 and 30-80 img/s at load 7. Why 40 epochs:
# a 20-epoch pilot of the baseline still had train loss 0.85 and a falling validation NLL at epoch 15 (no
# overfitting yet), while 40 epochs overfit (issue 14: train loss 0.21). One run's evaluation (clean + corruptions
# on 300 + temperature + FGSM/PGD on 500 + occlusion on 1,000 + OOD + train split) takes ~1 min idle, 3-4 min at
# load 4.5. 21 CIFAR runs at 40 epochs: ~85 min of training and ~25 min of evaluation on an idle machine; the
# 9 open-set runs (3,000 images each) cost ~0.6 CIFAR run each, the 6 canvas runs (2,000 48-px images) ~0.9 each:
# about 3 hours in all on an idle machine; a loaded machine multiplies that. The same VM measured about 1.4x slower
# on 2026-12-07 (one thread: ~320 img/s per process): the host varies. Two instances may run side by side on
# disjoint runs (e.g. OMP_NUM_THREADS=1 with METHODS="" ALPHAS="" OPENSET_METHODS="" in one and MAIN_METHODS=""
# CANVAS_METHODS="" in the other, once the first has written OUT_DIR/data); a last plain invocation writes the page.
#
# Environment: EPOCHS (default 40), MODEL (cifar_resnet20), LR (0.1), WD (5e-4), BATCH (128), AMP (none; bf16
# measured no faster here: 328 vs 318 img/s), WARMUP (1),
# TRAIN_PER_CLASS, VAL_PER_CLASS, SEEDS_MAIN, MAIN_METHODS (the every-seed methods), ALPHAS, METHODS (the
# single-seed methods); an empty ALPHAS, METHODS, OPENSET_METHODS or CANVAS_METHODS skips those runs,
# OPENSET_KNOWN (default "airplane automobile deer frog horse truck": the first CIFAR-10 split of Vaze et al. 2022),
# CANVAS (48), CANVAS_TRAIN_PER_CLASS (200), CANVAS_VAL_PER_CLASS (100), CANVAS_METHODS,
# ADV_EVERY (6: 500 images), OCC_EVERY (3: 1,000 images), PGD_STEPS (3), EVAL_BATCH (250; at most the training split), EVAL_EXTRA (more evaluate.py options), EXTRA (more train.py overrides, e.g.
# "trainer.limit_train_batches=2" for a smoke test), CORRUPTIONS (1), IMG_PREFIX, PYTHON.
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
CANVAS=${CANVAS:-48}
CANVAS_TRAIN_PER_CLASS=${CANVAS_TRAIN_PER_CLASS:-200}
CANVAS_VAL_PER_CLASS=${CANVAS_VAL_PER_CLASS:-100}
CANVAS_METHODS=${CANVAS_METHODS-"none cutmix"}
OPENSET_METHODS=${OPENSET_METHODS-"none mixup cutmix"}
OPENSET_KNOWN=${OPENSET_KNOWN:-"airplane automobile deer frog horse truck"}
IMG_PREFIX=${IMG_PREFIX:-}
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
[ -z "${CANVAS_METHODS// }" ] || [ -f "$OUT/data/canvas_shapes/boxes.txt" ] || "$PY" scripts/make_canvas_set.py "$SRC" \
    "$OUT/data/canvas_shapes" --objects shapes --canvas "$CANVAS" --train-per-class "$CANVAS_TRAIN_PER_CLASS" \
    --val-per-class "$CANVAS_VAL_PER_CLASS"
# the open-set split: the known classes for training, every other class of SOURCE held out
read -r -a KNOWN <<< "$OPENSET_KNOWN"
HELDOUT=()
for d in "$SRC"/*/; do
  c=$(basename "$d"); [[ " ${KNOWN[*]} " == *" $c "* ]] || HELDOUT+=("$c")
done
if [ -n "${OPENSET_METHODS// }" ]; then
  known_csv=$(IFS=,; echo "${KNOWN[*]}"); heldout_csv=$(IFS=,; echo "${HELDOUT[*]}")
  [ -d "$OUT/data/open_known/val" ] || "$PY" scripts/make_subset.py "$SRC" "$OUT/data/open_known" --classes "$known_csv" \
      --train-per-class "$TRAIN_PER_CLASS" --val-per-class "$VAL_PER_CLASS"
  [ -d "$OUT/data/open_heldout/val" ] || "$PY" scripts/make_subset.py "$SRC" "$OUT/data/open_heldout" \
      --classes "$heldout_csv" --train-per-class 0 --val-per-class "$VAL_PER_CLASS"
fi

# one regime for every run; only mix= (and the data, for the canvas runs) differs
COMMON=(data=folder data.cache=device data.num_workers=2 data.val_fraction=0 aug=cifar "model.name=$MODEL"
        "trainer.epochs=$EPOCHS" "trainer.batch_size=$BATCH" "trainer.amp=$AMP" optim=sgd "optim.lr=$LR"
        "optim.weight_decay=$WD" sched=cosine "sched.warmup_epochs=${WARMUP:-1}" loss.label_smoothing=0.0 trainer.progress=false)
C10=("data.root=$OUT/data/c10" data.img_size=32 data.mean=[0.4914,0.4822,0.4465] data.std=[0.2470,0.2435,0.2616])
CANV=(data=canvas "data.root=$OUT/data/canvas_shapes" "data.img_size=$CANVAS")
OPEN=("data.root=$OUT/data/open_known" data.img_size=32 data.mean=[0.4914,0.4822,0.4465] data.std=[0.2470,0.2435,0.2616])

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
for s in "${MAIN_SEEDS[@]}"; do
  for m in $OPENSET_METHODS; do JOBS+=("open_$m-s$s|$m|${MIX[$m]} trainer.seed=$s"); done
  for m in $CANVAS_METHODS; do JOBS+=("canvas_$m-s$s|$m|${MIX[$m]} trainer.seed=$s"); done
done

for job in "${JOBS[@]}"; do
  IFS='|' read -r name label overrides <<< "$job"
  run="$OUT/runs/$name"
  case $name in canvas_*) data=("${CANV[@]}") ;; open_*) data=("${OPEN[@]}") ;; *) data=("${C10[@]}") ;; esac
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
  if [[ $name == open_* ]]; then
    [ -f "$run/eval/last.json" ] || "$PY" scripts/evaluate.py "$ckpt" --ood --ood-folder "$OUT/data/open_heldout/val" \
        --ood-n $((VAL_PER_CLASS * ${#HELDOUT[@]})) "trainer.batch_size=$EVAL_BATCH" "${EVAL_ARGS[@]}" 2>&1 | tail -n 6
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

# tables and charts (CIFAR runs grouped by label; open-set and canvas runs on their own)
main_runs=() open_runs=() canvas_runs=()
for job in "${JOBS[@]}"; do  # in job order: the baseline first, then the main methods, variants, alphas
  name=${job%%|*}
  [ -f "$OUT/runs/$name/summary.json" ] || continue
  case $name in
    canvas_*) canvas_runs+=("$OUT/runs/$name") ;;
    open_*) open_runs+=("$OUT/runs/$name") ;;
    *) main_runs+=("$OUT/runs/$name") ;;
  esac
done
title="CIFAR-10 JPEG subset ($((TRAIN_PER_CLASS * 10)) train / $((VAL_PER_CLASS * 10)) val), $MODEL, $EPOCHS epochs"
"$PY" scripts/summarize.py "${main_runs[@]}" --label logger.run_name --md "$OUT/table.md" --png "$OUT/results.png" \
    --claims-png "$OUT/claims.png" --verdicts-md "$OUT/verdicts.md" --curves-md "$OUT/curves.md" --title "$title" > /dev/null
rm -f "$OUT/table_canvas.md" "$OUT/verdicts_canvas.md" "$OUT/table_open.md" "$OUT/verdicts_open.md"
[ ${#open_runs[@]} -eq 0 ] || "$PY" scripts/summarize.py "${open_runs[@]}" --label logger.run_name \
    --md "$OUT/table_open.md" --verdicts-md "$OUT/verdicts_open.md" > /dev/null
[ ${#canvas_runs[@]} -eq 0 ] || "$PY" scripts/summarize.py "${canvas_runs[@]}" --label logger.run_name \
    --md "$OUT/table_canvas.md" --cams-png "$OUT/cams.png" --verdicts-md "$OUT/verdicts_canvas.md" \
    --title "shape canvas localization" > /dev/null
{
  echo "## The claims at CPU scale: $title"
  echo
  echo "Generated by \`scripts/reproduce/cifar10_claims.sh\`: every table below is written by \`scripts/summarize.py\` from the runs' JSON files."
  echo
  echo "Machine: $(uname -m), $(nproc --all) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), torch $("$PY" -c 'import torch; print(torch.__version__)')."
  "$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
train = evals = cpu = 0.0
cpu_missing = 0
for run in sorted((out / "runs").glob("*/")):
    s = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    train += s.get("wall_time_s") or 0.0
    if s and s.get("cpu_time_s") is None:
        cpu_missing += 1
    cpu += s.get("cpu_time_s") or 0.0
    for ev in list((run / "eval").glob("*.json")) + list((run / "eval_train").glob("*.json")):
        evals += json.loads(ev.read_text()).get("wall_time_s") or 0.0
n = len(list((out / "runs").glob("*/")))
print(f"Wall time: training {train / 60:.1f} min, evaluation {evals / 60:.1f} min, total {(train + evals) / 60:.1f} min "
      f"over {n} runs (summed per run: runs side by side or paused count in full). CPU time of training: "
      f"{cpu / 60:.1f} min" + (f" ({cpu_missing} runs did not record it)." if cpu_missing else "."))
PYEOF
  echo
  echo "Regime: every CIFAR run trains on the same $((TRAIN_PER_CLASS * 10)) images with \`${COMMON[*]}\`; only mix= differs."
  echo "The train-val gap is top-1 on the training images (no augmentation) minus validation top-1."
  echo
  echo "![claims: reliability before/after temperature scaling, occlusion and attack curves](${IMG_PREFIX}claims.png)"
  echo
  echo "![accuracy, ECE and corruption accuracy per method](${IMG_PREFIX}results.png)"
  echo
  echo "### The claims, one by one"
  echo
  cat "$OUT/verdicts.md"
  echo
  if [ -s "$OUT/curves.md" ]; then
    echo "### Occlusion curves (the CutMix paper's Figure 4 protocol; the claims table averages the informative sizes)"
    echo
    cat "$OUT/curves.md"
    echo
  fi
  if [ -f "$OUT/verdicts_open.md" ]; then
    echo "### Open-set detection of unseen natural images"
    echo
    echo "Protocol (Neal et al., ECCV 2018; Vaze et al., ICLR 2022): train on the known classes (${KNOWN[*]}; $TRAIN_PER_CLASS images per class, the same regime), then score the known classes' validation images as in-distribution and $VAL_PER_CLASS validation images of each held-out class (${HELDOUT[*]}) as out-of-distribution; AUROC of the max-softmax and energy scores. The noise/digits AUROC of the main table is a sanity check, not this claim."
    echo
    cat "$OUT/verdicts_open.md"
    echo
  fi
  if [ -f "$OUT/verdicts_canvas.md" ]; then
    echo "### Weakly-supervised localization on the shape canvas set (${CANVAS} px, $((CANVAS_TRAIN_PER_CLASS * 10)) training images)"
    echo
    echo "Ten classes of silhouettes (disk, square, triangle, ...) cut out of CIFAR images of any class and pasted at 30-55 % of the canvas side on low-contrast clutter (\`mixcut/data/canvas.py\`): the texture carries no class, and the ground-truth box is the exact bounding box of the silhouette's pixels. CAM boxes at threshold 0.2 (Top-1 Loc needs the right class and IoU >= 0.5), and GT-known Loc at each model's best threshold of 0.1-0.9 (MaxBoxAcc, Choe et al. 2020), since a fixed 0.2 suits large maps, not the 12x12 map of a small object."
    echo
    cat "$OUT/verdicts_canvas.md"
    echo
    echo "![CAM examples with ground-truth (green) and predicted (red) boxes](${IMG_PREFIX}cams.png)"
    echo
  fi
  echo "### Every run"
  echo
  sed 's/^### /#### /' "$OUT/table.md"  # summarize's headings one level down
  echo
  if [ -f "$OUT/table_open.md" ]; then
    echo "### Every open-set run (trained on ${KNOWN[*]})"
    echo
    sed 's/^### /#### /' "$OUT/table_open.md"
    echo
  fi
  if [ -f "$OUT/table_canvas.md" ]; then
    echo "### Every shape-canvas run"
    echo
    sed 's/^### /#### /' "$OUT/table_canvas.md"
    echo
  fi
  echo "Study command: \`EPOCHS=$EPOCHS MODEL=$MODEL SEEDS_MAIN=\"$SEEDS_MAIN\" MAIN_METHODS=\"${MAIN[*]}\" METHODS=\"${SINGLE[*]}\" ALPHAS=\"$ALPHAS\" OPENSET_METHODS=\"$OPENSET_METHODS\" CANVAS_METHODS=\"$CANVAS_METHODS\" scripts/reproduce/cifar10_claims.sh $SRC $OUT\`"
  echo "(this script's own wall time in this invocation: $(( ($(date +%s) - T_START) / 60 )) min)"
} > "$OUT/results.md"
echo "written: $OUT/results.md, results.png, claims.png, cams.png"
