"""Data: sources (what images exist) and batch streams (how they reach the device)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .device_aug import Normalize
from .pipelines import BatchStream, DataError, Erasing, FirstBatches
from .routes import (
    StreamContext,
    StreamSpec,
    build_stream,
    check_route,
    decode_into_cache,
    is_file_split,
    pick_route,
    resolve_cache,
)
from .sources import load_source
from .splits import Source

__all__ = ["DataBundle", "build_data", "load_source", "DataError", "BatchStream", "FirstBatches"]


@dataclass
class DataBundle:
    train: BatchStream
    val: BatchStream | None
    source: Source

    @property
    def num_classes(self) -> int:
        return self.source.num_classes


def build_data(cfg, device: torch.device, rank: int = 0, world_size: int = 1, source: Source | None = None) -> DataBundle:
    """Train and validation batch streams as the config describes them (see `routes`)."""
    d, aug, t = cfg.data, cfg.aug, cfg.trainer
    source = source or load_source(d)
    cache = resolve_cache(d, source.train)
    check_route(cache, aug)
    if cache == "device" and is_file_split(source.train):
        source = decode_into_cache(source, d, aug, rank, world_size)
    normalize = Normalize(d.mean, d.std, device, channels_last=t.channels_last)
    erasing = Erasing(aug, device) if aug.re_prob > 0 else None
    ctx = StreamContext(StreamSpec.from_config(cfg), aug, device, rank, world_size, normalize, erasing)

    train = build_stream(pick_route(cache, aug, train=True), source.train, True, ctx)
    if len(train) == 0:
        raise ConfigError(
            f"the training split has {len(source.train)} images, fewer than one batch per rank "
            f"(trainer.batch_size={t.batch_size} x {world_size} rank(s)); lower trainer.batch_size."
        )
    val = None
    if source.val is not None and len(source.val):
        val = build_stream(pick_route(cache, aug, train=False), source.val, False, ctx)
    return DataBundle(train, val, source)
