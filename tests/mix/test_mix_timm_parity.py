"""Parity with ``timm.data.Mixup``: same lambda and box in, same images and targets out.

timm draws on numpy's global generator. Each test seeds numpy, runs timm,
replays timm's draws in the same order on a fresh ``RandomState`` with the same
seed, and forces those draws into our mixer (``sample_lam``, ``boxes`` and, for
the switch, ``choose``), configured like timm: ``flip`` pairing, label
smoothing, an even batch. Everything after the draws is our code: pairing, the
box arithmetic of `functional.cutmix_boxes`, the paste or blend, the lambda
correction and the targets.

CutMix images must match exactly. Mixup images match to float32 rounding: we
blend with one fused ``lerp``, timm with two multiplies and an add, so about a
third of the pixels differ in the last bit or two (at most 1.2e-7 on [0, 1) images).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixcut.mix import CutMix, MixChoice, Mixup
from mixcut.mix import functional as F

timm_mixup = pytest.importorskip("timm.data.mixup")

K, LS = 10, 0.1
N, H, W = 8, 21, 26  # even batch (timm needs it); odd, non-square sides
MIXUP_ALPHA, CUTMIX_ALPHA = 0.8, 1.0


def images(dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    x = torch.rand(N, 3, H, W, generator=torch.Generator().manual_seed(seed))
    return (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x


def labels() -> torch.Tensor:
    return torch.randperm(K, generator=torch.Generator().manual_seed(1))[:N]  # distinct labels


def replay(seed: int, mode: str, mixup: bool, cutmix: bool, switch_prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """timm's draws for one call with ``prob=1``, in timm's order: per unit (the
    batch, a pair or a sample) whether CutMix is used, its lambda and its box
    centre (cy, cx) (zeros for Mixup units)."""
    rs = np.random.RandomState(seed)
    if mode == "batch":
        rs.rand()  # the prob gate
        use_cut = (rs.rand() < switch_prob) if mixup and cutmix else cutmix
        lam = rs.beta(CUTMIX_ALPHA, CUTMIX_ALPHA) if use_cut else rs.beta(MIXUP_ALPHA, MIXUP_ALPHA)
        use_cut, lam = np.array([use_cut]), np.array([lam], dtype=np.float64)
    else:
        units = N if mode == "elem" else N // 2
        if mixup and cutmix:
            use_cut = rs.rand(units) < switch_prob
            cut_lam = rs.beta(CUTMIX_ALPHA, CUTMIX_ALPHA, size=units)
            lam = np.where(use_cut, cut_lam, rs.beta(MIXUP_ALPHA, MIXUP_ALPHA, size=units))
        else:
            use_cut = np.full(units, cutmix)
            alpha = CUTMIX_ALPHA if cutmix else MIXUP_ALPHA
            lam = rs.beta(alpha, alpha, size=units)
        gate = rs.rand(units) < 1.0
        lam = np.where(gate, lam.astype(np.float32), np.float32(1.0))
    centres = np.zeros((len(lam), 2), dtype=np.int64)
    for i in range(len(lam)):
        if use_cut[i] and lam[i] != 1.0:
            centres[i] = rs.randint(0, H), rs.randint(0, W)
    return use_cut, lam, centres


def per_sample(values: np.ndarray, mode: str) -> torch.Tensor:
    """Unit values to one value per sample (pair units cover i and N-1-i)."""
    t = torch.from_numpy(np.ascontiguousarray(values))
    return torch.cat([t, t.flip(0)]) if mode == "pair" else t


def force(mixer, lam: torch.Tensor, centres: torch.Tensor | None = None) -> None:
    """Make ``mixer`` use these lambdas (and box centres) instead of drawing them."""
    mixer.sample_lam = lambda draws: lam
    if centres is not None:
        mixer.boxes = lambda lam_, active, h, w, draws: F.cutmix_boxes(lam_, h, w, centres[:, 0], centres[:, 1])


def run_timm(x, y, seed, mode, mixup, cutmix, switch_prob=0.5, correct_lam=True):
    mixer = timm_mixup.Mixup(
        mixup_alpha=MIXUP_ALPHA if mixup else 0.0,
        cutmix_alpha=CUTMIX_ALPHA if cutmix else 0.0,
        prob=1.0,
        switch_prob=switch_prob,
        mode=mode,
        correct_lam=correct_lam,
        label_smoothing=LS,
        num_classes=K,
    )
    np.random.seed(seed)
    return mixer(x.clone(), y)  # timm writes into its input


def run_ours(x, y, seed, mode, mixup, cutmix, switch_prob=0.5, correct_lam=True):
    use_cut, lam, centres = replay(seed, mode, mixup, cutmix, switch_prob)
    lam_t = per_sample(lam, mode)
    centres_t = torch.cat([torch.from_numpy(centres), torch.from_numpy(centres).flip(0)]) if mode == "pair" else None
    centres_t = torch.from_numpy(centres) if centres_t is None else centres_t
    common = dict(mode=mode, pairing="flip", label_smoothing=LS, num_classes=K, seed=0)
    mixup_m = Mixup(MIXUP_ALPHA)
    cutmix_m = CutMix(CUTMIX_ALPHA, correct_lam=correct_lam)
    if mixup and cutmix:
        ours = MixChoice.switch(mixup_m, cutmix_m, switch_prob=switch_prob, **common)
        choice = per_sample(use_cut.astype(np.int64), mode)
        ours.choose = lambda u: choice
        force(mixup_m, lam_t)
        force(cutmix_m, lam_t, centres_t)
    elif cutmix:
        ours = CutMix(CUTMIX_ALPHA, correct_lam=correct_lam, **common)
        force(ours, lam_t, centres_t)
    else:
        ours = Mixup(MIXUP_ALPHA, **common)
        force(ours, lam_t)
    return ours.mix(x, y), use_cut


def is_cut_sample(use_cut: np.ndarray, mode: str) -> torch.Tensor:
    flags = per_sample(use_cut.astype(bool), mode)
    return flags.expand(N) if mode == "batch" else flags


KINDS = {"mixup": (True, False), "cutmix": (False, True), "switch": (True, True)}


@pytest.mark.parametrize("mode", ("batch", "pair", "elem"))
@pytest.mark.parametrize("kind", tuple(KINDS))
@pytest.mark.parametrize("seed", range(4))
def test_matches_timm(mode, kind, seed):
    mixup, cutmix = KINDS[kind]
    x, y = images(seed=seed), labels()
    tx, tt = run_timm(x, y, seed, mode, mixup, cutmix)
    r, use_cut = run_ours(x, y, seed, mode, mixup, cutmix)
    torch.testing.assert_close(r.target, tt, atol=1e-6, rtol=0)
    cut = is_cut_sample(use_cut, mode)
    assert torch.equal(r.x[cut], tx[cut])  # pasted boxes: exact
    torch.testing.assert_close(r.x[~cut], tx[~cut], atol=2.5e-7, rtol=0)  # blends: two float32 ulps below 1
    assert torch.equal(r.x, x) == bool((r.lam == 1).all())  # something was mixed unless every box was empty


@pytest.mark.parametrize("mode", ("batch", "pair", "elem"))
@pytest.mark.parametrize("correct_lam", (True, False))
@pytest.mark.parametrize("dtype", (torch.float32, torch.uint8), ids=str)
@pytest.mark.parametrize("seed", range(3))
def test_cutmix_matches_timm_exactly(mode, correct_lam, dtype, seed):
    x, y = images(dtype, seed=seed + 10), labels()
    tx, tt = run_timm(x, y, seed + 10, mode, False, True, correct_lam=correct_lam)
    r, _ = run_ours(x, y, seed + 10, mode, False, True, correct_lam=correct_lam)
    assert torch.equal(r.x, tx)
    if dtype == torch.uint8 and mode != "batch":
        # timm builds its per-sample lambdas in the images' dtype, so uint8 truncates them to 0 and its
        # targets are wrong; its targets for the same draws on float images are the reference
        _, tt = run_timm(x.float(), y, seed + 10, mode, False, True, correct_lam=correct_lam)
    torch.testing.assert_close(r.target, tt, atol=1e-6, rtol=0)


def test_box_arithmetic_matches_timm_rand_bbox():
    """`cutmix_boxes` against timm's ``rand_bbox`` for the same lambda and centre, odd and even sides."""
    rs = np.random.RandomState(0)
    for h, w in ((21, 26), (32, 32), (7, 5)):
        for _ in range(300):
            lam = rs.beta(1.0, 1.0)
            state = rs.get_state()
            cy, cx = rs.randint(0, h), rs.randint(0, w)
            np.random.set_state(state)
            want = [int(v) for v in timm_mixup.rand_bbox((3, h, w), lam)]
            got = F.cutmix_boxes(torch.tensor([lam], dtype=torch.float64), h, w, torch.tensor([cy]), torch.tensor([cx]))
            assert got[0].tolist() == want, (h, w, lam, cy, cx)


def test_unforced_batch_mode_equals_timm_given_our_draws():
    """Without forcing: feed timm's box helper our own lambda and centre, read back from the output."""
    x, y = images(), labels()
    ours = CutMix(CUTMIX_ALPHA, mode="batch", pairing="flip", label_smoothing=LS, num_classes=K, seed=3)
    seen = 0
    for _ in range(10):
        r = ours.mix(x, y)
        if r.lam[0] == 1:
            continue
        diff = (r.x != x).any(1).any(0)  # pixels that changed in any sample
        rows, cols = diff.any(1).nonzero().flatten(), diff.any(0).nonzero().flatten()
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        expected = x.clone()
        expected[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
        assert torch.equal(r.x, expected)
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (H * W)
        torch.testing.assert_close(r.target, timm_mixup.mixup_target(y, K, lam, LS), atol=1e-6, rtol=0)
        seen += 1
    assert seen >= 5
