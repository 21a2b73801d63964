"""Shared pytest hooks.

tests/ mirrors the package: mix/, data/, eval/, models/, config/, runtime/ hold unit tests of those
packages; integration/ holds real processes and full training runs (train.py, torchrun, injected faults).
Helpers and override lists shared between folders live in tests/_trainer_utils.py (`from _trainer_utils
import ...` works everywhere: pyproject puts tests/ on the path). A file's own fixtures stay in the file;
make a trained run module-scoped when several tests can read it, and prefer an in-process run
(`_trainer_utils.train`) to a launch unless the process itself is what the test is about.
"""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    """Skip ``@pytest.mark.cuda`` tests on machines without a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
