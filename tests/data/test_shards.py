"""WebDataset shards: make_shards.py and the shard batch stream (issue 13)."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from _trainer_utils import REPO, make_image_folder
from PIL import Image

from mixcut.data.cache import recipe_transform
from mixcut.data.folder import load_rgb
from mixcut.data.shards import ShardBatches, ShardSplit, load_index, pieces, shard_split

_spec = importlib.util.spec_from_file_location("make_shards", REPO / "scripts" / "make_shards.py")
make_shards = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_shards)

TF = recipe_transform({"resize": 16, "crop": 16, "interpolation": "bilinear"})  # deterministic decode only


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """21 good train images in shards of 5, 5, 5, 5, 1 (uneven), 9 val images in 5 + 4, one bad file."""
    tmp = tmp_path_factory.mktemp("shards")
    src = make_image_folder(tmp / "src", classes=3, per_class=7, size=16, val_per_class=3)
    (src / "train" / "class_1" / "broken.jpg").write_bytes(b"not an image")
    assert make_shards.main([str(src), str(tmp / "out"), "--shard-size", "5"]) == 0
    return src, tmp / "out"


def digest(x: torch.Tensor) -> str:
    return bytes(x.contiguous().numpy().tobytes()).hex()[:64] + str(x.sum().item())


def split_of(out: Path, name: str) -> ShardSplit:
    index, where = load_index(str(out / f"{name}-000000.tar"), None)
    return shard_split(str(out / index["splits"][name]["pattern"]), index, where, f"{name}_shards")


def stream(out, name="train", rank=0, world=1, batch=2, workers=0, **kw) -> ShardBatches:
    return ShardBatches(
        split_of(out, name),
        transform=TF,
        num_workers=workers,
        pin_memory=False,
        persistent_workers=kw.pop("persistent", False),
        prefetch_factor=2,
        on_bad_image="error",
        train=name == "train",
        batch_size=batch,
        device="cpu",
        normalize=lambda x: x,  # keep uint8: samples stay comparable
        seed=kw.pop("seed", 0),
        rank=rank,
        world_size=world,
        **kw,
    )


def samples(s: ShardBatches, epoch: int = 0, start: int = 0) -> list[list[str]]:
    return [[digest(img) for img in x] for x, _ in s.epoch(epoch, start)]


def test_make_shards_holds_every_good_image_once_with_its_label(shards, capsys):
    src, out = shards
    index = json.loads((out / "index.json").read_text())
    files = {p.read_bytes(): str(p.relative_to(src)) for p in src.rglob("*.*") if p.name != "broken.jpg"}
    assert len(files) == 30  # every good file has distinct bytes: a file is known by its content
    seen, labels = Counter(), {}
    for split in index["splits"].values():
        for shard, count in zip(split["shards"], split["counts"]):
            with tarfile.open(out / shard) as tar:
                members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
            keys = {n.split(".")[0] for n in members}
            assert len(keys) == count and len(members) == 2 * count
            for k in keys:
                image = next(v for n, v in members.items() if n.startswith(k + ".") and n.split(".")[1] in ("jpg", "png"))
                path = files[image]  # original bytes, unchanged
                seen[path] += 1
                labels[path] = int(members[f"{k}.cls"])
    assert set(seen) == set(files.values()) and set(seen.values()) == {1}
    for path, label in labels.items():
        assert index["classes"][label] == Path(path).parent.name
    assert index["splits"]["train"]["counts"] == [5, 5, 5, 5, 1] and index["splits"]["train"]["total"] == 21


def test_make_shards_reports_bad_images(shards, capsys):
    src, out = shards
    index = json.loads((out / "index.json").read_text())
    assert index["bad_images"] == ["train/class_1/broken.jpg"]


@pytest.mark.slow
def test_make_shards_reports_bad_images_on_stderr(tmp_path):
    """The command line as a user runs it, with worker processes."""
    src = make_image_folder(tmp_path / "src", classes=2, per_class=2, size=12)
    (src / "train" / "class_0" / "empty.png").write_bytes(b"")
    script = REPO / "scripts" / "make_shards.py"
    args = [str(src), str(tmp_path / "out"), "--shard-size", "10", "--val-fraction", "0", "--workers", "2"]
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "index.json").read_text())["splits"]["train"]["total"] == 4
    err = proc.stderr
    assert "skipping unreadable image" in err and "empty.png" in err and "1 unreadable image(s) left out" in err


def test_resize_reencodes_as_jpeg_with_the_stated_quality(tmp_path):
    src = make_image_folder(tmp_path / "src", classes=2, per_class=2, size=20)
    make_shards.main([str(src), str(tmp_path / "out"), "--shard-size", "10", "--resize", "8", "--val-fraction", "0"])
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["resize"] == 8 and index["jpeg_quality"] == 95
    with tarfile.open(tmp_path / "out" / "train-000000.tar") as tar:
        jpgs = [tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".jpg")]
    assert len(jpgs) == 4 and all(Image.open(io.BytesIO(b)).size == (8, 8) for b in jpgs)


def test_pieces_cut_the_concatenated_shards():
    assert pieces(["a", "b", "c"], [5, 5, 1], 3, 11) == [("a", 3, 2), ("b", 0, 5), ("c", 0, 1)]
    assert pieces(["a", "b"], [5, 5], 5, 7) == [("b", 0, 2)]


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_run_the_same_batches_over_uneven_shards_without_repeats(shards, workers):
    _, out = shards
    per_rank = [samples(stream(out, rank=r, world=2, batch=3, workers=workers), epoch=1) for r in (0, 1)]
    assert [len(b) for b in per_rank] == [3, 3]  # (21 // 2) // 3 full batches on each rank
    assert all(len(batch) == 3 for r in per_rank for batch in r)
    flat = [d for r in per_rank for batch in r for d in batch]
    assert len(set(flat)) == len(flat) == 18  # 21 - 18 = 3 skipped this epoch, none repeated


def test_order_depends_on_seed_and_epoch_only(shards):
    _, out = shards
    a, b = samples(stream(out, workers=2), 0), samples(stream(out, workers=2), 0)
    assert a == b
    assert samples(stream(out, workers=2), 1) != a
    assert samples(stream(out, workers=2, seed=1), 0) != a
    for epoch in (0, 1):  # one process: 20 distinct samples of the 21; which one waits changes with the shard order
        flat = sum(samples(stream(out, workers=2), epoch), [])
        assert len(flat) == len(set(flat)) == 20


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers", [0, 2, 3])
def test_mid_epoch_resume_is_exact(shards, workers):
    _, out = shards
    full = samples(stream(out, workers=workers), 2)
    assert len(full) == 10
    for start in (1, 4, 7):
        assert samples(stream(out, workers=workers), 2, start) == full[start:]


@pytest.mark.parametrize("world", [2, 3])
def test_validation_counts_every_sample_once_across_ranks(shards, world):
    _, out = shards
    one = sum(samples(stream(out, "val", batch=4)), [])
    parts = [sum(samples(stream(out, "val", rank=r, world=world, batch=4, workers=2)), []) for r in range(world)]
    assert len(one) == 9 and sorted(sum(parts, [])) == sorted(one)
    assert [len(stream(out, "val", rank=r, world=world, batch=4)) for r in range(world)] == [-(-len(p) // 4) for p in parts]


def test_decoded_pixels_match_the_folder_decode(shards):
    src, out = shards
    expected = {digest(TF(load_rgb(str(p)))) for p in (src / "val").rglob("*.*")}
    assert set(sum(samples(stream(out, "val", batch=4)), [])) == expected


def test_a_short_shard_is_an_error_not_a_hang(shards, tmp_path):
    _, out = shards
    s = stream(out, workers=0)
    s.plan.split.counts[0] += 3  # the index claims more than the shard holds
    s.n = len(s.plan.split)
    from mixcut.errors import DataError

    with pytest.raises(DataError, match="fewer samples than its index says|do not match their index"):
        for epoch in range(4):
            samples(s, epoch)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["data.repeated_aug=3"], "repeated_aug needs random access"),
        (["data.cache=device"], "data.cache=device is not available"),
        (["data.shuffle_buffer=-1"], "shuffle_buffer must be >= 0"),
    ],
)
def test_shard_options_that_cannot_work_fail_early(extra, message):
    from _trainer_utils import compose

    from mixcut.config import check
    from mixcut.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        check(compose(["data=shards", "data.train_shards=/x/train-000000.tar", *extra]))


def test_a_pattern_naming_shards_outside_the_index_is_a_config_error(shards):
    from mixcut.errors import ConfigError

    _, out = shards
    index, where = load_index(str(out / "train-000000.tar"), None)
    with pytest.raises(ConfigError, match="not listed in"):
        shard_split(str(out / "train-{000000..000009}.tar"), index, where, "train_shards")


def test_a_corrupt_shard_is_an_error_naming_it(shards, tmp_path):
    import shutil

    from mixcut.errors import DataError

    _, out = shards
    bad = tmp_path / "copy"
    shutil.copytree(out, bad)
    data = (bad / "val-000000.tar").read_bytes()
    (bad / "val-000000.tar").write_bytes(data[:700] + b"\xff" * 600 + data[1300:])  # a torn header
    with pytest.raises(DataError, match="val-000000.tar"):
        samples(stream(bad, "val", batch=4))


def test_persistent_workers_follow_each_epoch_and_an_abandoned_one(shards):
    _, out = shards
    s = stream(out, workers=2, persistent=True)
    first = samples(s, 0)
    it = s.epoch(5)
    next(it)  # an epoch given up after one batch (a stop signal, a benchmark)
    assert samples(s, 1) == samples(stream(out, workers=2), 1)
    assert samples(s, 0) == first
    assert samples(s, 3, 4) == samples(stream(out, workers=2), 3)[4:]
