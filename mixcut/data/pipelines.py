"""Batch streams: what the engine iterates, already on the device and normalized.

Two implementations of one small interface (``len()``, ``epoch(epoch, start)``):

* `DeviceBatches`: the whole split lives on the device as one uint8 tensor;
  batches are gathered by index and augmented there in one go (airbench's
  recipe; no worker processes).
* `LoaderBatches`: a DataLoader whose workers decode and transform single
  images into uint8 tensors; the batch is moved and normalized on the device.

Both follow `sampling.train_order`, so the data order is a function of the
seed and the epoch, and both can start an epoch at any batch (exact resume).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from ..errors import ConfigError, DataError
from . import device_aug
from .erasing import RandomErasing
from .folder import BadImage, FileSplit, load_rgb
from .sampling import (
    SALT_BATCH_AUGMENT,
    SALT_ERASING,
    SALT_SAMPLE_AUGMENT,
    batch_slices,
    eval_shard,
    mix_seed,
    mix_seeds,
    seeded_globals,
    train_order,
)
from .splits import TensorSplit

log = logging.getLogger(__name__)


class Erasing:
    """Random erasing on the normalized device batch: timm's distribution, vectorised
    (`erasing.RandomErasing`), with draws reseeded per (seed, epoch, batch, rank)."""

    def __init__(self, aug, device) -> None:
        self.op = RandomErasing(aug.re_prob, mode=str(aug.re_mode), max_count=aug.re_count)
        self.generator = torch.Generator(device=device)

    def __call__(self, x: Tensor, seed: int) -> Tensor:
        self.generator.manual_seed(seed)
        return self.op(x, self.generator)


class BatchStream:
    """Common parts: sharding, batch counting, normalisation, erasing."""

    def __init__(
        self,
        n: int,
        *,
        train: bool,
        batch_size: int,
        device,
        normalize,
        seed: int,
        rank: int,
        world_size: int,
        repeated_aug: int = 0,
        erasing=None,
        limit: int | None = None,
    ) -> None:
        self.n, self.train, self.batch_size, self.device = n, train, batch_size, torch.device(device)
        self.normalize, self.erasing = normalize, erasing
        self.seed, self.rank, self.world_size, self.repeated_aug = seed, rank, world_size, repeated_aug
        self.limit = limit

    def order(self, epoch: int) -> tuple[Tensor, Tensor]:
        """(indices, global positions) this rank visits in ``epoch``."""
        if self.train:
            return train_order(self.n, epoch, self.seed, self.rank, self.world_size, self.repeated_aug)
        idx = eval_shard(self.n, self.rank, self.world_size)
        return idx, idx

    def slices(self, count: int) -> list[slice]:
        s = batch_slices(count, self.batch_size, drop_last=self.train)
        return s[: self.limit] if self.limit else s

    def __len__(self) -> int:
        count = self.n // self.world_size if self.train else len(eval_shard(self.n, self.rank, self.world_size))
        return len(self.slices(count))

    def finish(self, x: Tensor, epoch: int, batch: int) -> Tensor:
        """Normalise batch ``batch`` of ``epoch`` (and erase, when training)."""
        x = self.normalize(x)
        if self.train and self.erasing is not None:
            x = self.erasing(x, mix_seed(self.seed, epoch, batch, self.rank, SALT_ERASING))
        return x

    def end_epoch_report(self) -> dict:
        return {}

    def sample_images(self, n: int) -> Tensor:
        """``n`` images spread evenly through the split (every (N // n)-th in storage order, so a
        folder sorted by class gives every class), un-augmented and normalised: a model's
        data-dependent initialisation. Only the device route holds them."""
        raise DataError(
            "this model initialises weights from training images (e.g. airbench's whitening layer); "
            "they are read from the device cache: set data.cache=device."
        )


class FirstBatches:
    """The first ``count`` batches of every epoch of ``stream`` (``trainer.last_epoch_fraction``)."""

    def __init__(self, stream: BatchStream, count: int) -> None:
        self.stream, self.count = stream, min(count, len(stream))

    def __len__(self) -> int:
        return self.count

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        for b, batch in enumerate(self.stream.epoch(epoch, start), start=start):
            if b >= self.count:
                return
            yield batch

    def end_epoch_report(self) -> dict:
        return self.stream.end_epoch_report()


class BatchAugment:
    """Crop and flip whole uint8 batches on the device as ``aug`` says, with a
    generator reseeded per (seed, epoch, batch, rank): the same batch always gets
    the same augmentation (exact mid-epoch resume), whichever path feeds it."""

    def __init__(self, aug, img_size: int, device, seed: int, rank: int) -> None:
        self.aug, self.img_size, self.seed, self.rank = aug, img_size, seed, rank
        self.generator = torch.Generator(device=device)

    def __call__(self, x: Tensor, epoch: int, batch: int, indices: Tensor | None = None) -> Tensor:
        """uint8 in; uint8 out (float32 for rrc). ``indices`` (the images' places in the
        split) are needed by ``aug.hflip_mode=alternate`` only."""
        a = self.aug
        self.generator.manual_seed(mix_seed(self.seed, epoch, batch, self.rank, SALT_BATCH_AUGMENT))
        if a.hflip_mode == "alternate":
            return self.alternate(x, epoch, indices)
        if a.train_crop == "rrc":
            return device_aug.random_resized_crop(x, self.img_size, tuple(a.scale), tuple(a.ratio), self.generator, hflip=a.hflip)
        x = device_aug.resize_batch(x, self.img_size)
        padding = a.padding if a.train_crop == "pad" else 0
        # translation and flip in one gather (same draws and pixels as pad_crop then random_hflip)
        return device_aug.pad_crop_flip(x, padding, a.hflip, self.generator, a.padding_mode)

    def alternate(self, x: Tensor, epoch: int, indices: Tensor | None) -> Tensor:
        """Translation (``aug.padding``) and airbench94's alternating flip, in one gather."""
        if indices is None or self.aug.train_crop == "rrc":
            raise DataError(
                "aug.hflip_mode=alternate flips each image by its index: it needs data.cache=device "
                "and aug.train_crop=pad or none."
            )
        a = self.aug
        x = device_aug.resize_batch(x, self.img_size)
        padding = a.padding if a.train_crop == "pad" else 0
        oy, ox = device_aug.random_offsets(x.shape[0], padding, self.generator, x.device) if padding > 0 else (None, None)
        flip = device_aug.alternate_flips(device_aug.first_flips(indices, self.seed, a.hflip), epoch)
        return device_aug.crop_flip(x, padding, oy, ox, flip, a.padding_mode)


DEVICE_CACHE_SHARE = 0.5  # of the GPU's free memory a cached split may take: the rest is the model's and the batches'


def check_device_room(nbytes: int, device: torch.device, name: str) -> None:
    """Refuse (`ConfigError` naming ``data.cache=none``) to copy ``nbytes`` of split ``name``
    onto a CUDA ``device`` that has less than twice that free: the copy would succeed and
    the first training step would then run out of memory."""
    if device.type != "cuda":
        return
    free, total = torch.cuda.mem_get_info(device)
    if nbytes > DEVICE_CACHE_SHARE * free:
        gib = 2**30
        raise ConfigError(
            f"data.cache=device: the {name} split needs {nbytes / gib:.2f} GiB on {device}, which has "
            f"{free / gib:.2f} of {total / gib:.2f} GiB free (a cached split may take at most "
            f"{DEVICE_CACHE_SHARE:.0%} of it); use data.cache=none to stream it from the host instead."
        )


def deliver_batches(stream, batches, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
    """A host stream's ``(batch, images, labels)`` (short batches filled, unreadable ones None) as
    device batches: moved, augmented on the device when the stream says so, normalised."""
    for b, x, y in stream.filler.fill(batches) if stream.filler is not None else batches:
        if x is None:
            continue
        x = x.to(stream.device, non_blocking=True)
        if stream.batch_augment is not None:
            x = stream.batch_augment(x, epoch, b)
        yield stream.finish(x, epoch, b), y.to(stream.device, non_blocking=True)


class DeviceBatches(BatchStream):
    """Batches from a uint8 tensor held on the device, augmented on the device."""

    def __init__(self, split: TensorSplit, *, aug, img_size: int, **kw) -> None:
        super().__init__(len(split), **kw)
        nbytes = split.images.nbytes + split.labels.nbytes
        check_device_room(nbytes, self.device, "training" if self.train else "validation")
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.aug, self.img_size = aug, img_size
        self.augment = BatchAugment(aug, img_size, self.device, self.seed, self.rank)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        idx, _ = self.order(epoch)
        idx = idx.to(self.device)
        for b, sl in enumerate(self.slices(len(idx))):
            if b < start:
                continue
            sel = idx[sl]
            x = self.images.index_select(0, sel)
            x = self.augment(x, epoch, b, sel) if self.train else device_aug.resize_batch(x, self.img_size)
            yield self.finish(x, epoch, b), self.labels.index_select(0, sel)

    def sample_images(self, n: int) -> Tensor:
        step = max(1, len(self.images) // max(n, 1))
        return self.normalize(device_aug.resize_batch(self.images[::step][:n], self.img_size))


# ------------------------------------------------------------- worker path
class _ImageDataset(Dataset):
    """Items are ``(index, seed)`` pairs: the seed makes the random transform of
    this sample reproducible whatever worker runs it."""

    def __init__(self, split, transform, on_bad_image: str) -> None:
        self.split, self.transform, self.on_bad_image = split, transform, on_bad_image

    def __len__(self) -> int:
        return len(self.split)

    def _load(self, index: int):
        if isinstance(self.split, FileSplit):
            return load_rgb(self.split.paths[index]), self.split.labels[index]
        from torchvision.transforms.functional import to_pil_image

        return to_pil_image(self.split.images[index]), int(self.split.labels[index])

    def __getitem__(self, item):
        index, seed = item
        with seeded_globals(seed, restore=get_worker_info() is None):
            try:
                img, label = self._load(index)
                return self.transform(img), label, None
            except BadImage as e:
                if self.on_bad_image == "error":
                    raise DataError(f"unreadable image {e} (data.on_bad_image=error; use skip to drop such files)") from None
                return None, None, str(self.split.paths[index])


def loader_batches(loader):
    """The loader's batches; a worker's DataError comes out as one clean line."""
    it = iter(loader)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except DataError as e:
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            raise DataError(lines[-1].split("DataError: ", 1)[-1]) from None


def _collate(items):
    good = [it for it in items if it[2] is None]
    bad = [it[2] for it in items if it[2] is not None]
    if not good:
        return None, None, bad
    return torch.stack([it[0] for it in good]), torch.tensor([it[1] for it in good]), bad


class ShortBatchFiller:
    """Keeps every training batch at ``batch_size`` when unreadable images were skipped.

    A batch that lost images is filled up with repeats of its own readable samples
    (``good[i % n]``); a batch with no readable image repeats the epoch's previous
    batch (or, at the start of an epoch, stands in with its first readable batch).
    Why not drop it or refill from the next batches: the batch shape stays constant
    (no recompile, no dynamic shapes under ``torch.compile``), and every rank still
    runs the same number of steps whichever images it lost, so DDP's collectives never
    wait for a rank that ran out; the result is a pure function of the rank's own
    batches, so it is deterministic and needs no agreement between ranks.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.filled = 0  # batches filled up or stood in for, this epoch

    def fill(self, batches: Iterator[tuple[int, Tensor | None, Tensor | None]]) -> Iterator[tuple[int, Tensor, Tensor]]:
        """``(batch, images, labels)`` with ``images`` None for a batch without a readable
        image in; every batch out, in order, with ``batch_size`` samples."""
        self.filled = 0
        previous: tuple[Tensor, Tensor] | None = None
        waiting: list[int] = []  # unreadable batches before the epoch's first readable one
        for b, x, y in batches:
            if x is None:
                if previous is None:
                    waiting.append(b)
                    continue
                x, y = previous
                self.filled += 1
            elif x.shape[0] < self.batch_size:
                repeat = torch.arange(self.batch_size) % x.shape[0]
                x, y = x.index_select(0, repeat), y.index_select(0, repeat)
                self.filled += 1
            for w in waiting:
                self.filled += 1
                yield w, x, y
            waiting = []
            previous = (x, y)
            yield b, x, y
        if waiting:
            raise DataError(
                f"every image of the {len(waiting)} training batch(es) this rank read this epoch is unreadable; "
                "check the data set (data.on_bad_image=skip only bridges a few unreadable images)."
            )


def filled_note(filler: ShortBatchFiller | None) -> str:
    """The end-of-epoch warning's note on filled-up batches ("" when none)."""
    if filler is None or not filler.filled:
        return ""
    return f"; {filler.filled} batch(es) filled up with repeats of readable samples to keep the batch size"


class _PlannedSampler(Sampler):
    """Yields the (index, seed) items planned for the current epoch."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int]] = []

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class LoaderBatches(BatchStream):
    """Batches decoded and transformed by DataLoader workers, normalized on the device."""

    def __init__(
        self,
        split,
        *,
        transform,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        prefetch_factor: int,
        on_bad_image: str,
        batch_augment: BatchAugment | None = None,
        **kw,
    ) -> None:
        super().__init__(len(split), **kw)
        # crops and flips of whole batches on the device when the per-image transform only decodes
        self.batch_augment = batch_augment
        self.sampler = _PlannedSampler()
        workers = dict(persistent_workers=persistent_workers, prefetch_factor=prefetch_factor) if num_workers > 0 else {}
        self.loader = DataLoader(
            _ImageDataset(split, transform, on_bad_image),
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            collate_fn=_collate,
            pin_memory=pin_memory and self.device.type == "cuda",
            drop_last=False,
            **workers,
        )
        self.bad_images: dict[str, int] = {}
        self._epoch_bad = 0
        self.filler = ShortBatchFiller(self.batch_size) if self.train else None

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        idx, pos = self.order(epoch)
        sl = self.slices(len(idx))
        stop = sl[-1].stop if sl else 0
        first = sl[start].start if start < len(sl) else stop
        seeds = mix_seeds((self.seed, epoch), pos[first:stop].numpy(), (SALT_SAMPLE_AUGMENT,))
        self.sampler.items = list(zip(idx[first:stop].tolist(), seeds.tolist()))
        self._epoch_bad = 0
        batches = self._counted(enumerate(loader_batches(self.loader), start=start))
        yield from deliver_batches(self, batches, epoch)

    def _counted(self, batches) -> Iterator[tuple[int, Tensor | None, Tensor | None]]:
        """``(batch, images, labels)``, each unreadable image counted and named once."""
        for b, (x, y, bad) in batches:
            for path in bad:
                self._epoch_bad += 1
                if path not in self.bad_images:
                    log.warning("skipping unreadable image %s", path)
                self.bad_images[path] = self.bad_images.get(path, 0) + 1
            yield b, x, y

    def end_epoch_report(self) -> dict:
        if self._epoch_bad:
            log.warning(
                "%d unreadable image(s) skipped this epoch (%d distinct files so far)%s",
                self._epoch_bad,
                len(self.bad_images),
                filled_note(self.filler),
            )
        return {"bad_images": self._epoch_bad}
