"""Weakly-supervised object localization (the CutMix paper's protocol, Yun et al. 2019, Sec. 4.1.2).

For each image: a class activation map, upsampled to the image, thresholded at
``threshold`` x its maximum (after subtracting its minimum), the bounding box of
the largest connected (8-neighbour) region, and its IoU with the ground-truth box(es):

  Top-1 Loc     predicted class correct AND IoU >= 0.5 (map of the predicted class)
  GT-known Loc  IoU >= 0.5 with the map of the true class

Maps: CAM (Zhou et al. 2016) when the head is global average pooling + one
linear layer (checked numerically on the batch: ``forward_head(f) == fc(mean(f))``),
Grad-CAM (Selvaraju et al. 2017) on the last feature map otherwise. Both need
timm's ``forward_features`` / ``forward_head``.

Connected components are computed for the whole batch at once in torch by
min-label propagation (3x3 max pooling of negated labels) until nothing changes.

Paper numbers (CutMix arXiv:1905.04899v2 Table 9, ResNet-50, Top-1 Loc % on
CUB-200-2011 / ImageNet): CAM 49.41 / 46.30, + Mixup 49.30 / 45.84, + Cutout
52.78 / 46.69, + CutMix 54.81 / 47.25 (the authors' README lists 46.25 for the last).

Boxes are ``(x0, y0, x1, y1)`` in pixels with x1, y1 exclusive. Readers:
`read_box_file` (mixcut's ``boxes.txt``: ``relative/path x0 y0 x1 y1 width height``),
`read_imagenet_xml` (one PASCAL-VOC XML per validation image) and `read_cub`
(CUB-200-2011 ``images.txt`` + ``bounding_boxes.txt``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, DataError


# ------------------------------------------------------------------ maps
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


# ------------------------------------------------------------------ boxes from maps
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


def box_iou(pred: Tensor, gt: Tensor) -> Tensor:
    """IoU of (B, 4) predicted boxes against (B, K, 4) ground truths; the best per image.
    Padding rows of ``gt`` (x1 <= x0) are ignored."""
    p = pred[:, None]
    iw = (torch.minimum(p[..., 2], gt[..., 2]) - torch.maximum(p[..., 0], gt[..., 0])).clamp_min(0)
    ih = (torch.minimum(p[..., 3], gt[..., 3]) - torch.maximum(p[..., 1], gt[..., 1])).clamp_min(0)
    inter = iw * ih
    area = lambda t: (t[..., 2] - t[..., 0]).clamp_min(0) * (t[..., 3] - t[..., 1]).clamp_min(0)  # noqa: E731
    union = area(p) + area(gt) - inter
    iou = torch.where((gt[..., 2] > gt[..., 0]) & (union > 0), inter / union.clamp_min(1e-12), torch.zeros_like(inter))
    return iou.amax(1)


def localize(
    model: nn.Module, x: Tensor, y: Tensor, gt: Tensor, threshold: float = 0.2, method: str = "auto"
) -> dict[str, Tensor]:
    """One batch: per-image ``top1_loc``, ``gt_known_loc`` (bool), ``iou_pred``, ``iou_gt``, boxes, maps."""
    size = (x.shape[-2], x.shape[-1])
    logits, (map_pred, map_gt), used = maps_for(model, x, [None, y], method)
    pred = logits.argmax(1)
    box_pred = largest_component_boxes(threshold_maps(map_pred, size, threshold))
    box_gt = largest_component_boxes(threshold_maps(map_gt, size, threshold))
    iou_pred, iou_gt = box_iou(box_pred, gt), box_iou(box_gt, gt)
    return {
        "correct": pred == y,
        "top1_loc": (pred == y) & (iou_pred >= 0.5),
        "gt_known_loc": iou_gt >= 0.5,
        "iou_pred": iou_pred,
        "iou_gt": iou_gt,
        "box_pred": box_pred,
        "box_gt_known": box_gt,
        "map_gt": map_gt,
        "method": used,
    }


# ------------------------------------------------------------------ box files
def read_box_file(path: str | Path) -> dict[str, tuple[list[list[float]], tuple[int, int]]]:
    """mixcut's boxes file: ``relative/path x0 y0 x1 y1 width height`` per line (# comments)."""
    out: dict = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        rel, *nums = line.split()
        x0, y0, x1, y1, w, h = (float(v) for v in nums)
        boxes, _ = out.setdefault(rel, ([], (int(w), int(h))))
        boxes.append([x0, y0, x1, y1])
    return out


