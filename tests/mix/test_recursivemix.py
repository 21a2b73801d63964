"""RecursiveMix: the previous mixed batch pasted, resized, into the current one; its targets
and its consistency loss."""

from __future__ import annotations

import pytest
import torch

from mixcut.mix import RecursiveMix, create_mixer
from mixcut.mix.recursivemix import roi_features

B, SIDE = 4, 32


def constant_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample i of step s is the constant image 10 * s + i + 1 and has class 4 * (s - 1) + i."""
    values = torch.tensor([10.0 * step + i + 1 for i in range(B)])
    return values.view(B, 1, 1, 1).expand(B, 3, SIDE, SIDE).clone(), torch.arange(B) + 4 * (step - 1)


def pixel_share(image: torch.Tensor, value: float) -> float:
    return (image[0] == value).float().mean().item()


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_targets_sum_to_one_and_match_the_pasted_areas_through_two_levels(mode):
    mixer = RecursiveMix(alpha=0.9, num_classes=12, seed=3, mode=mode)
    steps = [mixer.mix(*constant_batch(s)) for s in (1, 2, 3)]
    first, second, third = steps
    assert torch.equal(first.lam, torch.ones(B))  # no history yet: the first batch is not mixed
    for result in steps:
        assert torch.allclose(result.target.sum(1), torch.ones(B), atol=1e-6)
    # step 2: the kept share is exactly the own pixels; the rest is step 1's sample
    for i in range(B):
        assert second.target[i, 4 + i].item() == pytest.approx(pixel_share(second.x[i], 21 + i), abs=1e-6)
        assert second.lam[i].item() == pytest.approx(pixel_share(second.x[i], 21 + i), abs=1e-6)
        assert second.target[i, i].item() == pytest.approx(pixel_share(second.x[i], 11 + i), abs=1e-6)
    # step 3: own pixels exact; steps 2 and 1 inside the pasted box, shrunk by nearest neighbour (approximate areas)
    assert (third.lam < 1).any() and (second.lam < 1).any()
    for i in range(B):
        assert third.target[i, 8 + i].item() == pytest.approx(pixel_share(third.x[i], 31 + i), abs=1e-6)
        assert third.target[i, 4 + i].item() == pytest.approx(pixel_share(third.x[i], 21 + i), abs=0.04)
        assert third.target[i, i].item() == pytest.approx(pixel_share(third.x[i], 11 + i), abs=0.04)
        assert third.target[i, i].item() == pytest.approx(((1 - third.lam[i]) * (1 - second.lam[i])).item(), abs=1e-6)


def test_pasted_share_is_uniform_up_to_alpha():
    mixer = RecursiveMix(alpha=0.5, num_classes=10, seed=0, mode="elem")
    x, y = torch.zeros(2000, 1, 64, 64), torch.zeros(2000, dtype=torch.long)
    mixer.mix(x, y)
    pasted = 1 - mixer.mix(x, y).lam
    assert pasted.max() <= 0.5 + 1e-6
    # the box is clipped at the border, so the share is a bit below U(0, 0.5) (mean 0.25)
    assert 0.15 < pasted.mean().item() < 0.25


def test_a_resumed_mixer_continues_exactly():
    a = RecursiveMix(num_classes=12, seed=5, mode="elem")
    a.mix(*constant_batch(1))
    state = a.state_dict()
    assert set(state["history"]) == {"x", "target"}
    b = RecursiveMix(num_classes=12, seed=99, mode="elem")
    b.load_state_dict(state)
    ra, rb = a.mix(*constant_batch(2)), b.mix(*constant_batch(2))
    assert torch.equal(ra.x, rb.x) and torch.equal(ra.target, rb.target)


def test_new_epoch_starts_without_history():
    mixer = RecursiveMix(num_classes=12, seed=0)
    mixer.mix(*constant_batch(1))
    mixer.set_epoch(0)  # the same epoch (as on a resume): history kept
    assert mixer.history(torch.device("cpu")) is not None
    mixer.set_epoch(1)
    assert torch.equal(mixer.mix(*constant_batch(3)).lam, torch.ones(B))


def test_options_the_design_cannot_honour_are_refused():
    with pytest.raises(ValueError, match="mode=batch or mode=elem"):
        create_mixer("recursivemix", mode="pair", num_classes=10)
    with pytest.raises(ValueError, match="lam_clip"):
        create_mixer("recursivemix", lam_clip=[0.3, 0.7], num_classes=10)


def test_roi_features_average_the_box():
    fmap = torch.zeros(1, 2, 8, 8)
    fmap[:, :, 2:6, 4:8] = torch.tensor([3.0, -1.0]).view(1, 2, 1, 1)
    # a 32-pixel image over an 8 x 8 map: the box (8, 24, 16, 32) is cells rows 2..5, columns 4..7
    roi, layout = roi_features(fmap, torch.tensor([[8, 24, 16, 32]]), 32, 32, num_features=2)
    assert layout == "nchw"
    assert torch.allclose(roi, torch.tensor([[3.0, -1.0]]), atol=1e-5)


@pytest.mark.parametrize("name", ["cifar_resnet20", "deit_tiny_patch16_224"])
def test_consistency_loss_leaves_the_forward_unchanged_and_is_computed(name):
    import timm

    import mixcut.models  # noqa: F401  (registers the CIFAR networks in timm)

    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, **({"img_size": 32} if "deit" in name else {})).eval()
    mixer = RecursiveMix(alpha=0.9, omega=0.5, num_classes=10, seed=0)
    for step in range(3):
        x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
        result = mixer.mix(x, y)
        plain = model(result.x)
        with mixer.model_context(model):
            logits = model(result.x)
        assert torch.equal(logits, plain)
        target, aux = mixer.after_forward(model, logits, result.target)
        assert torch.equal(target, result.target)
        if step == 0:
            assert aux is None  # no history, no loss
        elif (result.lam < 1).any():
            assert aux is not None and aux.item() > 0 and aux.requires_grad
    assert "forward_features" not in vars(model)  # the capture is gone after the pass


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_on_cuda_the_history_stays_on_the_device_and_elem_mode_never_syncs(mode):
    mixer = RecursiveMix(num_classes=12, seed=0, mode=mode)
    x, y = constant_batch(1)
    mixer.mix(x.cuda(), y.cuda())
    x, y = constant_batch(2)
    x, y = x.cuda(), y.cuda()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error" if mode == "elem" else "default")
    try:
        result = mixer.mix(x, y)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert result.x.is_cuda and mixer.history(x.device)["x"].is_cuda
    assert torch.allclose(result.target.sum(1), torch.ones(B, device="cuda"), atol=1e-6)


def test_under_ddp_both_read_the_local_module_and_the_backward_runs(tmp_path):
    """A one-process gloo group: the consistency loss and the attention row work through the DDP wrapper."""
    import timm
    import torch.distributed as dist
    from torch import nn

    import mixcut.models  # noqa: F401
    from mixcut.mix import TransMix

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        cnn = nn.parallel.DistributedDataParallel(timm.create_model("cifar_resnet20", num_classes=10))
        vit = nn.parallel.DistributedDataParallel(timm.create_model("deit_tiny_patch16_224", img_size=32, num_classes=10))
        pairs = ((cnn, RecursiveMix(alpha=0.9, num_classes=10, seed=0)), (vit, TransMix(switch_prob=1.0, num_classes=10, seed=0)))
        for model, mixer in pairs:
            mixer.check_model(model)
            for _ in range(2):
                result = mixer.mix(torch.randn(4, 3, 32, 32), torch.arange(4))
                with mixer.model_context(model):
                    logits = model(result.x)
                target, aux = mixer.after_forward(model, logits, result.target)
                loss = -(target * logits.log_softmax(1)).sum(1).mean() + (0 if aux is None else aux)
                loss.backward()
            assert torch.allclose(target.sum(1), torch.ones(4), atol=1e-6)
        assert "forward_features" not in vars(cnn.module)  # the capture is gone
    finally:
        dist.destroy_process_group()
