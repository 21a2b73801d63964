"""Which samples go into which batch on which rank, reproducibly.

Training order is a pure function of (seed, epoch): a resumed run, any number
of loader workers, and a mid-epoch restart all see the same batches. Every
sample also gets its own augmentation seed from its position in the epoch, so
augmentations are reproducible too and differ between repeated copies.
Evaluation shards are contiguous and unpadded: every sample counts once.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch
from torch import Tensor

# Every seed of a run is mix_seed(trainer.seed, ..., SALT): the salts keep the streams
# of random numbers that different consumers draw independent of each other.
SALT_TRAIN_ORDER = 0x5A3  # the epoch's permutation (train_order)
SALT_BATCH_AUGMENT = 0xA06  # crops and flips of a whole batch on the device (BatchAugment)
SALT_SAMPLE_AUGMENT = 0x1D  # per-sample transforms in loader workers
SALT_MIXER = 0x3143  # the mixer's own generator
SALT_ERASING = 0xE7A5  # random erasing of a whole batch on the device (pipelines.Erasing)
SALT_SHARD_ORDER = 0x5AD  # the epoch's order of shards (data=shards)
SALT_SHARD_SHUFFLE = 0x5B  # the shuffle buffer of each loader worker (data=shards)
SALT_FIRST_FLIP = 0xF11B  # each image's flip in the first epoch of aug.hflip_mode=alternate

_MASK64 = 0xFFFFFFFFFFFFFFFF
_MASK63 = (1 << 63) - 1


def _splitmix_step(z: np.ndarray, p) -> np.ndarray:
    """One splitmix64 step on uint64 arrays (arithmetic wraps modulo 2**64)."""
    z = (z ^ p) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def mix_seeds(before: tuple[int, ...], values: np.ndarray, after: tuple[int, ...] = ()) -> np.ndarray:
    """``mix_seed(*before, v, *after)`` for every ``v`` of ``values`` at once: one
    epoch's 50,000 per-sample seeds in milliseconds instead of half a second."""
    z = np.full(values.shape, 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for p in before:
            z = _splitmix_step(z, np.uint64(int(p) & _MASK64))
        z = _splitmix_step(z, values.astype(np.int64).astype(np.uint64))
        for p in after:
            z = _splitmix_step(z, np.uint64(int(p) & _MASK64))
    return z & np.uint64(_MASK63)


def mix_seed(*parts: int) -> int:
    """Combine integers into one well-spread 63-bit seed (splitmix64 steps)."""
    z = np.full((), 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            z = _splitmix_step(z, np.uint64(int(p) & _MASK64))
    return int(z & np.uint64(_MASK63))


def train_order(n: int, epoch: int, seed: int, rank: int, world_size: int, repeated_aug: int = 0) -> tuple[Tensor, Tensor]:
    """This rank's sample indices for one training epoch, and their positions
    in the global order (used to derive per-sample augmentation seeds).

    Every rank gets ``n // world_size`` samples. With ``repeated_aug = r > 1``
    each image appears r times in a row in the global order, so its copies
    land on r different ranks (DeiT's repeated augmentation); the epoch length
    stays ``n // world_size`` per rank, as in DeiT.
    """
    gen = torch.Generator().manual_seed(mix_seed(seed, epoch, SALT_TRAIN_ORDER))
    order = torch.randperm(n, generator=gen)
    if repeated_aug > 1:
        order = order.repeat_interleave(repeated_aug)
    positions = torch.arange(order.numel())
    per_rank = n // world_size
    take = slice(rank, rank + per_rank * world_size, world_size)
    return order[take], positions[take]


def eval_shard(n: int, rank: int, world_size: int) -> Tensor:
    """A contiguous, unpadded shard of ``range(n)``: shards cover it exactly once."""
    start, stop = n * rank // world_size, n * (rank + 1) // world_size
    return torch.arange(start, stop)


def batch_slices(count: int, batch_size: int, drop_last: bool) -> list[slice]:
    stop = count - count % batch_size if drop_last else count
    return [slice(i, min(i + batch_size, stop)) for i in range(0, stop, batch_size)]


@contextlib.contextmanager
def seeded_globals(seed: int, restore: bool):
    """Seed Python's, torch's CPU and numpy's global generators with ``seed`` (a
    per-sample transform draws from them); with ``restore`` (in the main process,
    where the training run owns them), put their states back afterwards."""
    saved = (random.getstate(), torch.get_rng_state(), np.random.get_state()) if restore else None
    random.seed(seed)
    # the CPU generator only: torch.manual_seed also queues CUDA seeding with a
    # captured stack trace, ~200 us per call, as long as a 32px JPEG's decode
    torch.default_generator.manual_seed(seed)
    np.random.seed(seed % (2**32))
    try:
        yield
    finally:
        if saved is not None:
            random.setstate(saved[0])
            torch.set_rng_state(saved[1])
            np.random.set_state(saved[2])
