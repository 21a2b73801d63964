"""Manifold Mixup: hidden-state mixing through forward hooks on timm models."""

from __future__ import annotations

import contextlib

import pytest
import timm
import torch
import torch.nn as nn

import mixcut.models  # noqa: F401  (registers cifar_resnet20 in timm)
from mixcut.mix import ManifoldMixup, create_mixer, eligible_layers
from mixcut.mix import functional as F

K = 4


def make(name: str) -> nn.Module:
    torch.manual_seed(0)
    kwargs = {"img_size": 32} if "vit" in name else {}
    return timm.create_model(name, num_classes=K, **kwargs).eval()


MODELS = {
    "test_resnet": ["input", "layer1", "layer2"],
    "test_convnext": ["input", "stages.0", "stages.1"],
    "test_vit": ["input", "blocks.1", "blocks.2"],
    "cifar_resnet20": ["input", "stages.0", "stages.1"],
}


@pytest.fixture(scope="module")
def models():
    return {name: make(name) for name in MODELS}


def inputs(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % K


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def capture(model: nn.Module, layer: str, x: torch.Tensor, mixer: ManifoldMixup | None = None):
    """The state at ``layer`` (after any mixing) and the logits, from our own hook.

    Registered inside the mixer's context, so it runs after the mixer's hook."""
    seen = {}
    with mixer.model_context(model) if mixer is not None else contextlib.nullcontext():
        if layer == "input":
            handle = model.register_forward_pre_hook(lambda m, args: seen.setdefault("h", args[0]))
        else:
            handle = model.get_submodule(layer).register_forward_hook(lambda m, args, out: seen.setdefault("h", out))
        try:
            out = model(x)
        finally:
            handle.remove()
    return seen["h"], out


def test_eligible_layers_discovery(models):
    for name, expected in MODELS.items():
        assert eligible_layers(models[name]) == expected
    isotropic = nn.Module()  # a ViT-B-like stack: 12 blocks at one reduction
    isotropic.blocks = nn.Sequential(*[nn.Sequential(nn.Identity()) for _ in range(12)])
    isotropic.feature_info = [dict(module=f"blocks.{i}", num_chs=8, reduction=16) for i in range(12)]
    assert eligible_layers(isotropic) == ["input", "blocks.2", "blocks.5"]
    del isotropic.feature_info
    assert eligible_layers(isotropic) == ["input", "blocks.2", "blocks.5"]
    assert eligible_layers(models["test_resnet"], ["input", "layer3"]) == ["input", "layer3"]
    with pytest.raises(ValueError, match="not found"):
        eligible_layers(models["test_resnet"], ["layer9"])
    with pytest.raises(ValueError, match="layers="):
        eligible_layers(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))
    wrapped = nn.Module()
    wrapped.stages = nn.Sequential(*[nn.Sequential(nn.Identity()) for _ in range(4)])
    assert eligible_layers(wrapped) == ["input", "stages.0", "stages.1"]


@pytest.mark.parametrize("model_name", list(MODELS))
def test_hidden_state_is_the_lambda_mix(models, model_name):
    model = models[model_name]
    x, y = inputs(size=16 if model_name == "cifar_resnet20" else 32)
    for layer in MODELS[model_name]:
        mixer = ManifoldMixup(layers=[layer], mode="elem", num_classes=K, label_smoothing=0.1, seed=1)
        clean, clean_out = capture(model, layer, x)
        r = mixer.mix(x, y)
        assert r.x is x, "the pixel batch must be returned unmixed"
        mixed, out = capture(model, layer, x, mixer)
        assert mixer.last_layer == layer
        lam = r.lam.view(-1, *([1] * (clean.dim() - 1)))
        torch.testing.assert_close(mixed, lam * clean + (1 - lam) * clean[r.partner])
        assert not torch.allclose(out, clean_out)
        soft = F.smooth_one_hot(y, K, 0.1)
        torch.testing.assert_close(r.target, r.lam.view(-1, 1) * soft + (1 - r.lam.view(-1, 1)) * soft[r.partner])
        assert hooks_left(model) == 0
        torch.testing.assert_close(model(x), clean_out)  # outside the context: never mixed


