"""Draw what every mixer does to one real batch: a PNG grid.

Rows are the mixers, columns the samples of one batch (the embedded digits by
default, or any image folder), each tile captioned with its two largest
soft-target classes and their weights.

    python scripts/visualize_mix.py                       # -> docs/mix_grid.png
    python scripts/visualize_mix.py --folder ~/data/pets --size 128 --out pets.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixcut.mix import create_mixer  # noqa: E402

#: (row label, registry name, options); every mixer runs in elem mode so the columns differ.
ROWS = [
    ("none", "none", {}),
    ("mixup", "mixup", {"alpha": 1.0}),
    ("cutmix", "cutmix", {"alpha": 1.0}),
    ("deit", "deit", {}),
    ("manifold mixup\n(hidden states;\ninput unchanged)", "manifold_mixup", {"alpha": 2.0}),
    ("saliencymix", "saliencymix", {"alpha": 1.0}),
    ("resizemix", "resizemix", {"scale": (0.1, 0.8)}),
    ("fmix", "fmix", {"alpha": 1.0, "decay_power": 3.0}),
    ("cutout", "cutout", {"size": None, "fill": 0.0}),
    ("transmix\n(labels: area here;\nattention in training)", "transmix", {}),
    ("recursivemix\n(history: the batch\nrolled by one)", "recursivemix", {"alpha": 0.9}),
]


def digits_batch(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from mixcut.data.sources import digits_source

    src = digits_source(size, 0.2, 0)
    return pick(src.train.images, src.train.labels, n) + (src.classes,)


def folder_batch(root: str, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    import numpy as np

    from mixcut.data.folder import load_rgb, scan_folder

    train, _, classes = scan_folder(root, 0.0, 0)
    labels = torch.tensor(train.labels)
    idx = pick(torch.arange(len(train)), labels, n)[0]
    images = []
    for i in idx.tolist():
        img = load_rgb(train.paths[i])
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size))
        images.append(torch.from_numpy(np.array(img)).permute(2, 0, 1))
    return torch.stack(images), labels[idx], classes


def pick(images: torch.Tensor, labels: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples, cycling through the classes so the columns differ."""
    order, used = [], set()
    for rnd in range(n):
        for c in labels.unique().tolist():
            hits = (labels == c).nonzero().flatten().tolist()
            if rnd < len(hits) and len(order) < n and hits[rnd] not in used:
                order.append(hits[rnd])
                used.add(hits[rnd])
    idx = torch.tensor(order[:n])
    return images[idx], labels[idx]


def caption(target: torch.Tensor, classes: list[str]) -> str:
    w, c = target.topk(2)
    parts = [f"{classes[int(k)]}: {float(v):.2f}" for v, k in zip(w, c) if float(v) >= 0.005]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", help="an image folder (root/train/<class>/...) instead of the embedded digits")
    parser.add_argument("--n", type=int, default=8, help="samples (columns)")
    parser.add_argument("--size", type=int, default=None, help="image side (default: 32 for digits, 96 for a folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/mix_grid.png")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = args.size or (96 if args.folder else 32)
    x, y, classes = folder_batch(args.folder, args.n, size) if args.folder else digits_batch(args.n, size)
    # normalized as in training, so that Cutout's fill 0 is the mean grey
    norm = (x.float() / 255.0 - 0.5) / 0.5
    k = len(classes)
    fig, axes = plt.subplots(len(ROWS), args.n, figsize=(1.3 * args.n + 1.2, 1.55 * len(ROWS)), squeeze=False)
    for r, (label, name, options) in enumerate(ROWS):
        options = dict(options)
        if name == "cutout":
            options["size"] = max(size // 2, 1)
        mixer = create_mixer(name, num_classes=k, seed=args.seed, **({} if name == "none" else {"mode": "elem"}), **options)
        if name == "recursivemix":  # its history is the previous batch: give it one (this batch, rolled by one)
            mixer(norm.roll(1, 0).clone(), y.roll(1, 0))
        mixed, target = mixer(norm.clone(), y)
        show = ((mixed * 0.5 + 0.5).clamp(0, 1)).permute(0, 2, 3, 1).numpy()
        for c in range(args.n):
            ax = axes[r, c]
            ax.imshow(show[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(caption(target[c], classes), fontsize=7, labelpad=2)
            if c == 0:
                ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center", labelpad=8)
    source = args.folder or "embedded digits"
    fig.suptitle(f"mixcut mixers on one batch ({source}); captions: top-2 soft targets", fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
