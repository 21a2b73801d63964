"""experiment=cifar10_airbench94 at a tiny size: runs with mix=, reports TTA and time to accuracy,
stops its last epoch early, and resumes bit for bit mid-run."""

from __future__ import annotations

import json

import pytest
from _trainer_utils import assert_same_tensors, checkpoint, compose

from mixcut.trainer import run

TINY = [
    "experiment=cifar10_airbench94",
    "data=synthetic",
    "data.img_size=32",
    "data.train_size=96",
    "data.val_size=32",
    "data.cache=device",
    "trainer.batch_size=16",
    "trainer.epochs=4",
    "trainer.last_epoch_fraction=0.5",
    "trainer.progress=false",
    "trainer.device=cpu",
    "trainer.deterministic=true",
    "trainer.amp=none",  # the recipe's native is bf16 on AVX512-BF16 CPUs only: the same fp32 on every machine here
    "+model.kwargs.widths=[8,16,16]",
    "+model.kwargs.whiten_bias_epochs=2",
]


def test_summary_has_tta_and_time_to_accuracy_and_a_fractional_last_epoch(tmp_path):
    summary = run(compose(TINY + ["eval.tta=flip_translate"]), tmp_path)
    assert summary["global_step"] == 3 * 6 + 3  # 6 batches per epoch, half of the last one
    assert set(summary["time_to_top1"]) == {"85", "90", "93", "94"}
    for th, t in summary["time_to_top1"].items():
        assert t is None or 0 < t <= summary["wall_time_s"]
        assert (t is not None) == (summary["best"]["top1"] >= float(th))  # reached iff some validation got there
    assert summary["tta"]["mode"] == "flip_translate" and summary["tta_top1"] == summary["tta"]["top1"]
    assert "top1" in summary  # the plain number stays beside it
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["time_to_top1"] == summary["time_to_top1"] and "tta_top1" in written


def test_the_recipe_asks_for_native_precision():
    """bf16 where the device computes it in hardware (half the CPU step time with AVX512-BF16), else fp32."""
    assert compose(["experiment=cifar10_airbench94"]).trainer.amp == "native"


def test_no_tta_by_default(tmp_path):
    summary = run(compose(TINY + ["eval.tta=none", "trainer.epochs=1"]), tmp_path)
    assert "tta_top1" not in summary and "time_to_top1" in summary


@pytest.mark.slow
@pytest.mark.parametrize("mix", ["none", "cutmix"])
def test_recipe_resumes_bit_for_bit_mid_run(tmp_path, mix):
    """Straight vs stopped after epoch 2 and resumed: lookahead state, frozen whitening bias,
    alternating flips and the warmdown schedule all continue exactly."""
    common = TINY + [f"mix={mix}"]
    straight = run(compose(common), tmp_path / "straight")
    first = run(compose(common + ["trainer.stop_after_epoch=2"]), tmp_path / "split")
    assert first["finished"] is False
    resumed = run(compose(common + ["trainer.resume=auto"]), tmp_path / "split")
    assert resumed["global_step"] == straight["global_step"] == 21
    a, b = checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "split")
    assert_same_tensors(a["model"], b["model"])
    assert_same_tensors(a["averager"]["avg"], b["averager"]["avg"])
    assert resumed["top1"] == straight["top1"]


