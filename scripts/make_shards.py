"""Class-folder data set -> WebDataset tar shards plus a JSON index (issue 13).

    python scripts/make_shards.py SRC OUT --shard-size 5000 [--resize 256] [--workers 8]

SRC is mixcut's folder layout (SRC/train/<class>/*, optional SRC/val/<class>/*;
without val/, --val-fraction of every class is held out exactly as `data=folder`
does with the same data.split_seed). Each split is shuffled once with --seed
and written as OUT/<split>-000000.tar, ... with members ``KEY.<ext>`` (the image) and
``KEY.cls`` (class index as text): two plain ustar members per sample, since
tar header parsing costs as much as decoding a 32 px JPEG (no PAX headers; a
fixed mtime, so the same input gives byte-identical shards).
Without --resize the original file bytes are stored unchanged; with --resize
SHORT the image is decoded, its short side reduced to SHORT (bicubic, never
enlarged) and re-encoded as JPEG at --jpeg-quality (default 95).
OUT/index.json lists the classes, each shard's sample count and the totals, so
a training job knows its epoch length without opening a shard. Unreadable
images are reported (stderr and the index) and left out.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
from multiprocessing import Pool
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixcut.data.folder import BadImage, load_rgb, scan_folder  # noqa: E402
from mixcut.io import atomic_write  # noqa: E402

INDEX_FORMAT = 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="class-folder data set: SRC/train/<class>/*, optional SRC/val/<class>/*")
    p.add_argument("out", help="output directory for the shards and index.json")
    p.add_argument("--shard-size", type=int, required=True, help="samples per shard (the last one may hold fewer)")
    p.add_argument("--resize", type=int, default=None, metavar="SHORT", help="reduce the short side to SHORT px (JPEG)")
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality when --resize re-encodes (default 95)")
    p.add_argument("--workers", type=int, default=1, help="processes decoding and encoding images")
    p.add_argument("--seed", type=int, default=0, help="seed of the one-time shuffle")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held out per class when SRC has no val/ (as data=folder)")
    p.add_argument("--split-seed", type=int, default=0, help="which images form that held-out split (as data.split_seed)")
    args = p.parse_args(argv)
    if args.shard_size < 1:
        p.error("--shard-size must be >= 1")
    if args.resize is not None and args.resize < 1:
        p.error("--resize must be >= 1")
    if not 1 <= args.jpeg_quality <= 100:
        p.error("--jpeg-quality must be in [1, 100]")
    return args


def encode(job: tuple[str, int | None, int]) -> tuple[str | None, bytes | str]:
    """(extension, bytes) of one image, or (None, reason) when it cannot be decoded."""
    path, resize, quality = job
    try:
        img = load_rgb(path)  # decodes fully: a truncated or non-image file fails here, not in training
    except BadImage as e:
        return None, str(e)
    if resize is None:
        ext = Path(path).suffix.lower().lstrip(".")
        return ("jpg" if ext == "jpeg" else ext), Path(path).read_bytes()
    from PIL import Image

    w, h = img.size
    if min(w, h) > resize:
        scale = resize / min(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return "jpg", buf.getvalue()


def write_split(name: str, split, out: Path, args, pool) -> tuple[dict, list[str]]:
    import webdataset as wds

    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(args.seed)).tolist()
    jobs = [(split.paths[i], args.resize, args.jpeg_quality) for i in order]
    results = pool.imap(encode, jobs, chunksize=32) if pool is not None else map(encode, jobs)
    shards, counts, bad = [], [], []
    writer, written = None, 0
    for i, (ext, data) in zip(order, results):
        if ext is None:
            bad.append(split.paths[i])
            print(f"skipping unreadable image {data}", file=sys.stderr)
            continue
        if writer is None or counts[-1] == args.shard_size:
            if writer is not None:
                writer.close()
            shards.append(f"{name}-{len(shards):06d}.tar")
            counts.append(0)
            writer = wds.TarWriter(str(out / shards[-1]), mtime=0, format=tarfile.USTAR_FORMAT)
        writer.write({"__key__": f"{written:09d}", ext: data, "cls": int(split.labels[i])})
        counts[-1] += 1
        written += 1
    if writer is not None:
        writer.close()
    pattern = f"{name}-{{000000..{len(shards) - 1:06d}}}.tar" if shards else None
    return {"pattern": pattern, "shards": shards, "counts": counts, "total": written}, bad


def main(argv=None) -> int:
    args = parse_args(argv)
    src, out = Path(args.src).expanduser(), Path(args.out).expanduser()
    train, val, classes = scan_folder(str(src), args.val_fraction, args.split_seed)
    out.mkdir(parents=True, exist_ok=True)
    index = {
        "format": INDEX_FORMAT,
        "classes": classes,
        "seed": args.seed,
        "resize": args.resize,
        "jpeg_quality": args.jpeg_quality if args.resize is not None else None,  # None: original bytes
        "splits": {},
        "bad_images": [],
    }
    pool = Pool(args.workers) if args.workers > 1 else None
    try:
        for name, split in (("train", train), ("val", val)):
            if split is None or not len(split):
                continue
            index["splits"][name], bad = write_split(name, split, out, args, pool)
            index["bad_images"] += [os.path.relpath(p, src) for p in bad]
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    with atomic_write(out / "index.json", "w") as f:  # last: a job never sees an index without its shards
        f.write(json.dumps(index, indent=1))
    for name, s in index["splits"].items():
        print(f"{name}: {s['total']} images in {len(s['shards'])} shards, data.{name}_shards={out / s['pattern']}")
    if index["bad_images"]:
        print(f"{len(index['bad_images'])} unreadable image(s) left out (listed above and in index.json)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
