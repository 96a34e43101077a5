"""The packages a study's experiment trackers need (`msup.search.config.study_file.Loggers` is what it may say)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

PACKAGES = {"mlflow": ("mlflow", "pip install 'msup[mlflow]'"), "wandb": ("wandb", "pip install 'msup[wandb]'"),
            "tensorboard": ("tensorboardX", "pip install tensorboardX")}


def logger_problems(loggers: Mapping[str, Any]) -> list[str]:
    """One line for each logger whose package is not installed (checked at launch, not when a study is read)."""
    return [f"loggers.{name}: {PACKAGES[name][0]} is not installed ({PACKAGES[name][1]})"
            for name in loggers if importlib.util.find_spec(PACKAGES[name][0]) is None]
