#!/usr/bin/env bash
# The fastest CIFAR-10 on a CPU (issue 20): mixcut's airbench94 recipe (experiment=cifar10_airbench94) over N seeds,
# with and without test-time augmentation, and optionally the published airbench94 script as a peer on the same
# images, side by side (docs/throughput.md, "Fastest CIFAR-10 on a CPU"). Run it on a quiet machine.
#
#   scripts/reproduce/cifar10_airbench.sh [DATA_ROOT] [OUT_DIR]
#
# DATA_ROOT holds train/<class>/*.jpg (default /work/shared/data/cifar10-jpeg, else ../shared/data/cifar10-jpeg);
# mixcut holds out data.val_fraction=0.1 of it per class (45,000 / 5,000, fixed by data.split_seed=0).
# Steps (each skipped when its output exists, so rerunning resumes the measurement):
#   1. data preparation, timed: decode the split into mixcut's device cache and, with PEER, write it as airbench's
#      train.pt / test.pt under OUT_DIR/peer_data (scripts/reproduce/airbench_split.py): both read the same pixels.
#   2. mixcut: one process per seed of SEEDS (default "0 1 2 3 4"), eval.tta=flip_translate, so each summary.json
#      holds the plain top-1 (top1) and the 6-view TTA top-1 (tta_top1), time_to_top1, train img/s and wall time;
#      the whole process is timed from outside (process_s.txt).
#   3. PEER=/path/airbench94_cpu.py (the published legacy/airbench94.py changed only to fp32 on the CPU and to read
#      OUT_DIR/peer_data; kept outside the repository): one process per seed of PEER_SEEDS (default "0 1"), one run each.
#   4. OUT_DIR/results.md: mean +- std of every number over the seeds, both side by side.
# Environment: SEEDS, MIXES (default "none"; e.g. "none mixup cutmix" to measure what mixing does in this short
# schedule: every mix x every seed, under OUT_DIR/mixcut/<mix>/), PEER, PEER_SEEDS, THREADS (torch threads of both, default: all cores), EXTRA (more train.py
# overrides, e.g. "trainer.limit_train_batches=5 trainer.epochs=2" for a pilot), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
default_root=/work/shared/data/cifar10-jpeg
[ -d "$default_root" ] || default_root=../shared/data/cifar10-jpeg
ROOT=${1:-$default_root}
OUT=${2:-outputs/cifar10_airbench}
SEEDS=${SEEDS:-"0 1 2 3 4"}
MIXES=${MIXES:-none}
PEER=${PEER:-}
PEER_SEEDS=${PEER_SEEDS:-"0 1"}
THREADS=${THREADS:-$(nproc)}
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS="$THREADS"
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
COMMON=(experiment=cifar10_airbench94 "data.root=$ROOT" "trainer.threads=$THREADS" trainer.progress=false eval.tta=flip_translate)
mkdir -p "$OUT/mixcut" "$OUT/peer"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f\n", b - a }'; }

# 1. data preparation (decode once into the device cache; the peer's copy of the same pixels)
if [ ! -f "$OUT/prepare_s.txt" ]; then
    t0=$(now)
    "$PY" scripts/reproduce/airbench_split.py "$OUT/peer_data" "data.root=$ROOT" "${EXTRA_ARGS[@]}"
    elapsed "$t0" > "$OUT/prepare_s.txt"
fi

# 2. mixcut, one process per mix and seed
for m in $MIXES; do
    for s in $SEEDS; do
        dir="$OUT/mixcut/$m/seed$s"
        [ -f "$dir/summary.json" ] && [ -f "$dir/process_s.txt" ] && continue
        rm -rf "$dir"
        mkdir -p "$OUT/mixcut/$m"
        t0=$(now)
        "$PY" train.py "${COMMON[@]}" "mix=$m" "trainer.seed=$s" "hydra.run.dir=$dir" "${EXTRA_ARGS[@]}" > "$dir.log" 2>&1
        elapsed "$t0" > "$dir/process_s.txt"
    done
done

# 3. the peer, one process per seed
if [ -n "$PEER" ]; then
    for s in $PEER_SEEDS; do
        log="$OUT/peer/seed$s.log"
        grep -q '^RESULT ' "$log" 2>/dev/null && [ -f "$OUT/peer/seed$s.process_s.txt" ] && continue
        t0=$(now)
        AIRBENCH_DATA="$OUT/peer_data" AIRBENCH_RUNS=1 AIRBENCH_SEED="$s" AIRBENCH_LOGS="$OUT/peer/logs" \
            "$PY" "$PEER" > "$log" 2>&1
        elapsed "$t0" > "$OUT/peer/seed$s.process_s.txt"
    done
fi

# 4. the table
"$PY" - "$OUT" <<'PYEOF'
import json, platform, re, statistics, sys
from pathlib import Path

out = Path(sys.argv[1])
def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None
def ms(values, digits=2):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

