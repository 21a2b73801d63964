"""One-line messages for mix mistakes: the keys that exist, each sentence once."""

from __future__ import annotations

import pytest
from _trainer_utils import CONFIGS

from mixcut.cli import preflight


def message(capsys, tmp_path, *overrides: str) -> str:
    with pytest.raises(SystemExit) as exc:
        preflight(["train.py", *overrides, f"hydra.run.dir={tmp_path}"], str(CONFIGS))
    assert exc.value.code == 2
    return capsys.readouterr().err.strip()


def test_alpha_under_deit_names_the_alpha_keys(capsys, tmp_path):
    err = message(capsys, tmp_path, "mix.alpha=1.0")
    assert "mix.mixup_alpha" in err and "mix.cutmix_alpha" in err and err.count("\n") == 0


def test_unknown_key_lists_the_mixers_options(capsys, tmp_path):
    err = message(capsys, tmp_path, "mix=mixup", "mix.switch_prob=0.3")
    assert "mix=mixup takes: " in err and "mix.alpha" in err and "did you mean" not in err


def test_unknown_mode_is_said_once(capsys, tmp_path):
    err = message(capsys, tmp_path, "mix.mode=foo")
    assert err.count("unknown mix mode 'foo'") == 1, err
