"""Multi-process training with torchrun on CPU (Gloo, 2 processes): one run directory across an elastic
restart after a killed worker, gradients equal to one process with the double batch, every validation sample
counted once, the world-size check on resume, the batch-norm statistics every rank validates. Four torchrun
launches; single-process runs happen in this process (no extra launch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from _trainer_utils import EXACT, REPO, checkpoint, epochs_logged, train

from mixcut.errors import ConfigError

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
def two_process_run(tmp_path_factory):
    """3 epochs on 2 ranks in torchrun's default run directory; rank 1 is SIGKILLed at its 7th step and
    torchrun restarts both workers once. Returns (the launch directory, the process)."""
    cwd = tmp_path_factory.mktemp("torchrun")
    proc = torchrun(
        SMALL + ["trainer.epochs=3", "trainer.batch_size=16", "mix=deit"],
        cwd=cwd,
        env={"MIXCUT_FAULTS": "kill@step=7", "MIXCUT_FAULTS_RANK": "1"},
        extra=["--max-restarts=1"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, proc


def _run_dir(cwd):
    run_dirs = [p for p in (cwd / "outputs").rglob("*") if (p / "summary.json").exists()]
    assert len(run_dirs) == 1, run_dirs
    return run_dirs[0]


def test_two_process_run_writes_one_run_directory(two_process_run):
    cwd, _ = two_process_run
    run_dir = _run_dir(cwd)  # one, even across the restart
    everything = sorted(str(p.relative_to(cwd)) for p in cwd.iterdir())
    assert everything == ["outputs"], everything  # no stray directories
    assert [p.name for p in (cwd / "outputs" / "torchrun").iterdir()] == [run_dir.name]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["val_samples"] == 101 and summary["finished"] is True
    for key in ("top1", "top5", "nll", "ece", "brier", "train_images_per_sec", "wall_time_s", "cpu_time_s"):
        assert isinstance(summary[key], float), key
    ck = checkpoint(run_dir)
    assert len(ck["mixer"]) == 2 and len(ck["rng"]) == 2  # each rank's mixer and random state
    assert not torch.equal(ck["mixer"][0]["generators"]["cpu"], ck["mixer"][1]["generators"]["cpu"])


def test_killed_worker_is_restarted_and_the_run_resumes(two_process_run):
    cwd, proc = two_process_run
    run_dir = _run_dir(cwd)
    assert "resumed from" in proc.stdout + proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["global_step"] == 3 * 3
    assert epochs_logged(run_dir) == [1, 2, 3]


def test_resume_with_another_world_size_is_refused(two_process_run, tmp_path):
    """A checkpoint of 2 processes resumed by 1 (in this process); the same check refuses 1 -> 2."""
    ckpt = _run_dir(two_process_run[0]) / "checkpoints" / "last.pt"
    with pytest.raises(ConfigError, match=r"was written by 2 process\(es\) but this run has 1"):
        train(SMALL + ["trainer.epochs=4", "trainer.batch_size=16", "mix=deit", f"trainer.resume={ckpt}"], tmp_path / "run")


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


def test_evaluation_counts_every_sample_once_at_world_size_two(tmp_path):
    train(SMALL + ["trainer.epochs=1", "trainer.batch_size=16"], tmp_path / "train")  # in this process
    ckpt = tmp_path / "train" / "checkpoints" / "last.pt"
    args = SMALL + ["trainer.eval_only=true", f"trainer.resume={ckpt}", "trainer.batch_size=16"]
    one = train(args, tmp_path / "eval1")
    proc = torchrun(args + [f"hydra.run.dir={tmp_path / 'eval2'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "eval2" / "summary.json").read_text())
    assert one["val_samples"] == two["val_samples"] == 101
    for key in ("top1", "top5", "nll", "ece", "brier"):
        assert one[key] == pytest.approx(two[key], rel=1e-5, abs=1e-6), key


def test_ranks_validate_the_batch_norm_statistics_rank_0_saves(tmp_path):
    """After the last step each rank's BatchNorm statistics include its own last batch; the validation
    of a 2-rank run must equal a 1-process evaluation of the checkpoint rank 0 saved."""
    run_dir = tmp_path / "two"
    args = SMALL + ["trainer.epochs=1", "trainer.batch_size=8", "trainer.ema=true"]
    proc = torchrun(args + [f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((run_dir / "summary.json").read_text())
    ckpt = run_dir / "checkpoints" / "last.pt"
    assert any(k.endswith("running_mean") for k in checkpoint(run_dir)["model"])  # a batch-norm network
    one = train(SMALL + ["trainer.eval_only=true", f"trainer.resume={ckpt}", "trainer.ema=true"], tmp_path / "one")
    for key in ("top1", "nll", "ece", "brier"):
        assert one[key] == pytest.approx(two[key], rel=1e-5, abs=1e-6), key