def test_layer_drawn_uniformly_and_reproducibly(models):
    model = models["cifar_resnet20"]
    x, y = inputs(size=16)

    def layers(seed):
        mixer = ManifoldMixup(num_classes=K, seed=seed)
        seen = []
        for _ in range(30):
            mixer.mix(x, y)
            with mixer.model_context(model):
                pass
            seen.append(mixer.last_layer)
        return seen

    a = layers(0)
    assert a == layers(0) and a != layers(1)
    assert set(a) == {"input", "stages.0", "stages.1"}


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_gradients_flow_into_both_partners(models, mode):
    model = models["test_resnet"]
    for layer in ("input", "layer1"):
        x, y = inputs(n=6)
        x.requires_grad_(True)
        mixer = ManifoldMixup(layers=[layer], mode=mode, num_classes=K, seed=2)
        r = mixer.mix(x, y)
        model.zero_grad(set_to_none=True)
        with mixer.model_context(model):
            logits = model(x)
        # loss of sample 0 only: in eval mode it depends on sample 0 and its partner alone
        loss = -(r.target[0] * logits[0].log_softmax(-1)).sum()
        loss.backward()
        p = int(r.partner[0])
        assert 0 < float(r.lam[0]) < 1 and p != 0
        norms = x.grad.flatten(1).norm(dim=1)
        assert norms[0] > 0 and norms[p] > 0
        others = [i for i in range(6) if i not in (0, p)]
        assert torch.all(norms[others] == 0)
        grads = [q.grad for q in model.parameters() if q.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_lambda_sharing_by_mode(mode):
    x, y = inputs(n=8)
    r = ManifoldMixup(mode=mode, num_classes=K, seed=3).mix(x, y)
    if mode == "batch":
        assert r.lam.unique().numel() == 1
    elif mode == "pair":
        assert torch.equal(r.lam, r.lam[r.partner]) and torch.equal(r.partner[r.partner], torch.arange(8))
    else:
        assert r.lam.unique().numel() == 8


def test_off_means_model_unchanged(models):
    model = models["test_convnext"]
    x, y = inputs()
    reference = model(x)
    for mixer in (ManifoldMixup(prob=0.0, num_classes=K, seed=0), ManifoldMixup(off_epoch=2, num_classes=K, seed=0)):
        mixer.set_epoch(3)
        r = mixer.mix(x, y)
        assert r.x is x and torch.equal(r.lam, torch.ones(4)) and torch.equal(r.target, F.smooth_one_hot(y, K))
        with mixer.model_context(model):
            assert hooks_left(model) == 0
            out = model(x)
        assert torch.equal(out, reference)
    # a context without a preceding mix (e.g. a second forward) does not mix
    mixer = ManifoldMixup(num_classes=K, seed=0)
    mixer.mix(x, y)
    with mixer.model_context(model):
        model(x)
    with mixer.model_context(model):
        assert torch.equal(model(x), reference)


def test_factory_and_bad_outputs():
    m = create_mixer("manifold_mixup", alpha=2.0, layers=["input"], num_classes=K, mode="elem")
    assert isinstance(m, ManifoldMixup) and m.alpha == 2.0

    class TupleOut(nn.Module):
        def forward(self, x):
            return x, x

    model = nn.Sequential()
    model.add_module("pair", TupleOut())
    mixer = ManifoldMixup(layers=["pair"], num_classes=K, seed=0)
    x, y = inputs()
    mixer.mix(x, y)
    with pytest.raises(TypeError, match="tensor outputs"):
        with mixer.model_context(model):
            model(x)
    assert hooks_left(model) == 0


def test_ddp_wrapper_mixes_the_local_module(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        model = make("cifar_resnet20")
        ddp = nn.parallel.DistributedDataParallel(model)
        x, y = inputs(size=16)
        mixer = ManifoldMixup(layers=["stages.0"], mode="elem", num_classes=K, seed=0)
        clean, _ = capture(model, "stages.0", x)
        r = mixer.mix(x, y)
        seen = {}
        with mixer.model_context(ddp):
            handle = model.get_submodule("stages.0").register_forward_hook(lambda m, a, out: seen.setdefault("h", out))
            out = ddp(x)
        handle.remove()
        lam = r.lam.view(-1, 1, 1, 1)
        torch.testing.assert_close(seen["h"], lam * clean + (1 - lam) * clean[r.partner])
        out.sum().backward()
        assert hooks_left(model) == 0
    finally:
        dist.destroy_process_group()


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stages = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU()),
        )
        self.head = nn.Linear(8, K)

    def forward(self, x):
        return self.head(self.stages(x).mean((2, 3)))


def test_torch_compile_matches_eager():
    torch.manual_seed(0)
    model = Tiny()
    compiled = torch.compile(model, backend="eager")  # Dynamo's graph capture, no code generation
    x, y = inputs(size=8)
    mixer = ManifoldMixup(mode="elem", num_classes=K, seed=0)
    seen = set()
    for _ in range(8):
        mixer.mix(x, y)
        partner, lam, u = mixer._pending
        with mixer.model_context(compiled):
            got = compiled(x)
        seen.add(mixer.last_layer)
        mixer._pending = (partner, lam, u)
        with mixer.model_context(model):  # same draw, eager
            expected = model(x)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(compiled(x), model(x))  # outside the context: unmixed
    assert seen == {"input", "stages.0", "stages.1"}


