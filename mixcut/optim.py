"""Fine-tuning learning rates on top of timm's parameter groups.

timm's `create_optimizer_v2` builds the weight-decay and layer-decay groups
(``optim.layer_decay``, BEiT/DeiT style) and puts each group's factor in
``lr_scale``, which timm's schedulers multiply into the lr at every update.
``optim.head_lr_scale`` moves the classifier's parameters into groups of their
own with that factor multiplied in, so a freshly initialised head can learn
faster than the pretrained body.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .models.init import classifier_prefixes


def scale_head_lr(optimizer: torch.optim.Optimizer, model: nn.Module, scale: float) -> int:
    """Split the head's parameters out of every group into a copy of that group whose
    ``lr_scale`` is multiplied by ``scale``; returns how many tensors moved."""
    if scale == 1.0:
        return 0
    heads = classifier_prefixes(model)
    head_ids = {id(p) for n, p in model.named_parameters() if any(n == h or n.startswith(h + ".") for h in heads)}
    moved = 0
    for group in list(optimizer.param_groups):
        head = [p for p in group["params"] if id(p) in head_ids]
        if not head:
            continue
        group["params"] = [p for p in group["params"] if id(p) not in head_ids]
        if not group["params"]:
            optimizer.param_groups.remove(group)
        options = {k: v for k, v in group.items() if k != "params"}
        options["lr_scale"] = group.get("lr_scale", 1.0) * scale
        optimizer.add_param_group({**options, "params": head})  # state is empty: nothing has stepped yet
        moved += len(head)
    return moved


def apply_lr_scale_without_scheduler(optimizer: torch.optim.Optimizer) -> None:
    """With ``sched=const`` no timm scheduler applies ``lr_scale``: apply it once here."""
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)


# --------------------------------------------------- airbench's optimiser recipe
# Jordan's airbench94 (arXiv 2404.00498) states Nesterov SGD in a "decoupled" form (after
# Page's "How to train your ResNet"): ``optim.lr`` is the step size per 1,024 examples once
# Nesterov's gain 1 + 1/(1 - momentum) is divided out, and ``optim.weight_decay`` is the
# decay per 1,024 examples, independent of the lr. With a mean loss over a global batch B:
#     torch lr           = lr * (B / 1024) / (1 + 1 / (1 - momentum))
#     torch weight_decay = weight_decay / (lr * group lr factor)
# so each of lr, weight decay, momentum and batch size can be changed alone.
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm, nn.SyncBatchNorm)


def decoupled_lr(lr: float, momentum: float, global_batch: int) -> float:
    """The torch SGD lr of the decoupled ``lr`` (per 1,024 examples, Nesterov gain divided out)."""
    return lr * (global_batch / 1024) / (1 + 1 / (1 - momentum))


def norm_bias_names(model: nn.Module) -> set[str]:
    """Names of the biases (shifts) of normalisation layers (BatchNorm, LayerNorm, GroupNorm)."""
    return {
        f"{m_name}.bias" if m_name else "bias"
        for m_name, m in model.named_modules()
        if isinstance(m, NORM_LAYERS) and m.bias is not None
    }


def recipe_param_groups(
    model: nn.Module, weight_decay: float, norm_bias_lr_scale: float, decoupled_lr_value: float | None, filter_bias_and_bn: bool
) -> list[dict]:
    """Trainable parameters in groups for timm's optimiser factory.

    Normalisation biases get ``lr_scale = norm_bias_lr_scale``; parameters a model trains
    for its first epochs only (``model.epoch_limited_params()``) get groups of their own
    tagged ``train_epochs`` (see `stop_expired_groups`). With ``decoupled_lr_value`` (the
    decoupled lr, airbench's form) each group's torch weight decay is
    ``weight_decay / (lr * lr_scale)``; otherwise it is ``weight_decay``, and 0 for biases
    and 1-d tensors when ``filter_bias_and_bn``.
    """
    limited = getattr(model, "epoch_limited_params", dict)()
    norm_biases = norm_bias_names(model)
    groups: dict[tuple, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        scale = norm_bias_lr_scale if name in norm_biases else 1.0
        if decoupled_lr_value is not None:
            wd = weight_decay / (decoupled_lr_value * scale)
        else:
            wd = 0.0 if filter_bias_and_bn and (p.ndim <= 1 or name.endswith(".bias")) else weight_decay
        key = (scale, wd, limited.get(name))
        group = groups.setdefault(key, {"params": [], "lr_scale": scale, "weight_decay": wd})
        if key[2] is not None:
            group["train_epochs"] = key[2]
        group["params"].append(p)
    # the plain group first: the trainer logs param_groups[0]'s lr
    return sorted(groups.values(), key=lambda g: (g.get("train_epochs") is not None, g["lr_scale"] != 1.0))


def needs_recipe_groups(optim_cfg, model: nn.Module) -> bool:
    """True when the parameter groups must be built here rather than by timm's factory alone."""
    return bool(optim_cfg.decoupled or optim_cfg.norm_bias_lr_scale != 1.0 or getattr(model, "epoch_limited_params", None))


def stop_expired_groups(optimizer: torch.optim.Optimizer, epoch: int) -> int:
    """Stop updating the groups whose ``train_epochs`` are over at the start of ``epoch``
    (0-based): their lr factor becomes 0, so momentum and weight decay move them no more
    (the same parameters as airbench's ``requires_grad=False``, and DDP-safe: the gradient
    still exists). The factor lives in the optimizer state, so a resume keeps it. Returns
    how many groups are stopped."""
    stopped = 0
    for group in optimizer.param_groups:
        if group.get("train_epochs") is not None and epoch >= group["train_epochs"]:
            group["lr_scale"], group["lr"] = 0.0, 0.0
            stopped += 1
    return stopped
