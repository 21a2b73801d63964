"""Structured-config schemas (registered in Hydra's ConfigStore) and validation.

The dataclasses type-check every group when Hydra composes the config: a typo
in a key or a string where a number belongs fails at composition. `validate`
then checks ranges and combinations, before any data is read, and raises
`ConfigError` with one sentence that says what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


# ------------------------------------------------------------------- schemas
@dataclass
class DataConfig:
    name: str = "digits"  # digits | cifar10 | cifar100 | imagenet | folder | synthetic
    root: str | None = None
    img_size: int = 32
    num_classes: int | None = None  # from the data set unless set
    val_fraction: float = 0.1  # held out from train/ when there is no val/ folder
    split_seed: int = 0  # fixes which images form that split, independent of trainer.seed
    download: bool = False
    num_workers: int = 2
    pin_memory: bool = True
    persistent_workers: bool = True
    prefetch_factor: int = 2
    cache: str = "auto"  # auto | none | device
    cache_dir: str | None = None
    on_bad_image: str = "skip"  # skip | error
    repeated_aug: int = 0  # repeated-augmentation factor (DeiT uses 3); 0 or 1 = off
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    train_size: int = 1024  # synthetic only
    val_size: int = 256  # synthetic only


@dataclass
class ModelConfig:
    name: str = "resnet18"
    pretrained: bool = False
    drop_rate: float = 0.0
    drop_path_rate: float | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    name: str = "ce"  # ce (soft-target cross entropy) | bce
    label_smoothing: float = 0.1
    bce_target_thresh: float | None = None  # bce: binarize targets above this


@dataclass
class OptimConfig:
    name: str = "sgd"  # any name of timm's create_optimizer_v2: sgd, momentum, adamw, lamb, ...
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    betas: list[float] | None = None
    eps: float | None = None
    lr_scale_batch: int | None = None  # lr * global_batch / lr_scale_batch (DeiT: 512)
    layer_decay: float | None = None
    filter_bias_and_bn: bool = True


@dataclass
class SchedConfig:
    name: str = "cosine"  # cosine | step | multistep | const
    warmup_epochs: float = 0.0
    warmup_lr: float = 1e-5
    min_lr: float = 0.0
    decay_epochs: float = 30.0  # step
    decay_milestones: list[int] = field(default_factory=lambda: [30, 60])  # multistep
    decay_rate: float = 0.1
    step_on_epochs: bool = False  # False: update the lr every optimizer step


@dataclass
class AugConfig:
    name: str = "cifar"
    train_crop: str = "pad"  # pad (pad-and-random-crop) | rrc (random resized crop) | none
    padding: int = 4
    padding_mode: str = "constant"  # constant | reflect
    scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    ratio: list[float] = field(default_factory=lambda: [0.75, 1.3333333])
    hflip: float = 0.5
    color_jitter: float | None = None
    auto_augment: str | None = None  # timm string, e.g. rand-m9-mstd0.5-inc1
    re_prob: float = 0.0  # random erasing, applied on the device
    re_mode: str = "pixel"
    re_count: int = 1
    interpolation: str = "bilinear"
    crop_pct: float = 0.875  # evaluation: resize to img_size / crop_pct, centre crop


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto | none | bf16 | fp16
    seed: int = 0
    deterministic: bool = False
    compile: str = "auto"  # auto (compile on CUDA only) | true | false (see mixcut.runtime.compile)
    channels_last: bool = False
    grad_accum_steps: int = 1
    clip_grad: float | None = None
    clip_mode: str = "norm"  # norm | value
    ema: bool = False
    ema_decay: float = 0.9998
    ema_warmup: bool = False
    eval_every: int = 1
    resume: str | None = None  # auto | PATH
    eval_only: bool = False
    stop_after_epoch: int | None = None  # end this invocation after that epoch (checkpoint kept; resume later)
    log_every: int = 20
    ckpt_every_steps: int = 0
    save_best: bool = True
    on_nonfinite: str = "skip"  # skip | abort
    max_nonfinite: int = 10  # consecutive skipped steps before giving up
    sync_bn: bool = False
    threads: int | None = None
    progress: bool = True
    limit_train_batches: int | None = None
    limit_val_batches: int | None = None


@dataclass
class LoggerConfig:
    console: bool = True
    tensorboard: bool = False
    wandb: bool = False
    mode: str = "offline"  # wandb: offline | online | disabled
    project: str = "mixcut"
    entity: str | None = None
    run_name: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mix: Any = None  # typed by the schema each mix/*.yaml pulls in
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paper: dict[str, Any] = field(default_factory=dict)  # what an experiment should reproduce


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    from .config_mix import MIX_SCHEMAS

    cs.store(name="train_schema", node=TrainConfig)
    for name, schema in MIX_SCHEMAS.items():
        cs.store(group="schema/mix", name=name, node=schema)


# ---------------------------------------------------------------- validation
DATASETS = ("digits", "cifar10", "cifar100", "imagenet", "folder", "synthetic")
SCHEDULERS = ("cosine", "step", "multistep", "const")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _prob(value: float, key: str) -> None:
    _check(0.0 <= value <= 1.0, f"{key} must be a probability in [0, 1]; got {value}.")


def _choice(value: str, key: str, choices) -> None:
    _check(value in choices, f"{key}={value!r} is not a known choice; use one of: {', '.join(choices)}.")


def _check_optimizer_name(name: str) -> None:
    import difflib

    from timm.optim import list_optimizers

    names = list_optimizers()
    if name.lower() not in names:
        close = difflib.get_close_matches(name.lower(), names, n=4)
        hint = f" Did you mean: {', '.join(close)}?" if close else " Common: sgd, momentum, adamw, lamb."
        raise ConfigError(f"optim.name={name!r} is not a timm optimizer.{hint}")


def _check_auto_augment(aug) -> None:
    if not aug.auto_augment:
        return
    from .data.transforms import _auto_augment

    try:
        _auto_augment(aug, 224, IMAGENET_MEAN)
    except (AssertionError, ValueError, KeyError, IndexError) as e:
        raise ConfigError(
            f"aug.auto_augment={aug.auto_augment!r} is not a valid timm policy string "
            f"(e.g. rand-m9-mstd0.5-inc1, augmix-m5-w3, original){': ' + str(e) if str(e) else ''}."
        ) from None


def validate(cfg: DictConfig) -> None:
    """Check ranges and combinations; raise `ConfigError` with one sentence."""
    d, t, o, s, a, loss = cfg.data, cfg.trainer, cfg.optim, cfg.sched, cfg.aug, cfg.loss
    _choice(d.name, "data.name", DATASETS)
    _check(d.img_size >= 1, f"data.img_size must be >= 1; got {d.img_size}.")
    _check(d.num_classes is None or d.num_classes >= 1, f"data.num_classes must be >= 1; got {d.num_classes}.")
    _check(0.0 <= d.val_fraction < 1.0, f"data.val_fraction must be in [0, 1); got {d.val_fraction}.")
    _check(d.num_workers >= 0, f"data.num_workers must be >= 0; got {d.num_workers}.")
    _choice(d.cache, "data.cache", ("auto", "none", "device"))
    _choice(d.on_bad_image, "data.on_bad_image", ("skip", "error"))
    _check(d.repeated_aug >= 0, f"data.repeated_aug must be >= 0; got {d.repeated_aug}.")
    _check(len(d.mean) == len(d.std) and all(v > 0 for v in d.std), "data.mean and data.std need one positive std per mean.")
    _check(
        d.name not in ("folder", "imagenet") or d.root,
        f"data={d.name} needs data.root=DIR (DIR/train/<class>/*.jpg, optional DIR/val/).",
    )

    _check(t.epochs >= 1, f"trainer.epochs must be >= 1; got {t.epochs}.")
    _check(t.batch_size >= 1, f"trainer.batch_size must be >= 1; got {t.batch_size}.")
    _check(t.grad_accum_steps >= 1, f"trainer.grad_accum_steps must be >= 1; got {t.grad_accum_steps}.")
    _check(
        t.device in ("auto", "cpu", "cuda") or str(t.device).startswith("cuda:"),
        f"trainer.device must be auto, cpu, cuda or cuda:N; got {t.device!r}.",
    )
    _choice(t.amp, "trainer.amp", ("auto", "none", "bf16", "fp16"))
    _choice(str(t.compile).lower(), "trainer.compile", ("auto", "true", "false"))  # issue 15; true/false still work
    _check(t.clip_grad is None or t.clip_grad > 0, f"trainer.clip_grad must be > 0 (or null); got {t.clip_grad}.")
    _choice(t.clip_mode, "trainer.clip_mode", ("norm", "value"))
    _check(0.0 < t.ema_decay < 1.0, f"trainer.ema_decay must be in (0, 1); got {t.ema_decay}.")
    _check(t.eval_every >= 1, f"trainer.eval_every must be >= 1; got {t.eval_every}.")
    _check(t.log_every >= 1, f"trainer.log_every must be >= 1; got {t.log_every}.")
    _check(t.ckpt_every_steps >= 0, f"trainer.ckpt_every_steps must be >= 0; got {t.ckpt_every_steps}.")
    _choice(t.on_nonfinite, "trainer.on_nonfinite", ("skip", "abort"))
    _check(t.max_nonfinite >= 1, f"trainer.max_nonfinite must be >= 1; got {t.max_nonfinite}.")
    _check(t.threads is None or t.threads >= 1, f"trainer.threads must be >= 1; got {t.threads}.")
    _check(
        t.stop_after_epoch is None or t.stop_after_epoch >= 1, f"trainer.stop_after_epoch must be >= 1; got {t.stop_after_epoch}."
    )
    _check(not t.eval_only or t.resume, "trainer.eval_only=true needs a checkpoint: add trainer.resume=PATH (or auto).")
    for key in ("limit_train_batches", "limit_val_batches"):
        v = t[key]
        _check(v is None or v >= 1, f"trainer.{key} must be >= 1 (or null); got {v}.")

    _check(o.lr > 0, f"optim.lr must be > 0; got {o.lr}.")
    _check(o.weight_decay >= 0, f"optim.weight_decay must be >= 0; got {o.weight_decay}.")
    _check(0.0 <= o.momentum < 1.0, f"optim.momentum must be in [0, 1); got {o.momentum}.")
    _check(o.lr_scale_batch is None or o.lr_scale_batch >= 1, f"optim.lr_scale_batch must be >= 1; got {o.lr_scale_batch}.")
    _check(o.betas is None or len(o.betas) == 2, f"optim.betas must be two numbers; got {o.betas}.")

    _check_optimizer_name(o.name)
    _choice(s.name, "sched.name", SCHEDULERS)
    _check(s.warmup_epochs >= 0, f"sched.warmup_epochs must be >= 0; got {s.warmup_epochs}.")
    _check(
        s.warmup_epochs < t.epochs or s.warmup_epochs == 0,
        f"sched.warmup_epochs ({s.warmup_epochs}) must be shorter than trainer.epochs ({t.epochs}).",
    )
    _check(s.min_lr >= 0 and s.warmup_lr >= 0, "sched.min_lr and sched.warmup_lr must be >= 0.")
    _check(s.decay_epochs > 0, f"sched.decay_epochs must be > 0; got {s.decay_epochs}.")
    _check(0 < s.decay_rate <= 1, f"sched.decay_rate must be in (0, 1]; got {s.decay_rate}.")

    _choice(a.train_crop, "aug.train_crop", ("pad", "rrc", "none"))
    _choice(a.padding_mode, "aug.padding_mode", ("constant", "reflect"))
    _check(a.padding >= 0, f"aug.padding must be >= 0; got {a.padding}.")
    _prob(a.hflip, "aug.hflip")
    _prob(a.re_prob, "aug.re_prob")
    _check(0 < a.crop_pct <= 1, f"aug.crop_pct must be in (0, 1]; got {a.crop_pct}.")
    _check(
        len(a.scale) == 2 and 0 < a.scale[0] <= a.scale[1] <= 1,
        f"aug.scale must be (lo, hi) with 0 < lo <= hi <= 1; got {list(a.scale)}.",
    )
    _check(
        len(a.ratio) == 2 and 0 < a.ratio[0] <= a.ratio[1], f"aug.ratio must be (lo, hi) with 0 < lo <= hi; got {list(a.ratio)}."
    )

    _check_auto_augment(a)
    _choice(loss.name, "loss.name", ("ce", "bce"))
    _prob(loss.label_smoothing, "loss.label_smoothing")

    _check(cfg.mix is not None and "name" in cfg.mix, "mix is not set; pick one with mix=none|mixup|cutmix|deit|...")
    _prob(cfg.mix.prob, "mix.prob")

    _choice(cfg.logger.mode, "logger.mode", ("offline", "online", "disabled"))


def to_container(node) -> Any:
    """A plain (resolved) Python copy of a config node."""
    return OmegaConf.to_container(node, resolve=True) if node is not None else None
