"""WebDataset tar shards as a batch stream (``data=shards``, issue 13).

Shards come from ``scripts/make_shards.py``: ``KEY.<img ext>`` + ``KEY.cls``
members and an ``index.json`` with every shard's sample count, so the epoch
length is known without opening a shard. Reading uses the ``webdataset``
package (URL opening incl. ``pipe:``/``http(s)://``, tar parsing, the shuffle
buffer); this module only plans who reads what.

Epoch accounting, the same as the folder path (`sampling.train_order`):

* Training: the shards are put in an order drawn from (seed, epoch) and read as
  one concatenated sequence of ``N`` samples. Rank ``r`` takes the contiguous
  range ``[r * N//W, (r+1) * N//W)`` of it, cut into ``(N//W) // B`` full
  batches: every rank runs the same number of batches whatever the shard sizes
  (a shard that straddles two ranks is read by both, each keeping its part).
  An epoch therefore sees ``W * B * ((N//W) // B)`` distinct samples and none
  twice; the remaining ``< W * B`` samples (which ones changes with the
  shard order every epoch) are skipped, as ``drop_last`` does on the folder path.
* Within a rank, DataLoader worker ``w`` of ``K`` reads a contiguous run of
  its batches through a shuffle buffer seeded by (seed, epoch, rank, w); the
  epoch's batch ``p`` is worker ``p % K``'s ``p // K``-th batch (the
  DataLoader's round robin), and batches are re-ordered by ``p`` in the main
  process. The order is a pure function of (seed, epoch, world size,
  ``data.num_workers``): epoch-boundary resume is exact, and a mid-epoch resume
  at batch ``p`` is exact too (each worker skips its batches before ``p``
  before decoding), provided ``data.num_workers`` is unchanged. Persistent
  workers read each epoch's (epoch, first batch) from a small shared tensor.
* Validation: shards in index order, rank ``r`` takes the contiguous unpadded
  range ``[N*r//W, N*(r+1)//W)``: every sample counted exactly once.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import ConfigError, DataError
from .folder import BadImage, load_rgb
from .pipelines import BatchAugment, BatchStream, ShortBatchFiller, deliver_batches, filled_note, loader_batches
from .sampling import (
    SALT_SAMPLE_AUGMENT,
    SALT_SHARD_ORDER,
    SALT_SHARD_SHUFFLE,
    batch_slices,
    eval_shard,
    mix_seed,
    seeded_globals,
)

log = logging.getLogger(__name__)

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "ppm", "pgm", "gif")


# ------------------------------------------------------------------ source
@dataclass
class ShardSplit:
    """The expanded shard URLs of one split and their sample counts (from index.json)."""

    urls: list[str]
    counts: list[int]
    num_classes: int | None = None  # labels are checked against it as they are read (None: not checked)

    def __len__(self) -> int:
        return sum(self.counts)


def _read_json(url: str) -> dict:
    from webdataset.gopen import gopen

    with gopen(url, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def load_index(pattern: str, index_url: str | None) -> tuple[dict, str]:
    """The index beside the shards (or at ``data.shard_index``) and where it was read."""
    from webdataset.shardlists import expand_urls

    urls = expand_urls(pattern)
    url = index_url or posixpath.join(posixpath.dirname(urls[0]), "index.json")
    try:
        return _read_json(url), url
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"cannot read the shard index {url} ({e}); write shards with scripts/make_shards.py, "
            "or point data.shard_index=PATH at its index.json."
        ) from None


def shard_split(pattern: str, index: dict, index_url: str, key: str) -> ShardSplit:
    """Expand ``pattern`` (brace syntax, ``::`` lists) and look every shard up in the index."""
    from webdataset.shardlists import expand_urls

    counts = {name: c for s in index.get("splits", {}).values() for name, c in zip(s["shards"], s["counts"])}
    urls = expand_urls(pattern)
    unknown = [u for u in urls if posixpath.basename(u) not in counts]
    if unknown:
        raise ConfigError(
            f"data.{key}: {len(unknown)} shard(s) not listed in {index_url} (first: {unknown[0]}); "
            "the pattern must name shards written with that index."
        )
    return ShardSplit(urls, [counts[posixpath.basename(u)] for u in urls])


def shard_source(data_cfg):
    """Train and validation `ShardSplit` and the class names of ``data=shards``."""
    from .splits import Source

    index, where = load_index(data_cfg.train_shards, data_cfg.shard_index)
    train = shard_split(data_cfg.train_shards, index, where, "train_shards")
    val = shard_split(data_cfg.val_shards, index, where, "val_shards") if data_cfg.val_shards else None
    for split in (train, val):
        if split is not None:  # data.num_classes may exceed the index's classes (build.num_classes_of)
            split.num_classes = data_cfg.num_classes or len(index["classes"])
    return Source(train, val, list(index["classes"]))


# ---------------------------------------------------------------- planning
def shard_order(n_shards: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n_shards, generator=torch.Generator().manual_seed(mix_seed(seed, epoch, SALT_SHARD_ORDER))).tolist()


def pieces(urls: list[str], counts: list[int], lo: int, hi: int) -> list[tuple[str, int, int]]:
    """(url, skip, take) covering samples ``[lo, hi)`` of the concatenated shards."""
    out, base = [], 0
    for url, n in zip(urls, counts):
        a, b = max(lo, base), min(hi, base + n)
        if a < b:
            out.append((url, a - base, b - a))
        base += n
    return out


def worker_batches(n_batches: int, workers: int, w: int) -> range:
    """The contiguous run of the rank's batch slots that worker ``w`` reads."""
    q, r = divmod(n_batches, workers)
    start = w * q + min(w, r)
    return range(start, start + q + (1 if w < r else 0))


