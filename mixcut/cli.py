"""Command-line glue around Hydra: argument clean-up and user-facing errors."""

from __future__ import annotations

import contextlib
import logging
import sys

log = logging.getLogger("mixcut")


def prepare_argv(argv: list[str]) -> list[str]:
    """Drop ``--local-rank``/``--local_rank`` (added by torch.distributed.launch),
    which Hydra's parser would reject; the rank comes from the environment."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--local-rank", "--local_rank"):
            skip = True
            continue
        if arg.startswith(("--local-rank=", "--local_rank=")):
            continue
        out.append(arg)
    return out


@contextlib.contextmanager
def report_errors():
    """Turn the errors a user can fix into one line on stderr and exit code 2,
    instead of a traceback."""
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .engine import NonFiniteLossError
    from .train import StopRequested

    try:
        yield
    except ConfigError as e:
        _fail(f"configuration error: {e}", 2)
    except (CheckpointError, DataError) as e:
        _fail(f"error: {e}", 2)
    except NonFiniteLossError as e:
        _fail(f"training stopped: {e}", 3)
    except StopRequested:
        sys.exit(143)


def _fail(message: str, code: int) -> None:
    logging.shutdown()
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)
