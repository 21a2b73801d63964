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
