"""Mixup (Zhang et al., 2018): a convex combination of two images and their labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import functional as F
from .base import Draws, Mixer, MixOptions, Plan, check_positive
from .registry import register

#: Images at least this large (elements) take the per-image uint8 path on CPU;
#: smaller ones are blended in chunks of many images (less Python per pixel).
_ROW_ELEMS = 1 << 14


class Mixup(Mixer):
    """``x' = lam * x + (1 - lam) * x[partner]``, lam ~ Beta(alpha, alpha).

    Args:
        alpha: Beta concentration (> 0); the paper uses 0.2 on ImageNet and 1.0
            on CIFAR, DeiT uses 0.8.
        **kwargs: the common mixer options of `Mixer`.
    """

    def __init__(self, alpha: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = check_positive("Mixup alpha", alpha)

    def plan(self, x: Tensor, partner: Tensor, lam: Tensor, active: Tensor, draws: Draws) -> Plan:
        return Plan(weight=lam.view(-1, 1, 1, 1), lam=lam)

    def apply_batch(self, x: Tensor, partner: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        lam = float(self.sample_lam(Draws(draws.generator, "cpu", 1, shared=True)))
        if x.dtype == torch.uint8 and x.device.type == "cpu" and x[0].numel() >= _ROW_ELEMS:
            out = F.blend_partners_uint8(x, partner, lam, self.output_buffer(x))  # no gather, one conversion per image
        else:
            source = self.gather(x, partner)
            out = F.blend(x, source, lam, out=self.output_buffer(x))
            if x.is_floating_point() and x.shape[0] % 2 == 1:  # only odd batches pair a sample with itself
                out = F.keep_self_pairs(out, source, partner)
        return out, torch.full((x.shape[0],), lam, device=x.device)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


@dataclass
class MixupOptions(MixOptions):
    name: str = "mixup"
    alpha: float = 1.0


register("mixup", Mixup, MixupOptions)
