"""Time the mixers against the memory-bound floors, timm and torchvision, and against one training step.

    python scripts/bench_mix.py                                  # 128x3x224x224, float32 and uint8, CPU (+ CUDA if present)
    python scripts/bench_mix.py --batch 32 --size 128 --repeats 3
    python scripts/bench_mix.py --device cuda --json bench.json

Every method gets the same batch. Methods that write into their input (ours
with ``inplace=True``, as the trainer calls them, and timm's ``Mixup``) get a
fresh copy before each timed call, outside the timed region. The median of
``--repeats`` calls after ``--warmup`` calls is reported, with its ratio to
timm's ``Mixup`` in the same mode (the counterpart: Mixup-only, CutMix-only or
the switch; other mixers are compared with timm's switch; where timm cannot
run, integer batches in batch mode, with our own float32 time for the same
mixer and mode), to the plain copy of
the batch, and its share of one training step (forward, backward, SGD step) of
``--step-model`` at the same batch and image size, measured in the same run.

Our mixers come from `mixcut.mix.MIXERS`, so variants registered later show up
here; mixers that mix inside the model (a ``model_context``, e.g. Manifold
Mixup) or that need options without defaults are listed as skipped. TransMix and
RecursiveMix mix pixels and then work after the forward pass: their mixer rows time
the pixel side (compare with ``cutmix``), and two more rows time the rest (the
class-token attention row of a DeiT-S block; RecursiveMix's ROI-align and head
pass with backward on a ResNet-50 feature map).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixcut.mix import MIXERS, MODES, Mixer, create_mixer  # noqa: E402

# timm's Mixup flavour that matches each of ours; others are compared with the switch
TIMM_COUNTERPART = {"mixup": "mixup", "cutmix": "cutmix", "deit": "switch"}
TIMM_KINDS = {"mixup": (1.0, 0.0), "cutmix": (0.0, 1.0), "switch": (0.8, 1.0)}


@dataclass
class Row:
    method: str
    mode: str
    dtype: str
    device: str
    ms: float | None  # None: not available (raised)
    vs_timm: float | None = None
    vs_copy: float | None = None
    pct_step: float | None = None
    note: str = ""


# ------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(
    call: Callable[[torch.Tensor], object], src: torch.Tensor, work: torch.Tensor, fresh: bool, warmup: int, repeats: int
) -> float:
    """Median wall time of ``call(work)``; ``work`` is refilled from ``src`` before each call when ``fresh``."""
    times = []
    for i in range(warmup + repeats):
        if fresh:
            work.copy_(src)
        sync(src.device)
        start = time.perf_counter()
        call(work)
        sync(src.device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def try_time(*args, **kwargs) -> tuple[float | None, str]:
    try:
        return median_ms(*args, **kwargs), ""
    except Exception as e:  # a method that does not support this dtype/mode is reported as n/a
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"


# ------------------------------------------------------------------ methods
def our_mixers(num_classes: int) -> tuple[list[str], dict[str, str]]:
    """Registered pixel mixers, and the reason each other one is skipped."""
    names, skipped = [], {}
    for name in MIXERS:
        try:
            mixer = create_mixer(name, num_classes=num_classes)
        except Exception as e:
            skipped[name] = f"cannot be built with default options ({type(e).__name__}: {e})"
            continue
        inside = type(mixer).model_context is not Mixer.model_context
        if inside and type(mixer).after_forward is Mixer.after_forward:
            skipped[name] = "mixes inside the model (needs a model), not the pixels"
            continue  # TransMix and RecursiveMix mix pixels too: their rows time that side, `model_side` the rest
        names.append(name)
    return names, skipped


def bench_ours(name, mode, x, y, work, args, num_classes) -> tuple[float | None, str]:
    try:
        mixer = create_mixer(name, mode=mode, num_classes=num_classes, label_smoothing=0.1, inplace=True, seed=0)
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"
    return try_time(lambda t: mixer(t, y), x, work, True, args.warmup, args.repeats)


def bench_timm(kind, mode, x, y, work, args, num_classes) -> tuple[float | None, str]:
    try:
        from timm.data import Mixup as TimmMixup
    except ImportError:
        return None, "timm not installed"
    mixup_alpha, cutmix_alpha = TIMM_KINDS[kind]
    mixer = TimmMixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, mode=mode, label_smoothing=0.1, num_classes=num_classes)
    return try_time(lambda t: mixer(t, y), x, work, True, args.warmup, args.repeats)


def bench_torchvision(kind, x, y, work, args, num_classes) -> tuple[float | None, str]:
    try:
        from torchvision.transforms import v2
    except ImportError:
        return None, "torchvision not installed"
    transform = (v2.MixUp if kind == "mixup" else v2.CutMix)(alpha=1.0, num_classes=num_classes)
    return try_time(lambda t: transform(t, y), x, work, False, args.warmup, args.repeats)


# ---------------------------------------------- model side of TransMix, RecursiveMix
def bench_model_side(args, device: torch.device) -> list[tuple[str, tuple[float | None, str]]]:
    """What TransMix and RecursiveMix add after the forward pass, at ``--batch`` and ``--size``: the class-token
    attention row of a DeiT-S last block (384 wide, 6 heads, 16-pixel patches), and RecursiveMix's ROI-align
    plus head pass with its backward on a ResNet-50 final feature map (2048 x size/32 x size/32)."""
    from timm.layers import Attention

    from mixcut.mix.recursivemix import roi_features
    from mixcut.mix.transmix import class_attention

    out = []
    tokens = torch.randn(args.batch, (args.size // 16) ** 2 + 1, 384, device=device)
    attn = Attention(384, num_heads=6, qkv_bias=True).to(device)
    row = try_time(lambda _: class_attention(attn, tokens, 1), tokens, None, False, args.warmup, args.repeats)
    out.append(("transmix attention row", row))
    side = max(args.size // 32, 1)
    feats = torch.randn(args.batch, 2048, side, side, device=device, requires_grad=True)
    head = torch.nn.Linear(2048, args.num_classes).to(device)
    boxes = torch.tensor([[args.size // 4, args.size // 2, args.size // 4, args.size // 2]], device=device).expand(args.batch, 4)
    wanted = torch.softmax(torch.randn(args.batch, args.num_classes, device=device), 1)

    def consistency(_):
        roi, _ = roi_features(feats, boxes, args.size, args.size, 2048)
        loss = -(wanted * head(roi).log_softmax(1)).sum(1).mean()
        loss.backward()

    out.append(("recursivemix ROI+head fwd/bwd", try_time(consistency, feats, None, False, args.warmup, args.repeats)))
    return out


# --------------------------------------------------------------- train step
def bench_step(args, device: torch.device, num_classes: int) -> tuple[float | None, str]:
    """Median ms of one train step of ``--step-model`` for ``--batch`` images (scaled from ``--step-batch``)."""
    import timm

    step_batch = args.step_batch or (8 if device.type == "cpu" else args.batch)
    step_batch = min(step_batch, args.batch)
    if device.type == "cpu":
        amp = torch.bfloat16 if torch.cpu._is_avx512_bf16_supported() else None
        precision = "bf16 autocast (AVX512-BF16)" if amp else "fp32 (no AVX512-BF16 on this CPU)"
    else:
        amp, precision = torch.bfloat16, "bf16 autocast"
    model = timm.create_model(args.step_model, num_classes=num_classes).to(device).to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(step_batch, args.channels, args.size, args.size, device=device).contiguous(memory_format=torch.channels_last)
    target = torch.softmax(torch.randn(step_batch, num_classes, device=device), 1)

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = torch.sum(-target * torch.log_softmax(model(x).float(), 1), 1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = []
    for i in range(args.step_warmup + args.step_repeats):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        if i >= args.step_warmup:
            times.append((time.perf_counter() - start) * 1e3)
    ms = statistics.median(times) * args.batch / step_batch
    scaled = f", measured at batch {step_batch} and scaled linearly per image to {args.batch}" if step_batch != args.batch else ""
    info = f"{args.step_model} train step (fwd+bwd+SGD) on {device}, {precision}{scaled}: {ms:.1f} ms per {args.batch} images"
    return ms, info


# ----------------------------------------------------------------------- run
def make_batch(dtype: torch.dtype, args, device: torch.device, num_classes: int):
    g = torch.Generator().manual_seed(0)
    shape = (args.batch, args.channels, args.size, args.size)
    if dtype == torch.uint8:
        x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    else:
        x = torch.rand(shape, generator=g).to(dtype)
    y = torch.randint(0, num_classes, (args.batch,), generator=g)
    return x.to(device), y.to(device)


def bench_dtype(dtype_name: str, device: torch.device, args, names: list[str]) -> list[Row]:
    """All methods on one batch of ``dtype_name`` images."""
    num_classes, dev = args.num_classes, str(device)
    x, y = make_batch(getattr(torch, dtype_name), args, device, num_classes)
    work = torch.empty_like(x)
    rows: list[Row] = []

    def add(method, mode, result):
        ms, err = result
        rows.append(Row(method, mode, dtype_name, dev, ms, note=err))
        shown = "n/a" if ms is None else f"{ms:.2f} ms"
        print(f"  {dtype_name:8s} {method:22s} {mode:6s} {shown}", flush=True)

    add("copy_ (preallocated)", "-", try_time(lambda t: t.copy_(x), x, work, False, args.warmup, args.repeats))
    add("x.clone()", "-", try_time(lambda t: x.clone(), x, work, False, args.warmup, args.repeats))
    for mode in MODES:
        for kind in TIMM_KINDS:
            add(f"timm Mixup[{kind}]", mode, bench_timm(kind, mode, x, y, work, args, num_classes))
        for name in names:
            add(name, mode, bench_ours(name, mode, x, y, work, args, num_classes))
    for kind, method in (("mixup", "torchvision v2.MixUp"), ("cutmix", "torchvision v2.CutMix")):
        add(method, "batch", bench_torchvision(kind, x, y, work, args, num_classes))
    if dtype_name == args.dtypes[0] and {"transmix", "recursivemix"} & set(names):
        for method, result in bench_model_side(args, device):  # after the forward pass; the pixel rows above
            add(method, "-", result)
    return rows


def add_ratios(rows: list[Row], step_ms: float | None) -> None:
    """Fill in the ratios to timm's same mode and to the copy, and the share of the step."""
    by_key = {(r.method, r.mode, r.dtype, r.device): r.ms for r in rows}
    for r in rows:
        if r.ms is None:
            continue
        copy_ms = by_key.get(("copy_ (preallocated)", "-", r.dtype, r.device))
        if copy_ms:
            r.vs_copy = r.ms / copy_ms
        if step_ms:
            r.pct_step = 100.0 * r.ms / step_ms
        if r.mode in MODES and not r.method.startswith("timm"):
            if r.method.startswith("torchvision"):
                kind = "mixup" if "MixUp" in r.method else "cutmix"
            else:
                kind = TIMM_COUNTERPART.get(r.method, "switch")
            ref = by_key.get((f"timm Mixup[{kind}]", r.mode, r.dtype, r.device))
            if ref:
                r.vs_timm = r.ms / ref
            if not r.note:
                r.note = f"vs timm[{kind}]"
            # timm cannot blend an integer batch in batch mode: compare with our own float32 run instead
            own_float = by_key.get((r.method, r.mode, "float32", r.device))
            if not ref and r.dtype != "float32" and own_float and not r.method.startswith("torchvision"):
                r.vs_timm = r.ms / own_float
                r.note = f"vs our float32 {r.method} (timm[{kind}] n/a on {r.dtype})"


