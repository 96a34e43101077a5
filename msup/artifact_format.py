"""Byte layout of ``*.msup`` model files and a parser that trusts nothing in them.

Layout (integers little-endian)::

    MAGIC (8 bytes) | header length (u64) | header | body | SHA-256 of all preceding bytes

The header is UTF-8 JSON, zlib-compressed since format version 2 (version 1
files, plain JSON, still load). Version 2 also records ``batchnorm``: ``exact``
(every BatchNorm tensor as trained) or ``folded`` (each affine BatchNorm stored
as the per-channel ``scale`` and ``shift`` it computes in eval mode, float32 or
float16; `msup.artifact`).

The body holds each masked layer's level payload, in header order, then each
tensor's raw bytes, in header order. The header gives every length, so offsets
follow from it and cannot overlap; the lengths must add up to the body
exactly. `parse_model_file` checks, in this order: magic bytes, that the
header length fits the file, the format version (so a newer file is named as
such rather than as corrupt), the checksum, then the header's schema. It
never executes anything, and allocates at most the file it was given plus a
header of `MAX_HEADER_BYTES`.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

import torch

from msup.coats import level_counts
from msup.codec import CODES, EncodedLevels, entropy_bits
from msup.errors import InputError
from msup.models import ModelSpec

MAGIC = b"\x89MSUP\r\n\x1a"  # a high byte and CR-LF expose 7-bit and newline-mangling transfers
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
BATCHNORM_FORMS = ("exact", "folded")
MAX_HEADER_BYTES = 16 * 2**20  # decompressed: a zlib header cannot blow up past this
LENGTH = struct.Struct("<Q")
DIGEST_BYTES = hashlib.sha256().digest_size
FRAMING_BYTES = len(MAGIC) + LENGTH.size + DIGEST_BYTES
BYTES_PER_MIB = 1024**2

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
    "uint8": torch.uint8, "bool": torch.bool,
}
DTYPE_NAMES: dict[torch.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}


@dataclass(frozen=True)
class LayerSummary:
    """One masked layer as stored: its levels' histogram and coded payload."""

    name: str
    shape: tuple[int, ...]
    code: str
    level_counts: tuple[int, ...]
    payload_bytes: int
    payload_bits: int

    @property
    def n(self) -> int:
        return math.prod(self.shape)

    @property
    def entropy_bound_bits(self) -> float:
        """``n * H(f)``: what an ideal coder would spend on this layer's levels."""
        return entropy_bits(self.level_counts)

    def encoded(self, payload: bytes) -> EncodedLevels:
        return EncodedLevels(self.code, payload, self.payload_bits, self.level_counts)


