"""Common corruptions: shape, range and dtype kept, monotone in severity, reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mixcut.eval.corruptions import (
    CORRUPTIONS,
    PARAMS,
    SEVERITIES,
    corrupt,
    corrupt_normalized,
    disk_kernel,
    pil_box_weights,
    quantize,
)

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
    torch.testing.assert_close(y, quantize((x - mean) * 0.5 + mean) / 255)
    # brightness keeps hue and saturation: channel ratios are unchanged where nothing saturates
    dim = (x * 0.5 * 255).round() / 255
    bright = corrupt(dim, "brightness", 1)
    v, vb = dim.amax(1, keepdim=True), bright.amax(1, keepdim=True)
    torch.testing.assert_close(vb, v + 0.05, atol=1 / 255, rtol=0)
    torch.testing.assert_close(bright, quantize(dim * (v + 0.05) / v) / 255)


def test_disk_kernel_is_a_normalized_disk():
    k = disk_kernel(1.5, 0.1)
    assert k.shape == (5, 5)
    torch.testing.assert_close(k.sum(), torch.tensor(1.0))
    torch.testing.assert_close(k, k.flip(0))
    torch.testing.assert_close(k, k.t())
    assert k[2, 2] == k.max() and k[0, 0] < 1e-6  # the corners lie outside the radius


def test_normalized_round_trip():
    mean, std = torch.tensor([0.49, 0.48, 0.45]), torch.tensor([0.25, 0.24, 0.26])
    x = (smooth_images(2) * 255).round() / 255  # 8-bit images, as the evaluator's batches are
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


# ------------------------------------------------------------------ pixelate against PIL (make_cifar_c.py)
def _pil_pixelate(images: torch.Tensor, c: float) -> torch.Tensor:
    """The reference: each (3, H, W) uint8 image through PIL BOX down to int(side * c), then BOX back up."""
    from PIL import Image

    out = []
    for img in images:
        h, w = img.shape[-2:]
        im = Image.fromarray(img.permute(1, 2, 0).numpy())
        im = im.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX)
        out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    return torch.stack(out)


def _cifar_jpegs(n: int) -> torch.Tensor | None:
    """``n`` real CIFAR-10 images (uint8, (N, 3, 32, 32)) from the shared JPEG folder, or None if absent."""
    from PIL import Image

    for root in (Path("/work/shared/data/cifar10-jpeg/train"), Path(__file__).parents[3] / "shared/data/cifar10-jpeg/train"):
        if root.is_dir():
            files = sorted(root.glob("*/*.jpg"))
            files = files[:: max(1, len(files) // n)][:n]  # spread over every class
            if files:
                imgs = [torch.from_numpy(np.asarray(Image.open(f).convert("RGB")).copy()).permute(2, 0, 1) for f in files]
                return torch.stack(imgs)
    return None


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_matches_pil_box_on_generated_images(severity):
    """Noise (the hardest case: every pixel differs from its neighbours) and smooth images, 32 px and an
    odd non-square size: within one grey level of PIL's BOX filter at every severity (in fact equal)."""
    gen = torch.Generator().manual_seed(severity)
    noise = torch.randint(0, 256, (8, 3, 32, 32), generator=gen, dtype=torch.uint8)
    smooth = (smooth_images(4) * 255).round().to(torch.uint8)
    odd = torch.randint(0, 256, (3, 3, 27, 41), generator=gen, dtype=torch.uint8)
    for x in (noise, smooth, odd):
        ours = corrupt(x, "pixelate", severity)
        ref = _pil_pixelate(x, PARAMS["pixelate"][severity - 1])
        assert (ours.int() - ref.int()).abs().max() <= 1
        assert (ours != ref).float().mean() < 0.01  # the fixed-point emulation agrees nearly everywhere


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_matches_pil_box_on_real_cifar_images(severity):
    x = _cifar_jpegs(200)
    if x is None:
        pytest.skip("no CIFAR-10 JPEG folder (/work/shared/data/cifar10-jpeg/train)")
    ref = _pil_pixelate(x, PARAMS["pixelate"][severity - 1])
    ours = corrupt(x, "pixelate", severity)
    assert (ours.int() - ref.int()).abs().max() <= 1
    # through the evaluator's float path (normalised batches) too
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    xn = (x.float() / 255 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    back = corrupt_normalized(xn, mean, std, "pixelate", severity) * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
    assert ((back * 255).round().int() - ref.int()).abs().max() <= 1


def test_pil_box_weights_are_pils_coefficients():
    """32 -> 30: whole pixels averaged where their centres fall in the box (weights 1 or 1/2 here), not area
    weights; 30 -> 32 (upsampling): nearest neighbour."""
    down = pil_box_weights(32, 30)
    torch.testing.assert_close(down.sum(1), torch.ones(30, dtype=torch.float64))
    assert set(down.unique().tolist()) <= {0.0, 0.5, 1.0}
    up = pil_box_weights(30, 32)
    assert set(up.unique().tolist()) == {0.0, 1.0} and (up.sum(1) == 1).all()


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_images_are_quantised_like_cifar10c(name):
    """Every corruption returns 8-bit images, truncated as ``np.uint8(255 * x)`` does (float and uint8 paths)."""
    x = smooth_images(2)
    y = corrupt(x, name, 3, torch.Generator().manual_seed(0))
    levels = y.double() * 255
    assert (levels - levels.round()).abs().max() < 1e-3
    u8 = corrupt((x * 255).round().to(torch.uint8), name, 3, torch.Generator().manual_seed(0))
    assert u8.dtype == torch.uint8


def test_quantize_truncates_as_numpy_uint8():
    x = torch.tensor([0.0, 0.5 / 255, 1.9999 / 255, 254.6 / 255, 1.0, 1.3, -0.2])
    assert quantize(x).tolist() == [0.0, 0.0, 1.0, 254.0, 255.0, 255.0, 0.0]
    assert quantize(torch.arange(256) / 255.0).tolist() == list(map(float, range(256)))  # 8-bit input is kept
