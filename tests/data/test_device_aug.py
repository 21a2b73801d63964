"""Batched device augmentation (`mixcut.data.device_aug`): shapes, dtypes, bounds, rates, equivalences."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _trainer_utils import FAST, compose

from mixcut.data import build_data
from mixcut.data import device_aug as A


def coord_images(n: int, h: int, w: int) -> torch.Tensor:
    """uint8 images whose pixels say where they are: channel 0 = row + 1,
    channel 1 = column + 1, channel 2 = sample index % 250 + 1 (0 is padding)."""
    rows = torch.arange(1, h + 1).view(1, h, 1).expand(n, h, w)
    cols = torch.arange(1, w + 1).view(1, 1, w).expand(n, h, w)
    ids = (torch.arange(n) % 250 + 1).view(n, 1, 1).expand(n, h, w)
    return torch.stack([rows, cols, ids], 1).to(torch.uint8).contiguous()


def reference_pad_crop_flip(x, padding, mode, oy, ox, flip):
    """Per-sample loop: pad, slice, flip (the obvious implementation)."""
    out = []
    h, w = x.shape[-2:]
    for b in range(x.shape[0]):
        img = x[b : b + 1].float()
        if padding:
            img = F.pad(img, (padding,) * 4, mode=mode)
            img = img[..., int(oy[b]) : int(oy[b]) + h, int(ox[b]) : int(ox[b]) + w]
        if flip is not None and flip[b]:
            img = img.flip(-1)
        out.append(img)
    return torch.cat(out).to(x.dtype)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
@pytest.mark.parametrize("padding,hflip", [(0, 0.5), (1, 0.0), (4, 0.5), (3, 1.0)])
def test_pad_crop_flip_matches_reference(mode, padding, hflip):
    x = torch.randint(0, 256, (40, 3, 13, 17), dtype=torch.uint8, generator=gen(1))
    g = gen(7)
    oy = torch.randint(0, 2 * padding + 1, (40, 1), generator=g) if padding else None
    ox = torch.randint(0, 2 * padding + 1, (40, 1), generator=g) if padding else None
    flip = torch.rand(40, generator=g) < hflip if hflip > 0 else None
    out = A.pad_crop_flip(x, padding, hflip, gen(7), mode)
    assert out.dtype == torch.uint8 and out.shape == x.shape and out.is_contiguous()
    assert torch.equal(out, reference_pad_crop_flip(x, padding, mode, oy, ox, flip))


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_fused_equals_pad_crop_then_flip(mode):
    """Same random draws, same pixels as the two separate steps."""
    x = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=gen(2))
    g = gen(3)
    two_step = A.random_hflip(A.pad_crop(x, 4, g, mode), 0.5, g)
    assert torch.equal(A.pad_crop_flip(x, 4, 0.5, gen(3), mode), two_step)


def test_pad_crop_translations_stay_within_padding():
    n, h, w, p = 2000, 12, 10, 3
    x = coord_images(n, h, w)
    out = A.pad_crop(x, p, gen(4))
    assert out.shape == x.shape and out.dtype == torch.uint8
    inside = out[:, 0] > 0
    ids = (torch.arange(n) % 250 + 1).view(n, 1, 1).expand(n, h, w).to(torch.uint8)
    assert torch.equal(out[:, 2], torch.where(inside, ids, 0))  # never mixes samples
    assert torch.equal(inside, out[:, 1] > 0)  # padding is zero in every channel
    i = torch.arange(h).view(1, h, 1).expand(n, h, w)
    j = torch.arange(w).view(1, 1, w).expand(n, h, w)
    dy = torch.where(inside, out[:, 0].long() - 1 - i, 0)
    dx = torch.where(inside, out[:, 1].long() - 1 - j, 0)
    seen_dy, seen_dx = set(), set()
    for b in range(n):
        m = inside[b]
        assert m.any()
        ys, xs = dy[b][m].unique(), dx[b][m].unique()
        assert len(ys) == 1 and len(xs) == 1  # one translation per sample
        assert abs(int(ys)) <= p and abs(int(xs)) <= p
        seen_dy.add(int(ys))
        seen_dx.add(int(xs))
        # the visible window is exactly the part of the image the translation keeps
        assert int(m.sum()) == (h - abs(int(ys))) * (w - abs(int(xs)))
    assert seen_dy == set(range(-p, p + 1)) and seen_dx == set(range(-p, p + 1))


def test_reflect_padding_never_reads_outside():
    x = coord_images(500, 9, 9)
    out = A.pad_crop(x, 4, gen(5), "reflect")
    assert (out[:, :2] >= 1).all() and (out[:, :2] <= 9).all()  # always a real pixel, no zeros
    with pytest.raises(ValueError, match="reflect padding"):
        A.pad_crop(x[:, :, :4, :4], 4, gen(5), "reflect")


def _flipped(out: torch.Tensor) -> torch.Tensor:
    """True where a coordinate image runs right-to-left (ignores zero padding)."""
    cols = out[:, 1].float()
    cols = torch.where(cols > 0, cols, float("nan"))
    d = cols[:, :, 1:] - cols[:, :, :-1]
    return torch.nanmean(d.flatten(1), 1) < 0


@pytest.mark.parametrize("prob", [0.5, 0.2])
@pytest.mark.parametrize("how", ["hflip", "fused", "rrc"])
def test_flip_rate_is_binomial(prob, how):
    n = 4000
    x = coord_images(n, 8, 8)
    if how == "hflip":
        out = A.random_hflip(x, prob, gen(6))
    elif how == "fused":
        out = A.pad_crop_flip(x, 2, prob, gen(6))
    else:
        out = A.random_resized_crop(x, 8, (0.3, 1.0), (0.75, 1.333), gen(6), hflip=prob)
    k = int(_flipped(out).sum())
    sigma = math.sqrt(n * prob * (1 - prob))
    assert abs(k - n * prob) < 4.5 * sigma, (k, n * prob)
    assert int(_flipped(A.pad_crop_flip(x, 2, 0.0, gen(6))).sum()) == 0


def test_rrc_boxes_inside_and_within_scale():
    g = gen(8)
    cx, cy, cw, ch = A.rrc_boxes(20000, (0.08, 1.0), (3 / 4, 4 / 3), g, "cpu")
    eps = 1e-6
    assert (cw > 0).all() and (ch > 0).all() and (cw <= 1).all() and (ch <= 1).all()
    assert (cx.abs() + cw <= 1 + eps).all() and (cy.abs() + ch <= 1 + eps).all()
    area = cw * ch
    assert (area <= 1 + eps).all() and area.min() >= 0.08 * 0.75 - eps  # shrunk-to-fit boxes lose at most the ratio's excess
    unclamped = (cw < 1) & (ch < 1)
    assert (area[unclamped] >= 0.08 - eps).all()


def test_rrc_output_shape_dtype_and_samples_inside():
    n, h, w = 300, 20, 24
    x = coord_images(n, h, w)
    out = A.random_resized_crop(x, 16, (0.08, 1.0), (3 / 4, 4 / 3), gen(9), hflip=0.5)
    assert out.shape == (n, 3, 16, 16) and out.dtype == torch.float32
    eps = 1e-3
    assert (out[:, 0] >= 1 - eps).all() and (out[:, 0] <= h + eps).all()
    assert (out[:, 1] >= 1 - eps).all() and (out[:, 1] <= w + eps).all()
    ids = (torch.arange(n) % 250 + 1).float().view(n, 1, 1)
    assert torch.allclose(out[:, 2], ids.expand(n, 16, 16))  # no sample bleeds into another


def test_rrc_fused_flip_equals_flip_after():
    x = torch.randint(0, 256, (32, 3, 20, 20), dtype=torch.uint8, generator=gen(10))
    g = gen(11)
    after = A.random_hflip(A.random_resized_crop(x, 12, (0.2, 1.0), (0.75, 1.33), g), 0.5, g)
    fused = A.random_resized_crop(x, 12, (0.2, 1.0), (0.75, 1.33), gen(11), hflip=0.5)
    assert torch.equal(after, fused)


def test_normalize_matches_formula():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8, generator=gen(12))
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    for cl in (False, True):
        out = A.Normalize(mean, std, "cpu", channels_last=cl)(x)
        ref = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        assert out.dtype == torch.float32 and torch.allclose(out, ref, atol=1e-5)
        assert out.is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)


@pytest.mark.parametrize("aug", ["cifar", "none", "imagenet_rrc"])
def test_device_batches_shapes_and_reproducibility(aug):
    overrides = FAST + ["trainer.batch_size=16"]
    if aug == "imagenet_rrc":
        overrides += ["aug=none", "aug.train_crop=rrc", "aug.hflip=0.5"]
    else:
        overrides += [f"aug={aug}"]
    cfg = compose(overrides)
    data = build_data(cfg, torch.device("cpu"))
    first = list(data.train.epoch(1))
    again = list(data.train.epoch(1, start=2))
    assert len(first) == len(data.train)
    for (x, y), (x2, y2) in zip(first[2:], again):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    x, y = first[0]
    assert x.shape == (16, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.long
    other = next(iter(data.train.epoch(2)))[0]
    assert not torch.equal(x, other)


def test_vectorised_worker_seeds_equal_mix_seed():
    """The worker path's per-sample seeds, computed for a whole epoch at once, are `mix_seed`'s."""
    import numpy as np

    from mixcut.data.sampling import SALT_SAMPLE_AUGMENT, mix_seed, mix_seeds

    positions = np.array([0, 1, 7, 49_999, 2**40])
    for seed, epoch in ((0, 0), (7, 3), (-5, 1), (2**62, 11)):
        assert mix_seeds((seed, epoch), positions, (SALT_SAMPLE_AUGMENT,)).tolist() == [
            mix_seed(seed, epoch, int(p), SALT_SAMPLE_AUGMENT) for p in positions
        ]


def _flips_seen(data, epoch: int) -> dict[int, bool]:
    """Which images (by index) an epoch shows mirrored (aug.padding=0: the output is the image or its mirror)."""
    stream = data.train
    idx, _ = stream.order(epoch)
    seen = {}
    for (x, _), sl in zip(stream.epoch(epoch), stream.slices(len(idx))):
        for i, img in zip(idx[sl].tolist(), x):
            plain = stream.normalize(stream.images[i : i + 1])[0]
            assert torch.equal(img, plain) or torch.equal(img, plain.flip(-1))
            seen[i] = torch.equal(img, plain.flip(-1)) and not torch.equal(plain, plain.flip(-1))
    return seen


def test_alternating_flip_mirrors_every_image_on_alternate_epochs():
    cfg = compose(FAST + ["trainer.batch_size=16", "aug=airbench", "aug.padding=0", "data.cache=device"])
    data = build_data(cfg, torch.device("cpu"))
    e0, e1, e2 = (_flips_seen(data, e) for e in (0, 1, 2))
    assert set(e0) == set(e1) == set(e2) and len(e0) == 96
    assert all(e0[i] != e1[i] and e0[i] == e2[i] for i in e0)  # each image alternates
    assert 25 <= sum(e0.values()) <= 71  # the first epoch's coin is fair (binomial 96, 1/2: 6 sigma)
    again = build_data(cfg, torch.device("cpu"))
    assert _flips_seen(again, 0) == e0  # a pure function of (seed, index): a resume sees the same
    other = build_data(compose(FAST + ["trainer.batch_size=16", "aug=airbench", "aug.padding=0", "trainer.seed=1"]), "cpu")
    assert _flips_seen(other, 0) != e0


def test_first_flips_are_a_function_of_seed_and_index():
    idx = torch.arange(2000)
    a = A.first_flips(idx, 0, 0.5)
    assert torch.equal(A.first_flips(idx.flip(0), 0, 0.5), a.flip(0))
    assert 900 < int(a.sum()) < 1100 and not torch.equal(A.first_flips(idx, 1, 0.5), a)
    assert not A.first_flips(idx, 0, 0.0).any() and A.first_flips(idx, 0, 1.0).all()
    assert torch.equal(A.alternate_flips(a, 3), ~a) and torch.equal(A.alternate_flips(a, 4), a)


def test_alternating_flip_needs_the_device_cache():
    from mixcut.data.pipelines import BatchAugment
    from mixcut.errors import DataError

    cfg = compose(FAST + ["aug=airbench"])
    with pytest.raises(DataError, match="data.cache=device"):
        BatchAugment(cfg.aug, 16, "cpu", 0, 0)(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), 0, 0)
