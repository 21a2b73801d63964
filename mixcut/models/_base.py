"""What mixcut's CIFAR networks share: the timm-style head and the factory checks.

Every network here keeps its stages in ``self.stages`` (an ``nn.Sequential``)
and lists them in ``feature_info`` (``module="stages.<i>"``), so code that
hooks hidden states (Manifold Mixup) finds them without knowing the model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

# Keyword arguments timm.create_model passes to every entrypoint; ours have no
# pretrained weights, so these carry nothing for us.
_TIMM_IGNORED = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def build(cls: type[nn.Module], name: str, pretrained: bool, defaults: dict[str, Any], kwargs: dict[str, Any]) -> nn.Module:
    """Construct ``cls(**defaults, **kwargs)`` as a timm entrypoint would.

    Refuses ``pretrained=True`` and a non-zero ``drop_path_rate`` with a
    sentence that says what to change; unknown keywords raise ``TypeError``.
    """
    if pretrained:
        raise ValueError(f"{name} has no pretrained weights in mixcut; set model.pretrained=false.")
    for key in _TIMM_IGNORED:
        kwargs.pop(key, None)
    if kwargs.pop("drop_path_rate", None):
        raise ValueError(f"{name} has no stochastic depth; leave model.drop_path_rate unset (null).")
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    model = cls(**{**defaults, **kwargs})
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model


def init_weights(module: nn.Module) -> None:
    """He-normal (fan-out) convolutions, unit BatchNorm, zero linear bias: the
    initialisation of the CIFAR reference implementations."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


class ClassifierMixin(nn.Module):
    """Global average pooling, dropout and a linear layer, with timm's methods
    (``forward_features``, ``forward_head``, ``get_classifier``,
    ``reset_classifier``). Subclasses set ``stem`` and ``stages`` (and
    optionally ``final``, applied after the last stage) and call `_init_head`."""

    def _init_head(self, num_features: int, num_classes: int, drop_rate: float) -> None:
        self.num_features = num_features
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool not in (None, "avg"):
            raise ValueError(f"{type(self).__name__} only supports average pooling; got global_pool={global_pool!r}.")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        final = getattr(self, "final", None)
        return final(x) if final is not None else x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x.mean((2, 3)))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
