"""The mixer's generator states follow the run onto another GPU index (issue 18), and
MixChoice keeps its member edges on the device. CUDA generators are faked, so this runs on CPU."""

from __future__ import annotations

import logging

import torch

from mixcut.mix import CutMix, MixChoice, Mixup


class FakeGenerator:
    """Stands in for ``torch.Generator(device="cuda:N")`` on a machine without CUDA."""

    def __init__(self, device=None) -> None:
        self.device, self.state = torch.device(device), None

    def manual_seed(self, seed: int):
        self.state = ("seed", seed)
        return self

    def set_state(self, state) -> None:
        self.state = ("state", state)

    def get_state(self):
        return self.state[1]


def test_a_cuda_state_saved_on_another_index_is_restored_and_said(monkeypatch, caplog):
    saved = torch.arange(5, dtype=torch.uint8)
    mixer = Mixup(alpha=1.0, seed=7)
    mixer.load_state_dict({"seed": 7, "epoch": 2, "generators": {"cpu": torch.get_rng_state(), "cuda:3": saved}})
    monkeypatch.setattr(torch, "Generator", FakeGenerator)
    with caplog.at_level(logging.INFO, logger="mixcut"):
        gen = mixer.generator("cuda:0")
    assert gen.state[0] == "state" and torch.equal(gen.state[1], saved)
    assert "saved on cuda:3 restored on cuda:0" in caplog.text
    assert list(mixer.state_dict()["generators"]) == ["cpu", "cuda:0"]  # the CPU state still waits for the CPU


def test_the_same_index_restores_silently(monkeypatch, caplog):
    saved = torch.arange(5, dtype=torch.uint8)
    mixer = Mixup(alpha=1.0, seed=7)
    mixer.load_state_dict({"seed": 7, "epoch": 0, "generators": {"cuda:1": saved}})
    monkeypatch.setattr(torch, "Generator", FakeGenerator)
    with caplog.at_level(logging.INFO, logger="mixcut"):
        gen = mixer.generator("cuda:1")
    assert torch.equal(gen.state[1], saved) and "restored on" not in caplog.text


def test_choice_edges_are_copied_once_per_device(monkeypatch):
    choice = MixChoice.switch(Mixup(0.8), CutMix(1.0), switch_prob=0.5, seed=0)
    copies = []
    real_to = torch.Tensor.to

    def counting_to(self, *args, **kw):
        copies.append(args)
        return real_to(self, *args, **kw)

    monkeypatch.setattr(torch.Tensor, "to", counting_to)
    u = torch.rand(64)
    first = choice.choose(u)
    for _ in range(5):
        assert torch.equal(choice.choose(u), first)
    assert len(copies) <= 1
    assert torch.equal(first, (u >= 0.5).long())
