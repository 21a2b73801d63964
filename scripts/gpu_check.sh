#!/usr/bin/env bash
# The GPU check: everything a CPU cannot prove, in one prepared run of at most ~10 minutes on one GPU.
#
#   scripts/gpu_check.sh OUTDIR              # on a machine with a CUDA GPU (one is enough)
#   scripts/gpu_check.sh OUTDIR --dry-run    # print the plan (each step's time limit and command), run nothing
#   scripts/gpu_check.sh OUTDIR --cpu-tiny   # every step at a toy size on the CPU: tests this script itself
#
# Steps, in order of importance (each with its own time limit; a failed or timed-out step is recorded and the
# next one runs; a step whose input is missing is skipped):
#   env          card, compute capability, torch/CUDA versions, nvidia-smi
#   train        python train.py for 3 epochs with the defaults (trainer.amp=auto, compile=auto, channels_last)
#   resume       the same run to 4 epochs with trainer.resume=auto
#   eval_cpu     scripts/evaluate.py on the run's last.pt with trainer.device=cpu (a CUDA checkpoint on the CPU)
#   fp16_fault   1 epoch with trainer.amp=fp16 (GradScaler), clipping and a NaN loss injected at step 3
#   host_sync    the host-sync budget tests (pytest -k host_sync; "absent" where there are none)
#   cuda_tests   python -m pytest -m cuda (mixers, evaluators, the trainer: tests/cuda)
#   bench_train  scripts/bench_train.py: resnet50, 224 px, bf16, channels-last, compile, DeiT mixing, synthetic
#                batches (img/s; one compilation)
#   bench_mix    scripts/bench_mix.py --device cuda
#   bench_compile scripts/bench_compile.py --device cuda (eager vs compiled, recompiles)
#
# Writes OUTDIR/gpu_check.json (every step's status, seconds and numbers, the environment) and
# OUTDIR/gpu_check.md (the same as a Markdown table, with the card's name), logs in OUTDIR/logs/.
# Environment: PYTHON (default python), BUDGET_S (total seconds, default 570), ONLY ("train resume ...": a subset),
# EXTRA (more overrides for the three training runs, e.g. "data=cifar10 data.root=/data/c10").
# Exit status: 0 when every step is ok (or absent), 1 otherwise; the report is written either way.
set -uo pipefail
if [ $# -lt 1 ] || [[ $1 == -* ]]; then
  echo "usage: $0 OUTDIR [--dry-run|--cpu-tiny]" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
MODE=${2:-gpu}
case $MODE in gpu | --dry-run | --cpu-tiny) ;; *) echo "unknown option $MODE (use --dry-run or --cpu-tiny)" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python}
BUDGET_S=${BUDGET_S:-570}
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=disabled
mkdir -p "$OUT/logs"
cat >"$OUT/logs/env.py" <<'EOF'
import json, platform, shutil, subprocess, sys
import torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "device_count": torch.cuda.device_count()}
if torch.cuda.is_available():
    info.update(card=torch.cuda.get_device_name(0), capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                bf16_supported=torch.cuda.is_bf16_supported(), memory_gib=round(torch.cuda.mem_get_info()[1] / 2**30, 1))
if shutil.which("nvidia-smi"):
    q = "name,driver_version,memory.total,power.limit"
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                                        capture_output=True, text=True).stdout.strip()
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps(info, indent=2))
EOF

read -r -a EXTRA_ARGS <<<"${EXTRA:-}"
# What differs between the real check and the toy CPU run of it.
if [ "$MODE" = --cpu-tiny ]; then
  DEV=cpu
  RUN=(trainer.device=cpu data=synthetic data.img_size=16 data.train_size=48 data.val_size=16 model.name=cifar_resnet20
       trainer.batch_size=16 data.num_workers=0)
  FP16=(trainer.amp=none)  # fp16's GradScaler is CUDA-only: the toy run keeps the fault and the clipping
  TESTS=(tests/cuda)
  BENCH_TRAIN=(--model cifar_resnet20 --img-size 16 --batch 4 --steps 1 --warmup 0 --workers 0 --amp none --num-classes 3)
  BENCH_MIX=(--device cpu --batch 4 --size 16 --repeats 1 --warmup 0 --no-step --dtypes float32)
  BENCH_COMPILE=(--device cpu --model cifar_resnet20 --size 16 --batch 4 --warmup 1 --steps 1 --eager-only)
  SYNC_TESTS=(tests/scripts/test_gpu_check.py)  # a file with no host_sync test: the "absent" path
