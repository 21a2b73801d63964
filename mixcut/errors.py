"""The errors a user can act on, one class per kind of problem.

This module imports nothing, so every layer (data, models, mix, the trainer)
can raise them without depending on the config layer or on Hydra. `mixcut.cli`
turns each into one line on stderr and an exit code.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message says how."""


class DataError(RuntimeError):
    """Data that cannot be used (for example an unreadable image with data.on_bad_image=error)."""


class CheckpointError(RuntimeError):
    """A checkpoint may not or cannot be loaded; the message says why."""


class StorageError(RuntimeError):
    """A file of the run could not be written (disk full, read-only, ...); the message names it."""
