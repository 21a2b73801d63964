"""The evaluation loop: one pass over a split, metrics summed across ranks; and
`EveryKth`, the fixed subset of a split the costly evaluators run on."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..runtime import faults
from .metrics import ClassificationMeter


def fp32_logits(model: nn.Module, x: torch.Tensor, device: torch.device, amp_dtype=None) -> torch.Tensor:
    """``model(x)`` in fp32 logits: with ``amp_dtype`` the body runs under autocast and the
    classifier head in fp32.

    A bf16 head rounds logits to 8 significant bits: near-equal scores become ties (fractional
    top-k) and NLL/ECE move. timm models (mixcut's CIFAR networks included) split into
    ``forward_features`` and ``forward_head``; any other model runs whole under autocast and
    only its output is cast.
    """
    if amp_dtype is None:
        return model(x)
    split = callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None))
    with torch.autocast(device.type, dtype=amp_dtype):
        out = model.forward_features(x) if split else model(x)
    if not split:
        return out.float()
    with torch.autocast(device.type, enabled=False):
        return model.forward_head(out.float()).float()


@torch.no_grad()
def evaluate_split(model: nn.Module, batches, num_classes: int, device: torch.device, amp_dtype=None, progress=None) -> dict:
    """Top-1/top-5, NLL, ECE and Brier over the whole split (summed across ranks).

    No mixing happens here: batches go straight from the stream to the model. Under AMP the
    body runs in ``amp_dtype``, the head and every metric in fp32 (`fp32_logits`).
    """
    model.eval()
    meter = ClassificationMeter(num_classes, device=device)
    for x, y in batches.epoch(0):
        logits = fp32_logits(model, x, device, amp_dtype)
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
