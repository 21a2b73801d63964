"""From a checked config to the objects a run needs: seeds, data, mixer, model,
optimizer, scheduler, loss, EMA -> `Built` (the device, precision and seed policy
it applies lives in `mixcut.runtime.policy`).

Used by the trainer and by `scripts/bench_train.py`; `build_for_eval` builds what
evaluating a checkpoint needs from the same pieces (`mixcut.evaluate`).
The order of `build` is part of the behaviour: every random draw (model
initialisation, data order) happens in the same sequence as before, so a seed
always gives the same run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig

from .checkpoint import model_weights
from .config import mixer_options
from .data import build_data, load_source
from .data.labels import check_label_range
from .data.sampling import SALT_MIXER, mix_seed
from .engine import StepParts
from .errors import ConfigError
from .losses import create_loss
from .mix import Mixer, create_mixer
from .models import create_model_for_data
from .models.init import DATA_INIT_HOOK, init_model, wants_training_images
from .optim import apply_lr_scale_without_scheduler, decoupled_lr, needs_recipe_groups, recipe_param_groups, scale_head_lr
from .runtime import distributed as D
from .runtime.compile import resolve_compile
from .runtime.policy import cpu_bf16_note, resolve_amp, resolve_device, seed_everything, set_determinism, set_tf32


def build_mixer(cfg: DictConfig, num_classes: int | None, seed: int) -> Mixer:
    """The mixer the ``mix`` group describes; smoothing comes from ``loss``."""
    name, options = mixer_options(cfg)
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
    global_batch = cfg.trainer.batch_size * world_size * cfg.trainer.grad_accum_steps
    if o.lr_scale_batch:
        lr = lr * global_batch / o.lr_scale_batch
    params = model
    if needs_recipe_groups(o, model):  # norm-bias lr factor, epoch-limited parameters, airbench's decoupled form
        if o.layer_decay:
            raise ConfigError(
                f"optim.layer_decay={o.layer_decay} builds its own parameter groups, which {cfg.model.name} (parameters "
                "trained for its first epochs only) and optim.decoupled / optim.norm_bias_lr_scale need too; "
                "set optim.layer_decay=null."
            )
        params = recipe_param_groups(
            model, o.weight_decay, o.norm_bias_lr_scale, o.lr if o.decoupled else None, o.filter_bias_and_bn
        )
        if o.decoupled:
            lr = decoupled_lr(o.lr, o.momentum, global_batch)
    extra = {}
    if o.betas is not None:
        extra["betas"] = tuple(o.betas)
    if o.eps is not None:
        extra["eps"] = o.eps
    try:
        return create_optimizer_v2(
            params,
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


def total_updates_of(cfg: DictConfig, batches_per_epoch: int) -> int:
    """Optimizer updates in the whole run: ``trainer.epochs`` epochs, the last one cut to
    ``trainer.last_epoch_fraction`` of its batches (`last_epoch_batches`)."""
    accum = cfg.trainer.grad_accum_steps
    per_epoch = math.ceil(batches_per_epoch / accum)
    return (cfg.trainer.epochs - 1) * per_epoch + math.ceil(last_epoch_batches(cfg, batches_per_epoch) / accum)


def last_epoch_batches(cfg: DictConfig, batches_per_epoch: int) -> int:
    """Batches of the last epoch (airbench94's 9.9 epochs: ``trainer.last_epoch_fraction=0.9``)."""
    return math.ceil(batches_per_epoch * cfg.trainer.last_epoch_fraction)


def build_scheduler(cfg: DictConfig, optimizer, updates_per_epoch: int, total_updates: int | None = None):
    from timm.scheduler import create_scheduler_v2

    s = cfg.sched
    if s.name == "const":
        return None
    if s.name == "warmdown":
        from .schedulers import WarmupWarmdownLR

        total = total_updates or updates_per_epoch * cfg.trainer.epochs
        return WarmupWarmdownLR(optimizer, total, s.warmup_fraction, s.start_factor, s.end_factor)
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


def num_classes_of(cfg: DictConfig, source) -> int:
    """``data.num_classes`` when set (it may exceed the data set's), else the data set's."""
    if cfg.data.num_classes and cfg.data.num_classes < source.num_classes:
        raise ConfigError(f"data.num_classes={cfg.data.num_classes} but the data set has {source.num_classes} classes.")
    return cfg.data.num_classes or source.num_classes


@dataclass
class Built:
    """Everything a training run is made of, built once from the config."""

    data: object  # mixcut.data.DataBundle: source, train and val batch streams
    num_classes: int
    mixer: Mixer
    model: torch.nn.Module  # unwrapped: checkpoints and evaluation use this one
    parts: StepParts  # what a step needs, with the (DDP/compiled) model it trains
    notes: list[str] = field(default_factory=list)  # decisions the run's first lines report (image size, compile)


def build(
    cfg: DictConfig, info: D.DistInfo, device: torch.device, amp_dtype: torch.dtype | None, load_init: bool = True
) -> Built:
    """Seeds, data, mixer, model, optimizer, scheduler, scaler, EMA, DDP, compile — in this order.

    ``load_init=False`` skips ``model.init`` (the trainer passes it when a checkpoint
    will be resumed: fine-tuning never counts as resuming, and resume wins)."""
    t = cfg.trainer
    if t.threads:
        torch.set_num_threads(t.threads)
    determinism_note = set_determinism(t.deterministic, device)
    tf32_note = set_tf32(t.tf32, device, amp_dtype)
    seed_everything(mix_seed(t.seed, info.rank))

    source = load_source(cfg.data)
    num_classes = num_classes_of(cfg, source)
    check_label_range(source, num_classes)  # once, before any step: a bad label names itself here
    data = build_data(cfg, device, info.rank, info.world_size, source=source)
    mixer = build_mixer(cfg, num_classes, mix_seed(t.seed, info.rank, SALT_MIXER))

    # timm models that take img_size (ViT, DeiT, ...) are built for data.img_size; the note says so
    model, size_note = create_model_for_data(cfg.model, num_classes, cfg.data.img_size)
    model = model.to(device)
    if n_images := wants_training_images(model):  # e.g. airbench's whitening layer, from training-image patches
        getattr(model, DATA_INIT_HOOK)(data.train.sample_images(n_images))
    if cfg.model.init and load_init:  # fine-tuning from local weights
        init_model(model, cfg.model.init, strict=cfg.model.init_strict)
    probe_model(model, cfg, device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if t.sync_bn and info.enabled:
        if device.type != "cuda":
            raise ConfigError("trainer.sync_bn=true needs CUDA (NCCL); drop it on CPU.")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_optimizer(cfg, model, info.world_size)
    scale_head_lr(optimizer, model, cfg.optim.head_lr_scale)
    updates_per_epoch = math.ceil(len(data.train) / t.grad_accum_steps)
    total_updates = total_updates_of(cfg, len(data.train))
    scheduler = build_scheduler(cfg, optimizer, updates_per_epoch, total_updates)
    if scheduler is None:  # layer_decay / head_lr_scale factors without a timm scheduler
        apply_lr_scale_without_scheduler(optimizer)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    ema = None
    if t.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=t.ema_decay, use_warmup=t.ema_warmup)
    averager = None
    if t.lookahead:  # airbench94's lookahead-style averaging, written back into the model
        from .averaging import LookaheadAverage

        averager = LookaheadAverage(model, t.lookahead_every, total_updates, t.lookahead_decay, t.lookahead_power)
    wrapped = model
    if info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    compile_model, compile_note = resolve_compile(t.compile, device, mixer.eager_reason())  # auto: CUDA only
    if compile_model:
        wrapped = torch.compile(wrapped)
    parts = StepParts(
        model=wrapped,
        optimizer=optimizer,
        loss_fn=create_loss(cfg.loss).to(device),
        mixer=mixer,
        device=device,
        amp_dtype=amp_dtype,
        scaler=scaler,
        scheduler=scheduler,
        ema=ema,
        averager=averager,
        grad_accum_steps=t.grad_accum_steps,
        clip_grad=t.clip_grad,
        clip_mode=t.clip_mode,
        on_nonfinite=t.on_nonfinite,
        max_nonfinite=t.max_nonfinite,
    )
    notes = [n for n in (size_note, compile_note, cpu_bf16_note(amp_dtype, device), tf32_note, determinism_note) if n]
    return Built(data=data, num_classes=num_classes, mixer=mixer, model=model, parts=parts, notes=notes)


@dataclass
class BuiltForEval:
    """What evaluating a checkpoint needs, built from its config in one process."""

    data: object  # mixcut.data.DataBundle: its val stream is what is evaluated
    source: object  # the loaded source (file paths for localization), before any device cache
    num_classes: int
    model: torch.nn.Module  # the checkpoint's weights (or its EMA's), in eval mode
    device: torch.device
    amp_dtype: torch.dtype | None
    notes: list[str] = field(default_factory=list)


def build_for_eval(cfg: DictConfig, checkpoint: dict, use_ema: bool = False) -> BuiltForEval:
    """Device, precision, validation data and the model with ``checkpoint``'s weights
    (``use_ema``: its EMA's), built as `build` builds them for training."""
    device = resolve_device(cfg.trainer.device, D.DistInfo(0, 1, 0))
    amp_dtype = resolve_amp(cfg.trainer.amp, device)
    tf32_note = set_tf32(cfg.trainer.tf32, device, amp_dtype)
    source = load_source(cfg.data)
    num_classes = num_classes_of(cfg, source)
    data = build_data(cfg, device, source=source)
    if data.val is None:
        raise ConfigError(f"data={cfg.data.name} has no validation split to evaluate on; set data.val_fraction > 0.")
    model, size_note = create_model_for_data(cfg.model, num_classes, cfg.data.img_size)  # as the trainer built it
    model.load_state_dict(model_weights(checkpoint, use_ema))
    model = model.to(device)
    probe_model(model, cfg, device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.eval()
    notes = [n for n in (size_note, tf32_note) if n]
    return BuiltForEval(data, source, num_classes, model, device, amp_dtype, notes)
