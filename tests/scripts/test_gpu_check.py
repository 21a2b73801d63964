"""scripts/gpu_check.sh without a GPU: the plan it prints (--dry-run), its usage errors, and the whole script at
a toy size on the CPU (--cpu-tiny): every step runs, its status and numbers reach the JSON and the Markdown
table, and a failed step is recorded without stopping the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _trainer_utils import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"
STEPS = ["env", "train", "resume", "eval_cpu", "fp16_fault", "host_sync", "cuda_tests"]
STEPS += ["bench_train", "bench_mix", "bench_compile"]


def _run(*args: str, timeout: int = 60, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", **env)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full, timeout=timeout)


def test_dry_run_prints_every_step_with_its_limit(tmp_path):
    proc = _run(str(tmp_path / "out"), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()[1:]
    assert [ln.split()[0] for ln in lines] == STEPS
    plan = dict((ln.split()[0], ln) for ln in lines)
    for flag in ("--model resnet50", "--img-size 224", "--amp bf16", "--channels-last", "--compile", "--device cuda"):
        assert flag in plan["bench_train"], flag
    assert "MIXCUT_FAULTS=nan@loss=3" in plan["fp16_fault"] and "trainer.amp=fp16" in plan["fp16_fault"]
    assert "trainer.device=cpu" in plan["eval_cpu"] and "-m cuda" in plan["cuda_tests"]
    assert "--device cuda" in plan["bench_mix"] and "--device cuda" in plan["bench_compile"]
    limits = [int(ln.split()[1].rstrip("s")) for ln in lines]
    assert all(10 <= s <= 300 for s in limits)
    assert "budget 570s" in proc.stdout  # the whole check fits ten minutes with room for the machine's start


def test_usage_errors(tmp_path):
    assert _run().returncode == 2
    assert _run(str(tmp_path), "--bogus").returncode == 2


# The steps that read another step's output and whose numbers the report parses (4 process starts: each
# costs seconds on a small machine). env, cuda_tests, host_sync and the benchmarks are plain commands, checked
# by the dry run; their scripts have their own smoke tests, and the failure test runs the "absent" path.
TINY_STEPS = ["train", "resume", "eval_cpu", "fp16_fault"]


@pytest.mark.slow
def test_cpu_tiny_runs_the_steps_and_writes_the_report(tmp_path):
    out = tmp_path / "out"
    proc = _run(str(out), "--cpu-tiny", ONLY=" ".join(TINY_STEPS), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert list(report["steps"]) == TINY_STEPS
    status = {name: s["status"] for name, s in report["steps"].items()}
    assert set(status.values()) == {"ok"}, {k: (v, report["steps"][k]["result"]) for k, v in status.items()}
    assert report["all_ok"] is True and report["card"] == "no CUDA device"
    assert "top1" in report["steps"]["train"]["result"] and "epochs 4" in report["steps"]["resume"]["result"]
    assert "CPU top1" in report["steps"]["eval_cpu"]["result"]
    assert "skipped updates 1" in report["steps"]["fp16_fault"]["result"]
    table = (out / "gpu_check.md").read_text()
    assert "| resume | ok |" in table and "no CUDA device" in table


@pytest.mark.slow
def test_a_failed_step_is_recorded_and_the_rest_run(tmp_path):
    """A training run that fails (a bad override) is recorded with its last lines; the steps that need its
    checkpoint are skipped, the others run, the report is written and the exit status says so."""
    out = tmp_path / "out"
    proc = _run(str(out), "--cpu-tiny", ONLY="train resume eval_cpu host_sync", EXTRA="trainer.no_such_key=1", timeout=180)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    steps = report["steps"]
    assert list(steps) == ["train", "resume", "eval_cpu", "host_sync"] and report["all_ok"] is False
    assert steps["train"]["status"].startswith("failed (exit") and "no_such_key" in steps["train"]["result"]
    assert steps["resume"]["status"] == "skipped (no run/checkpoints/last.pt)"
    assert steps["eval_cpu"]["status"].startswith("skipped")
    assert steps["host_sync"]["status"].startswith("absent")  # this file holds no host_sync test
    assert "| train | failed (exit" in (out / "gpu_check.md").read_text()
