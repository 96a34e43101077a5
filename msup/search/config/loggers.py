"""``loggers:`` of a study file: which experiment trackers get the trials (`msup.search.execution.trackers`)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

OPTIONS = {"mlflow": {"tracking_uri", "experiment", "tags"}, "wandb": {"project", "group", "entity", "tags"},
           "tensorboard": set()}
PACKAGES = {"mlflow": ("mlflow", "pip install 'msup[mlflow]'"), "wandb": ("wandb", "pip install 'msup[wandb]'"),
            "tensorboard": ("tensorboardX", "pip install tensorboardX")}


def parse_loggers(raw: Any, errors: list[str]) -> dict[str, dict[str, Any]]:
    """``loggers:`` as ``{name: options}``; every problem is appended to ``errors`` with its key path."""
    if raw is None:
        return {}
    if isinstance(raw, list) and all(isinstance(name, str) for name in raw):
        raw = {name: {} for name in raw}
    if not isinstance(raw, Mapping):
        errors.append(f"loggers: must be a list of names or a mapping of name to options ({', '.join(OPTIONS)}), "
                      f"got {raw!r}")
        return {}
    loggers: dict[str, dict[str, Any]] = {}
    for name, options in raw.items():
        options = {} if options is None else options
        if name not in OPTIONS:
            errors.append(f"loggers.{name}: unknown logger (expected one of {', '.join(OPTIONS)})")
        elif not isinstance(options, Mapping):
            errors.append(f"loggers.{name}: options must be a mapping, got {options!r}")
        elif set(options) - OPTIONS[name]:
            unknown = ", ".join(sorted(set(options) - OPTIONS[name]))
            errors.append(f"loggers.{name}: unknown option(s) {unknown} (expected {', '.join(sorted(OPTIONS[name])) or 'none'})")
        elif importlib.util.find_spec(PACKAGES[name][0]) is None:
            errors.append(f"loggers.{name}: {PACKAGES[name][0]} is not installed ({PACKAGES[name][1]})")
        else:
            loggers[name] = dict(options)
    return loggers
