"""The trainer checks the data set's labels once, before any step."""

from __future__ import annotations

import pytest
import torch
from _trainer_utils import FAST, compose

import mixcut.build as build_mod
from mixcut.data.splits import Source, TensorSplit
from mixcut.errors import DataError
from mixcut.trainer import run


def test_run_stops_on_a_label_outside_num_classes(tmp_path, monkeypatch):
    labels = torch.tensor([0, 1, 2, 7] * 4)
    split = TensorSplit(torch.zeros(16, 3, 16, 16, dtype=torch.uint8), labels)
    monkeypatch.setattr(build_mod, "load_source", lambda data_cfg: Source(split, None, ["a", "b", "c"]))
    cfg = compose([*FAST, "data.num_classes=3"])
    with pytest.raises(DataError, match=r"train split: label 7 of sample 3 .*num_classes=3"):
        run(cfg, run_dir=tmp_path)
