"""A bad configuration stops before the first step with one sentence and a non-zero exit."""

from __future__ import annotations

import pytest
from _trainer_utils import CONFIGS, FAST, compose, run_cli

from mixcut.cli import preflight
from mixcut.config import ConfigError
from mixcut.trainer import run

CASES = {
    "unknown model": (["model.name=resnet19"], "unknown model 'resnet19'.*Did you mean.*resnet18"),
    "missing data dir": (["data=folder", "data.root=/no/such/dir"], "does not exist; expected ROOT/train/<class>"),
    "cifar not downloaded": (
        ["data=cifar10", "data.root=/tmp/mixcut-no-cifar", "data.download=false"],
        "cifar10 not found under .*cifar-10-batches-py",
    ),
    "zero lr": (["optim.lr=0"], "optim.lr must be > 0"),
    "negative lr": (["optim.lr=-0.1"], "optim.lr must be > 0"),
    "batch size": (["trainer.batch_size=0"], "trainer.batch_size must be >= 1"),
    "mix prob": (["mix.prob=1.5"], "mix.prob must be a probability"),
    "smoothing": (["loss.label_smoothing=-0.1"], "loss.label_smoothing must be a probability"),
    "hflip": (["aug.hflip=2"], "aug.hflip must be a probability"),
    "alpha": (["mix=mixup", "mix.alpha=0"], "alpha must be > 0"),
    "mix mode": (["mix.mode=pairs"], "unknown mix mode 'pairs'"),
    "fp16 on cpu": (["trainer.amp=fp16"], "fp16 needs a CUDA device"),
    "cuda missing": (["trainer.device=cuda"], "no CUDA device"),
    "eval without checkpoint": (["trainer.eval_only=true"], "needs a checkpoint"),
    "resume missing": (["trainer.resume=/no/such.pt"], "no such checkpoint"),
    "workers": (["data.num_workers=-1"], "data.num_workers must be >= 0"),
    "too few images": (["data.train_size=4"], "fewer than one batch"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_config_message(name, tmp_path):
    overrides, pattern = CASES[name]
    if name == "cuda missing":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match=pattern):
        run(compose(FAST + overrides), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


# Refused by the preflight that train.py runs before Hydra starts (checked in-process: same function, no launch).
PREFLIGHT_CASES = [
    (["model.name=resnet19"], "configuration error: unknown model 'resnet19'"),
    (["optim.lr=0"], "configuration error: optim.lr must be > 0"),
    (["mix=nosuchmix"], "Could not find 'mix/nosuchmix'"),
]


@pytest.mark.parametrize("args,needle", PREFLIGHT_CASES)
def test_preflight_exits_2_with_one_line(args, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        preflight(["train.py", *args, "trainer.device=cpu"], str(CONFIGS))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err, err


def test_a_grammar_error_has_no_stray_none(capsys):
    """Hydra's grammar errors carry a cause whose text is 'None'; the one line used to end in '; None'."""
    with pytest.raises(SystemExit):
        preflight(["train.py", "trainer.epochs=[", "trainer.device=cpu"], str(CONFIGS))
    err = capsys.readouterr().err.strip()
    assert "no viable alternative" in err and "None" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,needle,before_hydra",
    [
        (["model.name=resnet19"], "configuration error: unknown model 'resnet19'", True),  # refused by the preflight
        # found only when the run reads its data, inside Hydra's main: reported by cli.report_errors
        (["data=folder", "data.root=/no/such/dir"], "configuration error: data directory /no/such/dir does not exist", False),
    ],
)
def test_cli_exits_nonzero_with_one_line(tmp_path, args, needle, before_hydra):
    proc = run_cli(args + ["trainer.device=cpu", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    if before_hydra:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("configuration error:"), proc.stderr
        assert not (tmp_path / "run").exists()  # refused before Hydra made a run directory
