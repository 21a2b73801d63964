"""What an evaluation of a checkpoint measures: one typed options object shared by
`scripts/evaluate.py` (its flags), `mixcut.evaluate.evaluate_checkpoint`, the
claims evaluators (`claims.py`) and the claims study (which calls the script)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ConfigError
from .corruptions import CORRUPTIONS, SEVERITIES
from .tta import TTA_MODES


@dataclass(frozen=True)
class EvalOptions:
    """Every switch of a checkpoint evaluation; the defaults measure clean metrics only.

    ``use_ema`` evaluates the EMA weights; ``seed`` seeds the corruption noise, the
    PGD starts and the OOD noise. Corruptions: ``corruption_names`` (None: all) at
    ``severities``, on every ``corruption_every``-th validation image. The papers'
    claims, each switched on by its flag: ``temperature`` (scaling), ``adversarial``
    (``attacks`` at ``epsilons`` in [0, 1] pixel units, ``pgd_steps``), ``occlusion``
    (``occlusion_sizes`` on the 224 scale), ``ood`` (``ood_folders``, ``ood_n`` images
    per set), ``localization`` (``boxes`` in ``box_format``, CAM at ``cam_threshold``);
    ``localization_if_boxes`` turns localization on when boxes exist (``--claims``).
    """

    use_ema: bool = False
    seed: int = 0
    corruptions: bool = False
    corruption_names: tuple[str, ...] | None = None
    severities: tuple[int, ...] = SEVERITIES
    corruption_every: int = 1
    temperature: bool = False
    adversarial: bool = False
    epsilons: tuple[float, ...] = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    pgd_steps: int = 5
    adversarial_every: int = 1
    occlusion: bool = False
    occlusion_sizes: tuple[int, ...] | None = None
    occlusion_every: int = 1
    ood: bool = False
    ood_folders: tuple[str, ...] = ()
    ood_n: int = 1000
    localization: bool = False
    localization_if_boxes: bool = False
    boxes: str | Path | None = None
    box_format: str = "mixcut"
    cam_threshold: float = 0.2
    cam_method: str = "auto"
    tta: str = "none"  # test-time augmentation reported beside the plain metrics (mixcut.eval.tta)

    @property
    def any_claim(self) -> bool:
        return self.temperature or self.adversarial or self.occlusion or self.ood or self.localization

    def with_boxes_found(self, data_root: str | None) -> EvalOptions:
        """``localization_if_boxes`` decided: on when ``boxes`` is given or ``data_root`` holds boxes.txt."""
        if not self.localization_if_boxes or self.localization:
            return self
        found = bool(self.boxes) or (data_root is not None and (Path(data_root) / "boxes.txt").is_file())
        return replace(self, localization=found)

    def check(self) -> None:
        """Raise `ConfigError` naming the first option outside its range."""
        from .box_files import BOX_READERS

        unknown = [n for n in self.corruption_names or () if n not in CORRUPTIONS]
        if unknown:
            raise ConfigError(f"unknown corruptions {unknown}; choose from: {', '.join(CORRUPTIONS)}.")
        if self.corruption_every < 1:
            raise ConfigError(f"corruption_every must be >= 1 (1 = every validation image); got {self.corruption_every}.")
        if any(s not in SEVERITIES for s in self.severities):
            raise ConfigError(f"severities must be among {SEVERITIES}; got {list(self.severities)}.")
        if self.occlusion_every < 1:
            raise ConfigError(f"occlusion_every must be >= 1 (1 = every validation image); got {self.occlusion_every}.")
        if self.adversarial_every < 1:
            raise ConfigError(f"adversarial_every must be >= 1 (1 = every validation image); got {self.adversarial_every}.")
        if self.box_format not in BOX_READERS:
            raise ConfigError(f"box format must be one of {', '.join(BOX_READERS)}; got {self.box_format!r}.")
        if not 0 < self.cam_threshold < 1:
            raise ConfigError(f"cam threshold is a fraction of the map's maximum in (0, 1); got {self.cam_threshold}.")
        if any(not 0 <= e <= 1 for e in self.epsilons):
            raise ConfigError(f"epsilons are in [0, 1] pixel units (8/255 = 0.0314); got {list(self.epsilons)}.")
        if set(self.attacks) - {"fgsm", "pgd"}:
            raise ConfigError(f"attacks must be among fgsm, pgd; got {list(self.attacks)}.")
        if self.tta not in TTA_MODES:
            raise ConfigError(f"tta must be one of {', '.join(TTA_MODES)}; got {self.tta!r}.")
        if self.ood_n < 1:
            raise ConfigError(f"ood_n must be >= 1; got {self.ood_n}.")
