"""PyramidNet (Han, Kim & Kim, "Deep Pyramidal Residual Networks", CVPR 2017) for 32x32 inputs, registered in timm.

Instead of doubling the width at each downsampling, every residual block
widens the network by the same amount, alpha / (number of blocks), from 16
channels to 16 + alpha (times 4 with bottleneck blocks). Blocks have no ReLU
on their input and end in BatchNorm; the shortcut is the identity, average
pooled where the block strides, with zero channels appended to match the
wider output (no projection parameters). BN-ReLU after the last stage, global
average pooling, a linear head.

``pyramidnet200_240`` (depth 200, alpha 240, bottleneck blocks: 22 per stage)
is the CIFAR network of the CutMix paper, 26.8M parameters with 100 classes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import register_model

from ._base import ClassifierMixin, build, init_weights


def _shortcut(x: torch.Tensor, stride: int, channels: int) -> torch.Tensor:
    """Identity, 2x2 average pooled if the block strides, zero-padded to ``channels``."""
    if stride != 1:
        x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
    extra = channels - x.shape[1]
    return F.pad(x, (0, 0, 0, 0, 0, extra)) if extra > 0 else x


class PyramidBasic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride, self.cout = stride, planes
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.bn1(x))
        out = self.bn3(self.conv2(self.act(self.bn2(out))))
        return out + _shortcut(x, self.stride, self.cout)


class PyramidBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride, self.cout = stride, planes * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, self.cout, 1, bias=False)
        self.bn4 = nn.BatchNorm2d(self.cout)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.bn1(x))
        out = self.conv2(self.act(self.bn2(out)))
        out = self.bn4(self.conv3(self.act(self.bn3(out))))
        return out + _shortcut(x, self.stride, self.cout)


class PyramidNet(ClassifierMixin):
    """PyramidNet for 32x32 inputs; ``stages`` holds the three stages.

    Args:
        depth: 6n + 2 with basic blocks, 9n + 2 with bottleneck blocks (n blocks per stage).
        alpha: total widening over all blocks (the paper's alpha; 240 in CutMix's PyramidNet-200).
        bottleneck: 1x1-3x3-1x1 blocks with 4x expansion instead of two 3x3 convolutions.
        num_classes, in_chans, drop_rate: as in timm (drop_rate: dropout before the classifier).
    """

    def __init__(
        self,
        depth: int = 200,
        alpha: float = 240,
        bottleneck: bool = True,
        num_classes: int = 100,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        per_block = 9 if bottleneck else 6
        if depth < per_block + 2 or (depth - 2) % per_block:
            kind = "9n+2 with bottleneck blocks (e.g. 200, 272)" if bottleneck else "6n+2 with basic blocks (e.g. 110, 164)"
            raise ValueError(f"PyramidNet depth must be {kind}; got {depth}.")
        if alpha < 0:
            raise ValueError(f"PyramidNet alpha must be >= 0; got {alpha}.")
        block = PyramidBottleneck if bottleneck else PyramidBasic
        n = (depth - 2) // per_block
        step = alpha / (3 * n)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        width, cin = 16.0, 16
        stages, self.feature_info = [], []
        for i in range(3):
            blocks = []
            for j in range(n):
                width += step
                blocks.append(block(cin, int(round(width)), 2 if (i > 0 and j == 0) else 1))
                cin = blocks[-1].cout
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=cin, reduction=2**i, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.final = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        self._init_head(cin, num_classes, drop_rate)
        init_weights(self)


@register_model
def pyramidnet200_240(pretrained: bool = False, **kwargs) -> PyramidNet:
    """PyramidNet-200, alpha 240, bottleneck blocks: the CutMix paper's CIFAR network (26.8M parameters)."""
    return build(PyramidNet, "pyramidnet200_240", pretrained, dict(depth=200, alpha=240, bottleneck=True), kwargs)


@register_model
def pyramidnet110_48(pretrained: bool = False, **kwargs) -> PyramidNet:
    """PyramidNet-110, alpha 48, basic blocks (1.7M parameters): the small PyramidNet of the paper."""
    return build(PyramidNet, "pyramidnet110_48", pretrained, dict(depth=110, alpha=48, bottleneck=False), kwargs)


@register_model
def pyramidnet(pretrained: bool = False, **kwargs) -> PyramidNet:
    """Any PyramidNet: pass ``depth``, ``alpha`` and ``bottleneck`` (model.kwargs); default PyramidNet-200/240."""
    return build(PyramidNet, "pyramidnet", pretrained, {}, kwargs)
