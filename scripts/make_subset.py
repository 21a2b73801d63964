"""A class-balanced subset of an image folder, as symbolic links (no image is copied).

    python scripts/make_subset.py /work/shared/data/cifar10-jpeg/train data/c10_5k --train-per-class 500 --val-per-class 300

Writes OUT/train/<class>/ (TRAIN per class) and OUT/val/<class>/ (VAL per class, disjoint
from train), chosen at random by --seed, so `data=folder data.root=OUT` trains on the
subset and validates on the held-out images. With --train-as-val OUT2, also writes
OUT2/train and OUT2/val both linking the training images: evaluating a checkpoint with
``data.root=OUT2`` measures its accuracy on its own (unaugmented) training images, for
the train-val gap. Rerunning with the same arguments changes nothing.

--classes A,B,... keeps only those classes (the open-set protocol: train on the known
classes, and write the held-out classes with --train-per-class 0 as a folder to score
as out-of-distribution with ``scripts/evaluate.py --ood --ood-folder OUT/val``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixcut.data.folder import find_classes, scan_split  # noqa: E402


def link_all(pairs: list[tuple[str, Path]]) -> None:
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.is_symlink():
            os.symlink(os.path.abspath(src), dst)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="SOURCE/<class>/<image>")
    p.add_argument("out")
    p.add_argument("--train-per-class", type=int, required=True)
    p.add_argument("--val-per-class", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", default=None, help="comma-separated class folders to keep (default: every class)")
    p.add_argument("--train-as-val", default=None, metavar="OUT2", help="also a root whose val/ is the training subset")
    args = p.parse_args(argv)

    src, out = Path(args.source), Path(args.out)
    classes = find_classes(src)
    keep = classes
    if args.classes:
        keep = [c.strip() for c in args.classes.split(",") if c.strip()]
        missing = [c for c in keep if c not in classes]
        if missing:
            print(f"error: --classes names {missing}, not class folders of {src}; choose from {', '.join(classes)}.",
                  file=sys.stderr)  # fmt: skip
            return 2
    split = scan_split(src, classes)
    labels = torch.tensor(split.labels)
    gen = torch.Generator().manual_seed(args.seed)
    train, val = [], []
    for c, name in enumerate(classes):
        if name not in keep:
            continue
        idx = (labels == c).nonzero().flatten()
        need = args.train_per_class + args.val_per_class
        if len(idx) < need:
            print(f"error: class {name} has {len(idx)} images; need {need}.", file=sys.stderr)
            return 2
        idx = idx[torch.randperm(len(idx), generator=gen)]
        for i in idx[: args.train_per_class].sort().values.tolist():
            train.append((split.paths[i], name))
        for i in idx[args.train_per_class : need].sort().values.tolist():
            val.append((split.paths[i], name))
    link_all([(s, out / "train" / c / Path(s).name) for s, c in train])
    link_all([(s, out / "val" / c / Path(s).name) for s, c in val])
    if args.train_as_val:
        twin = Path(args.train_as_val)
        link_all([(s, twin / sub / c / Path(s).name) for s, c in train for sub in ("train", "val")])
    print(f"{out}: {len(train)} training and {len(val)} validation images, {len(keep)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
