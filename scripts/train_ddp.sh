#!/usr/bin/env bash
# Single-node multi-GPU (or multi-process CPU) training with torchrun:
#   scripts/train_ddp.sh 8 data=imagenet data.root=/data/imagenet model.name=resnet50 aug=imagenet
# All ranks share one run directory, outputs/torchrun/<run id>, unless hydra.run.dir=DIR is given.
# MAX_RESTARTS=K lets torchrun restart the group after a worker failure; the restart resumes from last.pt.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 NPROC [overrides...]" >&2
  exit 2
fi
nproc=$1
shift
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m torch.distributed.run --standalone --nproc_per_node="$nproc" \
  --max-restarts="${MAX_RESTARTS:-0}" train.py "$@"
