"""mixcut.io.atomic_write: the one atomic write, and every writer of the package using it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import mixcut.io as mio
from mixcut.errors import StorageError
from mixcut.loggers import truncate_jsonl, write_json_atomic

PACKAGE = Path(__file__).resolve().parents[1] / "mixcut"


@pytest.fixture
def synced_dirs(monkeypatch) -> list[Path]:
    """Record every directory fsync (the writers call it through mixcut.io)."""
    seen: list[Path] = []
    real = mio.fsync_dir
    monkeypatch.setattr(mio, "fsync_dir", lambda d: (seen.append(Path(d)), real(d)))
    return seen


def test_atomic_write_replaces_and_fsyncs_the_directory(tmp_path, synced_dirs):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with mio.atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
    assert synced_dirs == [tmp_path]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


@pytest.mark.parametrize("where", ["body", "fsync", "replace"])
def test_a_crash_mid_write_leaves_the_old_file(tmp_path, monkeypatch, synced_dirs, where):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if where == "fsync":
        monkeypatch.setattr(mio.os, "fsync", crash)
    if where == "replace":
        monkeypatch.setattr(mio.os, "replace", crash)
    with pytest.raises(OSError):
        with mio.atomic_write(path, "w") as f:
            f.write("half of the new")
            if where == "body":
                crash()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # the temporary file is gone
    assert synced_dirs == []


def test_json_and_jsonl_rewrites_are_atomic_and_durable(tmp_path, monkeypatch, synced_dirs):
    summary = tmp_path / "summary.json"
    write_json_atomic(summary, {"top1": 1.0})
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(3)))
    truncate_jsonl(metrics, keep_before_epoch=2)
    assert synced_dirs == [tmp_path, tmp_path]  # the rename of each is made durable
    assert json.loads(summary.read_text()) == {"top1": 1.0}

    def torn(obj, f, **kwargs):
        f.write('{"top1": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mixcut.loggers.json.dump", torn)
    with pytest.raises(StorageError):
        write_json_atomic(summary, {"top1": 2.0})
    assert json.loads(summary.read_text()) == {"top1": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "summary.json"]


def test_checkpoint_and_cache_writes_fsync_the_directory(tmp_path, synced_dirs):
    import torch

    from mixcut.checkpoint import atomic_save
    from mixcut.data.cache import write_cache

    atomic_save({"w": torch.zeros(2)}, tmp_path / "last.pt")
    write_cache(tmp_path / "c.bin", "k", torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), [], {})
    assert synced_dirs == [tmp_path, tmp_path]


def _renames(path: Path) -> list[str]:
    """Calls that rename a file: os.replace/os.rename, or `.replace(...)`/`.rename(...)` on a name holding "tmp"."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            renames = node.func.attr in ("replace", "rename") and (owner == "os" or "tmp" in owner)
            copies = node.func.attr in ("copyfile", "copy", "copy2") and owner == "shutil"
            if renames or copies:
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_only_io_renames_files():
    """One atomic write: no module of the package keeps its own copy."""
    copies = [hit for p in sorted(PACKAGE.rglob("*.py")) if p != PACKAGE / "io.py" for hit in _renames(p)]
    assert not copies, f"use mixcut.io.atomic_write instead of the rename at {copies}"
