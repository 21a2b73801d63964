"""Wide residual networks (Zagoruyko & Komodakis, BMVC 2016) for 32x32 inputs, registered in timm.

WRN-d-k: a 3x3 stem with 16 channels, three stages of (d - 4) / 6
pre-activation basic blocks with 16k, 32k and 64k channels at 32, 16 and 8
pixels, BN-ReLU, global average pooling and a linear head. Each block is
BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3; where the width or stride changes
the shortcut is a 1x1 convolution of the activated input. ``wide_resnet28_10``
has 36.48M parameters with 10 classes (the network of the Cutout, mixup,
SaliencyMix and ResizeMix CIFAR tables).

Two dropouts: ``block_drop_rate`` is the paper's dropout between the two
convolutions of every block (the Cutout and SaliencyMix code use 0.3 on CIFAR,
ResizeMix uses 0); ``drop_rate`` is timm's dropout before the classifier.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.models import register_model

from ._base import ClassifierMixin, build, init_weights


class WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, block_drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout(block_drop_rate) if block_drop_rate > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.project = nn.Conv2d(cin, cout, 1, stride, bias=False) if (stride != 1 or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.bn1(x))
        shortcut = self.project(pre) if self.project is not None else x
        out = self.conv2(self.drop(self.act(self.bn2(self.conv1(pre)))))
        return out + shortcut


class WideResNet(ClassifierMixin):
    """WRN-depth-widen_factor; ``stages`` holds the three stages.

    Args:
        depth: 6n + 4 (16, 22, 28, 40).
        widen_factor: k, the width multiplier of the three stages.
        block_drop_rate: dropout between the two convolutions of each block.
        num_classes, in_chans, drop_rate: as in timm (drop_rate: dropout before the classifier).
    """

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        block_drop_rate: float = 0.0,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40); got {depth}.")
        if widen_factor < 1:
            raise ValueError(f"WideResNet widen_factor must be >= 1; got {widen_factor}.")
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.stem = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        stages, cin, self.feature_info = [], 16, []
        for i, w in enumerate(widths):
            blocks = [WideBlock(cin if j == 0 else w, w, 2 if (i > 0 and j == 0) else 1, block_drop_rate) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=w, reduction=2**i, module=f"stages.{i}"))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.final = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        self._init_head(cin, num_classes, drop_rate)
        init_weights(self)


@register_model
def wide_resnet28_10(pretrained: bool = False, **kwargs) -> WideResNet:
    """WRN-28-10 for CIFAR (36.48M parameters); ``block_drop_rate`` sets the in-block dropout."""
    return build(WideResNet, "wide_resnet28_10", pretrained, dict(depth=28, widen_factor=10), kwargs)


@register_model
def wide_resnet16_8(pretrained: bool = False, **kwargs) -> WideResNet:
    """WRN-16-8 (10.96M parameters), the SVHN network of the Cutout paper."""
    return build(WideResNet, "wide_resnet16_8", pretrained, dict(depth=16, widen_factor=8), kwargs)


@register_model
def wide_resnet(pretrained: bool = False, **kwargs) -> WideResNet:
    """Any WRN: pass ``depth`` and ``widen_factor`` (model.kwargs), default WRN-28-10."""
    return build(WideResNet, "wide_resnet", pretrained, {}, kwargs)
