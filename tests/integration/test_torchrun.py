"""Multi-process training with torchrun on CPU (Gloo, 2 processes): one run directory, gradients equal to
one process with the double batch, every validation sample counted once, world-size checks on resume and
an elastic restart after a killed worker. Single-process references run in this process (no extra launch)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from _trainer_utils import EXACT, REPO, checkpoint, epochs_logged, train

pytestmark = [pytest.mark.slow, pytest.mark.dist]

SMALL = EXACT + ["data.val_size=101"]  # 101: not a multiple of the world size or the batch


def torchrun(args: list[str], cwd, nproc: int = 2, env: dict | None = None, extra: list[str] = (), timeout: int = 300):
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    full_env.update(env or {})
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        *extra,
        str(REPO / "train.py"),
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout)


@pytest.fixture(scope="module")
def one_process_epoch(tmp_path_factory):
    """Epoch 1 of 2 of a single-process run (stopped there): a checkpoint written by one process."""
    run_dir = tmp_path_factory.mktemp("single") / "run"
    train(SMALL + ["trainer.epochs=2", "trainer.stop_after_epoch=1", "trainer.batch_size=16"], run_dir)
    return run_dir


def test_two_process_run_writes_one_run_directory(tmp_path):
    proc = torchrun(SMALL + ["trainer.epochs=1", "trainer.batch_size=16", "mix=deit"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = [p for p in (tmp_path / "outputs").rglob("*") if (p / "summary.json").exists()]
    assert len(run_dirs) == 1, run_dirs
    everything = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.iterdir())
    assert everything == ["outputs"], everything  # no stray directories
    assert [p.name for p in (tmp_path / "outputs" / "torchrun").iterdir()] == [run_dirs[0].name]
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["val_samples"] == 101 and summary["finished"] is True
    for key in ("top1", "top5", "nll", "ece", "brier", "train_images_per_sec", "wall_time_s"):
        assert isinstance(summary[key], float), key
    ck = checkpoint(run_dirs[0])
    assert len(ck["mixer"]) == 2 and len(ck["rng"]) == 2  # each rank's mixer and random state
    assert not torch.equal(ck["mixer"][0]["generators"]["cpu"], ck["mixer"][1]["generators"]["cpu"])


NO_BN = [
    "model.name=test_vit",
    "+model.kwargs.img_size=16",
    "+model.kwargs.patch_size=4",
    "mix=none",
    "aug=none",
    "loss.label_smoothing=0.1",
    "optim.weight_decay=1e-4",
    "trainer.epochs=1",
]


def test_gradients_match_single_process_with_double_batch(tmp_path):
    """2 ranks x batch b == 1 process x batch 2b, for a model without batch norm, mixing off."""
    two = tmp_path / "two"
    proc = torchrun(SMALL + NO_BN + ["trainer.batch_size=8", f"hydra.run.dir={two}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = tmp_path / "one"
    train(SMALL + NO_BN + ["trainer.batch_size=16"], one)
    a, b = checkpoint(two), checkpoint(one)
    assert a["state"]["global_step"] == b["state"]["global_step"] == 6
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5, msg=k)


def test_evaluation_counts_every_sample_once_at_world_size_two(tmp_path, one_process_epoch):
    ckpt = one_process_epoch / "checkpoints" / "last.pt"
    args = SMALL + ["trainer.eval_only=true", f"trainer.resume={ckpt}", "trainer.batch_size=16"]
    one = train(args, tmp_path / "eval1")
    proc = torchrun(args + [f"hydra.run.dir={tmp_path / 'eval2'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "eval2" / "summary.json").read_text())
    assert one["val_samples"] == two["val_samples"] == 101
    for key in ("top1", "top5", "nll", "ece", "brier"):
        assert one[key] == pytest.approx(two[key], rel=1e-5, abs=1e-6), key


def test_resume_with_another_world_size_is_refused(tmp_path, one_process_epoch):
    run_dir = tmp_path / "run"
    shutil.copytree(one_process_epoch, run_dir)
    proc = torchrun(
        SMALL + ["trainer.epochs=2", "trainer.batch_size=16", "trainer.resume=auto", f"hydra.run.dir={run_dir}"], cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "was written by 1 process(es) but this run has 2" in proc.stderr + proc.stdout


def test_killed_worker_is_restarted_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    proc = torchrun(
        SMALL + ["trainer.epochs=3", "trainer.batch_size=16", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={"MIXCUT_FAULTS": "kill@step=7", "MIXCUT_FAULTS_RANK": "1"},
        extra=["--max-restarts=1"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout + proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["global_step"] == 3 * 3
    assert epochs_logged(run_dir) == [1, 2, 3]
