"""The decoded-image cache behind ``data.cache=device`` for folder data (`mixcut.data.cache`).

Same pixels as the worker path, a cache file that is reused while the data set
is unchanged, re-decoded when it changes, and never used when corrupt.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from _trainer_utils import assert_same_tensors, checkpoint, compose, folder_args, make_image_folder, train
from PIL import Image

from mixcut.data import DataError, build_data
from mixcut.data import cache as C

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpeg"


def folder_cfg(root: Path, *extra: str, cache: str = "device"):
    return compose(folder_args(root, f"data.cache={cache}", "data.num_workers=0", "trainer.batch_size=4", *extra))


@pytest.fixture
def folder(tmp_path) -> Path:
    """20x20 JPEGs and PNGs (so the 16px recipe resizes), with a val/ folder."""
    return make_image_folder(tmp_path / "data", classes=3, per_class=6, size=20, val_per_class=3)


@pytest.fixture
def decodes(monkeypatch) -> list[int]:
    """Counts calls of the decoder (a miss decodes, a hit does not)."""
    calls: list[int] = []
    real = C.decode_split

    def counting(split, *a, **kw):
        calls.append(len(split))
        return real(split, *a, **kw)

    monkeypatch.setattr(C, "decode_split", counting)
    return calls


def train_file(root: Path) -> Path:
    return next(iter(sorted(root.glob(".mixcut_cache/train-*.mxc"))))


def all_val(data) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*data.val.epoch(0))
    return torch.cat(xs), torch.cat(ys)


# ----------------------------------------------------------- same pixels
@pytest.mark.parametrize("crop_pct", ["1.0", "0.875"])
@pytest.mark.parametrize("interp", ["bilinear", "bicubic"])
def test_cache_gives_the_worker_paths_eval_tensors(folder, crop_pct, interp):
    extra = (f"aug.crop_pct={crop_pct}", f"aug.interpolation={interp}")
    device = build_data(folder_cfg(folder, *extra), torch.device("cpu"))
    worker = build_data(folder_cfg(folder, *extra, cache="none"), torch.device("cpu"))
    xd, yd = all_val(device)
    xw, yw = all_val(worker)
    assert xd.shape == (9, 3, 16, 16)
    assert torch.equal(yd, yw) and torch.equal(xd, xw)  # bit for bit


def test_train_split_is_resized_and_centre_cropped_like_the_worker_path(folder):
    from mixcut.data.folder import load_rgb
    from mixcut.data.transforms import train_transform

    cfg = folder_cfg(folder, "aug.padding=0", "aug.hflip=0")
    data = build_data(cfg, torch.device("cpu"))
    tf = train_transform(cfg.aug, 16, cfg.data.mean)  # resize + centre crop + (no-op) crop/flip
    split = data.source.train
    paths = sorted(str(p) for p in (folder / "train").rglob("img_*"))
    assert split.images.shape == (len(paths), 3, 16, 16) and split.images.dtype == torch.uint8
    for i, path in enumerate(paths):
        assert torch.equal(split.images[i], tf(load_rgb(path)))


@pytest.mark.parametrize("aug", [["aug=cifar"], ["aug=cifar", "aug.padding_mode=reflect", "aug.padding=2"], ["aug=none"]])
def test_worker_and_cache_paths_give_identical_training_batches(folder, aug):
    """Pad-crop/flip recipes: workers only decode and the batch is augmented on the device as on the
    cache path, so with the same seed both paths train on the same pixels."""
    device = build_data(folder_cfg(folder, *aug), torch.device("cpu"))
    worker = build_data(folder_cfg(folder, *aug, cache="none"), torch.device("cpu"))
    assert worker.train.batch_augment is not None
    for epoch in (0, 3):
        for (xd, yd), (xw, yw) in zip(device.train.epoch(epoch), worker.train.epoch(epoch), strict=True):
            assert torch.equal(yd, yw) and torch.equal(xd, xw)
    (xd, _), (xw, _) = next(iter(device.train.epoch(1, start=2))), next(iter(worker.train.epoch(1, start=2)))
    assert torch.equal(xd, xw)  # mid-epoch starts agree too


def test_per_image_recipes_stay_in_the_workers(folder):
    cfg = folder_cfg(folder, "aug=imagenet", cache="none")  # colour jitter: per image
    assert build_data(cfg, torch.device("cpu")).train.batch_augment is None


# ------------------------------------------------------------ hit / miss
def test_second_build_reads_the_cache(folder, decodes, caplog):
    caplog.set_level(logging.INFO, logger="mixcut.data.cache")
    rng = torch.get_rng_state()
    first = build_data(folder_cfg(folder), torch.device("cpu"))
    assert torch.equal(rng, torch.get_rng_state())  # decoding leaves the global generator alone (hit or miss: same model init)
    assert decodes == [18, 9]
    assert "device cache miss" in caplog.text and "decoded the train split" in caplog.text
    caplog.clear()
    second = build_data(folder_cfg(folder), torch.device("cpu"))
    assert decodes == [18, 9]  # nothing decoded again
    assert caplog.text.count("device cache hit") == 2
    assert torch.equal(first.source.train.images, second.source.train.images)
    assert torch.equal(first.source.train.labels, second.source.train.labels)
    assert not list(folder.glob(".mixcut_cache/.*.tmp"))  # no temporary files left behind


def test_other_img_size_or_recipe_gets_its_own_file(folder, decodes):
    build_data(folder_cfg(folder), torch.device("cpu"))
    build_data(folder_cfg(folder, "data.img_size=12"), torch.device("cpu"))
    build_data(folder_cfg(folder, "aug.crop_pct=0.875"), torch.device("cpu"))  # val recipe changes, train does not
    assert decodes == [18, 9, 18, 9, 9]
    assert len(list(folder.glob(".mixcut_cache/*.mxc"))) == 5


def _add_file(root: Path) -> None:
    shutil.copy(root / "train/class_1/img_0.jpg", root / "train/class_1/img_new.jpg")


def _touch(root: Path) -> None:
    path = root / "train/class_2/img_1.png"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def _resize(root: Path) -> None:
    path = root / "train/class_0/img_0.jpg"
    Image.new("RGB", (20, 20), (250, 10, 10)).save(path, quality=50)


def _remove(root: Path) -> None:
    (root / "train/class_0/img_2.jpg").unlink()


@pytest.mark.parametrize("change", [_add_file, _touch, _resize, _remove])
def test_changed_data_set_is_decoded_again(folder, decodes, change, caplog):
    before = build_data(folder_cfg(folder), torch.device("cpu")).source.train
    change(folder)
    caplog.set_level(logging.INFO, logger="mixcut.data.cache")
    after = build_data(folder_cfg(folder), torch.device("cpu")).source.train
    assert decodes == [18, 9, len(after)]  # train decoded again, val still cached
    assert "stale" in caplog.text
    if change is _resize:
        assert not torch.equal(before.images, after.images)
    if change in (_add_file, _remove):
        assert len(after) == len(before) + (1 if change is _add_file else -1)
    fresh = build_data(folder_cfg(folder), torch.device("cpu")).source.train  # and that result is cached again
    assert len(decodes) == 3 and torch.equal(fresh.images, after.images)


# ------------------------------------------------------------ corruption
def _flip_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-7] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _truncate_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(5000))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _extend(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\0" * 16)


def _bad_header_json(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[20] = ord("{")  # inside the JSON header
    data[21] = ord("{")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_flip_payload_byte, _truncate, _truncate_header, _garbage, _empty, _extend, _bad_header_json])
def test_corrupt_cache_is_detected_and_rebuilt(folder, decodes, damage, caplog):
    good = build_data(folder_cfg(folder), torch.device("cpu")).source.train
    path = train_file(folder)
    damage(path)
    key = C.cache_key(C.fingerprint(_split(folder), folder), C.recipe_for(folder_cfg(folder).data, folder_cfg(folder).aug, True))
    with pytest.raises(C.CacheError):
        C.read_cache(path, key)
    caplog.set_level(logging.WARNING, logger="mixcut.data.cache")
    again = build_data(folder_cfg(folder), torch.device("cpu")).source.train
    assert len(decodes) == 3  # the train split was decoded again, not read from the damaged file
    assert "is not usable" in caplog.text
    assert torch.equal(again.images, good.images) and torch.equal(again.labels, good.labels)
    images, labels, _ = C.read_cache(path, key)  # and the file was rewritten intact
    assert torch.equal(images, good.images)


def _split(root: Path):
    from mixcut.data.folder import scan_folder

    return scan_folder(str(root), 0.0, 0)[0]


def test_read_cache_round_trip_and_stale_key(tmp_path):
    images = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 1, 0])
    path = tmp_path / "x.mxc"
    C.write_cache(path, "k1", images, labels, ["a.jpg"], {"crop": 4})
    out, lab, skipped = C.read_cache(path, "k1")
    assert torch.equal(out, images) and torch.equal(lab, labels) and skipped == ["a.jpg"]
    with pytest.raises(C.CacheError, match="stale"):
        C.read_cache(path, "k2")


# -------------------------------------------------------------- location
def test_cache_dir_setting_is_used(folder, tmp_path):
    build_data(folder_cfg(folder, f"data.cache_dir={tmp_path / 'cc'}"), torch.device("cpu"))
    files = list((tmp_path / "cc").glob("data-*/*.mxc"))
    assert len(files) == 2 and not (folder / ".mixcut_cache").exists()


def test_read_only_data_root_falls_back_to_user_cache(folder, tmp_path, monkeypatch, caplog):
    """A data root whose permission bits grant nobody write access (even when running as root)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    caplog.set_level(logging.INFO, logger="mixcut.data.cache")
    folder.chmod(0o555)
    try:
        build_data(folder_cfg(folder), torch.device("cpu"))
        assert not (folder / ".mixcut_cache").exists()
    finally:
        folder.chmod(0o755)
    assert len(list((tmp_path / "xdg" / "mixcut").glob("data-*/*.mxc"))) == 2
    assert "is not writable" in caplog.text


