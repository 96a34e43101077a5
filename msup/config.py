"""`TrainConfig`: everything one training trial needs, typed and validated.

The dict / YAML schema (every key optional; the defaults are the embedded
digits recipe, ``studies/train/digits-mlp.yaml``)::

    data:
      name: digits            # digits | mnist5k | mnist1d | cifar10 | cifar100 | imagenet
      data_dir: null          # null: $MSUP_DATA or ~/.cache/msup/data (ImageNet: its imagenet/ subfolder)
      download: false         # fetch CIFAR with torchvision if missing (never ImageNet)
      val_fraction: 0.2       # share of the training set held out for selection, in (0, 1)
    model:
      name: mlp               # a registered model (`msup.models.list_models()`)
      dense: false            # true: the dense trainable baseline (mask section ignored)
      dense_first_last: false # keep the first and last layer dense and trained
      bn_affine: true         # learned BatchNorm gamma/beta (false: edge-popup)
      width: 1.0              # multiplier of every layer's width (Conv-n and cnn1d only)
      batchnorm: false        # BatchNorm after every conv (Conv-n only)
    mask:
      coats: null             # optional N, a check: must equal len(sparsities)
      sparsities: [0.5, 0.75, 0.9]   # cumulative p_1 < ... < p_N in (0, 1)
      weight_init: signed_constant   # | kaiming_normal
      scale_init: density            # | unscaled | variance_preserving
      init_scale: 1.0                # > 0, multiplies sigma
      score_init: kaiming_normal     # | kaiming_uniform
      grad_normalize: false          # divide the straight-through gradient by N
      refresh: step                  # | forward
    optim:
      epochs: 30              # >= 1
      batch_size: 128         # >= 1, at most the training split
      lr: 0.1                 # peak learning rate, > 0 (cosine to 0 after warmup)
      momentum: 0.9           # in [0, 1)
      nesterov: false         # needs momentum > 0
      weight_decay: 0.0001    # >= 0, on scores (and dense weights)
      bn_weight_decay: true   # also decay BatchNorm gamma/beta
      label_smoothing: 0.0    # in [0, 1)
      warmup_epochs: 0        # linear warmup epochs, < epochs
    runtime:
      seed: 0                 # frozen weights, initial scores, data order
      device: auto            # auto | cpu | cuda
      amp: true               # mixed precision (CUDA only)
      channels_last: true     # NHWC memory format (CUDA only)
      compile: false          # torch.compile the model
      num_workers: 4          # DataLoader workers (ImageNet only)

`TrainConfig.from_dict` reports every problem at once, one per line, each
starting with its key path. YAML here parses ``1e-4`` as a number (PyYAML
alone reads it as a string). The sections are strict pydantic models
(`msup.validation`); ``msup schema train`` prints their JSON Schema. Nothing
here imports torch: names are checked against `msup.catalog`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from msup.catalog import (
    DEFAULT_VAL_FRACTION,
    Refresh,
    ScaleInit,
    ScoreInit,
    WeightInit,
    batch_size_problem,
    dataset_info,
    list_datasets,
    model_names,
    train_size,
    validate_sparsities,
)
from msup.errors import InputError
from msup.safe_yaml import parse_yaml
from msup.validation import Float, StrictModel, problem_lines

if TYPE_CHECKING:
    from msup.layers import MaskConfig
    from msup.models import ModelSpec


def _one_of(choices: list[str], value: str) -> str:
    if value not in choices:
        raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
    return value


class DataSettings(StrictModel):
    """Which data set, where it lives, and how much of its training set is held out for selection."""

    name: str = Field("digits", description="a data set msup knows", json_schema_extra={"enum": [*list_datasets()]})
    data_dir: str | None = Field(None, description="null: $MSUP_DATA or ~/.cache/msup/data")
    download: bool = Field(False, description="fetch CIFAR with torchvision if missing (never ImageNet)")
    val_fraction: Float = Field(DEFAULT_VAL_FRACTION, gt=0, lt=1, description="share of the training set held out")

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        return _one_of(list_datasets(), name)

    @field_validator("download")
    @classmethod
    def _downloadable(cls, download: bool, info: ValidationInfo) -> bool:
        name = info.data.get("name")
        if download and name is not None and not dataset_info(name).downloadable:
            raise ValueError(f"{name} cannot be downloaded; point data.data_dir at your copy")
        return download


class ModelSettings(StrictModel):
    """The network: a registered model, supermasked unless ``dense``."""

    name: str = Field("mlp", description="a registered model", json_schema_extra={"enum": [*model_names()]})
    dense: bool = Field(False, description="the dense trainable baseline (mask section ignored)")
    dense_first_last: bool = Field(False, description="keep the first and last layer dense and trained")
    bn_affine: bool = Field(True, description="learned BatchNorm gamma/beta (false: edge-popup)")
    width: Float = Field(1.0, gt=0, description="multiplier of every layer's width (Conv-n and cnn1d only)")
    batchnorm: bool = Field(False, description="BatchNorm after every conv (Conv-n only; edge-popup's has none)")

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return _one_of(model_names(), name)


class MaskSettings(StrictModel):
    """The multicoated supermask: its cumulative sparsities and initialisation."""

    coats: int | None = Field(None, ge=1, description="optional N, a check: must equal len(sparsities)")
    sparsities: Annotated[tuple[Float, ...], Field(min_length=1, strict=False)] = Field(
        (0.5, 0.75, 0.9), description="cumulative p_1 < ... < p_N in (0, 1)")
    weight_init: WeightInit = "signed_constant"
    scale_init: ScaleInit = "density"
    init_scale: Float = Field(1.0, gt=0, description="multiplies sigma")
    score_init: ScoreInit = "kaiming_normal"
    grad_normalize: bool = Field(False, description="divide the straight-through gradient by N")
    refresh: Refresh = "step"

    @field_validator("sparsities")
    @classmethod
    def _nested(cls, sparsities: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
        try:
            return validate_sparsities(sparsities, info.data.get("coats"))
        except InputError as exc:
            raise ValueError(str(exc)) from None


class OptimSettings(StrictModel):
    """SGD with a cosine schedule after an optional linear warmup."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=1, description="at most the training split")
    lr: Float = Field(0.1, gt=0, description="peak learning rate (cosine to 0 after warmup)")
    momentum: Float = Field(0.9, ge=0, lt=1)
    nesterov: bool = Field(False, description="needs momentum > 0")
    weight_decay: Float = Field(1e-4, ge=0, description="on scores (and dense weights)")
    bn_weight_decay: bool = Field(True, description="also decay BatchNorm gamma/beta")
    label_smoothing: Float = Field(0.0, ge=0, lt=1)
    warmup_epochs: int = Field(0, ge=0, description="linear warmup epochs, < epochs")

    @field_validator("nesterov")
    @classmethod
    def _needs_momentum(cls, nesterov: bool, info: ValidationInfo) -> bool:
        if nesterov and info.data.get("momentum") == 0:
            raise ValueError("true needs optim.momentum > 0")
        return nesterov

    @field_validator("warmup_epochs")
    @classmethod
    def _within_epochs(cls, warmup: int, info: ValidationInfo) -> int:
        epochs = info.data.get("epochs")
        if epochs is not None and warmup >= epochs:
            raise ValueError(f"{warmup} must be < optim.epochs ({epochs})")
        return warmup


