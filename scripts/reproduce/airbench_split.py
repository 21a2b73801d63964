"""Write the images mixcut trains and validates on as airbench's ``train.pt`` / ``test.pt``.

    python scripts/reproduce/airbench_split.py OUT_DIR [HYDRA OVERRIDES ...]

The split is the one ``python train.py experiment=cifar10_airbench94 <overrides>`` uses (data=folder,
data.val_fraction, data.split_seed), decoded through mixcut's device cache, so a peer script that
reads these files (``{"images": uint8 N x H x W x C, "labels": int64 N, "classes": [...]}``, the
format of airbench's CifarLoader) sees exactly mixcut's pixels: the held-out images become its test set.
The training images are written in a fixed random order (seed 0), as in CIFAR-10's own files, because
the script whitens from the first 5,000 of them (mixcut's folder split is sorted by class).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def export(out_dir: Path, overrides: list[str]) -> dict[str, int]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mixcut.config import register_configs
    from mixcut.data import build_data

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=cifar10_airbench94", "data.cache=device", *overrides])
    data = build_data(cfg, torch.device("cpu"))
    if data.val is None:
        raise SystemExit("the config holds out no validation images (data.val_fraction=0); nothing to test on.")
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, stream in (("train", data.train), ("test", data.val)):
        order = torch.randperm(len(stream.images), generator=torch.Generator().manual_seed(0)) if name == "train" else None
        images = stream.images if order is None else stream.images[order]
        labels = stream.labels if order is None else stream.labels[order]
        images = images.permute(0, 2, 3, 1).contiguous()  # N x H x W x C, uint8, as torchvision's CIFAR10.data
        torch.save({"images": images, "labels": labels.long(), "classes": data.source.classes}, out_dir / f"{name}.pt")
        counts[name] = len(images)
    return counts


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", type=Path, help="where train.pt and test.pt are written")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of experiment=cifar10_airbench94 (e.g. data.root=...)")
    args = p.parse_args(argv)
    n = export(args.out_dir, args.overrides)
    print(f"wrote {args.out_dir}/train.pt ({n['train']} images) and test.pt ({n['test']} images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
