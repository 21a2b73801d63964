"""mixcut's command-line entry: compose the Hydra config, then mixcut.trainer.run(cfg)."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mixcut.cli import preflight, prepare_argv, train_in_hydra_run_dir
from mixcut.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    train_in_hydra_run_dir(cfg)


if __name__ == "__main__":
    sys.argv = prepare_argv(sys.argv)
    preflight(sys.argv, str(Path(__file__).resolve().parent / "configs"))
    main()
