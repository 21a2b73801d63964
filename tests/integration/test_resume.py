"""Exact resume: 2 epochs straight == 1 epoch, then resume for the second (bit for bit)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from _trainer_utils import FAST, assert_same_tensors, checkpoint, compose, folder_args, make_image_folder

from mixcut.checkpoint import load_checkpoint
from mixcut.trainer import run


def _weights(run_dir):
    return checkpoint(run_dir)["model"]


_assert_identical = assert_same_tensors


@pytest.mark.parametrize("mix", ["deit", "mixup"])
def test_resume_is_bit_identical_device_path(tmp_path, mix):
    common = FAST + [f"mix={mix}", "trainer.deterministic=true", "model.drop_rate=0.2"]
    run(compose(common), tmp_path / "straight")
    first = run(compose(common + ["trainer.stop_after_epoch=1"]), tmp_path / "split")
    assert first["finished"] is False
    # CPU time adds up over the segments: a made-up total for the first segment, then the second segment's own
    path = tmp_path / "split" / "checkpoints" / "last.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    assert ckpt["cpu_time_s"] > 0
    ckpt["cpu_time_s"] = 1e6
    torch.save(ckpt, path)
    before = time.process_time()
    resumed = run(compose(common + ["trainer.resume=auto"]), tmp_path / "split")
    second = time.process_time() - before
    assert resumed["epochs"] == 2
    _assert_identical(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    assert torch.equal(a["mixer"][0]["generators"]["cpu"], b["mixer"][0]["generators"]["cpu"])
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert 1e6 < resumed["cpu_time_s"] <= 1e6 + second


def test_resume_from_a_checkpoint_without_cpu_time_reports_it_unknown(tmp_path):
    """Checkpoints written before CPU time was recorded resume; the run's CPU time is then unknown (None),
    never a partial sum that would look like the whole run's cost."""
    common = FAST + ["trainer.epochs=2"]
    run(compose(common + ["trainer.stop_after_epoch=1"]), tmp_path / "old")
    path = tmp_path / "old" / "checkpoints" / "last.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    del ckpt["cpu_time_s"]
    torch.save(ckpt, path)
    resumed = run(compose(common + ["trainer.resume=auto"]), tmp_path / "old")
    assert resumed["epochs"] == 2 and resumed["cpu_time_s"] is None


def test_different_seed_gives_different_weights(tmp_path):
    run(compose(FAST + ["trainer.epochs=1"]), tmp_path / "a")
    run(compose(FAST + ["trainer.epochs=1", "trainer.seed=1"]), tmp_path / "b")
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_resume_is_bit_identical_worker_path(tmp_path):
    """Folder data decoded by 2 workers with random crops and flips."""
    data = make_image_folder(tmp_path / "data", classes=3, per_class=16, size=20)
    common = folder_args(
        data,
        "data.num_workers=2",
        "data.val_fraction=0.25",
        "trainer.batch_size=8",
        "trainer.epochs=2",
        "trainer.deterministic=true",
        "mix=deit",
    )
    run(compose(common), tmp_path / "straight")
    run(compose(common + ["trainer.stop_after_epoch=1"]), tmp_path / "split")
    run(compose(common + ["trainer.resume=auto"]), tmp_path / "split")
    _assert_identical(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))


def test_ema_and_accumulation_resume(tmp_path):
    common = FAST + [
        "trainer.deterministic=true",
        "trainer.ema=true",
        "trainer.ema_decay=0.9",
        "trainer.grad_accum_steps=2",
        "trainer.clip_grad=1.0",
        "sched.warmup_epochs=1",
        "trainer.epochs=3",
    ]
    run(compose(common), tmp_path / "straight")
    run(compose(common + ["trainer.stop_after_epoch=1"]), tmp_path / "split")
    summary = run(compose(common + ["trainer.resume=auto"]), tmp_path / "split")
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    _assert_identical(a["model"], b["model"])
    _assert_identical(a["ema"], b["ema"])
    assert "ema" in summary and set(summary["ema"]) == {"top1", "top5", "nll", "ece", "brier"}
