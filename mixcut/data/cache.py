"""Decode a file split once into a uint8 tensor for the device-resident path."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from .folder import BadImage, FileSplit, load_rgb
from .sources import TensorSplit
from .transforms import ToUint8Tensor


class _Decode(Dataset):
    def __init__(self, split: FileSplit, size: int) -> None:
        self.split = split
        self.tf = T.Compose([T.Resize(size), T.CenterCrop(size), ToUint8Tensor()])

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        try:
            return self.tf(load_rgb(self.split.paths[i])), self.split.labels[i], True
        except BadImage:
            return torch.zeros(0), self.split.labels[i], False


def decode_to_tensor(split: FileSplit, data_cfg, aug_cfg) -> TensorSplit:
    """All images of ``split`` resized (shorter side) and centre-cropped to
    ``data.img_size``; unreadable files are dropped."""
    loader = DataLoader(_Decode(split, data_cfg.img_size), batch_size=256, num_workers=data_cfg.num_workers,
                        collate_fn=lambda items: items)
    images, labels = [], []
    for items in loader:
        for img, label, ok in items:
            if ok:
                images.append(img)
                labels.append(label)
    return TensorSplit(torch.stack(images), torch.tensor(labels, dtype=torch.long))
