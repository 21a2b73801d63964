"""Evaluate a checkpoint: accuracy, calibration and robustness to common corruptions.

`evaluate_checkpoint` rebuilds the validation data and the model from the
configuration saved inside the checkpoint (plus dotlist overrides), then
reports top-1, top-5, NLL, ECE and Brier, draws a reliability diagram and,
optionally, measures top-1 under every corruption of `mixcut.eval.corruptions` at
severities 1-5 and their mean (the mean corruption accuracy). Results go to
``<out>/<checkpoint stem>.json`` and ``<out>/<checkpoint stem>_reliability.png``.
Single process; `scripts/evaluate.py` is the command line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..checkpoint import load_checkpoint
from ..config import TrainConfig, check
from ..errors import CheckpointError, ConfigError
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt_normalized
from .loop import evaluate_split
from .metrics import METRIC_NAMES
from .reliability import plot_reliability

log = logging.getLogger("mixcut")


def default_out_dir(checkpoint: str | Path) -> Path:
    """``RUN_DIR/eval`` for ``RUN_DIR/checkpoints/NAME.pt``, else ``eval/`` next to the file."""
    path = Path(checkpoint).resolve()
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return run_dir / "eval"


def config_from_checkpoint(ckpt: dict, overrides: Sequence[str] = ()) -> DictConfig:
    """The checkpoint's saved (YAML) training config, typed by the schema, with ``key=value`` overrides applied."""
    if "config" not in ckpt:
        raise CheckpointError("this checkpoint holds no training config; it was not written by mixcut's trainer.")
    bad = [o for o in overrides if "=" not in o or o.startswith(("+", "~"))]
    if bad:
        raise ConfigError(f"overrides must be key=value (dotlist), e.g. trainer.device=cpu; got {bad}.")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(ckpt["config"]))
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as e:
        raise ConfigError(f"cannot apply the checkpoint's config and overrides {list(overrides)}: {e}") from e
    check(cfg)
    return cfg


