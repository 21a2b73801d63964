"""Weakly-supervised object localization (the CutMix paper's protocol, Yun et al. 2019, Sec. 4.1.2).

For each image: a class activation map and the box of its largest thresholded region
(`mixcut.eval.cam`), and its IoU with the ground-truth box(es) (`mixcut.eval.box_files`
reads them):

  Top-1 Loc     predicted class correct AND IoU >= 0.5 (map of the predicted class)
  GT-known Loc  IoU >= 0.5 with the map of the true class

Paper numbers (CutMix arXiv:1905.04899v2 Table 9, ResNet-50, Top-1 Loc % on
CUB-200-2011 / ImageNet): CAM 49.41 / 46.30, + Mixup 49.30 / 45.84, + Cutout
52.78 / 46.69, + CutMix 54.81 / 47.25 (the authors' README lists 46.25 for the last).
`mixcut.eval.localization_plot` draws examples.

The threshold matters as much as the map (Choe et al., "Evaluating Weakly Supervised
Object Localization Methods Right", CVPR 2020): a fixed 0.2 suits ImageNet-sized maps,
not a 12x12 map of a small object. So GT-known Loc is also reported at every threshold
of ``SWEEP`` and at the best of them (``max_box_acc``, their MaxBoxAcc at IoU 0.5).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import DataError
from .cam import largest_component_boxes, maps_for, threshold_maps

SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # CAM thresholds of the GT-known sweep


def gt_known_hits(maps: Tensor, size: tuple[int, int], gt: Tensor, thresholds=SWEEP) -> Tensor:
    """(len(thresholds),) number of images whose true-class ``maps`` (B, h, w), boxed at each threshold,
    reach IoU >= 0.5 with their ground truth ``gt`` (B, K, 4)."""
    return torch.stack([(box_iou(largest_component_boxes(threshold_maps(maps, size, t)), gt) >= 0.5).sum() for t in thresholds])


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


@torch.no_grad()
def localization_accuracy(model: nn.Module, batches, gt: Tensor, threshold: float = 0.2, method: str = "auto", examples: int = 8):
    """Top-1 Loc and GT-known Loc (%) over the split ``batches`` whose i-th image has boxes ``gt[i]``.

    Also returns up to ``examples`` images' maps and boxes for a picture (`plot_examples`)."""
    device = next(model.parameters()).device
    gt = gt.to(device)
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # top1 loc, gt-known loc, correct, iou_gt
    sweep = torch.zeros(len(SWEEP), dtype=torch.float64, device=device)
    n, used, shown = 0, None, {}
    for x, y in batches.epoch(0):
        b = y.shape[0]
        if n + b > gt.shape[0]:
            raise DataError(f"the split has more images than ground-truth boxes ({gt.shape[0]}).")
        r = localize(model, x.float(), y, gt[n : n + b], threshold, method)
        used = r["method"]
        sums += torch.stack([r["top1_loc"].sum(), r["gt_known_loc"].sum(), r["correct"].sum(), r["iou_gt"].sum()]).double()
        sweep += gt_known_hits(r["map_gt"], (x.shape[-2], x.shape[-1]), gt[n : n + b]).double()
        if not shown:
            k = min(examples, b)
            shown = {"images": x[:k].float().cpu(), "maps": r["map_gt"][:k].cpu(), "pred": r["box_gt_known"][:k].cpu(),
                     "gt": gt[n : n + k].cpu()}  # fmt: skip
        n += b
    if n != gt.shape[0] and not getattr(batches, "limit", None):
        raise DataError(f"the split yielded {n} images but {gt.shape[0]} have boxes (unreadable files skipped?).")
    top1_loc, gt_loc, top1, iou = (100.0 * float(v) / max(n, 1) for v in sums)
    by_t = {f"{t:.1f}": 100.0 * float(v) / max(n, 1) for t, v in zip(SWEEP, sweep)}
    best = max(by_t, key=by_t.get)
    result = {"top1_loc": top1_loc, "gt_known_loc": gt_loc, "top1": top1, "mean_iou_gt_known": iou / 100.0,
              "n": n, "threshold": threshold, "method": used, "gt_known_loc_by_threshold": by_t,
              "max_box_acc": by_t[best], "best_threshold": float(best)}  # fmt: skip
    return result, shown
