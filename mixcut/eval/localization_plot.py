"""A picture of localization examples: image, the true class's map, ground-truth and predicted boxes."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F


def plot_examples(shown: dict, mean, std, path: str | Path, title: str | None = None) -> Path:
    """A row of images with the true class's map overlaid, ground truth (green) and predicted (red) boxes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    images = shown["images"] * torch.tensor(list(std)).view(1, -1, 1, 1) + torch.tensor(list(mean)).view(1, -1, 1, 1)
    images = images.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    size = images.shape[1:3]
    maps = F.interpolate(shown["maps"][:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    k = images.shape[0]
    fig = Figure(figsize=(1.6 * k, 1.9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, k, squeeze=False)[0]
    for i, ax in enumerate(axes):
        ax.imshow(images[i])
        ax.imshow(maps[i].numpy(), cmap="jet", alpha=0.4)
        for box, color in [(b, "lime") for b in shown["gt"][i] if b[2] > b[0]] + [(shown["pred"][i], "red")]:
            x0, y0, x1, y1 = box.tolist()
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=color, linewidth=1.2))
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
