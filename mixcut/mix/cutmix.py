"""CutMix (Yun et al., 2019): paste a box of the partner image; labels by area."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import functional as F
from .base import Draws, Mixer, MixOptions, Plan, check_positive, check_range
from .registry import register


class CutMix(Mixer):
    """Paste a box of ``x[partner]`` into ``x``; lambda becomes the kept area.

    The box side is ``int(side * sqrt(1 - lam))`` with lam ~ Beta(alpha, alpha)
    and a uniform centre, clipped at the border (paper and timm). With
    ``lam_clip=(lo, hi)`` the kept share itself stays in [lo, hi]: a side is
    widened by the pixels that rounding down cost, where needed, and the centre
    is uniform over the positions whose clipped box keeps the share in range. With
    ``minmax=(lo, hi)`` box sides are instead uniform in [lo, hi) of the image
    side and lie fully inside it (timm's ``cutmix_minmax``).

    Args:
        alpha: Beta concentration (> 0); 1.0 in the paper.
        minmax: optional (lo, hi) in (0, 1), lo <= hi, for the box-side range.
        correct_lam: report the exact kept share ``1 - box_area / image_area``
            (after clipping) instead of the sampled lam. Always on with
            ``minmax``, where the sampled lam does not size the box.
        **kwargs: the common mixer options of `Mixer`.
    """

    def __init__(self, alpha: float = 1.0, minmax: tuple[float, float] | None = None, correct_lam: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = check_positive("CutMix alpha", alpha)
        self.minmax = check_range("CutMix minmax", minmax, 0.0, 1.0, open_interval=True)
        self.correct_lam = bool(correct_lam) or self.minmax is not None
        self.set_lam_clip(self.lam_clip)

    def set_lam_clip(self, lam_clip: tuple[float, float] | None) -> None:
        if lam_clip is not None and self.minmax is not None:
            raise ValueError(
                f"CutMix: lam_clip={tuple(lam_clip)} cannot act with minmax={self.minmax} (minmax sizes the box "
                "without lambda); drop one of them."
            )
        super().set_lam_clip(lam_clip)

    def boxes(self, lam: Tensor, active: Tensor, height: int, width: int, draws: Draws) -> Tensor:
        """Per-sample boxes (B, 4); inactive samples get an empty box."""
        if self.minmax is not None:
            boxes = F.minmax_boxes(height, width, self.minmax, draws.uniform(4))
            return boxes * active.view(-1, 1)
        if self.lam_clip is None:
            cy, cx = draws.randint(height), draws.randint(width)
            return F.cutmix_boxes(lam, height, width, cy, cx)  # lam == 1 gives an empty box
        # lam_clip bounds the kept share: size the box so that rounding cannot take it out of range,
        # and draw the centre among the positions where the border clips off no more than allowed
        min_area, _ = F.area_bounds(lam, self.lam_clip, height, width)
        cut_h, cut_w = F.bounded_sides(lam, height, width, min_area)
        cy, cx = F.bounded_centres(cut_h, cut_w, height, width, min_area, draws.uniform(2))
        return F.centred_boxes(cut_h, cut_w, height, width, cy, cx)

    def kept_share(self, boxes: Tensor, lam: Tensor, height: int, width: int) -> Tensor:
        if not self.correct_lam:
            return lam
        return 1.0 - F.box_area(boxes).float() / float(height * width)

    def plan(self, x: Tensor, partner: Tensor, lam: Tensor, active: Tensor, draws: Draws) -> Plan:
        h, w = x.shape[-2:]
        boxes = self.boxes(lam, active, h, w, draws)
        return Plan(weight=F.keep_all(x), lam=self.kept_share(boxes, lam, h, w), boxes=boxes)

    def apply_batch(self, x: Tensor, partner: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        # One box for the whole batch: copy only the box region of the partners.
        h, w = x.shape[-2:]
        host = Draws(draws.generator, "cpu", 1, shared=True)
        lam = self.sample_lam(host)
        boxes = self.boxes(lam, torch.ones(1, dtype=torch.bool), h, w, host)
        y0, y1, x0, x1 = boxes[0].tolist()  # host tensors: no device sync
        out = self.output_buffer(x)
        if out is not x:
            out.copy_(x)
        if y1 > y0 and x1 > x0:
            region = x[:, :, y0:y1, x0:x1]
            if x.requires_grad:
                out[:, :, y0:y1, x0:x1] = region.index_select(0, partner)
            else:  # gather the partners' boxes into kept scratch: no batch-sized allocation
                gathered = self.scratch(tuple(region.shape), x)
                out[:, :, y0:y1, x0:x1] = torch.index_select(region, 0, partner, out=gathered)
        kept = float(self.kept_share(boxes, lam, h, w)[0])
        return out, torch.full((x.shape[0],), kept, device=x.device)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, minmax={self.minmax}, correct_lam={self.correct_lam}"


@dataclass
class CutMixOptions(MixOptions):
    name: str = "cutmix"
    alpha: float = 1.0
    minmax: list[float] | None = None
    correct_lam: bool = True


register("cutmix", CutMix, CutMixOptions)
