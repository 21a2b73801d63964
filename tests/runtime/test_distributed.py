"""Multi-process training with torchrun on CPU (Gloo, 2 processes) and the
SLURM/torchrun environment handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from _trainer_utils import REPO, compose

from mixcut.checkpoint import load_checkpoint
from mixcut.cli import prepare_argv
from mixcut.runtime.distributed import DistInfo, env_info, expand_nodelist, restart_count, slurm_rendezvous

SMALL = [
    "data=synthetic",
    "data.img_size=16",
    "data.train_size=96",
    "data.val_size=101",
    "model.name=cifar_resnet20",
    "trainer.device=cpu",
    "trainer.amp=none",
    "trainer.deterministic=true",
]


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


def single(args: list[str], cwd, timeout: int = 300):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )


# ------------------------------------------------------------ multi-process
@pytest.mark.slow
@pytest.mark.dist
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
    ck = load_checkpoint(run_dirs[0] / "checkpoints" / "last.pt")
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


@pytest.mark.slow
@pytest.mark.dist
def test_gradients_match_single_process_with_double_batch(tmp_path):
    """2 ranks x batch b == 1 process x batch 2b, for a model without batch norm, mixing off."""
    two = tmp_path / "two"
    proc = torchrun(SMALL + NO_BN + ["trainer.batch_size=8", f"hydra.run.dir={two}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = tmp_path / "one"
    proc = single(SMALL + NO_BN + ["trainer.batch_size=16", f"hydra.run.dir={one}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_checkpoint(two / "checkpoints" / "last.pt")
    b = load_checkpoint(one / "checkpoints" / "last.pt")
    assert a["state"]["global_step"] == b["state"]["global_step"] == 6
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5, msg=k)
    moved = sum((a["model"][k] - load_checkpoint(one / "checkpoints" / "last.pt")["model"][k]).abs().sum() for k in a["model"])
    assert moved < 1e-2


@pytest.mark.slow
@pytest.mark.dist
def test_evaluation_counts_every_sample_once_at_world_size_two(tmp_path):
    train = tmp_path / "train"
    proc = single(SMALL + ["trainer.epochs=1", "trainer.batch_size=16", f"hydra.run.dir={train}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = train / "checkpoints" / "last.pt"
    evals = {}
    for n in (1, 2):
        out = tmp_path / f"eval{n}"
        args = SMALL + ["trainer.eval_only=true", f"trainer.resume={ckpt}", "trainer.batch_size=16", f"hydra.run.dir={out}"]
        proc = torchrun(args, cwd=tmp_path, nproc=2) if n == 2 else single(args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        evals[n] = json.loads((out / "summary.json").read_text())
    assert evals[1]["val_samples"] == evals[2]["val_samples"] == 101
    for key in ("top1", "top5", "nll", "ece", "brier"):
        assert evals[1][key] == pytest.approx(evals[2][key], rel=1e-5, abs=1e-6), key


@pytest.mark.slow
@pytest.mark.dist
def test_resume_with_another_world_size_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    proc = single(
        SMALL + ["trainer.epochs=2", "trainer.stop_after_epoch=1", "trainer.batch_size=16", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = torchrun(
        SMALL + ["trainer.epochs=2", "trainer.batch_size=16", "trainer.resume=auto", f"hydra.run.dir={run_dir}"], cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "was written by 1 process(es) but this run has 2" in proc.stderr + proc.stdout


@pytest.mark.slow
@pytest.mark.dist
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
    epochs = [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


# -------------------------------------------------------------- environment
def test_slurm_launcher_config_composes():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mixcut.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = hydra_compose(
            "train",
            overrides=["hydra/launcher=slurm", "hydra.launcher.nodes=2", "hydra.launcher.gpus_per_node=4"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.nodes == 2 and launcher.tasks_per_node == 4 and launcher.gpus_per_node == 4
    assert launcher.signal_delay_s > 0 and launcher.max_num_timeout > 0


@pytest.mark.parametrize(
    "nodelist,hosts",
    [
        ("node1", ["node1"]),
        ("gpu[01-03]", ["gpu01", "gpu02", "gpu03"]),
        ("gpu[01-02,07],cpu5", ["gpu01", "gpu02", "gpu07", "cpu5"]),
        ("a[9-11]", ["a9", "a10", "a11"]),
        ("x1,y[2,4]", ["x1", "y2", "y4"]),
    ],
)
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


def test_rank_from_a_faked_slurm_job():
    env = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "16",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_NODELIST": "gpu[12-13]",
        "SLURM_JOB_ID": "424242",
    }
    assert env_info(env) == DistInfo(rank=5, world_size=16, local_rank=1)
    rdzv = slurm_rendezvous(env)
    assert rdzv == {"MASTER_ADDR": "gpu12", "MASTER_PORT": str(20000 + 424242 % 20000)}
    assert slurm_rendezvous(dict(env, MASTER_ADDR="h", MASTER_PORT="1"))["MASTER_ADDR"] == "h"
    assert env_info({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == DistInfo()  # a single task is not distributed
    assert env_info({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3", "SLURM_PROCID": "0"}).rank == 3  # torchrun wins
    assert restart_count({"SLURM_RESTART_COUNT": "2"}) == 2 and restart_count({}) == 0


def test_argv_under_torchrun():
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "abc", "TORCHELASTIC_RESTART_COUNT": "0"}
    argv = prepare_argv(["train.py", "--local-rank=1", "mix=cutmix"], env)
    assert argv[:2] == ["train.py", "mix=cutmix"]
    assert "hydra.run.dir=outputs/torchrun/abc" in argv and "hydra.output_subdir=null" in argv
    assert not any(a.startswith("trainer.resume") for a in argv)
    rank0 = prepare_argv(["train.py", "hydra.run.dir=/x"], dict(env, RANK="0", TORCHELASTIC_RESTART_COUNT="1"))
    assert rank0 == ["train.py", "hydra.run.dir=/x", "trainer.resume=auto"]
    assert prepare_argv(["train.py", "trainer.resume=/a.pt"], {"SLURM_RESTART_COUNT": "1"}) == [
        "train.py",
        "trainer.resume=/a.pt",
    ]
    assert prepare_argv(["train.py", "--local_rank", "0", "a=b"], {}) == ["train.py", "a=b"]


def test_lr_scales_with_global_batch():
    from mixcut.train import build_optimizer

    cfg = compose(["optim=adamw", "optim.lr=5e-4", "optim.lr_scale_batch=512", "trainer.batch_size=64"])
    model = torch.nn.Linear(4, 2)
    opt = build_optimizer(cfg, model, world_size=4)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4 * 64 * 4 / 512)


def test_repeated_augmentation_spreads_copies_over_ranks():
    from mixcut.data.sampling import train_order

    per_rank = [train_order(12, epoch=0, seed=0, rank=r, world_size=3, repeated_aug=3)[0] for r in range(3)]
    assert all(len(p) == 4 for p in per_rank)
    # the three copies of an image sit on three different ranks
    for i in range(4):
        assert per_rank[0][i] == per_rank[1][i] == per_rank[2][i]
    assert len(set(per_rank[0].tolist())) == 4
