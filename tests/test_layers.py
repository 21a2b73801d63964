"""The package's layering rules (the README's "Development -> Where things live"),
checked on the source: imports point downward, no private name crosses a module,
Hydra is imported in two places only, mixcut.mix stays pure tensor code, and no
module imports itself through others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mixcut"

# Modules that put a run together; nothing below them may import them.
TOP = {"mixcut.config", "mixcut.build", "mixcut.trainer", "mixcut.cli", "mixcut.evaluate"}
# Application-level modules that legitimately sit beside the trainer.
APPLICATIONS = {"mixcut.cli", "mixcut.trainer", "mixcut.build", "mixcut.evaluate"}
HYDRA_ALLOWED = {"mixcut.cli", "mixcut.config.store"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str | None = None) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) for every import statement, relative ones resolved
    (``name``: the module's dotted name, by default from its place in the package)."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, [a.name for a in node.names]))
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_upward_imports(path):
    name = module_name(path)
    if name in APPLICATIONS or under(name, "mixcut.config"):
        return
    bad = [t for t, _ in imports(path) if any(under(t, top) for top in TOP)]
    assert not bad, f"{name} imports {bad}: lower layers must not depend on config/build/trainer/cli"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_private_names_across_modules(path):
    name = module_name(path)
    crossing = [
        f"{t}.{n}"
        for t, names in imports(path)
        if under(t, "mixcut") and t != name
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not crossing, f"{name} imports private names {crossing}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_hydra_only_in_cli_and_store(path):
    name = module_name(path)
    hydra = [t for t, _ in imports(path) if under(t, "hydra")]
    assert not hydra or name in HYDRA_ALLOWED, f"{name} imports {hydra}; only {sorted(HYDRA_ALLOWED)} may"


@pytest.mark.parametrize("path", sorted((PACKAGE / "mix").rglob("*.py")), ids=lambda p: module_name(p))
def test_mix_is_pure_tensor_code(path):
    allowed_mixcut = ("mixcut.mix", "mixcut.errors", "mixcut.wrappers")
    for target, _ in imports(path):
        assert not under(target, "omegaconf") and not under(target, "hydra"), f"{module_name(path)} imports {target}"
        if under(target, "mixcut"):
            assert any(under(target, a) for a in allowed_mixcut), f"{module_name(path)} imports {target}"


def test_bottom_modules_import_nothing_of_mixcut():
    for name in ("errors.py", "io.py", "wrappers.py"):
        targets = [t for t, _ in imports(PACKAGE / name) if under(t, "mixcut")]
        assert not targets, f"mixcut/{name} imports {targets}"


def test_the_rules_would_catch_a_violation(tmp_path):
    """The checker itself: a relative upward import and a private name are found."""
    probe = tmp_path / "_layering_probe.py"
    probe.write_text("from ..trainer import run\nfrom .pipelines import _collate\n")
    found = imports(probe, "mixcut.data._layering_probe")
    assert ("mixcut.trainer", ["run"]) in found and ("mixcut.data.pipelines", ["_collate"]) in found


def import_graph() -> dict[str, set[str]]:
    """Module -> the mixcut modules it imports (function-level imports included;
    ``from package import module`` points at the module)."""
    known = {module_name(p) for p in MODULES}
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        edges = set()
        for target, names in imports(path):
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            edges.update(subs or ([target] if target in known else []))
        graph[module_name(path)] = edges - {module_name(path)}
    return graph


def test_no_import_circles():
    """No module imports itself through others, not even through an import inside a function."""
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)
