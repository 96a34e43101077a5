"""`TrainConfig`: everything one training trial needs, typed and validated.

The dict / YAML schema (every key optional; the defaults are the embedded
digits recipe, ``studies/train/digits-mlp.yaml``)::

    data:
      name: digits            # digits | cifar10 | cifar100 | imagenet
      data_dir: null          # null: $MSUP_DATA or ~/.cache/msup/data (ImageNet: its imagenet/ subfolder)
      download: false         # fetch CIFAR with torchvision if missing (never ImageNet)
      val_fraction: 0.2       # share of the training set held out for selection, in (0, 1)
    model:
      name: mlp               # a registered model (`msup.models.list_models()`)
      dense: false            # true: the dense trainable baseline (mask section ignored)
      dense_first_last: false # keep the first and last layer dense and trained
      bn_affine: true         # learned BatchNorm gamma/beta (false: edge-popup)
      width: 1.0              # multiplier of every layer's width (Conv-n models only)
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
alone reads it as a string).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from msup.coats import validate_sparsities
from msup.data import (
    DEFAULT_VAL_FRACTION,
    batch_size_problem,
    dataset_info,
    list_datasets,
    train_size,
)
from msup.errors import InputError
from msup.layers import (
    REFRESH_MODES,
    SCALE_INITS,
    SCORE_INITS,
    WEIGHT_INITS,
    MaskConfig,
)
from msup.models import ModelSpec, list_models
from msup.safe_yaml import parse_yaml

Check = Callable[[Any], str | None]  # a problem with an already type-checked value, or None
DEVICES = ("auto", "cpu", "cuda")
FLOAT32_MAX = 3.4028234663852886e38


def _spec(default: Any, kind: str, *checks: Check) -> Any:
    """A dataclass field with its YAML ``kind`` and value checks in the metadata."""
    return field(default=default, metadata={"kind": kind, "checks": checks})


def _above(bound: float) -> Check:
    return lambda v: None if v > bound else f"{v!r} must be > {bound:g}"


def _at_least(bound: float) -> Check:
    return lambda v: None if v >= bound else f"{v!r} must be >= {bound:g}"


def _below(bound: float) -> Check:
    return lambda v: None if v < bound else f"{v!r} must be < {bound:g}"


def _one_of(choices: Callable[[], Sequence[str]]) -> Check:
    return lambda v: None if v in choices() else f"{v!r} is not one of {', '.join(choices())}"


@dataclass(frozen=True)
class DataSettings:
    name: str = _spec("digits", "str", _one_of(list_datasets))
    data_dir: str | None = _spec(None, "str?")
    download: bool = _spec(False, "bool")
    val_fraction: float = _spec(DEFAULT_VAL_FRACTION, "float", _above(0), _below(1))


@dataclass(frozen=True)
class ModelSettings:
    name: str = _spec("mlp", "str", _one_of(list_models))
    dense: bool = _spec(False, "bool")
    dense_first_last: bool = _spec(False, "bool")
    bn_affine: bool = _spec(True, "bool")
    width: float = _spec(1.0, "float", _above(0))


@dataclass(frozen=True)
class MaskSettings:
    coats: int | None = _spec(None, "int?", _at_least(1))
    sparsities: tuple[float, ...] = _spec((0.5, 0.75, 0.9), "floats")
    weight_init: str = _spec("signed_constant", "str", _one_of(lambda: WEIGHT_INITS))
    scale_init: str = _spec("density", "str", _one_of(lambda: SCALE_INITS))
    init_scale: float = _spec(1.0, "float", _above(0))
    score_init: str = _spec("kaiming_normal", "str", _one_of(lambda: SCORE_INITS))
    grad_normalize: bool = _spec(False, "bool")
    refresh: str = _spec("step", "str", _one_of(lambda: REFRESH_MODES))


@dataclass(frozen=True)
class OptimSettings:
    epochs: int = _spec(30, "int", _at_least(1))
    batch_size: int = _spec(128, "int", _at_least(1))
    lr: float = _spec(0.1, "float", _above(0))
    momentum: float = _spec(0.9, "float", _at_least(0), _below(1))
    nesterov: bool = _spec(False, "bool")
    weight_decay: float = _spec(1e-4, "float", _at_least(0))
    bn_weight_decay: bool = _spec(True, "bool")
    label_smoothing: float = _spec(0.0, "float", _at_least(0), _below(1))
    warmup_epochs: int = _spec(0, "int", _at_least(0))


@dataclass(frozen=True)
class RuntimeSettings:
    seed: int = _spec(0, "int", _at_least(0))
    device: str = _spec("auto", "str", _one_of(lambda: DEVICES))
    amp: bool = _spec(True, "bool")
    channels_last: bool = _spec(True, "bool")
    compile: bool = _spec(False, "bool")
    num_workers: int = _spec(4, "int", _at_least(0))


SECTIONS: dict[str, type] = {
    "data": DataSettings, "model": ModelSettings, "mask": MaskSettings,
    "optim": OptimSettings, "runtime": RuntimeSettings,
}


@dataclass(frozen=True)
class TrainConfig:
    """One trial's full configuration; build it with `from_dict` (or `load_config`)."""

    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    mask: MaskSettings = field(default_factory=MaskSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainConfig:
        """Validate ``raw`` (the schema in the module docstring); one `InputError` lists every problem."""
        if not isinstance(raw, Mapping):
            raise InputError(f"a training config must be a mapping of sections, got {type(raw).__name__}")
        problems = _unknown_keys(raw, SECTIONS, "")
        sections: dict[str, Any] = {}
        invalid: set[str] = set()
        for name, section_type in SECTIONS.items():
            values = raw.get(name) or {}
            if not isinstance(values, Mapping):
                problems.append(f"{name}: must be a mapping of keys to values, got {values!r}")
                values = {}
            problems += _unknown_keys(values, {f.name: f for f in fields(section_type)}, f"{name}.")
            kwargs, section_problems = _check_section(name, section_type, values)
            problems += section_problems
            invalid.update(p.partition(":")[0] for p in section_problems)
            sections[name] = section_type(**kwargs)
        config = cls(**sections)
        problems += _cross_checks(config, invalid)
        if problems:
            raise InputError(problems[0] if len(problems) == 1 else "invalid training config:\n  " + "\n  ".join(problems))
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) that `from_dict` turns back into an equal config."""
        data = asdict(self)
        data["mask"]["sparsities"] = list(self.mask.sparsities)
        return data

    def with_overrides(self, overrides: Iterable[str]) -> TrainConfig:
        """A copy with ``section.key=value`` assignments applied (values parsed as YAML)."""
        return TrainConfig.from_dict(apply_overrides(self.to_dict(), overrides))

    def mask_config(self) -> MaskConfig | None:
        """The layers' `MaskConfig` (seeded with ``runtime.seed``), or None for the dense baseline."""
        if self.model.dense:
            return None
        m = self.mask
        return MaskConfig(
            m.sparsities, m.weight_init, m.scale_init, m.init_scale, m.score_init,  # type: ignore[arg-type]  # checked
            m.grad_normalize, m.refresh, self.runtime.seed,  # type: ignore[arg-type]  # against the layers' names
        )

    def model_spec(self) -> ModelSpec:
        info = dataset_info(self.data.name)
        return ModelSpec(
            self.model.name, info.num_classes, info.input_shape, self.mask_config(),
            self.model.dense_first_last, self.model.bn_affine, self.model.width,
        )


