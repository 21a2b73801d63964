"""TransMix (Chen et al., CVPR 2022): CutMix/Mixup for vision transformers, with the
label weight of a CutMix sample taken from the class token's attention.

The pixels are the DeiT switch's (Mixup or CutMix per batch, pair or sample). After
the forward pass, a CutMix sample's weight of the pasted label becomes

    (1 - area_weight) * attention share of the pasted patches + area_weight * pasted area share

where the attention share is the class token's attention over the image patches in
the last block, averaged over heads, summed over the patches whose top-left pixel
lies in the pasted box (the authors' nearest-neighbour downsampling of the box mask)
and divided by its sum over all patches. ``area_weight=0.5`` is the authors' code
(``transmix_label(..., ratio=0.5)`` in Beckschen/TransMix, transmix.py); the paper's
equation is the pure attention share (``area_weight=0``). Mixup samples keep their
lambda (TransMix re-weighs box pastes only).

How the attention is read without changing the model: a forward hook on the last
block's attention module (timm's ``Attention``) keeps its input tokens; after the
forward pass the class-token row ``softmax(q_cls k^T * scale)`` is recomputed from the
module's own ``qkv`` weights, in float32 and without gradients (one row of queries
and the keys: about a third of one block's qkv projection). Fused attention
(``scaled_dot_product_attention``) never materialises the map, so recomputing it is
what makes this work whatever ``fused_attn`` says; the model's output is untouched.

Not supported, and refused with a message: models without a class token used for
classification (CNNs, Swin, ``global_pool='avg'`` ViTs); ``torch.compile``d models
(the hook would not run inside the compiled graph).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from ..wrappers import unwrap_model
from . import functional as F
from .base import Draws, Mixer, MixOptions, MixResult, Plan, check_prob
from .choice import MixChoice
from .cutmix import CutMix
from .mixup import Mixup
from .registry import register


def patch_grid_rows(grid: int, side: int, device) -> Tensor:
    """Pixel row (or column) that nearest-neighbour downsampling of a ``side``-pixel
    mask to ``grid`` cells reads for each cell: ``floor(i * side / grid)``, (grid,) int64."""
    scale = float(side) / float(grid)
    return (torch.arange(grid, device=device, dtype=torch.float32) * scale).floor().long()


def patch_masks(boxes: Tensor, height: int, width: int, grid: tuple[int, int]) -> Tensor:
    """(B, gh * gw) float masks: 1 for the patches whose sampled pixel lies in each
    sample's half-open box (y0, y1, x0, x1), as nearest downsampling of the box mask."""
    gh, gw = grid
    rows = patch_grid_rows(gh, height, boxes.device).view(1, -1)
    cols = patch_grid_rows(gw, width, boxes.device).view(1, -1)
    y0, y1, x0, x1 = (b.view(-1, 1) for b in boxes.unbind(1))
    in_rows = (rows >= y0) & (rows < y1)  # (B, gh)
    in_cols = (cols >= x0) & (cols < x1)  # (B, gw)
    return (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).flatten(1).float()


def attention_lam(
    attention: Tensor, boxes: Tensor, lam: Tensor, height: int, width: int, grid: tuple[int, int], area_weight: float
) -> Tensor:
    """TransMix's own-label weight per sample.

    ``attention`` (B, gh * gw) is the class token's attention over the patches;
    ``boxes`` (B, 4) the pasted boxes (empty: the sample keeps ``lam``). The pasted
    label gets ``(1 - area_weight) * attention share + area_weight * area share``.
    """
    mask = patch_masks(boxes, height, width, grid)
    attention = attention.float()
    share = (attention * mask).sum(1) / attention.sum(1).clamp_min(torch.finfo(torch.float32).tiny)
    area = F.box_area(boxes).float() / float(height * width)
    pasted = (1.0 - area_weight) * share + area_weight * area
    return torch.where(area > 0, 1.0 - pasted, lam.float())


@dataclass
class ClassTokenModel:
    """What TransMix needs of a vision transformer."""

    attention: nn.Module  # the last block's attention module (timm ``Attention``)
    num_prefix_tokens: int  # class (+ distillation / register) tokens before the patches
    grid: tuple[int, int] | None  # patch grid, when the model states it


