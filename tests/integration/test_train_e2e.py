"""End to end: `python train.py` on a generated image folder, then the run directory, then
`python train.py trainer.eval_only=true` on its checkpoint."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _trainer_utils import checkpoint, make_image_folder, run_cli

pytestmark = pytest.mark.slow

# A user's command on a small folder: default precision (trainer.amp=auto), decoding workers, a held-out split.
DATA = ["data=folder", "data.img_size=16", "data.num_workers=2", "data.val_fraction=0.25", "aug=cifar", "trainer.device=cpu"]


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """One epoch of resnet18 through the CLI; returns (the data folder, the run directory, the process)."""
    root = tmp_path_factory.mktemp("e2e")
    data = make_image_folder(root / "data", classes=3, per_class=12, size=20)
    run_dir = root / "run"
    args = [f"data.root={data}", "model.name=resnet18", "trainer.epochs=1", "trainer.batch_size=8", f"hydra.run.dir={run_dir}"]
    return data, run_dir, run_cli(DATA + args, cwd=root)


def test_folder_run_writes_complete_run_dir(folder_run):
    _, run_dir, proc = folder_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt", "train.log"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("top1", "top5", "nll", "ece", "brier", "train_images_per_sec", "wall_time_s"):
        assert isinstance(summary[key], float) and math.isfinite(summary[key]), key
    assert 0 <= summary["top1"] <= 100 and summary["train_images_per_sec"] > 0
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    for key in (
        "epoch",
        "lr",
        "train_loss",
        "train_images_per_sec",
        "train_seconds",
        "val_top1",
        "val_top5",
        "val_nll",
        "val_ece",
        "val_brier",
    ):
        assert key in rec and math.isfinite(rec[key]), key
    assert rec["epoch"] == 1
    ckpt = checkpoint(run_dir)
    assert ckpt["state"]["epoch"] == 1 and ckpt["state"]["batch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert "final validation metrics" in proc.stdout + proc.stderr and str(run_dir) in proc.stdout + proc.stderr
    assert "deit" in (run_dir / "config.yaml").read_text()


def test_eval_only_reproduces_final_metrics(folder_run, tmp_path):
    data, run_dir, first = folder_run
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = run_dir / "checkpoints" / "last.pt"
    args = [f"data.root={data}", "model.name=resnet18", "trainer.batch_size=8"]
    second = run_cli(
        DATA + args + ["trainer.eval_only=true", f"trainer.resume={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}"], cwd=tmp_path
    )
    assert second.returncode == 0, second.stderr[-2000:]
    a = json.loads((run_dir / "summary.json").read_text())
    b = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert a["val_samples"] == b["val_samples"] > 0  # the same held-out split
    for key in ("top1", "top5", "nll", "ece", "brier"):
        assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-6), key
