"""Labels outside [0, num_classes) fail with a sentence naming the value, its
position and num_classes (not an index error from inside ``scatter_``), in the
mixers and in the trainer's one check of the data set at start."""

from __future__ import annotations

import pytest
import torch

from mixcut.data.folder import FileSplit
from mixcut.data.labels import check_label_range
from mixcut.data.splits import Source, TensorSplit
from mixcut.errors import DataError
from mixcut.mix import MODES, create_mixer

K = 20


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["none", "mixup", "cutmix", "deit", "cutout", "manifold_mixup"])
@pytest.mark.parametrize("bad", [K, -1])
def test_mixers_name_the_bad_label(name, mode, bad):
    mixer = create_mixer(name, mode=mode, num_classes=K, seed=0)
    y = torch.tensor([0, 5, 19, bad, 3, 1])
    with pytest.raises(ValueError, match=rf"label {bad} at position 3 .*num_classes={K}"):
        mixer(torch.rand(6, 3, 8, 8), y)


def test_good_labels_pass():
    x, t = create_mixer("deit", num_classes=K, seed=0)(torch.rand(4, 3, 8, 8), torch.tensor([0, 19, 7, 0]))
    assert t.shape == (4, K)


@pytest.mark.cuda
def test_cuda_check_does_not_sync():
    mixer = create_mixer("cutmix", mode="elem", num_classes=K, seed=0)
    x, y = torch.rand(4, 3, 8, 8, device="cuda"), torch.tensor([0, 1, 2, 3], device="cuda")
    mixer(x, y)  # warm up (generators, scratch)
    torch.cuda.set_sync_debug_mode("error")
    try:
        mixer(x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_dataset_check_names_split_value_and_index():
    good = TensorSplit(torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 2]))
    check_label_range(Source(good, None, ["a", "b", "c"]), 3)
    bad = TensorSplit(torch.zeros(4, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 3, 2]))
    with pytest.raises(DataError, match=r"val split: label 3 of sample 2 .*num_classes=3.*data.num_classes=4"):
        check_label_range(Source(good, bad, ["a", "b", "c"]), 3)
    files = FileSplit(["a.png", "b.png"], [-1, 0])
    with pytest.raises(DataError, match=r"train split: label -1 of sample 0"):
        check_label_range(Source(files, None, ["a"]), 1)
