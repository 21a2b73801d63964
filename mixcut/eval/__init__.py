"""Evaluation: the loop over a split, the metrics (accuracy, NLL, one ECE, Brier),
reliability diagrams, common corruptions, and checkpoint evaluation
(`scripts/evaluate.py`); the papers' other claims, one module each: calibration
(temperature scaling), adversarial (FGSM/PGD), occlusion, ood, localization (CAM),
wired to a checkpoint by claims. Nothing here mixes: evaluation sees clean batches."""

from .loop import evaluate_split
from .metrics import METRIC_NAMES, ClassificationMeter

__all__ = ["METRIC_NAMES", "ClassificationMeter", "evaluate_split"]
