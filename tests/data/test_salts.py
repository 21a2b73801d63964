"""Every seed of a run is mix_seed(..., SALT) with a salt named in mixcut/data/sampling.py."""

from __future__ import annotations

import ast
from pathlib import Path

import mixcut.data.sampling as sampling

PACKAGE = Path(__file__).resolve().parents[2] / "mixcut"


def test_every_seed_salt_is_named():
    bare = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            called = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(called, "id", getattr(called, "attr", None)) in ("mix_seed", "mix_seeds"):
                args = [a for arg in node.args for a in (arg.elts if isinstance(arg, ast.Tuple) else [arg])]
                bare += [f"{path.relative_to(PACKAGE)}:{node.lineno}" for a in args if isinstance(a, ast.Constant)]
    assert not bare, f"name the salt in mixcut/data/sampling.py (SALT_...): bare constants at {bare}"


def test_salts_are_distinct():
    salts = {k: v for k, v in vars(sampling).items() if k.startswith("SALT_")}
    assert len(set(salts.values())) == len(salts), salts
