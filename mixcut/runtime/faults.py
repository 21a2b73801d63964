"""Fault-injection points for mixcut's fault-tolerance tests.

Inactive (one dict lookup) unless the environment variable ``MIXCUT_FAULTS``
names faults, e.g. ``MIXCUT_FAULTS="kill@step=5,kill@save=2,nan@loss=3"``:

  kill@step=N   SIGKILL this process at the N-th training step, after backward
                and before the optimizer update;
  kill@save=N   SIGKILL during the N-th checkpoint write (temporary file
                written, not yet renamed);
  kill@eval=N   SIGKILL during the N-th evaluation batch;
  nan@loss=N    make the N-th training loss NaN.

Counts are per process and start at 1. ``MIXCUT_FAULTS_RANK=R`` limits the
faults to rank R; none fire after a torchrun elastic restart. The kill is a real SIGKILL, so the
tests see exactly what a preempted or OOM-killed run leaves behind.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import torch


def _parse(spec: str) -> dict[tuple[str, str], int]:
    faults = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        action, _, rest = item.partition("@")
        where, _, count = rest.partition("=")
        faults[(action, where)] = int(count)
    return faults


def _active() -> bool:
    """Faults fire only in the first attempt of a job (not after an elastic
    restart) and, with MIXCUT_FAULTS_RANK, only on that rank."""
    rank = os.environ.get("MIXCUT_FAULTS_RANK")
    if rank is not None and os.environ.get("RANK", "0") != rank:
        return False
    return os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"


_FAULTS = _parse(os.environ.get("MIXCUT_FAULTS", "")) if _active() else {}
_COUNTS: Counter = Counter()


def _due(action: str, where: str) -> bool:
    n = _FAULTS.get((action, where))
    return n is not None and _COUNTS[where] == n


def point(where: str) -> None:
    """Mark that execution reached ``where``; kill the process if a fault is due."""
    if not _FAULTS:
        return
    _COUNTS[where] += 1
    if _due("kill", where):
        os.kill(os.getpid(), signal.SIGKILL)


def corrupt_loss(loss: torch.Tensor) -> torch.Tensor:
    """The loss, or NaN when ``nan@loss=N`` is due."""
    if not _FAULTS:
        return loss
    _COUNTS["loss"] += 1
    return loss * float("nan") if _due("nan", "loss") else loss
