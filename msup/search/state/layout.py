"""The layout of a study folder (README, "Where things go"): names shared by whoever writes or reads it."""

from __future__ import annotations

STUDY_FILE = "study.yaml"  # the study file as launched, with its storage and runs folder
RAY_DIR = "ray"  # one Ray Tune experiment per launch or extension: run-1/, run-2/, ...
ARTIFACTS_DIR = "artifacts"  # the model file of every trained trial


def artifact_name(number: int) -> str:
    """The model file of Optuna trial ``number`` in `ARTIFACTS_DIR`."""
    return f"{number:05d}.msup"
