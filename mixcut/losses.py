"""Losses on soft targets. Label smoothing is already in the targets (built by
the mixer), so no loss here smooths again."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SoftTargetCrossEntropy(nn.Module):
    """Mean over the batch of ``-sum_k t_k log softmax(x)_k``."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


class SoftTargetBCE(nn.Module):
    """Binary cross entropy per class on soft targets (as in "ResNet strikes
    back"), averaged over batch and classes. ``target_thresh`` turns targets
    above it into 1 and the rest into 0."""

    def __init__(self, target_thresh: float | None = None) -> None:
        super().__init__()
        self.target_thresh = target_thresh

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.target_thresh is not None:
            target = target.gt(self.target_thresh).to(target.dtype)
        return F.binary_cross_entropy_with_logits(logits.float(), target)


def create_loss(loss_cfg) -> nn.Module:
    if loss_cfg.name == "bce":
        return SoftTargetBCE(loss_cfg.bce_target_thresh)
    return SoftTargetCrossEntropy()
