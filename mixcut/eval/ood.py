"""Out-of-distribution detection: AUROC and FPR at 95 % TPR.

Scores (higher = more in-distribution):
  msp     maximum softmax probability (Hendrycks & Gimpel, ICLR 2017)
  energy  logsumexp of the logits, the negative free energy (Liu et al., NeurIPS 2020)

In-distribution images are the evaluation split. Two kinds of out-of-distribution set:

Natural images (the claim): every image under a folder given on the command line
(``--ood-folder``; up to ``n``, evenly spread over the sorted paths, resized and
centre-cropped like validation). The claims study uses the open-set protocol:
train on 6 CIFAR-10 classes and score the 4 held-out classes' images as OOD
(Neal et al., ECCV 2018; Vaze et al., "Open-set recognition: a good closed-set
classifier is all you need", ICLR 2022, whose first CIFAR-10 split keeps
airplane, automobile, deer, frog, horse and truck). Their mean is
``natural_mean_auroc``.

Sanity checks (need nothing downloaded; ``mean_auroc`` is their mean):
  gaussian  N(0.5, 1) pixel noise (unit variance), clipped to [0, 1], as ODIN's Gaussian set
            (Liang et al., ICLR 2018)
  uniform   U(0, 1) pixel noise
  digits    scikit-learn's 8x8 handwritten digits, bilinearly upscaled to the image size, grey to RGB
They measure rejection of noise, not of unseen natural images.

AUROC is the Mann-Whitney statistic (ties count one half): 1.0 when every
in-distribution score is above every OOD score, 0.5 for identical scores.
FPR@95 is the share of OOD images scoring at or above the threshold that keeps
95 % of in-distribution images (the 95th-percentile rank, taken conservatively).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCORES = ("msp", "energy")
SYNTHETIC_SETS = ("gaussian", "uniform", "digits")


def msp_score(logits: Tensor) -> Tensor:
    return F.softmax(logits.float(), dim=1).amax(1)


def energy_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    return temperature * torch.logsumexp(logits.float() / temperature, dim=1)


SCORE_FNS = {"msp": msp_score, "energy": energy_score}


def _average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of ``values``, tied values sharing their average rank."""
    order = torch.argsort(values)
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1) / 2  # mean of ranks (end - count + 1 .. end)
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = avg[inverse]
    return ranks


def auroc(score_in: Tensor, score_out: Tensor) -> float:
    """Area under the ROC curve separating in- (positive) from out-of-distribution scores."""
    n_in, n_out = score_in.numel(), score_out.numel()
    if n_in == 0 or n_out == 0:
        raise ValueError("AUROC needs at least one in- and one out-of-distribution score.")
    ranks = _average_ranks(torch.cat([score_in.flatten(), score_out.flatten()]).double())
    return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))


def fpr_at_tpr(score_in: Tensor, score_out: Tensor, tpr: float = 0.95) -> float:
    """Share of OOD scores >= the threshold at which ``tpr`` of in-distribution scores are >= it."""
    ranked = torch.sort(score_in.flatten().double(), descending=True).values
    k = max(1, math.ceil(tpr * ranked.numel()))
    threshold = ranked[k - 1]
    return float((score_out.double() >= threshold).double().mean())


# ------------------------------------------------------------------ OOD sets (uint8, (N, 3, S, S))
def noise_images(kind: str, n: int, size: int, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        x = (0.5 + torch.randn((n, 3, size, size), generator=gen)).clamp(0, 1)  # unit variance, as ODIN
    elif kind == "uniform":
        x = torch.rand((n, 3, size, size), generator=gen)
    else:
        raise ValueError(f"unknown noise {kind!r}; choose gaussian or uniform.")
    return (x * 255).round().to(torch.uint8)


def digits_images(n: int, size: int) -> Tensor:
    """The first ``n`` of scikit-learn's 1,797 digits (ships with scikit-learn), upscaled."""
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images[:n]).float().unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return (x.expand(-1, 3, -1, -1) * 255).round().to(torch.uint8)


def folder_images(root: str | Path, n: int, size: int, aug, num_workers: int = 2) -> Tensor:
    """Up to ``n`` images found anywhere under ``root``, decoded like validation images: all of them, or ``n``
    evenly spaced in sorted path order (so a folder of class folders is sampled across its classes)."""
    from ..data.cache import decode_split
    from ..data.folder import IMG_EXTENSIONS, FileSplit
    from ..data.transforms import eval_transform
    from ..errors import ConfigError

    base = Path(root).expanduser()
    paths = sorted(str(p) for p in base.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and not p.name.startswith("."))
    if not paths:
        raise ConfigError(f"OOD folder {base} holds no images ({', '.join(IMG_EXTENSIONS)}).")
    if len(paths) > n:
        paths = [paths[i * len(paths) // n] for i in range(n)]
    images, _, _ = decode_split(FileSplit(paths, [0] * len(paths)), eval_transform(aug, size), size, num_workers, "skip")
    return images


@torch.no_grad()
def logits_of(model: nn.Module, images: Tensor, mean, std, batch_size: int = 256) -> Tensor:
    """Logits of uint8 images, normalised with ``mean``/``std``, batch by batch on the model's device."""
    device = next(model.parameters()).device
    m = torch.as_tensor(list(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.as_tensor(list(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    out = [model((chunk.to(device).float() / 255 - m) / s).float() for chunk in images.split(batch_size)]
    return torch.cat(out)


def ood_scores(logits_in: Tensor, logits_out: Tensor, scores: Sequence[str] = SCORES) -> dict:
    """``{score: {"auroc": %, "fpr95": %}}`` for one OOD set."""
    out = {}
    for name in scores:
        s_in, s_out = SCORE_FNS[name](logits_in), SCORE_FNS[name](logits_out)
        out[name] = {"auroc": 100.0 * auroc(s_in, s_out), "fpr95": 100.0 * fpr_at_tpr(s_in, s_out)}
    return out


def ood_detection(
    model: nn.Module,
    logits_in: Tensor,
    img_size: int,
    mean,
    std,
    folders: Sequence[str] = (),
    n: int = 1000,
    aug=None,
    sets: Sequence[str] = SYNTHETIC_SETS,
    seed: int = 0,
) -> dict:
    """AUROC / FPR@95 (%) per OOD set and score; ``logits_in`` are the evaluation split's logits."""
    model.eval()
    results: dict = {}
    for name in sets:
        if name == "digits":
            imgs = digits_images(n, img_size)
        else:
            imgs = noise_images(name, n, img_size, seed)
        results[name] = ood_scores(logits_in, logits_of(model, imgs, mean, std)) | {"n": imgs.shape[0]}
    for folder in folders:
        imgs = folder_images(folder, n, img_size, aug)
        results[f"folder:{Path(folder).name}"] = ood_scores(logits_in, logits_of(model, imgs, mean, std)) | {
            "n": imgs.shape[0],
            "path": str(folder),
        }
    sanity = [k for k in results if k in SYNTHETIC_SETS]
    natural = [k for k in results if k.startswith("folder:")]
    return {
        "sets": results,
        "sanity_sets": sanity,
        "mean_auroc": _mean_auroc(results, sanity),
        "natural_sets": natural,
        "natural_mean_auroc": _mean_auroc(results, natural),
        "n_in": int(logits_in.shape[0]),
    }


def _mean_auroc(results: dict, names: Sequence[str]) -> dict | None:
    """``{score: mean AUROC over names}``, None without sets."""
    if not names:
        return None
    return {s: sum(results[k][s]["auroc"] for k in names) / len(names) for s in SCORES}
