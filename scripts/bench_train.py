"""Training throughput of mixcut's data paths against the compute-only ceiling.

    # CIFAR-scale, CPU (the numbers in docs/throughput.md)
    python scripts/bench_train.py --data ../shared/data/cifar10-jpeg --model resnet18 --img-size 32 --batch 128 \\
        --steps 30 --warmup 5 --workers 2 --amp none --device cpu --json bench_cpu.json

    # GPU: prepare JPEGs upscaled to 224 px once (16 processes), then resnet50 with bf16 and channels-last
    python scripts/bench_train.py --data ../shared/data/cifar10-jpeg --make-upscaled-folder /tmp/c10-224 --upscale 224 \\
        --limit 20000 --workers 16
    python scripts/bench_train.py --data /tmp/c10-224 --model resnet50 --img-size 224 --batch 256 --workers 16 \\
        --amp bf16 --channels-last --device cuda --json bench_gpu.json          # add --compile for torch.compile

    # a train/validation split of symlinks (timm's train.py wants train/ and validation/)
    python scripts/bench_train.py --data ../shared/data/cifar10-jpeg --make-split-folder /tmp/c10-split --val-per-class 500

For each data path and mixing on (the DeiT switch: Mixup 0.8 / CutMix 1.0) or
off, the script builds what the trainer builds (`mixcut.build.build`) from the composed Hydra config
(the same data streams, model, optimizer, scheduler, loss and mixer that
``python train.py`` uses), runs ``--warmup`` steps of `train_one_epoch`, then
times ``--steps`` more (one call, wall clock, synchronised on CUDA):

* ``folder``: ``data.cache=none``, images decoded and augmented by ``--workers``
  DataLoader workers (uint8 batches, normalised on the device);
* ``cache``: ``data.cache=device``, the decoded split held on the device and
  augmented there in batches (the cache file is built on first use: see
  ``--cache-dir``);
* ``shards``: ``data=shards``, the same images in WebDataset tar shards
  (``--shards DIR``, written there from ``--data`` by scripts/make_shards.py
  on first use), read sequentially and decoded by ``--workers`` workers;
* ``synthetic``: one normalised batch already on the device, fed again every
  step: the compute-only ceiling (forward, backward, optimizer, mixing).

It also times the data path alone (batches only, no training) and the mixer
alone (median of calls on a real batch), and prints each path's share of the
ceiling with the same mixing setting and the mixer's share of the step time.
``--repeats R`` runs every case R times in turn and keeps the fastest, which
helps on a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PATHS = ("folder", "cache", "shards", "synthetic")
MIXES = ("deit", "none")


@dataclass
class Result:
    path: str
    mix: str
    img_s: float
    ms_step: float
    data_img_s: float | None = None  # the data path alone
    mixer_ms: float | None = None  # one mixer call on a batch (median)
    pct_ceiling: float | None = None
    mixer_pct_step: float | None = None
    mix_delta_pct: float | None = None  # step time with mixing vs without, same path
    runs: list[float] = field(default_factory=list)


# ------------------------------------------------------------------ config
def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mixcut.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def aug_overrides(aug: str, img_size: int) -> list[str]:
    if aug == "auto":
        aug = "cifar" if img_size <= 64 else "rrc"
    if aug == "rrc":  # random resized crop + flip: what both paths can do (no per-image colour ops)
        return ["aug=imagenet", "aug.color_jitter=null"]
    return [f"aug={aug}"]


def overrides_for(args, path: str, mix: str) -> list[str]:
    o = [
        f"model.name={args.model}",
        f"mix={mix}",
        f"trainer.batch_size={args.batch}",
        f"trainer.device={args.device}",
        f"trainer.amp={args.amp}",
        f"trainer.channels_last={str(args.channels_last).lower()}",
        f"trainer.compile={str(args.compile).lower()}",
        "trainer.progress=false",
        "trainer.epochs=1",
        f"optim.name={args.optim}",
        f"data.img_size={args.img_size}",
        f"data.num_workers={args.workers}",
        "data.val_fraction=0",
    ]
    o += aug_overrides(args.aug, args.img_size)
    if args.threads:
        o.append(f"trainer.threads={args.threads}")
    if path == "synthetic":
        o += ["data=synthetic", f"data.train_size={args.batch}", "data.val_size=0", f"data.num_classes={args.num_classes}"]
    elif path == "shards":
        pattern = json.loads((args.shards / "index.json").read_text())["splits"]["train"]["pattern"]
        o += ["data=shards", f"data.train_shards='{args.shards / pattern}'", "data.val_shards=null"]
    else:
        o += ["data=folder", f"data.root={args.data}", f"data.cache={'device' if path == 'cache' else 'none'}"]
        if args.cache_dir:
            o.append(f"data.cache_dir={args.cache_dir}")
    return o + list(args.override)


# ----------------------------------------------------------------- streams
class FixedBatch:
    """One normalised batch on the device, served ``limit`` times per epoch (the compute-only ceiling)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.limit = x, y, 1

    def __len__(self) -> int:
        return self.limit

    def epoch(self, epoch: int, start: int = 0):
        for _ in range(start, self.limit):
            yield self.x, self.y

    def end_epoch_report(self) -> dict:
        return {}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_run(cfg):
    """What the trainer builds from ``cfg`` (`mixcut.build.build`), and the device."""
    from mixcut.build import build
    from mixcut.runtime import distributed as D
    from mixcut.runtime.policy import resolve_amp, resolve_device

    info = D.env_info()
    device = resolve_device(cfg.trainer.device, info)
    return build(cfg, info, device, resolve_amp(cfg.trainer.amp, device)), device


