"""ResizeMix (Qin et al., 2020): paste the whole partner image, shrunk, into the sample."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as nnf
from torch import Tensor

from . import functional as F
from .base import Draws, Mixer, MixOptions, Plan, check_range
from .registry import register


def nearest_index(out_size: Tensor, in_size: int, length: int) -> Tensor:
    """Source index of each of ``length`` output positions when resizing ``in_size``
    pixels to ``out_size`` (B,) by nearest neighbour: (B, length) int64.

    Same float32 arithmetic as ``F.interpolate(mode='nearest')``, so a batch-mode
    paste (one interpolate) and a per-sample paste (this gather) agree exactly.
    """
    scale = float(in_size) / out_size.clamp_min(1).float()
    pos = torch.arange(length, device=out_size.device, dtype=torch.float32)
    return (pos.view(1, -1) * scale.view(-1, 1)).floor().long().clamp_(0, in_size - 1)


class ResizeMix(Mixer):
    """Resize the partner to ``tau`` of the image side, ``tau ~ U[scale]``, and
    paste it whole at a uniform position inside the sample.

    The pasted box is ``int(H * tau)`` x ``int(W * tau)`` pixels and lies fully
    inside the image; the partner is shrunk into it by nearest-neighbour
    sampling. Lambda is the exact share of the sample's own pixels,
    ``1 - box_area / (H * W)``. ``elem`` mode gives every sample its own scale
    and position (one gather, no loop), ``pair`` mode one per pair (partners
    swap the same box), ``batch`` mode one for the batch (one resize of the
    partners straight into the box). ``lam_clip`` clamps the nominal
    lambda ``1 - tau ** 2``, and the box is widened by a pixel where rounding
    down would take the kept share above the range.

    Args:
        scale: (low, high) range of ``tau`` within [0, 1]; (0.1, 0.8) in the paper.
        **kwargs: the common mixer options of `Mixer`.
    """

    def __init__(self, scale: tuple[float, float] = (0.1, 0.8), **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = check_range("ResizeMix scale", scale, 0.0, 1.0)

    def sample_lam(self, draws: Draws) -> Tensor:
        lo, hi = self.scale
        tau = lo + (hi - lo) * draws.uniform()
        lam = 1.0 - tau * tau
        if self.lam_clip is not None:
            lam = lam.clamp(*self.lam_clip)
        return lam

    def boxes(self, lam: Tensor, height: int, width: int, u: Tensor) -> Tensor:
        """Boxes (B, 4) of side ``int(side * sqrt(1 - lam))`` at uniform positions
        ``u`` (B, 2) inside the image; lam == 1 gives an empty box. With
        ``lam_clip`` a side is widened where rounding down took the kept share above it."""
        if self.lam_clip is None:
            bh, bw = F.box_sides(lam, height, width)
        else:
            bh, bw = F.bounded_sides(lam, height, width, F.area_bounds(lam, self.lam_clip, height, width)[0])
        y0 = (u[:, 0].double() * (height - bh + 1)).long().clamp_max(height - bh)
        x0 = (u[:, 1].double() * (width - bw + 1)).long().clamp_max(width - bw)
        return torch.stack([y0, y0 + bh, x0, x0 + bw], dim=1)

    def plan(self, x: Tensor, partner: Tensor, lam: Tensor, active: Tensor, draws: Draws) -> Plan:
        h, w = x.shape[-2:]
        boxes = self.boxes(lam, h, w, draws.uniform(2))
        y0, y1, x0, x1 = boxes.unbind(1)
        # source pixel of every output pixel: the partner, shrunk into the box
        local_r = (torch.arange(h, device=x.device).view(1, -1) - y0.view(-1, 1)).clamp(0, h - 1)
        local_c = (torch.arange(w, device=x.device).view(1, -1) - x0.view(-1, 1)).clamp(0, w - 1)
        rows = nearest_index(y1 - y0, h, h).gather(1, local_r)
        cols = nearest_index(x1 - x0, w, w).gather(1, local_c)
        # (B, H, W, C) gather, viewed back as (B, C, H, W); pixels outside the box are unused
        source = x[partner.view(-1, 1, 1), :, rows.view(-1, h, 1), cols.view(-1, 1, w)].permute(0, 3, 1, 2)
        kept = 1.0 - F.box_area(boxes).float() / float(h * w)
        return Plan(weight=F.keep_all(x), lam=kept, source=source, boxes=boxes)

    def apply_batch(self, x: Tensor, partner: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        # One box for the batch, drawn on the host: resize only the pixels it needs.
        h, w = x.shape[-2:]
        host = Draws(draws.generator, "cpu", 1, shared=True)
        lam = self.sample_lam(host)
        y0, y1, x0, x1 = self.boxes(lam, h, w, host.uniform(2))[0].tolist()
        out = self.output_buffer(x)
        if out is not x:
            out.copy_(x)
        if y1 > y0 and x1 > x0:
            small = nnf.interpolate(x, size=(y1 - y0, x1 - x0), mode="nearest")  # reads only the pixels it keeps
            pasted = small[partner]  # (index_select into a fresh tensor is slow on CPU)
            if x.shape[0] % 2:  # odd batch: a sample may be its own partner, and then it stays as it is
                alone = (partner == torch.arange(x.shape[0], device=x.device)).view(-1, 1, 1, 1)
                pasted = torch.where(alone, out[:, :, y0:y1, x0:x1], pasted)
            out[:, :, y0:y1, x0:x1] = pasted
        kept = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
        return out, torch.full((x.shape[0],), kept, device=x.device)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


@dataclass
class ResizeMixOptions(MixOptions):
    name: str = "resizemix"
    scale: list[float] = field(default_factory=lambda: [0.1, 0.8])  # tau range, share of the side


register("resizemix", ResizeMix, ResizeMixOptions)
