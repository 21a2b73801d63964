"""The trainer itself on a GPU (skipped without one; scripts/gpu_check.sh runs them the day a GPU is lent):
bf16 and fp16 autocast (GradScaler, clipping, an injected NaN loss), trainer.compile=auto with every mixer
including Manifold Mixup, a checkpoint written on CUDA and evaluated on the CPU, the device cache held on
the GPU, and a two-GPU NCCL run under torchrun (skipped unless two GPUs are visible).

Tiny sizes throughout: these tests prove the paths run and agree, not speed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _trainer_utils import FAST, REPO, checkpoint, compose, folder_args, make_image_folder, run_cli, train

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

# FAST on the GPU: later overrides win, so these replace FAST's cpu/none.
GPU = FAST + ["trainer.device=cuda", "trainer.compile=false"]
MIXERS = sorted(p.stem for p in (REPO / "configs" / "mix").glob("*.yaml"))


def _finite_summary(summary: dict) -> None:
    assert summary["finished"] is True
    for key in ("top1", "nll", "ece", "train_images_per_sec"):
        assert math.isfinite(summary[key]), key


def _finite_weights(run_dir: Path) -> dict:
    ck = checkpoint(run_dir)
    for k, v in ck["model"].items():
        if v.is_floating_point():
            assert torch.isfinite(v).all(), k
            assert v.dtype == torch.float32, f"{k} is {v.dtype}: autocast must keep fp32 master weights"
    return ck


def test_bf16_default_run(tmp_path):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this card")
    summary = train(GPU + ["trainer.amp=bf16", "trainer.clip_grad=1.0"], tmp_path / "run")
    _finite_summary(summary)
    ck = _finite_weights(tmp_path / "run")
    assert ck["scaler"] is None  # bf16 needs no loss scaling


def test_amp_auto_picks_bf16_on_ampere_and_fp16_before(tmp_path):
    """What the README's GPUs section promises for trainer.amp=auto."""
    from mixcut.build import resolve_amp

    major, _ = torch.cuda.get_device_capability()
    expected = torch.bfloat16 if major >= 8 else torch.float16
    assert resolve_amp("auto", torch.device("cuda")) == expected


def test_fp16_grad_scaler_clipping_and_a_nan_loss(tmp_path):
    """fp16 + GradScaler + norm clipping; the 3rd loss is made NaN (runtime/faults.py): that update is skipped
    and counted, the run finishes with finite fp32 weights and a saved scaler state."""
    run_dir = tmp_path / "run"
    args = GPU + ["trainer.amp=fp16", "trainer.clip_grad=1.0", "trainer.epochs=1", f"hydra.run.dir={run_dir}"]
    proc = run_cli(args, cwd=tmp_path, env={"MIXCUT_FAULTS": "nan@loss=3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    _finite_summary(summary)
    assert summary["nonfinite_skipped"] == 1 and summary["global_step"] == 96 // 16 - 1
    ck = _finite_weights(run_dir)
    assert ck["scaler"] is not None and math.isfinite(float(ck["scaler"]["scale"])) and ck["scaler"]["scale"] > 0


@pytest.mark.parametrize("mixer", MIXERS)
def test_compile_auto_with_every_mixer(tmp_path, mixer):
    """trainer.compile=auto compiles on CUDA (TransMix and RecursiveMix stay eager); every mixer (Manifold
    Mixup's hidden-state hooks included, prob < 1 so the first forward may be unmixed) trains to finite weights."""
    extra = ["mix.prob=0.5"] if mixer == "manifold_mixup" else []
    if mixer == "transmix":  # needs class-token attention; auto leaves it eager (Mixer.eager_reason)
        extra = ["model.name=deit_tiny_patch16_224", "data.img_size=32"]
    args = GPU + ["trainer.compile=auto", "trainer.amp=auto", "trainer.epochs=1", f"mix={mixer}", *extra]
    summary = train(args, tmp_path / "run")
    _finite_summary(summary)
    _finite_weights(tmp_path / "run")


def test_checkpoint_saved_on_cuda_evaluates_on_cpu(tmp_path):
    """The CUDA run's own last validation and a CPU evaluation of its checkpoint agree (fp32 on both; cuDNN, or
    TF32 if enabled, may flip a near-tie: at most two of the 40 samples)."""
    gpu = train(GPU + ["trainer.amp=none"], tmp_path / "gpu")
    ckpt = tmp_path / "gpu" / "checkpoints" / "last.pt"
    cpu = train(FAST + ["trainer.eval_only=true", f"trainer.resume={ckpt}"], tmp_path / "cpu")
    assert cpu["val_samples"] == gpu["val_samples"]
    assert cpu["top1"] == pytest.approx(gpu["top1"], abs=2 * 100 / gpu["val_samples"] + 1e-6)
    assert cpu["nll"] == pytest.approx(gpu["nll"], rel=1e-2, abs=1e-3)
    script = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "evaluate.py"), str(ckpt), "trainer.device=cpu", "--out", str(tmp_path / "eval")],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="disabled"),
        timeout=300,
    )
    assert script.returncode == 0, script.stderr[-3000:]


def test_device_cache_on_the_gpu(tmp_path):
    """data.cache=device on CUDA: the decoded split is held on the GPU and augmented there."""
    root = make_image_folder(tmp_path / "data", classes=3, per_class=12, val_per_class=4)
    args = folder_args(root, "data.cache=device", f"data.cache_dir={tmp_path / 'cache'}", "data.num_workers=0")
    args += ["trainer.device=cuda", "trainer.batch_size=8", "trainer.epochs=2", "trainer.compile=false"]
    cfg = compose(args)
    assert cfg.data.cache == "device"
    summary = train(args, tmp_path / "run")
    _finite_summary(summary)
    assert list((tmp_path / "cache").rglob("*.mxc")), "the cache file was not written"


@pytest.mark.dist
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpu_nccl_torchrun(tmp_path):
    """torchrun with 2 processes on 2 GPUs (NCCL): one run directory, both ranks' states in the checkpoint,
    then a 1-GPU evaluation of it."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(REPO / "train.py")]
    cmd += GPU + ["trainer.amp=auto", "trainer.compile=auto", "trainer.sync_bn=true", f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO), WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    _finite_summary(summary)
    assert summary["world_size"] == 2
    ck = _finite_weights(run_dir)
    assert len(ck["mixer"]) == 2 and len(ck["rng"]) == 2
    one = train(GPU + ["trainer.eval_only=true", f"trainer.resume={run_dir / 'checkpoints' / 'last.pt'}"], tmp_path / "one")
    assert one["top1"] == pytest.approx(summary["top1"], abs=100 / one["val_samples"] + 1e-6)
