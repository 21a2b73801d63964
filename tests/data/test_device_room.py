"""data.cache=device on a GPU: the split is copied only where it leaves room to train
(torch.cuda.mem_get_info is faked, so this runs on a CPU machine)."""

from __future__ import annotations

import pytest
import torch

from mixcut.data.pipelines import DeviceBatches, check_device_room
from mixcut.data.sources import TensorSplit
from mixcut.errors import ConfigError

GIB = 2**30


def fake_gpu(monkeypatch, free: int, total: int = 80 * GIB) -> list:
    asked = []

    def mem_get_info(device=None):
        asked.append(device)
        return free, total

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    return asked


def test_a_split_too_big_for_the_gpu_is_refused_before_the_copy(monkeypatch):
    asked = fake_gpu(monkeypatch, free=1000)
    split = TensorSplit(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ConfigError, match=r"data\.cache=none") as e:
        DeviceBatches(
            split, aug=None, img_size=16, train=True, batch_size=2, device="cuda:1", normalize=None,
            seed=0, rank=0, world_size=1,
        )  # fmt: skip
    assert "training split" in str(e.value) and "cuda:1" in str(e.value)
    assert asked == [torch.device("cuda", 1)]


def test_room_to_spare_passes(monkeypatch):
    fake_gpu(monkeypatch, free=10 * GIB)
    check_device_room(4 * GIB, torch.device("cuda", 0), "training")
    with pytest.raises(ConfigError, match="6.00 GiB on cuda:0, which has 10.00 of 80.00 GiB free"):
        check_device_room(6 * GIB, torch.device("cuda", 0), "training")


def test_the_cpu_is_not_asked(monkeypatch):
    asked = fake_gpu(monkeypatch, free=0)
    check_device_room(4 * GIB, torch.device("cpu"), "training")
    assert asked == []
