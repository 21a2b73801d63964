"""The pixel variants: Cutout, FMix, ResizeMix, SaliencyMix, and the choice builder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as nnf

from mixcut.mix import MIXERS, CutMix, Cutout, FMix, MixChoice, Mixup, ResizeMix, SaliencyMix, create_mixer
from mixcut.mix import functional as F
from mixcut.mix.base import Draws
from mixcut.mix.saliencymix import fine_grained_saliency, saliency_peaks

K = 5
VARIANTS = {
    "cutout": ("cutout", {"size": 6}),
    "fmix": ("fmix", {}),
    "fmix_soft": ("fmix", {"max_soft": 0.1}),
    "resizemix": ("resizemix", {}),
    "saliencymix": ("saliencymix", {}),
    "saliencymix_per_batch": ("saliencymix", {"per_batch": True}),
}
CUT_AND_PASTE = ["fmix", "resizemix", "saliencymix", "saliencymix_per_batch"]
MODES = ["batch", "pair", "elem"]


def build(variant: str, **kwargs):
    name, options = VARIANTS[variant]
    return create_mixer(name, num_classes=K, **{**options, **kwargs})


def batch(n=8, h=16, w=20, dtype=torch.float32, channels_last=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g)
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.arange(n) % K


def identity_batch(n=8, h=16, w=20, seed=0):
    """Channel 0 holds the sample index, channels 1-2 random texture (for saliency)."""
    x, y = batch(n, h, w, seed=seed)
    x[:, 0] = torch.arange(n, dtype=torch.float32).view(-1, 1, 1)
    return x, y


def one_hot(y, ls=0.0):
    return F.smooth_one_hot(y, K, ls)


# ---------------------------------------------------------------- every variant
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.uint8])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_output_like_input_and_targets_consistent(variant, mode, dtype, channels_last):
    if variant == "fmix_soft" and dtype == torch.uint8:
        pytest.skip("soft masks blend: covered in float")
    x, y = batch(dtype=dtype, channels_last=channels_last)
    before = x.clone()
    mixer = build(variant, mode=mode, seed=3, label_smoothing=0.1)
    r = mixer.mix(x, y)
    assert r.x.shape == x.shape and r.x.dtype == dtype and r.x.device == x.device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert r.x.is_contiguous(memory_format=fmt)
    assert torch.equal(x, before), "input modified without inplace=True"
    assert r.target.dtype == torch.float32 and r.target.shape == (x.shape[0], K)
    torch.testing.assert_close(r.target.sum(1), torch.ones(x.shape[0]))
    assert ((r.lam >= 0) & (r.lam <= 1)).all()
    soft = one_hot(y, 0.1)
    torch.testing.assert_close(r.target, r.lam.view(-1, 1) * soft + (1 - r.lam.view(-1, 1)) * soft[r.partner])
    assert not torch.equal(r.x, x), "nothing was mixed"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_seeded_reproducible(variant, mode):
    x, y = batch()
    a = [build(variant, mode=mode, seed=11).mix(x, y) for _ in range(2)]
    assert torch.equal(a[0].x, a[1].x) and torch.equal(a[0].target, a[1].target)
    m = build(variant, mode=mode, seed=11)
    first = m.mix(x, y)
    state = m.state_dict()
    second = m.mix(x, y)
    m.load_state_dict(state)
    assert torch.equal(m.mix(x, y).x, second.x)
    assert not torch.equal(first.x, second.x), "consecutive batches drew the same augmentation"
    other = build(variant, mode=mode, seed=12).mix(x, y)
    assert not torch.equal(other.x, a[0].x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_inplace_writes_into_the_batch(variant, mode):
    x, y = batch()
    expected = build(variant, mode=mode, seed=5).mix(x.clone(), y).x
    out = build(variant, mode=mode, seed=5, inplace=True).mix(x, y).x
    assert out.data_ptr() == x.data_ptr()
    assert torch.equal(out, expected)


@pytest.mark.parametrize("variant", CUT_AND_PASTE)
def test_inside_choice_per_sample(variant):
    x, y = identity_batch()
    name, options = VARIANTS[variant]
    member = create_mixer(name, seed=0, **options)
    choice = MixChoice([CutMix(1.0), member], [0.5, 0.5], mode="elem", num_classes=K, seed=4)
    r = choice.mix(x, y)
    own = (r.x[:, 0] == torch.arange(8).view(-1, 1, 1)).float().mean((1, 2))
    torch.testing.assert_close(r.lam, own)
    assert ((r.x[:, 0] == torch.arange(8).view(-1, 1, 1)) | (r.x[:, 0] == r.partner.view(-1, 1, 1))).all()
    assert (r.lam < 1).all()


def test_choice_builder_and_errors():
    m = create_mixer("choice", mixers={"cutmix": {"alpha": 1.0}, "fmix": {"decay_power": 3.0}}, probs=[0.3, 0.7], num_classes=K)
    assert isinstance(m, MixChoice) and [type(c) for c in m.mixers] == [CutMix, FMix] and m.probs == [0.3, 0.7]
    x, y = batch()
    for mode in MODES:
        r = create_mixer("choice", mixers={"resizemix": {}, "saliencymix": {}}, mode=mode, num_classes=K, seed=1).mix(x, y)
        torch.testing.assert_close(r.target.sum(1), torch.ones(8))
    with pytest.raises(ValueError, match="belong to the choice"):
        create_mixer("choice", mixers={"cutmix": {"prob": 0.5}}, num_classes=K)
    with pytest.raises(ValueError, match="at least one"):
        create_mixer("choice", mixers={}, num_classes=K)
    with pytest.raises(ValueError, match="does not take"):
        create_mixer("choice", mixers={"fmix": {"size": 3}}, num_classes=K)


def test_registry_builds_every_variant():
    for name in ("manifold_mixup", "saliencymix", "resizemix", "fmix", "cutout", "choice"):
        assert name in MIXERS
    for name in ("saliencymix", "resizemix", "fmix", "cutout"):
        m = create_mixer(name, num_classes=K, seed=0)
        assert m.mix(*batch()).x.shape == (8, 3, 16, 20)
    with pytest.raises(ValueError, match="max_soft"):
        create_mixer("fmix", max_soft=0.7)
    with pytest.raises(ValueError, match="scale"):
        create_mixer("resizemix", scale=[0.5, 1.5])
    with pytest.raises(ValueError, match="size"):
        create_mixer("cutout", size=0)


# ------------------------------------------------------- lambda = own pixel share
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", CUT_AND_PASTE)
def test_lam_is_the_share_of_own_pixels(variant, mode):
    for seed in range(4):
        x, y = identity_batch(seed=seed)
        r = build(variant, mode=mode, seed=seed).mix(x, y)
        ids = torch.arange(8).view(-1, 1, 1)
        c0 = r.x[:, 0]
        own = c0 == ids
        from_partner = c0 == r.partner.view(-1, 1, 1)
        assert (own | from_partner).all(), "a pixel came from neither the sample nor its partner"
        torch.testing.assert_close(r.lam, own.float().mean((1, 2)), rtol=0, atol=1e-6)


def test_prob_gates_samples():
    x, y = identity_batch(n=64)
    for variant in CUT_AND_PASTE:
        r = build(variant, mode="elem", prob=0.5, seed=2).mix(x, y)
        untouched = (r.x == x).flatten(1).all(1)
        assert 10 < int(untouched.sum()) < 54
        assert torch.equal(r.lam[untouched], torch.ones(int(untouched.sum())))
    r = build("fmix", mode="batch", prob=0.0, seed=2).mix(x, y)
    assert torch.equal(r.x, x) and torch.equal(r.lam, torch.ones(64))


# ---------------------------------------------------------------------- FMix
def test_fmix_masks_binary_low_frequency_and_mean_is_lam():
    n, h, w = 64, 24, 32
    mixer = FMix(alpha=1.0, seed=0)
    draws = Draws(mixer.generator("cpu"), "cpu", n)
    lam = mixer.sample_lam(draws)
    masks, kept = mixer.masks(lam, h, w, draws)
    assert masks.dtype == torch.bool and masks.shape == (n, 1, h, w)
    mean = masks.float().mean((1, 2, 3))
    torch.testing.assert_close(kept, mean, rtol=0, atol=1e-6)
    assert ((mean - lam).abs() <= 1.0 / (h * w) + 1e-6).all()
    # low frequency: neighbouring pixels mostly agree (i.i.d. noise would disagree ~half the time)
    changes = (masks[..., 1:] != masks[..., :-1]).float().mean()
    assert changes < 0.15
    # per-sample masks differ
    assert not torch.equal(masks[0], masks[1])


def test_top_pixels_exact_count_and_near_exact_set():
    from mixcut.mix.fmix import top_pixels

    g = torch.Generator().manual_seed(0)
    v = torch.randn(6, 5000, generator=g)
    count = torch.tensor([0, 5000, 1, 2500, 4999, 1234])
    keep = top_pixels(v, count, levels=256)
    assert torch.equal(keep.sum(1), count)
    step = (v.amax(1) - v.amin(1)) / 255
    for i in range(2, 6):  # every kept value beats every dropped one, up to one quantization step
        assert v[i][keep[i]].min() >= v[i][~keep[i]].max() - step[i]
    ties = torch.zeros(2, 10)
    assert torch.equal(top_pixels(ties, torch.tensor([3, 7])).sum(1), torch.tensor([3, 7]))


def test_fmix_soft_mask_ramp_keeps_mean():
    n, h, w = 16, 16, 16
    mixer = FMix(max_soft=0.2, seed=0)
    draws = Draws(mixer.generator("cpu"), "cpu", n)
    lam = mixer.sample_lam(draws)
    weight, kept = mixer.masks(lam, h, w, draws)
    assert weight.is_floating_point() and weight.min() >= 0 and weight.max() <= 1
    assert ((weight > 0) & (weight < 1)).any()
    torch.testing.assert_close(kept, weight.mean((1, 2, 3)), rtol=0, atol=1e-6)
    assert ((kept - lam).abs() <= 1.0 / (h * w) + 1e-6).all()


def test_fmix_pair_mode_swaps_the_same_region():
    x, y = identity_batch()
    r = build("fmix", mode="pair", seed=0).mix(x, y)
    own = r.x[:, 0] == torch.arange(8).view(-1, 1, 1)
    assert torch.equal(own, own[r.partner])


@pytest.mark.parametrize("variant", ["fmix", "fmix_soft", "saliencymix"])
def test_cpu_slicing_gives_the_same_result(variant, monkeypatch):
    from mixcut.mix import fmix, saliencymix

    x, y = batch(n=7)
    whole = build(variant, mode="elem", seed=9).mix(x, y)
    monkeypatch.setattr(fmix, "CPU_SLICE_PIXELS", 2 * 16 * 20)  # two images per slice, a ragged last slice
    monkeypatch.setattr(saliencymix, "CPU_SLICE_PIXELS", 3 * 16 * 20)
    sliced = build(variant, mode="elem", seed=9).mix(x, y)
    assert torch.equal(whole.x, sliced.x) and torch.equal(whole.lam, sliced.lam)


# ----------------------------------------------------------------- ResizeMix
@pytest.mark.parametrize("mode", MODES)
def test_resizemix_pastes_the_whole_shrunk_partner(mode):
    x, y = batch(n=6, h=20, w=24, seed=1)
    x[:, 0] = torch.arange(6, dtype=torch.float32).view(-1, 1, 1)
    r = build("resizemix", mode=mode, seed=7).mix(x, y)
    for i in range(6):
        pasted = (r.x[i, 0] != i).nonzero()
        if pasted.numel() == 0:
            continue
        (y0, x0), (y1, x1) = pasted.min(0).values.tolist(), (pasted.max(0).values + 1).tolist()
        assert (r.x[i, 0, y0:y1, x0:x1] == r.partner[i]).all(), "pasted region is not one box"
        expected = nnf.interpolate(x[r.partner[i] : r.partner[i] + 1], size=(y1 - y0, x1 - x0), mode="nearest")[0]
        assert torch.equal(r.x[i, :, y0:y1, x0:x1], expected)
        assert 0.1 * 20 - 1 <= y1 - y0 <= 0.8 * 20 and 0.1 * 24 - 1 <= x1 - x0 <= 0.8 * 24
        assert math.isclose(float(r.lam[i]), 1 - (y1 - y0) * (x1 - x0) / (20 * 24), abs_tol=1e-6)


def test_resizemix_elem_draws_per_sample_scales():
    x, y = identity_batch(n=32)
    r = ResizeMix(mode="elem", num_classes=K, seed=0).mix(x, y)
    assert r.lam.unique().numel() > 10


# --------------------------------------------------------------- SaliencyMix
def blob_image(h, w, cy, cx, sigma=2.5, bright=1.0):
    rows = torch.arange(h).view(-1, 1).float()
    cols = torch.arange(w).view(1, -1).float()
    blob = torch.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * sigma**2))
    return (0.2 + bright * blob).expand(3, h, w).clone()


def test_saliency_peaks_at_the_blob():
    spots = [(10, 30), (35, 12), (24, 24), (5, 44)]
    x = torch.stack([blob_image(48, 48, cy, cx) for cy, cx in spots])
    cy, cx = saliency_peaks(x)
    for (ey, ex), py, px in zip(spots, cy.tolist(), cx.tolist()):
        assert abs(py - ey) <= 1 and abs(px - ex) <= 1
    # invariant to the normalisation, works on uint8
    cy2, cx2 = saliency_peaks((x - 0.45) / 0.22)
    assert torch.equal(cy, cy2) and torch.equal(cx, cx2)
    cy3, cx3 = saliency_peaks((x * 200).round().to(torch.uint8))
    assert ((cy3 - cy).abs() <= 1).all() and ((cx3 - cx).abs() <= 1).all()
    # a flat bright disc: the peak lies on the disc
    disc = torch.full((1, 3, 40, 40), 0.1)
    disc[:, :, 8:18, 22:32] = 0.9
    py, px = (int(v) for v in saliency_peaks(disc))
    assert 8 <= py < 18 and 22 <= px < 32
    assert fine_grained_saliency(torch.ones(2, 3, 8, 8)).abs().max() < 1e-4  # flat image: no saliency


@pytest.mark.parametrize("per_batch", [False, True])
def test_saliencymix_box_centres_on_the_partners_blob(per_batch):
    spots = [(14, 14), (14, 34), (34, 14), (34, 34), (20, 24), (28, 20)]
    x = torch.stack([blob_image(48, 48, cy, cx) for cy, cx in spots])
    x[:, 0] += torch.arange(6).view(-1, 1, 1) * 10  # identity, a constant offset: saliency unchanged
    y = torch.arange(6) % K
    r = SaliencyMix(mode="elem", per_batch=per_batch, lam_clip=(0.75, 0.9), num_classes=K, seed=3).mix(x, y)
    for i in range(6):
        pasted = (r.x[i, 0] - x[i, 0]).abs() > 1
        assert pasted.any()
        where = pasted.nonzero()
        (y0, x0), (y1, x1) = where.min(0).values.tolist(), (where.max(0).values + 1).tolist()
        assert pasted[y0:y1, x0:x1].all(), "the pasted region is not a box"
        src = int(r.partner[0]) if per_batch else int(r.partner[i])
        ey, ex = spots[src]
        assert abs((y0 + y1 - 1) / 2 - ey) <= 1 and abs((x0 + x1 - 1) / 2 - ex) <= 1
        assert math.isclose(float(r.lam[i]), 1 - (y1 - y0) * (x1 - x0) / 48**2, abs_tol=1e-6)


# -------------------------------------------------------------------- Cutout
@pytest.mark.parametrize("mode", MODES)
def test_cutout_fills_exactly_the_clipped_square(mode):
    x, y = batch(n=32, h=12, w=14, seed=3)
    size, fill = 6, 7.0
    r = Cutout(size=size, fill=fill, mode=mode, num_classes=K, label_smoothing=0.1, seed=0).mix(x, y)
    assert torch.equal(r.partner, torch.arange(32)) and torch.equal(r.lam, torch.ones(32))
    assert torch.equal(r.target, one_hot(y, 0.1))
    holes = (r.x == fill).all(1)  # every channel filled
    assert torch.equal((r.x == fill).any(1), holes)
    assert torch.equal(r.x.masked_fill(holes.unsqueeze(1), 0), x.masked_fill(holes.unsqueeze(1), 0))
    sizes = set()
    for i in range(32):
        where = holes[i].nonzero()
        assert where.numel() > 0
        (y0, x0), (y1, x1) = where.min(0).values.tolist(), (where.max(0).values + 1).tolist()
        assert holes[i, y0:y1, x0:x1].all() and int(holes[i].sum()) == (y1 - y0) * (x1 - x0)
        for lo, hi, side in ((y0, y1, 12), (x0, x1, 14)):
            assert hi - lo <= size
            if lo > 0 and hi < side:
                assert hi - lo == size, "an unclipped square has the full side"
        sizes.add((y0, x0))
    if mode == "batch":
        assert len(sizes) == 1
    else:
        assert len(sizes) > 5


def test_cutout_prob_uint8_and_odd_size():
    x, y = batch(n=64, h=10, w=10, dtype=torch.uint8, seed=1)
    r = Cutout(size=3, fill=300.0, mode="elem", prob=0.5, num_classes=K, seed=0).mix(x, y)
    holes = (r.x != x).any(1)
    touched = holes.flatten(1).any(1)
    assert 10 < int(touched.sum()) < 54
    assert (r.x.masked_select(holes.unsqueeze(1).expand_as(r.x)) == 255).all()  # fill clamped to the dtype
    counts = holes.flatten(1).sum(1)[touched]
    assert counts.max() <= 9 and (counts == 9).any()  # an odd side is exact


def test_cutout_inside_a_choice_keeps_labels_of_the_samples_it_picks():
    from mixcut.mix import NoMix

    n, h = 64, 12
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, h).contiguous() + 1
    y = torch.arange(n) % 10
    mixer = MixChoice([Mixup(1.0), Cutout(size=4, fill=0.0)], [0.5, 0.5], mode="elem", num_classes=10, seed=3)
    r = mixer.mix(x, y)
    zeros = (r.x == 0).flatten(1).any(1)  # only Cutout writes zeros (inputs are >= 1)
    assert 10 < int(zeros.sum()) < 54
    assert torch.all(r.lam[zeros] == 1)
    torch.testing.assert_close(r.target[zeros], nnf.one_hot(y[zeros], 10).float())
    kept = r.x[zeros] != 0
    assert torch.equal(r.x[zeros][kept], x[zeros][kept])  # outside the square the image is untouched
    with pytest.raises(ValueError, match="members must"):
        MixChoice([CutMix(), NoMix()])


# ------------------------------------------------------------------- configs
@pytest.mark.parametrize("config", ["manifold_mixup", "saliencymix", "resizemix", "fmix", "cutout", "cutmix_fmix"])
def test_mix_configs_compose_and_build(config):
    from _trainer_utils import compose

    from mixcut.build import build_mixer

    cfg = compose([f"mix={config}"])
    mixer = build_mixer(cfg, 10, 0)
    expected = {
        "manifold_mixup": ("ManifoldMixup", {"alpha": 2.0, "layers": None}),
        "saliencymix": ("SaliencyMix", {"alpha": 1.0, "per_batch": False}),
        "resizemix": ("ResizeMix", {"scale": (0.1, 0.8)}),
        "fmix": ("FMix", {"alpha": 1.0, "decay_power": 3.0, "max_soft": 0.0}),
        "cutout": ("Cutout", {"size": 16, "fill": 0.0}),
        "cutmix_fmix": ("MixChoice", {"probs": [0.5, 0.5]}),
    }[config]
    assert type(mixer).__name__ == expected[0]
    for key, value in expected[1].items():
        assert getattr(mixer, key) == value, key
    if config == "cutmix_fmix":
        assert [type(m).__name__ for m in mixer.mixers] == ["CutMix", "FMix"]
    x = torch.rand(4, 3, 32, 32)
    out, target = mixer(x.clone(), torch.arange(4))
    assert out.shape == x.shape and torch.allclose(target.sum(1), torch.ones(4))
    with pytest.raises(Exception, match="alpha"):
        compose([f"mix={config}", "mix.alpha=abc"])  # a bad value, or a key this mixer does not take


# ---------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", [*VARIANTS, "manifold_mixup", "cutmix_fmix"])
def test_cuda_no_host_sync(variant, mode):
    """On the GPU every variant stays on the device and never waits for it."""
    x, y = batch(n=8, h=32, w=32)
    x, y = x.cuda(), y.cuda()
    if variant == "manifold_mixup":
        import timm

        import mixcut.models  # noqa: F401

        mixer = create_mixer("manifold_mixup", mode=mode, num_classes=K, seed=0)
        model = timm.create_model("cifar_resnet20", num_classes=K).cuda()
    elif variant == "cutmix_fmix":
        mixer = create_mixer("choice", mixers={"cutmix": {}, "fmix": {}}, mode=mode, num_classes=K, seed=0)
        model = None
    else:
        mixer, model = build(variant, mode=mode, seed=0), None

    def step():
        r = mixer.mix(x, y)
        if model is not None:
            with mixer.model_context(model):
                model(r.x).sum().backward()
        return r

    for _ in range(3):  # warm-up: generators, kernels, cuDNN plans, and every layer of Manifold Mixup
        step()
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            r = step()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert r.x.is_cuda and r.target.is_cuda and r.lam.is_cuda and r.partner.is_cuda
    torch.testing.assert_close(r.target.sum(1), torch.ones(8, device="cuda"))


# ---------------------------------------------------------------- the picture
def test_visualize_script_writes_a_grid(tmp_path):
    from _trainer_utils import load_script, make_image_folder
    from PIL import Image

    vis = load_script("visualize_mix")
    folder = make_image_folder(tmp_path / "data", classes=3, per_class=2, size=20)
    out = vis.main(["--folder", str(folder), "--n", "4", "--size", "24", "--out", str(tmp_path / "grid.png")])
    width, height = Image.open(out).size
    assert width > 300 and height > 600  # 11 rows of 4 tiles
    assert [name for _, name, _ in vis.ROWS] == [
        "none",
        "mixup",
        "cutmix",
        "deit",
        "manifold_mixup",
        "saliencymix",
        "resizemix",
        "fmix",
        "cutout",
        "transmix",
        "recursivemix",
    ]
