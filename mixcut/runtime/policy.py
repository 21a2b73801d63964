"""Device, precision and seed policy: which device a process uses, which autocast
dtype ``trainer.amp`` means there, whether fp32 matmuls and convolutions may use
TF32, the seeds and the determinism switches.

Training (`mixcut.build`), the preflight and evaluation all stand on this module,
so a checkpoint is evaluated under the same policy it was trained with. Each
``set_*`` function returns the sentence a run's first lines should carry (None
when there is nothing to say).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from ..errors import ConfigError
from .distributed import DistInfo

CUBLAS_DETERMINISTIC = ":4096:8"  # the workspace setting cuBLAS needs for reproducible matmuls


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``trainer.device`` as a torch device; ``cuda`` means this process's local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.device={name} but no CUDA device is visible; use trainer.device=cpu (or auto).")
        if name == "cuda":
            return torch.device("cuda", info.local_rank % torch.cuda.device_count())
        if info.world_size > 1:  # cuda:N would put every rank on GPU N, and NCCL fails on the shared device
            raise ConfigError(
                f"trainer.device={name} names one GPU for all {info.world_size} processes; use trainer.device=cuda "
                "(each process takes its LOCAL_RANK's GPU) and pick the GPUs with CUDA_VISIBLE_DEVICES."
            )
    return torch.device(name)


def is_ampere_or_newer(device: torch.device) -> bool:
    """Compute capability 8.0 or higher: bf16 and TF32 in hardware."""
    return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)


def cuda_has_native_bf16(device: torch.device) -> bool:
    """True when the GPU computes bf16 in hardware. ``torch.cuda.is_bf16_supported()``
    alone also counts emulation (V100, T4), where bf16 autocast is slower than fp16."""
    if torch.version.hip:
        return torch.cuda.is_bf16_supported()
    try:
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.3 has no including_emulation
        native = True
    return native and is_ampere_or_newer(device)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (AVX512-BF16 or AMX); on AVX2
    machines bf16 autocast is emulated and many times slower than fp32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """``trainer.amp`` as an autocast dtype (None: fp32)."""
    # auto is fp32 on every CPU: even where bf16 is native (AVX512-BF16) it measured no
    # faster for the CIFAR models, was not bitwise reproducible, and torch 2.14's oneDNN
    # bf16 conv backward now and then returns NaN weight gradients (scripts/dev/bf16_cpu_nan.py).
    if amp in ("auto", "native"):
        if device.type == "cuda":
            return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
        # native: for recipes whose big convolutions do pay in bf16 on a CPU (airbench94: 2x per
        # step with AVX512-BF16, docs/throughput.md); emulated bf16 would be many times slower
        return torch.bfloat16 if amp == "native" and device.type == "cpu" and cpu_has_fast_bf16() else None
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(
            "trainer.amp=fp16 needs a CUDA device (its gradient scaler is CUDA-only); on CPU use trainer.amp=bf16 or none."
        )
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def cpu_bf16_note(amp_dtype: torch.dtype | None, device: torch.device) -> str | None:
    """What a user who asked for bf16 on a CPU should know (auto never picks it there)."""
    if amp_dtype != torch.bfloat16 or device.type != "cpu":
        return None
    if not cpu_has_fast_bf16():
        return "trainer.amp=bf16 on a CPU without native bf16 (no AVX512-BF16/AMX): emulated, many times slower than fp32."
    return (
        "trainer.amp=bf16 on CPU: not bitwise reproducible; steps whose gradients come out non-finite "
        "are handled by trainer.on_nonfinite."
    )


def _set_fp32_precision(tf32: bool) -> None:
    """cuBLAS matmuls and cuDNN convolutions in fp32: TF32 or full IEEE fp32."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch 2.9+: mixing this with allow_tf32 is an error
        matmul.fp32_precision = "tf32" if tf32 else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if tf32 else "ieee"
    else:
        matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def set_tf32(on: bool, device: torch.device, amp_dtype: torch.dtype | None) -> str | None:
    """``trainer.tf32``: fp32 matmuls and convolutions use TF32 on Ampere and newer
    GPUs (PyTorch's default leaves matmuls in full fp32, about 2-8x slower there).

    Under autocast it only reaches the ops that stay in fp32. Nothing changes on a
    CPU or an older GPU."""
    if device.type != "cuda" or not is_ampere_or_newer(device):
        return None
    _set_fp32_precision(on)
    if amp_dtype is not None:
        return None
    if on:
        return "fp32 matmuls and convolutions use TF32 (10-bit mantissa) on this GPU; trainer.tf32=false for full fp32."
    return "trainer.tf32=false: fp32 matmuls and convolutions in full IEEE fp32 (slower on this GPU)."


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators (every device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_determinism(on: bool, device: torch.device | None = None) -> str | None:
    """``trainer.deterministic``: deterministic kernels where PyTorch has them, no
    cuDNN autotuning. On CUDA the returned note says what stays non-deterministic."""
    if on:
        # cuBLAS reads the workspace setting when its first handle is made (the first
        # matmul), so setting it here, before the model's first step, takes effect.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on
    if not on or device is None or device.type != "cuda":
        return None
    workspace = os.environ["CUBLAS_WORKSPACE_CONFIG"]
    # torch/__init__.py, use_deterministic_algorithms: index_add_, scatter_add_, index_select's backward,
    # cumsum and cuDNN convolutions switch to deterministic CUDA kernels; the listed ops without one only warn.
    note = (
        "trainer.deterministic=true on CUDA: deterministic kernels where torch has them (convolutions, index_add_, "
        f"scatter_add_, index_select's backward, cumsum; CUBLAS_WORKSPACE_CONFIG={workspace}); an op without one "
        "(e.g. the backward of bilinear interpolate, grid_sample or a non-global adaptive pooling) still runs "
        "nondeterministically, and torch warns once when it does; a multi-GPU run repeats only on the same number of GPUs."
    )
    if workspace not in (":4096:8", ":16:8"):
        note += f" CUBLAS_WORKSPACE_CONFIG={workspace} from the environment is not a deterministic setting; unset it."
    return note
