"""Data: sources (what images exist) and batch streams (how they reach the device)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .cache import load_or_decode, recipe_for, recipe_transform
from .device_aug import Normalize
from .folder import FileSplit
from .pipelines import BatchAugment, BatchStream, DataError, DeviceBatches, LoaderBatches, _Erasing
from .shards import ShardBatches, ShardSplit
from .sources import Source, TensorSplit, load_source
from .transforms import eval_transform, train_transform

__all__ = ["DataBundle", "build_data", "load_source", "DataError", "BatchStream"]


@dataclass
class DataBundle:
    train: BatchStream
    val: BatchStream | None
    source: Source

    @property
    def num_classes(self) -> int:
        return self.source.num_classes


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


def build_data(cfg, device: torch.device, rank: int = 0, world_size: int = 1, source: Source | None = None) -> DataBundle:
    """Train and validation batch streams as the config describes them."""
    d, aug, t = cfg.data, cfg.aug, cfg.trainer
    source = source or load_source(d)
    cache = resolve_cache(d, source.train)
    if cache == "device" and (aug.auto_augment or aug.color_jitter):
        raise ConfigError("aug.auto_augment and aug.color_jitter run per image; use data.cache=none with them.")
    if cache == "device" and isinstance(source.train, FileSplit):

        def decoded(split, name: str, train: bool):
            return load_or_decode(split, d, aug, name, train, rank, world_size) if split is not None and len(split) else split

        source = Source(decoded(source.train, "train", True), decoded(source.val, "val", False), source.classes)
    normalize = Normalize(d.mean, d.std, device, channels_last=t.channels_last)
    common = dict(batch_size=t.batch_size, device=device, normalize=normalize, seed=t.seed, rank=rank, world_size=world_size)
    erasing = _Erasing(aug, device) if aug.re_prob > 0 else None

    def stream(split, train: bool) -> BatchStream:
        kw = dict(
            common,
            train=train,
            repeated_aug=d.repeated_aug if train else 0,
            erasing=erasing,
            limit=t.limit_train_batches if train else t.limit_val_batches,
        )
        if cache == "device":
            return DeviceBatches(split, aug=aug, img_size=d.img_size, **kw)
        batch_augment = None
        if not train:
            tf = eval_transform(aug, d.img_size)
        elif batch_augmentable(aug):
            # workers only decode (resize + centre crop); crops and flips happen on the whole
            # batch on the device, exactly as on the cache path (same draws, same pixels)
            tf = recipe_transform(recipe_for(d, aug, train=True))
            batch_augment = BatchAugment(aug, d.img_size, device, t.seed, rank)
        else:
            tf = train_transform(aug, d.img_size, d.mean)
        # issue 13: tar shards stream through their own loader; same transforms, batches and normalisation
        shards = isinstance(split, ShardSplit)
        return (ShardBatches if shards else LoaderBatches)(
            split,
            transform=tf,
            num_workers=d.num_workers,
            pin_memory=d.pin_memory,
            persistent_workers=d.persistent_workers,
            prefetch_factor=d.prefetch_factor,
            on_bad_image=d.on_bad_image,
            batch_augment=batch_augment,
            **(dict(shuffle_buffer=d.shuffle_buffer) if shards else {}),
            **kw,
        )

    train = stream(source.train, True)
    if len(train) == 0:
        raise ConfigError(
            f"the training split has {len(source.train)} images, fewer than one batch per rank "
            f"(trainer.batch_size={t.batch_size} x {world_size} rank(s)); lower trainer.batch_size."
        )
    val = stream(source.val, False) if source.val is not None and len(source.val) else None
    return DataBundle(train, val, source)