def class_token_model(model: nn.Module) -> ClassTokenModel:
    """The last attention block and token layout of a timm ViT/DeiT, or a ValueError that says why not."""
    root, compiled = unwrap_model(model)
    name = type(root).__name__
    if compiled:
        raise ValueError(
            "TransMix reads the last block's attention through a forward hook, which a torch.compile'd model does not "
            "run; set trainer.compile=false (or use mix=deit)."
        )
    blocks = getattr(root, "blocks", None)
    attn = getattr(blocks[-1], "attn", None) if isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) else None
    needed = ("qkv", "num_heads", "head_dim", "scale")
    if getattr(root, "cls_token", None) is None or attn is None or not all(hasattr(attn, a) for a in needed):
        raise ValueError(
            f"TransMix weighs labels by the class token's attention, and {name} has no class token with timm's "
            "Attention (qkv, num_heads) in its last block; use a ViT/DeiT (model.name=deit_small_patch16_224) or mix=deit."
        )
    pool = getattr(root, "global_pool", "token")
    if pool != "token":
        raise ValueError(
            f"TransMix: {name} classifies with global_pool={pool!r}, so its class-token attention does not decide the "
            "prediction; build it with global_pool='token' or use mix=deit."
        )
    grid = getattr(getattr(root, "patch_embed", None), "grid_size", None)
    return ClassTokenModel(attn, int(getattr(root, "num_prefix_tokens", 1)), tuple(grid) if grid is not None else None)


def _apply_norm(norm: nn.Module | None, t: Tensor) -> Tensor:
    """The module's q/k norm on ``t`` (in the norm's parameter dtype), back in float32."""
    if norm is None or isinstance(norm, nn.Identity):
        return t
    param = next(norm.parameters(), None)
    return norm(t if param is None else t.to(param.dtype)).float()


@torch.no_grad()
def class_attention(attn: nn.Module, tokens: Tensor, num_prefix_tokens: int) -> Tensor:
    """The class token's attention over the patch tokens, averaged over heads: (B, N - prefix), float32.

    Recomputed from the attention module's input ``tokens`` (B, N, C) and its own
    ``qkv`` weights (timm's layout: q, k, v stacked, heads inside each), with its
    q/k norms and scale, as the unfused path computes it before dropout.
    """
    with torch.autocast(tokens.device.type, enabled=False):
        b, n, _ = tokens.shape
        heads, head_dim = int(attn.num_heads), int(attn.head_dim)
        dim = heads * head_dim
        x = tokens.float()
        weight = attn.qkv.weight.float()
        bias = attn.qkv.bias.float() if attn.qkv.bias is not None else None
        q = nnf.linear(x[:, :1], weight[:dim], None if bias is None else bias[:dim])
        k = nnf.linear(x, weight[dim : 2 * dim], None if bias is None else bias[dim : 2 * dim])
        q = q.view(b, 1, heads, head_dim).transpose(1, 2)  # (B, heads, 1, D)
        k = k.view(b, n, heads, head_dim).transpose(1, 2)  # (B, heads, N, D)
        q, k = _apply_norm(getattr(attn, "q_norm", None), q), _apply_norm(getattr(attn, "k_norm", None), k)
        scores = (q * float(attn.scale)) @ k.transpose(-2, -1)  # (B, heads, 1, N)
        return scores.softmax(-1).mean(1)[:, 0, num_prefix_tokens:]


