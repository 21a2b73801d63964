"""The no-op mixer: images pass through, targets become smoothed one-hot rows."""

from __future__ import annotations

from .base import Mixer, MixOptions
from .registry import register


class NoMix(Mixer):
    """Never mixes; still owns target construction (label smoothing) so the
    trainer has one code path with or without mixing."""

    pairs_samples = False

    def __init__(self, **kwargs) -> None:
        kwargs["prob"] = 0.0
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"NoMix(label_smoothing={self.label_smoothing})"


register("none", NoMix, MixOptions)
