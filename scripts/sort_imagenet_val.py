"""Sort ImageNet's flat validation folder into class folders, once: ROOT/val/<wnid>/ILSVRC2012_val_*.JPEG.

    python scripts/sort_imagenet_val.py ROOT --labels ROOT/ILSVRC2012_devkit_t12.tar.gz   (official devkit)
    python scripts/sort_imagenet_val.py ROOT --labels LOC_val_solution.csv                (Kaggle)

Moves files (no copy); --dry-run prints what it would do. data=imagenet also reads the flat folder as it is
when the devkit or the CSV sits beside it (see mixcut/data/imagenet_layout.py), so sorting is optional.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixcut.data.imagenet_layout import (  # noqa: E402
    KAGGLE_SOLUTION,
    data_dir,
    devkit_entry,
    flat_images,
    read_devkit_labels,
    read_kaggle_val_labels,
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="ImageNet root (with train/ and the flat val/, or Kaggle's folder)")
    parser.add_argument("--labels", type=Path, required=True, help=f"the devkit (folder or .tar.gz) or {KAGGLE_SOLUTION}")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    val_dir = data_dir(args.root) / "val"
    names = flat_images(val_dir)
    if args.labels.name == KAGGLE_SOLUTION:
        by_stem = read_kaggle_val_labels(args.labels)
        wnids = [by_stem.get(Path(n).stem) for n in names]
    else:
        truth = read_devkit_labels(args.labels)
        wnids = [devkit_entry(truth, n) for n in names]
    missing = [n for n, w in zip(names, wnids) if w is None]
    if missing:
        raise SystemExit(f"{args.labels} has no label for {len(missing)} image(s), e.g. {missing[0]}; nothing moved.")
    for name, wnid in zip(names, wnids):
        target = val_dir / wnid / name
        if args.dry_run:
            print(f"{val_dir / name} -> {target}")
            continue
        target.parent.mkdir(exist_ok=True)
        shutil.move(str(val_dir / name), str(target))
    print(f"{'would move' if args.dry_run else 'moved'} {len(names)} images into {len(set(wnids))} class folders of {val_dir}")


if __name__ == "__main__":
    main()
