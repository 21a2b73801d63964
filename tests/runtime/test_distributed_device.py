"""Multi-GPU device binding, proven without GPUs: torch.cuda and torch.distributed
are replaced by recorders, so the order of the calls and the device of every
tensor handed to a collective can be checked on a CPU machine."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from mixcut.runtime import distributed as D


@pytest.fixture
def fake_nccl(monkeypatch):
    """Rank 1 of 2 on ``cuda:1``: records set_device, init_process_group and the collectives."""
    calls: list[tuple] = []
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", torch.device(d))))
    initialized = []
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(initialized))
    monkeypatch.setattr(dist, "is_available", lambda: True)

    def init(backend, **kw):
        calls.append(("init_process_group", backend, kw.get("device_id")))
        initialized.append(True)

    monkeypatch.setattr(dist, "init_process_group", init)
    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: "nccl")
    monkeypatch.setattr(dist, "destroy_process_group", lambda: initialized.clear())
    yield calls
    D.cleanup()


def test_set_device_comes_before_the_process_group(fake_nccl):
    D.init_process_group(D.DistInfo(rank=1, world_size=2, local_rank=1), torch.device("cuda", 1))
    assert fake_nccl == [("set_device", torch.device("cuda", 1)), ("init_process_group", "nccl", torch.device("cuda", 1))]
    assert D.collective_device() == torch.device("cuda", 1)


def test_single_process_on_a_named_gpu_sets_it_too(fake_nccl):
    # trainer.device=cuda:3 without torchrun: current_device() must say cuda:3 (pin thread, bf16 probe)
    D.init_process_group(D.DistInfo(), torch.device("cuda", 3))
    assert fake_nccl == [("set_device", torch.device("cuda", 3))]


def test_collective_tensors_live_on_the_rank_device(fake_nccl, monkeypatch):
    D.init_process_group(D.DistInfo(rank=1, world_size=2, local_rank=1), torch.device("cuda", 1))
    seen = {}

    def broadcast_object_list(box, src=0, group=None, device=None):
        seen["broadcast_object_list"] = device

    monkeypatch.setattr(dist, "broadcast_object_list", broadcast_object_list)
    assert D.broadcast_object("run-dir") == "run-dir"
    assert seen["broadcast_object_list"] == torch.device("cuda", 1)

    # all_reduce_max: the tensor is made on the rank's device (no `.cuda()`, which means cuda:0 ... or
    # whatever the current device is); this CPU machine makes it on the CPU and records what was asked
    made = []
    real_tensor = torch.tensor

    def tensor(data, *args, device=None, **kw):
        made.append(device)
        return real_tensor(data, *args, **kw)

    monkeypatch.setattr(torch, "tensor", tensor)
    monkeypatch.setattr(dist, "all_reduce", lambda t, op=None: t.fill_(7))
    assert D.all_reduce_max(1) == 7
    assert made == [torch.device("cuda", 1)]


def test_gloo_collectives_stay_on_the_cpu(fake_nccl, monkeypatch):
    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: "gloo")
    D.init_process_group(D.DistInfo(rank=1, world_size=2, local_rank=1), torch.device("cpu"))
    assert fake_nccl == [("init_process_group", "gloo", None)]
    assert D.collective_device() == torch.device("cpu")
    monkeypatch.setattr(dist, "all_reduce", lambda t, op=None: t.fill_(5) if t.device.type == "cpu" else None)
    assert D.all_reduce_max(1) == 5


def test_broadcast_buffers_is_one_call_per_dtype(fake_nccl, monkeypatch):
    D.init_process_group(D.DistInfo(rank=1, world_size=2, local_rank=1), torch.device("cpu"))
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(5))
    ema = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(5))
    sent = []

    def broadcast(t, src=0, **kw):  # rank 0 "sends" 0, 1, 2, ... in buffer order
        sent.append((t.dtype, t.numel()))
        t.copy_(torch.arange(t.numel(), dtype=t.dtype))

    monkeypatch.setattr(dist, "broadcast", broadcast)
    D.broadcast_buffers(model, ema)
    assert sent == [(torch.float32, 2 * (3 + 3 + 5 + 5)), (torch.int64, 4)]
    expected = torch.arange(32, dtype=torch.float32)
    got = torch.cat([b.reshape(-1) for m in (model, ema) for b in m.buffers() if b.dtype == torch.float32])
    assert torch.equal(got, expected)
    counts = [int(b) for m in (model, ema) for b in m.buffers() if b.dtype == torch.int64]
    assert counts == [0, 1, 2, 3]


def test_preflight_sets_the_rank_device_before_the_amp_probe(monkeypatch, tmp_path):
    """train.py's preflight probes bf16 support (a tensor on the current device on pre-Ampere
    cards): under torchrun that must be the rank's GPU, not cuda:0 for all eight ranks."""
    from _trainer_utils import CONFIGS

    from mixcut.cli import preflight

    calls = []
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", torch.device(d))))
    from types import SimpleNamespace

    probes = {
        "is_bf16_supported": True,
        "get_device_properties": SimpleNamespace(major=9, minor=0, name="fake H100", total_memory=80 * 2**30),
        "get_device_capability": (9, 0),
    }
    for name, answer in probes.items():
        monkeypatch.setattr(torch.cuda, name, lambda *a, _n=name, _r=answer, **k: calls.append((_n,)) or _r)
    preflight(["train.py", "trainer.device=auto", "trainer.amp=auto", f"hydra.run.dir={tmp_path}"], str(CONFIGS))
    assert calls[0] == ("set_device", torch.device("cuda", 1)) and len(calls) >= 2  # then the probes
