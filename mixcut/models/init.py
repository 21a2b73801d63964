"""Start a model from local weights (``model.init=PATH``): fine-tuning, not resuming.

Reads a mixcut checkpoint, a plain state dict (``.pt``/``.pth``, or a timm
training checkpoint holding one under ``state_dict``/``model``) or a
``.safetensors`` file, always without running pickled code. Keys are cleaned
with timm's `clean_state_dict` (``module.`` / ``_orig_mod.`` prefixes of DDP and
torch.compile). The classifier keeps its fresh initialisation when its shape
differs (another class count); every other missing, unexpected or mis-shaped
key is an error naming the keys, unless ``strict=False``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..checkpoint import load_checkpoint
from ..errors import CheckpointError, ConfigError

log = logging.getLogger("mixcut")

# where a state dict sits inside the containers people save (mixcut: "model"; timm's train.py: "state_dict")
_CONTAINER_KEYS = ("model", "state_dict", "model_state_dict", "module")
_SHOW = 8  # key names quoted in a message before "... and N more"


@dataclass
class InitReport:
    loaded: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)  # classifier tensors left at their fresh init
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "name: file shape vs model shape"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` by name, loaded without executing pickled code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.init={path}: no such file; give a .pt/.pth/.safetensors file or a mixcut checkpoint.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own SafetensorError for a torn header
            raise CheckpointError(f"model.init={path} is not a readable .safetensors file ({e}).") from e
    else:
        sd = load_checkpoint(path, map_location="cpu")  # weights_only=True; pickled code is refused there
        for key in _CONTAINER_KEYS:
            if isinstance(sd, dict) and isinstance(sd.get(key), dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"model.init={path} holds no state dict (a mapping of tensor names to tensors).")
    from timm.models import clean_state_dict

    return clean_state_dict(sd)


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Module names of the classification head(s): timm's ``pretrained_cfg['classifier']``
    (e.g. ``head``, ``fc``, ``("head", "head_dist")``), else the module `get_classifier` returns."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    if names:
        return tuple([names] if isinstance(names, str) else names)
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        return tuple(n for n, m in model.named_modules() if m is head and n)
    return ()


def _is_head(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f" ... and {len(keys) - _SHOW} more" if len(keys) > _SHOW else "")


def init_model(model: nn.Module, path: str | Path, strict: bool = True) -> InitReport:
    """Copy the weights of ``path`` into ``model`` (in place) and log what happened."""
    sd = read_state_dict(path)
    own = model.state_dict()
    heads = classifier_prefixes(model)
    r = InitReport()
    for key, value in sd.items():
        if key not in own:
            r.unexpected.append(key)
        elif value.shape != own[key].shape:
            if _is_head(key, heads):
                r.reinitialised.append(key)  # another class count: keep the fresh head
            else:
                r.mismatched.append(f"{key}: {tuple(value.shape)} in the file vs {tuple(own[key].shape)} in the model")
        else:
            r.loaded.append(key)
    for key in own:
        if key not in sd:
            # a headless file (timm num_classes=0) leaves the head at its fresh init too
            (r.reinitialised if _is_head(key, heads) else r.missing).append(key)
    kinds = (("missing in the file", r.missing), ("not in the model", r.unexpected), ("shape differs", r.mismatched))
    problems = [f"{label} ({len(keys)}): {_names(keys)}" for label, keys in kinds if keys]
    if problems and strict:
        raise CheckpointError(
            f"model.init={path} does not fit {type(model).__name__}: " + "; ".join(problems) + ". Check model.name "
            "(and its kwargs), or set model.init_strict=false to load the matching tensors and keep the rest as initialised."
        )
    model.load_state_dict({k: sd[k] for k in r.loaded}, strict=False)
    log.info("model.init: loaded %d tensors from %s", len(r.loaded), path)
    if r.reinitialised:
        log.info("model.init: classifier re-initialised (class count differs): %s", ", ".join(r.reinitialised))
    for p in problems:
        log.warning("model.init (init_strict=false): left as initialised or ignored, %s", p)
    return r


def pretrained_offline_message(name: str, error: BaseException) -> str | None:
    """One line for a pretrained download that failed for want of a network, else None."""
    chain, e = [], error
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    netlike = ("huggingface_hub", "requests", "urllib", "http", "socket")  # http: http.client, httpx, httpcore
    if not any(isinstance(c, (ConnectionError, TimeoutError)) or type(c).__module__.startswith(netlike) for c in chain):
        return None
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
    return (
        f"model.pretrained=true could not fetch the weights of {name!r} (no network or not in the local cache: {first}); "
        f"download the file elsewhere and start from it with model.init=PATH (.safetensors/.pth), model.pretrained=false."
    )


# ------------------------------------------------------ initialisation from the data
# A model that initialises some weights from training images (airbench's patch-whitening
# first layer) defines ``init_from_data(images)``: `mixcut.build` calls it once, at build
# time, with ``model.data_init_images`` training images spread evenly through the split
# (`BatchStream.sample_images`), un-augmented and normalised as batches are. The call is explicit there (no model
# reaches for data itself) and happens before ``model.init`` weights or a resumed checkpoint,
# which overwrite it.
DATA_INIT_HOOK = "init_from_data"


def wants_training_images(model: nn.Module) -> int:
    """How many training images ``model`` asks for at build time (0: none)."""
    if not callable(getattr(model, DATA_INIT_HOOK, None)):
        return 0
    return int(getattr(model, "data_init_images", 0))


def dirac_conv_init_(conv: nn.Conv2d) -> None:
    """Identity ("dirac") initialisation of the first ``in_channels`` filters of ``conv``
    (the rest keep their default random initialisation); zero bias. With as many
    outputs as inputs the convolution starts as the identity (airbench94)."""
    w = conv.weight.data
    nn.init.dirac_(w[: min(w.shape[0], w.shape[1])])
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def patch_covariance(images: torch.Tensor, kernel: int, chunk: int = 512) -> torch.Tensor:
    """Second moment (uncentred covariance) of all ``kernel`` x ``kernel`` patches of ``images``,
    as a (C*k*k) square matrix in float64, accumulated in chunks so memory stays small."""
    c = images.shape[1]
    d = c * kernel * kernel
    acc = torch.zeros(d, d, dtype=torch.float64, device=images.device)
    count = 0
    for part in images.split(chunk):
        # (N, C*k*k, L): every patch a column, in the (c, kh, kw) order of a conv weight
        cols = torch.nn.functional.unfold(part.float(), kernel).transpose(1, 2).reshape(-1, d).double()
        acc += cols.T @ cols
        count += cols.shape[0]
    return acc / max(count, 1)


def patch_whitening_(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Set ``conv`` (2 * C*k*k outputs, k x k kernel) to whiten k x k patches: the eigenvectors
    of the patch covariance of ``images`` scaled by 1/sqrt(eigenvalue + eps), largest first,
    followed by their negatives (so a GELU after it keeps both signs). Airbench94's first layer;
    its weight then stays frozen."""
    k = conv.kernel_size[0]
    c = conv.in_channels
    d = c * k * k
    if conv.out_channels != 2 * d or conv.kernel_size != (k, k):
        raise ValueError(f"patch whitening needs a square-kernel conv with 2*C*k*k={2 * d} outputs; got {conv}.")
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, k))
    order = torch.arange(d - 1, -1, -1, device=eigenvalues.device)  # largest eigenvalue first
    filters = (eigenvectors[:, order].T / torch.sqrt(eigenvalues[order] + eps).view(-1, 1)).view(d, c, k, k)
    with torch.no_grad():
        conv.weight.copy_(torch.cat((filters, -filters)).to(conv.weight))
