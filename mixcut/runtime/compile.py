"""``trainer.compile``: whether to wrap the model in ``torch.compile``.

``auto`` (the default) compiles on CUDA only. On CPU, Inductor's compilation
takes minutes on a small machine and the compiled step was not faster than
eager in our measurements (scripts/bench_compile.py), so short CPU runs lose
time; ``true`` still forces it anywhere, ``false`` turns it off.

Compilation happens in the first training forward: the engine times each epoch's first
update apart (``first_step_seconds`` in the metrics, "first step" in the epoch line) and
leaves it out of the epoch's img/s. Later recompilations (the last, shorter batch; each
layer Manifold Mixup draws the first time) still fall inside it.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

CHOICES = ("auto", "true", "false")


def normalize_compile(value) -> str:
    """``auto``, ``true`` or ``false`` from a config value (booleans and their
    strings, as Hydra passes ``trainer.compile=true``)."""
    text = str(value).strip().lower()
    if text not in CHOICES:
        raise ConfigError(f"trainer.compile must be auto, true or false; got {value!r}.")
    return text


def resolve_compile(value, device: torch.device, eager_reason: str | None = None) -> tuple[bool, str]:
    """Whether to compile on ``device``, and a line for the run's first lines. ``eager_reason``
    (from the mixer) says why the model must run eagerly: ``auto`` then does not compile, and
    ``true`` is refused later by the mixer's own check, with the same reason."""
    mode = normalize_compile(value)
    if mode == "auto":
        if device.type == "cuda" and eager_reason:
            return False, f"trainer.compile=auto: not compiling ({eager_reason})"
        if device.type == "cuda":
            return True, "trainer.compile=auto: compiling the model (auto compiles on CUDA only)"
        return False, f"trainer.compile=auto: not compiling on {device.type} (auto compiles on CUDA only; true forces it)"
    return mode == "true", f"trainer.compile={mode}"
