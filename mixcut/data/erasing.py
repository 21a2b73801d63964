"""Random erasing (Zhong et al. 2017) of a whole normalized batch on the device, vectorised.

The distribution is timm's ``RandomErasing`` (``timm/data/random_erasing.py``), sample by
sample: with probability ``prob`` a sample gets ``count ~ U{min_count..max_count}`` boxes;
each box tries up to 10 times to draw an area ``U(min_area, max_area) * H * W / count`` and
an aspect ratio ``exp(U(log min_aspect, log max_aspect))``, takes the first draw whose
rounded height and width fit (``h < H``, ``w < W``; none fitting: no box), then a uniform
top-left corner. The box is filled with zeros (``const``), one normal colour per channel
(``rand``) or normal noise per pixel (``pixel``); a later box covers an earlier one.

timm loops over the samples and boxes in Python (a few small kernels per image); here
every draw of the batch is one tensor, the boxes become masks as Cutout's do, and the
batch is written in a handful of kernels whatever its size. The draws come from a
generator reseeded per (seed, epoch, batch, rank), so a mid-epoch resume erases the same
boxes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

ATTEMPTS = 10  # timm's tries per box


class RandomErasing:
    """``RandomErasing(prob, mode, max_count)(x, generator)``: ``x`` (B, C, H, W) float in, erased copy out."""

    def __init__(
        self,
        prob: float,
        mode: str = "pixel",
        max_count: int = 1,
        min_count: int = 1,
        min_area: float = 0.02,
        max_area: float = 1 / 3,
        min_aspect: float = 0.3,
    ) -> None:
        if mode not in ("const", "rand", "pixel"):
            raise ValueError(f"random erasing mode must be const, rand or pixel; got {mode!r}.")
        self.prob, self.mode = float(prob), mode
        self.min_count, self.max_count = int(min_count), max(int(max_count), int(min_count))
        self.min_area, self.max_area = float(min_area), float(max_area)
        self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))

    def boxes(self, b: int, h: int, w: int, generator: torch.Generator, device) -> tuple[Tensor, Tensor]:
        """(B, K, 4) boxes ``(top, left, height, width)`` (K = ``max_count``; a box that is
        not drawn has height and width 0) and the (B, K) mask of drawn boxes."""
        k = self.max_count

        def uniform(*shape: int) -> Tensor:
            return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)

        erase = uniform(b) < self.prob
        count = torch.randint(self.min_count, self.max_count + 1, (b,), generator=generator, device=device)
        area = (self.min_area + (self.max_area - self.min_area) * uniform(b, k, ATTEMPTS)) * (h * w) / count.view(b, 1, 1)
        lo, hi = self.log_aspect
        aspect = torch.exp(lo + (hi - lo) * uniform(b, k, ATTEMPTS))
        bh = torch.round(torch.sqrt(area * aspect))  # round half to even, as Python's round
        bw = torch.round(torch.sqrt(area / aspect))
        fits = (bh < h) & (bw < w)
        first = fits.to(torch.uint8).argmax(dim=-1, keepdim=True)  # the first attempt that fits
        bh, bw = bh.gather(-1, first).squeeze(-1).long(), bw.gather(-1, first).squeeze(-1).long()
        drawn = erase.view(b, 1) & (torch.arange(k, device=device) < count.view(b, 1)) & fits.any(dim=-1)
        bh, bw = bh * drawn, bw * drawn
        # corners uniform over [0, H - h] and [0, W - w], both ends included (random.randint)
        top = (uniform(b, k) * (h - bh + 1)).long().clamp_max(h - bh)
        left = (uniform(b, k) * (w - bw + 1)).long().clamp_max(w - bw)
        return torch.stack([top, left, bh, bw], dim=-1), drawn

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        b, c, h, w = x.shape
        if self.prob <= 0:
            return x
        box, drawn = self.boxes(b, h, w, generator, x.device)
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        top, left, bh, bw = box.unbind(-1)
        in_rows = (rows >= top.unsqueeze(-1)) & (rows < (top + bh).unsqueeze(-1))  # (B, K, H)
        in_cols = (cols >= left.unsqueeze(-1)) & (cols < (left + bw).unsqueeze(-1))  # (B, K, W)
        masks = in_rows.unsqueeze(-1) & in_cols.unsqueeze(-2)  # (B, K, H, W)
        if self.mode == "rand":
            colour = torch.randn((b, self.max_count, c), generator=generator, device=x.device, dtype=x.dtype)
            for k in range(self.max_count):  # later boxes cover earlier ones, as in timm
                x = torch.where(masks[:, k : k + 1], colour[:, k].view(b, c, 1, 1), x)
            return x
        mask = masks.any(dim=1, keepdim=True)  # (B, 1, H, W)
        # torch.where keeps x's memory format (channels-last); masked_fill with a broadcast mask does not
        if self.mode == "const":
            return torch.where(mask, 0.0, x)
        noise = torch.empty_like(x).normal_(generator=generator)
        return torch.where(mask, noise, x)  # fresh noise per pixel: which box covers it does not matter
