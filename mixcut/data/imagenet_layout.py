"""ImageNet as people have it: the three layouts of ILSVRC-2012 and their label and box files.

``data=imagenet`` reads ``data.root`` in any of these layouts:

* sorted: ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG`` (what the folder reader takes);
* official: ``ROOT/train/<wnid>/`` and the 50,000 validation images flat in ``ROOT/val/``, labelled by the
  devkit (``ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt``, the ILSVRC2012_ID of each
  image in file order, and ``meta.mat``, which maps those IDs to WordNet IDs; the devkit may sit in ROOT or
  ROOT's parent, extracted or as ``ILSVRC2012_devkit_t12.tar.gz``, as torchvision's ``ImageNet`` reads it).
  The ground-truth IDs are not the sorted-wnid class indices: ``LOC_synset_mapping.txt`` (sorted by wnid)
  cannot stand in for ``meta.mat``;
* Kaggle (ImageNet Object Localization Challenge): ``ROOT/ILSVRC/Data/CLS-LOC/{train,val}`` (ROOT may also
  be the CLS-LOC folder itself) with ``LOC_val_solution.csv`` (``ImageId,PredictionString``; the first token
  of the prediction string is the image's synset) in the competition folder.

A flat ``val/`` without either label file is refused with the command that sorts it
(``python scripts/sort_imagenet_val.py ROOT --labels DEVKIT_OR_CSV``). The same files give the localization boxes:
`read_kaggle_val_boxes` for ``LOC_val_solution.csv``; the official boxes (one PASCAL-VOC XML per image)
are read by `mixcut.eval.localization.read_imagenet_xml`. Both are keyed by the image's file stem.
"""

from __future__ import annotations

import csv
import io
import os
import tarfile
from pathlib import Path

from ..errors import ConfigError
from .folder import IMG_EXTENSIONS, FileSplit, find_classes, scan_folder, scan_split

DEVKIT = "ILSVRC2012_devkit_t12"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_SOLUTION = "LOC_val_solution.csv"
KAGGLE_DATA = Path("ILSVRC") / "Data" / "CLS-LOC"
SORT_COMMAND = "python scripts/sort_imagenet_val.py {root} --labels DEVKIT_OR_CSV"


# ------------------------------------------------------------------ label files
def read_devkit_labels(devkit: Path) -> list[str]:
    """The wnid of every validation image, in file order (ILSVRC2012_val_00000001 first), from the devkit
    (a ``ILSVRC2012_devkit_t12`` folder or its ``.tar.gz``)."""
    if devkit.is_dir():
        meta = (devkit / "data" / "meta.mat").read_bytes()
        truth = (devkit / "data" / GROUND_TRUTH).read_text()
    else:
        with tarfile.open(devkit) as tar:
            meta = tar.extractfile(f"{DEVKIT}/data/meta.mat").read()
            truth = tar.extractfile(f"{DEVKIT}/data/{GROUND_TRUTH}").read().decode()
    wnid_of_id = devkit_wnids(meta)
    return [wnid_of_id[int(line)] for line in truth.split()]


def devkit_wnids(meta_mat: bytes) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid of the 1,000 leaf classes in the devkit's ``meta.mat``."""
    from scipy.io import loadmat

    synsets = loadmat(io.BytesIO(meta_mat), squeeze_me=True)["synsets"]
    return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}


def read_kaggle_val_labels(solution_csv: Path) -> dict[str, str]:
    """Image stem -> wnid from Kaggle's ``LOC_val_solution.csv`` (first token of PredictionString)."""
    with open(solution_csv, newline="") as f:
        return {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(f)}


