"""Where images come from: in-memory tensors or files on disk.

`load_source` builds the `Source` (`splits.py`) that ``data.name`` names: a train
split, an optional validation split and the class names. Tensor splits (digits, CIFAR, synthetic) are uint8 (N, C, H, W); file
splits (folder, imagenet) are paths decoded later by the loader or the cache.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .folder import FileSplit, balanced_split, scan_folder
from .splits import Source, TensorSplit


def _split_tensor(split: TensorSplit, fraction: float, seed: int) -> tuple[TensorSplit, TensorSplit]:
    as_files = FileSplit(list(range(len(split))), split.labels.tolist())
    train, val = balanced_split(as_files, fraction, seed)
    pick = lambda s: TensorSplit(split.images[torch.tensor(s.paths)], split.labels[torch.tensor(s.paths)])  # noqa: E731
    return pick(train), pick(val)


def digits_source(img_size: int, val_fraction: float, split_seed: int) -> Source:
    """scikit-learn's 1,797 handwritten 8x8 digits, upsampled to RGB squares.

    Real data that ships inside a dependency, so the default run needs no
    download. The validation split is class-balanced and fixed by split_seed.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    full = TensorSplit(x, torch.from_numpy(digits.target).long())
    classes = [str(i) for i in range(10)]
    if val_fraction <= 0:
        return Source(full, None, classes)
    train, val = _split_tensor(full, val_fraction, split_seed)
    return Source(train, val, classes)


CIFAR_FILES = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def cifar_source(name: str, root: str | None, download: bool, val_fraction: float, split_seed: int) -> Source:
    """CIFAR-10/100 through torchvision (python version), test split as validation."""
    from torchvision.datasets import CIFAR10, CIFAR100

    root = str(Path(root or "data").expanduser())
    cls = CIFAR10 if name == "cifar10" else CIFAR100
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
    except RuntimeError as e:
        where = Path(root) / CIFAR_FILES[name]
        raise ConfigError(
            f"{name} not found under {where}; put the extracted python version there "
            f"(from https://www.cs.toronto.edu/~kriz/) or add data.download=true when online ({e})."
        ) from e
    except OSError as e:  # download failed: offline
        raise ConfigError(
            f"could not download {name} to {root} ({e}); put the extracted files there or run with network access."
        ) from e

    def to_split(ds) -> TensorSplit:
        return TensorSplit(torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets).long())

    return Source(to_split(train), to_split(test), list(train.classes))


def synthetic_source(num_classes: int, img_size: int, train_size: int, val_size: int, seed: int) -> Source:
    """Random images whose mean colour and a stripe depend on the class: cheap,
    learnable, and the same for a given seed (benchmarks and tests)."""
    gen = torch.Generator().manual_seed(seed)

    def make(n: int) -> TensorSplit:
        labels = torch.randint(0, num_classes, (n,), generator=gen)
        palette = torch.rand(num_classes, 3, 1, 1, generator=torch.Generator().manual_seed(seed + 1)) * 160 + 40
        noise = torch.randn(n, 3, img_size, img_size, generator=gen) * 30
        img = palette[labels] + noise
        stripe = (labels % img_size).view(-1, 1, 1)
        rows = torch.arange(img_size).view(1, -1, 1)
        img[:, 0] += 60.0 * (rows == stripe).float()
        return TensorSplit(img.clamp(0, 255).to(torch.uint8), labels)

    return Source(make(train_size), make(val_size), [f"class_{i}" for i in range(num_classes)])


def load_source(data_cfg) -> Source:
    """Build the `Source` named by ``data.name`` (no image is decoded here)."""
    name = data_cfg.name
    if name == "digits":
        return digits_source(data_cfg.img_size, data_cfg.val_fraction, data_cfg.split_seed)
    if name in CIFAR_FILES:
        return cifar_source(name, data_cfg.root, data_cfg.download, data_cfg.val_fraction, data_cfg.split_seed)
    if name == "synthetic":
        n = data_cfg.num_classes or 10
        return synthetic_source(n, data_cfg.img_size, data_cfg.train_size, data_cfg.val_size, data_cfg.split_seed)
    if name == "imagenet":  # issue 21: also the official flat val/ (devkit labels) and Kaggle's layout
        from .imagenet_layout import scan_imagenet

        train, val, classes = scan_imagenet(data_cfg.root, data_cfg.val_fraction, data_cfg.split_seed)
        return Source(train, val, classes)
    if name == "folder":
        train, val, classes = scan_folder(data_cfg.root, data_cfg.val_fraction, data_cfg.split_seed)
        return Source(train, val, classes)
    if name == "shards":  # issue 13: WebDataset shards (counts from their index.json, nothing decoded here)
        from .shards import shard_source

        return shard_source(data_cfg)
    raise ConfigError(f"unknown data set {name!r}.")
