"""cifar_airbench94: the network's shape and settings, and its two initialisations (dirac, patch whitening)."""

from __future__ import annotations

import numpy as np
import timm
import torch
import torch.nn as nn
from _trainer_utils import FAST, compose

import mixcut.models  # noqa: F401  (registers the CIFAR networks)
from mixcut.models.init import dirac_conv_init_, patch_whitening_, wants_training_images


def _net(**kw):
    return timm.create_model("cifar_airbench94", num_classes=10, **kw)


def test_widths_parameters_and_batchnorm_settings():
    m = _net()
    assert sum(p.numel() for p in m.parameters()) == 1_972_792  # 24-ch whitening stem + 64/256/256
    assert [g.conv2.out_channels for g in m.stages] == [64, 256, 256]
    assert m.whiten.weight.shape == (24, 3, 2, 2) and not m.whiten.weight.requires_grad and m.whiten.bias.requires_grad
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert len(bns) == 6
    for bn in bns:  # the paper's momentum 0.6 is the old statistics' weight: torch momentum 0.4
        assert bn.eps == 1e-12 and bn.momentum == 0.4
        assert not bn.weight.requires_grad and bn.bias.requires_grad
    assert m.fc.bias is None
    assert all(isinstance(g.act, nn.GELU) and isinstance(g.pool, nn.MaxPool2d) for g in m.stages)


def test_logits_are_the_linear_head_scaled_by_one_ninth():
    m = _net().eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        feats = m.forward_head(m.forward_features(x), pre_logits=True)
        assert feats.shape == (3, 256)  # 3x3 max-pool of the last 3x3 map: one pixel
        torch.testing.assert_close(m(x), m.fc(feats) / 9)


def test_dirac_init_makes_equal_width_convs_the_identity():
    m = _net()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(m.stages[0].conv2(x), x)  # 64 -> 64: identity
        y = m.stages[1].conv1(x)  # 64 -> 256: the first 64 filters pass the input through, the rest random
    torch.testing.assert_close(y[:, :64], x)
    assert y[:, 64:].abs().sum() > 0
    conv = nn.Conv2d(4, 2, 3, padding=1, bias=True)
    dirac_conv_init_(conv)
    assert torch.equal(conv.bias, torch.zeros(2))


def _reference_whitening(images: torch.Tensor, eps: float) -> np.ndarray:
    """Written out independently: every 2x2 patch as a 12-vector, eigen-decomposition of the
    uncentred covariance, filters = eigenvectors / sqrt(eigenvalue + eps), largest first."""
    x = images.numpy().astype(np.float64)
    n, c, h, w = x.shape
    patches = [x[:, :, i : i + 2, j : j + 2].reshape(n, -1) for i in range(h - 1) for j in range(w - 1)]
    p = np.concatenate(patches)
    vals, vecs = np.linalg.eigh(p.T @ p / len(p))
    filt = (vecs / np.sqrt(vals + eps)).T[::-1]
    return np.concatenate([filt, -filt]).reshape(24, c, 2, 2)


def test_patch_whitening_matches_an_independent_computation_and_whitens():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(40, 3, 9, 9, generator=g)
    images = base + 0.8 * base.roll(1, dims=3) + 0.3 * base[:, :1]  # correlated pixels and channels
    m = _net()
    m.init_from_data(images)
    ref = torch.from_numpy(_reference_whitening(images, 5e-4)).float()
    w = m.whiten.weight.detach()
    # eigenvectors are defined up to sign: compare each filter up to its sign
    signs = torch.sign((w * ref).flatten(1).sum(1)).view(-1, 1, 1, 1)
    torch.testing.assert_close(w * signs, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(w[12:], -w[:12])
    # the first 12 outputs are white: unit second moment up to eps, no cross terms
    out = torch.nn.functional.conv2d(images, w[:12]).permute(1, 0, 2, 3).reshape(12, -1).double()
    cov = out @ out.T / out.shape[1]
    torch.testing.assert_close(cov, torch.eye(12, dtype=torch.float64), atol=0.05, rtol=0)


def test_whitening_refuses_a_conv_of_the_wrong_shape():
    import pytest

    with pytest.raises(ValueError, match="2\\*C\\*k\\*k=24"):
        patch_whitening_(nn.Conv2d(3, 12, 2), torch.randn(2, 3, 8, 8))


def test_build_initialises_the_whitening_from_the_first_training_images(tmp_path):
    """The model hook is called by build with data_init_images training images, normalised."""
    from mixcut.build import build
    from mixcut.runtime.distributed import DistInfo

    cfg = compose(FAST + ["model.name=cifar_airbench94", "data.img_size=32", "data.train_size=64", "data.cache=device"])
    built = build(cfg, DistInfo(), torch.device("cpu"), None)
    model = built.model
    assert wants_training_images(model) == 5000
    expected = _net()
    expected.init_from_data(built.data.train.sample_images(5000))
    torch.testing.assert_close(model.whiten.weight, expected.whiten.weight)
    assert built.data.train.sample_images(5000).shape == (64, 3, 32, 32)
    stream = built.data.train
    assert torch.equal(stream.sample_images(16), stream.normalize(stream.images[::4]))  # every 4th of 64: evenly spread
    assert not torch.equal(model.whiten.weight, _net().whiten.weight)  # not the random initialisation
