"""FGSM/PGD and occlusion on a tiny trained linear classifier: known answers at the ends of each curve."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mixcut.eval.adversarial import adversarial_accuracy, fgsm, pgd
from mixcut.eval.occlusion import curve_summary, informative_sizes, occlude, occlusion_curve, square_mask

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


class Batches:
    """The `epoch(0)` interface of mixcut's batch streams over fixed normalised tensors."""

    def __init__(self, x, y, batch_size=64):
        self.x, self.y, self.batch_size = x, y, batch_size

    def epoch(self, epoch):
        for i in range(0, len(self.y), self.batch_size):
            yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]


@pytest.fixture(scope="module")
def trained():
    """Two classes of 8x8 images told apart by the brightness of the left half; a linear model fit to them."""
    torch.manual_seed(0)
    n = 400
    y = torch.arange(n) % 2
    x = 0.3 + 0.4 * torch.rand(n, 3, 8, 8)
    x[:, :, :, :4] += (y.float() * 2 - 1).view(-1, 1, 1, 1) * 0.15
    x = x.clamp(0, 1)
    xn = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xn), y).backward()
        opt.step()
    model.eval()
    return model, Batches(xn, y), (model(xn).argmax(1) == y).float().mean().item() * 100


def test_fgsm_eps0_is_clean_and_accuracy_never_rises(trained):
    model, batches, clean = trained
    assert clean > 95
    eps = [0.0, 0.01, 0.02, 0.05, 0.1, 0.3]
    r = adversarial_accuracy(model, batches, MEAN, STD, eps, attacks=("fgsm", "pgd"), pgd_steps=3)
    fg = list(r["fgsm"].values())
    assert fg[0] == pytest.approx(clean)
    assert list(r["pgd"].values())[0] == pytest.approx(clean)
    assert all(b <= a for a, b in zip(fg, fg[1:])), fg
    assert fg[-1] < 20 and r["n"] == 400  # a large step defeats a linear model


def test_attacks_stay_in_the_ball_and_in_range():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, y = torch.rand(5, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    for adv in (fgsm(model, x, y, 0.1), pgd(model, x, y, 0.1, steps=4, generator=torch.Generator().manual_seed(0))):
        assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_bad_epsilon_is_rejected(trained):
    model, batches, _ = trained
    with pytest.raises(ValueError, match="pixel units"):
        adversarial_accuracy(model, batches, MEAN, STD, [8.0])


def test_occlusion_ends_of_the_curve(trained):
    model, batches, clean = trained
    r = occlusion_curve(model, batches, MEAN, STD, sizes=[0, 112, 224])
    assert r["hole"]["0"] == pytest.approx(clean)  # no hole: the clean image
    assert r["border"]["224"] == pytest.approx(clean)  # the kept square is the whole image
    assert r["hole"]["224"] in (0.0, 50.0, 100.0)  # all black: one prediction for every image


def test_occlude_masks():
    assert square_mask(8, 8, 4).sum() == 16 and square_mask(8, 8, 4)[2:6, 2:6].all()
    x = torch.ones(1, 2, 8, 8)
    hole, border = occlude(x, 4, "hole", 0.0), occlude(x, 4, "border", 0.0)
    assert hole.sum() == 2 * (64 - 16) and border.sum() == 2 * 16
    assert torch.equal(occlude(x, 0, "hole", 0.0), x)


def test_occlusion_summary_excludes_the_clean_and_the_all_black_sizes(trained):
    model, batches, clean = trained
    r = occlusion_curve(model, batches, MEAN, STD, sizes=[0, 32, 112, 192, 224])
    assert r["informative_sizes"] == [32, 112, 192]
    for mode in ("hole", "border"):
        assert r["summary"][mode] == pytest.approx(sum(r[mode][s] for s in ("32", "112", "192")) / 3)
    # made-up curves: the trivial ends (clean 90, black 10) do not move the summary
    curve = {"0": 90.0, "32": 60.0, "64": 40.0, "224": 10.0}
    assert curve_summary(curve) == pytest.approx(50.0)
    assert informative_sizes([0, 16, 32, 224], image_size=4) == [32]  # 16 on the 224 scale is 0 px of a 4-px image
