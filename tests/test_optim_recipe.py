"""airbench94's optimiser recipe: the decoupled Nesterov SGD, the norm-bias lr factor, the
epoch-limited whitening bias, sched=warmdown and the lookahead averaging."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn as nn
from _trainer_utils import FAST, compose

import mixcut.models  # noqa: F401
from mixcut.averaging import LookaheadAverage
from mixcut.build import build, build_optimizer, total_updates_of
from mixcut.optim import decoupled_lr, norm_bias_names, stop_expired_groups
from mixcut.runtime.distributed import DistInfo
from mixcut.schedulers import WarmupWarmdownLR, warmdown_factor

RECIPE = ["optim=airbench", "model.name=cifar_airbench94", "data.img_size=32"]


def _airbench_cfg(*extra):
    return compose(FAST + RECIPE + ["trainer.batch_size=8", *extra])


def test_decoupled_lr_is_the_papers_per_example_lr():
    # batch 1024, momentum 0.85: 11.5 / (1 + 1/0.15) = 1.5 for a mean loss
    assert decoupled_lr(11.5, 0.85, 1024) == pytest.approx(1.5)
    assert decoupled_lr(11.5, 0.85, 512) == pytest.approx(0.75)


def test_groups_norm_biases_fast_whitening_bias_limited_and_decay_independent_of_lr():
    torch.manual_seed(0)
    model = timm.create_model("cifar_airbench94", num_classes=10)
    opt = build_optimizer(_airbench_cfg(), model, world_size=1)
    by_name = {id(p): n for n, p in model.named_parameters()}
    groups = {tuple(sorted(by_name[id(p)] for p in g["params"])): g for g in opt.param_groups}
    norm = tuple(sorted(norm_bias_names(model)))
    assert len(norm) == 6 and groups[norm]["lr_scale"] == 64.0
    assert groups[norm]["weight_decay"] == pytest.approx(0.0153 / (11.5 * 64))
    assert groups[("whiten.bias",)]["train_epochs"] == 3
    others = [g for k, g in groups.items() if k not in (norm, ("whiten.bias",))]
    assert len(others) == 1 and others[0]["weight_decay"] == pytest.approx(0.0153 / 11.5)
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.85
    assert opt.param_groups[0] is others[0]  # the plain group first: its lr is the one logged
    assert opt.param_groups[0]["lr"] == pytest.approx(decoupled_lr(11.5, 0.85, 8))
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {by_name[id(p)] for g in opt.param_groups for p in g["params"]} == trained  # frozen ones left out


def test_one_step_equals_the_papers_sgd_on_a_summed_loss():
    """The reference: torch SGD with lr/kilostep and wd*batch/kilostep, biases at 64x lr, on the SUM of the losses."""
    torch.manual_seed(0)
    ours = timm.create_model("cifar_airbench94", num_classes=10, widths=(8, 8, 8))
    ref = timm.create_model("cifar_airbench94", num_classes=10, widths=(8, 8, 8))
    ref.load_state_dict(ours.state_dict())
    batch = 8
    opt = build_optimizer(_airbench_cfg("+model.kwargs.widths=[8,8,8]"), ours, world_size=1)
    for g in opt.param_groups:  # what the timm scheduler does at every update
        g["lr"] = g["lr"] * g["lr_scale"]
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    lr, wd = 11.5 / kilostep, 0.0153 * batch / kilostep
    norm = norm_bias_names(ref)
    biases = [p for n, p in ref.named_parameters() if n in norm]
    rest = [p for n, p in ref.named_parameters() if n not in norm and p.requires_grad]
    ref_opt = torch.optim.SGD(
        [dict(params=biases, lr=lr * 64, weight_decay=wd / (lr * 64)), dict(params=rest, lr=lr, weight_decay=wd / lr)],
        momentum=0.85,
        nesterov=True,
    )
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    for _ in range(3):
        for model, o, reduction in ((ours, opt, "mean"), (ref, ref_opt, "sum")):
            o.zero_grad()
            nn.functional.cross_entropy(model(x), y, reduction=reduction).backward()
            o.step()
    for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_stop_expired_groups_freezes_the_whitening_bias_from_its_epoch_on():
    torch.manual_seed(0)
    model = timm.create_model("cifar_airbench94", num_classes=10, widths=(8, 8, 8))
    opt = build_optimizer(_airbench_cfg("+model.kwargs.widths=[8,8,8]"), model, world_size=1)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))

    def step() -> torch.Tensor:
        before = model.whiten.bias.detach().clone()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return before

    assert stop_expired_groups(opt, 2) == 0
    assert not torch.equal(step(), model.whiten.bias)  # epochs 0-2: trained
    assert stop_expired_groups(opt, 3) == 1
    other = model.stages[0].conv1.weight.detach().clone()
    assert torch.equal(step(), model.whiten.bias)  # epoch 3 on: not moved by gradient, momentum or decay
    assert not torch.equal(other, model.stages[0].conv1.weight)


def _reference_factor(step: int, total: int) -> float:
    warmup = int(total * 0.23)
    if step < warmup:
        return 0.2 + 0.8 * step / warmup
    return 1.0 - 0.93 * (step - warmup) / (total - warmup)


def test_warmdown_schedule_shape_and_lr_scale():
    total = 426  # 43 batches x 9.9 epochs
    for t in (0, 1, 50, 97, 98, 200, 425, 426):
        assert warmdown_factor(t, total, 0.23, 0.2, 0.07) == pytest.approx(_reference_factor(t, total))
    p, q = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([dict(params=[p], lr_scale=1.0), dict(params=[q], lr_scale=64.0)], lr=2.0)
    sched = WarmupWarmdownLR(opt, total)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.4, 0.4 * 64])  # the first update's lr
    sched.step_update(200)
    assert opt.param_groups[0]["lr"] == pytest.approx(2.0 * _reference_factor(200, total))
    sched.step(1)  # per-epoch calls leave a per-update schedule alone
    assert opt.param_groups[0]["lr"] == pytest.approx(2.0 * _reference_factor(200, total))


def test_total_updates_counts_the_fractional_last_epoch():
    cfg = compose(FAST + ["trainer.epochs=10", "trainer.last_epoch_fraction=0.9"])
    assert total_updates_of(cfg, 43) == 426  # ceil(43 x 9.9), as the paper's 45,000-image run
    assert total_updates_of(compose(FAST + ["trainer.epochs=10"]), 43) == 430


def test_lookahead_matches_the_papers_rule():
    """avg <- lerp(avg, model, 1 - decay) then model <- avg, every 5 steps; decay 0.95**5 (t/T)**3; at T model <- avg."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    la = LookaheadAverage(model, every=5, total_updates=12)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(1, 13):
        with torch.no_grad():
            for v in model.state_dict().values():
                if v.is_floating_point():
                    v.add_(torch.randn_like(v))
            model[1].num_batches_tracked += 1
        snapshot = {k: v.clone() for k, v in model.state_dict().items()}
        la.update(model, step)
        if step % 5 == 0:
            decay = 0.95**5 * (step / 12) ** 3
            for k in ref:
                if ref[k].is_floating_point():
                    ref[k] = decay * ref[k] + (1 - decay) * snapshot[k]
            for k, v in model.state_dict().items():
                expected = ref[k] if v.is_floating_point() else snapshot[k]
                torch.testing.assert_close(v, expected)
        elif step < 12:
            assert all(torch.equal(v, snapshot[k]) for k, v in model.state_dict().items())
    for k, v in model.state_dict().items():  # the run ends on the average of step 10
        if v.is_floating_point():
            torch.testing.assert_close(v, ref[k])
    assert int(model[1].num_batches_tracked) == 12


