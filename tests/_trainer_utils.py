"""Helpers shared by the trainer tests: config composition, tiny data, subprocess runs, run-directory readers.

Import them as ``from _trainer_utils import ...`` from any folder under tests/ (pyproject puts tests/ on the path)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
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

# FAST for runs compared bit for bit (resume, faults, ranks): deterministic kernels.
EXACT = FAST + ["trainer.deterministic=true"]


def folder_args(root: Path, *extra: str) -> list[str]:
    """Overrides for a tiny in-process run on an image folder made by ``make_image_folder``."""
    return [
        "data=folder",
        f"data.root={root}",
        "data.img_size=16",
        "aug=cifar",
        "model.name=cifar_resnet20",
        "trainer.progress=false",
        "trainer.device=cpu",
        "trainer.amp=none",
        *extra,
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


def train(overrides: list[str], run_dir: Path) -> dict:
    """An in-process run, as ``python train.py <overrides> hydra.run.dir=<run_dir>`` without a new process;
    returns the summary."""
    from mixcut.trainer import run

    return run(compose(overrides), run_dir)


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


def load_script(name: str):
    """``scripts/<name>.py`` as a module (registered in sys.modules: dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def checkpoint(run_dir: Path, name: str = "last.pt") -> dict:
    """A run directory's checkpoint, loaded the way the trainer loads it."""
    from mixcut.checkpoint import load_checkpoint

    return load_checkpoint(Path(run_dir) / "checkpoints" / name)


def assert_same_tensors(a: dict, b: dict) -> None:
    """Two state dicts hold the same keys and bit-identical tensors."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def epochs_logged(run_dir: Path) -> list[int]:
    """The epochs in metrics.jsonl, in order (each line complete)."""
    text = (Path(run_dir) / "metrics.jsonl").read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line)["epoch"] for line in text.splitlines()]
