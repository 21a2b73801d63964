"""The evaluation loop: one pass over a split, metrics summed across ranks."""

from __future__ import annotations

import contextlib

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
