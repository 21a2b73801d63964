"""Batched augmentation on the training device (uint8 in, uint8 out).

The device-resident path (``data.cache=device``) augments whole batches with
a few tensor ops instead of per-image PIL transforms in worker processes:
random translation by padding and cropping plus horizontal flips in one
gather, random resized crops through one ``grid_sample``. Randomness comes
from an explicit generator.

Speed notes (CPU, batch 128 x 3 x 32 x 32 uint8, one thread; see
docs/throughput.md): padding once and reading each output pixel with one
``gather`` whose column index already carries the flip costs about a fifth of
the earlier ``padded[batch, :, rows, cols]`` advanced indexing followed by a
``torch.where`` flip, and yields a contiguous batch. The random draws (row
offsets, column offsets, then flips) are unchanged, so the batches are the
same bit for bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .sampling import SALT_FIRST_FLIP, mix_seeds


def random_offsets(b: int, padding: int, generator: torch.Generator, device) -> tuple[Tensor, Tensor]:
    oy = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=device)
    ox = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=device)
    return oy, ox


def _flips(b: int, prob: float, generator: torch.Generator, device) -> Tensor:
    return torch.rand(b, generator=generator, device=device) < prob


def _reflect(idx: Tensor, n: int) -> Tensor:
    """Indices in [-(n-1), 2n-2] mirrored into [0, n) without repeating the edge (``reflect`` padding)."""
    idx = idx.abs()
    return torch.where(idx >= n, 2 * (n - 1) - idx, idx)


def crop_flip(
    x: Tensor, padding: int, oy: Tensor | None, ox: Tensor | None, flip: Tensor | None, mode: str = "constant"
) -> Tensor:
    """Translate each sample by (``oy - padding``, ``ox - padding``) pixels inside a
    ``padding``-wide border (zeros or reflection) and mirror the samples where
    ``flip`` is true, all in one gather. ``oy``/``ox`` are (B, 1) offsets in
    ``[0, 2 * padding]``; None means no translation / no flip. Keeps the dtype."""
    b, c, h, w = x.shape
    dev = x.device
    rows = torch.arange(h, device=dev).view(1, h).expand(b, h)
    cols = torch.arange(w, device=dev).view(1, w).expand(b, w)
    if flip is not None:
        cols = torch.where(flip.view(b, 1), (w - 1) - cols, cols)
    src, width = x, w
    if padding > 0 and oy is not None:
        if mode == "reflect":
            if padding >= min(h, w):
                raise ValueError(f"reflect padding {padding} needs images larger than {padding} pixels; got {h}x{w}.")
            rows = _reflect(rows + oy - padding, h)
            cols = _reflect(cols + ox - padding, w)
        else:
            src, width = F.pad(x, (padding,) * 4), w + 2 * padding
            rows, cols = rows + oy, cols + ox
    flat = (rows.view(b, h, 1) * width + cols.view(b, 1, w)).view(b, 1, h * w).expand(b, c, h * w)
    return src.reshape(b, c, -1).gather(2, flat).view(b, c, h, w)


def pad_crop(x: Tensor, padding: int, generator: torch.Generator, mode: str = "constant") -> Tensor:
    """Random crops of the padded batch: a translation by up to ``padding``
    pixels per sample, with zero (``constant``) or ``reflect`` padding."""
    if padding <= 0:
        return x
    oy, ox = random_offsets(x.shape[0], padding, generator, x.device)
    return crop_flip(x, padding, oy, ox, None, mode)


def random_hflip(x: Tensor, prob: float, generator: torch.Generator) -> Tensor:
    """Flip each sample left-right with probability ``prob``."""
    if prob <= 0:
        return x
    flip = _flips(x.shape[0], prob, generator, x.device)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def pad_crop_flip(x: Tensor, padding: int, prob: float, generator: torch.Generator, mode: str = "constant") -> Tensor:
    """`pad_crop` then `random_hflip` (same random draws, same result) in one pass."""
    b = x.shape[0]
    oy, ox = random_offsets(b, padding, generator, x.device) if padding > 0 else (None, None)
    flip = _flips(b, prob, generator, x.device) if prob > 0 else None
    if oy is None and flip is None:
        return x
    return crop_flip(x, padding, oy, ox, flip, mode)


def alternate_flips(first: Tensor, epoch: int) -> Tensor:
    """Airbench94's alternating flip: each image is mirrored in epoch 0 where ``first``
    is true and then on every other epoch, so over two epochs it is seen both ways."""
    return first ^ bool(epoch % 2)


def first_flips(indices: Tensor, seed: int, prob: float) -> Tensor:
    """Whether each image (by its index in the split) is mirrored in the first epoch of
    the alternating flip: a fixed coin with probability ``prob`` per image, a pure
    function of (seed, index), so every rank and every resume agree."""
    raw = mix_seeds((seed,), indices.cpu().numpy(), (SALT_FIRST_FLIP,))
    uniform = torch.from_numpy((raw >> 11).astype("float64") / float(1 << 52))
    return (uniform < prob).to(indices.device)


def rrc_boxes(
    b: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator, device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random-resized-crop boxes as shares of the image: (centre x, centre y) in
    [-1, 1] coordinates and (width, height) in (0, 1], always inside the image."""
    area = torch.empty(b, device=device).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(b, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_r)
    cw = torch.sqrt(area * aspect).clamp(max=1.0)  # crop width as a share of the image width
    ch = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(b, generator=generator, device=device) * 2 - 1) * (1 - cw)
    cy = (torch.rand(b, generator=generator, device=device) * 2 - 1) * (1 - ch)
    return cx, cy, cw, ch


def random_resized_crop(
    x: Tensor,
    size: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    hflip: float = 0.0,
) -> Tensor:
    """Inception-style random resized crops of a batch through one grid_sample.

    Area share ~ U(scale), log aspect ~ U(log ratio); crops that would not fit
    are shrunk to fit (torchvision retries instead; the difference is rare at
    CIFAR scales). With ``hflip > 0`` each crop is also mirrored with that
    probability, for free, by negating its horizontal sampling step (the same
    draws and pixels as calling `random_hflip` afterwards). Returns float32 in
    the input's value range.
    """
    b = x.shape[0]
    cx, cy, cw, ch = rrc_boxes(b, scale, ratio, generator, x.device)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = torch.where(_flips(b, hflip, generator, x.device), -cw, cw) if hflip > 0 else cw
    theta[:, 0, 2] = cx
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
