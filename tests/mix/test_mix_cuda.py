"""The mixers on a CUDA device: outputs stay on it and no call waits for the GPU.

`torch.cuda.set_sync_debug_mode("error")` turns every host synchronisation
(``.item()``, a blocking copy, ``nonzero`` ...) into a RuntimeError, so the calls
made under it prove the training loop can queue the next batch's mixing without
stalling. Each mixer is warmed up first: creating its CUDA generator and the
first kernel launches are one-off costs, not per-batch ones.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from mixcut.mix import MODES, CutMix, Mixup, create_mixer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

K = 10
NAMES = ("none", "mixup", "cutmix", "deit")
PIXEL_NAMES = ("mixup", "cutmix", "deit")


@contextlib.contextmanager
def no_sync():
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def cuda_images(n: int = 8, h: int = 16, w: int = 20, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    return x.cuda()


def cuda_labels(n: int = 8) -> torch.Tensor:
    return torch.randint(0, K, (n,), generator=torch.Generator().manual_seed(1)).cuda()


def build(name, **options):
    options.setdefault("num_classes", K)
    options.setdefault("seed", 0)
    return create_mixer(name, **options)


def test_sync_check_catches_a_sync():
    x = torch.ones(4, device="cuda")
    with pytest.raises(RuntimeError), no_sync():
        x.sum().item()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16, torch.uint8), ids=str)
def test_outputs_on_device(name, mode, dtype):
    x = cuda_images(dtype=dtype).contiguous(memory_format=torch.channels_last)
    y = cuda_labels()
    r = build(name, mode=mode, label_smoothing=0.1).mix(x, y)
    for t in r:
        assert t.device == x.device
    assert r.x.dtype == dtype and r.x.shape == x.shape and r.x.is_contiguous(memory_format=torch.channels_last)
    assert r.target.dtype == torch.float32 and r.lam.dtype == torch.float32 and r.partner.dtype == torch.int64
    assert (r.target >= 0).all()
    torch.testing.assert_close(r.target.sum(1), torch.ones(8, device="cuda"), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prob", (1.0, 0.5))
@pytest.mark.parametrize("inplace", (False, True))
@pytest.mark.parametrize("dtype", (torch.float32, torch.uint8), ids=str)
def test_no_host_sync(name, mode, prob, inplace, dtype):
    options = {} if name == "none" else {"prob": prob}
    mixer = build(name, mode=mode, label_smoothing=0.1, inplace=inplace, **options)
    batches = [(cuda_images(dtype=dtype, seed=s), cuda_labels()) for s in range(8)]
    mixer.generator(batches[0][0].device)  # created even if prob gates off every warm-up call
    for x, y in batches[:3]:  # warm-up: creates the generators and buffers (several calls: prob may skip one)
        mixer.mix(x, y)
    torch.cuda.synchronize()
    with no_sync():
        for x, y in batches[3:]:
            r = mixer.mix(x, y)
            _ = mixer(x, r.target)  # soft targets in (a second mixer in a chain)
    torch.cuda.synchronize()


@pytest.mark.parametrize("name", PIXEL_NAMES)
def test_no_host_sync_odd_and_single_batches(name):
    for mode in MODES:
        mixer = build(name, mode=mode, inplace=True)
        mixer.mix(cuda_images(7), cuda_labels(7))
        x1, y1, x7, y7 = cuda_images(1), cuda_labels(1), cuda_images(7, seed=2), cuda_labels(7)
        torch.cuda.synchronize()
        with no_sync():
            mixer.mix(x1, y1)
            mixer.mix(x7, y7)
        torch.cuda.synchronize()


@pytest.mark.parametrize("mode", MODES)
def test_cuda_mixup_pixels(mode):
    x = cuda_images()
    r = Mixup(0.8, mode=mode, num_classes=K, seed=3).mix(x, cuda_labels())
    lam = r.lam.view(-1, 1, 1, 1)
    torch.testing.assert_close(r.x, lam * x + (1 - lam) * x[r.partner], atol=1e-6, rtol=1e-6)
    assert (r.lam < 1).any()


@pytest.mark.parametrize("mode", MODES)
def test_cuda_cutmix_lam_is_kept_share(mode):
    n, h, w = 16, 13, 18
    x = torch.arange(n, dtype=torch.float32, device="cuda").view(n, 1, 1, 1).expand(n, 3, h, w).contiguous()
    mixer = CutMix(1.0, mode=mode, num_classes=K, seed=4)
    for _ in range(5):
        r = mixer.mix(x, cuda_labels(n))
        own = r.x[:, 0] == torch.arange(n, device="cuda", dtype=torch.float32).view(-1, 1, 1)
        theirs = r.x[:, 0] == r.partner.float().view(-1, 1, 1)
        assert (own | theirs).all()
        torch.testing.assert_close(r.lam, own.float().mean((1, 2)), atol=1e-6, rtol=0)
        if mode == "pair":
            assert torch.equal(own, own[r.partner])


@pytest.mark.parametrize("name", PIXEL_NAMES)
@pytest.mark.parametrize("mode", MODES)
def test_cuda_seed_and_state_roundtrip(name, mode):
    x, y = cuda_images(), cuda_labels()
    a, b = build(name, mode=mode, seed=5), build(name, mode=mode, seed=5)
    for u, v in zip(a.mix(x, y), b.mix(x, y)):
        assert torch.equal(u, v)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    expected = [a.mix(x, y) for _ in range(3)]
    buf.seek(0)
    restored = build(name, mode=mode, seed=6)
    restored.load_state_dict(torch.load(buf, weights_only=True))
    for want in expected:
        for u, v in zip(restored.mix(x, y), want):
            assert torch.equal(u, v)
