"""The training config: typed schemas (`schemas`), the one `check`, and their
registration with Hydra (`store`, the only Hydra import)."""

from ..errors import ConfigError
from .check import check, mixer_options, to_container
from .schemas import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugConfig,
    DataConfig,
    LoggerConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SchedConfig,
    TrainConfig,
    TrainerConfig,
)


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent); imports Hydra only when called."""
    from .store import register_configs as register

    register()


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AugConfig",
    "ConfigError",
    "DataConfig",
    "LoggerConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "SchedConfig",
    "TrainConfig",
    "TrainerConfig",
    "check",
    "mixer_options",
    "register_configs",
    "to_container",
]
