"""Model construction through timm's registry (CIFAR networks are registered there too)."""

from __future__ import annotations

import difflib

import timm
import torch.nn as nn

from ..errors import ConfigError
from . import airbench, cifar, preact_resnet, pyramidnet, wide_resnet  # noqa: F401  (register the CIFAR networks in timm)
from .hub import offline_unless_hub_reachable
from .init import pretrained_offline_message


def check_model_name(name: str) -> None:
    """Raise `ConfigError` suggesting close names when timm does not know ``name``."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else " See timm.list_models() for the names."
    raise ConfigError(f"unknown model {name!r} (model.name).{hint}")


def create_model(model_cfg, num_classes: int, in_chans: int = 3, img_size: int | None = None) -> nn.Module:
    """``timm.create_model`` with the config's options (the name was checked by `mixcut.config.check`;
    see `create_model_for_data` for ``img_size``)."""
    return create_model_for_data(model_cfg, num_classes, img_size, in_chans)[0]


def create_model_for_data(model_cfg, num_classes: int, img_size: int | None, in_chans: int = 3) -> tuple[nn.Module, str | None]:
    """The model, and a sentence for the run's first lines when the data's image
    size was passed to it (else None).

    timm models that take ``img_size`` (ViT, DeiT, Swin, ...) are built for the
    data's ``img_size``, so DeiT on 32-pixel CIFAR is ``data.img_size=32``
    alone; an explicit ``model.kwargs.img_size`` wins. Models without the
    argument are built as they are (they refuse it with a TypeError, tried first).
    """
    kwargs = dict(model_cfg.kwargs or {})
    if model_cfg.drop_path_rate is not None:
        kwargs["drop_path_rate"] = model_cfg.drop_path_rate
    if img_size is not None and "img_size" not in kwargs:
        try:
            model = _build(model_cfg, num_classes, in_chans, {**kwargs, "img_size": int(img_size)})
            # some entrypoints swallow unknown keywords: only a model that keeps an img_size used it
            if not any(getattr(m, "img_size", None) is not None for m in model.modules()):
                return model, None
            note = (
                f"model: img_size={int(img_size)} passed to {model_cfg.name} from data.img_size "
                "(set +model.kwargs.img_size=N to override)"
            )
            return model, note
        except TypeError as e:
            if "img_size" not in str(e):
                raise ConfigError(f"cannot build model {model_cfg.name!r} with these options: {e}") from e
    try:
        return _build(model_cfg, num_classes, in_chans, kwargs), None
    except TypeError as e:
        raise ConfigError(f"cannot build model {model_cfg.name!r} with these options: {e}") from e


def _build(model_cfg, num_classes: int, in_chans: int, kwargs: dict) -> nn.Module:
    """``timm.create_model``; a TypeError (an option the model does not take) passes through."""
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
        with offline_unless_hub_reachable(model_cfg.pretrained):
            return timm.create_model(
                model_cfg.name,
                pretrained=model_cfg.pretrained,
                num_classes=num_classes,
                in_chans=in_chans,
                drop_rate=model_cfg.drop_rate,
                **kwargs,
            )
    except ValueError as e:
        raise ConfigError(f"cannot build model {model_cfg.name!r} with these options: {e}") from e
    except (OSError, RuntimeError) as e:
        if model_cfg.pretrained:
            raise ConfigError(
                f"could not load pretrained weights for {model_cfg.name!r} ({e}); "
                "set model.pretrained=false or pre-download them."
            ) from e
        raise
