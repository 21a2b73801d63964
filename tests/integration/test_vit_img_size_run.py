"""``model.name=deit_tiny_patch16_224 data.img_size=32`` trains with no other
override, and the run's first lines say that the size was passed (and what
trainer.compile=auto chose)."""

from __future__ import annotations

import logging

import pytest
from _trainer_utils import FAST, compose

from mixcut.trainer import run


@pytest.mark.slow  # about 10 s on 2 CPU cores
def test_deit_at_32_pixels(tmp_path, caplog):
    overrides = [o for o in FAST if not o.startswith(("model.name", "data.img_size", "trainer.epochs"))]
    overrides += [
        "model.name=deit_tiny_patch16_224",
        "data.img_size=32",
        "trainer.epochs=1",
        "data.train_size=32",
        "data.val_size=16",
    ]
    with caplog.at_level(logging.INFO):
        summary = run(compose(overrides), run_dir=tmp_path)
    assert summary
    assert "img_size=32 passed to deit_tiny_patch16_224 from data.img_size" in caplog.text
    assert "trainer.compile=auto: not compiling on cpu" in caplog.text  # also a first-lines note
