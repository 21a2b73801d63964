"""Evaluation: the loop over a split, the metrics (accuracy, NLL, one ECE, Brier),
reliability diagrams, common corruptions, and the evaluation of a built model
(`checkpoint_eval`, switched by `options.EvalOptions`); the papers' other claims,
one module each: calibration (temperature scaling), adversarial (FGSM/PGD),
occlusion, ood, localization (CAM), wired to the model by claims. Nothing here
mixes: evaluation sees clean batches; nothing here imports build or the trainer
(`mixcut.evaluate` puts a checkpoint evaluation together)."""

from .loop import evaluate_split
from .metrics import METRIC_NAMES, ClassificationMeter

__all__ = ["METRIC_NAMES", "ClassificationMeter", "evaluate_split"]