def _state_dict(ckpt: dict, use_ema: bool) -> dict:
    if not use_ema:
        return ckpt["model"]
    ema = ckpt.get("ema")
    if not ema:
        raise ConfigError("--ema: this checkpoint has no EMA weights (train with trainer.ema=true).")
    # ModelEmaV3 keeps the averaged copy under ``module.``
    return {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")} or ema


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


class EveryKth:
    """The validation images whose position in the (fixed) validation order is a multiple
    of ``k``: a deterministic subset that keeps the class balance of an ordered split."""

    def __init__(self, batches, k: int) -> None:
        self.batches, self.k = batches, k

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        seen = 0
        for x, y in self.batches.epoch(epoch):
            first = (-seen) % self.k  # index in this batch of the next multiple of k
            seen += x.shape[0]
            if first < x.shape[0]:
                yield x[first :: self.k], y[first :: self.k]

    def __len__(self) -> int:
        return len(self.batches)


def evaluate_checkpoint(
    checkpoint: str | Path,
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
    corruptions: bool = False,
    corruption_names: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    use_ema: bool = False,
    seed: int = 0,
    corruption_every: int = 1,
    temperature: bool = False,
    adversarial: bool = False,
    epsilons: Sequence[float] = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255),
    attacks: Sequence[str] = ("fgsm", "pgd"),
    pgd_steps: int = 5,
    adversarial_every: int = 1,
    occlusion: bool = False,
    occlusion_sizes: Sequence[int] | None = None,
    occlusion_every: int = 1,
    ood: bool = False,
    ood_folders: Sequence[str] = (),
    ood_n: int = 1000,
    localization: bool = False,
    boxes: str | Path | None = None,
    box_format: str = "mixcut",
    cam_threshold: float = 0.2,
    cam_method: str = "auto",
    tta: str = "none",
) -> dict:
    """Evaluate ``checkpoint`` on its validation split; write JSON and a reliability PNG; return the results.

    The optional evaluators (temperature scaling, adversarial, occlusion, OOD, localization) add
    their own keys to the result; see `claims_evaluations`."""
    from ..build import resolve_amp, resolve_device
    from ..data import build_data, load_source
    from ..models import create_model
    from ..runtime import distributed as D

    t0 = time.time()
    path = Path(checkpoint)
    ckpt = load_checkpoint(path, map_location="cpu")
    if "model" not in ckpt:
        raise CheckpointError(f"{path} holds no model weights (key 'model').")
    cfg = config_from_checkpoint(ckpt, overrides)
    names = list(corruption_names or CORRUPTIONS)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise ConfigError(f"unknown corruptions {unknown}; choose from: {', '.join(CORRUPTIONS)}.")
    if corruption_every < 1:
        raise ConfigError(f"corruption_every must be >= 1 (1 = every validation image); got {corruption_every}.")
    if any(s not in SEVERITIES for s in severities):
        raise ConfigError(f"severities must be among {SEVERITIES}; got {list(severities)}.")

    device = resolve_device(cfg.trainer.device, D.DistInfo(0, 1, 0))
    amp_dtype = resolve_amp(cfg.trainer.amp, device)
    source = load_source(cfg.data)
    num_classes = cfg.data.num_classes or source.num_classes
    data = build_data(cfg, device, source=source)
    if data.val is None:
        raise ConfigError(f"data={cfg.data.name} has no validation split to evaluate on; set data.val_fraction > 0.")
    model = create_model(cfg.model, num_classes, img_size=cfg.data.img_size)  # as the trainer built it
    model.load_state_dict(_state_dict(ckpt, use_ema))
    model = model.to(device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)

    metrics = evaluate_split(model, data.val, num_classes, device, amp_dtype)
    reliability = metrics.pop("reliability")
    tag = path.stem + ("_ema" if use_ema else "")
    out = Path(out_dir) if out_dir is not None else default_out_dir(path)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{cfg.model.name} / {cfg.data.name} / mix={cfg.mix.name} / seed {cfg.trainer.seed}"
    png = plot_reliability(reliability, out / f"{tag}_reliability.png", title=title)
    result = {
        "checkpoint": str(path.resolve()),
        "weights": "ema" if use_ema else "model",
        "overrides": list(overrides),
        "data": cfg.data.name,
        "model": cfg.model.name,
        "mix": cfg.mix.name,
        "seed": cfg.trainer.seed,
        "epoch": (ckpt.get("state") or {}).get("epoch"),
        "device": str(device),
        "metrics": metrics,
        "reliability": reliability,
        "reliability_png": png.name,
    }
    if tta != "none":  # test-time augmentation, reported beside the plain metrics (mixcut.eval.tta)
        from .tta import TTAModel

        tta_metrics = evaluate_split(TTAModel(model, tta), data.val, num_classes, device, amp_dtype)
        tta_metrics.pop("reliability")
        result.update(tta_top1=tta_metrics["top1"], tta={"mode": tta, **tta_metrics})

    if corruptions:
        val = data.val if corruption_every == 1 else EveryKth(data.val, corruption_every)
        table: dict[str, dict[str, dict]] = {}
        for i, name in enumerate(names):
            table[name] = {}
            for severity in severities:
                stream = CorruptedBatches(
                    val, name, severity, cfg.data.mean, cfg.data.std, seed=seed * 1000 + i * 10 + severity, device=device
                )
                m = evaluate_split(model, stream, num_classes, device, amp_dtype)
                table[name][str(severity)] = {k: m[k] for k in ("top1", "nll", "ece")}
                log.info("corruption %-17s severity %d: top1 %.2f", name, severity, m["top1"])
        by_name = {n: sum(v["top1"] for v in sev.values()) / len(sev) for n, sev in table.items()}
        subset = "" if corruption_every == 1 else f", on every {corruption_every}th validation image"
        result.update(
            corruptions=table,
            corruption_n=m["n"],
            corruption_top1_by_name=by_name,
            corruption_top1_mean=sum(by_name.values()) / len(by_name),
            corruption_protocol=f"mixcut.corruptions: {len(names)} corruptions x severities {list(severities)}, "
            "CIFAR-10-C parameters (Hendrycks & Dietterich, ICLR 2019), generated on the fly" + subset,
        )

    claims = dict(temperature=temperature, adversarial=adversarial, occlusion=occlusion, ood=ood, localization=localization)
    if any(claims.values()):
        from .claims import ClaimOptions, claims_evaluations

        opts = ClaimOptions(
            **claims,
            epsilons=tuple(epsilons),
            attacks=tuple(attacks),
            pgd_steps=pgd_steps,
            adversarial_every=adversarial_every,
            occlusion_sizes=tuple(occlusion_sizes) if occlusion_sizes is not None else None,
            occlusion_every=occlusion_every,
            ood_folders=tuple(ood_folders),
            ood_n=ood_n,
            boxes=boxes,
            box_format=box_format,
            cam_threshold=cam_threshold,
            cam_method=cam_method,
            seed=seed,
        )
        result.update(claims_evaluations(model, cfg, data, source, device, amp_dtype, opts, out, tag, title))

    result["wall_time_s"] = time.time() - t0
    from ..loggers import write_json_atomic

    write_json_atomic(out / f"{tag}.json", result)
    result["json"] = str(out / f"{tag}.json")
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
    if "localization" in result:
        loc = result["localization"]
        lines.append(
            f"localization ({loc['method']}, threshold {loc['threshold']}): Top-1 Loc {loc['top1_loc']:.2f}  "
            f"GT-known Loc {loc['gt_known_loc']:.2f}  (top1 {loc['top1']:.2f}, n {loc['n']})"
        )
    lines.append(f"written: {result['json']} and {result['reliability_png']}")
    return "\n".join(lines)
