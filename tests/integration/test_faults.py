"""Faults injected for real: SIGKILL at chosen and random moments, SIGTERM/SIGINT/SIGUSR1,
NaN losses, full and read-only disks, hostile files. Kills, signals and disks are real
`python train.py` processes; errors whose reporting needs no process of its own run in this
process inside cli.report_errors. The reference is an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from _trainer_utils import EXACT, REPO, assert_same_tensors, checkpoint, compose, epochs_logged, run_cli, train

from mixcut.checkpoint import load_checkpoint
from mixcut.cli import report_errors
from mixcut.trainer import run

slow = pytest.mark.slow

ARGS = EXACT + ["model.drop_rate=0.1", "trainer.epochs=3", "mix=deit"]  # 6 steps and 3 eval batches per epoch


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted run with the same settings (in this process: no launch)."""
    out = tmp_path_factory.mktemp("reference")
    train(ARGS, out)
    return out


@pytest.fixture(scope="module")
def reference(reference_run):
    """Its final weights."""
    return checkpoint(reference_run)["model"]


def _reported(overrides: list[str], run_dir, capsys) -> tuple[int, str]:
    """An in-process run inside cli.report_errors, as train.py's main runs it: (exit code, stderr).
    For errors whose launch would prove nothing more: other tests here show that train.py exits this way."""
    with pytest.raises(SystemExit) as exit_info, report_errors():
        train(overrides, run_dir)
    return exit_info.value.code, capsys.readouterr().err


def _train(run_dir, extra=(), faults="", **kw):
    env = {"MIXCUT_FAULTS": faults} if faults else {}
    return run_cli(ARGS + [f"hydra.run.dir={run_dir}", *extra], cwd=run_dir.parent, env=env, **kw)


