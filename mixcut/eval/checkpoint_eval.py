"""Evaluate a model built from a checkpoint: accuracy, calibration and robustness to
common corruptions, plus the papers' claims (`claims.py`).

`evaluate_built` takes what `mixcut.build.build_for_eval` made from a checkpoint
and reports top-1, top-5, NLL, ECE and Brier, draws a reliability diagram and,
optionally, measures top-1 under every corruption of `mixcut.eval.corruptions` at
severities 1-5 and their mean (the mean corruption accuracy).
`mixcut.evaluate.evaluate_checkpoint` (a checkpoint in, a JSON out) and
`scripts/evaluate.py` (its command line) stand on it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from .corruptions import CORRUPTIONS, corrupt_normalized
from .loop import EveryKth, evaluate_split
from .metrics import METRIC_NAMES
from .options import EvalOptions
from .reliability import plot_reliability

log = logging.getLogger("mixcut")


class CorruptedBatches:
    """A validation stream whose batches are corrupted on the fly (same `epoch` interface)."""

    def __init__(self, batches, name: str, severity: int, mean, std, seed: int, device: torch.device) -> None:
        self.batches, self.name, self.severity = batches, name, severity
        self.mean = torch.tensor(list(mean), dtype=torch.float32, device=device)
        self.std = torch.tensor(list(std), dtype=torch.float32, device=device)
        self.seed, self.device = seed, device

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        for x, y in self.batches.epoch(epoch):
            yield corrupt_normalized(x, self.mean, self.std, self.name, self.severity, gen), y

    def __len__(self) -> int:
        return len(self.batches)


def corruption_table(model, val, num_classes: int, device, amp_dtype, mean, std, opts: EvalOptions) -> dict:
    """Top-1, NLL and ECE under each corruption and severity of ``opts``, their means and the protocol."""
    names = list(opts.corruption_names or CORRUPTIONS)
    if opts.corruption_every != 1:
        val = EveryKth(val, opts.corruption_every)
    table: dict[str, dict[str, dict]] = {}
    for i, name in enumerate(names):
        table[name] = {}
        for severity in opts.severities:
            stream = CorruptedBatches(val, name, severity, mean, std, seed=opts.seed * 1000 + i * 10 + severity, device=device)
            m = evaluate_split(model, stream, num_classes, device, amp_dtype)
            table[name][str(severity)] = {k: m[k] for k in ("top1", "nll", "ece")}
            log.info("corruption %-17s severity %d: top1 %.2f", name, severity, m["top1"])
    by_name = {n: sum(v["top1"] for v in sev.values()) / len(sev) for n, sev in table.items()}
    subset = "" if opts.corruption_every == 1 else f", on every {opts.corruption_every}th validation image"
    return dict(
        corruptions=table,
        corruption_n=m["n"],
        corruption_top1_by_name=by_name,
        corruption_top1_mean=sum(by_name.values()) / len(by_name),
        corruption_protocol=f"mixcut.corruptions: {len(names)} corruptions x severities {list(opts.severities)}, "
        "CIFAR-10-C parameters (Hendrycks & Dietterich, ICLR 2019), generated on the fly" + subset,
    )


def evaluate_built(built, cfg, opts: EvalOptions, out: Path, tag: str) -> dict:
    """The result keys of evaluating ``built`` (a `mixcut.build.BuiltForEval`) on its validation split:
    clean metrics and reliability (PNG written to ``out``), then every evaluator ``opts`` switches on."""
    model, data, device, amp_dtype = built.model, built.data, built.device, built.amp_dtype
    metrics = evaluate_split(model, data.val, built.num_classes, device, amp_dtype)
    reliability = metrics.pop("reliability")
    out.mkdir(parents=True, exist_ok=True)
    title = f"{cfg.model.name} / {cfg.data.name} / mix={cfg.mix.name} / seed {cfg.trainer.seed}"
    png = plot_reliability(reliability, out / f"{tag}_reliability.png", title=title)
    result = {
        "weights": "ema" if opts.use_ema else "model",
        "data": cfg.data.name,
        "model": cfg.model.name,
        "mix": cfg.mix.name,
        "seed": cfg.trainer.seed,
        "device": str(device),
        "metrics": metrics,
        "reliability": reliability,
        "reliability_png": png.name,
    }
    if opts.tta != "none":  # test-time augmentation, reported beside the plain metrics (mixcut.eval.tta)
        from .tta import TTAModel

        tta_metrics = evaluate_split(TTAModel(model, opts.tta), data.val, built.num_classes, device, amp_dtype)
        tta_metrics.pop("reliability")
        result.update(tta_top1=tta_metrics["top1"], tta={"mode": opts.tta, **tta_metrics})
    if opts.corruptions:
        result.update(corruption_table(model, data.val, built.num_classes, device, amp_dtype, cfg.data.mean, cfg.data.std, opts))
    if opts.any_claim:
        from .claims import ClaimsInput, claims_evaluations

        result.update(claims_evaluations(ClaimsInput(model, cfg, data, built.source, device, opts, out, tag, title)))
    return result


def format_result(result: dict) -> str:
    """A short human-readable report of `evaluate_checkpoint`'s result."""
    m = result["metrics"]
    lines = [
        f"{result['checkpoint']} ({result['weights']} weights, {m['n']} images, {result['device']})",
        "  ".join(f"{k} {m[k]:.4f}" if k in ("nll", "brier") else f"{k} {m[k]:.2f}" for k in METRIC_NAMES),
    ]
    if "tta" in result:
        lines.append(f"test-time augmentation ({result['tta']['mode']}): top1 {result['tta_top1']:.2f}")
    if "corruptions" in result:
        lines.append(f"mean corruption top1 {result['corruption_top1_mean']:.2f}  ({result['corruption_protocol']})")
        sev = list(next(iter(result["corruptions"].values())))
        lines.append(f"{'corruption':<18}" + "".join(f"{'s' + s:>8}" for s in sev) + f"{'mean':>8}")
        for name, row in result["corruptions"].items():
            lines.append(
                f"{name:<18}"
                + "".join(f"{row[s]['top1']:>8.2f}" for s in sev)
                + f"{result['corruption_top1_by_name'][name]:>8.2f}"
            )
    if "temperature_scaling" in result:
        ts = result["temperature_scaling"]
        b, a = ts["before"], ts["after"]
        lines.append(
            f"temperature scaling T {ts['temperature']:.3f} (fit on {ts['calibration_n']}, evaluated on {ts['eval_n']}): "
            f"ECE {b['ece']:.2f} -> {a['ece']:.2f}  NLL {b['nll']:.4f} -> {a['nll']:.4f}  "
            f"Brier {b['brier']:.4f} -> {a['brier']:.4f}"
        )
        if "ece_floor_after" in ts:  # what a perfectly calibrated model would score on as many images
            f = ts["ece_floor_after"]
            lines.append(f"  ECE after scaling vs its sampling floor at n {f['n']}: mean {f['mean']:.2f}, p95 {f['p95']:.2f}")
    if "adversarial" in result:
        adv = result["adversarial"]
        for attack in ("fgsm", "pgd"):
            if attack in adv:
                lines.append(f"{attack} top1 by eps: " + "  ".join(f"{e} {v:.2f}" for e, v in adv[attack].items()))
    if "occlusion" in result:
        for mode in ("hole", "border"):
            curve = result["occlusion"][mode]
            lines.append(f"occlusion {mode} top1 by size: " + "  ".join(f"{k} {v:.1f}" for k, v in curve.items()))
    if "ood" in result:
        for name, r in result["ood"]["sets"].items():
            lines.append(
                f"ood {name:<16} AUROC msp {r['msp']['auroc']:.2f} energy {r['energy']['auroc']:.2f}  "
                f"FPR95 msp {r['msp']['fpr95']:.2f} energy {r['energy']['fpr95']:.2f}"
            )
        for key, what in (("natural_mean_auroc", "natural images (the claim)"), ("mean_auroc", "noise sets (sanity check)")):
            mean = result["ood"].get(key)
            if mean:
                lines.append(f"ood mean AUROC, {what}: " + "  ".join(f"{s} {v:.2f}" for s, v in mean.items()))
    if "localization" in result:
        loc = result["localization"]
        lines.append(
            f"localization ({loc['method']}, threshold {loc['threshold']}): Top-1 Loc {loc['top1_loc']:.2f}  "
            f"GT-known Loc {loc['gt_known_loc']:.2f}  (top1 {loc['top1']:.2f}, n {loc['n']})"
        )
        if "max_box_acc" in loc:
            lines.append(
                f"  MaxBoxAcc {loc['max_box_acc']:.2f} (GT-known Loc at the best threshold, {loc['best_threshold']:.1f})"
            )
    lines.append(f"written: {result['json']} and {result['reliability_png']}")
    return "\n".join(lines)
