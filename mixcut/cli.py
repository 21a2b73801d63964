"""Command-line glue around Hydra: argument clean-up and user-facing errors."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

log = logging.getLogger("mixcut")


def prepare_argv(argv: list[str], environ=None) -> list[str]:
    """Make the command line fit Hydra under launchers.

    * Drop ``--local-rank``/``--local_rank`` (added by torch.distributed.launch),
      which Hydra's parser would reject; the rank comes from the environment.
    * Under torchrun, every rank must use the same run directory, and an
      elastic restart must find the previous one: without an explicit
      ``hydra.run.dir`` it becomes ``outputs/torchrun/<rendezvous id>``, the
      same for all ranks and restarts of one torchrun job. Ranks other than 0
      write nothing there (no ``.hydra/``, no log file).
    * After a restart, ``trainer.resume=auto`` is implied unless given.
    """
    from .runtime.distributed import env_info, restart_count

    env = os.environ if environ is None else environ
    out = _strip_local_rank(argv)
    info = env_info(env)
    if info.enabled:
        given = {a.split("=", 1)[0].lstrip("+") for a in out[1:] if "=" in a}
        if "hydra.run.dir" not in given and "TORCHELASTIC_RUN_ID" in env:
            out.append(f"hydra.run.dir=outputs/torchrun/{env['TORCHELASTIC_RUN_ID']}")
        if not info.is_main:
            out += ["hydra.output_subdir=null", "hydra/job_logging=stdout", "hydra/hydra_logging=none"]

    if restart_count(env) > 0 and not any(a.startswith("trainer.resume=") for a in out[1:]):
        out.append("trainer.resume=auto")
    return out


def _strip_local_rank(argv: list[str]) -> list[str]:
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


def one_line(error) -> str:
    """An exception (and its causes) folded into one line, without Hydra's
    search-path listing and advice that does not apply to typed configs."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        lines = []
        for ln in (x.strip() for x in str(error).splitlines()):
            if ln.startswith("Config search path"):
                break
            if (
                ln
                and ln != "None"
                and not ln.startswith(  # "None": a grammar error's empty cause
                    ("full_key:", "object_type", "reference_type", "Set the environment", "To append to your config")
                )
            ):
                lines.append(ln)
        opts = next((i for i, ln in enumerate(lines) if ln.startswith("Available options")), None)
        if opts is not None:  # "Available options in 'mix':" followed by one option per line
            lines = lines[:opts] + [f"{lines[opts]} {', '.join(lines[opts + 1 :])}"]
        text = " ".join(lines)
        # a cause re-raised with a prefix ("mix: " + cause) is said once
        if lines and "$VALUE" not in lines[0] and not any(text in p for p in parts):
            parts.append(text)
        error = error.__cause__ or error.__context__
    return "; ".join(dict.fromkeys(parts[:2]))


def _run_dir_override(overrides: list[str]) -> str | None:
    for arg in overrides:
        if arg.startswith("hydra.run.dir="):
            return arg.split("=", 1)[1]
    return None


def _check_writable(path: str) -> None:
    from .errors import ConfigError
    from .io import write_probe

    reason = write_probe(path)
    if reason is not None:
        raise ConfigError(f"run directory {path} is not writable ({reason}); choose another with hydra.run.dir=DIR.")


def brace_pattern_hint(overrides: list[str]) -> str | None:
    """The sentence for a shard pattern that reached us unquoted, or None.

    ``key=/data/train-{000000..000099}.tar`` typed without quotes either meets
    Hydra's grammar (``mismatched input '{'``) or, in bash and zsh, is expanded by
    the shell into one ``key=...`` argument per shard, of which Hydra silently keeps
    the last. Both get the form to type: quoted for the shell and for Hydra."""
    import re

    def quoted(key: str, pattern: str) -> str:
        return f"\"{key}='{pattern}'\""

    values: dict[str, list[str]] = {}
    for arg in overrides:
        key, eq, value = arg.partition("=")
        if not eq:
            continue
        if re.search(r"(?<!\$)\{\d+\.\.\d+\}", value) and value[:1] not in "'\"":  # not ${...} interpolations
            return f"{key}={value}: Hydra reads the braces as its own syntax; type {quoted(key, value)}"
        values.setdefault(key, []).append(value)
    for key, vals in values.items():
        # two values of another key are usually a later override of an earlier one (a script's default, then
        # the user's: data.val_fraction=0.1 ... data.val_fraction=0.2), not an expanded range
        if len(vals) < 2 or (len(vals) < 3 and not key.endswith("shards")):
            continue
        prefix = os.path.commonprefix(vals)
        suffix = os.path.commonprefix([v[::-1] for v in vals])[::-1]
        prefix = prefix.rstrip("0123456789")  # the numbers' common leading digits belong to the range
        suffix = suffix.lstrip("0123456789")
        middles = [v[len(prefix) : len(v) - len(suffix)] for v in vals]
        numbered = (prefix or suffix) and all(m.isdigit() for m in middles)
        # consecutive numbers, as the shell's {a..b} writes them (not a later override of an earlier value)
        if numbered and [int(m) for m in middles] == list(range(int(middles[0]), int(middles[0]) + len(vals))):
            pattern = f"{prefix}{{{middles[0]}..{middles[-1]}}}{suffix}"
            return (
                f"{key} was given {len(vals)} times ({vals[0]} ... {vals[-1]}): the shell expanded the braces of "
                f"{pattern} and only the last would be used; type {quoted(key, pattern)}"
            )
    return None


