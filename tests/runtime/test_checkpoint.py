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
