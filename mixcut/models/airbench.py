"""The airbench94 network (Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU",
arXiv 2404.00498), registered in timm as ``cifar_airbench94``.

A frozen 2x2 patch-whitening convolution (24 filters: 12 whitening directions
and their negatives) with a trainable bias, GELU, then three blocks of
conv3x3 - maxpool2 - BN - GELU - conv3x3 - BN - GELU with widths 64/256/256,
a 3x3 max-pool to one pixel, a bias-free linear layer and logits scaled by
1/9. BatchNorm: eps 1e-12, running-stat momentum 0.4 (the paper's "0.6" is
the weight of the old value), scale frozen at 1, bias trained.

Its two initialisations (`mixcut.models.init`):

* identity ("dirac") initialisation of every 3x3 convolution, in the constructor;
* the whitening weights from the patch statistics of training images, through
  the model hook ``init_from_data(images)`` that `mixcut.build` calls with the
  ``data_init_images`` (5,000) training images spread evenly through the split. Without the call the
  first layer keeps a random initialisation (fine for tests, not for the recipe).

The whitening bias trains for the first ``whiten_bias_epochs`` epochs only:
``epoch_limited_params()`` names it, and the optimiser recipe stops its updates
after that many epochs (`mixcut.optim.stop_expired_groups`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.models import register_model

from ._base import build
from .init import dirac_conv_init_, patch_whitening_


def _bn(channels: int, momentum: float, eps: float) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    bn.weight.requires_grad_(False)  # scale stays 1; only the bias (shift) trains
    return bn


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding="same", bias=False)
    dirac_conv_init_(conv)
    return conv


class ConvGroup(nn.Module):
    """conv - maxpool(2) - BN - GELU - conv - BN - GELU."""

    def __init__(self, cin: int, cout: int, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _bn(cout, bn_momentum, bn_eps)
        self.conv2 = _conv3x3(cout, cout)
        self.norm2 = _bn(cout, bn_momentum, bn_eps)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """airbench94's network for 32x32 inputs; ``stages`` exposes the three conv groups."""

    data_init_images = 5000  # training images `init_from_data` wants (the paper's whitening sample)

    def __init__(
        self,
        widths: tuple[int, int, int] = (64, 256, 256),
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        bn_momentum: float = 0.4,
        bn_eps: float = 1e-12,
        logit_scale: float = 1 / 9,
        whiten_kernel: int = 2,
        whiten_eps: float = 5e-4,
        whiten_bias_epochs: int = 3,
    ) -> None:
        super().__init__()
        whiten_width = 2 * in_chans * whiten_kernel**2
        self.whiten = nn.Conv2d(in_chans, whiten_width, whiten_kernel, padding=0, bias=True)
        nn.init.zeros_(self.whiten.bias)
        self.whiten.weight.requires_grad_(False)  # set by init_from_data, never trained
        self.stem = nn.Sequential(self.whiten, nn.GELU())
        cins = (whiten_width, *widths[:-1])
        self.stages = nn.Sequential(*[ConvGroup(ci, co, bn_momentum, bn_eps) for ci, co in zip(cins, widths)])
        self.pool = nn.MaxPool2d(3)
        self.num_features = widths[-1]
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(widths[-1], num_classes, bias=False) if num_classes > 0 else nn.Identity()
        self.logit_scale = logit_scale
        self.whiten_eps, self.whiten_bias_epochs = whiten_eps, whiten_bias_epochs
        self.feature_info = [dict(num_chs=w, reduction=2 ** (i + 1), module=f"stages.{i}") for i, w in enumerate(widths)]

    # ------------------------------------------------------------ model hooks
    def init_from_data(self, images: torch.Tensor) -> None:
        """Whitening weights from the patch statistics of ``images`` (normalised, N x C x H x W)."""
        patch_whitening_(self.whiten, images, self.whiten_eps)

    def epoch_limited_params(self) -> dict[str, int]:
        """Parameters trained only during the first N epochs, by name: the whitening bias."""
        return {"whiten.bias": self.whiten_bias_epochs}

    # ------------------------------------------------------------ timm's interface
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, *_, **__) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes, bias=False) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.pool(x).flatten(1))
        return x if pre_logits else self.fc(x) * self.logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def cifar_airbench94(pretrained: bool = False, **kwargs) -> AirbenchNet:
    """airbench94's network (widths 64/256/256, 1.97M parameters); see the module docstring."""
    return build(AirbenchNet, "cifar_airbench94", pretrained, {}, kwargs)
