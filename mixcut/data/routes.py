"""The three routes by which images reach the device, and the one function that
picks a route by name.

  device       decoded uint8 tensors held on the training device (tensor data sets,
               or files decoded once into the cache); crops and flips on whole batches
  batch_aug    DataLoader workers decode files (resize + centre crop) and the crops
               and flips run on whole batches on the device: same draws and pixels as
               the device route
  workers      DataLoader workers run the full per-image transform (random resized
               crops of full-size files, colour jitter, auto-augment)

On the two worker routes, a split of WebDataset shards (``data=shards``) is read by
`shards.ShardBatches` instead of `pipelines.LoaderBatches`: same transforms and batches.

Every route yields uint8 (or float) batches that are normalised on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .cache import load_or_decode, recipe_for, recipe_transform
from .device_aug import Normalize
from .folder import FileSplit
from .pipelines import BatchAugment, BatchStream, DeviceBatches, Erasing, LoaderBatches
from .shards import ShardBatches, ShardSplit
from .splits import Source, TensorSplit
from .transforms import eval_transform, train_transform

DEVICE, BATCH_AUG, WORKERS = "device", "batch_aug", "workers"


def batch_augmentable(aug) -> bool:
    """True when the training augmentation is a pad-crop or no crop plus a flip: then
    the worker path leaves it to `BatchAugment` on the device. Random resized crops
    of full-size files, colour jitter and auto-augment stay per image in the workers."""
    return aug.train_crop in ("pad", "none") and not aug.color_jitter and not aug.auto_augment


def resolve_cache(data_cfg, split) -> str:
    """``auto`` keeps tensor data sets on the device and decodes files in workers."""
    if data_cfg.cache != "auto":
        return data_cfg.cache
    return "device" if isinstance(split, TensorSplit) else "none"


def pick_route(cache: str, aug, train: bool) -> str:
    """The route of one split: ``data.cache`` (resolved) and the augmentation decide."""
    if cache == "device":
        return DEVICE
    return BATCH_AUG if train and batch_augmentable(aug) else WORKERS


def decode_into_cache(source: Source, data_cfg, aug, rank: int, world_size: int) -> Source:
    """The file splits of ``source`` as decoded tensors (from the cache file, or decoded and cached)."""

    def decoded(split, name: str, train: bool):
        return load_or_decode(split, data_cfg, aug, name, train, rank, world_size) if split is not None and len(split) else split

    return Source(decoded(source.train, "train", True), decoded(source.val, "val", False), source.classes)


@dataclass(frozen=True)
class StreamSpec:
    """What the batch streams read from the ``data`` and ``trainer`` groups, read once
    (`from_config`): the streams are built from this, not from the whole config."""

    img_size: int
    mean: tuple[float, ...]
    batch_size: int
    seed: int
    repeated_aug: int
    limit_train_batches: int | None
    limit_val_batches: int | None
    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    prefetch_factor: int | None
    on_bad_image: str
    shuffle_buffer: int

    @classmethod
    def from_config(cls, cfg) -> StreamSpec:
        d, t = cfg.data, cfg.trainer
        return cls(
            img_size=d.img_size,
            mean=tuple(d.mean),
            batch_size=t.batch_size,
            seed=t.seed,
            repeated_aug=d.repeated_aug,
            limit_train_batches=t.limit_train_batches,
            limit_val_batches=t.limit_val_batches,
            num_workers=d.num_workers,
            pin_memory=d.pin_memory,
            persistent_workers=d.persistent_workers,
            prefetch_factor=d.prefetch_factor,
            on_bad_image=d.on_bad_image,
            shuffle_buffer=d.shuffle_buffer,
        )


@dataclass
class StreamContext:
    """What every stream of a run shares: the spec, the ``aug`` group, where and how batches land."""

    spec: StreamSpec
    aug: object  # the aug group (AugConfig): transforms and batch augmentation read it
    device: torch.device
    rank: int
    world_size: int
    normalize: Normalize
    erasing: Erasing | None


def build_stream(route: str, split, train: bool, ctx: StreamContext) -> BatchStream:
    """The batch stream of ``split`` along ``route``."""
    s, aug = ctx.spec, ctx.aug
    kw = dict(
        batch_size=s.batch_size,
        device=ctx.device,
        normalize=ctx.normalize,
        seed=s.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        train=train,
        repeated_aug=s.repeated_aug if train else 0,
        erasing=ctx.erasing,
        limit=s.limit_train_batches if train else s.limit_val_batches,
    )
    if route == DEVICE:
        return DeviceBatches(split, aug=aug, img_size=s.img_size, **kw)
    batch_augment = None
    if not train:
        tf = eval_transform(aug, s.img_size)
    elif route == BATCH_AUG:
        # workers only decode (resize + centre crop); crops and flips happen on the whole
        # batch on the device, exactly as on the cache path (same draws, same pixels)
        tf = recipe_transform(recipe_for(s, aug, train=True))
        batch_augment = BatchAugment(aug, s.img_size, ctx.device, s.seed, ctx.rank)
    else:
        tf = train_transform(aug, s.img_size, s.mean)
    # tar shards stream through their own loader: same transforms, batches and normalisation
    shards = isinstance(split, ShardSplit)
    return (ShardBatches if shards else LoaderBatches)(
        split,
        transform=tf,
        num_workers=s.num_workers,
        pin_memory=s.pin_memory,
        persistent_workers=s.persistent_workers,
        prefetch_factor=s.prefetch_factor,
        on_bad_image=s.on_bad_image,
        batch_augment=batch_augment,
        **(dict(shuffle_buffer=s.shuffle_buffer) if shards else {}),
        **kw,
    )


def check_route(cache: str, aug) -> None:
    if cache == "device" and (aug.auto_augment or aug.color_jitter):
        raise ConfigError("aug.auto_augment and aug.color_jitter run per image; use data.cache=none with them.")


def is_file_split(split) -> bool:
    return isinstance(split, FileSplit)
