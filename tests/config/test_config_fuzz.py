"""Config fuzzing: many random invalid overrides, each refused before the first
step with a one-line message and a non-zero exit (never a torch traceback)."""

from __future__ import annotations

import random
import string

import pytest
from _trainer_utils import CONFIGS

from mixcut.cli import preflight

# (override key, invalid values): wrong types and out-of-range values
BAD_VALUES = {
    "trainer.epochs": ["0", "-3", "ten", "1.5"],
    "trainer.batch_size": ["0", "-1", "big", "[8]"],
    "trainer.grad_accum_steps": ["0", "x"],
    "trainer.amp": ["fp8", "true", "16"],
    "trainer.device": ["gpu", "tpu:0", "npu"],
    "trainer.ema_decay": ["1.5", "0", "-0.1"],
    "trainer.clip_grad": ["0", "-1", "inf?"],
    "trainer.clip_mode": ["agc2", "max"],
    "trainer.log_every": ["0"],
    "trainer.ckpt_every_steps": ["-1"],
    "trainer.on_nonfinite": ["ignore", "retry"],
    "trainer.max_nonfinite": ["0"],
    "trainer.threads": ["0"],
    "trainer.eval_every": ["0", "often"],
    "trainer.deterministic": ["maybe", "2"],
    "optim.lr": ["0", "-0.1", "fast", "[0.1]"],
    "optim.weight_decay": ["-1e-4", "none?"],
    "optim.momentum": ["1.0", "-0.5", "2"],
    "optim.name": ["sgdd", "adam_w", "rmsprop2"],
    "optim.betas": ["[0.9]", "[0.9,0.99,0.1]"],
    "optim.lr_scale_batch": ["0", "-512"],
    "sched.name": ["poly2", "linear!", "cosineannealing"],
    "sched.warmup_epochs": ["-1", "100"],
    "sched.decay_rate": ["0", "1.5", "-0.1"],
    "sched.decay_epochs": ["0", "-30"],
    "data.img_size": ["0", "-32", "large"],
    "data.num_workers": ["-1", "many"],
    "data.val_fraction": ["1.0", "-0.1", "1.5"],
    "data.cache": ["ram", "gpu"],
    "data.on_bad_image": ["ignore", "warn"],
    "data.num_classes": ["0", "-10"],
    "data.repeated_aug": ["-3"],
    "data.std": ["[0,1,1]", "[0.2,0.2]"],
    "aug.hflip": ["1.5", "-0.1"],
    "aug.re_prob": ["2", "-1"],
    "aug.crop_pct": ["0", "1.5"],
    "aug.padding": ["-4"],
    "aug.train_crop": ["random", "center"],
    "aug.auto_augment": ["rand-zz9", "garbage"],
    "aug.scale": ["[0.5,0.1]", "[0,1]", "[0.5]"],
    "loss.label_smoothing": ["-0.1", "1.5", "lots"],
    "loss.name": ["focal", "mse"],
    "mix.prob": ["1.5", "-0.5", "often"],
    "mix.mode": ["pairs", "sample", "global"],
    "mix.pairing": ["roll", "random"],
    "mix.lam_clip": ["[0.7,0.3]", "[-0.1,0.5]", "[0.2,1.5]"],
    "mix.mixup_alpha": ["0", "-1", "x"],
    "mix.cutmix_alpha": ["0", "-0.5"],
    "mix.switch_prob": ["1.5", "-0.2"],
    "mix.minmax": ["[0.5,0.2]", "[0.0,0.5]", "[0.2,1.0]"],
    "logger.mode": ["cloud", "sync"],
}
GROUPS = ["data", "model", "mix", "loss", "optim", "sched", "aug", "trainer", "logger"]


def _random_cases(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.6:
            key = rng.choice(sorted(BAD_VALUES))
            cases.append([f"{key}={rng.choice(BAD_VALUES[key])}"])
        elif kind < 0.8:
            group = rng.choice(GROUPS)
            junk = "".join(rng.choices(string.ascii_lowercase, k=6))
            cases.append([f"{group}.{junk}={rng.randint(0, 9)}"])  # unknown key
        else:
            group = rng.choice(GROUPS)
            junk = "".join(rng.choices(string.ascii_lowercase, k=7))
            cases.append([f"{group}={junk}"])  # unknown choice
    return cases


CASES = _random_cases(80, seed=2024)


@pytest.mark.parametrize("overrides", CASES, ids=[" ".join(c) for c in CASES])
def test_invalid_override_is_refused_in_one_line(overrides, capsys):
    with pytest.raises(SystemExit) as exit_info:
        preflight(["train.py", "trainer.device=cpu", *overrides], str(CONFIGS))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("configuration error: ") and "\n" not in err, err
    assert "Traceback" not in err


def test_valid_overrides_pass_preflight():
    preflight(
        [
            "train.py",
            "mix=cutmix",
            "mix.alpha=0.5",
            "mix.mode=elem",
            "optim=adamw",
            "trainer.device=cpu",
            "hydra.run.dir=/tmp/mixcut-preflight",
        ],
        str(CONFIGS),
    )
