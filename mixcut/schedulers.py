"""Learning-rate schedules that timm does not have, on timm's `Scheduler` base (so
``lr_scale`` factors, ``state_dict`` and the trainer's ``step``/``step_update`` calls
work as for timm's own).

``WarmupWarmdownLR`` (``sched=warmdown``): airbench94's shape (Jordan 2024): the lr
factor rises linearly from ``start_factor`` to 1 over the first ``warmup_fraction``
of all updates, then falls linearly to ``end_factor`` at the last update. Updated
every optimizer step; the lr of update u (1-based) is the factor at u - 1.
"""

from __future__ import annotations

import torch
from timm.scheduler.scheduler import Scheduler


def warmdown_factor(t: int, total: int, warmup_fraction: float, start_factor: float, end_factor: float) -> float:
    """The lr factor after ``t`` of ``total`` updates."""
    warmup = int(total * warmup_fraction)
    if t < warmup:
        frac = t / warmup
        return start_factor * (1 - frac) + frac
    frac = (t - warmup) / max(total - warmup, 1)
    return (1 - frac) + end_factor * frac


class WarmupWarmdownLR(Scheduler):
    """Linear warmup then linear warmdown over ``total_updates`` optimizer steps."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_updates: int,
        warmup_fraction: float = 0.23,
        start_factor: float = 0.2,
        end_factor: float = 0.07,
    ) -> None:
        super().__init__(optimizer, param_group_field="lr", t_in_epochs=False, initialize=True)
        self.total_updates = total_updates
        self.warmup_fraction, self.start_factor, self.end_factor = warmup_fraction, start_factor, end_factor
        self.update_groups(self._get_lr(0))  # the first update runs at the start factor

    def _get_lr(self, t: int) -> list[float]:
        f = warmdown_factor(t, self.total_updates, self.warmup_fraction, self.start_factor, self.end_factor)
        return [v * f for v in self.base_values]
