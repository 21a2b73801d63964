"""Decode a file split once into a uint8 tensor, kept in a cache file for the next run.

The device-resident path (``data.cache=device``) needs every image of a split as
one uint8 (N, C, H, W) tensor at ``data.img_size``. Decoding 50,000 JPEGs takes
a while, so the decoded tensor is stored in a cache file and reused while the
data set is unchanged.

Preprocessing (the same PIL transforms as the worker path, so both paths see
identical pixels):

* train: resize the shorter side to ``img_size`` and centre-crop
  ``img_size`` (``aug.interpolation``); the random augmentation happens later
  on the device, on whole batches;
* val: the worker path's evaluation transform exactly (resize to
  ``img_size / aug.crop_pct``, centre crop), so validation metrics match.

Where the file goes:

1. ``data.cache_dir`` when set: ``CACHE_DIR/<root name>-<hash of root path>/``;
2. otherwise beside the data: ``DATA_ROOT/.mixcut_cache/``;
3. if the data root is not writable (a read-only mount, or permission bits
   that grant nobody write access, e.g. ``chmod 555``, which counts even for root):
   ``$XDG_CACHE_HOME/mixcut/`` (default ``~/.cache/mixcut/``), same layout as 1,
   with a log line saying so;
4. if nothing is writable, the split is decoded every run (warning).

The file name is ``<split>-<img_size>px-<recipe hash>.mxc``; a recipe is the
preprocessing above. The cache key (a SHA-256 stored in the header) covers the
format version, the recipe and every source file's name relative to the data
root, size, modification time (ns) and label, so adding, removing, renaming,
touching or rewriting a file, or changing the class folders, re-decodes.

File format: ``MAGIC`` (8 bytes), header length (uint64 little endian), a JSON
header (version, key, shape, payload size and CRC-32, skipped files), then the
payload: labels as int64 little endian, then the images as uint8 (N, C, H, W).
A file whose magic, header, size, key or checksum does not match is never used:
it is logged and rebuilt. Files are written to a temporary name in the same
directory, flushed, fsynced and renamed over the old one, so a crash leaves the
old file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from ..errors import DataError
from ..io import atomic_write, read_only_by_mode, write_probe
from ..runtime import distributed as D
from .folder import BadImage, FileSplit, load_rgb
from .splits import TensorSplit
from .transforms import INTERPOLATIONS, ToUint8Tensor

log = logging.getLogger(__name__)

MAGIC = b"MIXCUTDC"
VERSION = 1
SUFFIX = ".mxc"
_CHUNK = 1 << 28  # checksum in 256 MiB pieces


class CacheError(RuntimeError):
    """A cache file that cannot be used (corrupt, truncated, stale); the message says why."""


# ------------------------------------------------------------------ recipe
def recipe_for(data_cfg, aug_cfg, train: bool) -> dict:
    """The preprocessing a split is decoded with, as a small JSON-able dict."""
    size = int(data_cfg.img_size)
    resize = size if train else int(round(size / aug_cfg.crop_pct))
    interp = aug_cfg.interpolation if aug_cfg.interpolation in INTERPOLATIONS else "bilinear"
    return {"resize": resize, "crop": size, "interpolation": interp}


def recipe_transform(recipe: dict) -> T.Compose:
    """The PIL transform of a recipe (the worker path's eval transform for val)."""
    interp = INTERPOLATIONS[recipe["interpolation"]]
    return T.Compose([T.Resize(recipe["resize"], interpolation=interp), T.CenterCrop(recipe["crop"]), ToUint8Tensor()])


# ----------------------------------------------------------------- the key
def fingerprint(split: FileSplit, root: str | Path | None) -> list[tuple[str, int, int, int]]:
    """(name relative to the data root, size, mtime in ns, label) of every file."""
    base = os.path.abspath(root) if root else None
    entries = []
    for path, label in zip(split.paths, split.labels):
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1  # a vanished file: decoding will report it
        name = os.path.relpath(os.path.abspath(path), base) if base else str(path)
        entries.append((name, int(size), int(mtime), int(label)))
    return entries


def cache_key(entries, recipe: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": VERSION, "recipe": recipe}, sort_keys=True).encode())
    for name, size, mtime, label in entries:
        h.update(f"{name}\0{size}\0{mtime}\0{label}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


# ---------------------------------------------------------------- location
def _writable_dir(path: Path) -> bool:
    if read_only_by_mode(path) or (path.exists() and not os.access(path, os.W_OK)):
        return False
    return write_probe(path, create=True) is None


def _named_dir(base: Path, root: str | Path) -> Path:
    root = Path(root).expanduser().resolve()
    digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return base / f"{root.name or 'data'}-{digest}"


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mixcut"


def cache_dir_for(root: str | Path, cache_dir: str | None) -> Path | None:
    """The directory for this data root's cache files (created), or None if nothing is writable."""
    if cache_dir:
        where = _named_dir(Path(cache_dir).expanduser(), root)
        if _writable_dir(where):
            return where
        log.warning("data.cache_dir=%s is not writable; trying the default cache locations", cache_dir)
    beside = Path(root).expanduser() / ".mixcut_cache"
    if _writable_dir(beside):
        return beside
    fallback = _named_dir(user_cache_dir(), root)
    if _writable_dir(fallback):
        log.info(
            "data root %s is not writable; keeping its decoded-image cache in %s (set data.cache_dir=DIR to choose)",
            root,
            fallback,
        )
        return fallback
    log.warning(
        "no writable place for the decoded-image cache of %s (tried %s and %s); decoding every run. "
        "Set data.cache_dir=DIR to a writable directory.",
        root,
        beside,
        fallback,
    )
    return None


def cache_file_name(name: str, recipe: dict) -> str:
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
    return f"{name}-{recipe['crop']}px-{digest}{SUFFIX}"


# -------------------------------------------------------------- file format
def _crc(*buffers) -> int:
    crc = 0
    for buf in buffers:
        view = memoryview(buf).cast("B")
        for i in range(0, len(view), _CHUNK):
            crc = zlib.crc32(view[i : i + _CHUNK], crc)
    return crc


def write_cache(path: Path, key: str, images: torch.Tensor, labels: torch.Tensor, skipped: list[str], recipe: dict) -> None:
    """Write atomically: temporary file in the same directory, fsync, rename, fsync the directory."""
    imgs = np.ascontiguousarray(images.cpu().numpy())
    labs = np.ascontiguousarray(labels.cpu().numpy().astype("<i8"))
    header = {
        "version": VERSION,
        "key": key,
        "shape": list(imgs.shape),
        "payload_bytes": labs.nbytes + imgs.nbytes,
        "crc32": _crc(labs, imgs),
        "skipped": skipped,
        "recipe": recipe,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    head = json.dumps(header).encode()
    with atomic_write(path) as f:
        f.write(MAGIC)
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        f.write(memoryview(labs).cast("B"))
        f.write(memoryview(imgs).cast("B"))


def read_header(path: Path) -> tuple[dict, int]:
    """The header and the offset of the payload; CacheError if the file is not a complete cache file."""
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise CacheError("not a mixcut cache file (bad magic)")
        raw = f.read(8)
        if len(raw) != 8:
            raise CacheError("truncated header")
        n = int.from_bytes(raw, "little")
        if n > 1 << 30:
            raise CacheError("implausible header length")
        head = f.read(n)
    if len(head) != n:
        raise CacheError("truncated header")
    try:
        header = json.loads(head)
    except (ValueError, UnicodeDecodeError) as e:
        raise CacheError(f"unreadable header ({e})") from None
    if not isinstance(header, dict) or header.get("version") != VERSION:
        raise CacheError(f"format version {header.get('version') if isinstance(header, dict) else '?'} is not {VERSION}")
    return header, len(MAGIC) + 8 + n


def read_cache(path: Path, key: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images, labels, skipped files) from ``path`` if it is complete, intact and
    made for ``key``; otherwise CacheError saying why."""
    header, offset = read_header(path)
    if header.get("key") != key:
        raise CacheError("stale: the data set or the preprocessing changed since it was written")
    try:
        shape = [int(s) for s in header["shape"]]
        expected = int(header["payload_bytes"])
        crc = int(header["crc32"])
        skipped = [str(s) for s in header.get("skipped", [])]
    except (KeyError, TypeError, ValueError) as e:
        raise CacheError(f"incomplete header ({e})") from None
    n = shape[0]
    if len(shape) != 4 or expected != n * 8 + int(np.prod(shape)):
        raise CacheError("header sizes disagree")
    size = path.stat().st_size
    if size != offset + expected:
        raise CacheError(f"size {size} bytes, expected {offset + expected} (truncated or extended)")
    with open(path, "rb") as f:
        f.seek(offset)
        payload = np.fromfile(f, dtype=np.uint8, count=expected)
    if payload.size != expected:
        raise CacheError("truncated payload")
    if _crc(payload) != crc:
        raise CacheError("checksum mismatch (corrupt)")
    labels = torch.from_numpy(payload[: n * 8].view("<i8").astype(np.int64))
    images = torch.from_numpy(payload[n * 8 :]).view(*shape)  # shares the buffer: no copy
    return images, labels, skipped


# ---------------------------------------------------------------- decoding
class _Decode(Dataset):
    def __init__(self, split: FileSplit, transform) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        try:
            return i, self.transform(load_rgb(self.split.paths[i])), None
        except BadImage as e:
            return i, None, str(e)


def _collate(items):
    good = [(i, img) for i, img, _ in items if img is not None]
    bad = [(i, err) for i, _, err in items if err is not None]
    idx = torch.tensor([i for i, _ in good], dtype=torch.long)
    imgs = torch.stack([img for _, img in good]) if good else None
    return idx, imgs, bad


def decode_split(
    split: FileSplit, transform, size: int, num_workers: int, on_bad_image: str, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode every file of ``split`` with ``transform`` in ``num_workers`` DataLoader
    workers; returns (images, labels, skipped files) with unreadable files dropped
    (``skip``) or a DataError for the first one (``error``)."""
    n = len(split)
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    ok = torch.zeros(n, dtype=torch.bool)
    bad: dict[int, str] = {}
    # its own generator: a DataLoader draws its base seed from the global one, and the
    # model's initialisation must not depend on whether the cache was hit
    loader = DataLoader(
        _Decode(split, transform),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(0),
    )
    for idx, imgs, errors in loader:
        if imgs is not None:
            images[idx] = imgs
            ok[idx] = True
        for i, err in errors:
            if on_bad_image == "error":
                raise DataError(f"unreadable image {err} (data.on_bad_image=error; use skip to drop such files)")
            bad[i] = err
    labels = torch.tensor(split.labels, dtype=torch.long)
    if bad:
        images, labels = images[ok], labels[ok]
    return images, labels, [str(split.paths[i]) for i in sorted(bad)]


def _report_skipped(skipped: list[str], name: str, on_bad_image: str, cached: bool = False) -> None:
    """One warning per unreadable file and a count (``skip``), or a DataError naming the first (``error``)."""
    if not skipped:
        return
    if on_bad_image == "error":
        raise DataError(f"unreadable image {skipped[0]} (data.on_bad_image=error; use skip to drop such files)")
    note = " (recorded when the cache was built)" if cached else ""
    for path in skipped:
        log.warning("skipping unreadable image %s%s", path, note)
    log.warning("%d unreadable image(s) skipped in the %s split", len(skipped), name)


def load_or_decode(
    split: FileSplit, data_cfg, aug_cfg, name: str, train: bool, rank: int = 0, world_size: int = 1
) -> TensorSplit:
    """``split`` as a TensorSplit, from its cache file when that is valid, else
    decoded (and the cache written). Under DDP rank 0 decodes and writes while the
    other ranks wait, then they read the file (or decode themselves if it could not
    be written)."""
    recipe = recipe_for(data_cfg, aug_cfg, train)
    root = data_cfg.root or os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in split.paths] or ["."])
    t0 = time.perf_counter()
    key = cache_key(fingerprint(split, root), recipe)
    t_key = time.perf_counter() - t0
    shared = world_size > 1 and D.is_initialized()
    directory = cache_dir_for(root, data_cfg.cache_dir) if (rank == 0 or not shared) else None
    if shared:
        found = D.broadcast_object(str(directory) if directory else None)
        directory = Path(found) if found else None
        if rank != 0:
            D.barrier()  # rank 0 builds the file first
    path = directory / cache_file_name(name, recipe) if directory else None
    try:
        result = _load_or_build(split, data_cfg, name, recipe, key, path, t_key, write=(rank == 0 or not shared))
    finally:
        if shared and rank == 0:
            D.barrier()
    return result


def _load_or_build(split, data_cfg, name, recipe, key, path, t_key, write: bool) -> TensorSplit:
    if path is not None and path.exists():
        t0 = time.perf_counter()
        try:
            images, labels, skipped = read_cache(path, key)
        except CacheError as e:
            reason = str(e)
        except (OSError, ValueError, RuntimeError) as e:
            reason = f"unreadable ({e})"
        else:
            _report_skipped(skipped, name, data_cfg.on_bad_image, cached=True)
            log.info(
                "device cache hit: %s split, %d images %s from %s (%.1f MB, read and checked in %.2fs; key %.2fs)",
                name,
                len(labels),
                "x".join(map(str, images.shape[1:])),
                path,
                images.numel() / 1e6,
                time.perf_counter() - t0,
                t_key,
            )
            return TensorSplit(images, labels)
        log.warning("device cache miss: %s is not usable: %s; decoding again", path, reason)
    else:
        log.info(
            "device cache miss: no cache file for the %s split%s; decoding %d images",
            name,
            f" at {path}" if path else "",
            len(split),
        )
    t0 = time.perf_counter()
    images, labels, skipped = decode_split(
        split, recipe_transform(recipe), recipe["crop"], data_cfg.num_workers, data_cfg.on_bad_image
    )
    took = time.perf_counter() - t0
    log.info(
        "decoded the %s split: %d of %d files in %.1fs (%.0f img/s, %d workers)",
        name,
        len(labels),
        len(split),
        took,
        len(split) / max(took, 1e-9),
        data_cfg.num_workers,
    )
    _report_skipped(skipped, name, data_cfg.on_bad_image)
    if path is not None and write:
        t0 = time.perf_counter()
        try:
            write_cache(path, key, images, labels, skipped, recipe)
            log.info("wrote the device cache %s (%.1f MB in %.1fs)", path, images.numel() / 1e6, time.perf_counter() - t0)
        except OSError as e:
            log.warning("could not write the device cache %s (%s); continuing without it", path, e.strerror or e)
    return TensorSplit(images, labels)
