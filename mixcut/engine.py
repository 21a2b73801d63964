"""One training epoch: the only place that knows the step order.

batch -> mix (on the device) -> forward under autocast -> soft-target loss
      -> backward (scaled for fp16) -> [every grad_accum_steps batches:
         non-finite check (loss and gradients), unscale, clip, optimizer step, EMA update,
         per-step lr update]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .runtime import faults
from .wrappers import unwrap_model


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or Inf loss or gradient and the policy says to stop."""


@dataclass
class TrainState:
    """Counters that a checkpoint must restore for an exact resume."""

    epoch: int = 0  # epoch in progress (0-based)
    batch: int = 0  # next batch of that epoch
    global_step: int = 0  # optimizer updates so far
    nonfinite_total: int = 0
    nonfinite_streak: int = 0
    best: dict = field(default_factory=dict)
    reached: dict = field(default_factory=dict)  # validation top-1 threshold -> wall seconds when first reached

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class StepParts:
    """What a training step needs, built once by `mixcut.build`."""

    model: nn.Module  # possibly DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    mixer: object
    device: torch.device
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    scheduler: object = None
    ema: nn.Module | None = None
    averager: object = None  # mixcut.averaging.LookaheadAverage (trainer.lookahead)
    grad_accum_steps: int = 1
    clip_grad: float | None = None
    clip_mode: str = "norm"
    on_nonfinite: str = "skip"
    max_nonfinite: int = 10

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def _optimizer_step(parts: StepParts, state: TrainState, loss_value: torch.Tensor) -> bool:
    """Finish one update; returns False if it was skipped for a non-finite loss or gradient."""
    opt, scaler = parts.optimizer, parts.scaler
    params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
    finite = torch.isfinite(loss_value)
    grad_norm = None
    if scaler is None:  # fp16's scaler checks the gradients itself (an overflow skips, it is not an error)
        # A finite loss can still give NaN gradients (seen with bf16 conv backward on CPU).
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        finite = finite & torch.isfinite(grad_norm)
    # One 1-byte read per update; on CPU it is free, on CUDA it is the only sync.
    if not bool(finite):
        opt.zero_grad(set_to_none=True)
        state.nonfinite_total += 1
        state.nonfinite_streak += 1
        what = f"loss ({loss_value.item()})" if not torch.isfinite(loss_value) else "gradient"
        if parts.on_nonfinite == "abort":
            raise NonFiniteLossError(f"non-finite {what} at step {state.global_step + 1} (epoch {state.epoch + 1}).")
        if state.nonfinite_streak >= parts.max_nonfinite:
            raise NonFiniteLossError(
                f"{state.nonfinite_streak} non-finite losses or gradients in a row up to step {state.global_step + 1}; "
                "lower optim.lr, add trainer.clip_grad=1.0, or check the data."
            )
        return False
    state.nonfinite_streak = 0
    if parts.clip_grad is not None:
        if scaler is not None:
            scaler.unscale_(opt)
        if parts.clip_mode == "norm":
            if grad_norm is None:
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
            torch.nn.utils.clip_grads_with_norm_(params, parts.clip_grad, grad_norm)
        else:
            torch.nn.utils.clip_grad_value_(params, parts.clip_grad)
    if scaler is not None:
        scaler.step(opt)  # skips the step itself on fp16 overflow (not an error)
        scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)
    state.global_step += 1
    if parts.ema is not None:
        parts.ema.update(unwrap_model(parts.model)[0], step=state.global_step)
    if parts.averager is not None:
        parts.averager.update(unwrap_model(parts.model)[0], state.global_step)
    if parts.scheduler is not None:
        parts.scheduler.step_update(num_updates=state.global_step)
    return True


def train_one_epoch(
    parts: StepParts,
    state: TrainState,
    batches,
    progress=None,
    after_step: Callable[[TrainState], bool] | None = None,
    log_every: int = 20,
) -> dict:
    """Train from ``state.batch`` to the end of ``state.epoch``.

    ``after_step(state)`` runs after every optimizer update and may return
    True to stop early (graceful stop); the epoch is then left unfinished and
    ``state.batch`` says where to resume. Returns the epoch's statistics.
    """
    model, accum = parts.model, parts.grad_accum_steps
    model.train()
    loss_sum = torch.zeros((), device=parts.device)
    seen, updates, n_batches, stopped = 0, 0, len(batches), False
    pending = torch.zeros((), device=parts.device)  # loss of the current accumulation window
    start = time.perf_counter()
    for b, (x, y) in enumerate(batches.epoch(state.epoch, state.batch), start=state.batch):
        x, target = parts.mixer(x, y)
        last_micro = (b + 1) % accum == 0 or b + 1 == n_batches
        sync = contextlib.nullcontext() if last_micro or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with parts.autocast(), parts.mixer.model_context(model):
                logits = model(x)
            loss = faults.corrupt_loss(parts.loss_fn(logits, target))
            scaled = loss / accum
            (parts.scaler.scale(scaled) if parts.scaler is not None else scaled).backward()
        faults.point("step")
        pending += loss.detach() / accum
        seen += x.shape[0]
        state.batch = b + 1
        if last_micro:
            if _optimizer_step(parts, state, pending):
                loss_sum += pending
                updates += 1
            pending = torch.zeros((), device=parts.device)
            if after_step is not None and after_step(state):
                stopped = True
        if progress is not None and (b + 1) % log_every == 0:
            elapsed = time.perf_counter() - start
            progress.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{seen / max(elapsed, 1e-9):.0f}", refresh=False)
        if progress is not None:
            progress.update(1)
        if stopped:
            break
    elapsed = time.perf_counter() - start
    return {
        "train_loss": float(loss_sum) / max(updates, 1),
        "train_images": seen,
        "train_seconds": elapsed,
        "train_images_per_sec": seen / max(elapsed, 1e-9),
        "stopped": stopped,
    }
