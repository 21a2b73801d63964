"""Reliability diagrams from `ClassificationMeter.reliability()` data.

A reliability diagram shows, for equal-width confidence bins, the accuracy of
the predictions in each bin against the diagonal (perfect calibration): bars
below the diagonal are over-confident, above it under-confident. A second
panel shows how many samples fall in each bin, since a badly calibrated bin
with three samples matters less than one with three thousand.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .metrics import ece_from_bins


def ece_from_reliability(rel: dict) -> float:
    """Expected calibration error (percent) recomputed from the per-bin data."""
    count = torch.tensor(rel["count"], dtype=torch.float64)
    sums = torch.stack([count, count * torch.tensor(rel["confidence"]), count * torch.tensor(rel["accuracy"])])
    return ece_from_bins(sums)


def plot_reliability(rel: dict, path: str | Path, title: str | None = None, dpi: int = 120) -> Path:
    """Write a reliability diagram PNG to ``path`` and return the path.

    ``rel`` holds ``edges`` (n_bins + 1), and per bin ``count``, mean
    ``confidence`` and ``accuracy`` (fractions), as returned by
    `mixcut.eval.metrics.ClassificationMeter.reliability`. Empty bins are left blank.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global state, no display needed
    from matplotlib.figure import Figure

    edges, count = list(rel["edges"]), list(rel["count"])
    acc, conf = list(rel["accuracy"]), list(rel["confidence"])
    n_bins = len(count)
    if len(edges) != n_bins + 1 or len(acc) != n_bins or len(conf) != n_bins:
        raise ValueError("reliability data need n_bins + 1 edges and n_bins counts, accuracies and confidences.")
    left = edges[:-1]
    width = [hi - lo for lo, hi in zip(edges[:-1], edges[1:])]
    used = [i for i in range(n_bins) if count[i] > 0]
    total = sum(count)

    fig = Figure(figsize=(5.0, 6.2))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw=dict(height_ratios=[3, 1]))
    top.plot([0, 1], [0, 1], linestyle="--", color="0.4", linewidth=1, label="perfect calibration")
    top.bar(
        [left[i] for i in used],
        [acc[i] for i in used],
        width=[width[i] for i in used],
        align="edge",
        color="#4C72B0",
        edgecolor="white",
        linewidth=0.8,
        label="accuracy",
    )
    # the gap between each bar and its bin's mean confidence, hatched (above the bar: over-confident)
    top.bar(
        [left[i] for i in used],
        [abs(conf[i] - acc[i]) for i in used],
        bottom=[min(acc[i], conf[i]) for i in used],
        width=[width[i] for i in used],
        align="edge",
        facecolor="none",
        edgecolor="#C44E52",
        hatch="///",
        linewidth=0.6,
        label="gap to mean confidence",
    )
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8, frameon=False)
    top.text(
        0.97,
        0.04,
        f"ECE {ece_from_reliability(rel):.2f}%\nn = {int(total)}",
        transform=top.transAxes,
        ha="right",
        va="bottom",
        fontsize=9,
    )
    if title:
        top.set_title(title, fontsize=10)

    bottom.bar(left, [c / max(total, 1) for c in count], width=width, align="edge", color="0.55", edgecolor="white")
    bottom.set_xlabel("confidence (max softmax probability)")
    bottom.set_ylabel("share of samples")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
