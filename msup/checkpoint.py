"""Checkpoint files: one `torch.save` dict of tensors and plain Python values.

Loadable with ``torch.load(path, weights_only=True)`` (no arbitrary pickles).
Layout (format ``msup-checkpoint/1``):

- ``format``: the format tag above;
- ``model_spec``: `ModelSpec.to_dict()`; ``config``: `TrainConfig.to_dict()`;
- ``model``: the state dict (scores, BatchNorm state; dense weights for the
  dense baseline; frozen random weights are not stored, the seed rebuilds them);
- ``optimizer``, ``scheduler``, ``scaler``: their state dicts;
- ``epoch``: completed epochs;
- ``rng``: ``torch`` (CPU generator state), ``cuda`` (list, one per device),
  ``data`` (the training split's shuffle/augment generator, or None);
- ``best``: ``{"epoch", "val_acc", "model"}`` of the best validation epoch so far, or None;
- ``history``: the per-epoch metrics dicts.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from msup.errors import InputError, first_line
from msup.models import ModelSpec

FORMAT = "msup-checkpoint/1"
REQUIRED_KEYS = ("model_spec", "config", "model", "optimizer", "scheduler", "epoch", "rng", "best", "history")


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` (the layout above, without ``format``) atomically: a reader never sees half a file."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {', '.join(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"format": FORMAT, **state}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint; `InputError` if it is missing or not an msup checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # the refusal below says it in one line; torch's warning would repeat it
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise InputError(f"{path} is not a readable msup checkpoint: {first_line(exc)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise InputError(f"{path} is not an msup checkpoint (format {found!r}, expected {FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise InputError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state


def model_from_checkpoint(
    path: str | Path, state: Literal["final", "best"] = "final", device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelSpec]:
    """Rebuild the model of a checkpoint in eval mode, with its final or best-validation state."""
    ckpt = load_checkpoint(path)
    spec = ModelSpec.from_dict(ckpt["model_spec"])
    if state == "final":
        weights = ckpt["model"]
    elif state == "best":
        if ckpt["best"] is None:
            raise InputError(f"{path} has no best-validation state (no epoch finished)")
        weights = ckpt["best"]["model"]
    else:
        raise InputError(f"state={state!r} is not one of final, best")
    model = spec.build()
    model.load_state_dict(weights)
    return model.to(device).eval(), spec
