"""data=imagenet reads ImageNet as people have it: sorted val/, the official flat val/ with the devkit,
and Kaggle's layout with LOC_val_solution.csv; a flat val/ without labels is refused with the command
that sorts it. Tiny fake ImageNets in each layout."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mixcut.data.imagenet_layout import DEVKIT, read_kaggle_val_boxes, scan_imagenet
from mixcut.data.sources import load_source
from mixcut.errors import ConfigError

WNIDS = ["n01440764", "n01443537", "n01484850"]  # sorted: class indices 0, 1, 2
# the devkit numbers its classes in its own order, not by sorted wnid (as the real meta.mat does)
DEVKIT_IDS = {"n01484850": 1, "n01440764": 2, "n01443537": 3}
VAL_WNIDS = ["n01443537", "n01484850", "n01440764", "n01484850", "n01443537", "n01440764"]  # val image i+1


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path)


def _train_and_flat_val(base: Path) -> None:
    for w in WNIDS:
        for i in range(2):
            _image(base / "train" / w / f"{w}_{i}.JPEG")
    for i, _ in enumerate(VAL_WNIDS):
        _image(base / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG")


def _meta_mat() -> bytes:
    from scipy.io import savemat

    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")]
    leaves = [(DEVKIT_IDS[w], w, 0) for w in WNIDS]
    synsets = np.array(leaves + [(1001, "n00001740", 3)], dtype=dtype)  # an inner node, as in the real file
    buf = io.BytesIO()
    savemat(buf, {"synsets": synsets})
    return buf.getvalue()


def _truth() -> str:
    return "".join(f"{DEVKIT_IDS[w]}\n" for w in VAL_WNIDS)


def _kaggle_csv(path: Path) -> None:
    rows = ["ImageId,PredictionString"]
    for i, w in enumerate(VAL_WNIDS):
        rows.append(f"ILSVRC2012_val_{i + 1:08d},{w} 1 2 5 6 {w} 0 0 3 4 ")
    path.write_text("\n".join(rows) + "\n")


def _labels(root: Path) -> list[int]:
    source = load_source(SimpleNamespace(name="imagenet", root=str(root), val_fraction=0.1, split_seed=0))
    assert source.classes == WNIDS and len(source.train) == 6
    return source.val.labels


EXPECTED = [WNIDS.index(w) for w in VAL_WNIDS]


def test_official_flat_val_with_the_extracted_devkit(tmp_path):
    _train_and_flat_val(tmp_path)
    data = tmp_path / DEVKIT / "data"
    data.mkdir(parents=True)
    (data / "meta.mat").write_bytes(_meta_mat())
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text(_truth())
    assert _labels(tmp_path) == EXPECTED


def test_official_flat_val_with_the_devkit_archive_in_the_parent(tmp_path):
    root = tmp_path / "imagenet"
    _train_and_flat_val(root)
    with tarfile.open(tmp_path / f"{DEVKIT}.tar.gz", "w:gz") as tar:
        for name, payload in (("meta.mat", _meta_mat()), ("ILSVRC2012_validation_ground_truth.txt", _truth().encode())):
            info = tarfile.TarInfo(f"{DEVKIT}/data/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    assert _labels(root) == EXPECTED


@pytest.mark.parametrize("point_at", ["competition", "cls_loc"])
def test_kaggle_layout_with_the_solution_csv(tmp_path, point_at):
    cls_loc = tmp_path / "ILSVRC" / "Data" / "CLS-LOC"
    _train_and_flat_val(cls_loc)
    _kaggle_csv(tmp_path / "LOC_val_solution.csv")
    assert _labels(tmp_path if point_at == "competition" else cls_loc) == EXPECTED


def test_sorted_val_still_works(tmp_path):
    for w in WNIDS:
        _image(tmp_path / "train" / w / "a.JPEG")
        _image(tmp_path / "val" / w / "b.JPEG")
    train, val, classes = scan_imagenet(str(tmp_path), 0.1, 0)
    assert val.labels == [0, 1, 2]


def test_flat_val_without_labels_is_refused_with_the_sorting_command(tmp_path):
    _train_and_flat_val(tmp_path)
    with pytest.raises(ConfigError, match="scripts/sort_imagenet_val.py"):
        _labels(tmp_path)


def test_sorting_script_gives_the_same_labels(tmp_path):
    from _trainer_utils import load_script

    _train_and_flat_val(tmp_path)
    _kaggle_csv(tmp_path / "labels.csv")
    csv = tmp_path.parent / f"{tmp_path.name}_LOC" / "LOC_val_solution.csv"
    csv.parent.mkdir()
    (tmp_path / "labels.csv").rename(csv)
    load_script("sort_imagenet_val").main([str(tmp_path), "--labels", str(csv)])
    assert not list((tmp_path / "val").glob("*.JPEG"))  # every image moved into its class folder
    assert _labels(tmp_path) == [0, 0, 1, 1, 2, 2]  # sorted by class folder now
    assert sorted(p.parent.name for p in (tmp_path / "val").rglob("*.JPEG")) == sorted(VAL_WNIDS)


def test_kaggle_boxes_for_the_localization_evaluator(tmp_path):
    _kaggle_csv(tmp_path / "LOC_val_solution.csv")
    boxes = read_kaggle_val_boxes(tmp_path / "LOC_val_solution.csv")
    assert boxes["ILSVRC2012_val_00000001"] == ([[1.0, 2.0, 5.0, 6.0], [0.0, 0.0, 3.0, 4.0]], None)
    assert len(boxes) == len(VAL_WNIDS)
