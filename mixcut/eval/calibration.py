"""Calibration after temperature scaling (Guo et al., "On Calibration of Modern
Neural Networks", ICML 2017).

One scalar temperature T divides the logits; it is fit by minimising the NLL
with L-BFGS on cached logits of a *calibration* split, then ECE/NLL/Brier are
reported on a disjoint *evaluation* split before and after dividing by T.

Split (`calibration_mask`): within every class, the images at even positions of
the split's fixed order calibrate and the others are evaluated, so both halves
are class-balanced and the same on every run. Wang et al. (CVPR 2023, "On the
pitfall of mixup for uncertainty calibration") report that mixup models gain
less from temperature scaling than ERM models: compare ``after`` across models.

ECE's sampling floor (`ece_floor`): binned ECE is biased upwards on a finite
set, since |accuracy - confidence| in a bin is positive even when the model is
perfectly calibrated. The floor is the ECE that a perfectly calibrated model
with the same confidences would score on the same number of images: labels
drawn as Bernoulli(confidence) (the model's own confidences after scaling),
ECE computed with the same 15 bins, averaged over draws. An ECE after scaling
at or below the floor is indistinguishable from perfect calibration.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .metrics import ClassificationMeter, calibration_bins


@torch.no_grad()
def collect_logits(model: nn.Module, batches, device: torch.device, amp_dtype=None) -> tuple[Tensor, Tensor]:
    """(logits float32 (N, K), labels (N,)) of a whole split, in the split's order, on ``device``."""
    model.eval()
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    logits, labels = [], []
    for x, y in batches.epoch(0):
        with ctx:
            logits.append(model(x).float())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def calibration_mask(labels: Tensor) -> Tensor:
    """True for every other image of each class (even rank within its class, in split order)."""
    order = torch.argsort(labels, stable=True)
    ranked = labels[order]
    first = torch.searchsorted(ranked, ranked)  # position of each class's first image in the sorted order
    rank = torch.arange(len(labels), device=labels.device) - first
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[order] = rank % 2 == 0
    return mask


def fit_temperature(logits: Tensor, labels: Tensor, max_iter: int = 100) -> float:
    """The temperature T > 0 minimising mean NLL of softmax(logits / T) (L-BFGS on log T)."""
    z = logits.detach().double()
    log_t = torch.zeros(1, dtype=torch.float64, device=z.device, requires_grad=True)  # log T: T stays positive
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return float(log_t.detach().exp())


def scaled_metrics(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> tuple[dict, dict]:
    """(top1/top5/NLL/ECE/Brier, reliability data) of softmax(logits / temperature)."""
    meter = ClassificationMeter(logits.shape[1], device=logits.device)
    meter.update(logits / temperature, labels)
    return meter.compute(), meter.reliability()


def ece_floor(confidence: Tensor, n_bins: int = 15, draws: int = 1000, seed: int = 0) -> dict:
    """ECE (%) of a perfectly calibrated model with these ``confidence`` values on as many images:
    ``{"mean": ..., "p95": ..., "draws": ...}`` over ``draws`` simulated label sets
    (correct ~ Bernoulli(confidence)), binned exactly as `ClassificationMeter`'s ECE."""
    conf = confidence.detach().double().cpu()
    gen = torch.Generator().manual_seed(seed)
    correct = (torch.rand((draws, conf.numel()), generator=gen, dtype=torch.float64) < conf).double()
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    conf_sum = calibration_bins(conf, torch.zeros_like(conf), n_bins)[1]  # the same in every draw
    acc_sum = torch.zeros(draws, n_bins, dtype=torch.float64).index_add_(1, idx, correct)
    ece = (conf_sum - acc_sum).abs().sum(1) / max(conf.numel(), 1) * 100.0
    return {"mean": float(ece.mean()), "p95": float(ece.quantile(0.95)), "draws": draws, "n": conf.numel()}


def temperature_scaling(logits: Tensor, labels: Tensor, calib: Tensor | None = None) -> dict:
    """Fit T on ``logits[calib]`` and report metrics on ``logits[~calib]`` before and after.

    ``calib`` defaults to `calibration_mask(labels)`.
    """
    calib = calibration_mask(labels) if calib is None else calib.to(device=labels.device, dtype=torch.bool)
    if calib.all() or not calib.any():
        raise ValueError("temperature scaling needs both calibration and evaluation images; the split is too small.")
    t = fit_temperature(logits[calib], labels[calib])
    before, rel_before = scaled_metrics(logits[~calib], labels[~calib])
    after, rel_after = scaled_metrics(logits[~calib], labels[~calib], t)
    confidence_after = torch.softmax(logits[~calib].double() / t, dim=1).amax(1)
    return {
        "temperature": t,
        "calibration_n": int(calib.sum()),
        "eval_n": int((~calib).sum()),
        "before": before,
        "after": after,
        "reliability_before": rel_before,
        "reliability_after": rel_after,
        "ece_floor_after": ece_floor(confidence_after),
        "protocol": "temperature scaling (Guo et al. 2017): T fit by L-BFGS (NLL) on every other image of each "
        "class of the validation split; metrics on the other half",
    }
