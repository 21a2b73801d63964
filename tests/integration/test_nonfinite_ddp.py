"""A non-finite loss on one rank of two (torchrun, Gloo): every rank skips the same update, so the fp16
loss scales and the weights stay equal, and with on_nonfinite=abort every rank stops at the same step
(none is left waiting in a collective). A stop signal that one rank received stops both at the same update."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from _trainer_utils import REPO

pytestmark = [pytest.mark.slow, pytest.mark.dist]

WORKER = REPO / "tests" / "integration" / "nonfinite_ddp_worker.py"


def run_ranks(tmp_path, policy: str) -> list[dict]:
    """Run the worker on two ranks; rank 1 gets a NaN loss at its second update (except for "stop")."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MIXCUT_FAULTS_RANK="1")
    env["MIXCUT_FAULTS"] = "" if policy == "stop" else "nan@loss=2"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER)]
    cmd += [str(tmp_path), policy]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_nan_loss_on_one_rank_is_skipped_on_every_rank(tmp_path):
    r0, r1 = run_ranks(tmp_path, "skip")
    assert r0["outcome"] == r1["outcome"] == "finished"
    for r in (r0, r1):
        assert r["state"]["nonfinite_total"] == 1 and r["state"]["global_step"] == 5
    assert r0["scale"] == r1["scale"] == 256.0  # no rank counted the NaN loss as an fp16 overflow
    for k in r0["weights"]:
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k
        assert torch.isfinite(r0["weights"][k]).all()


def test_abort_stops_every_rank_at_the_same_step(tmp_path):
    r0, r1 = run_ranks(tmp_path, "abort")
    for r in (r0, r1):
        assert r["outcome"].startswith("aborted: non-finite") and "at step 2" in r["outcome"], r["outcome"]
    assert "loss (nan)" in r1["outcome"] and "another rank" in r0["outcome"]


def test_a_stop_signal_on_one_rank_stops_every_rank_at_the_same_update(tmp_path):
    r0, r1 = run_ranks(tmp_path, "stop")
    for r in (r0, r1):
        assert r["outcome"] == "stopped" and r["stops"] == [False, False, True], r
        assert r["state"]["global_step"] == 3 and r["state"]["batch"] == 3