def read_kaggle_val_boxes(solution_csv: str | Path) -> dict[str, tuple[list[list[float]], None]]:
    """Localization boxes from Kaggle's ``LOC_val_solution.csv``: image stem -> (every object's
    ``[x0, y0, x1, y1]`` in pixels, None: the image size is read from the image), the format of
    `mixcut.eval.localization`'s box readers. PredictionString is ``wnid x0 y0 x1 y1`` repeated."""
    out = {}
    with open(solution_csv, newline="") as f:
        for row in csv.DictReader(f):
            tokens = row["PredictionString"].split()
            boxes = [[float(v) for v in tokens[i + 1 : i + 5]] for i in range(0, len(tokens) - 4, 5)]
            out[row["ImageId"]] = (boxes, None)
    return out


# ----------------------------------------------------------------------- layout
def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS) and not name.startswith(".")


def flat_images(val_dir: Path) -> list[str]:
    """Image files directly inside ``val_dir`` (a flat validation folder), sorted by name."""
    return sorted(e.name for e in os.scandir(val_dir) if e.is_file() and _is_image(e.name))


def data_dir(root: Path) -> Path:
    """The folder holding train/ and val/: ROOT itself, or the Kaggle layout's ILSVRC/Data/CLS-LOC below it."""
    if not (root / "train").is_dir() and (root / KAGGLE_DATA / "train").is_dir():
        return root / KAGGLE_DATA
    return root


def find_label_file(root: Path, base: Path) -> Path | None:
    """The devkit (folder or .tar.gz) or Kaggle's solution CSV, in ROOT, the data folder or up to three
    folders above it (Kaggle keeps the CSV beside ILSVRC/)."""
    places = [root, base, *list(base.parents)[:3]]
    for place in dict.fromkeys(places):
        for candidate in (place / DEVKIT, place / f"{DEVKIT}.tar.gz", place / KAGGLE_SOLUTION):
            if candidate.exists():
                return candidate
    return None


def devkit_entry(truth: list[str], name: str) -> str | None:
    """The devkit's wnid for ``ILSVRC2012_val_<number>.JPEG`` (entry number - 1), None for other names."""
    number = Path(name).stem.rsplit("_", 1)[-1]
    return truth[int(number) - 1] if number.isdigit() and 0 < int(number) <= len(truth) else None


def flat_val_split(val_dir: Path, label_file: Path, classes: list[str]) -> FileSplit:
    """The flat validation folder as a split, labelled by the devkit or Kaggle's CSV."""
    names = flat_images(val_dir)
    if label_file.name == KAGGLE_SOLUTION:
        by_stem = read_kaggle_val_labels(label_file)
        wnids = [by_stem.get(Path(n).stem) for n in names]
    else:
        truth = read_devkit_labels(label_file)
        wnids = [devkit_entry(truth, n) for n in names]
    missing = [n for n, w in zip(names, wnids) if w is None]
    if missing:
        raise ConfigError(f"{label_file} has no label for {len(missing)} image(s) of {val_dir}, e.g. {missing[0]}.")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({w for w in wnids if w not in index})
    if unknown:
        raise ConfigError(f"{label_file} labels validation images with {unknown[:3]}, which have no folder in train/.")
    return FileSplit([str(val_dir / n) for n in names], [index[w] for w in wnids])


def scan_imagenet(root: str, val_fraction: float, split_seed: int) -> tuple[FileSplit, FileSplit | None, list[str]]:
    """Train and validation splits of ImageNet in any of the module docstring's layouts, and the classes."""
    given = Path(root).expanduser()
    base = data_dir(given)
    val_dir = base / "val"
    flat = val_dir.is_dir() and bool(flat_images(val_dir))
    if not flat:
        return scan_folder(str(base), val_fraction, split_seed)
    classes = find_classes(base / "train")
    train = scan_split(base / "train", classes)
    label_file = find_label_file(given, base)
    if label_file is None:
        raise ConfigError(
            f"{val_dir} holds the validation images flat, and neither the devkit ({DEVKIT}/ or {DEVKIT}.tar.gz) nor "
            f"Kaggle's {KAGGLE_SOLUTION} is in {given} or the folders above it to label them. Put one of them there, "
            f"or sort val/ into class folders once with: {SORT_COMMAND.format(root=given)}"
        )
    return train, flat_val_split(val_dir, label_file, classes), classes
