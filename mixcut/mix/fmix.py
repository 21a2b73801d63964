"""FMix (Harris et al., 2020): binary masks cut from low-frequency Fourier noise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Draws, Mixer, MixOptions, Plan, check_positive
from .registry import register

#: On the CPU, work through the batch in slices of about this many pixels: the temporaries then
#: stay allocator-friendly instead of faulting in fresh pages on every call (several times faster).
CPU_SLICE_PIXELS = 1 << 21


def fourier_noise(noise: Tensor, height: int, width: int, decay_power: float) -> Tensor:
    """Low-frequency images (k, H, W) from standard-normal spectra (k, H, W // 2 + 1, 2).

    Each frequency's real and imaginary parts are scaled by ``1 / f ** decay_power``
    (``f`` floored at ``1 / max(H, W)`` so the DC term stays finite), then
    inverted with one batched real FFT.
    """
    fy = torch.fft.fftfreq(height, device=noise.device).view(-1, 1)
    fx = torch.fft.rfftfreq(width, device=noise.device).view(1, -1)
    freq = torch.sqrt(fy * fy + fx * fx).clamp_min(1.0 / max(height, width))
    scale = freq.pow(-float(decay_power))
    spectrum = torch.complex(noise[..., 0] * scale, noise[..., 1] * scale)
    return torch.fft.irfft2(spectrum, s=(height, width))


def rank_pixels(values: Tensor) -> Tensor:
    """Rank (0 = largest) of every value of each row of ``values`` (k, N), int64."""
    order = values.argsort(dim=1, descending=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(values.shape[1], device=values.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def top_pixels(values: Tensor, count: Tensor, levels: int = 1 << 12) -> Tensor:
    """Boolean (k, N): exactly ``count`` (k,) of the largest values of each row.

    A selection without a sort: values are quantized to ``levels`` steps of their
    row's range (a monotone map), one histogram per row locates the step holding
    the threshold, everything above it is kept and the rest of the count is
    taken from that step in raster order. Only values within ``1 / levels`` of
    the range of the threshold can trade places, so the mask differs from the
    exact top-``count`` set by at most a few contour pixels, and the count is exact.
    """
    k, n = values.shape
    lo = values.amin(dim=1, keepdim=True)
    span = (values.amax(dim=1, keepdim=True) - lo).clamp_min(torch.finfo(values.dtype).tiny)
    step = ((values - lo) * ((levels - 1) / span)).long().clamp_(0, levels - 1)
    hist = torch.zeros(k, levels + 1, dtype=torch.long, device=values.device)
    hist.scatter_add_(1, step, torch.ones((), dtype=torch.long, device=values.device).expand_as(step))
    at_or_above = n - hist.cumsum(1) + hist  # [j]: values in steps >= j; [levels] = 0
    count = count.view(-1, 1)
    edge = (at_or_above[:, :levels] >= count).sum(1, keepdim=True) - 1  # last step reaching the count
    above = at_or_above.gather(1, edge + 1)
    band = step == edge
    return (step > edge) | (band & (band.cumsum(1) <= count - above))


class FMix(Mixer):
    """Keep the top-``lam`` share of a low-frequency noise image from the sample
    itself and take the rest from its partner.

    The noise is an inverse FFT of a random spectrum decaying as
    ``1 / f ** decay_power``; its ``round(lam * H * W)`` largest pixels (rounded
    stochastically, so the expected kept share is ``lam``; chosen without a sort,
    see `top_pixels`) keep the sample, the others come from the partner. ``lam ~ Beta(alpha, alpha)``. One mask per
    sample in ``elem`` mode, per pair in ``pair`` mode (both partners swap the
    same region), one for the batch in ``batch`` mode. The reported lambda is
    the mean of the mask actually used.

    Args:
        alpha: Beta concentration (> 0); 1.0 in the paper.
        decay_power: frequency decay (> 0); 3 in the paper, larger gives
            smoother, blobbier masks.
        max_soft: in [0, 0.5]: soften the mask edge as in the paper: the
            ``max_soft * H * W`` pixels either side of the threshold (at most
            ``min(lam, 1 - lam)`` of the image) get a linear ramp from 1 to 0.
            0 keeps the mask binary.
        **kwargs: the common mixer options of `Mixer`.
    """

    def __init__(self, alpha: float = 1.0, decay_power: float = 3.0, max_soft: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = check_positive("FMix alpha", alpha)
        self.decay_power = check_positive("FMix decay_power", decay_power)
        self.max_soft = float(max_soft)
        if not 0.0 <= self.max_soft <= 0.5:
            raise ValueError(f"FMix max_soft must be in [0, 0.5]; got {max_soft}.")

    def masks(self, lam: Tensor, height: int, width: int, draws: Draws) -> tuple[Tensor, Tensor]:
        """Masks (k, 1, H, W) (bool, or float when soft) and their means (k,).

        ``k`` is 1 for shared (batch-mode) draws, else the batch size.
        """
        k = 1 if draws.shared else draws.n
        n_pix = height * width
        noise = draws.normal(height, width // 2 + 1, 2)[:k]
        lam = lam[:k].double()
        # stochastic rounding: E[num] = lam * N
        num = (lam * n_pix + draws.uniform()[:k].double()).floor().long().clamp_(0, n_pix)
        if self.lam_clip is not None:  # the rounding must not take the kept share out of lam_clip
            lo, hi = math.ceil(self.lam_clip[0] * n_pix - 1e-9), math.floor(self.lam_clip[1] * n_pix + 1e-9)
            num = torch.where(lam < 1.0, num.clamp(lo, hi), num)
        step = max(1, CPU_SLICE_PIXELS // n_pix) if noise.device.type == "cpu" else max(k, 1)
        sl = [slice(i, i + step) for i in range(0, k, step)]
        parts = [self.threshold(noise[s], lam[s], num[s], height, width) for s in sl]
        weight, kept = (torch.cat(t) for t in zip(*parts))
        return weight.view(k, 1, height, width), kept

    def threshold(self, noise: Tensor, lam: Tensor, num: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
        """Masks (k, H * W) keeping the ``num`` largest pixels of each noise image, and their means."""
        n_pix = height * width
        grey = fourier_noise(noise, height, width, self.decay_power).flatten(1)
        if self.max_soft == 0.0:
            return top_pixels(grey, num), num.float() / n_pix
        ranks = rank_pixels(grey)
        soft = (torch.minimum(torch.minimum(lam, 1.0 - lam), torch.full_like(lam, self.max_soft)) * n_pix).floor().long()
        low, high = (num - soft).view(-1, 1), (num + soft).view(-1, 1)
        ramp = (high - 1 - ranks).float() / (high - low - 1).clamp_min(1).float()
        weight = torch.where(high - low > 1, ramp.clamp_(0.0, 1.0), (ranks < num.view(-1, 1)).float())
        return weight, weight.mean(dim=1)

    def plan(self, x: Tensor, partner: Tensor, lam: Tensor, active: Tensor, draws: Draws) -> Plan:
        h, w = x.shape[-2:]
        weight, kept = self.masks(lam, h, w, draws)
        return Plan(weight=weight, lam=kept.expand(x.shape[0]) if kept.shape[0] == 1 else kept)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, decay_power={self.decay_power}, max_soft={self.max_soft}"


@dataclass
class FMixOptions(MixOptions):
    name: str = "fmix"
    alpha: float = 1.0
    decay_power: float = 3.0
    max_soft: float = 0.0


register("fmix", FMix, FMixOptions)
