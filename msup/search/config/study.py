"""`StudyConfig`: one search study, read from YAML and validated before anything starts.

Schema (paths are relative to the study file)::

    name: digits                      # keys the study folder runs/<name>, the Optuna study and the Ray run
    description: ...
    train: train/digits-mlp.yaml      # base training config (file or inline mapping, see msup.config)
    search_space: ../search_spaces/digits.yaml   # file or inline mapping, see msup.search.config.space
    objectives:
      accuracy: val_acc               # maximised: val_acc | best_val_acc
      size: size_entropy_mib          # minimised: size_entropy_mib | size_paper_mib | size_artifact_bytes
    trials: 40                        # total trials of the study; optional where a budget is set
    budget: {trial_epochs: 1200}      # optional, in compute (trial_epochs, trial_hours, hours; see
                                      # msup.search.config.budget): whichever of it and trials is reached first
                                      # ends sampling
    max_concurrent: 2                 # trials running at once
    sampler: {name: tpe, seed: 0}     # tpe | nsga2 | gp | random, plus the sampler's own options;
                                      # learn_from_pruned: true shows the sampler each pruned trial at
                                      # the point it was stopped at; max_history: N shows it only the
                                      # N most recent completed or pruned trials, which bounds TPE's cost
                                      # per ask in a large study (msup.search.sampling.views)
    pruner: {name: size_aware}        # see msup.search.pruning.rules
    resources: {cpu: 1, gpu: 0}       # per trial; gpu may be fractional (0.25 = four trials per GPU);
                                      # memory_gib: host memory a trial may allocate beyond its worker
                                      # process's own (Ray schedules by it; a trial that needs more fails
                                      # with "out of memory" instead of waking the kernel's OOM killer)
    size_budget: {max: 0.008}         # optional, in the size objective's unit (min: too): a sampled
                                      # configuration outside it is never trained; it ends REJECTED,
                                      # is told to the sampler as infeasible and uses no budget
                                      # (count_rejected: true makes each one use a trial of it)
    storage: null                     # Optuna URL or journal file; null = sqlite runs/<name>/optuna.db
                                      # (a runs folder in object storage needs a database URL)
    runs_dir: null                    # where runs/<name>/ goes: a path or s3://bucket/prefix
                                      # (--runs-dir wins over it, and it over $MSUP_RUNS)
    checkpoint: {every_s: 0}          # a trial checkpoints after an epoch once every_s seconds passed since
                                      # its last one, and after its last epoch; 0 = after every epoch. A
                                      # crash loses at most every_s of a trial's training (plus an epoch)
    loggers: {mlflow: {tracking_uri: sqlite:///mlflow.db}}   # optional: experiment trackers
                                      # (mlflow, wandb, tensorboard; see msup.search.execution.trackers)
    ray_address: null                 # null = a local Ray instance; "auto" or ray://host:port

Every problem in the file, the training config and the search space is
reported at once with its key path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msup.errors import InputError, first_line
from msup.safe_yaml import parse_yaml
from msup.search.config.budget import ComputeBudget, parse_budget
from msup.search.config.loggers import parse_loggers
from msup.search.config.space import SearchSpace, parse_space, train_overrides
from msup.search.pruning.rules import PrunerSpec, parse_pruner

if TYPE_CHECKING:
    from msup.config import TrainConfig

TrainCheck = Callable[[Mapping[str, Any]], list[str]]  # a training config's problems, one line each

ACCURACY_OBJECTIVES = ("val_acc", "best_val_acc")
SAMPLERS = ("tpe", "nsga2", "gp", "random")  # `msup.search.sampling.factory` builds them
SIZE_OBJECTIVES = ("size_entropy_mib", "size_paper_mib", "size_artifact_bytes")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # \Z: "$" would let a trailing newline in
_KEYS = {
    "name", "description", "train", "search_space", "objectives", "trials", "budget", "max_concurrent",
    "sampler", "pruner", "resources", "size_budget", "storage", "ray_address", "runs_dir", "loggers", "checkpoint",
}


@dataclass(frozen=True)
class SizeBudget:
    """The sizes a study may train, in MiB of its size objective; a bound left out is open."""

    min: float | None = None
    max: float | None = None
    count_rejected: bool = False  # a rejected configuration uses a trial of the study's budget

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


@dataclass(frozen=True)
class StudyConfig:
    name: str
    train: dict[str, Any]
    space: SearchSpace
    space_raw: dict[str, Any]
    accuracy: str = "val_acc"
    size: str = "size_entropy_mib"
    trials: int | None = 20  # None: the compute budget alone ends the study
    budget: ComputeBudget | None = None
    max_concurrent: int = 1
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": 0})
    pruner: PrunerSpec = field(default_factory=lambda: parse_pruner({"name": "none"}, "pruner", []))
    cpu: float = 1.0
    gpu: float = 0.0
    memory_gib: float | None = None
    size_budget: SizeBudget | None = None
    storage: str | None = None
    ray_address: str | None = None
    runs_dir: str | None = None
    loggers: dict[str, dict[str, Any]] = field(default_factory=dict)  # tracker name -> options
    checkpoint_every_s: float = 0.0  # 0: a checkpoint after every epoch
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The resolved study, with training config and search space inlined."""
        return {
            "name": self.name,
            "description": self.description,
            "train": self.train,
            "search_space": self.space_raw,
            "objectives": {"accuracy": self.accuracy, "size": self.size},
            "trials": self.trials,
            **({"budget": self.budget.to_dict()} if self.budget is not None else {}),
            "max_concurrent": self.max_concurrent,
            "sampler": self.sampler,
            "pruner": self.pruner.raw,
            "resources": {"cpu": self.cpu, "gpu": self.gpu,
                          **({"memory_gib": self.memory_gib} if self.memory_gib is not None else {})},
            **({"size_budget": self.size_budget.to_dict()} if self.size_budget is not None else {}),
            "storage": self.storage,
            "ray_address": self.ray_address,
            **({"runs_dir": self.runs_dir} if self.runs_dir is not None else {}),
            **({"loggers": self.loggers} if self.loggers else {}),
            **({"checkpoint": {"every_s": self.checkpoint_every_s}} if self.checkpoint_every_s else {}),
        }

    @property
    def counts_rejected(self) -> bool:
        """Whether a configuration rejected for the size budget uses a trial of the budget."""
        return self.size_budget is not None and self.size_budget.count_rejected

    @property
    def resource_weight(self) -> float:
        """What one second of a trial costs in resource-seconds: its GPUs where it holds any, else its CPU cores."""
        return self.gpu if self.gpu > 0 else self.cpu

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory_gib is None else int(self.memory_gib * 2**30)

    @property
    def ray_resources(self) -> dict[str, float]:
        """What Ray reserves for one trial (``memory`` in bytes, as Ray counts it)."""
        memory = {} if self.memory_bytes is None else {"memory": float(self.memory_bytes)}
        return {"cpu": self.cpu, "gpu": self.gpu, **memory}

    def planned_epochs(self, values: Mapping[str, Any]) -> int | None:
        """A trial's epochs where its study's training config or sampled values set them (read without torch)."""
        epochs = _merge(self.train, train_overrides(values)).get("optim", {}).get("epochs")
        return epochs if isinstance(epochs, int) else None

    def train_config(self, values: Mapping[str, Any]) -> TrainConfig:
        """The training config of one trial: the base config with sampled values applied."""
        from msup.config import TrainConfig

        return TrainConfig.from_dict(_merge(self.train, train_overrides(values)))


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_study_file(path: str | Path, train_problems: TrainCheck | None = None, **overrides: Any) -> StudyConfig:
    """Read and check a study file without building anything (`preflight.load_study_config` adds the pre-flight);
    ``overrides`` replace top-level keys (e.g. ``trials``), and a ``budget`` override the kinds it names."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"study file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a readable YAML file ({first_line(exc)})") from None
    return parse_study_text(text, path.parent, str(path), train_problems, **overrides)


def parse_study_text(
    text: str, base_dir: Path, source: str, train_problems: TrainCheck | None = None, **overrides: Any,
) -> StudyConfig:
    """Validate the YAML text of a study file (read from ``source``; relative paths start at ``base_dir``)."""
    try:
        raw = parse_yaml(text)
    except ValueError as exc:
        raise InputError(f"{source}: not a readable YAML file ({first_line(exc)})") from None
    if not isinstance(raw, Mapping):
        raise InputError(f"{source}: must be a YAML mapping of study settings, got {type(raw).__name__}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(overrides.get("budget"), Mapping) and isinstance(raw.get("budget"), Mapping):
        overrides["budget"] = {**raw["budget"], **overrides["budget"]}
    raw = {**raw, **overrides}
    return parse_study(raw, base_dir=base_dir, source=source, train_problems=train_problems)


def parse_study(
    raw: Mapping[str, Any], base_dir: Path, source: str = "study", train_problems: TrainCheck | None = None,
) -> StudyConfig:
    """A study from its mapping, every problem at once; ``train_problems`` checks the training config too.

    Without it nothing imports torch: a stored study, checked when it was launched, is read this way.
    """
    errors: list[str] = []
    for key in raw:
        if key not in _KEYS:
            errors.append(f"{key}: unknown key (expected one of {', '.join(sorted(_KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        errors.append(f"name: {name!r} must be 1-64 letters, digits, '.', '_' or '-' (it names a folder under runs/)")
    train = _include(raw.get("train", {}), "train", base_dir, errors)
    space_raw = _include(raw.get("search_space"), "search_space", base_dir, errors)
    objectives = raw.get("objectives") or {}
    accuracy, size = "val_acc", "size_entropy_mib"
    if not isinstance(objectives, Mapping):
        errors.append("objectives: must be a mapping with keys accuracy and size")
    else:
        unknown = set(objectives) - {"accuracy", "size"}
        errors += [f"objectives.{k}: unknown key (expected accuracy, size)" for k in sorted(unknown)]
        accuracy = objectives.get("accuracy", accuracy)
        size = objectives.get("size", size)
        if accuracy not in ACCURACY_OBJECTIVES:
            errors.append(f"objectives.accuracy: {accuracy!r} is not one of {', '.join(ACCURACY_OBJECTIVES)}")
        if size not in SIZE_OBJECTIVES:
            errors.append(f"objectives.size: {size!r} is not one of {', '.join(SIZE_OBJECTIVES)}")
    budget = parse_budget(raw.get("budget"), "budget", errors)
    trials = None if raw.get("trials") is None and budget is not None else _positive_int(
        20 if raw.get("trials") is None else raw["trials"], "trials", errors)
    max_concurrent = _positive_int(raw.get("max_concurrent", 1), "max_concurrent", errors)
    sampler = raw.get("sampler", {"name": "tpe", "seed": 0})
    if not isinstance(sampler, Mapping) or sampler.get("name") not in SAMPLERS:
        errors.append(f"sampler: needs name: one of {', '.join(SAMPLERS)} (got {sampler!r})")
    pruner = parse_pruner(raw.get("pruner", {"name": "none"}), "pruner", errors)
    resources = raw.get("resources", {}) or {}
    cpu, gpu, memory_gib = 1.0, 0.0, None
    if not isinstance(resources, Mapping) or set(resources) - {"cpu", "gpu", "memory_gib"}:
        errors.append(f"resources: must be a mapping with keys cpu, gpu and memory_gib, got {resources!r}")
    else:
        cpu = _number_in(resources.get("cpu", 1), "resources.cpu", 0.0, None, errors)
        gpu = _number_in(resources.get("gpu", 0), "resources.gpu", 0.0, None, errors, allow_zero=True)
        if resources.get("memory_gib") is not None:
            memory_gib = _number_in(resources["memory_gib"], "resources.memory_gib", 0.0, None, errors)
        if gpu > 1 and gpu != int(gpu):
            errors.append(f"resources.gpu: {gpu} above 1 must be a whole number of GPUs")
    size_budget = _size_budget(raw.get("size_budget"), size, errors)
    loggers = parse_loggers(raw.get("loggers"), errors)
    checkpoint_every_s = _checkpoint_every_s(raw.get("checkpoint"), errors)
    for key in ("storage", "ray_address", "runs_dir", "description"):
        if raw.get(key) is not None and not isinstance(raw.get(key), str):
            errors.append(f"{key}: {raw.get(key)!r} must be a string")
    space = None
    if space_raw is not None:
        try:
            space = parse_space(space_raw)
        except InputError as exc:
            errors += str(exc).splitlines()
    if train_problems is not None and train is not None:  # an unreadable train file is reported above, once
        errors += [f"train.{line}" for line in train_problems(train)]
    if errors:
        raise problems(source, errors)
    assert space is not None and isinstance(name, str) and train is not None and space_raw is not None
    return StudyConfig(
        name=name, train=dict(train), space=space, space_raw=dict(space_raw), accuracy=accuracy, size=size,
        trials=trials, budget=budget, max_concurrent=max_concurrent, sampler=dict(sampler), pruner=pruner, cpu=cpu, gpu=gpu,
        memory_gib=memory_gib, size_budget=size_budget,
        storage=raw.get("storage"), ray_address=raw.get("ray_address"), runs_dir=raw.get("runs_dir"),
        loggers=loggers, checkpoint_every_s=checkpoint_every_s, description=str(raw.get("description") or ""),
    )


def _checkpoint_every_s(raw: Any, errors: list[str]) -> float:
    if raw is None:
        return 0.0
    if not isinstance(raw, Mapping) or set(raw) != {"every_s"}:
        errors.append(f"checkpoint: must be a mapping with the key every_s (seconds), got {raw!r}")
        return 0.0
    return _number_in(raw["every_s"], "checkpoint.every_s", 0.0, None, errors, allow_zero=True)


def _size_budget(raw: Any, size_key: str, errors: list[str]) -> SizeBudget | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not set(raw) & {"min", "max"} or set(raw) - {"min", "max", "count_rejected"}:
        errors.append(f"size_budget: must be a mapping with max and/or min (in MiB of {size_key}) and optionally "
                      f"count_rejected, got {raw!r}")
        return None
    count_rejected = raw.get("count_rejected", False)
    if not isinstance(count_rejected, bool):
        errors.append(f"size_budget.count_rejected: {count_rejected!r} must be true or false")
    if size_key == "size_artifact_bytes":
        errors.append("size_budget: the artifact's size is known only after training; "
                      "budget size_entropy_mib or size_paper_mib instead")
        return None
    bounds = {k: _number_in(raw[k], f"size_budget.{k}", 0.0, None, errors) for k in ("min", "max") if k in raw}
    if "min" in bounds and "max" in bounds and bounds["min"] >= bounds["max"]:
        errors.append(f"size_budget: min {bounds['min']:g} must be below max {bounds['max']:g}")
    return SizeBudget(bounds.get("min"), bounds.get("max"), count_rejected is True)


def problems(source: str, lines: list[str]) -> InputError:
    """One problem on one line; several as a count, then one indented line each."""
    if len(lines) == 1:
        return InputError(f"{source}: {lines[0]}")
    return InputError(f"{source}: {len(lines)} problem(s):\n  " + "\n  ".join(lines))


def problem_lines(exc: InputError) -> list[str]:
    """The individual problems of a training-config error, without its heading line."""
    lines = [line.strip() for line in str(exc).splitlines()]
    return lines[1:] if len(lines) > 1 and lines[0].endswith(":") else lines


def _include(value: Any, key: str, base_dir: Path, errors: list[str]) -> dict[str, Any] | None:
    """A mapping given inline or as a path to a YAML file."""
    if isinstance(value, str):
        path = (base_dir / value).resolve()
        if not path.is_file():
            errors.append(f"{key}: file {value!r} not found (looked in {path.parent})")
            return None
        try:
            value = parse_yaml(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            errors.append(f"{key}: {value!r} is not readable YAML ({first_line(exc)})")
            return None
    if value is None and key == "search_space":
        errors.append("search_space: required (a file path or a mapping with parameters)")
        return None
    if not isinstance(value, Mapping):
        errors.append(f"{key}: must be a mapping or a path to a YAML file, got {type(value).__name__}")
        return None
    return dict(value)


def _positive_int(value: Any, key: str, errors: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors.append(f"{key}: {value!r} must be a whole number >= 1")
        return 1
    return value


def _number_in(value: Any, key: str, low: float, high: float | None, errors: list[str], allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and (value < low or (value == low and not allow_zero) or (high is not None and value > high)):
        ok = False
    if not ok:
        errors.append(f"{key}: {value!r} must be a number {'>=' if allow_zero else '>'} {low:g}")
        return 0.0
    return float(value)
