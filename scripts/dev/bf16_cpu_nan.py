"""Reproduce the reason trainer.amp=auto is fp32 on CPUs: bf16 autocast on a CPU with native
bf16 (AVX512-BF16) sometimes returns NaN weight gradients from a conv backward while the loss
is finite (torch 2.14.1, oneDNN; timm resnet18 at 16 px, where layer4's 3x3 stride-2 conv sees
a 1x1 output). Prints how many of N fresh models gave a non-finite gradient.

    python scripts/dev/bf16_cpu_nan.py --models 60
"""

from __future__ import annotations

import argparse

import timm
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=60)
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    args = ap.parse_args()
    torch.manual_seed(0)
    bad = 0
    for i in range(args.models):
        model = timm.create_model("resnet18", num_classes=3)
        names = set()
        for _ in range(3):  # a few backward passes per fresh model; the NaN is intermittent
            x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
                out = model(x)
            loss = torch.nn.functional.cross_entropy(out.float(), y)
            model.zero_grad(set_to_none=True)
            loss.backward()
            names |= {n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()}
        if names:
            bad += 1
            print(f"model {i}: finite loss {loss.item():.3f}, non-finite gradient in {sorted(names)}")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    print(
        f"{bad}/{args.models} models gave non-finite gradients ({args.dtype}, torch {torch.__version__}, native bf16: {native})"
    )


if __name__ == "__main__":
    main()
