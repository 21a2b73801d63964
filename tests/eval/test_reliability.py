"""Reliability-diagram data against a hand-computed example, and the PNG they draw."""

from __future__ import annotations

import math

import pytest
import torch

from mixcut.eval.metrics import ClassificationMeter
from mixcut.eval.reliability import ece_from_reliability, plot_reliability

# Two classes; (probability of class 0, true class). Confidence = max(p, 1 - p).
SAMPLES = [(0.95, 0), (0.95, 1), (0.25, 1), (0.55, 0), (0.38, 0)]
# by hand, 5 bins (0, .2] (.2, .4] (.4, .6] (.6, .8] (.8, 1]:
#   0.95 right, 0.95 wrong           -> bin 4: n 2, confidence 0.95, accuracy 0.5
#   0.75 right (p0 .25, true 1), 0.62 wrong (p0 .38 -> predicts 1, true 0) -> bin 3: n 2, confidence 0.685, accuracy 0.5
#   0.55 right                       -> bin 2: n 1, confidence 0.55, accuracy 1
# ECE = (2 |0.95 - 0.5| + 2 |0.685 - 0.5| + 1 |0.55 - 1|) / 5 = 0.344 -> 34.4 %
HAND = {
    "edges": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    "count": [0, 0, 1, 2, 2],
    "confidence": [0, 0, 0.55, 0.685, 0.95],
    "accuracy": [0, 0, 1.0, 0.5, 0.5],
}


def meter_for_example() -> ClassificationMeter:
    p0 = torch.tensor([p for p, _ in SAMPLES], dtype=torch.float64)
    logits = torch.stack([p0.log(), (1 - p0).log()], dim=1).float()
    meter = ClassificationMeter(num_classes=2, n_bins=5)
    meter.update(logits, torch.tensor([t for _, t in SAMPLES]))
    return meter


def test_reliability_data_match_the_hand_computed_example():
    meter = meter_for_example()
    rel = meter.reliability()
    assert rel["edges"] == pytest.approx(HAND["edges"])
    assert rel["count"] == HAND["count"]
    assert rel["confidence"] == pytest.approx(HAND["confidence"], abs=1e-6)
    assert rel["accuracy"] == pytest.approx(HAND["accuracy"])
    assert meter.compute()["ece"] == pytest.approx(34.4, abs=1e-4)
    assert ece_from_reliability(rel) == pytest.approx(34.4, abs=1e-4)
    assert meter.compute()["top1"] == pytest.approx(60.0)


def test_perfect_calibration_has_zero_ece():
    rel = {"edges": [0, 0.5, 1.0], "count": [10, 30], "confidence": [0.4, 0.9], "accuracy": [0.4, 0.9]}
    assert ece_from_reliability(rel) == 0.0
    assert ece_from_reliability({"edges": [0, 1], "count": [0], "confidence": [0], "accuracy": [0]}) == 0.0


def test_plot_writes_a_png(tmp_path):
    path = plot_reliability(meter_for_example().reliability(), tmp_path / "sub" / "rel.png", title="example")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def test_plot_refuses_inconsistent_data(tmp_path):
    bad = dict(HAND, count=[1, 2])
    with pytest.raises(ValueError, match="n_bins"):
        plot_reliability(bad, tmp_path / "x.png")


def test_meter_bins_are_closed_on_the_right():
    """A confidence of exactly 1 lands in the last bin; 15 bins by default cover (0, 1]."""
    meter = ClassificationMeter(num_classes=3)
    meter.update(torch.tensor([[100.0, -100.0, -100.0]]), torch.tensor([0]))
    rel = meter.reliability()
    assert len(rel["count"]) == 15 and rel["count"][-1] == 1 and math.isclose(rel["accuracy"][-1], 1.0)