class RuntimeSettings(StrictModel):
    """Seed and device; the CUDA-only settings are ignored on a CPU."""

    seed: int = Field(0, ge=0, description="frozen weights, initial scores, data order")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(True, description="mixed precision (CUDA only)")
    channels_last: bool = Field(True, description="NHWC memory format (CUDA only)")
    compile: bool = Field(False, description="torch.compile the model")
    num_workers: int = Field(4, ge=0, description="DataLoader workers (ImageNet only)")


class TrainConfig(StrictModel):
    """One trial's full configuration; build it with `from_dict` (or `load_config`)."""

    model_config = StrictModel.model_config | {"title": "msup training config"}

    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    mask: MaskSettings = MaskSettings()
    optim: OptimSettings = OptimSettings()
    runtime: RuntimeSettings = RuntimeSettings()

    @model_validator(mode="before")
    @classmethod
    def _null_sections_are_defaults(cls, raw: Any) -> Any:
        return {k: ({} if v is None else v) for k, v in raw.items()} if isinstance(raw, Mapping) else raw

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainConfig:
        """Validate ``raw`` (the schema in the module docstring); one `InputError` lists every problem."""
        config, problems = _validated(raw)
        if config is None:
            raise InputError(problems[0] if len(problems) == 1 else
                             "invalid training config:\n  " + "\n  ".join(problems))
        return config

    @classmethod
    def problems(cls, raw: Any) -> list[str]:
        """Every problem of ``raw``, one line each with its key path; none: it is a valid training config."""
        return _validated(raw)[1]

    @classmethod
    def checked(cls, raw: Any) -> tuple[TrainConfig | None, list[str]]:
        """(the config, no problems), or (None, every problem of ``raw``): one validation for both."""
        return _validated(raw)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) that `from_dict` turns back into an equal config."""
        data = self.model_dump()
        data["mask"]["sparsities"] = list(self.mask.sparsities)
        return data

    def with_overrides(self, overrides: Iterable[str]) -> TrainConfig:
        """A copy with ``section.key=value`` assignments applied (values parsed as YAML)."""
        return TrainConfig.from_dict(apply_overrides(self.to_dict(), overrides))

    def mask_config(self) -> MaskConfig | None:
        """The layers' `MaskConfig` (seeded with ``runtime.seed``), or None for the dense baseline."""
        from msup.layers import MaskConfig

        if self.model.dense:
            return None
        m = self.mask
        return MaskConfig(m.sparsities, m.weight_init, m.scale_init, m.init_scale, m.score_init,
                          m.grad_normalize, m.refresh, self.runtime.seed)

    def model_spec(self) -> ModelSpec:
        from msup.models import ModelSpec

        info = dataset_info(self.data.name)
        return ModelSpec(
            self.model.name, info.num_classes, info.input_shape, self.mask_config(),
            self.model.dense_first_last, self.model.bn_affine, self.model.width, self.model.batchnorm,
        )


