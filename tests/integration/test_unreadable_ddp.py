"""Two Gloo ranks where one rank's batch holds only unreadable images (issue 18): the rank
still runs every step (the batch is stood in for), so neither rank waits forever in a
collective the other never enters. On the old code rank 1 ran one step fewer and the run hung."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
from _trainer_utils import REPO, compose, folder_args, make_image_folder

pytestmark = [pytest.mark.slow, pytest.mark.dist]


def test_an_unreadable_batch_on_one_rank_does_not_hang_ddp(tmp_path):
    from mixcut.data.sampling import train_order
    from mixcut.data.sources import load_source

    data = make_image_folder(tmp_path / "data", classes=2, per_class=16, size=16)
    run_dir = f"hydra.run.dir={tmp_path / 'run'}"
    args = folder_args(data, "data.val_fraction=0", "data.num_workers=0", "trainer.batch_size=4", "trainer.epochs=1", run_dir)
    cfg = compose(args)
    paths = load_source(cfg.data).train.paths
    order, _ = train_order(len(paths), 0, cfg.trainer.seed, 1, 2)
    for i in order[4:8].tolist():  # rank 1's second batch: nothing readable left in it
        with open(paths[i], "wb") as f:
            f.write(b"not an image")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(REPO / "train.py"), *args]
    # its own session: a hang ends with the whole group killed (torchrun and both ranks), not orphaned workers
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the two ranks hung: one ran fewer steps than the other")
    assert proc.returncode == 0, out[-3000:]
    assert "1 batch(es) filled up" in out
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["state"]["global_step"] == 4
