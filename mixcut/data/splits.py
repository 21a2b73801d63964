"""What a data set is made of: splits (`TensorSplit` in memory, or file paths, see
`folder.FileSplit`) and the `Source` that holds a train split, an optional
validation split and the class names. Every module of `mixcut.data` may import
this one; it imports none of them but `folder`."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .folder import FileSplit


@dataclass
class TensorSplit:
    images: Tensor  # uint8 (N, C, H, W)
    labels: Tensor  # int64 (N,)

    def __len__(self) -> int:
        return self.labels.shape[0]


Split = TensorSplit | FileSplit


@dataclass
class Source:
    train: Split
    val: Split | None
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)
