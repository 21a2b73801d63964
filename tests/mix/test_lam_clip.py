"""``lam_clip=(lo, hi)`` bounds the realized label weight (the kept share), not
only the sampled lambda, for every pixel mixer and mode.

Images encode sample identity (``x[b]`` is the constant image ``b``), so the
share of its own pixels that every sample keeps can be counted and compared
with the reported lambda.
"""

from __future__ import annotations

import pytest
import torch

from mixcut.mix import MODES, create_mixer

LO, HI = 0.3, 0.7
BOX_MIXERS = ("cutmix", "deit", "saliencymix", "resizemix", "fmix")


def identity_images(n: int, size: int = 32) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, size, size).contiguous()


def kept_share(out: torch.Tensor) -> torch.Tensor:
    own = torch.arange(out.shape[0], dtype=out.dtype).view(-1, 1, 1, 1)
    return (out[:, 0] == own[:, 0]).float().mean(dim=(1, 2))


def mixed_lams(name: str, mode: str, seeds: range, n: int = 64, size: int = 32, **options):
    """Reported lambdas of the mixed samples, checking that they equal the kept pixel share."""
    out = []
    for seed in seeds:
        mixer = create_mixer(name, mode=mode, num_classes=10, lam_clip=(LO, HI), seed=seed, **options)
        x = identity_images(n, size)
        res = mixer.mix(x, torch.zeros(n, dtype=torch.long))
        mixed = res.partner != torch.arange(n)
        if name != "mixup":
            # mixup samples inside the DeiT switch blend everywhere: count only box/mask samples
            boxy = (res.x[:, 0] == x[:, 0]).any(dim=(1, 2)) | (res.lam == 1)
            torch.testing.assert_close(kept_share(res.x)[boxy], res.lam[boxy], atol=1e-6, rtol=0)
        out.append(res.lam[mixed])
    return torch.cat(out)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", BOX_MIXERS + ("mixup",))
def test_kept_share_stays_in_lam_clip(name, mode):
    # batch mode draws one lambda per batch: many small batches instead of a few large ones
    lam = mixed_lams(name, mode, range(40), n=8) if mode == "batch" else mixed_lams(name, mode, range(3))
    assert lam.numel() > 0
    assert lam.min() >= LO - 1e-6, (name, mode, lam.min().item())
    assert lam.max() <= HI + 1e-6, (name, mode, lam.max().item())


@pytest.mark.parametrize("name", ("cutmix", "saliencymix", "resizemix"))
def test_odd_sizes_and_narrow_range(name):
    # a 13x18 image and a range a few rows wide: rounding and the border must still respect it
    for seed in range(3):
        mixer = create_mixer(name, mode="elem", num_classes=10, lam_clip=(0.55, 0.6), seed=seed)
        res = mixer.mix(torch.rand(48, 3, 13, 18), torch.zeros(48, dtype=torch.long))
        assert res.lam.min() >= 0.55 - 1e-6 and res.lam.max() <= 0.6 + 1e-6, res.lam


def test_cutmix_centres_stay_spread():
    # the bound conditions the paper's uniform centre; it does not pin boxes to the middle
    mixer = create_mixer("cutmix", mode="elem", num_classes=10, lam_clip=(LO, HI), seed=0)
    res = mixer.mix(identity_images(512), torch.zeros(512, dtype=torch.long))
    pasted = res.x[:, 0] != torch.arange(512, dtype=torch.float32).view(-1, 1, 1)
    cover = pasted.float().mean(0)  # how often each pixel is pasted over
    assert cover[0, 0] > 0.05 and cover[-1, -1] > 0.05 and cover[16, 16] < 0.9


def test_minmax_with_lam_clip_is_refused():
    with pytest.raises(ValueError, match="minmax"):
        create_mixer("cutmix", minmax=(0.2, 0.8), lam_clip=(LO, HI))
    with pytest.raises(ValueError, match="minmax"):
        create_mixer("deit", minmax=(0.2, 0.8), lam_clip=(LO, HI))
