"""Test-time augmentation (``eval.tta``): the mean logits over a few views of each image.

* ``flip``: the image and its mirror, weight 1/2 each.
* ``flip_translate``: airbench94's six views (Jordan 2024): half the weight on the
  two ``flip`` views of the image itself, half on the ``flip`` views of the image
  shifted one pixel up-left and one pixel down-right (reflection padding), 1/8 each.

Logits are averaged (not probabilities), as in the paper. Works for any model
that takes a batch of images; `TTAModel` wraps one so the ordinary evaluation
loop reports every metric of the augmented predictions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TTA_MODES = ("none", "flip", "flip_translate")


def _flip_mean(model: nn.Module, x: Tensor) -> Tensor:
    return 0.5 * model(x) + 0.5 * model(x.flip(-1))


def tta_logits(model: nn.Module, x: Tensor, mode: str) -> Tensor:
    """The ``mode`` test-time-augmented logits of ``model`` on the batch ``x`` (N x C x H x W)."""
    if mode == "none":
        return model(x)
    if mode == "flip":
        return _flip_mean(model, x)
    if mode == "flip_translate":
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = [padded[..., :h, :w], padded[..., 2 : h + 2, 2 : w + 2]]
        translated = torch.stack([_flip_mean(model, v) for v in shifted]).mean(0)
        return 0.5 * _flip_mean(model, x) + 0.5 * translated
    raise ValueError(f"eval.tta={mode!r} is not a test-time augmentation; use one of {', '.join(TTA_MODES)}.")


class TTAModel(nn.Module):
    """``model`` whose forward returns its ``mode`` test-time-augmented logits."""

    def __init__(self, model: nn.Module, mode: str) -> None:
        super().__init__()
        if mode not in TTA_MODES:
            raise ValueError(f"eval.tta={mode!r} is not a test-time augmentation; use one of {', '.join(TTA_MODES)}.")
        self.model, self.mode = model, mode

    def forward(self, x: Tensor) -> Tensor:
        return tta_logits(self.model, x, self.mode)
