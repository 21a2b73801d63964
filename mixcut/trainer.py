"""A training run: `run(cfg)` builds it, `Trainer.train` resumes, fits and finishes.

Reading order: `run` -> `Trainer.__init__` (run directory, `build.build`) ->
`Trainer.train` (resume, `fit`, `finish`) -> `Trainer.fit` (epochs, each one
`engine.train_one_epoch`, then `epoch_end`). What a checkpoint holds lives in
`mixcut.checkpoint`; the lines a run prints in `mixcut.report`.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .build import build, last_epoch_batches
from .checkpoint import atomic_save, load_run_checkpoint, restore_training, restore_weights, training_checkpoint
from .config import check, to_container
from .data import FirstBatches
from .engine import NonFiniteLossError, TrainState, train_one_epoch
from .errors import ConfigError, StorageError
from .eval import METRIC_NAMES, evaluate_split
from .eval.tta import TTAModel
from .io import atomic_write, write_probe
from .loggers import NullLogger, RunLogger, truncate_jsonl, write_json_atomic
from .optim import stop_expired_groups
from .report import describe_run, epoch_line, format_table, metric_rows
from .runtime import distributed as D
from .runtime.policy import resolve_amp, resolve_device
from .runtime.signals import StopRequested, StopSignals

log = logging.getLogger("mixcut")

TOP1_THRESHOLDS = (85, 90, 93, 94)  # summary.json's time_to_top1: wall seconds when validation top-1 (%) first reached each


def run(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train (or evaluate, with ``trainer.eval_only``) as ``cfg`` says, in ``run_dir``.

    Returns the summary that is also written to ``run_dir/summary.json``.
    Raises `ConfigError` for configuration problems before any work starts.
    """
    check(cfg)
    info = D.env_info()
    device = resolve_device(cfg.trainer.device, info)
    D.init_process_group(info, device)  # first: it makes `device` this rank's current CUDA device
    try:
        amp_dtype = resolve_amp(cfg.trainer.amp, device)
        base = Path(D.broadcast_object(str(Path(run_dir).resolve())))
        trainer = Trainer(cfg, base, info, device, amp_dtype)
        return trainer.evaluate_only() if cfg.trainer.eval_only else trainer.train()
    finally:
        D.cleanup()


