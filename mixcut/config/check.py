"""`check`: the one validation of a composed training config.

The schema (`mixcut.config.schemas`) already refused unknown keys, wrong types
and values outside the fixed choices; this checks ranges, combinations, the
model name and the mixer's options, before any data is read, and raises
`ConfigError` with one sentence that says what to change.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..runtime.compile import normalize_compile
from .schemas import IMAGENET_MEAN


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _prob(value: float, key: str) -> None:
    _check(0.0 <= value <= 1.0, f"{key} must be a probability in [0, 1]; got {value}.")


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
    from ..data.transforms import auto_augment_transform

    try:
        auto_augment_transform(aug, 224, IMAGENET_MEAN)
    except (AssertionError, ValueError, KeyError, IndexError) as e:
        raise ConfigError(
            f"aug.auto_augment={aug.auto_augment!r} is not a valid timm policy string "
            f"(e.g. rand-m9-mstd0.5-inc1, augmix-m5-w3, original){': ' + str(e) if str(e) else ''}."
        ) from None


_checked: set[str] = set()  # configs (as YAML) that passed `check` in this process


def check(cfg: DictConfig) -> None:
    """Validate ``cfg`` once: ranges, combinations, model name, mixer options.

    Raises `ConfigError` with one sentence. The command line's preflight and the
    run call it with the same composed config; the second call returns at once.
    """
    key = OmegaConf.to_yaml(cfg)
    if key in _checked:
        return
    _check_values(cfg)
    from ..models import check_model_name

    check_model_name(cfg.model.name)
    _check_mixer(cfg)
    _checked.add(key)


def mixer_options(cfg: DictConfig) -> tuple[str, dict]:
    """The ``mix`` group as (name, keyword arguments of `mixcut.mix.create_mixer`)."""
    options = to_container(cfg.mix)
    name = options.pop("name")
    for key in ("lam_clip", "minmax"):
        if options.get(key) is not None:
            options[key] = tuple(options[key])
    return name, options


def _check_mixer(cfg: DictConfig) -> None:
    """Option errors the schema cannot see (ranges, combinations) come from the mixer's constructor."""
    from ..mix import create_mixer

    name, options = mixer_options(cfg)
    try:
        create_mixer(name, num_classes=cfg.data.num_classes, label_smoothing=cfg.loss.label_smoothing, seed=0, **options)
    except ValueError as e:
        raise ConfigError(f"mix: {e}") from e


