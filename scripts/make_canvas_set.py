"""Make a box-annotated image folder from the CIFAR-10 JPEGs (or any class-folder set of small images).

    python scripts/make_canvas_set.py /work/shared/data/cifar10-jpeg/train data/canvas_shapes
    python scripts/make_canvas_set.py /work/shared/data/cifar10-jpeg/train data/cifar10_canvas --objects images \
        --canvas 64 --scale 0.4,0.75

Writes OUT/train/<class>/NNNNN.png and OUT/val/<class>/NNNNN.png (lossless, so the
pixels inside each box are exactly the pasted object's) and OUT/boxes.txt with one line
per image: ``relative/path x0 y0 x1 y1 width height`` (pixels, x1/y1 exclusive).

--objects shapes (default): the classes are the ten silhouettes of mixcut.data.canvas.SHAPES,
each cut out of a SOURCE image of any class (--train/val-per-class canvases per shape), and the
box is the silhouette's exact bounding box. --objects images: the classes are SOURCE's, each
canvas shows one whole SOURCE image and its box is the pasted square.
Images for train and val and the background pool are disjoint class-balanced
subsets of SOURCE, fixed by --seed. Train on it like any folder (configs/data/canvas.yaml),
evaluate localization with ``scripts/evaluate.py CKPT --localization`` (boxes.txt is found
under data.root). See mixcut/data/canvas.py for how the canvases are made.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixcut.data.canvas import SHAPES, make_canvases, make_shape_canvases  # noqa: E402
from mixcut.data.folder import FileSplit, find_classes, scan_split  # noqa: E402


def balanced_pick(labels: torch.Tensor, counts: list[int], seed: int) -> list[torch.Tensor]:
    """Disjoint index sets with ``counts[j]`` images of every class each (random, fixed by seed)."""
    gen = torch.Generator().manual_seed(seed)
    picks: list[list[torch.Tensor]] = [[] for _ in counts]
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        if len(idx) < sum(counts):
            raise SystemExit(f"error: class {c} has {len(idx)} images; need {sum(counts)} (lower the counts).")
        start = 0
        for j, k in enumerate(counts):
            picks[j].append(idx[start : start + k])
            start += k
    return [torch.cat(p).sort().values for p in picks]


def decode(split: FileSplit, idx: torch.Tensor, size: int, workers: int) -> torch.Tensor:
    import torchvision.transforms as T

    from mixcut.data.cache import decode_split

    sub = FileSplit([split.paths[i] for i in idx.tolist()], [split.labels[i] for i in idx.tolist()])
    images, _, skipped = decode_split(sub, T.Compose([T.Resize((size, size)), T.PILToTensor()]), size, workers, "error")
    return images


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="SOURCE/<class>/*.jpg (e.g. the CIFAR-10 JPEG train folder)")
    p.add_argument("out", help="output root (OUT/train, OUT/val, OUT/boxes.txt)")
    p.add_argument("--objects", choices=["shapes", "images"], default="shapes", help="what the classes are (see above)")
    p.add_argument("--train-per-class", type=int, default=200, help="training canvases per class")
    p.add_argument("--val-per-class", type=int, default=100, help="validation canvases per class")
    p.add_argument("--pool-per-class", type=int, default=200, help="images per class used only as background clutter")
    p.add_argument("--canvas", type=int, default=48, help="canvas side in pixels")
    p.add_argument("--scale", default="0.3,0.55", help="object side as a share of the canvas side: MIN,MAX")
    p.add_argument("--background-contrast", type=float, default=0.4, help="clutter contrast around mid-grey (1: as is)")
    p.add_argument("--object-size", type=int, default=32, help="side the source images are decoded at")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)

    src, out = Path(args.source), Path(args.out)
    if (out / "boxes.txt").is_file():
        print(f"{out} already holds boxes.txt; nothing to do (delete it to regenerate).")
        return 0
    source_classes = find_classes(src)
    split = scan_split(src, source_classes)
    labels = torch.tensor(split.labels)
    n_src = len(source_classes)
    per_class = [args.train_per_class, args.val_per_class]
    if args.objects == "shapes":  # N canvases per shape take N * len(SHAPES) source images, spread over its classes
        per_class = [-(-k * len(SHAPES) // n_src) for k in per_class]
    train_idx, val_idx, pool_idx = balanced_pick(labels, per_class + [args.pool_per_class], args.seed)
    pool = decode(split, pool_idx, args.object_size, args.workers)
    lo, hi = (float(v) for v in args.scale.split(","))
    lines = ["# relative/path x0 y0 x1 y1 width height (pixels, x1/y1 exclusive)"]
    from PIL import Image

    for j, (name, idx, k) in enumerate([("train", train_idx, args.train_per_class), ("val", val_idx, args.val_per_class)]):
        objects = decode(split, idx, args.object_size, args.workers)
        seed = args.seed * 10 + j
        if args.objects == "shapes":
            gen = torch.Generator().manual_seed(seed + 1000)
            pick = torch.randperm(len(idx), generator=gen)[: k * len(SHAPES)]  # textures of every source class
            y_all = torch.arange(k * len(SHAPES)) % len(SHAPES)
            canv, boxes = make_shape_canvases(objects[pick], labels[idx][pick], y_all, pool, labels[pool_idx], args.canvas,
                                              (lo, hi), background_contrast=args.background_contrast, seed=seed)  # fmt: skip
            classes = list(SHAPES)
        else:
            canv, boxes = make_canvases(objects, labels[idx], pool, labels[pool_idx], args.canvas, (lo, hi), seed=seed)
            y_all, classes = labels[idx], source_classes
        for i, (img, box, y) in enumerate(zip(canv, boxes.tolist(), y_all.tolist())):
            rel = f"{name}/{classes[y]}/{i:05d}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(out / rel)
            lines.append(f"{rel} {box[0]} {box[1]} {box[2]} {box[3]} {args.canvas} {args.canvas}")
        print(f"{name}: {len(canv)} canvases of {args.canvas}x{args.canvas} ({args.objects})")
    (out / "boxes.tmp").write_text("\n".join(lines) + "\n")
    (out / "boxes.tmp").replace(out / "boxes.txt")  # written last: its presence marks a complete set
    print(f"written: {out}/train, {out}/val, {out}/boxes.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
