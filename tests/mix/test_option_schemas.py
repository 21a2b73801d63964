"""Each mixer's option schema (the ``mix`` config group) matches its builder, so the
registry, the schemas and the YAML files cannot drift apart."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import yaml

from mixcut.mix import MIXERS, create_mixer
from mixcut.mix.base import MixOptions
from mixcut.mix.factory import COMMON_OPTIONS, accepted_options

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "mix"
COMMON_FIELDS = {f.name for f in fields(MixOptions)}


def builder_parameters(builder) -> dict[str, inspect.Parameter]:
    target = builder.__init__ if inspect.isclass(builder) else builder
    return {n: p for n, p in inspect.signature(target).parameters.items() if n != "self"}


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_schema_fields_are_the_builder_options(name):
    entry = MIXERS[name]
    own_schema = {f.name for f in fields(entry.options)} - COMMON_FIELDS
    own_builder = accepted_options(name) - set(COMMON_OPTIONS)
    assert own_schema == own_builder, (
        f"mix={name}: schema-only {own_schema - own_builder}, builder-only {own_builder - own_schema}"
    )
    assert issubclass(entry.options, MixOptions)
    assert entry.options().name == name


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_schema_defaults_are_the_builder_defaults(name):
    entry = MIXERS[name]
    params = builder_parameters(entry.builder)
    for f in fields(entry.options):
        if f.name in COMMON_FIELDS or params[f.name].default is inspect.Parameter.empty:
            continue
        default = f.default_factory() if f.default is MISSING else f.default
        builder_default = params[f.name].default
        if isinstance(builder_default, tuple):
            builder_default = list(builder_default)
        if builder_default is None and default == {}:  # YAML cannot hold None for a mapping field: {} means "none given"
            continue
        assert default == builder_default, (
            f"mix={name}: {f.name} schema default {default!r} != builder default {builder_default!r}"
        )


def test_common_options_are_taken_by_every_mixer():
    assert COMMON_FIELDS - {"name"} <= set(COMMON_OPTIONS)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_mix_yaml_uses_a_registered_schema(path):
    cfg = yaml.safe_load(path.read_text())
    name = cfg["name"]
    assert name in MIXERS, f"{path.name}: mix name {name!r} is not registered"
    assert f"/schema/mix/{name}@_here_" in cfg["defaults"], f"{path.name} must pull in /schema/mix/{name}@_here_"
    options = {k: v for k, v in cfg.items() if k not in ("defaults", "name")}
    for key in ("lam_clip", "minmax", "scale"):
        if isinstance(options.get(key), list):
            options[key] = tuple(options[key])
    create_mixer(name, num_classes=10, **options)  # the file's values build


def test_every_registered_mixer_has_a_yaml_file():
    names = {yaml.safe_load(p.read_text())["name"] for p in CONFIGS.glob("*.yaml")}
    assert set(MIXERS) <= names
