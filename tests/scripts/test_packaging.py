"""The promises about versions cannot drift: the Docker image's base carries at least the torch and torchvision
that pyproject.toml declares, and the declared minimum torch has every API the code calls."""

from __future__ import annotations

import re

from _trainer_utils import REPO


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def _declared_minimum(name: str) -> tuple[int, ...]:
    m = re.search(rf'"{name}>=([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    assert m, f"pyproject.toml declares no {name}>=..."
    return _version(m.group(1))


def test_docker_base_meets_the_declared_torch():
    """Its base was torch 2.5.1 while engine.py called 2.6's get_total_norm: the image crashed at the first step."""
    (base,) = re.findall(r"^FROM\s+(\S+)", (REPO / "Dockerfile").read_text(), re.M)
    repo, tag = base.split(":")
    assert repo == "pytorch/pytorch" and tag.endswith("-runtime"), base
    torch_in_image = _version(tag.split("-")[0])
    assert torch_in_image >= _declared_minimum("torch"), f"{base} is older than pyproject's torch minimum"
    # the official image pairs torch 2.X with torchvision 0.(X+15)
    assert (0, torch_in_image[1] + 15) >= _declared_minimum("torchvision")[:2]


def test_declared_torch_minimum_has_the_apis_the_code_calls():
    """APIs newer than torch 2.1 that mixcut calls, with the release that added them; the declared minimum must
    be at least the newest of those the code still uses."""
    added_in = {
        "torch.nn.utils.get_total_norm": (2, 6),
        "torch.nn.utils.clip_grads_with_norm_": (2, 6),
        'torch.amp.GradScaler("cuda")': (2, 3),
    }
    code = "\n".join(p.read_text() for p in (REPO / "mixcut").rglob("*.py"))
    used = [v for api, v in added_in.items() if api in code]
    assert used, "none of the listed APIs is used any more: update this list"
    assert _declared_minimum("torch")[:2] >= max(used)
