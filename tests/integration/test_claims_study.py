"""scripts/reproduce/cifar10_claims.sh end to end on a tiny generated folder: every run is trained
and evaluated (an open-set run on two of the three classes among them), the tables are written,
and a rerun skips what is finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _trainer_utils import REPO, make_image_folder

pytestmark = pytest.mark.slow


def _study(src, out, **env):
    full = dict(
        os.environ,
        PYTHON=sys.executable,
        WANDB_MODE="disabled",
        EPOCHS="2",
        WARMUP="0",
        BATCH="8",
        TRAIN_PER_CLASS="6",
        VAL_PER_CLASS="4",
        SEEDS_MAIN="0",
        MAIN_METHODS="none cutmix",
        METHODS="",
        ALPHAS="",
        CANVAS_METHODS="",
        OPENSET_METHODS="none",
        OPENSET_KNOWN="class_0 class_1",
        CORRUPTIONS="0",
        EVAL_BATCH="12",
        ADV_EVERY="1",
        OCC_EVERY="1",
        PGD_STEPS="1",
        **env,
    )
    cmd = ["bash", str(REPO / "scripts/reproduce/cifar10_claims.sh"), str(src), str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=600)


def test_study_script_trains_evaluates_and_tabulates_then_resumes(tmp_path):
    src = make_image_folder(tmp_path / "src", classes=3, per_class=10, size=32) / "train"
    out = tmp_path / "study"
    proc = _study(src, out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for run in ("none-s0", "cutmix-s0"):
        assert (out / "runs" / run / "checkpoints/last.pt").is_file()
        assert (out / "runs" / run / "eval/last.json").is_file()  # the claims evaluation
        assert (out / "runs" / run / "eval_train/last.json").is_file()  # the train-val gap
    # the open set: trained on two classes, the third class's images scored as OOD
    assert sorted(p.name for p in (out / "data/open_known/train").iterdir()) == ["class_0", "class_1"]
    assert [p.name for p in (out / "data/open_heldout/val").iterdir()] == ["class_2"]
    ood = json.loads((out / "runs/open_none-s0/eval/last.json").read_text())["ood"]
    assert ood["natural_sets"] == ["folder:val"] and ood["sets"]["folder:val"]["n"] == 4
    results = (out / "results.md").read_text()
    assert "none" in results and "cutmix" in results and "gap" in results.lower()
    assert "Open-set detection" in results and "open-set AUROC MSP" in results and "Welch" in results
    assert "Localization on the canvas set" not in results  # no canvas runs were asked for
    assert not (out / "data/canvas").exists()
    # a rerun finds every run finished: nothing is trained or evaluated again
    again = _study(src, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "== " not in again.stdout
