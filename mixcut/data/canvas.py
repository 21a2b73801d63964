"""A box-annotated set made from small images: objects pasted at a random scale and
position on a larger canvas whose background is unrelated image content.

Why: weakly-supervised localization needs ground-truth boxes, and no box-annotated
set exists offline. Two kinds of object:

  shapes (`make_shape_canvases`, the study's set)  the class is a silhouette (``SHAPES``) cut out
      of a natural image of any class, so the texture says nothing about the class and the box
      is the exact bounding box of the object's own pixels (computed from its mask);
  images (`make_canvases`)  whole CIFAR images pasted as squares: the box is the pasted tile,
      which also holds the image's own background, and small networks classify these poorly.

Background: a grid of ``patch`` x ``patch`` crops taken at random positions from
random pool images of *other* classes than the pasted object (scrambled clutter
with natural-image statistics but no whole object of the canvas's class).
Object: resized (bilinear, antialiased) to a random square side, pasted so that
it covers exactly its recorded box ``(x0, y0, x1, y1)``, x1/y1 exclusive.
Everything is batched; a loop runs over the distinct object sides only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def scrambled_backgrounds(
    pool: Tensor, pool_labels: Tensor, avoid: Tensor, canvas: int, patch: int, generator: torch.Generator
) -> Tensor:
    """(N, 3, canvas, canvas) uint8 backgrounds, one per entry of ``avoid`` (the class not to use)."""
    if canvas % patch:
        raise ValueError(f"canvas size {canvas} must be a multiple of the patch size {patch}.")
    if patch > min(pool.shape[-2:]):
        raise ValueError(f"patch size {patch} is larger than the pool images {tuple(pool.shape[-2:])}.")
    n, g, k = avoid.shape[0], canvas // patch, int(pool_labels.max()) + 1
    order = torch.argsort(pool_labels, stable=True)
    counts = torch.bincount(pool_labels, minlength=k)
    if (counts == 0).any():
        raise ValueError("the background pool needs images of every class.")
    starts = torch.cumsum(counts, 0) - counts
    # another class for every patch: avoid + 1..k-1 (mod k), then a random image of it
    other = (avoid.view(n, 1, 1) + torch.randint(1, k, (n, g, g), generator=generator)) % k
    pick = order[starts[other] + (torch.rand((n, g, g), generator=generator) * counts[other]).long()]
    oy = torch.randint(0, pool.shape[-2] - patch + 1, (n, g, g), generator=generator)
    ox = torch.randint(0, pool.shape[-1] - patch + 1, (n, g, g), generator=generator)
    ar = torch.arange(patch)
    rows = (oy[..., None, None] + ar.view(patch, 1)).expand(n, g, g, patch, patch)
    cols = (ox[..., None, None] + ar.view(1, patch)).expand(n, g, g, patch, patch)
    tiles = pool[pick[..., None, None].expand_as(rows), :, rows, cols]  # (n, g, g, patch, patch, 3)
    return tiles.permute(0, 5, 1, 3, 2, 4).reshape(n, 3, canvas, canvas).contiguous()


def resize_objects(objects: Tensor, side: int) -> Tensor:
    """uint8 objects resized to ``side`` x ``side`` (bilinear, antialiased), uint8."""
    x = F.interpolate(objects.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)


def random_boxes(n: int, canvas: int, min_side: int, max_side: int, generator: torch.Generator) -> Tensor:
    """(N, 4) int64 square boxes of sides in [min_side, max_side] at uniform positions inside the canvas."""
    if not 1 <= min_side <= max_side <= canvas:
        raise ValueError(f"need 1 <= min_side <= max_side <= canvas; got {min_side}, {max_side}, {canvas}.")
    side = torch.randint(min_side, max_side + 1, (n,), generator=generator)
    x0 = (torch.rand(n, generator=generator) * (canvas - side + 1)).long()
    y0 = (torch.rand(n, generator=generator) * (canvas - side + 1)).long()
    return torch.stack([x0, y0, x0 + side, y0 + side], 1)


def paste(objects: Tensor, backgrounds: Tensor, boxes: Tensor) -> Tensor:
    """``backgrounds`` with each object resized into its square box (exactly the box's pixels change)."""
    out = backgrounds.clone()
    sides = boxes[:, 2] - boxes[:, 0]
    for side in sides.unique().tolist():  # one resize per distinct side, not per image
        idx = (sides == side).nonzero().flatten()
        obj = resize_objects(objects[idx], side)  # (m, 3, s, s)
        ar = torch.arange(side)
        rows = (boxes[idx, 1].view(-1, 1, 1) + ar.view(1, side, 1)).expand(-1, side, side)
        cols = (boxes[idx, 0].view(-1, 1, 1) + ar.view(1, 1, side)).expand(-1, side, side)
        out[idx.view(-1, 1, 1).expand_as(rows), :, rows, cols] = obj.permute(0, 2, 3, 1)
    return out


# silhouettes on a grid u, v in (-1, 1) (pixel centres; v grows downwards): each a class of the shape set
SHAPES = ("disk", "square", "triangle", "diamond", "plus", "cross", "ring", "frame", "hbars", "vbars")


def shape_mask(shape: str, side: int) -> Tensor:
    """(side, side) bool silhouette of ``shape`` filling a ``side``-pixel square."""
    t = (torch.arange(side, dtype=torch.float64) + 0.5) / side * 2 - 1
    v, u = torch.meshgrid(t, t, indexing="ij")
    au, av = u.abs(), v.abs()
    r2 = u**2 + v**2
    masks = {
        "disk": r2 <= 1,
        "square": torch.ones_like(u, dtype=torch.bool),
        "triangle": au <= (v + 1) / 2,  # apex at the top
        "diamond": au + av <= 1,
        "plus": (au <= 0.34) | (av <= 0.34),
        "cross": (au - av).abs() <= 0.45,  # the two diagonals
        "ring": (r2 <= 1) & (r2 >= 0.5**2),
        "frame": torch.maximum(au, av) >= 0.55,
        "hbars": av >= 0.4,  # two horizontal bars ("=")
        "vbars": au >= 0.4,  # two vertical bars
    }
    if shape not in masks:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}.")
    return masks[shape]