def test_nothing_writable_still_trains(folder, monkeypatch, caplog, decodes):
    monkeypatch.setattr(C, "_writable_dir", lambda p: False)
    data = build_data(folder_cfg(folder), torch.device("cpu"))
    assert len(data.source.train) == 18 and "decoding every run" in caplog.text


# ------------------------------------------------------------ bad images
def test_unreadable_images_are_skipped_with_a_warning(folder, caplog):
    bad = folder / "train/class_0/broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    caplog.set_level(logging.WARNING, logger="mixcut.data.cache")
    data = build_data(folder_cfg(folder), torch.device("cpu"))
    assert len(data.source.train) == 18
    assert str(bad) in caplog.text and "1 unreadable image(s) skipped" in caplog.text
    caplog.clear()
    build_data(folder_cfg(folder), torch.device("cpu"))  # a cache hit still says so
    assert str(bad) in caplog.text and "1 unreadable image(s) skipped" in caplog.text
    with pytest.raises(DataError, match="broken.jpg"):
        build_data(folder_cfg(folder, "data.on_bad_image=error"), torch.device("cpu"))


def test_error_mode_names_the_file_while_decoding(folder):
    bad = folder / "val/class_2/broken.png"
    bad.write_bytes(b"")
    with pytest.raises(DataError, match="broken.png"):
        build_data(folder_cfg(folder, "data.on_bad_image=error"), torch.device("cpu"))