@dataclass(frozen=True)
class TensorSummary:
    """One raw tensor (BatchNorm parameter or statistic, dense weight, ...)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class ArtifactSummary:
    """What a model file holds and where its bytes go.

    ``file_bytes = header_bytes + level_bytes + tensor_bytes``, where
    ``header_bytes`` counts the JSON header and the framing (magic, length,
    checksum). ``paper_mib``, ``entropy_mib`` and ``dense_mib`` are the
    reference sizes of `msup.sizes`, recorded at save time for comparison.
    """

    format_version: int
    msup_version: str
    batchnorm: str  # one of BATCHNORM_FORMS
    spec: ModelSpec
    layers: tuple[LayerSummary, ...]
    tensors: tuple[TensorSummary, ...]
    file_bytes: int
    header_bytes: int
    paper_mib: float
    entropy_mib: float
    dense_mib: float

    @property
    def level_bytes(self) -> int:
        return sum(layer.payload_bytes for layer in self.layers)

    @property
    def tensor_bytes(self) -> int:
        return sum(tensor.nbytes for tensor in self.tensors)

    @property
    def masked_weights(self) -> int:
        return sum(layer.n for layer in self.layers)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(sorted({layer.code for layer in self.layers}))

    @property
    def file_mib(self) -> float:
        return self.file_bytes / BYTES_PER_MIB

    @property
    def level_entropy_bound_bytes(self) -> float:
        return sum(layer.entropy_bound_bits for layer in self.layers) / 8

    @property
    def compression(self) -> float:
        """Dense fp32 size over this file's real size."""
        return self.dense_mib / self.file_mib

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, derived figures included."""
        return {
            "format_version": self.format_version,
            "msup_version": self.msup_version,
            "batchnorm": self.batchnorm,
            "model_spec": self.spec.to_dict(),
            "codes": list(self.codes),
            "file_bytes": self.file_bytes,
            "header_bytes": self.header_bytes,
            "level_bytes": self.level_bytes,
            "tensor_bytes": self.tensor_bytes,
            "masked_weights": self.masked_weights,
            "file_mib": self.file_mib,
            "paper_mib": self.paper_mib,
            "entropy_mib": self.entropy_mib,
            "dense_mib": self.dense_mib,
            "level_entropy_bound_bytes": self.level_entropy_bound_bytes,
            "compression": self.compression,
            "layers": [
                {**asdict(layer), "n": layer.n, "entropy_bound_bits": layer.entropy_bound_bits} for layer in self.layers
            ],
            "tensors": [asdict(tensor) for tensor in self.tensors],
        }


@dataclass(frozen=True)
class ParsedFile:
    """A checked model file: its summary and a view of its body."""

    summary: ArtifactSummary
    body: memoryview

    def layer_payloads(self) -> Iterator[tuple[LayerSummary, bytes]]:
        offset = 0
        for layer in self.summary.layers:
            yield layer, bytes(self.body[offset : offset + layer.payload_bytes])
            offset += layer.payload_bytes

    def tensor_payloads(self) -> Iterator[tuple[TensorSummary, bytes]]:
        offset = self.summary.level_bytes
        for tensor in self.summary.tensors:
            yield tensor, bytes(self.body[offset : offset + tensor.nbytes])
            offset += tensor.nbytes


def frame(header: dict[str, Any], chunks: list[bytes]) -> bytes:
    """Assemble a file from its header (compressed from format version 2 on) and body chunks, checksum appended."""
    header_json = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    version = header.get("format_version", FORMAT_VERSION)
    if _is_int(version) and version >= 2:
        header_json = zlib.compress(header_json, 9)
    head = MAGIC + LENGTH.pack(len(header_json)) + header_json
    digest = hashlib.sha256(head)
    for chunk in chunks:
        digest.update(chunk)
    return b"".join((head, *chunks, digest.digest()))


def parse_model_file(data: bytes) -> ParsedFile:
    """Check ``data`` as a model file; `InputError` with a one-line reason otherwise."""
    if not data:
        raise InputError("empty file")
    if data[: len(MAGIC)] != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise InputError(f"truncated: {len(data)} bytes, shorter than the magic bytes")
        raise InputError("not an msup model file (wrong magic bytes)")
    if len(data) < FRAMING_BYTES:
        raise InputError(f"truncated: {len(data)} bytes, shorter than the smallest model file")
    (header_length,) = LENGTH.unpack_from(data, len(MAGIC))
    body_start = len(MAGIC) + LENGTH.size + header_length
    body_end = len(data) - DIGEST_BYTES
    if body_start > body_end:
        raise InputError(f"truncated or corrupt: header length {header_length} exceeds the {len(data)}-byte file")
    view = memoryview(data)
    header = _load_json(view[len(MAGIC) + LENGTH.size : body_start])
    version = header.get("format_version") if isinstance(header, dict) else None
    if _is_int(version) and version > FORMAT_VERSION:
        raise InputError(f"format version {version} is newer than this msup reads ({FORMAT_VERSION}); upgrade msup")
    if hashlib.sha256(view[:body_end]).digest() != data[body_end:]:
        raise InputError("checksum mismatch: the file is corrupted or truncated")
    if not isinstance(header, dict):
        raise InputError("malformed header: not a UTF-8 JSON object")
    if version not in READABLE_VERSIONS or not _is_int(version):
        raise InputError(f"malformed header: unsupported format_version {version!r}")
    summary = _summarize(header, file_bytes=len(data), header_bytes=FRAMING_BYTES + header_length)
    body = view[body_start:body_end]
    declared = summary.level_bytes + summary.tensor_bytes
    if declared != len(body):
        raise InputError(f"header declares {declared} payload bytes, the file holds {len(body)}")
    return ParsedFile(summary, body)


def _load_json(raw: memoryview) -> Any:
    """The header as JSON: plain (version 1) or zlib-compressed (version 2 on); None if it is neither."""
    text = bytes(raw)
    if not text.startswith(b"{"):
        inflate = zlib.decompressobj()
        try:
            text = inflate.decompress(text, MAX_HEADER_BYTES)
        except zlib.error:
            return None
        if inflate.unconsumed_tail or not inflate.eof:  # larger than any real header, or cut short
            return None
    try:
        return json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _summarize(header: dict[str, Any], file_bytes: int, header_bytes: int) -> ArtifactSummary:
    spec_data = _field(header, "model_spec", dict, "header")
    try:
        spec = ModelSpec.from_dict(spec_data)
    except OverflowError:  # int() of a JSON number such as 1e400
        raise InputError("malformed header: model_spec holds an out-of-range number") from None
    if spec.mask is None:
        raise InputError("malformed header: model_spec has no mask")
    layers = tuple(_layer(entry, spec, f"layers[{i}]") for i, entry in enumerate(_field(header, "layers", list, "header")))
    tensors = tuple(_tensor(entry, f"tensors[{i}]") for i, entry in enumerate(_field(header, "tensors", list, "header")))
    sizes = _field(header, "reference_sizes", dict, "header")
    paper, entropy, dense = (float(_field(sizes, key, (int, float), "reference_sizes"))
                             for key in ("paper_mib", "entropy_mib", "dense_mib"))
    batchnorm = _field(header, "batchnorm", str, "header") if header["format_version"] >= 2 else "exact"
    if batchnorm not in BATCHNORM_FORMS:
        raise InputError(f"malformed header: batchnorm={batchnorm!r} is not one of {', '.join(BATCHNORM_FORMS)}")
    return ArtifactSummary(
        format_version=header["format_version"],
        msup_version=_field(header, "msup_version", str, "header"),
        batchnorm=batchnorm,
        spec=spec,
        layers=layers,
        tensors=tensors,
        file_bytes=file_bytes,
        header_bytes=header_bytes,
        paper_mib=paper,
        entropy_mib=entropy,
        dense_mib=dense,
    )


def _layer(entry: Any, spec: ModelSpec, where: str) -> LayerSummary:
    assert spec.mask is not None
    shape = _ints(entry, "shape", where, minimum=1)
    n = _field(entry, "n", int, where)
    if n != math.prod(shape):
        raise InputError(f"malformed header: {where} has n={n} for shape {list(shape)}")
    code = _field(entry, "code", str, where)
    if code not in CODES:
        raise InputError(f"malformed header: {where}.code={code!r} is not one of {', '.join(CODES)}")
    counts = _ints(entry, "level_counts", where, minimum=0)
    expected = level_counts(n, spec.mask.sparsities)
    if counts != expected:
        raise InputError(f"malformed header: {where}.level_counts {list(counts)} differ from the exact counts {list(expected)}")
    return LayerSummary(
        name=_field(entry, "name", str, where),
        shape=shape,
        code=code,
        level_counts=counts,
        payload_bytes=_nonnegative(entry, "payload_bytes", where),
        payload_bits=_nonnegative(entry, "payload_bits", where),
    )


def _tensor(entry: Any, where: str) -> TensorSummary:
    dtype = _field(entry, "dtype", str, where)
    if dtype not in DTYPES:
        raise InputError(f"malformed header: {where}.dtype={dtype!r} is not one of {', '.join(DTYPES)}")
    shape = _ints(entry, "shape", where, minimum=0)
    nbytes = _nonnegative(entry, "bytes", where)
    if nbytes != math.prod(shape) * DTYPES[dtype].itemsize:
        raise InputError(f"malformed header: {where} declares {nbytes} bytes for {dtype} of shape {list(shape)}")
    return TensorSummary(_field(entry, "name", str, where), dtype, shape, nbytes)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(entry: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise InputError(f"malformed header: {where} lacks {key!r}")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputError(f"malformed header: {where}.{key}={value!r:.60} has the wrong type")
    return value


def _nonnegative(entry: Any, key: str, where: str) -> int:
    value: int = _field(entry, key, int, where)
    if value < 0:
        raise InputError(f"malformed header: {where}.{key}={value} is negative")
    return value


def _ints(entry: Any, key: str, where: str, minimum: int) -> tuple[int, ...]:
    values = _field(entry, key, list, where)
    if not all(_is_int(v) and v >= minimum for v in values):
        raise InputError(f"malformed header: {where}.{key} must be a list of integers >= {minimum}")
    return tuple(values)
