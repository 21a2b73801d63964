"""Model construction through timm's registry (CIFAR networks are registered there too)."""

from __future__ import annotations

import difflib

import timm
import torch.nn as nn

from ..errors import ConfigError
from . import cifar, preact_resnet, pyramidnet, wide_resnet  # noqa: F401  (register the CIFAR networks in timm)
from .init import pretrained_offline_message


def check_model_name(name: str) -> None:
    """Raise `ConfigError` suggesting close names when timm does not know ``name``."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else " See timm.list_models() for the names."
    raise ConfigError(f"unknown model {name!r} (model.name).{hint}")


def create_model(model_cfg, num_classes: int, in_chans: int = 3) -> nn.Module:
    """``timm.create_model`` with the config's options (the name was checked by `mixcut.config.check`)."""
    kwargs = dict(model_cfg.kwargs or {})
    if model_cfg.drop_path_rate is not None:
        kwargs["drop_path_rate"] = model_cfg.drop_path_rate
    try:
        return _create(model_cfg, num_classes, in_chans, kwargs)
    except Exception as e:
        # issue 13: an offline hub download says so in one line and points at model.init=PATH
        line = pretrained_offline_message(model_cfg.name, e) if model_cfg.pretrained else None
        if line:
            raise ConfigError(line) from None
        raise


def _create(model_cfg, num_classes: int, in_chans: int, kwargs: dict) -> nn.Module:
    try:
        return timm.create_model(
            model_cfg.name,
            pretrained=model_cfg.pretrained,
            num_classes=num_classes,
            in_chans=in_chans,
            drop_rate=model_cfg.drop_rate,
            **kwargs,
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot build model {model_cfg.name!r} with these options: {e}") from e
    except (OSError, RuntimeError) as e:
        if model_cfg.pretrained:
            raise ConfigError(
                f"could not load pretrained weights for {model_cfg.name!r} ({e}); "
                "set model.pretrained=false or pre-download them."
            ) from e
        raise
