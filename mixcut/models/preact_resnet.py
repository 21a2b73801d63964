"""ResNet-18/34 for 32x32 inputs, pre-activation and original, registered in timm.

The CIFAR ResNet-18 that the mixing papers train: a 3x3 stem with 64 channels
and no max-pooling, four stages of basic blocks (64/128/256/512 channels at
32/16/8/4 pixels), global average pooling, a linear head; 11.17M parameters
with 10 classes.

``preact_resnet18`` (mixup, Manifold Mixup, FMix) uses the pre-activation
blocks of He et al., "Identity Mappings in Deep Residual Networks" (2016):
BN-ReLU before each convolution, a 1x1 projection (taken from the activated
input) where the shape changes. As in the mixup and FMix code the stem is
conv-BN-ReLU and there is no BN-ReLU after the last stage (``final_norm=True``
adds one). The mixup and FMix blocks also feed the identity path from the
activated input; here it carries the block input itself, as He et al. and the
Manifold Mixup code do. Parameter counts are the same.

``cifar_resnet18`` is the original post-activation ResNet-18 (conv-BN-ReLU,
projection shortcuts with BN), the one the Cutout and SaliencyMix CIFAR
results use.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.models import register_model

from ._base import ClassifierMixin, build, init_weights
from .cifar import BasicBlock  # the post-activation block, shared with the CIFAR ResNets


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.project = nn.Conv2d(cin, cout, 1, stride, bias=False) if (stride != 1 or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.bn1(x))
        shortcut = self.project(pre) if self.project is not None else x
        out = self.conv2(self.act(self.bn2(self.conv1(pre))))
        return out + shortcut


class ResNet18Cifar(ClassifierMixin):
    """ResNet-18/34 for small images; ``stages`` holds the four stages.

    Args:
        layers: blocks per stage ((2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for 34).
        preact: pre-activation blocks (True) or the original post-activation ones.
        width: channels of the first stage (64); the others double it.
        final_norm: BN-ReLU after the last stage (pre-activation only).
        num_classes, in_chans, drop_rate: as in timm (drop_rate: dropout before the classifier).
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        preact: bool = True,
        width: int = 64,
        final_norm: bool = False,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if final_norm and not preact:
            raise ValueError("final_norm=True only applies to pre-activation ResNets (the original ones end in BN-ReLU already).")
        block = PreActBlock if preact else BasicBlock
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages, cin, self.feature_info = [], width, []
        for i, n in enumerate(layers):
            cout = width * 2**i
            blocks = [block(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=cout, reduction=2**i, module=f"stages.{i}"))
            cin = cout
        self.stages = nn.Sequential(*stages)
        if final_norm:
            self.final = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        self._init_head(cin, num_classes, drop_rate)
        init_weights(self)


@register_model
def preact_resnet18(pretrained: bool = False, **kwargs) -> ResNet18Cifar:
    """Pre-activation ResNet-18 for CIFAR (11.17M parameters), as in mixup, Manifold Mixup and FMix."""
    return build(ResNet18Cifar, "preact_resnet18", pretrained, dict(layers=(2, 2, 2, 2), preact=True), kwargs)


@register_model
def preact_resnet34(pretrained: bool = False, **kwargs) -> ResNet18Cifar:
    """Pre-activation ResNet-34 for CIFAR (21.28M parameters)."""
    return build(ResNet18Cifar, "preact_resnet34", pretrained, dict(layers=(3, 4, 6, 3), preact=True), kwargs)


@register_model
def cifar_resnet18(pretrained: bool = False, **kwargs) -> ResNet18Cifar:
    """Original (post-activation) ResNet-18 for CIFAR (11.17M parameters), as in the Cutout repository."""
    return build(ResNet18Cifar, "cifar_resnet18", pretrained, dict(layers=(2, 2, 2, 2), preact=False), kwargs)
