"""Behaviour of the mixers in `mixcut.mix` on CPU: targets, pixels, modes, pairing, state, errors.

Most tests make ``x`` encode sample identity (``x[b]`` is the constant image
``b``), so that every output pixel says which sample it came from and CutMix
boxes and kept shares can be counted exactly.
"""

from __future__ import annotations

import io

import pytest
import torch

from mixcut.mix import MIXERS, MODES, CutMix, MixChoice, Mixup, NoMix, create_mixer
from mixcut.mix import functional as F

K = 10  # classes
NAMES = ("none", "mixup", "cutmix", "deit")
PIXEL_NAMES = ("mixup", "cutmix", "deit")
DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.uint8)


# ------------------------------------------------------------------ helpers
def identity_images(n: int, h: int = 13, w: int = 18, c: int = 3, dtype=torch.float32) -> torch.Tensor:
    """``x[b]`` is the constant image ``b`` (fits uint8 for n <= 256)."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, c, h, w).to(dtype).contiguous()


def random_images(n: int, h: int = 8, w: int = 8, c: int = 3, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h, w, generator=g)
    return (x * 255).round().to(dtype) if dtype == torch.uint8 else x.to(dtype)


def labels(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, K, (n,), generator=torch.Generator().manual_seed(seed))


def build(name: str, **options):
    options.setdefault("num_classes", K)
    options.setdefault("seed", 0)
    return create_mixer(name, **options)


def kept_mask(out: torch.Tensor) -> torch.Tensor:
    """(B, H, W) True where an identity-encoded output still shows its own sample."""
    own = torch.arange(out.shape[0], dtype=torch.float32).view(-1, 1, 1)
    return out[:, 0].float() == own


def box_of(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """Bounding rows/cols (y0, y1, x0, x1) of the True pixels of a (H, W) mask, or None."""
    if not mask.any():
        return None
    rows = mask.any(1).nonzero().flatten()
    cols = mask.any(0).nonzero().flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def expected_targets(y: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor, ls: float) -> torch.Tensor:
    one_hot = torch.nn.functional.one_hot(y, K).float() * (1 - ls) + ls / K
    return lam.view(-1, 1) * one_hot + (1 - lam.view(-1, 1)) * one_hot[partner]


# ----------------------------------------------------------- soft targets
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("ls", (0.0, 0.1, 0.3))
def test_soft_targets_and_layout(name, mode, dtype, ls):
    n = 8
    y = labels(n)
    mixer = build(name, mode=mode, label_smoothing=ls)
    for memory_format in (torch.contiguous_format, torch.channels_last, torch.channels_last):
        # deit: several calls so both members run in batch mode
        x = random_images(n, 9, 11, dtype=dtype).contiguous(memory_format=memory_format)
        r = mixer.mix(x, y)
        assert r.x.shape == x.shape and r.x.dtype == x.dtype and r.x.device == x.device
        assert r.x.is_contiguous(memory_format=memory_format)
        assert r.target.shape == (n, K) and r.target.dtype == torch.float32
        assert (r.target >= 0).all()
        torch.testing.assert_close(r.target.sum(1), torch.ones(n), atol=1e-6, rtol=0)
        assert r.lam.shape == (n,) and r.lam.dtype == torch.float32 and ((r.lam >= 0) & (r.lam <= 1)).all()
        assert r.partner.shape == (n,) and r.partner.dtype == torch.int64
        torch.testing.assert_close(r.target, expected_targets(y, r.lam, r.partner, ls), atol=1e-6, rtol=0)
        if ls > 0:  # smoothing applied exactly once: every class keeps at least ls / K
            assert r.target.min() >= ls / K - 1e-7
        if name != "none":
            assert (r.lam < 1).any()  # it did mix


def test_targets_call_returns_pair():
    x, y = random_images(4), labels(4)
    out, target = build("mixup")(x, y)
    r = build("mixup").mix(x, y)
    assert torch.equal(out, r.x) and torch.equal(target, r.target)


# --------------------------------------------------------------- pixels
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pairing", ("perm", "flip"))
@pytest.mark.parametrize("prob", (1.0, 0.5))
def test_mixup_pixels_float32(mode, pairing, prob):
    x = random_images(9, dtype=torch.float32)
    mixer = Mixup(0.8, mode=mode, pairing=pairing, prob=prob, num_classes=K, seed=3)
    mixed = 0
    for _ in range(6):
        r = mixer.mix(x, labels(9))
        lam = r.lam.view(-1, 1, 1, 1)
        torch.testing.assert_close(r.x, lam * x + (1 - lam) * x[r.partner], atol=1e-6, rtol=1e-6)
        mixed += int((r.lam < 1).sum())
    assert mixed > 0


@pytest.mark.parametrize("mode", MODES)
def test_mixup_pixels_uint8(mode):
    x = random_images(9, dtype=torch.uint8)
    mixer = Mixup(1.0, mode=mode, num_classes=K, seed=4)
    for _ in range(3):
        r = mixer.mix(x, labels(9))
        lam = r.lam.view(-1, 1, 1, 1)
        expected = lam * x.float() + (1 - lam) * x[r.partner].float()
        assert r.x.dtype == torch.uint8
        assert (r.x.float() - expected).abs().max() <= 0.5 + 1e-3  # rounded to nearest


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pairing", ("perm", "flip"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.uint8), ids=str)
def test_cutmix_lam_is_kept_share(mode, pairing, dtype):
    n, h, w = 9, 13, 18  # odd batch, odd and non-square image: clipping and odd box sides
    x = identity_images(n, h, w, dtype=dtype)
    mixer = CutMix(1.0, mode=mode, pairing=pairing, num_classes=K, seed=5)
    touched_border = False
    for _ in range(12):
        r = mixer.mix(x, labels(n))
        own = kept_mask(r.x)
        # every pixel is the sample's own or its partner's
        partner_px = r.x[:, 0].float() == r.partner.float().view(-1, 1, 1)
        assert (own | partner_px).all()
        assert (r.x == r.x[:, :1]).all()  # all channels pasted together
        counts = own.sum((1, 2))
        assert torch.equal(torch.round(r.lam.double() * h * w).long(), counts)
        torch.testing.assert_close(r.lam, counts.float() / (h * w), atol=1e-6, rtol=0)
        for i in range(n):
            box = box_of(~own[i])
            if box is not None:
                y0, y1, x0, x1 = box
                assert (y1 - y0) * (x1 - x0) == int((~own[i]).sum())  # the pasted region is a rectangle
                touched_border |= y0 == 0 or x0 == 0 or y1 == h or x1 == w
    assert touched_border  # clipped boxes were among the draws


@pytest.mark.parametrize("mode", MODES)
def test_cutmix_minmax_boxes(mode):
    n, h, w, lo, hi = 16, 20, 30, 0.2, 0.6
    x = identity_images(n, h, w)
    mixer = CutMix(minmax=(lo, hi), mode=mode, num_classes=K, seed=6)
    for _ in range(10):
        r = mixer.mix(x, labels(n))
        own = kept_mask(r.x)
        torch.testing.assert_close(r.lam, own.float().mean((1, 2)), atol=1e-6, rtol=0)
        for i in range(n):
            y0, y1, x0, x1 = box_of(~own[i])
            assert int(h * lo) <= y1 - y0 <= int(h * hi)
            assert int(w * lo) <= x1 - x0 <= int(w * hi)
            assert (y1 - y0) * (x1 - x0) == int((~own[i]).sum())


def test_minmax_boxes_extremes_stay_inside():
    h, w, lo, hi = 20, 30, 0.2, 0.9
    top = 1 - 2**-24
    u = torch.tensor([[0.0, 0.0, 0.0, 0.0], [top, top, top, top], [top, 0.0, top, top], [0.5, 0.5, 0.5, 0.5]])
    boxes = F.minmax_boxes(h, w, (lo, hi), u)
    y0, y1, x0, x1 = boxes.unbind(1)
    assert (y0 >= 0).all() and (y1 <= h).all() and (x0 >= 0).all() and (x1 <= w).all()
    assert ((y1 - y0 >= int(h * lo)) & (y1 - y0 <= int(h * hi))).all()
    assert ((x1 - x0 >= int(w * lo)) & (x1 - x0 <= int(w * hi))).all()
    assert boxes[1].tolist()[1] == h and boxes[1].tolist()[3] == w  # the last origin is reachable


@pytest.mark.parametrize("mode", MODES)
def test_cutmix_uncorrected_lam_is_the_beta_draw(mode):
    n, h, w = 32, 13, 18
    x = identity_images(n, h, w)
    differs = not_quantized = 0
    for seed in range(5):
        # a fresh pair per seed: the first draws of CutMix and Mixup agree, later ones not (CutMix also draws centres)
        r = CutMix(1.0, correct_lam=False, mode=mode, num_classes=K, seed=seed).mix(x, labels(n))
        lam_mixup = Mixup(1.0, mode=mode, num_classes=K, seed=seed).mix(x, labels(n)).lam
        assert torch.equal(r.lam, lam_mixup)  # the Beta draw a Mixup with the same seed makes
        share = kept_mask(r.x).float().mean((1, 2))
        differs += int((share - r.lam).abs().gt(1e-3).sum())
        area = r.lam.double() * h * w
        not_quantized += int((area - area.round()).abs().gt(1e-3).sum())
    assert differs > 0 and not_quantized > 0


def test_deit_elem_each_sample_is_mixup_or_cutmix():
    n, h, w = 64, 12, 12
    x = identity_images(n, h, w)
    mixer = build("deit", mode="elem", switch_prob=0.5, seed=8)
    r = mixer.mix(x, labels(n))
    own = kept_mask(r.x)
    partner_px = r.x[:, 0] == r.partner.float().view(-1, 1, 1)
    is_cut = (own | partner_px).all(dim=(1, 2))
    assert 0 < int(is_cut.sum()) < n
    share = own.float().mean((1, 2))
    torch.testing.assert_close(r.lam[is_cut], share[is_cut], atol=1e-6, rtol=0)
    lam = r.lam.view(-1, 1, 1, 1)
    blended = lam * x + (1 - lam) * x[r.partner]
    torch.testing.assert_close(r.x[~is_cut], blended[~is_cut], atol=1e-4, rtol=1e-6)


# ------------------------------------------------------------ prob and modes
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", MODES)
def test_prob_zero_returns_inputs(name, mode):
    x, y = random_images(6), labels(6)
    ref = x.clone()
    options = {} if name == "none" else {"prob": 0.0}
    r = build(name, mode=mode, label_smoothing=0.1, **options).mix(x, y)
    assert torch.equal(r.x, ref)
    torch.testing.assert_close(r.target, F.smooth_one_hot(y, K, 0.1), atol=0, rtol=0)
    assert torch.equal(r.target.argmax(1), y)
    assert torch.equal(r.lam, torch.ones(6)) and torch.equal(r.partner, torch.arange(6))


@pytest.mark.parametrize("name", PIXEL_NAMES)
@pytest.mark.parametrize("pairing", ("perm", "flip"))
@pytest.mark.parametrize("n", (8, 7))
def test_batch_mode_shares_one_lambda(name, pairing, n):
    x = identity_images(n)
    mixer = build(name, mode="batch", pairing=pairing, seed=9)
    for _ in range(6):
        r = mixer.mix(x, labels(n))
        self_paired = r.partner == torch.arange(n)
        assert torch.equal(r.lam[self_paired], torch.ones(int(self_paired.sum())))
        others = r.lam[~self_paired]
        assert (others == others[0]).all()
        if pairing == "perm":
            assert not self_paired.any()
        else:
            assert int(self_paired.sum()) == n % 2
        if name == "cutmix":  # one box for the whole batch
            own = kept_mask(r.x)[~self_paired]
            assert (own == own[:1]).all()


@pytest.mark.parametrize("name", PIXEL_NAMES)
@pytest.mark.parametrize("pairing", ("perm", "flip"))
@pytest.mark.parametrize("n", (10, 9))
@pytest.mark.parametrize("prob", (1.0, 0.5))
def test_pair_mode_partners_share_lambda_and_box(name, pairing, n, prob):
    x = identity_images(n, 15, 15)
    mixer = build(name, mode="pair", pairing=pairing, prob=prob, seed=10)
    gated = 0
    for _ in range(8):
        r = mixer.mix(x, labels(n))
        idx = torch.arange(n)
        assert torch.equal(r.partner[r.partner], idx)  # an involution
        assert int((r.partner == idx).sum()) == n % 2
        assert torch.equal(r.lam, r.lam[r.partner])
        own = kept_mask(r.x)
        is_cut = (own | (r.x[:, 0] == r.partner.float().view(-1, 1, 1))).all(dim=(1, 2))
        assert torch.equal(is_cut, is_cut[r.partner])  # deit: both partners use the same member
        assert torch.equal(own[is_cut], own[r.partner][is_cut])  # same box coordinates on both partners
        mixed = r.lam < 1
        assert torch.equal(mixed, mixed[r.partner])  # pairs are gated together
        gated += int(((r.lam == 1) & (r.partner != idx)).sum())
    if prob < 1:
        assert gated >= 4
    elif name == "mixup":  # a Mixup lam is never exactly one, so lam == 1 only when gated off
        assert gated == 0


@pytest.mark.parametrize("name", PIXEL_NAMES)
def test_elem_mode_independent_lambdas(name):
    n = 64
    x = identity_images(n, 16, 16)
    r = build(name, mode="elem", seed=11).mix(x, labels(n))
    if name == "mixup":
        assert r.lam.unique().numel() == n
    else:  # box shares are quantized; still far more than one value
        assert r.lam.unique().numel() > n // 4
    assert (r.lam != r.lam[r.partner]).float().mean() > 0.8
    assert torch.corrcoef(torch.stack([r.lam, r.lam[r.partner]]))[0, 1].abs() < 0.5


@pytest.mark.parametrize("mode", ("batch", "elem"))
@pytest.mark.parametrize("n", (1, 2, 5, 16))
def test_perm_pairing_is_one_cycle(mode, n):
    mixer = Mixup(mode=mode, num_classes=K, seed=12)
    for _ in range(3):
        partner = mixer.mix(random_images(n), labels(n)).partner
        assert sorted(partner.tolist()) == list(range(n))
        seen, i = set(), 0
        while i not in seen:
            seen.add(i)
            i = int(partner[i])
        assert len(seen) == n  # a single cycle through every sample
        if n > 1:
            assert (partner != torch.arange(n)).all()


@pytest.mark.parametrize("mode", MODES)
def test_flip_pairing(mode):
    r = Mixup(mode=mode, pairing="flip", num_classes=K, seed=0).mix(random_images(6), labels(6))
    assert r.partner.tolist() == [5, 4, 3, 2, 1, 0]


# ------------------------------------------------------- seeds and state
@pytest.mark.parametrize("name", PIXEL_NAMES)
@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_output(name, mode):
    x, y = random_images(8), labels(8)
    a, b, c = build(name, mode=mode, seed=21), build(name, mode=mode, seed=21), build(name, mode=mode, seed=22)
    for _ in range(3):
        ra, rb, rc = a.mix(x, y), b.mix(x, y), c.mix(x, y)
        for u, v in zip(ra, rb):
            assert torch.equal(u, v)
    assert not torch.equal(ra.x, rc.x)


def test_seed_none_follows_torch_manual_seed():
    x, y = random_images(8), labels(8)
    torch.manual_seed(123)
    a = Mixup(num_classes=K)
    torch.manual_seed(123)
    b = Mixup(num_classes=K)
    assert a.seed == b.seed and torch.equal(a.mix(x, y).x, b.mix(x, y).x)


@pytest.mark.parametrize("name", PIXEL_NAMES)
@pytest.mark.parametrize("mode", MODES)
def test_state_dict_roundtrip(name, mode):
    x, y = random_images(8), labels(8)
    mixer = build(name, mode=mode, seed=31, prob=0.8)
    mixer.mix(x, y)
    mixer.set_epoch(3)
    buf = io.BytesIO()
    torch.save(mixer.state_dict(), buf)
    expected = [mixer.mix(x, y) for _ in range(4)]
    buf.seek(0)
    restored = build(name, mode=mode, seed=999, prob=0.8)
    restored.load_state_dict(torch.load(buf, weights_only=True))
    assert restored.epoch == 3 and restored.seed == 31
    for want in expected:
        got = restored.mix(x, y)
        for u, v in zip(got, want):
            assert torch.equal(u, v)
    # a state saved before any draw (pending states) also round-trips
    fresh = build(name, mode=mode, seed=999, prob=0.8)
    fresh.load_state_dict(restored.state_dict())
    again = build(name, mode=mode, seed=999, prob=0.8)
    again.load_state_dict(fresh.state_dict())
    assert torch.equal(fresh.mix(x, y).x, again.mix(x, y).x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", (torch.float32, torch.uint8), ids=str)
def test_input_untouched_unless_inplace(name, mode, dtype):
    x = random_images(8, dtype=dtype)
    ref = x.clone()
    mixer = build(name, mode=mode)
    for _ in range(3):
        mixer.mix(x, labels(8))
    assert torch.equal(x, ref)


@pytest.mark.parametrize("name", PIXEL_NAMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", (torch.float32, torch.uint8), ids=str)
def test_inplace_overwrites_with_same_result(name, mode, dtype):
    x = random_images(8, dtype=dtype)
    ref = x.clone()
    r_copy = build(name, mode=mode, seed=41).mix(x, labels(8))
    r_inplace = build(name, mode=mode, seed=41, inplace=True).mix(x, labels(8))
    assert r_inplace.x.data_ptr() == x.data_ptr()  # written into the caller's batch
    assert not torch.equal(x, ref)
    for u, v in zip(r_inplace, r_copy):
        assert torch.equal(u, v)


# ----------------------------------------------- odd batches and soft targets
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pairing", ("perm", "flip"))
def test_batch_of_one(name, mode, pairing):
    x, y = random_images(1), labels(1)
    r = build(name, mode=mode, pairing=pairing, label_smoothing=0.1).mix(x, y)
    assert torch.equal(r.x, x) and torch.equal(r.lam, torch.ones(1)) and r.partner.tolist() == [0]
    torch.testing.assert_close(r.target, F.smooth_one_hot(y, K, 0.1), atol=0, rtol=0)


@pytest.mark.parametrize("name", PIXEL_NAMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", (3, 5, 7))
def test_odd_batches(name, mode, n):
    x = identity_images(n)
    r = build(name, mode=mode).mix(x, labels(n))
    idx = torch.arange(n)
    self_paired = r.partner == idx
    assert int(self_paired.sum()) == (n % 2 if mode == "pair" else 0)
    assert torch.equal(r.x[self_paired], x[self_paired])
    assert (r.lam[~self_paired] < 1).any()
    torch.testing.assert_close(r.target.sum(1), torch.ones(n), atol=1e-6, rtol=0)


@pytest.mark.parametrize("first", PIXEL_NAMES)
@pytest.mark.parametrize("second", ("none", "mixup", "cutmix"))
def test_chaining_soft_targets_is_not_resmoothed(first, second):
    x, y = random_images(8), labels(8)
    x1, t1 = build(first, label_smoothing=0.1, seed=51)(x, y)
    r = build(second, label_smoothing=0.3, seed=52).mix(x1, t1)
    torch.testing.assert_close(r.target, torch.lerp(t1[r.partner], t1, r.lam.view(-1, 1)), atol=1e-6, rtol=0)
    torch.testing.assert_close(r.target.sum(1), torch.ones(8), atol=1e-6, rtol=0)
    if second == "none":
        assert torch.equal(r.target, t1)


def test_soft_targets_with_wrong_class_count_raise():
    with pytest.raises(ValueError, match="soft targets have 7 classes but num_classes=10"):
        build("mixup").mix(random_images(4), torch.full((4, 7), 1 / 7))


def test_class_indices_need_num_classes():
    with pytest.raises(ValueError, match="num_classes is required"):
        Mixup().mix(random_images(4), labels(4))


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Mixup(mode="batches"), r"unknown mix mode 'batches'; choose one of batch, pair, elem"),
        (lambda: CutMix(pairing="roll"), r"unknown pairing 'roll'; choose one of perm, flip"),
        (lambda: Mixup(alpha=0.0), r"Mixup alpha must be > 0; got 0.0"),
        (lambda: Mixup(alpha=-1), r"Mixup alpha must be > 0; got -1.0"),
        (lambda: CutMix(alpha=0), r"CutMix alpha must be > 0"),
        (lambda: Mixup(prob=1.5), r"prob must be a probability in \[0, 1\]; got 1.5"),
        (lambda: CutMix(prob=-0.1), r"prob must be a probability in \[0, 1\]; got -0.1"),
        (lambda: Mixup(label_smoothing=2), r"label_smoothing must be a probability"),
        (lambda: CutMix(minmax=(0.0, 0.5)), r"CutMix minmax must satisfy low <= high within \(0.0, 1.0\)"),
        (lambda: CutMix(minmax=(0.2, 1.0)), r"CutMix minmax must satisfy .*got \(0.2, 1.0\)"),
        (lambda: CutMix(minmax=(0.8, 0.2)), r"CutMix minmax must satisfy low <= high"),
        (lambda: CutMix(minmax=(0.5,)), r"CutMix minmax must be a pair"),
        (lambda: Mixup(lam_clip=(-0.1, 0.5)), r"lam_clip must satisfy low <= high within \[0.0, 1.0\]"),
        (lambda: Mixup(lam_clip=(0.2, 1.1)), r"lam_clip must satisfy .*got \(0.2, 1.1\)"),
        (lambda: Mixup(lam_clip=(0.7, 0.3)), r"lam_clip must satisfy low <= high"),
        (lambda: Mixup(num_classes=0), r"num_classes must be >= 1"),
        (lambda: create_mixer("mixupp"), r"unknown mixer 'mixupp'; choose one of: .*cutmix.*mixup"),
        (lambda: create_mixer("mixup", switch_prob=0.5), r"mixer 'mixup' does not take option\(s\) switch_prob"),
        (lambda: create_mixer("cutmix", alpha=1.0, minmaxx=(0.2, 0.8)), r"does not take option\(s\) minmaxx"),
        (lambda: create_mixer("deit", switch_prob=1.2), r"switch_prob must be a probability in \[0, 1\]; got 1.2"),
        (lambda: create_mixer("deit", mode="pairs"), r"unknown mix mode 'pairs'"),
        (lambda: create_mixer("none", pairing="x"), r"unknown pairing 'x'"),
        (lambda: MixChoice([]), r"MixChoice needs at least one mixer"),
        (lambda: MixChoice([NoMix()]), r"MixChoice members must be pixel mixers with a plan"),
        (lambda: MixChoice([Mixup(), CutMix()], [0.7, 0.7]), r"MixChoice probs must be 2 non-negative numbers summing to 1"),
    ],
)
def test_construction_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_inputs_raise():
    mixer = build("mixup")
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\)"):
        mixer.mix(torch.zeros(4, 8, 8), labels(4))
    with pytest.raises(ValueError, match="batch sizes differ: 4 images, 3 targets"):
        mixer.mix(random_images(4), labels(3))


def test_registry_builds_every_name():
    for name in ("none", "mixup", "cutmix", "deit"):
        assert name in MIXERS
    assert isinstance(create_mixer("deit", num_classes=K), MixChoice)
    assert isinstance(create_mixer("none", num_classes=K), NoMix)


# ------------------------------------------------------------- lam_clip
@pytest.mark.parametrize("mode", MODES)
def test_lam_clip(mode):
    n, h, w = 256, 16, 16
    x = identity_images(n, h, w, c=1)
    mix = Mixup(0.2, lam_clip=(0.3, 0.7), mode=mode, num_classes=K, seed=61)
    cut = CutMix(0.2, lam_clip=(0.3, 0.7), mode=mode, num_classes=K, seed=61)
    mix_lams, cut_shares = [], []
    for _ in range(20 if mode == "batch" else 2):
        mix_lams.append(mix.mix(x, labels(n)).lam)
        r = cut.mix(x, labels(n))
        cut_shares.append(kept_mask(r.x).float().mean((1, 2)))
        torch.testing.assert_close(r.lam, cut_shares[-1], atol=1e-6, rtol=0)
    lam, share = torch.cat(mix_lams), torch.cat(cut_shares)
    assert ((lam >= 0.3) & (lam <= 0.7)).all()
    assert ((lam == 0.3) | (lam == 0.7)).any()  # alpha=0.2 puts most draws outside: the clip did work
    assert (share >= 0.3).all()


def test_choice_lam_clip_reaches_members():
    n = 256
    x = identity_images(n, 16, 16, c=1)
    mixer = build("deit", mode="elem", mixup_alpha=0.2, cutmix_alpha=0.2, lam_clip=(0.3, 0.7), seed=62)
    r = mixer.mix(x, labels(n))
    own = kept_mask(r.x)
    is_cut = (own | (r.x[:, 0] == r.partner.float().view(-1, 1, 1))).all(dim=(1, 2))
    assert 0 < int(is_cut.sum()) < n
    mix_lam = r.lam[~is_cut]
    assert ((mix_lam >= 0.3) & (mix_lam <= 0.7)).all() and ((mix_lam == 0.3) | (mix_lam == 0.7)).any()
    assert (r.lam[is_cut] >= 0.3).all()  # the box never takes more than 1 - 0.3 of the image


# ------------------------------------------------------------- off epoch
@pytest.mark.parametrize("name", PIXEL_NAMES)
@pytest.mark.parametrize("mode", MODES)
def test_off_epoch(name, mode):
    x, y = random_images(8), labels(8)
    mixer = build(name, mode=mode, off_epoch=5, label_smoothing=0.1, inplace=True)
    mixer.set_epoch(4)
    assert (mixer.mix(x.clone(), y).lam < 1).any()
    mixer.set_epoch(5)
    ref = x.clone()
    r = mixer.mix(x, y)
    assert torch.equal(r.x, ref) and torch.equal(x, ref)
    torch.testing.assert_close(r.target, F.smooth_one_hot(y, K, 0.1), atol=0, rtol=0)
    assert torch.equal(r.lam, torch.ones(8))
    mixer.set_epoch(9)
    assert torch.equal(mixer.mix(x, y).x, ref)


# ------------------------------------------------------------ benchmark
def test_bench_script_runs(tmp_path):
    """scripts/bench_mix.py at a toy size: every registered pixel mixer shows up, timm and the floors are timed."""
    import json

    from _trainer_utils import load_script

    bench = load_script("bench_mix")
    out = tmp_path / "bench.json"
    bench.main(
        [
            "--batch",
            "4",
            "--size",
            "16",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--no-step",
            "--device",
            "cpu",
            "--dtypes",
            "float32",
            "--json",
            str(out),
        ]
    )
    rows = json.loads(out.read_text())["rows"]
    timed = {(r["method"], r["mode"]) for r in rows if r["ms"] is not None}
    for name in ("mixup", "cutmix", "deit"):
        for mode in MODES:
            assert (name, mode) in timed and (f"timm Mixup[{TIMM_KIND[name]}]", mode) in timed
    assert ("copy_ (preallocated)", "-") in timed and ("x.clone()", "-") in timed
    names, skipped = bench.our_mixers(K)
    assert set(names) | set(skipped) == set(MIXERS) and "none" in names
    assert all((name, "batch") in {(r["method"], r["mode"]) for r in rows} for name in names)


TIMM_KIND = {"mixup": "mixup", "cutmix": "cutmix", "deit": "switch"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.uint8, torch.int16])
@pytest.mark.parametrize("mask_shape", [(6, 1, 5, 7), (6, 1, 1, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_select_equals_torch_where_bit_for_bit(dtype, mask_shape, channels_last):
    from mixcut.mix.functional import select

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 3, 5, 7, generator=g) * 200 - (0 if dtype in (torch.uint8,) else 100)).to(dtype)
    src = (torch.rand(6, 3, 5, 7, generator=g) * 200).to(dtype)
    if channels_last:
        x, src = x.contiguous(memory_format=torch.channels_last), src.contiguous(memory_format=torch.channels_last)
    mask = torch.rand(mask_shape, generator=g) > 0.4
    expected = torch.where(mask, x, src)
    x_before, src_before = x.clone(), src.clone()
    got = select(mask, x, src)
    assert got.dtype == dtype and torch.equal(got, expected)
    assert torch.equal(x, x_before) and torch.equal(src, src_before)  # out of place touches nothing
    out = select(mask, x, src.clone(), out=x, overwrite_source=True)  # the render path: in place, scratch source
    assert out.data_ptr() == x.data_ptr() and torch.equal(x, expected)
