"""Every file under scripts/ runs through its real entry point on a tiny case (a smoke test, never a timing),
so a merge cannot silently break one: the Python scripts answer ``--help`` as scripts, the shell scripts
parse, and each has a tiny run here or in the test named in SMOKE_TESTS. The multi-GPU launch commands
the README documents (scripts/train_ddp.sh, plain sbatch, torchrun with a c10d rendezvous) are run as
written, with Gloo on CPU."""

from __future__ import annotations

import os
import random
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _trainer_utils import EXACT, REPO, load_script, make_image_folder

SCRIPTS = REPO / "scripts"

# script -> the test file that runs it on a tiny case (this file unless named otherwise)
SMOKE_TESTS = {
    "bench_compile.py": "tests/scripts/test_scripts.py",
    "bench_mix.py": "tests/mix/test_mix.py",  # test_bench_script_runs
    "bench_train.py": "tests/scripts/test_bench_train.py",
    "evaluate.py": "tests/eval/test_evaluate.py",  # and tests/eval/test_claims_cli.py (--claims)
    "gpu_check.sh": "tests/scripts/test_gpu_check.py",
    "make_canvas_set.py": "tests/eval/test_claims_cli.py",
    "make_shards.py": "tests/data/test_shards.py",
    "make_subset.py": "tests/scripts/test_scripts.py",
    "summarize.py": "tests/eval/test_evaluate.py",
    "train_ddp.sh": "tests/scripts/test_scripts.py",
    "visualize_mix.py": "tests/mix/test_variants.py",  # test_visualize_script_writes_a_grid
    "dev/bf16_cpu_nan.py": "tests/scripts/test_scripts.py",
    "dev/fingerprint.sh": "tests/scripts/test_scripts.py",  # syntax only: its fixed runs take minutes
    "dev/min_versions.py": "tests/scripts/test_scripts.py",
    "reproduce/airbench_split.py": "tests/integration/test_airbench_recipe.py",
    "reproduce/cifar10_airbench.sh": "tests/integration/test_airbench_recipe.py",
    "reproduce/cifar10_claims.sh": "tests/integration/test_claims_study.py",
    "reproduce/cifar10_mixers.sh": "tests/scripts/test_scripts.py",
    "reproduce/publish_claims.py": "tests/scripts/test_publish_claims.py",
    "slurm/train.sbatch": "tests/scripts/test_scripts.py",
    "sort_imagenet_val.py": "tests/data/test_imagenet_layout.py",  # sorts a tiny flat Kaggle val/
}


def _env(**extra: str) -> dict:
    """The environment of a script run: this checkout's mixcut, one thread, no wandb."""
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", WANDB_MODE="disabled", **extra)


def _all_scripts() -> list[str]:
    return sorted(
        str(p.relative_to(SCRIPTS)) for p in SCRIPTS.rglob("*") if p.is_file() and p.suffix in (".py", ".sh", ".sbatch")
    )


def test_every_script_has_a_smoke_test():
    """A new script gets a line in SMOKE_TESTS and a test; a removed one loses its line."""
    assert _all_scripts() == sorted(SMOKE_TESTS)
    for script, test_file in SMOKE_TESTS.items():
        text = (REPO / test_file).read_text()
        assert Path(script).name in text or Path(script).stem in text, f"{test_file} does not mention {script}"


