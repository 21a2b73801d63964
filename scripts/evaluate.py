"""Evaluate a mixcut checkpoint: top-1, top-5, NLL, ECE, Brier, a reliability diagram and, with
--corruptions, top-1 under common corruptions at five severities plus their mean.

    python scripts/evaluate.py outputs/RUN/checkpoints/last.pt
    python scripts/evaluate.py outputs/RUN/checkpoints/best.pt --corruptions trainer.device=cpu data.root=/data/cifar

The model, data and preprocessing come from the configuration saved in the
checkpoint; KEY=VALUE arguments override it (dotlist syntax, e.g.
trainer.batch_size=512 trainer.limit_val_batches=10). Results are written to
--out (default: RUN/eval/) as CHECKPOINT_STEM.json and CHECKPOINT_STEM_reliability.png.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mixcut.errors import CheckpointError, ConfigError
from mixcut.eval.checkpoint_eval import evaluate_checkpoint, format_result
from mixcut.eval.corruptions import CORRUPTIONS, SEVERITIES


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
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights instead of the model's")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruption noise (default 0)")
    return p.parse_intermixed_args(argv)  # options and KEY=VALUE overrides in any order


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = evaluate_checkpoint(
            args.checkpoint,
            args.overrides,
            out_dir=args.out,
            corruptions=args.corruptions,
            corruption_names=args.corruption_names.split(",") if args.corruption_names else None,
            severities=[int(s) for s in args.severities.split(",")],
            use_ema=args.ema,
            seed=args.seed,
            corruption_every=args.corruption_every,
        )
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
