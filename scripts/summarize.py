"""Turn run directories into a results table (markdown) and a chart (PNG).

    python scripts/summarize.py outputs/*/* --md docs/results_table.md --png docs/results.png

Each RUN_DIR must hold the trainer's config.yaml and summary.json; the
corruption accuracy comes from RUN_DIR/eval/*.json written by
`scripts/evaluate.py --corruptions` (last.json preferred, then best.json).
Rows are grouped by mixing method (``mix.name``; ``--label KEY`` groups by
another config key, e.g. model.name); the per-method table and the chart show
the mean and the sample standard deviation over the runs (seeds) of a group.

The papers' other claims (`scripts/evaluate.py --claims`) add columns when any run
has them: temperature T and ECE/NLL after temperature scaling with ECE's sampling
floor, FGSM/PGD top-1 at --adv-eps, occlusion top-1 averaged over the informative
hole sizes (neither the clean nor the all-black image), OOD AUROC against held-out
natural images (open set) and against noise (sanity check), Top-1 Loc / GT-known Loc;
and, when RUN_DIR/eval_train/*.json holds an evaluation on the training images, train
top-1 and the train-val gap. --claims-png draws reliability before/after scaling,
occlusion and attack curves per method; --cams-png stacks each method's CAM examples.

--verdicts-md compares every method with --baseline, claim by claim: the difference of
the means with its 95 % Welch interval, marked + (better) or - (worse) only where
Welch's two-sided t-test on the per-seed values rejects equal means at alpha 0.05;
with fewer than 2 runs on either side no spread can be estimated and nothing is marked.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixcut.eval.occlusion import curve_summary  # noqa: E402

COLUMNS = [  # key, header, format
    ("top1", "top-1 (%)", "{:.2f}"),
    ("ece", "ECE (%)", "{:.2f}"),
    ("nll", "NLL", "{:.3f}"),
    ("brier", "Brier", "{:.4f}"),
    ("corruption_top1", "corruption top-1 (%)", "{:.2f}"),
    ("wall_min", "wall time (min)", "{:.1f}"),
    ("cpu_min", "CPU time (min)", "{:.1f}"),
]


# shown only when some run has them (scripts/evaluate.py --claims, RUN_DIR/eval_train/)
CLAIM_COLUMNS = [
    ("train_top1", "train top-1 (%)", "{:.2f}"),
    ("gap", "train-val gap (pts)", "{:.2f}"),
    ("ts_t", "T", "{:.2f}"),
    ("ts_ece_before", "ECE, eval half (%)", "{:.2f}"),
    ("ts_ece_after", "ECE after TS (%)", "{:.2f}"),
    ("ts_ece_floor", "ECE floor at this n (%)", "{:.2f}"),
    ("ts_nll_after", "NLL after TS", "{:.3f}"),
    ("fgsm", "FGSM top-1 (%)", "{:.2f}"),
    ("pgd", "PGD top-1 (%)", "{:.2f}"),
    ("occ_hole", "hole occl. top-1, informative sizes (%)", "{:.2f}"),
    ("occ_border", "border occl. top-1, informative sizes (%)", "{:.2f}"),
    ("open_msp", "open-set AUROC MSP (%)", "{:.2f}"),
    ("open_energy", "open-set AUROC energy (%)", "{:.2f}"),
    ("ood_msp", "noise OOD AUROC MSP, sanity (%)", "{:.2f}"),
    ("ood_energy", "noise OOD AUROC energy, sanity (%)", "{:.2f}"),
    ("top1_loc", "Top-1 Loc (%)", "{:.2f}"),
    ("gt_known_loc", "GT-known Loc (%)", "{:.2f}"),
    ("max_box_acc", "GT-known Loc at the best threshold (MaxBoxAcc, %)", "{:.2f}"),
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
        row["ts_ece_floor"] = (ts.get("ece_floor_after") or {}).get("mean")
        row["curves"]["reliability"] = (ts["reliability_before"], ts["reliability_after"])
    if "adversarial" in ev:
        adv = ev["adversarial"]
        row["fgsm"], row["pgd"] = _nearest(adv.get("fgsm", {}), adv_eps), _nearest(adv.get("pgd", {}), adv_eps)
        row["curves"].update({a: adv[a] for a in ("fgsm", "pgd") if a in adv})
    if "occlusion" in ev:
        row.update(occlusion_values(ev["occlusion"]))
        row["curves"].update({m: ev["occlusion"][m] for m in ("hole", "border") if m in ev["occlusion"]})
    if "ood" in ev:
        ood = ev["ood"]
        sanity, natural = ood.get("mean_auroc") or {}, ood.get("natural_mean_auroc") or {}
        row["ood_msp"], row["ood_energy"] = sanity.get("msp"), sanity.get("energy")
        row["open_msp"], row["open_energy"] = natural.get("msp"), natural.get("energy")
    if "localization" in ev:
        loc = ev["localization"]
        row["top1_loc"], row["gt_known_loc"] = loc["top1_loc"], loc["gt_known_loc"]
        row["max_box_acc"] = loc.get("max_box_acc")
        row["cams_png"] = str(Path(ev["_dir"]) / loc["examples_png"])
    return row


def occlusion_values(occ: dict) -> dict:
    """``occ_hole`` / ``occ_border``: mean top-1 over the informative sizes (the JSON's own list when it has
    one, else 0 < size < 224): the clean image (hole 0, kept square 224) and the all-black image are left out."""
    keep = occ.get("informative_sizes")
    return {f"occ_{m}": curve_summary(occ[m], keep) for m in ("hole", "border") if m in occ}


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
    cpu = summary.get("cpu_time_s")  # absent from runs made before it was recorded
    row["cpu_min"] = cpu / 60.0 if cpu is not None else None
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
    ("ts_ece_after", False, "ECE after temperature scaling (Wang et al. 2023: mixup is *less* calibratable)"),
    ("ts_nll_after", False, "NLL after temperature scaling (Wang et al. 2023)"),
    ("corruption_top1", True, "robustness to common corruptions (CIFAR-10-C protocol, 11 corruptions)"),
    ("fgsm", True, "robustness to FGSM"),
    ("pgd", True, "robustness to PGD"),
    ("occ_hole", True, "robustness to centre occlusion (mean over the informative hole sizes)"),
    ("occ_border", True, "robustness to border occlusion (mean over the informative sizes)"),
    ("open_msp", True, "open-set detection of held-out classes (max-softmax AUROC)"),
    ("open_energy", True, "open-set detection of held-out classes (energy AUROC)"),
    ("ood_msp", True, "sanity check: noise/digits rejection (max-softmax AUROC)"),
    ("ood_energy", True, "sanity check: noise/digits rejection (energy AUROC)"),
    ("top1_loc", True, "weakly-supervised localization (Top-1 Loc)"),
    ("gt_known_loc", True, "weakly-supervised localization (GT-known Loc)"),
    ("max_box_acc", True, "weakly-supervised localization (GT-known Loc at each model's best CAM threshold)"),
    # the cost claim is judged on CPU time: wall time grows with whatever else the machine runs (studies run
    # side by side, paused, on a busy host), CPU time of the training processes much less so. Wall time is judged
    # only where no run recorded CPU time (runs made before summary.json had cpu_time_s).
    ("cpu_min", False, "cost: CPU time of training (min; every rank's threads, not DataLoader workers)"),
    ("wall_min", False, "cost: wall time (these runs did not record CPU time)"),
]


ALPHA = 0.05  # the verdicts' significance level (two-sided)


def compare(base: list, other: list, higher: bool = True) -> dict:
    """Welch's two-sided t-test of mean(other) - mean(base) on per-seed values.

    Returns ``diff``, its 95 % Welch interval ``lo``/``hi`` and ``p`` (None with fewer than 2 values on
    either side: no spread can be estimated), ``n`` = (n_base, n_other) and ``mark``: "+" when other is
    significantly better (``higher`` says which direction is better), "-" when significantly worse, ""
    otherwise. Swapping ``base`` and ``other`` flips the sign of diff, interval and mark, nothing else."""
    from scipy import stats

    a, b = [v for v in base if v is not None], [v for v in other if v is not None]
    out = {"diff": statistics.fmean(b) - statistics.fmean(a), "lo": None, "hi": None, "p": None, "n": (len(a), len(b))}
    out["mark"] = ""
    if len(a) < 2 or len(b) < 2:
        return out
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # no spread on either side: any difference is exact
        out.update(lo=out["diff"], hi=out["diff"], p=0.0 if out["diff"] else 1.0)
    else:
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
        t = out["diff"] / se
        half = stats.t.ppf(1 - ALPHA / 2, df) * se
        out.update(lo=out["diff"] - half, hi=out["diff"] + half, p=float(2 * stats.t.sf(abs(t), df)))
    if out["p"] < ALPHA:
        out["mark"] = "+" if (out["diff"] > 0) == higher else "-"
    return out


def _cell(c: dict, decimals: int) -> str:
    f = f"{{:+.{decimals}f}}"
    if c["p"] is None:
        return f.format(c["diff"]) + f" (n={c['n'][0]} vs {c['n'][1]}: no spread)"
    return f"{f.format(c['diff'])} [{f.format(c['lo'])}, {f.format(c['hi'])}]" + (f" **{c['mark']}**" if c["mark"] else "")


# metrics shown beside another in the verdicts: (metric, companion, what the companion is)
COMPANIONS = {"ts_ece_after": ("ts_ece_floor", "ECE floor of a perfectly calibrated model at this n")}


def verdicts(rows: list[dict], baseline: str = "none") -> str:
    """Markdown: for each claim, each method's mean minus the baseline's with its 95 % Welch interval, marked
    + / - only where Welch's two-sided t-test (alpha 0.05) separates them, and a last column naming the
    methods that are significantly better, worse, or not separable. Empty when there is no baseline group."""
    groups = group(rows)
    if baseline not in groups:
        return ""
    methods = [m for m in groups if m != baseline]
    if not methods:
        return f"Only `{baseline}` ran: nothing to compare.\n"
    lines = [
        f"| claim | metric | {baseline} | " + " | ".join(methods) + " | verdict (Welch, two-sided, α = 0.05) |",
        "|" + "---|" * (len(methods) + 4),
    ]
    has_cpu = any(r.get("cpu_min") is not None for r in rows)
    for key, higher, claim in CLAIMS:
        if key == "wall_min" and has_cpu:
            continue
        base_vals = [r.get(key) for r in groups[baseline]]
        b_mean, b_std = mean_std(base_vals)
        if b_mean is None:
            continue
        decimals = 3 if key in ("nll", "ts_nll_after") else 2
        companion = COMPANIONS.get(key)
        cells, better, worse, level, single = [], [], [], [], []
        for m in methods:
            vals = [r.get(key) for r in groups[m]]
            if all(v is None for v in vals):
                cells.append("-")
                continue
            c = compare(base_vals, vals, higher)
            cell = _cell(c, decimals)
            if companion:
                floor, _ = mean_std([r.get(companion[0]) for r in groups[m]])
                cell += f"; floor {floor:.2f}" if floor is not None else ""
            cells.append(cell)
            (better if c["mark"] == "+" else worse if c["mark"] == "-" else single if c["p"] is None else level).append(m)
        kinds = (("better", better), ("worse", worse), ("not separable", level), ("under 2 runs a side, untested", single))
        verdict = "; ".join(f"{name}: {', '.join(ms)}" for name, ms in kinds if ms)
        base = f"{b_mean:.{decimals}f}" + (f" ± {b_std:.{decimals}f}" if b_std is not None else "")
        base += f" (n={sum(v is not None for v in base_vals)})"
        if companion:
            floor, _ = mean_std([r.get(companion[0]) for r in groups[baseline]])
            base += f"; floor {floor:.2f}" if floor is not None else ""
        lines.append(f"| {claim} | {key} | {base} | " + " | ".join(cells) + f" | {verdict} |")
    notes = [
        f"Each cell: mean of the method minus mean of `{baseline}` over seeds, [95 % Welch interval of the difference]; "
        f"**+** / **-**: significantly better / worse by Welch's two-sided t-test on the per-seed values at α = {ALPHA} "
        "(the same rule in both directions); no mark: not separable from seed noise. With fewer than 2 runs on either "
        "side no spread can be estimated: the difference is shown with its n and not tested. With 3 seeds a side the "
        "test has about 2-4 degrees of freedom: only large, consistent differences are marked."
    ]
    for key, (companion, what) in COMPANIONS.items():
        if any(r.get(companion) is not None for r in rows):
            notes.append(
                f"`{key}`: 'floor' is the {what} (`{companion}`), the mean over the method's runs; "
                "an ECE at or below it cannot be told from perfect calibration."
            )
    return "\n\n".join(notes) + "\n\n" + "\n".join(lines) + "\n"


def curves_markdown(rows: list[dict]) -> str:
    """Markdown tables of the mean occlusion curves per method (the CutMix paper's Figure 4 as numbers);
    empty without occlusion results."""
    groups = group(rows)
    out = []
    modes = (("hole", "centre hole of this size zeroed"), ("border", "everything outside a centred square of this size zeroed"))
    for mode, what in modes:
        have = {m: [r["curves"][mode] for r in g if mode in r.get("curves", {})] for m, g in groups.items()}
        have = {m: c for m, c in have.items() if c}
        if not have:
            continue
        sizes = sorted(next(iter(have.values()))[0], key=float)
        out += [f"Occlusion curve, {mode} ({what}; sizes on the 224 scale; top-1 %, mean over runs):", ""]
        out += ["| method | " + " | ".join(sizes) + " |", "|" + "---|" * (len(sizes) + 1)]
        for m, curves in have.items():
            out.append(f"| {m} | " + " | ".join(f"{statistics.fmean(c[s] for c in curves if s in c):.1f}" for s in sizes) + " |")
        out.append("")
    return "\n".join(out)


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
    p.add_argument("--curves-md", default=None, help="write the occlusion curves (mean per method and size) here")
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
    if args.curves_md:
        Path(args.curves_md).write_text(curves_markdown(rows))
    if args.cams_png and cams_grid(rows, args.cams_png) is None:
        print("no CAM examples found (scripts/evaluate.py --localization)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
