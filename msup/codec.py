"""Lossless codes for the integer coat levels (0..N) of one supermasked layer.

Two codes, both vectorised with numpy so a ResNet-50 (25.5 M levels) codes in
about a second:

- ``entropy``: an ANS coder (`constriction`) driven by the layer's own level
  histogram, which the reader knows from the file header. The payload lands
  within a few bytes of ``n * H(f)`` bits; levels absent from the layer are
  dropped from the alphabet so they cost nothing.
- ``unary``: the paper's truncated unary code (0 -> ``0``, 1 -> ``10``, ...,
  N -> N ones), packed most significant bit first, zero-padded to whole bytes.
  Its exact bit count is ``n + sum_{i<N} K_i`` with ``K_i`` the weights kept
  by coat i, i.e. the reference accounting.

Decoders treat the payload as untrusted: malformed input raises `InputError`,
and nothing is allocated beyond what the payload can encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from msup.errors import InputError
from msup.sizes import entropy_bits_per_weight

Code = Literal["entropy", "unary"]
CODES: tuple[str, ...] = ("entropy", "unary")
MAX_COATS = 255  # levels are stored as uint8

# An ANS stream cannot be shorter than the information content of its symbols
# (which is at least n * H of their histogram) minus the coder's 64-bit state.
_ANS_STATE_BITS = 64


@dataclass(frozen=True)
class EncodedLevels:
    """One layer's coded levels: ``payload`` holds ``bits`` meaningful bits (the rest is zero padding)."""

    code: str
    payload: bytes
    bits: int
    counts: tuple[int, ...]

    @property
    def n(self) -> int:
        return sum(self.counts)


def level_histogram(levels: np.ndarray, coats: int) -> tuple[int, ...]:
    """How many of ``levels`` sit at each level 0..``coats``."""
    flat = np.asarray(levels).reshape(-1)
    if flat.size and int(flat.max()) > coats:
        raise InputError(f"level {int(flat.max())} exceeds the number of coats {coats}")
    return tuple(int(c) for c in np.bincount(flat, minlength=coats + 1))


def entropy_bits(counts: Sequence[int]) -> float:
    """``n * H(f)`` in bits: the floor for coding a layer with this level histogram."""
    return sum(counts) * entropy_bits_per_weight(counts)


def check_code(code: str) -> Code:
    if code not in CODES:
        raise InputError(f"code={code!r} is not one of {', '.join(CODES)}")
    return cast(Code, code)


def encode_levels(levels: np.ndarray, coats: int, code: str = "entropy") -> EncodedLevels:
    """Code the flattened ``levels`` (integers 0..``coats``) of one layer."""
    if not 1 <= coats <= MAX_COATS:
        raise InputError(f"coats={coats} must lie in 1..{MAX_COATS}")
    flat = np.ascontiguousarray(np.asarray(levels).reshape(-1), dtype=np.uint8)
    counts = level_histogram(flat, coats)
    if check_code(code) == "unary":
        payload, bits = _unary_encode(flat, coats)
    else:
        payload = _ans_encode(flat, counts)
        bits = 8 * len(payload)
    return EncodedLevels(code, payload, bits, counts)


def decode_levels(encoded: EncodedLevels) -> np.ndarray:
    """Inverse of `encode_levels`: a flat ``uint8`` array of ``sum(counts)`` levels.

    Raises `InputError` if the payload cannot hold that many levels, does not
    decode cleanly, or decodes to a histogram other than ``counts``.
    """
    code, counts = check_code(encoded.code), encoded.counts
    if len(counts) < 2 or any(c < 0 for c in counts):
        raise InputError(f"level counts {list(counts)} must be non-negative, one per level 0..N with N >= 1")
    if not 0 <= encoded.bits <= 8 * len(encoded.payload) < encoded.bits + 8:
        raise InputError(f"{encoded.bits} payload bits do not fit {len(encoded.payload)} payload bytes")
    if code == "entropy" and encoded.bits != 8 * len(encoded.payload):
        raise InputError(f"entropy payload declares {encoded.bits} bits for {len(encoded.payload)} bytes")
    if code == "unary":
        levels = _unary_decode(encoded.payload, encoded.bits, len(counts) - 1, encoded.n)
    else:
        levels = _ans_decode(encoded.payload, counts)
    if level_histogram(levels, len(counts) - 1) != tuple(counts):
        raise InputError(f"decoded level histogram differs from the declared counts {list(counts)}")
    return levels


