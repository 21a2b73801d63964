"""The typed schema of the training config: one dataclass per group.

Hydra composes the YAML files under ``configs/`` onto these dataclasses, so a
typo in a key, a string where a number belongs, or a value outside a fixed set
of choices (the `Choice` enums) fails at composition with the list of valid
values. Ranges and combinations are checked later by `mixcut.config.check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class Choice(str, Enum):
    """A fixed set of string options. Members compare, hash and print as their
    value, so code and messages treat them as the strings users type."""

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


class DataName(Choice):
    digits = "digits"  # scikit-learn's handwritten digits, embedded (offline default)
    cifar10 = "cifar10"
    cifar100 = "cifar100"
    imagenet = "imagenet"
    folder = "folder"  # any ROOT/train/<class>/* (optional ROOT/val/)
    synthetic = "synthetic"
    shards = "shards"  # WebDataset tar shards written by scripts/make_shards.py


class CacheMode(Choice):
    auto = "auto"
    none = "none"
    device = "device"


class BadImagePolicy(Choice):
    skip = "skip"
    error = "error"


class LossName(Choice):
    ce = "ce"
    bce = "bce"


class SchedName(Choice):
    cosine = "cosine"
    step = "step"
    multistep = "multistep"
    const = "const"
    warmdown = "warmdown"  # airbench94: linear warmup then linear decay, per update (mixcut.schedulers)


class TrainCrop(Choice):
    pad = "pad"
    rrc = "rrc"
    none = "none"


class PaddingMode(Choice):
    constant = "constant"
    reflect = "reflect"


class FlipMode(Choice):
    random = "random"  # each sample flipped with probability aug.hflip, drawn afresh every epoch
    alternate = "alternate"  # airbench94: the first epoch at random, then every image flips on alternate epochs


class TTAMode(Choice):
    none = "none"
    flip = "flip"  # mean logits of the image and its mirror
    flip_translate = "flip_translate"  # airbench94's 6 views: flip x (no shift, +1px and -1px diagonal shifts)


class ErasingMode(Choice):
    pixel = "pixel"
    rand = "rand"
    const = "const"


class Precision(Choice):
    auto = "auto"
    none = "none"
    bf16 = "bf16"
    fp16 = "fp16"
    native = "native"  # auto on CUDA; on a CPU bf16 where it is computed in hardware (AVX512-BF16/AMX), else fp32


class ClipMode(Choice):
    norm = "norm"
    value = "value"


class NonFinitePolicy(Choice):
    skip = "skip"
    abort = "abort"


class WandbMode(Choice):
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class DataConfig:
    name: DataName = DataName.digits
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
    cache: CacheMode = CacheMode.auto  # auto: tensor data sets on the device, files decoded in workers
    cache_dir: str | None = None
    on_bad_image: BadImagePolicy = BadImagePolicy.skip
    repeated_aug: int = 0  # repeated-augmentation factor (DeiT uses 3); 0 or 1 = off
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    train_size: int = 1024  # synthetic only
    val_size: int = 256  # synthetic only
    # data=shards: WebDataset tar shards from scripts/make_shards.py (brace patterns, paths or URLs)
    train_shards: str | None = None
    val_shards: str | None = None
    shard_index: str | None = None  # index.json; default: beside the first training shard
    shuffle_buffer: int = 1000  # samples per DataLoader worker mixed across shard boundaries


@dataclass
class ModelConfig:
    name: str = "resnet18"
    pretrained: bool = False
    drop_rate: float = 0.0
    drop_path_rate: float | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    # fine-tuning: start from local weights (mixcut checkpoint, .pt/.pth state dict, .safetensors);
    # a different class count re-initialises the classifier; other key mismatches fail unless init_strict=false
    init: str | None = None
    init_strict: bool = True


@dataclass
class LossConfig:
    name: LossName = LossName.ce  # ce: soft-target cross entropy
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
    head_lr_scale: float = 1.0  # classifier lr = lr x this (x its layer-decay factor); fine-tuning
    # airbench94's form (mixcut.optim): lr and weight_decay per 1,024 examples, Nesterov's gain divided out,
    # weight decay independent of the lr; the global batch size is applied for you
    decoupled: bool = False
    norm_bias_lr_scale: float = 1.0  # lr factor for the biases of BatchNorm/LayerNorm/GroupNorm (airbench: 64)


@dataclass
class SchedConfig:
    name: SchedName = SchedName.cosine
    warmup_epochs: float = 0.0
    warmup_lr: float = 1e-5
    min_lr: float = 0.0
    decay_epochs: float = 30.0  # step
    decay_milestones: list[int] = field(default_factory=lambda: [30, 60])  # multistep
    decay_rate: float = 0.1
    step_on_epochs: bool = False  # False: update the lr every optimizer step
    # warmdown: lr factor start_factor -> 1 over warmup_fraction of all updates, then -> end_factor
    warmup_fraction: float = 0.23
    start_factor: float = 0.2
    end_factor: float = 0.07


@dataclass
class AugConfig:
    name: str = "cifar"
    train_crop: TrainCrop = TrainCrop.pad  # pad: pad and random crop; rrc: random resized crop
    padding: int = 4
    padding_mode: PaddingMode = PaddingMode.constant
    scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    ratio: list[float] = field(default_factory=lambda: [0.75, 1.3333333])
    hflip: float = 0.5
    hflip_mode: FlipMode = FlipMode.random  # alternate: needs data.cache=device
    color_jitter: float | None = None
    auto_augment: str | None = None  # timm string, e.g. rand-m9-mstd0.5-inc1
    re_prob: float = 0.0  # random erasing, applied on the device
    re_mode: ErasingMode = ErasingMode.pixel
    re_count: int = 1
    interpolation: str = "bilinear"
    crop_pct: float = 0.875  # evaluation: resize to img_size / crop_pct, centre crop


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Precision = Precision.auto  # auto: bf16 on CUDA with native bf16 (fp16 before Ampere), fp32 on CPU
    tf32: bool = True  # fp32 matmuls/convolutions in TF32 on Ampere+ GPUs (false: full IEEE fp32)
    seed: int = 0
    deterministic: bool = False
    compile: str = "auto"  # auto (compile on CUDA only) | true | false (see mixcut.runtime.compile)
    channels_last: bool = False
    grad_accum_steps: int = 1
    clip_grad: float | None = None
    clip_mode: ClipMode = ClipMode.norm
    ema: bool = False
    ema_decay: float = 0.9998
    ema_warmup: bool = False
    # lookahead-style averaging (mixcut.averaging, airbench94): every lookahead_every updates
    # avg <- lerp(avg, model, 1 - decay), model <- avg; decay = lookahead_decay * (t / T) ** lookahead_power
    lookahead: bool = False
    lookahead_every: int = 5
    lookahead_decay: float = 0.7737809375  # 0.95 ** 5
    lookahead_power: float = 3.0
    last_epoch_fraction: float = 1.0  # the last epoch trains this share of its batches (airbench94: 9.9 epochs = 10 and 0.9)
    eval_every: int = 1
    resume: str | None = None  # auto | PATH
    eval_only: bool = False
    stop_after_epoch: int | None = None  # end this invocation after that epoch (checkpoint kept; resume later)
    log_every: int = 20
    ckpt_every_steps: int = 0
    save_best: bool = True
    on_nonfinite: NonFinitePolicy = NonFinitePolicy.skip
    max_nonfinite: int = 10  # consecutive skipped steps before giving up
    sync_bn: bool = False
    threads: int | None = None
    progress: bool = True
    limit_train_batches: int | None = None
    limit_val_batches: int | None = None


@dataclass
class EvalConfig:
    tta: TTAMode = TTAMode.none  # test-time augmentation of the final evaluation, reported as tta_* beside the plain numbers


@dataclass
class LoggerConfig:
    console: bool = True
    tensorboard: bool = False
    wandb: bool = False
    mode: WandbMode = WandbMode.offline
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
    eval: EvalConfig = field(default_factory=EvalConfig)
    paper: dict[str, Any] = field(default_factory=dict)  # what an experiment should reproduce
