"""Every config file of every group composes through Hydra's compose API."""

from __future__ import annotations

import pytest
from _trainer_utils import CONFIGS, compose
from omegaconf import OmegaConf

GROUPS = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir() and p.name not in ("hydra",))
CASES = [(g, f.stem) for g in GROUPS for f in sorted((CONFIGS / g).glob("*.yaml"))]
NEEDS_ROOT = ("imagenet", "folder")


def _overrides(group: str, name: str) -> list[str]:
    ov = [f"{group}={name}"]
    if group == "data" and name in NEEDS_ROOT:
        ov.append("data.root=/tmp/nowhere")
    return ov


@pytest.mark.parametrize("group,name", CASES, ids=[f"{g}/{n}" for g, n in CASES])
def test_config_composes(group, name):
    cfg = compose(_overrides(group, name))
    if group == "experiment":
        # experiments are global overrides; ImageNet ones leave data.root to the user
        if OmegaConf.is_missing(cfg.data, "root"):
            cfg = compose(_overrides(group, name) + ["data.root=/tmp/nowhere"])
    else:
        assert cfg[group] is not None
    OmegaConf.to_yaml(cfg, resolve=True)  # every interpolation resolves


def test_every_group_has_configs():
    for group in ("data", "model", "mix", "loss", "optim", "sched", "aug", "trainer", "logger"):
        assert (CONFIGS / group).is_dir() and list((CONFIGS / group).glob("*.yaml")), group


def test_default_is_deit_on_digits():
    cfg = compose([])
    assert cfg.data.name == "digits"
    assert cfg.mix.name == "deit" and cfg.mix.mixup_alpha == 0.8 and cfg.mix.cutmix_alpha == 1.0
    assert cfg.mix.switch_prob == 0.5 and cfg.mix.prob == 1.0 and cfg.mix.mode == "batch"
    assert cfg.loss.label_smoothing == 0.1


def test_cli_style_overrides():
    cfg = compose(
        [
            "mix=cutmix",
            "mix.alpha=0.5",
            "mix.mode=elem",
            "mix.prob=0.5",
            "loss.label_smoothing=0.2",
            "data=folder",
            "data.root=/x",
            "data.img_size=48",
            "data.num_workers=0",
            "model.name=resnet18",
            "trainer.epochs=3",
            "trainer.batch_size=7",
            "trainer.device=cpu",
            "trainer.amp=bf16",
            "trainer.seed=5",
            "optim.lr=0.01",
            "logger=[tensorboard,wandb]",
        ]
    )
    assert (cfg.mix.alpha, cfg.mix.mode, cfg.mix.prob) == (0.5, "elem", 0.5)
    assert cfg.data.root == "/x" and cfg.data.img_size == 48 and cfg.optim.lr == 0.01
    assert cfg.logger.tensorboard and cfg.logger.wandb and cfg.logger.mode == "offline"


@pytest.mark.parametrize("override", ["mix.switch_prob=0.3", "trainer.epochz=3", "data.img_size=big", "mix.alpha=abc"])
def test_schema_rejects_bad_keys_and_types(override):
    from hydra.errors import ConfigCompositionException

    extra = ["mix=mixup"] if override.startswith("mix.") else []
    with pytest.raises(ConfigCompositionException):
        compose(extra + [override])