class TransMix(MixChoice):
    """The DeiT switch (Mixup ``mixup_alpha`` or CutMix ``cutmix_alpha`` with
    ``switch_prob``) whose CutMix label weights come from the class token's attention
    (module docstring). The trainer must run the forward pass inside
    ``model_context(model)`` and then call ``after_forward``, as mixcut's engine does;
    ``mix`` alone returns the area-weighted targets.

    Args:
        mixup_alpha, cutmix_alpha, switch_prob, minmax, correct_lam: as in the DeiT mixer.
        area_weight: share of the pasted label that stays area-based (0.5 in the
            authors' code, 0 in the paper's equation).
        **kwargs: the common mixer options of `Mixer` (all modes work: each sample's
            box is its own).
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        switch_prob: float = 0.5,
        area_weight: float = 0.5,
        minmax=None,
        correct_lam: bool = True,
        **kwargs,
    ) -> None:
        switch_prob = check_prob("TransMix switch_prob", switch_prob)
        # members draw from this mixer's generators; seed=0 keeps them off torch's global generator
        members = [Mixup(mixup_alpha, seed=0), CutMix(cutmix_alpha, minmax=minmax, correct_lam=correct_lam, seed=0)]
        super().__init__(members, [1.0 - switch_prob, switch_prob], **kwargs)
        self.area_weight = check_prob("TransMix area_weight", area_weight)
        self._boxes: Tensor | None = None  # boxes of the batch being mixed (set by `plan`)
        self._pending: tuple[Tensor, Tensor, Tensor, Tensor, int, int] | None = None  # targets, partner, lam, boxes, H, W
        self._tokens: Tensor | None = None  # input of the last attention module in the forward pass
        self._layout: ClassTokenModel | None = None  # the model's attention module and token layout
        self.last_lam: Tensor | None = None  #: the attention-based lambdas of the last batch

    # ------------------------------------------------------------ pixel side
    def apply_batch(self, x: Tensor, partner: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        # the per-sample path with shared draws: it reports the box the label weight needs
        return Mixer.apply_batch(self, x, partner, draws)

    def plan(self, x: Tensor, partner: Tensor, lam: Tensor, active: Tensor, draws: Draws) -> Plan:
        plan = super().plan(x, partner, lam, active, draws)
        self._boxes = plan.boxes
        return plan

    def mix(self, x: Tensor, y: Tensor) -> MixResult:
        self._boxes, self._pending, self._tokens = None, None, None
        result = super().mix(x, y)
        boxes = self._boxes
        if boxes is not None:
            own = result.partner == torch.arange(x.shape[0], device=x.device)
            boxes = torch.where(own.view(-1, 1), torch.zeros_like(boxes), boxes)  # an unpaired sample pasted nothing
            targets = F.as_soft_targets(y, self.num_classes, self.label_smoothing)
            self._pending = (targets, result.partner, result.lam, boxes, x.shape[-2], x.shape[-1])
        self._boxes = None
        return result

    # ----------------------------------------------------------- model side
    def eager_reason(self) -> str | None:
        return "TransMix reads the last block's attention through a forward hook"

    def check_model(self, model: nn.Module) -> None:
        class_token_model(model)

    def model_context(self, model: nn.Module):
        if self._pending is None:
            return contextlib.nullcontext()
        return self._capturing(model)

    @contextlib.contextmanager
    def _capturing(self, model: nn.Module):
        layout = class_token_model(model)

        def keep_input(module, args):
            self._tokens = args[0].detach()

        handle = layout.attention.register_forward_pre_hook(keep_input)
        self._layout = layout
        try:
            yield
        finally:
            handle.remove()

    def after_forward(self, model, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
        pending, self._pending = self._pending, None
        tokens, self._tokens = self._tokens, None
        if pending is None:
            return target, None
        if tokens is None:
            raise RuntimeError("TransMix: the last attention block did not run in the forward pass inside model_context.")
        targets, partner, lam, boxes, height, width = pending
        layout = self._layout
        attention = class_attention(layout.attention, tokens, layout.num_prefix_tokens)
        grid = layout.grid
        if grid is None or grid[0] * grid[1] != attention.shape[1]:
            side = int(round(attention.shape[1] ** 0.5))
            if side * side != attention.shape[1]:
                raise ValueError(
                    f"TransMix: cannot lay {attention.shape[1]} patch tokens on a grid; the model must state "
                    "patch_embed.grid_size."
                )
            grid = (side, side)
        new_lam = attention_lam(attention, boxes, lam, height, width, grid, self.area_weight)
        self.last_lam = new_lam
        return F.mix_targets(targets, partner, new_lam), None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, area_weight={self.area_weight}"


@dataclass
class TransMixOptions(MixOptions):
    name: str = "transmix"
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    switch_prob: float = 0.5
    area_weight: float = 0.5  # authors' code: half area, half attention; 0: the paper's equation
    minmax: list[float] | None = None
    correct_lam: bool = True


register("transmix", TransMix, TransMixOptions)
