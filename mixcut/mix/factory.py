"""Build a mixer from plain options (what a config file holds), without Hydra.

``create_mixer("deit", mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5,
num_classes=1000, label_smoothing=0.1)``. Every builder takes the common mixer
options (`Mixer`) plus its own; unknown options are an error, not ignored.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import Mixer, MixOptions
from .choice import MixChoice
from .registry import MIXERS, register

COMMON_OPTIONS = ("prob", "mode", "label_smoothing", "num_classes", "lam_clip", "pairing", "seed", "inplace", "off_epoch")

# every module of this package that defines a mixer registers it on import: a new
# mixer needs no line here
for _module in pkgutil.iter_modules([str(Path(__file__).parent)]):
    importlib.import_module(f"{__package__}.{_module.name}")


def choice(mixers: dict[str, dict] | None = None, probs=None, **common) -> Mixer:
    """One of several registered mixers per batch/pair/sample: ``mixers`` maps a
    name to that mixer's own options (``{'cutmix': {'alpha': 1.0}, 'fmix': {}}``),
    ``probs`` are their probabilities (uniform if None). The common options
    (prob, mode, ...) belong to the choice; members may keep their own ``lam_clip``."""
    if not mixers:
        raise ValueError("the choice mixer needs mixers={name: {options}} with at least one entry.")
    members = []
    for name, options in mixers.items():
        options = dict(options or {})
        shared = sorted(set(options) & (set(COMMON_OPTIONS) - {"lam_clip"}))
        if shared:
            raise ValueError(f"choice member {name!r}: option(s) {', '.join(shared)} belong to the choice, not to a member.")
        members.append(create_mixer(name, seed=0, **options))  # members draw from the choice's generators
    return MixChoice(members, probs, **common)


@dataclass
class ChoiceOptions(MixOptions):
    """Several mixers picked at random: ``mixers`` maps a mixer name to its own
    options (alpha, ...); ``probs`` are their probabilities (uniform if null)."""

    name: str = "choice"
    mixers: dict[str, dict[str, Any]] = field(default_factory=dict)
    probs: list[float] | None = None


register("choice", choice, ChoiceOptions)


def accepted_options(name: str) -> set[str]:
    """Options accepted by the mixer ``name`` besides the common ones."""
    builder = MIXERS[name].builder
    target = builder.__init__ if inspect.isclass(builder) else builder
    params = inspect.signature(target).parameters
    return {p for p, v in params.items() if p != "self" and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}


def create_mixer(name: str, **options) -> Mixer:
    """Build the mixer registered as ``name`` with ``options``.

    Raises ValueError naming the choices for an unknown name, and naming the
    option for one the mixer does not take.
    """
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; choose one of: {', '.join(sorted(MIXERS))}.")
    allowed = accepted_options(name) | set(COMMON_OPTIONS)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"mixer {name!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(sorted(allowed))}.")
    return MIXERS[name].builder(**options)