def skipped_batches(start: int, workers: int, w: int) -> int:
    """How many of worker ``w``'s batches come before the epoch's batch ``start``."""
    return max(0, (start - w + workers - 1) // workers)


@dataclass
class ShardPlan:
    """What one rank reads: small and picklable, so DataLoader workers get a copy."""

    split: ShardSplit
    train: bool
    batch_size: int
    seed: int
    rank: int
    world_size: int
    shuffle_buffer: int

    def __call__(self, epoch: int, limit: int | None) -> tuple[list[str], list[int], int, list[slice]]:
        """(shard urls in read order, their counts, this rank's first sample, its batch slots)."""
        s, n = self.split, len(self.split)
        if self.train:
            order = shard_order(len(s.urls), self.seed, epoch)
            urls, counts = [s.urls[i] for i in order], [s.counts[i] for i in order]
            lo, count = self.rank * (n // self.world_size), n // self.world_size
        else:
            urls, counts = s.urls, s.counts
            idx = eval_shard(n, self.rank, self.world_size)
            lo, count = (int(idx[0]) if len(idx) else 0), len(idx)
        slots = batch_slices(count, self.batch_size, drop_last=self.train)  # as BatchStream.slices
        return urls, counts, lo, slots[:limit] if limit else slots


# ------------------------------------------------------------ the workers
class _ShardDataset(IterableDataset):
    """Yields ``(p, images, labels, bad)`` batches of this rank's plan for one epoch."""

    def __init__(self, plan: ShardPlan, transform, on_bad_image: str) -> None:
        self.plan, self.transform, self.on_bad_image = plan, transform, on_bad_image
        # (epoch, first batch, batch limit or 0) in shared memory: persistent workers read each epoch's values
        self.state = torch.zeros(3, dtype=torch.int64).share_memory_()

    def __iter__(self):
        info = get_worker_info()
        w, k = (info.id, info.num_workers) if info is not None else (0, 1)
        o, (epoch, start, limit) = self.plan, self.state.tolist()
        urls, counts, lo, slots = o(epoch, limit or None)
        mine = worker_batches(len(slots), k, w)
        if not len(mine):
            return
        first, last = slots[mine.start], slots[mine.stop - 1]
        stream = self._raw(pieces(urls, counts, lo + first.start, lo + last.stop))
        if o.train and o.shuffle_buffer > 1:
            from webdataset import shuffle

            rng = random.Random(mix_seed(o.seed, epoch, o.rank, w, SALT_SHARD_SHUFFLE))
            # the first batch after 100 samples, not after a full buffer (webdataset's default); it fills as it goes
            stream = shuffle(o.shuffle_buffer, initial=min(100, o.shuffle_buffer), rng=rng)(stream)
        skip = skipped_batches(start, k, w)
        sizes = [slots[i].stop - slots[i].start for i in mine]
        stream = islice(stream, sum(sizes[:skip]), None)  # before decoding: a mid-epoch resume reads, not decodes
        for j in range(skip, len(mine)):
            p = j * k + w  # the DataLoader's round robin
            raw = list(islice(stream, sizes[j]))
            yield self._batch(raw, [(lo + slots[mine[j]].start + i) for i in range(sizes[j])], p, epoch)

    def _raw(self, plan):
        """Raw samples of the planned pieces; a shard shorter than the index says is an error
        (a rank running short would leave the others waiting at the epoch's end)."""
        from webdataset.tariterators import tarfile_samples

        for url, skip, take in plan:
            got = 0
            try:
                for sample in islice(tarfile_samples([{"url": url}]), skip, skip + take):
                    got += 1
                    yield sample
            except (OSError, ValueError, tarfile.TarError) as e:
                raise DataError(f"cannot read shard {url} after {skip + got} samples ({e}).") from None
            if got < take:
                raise DataError(
                    f"shard {url} holds fewer samples than its index says ({skip + got} < {skip + take}); rewrite it."
                )

    def _batch(self, raw: list[dict], positions: list[int], p: int, epoch: int):
        o = self.plan
        # one augmentation seed per sample from its place in the epoch (unique over ranks), as on the folder path
        seeds = [mix_seed(o.seed, epoch, pos * o.world_size + o.rank, SALT_SAMPLE_AUGMENT) for pos in positions]
        xs, ys, bad = [], [], []
        for sample, seed in zip(raw, seeds):
            name = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
            try:
                ext = next(e for e in IMAGE_KEYS if e in sample)
                img = load_rgb(io.BytesIO(sample[ext]))
                label = int(sample["cls"])
            except (StopIteration, KeyError, ValueError, BadImage) as e:
                if self.on_bad_image == "error":
                    raise DataError(f"unreadable sample {name} ({e}) (data.on_bad_image=error; use skip)") from None
                bad.append(name)
                continue
            check_shard_label(label, o.split.num_classes, name)
            xs.append(_seeded(self.transform, img, seed))
            ys.append(label)
        if not xs:
            return p, None, None, bad
        return p, torch.stack(xs), torch.tensor(ys), bad


def check_shard_label(label: int, num_classes: int | None, name: str) -> None:
    """A shard's label outside ``[0, num_classes)`` is a `DataError` naming the sample, raised in
    the worker: on the device it would be an index error in the targets, or a CUDA device assert."""
    if num_classes is not None and not 0 <= label < num_classes:
        fix = "rewrite the shard" if label < 0 else f"rewrite the shard, or set data.num_classes={label + 1}"
        raise DataError(f"sample {name} has label {label}, outside [0, num_classes={num_classes}); {fix}.")


def _seeded(transform, img, seed: int) -> Tensor:
    """``transform(img)`` with python, torch and numpy seeded by ``seed`` (restored in the main process)."""
    with seeded_globals(seed, restore=get_worker_info() is None):
        return transform(img)


# ------------------------------------------------------------- the stream
class ShardBatches(BatchStream):
    """Batches decoded from tar shards by DataLoader workers, normalised on the device."""

    def __init__(
        self,
        split: ShardSplit,
        *,
        transform,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        prefetch_factor: int,
        on_bad_image: str,
        batch_augment: BatchAugment | None = None,
        shuffle_buffer: int = 1000,
        **kw,
    ) -> None:
        super().__init__(len(split), **kw)
        if self.repeated_aug > 1:
            raise ConfigError("data.repeated_aug needs random access; with data=shards set data.repeated_aug=0.")
        self.split, self.batch_augment = split, batch_augment
        self.plan = ShardPlan(split, self.train, self.batch_size, self.seed, self.rank, self.world_size, shuffle_buffer)
        self.dataset = _ShardDataset(self.plan, transform, on_bad_image)
        workers = dict(persistent_workers=persistent_workers, prefetch_factor=prefetch_factor) if num_workers > 0 else {}
        self.loader = DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=num_workers,
            pin_memory=pin_memory and self.device.type == "cuda",
            **workers,
        )
        self.bad_images: dict[str, int] = {}
        self._epoch_bad = 0
        self.filler = ShortBatchFiller(self.batch_size) if self.train else None

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        # read by the workers when the iteration starts (the limit may change after construction: benchmarks)
        self.dataset.state.copy_(torch.tensor([epoch, start, self.limit or 0]))
        total = len(self)
        self._epoch_bad = 0

        def ordered():
            nxt, held = start, {}
            for p, x, y, bad in loader_batches(self.loader):
                held[p] = (x, y, bad)
                while nxt in held:  # round robin order, shifted after a mid-epoch resume: a few batches at most
                    x, y, bad = held.pop(nxt)
                    self._count_bad(bad)
                    yield nxt, x, y
                    nxt += 1
            if nxt != total:
                raise DataError(f"the shard stream ended after batch {nxt} of {total}; the shards do not match their index.")

        yield from deliver_batches(self, ordered(), epoch)

    def _count_bad(self, bad: list[str]) -> None:
        for name in bad:
            self._epoch_bad += 1
            if name not in self.bad_images:
                log.warning("skipping unreadable sample %s", name)
            self.bad_images[name] = self.bad_images.get(name, 0) + 1

    def end_epoch_report(self) -> dict:
        if self._epoch_bad:
            log.warning("%d unreadable sample(s) skipped this epoch%s", self._epoch_bad, filled_note(self.filler))
        return {"bad_images": self._epoch_bad}
