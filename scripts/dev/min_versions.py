"""Print pip constraints that pin every dependency pyproject.toml declares to its declared minimum.

    python scripts/dev/min_versions.py > /tmp/min.txt
    pip install -c /tmp/min.txt -e ".[dev]"

`make test-min` uses it to run the fast suite on the oldest versions the package promises, so a
``>=`` in pyproject.toml cannot drift below what the code needs. Only ``name>=X`` requirements are
pinned (to ``name==X``); anything else (no version, ``<``, markers) is left to pip.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_MIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([0-9][A-Za-z0-9.]*)\s*$")


def _string_list(text: str, key: str) -> list[str]:
    """The strings of the first ``key = [...]`` array in a TOML text (tomllib is Python >= 3.11 only, and
    pyproject.toml promises 3.10)."""
    m = re.search(rf"^{re.escape(key)}\s*=\s*\[(.*?)\]", text, re.M | re.S)
    return re.findall(r'"([^"]*)"', m.group(1)) if m else []


def minimum_pins(pyproject: Path, extras: tuple[str, ...] = ("dev",)) -> list[str]:
    """``name==version`` for every ``name>=version`` in the dependencies and the given extras, sorted, no duplicates."""
    text = pyproject.read_text()
    reqs = _string_list(text, "dependencies")
    for extra in extras:
        reqs += _string_list(text.split("[project.optional-dependencies]", 1)[-1], extra)
    pins: dict[str, str] = {}
    for req in reqs:
        m = _MIN.match(req)
        if m:
            pins[m.group(1).lower()] = m.group(3)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[2]
    extras = tuple(argv) or ("dev",)
    print("\n".join(minimum_pins(root / "pyproject.toml", extras)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
