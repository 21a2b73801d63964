"""Helpers shared by the trainer tests: config composition, tiny data, subprocess runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# Fast, deterministic CPU settings for in-process runs.
FAST = [
    "data=synthetic",
    "data.img_size=16",
    "data.train_size=96",
    "data.val_size=40",
    "model.name=cifar_resnet20",
    "trainer.batch_size=16",
    "trainer.epochs=2",
    "trainer.progress=false",
    "trainer.device=cpu",
    "trainer.amp=none",
]


def compose(overrides: list[str]):
    """The training config as `python train.py <overrides>` would see it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mixcut.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides))


def make_image_folder(
    root: Path, classes: int = 3, per_class: int = 10, size: int = 16, val_per_class: int = 0, seed: int = 0
) -> Path:
    """A small ImageNet-style folder of learnable images (class = dominant colour)."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 225, size=(classes, 3))
    for split, count in (("train", per_class), ("val", val_per_class)):
        for c in range(classes):
            d = root / split / f"class_{c}"
            for i in range(count):
                d.mkdir(parents=True, exist_ok=True)
                img = np.clip(colours[c] + rng.normal(0, 25, size=(size, size, 3)), 0, 255).astype(np.uint8)
                ext = "png" if i % 2 else "jpg"
                Image.fromarray(img).save(d / f"img_{i}.{ext}")
    return root


def run_cli(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` in ``cwd`` and capture its output."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_MODE="offline", WANDB_SILENT="true")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )
