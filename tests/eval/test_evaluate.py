"""scripts/evaluate.py and scripts/summarize.py end to end on a checkpoint from a tiny CPU run."""

from __future__ import annotations

import json

import pytest
import torch
from _trainer_utils import compose, load_script

from mixcut.checkpoint import CheckpointError
from mixcut.config import ConfigError
from mixcut.eval.options import EvalOptions
from mixcut.evaluate import default_out_dir, evaluate_checkpoint


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One epoch of two batches of cifar_resnet20 on synthetic data (a few seconds on a CPU)."""
    from mixcut.trainer import run

    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    cfg = compose(
        [
            "data=synthetic",
            "data.val_size=48",
            "model.name=cifar_resnet20",
            "mix=mixup",
            "trainer.epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.batch_size=16",
            "trainer.progress=false",
            "trainer.device=cpu",
            "trainer.amp=none",
        ]
    )
    run(cfg, run_dir)
    return run_dir


@pytest.mark.slow
def test_evaluate_script_end_to_end(tiny_run, tmp_path, capsys):
    script = load_script("evaluate")
    out = tmp_path / "eval"
    rc = script.main(
        [
            str(tiny_run / "checkpoints" / "last.pt"),
            "--corruptions",
            "--corruption-names",
            "gaussian_noise,contrast,jpeg_compression",
            "--severities",
            "1,5",
            "--out",
            str(out),
            "trainer.device=cpu",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mean corruption top1" in printed and "contrast" in printed

    result = json.loads((out / "last.json").read_text())
    assert (out / result["reliability_png"]).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((tiny_run / "summary.json").read_text())
    metrics = result["metrics"]
    assert metrics["n"] == 48 and set(metrics) >= {"top1", "top5", "nll", "ece", "brier"}
    # the same weights on the same validation split: the trainer's final metrics again
    for key in ("top1", "top5", "nll", "ece", "brier"):
        assert metrics[key] == pytest.approx(summary[key], rel=1e-4, abs=1e-4), key
    assert sum(result["reliability"]["count"]) == 48

    table = result["corruptions"]
    assert set(table) == {"gaussian_noise", "contrast", "jpeg_compression"}
    assert all(set(row) == {"1", "5"} for row in table.values())
    cells = [cell["top1"] for row in table.values() for cell in row.values()]
    assert all(0 <= c <= 100 for c in cells)
    assert result["corruption_top1_mean"] == pytest.approx(sum(cells) / len(cells))
    assert result["mix"] == "mixup" and result["seed"] == 0


@pytest.mark.slow
def test_default_output_dir_and_overrides(tiny_run):
    ckpt = tiny_run / "checkpoints" / "best.pt"
    assert default_out_dir(ckpt) == tiny_run.resolve() / "eval"
    result = evaluate_checkpoint(ckpt, ["trainer.device=cpu", "trainer.batch_size=8", "trainer.limit_val_batches=2"])
    assert result["metrics"]["n"] == 16
    assert (tiny_run / "eval" / "best.json").is_file() and (tiny_run / "eval" / "best_reliability.png").is_file()
    assert "corruptions" not in result


@pytest.mark.slow
def test_bad_inputs_fail_with_a_message(tiny_run, tmp_path, capsys):
    ckpt = tiny_run / "checkpoints" / "last.pt"
    with pytest.raises(ConfigError, match="trainer.epochz"):
        evaluate_checkpoint(ckpt, ["trainer.epochz=3"], out_dir=tmp_path)
    with pytest.raises(ConfigError, match="key=value"):
        evaluate_checkpoint(ckpt, ["+trainer.foo=1"], out_dir=tmp_path)
    with pytest.raises(ConfigError, match="choose from"):
        evaluate_checkpoint(ckpt, ["trainer.device=cpu"], EvalOptions(corruptions=True, corruption_names=("snow",)), tmp_path)
    with pytest.raises(ConfigError, match="EMA"):
        evaluate_checkpoint(ckpt, ["trainer.device=cpu"], EvalOptions(use_ema=True), tmp_path)
    bare = tmp_path / "bare.pt"
    torch.save({"model": {}}, bare)
    with pytest.raises(CheckpointError, match="no training config"):
        evaluate_checkpoint(bare, out_dir=tmp_path)
    assert load_script("evaluate").main([str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def fake_run(root, name: str, mix: str, seed: int, top1: float, ece: float, corruption: float | None = None):
    run = root / name
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(f"mix:\n  name: {mix}\ntrainer:\n  seed: {seed}\nmodel:\n  name: cifar_resnet20\n")
    summary = {
        "top1": top1,
        "ece": ece,
        "nll": 0.5,
        "brier": 0.3,
        "wall_time_s": 600.0,
        "best": {"top1": top1 + 1, "ece": ece, "nll": 0.4, "brier": 0.2},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    if corruption is not None:
        (run / "eval" / "best.json").write_text(json.dumps({"corruption_top1_mean": corruption - 5}))
        (run / "eval" / "last.json").write_text(json.dumps({"corruption_top1_mean": corruption}))
    return run


def test_summarize_table_and_chart(tmp_path, capsys):
    script = load_script("summarize")
    runs = [
        fake_run(tmp_path, "a", "none", 0, 90.0, 3.0, 70.0),
        fake_run(tmp_path, "b", "none", 1, 92.0, 5.0, 72.0),
        fake_run(tmp_path, "c", "mixup", 0, 93.0, 1.0),
        tmp_path / "not_a_run",
    ]
    (tmp_path / "not_a_run").mkdir()
    md, png = tmp_path / "out" / "table.md", tmp_path / "out" / "chart.png"
    assert script.main([str(r) for r in runs] + ["--md", str(md), "--png", str(png)]) == 0
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "not_a_run" in captured.err
    text = md.read_text()
    assert text == captured.out
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert rows[1].split(" | ")[:4] == ["| none", "0", "90.00", "3.00"]
    assert "| none | 2 | 91.00 ± 1.41 | 4.00 ± 1.41 |" in text  # sample std of (90, 92) and (3, 5)
    assert "71.00 ± 1.41" in text  # corruption accuracy from eval/last.json, not best.json
    assert "| mixup | 1 | 93.00 | 1.00 |" in text and "10.0" in text  # wall time in minutes
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert script.main([str(runs[0]), "--best", "--label", "model.name"]) == 0
    assert "| cifar_resnet20 | 0 | 91.00 |" in capsys.readouterr().out
    assert script.main([str(tmp_path / "not_a_run")]) == 2


class _Batches:
    """A fixed validation stream: images 0..n-1 (their index as the value) in batches."""

    def __init__(self, n: int, batch: int) -> None:
        self.values = torch.arange(n)
        self.batch = batch

    def epoch(self, epoch: int):
        for i in range(0, len(self.values), self.batch):
            v = self.values[i : i + self.batch]
            yield v.float().view(-1, 1, 1, 1), v

    def __len__(self) -> int:
        return -(-len(self.values) // self.batch)


@pytest.mark.parametrize("n,batch,k", [(101, 16, 5), (100, 10, 5), (7, 3, 1), (50, 7, 60)])
def test_every_kth_takes_exactly_the_multiples_of_k_across_batches(n, batch, k):
    from mixcut.eval.loop import EveryKth

    kept = torch.cat([y for _, y in EveryKth(_Batches(n, batch), k).epoch(0)])
    assert kept.tolist() == list(range(0, n, k))


@pytest.mark.slow
def test_corruption_every_evaluates_the_subset_and_keeps_clean_metrics_whole(tiny_run, tmp_path):
    ckpt = tiny_run / "checkpoints" / "last.pt"
    result = evaluate_checkpoint(
        ckpt,
        ["trainer.device=cpu"],
        EvalOptions(corruptions=True, corruption_names=("contrast",), severities=(1,), corruption_every=5),
        tmp_path,
    )
    assert result["metrics"]["n"] == 48 and result["corruption_n"] == 10  # images 0, 5, ..., 45
    assert "every 5th" in result["corruption_protocol"]
    with pytest.raises(ConfigError, match="corruption_every"):
        evaluate_checkpoint(ckpt, ["trainer.device=cpu"], EvalOptions(corruptions=True, corruption_every=0), tmp_path)


@pytest.mark.slow
def test_claims_load_the_checkpoint_once(tiny_run, tmp_path, monkeypatch):
    """--claims without --boxes decides on localization from the same loaded checkpoint and config."""
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    argv = [str(tiny_run / "checkpoints" / "last.pt"), "--claims", "--out", str(tmp_path), "--epsilons", "0",
            "--pgd-steps", "1", "--occlusion-sizes", "0,224", "--ood-n", "8", "trainer.device=cpu"]  # fmt: skip
    assert load_script("evaluate").main(argv) == 0
    assert len(loads) == 1
    r = json.loads((tmp_path / "last.json").read_text())
    assert {"temperature_scaling", "adversarial", "occlusion", "ood"} <= set(r) and "localization" not in r


@pytest.mark.slow
def test_evaluation_is_built_as_training_is(tiny_run, tmp_path, monkeypatch):
    """build_for_eval takes the class count through build's check and probes the model, as build does."""
    import mixcut.build

    calls = []
    real = mixcut.build.num_classes_of
    monkeypatch.setattr(mixcut.build, "num_classes_of", lambda cfg, source: calls.append("num_classes_of") or real(cfg, source))
    monkeypatch.setattr(mixcut.build, "probe_model", lambda model, cfg, device: calls.append("probe_model"))
    ckpt = tiny_run / "checkpoints" / "last.pt"
    evaluate_checkpoint(ckpt, ["trainer.device=cpu", "trainer.limit_val_batches=1"], out_dir=tmp_path)
    assert calls == ["num_classes_of", "probe_model"]
