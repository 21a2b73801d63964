"""Cutout (DeVries & Taylor, 2017): blank a square of every image; labels unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import functional as F
from .base import Draws, Mixer, MixOptions, Plan
from .registry import register


class Cutout(Mixer):
    """Fill a ``size`` x ``size`` square with ``fill``; the targets stay the
    (smoothed) one-hot labels.

    The square's centre is uniform over the image and the square is clipped at
    the border (so it may cover less than ``size ** 2`` pixels), as in the
    paper. It is never mixed with another sample: the partner is the sample
    itself and lambda is 1. In ``elem`` and ``pair`` mode (the paper's
    behaviour, the config default) every image gets its own square and
    ``prob`` gates each image; in ``batch`` mode one square is cut from the
    whole batch and ``prob`` gates the batch.

    Args:
        size: side of the square in pixels (16 on CIFAR-10, 8 on CIFAR-100 in
            the paper). Odd sides are exact (the paper's code cuts an even side).
        fill: value written into the square, in the units of the images (0 is
            the mean of normalized images). Rounded and clamped for integer images.
        **kwargs: the common mixer options of `Mixer`.
    """

    pairs_samples = False

    def __init__(self, size: int = 16, fill: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(size) != size or int(size) < 1:
            raise ValueError(f"Cutout size must be a positive integer (pixels); got {size}.")
        self.size = int(size)
        self.fill = float(fill)

    def sample_lam(self, draws: Draws) -> Tensor:
        return torch.ones(draws.n, device=draws.device)

    def boxes(self, active: Tensor, height: int, width: int, draws: Draws) -> Tensor:
        """Half-open (y0, y1, x0, x1) squares (B, 4), clipped; inactive samples get none."""
        y0 = draws.randint(height) - self.size // 2
        x0 = draws.randint(width) - self.size // 2
        boxes = torch.stack(
            [y0.clamp(0, height), (y0 + self.size).clamp(0, height), x0.clamp(0, width), (x0 + self.size).clamp(0, width)], dim=1
        )
        return boxes * active.view(-1, 1)

    def fill_value(self, x: Tensor) -> float | int:
        """``fill`` in the images' dtype (rounded and clamped for integer images)."""
        if x.is_floating_point():
            return self.fill
        info = torch.iinfo(x.dtype)
        return min(max(round(self.fill), info.min), info.max)

    def holes(self, x: Tensor, active: Tensor, draws: Draws) -> Tensor:
        """Boolean (B, 1, H, W), True where the image is blanked."""
        h, w = x.shape[-2:]
        return F.box_masks(self.boxes(active, h, w, draws), h, w)

    def plan(self, x: Tensor, partner: Tensor, lam: Tensor, active: Tensor, draws: Draws) -> Plan:
        fill = torch.full((), self.fill_value(x), dtype=x.dtype, device=x.device)  # no host-to-device copy
        return Plan(weight=~self.holes(x, active, draws), lam=torch.ones_like(lam), source=fill)

    def apply_each(self, x: Tensor, partner: Tensor, active: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        holes = self.holes(x, active, draws)
        out = self.output_buffer(x)
        if out is not x:
            out.copy_(x)
        return out.masked_fill_(holes, self.fill_value(x)), torch.ones(x.shape[0], device=x.device)

    def apply_batch(self, x: Tensor, partner: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        # One square for the batch, drawn on the host: fill a slice, no mask.
        h, w = x.shape[-2:]
        host = Draws(draws.generator, "cpu", 1, shared=True)
        y0, y1, x0, x1 = self.boxes(torch.ones(1, dtype=torch.bool), h, w, host)[0].tolist()
        out = self.output_buffer(x)
        if out is not x:
            out.copy_(x)
        out[:, :, y0:y1, x0:x1] = self.fill_value(x)
        return out, torch.ones(x.shape[0], device=x.device)

    def extra_repr(self) -> str:
        return f"size={self.size}, fill={self.fill}"


@dataclass
class CutoutOptions(MixOptions):
    name: str = "cutout"
    size: int = 16  # side of the square (16 on CIFAR-10, 8 on CIFAR-100 in the paper)
    fill: float = 0.0  # value written into the normalized image


register("cutout", Cutout, CutoutOptions)