def run_device(device: torch.device, args, names: list[str]) -> tuple[list[Row], str]:
    step_ms, step_info = (None, "train step not measured (--no-step)")
    if not args.no_step:
        step_ms, step_info = bench_step(args, device, args.num_classes)
    print(f"[{device}] {step_info}", flush=True)
    rows: list[Row] = []
    for dtype_name in args.dtypes:
        rows += bench_dtype(dtype_name, device, args, names)
    add_ratios(rows, step_ms)
    return rows, step_info


def fmt(v: float | None, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'method':24s} {'mode':6s} {'dtype':8s} {'device':7s} {'median ms':>10s} "
        f"{'x timm':>7s} {'x copy':>7s} {'% step':>7s}  note"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.method:24s} {r.mode:6s} {r.dtype:8s} {r.device:7s} {fmt(r.ms, '10.2f', '       n/a'):>10s} "
            f"{fmt(r.vs_timm, '7.2f'):>7s} {fmt(r.vs_copy, '7.2f'):>7s} {fmt(r.pct_step, '7.2f'):>7s}  {r.note}"
        )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=224, help="image height and width")
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--dtypes", type=lambda s: [d.strip() for d in s.split(",") if d.strip()], default=["float32", "uint8"])
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all", help="all: CPU, and CUDA when present")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per method (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before the timed ones")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--step-model", default="resnet50", help="timm model whose train step is the reference")
    p.add_argument("--no-step", action="store_true", help="do not measure the train step")
    p.add_argument("--step-batch", type=int, default=None, help="batch for the step (default: 8 on CPU, --batch on CUDA)")
    p.add_argument("--step-repeats", type=int, default=3)
    p.add_argument("--step-warmup", type=int, default=1)
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's); 1 is steadier on a busy machine"
    )
    p.add_argument(
        "--mixers",
        type=lambda s: [d.strip() for d in s.split(",") if d.strip()],
        default=None,
        help="only these of our mixers (comma-separated; default: all); timm and the copies always run",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    for d in args.dtypes:
        if not isinstance(getattr(torch, d, None), torch.dtype):
            p.error(f"unknown dtype {d!r}; use torch dtype names such as float32, bfloat16, uint8")
    if args.batch < 2 or args.batch % 2:
        p.error("--batch must be even and >= 2 (timm's Mixup needs an even batch)")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here")
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device == "cuda" or (args.device == "all" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
    names, skipped = our_mixers(args.num_classes)
    if args.mixers:
        names = [n for n in names if n in args.mixers]
    print(
        f"batch {args.batch}x{args.channels}x{args.size}x{args.size}, dtypes {','.join(args.dtypes)}, "
        f"median of {args.repeats} after {args.warmup} warm-up, torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    for name, why in skipped.items():
        print(f"skipped mixer {name!r}: {why}")
    rows, steps = [], []
    for device in devices:
        if device.type == "cuda":
            print(f"[cuda] {torch.cuda.get_device_name(device)}")
        device_rows, step_info = run_device(device, args, names)
        rows += device_rows
        steps.append(step_info)
    print()
    for s in steps:
        print(s)
    print_table(rows)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                    "torch": torch.__version__,
                    "steps": steps,
                    "skipped": skipped,
                    "rows": [asdict(r) for r in rows],
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
