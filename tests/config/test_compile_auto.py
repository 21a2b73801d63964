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
