"""Pure tensor helpers shared by the mixers.

Everything here is stateless and vectorized over the batch: randomness comes in
through an explicit ``torch.Generator``, per-sample parameters are tensors of
shape (B,), and boxes become masks by broadcasting. Nothing reads a value back
to the host, so these functions never synchronise a CUDA stream.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "smooth_one_hot",
    "check_labels",
    "as_soft_targets",
    "mix_targets",
    "sample_beta",
    "random_cycle",
    "random_matching",
    "flip_partner",
    "symmetrize",
    "cutmix_boxes",
    "box_sides",
    "centred_boxes",
    "area_bounds",
    "bounded_sides",
    "bounded_centres",
    "slide_inside",
    "minmax_boxes",
    "box_area",
    "box_masks",
    "box_keep_weights",
    "weight_dtype",
    "keep_all",
    "blend",
    "select",
    "apply_plan",
    "blend_rows",
    "paste_boxes",
    "blend_partners_uint8",
    "paste_partner_boxes",
]


# --------------------------------------------------------------------- targets
def smooth_one_hot(y: Tensor, num_classes: int, label_smoothing: float = 0.0) -> Tensor:
    """One-hot float32 targets with ``label_smoothing`` spread over all classes.

    The true class gets ``1 - ls + ls / K`` and every other class ``ls / K``
    (the convention of timm and of ``F.cross_entropy(label_smoothing=...)``).
    """
    check_labels(y, num_classes)
    off = label_smoothing / num_classes
    on = 1.0 - label_smoothing + off
    out = torch.full((y.shape[0], num_classes), off, dtype=torch.float32, device=y.device)
    return out.scatter_(1, y.long().view(-1, 1), on)


def check_labels(y: Tensor, num_classes: int) -> None:
    """Class indices must lie in ``[0, num_classes)``: on CPU a ValueError naming
    the first bad label, its position and ``num_classes``; on an accelerator an
    asynchronous device assert (no host sync per batch; the trainer checks the
    data set's labels once at the start, see `mixcut.data.labels`)."""
    if y.numel() == 0:
        return
    if y.device.type != "cpu":
        torch._assert_async(((y >= 0) & (y < num_classes)).all())
        return
    bad = (y < 0) | (y >= num_classes)
    if bool(bad.any()):
        pos = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"label {int(y[pos])} at position {pos} of the batch is outside [0, num_classes={num_classes}); "
            f"the labels must be class indices 0..{num_classes - 1}."
        )


def as_soft_targets(y: Tensor, num_classes: int | None, label_smoothing: float) -> Tensor:
    """Class indices become smoothed one-hot rows; soft targets pass through.

    Soft targets (B, K) are assumed to carry their smoothing already (they came
    from an earlier mixer), so smoothing is never applied twice.
    """
    if y.dim() == 2 and y.is_floating_point():
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(f"soft targets have {y.shape[1]} classes but num_classes={num_classes}")
        return y.float()
    if y.dim() != 1:
        raise ValueError(f"targets must be class indices (B,) or soft targets (B, K); got shape {tuple(y.shape)}")
    if num_classes is None:
        raise ValueError("num_classes is required to turn class indices into soft targets")
    return smooth_one_hot(y, num_classes, label_smoothing)


def mix_targets(targets: Tensor, partner: Tensor, lam: Tensor) -> Tensor:
    """``lam * t + (1 - lam) * t[partner]`` per row; rows still sum to one."""
    return torch.lerp(targets[partner], targets, lam.view(-1, 1).to(targets.dtype))


# -------------------------------------------------------------------- sampling
def sample_beta(alpha: float, n: int, generator: torch.Generator, device: torch.device | str) -> Tensor:
    """``n`` float32 draws from Beta(alpha, alpha) using ``generator``.

    Drawn as the first coordinate of a Dirichlet(alpha, alpha), which is exact
    (no rejection loop to cap) and accepts an explicit generator on CPU and CUDA.
    """
    conc = torch.full((n, 2), float(alpha), dtype=torch.float32, device=device)
    return torch._sample_dirichlet(conc, generator=generator)[:, 0]


