"""The mixers by name: each mixer module registers its builder and its option
schema here, so adding a mixer is its module (class, options, one `register`
line) and its ``configs/mix/<name>.yaml``. `mixcut.config.store` hands the option
schemas to Hydra; `mixcut.mix.factory.create_mixer` builds by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class MixerEntry:
    builder: Callable  # a Mixer class or a function returning one
    options: type  # dataclass of its options (common ones from `MixOptions`), the config schema


MIXERS: dict[str, MixerEntry] = {}


def register(name: str, builder: Callable, options: type) -> None:
    """Make ``builder`` available as ``create_mixer(name, ...)`` and ``mix=<name>``
    (with a ``configs/mix/<name>.yaml`` that pulls in ``/schema/mix/<name>``)."""
    MIXERS[name] = MixerEntry(builder, options)