# --- entropy code (ANS) -------------------------------------------------------------


def _alphabet(counts: Sequence[int]) -> np.ndarray:
    """The levels that occur, in increasing order: the ANS alphabet."""
    return np.flatnonzero(np.asarray(counts, dtype=np.int64))


def _categorical(counts: Sequence[int], present: np.ndarray) -> Any:  # constriction's Categorical model
    import constriction

    # Encoder and decoder derive the same float64 table from the same integer
    # counts, so both quantize it identically.
    probabilities = np.asarray(counts, dtype=np.float64)[present]
    return constriction.stream.model.Categorical(probabilities / probabilities.sum(), perfect=False)


def _ans_encode(levels: np.ndarray, counts: Sequence[int]) -> bytes:
    import constriction

    present = _alphabet(counts)
    if present.size <= 1:  # a constant layer carries no information
        return b""
    to_symbol = np.zeros(len(counts), dtype=np.int32)
    to_symbol[present] = np.arange(present.size, dtype=np.int32)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(to_symbol[levels], _categorical(counts, present))
    return coder.get_compressed().astype("<u4", copy=False).tobytes()


def _ans_decode(payload: bytes, counts: Sequence[int]) -> np.ndarray:
    import constriction

    n, present = sum(counts), _alphabet(counts)
    if present.size <= 1:
        if payload:
            raise InputError(f"a single-level layer has an empty payload, got {len(payload)} bytes")
        return np.full(n, present[0] if present.size else 0, dtype=np.uint8)
    if len(payload) % 4:
        raise InputError(f"entropy payload of {len(payload)} bytes is not a whole number of 32-bit words")
    if entropy_bits(counts) > 8 * len(payload) + _ANS_STATE_BITS:
        raise InputError(
            f"entropy payload of {len(payload)} bytes is too short for {n} levels "
            f"(needs at least {entropy_bits(counts) / 8:.0f} bytes)"
        )
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        symbols = coder.decode(_categorical(counts, present), n)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"entropy payload does not decode: {exc}") from None
    if not coder.is_empty():
        raise InputError("entropy payload has data left over after the last level")
    return present.astype(np.uint8)[symbols]


# --- truncated unary code --------------------------------------------------------------


def _unary_encode(levels: np.ndarray, coats: int) -> tuple[bytes, int]:
    """A level c < N is c ones and a terminating zero; level N is N ones, no terminator."""
    lengths = levels.astype(np.int64) + (levels < coats)
    ends = np.cumsum(lengths)
    bits = np.ones(int(ends[-1]) if ends.size else 0, dtype=np.uint8)
    bits[ends - 1] = levels == coats  # each code's last bit: 0 terminates, 1 is the N-th one
    return np.packbits(bits).tobytes(), bits.size


def _unary_decode(payload: bytes, bits: int, coats: int, n: int) -> np.ndarray:
    """Vectorised parse: a run of r ones ended by a zero is r // N levels N then one level r % N."""
    if not n <= bits <= n * coats:
        raise InputError(f"{bits} unary bits cannot hold {n} levels of at most {coats} bits each")
    stream = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
    if stream[bits:].any():
        raise InputError("unary payload has non-zero padding bits")
    stream = stream[:bits]
    zeros = np.flatnonzero(stream == 0)
    runs = np.diff(zeros, prepend=-1) - 1  # ones before each terminating zero
    tail = bits - (int(zeros[-1]) + 1 if zeros.size else 0)  # ones after the last zero
    if tail % coats:
        raise InputError(f"unary payload ends inside a level ({tail % coats} dangling bits)")
    per_run = runs // coats + 1
    total = int(per_run.sum()) + tail // coats
    if total != n:
        raise InputError(f"unary payload holds {total} levels, expected {n}")
    levels = np.full(n, coats, dtype=np.uint8)
    levels[np.cumsum(per_run) - 1] = (runs % coats).astype(np.uint8)
    return levels
