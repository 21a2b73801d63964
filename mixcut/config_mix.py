"""Schemas of the ``mix`` config group: one dataclass per mixer.

``configs/mix/<name>.yaml`` pulls in ``/schema/mix/<name>@_here_``, so a key
that mixer does not take (``mix=mixup mix.switch_prob=0.3``) is refused when
Hydra composes the config. Field names match the keyword arguments of the
builders in `mixcut.mix.factory.MIXERS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MixBase:
    """Options every mixer takes (see `mixcut.mix.Mixer`)."""

    name: str = "none"
    prob: float = 1.0
    mode: str = "batch"  # batch | pair | elem
    pairing: str = "perm"  # perm | flip
    lam_clip: list[float] | None = None
    off_epoch: int | None = None


@dataclass
class MixupSchema(MixBase):
    name: str = "mixup"
    alpha: float = 1.0


@dataclass
class CutMixSchema(MixBase):
    name: str = "cutmix"
    alpha: float = 1.0
    minmax: list[float] | None = None
    correct_lam: bool = True


@dataclass
class DeitSchema(MixBase):
    name: str = "deit"
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    switch_prob: float = 0.5
    minmax: list[float] | None = None
    correct_lam: bool = True


@dataclass
class ManifoldMixupSchema(MixBase):
    name: str = "manifold_mixup"
    alpha: float = 2.0
    layers: list[str] | None = None  # module names; None: the input and the first stages


@dataclass
class SaliencyMixSchema(MixBase):
    name: str = "saliencymix"
    alpha: float = 1.0
    per_batch: bool = False  # official behaviour: one saliency map per batch


@dataclass
class ResizeMixSchema(MixBase):
    name: str = "resizemix"
    scale: list[float] = field(default_factory=lambda: [0.1, 0.8])  # tau range, share of the side


@dataclass
class FMixSchema(MixBase):
    name: str = "fmix"
    alpha: float = 1.0
    decay_power: float = 3.0
    max_soft: float = 0.0


@dataclass
class CutoutSchema(MixBase):
    name: str = "cutout"
    size: int = 16  # side of the square (16 on CIFAR-10, 8 on CIFAR-100 in the paper)
    fill: float = 0.0  # value written into the normalized image


@dataclass
class ChoiceSchema(MixBase):
    """Several mixers picked at random: ``mixers`` maps a mixer name to its own
    options (alpha, ...); ``probs`` are their probabilities (uniform if null)."""

    name: str = "choice"
    mixers: dict[str, dict[str, Any]] = field(default_factory=dict)
    probs: list[float] | None = None


MIX_SCHEMAS: dict[str, type] = {
    "none": MixBase,
    "mixup": MixupSchema,
    "cutmix": CutMixSchema,
    "deit": DeitSchema,
    "manifold_mixup": ManifoldMixupSchema,
    "saliencymix": SaliencyMixSchema,
    "resizemix": ResizeMixSchema,
    "fmix": FMixSchema,
    "cutout": CutoutSchema,
    "choice": ChoiceSchema,
}
