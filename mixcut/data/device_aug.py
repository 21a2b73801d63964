"""Batched augmentation on the training device (uint8 in, uint8 out).

The device-resident path (``data.cache=device``) augments whole batches with
a few tensor ops instead of per-image PIL transforms in worker processes:
random translation by padding and cropping, horizontal flips, random resized
crops through one ``grid_sample``. Randomness comes from an explicit generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def pad_crop(x: Tensor, padding: int, generator: torch.Generator, mode: str = "constant") -> Tensor:
    """Random crops of the padded batch: a translation by up to ``padding``
    pixels per sample, with zero (``constant``) or ``reflect`` padding."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    if mode == "reflect" and not x.is_floating_point():
        padded = F.pad(x.float(), (padding,) * 4, mode="reflect").to(x.dtype)
    else:
        padded = F.pad(x, (padding,) * 4, mode=mode)
    dev = x.device
    oy = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=dev)
    ox = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=dev)
    rows = (oy + torch.arange(h, device=dev)).view(b, h, 1)
    cols = (ox + torch.arange(w, device=dev)).view(b, 1, w)
    batch = torch.arange(b, device=dev).view(b, 1, 1)
    # advanced indices around a slice put the batch dims first: (B, H, W, C)
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)


def random_hflip(x: Tensor, prob: float, generator: torch.Generator) -> Tensor:
    """Flip each sample left-right with probability ``prob``."""
    if prob <= 0:
        return x
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < prob
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def random_resized_crop(
    x: Tensor, size: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator
) -> Tensor:
    """Inception-style random resized crops of a batch through one grid_sample.

    Area share ~ U(scale), log aspect ~ U(log ratio); crops that would not fit
    are shrunk to fit (torchvision retries instead; the difference is rare at
    CIFAR scales). Returns float32 in the input's value range.
    """
    b, dev = x.shape[0], x.device
    area = torch.empty(b, device=dev).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(b, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_r)
    cw = torch.sqrt(area * aspect).clamp(max=1.0)  # crop width as a share of the image width
    ch = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(b, generator=generator, device=dev) * 2 - 1) * (1 - cw)
    cy = (torch.rand(b, generator=generator, device=dev) * 2 - 1) * (1 - ch)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = cw, cx
    theta[:, 1, 1], theta[:, 1, 2] = ch, cy
    grid = F.affine_grid(theta, (b, x.shape[1], size, size), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize_batch(x: Tensor, size: int) -> Tensor:
    """Resize a batch to ``size`` x ``size`` (antialiased when shrinking)."""
    if x.shape[-2:] == (size, size):
        return x
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(x.dtype) if not x.is_floating_point() else out


class Normalize:
    """uint8 (or 0-255 float) images to normalized float32 on the device, in
    one fused pass, optionally channels-last."""

    def __init__(self, mean, std, device, channels_last: bool = False) -> None:
        self.mean = torch.tensor([255.0 * m for m in mean], device=device).view(1, -1, 1, 1)
        self.inv_std = torch.tensor([1.0 / (255.0 * s) for s in std], device=device).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x: Tensor) -> Tensor:
        x = x.to(dtype=torch.float32, memory_format=self.memory_format)
        return x.sub_(self.mean).mul_(self.inv_std)
