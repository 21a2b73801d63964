"""The data set's labels against ``num_classes``, checked once before training.

A label outside ``[0, num_classes)`` would otherwise surface at some step as
an index error deep inside the target code (or, on CUDA, as a device assert).
"""

from __future__ import annotations

import torch

from ..errors import DataError


def check_label_range(source, num_classes: int) -> None:
    """Raise `DataError` naming the split, the first bad label, its index and
    ``num_classes`` when a label of ``source`` lies outside ``[0, num_classes)``.
    Splits whose labels are not known up front are skipped."""
    for name in ("train", "val"):
        split = getattr(source, name, None)
        labels = getattr(split, "labels", None)
        if labels is None or len(labels) == 0:
            continue
        labels = torch.as_tensor(labels)
        bad = (labels < 0) | (labels >= num_classes)
        if bool(bad.any()):
            pos = int(bad.nonzero()[0, 0])
            lo, hi = int(labels.min()), int(labels.max())
            fix = "fix the labels" if lo < 0 else f"fix the labels or set data.num_classes={hi + 1}"
            raise DataError(
                f"{name} split: label {int(labels[pos])} of sample {pos} is outside [0, num_classes={num_classes}) "
                f"(the labels range over {lo}..{hi}); {fix}."
            )
