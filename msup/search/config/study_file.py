"""What a study file may say: its keys as strict pydantic models (``msup schema study`` prints their JSON Schema).

`msup.search.config.study` reads a file through `StudyFile`, then resolves
what it refers to (the training config and search space, given inline or as
paths) into a `StudyConfig`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from msup.search.config.budget import ComputeBudget
from msup.search.pruning.rules import PRUNERS
from msup.validation import Float, PathOrMapping, StrictModel

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # \Z: "$" would let a trailing newline in
_PRUNER_SCHEMA = {"anyOf": [  # its options are checked by building it (msup.search.pruning.rules)
    {"enum": list(PRUNERS)},
    {"type": "object", "properties": {"name": {"enum": list(PRUNERS)}}, "required": ["name"]},
]}
AccuracyObjective = Literal["val_acc", "best_val_acc"]
SizeObjective = Literal["size_entropy_mib", "size_paper_mib", "size_artifact_bytes"]


class Objectives(StrictModel):
    """The two objectives: accuracy is maximised, size minimised."""

    accuracy: AccuracyObjective = "val_acc"
    size: SizeObjective = "size_entropy_mib"


class SamplerSettings(StrictModel, extra="allow"):
    """Optuna's sampler; any other key is an option of its constructor (checked by building it)."""

    name: Literal["tpe", "nsga2", "gp", "random"] = Field(description="msup.search.sampling.factory builds it")
    seed: int | None = Field(None, description="null: a new seed each launch")
    learn_from_pruned: bool = Field(False, description="show the sampler each pruned trial at the point it stopped")
    max_history: int | None = Field(None, ge=1, description="show it only the N most recent finished trials")


class Resources(StrictModel):
    """What one trial holds; ``gpu`` may be fractional (0.25: four trials per GPU)."""

    cpu: Float = Field(1.0, gt=0)
    gpu: Float = Field(0.0, ge=0)
    memory_gib: Float | None = Field(None, gt=0, description="host memory a trial may allocate beyond its "
                                     "worker process's own (Ray schedules by it)")

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, gpu: float) -> float:
        if gpu > 1 and gpu != int(gpu):
            raise ValueError(f"{gpu} above 1 must be a whole number of GPUs")
        return gpu


class SizeBudget(StrictModel):
    """The sizes a study may train, in MiB of its size objective; a bound left out is open."""

    min: Float | None = Field(None, gt=0)
    max: Float | None = Field(None, gt=0)
    count_rejected: bool = Field(False, description="a rejected configuration uses a trial of the study's budget")

    @model_validator(mode="after")
    def _a_range(self) -> SizeBudget:
        if self.min is None and self.max is None:
            raise ValueError("needs max and/or min (in MiB of the size objective)")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min {self.min:g} must be below max {self.max:g}")
        return self

    def violation(self, size: float) -> float:
        """How far ``size`` lies outside (> 0), or inside (<= 0): Optuna's constraint convention."""
        return max(size - (self.max if self.max is not None else math.inf),
                   (self.min if self.min is not None else -math.inf) - size)

    def rejection(self, size: float) -> str | None:
        """Why ``size`` may not be trained, or None."""
        if self.max is not None and size > self.max:
            return f"size {size:.4g} MiB over the budget {self.max:g} MiB"
        if self.min is not None and size < self.min:
            return f"size {size:.4g} MiB under the budget's minimum {self.min:g} MiB"
        return None

    def to_dict(self) -> dict[str, float | bool]:
        bounds: dict[str, float | bool] = {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}
        return {**bounds, "count_rejected": True} if self.count_rejected else bounds


class Checkpoint(StrictModel):
    """How often a trial checkpoints: after an epoch once ``every_s`` seconds passed since its last one."""

    every_s: Float = Field(ge=0, description="0: after every epoch")


class MlflowLogger(StrictModel):
    tracking_uri: str | None = Field(None, description="default $MLFLOW_TRACKING_URI")
    experiment: str | None = Field(None, description="default the study's name")
    tags: dict[str, str | int | float | bool] | None = None


