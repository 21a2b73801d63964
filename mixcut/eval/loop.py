"""The evaluation loop: one pass over a split, metrics summed across ranks; and
`EveryKth`, the fixed subset of a split the costly evaluators run on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..runtime import faults
from .metrics import ClassificationMeter


@torch.no_grad()
def evaluate_split(model: nn.Module, batches, num_classes: int, device: torch.device, amp_dtype=None, progress=None) -> dict:
    """Top-1/top-5, NLL, ECE and Brier over the whole split (summed across ranks).

    No mixing happens here: batches go straight from the stream to the model.
    """
    model.eval()
    meter = ClassificationMeter(num_classes, device=device)
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    for x, y in batches.epoch(0):
        with ctx:
            logits = model(x)
        meter.update(logits, y)
        faults.point("eval")
        if progress is not None:
            progress.update(1)
    meter.all_reduce()
    out = meter.compute()
    out["reliability"] = meter.reliability()
    return out


class EveryKth:
    """The validation images whose position in the (fixed) validation order is a multiple
    of ``k``: a deterministic subset that keeps the class balance of an ordered split."""

    def __init__(self, batches, k: int) -> None:
        self.batches, self.k = batches, k

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        seen = 0
        for x, y in self.batches.epoch(epoch):
            first = (-seen) % self.k  # index in this batch of the next multiple of k
            seen += x.shape[0]
            if first < x.shape[0]:
                yield x[first :: self.k], y[first :: self.k]

    def __len__(self) -> int:
        return len(self.batches)