runs = {}
for d in sorted((out / "mixcut").glob("*/seed*/")):
    if (d / "summary.json").exists() and (d / "process_s.txt").exists():
        s = json.loads((d / "summary.json").read_text())
        s["process_s"] = float((d / "process_s.txt").read_text())
        epochs = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines() if ln.strip()]
        epochs = [e for e in epochs if "train_seconds" in e]
        s["train_s"] = sum(e["train_seconds"] for e in epochs)
        s["epoch_img_s"] = statistics.median(e["train_images_per_sec"] for e in epochs)
        asked = re.search(r"^  amp: (\S+)", (d / "config.yaml").read_text(), re.M).group(1)
        ran = re.search(r", \w+(?::\d+)? (\w+), \d+ process", (d / "train.log").read_text())  # the run's header line
        s["amp"] = f"{asked} = {ran.group(1)}" if ran and ran.group(1) != asked else asked
        runs.setdefault(d.parent.name, []).append(s)
peer = []
row = re.compile(r"^\|\s*(?:\d+)?\s*\|\s*(\d+)\s*\|.*\|\s*([\d.]+)\s*\|$")  # | run | epoch | ... | total_time_seconds |
for log in sorted((out / "peer").glob("seed*.log")):
    text = log.read_text().splitlines()
    results = [ln for ln in text if ln.startswith("RESULT ")]
    if results:
        r = json.loads(results[-1][7:])
        r["process_s"] = float(log.with_name(log.stem + ".process_s.txt").read_text())
        cumulative = [float(m.group(2)) for m in map(row.match, text) if m]  # training time after each epoch
        r["train_s"] = cumulative[-1] if cumulative else None
        full = [b - a for a, b in zip(cumulative, cumulative[1:-1])]  # whole epochs after the first
        r["epoch_img_s"] = 45000 / statistics.median(full) if full else None
        peer.append(r)
prep = float((out / "prepare_s.txt").read_text()) if (out / "prepare_s.txt").exists() else None
peer_process = mean([p["process_s"] for p in peer])
def ratio(process):
    return f"{mean(process) / peer_process:.2f}" if peer_process and mean(process) else "-"
lines = [
    f"# CIFAR-10 airbench94 on this CPU ({platform.node()}, {platform.processor() or platform.machine()})", "",
    f"data preparation (decode into the cache + the peer's train.pt/test.pt, once): {prep:.1f} s" if prep else "", "",
    "| | runs | top-1 (%) | top-1 with TTA (%) | whole process (s) | vs the peer | training (s) | evaluation, start-up and the rest (s) | train img/s (median epoch) |",
    "|---|---|---|---|---|---|---|---|---|",
    *[
        f"| mixcut `experiment=cifar10_airbench94 mix={name}` (precision {mix[0]['amp']}) | {len(mix)} | {ms([m['top1'] for m in mix])} | "
        f"{ms([m.get('tta_top1') for m in mix])} | {ms([m['process_s'] for m in mix], 0)} | {ratio([m['process_s'] for m in mix])} | "
        f"{ms([m['train_s'] for m in mix], 0)} | {ms([m['process_s'] - m['train_s'] for m in mix], 0)} | {ms([m['epoch_img_s'] for m in mix], 0)} |"
        for name, mix in runs.items()
    ],
    f"| published airbench94.py (fp32 CPU, same images) | {len(peer)} | {ms([100 * p['val_acc'] for p in peer])} | "
    f"{ms([100 * p['tta_val_acc'] for p in peer])} | {ms([p['process_s'] for p in peer], 0)} | 1 | "
    f"{ms([p['train_s'] for p in peer], 0)} | {ms([p['process_s'] - p['train_s'] for p in peer if p['train_s']], 0)} | "
    f"{ms([p['epoch_img_s'] for p in peer], 0)} |",
    "",
    "Whole process: timed from outside (python start to exit). Training: mixcut's per-epoch train_seconds summed "
    "(metrics.jsonl), the peer's own timer at its last epoch (whitening included). The rest: start-up, cache load, "
    "per-epoch validation and the final plain + TTA evaluation. Train img/s: the median epoch (mixcut: the first step "
    "left out; the peer: its whole epochs after the first).",
]
if peer:
    p_plain, p_tta = mean([100 * p["val_acc"] for p in peer]), mean([100 * p["tta_val_acc"] for p in peer])
    for name, mix in runs.items():
        lines += ["", f"mix={name} - peer, mean top-1: plain {mean([m['top1'] for m in mix]) - p_plain:+.2f}, "
                  f"with TTA {mean([m.get('tta_top1') for m in mix]) - p_tta:+.2f} points (goal: at least -0.2); "
                  f"whole process {ratio([m['process_s'] for m in mix])}x the peer's (goal: at most 0.8)"]
for name, mix in runs.items():
    lines += ["", f"mix={name}: time to top-1 (s, mean over the runs that reached it): " + ", ".join(
        f"{th} %: {ms([m['time_to_top1'][th] for m in mix], 0)} ({sum(m['time_to_top1'][th] is not None for m in mix)}/{len(mix)})"
        for th in ("85", "90", "93", "94")) + f"; non-finite steps skipped: {sum(m.get('nonfinite_skipped', 0) for m in mix)}"]
(out / "results.md").write_text("\n".join(lines) + "\n")
print((out / "results.md").read_text())
PYEOF
