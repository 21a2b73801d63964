"""Per-image transforms for the worker path (PIL in, uint8 CHW tensor out).

Built from timm's and torchvision's transforms; normalisation and random
erasing happen later on the device, on whole batches, so workers ship compact
uint8 tensors.
"""

from __future__ import annotations

import torch
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms.functional import pil_to_tensor

INTERPOLATIONS = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


class ToUint8Tensor:
    """PIL image to a uint8 (C, H, W) tensor, no scaling."""

    def __call__(self, img) -> torch.Tensor:
        return pil_to_tensor(img)


def auto_augment_transform(aug, img_size: int, mean):
    from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform

    hparams = {"translate_const": int(img_size * 0.45), "img_mean": tuple(round(255 * m) for m in mean)}
    name = aug.auto_augment
    if name.startswith("rand"):
        return rand_augment_transform(name, hparams)
    if name.startswith("augmix"):
        return augment_and_mix_transform(name, hparams)
    return auto_augment_transform(name, hparams)


def train_transform(aug, img_size: int, mean) -> T.Compose:
    """Crop (pad-crop, random-resized-crop or none), flip, colour jitter and
    auto-augment as configured by the ``aug`` group."""
    interp = INTERPOLATIONS.get(aug.interpolation, InterpolationMode.BILINEAR)
    steps = []
    if aug.train_crop == "rrc":
        steps.append(T.RandomResizedCrop(img_size, scale=tuple(aug.scale), ratio=tuple(aug.ratio), interpolation=interp))
    else:
        steps += [T.Resize(img_size, interpolation=interp), T.CenterCrop(img_size)]
        if aug.train_crop == "pad" and aug.padding > 0:
            steps.append(T.RandomCrop(img_size, padding=aug.padding, padding_mode=aug.padding_mode))
    if aug.hflip > 0:
        steps.append(T.RandomHorizontalFlip(aug.hflip))
    if aug.color_jitter:
        cj = float(aug.color_jitter)
        steps.append(T.ColorJitter(cj, cj, cj))
    if aug.auto_augment:
        steps.append(auto_augment_transform(aug, img_size, mean))
    steps.append(ToUint8Tensor())
    return T.Compose(steps)


def eval_transform(aug, img_size: int) -> T.Compose:
    """Resize to ``img_size / crop_pct`` and centre-crop ``img_size``."""
    interp = INTERPOLATIONS.get(aug.interpolation, InterpolationMode.BILINEAR)
    resize = int(round(img_size / aug.crop_pct))
    return T.Compose([T.Resize(resize, interpolation=interp), T.CenterCrop(img_size), ToUint8Tensor()])
