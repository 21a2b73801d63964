"""Evaluate a mixcut checkpoint: top-1, top-5, NLL, ECE, Brier, a reliability diagram and, with
--corruptions, top-1 under common corruptions at five severities plus their mean.

    python scripts/evaluate.py outputs/RUN/checkpoints/last.pt
    python scripts/evaluate.py outputs/RUN/checkpoints/best.pt --corruptions trainer.device=cpu data.root=/data/cifar

The model, data and preprocessing come from the configuration saved in the
checkpoint; KEY=VALUE arguments override it (dotlist syntax, e.g.
trainer.batch_size=512 trainer.limit_val_batches=10). Results are written to
--out (default: RUN/eval/) as CHECKPOINT_STEM.json and CHECKPOINT_STEM_reliability.png.

The papers' other claims, each switched on by a flag (results go into the same JSON):
  --temperature   ECE/NLL/Brier before and after temperature scaling (T fit on half of each class)
  --adversarial   FGSM and PGD top-1 at --epsilons ([0,1] pixel units); --fgsm-only for the CutMix
                  paper's Table 11 protocol (FGSM, ImageNet val, ResNet-50: 8.2 / Mixup 24.4 /
                  Cutout 11.5 / CutMix 31.0)
  --occlusion     top-1 with a centred zero hole / zero border band, sizes 0..224 scaled to the image
  --ood           AUROC and FPR@95%TPR (max-softmax and energy) against Gaussian/uniform noise,
                  scikit-learn digits and every --ood-folder
  --localization  CAM (Grad-CAM) Top-1 Loc and GT-known Loc against --boxes (default DATA_ROOT/boxes.txt)
  --claims        all of the above

    python scripts/evaluate.py RUN/checkpoints/last.pt --adversarial --fgsm-only --epsilons 0.0157 \
        data=imagenet data.root=/data/imagenet
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixcut.errors import CheckpointError, ConfigError  # noqa: E402
from mixcut.eval.checkpoint_eval import format_result  # noqa: E402
from mixcut.eval.corruptions import CORRUPTIONS, SEVERITIES  # noqa: E402
from mixcut.eval.options import EvalOptions  # noqa: E402
from mixcut.eval.tta import TTA_MODES  # noqa: E402
from mixcut.evaluate import evaluate_checkpoint  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint written by mixcut's trainer (RUN/checkpoints/last.pt or best.pt)")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of the saved config")
    p.add_argument("--out", default=None, help="output directory (default: the run directory's eval/)")
    p.add_argument("--corruptions", action="store_true", help="also measure top-1 under common corruptions")
    p.add_argument("--corruption-names", default=None, help=f"comma-separated subset of: {', '.join(CORRUPTIONS)} (default: all)")
    p.add_argument("--severities", default=",".join(map(str, SEVERITIES)), help="comma-separated severities (default 1-5)")
    p.add_argument(
        "--corruption-every",
        type=int,
        default=1,
        metavar="K",
        help="corrupt only every K-th validation image (a fixed, class-balanced subset; default 1: all); "
        "clean metrics always use the whole split",
    )
    p.add_argument("--tta", default="none", choices=list(TTA_MODES), help="also report TTA metrics")
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights instead of the model's")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruption noise, PGD starts and OOD noise (default 0)")
    p.add_argument("--claims", action="store_true", help="every evaluator below (localization only if boxes exist)")
    p.add_argument("--temperature", action="store_true", help="calibration before/after temperature scaling")
    p.add_argument("--adversarial", action="store_true", help="FGSM and PGD accuracy")
    p.add_argument("--epsilons", default="0,1/255,2/255,4/255,8/255", help="comma-separated, [0,1] units; a/b allowed")
    p.add_argument("--fgsm-only", action="store_true", help="no PGD (the CutMix paper's Table 11 protocol)")
    p.add_argument("--pgd-steps", type=int, default=5)
    p.add_argument("--adversarial-every", type=int, default=1, metavar="K", help="attack every K-th validation image")
    p.add_argument("--occlusion", action="store_true", help="centre-hole and border occlusion curves")
    p.add_argument("--occlusion-sizes", default=None, help="comma-separated sizes on the 224 scale (default 0,32,...,224)")
    p.add_argument("--occlusion-every", type=int, default=1, metavar="K", help="occlude every K-th validation image")
    p.add_argument("--ood", action="store_true", help="OOD detection against noise, digits and --ood-folder")
    p.add_argument("--ood-folder", action="append", default=[], help="an image folder used as an OOD set (repeatable)")
    p.add_argument("--ood-n", type=int, default=1000, help="images per OOD set (default 1000)")
    p.add_argument("--localization", action="store_true", help="CAM / Grad-CAM weakly-supervised localization")
    p.add_argument(
        "--boxes",
        default=None,
        help="boxes.txt (mixcut), an ImageNet val XML folder, Kaggle's LOC_val_solution.csv or a CUB-200-2011 root",
    )
    p.add_argument("--box-format", default="mixcut", choices=["mixcut", "imagenet_xml", "kaggle_csv", "cub"])
    p.add_argument("--cam-threshold", type=float, default=0.2, help="fraction of the map's maximum (default 0.2)")
    p.add_argument("--cam-method", default="auto", choices=["auto", "cam", "gradcam"])
    return p.parse_intermixed_args(argv)  # options and KEY=VALUE overrides in any order


def _fraction(text: str) -> float:
    num, _, den = text.partition("/")
    return float(num) / float(den) if den else float(num)


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    """The flags as one typed `EvalOptions` (--claims switches on every evaluator; localization when boxes exist)."""
    return EvalOptions(
        use_ema=args.ema,
        seed=args.seed,
        corruptions=args.corruptions,
        corruption_names=tuple(args.corruption_names.split(",")) if args.corruption_names else None,
        severities=tuple(int(s) for s in args.severities.split(",")),
        corruption_every=args.corruption_every,
        temperature=args.temperature or args.claims,
        adversarial=args.adversarial or args.claims,
        epsilons=tuple(_fraction(e) for e in args.epsilons.split(",")),
        attacks=("fgsm",) if args.fgsm_only else ("fgsm", "pgd"),
        pgd_steps=args.pgd_steps,
        adversarial_every=args.adversarial_every,
        occlusion=args.occlusion or args.claims,
        occlusion_sizes=tuple(int(s) for s in args.occlusion_sizes.split(",")) if args.occlusion_sizes else None,
        occlusion_every=args.occlusion_every,
        ood=args.ood or args.claims,
        ood_folders=tuple(args.ood_folder),
        ood_n=args.ood_n,
        localization=args.localization,
        localization_if_boxes=args.claims,
        boxes=args.boxes,
        box_format=args.box_format,
        cam_threshold=args.cam_threshold,
        cam_method=args.cam_method,
        tta=args.tta,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = evaluate_checkpoint(args.checkpoint, args.overrides, options_from_args(args), out_dir=args.out)
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
