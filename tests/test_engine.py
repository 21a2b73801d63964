"""The step's guard: a finite loss with non-finite gradients is skipped like a non-finite loss,
clipping by norm is torch's, and trainer.amp=auto never picks bf16 on a CPU."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch import nn

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


# ------------------------------------------------------------------ host-sync budget
# Tensor methods that copy a device value to the host: on CUDA each one waits for the queued work.
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


@contextlib.contextmanager
def counting_host_reads():
    """Count calls of `HOST_READS` on any tensor (on CPU every tensor is counted: the test keeps
    host-side tensors out of the step, so each count stands for a sync on CUDA)."""
    counts: dict[str, int] = {}
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def counted(name, fn):
        def read(self, *args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            return fn(self, *args, **kwargs)

        return read

    for name, fn in originals.items():
        setattr(torch.Tensor, name, counted(name, fn))
    try:
        yield counts
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)


class _ImageBatches(_Batches):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(8, 3, 4, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]


class _Bar:
    def __init__(self, disable):
        self.disable, self.postfixes = disable, []

    def set_postfix(self, **kw):
        self.postfixes.append(kw)

    def update(self, n):
        pass


def _budget_parts(device) -> StepParts:
    from timm.utils import ModelEmaV3

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3)).to(device)
    return StepParts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        loss_fn=nn.CrossEntropyLoss(),
        mixer=_NoMix(),  # the mixers' CPU paths read on the host by design (no such path on CUDA)
        device=device,
        ema=ModelEmaV3(model, decay=0.9),
        clip_grad=1.0,
    )


@pytest.mark.parametrize("bar_shown", [False, True])
def test_host_syncs_per_update_stay_within_budget(bar_shown):
    """One host read per update (the agreed non-finite/stop flags, with the bar's loss in the same
    read) and one per epoch (its mean loss); none for a bar that is not shown. A new sync in the
    step (forward, loss, clipping, optimizer, EMA, the engine) fails here, on CPU too."""
    parts = _budget_parts(torch.device("cpu"))
    updates, log_every, bar = 12, 4, _Bar(disable=not bar_shown)
    with counting_host_reads() as counts:
        train_one_epoch(parts, TrainState(), _ImageBatches(updates), progress=bar, log_every=log_every)
    total = sum(counts.values())
    print(f"host reads in {updates} updates (bar shown: {bar_shown}): {total} {counts}")
    assert total <= updates + 1, counts
    assert len(bar.postfixes) == (updates // log_every if bar_shown else 0)


@pytest.mark.cuda
def test_host_syncs_per_update_on_cuda():
    """The same budget counted by CUDA's own sync detector (every synchronizing call warns)."""
    import warnings

    device = torch.device("cuda")
    parts = _budget_parts(device)
    batches = _ImageBatches(12)
    batches.data = [(x.to(device), y.to(device)) for x, y in batches.data]
    train_one_epoch(parts, TrainState(), batches, log_every=4)  # warm-up (cuBLAS, EMA)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_one_epoch(parts, TrainState(epoch=1), batches, progress=_Bar(disable=True), log_every=4)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    print(f"CUDA syncs in 12 updates: {len(syncs)}")
    assert len(syncs) <= 12 + 1, [str(w.message) for w in syncs[:5]]


def test_first_update_is_timed_apart_from_the_epoch_rate(monkeypatch):
    """Compilation happens in the first forward: the epoch's img/s leaves that update out and reports its
    time as first_step_seconds (a fake clock: 100 s for the first forward, 1 s for each other)."""
    import time

    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])

    class Slow(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.calls = nn.Sequential(nn.Flatten(), nn.Linear(48, 3)), 0

        def forward(self, x):
            self.calls += 1
            now[0] += 100.0 if self.calls == 1 else 1.0
            return self.inner(x)

    model = Slow()
    parts = StepParts(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), _NoMix(), torch.device("cpu"))
    stats = train_one_epoch(parts, TrainState(), _ImageBatches(5))
    assert stats["first_step_seconds"] == 100.0 and stats["train_seconds"] == 104.0
    assert stats["train_images_per_sec"] == 8.0  # 4 batches of 8 images in 4 s
