import functools
import hashlib
import json
import os
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from msup.artifact import (
    artifact_size_bytes,
    load_model,
    model_file_bytes,
    read_summary,
    save_model,
)
from msup.artifact_format import (
    DIGEST_BYTES,
    FORMAT_VERSION,
    LENGTH,
    MAGIC,
    frame,
    parse_model_file,
)
from msup.coats import level_counts
from msup.errors import InputError
from msup.layers import MaskConfig, supermask_layers
from msup.models import ModelSpec

PAPER_P = (0.7, 0.9212, 0.9685)
SHAPES = {"mlp": (1, 8, 8), "conv4": (3, 32, 32), "resnet18": (3, 32, 32)}


def spec_of(name, sparsities=PAPER_P, **kwargs):
    return ModelSpec(name, 10, SHAPES[name], MaskConfig(sparsities, seed=7), **kwargs)


@functools.cache
def trained_like(spec, seed=0):
    """A model whose levels, BatchNorm parameters and statistics all differ from a fresh build.

    Levels are a random arrangement of the exact coat counts, installed directly:
    cheaper than sorting random scores, and what training would leave behind.
    """
    model = spec.build()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in supermask_layers(model):
            counts = torch.tensor(level_counts(layer.weight.numel(), spec.mask.sparsities))
            levels = torch.repeat_interleave(torch.arange(len(counts), dtype=torch.uint8), counts)
            layer.set_levels(levels[torch.randperm(levels.numel(), generator=gen)].view(layer.weight.shape))
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.5, generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
                module.num_batches_tracked.fill_(123)
                if module.affine:
                    module.weight.uniform_(0.5, 1.5, generator=gen)
                    module.bias.normal_(0, 0.2, generator=gen)
            elif type(module) in (nn.Conv2d, nn.Linear):  # dense first/last layers
                module.weight.normal_(0, 0.1, generator=gen)
    return model.eval()


