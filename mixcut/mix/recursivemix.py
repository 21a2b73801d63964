"""RecursiveMix (Yang et al., NeurIPS 2022): paste the previous mixed batch, shrunk,
into the current one, with its soft labels, and a consistency loss on the pasted region.

Step t (as in the authors' code, implus/RecursiveMix-pytorch ``utils.recursive_mix``
and ``main.train``):

1. a box whose area share is ~ U(0, alpha) (side ``int(side * sqrt(u * alpha))``,
   uniform centre, clipped at the border, as CutMix's box) receives the whole
   previous *mixed* batch, resized into it by nearest neighbour; the target is
   ``lam * y_t + (1 - lam) * target_{t-1}`` with ``lam`` the kept area share. The
   previous batch already holds the one before it, so history recurses.
2. the consistency loss: the features of the pasted region (ROI-align of the final
   feature map over the box, one output cell, ``aligned=True``) go through the
   model's own head; their soft-target cross entropy against the previous step's
   predicted distribution ``softmax(logits_{t-1})`` is added with weight
   ``omega * (1 - lam)``.
3. the mixed batch, its targets and its logits (detached) become the history.

The first batch of a run (and of every epoch, as in the authors' loop) has no
history and is not mixed. The history lives on the device, is part of
`state_dict` (so a resume is exact) and is per process under DDP (each rank pastes
its own previous shard). Differences from the authors' code: the ROI head is the
model's own classifier (their ``--share_fc``; their default trains a second linear
head ``fc_roi``, which would change the model); boxes use CutMix's rounding (an odd
side keeps its length); a batch larger than the history reuses history samples
cyclically.

Modes: ``batch`` (one box, the paper) and ``elem`` (a box per sample). ``pair``
is refused (there is no partner: the pasted image is the sample's history), and so
is ``lam_clip``. The consistency loss needs ``forward_features``/``forward_head``
(every timm model, mixcut's CIFAR networks); ``omega=0`` trains without it.
``torch.compile``d models are refused when ``omega > 0`` (the feature capture
would not run inside the compiled graph).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from ..wrappers import unwrap_model
from . import functional as F
from .base import Mixer, MixOptions, MixResult, check_positive, check_prob
from .registry import register
from .resizemix import nearest_index


def roi_features(
    features: Tensor, boxes: Tensor, height: int, width: int, num_features: int, num_prefix_tokens: int = 0
) -> tuple[Tensor, str]:
    """Average features over each sample's box (ROI-align, one output cell, ``aligned=True``).

    ``features`` is the model's final feature map: (B, C, h, w), (B, h, w, C) or
    tokens (B, N, C): ``num_prefix_tokens`` (class, ...) then a square patch grid. Returns (B, C)
    and the layout name (``nchw``, ``nhwc``, ``tokens``).
    """
    from torchvision.ops import roi_align  # imported here: only RecursiveMix needs torchvision

    if features.dim() == 4 and features.shape[1] == num_features:
        layout, fmap = "nchw", features
    elif features.dim() == 4 and features.shape[-1] == num_features:
        layout, fmap = "nhwc", features.permute(0, 3, 1, 2)
    elif features.dim() == 3:
        side = math.isqrt(features.shape[1] - num_prefix_tokens)
        patches = features[:, features.shape[1] - side * side :]  # the patch grid follows the prefix tokens
        layout, fmap = "tokens", patches.transpose(1, 2).reshape(features.shape[0], features.shape[2], side, side)
    else:
        shape = tuple(features.shape)
        raise ValueError(f"RecursiveMix: cannot find the feature map in forward_features' output of shape {shape}.")
    y0, y1, x0, x1 = boxes.to(fmap.dtype if fmap.is_floating_point() else torch.float32).unbind(1)
    index = torch.arange(boxes.shape[0], device=fmap.device, dtype=y0.dtype)
    rois = torch.stack([index, x0, y0, x1, y1], dim=1).to(fmap.dtype)
    scale = fmap.shape[-1] / float(width)
    pooled = roi_align(fmap, rois, output_size=(1, 1), spatial_scale=scale, sampling_ratio=-1, aligned=True)
    return pooled.flatten(1), layout


def head_logits(root: nn.Module, roi: Tensor, layout: str) -> Tensor:
    """The model's head on pooled ROI features (B, C): shaped as the head expects its input."""
    b, c = roi.shape
    if layout == "nchw":
        return root.forward_head(roi.view(b, c, 1, 1))
    if layout == "nhwc":
        return root.forward_head(roi.view(b, 1, 1, c))
    prefix = int(getattr(root, "num_prefix_tokens", 0))
    return root.forward_head(roi.unsqueeze(1).expand(b, prefix + 1, c))  # class-token or average pooling both give roi


