"""What the driver hands Ray Tune for one trial: the searcher writes it, every reader takes it back through here.

Ray stores a trial's config in its experiment state and restores it after a
crash, so on the wire it stays a plain JSON-serialisable dict; `TrialConfig`
names its keys once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TrialConfig:
    optuna_trial: int  # the main study's trial number
    train: dict[str, Any]  # the resolved training config (`msup.config.TrainConfig.to_dict`)
    values: dict[str, Any]  # the sampled parameters
    sizes: dict[str, float]  # size_entropy_mib, size_paper_mib, dense_mib: known before training
    epochs: int
    cpus: float = 1.0
    memory_bytes: int | None = None  # what the trial may allocate beyond its worker's own memory
    checkpoint_every_s: float = 0.0  # 0: a checkpoint after every epoch
    artifact_path: str = ""  # where its model file goes: a path or an object-store URI
    resume_from: str | None = None  # a checkpoint of an earlier Ray run of the study, for an adopted orphan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> TrialConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})

    @classmethod
    def of(cls, trial: Any) -> TrialConfig | None:
        """The config of a Ray trial, or None for a trial msup's searcher did not suggest."""
        config = getattr(trial, "config", None) or {}
        return cls.from_dict(config) if "optuna_trial" in config else None

    @property
    def run_name(self) -> str:
        """Its name in experiment trackers."""
        return f"trial-{self.optuna_trial:05d}"

    def tracked_params(self) -> dict[str, Any]:
        """What experiment trackers record as its parameters."""
        return {**self.values, "optuna_trial": self.optuna_trial, "epochs": self.epochs}
