"""trainer.compile: auto (default) compiles on CUDA only; true/false still work."""

from __future__ import annotations

import pytest
import torch
from _trainer_utils import FAST, compose

from mixcut.config import ConfigError, check
from mixcut.runtime.compile import resolve_compile


def test_auto_compiles_on_cuda_only():
    on, note = resolve_compile("auto", torch.device("cuda"))
    assert on and "auto" in note
    off, note = resolve_compile("auto", torch.device("cpu"))
    assert not off and "not compiling on cpu" in note


@pytest.mark.parametrize("value,expected", [(True, True), (False, False), ("true", True), ("False", False)])
def test_booleans_still_work(value, expected):
    assert resolve_compile(value, torch.device("cpu"))[0] is expected


def test_config_default_and_values():
    assert compose(FAST).trainer.compile == "auto"
    check(compose([*FAST, "trainer.compile=true"]))
    check(compose([*FAST, "trainer.compile=false"]))
    with pytest.raises(ConfigError, match="trainer.compile"):
        check(compose([*FAST, "trainer.compile=sometimes"]))


@pytest.mark.parametrize("mix,eager", [("transmix", True), ("recursivemix", True), ("cutmix", False), ("manifold_mixup", False)])
def test_auto_leaves_the_model_eager_for_mixers_that_read_its_insides(mix, eager):
    """TransMix and RecursiveMix hook the model; a compiled graph would not run the hooks, so auto
    (compiling on CUDA) must leave the model eager, saying why, rather than stop the run."""
    from mixcut.build import build_mixer

    cfg = compose([*FAST, f"mix={mix}"])
    reason = build_mixer(cfg, 10, 0).eager_reason()
    assert bool(reason) is eager
    on, note = resolve_compile("auto", torch.device("cuda"), reason)
    assert on is not eager
    if eager:
        assert "not compiling" in note and reason in note
