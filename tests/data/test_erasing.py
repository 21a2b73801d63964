"""Vectorised random erasing against timm's per-sample RandomErasing: the same distribution
of erased samples, box sizes, positions and fills (statistics over many samples), and a
batch written without a Python loop over its samples."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mixcut.data.erasing import RandomErasing

H, W = 20, 40  # not square: the fit test (h < H, w < W) matters for one side more than the other
N = 12000


def timm_random_erasing():
    """timm's RandomErasing class, loaded from its file alone (it imports only math, random and
    torch): importing ``timm`` itself loads every model and takes seconds."""
    import importlib.util
    from pathlib import Path

    root = Path(importlib.util.find_spec("timm").origin).parent
    spec = importlib.util.spec_from_file_location("timm_random_erasing", root / "data" / "random_erasing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RandomErasing


def timm_erased(prob: float, mode: str, count: int, n: int = N) -> torch.Tensor:
    """``n`` ones images through timm's RandomErasing (Python's global ``random``, seeded, restored)."""
    TimmErasing = timm_random_erasing()
    state = random.getstate()
    random.seed(1234)
    torch.manual_seed(1234)
    try:
        x = torch.ones(n, 3, H, W)
        return TimmErasing(prob, mode=mode, max_count=count, device="cpu")(x)
    finally:
        random.setstate(state)


def ours_erased(prob: float, mode: str, count: int, n: int = N) -> torch.Tensor:
    return RandomErasing(prob, mode=mode, max_count=count)(torch.ones(n, 3, H, W), torch.Generator().manual_seed(99))


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (works for discrete values too)."""
    grid = np.union1d(a, b)
    cdf_a = np.searchsorted(np.sort(a), grid, "right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, "right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def single_boxes(erased: torch.Tensor) -> dict[str, np.ndarray]:
    """Per erased sample (one box each): top, left, height, width of the erased rectangle."""
    mask = erased[:, 0] != 1  # const/pixel: erased pixels differ from 1 (almost surely for pixel)
    hit = mask.flatten(1).any(1)
    rows, cols = mask[hit].any(2), mask[hit].any(1)
    top = rows.float().argmax(1)
    left = cols.float().argmax(1)
    return {
        "rate": hit.float().mean().item(),
        "top": top.numpy(),
        "left": left.numpy(),
        "h": rows.sum(1).numpy(),
        "w": cols.sum(1).numpy(),
    }


# KS critical value at alpha = 0.001 for two samples of ~6000 each: 1.95 * sqrt(2 / 6000) = 0.036
KS_LIMIT = 0.036


def test_one_box_matches_timm():
    theirs, ours = single_boxes(timm_erased(0.5, "const", 1)), single_boxes(ours_erased(0.5, "const", 1))
    assert abs(theirs["rate"] - ours["rate"]) < 0.03 and abs(ours["rate"] - 0.5) < 0.02
    for key in ("h", "w", "top", "left"):
        assert ks(theirs[key], ours[key]) < KS_LIMIT, key
    area = ours["h"] * ours["w"] / (H * W)
    assert area.min() >= 0.015 and area.max() <= 0.36  # [0.02, 1/3] of the image, up to rounding


def test_several_boxes_match_timm():
    # count ~ U{1..3}, each box of area/count, overlapping boxes: compare the erased share per sample
    theirs = (timm_erased(1.0, "const", 3)[:, 0] != 1).flatten(1).float().mean(1).numpy()
    ours = (ours_erased(1.0, "const", 3)[:, 0] != 1).flatten(1).float().mean(1).numpy()
    assert ks(theirs, ours) < 1.95 * (2 / N) ** 0.5
    assert abs(theirs.mean() - ours.mean()) < 0.005


@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
def test_fills_are_timm_s(mode):
    x = ours_erased(1.0, mode, 1, n=2000)
    mask = (x != 1).any(1)  # (N, H, W)
    inside = x.permute(1, 0, 2, 3)[:, mask]  # (C, erased pixels)
    if mode == "const":
        assert torch.all(inside == 0)
    elif mode == "pixel":  # per-pixel standard normal noise
        assert abs(inside.mean()) < 0.02 and abs(inside.std() - 1) < 0.02
    else:  # one standard normal colour per channel and box
        boxes = [x[i][:, mask[i]] for i in range(len(x)) if mask[i].any()]  # (C, pixels) each
        assert all(torch.all(v == v[:, :1]) for v in boxes)
        colours = torch.stack([v[:, 0] for v in boxes])  # (boxes, C)
        assert abs(colours.mean()) < 0.05 and abs(colours.std() - 1) < 0.05
        assert not torch.equal(colours[:, 0], colours[:, 1])  # a colour per channel


def test_later_boxes_cover_earlier_ones_in_rand_mode():
    er = RandomErasing(1.0, mode="rand", max_count=2, min_count=2)
    g = torch.Generator().manual_seed(0)
    x = er(torch.ones(500, 1, H, W), g)
    g.manual_seed(0)
    box, drawn = er.boxes(500, H, W, g, "cpu")
    for i in range(500):
        if drawn[i].all():
            t, left, h, w = box[i, 1].tolist()
            if h and w:
                patch = x[i, 0, t : t + h, left : left + w]
                assert torch.all(patch == patch[0, 0])  # the second box is whole, on top


def test_same_seed_same_boxes_and_probability_zero_is_identity():
    er = RandomErasing(0.25, mode="pixel", max_count=2)
    x = torch.randn(16, 3, H, W)
    a = er(x.clone(), torch.Generator().manual_seed(5))
    b = er(x.clone(), torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(RandomErasing(0.0)(x, torch.Generator()), x)


def test_channels_last_is_kept():
    x = torch.randn(8, 3, H, W).contiguous(memory_format=torch.channels_last)
    for mode in ("const", "rand", "pixel"):
        y = RandomErasing(1.0, mode=mode, max_count=2)(x, torch.Generator().manual_seed(0))
        assert y.is_contiguous(memory_format=torch.channels_last), mode


def test_the_batch_costs_the_same_number_of_kernels_whatever_its_size():
    """No Python loop over samples: the op count does not grow with the batch (timm's does)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    counts = []
    for b in (4, 64):
        with Count() as c:
            RandomErasing(1.0, mode="pixel", max_count=3)(torch.ones(b, 3, H, W), torch.Generator().manual_seed(0))
        counts.append(c.n)
    assert counts[0] == counts[1]


def test_the_stream_erases_the_same_batch_the_same_way_after_a_mid_epoch_resume():
    from _trainer_utils import compose

    from mixcut.data import build_data

    cfg = compose(["aug.re_prob=0.5", "aug.re_count=2", "trainer.batch_size=32", "trainer.device=cpu"])
    stream = build_data(cfg, torch.device("cpu")).train
    full = list(stream.epoch(1))
    resumed = list(stream.epoch(1, start=2))
    assert len(full) > 3 and len(resumed) == len(full) - 2
    for (xa, ya), (xb, yb) in zip(full[2:], resumed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    plain = list(build_data(compose(["trainer.batch_size=32", "trainer.device=cpu"]), torch.device("cpu")).train.epoch(1))
    changed = torch.stack([(a != b).flatten(1).any(1) for (a, _), (b, _) in zip(full, plain)]).float().mean()
    assert 0.3 < changed < 0.7  # about re_prob of the samples erased
