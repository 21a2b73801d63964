"""Occlusion robustness (the CutMix paper's Figure 4 protocol, Yun et al. 2019).

Top-1 when the image is partly filled with zeros (black, 0 in [0, 1] pixel units):

  hole    a centred square of side ``s`` is zeroed (center occlusion);
  border  everything *outside* a centred square of side ``s`` is zeroed (boundary occlusion).

Sizes are given on the paper's 224-pixel scale (0, 16, ..., 224) and scaled to
the evaluated image size, so one curve per model is comparable across resolutions.
A hole of size 0 is the clean image; a border square of size 224 is the clean image too.

Summary: the curves are the result (the paper's Figure 4 plots them); a single number
per mode is the mean over the *informative* sizes only (`informative_sizes`): a hole
of size 0 or a kept square of 224 is the clean image, and a hole of 224 or a kept
square of 0 is an all-black image, so averaging them in would mix clean accuracy and
chance into the robustness number.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

MODES = ("hole", "border")
REFERENCE_SIZE = 224
DEFAULT_SIZES = tuple(range(0, REFERENCE_SIZE + 1, 32))


def square_mask(height: int, width: int, side: int, device=None) -> Tensor:
    """(H, W) bool: True inside the centred square of ``side`` pixels (clipped to the image)."""
    top, left = (height - side) // 2, (width - side) // 2
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    inside_r = (rows >= top) & (rows < top + side)
    inside_c = (cols >= left) & (cols < left + side)
    return inside_r[:, None] & inside_c[None, :]


def scaled_side(size: int, image_size: int, reference: int = REFERENCE_SIZE) -> int:
    """``size`` on the ``reference`` scale in pixels of an ``image_size`` image."""
    return int(round(size * image_size / reference))


def occlude(x: Tensor, side: int, mode: str, fill: Tensor | float = 0.0) -> Tensor:
    """Batch ``x`` (B, C, H, W) with the hole (or the border band) set to ``fill``
    (a number or a per-channel tensor, e.g. the normalised value of black)."""
    if mode not in MODES:
        raise ValueError(f"occlusion mode must be one of {MODES}; got {mode!r}.")
    inside = square_mask(x.shape[-2], x.shape[-1], side, x.device)
    zero = inside if mode == "hole" else ~inside
    fill = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return torch.where(zero, fill, x)


def informative_sizes(sizes: Sequence[int | str], image_size: int | None = None, reference: int = REFERENCE_SIZE) -> list[int]:
    """The sizes (``reference`` scale) that occlude part of the image but not all of it: 0 < size < reference,
    and, when ``image_size`` is known, a side in pixels that is neither 0 nor the whole image."""
    out = []
    for s in sizes:
        s = int(float(s))
        if 0 < s < reference and (image_size is None or 0 < scaled_side(s, image_size, reference) < image_size):
            out.append(s)
    return out


def curve_summary(curve: dict, sizes: Sequence[int] | None = None) -> float | None:
    """Mean top-1 of ``{"size": top1}`` over the informative sizes (``sizes``, default `informative_sizes`)."""
    keep = [str(s) for s in (sizes if sizes is not None else informative_sizes(curve))]
    values = [curve[k] for k in keep if k in curve]
    return sum(values) / len(values) if values else None


@torch.no_grad()
def occlusion_curve(
    model: nn.Module, batches, mean, std, sizes: Sequence[int] = DEFAULT_SIZES, modes: Sequence[str] = MODES
) -> dict:
    """Top-1 (%) per mode per size (224 scale) over ``batches`` (normalised), black fill.

    Returns ``{"hole": {"0": top1, "32": ...}, "border": {...}, "n": N, "sizes": [...],
    "informative_sizes": [...], "summary": {"hole": mean over the informative sizes, "border": ...}}``.
    """
    model.eval()
    device = next(model.parameters()).device
    black = -torch.as_tensor(list(mean), dtype=torch.float32, device=device) / torch.as_tensor(
        list(std), dtype=torch.float32, device=device
    )  # 0 in pixel units, normalised
    correct = {m: torch.zeros(len(sizes), dtype=torch.float64, device=device) for m in modes}
    n, image_size = 0, None
    for x, y in batches.epoch(0):
        n += y.shape[0]
        image_size = x.shape[-1]
        for m in modes:
            for i, s in enumerate(sizes):
                side = scaled_side(s, x.shape[-1])
                correct[m][i] += (model(occlude(x, side, m, black.to(x.dtype))).argmax(1) == y).sum()
    out: dict = {m: {str(s): 100.0 * float(c) / max(n, 1) for s, c in zip(sizes, correct[m])} for m in modes}
    keep = informative_sizes(sizes, image_size)
    out.update(n=n, sizes=list(sizes), reference_size=REFERENCE_SIZE, informative_sizes=keep)
    out["summary"] = {m: curve_summary(out[m], keep) for m in modes}
    return out