def _validated(raw: Any) -> tuple[TrainConfig | None, list[str]]:
    if not isinstance(raw, Mapping):
        return None, [f"a training config must be a mapping of sections, got {type(raw).__name__}"]
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        invalid = {error["loc"][0] for error in exc.errors() if error["loc"]}
        return None, problem_lines(exc, TrainConfig, raw) + _batch_size_problems(raw, invalid)
    problem = _batch_size_problem(config.data, config.optim)
    return (None, [problem]) if problem else (config, [])


def _batch_size_problem(data: DataSettings, optim: OptimSettings) -> str | None:
    """A batch larger than the training split (two sections' keys together)."""
    pool = dataset_info(data.name).train_pool
    if pool is None:
        return None
    return batch_size_problem(data.name, optim.batch_size, train_size(pool, data.val_fraction), data.val_fraction)


def _batch_size_problems(raw: Mapping[str, Any], invalid_sections: set[str | int]) -> list[str]:
    """The batch-size check where the data and optim sections are each valid, beside the other problems."""
    if invalid_sections & {"data", "optim"}:
        return []
    data = DataSettings.model_validate(raw.get("data") or {})
    optim = OptimSettings.model_validate(raw.get("optim") or {})
    problem = _batch_size_problem(data, optim)
    return [problem] if problem else []


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``raw`` with each ``a.b=value`` set (value parsed as YAML); `InputError` for malformed ones."""
    result = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    problems = []
    for text in overrides:
        key, sep, value = text.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name or "." in name:
            problems.append(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. optim.lr=0.05")
            continue
        target = result.setdefault(section, {})
        if not isinstance(target, dict):
            problems.append(f"--set {text!r}: {section} is not a section")
            continue
        target[name] = parse_yaml(value)
    if problems:
        raise InputError("\n".join(problems))
    return result


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a YAML training config, apply ``--set`` style overrides, validate everything once."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read config {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a YAML text file ({exc.reason} at byte {exc.start})") from None
    try:
        raw = parse_yaml(text) or {}
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    if not isinstance(raw, Mapping):
        raise InputError(f"{path}: a training config must be a mapping of sections")
    return TrainConfig.from_dict(apply_overrides(raw, overrides))


def dump_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML, sections in schema order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)