def time_data(stream, steps: int, device: torch.device) -> float:
    """Images per second the batch stream delivers on its own (epoch 2, ``steps`` batches)."""
    stream.limit = steps
    n = 0
    sync(device)
    start = time.perf_counter()
    for x, _ in stream.epoch(2):
        n += x.shape[0]
    sync(device)
    return n / (time.perf_counter() - start)


def time_mixer(mixer, x: torch.Tensor, y: torch.Tensor, device: torch.device, calls: int = 30) -> float:
    work = x.clone()
    times = []
    for i in range(calls + 5):
        sync(device)
        start = time.perf_counter()
        mixer(work, y)
        sync(device)
        if i >= 5:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(args, path: str, mix: str) -> tuple[float, float | None, float | None]:
    """(training img/s, data-only img/s, mixer ms) for one case."""
    from mixcut.engine import TrainState, train_one_epoch

    cfg = compose(overrides_for(args, path, mix))
    built, device = build_run(cfg)
    parts = built.parts
    stream = built.data.train
    if path == "synthetic":
        x, y = next(iter(stream.epoch(0)))
        stream = FixedBatch(x.clone(), y.clone())
    needed = args.warmup + args.steps
    if path != "synthetic" and len(stream) < needed:
        raise SystemExit(f"{args.data} gives {len(stream)} batches of {args.batch}; --warmup + --steps needs {needed}.")
    data_img_s = None
    if not args.no_data_timing and path != "synthetic":
        data_img_s = time_data(stream, min(args.steps, len(stream)), device)
    if args.data_only:  # the data path alone: no training steps, no mixer timing
        return float("nan"), data_img_s, None
    if args.warmup > 0:  # workers, allocator, compile, caches
        stream.limit = args.warmup
        train_one_epoch(parts, TrainState(epoch=0), stream)
    stream.limit = args.steps
    sync(device)
    start = time.perf_counter()
    stats = train_one_epoch(parts, TrainState(epoch=1), stream)
    sync(device)
    img_s = stats["train_images"] / (time.perf_counter() - start)
    mixer_ms = None
    if mix != "none":
        x, y = next(iter(stream.epoch(3)))
        mixer_ms = time_mixer(parts.mixer, x, y, device)
    del built, parts, stream
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return img_s, data_img_s, mixer_ms


# ------------------------------------------------------------------ report
def fill_ratios(results: list[Result]) -> None:
    by = {(r.path, r.mix): r for r in results}
    for r in results:
        ceiling = by.get(("synthetic", r.mix))
        if ceiling is not None:
            r.pct_ceiling = 100.0 * r.img_s / ceiling.img_s
        if r.mixer_ms is not None:
            r.mixer_pct_step = 100.0 * r.mixer_ms / r.ms_step
        off = by.get((r.path, "none"))
        if r.mix != "none" and off is not None:
            r.mix_delta_pct = 100.0 * (r.ms_step - off.ms_step) / r.ms_step


COLUMNS = (  # header, width, attribute, decimals
    ("img/s", 9, "img_s", 0),
    ("ms/step", 9, "ms_step", 1),
    ("% ceiling", 11, "pct_ceiling", 1),
    ("data img/s", 12, "data_img_s", 0),
    ("mixer ms", 10, "mixer_ms", 2),
    ("mixer %", 9, "mixer_pct_step", 2),
    ("mix Δ %", 9, "mix_delta_pct", 1),
)


