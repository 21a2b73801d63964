"""Schemas of the ``mix`` config group: one dataclass per mixer.

``configs/mix/<name>.yaml`` pulls in ``/schema/mix/<name>@_here_``, so a key
that mixer does not take (``mix=mixup mix.switch_prob=0.3``) is refused when
Hydra composes the config. Field names match the keyword arguments of the
builders in `mixcut.mix.factory.MIXERS`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields
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


def unknown_key_hint(message: str) -> str | None:
    """For Hydra's "Key 'alpha' not in 'DeitSchema'": a sentence naming the keys
    that mixer has (``mix.mixup_alpha``, ``mix.cutmix_alpha`` first, being the
    closest), or None when the message is not about a mix key."""
    found = re.search(r"Key '(\w+)' not in '(\w+)'", message)
    schema = next((s for s in MIX_SCHEMAS.values() if found and s.__name__ == found.group(2)), None)
    if schema is None:
        return None
    key = found.group(1)
    options = [f.name for f in fields(schema) if f.name != "name"]
    close = [o for o in options if key in o] or difflib.get_close_matches(key, options, n=3, cutoff=0.6)
    mixer = schema().name
    hint = f"mix={mixer} has no option {key!r}"
    if close:
        hint += f"; did you mean {' or '.join(f'mix.{o}' for o in close)}?"
    return f"{hint} (mix={mixer} takes: {', '.join(f'mix.{o}' for o in options)})"