class Trainer:
    """One run: what `build` made from the config, the counters, the loggers."""

    def __init__(self, cfg: DictConfig, run_dir: Path, info: D.DistInfo, device: torch.device, amp_dtype) -> None:
        self.cfg, self.run_dir, self.info, self.device, self.amp_dtype = cfg, run_dir, info, device, amp_dtype
        self.ckpt_dir = run_dir / "checkpoints"
        if info.is_main:
            self._prepare_run_dir()
        else:
            log.setLevel(logging.WARNING)  # rank 0 reports for everyone
        resume = self.resume_path()
        if cfg.model.init and resume is not None:
            log.info("model.init=%s not applied: resuming from %s (trainer.resume wins)", cfg.model.init, resume)
        self.built = build(cfg, info, device, amp_dtype, load_init=resume is None)
        self.data, self.parts, self.num_classes = self.built.data, self.built.parts, self.built.num_classes
        self.state = TrainState()
        self.wall_before = 0.0  # wall time of earlier segments of a resumed run
        # CPU time of the training processes (every rank, all their threads; not DataLoader workers; on a GPU the
        # host side only) of the run's earlier segments: unlike wall time it does not grow while a process is paused
        # and much less while it shares the machine. None once a segment came from a checkpoint that lacks it.
        self.cpu_before: float | None = 0.0
        self.train_images = 0
        self.train_seconds = 0.0
        self.logger = NullLogger()
        self.signals = StopSignals()
        self.t0, self.cpu0 = time.time(), time.process_time()
        if info.is_main:
            log.info(describe_run(cfg, self.built, info, device, amp_dtype, run_dir))

    def _prepare_run_dir(self) -> None:
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.ckpt_dir.glob(".*.tmp"):  # left by a process killed while saving
                stale.unlink()
        except OSError as e:
            raise ConfigError(
                f"run directory {self.run_dir} is not writable ({e.strerror}); choose another with hydra.run.dir=DIR."
            ) from e
        reason = write_probe(self.run_dir)
        if reason is not None:
            raise ConfigError(f"run directory {self.run_dir} is not writable ({reason}); choose another with hydra.run.dir=DIR.")
        (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(self.cfg, resolve=True))

    # ----------------------------------------------------------- checkpoints
    def save(self, name: str = "last.pt") -> None:
        times = {
            "wall_time_s": self.wall_time(),
            "train_images": self.train_images,
            "train_seconds": self.train_seconds,
            "cpu_time_s": self.cpu_time(),
        }
        ckpt = training_checkpoint(self.built, self.state, self.info, OmegaConf.to_yaml(self.cfg, resolve=True), times)
        if self.info.is_main:
            atomic_save(ckpt, self.ckpt_dir / name)
        D.barrier()

    def wall_time(self) -> float:
        """Wall seconds of the run so far, over all its segments."""
        return self.wall_before + (time.time() - self.t0)

    def cpu_time(self) -> float | None:
        """CPU seconds of the run so far, summed over every rank's process (a collective: call it on every rank).
        None when an earlier segment did not record it."""
        this_segment = sum(D.gather_objects(time.process_time() - self.cpu0))
        return None if self.cpu_before is None else float(self.cpu_before) + this_segment

    def resume_path(self) -> Path | None:
        spec = self.cfg.trainer.resume
        if not spec:
            return None
        if spec == "auto":
            path = self.ckpt_dir / "last.pt"
            return path if path.exists() else None
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"trainer.resume={spec}: no such checkpoint file.")
        return path

    def resume(self) -> None:
        path = self.resume_path()
        if path is None:
            if self.cfg.trainer.resume == "auto":
                log.info("trainer.resume=auto: no checkpoint in %s yet, starting fresh", self.ckpt_dir)
            return
        ckpt = load_run_checkpoint(path)
        restore_training(self.built, ckpt, path, self.info.rank, self.info.world_size)
        self.state = TrainState(**ckpt["state"])
        self.wall_before = float(ckpt["wall_time_s"])
        self.cpu_before = ckpt.get("cpu_time_s")  # absent from checkpoints written before it was recorded
        self.train_images, self.train_seconds = int(ckpt["train_images"]), float(ckpt["train_seconds"])
        log.info(
            "resumed from %s at epoch %d, batch %d (step %d)",
            path,
            self.state.epoch + 1,
            self.state.batch,
            self.state.global_step,
        )

    # -------------------------------------------------------------- training
    def train(self) -> dict:
        """Resume if asked, train the remaining epochs, write the summary."""
        try:  # TransMix and RecursiveMix read the model's insides: refuse a model they cannot read, now
            self.built.mixer.check_model(self.built.model)
        except ValueError as e:
            raise ConfigError(f"mix={self.cfg.mix.name}: {e}") from e
        self.resume()
        if self.info.is_main:
            # state.epoch epochs are complete (the checkpoint may sit mid-way into the next one)
            truncate_jsonl(self.run_dir / "metrics.jsonl", keep_before_epoch=self.state.epoch + 1)
            self.logger = RunLogger(self.run_dir, self.cfg.logger, to_container(self.cfg))
        try:
            with self.signals:
                finished = self.fit()
            if not finished:
                log.info(
                    "stopped after epoch %d as asked (trainer.stop_after_epoch); resume with trainer.resume=auto "
                    "hydra.run.dir=%s",
                    self.state.epoch,
                    self.run_dir,
                )
                return {"finished": False, "epochs": self.state.epoch, "run_dir": str(self.run_dir)}
            return self.finish()
        except StopRequested as e:
            log.warning(str(e))
            raise
        finally:
            self.logger.close()

    def stop_requested(self) -> bool:
        """Whether this rank received a stop signal (the engine makes the ranks agree at every update)."""
        return self.signals.received is not None

    def after_step(self, state: TrainState, stop: bool) -> bool:
        """Step hook: honour a stop signal (``stop``: some rank received one) and periodic checkpoints."""
        every = self.cfg.trainer.ckpt_every_steps
        if stop:
            self.save("last.pt")
            self.signals.forward(is_main=self.info.is_main)
            return True
        if every and state.global_step % every == 0 and state.batch < len(self.data.train):
            self.save("last.pt")
        return False

    def fit(self) -> bool:
        """Train the remaining epochs; False if stopped early by trainer.stop_after_epoch."""
        t, state = self.cfg.trainer, self.state
        from tqdm import tqdm

        for epoch in range(state.epoch, t.epochs):
            state.epoch = epoch
            self.built.mixer.set_epoch(epoch)
            stop_expired_groups(self.parts.optimizer, epoch)  # parameters a model trains for its first epochs only
            batches = self.data.train
            if epoch + 1 == t.epochs and t.last_epoch_fraction < 1:
                batches = FirstBatches(batches, last_epoch_batches(self.cfg, len(batches)))
            bar = tqdm(
                total=len(batches),
                initial=state.batch,
                desc=f"epoch {epoch + 1}/{t.epochs}",
                leave=False,
                disable=None if (t.progress and self.info.is_main) else True,
                dynamic_ncols=True,
            )  # None: off when not a TTY
            try:
                stats = train_one_epoch(
                    self.parts,
                    state,
                    batches,
                    progress=bar,
                    after_step=self.after_step,
                    log_every=t.log_every,
                    stop_requested=self.stop_requested,
                )
            except NonFiniteLossError as e:
                bar.close()
                self.save("nonfinite_debug.pt")
                raise NonFiniteLossError(f"{e} Saved {self.ckpt_dir / 'nonfinite_debug.pt'} for inspection.") from None
            bar.close()
            stats["train_images"] *= self.info.world_size  # every rank trains the same number of images
            stats["train_images_per_sec"] *= self.info.world_size
            self.train_images += stats["train_images"]
            self.train_seconds += stats["train_seconds"]
            if stats["stopped"]:
                raise StopRequested(
                    f"received {self.signals.received}: saved {self.ckpt_dir / 'last.pt'} "
                    f"at epoch {epoch + 1}, batch {state.batch}. "
                    f"Resume with: python train.py <same overrides> hydra.run.dir={self.run_dir} trainer.resume=auto"
                )
            state.epoch, state.batch = epoch + 1, 0
            if self.parts.scheduler is not None:
                self.parts.scheduler.step(epoch + 1)
            record = {"epoch": epoch + 1, "lr": self.parts.optimizer.param_groups[0]["lr"], **stats}
            record.pop("stopped")
            record.update(self.data.train.end_epoch_report())
            record["nonfinite_skipped"] = state.nonfinite_total
            if (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
                record.update(self.validate())
            self.epoch_end(record)
            if t.stop_after_epoch is not None and epoch + 1 >= t.stop_after_epoch and epoch + 1 < t.epochs:
                return False
        return True

    def validate(self) -> dict:
        """Metrics of the model (and its EMA) on the validation split, as ``val_*`` / ``ema_val_*``."""
        out = {}
        if self.data.val is None:
            return out
        models = {"val": self.built.model}  # unwrapped: no DDP collectives, ranks may hold different batch counts
        if self.parts.ema is not None:
            models["ema_val"] = self.parts.ema.module
        D.broadcast_buffers(*models.values())  # every rank validates the model rank 0 saves
        for prefix, model in models.items():
            metrics = evaluate_split(model, self.data.val, self.num_classes, self.device, self.amp_dtype)
            metrics.pop("reliability")
            out.update({f"{prefix}_{k}": v for k, v in metrics.items()})
        return out

    def validate_tta(self) -> dict:
        """``eval.tta``: the final metrics under test-time augmentation, as ``tta_top1`` and ``tta``
        (beside the plain numbers, which they never replace)."""
        mode = str(self.cfg.eval.tta)
        if mode == "none" or self.data.val is None:
            return {}
        tta = evaluate_split(TTAModel(self.built.model, mode), self.data.val, self.num_classes, self.device, self.amp_dtype)
        tta.pop("reliability")
        log.info("test-time augmentation (eval.tta=%s): top-1 %.2f %%", mode, tta["top1"])
        return {"tta_top1": tta["top1"], "tta": {"mode": mode, **{k: tta[k] for k in METRIC_NAMES}}}

    def epoch_end(self, record: dict) -> None:
        """Best-so-far bookkeeping, the metrics line, last.pt (and best.pt)."""
        state = self.state
        improved = "val_top1" in record and record["val_top1"] > state.best.get("top1", -1.0)
        if improved:
            state.best = {k: record[f"val_{k}"] for k in METRIC_NAMES} | {"epoch": record["epoch"]}
        for th in TOP1_THRESHOLDS:  # time to accuracy: the first validation at or above each threshold
            if "val_top1" in record and record["val_top1"] >= th and str(th) not in state.reached:
                state.reached[str(th)] = self.wall_time()
        if self.info.is_main:
            self.logger.log_epoch(record)  # metrics line first: a crash before the save re-runs this epoch
            log.info(epoch_line(record, self.cfg.trainer.epochs))
        self.save("last.pt")
        if improved and self.cfg.trainer.save_best and self.info.is_main:
            try:
                with open(self.ckpt_dir / "last.pt", "rb") as src, atomic_write(self.ckpt_dir / "best.pt") as dst:
                    shutil.copyfileobj(src, dst)
            except OSError as e:
                raise StorageError(f"could not write {self.ckpt_dir / 'best.pt'} ({e.strerror}); last.pt is intact.") from e

    def finish(self) -> dict:
        """Final validation, summary.json and the final table."""
        wall, cpu = self.wall_time(), self.cpu_time()
        final = self.validate()
        summary = {k: final.get(f"val_{k}") for k in METRIC_NAMES}
        summary.update(
            {
                "finished": True,
                "best": self.state.best,
                "epochs": self.state.epoch,
                "global_step": self.state.global_step,
                "train_images_per_sec": self.train_images / max(self.train_seconds, 1e-9),
                "wall_time_s": wall,
                "cpu_time_s": cpu,
                "nonfinite_skipped": self.state.nonfinite_total,
                "val_samples": final.get("val_n"),
                "world_size": self.info.world_size,
                "run_dir": str(self.run_dir),
            }
        )
        if "ema_val_top1" in final:
            summary["ema"] = {k: final[f"ema_val_{k}"] for k in METRIC_NAMES}
        summary["time_to_top1"] = {str(th): self.state.reached.get(str(th)) for th in TOP1_THRESHOLDS}
        summary.update(self.validate_tta())
        if self.info.is_main:
            write_json_atomic(self.run_dir / "summary.json", summary)
            self.logger.log_summary(summary)
            log.info(
                "\nfinal validation metrics (top1/top5/ece in %%, nll in nats)\n%s\n"
                "train %.0f img/s, wall time %.1fs\nrun directory: %s",
                format_table(metric_rows(summary)),
                summary["train_images_per_sec"],
                wall,
                self.run_dir,
            )
        return summary

    # ------------------------------------------------------------ eval only
    def evaluate_only(self) -> dict:
        """``trainer.eval_only``: the metrics of the checkpoint ``trainer.resume`` names."""
        path = self.resume_path()
        if path is None:
            raise ConfigError(f"trainer.eval_only=true: no checkpoint found for trainer.resume={self.cfg.trainer.resume}.")
        restore_weights(self.built, load_run_checkpoint(path))
        final = self.validate()
        summary = {k: final.get(f"val_{k}") for k in METRIC_NAMES}
        summary.update(checkpoint=str(path), val_samples=final.get("val_n"), world_size=self.info.world_size)
        if "ema_val_top1" in final:
            summary["ema"] = {k: final[f"ema_val_{k}"] for k in METRIC_NAMES}
        if self.info.is_main:
            write_json_atomic(self.run_dir / "summary.json", summary)
            log.info("\nevaluation of %s\n%s", path, format_table(metric_rows(summary)))
        return summary
