"""Temperature scaling: known temperatures are recovered and the split is class-balanced and disjoint."""

from __future__ import annotations

import math

import pytest
import torch

from mixcut.eval.calibration import calibration_mask, ece_floor, fit_temperature, temperature_scaling


def synthetic(t_true: float, n: int = 20000, k: int = 10, seed: int = 0):
    """Labels drawn from softmax(z); the model reports z * t_true, so T = t_true undoes it."""
    gen = torch.Generator().manual_seed(seed)
    z = 2.0 * torch.randn(n, k, generator=gen)
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=gen).squeeze(1)
    return z * t_true, y


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.5])
def test_recovers_known_temperature(t_true):
    logits, y = synthetic(t_true)
    assert fit_temperature(logits, y) == pytest.approx(t_true, rel=0.05)


def test_scaling_improves_an_overconfident_model():
    logits, y = synthetic(3.0)
    r = temperature_scaling(logits, y)
    assert r["temperature"] == pytest.approx(3.0, rel=0.05)
    assert r["after"]["nll"] < r["before"]["nll"] and r["after"]["ece"] < r["before"]["ece"]
    assert r["after"]["top1"] == r["before"]["top1"]  # dividing by T > 0 keeps the argmax
    assert r["calibration_n"] + r["eval_n"] == len(y)


def test_calibration_mask_is_balanced_half_per_class():
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0, 0, 1, 2, 2, 1])
    mask = calibration_mask(labels)
    for c in range(3):
        members = (labels == c).nonzero().flatten()
        assert mask[members].tolist() == [True, False, True, False]  # every other one, in split order


def test_ece_floor_matches_the_binomial_mean_absolute_deviation():
    """All confidences 0.5 fall in one bin: the floor is E|Binomial(n, 1/2) - n/2| / n = sqrt(1/(2 pi n)) (large n)."""
    for n in (1500, 6000):
        floor = ece_floor(torch.full((n,), 0.5), draws=2000)
        expected = 100 * math.sqrt(1 / (2 * math.pi * n))
        assert abs(floor["mean"] - expected) < 0.05 * expected, (n, floor, expected)
        assert floor["p95"] > floor["mean"] and floor["n"] == n


def test_ece_floor_is_reported_after_scaling_and_is_what_a_calibrated_model_scores():
    """Labels drawn from the model's own confidences: its measured ECE after scaling sits near the floor."""
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(3000, 10, generator=gen)
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=gen).flatten()  # calibrated by construction
    ts = temperature_scaling(logits, labels)
    floor = ts["ece_floor_after"]
    assert floor["n"] == ts["eval_n"] and 0.5 < floor["mean"] < 5
    assert ts["after"]["ece"] < floor["p95"] * 1.5
