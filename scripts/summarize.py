"""Turn run directories into a results table (markdown) and a chart (PNG).

    python scripts/summarize.py outputs/*/* --md docs/results_table.md --png docs/results.png

Each RUN_DIR must hold the trainer's config.yaml and summary.json; the
corruption accuracy comes from RUN_DIR/eval/*.json written by
`scripts/evaluate.py --corruptions` (last.json preferred, then best.json).
Rows are grouped by mixing method (``mix.name``; ``--label KEY`` groups by
another config key, e.g. model.name); the per-method table and the chart show
the mean and the sample standard deviation over the runs (seeds) of a group.

The papers' other claims (`scripts/evaluate.py --claims`) add columns when any run
has them: temperature T and ECE/NLL after temperature scaling, FGSM/PGD top-1 at
--adv-eps, mean occlusion top-1, OOD AUROC, Top-1 Loc / GT-known Loc; and, when
RUN_DIR/eval_train/*.json holds an evaluation on the training images, train top-1
and the train-val gap. --claims-png draws reliability before/after scaling,
occlusion and attack curves per method; --cams-png stacks each method's CAM examples.
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


# shown only when some run has them (scripts/evaluate.py --claims, RUN_DIR/eval_train/)
CLAIM_COLUMNS = [
    ("train_top1", "train top-1 (%)", "{:.2f}"),
    ("gap", "train-val gap (pts)", "{:.2f}"),
    ("ts_t", "T", "{:.2f}"),
    ("ts_ece_before", "ECE, eval half (%)", "{:.2f}"),
    ("ts_ece_after", "ECE after TS (%)", "{:.2f}"),
    ("ts_nll_after", "NLL after TS", "{:.3f}"),
    ("fgsm", "FGSM top-1 (%)", "{:.2f}"),
    ("pgd", "PGD top-1 (%)", "{:.2f}"),
    ("occ_hole", "hole occl. top-1 (%)", "{:.2f}"),
    ("occ_border", "border occl. top-1 (%)", "{:.2f}"),
    ("ood_msp", "OOD AUROC MSP (%)", "{:.2f}"),
    ("ood_energy", "OOD AUROC energy (%)", "{:.2f}"),
    ("top1_loc", "Top-1 Loc (%)", "{:.2f}"),
    ("gt_known_loc", "GT-known Loc (%)", "{:.2f}"),
]
CLAIM_KEYS = ("temperature_scaling", "adversarial", "occlusion", "ood", "localization")


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


def _claims_json(run_dir: Path, sub: str = "eval", key: str | None = None) -> dict | None:
    """The first of last/best/other evaluations under RUN_DIR/``sub`` holding ``key`` (default: any claim)."""
    files = sorted((run_dir / sub).glob("*.json"), key=lambda p: ({"last": 0, "best": 1}.get(p.stem, 2), p.name))
    for path in files:
        data = json.loads(path.read_text())
        if (key in data) if key else any(k in data for k in CLAIM_KEYS):
            return data | {"_dir": str(path.parent)}
    return None


def _nearest(curve: dict, value: float):
    """The entry of ``{"0.0078": top1, ...}`` whose key is nearest to ``value``."""
    return curve[min(curve, key=lambda k: abs(float(k) - value))] if curve else None


def claim_values(run_dir: Path, adv_eps: float) -> dict:
    """The claim columns of one run (None where not evaluated) and the curves for the charts."""
    row: dict = {k: None for k, _, _ in CLAIM_COLUMNS}
    train = _claims_json(run_dir, "eval_train", "metrics")
    if train:
        row["train_top1"], row["train_nll"] = train["metrics"]["top1"], train["metrics"]["nll"]
    ev = _claims_json(run_dir)
    row["curves"] = {}
    if not ev:
        return row
    if "temperature_scaling" in ev:
        ts = ev["temperature_scaling"]
        row.update(ts_t=ts["temperature"], ts_ece_before=ts["before"]["ece"], ts_ece_after=ts["after"]["ece"])
        row["ts_nll_after"] = ts["after"]["nll"]
        row["curves"]["reliability"] = (ts["reliability_before"], ts["reliability_after"])
    if "adversarial" in ev:
        adv = ev["adversarial"]
        row["fgsm"], row["pgd"] = _nearest(adv.get("fgsm", {}), adv_eps), _nearest(adv.get("pgd", {}), adv_eps)
        row["curves"].update({a: adv[a] for a in ("fgsm", "pgd") if a in adv})
    if "occlusion" in ev:
        occ = ev["occlusion"]
        for mode in ("hole", "border"):
            if mode in occ:
                row[f"occ_{mode}"] = statistics.fmean(occ[mode].values())
                row["curves"][mode] = occ[mode]
    if "ood" in ev:
        row["ood_msp"], row["ood_energy"] = ev["ood"]["mean_auroc"]["msp"], ev["ood"]["mean_auroc"]["energy"]
    if "localization" in ev:
        loc = ev["localization"]
        row["top1_loc"], row["gt_known_loc"] = loc["top1_loc"], loc["gt_known_loc"]
        row["cams_png"] = str(Path(ev["_dir"]) / loc["examples_png"])
    return row


def load_run(run_dir: str | Path, label: str = "mix.name", use_best: bool = False, adv_eps: float = 2 / 255) -> dict:
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
    row.update(claim_values(run_dir, adv_eps))
    if row["train_top1"] is not None and row["top1"] is not None:
        row["gap"] = row["train_top1"] - row["top1"]
    return row


def _fraction(text: str) -> float:
    num, _, den = text.partition("/")
    return float(num) / float(den) if den else float(num)


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


def columns(rows: list[dict]) -> list[tuple[str, str, str]]:
    """COLUMNS plus the claim columns some run has (none: exactly the table of before)."""
    return COLUMNS + [c for c in CLAIM_COLUMNS if any(r.get(c[0]) is not None for r in rows)]


def markdown(rows: list[dict], label: str = "mix.name") -> str:
    COLUMNS = columns(rows)  # noqa: N806  (the module's list, extended)
    head = ["method" if label in ("mix.name", "logger.run_name") else label, "seed"] + [h for _, h, _ in COLUMNS] + ["run"]
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


# the papers' claims as (metric, higher is better, claim) rows of the verdict table
CLAIMS = [
    ("top1", True, "accuracy improves"),
    ("gap", False, "the train-val gap shrinks (less overfitting)"),
    ("ece", False, "calibration improves (ECE)"),
    ("nll", False, "NLL improves"),
    ("ts_ece_after", False, "calibration after temperature scaling (Wang et al. 2023: mixup is *less* calibratable)"),
    ("corruption_top1", True, "robustness to common corruptions"),
    ("fgsm", True, "robustness to FGSM"),
    ("pgd", True, "robustness to PGD"),
    ("occ_hole", True, "robustness to centre occlusion"),
    ("occ_border", True, "robustness to border occlusion"),
    ("ood_msp", True, "OOD detection (max-softmax AUROC)"),
    ("ood_energy", True, "OOD detection (energy AUROC)"),
    ("top1_loc", True, "weakly-supervised localization (Top-1 Loc)"),
    ("gt_known_loc", True, "weakly-supervised localization (GT-known Loc)"),
    ("wall_min", False, "cost: wall time"),
]


def verdicts(rows: list[dict], baseline: str = "none") -> str:
    """Markdown: for each claim, each method's mean minus the baseline's, marked + when better by more than
    the two groups' combined seed spread (sqrt(s1^2 + s2^2)), (+) when better within it or with one run
    (no spread), - when worse. Empty when there is no baseline group."""
    groups = group(rows)
    if baseline not in groups:
        return ""
    methods = [m for m in groups if m != baseline]
    lines = [
        f"| claim | metric | {baseline} | " + " | ".join(methods) + " |",
        "|" + "---|" * (len(methods) + 3),
    ]
    for key, higher, claim in CLAIMS:
        b_mean, b_std = mean_std([r.get(key) for r in groups[baseline]])
        if b_mean is None:
            continue
        cells = []
        for m in methods:
            mu, sd = mean_std([r.get(key) for r in groups[m]])
            if mu is None:
                cells.append("-")
                continue
            diff = mu - b_mean
            better = diff > 0 if higher else diff < 0
            spread = math.hypot(b_std or 0.0, sd or 0.0)
            seeds = sd is not None and b_std is not None  # a spread on both sides
            mark = "+" if better and seeds and abs(diff) > spread else "(+)" if better else "-"
            cells.append(f"{diff:+.2f} {mark}")
        lines.append(f"| {claim} | {key} | {b_mean:.2f} | " + " | ".join(cells) + " |")
    return (
        f"Difference to `{baseline}` (mean over seeds): + better by more than the combined seed spread, "
        "(+) better within it or from a single run, - worse.\n\n" + "\n".join(lines) + "\n"
    )


def _mean_curve(curves: list[dict]) -> tuple[list[float], list[float]]:
    keys = sorted(curves[0], key=float)  # the JSON files keep keys sorted as text ("128" < "64")
    return [float(k) for k in keys], [statistics.fmean(c[k] for c in curves) for k in keys]


def claims_chart(rows: list[dict], path: str | Path, title: str | None = None) -> Path:
    """Reliability before/after temperature scaling (first run of each method), occlusion and
    attack curves (mean over a method's runs)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = group(rows)
    # ten colours, then the same ten dashed: a study of 13 methods keeps every line distinguishable
    colours = [f"C{i}" for i in range(10)]
    style = {m: dict(color=colours[i % 10], ls="-" if i < 10 else "--") for i, m in enumerate(groups)}
    fig = Figure(figsize=(15, 8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3).flatten()
    panels = [
        ("reliability", 0, "reliability before temperature scaling", "confidence", "accuracy"),
        ("reliability", 1, "reliability after temperature scaling", "confidence", "accuracy"),
        ("hole", None, "centre hole filled with zeros", "hole size (224 scale)", "top-1 (%)"),
        ("border", None, "border band outside a centred square zeroed", "kept square size (224 scale)", "top-1 (%)"),
        ("fgsm", None, "FGSM (white-box)", "eps (x255)", "top-1 (%)"),
        ("pgd", None, "PGD (white-box)", "eps (x255)", "top-1 (%)"),
    ]
    for ax, (key, which, name, xlabel, ylabel) in zip(axes, panels):
        drawn = False
        for method, members in groups.items():
            curves = [r["curves"][key] for r in members if key in r.get("curves", {})]
            if not curves:
                continue
            drawn = True
            if key == "reliability":
                rel = curves[0][which]
                used = [i for i, c in enumerate(rel["count"]) if c > 0]
                ax.plot(
                    [rel["confidence"][i] for i in used],
                    [rel["accuracy"][i] for i in used],
                    marker="o",
                    ms=3,
                    label=method,
                    **style[method],
                )
            else:
                xs, ys = _mean_curve(curves)
                xs = [x * 255 for x in xs] if key in ("fgsm", "pgd") else xs
                ax.plot(xs, ys, marker="o", ms=3, label=method, **style[method])
        if key == "reliability":
            ax.plot([0, 1], [0, 1], "--", color="0.5", lw=1)
        if not drawn:
            ax.text(0.5, 0.5, "no data (scripts/evaluate.py --claims)", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=8)
        if drawn:
            ax.legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def cams_grid(rows: list[dict], path: str | Path) -> Path | None:
    """One row per method: the first run's CAM examples (true class; green ground truth, red CAM box)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    picks = []
    for method, members in group(rows).items():
        png = next((r["cams_png"] for r in members if r.get("cams_png") and Path(r["cams_png"]).is_file()), None)
        if png:
            picks.append((method, imread(png)))
    if not picks:
        return None
    fig = Figure(figsize=(picks[0][1].shape[1] / 110, sum(p[1].shape[0] for p in picks) / 110 + 0.3 * len(picks)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(picks), 1, squeeze=False)[:, 0]
    for ax, (method, img) in zip(axes, picks):
        ax.imshow(img)
        ax.set_title(method, fontsize=9, loc="left")
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", help="run directories (each with config.yaml and summary.json)")
    p.add_argument("--md", default=None, help="also write the markdown table to this file")
    p.add_argument("--png", default=None, help="write the chart to this PNG file")
    p.add_argument("--label", default="mix.name", help="config key that names a row's method (default mix.name)")
    p.add_argument("--best", action="store_true", help="use the best epoch's metrics instead of the final ones")
    p.add_argument("--title", default=None, help="title of the chart")
    p.add_argument("--claims-png", default=None, help="write reliability/occlusion/attack curves to this PNG")
    p.add_argument("--cams-png", default=None, help="write a grid of each method's CAM examples to this PNG")
    p.add_argument("--verdicts-md", default=None, help="write the claim-by-claim comparison with --baseline here")
    p.add_argument("--baseline", default="none", help="the method the verdicts compare with (default none)")
    p.add_argument("--adv-eps", default="2/255", help="epsilon of the FGSM/PGD columns (nearest evaluated; default 2/255)")
    args = p.parse_args(argv)

    rows = []
    for d in args.run_dirs:
        try:
            rows.append(load_run(d, args.label, args.best, _fraction(args.adv_eps)))
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
    if args.claims_png:
        claims_chart(rows, args.claims_png, args.title)
    if args.verdicts_md:
        Path(args.verdicts_md).write_text(verdicts(rows, args.baseline) or f"no runs of the baseline {args.baseline!r}\n")
    if args.cams_png and cams_grid(rows, args.cams_png) is None:
        print("no CAM examples found (scripts/evaluate.py --localization)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
