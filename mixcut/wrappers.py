"""The model under its wrappers (DDP, DataParallel, torch.compile): one helper for
the EMA update, Manifold Mixup's hooks and anything else that needs the real module."""

from __future__ import annotations

from torch import nn


def unwrap_model(model: nn.Module) -> tuple[nn.Module, bool]:
    """The module under DDP/DataParallel and torch.compile wrappers, and whether it was compiled."""
    compiled = False
    while True:
        if hasattr(model, "_orig_mod"):
            model, compiled = model._orig_mod, True
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model, compiled
