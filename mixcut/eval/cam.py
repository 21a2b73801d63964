"""Class activation maps and the boxes read from them (weakly-supervised localization's first half).

Maps: CAM (Zhou et al. 2016) when the head is global average pooling + one
linear layer (checked numerically on the batch: ``forward_head(f) == fc(mean(f))``),
Grad-CAM (Selvaraju et al. 2017) on the last feature map otherwise. Both need
timm's ``forward_features`` / ``forward_head``.

Boxes: the map upsampled to the image, thresholded at ``threshold`` x its maximum
(after subtracting its minimum), the bounding box of the largest connected
(8-neighbour) region. Connected components are computed for the whole batch at
once in torch by min-label propagation (3x3 max pooling of negated labels) until
nothing changes. Boxes are ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError


def _features_head(model: nn.Module):
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise ConfigError(f"{type(model).__name__} has no forward_features/forward_head (timm's interface); cannot localize.")
    return model.forward_features, model.forward_head


def is_gap_linear(model: nn.Module, feats: Tensor) -> bool:
    """True when the head is global average pooling + the linear classifier (checked on ``feats``)."""
    fc = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(fc, nn.Linear) or feats.dim() != 4 or feats.shape[1] != fc.in_features:
        return False
    with torch.no_grad():
        expected = fc(feats.mean((2, 3)))
        return torch.allclose(model.forward_head(feats), expected, rtol=1e-4, atol=1e-4)


def maps_for(
    model: nn.Module, x: Tensor, classes: Sequence[Tensor | None], method: str = "auto"
) -> tuple[Tensor, list[Tensor], str]:
    """Logits (B, K) and, for each (B,) class tensor in ``classes`` (None: the predicted class),
    a (B, h, w) activation map, from one forward pass.

    ``method``: ``cam``, ``gradcam`` or ``auto`` (CAM when the head allows it).
    """
    model.eval()
    forward_features, forward_head = _features_head(model)
    with torch.no_grad():
        feats = forward_features(x).float()
    if feats.dim() != 4:
        raise ConfigError(f"the model's features have shape {tuple(feats.shape)}; localization needs (B, C, h, w) maps.")
    if method == "auto":
        method = "cam" if is_gap_linear(model, feats) else "gradcam"
    if method == "cam":
        fc = model.get_classifier()
        with torch.no_grad():
            logits = fc(feats.mean((2, 3)))
            classes = [logits.argmax(1) if c is None else c for c in classes]
            maps = [torch.einsum("bchw,bc->bhw", feats, fc.weight[c].float()) for c in classes]
        return logits, maps, method
    if method != "gradcam":
        raise ConfigError(f"localization method must be cam, gradcam or auto; got {method!r}.")
    maps = []
    with torch.enable_grad():
        f = feats.detach().requires_grad_(True)
        logits = forward_head(f).float()
        classes = [logits.argmax(1) if c is None else c for c in classes]
        for i, c in enumerate(classes):
            (grad,) = torch.autograd.grad(logits.gather(1, c.view(-1, 1)).sum(), f, retain_graph=i < len(classes) - 1)
            weights = grad.mean((2, 3), keepdim=True)
            maps.append(F.relu((weights * f).sum(1)).detach())
    return logits.detach(), maps, method


def threshold_maps(maps: Tensor, size: tuple[int, int], threshold: float) -> Tensor:
    """(B, H, W) bool foreground: the map upsampled (bilinear), min-subtracted, >= threshold * max."""
    m = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    flat = m.flatten(1)
    flat = flat - flat.amin(1, keepdim=True)
    peak = flat.amax(1, keepdim=True)
    fg = (flat >= threshold * peak) & (peak > 0)
    fg |= peak <= 0  # a constant map: the whole image
    return fg.view_as(m)


def connected_components(mask: Tensor) -> Tensor:
    """(B, H, W) int64 labels of 8-connected foreground regions (0 = background).

    Each region gets the smallest 1-based flat index (within its image) of its pixels.
    """
    b, h, w = mask.shape
    big = h * w + 1
    index = torch.arange(1, h * w + 1, device=mask.device, dtype=torch.float32).view(1, h, w).expand(b, h, w)
    # propagate the minimum label: max pooling of (big - label); float32 is exact for these integers
    labels = torch.where(mask, big - index, torch.zeros_like(index))[:, None]
    fg = mask[:, None]
    for _ in range(h * w):
        grown = torch.where(fg, F.max_pool2d(labels, 3, stride=1, padding=1), labels)
        if torch.equal(grown, labels):
            break
        labels = grown
    return torch.where(mask, big - labels[:, 0], torch.zeros_like(index)).long()


def largest_component_boxes(mask: Tensor) -> Tensor:
    """(B, 4) boxes (x0, y0, x1, y1) of each image's largest 8-connected region; empty mask: whole image."""
    b, h, w = mask.shape
    labels = connected_components(mask).flatten(1)  # (B, H*W) in 0..H*W
    counts = torch.zeros(b, h * w + 1, dtype=torch.long, device=mask.device)
    counts.scatter_add_(1, labels, torch.ones_like(labels))
    counts[:, 0] = -1  # never the background
    best = counts.argmax(1, keepdim=True)
    region = (labels == best) & (labels > 0)
    region = region.view(b, h, w)
    empty = ~region.flatten(1).any(1)
    region[empty] = True
    rows, cols = region.any(2), region.any(1)  # (B, H), (B, W)
    ar_h = torch.arange(h, device=mask.device)
    ar_w = torch.arange(w, device=mask.device)
    y0 = torch.where(rows, ar_h, h).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1) + 1
    x0 = torch.where(cols, ar_w, w).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1) + 1
    return torch.stack([x0, y0, x1, y1], 1).float()
