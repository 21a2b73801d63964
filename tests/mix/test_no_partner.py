"""A sample without a partner (a batch of one, the middle of an odd ``flip``
batch, the odd one out in ``pair`` mode) comes out unchanged, with its own label."""

from __future__ import annotations

import pytest
import torch

from mixcut.mix import MODES, create_mixer

NAMES = ("resizemix", "cutmix", "deit", "mixup", "saliencymix", "fmix")


def lonely_cases(mode: str):
    """(batch size, pairing) pairs that leave a sample paired with itself."""
    yield 1, "perm"
    yield 5, "flip"
    if mode == "pair":
        yield 5, "perm"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_sample_without_partner_is_unchanged(name, mode):
    for n, pairing in lonely_cases(mode):
        for seed in range(4):
            mixer = create_mixer(name, mode=mode, pairing=pairing, num_classes=10, seed=seed, inplace=True)
            x = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
            y = torch.arange(n) % 10
            res = mixer.mix(x.clone(), y)
            alone = res.partner == torch.arange(n)
            assert alone.any(), (n, pairing)
            assert torch.equal(res.x[alone], x[alone]), (name, mode, n, pairing, seed)
            assert (res.lam[alone] == 1).all()
            assert torch.equal(res.target[alone].argmax(1), y[alone])