else
  DEV=cuda
  RUN=(trainer.device=cuda)
  FP16=(trainer.amp=fp16 trainer.compile=false)
  TESTS=(tests)
  BENCH_TRAIN=(--model resnet50 --img-size 224 --batch 256 --steps 30 --warmup 10 --workers 8 --amp bf16 --channels-last
               --compile --num-classes 1000)
  BENCH_MIX=(--device cuda --repeats 10)
  BENCH_COMPILE=(--device cuda --batch 256 --mixers none,cutmix,manifold_mixup)
  SYNC_TESTS=(tests)
fi
RUN+=("${EXTRA_ARGS[@]}")

# ------------------------------------------------------------------ the plan
STEPS=()
declare -A LIMIT CMD NEEDS
add() {  # add NAME LIMIT_S NEEDS(file or -) COMMAND...
  local name=$1
  STEPS+=("$name")
  LIMIT[$name]=$2
  NEEDS[$name]=$3
  shift 3
  CMD[$name]=$(printf '%q ' "$@")
}
add env 60 - "$PY" "$OUT/logs/env.py" "$OUT/env.json"
add train 150 - "$PY" train.py "${RUN[@]}" trainer.epochs=3 trainer.progress=false "hydra.run.dir=$OUT/run"
add resume 90 "$OUT/run/checkpoints/last.pt" "$PY" train.py "${RUN[@]}" trainer.epochs=4 trainer.progress=false \
  trainer.resume=auto "hydra.run.dir=$OUT/run"
add eval_cpu 90 "$OUT/run/checkpoints/last.pt" "$PY" scripts/evaluate.py "$OUT/run/checkpoints/last.pt" \
  trainer.device=cpu --out "$OUT/eval_cpu"
add fp16_fault 90 - env MIXCUT_FAULTS=nan@loss=3 "$PY" train.py "${RUN[@]}" "${FP16[@]}" trainer.clip_grad=1.0 \
  trainer.epochs=1 trainer.progress=false "hydra.run.dir=$OUT/fp16"
add host_sync 60 - "$PY" -m pytest -q -p no:cacheprovider -k "host_sync or sync_budget" "${SYNC_TESTS[@]}"
add cuda_tests 240 - "$PY" -m pytest -q -m cuda -p no:cacheprovider --junitxml="$OUT/cuda_tests.xml" "${TESTS[@]}"
add bench_train 150 - "$PY" scripts/bench_train.py --paths synthetic --mixes deit "${BENCH_TRAIN[@]}" --device "$DEV" \
  --json "$OUT/bench_train.json"
add bench_mix 60 - "$PY" scripts/bench_mix.py "${BENCH_MIX[@]}" --json "$OUT/bench_mix.json"
add bench_compile 150 - "$PY" scripts/bench_compile.py "${BENCH_COMPILE[@]}"

selected() {
  [ -z "${ONLY:-}" ] && return 0
  [[ " $ONLY " == *" $1 "* ]]
}

if [ "$MODE" = --dry-run ]; then
  echo "gpu_check plan (budget ${BUDGET_S}s, output $OUT):"
  for name in "${STEPS[@]}"; do
    selected "$name" || continue
    printf '  %-14s %4ss  %s\n' "$name" "${LIMIT[$name]}" "${CMD[$name]}"
  done
  exit 0
fi

# ------------------------------------------------------------------ the run
: >"$OUT/steps.tsv"
START=$SECONDS
for name in "${STEPS[@]}"; do
  selected "$name" || continue
  left=$((BUDGET_S - (SECONDS - START)))
  limit=${LIMIT[$name]}
  ((limit > left)) && limit=$left
  status=""
  if ((limit < 10)); then
    status="skipped (time budget spent)"
  elif [ "${NEEDS[$name]}" != - ] && [ ! -e "${NEEDS[$name]}" ]; then
    status="skipped (no ${NEEDS[$name]#"$OUT"/})"
  fi
  if [ -n "$status" ]; then
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" 0 "" >>"$OUT/steps.tsv"
    echo "== $name: $status"
    continue
  fi
  echo "== $name (limit ${limit}s)"
  t0=$SECONDS
  timeout --kill-after=10 "$limit" bash -c "${CMD[$name]}" >"$OUT/logs/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status="timeout after ${limit}s" ;;
    *) status="failed (exit $rc)" ;;
  esac
  if [ "$name" = host_sync ] && [ $rc -eq 5 ]; then status="absent (no host_sync test)"; fi
  if [ "$name" = train ] && [ -f "$OUT/run/summary.json" ]; then cp "$OUT/run/summary.json" "$OUT/train_summary.json"; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" $((SECONDS - t0)) "$rc" >>"$OUT/steps.tsv"
  echo "   $status in $((SECONDS - t0))s (log: $OUT/logs/$name.log)"
done