def random_cycle(n: int, generator: torch.Generator, device: torch.device | str) -> Tensor:
    """A uniformly random single n-cycle: every sample gets a different partner.

    Unlike a plain ``randperm`` (about one fixed point per batch, i.e. a sample
    mixed with itself) no sample is wasted; a batch of one pairs with itself.
    """
    order = torch.randperm(n, generator=generator, device=device)
    partner = torch.empty_like(order)
    partner[order] = order.roll(-1)
    return partner


def random_matching(n: int, generator: torch.Generator, device: torch.device | str) -> Tensor:
    """A random involution: samples are matched in pairs (i <-> j).

    With an odd batch, one random sample is left paired with itself (unmixed).
    """
    order = torch.randperm(n, generator=generator, device=device)
    m = n - (n % 2)
    partner = torch.arange(n, device=device)
    a, b = order[0:m:2], order[1:m:2]
    partner[a] = b
    partner[b] = a
    return partner


def keep_self_pairs(out: Tensor, source: Tensor, partner: Tensor) -> Tensor:
    """Rows whose partner is the sample itself take ``source``'s row (that sample's own pixels)
    exactly, in ``out``: a blend of ``a`` with ``a`` is ``a`` for finite values, but NaN at
    ±Inf (``inf - inf``). Of the pairings above only an odd batch (or a batch of one) has such
    rows."""
    own = partner == torch.arange(partner.shape[0], device=partner.device)
    return torch.where(own.view(-1, *([1] * (out.dim() - 1))), source, out, out=out)


def flip_partner(n: int, device: torch.device | str) -> Tensor:
    """timm's pairing: sample i mixes with sample n - 1 - i."""
    return torch.arange(n - 1, -1, -1, device=device)


def symmetrize(values: Tensor, partner: Tensor) -> Tensor:
    """Give both members of each pair the value drawn for the lower index."""
    idx = torch.arange(values.shape[0], device=values.device)
    keep = (idx <= partner).view(-1, *([1] * (values.dim() - 1)))
    return torch.where(keep, values, values[partner])


# ----------------------------------------------------------------------- boxes
def cutmix_boxes(lam: Tensor, height: int, width: int, cy: Tensor, cx: Tensor) -> Tensor:
    """CutMix boxes as in the paper and timm's ``rand_bbox``.

    A box of side ``int(side * sqrt(1 - lam))`` centred at ``(cy, cx)`` and
    clipped at the border. Returns int64 (B, 4) rows ``(y0, y1, x0, x1)``,
    half-open. Same arithmetic as current timm (an odd side keeps its full
    length), so a shared lambda and centre give the same box.
    """
    cut_h, cut_w = box_sides(lam, height, width)
    return centred_boxes(cut_h, cut_w, height, width, cy, cx)