class WandbLogger(StrictModel):
    project: str | None = Field(None, description="default the study's name")
    group: str | None = Field(None, description="default the study's name")
    entity: str | None = None
    tags: list[str] | None = None


class TensorboardLogger(StrictModel):
    pass


class Loggers(StrictModel):
    """Experiment trackers that get every trial (`msup.search.execution.trackers`); a list of names is allowed."""

    mlflow: MlflowLogger | None = None
    wandb: WandbLogger | None = None
    tensorboard: TensorboardLogger | None = None

    @model_validator(mode="before")
    @classmethod
    def _names_or_options(cls, raw: Any) -> Any:
        if isinstance(raw, list) and all(isinstance(name, str) for name in raw):
            raw = {name: {} for name in raw}
        return {k: ({} if v is None else v) for k, v in raw.items()} if isinstance(raw, Mapping) else raw

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: options}`` of the loggers set, options left at their defaults left out."""
        return {name: options.model_dump(exclude_none=True) for name in type(self).model_fields
                if (options := getattr(self, name)) is not None}


class WarmStartFile(StrictModel):
    """``warm_start:`` as a mapping; a plain name means ``{study: NAME}``."""

    study: str = Field(description="an earlier study on the same space: name, folder or s3:// URI")
    front_first: bool = Field(True, description="train the earlier study's Pareto-front configurations first "
                              "(added to this study's enqueue list at launch)")


class StudyFile(StrictModel):
    """A study file's keys, as written (paths not yet resolved)."""

    model_config = StrictModel.model_config | {"title": "msup study file"}

    name: str = Field(description="1-64 letters, digits, '.', '_' or '-'; keys runs/<name>, the Optuna study and "
                      "the Ray run")
    description: str = ""
    train: PathOrMapping = Field({}, description="base training config: a YAML file (relative to the study "
                                        "file) or an inline mapping")
    search_space: PathOrMapping = Field(description="a YAML file (relative to the study file) or an "
                                               "inline mapping")
    objectives: Objectives = Objectives()
    trials: int | None = Field(None, ge=1, description="total trials; optional where a budget is set (default 20)")
    budget: ComputeBudget | None = Field(None, description="whichever of it and trials is reached first ends "
                                         "sampling")
    max_concurrent: int = Field(1, ge=1, description="trials running at once")
    sampler: SamplerSettings = Field(SamplerSettings(name="tpe", seed=0))
    pruner: Annotated[Any, WithJsonSchema(_PRUNER_SCHEMA)] = Field("none", description="a pruner name, or a "
                                                                   "mapping with its name and options")
    resources: Resources = Resources()
    size_budget: SizeBudget | None = Field(None, description="a configuration outside it is never trained")
    storage: str | None = Field(None, description="Optuna URL or journal file; null: sqlite runs/<name>/optuna.db")
    runs_dir: str | None = Field(None, description="where runs/<name>/ goes: a path or s3://bucket/prefix")
    checkpoint: Checkpoint | None = None
    enqueue: list[dict[str, Any]] = Field([], description="configurations trained first, once, in the search "
                                          "space's own parameters (e.g. coats, outer_density, coat_keep_2, lr); "
                                          "parameters left out are sampled")
    warm_start: str | WarmStartFile | None = Field(None, description="an earlier study on the same space (name, "
                                                   "folder or s3:// URI) whose finished trials the sampler learns "
                                                   "from (they stay out of this study's counts and table), and "
                                                   "whose front is trained first")
    loggers: Loggers | None = None
    ray_address: str | None = Field(None, description="null: a local Ray instance; 'auto' or ray://host:port")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError(f"{name!r} must be 1-64 letters, digits, '.', '_' or '-' (it names a folder under runs/)")
        return name

    @field_validator("budget")
    @classmethod
    def _some_limit(cls, budget: ComputeBudget | None) -> ComputeBudget | None:
        if budget is not None and not budget.limits():
            raise ValueError("must set one or more of trial_epochs, trial_hours, hours")
        return budget

    @field_validator("resources", "objectives", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        return {} if value is None else value
