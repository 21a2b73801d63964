"""Graceful stop: SIGTERM/SIGINT/SIGUSR1 become a flag that the trainer checks at
step boundaries, saves a checkpoint on, and (for SLURM's SIGUSR1) requeues after."""

from __future__ import annotations

import os
import signal


class StopRequested(Exception):
    """Training stopped on a signal after saving a checkpoint."""


class StopSignals:
    """Turns SIGTERM/SIGINT (and SIGUSR1, SLURM's warning) into a flag checked
    at the next step boundary; a second SIGINT interrupts at once."""

    SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def forward(self, is_main: bool) -> None:
        """After our checkpoint: let SLURM put the job back in the queue on
        SIGUSR1 (its time-limit/preemption warning). Under submitit, its own
        handler requeues; under plain sbatch, rank 0 runs scontrol requeue."""
        if self.received != "SIGUSR1":
            return
        previous = self._previous.get(getattr(signal, "SIGUSR1", None))
        if callable(previous):
            previous(signal.SIGUSR1, None)
        elif is_main and "SLURM_JOB_ID" in os.environ:
            import subprocess

            subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=False)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
