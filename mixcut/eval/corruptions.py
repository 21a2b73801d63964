"""Common image corruptions at five severities, generated on the fly in torch.

Follows the CIFAR-10-C protocol of Hendrycks & Dietterich, "Benchmarking Neural
Network Robustness to Common Corruptions and Perturbations" (ICLR 2019): the
severity parameters below are those of their ``make_cifar_c.py`` (calibrated
for 32x32 images; blur radii and pixelation are not rescaled for larger
images). The operations are re-implemented for whole batches on any device:

  gaussian_noise, shot_noise, impulse_noise, speckle_noise  additive / Poisson / salt-and-pepper / multiplicative noise
  gaussian_blur, defocus_blur                               Gaussian and anti-aliased disk kernels
  contrast, brightness                                      per-image contrast; HSV value shift
  fog                                                       haze of 1/f^p noise (p = log2 of the plasma fractal's
                                                            decay, the same spectrum as their diamond-square map)
  pixelate, jpeg_compression                                PIL BOX down- and up-sampling; JPEG via torchvision.io

Not included: glass, motion and zoom blur, snow, frost, spatter, elastic
transform and saturate, so a mean over these corruptions is not the 15-corruption
CIFAR-10-C mean and should only be compared with itself.

``corrupt(images, name, severity)`` takes uint8 images in 0..255 or floating
images in [0, 1], shape (B, C, H, W), and returns the same shape, dtype and
range. Randomness comes from the ``generator`` argument, so a fixed seed gives
the same corrupted set every time.

Quantisation, as in the published CIFAR-10-C arrays: every corrupted image is
brought back to 8 bits (``quantize``). The reference stores ``np.uint8(f(x))``
where ``f`` returns floats in 0..255, and numpy's cast truncates, so the
grey level is ``floor(255 * value)``; pixelate and JPEG already return 8-bit
images there (PIL) and here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

SEVERITIES = (1, 2, 3, 4, 5)

# make_cifar_c.py parameters, one per severity 1..5.
PARAMS: dict[str, list] = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],  # std
    "shot_noise": [500, 250, 100, 75, 50],  # photons per unit intensity
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],  # share of values set to 0 or 1
    "speckle_noise": [0.06, 0.10, 0.12, 0.16, 0.20],  # std of the multiplicative noise
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1.0],  # sigma in pixels
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],  # disk radius, anti-alias sigma
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],  # factor around the per-image channel mean
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],  # added to the HSV value
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],  # haze strength, fractal decay
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],  # side of the downsampled image, as a share
    "jpeg_compression": [80, 65, 58, 50, 40],  # JPEG quality
}


def _randn(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _rand(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def gaussian_noise(x: Tensor, c: float, generator=None) -> Tensor:
    return x + c * _randn(x, generator)


def shot_noise(x: Tensor, c: float, generator=None) -> Tensor:
    return torch.poisson(x * c, generator=generator) / c


def impulse_noise(x: Tensor, c: float, generator=None) -> Tensor:
    hit = _rand(x, generator) < c
    salt = _rand(x, generator) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def speckle_noise(x: Tensor, c: float, generator=None) -> Tensor:
    return x + x * c * _randn(x, generator)


def _filter(x: Tensor, kernel: Tensor, mode: str) -> Tensor:
    """Depthwise 2-D convolution of every channel with one odd-sized kernel, same-size output."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    if mode == "reflect" and (ph >= x.shape[-2] or pw >= x.shape[-1]):
        mode = "replicate"  # reflection needs the image to be larger than the padding
    c = x.shape[1]
    padded = F.pad(x, (pw, pw, ph, ph), mode=mode)
    return F.conv2d(padded, kernel.to(x).expand(c, 1, kh, kw), groups=c)


def _gaussian_1d(sigma: float, radius: int) -> Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: Tensor, sigma: float, generator=None) -> Tensor:
    radius = max(1, int(4.0 * sigma + 0.5))  # scikit-image's truncation at 4 sigma
    k = _gaussian_1d(sigma, radius)
    return _filter(x, torch.outer(k, k).float(), mode="replicate")  # scikit-image's default border: nearest


