"""The papers' claims as evaluations of one checkpoint: calibration after temperature
scaling, adversarial, occlusion and OOD robustness, weakly-supervised localization.

`claims_evaluations` runs the evaluators that `EvalOptions` switches on and returns
the keys `evaluate_checkpoint` adds to its JSON (each evaluator lives in its own
module; this one only wires them to a checkpoint's model and validation split).
All of them run the model in float32, whatever trainer.amp says: gradients for
the attacks and Grad-CAM, and logits comparable across evaluators.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from .loop import EveryKth
from .options import EvalOptions


@dataclass
class ClaimsInput:
    """What the claim evaluators read: one checkpoint's model (eval mode) and validation split."""

    model: torch.nn.Module
    cfg: object  # the run's composed config (data.mean/std/img_size/root, aug)
    data: object  # the built data (its .val stream)
    source: object  # the data source (its .val file list, for localization's boxes)
    device: torch.device
    opts: EvalOptions
    out: Path  # where the PNGs go
    tag: str  # the checkpoint's file stem, the PNG names' prefix
    title: str
    logits: torch.Tensor | None = None  # the validation logits and labels, when an evaluator needs them
    labels: torch.Tensor | None = None


def _temperature(run: ClaimsInput) -> dict:
    from .calibration import temperature_scaling
    from .reliability import plot_reliability

    ts = temperature_scaling(run.logits, run.labels)
    title = f"{run.title}, T = {ts['temperature']:.2f}"
    png = plot_reliability(ts["reliability_after"], run.out / f"{run.tag}_reliability_ts.png", title=title)
    return ts | {"reliability_png": png.name}


def _adversarial(run: ClaimsInput) -> dict:
    from .adversarial import adversarial_accuracy

    o, d = run.opts, run.cfg.data
    val = run.data.val if o.adversarial_every == 1 else EveryKth(run.data.val, o.adversarial_every)
    adv = adversarial_accuracy(run.model, val, d.mean, d.std, o.epsilons, o.attacks, o.pgd_steps, o.seed)
    subset = "" if o.adversarial_every == 1 else f"; every {o.adversarial_every}th validation image"
    adv["protocol"] = (
        f"white-box, eval mode, float32; eps in [0,1] pixel units; PGD {o.pgd_steps} steps of 2.5*eps/steps "
        "with a random start" + subset
    )
    return adv


def _occlusion(run: ClaimsInput) -> dict:
    from .occlusion import DEFAULT_SIZES, occlusion_curve

    o, d = run.opts, run.cfg.data
    val = run.data.val if o.occlusion_every == 1 else EveryKth(run.data.val, o.occlusion_every)
    curve = occlusion_curve(run.model, val, d.mean, d.std, o.occlusion_sizes or DEFAULT_SIZES)
    curve["every"] = o.occlusion_every
    return curve


def _ood(run: ClaimsInput) -> dict:
    from .ood import ood_detection

    o, d = run.opts, run.cfg.data
    return ood_detection(run.model, run.logits, d.img_size, d.mean, d.std, o.ood_folders, o.ood_n, run.cfg.aug, seed=o.seed)


def _localization(run: ClaimsInput) -> dict:
    from ..data.folder import FileSplit
    from .box_files import BOX_READERS, boxes_for_split
    from .localization import localization_accuracy
    from .localization_plot import plot_examples

    o, d = run.opts, run.cfg.data
    if not isinstance(run.source.val, FileSplit):
        raise ConfigError(f"localization needs an image folder with boxes (data=folder or imagenet); data={d.name}.")
    boxes = Path(o.boxes) if o.boxes else Path(d.root) / "boxes.txt"
    if not boxes.exists():
        raise ConfigError(f"no boxes at {boxes}; pass --boxes (a boxes.txt, an XML folder or a CUB root).")
    table = BOX_READERS[o.box_format](boxes)
    gt = boxes_for_split(run.source.val.paths, d.root, table, d.img_size, run.cfg.aug.crop_pct)
    loc, shown = localization_accuracy(run.model, run.data.val, gt, o.cam_threshold, o.cam_method)
    png = plot_examples(shown, d.mean, d.std, run.out / f"{run.tag}_cams.png", title=run.title)
    return loc | {"boxes": str(boxes), "box_format": o.box_format, "examples_png": png.name}


# (EvalOptions switch, result key, evaluator), in the order they run and appear in the JSON
EVALUATORS = (
    ("temperature", "temperature_scaling", _temperature),
    ("adversarial", "adversarial", _adversarial),
    ("occlusion", "occlusion", _occlusion),
    ("ood", "ood", _ood),
    ("localization", "localization", _localization),
)


def claims_evaluations(run: ClaimsInput) -> dict:
    """The result keys of every evaluator switched on in ``run.opts`` (checked by the caller), with their wall times
    under ``claims_wall_time_s`` (``logits``: the validation pass that temperature scaling and OOD share)."""
    run.model.eval()
    result: dict = {}
    times: dict[str, float] = {}
    if run.opts.temperature or run.opts.ood:
        from .calibration import collect_logits

        t = time.time()
        run.logits, run.labels = collect_logits(run.model, run.data.val, run.device)
        times["logits"] = time.time() - t
    for switch, key, evaluate in EVALUATORS:
        if getattr(run.opts, switch):
            t = time.time()
            result[key] = evaluate(run)
            times[switch] = time.time() - t
    result["claims_wall_time_s"] = times
    return result