def preflight(argv: list[str], config_dir: str) -> None:
    """Compose and check the config exactly as train.py will, before Hydra makes
    a run directory, so that every configuration mistake ends in one line on
    stderr and exit code 2 (Hydra's own messages span several lines).

    Runs only for plain override lists; Hydra's flags (--multirun, --cfg,
    --help, ...) go straight to Hydra.
    """
    args = argv[1:]
    if any(a.startswith("-") for a in args):
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .config import check, register_configs
    from .errors import ConfigError

    overrides = [a for a in args if not a.lstrip("+~").startswith("hydra")]
    hint = brace_pattern_hint(overrides)
    if hint is not None:
        _fail(f"configuration error: {hint}", 2)
    register_configs()
    try:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            cfg = compose("train", overrides=overrides)
        check(cfg)  # remembered: the run's own check of the same config returns at once
        from .runtime.distributed import env_info
        from .runtime.policy import resolve_amp, resolve_device

        device = resolve_device(cfg.trainer.device, env_info())
        if device.type == "cuda":  # before resolve_amp's probe, which runs on the current device (else cuda:0 on every rank)
            import torch

            torch.cuda.set_device(device)
        resolve_amp(cfg.trainer.amp, device)
        _check_writable(_run_dir_override(args) or "outputs")
    except (HydraException, OmegaConfBaseException, ConfigError) as e:
        hint = unknown_key_hint(one_line(e))
        _fail(f"configuration error: {one_line(e)}" + (f"; {hint}" if hint else ""), 2)
    finally:
        GlobalHydra.instance().clear()


def train_in_hydra_run_dir(cfg) -> dict:
    """The body of train.py's ``@hydra.main``: train in the run directory Hydra made."""
    from hydra.core.hydra_config import HydraConfig

    from .trainer import run

    with report_errors():
        return run(cfg, HydraConfig.get().runtime.output_dir)


@contextlib.contextmanager
def report_errors():
    """Turn the errors a user can fix into one line on stderr and exit code 2,
    instead of a traceback."""
    from .engine import NonFiniteLossError
    from .errors import CheckpointError, ConfigError, DataError, StorageError
    from .runtime.signals import StopRequested

    try:
        yield
    except ConfigError as e:
        _fail(f"configuration error: {e}", 2)
    except (CheckpointError, DataError, StorageError) as e:
        _fail(f"error: {e}", 2)
    except NonFiniteLossError as e:
        _fail(f"training stopped: {e}", 3)
    except StopRequested:
        sys.exit(143)


def unknown_key_hint(message: str) -> str | None:
    """For Hydra's "Key 'alpha' not in 'DeitOptions'": a sentence naming the keys
    that mixer has (``mix.mixup_alpha``, ``mix.cutmix_alpha`` first, being the
    closest), or None when the message is not about a mix key."""
    import difflib
    import re
    from dataclasses import fields

    from .mix import MIXERS

    found = re.search(r"Key '(\w+)' not in '(\w+)'", message)
    schema = next((e.options for e in MIXERS.values() if found and e.options.__name__ == found.group(2)), None)
    if schema is None:
        return None
    key = found.group(1)
    options = [f.name for f in fields(schema) if f.name != "name"]
    close = [o for o in options if key in o] or difflib.get_close_matches(key, options, n=3, cutoff=0.6)
    mixer = schema().name
    hint = f"mix={mixer} has no option {key!r}"
    if close:
        hint += f"; did you mean {' or '.join(f'mix.{o}' for o in close)}?"
    return f"{hint} (mix={mixer} takes: {', '.join(f'mix.{o}' for o in options)})"


def _fail(message: str, code: int) -> None:
    logging.shutdown()
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)
