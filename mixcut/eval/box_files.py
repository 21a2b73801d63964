"""Ground-truth boxes: readers of the box files and their mapping into evaluated-image pixels.

Boxes are ``(x0, y0, x1, y1)`` in pixels with x1, y1 exclusive. Readers (`BOX_READERS`):
`read_box_file` (mixcut's ``boxes.txt``: ``relative/path x0 y0 x1 y1 width height``,
written by scripts/make_canvas_set.py), `read_imagenet_xml` (one PASCAL-VOC XML per
validation image), Kaggle's ImageNet ``LOC_val_solution.csv`` (`read_kaggle_val_boxes`, beside
the Kaggle layout's other readers in `mixcut.data.imagenet_layout`) and `read_cub`
(CUB-200-2011 ``images.txt`` + ``bounding_boxes.txt``).
`boxes_for_split` maps them through validation's resize and centre crop.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.imagenet_layout import read_kaggle_val_boxes
from ..errors import DataError


def read_box_file(path: str | Path) -> dict[str, tuple[list[list[float]], tuple[int, int]]]:
    """mixcut's boxes file: ``relative/path x0 y0 x1 y1 width height`` per line (# comments)."""
    out: dict = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        rel, *nums = line.split()
        x0, y0, x1, y1, w, h = (float(v) for v in nums)
        boxes, _ = out.setdefault(rel, ([], (int(w), int(h))))
        boxes.append([x0, y0, x1, y1])
    return out


def read_imagenet_xml(xml_dir: str | Path) -> dict[str, tuple[list[list[float]], tuple[int, int]]]:
    """ImageNet validation boxes: one PASCAL-VOC XML per image (``ILSVRC2012_val_00000001.xml``), keyed by
    the image's file stem; every object's box (ImageNet val images may have several)."""
    out = {}
    for f in sorted(Path(xml_dir).glob("*.xml")):
        root = ET.parse(f).getroot()
        size = root.find("size")
        wh = (int(size.findtext("width")), int(size.findtext("height")))
        boxes = [[float(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")] for o in root.iter("object")]
        out[f.stem] = (boxes, wh)
    return out


def read_cub(root: str | Path) -> dict[str, tuple[list[list[float]], tuple[int, int] | None]]:
    """CUB-200-2011: ``images.txt`` (id path) + ``bounding_boxes.txt`` (id x y width height), keyed by the
    image's path as in images.txt (``001.Black_footed_Albatross/...jpg``); image sizes are read later."""
    root = Path(root)
    paths = dict(line.split(maxsplit=1) for line in (root / "images.txt").read_text().splitlines() if line.strip())
    out = {}
    for line in (root / "bounding_boxes.txt").read_text().splitlines():
        if not line.strip():
            continue
        i, x, y, w, h = line.split()
        x, y, w, h = float(x), float(y), float(w), float(h)
        out[paths[i].strip()] = ([[x, y, x + w, y + h]], None)
    return out


BOX_READERS = {
    "mixcut": read_box_file,
    "imagenet_xml": read_imagenet_xml,
    "kaggle_csv": read_kaggle_val_boxes,
    "cub": read_cub,
}


def eval_geometry(boxes: Tensor, width: int, height: int, img_size: int, crop_pct: float) -> Tensor:
    """Boxes of an original (width x height) image mapped through validation's resize (shorter side
    to round(img_size / crop_pct), as torchvision's Resize) and centre crop to img_size, clipped."""
    resize = int(round(img_size / crop_pct))
    short, long_ = (width, height) if width <= height else (height, width)
    new_long = int(resize * long_ / short)
    new_w, new_h = (resize, new_long) if width <= height else (new_long, resize)
    sx, sy = new_w / width, new_h / height
    left, top = int(round((new_w - img_size) / 2.0)), int(round((new_h - img_size) / 2.0))
    out = boxes.clone()
    out[..., [0, 2]] = (out[..., [0, 2]] * sx - left).clamp(0, img_size)
    out[..., [1, 3]] = (out[..., [1, 3]] * sy - top).clamp(0, img_size)
    return out


def boxes_for_split(paths: Sequence[str], data_root: str | Path, table: dict, img_size: int, crop_pct: float) -> Tensor:
    """(N, K, 4) ground-truth boxes in evaluated-image pixels for the split's files (padding: zeros).

    A file is looked up by its path relative to ``data_root``, then relative to its split folder
    (``val/``), then relative to its class folder's parent, then by file stem.
    """
    from PIL import Image

    root = Path(os.path.abspath(data_root))
    rows = []
    for p in paths:
        path = Path(os.path.abspath(p))  # not resolve(): a folder of symbolic links keeps its own names
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        keys = [rel, rel.split("/", 1)[-1], "/".join(path.parts[-2:]), path.stem]
        hit = next((table[k] for k in keys if k in table), None)
        if hit is None:
            raise DataError(f"no ground-truth box for {p} (looked up {keys}) in the boxes file.")
        boxes, wh = hit
        if wh is None:
            with Image.open(p) as im:  # header only
                wh = im.size
        rows.append(eval_geometry(torch.tensor(boxes, dtype=torch.float32), wh[0], wh[1], img_size, crop_pct))
    k = max(len(r) for r in rows)
    return torch.stack([F.pad(r, (0, 0, 0, k - len(r))) for r in rows])
