"""The DeiT recipe (Touvron et al. 2021, timm's Mixup defaults): per batch, Mixup
(alpha 0.8) or CutMix (alpha 1.0), switching with probability 0.5."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Mixer, MixOptions
from .choice import MixChoice
from .cutmix import CutMix
from .mixup import Mixup
from .registry import register


def deit(
    mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, switch_prob: float = 0.5, minmax=None, correct_lam: bool = True, **common
) -> Mixer:
    """The DeiT recipe: Mixup(0.8) or CutMix(1.0), switching with ``switch_prob``."""
    return MixChoice.switch(
        Mixup(mixup_alpha), CutMix(cutmix_alpha, minmax=minmax, correct_lam=correct_lam), switch_prob=switch_prob, **common
    )


@dataclass
class DeitOptions(MixOptions):
    name: str = "deit"
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    switch_prob: float = 0.5
    minmax: list[float] | None = None
    correct_lam: bool = True


register("deit", deit, DeitOptions)
