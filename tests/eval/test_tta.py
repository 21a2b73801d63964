"""eval.tta: the views and weights of the test-time augmentations, and their report beside the plain numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _trainer_utils import FAST, compose

from mixcut.eval import evaluate_split
from mixcut.eval.tta import TTAModel, tta_logits


class Probe(nn.Module):
    """Logits that depend on where in the image the pixels are (so flips and shifts change them)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_flip_is_the_mean_of_the_image_and_its_mirror():
    m, x = Probe(), torch.randn(5, 3, 8, 8)
    torch.testing.assert_close(tta_logits(m, x, "flip"), (m(x) + m(x.flip(-1))) / 2)
    torch.testing.assert_close(tta_logits(m, x, "none"), m(x))


def test_flip_translate_is_the_papers_six_views():
    m, x = Probe(), torch.randn(5, 3, 8, 8)
    p = F.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = p[..., 0:8, 0:8], p[..., 2:10, 2:10]  # content moves by +1 / -1 pixel on both axes
    assert torch.equal(up_left[..., 1:, 1:], x[..., :-1, :-1]) and torch.equal(down_right[..., :-1, :-1], x[..., 1:, 1:])
    views = [(v, w) for v, w in ((x, 0.25), (up_left, 0.125), (down_right, 0.125))]
    expected = sum(w * (m(v) + m(v.flip(-1))) for v, w in views)
    torch.testing.assert_close(tta_logits(m, x, "flip_translate"), expected)


def test_unknown_mode_names_the_key():
    with pytest.raises(ValueError, match="eval.tta='rotate'"):
        TTAModel(Probe(), "rotate")


def test_tta_model_through_the_evaluation_loop():
    from mixcut.data import build_data

    cfg = compose(FAST + ["data.img_size=8"])
    data = build_data(cfg, torch.device("cpu"))
    m = Probe()
    out = evaluate_split(TTAModel(m, "flip"), data.val, 10, torch.device("cpu"))
    xs, ys = zip(*data.val.epoch(0))
    x, y = torch.cat(xs), torch.cat(ys)
    with torch.no_grad():
        top1 = (tta_logits(m, x, "flip").argmax(1) == y).float().mean().item() * 100
    assert out["top1"] == pytest.approx(top1)


def test_evaluate_script_reports_tta_beside_the_plain_metrics(tmp_path, capsys):
    from _trainer_utils import load_script

    from mixcut.trainer import run

    run(compose(FAST + ["trainer.epochs=1", "trainer.limit_train_batches=2"]), tmp_path / "run")
    ckpt = str(tmp_path / "run" / "checkpoints" / "last.pt")
    script = load_script("evaluate")
    assert script.main([ckpt, "--out", str(tmp_path / "plain"), "trainer.device=cpu"]) == 0
    assert script.main([ckpt, "--tta", "flip_translate", "--out", str(tmp_path / "tta"), "trainer.device=cpu"]) == 0
    assert "test-time augmentation (flip_translate): top1" in capsys.readouterr().out
    import json

    plain = json.loads((tmp_path / "plain" / "last.json").read_text())
    tta = json.loads((tmp_path / "tta" / "last.json").read_text())
    assert "tta_top1" not in plain and tta["tta"]["mode"] == "flip_translate"
    assert tta["metrics"] == plain["metrics"]  # the plain numbers are never replaced
