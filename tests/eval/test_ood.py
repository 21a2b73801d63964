"""AUROC and FPR@95 on scores with known answers, and the offline OOD sets."""

from __future__ import annotations

import pytest
import torch

from mixcut.eval.ood import auroc, digits_images, energy_score, fpr_at_tpr, msp_score, noise_images


def test_separated_identical_and_reversed_scores():
    lo, hi = torch.rand(100) * 0.4, 0.6 + torch.rand(80) * 0.4
    assert auroc(hi, lo) == 1.0 and fpr_at_tpr(hi, lo) == 0.0
    assert auroc(lo, hi) == 0.0 and fpr_at_tpr(lo, hi) == 1.0
    same = torch.full((50,), 0.3)
    assert auroc(same, same.clone()) == 0.5 and fpr_at_tpr(same, same) == 1.0


def test_auroc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    gen = torch.Generator().manual_seed(0)
    s_in = torch.randint(0, 20, (300,), generator=gen).float()
    s_out = torch.randint(0, 15, (200,), generator=gen).float()
    ref = roc_auc_score([1] * 300 + [0] * 200, torch.cat([s_in, s_out]).numpy())
    assert auroc(s_in, s_out) == pytest.approx(ref, abs=1e-12)


def test_fpr_at_95_threshold():
    s_in = torch.arange(100).float()  # the top 95 are 5..99
    s_out = torch.tensor([4.0, 5.0, 50.0, -1.0])
    assert fpr_at_tpr(s_in, s_out) == 0.5  # 5 and 50 pass the threshold 5


def test_scores_and_sets():
    logits = torch.tensor([[10.0, 0.0], [0.0, 0.0]])
    assert msp_score(logits)[0] > msp_score(logits)[1] and energy_score(logits)[0] > energy_score(logits)[1]
    for imgs in (noise_images("gaussian", 7, 16), noise_images("uniform", 7, 16), digits_images(7, 16)):
        assert imgs.shape == (7, 3, 16, 16) and imgs.dtype == torch.uint8
