"""The deployable model file (``*.msup``): a seed, coded levels and the learned tensors.

Frozen weights are not stored: the `ModelSpec` in the header rebuilds them
from its seed. Stored are every masked weight's coat level (coded by
`msup.codec`) and every other tensor of the state dict (BatchNorm parameters
and running statistics, dense layers), raw. Byte layout and the checking
parser live in `msup.artifact_format`.

``batchnorm="exact"`` (the default) stores BatchNorm as trained, so a loaded
model's eval outputs equal the saved one's bit for bit. ``"folded"`` stores
each affine BatchNorm as the per-channel scale and shift it applies in eval
mode (``gamma / sqrt(var + eps)`` and ``beta - scale * mean``): half the bytes,
outputs equal up to float rounding, and the model can no longer be trained
on. ``"folded-fp16"`` stores those in float16 (a quarter of the bytes).

Loading checks the whole file, then checks the header against the
architecture built on the ``meta`` device (which allocates nothing), and only
then decodes levels and builds the real model: a bad file raises `InputError`
and never yields a partially restored model.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from msup.artifact_format import (
    DTYPE_NAMES,
    DTYPES,
    FORMAT_VERSION,
    MAGIC,
    ArtifactSummary,
    LayerSummary,
    TensorSummary,
    frame,
    parse_model_file,
)
from msup.coats import level_counts
from msup.codec import EncodedLevels, check_code, decode_levels, encode_levels
from msup.errors import InputError
from msup.layers import SupermaskMixin, supermask_layers
from msup.models import ModelSpec
from msup.sizes import inventory, model_size
from msup.version import __version__

__all__ = [
    "ArtifactSummary", "LayerSummary", "TensorSummary",
    "artifact_size_bytes", "load_model", "model_file_bytes", "read_summary", "save_model",
]

PathLike = str | os.PathLike[str]
T = TypeVar("T")


# --- writing ------------------------------------------------------------------------------


BATCHNORM = {"exact": None, "folded": torch.float32, "folded-fp16": torch.float16}  # option -> folded dtype


def model_file_bytes(model: nn.Module, spec: ModelSpec, code: str = "entropy", batchnorm: str = "exact") -> bytes:
    """The complete ``.msup`` file of ``model`` (built from ``spec``), in memory."""
    _require_little_endian()
    check_code(code)
    if batchnorm not in BATCHNORM:
        raise InputError(f"batchnorm {batchnorm!r} is not one of {', '.join(BATCHNORM)}")
    if spec.mask is None:
        raise InputError(f"model spec {spec.name!r} has no mask: a dense model has no coat levels to store")
    layers = supermask_layers(model)
    if not layers:
        raise InputError(f"{type(model).__name__} has no supermasked layer to store")
    layer_entries, chunks = [], []
    for name, layer in layers:
        encoded = _encode_layer(name, layer, spec, code)
        layer_entries.append({
            "name": name, "shape": list(layer.weight.shape), "n": encoded.n, "code": encoded.code,
            "level_counts": list(encoded.counts), "payload_bytes": len(encoded.payload), "payload_bits": encoded.bits,
        })
        chunks.append(encoded.payload)
    tensor_entries = []
    for key, tensor in _stored_tensors(model, BATCHNORM[batchnorm]).items():
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        tensor_entries.append({"name": key, "dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape), "bytes": len(raw)})
        chunks.append(raw)
    sizes = model_size(inventory(model), spec.mask.sparsities)
    header = {
        "format_version": FORMAT_VERSION,
        "msup_version": __version__,
        "batchnorm": "exact" if BATCHNORM[batchnorm] is None else "folded",
        "model_spec": spec.to_dict(),
        "layers": layer_entries,
        "tensors": tensor_entries,
        "reference_sizes": {"paper_mib": sizes.paper_mib, "entropy_mib": sizes.entropy_mib, "dense_mib": sizes.dense_mib},
    }
    return frame(header, chunks)


def save_model(
    model: nn.Module, spec: ModelSpec, path: PathLike, code: str = "entropy", batchnorm: str = "exact",
) -> ArtifactSummary:
    """Write ``model`` to ``path`` and summarise the file; a reader never sees half a file."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target} is a folder, not a model file path")
    data = model_file_bytes(model, spec, code, batchnorm)
    summary = parse_model_file(data).summary
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return summary