def read_imagenet_xml(xml_dir: str | Path) -> dict[str, tuple[list[list[float]], tuple[int, int]]]:
    """ImageNet validation boxes: one PASCAL-VOC XML per image (``ILSVRC2012_val_00000001.xml``), keyed by
    the image's file stem; every object's box (ImageNet val images may have several)."""
    out = {}
    for f in sorted(Path(xml_dir).glob("*.xml")):
        root = ET.parse(f).getroot()
        size = root.find("size")
        wh = (int(size.findtext("width")), int(size.findtext("height")))
        boxes = [[float(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")] for o in root.iter("object")]
        out[f.stem] = (boxes, wh)
    return out


def read_cub(root: str | Path) -> dict[str, tuple[list[list[float]], tuple[int, int] | None]]:
    """CUB-200-2011: ``images.txt`` (id path) + ``bounding_boxes.txt`` (id x y width height), keyed by the
    image's path as in images.txt (``001.Black_footed_Albatross/...jpg``); image sizes are read later."""
    root = Path(root)
    paths = dict(line.split(maxsplit=1) for line in (root / "images.txt").read_text().splitlines() if line.strip())
    out = {}
    for line in (root / "bounding_boxes.txt").read_text().splitlines():
        if not line.strip():
            continue
        i, x, y, w, h = line.split()
        x, y, w, h = float(x), float(y), float(w), float(h)
        out[paths[i].strip()] = ([[x, y, x + w, y + h]], None)
    return out


BOX_READERS = {"mixcut": read_box_file, "imagenet_xml": read_imagenet_xml, "cub": read_cub}


def eval_geometry(boxes: Tensor, width: int, height: int, img_size: int, crop_pct: float) -> Tensor:
    """Boxes of an original (width x height) image mapped through validation's resize (shorter side
    to round(img_size / crop_pct), as torchvision's Resize) and centre crop to img_size, clipped."""
    resize = int(round(img_size / crop_pct))
    short, long_ = (width, height) if width <= height else (height, width)
    new_long = int(resize * long_ / short)
    new_w, new_h = (resize, new_long) if width <= height else (new_long, resize)
    sx, sy = new_w / width, new_h / height
    left, top = int(round((new_w - img_size) / 2.0)), int(round((new_h - img_size) / 2.0))
    out = boxes.clone()
    out[..., [0, 2]] = (out[..., [0, 2]] * sx - left).clamp(0, img_size)
    out[..., [1, 3]] = (out[..., [1, 3]] * sy - top).clamp(0, img_size)
    return out


def boxes_for_split(paths: Sequence[str], data_root: str | Path, table: dict, img_size: int, crop_pct: float) -> Tensor:
    """(N, K, 4) ground-truth boxes in evaluated-image pixels for the split's files (padding: zeros).

    A file is looked up by its path relative to ``data_root``, then relative to its split folder
    (``val/``), then relative to its class folder's parent, then by file stem.
    """
    from PIL import Image

    root = Path(os.path.abspath(data_root))
    rows = []
    for p in paths:
        path = Path(os.path.abspath(p))  # not resolve(): a folder of symbolic links keeps its own names
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        keys = [rel, rel.split("/", 1)[-1], "/".join(path.parts[-2:]), path.stem]
        hit = next((table[k] for k in keys if k in table), None)
        if hit is None:
            raise DataError(f"no ground-truth box for {p} (looked up {keys}) in the boxes file.")
        boxes, wh = hit
        if wh is None:
            with Image.open(p) as im:  # header only
                wh = im.size
        rows.append(eval_geometry(torch.tensor(boxes, dtype=torch.float32), wh[0], wh[1], img_size, crop_pct))
    k = max(len(r) for r in rows)
    return torch.stack([F.pad(r, (0, 0, 0, k - len(r))) for r in rows])


@torch.no_grad()
def localization_accuracy(model: nn.Module, batches, gt: Tensor, threshold: float = 0.2, method: str = "auto", examples: int = 8):
    """Top-1 Loc and GT-known Loc (%) over the split ``batches`` whose i-th image has boxes ``gt[i]``.

    Also returns up to ``examples`` images' maps and boxes for a picture (`plot_examples`)."""
    device = next(model.parameters()).device
    gt = gt.to(device)
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # top1 loc, gt-known loc, correct, iou_gt
    n, used, shown = 0, None, {}
    for x, y in batches.epoch(0):
        b = y.shape[0]
        if n + b > gt.shape[0]:
            raise DataError(f"the split has more images than ground-truth boxes ({gt.shape[0]}).")
        r = localize(model, x.float(), y, gt[n : n + b], threshold, method)
        used = r["method"]
        sums += torch.stack([r["top1_loc"].sum(), r["gt_known_loc"].sum(), r["correct"].sum(), r["iou_gt"].sum()]).double()
        if not shown:
            k = min(examples, b)
            shown = {"images": x[:k].float().cpu(), "maps": r["map_gt"][:k].cpu(), "pred": r["box_gt_known"][:k].cpu(),
                     "gt": gt[n : n + k].cpu()}  # fmt: skip
        n += b
    if n != gt.shape[0] and not getattr(batches, "limit", None):
        raise DataError(f"the split yielded {n} images but {gt.shape[0]} have boxes (unreadable files skipped?).")
    top1_loc, gt_loc, top1, iou = (100.0 * float(v) / max(n, 1) for v in sums)
    result = {"top1_loc": top1_loc, "gt_known_loc": gt_loc, "top1": top1, "mean_iou_gt_known": iou / 100.0,
              "n": n, "threshold": threshold, "method": used}  # fmt: skip
    return result, shown


def plot_examples(shown: dict, mean, std, path: str | Path, title: str | None = None) -> Path:
    """A row of images with the true class's map overlaid, ground truth (green) and predicted (red) boxes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    images = shown["images"] * torch.tensor(list(std)).view(1, -1, 1, 1) + torch.tensor(list(mean)).view(1, -1, 1, 1)
    images = images.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    size = images.shape[1:3]
    maps = F.interpolate(shown["maps"][:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    k = images.shape[0]
    fig = Figure(figsize=(1.6 * k, 1.9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, k, squeeze=False)[0]
    for i, ax in enumerate(axes):
        ax.imshow(images[i])
        ax.imshow(maps[i].numpy(), cmap="jet", alpha=0.4)
        for box, color in [(b, "lime") for b in shown["gt"][i] if b[2] > b[0]] + [(shown["pred"][i], "red")]:
            x0, y0, x1, y1 = box.tolist()
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=color, linewidth=1.2))
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
