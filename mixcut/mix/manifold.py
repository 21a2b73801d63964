"""Manifold Mixup (Verma et al., 2019): mix hidden states instead of pixels.

`ManifoldMixup.mix` returns the pixel batch unchanged and records the pairing
and lambdas; the trainer then runs the forward pass inside
``mixer.model_context(model)``, where forward hooks mix the hidden state of
the layer drawn for this step: ``h = lam * h + (1 - lam) * h[partner]``.
Targets are mixed with the same lambdas. Any model works whose stages can be
found (rules below) or named.

Eligible layers (the paper mixes at the input or after one of the first
stages; its code draws k in {0, 1, 2} for ResNets), drawn uniformly per step:

* ``layers=[...]``: the given module names (``model.named_modules()`` names of
  the unwrapped model); ``"input"`` stands for the model's input.
* otherwise ``"input"`` plus the outputs of the first stages, found from:

  1. ``model.feature_info`` (every timm model and mixcut's CIFAR ResNets),
     less its first entry when that one ends the stem (named ``stem...``, a
     single layer such as ResNet's ``act1``, or a norm layer such as
     MobileNetV3's ``bn1``). Hierarchical models (entries at several
     reductions: ResNet ``layer1..4``, ConvNeXt/CIFAR-ResNet ``stages.i``,
     Swin ``layers.i``, EfficientNet ``blocks.i``, RegNet ``s1..4``): the first
     two stages (the first one if there are only two). Isotropic models (all
     entries at one reduction: ViT/DeiT ``blocks.i``): the blocks ending the
     first quarter and the first half of the depth (``blocks.2`` and
     ``blocks.5`` of 12).
  2. without ``feature_info``: a ``stages``, ``layers`` (Sequential or
     ModuleList) or ``layer1``, ``layer2``, ... attribute (stages, rule above),
     else a ``blocks`` container (isotropic rule).
  3. else an error that asks for ``layers=[...]``.

`eligible_layers` tells which layers a model gets. DDP (``.module``) and
``torch.compile`` (``._orig_mod``) wrappers are looked through.

DDP: the hooks act on the local module of each rank, so every rank mixes its
own shard with its own generator, as the pixel mixers do. ``torch.compile``:
Dynamo ignores hooks added after the first compiled call
(``torch._dynamo.config.skip_nnmodule_hook_guards``), so on a compiled model
the hooks are installed on all eligible layers at the first ``model_context``
call, whether that forward mixes or not, and stay (inert outside it); the
model's first compiled forward must run inside ``model_context``, as in
mixcut's trainer, which calls it around every training forward. The hooks
read the mixer's current draw, on which Dynamo guards. Each drawn layer and the unmixed forward compile to a
graph of their own (a few recompilations at the start). Gradient
checkpointing inside the hooked modules is not supported (the recomputed
forward is not mixed).
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..wrappers import unwrap_model
from .base import Draws, Mixer, MixOptions, MixResult, check_positive
from .registry import register

INPUT = "input"


_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _is_stem(name: str, module: nn.Module) -> bool:
    """A first feature entry that ends the stem rather than a stage."""
    leaf = next(module.children(), None) is None
    return name.startswith("stem") or leaf or isinstance(module, _NORMS)


def _stage_outputs(names: list[str]) -> list[str]:
    """The first stages of a hierarchical model: two of three or more, one of two."""
    return names[:2] if len(names) >= 3 else names[:1]


def _block_outputs(names: list[str]) -> list[str]:
    """The blocks ending the first quarter and the first half of an isotropic model."""
    picks = sorted({max(math.ceil(len(names) / 4) - 1, 0), max(math.ceil(len(names) / 2) - 1, 0)})
    return [names[i] for i in picks] if names else []


def eligible_layers(model: nn.Module, layers: Sequence[str] | None = None) -> list[str]:
    """Names of the layers Manifold Mixup may mix at for ``model`` (``"input"`` first)."""
    root, _ = unwrap_model(model)
    modules = dict(root.named_modules())
    if layers is not None:
        names = [str(n) for n in layers]
        missing = [n for n in names if n != INPUT and n not in modules]
        if missing or not names:
            top = ", ".join(n for n, _ in root.named_children())
            raise ValueError(
                f"Manifold Mixup layers {missing or names} not found in {type(root).__name__}; give module names as in "
                f"model.named_modules() (top level: {top}) or 'input'."
            )
        return names
    info = getattr(root, "feature_info", None)
    if info is not None and not isinstance(info, (list, tuple)):
        info = getattr(info, "info", None)  # timm FeatureInfo object
    if info:
        entries = [(e["module"], e.get("reduction")) for e in info if e.get("module") in modules]
        if entries and _is_stem(entries[0][0], modules[entries[0][0]]):
            entries = entries[1:]
        if entries:
            names = [n for n, _ in entries]
            isotropic = len({r for _, r in entries}) == 1 and len(entries) > 2
            return [INPUT] + (_block_outputs(names) if isotropic else _stage_outputs(names))
    for attr in ("stages", "layers"):
        seq = getattr(root, attr, None)
        if isinstance(seq, (nn.Sequential, nn.ModuleList)) and len(seq) > 0:
            return [INPUT] + _stage_outputs([f"{attr}.{i}" for i in range(len(seq))])
    numbered = [f"layer{i}" for i in range(1, 10) if isinstance(getattr(root, f"layer{i}", None), nn.Module)]
    if numbered:
        return [INPUT] + _stage_outputs(numbered)
    blocks = getattr(root, "blocks", None)
    if isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) > 0:
        return [INPUT] + _block_outputs([f"blocks.{i}" for i in range(len(blocks))])
    top = ", ".join(n for n, _ in root.named_children())
    raise ValueError(
        f"Manifold Mixup cannot find the stages of {type(root).__name__} (no feature_info, stages, layer1.. or blocks); "
        f"pass layers=[...] with module names (top level: {top}) and 'input'."
    )


class ManifoldMixup(Mixer):
    """Mixup of hidden states at a layer drawn uniformly per step.

    ``mix`` returns the images unchanged (never copied) with soft targets
    ``lam * y + (1 - lam) * y[partner]``, ``lam ~ Beta(alpha, alpha)`` per
    batch, pair or sample as the mode says; the forward pass run inside
    ``model_context(model)`` mixes the drawn layer's output (or the input) with
    the same partner and lambdas. Gradients flow into both mixed samples. A
    forward pass outside the context (evaluation) is never mixed. A bf16/fp16
    hidden state (autocast) is mixed in fp32 with the targets' fp32 lambdas and
    rounded once.

    Args:
        alpha: Beta concentration (> 0); 2.0 in the paper.
        layers: module names to choose from (``"input"`` for the input);
            None: the input and the first stages (module docstring).
        **kwargs: the common mixer options of `Mixer`.
    """

    def __init__(self, alpha: float = 2.0, layers: Sequence[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = check_positive("Manifold Mixup alpha", alpha)
        self.layers = None if layers is None else [str(n) for n in layers]
        if self.layers is not None and not self.layers:
            raise ValueError("Manifold Mixup layers must name at least one layer (or be null for automatic discovery).")
        self._pending: tuple[Tensor, Tensor, float] | None = None  # partner, lam, layer draw in [0, 1)
        self._mixing = False
        self._active: tuple[str, Tensor, Tensor] | None = None  # what the hooks apply now
        self._names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> eligible layer names
        self._persistent: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # compiled model -> kept hooks
        self.last_layer: str | None = None  #: the layer mixed in the last forward pass

    # ------------------------------------------------------------ pixel side
    def apply_each(self, x: Tensor, partner: Tensor, active: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        self._mixing = True
        return x, torch.where(active, self.sample_lam(draws), 1.0)

    def apply_batch(self, x: Tensor, partner: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        self._mixing = True
        lam = float(self.sample_lam(Draws(draws.generator, "cpu", 1, shared=True)))
        return x, torch.full((x.shape[0],), lam, device=x.device)

    def mix(self, x: Tensor, y: Tensor) -> MixResult:
        self._mixing, self._pending = False, None
        result = super().mix(x, y)
        if self._mixing:
            u = float(torch.rand((), generator=self.generator("cpu")))
            self._pending = (result.partner, result.lam, u)
        return result

    # ----------------------------------------------------------- model side
    def layer_names(self, model: nn.Module) -> list[str]:
        """Eligible layers of ``model`` (cached per model)."""
        root, _ = unwrap_model(model)
        names = self._names.get(root)
        if names is None:
            names = self._names[root] = eligible_layers(root, self.layers)
        return names

    def model_context(self, model: nn.Module):
        pending, self._pending = self._pending, None
        root, compiled = unwrap_model(model)
        if compiled and root not in self._persistent:
            # Before the first compiled forward, mixed or not: Dynamo does not guard on hooks
            # (torch._dynamo.config.skip_nnmodule_hook_guards), so hooks added after an unmixed
            # first call would never run in the compiled graph.
            self._persistent[root] = self._install(root, self.layer_names(root))
        if pending is None:
            return contextlib.nullcontext()
        partner, lam, u = pending
        names = self.layer_names(model)
        name = names[min(int(u * len(names)), len(names) - 1)]
        return self._mixing_at(model, name, partner, lam)

    @contextlib.contextmanager
    def _mixing_at(self, model: nn.Module, name: str, partner: Tensor, lam: Tensor):
        root, _ = unwrap_model(model)
        handles = None if root in self._persistent else self._install(root, [name])
        self._active = (name, partner, lam)
        self.last_layer = name
        try:
            yield
        finally:
            self._active = None
            for h in handles or ():
                h.remove()

    def _install(self, root: nn.Module, names: list[str]) -> list:
        handles = []
        for name in names:
            if name == INPUT:
                handles.append(root.register_forward_pre_hook(self._input_hook))
            else:
                handles.append(root.get_submodule(name).register_forward_hook(self._output_hook(name)))
        return handles

    def _mixed(self, h, name: str):
        if not isinstance(h, Tensor):
            raise TypeError(
                f"Manifold Mixup mixes tensor outputs only; layer {name!r} gave {type(h).__name__}. Choose other layers."
            )
        _, partner, lam = self._active
        if h.shape[0] != partner.shape[0]:
            raise ValueError(f"layer {name!r} output has batch size {h.shape[0]}, the mixed batch {partner.shape[0]}.")
        weight = lam.view(-1, *([1] * (h.dim() - 1)))
        # index_select on the GPU (its backward, index_add_, never syncs); plain indexing on the CPU,
        # where index_select into a fresh tensor is several times slower
        other = h.index_select(0, partner) if h.is_cuda else h[partner]
        if h.dtype in (torch.float16, torch.bfloat16):
            # Under autocast: mix in fp32 with the targets' lam and round once. A bf16 weight would
            # move every sample's lam by up to 2^-9 (0.3 -> 0.3008), a bias the targets do not share.
            return torch.lerp(other.float(), h.float(), weight.float()).to(h.dtype)
        return torch.lerp(other, h, weight.to(h.dtype))

    def _input_hook(self, module: nn.Module, args):
        active = self._active
        if active is None or active[0] != INPUT or not args:
            return None
        return (self._mixed(args[0], INPUT), *args[1:])

    def _output_hook(self, name: str):
        def hook(module: nn.Module, args, output):
            active = self._active
            if active is None or active[0] != name:
                return None
            return self._mixed(output, name)

        return hook

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, layers={self.layers}"


@dataclass
class ManifoldMixupOptions(MixOptions):
    name: str = "manifold_mixup"
    alpha: float = 2.0
    layers: list[str] | None = None  # module names; None: the input and the first stages


register("manifold_mixup", ManifoldMixup, ManifoldMixupOptions)