def _resume_and_check(run_dir, reference):
    proc = _train(run_dir, ["trainer.resume=auto"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_tensors(checkpoint(run_dir)["model"], reference)
    assert epochs_logged(run_dir) == [1, 2, 3]
    assert not list((run_dir / "checkpoints").glob(".*tmp"))  # stale temporary files were cleaned up


# Kill points visited in turn by one run directory; each attempt resumes from what the previous kill left.
# Counts are per process (mixcut.runtime.faults), so after a resume "save=1" is epoch 2's checkpoint.
KILLS = [
    ("kill@eval=2", None),  # during epoch 1's evaluation: nothing saved yet, the next attempt starts over
    ("kill@step=9", (1, 0)),  # mid-step in epoch 2: resume from the end of epoch 1
    ("kill@save=1", (1, 0)),  # while writing epoch 2's checkpoint: the old one survives, its temporary file stays behind
    ("kill@eval=2", (1, 0)),  # during epoch 2's evaluation
]


@slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, reference):
    """SIGKILL in an evaluation before anything is saved, in a step, in a checkpoint write and in a later
    evaluation, resuming after each: the final weights equal the uninterrupted run's. (One chain of attempts
    rather than one run per kill point: three launches fewer, the same kill points and checks.)"""
    run_dir = tmp_path / "run"
    for i, (fault, state_after_kill) in enumerate(KILLS):
        proc = _train(run_dir, ["trainer.resume=auto"] if i else [], faults=fault)
        assert proc.returncode == -signal.SIGKILL, (fault, proc.stderr[-2000:])
        if state_after_kill is None:
            assert not (run_dir / "checkpoints" / "last.pt").exists(), fault
        else:
            ck = checkpoint(run_dir)  # loadable
            assert (ck["state"]["epoch"], ck["state"]["batch"]) == state_after_kill, fault
        if fault.startswith("kill@save"):
            assert list((run_dir / "checkpoints").glob(".*tmp")), "the killed write left no temporary file"
    _resume_and_check(run_dir, reference)


@slow
def test_step_checkpoints_resume_mid_epoch_at_the_exact_batch(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = _train(run_dir, ["trainer.ckpt_every_steps=2"], faults="kill@step=10")
    assert proc.returncode == -signal.SIGKILL
    ck = checkpoint(run_dir)
    assert (ck["state"]["epoch"], ck["state"]["batch"], ck["state"]["global_step"]) == (1, 2, 8)
    proc = _train(run_dir, ["trainer.ckpt_every_steps=2", "trainer.resume=auto"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_tensors(checkpoint(run_dir)["model"], reference)
    assert epochs_logged(run_dir) == [1, 2, 3]


def _kill_at_random_moments(run_dir, rng: random.Random, window: float) -> tuple[int, subprocess.Popen]:
    """Attempts of one run, the first four SIGKILLed a random 0-``window`` s after their training banner
    (in train.log), then resumed, until one finishes. Returns (kills, the last process)."""
    log = run_dir / "train.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def started() -> int:  # training banners logged so far
        return log.read_text().count("[mixcut][INFO] mixcut: ") if log.exists() else 0

    kills = 0
    for attempt in range(6):  # four killed at random, then two left to finish (each attempt is a launch)
        args = ARGS + [f"hydra.run.dir={run_dir}"] + (["trainer.resume=auto"] if attempt else [])
        before = started()
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "train.py"), *args],
            cwd=run_dir.parent,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 300
        while proc.poll() is None and started() == before and time.time() < deadline:
            time.sleep(0.02)
        try:
            proc.wait(timeout=rng.uniform(0.0, window) if attempt < 4 else 600)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        if (run_dir / "checkpoints" / "last.pt").exists():
            checkpoint(run_dir)  # always loadable
        if (run_dir / "metrics.jsonl").exists():
            logged = epochs_logged(run_dir)
            assert logged == sorted(set(logged))
        if proc.returncode == 0:
            break
    return kills, proc


@slow
def test_sigkill_at_random_moments(tmp_path, reference):
    """Kill a real run from outside at random moments of its training, resume each time, until it finishes.

    Each kill falls a random 0-1.5 s (an epoch takes about 1 s on a loaded CPU) after the attempt has
    started training, so the kills land in steps, evaluations and saves, not in the imports. On a quiet
    machine the whole run can take under a second after its banner and finish before the first kill:
    then the test starts over in a fresh directory with a shorter window. The last attempts are not
    killed, so the test ends on a slow machine too."""
    rng = random.Random(1234)
    window = 1.5
    for tries in range(4):
        run_dir = tmp_path / f"run{tries}"
        kills, proc = _kill_at_random_moments(run_dir, rng, window)
        if kills:
            break
        window /= 4
    assert kills >= 1, "no attempt was killed: the test did not test anything"
    assert proc.returncode == 0, "the run never finished"
    assert_same_tensors(checkpoint(run_dir)["model"], reference)
    assert epochs_logged(run_dir) == [1, 2, 3]


def _signal_after_first_epoch(run_dir, sig, env):
    """Start a real training process, send ``sig`` once epoch 1 is logged; return it and its output."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *ARGS, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (run_dir / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    return (proc, *proc.communicate(timeout=120))


@slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop_saves_and_explains_how_to_resume(tmp_path, reference, sig):
    run_dir = tmp_path / "run"
    proc, out, err = _signal_after_first_epoch(run_dir, sig, dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode != 0
    assert "trainer.resume=auto" in out + err and str(run_dir) in out + err
    ck = checkpoint(run_dir)
    assert ck["state"]["epoch"] >= 1
    if sig == signal.SIGTERM:  # SIGINT stops through the same handler and save; one exact resume is enough
        _resume_and_check(run_dir, reference)


@slow
def test_slurm_warning_saves_and_requeues_the_job(tmp_path, reference):
    """SIGUSR1 (SLURM's time-limit/preemption warning) under plain sbatch: checkpoint
    at the step boundary, then ``scontrol requeue $SLURM_JOB_ID`` (a fake on PATH)."""
    run_dir = tmp_path / "run"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls"
    fake = bin_dir / "scontrol"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    env = dict(os.environ, PYTHONUNBUFFERED="1", SLURM_JOB_ID="4242", PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc, out, err = _signal_after_first_epoch(run_dir, signal.SIGUSR1, env)
    assert proc.returncode != 0, "a warned job stops after saving; SLURM starts it again"
    assert calls.read_text().split() == ["requeue", "4242"]
    assert checkpoint(run_dir)["state"]["epoch"] >= 1
    _resume_and_check(run_dir, reference)


def _make_bad_folder(root):
    from PIL import Image

    train = root / "train"
    for c, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        (train / c).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (12, 12), colour).save(train / c / f"ok_{i}.jpg")
    a = train / "a"
    good = (a / "ok_0.jpg").read_bytes()
    (a / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (a / "empty.jpg").write_bytes(b"")
    (a / "notes.png").write_text("this is not an image")
    Image.new("CMYK", (12, 12), (0, 200, 200, 0)).save(a / "cmyk.jpg")
    Image.new("L", (12, 12), 128).save(a / "gray.png")
    Image.new("RGBA", (12, 12), (200, 30, 30, 128)).save(a / "alpha.png")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(a / "tiny.png")
    Image.new("RGB", (12, 12), (200, 30, 30)).save(a / "UPPER.JPG", format="JPEG")
    return ["truncated.jpg", "empty.jpg", "notes.png"]


@slow
def test_bad_images_are_skipped_and_named(tmp_path, capsys):
    bad = _make_bad_folder(tmp_path / "data")
    args = [
        "data=folder",
        f"data.root={tmp_path / 'data'}",
        "data.img_size=12",
        "data.num_workers=2",
        "data.val_fraction=0",
        "model.name=cifar_resnet20",
        "trainer.batch_size=4",
        "trainer.epochs=2",
        "trainer.device=cpu",
        "aug=cifar",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    for name in bad:
        assert f"skipping unreadable image {tmp_path / 'data' / 'train' / 'a' / name}" in log
        assert log.count(f"unreadable image {tmp_path / 'data' / 'train' / 'a' / name}") == 1  # named once, not every epoch
    assert "3 unreadable image(s) skipped this epoch" in log
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # 12 good + 5 valid odd ones = 17 usable of 20 files, batch 4, drop_last: every usable image is trained on
    assert [r["bad_images"] for r in records] == [3, 3]
    assert sum(r["train_images"] for r in records) >= 2 * 14

    code, err = _reported(args[:-1] + ["data.on_bad_image=error"], tmp_path / "run_error", capsys)  # without hydra.run.dir
    assert code == 2
    assert "unreadable image" in err and str(tmp_path / "data" / "train" / "a") in err
    assert "Traceback" not in err


def test_valid_odd_images_decode_to_rgb(tmp_path):
    from mixcut.data.folder import load_rgb

    _make_bad_folder(tmp_path)
    for name in ("cmyk.jpg", "gray.png", "alpha.png", "tiny.png", "UPPER.JPG"):
        img = load_rgb(str(tmp_path / "train" / "a" / name))
        assert img.mode == "RGB", name


@pytest.mark.parametrize(
    "layout,message",
    [
        ("no_images", "holds no images"),
        ("empty_class", "class folder .*b holds no images"),
        ("no_classes", "no class folders"),
    ],
)
def test_empty_data_is_a_clear_error_before_training(tmp_path, layout, message):
    from mixcut.config import ConfigError

    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    if layout != "no_classes":
        (root / "train" / "a").mkdir()
        (root / "train" / "b").mkdir()
        (root / "train" / "a" / "readme.txt").write_text("x")
    if layout == "empty_class":
        from PIL import Image

        Image.new("RGB", (8, 8)).save(root / "train" / "a" / "x.png")
    with pytest.raises(ConfigError, match=message):
        run(compose(["data=folder", f"data.root={root}", "trainer.device=cpu"]), tmp_path / "run")


@slow
def test_nan_loss_skip_counts_and_continues(tmp_path):
    proc = _train(tmp_path / "run", ["trainer.epochs=1"], faults="nan@loss=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["nonfinite_skipped"] == 1 and summary["global_step"] == 5


@slow
def test_nan_loss_abort_saves_debug_checkpoint(tmp_path):
    proc = _train(tmp_path / "run", ["trainer.on_nonfinite=abort"], faults="nan@loss=8")
    assert proc.returncode == 3
    assert "non-finite loss" in proc.stderr and "at step 8" in proc.stderr
    debug = load_checkpoint(tmp_path / "run" / "checkpoints" / "nonfinite_debug.pt")
    assert debug["state"]["global_step"] == 7
    assert "Traceback" not in proc.stderr


def test_diverging_run_aborts_after_repeated_nonfinite_losses(tmp_path, capsys):
    code, err = _reported(ARGS + ["optim.lr=1e30", "trainer.max_nonfinite=3", "mix=none"], tmp_path / "run", capsys)
    assert code == 3
    assert "3 non-finite losses or gradients in a row" in err


def _in_private_mount(tmp_path, setup: str, args: list[str], after: str = "true") -> subprocess.CompletedProcess:
    """Run train.py in a private mount namespace with a tmpfs at tmp_path/disk,
    then the shell command ``after`` (the tmpfs vanishes with the namespace)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not available")
    disk = tmp_path / "disk"
    disk.mkdir()
    flag = [] if os.geteuid() == 0 else ["-r"]
    cmd = " ".join([sys.executable, str(REPO / "train.py"), *args])
    script = f"mount -t tmpfs {setup} tmpfs {disk} && cd {tmp_path} && {{ {cmd}; rc=$?; {after}; exit $rc; }}"
    probe = subprocess.run(["unshare", *flag, "-m", "sh", "-c", f"mount -t tmpfs tmpfs {disk} && true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.decode()[:200]}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(["unshare", *flag, "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)


@slow
def test_full_disk_stops_with_path_and_keeps_last_checkpoint(tmp_path, reference_run):
    # a checkpoint of these settings weighs what the reference's does: give the run room for last.pt but
    # not for the next temporary file beside it
    size = (reference_run / "checkpoints" / "last.pt").stat().st_size
    kib = int(1.5 * size / 1024) + 32  # room for one checkpoint, not for its replacement beside it
    run_dir = tmp_path / "disk" / "run"
    survivor = tmp_path / "survivor.pt"  # copied out before the tmpfs vanishes, loaded here (no extra process)
    proc = _in_private_mount(
        tmp_path,
        f"-o size={kib}k",
        ARGS + [f"hydra.run.dir={run_dir}", "trainer.save_best=false", "trainer.ckpt_every_steps=1"],
        after=f"cp {run_dir}/checkpoints/last.pt {survivor}",
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert load_checkpoint(survivor)["state"]["global_step"] == 1  # the first checkpoint survived the failed second save
    assert "could not write checkpoint" in proc.stderr and "No space left on device" in proc.stderr
    assert str(run_dir / "checkpoints" / "last.pt") in proc.stderr
    assert "Traceback" not in proc.stderr


@slow
def test_read_only_run_directory_is_refused_up_front(tmp_path):
    run_dir = tmp_path / "disk" / "run"
    proc = _in_private_mount(tmp_path, "-o ro", ARGS + [f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"run directory {run_dir} is not writable" in proc.stderr


def test_crafted_checkpoint_is_refused_by_the_cli(tmp_path, capsys):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": Evil()}))
    code, err = _reported(ARGS + ["trainer.eval_only=true", f"trainer.resume={evil}"], tmp_path / "run", capsys)
    assert code == 2
    assert "refusing to load" in err and not marker.exists()


@slow
def test_wandb_key_is_never_written(tmp_path):
    canary = "mixcut-canary-" + "7" * 26
    run_dir = tmp_path / "run"
    proc = run_cli(
        ARGS + ["trainer.epochs=1", "logger=wandb", "logger.mode=offline", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={"WANDB_API_KEY": canary, "WANDB_DIR": str(run_dir)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(run_dir.rglob("*.wandb")), "wandb wrote no offline run"
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path