def logits(model, spec, seed=1):
    x = torch.randn(2, *spec.input_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    spec = spec_of("mlp")
    path = tmp_path_factory.mktemp("artifact") / "mlp.msup"
    save_model(trained_like(spec), spec, path)
    return path


@pytest.mark.parametrize(
    "name, code, options",
    [
        ("mlp", "entropy", {}),
        ("mlp", "unary", {"dense_first_last": True}),
        ("mlp", "entropy", {"bn_affine": False}),
        ("conv4", "unary", {}),
        ("resnet18", "entropy", {}),
    ],
)
def test_round_trip_gives_identical_logits(tmp_path, name, code, options):
    spec = spec_of(name, **options)
    model = trained_like(spec)
    path = tmp_path / f"{name}.msup"
    summary = save_model(model, spec, path, code=code)
    loaded, loaded_spec = load_model(path)
    assert loaded_spec == spec and not loaded.training
    assert torch.equal(logits(loaded, spec), logits(model, spec))
    for (name_a, a), (name_b, b) in zip(supermask_layers(model), supermask_layers(loaded)):
        assert name_a == name_b and torch.equal(a.levels(), b.levels())
    assert summary.file_bytes == os.path.getsize(path) == artifact_size_bytes(model, spec, code)
    assert summary.file_bytes == summary.header_bytes + summary.level_bytes + summary.tensor_bytes
    assert summary.codes == (code,)


@pytest.mark.parametrize("name, options", [("mlp", {}), ("mlp", {"bn_affine": False}), ("resnet18", {})])
@pytest.mark.parametrize("batchnorm, tolerance", [("folded", 1e-5), ("folded-fp16", 2e-3)])
def test_folded_batchnorm_is_smaller_and_computes_the_same_up_to_rounding(tmp_path, name, options, batchnorm, tolerance):
    spec = spec_of(name, **options)
    model = trained_like(spec)
    summary = save_model(model, spec, tmp_path / "folded.msup", batchnorm=batchnorm)
    exact = save_model(model, spec, tmp_path / "exact.msup")
    loaded, _ = load_model(tmp_path / "folded.msup")
    assert summary.batchnorm == "folded" and exact.batchnorm == "exact"
    expected, got = logits(model, spec), logits(loaded, spec)
    assert torch.allclose(got, expected, rtol=tolerance, atol=tolerance * expected.abs().max().item())
    batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    affine = sum(m.num_features for m in batchnorms if m.affine)
    saved = 4 * 4 * affine - (4 if batchnorm == "folded" else 2) * 2 * affine + 8 * len(batchnorms)
    assert exact.tensor_bytes - summary.tensor_bytes == saved  # 4 fp32 per channel and a counter -> 2 values


def test_a_format_1_file_still_loads_bit_for_bit(tmp_path, good):
    old = reframed(good, lambda header: (header.update(format_version=1), header.pop("batchnorm")))
    assert old[len(MAGIC) + LENGTH.size :].startswith(b"{")  # plain JSON, as version 1 wrote it
    (tmp_path / "old.msup").write_bytes(old)
    spec = spec_of("mlp")
    loaded, _ = load_model(tmp_path / "old.msup")
    assert read_summary(tmp_path / "old.msup").format_version == 1
    assert torch.equal(logits(loaded, spec), logits(trained_like(spec), spec))


def test_the_header_is_compressed_and_a_header_that_inflates_without_end_is_refused(tmp_path, good):
    header, body = split(good)
    assert parse_model_file(good).summary.header_bytes < len(json.dumps(header, separators=(",", ":")))
    bomb = zlib.compress(b"{" + b" " * (32 * 2**20), 9)  # 32 MiB of JSON whitespace in a few kilobytes
    head = MAGIC + LENGTH.pack(len(bomb)) + bomb
    expect_rejected(tmp_path, head + body + hashlib.sha256(head + body).digest(), "malformed header")


def test_loaded_levels_survive_a_refresh_from_the_restored_scores(tmp_path):
    spec = ModelSpec("mlp", 10, SHAPES["mlp"], MaskConfig(PAPER_P, refresh="forward", seed=7))
    model = spec.build()
    with torch.no_grad():
        for _, layer in supermask_layers(model):
            layer.scores.normal_(generator=torch.Generator().manual_seed(3))
    save_model(model, spec, tmp_path / "m.msup")
    loaded, _ = load_model(tmp_path / "m.msup")  # recomputes levels from its scores in every forward
    assert torch.equal(logits(loaded, spec), logits(model, spec))


def test_summary_reports_the_three_sizes(mlp_file):
    summary = read_summary(mlp_file)
    assert summary.file_bytes == os.path.getsize(mlp_file)
    assert summary.paper_mib > summary.entropy_mib > 0 and summary.dense_mib > 10 * summary.file_mib
    for layer in summary.layers:
        assert layer.level_counts == level_counts(layer.n, PAPER_P)
        assert layer.entropy_bound_bits <= 8 * layer.payload_bytes <= 1.01 * layer.entropy_bound_bits + 64
    assert summary.as_dict()["file_bytes"] == summary.file_bytes
    json.dumps(summary.as_dict())


def test_save_refuses_a_spec_that_would_rebuild_other_weights():
    spec = spec_of("mlp")
    other_seed = ModelSpec("mlp", 10, SHAPES["mlp"], MaskConfig(PAPER_P, seed=8))
    with pytest.raises(InputError, match="different frozen weights"):
        model_file_bytes(spec.build(), other_seed)
    with pytest.raises(InputError, match="no mask"):
        model_file_bytes(spec.build(), ModelSpec("mlp", 10, SHAPES["mlp"], None))


def test_save_refuses_levels_that_break_the_exact_counts():
    spec = spec_of("mlp")
    model = spec.build()
    name, layer = supermask_layers(model)[0]
    layer.set_levels(torch.zeros_like(layer.levels()))
    with pytest.raises(InputError, match=f"layer {name}: level histogram"):
        model_file_bytes(model, spec)


# --- rejecting bad files ---------------------------------------------------------------------


def split(data):
    (length,) = LENGTH.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + LENGTH.size
    header = data[start : start + length]
    return json.loads(header if header.startswith(b"{") else zlib.decompress(header)), data[start + length : -DIGEST_BYTES]


def reframed(data, edit_header=None, body=None):
    """Re-assemble a file after editing it, with a valid checksum: only deeper checks can catch it."""
    header, old_body = split(data)
    if edit_header:
        edit_header(header)
    return frame(header, [old_body if body is None else body])


def expect_rejected(tmp_path, data, match):
    path = tmp_path / "bad.msup"
    path.write_bytes(data)
    for read in (read_summary, load_model):
        with pytest.raises(InputError, match=match) as info:
            read(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def good(mlp_file):
    load_model(mlp_file)  # warm up, so a fuzz example's deadline measures only its own work
    return mlp_file.read_bytes()


def test_truncated_files_are_rejected(tmp_path, good):
    for cut in (0, 5, 20, 100, len(good) // 2, len(good) - 1):
        expect_rejected(tmp_path, good[:cut], "truncated|empty|checksum")


def test_a_flipped_byte_is_rejected(tmp_path, good):
    for where in (20, len(good) // 2, len(good) - 10, len(good) - 1):
        data = bytearray(good)
        data[where] ^= 0x40
        expect_rejected(tmp_path, bytes(data), "checksum")


def test_files_of_other_formats_are_rejected(tmp_path, good):
    expect_rejected(tmp_path, b"PK\x03\x04" + good[4:], "not an msup model file")
    torch.save({"model": {}}, tmp_path / "ckpt.pt")
    expect_rejected(tmp_path, (tmp_path / "ckpt.pt").read_bytes(), "not an msup model file")
    expect_rejected(tmp_path, b"", "empty")


def test_a_future_format_version_is_named(tmp_path, good):
    expect_rejected(tmp_path, reframed(good, lambda h: h.update(format_version=FORMAT_VERSION + 1)), "newer")


def test_missing_files_and_folders_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_model(tmp_path / "absent.msup")
    with pytest.raises(InputError, match="not a regular file"):
        read_summary(tmp_path)


def first_layer(key, value):
    return lambda header: header["layers"][0].update({key: value})


@pytest.mark.parametrize(
    "edit, match",
    [
        (first_layer("shape", [10, 64]), "n=16384 for shape"),
        (first_layer("n", 10), "n=10"),
        (first_layer("payload_bytes", 10**12), "payload bytes"),
        (first_layer("level_counts", [0, 0, 0, 16384]), "exact counts"),
        (first_layer("code", "zip"), "code"),
        (first_layer("name", "other"), "masked layer 0 is other"),
        (lambda h: h["tensors"][0].update(shape=[257]), "declares 1024 bytes"),
        (lambda h: h["tensors"][0].update(shape=[512], bytes=2048), "payload bytes"),
        (lambda h: h["tensors"][0].update(dtype="object"), "dtype"),
        (lambda h: h["model_spec"].update(num_classes=11), "but mlp has"),
        (lambda h: h["model_spec"].update(name="nonexistent"), "unknown model"),
        (lambda h: h.pop("tensors"), "lacks 'tensors'"),
        (lambda h: h.update(format_version=0), "format_version"),
    ],
)
def test_headers_that_disagree_with_the_payload_or_the_model_are_rejected(tmp_path, good, edit, match):
    expect_rejected_on_load = reframed(good, edit)
    path = tmp_path / "bad.msup"
    path.write_bytes(expect_rejected_on_load)
    with pytest.raises(InputError, match=match):
        load_model(path)


def test_a_header_missing_a_layer_is_rejected(tmp_path, good):
    header, body = split(good)
    last = header["layers"].pop()
    start = sum(layer["payload_bytes"] for layer in header["layers"])
    (tmp_path / "bad.msup").write_bytes(frame(header, [body[:start] + body[start + last["payload_bytes"] :]]))
    with pytest.raises(InputError, match="lists 2 masked layers, but mlp has 3"):
        load_model(tmp_path / "bad.msup")


def test_a_payload_that_does_not_decode_is_rejected(tmp_path, good):
    header, body = split(good)
    swapped = bytes(reversed(body[:8])) + body[8:]  # garble the first layer's ANS words
    expect_on_load = frame(header, [swapped])
    (tmp_path / "bad.msup").write_bytes(expect_on_load)
    with pytest.raises(InputError, match="layer 1"):
        load_model(tmp_path / "bad.msup")


def mutate(data, blob, kinds=("flip", "truncate", "insert", "delete")):
    """Apply 1-4 random flips, truncations, insertions or deletions to a bytearray."""
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(kinds))
        at = data.draw(st.integers(0, max(len(blob) - 1, 0)))
        if kind == "flip" and blob:
            blob[at] ^= data.draw(st.integers(1, 255))
        elif kind == "truncate":
            del blob[at:]
        elif kind == "insert":
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            del blob[at : at + data.draw(st.integers(1, 16))]
    return bytes(blob)


def load_or_input_error(tmp_path, blob):
    path = tmp_path / "fuzz.msup"
    path.write_bytes(blob)
    try:
        model, spec = load_model(path)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(model, nn.Module) and spec.name == "mlp"


FUZZ = settings(max_examples=120, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(data=st.data())
@FUZZ
def test_fuzzed_files_raise_input_error(tmp_path, good, data):
    """Random damage anywhere: framing, magic, length and checksum checks catch it."""
    load_or_input_error(tmp_path, mutate(data, bytearray(good)))


@given(data=st.data())
@FUZZ
def test_fuzzed_contents_with_a_valid_checksum_load_or_raise_input_error(tmp_path, good, data):
    """Damage to the header JSON, or byte flips in the body, re-framed with a matching length and
    checksum, so that the schema, architecture and decoder checks must catch it (or the file still loads)."""
    header_start = len(MAGIC) + LENGTH.size
    (length,) = LENGTH.unpack_from(good, len(MAGIC))
    header_json, body = good[header_start : header_start + length], good[header_start + length : -DIGEST_BYTES]
    if data.draw(st.booleans()):
        header_json = mutate(data, bytearray(header_json))
    else:
        body = mutate(data, bytearray(body), kinds=("flip",))
    head = MAGIC + LENGTH.pack(len(header_json)) + header_json
    load_or_input_error(tmp_path, head + body + hashlib.sha256(head + body).digest())
