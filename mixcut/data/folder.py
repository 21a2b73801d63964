"""Image folders in ImageNet's layout: scanning, splitting and safe decoding.

``ROOT/train/<class>/<image>`` (and optionally ``ROOT/val/<class>/<image>``).
Scanning reads directory entries only; images are decoded in the loader.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..errors import ConfigError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")
LAYOUT = "ROOT/train/<class>/<image> (and optionally ROOT/val/<class>/<image>)"


@dataclass
class FileSplit:
    """A list of image files and their class indices."""

    paths: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.paths)


def find_classes(split_dir: Path) -> list[str]:
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ConfigError(f"no class folders in {split_dir}; expected {LAYOUT}.")
    return classes


def scan_split(split_dir: Path, classes: list[str]) -> FileSplit:
    """All images under ``split_dir/<class>/`` (extensions in any case), sorted."""
    paths, labels = [], []
    for idx, cls in enumerate(classes):
        cls_dir = split_dir / cls
        if not cls_dir.is_dir():
            raise ConfigError(f"class folder {cls_dir} is missing (it exists in train/); every split needs the same classes.")
        files = sorted(
            os.path.join(root, f)
            for root, _, names in os.walk(cls_dir, followlinks=True)
            for f in names
            if f.lower().endswith(IMG_EXTENSIONS) and not f.startswith(".")
        )
        if not files:
            raise ConfigError(f"class folder {cls_dir} holds no images ({', '.join(IMG_EXTENSIONS)}); remove it or add images.")
        paths += files
        labels += [idx] * len(files)
    return FileSplit(paths, labels)


def balanced_split(split: FileSplit, fraction: float, seed: int) -> tuple[FileSplit, FileSplit]:
    """Hold out ``fraction`` of every class (at least one image of any class
    with two or more), chosen by a fixed seed: the same files every run."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor(split.labels)
    train_idx, val_idx = [], []
    for cls in labels.unique().tolist():
        idx = (labels == cls).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = int(round(len(idx) * fraction))
        if fraction > 0 and len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val_idx += idx[:n_val].tolist()
        train_idx += idx[n_val:].tolist()

    def pick(ids: list[int]) -> FileSplit:
        ids = sorted(ids)
        return FileSplit([split.paths[i] for i in ids], [split.labels[i] for i in ids])

    return pick(train_idx), pick(val_idx)


def scan_folder(root: str, val_fraction: float, split_seed: int) -> tuple[FileSplit, FileSplit | None, list[str]]:
    """Train and validation splits of an image folder, and the class names."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ConfigError(f"data directory {base} does not exist; expected {LAYOUT}.")
    train_dir = base / "train"
    if not train_dir.is_dir():
        raise ConfigError(f"{base} has no train/ folder; expected {LAYOUT}.")
    classes = find_classes(train_dir)
    train = scan_split(train_dir, classes)
    val_dir = base / "val"
    if val_dir.is_dir():
        return train, scan_split(val_dir, classes), classes
    if val_fraction <= 0:
        return train, None, classes
    train, val = balanced_split(train, val_fraction, split_seed)
    return train, val, classes


class BadImage(Exception):
    """An image file that cannot be decoded."""


def load_rgb(path: str) -> Image.Image:
    """Decode ``path`` fully and convert to RGB (grayscale, CMYK, palette, alpha).

    Raises `BadImage` naming the file for anything unreadable: truncated,
    empty or not an image at all.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's palette/EXIF chatter
            with Image.open(path) as img:
                img.load()
                if img.mode == "RGB":
                    return img.copy()
                if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                    rgba = img.convert("RGBA")
                    canvas = Image.new("RGB", rgba.size, (0, 0, 0))
                    canvas.paste(rgba, mask=rgba.getchannel("A"))
                    return canvas
                return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise BadImage(f"{path}: {e}") from e