def mask_boxes(masks: Tensor) -> Tensor:
    """(N, 4) int64 tight boxes (x0, y0, x1, y1; x1/y1 exclusive) of (N, H, W) non-empty bool masks."""
    rows, cols = masks.any(2), masks.any(1)
    ar_h, ar_w = torch.arange(masks.shape[1]), torch.arange(masks.shape[2])
    y0 = torch.where(rows, ar_h, masks.shape[1]).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1) + 1
    x0 = torch.where(cols, ar_w, masks.shape[2]).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1) + 1
    return torch.stack([x0, y0, x1, y1], 1)


def paste_shapes(textures: Tensor, shape_ids: Tensor, backgrounds: Tensor, tiles: Tensor) -> tuple[Tensor, Tensor]:
    """``backgrounds`` with texture ``i`` (resized to its square tile) shown through the silhouette
    ``SHAPES[shape_ids[i]]``; returns the canvases and each silhouette's tight box (exactly the
    bounding box of the pixels that changed to the object's)."""
    out = backgrounds.clone()
    boxes = torch.zeros_like(tiles)
    sides = tiles[:, 2] - tiles[:, 0]
    for side in sides.unique().tolist():  # one resize per distinct side, not per image
        idx = (sides == side).nonzero().flatten()
        bank = torch.stack([shape_mask(s, side) for s in SHAPES])
        masks = bank[shape_ids[idx]]  # (m, side, side)
        tex = resize_objects(textures[idx], side).permute(0, 2, 3, 1)  # (m, s, s, 3)
        ar = torch.arange(side)
        rows = (tiles[idx, 1].view(-1, 1, 1) + ar.view(1, side, 1)).expand(-1, side, side)
        cols = (tiles[idx, 0].view(-1, 1, 1) + ar.view(1, 1, side)).expand(-1, side, side)
        where = (idx.view(-1, 1, 1).expand_as(rows), slice(None), rows, cols)
        out[where] = torch.where(masks[..., None], tex, out[where])
        boxes[idx] = mask_boxes(masks) + tiles[idx, :2].repeat(1, 2)
    return out, boxes


def make_shape_canvases(
    textures: Tensor,
    texture_labels: Tensor,
    shape_ids: Tensor,
    pool: Tensor,
    pool_labels: Tensor,
    canvas: int = 48,
    scale: tuple[float, float] = (0.3, 0.55),
    patch: int | None = None,
    background_contrast: float = 0.4,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """(canvases uint8 (N, 3, canvas, canvas), tight boxes int64 (N, 4)) of silhouettes ``shape_ids``.

    Each silhouette is cut out of one uint8 image of ``textures`` (whose class ``texture_labels`` the
    clutter avoids) and pasted in a square tile of side uniform in ``scale`` x ``canvas`` at a uniform
    position; the clutter from ``pool`` is shown at ``background_contrast`` around mid-grey, so the
    figure stands out from the ground while both are natural-image texture.
    """
    gen = torch.Generator().manual_seed(seed)
    patch = patch or max(1, canvas // 8)  # clutter finer than the objects: its patch edges are not object outlines
    lo, hi = max(1, round(scale[0] * canvas)), min(canvas, round(scale[1] * canvas))
    if lo < 4:
        raise ValueError(f"objects of {lo} px cannot show a silhouette; raise the canvas ({canvas}) or scale ({scale}).")
    tiles = random_boxes(textures.shape[0], canvas, lo, hi, gen)
    clutter = scrambled_backgrounds(pool, pool_labels, texture_labels, canvas, patch, gen).float()
    backgrounds = (127.5 + background_contrast * (clutter - 127.5)).round().clamp(0, 255).to(torch.uint8)
    return paste_shapes(textures, shape_ids, backgrounds, tiles)


def make_canvases(
    objects: Tensor,
    labels: Tensor,
    pool: Tensor,
    pool_labels: Tensor,
    canvas: int = 64,
    scale: tuple[float, float] = (0.4, 0.75),
    patch: int | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """(canvases uint8 (N, 3, canvas, canvas), boxes int64 (N, 4)) for uint8 ``objects`` of class ``labels``.

    Object sides are drawn uniformly in ``scale`` x ``canvas``; backgrounds from ``pool``.
    """
    gen = torch.Generator().manual_seed(seed)
    patch = patch or canvas // 4
    lo, hi = max(1, round(scale[0] * canvas)), min(canvas, round(scale[1] * canvas))
    boxes = random_boxes(objects.shape[0], canvas, lo, hi, gen)
    backgrounds = scrambled_backgrounds(pool, pool_labels, labels, canvas, patch, gen)
    return paste(objects, backgrounds, boxes), boxes
