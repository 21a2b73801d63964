"""Evaluation metrics: top-k accuracy, NLL, calibration error (ECE) and Brier score.

`ClassificationMeter` accumulates additive sums on the device (no host sync per
batch); summing them across ranks gives the exact metrics of the whole
validation set, which is why every quantity here is a sum until `compute`.

Definitions (all over N samples, p = softmax(logits)):
  top-k  expected top-k accuracy under uniform random tie-breaking: with g
         classes scoring strictly higher than the true class and t classes
         (the true one included) scoring equal, the sample counts
         clamp((k - g) / t, 0, 1). Without ties this is the usual 0/1 top-k.
  NLL    mean of -log p[y] (nats).
  ECE    sum over 15 equal-width confidence bins (lo, hi] of
         |bin| / N * |accuracy(bin) - mean confidence(bin)|, in percent;
         confidence = max p, prediction = argmax p.
  Brier  mean over samples of sum_k (p_k - onehot(y)_k)^2 (0 = perfect, max 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# The metrics every evaluation reports, in the order tables show them.
METRIC_NAMES = ("top1", "top5", "nll", "ece", "brier")


def topk_correct(logits: Tensor, target: Tensor, k: int) -> Tensor:
    """Per-sample (fractional, see module doc) top-k correctness, float32 (B,)."""
    true_score = logits.gather(1, target.view(-1, 1))
    greater = (logits > true_score).sum(1).float()
    ties = (logits == true_score).sum(1).float()
    return ((k - greater) / ties).clamp(0.0, 1.0)


def calibration_bins(confidence: Tensor, correct: Tensor, n_bins: int = 15) -> Tensor:
    """(3, n_bins) sums per bin: count, sum of confidence, sum of correctness."""
    idx = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)
    out = torch.zeros(3, n_bins, dtype=torch.float64, device=confidence.device)
    out[0].index_add_(0, idx, torch.ones_like(confidence, dtype=torch.float64))
    out[1].index_add_(0, idx, confidence.double())
    out[2].index_add_(0, idx, correct.double())
    return out


def ece_from_bins(bins: Tensor) -> float:
    count, conf, acc = bins
    n = count.sum().clamp_min(1)
    return float((conf - acc).abs().sum() / n * 100.0)


class ClassificationMeter:
    """Sums of per-sample metrics for one evaluation pass (device-resident)."""

    def __init__(self, num_classes: int, n_bins: int = 15, device="cpu") -> None:
        self.num_classes, self.n_bins = num_classes, n_bins
        self.sums = torch.zeros(5, dtype=torch.float64, device=device)  # n, top1, top5, nll, brier
        self.bins = torch.zeros(3, n_bins, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, logits: Tensor, target: Tensor) -> None:
        logits = logits.float()
        logp = F.log_softmax(logits, dim=1)
        prob = logp.exp()
        nll = -logp.gather(1, target.view(-1, 1)).squeeze(1)
        brier = (prob.square().sum(1) - 2 * prob.gather(1, target.view(-1, 1)).squeeze(1) + 1.0).clamp_min(0)
        k5 = min(5, self.num_classes)
        batch = torch.stack(
            [
                # a fill kernel: torch.tensor(n, device=...) would be a blocking host-to-device copy per batch
                logits.new_full((), float(target.shape[0])),
                topk_correct(logits, target, 1).sum(),
                topk_correct(logits, target, k5).sum(),
                nll.sum(),
                brier.sum(),
            ]
        ).double()
        self.sums += batch
        conf, pred = prob.max(1)
        self.bins += calibration_bins(conf, (pred == target).float(), self.n_bins)

    def all_reduce(self) -> None:
        """Sum across ranks (exact: each rank saw a disjoint shard)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            packed = torch.cat([self.sums, self.bins.flatten()])
            dist.all_reduce(packed)
            self.sums, self.bins = packed[:5], packed[5:].view(3, self.n_bins)

    def compute(self) -> dict[str, float]:
        n, top1, top5, nll, brier = self.sums.tolist()
        n = max(n, 1.0)
        return {
            "top1": 100.0 * top1 / n,
            "top5": 100.0 * top5 / n,
            "nll": nll / n,
            "ece": ece_from_bins(self.bins),
            "brier": brier / n,
            "n": int(self.sums[0].item()),
        }

    def reliability(self) -> dict[str, list[float]]:
        """Per-bin data for a reliability diagram."""
        count, conf, acc = self.bins.tolist()
        edges = [i / self.n_bins for i in range(self.n_bins + 1)]
        safe = [max(c, 1.0) for c in count]
        return {
            "edges": edges,
            "count": count,
            "confidence": [c / s for c, s in zip(conf, safe)],
            "accuracy": [a / s for a, s in zip(acc, safe)],
        }
