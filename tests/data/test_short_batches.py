"""Unreadable images under data.on_bad_image=skip: training batches keep their size (a constant
shape under torch.compile, the same step count on every DDP rank), and shard labels are
range-checked on the host (issue 18)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mixcut.data.cache import recipe_transform
from mixcut.data.folder import FileSplit
from mixcut.data.pipelines import DataError, LoaderBatches
from mixcut.data.shards import ShardBatches, load_index, shard_split

TF = recipe_transform({"resize": 8, "crop": 8, "interpolation": "bilinear"})


def png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def common(train: bool = True) -> dict:
    return dict(
        transform=TF, num_workers=0, pin_memory=False, persistent_workers=False, prefetch_factor=2, on_bad_image="skip",
        train=train, batch_size=4, device="cpu", normalize=lambda x: x, seed=0, rank=0, world_size=1,
    )  # fmt: skip


def folder_stream(tmp_path: Path, bad: set[int], n: int = 12) -> LoaderBatches:
    """``n`` images of value 10*i (label i), those at train positions ``bad`` of epoch 0 unreadable."""
    paths = []
    for i in range(n):
        path = tmp_path / f"img_{i}.png"
        path.write_bytes(png(10 * i))
        paths.append(str(path))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    stream = LoaderBatches(FileSplit(paths, list(range(n))), **common())
    order, _ = stream.order(0)
    for pos in bad:
        stream.loader.dataset.split.paths[int(order[pos])] = str(tmp_path / "broken.png")
    return stream


def test_a_batch_that_lost_images_is_filled_up_with_its_own(tmp_path):
    stream = folder_stream(tmp_path, bad={5})
    batches = list(stream.epoch(0))
    assert [x.shape[0] for x, _ in batches] == [4, 4, 4]
    x, y = batches[1]
    assert torch.equal(x[:, 0, 0, 0].long(), 10 * y)  # images keep their labels
    assert y[3] == y[0] and len(set(y[:3].tolist())) == 3  # the three readable ones, then the first again
    assert stream.end_epoch_report() == {"bad_images": 1} and stream.filler.filled == 1


def test_an_unreadable_batch_repeats_the_previous_one(tmp_path):
    stream = folder_stream(tmp_path, bad={4, 5, 6, 7})
    batches = list(stream.epoch(0))
    assert len(batches) == len(stream) == 3  # every rank runs every step: DDP cannot wait forever
    assert torch.equal(batches[1][1], batches[0][1]) and torch.equal(batches[1][0], batches[0][0])


def test_an_unreadable_first_batch_takes_the_first_readable_one(tmp_path):
    stream = folder_stream(tmp_path, bad={0, 1, 2, 3})
    batches = list(stream.epoch(0))
    assert len(batches) == 3 and torch.equal(batches[0][1], batches[1][1])
    assert stream.filler.filled == 1


def test_an_epoch_without_a_readable_image_is_an_error(tmp_path):
    stream = folder_stream(tmp_path, bad=set(range(12)))
    with pytest.raises(DataError, match="every image of the 3 training batch"):
        list(stream.epoch(0))


def test_validation_batches_are_not_filled(tmp_path):
    paths = [str(tmp_path / f"v{i}.png") for i in range(4)]
    for i, p in enumerate(paths):
        Path(p).write_bytes(png(i) if i else b"broken")
    stream = LoaderBatches(FileSplit(paths, [0, 1, 2, 3]), **common(train=False))
    assert [x.shape[0] for x, _ in stream.epoch(0)] == [3]  # counted exactly once


# ------------------------------------------------------------------ shards
def write_shards(root: Path, samples: list[tuple[bytes, int]], classes: int = 3) -> Path:
    """One shard ``train-000000.tar`` of ``samples`` (image bytes, label) and its index.json."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "train-000000.tar", "w") as tar:
        for i, (data, label) in enumerate(samples):
            for ext, payload in (("png", data), ("cls", str(label).encode())):
                info = tarfile.TarInfo(f"s{i:04d}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    index = {
        "classes": [f"c{i}" for i in range(classes)],
        "splits": {"train": {"pattern": "train-000000.tar", "shards": ["train-000000.tar"], "counts": [len(samples)]}},
    }
    (root / "index.json").write_text(json.dumps(index))
    return root


def shard_stream(root: Path, **kw) -> ShardBatches:
    index, where = load_index(str(root / "train-000000.tar"), None)
    split = shard_split(str(root / "train-000000.tar"), index, where, "train_shards")
    split.num_classes = len(index["classes"])
    return ShardBatches(split, shuffle_buffer=0, **{**common(), **kw})


def test_shard_batches_keep_their_size(tmp_path):
    samples = [(png(10 * i), i % 3) for i in range(8)]
    samples[2] = (b"not an image", 0)
    batches = list(shard_stream(write_shards(tmp_path, samples)).epoch(0))
    assert [x.shape[0] for x, _ in batches] == [4, 4]


def test_a_shard_label_out_of_range_is_a_data_error_naming_the_shard(tmp_path):
    samples = [(png(10 * i), i % 3) for i in range(8)]
    samples[5] = (png(50), 7)
    message = r"train-000000\.tar:s0005 has label 7, outside \[0, num_classes=3\).*data\.num_classes=8"
    with pytest.raises(DataError, match=message):
        list(shard_stream(write_shards(tmp_path, samples)).epoch(0))


def test_shard_source_checks_against_data_num_classes(tmp_path):
    from types import SimpleNamespace

    from mixcut.data.shards import shard_source

    write_shards(tmp_path, [(png(1), 0)] * 4)
    cfg = SimpleNamespace(train_shards=str(tmp_path / "train-000000.tar"), val_shards=None, shard_index=None, num_classes=10)
    assert shard_source(cfg).train.num_classes == 10
    cfg.num_classes = None
    assert shard_source(cfg).train.num_classes == 3
