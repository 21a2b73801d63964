"""Mixers that read the model, in real runs. RecursiveMix keeps the previous batch (images, targets, logits)
as state: a run stopped in the middle of an epoch and resumed from its last checkpoint ends bit for bit where
the uninterrupted run ends. TransMix refuses a model without class-token attention before the first step."""

from __future__ import annotations

import pytest
import torch
from _trainer_utils import EXACT, assert_same_tensors, checkpoint, compose

from mixcut import engine
from mixcut.trainer import run


class Preempted(Exception):
    """Stands in for a kill between two steps (the last checkpoint is the one before)."""


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_recursivemix_resume_mid_epoch_is_bit_identical(tmp_path, monkeypatch, mode):
    common = EXACT + ["mix=recursivemix", f"mix.mode={mode}", "mix.alpha=0.9", "trainer.ckpt_every_steps=1"]
    run(compose(common), tmp_path / "straight")

    steps = {"n": 0}

    def point(where: str) -> None:
        if where == "step":
            steps["n"] += 1
            if steps["n"] == 9:  # the third batch of the second epoch (6 batches an epoch)
                raise Preempted

    monkeypatch.setattr(engine.faults, "point", point)
    with pytest.raises(Preempted):
        run(compose(common), tmp_path / "split")
    monkeypatch.undo()
    saved = checkpoint(tmp_path / "split")
    assert saved["state"]["epoch"] == 1 and saved["state"]["batch"] == 2  # mid-epoch
    history = saved["mixer"][0]["history"]
    assert history is not None and set(history) == {"x", "target", "logits"}

    run(compose(common + ["trainer.resume=auto"]), tmp_path / "split")
    assert_same_tensors(checkpoint(tmp_path / "straight")["model"], checkpoint(tmp_path / "split")["model"])
    a, b = checkpoint(tmp_path / "straight")["mixer"][0], checkpoint(tmp_path / "split")["mixer"][0]
    assert all(torch.equal(a["history"][k], b["history"][k]) for k in a["history"])


def test_transmix_with_a_model_without_class_token_is_refused_before_the_first_step(tmp_path, monkeypatch):
    from mixcut.errors import ConfigError

    steps = []
    monkeypatch.setattr(engine.faults, "point", lambda where: steps.append(where))
    with pytest.raises(ConfigError, match="mix=transmix: .*class token"):
        run(compose(EXACT + ["mix=transmix"]), tmp_path / "run")  # EXACT trains cifar_resnet20
    assert steps == []
