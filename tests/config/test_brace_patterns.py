"""The first cluster command a user types: a shard pattern without quotes (issue 18).
The preflight names the mistake and prints the form to type, before Hydra's grammar error
or the shell's expansion (where Hydra would silently keep the last shard) get a say."""

from __future__ import annotations

import subprocess

import pytest
from _trainer_utils import CONFIGS

from mixcut.cli import brace_pattern_hint, preflight

QUOTED = "\"data.train_shards='/data/train-{000000..000099}.tar'\""


def shell_expanded(word: str) -> list[str]:
    """What bash passes on for ``word`` typed unquoted."""
    return subprocess.run(["bash", "-c", f"printf '%s\\n' {word}"], capture_output=True, text=True, check=True).stdout.split()


def run_preflight(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        preflight(["train.py", "data=shards", *args], str(CONFIGS))
    return e.value.code, capsys.readouterr().err


def test_braces_that_reach_hydra_get_the_quoted_form(capsys):
    code, err = run_preflight(["data.train_shards=/data/train-{000000..000099}.tar"], capsys)
    assert code == 2
    assert QUOTED in err and "mismatched input" not in err


def test_braces_the_shell_expanded_get_the_quoted_form(capsys):
    args = shell_expanded("data.train_shards=/data/train-{000000..000099}.tar")
    assert len(args) == 100
    code, err = run_preflight(args, capsys)
    assert code == 2
    assert "given 100 times" in err and QUOTED in err


def test_the_quoted_forms_pass():
    assert brace_pattern_hint(["data.train_shards='/data/train-{000000..000099}.tar'"]) is None
    assert brace_pattern_hint(['data.train_shards="/data/train-{000000..000099}.tar"']) is None


@pytest.mark.parametrize(
    "args",
    [
        ["trainer.epochs=10", "trainer.epochs=20"],  # a later override of an earlier one
        ["trainer.epochs=1", "trainer.epochs=2"],  # no path around the numbers
        ["data.val_fraction=0.1", "data.val_fraction=0.2"],  # a script's default, then the user's (cifar10_mixers.sh)
        ["data.root=/d/run1", "data.root=/d/run2"],  # two consecutive names: an override, not an expanded range
        ["data.root=/d/run1", "data.root=/d/run3"],  # not consecutive
        ["hydra.run.dir=${oc.env:HOME}/x"],  # an interpolation, not a shard range
        ["+model.kwargs={drop_rate:0.1,drop_path_rate:0.1}"],  # a Hydra dict
    ],
)
def test_other_overrides_are_left_alone(args):
    assert brace_pattern_hint(args) is None
