"""The step's guard: a finite loss with non-finite gradients is skipped like a non-finite loss,
clipping by norm is torch's, and trainer.amp=auto never picks bf16 on a CPU."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch import nn

from mixcut.build import resolve_amp
from mixcut.engine import NonFiniteLossError, StepParts, TrainState, train_one_epoch


class _Batches:
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(5, 4, generator=g), torch.randint(0, 3, (5,), generator=g)) for _ in range(n)]

    def __len__(self):
        return len(self.data)

    def epoch(self, epoch, start):
        return iter(self.data[start:])


class _NoMix:
    def __call__(self, x, y):
        return x, y

    def model_context(self, model):
        return contextlib.nullcontext()

    def after_forward(self, model, logits, target):
        return target, None


class _PoisonedLinear(nn.Linear):
    """nn.Linear whose weight gradient is NaN on the chosen forward calls, while the loss stays
    finite: what a faulty backward kernel does."""

    def __init__(self, poisoned_calls: set[int]):
        super().__init__(4, 3)
        self.poisoned_calls, self.calls, self.hooks = poisoned_calls, 0, []

    def forward(self, x):
        self.calls += 1
        while self.hooks:
            self.hooks.pop().remove()
        if self.calls in self.poisoned_calls:
            self.hooks.append(self.weight.register_hook(lambda g: torch.full_like(g, float("nan"))))
        return super().forward(x)


def _train(poisoned_calls, n=4, **kw):
    torch.manual_seed(0)
    model = _PoisonedLinear(poisoned_calls)
    parts = StepParts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loss_fn=nn.CrossEntropyLoss(),
        mixer=_NoMix(),
        device=torch.device("cpu"),
        **kw,
    )
    state = TrainState()
    stats = train_one_epoch(parts, state, _Batches(n))
    return model, state, stats


def test_nan_gradient_with_finite_loss_is_skipped_and_counted():
    model, state, stats = _train(poisoned_calls={2}, n=4)
    assert torch.isfinite(model.weight).all() and torch.isfinite(model.bias).all()
    assert state.nonfinite_total == 1 and state.global_step == 3 and math.isfinite(stats["train_loss"])


def test_nan_gradient_aborts_when_the_policy_says_so():
    with pytest.raises(NonFiniteLossError, match="non-finite gradient at step 1"):
        _train(poisoned_calls={1}, n=2, on_nonfinite="abort")


def test_nan_gradients_in_a_row_stop_the_run():
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses or gradients in a row"):
        _train(poisoned_calls={1, 2, 3}, n=4, max_nonfinite=3)


def test_clip_by_norm_gives_the_same_weights_as_torch_clip_grad_norm():
    model, _, _ = _train(poisoned_calls=set(), n=3, clip_grad=0.01)
    torch.manual_seed(0)
    ref = nn.Linear(4, 3)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for x, y in _Batches(3).data:
        nn.CrossEntropyLoss()(ref(x), y).backward()
        torch.nn.utils.clip_grad_norm_(list(ref.parameters()), 0.01)
        opt.step()
        opt.zero_grad()
    assert torch.equal(model.weight, ref.weight) and torch.equal(model.bias, ref.bias)


def test_auto_precision_is_fp32_on_cpu():
    assert resolve_amp("auto", torch.device("cpu")) is None
    assert resolve_amp("bf16", torch.device("cpu")) is torch.bfloat16