def box_sides(lam: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """The paper's box sides ``int(side * sqrt(1 - lam))`` (int64, (B,) each)."""
    cut_rat = torch.sqrt((1.0 - lam.double()).clamp_min(0.0))
    return (height * cut_rat).long(), (width * cut_rat).long()


def centred_boxes(cut_h: Tensor, cut_w: Tensor, height: int, width: int, cy: Tensor, cx: Tensor) -> Tensor:
    """Boxes of sides ``(cut_h, cut_w)`` centred at ``(cy, cx)``, clipped at the border."""
    y0 = (cy - cut_h // 2).clamp(0, height)
    y1 = (cy + (cut_h + 1) // 2).clamp(0, height)
    x0 = (cx - cut_w // 2).clamp(0, width)
    x1 = (cx + (cut_w + 1) // 2).clamp(0, width)
    return torch.stack([y0, y1, x0, x1], dim=1)


# ------------------------------------------------- lam_clip on the kept share
def area_bounds(lam: Tensor, lam_clip: tuple[float, float], height: int, width: int) -> tuple[Tensor, Tensor]:
    """Smallest and largest pasted area (pixels, int64 (B,)) that keep the kept
    share ``1 - area / (H * W)`` inside ``lam_clip``; (0, 0) for unmixed samples
    (lam == 1), which paste nothing."""
    lo, hi = lam_clip
    n = height * width
    mixed = lam < 1.0
    min_area = torch.where(mixed, math.ceil((1.0 - hi) * n - 1e-9), 0)
    max_area = torch.where(mixed, math.floor((1.0 - lo) * n + 1e-9), 0)
    return min_area.long(), max_area.long()


def bounded_sides(lam: Tensor, height: int, width: int, min_area: Tensor) -> tuple[Tensor, Tensor]:
    """The paper's box sides, widened only where rounding down left the box
    smaller than ``min_area`` pixels: the width grows first (up to the image),
    then the height. The area then lies in ``[min_area, min_area + max side)``,
    so it stays at most ``(1 - lo) * H * W`` whenever ``lam_clip`` is wider
    than one row or column of the image."""
    cut_h, cut_w = box_sides(lam, height, width)
    short = cut_h * cut_w < min_area
    cut_h = torch.where(short, cut_h.clamp_min(1), cut_h)
    wider = torch.minimum(-(-min_area // cut_h), torch.full_like(cut_w, width))
    cut_w = torch.where(short, wider, cut_w)
    taller = torch.minimum(-(-min_area // cut_w.clamp_min(1)), torch.full_like(cut_h, height))
    cut_h = torch.where(short & (cut_h * cut_w < min_area), taller, cut_h)
    return cut_h, cut_w


def _overlap(side: Tensor, size: int) -> Tensor:
    """Rows (or columns) of a box of ``side`` (B,) left inside ``[0, size)`` when
    centred at each position: (B, size), the arithmetic of `centred_boxes`."""
    pos = torch.arange(size, device=side.device).view(1, -1)
    side = side.view(-1, 1)
    return (pos + (side + 1) // 2).clamp_max(size) - (pos - side // 2).clamp_min(0)


def bounded_centres(cut_h: Tensor, cut_w: Tensor, height: int, width: int, min_area: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Box centres uniform over the positions whose clipped box still covers at
    least ``min_area`` pixels (the paper's uniform centre, conditioned on the
    bound). ``u``: two uniform [0, 1) draws per sample, (B, 2). Vectorized, no
    host sync: the positions are counted per row from the sorted column overlaps.
    """
    oy, ox = _overlap(cut_h, height), _overlap(cut_w, width)  # (B, H), (B, W)
    need = -(-min_area.view(-1, 1) // oy.clamp_min(1))  # columns of overlap each row needs
    count = width - torch.searchsorted(ox.sort(dim=1).values.contiguous(), need.contiguous())  # valid columns per row
    cum = count.cumsum(1)
    pick = (u[:, 0].double() * cum[:, -1].double()).long().view(-1, 1)
    cy = torch.searchsorted(cum, pick, right=True).clamp_max(height - 1)
    # the valid columns of a row are contiguous (the overlap rises, stays, falls)
    first = (ox >= need.gather(1, cy)).int().argmax(dim=1)
    cx = first + (u[:, 1].double() * count.gather(1, cy).view(-1).double()).long()
    return cy.view(-1), cx.clamp_max(width - 1)


def slide_inside(boxes: Tensor, cut_h: Tensor, cut_w: Tensor, height: int, width: int, min_area: Tensor) -> Tensor:
    """Where the border clipped a box below ``min_area`` pixels, move the whole
    box inside the image instead: it keeps its sides and still covers its centre."""
    short = box_area(boxes) < min_area
    # a box clipped at the top or left starts at 0 already; one clipped at the far side moves back
    y0 = torch.minimum(boxes[:, 0], (height - cut_h).clamp_min(0))
    x0 = torch.minimum(boxes[:, 2], (width - cut_w).clamp_min(0))
    inside = torch.stack([y0, y0 + cut_h, x0, x0 + cut_w], dim=1)
    return torch.where(short.view(-1, 1), inside, boxes)


def minmax_boxes(height: int, width: int, minmax: tuple[float, float], u: Tensor) -> Tensor:
    """Boxes whose sides are uniform in [min, max) of the image side (timm's
    ``rand_bbox_minmax``): height and width independent, the box fully inside
    the image. ``u`` holds four uniform [0, 1) draws per sample, shape (B, 4).
    """
    lo, hi = minmax

    def side(size: int, u_side: Tensor) -> Tensor:
        a, b = int(size * lo), int(size * hi)
        return a + (u_side * max(b - a, 0)).long()

    cut_h, cut_w = side(height, u[:, 0]), side(width, u[:, 1])
    y0 = (u[:, 2] * (height - cut_h + 1)).long()
    x0 = (u[:, 3] * (width - cut_w + 1)).long()
    return torch.stack([y0, y0 + cut_h, x0, x0 + cut_w], dim=1)


def box_area(boxes: Tensor) -> Tensor:
    """Pixel count of each half-open (y0, y1, x0, x1) box."""
    return (boxes[:, 1] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 2]).clamp_min(0)


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """Boolean masks (B, 1, H, W), True inside each box, built by broadcasting."""
    in_rows, in_cols = _box_rows_cols(boxes, height, width)
    return in_rows & in_cols  # (B, 1, H, 1) & (B, 1, 1, W): one full-size op


def box_keep_weights(boxes: Tensor, height: int, width: int, dtype: torch.dtype = torch.bool) -> Tensor:
    """(B, 1, H, W) weights of each sample's own pixels: 0 (False) inside its box, 1 (True) outside.

    Floating weights come out directly in ``dtype`` (a bool-to-float conversion
    of the mask costs as much as the blend on CPU); they are exactly 0 or 1, so
    blending with them equals a select.
    """
    in_rows, in_cols = _box_rows_cols(boxes, height, width)
    if dtype == torch.bool:
        return ~in_rows | ~in_cols
    one = torch.ones((), dtype=dtype, device=boxes.device)
    return torch.addcmul(one, in_rows.to(dtype), in_cols.to(dtype), value=-1)


def _box_rows_cols(boxes: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Which rows (B, 1, H, 1) and columns (B, 1, 1, W) each half-open box covers."""
    rows = torch.arange(height, device=boxes.device).view(1, 1, height, 1)
    cols = torch.arange(width, device=boxes.device).view(1, 1, 1, width)
    y0, y1, x0, x1 = (boxes[:, i].view(-1, 1, 1, 1) for i in range(4))
    return (rows >= y0) & (rows < y1), (cols >= x0) & (cols < x1)


# --------------------------------------------------------------------- images
# Non-finite isolation: every path below leaves a sample's kept pixels (weight 1,
# outside its pasted box) bit-identical to its own, whatever its partner holds.
# Arithmetic cannot promise that (``lerp(nan, own, 1)`` is NaN), so kept pixels
# are always selected or copied, never computed.


def blend(x: Tensor, source: Tensor, weight: Tensor | float, out: Tensor | None = None, overwrite_source: bool = False) -> Tensor:
    """``weight * x + (1 - weight) * source`` in x's dtype, written to ``out``.

    ``weight`` broadcasts: a float, (B, 1, 1, 1) per-sample lambdas or
    (B, 1, H, W) masks. Where the weight is 1 the result is ``x`` exactly, also
    when ``source`` is NaN or infinite there. ``overwrite_source`` lets a
    blend into ``x`` itself use ``source`` as its scratch. Integer images are
    blended in float32 and rounded, a few samples at a time (see `_blend_integer`).
    """
    if not isinstance(weight, Tensor) and weight >= 1.0:
        return x if out is x else (out.copy_(x) if out is not None else x.clone())
    if not x.is_floating_point():
        return _blend_integer(x, source, weight, out if out is not None else torch.empty_like(x))
    if not isinstance(weight, Tensor):  # 0 <= weight < 1: every pixel is a blend
        return torch.lerp(source, x, weight, out=out) if out is not None else _like(torch.lerp(source, x, weight), x)
    weight = weight.to(x.dtype)
    kept = weight == 1
    if torch.is_grad_enabled() and (x.requires_grad or source.requires_grad):
        return _like(torch.where(kept, x, torch.lerp(source, x, weight)), x)
    if out is None:
        out = torch.empty_like(x)  # x's memory format, whatever the source's layout
    # the blend must not overwrite x before the kept pixels are taken from it
    full_source = overwrite_source and source.shape == x.shape and source.stride() == x.stride()
    mixed = (source if full_source else torch.empty_like(x)) if out is x else out
    torch.lerp(source, x, weight, out=mixed)
    return torch.where(kept, x, mixed, out=out)


def keep_all(x: Tensor) -> Tensor:
    """Per-sample weights (B, 1, 1, 1) that keep every sample: True."""
    return torch.ones((x.shape[0], 1, 1, 1), dtype=torch.bool, device=x.device)


def weight_dtype(x: Tensor) -> torch.dtype:
    """The dtype of a 0/1 keep-weight map: bool, for the exact select (`select`)."""
    return torch.bool


def select(mask: Tensor, x: Tensor, source: Tensor, out: Tensor | None = None, overwrite_source: bool = False) -> Tensor:
    """``torch.where(mask, x, source)`` for a boolean (B, 1, H, W) or (B, 1, 1, 1) mask, exact.

    Integer images on CPU take a bitwise select (faster than ``where`` with a
    broadcast mask there); ``overwrite_source`` lets it use ``source`` as its
    scratch. Everything else takes ``where``, which never computes with the
    dropped value (an arithmetic blend with 0/1 weights would turn a NaN or
    Inf of the partner into a NaN in the kept pixels).
    """
    if x.device.type != "cpu" or x.is_floating_point() or x.dtype == torch.bool:
        return torch.where(mask, x, source, out=out) if out is not None else torch.where(mask, x, source)
    keep = mask.to(x.dtype).neg_()  # every bit set where the mask is True (255 / -1)
    drop = torch.bitwise_not(keep)
    rest = source.bitwise_and_(drop) if overwrite_source else torch.bitwise_and(source, drop)
    res = torch.bitwise_and(x, keep, out=out) if out is not None else torch.bitwise_and(x, keep)
    return res.bitwise_or_(rest)


def apply_plan(
    x: Tensor,
    source: Tensor,
    weight: Tensor,
    boxes: Tensor | None = None,
    out: Tensor | None = None,
    overwrite_source: bool = False,
) -> Tensor:
    """Mixed images: ``weight * x + (1 - weight) * source``, then inside each
    sample's box (``boxes``, (B, 4), optional) the source's pixels.

    On CPU (no autograd) per-sample weights and boxes are applied sample by
    sample with slice copies: the host reads the small (B,) and (B, 4) tensors
    for free there, and a copy of the box beats any full-batch masked pass.
    Elsewhere the boxes become masks and the batch is mixed in one pass, with
    no host sync.
    """
    h, w = x.shape[-2:]
    grad = torch.is_grad_enabled() and (x.requires_grad or source.requires_grad)
    host = x.device.type == "cpu" and not grad
    per_sample = weight.shape[-2:] == (1, 1)
    if boxes is not None and not (host and per_sample):
        inside = box_masks(boxes, h, w)
        weight = weight & ~inside if weight.dtype == torch.bool else weight.masked_fill(inside, 0.0)
        boxes, per_sample = None, False
    if host and per_sample:
        out = blend_rows(x, source, weight.view(-1), out)
    elif weight.dtype == torch.bool:
        out = select(weight, x, source, out=out, overwrite_source=overwrite_source)
    else:
        out = blend(x, source, weight, out=out, overwrite_source=overwrite_source)
    if boxes is not None:
        paste_boxes(out, source, boxes)
    return out


def blend_rows(x: Tensor, source: Tensor, weight: Tensor, out: Tensor | None = None) -> Tensor:
    """`blend` with one weight per sample (B,), on the host, sample by sample:
    weight 1 keeps the sample (no work in place), 0 copies the source, and
    only the other samples are blended, in the same arithmetic as `blend`."""
    if out is None:
        out = torch.empty_like(x)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    for i, w in enumerate(weight.to(dtype).tolist()):
        if w >= 1.0:
            if out is not x:
                out[i].copy_(x[i])
        elif w <= 0.0:
            out[i].copy_(source[i] if source.dim() else source)
        else:
            blend(x[i : i + 1], source[i : i + 1] if source.dim() else source, w, out=out[i : i + 1])
    return out


def paste_boxes(out: Tensor, source: Tensor, boxes: Tensor) -> Tensor:
    """``out[i, :, y0:y1, x0:x1] = source[i, :, y0:y1, x0:x1]`` for every
    half-open box row ``(y0, y1, x0, x1)`` of ``boxes`` (host loop, CPU)."""
    for i, (y0, y1, x0, x1) in enumerate(boxes.tolist()):
        if y1 > y0 and x1 > x0:
            out[i, :, y0:y1, x0:x1] = source[i, :, y0:y1, x0:x1]
    return out


def _like(t: Tensor, x: Tensor) -> Tensor:
    """``t`` in ``x``'s memory format (channels-last or contiguous)."""
    if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return t.contiguous()
    return t.contiguous(memory_format=torch.channels_last)


_INT_CHUNK_BYTES = 8 << 20  # float32 working set per chunk: stays in cache, no page faults
_U8_CHUNK_ELEMS = 1 << 18  # CPU uint8 path: two float32 chunks of 1 MiB stay in L2
_ROUND_MAGIC = float(1 << 23)  # v + 2**23 rounds v in [0, 2**23) to the nearest integer, ties to even


def _blend_integer(x: Tensor, source: Tensor, weight: Tensor | float, out: Tensor) -> Tensor:
    """Integer blend through float32 in chunks of samples: whole-batch float
    copies would be 4x the batch and, on CPU, cost more in page faults than in
    arithmetic. The loop runs over chunks (a handful per batch), not samples.

    Results: ``round_half_even(lerp(source, x, weight))`` in float32, the same
    on every path. uint8 on CPU takes `_blend_uint8_cpu`."""
    if x.dtype == torch.uint8 and not x.is_cuda:
        return _blend_uint8_cpu(x, source, weight, out)
    per_sample = max(1, x[0].numel() * 4)
    step = x.shape[0] if x.is_cuda else max(1, _INT_CHUNK_BYTES // per_sample)
    info = torch.iinfo(x.dtype)
    for i in range(0, x.shape[0], step):
        sl = slice(i, i + step)
        w = weight[sl].float() if isinstance(weight, Tensor) and weight.shape[0] > 1 else weight
        w = w.float() if isinstance(w, Tensor) else w
        src = source[sl] if source.dim() and source.shape[0] > 1 else source
        mixed = torch.lerp(src.float(), x[sl].float(), w).round_().clamp_(info.min, info.max)
        out[sl].copy_(mixed)
    return out


def _blend_uint8_cpu(x: Tensor, source: Tensor, weight: Tensor | float, out: Tensor) -> Tensor:
    """The uint8 blend on CPU, in two kept float32 chunks that stay in cache.

    Same arithmetic as the generic path (float32 ``lerp``, then rounding half
    to even), cheaper steps: the rounding adds 2**23, which leaves the rounded
    integer in the low byte of the float's bits, and the int32 view of those
    bits converts to uint8 by keeping that byte, several times faster than a
    float-to-uint8 conversion. A blend of values in [0, 255] with a weight in
    [0, 1] stays in [0, 255], so nothing needs clamping.
    """
    n = x.shape[0]
    k = max(1, min(n, _U8_CHUNK_ELEMS // max(1, x[0].numel())))
    fx = torch.empty_like(x[:k], dtype=torch.float32)  # x's memory format: conversions copy straight
    fs = torch.empty_like(fx)
    for i in range(0, n, k):
        sl, m = slice(i, i + k), min(k, n - i)
        a, b = fx[:m], fs[:m]
        a.copy_(x[sl])
        b.copy_(source[sl] if source.dim() and source.shape[0] > 1 else source)
        w = weight[sl] if isinstance(weight, Tensor) and weight.dim() and weight.shape[0] > 1 else weight
        torch.lerp(b, a, w.float() if isinstance(w, Tensor) else w, out=a)
        a.add_(_ROUND_MAGIC)
        out[sl].copy_(a.view(torch.int32))  # int32 -> uint8 keeps the low byte: the rounded value
    return out


def blend_partners_uint8(x: Tensor, partner: Tensor, lam: float, out: Tensor) -> Tensor:
    """``blend(x, x[partner], lam)`` for a uint8 batch on CPU, without a copy of
    the partners and with one float conversion per image instead of two.

    The samples are visited along the cycles of ``partner`` (i, partner[i],
    partner[partner[i]], ...): each image is converted once, serves as the
    source of the sample before it and then as its own image, and is
    overwritten only after both uses; the first image of a cycle is kept in
    float for the cycle's last sample. Same arithmetic as `_blend_uint8_cpu`.
    Writing into ``x`` itself (``out is x``) is safe.
    """
    if lam >= 1.0:
        return x if out is x else out.copy_(x)
    p = partner.tolist()
    first, r, a, b = (torch.empty_like(x[0], dtype=torch.float32) for _ in range(4))
    seen = [False] * len(p)
    for start in range(len(p)):
        if seen[start]:
            continue
        if p[start] == start:  # no partner: the image stays as it is
            seen[start] = True
            if out is not x:
                out[start].copy_(x[start])
            continue
        first.copy_(x[start])
        own, k = first, start
        while not seen[k]:
            seen[k] = True
            j = p[k]
            src = first if j == start else (b if own is a else a)
            if src is not first:
                src.copy_(x[j])
            torch.lerp(src, own, lam, out=r)
            r.add_(_ROUND_MAGIC)
            out[k].copy_(r.view(torch.int32))  # int32 -> uint8 keeps the low byte: the rounded value
            own, k = src, j
    return out


def paste_partner_boxes(x: Tensor, partner: Tensor, boxes: Tensor, out: Tensor) -> Tensor:
    """``out[i] = x[i]`` with ``x[partner[i]]`` inside box i, on CPU, without a
    copy of the partners: into a separate ``out`` the boxes are read straight
    from ``x``; in place (``out is x``) the samples are visited along the cycles
    of ``partner``, so that each image is read as a source before its own box is
    written, and only the first image of each cycle is kept aside."""
    p, rows = partner.tolist(), boxes.tolist()
    if out is not x:
        out.copy_(x)
        for k, (y0, y1, x0, x1) in enumerate(rows):
            if y1 > y0 and x1 > x0 and p[k] != k:
                out[k, :, y0:y1, x0:x1] = x[p[k], :, y0:y1, x0:x1]
        return out
    pred = [0] * len(p)
    for k, j in enumerate(p):
        pred[j] = k
    seen = [False] * len(p)
    for start in range(len(p)):
        if seen[start] or p[start] == start:
            seen[start] = True
            continue
        y0, y1, x0, x1 = rows[pred[start]]  # the cycle's last sample reads this region of start
        kept = x[start, :, y0:y1, x0:x1].clone()
        k = start
        while not seen[k]:
            seen[k] = True
            j = p[k]
            y0, y1, x0, x1 = rows[k]
            if y1 > y0 and x1 > x0:
                out[k, :, y0:y1, x0:x1] = kept if j == start else x[j, :, y0:y1, x0:x1]
            k = j
    return out
