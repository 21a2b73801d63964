"""A NaN or Inf in one image never reaches the pixels that another sample keeps.

Kept pixels (outside the pasted region, or the whole image of an unmixed
sample) must be bit-identical to the sample's own, whatever its partner holds,
on every path: the CPU select/blend paths, in place or not, every float dtype.
The kept region is read from a run on a clean batch with the same seed (the
draws do not depend on pixel values, except SaliencyMix's, which is checked
by the kept share instead).
"""

from __future__ import annotations

import pytest
import torch

from mixcut.mix import MODES, create_mixer

N, SIZE = 8, 16
CASES = {
    "mixup": dict(prob=0.5),  # unmixed samples keep their whole image
    "cutmix": {},
    "deit": {},
    "resizemix": {},
    "fmix": {},
    "fmix_soft": dict(max_soft=0.1),
    "cutout": {},
    "choice": dict(mixers={"cutmix": {}, "fmix": {}, "mixup": {}}),
}


def batch(dtype: torch.dtype, nan_at: int | None = None, inf_at: int | None = None) -> torch.Tensor:
    x = torch.rand(N, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)).to(dtype)
    if nan_at is not None:
        x[nan_at] = float("nan")
    if inf_at is not None:
        x[inf_at, :, ::2] = float("inf")
        x[inf_at, :, 1::2] = float("-inf")
    return x


def run(name: str, mode: str, dtype: torch.dtype, inplace: bool, **poison):
    options = dict(CASES[name])
    builder = "fmix" if name == "fmix_soft" else name
    mixer = create_mixer(builder, mode=mode, num_classes=10, seed=3, inplace=inplace, **options)
    x = batch(dtype, **poison)
    res = mixer.mix(x.clone(), torch.zeros(N, dtype=torch.long))
    return batch(dtype, **poison), res


@pytest.mark.parametrize("inplace", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(CASES))
def test_kept_pixels_ignore_a_nonfinite_partner(name, mode, dtype, inplace):
    clean_x, clean = run(name, mode, dtype, inplace)
    # poison the partners of sample 0 and of the last unmixed sample (lam 1), which keeps its whole image
    unmixed = (clean.lam == 1).nonzero().view(-1)
    target = int(unmixed[-1]) if len(unmixed) else N - 1
    nan_at, inf_at = int(clean.partner[0]), int(clean.partner[target])
    x, res = run(name, mode, dtype, inplace, nan_at=nan_at, inf_at=inf_at)
    assert torch.equal(res.partner, clean.partner)
    kept = (clean.x == clean_x).all(dim=1, keepdim=True).expand_as(x)  # pixels each sample kept as its own
    healthy = torch.ones(N, dtype=torch.bool)
    healthy[[nan_at, inf_at]] = False
    if not (mode == "batch" and name in ("mixup", "deit", "choice")):  # a batch-wide blend keeps no pixel
        assert kept[healthy].any()
    got, own = res.x[healthy][kept[healthy]], x[healthy][kept[healthy]]
    bits = torch.int32 if dtype == torch.float32 else torch.int16
    assert torch.equal(got.view(bits), own.view(bits)), f"{int((got != own).sum())} kept pixels changed"


@pytest.mark.parametrize("inplace", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_saliencymix_kept_share_ignores_a_nonfinite_partner(mode, inplace):
    mixer = create_mixer("saliencymix", mode=mode, num_classes=10, seed=3, inplace=inplace)
    partner = mixer.pair(N, torch.device("cpu"))  # the pairing is drawn first: a copy of the mixer sees it
    mixer.load_state_dict(create_mixer("saliencymix", mode=mode, num_classes=10, seed=3).state_dict())
    x = batch(torch.float32, nan_at=int(partner[0]), inf_at=int(partner[1]))
    res = mixer.mix(x.clone(), torch.zeros(N, dtype=torch.long))
    assert torch.equal(res.partner, partner)
    own_share = (res.x == x).all(dim=1).float().mean(dim=(1, 2))  # random pixels: a partner's never equals one's own
    healthy = torch.ones(N, dtype=torch.bool)
    healthy[[int(partner[0]), int(partner[1])]] = False
    torch.testing.assert_close(own_share[healthy], res.lam[healthy], atol=1e-6, rtol=0)


@pytest.mark.parametrize("pairing,n", [("flip", 5), ("perm", 1)])
@pytest.mark.parametrize("inplace", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_batch_mixup_of_a_sample_with_itself_keeps_its_infinities(pairing, n, inplace, dtype):
    """Flip pairing in an odd batch, or a batch of one, pairs a sample with itself: its pixels stay its
    own exactly, ±Inf included (a plain lerp of a with a gives inf - inf = NaN there)."""
    mixer = create_mixer("mixup", num_classes=3, mode="batch", pairing=pairing, seed=0, inplace=inplace)
    x = torch.rand(n, 3, 4, 4).to(dtype)
    x[n // 2, :, ::2] = float("inf")
    x[n // 2, :, 1::2] = float("-inf")
    original = x.clone()
    res = mixer.mix(x, torch.arange(n) % 3)
    assert int(res.partner[n // 2]) == n // 2
    assert torch.equal(res.x[n // 2], original[n // 2])
    if n > 1:
        assert not torch.equal(res.x[0], original[0])  # the others are mixed
