#!/usr/bin/env bash
# Behaviour fingerprint for refactors (ARCHITECTURE principle 9): SHA-256 of the final weights
# of fixed deterministic runs and of an evaluation's JSON. Run it before and after a
# restructuring; the printed hashes must be identical.
#
#   bash scripts/dev/fingerprint.sh [WORK_DIR]     (default: a fresh temporary directory)
#
# Needs no ../shared: the folder run uses the embedded digits set written out as PNGs. It runs in fp32:
# on a CPU with AVX512-BF16 (where trainer.amp=auto picks bf16) its bf16 kernels are not bitwise
# reproducible from run to run at this size, even with trainer.deterministic=true.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# A small class-folder data set: 30 digits images per class, 16x16 PNGs (no randomness).
"$PY" - "$WORK/folder" <<'EOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

root = Path(sys.argv[1]) / "train"
d = load_digits()
for label in range(10):
    (root / str(label)).mkdir(parents=True, exist_ok=True)
    for i, idx in enumerate(np.flatnonzero(d.target == label)[:30]):
        img = (d.images[idx] * (255 / 16)).astype(np.uint8)
        Image.fromarray(img).resize((16, 16), Image.NEAREST).convert("RGB").save(root / str(label) / f"{i:03d}.png")
EOF

weights_hash() {  # sha256 of the model tensors of a checkpoint, in key order
  "$PY" - "$1" <<'EOF'
import hashlib, sys, torch
sd = torch.load(sys.argv[1], map_location="cpu", weights_only=False)["model"]
h = hashlib.sha256()
for k in sorted(sd):
    h.update(k.encode()); h.update(sd[k].detach().cpu().contiguous().numpy().tobytes())
print(h.hexdigest())
EOF
}

"$PY" train.py trainer.epochs=2 trainer.deterministic=true trainer.progress=false \
  hydra.run.dir="$WORK/default" > "$WORK/default.log" 2>&1
echo "default 2 epochs      $(weights_hash "$WORK/default/checkpoints/last.pt")"

"$PY" train.py data=folder data.root="$WORK/folder" data.cache=device data.cache_dir="$WORK/cache" mix=cutmix trainer.amp=none \
  data.img_size=16 trainer.epochs=2 trainer.batch_size=32 trainer.deterministic=true trainer.progress=false \
  hydra.run.dir="$WORK/folder_run" > "$WORK/folder.log" 2>&1
echo "folder cache cutmix   $(weights_hash "$WORK/folder_run/checkpoints/last.pt")"

"$PY" scripts/evaluate.py "$WORK/default/checkpoints/last.pt" --out "$WORK/eval" > "$WORK/eval.log" 2>&1
"$PY" - "$WORK/eval/last.json" <<'EOF'
import hashlib, json, sys
r = json.load(open(sys.argv[1]))
for k in ("checkpoint", "out_dir", "wall_time_s", "seconds", "plot", "reliability_png"):
    r.pop(k, None)
print("evaluate.py json     ", hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest())
EOF
