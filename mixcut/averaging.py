"""Lookahead-style weight averaging (airbench94, Jordan 2024): an option beside EMA.

Every ``every`` optimizer updates the average moves towards the model,
``avg = decay * avg + (1 - decay) * model``, and the model is then reset to the
average (Lookahead's "slow weights", Zhang et al. 2019). The decay grows over
the run, ``decay(t) = decay_max * (t / total) ** power`` (airbench: 0.95**5 and
3), so early on the model is barely held back; after the last update the model
becomes the average. Floating-point buffers (BatchNorm statistics) are averaged
too; integer ones (``num_batches_tracked``) are left alone.

timm offers neither: its ``Lookahead`` wraps the optimizer with a fixed alpha and
leaves the buffers out, and ``ModelEmaV3`` keeps a separate copy that is never
written back into the model.
"""

from __future__ import annotations

import torch
from torch import nn


class LookaheadAverage:
    """The averaged state of a model, synchronised with it every ``every`` updates."""

    def __init__(self, model: nn.Module, every: int, total_updates: int, decay_max: float = 0.95**5, power: float = 3.0) -> None:
        self.every, self.total_updates, self.decay_max, self.power = every, total_updates, decay_max, power
        self.avg = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def decay(self, step: int) -> float:
        return self.decay_max * (step / self.total_updates) ** self.power

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Call after optimizer update number ``step`` (1-based)."""
        if step % self.every == 0:
            self._sync(model, self.decay(step))
        if step == self.total_updates:
            self._sync(model, 1.0)  # the run ends on the average

    def _sync(self, model: nn.Module, decay: float) -> None:
        state = model.state_dict()
        for k, avg in self.avg.items():
            avg.lerp_(state[k], 1 - decay)
            state[k].copy_(avg)

    def state_dict(self) -> dict:
        return {"avg": self.avg}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state["avg"].items():
            self.avg[k].copy_(v)
