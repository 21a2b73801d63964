"""Registration of the schemas in Hydra's ConfigStore: the only module of mixcut
that imports Hydra's config machinery (``configs/train.yaml`` and each
``configs/mix/*.yaml`` pull the schemas in by these names: ``/schema/mix/<name>``)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from ..mix import MIXERS
from .schemas import TrainConfig


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for name, entry in MIXERS.items():  # each mixer's options, defined beside it in mixcut/mix/
        cs.store(group="schema/mix", name=name, node=entry.options)
