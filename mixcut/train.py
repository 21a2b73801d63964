"""``run(cfg)``: build everything the config describes, then loop over epochs.

Reading order: `run` -> `Run.__init__` (build) -> `Run.fit` (epochs) ->
`Run.save` / `Run.resume` (checkpoints). The step itself lives in
`mixcut.engine`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint import atomic_save, capture_rng, load_checkpoint, restore_rng
from .config import to_container, validate
from .data import build_data, load_source
from .data.labels import check_label_range
from .data.sampling import mix_seed
from .engine import NonFiniteLossError, StepParts, TrainState, train_one_epoch
from .errors import CheckpointError, ConfigError, StorageError
from .eval import METRIC_NAMES, evaluate_split
from .io import write_probe
from .loggers import NullLogger, RunLogger, truncate_jsonl, write_json_atomic
from .losses import create_loss
from .mix import Mixer, create_mixer
from .models import check_model_name, create_model_for_data
from .runtime import distributed as D
from .runtime.compile import resolve_compile
from .runtime.signals import StopRequested, StopSignals

log = logging.getLogger("mixcut")

CHECKPOINT_FORMAT = 1


# ------------------------------------------------------------------ helpers
def resolve_device(name: str, info: D.DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.device={name} but no CUDA device is visible; use trainer.device=cpu (or auto).")
        if name == "cuda":
            return torch.device("cuda", info.local_rank % torch.cuda.device_count())
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (AVX512-BF16 or AMX); on AVX2
    machines bf16 autocast is emulated and many times slower than fp32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(
            "trainer.amp=fp16 needs a CUDA device (its gradient scaler is CUDA-only); on CPU use trainer.amp=bf16 or none."
        )
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_determinism(on: bool) -> None:
    if on:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on


def build_mixer(cfg: DictConfig, num_classes: int | None, seed: int) -> Mixer:
    """The mixer the ``mix`` group describes; smoothing comes from ``loss``."""
    options = to_container(cfg.mix)
    name = options.pop("name")
    if options.get("lam_clip") is not None:
        options["lam_clip"] = tuple(options["lam_clip"])
    if options.get("minmax") is not None:
        options["minmax"] = tuple(options["minmax"])
    try:
        return create_mixer(
            name, num_classes=num_classes, label_smoothing=cfg.loss.label_smoothing, seed=seed, inplace=True, **options
        )
    except ValueError as e:
        raise ConfigError(f"mix: {e}") from e


def build_optimizer(cfg: DictConfig, model: torch.nn.Module, world_size: int):
    from timm.optim import create_optimizer_v2

    o = cfg.optim
    lr = o.lr
    if o.lr_scale_batch:
        lr = lr * cfg.trainer.batch_size * world_size * cfg.trainer.grad_accum_steps / o.lr_scale_batch
    extra = {}
    if o.betas is not None:
        extra["betas"] = tuple(o.betas)
    if o.eps is not None:
        extra["eps"] = o.eps
    try:
        return create_optimizer_v2(
            model,
            opt=o.name,
            lr=lr,
            weight_decay=o.weight_decay,
            momentum=o.momentum,
            filter_bias_and_bn=o.filter_bias_and_bn,
            layer_decay=o.layer_decay,
            **extra,
        )
    except (AssertionError, ValueError, TypeError) as e:
        raise ConfigError(
            f"optim.name={o.name!r} cannot be built ({e}); use a timm optimizer name such as sgd, momentum, adamw, lamb."
        ) from e


def build_scheduler(cfg: DictConfig, optimizer, updates_per_epoch: int):
    from timm.scheduler import create_scheduler_v2

    s = cfg.sched
    if s.name == "const":
        return None
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=s.name,
        num_epochs=cfg.trainer.epochs,
        decay_epochs=s.decay_epochs,
        decay_milestones=list(s.decay_milestones),
        decay_rate=s.decay_rate,
        min_lr=s.min_lr,
        warmup_lr=s.warmup_lr,
        warmup_epochs=s.warmup_epochs,
        step_on_epochs=s.step_on_epochs,
        updates_per_epoch=updates_per_epoch,
    )
    return scheduler


def probe_model(model: torch.nn.Module, cfg: DictConfig, device: torch.device) -> None:
    """One tiny forward pass, so that an image size the model cannot take fails
    now with a sentence instead of a traceback at the first step."""
    size = cfg.data.img_size
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, 3, size, size, device=device))
    except (RuntimeError, AssertionError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"model {cfg.model.name!r} cannot take {size}x{size} images ({first}); change data.img_size, "
            f"or for ViT-style models pass the size with +model.kwargs.img_size={size}."
        ) from None
    finally:
        model.train(was_training)


def hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def format_table(rows: dict[str, dict]) -> str:
    """A small fixed-width table: one column per model (model, EMA)."""
    names = list(rows)
    lines = [f"{'metric':<8}" + "".join(f"{n:>12}" for n in names)]
    for key in METRIC_NAMES:
        lines.append(f"{key:<8}" + "".join(f"{rows[n].get(key, float('nan')):>12.4f}" for n in names))
    return "\n".join(lines)


# ---------------------------------------------------------------------- run
def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict:
    """Train (or evaluate, with ``trainer.eval_only``) as ``cfg`` says.

    Returns the summary that is also written to ``run_dir/summary.json``.
    Raises `ConfigError` for configuration problems before any work starts.
    """
    validate(cfg)
    check_model_name(cfg.model.name)
    info = D.env_info()
    device = resolve_device(cfg.trainer.device, info)
    amp_dtype = resolve_amp(cfg.trainer.amp, device)
    build_mixer(cfg, cfg.data.num_classes, 0)  # option errors surface before any data is read
    D.init_process_group(info, device)
    try:
        base = Path(run_dir) if run_dir is not None else hydra_run_dir()
        base = Path(D.broadcast_object(str(base.resolve())))
        return Run(cfg, base, info, device, amp_dtype).execute()
    finally:
        D.cleanup()


class Run:
    """Everything one training run holds, built from the config."""

    def __init__(self, cfg: DictConfig, run_dir: Path, info: D.DistInfo, device: torch.device, amp_dtype) -> None:
        self.cfg, self.run_dir, self.info, self.device, self.amp_dtype = cfg, run_dir, info, device, amp_dtype
        t = cfg.trainer
        self.ckpt_dir = run_dir / "checkpoints"
        if info.is_main:
            self._prepare_run_dir()
        else:
            log.setLevel(logging.WARNING)  # rank 0 reports for everyone
        if t.threads:
            torch.set_num_threads(t.threads)
        set_determinism(t.deterministic)
        seed_everything(mix_seed(t.seed, info.rank))

        source = load_source(cfg.data)
        num_classes = cfg.data.num_classes or source.num_classes
        if cfg.data.num_classes and cfg.data.num_classes < source.num_classes:
            raise ConfigError(f"data.num_classes={cfg.data.num_classes} but the data set has {source.num_classes} classes.")
        self.num_classes = num_classes
        check_label_range(source, num_classes)  # issue 15: one check of the labels before any step
        self.data = build_data(cfg, device, info.rank, info.world_size, source=source)
        self.mixer = build_mixer(cfg, num_classes, mix_seed(t.seed, info.rank, 0x3143))

        # issue 15: ViT-style models get data.img_size; the note goes into the run's first lines
        model, size_note = create_model_for_data(cfg.model, num_classes, cfg.data.img_size)
        model = model.to(device)
        self.notes = [n for n in (size_note,) if n]
        probe_model(model, cfg, device)
        if t.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if t.sync_bn and info.enabled:
            if device.type != "cuda":
                raise ConfigError("trainer.sync_bn=true needs CUDA (NCCL); drop it on CPU.")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        optimizer = build_optimizer(cfg, model, info.world_size)
        updates_per_epoch = math.ceil(len(self.data.train) / t.grad_accum_steps)
        scheduler = build_scheduler(cfg, optimizer, updates_per_epoch)
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        ema = None
        if t.ema:
            from timm.utils import ModelEmaV3

            ema = ModelEmaV3(model, decay=t.ema_decay, use_warmup=t.ema_warmup)
        wrapped = model
        if info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        compile_model, compile_note = resolve_compile(t.compile, device)  # issue 15: auto = CUDA only
        self.notes.append(compile_note)
        if compile_model:
            wrapped = torch.compile(wrapped)
        self.parts = StepParts(
            model=wrapped,
            optimizer=optimizer,
            loss_fn=create_loss(cfg.loss).to(device),
            mixer=self.mixer,
            device=device,
            amp_dtype=amp_dtype,
            scaler=scaler,
            scheduler=scheduler,
            ema=ema,
            grad_accum_steps=t.grad_accum_steps,
            clip_grad=t.clip_grad,
            clip_mode=t.clip_mode,
            on_nonfinite=t.on_nonfinite,
            max_nonfinite=t.max_nonfinite,
        )
        self.state = TrainState()
        self.wall_before = 0.0  # wall time of earlier segments of a resumed run
        self.train_images = 0
        self.train_seconds = 0.0
        self.logger = NullLogger()
        self.signals = StopSignals()

    # -------------------------------------------------------------- setup
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

    def describe(self) -> str:
        t, d = self.cfg.trainer, self.cfg.data
        amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        params = sum(p.numel() for p in self.model.parameters()) / 1e6
        n_val = len(self.data.source.val) if self.data.source.val is not None else 0
        return (
            f"mixcut: {self.cfg.model.name} ({params:.2f}M params) on {d.name} "
            f"({len(self.data.source.train)} train / {n_val} val images, {self.num_classes} classes, {d.img_size}px), "
            f"{self.device} {amp}, {self.info.world_size} process(es), batch {t.batch_size}, {t.epochs} epochs\n"
            f"mixer: {self.mixer!r}\nrun directory: {self.run_dir}" + "".join(f"\n{n}" for n in self.notes)
        )

    # ----------------------------------------------------------- checkpoint
    def checkpoint(self) -> dict:
        """Everything needed to continue exactly (collective: all ranks call it)."""
        parts = self.parts
        per_rank = D.gather_objects({"mixer": self.mixer.state_dict(), "rng": capture_rng()})
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
            "scaler": parts.scaler.state_dict() if parts.scaler is not None else None,
            "ema": parts.ema.state_dict() if parts.ema is not None else None,
            "state": self.state.as_dict(),
            "world_size": self.info.world_size,
            "mixer": [r["mixer"] for r in per_rank],
            "rng": [r["rng"] for r in per_rank],
            "wall_time_s": self.wall_before + (time.time() - self.t0),
            "train_images": self.train_images,
            "train_seconds": self.train_seconds,
            "config": OmegaConf.to_yaml(self.cfg, resolve=True),
        }

    def save(self, name: str = "last.pt") -> None:
        ckpt = self.checkpoint()
        if self.info.is_main:
            atomic_save(ckpt, self.ckpt_dir / name)
        D.barrier()

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

    def load(self, path: Path, weights_only: bool = False) -> dict:
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a mixcut checkpoint (format {ckpt.get('format')!r}).")
        self.model.load_state_dict(ckpt["model"])
        if self.parts.ema is not None and ckpt.get("ema") is not None:
            self.parts.ema.load_state_dict(ckpt["ema"])
        if weights_only:
            return ckpt
        if ckpt["world_size"] != self.info.world_size:
            raise ConfigError(
                f"{path} was written by {ckpt['world_size']} process(es) but this run has {self.info.world_size}; "
                f"resume with the same number of processes, or start a new run from its weights."
            )
        p = self.parts
        p.optimizer.load_state_dict(ckpt["optimizer"])
        if p.scheduler is not None and ckpt["scheduler"] is not None:
            p.scheduler.load_state_dict(ckpt["scheduler"])
        if p.scaler is not None and ckpt["scaler"] is not None:
            p.scaler.load_state_dict(ckpt["scaler"])
        self.mixer.load_state_dict(ckpt["mixer"][self.info.rank])
        restore_rng(ckpt["rng"][self.info.rank])
        self.state = TrainState(**ckpt["state"])
        self.wall_before = float(ckpt["wall_time_s"])
        self.train_images, self.train_seconds = int(ckpt["train_images"]), float(ckpt["train_seconds"])
        return ckpt

    # ------------------------------------------------------------ running
    def execute(self) -> dict:
        self.t0 = time.time()
        if self.info.is_main:
            log.info(self.describe())
        if self.cfg.trainer.eval_only:
            return self.evaluate_only()
        path = self.resume_path()
        if path is not None:
            self.load(path)
            log.info(
                "resumed from %s at epoch %d, batch %d (step %d)",
                path,
                self.state.epoch + 1,
                self.state.batch,
                self.state.global_step,
            )
        elif self.cfg.trainer.resume == "auto":
            log.info("trainer.resume=auto: no checkpoint in %s yet, starting fresh", self.ckpt_dir)
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

    STOP_CHECK_EVERY = 10  # steps between the ranks' agreement on a stop signal (one tiny all-reduce)

    def after_step(self, state: TrainState) -> bool:
        every = self.cfg.trainer.ckpt_every_steps
        stop = self.signals.received is not None
        if self.info.enabled:  # all ranks must stop at the same step, so they agree every few steps
            stop = state.global_step % self.STOP_CHECK_EVERY == 0 and bool(D.all_reduce_max(int(stop)))
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
            self.mixer.set_epoch(epoch)
            bar = tqdm(
                total=len(self.data.train),
                initial=state.batch,
                desc=f"epoch {epoch + 1}/{t.epochs}",
                leave=False,
                disable=None if (t.progress and self.info.is_main) else True,
                dynamic_ncols=True,
            )  # None: off when not a TTY
            try:
                stats = train_one_epoch(
                    self.parts, state, self.data.train, progress=bar, after_step=self.after_step, log_every=t.log_every
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
        out = {}
        if self.data.val is None:
            return out
        models = {"val": self.model}  # unwrapped: no DDP collectives, ranks may hold different batch counts
        if self.parts.ema is not None:
            models["ema_val"] = self.parts.ema.module
        for prefix, model in models.items():
            metrics = evaluate_split(model, self.data.val, self.num_classes, self.device, self.amp_dtype)
            metrics.pop("reliability")
            out.update({f"{prefix}_{k}": v for k, v in metrics.items()})
        return out

    def epoch_end(self, record: dict) -> None:
        state = self.state
        improved = "val_top1" in record and record["val_top1"] > state.best.get("top1", -1.0)
        if improved:
            state.best = {k: record[f"val_{k}"] for k in METRIC_NAMES} | {"epoch": record["epoch"]}
        if self.info.is_main:
            self.logger.log_epoch(record)  # metrics line first: a crash before the save re-runs this epoch
            log.info(self.epoch_line(record))
        self.save("last.pt")
        if improved and self.cfg.trainer.save_best and self.info.is_main:
            import shutil

            tmp = self.ckpt_dir / ".best.pt.tmp"
            try:
                shutil.copyfile(self.ckpt_dir / "last.pt", tmp)
                tmp.replace(self.ckpt_dir / "best.pt")
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise StorageError(f"could not write {self.ckpt_dir / 'best.pt'} ({e.strerror}); last.pt is intact.") from e

    def epoch_line(self, r: dict) -> str:
        line = f"epoch {r['epoch']:>3}/{self.cfg.trainer.epochs}  loss {r['train_loss']:.4f}  lr {r['lr']:.2e}"
        if "val_top1" in r:
            line += (
                f"  val top1 {r['val_top1']:.2f}  top5 {r['val_top5']:.2f}  nll {r['val_nll']:.3f}"
                f"  ece {r['val_ece']:.2f}  brier {r['val_brier']:.3f}"
            )
        if "ema_val_top1" in r:
            line += f"  | ema top1 {r['ema_val_top1']:.2f}"
        return line + f"  | {r['train_images_per_sec']:.0f} img/s  {r['train_seconds']:.1f}s"

    def finish(self) -> dict:
        wall = self.wall_before + (time.time() - self.t0)
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
                "nonfinite_skipped": self.state.nonfinite_total,
                "val_samples": final.get("val_n"),
                "world_size": self.info.world_size,
                "run_dir": str(self.run_dir),
            }
        )
        if "ema_val_top1" in final:
            summary["ema"] = {k: final[f"ema_val_{k}"] for k in METRIC_NAMES}
        if self.info.is_main:
            write_json_atomic(self.run_dir / "summary.json", summary)
            self.logger.log_summary(summary)
            rows = {"model": {k: summary[k] for k in METRIC_NAMES if summary[k] is not None}}
            if "ema" in summary:
                rows["ema"] = summary["ema"]
            log.info(
                "\nfinal validation metrics (top1/top5/ece in %%, nll in nats)\n%s\n"
                "train %.0f img/s, wall time %.1fs\nrun directory: %s",
                format_table(rows),
                summary["train_images_per_sec"],
                wall,
                self.run_dir,
            )
        return summary

    def evaluate_only(self) -> dict:
        path = self.resume_path()
        if path is None:
            raise ConfigError(f"trainer.eval_only=true: no checkpoint found for trainer.resume={self.cfg.trainer.resume}.")
        self.load(path, weights_only=True)
        final = self.validate()
        summary = {k: final.get(f"val_{k}") for k in METRIC_NAMES}
        summary.update(checkpoint=str(path), val_samples=final.get("val_n"), world_size=self.info.world_size)
        if "ema_val_top1" in final:
            summary["ema"] = {k: final[f"ema_val_{k}"] for k in METRIC_NAMES}
        if self.info.is_main:
            write_json_atomic(self.run_dir / "summary.json", summary)
            rows = {"model": {k: summary[k] for k in METRIC_NAMES}} | ({"ema": summary["ema"]} if "ema" in summary else {})
            log.info("\nevaluation of %s\n%s", path, format_table(rows))
        return summary
