"""Search spaces: which training settings a study explores, and how.

A search space is a YAML mapping with one key, ``parameters``; each entry is a
parameter name and either a fixed value or a distribution::

    parameters:
      coats: {type: int, low: 1, high: 4}               # N; 1 is edge-popup
      outer_density: {type: float, low: 0.005, high: 0.5, log: true}   # 1 - p_1
      coat_keep: {type: float, low: 0.15, high: 0.7}    # inner coat i keeps this share of coat i-1
      scale_init: {type: categorical, choices: [density, unscaled, variance_preserving]}
      lr: {type: float, low: 0.02, high: 0.4, log: true}
      momentum: 0.9                                     # fixed
      optim.warmup_epochs: {type: int, low: 0, high: 2, when: {coats: [2, 3, 4]}}

Distributions: ``int`` and ``float`` (``low``, ``high``, optional ``log`` and
``step``) and ``categorical`` (``choices``). ``when`` samples a parameter only
if other, already sampled parameters take one of the listed values.

The coat structure is valid by construction for any coat count: the outer coat
keeps ``outer_density`` of the weights (``p_1 = 1 - outer_density``) and every
inner coat keeps a share ``coat_keep_i`` of the coat around it, sampled once per
coat from the ``coat_keep`` distribution, so ``p_1 < p_2 < ... < p_N < 1``.

Other names are short aliases (``lr``, ``scale_init``, ...: see ``ALIASES``) or
dotted paths into the training configuration (``optim.warmup_epochs``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import optuna
from pydantic import Field, ValidationError, model_validator

from msup.errors import InputError
from msup.validation import Float, KeyProblem, StrictModel, problem_lines

ALIASES: dict[str, str] = {
    **{k: f"optim.{k}" for k in ("lr", "momentum", "nesterov", "weight_decay", "bn_weight_decay",
                                  "label_smoothing", "warmup_epochs", "batch_size", "epochs")},
    **{k: f"mask.{k}" for k in ("weight_init", "scale_init", "init_scale", "score_init", "grad_normalize", "refresh")},
    **{k: f"model.{k}" for k in ("bn_affine", "dense_first_last", "width", "batchnorm")},
}
COAT_KEYS = ("coats", "outer_density", "coat_keep")


@dataclass(frozen=True)
class Param:
    """One parameter: a fixed ``value`` or a distribution, optionally conditional."""

    name: str
    kind: str  # "fixed" | "int" | "float" | "categorical"
    value: Any = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of an int or float distribution."""
        if self.low is None or self.high is None:
            raise TypeError(f"parameter {self.name} ({self.kind}) has no bounds")
        return self.low, self.high

    def suggest(self, trial: optuna.Trial, name: str | None = None) -> Any:
        name = name or self.name
        if self.kind == "fixed":
            return self.value
        if self.kind == "int":
            low, high = self.bounds
            return trial.suggest_int(name, int(low), int(high), step=int(self.step or 1), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(name, *self.bounds, step=self.step, log=self.log)
        return trial.suggest_categorical(name, list(self.choices))

    def corners(self) -> list[Any]:
        """Extreme values, used to check the space before a study starts."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        cast = int if self.kind == "int" else float
        return [cast(bound) for bound in self.bounds]

    def value_problem(self, value: Any) -> str | None:
        """Why ``value`` is not a value this parameter can take, or None."""
        if self.kind == "categorical":
            return None if value in self.choices else f"{value!r} is not one of {', '.join(map(str, self.choices))}"
        number = int if self.kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, number):
            return f"{value!r} must be {'an integer' if self.kind == 'int' else 'a number'}"
        low, high = self.bounds
        return None if low <= value <= high else f"{value!r} is outside [{low:g}, {high:g}]"


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    description: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def max_coats(self) -> int:
        coats = self.param("coats")
        return 1 if coats is None else max(int(v) for v in coats.corners())

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample every parameter; adds the derived ``sparsity_1..N`` for the results table."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.name in ("outer_density", "coat_keep") or not _condition_holds(p, values):
                continue
            values[p.name] = p.suggest(trial)
        coats = int(values.get("coats", 1))
        values["coats"] = coats
        density = self.param("outer_density")
        if density is not None:
            values["outer_density"] = density.suggest(trial)
            keep = self.param("coat_keep")
            if keep is not None:  # left out only where coats is 1
                for i in range(2, coats + 1):
                    values[f"coat_keep_{i}"] = keep.suggest(trial, f"coat_keep_{i}")
            for i, sparsity in enumerate(sparsities_from(values), start=1):
                values[f"sparsity_{i}"] = sparsity
        return values


    def configuration_problems(self, values: Mapping[str, Any]) -> list[str]:
        """Why ``values``, parameters of this space (a study's ``enqueue:`` entry), is not a draw it can make;
        one line per parameter, starting with its name. Parameters left out are sampled."""
        problems = []
        coats = values.get("coats")
        for name, value in values.items():
            inner = re.fullmatch(r"coat_keep_(\d+)", str(name))
            param = self.param("coat_keep" if inner else str(name))
            if param is None or param.kind == "fixed" or name == "coat_keep":
                sampled = [p.name for p in self.params if p.kind != "fixed" and p.name != "coat_keep"]
                problems.append(f"{name}: not a sampled parameter of the search space ({', '.join(sampled)}, "
                                "and coat_keep_2 ... coat_keep_N)")
            elif inner and not (isinstance(coats, int) and 2 <= int(inner.group(1)) <= coats):
                problems.append(f"{name}: needs coats >= {inner.group(1)} in the same configuration")
            elif problem := param.value_problem(value):
                problems.append(f"{name}: {problem}")
        return problems


def _condition_holds(param: Param, values: Mapping[str, Any]) -> bool:
    return all(values.get(key) in allowed for key, allowed in param.when)


def sparsities_from(values: Mapping[str, Any]) -> list[float]:
    """Cumulative sparsities from ``outer_density`` and ``coat_keep_i``: strictly increasing in (0, 1)."""
    density = float(values["outer_density"])
    sparsities = [1.0 - density]
    for i in range(2, int(values.get("coats", 1)) + 1):
        density *= float(values[f"coat_keep_{i}"])
        sparsities.append(1.0 - density)
    return sparsities


def train_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Nested training-config overrides (``{"optim": {"lr": ...}}``) for sampled values."""
    nested: dict[str, Any] = {}
    for name, value in values.items():
        if name.startswith(("outer_density", "coat_keep_", "sparsity_")):
            continue
        if name == "coats":
            if "outer_density" in values:
                nested.setdefault("mask", {}).update(coats=int(value), sparsities=sparsities_from(values))
            continue
        *parents, leaf = ALIASES.get(name, name).split(".")
        node = nested
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return nested


class _Distribution(StrictModel):
    when: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = Field(
        None, description="sample only if the named, already sampled parameters take one of the listed values")


class _Range(_Distribution):
    """``low`` to ``high``, optionally on a log scale or a grid of ``step``."""

    low: Float
    high: Float
    log: bool = False
    step: Float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _a_range(self) -> _Range:
        if self.low > self.high:
            raise KeyProblem("low", f"{self.low:g} is above high ({self.high:g})")
        if self.log and self.low <= 0:
            raise KeyProblem("low", f"{self.low:g} must be > 0 for a log distribution")
        if self.log and self.step is not None:
            raise KeyProblem("step", "step and log cannot be combined")
        return self


class IntDistribution(_Range):
    type: Literal["int"]
    low: int
    high: int
    step: int | None = Field(None, gt=0)


class FloatDistribution(_Range):
    type: Literal["float"]


class CategoricalDistribution(_Distribution):
    type: Literal["categorical"]
    choices: Annotated[list[Any], Field(min_length=1)]


DISTRIBUTIONS: dict[str, type[IntDistribution | FloatDistribution | CategoricalDistribution]] = {
    "int": IntDistribution, "float": FloatDistribution, "categorical": CategoricalDistribution,
}
Distribution = Annotated[IntDistribution | FloatDistribution | CategoricalDistribution, Field(discriminator="type")]


class SpaceFile(StrictModel):
    """A search space as written: for its JSON Schema (`parse_space` reads it, parameter by parameter)."""

    model_config = StrictModel.model_config | {"title": "msup search space"}

    description: str = ""
    parameters: dict[str, Distribution | bool | int | float | str] = Field(
        min_length=1, description="a parameter name (an alias such as lr, or a dotted training-config path) and "
                                  "its distribution or fixed value")


def parse_space(data: Any, where: str = "search_space") -> SearchSpace:
    """Validate a search-space mapping; every problem is reported at once with its key path."""
    errors: list[str] = []
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: must be a mapping with a 'parameters' key, got {type(data).__name__}")
    for key in data:
        if key not in SpaceFile.model_fields:
            errors.append(f"{where}.{key}: unknown key (expected parameters, description)")
    raw = data.get("parameters")
    if not isinstance(raw, Mapping) or not raw:
        errors.append(f"{where}.parameters: must be a non-empty mapping of parameter name to value or distribution")
        raw = {}
    params = []
    for name, spec in raw.items():
        param = _parse_param(str(name), spec, f"{where}.parameters.{name}", errors)
        if param is not None:
            params.append(param)
    names = {p.name for p in params}
    if ("outer_density" in names) != ("coat_keep" in names) and not (
        "outer_density" in names and _max_of(params, "coats") == 1
    ):
        errors.append(f"{where}.parameters: outer_density and coat_keep go together "
                      "(coat_keep may be left out only when coats is 1)")
    if "coats" in names and "outer_density" not in names:
        errors.append(f"{where}.parameters.coats: needs outer_density (and coat_keep) to define the sparsities")
    for p in params:
        for key, _ in p.when:
            if key not in names:
                errors.append(f"{where}.parameters.{p.name}.when: refers to unknown parameter {key!r}")
    if errors:
        raise InputError("\n".join(errors))
    return SearchSpace(tuple(params), str(data.get("description", "")))


def _max_of(params: list[Param], name: str) -> float:
    p = next((p for p in params if p.name == name), None)
    return 1 if p is None else max(p.corners())


def _parse_param(name: str, spec: Any, where: str, errors: list[str]) -> Param | None:
    if not isinstance(spec, Mapping):
        if isinstance(spec, (list, tuple, set)):
            errors.append(f"{where}: a list is ambiguous; write {{type: categorical, choices: [...]}}")
            return None
        return Param(name, "fixed", value=spec)
    model = DISTRIBUTIONS.get(spec.get("type"))  # type: ignore[arg-type]  # any value: a miss is reported
    if model is None:
        errors.append(f"{where}.type: {spec.get('type')!r} is not one of {', '.join(DISTRIBUTIONS)}")
        return None
    try:
        dist = model.model_validate(spec)
    except ValidationError as exc:
        errors += problem_lines(exc, model, spec, f"{where}.")
        return None
    when = tuple((str(k), tuple(v)) for k, v in (dist.when or {}).items())
    if isinstance(dist, CategoricalDistribution):
        return Param(name, dist.type, choices=tuple(dist.choices), when=when)
    low, high = dist.low, dist.high
    if name in ("outer_density", "coat_keep") and not (0 < low and high < 1):
        errors.append(f"{where}: {name} must lie inside (0, 1), got [{low}, {high}]")
    if name == "coats" and (dist.type != "int" or low < 1):
        errors.append(f"{where}: coats must be an int distribution with low >= 1")
    return Param(name, dist.type, low=low, high=high, log=dist.log, step=dist.step, when=when)
