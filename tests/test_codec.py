import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msup.coats import kept_counts, level_counts
from msup.codec import EncodedLevels, decode_levels, encode_levels, entropy_bits
from msup.errors import InputError
from msup.sizes import unary_bits

PAPER_P = (0.7, 0.9212, 0.9685)


def levels_from(counts, seed=0):
    """A shuffled level array with exactly this histogram."""
    levels = np.repeat(np.arange(len(counts), dtype=np.uint8), counts)
    np.random.default_rng(seed).shuffle(levels)
    return levels


def histograms(coats, n):
    """Uniform, extremely skewed (both ends), a single symbol, and the nested-coat shape."""
    uniform = [n // (coats + 1)] * (coats + 1)
    uniform[0] += n - sum(uniform)
    skewed_low = [n - min(n, coats)] + [1 if c < n else 0 for c in range(coats)]
    skewed_high = skewed_low[::-1]
    single = [0] * coats + [n]
    nested = list(level_counts(n, np.linspace(0.5, 0.99, coats)))
    return {"uniform": uniform, "skewed_low": skewed_low, "skewed_high": skewed_high, "single": single, "nested": nested}


@pytest.mark.parametrize("code", ["entropy", "unary"])
@pytest.mark.parametrize("coats", range(1, 8))
@pytest.mark.parametrize("n", [1, 2, 17, 4096])
def test_round_trip_on_many_distributions(code, coats, n):
    for name, counts in histograms(coats, n).items():
        levels = levels_from(counts)
        encoded = encode_levels(levels, coats, code)
        assert encoded.counts == tuple(counts), name
        np.testing.assert_array_equal(decode_levels(encoded), levels, err_msg=name)


@pytest.mark.parametrize("code", ["entropy", "unary"])
def test_round_trip_of_a_million_levels(code):
    counts = level_counts(10**6, PAPER_P)
    levels = levels_from(counts)
    np.testing.assert_array_equal(decode_levels(encode_levels(levels, 3, code)), levels)


@given(st.integers(1, 7).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n), max_size=300))),
       st.sampled_from(["entropy", "unary"]))
@settings(max_examples=150, deadline=None)
def test_round_trip_of_arbitrary_levels(coats_and_levels, code):
    coats, values = coats_and_levels
    levels = np.array(values, dtype=np.uint8)
    np.testing.assert_array_equal(decode_levels(encode_levels(levels, coats, code)), levels)


@pytest.mark.parametrize("sparsities", [(0.7,), (0.5,), (0.99,), PAPER_P, (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)])
def test_entropy_payload_is_within_one_percent_of_the_bound(sparsities):
    counts = level_counts(10**6, sparsities)
    payload_bits = 8 * len(encode_levels(levels_from(counts), len(sparsities)).payload)
    bound = entropy_bits(counts)
    assert bound - 64 <= payload_bits <= 1.01 * bound + 64


def test_a_constant_layer_costs_no_payload():
    encoded = encode_levels(np.full(1000, 2, dtype=np.uint8), 3)
    assert encoded.payload == b"" and encoded.counts == (0, 0, 1000, 0)


def test_unary_bit_layout():
    encoded = encode_levels(np.array([0, 1, 2, 3], dtype=np.uint8), 3, "unary")
    assert encoded.bits == 1 + 2 + 3 + 3  # "0" "10" "110" "111"
    assert encoded.payload == bytes([0b0101_1011, 0b1000_0000])


@pytest.mark.parametrize("n", [1, 7, 1001, 1728, 10_000, 123_457])
@pytest.mark.parametrize("sparsities", [(0.7,), PAPER_P, (0.5, 0.75)])
def test_unary_payload_is_the_paper_formula(n, sparsities):
    """n + sum_{i<N} K_i bits; `sizes.unary_bits` takes ceil(n (1 - p_i)) for K_i, which can exceed it."""
    encoded = encode_levels(levels_from(level_counts(n, sparsities)), len(sparsities), "unary")
    assert encoded.bits == n + sum(kept_counts(n, sparsities)[:-1])
    assert len(encoded.payload) == math.ceil(encoded.bits / 8)
    assert 0 <= unary_bits(n, sparsities) - encoded.bits <= len(sparsities) - 1


@pytest.mark.parametrize("n", [8, 100, 4096])
def test_unary_payload_equals_sizes_unary_bits_where_counts_are_exact(n):
    sparsities = (0.5, 0.75)  # n (1 - p_i) is an exact float: no rounding to disagree on
    encoded = encode_levels(levels_from(level_counts(n, sparsities)), 2, "unary")
    assert encoded.bits == unary_bits(n, sparsities)


def test_a_resnet50_sized_layer_set_codes_in_seconds():
    levels = levels_from(level_counts(4_000_000, PAPER_P))
    start = time.perf_counter()
    for code in ("entropy", "unary"):
        decode_levels(encode_levels(levels, 3, code))
    assert time.perf_counter() - start < 10  # ~0.5 s on one core; ResNet-50 is about 6x this


def corrupt(encoded, **changes):
    return EncodedLevels(**{**encoded.__dict__, **changes})


@pytest.fixture
def paper_layer():
    counts = level_counts(5000, PAPER_P)
    return {code: encode_levels(levels_from(counts), 3, code) for code in ("entropy", "unary")}


@pytest.mark.parametrize("code", ["entropy", "unary"])
def test_decoder_rejects_malformed_payloads(paper_layer, code):
    good = paper_layer[code]
    bad = [
        corrupt(good, payload=good.payload[: len(good.payload) // 2], bits=8 * (len(good.payload) // 2)),
        corrupt(good, payload=good.payload + b"\x01\x00\x00\x00", bits=good.bits + 32),
        corrupt(good, counts=(good.counts[0] + 1, good.counts[1] - 1, *good.counts[2:])),
        corrupt(good, counts=(*good.counts[:-1], good.counts[-1] + 50_000)),
        corrupt(good, bits=good.bits + 9),
        corrupt(good, counts=(5000,)),
    ]
    for encoded in bad:
        with pytest.raises(InputError):
            decode_levels(encoded)


def test_unary_decoder_rejects_dangling_and_padding_bits(paper_layer):
    good = paper_layer["unary"]
    flipped_padding = bytearray(good.payload)
    flipped_padding[-1] |= 1
    with pytest.raises(InputError, match="padding"):
        decode_levels(corrupt(good, payload=bytes(flipped_padding)))
    with pytest.raises(InputError):
        decode_levels(corrupt(good, bits=good.bits - 1))


def test_entropy_decoder_rejects_a_payload_too_short_for_its_levels():
    counts = (10**9, 10**9)
    with pytest.raises(InputError, match="too short"):
        decode_levels(EncodedLevels("entropy", b"\x01\x00\x00\x00", 32, counts))


def test_encoder_rejects_levels_above_the_coats_and_unknown_codes():
    with pytest.raises(InputError, match="exceeds"):
        encode_levels(np.array([0, 4], dtype=np.uint8), 3)
    with pytest.raises(InputError, match="code"):
        encode_levels(np.array([0, 1], dtype=np.uint8), 1, "huffman")
