"""The mixer interface: one base class that owns everything mixers share.

A mixer is called on a batch ``(x, y)`` already on the training device and
returns the mixed images and soft targets. The base class handles what every
mixer needs the same way: argument checks, its own seeded generators, pairing,
the ``prob`` gate, ``lam_clip``, label smoothing, target mixing and the
save/restore of its random state. Subclasses only say how one lambda turns into
mixed pixels (`plan`, and optionally a faster `apply_batch`).

Modes (as in timm):
  ``batch``  one lambda (and one box) for the whole batch, drawn on the host;
             with ``prob`` < 1 the whole batch is mixed or not.
  ``pair``   one lambda per pair of partners; both partners share it and get
             symmetric boxes; pairs are gated by ``prob`` independently.
  ``elem``   an independent lambda (and box) for every sample.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from . import functional as F

log = logging.getLogger(__name__)

MODES = ("batch", "pair", "elem")
PAIRINGS = ("perm", "flip")


class MixResult(NamedTuple):
    """What a mixer did to one batch."""

    x: Tensor  #: mixed images, same shape, dtype, device and memory format as the input
    target: Tensor  #: soft targets (B, num_classes), float32, rows sum to one
    lam: Tensor  #: (B,) float32: weight of each sample's own label in its target
    partner: Tensor  #: (B,) int64: index of the sample each one was mixed with


class Plan(NamedTuple):
    """How to build mixed images for the per-sample path.

    ``out = weight * x + (1 - weight) * source``; ``weight`` is (B, 1, 1, 1)
    lambdas or (B, 1, H, W) masks (bool: True keeps the sample's own pixel).
    ``source`` defaults to ``x[partner]``. Box mixers give per-sample weights
    (True) and their ``boxes``, which `F.apply_plan` pastes as slices on CPU.
    """

    weight: Tensor
    lam: Tensor
    source: Tensor | None = None
    boxes: Tensor | None = None  #: optional (B, 4) boxes: inside them every pixel comes from ``source``


def check_prob(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]; got {value}.")
    return value


def check_positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0.0:
        raise ValueError(f"{name} must be > 0; got {value}. To switch mixing off use the no-op mixer (mix=none).")
    return value


def check_range(name: str, value, lo: float, hi: float, open_interval: bool = False):
    """Validate an optional (low, high) pair inside [lo, hi] (or (lo, hi))."""
    if value is None:
        return None
    pair = tuple(float(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair (low, high); got {value!r}.")
    a, b = pair
    inside = (lo < a and b < hi) if open_interval else (lo <= a and b <= hi)
    bounds = f"({lo}, {hi})" if open_interval else f"[{lo}, {hi}]"
    if not inside or a > b:
        raise ValueError(f"{name} must satisfy low <= high within {bounds}; got {pair}.")
    return pair


class Mixer:
    """Base class of all batch mixers.

    Args:
        prob: chance that a batch (``batch`` mode), a pair or a sample is mixed.
        mode: ``'batch'``, ``'pair'`` or ``'elem'`` (see module docstring).
        label_smoothing: smoothing of the one-hot targets, applied once here.
        num_classes: number of classes; needed when ``y`` holds class indices.
        lam_clip: optional ``(lo, hi)``: every mixed sample's own label weight
            (the share of its own pixels it keeps, the ``lam`` reported) stays
            in [lo, hi]. The sampled lambda is clamped to the range and each
            mixer shapes its region so that rounding and the border cannot take
            the kept share out of it (see README, "lam_clip"). Unmixed samples keep 1.
        pairing: ``'perm'`` (a random cycle: every sample gets another one as
            partner; odd batches and a batch of one work) or ``'flip'``
            (sample i with B-1-i, timm-compatible).
        seed: seed of the mixer's own generators (None: drawn from torch's
            global generator, so ``torch.manual_seed`` still fixes it).
        inplace: allow the mixer to overwrite ``x`` (the trainer owns its batch).
        off_epoch: from this epoch on (see `set_epoch`) the mixer only builds
            smoothed one-hot targets, like timm's ``--mixup-off-epoch``.
    """

    #: False for mixers that never mix pixels across samples (no-op, Cutout).
    pairs_samples = True

    def __init__(
        self,
        *,
        prob: float = 1.0,
        mode: str = "batch",
        label_smoothing: float = 0.0,
        num_classes: int | None = None,
        lam_clip: tuple[float, float] | None = None,
        pairing: str = "perm",
        seed: int | None = None,
        inplace: bool = False,
        off_epoch: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mix mode {mode!r}; choose one of {', '.join(MODES)}.")
        if pairing not in PAIRINGS:
            raise ValueError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)}.")
        self.prob = check_prob("prob", prob)
        self.label_smoothing = check_prob("label_smoothing", label_smoothing)
        if num_classes is not None and int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1; got {num_classes}.")
        self.num_classes = None if num_classes is None else int(num_classes)
        self.lam_clip = None
        Mixer.set_lam_clip(self, lam_clip)
        self.mode = mode
        self.pairing = pairing
        self.inplace = bool(inplace)
        self.off_epoch = off_epoch
        self.epoch = 0
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = int(seed)
        self._generators: dict[str, torch.Generator] = {}
        self._pending_states: dict[str, Tensor] = {}
        self._scratch: Tensor | None = None  # x[partner] (see `gather`)
        self._flat: Tensor | None = None  # other scratch (see `scratch`)

    def set_lam_clip(self, lam_clip: tuple[float, float] | None) -> None:
        """Set ``lam_clip``: the range of every mixed sample's own label weight (the
        kept share). Mixers whose options make a bound impossible raise ValueError."""
        self.lam_clip = check_range("lam_clip", lam_clip, 0.0, 1.0)

    # ---------------------------------------------------------------- state
    def generator(self, device: torch.device | str) -> torch.Generator:
        """The mixer's generator for ``device`` (created and seeded on first use)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        key = str(device)
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            saved = key if key in self._pending_states else self._moved_cuda_state(key)
            if saved is not None:
                gen.set_state(self._pending_states.pop(saved))
            self._generators[key] = gen
        return gen

    def _moved_cuda_state(self, key: str) -> str | None:
        """The key of a saved CUDA generator state of another GPU index, restored onto ``key``'s
        device (a run resumed with another GPU layout: torchrun's rank 3 on cuda:3, then one GPU
        per SLURM task on cuda:0). Without it the mixer would reseed silently."""
        if not key.startswith("cuda"):
            return None
        saved = [k for k in self._pending_states if k.startswith("cuda")]
        if len(saved) != 1:
            return None
        log.info("mixer generator state saved on %s restored on %s (the run's device changed index)", saved[0], key)
        return saved[0]

    def state_dict(self) -> dict:
        """Seed, epoch and generator states; plain tensors, safe for ``weights_only`` loading."""
        states = dict(self._pending_states)
        states.update({k: g.get_state() for k, g in self._generators.items()})
        return {"seed": self.seed, "epoch": self.epoch, "generators": states}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state.get("epoch", 0))
        self._generators.clear()
        self._pending_states = {k: v.clone() for k, v in state["generators"].items()}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def enabled(self) -> bool:
        return self.off_epoch is None or self.epoch < self.off_epoch

    # ------------------------------------------------------------ interface
    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mix a batch: returns ``(mixed_x, soft_targets)``."""
        result = self.mix(x, y)
        return result.x, result.target

    def mix(self, x: Tensor, y: Tensor) -> MixResult:
        """Mix a batch and report the per-sample lambda and partner."""
        if x.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W); got shape {tuple(x.shape)}.")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"batch sizes differ: {x.shape[0]} images, {y.shape[0]} targets.")
        targets = F.as_soft_targets(y, self.num_classes, self.label_smoothing)
        n, device = x.shape[0], x.device
        identity = torch.arange(n, device=device)
        if not self.enabled or self.prob == 0.0 or n == 0:
            return MixResult(x, targets, torch.ones(n, device=device), identity)
        if self.mode == "batch":
            host = self.generator("cpu")
            if self.prob < 1.0 and torch.rand((), generator=host).item() >= self.prob:
                return MixResult(x, targets, torch.ones(n, device=device), identity)
            partner = self.pair(n, device)
            mixed, lam = self.apply_batch(x, partner, Draws(host, device, n, shared=True))
        else:
            partner = self.pair(n, device)
            draws = Draws(self.generator(device), device, n, partner if self.mode == "pair" else None)
            active = draws.uniform() < self.prob
            if self.pairs_samples:  # a sample paired with itself has no partner: it stays as it is
                active &= partner != identity
            mixed, lam = self.apply_each(x, partner, active, draws)
        if self.pairs_samples:
            lam = torch.where(partner == identity, torch.ones_like(lam), lam)
        return MixResult(mixed, F.mix_targets(targets, partner, lam), lam, partner)

    def pair(self, n: int, device: torch.device) -> Tensor:
        """Partner index of every sample (identity for mixers that do not pair)."""
        if not self.pairs_samples:
            return torch.arange(n, device=device)
        if self.pairing == "flip":
            return F.flip_partner(n, device)
        gen = self.generator(device)
        if self.mode == "pair":
            return F.random_matching(n, gen, device)
        return F.random_cycle(n, gen, device)

    # ------------------------------------------------------- lambda draws
    def sample_lam(self, draws: Draws) -> Tensor:
        """One lambda per sample from this mixer's distribution, clipped by ``lam_clip``."""
        lam = draws.beta(self.alpha)
        if self.lam_clip is not None:
            lam = lam.clamp(*self.lam_clip)
        return lam

    # --------------------------------------------------------- application
    def apply_each(self, x: Tensor, partner: Tensor, active: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        """Draw lambdas for the ``active`` samples and mix them (inactive: lam = 1)."""
        lam = torch.where(active, self.sample_lam(draws), 1.0)
        plan = self.plan(x, partner, lam, active, draws)
        return self.render(x, partner, plan), plan.lam

    def apply_batch(self, x: Tensor, partner: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        """Whole-batch path: the per-sample path with every draw shared.
        Subclasses override it where one shared draw allows something faster."""
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        return self.apply_each(x, partner, active, draws)

    def plan(self, x: Tensor, partner: Tensor, lam: Tensor, active: Tensor, draws: Draws) -> Plan:
        """Turn per-sample lambdas into a `Plan` (subclasses implement this)."""
        raise NotImplementedError

    def render(self, x: Tensor, partner: Tensor, plan: Plan) -> Tensor:
        """Apply a plan, in place when allowed, reusing a scratch buffer."""
        host = x.device.type == "cpu" and not (x.requires_grad and torch.is_grad_enabled())
        if host and plan.source is None and plan.boxes is not None and plan.weight.dtype == torch.bool:
            if bool(plan.weight.all()):  # boxes only: paste the partners' boxes, no copy of the batch
                return F.paste_partner_boxes(x, partner, plan.boxes, self.output_buffer(x))
        own_source = plan.source is None and not x.requires_grad  # then source is our scratch
        source = plan.source if plan.source is not None else self.gather(x, partner)
        out = x if self.inplace and not x.requires_grad else None
        return F.apply_plan(x, source, plan.weight, plan.boxes, out=out, overwrite_source=own_source)

    def gather(self, x: Tensor, partner: Tensor) -> Tensor:
        """``x[partner]`` written into a reusable buffer when gradients allow it.

        On CPU a fresh batch-sized allocation costs several times the copy
        itself (page faults), so the partner batch lives in one kept buffer.
        The buffer is scratch only and never returned to the caller.
        """
        if x.requires_grad and torch.is_grad_enabled():
            return x.index_select(0, partner)
        buf = self._scratch
        if buf is None or buf.shape != x.shape or buf.dtype != x.dtype or buf.device != x.device or buf.stride() != x.stride():
            buf = self._scratch = torch.empty_like(x)
        return torch.index_select(x, 0, partner, out=buf)

    def scratch(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A contiguous scratch tensor of ``shape`` (``like``'s dtype and device),
        carved from one kept flat buffer: box-sized gathers reuse it whatever
        the box size. Scratch only, never returned to the caller."""
        n = math.prod(shape)
        flat = self._flat
        if flat is None or flat.numel() < n or flat.dtype != like.dtype or flat.device != like.device:
            flat = self._flat = torch.empty(max(n, like.numel()), dtype=like.dtype, device=like.device)
        return flat[:n].view(shape)

    def output_buffer(self, x: Tensor) -> Tensor:
        """Where the mixed batch goes: ``x`` itself when in place, else a new tensor."""
        return x if self.inplace and not x.requires_grad else torch.empty_like(x)

    def model_context(self, model):
        """Context around the model's forward pass for this batch. Pixel mixers
        need none; Manifold Mixup uses it to mix hidden states inside ``model``."""
        return contextlib.nullcontext()

    def check_model(self, model) -> None:
        """Raise ValueError, before training starts, if this mixer cannot work with ``model``
        (pixel mixers work with any model; TransMix needs class-token attention)."""

    def eager_reason(self) -> str | None:
        """Why this mixer needs the model to run eagerly (not ``torch.compile``d), or None.
        ``trainer.compile=auto`` then leaves the model eager instead of failing."""
        return None

    def after_forward(self, model, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
        """Called once after the forward pass of the batch this mixer mixed last (the
        trainer calls it under autocast, outside `model_context`). Returns the targets
        the loss should use and an optional auxiliary loss to add to it. Pixel mixers
        change nothing; TransMix re-weighs the targets by attention, RecursiveMix adds
        its consistency loss and keeps the batch as history."""
        return target, None

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        common = f"prob={self.prob}, mode={self.mode!r}, label_smoothing={self.label_smoothing}"
        extra = self.extra_repr()
        return f"{type(self).__name__}({extra + ', ' if extra else ''}{common})"


class Draws:
    """The random draws of one batch, so that mixers need not know the mode.

    Every draw returns one value per sample (leading dimension B):
    independent per sample (``elem``), equal between partners (``pair``, when
    ``partner`` is given) or one value for the whole batch (``shared``, batch
    mode), drawn on the host generator and broadcast without a device sync.
    """

    def __init__(self, generator: torch.Generator, device, n: int, partner: Tensor | None = None, shared: bool = False):
        self.generator, self.device, self.n = generator, torch.device(device), n
        self.partner, self.shared = partner, shared

    def _finish(self, values: Tensor) -> Tensor:
        if self.shared:
            # values were drawn on the host with a leading dim of 1
            if self.device.type == "cpu":
                return values.expand(self.n, *values.shape[1:])
            return values.to(self.device, non_blocking=True).expand(self.n, *values.shape[1:])
        if self.partner is not None:
            return F.symmetrize(values, self.partner)
        return values

    def _size(self, *shape: int) -> tuple[tuple[int, ...], torch.device]:
        return ((1 if self.shared else self.n, *shape), torch.device("cpu") if self.shared else self.device)

    def uniform(self, *shape: int) -> Tensor:
        """Uniform [0, 1) float32 of shape (B, *shape)."""
        size, dev = self._size(*shape)
        return self._finish(torch.rand(size, generator=self.generator, device=dev))

    def normal(self, *shape: int) -> Tensor:
        """Standard normal float32 of shape (B, *shape)."""
        size, dev = self._size(*shape)
        return self._finish(torch.randn(size, generator=self.generator, device=dev))

    def randint(self, high: int, *shape: int) -> Tensor:
        """Integers uniform in [0, high), shape (B, *shape)."""
        size, dev = self._size(*shape)
        return self._finish(torch.randint(0, high, size, generator=self.generator, device=dev))

    def beta(self, alpha: float) -> Tensor:
        """Beta(alpha, alpha) float32 of shape (B,)."""
        size, dev = self._size()
        return self._finish(F.sample_beta(alpha, size[0], self.generator, dev))


@dataclass
class MixOptions:
    """Options every mixer takes (see `Mixer`); each mixer's options extend these.
    The dataclass is the ``mix`` group's config schema: a key a mixer does not
    take is refused when Hydra composes the config."""

    name: str = "none"
    prob: float = 1.0
    mode: str = "batch"  # batch | pair | elem
    pairing: str = "perm"  # perm | flip
    lam_clip: list[float] | None = None
    off_epoch: int | None = None
