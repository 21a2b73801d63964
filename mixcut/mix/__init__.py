"""Batch-mixing augmentation on the device: pure tensor code, no Hydra, no trainer.

>>> from mixcut.mix import CutMix
>>> mixer = CutMix(alpha=1.0, num_classes=10, label_smoothing=0.1, seed=0)
>>> x_mixed, soft_targets = mixer(x, y)
"""

from .base import MODES, PAIRINGS, Draws, Mixer, MixResult, Plan
from .choice import MixChoice
from .cutmix import CutMix
from .cutout import Cutout
from .factory import MIXERS, create_mixer
from .fmix import FMix
from .manifold import ManifoldMixup, eligible_layers
from .mixup import Mixup
from .noop import NoMix
from .recursivemix import RecursiveMix
from .resizemix import ResizeMix
from .saliencymix import SaliencyMix, fine_grained_saliency
from .transmix import TransMix, attention_lam, class_attention

__all__ = [
    "MODES",
    "PAIRINGS",
    "Draws",
    "Mixer",
    "MixResult",
    "Plan",
    "MixChoice",
    "CutMix",
    "Mixup",
    "NoMix",
    "Cutout",
    "FMix",
    "ManifoldMixup",
    "eligible_layers",
    "ResizeMix",
    "SaliencyMix",
    "fine_grained_saliency",
    "TransMix",
    "class_attention",
    "attention_lam",
    "RecursiveMix",
    "MIXERS",
    "create_mixer",
]