def disk_kernel(radius: float, alias_sigma: float) -> Tensor:
    """A disk of the given radius, anti-aliased by a 3x3 Gaussian, normalized to sum 1."""
    half = int(math.floor(radius)) + 1  # the 3x3 blur spreads the disk by one pixel
    t = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((t.view(-1, 1) ** 2 + t.view(1, -1) ** 2) <= radius**2).double()
    disk /= disk.sum()
    g = _gaussian_1d(alias_sigma, 1)
    smooth = F.conv2d(F.pad(disk.view(1, 1, *disk.shape), (1, 1, 1, 1)), torch.outer(g, g).view(1, 1, 3, 3))[0, 0]
    return (smooth / smooth.sum()).float()


def defocus_blur(x: Tensor, c: tuple[float, float], generator=None) -> Tensor:
    return _filter(x, disk_kernel(*c), mode="reflect")  # OpenCV filter2D's default border


def contrast(x: Tensor, c: float, generator=None) -> Tensor:
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * c + mean


def brightness(x: Tensor, c: float, generator=None) -> Tensor:
    """Raise the HSV value by ``c`` (capped at 1) keeping hue and saturation: with
    both fixed, every RGB channel is proportional to the value max(R, G, B)."""
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + c).clamp(max=1.0)
    scale = v_new / v.clamp_min(1e-12)
    return torch.where(v > 0, x * scale, v_new.expand_as(x))


def haze(shape: tuple[int, int, int], decay: float, generator=None, device=None) -> Tensor:
    """(B, H, W) maps in [0, 1] whose amplitude spectrum falls as 1/f^log2(decay): the
    spectrum of a diamond-square plasma fractal whose noise shrinks by ``decay`` per octave."""
    b, h, w = shape
    fy = torch.fft.fftfreq(h, device=device).view(-1, 1)
    fx = torch.fft.rfftfreq(w, device=device).view(1, -1)
    freq = torch.sqrt(fy**2 + fx**2)
    amplitude = torch.where(freq > 0, freq.clamp_min(1e-6) ** -math.log2(decay), torch.zeros_like(freq))
    re = torch.randn((b, *freq.shape), generator=generator, device=device)
    im = torch.randn((b, *freq.shape), generator=generator, device=device)
    maps = torch.fft.irfft2(torch.complex(re, im) * amplitude, s=(h, w))
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    hi = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)


def fog(x: Tensor, c: tuple[float, float], generator=None) -> Tensor:
    strength, decay = c
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    fogged = x + strength * haze((x.shape[0], x.shape[2], x.shape[3]), decay, generator, x.device).unsqueeze(1).to(x)
    return fogged * top / (top + strength)


# PIL's 8-bit resampling keeps coefficients and sums as integers scaled by 2^22 (Pillow's PRECISION_BITS)
_PIL_PRECISION_BITS = 22


def pil_box_weights(in_size: int, out_size: int) -> Tensor:
    """(out_size, in_size) float64 resampling matrix of PIL's ``Image.BOX`` filter along one axis.

    As Pillow's ``precompute_coeffs``: output pixel ``i`` is centred at ``(i + 0.5) * scale`` input
    pixels (``scale = in / out``); the filter's support is ``0.5 * max(scale, 1)``; input pixel ``j``
    in the rounded support window gets weight 1 when ``(j + 0.5 - centre) / max(scale, 1)`` lies in
    ``(-0.5, 0.5]`` and 0 otherwise, and the weights of each output pixel are normalised to sum 1.
    (So PIL's BOX averages whole pixels whose centres fall in the box; it is not area weighting,
    which is what ``F.interpolate(mode="area")`` does.)"""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), in_size)
        for j in range(lo, hi):
            t = (j - centre + 0.5) / filterscale
            weights[i, j] = 1.0 if -0.5 < t <= 0.5 else 0.0
        total = weights[i].sum()
        if total > 0:
            weights[i] /= total
    return weights