@pytest.mark.slow
@pytest.mark.dist
def test_recipe_runs_under_ddp_with_two_gloo_processes(tmp_path):
    """The frozen whitening bias (lr factor 0, gradient still reduced), lookahead and alternating flips under DDP."""
    import os
    import subprocess
    import sys

    from _trainer_utils import REPO

    args = [a for a in TINY if a != "trainer.deterministic=true"] + [
        "trainer.batch_size=8",
        "eval.tta=flip",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(REPO / "train.py"), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 3 * 6 + 3  # 96 images / (2 x 8) per epoch
    assert "tta_top1" in summary and set(summary["time_to_top1"]) == {"85", "90", "93", "94"}
    ckpt = checkpoint(tmp_path / "run")
    stopped = [g for g in ckpt["optimizer"]["param_groups"] if g.get("train_epochs") is not None]
    assert len(stopped) == 1 and stopped[0]["lr"] == 0.0


@pytest.mark.slow
def test_bench_train_overhead_times_mixcut_and_the_bare_loop(tmp_path, capsys):
    from _trainer_utils import load_script

    bench = load_script("bench_train")
    out = tmp_path / "overhead.json"
    argv = ["--overhead", "--batch", "16", "--steps", "2", "--warmup", "1", "--json", str(out), "--override", "trainer.amp=none"]
    assert bench.main(argv + ["--profile"]) == 0
    printed = capsys.readouterr().out
    assert "framework overhead" in printed and "convolution backward" in printed
    payload = json.loads(out.read_text())
    result = payload["overhead"]
    assert len(result["mixcut_s_step"]) == len(result["bare_s_step"]) == 1 and result["bare_s_step"][0] > 0
    kinds = payload["profile"]["ms_per_step"]
    assert kinds["convolution forward"] > 0 and kinds["convolution backward"] > 0 and kinds["batch norm"] > 0


def test_op_kinds_of_the_profile():
    from _trainer_utils import load_script

    bench = load_script("bench_train")
    assert bench.op_kind("aten::convolution_backward") == "convolution backward"
    assert bench.op_kind("aten::mkldnn_convolution") == "convolution forward"
    assert bench.op_kind("aten::native_batch_norm_backward") == "batch norm"
    assert bench.op_kind("aten::_foreach_add_") == "optimizer, averaging"
    assert bench.op_kind("aten::index") == "everything else"


def test_airbench_split_writes_mixcuts_pixels_in_the_peers_format(tmp_path):
    import importlib.util

    import torch
    from _trainer_utils import REPO

    from mixcut.data import build_data

    spec = importlib.util.spec_from_file_location("airbench_split", REPO / "scripts" / "reproduce" / "airbench_split.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    overrides = ["data=synthetic", "data.img_size=32", "data.train_size=40", "data.val_size=12", "trainer.batch_size=8"]
    assert script.export(tmp_path, overrides) == {"train": 40, "test": 12}
    train, test = torch.load(tmp_path / "train.pt"), torch.load(tmp_path / "test.pt")
    data = build_data(compose(TINY[:1] + overrides + ["data.cache=device"]), torch.device("cpu"))
    assert train["images"].shape == (40, 32, 32, 3) and train["images"].dtype == torch.uint8
    assert torch.equal(test["images"], data.val.images.permute(0, 2, 3, 1)) and torch.equal(test["labels"], data.val.labels)
    ours = data.train.images.permute(0, 2, 3, 1).flatten(1)
    theirs = train["images"].flatten(1)
    assert not torch.equal(theirs, ours)  # shuffled, as CIFAR's files are ...
    assert sorted(map(tuple, theirs.tolist())) == sorted(map(tuple, ours.tolist()))  # ... the same images


@pytest.mark.slow
def test_measurement_script_runs_end_to_end_and_resumes(tmp_path):
    """scripts/reproduce/cifar10_airbench.sh on a tiny folder (mixcut side, no peer): data preparation, one run,
    the table; a rerun trains nothing."""
    import os
    import subprocess

    from _trainer_utils import REPO, make_image_folder

    root = make_image_folder(tmp_path / "data", classes=3, per_class=12, size=32)
    tiny = "data.val_fraction=0.25 trainer.batch_size=8 trainer.epochs=1 +model.kwargs.widths=[8,16,16] trainer.device=cpu"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", WANDB_MODE="disabled", SEEDS="0", EXTRA=tiny, THREADS="1")
    env.pop("PEER", None)
    cmd = ["bash", str(REPO / "scripts" / "reproduce" / "cifar10_airbench.sh"), str(root), str(tmp_path / "out")]
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "mixcut" / "none" / "seed0" / "summary.json").read_text())
    assert "tta_top1" in summary and "time_to_top1" in summary
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| mixcut `experiment=cifar10_airbench94 mix=none` (precision " in table and "| 1 |" in table
    assert "train img/s (median epoch)" in table and "time to top-1" in table
    stamp = tmp_path / "out" / "mixcut" / "none" / "seed0" / "process_s.txt"
    before = stamp.stat().st_mtime_ns
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert stamp.stat().st_mtime_ns == before  # the finished run was not trained again
