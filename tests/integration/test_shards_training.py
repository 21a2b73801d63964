"""Training from WebDataset shards end to end (issue 13)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from _trainer_utils import REPO, compose, make_image_folder

from mixcut.checkpoint import load_checkpoint
from mixcut.trainer import run

_spec = importlib.util.spec_from_file_location("make_shards", REPO / "scripts" / "make_shards.py")
make_shards = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_shards)


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """27 train images in 7 uneven shards (4 x 6 + 3: the last rank's range crosses a short shard), 12 val images."""
    tmp = tmp_path_factory.mktemp("shards")
    src = make_image_folder(tmp / "src", classes=3, per_class=9, size=16, val_per_class=4)
    make_shards.main([str(src), str(tmp / "out"), "--shard-size", "4"])
    return tmp / "out"


def overrides(out, *extra) -> list[str]:
    index = json.loads((out / "index.json").read_text())
    return [
        "data=shards",
        f"data.train_shards='{out / index['splits']['train']['pattern']}'",
        f"data.val_shards='{out / index['splits']['val']['pattern']}'",
        "data.img_size=16",
        "data.num_workers=0",
        "model.name=cifar_resnet20",
        "aug=cifar",
        "trainer.batch_size=4",
        "trainer.epochs=2",
        "trainer.progress=false",
        "trainer.device=cpu",
        "trainer.amp=none",
        "trainer.deterministic=true",
        *extra,
    ]


def test_resume_at_epoch_boundary_equals_uninterrupted(shard_dir, tmp_path):
    straight = run(compose(overrides(shard_dir)), run_dir=tmp_path / "a")
    first = run(compose(overrides(shard_dir, "trainer.stop_after_epoch=1")), run_dir=tmp_path / "b")
    assert first["finished"] is False
    resumed = run(compose(overrides(shard_dir, "trainer.resume=auto")), run_dir=tmp_path / "b")
    assert straight["finished"] and resumed["finished"]
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight["top1"] == resumed["top1"] and straight["val_samples"] == 12


def _python(args, cwd, nproc=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    head = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        if nproc
        else [sys.executable]
    )
    return subprocess.run([*head, str(REPO / "train.py"), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=400)


@pytest.mark.slow
@pytest.mark.dist
def test_two_ranks_over_uneven_shards_same_batches_and_validation_as_one_process(shard_dir, tmp_path):
    # no batch norm: each rank's running statistics would differ after the last step and so would its validation
    no_bn = ["model.name=test_vit", "+model.kwargs.img_size=16", "+model.kwargs.patch_size=4"]
    two = tmp_path / "two"
    proc = _python(overrides(shard_dir, "data.num_workers=1", *no_bn, f"hydra.run.dir={two}"), tmp_path, nproc=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(two / "checkpoints" / "last.pt")
    # both ranks ran (27 // 2) // 4 = 3 batches in each of the 2 epochs: DDP's collectives would hang otherwise
    assert ckpt["state"]["global_step"] == 2 * 3
    lines = [json.loads(ln) for ln in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_images"] for r in lines if "train_images" in r] == [24, 24]
    summary = json.loads((two / "summary.json").read_text())
    one = tmp_path / "one"
    resume = f"trainer.resume={two / 'checkpoints' / 'last.pt'}"
    args = overrides(shard_dir, *no_bn, "trainer.eval_only=true", resume, f"hydra.run.dir={one}")
    proc = _python(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads((one / "summary.json").read_text())
    assert summary["val_samples"] == single["val_samples"] == 12
    for key in ("top1", "top5", "nll", "ece", "brier"):
        assert summary[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key