def artifact_size_bytes(model: nn.Module, spec: ModelSpec, code: str = "entropy", batchnorm: str = "exact") -> int:
    """Bytes of the ``.msup`` file `save_model` would write, computed in memory."""
    return len(model_file_bytes(model, spec, code, batchnorm))


def _encode_layer(name: str, layer: SupermaskMixin, spec: ModelSpec, code: str) -> EncodedLevels:
    mask = spec.mask
    assert mask is not None
    if layer.mask_config != mask:
        raise InputError(
            f"layer {name} was built with {layer.mask_config}, not the spec's {mask}: "
            "the file would rebuild different frozen weights"
        )
    encoded = encode_levels(layer.levels().cpu().numpy(), mask.coats, code)
    expected = level_counts(encoded.n, mask.sparsities)
    if encoded.counts != expected:
        raise InputError(
            f"layer {name}: level histogram {list(encoded.counts)} differs from the exact counts "
            f"{list(expected)} of sparsities {list(mask.sparsities)}"
        )
    return encoded


def _stored_tensors(model: nn.Module, folded: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The state dict minus the scores, which the stored levels replace.

    With ``folded`` (a dtype), each affine BatchNorm's five tensors become its eval-mode
    ``scale`` and ``shift`` in that dtype, and a plain BatchNorm loses only its batch counter.
    """
    scores = {f"{name}.scores" for name, _ in supermask_layers(model)}
    tensors = {key: value for key, value in model.state_dict().items() if key not in scores}
    if folded is None:
        return tensors
    batchnorms = dict(_batchnorms(model))
    stored: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        prefix, _, field = key.rpartition(".")
        bn = batchnorms.get(prefix)
        if bn is None or (field != "num_batches_tracked" and not (bn.affine and bn.track_running_stats)):
            stored[key] = value
        elif field == "num_batches_tracked":
            continue
        elif field == "weight":  # the first of the module's tensors: its place in the file
            scale, shift = _fold(bn)
            stored[f"{prefix}.scale"], stored[f"{prefix}.shift"] = scale.to(folded), shift.to(folded)
    return stored


def _batchnorms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _fold(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel ``scale`` and ``shift`` an affine BatchNorm applies in eval mode, in float64 then cast."""
    mean, var = (stat.double() for stat in _running_stats(bn))
    scale = bn.weight.detach().double() / torch.sqrt(var + bn.eps)
    return scale.float(), (bn.bias.detach().double() - scale * mean).float()


def _running_stats(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """A BatchNorm's running mean and variance (every BatchNorm of msup's models keeps them)."""
    if bn.running_mean is None or bn.running_var is None:
        raise InputError(f"{type(bn).__name__} without running statistics: nothing to fold")
    return bn.running_mean, bn.running_var


def _unfold(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Install folded scales and shifts: weight = scale, bias = shift, mean 0, and var + eps == 1 exactly."""
    with torch.no_grad():
        for name, bn in _batchnorms(model):
            if bn.affine and f"{name}.scale" in tensors:
                bn.weight.copy_(tensors.pop(f"{name}.scale").float())
                bn.bias.copy_(tensors.pop(f"{name}.shift").float())
                mean, var = _running_stats(bn)
                mean.zero_()
                var.fill_(1.0 - bn.eps)  # in float32, (1 - eps) + eps rounds to exactly 1


def _require_little_endian() -> None:
    if sys.byteorder != "little":
        raise InputError("msup model files are little-endian; this big-endian host cannot read or write them")


# --- reading ------------------------------------------------------------------------------


def read_summary(path: PathLike) -> ArtifactSummary:
    """Header and sizes of a model file, after checking its framing, checksum and header."""
    return _read(path, lambda data: parse_model_file(data).summary)


def load_model(path: PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelSpec]:
    """Rebuild the saved model (eval mode, on ``device``) and return it with its spec.

    Frozen weights come back from the seed, decoded levels are installed and
    every other tensor is restored, so eval-mode outputs equal the saved
    model's bit for bit on the same device and dtype.
    """
    model, spec = _read(path, _rebuild)
    return model.to(device).eval(), spec


def _read(path: PathLike, action: Callable[[bytes], T]) -> T:
    """Run ``action`` on the bytes of ``path``, prefixing any `InputError` with the path."""
    try:
        if not os.path.isfile(path):  # a FIFO or device could block the read forever
            raise InputError("no such file" if not os.path.exists(path) else "not a regular file")
        _require_little_endian()
        with open(path, "rb") as handle:
            data = handle.read(len(MAGIC))
            if data == MAGIC:  # read the rest only of what claims to be a model file
                data += handle.read()
        return action(data)
    except InputError as exc:
        raise InputError(f"{os.fspath(path)}: {exc}") from None
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot read: {exc.strerror}") from None


def _rebuild(data: bytes) -> tuple[nn.Module, ModelSpec]:
    parsed = parse_model_file(data)
    spec = parsed.summary.spec
    _check_architecture(parsed.summary)
    levels = {layer.name: _decode(layer, payload) for layer, payload in parsed.layer_payloads()}
    tensors = {tensor.name: _tensor_from_bytes(tensor, raw) for tensor, raw in parsed.tensor_payloads()}
    model = spec.build()
    _unfold(model, tensors)
    model.load_state_dict(tensors, strict=False)  # only the scores (and folded BatchNorm tensors) are missing
    with torch.no_grad():
        for name, layer in supermask_layers(model):
            installed = torch.from_numpy(levels[name]).view(layer.weight.shape)
            # Levels hold the exact coat counts, so a refresh from these scores reproduces them.
            layer.scores.copy_(installed)
            layer.set_levels(installed)
    return model, spec


def _check_architecture(summary: ArtifactSummary) -> None:
    """The header's layers and tensors must be exactly those of the spec's model, in order."""
    with torch.device("meta"):
        skeleton = summary.spec.build()
    _compare(
        "masked layer",
        [(name, tuple(layer.weight.shape)) for name, layer in supermask_layers(skeleton)],
        [(layer.name, layer.shape) for layer in summary.layers],
        summary.spec.name,
    )
    folded = torch.float32 if summary.batchnorm == "folded" else None  # the dtype does not change the names
    _compare(
        "tensor",
        [(key, tuple(value.shape)) for key, value in _stored_tensors(skeleton, folded).items()],
        [(tensor.name, tensor.shape) for tensor in summary.tensors],
        summary.spec.name,
    )


def _compare(
    kind: str, expected: list[tuple[str, tuple[int, ...]]], found: list[tuple[str, tuple[int, ...]]], model: str,
) -> None:
    for i, (want, got) in enumerate(zip(expected, found)):
        if want != got:
            raise InputError(f"header {kind} {i} is {got[0]} {list(got[1])}, but {model} has {want[0]} {list(want[1])}")
    if len(expected) != len(found):
        raise InputError(f"header lists {len(found)} {kind}s, but {model} has {len(expected)}")


def _decode(layer: LayerSummary, payload: bytes) -> np.ndarray:
    try:
        return decode_levels(layer.encoded(payload))
    except InputError as exc:
        raise InputError(f"layer {layer.name}: {exc}") from None


def _tensor_from_bytes(tensor: TensorSummary, raw: bytes) -> torch.Tensor:
    flat = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).copy())
    return flat.view(DTYPES[tensor.dtype]).reshape(tensor.shape)