class RecursiveMix(Mixer):
    """Paste the previous mixed batch, resized, into the current one (module docstring).

    The trainer must call ``after_forward`` after each forward pass run inside
    ``model_context`` (mixcut's engine does): it adds the consistency loss and keeps
    the logits that the next step's loss compares against. ``mix`` alone still
    pastes and keeps the history (without logits, no consistency loss follows).

    Args:
        alpha: the pasted area share is ~ U(0, alpha); 0.5 in the paper.
        omega: weight of the consistency loss (times the pasted share); 0.5 for
            ImageNet, 0.1 for CIFAR in the authors' commands; 0 turns it off.
        **kwargs: the common mixer options of `Mixer` (mode ``batch`` or ``elem``).
    """

    pairs_samples = False

    def __init__(self, alpha: float = 0.5, omega: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_lam_clip(self.lam_clip)
        self.alpha = check_prob("RecursiveMix alpha", check_positive("RecursiveMix alpha", alpha))
        self.omega = float(omega)
        if self.omega < 0:
            raise ValueError(f"RecursiveMix omega must be >= 0; got {omega}.")
        if self.mode == "pair":
            raise ValueError("RecursiveMix pastes each sample's history, not a partner: use mode=batch or mode=elem.")
        self._history: dict[str, Tensor] | None = None  # x, target (and logits after the forward pass)
        self._pending_history: dict[str, Tensor] | None = None  # loaded from a checkpoint, moved on first use
        self._step: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # boxes, lam, history index, history logits
        self._features: Tensor | None = None
        self.last_consistency: Tensor | None = None  #: the consistency loss of the last step

    def set_lam_clip(self, lam_clip) -> None:
        if lam_clip is not None:
            raise ValueError("RecursiveMix does not take lam_clip: its pasted share is ~ U(0, alpha); lower alpha instead.")
        super().set_lam_clip(lam_clip)

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:  # a new epoch starts without history, as in the authors' loop
            self._history = self._pending_history = None
        super().set_epoch(epoch)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        state = super().state_dict()
        history = self._history if self._history is not None else self._pending_history
        state["history"] = None if history is None else {k: v.detach().cpu() for k, v in history.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        history = state.get("history")
        self._history = None
        self._pending_history = None if history is None else {k: v.clone() for k, v in history.items()}

    def history(self, device: torch.device) -> dict[str, Tensor] | None:
        """The previous batch (x, target, maybe logits) on ``device``, or None."""
        if self._pending_history is not None:
            self._history = {k: v.to(device) for k, v in self._pending_history.items()}
            self._pending_history = None
        return self._history

    # ------------------------------------------------------------ pixel side
    def mix(self, x: Tensor, y: Tensor) -> MixResult:
        if x.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W); got shape {tuple(x.shape)}.")
        targets = F.as_soft_targets(y, self.num_classes, self.label_smoothing)
        n, device = x.shape[0], x.device
        identity = torch.arange(n, device=device)
        self._step, self._features = None, None
        history = self.history(device)
        if not self.enabled or n == 0 or self.prob == 0.0:
            return MixResult(x, targets, torch.ones(n, device=device), identity)
        if history is None:
            self.remember(x, targets)
            return MixResult(x, targets, torch.ones(n, device=device), identity)
        if history["x"].shape[1:] != x.shape[1:] or history["target"].shape[1] != targets.shape[1]:
            raise ValueError(
                f"RecursiveMix: this batch {tuple(x.shape)} does not match the history {tuple(history['x'].shape)}; "
                "RecursiveMix needs one image size and class count for the whole run."
            )
        index = identity % history["x"].shape[0]  # a larger batch than the last one reuses history samples
        h, w = x.shape[-2:]
        if self.mode == "batch":
            mixed, boxes = self.paste_batch(x, history["x"], index)
        else:
            mixed, boxes = self.paste_each(x, history["x"], index)
        lam = 1.0 - F.box_area(boxes).float() / float(h * w)
        target = torch.lerp(history["target"][index], targets, lam.view(-1, 1))
        logits = history.get("logits")
        if logits is not None and self.omega > 0:
            self._step = (boxes, lam, index, logits)
        self.remember(mixed, target)
        return MixResult(mixed, target, lam, identity)

    def draw_boxes(self, n: int, height: int, width: int, device) -> Tensor:
        """Pasted boxes (n, 4) on ``device`` (one shared box on the host in batch mode): area
        share ~ U(0, alpha), CutMix's box shape; empty where a sample (or the batch) is not mixed."""
        shared = self.mode == "batch"
        gen = self.generator("cpu" if shared else device)
        size, dev = (1 if shared else n), ("cpu" if shared else device)
        if shared and self.prob < 1.0 and torch.rand((), generator=gen).item() >= self.prob:
            return torch.zeros(1, 4, dtype=torch.long)
        u = torch.rand(size, generator=gen, device=dev)
        cy = torch.randint(0, height, (size,), generator=gen, device=dev)
        cx = torch.randint(0, width, (size,), generator=gen, device=dev)
        boxes = F.cutmix_boxes(1.0 - self.alpha * u, height, width, cy, cx)
        if not shared and self.prob < 1.0:
            active = torch.rand(n, generator=gen, device=dev) < self.prob
            boxes = boxes * active.view(-1, 1)
        return boxes

    def paste_batch(self, x: Tensor, old: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        """One box for the batch (the paper): one resize of the history into it."""
        h, w = x.shape[-2:]
        host = self.draw_boxes(1, h, w, "cpu")
        y0, y1, x0, x1 = host[0].tolist()  # host tensors: no device sync
        out = self.output_buffer(x)
        if out is not x:
            out.copy_(x)
        if y1 > y0 and x1 > x0:
            source = old if index.shape[0] == old.shape[0] else old[index]
            out[:, :, y0:y1, x0:x1] = nnf.interpolate(source, size=(y1 - y0, x1 - x0), mode="nearest").to(out.dtype)
        return out, host.to(x.device, non_blocking=True).expand(x.shape[0], 4)

    def paste_each(self, x: Tensor, old: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        """A box per sample: each history image shrunk into its own box (one gather, no loop)."""
        h, w = x.shape[-2:]
        boxes = self.draw_boxes(x.shape[0], h, w, x.device)
        y0, y1, x0, x1 = boxes.unbind(1)
        local_r = (torch.arange(h, device=x.device).view(1, -1) - y0.view(-1, 1)).clamp(0, h - 1)
        local_c = (torch.arange(w, device=x.device).view(1, -1) - x0.view(-1, 1)).clamp(0, w - 1)
        rows = nearest_index(y1 - y0, h, h).gather(1, local_r)
        cols = nearest_index(x1 - x0, w, w).gather(1, local_c)
        source = old[index.view(-1, 1, 1), :, rows.view(-1, h, 1), cols.view(-1, 1, w)].permute(0, 3, 1, 2)
        inside = F.box_masks(boxes, h, w)
        out = torch.where(inside, source.to(x.dtype), x)
        if self.inplace and not x.requires_grad:
            x.copy_(out)
            out = x
        return out, boxes

    def remember(self, x: Tensor, target: Tensor) -> None:
        """Keep this batch as the history of the next one (copied: the caller may reuse its buffers)."""
        old = self._history
        if old is not None and old["x"].shape == x.shape and old["x"].dtype == x.dtype and old["x"].device == x.device:
            old["x"].copy_(x.detach())
            kept_x = old["x"]
        else:
            kept_x = x.detach().clone()
        self._history = {"x": kept_x, "target": target.detach().clone()}

    # ----------------------------------------------------------- model side
    def model_context(self, model: nn.Module):
        if self._step is None:
            return contextlib.nullcontext()
        return self._capturing(model)

    def eager_reason(self) -> str | None:
        return "RecursiveMix's consistency loss reads the feature map through forward_features" if self.omega > 0 else None

    def check_model(self, model: nn.Module) -> None:
        if self.omega > 0:
            self.consistency_root(model)

    def consistency_root(self, model: nn.Module) -> nn.Module:
        """The model under its wrappers, or a ValueError when the consistency loss cannot read its features."""
        root, compiled = unwrap_model(model)
        if compiled:
            raise ValueError(
                "RecursiveMix's consistency loss reads the feature map through forward_features, which a torch.compile'd "
                "model does not call; set trainer.compile=false or mix.omega=0."
            )
        if not (callable(getattr(root, "forward_features", None)) and callable(getattr(root, "forward_head", None))):
            raise ValueError(
                f"RecursiveMix's consistency loss needs forward_features/forward_head, which {type(root).__name__} lacks "
                "(timm models and mixcut's CIFAR networks have them); set mix.omega=0 to train without it."
            )
        return root

    @contextlib.contextmanager
    def _capturing(self, model: nn.Module):
        root = self.consistency_root(model)
        had_own = "forward_features" in vars(root)
        original = root.forward_features

        def capture(*args, **kwargs):
            out = original(*args, **kwargs)
            self._features = out
            return out

        root.forward_features = capture  # an instance attribute shadows the method for this forward pass only
        try:
            yield
        finally:
            if had_own:
                root.forward_features = original
            else:
                del root.forward_features

    def after_forward(self, model, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
        step, self._step = self._step, None
        features, self._features = self._features, None
        if self._history is not None and self._history["x"].shape[0] == logits.shape[0]:
            self._history["logits"] = logits.detach().float().clone()
        if step is None:
            return target, None
        if features is None:
            raise RuntimeError("RecursiveMix: forward_features did not run in the forward pass inside model_context.")
        boxes, lam, index, old_logits = step
        root, _ = unwrap_model(model)
        h, w = self._history["x"].shape[-2:]
        num_features = int(getattr(root, "num_features", features.shape[1]))
        roi, layout = roi_features(features, boxes, h, w, num_features, int(getattr(root, "num_prefix_tokens", 0)))
        roi_logits = head_logits(root, roi, layout).float()
        wanted = old_logits[index].softmax(-1)
        ce = -(wanted * roi_logits.log_softmax(-1)).sum(-1)
        loss = self.omega * ((1.0 - lam) * ce).mean()
        self.last_consistency = loss.detach()
        return target, loss

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, omega={self.omega}"


@dataclass
class RecursiveMixOptions(MixOptions):
    name: str = "recursivemix"
    alpha: float = 0.5  # pasted area share ~ U(0, alpha)
    omega: float = 0.5  # consistency-loss weight (0.5 ImageNet, 0.1 CIFAR in the authors' commands)


register("recursivemix", RecursiveMix, RecursiveMixOptions)