def table(results: list[Result]) -> str:
    head = f"{'path':<10}{'mix':<6}" + "".join(f"{name:>{w}}" for name, w, _, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        cells = []
        for _, w, attr, dec in COLUMNS:
            v = getattr(r, attr)
            cells.append(f"{v:>{w}.{dec}f}" if v is not None else f"{'-':>{w}}")
        lines.append(f"{r.path:<10}{r.mix:<6}" + "".join(cells))
    lines.append(
        "% ceiling: img/s over the synthetic path's with the same mixing; mixer %: one mixer call (median) "
        "over the step time;\nmix Δ %: step time with mixing minus without, over the step time "
        "(noisy on a shared machine)."
    )
    return "\n".join(lines)


def environment(args) -> dict:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }
    try:
        import timm

        env["timm"] = timm.__version__
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.processor())
    except OSError:
        env["cpu"] = platform.processor()
    if args.device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    try:
        env["load_avg"] = os.getloadavg()
    except OSError:
        pass
    return env


# ----------------------------------------------------------- data helpers
def _class_files(data: Path, per_class: int | None) -> list[tuple[str, list[Path]]]:
    train = data / "train"
    if not train.is_dir():
        raise SystemExit(f"{train} does not exist (expected DATA/train/<class>/*.jpg)")
    from mixcut.data.folder import IMG_EXTENSIONS

    out = []
    for cls in sorted(p for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in cls.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        out.append((cls.name, files[:per_class] if per_class else files))
    return out


def _upscale_one(job) -> None:
    from PIL import Image

    src, dst, size = job
    with Image.open(src) as img:
        img.convert("RGB").resize((size, size), Image.BICUBIC).save(dst, quality=90)


def make_upscaled_folder(data: Path, out: Path, size: int, limit: int | None, workers: int) -> None:
    """``out/train/<class>/*.jpg``: the first ``limit / classes`` images of every class, resized to ``size`` px."""
    from multiprocessing import Pool

    classes = _class_files(data, None)
    per_class = (limit // len(classes)) if limit else None
    jobs = []
    for name, files in classes:
        (out / "train" / name).mkdir(parents=True, exist_ok=True)
        jobs += [(str(f), str(out / "train" / name / (f.stem + ".jpg")), size) for f in files[:per_class]]
    start = time.perf_counter()
    with Pool(max(1, workers)) as pool:
        pool.map(_upscale_one, jobs, chunksize=64)
    print(f"wrote {len(jobs)} images of {size}x{size} px to {out}/train in {time.perf_counter() - start:.1f}s")


def make_split_folder(data: Path, out: Path, val_per_class: int, limit: int | None) -> None:
    """Symlinks: the last ``val_per_class`` images of every class in ``out/validation`` (also reachable as
    ``out/val``, mixcut's name), the others (at most ``limit / classes`` per class) in ``out/train``."""
    classes = _class_files(data, None)
    per_class = (limit // len(classes)) if limit else None
    n_train = n_val = 0
    for name, files in classes:
        val, train = files[len(files) - val_per_class :], files[: len(files) - val_per_class][:per_class]
        for split, chosen in (("train", train), ("validation", val)):
            d = out / split / name
            d.mkdir(parents=True, exist_ok=True)
            for f in chosen:
                link = d / f.name
                if not link.exists():
                    link.symlink_to(f.resolve())
        n_train, n_val = n_train + len(train), n_val + len(val)
    if not (out / "val").exists():
        (out / "val").symlink_to("validation")
    print(f"{out}: {n_train} train / {n_val} validation images (symlinks; val -> validation)")


def make_shards_from(args) -> None:
    """Shards of every image in ``--data`` (no held-out split, like the folder path here), original bytes."""
    if args.data is None:
        raise SystemExit("--data DIR is needed to write the shards")
    cmd = [sys.executable, str(REPO / "scripts" / "make_shards.py"), str(args.data), str(args.shards)]
    cmd += ["--shard-size", str(args.shard_size), "--val-fraction", "0", "--workers", str(max(1, args.workers))]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"wrote shards to {args.shards} in {time.perf_counter() - start:.1f}s")


# ------------------------------------------- framework overhead (--overhead)
# The recipe's step time through mixcut (build + engine: data stream, mixer, loss, non-finite
# check, optimizer, scheduler, averaging) against a bare loop over the same network, weights and
# decoded images written here in plain torch, as a user would without a framework.
def recipe_overrides(args) -> list[str]:
    o = [f"experiment={args.recipe}", f"trainer.batch_size={args.batch}", f"trainer.device={args.device}"]
    o += ["trainer.progress=false", "data.cache=device"]
    if args.threads:
        o.append(f"trainer.threads={args.threads}")
    if args.data is None:  # random images: the step time does not depend on the pixels
        o += ["data=synthetic", "data.img_size=32", f"data.train_size={args.batch * (args.warmup + args.steps)}"]
    else:
        o.append(f"data.root={args.data}")
        if args.cache_dir:
            o.append(f"data.cache_dir={args.cache_dir}")
    return o + list(args.override)


def time_mixcut(built, device, warmup: int, steps: int) -> float:
    """Seconds per step of mixcut's engine on the recipe's own batch stream."""
    from mixcut.engine import TrainState, train_one_epoch

    stream = built.data.train
    stream.limit = warmup
    train_one_epoch(built.parts, TrainState(epoch=0), stream)
    stream.limit = steps
    sync(device)
    start = time.perf_counter()
    train_one_epoch(built.parts, TrainState(epoch=1), stream)
    sync(device)
    return (time.perf_counter() - start) / steps


def time_bare(cfg, built, device, warmup: int, steps: int) -> float:
    """Seconds per step of a plain torch loop: the same network and decoded images, the recipe's
    augmentation, loss, Nesterov SGD groups, per-step lr and lookahead, no framework."""
    import timm
    import torch.nn.functional as F

    from mixcut.runtime.policy import resolve_amp

    t, o = cfg.trainer, cfg.optim
    amp = resolve_amp(t.amp, device)  # the recipe's precision: bf16 autocast where trainer.amp resolves to it
    model = timm.create_model(cfg.model.name, num_classes=built.num_classes).to(device)
    model.load_state_dict(built.model.state_dict())
    fmt = torch.channels_last if t.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    images, labels = built.data.train.images, built.data.train.labels  # uint8 N x 3 x 32 x 32 on the device
    mean = torch.tensor(cfg.data.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(cfg.data.std, device=device).view(1, 3, 1, 1) * 255
    batch, pad = t.batch_size, cfg.aug.padding
    lr = o.lr * (batch / 1024) / (1 + 1 / (1 - o.momentum))
    norm = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    groups = [
        dict(params=[p for p in model.parameters() if id(p) in norm], scale=o.norm_bias_lr_scale),
        dict(params=[p for p in model.parameters() if id(p) not in norm and p.requires_grad], scale=1.0),
    ]
    for g in groups:
        g["weight_decay"] = o.weight_decay / (o.lr * g["scale"])
    opt = torch.optim.SGD(groups, lr=lr, momentum=o.momentum, nesterov=True)
    avg = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    gen = torch.Generator(device=device).manual_seed(0)
    rows = torch.arange(32, device=device).view(1, 1, 32, 1)
    cols = torch.arange(32, device=device).view(1, 1, 1, 32)
    total = warmup + steps
    for step in range(total):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        idx = torch.randint(0, len(images), (batch,), generator=gen, device=device)
        x = F.pad((images[idx].float() - mean) / std, (pad,) * 4, mode="reflect")
        dy, dx = (torch.randint(0, 2 * pad + 1, (2, batch, 1, 1, 1), generator=gen, device=device)).unbind(0)
        flip = (torch.rand(batch, 1, 1, 1, generator=gen, device=device) < 0.5) ^ bool(step % 2)
        c = torch.where(flip, 31 - cols, cols) + dx
        flat = ((rows + dy) * (32 + 2 * pad) + c).view(batch, 1, -1).expand(-1, 3, -1)
        x = x.flatten(2).gather(2, flat).view(batch, 3, 32, 32).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels[idx], label_smoothing=cfg.loss.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        frac = step / total
        for g in opt.param_groups:  # any per-step lr shape costs the same: a linear one here
            g["lr"] = lr * g["scale"] * (1 - 0.9 * frac)
        opt.step()
        if (step + 1) % t.lookahead_every == 0:
            with torch.no_grad():
                state = model.state_dict()
                for k, a in avg.items():
                    a.lerp_(state[k], 0.5)
                    state[k].copy_(a)
    sync(device)
    return (time.perf_counter() - start) / steps


# Which kind of work an op is, by its name in torch.profiler (CPU op names; on CUDA the CPU side only).
OP_KINDS = (
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("convolution", "conv2d")),
    ("batch norm", ("batch_norm",)),
    ("GELU", ("gelu",)),
    ("max-pool", ("max_pool",)),
    ("linear / matmul", ("addmm", "matmul", "mm", "linear")),
    ("dtype casts and copies", ("_to_copy", "copy_", "contiguous", "clone")),
    ("optimizer, averaging", ("_foreach", "sgd", "lerp", "add_", "mul_")),
)


def op_kind(name: str) -> str:
    low = name.lower()
    for kind, keys in OP_KINDS:
        if any(k in low for k in keys):
            return kind
    return "everything else"


def profile_mixcut(built, device, steps: int) -> tuple[dict[str, float], float]:
    """Where a step's time goes: torch.profiler self CPU time per kind of work (ms per step) over
    ``steps`` steps of mixcut's engine, and the wall time per step of the profiled run."""
    from torch.profiler import ProfilerActivity, profile

    from mixcut.engine import TrainState, train_one_epoch

    stream = built.data.train
    stream.limit = steps
    kinds: dict[str, float] = {kind: 0.0 for kind, _ in OP_KINDS}
    kinds["everything else"] = 0.0
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_one_epoch(built.parts, TrainState(epoch=2), stream)
    wall = (time.perf_counter() - start) / steps
    for event in prof.key_averages():
        kinds[op_kind(event.key)] += event.self_cpu_time_total / 1e3 / steps
    return kinds, 1e3 * wall


def profile_table(kinds: dict[str, float], wall_ms: float) -> str:
    total = sum(kinds.values())
    rows = [f"| {kind} | {ms:.1f} | {100 * ms / total:.1f} |" for kind, ms in sorted(kinds.items(), key=lambda kv: -kv[1])]
    return "\n".join(
        [
            "| kind of work (torch.profiler self CPU time) | ms/step | share (%) |",
            "|---|---|---|",
            *rows,
            f"| all ops | {total:.1f} | 100 |",
            f"| wall time of the profiled steps | {wall_ms:.1f} | |",
        ]
    )


def overhead_main(args) -> int:
    """``--overhead``: mixcut's step time on a recipe against the bare loop, best of ``--repeats``."""
    cfg = compose(recipe_overrides(args))
    built, device = build_run(cfg)
    mix, bare = [], []
    for rep in range(args.repeats):
        mix.append(time_mixcut(built, device, args.warmup, args.steps))
        bare.append(time_bare(cfg, built, device, args.warmup, args.steps))
        print(
            f"[{rep + 1}/{args.repeats}] mixcut {1e3 * mix[-1]:.1f} ms/step, bare loop {1e3 * bare[-1]:.1f} ms/step", flush=True
        )
    m, b = min(mix), min(bare)
    print(
        f"\n{args.recipe}: batch {args.batch}, {args.steps} steps after {args.warmup} warm-up, device {args.device}, "
        f"threads {torch.get_num_threads()}, best of {args.repeats}\n"
        f"mixcut {1e3 * m:.1f} ms/step  bare loop {1e3 * b:.1f} ms/step  framework overhead {100 * (m - b) / b:+.1f} %"
    )
    profile = None
    if args.profile:
        kinds, wall_ms = profile_mixcut(built, device, args.steps)
        profile = {"ms_per_step": kinds, "wall_ms_per_step": wall_ms}
        head = f"\nwhere mixcut's step goes ({args.steps} profiled steps, precision {cfg.trainer.amp}):\n"
        print(head + profile_table(kinds, wall_ms))
    if args.json:
        payload = {
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "environment": environment(args),
            "overhead": {"mixcut_s_step": mix, "bare_s_step": bare, "overhead_pct": 100 * (m - b) / b},
            "profile": profile,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


# -------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="image folder with train/<class>/* (folder and cache paths)")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (folder path; cache decoding)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in the training process")
    p.add_argument("--amp", default="none", choices=("none", "bf16", "fp16", "auto"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--optim", default="sgd")
    p.add_argument(
        "--aug", default="auto", help="auto (cifar up to 64 px, else rrc), rrc, or an aug group name (cifar, none, ...)"
    )
    p.add_argument("--num-classes", type=int, default=10, help="synthetic path")
    p.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {','.join(PATHS)}")
    p.add_argument("--mixes", default=",".join(MIXES), help="comma-separated mix groups (deit = Mixup/CutMix switch, none)")
    p.add_argument("--repeats", type=int, default=1, help="run every case this many times in turn, keep the fastest")
    p.add_argument("--cache-dir", default=None, help="data.cache_dir (default: beside the data, else ~/.cache/mixcut)")
    p.add_argument("--no-data-timing", action="store_true", help="skip timing the data paths alone")
    p.add_argument("--data-only", action="store_true", help="time the data paths alone (no training steps)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    p.add_argument("--shards", type=Path, default=None, metavar="DIR", help="shards path: make_shards.py output (made if absent)")
    p.add_argument("--shard-size", type=int, default=5000, help="images per shard when --shards is written here")
    p.add_argument("--make-upscaled-folder", type=Path, default=None, metavar="DIR")
    p.add_argument("--upscale", type=int, default=224)
    p.add_argument("--limit", type=int, default=None, help="images in the upscaled/split folder (class-balanced)")
    p.add_argument("--make-split-folder", type=Path, default=None, metavar="DIR")
    p.add_argument("--val-per-class", type=int, default=500)
    p.add_argument("--overhead", action="store_true", help="framework overhead: --recipe through mixcut vs a bare loop")
    p.add_argument("--recipe", default="cifar10_airbench94", help="experiment of --overhead (default cifar10_airbench94)")
    p.add_argument("--profile", action="store_true", help="with --overhead: where mixcut's step time goes, by kind of op")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.make_upscaled_folder or args.make_split_folder:
        if args.data is None:
            raise SystemExit("--data DIR is needed (the source image folder)")
        if args.make_upscaled_folder:
            make_upscaled_folder(args.data, args.make_upscaled_folder, args.upscale, args.limit, args.workers)
        if args.make_split_folder:
            make_split_folder(args.data, args.make_split_folder, args.val_per_class, args.limit)
        return 0
    if args.overhead:
        return overhead_main(args)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("mixcut", "mixcut.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("mixcut.data.cache").setLevel(logging.INFO)  # decode time, hit or miss

    paths = [p for p in args.paths.split(",") if p]
    mixes = [m for m in args.mixes.split(",") if m]
    if any(p not in PATHS for p in paths):
        raise SystemExit(f"--paths: choose from {', '.join(PATHS)}")
    if {"folder", "cache"} & set(paths) and args.data is None:
        raise SystemExit("--data DIR is needed for the folder and cache paths (or --paths synthetic)")
    if args.data is not None:
        args.data = args.data.resolve()
    if "shards" in paths:
        if args.shards is None:
            raise SystemExit("--shards DIR is needed for the shards path (written from --data if it holds no index.json)")
        args.shards = args.shards.resolve()
        if not (args.shards / "index.json").exists():
            make_shards_from(args)
    runs: dict[tuple[str, str], list[tuple[float, float | None, float | None]]] = {}
    order = [(p, m) for p in ("synthetic", "cache", "folder", "shards") if p in paths for m in mixes]
    for rep in range(args.repeats):
        for path, mix in order:
            img_s, data_img_s, mixer_ms = measure(args, path, mix)
            runs.setdefault((path, mix), []).append((img_s, data_img_s, mixer_ms))
            print(
                f"[{rep + 1}/{args.repeats}] {path:<9} mix={mix:<5} {img_s:8.1f} img/s"
                + (f"  data alone {data_img_s:8.0f} img/s" if data_img_s else "")
                + (f"  mixer {mixer_ms:.2f} ms" if mixer_ms is not None else ""),
                flush=True,
            )
    results = []
    for (path, mix), rs in runs.items():
        best = max(rs, key=lambda r: r[0])
        data_rates = [r[1] for r in rs if r[1] is not None]
        mixer = [r[2] for r in rs if r[2] is not None]
        results.append(
            Result(
                path,
                mix,
                best[0],
                1e3 * args.batch / best[0],
                max(data_rates) if data_rates else None,
                min(mixer) if mixer else None,
                runs=[r[0] for r in rs],
            )
        )
    fill_ratios(results)
    text = table(results)
    settings = (
        f"{args.model} {args.img_size}px batch {args.batch}, {args.steps} steps after {args.warmup} warm-up, "
        f"amp {args.amp}, channels_last {args.channels_last}, compile {args.compile}, {args.workers} workers, "
        f"device {args.device}, best of {args.repeats}"
    )
    print("\n" + settings + "\n" + text)
    if args.json:
        payload = {
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "environment": environment(args),
            "results": [asdict(r) for r in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
