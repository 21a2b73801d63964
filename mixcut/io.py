"""File-system helpers shared by checkpoints, logs and the data cache: the one
atomic write, the directory fsync that makes its rename durable, and the one
write probe."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit, flush and
    fsync it, rename it over ``path`` and fsync the directory.

    A crash or an exception at any moment leaves either the old file or the new
    one, never a torn file; the temporary file (``.NAME.PID.tmp``) is removed on
    an exception. ``mode`` is ``"wb"`` or ``"w"`` (then ``encoding`` applies).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def read_only_by_mode(path: Path) -> bool:
    """True when ``path`` or its nearest existing parent grants nobody write access
    (e.g. mode 555): root ignores permission bits, but such a folder is meant to
    stay untouched (a shared data set), so it is treated as read-only."""
    for p in (path, *path.parents):
        try:
            return not (p.stat().st_mode & 0o222)
        except OSError:
            continue
    return False


def write_probe(directory: Path, create: bool = False) -> str | None:
    """Why files cannot be written in ``directory`` (None when they can).

    With ``create``, the directory is made first; otherwise the probe runs in its
    nearest existing ancestor, so a run directory that does not exist yet is
    judged by where it would be created. A probe file is written and removed:
    ``os.access`` alone is wrong for root and for read-only mounts.
    """
    directory = Path(directory)
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
            where = directory
        else:
            where = nearest_existing(directory)
        if not os.access(where, os.W_OK):
            return f"{where} is read-only"
        probe = where / f".mixcut_write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return None
    except OSError as e:
        return f"{e.strerror or e} at {directory}"