def _unknown_keys(values: Mapping[str, Any], known: Mapping[str, Any], prefix: str) -> list[str]:
    problems = []
    for key in values:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
        problems.append(f"{prefix}{key}: unknown key; {hint}")
    return problems


def _check_section(name: str, section_type: type, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Type-check and range-check one section's given values; returns (kwargs, problems)."""
    kwargs, problems = {}, []
    for f in fields(section_type):
        if f.name not in values:
            continue
        value, problem = _typed(f.metadata["kind"], values[f.name])
        if problem is None and value is not None:
            problem = next((p for check in f.metadata["checks"] if (p := check(value))), None)
        if problem is None:
            kwargs[f.name] = value
        else:
            problems.append(f"{name}.{f.name}: {problem}")
    return kwargs, problems


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _typed(kind: str, value: Any) -> tuple[Any, str | None]:
    """``value`` converted to ``kind``, or a problem saying what was expected."""
    if value is None and kind.endswith("?"):
        return None, None
    base = kind.rstrip("?")
    nullable = " or null" if kind.endswith("?") else ""
    if base == "bool":
        return value, None if isinstance(value, bool) else f"{value!r} must be true or false"
    if base == "int":
        return value, None if _number(value) and isinstance(value, int) else f"{value!r} must be an integer{nullable}"
    if base == "str":
        return value, None if isinstance(value, str) else f"{value!r} must be a string{nullable}"
    if base == "float":  # training runs in float32: a larger number would overflow there
        if _number(value) and math.isfinite(value) and abs(value) <= FLOAT32_MAX:
            return float(value), None
        return value, f"{value!r} must be a finite number within float32 range (|x| <= {FLOAT32_MAX:.3g})"
    if isinstance(value, (list, tuple)) and value and all(_number(v) for v in value):
        return tuple(float(v) for v in value), None
    return value, f"{value!r} must be a non-empty list of numbers"


def _cross_checks(config: TrainConfig, invalid: set[str]) -> list[str]:
    """Rules that tie keys together; each runs only when all its keys are individually valid."""
    data, mask, optim = config.data, config.mask, config.optim

    def valid(*keys: str) -> bool:
        return invalid.isdisjoint(keys)

    problems = []
    if valid("mask.sparsities", "mask.coats"):
        try:
            validate_sparsities(mask.sparsities, mask.coats)
        except InputError as exc:
            problems.append(f"mask.sparsities: {exc}")
    if valid("optim.nesterov", "optim.momentum") and optim.nesterov and optim.momentum == 0:
        problems.append("optim.nesterov: true needs optim.momentum > 0")
    if valid("optim.warmup_epochs", "optim.epochs") and optim.warmup_epochs >= optim.epochs:
        problems.append(f"optim.warmup_epochs: {optim.warmup_epochs} must be < optim.epochs ({optim.epochs})")
    if not valid("data.name"):
        return problems
    info = dataset_info(data.name)
    if valid("data.download") and data.download and not info.downloadable:
        problems.append(f"data.download: {info.name} cannot be downloaded; point data.data_dir at your copy")
    if valid("optim.batch_size", "data.val_fraction") and info.train_pool is not None:
        samples = train_size(info.train_pool, data.val_fraction)
        if problem := batch_size_problem(info.name, optim.batch_size, samples, data.val_fraction):
            problems.append(problem)
    return problems


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

