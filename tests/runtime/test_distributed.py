"""The SLURM/torchrun environment handling, without starting processes
(the torchrun runs themselves are in tests/integration/test_torchrun.py)."""

from __future__ import annotations

import pytest
import torch
from _trainer_utils import REPO, compose

from mixcut.cli import prepare_argv
from mixcut.runtime.distributed import DistInfo, env_info, expand_nodelist, restart_count, slurm_rendezvous


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
    from mixcut.build import build_optimizer

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
