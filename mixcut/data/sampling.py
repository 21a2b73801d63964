"""Which samples go into which batch on which rank, reproducibly.

Training order is a pure function of (seed, epoch): a resumed run, any number
of loader workers, and a mid-epoch restart all see the same batches. Every
sample also gets its own augmentation seed from its position in the epoch, so
augmentations are reproducible too and differ between repeated copies.
Evaluation shards are contiguous and unpadded: every sample counts once.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK64 = (1 << 63) - 1


def mix_seed(*parts: int) -> int:
    """Combine integers into one well-spread 63-bit seed (splitmix64 steps)."""
    z = 0x9E3779B97F4A7C15
    for p in parts:
        z = (z ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
    return z & _MASK64


def train_order(n: int, epoch: int, seed: int, rank: int, world_size: int, repeated_aug: int = 0) -> tuple[Tensor, Tensor]:
    """This rank's sample indices for one training epoch, and their positions
    in the global order (used to derive per-sample augmentation seeds).

    Every rank gets ``n // world_size`` samples. With ``repeated_aug = r > 1``
    each image appears r times in a row in the global order, so its copies
    land on r different ranks (DeiT's repeated augmentation); the epoch length
    stays ``n // world_size`` per rank, as in DeiT.
    """
    gen = torch.Generator().manual_seed(mix_seed(seed, epoch, 0x5A3))
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
