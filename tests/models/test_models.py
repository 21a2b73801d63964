"""The CIFAR model zoo: registered in timm, the papers' parameter counts, timm's interface, stage discovery."""

from __future__ import annotations

import pytest
import timm
import torch
from omegaconf import OmegaConf

import mixcut.models  # noqa: F401  (registers the networks)
from mixcut.config import ConfigError, ModelConfig
from mixcut.models import create_model

# name, classes, expected parameters (millions), tolerance: the counts the papers quote.
PARAMS = [
    ("preact_resnet18", 10, 11.17, 0.01),  # mixup / Manifold Mixup / FMix: "11.2M"
    ("cifar_resnet18", 10, 11.17, 0.01),  # Cutout's ResNet-18
    ("wide_resnet28_10", 10, 36.48, 0.01),  # WRN paper: 36.5M
    ("pyramidnet200_240", 100, 26.84, 0.01),  # CutMix / PyramidNet papers: 26.8M
    ("cifar_resnet20", 10, 0.27, 0.005),
]
ZOO = [
    "preact_resnet18",
    "preact_resnet34",
    "cifar_resnet18",
    "wide_resnet28_10",
    "wide_resnet16_8",
    "wide_resnet",
    "pyramidnet200_240",
    "pyramidnet110_48",
    "pyramidnet",
    "cifar_resnet20",
]
# Small versions of each family, cheap enough for a real forward and backward pass at 32x32.
SMALL = [
    ("preact_resnet18", dict(width=8)),
    ("preact_resnet18", dict(width=8, final_norm=True)),
    ("cifar_resnet18", dict(width=8)),
    ("wide_resnet", dict(depth=10, widen_factor=1, block_drop_rate=0.3)),
    ("pyramidnet", dict(depth=11, alpha=12, bottleneck=True)),
    ("pyramidnet", dict(depth=8, alpha=12, bottleneck=False)),
]


def n_params(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize("name", ZOO)
def test_registered_in_timm(name):
    assert timm.is_model(name) and name in timm.list_models("*")


@pytest.mark.parametrize("name,classes,millions,tol", PARAMS)
def test_parameter_counts(name, classes, millions, tol):
    with torch.device("meta"):
        model = timm.create_model(name, num_classes=classes)
    assert n_params(model) == pytest.approx(millions, abs=tol)


@pytest.mark.parametrize("name,kwargs", SMALL, ids=[f"{n}-{'-'.join(map(str, k.values()))}" for n, k in SMALL])
def test_forward_backward_and_timm_interface(name, kwargs):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7, **kwargs)
    x = torch.randn(3, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())

    model.eval()
    feats = model.forward_features(x)
    side = 32 // model.feature_info[-1]["reduction"]
    assert tuple(feats.shape) == (3, model.num_features, side, side)
    assert model.forward_head(feats, pre_logits=True).shape == (3, model.num_features)
    torch.testing.assert_close(model.forward_head(feats), model(x))
    assert model.get_classifier().out_features == 7
    model.reset_classifier(4)
    assert model(x).shape == (3, 4) and model.num_classes == 4
    model.reset_classifier(0)
    assert model(x).shape == (3, model.num_features)


@pytest.mark.parametrize("name,kwargs", SMALL[:1] + SMALL[2:], ids=lambda v: str(v))
def test_feature_info_names_the_stages(name, kwargs):
    """Manifold Mixup hooks find the stages through feature_info's module names (or ``stages``)."""
    model = timm.create_model(name, num_classes=5, **kwargs).eval()
    info = model.feature_info
    assert [i["module"] for i in info] == [f"stages.{k}" for k in range(len(model.stages))]
    seen = {}

    def keep(k):
        def hook(module, args, out):
            seen[k] = out.shape

        return hook

    hooks = [model.get_submodule(i["module"]).register_forward_hook(keep(k)) for k, i in enumerate(info)]
    model(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    for k, i in enumerate(info):
        assert seen[k][1] == i["num_chs"] and seen[k][2] == 32 // i["reduction"]


def test_in_chans_and_drop_rate():
    model = timm.create_model("preact_resnet18", num_classes=3, in_chans=1, drop_rate=0.25, width=4)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert model.head_drop.p == 0.25
    wrn = timm.create_model("wide_resnet", depth=10, widen_factor=1, block_drop_rate=0.3)
    assert [m.p for m in wrn.modules() if isinstance(m, torch.nn.Dropout) and m is not wrn.head_drop] == [0.3] * 3


@pytest.mark.parametrize("name", ["preact_resnet18", "wide_resnet28_10", "pyramidnet200_240", "cifar_resnet18", "cifar_resnet20"])
def test_pretrained_is_refused_clearly(name):
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model(name, pretrained=True)
    with pytest.raises(ConfigError, match="model.pretrained=false"):
        create_model(OmegaConf.structured(ModelConfig(name=name, pretrained=True)), 10)


def test_unknown_options_fail_with_the_model_name():
    with pytest.raises(ConfigError, match="pyramidnet200_240"):
        create_model(OmegaConf.structured(ModelConfig(name="pyramidnet200_240", kwargs={"alpah": 200})), 100)
    with pytest.raises(ConfigError, match="stochastic depth"):
        create_model(OmegaConf.structured(ModelConfig(name="wide_resnet28_10", drop_path_rate=0.1)), 10)
    # the CIFAR ResNets used to swallow unknown keywords: a typo trained the default network
    with pytest.raises(ConfigError, match="cifar_resnet20.*unexpected keyword argument 'widht'"):
        create_model(OmegaConf.structured(ModelConfig(name="cifar_resnet20", kwargs={"widht": 2})), 10)
    with pytest.raises(ConfigError, match="cifar_resnet20_w2 has no stochastic depth"):
        create_model(OmegaConf.structured(ModelConfig(name="cifar_resnet20_w2", drop_path_rate=0.1)), 10)
    with pytest.raises(ValueError, match="6n\\+4"):
        timm.create_model("wide_resnet", depth=27)
    with pytest.raises(ValueError, match="9n\\+2"):
        timm.create_model("pyramidnet", depth=111, bottleneck=True)


def test_generic_builders_match_the_named_models():
    with torch.device("meta"):
        assert n_params(timm.create_model("pyramidnet", depth=200, alpha=240, bottleneck=True, num_classes=100)) == n_params(
            timm.create_model("pyramidnet200_240", num_classes=100)
        )
        assert n_params(timm.create_model("wide_resnet", depth=28, widen_factor=10)) == n_params(
            timm.create_model("wide_resnet28_10")
        )


def test_manifold_mixup_finds_the_papers_layers():
    """The input and the outputs of the first two stages: the paper's k in {0, 1, 2} for PreAct ResNet-18."""
    manifold = pytest.importorskip("mixcut.mix.manifold")
    for name in ("preact_resnet18", "wide_resnet28_10", "pyramidnet200_240"):
        with torch.device("meta"):
            model = timm.create_model(name)
        assert manifold.eligible_layers(model) == ["input", "stages.0", "stages.1"]
