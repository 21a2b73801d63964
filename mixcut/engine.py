"""One training epoch: the only place that knows the step order.

batch -> mix (on the device) -> forward under autocast (inside the mixer's model context)
      -> mixer.after_forward (may re-weigh the targets or add an auxiliary loss) -> soft-target loss
      -> backward (scaled for fp16) -> [every grad_accum_steps batches:
         flags: non-finite (loss; gradient norm unless fp16's scaler checks), stop requested
         -> max over ranks (one all-reduce) -> read on the host (the update's one sync)
         -> skip, or: unscale, clip, optimizer step, EMA update, per-step lr update
         -> after_step (stop, periodic checkpoints)]

Host syncs: one per update, the read of the agreed flags (with the loss for the progress
bar when a line is due, in the same read), plus one per epoch for its mean loss; fp16 adds
GradScaler's own read of its overflow flag in ``scaler.step``. The skip is decided on the
host because it cannot be applied on the device in general: torch's for-loop and foreach
optimizers take no ``found_inf`` (torch/optim/sgd.py: "Expected grad_scale and found_inf to
be None"; GradScaler reads it on the host for them, torch/amp/grad_scaler.py
``_maybe_opt_step``), and a skipped update must not advance the EMA, the schedule or
``global_step``. tests/test_engine.py counts these reads. The flags are agreed across ranks so every rank skips the same updates
(fp16: the same ``scaler.update`` calls, so the loss scales never drift apart) and stops
at the same step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
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


def _agree(flags: torch.Tensor) -> torch.Tensor:
    """The maximum of ``flags`` over all ranks (``flags`` itself in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags


def _nonfinite_what(loss_value: torch.Tensor, local_bad: torch.Tensor) -> str:
    """Words for an error message (failure path only: it may sync)."""
    if not bool(torch.isfinite(loss_value)):
        return f"loss ({loss_value.item()})"
    return "gradient" if bool(local_bad) else "loss or gradient on another rank"


def _optimizer_step(
    parts: StepParts, state: TrainState, loss_value: torch.Tensor, stop: bool = False, read_loss: bool = False
) -> tuple[bool, bool, float | None]:
    """Finish one update. Returns (stepped, stop, loss): ``stepped`` is False when the update was
    skipped for a non-finite loss or gradient on any rank, ``stop`` is True when any rank asked to
    stop, ``loss`` is the update's loss when ``read_loss`` (else None)."""
    opt, scaler = parts.optimizer, parts.scaler
    params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
    bad = ~torch.isfinite(loss_value)
    grad_norm = None
    if scaler is None:  # fp16's scaler checks the gradients itself (an overflow skips, it is not an error)
        # A finite loss can still give NaN gradients (seen with bf16 conv backward on CPU).
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        bad = bad | ~torch.isfinite(grad_norm)
    local_bad = bad
    flags = _agree(torch.stack([bad.float(), bad.new_full((), float(stop), dtype=torch.float32)]))
    if read_loss:
        flags = torch.cat([flags, loss_value.detach().float().view(1)])
    values = flags.tolist()  # the update's one host sync: it waits for the backward
    stop, loss = values[1] > 0, values[2] if read_loss else None
    if values[0] > 0:
        opt.zero_grad(set_to_none=True)
        state.nonfinite_total += 1
        state.nonfinite_streak += 1
        if parts.on_nonfinite == "abort":
            what = _nonfinite_what(loss_value, local_bad)
            raise NonFiniteLossError(f"non-finite {what} at step {state.global_step + 1} (epoch {state.epoch + 1}).")
        if state.nonfinite_streak >= parts.max_nonfinite:
            raise NonFiniteLossError(
                f"{state.nonfinite_streak} non-finite losses or gradients in a row up to step {state.global_step + 1}; "
                "lower optim.lr, add trainer.clip_grad=1.0, or check the data."
            )
        return False, stop, loss
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
    return True, stop, loss


def train_one_epoch(
    parts: StepParts,
    state: TrainState,
    batches,
    progress=None,
    after_step: Callable[[TrainState, bool], bool] | None = None,
    log_every: int = 20,
    stop_requested: Callable[[], bool] | None = None,
) -> dict:
    """Train from ``state.batch`` to the end of ``state.epoch``.

    ``stop_requested()`` says whether this rank wants to stop (a signal); the ranks agree on it
    at every update, together with the non-finite flag. ``after_step(state, stop)`` runs after
    every update with that agreement and may return True to stop early (graceful stop); the
    epoch is then left unfinished and ``state.batch`` says where to resume. The progress bar
    gets the loss every ``log_every`` batches, read only when the bar is shown (``progress``
    not None and not ``progress.disable``). Returns the epoch's statistics; its
    ``train_images_per_sec`` leaves out the epoch's first update (compilation, warm-up), whose
    time is ``first_step_seconds``.
    """
    model, accum = parts.model, parts.grad_accum_steps
    model.train()
    shown = progress is not None and not getattr(progress, "disable", False)
    loss_sum = torch.zeros((), device=parts.device)
    seen, updates, n_batches, stopped, line_due = 0, 0, len(batches), False, False
    first_seconds, first_seen = None, 0
    pending = torch.zeros((), device=parts.device)  # loss of the current accumulation window
    start = time.perf_counter()
    for b, (x, y) in enumerate(batches.epoch(state.epoch, state.batch), start=state.batch):
        x, target = parts.mixer(x, y)
        last_micro = (b + 1) % accum == 0 or b + 1 == n_batches
        sync = contextlib.nullcontext() if last_micro or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with parts.autocast():
                with parts.mixer.model_context(model):
                    logits = model(x)
                after = getattr(parts.mixer, "after_forward", None)  # TransMix, RecursiveMix (a duck-typed mixer may lack it)
                target, aux_loss = (target, None) if after is None else after(model, logits, target)
            loss = parts.loss_fn(logits, target)
            loss = faults.corrupt_loss(loss if aux_loss is None else loss + aux_loss)
            scaled = loss / accum
            (parts.scaler.scale(scaled) if parts.scaler is not None else scaled).backward()
        faults.point("step")
        pending += loss.detach() / accum
        seen += x.shape[0]
        state.batch = b + 1
        line_due = line_due or (shown and (b + 1) % log_every == 0)
        if last_micro:
            stop = stop_requested is not None and stop_requested()
            stepped, stop, shown_loss = _optimizer_step(parts, state, pending, stop, read_loss=line_due)
            if stepped:
                loss_sum += pending
                updates += 1
            pending = torch.zeros((), device=parts.device)
            if first_seconds is None:  # the flags' read above waited for this update's backward
                first_seconds, first_seen = time.perf_counter() - start, seen
            if line_due:
                rate = (seen - first_seen) / max(time.perf_counter() - start - first_seconds, 1e-9)
                progress.set_postfix(loss=f"{shown_loss:.3f}", img_s=f"{rate:.0f}", refresh=False)
                line_due = False
            if after_step is not None and after_step(state, stop):
                stopped = True
        if progress is not None:
            progress.update(1)
        if stopped:
            break
    elapsed = time.perf_counter() - start
    first_seconds = elapsed if first_seconds is None else first_seconds
    steady = seen > first_seen and elapsed > first_seconds
    return {
        "train_loss": float(loss_sum) / max(updates, 1),  # the epoch's one extra sync
        "train_images": seen,
        "train_seconds": elapsed,
        "train_images_per_sec": (seen - first_seen) / (elapsed - first_seconds) if steady else seen / max(elapsed, 1e-9),
        "first_step_seconds": first_seconds,
        "stopped": stopped,
    }
