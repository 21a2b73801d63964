"""End to end: `python train.py` on a generated image folder, then the run directory."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _trainer_utils import make_image_folder, run_cli

from mixcut.checkpoint import load_checkpoint


@pytest.mark.slow
def test_folder_run_writes_complete_run_dir(tmp_path):
    data = make_image_folder(tmp_path / "data", classes=3, per_class=12, size=20)
    run_dir = tmp_path / "run"
    proc = run_cli(
        [
            "data=folder",
            f"data.root={data}",
            "data.img_size=16",
            "data.num_workers=2",
            "data.val_fraction=0.25",
            "model.name=resnet18",
            "trainer.epochs=1",
            "trainer.batch_size=8",
            "trainer.device=cpu",
            "aug=cifar",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
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
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["state"]["epoch"] == 1 and ckpt["state"]["batch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert "final validation metrics" in proc.stdout + proc.stderr and str(run_dir) in proc.stdout + proc.stderr
    assert "deit" in (run_dir / "config.yaml").read_text()


@pytest.mark.slow
def test_eval_only_reproduces_final_metrics(tmp_path):
    data = make_image_folder(tmp_path / "data", classes=2, per_class=8, size=16, val_per_class=5)
    run_dir = tmp_path / "run"
    common = [
        "data=folder",
        f"data.root={data}",
        "data.img_size=16",
        "data.num_workers=0",
        "model.name=cifar_resnet20",
        "trainer.batch_size=4",
        "trainer.device=cpu",
    ]
    first = run_cli(common + ["trainer.epochs=1", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = run_dir / "checkpoints" / "last.pt"
    second = run_cli(
        common + ["trainer.eval_only=true", f"trainer.resume={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}"], cwd=tmp_path
    )
    assert second.returncode == 0, second.stderr[-2000:]
    a = json.loads((run_dir / "summary.json").read_text())
    b = json.loads((tmp_path / "eval" / "summary.json").read_text())
    for key in ("top1", "top5", "nll", "ece", "brier"):
        assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-6), key