@pytest.mark.slow
def test_python_scripts_answer_help_as_scripts(tmp_path):
    """Each ``scripts/**/*.py`` run as ``__main__`` (its import lines, its sys.path handling, its parser) in one
    interpreter, from a directory outside the checkout."""
    scripts = [str(SCRIPTS / s) for s in _all_scripts() if s.endswith(".py")]
    code = (
        "import runpy, sys\n"
        "for path in sys.argv[1:]:\n"
        "    sys.argv = [path, '--help']\n"
        "    try:\n"
        "        runpy.run_path(path, run_name='__main__')\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (path, e.code)\n"
        "    else:\n"
        "        raise AssertionError(path + ': --help did not exit')\n"
        "    print('ok', path, flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *scripts], cwd=tmp_path, capture_output=True, text=True, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("\nok ") + proc.stdout.startswith("ok ") == len(scripts)


@pytest.mark.parametrize("script", [s for s in SMOKE_TESTS if s.endswith((".sh", ".sbatch"))])
def test_shell_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_bench_compile_eager_with_every_kind_of_mixer(capsys):
    """Mixing off, a pixel mixer and Manifold Mixup (hooks on the model); compiled runs are the GPU check's."""
    bench = load_script("bench_compile")
    bench.main(
        ["--model", "cifar_resnet20", "--size", "16", "--batch", "4", "--num-classes", "3", "--warmup", "1", "--steps", "1"]
        + ["--mixers", "none,cutmix,manifold_mixup", "--eager-only"]
    )
    out = capsys.readouterr().out
    for name in ("none", "cutmix", "manifold_mixup"):
        assert re.search(rf"^{name}\s+eager\s+[\d.]+ img/s", out, re.M), out


def test_make_subset_links_disjoint_balanced_splits(tmp_path):
    src = make_image_folder(tmp_path / "src", classes=2, per_class=6) / "train"
    out, twin = tmp_path / "subset", tmp_path / "twin"
    argv = [str(src), str(out), "--train-per-class", "3", "--val-per-class", "2", "--train-as-val", str(twin)]
    assert load_script("make_subset").main(argv) == 0
    for c in ("class_0", "class_1"):
        train = {p.name for p in (out / "train" / c).iterdir()}
        val = {p.name for p in (out / "val" / c).iterdir()}
        assert len(train) == 3 and len(val) == 2 and not train & val
        assert {p.name for p in (twin / "val" / c).iterdir()} == train
    assert all(p.is_symlink() for p in (out / "train" / "class_0").iterdir())
    assert load_script("make_subset").main(argv) == 0  # a rerun changes nothing


def test_bf16_cpu_nan_script_counts_models(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bf16_cpu_nan.py", "--models", "1", "--dtype", "fp32"])
    load_script("dev/bf16_cpu_nan").main()
    assert "0/1 models gave non-finite gradients (fp32" in capsys.readouterr().out


def test_min_versions_pins_every_declared_minimum():
    """scripts/dev/min_versions.py (what `make test-min` installs): one ``==`` pin per ``>=`` in pyproject.toml."""
    text = (REPO / "pyproject.toml").read_text()
    deps = text.split("\ndependencies = [", 1)[1].split("]", 1)[0]
    dev = text.split("\ndev = [", 1)[1].split("]", 1)[0]
    declared = {m.group(1).lower(): m.group(2) for m in re.finditer(r'"([A-Za-z0-9_.-]+)>=([^"]+)"', deps + dev)}
    pins = load_script("dev/min_versions").minimum_pins(REPO / "pyproject.toml")
    assert pins == [f"{name}=={version}" for name, version in sorted(declared.items())]
    assert any(p.startswith("torch==") for p in pins) and any(p.startswith("timm==") for p in pins)


# ----------------------------------------------------------------- the documented multi-GPU commands
def _readme_block_after(heading: str) -> list[str]:
    """The lines of the first ```bash block under ``## heading`` in the README, continuation lines joined."""
    text = (REPO / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [ln for ln in block.replace("\\\n", " ").splitlines() if ln.strip() and not ln.startswith("#")]


def test_train_ddp_sh_is_the_readme_torchrun_command(tmp_path):
    """`scripts/train_ddp.sh 8 ARGS` runs exactly the README's "which is" torchrun line (the one the torchrun
    tests launch with 2 processes); a stand-in python records the command."""
    ddp, torchrun = _readme_block_after("Multi-GPU")[:2]
    assert ddp.startswith("scripts/train_ddp.sh 8 ") and torchrun.startswith("torchrun --standalone --nproc_per_node=8 ")
    record = tmp_path / "argv"
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    argv = shlex.split(ddp)
    proc = subprocess.run(["bash", str(REPO / argv[0]), *argv[1:]], env=_env(PYTHON=str(fake)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ran = record.read_text().splitlines()
    assert ran[:2] == ["-m", "torch.distributed.run"]  # what the torchrun executable runs
    expected = shlex.split(torchrun)[1:]
    assert ran[2:] == expected[:2] + ["--max-restarts=0"] + expected[2:]
    proc = subprocess.run(["bash", str(SCRIPTS / "train_ddp.sh")], env=_env(PYTHON=str(fake)), capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr


def _free_port() -> int:
    """A port in [20000, 40000) nobody listens on: a SLURM job id maps to port 20000 + id % 20000."""
    for _ in range(100):
        port = random.randrange(20000, 40000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


TINY_DIST = EXACT + ["trainer.epochs=1", "data.train_size=64", "data.val_size=20", "trainer.batch_size=8"]


@pytest.mark.slow
@pytest.mark.dist
def test_plain_sbatch_script_trains_two_tasks(tmp_path):
    """scripts/slurm/train.sbatch as the README runs it, under a stand-in ``srun`` that starts its command as two
    SLURM tasks on this machine: ranks from SLURM_PROCID, rendezvous from the job, Gloo on CPU, one run
    directory outputs/slurm/<job id>."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # a symlink would lose the venv
    (bin_dir / "python").chmod(0o755)
    (bin_dir / "srun").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$@" > {tmp_path / "srun_args"}\n'
        "shift  # --kill-on-bad-exit=1\n"
        'pids=(); for i in 0 1; do SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=2 "$@" & pids+=($!); done\n'
        'rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit $rc\n'
    )
    (bin_dir / "srun").chmod(0o755)
    job = str(_free_port() - 20000)
    submit = tmp_path / "submit"
    submit.mkdir()
    for name in ("train.py", "configs"):  # the checkout, seen from the directory sbatch was called in
        (submit / name).symlink_to(REPO / name)
    env = _env(PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID=job, SLURM_SUBMIT_DIR=str(submit))
    env["SLURM_JOB_NODELIST"] = "localhost"
    cmd = ["bash", str(SCRIPTS / "slurm" / "train.sbatch"), *TINY_DIST]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp_path / "srun_args").read_text().split()[:3] == ["--kill-on-bad-exit=1", "python", "train.py"]
    import json

    summary = json.loads((submit / "outputs" / "slurm" / job / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["finished"] is True
    assert [p.name for p in (submit / "outputs" / "slurm").iterdir()] == [job]


@pytest.mark.slow
@pytest.mark.dist
def test_multi_node_torchrun_command_with_a_c10d_rendezvous(tmp_path):
    """The README's multi-node line on one node: every flag as written, the run directory named by --rdzv-id."""
    (line,) = _readme_block_after("Multi-node")
    argv = shlex.split(line)
    assert argv[0] == "torchrun" and "train.py" in argv
    flags = argv[1 : argv.index("train.py")]
    values = dict(f.lstrip("-").split("=", 1) for f in flags)
    assert set(values) == {"nnodes", "nproc_per_node", "rdzv-backend", "rdzv-endpoint", "rdzv-id"}
    values.update({"nnodes": "1", "nproc_per_node": "2", "rdzv-endpoint": f"localhost:{_free_port()}", "rdzv-id": "readme-run"})
    cmd = [sys.executable, "-m", "torch.distributed.run", *(f"--{k}={v}" for k, v in values.items()), str(REPO / "train.py")]
    proc = subprocess.run(cmd + TINY_DIST, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp_path / "outputs" / "torchrun" / "readme-run" / "summary.json").is_file()


@pytest.mark.slow
def test_cifar10_mixers_study_at_a_tiny_size(tmp_path):
    """scripts/reproduce/cifar10_mixers.sh: Manifold Mixup (the one mixer inside the model) for one epoch of two
    batches, its evaluation with one corruption, the table; a rerun trains nothing again."""
    src = make_image_folder(tmp_path / "src", classes=2, per_class=10, size=32)
    out = tmp_path / "study"
    env = _env(
        PYTHON=sys.executable,
        EPOCHS="1",
        METHODS="manifold_mixup",
        SEEDS_MAIN="0",
        EXTRA="data.cache=none data.img_size=16 data.num_workers=0 trainer.batch_size=8 data.val_fraction=0.2 "
        "sched.warmup_epochs=0 trainer.limit_train_batches=2",
        EVAL_EXTRA="--corruption-names gaussian_noise --severities 1 trainer.batch_size=8 data.num_workers=0",
    )
    cmd = ["bash", str(SCRIPTS / "reproduce" / "cifar10_mixers.sh"), str(src), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = out / "manifold_mixup-s0"
    assert (run / "summary.json").is_file() and (run / "eval" / "last.json").is_file()
    assert "manifold_mixup" in (out / "results.md").read_text() and (out / "results.png").is_file()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "== " not in again.stdout


def test_readme_slurm_launcher_command_composes():
    """The README's submitit command, every override as written (submitting needs a cluster: the launch itself is
    the sbatch test's stand-in above and tests/runtime/test_distributed.py's environment tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mixcut.config import register_configs

    (line,) = _readme_block_after("SLURM")
    argv = shlex.split(line)
    assert argv[:3] == ["python", "train.py", "-m"]
    overrides = argv[3:]
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.nodes == 2 and launcher.gpus_per_node == 8
    assert launcher.tasks_per_node == 8 and launcher.partition == "gpu" and launcher.timeout_min == 2880
    assert cfg.trainer.resume == "auto" and cfg.model.name == "resnet50" and cfg.data.root == "/data/imagenet"
