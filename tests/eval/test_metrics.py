"""Metric correctness on hand-computed examples."""

from __future__ import annotations

import math

import pytest
import torch

from mixcut.eval.metrics import ClassificationMeter, calibration_bins, ece_from_bins, topk_correct


def test_topk_without_ties():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    target = torch.tensor([1, 1])
    assert topk_correct(logits, target, 1).tolist() == [0.0, 0.0]
    assert topk_correct(logits, target, 2).tolist() == [1.0, 0.0]
    assert topk_correct(logits, target, 3).tolist() == [1.0, 1.0]


def test_topk_with_ties_is_expected_accuracy_under_random_tie_breaking():
    # all four classes tie: top-1 is right with chance 1/4, top-2 with 2/4
    flat = torch.zeros(1, 4)
    assert topk_correct(flat, torch.tensor([2]), 1).item() == 0.25
    assert topk_correct(flat, torch.tensor([2]), 2).item() == 0.5
    # one class strictly higher, the true class tied with one other: top-1 0, top-2 1/2, top-3 1
    logits = torch.tensor([[5.0, 1.0, 1.0, 0.0]])
    t = torch.tensor([1])
    assert [topk_correct(logits, t, k).item() for k in (1, 2, 3)] == [0.0, 0.5, 1.0]


def test_nll_brier_top1_on_hand_example():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    logits = probs.log()
    target = torch.tensor([0, 1])
    m = ClassificationMeter(3)
    m.update(logits, target)
    out = m.compute()
    assert out["n"] == 2
    assert math.isclose(out["top1"], 50.0)
    assert math.isclose(out["nll"], (-math.log(0.7) - math.log(0.3)) / 2, rel_tol=1e-6)
    brier = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.7**2 + 0.6**2)) / 2
    assert math.isclose(out["brier"], brier, rel_tol=1e-6)
    assert math.isclose(out["top5"], 100.0)  # k is capped at the number of classes


def test_ece_on_hand_example():
    # confidences 0.9 (right), 0.9 (wrong), 0.55 (right), 0.3 (right) in 15 bins (lo, hi]
    conf = torch.tensor([0.9, 0.9, 0.55, 0.3])
    correct = torch.tensor([1.0, 0.0, 1.0, 1.0])
    bins = calibration_bins(conf, correct, 15)
    assert bins[0].sum().item() == 4
    # bin of 0.9: |0.5 - 0.9| * 2/4 ; bin of 0.55: |1 - 0.55| * 1/4 ; bin of 0.3: |1 - 0.3| * 1/4
    expected = 100 * (0.4 * 0.5 + 0.45 * 0.25 + 0.7 * 0.25)
    assert math.isclose(ece_from_bins(bins), expected, rel_tol=1e-6)


def test_ece_bin_edges_are_right_closed():
    # exactly 1/15 belongs to the first bin (0, 1/15]
    bins = calibration_bins(torch.tensor([1 / 15, 1.0]), torch.tensor([1.0, 1.0]), 15)
    assert bins[0, 0].item() == 1 and bins[0, 14].item() == 1


def test_meter_accumulates_batches_like_one_pass():
    torch.manual_seed(0)
    logits, target = torch.randn(50, 7), torch.randint(0, 7, (50,))
    whole, parts = ClassificationMeter(7), ClassificationMeter(7)
    whole.update(logits, target)
    for sl in (slice(0, 13), slice(13, 40), slice(40, 50)):
        parts.update(logits[sl], target[sl])
    a, b = whole.compute(), parts.compute()
    for k in ("top1", "top5", "nll", "ece", "brier"):
        assert math.isclose(a[k], b[k], rel_tol=1e-6, abs_tol=1e-9), k
    rel = whole.reliability()
    assert sum(rel["count"]) == 50 and len(rel["edges"]) == 16


def test_meter_update_builds_no_tensor_from_host_data(monkeypatch):
    """torch.tensor(n, device=cuda) is a blocking host-to-device copy: update must not make one per batch."""

    def refuse(*args, **kwargs):
        raise AssertionError("ClassificationMeter.update made a tensor from host data (a blocking copy on CUDA)")

    meter = ClassificationMeter(3)
    logits, target = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]), torch.tensor([0, 1])
    monkeypatch.setattr(torch, "tensor", refuse)
    monkeypatch.setattr(torch, "as_tensor", refuse)
    meter.update(logits, target)
    monkeypatch.undo()
    assert meter.compute()["n"] == 2 and meter.compute()["top1"] == 50.0


@pytest.mark.cuda
def test_meter_update_never_synchronizes_on_cuda():
    meter = ClassificationMeter(10, device="cuda")
    logits, target = torch.randn(64, 10, device="cuda"), torch.randint(0, 10, (64,), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        meter.update(logits, target)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert meter.compute()["n"] == 64
