"""Common corruptions: shape, range and dtype kept, monotone in severity, reproducible."""

from __future__ import annotations

import pytest
import torch

from mixcut.eval.corruptions import CORRUPTIONS, PARAMS, SEVERITIES, corrupt, corrupt_normalized, disk_kernel

REQUIRED = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "gaussian_blur",
    "defocus_blur",
    "contrast",
    "brightness",
    "fog",
    "pixelate",
    "jpeg_compression",
)


def smooth_images(n: int = 6, size: int = 32) -> torch.Tensor:
    """Natural-looking test images in [0, 1]: gradients, waves and a disc (blur and JPEG need structure)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for i in range(n):
        r = 0.5 + 0.4 * torch.sin(6 * xx + i)
        g = 0.5 + 0.4 * torch.cos(5 * yy - i)
        b = ((xx - 0.3 - 0.05 * i) ** 2 + (yy - 0.5) ** 2 < 0.08).float() * 0.8 + 0.1
        out.append(torch.stack([r, g, b]))
    return torch.stack(out)


def test_the_required_corruptions_exist_with_five_severities():
    assert set(REQUIRED) <= set(CORRUPTIONS)
    assert SEVERITIES == (1, 2, 3, 4, 5)
    assert all(len(PARAMS[name]) == 5 for name in CORRUPTIONS)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.bfloat16])
def test_shape_range_and_dtype_are_kept(name, dtype):
    x = smooth_images(3, 24)
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    for severity in (1, 5):
        y = corrupt(x, name, severity, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and y.dtype == x.dtype
        top = 255 if dtype == torch.uint8 else 1.0
        assert y.min() >= 0 and y.max() <= top and torch.isfinite(y.float()).all()
    assert not torch.equal(y, x)  # severity 5 changes the images


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_monotone_in_severity(name):
    """The mean absolute difference from the clean images grows with the severity."""
    x = (smooth_images() * 255).round().to(torch.uint8)
    diffs = []
    for severity in SEVERITIES:
        y = corrupt(x, name, severity, torch.Generator().manual_seed(0))
        diffs.append((y.float() - x.float()).abs().mean().item())
    assert all(a < b for a, b in zip(diffs, diffs[1:])), f"{name}: {diffs}"


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "fog"])
def test_randomness_comes_from_the_generator(name):
    x = smooth_images(2)
    a = corrupt(x, name, 3, torch.Generator().manual_seed(1))
    b = corrupt(x, name, 3, torch.Generator().manual_seed(1))
    c = corrupt(x, name, 3, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_out_of_place_and_deterministic_ops_are_exact():
    x = smooth_images(2)
    before = x.clone()
    y = corrupt(x, "contrast", 2)
    assert torch.equal(x, before)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(y, ((x - mean) * 0.5 + mean).clamp(0, 1))
    # brightness keeps hue and saturation: channel ratios are unchanged where nothing saturates
    dim = x * 0.5
    bright = corrupt(dim, "brightness", 1)
    v, vb = dim.amax(1, keepdim=True), bright.amax(1, keepdim=True)
    torch.testing.assert_close(vb, v + 0.05)
    torch.testing.assert_close(bright / vb, dim / v)


def test_disk_kernel_is_a_normalized_disk():
    k = disk_kernel(1.5, 0.1)
    assert k.shape == (5, 5)
    torch.testing.assert_close(k.sum(), torch.tensor(1.0))
    torch.testing.assert_close(k, k.flip(0))
    torch.testing.assert_close(k, k.t())
    assert k[2, 2] == k.max() and k[0, 0] < 1e-6  # the corners lie outside the radius


def test_normalized_round_trip():
    mean, std = torch.tensor([0.49, 0.48, 0.45]), torch.tensor([0.25, 0.24, 0.26])
    x = smooth_images(2)
    xn = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    yn = corrupt_normalized(xn, mean, std, "pixelate", 3)
    y = yn * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
    torch.testing.assert_close(y, corrupt(x, "pixelate", 3), atol=1e-5, rtol=1e-5)


def test_bad_arguments_say_what_is_allowed():
    x = smooth_images(1)
    with pytest.raises(ValueError, match="choose from"):
        corrupt(x, "snow", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "fog", 6)
    with pytest.raises(ValueError, match="B, C, H, W"):
        corrupt(x[0], "fog", 1)


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_on_cuda_matches_shape_dtype_and_is_reproducible(name):
    x = (smooth_images(4) * 255).round().to(torch.uint8).cuda()
    a = corrupt(x, name, 3, torch.Generator(device="cuda").manual_seed(0))
    b = corrupt(x, name, 3, torch.Generator(device="cuda").manual_seed(0))
    assert a.device == x.device and a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, b)
    if name not in ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "fog"):  # no randomness: CPU == CUDA
        assert (a.cpu().int() - corrupt(x.cpu(), name, 3).int()).abs().max() <= 1
