"""timm models that take ``img_size`` are built for the data's size; an explicit
``model.kwargs.img_size`` wins; other models are built as before."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from mixcut import models


def model_cfg(name: str, **kwargs):
    return OmegaConf.create(
        {"name": name, "pretrained": False, "drop_rate": 0.0, "drop_path_rate": None, "kwargs": kwargs or None}
    )


def test_vit_gets_the_data_size():
    model, note = models.create_model_for_data(model_cfg("deit_tiny_patch16_224"), 10, 32)
    assert tuple(model.patch_embed.img_size) == (32, 32)
    assert "img_size=32" in note and "data.img_size" in note
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    # the plain create_model (evaluation of a checkpoint) builds the same network
    again = models.create_model(model_cfg("deit_tiny_patch16_224"), 10, img_size=32)
    again.load_state_dict(model.state_dict())


def test_explicit_kwargs_win():
    model, note = models.create_model_for_data(model_cfg("deit_tiny_patch16_224", img_size=48), 10, 32)
    assert tuple(model.patch_embed.img_size) == (48, 48) and note is None


def test_models_without_img_size_are_unchanged():
    model, note = models.create_model_for_data(model_cfg("cifar_resnet20"), 10, 32)
    assert note is None and model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