@pytest.mark.slow
def test_decoding_with_workers_matches_in_process(folder):
    a = build_data(folder_cfg(folder, "data.num_workers=2", f"data.cache_dir={folder / 'w'}"), torch.device("cpu")).source
    b = build_data(folder_cfg(folder, "data.num_workers=0", f"data.cache_dir={folder / 'p'}"), torch.device("cpu")).source
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.images, b.val.images)


# ------------------------------------------------------ metrics, end to end
@pytest.mark.slow
def test_same_checkpoint_same_validation_metrics(folder, tmp_path):
    """Train on the worker path, then evaluate its checkpoint through the device cache."""
    common = folder_args(folder, "data.num_workers=0", "aug.crop_pct=0.875", "trainer.batch_size=4", "trainer.epochs=1")
    trained = train(common + ["data.cache=none"], tmp_path / "worker")
    ckpt = tmp_path / "worker" / "checkpoints" / "last.pt"
    evaluated = train(common + ["data.cache=device", "trainer.eval_only=true", f"trainer.resume={ckpt}"], tmp_path / "device")
    for key in ("top1", "top5", "nll", "ece", "brier"):
        assert math.isclose(trained[key], evaluated[key], rel_tol=1e-6, abs_tol=1e-7), key


@pytest.mark.slow
def test_device_cache_trains_end_to_end_and_resumes_exactly(folder, tmp_path):
    common = folder_args(
        folder,
        "data.cache=device",
        "data.num_workers=0",
        "trainer.batch_size=4",
        "trainer.epochs=2",
        "trainer.deterministic=true",
        "mix=deit",
    )
    train(common, tmp_path / "straight")
    train(common + ["trainer.stop_after_epoch=1"], tmp_path / "split")
    train(common + ["trainer.resume=auto"], tmp_path / "split")
    assert_same_tensors(checkpoint(tmp_path / "straight")["model"], checkpoint(tmp_path / "split")["model"])


# ------------------------------------------------------------ shared data
@pytest.mark.shared
@pytest.mark.slow
def test_shared_cifar_subset_matches_worker_path(tmp_path):
    if not (SHARED / "train").is_dir():
        pytest.skip(f"{SHARED} is not here (a user's clone has no ../shared)")
    root = tmp_path / "subset"
    for cls_dir in sorted((SHARED / "train").iterdir())[:4]:
        (root / "train" / cls_dir.name).mkdir(parents=True)
        for f in sorted(cls_dir.iterdir())[:25]:
            (root / "train" / cls_dir.name / f.name).symlink_to(f)
    cfg = ["data.img_size=32", "data.val_fraction=0.2", "data.num_workers=2", f"data.cache_dir={tmp_path / 'cache'}"]
    device = build_data(folder_cfg(root, *cfg), torch.device("cpu"))
    worker = build_data(folder_cfg(root, *cfg, cache="none"), torch.device("cpu"))
    assert device.source.train.images.shape == (80, 3, 32, 32)
    xd, yd = all_val(device)
    xw, yw = all_val(worker)
    assert torch.equal(xd, xw) and torch.equal(yd, yw)
