"""What a run says to the person watching: its first lines, one line per epoch,
and the final table."""

from __future__ import annotations

import torch

from .eval import METRIC_NAMES


def format_table(rows: dict[str, dict]) -> str:
    """A small fixed-width table: one column per model (model, EMA)."""
    names = list(rows)
    lines = [f"{'metric':<8}" + "".join(f"{n:>12}" for n in names)]
    for key in METRIC_NAMES:
        lines.append(f"{key:<8}" + "".join(f"{rows[n].get(key, float('nan')):>12.4f}" for n in names))
    return "\n".join(lines)


def describe_run(cfg, built, info, device, amp_dtype, run_dir) -> str:
    """The run's first lines: model, data, device, precision, processes, mixer, run directory."""
    t, d = cfg.trainer, cfg.data
    amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]
    params = sum(p.numel() for p in built.model.parameters()) / 1e6
    source = built.data.source
    n_val = len(source.val) if source.val is not None else 0
    return (
        f"mixcut: {cfg.model.name} ({params:.2f}M params) on {d.name} "
        f"({len(source.train)} train / {n_val} val images, {built.num_classes} classes, {d.img_size}px), "
        f"{device} {amp}, {info.world_size} process(es), batch {t.batch_size}, {t.epochs} epochs\n"
        f"mixer: {built.mixer!r}\nrun directory: {run_dir}" + "".join(f"\n{n}" for n in built.notes)
    )


def epoch_line(r: dict, epochs: int) -> str:
    line = f"epoch {r['epoch']:>3}/{epochs}  loss {r['train_loss']:.4f}  lr {r['lr']:.2e}"
    if "val_top1" in r:
        line += (
            f"  val top1 {r['val_top1']:.2f}  top5 {r['val_top5']:.2f}  nll {r['val_nll']:.3f}"
            f"  ece {r['val_ece']:.2f}  brier {r['val_brier']:.3f}"
        )
    if "ema_val_top1" in r:
        line += f"  | ema top1 {r['ema_val_top1']:.2f}"
    line += f"  | {r['train_images_per_sec']:.0f} img/s  {r['train_seconds']:.1f}s"
    if "first_step_seconds" in r:  # compilation and warm-up, left out of img/s
        line += f" (first step {r['first_step_seconds']:.1f}s)"
    return line


def metric_rows(summary: dict) -> dict[str, dict]:
    """The final table's columns: the model, and the EMA when there is one."""
    rows = {"model": {k: summary[k] for k in METRIC_NAMES if summary.get(k) is not None}}
    if "ema" in summary:
        rows["ema"] = summary["ema"]
    return rows
