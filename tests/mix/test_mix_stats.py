"""Distributions of the mixers' random draws, tested at fixed seeds.

Each test draws enough samples that a wrong distribution (another alpha, a
biased switch, a skewed box centre) is rejected, and uses a significance level
(p > 1e-3) at which the correct one passes for the seeds chosen.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixcut.mix import MODES, CutMix, Mixup, create_mixer

stats = pytest.importorskip("scipy.stats")

K = 10
P_MIN = 1e-3


def identity_images(n: int, h: int, w: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, h, w).contiguous()


def zeros_labels(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.long)


def beta_pit(lam: np.ndarray, alpha: float, seed: int = 0) -> np.ndarray:
    """Probability integral transform of float32 Beta(alpha, alpha) draws, uniform on [0, 1] if they are right.

    float32 cannot tell apart values within 2**-24 of 1, and for small alpha a
    few percent of the mass lies there (Beta(0.2, 0.2): about 2% within 6e-8 of
    one), so the draws are discrete near 1 and a KS test against the continuous
    CDF rejects them for that reason alone. Each draw ``v`` stands for the reals
    that round to it; it maps to a uniform point of that interval's CDF range
    (randomized PIT), which is exactly uniform for correctly rounded draws.
    """
    v = np.asarray(lam, dtype=np.float32)
    v64 = v.astype(np.float64)
    below = np.nextafter(v, np.float32(-1)).astype(np.float64)
    above = np.nextafter(v, np.float32(2)).astype(np.float64)
    top = np.nextafter(np.float32(1), np.float32(0))
    lo = np.where(v64 <= 0, 0.0, (v64 + below) / 2)
    hi = np.where(v >= top, 1.0, (v64 + above) / 2)  # the sampler keeps draws below 1: the top value takes the rest
    dist = stats.beta(alpha, alpha)
    a, b = dist.cdf(lo), dist.cdf(hi)
    return a + np.random.default_rng(seed).random(v.shape) * (b - a)


def elem_lams(mixer, n: int) -> np.ndarray:
    return mixer.mix(torch.zeros(n, 1, 1, 1), zeros_labels(n)).lam.numpy()


# ----------------------------------------------------------------- lambda
@pytest.mark.parametrize("alpha", (0.2, 0.8, 1.0, 2.0))
def test_mixup_lambda_is_beta(alpha):
    lam = elem_lams(Mixup(alpha, mode="elem", num_classes=K, seed=0), 4000)
    assert stats.kstest(beta_pit(lam, alpha), "uniform").pvalue > P_MIN
    # the test has power: a neighbouring alpha is rejected
    assert stats.kstest(beta_pit(lam, alpha * 1.5), "uniform").pvalue < P_MIN


def test_cutmix_uncorrected_lambda_is_beta():
    lam = elem_lams(CutMix(0.8, correct_lam=False, mode="elem", num_classes=K, seed=1), 4000)
    assert stats.kstest(beta_pit(lam, 0.8), "uniform").pvalue > P_MIN


def test_batch_mode_lambda_is_beta():
    mixer = Mixup(0.5, mode="batch", num_classes=K, seed=2)
    x, y = torch.zeros(2, 1, 1, 1), zeros_labels(2)
    lam = np.array([float(mixer.mix(x, y).lam[0]) for _ in range(1500)])
    assert stats.kstest(beta_pit(lam, 0.5), "uniform").pvalue > P_MIN
    assert stats.kstest(beta_pit(lam, 1.0), "uniform").pvalue < P_MIN


def test_pair_mode_lambda_is_beta_per_pair():
    n = 4000
    r = Mixup(2.0, mode="pair", num_classes=K, seed=3).mix(torch.zeros(n, 1, 1, 1), zeros_labels(n))
    lower = r.partner > torch.arange(n)  # one lambda per pair
    lam = r.lam[lower].numpy()
    assert len(lam) == n // 2
    assert stats.kstest(beta_pit(lam, 2.0), "uniform").pvalue > P_MIN


# ------------------------------------------------------------- gating
def binomial_ok(k: int, n: int, p: float) -> bool:
    return stats.binomtest(k, n, p).pvalue > P_MIN


@pytest.mark.parametrize("mode", MODES)
def test_prob_gates_at_rate(mode):
    prob = 0.6
    mixer = Mixup(mode=mode, prob=prob, num_classes=K, seed=4)
    if mode == "batch":
        x, y = torch.zeros(2, 1, 1, 1), zeros_labels(2)
        mixed = [bool(mixer.mix(x, y).lam[0] < 1) for _ in range(1500)]
        k, n = sum(mixed), len(mixed)
    else:
        n_img = 4000
        r = mixer.mix(torch.zeros(n_img, 1, 1, 1), zeros_labels(n_img))
        units = r.partner > torch.arange(n_img) if mode == "pair" else torch.ones(n_img, dtype=torch.bool)
        k, n = int((r.lam[units] < 1).sum()), int(units.sum())
    assert binomial_ok(k, n, prob), (k, n)
    assert not binomial_ok(k, n, prob - 0.05)


# ------------------------------------------------------------ DeiT switch
def chose_cutmix(out: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """Per sample: True when every pixel is its own or its partner's (CutMix), False when blended (Mixup)."""
    own = torch.arange(out.shape[0], dtype=torch.float32).view(-1, 1, 1, 1)
    return ((out == own) | (out == partner.float().view(-1, 1, 1, 1))).flatten(1).all(1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("switch_prob", (0.3, 0.5))
def test_deit_switch_rate(mode, switch_prob):
    mixer = create_mixer("deit", mode=mode, switch_prob=switch_prob, num_classes=K, seed=5)
    if mode == "batch":
        x, y = identity_images(2, 4, 4), zeros_labels(2)
        picks = []
        for _ in range(1500):
            r = mixer.mix(x, y)
            picks.append(bool(chose_cutmix(r.x, r.partner)[0]))
        k, n = sum(picks), len(picks)
    else:
        n_img = 3000
        r = mixer.mix(identity_images(n_img, 4, 4), zeros_labels(n_img))
        cut = chose_cutmix(r.x, r.partner)
        units = r.partner > torch.arange(n_img) if mode == "pair" else torch.ones(n_img, dtype=torch.bool)
        if mode == "pair":
            assert torch.equal(cut, cut[r.partner])
        k, n = int(cut[units].sum()), int(units.sum())
    assert binomial_ok(k, n, switch_prob), (k, n)
    assert not binomial_ok(k, n, switch_prob + 0.08)


# ------------------------------------------------------------ box centres
@pytest.mark.parametrize("mode", ("batch", "elem"))
def test_cutmix_box_centres_are_uniform(mode):
    """With lam pinned at 0.75 the box side is exactly half the image, so at most
    one end is clipped and the centre can be read back from every box. (Pinned
    by overriding the draw: ``lam_clip`` bounds the kept share, which the
    border changes, so it would condition the centres.)"""

    class PinnedCutMix(CutMix):
        def sample_lam(self, draws):
            return torch.full_like(draws.beta(self.alpha), 0.75)

    h, w = 16, 20
    mixer = PinnedCutMix(mode=mode, num_classes=K, seed=6)
    cut_h, cut_w = h // 2, w // 2
    if mode == "batch":
        x, y = identity_images(2, h, w), zeros_labels(2)
        outs = [mixer.mix(x, y).x[:1] for _ in range(1200)]
        out, own_id = torch.cat(outs), torch.zeros(len(outs))
    else:
        n = 2400
        out, own_id = mixer.mix(identity_images(n, h, w), zeros_labels(n)).x, torch.arange(n, dtype=torch.float32)
    pasted = out[:, 0] != own_id.view(-1, 1, 1)
    rows, cols = pasted.any(2), pasted.any(1)
    y0, y1 = rows.float().argmax(1), h - rows.flip(1).float().argmax(1)
    x0, x1 = cols.float().argmax(1), w - cols.flip(1).float().argmax(1)
    assert (pasted.sum((1, 2)) == (y1 - y0) * (x1 - x0)).all()  # rectangles
    cy = torch.where(y0 > 0, y0 + cut_h // 2, y1 - (cut_h + 1) // 2)
    cx = torch.where(x0 > 0, x0 + cut_w // 2, x1 - (cut_w + 1) // 2)
    # unclipped boxes have exactly the nominal side
    assert ((y1 - y0)[(y0 > 0) & (y1 < h)] == cut_h).all() and ((x1 - x0)[(x0 > 0) & (x1 < w)] == cut_w).all()
    for centre, size in ((cy, h), (cx, w)):
        counts = torch.bincount(centre, minlength=size).numpy()
        assert len(counts) == size and counts.min() > 0
        assert stats.chisquare(counts).pvalue > P_MIN
    # and the chi-square test does reject a centre distribution that avoids the border
    skewed = torch.bincount(cy.clamp(2, h - 3), minlength=h).numpy()
    assert stats.chisquare(skewed).pvalue < P_MIN
