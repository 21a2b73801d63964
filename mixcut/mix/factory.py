"""Build a mixer from plain options (what a config file holds), without Hydra.

``create_mixer("deit", mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5,
num_classes=1000, label_smoothing=0.1)``. Every builder takes the common mixer
options (`Mixer`) plus its own; unknown options are an error, not ignored.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .base import Mixer
from .choice import MixChoice
from .cutmix import CutMix
from .cutout import Cutout
from .fmix import FMix
from .manifold import ManifoldMixup
from .mixup import Mixup
from .noop import NoMix
from .resizemix import ResizeMix
from .saliencymix import SaliencyMix

COMMON_OPTIONS = ("prob", "mode", "label_smoothing", "num_classes", "lam_clip", "pairing", "seed", "inplace", "off_epoch")


def _deit(
    mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, switch_prob: float = 0.5, minmax=None, correct_lam: bool = True, **common
) -> Mixer:
    """The DeiT recipe: Mixup(0.8) or CutMix(1.0), switching with ``switch_prob``."""
    return MixChoice.switch(
        Mixup(mixup_alpha), CutMix(cutmix_alpha, minmax=minmax, correct_lam=correct_lam), switch_prob=switch_prob, **common
    )


def _choice(mixers: dict[str, dict] | None = None, probs=None, **common) -> Mixer:
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


MIXERS: dict[str, Callable[..., Mixer]] = {
    "none": NoMix,
    "mixup": Mixup,
    "cutmix": CutMix,
    "deit": _deit,
    "manifold_mixup": ManifoldMixup,
    "saliencymix": SaliencyMix,
    "resizemix": ResizeMix,
    "fmix": FMix,
    "cutout": Cutout,
    "choice": _choice,
}


def register_mixer(name: str, builder: Callable[..., Mixer]) -> None:
    """Make ``builder`` available to `create_mixer` (and ``mix=<name>``)."""
    MIXERS[name] = builder


def mixer_options(name: str) -> set[str]:
    """Options accepted by the mixer ``name`` besides the common ones."""
    builder = MIXERS[name]
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
    allowed = mixer_options(name) | set(COMMON_OPTIONS)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"mixer {name!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(sorted(allowed))}.")
    return MIXERS[name](**options)
