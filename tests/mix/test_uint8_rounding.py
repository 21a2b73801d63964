"""uint8 batches: every path rounds ``lerp(source, x, lam)`` half to even in
float32, exactly as the reference formula (timm truncates instead)."""

from __future__ import annotations

import pytest
import torch

from mixcut.mix import MODES, create_mixer
from mixcut.mix import functional as F


def reference(x: torch.Tensor, source: torch.Tensor, weight) -> torch.Tensor:
    w = weight.float() if isinstance(weight, torch.Tensor) else weight
    return torch.lerp(source.float(), x.float(), w).round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("shape", [(5, 3, 9, 7), (64, 3, 40, 40)])
@pytest.mark.parametrize("kind", ["scalar", "per_sample", "map"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_blend_uint8_matches_the_float_reference(shape, kind, channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    src = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    if channels_last:
        x, src = x.contiguous(memory_format=torch.channels_last), src.contiguous(memory_format=torch.channels_last)
    b, _, h, w = shape
    lams = torch.tensor([0.0, 0.5, 0.25, 0.75, 1.0, 0.3712, 0.999, 1e-4])
    weights = {
        "scalar": [float(v) for v in lams],
        "per_sample": [torch.rand(b, 1, 1, 1, generator=g), lams.repeat(b)[:b].view(b, 1, 1, 1)],
        "map": [torch.rand(b, 1, h, w, generator=g), (torch.rand(b, 1, h, w, generator=g) * 4).round() / 4],
    }[kind]
    for weight in weights:
        got = F.blend(x, src, weight)
        assert torch.equal(got, reference(x, src, weight)), weight
        assert got.is_contiguous(memory_format=torch.channels_last) == channels_last or b == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["mixup", "deit"])
def test_mixers_on_uint8_round_like_the_reference(name, mode):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (16, 3, 12, 12), generator=g, dtype=torch.uint8)
    res = create_mixer(name, mode=mode, num_classes=10, seed=4).mix(x.clone(), torch.zeros(16, dtype=torch.long))
    blended = (res.lam < 1) & ~((res.x == x) | (res.x == x[res.partner])).all(dim=(1, 2, 3))
    for i in blended.nonzero().view(-1).tolist():  # Mixup samples: one weight per image
        expect = reference(x[i], x[int(res.partner[i])], float(res.lam[i]))
        assert torch.equal(res.x[i], expect)


@pytest.mark.parametrize("pairing", ["perm", "flip"])
@pytest.mark.parametrize("n", [1, 2, 7, 8])
@pytest.mark.parametrize("inplace", [True, False])
def test_batch_mixup_uint8_large_images_path(pairing, n, inplace):
    # images of >= 2**14 elements take the per-image path (no gather): same rounding, in place or not
    g = torch.Generator().manual_seed(n)
    x = torch.randint(0, 256, (n, 3, 80, 80), generator=g, dtype=torch.uint8)
    mixer = create_mixer("mixup", mode="batch", pairing=pairing, num_classes=10, seed=n, inplace=inplace)
    res = mixer.mix(x.clone(), torch.zeros(n, dtype=torch.long))
    lam = float(res.lam[res.partner != torch.arange(n)][0]) if (res.partner != torch.arange(n)).any() else 1.0
    assert torch.equal(res.x, reference(x, x[res.partner], lam))
