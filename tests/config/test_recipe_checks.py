"""The airbench94 options fail early with a sentence naming the key (mixcut.config.check)."""

from __future__ import annotations

import pytest
from _trainer_utils import FAST, compose

from mixcut.config import ConfigError, check

CASES = {
    "decoupled and lr_scale_batch": (["optim=airbench", "optim.lr_scale_batch=512"], "drop optim.lr_scale_batch"),
    "decoupled and layer_decay": (["optim=airbench", "optim.layer_decay=0.7"], "optim.layer_decay=null"),
    "norm bias scale": (["optim.norm_bias_lr_scale=0"], "optim.norm_bias_lr_scale must be > 0"),
    "warmup fraction": (["sched=warmdown", "sched.warmup_fraction=1.0"], r"sched.warmup_fraction must be in \[0, 1\)"),
    "last epoch fraction": (["trainer.last_epoch_fraction=0"], r"trainer.last_epoch_fraction must be in \(0, 1\]"),
    "lookahead every": (["trainer.lookahead=true", "trainer.lookahead_every=0"], "trainer.lookahead_every must be >= 1"),
    "alternate without cache": (["aug=airbench", "data.cache=none"], "add data.cache=device"),
    "alternate, folder decoded by workers": (["aug=airbench", "data=folder", "data.root=/tmp"], "add data.cache=device"),
}


@pytest.mark.parametrize("name", CASES)
def test_recipe_option_errors_name_the_key(name):
    overrides, message = CASES[name]
    with pytest.raises(ConfigError, match=message):
        check(compose(FAST + overrides))


def test_bad_choices_are_refused_at_composition():
    from hydra.errors import ConfigCompositionException

    for bad in ("eval.tta=rotate", "aug.hflip_mode=sometimes"):
        with pytest.raises(ConfigCompositionException):
            compose(FAST + [bad])
