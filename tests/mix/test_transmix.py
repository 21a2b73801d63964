"""TransMix: label weights from the class token's attention over the pasted patches."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from mixcut.mix import TransMix, attention_lam, class_attention, create_mixer


def tiny_vit(**kwargs) -> VisionTransformer:
    torch.manual_seed(0)
    options = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=10)
    options.update(kwargs)
    return VisionTransformer(**options).eval()


def attention_map(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """The last block's softmax attention (B, heads, N, N), read by the unfused path (what timm's own
    attention-extraction hooks read: the input of attn_drop)."""
    attn = model.blocks[-1].attn
    fused, attn.fused_attn = attn.fused_attn, False
    seen = {}
    handle = attn.attn_drop.register_forward_hook(lambda m, args, out: seen.setdefault("map", args[0].detach()))
    try:
        model(x)
    finally:
        handle.remove()
        attn.fused_attn = fused
    return seen["map"]


def test_label_weight_is_the_attention_mass_of_the_pasted_patches():
    # a constructed map on a 4 x 4 patch grid of a 32 x 32 image (8-pixel patches)
    gen = torch.Generator().manual_seed(0)
    att = torch.rand(3, 16, generator=gen)
    boxes = torch.tensor([[0, 16, 0, 16], [8, 24, 16, 32], [3, 20, 5, 13]])  # (y0, y1, x0, x1)
    lam = torch.tensor([0.3, 0.3, 0.3])
    got = attention_lam(att, boxes, lam, 32, 32, (4, 4), area_weight=0.0)
    for i, (y0, y1, x0, x1) in enumerate(boxes.tolist()):
        # a patch is pasted when its top-left pixel (8r, 8c) lies in the box (nearest downsampling of the mask)
        inside = [r * 4 + c for r in range(4) for c in range(4) if y0 <= 8 * r < y1 and x0 <= 8 * c < x1]
        share = att[i, inside].sum() / att[i].sum()
        assert got[i].item() == pytest.approx(1.0 - share.item(), abs=1e-6)
    # the third box holds the top-left pixels of patches (1, 1) and (2, 1) only, not all it overlaps
    assert got[2].item() == pytest.approx(1.0 - ((att[2, 5] + att[2, 9]) / att[2].sum()).item(), abs=1e-6)
    # the authors' default: half attention, half area
    half = attention_lam(att, boxes, lam, 32, 32, (4, 4), area_weight=0.5)
    area = torch.tensor([256, 256, 17 * 8]) / 1024.0
    assert torch.allclose(1 - half, 0.5 * (1 - got) + 0.5 * area, atol=1e-6)


def test_an_empty_box_keeps_its_lambda():
    att = torch.rand(2, 16)
    lam = torch.tensor([0.25, 1.0])
    boxes = torch.zeros(2, 4, dtype=torch.long)  # Mixup samples and unmixed ones paste nothing
    assert torch.equal(attention_lam(att, boxes, lam, 32, 32, (4, 4), 0.5), lam)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_recomputed_class_attention_is_the_models_attention(qk_norm):
    model = tiny_vit(qk_norm=qk_norm)
    x = torch.randn(3, 3, 32, 32)
    full = attention_map(model, x)
    tokens = {}
    handle = model.blocks[-1].attn.register_forward_pre_hook(lambda m, args: tokens.setdefault("x", args[0]))
    model(x)
    handle.remove()
    got = class_attention(model.blocks[-1].attn, tokens["x"], model.num_prefix_tokens)
    want = full[:, :, 0, model.num_prefix_tokens :].mean(1)
    assert got.shape == (3, 16)
    assert torch.allclose(got, want, atol=1e-6)


def test_the_hook_changes_neither_output_nor_attention():
    model = tiny_vit()
    mixer = create_mixer("transmix", num_classes=10, seed=0, switch_prob=1.0)
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    mixed, target = mixer(x, y)
    plain_logits, plain_map = model(mixed), attention_map(model, mixed)
    with mixer.model_context(model):
        hooked_logits = model(mixed)
    mixer.after_forward(model, hooked_logits, target)
    assert torch.equal(hooked_logits, plain_logits)
    assert torch.equal(attention_map(model, mixed), plain_map)
    assert not model.blocks[-1].attn._forward_pre_hooks  # the hook is gone after the pass


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_cutmix_targets_follow_the_attention_and_sum_to_one(mode):
    model = tiny_vit()
    mixer = TransMix(switch_prob=1.0, area_weight=0.0, num_classes=10, seed=1, mode=mode)
    x, y = torch.randn(6, 3, 32, 32), torch.arange(6)
    result = mixer.mix(x, y)
    with mixer.model_context(model):
        logits = model(result.x)
    target, aux = mixer.after_forward(model, logits, result.target)
    assert aux is None
    assert torch.allclose(target.sum(1), torch.ones(6), atol=1e-6)
    lam = mixer.last_lam
    expected = torch.lerp(torch.eye(10)[y[result.partner]], torch.eye(10)[y], lam.view(-1, 1))
    assert torch.allclose(target, expected, atol=1e-6)
    assert not torch.allclose(lam, result.lam)  # the weight is no longer the area


def test_mixup_batches_keep_their_targets():
    model = tiny_vit()
    mixer = TransMix(switch_prob=0.0, num_classes=10, seed=0)
    result = mixer.mix(torch.randn(4, 3, 32, 32), torch.arange(4))
    with mixer.model_context(model):
        logits = model(result.x)
    target, _ = mixer.after_forward(model, logits, result.target)
    assert torch.equal(target, result.target)


def test_models_without_class_token_attention_are_refused():
    import timm

    mixer = TransMix(switch_prob=1.0, num_classes=10, seed=0)
    result = mixer.mix(torch.randn(2, 3, 32, 32), torch.arange(2))
    with pytest.raises(ValueError, match="class token"):
        with mixer.model_context(timm.create_model("resnet10t", num_classes=10)):
            pass
    mixer.mix(result.x, torch.arange(2))
    with pytest.raises(ValueError, match="global_pool='avg'"):
        with mixer.model_context(tiny_vit(global_pool="avg")):
            pass


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_attention_weights_match_the_cpu_ones():
    model = tiny_vit()
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    out = {}
    for device in ("cpu", "cuda"):
        mixer = TransMix(switch_prob=1.0, num_classes=10, seed=0, mode="elem")
        net = model.to(device)
        result = mixer.mix(x.to(device), y.to(device))
        with mixer.model_context(net):
            logits = net(result.x)
        out[device] = mixer.after_forward(net, logits, result.target)[0].cpu()
    assert torch.allclose(out["cpu"].sum(1), torch.ones(4), atol=1e-6) and out["cuda"].shape == out["cpu"].shape


@pytest.mark.parametrize("side,grid", [(32, 4), (224, 14), (30, 4), (40, 7)])
def test_patch_masks_are_the_authors_nearest_downsampling(side, grid):
    """Beckschen/TransMix builds the patch mask with nn.Upsample(size=grid) (nearest) of the pixel box mask."""
    from mixcut.mix.transmix import patch_masks

    gen = torch.Generator().manual_seed(side)
    corners = torch.randint(0, side + 1, (50, 4), generator=gen)
    y0, y1 = corners[:, 0].minimum(corners[:, 1]), corners[:, 0].maximum(corners[:, 1])
    x0, x1 = corners[:, 2].minimum(corners[:, 3]), corners[:, 2].maximum(corners[:, 3])
    boxes = torch.stack([y0, y1, x0, x1], 1)
    pixel = torch.zeros(50, 1, side, side)
    for i, (a, b, c, d) in enumerate(boxes.tolist()):
        pixel[i, 0, a:b, c:d] = 1
    reference = torch.nn.Upsample(size=grid)(pixel).flatten(1)
    assert torch.equal(patch_masks(boxes, side, side, (grid, grid)), reference)
