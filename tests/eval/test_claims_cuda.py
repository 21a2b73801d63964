"""Every claim evaluator on a CUDA device gives what it gives on the CPU (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from mixcut.eval.adversarial import adversarial_accuracy
from mixcut.eval.calibration import temperature_scaling
from mixcut.eval.cam import connected_components
from mixcut.eval.localization import localize
from mixcut.eval.occlusion import occlusion_curve
from mixcut.eval.ood import auroc, logits_of, noise_images

pytestmark = pytest.mark.cuda
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class Batches:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def epoch(self, epoch):
        for i in range(0, len(self.y), 16):
            yield self.x[i : i + 16], self.y[i : i + 16]


def test_evaluators_match_between_cpu_and_cuda():
    import timm

    import mixcut.models  # noqa: F401

    torch.manual_seed(0)
    model = timm.create_model("cifar_resnet20", num_classes=4).eval()
    x, y = torch.randn(32, 3, 16, 16), torch.arange(32) % 4
    out = {}
    for dev in ("cpu", "cuda"):
        m, xd, yd = model.to(dev), x.to(dev), y.to(dev)
        b = Batches(xd, yd)
        loc = localize(m, xd, yd, torch.tensor([[[0.0, 0.0, 8.0, 8.0]]], device=dev).expand(32, 1, 4))
        out[dev] = (
            adversarial_accuracy(m, b, MEAN, STD, [0.0, 4 / 255], pgd_steps=2)["fgsm"],
            occlusion_curve(m, b, MEAN, STD, sizes=[0, 112])["hole"],
            temperature_scaling(m(xd).detach(), yd)["temperature"],
            auroc(logits_of(m, noise_images("uniform", 8, 16), MEAN, STD).amax(1), m(xd).detach().amax(1)),
            loc["box_gt_known"].cpu(),
        )
    cpu, cuda = out["cpu"], out["cuda"]
    assert cpu[0] == pytest.approx(cuda[0], abs=6.5) and cpu[1] == pytest.approx(cuda[1], abs=6.5)
    assert cpu[2] == pytest.approx(cuda[2], rel=1e-3) and cpu[3] == pytest.approx(cuda[3], abs=0.05)
    assert (cpu[4] - cuda[4]).abs().max() <= 2
    mask = torch.rand(3, 20, 20) > 0.5
    assert torch.equal(connected_components(mask), connected_components(mask.cuda()).cpu())
