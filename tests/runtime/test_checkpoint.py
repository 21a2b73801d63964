"""Atomic saves and safe loads."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from mixcut.checkpoint import CheckpointError, StorageError, atomic_save, capture_rng, load_checkpoint, restore_rng


def test_failed_save_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"w": torch.arange(4.0)}, path)

    def torn_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial bytes")  # half a file, then the crash
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(StorageError, match="No space left"):
        atomic_save({"w": torch.zeros(4)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_save_replaces_atomically(tmp_path):
    path = tmp_path / "ck.pt"
    atomic_save({"v": 1}, path)
    atomic_save({"v": 2}, path)
    assert load_checkpoint(path)["v"] == 2


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > " + str(_Evil.marker),))


def test_code_executing_checkpoint_is_refused(tmp_path):
    _Evil.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Evil()}, f)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert not _Evil.marker.exists()


def test_truncated_checkpoint_is_reported(tmp_path):
    path = tmp_path / "t.pt"
    atomic_save({"w": torch.randn(100)}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_rng_roundtrip_through_weights_only_file(tmp_path):
    import random

    import numpy as np

    state = capture_rng()
    atomic_save({"rng": state}, tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[0] == got[0] and expected[1] == got[1] and torch.equal(expected[2], got[2])


class _FakeCuda:
    """``count`` visible GPUs, the current one ``current``; each has a generator
    state, and torch.cuda's rng functions behave as torch/cuda/random.py says:
    an index past the visible devices is an IndexError (``default_generators[idx]``),
    and ``set_rng_state_all`` sets device ``i`` for the ``i``-th state (random.py:85-86)."""

    def __init__(self, monkeypatch, count: int, current: int) -> None:
        self.count, self.current = count, current
        self.states = {i: torch.full((8,), i, dtype=torch.uint8) for i in range(count)}
        for name in ("get_rng_state", "get_rng_state_all", "set_rng_state", "set_rng_state_all"):
            monkeypatch.setattr(torch.cuda, name, getattr(self, name))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)

    def _index(self, device) -> int:
        index = self.current if device == "cuda" else device if isinstance(device, int) else torch.device(device).index
        if index >= self.count:
            raise IndexError("list index out of range")
        return index

    def get_rng_state(self, device="cuda"):
        return self.states[self._index(device)].clone()

    def get_rng_state_all(self):
        return [self.get_rng_state(i) for i in range(self.count)]

    def set_rng_state(self, state, device="cuda"):
        self.states[self._index(device)] = state.clone()

    def set_rng_state_all(self, states):
        for i, state in enumerate(states):
            self.set_rng_state(state, i)


def test_cuda_rng_resumes_with_fewer_visible_gpus(tmp_path, monkeypatch):
    """torchrun on 8 GPUs saves (this rank on cuda:5), SLURM with one GPU per task resumes:
    the rank's own device state comes back on its device, without an IndexError."""
    gpus = _FakeCuda(monkeypatch, count=8, current=5)
    atomic_save({"rng": capture_rng()}, tmp_path / "r.pt")
    state = load_checkpoint(tmp_path / "r.pt")["rng"]
    gpus = _FakeCuda(monkeypatch, count=1, current=0)
    restore_rng(state)
    assert torch.equal(gpus.states[0], torch.full((8,), 5, dtype=torch.uint8))


def test_cuda_rng_of_an_old_checkpoint_restores_this_device_only(monkeypatch):
    """Checkpoints written before issue 18 hold a list, one state per visible GPU."""
    old = capture_rng()
    old["cuda"] = [torch.full((8,), 10 + i, dtype=torch.uint8) for i in range(4)]
    gpus = _FakeCuda(monkeypatch, count=2, current=1)
    restore_rng(old)
    assert gpus.states[1][0] == 11 and gpus.states[0][0] == 0
    gpus = _FakeCuda(monkeypatch, count=8, current=6)  # more GPUs than the old run saw: nothing to restore
    restore_rng(old)
    assert gpus.states[6][0] == 6
