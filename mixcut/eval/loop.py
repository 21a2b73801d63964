"""The evaluation loop: one pass over a split, metrics summed across ranks."""

from __future__ import annotations

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
