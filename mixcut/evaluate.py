"""Evaluate a checkpoint: a checkpoint file in, ``<out>/<stem>.json`` (and the
reliability PNG) out. `scripts/evaluate.py` is the command line.

The checkpoint is loaded once; the model, data and preprocessing come from the
configuration saved inside it (plus dotlist overrides), built by
`mixcut.build.build_for_eval` as the trainer built them; `mixcut.eval` measures
what `EvalOptions` asks for. Single process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .build import build_for_eval
from .checkpoint import load_checkpoint
from .config import TrainConfig, check
from .errors import CheckpointError, ConfigError
from .eval.checkpoint_eval import evaluate_built
from .eval.options import EvalOptions
from .loggers import write_json_atomic

log = logging.getLogger("mixcut")


def default_out_dir(checkpoint: str | Path) -> Path:
    """``RUN_DIR/eval`` for ``RUN_DIR/checkpoints/NAME.pt``, else ``eval/`` next to the file."""
    path = Path(checkpoint).resolve()
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return run_dir / "eval"


def config_from_checkpoint(ckpt: dict, overrides: Sequence[str] = ()) -> DictConfig:
    """The checkpoint's saved (YAML) training config, typed by the schema, with ``key=value`` overrides applied."""
    if "config" not in ckpt:
        raise CheckpointError("this checkpoint holds no training config; it was not written by mixcut's trainer.")
    bad = [o for o in overrides if "=" not in o or o.startswith(("+", "~"))]
    if bad:
        raise ConfigError(f"overrides must be key=value (dotlist), e.g. trainer.device=cpu; got {bad}.")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(ckpt["config"]))
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as e:
        raise ConfigError(f"cannot apply the checkpoint's config and overrides {list(overrides)}: {e}") from e
    check(cfg)
    return cfg


def evaluate_checkpoint(
    checkpoint: str | Path, overrides: Sequence[str] = (), options: EvalOptions | None = None, out_dir: str | Path | None = None
) -> dict:
    """Evaluate ``checkpoint`` on its validation split as ``options`` say; write the JSON and PNGs
    to ``out_dir`` (default `default_out_dir`) and return the result."""
    t0 = time.time()
    options = options or EvalOptions()
    options.check()
    path = Path(checkpoint)
    ckpt = load_checkpoint(path, map_location="cpu")
    cfg = config_from_checkpoint(ckpt, overrides)
    options = options.with_boxes_found(cfg.data.root)
    built = build_for_eval(cfg, ckpt, use_ema=options.use_ema)
    for note in built.notes:
        log.info(note)
    tag = path.stem + ("_ema" if options.use_ema else "")
    out = Path(out_dir) if out_dir is not None else default_out_dir(path)
    result = {
        "checkpoint": str(path.resolve()),
        "overrides": list(overrides),
        "epoch": (ckpt.get("state") or {}).get("epoch"),
    }
    result.update(evaluate_built(built, cfg, options, out, tag))
    result["wall_time_s"] = time.time() - t0
    write_json_atomic(out / f"{tag}.json", result)
    result["json"] = str(out / f"{tag}.json")
    return result
