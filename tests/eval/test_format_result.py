"""The printed report of scripts/evaluate.py says what the JSON holds for each claim: the ECE
floor beside the after-scaling ECE, the open-set (natural-image) AUROC apart from the noise sanity
sets, and MaxBoxAcc beside the fixed-threshold localization."""

from __future__ import annotations

from mixcut.eval.checkpoint_eval import format_result

METRICS = {"n": 300, "top1": 71.0, "top5": 97.0, "nll": 0.91, "ece": 4.2, "brier": 0.4}


def result(**extra) -> dict:
    return {"checkpoint": "last.pt", "weights": "model", "device": "cpu", "metrics": METRICS,
            "json": "eval/last.json", "reliability_png": "eval/last.png", **extra}  # fmt: skip


def test_the_ece_floor_is_printed_beside_the_after_scaling_ece():
    ts = {"temperature": 1.3, "calibration_n": 150, "eval_n": 150,
          "before": {"ece": 6.0, "nll": 1.0, "brier": 0.5}, "after": {"ece": 2.5, "nll": 0.9, "brier": 0.45},
          "ece_floor_after": {"mean": 3.14, "p95": 4.71, "draws": 1000, "n": 150}}  # fmt: skip
    text = format_result(result(temperature_scaling=ts))
    assert "ECE 6.00 -> 2.50" in text and "sampling floor at n 150: mean 3.14, p95 4.71" in text


def test_open_set_auroc_is_printed_apart_from_the_sanity_sets():
    r = {"msp": {"auroc": 70.0, "fpr95": 80.0}, "energy": {"auroc": 72.0, "fpr95": 78.0}}
    ood = {"sets": {"gaussian": r, "folder:val": r}, "mean_auroc": {"msp": 99.5, "energy": 99.9},
           "natural_mean_auroc": {"msp": 70.0, "energy": 72.0}}  # fmt: skip
    text = format_result(result(ood=ood))
    assert "natural images (the claim): msp 70.00  energy 72.00" in text
    assert "noise sets (sanity check): msp 99.50  energy 99.90" in text


def test_max_box_acc_is_printed_with_its_threshold():
    loc = {"method": "cam", "threshold": 0.2, "top1_loc": 15.0, "gt_known_loc": 17.0, "top1": 90.0, "n": 100,
           "max_box_acc": 86.7, "best_threshold": 0.5}  # fmt: skip
    assert "MaxBoxAcc 86.70 (GT-known Loc at the best threshold, 0.5)" in format_result(result(localization=loc))
