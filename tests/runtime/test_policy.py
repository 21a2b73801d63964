"""Device, precision and determinism policy (mixcut.runtime.policy), with a faked
torch.cuda: compute capability and bf16 support flags as a V100, T4, A100 or H100
reports them."""

from __future__ import annotations

import os

import pytest
import torch

from mixcut.errors import ConfigError
from mixcut.runtime.distributed import DistInfo
from mixcut.runtime.policy import resolve_amp, resolve_device, set_determinism, set_tf32

V100, T4, A100, H100 = (7, 0), (7, 5), (8, 0), (9, 0)


@pytest.fixture
def fake_gpu(monkeypatch):
    """``fake_gpu(capability)`` makes torch.cuda report one such GPU and returns its device."""

    def make(capability: tuple[int, int]) -> torch.device:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)

        def is_bf16_supported(including_emulation: bool = True) -> bool:
            # torch counts a V100/T4 as supporting bf16 because it can emulate it
            return capability >= (8, 0) or including_emulation

        monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
        monkeypatch.setattr(torch.version, "hip", None)
        return resolve_device("cuda", DistInfo(0, 1, 0))

    return make


@pytest.fixture
def backend_flags(monkeypatch):
    """Restore every global switch the policy sets."""
    matmul, conv = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    algorithms = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = matmul, conv
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    torch.use_deterministic_algorithms(algorithms[0], warn_only=algorithms[1])


def test_auto_precision_is_fp32_on_cpu():
    assert resolve_amp("auto", torch.device("cpu")) is None
    assert resolve_amp("bf16", torch.device("cpu")) is torch.bfloat16


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_native_precision_is_bf16_only_on_a_cpu_that_computes_it(monkeypatch, fast_bf16):
    import mixcut.runtime.policy as policy

    monkeypatch.setattr(policy, "cpu_has_fast_bf16", lambda: fast_bf16)
    assert resolve_amp("native", torch.device("cpu")) is (torch.bfloat16 if fast_bf16 else None)
    assert resolve_amp("auto", torch.device("cpu")) is None  # auto never picks bf16 on a CPU


@pytest.mark.parametrize("capability", [V100, A100])
def test_native_precision_is_auto_on_gpus(fake_gpu, capability):
    assert resolve_amp("native", fake_gpu(capability)) is resolve_amp("auto", fake_gpu(capability))


@pytest.mark.parametrize("capability", [V100, T4])
def test_auto_amp_is_fp16_where_bf16_is_only_emulated(fake_gpu, capability):
    assert resolve_amp("auto", fake_gpu(capability)) is torch.float16


@pytest.mark.parametrize("capability", [A100, H100])
def test_auto_amp_is_bf16_where_bf16_is_native(fake_gpu, capability):
    assert resolve_amp("auto", fake_gpu(capability)) is torch.bfloat16


def test_fp32_on_ampere_uses_tf32_and_says_so(fake_gpu, backend_flags):
    device = fake_gpu(A100)
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "ieee"
    note = set_tf32(True, device, amp_dtype=None)
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    assert "TF32" in note and "trainer.tf32=false" in note

    note = set_tf32(False, device, amp_dtype=None)
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert "full IEEE fp32" in note


def test_tf32_leaves_older_gpus_and_cpus_alone(fake_gpu, backend_flags):
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    assert set_tf32(True, torch.device("cpu"), amp_dtype=None) is None
    assert set_tf32(True, fake_gpu(V100), amp_dtype=None) is None
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"


def test_deterministic_on_cuda_says_what_it_cannot_make_deterministic(fake_gpu, backend_flags):
    note = set_determinism(True, fake_gpu(A100))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark
    assert "nondeterministically" in note and "trainer.deterministic=true" in note


def test_a_foreign_cublas_workspace_setting_is_named(fake_gpu, backend_flags, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    note = set_determinism(True, fake_gpu(A100))
    assert "CUBLAS_WORKSPACE_CONFIG=:0:0" in note


def test_determinism_on_cpu_or_off_has_nothing_to_say(backend_flags):
    assert set_determinism(True, torch.device("cpu")) is None
    assert set_determinism(False, torch.device("cpu")) is None
    assert torch.backends.cudnn.benchmark


def test_a_named_gpu_under_several_processes_is_refused(fake_gpu):
    """trainer.device=cuda:0 under torchrun would put every rank on GPU 0 (NCCL then fails): refused, naming the fix."""
    fake_gpu(A100)
    assert resolve_device("cuda:0", DistInfo(0, 1, 0)) == torch.device("cuda", 0)
    assert resolve_device("cuda", DistInfo(1, 2, 1)).type == "cuda"
    with pytest.raises(ConfigError, match="trainer.device=cuda "):
        resolve_device("cuda:0", DistInfo(1, 2, 1))
