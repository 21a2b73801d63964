"""SaliencyMix (Uddin et al., 2021): a CutMix box centred on the source's saliency peak.

Saliency, computed on the device for every image of the batch
----------------------------------------------------------------
The official code runs OpenCV's ``StaticSaliencyFineGrained`` (the
centre-surround intensity saliency of Montabone & Soto, 2010) on the host, on
one image per batch. `fine_grained_saliency` is a torch version of the same
algorithm:

1. grey = 0.299 R + 0.587 G + 0.114 B (a single channel is used as is, other
   channel counts are averaged);
2. two 3x3 Gaussian blurs ([1, 2, 1] / 4 each way, mirrored borders), as OpenCV;
3. for each of OpenCV's six surround half-widths n = 12, 24, 48, 28, 56, 112
   pixels: the mean of the surround window (rows and columns ``[p - n + 1, p + n]``
   clipped to the image, OpenCV's window, centre pixel excluded), and the
   centre-surround contrast ``|grey - surround mean|`` (OpenCV's on-centre plus
   off-centre responses);
4. saliency = the sum of the contrasts over the six scales.

The box is centred at the first maximum in raster order (``argmax`` on the
device, no host sync), sized as CutMix's from ``lam ~ Beta(alpha, alpha)``,
clipped at the border, and lambda is corrected to the pasted area, as in the
official code.

How it differs from the official behaviour:

* every source gets its own map and box (``per_batch=False``, the default);
  ``per_batch=True`` reproduces the official scheme: one map from one image (the
  partner of sample 0), one peak for the whole batch;
* OpenCV reads pixels as 8-bit (``Mat::at<uchar>``). The official scripts pass
  it the normalized float32 tensor, so OpenCV reads raw bytes of the floats
  (the first quarter of each row), and the peak hardly depends on the image:
  on a 64x64 image with one bright square away from the left edge, the peak is
  at row 0, column 3 wherever the square is. Here the image is read as numbers,
  in any dtype and normalisation (the map is invariant to affine intensity
  changes of the whole image);
* OpenCV truncates every intermediate to 8 bits and normalizes the on-centre
  and off-centre sums separately to 255 before adding them (the 8-bit sum can
  wrap around). With separate normalization the dark surround of a bright
  object is as salient as the object, and on uint8 images OpenCV's peak often
  lands next to the object or at a border. We add the raw contrasts in float32
  instead, so a bright object on a flat background peaks at the object;
* the official code treats the RGB tensor as BGR (OpenCV's channel order);
  the luma weights here are applied to R, G, B as given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor

from . import functional as F
from .base import Draws, Mixer, MixOptions, Plan, check_positive
from .registry import register

#: On the CPU, work through the batch in slices of about this many pixels: the temporaries then
#: stay allocator-friendly instead of faulting in fresh pages on every call (several times faster).
CPU_SLICE_PIXELS = 1 << 21

#: OpenCV's surround half-widths (pixels) of the fine-grained saliency.
NEIGHBOURHOODS = (12, 24, 48, 28, 56, 112)
_LUMA = (0.299, 0.587, 0.114)


def _grey(x: Tensor) -> Tensor:
    """(B, H, W) float32 intensity."""
    if x.shape[1] != 3:
        return x.float().mean(1)
    grey = x[:, 0].float() * _LUMA[0]
    grey.add_(x[:, 1].float(), alpha=_LUMA[1])
    return grey.add_(x[:, 2].float(), alpha=_LUMA[2])


def _blur(grey: Tensor) -> Tensor:
    """Two 3x3 Gaussian blurs ([1, 2, 1] / 4 each way, OpenCV's kernel for a 3x3
    window) = one [1, 4, 6, 4, 1] / 16 pass each way, with mirrored borders."""
    mode = "reflect" if min(grey.shape[-2:]) > 2 else "replicate"
    p = nnf.pad(grey.unsqueeze(1), (2, 2, 2, 2), mode=mode).squeeze(1)
    rows = p[:, :, 0:-4] + p[:, :, 4:]
    rows.add_(p[:, :, 1:-3] + p[:, :, 3:-1], alpha=4.0).add_(p[:, :, 2:-2], alpha=6.0)
    out = rows[:, 0:-4] + rows[:, 4:]
    out.add_(rows[:, 1:-3] + rows[:, 3:-1], alpha=4.0).add_(rows[:, 2:-2], alpha=6.0)
    return out.div_(256.0)


def fine_grained_saliency(x: Tensor) -> Tensor:
    """Centre-surround intensity saliency (B, H, W), float32 (see module docstring)."""
    grey = _blur(_grey(x))
    b, h, w = grey.shape
    grey -= grey.mean(dim=(1, 2), keepdim=True)  # smaller sums in the integral image
    # Integral image (B, H + 1, W + 1), edge-padded so that every clipped window
    # corner is a plain shifted view (a window wider than the image is the image).
    pad = min(max(NEIGHBOURHOODS), max(h, w)) + 1
    integral = nnf.pad(grey.cumsum(1).cumsum(2), (1, 0, 1, 0))
    integral = nnf.pad(integral.unsqueeze(1), (pad, pad, pad, pad), mode="replicate").squeeze(1)
    rows = torch.arange(h, device=x.device).view(-1, 1)
    cols = torch.arange(w, device=x.device).view(1, -1)
    saliency = torch.zeros_like(grey)
    total = torch.empty_like(grey)
    for n in NEIGHBOURHOODS:
        n = min(n, max(h, w))  # same clipped windows
        lo, hi = pad - n + 1, pad + n + 1
        torch.sub(integral[:, hi : hi + h, hi : hi + w], integral[:, lo : lo + h, hi : hi + w], out=total)
        total.sub_(integral[:, hi : hi + h, lo : lo + w]).add_(integral[:, lo : lo + h, lo : lo + w])
        count = ((rows + n + 1).clamp_max(h) - (rows - n + 1).clamp_min(0)) * (
            (cols + n + 1).clamp_max(w) - (cols - n + 1).clamp_min(0)
        )
        # |centre - mean of the surround (window less the centre)| = |grey * count - total| / (count - 1)
        total.addcmul_(grey, count.float(), value=-1.0).abs_()
        saliency.addcmul_(total, 1.0 / (count - 1).clamp_min(1).float())
    return saliency


def saliency_peaks(x: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column (B,) of each image's saliency maximum (first in raster order)."""
    h, w = x.shape[-2:]
    step = max(1, CPU_SLICE_PIXELS // max(h * w, 1)) if x.device.type == "cpu" else max(1, x.shape[0])
    flat = torch.cat([fine_grained_saliency(x[i : i + step]).flatten(1).argmax(dim=1) for i in range(0, x.shape[0], step)])
    return flat // w, flat % w


class SaliencyMix(Mixer):
    """CutMix with the box centred on the partner's most salient pixel.

    The partner's box region is pasted at the same place in the sample (the
    official scheme); the box side is ``int(side * sqrt(1 - lam))`` with
    ``lam ~ Beta(alpha, alpha)``, clipped at the border, and the reported lambda
    is the exact kept share. With ``lam_clip=(lo, hi)`` the kept share stays in
    [lo, hi]: a side is widened by the pixels that rounding down cost, where
    needed, and a box that the border would clip too much slides inside the
    image (it still covers the peak). Saliency: see the module docstring.

    Args:
        alpha: Beta concentration (> 0); 1.0 in the paper.
        per_batch: the official behaviour: one saliency map, from the partner of
            sample 0, gives one peak for all samples (in ``batch`` mode, one box
            for the batch). False (default): every partner's own peak.
        **kwargs: the common mixer options of `Mixer`.
    """

    def __init__(self, alpha: float = 1.0, per_batch: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = check_positive("SaliencyMix alpha", alpha)
        self.per_batch = bool(per_batch)

    def peaks(self, x: Tensor, partner: Tensor) -> tuple[Tensor, Tensor]:
        """Peak (row, col) (B,) of every sample's source ``x[partner]``."""
        if self.per_batch:
            cy, cx = saliency_peaks(x.index_select(0, partner[:1]))
            return cy.expand(x.shape[0]), cx.expand(x.shape[0])
        cy, cx = saliency_peaks(x)  # one map per image, then look up each partner's
        return cy[partner], cx[partner]

    def plan(self, x: Tensor, partner: Tensor, lam: Tensor, active: Tensor, draws: Draws) -> Plan:
        h, w = x.shape[-2:]
        cy, cx = self.peaks(x.detach(), partner)
        lam = lam.to(x.device)
        if self.lam_clip is None:
            boxes = F.cutmix_boxes(lam, h, w, cy, cx)  # lam == 1 (inactive) gives an empty box
        else:  # keep the share in range: widen what rounding cut off, slide a box the border clipped too much
            min_area, _ = F.area_bounds(lam, self.lam_clip, h, w)
            cut_h, cut_w = F.bounded_sides(lam, h, w, min_area)
            boxes = F.slide_inside(F.centred_boxes(cut_h, cut_w, h, w, cy, cx), cut_h, cut_w, h, w, min_area)
        kept = 1.0 - F.box_area(boxes).float() / float(h * w)
        return Plan(weight=F.keep_all(x), lam=kept, boxes=boxes)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, per_batch={self.per_batch}"


@dataclass
class SaliencyMixOptions(MixOptions):
    name: str = "saliencymix"
    alpha: float = 1.0
    per_batch: bool = False  # official behaviour: one saliency map per batch


register("saliencymix", SaliencyMix, SaliencyMixOptions)