def test_compiled_model_mixes_after_an_unmixed_first_forward():
    """The first compiled forward unmixed (mix.prob < 1): later draws must still mix inside the
    compiled graph (hooks added after Dynamo's first trace would never run)."""
    torch.manual_seed(0)
    model = Tiny()
    compiled = torch.compile(model, backend="eager")
    x, y = inputs(size=8)
    mixer = ManifoldMixup(mode="elem", num_classes=K, seed=0)
    with mixer.model_context(compiled):  # nothing drawn: an unmixed training forward
        clean = compiled(x)
    torch.testing.assert_close(clean, model(x))
    seen = set()
    for _ in range(8):
        mixer.mix(x, y)
        partner, lam, u = mixer._pending
        with mixer.model_context(compiled):
            got = compiled(x)
        seen.add(mixer.last_layer)
        mixer._pending = (partner, lam, u)
        with mixer.model_context(model):  # same draw, eager
            expected = model(x)
        torch.testing.assert_close(got, expected)
        assert not torch.allclose(got, clean), f"layer {mixer.last_layer} was not mixed in the compiled graph"
    assert seen == {"input", "stages.0", "stages.1"}


class _Bf16Stage(nn.Module):
    def forward(self, x):
        return x.to(torch.bfloat16)  # a layer whose output is bf16, as under autocast


def test_bf16_hidden_state_is_mixed_with_the_targets_lam():
    """Under autocast the hidden state is bf16; its mix must use the fp32 lam the targets use,
    rounded once, not lam rounded to bf16 (0.3 -> 0.30078125, a bias shared by every element)."""
    model = nn.Sequential(_Bf16Stage())
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 16, 64, 64, generator=g), torch.tensor([0, 1])
    mixer = ManifoldMixup(layers=["0"], mode="batch", num_classes=K, seed=3)
    r = mixer.mix(x, y)
    clean = model(x).double()
    with mixer.model_context(model):
        mixed = model(x)
    assert mixed.dtype == torch.bfloat16
    other = clean[r.partner]
    d = clean - other
    lam_eff = ((mixed.double() - other) * d).sum((1, 2, 3)) / d.square().sum((1, 2, 3))  # least squares
    assert not torch.equal(r.lam.to(torch.bfloat16).float(), r.lam)  # this lam is not exact in bf16
    torch.testing.assert_close(lam_eff, r.lam.double(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_trainer_step_with_manifold_mixup(tmp_path, monkeypatch):
    """A tiny run through the real trainer, compiled (Dynamo, eager backend) with mix.prob=0.5
    and an unmixed first step: every step that drew a mix mixed a hidden state, no other did,
    and its targets are the soft ones."""
    import functools
    import math

    from _trainer_utils import FAST, compose

    from mixcut.trainer import run

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    steps, model_context, mixed = [], ManifoldMixup.model_context, ManifoldMixup._mixed

    def spy_context(self, model):
        steps.append({"drawn": self._pending is not None, "mixed": 0, "compiled": hasattr(model, "_orig_mod")})
        return model_context(self, model)

    def spy_mixed(self, h, name):
        out = mixed(self, h, name)
        steps[-1]["mixed"] += int(not torch.equal(out, h))
        return out

    monkeypatch.setattr(ManifoldMixup, "model_context", spy_context)
    monkeypatch.setattr(ManifoldMixup, "_mixed", spy_mixed)
    cfg = compose(
        FAST
        + ["mix=manifold_mixup", "mix.prob=0.5", "trainer.seed=1", "trainer.compile=true", "trainer.epochs=1"]
        + ["data.train_size=96", "data.val_size=16"]
    )
    summary = run(cfg, tmp_path / "run")
    assert math.isfinite(summary["nll"]) and summary["train_images_per_sec"] > 0
    assert len(steps) == 6 and all(s["compiled"] for s in steps)
    assert not steps[0]["drawn"], "this seed must leave the first step unmixed (the case under test)"
    assert any(s["drawn"] for s in steps)
    assert [s["mixed"] for s in steps] == [int(s["drawn"]) for s in steps]


@pytest.mark.cuda
def test_compiled_model_mixes_on_cuda_under_bf16_autocast():
    """Inductor on the GPU, as trainer.compile=auto does: an unmixed first forward, then every drawn
    layer mixes inside the compiled graph and matches the eager mix under the same autocast."""
    torch.manual_seed(0)
    model = Tiny().cuda()
    compiled = torch.compile(model)
    x, y = inputs(size=8)
    x, y = x.cuda(), y.cuda()
    mixer = ManifoldMixup(mode="elem", num_classes=K, seed=0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        with mixer.model_context(compiled):
            clean = compiled(x)
        seen = set()
        for _ in range(8):
            mixer.mix(x, y)
            partner, lam, u = mixer._pending
            with mixer.model_context(compiled):
                got = compiled(x)
            seen.add(mixer.last_layer)
            mixer._pending = (partner, lam, u)
            with mixer.model_context(model):
                expected = model(x)
            torch.testing.assert_close(got.float(), expected.float(), atol=2e-2, rtol=2e-2)
            assert not torch.allclose(got.float(), clean.float())
    assert seen == {"input", "stages.0", "stages.1"}
