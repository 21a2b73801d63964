"""Streams are built from a typed `StreamSpec` read once from the config, not from the whole config."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _trainer_utils import compose

from mixcut.data import build_data
from mixcut.data.device_aug import Normalize
from mixcut.data.routes import DEVICE, StreamContext, StreamSpec, build_stream
from mixcut.data.splits import TensorSplit


def test_spec_reads_the_data_and_trainer_groups_once():
    cfg = compose(["data=synthetic", "trainer.batch_size=7", "trainer.seed=3", "trainer.limit_val_batches=2"])
    spec = StreamSpec.from_config(cfg)
    assert (spec.batch_size, spec.seed, spec.limit_val_batches, spec.img_size) == (7, 3, 2, cfg.data.img_size)
    assert spec.mean == tuple(cfg.data.mean)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.batch_size = 8


def test_a_stream_needs_no_config():
    """build_stream from a spec and the aug group: the same batches as build_data from the whole config."""
    cfg = compose(["data=synthetic", "data.img_size=8", "data.val_size=10", "trainer.batch_size=4", "trainer.device=cpu"])
    data = build_data(cfg, torch.device("cpu"))
    split = data.source.val
    assert isinstance(split, TensorSplit)
    normalize = Normalize(cfg.data.mean, cfg.data.std, torch.device("cpu"), channels_last=cfg.trainer.channels_last)
    ctx = StreamContext(StreamSpec.from_config(cfg), cfg.aug, torch.device("cpu"), 0, 1, normalize, None)
    stream = build_stream(DEVICE, split, False, ctx)
    for (x, y), (x0, y0) in zip(stream.epoch(0), data.val.epoch(0), strict=True):
        assert torch.equal(x, x0) and torch.equal(y, y0)
