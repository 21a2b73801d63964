"""Where results go: console, metrics.jsonl always; TensorBoard and wandb optional.

Only rank 0 creates a `RunLogger`; the other ranks get a `NullLogger`.
wandb reads its API key from the environment (WANDB_API_KEY) and mixcut never
writes a key anywhere.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from .errors import StorageError
from .io import atomic_write

log = logging.getLogger("mixcut")


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _storage_errors(func):
    """Report a failed write as a `StorageError` naming the file."""

    def wrapper(path, *args, **kwargs):
        try:
            return func(path, *args, **kwargs)
        except OSError as e:
            raise StorageError(
                f"could not write {path} ({e.strerror or e}); free space or make the run directory writable."
            ) from e

    return wrapper


@_storage_errors
def append_jsonl(path: Path, record: dict) -> None:
    """Append one line and fsync it: a crash leaves at most one partial last line,
    which `truncate_jsonl` removes on resume."""
    line = json.dumps(_jsonable(record), sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """Complete, parseable lines of a JSONL file (a torn last line is dropped)."""
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


@_storage_errors
def truncate_jsonl(path: Path, keep_before_epoch: int) -> None:
    """Keep only records of epochs before ``keep_before_epoch`` (atomic rewrite),
    so that a resumed run never duplicates or half-writes a line."""
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if r.get("epoch", 0) < keep_before_epoch]
    with atomic_write(path, "w", encoding="utf-8") as f:
        for r in kept:
            f.write(json.dumps(r, sort_keys=True) + "\n")


@_storage_errors
def write_json_atomic(path: Path, obj: dict) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(_jsonable(obj), f, indent=2, sort_keys=True)
        f.write("\n")


class NullLogger:
    def log_epoch(self, record: dict) -> None:
        pass

    def log_summary(self, summary: dict) -> None:
        pass

    def close(self) -> None:
        pass


class RunLogger(NullLogger):
    """metrics.jsonl plus the optional TensorBoard and wandb back-ends."""

    def __init__(self, run_dir: Path, logger_cfg, config: dict) -> None:
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.jsonl"
        self.tb = None
        self.wandb_run = None
        if logger_cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if logger_cfg.wandb and logger_cfg.mode != "disabled":
            import wandb

            self.wandb_run = wandb.init(
                project=logger_cfg.project,
                entity=logger_cfg.entity,
                name=logger_cfg.run_name,
                tags=list(logger_cfg.tags),
                mode=logger_cfg.mode,
                dir=str(run_dir),
                config=config,
                resume="allow",
                id=_wandb_id(run_dir),
            )

    def log_epoch(self, record: dict) -> None:
        append_jsonl(self.metrics_path, record)
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "epoch"}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, record["epoch"])
            self.tb.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(scalars, step=record["epoch"])

    def log_summary(self, summary: dict) -> None:
        if self.wandb_run is not None:
            flat = {f"summary/{k}": v for k, v in summary.items() if isinstance(v, (int, float))}
            self.wandb_run.summary.update(flat)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def _wandb_id(run_dir: Path) -> str:
    """A stable wandb run id per run directory, so a resumed run continues it."""
    path = run_dir / ".wandb_id"
    if path.exists():
        return path.read_text().strip()
    import uuid

    rid = uuid.uuid4().hex[:12]
    path.write_text(rid)
    return rid
