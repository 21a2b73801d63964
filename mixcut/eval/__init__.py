"""Evaluation: the loop over a split, the metrics (accuracy, NLL, one ECE, Brier),
reliability diagrams, common corruptions, and checkpoint evaluation
(`scripts/evaluate.py`). Nothing here mixes: evaluation sees clean batches."""

from .loop import evaluate_split
from .metrics import METRIC_NAMES, ClassificationMeter

__all__ = ["METRIC_NAMES", "ClassificationMeter", "evaluate_split"]