def _check_values(cfg: DictConfig) -> None:
    """Ranges and combinations of every group."""
    d, t, o, s, a, loss = cfg.data, cfg.trainer, cfg.optim, cfg.sched, cfg.aug, cfg.loss
    _check(d.img_size >= 1, f"data.img_size must be >= 1; got {d.img_size}.")
    _check(d.num_classes is None or d.num_classes >= 1, f"data.num_classes must be >= 1; got {d.num_classes}.")
    _check(0.0 <= d.val_fraction < 1.0, f"data.val_fraction must be in [0, 1); got {d.val_fraction}.")
    _check(d.num_workers >= 0, f"data.num_workers must be >= 0; got {d.num_workers}.")
    _check(d.repeated_aug >= 0, f"data.repeated_aug must be >= 0; got {d.repeated_aug}.")
    _check(len(d.mean) == len(d.std) and all(v > 0 for v in d.std), "data.mean and data.std need one positive std per mean.")
    _check(d.name != "shards" or d.train_shards, "data=shards needs data.train_shards='DIR/train-{000000..000099}.tar'.")
    _check(d.shuffle_buffer >= 0, f"data.shuffle_buffer must be >= 0; got {d.shuffle_buffer}.")
    _check(d.name != "shards" or d.cache != "device", "data=shards streams from the shards; data.cache=device is not available.")
    _check(d.name != "shards" or d.repeated_aug <= 1, "data.repeated_aug needs random access; with data=shards leave it at 0.")
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
    normalize_compile(t.compile)  # auto | true | false (booleans from older configs still work)
    _check(t.clip_grad is None or t.clip_grad > 0, f"trainer.clip_grad must be > 0 (or null); got {t.clip_grad}.")
    _check(0.0 < t.ema_decay < 1.0, f"trainer.ema_decay must be in (0, 1); got {t.ema_decay}.")
    _check(t.eval_every >= 1, f"trainer.eval_every must be >= 1; got {t.eval_every}.")
    _check(t.log_every >= 1, f"trainer.log_every must be >= 1; got {t.log_every}.")
    _check(t.ckpt_every_steps >= 0, f"trainer.ckpt_every_steps must be >= 0; got {t.ckpt_every_steps}.")
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
    _check(o.layer_decay is None or 0 < o.layer_decay <= 1, f"optim.layer_decay must be in (0, 1]; got {o.layer_decay}.")
    _check(o.head_lr_scale > 0, f"optim.head_lr_scale must be > 0; got {o.head_lr_scale}.")
    _check(
        not (cfg.model.init and cfg.model.pretrained),
        "model.init=PATH and model.pretrained=true both give starting weights; drop one (model.pretrained=false).",
    )

    _check_optimizer_name(o.name)
    _check(s.warmup_epochs >= 0, f"sched.warmup_epochs must be >= 0; got {s.warmup_epochs}.")
    _check(
        s.warmup_epochs < t.epochs or s.warmup_epochs == 0,
        f"sched.warmup_epochs ({s.warmup_epochs}) must be shorter than trainer.epochs ({t.epochs}).",
    )
    _check(s.min_lr >= 0 and s.warmup_lr >= 0, "sched.min_lr and sched.warmup_lr must be >= 0.")
    _check(s.decay_epochs > 0, f"sched.decay_epochs must be > 0; got {s.decay_epochs}.")
    _check(0 < s.decay_rate <= 1, f"sched.decay_rate must be in (0, 1]; got {s.decay_rate}.")

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
    _check_recipe(cfg)
    _prob(loss.label_smoothing, "loss.label_smoothing")

    _check(cfg.mix is not None and "name" in cfg.mix, "mix is not set; pick one with mix=none|mixup|cutmix|deit|...")
    _prob(cfg.mix.prob, "mix.prob")


def _check_recipe(cfg) -> None:
    """The airbench94 options (optim.decoupled, sched=warmdown, lookahead, alternate flips)."""
    o, s, t, a = cfg.optim, cfg.sched, cfg.trainer, cfg.aug
    _check(
        not (o.decoupled and o.lr_scale_batch),
        "optim.decoupled=true already scales the lr with the global batch; drop optim.lr_scale_batch.",
    )
    _check(
        not ((o.decoupled or o.norm_bias_lr_scale != 1.0) and o.layer_decay),
        "optim.layer_decay builds its own parameter groups; it cannot be combined with optim.decoupled or "
        "optim.norm_bias_lr_scale (set optim.layer_decay=null).",
    )
    _check(o.norm_bias_lr_scale > 0, f"optim.norm_bias_lr_scale must be > 0; got {o.norm_bias_lr_scale}.")
    _check(0 <= s.warmup_fraction < 1, f"sched.warmup_fraction must be in [0, 1); got {s.warmup_fraction}.")
    _check(s.start_factor >= 0 and s.end_factor >= 0, "sched.start_factor and sched.end_factor must be >= 0.")
    _check(0 < t.last_epoch_fraction <= 1, f"trainer.last_epoch_fraction must be in (0, 1]; got {t.last_epoch_fraction}.")
    _check(t.lookahead_every >= 1, f"trainer.lookahead_every must be >= 1; got {t.lookahead_every}.")
    _check(0 <= t.lookahead_decay < 1, f"trainer.lookahead_decay must be in [0, 1); got {t.lookahead_decay}.")
    _check(
        a.hflip_mode != "alternate"
        or cfg.data.cache == "device"
        or (cfg.data.cache == "auto" and cfg.data.name in ("digits", "cifar10", "cifar100", "synthetic")),
        "aug.hflip_mode=alternate flips each image by its index, which only the device cache keeps: add data.cache=device.",
    )


def to_container(node) -> Any:
    """A plain (resolved) Python copy of a config node."""
    # enums as their strings: loggers and JSON see exactly what the user typed
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True) if node is not None else None
