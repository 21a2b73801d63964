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


class _BrightnessNet(torch.nn.Module):
    """Two logits, (10 * mean pixel, 0): both scores (max softmax, energy) rise with the image's brightness."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([10 * m, torch.zeros_like(m)], 1)


def test_open_set_auroc_on_a_constructed_case(tmp_path):
    """In-distribution images of grey 40..200 against a held-out-class folder of grey 20..140: 14 of the 20
    (in, out) pairs are ordered, so both scores give AUROC 70 %; the noise sets stay out of the natural mean."""
    from types import SimpleNamespace

    from PIL import Image

    from mixcut.eval.ood import logits_of, ood_detection

    for c, levels in {"bird": (20, 100), "cat": (60, 140)}.items():  # the held-out classes' folder
        (tmp_path / "heldout" / c).mkdir(parents=True)
        for g in levels:
            Image.new("RGB", (8, 8), (g, g, g)).save(tmp_path / "heldout" / c / f"{g}.png")
    model = _BrightnessNet()
    inside = torch.tensor([40, 80, 120, 160, 200], dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 8, 8)
    logits_in = logits_of(model, inside, [0, 0, 0], [1, 1, 1])
    aug = SimpleNamespace(interpolation="bilinear", crop_pct=1.0)
    r = ood_detection(model, logits_in, 8, [0, 0, 0], [1, 1, 1], folders=[str(tmp_path / "heldout")], n=10, aug=aug)
    held = r["sets"]["folder:heldout"]
    assert held["n"] == 4
    assert held["msp"]["auroc"] == pytest.approx(70.0) and held["energy"]["auroc"] == pytest.approx(70.0)
    assert r["natural_sets"] == ["folder:heldout"] and r["natural_mean_auroc"]["msp"] == pytest.approx(70.0)
    assert r["sanity_sets"] == ["gaussian", "uniform", "digits"]
    sanity = sum(r["sets"][k]["msp"]["auroc"] for k in r["sanity_sets"]) / 3
    assert r["mean_auroc"]["msp"] == pytest.approx(sanity)  # the folder is not averaged with the noise


def test_folder_sets_are_sampled_across_the_sorted_paths(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    from mixcut.eval.ood import folder_images

    for c in range(4):
        (tmp_path / f"c{c}").mkdir()
        for i in range(3):
            Image.new("RGB", (4, 4), (50 * c, 0, 0)).save(tmp_path / f"c{c}" / f"{i}.png")
    imgs = folder_images(tmp_path, 4, 4, SimpleNamespace(interpolation="bilinear", crop_pct=1.0), num_workers=0)
    assert sorted(imgs[:, 0, 0, 0].tolist()) == [0, 50, 100, 150]  # one of every class, not the first class's


def test_gaussian_noise_has_unit_variance_before_clipping():
    x = noise_images("gaussian", 200, 16).float() / 255
    # N(0.5, 1) clipped to [0, 1]: P(x = 0) = P(x = 1) = Phi(-0.5) = 0.3085
    assert (x == 0).float().mean() == pytest.approx(0.3085, abs=0.01)
    assert (x == 1).float().mean() == pytest.approx(0.3085, abs=0.01)
