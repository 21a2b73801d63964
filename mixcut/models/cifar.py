"""CIFAR-style ResNets (He et al., 2016, section 4.2), registered in timm.

3x3 stem, three stages of basic blocks at 32x32, 16x16 and 8x8 with widths
16/32/64 (times ``width``), global pooling and a linear head. Tiny and fast on
a CPU: ``cifar_resnet20`` has 0.27M parameters.
"""

from __future__ import annotations

import torch.nn as nn
from timm.models import register_model

from ._base import build


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs; ``stages`` exposes the three stages."""

    def __init__(self, depth: int = 20, width: int = 1, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110); got {depth}.")
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks = [BasicBlock(cin if j == 0 else w, w, 2 if (i > 0 and j == 0) else 1) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(cin, num_classes)
        self.num_classes = num_classes
        self.feature_info = [dict(num_chs=w, reduction=2**i, module=f"stages.{i}") for i, w in enumerate(widths)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def get_classifier(self):
        return self.fc

    def reset_classifier(self, num_classes: int, *_, **__):
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x):
        return self.stages(self.stem(x))

    def forward_head(self, x, pre_logits: bool = False):
        x = self.drop(self.pool(x).flatten(1))
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _cifar_resnet(depth: int, width: int, pretrained: bool, **kwargs) -> CifarResNet:
    # an option the network does not take is a TypeError naming it, not silently dropped
    return build(
        CifarResNet,
        f"cifar_resnet{depth}" + (f"_w{width}" if width > 1 else ""),
        pretrained,
        {"depth": depth, "width": width},
        kwargs,
    )


@register_model
def cifar_resnet20(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-20 for CIFAR (0.27M parameters)."""
    return _cifar_resnet(20, 1, pretrained, **kwargs)


@register_model
def cifar_resnet56(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-56 for CIFAR (0.85M parameters)."""
    return _cifar_resnet(56, 1, pretrained, **kwargs)


@register_model
def cifar_resnet20_w4(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-20 at 4x width (64/128/256 channels, 4.3M parameters)."""
    return _cifar_resnet(20, 4, pretrained, **kwargs)


@register_model
def cifar_resnet20_w2(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-20 at 2x width (32/64/128 channels, 1.1M parameters): the claims study's capacity check."""
    return _cifar_resnet(20, 2, pretrained, **kwargs)
