"""The papers' claims as evaluations of one checkpoint: calibration after temperature
scaling, adversarial, occlusion and OOD robustness, weakly-supervised localization.

`claims_evaluations` runs the evaluators that `EvalOptions` switches on and returns
the keys `evaluate_checkpoint` adds to its JSON (each evaluator lives in its own
module; this one only wires them to a checkpoint's model and validation split).
All of them run the model in float32, whatever trainer.amp says: gradients for
the attacks and Grad-CAM, and logits comparable across evaluators.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .loop import EveryKth
from .options import EvalOptions


def claims_evaluations(model, cfg, data, source, device, amp_dtype, opts: EvalOptions, out: Path, tag: str, title: str) -> dict:
    """The result keys of every evaluator switched on in ``opts`` (checked by the caller), with their wall times."""
    import time

    model.eval()
    mean, std = cfg.data.mean, cfg.data.std
    result: dict = {}
    times: dict[str, float] = {}
    logits = labels = None

    if opts.temperature or opts.ood:
        from .calibration import collect_logits

        t = time.time()
        logits, labels = collect_logits(model, data.val, device)
        times["logits"] = time.time() - t

    if opts.temperature:
        from .calibration import temperature_scaling
        from .reliability import plot_reliability

        t = time.time()
        ts = temperature_scaling(logits, labels)
        name = f"{tag}_reliability_ts.png"
        png = plot_reliability(ts["reliability_after"], out / name, title=f"{title}, T = {ts['temperature']:.2f}")
        result["temperature_scaling"] = ts | {"reliability_png": png.name}
        times["temperature"] = time.time() - t

    if opts.adversarial:
        from .adversarial import adversarial_accuracy

        t = time.time()
        val = data.val if opts.adversarial_every == 1 else EveryKth(data.val, opts.adversarial_every)
        adv = adversarial_accuracy(model, val, mean, std, opts.epsilons, opts.attacks, opts.pgd_steps, opts.seed)
        subset = "" if opts.adversarial_every == 1 else f"; every {opts.adversarial_every}th validation image"
        adv["protocol"] = (
            f"white-box, eval mode, float32; eps in [0,1] pixel units; PGD {opts.pgd_steps} steps of 2.5*eps/steps "
            "with a random start" + subset
        )
        result["adversarial"] = adv
        times["adversarial"] = time.time() - t

    if opts.occlusion:
        from .occlusion import DEFAULT_SIZES, occlusion_curve

        t = time.time()
        val = data.val if opts.occlusion_every == 1 else EveryKth(data.val, opts.occlusion_every)
        result["occlusion"] = occlusion_curve(model, val, mean, std, opts.occlusion_sizes or DEFAULT_SIZES)
        result["occlusion"]["every"] = opts.occlusion_every
        times["occlusion"] = time.time() - t

    if opts.ood:
        from .ood import ood_detection

        t = time.time()
        result["ood"] = ood_detection(
            model, logits, cfg.data.img_size, mean, std, opts.ood_folders, opts.ood_n, cfg.aug, seed=opts.seed
        )
        times["ood"] = time.time() - t

    if opts.localization:
        from ..data.folder import FileSplit
        from .box_files import BOX_READERS, boxes_for_split
        from .localization import localization_accuracy
        from .localization_plot import plot_examples

        t = time.time()
        if not isinstance(source.val, FileSplit):
            raise ConfigError(f"localization needs an image folder with boxes (data=folder or imagenet); data={cfg.data.name}.")
        boxes = Path(opts.boxes) if opts.boxes else Path(cfg.data.root) / "boxes.txt"
        if not boxes.exists():
            raise ConfigError(f"no boxes at {boxes}; pass --boxes (a boxes.txt, an XML folder or a CUB root).")
        table = BOX_READERS[opts.box_format](boxes)
        gt = boxes_for_split(source.val.paths, cfg.data.root, table, cfg.data.img_size, cfg.aug.crop_pct)
        loc, shown = localization_accuracy(model, data.val, gt, opts.cam_threshold, opts.cam_method)
        png = plot_examples(shown, mean, std, out / f"{tag}_cams.png", title=title)
        result["localization"] = loc | {"boxes": str(boxes), "box_format": opts.box_format, "examples_png": png.name}
        times["localization"] = time.time() - t

    result["claims_wall_time_s"] = times
    return result
