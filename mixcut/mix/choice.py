"""Pick one of several mixers at random: the DeiT Mixup/CutMix switch and friends."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from . import functional as F
from .base import Draws, Mixer, Plan


class MixChoice(Mixer):
    """Choose among ``mixers`` with probabilities ``probs``.

    In ``batch`` mode one member is drawn for the whole batch and runs its own
    fast batch path; in ``pair``/``elem`` mode every pair/sample draws its
    member, each member plans the whole batch with its own lambda distribution
    and the plans are merged per sample (one blend, no Python loop over samples).

    The choice's ``prob``, ``mode``, ``pairing``, ``label_smoothing``,
    ``num_classes``, ``inplace`` and generator apply; each member contributes
    only its lambda distribution and how it mixes pixels (alpha, minmax,
    correct_lam, its own ``lam_clip``; a ``lam_clip`` given to the choice goes to
    members that have none).

    The DeiT recipe is ``MixChoice.switch(Mixup(0.8), CutMix(1.0), switch_prob=0.5)``.
    """

    def __init__(self, mixers: Sequence[Mixer], probs: Sequence[float] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        mixers = list(mixers)
        if not mixers:
            raise ValueError("MixChoice needs at least one mixer.")
        for m in mixers:
            # members need a per-sample plan; Cutout (which pairs no samples) qualifies: its plan keeps the label
            if not isinstance(m, Mixer) or type(m).plan is Mixer.plan:
                raise ValueError(
                    f"MixChoice members must be pixel mixers with a plan (Mixup, CutMix, FMix, Cutout, ...); got {m!r}."
                )
        if probs is None:
            probs = [1.0 / len(mixers)] * len(mixers)
        probs = [float(p) for p in probs]
        if len(probs) != len(mixers) or any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > 1e-6:
            raise ValueError(f"MixChoice probs must be {len(mixers)} non-negative numbers summing to 1; got {probs}.")
        self.mixers, self.probs = mixers, probs
        self._edges = torch.tensor(probs, dtype=torch.float64).cumsum(0)[:-1].float()
        self._edges_on: dict[torch.device, Tensor] = {}  # `_edges` per device, copied once
        for m in mixers:
            m.inplace = self.inplace
            if m.lam_clip is None:
                m.set_lam_clip(self.lam_clip)

    @classmethod
    def switch(cls, first: Mixer, second: Mixer, switch_prob: float = 0.5, **kwargs) -> MixChoice:
        """``second`` with probability ``switch_prob``, else ``first`` (timm/DeiT naming)."""
        if not 0.0 <= float(switch_prob) <= 1.0:
            raise ValueError(f"switch_prob must be a probability in [0, 1]; got {switch_prob}.")
        return cls([first, second], [1.0 - float(switch_prob), float(switch_prob)], **kwargs)

    def choose(self, u: Tensor) -> Tensor:
        """Member index for uniform draws ``u``."""
        edges = self._edges_on.get(u.device)
        if edges is None:  # once per device: a host-to-device copy per call costs a transfer each batch
            edges = self._edges_on[u.device] = self._edges.to(u.device)
        return torch.bucketize(u.contiguous(), edges, right=True)

    def apply_batch(self, x: Tensor, partner: Tensor, draws: Draws) -> tuple[Tensor, Tensor]:
        k = int(self.choose(torch.rand(1, generator=draws.generator))[0])
        member = self.mixers[k]
        # lend the member this mixer's scratch buffers, so that members share them
        member._scratch, member._flat = self._scratch, self._flat
        try:
            return member.apply_batch(x, partner, draws)
        finally:
            self._scratch, self._flat = member._scratch, member._flat
            member._scratch = member._flat = None

    def plan(self, x: Tensor, partner: Tensor, lam: Tensor, active: Tensor, draws: Draws) -> Plan:
        choice = self.choose(draws.uniform())
        plans = []
        for member in self.mixers:
            member_lam = torch.where(active, member.sample_lam(draws), 1.0)
            plans.append(member.plan(x, partner, member_lam, active, draws))
        if len(plans) == 1:
            return plans[0]
        lam_out = torch.ones_like(lam)
        custom = any(p.source is not None for p in plans)
        source = self.gather(x, partner).clone() if custom else None
        for k, p in enumerate(plans):
            sel = choice == k
            lam_out = torch.where(sel, p.lam, lam_out)
            if p.source is not None:
                source = torch.where(sel.view(-1, 1, 1, 1), p.source, source)
        if all(p.weight.shape[-2:] == (1, 1) for p in plans):
            return self._merge_per_sample(plans, choice, lam_out, source)
        return Plan(weight=self._merge_maps(x, plans, choice), lam=lam_out, source=source)

    @staticmethod
    def _merge_per_sample(plans: list[Plan], choice: Tensor, lam: Tensor, source: Tensor | None) -> Plan:
        """Members with per-sample weights and optional boxes (Mixup, CutMix, ResizeMix,
        SaliencyMix): merged per sample, so that the boxes stay boxes (slice copies on CPU)."""
        as_float = any(p.weight.dtype != torch.bool for p in plans)
        weight = boxes = None
        for k, p in enumerate(plans):
            sel = choice == k
            w = p.weight.view(-1).float() if as_float else p.weight.view(-1)
            weight = w if weight is None else torch.where(sel, w, weight)
            if p.boxes is not None:
                boxes = torch.zeros_like(p.boxes) if boxes is None else boxes  # empty boxes paste nothing
                boxes = torch.where(sel.view(-1, 1), p.boxes, boxes)
        return Plan(weight=weight.view(-1, 1, 1, 1), lam=lam, source=source, boxes=boxes)

    def _merge_maps(self, x: Tensor, plans: list[Plan], choice: Tensor) -> Tensor:
        """One (B, 1, H, W) weight map for all members: bool when every member
        selects, else float (x's dtype, float32 for integer images)."""
        h, w = x.shape[-2:]
        maps = []
        for p in plans:
            m = p.weight.expand(x.shape[0], 1, h, w)
            if p.boxes is not None:
                inside = F.box_masks(p.boxes, h, w)
                m = m & ~inside if m.dtype == torch.bool else m.masked_fill(inside, 0.0)
            maps.append(m)
        shape = (x.shape[0], 1, h, w)
        if all(m.dtype == torch.bool for m in maps):
            weight = torch.empty(shape, dtype=torch.bool, device=x.device)
        else:
            dtype = x.dtype if x.is_floating_point() else torch.float32
            # written in place into kept scratch (no batch-sized allocations)
            weight = self.scratch(shape, x) if dtype == x.dtype and not x.requires_grad else None
            weight = torch.empty(shape, dtype=dtype, device=x.device) if weight is None else weight
        for k, m in enumerate(maps):
            if k == 0:
                weight.copy_(m)
            else:
                weight.copy_(torch.where((choice == k).view(-1, 1, 1, 1), m.to(weight.dtype), weight))
        return weight

    def sample_lam(self, draws: Draws) -> Tensor:
        # Members draw their own lambdas in `plan`; this one only gates.
        return torch.ones(draws.n, device=draws.device)

    def extra_repr(self) -> str:
        inner = ", ".join(f"{p:g}: {m.__class__.__name__}({m.extra_repr()})" for m, p in zip(self.mixers, self.probs))
        return f"[{inner}]"
