"""Checkpoints: atomic writes, safe loads, every random state, and what a run's
checkpoint holds (format version) and how it is restored for an exact resume."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError, ConfigError, StorageError
from .io import atomic_write
from .runtime import faults


def atomic_save(obj: dict, path: str | Path) -> None:
    """Write ``obj`` to ``path`` so that a crash at any moment leaves either the
    old file or the new one, never a torn file: write a temporary file in the
    same directory, flush and fsync it, then rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            torch.save(obj, f)
            faults.point("save")
    except (OSError, RuntimeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise StorageError(f"could not write checkpoint {path} ({reason}); the previous checkpoint there is unchanged.") from e


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load with ``weights_only=True``: tensors and plain containers only.

    A file that needs arbitrary code to unpickle (which could run anything on
    this machine) is refused with a clear message instead of being executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it contains objects that need arbitrary code to unpickle, "
            f"which weights_only loading does not allow ({str(e).splitlines()[0]}). Only load checkpoints you trust, "
            "and re-save them as plain state dicts."
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {e}") from e


def capture_rng() -> dict:
    """Python, NumPy, torch CPU and this process's CUDA device's generator states as plain tensors.

    Only the current device's CUDA state is kept (`distributed.init_process_group` made it the
    rank's own GPU): a run resumed with another number of visible GPUs (torchrun on 8, then
    SLURM with one per task) restores it onto its own device."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state(torch.cuda.current_device())
    return state


def restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda, index = state["cuda"], torch.cuda.current_device()
        if isinstance(cuda, (list, tuple)):  # checkpoints before issue 18: one state per visible GPU
            if index >= len(cuda):
                return
            cuda = cuda[index]
        torch.cuda.set_rng_state(cuda, index)


# ------------------------------------------------------------- run checkpoints
CHECKPOINT_FORMAT = 1  # bump when the layout below changes


def training_checkpoint(built, state, info, config_yaml: str, times: dict) -> dict:
    """Everything needed to continue a run exactly (collective: all ranks call it).

    Per-rank states (the mixer's generator, the RNGs) are gathered so that rank 0
    can write one file that every rank resumes from.
    """
    from .runtime import distributed as D

    parts = built.parts
    per_rank = D.gather_objects({"mixer": built.mixer.state_dict(), "rng": capture_rng()})
    return {
        "format": CHECKPOINT_FORMAT,
        "model": built.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
        "scaler": parts.scaler.state_dict() if parts.scaler is not None else None,
        "ema": parts.ema.state_dict() if parts.ema is not None else None,
        "averager": parts.averager.state_dict() if parts.averager is not None else None,
        "state": state.as_dict(),
        "world_size": info.world_size,
        "mixer": [r["mixer"] for r in per_rank],
        "rng": [r["rng"] for r in per_rank],
        "wall_time_s": times["wall_time_s"],
        "train_images": times["train_images"],
        "train_seconds": times["train_seconds"],
        "cpu_time_s": times.get("cpu_time_s"),
        "config": config_yaml,
    }


def load_run_checkpoint(path: Path) -> dict:
    """A checkpoint written by mixcut's trainer (format checked)."""
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a mixcut checkpoint (format {ckpt.get('format')!r}).")
    return ckpt


def restore_weights(built, ckpt: dict) -> None:
    """Model and EMA weights only (evaluation, or the first half of a resume)."""
    built.model.load_state_dict(ckpt["model"])
    if built.parts.ema is not None and ckpt.get("ema") is not None:
        built.parts.ema.load_state_dict(ckpt["ema"])


def restore_training(built, ckpt: dict, path: Path, rank: int, world_size: int) -> None:
    """Weights, optimizer, scheduler, scaler, this rank's mixer and RNG states."""
    restore_weights(built, ckpt)
    if ckpt["world_size"] != world_size:
        raise ConfigError(
            f"{path} was written by {ckpt['world_size']} process(es) but this run has {world_size}; "
            f"resume with the same number of processes, or start a new run from its weights."
        )
    p = built.parts
    p.optimizer.load_state_dict(ckpt["optimizer"])
    if p.scheduler is not None and ckpt["scheduler"] is not None:
        p.scheduler.load_state_dict(ckpt["scheduler"])
    if p.scaler is not None and ckpt["scaler"] is not None:
        p.scaler.load_state_dict(ckpt["scaler"])
    if p.averager is not None and ckpt.get("averager") is not None:
        p.averager.load_state_dict(ckpt["averager"])
    built.mixer.load_state_dict(ckpt["mixer"][rank])
    restore_rng(ckpt["rng"][rank])


def model_weights(ckpt: dict, use_ema: bool = False) -> dict:
    """The model's state dict in a checkpoint, or its EMA's (``use_ema``)."""
    if "model" not in ckpt:
        raise CheckpointError("this checkpoint holds no model weights (key 'model').")
    if not use_ema:
        return ckpt["model"]
    ema = ckpt.get("ema")
    if not ema:
        raise ConfigError("--ema: this checkpoint has no EMA weights (train with trainer.ema=true).")
    # ModelEmaV3 keeps the averaged copy under ``module.``
    return {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")} or ema
