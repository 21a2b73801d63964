"""scripts/bench_train.py on toy sizes (a smoke test, never a timing): the argument parser and `measure`
agree (the shards merge once dropped --data-only and --shards, and every invocation crashed), and every
data path runs through the script's real entry point."""

from __future__ import annotations

import json

import pytest
from _trainer_utils import load_script, make_image_folder

TINY = ["--model", "cifar_resnet20", "--img-size", "16", "--batch", "4", "--steps", "1", "--warmup", "0", "--workers", "0"]
TINY += ["--device", "cpu", "--amp", "none", "--aug", "cifar", "--num-classes", "3"]


def test_every_option_measure_reads_is_parsed():
    """`measure` and `overrides_for` read these attributes; a parser that lost one crashes every run."""
    bench = load_script("bench_train")
    args = bench.parse_args([])
    for name in ("data_only", "no_data_timing", "shards", "shard_size", "cache_dir", "override", "threads", "compile"):
        assert hasattr(args, name), name
    assert "shards" in bench.PATHS


def test_synthetic_path_in_process(tmp_path, capsys):
    bench = load_script("bench_train")
    out = tmp_path / "bench.json"
    assert bench.main(TINY + ["--paths", "synthetic", "--mixes", "deit", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    (row,) = payload["results"]
    assert row["path"] == "synthetic" and row["mix"] == "deit" and row["img_s"] > 0 and row["mixer_ms"] > 0
    assert payload["settings"]["model"] == "cifar_resnet20" and "torch" in payload["environment"]
    assert "% ceiling" in capsys.readouterr().out


def test_data_only_times_the_stream_without_training(tmp_path):
    bench = load_script("bench_train")
    data = make_image_folder(tmp_path / "folder", classes=2, per_class=4)
    out = tmp_path / "bench.json"
    argv = TINY + ["--data", str(data), "--paths", "folder", "--mixes", "none", "--data-only", "--json", str(out)]
    assert bench.main(argv) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["data_img_s"] > 0 and row["img_s"] != row["img_s"]  # NaN: no training step was timed


@pytest.mark.slow
def test_every_data_path(tmp_path, capsys):
    """folder, device cache and shards (written from --data by make_shards.py on first use) beside the synthetic
    ceiling; the script's own command line is run by tests/scripts/test_scripts.py (--help)."""
    bench = load_script("bench_train")
    data = make_image_folder(tmp_path / "folder", classes=2, per_class=6)
    out = tmp_path / "bench.json"
    argv = TINY + ["--data", str(data), "--mixes", "none", "--shards", str(tmp_path / "shards"), "--shard-size", "4"]
    assert bench.main(argv + ["--cache-dir", str(tmp_path / "cache"), "--json", str(out)]) == 0
    rows = {r["path"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"synthetic", "cache", "folder", "shards"}
    assert (tmp_path / "shards" / "index.json").is_file()
    for path in ("cache", "folder", "shards"):
        assert rows[path]["img_s"] > 0 and rows[path]["data_img_s"] > 0 and rows[path]["pct_ceiling"] > 0, path
