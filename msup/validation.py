"""Strict config models, and their validation errors as msup's one-line problems.

Every config msup reads (a training config, a study file, a search space, the
loggers) is a pydantic model on `StrictModel`: no coercion (a bool is not a
number, ``"1"`` is not 1), unknown keys refused, floats finite. `problem_lines`
turns pydantic's errors into lines of the form ``key.path: what is wrong``,
with the bad value and, for an unknown key, the key it most likely meant.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, WithJsonSchema
from pydantic_core import ErrorDetails

FLOAT32_MAX = 3.4028234663852886e38  # training runs in float32: a larger number would overflow there


class StrictModel(BaseModel):
    """A frozen config section: strict types, unknown keys refused, finite floats."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class KeyProblem(ValueError):
    """A problem a check across fields finds, reported at ``key`` of the model rather than at the model."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def float32(value: float) -> float:
    """A float validator: the value fits float32."""
    if abs(value) > FLOAT32_MAX:
        raise ValueError(f"{value!r} must be a finite number within float32 range (|x| <= {FLOAT32_MAX:.3g})")
    return value


Float = Annotated[float, AfterValidator(float32)]


def _path_or_mapping(value: Any) -> Any:
    if not isinstance(value, (str, Mapping)):
        raise ValueError(f"{value!r} must be a path to a YAML file or a mapping")
    return value


# A file (relative to the file that names it) or the same content inline.
PathOrMapping = Annotated[Any, AfterValidator(_path_or_mapping),
                          WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "object"}]})]


def problem_lines(exc: ValidationError, model: type[BaseModel] | None, raw: Any, prefix: str = "") -> list[str]:
    """One line per problem, in input order; ``raw`` is the validated input (the bad values are read from it),
    ``model`` the class validated (for the keys an unknown one may have meant), ``prefix`` the path above it."""
    lines: dict[str, str] = {}  # the first problem of each key path
    for error in exc.errors(include_url=False):
        loc = _input_path(raw, error)
        while loc and isinstance(loc[-1], int):  # an item of a list: the list is what is wrong
            loc.pop()
        if isinstance(cause := (error.get("ctx") or {}).get("error"), KeyProblem):
            loc.append(cause.key)
        path = (prefix + ".".join(str(part) for part in loc)).rstrip(".")
        lines.setdefault(path, f"{path}: {_message(error, _value_at(raw, loc), model, loc)}")
    return list(lines.values())


def _input_path(raw: Any, error: ErrorDetails) -> list[str | int]:
    """The error's location as keys of the input: pydantic inserts the member of a union it tried
    (``int``, ``function-after[...]``) into locations, which is no key of the user's."""
    path: list[str | int] = []
    for i, part in enumerate(error["loc"]):
        found, raw = _child(raw, part)
        if not found and not (i == len(error["loc"]) - 1 and error["type"] in ("missing", "extra_forbidden")):
            break
        path.append(part)
    return path


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    """(whether ``node`` has ``part``, the value there)."""
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, (list, tuple)) and isinstance(part, int) and part < len(node):
        return True, node[part]
    return False, None


def _message(error: ErrorDetails, value: Any, model: type[BaseModel] | None, loc: Sequence[str | int]) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        return "unknown key; " + (f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}")
    if kind == "missing":
        return "required"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        (bound_kind, bound), = context.items()
        sign = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}[bound_kind]
        return f"{value!r} must be {sign} {bound:g}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(context.get("expected", ""))) or [str(context.get("expected"))]
        return f"{value!r} is not one of {', '.join(choices)}"
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if len(error["loc"]) > len(loc) and isinstance(error["loc"][len(loc)], int):  # an item of the list is wrong
        items = "numbers" if kind in ("float_type", "finite_number", "int_type") else "valid values"
        return f"{value!r} must be a list of {items}"
    if kind in ("too_short", "tuple_type", "list_type"):
        return f"{value!r} must be a non-empty list"
    simple = {
        "bool_type": "must be true or false", "int_type": "must be an integer", "int_from_float": "must be an integer",
        "float_type": "must be a finite number", "finite_number": "must be a finite number",
        "string_type": "must be a string", "model_type": "must be a mapping of keys to values",
        "dict_type": "must be a mapping of keys to values", "model_attributes_type": "must be a mapping of keys to values",
    }
    return f"{value!r} {simple.get(kind, error['msg'][0].lower() + error['msg'][1:])}"


def _value_at(raw: Any, loc: Sequence[str | int]) -> Any:
    for part in loc:
        found, raw = _child(raw, part)
        if not found:
            return None
    return raw


def _known_keys(model: type[BaseModel] | None, loc: Sequence[str | int]) -> list[str]:
    """The keys of the model found at ``loc`` below ``model`` (none where it is not a model)."""
    for part in loc:
        field = model.model_fields.get(str(part)) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        return next((m for arg in typing.get_args(annotation) if (m := _model_in(arg)) is not None), None)
    return None
