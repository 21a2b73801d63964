"""The evaluation loop under AMP: the body in bf16, the head and every metric in fp32."""

from __future__ import annotations

import torch
from torch import nn

from mixcut.eval import evaluate_split


class _Batches:
    def __init__(self, data):
        self.data = data

    def epoch(self, epoch, start=0):
        return iter(self.data)


class _NearTie(nn.Module):
    """Features (B, 4) -> a linear head whose class 0 beats class 1 by 1e-3: a tie once rounded to bf16
    (spacing 2^-7 near 1), as a bf16 head makes near-equal logits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            self.body.weight.copy_(torch.eye(4))
            self.body.bias.zero_()
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor([1.001, 1.0, -3.0]))

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, x, pre_logits: bool = False):
        return self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def test_bf16_evaluation_keeps_the_head_and_metrics_in_fp32():
    model = _NearTie()
    batches = _Batches([(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))])
    cpu = torch.device("cpu")
    fp32 = evaluate_split(model, batches, 3, cpu)
    bf16 = evaluate_split(model, batches, 3, cpu, amp_dtype=torch.bfloat16)
    assert fp32["top1"] == 100.0
    assert bf16["top1"] == 100.0, "a bf16 head ties classes 0 and 1 (top-1 counted 0.5)"
    assert abs(bf16["nll"] - fp32["nll"]) < 1e-6


def test_fp32_logits_without_a_head_split_casts_the_output():
    from mixcut.eval.loop import fp32_logits

    model = nn.Linear(4, 3)
    with torch.no_grad():
        out = fp32_logits(model, torch.randn(2, 4), torch.device("cpu"), torch.bfloat16)
    assert out.dtype == torch.float32
