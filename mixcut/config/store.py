"""Registration of the schemas in Hydra's ConfigStore: the only module of mixcut
that imports Hydra's config machinery (``configs/train.yaml`` and each
``configs/mix/*.yaml`` pull the schemas in by these names)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from ..config_mix import MIX_SCHEMAS
from .schemas import TrainConfig


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for name, schema in MIX_SCHEMAS.items():
        cs.store(group="schema/mix", name=name, node=schema)
