"""Steady-state training speed with and without ``torch.compile``, mixing off, a
pixel mixer and Manifold Mixup, and how often Dynamo recompiles.

    python scripts/bench_compile.py                                # resnet18, 32 px, batch 64, CPU
    python scripts/bench_compile.py --device cuda --batch 256 --mixers none,cutmix,manifold_mixup

For every (mixer, eager|compiled) pair: ``--warmup`` steps (they include the
compilation; their time is reported separately), then ``--steps`` timed steps
whose images per second are the steady state. Each step is the trainer's:
mix, forward inside ``mixer.model_context``, soft-target cross entropy,
backward, SGD. Recompilations are counted from torch's recompile log (the
``recompiles`` artifact that ``TORCH_LOGS=recompiles`` prints), separately for
the warm-up and the timed steps: Manifold Mixup draws its layer per step, and a
timed-phase count of 0 shows that the per-step choice never recompiles once
warm. Ratios are compiled over eager from the same run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mixcut.models  # noqa: E402,F401  (registers the CIFAR networks in timm)
from mixcut.mix import create_mixer  # noqa: E402


class RecompileCounter(logging.Handler):
    """Counts the records of torch's ``recompiles`` log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count, self.last = 0, ""

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "ecompil" in msg:
            self.count += 1
            self.last = msg.splitlines()[0][:160]


def attach_counter() -> RecompileCounter:
    torch._logging.set_logs(recompiles=True)
    counter = RecompileCounter()
    for name in ("torch._dynamo", "torch"):
        logging.getLogger(name).addHandler(counter)
    logging.getLogger("torch._dynamo").propagate = False  # count once, print nothing
    return counter


def run_one(args, mixer_name: str, compiled: bool, counter: RecompileCounter) -> dict:
    import timm

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = timm.create_model(args.model, num_classes=args.num_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    mixer = create_mixer(mixer_name, num_classes=args.num_classes, mode=args.mode, inplace=True, seed=0)
    net = torch.compile(model) if compiled else model
    if compiled:
        torch._dynamo.reset()
    g = torch.Generator(device="cpu").manual_seed(0)
    x0 = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(device)
    y = torch.randint(0, args.num_classes, (args.batch,), generator=g).to(device)
    layers = set()

    def step():
        x, target = mixer(x0.clone(), y)
        with mixer.model_context(net):
            logits = net(x)
        loss = torch.sum(-target * torch.log_softmax(logits.float(), 1), 1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if hasattr(mixer, "last_layer"):
            layers.add(mixer.last_layer)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    counter.count = 0
    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    warm_s, warm_recompiles = time.perf_counter() - start, counter.count
    counter.count = 0
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    steady_s = time.perf_counter() - start
    return {
        "mixer": mixer_name,
        "compiled": compiled,
        "warmup_s": warm_s,
        "img_s": args.steps * args.batch / steady_s,
        "recompiles_warmup": warm_recompiles,
        "recompiles_timed": counter.count,
        "layers": sorted(layers),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--mixers", default="none,cutmix,manifold_mixup")
    p.add_argument("--mode", default="batch")
    p.add_argument("--warmup", type=int, default=12, help="untimed steps (compilation happens here)")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--eager-only", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    counter = attach_counter()
    print(
        f"{args.model}, {args.batch}x3x{args.size}x{args.size}, {args.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.warmup} warm-up + {args.steps} timed steps"
    )
    rows = []
    for name in [m.strip() for m in args.mixers.split(",") if m.strip()]:
        for compiled in (False,) if args.eager_only else (False, True):
            r = run_one(args, name, compiled, counter)
            rows.append(r)
            print(
                f"{name:15s} {'compiled' if compiled else 'eager':8s} {r['img_s']:8.1f} img/s  warm-up {r['warmup_s']:6.1f} s  "
                f"recompiles warm-up {r['recompiles_warmup']:2d} timed {r['recompiles_timed']:2d}  "
                f"{'layers ' + ','.join(r['layers']) if r['layers'] else ''}",
                flush=True,
            )
    print("\nmixer           eager img/s  compiled img/s  compiled/eager  recompiles (timed steps)")
    for name in dict.fromkeys(r["mixer"] for r in rows):
        e = next((r for r in rows if r["mixer"] == name and not r["compiled"]), None)
        c = next((r for r in rows if r["mixer"] == name and r["compiled"]), None)
        if e and c:
            print(f"{name:15s} {e['img_s']:11.1f} {c['img_s']:15.1f} {c['img_s'] / e['img_s']:15.2f}  {c['recompiles_timed']}")


if __name__ == "__main__":
    main()