def test_layer_decay_with_recipe_groups_is_refused():
    from mixcut.errors import ConfigError

    model = timm.create_model("cifar_airbench94", num_classes=10)
    with pytest.raises(ConfigError, match="optim.layer_decay=null"):
        build_optimizer(compose(FAST + ["model.name=cifar_airbench94", "optim.layer_decay=0.7"]), model, world_size=1)


def test_build_wires_the_recipe(tmp_path):
    cfg = _airbench_cfg("sched=warmdown", "trainer.lookahead=true", "trainer.epochs=3", "trainer.last_epoch_fraction=0.5")
    built = build(cfg, DistInfo(), torch.device("cpu"), None)
    p = built.parts
    assert isinstance(p.scheduler, WarmupWarmdownLR) and p.scheduler.total_updates == 2 * 12 + 6  # 96 images / 8
    assert isinstance(p.averager, LookaheadAverage) and p.averager.total_updates == 30


def test_the_recipe_optimiser_fits_any_model():
    """optim=airbench on a ResNet: BatchNorm biases at 64x lr, every trainable tensor in exactly one group."""
    model = timm.create_model("cifar_resnet20", num_classes=10)
    opt = build_optimizer(compose(FAST + ["optim=airbench"]), model, world_size=1)
    names = {id(p): n for n, p in model.named_parameters()}
    fast = {names[id(p)] for g in opt.param_groups if g["lr_scale"] == 64.0 for p in g["params"]}
    assert fast == norm_bias_names(model) and len(fast) == 21  # stem + 9 blocks x 2 + 2 shortcut BNs
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(1 for p in model.parameters() if p.requires_grad)
