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
    pruner: {name: size_aware}        # size_aware | mo_asha | front_chance | Optuna's own: see
                                      # msup.search.pruning.rules; pause_within: 0.02 (size_aware,
                                      # mo_asha) pauses a trial stopped that close to being kept (it
                                      # resumes from its checkpoint when sampling ends:
                                      # msup.search.pruning.pausing)
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
    enqueue:                          # optional: configurations trained first, exactly once over launch and
      - {coats: 3, outer_density: 0.3, coat_keep_2: 0.2627, coat_keep_3: 0.4}   # resumes (the paper's
      - {coats: 1, outer_density: 0.3}  # recipe, edge-popup's 30 %), in the space's own parameters; those
                                      # left out are sampled; marked in trials.csv's enqueued column
    warm_start: digits-seed0          # optional: an earlier study on the same space (name, folder or URI);
                                      # its finished trials teach the sampler (tpe or gp) from the first
                                      # ask, and stay out of this study's counts, budget and table; its
                                      # front is trained first (added to enqueue at launch; to skip that:
                                      # warm_start: {study: digits-seed0, front_first: false})

Every problem in the file, the training config and the search space is
reported at once with its key path. The keys are the models of
`msup.search.config.study_file`; ``msup schema study`` prints their JSON Schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from msup.config import TrainConfig
from msup.errors import InputError, first_line
from msup.safe_yaml import parse_yaml
from msup.search.config.budget import ComputeBudget
from msup.search.config.space import SearchSpace, parse_space, train_overrides
from msup.search.config.study_file import SizeBudget, StudyFile, WarmStartFile
from msup.search.pruning.rules import PrunerSpec, parse_pruner
from msup.validation import problem_lines

TrainCheck = Callable[[Mapping[str, Any]], list[str]]  # a training config's problems, one line each
DEFAULT_SAMPLER = {"name": "tpe", "seed": 0}


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
    sampler: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SAMPLER))
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
    enqueue: tuple[dict[str, Any], ...] = ()  # configurations trained first, once (`state.enqueued`)
    warm_start: str | None = None  # an earlier study the sampler learns from (`sampling.warm_start`)
    warm_front_first: bool = True  # and whose front is enqueued at launch
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
            **({"enqueue": [dict(values) for values in self.enqueue]} if self.enqueue else {}),
            **({"warm_start": self.warm_start if self.warm_front_first else
                {"study": self.warm_start, "front_first": False}} if self.warm_start is not None else {}),
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
        """A trial's epochs where its study's training config or sampled values set them."""
        epochs = self.train_mapping(values).get("optim", {}).get("epochs")
        return epochs if isinstance(epochs, int) else None

    def train_mapping(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The training config of one trial, unchecked: the base config with sampled values applied."""
        return _merge(self.train, train_overrides(values))

    def train_config(self, values: Mapping[str, Any]) -> TrainConfig:
        """The training config of one trial, checked."""
        return TrainConfig.from_dict(self.train_mapping(values))


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
    try:
        file: StudyFile | None = StudyFile.model_validate(raw)
        invalid: set[Any] = set()
    except ValidationError as exc:
        file, errors = None, problem_lines(exc, StudyFile, raw)
        invalid = {error["loc"][0] for error in exc.errors() if error["loc"]}
    train = None if "train" in invalid else _include(raw.get("train", {}), "train", base_dir, errors)
    space_raw = None if "search_space" in invalid else _include(raw["search_space"], "search_space", base_dir, errors)
    pruner = None if "pruner" in invalid else parse_pruner(raw.get("pruner", {"name": "none"}), "pruner", errors)
    space = None
    if space_raw is not None:
        try:
            space = parse_space(space_raw)
        except InputError as exc:
            errors += str(exc).splitlines()
    if file is not None and space is not None:
        errors += [f"enqueue[{i}].{line}" for i, values in enumerate(file.enqueue)
                   for line in space.configuration_problems(values)]
    if file is not None and file.size_budget is not None and file.objectives.size == "size_artifact_bytes":
        errors.append("size_budget: the artifact's size is known only after training; "
                      "budget size_entropy_mib or size_paper_mib instead")
    if train_problems is not None and train is not None:  # an unreadable train file is reported above, once
        errors += [f"train.{line}" for line in train_problems(train)]
    if errors:
        raise problems(source, errors)
    assert file is not None and space is not None and train is not None and space_raw is not None and pruner
    return StudyConfig(
        name=file.name, train=train, space=space, space_raw=space_raw, accuracy=file.objectives.accuracy,
        size=file.objectives.size, trials=20 if file.trials is None and file.budget is None else file.trials,
        budget=file.budget, max_concurrent=file.max_concurrent, sampler=dict(raw.get("sampler") or DEFAULT_SAMPLER),
        pruner=pruner, cpu=file.resources.cpu, gpu=file.resources.gpu, memory_gib=file.resources.memory_gib,
        size_budget=file.size_budget, storage=file.storage, ray_address=file.ray_address, runs_dir=file.runs_dir,
        loggers=file.loggers.to_dict() if file.loggers is not None else {},
        checkpoint_every_s=file.checkpoint.every_s if file.checkpoint is not None else 0.0,
        description=file.description, enqueue=tuple(file.enqueue),
        warm_start=file.warm_start.study if isinstance(file.warm_start, WarmStartFile) else file.warm_start,
        warm_front_first=not isinstance(file.warm_start, WarmStartFile) or file.warm_start.front_first,
    )


def problems(source: str, lines: list[str]) -> InputError:
    """One problem on one line; several as a count, then one indented line each."""
    if len(lines) == 1:
        return InputError(f"{source}: {lines[0]}")
    return InputError(f"{source}: {len(lines)} problem(s):\n  " + "\n  ".join(lines))


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
