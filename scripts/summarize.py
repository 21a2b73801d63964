"""Turn run directories into a results table (markdown) and a chart (PNG).

    python scripts/summarize.py outputs/*/* --md docs/results_table.md --png docs/results.png

Each RUN_DIR must hold the trainer's config.yaml and summary.json; the
corruption accuracy comes from RUN_DIR/eval/*.json written by
`scripts/evaluate.py --corruptions` (last.json preferred, then best.json).
Rows are grouped by mixing method (``mix.name``; ``--label KEY`` groups by
another config key, e.g. model.name); the per-method table and the chart show
the mean and the sample standard deviation over the runs (seeds) of a group.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from omegaconf import OmegaConf

COLUMNS = [  # key, header, format
    ("top1", "top-1 (%)", "{:.2f}"),
    ("ece", "ECE (%)", "{:.2f}"),
    ("nll", "NLL", "{:.3f}"),
    ("brier", "Brier", "{:.4f}"),
    ("corruption_top1", "corruption top-1 (%)", "{:.2f}"),
    ("wall_min", "wall time (min)", "{:.1f}"),
]


def _select(cfg, key: str):
    value = OmegaConf.select(cfg, key, default=None)
    return "?" if value is None else str(value)


def _eval_json(run_dir: Path) -> dict | None:
    """The evaluation with corruption results: last.json, then best.json, then any other."""
    files = sorted((run_dir / "eval").glob("*.json"), key=lambda p: ({"last": 0, "best": 1}.get(p.stem, 2), p.name))
    for path in files:
        data = json.loads(path.read_text())
        if "corruption_top1_mean" in data:
            return data
    return None


def load_run(run_dir: str | Path, label: str = "mix.name", use_best: bool = False) -> dict:
    """One row: the run's method label, seed and metrics. Raises FileNotFoundError for an incomplete run."""
    run_dir = Path(run_dir)
    for name in ("config.yaml", "summary.json"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir} has no {name} (not a finished mixcut run)")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = summary.get("best") if use_best else summary
    if not metrics:
        raise FileNotFoundError(f"{run_dir}/summary.json has no {'best' if use_best else 'final'} metrics")
    row = {"run": run_dir.name, "path": str(run_dir), "method": _select(cfg, label), "seed": _select(cfg, "trainer.seed")}
    for key in ("top1", "ece", "nll", "brier"):
        row[key] = metrics.get(key)
    wall = summary.get("wall_time_s")
    row["wall_min"] = wall / 60.0 if wall is not None else None
    ev = _eval_json(run_dir)
    row["corruption_top1"] = ev["corruption_top1_mean"] if ev else None
    return row


def _fmt(value, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def group(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows by method, methods in order of first appearance."""
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["method"], []).append(row)
    return out


def mean_std(values: list) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def markdown(rows: list[dict], label: str = "mix.name") -> str:
    head = ["method" if label == "mix.name" else label, "seed"] + [h for _, h, _ in COLUMNS] + ["run"]
    lines = ["### Runs", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], r["seed"]] + [_fmt(r[k], f) for k, _, f in COLUMNS] + [r["run"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "### Per method (mean ± sample standard deviation over runs)", ""]
    head = [head[0], "runs"] + [h for _, h, _ in COLUMNS]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, members in group(rows).items():
        cells = [method, str(len(members))]
        for key, _, fmt in COLUMNS:
            m, s = mean_std([r[key] for r in members])
            cells.append(_fmt(m, fmt) + (f" ± {fmt.format(s)}" if s is not None else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: str | Path, title: str | None = None) -> Path:
    """Bars of the mean per method (error bars: sample std) with each run as a dot: top-1, ECE, corruption top-1."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = group(rows)
    methods = list(groups)
    panels = [
        ("top1", "top-1 accuracy (%)"),
        ("ece", "ECE (%) - lower is better"),
        ("corruption_top1", "mean corruption top-1 (%)"),
    ]
    fig = Figure(figsize=(3 * max(3.0, 0.42 * len(methods)), 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    xs = list(range(len(methods)))
    for ax, (key, name) in zip(axes, panels):
        stats = [mean_std([r[key] for r in groups[m]]) for m in methods]
        if all(mu is None for mu, _ in stats):
            ax.text(
                0.5,
                0.5,
                "no data\n(run scripts/evaluate.py --corruptions)" if key == "corruption_top1" else "no data",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=8,
            )
        else:
            heights = [mu if mu is not None else 0.0 for mu, _ in stats]
            errs = [sd if sd is not None else 0.0 for _, sd in stats]
            ax.bar(xs, heights, yerr=errs, capsize=3, color="#4C72B0", alpha=0.8)
            for x, m in zip(xs, methods):
                vals = [r[key] for r in groups[m] if r[key] is not None]
                ax.plot([x] * len(vals), vals, "o", color="black", markersize=3)
            vals = [r[key] for r in rows if r[key] is not None]
            if key != "ece":  # zoom on the spread: accuracies are close together
                lo, hi = min(vals), max(vals)
                pad = max(1.0, 0.15 * (hi - lo))
                ax.set_ylim(max(0.0, lo - 3 * pad), min(100.0, hi + pad))
        ax.set_title(name, fontsize=9)
        ax.set_xticks(xs)
        ax.set_xticklabels(methods, rotation=35, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", help="run directories (each with config.yaml and summary.json)")
    p.add_argument("--md", default=None, help="also write the markdown table to this file")
    p.add_argument("--png", default=None, help="write the chart to this PNG file")
    p.add_argument("--label", default="mix.name", help="config key that names a row's method (default mix.name)")
    p.add_argument("--best", action="store_true", help="use the best epoch's metrics instead of the final ones")
    p.add_argument("--title", default=None, help="title of the chart")
    args = p.parse_args(argv)

    rows = []
    for d in args.run_dirs:
        try:
            rows.append(load_run(d, args.label, args.best))
        except FileNotFoundError as e:
            print(f"skipped: {e}", file=sys.stderr)
    if not rows:
        print("error: none of the directories is a finished mixcut run.", file=sys.stderr)
        return 2
    text = markdown(rows, args.label)
    print(text, end="")
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(text)
    if args.png:
        chart(rows, args.png, args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