# ------------------------------------------------------------------ the report
"$PY" - "$OUT" "$MODE" "${STEPS[@]}" <<'EOF'
import json, re, sys
from pathlib import Path

out, mode = Path(sys.argv[1]), sys.argv[2]
def load(p):
    try:
        return json.loads((out / p).read_text())
    except (OSError, ValueError):
        return None
def tail(name, n=3):
    try:
        lines = [ln for ln in (out / "logs" / f"{name}.log").read_text().splitlines() if ln.strip()]
    except OSError:
        return ""
    return " / ".join(lines[-n:])[-300:]

env = load("env.json") or {}
steps = {}
for line in (out / "steps.tsv").read_text().splitlines():
    name, status, seconds, rc = (line.split("\t") + [""] * 4)[:4]
    steps[name] = {"status": status, "seconds": int(seconds or 0), "result": ""}

if "env" in steps and env:
    steps["env"]["result"] = f"{env.get('card', 'no CUDA device')}, torch {env.get('torch')}, {env.get('device_count')} GPU(s)"
first, run, ev, fp16 = load("train_summary.json"), load("run/summary.json"), load("eval_cpu/last.json"), load("fp16/summary.json")
if "train" in steps and first:
    steps["train"]["result"] = f"top1 {first['top1']:.2f}, {first['train_images_per_sec']:.0f} img/s (compile time included)"
if "resume" in steps and run:
    ok = run.get("epochs") == 4 and run.get("finished")
    steps["resume"]["result"] = f"epochs {run.get('epochs')}, top1 {run['top1']:.2f}"
    if steps["resume"]["status"] == "ok" and not ok:
        steps["resume"]["status"] = "failed (did not reach epoch 4)"
if "eval_cpu" in steps and ev and run:
    top1 = ev.get("metrics", {}).get("top1", float("nan"))
    steps["eval_cpu"]["result"] = f"CPU top1 {top1:.2f} vs the run's {run['top1']:.2f}"
if "fp16_fault" in steps and fp16:
    steps["fp16_fault"]["result"] = f"skipped updates {fp16.get('nonfinite_skipped')}, top1 {fp16['top1']:.2f}"
    if steps["fp16_fault"]["status"] == "ok" and fp16.get("nonfinite_skipped") != 1:
        steps["fp16_fault"]["status"] = "failed (the NaN loss was not skipped once)"
for name in ("cuda_tests", "host_sync"):
    if name in steps:
        m = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error|deselected).*?)\s*=*$", (out / "logs" / f"{name}.log").read_text()
                       if (out / "logs" / f"{name}.log").exists() else "", re.M)
        steps[name]["result"] = m[-1] if m else tail(name, 1)
bt = load("bench_train.json")
if "bench_train" in steps and bt:
    steps["bench_train"]["result"] = ", ".join(f"mix {r['mix']}: {r['img_s']:.0f} img/s" for r in bt["results"])
    steps["bench_train"]["numbers"] = bt["results"]
bm = load("bench_mix.json")
if "bench_mix" in steps and bm:
    rows = [r for r in bm["rows"] if r.get("vs_timm") and r["dtype"] == "float32"]
    steps["bench_mix"]["result"] = "; ".join(f"{r['method']} {r['mode']} {r['ms']:.2f} ms ({r['vs_timm']:.2f}x timm)" for r in rows[:6])
if "bench_compile" in steps:
    rows = [ln for ln in ((out / "logs" / "bench_compile.log").read_text().splitlines()
            if (out / "logs" / "bench_compile.log").exists() else []) if re.match(r"^\S+\s+(eager|compiled)\s+[\d.]+ img/s", ln)]
    steps["bench_compile"]["result"] = "; ".join(re.sub(r"\s+", " ", r) for r in rows)[:400]
for name, s in steps.items():
    if not s["result"] and s["status"] != "ok":
        s["result"] = tail(name)

card = env.get("card", "no CUDA device")
report = {"mode": mode, "card": card, "environment": env, "steps": steps,
          "all_ok": all(s["status"] == "ok" or s["status"].startswith("absent") for s in steps.values())}
(out / "gpu_check.json").write_text(json.dumps(report, indent=2))
lines = [f"GPU check on **{card}** (compute capability {env.get('capability', '-')}), torch {env.get('torch')}, "
         f"CUDA {env.get('cuda')}" + (" — toy CPU run of the script" if mode == "--cpu-tiny" else ""), "",
         "| step | status | s | result |", "| --- | --- | ---: | --- |"]
for name, s in steps.items():
    lines.append(f"| {name} | {s['status']} | {s['seconds']} | {s['result'].replace('|', '/')} |")
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if report["all_ok"] else 1)
EOF