def _pil_pass(u8: Tensor, weights: Tensor, dim: int) -> Tensor:
    """One 8-bit PIL resampling pass of integer-valued ``u8`` along ``dim`` (-1 rows, -2 columns):
    coefficients rounded to multiples of 2^-22, a rounded fixed-point sum, clipped to 0..255."""
    one = 1 << _PIL_PRECISION_BITS
    k = torch.floor(weights * one + 0.5).to(device=u8.device)  # Pillow: (int)(0.5 + w * 2^22) for w >= 0
    # float64 holds these integer products and sums exactly (< 2^31)
    x = u8.double()
    s = torch.matmul(x, k.t()) if dim == -1 else torch.matmul(k, x)
    return torch.floor((s + one // 2) / one).clamp(0, 255)


def pil_box_resize(u8: Tensor, size: tuple[int, int]) -> Tensor:
    """Integer-valued images (..., H, W) resized like PIL's ``resize(size, Image.BOX)`` on an 8-bit
    image: the horizontal pass first, rounded to 8 bits, then the vertical pass (Pillow's order)."""
    h, w = u8.shape[-2:]
    out = u8.double()
    if size[1] != w:
        out = _pil_pass(out, pil_box_weights(w, size[1]), -1)
    if size[0] != h:
        out = _pil_pass(out, pil_box_weights(h, size[0]), -2)
    return out


def pixelate(x: Tensor, c: float, generator=None) -> Tensor:
    """make_cifar_c's pixelate: PIL BOX down to ``int(side * c)``, then PIL BOX back up, on 8-bit pixels."""
    h, w = x.shape[-2:]
    u8 = torch.round(x.double() * 255.0)  # the 8-bit image PIL is given (inputs here are 8-bit images / 255)
    small = pil_box_resize(u8, (max(1, int(h * c)), max(1, int(w * c))))
    return (pil_box_resize(small, (h, w)) / 255.0).to(x.dtype)


def jpeg_compression(x: Tensor, quality: int, generator=None) -> Tensor:
    """Encode and decode every image with torchvision's libjpeg bindings (on the CPU)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    if x.shape[1] not in (1, 3):
        raise ValueError(f"jpeg_compression needs 1 or 3 channels; got {x.shape[1]}.")
    u8 = (x * 255.0).round().clamp(0, 255).to(device="cpu", dtype=torch.uint8)
    decoded = decode_jpeg(encode_jpeg(list(u8), quality=int(quality)))
    return torch.stack(decoded).to(device=x.device, dtype=x.dtype) / 255.0


CORRUPTIONS: dict[str, Callable[..., Tensor]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "contrast": contrast,
    "brightness": brightness,
    "fog": fog,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}


def corrupt(images: Tensor, name: str, severity: int, generator: torch.Generator | None = None) -> Tensor:
    """``images`` (B, C, H, W) under corruption ``name`` at ``severity`` 1..5.

    uint8 images (0..255) come back as uint8; floating images are read and
    returned in [0, 1] with their dtype, on the 8-bit grid (``quantize``). Out of place.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from: {', '.join(CORRUPTIONS)}.")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}; got {severity}.")
    if images.dim() != 4:
        raise ValueError(f"corrupt expects a (B, C, H, W) batch; got shape {tuple(images.shape)}.")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    levels = quantize(CORRUPTIONS[name](x, PARAMS[name][severity - 1], generator=generator))
    if images.dtype == torch.uint8:
        return levels.to(torch.uint8)
    return (levels / 255.0).to(images.dtype)


def quantize(x: Tensor) -> Tensor:
    """Grey levels 0..255 (float) of corrupted images in [0, 1], as CIFAR-10-C stores them:
    clipped, then ``np.uint8(255 * x)``, which truncates. The 1e-4 keeps a level that float32
    arithmetic lands a hair below an integer (e.g. 254.99998 for 255) on that integer."""
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 1e-4).clamp(0.0, 255.0)


def corrupt_normalized(
    x: Tensor, mean: Tensor, std: Tensor, name: str, severity: int, generator: torch.Generator | None = None
) -> Tensor:
    """Corrupt a batch that is already normalized with ``(x - mean) / std`` (per channel,
    values in 0..1 before normalization) and return it normalized again."""
    mean, std = mean.view(1, -1, 1, 1).to(x), std.view(1, -1, 1, 1).to(x)
    raw = (x * std + mean).clamp(0.0, 1.0)
    return (corrupt(raw, name, severity, generator) - mean) / std
