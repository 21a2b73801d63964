"""trainer.deterministic on CUDA says what it guarantees (issue 18); CPU runs say nothing."""

from __future__ import annotations

import pytest
import torch

from mixcut.build import set_determinism


@pytest.fixture
def restore_flags(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def test_deterministic_on_cuda_states_its_limits(restore_flags):
    import os

    note = set_determinism(True, torch.device("cuda", 0))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert "trainer.deterministic=true on CUDA" in note and "index_add_" in note and "nondeterministically" in note
    assert "CUBLAS_WORKSPACE_CONFIG=:4096:8" in note


def test_cpu_and_off_say_nothing(restore_flags):
    assert set_determinism(True, torch.device("cpu")) is None
    assert set_determinism(False, torch.device("cuda", 0)) is None
